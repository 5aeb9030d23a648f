//! Plain cross-entropy training (the baseline every OOD table starts from).

use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::ce::cross_entropy;

use super::{Recipe, StepBatch, StepOutput};
use crate::config::LossConfig;

/// Cross-entropy (with optional label smoothing) on the ID data.
pub struct Supervised {
    label_smoothing: f32,
}

impl Supervised {
    /// From the `[loss]` table.
    pub fn new(cfg: &LossConfig) -> Self {
        Self {
            label_smoothing: cfg.label_smoothing,
        }
    }
}

impl<B: AutodiffBackend> Recipe<B> for Supervised {
    fn name(&self) -> &'static str {
        "supervised"
    }

    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, _rng: &mut Rng) -> StepOutput<B> {
        let (_, logits) = model.forward(batch.images);
        let loss = cross_entropy(logits.clone(), batch.labels, self.label_smoothing);
        StepOutput {
            terms: vec![("ce", loss.clone().detach())],
            loss,
            id_logits: logits.detach(),
        }
    }
}
