//! Open-set SSL evaluation (`evaluate.ipynb`, `evaluate_io`): closed-set accuracy, open-set
//! balanced accuracy over `K + 1` classes, the AUROC of an unknown score, the never-unknown
//! baseline, and for IOMatch the notebook's second prediction from the closed and one-vs-all
//! heads. See the family's module docs for the definitions.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::activation::softmax;
use serde::{Deserialize, Serialize};
use unseen_data::ImageSet;
use unseen_losses::iomatch::ova_inlier_probs;

use super::config::OsslSection;
use super::data::OsslData;
use super::model::OsslModel;
use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::infer::infer;
use crate::run::io::write_atomic;
use crate::run::tb::TbLogger;

/// Per-image outputs on the full test set.
#[derive(Debug, Clone, PartialEq)]
pub struct OsslPredictions {
    /// `argmax` of the closed-set head, in `0..K`.
    pub closed: Vec<usize>,
    /// Open-set prediction in `0..=K` (`K` = unknown).
    pub open: Vec<usize>,
    /// Unknown score, higher = more likely unseen.
    pub unknown: Vec<f32>,
    /// IOMatch only: the notebook's second open-set prediction `argmax q̂` from the closed
    /// and one-vs-all heads, `q̂ = [p_k·o_k, Σ_k p_k·(1 − o_k)]` (`pred_hat_q`), and its
    /// unknown score `q̂_K` (`unk_score`).
    pub ova: Option<(Vec<usize>, Vec<f32>)>,
}

/// Open-set predictions and unknown scores from softmax probabilities (row-major): with
/// `open_probs` (IOMatch, `K + 1` columns) the open prediction is its argmax and the score
/// its last column; without (FixMatch) the prediction is `K` when `max p < p_cutoff` and
/// the score `1 − max p`.
pub fn open_set_outputs(
    probs: &[f32],
    k: usize,
    open_probs: Option<&[f32]>,
    p_cutoff: f64,
) -> OsslPredictions {
    let argmax = |r: &[f32]| {
        let mut best = 0;
        for (i, &v) in r.iter().enumerate() {
            if v > r[best] {
                best = i;
            }
        }
        best
    };
    let mut out = OsslPredictions {
        closed: Vec::new(),
        open: Vec::new(),
        unknown: Vec::new(),
        ova: None,
    };
    for (i, row) in probs.chunks(k).enumerate() {
        let c = argmax(row);
        out.closed.push(c);
        match open_probs {
            Some(q) => {
                let q = &q[i * (k + 1)..(i + 1) * (k + 1)];
                out.open.push(argmax(q));
                out.unknown.push(q[k]);
            }
            None => {
                let maxp = row[c];
                out.open.push(if (maxp as f64) < p_cutoff { k } else { c });
                out.unknown.push(1.0 - maxp);
            }
        }
    }
    out
}

/// Runs `model` (inference mode) over `set` and returns its predictions.
///
/// # Errors
/// A zero evaluation batch size.
pub fn predict<B: Backend>(
    model: &OsslModel<B>,
    set: &Arc<ImageSet>,
    cfg: &ExperimentConfig,
    p_cutoff: f64,
    device: &B::Device,
) -> Result<OsslPredictions> {
    let aug = &cfg.data.augment;
    let k = model.num_classes();
    let rows = infer(set, &aug.mean, &aug.std, cfg.eval.batch_size, device, |x| {
        let out = model.forward(x);
        let mut v = vec![softmax(out.logits, 1)];
        if let (Some(open), Some(ova)) = (out.open, out.ova) {
            v.push(softmax(open, 1));
            v.push(ova_inlier_probs(ova));
        }
        v
    })?;
    let probs = &rows[0].values;
    let open_probs = model.heads.is_some().then(|| rows[1].values.as_slice());
    let mut p = open_set_outputs(probs, k, open_probs, p_cutoff);
    if model.heads.is_some() {
        p.ova = Some(hat_q_outputs(probs, &rows[2].values, k));
    }
    Ok(p)
}

