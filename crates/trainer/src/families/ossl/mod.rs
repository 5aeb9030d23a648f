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
//! - IOMatch (`semilearn/algorithms/iomatch/iomatch.py`): `IOMatchNet` ([`model::IoMatchHeads`]) and
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
//! budget `T` ([`crate::run::optim::usb_cosine_lr`]; `lr_schedule = "cosine"` uses [`crate::run::optim::lr_at`]
//! instead). Evaluation (every `eval_every_iters` iterations and at the end) uses the **EMA**
//! model, as USB's `evaluate` (`ema.apply_shadow()`).
//!
//! Units: an *epoch* is `iters_per_epoch` iterations (USB: `num_train_iter / epoch`, 1024 in
//! every IOMatch config) and `train.epochs` counts them (USB `epoch`, 256), so the budget is
//! `train.epochs × ossl.iters_per_epoch` iterations (262,144 in the papers). IOMatch's open-set
//! loss is switched off during epoch 0 (`if self.epoch == 0: op_loss *= 0.0`); checkpoints are
//! written at epoch ends (`train.checkpoint_every`) and on Ctrl-C, so `--resume` continues
//! exactly.
//!
//! # Sampling
//! USB's `RandomSampler` concatenates fresh permutations of the set until it has
//! `iterations × batch` indices, so a labelled set smaller than the batch (24 images for
//! CIFAR-6-24 against `B = 64`) still fills every batch, each image at most once per
//! permutation. [`data::ViewStream`] does the same with seeded permutations: position `p` of the
//! stream is entry `p mod n` of permutation `⌊p / n⌋`, and view `v` of the `k`-th image of
//! iteration `t` is augmented with its own generator derived from `(seed, stream, t, k, v)`.
//! Every batch is therefore a pure function of the seed and the iteration (resuming needs no
//! sampler state, and the thread count does not matter).
//!
//! # EMA
//! USB's `EMA.update` blends every *parameter* (`shadow = m·shadow + (1 − m)·param`), and
//! `EMAHook.after_train_step` then loads the live model's state dict into the EMA model
//! before the shadow, so the EMA model's BatchNorm **buffers** (running mean / variance) are
//! copies of the live model's. [`crate::run::ema::ema_update`] does exactly that with a burn `ModuleMapper`.
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
//! protocol, whose weights are kept in `checkpoints/best/` ([`crate::run::checkpoint::best_dir`]). Choosing on the
//! test set is what the reference does; the final model is the number without that choice.
//!
//! # Checkpoints
//! Besides `model.mpk`, `optim.mpk` and `state.json` ([`crate::run::checkpoint`]),
//! `checkpoints/last/` holds `ema.mpk` (the EMA weights) and `ossl.json` (the iteration they
//! belong to and the method's state, IOMatch's distribution-alignment queue), written into the
//! same folder before it replaces the previous checkpoint as a whole. A checkpoint without
//! them (written by hand, or by a version that wrote them after the rename and crashed in
//! between) makes resuming restart the EMA from the live model with a warning, and
//! `trainer eval` evaluate the live model. The best evaluation so far travels in
//! `state.json`, so a resumed run keeps choosing the same best checkpoint;
//! `checkpoints/best/` is replaced (temporary folder, then rename) only when an evaluation
//! beats it.
//!
//! # Differences from the official code worth knowing
//! - USB skips weight decay on BatchNorm and bias parameters for a bare backbone
//!   (`bn_wd_skip` via the WRN's `no_weight_decay`), i.e. for FixMatch; `IOMatchNet` has no
//!   `no_weight_decay`, so IOMatch decays every parameter. burn's SGD decays every parameter
//!   for both recipes.
//! - Distribution alignment (`dist_align`) is off by default, as the CIFAR-10 configs; the
//!   CIFAR-100 configs leave the argparse default (on), and so do ours (`ossl.dist_align`).
//! - Views: for 1-channel 28x28 digits the weak / strong views are
//!   `ViewAugment::digits_weak` / `digits_strong`; otherwise USB's
//!   `ViewAugment::usb_weak` / `usb_strong` (`ossl.views` overrides). Only
//!   `data.augment.mean` / `std` are read; its crop / flip settings are not used.

pub mod config;
pub mod data;
pub mod eval;
pub mod export;
pub mod family;
pub mod methods;
pub mod model;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::config::ExperimentConfig;
use crate::run::checkpoint::{self, Which};
use crate::run::family::StepLoss;
use config::OsslSection;
use data::OsslData;
use eval::OsslMetrics;
pub use family::{setup, OsslFamily};
use methods::{BatchSizes, OsslMethod, OsslMethodDef};
use model::OsslModel;

