//! LogitNorm (Wei, Xie, Cheng, Feng, An & Li, ICML 2022, "Mitigating Neural Network
//! Overconfidence with Logit Normalization"): cross-entropy on `z / (τ·‖z‖)`, which keeps
//! the logits' norm from growing during training so that confidence reflects the input.
//! No outliers; evaluated with the usual detectors on the raw logits (reference:
//! hongxin001/logitnorm_ood `common/loss_function.py`, `LogitNormLoss`).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::logitnorm::{logitnorm_loss, LogitNormConfig};

use super::{OodMethod, OodMethodDef, StepBatch, StepOutput};

/// The LogitNorm method. `[loss]` keys: `tau` (0.04, as OpenOOD v1.5's
/// `train_logitnorm.yml`; see [`LogitNormConfig`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitNorm {
    /// Temperature τ of the normalised logits (0.04).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
}

impl LogitNorm {
    /// The official defaults with this table's values.
    pub fn config(&self) -> LogitNormConfig {
        let mut c = LogitNormConfig::new();
        if let Some(t) = self.tau {
            c.tau = t as f32;
        }
        c
    }
}

impl OodMethodDef for LogitNorm {
    fn check(&self) -> Result<(), String> {
        self.config().validate().map_err(|e| e.to_string())
    }

    fn build<B: AutodiffBackend>(&self, _num_classes: usize) -> Box<dyn OodMethod<B>> {
        Box::new(self.clone())
    }
}

impl<B: AutodiffBackend> OodMethod<B> for LogitNorm {
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let (_, logits) = model.forward(batch.images);
        let loss = logitnorm_loss(logits.clone(), batch.labels, &self.config());
        StepOutput {
            terms: vec![("logitnorm", loss.clone().detach())],
            loss,
            id_logits: logits.detach(),
        }
    }
}