/// The notebook's `q̂` prediction and score (see [`OsslPredictions::ova`]) from closed-set
/// probabilities `p` and one-vs-all inlier probabilities `o` (row-major `[n, K]` each).
pub fn hat_q_outputs(p: &[f32], o: &[f32], k: usize) -> (Vec<usize>, Vec<f32>) {
    p.chunks(k)
        .zip(o.chunks(k))
        .map(|(p, o)| {
            let mut best = (0, p[0] * o[0]);
            let mut unknown = 0.0f32;
            for j in 0..k {
                let v = p[j] * o[j];
                if v > best.1 {
                    best = (j, v);
                }
                unknown += p[j] * (1.0 - o[j]);
            }
            (if unknown > best.1 { k } else { best.0 }, unknown)
        })
        .unzip()
}

/// The `ossl` section of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsslMetrics {
    /// Recipe (`fixmatch` / `iomatch`).
    pub recipe: String,
    /// Closed-set accuracy of the closed head on the seen test images (fraction).
    pub closed_accuracy: f64,
    /// Balanced accuracy over `K + 1` classes on the full test set (fraction).
    pub open_balanced_accuracy: f64,
    /// AUROC of the unknown score, unseen test images positive (fraction).
    pub auroc: f64,
    /// The open-set balanced accuracy the same model would get by never predicting
    /// "unknown" (the closed head's argmax for every image: the unknown class scores 0, each
    /// seen class its closed recall), the baseline an open-set prediction has to beat to
    /// have detected anything. Absent from files written before Unseen reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never_unknown_balanced_accuracy: Option<f64>,
    /// Recall of each of the `K + 1` classes on the full test set (the last is "unknown").
    pub open_recall: Vec<f64>,
    /// IOMatch only: balanced accuracy of the notebook's second open-set prediction, `argmax
    /// q̂` from the closed and one-vs-all heads (`o_acc_f_hq`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ova_open_balanced_accuracy: Option<f64>,
    /// IOMatch only: AUROC of `q̂_K = Σ_k p_k·(1 − o_k)` (the notebook's `unk_score`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ova_auroc: Option<f64>,
    /// What the unknown score is.
    pub unknown_score: String,
    /// How the open-set prediction is made.
    pub open_prediction: String,
    /// Number of seen classes `K`.
    pub num_seen_classes: usize,
    /// Number of unseen classes.
    pub num_unseen_classes: usize,
    /// The seen classes of `data.id`, as configured.
    pub seen_classes: String,
    /// Labelled images per seen class (`null` when `labelled_list` names them).
    pub labels_per_class: Option<usize>,
    /// The `ossl.labelled_list` the labelled images come from, when one is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_list: Option<String>,
    /// Labelled / unlabelled training images.
    pub labelled_images: usize,
    /// Unlabelled training images (labelled ones included when configured).
    pub unlabelled_images: usize,
    /// Seen-class test images (closed-set accuracy).
    pub closed_test_images: usize,
    /// All test images (open-set metrics).
    pub full_test_images: usize,
    /// Training iterations done.
    pub iterations: usize,
    /// The evaluated weights (`ema`).
    pub evaluated_model: String,
    /// Wall time of `trainer train` in seconds (data, training, evaluations); for a resumed
    /// run, of the resumed part only. Absent from `trainer eval`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub train_seconds: Option<f64>,
}

impl OsslMetrics {
    /// How the labelled images were chosen, for summaries: `"25 labels per class"` or
    /// `"13 labelled images from <list>"`.
    pub fn labels(&self) -> String {
        match (&self.labelled_list, self.labels_per_class) {
            (Some(list), _) => format!("{} labelled images from {list}", self.labelled_images),
            (None, Some(n)) => format!("{n} labels per class"),
            (None, None) => format!("{} labelled images", self.labelled_images),
        }
    }
}

/// `metrics.json` of an OSSL run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsslMetricsFile {
    /// Run name.
    pub run: String,
    /// Recipe.
    pub recipe: String,
    /// Master seed.
    pub seed: u64,
    /// Device label.
    pub device: String,
    /// The metrics of the evaluated (final) EMA model.
    pub ossl: OsslMetrics,
    /// The metrics of the EMA model with the best closed-set accuracy over the run's
    /// evaluations (the paper's protocol, USB's `model_best.pth`); absent from `trainer eval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ossl_best: Option<OsslMetrics>,
}

/// A finished evaluation: metrics and per-image outputs on the full test set.
#[derive(Debug, Clone)]
pub struct OsslEvaluation {
    /// What goes to `metrics.json`.
    pub metrics: OsslMetricsFile,
    /// Per-image outputs (full test set order).
    pub predictions: OsslPredictions,
    /// `K + 1`-class labels of the full test set.
    pub labels: Vec<usize>,
}

