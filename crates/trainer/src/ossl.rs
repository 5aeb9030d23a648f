//! Open-set semi-supervised learning (OSSL): the `fixmatch` and `iomatch` recipes.
//!
//! A few labels per *seen* class, an unlabelled pool holding images of *unseen* classes too
//! ([`unseen_data::splits::ossl`]), and a network that must classify the seen classes
//! (closed-set accuracy) and reject the unseen ones (open-set balanced accuracy over `K + 1`
//! classes, AUROC of an unknown score).
//!
//! # References
//! - USB (`microsoft/Semi-supervised-learning`) as vendored by IOMatch (`nukezil/IOMatch`):
//!   `semilearn/core/algorithmbase.py` (loop, EMA, evaluation), `semilearn/core/utils/build.py`
//!   (`get_optimizer`, `get_cosine_schedule_with_warmup`), `semilearn/core/utils/misc.py`
//!   (`EMA`), `semilearn/core/hooks/ema.py` (`EMAHook`), `semilearn/datasets/samplers/
//!   sampler.py` (`RandomSampler`), `config/openset_cv/{fixmatch,iomatch}/*.yaml`.
//! - IOMatch (`semilearn/algorithms/iomatch/iomatch.py`): `IOMatchNet` ([`IoMatchHeads`]) and
//!   `train_step` ([`unseen_losses::iomatch::iomatch_loss`]); `evaluate.ipynb`
//!   (`evaluate_io`) for the open-set metrics.
//! - FixMatch: `semilearn/algorithms/fixmatch/fixmatch.py`
//!   ([`unseen_losses::fixmatch::fixmatch_loss`]).
//!
//! # The loop (USB `AlgorithmBase.train`)
//! Every iteration draws `B` labelled images (one weak view) and `μ·B` unlabelled images (a
//! weak and a strong view), forwards `cat(x_lb, x_ulb_w, x_ulb_s)` in **one** pass (USB's
//! `use_cat = True`, so BatchNorm sees the three groups together), takes one SGD step
//! (Nesterov, momentum 0.9, L2 weight decay), then updates the EMA model. The learning rate
//! follows USB's `get_cosine_schedule_with_warmup`: `lr·cos(7π/16 · t/T)` over the iteration
//! budget `T` ([`usb_cosine_lr`]; `lr_schedule = "cosine"` uses [`crate::optim::lr_at`]
//! instead). Evaluation (every `eval_every_iters` iterations and at the end) uses the **EMA**
//! model, as USB's `evaluate` (`ema.apply_shadow()`).
//!
//! Units: an *epoch* is `iters_per_epoch` iterations (USB: `num_train_iter / epoch`, 1024 in
//! every IOMatch config) and `train.epochs` counts them (USB `epoch`, 256), so the budget is
//! `train.epochs × ossl.iters_per_epoch` iterations (262,144 in the papers). IOMatch's open-set
//! loss is switched off during epoch 0 (`if self.epoch == 0: op_loss *= 0.0`); checkpoints are
//! written at epoch ends (`train.checkpoint_every`), so `--resume` continues exactly.
//!
//! # Sampling
//! USB's `RandomSampler` concatenates fresh permutations of the set until it has
//! `iterations × batch` indices, so a labelled set smaller than the batch (24 images for
//! CIFAR-6-24 against `B = 64`) still fills every batch, each image at most once per
//! permutation. [`ViewStream`] does the same with seeded permutations: position `p` of the
//! stream is entry `p mod n` of permutation `⌊p / n⌋`, and view `v` of the `k`-th image of
//! iteration `t` is augmented with its own generator derived from `(seed, stream, t, k, v)`.
//! Every batch is therefore a pure function of the seed and the iteration (resuming needs no
//! sampler state, and the thread count does not matter).
//!
//! # EMA
//! USB's `EMA.update` blends every *parameter* (`shadow = m·shadow + (1 − m)·param`), and
//! `EMAHook.after_train_step` then loads the live model's state dict into the EMA model
//! before the shadow, so the EMA model's BatchNorm **buffers** (running mean / variance) are
//! copies of the live model's. [`ema_update`] does exactly that with a burn `ModuleMapper`.
//! The EMA starts equal to the initial model (`ema.register()`).
//!
//! # Metrics (`evaluate.ipynb`, `evaluate_io`)
//! - closed-set accuracy: `argmax` of the closed head on the seen test images (`c_acc_c_p`);
//! - open-set balanced accuracy: sklearn's `balanced_accuracy_score` over `K + 1` classes on
//!   the full test set, unseen classes merged into class `K`
//!   ([`unseen_eval::metrics::balanced_accuracy`]). IOMatch predicts with the open-set
//!   head, `argmax softmax(logits_open)` (`o_acc_f_q`). FixMatch has no open-set head: it
//!   predicts class `K` when its max probability is below its confidence threshold
//!   `p_cutoff` (0.95), else the closed-set argmax;
//! - AUROC of an unknown score with the unseen images as positives (ranked with
//!   [`unseen_eval::metrics::auroc`], whose scores are "higher = more ID", so the unknown
//!   score is negated). FixMatch: `1 − max p`. IOMatch: the open-set head's probability of
//!   class `K`, the score its open-set prediction thresholds. The notebook computes no AUROC
//!   for IOMatch (it imports `roc_auc_score` but never calls it); the only unknown score it
//!   computes (`unk_score = Σ_k p_k·o_neg_k`, the closed + one-vs-all outlier mass, on the
//!   extended test set) is computed but unused. The headline AUROC uses the open head's
//!   score, the one behind the reported open-set predictions;
//! - IOMatch also gets the notebook's second open-set prediction, `argmax q̂` with
//!   `q̂ = [p_k·o_k, Σ_k p_k·(1 − o_k)]` from the closed and one-vs-all heads
//!   (`o_acc_f_hq`), and the AUROC of `q̂_K` (its `unk_score`): `ova_open_balanced_accuracy`,
//!   `ova_auroc` in `metrics.json`.
//!
//! # Which checkpoint is reported
//! The paper evaluates "its best checkpoint model in terms of the closed-set performance"
//! (§4.1; `evaluate.ipynb` loads `model_best.pth`, which USB's evaluation hook writes when the
//! closed-set accuracy on the test set beats every earlier evaluation, `>` strictly). Unseen
//! reports both: `ossl` in `metrics.json` is the final EMA model, and `ossl_best` the EMA model
//! of the evaluation (periodic or final) with the highest closed-set accuracy, the paper's
//! protocol, whose weights are kept in `checkpoints/best/` ([`best_dir`]). Choosing on the
//! test set is what the reference does; the final model is the number without that choice.
//!
//! # Checkpoints
//! Besides `model.mpk`, `optim.mpk` and `state.json` ([`crate::checkpoint`]),
//! `checkpoints/last/` holds `ema.mpk` (the EMA weights) and `ossl.json` (the iteration they
//! belong to and the distribution-alignment queue), written right after the shared
//! checkpoint (whose folder is replaced as a whole). A crash between the two leaves `last/`
//! without them (or, if written by hand, of another iteration): resuming then restarts the EMA
//! from the live model with a warning, and `trainer eval` evaluates the live model.
//! `ossl.json` also carries the best evaluation so far, so a resumed run keeps choosing the
//! same best checkpoint; `checkpoints/best/` is replaced (temporary folder, then rename) only
//! when an evaluation beats it.
//!
//! # Differences from the official code worth knowing
//! - USB skips weight decay on BatchNorm and bias parameters for a bare backbone
//!   (`bn_wd_skip` via the WRN's `no_weight_decay`), i.e. for FixMatch; `IOMatchNet` has no
//!   `no_weight_decay`, so IOMatch decays every parameter. burn's SGD decays every parameter
//!   for both recipes.
//! - Distribution alignment (`dist_align`) is off by default, as the CIFAR-10 configs; the
//!   CIFAR-100 configs leave the argparse default (on), and so do ours (`ossl.dist_align`).
//! - Views: for 1-channel 28x28 digits the weak / strong views are
//!   [`ViewAugment::digits_weak`] / [`ViewAugment::digits_strong`]; otherwise USB's
//!   [`ViewAugment::usb_weak`] / [`ViewAugment::usb_strong`] (`ossl.views` overrides). Only
//!   `data.augment.mean` / `std` are read; its crop / flip settings are not used.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::loader::Loader;
use unseen_data::multiview::MultiViewBatch;
use unseen_data::splits::ossl::{OsslConfig, OsslSplit, OsslTest};
use unseen_data::transforms::{Augment, ViewAugment};
use unseen_data::{ImageSet, Rng};
use unseen_losses::fixmatch::{fixmatch_loss, FixMatchConfig};
use unseen_losses::iomatch::{
    iomatch_loss, ova_inlier_probs, DistAlignQueue, IoMatchConfig, IoMatchLogits,
};

use crate::checkpoint::{self, TrainState};
use crate::config::{ExperimentConfig, RecipeKind};
use crate::io::write_atomic;
use crate::optim::{lr_at, Optim};
use crate::tb::TbLogger;
use crate::train::{prepare_run_dir, NonFiniteLoss, TrainOptions};

// ---------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------

/// How the learning rate decays over the iteration budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// USB's `get_cosine_schedule_with_warmup`: `lr·cos(7π/16 · t/T)` (ends at ≈ 0.2·lr)
    /// after a linear warm-up of `train.warmup_epochs` epochs ([`usb_cosine_lr`]).
    Usb,
    /// Half-cosine to `train.min_lr_ratio·lr` with warm-up ([`crate::optim::lr_at`]).
    Cosine,
}

/// Which weak / strong view pair the unlabelled images get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewPreset {
    /// USB: reflect-padded crop + flip; strong adds RandAugment(3, 5) + Cutout.
    Usb,
    /// Digits: zero-padded crop, no flip; strong adds the grey RandAugment.
    Digits,
    /// ImageNet-sized images (USB's `get_imagenet30`): weak = `RandomCrop(s)` + flip, strong
    /// = `RandomResizedCrop(s)` + flip + RandAugment(3, 5) + Cutout, where `s` is the side
    /// of the test images (224 after `[data.preprocess] center_crop`), cut from the larger
    /// training images (`[data.train_preprocess] resize_to = [256, 256]`).
    Imagenet,
}

