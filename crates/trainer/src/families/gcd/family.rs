//! The GCD family during a run: the [`Family`] the driver calls. Each step draws the next
//! batch of SimGCD's class-balanced sampler (two views per image), forwards both views once,
//! and takes the method's loss; evaluations follow `train.eval_every`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_data::multiview::{MultiViewEpochIter, MultiViewLoader, Sampling};
use unseen_data::sampler::WeightedSampler;
use unseen_data::transforms::views::ViewAugment;
use unseen_data::Rng;

use super::config::GcdSection;
use super::eval::{self, GcdEvaluation};
use super::methods::{GcdBatch, GcdMethod};
use super::model::{self, GcdModel};
use super::{build_method, load_data, method_info, section, GcdData, MethodInfo};
use crate::config::ExperimentConfig;
use crate::families::build::freeze;
use crate::run::checkpoint::Best;
use crate::run::family::{Evaluated, Family, StepLoss, StepValues};
use crate::run::tb::TbLogger;

/// The GCD family during a run.
pub struct GcdFamily<B: AutodiffBackend> {
    cfg: ExperimentConfig,
    sec: GcdSection,
    info: MethodInfo,
    data: GcdData,
    method: Box<dyn GcdMethod<B>>,
    loader: MultiViewLoader,
    epoch: Option<MultiViewEpochIter>,
    device: B::Device,
    device_label: String,
    loss_sum: f64,
    steps: usize,
}

/// Loads the data, builds the network (with `model.weights` unless resuming) and the method.
///
/// # Errors
/// Bad data, weights or parameters, or a batch larger than the training set.
pub fn setup<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    resume: bool,
    device_label: &str,
    device: &B::Device,
) -> Result<(GcdFamily<B>, GcdModel<B>)> {
    let sec = section(cfg)?;
    let info = method_info(cfg, &sec)?;
    let data = load_data(cfg, &sec)?;
    let k = data.split.num_classes();
    let img = data.merged.height;
    let mut model = model::build_model::<B>(cfg, &sec, k, img, device, !resume)?;
    if sec.init_prototypes && !resume {
        model = model::init_prototypes(model, &data, cfg, device)?;
    }
    let method = build_method::<B>(cfg, &sec)?;
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
    Ok((
        GcdFamily {
            cfg: cfg.clone(),
            sec,
            info,
            data,
            method,
            loader,
            epoch: None,
            device: device.clone(),
            device_label: device_label.to_string(),
            loss_sum: 0.0,
            steps: 0,
        },
        model,
    ))
}

impl Evaluated for GcdEvaluation {
    fn record(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.metrics)?)
    }

    fn line(&self) -> String {
        let g = &self.metrics.gcd;
        let mut line = format!("unlabelled All {:.2}%", 100.0 * g.unlabelled.all);
        if let Some(a) = g.backbone_kmeans {
            line += &format!(" (backbone k-means {:.2}%)", 100.0 * a.all);
        }
        if let Some(h) = g.head {
            line += &format!(
                ", {}/{} prototypes used, norm {:.2}",
                h.prototypes_used, g.true_k, h.prototype_norm_mean
            );
        }
        line
    }
}

impl<B: AutodiffBackend> Family<B> for GcdFamily<B> {
    type Model = GcdModel<B>;
    type Eval = GcdEvaluation;

    fn steps_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }

    fn start_epoch(&mut self, epoch: usize, first: usize) -> Result<()> {
        self.epoch = Some(self.loader.epoch_from(epoch, first));
        Ok(())
    }

    fn step(
        &mut self,
        model: &GcdModel<B>,
        epoch: usize,
        _step: usize,
        _rng: &mut Rng,
    ) -> Result<StepLoss<B>> {
        let batch = self
            .epoch
            .as_mut()
            .and_then(|it| it.next())
            .context("the epoch has no batch left")?;
        let n = batch.len();
        let x = batch.views_tensor::<B>(&self.device);
        let labels = batch.labels_tensor::<B>(&self.device);
        let mask: Vec<bool> = batch
            .indices
            .iter()
            .map(|&i| i < self.data.num_labelled)
            .collect();
        let mask_f: Vec<f32> = mask.iter().map(|&m| m as u8 as f32).collect();
        let b = GcdBatch {
            labels,
            labelled: Tensor::from_data(TensorData::new(mask, [n]), &self.device),
            labelled_f: Tensor::from_data(TensorData::new(mask_f, [n]), &self.device),
            n,
        };
        let f = model.forward(x);
        let (loss, terms) = self.method.loss(f, model, b, epoch);
        Ok(StepLoss {
            loss,
            terms: terms
                .into_iter()
                .map(|(name, v)| (format!("loss/{name}"), v))
                .collect(),
            stats: Vec::new(),
        })
    }

    fn record(&mut self, values: &StepValues) {
        self.loss_sum += values.loss as f64;
        self.steps += 1;
    }

    fn end_epoch(&mut self, _tb: &mut TbLogger, _step: usize, _seconds: f64) -> String {
        let line = format!("loss {:.4}", self.loss_sum / self.steps.max(1) as f64);
        (self.loss_sum, self.steps) = (0.0, 0);
        line
    }

    fn eval_every_steps(&self) -> usize {
        self.cfg.train.eval_every * self.loader.batches_per_epoch()
    }

    fn evaluate(
        &mut self,
        model: &GcdModel<B>,
        step: usize,
        tb: &mut TbLogger,
    ) -> Result<GcdEvaluation> {
        let ev = eval::evaluate(
            &model.valid(),
            &self.cfg,
            &self.sec,
            &self.data,
            self.info.classifier.is_none(),
            &self.device_label,
            &self.device,
        )?;
        let g = &ev.metrics.gcd;
        for (set, acc) in [("unlabelled", g.unlabelled), ("test", g.test)] {
            tb.scalar(&format!("gcd/{set}/all"), acc.all, step);
            if let Some(o) = acc.old {
                tb.scalar(&format!("gcd/{set}/old"), o, step);
            }
            if let Some(nw) = acc.new {
                tb.scalar(&format!("gcd/{set}/new"), nw, step);
            }
        }
        if let Some(a) = g.backbone_kmeans {
            tb.scalar("gcd/backbone_kmeans/all", a.all, step);
        }
        if let Some(h) = g.head {
            tb.scalar("head/prototype_norm", h.prototype_norm_mean, step);
            tb.scalar("head/prototype_cos_max", h.prototype_cos_max, step);
            tb.scalar("head/prototypes_used", h.prototypes_used as f64, step);
        }
        Ok(ev)
    }

    fn loaded(&self, mut model: GcdModel<B>) -> GcdModel<B> {
        model.backbone = freeze(&self.cfg.model, model.backbone);
        model
    }

    fn finish(
        &mut self,
        eval: GcdEvaluation,
        _best: Option<&Best>,
        train_seconds: f64,
        run_dir: &Path,
    ) -> Result<String> {
        let mut metrics = eval.metrics.clone();
        metrics.train_seconds = Some(train_seconds);
        eval.write(&metrics, run_dir)?;
        Ok(eval.summary(&metrics))
    }
}
