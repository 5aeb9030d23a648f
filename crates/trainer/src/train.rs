//! The shared training loop: data, recipe step, optimiser, schedule, checkpoints,
//! TensorBoard, NaN guard, evaluation and the run folder.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use indicatif::{ProgressBar, ProgressStyle};
use unseen_backbones::Backbone;
use unseen_data::loader::{Batch, Loader, OutlierStream};
use unseen_data::Rng;

use crate::checkpoint::{self, TrainState};
use crate::config::{ExperimentConfig, RecipeKind};
use crate::data_setup::{self, ExperimentData};
use crate::evaluate::{evaluate, Evaluation};
use crate::io::write_atomic;
use crate::optim::{lr_at, Optim};
use crate::recipes::{self, StepBatch};
use crate::tb::TbLogger;

/// How `train` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Device label for `metrics.json` (`cpu`, `cuda:0`, ...).
    pub device_label: String,
    /// Continue this run folder from its last checkpoint.
    pub resume: Option<PathBuf>,
    /// Replace an existing run folder.
    pub overwrite: bool,
    /// Testing aid: stop the process right after this many epochs are checkpointed, as if
    /// it had been killed (the CLI exits with code 3).
    pub halt_after_epochs: Option<usize>,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
}

/// Returned (as an error) when `halt_after_epochs` stopped the run on purpose.
#[derive(Debug, thiserror::Error)]
#[error("run halted on request after {0} checkpointed epoch(s)")]
pub struct Halted(pub usize);

/// Returned when the loss stops being finite.
#[derive(Debug, thiserror::Error)]
#[error(
    "the loss became {value} at epoch {epoch}, step {step} ({terms}); training stopped. The last \
     good checkpoint is kept in {checkpoint} ({done} epoch(s) done). Lower `train.lr`, set \
     `train.grad_clip`, or check the data"
)]
pub struct NonFiniteLoss {
    /// The offending value.
    pub value: f32,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Global step.
    pub step: usize,
    /// The loss terms at that step.
    pub terms: String,
    /// Last checkpoint folder.
    pub checkpoint: String,
    /// Epochs in that checkpoint.
    pub done: usize,
}

/// The progress bar of one epoch of `steps` steps (hidden with `--quiet`):
/// `epoch 3/10 [=====>    ] 40/100 loss 0.1234 (12s)`.
pub(crate) fn epoch_bar(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
}

/// The seeded generator of a stream, for the recipe (mixing coefficients, boxes).
pub(crate) fn recipe_rng(seed: u64) -> Rng {
    Rng::stream(seed, "recipe")
}

