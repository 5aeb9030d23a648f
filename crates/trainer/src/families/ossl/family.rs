//! The open-set SSL family during a run: the [`Family`] the driver calls. Each iteration
//! draws batch `t` of the labelled and unlabelled [`ViewStream`]s, forwards
//! `cat(x_lb, x_ulb_w, x_ulb_s)` once, takes the method's loss, and after the optimiser step
//! updates the EMA model, which is what evaluations and `checkpoints/best/` see.

use std::path::Path;

use anyhow::{Context, Result};
use burn::module::AutodiffModule;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_data::Rng;

use super::config::{LrSchedule, OsslSection};
use super::data::{self, OsslData, ViewStream};
use super::eval::{self, OsslEvaluation};
use super::methods::{BatchSizes, OsslMethod};
use super::model::{self, OsslModel};
use super::{
    batch_loss, build_method, load_ema, load_extras_state, method_info, save_ema, section,
    MethodInfo, OsslState,
};
use crate::config::ExperimentConfig;
use crate::families::build::freeze;
use crate::run::checkpoint::Best;
use crate::run::ema::ema_update;
use crate::run::family::{Evaluated, Family, StepLoss, StepValues};
use crate::run::io::write_atomic;
use crate::run::optim::Schedule;
use crate::run::tb::TbLogger;

/// The open-set SSL family during a run.
pub struct OsslFamily<B: AutodiffBackend> {
    cfg: ExperimentConfig,
    sec: OsslSection,
    info: MethodInfo,
    data: OsslData,
    method: Box<dyn OsslMethod<B>>,
    ema: OsslModel<B::InnerBackend>,
    lb_stream: ViewStream,
    ulb_stream: ViewStream,
    sizes: BatchSizes,
    device: B::Device,
    device_label: String,
    loss_sum: f64,
    mask_sum: f64,
    steps: usize,
}

/// Loads the split, builds the network (seeded, then `model.weights`) with the method's
/// heads, the EMA model (equal to the initial model, USB's `ema.register()`) and the streams.
///
/// # Errors
/// Bad config, data or weights.
pub fn setup<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    device_label: &str,
    device: &B::Device,
) -> Result<(OsslFamily<B>, OsslModel<B>)> {
    let sec = section(cfg)?;
    let info = method_info(cfg, &sec)?;
    // The split first: bad data or split settings fail before anything is built.
    let data = data::load_data(cfg, &sec)?;
    let k = data.split.num_seen;
    let img = data.labelled.height;
    let model = model::build_model::<B>(cfg, info.heads, k, img, device, true)?;
    let method = build_method::<B>(cfg, &sec, k, device)?;
    let t = &cfg.train;
    let ulb_batch = sec.mu() * t.batch_size;
    let (weak, strong) = data::views(cfg, &sec, &data.labelled, data.full_test.height);
    let lb_stream = ViewStream::new(
        data.labelled.clone(),
        vec![weak.clone()],
        t.batch_size,
        cfg.seed,
        "ossl-labelled",
    )?;
    let ulb_stream = ViewStream::new(
        data.unlabelled.clone(),
        vec![weak, strong],
        ulb_batch,
        cfg.seed,
        "ossl-unlabelled",
    )?;
    Ok((
        OsslFamily {
            cfg: cfg.clone(),
            ema: model.valid(),
            sizes: BatchSizes {
                labelled: t.batch_size,
                unlabelled: ulb_batch,
            },
            sec,
            info,
            data,
            method,
            lb_stream,
            ulb_stream,
            device: device.clone(),
            device_label: device_label.to_string(),
            loss_sum: 0.0,
            mask_sum: 0.0,
            steps: 0,
        },
        model,
    ))
}

impl Evaluated for OsslEvaluation {
    fn selection(&self) -> Option<f64> {
        Some(self.metrics.ossl.closed_accuracy)
    }

    fn record(&self) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(&self.metrics.ossl)?)
    }

    fn line(&self) -> String {
        let m = &self.metrics.ossl;
        format!(
            "EMA at iteration {}: closed {:.2}%, open BA {:.2}%, AUROC {:.2}%",
            m.iterations,
            100.0 * m.closed_accuracy,
            100.0 * m.open_balanced_accuracy,
            100.0 * m.auroc
        )
    }
}

impl<B: AutodiffBackend> Family<B> for OsslFamily<B> {
    type Model = OsslModel<B>;
    type Eval = OsslEvaluation;

    fn steps_per_epoch(&self) -> usize {
        self.sec.iters_per_epoch()
    }

    fn lr(&self, step: usize, schedule: &Schedule) -> f64 {
        match self.sec.lr_schedule() {
            LrSchedule::Usb => schedule.usb(step),
            LrSchedule::Cosine => schedule.cosine(step),
        }
    }