/// What a registered method says about itself, once its keys are parsed.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// IOMatch's heads' projection size, `None` for the bare backbone.
    pub heads: Option<usize>,
    /// The "unknown" threshold of a model without an open-set head.
    pub p_cutoff: f64,
    /// The method's keys with the parsed values.
    pub table: toml::Table,
}

/// The registered methods' names and descriptions.
pub fn methods() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl methods::Visitor for Names {
        fn method<M: OsslMethodDef>(&mut self, name: &'static str, about: &'static str) {
            self.0.push((name, about));
        }
    }
    let mut v = Names(Vec::new());
    methods::registry(&mut v);
    v.0
}

/// Whether `recipe` is one of this family's methods.
pub fn has(recipe: &str) -> bool {
    methods().iter().any(|(n, _)| *n == recipe)
}

/// The `[ossl]` section of `cfg`, checked with the rest of the config an OSSL run reads.
///
/// # Errors
/// A value of the wrong type (named with its path), a missing split key, or config tables an
/// OSSL run does not use.
pub fn section(cfg: &ExperimentConfig) -> Result<OsslSection> {
    let sec: OsslSection = match &cfg.ossl {
        Some(t) => crate::families::parse_table(t, "ossl")?,
        None => OsslSection::default(),
    };
    sec.validate(&cfg.recipe)
        .map_err(|e| anyhow::anyhow!("[ossl]: {e}"))?;
    config::check_config(cfg, &sec)?;
    Ok(sec)
}

/// Parses and checks the method's keys of `[ossl]` (`sec.method`).
///
/// # Errors
/// An unknown key (say, an IOMatch key given to FixMatch) or a value out of range.
pub fn method_info(cfg: &ExperimentConfig, sec: &OsslSection) -> Result<MethodInfo> {
    struct Find<'a> {
        recipe: &'a str,
        table: &'a toml::Table,
        out: Option<Result<MethodInfo>>,
    }
    impl methods::Visitor for Find<'_> {
        fn method<M: OsslMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name != self.recipe {
                return;
            }
            let parse = || -> Result<MethodInfo> {
                let m: M = crate::families::parse_table(self.table, "ossl")?;
                m.check().map_err(|e| anyhow::anyhow!("[ossl]: {e}"))?;
                Ok(MethodInfo {
                    heads: m.heads(),
                    p_cutoff: m.p_cutoff(),
                    table: crate::families::to_table(&m)?,
                })
            };
            self.out = Some(parse());
        }
    }
    for (key, value) in &sec.method {
        let owners = owners_of(key, value);
        if !owners.is_empty() && !owners.contains(&cfg.recipe.as_str()) {
            bail!(
                "[ossl]: `{key}` is a setting of {}; recipe `{}` does not use it",
                owners
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                cfg.recipe
            );
        }
    }
    let mut f = Find {
        recipe: &cfg.recipe,
        table: &sec.method,
        out: None,
    };
    methods::registry(&mut f);
    f.out
        .with_context(|| format!("`{}` is not an open-set SSL method", cfg.recipe))?
}

/// The methods whose parameters include `key` (with a value of `value`'s type).
fn owners_of(key: &str, value: &toml::Value) -> Vec<&'static str> {
    struct Owners {
        table: toml::Table,
        found: Vec<&'static str>,
    }
    impl methods::Visitor for Owners {
        fn method<M: OsslMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if crate::families::parse_table::<M>(&self.table, "ossl").is_ok() {
                self.found.push(name);
            }
        }
    }
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value.clone());
    let mut o = Owners {
        table,
        found: Vec::new(),
    };
    methods::registry(&mut o);
    o.found
}

/// Checks the family's parts of `cfg` and records `[ossl]` with the parsed values.
///
/// # Errors
/// See [`section`] and [`method_info`].
pub fn resolve(mut cfg: ExperimentConfig) -> Result<ExperimentConfig> {
    let mut sec = section(&cfg)?;
    sec.method = method_info(&cfg, &sec)?.table;
    cfg.ossl = Some(crate::families::to_table(&sec)?);
    Ok(cfg)
}

/// Builds the method `cfg.recipe` names for `k` seen classes.
///
/// # Errors
/// Bad method parameters.
pub fn build_method<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    sec: &OsslSection,
    k: usize,
    device: &B::Device,
) -> Result<Box<dyn OsslMethod<B>>> {
    struct Build<'a, B: AutodiffBackend> {
        recipe: &'a str,
        table: &'a toml::Table,
        k: usize,
        device: &'a B::Device,
        out: Option<Result<Box<dyn OsslMethod<B>>>>,
    }
    impl<B: AutodiffBackend> methods::Visitor for Build<'_, B> {
        fn method<M: OsslMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name == self.recipe {
                self.out = Some(
                    crate::families::parse_table::<M>(self.table, "ossl")
                        .map(|m| m.build::<B>(self.k, self.device)),
                );
            }
        }
    }
    let mut b = Build::<B> {
        recipe: &cfg.recipe,
        table: &sec.method,
        k,
        device,
        out: None,
    };
    methods::registry(&mut b);
    b.out
        .with_context(|| format!("`{}` is not an open-set SSL method", cfg.recipe))?
}

