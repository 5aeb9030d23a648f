//! `trainer predict`: one post-hoc detector, fitted on the ID training set, applied to a
//! folder of images, for people who deploy a detector rather than benchmark it.
//!
//! The threshold is the score that keeps the fraction `tpr` of the ID test images (the
//! largest `t` with `#{ID scores >= t} >= tpr · N`); an image scoring below it is called
//! OOD. The CSV has one row per image, in sorted path order:
//! `path,class,class_name,score,is_ood` (`class` is the head's arg-max, empty for a
//! headless network).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use unseen_backbones::Backbone;
use unseen_eval::report::csv_field;

use crate::config::ExperimentConfig;
use crate::run::detect::fit_detectors;
use crate::run::infer::{check_finite, features_and_logits};
use crate::run::io::write_atomic;
use crate::run::preprocess::score_set;

/// What to predict and where to write it.
#[derive(Debug, Clone)]
pub struct PredictOptions {
    /// A trained run whose last checkpoint is the network (else the config's `model.weights`).
    pub run: Option<PathBuf>,
    /// The folder of images (searched recursively).
    pub images: PathBuf,
    /// Detector spec, e.g. `knn` or `energy:T=2`.
    pub detector: String,
    /// Fraction of ID test images the threshold keeps (0 < tpr <= 1).
    pub tpr: f64,
    /// Output CSV.
    pub out: PathBuf,
    /// Replace `out` if it exists.
    pub overwrite: bool,
}

/// What [`predict`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictSummary {
    /// Images scored.
    pub images: usize,
    /// Of which called OOD.
    pub flagged: usize,
    /// The threshold.
    pub threshold: f32,
    /// ID test images the threshold was set on.
    pub id_images: usize,
    /// The detector's name.
    pub detector: String,
}

/// The largest `t` among `id` with at least `tpr · n` ID scores `>= t`.
///
/// # Errors
/// `tpr` outside `(0, 1]`, no ID scores.
pub fn threshold_at_tpr(id: &[f32], tpr: f64) -> Result<f32> {
    if !(tpr > 0.0 && tpr <= 1.0) {
        bail!("--tpr must be in (0, 1], got {tpr}");
    }
    if id.is_empty() {
        bail!("no ID test image to set the threshold on");
    }
    let mut sorted = id.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let keep = ((tpr * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Ok(sorted[keep - 1])
}

/// Fits the detector, sets the threshold, scores the folder and writes the CSV.
pub fn predict<B: Backend>(
    cfg: &ExperimentConfig,
    opts: &PredictOptions,
    device: &B::Device,
) -> Result<PredictSummary> {
    if opts.out.exists() && !opts.overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace it",
            opts.out.display()
        );
    }
    threshold_at_tpr(&[0.0], opts.tpr)?;
    if opts.run.is_some() && !crate::families::trains_backbone_head(&cfg.recipe)? {
        bail!(
            "`{}` is a category-discovery run: its backbone's linear head is never trained (it \
             classifies with cosine prototypes), so predict's classes and logit scores would be \
             meaningless; `trainer eval --run RUN --save-scores` gives its OOD scores and \
             predictions, `trainer embed --run RUN` its features and prototype logits",
            cfg.recipe
        );
    }
    let load = |train: bool| {
        crate::run::data::load_dataset(
            &cfg.data.id,
            train,
            cfg.seed,
            "data.id",
            &cfg.data.preprocess,
        )
        .map(Arc::new)
    };
    let (train, test) = (load(true)?, load(false)?);
    let model: Backbone<B> = match &opts.run {
        Some(run) => crate::families::load_backbone::<B>(cfg, run, device)?,
        None => crate::families::build::build_backbone::<B>(
            &cfg.model,
            cfg.model.num_classes.unwrap_or(train.num_classes()),
            train.height,
            cfg.seed,
            device,
            false,
        )?,
    };
    // A run's training features are cached in its folder (as `trainer eval` does).
    let cache = opts.run.as_ref().map(|r| r.join("cache"));
    let fitted = fit_detectors(
        &model,
        std::slice::from_ref(&opts.detector),
        cfg,
        &train,
        cache.as_deref(),
        device,
    )?;
    let [det] = fitted.as_slice() else {
        bail!(
            "--detector must name exactly one detector (not `all`), got {:?}",
            opts.detector
        );
    };
    let det = &det.detector;
    let (mean, std, bs) = (
        &cfg.data.augment.mean,
        &cfg.data.augment.std,
        cfg.eval.batch_size,
    );
    let rows = features_and_logits(&model, &test, mean, std, bs, device)?;
    let id = score_set(
        &model,
        det.as_ref(),
        &test,
        "the ID test set",
        &rows,
        cfg,
        device,
    )?;
    let threshold = threshold_at_tpr(&id, opts.tpr)?;

    let (set, paths) = unseen_data::formats::load_image_files(
        &opts.images,
        cfg.model.in_channels,
        &cfg.data.preprocess,
    )
    .with_context(|| format!("--images {}", opts.images.display()))?;
    if (set.height, set.width) != (train.height, train.width) {
        bail!(
            "the images in {} are {}x{} but the network was trained on {}x{}; set \
             [data.preprocess] resize/center_crop in the config",
            opts.images.display(),
            set.height,
            set.width,
            train.height,
            train.width
        );
    }
    let set = Arc::new(set);
    let rows = features_and_logits(&model, &set, mean, std, bs, device)?;
    let where_ = format!("--images {}", opts.images.display());
    check_finite("the feature", &where_, &rows.0)?;
    check_finite("the logit", &where_, &rows.1)?;
    let scores = score_set(&model, det.as_ref(), &set, &where_, &rows, cfg, device)?;
    let l = rows.1;
    let classes = if l.width > 0 { Some(l.argmax()) } else { None };
    let mut csv = Vec::new();
    writeln!(csv, "path,class,class_name,score,is_ood")?;
    let mut flagged = 0;
    for (i, (path, score)) in paths.iter().zip(&scores).enumerate() {
        let is_ood = *score < threshold;
        flagged += usize::from(is_ood);
        let (class, name) = match &classes {
            Some(c) => (
                c[i].to_string(),
                train.class_names.get(c[i]).cloned().unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        writeln!(
            csv,
            "{},{class},{},{score:e},{}",
            csv_field(&display_path(path)),
            csv_field(&name),
            u8::from(is_ood)
        )?;
    }
    write_atomic(&opts.out, &csv)?;
    Ok(PredictSummary {
        images: paths.len(),
        flagged,
        threshold,
        id_images: id.len(),
        detector: det.name(),
    })
}

fn display_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten ID scores 1..=10: keeping 95% needs ceil(9.5) = 10 of them, so t = 1; keeping
    /// 50% needs 5, so t = 6 (scores 6..=10 are kept).
    #[test]
    fn threshold_keeps_the_asked_fraction() {
        let id: Vec<f32> = (1..=10).map(|v| v as f32).collect();
        assert_eq!(threshold_at_tpr(&id, 0.95).unwrap(), 1.0);
        assert_eq!(threshold_at_tpr(&id, 0.5).unwrap(), 6.0);
        assert_eq!(threshold_at_tpr(&id, 1.0).unwrap(), 1.0);
        assert_eq!(threshold_at_tpr(&id, 0.1).unwrap(), 10.0);
        assert!(threshold_at_tpr(&id, 0.0).is_err());
        assert!(threshold_at_tpr(&id, 1.5).is_err());
        assert!(threshold_at_tpr(&[], 0.9).is_err());
    }
}