/// Evaluates `model` on the test sets of `data`; a model without an open-set head predicts
/// "unknown" below `p_cutoff`.
///
/// # Errors
/// A test split without seen or without unseen images.
#[allow(clippy::too_many_arguments)]
pub fn evaluate<B: Backend>(
    model: &OsslModel<B>,
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    data: &OsslData,
    p_cutoff: f64,
    device_label: &str,
    device: &B::Device,
    iterations: usize,
) -> Result<OsslEvaluation> {
    let k = data.split.num_seen;
    let p = predict(model, &data.full_test, cfg, p_cutoff, device)?;
    let labels: Vec<usize> = data.full_test.labels.iter().map(|&l| l as usize).collect();
    let seen: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] < k).collect();
    if seen.is_empty() || seen.len() == labels.len() {
        bail!(
            "the test split of data.id needs images of seen and of unseen classes ({} of {} \
             are seen)",
            seen.len(),
            labels.len()
        );
    }
    let closed =
        seen.iter().filter(|&&i| p.closed[i] == labels[i]).count() as f64 / seen.len() as f64;
    use unseen_eval::metrics::{balanced_accuracy, per_class_recall};
    let recall = per_class_recall(&p.open, &labels).context("open-set recall")?;
    let open_ba = balanced_accuracy(&p.open, &labels).context("open-set balanced accuracy")?;
    // The closed head's predictions never say "unknown" (they are < K).
    let never_unknown_ba =
        balanced_accuracy(&p.closed, &labels).context("never-unknown balanced accuracy")?;
    // `auroc` ranks "higher = more ID": the unknown scores are negated.
    let unknown_auroc = |score: &[f32], what: &'static str| -> Result<f64> {
        let (mut id, mut ood) = (Vec::new(), Vec::new());
        for (&y, &u) in labels.iter().zip(score) {
            if y < k {
                id.push(-u);
            } else {
                ood.push(-u);
            }
        }
        unseen_eval::metrics::auroc(&id, &ood).context(what)
    };
    let auroc = unknown_auroc(&p.unknown, "AUROC of the unknown score")?;
    let (ova_ba, ova_auroc) = match &p.ova {
        Some((pred, score)) => (
            Some(balanced_accuracy(pred, &labels).context("one-vs-all balanced accuracy")?),
            Some(unknown_auroc(
                score,
                "AUROC of the one-vs-all unknown score",
            )?),
        ),
        None => (None, None),
    };
    let (unknown_score, open_prediction) = if model.heads.is_some() {
        (
            "softmax(open-set head)[K]",
            "argmax softmax(open-set head) over K + 1 classes",
        )
    } else {
        (
            "1 - max softmax(closed head)",
            "K (unknown) when max softmax(closed head) < p_cutoff, else its argmax",
        )
    };
    let metrics = OsslMetricsFile {
        run: cfg.name.clone(),
        recipe: cfg.recipe.clone(),
        seed: cfg.seed,
        device: device_label.to_string(),
        ossl: OsslMetrics {
            recipe: cfg.recipe.clone(),
            closed_accuracy: closed,
            open_balanced_accuracy: open_ba,
            auroc,
            never_unknown_balanced_accuracy: Some(never_unknown_ba),
            open_recall: recall.into_iter().map(|r| r.unwrap_or(0.0)).collect(),
            ova_open_balanced_accuracy: ova_ba,
            ova_auroc,
            unknown_score: unknown_score.into(),
            open_prediction: open_prediction.into(),
            num_seen_classes: k,
            num_unseen_classes: data.split.num_unseen(),
            seen_classes: sec.seen_classes().to_string(),
            labels_per_class: sec.labels_per_class,
            labelled_list: sec.labelled_list.as_ref().map(|p| p.display().to_string()),
            labelled_images: data.labelled.len(),
            unlabelled_images: data.unlabelled.len(),
            closed_test_images: seen.len(),
            full_test_images: labels.len(),
            iterations,
            evaluated_model: "ema".into(),
            train_seconds: None,
        },
        ossl_best: None,
    };
    Ok(OsslEvaluation {
        metrics,
        predictions: p,
        labels,
    })
}