/// What `checkpoints/last/ossl.json` holds besides the EMA weights (`ema.mpk`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OsslState {
    /// The step the EMA and the method's state belong to (must match `state.json`).
    pub(crate) step: usize,
    /// The method's state ([`OsslMethod::state`]; IOMatch's queue, which earlier versions
    /// wrote as `dist_align`).
    #[serde(default, alias = "dist_align")]
    pub(crate) method: Option<serde_json::Value>,
    /// The best evaluation, where earlier versions kept it (now in `state.json`); read only.
    #[serde(default, skip_serializing)]
    pub(crate) best: Option<OsslMetrics>,
}

/// Writes the EMA weights as `<dir>/ema.mpk` (read back by [`load_ema`]).
pub(crate) fn save_ema<B: Backend>(dir: &Path, ema: &OsslModel<B>) -> Result<()> {
    checkpoint::save_weights(&dir.join("ema"), ema)
}

pub(crate) fn load_ema<B: Backend>(
    dir: &Path,
    model: OsslModel<B>,
    device: &B::Device,
) -> Result<OsslModel<B>> {
    checkpoint::load_weights(&dir.join("ema"), model, device).context("the EMA weights")
}

pub(crate) fn load_extras_state(dir: &Path) -> Option<OsslState> {
    let text = std::fs::read_to_string(dir.join("ossl.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The loss of one batch `x = cat(x_lb, x_ulb_w, x_ulb_s)` (shape `[B + 2μB, c, h, w]`) in
/// one forward pass (USB's `use_cat = True`: BatchNorm sees the three groups together), with
/// `labels` of the labelled part; `epoch` 0-based.
pub fn batch_loss<B: AutodiffBackend>(
    method: &mut dyn OsslMethod<B>,
    model: &OsslModel<B>,
    x: Tensor<B, 4>,
    labels: Tensor<B, 1, Int>,
    sizes: BatchSizes,
    epoch: usize,
) -> StepLoss<B> {
    let out = model.forward(x);
    let (loss, terms) = method.loss(out, labels, sizes, epoch);
    StepLoss {
        loss,
        terms: terms.into_iter().map(|(t, v)| (t.to_string(), v)).collect(),
        stats: Vec::new(),
    }
}

/// An OSSL run's weights with the data and settings they were trained with.
pub struct RunModel<B: Backend> {
    /// The network: EMA weights when the checkpoint has them.
    pub model: OsslModel<B>,
    /// The split.
    pub data: OsslData,
    /// The iteration the weights belong to.
    pub step: usize,
    /// Whether they are the EMA's.
    pub ema: bool,
    /// `[ossl]`.
    pub sec: OsslSection,
    /// The method.
    pub method: MethodInfo,
}

/// The model of an OSSL run: for [`Which::Last`] the last checkpoint's EMA weights (the
/// model USB evaluates and Unseen reports) when the checkpoint has them for its step, else
/// the live weights; for [`Which::Best`] the best checkpoint's EMA weights.
///
/// # Errors
/// No such checkpoint in `run_dir`, a corrupt one, or weights that do not fit the config's
/// network.
pub fn load_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device: &B::Device,
) -> Result<RunModel<B>> {
    let sec = section(cfg)?;
    let method = method_info(cfg, &sec)?;
    let data = data::load_data(cfg, &sec)?;
    let k = data.split.num_seen;
    let model = model::build_model::<B>(cfg, method.heads, k, data.labelled.height, device, false)?;
    let (model, step, ema) = match which {
        Which::Best => {
            let (dir, record) = checkpoint::find_best(run_dir)?;
            let m: OsslMetrics = serde_json::from_value(record).with_context(|| {
                format!("{} is not a valid best-checkpoint record", dir.display())
            })?;
            (load_ema(&dir, model, device)?, m.iterations, true)
        }
        Which::Last => {
            let ck = checkpoint::find(run_dir)?;
            let state = checkpoint::load_state(&ck)?;
            match load_extras_state(&ck) {
                Some(s) if s.step == state.step => {
                    (load_ema(&ck, model, device)?, state.step, true)
                }
                _ => (
                    checkpoint::load_model(&ck, model, device)?,
                    state.step,
                    false,
                ),
            }
        }
    };
    Ok(RunModel {
        model,
        data,
        step,
        ema,
        sec,
        method,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::driver::train_step;
    use crate::run::optim::Optim;
    use burn::backend::{Autodiff, Flex};
    use burn::module::Param;
    use unseen_data::Rng;

    type AB = Autodiff<Flex>;

    fn cpu_config(overrides: &[&str]) -> anyhow::Result<ExperimentConfig> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut o: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        o.push(format!(
            "data.id.path={:?}",
            root.join("datasets/mnist-subset").display().to_string()
        ));
        crate::families::load_config(&root.join("configs/cpu/iomatch_mnist.toml"), &o)
    }

    /// `ossl.json` of earlier versions (the queue as `dist_align`, the best evaluation
    /// inside) still reads.
    #[test]
    fn old_extras_still_read() {
        let st: OsslState = serde_json::from_str(r#"{"step":300,"dist_align":null}"#).unwrap();
        assert_eq!((st.step, st.method, st.best), (300, None, None));
        let st: OsslState =
            serde_json::from_str(r#"{"step":3,"dist_align":[[0.5,0.5],[1,2],1]}"#).unwrap();
        assert_eq!(st.method, Some(serde_json::json!([[0.5, 0.5], [1, 2], 1])));
        let back: OsslState = serde_json::from_str(&serde_json::to_string(&st).unwrap()).unwrap();
        assert_eq!(back, st);
    }

    /// Family keys are checked by the section, method keys by the method: an IOMatch key
    /// given to FixMatch is an unknown key named with its path.
    #[test]
    fn section_and_method_validation() {
        let cfg = cpu_config(&[]).unwrap();
        let sec = section(&cfg).unwrap();
        assert_eq!(
            (sec.mu(), sec.iters_per_epoch(), sec.ema_momentum()),
            (7, 100, 0.99)
        );
        assert_eq!(method_info(&cfg, &sec).unwrap().heads, Some(128));
        let e = format!(
            "{:#}",
            cpu_config(&["recipe=fixmatch", "ossl.q_cutoff=0.4"]).unwrap_err()
        );
        assert!(e.contains("setting of `iomatch`; recipe `fixmatch`"), "{e}");
        let e = format!("{:#}", cpu_config(&["ossl.q_cutof=0.4"]).unwrap_err());
        assert!(
            e.contains("ossl") && e.contains("unknown field `q_cutof`"),
            "{e}"
        );
        for bad in [
            "ossl.mu=0",
            "ossl.ema_momentum=1.5",
            "ossl.p_cutoff=2.0",
            "ossl.seen_classes=\"x\"",
            "ossl.labels_per_class=0",
            "ossl.proj_dim=0",
        ] {
            assert!(cpu_config(&[bad]).is_err(), "{bad}");
        }
        let e = format!("{:#}", cpu_config(&["ossl.seen_classes=[]"]).unwrap_err());
        assert!(e.contains("ossl.seen_classes"), "{e}");
    }

    /// One step on real digits (the bundled MNIST subset, the CPU IOMatch config) through the
    /// driver's step: repeated steps on one batch lower its supervised loss, every logged term
    /// comes back named, and a non-finite loss gives its values instead of an update.
    #[test]
    fn iomatch_step_learns_a_batch_and_refuses_a_nan_loss() {
        let cfg = cpu_config(&[]).unwrap();
        let device = Default::default();
        let (mut fam, mut model) = setup::<AB>(&cfg, "cpu", &device).unwrap();
        let mut optim = Optim::<AB, OsslModel<AB>>::new(&cfg.train);
        let mut rng = Rng::new(0);
        let mut sup = Vec::new();
        for _ in 0..8 {
            let (m, v) = train_step(&mut fam, model, &mut optim, 0.03, 1, 0, &mut rng)
                .unwrap()
                .unwrap();
            model = m;
            let names: Vec<&str> = v.terms.iter().map(|t| t.0.as_str()).collect();
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
        let k = model.num_classes();
        let heads = model.heads.as_mut().unwrap();
        heads.open.bias = Some(Param::from_tensor(Tensor::full([k + 1], f32::NAN, &device)));
        let Err(v) = train_step(&mut fam, model, &mut optim, 0.03, 1, 0, &mut rng).unwrap() else {
            panic!("a NaN loss was applied");
        };
        assert!(v.loss.is_nan(), "{}", v.terms_line());
        assert!(
            v.terms_line().contains("loss/op = NaN"),
            "{}",
            v.terms_line()
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
                let cfg = crate::families::load_config(&p, &[])
                    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
                let sec = section(&cfg).unwrap();
                let want_recipe = if name.starts_with("iomatch") {
                    "iomatch"
                } else {
                    "fixmatch"
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
                    assert_eq!(sec.views, Some(config::ViewPreset::Imagenet), "{name}");
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
