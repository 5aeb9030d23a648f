//! Generalized category discovery: the `gcd`, `simgcd` and `protogcd` recipes on one loop.
//!
//! **Data.** `data.id` is the whole labelled dataset (old and new classes). `[gcd]` picks
//! the old classes and the labelled fraction of their training images
//! (`unseen_data::splits::gcd`); the unlabelled training set holds the rest of the old
//! classes and every image of the new ones. Labels are remapped old-first (`0..old`, then
//! `old..K`), as GCD's `get_datasets.py`. Batches mix labelled and unlabelled images with
//! SimGCD's class-balanced sampler (each draw labelled with probability 1/2), two views
//! each (the `[data.augment]` pipeline drawn twice).
//!
//! **Model** ([`GcdModel`]): the backbone, SimGCD's `DINOHead` projector (`mlp`: d -> h -> h
//! -> p with GELU, L2-normalised output for the contrastive losses) and a cosine prototype
//! classifier (SimGCD's weight-normed `last_layer` with the gain fixed at 1 = ProtoGCD's
//! prototypes) over the L2-normalised backbone features.
//!
//! **Losses** (`unseen_losses`):
//! - `gcd`: `(1 − w)·InfoNCE(τ = 1) + w·SupCon(τ = 0.07)` on the projections, `w = 0.35`
//!   (`methods/contrastive_training/contrastive_training.py`); predictions come from
//!   semi-supervised k-means on the backbone features after training;
//! - `simgcd`: `unseen_losses::simgcd::simgcd_loss`;
//! - `protogcd`: `unseen_losses::protogcd::protogcd_loss`.
//!
//! **Evaluation.** GCD's "v2" protocol: one Hungarian matching over all classes, then the
//! accuracy of all, old-class and new-class images, on the unlabelled training images (the
//! papers' transductive number) and on the test split. Model selection never looks at
//! new-class labels: the last epoch is evaluated. `[gcd] estimate_k = true` adds GCD's
//! class-number estimate (Brent search on k-means accuracy of the labelled subset). OOD sets
//! in `[[data.ood]]` are scored ProtoGCD-style (all old and new classes count as known) with
//! MSP, MaxLogit, Energy, CE-to-uniform, the top-1/top-2 probability ratio and the margin.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::Backbone;
use unseen_data::loader::Loader;
use unseen_data::multiview::{MultiViewLoader, Sampling};
use unseen_data::sampler::WeightedSampler;
use unseen_data::splits::gcd::{GcdConfig, GcdSplit};
use unseen_data::transforms::views::ViewAugment;
use unseen_data::transforms::Augment;
use unseen_data::{ImageSet, Rng};
use unseen_eval::estimate_k::{estimate_k_gcd, EstimateKConfig};
use unseen_eval::gcd::gcd_accuracy_v2;
use unseen_eval::kmeans::{
    l2_normalize_rows, nearest_centers, semi_supervised_kmeans, SsKMeansConfig,
};
use unseen_losses::protogcd::{protogcd_loss, ProtoGcdConfig};
use unseen_losses::simgcd::{simgcd_loss, SimGcdConfig};
use unseen_losses::supcon::{info_nce, supcon_masked};

use crate::checkpoint::{self, TrainState};
use crate::config::{ExperimentConfig, RecipeKind};
use crate::io::write_atomic;
use crate::optim::{lr_at, Optim};
use crate::tb::TbLogger;
use crate::train::{NonFiniteLoss, TrainOptions};

/// `[gcd]`: the split, the heads and the method hyper-parameters (unset values are the
/// official defaults of the recipe's paper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcdSection {
    /// Old (known) classes of `data.id`, as a class spec (`"0-4"`); the rest are new.
    #[serde(default = "default_old")]
    pub old_classes: String,
    /// Fraction of old-class training images that keep their labels (GCD: 0.5).
    #[serde(default = "default_fraction")]
    pub labelled_fraction: f64,
    /// Hidden width of the projector MLP (SimGCD's `DINOHead`: 2048).
    #[serde(default = "default_hidden")]
    pub proj_hidden: usize,
    /// Output width of the projector (SimGCD: 256).
    #[serde(default = "default_proj_dim")]
    pub proj_dim: usize,
    /// Weight `w` of the supervised terms (all three methods: 0.35).
    #[serde(default)]
    pub sup_weight: Option<f64>,
    /// SimGCD's mean-entropy weight (CIFAR-100 4, CUB 2, others 1).
    #[serde(default)]
    pub memax_weight: Option<f64>,
    /// SimGCD's teacher-temperature warm-up length in epochs (30).
    #[serde(default)]
    pub warmup_teacher_epochs: Option<usize>,
    /// ProtoGCD's entropy weight (2).
    #[serde(default)]
    pub entropy_weight: Option<f64>,
    /// ProtoGCD's prototype-separation weight (0.1; CUB 0.05).
    #[serde(default)]
    pub proto_sep_weight: Option<f64>,
    /// ProtoGCD's ramp of the hard pseudo-label ratio, in epochs (100).
    #[serde(default)]
    pub ramp_ratio_epochs: Option<usize>,
    /// ProtoGCD option: start the old-class prototypes at the labelled class means of the
    /// (pretrained) backbone features.
    #[serde(default)]
    pub init_prototypes: bool,
    /// Semi-supervised k-means restarts (`gcd` predictions, class-number estimation).
    #[serde(default = "default_n_init")]
    pub kmeans_n_init: usize,
    /// Also estimate the number of classes (GCD's Brent search) after training.
    #[serde(default)]
    pub estimate_k: bool,
    /// Upper bound of the class-number search (default: twice the true number).
    #[serde(default)]
    pub max_k: Option<usize>,
}

