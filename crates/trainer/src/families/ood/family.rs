//! The OOD family during a run: the [`Family`] the driver calls. Each step draws the next
//! ID batch of the epoch (seeded shuffle, per-image augmentation) and, for methods that use
//! them, the next batch of the auxiliary outlier stream; the method returns the loss, and
//! the family counts the training accuracy per epoch.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;
use unseen_data::loader::{Batch, EpochIter, Loader, OutlierStream};
use unseen_data::Rng;

use super::eval::{self, Evaluation};
use super::methods::{OodMethod, StepBatch};
use super::{build_method, method_info};
use crate::config::ExperimentConfig;
use crate::families::build::{build_model, freeze};
use crate::run::checkpoint;
use crate::run::data::ExperimentData;
use crate::run::family::{Evaluated, Family, StepLoss, StepValues};
use crate::run::tb::TbLogger;

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
        format!("test acc {}", self.accuracy_text())
    }
}

impl<B: AutodiffBackend> Family<B> for OodFamily<B> {
    type Model = Backbone<B>;
    type Eval = Evaluation;

    fn steps_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
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
            None,
            &self.device_label,
            &self.device,
        )?;
        if let Some(acc) = ev.metrics.id.accuracy {
            tb.scalar("eval/accuracy", acc, step);
        }
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
