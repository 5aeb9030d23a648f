//! The experiment configuration: a TOML file, strictly checked.
//!
//! Unknown keys are rejected with their full path (`train.lr_max: unknown field ...`), and
//! `--set a.b=c` overrides are applied to the parsed TOML before it is checked, so an
//! override goes through exactly the same validation as the file (the CLI wins).
//! The resolved configuration is saved as `config.toml` in every run folder.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use unseen_backbones::BackboneSpec;
use unseen_data::splits::{DatasetRef, OodBenchmark, OodSet};
use unseen_data::transforms::Augment;

/// A whole experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name: the run folder is `<output_dir>/<name>`.
    pub name: String,
    /// Master seed: initialisation, shuffling, augmentation and mixing all derive from it.
    #[serde(default)]
    pub seed: u64,
    /// Training method: `supervised`, `oe`, `energy_oe` or `mixoe`.
    pub recipe: RecipeKind,
    /// Parent folder of run folders.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// The network.
    pub model: BackboneSpec,
    /// Datasets.
    pub data: DataConfig,
    /// Optimisation.
    pub train: TrainConfig,
    /// Loss settings of the recipe (paper defaults when absent).
    #[serde(default)]
    pub loss: LossConfig,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalConfig,
    /// The paper's published numbers, shown next to ours in the report.
    #[serde(default)]
    pub paper: Option<PaperConfig>,
    /// Category-discovery settings (split, heads, method hyper-parameters) for the `gcd`,
    /// `simgcd` and `protogcd` recipes.
    #[serde(default)]
    pub gcd: Option<crate::gcd::GcdSection>,
    /// Open-set semi-supervised settings (split, heads, method hyper-parameters) for the
    /// `fixmatch` and `iomatch` recipes.
    #[serde(default)]
    pub ossl: Option<crate::ossl::OsslSection>,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("experiments")
}

/// The training methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipeKind {
    /// Cross-entropy on the ID data only.
    Supervised,
    /// Outlier Exposure (Hendrycks et al., ICLR 2019).
    Oe,
    /// Energy-bounded Outlier Exposure (Liu et al., NeurIPS 2020).
    EnergyOe,
    /// Mixture Outlier Exposure (Zhang et al., WACV 2023).
    Mixoe,
    /// Generalized category discovery (Vaze et al., CVPR 2022): contrastive + SupCon
    /// training, then semi-supervised k-means ([`crate::gcd`]).
    Gcd,
    /// SimGCD (Wen et al., ICCV 2023) ([`crate::gcd`]).
    Simgcd,
    /// ProtoGCD (Ma et al., TPAMI 2025) ([`crate::gcd`]).
    Protogcd,
    /// FixMatch (Sohn et al., NeurIPS 2020) on open-set data ([`crate::ossl`]).
    Fixmatch,
    /// IOMatch (Li et al., ICCV 2023) ([`crate::ossl`]).
    Iomatch,
}

/// Which training loop a recipe runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipeFamily {
    /// Supervised / OE family on [`crate::train`]: ID classification + OOD detection.
    Ood,
    /// Category discovery on [`crate::gcd`].
    Gcd,
    /// Open-set semi-supervised learning on [`crate::ossl`].
    Ossl,
}

impl RecipeKind {
    /// Whether the recipe consumes an auxiliary outlier stream.
    pub fn needs_outliers(self) -> bool {
        matches!(
            self,
            RecipeKind::Oe | RecipeKind::EnergyOe | RecipeKind::Mixoe
        )
    }

    /// The loop the recipe trains on.
    pub fn family(self) -> RecipeFamily {
        match self {
            RecipeKind::Supervised | RecipeKind::Oe | RecipeKind::EnergyOe | RecipeKind::Mixoe => {
                RecipeFamily::Ood
            }
            RecipeKind::Gcd | RecipeKind::Simgcd | RecipeKind::Protogcd => RecipeFamily::Gcd,
            RecipeKind::Fixmatch | RecipeKind::Iomatch => RecipeFamily::Ossl,
        }
    }

    /// The name used in configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            RecipeKind::Supervised => "supervised",
            RecipeKind::Oe => "oe",
            RecipeKind::EnergyOe => "energy_oe",
            RecipeKind::Mixoe => "mixoe",
            RecipeKind::Gcd => "gcd",
            RecipeKind::Simgcd => "simgcd",
            RecipeKind::Protogcd => "protogcd",
            RecipeKind::Fixmatch => "fixmatch",
            RecipeKind::Iomatch => "iomatch",
        }
    }
}