fn default_old() -> String {
    "0-4".into()
}
fn default_fraction() -> f64 {
    0.5
}
fn default_hidden() -> usize {
    2048
}
fn default_proj_dim() -> usize {
    256
}
fn default_n_init() -> usize {
    10
}

impl Default for GcdSection {
    fn default() -> Self {
        Self {
            old_classes: default_old(),
            labelled_fraction: default_fraction(),
            proj_hidden: default_hidden(),
            proj_dim: default_proj_dim(),
            sup_weight: None,
            memax_weight: None,
            warmup_teacher_epochs: None,
            entropy_weight: None,
            proto_sep_weight: None,
            ramp_ratio_epochs: None,
            init_prototypes: false,
            kmeans_n_init: default_n_init(),
            estimate_k: false,
            max_k: None,
        }
    }
}

impl GcdSection {
    /// Checks the values for `recipe`.
    pub fn validate(&self, recipe: RecipeKind) -> std::result::Result<(), String> {
        self.split()
            .check_fraction()
            .map_err(|e| format!("labelled_fraction: {e}"))?;
        if self.proj_hidden == 0 || self.proj_dim == 0 {
            return Err("proj_hidden and proj_dim must be at least 1".into());
        }
        if self.kmeans_n_init == 0 {
            return Err("kmeans_n_init must be at least 1".into());
        }
        if let Some(w) = self.sup_weight {
            if !(0.0..=1.0).contains(&w) {
                return Err(format!("sup_weight must be in [0, 1], got {w}"));
            }
        }
        let simgcd_only = self.memax_weight.is_some() || self.warmup_teacher_epochs.is_some();
        let proto_only = self.entropy_weight.is_some()
            || self.proto_sep_weight.is_some()
            || self.ramp_ratio_epochs.is_some()
            || self.init_prototypes;
        if simgcd_only && recipe != RecipeKind::Simgcd {
            return Err("memax_weight / warmup_teacher_epochs apply to the simgcd recipe".into());
        }
        if proto_only && recipe != RecipeKind::Protogcd {
            return Err(
                "entropy_weight / proto_sep_weight / ramp_ratio_epochs / init_prototypes apply \
                 to the protogcd recipe"
                    .into(),
            );
        }
        Ok(())
    }

    fn split(&self) -> GcdConfig {
        let mut c = GcdConfig::new(&self.old_classes);
        c.labelled_fraction = self.labelled_fraction;
        c
    }

    fn simgcd(&self) -> SimGcdConfig {
        let mut c = SimGcdConfig::new();
        if let Some(v) = self.sup_weight {
            c.sup_weight = v;
        }
        if let Some(v) = self.memax_weight {
            c.memax_weight = v;
        }
        if let Some(v) = self.warmup_teacher_epochs {
            c.warmup_teacher_epochs = v;
        }
        c
    }

    fn protogcd(&self) -> ProtoGcdConfig {
        let mut c = ProtoGcdConfig::new();
        if let Some(v) = self.sup_weight {
            c.sup_weight = v;
        }
        if let Some(v) = self.entropy_weight {
            c.entropy_weight = v;
        }
        if let Some(v) = self.proto_sep_weight {
            c.proto_sep_weight = v;
        }
        if let Some(v) = self.ramp_ratio_epochs {
            c.ramp_ratio_epochs = v;
        }
        c
    }
}

/// SimGCD's `DINOHead.mlp`: three linear layers with GELU between them.
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    /// `mlp.0`: `d -> hidden`.
    pub fc1: Linear<B>,
    /// `mlp.2`: `hidden -> hidden`.
    pub fc2: Linear<B>,
    /// `mlp.4`: `hidden -> proj_dim`.
    pub fc3: Linear<B>,
}

impl<B: Backend> Projector<B> {
    fn new(d: usize, hidden: usize, out: usize, dev: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(d, hidden).init(dev),
            fc2: LinearConfig::new(hidden, hidden).init(dev),
            fc3: LinearConfig::new(hidden, out).init(dev),
        }
    }

    /// The projection before normalisation (`DINOHead`'s `x_proj`).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc3
            .forward(gelu(self.fc2.forward(gelu(self.fc1.forward(x)))))
    }
}

/// Backbone, projector and prototype classifier.
#[derive(Module, Debug)]
pub struct GcdModel<B: Backend> {
    /// The feature extractor (its own linear head is not used).
    pub backbone: Backbone<B>,
    /// Contrastive projector.
    pub projector: Projector<B>,
    /// Class prototypes `[K, feature_dim]` (normalised in the forward pass).
    pub prototypes: Param<Tensor<B, 2>>,
}

