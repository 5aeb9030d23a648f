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
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::data_setup::ExperimentData;
use crate::io::write_atomic;

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
    fn new(
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
            recipe: cfg.recipe.name().into(),
            run: cfg.name.clone(),
            weights: "model".into(),
            heads: None,
        })
    }
}

/// Exports a run's last checkpoint.
pub fn export<B: Backend>(
    cfg: &ExperimentConfig,
    model: &Backbone<B>,
    data: &ExperimentData,
    steps: usize,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<std::path::PathBuf>> {
    export_paths(out, overwrite)?;
    let info = ExportInfo::new(cfg, data.id_train.class_names.clone(), &data.id_test)?;
    let weights = state_dict(model, steps as i64)?;
    let (batch, x) = sample_input::<B>(&data.id_test, cfg, device)?;
    let (_, logits) = model.forward(x);
    let sample = sample_map(&batch, [("logits", Some(logits))]);
    write_files(out, &info, &weights, &sample)
}

/// The three paths of an export to `out` (`FILE.safetensors`, `FILE.json`,
/// `FILE.sample.safetensors`), after checking the extension and that none exists unless
/// `overwrite`.
fn export_paths(out: &Path, overwrite: bool) -> Result<[std::path::PathBuf; 3]> {
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

/// Writes the weights (with the architecture in the metadata), `FILE.json` and the sample.
fn write_files(
    out: &Path,
    info: &ExportInfo,
    weights: &TensorMap,
    sample: &TensorMap,
) -> Result<Vec<std::path::PathBuf>> {
    let [out, json_path, sample_path] = export_paths(out, true)?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("unseen.architecture".to_string(), info.architecture.clone());
    write_atomic(&out, &to_safetensors(weights, Some(meta))?)?;
    write_atomic(
        &json_path,
        (serde_json::to_string_pretty(info)? + "\n").as_bytes(),
    )?;
    write_atomic(&sample_path, &to_safetensors(sample, None)?)?;
    Ok(vec![out, json_path, sample_path])
}

/// The sample batch of an export: the first 8 images of `set` (fewer if it is smaller),
/// normalised as evaluation does, and as a tensor on `device`.
fn sample_input<B: Backend>(
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
fn sample_map<B: Backend, const N: usize>(
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
fn f32_entry(shape: Vec<usize>, values: &[f32]) -> (Dtype, Vec<usize>, Vec<u8>) {
    (
        Dtype::F32,
        shape,
        values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    )
}

/// Loads a run's last checkpoint (for an open-set SSL run, `which` one) on the CPU and
/// exports it: classifiers with [`export`], open-set SSL runs as their EMA model, GCD runs
/// as the official `nn.Sequential(backbone, DINOHead)` (see the module docs).
pub fn export_run(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: crate::ossl::RunCheckpoint,
    out: &Path,
    overwrite: bool,
) -> Result<Vec<std::path::PathBuf>> {
    type B = burn::backend::Flex;
    let device = Default::default();
    which.check_for(cfg, "exports")?;
    match cfg.recipe.family() {
        crate::config::RecipeFamily::Ossl => {
            return export_ossl::<B>(cfg, run_dir, which, out, overwrite, &device)
        }
        crate::config::RecipeFamily::Ood => {}
        crate::config::RecipeFamily::Gcd => {
            return export_gcd::<B>(cfg, run_dir, out, overwrite, &device)
        }
    }
    let data = crate::data_setup::load(&cfg.data, cfg.seed, false, cfg.model.in_channels)?;
    let ck = crate::checkpoint::find(run_dir)?;
    let state = crate::checkpoint::load_state(&ck)?;
    let model = crate::train::build_for_checkpoint::<B>(
        cfg,
        data.num_classes(),
        data.id_train.height,
        &device,
    )?;
    let model = crate::checkpoint::load_model(&ck, model, &device)?;
    export::<B>(cfg, &model, &data, state.step, out, overwrite, &device)
}

/// Exports an open-set SSL run's EMA model (the one evaluated; the live weights when the
/// last checkpoint has no EMA for its step), of its last or best checkpoint (`which`). FixMatch: the backbone with its `K`-class closed-set
/// head under the usual names, loadable into the bare module. IOMatch: `IOMatchNet`'s state
/// dict (the backbone under `backbone.`, plus the projector, one-vs-all and open-set heads;
/// see [`ExportInfo::heads`]), so it loads into the reference's own module. The sample holds
/// `logits` and, for IOMatch, `logits_open` `[n, K + 1]` and `logits_mb` `[n, 2K]` of the
/// first 8 full-test images.
fn export_ossl<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: crate::ossl::RunCheckpoint,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::ossl;
    export_paths(out, overwrite)?;
    let sec = cfg.ossl.clone().unwrap_or_default();
    let data = ossl::load_data(cfg, &sec)?;
    let (model, step, ema) = ossl::load_run_model::<B>(cfg, &sec, &data, run_dir, which, device)?;
    let k = data.split.num_seen;
    let test = &data.full_test;
    let mut weights = state_dict(&model.backbone, step as i64)?;
    if let Some(h) = &model.heads {
        weights = weights
            .into_iter()
            .map(|(name, t)| (format!("backbone.{name}"), t))
            .collect();
        weights.extend(h.torch_state_dict());
    }
    let mut info = ExportInfo::new(cfg, data.labelled.class_names.clone(), test)?;
    info.weights = match (ema, which) {
        (_, ossl::RunCheckpoint::Best) => "ema-best",
        (true, _) => "ema",
        (false, _) => "model",
    }
    .into();
    info.heads = model.heads.as_ref().map(|_| {
        serde_json::json!({
            "layout": "IOMatchNet",
            "proj_size": sec.proj_dim(),
            "num_classes": k,
        })
    });
    let (batch, x) = sample_input::<B>(test, cfg, device)?;
    let o = model.forward(x);
    let sample = sample_map(
        &batch,
        [
            ("logits", Some(o.logits)),
            ("logits_open", o.open),
            ("logits_mb", o.ova),
        ],
    );
    write_files(out, &info, &weights, &sample)
}

/// Exports a GCD run's last checkpoint as the official code's `nn.Sequential(backbone,
/// DINOHead)` state dict (see [`crate::gcd::ExportParts::weights`]). The sample holds, for
/// the first 8 test images, the backbone `features` `[n, d]`, the projector's `x_proj`
/// `[n, proj_dim]` (before normalisation, as `DINOHead` returns it) and, for SimGCD and
/// ProtoGCD, the cosine `logits` `[n, K]` (before the temperature).
fn export_gcd<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<std::path::PathBuf>> {
    export_paths(out, overwrite)?;
    let parts = crate::gcd::export_parts::<B>(cfg, run_dir, device)?;
    let test = &parts.test;
    let mut info = ExportInfo::new(cfg, parts.class_names.clone(), test)?;
    info.heads = Some(parts.heads.clone());
    let (batch, x) = sample_input::<B>(test, cfg, device)?;
    let o = parts.model.forward(x);
    let x_proj = parts.model.projector.forward(o.features.clone());
    let has_classifier = parts.heads["classifier"].is_string();
    let sample = sample_map(
        &batch,
        [
            ("features", Some(o.features)),
            ("x_proj", Some(x_proj)),
            ("logits", has_classifier.then_some(o.logits)),
        ],
    );
    write_files(out, &info, &parts.weights, &sample)
}