/// Prepares the run folder of every training loop: refuses to clobber an existing one
/// unless asked (`--overwrite`) and writes `config.toml` into a new one; on `--resume`,
/// checks that the folder is a run and that `cfg` is the config it was started with.
pub(crate) fn prepare_run_dir(cfg: &ExperimentConfig, opts: &TrainOptions) -> Result<PathBuf> {
    if let Some(dir) = &opts.resume {
        if !dir.join("config.toml").exists() {
            bail!(
                "cannot resume: {} is not a run folder (no config.toml in it)",
                dir.display()
            );
        }
        let saved = crate::config::load(&dir.join("config.toml"), &[])
            .with_context(|| format!("cannot read the saved config of {}", dir.display()))?;
        if saved != *cfg {
            bail!(
                "the config differs from the one {} was started with; resume without --config \
                 (the saved config is used) or start a new run",
                dir.display()
            );
        }
        return Ok(dir.clone());
    }
    let dir = cfg.run_dir();
    if dir.exists() {
        if !opts.overwrite {
            bail!(
                "run folder {} already exists; continue it with `--resume {}`, replace it with \
                 `--overwrite`, or pick another name with `--set name=...`",
                dir.display(),
                dir.display()
            );
        }
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_atomic(&dir.join("config.toml"), cfg.to_toml()?.as_bytes())?;
    Ok(dir)
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

/// Builds the network and initialises it deterministically from the seed.
pub fn build_model<B: Backend>(
    cfg: &ExperimentConfig,
    num_classes: usize,
    img_size: usize,
    device: &B::Device,
    quiet: bool,
) -> Result<Backbone<B>> {
    if let Some(k) = cfg.model.num_classes {
        if k != num_classes {
            bail!(
                "model.num_classes = {k} but the data have {num_classes} classes; training \
                 needs a head of the data's size (remove the key, and list the head in \
                 model.allow_partial when loading weights with another head)"
            );
        }
    }
    build_backbone(&cfg.model, num_classes, img_size, cfg.seed, device, quiet)
}

/// Builds a backbone from its spec: seeded initialisation, then the spec's pretrained
/// weights (if any), then ViT block freezing (`grad_from_block`). The load report goes to
/// stderr unless `quiet`.
pub fn build_backbone<B: Backend>(
    spec: &unseen_backbones::BackboneSpec,
    num_classes: usize,
    img_size: usize,
    seed: u64,
    device: &B::Device,
    quiet: bool,
) -> Result<Backbone<B>> {
    let model = spec
        .init_for::<B>(num_classes, Some(img_size), device)
        .context("invalid [model] section")?;
    let mut rng = Rng::stream(seed, "init");
    let mut model = unseen_backbones::init::reinit(model, &mut || rng.next_f64());
    if let Some(w) = &spec.weights {
        let file = unseen_backbones::hub::resolve(w).context("model.weights")?;
        let (m, report) = model
            .load_weights(
                &file,
                spec.weights_key.as_deref(),
                &spec.allow_partial,
                &spec.name,
            )
            .context("model.weights")?;
        if !quiet {
            eprintln!("{report}");
        }
        model = m;
    }
    Ok(freeze(spec, model))
}

/// Builds the network a run's checkpoint will be loaded into: as [`build_model`] but
/// without reading the pretrained file (the checkpoint replaces every weight).
pub fn build_for_checkpoint<B: Backend>(
    cfg: &ExperimentConfig,
    num_classes: usize,
    img_size: usize,
    device: &B::Device,
) -> Result<Backbone<B>> {
    let mut spec = cfg.model.clone();
    spec.weights = None;
    build_backbone(&spec, num_classes, img_size, cfg.seed, device, true)
}

/// Applies `grad_from_block` (after building, and again after a checkpoint is loaded).
pub fn freeze<B: Backend>(
    spec: &unseen_backbones::BackboneSpec,
    model: Backbone<B>,
) -> Backbone<B> {
    match spec.grad_from_block {
        Some(g) => model.freeze_before(g),
        None => model,
    }
}

/// Trains the experiment and evaluates it; writes the run folder. Returns the summary
/// printed at the end (the metrics are in `<run>/metrics.json`).
pub fn train<B: AutodiffBackend>(
    cfg: ExperimentConfig,
    opts: &TrainOptions,
    device: B::Device,
) -> Result<String> {
    match cfg.recipe.family() {
        crate::config::RecipeFamily::Gcd => return crate::gcd::train::<B>(cfg, opts, device),
        crate::config::RecipeFamily::Ossl => return crate::ossl::train::<B>(cfg, opts, device),
        crate::config::RecipeFamily::Ood => {}
    }
    let run_dir = prepare_run_dir(&cfg, opts)?;
    B::seed(&device, cfg.seed);
    let data = data_setup::load(
        &cfg.data,
        cfg.seed,
        cfg.recipe.needs_outliers(),
        cfg.model.in_channels,
    )?;
    let k = data.num_classes();
    // The weights load report is printed even with --quiet: it says what was not loaded.
    let mut model = build_model::<B>(&cfg, k, data.id_train.height, &device, false)?;
    let mut optim = Optim::<B, Backbone<B>>::new(&cfg.train);
    let mut state = TrainState {
        epochs_done: 0,
        step: 0,
        rng: recipe_rng(cfg.seed).state(),
    };
    if opts.resume.is_some() {
        let ck = checkpoint::find(&run_dir)?;
        state = checkpoint::load_state(&ck)?;
        model = freeze(&cfg.model, checkpoint::load_model(&ck, model, &device)?);
        optim = optim.load(&ck.join("optim"), &device)?;
        if !opts.quiet {
            eprintln!(
                "resuming {} after epoch {} (step {})",
                run_dir.display(),
                state.epochs_done,
                state.step
            );
        }
    }
    let mut rng = Rng::from_state(state.rng);
    let recipe = recipes::build::<B>(cfg.recipe, &cfg.loss, k);
    let augment = cfg.data.augment.clone();
    let t = &cfg.train;
    let loader = Loader::new(
        data.id_train.clone(),
        t.batch_size,
        true,
        false,
        augment.clone(),
        cfg.seed,
    )
    .context("ID training loader")?;
    let out_bs = t.outlier_batch_size.unwrap_or(match cfg.recipe {
        RecipeKind::Mixoe => t.batch_size,
        _ => 2 * t.batch_size,
    });
    let mut outliers = match &data.outliers {
        Some(o) => Some(
            OutlierStream::new(o.clone(), out_bs, augment.clone(), cfg.seed)
                .context("auxiliary outlier loader")?,
        ),
        None => None,
    };
    let bpe = loader.batches_per_epoch();
    let total = bpe * t.epochs;
    let warmup = bpe * t.warmup_epochs;
    let mut tb = TbLogger::new(&run_dir.join("tb"))?;
    let images_per_step = t.batch_size;

    for epoch in state.epochs_done..t.epochs {
        let started = Instant::now();
        if let Some(o) = outliers.as_mut() {
            o.start_epoch(epoch);
        }
        let bar = epoch_bar(opts.quiet, bpe, epoch, t.epochs);
        let (mut loss_sum, mut seen, mut correct) = (0.0f64, 0usize, 0usize);
        for batch in loader.epoch(epoch) {
            let lr = lr_at(state.step, total, warmup, t.lr, t.min_lr_ratio);
            let labels_cpu = batch.labels.clone();
            let (images, labels) = to_device::<B>(batch, &device);
            let outlier_images = outliers
                .as_mut()
                .map(|o| to_device::<B>(o.next_batch(), &device).0);
            let out = recipe.step(
                &model,
                StepBatch {
                    images,
                    labels,
                    outliers: outlier_images,
                },
                &mut rng,
            );
            let value: f32 = out.loss.clone().into_scalar().elem();
            let terms: Vec<(&str, f32)> = out
                .terms
                .iter()
                .map(|(n, v)| (*n, v.clone().into_scalar().elem::<f32>()))
                .collect();
            if !value.is_finite() {
                return Err(NonFiniteLoss {
                    value,
                    epoch: epoch + 1,
                    step: state.step,
                    terms: terms
                        .iter()
                        .map(|(n, v)| format!("{n} = {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    checkpoint: checkpoint::last_dir(&run_dir).display().to_string(),
                    done: state.epochs_done,
                }
                .into());
            }
            let preds = out
                .id_logits
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .to_vec::<i64>()
                .unwrap();
            correct += preds
                .iter()
                .zip(&labels_cpu)
                .filter(|(p, l)| **p == **l as i64)
                .count();
            seen += labels_cpu.len();
            loss_sum += value as f64 * labels_cpu.len() as f64;
            let grads = GradientsParams::from_grads(out.loss.backward(), &model);
            model = optim.step(lr, model, grads);
            tb.scalar("loss/total", value as f64, state.step);
            for (n, v) in &terms {
                tb.scalar(&format!("loss/{n}"), *v as f64, state.step);
            }
            tb.scalar("lr", lr, state.step);
            state.step += 1;
            bar.inc(1);
            bar.set_message(format!("loss {value:.4}"));
        }
        bar.finish_and_clear();
        state.epochs_done = epoch + 1;
        state.rng = rng.state();
        let secs = started.elapsed().as_secs_f64();
        tb.scalar(
            "train/accuracy",
            correct as f64 / seen.max(1) as f64,
            state.step,
        );
        tb.scalar("train/loss", loss_sum / seen.max(1) as f64, state.step);
        tb.scalar(
            "train/images_per_second",
            (bpe * images_per_step) as f64 / secs,
            state.step,
        );
        let mut line = format!(
            "epoch {}/{}: loss {:.4}, train acc {:.2}%, {:.1}s",
            epoch + 1,
            t.epochs,
            loss_sum / seen.max(1) as f64,
            100.0 * correct as f64 / seen.max(1) as f64,
            secs
        );
        let last = epoch + 1 == t.epochs;
        if t.eval_every > 0 && (epoch + 1) % t.eval_every == 0 && !last {
            let ev = evaluate::<B::InnerBackend>(
                &model.valid(),
                &cfg,
                &data,
                &opts.device_label,
                &device,
            )?;
            log_eval(&mut tb, &ev, state.step);
            line += &format!(", test acc {:.2}%", 100.0 * ev.metrics.id.accuracy);
        }
        if (epoch + 1) % t.checkpoint_every == 0 || last {
            checkpoint::save(&run_dir, &model, &optim, &state)?;
        }
        tb.flush();
        if !opts.quiet {
            eprintln!("{line}");
        }
        if opts.halt_after_epochs == Some(state.epochs_done) && !last {
            return Err(Halted(state.epochs_done).into());
        }
    }
    let ev = finish(
        &cfg,
        &model.valid(),
        &data,
        &opts.device_label,
        &device,
        &run_dir,
    )?;
    log_eval(&mut tb, &ev, state.step);
    tb.flush();
    Ok(ev.summary())
}

fn finish<B: Backend>(
    cfg: &ExperimentConfig,
    model: &Backbone<B>,
    data: &ExperimentData,
    device_label: &str,
    device: &B::Device,
    run_dir: &Path,
) -> Result<Evaluation> {
    let ev = evaluate::<B>(model, cfg, data, device_label, device)?;
    ev.write(run_dir, cfg)?;
    Ok(ev)
}

fn log_eval(tb: &mut TbLogger, ev: &Evaluation, step: usize) {
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
}