fn l2n<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let n = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / n
}

/// What one forward pass gives.
pub struct GcdForward<B: Backend> {
    /// Backbone features `[n, d]`.
    pub features: Tensor<B, 2>,
    /// L2-normalised projections `[n, p]`.
    pub proj: Tensor<B, 2>,
    /// Cosine logits `[n, K]` (in `[-1, 1]`).
    pub logits: Tensor<B, 2>,
}

impl<B: Backend> GcdModel<B> {
    /// Runs the three parts.
    pub fn forward(&self, x: Tensor<B, 4>) -> GcdForward<B> {
        let features = self.backbone.forward_features(x);
        let proj = l2n(self.projector.forward(features.clone()));
        let logits = l2n(features.clone()).matmul(l2n(self.prototypes.val()).transpose());
        GcdForward {
            features,
            proj,
            logits,
        }
    }
}

/// Builds the model: seeded backbone (plus `model.weights`), projector and prototypes.
fn build_model<B: Backend>(
    cfg: &ExperimentConfig,
    sec: &GcdSection,
    k: usize,
    img: usize,
    device: &B::Device,
    load_weights: bool,
) -> Result<GcdModel<B>> {
    let mut spec = cfg.model.clone();
    if !load_weights {
        spec.weights = None;
    }
    let backbone = crate::train::build_backbone::<B>(&spec, k, img, cfg.seed, device, false)?;
    let d = backbone.feature_dim();
    let mut rng = Rng::stream(cfg.seed, "gcd-heads");
    let projector = unseen_backbones::init::reinit(
        Projector::new(d, sec.proj_hidden, sec.proj_dim, device),
        &mut || rng.next_f64(),
    );
    let protos: Vec<f32> = (0..k * d).map(|_| rng.normal() as f32).collect();
    let prototypes = Param::from_tensor(Tensor::from_data(TensorData::new(protos, [k, d]), device));
    Ok(GcdModel {
        backbone,
        projector,
        prototypes,
    })
}

/// Features and cosine logits of a whole set (inference mode), row-major.
pub struct Outputs {
    /// `[n, d]`.
    pub features: Vec<f32>,
    /// Feature width.
    pub dim: usize,
    /// `[n, K]`.
    pub logits: Vec<f32>,
    /// Number of classes.
    pub classes: usize,
}

fn infer<B: Backend>(
    model: &GcdModel<B>,
    set: &Arc<ImageSet>,
    augment: &Augment,
    batch: usize,
    device: &B::Device,
) -> Result<Outputs> {
    let loader = Loader::new(
        set.clone(),
        batch,
        false,
        false,
        Augment::normalize_only(augment.mean.clone(), augment.std.clone()),
        0,
    )?;
    let mut out = Outputs {
        features: Vec::new(),
        dim: 0,
        logits: Vec::new(),
        classes: 0,
    };
    for b in loader.epoch(0) {
        let x = Tensor::<B, 4>::from_data(TensorData::new(b.images, b.shape), device);
        let f = model.forward(x);
        out.dim = f.features.dims()[1];
        out.classes = f.logits.dims()[1];
        out.features.extend(
            f.features
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap(),
        );
        out.logits.extend(
            f.logits
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap(),
        );
    }
    Ok(out)
}

/// Everything the loop and the evaluation need about the data.
struct GcdData {
    split: GcdSplit,
    merged: Arc<ImageSet>,
    num_labelled: usize,
    test: unseen_data::splits::gcd::GcdEval,
    ood: Vec<(String, Arc<ImageSet>)>,
}

fn load_data(cfg: &ExperimentConfig, sec: &GcdSection) -> Result<GcdData> {
    let train = crate::data_setup::load_dataset(
        &cfg.data.id,
        true,
        cfg.seed,
        "data.id",
        &cfg.data.preprocess,
    )?;
    let test = crate::data_setup::load_dataset(
        &cfg.data.id,
        false,
        cfg.seed,
        "data.id",
        &cfg.data.preprocess,
    )?;
    if train.channels != cfg.model.in_channels {
        bail!(
            "data.id has {} channel(s) but model.in_channels is {}",
            train.channels,
            cfg.model.in_channels
        );
    }
    let split = GcdSplit::new(&train, &sec.split(), cfg.seed).context("[gcd] split")?;
    let test = split.test(&test).context("[gcd] split of the test set")?;
    let merged = split.merged();
    let mut ood = Vec::new();
    for (i, o) in cfg.data.ood.iter().enumerate() {
        let what = format!("data.ood[{i}] ({})", o.name);
        let s = crate::data_setup::load_dataset(
            &o.dataset,
            false,
            cfg.seed,
            &what,
            &cfg.data.preprocess,
        )?;
        ood.push((o.name.clone(), Arc::new(s)));
    }
    Ok(GcdData {
        num_labelled: merged.num_labelled,
        merged: Arc::new(merged.set),
        split,
        test,
        ood,
    })
}

