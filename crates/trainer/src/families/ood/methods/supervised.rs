//! Plain cross-entropy training (the baseline every OOD table starts from).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::ce::cross_entropy;

use super::{OodMethod, OodMethodDef, StepBatch, StepOutput};

/// Cross-entropy (with optional label smoothing) on the ID data. `[loss]` keys:
/// `label_smoothing` (0). Values are read as TOML numbers (f64) and used as f32, so
/// `config.toml` records them as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supervised {
    /// Label smoothing of the cross-entropy, in `[0, 1)`.
    #[serde(default)]
    pub label_smoothing: f64,
}

impl OodMethodDef for Supervised {
    fn check(&self) -> Result<(), String> {
        check_smoothing(self.label_smoothing)
    }

    fn build<B: AutodiffBackend>(&self, _num_classes: usize) -> Box<dyn OodMethod<B>> {
        Box::new(self.clone())
    }
}

/// `label_smoothing` must lie in `[0, 1)`.
pub fn check_smoothing(v: f64) -> Result<(), String> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(format!("`label_smoothing` must lie in [0, 1), got {v}"))
    }
}

impl<B: AutodiffBackend> OodMethod<B> for Supervised {
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let (_, logits) = model.forward(batch.images);
        let loss = cross_entropy(logits.clone(), batch.labels, self.label_smoothing as f32);
        StepOutput {
            terms: vec![("ce", loss.clone().detach())],
            loss,
            id_logits: logits.detach(),
        }
    }
}
