//! GCD evaluation, "v2" protocol: one Hungarian matching over all classes, then the
//! accuracy of all, old-class and new-class images, on the unlabelled training images (the
//! papers' transductive number) and on the test split. Model selection never looks at
//! new-class labels: the last epoch is evaluated. `[gcd] estimate_k = true` adds GCD's
//! class-number estimate (Brent search on k-means accuracy of the labelled subset). OOD sets
//! in `[[data.ood]]` are scored ProtoGCD-style (all old and new classes count as known) with
//! MSP, MaxLogit, Energy, CE-to-uniform, the top-1/top-2 probability ratio and the margin.

use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use burn::prelude::*;
use serde::Serialize;
use unseen_data::Rng;
use unseen_eval::estimate_k::{estimate_k_gcd, EstimateKConfig};
use unseen_eval::gcd::gcd_accuracy_v2;
use unseen_eval::kmeans::{
    l2_normalize_rows, nearest_centers, semi_supervised_kmeans, SsKMeansConfig,
};

use super::config::GcdSection;
use super::model::{features_logits, GcdModel};
use super::GcdData;
use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::io::write_atomic;

/// All / old / new accuracy (v2 protocol); `None` where a subset is empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccuracyJson {
    /// All images.
    pub all: f64,
    /// Old-class images.
    pub old: Option<f64>,
    /// New-class images.
    pub new: Option<f64>,
}

/// The `gcd` section of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdMetrics {
    /// How the accuracy is computed.
    pub protocol: String,
    /// How predictions are made (`argmax of the prototype logits` or `semi-supervised
    /// k-means`).
    pub predictor: String,
    /// Old classes.
    pub old_classes: usize,
    /// New classes.
    pub new_classes: usize,
    /// Labelled training images.
    pub labelled: usize,
    /// On the unlabelled training images (the papers' number).
    pub unlabelled: AccuracyJson,
    /// On the test split.
    pub test: AccuracyJson,
    /// Semi-supervised k-means on the backbone features of a prototype method, on the
    /// unlabelled training images (`[gcd] backbone_kmeans = true`).
    pub backbone_kmeans: Option<AccuracyJson>,
    /// The prototype classifier's state (prototype methods).
    pub head: Option<HeadStats>,
    /// GCD's class-number estimate, when asked.
    pub estimated_k: Option<usize>,
    /// The true number of classes.
    pub true_k: usize,
}

/// The prototype classifier at an evaluation: what tells a head that learns from one that
/// cannot (prototypes that never leave their initial directions, or that no image picks).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HeadStats {
    /// Mean L2 norm of the unnormalised prototypes (`weight_v`): the gradient through the
    /// normalisation shrinks as its inverse.
    pub prototype_norm_mean: f64,
    /// Smallest prototype norm.
    pub prototype_norm_min: f64,
    /// Largest prototype norm.
    pub prototype_norm_max: f64,
    /// Largest cosine between two prototypes.
    pub prototype_cos_max: f64,
    /// Mean cosine between two different prototypes (`-1/(K-1)` for a regular simplex).
    pub prototype_cos_mean: f64,
    /// Prototypes that are the argmax of at least one unlabelled training image.
    pub prototypes_used: usize,
}

impl HeadStats {
    /// The statistics of prototypes `[k, d]` (row-major) and the predicted classes.
    pub fn new(prototypes: &[f32], k: usize, predictions: &[usize]) -> Self {
        let d = prototypes.len() / k.max(1);
        let rows: Vec<&[f32]> = prototypes.chunks_exact(d.max(1)).collect();
        let norms: Vec<f64> = rows
            .iter()
            .map(|r| r.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
            .collect();
        let (mut cos_max, mut cos_sum, mut pairs) = (f64::NEG_INFINITY, 0.0, 0usize);
        for i in 0..k {
            for j in (i + 1)..k {
                let dot: f64 = rows[i]
                    .iter()
                    .zip(rows[j])
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let c = dot / (norms[i] * norms[j]).max(1e-12);
                cos_max = cos_max.max(c);
                cos_sum += c;
                pairs += 1;
            }
        }
        let mut used = vec![false; k];
        for &p in predictions {
            if p < k {
                used[p] = true;
            }
        }
        Self {
            prototype_norm_mean: norms.iter().sum::<f64>() / k.max(1) as f64,
            prototype_norm_min: norms.iter().copied().fold(f64::INFINITY, f64::min),
            prototype_norm_max: norms.iter().copied().fold(0.0, f64::max),
            prototype_cos_max: if pairs > 0 { cos_max } else { 0.0 },
            prototype_cos_mean: if pairs > 0 {
                cos_sum / pairs as f64
            } else {
                0.0
            },
            prototypes_used: used.iter().filter(|&&u| u).count(),
        }
    }
}

/// One OOD score on one OOD set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdOodRow {
    /// OOD set.
    pub dataset: String,
    /// Score (`msp`, `maxlogit`, `energy`, `ce_uniform`, `ratio`, `margin`).
    pub score: String,
    /// Metrics (OOD positive for FPR@95, as the rest of Unseen).
    pub metrics: unseen_eval::OodMetrics,
}