/// Datasets of an experiment: ID train/test (train and test splits of `id`), the auxiliary
/// outliers (train split) and the OOD test sets (test splits). The dataset descriptions are
/// `unseen_data`'s ([`DatasetRef`], [`OodSet`]), validated as an [`OodBenchmark`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Name of the ID dataset in reports, e.g. `mnist-0-5`.
    pub id_name: String,
    /// In-distribution data.
    pub id: DatasetRef,
    /// Auxiliary outliers for OE-style recipes (train split).
    #[serde(default)]
    pub outliers: Option<DatasetRef>,
    /// OOD test sets.
    #[serde(default)]
    pub ood: Vec<OodSet>,
    /// Training augmentation and normalisation (evaluation uses the normalisation only).
    pub augment: Augment,
    /// Resize / centre crop applied once to every image when the data are loaded (e.g. 28 ->
    /// 32 pixels for a patch-16 ViT). Empty: images are used at their size.
    #[serde(default)]
    pub preprocess: unseen_data::transforms::Preprocess,
    /// The training splits' resize / crop when it differs from the test images'
    /// (`[data.preprocess]` then applies to test splits only). ImageNet-30 in IOMatch:
    /// training images `Resize((256, 256))` (`resize_to = [256, 256]`, cropped to 224 by the
    /// views), test images `Resize(256)` + `CenterCrop(224)`. Absent: `preprocess` for both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_preprocess: Option<unseen_data::transforms::Preprocess>,
}

impl DataConfig {
    /// The resize / crop of the training (`train`) or test splits: `train_preprocess` for
    /// training splits when it is set, else `preprocess`.
    pub fn preprocess_for(&self, train: bool) -> &unseen_data::transforms::Preprocess {
        match (&self.train_preprocess, train) {
            (Some(p), true) => p,
            _ => &self.preprocess,
        }
    }
}

/// Optimiser choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with (Nesterov) momentum and L2 weight decay, as PyTorch's `torch.optim.SGD`.
    Sgd,
    /// AdamW (decoupled weight decay).
    Adamw,
}

/// Optimisation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of epochs over the ID training set.
    pub epochs: usize,
    /// ID images per step.
    pub batch_size: usize,
    /// Outliers per step (OE uses twice the ID batch in the reference code).
    #[serde(default)]
    pub outlier_batch_size: Option<usize>,
    /// Optimiser.
    #[serde(default = "default_optimizer")]
    pub optimizer: OptimizerKind,
    /// Peak learning rate.
    pub lr: f64,
    /// Momentum (SGD) or beta1 (AdamW).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Nesterov momentum (SGD).
    #[serde(default = "default_true")]
    pub nesterov: bool,
    /// Weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Linear warm-up length in epochs (from 0 to `lr`), then cosine decay.
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Final learning rate as a fraction of `lr` (cosine end point).
    #[serde(default)]
    pub min_lr_ratio: f64,
    /// Clip the global gradient norm to this value (off when absent).
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Save a checkpoint every this many epochs (and always at the end).
    #[serde(default = "default_one")]
    pub checkpoint_every: usize,
    /// Evaluate (accuracy and AUROC per OOD set, logged to TensorBoard) every this many
    /// epochs; 0 = only at the end.
    #[serde(default)]
    pub eval_every: usize,
}

fn default_optimizer() -> OptimizerKind {
    OptimizerKind::Sgd
}
fn default_momentum() -> f64 {
    0.9
}
fn default_true() -> bool {
    true
}
fn default_one() -> usize {
    1
}

/// Per-recipe loss settings; each defaults to the paper's official values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LossConfig {
    /// Label smoothing of the ID cross-entropy (supervised and mixoe recipes).
    #[serde(default)]
    pub label_smoothing: f32,
    /// Outlier Exposure: weight λ of the uniform cross-entropy (0.5).
    #[serde(default)]
    pub oe_lambda: Option<f32>,
    /// Energy OE: weight of the margin term (0.1).
    #[serde(default)]
    pub energy_weight: Option<f32>,
    /// Energy OE: ID margin m_in (-23 for CIFAR-10).
    #[serde(default)]
    pub m_in: Option<f32>,
    /// Energy OE: outlier margin m_out (-5 for CIFAR-10).
    #[serde(default)]
    pub m_out: Option<f32>,
    /// MixOE: `mixup` or `cutmix`.
    #[serde(default)]
    pub mix: Option<String>,
    /// MixOE: Beta(α, α) parameter (1 for mixup, 2 for CutMix).
    #[serde(default)]
    pub alpha: Option<f32>,
    /// MixOE: weight β of the soft cross-entropy (5).
    #[serde(default)]
    pub beta: Option<f32>,
}

