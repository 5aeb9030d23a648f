//! Mixture Outlier Exposure (Zhang, Inkawhich, Linderman, Chen & Li, WACV 2023; reference
//! zjysteven/MixOE `train.py`). Each step draws one λ ~ Beta(α, α), mixes the ID batch with
//! an equally sized outlier batch (mixup: `λ·x + (1−λ)·x_out`; CutMix: an outlier box pasted
//! into the ID images, λ recomputed from the clipped box area), and trains on
//! `CE(id) + β · soft-CE(mixed, λ·onehot(y) + (1−λ)·uniform)`.
//! As in the official `train/train_mixoe.py`, the ID batch and the mixed batch go through
//! the network in two forward passes (each with its own BatchNorm batch statistics): we
//! follow the reference here, unlike OE, whose reference uses one pass over the
//! concatenated batch.

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::Rng;
use unseen_losses::ce::cross_entropy;
use unseen_losses::mixoe::{mix_targets, soft_cross_entropy, MixOeConfig, MixOp};

use super::{OodMethod, OodMethodDef, StepBatch, StepOutput};

/// The MixOE method. `[loss]` keys: `mix` (`"mixup"`, default, or `"cutmix"`), `alpha` (1 for
/// mixup, 2 for CutMix), `beta` (5), `label_smoothing` (0) of the ID cross-entropy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixOe {
    /// `mixup` or `cutmix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
    /// Beta(α, α) parameter (1 for mixup, 2 for CutMix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Weight β of the soft cross-entropy (5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// Label smoothing of the ID cross-entropy.
    #[serde(default)]
    pub label_smoothing: f64,
}

impl MixOe {
    /// The official defaults with this table's values.
    pub fn config(&self) -> MixOeConfig {
        let op = if self.mix.as_deref() == Some("cutmix") {
            MixOp::Cutmix
        } else {
            MixOp::Mixup
        };
        let mut c = MixOeConfig::new(op).with_alpha(self.alpha.map(|a| a as f32));
        if let Some(b) = self.beta {
            c.beta = b as f32;
        }
        c
    }
}

impl OodMethodDef for MixOe {
    fn check(&self) -> Result<(), String> {
        if let Some(m) = &self.mix {
            if m != "mixup" && m != "cutmix" {
                return Err(format!("`mix` must be \"mixup\" or \"cutmix\", got {m:?}"));
            }
        }
        super::supervised::check_smoothing(self.label_smoothing)?;
        self.config().validate().map_err(|e| e.to_string())
    }

    fn needs_outliers(&self) -> bool {
        true
    }

    /// MixOE mixes each ID image with one outlier: as many outliers as ID images.
    fn outlier_batch(&self, batch_size: usize) -> usize {
        batch_size
    }

    fn build<B: AutodiffBackend>(&self, num_classes: usize) -> Box<dyn OodMethod<B>> {
        Box::new(MixOeStep {
            cfg: self.config(),
            num_classes,
            label_smoothing: self.label_smoothing as f32,
        })
    }
}

/// MixOE for a `num_classes`-way classifier.
struct MixOeStep {
    cfg: MixOeConfig,
    num_classes: usize,
    label_smoothing: f32,
}

impl<B: AutodiffBackend> OodMethod<B> for MixOeStep {
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, rng: &mut Rng) -> StepOutput<B> {
        let [n, c, h, w] = batch.images.dims();
        let outliers = batch.outliers.expect("the loop supplies outliers to MixOE");
        let m = outliers.dims()[0].min(n);
        let x_id = batch.images.clone().slice(0..m);
        let x_out = outliers.slice(0..m);
        let alpha = self.cfg.alpha() as f64;
        let mut lambda = rng.beta(alpha, alpha) as f32;
        let mixed = match self.cfg.mix {
            MixOp::Mixup => x_id.mul_scalar(lambda) + x_out.mul_scalar(1.0 - lambda),
            MixOp::Cutmix => {
                let b = unseen_data::transforms::cutmix_box(h, w, lambda as f64, rng);
                lambda = unseen_data::transforms::lambda_from_box(b, h, w) as f32;
                let (y0, y1, x0, x1) = (b.y0, b.y1, b.x0, b.x1);
                if !b.is_empty() {
                    let patch = x_out.slice([0..m, 0..c, y0..y1, x0..x1]);
                    x_id.slice_assign([0..m, 0..c, y0..y1, x0..x1], patch)
                } else {
                    x_id
                }
            }
        };
        let (_, id_logits) = model.forward(batch.images);
        let (_, mixed_logits) = model.forward(mixed);
        let ce = cross_entropy(
            id_logits.clone(),
            batch.labels.clone(),
            self.label_smoothing,
        );
        let targets = mix_targets(batch.labels.slice(0..m), self.num_classes, lambda);
        let soft = soft_cross_entropy(mixed_logits, targets);
        let loss = ce.clone() + soft.clone().mul_scalar(self.cfg.beta);
        StepOutput {
            terms: vec![("ce", ce.detach()), ("mixoe", soft.detach())],
            loss,
            id_logits: id_logits.detach(),
        }
    }
}
