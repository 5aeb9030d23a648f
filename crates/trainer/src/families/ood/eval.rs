//! Evaluation: ID accuracy and OOD metrics for every detector and OOD set, the
//! `metrics.json` schema, and the per-sample scores CSV.
//!
//! Covariate-shifted ID sets (`[[data.ood]]` with `group = "csid"`) add OpenOOD v1.5's
//! full-spectrum OOD (FSOOD) evaluation: their accuracy per set (`csid`), and every OOD set
//! scored against the ID test set and all csid sets together as ID (`fsood`,
//! `fsood_groups`). Without csid sets these sections are absent and `metrics.json` is as
//! before.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_eval::metrics::{accuracy, ood_metrics, OodMetrics};
use unseen_eval::plots::{roc_plot, score_histogram, RocCurve};
use unseen_eval::report::{OodGroup, OodReport, OodRow};

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::data::ExperimentData;
use crate::run::detect::FittedDetector;

use super::search::{fit_or_search, SearchPoint, SkippedDetector};
use crate::run::infer::{check_finite, features_and_logits, Rows};
use crate::run::io::{replace_dir, write_atomic};
use crate::run::preprocess::score_set;
use std::sync::Arc;
use unseen_data::ImageSet;

/// A dataset or detector name as a file-name part: ASCII letters, digits, `.`, `-`, `_`
/// and `=` kept, anything else (`:`, `,`, `/`, spaces) replaced by `_`.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '=') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The `id` section of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdMetrics {
    /// ID dataset name.
    pub dataset: String,
    /// Top-1 accuracy on the ID test set (fraction); absent for a headless network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// One entry of the `csid` section: a covariate-shifted ID set's classification accuracy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CsidMetrics {
    /// The csid set's name (`[[data.ood]]` `name`).
    pub dataset: String,
    /// Top-1 accuracy on it against its ID labels (fraction); absent for a headless network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// One row of the `ood` (and `fsood`) section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodEntry {
    /// OOD set (or `near`/`far` average in `ood_groups` / `fsood_groups`).
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
    /// Accuracy on each covariate-shifted ID set (`group = "csid"`); absent without any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csid: Vec<CsidMetrics>,
    /// Full-spectrum OOD (OpenOOD v1.5's FSOOD): the `ood` rows again, with the ID test set
    /// and every csid set together as ID; absent without csid sets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fsood: Vec<OodEntry>,
    /// Averages of `fsood` over the `near` and `far` groups per detector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fsood_groups: Vec<OodEntry>,
    /// Detectors that `"all"` named but that cannot run on this network and data (a class
    /// SHE has no correctly classified image of, ...), with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_detectors: Vec<SkippedDetector>,
    /// Every detector with what its fit on the ID training set chose (a temperature, a
    /// threshold, ViM's `alpha`, ...), so a score can be recomputed from the run's files.
    #[serde(default)]
    pub detectors: Vec<DetectorInfo>,
}

/// One detector of `metrics.json`'s `detectors` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorInfo {
    /// Detector name with its parameters (`knn:k=10`).
    pub name: String,
    /// Values its fit chose, by name.
    #[serde(default)]
    pub fitted: std::collections::BTreeMap<String, f64>,
    /// With `eval.search`: every candidate tried and its validation AUROC (`name` is the
    /// best; ties go to the earlier candidate, the default first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<SearchPoint>,
}

/// Everything one evaluation produced.
pub struct Evaluation {
    /// The metrics file content.
    pub metrics: MetricsFile,
    /// The table (for the terminal and `report.md`).
    pub table: OodReport,
    /// The full-spectrum table (csid counted as ID; empty without csid sets).
    pub fsood_table: OodReport,
    /// Per-sample scores: (dataset, group, detector, is_ood, scores); group `id`, `csid`,
    /// `near` or `far`.
    pub scores: Vec<(String, String, String, bool, Vec<f32>)>,
    /// Seconds each detector's fit took, in `metrics.detectors` order (kept out of
    /// `metrics.json`, which is bit-reproducible; shown in `report.md`).
    pub fit_seconds: Vec<f64>,
}