/// `[ossl]` settings of the `fixmatch` and `iomatch` recipes. Every key is optional in the
/// file (the section itself is too, but `seen_classes` and `labels_per_class` are then
/// reported missing); absent values take the official defaults named on each field.
///
/// ```toml
/// [ossl]
/// seen_classes = "2-7"     # CIFAR-10 6/4
/// labels_per_class = 4
/// mu = 7
/// iters_per_epoch = 1024
/// eval_every_iters = 1024
/// ema_momentum = 0.999
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsslSection {
    /// Seen classes of `data.id` as a class list (`"2-7"`, `"0,3,9"`); they become labels
    /// `0..K` in the order written. Required.
    #[serde(default)]
    pub seen_classes: Option<String>,
    /// Labelled images per seen class, drawn with the seed (IOMatch: 4 or 25). Required
    /// unless `labelled_list` names them.
    #[serde(default)]
    pub labels_per_class: Option<usize>,
    /// The labelled images as a list in the `file-list` format (`<path> <label>` per line,
    /// IOMatch's `data/imagenet30/filelist/train_labeled_p1.txt`), relative to
    /// `data.id.path` unless absolute. Each line must also be in `data.id.train_list`;
    /// a line given twice is a labelled image drawn twice as often, as the reference.
    /// Needs `data.id.source = "file-list"`; excludes `labels_per_class`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_list: Option<std::path::PathBuf>,
    /// Whether the unlabelled set also holds the labelled images (USB / IOMatch: true).
    #[serde(default)]
    pub include_labelled_in_unlabelled: Option<bool>,
    /// Unlabelled images per labelled image in a batch, μ (`uratio: 7`); the labelled batch
    /// is `train.batch_size` (64).
    #[serde(default)]
    pub mu: Option<usize>,
    /// Iterations per epoch (USB: `num_train_iter / epoch` = 262144 / 256 = 1024). The
    /// budget is `train.epochs × iters_per_epoch` iterations.
    #[serde(default)]
    pub iters_per_epoch: Option<usize>,
    /// Evaluate the EMA model every this many iterations (`num_eval_iter: 1024`); 0 = only
    /// at the end.
    #[serde(default)]
    pub eval_every_iters: Option<usize>,
    /// EMA momentum `m` of the evaluated model (`ema_m: 0.999`).
    #[serde(default)]
    pub ema_momentum: Option<f64>,
    /// Learning-rate schedule (default `usb`).
    #[serde(default)]
    pub lr_schedule: Option<LrSchedule>,
    /// View preset; by default `digits` for 1-channel images up to 28 pixels, else `usb`.
    #[serde(default)]
    pub views: Option<ViewPreset>,
    /// Confidence threshold on the weak view's max probability (`p_cutoff: 0.95`). FixMatch
    /// also uses it at test time to predict "unknown".
    #[serde(default)]
    pub p_cutoff: Option<f64>,
    /// Weight of the unlabelled term (`ulb_loss_ratio: 1.0`): FixMatch's `λ_u`, IOMatch's
    /// `L_ui`.
    #[serde(default)]
    pub lambda_u: Option<f64>,
    /// IOMatch: threshold on the open-set targets `max q̃` (`q_cutoff: 0.5`).
    #[serde(default)]
    pub q_cutoff: Option<f64>,
    /// IOMatch: weight of the open-set loss `L_op` (`op_loss_ratio: 1.0`).
    #[serde(default)]
    pub lambda_op: Option<f64>,
    /// IOMatch: weight of the one-vs-all loss `L_mb` (`mb_loss_ratio: 1.0`).
    #[serde(default)]
    pub lambda_mb: Option<f64>,
    /// IOMatch: distribution alignment of the closed-set targets (default off, as the
    /// CIFAR-10 configs; the CIFAR-100 configs run with it).
    #[serde(default)]
    pub dist_align: Option<bool>,
    /// IOMatch: length of the alignment queue (`da_len: 128`).
    #[serde(default)]
    pub da_len: Option<usize>,
    /// IOMatch: output size of the projector (`proj_size = 128`).
    #[serde(default)]
    pub proj_dim: Option<usize>,
}

impl OsslSection {
    /// `seen_classes`, or an empty string when absent ([`OsslSection::validate`] rejects
    /// that).
    pub fn seen_classes(&self) -> &str {
        self.seen_classes.as_deref().unwrap_or("")
    }

    /// `labels_per_class` (0 when absent; rejected by [`OsslSection::validate`]).
    pub fn labels_per_class(&self) -> usize {
        self.labels_per_class.unwrap_or(0)
    }

    /// The split settings.
    pub fn split_config(&self) -> OsslConfig {
        OsslConfig {
            seen_classes: self.seen_classes().to_string(),
            labels_per_class: self.labels_per_class(),
            include_labelled_in_unlabelled: self.include_labelled_in_unlabelled.unwrap_or(true),
        }
    }

    /// μ (7).
    pub fn mu(&self) -> usize {
        self.mu.unwrap_or(7)
    }

    /// Iterations per epoch (1024).
    pub fn iters_per_epoch(&self) -> usize {
        self.iters_per_epoch.unwrap_or(1024)
    }

    /// Evaluation period in iterations (1024; 0 = only at the end).
    pub fn eval_every_iters(&self) -> usize {
        self.eval_every_iters.unwrap_or(1024)
    }

    /// EMA momentum (0.999).
    pub fn ema_momentum(&self) -> f64 {
        self.ema_momentum.unwrap_or(0.999)
    }

    /// Learning-rate schedule (`usb`).
    pub fn lr_schedule(&self) -> LrSchedule {
        self.lr_schedule.unwrap_or(LrSchedule::Usb)
    }

    /// Projector output size (128).
    pub fn proj_dim(&self) -> usize {
        self.proj_dim.unwrap_or(128)
    }

    /// The FixMatch loss settings: USB's defaults with this section's overrides.
    pub fn fixmatch(&self) -> FixMatchConfig {
        let mut c = FixMatchConfig::new();
        if let Some(v) = self.p_cutoff {
            c.p_cutoff = v;
        }
        if let Some(v) = self.lambda_u {
            c.lambda_u = v;
        }
        c
    }

    /// The IOMatch loss settings: the official defaults with this section's overrides.
    pub fn iomatch(&self) -> IoMatchConfig {
        let mut c = IoMatchConfig::new();
        if let Some(v) = self.p_cutoff {
            c.p_cutoff = v;
        }
        if let Some(v) = self.q_cutoff {
            c.q_cutoff = v;
        }
        if let Some(v) = self.lambda_u {
            c.lambda_u = v;
        }
        if let Some(v) = self.lambda_op {
            c.lambda_op = v;
        }
        if let Some(v) = self.lambda_mb {
            c.lambda_mb = v;
        }
        if let Some(v) = self.dist_align {
            c.dist_align = v;
        }
        if let Some(v) = self.da_len {
            c.da_len = v;
        }
        c
    }

    /// The confidence threshold (`p_cutoff`, 0.95).
    pub fn p_cutoff(&self) -> f64 {
        self.p_cutoff.unwrap_or(0.95)
    }

