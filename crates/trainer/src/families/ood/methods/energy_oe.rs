//! Energy-bounded Outlier Exposure (Liu, Wang, Owens & Li, NeurIPS 2020): cross-entropy
//! plus `w · (mean relu(E_in − m_in)² + mean relu(m_out − E_out)²)` with
//! `E = −logsumexp(z)`, ID and outliers in one forward pass (reference:
//! wetliu/energy_ood `CIFAR/train.py`).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::oe::{energy_oe_loss, EnergyOeConfig};

use super::{forward_joint, OodMethod, OodMethodDef, StepBatch, StepOutput};

/// The energy-OE method. `[loss]` keys: `energy_weight` (0.1), `m_in` (−23), `m_out` (−5),
/// the CIFAR-10 values of the reference.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyOe {
    /// Weight of the margin term (0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_weight: Option<f64>,
    /// ID margin m_in (−23 for CIFAR-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_in: Option<f64>,
    /// Outlier margin m_out (−5 for CIFAR-10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m_out: Option<f64>,
}

impl EnergyOe {
    /// The paper's defaults with this table's values.
    pub fn config(&self) -> EnergyOeConfig {
        let mut c = EnergyOeConfig::new();
        if let Some(v) = self.energy_weight {
            c.weight = v as f32;
        }
        if let Some(v) = self.m_in {
            c.m_in = v as f32;
        }
        if let Some(v) = self.m_out {
            c.m_out = v as f32;
        }
        c
    }
}

impl OodMethodDef for EnergyOe {
    fn check(&self) -> Result<(), String> {
        self.config().validate().map_err(|e| e.to_string())
    }

    fn needs_outliers(&self) -> bool {
        true
    }

    fn build<B: AutodiffBackend>(&self, _num_classes: usize) -> Box<dyn OodMethod<B>> {
        Box::new(self.clone())
    }
}

impl<B: AutodiffBackend> OodMethod<B> for EnergyOe {
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let n = batch.labels.dims()[0];
        let outliers = batch
            .outliers
            .expect("the loop supplies outliers to energy OE");
        let logits = forward_joint(model, batch.images, outliers);
        let id_logits = logits.clone().slice(0..n).detach();
        let out = energy_oe_loss(logits, batch.labels, &self.config());
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
