//! The OOD-classifier family: ID classification trained with one of [`methods`] (cross-
//! entropy, the Outlier Exposure family, ...), evaluated by ID accuracy and OOD detection
//! with every configured detector on every OOD set ([`eval`]).
//!
//! Each step draws one ID batch (the epoch's seeded shuffle, augmented per image) and, for
//! methods that use outliers, one batch of the auxiliary outlier stream; the method returns
//! the loss. Accuracy on the training batches is accumulated per epoch. Exports use the
//! source library's names ([`export`]).

pub mod eval;
pub mod export;
pub mod methods;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::loader::{Batch, EpochIter, Loader, OutlierStream};
use unseen_data::Rng;

use crate::config::ExperimentConfig;
use crate::run::build::{build_for_checkpoint, build_model, freeze};
use crate::run::checkpoint::{self, Which};
use crate::run::data::ExperimentData;
use crate::run::family::{Evaluated, Family, StepLoss, StepValues};
use crate::run::optim::lr_at;
use crate::run::tb::TbLogger;
use eval::Evaluation;
use methods::{OodMethod, OodMethodDef, StepBatch};

/// What a registered method says about itself, once its `[loss]` table is parsed.
pub struct MethodInfo {
    /// Whether it consumes auxiliary outliers.
    pub needs_outliers: bool,
    /// Its default outliers per step for an ID batch of `train.batch_size`.
    pub outlier_batch: usize,
    /// The `[loss]` table with the parsed values (what `config.toml` records).
    pub table: toml::Table,
}

/// Whether `recipe` is one of this family's methods.
pub fn has(recipe: &str) -> bool {
    names().contains(&recipe)
}

/// The registered methods' names and descriptions.
pub fn methods() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl methods::Visitor for Names {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, about: &'static str) {
            self.0.push((name, about));
        }
    }
    let mut v = Names(Vec::new());
    methods::registry(&mut v);
    v.0
}

fn names() -> Vec<&'static str> {
    methods().into_iter().map(|(n, _)| n).collect()
}

/// Parses and checks `cfg`'s `[loss]` table with the method `cfg.recipe` names.
///
/// # Errors
/// An unknown key (named with its path), a value out of range, or a method that needs
/// outliers without `[data.outliers]`.
pub fn method_info(cfg: &ExperimentConfig) -> Result<MethodInfo> {
    struct Find<'a> {
        cfg: &'a ExperimentConfig,
        out: Option<Result<MethodInfo>>,
    }
    impl methods::Visitor for Find<'_> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name != self.cfg.recipe {
                return;
            }
            let parse = || -> Result<MethodInfo> {
                let m: M = crate::families::parse_table(&self.cfg.loss, "loss")?;
                m.check().map_err(|e| anyhow::anyhow!("[loss]: {e}"))?;
                Ok(MethodInfo {
                    needs_outliers: m.needs_outliers(),
                    outlier_batch: m.outlier_batch(self.cfg.train.batch_size),
                    table: crate::families::to_table(&m)?,
                })
            };
            self.out = Some(parse());
        }
    }
    let mut f = Find { cfg, out: None };
    methods::registry(&mut f);
    let info = f
        .out
        .with_context(|| format!("`{}` is not an OOD method", cfg.recipe))??;
    if info.needs_outliers && cfg.data.outliers.is_none() {
        bail!(
            "recipe `{}` needs auxiliary outliers: add a [data.outliers] table",
            cfg.recipe
        );
    }
    Ok(info)
}

/// Checks the family's parts of `cfg` and records the method's parsed `[loss]` table.
///
/// A `[loss]` key of another OOD method is dropped with a warning, as earlier versions
/// ignored it (the quickstart's `oe_lambda` under `--set recipe=supervised`); a key no
/// method knows is an error.
///
/// # Errors
/// See [`method_info`].
pub fn resolve(mut cfg: ExperimentConfig) -> Result<ExperimentConfig> {
    for key in foreign_keys(&cfg) {
        eprintln!(
            "warning: `loss.{key}` is a parameter of another method, not of `{}`; ignored",
            cfg.recipe
        );
        cfg.loss.remove(&key);
    }
    cfg.loss = method_info(&cfg)?.table;
    Ok(cfg)
}