    /// Checks the values for `recipe`: the split keys are present, counts are positive,
    /// the momentum and thresholds are in `[0, 1]`, and IOMatch-only keys are not given to
    /// FixMatch.
    pub fn validate(&self, recipe: RecipeKind) -> std::result::Result<(), String> {
        match self.seen_classes.as_deref() {
            None => {
                return Err(format!(
                    "`seen_classes` is required for recipe `{}` (e.g. \"2-7\" for CIFAR-10 6/4, \
                     \"0-5\" for digits)",
                    recipe.name()
                ))
            }
            Some(s) => {
                unseen_data::splits::ClassSpec::parse(s)
                    .map_err(|e| format!("`seen_classes` = {s:?}: {e}"))?;
            }
        }
        match (self.labels_per_class, &self.labelled_list) {
            (None, None) => {
                return Err(format!(
                    "`labels_per_class` (or `labelled_list`) is required for recipe `{}` \
                     (IOMatch uses 4 and 25 labels per class)",
                    recipe.name()
                ))
            }
            (Some(_), Some(_)) => {
                return Err(
                    "`labels_per_class` and `labelled_list` exclude each other: the list \
                     names the labelled images"
                        .into(),
                )
            }
            (Some(0), None) => return Err("`labels_per_class` must be at least 1".into()),
            _ => {}
        }
        for (name, v) in [
            ("mu", self.mu),
            ("iters_per_epoch", self.iters_per_epoch),
            ("proj_dim", self.proj_dim),
            ("da_len", self.da_len),
        ] {
            if v == Some(0) {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        let m = self.ema_momentum();
        if !(0.0..=1.0).contains(&m) {
            return Err(format!("`ema_momentum` must lie in [0, 1], got {m}"));
        }
        match recipe {
            RecipeKind::Fixmatch => {
                for (name, given) in [
                    ("q_cutoff", self.q_cutoff.is_some()),
                    ("lambda_op", self.lambda_op.is_some()),
                    ("lambda_mb", self.lambda_mb.is_some()),
                    ("dist_align", self.dist_align.is_some()),
                    ("da_len", self.da_len.is_some()),
                    ("proj_dim", self.proj_dim.is_some()),
                ] {
                    if given {
                        return Err(format!(
                            "`{name}` is an IOMatch setting; recipe `fixmatch` does not use it"
                        ));
                    }
                }
                self.fixmatch().validate().map_err(|e| e.to_string())
            }
            RecipeKind::Iomatch => self.iomatch().validate().map_err(|e| e.to_string()),
            other => Err(format!(
                "[ossl] applies to the fixmatch and iomatch recipes, not `{}`",
                other.name()
            )),
        }
    }
}

/// Checks the parts of a config outside `[ossl]` that an OSSL run reads differently.
fn check_config(cfg: &ExperimentConfig) -> Result<()> {
    let name = cfg.recipe.name();
    if !cfg.data.ood.is_empty() {
        bail!(
            "recipe `{name}` evaluates on the unseen classes of `data.id` (its test split); \
             remove the [[data.ood]] tables"
        );
    }
    if cfg.data.outliers.is_some() {
        bail!(
            "recipe `{name}` takes its outliers from the unseen classes of `data.id`; remove \
             [data.outliers]"
        );
    }
    if cfg.train.eval_every != 0 {
        bail!(
            "recipe `{name}` evaluates every `ossl.eval_every_iters` iterations; remove \
             `train.eval_every`"
        );
    }
    if cfg.data.id.classes.is_some() {
        bail!(
            "recipe `{name}` needs every class of `data.id` (the seen ones are chosen with \
             `ossl.seen_classes`, the others are the unseen ones); remove `data.id.classes`"
        );
    }
    if cfg.ossl.as_ref().is_some_and(|o| o.labelled_list.is_some()) {
        if cfg.data.id.source != "file-list" {
            bail!(
                "`ossl.labelled_list` names images of `data.id.train_list`: it needs \
                 `data.id.source = \"file-list\"` (got {:?})",
                cfg.data.id.source
            );
        }
        if cfg.data.id.limit_per_class.is_some() {
            bail!(
                "`ossl.labelled_list` refers to every line of `data.id.train_list`; remove \
                 `data.id.limit_per_class`"
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/// The split of an OSSL run and its test sets.
#[derive(Debug, Clone)]
pub struct OsslData {
    /// The labelled / unlabelled split of the training set.
    pub split: OsslSplit,
    /// The closed-set and full test sets.
    pub test: OsslTest,
    /// `split.labelled`, shared with the loaders.
    pub labelled: Arc<ImageSet>,
    /// `split.unlabelled`, shared with the loaders.
    pub unlabelled: Arc<ImageSet>,
    /// `test.full`, shared with the evaluation loader.
    pub full_test: Arc<ImageSet>,
}

/// Loads `data.id` (train and test splits) and splits it by `[ossl]`, seeded with
/// `cfg.seed`.
///
/// # Errors
/// Missing data, a class list naming an absent class, no unseen class, or more labels per
/// class than a seen class has images (the message names the class and both counts).
pub fn load_data(cfg: &ExperimentConfig, sec: &OsslSection) -> Result<OsslData> {
    let d = &cfg.data;
    let load = |train: bool| {
        crate::data_setup::load_dataset(&d.id, train, cfg.seed, "data.id", d.preprocess_for(train))
    };
    let (train, test) = (load(true)?, load(false)?);
    if train.channels != cfg.model.in_channels {
        bail!(
            "data.id has {} channel(s) but `model.in_channels` is {}",
            train.channels,
            cfg.model.in_channels
        );
    }
    let split = match &sec.labelled_list {
        None => OsslSplit::new(&train, &sec.split_config(), cfg.seed),
        Some(list) => {
            let indices = labelled_indices(cfg, list)?;
            OsslSplit::from_labelled_indices(&train, &sec.split_config(), &indices)
        }
    }
    .context("[ossl] split")?;
    let test = split.test(&test).context("[ossl] test split")?;
    Ok(OsslData {
        labelled: Arc::new(split.labelled.clone()),
        unlabelled: Arc::new(split.unlabelled.clone()),
        full_test: Arc::new(test.full.clone()),
        split,
        test,
    })
}

/// The positions in `data.id.train_list` of the lines of `ossl.labelled_list` (both
/// relative to `data.id.path` unless absolute).
fn labelled_indices(cfg: &ExperimentConfig, list: &Path) -> Result<Vec<usize>> {
    let id = &cfg.data.id;
    let train_list = id
        .list_path(true)
        .context("`ossl.labelled_list` needs `data.id.train_list`")?;
    let labelled_list = id.resolve(list);
    let all = unseen_data::formats::read_file_list(&train_list)
        .context("[ossl] labelled_list: data.id.train_list")?;
    let labelled =
        unseen_data::formats::read_file_list(&labelled_list).context("[ossl] labelled_list")?;
    unseen_data::formats::find_entries(&all, &labelled).with_context(|| {
        format!(
            "[ossl] labelled_list {} against data.id.train_list {}",
            labelled_list.display(),
            train_list.display()
        )
    })
}

/// The weak and strong views of a run (see [`ViewPreset`]); `test_size` is the side of the
/// test images (the `imagenet` preset's crop).
pub fn views(
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    set: &ImageSet,
    test_size: usize,
) -> (ViewAugment, ViewAugment) {
    let (mean, std) = (cfg.data.augment.mean.clone(), cfg.data.augment.std.clone());
    let preset = sec
        .views
        .unwrap_or(if set.channels == 1 && set.height <= 28 {
            ViewPreset::Digits
        } else {
            ViewPreset::Usb
        });
    match preset {
        ViewPreset::Digits => (
            ViewAugment::digits_weak(mean.clone(), std.clone()),
            ViewAugment::digits_strong(mean, std),
        ),
        ViewPreset::Usb => (
            ViewAugment::usb_weak(set.height, mean.clone(), std.clone()),
            ViewAugment::usb_strong(set.height, mean, std),
        ),
        ViewPreset::Imagenet => (
            ViewAugment::imagenet_weak(test_size, mean.clone(), std.clone()),
            ViewAugment::imagenet_strong(test_size, mean, std),
        ),
    }
}

/// An endless stream of batches drawn as USB's `RandomSampler` (concatenated seeded
/// permutations of the set), each image augmented into one or more views (see the
/// [module docs](self#sampling)). Batch `t` is a pure function of `(seed, name, t)`.
#[derive(Debug, Clone)]
pub struct ViewStream {
    set: Arc<ImageSet>,
    views: Vec<ViewAugment>,
    batch_size: usize,
    seed: u64,
    name: String,
    cache: Option<(usize, Vec<usize>)>,
    /// `(height, width)` every view outputs ([`ViewAugment::output_size`]).
    out: (usize, usize),
}

impl ViewStream {
    /// A stream of `batch_size` images of `set` per batch, each with `views.len()` views.
    ///
    /// # Errors
    /// An empty set, no view, batch size 0, a view that does not fit the images, or views
    /// whose output sizes ([`ViewAugment::output_size`]) differ (a batch has one shape).
    pub fn new(
        set: Arc<ImageSet>,
        views: Vec<ViewAugment>,
        batch_size: usize,
        seed: u64,
        name: &str,
    ) -> Result<Self> {
        if set.is_empty() {
            bail!("{name} stream: the image set is empty");
        }
        if views.is_empty() || batch_size == 0 {
            bail!("{name} stream: needs at least one view and a batch size of at least 1");
        }
        let out = unseen_data::transforms::shared_output_size(
            &views,
            set.channels,
            set.height,
            set.width,
        )
        .with_context(|| format!("{name} stream"))?;
        Ok(Self {
            set,
            views,
            batch_size,
            seed,
            name: name.to_string(),
            cache: None,
            out,
        })
    }

    /// The images this stream reads.
    pub fn set(&self) -> &Arc<ImageSet> {
        &self.set
    }

    /// The set's indices of batch `t`: positions `t·b .. (t + 1)·b` of the concatenated
    /// permutations.
    pub fn indices(&mut self, t: usize) -> Vec<usize> {
        let n = self.set.len();
        let b = self.batch_size;
        (t * b..(t + 1) * b)
            .map(|p| {
                let m = p / n;
                if self.cache.as_ref().map(|c| c.0) != Some(m) {
                    let perm = Rng::derive(self.seed, &self.name, &[m as u64]).permutation(n);
                    self.cache = Some((m, perm));
                }
                self.cache.as_ref().expect("filled above").1[p % n]
            })
            .collect()
    }

    /// Batch `t`, of shape `[batch_size, c, oh, ow]` with `(oh, ow)` the views' output size.
    pub fn batch(&mut self, t: usize) -> MultiViewBatch {
        let indices = self.indices(t);
        let stream = format!("{}-augment", self.name);
        let seed = self.seed;
        unseen_data::multiview::augment_views(&self.set, indices, &self.views, self.out, |k, v| {
            Rng::derive(seed, &stream, &[t as u64, k as u64, v as u64])
        })
    }
}

// ---------------------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------------------

/// IOMatch's heads on the backbone features `d` (`IOMatchNet`, `iomatch.py`): the projector
/// `mlp_proj = Linear(d, d) → ReLU → Linear(d, 128)`, and on the **projection** both the
/// multi-binary one-vs-all head `mb_classifiers = Linear(128, 2K, bias=False)` and the
/// open-set head `openset_classifier = Linear(128, K + 1)`. The closed-set head is the
/// backbone's own linear head on the features (`backbone(feat, only_fc=True)`).
///
/// Initialisation as `IOMatchNet.__init__`: PyTorch's default `U(±1/√fan_in)` for the
/// projector, `xavier_normal_` for both classifiers' weights, a zero bias for the open-set
/// head; drawn from a seeded generator.
#[derive(Module, Debug)]
pub struct IoMatchHeads<B: Backend> {
    /// `mlp_proj[0]`: `d -> d`.
    pub proj1: Linear<B>,
    /// `mlp_proj[2]`: `d -> proj_dim`.
    pub proj2: Linear<B>,
    /// `mb_classifiers`: `proj_dim -> 2K`, no bias; columns `0..K` are the "outlier" and
    /// `K..2K` the "inlier" logits (the reference's `view(n, 2, K)`).
    pub mb: Linear<B>,
    /// `openset_classifier`: `proj_dim -> K + 1`.
    pub open: Linear<B>,
}

fn linear_from<B: Backend>(
    d_in: usize,
    d_out: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    device: &B::Device,
) -> Linear<B> {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_bias(bias.is_some())
        .init::<B>(device);
    l.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight, [d_in, d_out]),
        device,
    ));
    l.bias =
        bias.map(|b| Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), device)));
    l
}

