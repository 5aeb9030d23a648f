//! `trainer export`: a trained run as a safetensors file with the source library's key
//! names (torchvision for ResNets, the reference code's for WideResNets, timm's for ViTs),
//! plus `FILE.json` (architecture, classes, preprocessing, normalisation, how to build the
//! PyTorch module) and `FILE.sample.safetensors` (a fixed input batch and the logits our
//! model gives for it) so anyone can verify a load:
//!
//! ```python
//! m = torchvision.models.resnet18(num_classes=K)
//! m.conv1 = nn.Conv2d(C, 64, 3, 1, 1, bias=False); m.maxpool = nn.Identity()  # CIFAR stem
//! m.load_state_dict(safetensors.torch.load_file("model.safetensors"), strict=True)
//! ```
//! (`scripts/verify_export.py` does exactly this and compares the sample logits.)
//!
//! This module holds what every export shares (the three files, the sample batch, tensor
//! entries); each family's `export.rs` decides which weights and outputs go in.
//!
//! Open-set SSL runs export their EMA model (the one evaluated): FixMatch as the bare
//! backbone above (its head is the `K`-class closed-set classifier), IOMatch as `IOMatchNet`'s
//! state dict (`backbone.*`, `mlp_proj.*`, `mb_classifiers.weight`, `openset_classifier.*`),
//! which loads strictly into the reference's `IOMatchNet(backbone)`. GCD runs export
//! SimGCD's / ProtoGCD's `nn.Sequential(backbone, DINOHead)` (the backbone without its head,
//! the projector, the prototypes as the weight-normalised cosine classifier), which loads
//! strictly into the official modules; `gcd`'s predictions come from k-means, which no
//! module holds, so its export is the backbone and projector.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use safetensors::tensor::Dtype;
use serde::Serialize;

use crate::config::ExperimentConfig;
use crate::run::io::write_atomic;

pub use unseen_backbones::weights::{state_dict, to_safetensors, TensorMap};

/// `FILE.json`.
#[derive(Debug, Serialize)]
pub struct ExportInfo {
    /// Unseen registry name.
    pub architecture: String,
    /// How to build the matching PyTorch module (library, constructor, arguments); see
    /// `BackboneSpec::pytorch_recipe`.
    pub pytorch: serde_json::Value,
    /// Number of classes.
    pub num_classes: usize,
    /// Class names (ID classes, in label order).
    pub class_names: Vec<String>,
    /// Input shape `[channels, height, width]` (after `preprocess`).
    pub input_shape: [usize; 3],
    /// Resize / centre crop applied before normalisation.
    pub preprocess: unseen_data::transforms::Preprocess,
    /// Normalisation applied to `x/255`.
    pub mean: Vec<f32>,
    /// Normalisation standard deviations.
    pub std: Vec<f32>,
    /// Training recipe.
    pub recipe: String,
    /// Run the weights come from.
    pub run: String,
    /// Which weights: `"model"` (the trained network) or, for open-set SSL runs, `"ema"`
    /// (the last checkpoint's EMA model, the one USB and Unseen evaluate) or `"ema-best"`
    /// (the EMA model of the best checkpoint, `--checkpoint best`).
    pub weights: String,
    /// IOMatch runs: the file is an `IOMatchNet` state dict, the backbone under `backbone.`
    /// plus `mlp_proj`, `mb_classifiers` and `openset_classifier`:
    /// `{"layout": "IOMatchNet", "proj_size": P, "num_classes": K}`. Absent otherwise (the
    /// file loads into the bare backbone module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heads: Option<serde_json::Value>,
}

impl ExportInfo {
    /// The description of `cfg`'s network with a `num_classes` head named `class_names`,
    /// for images shaped as `test`; `weights` "model", no `heads`.
    pub fn new(
        cfg: &ExperimentConfig,
        class_names: Vec<String>,
        test: &unseen_data::ImageSet,
    ) -> Result<Self> {
        let num_classes = class_names.len();
        Ok(Self {
            architecture: cfg.model.name.clone(),
            pytorch: cfg.model.pytorch_recipe(num_classes, test.height)?,
            num_classes,
            class_names,
            input_shape: [test.channels, test.height, test.width],
            preprocess: cfg.data.preprocess.clone(),
            mean: cfg.data.augment.mean.clone(),
            std: cfg.data.augment.std.clone(),
            recipe: cfg.recipe.clone(),
            run: cfg.name.clone(),
            weights: "model".into(),
            heads: None,
        })
    }
}