    /// The streams are pure functions of the iteration: nothing to position.
    fn start_epoch(&mut self, _epoch: usize, _first: usize) -> Result<()> {
        Ok(())
    }

    fn step(
        &mut self,
        model: &OsslModel<B>,
        epoch: usize,
        step: usize,
        _rng: &mut Rng,
    ) -> Result<StepLoss<B>> {
        let (b, n) = (self.sizes.labelled, self.sizes.unlabelled);
        let lb = self.lb_stream.batch(step);
        let ulb = self.ulb_stream.batch(step);
        let [_, c, h, w] = lb.shape;
        let mut pixels = Vec::with_capacity((b + 2 * n) * c * h * w);
        pixels.extend_from_slice(&lb.views[0]);
        pixels.extend_from_slice(&ulb.views[0]);
        pixels.extend_from_slice(&ulb.views[1]);
        let x =
            Tensor::<B, 4>::from_data(TensorData::new(pixels, [b + 2 * n, c, h, w]), &self.device);
        let labels = lb.labels_tensor::<B>(&self.device);
        Ok(batch_loss(
            self.method.as_mut(),
            model,
            x,
            labels,
            self.sizes,
            epoch,
        ))
    }

    /// USB's `EMAHook.after_train_step`.
    fn after_update(&mut self, model: &OsslModel<B>) {
        self.ema = ema_update(&self.ema, model.valid(), self.sec.ema_momentum());
    }

    fn record(&mut self, values: &StepValues) {
        self.loss_sum += values.loss as f64;
        self.steps += 1;
        for (tag, v) in &values.terms {
            if tag == "train/mask_ratio" {
                self.mask_sum += *v as f64;
            }
        }
    }

    fn end_epoch(&mut self, _tb: &mut TbLogger, _step: usize, _seconds: f64) -> String {
        let n = self.steps.max(1) as f64;
        let line = format!(
            "loss {:.4}, mask ratio {:.3}",
            self.loss_sum / n,
            self.mask_sum / n
        );
        (self.loss_sum, self.mask_sum, self.steps) = (0.0, 0.0, 0);
        line
    }

    fn eval_every_steps(&self) -> usize {
        self.sec.eval_every_iters()
    }

    /// Evaluates the EMA model, as USB's `evaluate` (`ema.apply_shadow()`).
    fn evaluate(
        &mut self,
        _model: &OsslModel<B>,
        step: usize,
        tb: &mut TbLogger,
    ) -> Result<OsslEvaluation> {
        let ev = eval::evaluate(
            &self.ema,
            &self.cfg,
            &self.sec,
            &self.data,
            self.info.p_cutoff,
            &self.device_label,
            &self.device,
            step,
        )?;
        eval::log_eval(tb, &ev.metrics.ossl, step);
        Ok(ev)
    }

    fn save_evaluated(&self, _model: &OsslModel<B>, dir: &Path) -> Result<()> {
        save_ema(dir, &self.ema)
    }

    fn loaded(&self, mut model: OsslModel<B>) -> OsslModel<B> {
        model.backbone = freeze(&self.cfg.model, model.backbone);
        model
    }

    fn save_extras(&self, dir: &Path, step: usize) -> Result<()> {
        save_ema(dir, &self.ema)?;
        let state = OsslState {
            step,
            method: self.method.state(),
            best: None,
        };
        write_atomic(
            &dir.join("ossl.json"),
            serde_json::to_string(&state)?.as_bytes(),
        )
    }

    fn load_extras(
        &mut self,
        dir: &Path,
        model: &OsslModel<B>,
        step: usize,
    ) -> Result<Option<Best>> {
        let extras = load_extras_state(dir).filter(|s| s.step == step);
        self.ema = model.valid();
        let Some(extras) = extras else {
            eprintln!(
                "warning: {} has no EMA weights for step {step}; the EMA restarts from the model",
                dir.display()
            );
            return Ok(None);
        };
        self.ema = load_ema(dir, self.ema.clone(), &self.device)?;
        if let Some(s) = extras.method {
            self.method.restore(s, &self.device)?;
        }
        extras
            .best
            .map(|m| {
                Ok(Best {
                    step: m.iterations,
                    score: m.closed_accuracy,
                    record: serde_json::to_value(&m)?,
                })
            })
            .transpose()
    }

    fn finish(
        &mut self,
        mut eval: OsslEvaluation,
        best: Option<&Best>,
        train_seconds: f64,
        run_dir: &Path,
    ) -> Result<String> {
        eval.metrics.ossl.train_seconds = Some(train_seconds);
        eval.metrics.ossl_best = best
            .map(|b| serde_json::from_value(b.record.clone()))
            .transpose()
            .context("the best evaluation's record")?;
        eval.metrics.write(run_dir)?;
        Ok(eval.metrics.summary())
    }
}