impl<B: Backend> IoMatchHeads<B> {
    /// Heads for features of size `d`, `k` seen classes and a `proj_dim` projection,
    /// initialised from `rng`.
    pub fn new(d: usize, k: usize, proj_dim: usize, rng: &mut Rng, device: &B::Device) -> Self {
        let mut uniform = |fan_in: usize, n: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        let p1w = uniform(d, d * d);
        let p1b = uniform(d, d);
        let p2w = uniform(d, d * proj_dim);
        let p2b = uniform(d, proj_dim);
        let mut xavier = |fan_in: usize, fan_out: usize| -> Vec<f32> {
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            (0..fan_in * fan_out)
                .map(|_| (rng.normal() * std) as f32)
                .collect()
        };
        let mbw = xavier(proj_dim, 2 * k);
        let openw = xavier(proj_dim, k + 1);
        Self {
            proj1: linear_from(d, d, p1w, Some(p1b), device),
            proj2: linear_from(d, proj_dim, p2w, Some(p2b), device),
            mb: linear_from(proj_dim, 2 * k, mbw, None, device),
            open: linear_from(proj_dim, k + 1, openw, Some(vec![0.0; k + 1]), device),
        }
    }

    /// The heads under `IOMatchNet`'s parameter names, in PyTorch's layouts (`Linear`
    /// weights `[out, in]`), f32: `mlp_proj.0.{weight,bias}`, `mlp_proj.2.{weight,bias}`,
    /// `mb_classifiers.weight`, `openset_classifier.{weight,bias}`.
    pub fn torch_state_dict(&self) -> unseen_backbones::weights::TensorMap {
        use crate::export::tensor_entry as entry;
        let mut out = unseen_backbones::weights::TensorMap::new();
        for (name, l) in [
            ("mlp_proj.0", &self.proj1),
            ("mlp_proj.2", &self.proj2),
            ("mb_classifiers", &self.mb),
            ("openset_classifier", &self.open),
        ] {
            out.insert(format!("{name}.weight"), entry(l.weight.val().transpose()));
            if let Some(b) = &l.bias {
                out.insert(format!("{name}.bias"), entry(b.val()));
            }
        }
        out
    }

    /// `(one-vs-all logits [n, 2K], open-set logits [n, K + 1])` of features `[n, d]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let proj = self.proj2.forward(relu(self.proj1.forward(features)));
        (self.mb.forward(proj.clone()), self.open.forward(proj))
    }
}

/// The network of an OSSL run: the backbone (its head is the closed-set classifier over
/// the `K` seen classes) and, for IOMatch, the [`IoMatchHeads`].
#[derive(Module, Debug)]
pub struct OsslModel<B: Backend> {
    /// Backbone with a `K`-class head.
    pub backbone: Backbone<B>,
    /// IOMatch's projector, one-vs-all and open-set heads (`None` for FixMatch).
    pub heads: Option<IoMatchHeads<B>>,
}

/// What [`OsslModel::forward`] returns.
#[derive(Debug, Clone)]
pub struct OsslOutput<B: Backend> {
    /// Closed-set logits `[n, K]`.
    pub logits: Tensor<B, 2>,
    /// One-vs-all logits `[n, 2K]` (IOMatch).
    pub ova: Option<Tensor<B, 2>>,
    /// Open-set logits `[n, K + 1]` (IOMatch).
    pub open: Option<Tensor<B, 2>>,
}

impl<B: Backend> OsslModel<B> {
    /// Every head's logits for images `[n, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> OsslOutput<B> {
        let (features, logits) = self.backbone.forward(x);
        let (ova, open) = match &self.heads {
            Some(h) => {
                let (ova, open) = h.forward(features);
                (Some(ova), Some(open))
            }
            None => (None, None),
        };
        OsslOutput { logits, ova, open }
    }

    /// Number of seen classes `K`.
    pub fn num_classes(&self) -> usize {
        self.backbone.num_classes()
    }
}

/// Builds the network of a run: the backbone (seeded initialisation, then `model.weights`
/// when `with_weights`) with a `k`-class head, plus IOMatch's heads for `iomatch`.
pub fn build_model<B: Backend>(
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    k: usize,
    img_size: usize,
    device: &B::Device,
    with_weights: bool,
) -> Result<OsslModel<B>> {
    if let Some(n) = cfg.model.num_classes {
        if n != k {
            bail!(
                "model.num_classes = {n} but [ossl] has {k} seen classes; the closed-set head \
                 has one output per seen class (remove the key)"
            );
        }
    }
    let mut spec = cfg.model.clone();
    if !with_weights {
        spec.weights = None;
    }
    let backbone =
        crate::train::build_backbone(&spec, k, img_size, cfg.seed, device, !with_weights)?;
    let heads = match cfg.recipe {
        RecipeKind::Iomatch => {
            let mut rng = Rng::stream(cfg.seed, "ossl-heads");
            Some(IoMatchHeads::new(
                backbone.feature_dim(),
                k,
                sec.proj_dim(),
                &mut rng,
                device,
            ))
        }
        _ => None,
    };
    Ok(OsslModel { backbone, heads })
}

// ---------------------------------------------------------------------------------------
// EMA
// ---------------------------------------------------------------------------------------

struct CollectFloats<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: Backend> ModuleVisitor<B> for CollectFloats<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let t = param.val();
        let n = t.shape().num_elements();
        self.0.push(t.reshape([n]));
    }
}

struct Blend<B: Backend> {
    ema: std::vec::IntoIter<Tensor<B, 1>>,
    momentum: f64,
    stack: Vec<String>,
}

impl<B: Backend> ModuleMapper<B> for Blend<B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.stack.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.stack.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let old = self
            .ema
            .next()
            .expect("EMA and model have the same structure");
        let buffer = matches!(
            self.stack.last().map(String::as_str),
            Some("running_mean" | "running_var")
        );
        let tensor = if buffer {
            tensor
        } else {
            let shape = tensor.shape();
            old.reshape(shape)
                .mul_scalar(self.momentum)
                .add(tensor.mul_scalar(1.0 - self.momentum))
        };
        Param::from_mapped_value(id, tensor, mapper)
    }
}

/// USB's EMA step (see the [module docs](self#ema)): every parameter becomes
/// `m·ema + (1 − m)·model`, every BatchNorm running statistic the model's.
///
/// # Panics
/// If the two modules differ in structure.
pub fn ema_update<B: Backend, M: Module<B>>(ema: &M, model: M, momentum: f64) -> M {
    let mut collect = CollectFloats(Vec::new());
    ema.visit(&mut collect);
    let mut blend = Blend {
        ema: collect.0.into_iter(),
        momentum,
        stack: Vec::new(),
    };
    let out = model.map(&mut blend);
    assert!(
        blend.ema.next().is_none(),
        "EMA and model have the same structure"
    );
    out
}

// ---------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------

