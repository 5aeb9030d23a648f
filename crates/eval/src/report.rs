//! Result tables for OOD evaluation: one row per (OOD dataset, detector), near/far means
//! per detector, and four renderings (terminal, Markdown, CSV, JSON).
//!
//! ```
//! use unseen_eval::metrics::OodMetrics;
//! use unseen_eval::report::{OodGroup, OodReport, OodRow};
//!
//! let m = OodMetrics { auroc: 0.9, aupr_in: 0.9, aupr_out: 0.9, fpr95: 0.3, fpr95_id_positive: 0.3 };
//! let report = OodReport::new(vec![OodRow::new("svhn", OodGroup::Far, "msp", m)]);
//! println!("{}", report.to_terminal());
//! assert!(report.to_csv().starts_with("dataset,group,detector,auroc"));
//! ```
//!
//! Tables for people (terminal, Markdown) show percentages with two decimals; CSV and JSON
//! keep the raw fractions in `[0, 1]` (the `metrics.json` convention). Near/far means are
//! plain means of the per-dataset metrics (every dataset weighs the same, whatever its
//! size), as OpenOOD v1.5 reports them; they appear as rows whose dataset is `mean`.
//!
//! Paper numbers ([`PaperNumbers`]) are shown next to AUROC and FPR@95 in the terminal and
//! Markdown tables when the report has any; they are looked up by (dataset, detector) for
//! dataset rows and by (`"near"`/`"far"`, detector) for mean rows.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::metrics::OodMetrics;

/// The CSV header written by [`OodReport::to_csv`].
pub const CSV_HEADER: &str =
    "dataset,group,detector,auroc,aupr_in,aupr_out,fpr95,fpr95_id_positive";

/// The dataset label of near/far mean rows in every rendering.
pub const MEAN_LABEL: &str = "mean";

/// A legend for the human-readable tables, to print under them.
pub const LEGEND: &str = "Values in %. FPR@95: OOD positive, FPR of ID at 95% TPR of OOD \
(OpenOOD v1.5). FPR@95 ID-pos: ID positive, FPR of OOD at 95% TPR of ID (energy paper).";

/// How far an OOD dataset is from the ID data (OpenOOD v1.5's split of OOD sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OodGroup {
    /// Near-OOD: semantically close to ID (e.g. CIFAR-100 against CIFAR-10).
    Near,
    /// Far-OOD: clearly different data (e.g. SVHN or MNIST against CIFAR-10).
    Far,
}

impl OodGroup {
    /// `"near"` or `"far"`.
    pub fn as_str(self) -> &'static str {
        match self {
            OodGroup::Near => "near",
            OodGroup::Far => "far",
        }
    }
}

impl fmt::Display for OodGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OodGroup {
    type Err = EvalError;

    /// Parses `near` or `far` (any case).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "near" => Ok(OodGroup::Near),
            "far" => Ok(OodGroup::Far),
            _ => Err(EvalError::UnknownGroup {
                name: s.to_string(),
            }),
        }
    }
}

/// The metrics of one detector on one OOD dataset. Serializes flat, as an entry of the
/// `"ood"` list of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OodRow {
    /// OOD dataset name, e.g. `"svhn"`.
    pub dataset: String,
    /// Near- or far-OOD.
    pub group: OodGroup,
    /// Detector name, e.g. `"energy"`.
    pub detector: String,
    /// The metrics.
    #[serde(flatten)]
    pub metrics: OodMetrics,
}

impl OodRow {
    /// A row from its parts.
    pub fn new(
        dataset: impl Into<String>,
        group: OodGroup,
        detector: impl Into<String>,
        metrics: OodMetrics,
    ) -> Self {
        Self {
            dataset: dataset.into(),
            group,
            detector: detector.into(),
            metrics,
        }
    }
}