/// `metrics.json` of a GCD run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdMetricsFile {
    /// Run name.
    pub run: String,
    /// Recipe.
    pub recipe: String,
    /// Device.
    pub device: String,
    /// Seed.
    pub seed: u64,
    /// Category-discovery accuracy.
    pub gcd: GcdMetrics,
    /// ProtoGCD's OOD extension (empty without `[[data.ood]]`).
    pub ood: Vec<GcdOodRow>,
    /// Wall time of training and evaluation (absent from `trainer eval`).
    pub train_seconds: Option<f64>,
}

/// A finished evaluation.
pub struct GcdEvaluation {
    /// What goes to `metrics.json`.
    pub metrics: GcdMetricsFile,
    /// Unlabelled-train and test predictions: (set, index in the set, label, is_old,
    /// prediction).
    pub predictions: Vec<(&'static str, usize, usize, bool, usize)>,
}

impl GcdEvaluation {
    /// Human-readable summary.
    pub fn summary(&self, m: &GcdMetricsFile) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v));
        let g = &m.gcd;
        let mut s = format!(
            "{} [{}]: {} old + {} new classes ({})\n{:<12} {:>7} {:>7} {:>7}\n",
            m.run, m.recipe, g.old_classes, g.new_classes, g.protocol, "set", "All", "Old", "New"
        );
        for (name, a) in [("unlabelled", g.unlabelled), ("test", g.test)] {
            s += &format!(
                "{:<12} {:>7} {:>7} {:>7}\n",
                name,
                f(Some(a.all)),
                f(a.old),
                f(a.new)
            );
        }
        if let Some(a) = g.backbone_kmeans {
            s += &format!(
                "{:<12} {:>7} {:>7} {:>7}  (ss-k-means on the backbone)\n",
                "unlabelled",
                f(Some(a.all)),
                f(a.old),
                f(a.new)
            );
        }
        if let Some(h) = g.head {
            s += &format!(
                "prototypes: norm {:.3} ({:.3}-{:.3}), max cosine {:.3}, {} of {} used\n",
                h.prototype_norm_mean,
                h.prototype_norm_min,
                h.prototype_norm_max,
                h.prototype_cos_max,
                h.prototypes_used,
                g.true_k
            );
        }
        if let Some(k) = g.estimated_k {
            s += &format!("estimated K = {k} (true K = {})\n", g.true_k);
        }
        for r in &m.ood {
            s += &format!(
                "OOD {:<20} {:<10} AUROC {:.2} FPR@95 {:.2}\n",
                r.dataset,
                r.score,
                100.0 * r.metrics.auroc,
                100.0 * r.metrics.fpr95
            );
        }
        if let Some(t) = m.train_seconds {
            s += &format!("{t:.1}s\n");
        }
        s
    }

    /// `report.md` for the metrics `m` (the evaluation's, with the run's wall time).
    pub fn report_markdown(&self, m: &GcdMetricsFile) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v));
        let g = &m.gcd;
        let mut s = format!(
            "# {}\n\nRecipe `{}`, seed {}, device `{}`; {} old + {} new classes, {} labelled \
             training images. Predictions: {}. Accuracy protocol: {}.\n\n\
             | set | All | Old | New |\n|---|---|---|---|\n",
            m.run,
            m.recipe,
            m.seed,
            m.device,
            g.old_classes,
            g.new_classes,
            g.labelled,
            g.predictor,
            g.protocol
        );
        for (name, a) in [
            ("unlabelled (the papers' number)", g.unlabelled),
            ("test", g.test),
        ] {
            s += &format!(
                "| {name} | {} | {} | {} |\n",
                f(Some(a.all)),
                f(a.old),
                f(a.new)
            );
        }
        if let Some(a) = g.backbone_kmeans {
            s += &format!(
                "| unlabelled, semi-supervised k-means on the backbone features | {} | {} | {} |\n",
                f(Some(a.all)),
                f(a.old),
                f(a.new)
            );
        }
        if let Some(h) = g.head {
            s += &format!(
                "\nPrototypes: mean norm {:.3} (min {:.3}, max {:.3}); pairwise cosine mean {:.3}, \
                 max {:.3}; {} of {} are the prediction of at least one unlabelled image.\n",
                h.prototype_norm_mean,
                h.prototype_norm_min,
                h.prototype_norm_max,
                h.prototype_cos_mean,
                h.prototype_cos_max,
                h.prototypes_used,
                g.true_k
            );
        }
        if let Some(k) = g.estimated_k {
            s += &format!("\nEstimated number of classes: {k} (true: {}).\n", g.true_k);
        }
        if !m.ood.is_empty() {
            s += "\n## OOD sets (every old and new class counts as known)\n\n\
                  | OOD set | score | AUROC | FPR@95 |\n|---|---|---|---|\n";
            for r in &m.ood {
                s += &format!(
                    "| {} | {} | {:.2} | {:.2} |\n",
                    r.dataset,
                    r.score,
                    100.0 * r.metrics.auroc,
                    100.0 * r.metrics.fpr95
                );
            }
        }
        s
    }

    /// Writes `predictions.csv` (`set,index,label,is_old,prediction`, for the unlabelled
    /// training images and the test images), from which the accuracy can be recomputed.
    ///
    /// # Errors
    /// An unwritable file.
    pub fn write_predictions(&self, path: &Path) -> Result<()> {
        let mut csv = String::from("set,index,label,is_old,prediction\n");
        for (set, i, y, old, p) in &self.predictions {
            csv += &format!("{set},{i},{y},{},{p}\n", *old as u8);
        }
        write_atomic(path, csv.as_bytes())
    }

    /// Writes `metrics.json` and `report.md` for the metrics `m` into `dir`.
    ///
    /// # Errors
    /// Unwritable files.
    pub fn write(&self, m: &GcdMetricsFile, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join("metrics.json"),
            (serde_json::to_string_pretty(m)? + "\n").as_bytes(),
        )?;
        write_atomic(&dir.join("report.md"), self.report_markdown(m).as_bytes())
    }
}