/// USB's `get_cosine_schedule_with_warmup(num_cycles = 7/16)` at iteration `step` of
/// `total`: `lr·step/warmup` during the warm-up, then `lr·max(0, cos(7π/16 · t/T))` with
/// `t` iterations after the warm-up out of `T = total − warmup`.
pub fn usb_cosine_lr(step: usize, total: usize, warmup: usize, lr: f64) -> f64 {
    if step < warmup {
        return lr * step as f64 / warmup.max(1) as f64;
    }
    let t = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    lr * (std::f64::consts::PI * 7.0 / 16.0 * t).cos().max(0.0)
}

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

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
pub fn predict<B: Backend>(
    model: &OsslModel<B>,
    set: &Arc<ImageSet>,
    cfg: &ExperimentConfig,
    p_cutoff: f64,
    device: &B::Device,
) -> Result<OsslPredictions> {
    let aug = Augment::normalize_only(cfg.data.augment.mean.clone(), cfg.data.augment.std.clone());
    let loader = Loader::new(set.clone(), cfg.eval.batch_size, false, false, aug, 0)
        .context("evaluation loader")?;
    let k = model.num_classes();
    let (mut probs, mut open, mut inlier) = (Vec::new(), Vec::new(), Vec::new());
    for batch in loader.epoch(0) {
        let x = Tensor::<B, 4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let out = model.forward(x);
        let to_vec = |t: Tensor<B, 2>| -> Vec<f32> {
            softmax(t, 1)
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 data")
        };
        probs.extend(to_vec(out.logits));
        if let Some(o) = out.open {
            open.extend(to_vec(o));
        }
        if let Some(o) = out.ova {
            inlier.extend(
                ova_inlier_probs(o)
                    .into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .expect("f32 data"),
            );
        }
    }
    let open_probs = model.heads.is_some().then_some(open.as_slice());
    let mut p = open_set_outputs(&probs, k, open_probs, p_cutoff);
    if model.heads.is_some() {
        p.ova = Some(hat_q_outputs(&probs, &inlier, k));
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

/// Evaluates `model` on the test sets of `data`.
pub fn evaluate<B: Backend>(
    model: &OsslModel<B>,
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    data: &OsslData,
    device_label: &str,
    device: &B::Device,
    iterations: usize,
) -> Result<OsslEvaluation> {
    let k = data.split.num_seen;
    let p = predict(model, &data.full_test, cfg, sec.p_cutoff(), device)?;
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
        recipe: cfg.recipe.name().to_string(),
        seed: cfg.seed,
        device: device_label.to_string(),
        ossl: OsslMetrics {
            recipe: cfg.recipe.name().to_string(),
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

    fn write(&self, dir: &Path) -> Result<()> {
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

// ---------------------------------------------------------------------------------------
// Checkpoint extras
// ---------------------------------------------------------------------------------------

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// What `checkpoints/last/ossl.json` holds besides the EMA weights (`ema.mpk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OsslState {
    /// The step the EMA and queue belong to (must match `state.json`).
    step: usize,
    /// Distribution-alignment queue `[len, K]` (row-major) and its next slot.
    dist_align: Option<(Vec<f32>, [usize; 2], usize)>,
    /// The best evaluation up to `step` (its weights are in [`best_dir`]); absent in
    /// checkpoints written before Unseen tracked it.
    #[serde(default)]
    best: Option<OsslMetrics>,
}

/// `<run>/checkpoints/best`: `ema.mpk`, the EMA weights of the evaluation with the highest
/// closed-set accuracy so far (USB's `model_best.pth`), and `best.json`, its metrics.
pub fn best_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("best")
}

/// Writes `checkpoints/best/` for an evaluation that beat every earlier one, as a whole
/// ([`crate::io::replace_dir`]).
fn save_best<B: Backend>(run_dir: &Path, ema: &OsslModel<B>, metrics: &OsslMetrics) -> Result<()> {
    crate::io::replace_dir(&best_dir(run_dir), |tmp| {
        save_ema(tmp, ema)?;
        write_atomic(
            &tmp.join("best.json"),
            (serde_json::to_string_pretty(metrics)? + "\n").as_bytes(),
        )
    })
}

/// Whether an evaluation with closed-set accuracy `closed` becomes the best checkpoint: the
/// first one does, a later one when strictly better (USB: `top-1-acc > best_eval_acc`).
fn is_new_best(best: Option<&OsslMetrics>, closed: f64) -> bool {
    best.is_none_or(|b| closed > b.closed_accuracy)
}

/// After an evaluation `m` of `ema`: when it is a new best ([`is_new_best`]), writes
/// `checkpoints/best/` and makes it `best`.
fn record_best<B: Backend>(
    run_dir: &Path,
    ema: &OsslModel<B>,
    m: &OsslMetrics,
    best: &mut Option<OsslMetrics>,
) -> Result<()> {
    if is_new_best(best.as_ref(), m.closed_accuracy) {
        save_best(run_dir, ema, m)?;
        *best = Some(m.clone());
    }
    Ok(())
}

fn save_extras<B: Backend, Q: Backend>(
    dir: &Path,
    ema: &OsslModel<B>,
    queue: Option<&DistAlignQueue<Q>>,
    step: usize,
    best: Option<&OsslMetrics>,
) -> Result<()> {
    save_ema(dir, ema)?;
    let dist_align = queue.map(|q| {
        let (t, ptr) = q.state();
        let dims = t.dims();
        let v = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
        (v, dims, ptr)
    });
    write_atomic(
        &dir.join("ossl.json"),
        serde_json::to_string(&OsslState {
            step,
            dist_align,
            best: best.cloned(),
        })?
        .as_bytes(),
    )
}

/// Writes the EMA weights as `<dir>/ema.mpk` (read back by [`load_ema`]).
fn save_ema<B: Backend>(dir: &Path, ema: &OsslModel<B>) -> Result<()> {
    ema.clone()
        .save_file(dir.join("ema"), &recorder())
        .with_context(|| format!("cannot write {}", dir.join("ema.mpk").display()))
}

fn load_ema<B: Backend>(
    dir: &Path,
    model: OsslModel<B>,
    device: &B::Device,
) -> Result<OsslModel<B>> {
    model
        .load_file(dir.join("ema"), &recorder(), device)
        .with_context(|| {
            format!(
                "cannot load the EMA weights {}",
                dir.join("ema.mpk").display()
            )
        })
}

fn load_extras_state(dir: &Path) -> Option<OsslState> {
    let text = std::fs::read_to_string(dir.join("ossl.json")).ok()?;
    serde_json::from_str(&text).ok()
}

// ---------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// One iteration
// ---------------------------------------------------------------------------------------

/// What one training iteration needs besides the model, the optimiser and the batch.
#[derive(Debug, Clone)]
pub struct StepContext {
    /// `fixmatch` or `iomatch`.
    pub recipe: RecipeKind,
    /// IOMatch's loss settings (read for `iomatch`).
    pub iomatch: IoMatchConfig,
    /// FixMatch's loss settings (read for `fixmatch`).
    pub fixmatch: FixMatchConfig,
    /// Labelled images per batch `B`.
    pub labelled: usize,
    /// Unlabelled images per batch `μ·B` (each with a weak and a strong view).
    pub unlabelled: usize,
    /// EMA momentum.
    pub ema_momentum: f64,
}

impl StepContext {
    /// The settings of `cfg`'s recipe: batch `B = train.batch_size`, `μB` unlabelled, the
    /// `[ossl]` loss settings and EMA momentum.
    pub fn new(cfg: &ExperimentConfig, sec: &OsslSection) -> Self {
        Self {
            recipe: cfg.recipe,
            iomatch: sec.iomatch(),
            fixmatch: sec.fixmatch(),
            labelled: cfg.train.batch_size,
            unlabelled: sec.mu() * cfg.train.batch_size,
            ema_momentum: sec.ema_momentum(),
        }
    }
}

/// The loss of one iteration and every logged term, read from the device in one transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct StepValues {
    /// Total loss.
    pub loss: f32,
    /// `(tensorboard tag, value)` of each term and mask ratio.
    pub terms: Vec<(&'static str, f32)>,
}

impl StepValues {
    /// `tag = value, ...`, for error messages.
    pub fn terms_line(&self) -> String {
        self.terms
            .iter()
            .map(|(n, v)| format!("{n} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One training iteration of USB's loop: forward `x = cat(x_lb, x_ulb_w, x_ulb_s)` in one
/// pass (shape `[B + 2μB, c, h, w]`), the recipe's loss, backward, one optimiser step at
/// learning rate `lr`, then the EMA update. `epoch` is 0-based (IOMatch's open-set loss is
/// off in epoch 0). Returns the updated model and EMA model with the step's values.
///
/// # Errors
/// The values, when the loss is not finite: nothing is updated (the caller stops the run
/// and keeps its last checkpoint).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
pub fn train_step<B: AutodiffBackend>(
    model: OsslModel<B>,
    ema: &OsslModel<B::InnerBackend>,
    optim: &mut Optim<B, OsslModel<B>>,
    x: Tensor<B, 4>,
    labels: Tensor<B, 1, Int>,
    epoch: usize,
    lr: f64,
    ctx: &StepContext,
    queue: Option<&mut DistAlignQueue<B>>,
) -> std::result::Result<(OsslModel<B>, OsslModel<B::InnerBackend>, StepValues), StepValues> {
    let (b, n) = (ctx.labelled, ctx.unlabelled);
    let out = model.forward(x);
    let split = |t: Tensor<B, 2>| {
        (
            t.clone().narrow(0, 0, b),
            t.clone().narrow(0, b, n),
            t.narrow(0, b + n, n),
        )
    };
    let (lg_lb, lg_w, lg_s) = split(out.logits);
    let (loss, terms): (Tensor<B, 1>, Vec<(&'static str, Tensor<B, 1>)>) = match ctx.recipe {
        RecipeKind::Iomatch => {
            let (ova_lb, ova_w, _) = split(out.ova.expect("IOMatch heads"));
            let (_, _, open_s) = split(out.open.expect("IOMatch heads"));
            let p = iomatch_loss(
                IoMatchLogits {
                    labelled: lg_lb,
                    labelled_ova: ova_lb,
                    weak: lg_w,
                    weak_ova: ova_w,
                    strong: lg_s,
                    strong_open: open_s,
                },
                labels,
                epoch,
                &ctx.iomatch,
                queue,
            );
            (
                p.total,
                vec![
                    ("loss/sup", p.sup),
                    ("loss/mb", p.mb),
                    ("loss/ui", p.ui),
                    ("loss/op", p.op),
                    ("train/mask_ratio", p.mask_ratio),
                    ("train/in_mask_ratio", p.in_mask_ratio),
                    ("train/p_mask_ratio", p.p_mask_ratio),
                    ("train/q_mask_ratio", p.q_mask_ratio),
                ],
            )
        }
        _ => {
            let p = fixmatch_loss(lg_lb, labels, lg_w, lg_s, &ctx.fixmatch);
            (
                p.total,
                vec![
                    ("loss/sup", p.sup),
                    ("loss/unsup", p.unsup),
                    ("train/mask_ratio", p.mask_ratio),
                ],
            )
        }
    };
    // One device read for the loss and every logged term.
    let mut all = vec![loss.clone().detach()];
    all.extend(terms.iter().map(|(_, v)| v.clone().detach()));
    let read = Tensor::cat(all, 0)
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data");
    let values = StepValues {
        loss: read[0],
        terms: terms
            .iter()
            .map(|(n, _)| *n)
            .zip(read[1..].iter().copied())
            .collect(),
    };
    if !values.loss.is_finite() {
        return Err(values);
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let model = optim.step(lr, model, grads);
    let ema = ema_update(ema, model.valid(), ctx.ema_momentum);
    Ok((model, ema, values))
}

/// Trains a `fixmatch` or `iomatch` run and writes the run folder (`config.toml`,
/// `checkpoints/`, `tb/`, `metrics.json`, `report.md`). Returns the summary.
///
/// # Errors
/// Bad config or data (see [`load_data`]), an existing run folder without `--overwrite`,
/// a non-finite loss ([`NonFiniteLoss`]), or [`crate::train::Halted`] when asked to stop.
pub fn train<B: AutodiffBackend>(
    cfg: ExperimentConfig,
    opts: &TrainOptions,
    device: B::Device,
) -> Result<String> {
    let started = Instant::now();
    let sec = cfg.ossl.clone().unwrap_or_default();
    sec.validate(cfg.recipe)
        .map_err(|e| anyhow::anyhow!("[ossl]: {e}"))?;
    check_config(&cfg)?;
    // The split first: bad data or split settings fail before a run folder exists.
    let data = load_data(&cfg, &sec)?;
    let run_dir = prepare_run_dir(&cfg, opts)?;
    B::seed(&device, cfg.seed);
    let k = data.split.num_seen;
    let img = data.labelled.height;
    let mut model = build_model::<B>(&cfg, &sec, k, img, &device, true)?;
    let mut optim = Optim::<B, OsslModel<B>>::new(&cfg.train);
    let mut state = TrainState {
        epochs_done: 0,
        step: 0,
        rng: crate::train::recipe_rng(cfg.seed).state(),
    };
    let io_cfg = sec.iomatch();
    let mut queue = (cfg.recipe == RecipeKind::Iomatch && io_cfg.dist_align)
        .then(|| DistAlignQueue::<B>::new(k, io_cfg.da_len, &device));
    let mut ema: OsslModel<B::InnerBackend>;
    // The best evaluation so far (the paper's reported checkpoint), see `best_dir`.
    let mut best: Option<OsslMetrics> = None;
    if opts.resume.is_some() {
        let ck = checkpoint::find(&run_dir)?;
        state = checkpoint::load_state(&ck)?;
        model = checkpoint::load_model(&ck, model, &device)?;
        model.backbone = crate::train::freeze(&cfg.model, model.backbone);
        optim = optim.load(&ck.join("optim"), &device)?;
        let extras = load_extras_state(&ck).filter(|s| s.step == state.step);
        best = extras.as_ref().and_then(|s| s.best.clone());
        ema = model.valid();
        match &extras {
            Some(_) => ema = load_ema(&ck, ema, &device)?,
            None => eprintln!(
                "warning: {} has no EMA weights for step {}; the EMA restarts from the model",
                ck.display(),
                state.step
            ),
        }
        if let (
            Some(q),
            Some(OsslState {
                dist_align: Some((v, dims, ptr)),
                ..
            }),
        ) = (queue.as_mut(), extras)
        {
            let t = Tensor::<B, 2>::from_data(TensorData::new(v, dims), &device);
            *q = DistAlignQueue::from_state(t, ptr);
        }
        if !opts.quiet {
            eprintln!(
                "resuming {} after epoch {} (iteration {})",
                run_dir.display(),
                state.epochs_done,
                state.step
            );
        }
    } else {
        ema = model.valid();
    }

    let t = &cfg.train;
    let ipe = sec.iters_per_epoch();
    let total = t.epochs * ipe;
    let warmup = t.warmup_epochs * ipe;
    let ulb_batch = sec.mu() * t.batch_size;
    let (weak, strong) = views(&cfg, &sec, &data.labelled, data.full_test.height);
    let mut lb_stream = ViewStream::new(
        data.labelled.clone(),
        vec![weak.clone()],
        t.batch_size,
        cfg.seed,
        "ossl-labelled",
    )?;
    let mut ulb_stream = ViewStream::new(
        data.unlabelled.clone(),
        vec![weak, strong],
        ulb_batch,
        cfg.seed,
        "ossl-unlabelled",
    )?;
    let mut tb = TbLogger::new(&run_dir.join("tb"))?;
    let eval_every = sec.eval_every_iters();
    let b = t.batch_size;
    let n = ulb_batch;
    let ctx = StepContext::new(&cfg, &sec);

    for epoch in state.epochs_done..t.epochs {
        let ep_start = Instant::now();
        let bar = crate::train::epoch_bar(opts.quiet, ipe, epoch, t.epochs);
        let (mut loss_sum, mut mask_sum) = (0.0f64, 0.0f64);
        let mut eval_line = String::new();
        for _ in 0..ipe {
            let step = state.step;
            let lr = match sec.lr_schedule() {
                LrSchedule::Usb => usb_cosine_lr(step, total, warmup, t.lr),
                LrSchedule::Cosine => lr_at(step, total, warmup, t.lr, t.min_lr_ratio),
            };
            let lb = lb_stream.batch(step);
            let ulb = ulb_stream.batch(step);
            let [_, c, h, w] = lb.shape;
            let mut pixels = Vec::with_capacity((b + 2 * n) * c * h * w);
            pixels.extend_from_slice(&lb.views[0]);
            pixels.extend_from_slice(&ulb.views[0]);
            pixels.extend_from_slice(&ulb.views[1]);
            let x =
                Tensor::<B, 4>::from_data(TensorData::new(pixels, [b + 2 * n, c, h, w]), &device);
            let labels = lb.labels_tensor::<B>(&device);
            let (next, next_ema, values) = match train_step(
                model,
                &ema,
                &mut optim,
                x,
                labels,
                epoch,
                lr,
                &ctx,
                queue.as_mut(),
            ) {
                Ok(r) => r,
                Err(v) => {
                    return Err(NonFiniteLoss {
                        value: v.loss,
                        epoch: epoch + 1,
                        step,
                        terms: v.terms_line(),
                        checkpoint: checkpoint::last_dir(&run_dir).display().to_string(),
                        done: state.epochs_done,
                    }
                    .into())
                }
            };
            (model, ema) = (next, next_ema);
            let value = values.loss;
            tb.scalar("loss/total", value as f64, step);
            for &(name, v) in &values.terms {
                tb.scalar(name, v as f64, step);
                if name == "train/mask_ratio" {
                    mask_sum += v as f64;
                }
            }
            tb.scalar("lr", lr, step);
            loss_sum += value as f64;
            state.step += 1;
            bar.inc(1);
            bar.set_message(format!("loss {value:.4}"));
            if eval_every > 0 && state.step.is_multiple_of(eval_every) && state.step < total {
                let ev = evaluate(
                    &ema,
                    &cfg,
                    &sec,
                    &data,
                    &opts.device_label,
                    &device,
                    state.step,
                )?;
                log_eval(&mut tb, &ev.metrics.ossl, state.step);
                record_best(&run_dir, &ema, &ev.metrics.ossl, &mut best)?;
                eval_line = format!(
                    ", EMA at iteration {}: closed {:.2}%, open BA {:.2}%, AUROC {:.2}%",
                    state.step,
                    100.0 * ev.metrics.ossl.closed_accuracy,
                    100.0 * ev.metrics.ossl.open_balanced_accuracy,
                    100.0 * ev.metrics.ossl.auroc
                );
            }
        }
        bar.finish_and_clear();
        state.epochs_done = epoch + 1;
        let secs = ep_start.elapsed().as_secs_f64();
        tb.scalar("train/iterations_per_second", ipe as f64 / secs, state.step);
        let last = epoch + 1 == t.epochs;
        if (epoch + 1) % t.checkpoint_every == 0 || last {
            checkpoint::save(&run_dir, &model, &optim, &state)?;
            save_extras(
                &checkpoint::last_dir(&run_dir),
                &ema,
                queue.as_ref(),
                state.step,
                best.as_ref(),
            )?;
        }
        tb.flush();
        if !opts.quiet {
            eprintln!(
                "epoch {}/{}: loss {:.4}, mask ratio {:.3}, {:.1}s ({:.2} it/s){eval_line}",
                epoch + 1,
                t.epochs,
                loss_sum / ipe as f64,
                mask_sum / ipe as f64,
                secs,
                ipe as f64 / secs
            );
        }
        if opts.halt_after_epochs == Some(state.epochs_done) && !last {
            return Err(crate::train::Halted(state.epochs_done).into());
        }
    }
    let mut ev = evaluate(
        &ema,
        &cfg,
        &sec,
        &data,
        &opts.device_label,
        &device,
        state.step,
    )?;
    log_eval(&mut tb, &ev.metrics.ossl, state.step);
    tb.flush();
    record_best(&run_dir, &ema, &ev.metrics.ossl, &mut best)?;
    ev.metrics.ossl.train_seconds = Some(started.elapsed().as_secs_f64());
    ev.metrics.ossl_best = best;
    ev.metrics.write(&run_dir)?;
    Ok(ev.metrics.summary())
}

fn log_eval(tb: &mut TbLogger, m: &OsslMetrics, step: usize) {
    tb.scalar("eval/closed_accuracy", m.closed_accuracy, step);
    tb.scalar(
        "eval/open_balanced_accuracy",
        m.open_balanced_accuracy,
        step,
    );
    tb.scalar("eval/auroc", m.auroc, step);
}

/// `trainer eval` on an OSSL run: re-evaluates the EMA weights of the last checkpoint into
/// `<run>/eval/`, or of the best one ([`RunCheckpoint::Best`]) into `<run>/eval_best/`
/// (`metrics.json`, `report.md`, and with `save_scores` `predictions.csv`, see
/// [`OsslEvaluation::predictions_csv`]). Returns the printable summary.
///
/// # Errors
/// No such checkpoint in `run_dir`, data that cannot be loaded, or unwritable files.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: RunCheckpoint,
    device_label: &str,
    device: &B::Device,
    save_scores: bool,
) -> Result<String> {
    let sec = cfg.ossl.clone().unwrap_or_default();
    sec.validate(cfg.recipe)
        .map_err(|e| anyhow::anyhow!("[ossl]: {e}"))?;
    let data = load_data(cfg, &sec)?;
    let k = data.split.num_seen;
    let (model, step, ema) = load_run_model::<B>(cfg, &sec, &data, run_dir, which, device)?;
    if !ema {
        eprintln!(
            "warning: {} has no EMA weights for its step; evaluating the live model",
            run_dir.display()
        );
    }
    let ev = evaluate(&model, cfg, &sec, &data, device_label, device, step)?;
    let out: PathBuf = run_dir.join(match which {
        RunCheckpoint::Last => "eval",
        RunCheckpoint::Best => "eval_best",
    });
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    ev.metrics.write(&out)?;
    if save_scores {
        write_atomic(&out.join("predictions.csv"), &ev.predictions_csv(k)?)?;
    }
    Ok(ev.metrics.summary() + &format!("wrote {}", out.display()))
}

/// The backbone of an OSSL run's last checkpoint, EMA weights (for `trainer embed --run`,
/// which expects a bare backbone: `model.mpk` also holds IOMatch's heads).
///
/// # Errors
/// No checkpoint in `run_dir`, or data that cannot be loaded (the split fixes `K`).
pub fn load_backbone<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    device: &B::Device,
) -> Result<Backbone<B>> {
    let sec = cfg.ossl.clone().unwrap_or_default();
    let data = load_data(cfg, &sec)?;
    Ok(
        load_run_model::<B>(cfg, &sec, &data, run_dir, RunCheckpoint::Last, device)?
            .0
            .backbone,
    )
}

/// Which weights of an OSSL run `trainer eval`, `export` and `embed --run` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunCheckpoint {
    /// `checkpoints/last/`: the EMA weights of the last checkpoint (the live weights when it
    /// has no EMA for its step).
    #[default]
    Last,
    /// `checkpoints/best/`: the EMA weights of the evaluation with the highest closed-set
    /// accuracy ([`best_dir`], the paper's reported checkpoint).
    Best,
}

impl RunCheckpoint {
    /// Refuses [`RunCheckpoint::Best`] for a run that keeps none (every recipe but the
    /// open-set SSL ones); `action` is what the caller does with it ("evaluates", "exports").
    ///
    /// # Errors
    /// `Best` asked of a non-OSSL run.
    pub fn check_for(self, cfg: &ExperimentConfig, action: &str) -> Result<()> {
        if self == Self::Best && cfg.recipe.family() != crate::config::RecipeFamily::Ossl {
            bail!(
                "`--checkpoint best` {action} the best checkpoint of an open-set SSL run; a `{}` \
                 run keeps only its last checkpoint",
                cfg.recipe.name()
            );
        }
        Ok(())
    }
}

/// The model of an OSSL run: for [`RunCheckpoint::Last`] the last checkpoint's EMA weights
/// (the model USB evaluates and Unseen reports) when the checkpoint has them for its step,
/// else the live weights; for [`RunCheckpoint::Best`] the best checkpoint's EMA weights.
/// Returns the model, the iteration its weights belong to, and whether they are the EMA's.
///
/// # Errors
/// No such checkpoint in `run_dir`, or weights that do not fit the config's network.
pub fn load_run_model<B: Backend>(
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    data: &OsslData,
    run_dir: &Path,
    which: RunCheckpoint,
    device: &B::Device,
) -> Result<(OsslModel<B>, usize, bool)> {
    let model = build_model::<B>(
        cfg,
        sec,
        data.split.num_seen,
        data.labelled.height,
        device,
        false,
    )?;
    if which == RunCheckpoint::Best {
        // `best/`, or the previous best kept beside it by a crash mid-replace.
        let dir = crate::io::existing_dir(&best_dir(run_dir), "best.json")
            .unwrap_or_else(|| best_dir(run_dir));
        let p = dir.join("best.json");
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{} has no best checkpoint (cannot read {}): `trainer train` writes it at each \
                 evaluation that improves the closed-set accuracy, and runs trained by earlier \
                 versions lack it; use the last checkpoint (`--checkpoint last`)",
                run_dir.display(),
                p.display()
            )
        })?;
        let m: OsslMetrics = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid best-checkpoint record", p.display()))?;
        return Ok((load_ema(&dir, model, device)?, m.iterations, true));
    }
    let ck = checkpoint::find(run_dir)?;
    let state = checkpoint::load_state(&ck)?;
    Ok(match load_extras_state(&ck) {
        Some(s) if s.step == state.step => (load_ema(&ck, model, device)?, state.step, true),
        _ => (
            checkpoint::load_model(&ck, model, device)?,
            state.step,
            false,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type TB = Flex;

    #[test]
    fn best_checkpoint_rule_and_old_checkpoints() {
        let m = |closed: f64, iterations: usize| OsslMetrics {
            recipe: "iomatch".into(),
            closed_accuracy: closed,
            open_balanced_accuracy: 0.5,
            auroc: 0.5,
            never_unknown_balanced_accuracy: None,
            open_recall: vec![0.5; 7],
            ova_open_balanced_accuracy: None,
            ova_auroc: None,
            unknown_score: String::new(),
            open_prediction: String::new(),
            num_seen_classes: 6,
            num_unseen_classes: 4,
            seen_classes: "0-5".into(),
            labels_per_class: Some(4),
            labelled_list: None,
            labelled_images: 24,
            unlabelled_images: 100,
            closed_test_images: 60,
            full_test_images: 100,
            iterations,
            evaluated_model: "ema".into(),
            train_seconds: None,
        };
        // USB: the first evaluation is the best; a later one only when strictly better.
        assert!(is_new_best(None, 0.0));
        let b = m(0.9, 100);
        assert!(!is_new_best(Some(&b), 0.9));
        assert!(!is_new_best(Some(&b), 0.8));
        assert!(is_new_best(Some(&b), 0.9 + 1e-9));
        // The best so far travels with the checkpoint; `ossl.json` of older checkpoints,
        // written without it, still reads.
        let st: OsslState = serde_json::from_str(r#"{"step":300,"dist_align":null}"#).unwrap();
        assert_eq!(st.best, None);
        let st = OsslState {
            step: 300,
            dist_align: None,
            best: Some(b.clone()),
        };
        let back: OsslState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
    }

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

    #[test]
    fn usb_schedule() {
        assert_eq!(usb_cosine_lr(0, 100, 0, 0.03), 0.03);
        let end = usb_cosine_lr(100, 100, 0, 0.03);
        assert!((end - 0.03 * (7.0 * std::f64::consts::PI / 16.0).cos()).abs() < 1e-12);
        assert!(
            (usb_cosine_lr(50, 100, 0, 1.0) - (7.0 * std::f64::consts::PI / 32.0).cos()).abs()
                < 1e-12
        );
        // Warm-up from 0 (USB: current_step / warmup).
        assert_eq!(usb_cosine_lr(0, 110, 10, 0.1), 0.0);
        assert!((usb_cosine_lr(5, 110, 10, 0.1) - 0.05).abs() < 1e-12);
        assert_eq!(usb_cosine_lr(10, 110, 10, 0.1), 0.1);
    }

    fn floats<B: Backend, M: Module<B>>(m: &M) -> Vec<f32> {
        let mut c = CollectFloats(Vec::new());
        m.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn ema_blends_parameters_and_copies_batchnorm_buffers() {
        let device = Default::default();
        let spec = unseen_backbones::BackboneSpec {
            in_channels: 1,
            width: Some(4),
            ..unseen_backbones::BackboneSpec::new("resnet_small")
        };
        let mut r = Rng::new(1);
        let a = unseen_backbones::init::reinit(spec.init::<TB>(3, &device).unwrap(), &mut || {
            r.next_f64()
        });
        let mut r = Rng::new(2);
        let b0 = unseen_backbones::init::reinit(spec.init::<TB>(3, &device).unwrap(), &mut || {
            r.next_f64()
        });
        // Give `b` BatchNorm statistics different from `a`'s with one training-mode pass.
        let ad =
            unseen_backbones::init::reinit(spec.init::<Autodiff<TB>>(3, &device).unwrap(), &mut {
                let mut r = Rng::new(2);
                move || r.next_f64()
            });
        let x = Tensor::<Autodiff<TB>, 4>::ones([2, 1, 8, 8], &device);
        let _ = ad.forward(x);
        let b = ad.valid();
        assert_eq!(floats(&b0).len(), floats(&b).len());
        let (fa, fb) = (floats(&a), floats(&b));
        let e = ema_update(&a, b.clone(), 0.75);
        let fe = floats(&e);
        // Which entries are buffers: visit with the path.
        struct Kinds(Vec<bool>, Vec<String>);
        impl<B: Backend> ModuleVisitor<B> for Kinds {
            fn enter_module(&mut self, name: &str, _: &str) {
                self.1.push(name.into());
            }
            fn exit_module(&mut self, _: &str, _: &str) {
                self.1.pop();
            }
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
                let buf = matches!(
                    self.1.last().map(String::as_str),
                    Some("running_mean" | "running_var")
                );
                let n = p.val().shape().num_elements();
                self.0.extend(std::iter::repeat_n(buf, n));
            }
        }
        let mut kinds = Kinds(Vec::new(), Vec::new());
        a.visit(&mut kinds);
        let kinds = kinds.0;
        assert_eq!(kinds.len(), fe.len());
        assert!(kinds.iter().any(|&k| k) && kinds.iter().any(|&k| !k));
        let mut buffers_differ = false;
        for i in 0..fe.len() {
            if kinds[i] {
                assert_eq!(fe[i], fb[i], "buffer {i} copied from the model");
                buffers_differ |= fa[i] != fb[i];
            } else {
                let want = 0.75 * fa[i] + 0.25 * fb[i];
                assert!(
                    (fe[i] - want).abs() < 1e-6,
                    "param {i}: {} vs {want}",
                    fe[i]
                );
            }
        }
        assert!(
            buffers_differ,
            "the test needs different running statistics"
        );
        // Momentum 0: the model itself.
        assert_eq!(floats(&ema_update(&a, b.clone(), 0.0)), fb);
    }

    #[test]
    fn heads_follow_iomatchnet() {
        let device = Default::default();
        let mut rng = Rng::new(3);
        let h = IoMatchHeads::<TB>::new(16, 6, 8, &mut rng, &device);
        assert_eq!(h.proj1.weight.val().dims(), [16, 16]);
        assert_eq!(h.proj2.weight.val().dims(), [16, 8]);
        assert_eq!(h.mb.weight.val().dims(), [8, 12]);
        assert!(h.mb.bias.is_none());
        assert_eq!(h.open.weight.val().dims(), [8, 7]);
        let bias = h
            .open
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(bias, vec![0.0; 7]);
        let (ova, open) = h.forward(Tensor::ones([5, 16], &device));
        assert_eq!((ova.dims(), open.dims()), ([5, 12], [5, 7]));
        // Seeded: same generator state, same weights.
        let again = IoMatchHeads::<TB>::new(16, 6, 8, &mut Rng::new(3), &device);
        assert_eq!(floats(&h), floats(&again));
    }

    /// `train_step` on real digits (the bundled MNIST subset, the CPU IOMatch config):
    /// repeated steps on one batch lower its supervised loss, every logged term comes back
    /// named, and a non-finite loss gives its values instead of an update.
    #[test]
    fn train_step_learns_a_batch_and_refuses_a_nan_loss() {
        type AB = Autodiff<Flex>;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../configs/cpu/iomatch_mnist.toml"
        );
        let mut cfg = crate::config::load(Path::new(path), &[]).unwrap();
        cfg.data.id.path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(&cfg.data.id.path);
        let sec = cfg.ossl.clone().unwrap();
        let data = load_data(&cfg, &sec).unwrap();
        let device = Default::default();
        let k = data.split.num_seen;
        let mut model = build_model::<AB>(&cfg, &sec, k, 28, &device, true).unwrap();
        let mut ema = model.valid();
        let mut optim = Optim::<AB, OsslModel<AB>>::new(&cfg.train);
        let (b, n) = (cfg.train.batch_size, sec.mu() * cfg.train.batch_size);
        let (weak, strong) = views(&cfg, &sec, &data.labelled, 28);
        let lb = ViewStream::new(data.labelled.clone(), vec![weak.clone()], b, 0, "l")
            .unwrap()
            .batch(0);
        let ulb = ViewStream::new(data.unlabelled.clone(), vec![weak, strong], n, 0, "u")
            .unwrap()
            .batch(0);
        let mut pixels = lb.views[0].clone();
        pixels.extend_from_slice(&ulb.views[0]);
        pixels.extend_from_slice(&ulb.views[1]);
        let ctx = StepContext::new(&cfg, &sec);
        let batch = |pixels: Vec<f32>| {
            (
                Tensor::<AB, 4>::from_data(
                    TensorData::new(pixels, [b + 2 * n, 1, 28, 28]),
                    &device,
                ),
                lb.labels_tensor::<AB>(&device),
            )
        };
        let mut sup = Vec::new();
        for _ in 0..8 {
            let (x, y) = batch(pixels.clone());
            let (m, e, v) = train_step(model, &ema, &mut optim, x, y, 1, 0.03, &ctx, None).unwrap();
            (model, ema) = (m, e);
            let names: Vec<&str> = v.terms.iter().map(|t| t.0).collect();
            assert_eq!(
                names,
                [
                    "loss/sup",
                    "loss/mb",
                    "loss/ui",
                    "loss/op",
                    "train/mask_ratio",
                    "train/in_mask_ratio",
                    "train/p_mask_ratio",
                    "train/q_mask_ratio"
                ]
            );
            let parts: f32 = v.terms[..4].iter().map(|t| t.1).sum();
            assert!(
                (parts - v.loss).abs() < 1e-4 * v.loss.abs().max(1.0),
                "{v:?}"
            );
            sup.push(v.terms[0].1);
        }
        assert!(
            sup[7] < 0.5 * sup[0],
            "supervised loss did not fall: {sup:?}"
        );
        // A NaN in the open-set head's bias: L_op, hence the loss, is NaN. (A NaN *pixel*
        // would not do: training-mode BatchNorm spreads it over the batch and flex's ReLU
        // maps NaN to 0, so the logits stay finite.)
        let heads = model.heads.as_mut().unwrap();
        heads.open.bias = Some(Param::from_tensor(Tensor::full([k + 1], f32::NAN, &device)));
        let (x, y) = batch(pixels);
        let err = train_step(model, &ema, &mut optim, x, y, 1, 0.03, &ctx, None).unwrap_err();
        assert!(err.loss.is_nan(), "{:?}", err.terms_line());
        assert!(
            err.terms_line().contains("loss/op = NaN"),
            "{}",
            err.terms_line()
        );
    }

    fn toy(n: usize) -> Arc<ImageSet> {
        let pixels = (0..n * 16).map(|i| (i * 37 % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 2) as u32).collect();
        Arc::new(ImageSet::new(pixels, labels, 1, 4, 4, vec!["a".into(), "b".into()]).unwrap())
    }

    #[test]
    fn view_stream_concatenates_permutations_and_is_pure() {
        let weak = ViewAugment::digits_weak(vec![0.5], vec![0.5]);
        let mut weak = weak;
        weak.crop_padding = 1;
        let mut s = ViewStream::new(toy(5), vec![weak.clone(), weak.clone()], 3, 7, "t").unwrap();
        // 10 positions = two permutations of 0..5.
        let idx: Vec<usize> = (0..4).flat_map(|t| s.indices(t)).collect();
        for chunk in idx[..10].chunks(5) {
            let mut c = chunk.to_vec();
            c.sort_unstable();
            assert_eq!(c, [0, 1, 2, 3, 4]);
        }
        // A batch larger than the set still fills.
        let mut big = ViewStream::new(toy(2), vec![weak.clone()], 5, 7, "t").unwrap();
        assert_eq!(big.batch(0).len(), 5);
        // Batch t depends only on (seed, name, t), not on what was drawn before.
        let b2 = s.batch(2);
        let mut fresh = ViewStream::new(toy(5), vec![weak.clone(), weak], 3, 7, "t").unwrap();
        assert_eq!(fresh.batch(2), b2);
        assert_eq!(b2.num_views(), 2);
        assert_eq!(
            b2.labels,
            b2.indices
                .iter()
                .map(|&i| (i % 2) as u32)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn section_validation() {
        let ok = OsslSection {
            seen_classes: Some("0-5".into()),
            labels_per_class: Some(4),
            ..Default::default()
        };
        assert!(ok.validate(RecipeKind::Fixmatch).is_ok());
        assert!(ok.validate(RecipeKind::Iomatch).is_ok());
        let e = OsslSection::default()
            .validate(RecipeKind::Iomatch)
            .unwrap_err();
        assert!(e.contains("`seen_classes` is required"), "{e}");
        let e = OsslSection {
            labels_per_class: None,
            ..ok.clone()
        }
        .validate(RecipeKind::Iomatch)
        .unwrap_err();
        assert!(
            e.contains("`labels_per_class` (or `labelled_list`) is required"),
            "{e}"
        );
        let e = OsslSection {
            q_cutoff: Some(0.4),
            ..ok.clone()
        }
        .validate(RecipeKind::Fixmatch)
        .unwrap_err();
        assert!(e.contains("IOMatch setting"), "{e}");
        for bad in [
            OsslSection {
                mu: Some(0),
                ..ok.clone()
            },
            OsslSection {
                ema_momentum: Some(1.5),
                ..ok.clone()
            },
            OsslSection {
                p_cutoff: Some(2.0),
                ..ok.clone()
            },
            OsslSection {
                seen_classes: Some("x".into()),
                ..ok.clone()
            },
            OsslSection {
                labels_per_class: Some(0),
                ..ok.clone()
            },
        ] {
            assert!(bad.validate(RecipeKind::Iomatch).is_err(), "{bad:?}");
        }
        assert!(ok.validate(RecipeKind::Oe).is_err());
        assert_eq!(ok.iomatch().q_cutoff, 0.5);
        assert_eq!(
            (ok.mu(), ok.iters_per_epoch(), ok.ema_momentum()),
            (7, 1024, 0.999)
        );
    }

    #[test]
    fn shipped_configs_parse_and_use_the_reference_splits() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut seen = 0;
        for dir in ["configs/papers", "configs/cpu"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if !(name.starts_with("iomatch_") || name.starts_with("fixmatch_")) {
                    continue;
                }
                let cfg = crate::config::load(&p, &[]).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                let sec = cfg.ossl.clone().unwrap();
                let want_recipe = if name.starts_with("iomatch") {
                    RecipeKind::Iomatch
                } else {
                    RecipeKind::Fixmatch
                };
                assert_eq!(cfg.recipe, want_recipe, "{name}");
                let spec = unseen_data::splits::ClassSpec::parse(sec.seen_classes()).unwrap();
                if name.contains("cifar100_") {
                    let n: usize = name
                        .split('_')
                        .nth(2)
                        .unwrap()
                        .trim_end_matches("seen")
                        .parse()
                        .unwrap();
                    let want = unseen_data::splits::ossl::cifar100_seen_classes(n).unwrap();
                    assert_eq!(spec.classes(), &want[..], "{name}");
                    assert_eq!(cfg.train.weight_decay, 1e-3, "{name}");
                } else if name.contains("cifar10_") {
                    assert_eq!(sec.seen_classes(), "2-7", "{name}");
                }
                if name.contains("labels") {
                    let l = if name.contains("_4labels") { 4 } else { 25 };
                    assert_eq!(sec.labels_per_class(), l, "{name}");
                }
                if name.contains("_in30_") {
                    // ImageNet-20-P1/P5: the first 20 classes, the official labelled list,
                    // IOMatch's `get_imagenet30` transforms.
                    let p = if name.contains("_p1") { "p1" } else { "p5" };
                    assert_eq!(sec.seen_classes(), "0-19", "{name}");
                    assert_eq!(
                        sec.labelled_list.as_deref(),
                        Some(Path::new(&format!(
                            "data/imagenet30/filelist/train_labeled_{p}.txt"
                        ))),
                        "{name}"
                    );
                    assert_eq!(cfg.data.id.source, "file-list", "{name}");
                    assert_eq!(sec.views, Some(ViewPreset::Imagenet), "{name}");
                    assert_eq!(
                        cfg.data.preprocess_for(true).resize_to,
                        Some([256, 256]),
                        "{name}"
                    );
                    let test = cfg.data.preprocess_for(false);
                    assert_eq!((test.resize, test.center_crop), (Some(256), Some(224)));
                    assert_eq!((cfg.train.batch_size, sec.mu()), (32, 1), "{name}");
                    assert_eq!(cfg.train.weight_decay, 3e-4, "{name}");
                }
                seen += 1;
            }
        }
        // 10 paper configs per recipe (CIFAR-10 6/4, CIFAR-100 20/50/80 seen; 4 and 25
        // labels; ImageNet-20-P1/P5) and four CPU configs (MNIST, Fashion-MNIST).
        assert_eq!(seen, 24);
    }
}
