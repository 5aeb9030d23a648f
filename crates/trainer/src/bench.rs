//! `trainer bench`: training and inference throughput of a backbone on the chosen backend,
//! optionally next to the PyTorch reference (`scripts/bench_torch.py`, same architecture,
//! batch, input and optimiser) run on the same machine in the same invocation.

use std::time::Instant;

use anyhow::Result;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_backbones::BackboneSpec;
use unseen_data::Rng;

use crate::config::{OptimizerKind, TrainConfig};
use crate::optim::Optim;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Registry name of the network.
    pub model: String,
    /// Images per batch.
    pub batch: usize,
    /// Input `[channels, height, width]`.
    pub input: [usize; 3],
    /// Number of classes of the head.
    pub classes: usize,
    /// Timed iterations.
    pub iters: usize,
    /// Untimed warm-up iterations.
    pub warmup: usize,
    /// Measure inference only (large networks on a CPU).
    pub eval_only: bool,
}

/// Images per second the data loader delivers for the same batch and input shape, with the
/// training augmentation (random crop with padding 4 and horizontal flip) and normalisation,
/// over one epoch of `batches` batches of synthetic u8 images. Compare it with the training
/// throughput: the loader is not the bottleneck while it is well above it.
pub fn loader_throughput(opts: &BenchOptions, batches: usize) -> Result<f64> {
    let [c, h, w] = opts.input;
    let n = opts.batch * batches;
    let mut rng = Rng::new(1);
    let pixels: Vec<u8> = (0..n * c * h * w).map(|_| rng.below(256) as u8).collect();
    let labels: Vec<u32> = (0..n).map(|i| (i % opts.classes) as u32).collect();
    let names = (0..opts.classes).map(|k| k.to_string()).collect();
    let set = std::sync::Arc::new(unseen_data::ImageSet::new(pixels, labels, c, h, w, names)?);
    let augment = unseen_data::transforms::Augment {
        crop_padding: 4,
        hflip: true,
        mean: vec![0.5; c],
        std: vec![0.25; c],
    };
    let loader = unseen_data::loader::Loader::new(set, opts.batch, true, false, augment, 0)?;
    let t0 = Instant::now();
    let mut seen = 0;
    for b in loader.epoch(0) {
        seen += b.len();
    }
    Ok(seen as f64 / t0.elapsed().as_secs_f64())
}

/// Throughputs in images per second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchResult {
    /// Who was measured (`unseen/flex`, `pytorch/cpu`, ...).
    pub engine: String,
    /// Training step (forward, backward, SGD update) throughput; `None` with `eval_only`.
    pub train_images_per_second: Option<f64>,
    /// Inference (eval mode forward) throughput.
    pub eval_images_per_second: f64,
}

/// Measures the network on backend `B`.
pub fn run<B: AutodiffBackend>(
    opts: &BenchOptions,
    device: &B::Device,
    engine: &str,
) -> Result<BenchResult> {
    let mut spec = BackboneSpec::new(opts.model.clone());
    spec.in_channels = opts.input[0];
    let mut model = spec.init_for::<B>(opts.classes, Some(opts.input[1]), device)?;
    let mut rng = Rng::new(0);
    model = unseen_backbones::init::reinit(model, &mut || rng.next_f64());
    let [c, h, w] = opts.input;
    let n = opts.batch;
    let x: Vec<f32> = (0..n * c * h * w).map(|_| rng.normal() as f32).collect();
    let y: Vec<i64> = (0..n).map(|_| rng.below(opts.classes) as i64).collect();
    let x = Tensor::<B, 4>::from_data(TensorData::new(x, [n, c, h, w]), device);
    let y = Tensor::<B, 1, Int>::from_data(TensorData::new(y, [n]), device);
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: n,
        outlier_batch_size: None,
        optimizer: OptimizerKind::Sgd,
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        warmup_epochs: 0,
        min_lr_ratio: 0.0,
        grad_clip: None,
        checkpoint_every: 1,
        eval_every: 0,
    };
    let mut optim = Optim::<B, _>::new(&cfg);
    let mut train_step = |model: unseen_backbones::Backbone<B>| {
        let (_, logits) = model.forward(x.clone());
        let loss = unseen_losses::ce::cross_entropy(logits, y.clone(), 0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(0.01, model, grads)
    };
    let mut train = None;
    if !opts.eval_only {
        for _ in 0..opts.warmup {
            model = train_step(model);
        }
        let t0 = Instant::now();
        for _ in 0..opts.iters {
            model = train_step(model);
        }
        B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
        train = Some((opts.iters * n) as f64 / t0.elapsed().as_secs_f64());
    }
    let inner = model.valid();
    let xi = x.inner();
    let eval_step = || {
        let (_, logits) = inner.forward(xi.clone());
        let _ = logits.into_data();
    };
    for _ in 0..opts.warmup {
        eval_step();
    }
    let t0 = Instant::now();
    for _ in 0..opts.iters {
        eval_step();
    }
    B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
    let eval = (opts.iters * n) as f64 / t0.elapsed().as_secs_f64();
    Ok(BenchResult {
        engine: engine.to_string(),
        train_images_per_second: train,
        eval_images_per_second: eval,
    })
}

/// Runs `scripts/bench_torch.py` with the same settings and parses its JSON line.
pub fn run_torch(
    opts: &BenchOptions,
    python: &str,
    script: &std::path::Path,
    device: &str,
) -> Result<BenchResult> {
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--model", &opts.model])
        .args(["--batch", &opts.batch.to_string()])
        .args([
            "--input",
            &format!("{}x{}x{}", opts.input[0], opts.input[1], opts.input[2]),
        ])
        .args(["--classes", &opts.classes.to_string()])
        .args(["--iters", &opts.iters.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .args(["--device", device])
        .args(if opts.eval_only {
            &["--eval-only"][..]
        } else {
            &[][..]
        })
        .output()
        .map_err(|e| anyhow::anyhow!("cannot run `{python} {}`: {e}", script.display()))?;
    if !out.status.success() {
        anyhow::bail!(
            "the PyTorch reference failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("cannot parse the reference output {line:?}: {e}"))
}
