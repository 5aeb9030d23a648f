//! Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019): cross-entropy on the ID
//! batch plus λ times the cross-entropy from the outliers' softmax to the uniform
//! distribution, with ID and outliers in one forward pass (reference:
//! hendrycks/outlier-exposure `CIFAR/oe_tune.py`, `x = torch.cat((in_set[0], out_set[0]), 0)`).

use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::oe::{oe_loss, OutlierExposureConfig};

use super::{forward_joint, Recipe, StepBatch, StepOutput};
use crate::config::LossConfig;

/// The OE recipe.
pub struct OutlierExposure {
    cfg: OutlierExposureConfig,
}

impl OutlierExposure {
    /// From the `[loss]` table (`oe_lambda`, default 0.5).
    pub fn new(cfg: &LossConfig) -> Self {
        Self { cfg: cfg.oe() }
    }
}

impl<B: AutodiffBackend> Recipe<B> for OutlierExposure {
    fn name(&self) -> &'static str {
        "oe"
    }

    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let n = batch.labels.dims()[0];
        let outliers = batch.outliers.expect("the loop supplies outliers to OE");
        let logits = forward_joint(model, batch.images, outliers);
        let id_logits = logits.clone().slice(0..n).detach();
        let out = oe_loss(logits, batch.labels, &self.cfg);
        StepOutput {
            terms: vec![("ce", out.ce.detach()), ("oe", out.oe.detach())],
            loss: out.total,
            id_logits,
        }
    }
}
