//! The category-discovery methods and their registry. Each file is one paper's loss on the
//! shared GCD model ([`super::model::GcdModel`]: backbone, projector, prototypes) and says how
//! the method predicts (its prototype classifier, or semi-supervised k-means). Its parameter
//! struct holds the method's keys of `[gcd]` (the family's own keys are
//! [`super::config::GcdSection`]); unknown keys are rejected.
//!
//! Adding a method: a loss in `crates/losses`, a file here implementing [`GcdMethod`] and
//! [`GcdMethodDef`], a config, and one line in [`registry`] (`docs/adding-a-method.md`).

pub mod gcd;
pub mod protogcd;
pub mod simgcd;

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::{GcdForward, GcdModel};

/// One training batch's labels, on the device: two views of `n` images, view-major.
pub struct GcdBatch<B: Backend> {
    /// Labels `[n]` (meaningful where `labelled`).
    pub labels: Tensor<B, 1, Int>,
    /// Whether each image is labelled `[n]`.
    pub labelled: Tensor<B, 1, Bool>,
    /// The same as 0/1 floats `[n]`.
    pub labelled_f: Tensor<B, 1>,
    /// Images in the batch (each has two views).
    pub n: usize,
}

/// A loss and its named terms (`loss/<name>` in TensorBoard), shape `[1]` each.
pub type Loss<B> = (Tensor<B, 1>, Vec<(&'static str, Tensor<B, 1>)>);

/// A category-discovery method on one backend.
pub trait GcdMethod<B: AutodiffBackend> {
    /// The loss of one batch from the model's outputs `out` (`epoch` 0-based).
    fn loss(
        &self,
        out: GcdForward<B>,
        model: &GcdModel<B>,
        batch: GcdBatch<B>,
        epoch: usize,
    ) -> Loss<B>;
}

/// A method's parameters (its keys of `[gcd]`) and what the family needs to know of it.
pub trait GcdMethodDef: DeserializeOwned + Serialize + 'static {
    /// Checks the values (ranges) beyond their types.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// The official code's name of its cosine classifier (`last_layer`, `prototype_layer`);
    /// `None` when the method predicts with semi-supervised k-means on the backbone
    /// features instead (then no OOD scores either).
    fn classifier(&self) -> Option<&'static str>;

    /// The export layout's name (`FILE.json` `heads.layout`).
    fn layout(&self) -> &'static str;

    /// The method.
    fn build<B: AutodiffBackend>(&self) -> Box<dyn GcdMethod<B>>;
}

/// What the registry is walked with ([`registry`]).
pub trait Visitor {
    /// One registered method: its config name, a one-line description and its type.
    fn method<M: GcdMethodDef>(&mut self, name: &'static str, about: &'static str);
}

/// Every category-discovery method, by config name. **One line per method.**
pub fn registry(v: &mut impl Visitor) {
    v.method::<gcd::Gcd>(
        "gcd",
        "GCD: contrastive + SupCon, then SS-k-means (Vaze et al., CVPR 2022)",
    );
    v.method::<simgcd::SimGcd>(
        "simgcd",
        "SimGCD: parametric self-distillation (Wen et al., ICCV 2023)",
    );
    v.method::<protogcd::ProtoGcd>(
        "protogcd",
        "ProtoGCD: unified prototypes (Ma et al., TPAMI 2025)",
    );
}

/// `sup_weight` must lie in `[0, 1]`.
pub fn check_sup_weight(w: Option<f64>) -> Result<(), String> {
    match w {
        Some(w) if !(0.0..=1.0).contains(&w) => {
            Err(format!("sup_weight must be in [0, 1], got {w}"))
        }
        _ => Ok(()),
    }
}