/// The mean of one detector's metrics over the datasets of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMean {
    /// Near- or far-OOD.
    pub group: OodGroup,
    /// Detector name.
    pub detector: String,
    /// How many dataset rows were averaged.
    pub num_datasets: usize,
    /// Field-wise mean of their metrics.
    #[serde(flatten)]
    pub metrics: OodMetrics,
}

/// Reference numbers from a paper, as fractions in `[0, 1]`; either may be missing.
///
/// `fpr95` is shown next to this crate's OOD-positive `fpr95`: make sure the paper uses the
/// same convention (many pre-OpenOOD papers report the ID-positive one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PaperMetrics {
    /// The paper's AUROC.
    pub auroc: Option<f64>,
    /// The paper's FPR@95TPR.
    pub fpr95: Option<f64>,
}

/// Paper numbers keyed by (dataset name, or `"near"`/`"far"` for group means; detector).
pub type PaperNumbers = BTreeMap<(String, String), PaperMetrics>;

/// A table of OOD results with optional paper numbers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OodReport {
    /// Per-dataset rows, rendered in this order.
    pub rows: Vec<OodRow>,
    /// Paper numbers to show side by side (empty: no paper columns).
    pub paper: PaperNumbers,
}

/// Field-wise means per (detector, group): detectors in order of first appearance, `near`
/// before `far`, groups without rows left out.
pub fn group_means(rows: &[OodRow]) -> Vec<GroupMean> {
    let mut detectors: Vec<&str> = Vec::new();
    for row in rows {
        if !detectors.contains(&row.detector.as_str()) {
            detectors.push(&row.detector);
        }
    }
    let mut means = Vec::new();
    for detector in detectors {
        for group in [OodGroup::Near, OodGroup::Far] {
            let members: Vec<&OodMetrics> = rows
                .iter()
                .filter(|r| r.detector == detector && r.group == group)
                .map(|r| &r.metrics)
                .collect();
            if members.is_empty() {
                continue;
            }
            let n = members.len() as f64;
            let mean = |f: fn(&OodMetrics) -> f64| members.iter().map(|m| f(m)).sum::<f64>() / n;
            means.push(GroupMean {
                group,
                detector: detector.to_string(),
                num_datasets: members.len(),
                metrics: OodMetrics {
                    auroc: mean(|m| m.auroc),
                    aupr_in: mean(|m| m.aupr_in),
                    aupr_out: mean(|m| m.aupr_out),
                    fpr95: mean(|m| m.fpr95),
                    fpr95_id_positive: mean(|m| m.fpr95_id_positive),
                },
            });
        }
    }
    means
}

impl OodReport {
    /// A report over `rows`, without paper numbers.
    pub fn new(rows: Vec<OodRow>) -> Self {
        Self {
            rows,
            paper: PaperNumbers::new(),
        }
    }

    /// Adds paper numbers to show side by side.
    pub fn with_paper(mut self, paper: PaperNumbers) -> Self {
        self.paper = paper;
        self
    }

    /// Appends a row.
    pub fn push(&mut self, row: OodRow) {
        self.rows.push(row);
    }

    /// Near/far means per detector; see [`group_means`].
    pub fn means(&self) -> Vec<GroupMean> {
        group_means(&self.rows)
    }

    /// An aligned plain-text table: text columns left-aligned, percentages right-aligned
    /// with two decimals, a dashed rule under the header and before the mean rows.
    pub fn to_terminal(&self) -> String {
        let table = self.table();
        let widths: Vec<usize> = (0..table.columns.len())
            .map(|c| {
                std::iter::once(table.columns[c].title.chars().count())
                    .chain(
                        table
                            .body
                            .iter()
                            .chain(&table.means)
                            .map(|r| r[c].chars().count()),
                    )
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&table.columns)
                .zip(&widths)
                .map(|((cell, col), &w)| {
                    if col.numeric {
                        format!("{cell:>w$}")
                    } else {
                        format!("{cell:<w$}")
                    }
                })
                .collect();
            padded.join("  ").trim_end().to_string()
        };
        let rule = widths
            .iter()
            .map(|&w| "-".repeat(w))
            .collect::<Vec<_>>()
            .join("  ");
        let titles: Vec<String> = table.columns.iter().map(|c| c.title.to_string()).collect();
        let mut out = vec![line(&titles), rule.clone()];
        out.extend(table.body.iter().map(|r| line(r)));
        if !table.means.is_empty() {
            out.push(rule);
            out.extend(table.means.iter().map(|r| line(r)));
        }
        out.join("\n") + "\n"
    }

