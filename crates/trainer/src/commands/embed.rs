//! `trainer embed`: run a backbone over a dataset (or a folder of images) and write its
//! features, and its logits when it has a head, to a safetensors file. Post-hoc detectors
//! and k-means consume these; they also make parity checkable from outside (compare with
//! timm's `forward_head(forward_features(x), pre_logits=True)`).
//!
//! The network comes from the config's `[model]` section (its `weights`, or a trained run's
//! last checkpoint with `--run`). The images come from the config's `data.id` split, or
//! from `--images DIR` (an image folder, `DIR/<class>/<file>`). Preprocessing is the
//! config's: `[data.preprocess]` (resize, centre crop; images already at the size are not
//! resampled) and `data.augment.mean`/`std`.
//!
//! Output tensors: `features` `[N, D]` f32, `logits` `[N, K]` f32 (only with a head),
//! `labels` `[N]` i64; string metadata records the model, weights, split and preprocessing.
//!
//! A category-discovery run (`--run` of `gcd`/`simgcd`/`protogcd`) has no trained linear
//! head: its `logits` are the cosine prototype logits its evaluation takes the argmax of
//! (none for `gcd`, which predicts with k-means), and `--train-split` adds `labelled` `[N]`
//! u8, 1 for the training images the run saw labelled, so that the GCD protocol can be
//! recomputed outside Unseen. Its `labels` are the run's (old classes first; -1 for a class
//! outside the split).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use safetensors::tensor::Dtype;
use unseen_data::ImageSet;

use crate::config::ExperimentConfig;
use crate::run::export::{to_safetensors, TensorMap};
use crate::run::infer::features_and_logits;
use crate::run::io::write_atomic;

/// What to embed and where to write it.
#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// `train` or `test` split of `data.id` (ignored with `images`).
    pub train_split: bool,
    /// A trained run whose last checkpoint replaces `model.weights`.
    pub run: Option<PathBuf>,
    /// An image folder to embed instead of `data.id`.
    pub images: Option<PathBuf>,
    /// Output `.safetensors` file.
    pub out: PathBuf,
    /// Replace `out` if it exists.
    pub overwrite: bool,
    /// Images per forward pass.
    pub batch_size: usize,
    /// No load report on stderr.
    pub quiet: bool,
}

/// What [`embed`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbedSummary {
    /// Images embedded.
    pub images: usize,
    /// Feature width.
    pub feature_dim: usize,
    /// Logit width (0 without a head).
    pub classes: usize,
    /// The file written.
    pub out: PathBuf,
}

fn load_images(cfg: &ExperimentConfig, opts: &EmbedOptions) -> Result<ImageSet> {
    match &opts.images {
        Some(dir) => unseen_data::formats::load_image_folder_with(
            dir,
            cfg.model.in_channels,
            &cfg.data.preprocess,
        )
        .with_context(|| format!("--images {} ([data.preprocess])", dir.display())),
        None => crate::run::data::load_dataset(
            &cfg.data.id,
            opts.train_split,
            cfg.seed,
            "data.id",
            &cfg.data.preprocess,
        ),
    }
}

/// Embeds the images on `device` and writes the file.
pub fn embed<B: Backend>(
    cfg: &ExperimentConfig,
    opts: &EmbedOptions,
    device: &B::Device,
) -> Result<EmbedSummary> {
    if opts.out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("--out must end in .safetensors, got {}", opts.out.display());
    }
    if opts.out.exists() && !opts.overwrite {
        bail!(
            "{} already exists; pass --overwrite to replace it",
            opts.out.display()
        );
    }
    if opts.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let set = Arc::new(load_images(cfg, opts)?);
    if set.channels != cfg.model.in_channels {
        bail!(
            "the images have {} channel(s) but model.in_channels is {}",
            set.channels,
            cfg.model.in_channels
        );
    }
    if set.height != set.width {
        bail!(
            "the images are {}x{}; set [data.preprocess] center_crop for square inputs",
            set.height,
            set.width
        );
    }
    let classes = cfg.model.num_classes.unwrap_or(set.num_classes());
    let mut labelled = None;
    let mut relabel: Option<Vec<u32>> = None;
    let (feats, logits) = match &opts.run {
        Some(run) => {
            let training = opts.train_split && opts.images.is_none();
            let e =
                crate::families::embed_run::<B>(cfg, run, &set, training, opts.batch_size, device)?;
            (labelled, relabel) = (e.labelled, e.classes);
            (e.features, e.logits)
        }
        None => {
            let model = crate::families::build::build_backbone::<B>(
                &cfg.model, classes, set.height, cfg.seed, device, opts.quiet,
            )?;
            let has_head = model.num_classes() > 0;
            let (f, l) = features_and_logits(
                &model,
                &set,
                &cfg.data.augment.mean,
                &cfg.data.augment.std,
                opts.batch_size,
                device,
            )?;
            (f, has_head.then_some(l))
        }
    };
    let n = set.len();
    let d = feats.width;
    let mut out = TensorMap::new();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    out.insert(
        "features".into(),
        (Dtype::F32, vec![n, d], bytes(&feats.values)),
    );
    let classes = logits.as_ref().map_or(0, |l| l.width);
    if let Some(l) = &logits {
        out.insert(
            "logits".into(),
            (Dtype::F32, vec![n, l.width], bytes(&l.values)),
        );
    }
    if let Some(mask) = labelled {
        out.insert("labelled".into(), (Dtype::U8, vec![n], mask));
    }
    // A GCD run's labels are its own (old classes first); classes outside its split: -1.
    let label_of = |l: u32| -> i64 {
        match &relabel {
            Some(classes) => classes
                .iter()
                .position(|&c| c == l)
                .map_or(-1, |k| k as i64),
            None => l as i64,
        }
    };
    let labels: Vec<u8> = set
        .labels
        .iter()
        .flat_map(|&l| label_of(l).to_le_bytes())
        .collect();
    out.insert("labels".into(), (Dtype::I64, vec![n], labels));
    let mut meta = HashMap::new();
    meta.insert("model".to_string(), cfg.model.name.clone());
    meta.insert(
        "weights".to_string(),
        match &opts.run {
            Some(r) => format!("run:{}", r.display()),
            None => cfg
                .model
                .weights
                .clone()
                .unwrap_or_else(|| "none (seeded init)".into()),
        },
    );
    meta.insert(
        "images".to_string(),
        match &opts.images {
            Some(dir) => dir.display().to_string(),
            None => format!(
                "{} ({})",
                cfg.data.id.path.display(),
                if opts.train_split { "train" } else { "test" }
            ),
        },
    );
    meta.insert(
        "preprocess".to_string(),
        serde_json::to_string(&cfg.data.preprocess)?,
    );
    meta.insert(
        "normalize".to_string(),
        format!(
            "mean {:?} std {:?}",
            cfg.data.augment.mean, cfg.data.augment.std
        ),
    );
    write_atomic(&opts.out, &to_safetensors(&out, Some(meta))?)?;
    Ok(EmbedSummary {
        images: n,
        feature_dim: d,
        classes,
        out: opts.out.clone(),
    })
}

/// Reads a tensor of an embedding file as f32 (for tests and tools).
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not safetensors", path.display()))?;
    let t = st
        .tensor(name)
        .with_context(|| format!("{} has no tensor `{name}`", path.display()))?;
    if t.dtype() != Dtype::F32 {
        bail!("{}: `{name}` is {:?}, not F32", path.display(), t.dtype());
    }
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), v))
}
