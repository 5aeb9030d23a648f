//! Evaluation: ID accuracy and OOD metrics for every detector and OOD set, the
//! `metrics.json` schema, and the per-sample scores CSV.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_eval::detectors::detector_from_name;
use unseen_eval::metrics::{accuracy, ood_metrics, OodMetrics};
use unseen_eval::report::{OodGroup, OodReport, OodRow};

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::data::ExperimentData;
use crate::run::infer::{features_and_logits, Rows};
use crate::run::io::write_atomic;

/// The `id` section of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdMetrics {
    /// ID dataset name.
    pub dataset: String,
    /// Top-1 accuracy on the ID test set (fraction).
    pub accuracy: f64,
}

/// One row of the `ood` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodEntry {
    /// OOD set (or `near`/`far` average in `ood_groups`).
    pub dataset: String,
    /// `near` or `far`.
    pub group: String,
    /// Detector name.
    pub detector: String,
    /// Metrics.
    #[serde(flatten)]
    pub metrics: OodMetrics,
}

/// `metrics.json`: the stable interface of a run (`docs/architecture.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    /// Run name.
    pub run: String,
    /// Recipe name.
    pub recipe: String,
    /// Master seed.
    pub seed: u64,
    /// Device label (`cpu`, `cuda:0`, ...).
    pub device: String,
    /// ID accuracy.
    pub id: IdMetrics,
    /// Per OOD set and detector. FPR@95 is OOD-positive (OpenOOD v1.5);
    /// `fpr95_id_positive` is the energy paper's ID-positive convention.
    pub ood: Vec<OodEntry>,
    /// Averages over the `near` and `far` groups per detector.
    pub ood_groups: Vec<OodEntry>,
}

/// Everything one evaluation produced.
pub struct Evaluation {
    /// The metrics file content.
    pub metrics: MetricsFile,
    /// The table (for the terminal and `report.md`).
    pub table: OodReport,
    /// Per-sample scores: (dataset, group, detector, is_ood, scores).
    pub scores: Vec<(String, String, String, bool, Vec<f32>)>,
}

/// Evaluates a model on the ID test set and every OOD set with every configured detector.
pub fn evaluate<B: Backend>(
    model: &Backbone<B>,
    cfg: &ExperimentConfig,
    data: &ExperimentData,
    device_label: &str,
    device: &B::Device,
) -> Result<Evaluation> {
    let (mean, std, bs) = (
        &cfg.data.augment.mean,
        &cfg.data.augment.std,
        cfg.eval.batch_size,
    );
    let (_, id) = features_and_logits(model, &data.id_test, mean, std, bs, device)?;
    let labels: Vec<usize> = data.id_test.labels.iter().map(|&l| l as usize).collect();
    let acc = accuracy(&id.argmax(), &labels).context("ID accuracy")?;
    let mut ood_logits: Vec<(String, OodGroup, Rows)> = Vec::new();
    for (name, group, set) in &data.ood {
        let (_, l) = features_and_logits(model, set, mean, std, bs, device)?;
        ood_logits.push((name.clone(), *group, l));
    }
    let mut rows = Vec::new();
    let mut scores = Vec::new();
    for det_name in &cfg.eval.detectors {
        let det = detector_from_name(det_name)
            .with_context(|| format!("`eval.detectors`: unknown detector {det_name:?}"))?;
        let det_label = det.name();
        let id_scores = det
            .score(&id.values, id.width, None)
            .with_context(|| format!("detector {det_label} on the ID test set"))?;
        scores.push((
            cfg.data.id_name.clone(),
            "id".to_string(),
            det_label.clone(),
            false,
            id_scores.clone(),
        ));
        for (name, group, l) in &ood_logits {
            let s = det
                .score(&l.values, l.width, None)
                .with_context(|| format!("detector {det_label} on OOD set {name}"))?;
            let m = ood_metrics(&id_scores, &s)
                .with_context(|| format!("metrics of detector {det_label} on OOD set {name}"))?;
            rows.push(OodRow::new(name.clone(), *group, det_label.clone(), m));
            scores.push((
                name.clone(),
                group.as_str().to_string(),
                det_label.clone(),
                true,
                s,
            ));
        }
    }
    let mut table = OodReport::new(rows);
    if let Some(p) = &cfg.paper {
        table = table.with_paper(p.numbers());
    }
    let to_entry = |r: &OodRow| OodEntry {
        dataset: r.dataset.clone(),
        group: r.group.as_str().to_string(),
        detector: r.detector.clone(),
        metrics: r.metrics,
    };
    let metrics = MetricsFile {
        run: cfg.name.clone(),
        recipe: cfg.recipe.clone(),
        seed: cfg.seed,
        device: device_label.to_string(),
        id: IdMetrics {
            dataset: cfg.data.id_name.clone(),
            accuracy: acc,
        },
        ood: table.rows.iter().map(to_entry).collect(),
        ood_groups: table
            .means()
            .iter()
            .map(|g| OodEntry {
                dataset: g.group.as_str().to_string(),
                group: g.group.as_str().to_string(),
                detector: g.detector.clone(),
                metrics: g.metrics,
            })
            .collect(),
    };
    Ok(Evaluation {
        metrics,
        table,
        scores,
    })
}

