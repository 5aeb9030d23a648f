//! Optimisers and the learning-rate schedule, shared by every recipe.

use std::path::Path;

use anyhow::{Context, Result};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamW, AdamWConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::tensor::backend::AutodiffBackend;

use crate::config::{OptimizerKind, TrainConfig};

/// The optimiser of a run, over any module `M`.
pub enum Optim<B: AutodiffBackend, M: AutodiffModule<B>> {
    /// SGD, PyTorch semantics: L2 decay added to the gradient, then (Nesterov) momentum.
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
    /// AdamW with decoupled weight decay.
    AdamW(OptimizerAdaptor<AdamW, M, B>),
}

impl<B: AutodiffBackend, M: AutodiffModule<B>> Optim<B, M> {
    /// Builds the optimiser a `[train]` table describes.
    pub fn new(cfg: &TrainConfig) -> Self {
        let clip = cfg
            .grad_clip
            .map(|c| GradientClippingConfig::Norm(c as f32));
        match cfg.optimizer {
            OptimizerKind::Sgd => {
                let momentum = (cfg.momentum > 0.0).then_some(MomentumConfig {
                    momentum: cfg.momentum,
                    dampening: 0.0,
                    nesterov: cfg.nesterov,
                });
                let weight_decay = (cfg.weight_decay > 0.0)
                    .then_some(WeightDecayConfig::new(cfg.weight_decay as f32));
                let mut c = SgdConfig::new()
                    .with_momentum(momentum)
                    .with_weight_decay(weight_decay);
                if let Some(clip) = clip {
                    c = c.with_gradient_clipping(Some(clip));
                }
                Optim::Sgd(c.init())
            }
            OptimizerKind::Adamw => {
                let mut c = AdamWConfig::new()
                    .with_beta_1(cfg.momentum as f32)
                    .with_weight_decay(cfg.weight_decay as f32);
                if let Some(clip) = clip {
                    c = c.with_grad_clipping(Some(clip));
                }
                Optim::AdamW(c.init())
            }
        }
    }

    /// One update.
    pub fn step(&mut self, lr: f64, module: M, grads: GradientsParams) -> M {
        match self {
            Optim::Sgd(o) => o.step(lr, module, grads),
            Optim::AdamW(o) => o.step(lr, module, grads),
        }
    }

    /// Saves the optimiser state (momentum buffers) to `path` (`.mpk` is appended).
    pub fn save(&self, path: &Path) -> Result<()> {
        match self {
            Optim::Sgd(o) => crate::run::io::write_record::<B, _>(path, o.to_record()),
            Optim::AdamW(o) => crate::run::io::write_record::<B, _>(path, o.to_record()),
        }
        .with_context(|| format!("cannot write optimiser state {}.mpk", path.display()))
    }

    /// Restores the state saved by [`Optim::save`].
    /// (`path` without `.mpk`, as for [`Optim::save`]; decoded as
    /// [`crate::run::io::read_record`] does.)
    pub fn load(self, path: &Path, device: &B::Device) -> Result<Self> {
        let mut file = path.as_os_str().to_owned();
        file.push(".mpk");
        let file = std::path::PathBuf::from(file);
        let ctx = || format!("cannot read optimiser state {}", file.display());
        use crate::run::io::read_record;
        Ok(match self {
            Optim::Sgd(o) => {
                Optim::Sgd(o.load_record(read_record::<B, _>(&file, device).with_context(ctx)?))
            }
            Optim::AdamW(o) => {
                Optim::AdamW(o.load_record(read_record::<B, _>(&file, device).with_context(ctx)?))
            }
        })
    }
}

/// The learning-rate schedule of a run: the step budget and the peak rate, from `[train]`
/// and the family's steps per epoch (the driver builds it; a family picks the curve in
/// [`crate::run::family::Family::lr`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Steps of the whole run (`steps_per_epoch × train.epochs`).
    pub total: usize,
    /// Warm-up steps (`steps_per_epoch × train.warmup_epochs`).
    pub warmup: usize,
    /// Peak learning rate (`train.lr`).
    pub lr: f64,
    /// Final rate of the cosine as a fraction of `lr` (`train.min_lr_ratio`).
    pub min_ratio: f64,
}

impl Schedule {
    /// The schedule of `train` with `steps_per_epoch` steps per epoch.
    pub fn new(train: &TrainConfig, steps_per_epoch: usize) -> Self {
        Self {
            total: steps_per_epoch * train.epochs,
            warmup: steps_per_epoch * train.warmup_epochs,
            lr: train.lr,
            min_ratio: train.min_lr_ratio,
        }
    }

    /// [`lr_at`]: warm-up, then cosine to `lr·min_ratio`.
    pub fn cosine(&self, step: usize) -> f64 {
        lr_at(step, self.total, self.warmup, self.lr, self.min_ratio)
    }

    /// [`usb_cosine_lr`]: USB's `get_cosine_schedule_with_warmup`.
    pub fn usb(&self, step: usize) -> f64 {
        usb_cosine_lr(step, self.total, self.warmup, self.lr)
    }
}

/// Learning rate at optimisation step `step` (0-based) of `total` steps: linear warm-up
/// over `warmup` steps from `lr/warmup` to `lr`, then cosine annealing to `lr·min_ratio`:
/// `lr_min + (lr − lr_min)·(1 + cos(π·t/T))/2` with `t` steps after warm-up out of `T`.
/// Without warm-up this is the OE reference's per-step `cosine_annealing` LambdaLR.
/// A pure function of the step, so a resumed run follows the same schedule exactly.
pub fn lr_at(step: usize, total: usize, warmup: usize, lr: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let t = (step - warmup) as f64;
    let span = (total.saturating_sub(warmup)).max(1) as f64;
    let lr_min = lr * min_ratio;
    lr_min + (lr - lr_min) * 0.5 * (1.0 + (std::f64::consts::PI * t / span).cos())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_by_hand() {
        // No warm-up: starts at lr, half-way at (lr + lr_min)/2, ends near lr_min.
        assert_eq!(lr_at(0, 100, 0, 0.1, 0.0), 0.1);
        assert!((lr_at(50, 100, 0, 0.1, 0.0) - 0.05).abs() < 1e-12);
        assert!((lr_at(50, 100, 0, 0.1, 0.1) - 0.055).abs() < 1e-12);
        // Warm-up of 10 steps: 0.01, 0.02, ... 0.1, then cosine from 0.1.
        assert!((lr_at(0, 110, 10, 0.1, 0.0) - 0.01).abs() < 1e-12);
        assert!((lr_at(9, 110, 10, 0.1, 0.0) - 0.1).abs() < 1e-12);
        assert_eq!(lr_at(10, 110, 10, 0.1, 0.0), 0.1);
        assert!((lr_at(60, 110, 10, 0.1, 0.0) - 0.05).abs() < 1e-12);
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
}
