//! The tables every experiment has, whatever its family: `[data]`, `[train]`, `[eval]` and
//! `[paper]`.

use serde::{Deserialize, Serialize};
use unseen_data::splits::{DatasetRef, OodSet};
use unseen_data::transforms::Augment;

/// Datasets of an experiment: ID train/test (train and test splits of `id`), the auxiliary
/// outliers (train split) and the OOD test sets (test splits). The dataset descriptions are
/// `unseen_data`'s ([`DatasetRef`], [`OodSet`]), validated as an [`unseen_data::splits::OodBenchmark`].
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
    /// ID validation images (the test split of this dataset) for `eval.search`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_val: Option<DatasetRef>,
    /// OOD validation sets (`near`/`far`, test splits) for `eval.search`: each detector's
    /// hyper-parameters are chosen by the mean AUROC of `id_val` against these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ood_val: Vec<OodSet>,
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
    /// Choose each detector's hyper-parameters (OpenOOD v1.5's sweep lists) by validation
    /// AUROC on `[data.id_val]` against `[[data.ood_val]]`; the detectors named without
    /// parameters are searched, the others used as written.
    #[serde(default)]
    pub search: bool,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            detectors: default_detectors(),
            batch_size: default_eval_batch(),
            search: false,
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