fn acc_json(a: unseen_eval::gcd::GcdAccuracy) -> AccuracyJson {
    AccuracyJson {
        all: a.all,
        old: a.old,
        new: a.new,
    }
}

/// ProtoGCD's OOD scores (Ma et al., TPAMI 2025) of cosine logits `[n, K]`, through the
/// post-hoc [`unseen_eval::detectors::Detector`]s: MSP, CE-to-uniform, the top-1/top-2
/// probability ratio and margin of the softmax at the training temperature 0.1 (logits
/// scaled by 10), MaxLogit of the cosine logits, and the energy `0.1·logsumexp(l / 0.1)`
/// (scored as `logsumexp(l / 0.1)`: a positive factor changes no ranking, hence no AUROC
/// or FPR). Higher = more in-distribution.
///
/// # Errors
/// Non-finite logits.
fn ood_scores(logits: &[f32], k: usize) -> Result<Vec<(&'static str, Vec<f32>)>> {
    let scaled: Vec<f32> = logits.iter().map(|v| v / 0.1).collect();
    let mut out = Vec::new();
    for (name, input) in [
        ("msp", &scaled),
        ("maxlogit", &logits.to_vec()),
        ("energy", &scaled),
        ("ce_uniform", &scaled),
        ("ratio", &scaled),
        ("margin", &scaled),
    ] {
        let det = unseen_eval::detectors::detector_from_name(name)?;
        out.push((name, det.score(input, k, None)?));
    }
    Ok(out)
}

