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
use crate::run::optim::Optim;

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
        .output();
    reference_result(out, python, script)
}

/// The JSON line a reference script printed last, or why it failed.
fn reference_result<T: serde::de::DeserializeOwned>(
    out: std::io::Result<std::process::Output>,
    python: &str,
    script: &std::path::Path,
) -> Result<T> {
    let out =
        out.map_err(|e| anyhow::anyhow!("cannot run `{python} {}`: {e}", script.display()))?;
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

/// What `trainer bench --config` measures for an open-set SSL recipe (`fixmatch`,
/// `iomatch`): the config's training iteration and the CPU side that feeds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OsslBenchResult {
    /// Who was measured (`unseen/cuda:0`, `pytorch/cuda:0`, ...).
    pub engine: String,
    /// Training iterations per second: upload of the `B + 2μB` images, forward, the
    /// recipe's loss, backward, SGD step, EMA update and the per-iteration loss read.
    pub iterations_per_second: f64,
    /// Images per second through the network (`iterations_per_second × (B + 2μB)`).
    pub train_images_per_second: f64,
    /// Iterations per second the view generation reaches on the CPU (one weak view of `B`
    /// labelled images, a weak and a strong view of `μB` unlabelled ones); `None` for the
    /// PyTorch reference, which times the network only.
    pub views_iterations_per_second: Option<f64>,
}

/// Times `iters` iterations (after `warmup`) of the open-set SSL recipe of `cfg` on backend
/// `B`, on synthetic images of shape `input` (normal noise for the network, uniform bytes for
/// the view generation): the network, heads, batch (`train.batch_size` labelled +
/// `ossl.mu` × that unlabelled, two views each), loss settings, optimiser and EMA are the
/// config's, through the same loss and update `trainer train` runs
/// ([`crate::families::ossl::batch_loss`], [`crate::run::driver::optimise`]). Labels are drawn uniformly over the seen classes.
///
/// # Errors
/// A config whose recipe is not `fixmatch`/`iomatch`, an invalid `[ossl]` section, or a
/// model that cannot be built.
pub fn run_ossl<B: AutodiffBackend>(
    cfg: &crate::config::ExperimentConfig,
    input: [usize; 3],
    iters: usize,
    warmup: usize,
    device: &B::Device,
    engine: &str,
) -> Result<OsslBenchResult> {
    use crate::families::{self, ossl};
    if families::family_of(&cfg.recipe)? != families::FamilyKind::Ossl {
        anyhow::bail!(
            "trainer bench --config measures the open-set SSL recipes ({}); this config's \
             recipe is {:?} (use --model for a plain network)",
            ossl::methods()
                .iter()
                .map(|m| m.0)
                .collect::<Vec<_>>()
                .join(", "),
            cfg.recipe
        );
    }
    let sec = ossl::section(cfg)?;
    let info = ossl::method_info(cfg, &sec)?;
    let k = unseen_data::splits::ClassSpec::parse(sec.seen_classes())
        .map_err(|e| anyhow::anyhow!("ossl.seen_classes: {e}"))?
        .into_vec()
        .len();
    let [c, h, w] = input;
    if c != cfg.model.in_channels {
        anyhow::bail!(
            "--input {c}x{h}x{w} has {c} channels but model.in_channels = {}",
            cfg.model.in_channels
        );
    }
    B::seed(device, cfg.seed);
    let mut model = ossl::model::build_model::<B>(cfg, info.heads, k, h, device, false)?;
    let mut method = ossl::build_method::<B>(cfg, &sec, k, device)?;
    let mut ema = model.valid();
    let mut optim = Optim::<B, ossl::model::OsslModel<B>>::new(&cfg.train);
    let sizes = ossl::methods::BatchSizes {
        labelled: cfg.train.batch_size,
        unlabelled: sec.mu() * cfg.train.batch_size,
    };
    let (b, n) = (sizes.labelled, sizes.unlabelled);
    let mut rng = Rng::new(0);
    let total = b + 2 * n;
    let pixels: Vec<f32> = (0..total * c * h * w)
        .map(|_| rng.normal() as f32)
        .collect();
    let labels: Vec<i64> = (0..b).map(|_| rng.below(k) as i64).collect();
    // The data enters as `trainer train`'s does: host buffers uploaded every iteration; the
    // loss and update are the driver's (`optimise`), the EMA the family's.
    let mut step = |model: ossl::model::OsslModel<B>,
                    ema: &ossl::model::OsslModel<B::InnerBackend>,
                    optim: &mut _| {
        let x =
            Tensor::<B, 4>::from_data(TensorData::new(pixels.clone(), [total, c, h, w]), device);
        let y = Tensor::<B, 1, Int>::from_data(TensorData::new(labels.clone(), [b]), device);
        // Epoch 1: IOMatch's open-set loss is on, as for all but the first epoch.
        let out = ossl::batch_loss(method.as_mut(), &model, x, y, sizes, 1);
        let (model, _) =
            crate::run::driver::optimise(model, optim, cfg.train.lr, out).map_err(|v| {
                anyhow::anyhow!(
                    "the loss is not finite on the synthetic batch: {}",
                    v.terms_line()
                )
            })?;
        let ema = crate::run::ema::ema_update(ema, model.valid(), sec.ema_momentum());
        anyhow::Ok((model, ema))
    };
    for _ in 0..warmup {
        (model, ema) = step(model, &ema, &mut optim)?;
    }
    B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
    let t0 = Instant::now();
    for _ in 0..iters {
        (model, ema) = step(model, &ema, &mut optim)?;
    }
    B::sync(device).map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))?;
    let its = iters as f64 / t0.elapsed().as_secs_f64();

    // The CPU side: the views of the same batches from synthetic bytes.
    let m = (n * 2).max(1000);
    let bytes: Vec<u8> = (0..m * c * h * w).map(|_| rng.below(256) as u8).collect();
    let ys: Vec<u32> = (0..m).map(|i| (i % k) as u32).collect();
    let names = (0..k).map(|i| i.to_string()).collect();
    let set = std::sync::Arc::new(unseen_data::ImageSet::new(bytes, ys, c, h, w, names)?);
    let (weak, strong) = ossl::data::views(cfg, &sec, &set, h);
    let mut lb = ossl::data::ViewStream::new(set.clone(), vec![weak.clone()], b, cfg.seed, "lb")?;
    let mut ulb = ossl::data::ViewStream::new(set, vec![weak, strong], n, cfg.seed, "ulb")?;
    let t0 = Instant::now();
    let view_iters = iters.max(5);
    for t in 0..view_iters {
        std::hint::black_box((lb.batch(t), ulb.batch(t)));
    }
    let views = view_iters as f64 / t0.elapsed().as_secs_f64();
    Ok(OsslBenchResult {
        engine: engine.to_string(),
        iterations_per_second: its,
        train_images_per_second: its * total as f64,
        views_iterations_per_second: Some(views),
    })
}

