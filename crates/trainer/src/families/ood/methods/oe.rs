//! Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019): cross-entropy on the ID
//! batch plus λ times the cross-entropy from the outliers' softmax to the uniform
//! distribution, with ID and outliers in one forward pass (reference:
//! hendrycks/outlier-exposure `CIFAR/oe_tune.py`, `x = torch.cat((in_set[0], out_set[0]), 0)`).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::oe::{oe_loss, OutlierExposureConfig};

use super::{forward_joint, OodMethod, OodMethodDef, StepBatch, StepOutput};

/// The OE method. `[loss]` keys: `oe_lambda` (0.5).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierExposure {
    /// Weight λ of the uniform cross-entropy (0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oe_lambda: Option<f64>,
}

impl OutlierExposure {
    /// The paper's defaults with this table's values.
    pub fn config(&self) -> OutlierExposureConfig {
        let mut c = OutlierExposureConfig::new();
        if let Some(v) = self.oe_lambda {
            c.lambda = v as f32;
        }
        c
    }
}

impl OodMethodDef for OutlierExposure {
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

impl<B: AutodiffBackend> OodMethod<B> for OutlierExposure {
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let n = batch.labels.dims()[0];
        let outliers = batch.outliers.expect("the loop supplies outliers to OE");
        let logits = forward_joint(model, batch.images, outliers);
        let id_logits = logits.clone().slice(0..n).detach();
        let out = oe_loss(logits, batch.labels, &self.config());
        StepOutput {
            terms: vec![("ce", out.ce.detach()), ("oe", out.oe.detach())],
            loss: out.total,
            id_logits,
        }
    }
}