/// Evaluates a trained model (see the module docs). `kmeans`: the method predicts with
/// semi-supervised k-means on the backbone features (and scores no OOD sets) rather than
/// with its prototype classifier.
pub fn evaluate<B: Backend>(
    model: &GcdModel<B>,
    cfg: &ExperimentConfig,
    sec: &GcdSection,
    data: &GcdData,
    kmeans: bool,
    device_label: &str,
    device: &B::Device,
) -> Result<GcdEvaluation> {
    let bs = cfg.eval.batch_size.max(1);
    let unl = Arc::new(data.split.unlabelled.clone());
    let test = Arc::new(data.test.set.clone());
    let (feat_u, logits_u) = features_logits(model, &unl, cfg, bs, device)?;
    let (feat_t, logits_t) = features_logits(model, &test, cfg, bs, device)?;
    let k = data.split.num_classes();
    let y_u: Vec<usize> = unl.labels.iter().map(|&l| l as usize).collect();
    let y_t: Vec<usize> = test.labels.iter().map(|&l| l as usize).collect();
    let mut rng = Rng::stream(cfg.seed, "gcd-eval");
    let mut uniform = || rng.next_f64();
    // L2-normalised backbone features of labelled + unlabelled training images, with the
    // labelled images' classes: the input of semi-supervised k-means (GCD's
    // test_kmeans_semi_sup) and of the class-number estimate. Computed once, when needed.
    let probe = !kmeans && sec.backbone_kmeans;
    let clustering_input = if kmeans || sec.estimate_k || probe {
        let lab = Arc::new(data.split.labelled.clone());
        let feat_l = features_logits(model, &lab, cfg, bs, device)?.0;
        let d = feat_l.width;
        let mut x = feat_l.values;
        x.extend_from_slice(&feat_u.values);
        l2_normalize_rows(&mut x, d)?;
        let labels: Vec<Option<usize>> = lab
            .labels
            .iter()
            .map(|&l| Some(l as usize))
            .chain(std::iter::repeat_n(None, unl.len()))
            .collect();
        Some((x, d, labels))
    } else {
        None
    };
    let (pred_u, pred_t, predictor) = match (&clustering_input, kmeans) {
        (Some((x, d, labels)), true) => {
            // Test images go to the nearest centre.
            let mut km = SsKMeansConfig::new(k);
            km.n_init = sec.kmeans_n_init;
            let res = semi_supervised_kmeans(x, *d, labels, &km, &mut uniform)?;
            let pred_u = res.assignments[data.split.labelled.len()..].to_vec();
            let mut xt = feat_t.values.clone();
            l2_normalize_rows(&mut xt, *d)?;
            let pred_t = nearest_centers(&xt, *d, &res.centers)?;
            (
                pred_u,
                pred_t,
                "semi-supervised k-means on backbone features",
            )
        }
        _ => (
            logits_u.argmax(),
            logits_t.argmax(),
            "argmax of the prototype logits",
        ),
    };
    let backbone_kmeans = match (&clustering_input, probe) {
        (Some((x, d, labels)), true) => {
            let mut km = SsKMeansConfig::new(k);
            km.n_init = sec.kmeans_n_init;
            let res = semi_supervised_kmeans(x, *d, labels, &km, &mut uniform)?;
            let pred = &res.assignments[data.split.labelled.len()..];
            Some(acc_json(gcd_accuracy_v2(&y_u, pred, &data.split.is_old)?))
        }
        _ => None,
    };
    let head = (!kmeans).then(|| {
        let p = model
            .prototypes
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap_or_default();
        HeadStats::new(&p, k, &pred_u)
    });
    let acc_u = gcd_accuracy_v2(&y_u, &pred_u, &data.split.is_old)?;
    let acc_t = gcd_accuracy_v2(&y_t, &pred_t, &data.test.is_old)?;
    let estimated_k = match (&clustering_input, sec.estimate_k) {
        (Some((x, d, labels)), true) => {
            let mut ek = EstimateKConfig::new(sec.max_k.unwrap_or(2 * k));
            ek.n_init = sec.kmeans_n_init;
            Some(estimate_k_gcd(x, *d, labels, &ek, &mut uniform)?.k)
        }
        _ => None,
    };
    let mut ood = Vec::new();
    if !kmeans && !data.ood.is_empty() {
        let id_scores = ood_scores(&logits_t.values, k)?;
        for (name, set) in &data.ood {
            let o = features_logits(model, set, cfg, bs, device)?.1;
            for ((score, id), (_, od)) in id_scores.iter().zip(ood_scores(&o.values, k)?) {
                ood.push(GcdOodRow {
                    dataset: name.clone(),
                    score: score.to_string(),
                    metrics: unseen_eval::metrics::ood_metrics(id, &od)?,
                });
            }
        }
    }
    let mut predictions = Vec::new();
    for (i, (&y, &p)) in y_u.iter().zip(&pred_u).enumerate() {
        predictions.push(("unlabelled", i, y, data.split.is_old[i], p));
    }
    for (i, (&y, &p)) in y_t.iter().zip(&pred_t).enumerate() {
        predictions.push(("test", i, y, data.test.is_old[i], p));
    }
    Ok(GcdEvaluation {
        metrics: GcdMetricsFile {
            run: cfg.name.clone(),
            recipe: cfg.recipe.clone(),
            device: device_label.into(),
            seed: cfg.seed,
            gcd: GcdMetrics {
                protocol: "v2: one Hungarian matching over all classes, then All/Old/New".into(),
                predictor: predictor.into(),
                old_classes: data.split.num_old,
                new_classes: data.split.num_new(),
                labelled: data.num_labelled,
                unlabelled: acc_json(acc_u),
                test: acc_json(acc_t),
                backbone_kmeans,
                head,
                estimated_k,
                true_k: k,
            },
            ood,
            train_seconds: None,
        },
        predictions,
    })
}

/// `trainer eval` on a GCD run: re-evaluates the checkpoint `which` (the caller writes
/// the files, [`GcdEvaluation::write`] and [`GcdEvaluation::write_predictions`]).
///
/// # Errors
/// No such checkpoint, or data that cannot be loaded.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device_label: &str,
    device: &B::Device,
) -> Result<GcdEvaluation> {
    let run = super::load_run::<B>(cfg, run_dir, which, device)?;
    evaluate(
        &run.model,
        cfg,
        &run.sec,
        &run.data,
        run.method.classifier.is_none(),
        device_label,
        device,
    )
}
