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

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use safetensors::tensor::Dtype;
use serde::Serialize;
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::data_setup::ExperimentData;
use crate::evaluate::infer;
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
    let info = ExportInfo {
        architecture: cfg.model.name.clone(),
        pytorch: cfg
            .model
            .pytorch_recipe(data.num_classes(), data.id_test.height)?,
        num_classes: data.num_classes(),
        class_names: data.id_train.class_names.clone(),
        input_shape: [
            data.id_test.channels,
            data.id_test.height,
            data.id_test.width,
        ],
        preprocess: cfg.data.preprocess.clone(),
        mean: cfg.data.augment.mean.clone(),
        std: cfg.data.augment.std.clone(),
        recipe: cfg.recipe.name().into(),
        run: cfg.name.clone(),
    };
    let weights = state_dict(model, steps as i64)?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("unseen.architecture".to_string(), cfg.model.name.clone());
    // Sample: the first 8 ID test images (fewer if the set is smaller), normalised.
    let n = data.id_test.len().min(8);
    let idx: Vec<usize> = (0..n).collect();
    let sample_set = std::sync::Arc::new(data.id_test.select(&idx));
    let loader = unseen_data::loader::Loader::new(
        sample_set.clone(),
        n,
        false,
        false,
        unseen_data::transforms::Augment::normalize_only(
            cfg.data.augment.mean.clone(),
            cfg.data.augment.std.clone(),
        ),
        0,
    )?;
    let batch = loader.epoch(0).next().context("empty ID test set")?;
    let logits = infer(
        model,
        &sample_set,
        &cfg.data.augment.mean,
        &cfg.data.augment.std,
        n,
        device,
    );
    let mut sample = TensorMap::new();
    sample.insert(
        "input".into(),
        (
            Dtype::F32,
            batch.shape.to_vec(),
            batch.images.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    );
    sample.insert(
        "logits".into(),
        (
            Dtype::F32,
            vec![n, logits.classes],
            logits.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ),
    );
    write_atomic(out, &to_safetensors(&weights, Some(meta))?)?;
    write_atomic(
        &json_path,
        (serde_json::to_string_pretty(&info)? + "\n").as_bytes(),
    )?;
    write_atomic(&sample_path, &to_safetensors(&sample, None)?)?;
    Ok(vec![out.to_path_buf(), json_path, sample_path])
}

/// Loads a run's last checkpoint on the CPU and exports it (see [`export`]).
pub fn export_run(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    out: &Path,
    overwrite: bool,
) -> Result<Vec<std::path::PathBuf>> {
    type B = burn::backend::Flex;
    let device = Default::default();
    if cfg.recipe.family() != crate::config::RecipeFamily::Ood {
        bail!(
            "`trainer export` exports classifier runs (supervised and the OE family); the `{}` \
             recipe trains extra heads that torchvision/timm modules do not have. Use \
             `trainer embed --run` for its backbone features",
            cfg.recipe.name()
        );
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