    /// A GitHub-flavoured Markdown table (percentages with two decimals, numbers
    /// right-aligned); mean rows follow the dataset rows.
    pub fn to_markdown(&self) -> String {
        let table = self.table();
        let row = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
        let escape = |s: &String| s.replace('|', "\\|");
        let mut out = vec![
            row(table.columns.iter().map(|c| c.title.to_string()).collect()),
            format!(
                "|{}|",
                table
                    .columns
                    .iter()
                    .map(|c| if c.numeric { "---:" } else { ":---" })
                    .collect::<Vec<_>>()
                    .join("|")
            ),
        ];
        out.extend(
            table
                .body
                .iter()
                .chain(&table.means)
                .map(|r| row(r.iter().map(escape).collect())),
        );
        out.join("\n") + "\n"
    }

    /// CSV with header [`CSV_HEADER`], raw fractions (shortest round-trip form), dataset
    /// rows then mean rows (dataset `mean`). Paper numbers are not included. Fields with a
    /// comma, quote or line break are quoted (RFC 4180).
    pub fn to_csv(&self) -> String {
        let mut out = String::from(CSV_HEADER);
        out.push('\n');
        let mut push = |dataset: &str, group: OodGroup, detector: &str, m: &OodMetrics| {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                csv_field(dataset),
                group,
                csv_field(detector),
                m.auroc,
                m.aupr_in,
                m.aupr_out,
                m.fpr95,
                m.fpr95_id_positive
            ));
        };
        for r in &self.rows {
            push(&r.dataset, r.group, &r.detector, &r.metrics);
        }
        for m in self.means() {
            push(MEAN_LABEL, m.group, &m.detector, &m.metrics);
        }
        out
    }

    /// JSON: `{"ood": [rows], "ood_mean": [group means]}`, plus
    /// `"paper": [{"target", "detector", "auroc", "fpr95"}]` when there are paper numbers.
    /// Rows have the flat `metrics.json` shape; non-finite numbers become `null`.
    ///
    /// # Errors
    /// [`EvalError::Json`] if serialization fails (it does not for these types; the
    /// `Result` is kept so callers need not rely on that).
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut object = serde_json::Map::new();
        object.insert("ood".into(), serde_json::to_value(&self.rows)?);
        object.insert("ood_mean".into(), serde_json::to_value(self.means())?);
        if !self.paper.is_empty() {
            let paper: Vec<serde_json::Value> = self
                .paper
                .iter()
                .map(|((target, detector), p)| {
                    serde_json::json!({
                        "target": target,
                        "detector": detector,
                        "auroc": p.auroc,
                        "fpr95": p.fpr95,
                    })
                })
                .collect();
            object.insert("paper".into(), serde_json::Value::Array(paper));
        }
        Ok(serde_json::Value::Object(object))
    }

    /// The cells shared by the terminal and Markdown renderings.
    fn table(&self) -> Table {
        let with_paper = !self.paper.is_empty();
        let mut columns = vec![
            Column::text("dataset"),
            Column::text("group"),
            Column::text("detector"),
            Column::number("AUROC"),
        ];
        if with_paper {
            columns.push(Column::number("AUROC (paper)"));
        }
        columns.extend([
            Column::number("AUPR-In"),
            Column::number("AUPR-Out"),
            Column::number("FPR@95"),
        ]);
        if with_paper {
            columns.push(Column::number("FPR@95 (paper)"));
        }
        columns.push(Column::number("FPR@95 ID-pos"));

        let cells = |dataset: &str, group: OodGroup, detector: &str, key: &str, m: &OodMetrics| {
            let paper = self
                .paper
                .get(&(key.to_string(), detector.to_string()))
                .copied()
                .unwrap_or_default();
            let mut row = vec![
                dataset.to_string(),
                group.to_string(),
                detector.to_string(),
                percent(m.auroc),
            ];
            if with_paper {
                row.push(paper.auroc.map_or_else(|| "-".to_string(), percent));
            }
            row.extend([percent(m.aupr_in), percent(m.aupr_out), percent(m.fpr95)]);
            if with_paper {
                row.push(paper.fpr95.map_or_else(|| "-".to_string(), percent));
            }
            row.push(percent(m.fpr95_id_positive));
            row
        };
        Table {
            body: self
                .rows
                .iter()
                .map(|r| cells(&r.dataset, r.group, &r.detector, &r.dataset, &r.metrics))
                .collect(),
            means: self
                .means()
                .iter()
                .map(|m| {
                    cells(
                        MEAN_LABEL,
                        m.group,
                        &m.detector,
                        m.group.as_str(),
                        &m.metrics,
                    )
                })
                .collect(),
            columns,
        }
    }
}

