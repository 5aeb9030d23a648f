//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `<run>/checkpoints/last/` holds `model.mpk` (weights and BatchNorm statistics, f32),
//! `optim.mpk` (momentum / Adam moments) and `state.json` (epochs done, global step, the
//! recipe generator's state). The data order needs no state: each epoch's shuffle and
//! augmentation are derived from `(seed, epoch)`. A checkpoint is written into a temporary
//! folder and renamed into place, so a crash never leaves a half-written `last/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::{AutodiffModule, Module};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::io::write_atomic;
use crate::optim::Optim;

/// The non-tensor state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimisation steps done.
    pub step: usize,
    /// State of the recipe's generator (xoshiro256++).
    pub rng: [u64; 4],
}

/// `<run>/checkpoints/last`.
pub fn last_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("last")
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Saves model, optimiser and state as `<run>/checkpoints/last`.
pub fn save<B: AutodiffBackend, M: AutodiffModule<B>>(
    run_dir: &Path,
    model: &M,
    optim: &Optim<B, M>,
    state: &TrainState,
) -> Result<()> {
    let root = run_dir.join("checkpoints");
    let tmp = root.join(format!(".tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).ok();
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    model
        .clone()
        .save_file(tmp.join("model"), &recorder())
        .with_context(|| format!("cannot write {}", tmp.join("model.mpk").display()))?;
    optim.save(&tmp.join("optim"))?;
    write_atomic(
        &tmp.join("state.json"),
        serde_json::to_string_pretty(state)?.as_bytes(),
    )?;
    let last = root.join("last");
    let old = root.join(".old");
    if old.exists() {
        std::fs::remove_dir_all(&old).ok();
    }
    if last.exists() {
        std::fs::rename(&last, &old).with_context(|| format!("cannot move {}", last.display()))?;
    }
    std::fs::rename(&tmp, &last)
        .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).ok();
    }
    Ok(())
}

/// The checkpoint folder to resume from: `last`, or `.old` when a crash happened between the
/// two renames of [`save`].
pub fn find(run_dir: &Path) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    for d in [root.join("last"), root.join(".old")] {
        if d.join("state.json").exists() {
            return Ok(d);
        }
    }
    anyhow::bail!(
        "{} holds no checkpoint (expected {}/state.json); nothing to resume or evaluate",
        run_dir.display(),
        root.join("last").display()
    )
}

/// Reads `state.json`.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid checkpoint state", p.display()))
}

/// Loads weights saved by [`save`] into a freshly built model of the same architecture.
pub fn load_model<B: Backend, M: Module<B>>(dir: &Path, model: M, device: &B::Device) -> Result<M> {
    model
        .load_file(dir.join("model"), &recorder(), device)
        .with_context(|| format!("cannot load weights {}", dir.join("model.mpk").display()))
}
