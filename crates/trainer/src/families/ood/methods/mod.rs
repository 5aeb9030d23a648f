//! The OOD-classifier methods and their registry. Each file is one paper's training step:
//! it receives the model and one batch (ID images, labels and, for the OE family, a batch of
//! auxiliary outliers) and returns the loss to minimise plus the named terms to log. Its
//! parameter struct is the method's `[loss]` table (unknown keys rejected). Optimiser,
//! schedule, checkpoints and logging are the driver's business, never a method's.
//!
//! Adding a method: a loss in `crates/losses`, a file here implementing [`OodMethod`] and
//! [`OodMethodDef`], a config, and one line in [`registry`] (`docs/adding-a-method.md`).

pub mod energy_oe;
pub mod logitnorm;
pub mod mixoe;
pub mod oe;
pub mod supervised;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;
use unseen_backbones::Backbone;
use unseen_data::Rng;

/// One training batch, already on the device.
pub struct StepBatch<B: Backend> {
    /// ID images `[n, c, h, w]`, normalised and augmented.
    pub images: Tensor<B, 4>,
    /// ID labels `[n]`.
    pub labels: Tensor<B, 1, Int>,
    /// Auxiliary outliers `[m, c, h, w]` for methods that use them.
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

/// A training method of the OOD family, on one backend.
pub trait OodMethod<B: AutodiffBackend> {
    /// One forward pass and loss. `rng` is the run's seeded generator for the method's own
    /// randomness (mixing coefficients, boxes); its state is checkpointed.
    fn step(&self, model: &Backbone<B>, batch: StepBatch<B>, rng: &mut Rng) -> StepOutput<B>;
}

/// A method's parameters (its `[loss]` table) and how to build it.
pub trait OodMethodDef: DeserializeOwned + Serialize + 'static {
    /// Checks the values (ranges) beyond their types.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// Whether the method consumes an auxiliary outlier stream (`[data.outliers]`).
    fn needs_outliers(&self) -> bool {
        false
    }

    /// Outliers per step when `train.outlier_batch_size` is absent (OE's reference draws
    /// twice the ID batch).
    fn outlier_batch(&self, batch_size: usize) -> usize {
        2 * batch_size
    }

    /// The method for a `num_classes`-way classifier.
    fn build<B: AutodiffBackend>(&self, num_classes: usize) -> Box<dyn OodMethod<B>>;
}

/// What the registry is walked with ([`registry`]).
pub trait Visitor {
    /// One registered method: its config name, a one-line description and its type.
    fn method<M: OodMethodDef>(&mut self, name: &'static str, about: &'static str);
}

/// Every OOD method, by config name. **One line per method.**
pub fn registry(v: &mut impl Visitor) {
    v.method::<supervised::Supervised>("supervised", "cross-entropy on the ID data");
    v.method::<oe::OutlierExposure>("oe", "Outlier Exposure (Hendrycks et al., ICLR 2019)");
    v.method::<energy_oe::EnergyOe>("energy_oe", "energy-bounded OE (Liu et al., NeurIPS 2020)");
    v.method::<mixoe::MixOe>(
        "mixoe",
        "Mixture Outlier Exposure (Zhang et al., WACV 2023)",
    );
    v.method::<logitnorm::LogitNorm>("logitnorm", "logit normalisation (Wei et al., ICML 2022)");
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