/// Runs `scripts/bench_ossl_torch.py` (USB's `train_step` of the same recipe on the same
/// network and batch) and parses its JSON line.
#[allow(clippy::too_many_arguments)]
pub fn run_ossl_torch(
    cfg: &crate::config::ExperimentConfig,
    input: [usize; 3],
    iters: usize,
    warmup: usize,
    python: &str,
    script: &std::path::Path,
    device: &str,
) -> Result<OsslBenchResult> {
    if let Some(width) = cfg.model.width {
        anyhow::bail!(
            "model.width = {width}: the PyTorch reference builds {} at its registry width; \
             benchmark without --torch or remove the key",
            cfg.model.name
        );
    }
    use crate::families::ossl;
    let sec = ossl::section(cfg)?;
    let info = ossl::method_info(cfg, &sec)?;
    let k = unseen_data::splits::ClassSpec::parse(sec.seen_classes())
        .map_err(|e| anyhow::anyhow!("ossl.seen_classes: {e}"))?
        .into_vec()
        .len();
    // The reference script knows FixMatch and IOMatch by name; their thresholds are the
    // method's (`q_cutoff` only IOMatch's).
    let q_cutoff = info
        .table
        .get("q_cutoff")
        .and_then(|v| v.as_float())
        .unwrap_or(0.5);
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--recipe", &cfg.recipe])
        .args(["--model", &cfg.model.name])
        .args(["--batch", &cfg.train.batch_size.to_string()])
        .args(["--mu", &sec.mu().to_string()])
        .args([
            "--input",
            &format!("{}x{}x{}", input[0], input[1], input[2]),
        ])
        .args(["--classes", &k.to_string()])
        .args(["--proj-dim", &info.heads.unwrap_or(128).to_string()])
        .args(["--p-cutoff", &info.p_cutoff.to_string()])
        .args(["--q-cutoff", &q_cutoff.to_string()])
        .args(["--ema", &sec.ema_momentum().to_string()])
        .args(["--lr", &cfg.train.lr.to_string()])
        .args(["--weight-decay", &cfg.train.weight_decay.to_string()])
        .args(["--iters", &iters.to_string()])
        .args(["--warmup", &warmup.to_string()])
        .args(["--device", device])
        .output();
    reference_result(out, python, script)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    fn config(name: &str) -> crate::config::ExperimentConfig {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../configs/cpu")
            .join(name);
        crate::families::load_config(&path, &[]).unwrap()
    }

    /// The FixMatch CPU config's iteration (8 labelled + 2 × 56 unlabelled digits): the
    /// image rate is the iteration rate times the 120 images, and the views are measured;
    /// the reference refuses a width it cannot build; a GCD config is refused by name.
    #[test]
    fn ossl_bench_times_the_configs_iteration() {
        let cfg = config("fixmatch_mnist.toml");
        let device = Default::default();
        let r = run_ossl::<Autodiff<Flex>>(&cfg, [1, 28, 28], 1, 0, &device, "unseen/cpu").unwrap();
        assert!(r.iterations_per_second.is_finite() && r.iterations_per_second > 0.0);
        let per = r.train_images_per_second / r.iterations_per_second;
        assert!((per - 120.0).abs() < 1e-9, "{per}");
        assert!(r.views_iterations_per_second.unwrap() > 0.0);

        let e = run_ossl::<Autodiff<Flex>>(&cfg, [3, 28, 28], 1, 0, &device, "x").unwrap_err();
        assert!(e.to_string().contains("model.in_channels = 1"), "{e}");
        let e =
            run_ossl_torch(&cfg, [1, 28, 28], 1, 0, "python3", "x.py".as_ref(), "cpu").unwrap_err();
        assert!(e.to_string().contains("model.width = 8"), "{e}");
        let gcd = config("gcd_mnist.toml");
        let e = run_ossl::<Autodiff<Flex>>(&gcd, [1, 28, 28], 1, 0, &device, "x").unwrap_err();
        assert!(e.to_string().contains("fixmatch, iomatch"), "{e}");
    }
}