/// The three paths of an export to `out` (`FILE.safetensors`, `FILE.json`,
/// `FILE.sample.safetensors`), after checking the extension and that none exists unless
/// `overwrite`.
pub fn export_paths(out: &Path, overwrite: bool) -> Result<[std::path::PathBuf; 3]> {
    if out.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("--out must end in .safetensors, got {}", out.display());
    }
    let stem = out.with_extension("");
    let json_path = stem.with_extension("json");
    let sample_path = std::path::PathBuf::from(format!("{}.sample.safetensors", stem.display()));
    for p in [out, json_path.as_path(), sample_path.as_path()] {
        if p.exists() && !overwrite {
            bail!(
                "{} already exists; pass --overwrite to replace it",
                p.display()
            );
        }
    }
    Ok([out.to_path_buf(), json_path, sample_path])
}

/// Writes `FILE.json`, the sample and then the weights (with the architecture in the
/// metadata): the weights file, the one users load, appears only once the others are in
/// place, so an export killed half-way never leaves one.
pub fn write_files(
    out: &Path,
    info: &ExportInfo,
    weights: &TensorMap,
    sample: &TensorMap,
) -> Result<Vec<std::path::PathBuf>> {
    let [out, json_path, sample_path] = export_paths(out, true)?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("unseen.architecture".to_string(), info.architecture.clone());
    write_atomic(
        &json_path,
        (serde_json::to_string_pretty(info)? + "\n").as_bytes(),
    )?;
    write_atomic(&sample_path, &to_safetensors(sample, None)?)?;
    write_atomic(&out, &to_safetensors(weights, Some(meta))?)?;
    Ok(vec![out, json_path, sample_path])
}

/// The sample batch of an export: the first 8 images of `set` (fewer if it is smaller),
/// normalised as evaluation does, and as a tensor on `device`.
pub fn sample_input<B: Backend>(
    set: &unseen_data::ImageSet,
    cfg: &ExperimentConfig,
    device: &B::Device,
) -> Result<(unseen_data::loader::Batch, Tensor<B, 4>)> {
    let n = set.len().min(8);
    let idx: Vec<usize> = (0..n).collect();
    let loader = unseen_data::loader::Loader::new(
        std::sync::Arc::new(set.select(&idx)),
        n.max(1),
        false,
        false,
        unseen_data::transforms::Augment::normalize_only(
            cfg.data.augment.mean.clone(),
            cfg.data.augment.std.clone(),
        ),
        0,
    )?;
    let batch = loader
        .epoch(0)
        .next()
        .context("the test set is empty: no sample to export")?;
    let x = Tensor::<B, 4>::from_data(
        burn::tensor::TensorData::new(batch.images.clone(), batch.shape),
        device,
    );
    Ok((batch, x))
}

/// `FILE.sample.safetensors`: the `input` batch and each present output.
pub fn sample_map<B: Backend, const N: usize>(
    batch: &unseen_data::loader::Batch,
    outputs: [(&str, Option<Tensor<B, 2>>); N],
) -> TensorMap {
    let mut sample = TensorMap::new();
    sample.insert(
        "input".into(),
        f32_entry(batch.shape.to_vec(), &batch.images),
    );
    for (name, t) in outputs {
        if let Some(t) = t {
            sample.insert(name.into(), tensor_entry(t));
        }
    }
    sample
}

/// A tensor as a float32 [`TensorMap`] entry (shape as is).
pub fn tensor_entry<B: Backend, const D: usize>(t: Tensor<B, D>) -> (Dtype, Vec<usize>, Vec<u8>) {
    let shape = t.dims().to_vec();
    let v = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
    f32_entry(shape, &v)
}

/// A float tensor entry of a [`TensorMap`].
pub fn f32_entry(shape: Vec<usize>, values: &[f32]) -> (Dtype, Vec<usize>, Vec<u8>) {
    (
        Dtype::F32,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}
