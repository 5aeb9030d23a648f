//! Energy-bounded Outlier Exposure (Liu, Wang, Owens & Li, NeurIPS 2020): cross-entropy
//! plus `w · (mean relu(E_in − m_in)² + mean relu(m_out − E_out)²)` with
//! `E = −logsumexp(z)`, ID and outliers in one forward pass (reference:
//! wetliu/energy_ood `CIFAR/train.py`).

use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::oe::{energy_oe_loss, EnergyOeConfig};

use super::{forward_joint, Recipe, StepBatch, StepOutput};
use crate::config::LossConfig;

/// The energy-OE recipe.
pub struct EnergyOe {
    cfg: EnergyOeConfig,
}

impl EnergyOe {
    /// From the `[loss]` table (`energy_weight` 0.1, `m_in` −23, `m_out` −5: CIFAR-10).
    pub fn new(cfg: &LossConfig) -> Self {
        Self {
            cfg: cfg.energy_oe(),
        }
    }
}

impl<B: AutodiffBackend> Recipe<B> for EnergyOe {
    fn name(&self) -> &'static str {
        "energy_oe"
    }

    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let n = batch.labels.dims()[0];
        let outliers = batch
            .outliers
            .expect("the loop supplies outliers to energy OE");
        let logits = forward_joint(model, batch.images, outliers);
        let id_logits = logits.clone().slice(0..n).detach();
        let out = energy_oe_loss(logits, batch.labels, &self.cfg);
        StepOutput {
            terms: vec![
                ("ce", out.ce.detach()),
                ("energy_margin", out.margin.detach()),
            ],
            loss: out.total,
            id_logits,
        }
    }
}
