//! `trainer`: train, evaluate, export and benchmark Unseen models.
//!
//! Run `trainer --help` and `trainer <command> --help` for every option; the README shows
//! each command with an example.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use trainer::commands::bench::{self, BenchOptions};
use trainer::config::ExperimentConfig;
use trainer::families;
use trainer::run::checkpoint::Which;
use trainer::run::device::DeviceChoice;
use trainer::run::run_dir::{Halted, Interrupted, TrainOptions};
use trainer::with_backend;

/// Unseen: out-of-distribution detection, open-set recognition and category discovery,
/// trained and evaluated reproducibly.
#[derive(Parser, Debug)]
#[command(name = "trainer", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train a model from a TOML config, then evaluate it and write the run folder
    /// (`<output_dir>/<name>/`: config.toml, metrics.json, report.md, tb/, checkpoints/).
    ///
    /// Example: trainer train --config configs/quickstart.toml --set train.epochs=1
    Train(TrainArgs),
    /// Re-evaluate a finished (or checkpointed) run; writes `<run>/eval/`.
    ///
    /// Example: trainer eval --run experiments/quickstart --save-scores
    Eval(EvalArgs),
    /// Export a run's weights as safetensors with the source library's key names
    /// (torchvision, timm, the reference WideResNets; IOMatchNet for IOMatch,
    /// nn.Sequential(backbone, DINOHead) for GCD runs), plus FILE.json and
    /// FILE.sample.safetensors for verifying a load.
    ///
    /// Example: trainer export --run experiments/quickstart --out quickstart.safetensors
    Export(ExportArgs),
    /// Measure training and inference throughput (img/s), or an open-set SSL config's
    /// training iteration (it/s), optionally next to PyTorch.
    ///
    /// Example: trainer bench --model resnet18_cifar --batch 128 --torch
    ///
    /// Example: trainer bench --config configs/papers/iomatch_cifar10_6-4_25labels.toml
    /// --device cuda --torch
    Bench(BenchArgs),
    /// Run a backbone (the config's weights, or a run's checkpoint) over a dataset or an
    /// image folder and write features (and logits) to a safetensors file.
    ///
    /// Example: trainer embed --config configs/vit_tiny_mnist.toml --out feats.safetensors
    Embed(EmbedArgs),
    /// Fit one post-hoc detector on the ID training set, set its threshold to keep a
    /// fraction of the ID test images, and call every image of a folder ID or OOD; writes a
    /// CSV (path,class,class_name,score,is_ood).
    ///
    /// Example: trainer predict --run experiments/quickstart --images photos/ --detector knn
    /// --out predictions.csv
    Predict(PredictArgs),
    /// Dataset tools: download official archives, inspect a dataset folder.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Experiment config (TOML). Optional with --resume (the run's saved config is used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set train.lr=0.05` (repeatable; wins over the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// cpu | cuda[:N] | tch-cpu | tch-cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Replace the run folder if it exists (otherwise an existing folder is an error).
    #[arg(long)]
    overwrite: bool,
    /// No progress bar or per-epoch lines.
    #[arg(long, short)]
    quiet: bool,
    /// Testing aid: exit with code 3 right after N epochs are checkpointed, as if killed.
    #[arg(long, hide = true)]
    halt_after_epochs: Option<usize>,
    /// Testing aid: act as if Ctrl-C came during step N (1-based): finish it, checkpoint,
    /// exit with code 130.
    #[arg(long, hide = true)]
    interrupt_after_steps: Option<usize>,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Run folder (holding config.toml and checkpoints/).
    #[arg(long, required_unless_present = "config", conflicts_with = "config")]
    run: Option<PathBuf>,
    /// Or an OOD config: evaluate its `model.weights` (an import, no run) with its
    /// detectors, into --out (default `<output_dir>/<name>/posthoc/`).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Output folder of `--config` evaluations.
    #[arg(long, requires = "config")]
    out: Option<PathBuf>,
    /// cpu | cuda[:N] | tch-cpu | tch-cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write `<run>/eval/scores.csv` (dataset,group,detector,index,is_ood,score).
    #[arg(long)]
    save_scores: bool,
    /// Override a config value for this evaluation (e.g. `eval.detectors=["energy"]`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Open-set SSL runs: evaluate the `last` checkpoint's EMA model (into `<run>/eval/`) or
    /// the `best` one, highest closed-set accuracy over the run's evaluations, the paper's
    /// protocol (into `<run>/eval_best/`).
    #[arg(long, value_enum, default_value = "last")]
    checkpoint: CheckpointArg,
}

