//! Detector hyper-parameters chosen on validation sets (`eval.search`): every candidate of
//! a detector's sweep list fitted in turn and scored on `[data.id_val]` against
//! `[[data.ood_val]]`, the best kept; and the detectors `"all"` named that cannot run here.

use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_eval::detectors::search_grid;
use unseen_eval::metrics::ood_metrics;

use crate::config::ExperimentConfig;
use crate::run::data::ExperimentData;
use crate::run::detect::{FittedDetector, Fitter};
use crate::run::infer::features_and_logits;
use crate::run::infer::Rows;
use crate::run::preprocess::{score_set, through_network, Collect};
use std::sync::Arc;
use unseen_data::ImageSet;

/// A detector `"all"` expanded to that could not run here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedDetector {
    /// The detector.
    pub name: String,
    /// Why it could not run.
    pub reason: String,
}

/// One candidate of a hyper-parameter search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchPoint {
    /// The candidate detector, with its parameters.
    pub detector: String,
    /// Mean AUROC of the ID validation set against each OOD validation set (absent when
    /// the candidate cannot run here, e.g. `k` larger than the training set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_auroc: Option<f64>,
    /// Why the candidate could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// A fitted detector and, when it was searched, every candidate tried.
pub type Searched = (FittedDetector, Vec<SearchPoint>);

/// Fits every detector of `eval.detectors`; with `eval.search`, each one named without
/// parameters is fitted once per candidate of [`search_grid`] and the candidate with the
/// best mean validation AUROC is kept (one candidate's state in memory at a time, besides
/// the best so far).
pub fn fit_or_search<B: Backend>(
    model: &Backbone<B>,
    cfg: &ExperimentConfig,
    data: &ExperimentData,
    cache_dir: Option<&Path>,
    device: &B::Device,
) -> Result<(Vec<Searched>, Vec<SkippedDetector>)> {
    let mut fitter = Fitter::new(model, cfg, &data.id_train, cache_dir, device)?;
    // Detectors named in the config must run; those only `"all"` brought in are skipped
    // (with the reason) when this network or training set cannot support them.
    let named = |spec: &str| cfg.eval.detectors.iter().any(|d| d.trim() == spec);
    let mut skipped = Vec::new();
    let specs = fitter.expand(&cfg.eval.detectors)?;
    let val = match (&data.val, cfg.eval.search) {
        (Some(v), true) => {
            let (mean, std, bs) = (
                &cfg.data.augment.mean,
                &cfg.data.augment.std,
                cfg.eval.batch_size,
            );
            let id = (
                v.id.clone(),
                features_and_logits(model, &v.id, mean, std, bs, device)?,
            );
            let mut ood = Vec::new();
            for (name, set) in &v.ood {
                ood.push((
                    name.clone(),
                    set.clone(),
                    features_and_logits(model, set, mean, std, bs, device)?,
                ));
            }
            Some((id, ood))
        }
        _ => None,
    };
    let mut out = Vec::new();
    for spec in specs {
        let grid = match val.as_ref().filter(|_| !spec.contains(':')) {
            Some(_) => search_grid(&spec.to_ascii_lowercase(), fitter.feature_dim()),
            None => vec![spec.clone()],
        };
        let Some((id, ood)) = val.as_ref().filter(|_| grid.len() > 1) else {
            let fitted = fitter.fit(&grid[0]).and_then(|mut fd| {
                if let Some(v) = &val {
                    fit_weights(model, &mut fd, v, cfg, device)?;
                }
                Ok(fd)
            });
            match fitted {
                Ok(fd) => out.push((fd, Vec::new())),
                Err(e) if !named(&spec) => skipped.push(SkippedDetector {
                    name: spec.clone(),
                    reason: format!("{e:#}"),
                }),
                Err(e) => return Err(e),
            }
            continue;
        };
        let mut points = Vec::new();
        let mut best: Option<(f64, FittedDetector)> = None;
        let mut first_error = None;
        for cand in &grid {
            let fitted = fitter.fit(cand).and_then(|mut fd| {
                let v = val.as_ref().expect("validation sets present");
                fit_weights(model, &mut fd, v, cfg, device).map(|_| fd)
            });
            let fd = match fitted {
                Ok(fd) => fd,
                Err(e) => {
                    // A candidate this network or training set cannot run (knn's k above
                    // the number of training images) is recorded and skipped.
                    points.push(SearchPoint {
                        detector: cand.clone(),
                        val_auroc: None,
                        skipped: Some(format!("{e:#}")),
                    });
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let det = fd.detector.as_ref();
            let (id_set, id_rows) = id;
            let id_scores = score_set(model, det, id_set, "data.id_val", id_rows, cfg, device)?;
            let mut sum = 0.0;
            for (name, set, rows) in ood {
                let where_ = format!("OOD validation set {name}");
                let s = score_set(model, det, set, &where_, rows, cfg, device)?;
                sum += ood_metrics(&id_scores, &s)
                    .with_context(|| format!("{cand}: validation metrics on {name}"))?
                    .auroc;
            }
            let auroc = sum / ood.len() as f64;
            points.push(SearchPoint {
                detector: fd.detector.name(),
                val_auroc: Some(auroc),
                skipped: None,
            });
            if best.as_ref().is_none_or(|(b, _)| auroc > *b) {
                best = Some((auroc, fd));
            }
        }
        match (best, first_error) {
            (Some((_, fd)), _) => out.push((fd, points)),
            (None, Some(e)) if !named(&spec) => skipped.push(SkippedDetector {
                name: spec.clone(),
                reason: format!("{e:#}"),
            }),
            (None, e) => return Err(e.expect("a non-empty grid failed")),
        }
    }
    Ok((out, skipped))
}

/// The ID validation set and the OOD validation sets, each with its cached outputs.
type ValSets = (
    (Arc<ImageSet>, (Rows, Rows)),
    Vec<(String, Arc<ImageSet>, (Rows, Rows))>,
);

/// For a detector whose score weighs components (`mds_ensemble`'s layers): the weights
/// fitted on the validation sets, ID against every OOD set together (Lee et al.), and
/// what the fit chose refreshed. Other detectors are left as they are.
fn fit_weights<B: Backend>(
    model: &Backbone<B>,
    fd: &mut FittedDetector,
    val: &ValSets,
    cfg: &ExperimentConfig,
    device: &B::Device,
) -> Result<()> {
    let det = fd.detector.as_mut();
    if det.num_components() == 0 {
        return Ok(());
    }
    let ((id_set, _), ood) = val;
    let (mean, std, bs) = (
        &cfg.data.augment.mean,
        &cfg.data.augment.std,
        cfg.eval.batch_size,
    );
    let components = Collect::Components;
    let id = through_network(
        model,
        &*det,
        id_set,
        "data.id_val",
        mean,
        std,
        bs,
        device,
        components,
    )?;
    let mut all_ood = Vec::new();
    for (name, set, _) in ood {
        let where_ = format!("OOD validation set {name}");
        all_ood.extend(through_network(
            model, &*det, set, &where_, mean, std, bs, device, components,
        )?);
    }
    let name = det.name();
    det.fit_weights(&id, &all_ood)
        .with_context(|| format!("{name}: fitting the layer weights on the validation sets"))?;
    fd.fitted = det.fitted();
    Ok(())
}