/// The keys of `[loss]` that `cfg.recipe`'s method rejects but another OOD method accepts.
fn foreign_keys(cfg: &ExperimentConfig) -> Vec<String> {
    /// For each key: whether the recipe's method accepts it, whether any method does.
    struct Accepts<'a> {
        recipe: &'a str,
        key: &'a str,
        value: &'a toml::Value,
        own: bool,
        any: bool,
    }
    impl methods::Visitor for Accepts<'_> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            let mut t = toml::Table::new();
            t.insert(self.key.to_string(), self.value.clone());
            let ok = crate::families::parse_table::<M>(&t, "loss").is_ok();
            self.any |= ok;
            self.own |= ok && name == self.recipe;
        }
    }
    cfg.loss
        .iter()
        .filter(|(key, value)| {
            let mut a = Accepts {
                recipe: &cfg.recipe,
                key,
                value,
                own: false,
                any: false,
            };
            methods::registry(&mut a);
            a.any && !a.own
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Builds the method `cfg.recipe` names for a `num_classes`-way classifier.
fn build_method<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    num_classes: usize,
) -> Result<Box<dyn OodMethod<B>>> {
    struct Build<'a, B: AutodiffBackend> {
        cfg: &'a ExperimentConfig,
        k: usize,
        out: Option<Result<Box<dyn OodMethod<B>>>>,
    }
    impl<B: AutodiffBackend> methods::Visitor for Build<'_, B> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name == self.cfg.recipe {
                self.out = Some(
                    crate::families::parse_table::<M>(&self.cfg.loss, "loss")
                        .map(|m| m.build::<B>(self.k)),
                );
            }
        }
    }
    let mut b = Build::<B> {
        cfg,
        k: num_classes,
        out: None,
    };
    methods::registry(&mut b);
    b.out
        .with_context(|| format!("`{}` is not an OOD method", cfg.recipe))?
}

/// Per-epoch training statistics.
#[derive(Default)]
struct EpochSums {
    loss: f64,
    seen: usize,
    correct: f64,
}

/// The OOD family during a run.
pub struct OodFamily<B: AutodiffBackend> {
    cfg: ExperimentConfig,
    data: ExperimentData,
    method: Box<dyn OodMethod<B>>,
    loader: Loader,
    outliers: Option<OutlierStream>,
    epoch: Option<EpochIter>,
    device: B::Device,
    device_label: String,
    total: usize,
    warmup: usize,
    last_batch: usize,
    sums: EpochSums,
}

/// Loads the data, builds the network (seeded, then `model.weights`) and the method.
///
/// # Errors
/// Bad data, weights or method parameters.
pub fn setup<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    device_label: &str,
    device: &B::Device,
) -> Result<(OodFamily<B>, Backbone<B>)> {
    let info = method_info(cfg)?;
    let data = crate::run::data::load(
        &cfg.data,
        cfg.seed,
        info.needs_outliers,
        cfg.model.in_channels,
    )?;
    let k = data.num_classes();
    // The weights load report is printed even with --quiet: it says what was not loaded.
    let model = build_model::<B>(cfg, k, data.id_train.height, device, false)?;
    let method = build_method::<B>(cfg, k)?;
    let t = &cfg.train;
    let augment = cfg.data.augment.clone();
    let loader = Loader::new(
        data.id_train.clone(),
        t.batch_size,
        true,
        false,
        augment.clone(),
        cfg.seed,
    )
    .context("ID training loader")?;
    let out_bs = t.outlier_batch_size.unwrap_or(info.outlier_batch);
    let outliers = match &data.outliers {
        Some(o) => Some(
            OutlierStream::new(o.clone(), out_bs, augment, cfg.seed)
                .context("auxiliary outlier loader")?,
        ),
        None => None,
    };
    let bpe = loader.batches_per_epoch();
    Ok((
        OodFamily {
            cfg: cfg.clone(),
            data,
            method,
            loader,
            outliers,
            epoch: None,
            device: device.clone(),
            device_label: device_label.to_string(),
            total: bpe * t.epochs,
            warmup: bpe * t.warmup_epochs,
            last_batch: 0,
            sums: EpochSums::default(),
        },
        model,
    ))
}

/// Converts a CPU batch into device tensors.
fn to_device<B: Backend>(b: Batch, device: &B::Device) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
    let labels: Vec<i64> = b.labels.iter().map(|&l| l as i64).collect();
    let n = labels.len();
    (
        Tensor::from_data(TensorData::new(b.images, b.shape), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    )
}

impl Evaluated for Evaluation {
    fn record(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.metrics)?)
    }

    fn line(&self) -> String {
        format!("test acc {:.2}%", 100.0 * self.metrics.id.accuracy)
    }
}

impl<B: AutodiffBackend> Family<B> for OodFamily<B> {
    type Model = Backbone<B>;
    type Eval = Evaluation;

    fn steps_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn lr(&self, step: usize) -> f64 {
        let t = &self.cfg.train;
        lr_at(step, self.total, self.warmup, t.lr, t.min_lr_ratio)
    }