/// Evaluates a model on the ID test set and every OOD set with every configured detector;
/// with csid sets, also their accuracy and the full-spectrum metrics (module docs).
///
/// `cache_dir`: where the ID training features the detectors fit on are cached and
/// streamed from ([`crate::run::feature_cache`]); `None` holds them in memory.
pub fn evaluate<B: Backend>(
    model: &Backbone<B>,
    cfg: &ExperimentConfig,
    data: &ExperimentData,
    cache_dir: Option<&Path>,
    device_label: &str,
    device: &B::Device,
) -> Result<Evaluation> {
    let (mean, std, bs) = (
        &cfg.data.augment.mean,
        &cfg.data.augment.std,
        cfg.eval.batch_size,
    );
    let id_rows = features_and_logits(model, &data.id_test, mean, std, bs, device)?;
    check_finite("the feature", "the ID test set", &id_rows.0)?;
    check_finite("the logit", "the ID test set", &id_rows.1)?;
    let id = &id_rows.1;
    let labels: Vec<usize> = data.id_test.labels.iter().map(|&l| l as usize).collect();
    let acc = if id.width > 0 {
        Some(accuracy(&id.argmax(), &labels).context("ID accuracy")?)
    } else {
        None
    };
    type Set = Arc<ImageSet>;
    let mut ood_sets: Vec<(String, OodGroup, &Set, (Rows, Rows))> = Vec::new();
    for (name, group, set) in &data.ood {
        let (f, l) = features_and_logits(model, set, mean, std, bs, device)?;
        check_finite("the feature", &format!("OOD set {name}"), &f)?;
        check_finite("the logit", &format!("OOD set {name}"), &l)?;
        ood_sets.push((name.clone(), *group, set, (f, l)));
    }
    let mut csid_sets: Vec<(String, &Set, (Rows, Rows))> = Vec::new();
    let mut csid_acc = Vec::new();
    for (name, set) in &data.csid {
        let (f, l) = features_and_logits(model, set, mean, std, bs, device)?;
        check_finite("the feature", &format!("csid set {name}"), &f)?;
        check_finite("the logit", &format!("csid set {name}"), &l)?;
        let set_acc = if l.width > 0 {
            let labels: Vec<usize> = set.labels.iter().map(|&l| l as usize).collect();
            Some(accuracy(&l.argmax(), &labels).with_context(|| format!("csid set {name}"))?)
        } else {
            None
        };
        csid_acc.push(CsidMetrics {
            dataset: name.clone(),
            accuracy: set_acc,
        });
        csid_sets.push((name.clone(), set, (f, l)));
    }
    let (fitted, skipped_detectors) = fit_or_search(model, cfg, data, cache_dir, device)?;
    let (fitted, searches): (Vec<FittedDetector>, Vec<Vec<SearchPoint>>) =
        fitted.into_iter().unzip();
    let mut rows = Vec::new();
    let mut fsood_rows = Vec::new();
    let mut scores = Vec::new();
    let mut infos = Vec::new();
    for (fd, search) in fitted.iter().zip(searches) {
        let det = &fd.detector;
        let det_label = det.name();
        infos.push(DetectorInfo {
            name: det_label.clone(),
            fitted: fd.fitted.iter().cloned().collect(),
            search,
        });
        let det_ref = det.as_ref();
        let id_scores = score_set(
            model,
            det_ref,
            &data.id_test,
            "the ID test set",
            &id_rows,
            cfg,
            device,
        )?;
        scores.push((
            cfg.data.id_name.clone(),
            "id".to_string(),
            det_label.clone(),
            false,
            id_scores.clone(),
        ));
        // Full-spectrum ID: the ID test scores followed by every csid set's (OpenOOD
        // v1.5 concatenates them the same way).
        let mut fs_id_scores = if csid_sets.is_empty() {
            Vec::new()
        } else {
            id_scores.clone()
        };
        for (name, set, rows) in &csid_sets {
            let where_ = format!("csid set {name}");
            let s = score_set(model, det_ref, set, &where_, rows, cfg, device)?;
            fs_id_scores.extend_from_slice(&s);
            scores.push((
                name.clone(),
                "csid".to_string(),
                det_label.clone(),
                false,
                s,
            ));
        }
        for (name, group, set, set_rows) in &ood_sets {
            let where_ = format!("OOD set {name}");
            let s = score_set(model, det_ref, set, &where_, set_rows, cfg, device)?;
            let m = ood_metrics(&id_scores, &s)
                .with_context(|| format!("metrics of detector {det_label} on OOD set {name}"))?;
            rows.push(OodRow::new(name.clone(), *group, det_label.clone(), m));
            if !csid_sets.is_empty() {
                let m = ood_metrics(&fs_id_scores, &s).with_context(|| {
                    format!("full-spectrum metrics of detector {det_label} on OOD set {name}")
                })?;
                fsood_rows.push(OodRow::new(name.clone(), *group, det_label.clone(), m));
            }
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
    let fsood_table = OodReport::new(fsood_rows);
    let to_entry = |r: &OodRow| OodEntry {
        dataset: r.dataset.clone(),
        group: r.group.as_str().to_string(),
        detector: r.detector.clone(),
        metrics: r.metrics,
    };
    let group_entries = |t: &OodReport| -> Vec<OodEntry> {
        t.means()
            .iter()
            .map(|g| OodEntry {
                dataset: g.group.as_str().to_string(),
                group: g.group.as_str().to_string(),
                detector: g.detector.clone(),
                metrics: g.metrics,
            })
            .collect()
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
        ood_groups: group_entries(&table),
        csid: csid_acc,
        fsood: fsood_table.rows.iter().map(to_entry).collect(),
        fsood_groups: group_entries(&fsood_table),
        skipped_detectors,
        detectors: infos,
    };
    Ok(Evaluation {
        metrics,
        table,
        fsood_table,
        scores,
        fit_seconds: fitted.iter().map(|f| f.fit_seconds).collect(),
    })
}

impl Evaluation {
    /// Writes `metrics.json` and `report.md` into `dir` (atomically).
    pub fn write(&self, dir: &Path, cfg: &ExperimentConfig) -> Result<()> {
        let json = serde_json::to_string_pretty(&self.metrics)? + "\n";
        write_atomic(&dir.join("metrics.json"), json.as_bytes())?;
        if !self.table.rows.is_empty() {
            replace_dir(&dir.join("plots"), |tmp| self.write_plots(tmp))?;
        }
        write_atomic(&dir.join("report.md"), self.report_markdown(cfg).as_bytes())?;
        Ok(())
    }

    /// The OOD sets (name, group) in evaluation order and the detectors, from the scores.
    fn sets_and_detectors(&self) -> (Vec<(String, String)>, Vec<String>) {
        let (mut sets, mut dets): (Vec<(String, String)>, Vec<String>) = (Vec::new(), Vec::new());
        for (dataset, group, det, is_ood, _) in &self.scores {
            if *is_ood && !sets.iter().any(|(d, _)| d == dataset) {
                sets.push((dataset.clone(), group.clone()));
            }
            if !dets.contains(det) {
                dets.push(det.clone());
            }
        }
        (sets, dets)
    }

    fn scores_of(&self, dataset: &str, detector: &str, ood: bool) -> &[f32] {
        self.scores
            .iter()
            .find(|(d, _, det, is_ood, _)| d == dataset && det == detector && *is_ood == ood)
            .map(|s| s.4.as_slice())
            .unwrap_or(&[])
    }

    /// `roc_<set>.{svg,png}` (one curve per detector) and `hist_<detector>.{svg,png}` (ID
    /// vs every OOD set) into `dir`.
    fn write_plots(&self, dir: &Path) -> Result<()> {
        let (sets, dets) = self.sets_and_detectors();
        let id = &self.metrics.id.dataset;
        for (set, group) in &sets {
            let curves = dets
                .iter()
                .map(|d| {
                    RocCurve::new(
                        d.clone(),
                        self.scores_of(id, d, false),
                        self.scores_of(set, d, true),
                    )
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let title = format!("{id} vs {set} ({group})");
            roc_plot(
                &title,
                &curves,
                &dir.join(format!("roc_{}", file_stem(set))),
            )?;
        }
        for d in &dets {
            let ood: Vec<(&str, &[f32])> = sets
                .iter()
                .map(|(s, _)| (s.as_str(), self.scores_of(s, d, true)))
                .collect();
            let title = format!("{d}: {id} vs OOD");
            score_histogram(
                &title,
                d,
                self.scores_of(id, d, false),
                &ood,
                &dir.join(format!("hist_{}", file_stem(d))),
            )?;
        }
        Ok(())
    }

    /// The report's section linking the plots (paths relative to the report).
    fn plots_markdown(&self) -> String {
        let (sets, dets) = self.sets_and_detectors();
        if sets.is_empty() {
            return String::new();
        }
        let mut s = String::from("\n## Plots\n\nROC curves (one line per detector): ");
        let link = |name: &str, stem: String| {
            format!("[{name}](plots/{stem}.png) ([svg](plots/{stem}.svg))")
        };
        s += &sets
            .iter()
            .map(|(set, _)| link(set, format!("roc_{}", file_stem(set))))
            .collect::<Vec<_>>()
            .join(", ");
        s += ".\n\nScore histograms, ID vs OOD: ";
        s += &dets
            .iter()
            .map(|d| link(d, format!("hist_{}", file_stem(d))))
            .collect::<Vec<_>>()
            .join(", ");
        s += ".\n";
        s
    }

    /// The Markdown report.
    pub fn report_markdown(&self, cfg: &ExperimentConfig) -> String {
        let mut s = format!(
            "# {}\n\nRecipe `{}`, seed {}, device `{}`.\n\nID accuracy on {}: **{}**\n\n\
             FPR@95 treats OOD as the positive class (OpenOOD v1.5); `fpr95_id_positive` in \
             `metrics.json` is the ID-positive convention of the energy paper.\n\n",
            cfg.name,
            cfg.recipe,
            cfg.seed,
            self.metrics.device,
            self.metrics.id.dataset,
            self.accuracy_text()
        );
        s += &self.table.to_markdown();
        s += &self.ranking_markdown();
        for d in &self.metrics.skipped_detectors {
            s += &format!("\nNot run (named by `all`): `{}`: {}\n", d.name, d.reason);
        }
        s += &self.search_markdown(cfg);
        s += &self.fsood_markdown();
        s += &self.plots_markdown();
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

    /// The full-spectrum section: each csid set's accuracy and the OOD table with the ID test
    /// set and every csid set counted as ID (empty without csid sets).
    pub fn fsood_markdown(&self) -> String {
        if self.metrics.csid.is_empty() {
            return String::new();
        }
        let mut s = String::from(
            "\n## Full-spectrum OOD (csid counted as ID)\n\n\
             Covariate-shifted ID sets (`group = \"csid\"`): the ID classes under another \
             style or domain. OpenOOD v1.5's full-spectrum setting counts them as ID: below, \
             every OOD set is scored against the ID test set and all csid sets together.\n\n\
             | csid set | accuracy (%) |\n|:---|---:|\n",
        );
        for c in &self.metrics.csid {
            let acc = c
                .accuracy
                .map(|a| format!("{:.2}", 100.0 * a))
                .unwrap_or_else(|| "-".into());
            s += &format!("| {} | {acc} |\n", c.dataset.replace('|', "\\|"));
        }
        s += "\n";
        s += &self.fsood_table.to_markdown();
        s
    }

    /// Detectors ranked by mean AUROC over the `near` and `far` groups (each group's mean
    /// over its sets), with FPR@95 and what each fit chose.
    pub fn ranking_markdown(&self) -> String {
        let means = self.table.means();
        let get = |det: &str, group: OodGroup| {
            means
                .iter()
                .find(|g| g.detector == det && g.group == group)
                .map(|g| g.metrics)
        };
        type Ranked<'a> = (
            &'a DetectorInfo,
            Option<OodMetrics>,
            Option<OodMetrics>,
            f64,
            f64,
        );
        let mut ranked: Vec<Ranked> = self
            .metrics
            .detectors
            .iter()
            .zip(self.fit_seconds.iter().chain(std::iter::repeat(&0.0)))
            .map(|(d, &secs)| {
                let (near, far) = (get(&d.name, OodGroup::Near), get(&d.name, OodGroup::Far));
                let aurocs: Vec<f64> = [near, far].iter().flatten().map(|m| m.auroc).collect();
                let key = aurocs.iter().sum::<f64>() / aurocs.len().max(1) as f64;
                (d, near, far, key, secs)
            })
            .collect();
        if ranked.len() < 2 {
            return String::new();
        }
        ranked.sort_by(|a, b| b.3.total_cmp(&a.3));
        let pct = |m: Option<OodMetrics>, f: fn(&OodMetrics) -> f64| {
            m.map(|m| format!("{:.2}", 100.0 * f(&m)))
                .unwrap_or_else(|| "-".into())
        };
        let mut s = String::from(
            "\n## Detectors ranked by mean AUROC (near, far)\n\n\
             | rank | detector | near AUROC | far AUROC | near FPR@95 | far FPR@95 | fitted | fit s |\n\
             |---:|:---|---:|---:|---:|---:|:---|---:|\n",
        );
        for (i, (d, near, far, _, secs)) in ranked.iter().enumerate() {
            let fitted: Vec<String> = d
                .fitted
                .iter()
                .map(|(k, v)| {
                    if v.fract() == 0.0 && v.abs() < 1e15 {
                        format!("{k}={v}")
                    } else {
                        format!("{k}={v:.4}")
                    }
                })
                .collect();
            s += &format!(
                "| {} | {} | {} | {} | {} | {} | {} | {:.2} |\n",
                i + 1,
                d.name,
                pct(*near, |m| m.auroc),
                pct(*far, |m| m.auroc),
                pct(*near, |m| m.fpr95),
                pct(*far, |m| m.fpr95),
                if fitted.is_empty() {
                    "-".into()
                } else {
                    fitted.join(", ")
                },
                secs
            );
        }
        s
    }

    /// How the detectors' hyper-parameters were set: the search's candidates and
    /// validation AUROCs, or a sentence saying the defaults were used.
    pub fn search_markdown(&self, cfg: &ExperimentConfig) -> String {
        if !cfg.eval.search {
            return "\nHyper-parameters: each detector's defaults (OpenOOD v1.5's), as written in \
                    `eval.detectors`; no validation sets were given (`eval.search`, \
                    `[data.id_val]`, `[[data.ood_val]]`).\n"
                .to_string();
        }
        let sets: Vec<&str> = cfg.data.ood_val.iter().map(|o| o.name.as_str()).collect();
        let mut s = format!(
            "\n## Hyper-parameter search\n\nEach detector named without parameters took the \
             candidate of OpenOOD v1.5's sweep list with the best mean AUROC of `data.id_val` \
             against {} (ties: the earlier candidate, the default first).\n\n\
             | detector | chosen | candidates (validation AUROC) |\n|:---|:---|:---|\n",
            sets.join(", ")
        );
        for d in self
            .metrics
            .detectors
            .iter()
            .filter(|d| !d.search.is_empty())
        {
            let cands: Vec<String> = d
                .search
                .iter()
                .map(|p| match p.val_auroc {
                    Some(a) => format!("{} ({:.2})", p.detector, 100.0 * a),
                    None => format!("{} (cannot run here)", p.detector),
                })
                .collect();
            s += &format!(
                "| {} | {} | {} |\n",
                d.search[0].detector.split(':').next().unwrap_or(""),
                d.name,
                cands.join(", ")
            );
        }
        s
    }

    /// Writes `scores.csv` (`dataset,group,detector,index,is_ood,score`; the ID test set has
    /// group `id`, csid sets group `csid`, both `is_ood` 0).
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
    /// `"97.50%"`, or why there is no accuracy.
    pub fn accuracy_text(&self) -> String {
        match self.metrics.id.accuracy {
            Some(a) => format!("{:.2}%", 100.0 * a),
            None => "- (the network has no classification head)".into(),
        }
    }

    /// The end-of-run summary for the terminal (with csid sets, their accuracies; the
    /// full-spectrum table is in `report.md`).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} [{}]: ID accuracy on {} = {}\n{}",
            self.metrics.run,
            self.metrics.recipe,
            self.metrics.id.dataset,
            self.accuracy_text(),
            self.table.to_terminal()
        );
        if !self.metrics.csid.is_empty() {
            let accs: Vec<String> = self
                .metrics
                .csid
                .iter()
                .map(|c| match c.accuracy {
                    Some(a) => format!("{} {:.2}%", c.dataset, 100.0 * a),
                    None => format!("{} -", c.dataset),
                })
                .collect();
            s += &format!(
                "csid accuracy: {} (full-spectrum OOD table in report.md)\n",
                accs.join(", ")
            );
        }
        s
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
    let cache = run_dir.join("cache");
    evaluate(&model, cfg, &data, Some(&cache), device_label, device)
}
