//! `[ossl]`: the family's keys (the split, batches, iterations, EMA, schedule, views). The
//! method's keys in the same table (`p_cutoff`, `lambda_u`, IOMatch's `q_cutoff`, ...) are
//! collected in [`OsslSection::method`] and parsed by the method named in `recipe`.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use unseen_data::splits::ossl::OsslConfig;

use crate::config::ExperimentConfig;

/// How the learning rate decays over the iteration budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// USB's `get_cosine_schedule_with_warmup`: `lr·cos(7π/16 · t/T)` (ends at ≈ 0.2·lr)
    /// after a linear warm-up of `train.warmup_epochs` epochs ([`crate::run::optim::usb_cosine_lr`]).
    Usb,
    /// Half-cosine to `train.min_lr_ratio·lr` with warm-up ([`crate::run::optim::lr_at`]).
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
pub struct OsslSection {
    /// Seen classes of `data.id` as a class list (`"2-7"`, `"0,3,9"`); they become labels
    /// `0..K` in the order written. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_classes: Option<String>,
    /// Labelled images per seen class, drawn with the seed (IOMatch: 4 or 25). Required
    /// unless `labelled_list` names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_per_class: Option<usize>,
    /// The labelled images as a list in the `file-list` format (`<path> <label>` per line,
    /// IOMatch's `data/imagenet30/filelist/train_labeled_p1.txt`), relative to
    /// `data.id.path` unless absolute. Each line must also be in `data.id.train_list`;
    /// a line given twice is a labelled image drawn twice as often, as the reference.
    /// Needs `data.id.source = "file-list"`; excludes `labels_per_class`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labelled_list: Option<std::path::PathBuf>,
    /// Whether the unlabelled set also holds the labelled images (USB / IOMatch: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_labelled_in_unlabelled: Option<bool>,
    /// Unlabelled images per labelled image in a batch, μ (`uratio: 7`); the labelled batch
    /// is `train.batch_size` (64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mu: Option<usize>,
    /// Iterations per epoch (USB: `num_train_iter / epoch` = 262144 / 256 = 1024). The
    /// budget is `train.epochs × iters_per_epoch` iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iters_per_epoch: Option<usize>,
    /// Evaluate the EMA model every this many iterations (`num_eval_iter: 1024`); 0 = only
    /// at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every_iters: Option<usize>,
    /// EMA momentum `m` of the evaluated model (`ema_m: 0.999`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ema_momentum: Option<f64>,
    /// Learning-rate schedule (default `usb`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lr_schedule: Option<LrSchedule>,
    /// View preset; by default `digits` for 1-channel images up to 28 pixels, else `usb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<ViewPreset>,
    /// The method's keys (`p_cutoff`, `lambda_u`, IOMatch's `q_cutoff`, ...), checked by the
    /// method (unknown keys are rejected there).
    #[serde(flatten)]
    pub method: toml::Table,
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

    /// Checks the family's values for `recipe`: the split keys are present, counts are
    /// positive, the momentum is in `[0, 1]`.
    pub fn validate(&self, recipe: &str) -> std::result::Result<(), String> {
        match self.seen_classes.as_deref() {
            None => {
                return Err(format!(
                    "`seen_classes` is required for recipe `{recipe}` (e.g. \"2-7\" for CIFAR-10 \
                     6/4, \"0-5\" for digits)"
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
                    "`labels_per_class` (or `labelled_list`) is required for recipe `{recipe}` \
                     (IOMatch uses 4 and 25 labels per class)"
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
        for (name, v) in [("mu", self.mu), ("iters_per_epoch", self.iters_per_epoch)] {
            if v == Some(0) {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        let m = self.ema_momentum();
        if !(0.0..=1.0).contains(&m) {
            return Err(format!("`ema_momentum` must lie in [0, 1], got {m}"));
        }
        Ok(())
    }
}

/// Checks the parts of a config outside `[ossl]` that an OSSL run reads differently.
pub fn check_config(cfg: &ExperimentConfig, sec: &OsslSection) -> Result<()> {
    let name = &cfg.recipe;
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
    if sec.labelled_list.is_some() {
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