/// A column of the human-readable tables.
struct Column {
    title: &'static str,
    numeric: bool,
}

impl Column {
    fn text(title: &'static str) -> Self {
        Self {
            title,
            numeric: false,
        }
    }

    fn number(title: &'static str) -> Self {
        Self {
            title,
            numeric: true,
        }
    }
}

/// Column titles and cell strings, before alignment.
struct Table {
    columns: Vec<Column>,
    body: Vec<Vec<String>>,
    means: Vec<Vec<String>>,
}

/// A fraction as a percentage with two decimals.
fn percent(fraction: f64) -> String {
    format!("{:.2}", 100.0 * fraction)
}

/// Quotes a CSV field when it holds a comma, quote or line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(
        auroc: f64,
        aupr_in: f64,
        aupr_out: f64,
        fpr95: f64,
        fpr95_id_positive: f64,
    ) -> OodMetrics {
        OodMetrics {
            auroc,
            aupr_in,
            aupr_out,
            fpr95,
            fpr95_id_positive,
        }
    }

    /// Two detectors; msp has one near and two far datasets, energy one near.
    fn example() -> OodReport {
        OodReport::new(vec![
            OodRow::new(
                "cifar100",
                OodGroup::Near,
                "msp",
                m(0.8803, 0.9, 0.85, 0.5, 0.45),
            ),
            OodRow::new("svhn", OodGroup::Far, "msp", m(0.9, 0.95, 0.8, 0.3, 0.25)),
            OodRow::new("mnist", OodGroup::Far, "msp", m(0.95, 0.97, 0.9, 0.2, 0.15)),
            OodRow::new(
                "cifar100",
                OodGroup::Near,
                "energy",
                m(0.8712, 0.8899, 0.8, 0.6123, 0.4),
            ),
        ])
    }

    #[test]
    fn means_are_per_detector_and_group() {
        let means = example().means();
        let keys: Vec<(OodGroup, &str, usize)> = means
            .iter()
            .map(|g| (g.group, g.detector.as_str(), g.num_datasets))
            .collect();
        assert_eq!(
            keys,
            vec![
                (OodGroup::Near, "msp", 1),
                (OodGroup::Far, "msp", 2),
                (OodGroup::Near, "energy", 1)
            ]
        );
        assert_eq!(means[0].metrics, example().rows[0].metrics);
        assert!((means[1].metrics.auroc - 0.925).abs() < 1e-15);
        assert!((means[1].metrics.fpr95_id_positive - 0.2).abs() < 1e-15);
        assert!(group_means(&[]).is_empty());
    }

    #[test]
    fn terminal_table() {
        let expected = "\
dataset   group  detector  AUROC  AUPR-In  AUPR-Out  FPR@95  FPR@95 ID-pos
--------  -----  --------  -----  -------  --------  ------  -------------
cifar100  near   msp       88.03    90.00     85.00   50.00          45.00
svhn      far    msp       90.00    95.00     80.00   30.00          25.00
mnist     far    msp       95.00    97.00     90.00   20.00          15.00
cifar100  near   energy    87.12    88.99     80.00   61.23          40.00
--------  -----  --------  -----  -------  --------  ------  -------------
mean      near   msp       88.03    90.00     85.00   50.00          45.00
mean      far    msp       92.50    96.00     85.00   25.00          20.00
mean      near   energy    87.12    88.99     80.00   61.23          40.00
";
        assert_eq!(example().to_terminal(), expected);
    }

    #[test]
    fn markdown_table() {
        let expected = "\
| dataset | group | detector | AUROC | AUPR-In | AUPR-Out | FPR@95 | FPR@95 ID-pos |
|:---|:---|:---|---:|---:|---:|---:|---:|
| cifar100 | near | msp | 88.03 | 90.00 | 85.00 | 50.00 | 45.00 |
| svhn | far | msp | 90.00 | 95.00 | 80.00 | 30.00 | 25.00 |
| mnist | far | msp | 95.00 | 97.00 | 90.00 | 20.00 | 15.00 |
| cifar100 | near | energy | 87.12 | 88.99 | 80.00 | 61.23 | 40.00 |
| mean | near | msp | 88.03 | 90.00 | 85.00 | 50.00 | 45.00 |
| mean | far | msp | 92.50 | 96.00 | 85.00 | 25.00 | 20.00 |
| mean | near | energy | 87.12 | 88.99 | 80.00 | 61.23 | 40.00 |
";
        assert_eq!(example().to_markdown(), expected);
    }

    #[test]
    fn csv_table() {
        // Means as f64 prints them: (0.9 + 0.95) / 2 = 0.925, (0.95 + 0.97) / 2 = 0.96,
        // (0.3 + 0.2) / 2 = 0.25, (0.25 + 0.15) / 2 = 0.2 (Python prints the same).
        let expected = "\
dataset,group,detector,auroc,aupr_in,aupr_out,fpr95,fpr95_id_positive
cifar100,near,msp,0.8803,0.9,0.85,0.5,0.45
svhn,far,msp,0.9,0.95,0.8,0.3,0.25
mnist,far,msp,0.95,0.97,0.9,0.2,0.15
cifar100,near,energy,0.8712,0.8899,0.8,0.6123,0.4
mean,near,msp,0.8803,0.9,0.85,0.5,0.45
mean,far,msp,0.925,0.96,0.8500000000000001,0.25,0.2
mean,near,energy,0.8712,0.8899,0.8,0.6123,0.4
";
        assert_eq!(example().to_csv(), expected);
    }

    #[test]
    fn csv_quotes_awkward_names() {
        let report = OodReport::new(vec![OodRow::new(
            "a,b \"c\"",
            OodGroup::Far,
            "energy:T=2",
            m(1.0, 1.0, 1.0, 0.0, 0.0),
        )]);
        let csv = report.to_csv();
        assert_eq!(
            csv.lines().nth(1),
            Some("\"a,b \"\"c\"\"\",far,energy:T=2,1,1,1,0,0")
        );
    }

    #[test]
    fn paper_numbers_side_by_side() {
        let mut paper = PaperNumbers::new();
        paper.insert(
            ("svhn".into(), "msp".into()),
            PaperMetrics {
                auroc: Some(0.9146),
                fpr95: Some(0.2594),
            },
        );
        paper.insert(
            ("far".into(), "msp".into()),
            PaperMetrics {
                auroc: Some(0.9173),
                fpr95: None,
            },
        );
        let report = OodReport::new(example().rows[1..3].to_vec()).with_paper(paper);
        let expected = "\
dataset  group  detector  AUROC  AUROC (paper)  AUPR-In  AUPR-Out  FPR@95  FPR@95 (paper)  FPR@95 ID-pos
-------  -----  --------  -----  -------------  -------  --------  ------  --------------  -------------
svhn     far    msp       90.00          91.46    95.00     80.00   30.00           25.94          25.00
mnist    far    msp       95.00              -    97.00     90.00   20.00               -          15.00
-------  -----  --------  -----  -------------  -------  --------  ------  --------------  -------------
mean     far    msp       92.50          91.73    96.00     85.00   25.00               -          20.00
";
        assert_eq!(report.to_terminal(), expected);
        let md = report.to_markdown();
        assert!(md.starts_with(
            "| dataset | group | detector | AUROC | AUROC (paper) | AUPR-In | AUPR-Out | FPR@95 | \
             FPR@95 (paper) | FPR@95 ID-pos |\n|:---|:---|:---|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        assert!(
            md.contains("| mean | far | msp | 92.50 | 91.73 | 96.00 | 85.00 | 25.00 | - | 20.00 |")
        );
        // CSV keeps its fixed header.
        assert!(report.to_csv().starts_with(&format!("{CSV_HEADER}\n")));
        let json = report.to_json().unwrap();
        assert_eq!(
            json["paper"],
            serde_json::json!([
                {"target": "far", "detector": "msp", "auroc": 0.9173, "fpr95": null},
                {"target": "svhn", "detector": "msp", "auroc": 0.9146, "fpr95": 0.2594},
            ])
        );
    }

    #[test]
    fn json_rows_are_flat() {
        let report = OodReport::new(example().rows[..2].to_vec());
        let expected = serde_json::json!({
            "ood": [
                {"dataset": "cifar100", "group": "near", "detector": "msp", "auroc": 0.8803,
                 "aupr_in": 0.9, "aupr_out": 0.85, "fpr95": 0.5, "fpr95_id_positive": 0.45},
                {"dataset": "svhn", "group": "far", "detector": "msp", "auroc": 0.9,
                 "aupr_in": 0.95, "aupr_out": 0.8, "fpr95": 0.3, "fpr95_id_positive": 0.25},
            ],
            "ood_mean": [
                {"group": "near", "detector": "msp", "num_datasets": 1, "auroc": 0.8803,
                 "aupr_in": 0.9, "aupr_out": 0.85, "fpr95": 0.5, "fpr95_id_positive": 0.45},
                {"group": "far", "detector": "msp", "num_datasets": 1, "auroc": 0.9,
                 "aupr_in": 0.95, "aupr_out": 0.8, "fpr95": 0.3, "fpr95_id_positive": 0.25},
            ],
        });
        assert_eq!(report.to_json().unwrap(), expected);
        // Rows read back from their JSON form.
        let row: OodRow = serde_json::from_value(expected["ood"][1].clone()).unwrap();
        assert_eq!(row, report.rows[1]);
    }

    #[test]
    fn empty_report_renders_headers_only() {
        let report = OodReport::default();
        assert_eq!(report.to_csv(), format!("{CSV_HEADER}\n"));
        assert_eq!(report.to_terminal().lines().count(), 2);
        assert_eq!(report.to_markdown().lines().count(), 2);
        assert_eq!(
            report.to_json().unwrap(),
            serde_json::json!({"ood": [], "ood_mean": []})
        );
    }

    #[test]
    fn groups_parse() {
        assert_eq!("Near".parse::<OodGroup>().unwrap(), OodGroup::Near);
        assert_eq!(" far ".parse::<OodGroup>().unwrap(), OodGroup::Far);
        assert!(matches!(
            "middle".parse::<OodGroup>(),
            Err(EvalError::UnknownGroup { .. })
        ));
    }
}
