//! Training methods. Each file is one paper's training step on the shared loop
//! ([`crate::train`]): it receives the model and one batch (ID images, labels and, for the
//! OE family, a batch of auxiliary outliers) and returns the loss to minimise plus the named
//! terms to log. Optimiser, schedule, checkpoints and logging are not a recipe's business.

pub mod energy_oe;
pub mod mixoe;
pub mod oe;
pub mod supervised;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::Rng;

use crate::config::{LossConfig, RecipeKind};

/// One training batch, already on the device.
pub struct StepBatch<B: Backend> {
    /// ID images `[n, c, h, w]`, normalised and augmented.
    pub images: Tensor<B, 4>,
    /// ID labels `[n]`.
    pub labels: Tensor<B, 1, Int>,
    /// Auxiliary outliers `[m, c, h, w]` for the OE family.
    pub outliers: Option<Tensor<B, 4>>,
}

/// What a step returns.
pub struct StepOutput<B: Backend> {
    /// The scalar to minimise, shape `[1]`.
    pub loss: Tensor<B, 1>,
    /// Named loss terms for logging (`loss/<name>` in TensorBoard), shape `[1]` each.
    pub terms: Vec<(&'static str, Tensor<B, 1>)>,
    /// Logits of the ID images `[n, classes]` (training accuracy).
    pub id_logits: Tensor<B, 2>,
}

/// A training method.
pub trait Recipe<B: AutodiffBackend> {
    /// The config name (`oe`, ...).
    fn name(&self) -> &'static str;
    /// One forward pass and loss. `rng` is the run's seeded generator for the recipe's own
    /// randomness (mixing coefficients, boxes); its state is checkpointed.
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, rng: &mut Rng) -> StepOutput<B>;
}

/// Builds the recipe a config names.
pub fn build<B: AutodiffBackend>(
    kind: RecipeKind,
    loss: &LossConfig,
    num_classes: usize,
) -> Box<dyn Recipe<B>> {
    match kind {
        RecipeKind::Supervised => Box::new(supervised::Supervised::new(loss)),
        RecipeKind::Oe => Box::new(oe::OutlierExposure::new(loss)),
        RecipeKind::EnergyOe => Box::new(energy_oe::EnergyOe::new(loss)),
        RecipeKind::Mixoe => Box::new(mixoe::MixOe::new(loss, num_classes)),
        // Category discovery and open-set SSL train on their own loops.
        other => unreachable!(
            "recipe `{}` runs on the {:?} loop, not the OOD one",
            other.name(),
            other.family()
        ),
    }
}

/// Forwards ID images and outliers **in one pass** (one set of BatchNorm statistics, as
/// the OE reference; OpenOOD's first port used two passes and lost most of OE's gain) and
/// returns the logits of the concatenated batch: the first `n_id` rows are the ID images.
pub fn forward_joint<B: Backend>(
    model: &Backbone<B>,
    images: Tensor<B, 4>,
    outliers: Tensor<B, 4>,
) -> Tensor<B, 2> {
    let x = Tensor::cat(vec![images, outliers], 0);
    let (_, logits) = model.forward(x);
    logits
}
