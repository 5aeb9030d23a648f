//! The experiment configuration: a TOML file, strictly checked.
//!
//! Unknown keys are rejected with their full path (`train.lr_max: unknown field ...`), and
//! `--set a.b=c` overrides are applied to the parsed TOML before it is checked, so an
//! override goes through exactly the same validation as the file (the CLI wins).
//! The resolved configuration is saved as `config.toml` in every run folder.
//!
//! This module knows the tables every experiment has ([`sections`]); it knows no family and
//! no method. `recipe` names a method, and the method's own table (`[loss]` for the OOD
//! methods, `[gcd]` / `[ossl]` for the category-discovery and open-set SSL families) is kept
//! here as raw TOML: the family that owns the recipe parses and checks it
//! (`crate::families::resolve`), so a new method brings its parameters without touching
//! this file.

pub mod sections;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use unseen_backbones::BackboneSpec;
use unseen_data::splits::OodBenchmark;

pub use sections::{DataConfig, EvalConfig, OptimizerKind, PaperConfig, PaperRow, TrainConfig};

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name: the run folder is `<output_dir>/<name>`.
    pub name: String,
    /// Master seed: initialisation, shuffling, augmentation and mixing all derive from it.
    #[serde(default)]
    pub seed: u64,
    /// Training method, by its registered name (`oe`, `simgcd`, `iomatch`, ...: each
    /// family's `methods/mod.rs` registers its own; an unknown name lists them all).
    pub recipe: String,
    /// Parent folder of run folders.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// The network.
    pub model: BackboneSpec,
    /// Datasets.
    pub data: DataConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// The OOD methods' parameters (paper defaults when absent), checked by the method.
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub loss: toml::Table,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalConfig,
    /// The paper's published numbers, shown next to ours in the report.
    #[serde(default)]
    pub paper: Option<PaperConfig>,
    /// Category-discovery settings (split, heads, method hyper-parameters), checked by the
    /// GCD family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcd: Option<toml::Table>,
    /// Open-set semi-supervised settings (split, heads, method hyper-parameters), checked by
    /// the open-set SSL family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ossl: Option<toml::Table>,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("experiments")
}

/// Reads a config file and applies `--set` overrides.
pub fn load(path: &Path, overrides: &[String]) -> Result<ExperimentConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    for o in overrides {
        apply_override(&mut value, o)?;
    }
    from_value(value).with_context(|| format!("invalid config {}", path.display()))
}

/// Checks a TOML value against the schema; errors name the key path.
pub fn from_value(value: toml::Value) -> Result<ExperimentConfig> {
    let cfg: ExperimentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("at `{path}`: {}", e.into_inner())
    })?;
    validate(&cfg)?;
    Ok(cfg)
}

/// Parses a config from a TOML string (tests and tools).
pub fn from_str(text: &str) -> Result<ExperimentConfig> {
    from_value(toml::from_str(text).context("not valid TOML")?)
}