impl OsslMetricsFile {
    /// The printable summary.
    pub fn summary(&self) -> String {
        let m = &self.ossl;
        let mut s = format!(
            "{} [{}]: {} seen ({}) / {} unseen classes, {}, EMA model after {} iterations\n\
             closed-set accuracy (closed head, {} seen test images): {:.2}%\n\
             open-set balanced accuracy ({} classes, {} test images): {:.2}%{}\n\
             AUROC of the unknown score ({}; unseen positive): {:.2}%\n",
            self.run,
            self.recipe,
            m.num_seen_classes,
            m.seen_classes,
            m.num_unseen_classes,
            m.labels(),
            m.iterations,
            m.closed_test_images,
            100.0 * m.closed_accuracy,
            m.num_seen_classes + 1,
            m.full_test_images,
            100.0 * m.open_balanced_accuracy,
            m.never_unknown_balanced_accuracy
                .map(|b| format!(" (never predicting unknown: {:.2}%)", 100.0 * b))
                .unwrap_or_default(),
            m.unknown_score,
            100.0 * m.auroc,
        );
        if let (Some(ba), Some(a)) = (m.ova_open_balanced_accuracy, m.ova_auroc) {
            s += &format!(
                "closed + one-vs-all heads (argmax q̂, the notebook's hq): open-set balanced \
                 accuracy {:.2}%, AUROC of q̂_K {:.2}%\n",
                100.0 * ba,
                100.0 * a
            );
        }
        if let Some(b) = &self.ossl_best {
            s += &format!(
                "best checkpoint (highest closed-set accuracy over the evaluations, the paper's \
                 protocol): iteration {}, closed {:.2}%, open BA {:.2}%, AUROC {:.2}%\n",
                b.iterations,
                100.0 * b.closed_accuracy,
                100.0 * b.open_balanced_accuracy,
                100.0 * b.auroc
            );
        }
        if let Some(t) = m.train_seconds {
            s += &format!("run time: {t:.1}s\n");
        }
        s
    }

    /// `report.md`.
    pub fn report_markdown(&self) -> String {
        let m = &self.ossl;
        let recall = m
            .open_recall
            .iter()
            .map(|r| format!("{:.2}", 100.0 * r))
            .collect::<Vec<_>>()
            .join(" / ");
        let mut s = format!(
            "# {}\n\nRecipe `{}`, seed {}, device `{}`; {} seen classes (`{}`), {} unseen, {}; \
             EMA model after {} iterations.\n\n\
             | metric | value |\n|---|---|\n\
             | closed-set accuracy | {:.2} |\n\
             | open-set balanced accuracy | {:.2} |\n\
             | open-set balanced accuracy, never predicting unknown | {} |\n\
             | AUROC (unseen positive) | {:.2} |\n\n\
             Open-set prediction: {}. Unknown score: {}.\n\n\
             Per-class recall on the full test set (seen classes, then unknown): {}\n",
            self.run,
            self.recipe,
            self.seed,
            self.device,
            m.num_seen_classes,
            m.seen_classes,
            m.num_unseen_classes,
            m.labels(),
            m.iterations,
            100.0 * m.closed_accuracy,
            100.0 * m.open_balanced_accuracy,
            m.never_unknown_balanced_accuracy
                .map_or_else(|| "-".to_string(), |b| format!("{:.2}", 100.0 * b)),
            100.0 * m.auroc,
            m.open_prediction,
            m.unknown_score,
            recall
        );
        if let (Some(ba), Some(a)) = (m.ova_open_balanced_accuracy, m.ova_auroc) {
            s += &format!(
                "\nClosed + one-vs-all heads (`argmax q̂`, the notebook's `hq`): open-set balanced \
                 accuracy {:.2}, AUROC of `q̂_K` {:.2}.\n",
                100.0 * ba,
                100.0 * a
            );
        }
        if let Some(b) = &self.ossl_best {
            s += &format!(
                "\n## Best checkpoint (the paper's protocol)\n\nThe EMA model of the evaluation \
                 with the highest closed-set accuracy, iteration {} (`checkpoints/best/`).\n\n\
                 | metric | value |\n|---|---|\n\
                 | closed-set accuracy | {:.2} |\n\
                 | open-set balanced accuracy | {:.2} |\n\
                 | AUROC (unseen positive) | {:.2} |\n",
                b.iterations,
                100.0 * b.closed_accuracy,
                100.0 * b.open_balanced_accuracy,
                100.0 * b.auroc
            );
        }
        s
    }