/// Labelled class means of the backbone features, written into the first `old` prototypes.
fn init_prototypes<B: Backend>(
    model: GcdModel<B>,
    data: &GcdData,
    cfg: &ExperimentConfig,
    device: &B::Device,
) -> Result<GcdModel<B>> {
    let lab = Arc::new(data.split.labelled.clone());
    let out = infer(&model, &lab, &cfg.data.augment, 256, device)?;
    let k = data.split.num_classes();
    let d = out.dim;
    let mut protos = model
        .prototypes
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let mut sums = vec![0f64; k * d];
    let mut counts = vec![0usize; k];
    for (i, &y) in lab.labels.iter().enumerate() {
        let y = y as usize;
        counts[y] += 1;
        for j in 0..d {
            sums[y * d + j] += out.features[i * d + j] as f64;
        }
    }
    for c in 0..k {
        if counts[c] > 0 {
            for j in 0..d {
                protos[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
            }
        }
    }
    let t = Tensor::from_data(TensorData::new(protos, [k, d]), device);
    Ok(GcdModel {
        prototypes: Param::from_tensor(t),
        ..model
    })
}

/// Trains a GCD recipe and writes the run folder; returns the summary.
pub fn train<B: AutodiffBackend>(
    cfg: ExperimentConfig,
    opts: &TrainOptions,
    device: B::Device,
) -> Result<String> {
    let sec = cfg.gcd.clone().unwrap_or_default();
    let run_dir = crate::train::prepare_run_dir(&cfg, opts)?;
    B::seed(&device, cfg.seed);
    let started = Instant::now();
    let data = load_data(&cfg, &sec)?;
    let k = data.split.num_classes();
    let img = data.merged.height;
    let mut model = build_model::<B>(&cfg, &sec, k, img, &device, opts.resume.is_none())?;
    if sec.init_prototypes && opts.resume.is_none() {
        model = init_prototypes(model, &data, &cfg, &device)?;
    }
    let mut optim = Optim::<B, GcdModel<B>>::new(&cfg.train);
    let mut state = TrainState {
        epochs_done: 0,
        step: 0,
        rng: crate::train::recipe_rng(cfg.seed).state(),
    };
    if opts.resume.is_some() {
        let ck = checkpoint::find(&run_dir)?;
        state = checkpoint::load_state(&ck)?;
        model = checkpoint::load_model(&ck, model, &device)?;
        model.backbone = crate::train::freeze(&cfg.model, model.backbone);
        optim = optim.load(&ck.join("optim"), &device)?;
    }
    let t = &cfg.train;
    let sampler = WeightedSampler::gcd_balanced(
        data.num_labelled,
        data.merged.len() - data.num_labelled,
        cfg.seed,
    )?;
    let loader = MultiViewLoader::contrastive(
        data.merged.clone(),
        ViewAugment::from_augment(&cfg.data.augment),
        2,
        t.batch_size,
        Sampling::Weighted(sampler),
        true,
        cfg.seed,
    )
    .context("GCD training loader")?;
    let bpe = loader.batches_per_epoch();
    if bpe == 0 {
        bail!(
            "train.batch_size ({}) is larger than the training set ({} images)",
            t.batch_size,
            data.merged.len()
        );
    }
    let total = bpe * t.epochs;
    let warmup = bpe * t.warmup_epochs;
    let mut tb = TbLogger::new(&run_dir.join("tb"))?;
    let simgcd = sec.simgcd();
    let protogcd = sec.protogcd();
    let w_sup = sec.sup_weight.unwrap_or(0.35);
    let num_labelled = data.num_labelled;
    for epoch in state.epochs_done..t.epochs {
        let ep_start = Instant::now();
        let mut loss_sum = 0.0;
        for batch in loader.epoch(epoch) {
            let lr = lr_at(state.step, total, warmup, t.lr, t.min_lr_ratio);
            let n = batch.len();
            let x = batch.views_tensor::<B>(&device);
            let labels = batch.labels_tensor::<B>(&device);
            let mask: Vec<bool> = batch.indices.iter().map(|&i| i < num_labelled).collect();
            let mask_f: Vec<f32> = mask.iter().map(|&m| m as u8 as f32).collect();
            let maskb = Tensor::<B, 1, Bool>::from_data(TensorData::new(mask, [n]), &device);
            let f = model.forward(x);
            let (loss, terms): (Tensor<B, 1>, Vec<(&str, Tensor<B, 1>)>) = match cfg.recipe {
                RecipeKind::Gcd => {
                    let con = info_nce(f.proj.clone(), 2, 1.0);
                    let p = f.proj.dims()[1];
                    // [2n, p] view-major -> [n, 2, p] for SupCon.
                    let views = f.proj.reshape([2, n, p]).swap_dims(0, 1);
                    let m = Tensor::<B, 1>::from_data(TensorData::new(mask_f, [n]), &device);
                    let sup = supcon_masked(views, Some(labels), m, 0.07, 0.07);
                    let total = con.clone().mul_scalar(1.0 - w_sup) + sup.clone().mul_scalar(w_sup);
                    (total, vec![("con", con), ("sup_con", sup)])
                }
                RecipeKind::Simgcd => {
                    let p = simgcd_loss(f.logits, f.proj, labels, maskb, epoch, &simgcd);
                    (
                        p.total,
                        vec![
                            ("cls", p.cls),
                            ("cluster", p.cluster),
                            ("entropy", p.entropy),
                            ("con", p.con),
                            ("sup_con", p.sup_con),
                        ],
                    )
                }
                _ => {
                    let p = protogcd_loss(
                        f.logits,
                        f.proj,
                        model.prototypes.val(),
                        labels,
                        maskb,
                        epoch,
                        &protogcd,
                    );
                    (
                        p.total,
                        vec![
                            ("cls", p.cls),
                            ("cluster", p.cluster),
                            ("entropy", p.entropy),
                            ("proto_sep", p.proto_sep),
                            ("con", p.con),
                            ("sup_con", p.sup_con),
                        ],
                    )
                }
            };
            let value: f32 = loss.clone().into_scalar().elem();
            if !value.is_finite() {
                let terms = terms
                    .iter()
                    .map(|(n, v)| format!("{n} = {}", v.clone().into_scalar().elem::<f32>()))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(NonFiniteLoss {
                    value,
                    epoch: epoch + 1,
                    step: state.step,
                    terms,
                    checkpoint: checkpoint::last_dir(&run_dir).display().to_string(),
                    done: state.epochs_done,
                }
                .into());
            }
            for (name, v) in &terms {
                tb.scalar(
                    &format!("loss/{name}"),
                    v.clone().into_scalar().elem::<f32>() as f64,
                    state.step,
                );
            }
            tb.scalar("loss/total", value as f64, state.step);
            tb.scalar("lr", lr, state.step);
            loss_sum += value as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            state.step += 1;
        }
        state.epochs_done = epoch + 1;
        if (epoch + 1) % t.checkpoint_every == 0 || epoch + 1 == t.epochs {
            checkpoint::save(&run_dir, &model, &optim, &state)?;
        }
        tb.flush();
        if !opts.quiet {
            eprintln!(
                "epoch {}/{}: loss {:.4}, {:.1}s",
                epoch + 1,
                t.epochs,
                loss_sum / bpe as f64,
                ep_start.elapsed().as_secs_f64()
            );
        }
        if opts.halt_after_epochs == Some(state.epochs_done) && epoch + 1 < t.epochs {
            return Err(crate::train::Halted(state.epochs_done).into());
        }
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let ev = evaluate(
        &model.valid(),
        &cfg,
        &sec,
        &data,
        &opts.device_label,
        &device,
    )?;
    let mut metrics = ev.metrics.clone();
    metrics.train_seconds = Some(train_seconds);
    for (set, acc) in [
        ("unlabelled", metrics.gcd.unlabelled),
        ("test", metrics.gcd.test),
    ] {
        tb.scalar(&format!("gcd/{set}/all"), acc.all, state.step);
        if let Some(o) = acc.old {
            tb.scalar(&format!("gcd/{set}/old"), o, state.step);
        }
        if let Some(nw) = acc.new {
            tb.scalar(&format!("gcd/{set}/new"), nw, state.step);
        }
    }
    tb.flush();
    write_atomic(
        &run_dir.join("metrics.json"),
        (serde_json::to_string_pretty(&metrics)? + "\n").as_bytes(),
    )?;
    Ok(ev.summary(&metrics))
}

/// All / old / new accuracy (v2 protocol); `None` where a subset is empty.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccuracyJson {
    /// All images.
    pub all: f64,
    /// Old-class images.
    pub old: Option<f64>,
    /// New-class images.
    pub new: Option<f64>,
}

/// The `gcd` section of `metrics.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdMetrics {
    /// How the accuracy is computed.
    pub protocol: String,
    /// How predictions are made (`argmax of the prototype logits` or `semi-supervised
    /// k-means`).
    pub predictor: String,
    /// Old classes.
    pub old_classes: usize,
    /// New classes.
    pub new_classes: usize,
    /// Labelled training images.
    pub labelled: usize,
    /// On the unlabelled training images (the papers' number).
    pub unlabelled: AccuracyJson,
    /// On the test split.
    pub test: AccuracyJson,
    /// GCD's class-number estimate, when asked.
    pub estimated_k: Option<usize>,
    /// The true number of classes.
    pub true_k: usize,
}