/// Applies one `a.b.c=value` override. The value is read as TOML (`0.1`, `true`, `"x"`,
/// `[1, 2]`); anything that is not valid TOML is taken as a plain string, so `--set
/// recipe=oe` works without quotes. Intermediate tables are created as needed; the type is
/// checked when the whole config is validated, which names the key.
pub fn apply_override(root: &mut toml::Value, spec: &str) -> Result<()> {
    let Some((key, raw)) = spec.split_once('=') else {
        bail!("override `{spec}` must look like key.path=value (e.g. train.lr=0.05)");
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
        bail!("override `{spec}` has an empty key segment");
    }
    let raw = raw.trim();
    let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = root;
    for (i, p) in parts.iter().enumerate() {
        let table = cur.as_table_mut().with_context(|| {
            format!(
                "override `{spec}`: `{}` is not a table",
                parts[..i].join(".")
            )
        })?;
        if i + 1 == parts.len() {
            table.insert((*p).to_string(), parsed);
            return Ok(());
        }
        cur = table
            .entry((*p).to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    unreachable!("loop returns on the last segment")
}

/// The checks of the shared tables (the family checks its own).
fn validate(cfg: &ExperimentConfig) -> Result<()> {
    validate_search(cfg)?;
    if cfg.name.is_empty() || cfg.name.contains(['/', '\\']) || cfg.name == ".." {
        bail!("`name` must be a plain folder name, got {:?}", cfg.name);
    }
    let t = &cfg.train;
    if t.epochs == 0 {
        bail!("`train.epochs` must be at least 1");
    }
    if t.batch_size == 0 {
        bail!("`train.batch_size` must be at least 1");
    }
    if !(t.lr.is_finite() && t.lr > 0.0) {
        bail!("`train.lr` must be a positive number, got {}", t.lr);
    }
    if t.warmup_epochs >= t.epochs && t.warmup_epochs > 0 {
        bail!(
            "`train.warmup_epochs` ({}) must be smaller than `train.epochs` ({})",
            t.warmup_epochs,
            t.epochs
        );
    }
    if t.checkpoint_every == 0 {
        bail!("`train.checkpoint_every` must be at least 1");
    }
    let d = &cfg.data;
    d.augment.validate(cfg.model.in_channels).map_err(|e| {
        anyhow::anyhow!(
            "[data.augment] (model.in_channels = {}): {e}",
            cfg.model.in_channels
        )
    })?;
    // The ID set and the outliers are read from their training split (and the ID set also
    // from its test split); OOD and csid sets from their test split only.
    for (key, set) in [
        ("data.id", Some(&d.id)),
        ("data.outliers", d.outliers.as_ref()),
    ] {
        let Some(set) = set else { continue };
        if set.source == "file-list" && set.train_list.is_none() {
            bail!(
                "`{key}.train_list` is required: {key} (source \"file-list\" at {}) is read from \
                 its training split, given by a file of `<image path> <label>` lines relative to \
                 `path` (only [[data.ood]] sets, of which only `test_list` is read, may leave \
                 `train_list` out)",
                set.path.display()
            );
        }
        set.validate()
            .map_err(|e| anyhow::anyhow!("[{key}]: {e}"))?;
    }
    if !d.ood.is_empty() {
        OodBenchmark {
            id: d.id.clone(),
            ood: d.ood.clone(),
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("[[data.ood]]: {e}"))?;
        // A csid set's scores sit next to the ID test set's (`scores.csv`, group `id` /
        // `csid`, both `is_ood` 0): the two names must tell them apart.
        if let Some(o) = d
            .ood
            .iter()
            .find(|o| o.group.is_csid() && o.name == d.id_name)
        {
            bail!(
                "[[data.ood]]: the csid set {:?} has the name of the ID set (`data.id_name`); \
                 give it its own name",
                o.name
            );
        }
    }
    for (key, p) in [
        ("[data.preprocess]", Some(&d.preprocess)),
        ("[data.train_preprocess]", d.train_preprocess.as_ref()),
    ] {
        if let Some(p) = p {
            p.validate().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        }
    }
    if let Some(p) = &cfg.paper {
        for r in &p.rows {
            match r.fpr_convention.as_deref() {
                None | Some("ood-positive") | Some("id-positive") => {}
                Some(o) => bail!(
                    "`paper.rows.fpr_convention` must be \"ood-positive\" or \"id-positive\", got {o:?}"
                ),
            }
        }
    }
    if cfg.eval.detectors.is_empty() {
        bail!("`eval.detectors` must name at least one detector");
    }
    Ok(())
}

impl ExperimentConfig {
    /// The resolved configuration as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).context("cannot serialise the config")
    }

    /// The run folder.
    pub fn run_dir(&self) -> PathBuf {
        self.output_dir.join(&self.name)
    }
}

/// A minimal valid experiment (an OE run on MNIST 0-5), for the crate's unit tests.
#[cfg(test)]
pub(crate) const MINIMAL: &str = r#"
name = "t"
recipe = "oe"
[model]
name = "resnet_small"
in_channels = 1
[data]
id_name = "mnist-0-5"
[data.augment]
mean = [0.13]
std = [0.31]
[data.id]
source = "mnist"
path = "x"
classes = "0-5"
[data.outliers]
source = "fashion-mnist"
path = "y"
[train]
epochs = 2
batch_size = 8
lr = 0.1
"#;

/// `eval.search` needs `[data.id_val]` and at least one `[[data.ood_val]]` (near/far); the
/// validation sets are read only by a search.
fn validate_search(cfg: &ExperimentConfig) -> Result<()> {
    let d = &cfg.data;
    if cfg.eval.search {
        if d.id_val.is_none() || d.ood_val.is_empty() {
            bail!(
                "`eval.search = true` chooses hyper-parameters on validation sets: it needs \
                 `[data.id_val]` (ID validation images) and at least one `[[data.ood_val]]`"
            );
        }
    } else if d.id_val.is_some() || !d.ood_val.is_empty() {
        bail!(
            "`[data.id_val]` / `[[data.ood_val]]` are read only by a hyper-parameter search: \
             set `eval.search = true` (or remove them)"
        );
    }
    for (i, o) in d.ood_val.iter().enumerate() {
        if o.group.is_csid() {
            bail!(
                "`data.ood_val[{i}]` ({}): validation OOD sets are `near` or `far`",
                o.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = from_str(MINIMAL).unwrap();
        assert_eq!(c.recipe, "oe");
        assert_eq!(c.train.optimizer, OptimizerKind::Sgd);
        assert_eq!(c.eval.detectors, vec!["msp", "maxlogit", "energy"]);
        assert_eq!(c.run_dir(), PathBuf::from("experiments/t"));
    }

    #[test]
    fn unknown_key_names_its_path() {
        let text = MINIMAL.replace("lr = 0.1", "lr = 0.1\nlr_max = 3");
        let err = format!("{:#}", from_str(&text).unwrap_err());
        assert!(
            err.contains("train.lr_max") || err.contains("`train`") && err.contains("lr_max"),
            "{err}"
        );
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn overrides_win_and_are_type_checked() {
        let mut v: toml::Value = toml::from_str(MINIMAL).unwrap();
        apply_override(&mut v, "train.lr=0.05").unwrap();
        apply_override(&mut v, "recipe=supervised").unwrap();
        apply_override(&mut v, "loss.oe_lambda=1").unwrap();
        let c = from_value(v).unwrap();
        assert_eq!(c.train.lr, 0.05);
        assert_eq!(c.recipe, "supervised");
        assert_eq!(c.loss["oe_lambda"].as_integer(), Some(1));

        let mut v: toml::Value = toml::from_str(MINIMAL).unwrap();
        apply_override(&mut v, "train.lr=fast").unwrap();
        let err = format!("{:#}", from_value(v).unwrap_err());
        assert!(err.contains("train.lr"), "{err}");
        assert!(apply_override(&mut toml::Value::Table(Default::default()), "novalue").is_err());
    }

    /// A file-list `[[data.ood]]` set needs only `test_list`; `data.id` and
    /// `data.outliers` read their training split and need `train_list`, named by its path.
    #[test]
    fn file_list_train_list_is_required_only_where_the_train_split_is_read() {
        let base = MINIMAL
            .replace(
                "source = \"mnist\"\npath = \"x\"\nclasses = \"0-5\"",
                "source = \"file-list\"\npath = \"images\"\ntrain_list = \"../lists/train_id.txt\"\n\
                 test_list = \"../lists/test_id.txt\"",
            )
            .replace("recipe = \"oe\"", "recipe = \"supervised\"")
            .replace("[data.outliers]\nsource = \"fashion-mnist\"\npath = \"y\"\n", "");
        let with_ood = format!(
            "{base}\n[[data.ood]]\nname = \"svhn\"\ngroup = \"far\"\n\
             dataset = {{ source = \"file-list\", path = \"images\", test_list = \"../lists/test_svhn.txt\" }}\n"
        );
        let c = from_str(&with_ood).unwrap();
        assert_eq!(c.data.ood[0].dataset.train_list, None);

        let no_id_train = with_ood.replace("train_list = \"../lists/train_id.txt\"\n", "");
        let e = format!("{:#}", from_str(&no_id_train).unwrap_err());
        assert!(e.contains("`data.id.train_list` is required"), "{e}");

        let outliers = format!(
            "{with_ood}\n[data.outliers]\nsource = \"file-list\"\npath = \"images\"\n\
             test_list = \"../lists/tin.txt\"\n"
        );
        let e = format!("{:#}", from_str(&outliers).unwrap_err());
        assert!(e.contains("`data.outliers.train_list` is required"), "{e}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = from_str(MINIMAL).unwrap();
        let back = from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(c, back);
    }
}