/// Evaluation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Detectors to report, e.g. `["msp", "maxlogit", "energy"]`.
    #[serde(default = "default_detectors")]
    pub detectors: Vec<String>,
    /// Images per inference batch.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            detectors: default_detectors(),
            batch_size: default_eval_batch(),
        }
    }
}

fn default_detectors() -> Vec<String> {
    vec!["msp".into(), "maxlogit".into(), "energy".into()]
}
fn default_eval_batch() -> usize {
    500
}

/// Published numbers for the report, keyed by OOD set or group name and detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperConfig {
    /// Citation.
    pub source: String,
    /// Published rows.
    #[serde(default)]
    pub rows: Vec<PaperRow>,
}

/// One published result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaperRow {
    /// OOD set name or group (`near`/`far`/`all`).
    pub dataset: String,
    /// Detector.
    pub detector: String,
    /// ID accuracy, when published.
    #[serde(default)]
    pub accuracy: Option<f64>,
    /// AUROC (fraction).
    #[serde(default)]
    pub auroc: Option<f64>,
    /// FPR@95 (fraction), in the convention given by `fpr_convention`.
    #[serde(default)]
    pub fpr95: Option<f64>,
    /// `ood-positive` (OpenOOD v1.5) or `id-positive` (energy paper).
    #[serde(default)]
    pub fpr_convention: Option<String>,
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