/// One OOD score on one OOD set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdOodRow {
    /// OOD set.
    pub dataset: String,
    /// Score (`msp`, `maxlogit`, `energy`, `ce_uniform`, `ratio`, `margin`).
    pub score: String,
    /// Metrics (OOD positive for FPR@95, as the rest of Unseen).
    pub metrics: unseen_eval::OodMetrics,
}

/// `metrics.json` of a GCD run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcdMetricsFile {
    /// Run name.
    pub run: String,
    /// Recipe.
    pub recipe: String,
    /// Device.
    pub device: String,
    /// Seed.
    pub seed: u64,
    /// Category-discovery accuracy.
    pub gcd: GcdMetrics,
    /// ProtoGCD's OOD extension (empty without `[[data.ood]]`).
    pub ood: Vec<GcdOodRow>,
    /// Wall time of training and evaluation (absent from `trainer eval`).
    pub train_seconds: Option<f64>,
}

/// A finished evaluation.
pub struct GcdEvaluation {
    /// What goes to `metrics.json`.
    pub metrics: GcdMetricsFile,
    /// Unlabelled-train and test predictions: (set, index in the set, label, is_old,
    /// prediction).
    pub predictions: Vec<(&'static str, usize, usize, bool, usize)>,
}

impl GcdEvaluation {
    /// Human-readable summary.
    pub fn summary(&self, m: &GcdMetricsFile) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.2}", 100.0 * v));
        let g = &m.gcd;
        let mut s = format!(
            "{} [{}]: {} old + {} new classes ({})\n{:<12} {:>7} {:>7} {:>7}\n",
            m.run, m.recipe, g.old_classes, g.new_classes, g.protocol, "set", "All", "Old", "New"
        );
        for (name, a) in [("unlabelled", g.unlabelled), ("test", g.test)] {
            s += &format!(
                "{:<12} {:>7} {:>7} {:>7}\n",
                name,
                f(Some(a.all)),
                f(a.old),
                f(a.new)
            );
        }
        if let Some(k) = g.estimated_k {
            s += &format!("estimated K = {k} (true K = {})\n", g.true_k);
        }
        for r in &m.ood {
            s += &format!(
                "OOD {:<20} {:<10} AUROC {:.2} FPR@95 {:.2}\n",
                r.dataset,
                r.score,
                100.0 * r.metrics.auroc,
                100.0 * r.metrics.fpr95
            );
        }
        if let Some(t) = m.train_seconds {
            s += &format!("{t:.1}s\n");
        }
        s
    }
}