    fn start_epoch(&mut self, epoch: usize, first: usize) -> Result<()> {
        self.epoch = Some(self.loader.epoch_from(epoch, first));
        if let Some(o) = self.outliers.as_mut() {
            o.seek(epoch, first);
        }
        Ok(())
    }

    fn step(
        &mut self,
        model: &Backbone<B>,
        _epoch: usize,
        _step: usize,
        rng: &mut Rng,
    ) -> Result<StepLoss<B>> {
        let batch = self
            .epoch
            .as_mut()
            .and_then(|it| it.next())
            .context("the epoch has no batch left")?;
        self.last_batch = batch.len();
        let (images, labels) = to_device::<B>(batch, &self.device);
        let outliers = self
            .outliers
            .as_mut()
            .map(|o| to_device::<B>(o.next_batch(), &self.device).0);
        let out = self.method.step(
            model,
            StepBatch {
                images,
                labels: labels.clone(),
                outliers,
            },
            rng,
        );
        let n = labels.dims()[0];
        let correct = out
            .id_logits
            .argmax(1)
            .reshape([n])
            .equal(labels)
            .int()
            .sum()
            .float();
        Ok(StepLoss {
            loss: out.loss,
            terms: out
                .terms
                .into_iter()
                .map(|(name, v)| (format!("loss/{name}"), v))
                .collect(),
            stats: vec![correct],
        })
    }

    fn record(&mut self, values: &StepValues) {
        self.sums.loss += values.loss as f64 * self.last_batch as f64;
        self.sums.seen += self.last_batch;
        self.sums.correct += values.stats[0] as f64;
    }

    fn end_epoch(&mut self, tb: &mut TbLogger, step: usize, seconds: f64) -> String {
        let s = std::mem::take(&mut self.sums);
        let seen = s.seen.max(1) as f64;
        tb.scalar("train/accuracy", s.correct / seen, step);
        tb.scalar("train/loss", s.loss / seen, step);
        tb.scalar("train/images_per_second", s.seen as f64 / seconds, step);
        format!(
            "loss {:.4}, train acc {:.2}%",
            s.loss / seen,
            100.0 * s.correct / seen
        )
    }

    fn eval_every_steps(&self) -> usize {
        self.cfg.train.eval_every * self.loader.batches_per_epoch()
    }

    fn evaluate(
        &mut self,
        model: &Backbone<B>,
        step: usize,
        tb: &mut TbLogger,
    ) -> Result<Evaluation> {
        let ev = eval::evaluate::<B::InnerBackend>(
            &model.valid(),
            &self.cfg,
            &self.data,
            &self.device_label,
            &self.device,
        )?;
        tb.scalar("eval/accuracy", ev.metrics.id.accuracy, step);
        for r in &ev.metrics.ood {
            tb.scalar(
                &format!("eval/auroc/{}/{}", r.dataset, r.detector),
                r.metrics.auroc,
                step,
            );
            tb.scalar(
                &format!("eval/fpr95/{}/{}", r.dataset, r.detector),
                r.metrics.fpr95,
                step,
            );
        }
        Ok(ev)
    }

    fn loaded(&self, model: Backbone<B>) -> Backbone<B> {
        freeze(&self.cfg.model, model)
    }

    fn finish(
        &mut self,
        eval: Evaluation,
        _best: Option<&checkpoint::Best>,
        _train_seconds: f64,
        run_dir: &Path,
    ) -> Result<String> {
        eval.write(run_dir, &self.cfg)?;
        Ok(eval.summary())
    }
}

/// A run's network with the checkpoint `which` loaded, its data and the checkpoint's step.
///
/// # Errors
/// No such checkpoint, a corrupt one, or data that cannot be loaded.
pub fn load_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device: &B::Device,
) -> Result<(Backbone<B>, ExperimentData, usize)> {
    let data = crate::run::data::load(&cfg.data, cfg.seed, false, cfg.model.in_channels)?;
    let model = build_for_checkpoint::<B>(cfg, data.num_classes(), data.id_train.height, device)?;
    let (model, step) = match which {
        Which::Last => {
            let ck = checkpoint::find(run_dir)?;
            let step = checkpoint::load_state(&ck)?.step;
            (checkpoint::load_model(&ck, model, device)?, step)
        }
        Which::Best => {
            let (dir, _) = checkpoint::find_best(run_dir)?;
            let step = checkpoint::load_state(&dir).map_or(0, |s| s.step);
            (checkpoint::load_model(&dir, model, device)?, step)
        }
    };
    Ok((model, data, step))
}
