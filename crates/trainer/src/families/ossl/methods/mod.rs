//! The open-set SSL methods and their registry. Each file is one paper's loss on USB's
//! one-pass batch `cat(x_lb, x_ulb_w, x_ulb_s)` ([`super::model::OsslOutput`]), says which
//! heads it needs besides the backbone's closed-set head, and how a model without an open-set
//! head predicts "unknown". Its parameter struct holds the method's keys of `[ossl]` (the
//! family's own keys are [`super::config::OsslSection`]); unknown keys are rejected.
//!
//! Adding a method: a loss in `crates/losses`, a file here implementing [`OsslMethod`] and
//! [`OsslMethodDef`], a config, and one line in [`registry`] (`docs/adding-a-method.md`).

pub mod fixmatch;
pub mod iomatch;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::OsslOutput;

/// The sizes of one batch: `labelled` images (one weak view) then `unlabelled` images twice
/// (weak views, then strong views), in one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct BatchSizes {
    /// `B`.
    pub labelled: usize,
    /// `μB`.
    pub unlabelled: usize,
}

impl BatchSizes {
    /// Splits rows `[B + 2μB, ...]` into the labelled, weak and strong parts.
    pub fn split<B: Backend>(&self, t: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 2>) {
        let (b, n) = (self.labelled, self.unlabelled);
        (
            t.clone().narrow(0, 0, b),
            t.clone().narrow(0, b, n),
            t.narrow(0, b + n, n),
        )
    }
}

/// A loss and its TensorBoard-tagged terms (`loss/sup`, `train/mask_ratio`), shape `[1]`
/// each.
pub type Loss<B> = (Tensor<B, 1>, Vec<(&'static str, Tensor<B, 1>)>);

/// An open-set SSL method on one backend. It may keep state across steps (a queue), which
/// is checkpointed through [`OsslMethod::state`].
pub trait OsslMethod<B: AutodiffBackend> {
    /// The loss of one batch from the model's outputs on `cat(x_lb, x_ulb_w, x_ulb_s)`,
    /// `labels` of the labelled part, `epoch` 0-based.
    fn loss(
        &mut self,
        out: OsslOutput<B>,
        labels: Tensor<B, 1, Int>,
        sizes: BatchSizes,
        epoch: usize,
    ) -> Loss<B>;

    /// The method's state to checkpoint (JSON), if it has any.
    fn state(&self) -> Option<serde_json::Value> {
        None
    }

    /// Restores [`OsslMethod::state`].
    fn restore(&mut self, _state: serde_json::Value, _device: &B::Device) -> Result<()> {
        Ok(())
    }
}

/// A method's parameters (its keys of `[ossl]`) and what the family needs to know of it.
pub trait OsslMethodDef: DeserializeOwned + Serialize + 'static {
    /// Checks the values (ranges) beyond their types.
    fn check(&self) -> Result<(), String> {
        Ok(())
    }

    /// IOMatch's heads (projector, one-vs-all and open-set heads) with this projection size,
    /// or `None` for the bare backbone.
    fn heads(&self) -> Option<usize> {
        None
    }

    /// The confidence below which a model without an open-set head predicts "unknown".
    fn p_cutoff(&self) -> f64;

    /// The method for `num_classes` seen classes.
    fn build<B: AutodiffBackend>(
        &self,
        num_classes: usize,
        device: &B::Device,
    ) -> Box<dyn OsslMethod<B>>;
}

/// What the registry is walked with ([`registry`]).
pub trait Visitor {
    /// One registered method: its config name, a one-line description and its type.
    fn method<M: OsslMethodDef>(&mut self, name: &'static str, about: &'static str);
}

/// Every open-set SSL method, by config name. **One line per method.**
pub fn registry(v: &mut impl Visitor) {
    v.method::<fixmatch::FixMatch>("fixmatch", "FixMatch (Sohn et al., NeurIPS 2020)");
    v.method::<iomatch::IoMatch>("iomatch", "IOMatch (Li et al., ICCV 2023)");
}