/// `--checkpoint` of `eval` and `export`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum CheckpointArg {
    /// `checkpoints/last/`.
    Last,
    /// `checkpoints/best/` (open-set SSL runs).
    Best,
}

impl From<CheckpointArg> for Which {
    fn from(c: CheckpointArg) -> Self {
        match c {
            CheckpointArg::Last => Self::Last,
            CheckpointArg::Best => Self::Best,
        }
    }
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Run folder.
    #[arg(long)]
    run: PathBuf,
    /// Output file; must end in `.safetensors`.
    #[arg(long)]
    out: PathBuf,
    /// Replace existing output files.
    #[arg(long)]
    overwrite: bool,
    /// Open-set SSL runs: export the `last` checkpoint's EMA model or the `best` one (highest
    /// closed-set accuracy over the run's evaluations).
    #[arg(long, value_enum, default_value = "last")]
    checkpoint: CheckpointArg,
}

#[derive(Args, Debug)]
struct EmbedArgs {
    /// Experiment config: `[model]` (with `weights`), `[data]` (the `id` dataset,
    /// `preprocess`, `augment.mean/std`).
    #[arg(long)]
    config: PathBuf,
    /// Override a config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Use this trained run's last checkpoint instead of `model.weights`.
    #[arg(long, value_name = "RUN_DIR")]
    run: Option<PathBuf>,
    /// Embed an image folder (`DIR/<class>/<image>`) instead of `data.id`.
    #[arg(long, value_name = "DIR")]
    images: Option<PathBuf>,
    /// Embed the training split of `data.id` (default: the test split).
    #[arg(long)]
    train_split: bool,
    /// Output file (`.safetensors`).
    #[arg(long)]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    overwrite: bool,
    /// Images per forward pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// cpu | cuda[:N] | tch-cpu | tch-cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// A trained run (its config.toml and last checkpoint).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "config")]
    run: Option<PathBuf>,
    /// Or an experiment config whose `model.weights` is the network (`[data.id]` is still
    /// the ID set the detector is fitted and thresholded on).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Folder of images to score (searched recursively; png, jpg, jpeg, bmp).
    #[arg(long, value_name = "DIR")]
    images: PathBuf,
    /// Detector, e.g. `energy`, `knn:k=50`, `vim` (see docs/detectors.md).
    #[arg(long)]
    detector: String,
    /// Fraction of ID test images the threshold keeps.
    #[arg(long, default_value_t = 0.95)]
    tpr: f64,
    /// Output CSV.
    #[arg(long)]
    out: PathBuf,
    /// Replace the output file if it exists.
    #[arg(long)]
    overwrite: bool,
    /// cpu | cuda[:N] | tch-cpu | tch-cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Benchmark the training iteration of this open-set SSL config (`fixmatch`, `iomatch`):
    /// its network, heads, batch (`B` labelled + `2μB` unlabelled views), loss, optimiser
    /// and EMA on synthetic images of shape --input; with --torch, next to USB's
    /// `train_step` (`scripts/bench_ossl_torch.py`). --model/--batch/--classes are ignored.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value of --config (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Registry name of the network.
    #[arg(long, default_value = "resnet18_cifar")]
    model: String,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Input shape CxHxW.
    #[arg(long, default_value = "3x32x32")]
    input: String,
    /// Classes of the head.
    #[arg(long, default_value_t = 10)]
    classes: usize,
    /// Timed iterations.
    #[arg(long, default_value_t = 5)]
    iters: usize,
    /// Untimed warm-up iterations.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Measure inference only (e.g. ViT-B/16 at 224 on a CPU).
    #[arg(long)]
    eval_only: bool,
    /// cpu | cuda[:N] | tch-cpu | tch-cuda[:N]
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also run the PyTorch reference (`scripts/bench_torch.py`) and print the ratio.
    #[arg(long)]
    torch: bool,
    /// Python interpreter with torch and torchvision, for --torch.
    #[arg(long, default_value = "python3")]
    python: String,
    /// Path of the reference script (default: `scripts/bench_torch.py`, or
    /// `scripts/bench_ossl_torch.py` with --config).
    #[arg(long)]
    torch_script: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum DataCommand {
    /// Download and verify an official archive (mnist, fashion-mnist, cifar10, cifar100, svhn).
    Download {
        /// Dataset name.
        name: String,
        /// Target folder (the dataset lands in DIR/<name>/).
        #[arg(long, default_value = "data")]
        dir: PathBuf,
    },
    /// Load a dataset folder and print its size, classes and pixel statistics.
    Inspect {
        /// Format: mnist, fashion-mnist, cifar10, cifar100, folder.
        #[arg(long)]
        source: String,
        /// Folder.
        #[arg(long)]
        path: PathBuf,
        /// Inspect the test split instead of the train split.
        #[arg(long)]
        test: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(h) = e.downcast_ref::<Halted>() {
                eprintln!("{h}");
                return ExitCode::from(3);
            }
            if let Some(i) = e.downcast_ref::<Interrupted>() {
                eprintln!("{i}");
                return ExitCode::from(130);
            }
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Export(a) => cmd_export(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Embed(a) => cmd_embed(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Data(d) => cmd_data(d),
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let device = DeviceChoice::parse(&a.device)?;
    let mut cfg: ExperimentConfig = match (&a.config, &a.resume) {
        (Some(c), _) => families::load_config(c, &a.overrides)?,
        (None, Some(run)) => load_run(run, &a.overrides)?,
        (None, None) => anyhow::bail!("`train` needs --config FILE (or --resume RUN_DIR)"),
    };
    if a.resume.is_none() {
        families::preload_run_weights(&mut cfg)?;
    }
    let opts = TrainOptions {
        device_label: device.label(),
        resume: a.resume.clone(),
        overwrite: a.overwrite,
        halt_after_epochs: a.halt_after_epochs,
        interrupt_after_steps: a.interrupt_after_steps,
        quiet: a.quiet,
    };
    let started = std::time::Instant::now();
    let summary = with_backend!(device, |B, dev| families::train::<B>(
        cfg.clone(),
        &opts,
        dev
    ))?;
    let run_dir = a.resume.clone().unwrap_or_else(|| cfg.run_dir());
    println!("{summary}");
    println!(
        "run folder: {} (config.toml, metrics.json, tb/, checkpoints/); {:.1}s",
        run_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn load_run(run: &std::path::Path, overrides: &[String]) -> Result<ExperimentConfig> {
    let p = run.join("config.toml");
    if !p.exists() {
        anyhow::bail!("{} is not a run folder (no config.toml)", run.display());
    }
    families::load_config(&p, overrides)
}

fn cmd_eval(a: EvalArgs) -> Result<()> {
    let device = DeviceChoice::parse(&a.device)?;
    let s = match (&a.run, &a.config) {
        (Some(run), _) => {
            let cfg = load_run(run, &a.overrides)?;
            with_backend!(device, |B, dev| {
                type I = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
                families::evaluate_run::<I>(
                    &cfg,
                    run,
                    a.checkpoint.into(),
                    &device.label(),
                    &dev,
                    a.save_scores,
                )
            })?
        }
        (None, Some(config)) => {
            let mut cfg = families::load_config(config, &a.overrides)?;
            families::preload_run_weights(&mut cfg)?;
            let out = a
                .out
                .clone()
                .unwrap_or_else(|| cfg.output_dir.join(&cfg.name).join("posthoc"));
            with_backend!(device, |B, dev| {
                type I = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
                families::evaluate_config::<I>(&cfg, &out, &device.label(), &dev, a.save_scores)
            })?
        }
        (None, None) => anyhow::bail!("`eval` needs --run RUN_DIR or --config FILE"),
    };
    println!("{s}");
    Ok(())
}

fn cmd_export(a: ExportArgs) -> Result<()> {
    let cfg = load_run(&a.run, &[])?;
    let files = families::export_run(&cfg, &a.run, a.checkpoint.into(), &a.out, a.overwrite)?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

/// `trainer bench --config`: one open-set SSL training iteration, ours and USB's.
fn cmd_bench_ossl(
    a: &BenchArgs,
    path: &std::path::Path,
    device: DeviceChoice,
    torch_device: &str,
) -> Result<()> {
    let cfg = families::load_config(path, &a.overrides)?;
    let input = parse_shape(&a.input)?;
    let engine = format!("unseen/{}", device.label());
    let ours = with_backend!(device, |B, dev| bench::run_ossl::<B>(
        &cfg, input, a.iters, a.warmup, &dev, &engine
    ))?;
    let mut results = vec![ours];
    if a.torch {
        let script = a
            .torch_script
            .clone()
            .unwrap_or_else(|| "scripts/bench_ossl_torch.py".into());
        results.push(bench::run_ossl_torch(
            &cfg,
            input,
            a.iters,
            a.warmup,
            &a.python,
            &script,
            torch_device,
        )?);
    }
    let b = cfg.train.batch_size;
    let mu = families::ossl::section(&cfg)?.mu();
    println!(
        "{} ({:?} on {}): batch {b} labelled + 2 x {} unlabelled views, input {} \
         ({} timed iterations after {} warm-up)",
        cfg.name,
        cfg.recipe,
        cfg.model.name,
        mu * b,
        a.input,
        a.iters,
        a.warmup
    );
    println!(
        "{:<16} {:>10} {:>14} {:>12}",
        "engine", "it/s", "train img/s", "views it/s"
    );
    for r in &results {
        println!(
            "{:<16} {:>10.2} {:>14.1} {:>12}",
            r.engine,
            r.iterations_per_second,
            r.train_images_per_second,
            r.views_iterations_per_second
                .map_or("-".to_string(), |v| format!("{v:.1}"))
        );
    }
    if let [ours, torch] = results.as_slice() {
        println!(
            "{:<16} {:>10.2}",
            "ratio (ours/pt)",
            ours.iterations_per_second / torch.iterations_per_second
        );
    }
    println!(
        "(views it/s: the CPU's weak + strong view generation for one iteration, {} threads; \
         the loop is fed fast enough while it is above the network's it/s)",
        rayon::current_num_threads()
    );
    if let Some(p) = &a.json {
        trainer::run::io::write_atomic(p, serde_json::to_string_pretty(&results)?.as_bytes())?;
    }
    Ok(())
}

fn parse_shape(s: &str) -> Result<[usize; 3]> {
    let v: Vec<usize> = s
        .split('x')
        .map(|p| p.parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("--input {s:?} must look like 3x32x32"))?;
    v.try_into()
        .map_err(|_| anyhow::anyhow!("--input {s:?} must have three sizes, like 3x32x32"))
}

fn cmd_bench(a: BenchArgs) -> Result<()> {
    let device = DeviceChoice::parse(&a.device)?;
    let torch_device = match device {
        DeviceChoice::Cuda(i) | DeviceChoice::TchCuda(i) => format!("cuda:{i}"),
        _ => "cpu".to_string(),
    };
    if let Some(path) = &a.config {
        return cmd_bench_ossl(&a, path, device, &torch_device);
    }
    if let Some(o) = a.overrides.first() {
        anyhow::bail!("--set {o} overrides a config value: it needs --config");
    }
    let opts = BenchOptions {
        model: a.model.clone(),
        batch: a.batch,
        input: parse_shape(&a.input)?,
        classes: a.classes,
        iters: a.iters,
        warmup: a.warmup,
        eval_only: a.eval_only,
    };
    let engine = format!("unseen/{}", device.label());
    let ours = with_backend!(device, |B, dev| bench::run::<B>(&opts, &dev, &engine))?;
    let mut results = vec![ours.clone()];
    if a.torch {
        let script = a
            .torch_script
            .clone()
            .unwrap_or_else(|| "scripts/bench_torch.py".into());
        results.push(bench::run_torch(&opts, &a.python, &script, &torch_device)?);
    }
    println!(
        "{} batch {} input {} ({} timed iterations after {} warm-up)",
        a.model, a.batch, a.input, a.iters, a.warmup
    );
    println!(
        "{:<16} {:>14} {:>14}",
        "engine", "train img/s", "eval img/s"
    );
    let fmt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:>14.digits$}"),
        None => format!("{:>14}", "-"),
    };
    for r in &results {
        println!(
            "{:<16} {} {}",
            r.engine,
            fmt(r.train_images_per_second, 1),
            fmt(Some(r.eval_images_per_second), 1)
        );
    }
    if let [ours, torch] = results.as_slice() {
        let train_ratio = ours
            .train_images_per_second
            .zip(torch.train_images_per_second)
            .map(|(a, b)| a / b);
        println!(
            "{:<16} {} {}",
            "ratio (ours/pt)",
            fmt(train_ratio, 2),
            fmt(
                Some(ours.eval_images_per_second / torch.eval_images_per_second),
                2
            )
        );
    }
    let loader = bench::loader_throughput(&opts, 20)?;
    println!(
        "data loader (crop+flip+normalise, {} threads): {:.0} img/s",
        rayon::current_num_threads(),
        loader
    );
    if let Some(p) = a.json {
        trainer::run::io::write_atomic(&p, serde_json::to_string_pretty(&results)?.as_bytes())?;
    }
    Ok(())
}

fn cmd_embed(a: EmbedArgs) -> Result<()> {
    let device = DeviceChoice::parse(&a.device)?;
    let mut cfg = families::load_config(&a.config, &a.overrides)?;
    if a.run.is_none() {
        families::preload_run_weights(&mut cfg)?;
    }
    let opts = trainer::commands::embed::EmbedOptions {
        train_split: a.train_split,
        run: a.run,
        images: a.images,
        out: a.out,
        overwrite: a.overwrite,
        batch_size: a.batch_size,
        quiet: false,
    };
    let started = std::time::Instant::now();
    let s = with_backend!(device, |B, dev| {
        type I = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        trainer::commands::embed::embed::<I>(&cfg, &opts, &dev)
    })?;
    println!(
        "wrote {}: {} images, features {}{} ({:.1}s)",
        s.out.display(),
        s.images,
        s.feature_dim,
        if s.classes > 0 {
            format!(", logits {}", s.classes)
        } else {
            String::new()
        },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn cmd_predict(a: PredictArgs) -> Result<()> {
    let device = DeviceChoice::parse(&a.device)?;
    let cfg = match (&a.run, &a.config) {
        (Some(run), _) => load_run(run, &a.overrides)?,
        (None, Some(c)) => {
            let mut cfg = families::load_config(c, &a.overrides)?;
            families::preload_run_weights(&mut cfg)?;
            cfg
        }
        (None, None) => anyhow::bail!("`predict` needs --run RUN_DIR or --config FILE"),
    };
    let opts = trainer::commands::predict::PredictOptions {
        run: a.run,
        images: a.images,
        detector: a.detector,
        tpr: a.tpr,
        out: a.out,
        overwrite: a.overwrite,
    };
    let s = with_backend!(device, |B, dev| {
        type I = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;
        trainer::commands::predict::predict::<I>(&cfg, &opts, &dev)
    })?;
    println!(
        "wrote {}: {} of {} images called OOD by {} (threshold {:e}, keeping {:.1}% of {} ID test images)",
        opts.out.display(),
        s.flagged,
        s.images,
        s.detector,
        s.threshold,
        100.0 * opts.tpr,
        s.id_images
    );
    Ok(())
}

fn cmd_data(d: DataCommand) -> Result<()> {
    match d {
        DataCommand::Download { name, dir } => {
            let path = unseen_data::download::download(&name, &dir, |done, total| {
                if let Some(t) = total {
                    eprint!(
                        "\r{name}: {:.1}/{:.1} MB",
                        done as f64 / 1e6,
                        t as f64 / 1e6
                    );
                }
            })?;
            eprintln!();
            println!("{name} ready in {}", path.display());
        }
        DataCommand::Inspect { source, path, test } => {
            let set = unseen_data::formats::load_named(&source, &path, !test)?;
            let counts = set.class_counts();
            let mean =
                set.pixels.iter().map(|&p| p as f64).sum::<f64>() / set.pixels.len().max(1) as f64;
            println!(
                "{} {} split: {} images of {}x{}x{}, {} classes, mean pixel {:.3}",
                path.display(),
                if test { "test" } else { "train" },
                set.len(),
                set.channels,
                set.height,
                set.width,
                set.num_classes(),
                mean / 255.0
            );
            for (i, (name, c)) in set.class_names.iter().zip(counts).enumerate() {
                println!("  {i:>3} {name:<20} {c}");
            }
        }
    }
    Ok(())
}
