//! `trainer export` of an open-set SSL run: its EMA model, FixMatch as the bare backbone,
//! IOMatch as the reference's `IOMatchNet` state dict.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::*;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::export::{
    export_paths, sample_input, sample_map, state_dict, write_files, ExportInfo,
};

/// Exports an open-set SSL run's EMA model (the one evaluated; the live weights when the
/// last checkpoint has no EMA for its step), of its last or best checkpoint (`which`). FixMatch: the backbone with its `K`-class closed-set
/// head under the usual names, loadable into the bare module. IOMatch: `IOMatchNet`'s state
/// dict (the backbone under `backbone.`, plus the projector, one-vs-all and open-set heads;
/// see [`ExportInfo::heads`]), so it loads into the reference's own module. The sample holds
/// `logits` and, for IOMatch, `logits_open` `[n, K + 1]` and `logits_mb` `[n, 2K]` of the
/// first 8 full-test images.
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
    let super::RunModel {
        model,
        data,
        step,
        ema,
        method,
        ..
    } = super::load_run::<B>(cfg, run_dir, which, device)?;
    let k = data.split.num_seen;
    let test = &data.full_test;
    let mut weights = state_dict(&model.backbone, step as i64)?;
    if let Some(h) = &model.heads {
        weights = weights
            .into_iter()
            .map(|(name, t)| (format!("backbone.{name}"), t))
            .collect();
        weights.extend(h.torch_state_dict());
    }
    let mut info = ExportInfo::new(cfg, data.labelled.class_names.clone(), test)?;
    info.weights = match (ema, which) {
        (_, Which::Best) => "ema-best",
        (true, _) => "ema",
        (false, _) => "model",
    }
    .into();
    info.heads = model.heads.as_ref().map(|_| {
        serde_json::json!({
            "layout": "IOMatchNet",
            "proj_size": method.heads,
            "num_classes": k,
        })
    });
    let (batch, x) = sample_input::<B>(test, cfg, device)?;
    let o = model.forward(x);
    let sample = sample_map(
        &batch,
        [
            ("logits", Some(o.logits)),
            ("logits_open", o.open),
            ("logits_mb", o.ova),
        ],
    );
    write_files(out, &info, &weights, &sample)
}