    /// Writes `metrics.json` and `report.md` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join("metrics.json"),
            (serde_json::to_string_pretty(self)? + "\n").as_bytes(),
        )?;
        write_atomic(&dir.join("report.md"), self.report_markdown().as_bytes())
    }
}

impl OsslEvaluation {
    /// `predictions.csv`: `index,label,is_unseen,closed_pred,open_pred,unknown_score`, one
    /// row per full-test image (index into `data.id`'s test split; labels in `0..=K`, `K`
    /// for every unseen class).
    pub fn predictions_csv(&self, k: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        writeln!(
            buf,
            "index,label,is_unseen,closed_pred,open_pred,unknown_score"
        )?;
        let p = &self.predictions;
        for (i, &y) in self.labels.iter().enumerate() {
            writeln!(
                buf,
                "{i},{y},{},{},{},{:e}",
                (y >= k) as u8,
                p.closed[i],
                p.open[i],
                p.unknown[i]
            )?;
        }
        Ok(buf)
    }
}

/// Logs an evaluation to TensorBoard at `step`.
pub fn log_eval(tb: &mut TbLogger, m: &OsslMetrics, step: usize) {
    tb.scalar("eval/closed_accuracy", m.closed_accuracy, step);
    tb.scalar(
        "eval/open_balanced_accuracy",
        m.open_balanced_accuracy,
        step,
    );
    tb.scalar("eval/auroc", m.auroc, step);
}

/// `trainer eval` on an OSSL run: re-evaluates the EMA weights of the last checkpoint, or
/// of the best one ([`Which::Best`]); returns the evaluation and `K` (the caller writes
/// [`OsslMetricsFile::write`] and [`OsslEvaluation::predictions_csv`]).
///
/// # Errors
/// No such checkpoint in `run_dir`, or data that cannot be loaded.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device_label: &str,
    device: &B::Device,
) -> Result<(OsslEvaluation, usize)> {
    let run = super::load_run::<B>(cfg, run_dir, which, device)?;
    if !run.ema {
        eprintln!(
            "warning: {} has no EMA weights for its step; evaluating the live model",
            run_dir.display()
        );
    }
    let ev = evaluate(
        &run.model,
        cfg,
        &run.sec,
        &run.data,
        run.method.p_cutoff,
        device_label,
        device,
        run.step,
    )?;
    Ok((ev, run.data.split.num_seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hat_q_by_hand() {
        // K = 2. Row 0: p = [0.75, 0.25], o = [0.8, 0.4] -> q̂ = [0.6, 0.1, 0.3]: class 0.
        // Row 1: o = [0.2, 0.2] -> q̂ = [0.15, 0.05, 0.8]: unknown.
        let (pred, score) = hat_q_outputs(&[0.75, 0.25, 0.75, 0.25], &[0.8, 0.4, 0.2, 0.2], 2);
        assert_eq!(pred, [0, 2]);
        assert!((score[0] - 0.3).abs() < 1e-6 && (score[1] - 0.8).abs() < 1e-6);
    }

    #[test]
    fn open_set_rules() {
        // K = 2. FixMatch: row 0 confident -> class 0; row 1 max 0.6 < 0.95 -> unknown (2).
        let probs = [0.97, 0.03, 0.4, 0.6];
        let f = open_set_outputs(&probs, 2, None, 0.95);
        assert_eq!(f.closed, [0, 1]);
        assert_eq!(f.open, [0, 2]);
        assert!((f.unknown[0] - 0.03).abs() < 1e-6 && (f.unknown[1] - 0.4).abs() < 1e-6);
        // Exactly at the threshold counts as confident (as the training mask, >=).
        assert_eq!(open_set_outputs(&[0.5, 0.5], 2, None, 0.5).open, [0]);
        // IOMatch: the open head decides; its last column is the score.
        let open = [0.2, 0.1, 0.7, 0.5, 0.3, 0.2];
        let i = open_set_outputs(&probs, 2, Some(&open), 0.95);
        assert_eq!(i.closed, [0, 1]);
        assert_eq!(i.open, [2, 0]);
        assert_eq!(i.unknown, [0.7, 0.2]);
    }
}