fn argmax_rows(v: &[f32], k: usize) -> Vec<usize> {
    v.chunks(k)
        .map(|r| {
            let mut b = 0;
            for (i, &x) in r.iter().enumerate() {
                if x > r[b] {
                    b = i;
                }
            }
            b
        })
        .collect()
}

fn acc_json(a: unseen_eval::gcd::GcdAccuracy) -> AccuracyJson {
    AccuracyJson {
        all: a.all,
        old: a.old,
        new: a.new,
    }
}

/// ID scores (higher = more in-distribution) of ProtoGCD's OOD extension, from cosine logits
/// scaled by the training temperature 0.1.
fn ood_scores(logits: &[f32], k: usize) -> Vec<(&'static str, Vec<f32>)> {
    let t = 0.1f32;
    let mut out: Vec<(&'static str, Vec<f32>)> =
        ["msp", "maxlogit", "energy", "ce_uniform", "ratio", "margin"]
            .iter()
            .map(|n| (*n, Vec::with_capacity(logits.len() / k)))
            .collect();
    for r in logits.chunks(k) {
        let z: Vec<f32> = r.iter().map(|v| v / t).collect();
        let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let lse = m + z.iter().map(|v| (v - m).exp()).sum::<f32>().ln();
        let mut p: Vec<f32> = z.iter().map(|v| (v - lse).exp()).collect();
        let mean_logp = z.iter().map(|v| v - lse).sum::<f32>() / k as f32;
        p.sort_by(|a, b| b.partial_cmp(a).unwrap());
        let (p1, p2) = (p[0], if k > 1 { p[1] } else { 0.0 });
        let maxlogit = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let vals = [p1, maxlogit, t * lse, -mean_logp, p1 / (p2 + 1e-6), p1 - p2];
        for (o, v) in out.iter_mut().zip(vals) {
            o.1.push(v);
        }
    }
    out
}

/// Evaluates a trained model (see the module docs).
fn evaluate<B: Backend>(
    model: &GcdModel<B>,
    cfg: &ExperimentConfig,
    sec: &GcdSection,
    data: &GcdData,
    device_label: &str,
    device: &B::Device,
) -> Result<GcdEvaluation> {
    let bs = cfg.eval.batch_size.max(1);
    let aug = &cfg.data.augment;
    let unl = Arc::new(data.split.unlabelled.clone());
    let test = Arc::new(data.test.set.clone());
    let out_u = infer(model, &unl, aug, bs, device)?;
    let out_t = infer(model, &test, aug, bs, device)?;
    let k = data.split.num_classes();
    let y_u: Vec<usize> = unl.labels.iter().map(|&l| l as usize).collect();
    let y_t: Vec<usize> = test.labels.iter().map(|&l| l as usize).collect();
    let mut rng = Rng::stream(cfg.seed, "gcd-eval");
    let mut uniform = || rng.next_f64();
    // L2-normalised backbone features of labelled + unlabelled training images, with the
    // labelled images' classes: the input of semi-supervised k-means (GCD's
    // test_kmeans_semi_sup) and of the class-number estimate. Computed once, when needed.
    let clustering_input = if cfg.recipe == RecipeKind::Gcd || sec.estimate_k {
        let lab = Arc::new(data.split.labelled.clone());
        let out_l = infer(model, &lab, aug, bs, device)?;
        let d = out_l.dim;
        let mut x = out_l.features;
        x.extend_from_slice(&out_u.features);
        l2_normalize_rows(&mut x, d)?;
        let labels: Vec<Option<usize>> = lab
            .labels
            .iter()
            .map(|&l| Some(l as usize))
            .chain(std::iter::repeat_n(None, unl.len()))
            .collect();
        Some((x, d, labels))
    } else {
        None
    };
    let (pred_u, pred_t, predictor) = match (&clustering_input, cfg.recipe) {
        (Some((x, d, labels)), RecipeKind::Gcd) => {
            // Test images go to the nearest centre.
            let mut km = SsKMeansConfig::new(k);
            km.n_init = sec.kmeans_n_init;
            let res = semi_supervised_kmeans(x, *d, labels, &km, &mut uniform)?;
            let pred_u = res.assignments[data.split.labelled.len()..].to_vec();
            let mut xt = out_t.features.clone();
            l2_normalize_rows(&mut xt, *d)?;
            let pred_t = nearest_centers(&xt, *d, &res.centers)?;
            (
                pred_u,
                pred_t,
                "semi-supervised k-means on backbone features",
            )
        }
        _ => (
            argmax_rows(&out_u.logits, k),
            argmax_rows(&out_t.logits, k),
            "argmax of the prototype logits",
        ),
    };
    let acc_u = gcd_accuracy_v2(&y_u, &pred_u, &data.split.is_old)?;
    let acc_t = gcd_accuracy_v2(&y_t, &pred_t, &data.test.is_old)?;
    let estimated_k = match (&clustering_input, sec.estimate_k) {
        (Some((x, d, labels)), true) => {
            let mut ek = EstimateKConfig::new(sec.max_k.unwrap_or(2 * k));
            ek.n_init = sec.kmeans_n_init;
            Some(estimate_k_gcd(x, *d, labels, &ek, &mut uniform)?.k)
        }
        _ => None,
    };
    let mut ood = Vec::new();
    if cfg.recipe != RecipeKind::Gcd && !data.ood.is_empty() {
        let id_scores = ood_scores(&out_t.logits, k);
        for (name, set) in &data.ood {
            let o = infer(model, set, aug, bs, device)?;
            for ((score, id), (_, od)) in id_scores.iter().zip(ood_scores(&o.logits, k)) {
                ood.push(GcdOodRow {
                    dataset: name.clone(),
                    score: score.to_string(),
                    metrics: unseen_eval::metrics::ood_metrics(id, &od)?,
                });
            }
        }
    }
    let mut predictions = Vec::new();
    for (i, (&y, &p)) in y_u.iter().zip(&pred_u).enumerate() {
        predictions.push(("unlabelled", i, y, data.split.is_old[i], p));
    }
    for (i, (&y, &p)) in y_t.iter().zip(&pred_t).enumerate() {
        predictions.push(("test", i, y, data.test.is_old[i], p));
    }
    Ok(GcdEvaluation {
        metrics: GcdMetricsFile {
            run: cfg.name.clone(),
            recipe: cfg.recipe.name().into(),
            device: device_label.into(),
            seed: cfg.seed,
            gcd: GcdMetrics {
                protocol: "v2: one Hungarian matching over all classes, then All/Old/New".into(),
                predictor: predictor.into(),
                old_classes: data.split.num_old,
                new_classes: data.split.num_new(),
                labelled: data.num_labelled,
                unlabelled: acc_json(acc_u),
                test: acc_json(acc_t),
                estimated_k,
                true_k: k,
            },
            ood,
            train_seconds: None,
        },
        predictions,
    })
}

/// A GCD run's last checkpoint with the data it was trained on.
struct RunModel<B: Backend> {
    model: GcdModel<B>,
    data: GcdData,
    step: usize,
}

/// Loads `run_dir`'s last checkpoint into the config's network (and the run's data split).
fn load_run<B: Backend>(
    cfg: &ExperimentConfig,
    sec: &GcdSection,
    run_dir: &Path,
    device: &B::Device,
) -> Result<RunModel<B>> {
    let data = load_data(cfg, sec)?;
    let k = data.split.num_classes();
    let model = build_model::<B>(cfg, sec, k, data.merged.height, device, false)?;
    let ck = checkpoint::find(run_dir)?;
    let step = checkpoint::load_state(&ck)?.step;
    let model = checkpoint::load_model(&ck, model, device)?;
    Ok(RunModel { model, data, step })
}

/// `trainer eval` on a GCD run: re-evaluates the last checkpoint into `<run>/eval/`
/// (`metrics.json`, and with `save_scores` `predictions.csv`:
/// `set,index,label,is_old,prediction`). Returns the summary.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    device_label: &str,
    device: &B::Device,
    save_scores: bool,
) -> Result<String> {
    let sec = cfg.gcd.clone().unwrap_or_default();
    let RunModel { model, data, .. } = load_run::<B>(cfg, &sec, run_dir, device)?;
    let ev = evaluate(&model, cfg, &sec, &data, device_label, device)?;
    let out = run_dir.join("eval");
    std::fs::create_dir_all(&out)?;
    write_atomic(
        &out.join("metrics.json"),
        (serde_json::to_string_pretty(&ev.metrics)? + "\n").as_bytes(),
    )?;
    if save_scores {
        let mut csv = String::from("set,index,label,is_old,prediction\n");
        for (set, i, y, old, p) in &ev.predictions {
            csv += &format!("{set},{i},{y},{},{p}\n", *old as u8);
        }
        write_atomic(&out.join("predictions.csv"), csv.as_bytes())?;
    }
    Ok(ev.summary(&ev.metrics) + &format!("wrote {}", out.display()))
}