fn validate(cfg: &ExperimentConfig) -> Result<()> {
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
    d.id.validate()
        .map_err(|e| anyhow::anyhow!("[data.id]: {e}"))?;
    if let Some(o) = &d.outliers {
        o.validate()
            .map_err(|e| anyhow::anyhow!("[data.outliers]: {e}"))?;
    }
    if !d.ood.is_empty() {
        OodBenchmark {
            id: d.id.clone(),
            ood: d.ood.clone(),
        }
        .validate()
        .map_err(|e| anyhow::anyhow!("[[data.ood]]: {e}"))?;
    }
    for (key, p) in [
        ("[data.preprocess]", Some(&d.preprocess)),
        ("[data.train_preprocess]", d.train_preprocess.as_ref()),
    ] {
        if let Some(p) = p {
            p.validate().map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
        }
    }
    if d.train_preprocess.is_some() && cfg.recipe.family() == RecipeFamily::Gcd {
        bail!(
            "[data.train_preprocess]: category discovery evaluates on its training images, \
             which must therefore be preprocessed as the test images; remove the table and \
             use [data.preprocess]"
        );
    }
    if cfg.recipe.needs_outliers() && d.outliers.is_none() {
        bail!(
            "recipe `{}` needs auxiliary outliers: add a [data.outliers] table",
            cfg.recipe.name()
        );
    }
    if let Some(m) = &cfg.loss.mix {
        if m != "mixup" && m != "cutmix" {
            bail!("`loss.mix` must be \"mixup\" or \"cutmix\", got {m:?}");
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
    if cfg.loss.label_smoothing != 0.0
        && matches!(cfg.recipe, RecipeKind::Oe | RecipeKind::EnergyOe)
    {
        bail!(
            "`loss.label_smoothing` applies to the supervised and mixoe recipes; the OE references \
             use plain cross-entropy"
        );
    }
    check_loss(cfg)?;
    if cfg.eval.detectors.is_empty() {
        bail!("`eval.detectors` must name at least one detector");
    }
    Ok(())
}

/// Checks the `[loss]` values with the loss crate's own validation (ranges, `m_in < m_out`).
fn check_loss(cfg: &ExperimentConfig) -> Result<()> {
    let l = &cfg.loss;
    let r = match cfg.recipe {
        RecipeKind::Supervised => Ok(()),
        RecipeKind::Oe => l.oe().validate(),
        RecipeKind::EnergyOe => l.energy_oe().validate(),
        RecipeKind::Mixoe => l.mixoe().validate(),
        RecipeKind::Gcd | RecipeKind::Simgcd | RecipeKind::Protogcd => {
            return cfg
                .gcd
                .clone()
                .unwrap_or_default()
                .validate(cfg.recipe)
                .map_err(|e| anyhow::anyhow!("[gcd]: {e}"));
        }
        RecipeKind::Fixmatch | RecipeKind::Iomatch => {
            return cfg
                .ossl
                .clone()
                .unwrap_or_default()
                .validate(cfg.recipe)
                .map_err(|e| anyhow::anyhow!("[ossl]: {e}"));
        }
    };
    r.map_err(|e| anyhow::anyhow!("[loss]: {e}"))
}

impl LossConfig {
    /// The OE settings: the paper's defaults with this table's overrides.
    pub fn oe(&self) -> unseen_losses::oe::OutlierExposureConfig {
        let mut c = unseen_losses::oe::OutlierExposureConfig::new();
        if let Some(v) = self.oe_lambda {
            c.lambda = v;
        }
        c
    }

    /// The energy-OE settings: the paper's defaults with this table's overrides.
    pub fn energy_oe(&self) -> unseen_losses::oe::EnergyOeConfig {
        let mut c = unseen_losses::oe::EnergyOeConfig::new();
        if let Some(v) = self.energy_weight {
            c.weight = v;
        }
        if let Some(v) = self.m_in {
            c.m_in = v;
        }
        if let Some(v) = self.m_out {
            c.m_out = v;
        }
        c
    }

    /// The MixOE settings: the official defaults with this table's overrides.
    pub fn mixoe(&self) -> unseen_losses::mixoe::MixOeConfig {
        use unseen_losses::mixoe::{MixOeConfig, MixOp};
        let op = if self.mix.as_deref() == Some("cutmix") {
            MixOp::Cutmix
        } else {
            MixOp::Mixup
        };
        let mut c = MixOeConfig::new(op).with_alpha(self.alpha);
        if let Some(b) = self.beta {
            c.beta = b;
        }
        c
    }
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

impl PaperConfig {
    /// The published numbers keyed as the report expects. An FPR@95 published in the
    /// ID-positive convention is left out of the side-by-side column (it measures something
    /// else); it still appears in the report's list of published numbers.
    pub fn numbers(&self) -> unseen_eval::report::PaperNumbers {
        self.rows
            .iter()
            .map(|r| {
                let fpr = match r.fpr_convention.as_deref() {
                    Some("id-positive") => None,
                    _ => r.fpr95,
                };
                (
                    (r.dataset.clone(), r.detector.clone()),
                    unseen_eval::report::PaperMetrics {
                        auroc: r.auroc,
                        fpr95: fpr,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
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

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = from_str(MINIMAL).unwrap();
        assert_eq!(c.recipe, RecipeKind::Oe);
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
        assert_eq!(c.recipe, RecipeKind::Supervised);
        assert_eq!(c.loss.oe_lambda, Some(1.0));

        let mut v: toml::Value = toml::from_str(MINIMAL).unwrap();
        apply_override(&mut v, "train.lr=fast").unwrap();
        let err = format!("{:#}", from_value(v).unwrap_err());
        assert!(err.contains("train.lr"), "{err}");
        assert!(apply_override(&mut toml::Value::Table(Default::default()), "novalue").is_err());
    }

    #[test]
    fn oe_without_outliers_is_rejected() {
        let text = MINIMAL.replace(
            "[data.outliers]\nsource = \"fashion-mnist\"\npath = \"y\"\n",
            "",
        );
        let err = format!("{:#}", from_str(&text).unwrap_err());
        assert!(err.contains("needs auxiliary outliers"), "{err}");
    }

    #[test]
    fn resolved_config_round_trips() {
        let c = from_str(MINIMAL).unwrap();
        let back = from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(c, back);
    }

    #[test]
    fn every_shipped_config_parses_and_validates() {
        // configs/**/*.toml: the quickstart, the CPU configs and every paper config must load
        // (unknown keys, bad values and recipe/section mismatches are load errors).
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut dirs = vec![root];
        let mut n = 0;
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "toml") {
                    load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                    n += 1;
                }
            }
        }
        assert!(n >= 30, "only {n} configs found");
    }
}
