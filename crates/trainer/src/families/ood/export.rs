//! `trainer export` of an OOD-classifier run: the backbone under its source library's names
//! (torchvision, timm, the reference WideResNets), the sample holding the logits.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::*;
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::data::ExperimentData;
use crate::run::export::{
    export_paths, sample_input, sample_map, state_dict, write_files, ExportInfo,
};

/// Exports `model` (trained on `data` for `steps` steps) to `out`.
pub fn export<B: Backend>(
    cfg: &ExperimentConfig,
    model: &Backbone<B>,
    data: &ExperimentData,
    steps: usize,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<PathBuf>> {
    export_paths(out, overwrite)?;
    let info = ExportInfo::new(cfg, data.id_train.class_names.clone(), &data.id_test)?;
    let weights = state_dict(model, steps as i64)?;
    let (batch, x) = sample_input::<B>(&data.id_test, cfg, device)?;
    let (_, logits) = model.forward(x);
    let sample = sample_map(&batch, [("logits", Some(logits))]);
    write_files(out, &info, &weights, &sample)
}

/// Loads a run's checkpoint (`which`) and exports it ([`export`]).
///
/// # Errors
/// No such checkpoint, data that cannot be loaded, or an existing output without
/// `overwrite`.
pub fn export_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<PathBuf>> {
    export_paths(out, overwrite)?;
    let (model, data, step) = super::load_run::<B>(cfg, run_dir, which, device)?;
    export::<B>(cfg, &model, &data, step, out, overwrite, device)
}
