//! The [`Family`] trait: what a method family (OOD classifier, category discovery, open-set
//! SSL, ...) gives the one training loop ([`crate::run::driver`]).
//!
//! The driver owns everything around a step: the run folder, seeding, resume, the learning
//! rate, the progress bar, TensorBoard, the NaN guard, the optimiser step, checkpoints and
//! `checkpoints/best/`, Ctrl-C, and the final `metrics.json`. A family says what one step
//! computes, how its data are positioned, what its evaluation measures and what it keeps
//! besides the model and optimiser. A family in turn delegates the loss to one of its
//! methods (`families/<family>/methods/*.rs`).

use std::path::Path;

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_data::Rng;

use crate::run::optim::Schedule;
use crate::run::tb::TbLogger;

/// What one step computed, before the backward pass.
pub struct StepLoss<B: Backend> {
    /// The scalar to minimise, shape `[1]`.
    pub loss: Tensor<B, 1>,
    /// `(TensorBoard tag, value)` logged at every step (`loss/ce`, `train/mask_ratio`),
    /// shape `[1]` each.
    pub terms: Vec<(String, Tensor<B, 1>)>,
    /// Values the family accumulates over an epoch but does not log per step (e.g. the
    /// number of correctly classified training images), shape `[1]` each.
    pub stats: Vec<Tensor<B, 1>>,
}

/// The values of a [`StepLoss`], read from the device in one transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct StepValues {
    /// Total loss.
    pub loss: f32,
    /// `(tag, value)` of each logged term.
    pub terms: Vec<(String, f32)>,
    /// The unlogged statistics, in the order the step gave them.
    pub stats: Vec<f32>,
}

impl StepValues {
    /// Reads every value of `out` with one device transfer.
    pub fn read<B: Backend>(out: &StepLoss<B>) -> Self {
        let mut all = vec![out.loss.clone().detach()];
        all.extend(out.terms.iter().map(|(_, v)| v.clone().detach()));
        all.extend(out.stats.iter().map(|v| v.clone().detach()));
        let read = Tensor::cat(all, 0)
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 data");
        let n = out.terms.len();
        Self {
            loss: read[0],
            terms: out
                .terms
                .iter()
                .map(|(t, _)| t.clone())
                .zip(read[1..=n].iter().copied())
                .collect(),
            stats: read[1 + n..].to_vec(),
        }
    }

    /// `tag = value, ...`, for error messages.
    pub fn terms_line(&self) -> String {
        self.terms
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An evaluation as the driver sees it.
pub trait Evaluated {
    /// The selection metric for `checkpoints/best/` (higher is better), when the family names
    /// one; the first evaluation, then every strictly better one, becomes the best.
    fn selection(&self) -> Option<f64> {
        None
    }

    /// The record kept with the best checkpoint (`checkpoints/best/best.json`).
    fn record(&self) -> Result<serde_json::Value>;

    /// A short line for the epoch summary (`test acc 97.10%`).
    fn line(&self) -> String;
}

/// A method family: the hooks the driver calls. Generic over the autodiff backend, as burn's
/// modules are (associated types rather than boxed modules: `Module` is not object-safe).
pub trait Family<B: AutodiffBackend> {
    /// The trained network (backbone plus the family's heads).
    type Model: AutodiffModule<B>;
    /// What an evaluation produces.
    type Eval: Evaluated;

    /// Optimisation steps in one epoch.
    fn steps_per_epoch(&self) -> usize;

    /// The learning rate of global step `step` on the run's `schedule`: warm-up then cosine
    /// ([`Schedule::cosine`]) unless the family follows another curve.
    fn lr(&self, step: usize, schedule: &Schedule) -> f64 {
        schedule.cosine(step)
    }

    /// Positions the data so that the next step draws batch `first` of `epoch` (0 at the
    /// start of an epoch; more when a run resumes from a mid-epoch checkpoint).
    fn start_epoch(&mut self, epoch: usize, first: usize) -> Result<()>;

    /// One forward pass and loss on the next batch (`epoch` 0-based, `step` the global
    /// step). `rng` is the run's checkpointed generator for the method's own randomness.
    fn step(
        &mut self,
        model: &Self::Model,
        epoch: usize,
        step: usize,
        rng: &mut Rng,
    ) -> Result<StepLoss<B>>;

    /// Called after the optimiser step with the updated model (EMA, queues).
    fn after_update(&mut self, _model: &Self::Model) {}

    /// Called with the values of every finished step (epoch statistics).
    fn record(&mut self, _values: &StepValues) {}

    /// Ends an epoch: logs the family's epoch statistics to TensorBoard at `step` and
    /// returns the summary shown in the epoch line (`loss 0.1234, train acc 97.00%`).
    fn end_epoch(&mut self, tb: &mut TbLogger, step: usize, seconds: f64) -> String;

    /// Evaluate every this many steps during training (0: only at the end).
    fn eval_every_steps(&self) -> usize;

    /// Evaluates the model the family reports (the live model, or e.g. its EMA) after
    /// `step` steps and logs the result to TensorBoard.
    fn evaluate(
        &mut self,
        model: &Self::Model,
        step: usize,
        tb: &mut TbLogger,
    ) -> Result<Self::Eval>;

    /// Writes the weights behind an evaluation into `dir` (for `checkpoints/best/`).
    fn save_evaluated(&self, _model: &Self::Model, _dir: &Path) -> Result<()> {
        Ok(())
    }

    /// Re-applies what loading a checkpoint resets (frozen layers).
    fn loaded(&self, model: Self::Model) -> Self::Model {
        model
    }

    /// Writes the family's own state into a checkpoint folder being filled.
    fn save_extras(&self, _dir: &Path, _step: usize) -> Result<()> {
        Ok(())
    }

    /// Restores what [`Family::save_extras`] wrote, for a checkpoint at `step` whose model is
    /// `model`. Returns the best-evaluation record a checkpoint of an older version kept in
    /// the family's own files, if any.
    fn load_extras(
        &mut self,
        _dir: &Path,
        _model: &Self::Model,
        _step: usize,
    ) -> Result<Option<crate::run::checkpoint::Best>> {
        Ok(None)
    }

    /// Writes the final `metrics.json` and `report.md` from the final evaluation, the best
    /// evaluation (if the family selects one) and the wall time; returns the summary.
    fn finish(
        &mut self,
        eval: Self::Eval,
        best: Option<&crate::run::checkpoint::Best>,
        train_seconds: f64,
        run_dir: &Path,
    ) -> Result<String>;
}