/// The backbone of a GCD run's last checkpoint (for `trainer embed --run`).
pub fn load_backbone<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    device: &B::Device,
) -> Result<Backbone<B>> {
    let sec = cfg.gcd.clone().unwrap_or_default();
    Ok(load_run::<B>(cfg, &sec, run_dir, device)?.model.backbone)
}

/// What `trainer export` writes of a GCD run ([`export_parts`]).
pub struct ExportParts<B: Backend> {
    /// The network of the last checkpoint.
    pub model: GcdModel<B>,
    /// Optimisation steps of that checkpoint.
    pub step: usize,
    /// The reference's state dict of `nn.Sequential(backbone, DINOHead)`: the backbone
    /// under `0.` without its linear head (the reference replaces it by `nn.Identity()`),
    /// `1.mlp.{0,2,4}.{weight,bias}` (the projector), and for SimGCD / ProtoGCD the cosine
    /// classifier as a weight-normalised linear layer, `1.last_layer` / `1.prototype_layer`
    /// `.weight_g` (ones `[K, 1]`: the reference fixes the norm at 1) and `.weight_v` (the
    /// prototypes `[K, d]`).
    pub weights: crate::export::TensorMap,
    /// `FILE.json`'s `heads`.
    pub heads: serde_json::Value,
    /// Names of the `K` head outputs: the old classes in label order, then `new cluster
    /// N` for the discovered ones (which new class a cluster is, is decided by the Hungarian
    /// matching of the evaluation, not by the model).
    pub class_names: Vec<String>,
    /// The test images (the export's sample batch is the first 8).
    pub test: Arc<ImageSet>,
}