impl Evaluation {
    /// Writes `metrics.json` and `report.md` into `dir` (atomically).
    pub fn write(&self, dir: &Path, cfg: &ExperimentConfig) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.metrics)? + "\n";
        write_atomic(&dir.join("metrics.json"), json.as_bytes())?;
        write_atomic(&dir.join("report.md"), self.report_markdown(cfg).as_bytes())?;
        Ok(())
    }

    /// The Markdown report.
    pub fn report_markdown(&self, cfg: &ExperimentConfig) -> String {
        let mut s = format!(
            "# {}\n\nRecipe `{}`, seed {}, device `{}`.\n\nID accuracy on {}: **{:.2}%**\n\n\
             FPR@95 treats OOD as the positive class (OpenOOD v1.5); `fpr95_id_positive` in \
             `metrics.json` is the ID-positive convention of the energy paper.\n\n",
            cfg.name,
            cfg.recipe,
            cfg.seed,
            self.metrics.device,
            self.metrics.id.dataset,
            100.0 * self.metrics.id.accuracy
        );
        s += &self.table.to_markdown();
        if let Some(p) = &cfg.paper {
            s += &format!("\n## Published numbers ({})\n\n", p.source);
            s += "| dataset | detector | accuracy | AUROC | FPR@95 | convention |\n|---|---|---|---|---|---|\n";
            let pct = |v: Option<f64>| {
                v.map(|x| format!("{:.2}", 100.0 * x))
                    .unwrap_or_else(|| "-".into())
            };
            for r in &p.rows {
                s += &format!(
                    "| {} | {} | {} | {} | {} | {} |\n",
                    r.dataset,
                    r.detector,
                    pct(r.accuracy),
                    pct(r.auroc),
                    pct(r.fpr95),
                    r.fpr_convention.as_deref().unwrap_or("-")
                );
            }
        }
        s
    }

    /// Writes `scores.csv` (`dataset,group,detector,index,is_ood,score`).
    pub fn write_scores(&self, path: &Path) -> Result<()> {
        let mut buf = Vec::new();
        writeln!(buf, "dataset,group,detector,index,is_ood,score")?;
        for (dataset, group, det, is_ood, s) in &self.scores {
            for (i, v) in s.iter().enumerate() {
                writeln!(buf, "{dataset},{group},{det},{i},{},{v:e}", *is_ood as u8)?;
            }
        }
        write_atomic(path, &buf)
    }
}

impl Evaluation {
    /// The end-of-run summary for the terminal.
    pub fn summary(&self) -> String {
        format!(
            "{} [{}]: ID accuracy on {} = {:.2}%\n{}",
            self.metrics.run,
            self.metrics.recipe,
            self.metrics.id.dataset,
            100.0 * self.metrics.id.accuracy,
            self.table.to_terminal()
        )
    }
}

/// Loads a run folder's data and checkpoint (`which`) and evaluates it.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device_label: &str,
    device: &B::Device,
) -> Result<Evaluation> {
    let (model, data, _) = super::load_run::<B>(cfg, run_dir, which, device)?;
    evaluate(&model, cfg, &data, device_label, device)
}