/// Loads a GCD run's last checkpoint in the layout of the official code
/// ([`ExportParts::weights`]) for `trainer export`.
pub fn export_parts<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    device: &B::Device,
) -> Result<ExportParts<B>> {
    use crate::export::tensor_entry;
    let sec = cfg.gcd.clone().unwrap_or_default();
    let RunModel { model, data, step } = load_run::<B>(cfg, &sec, run_dir, device)?;
    let head = model.backbone.head_name();
    let head_keys = [format!("{head}.weight"), format!("{head}.bias")];
    let mut weights: crate::export::TensorMap =
        unseen_backbones::weights::state_dict(&model.backbone, step as i64)?
            .into_iter()
            .filter(|(name, _)| !head_keys.contains(name))
            .map(|(name, t)| (format!("0.{name}"), t))
            .collect();
    for (i, l) in [
        &model.projector.fc1,
        &model.projector.fc2,
        &model.projector.fc3,
    ]
    .into_iter()
    .enumerate()
    {
        // torch Linear weights are `[out, in]`; burn's `[in, out]`.
        weights.insert(
            format!("1.mlp.{}.weight", 2 * i),
            tensor_entry(l.weight.val().transpose()),
        );
        if let Some(b) = &l.bias {
            weights.insert(format!("1.mlp.{}.bias", 2 * i), tensor_entry(b.val()));
        }
    }
    let k = data.split.num_classes();
    let layer = match cfg.recipe {
        RecipeKind::Simgcd => Some("last_layer"),
        RecipeKind::Protogcd => Some("prototype_layer"),
        _ => None,
    };
    if let Some(layer) = layer {
        let protos = model.prototypes.val();
        let device = protos.device();
        weights.insert(
            format!("1.{layer}.weight_g"),
            tensor_entry(Tensor::<B, 2>::ones([k, 1], &device)),
        );
        weights.insert(format!("1.{layer}.weight_v"), tensor_entry(protos));
    }
    let num_old = data.split.num_old;
    let names = &data.split.labelled.class_names;
    let class_names = (0..k)
        .map(|c| {
            if c < num_old {
                names[c].clone()
            } else {
                format!("new cluster {}", c - num_old)
            }
        })
        .collect();
    let heads = serde_json::json!({
        "layout": match cfg.recipe {
            RecipeKind::Simgcd => "SimGCD",
            RecipeKind::Protogcd => "ProtoGCD",
            _ => "GCD",
        },
        "module": "nn.Sequential(backbone with nn.Identity() as its head, DINOHead)",
        "feature_dim": model.backbone.feature_dim(),
        "hidden_dim": sec.proj_hidden,
        "bottleneck_dim": sec.proj_dim,
        "num_classes": k,
        "num_old_classes": num_old,
        "classifier": layer,
    });
    Ok(ExportParts {
        model,
        step,
        weights,
        heads,
        class_names,
        test: Arc::new(data.test.set),
    })
}
