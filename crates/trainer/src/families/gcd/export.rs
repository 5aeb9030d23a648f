//! `trainer export` of a GCD run: the official code's `nn.Sequential(backbone, DINOHead)`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Result;
use burn::prelude::*;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::export::{
    export_paths, sample_input, sample_map, tensor_entry, write_files, ExportInfo, TensorMap,
};

/// Exports a GCD run's checkpoint (`which`) as the official code's `nn.Sequential(backbone,
/// DINOHead)` state dict: the backbone under `0.` without its linear head (the reference
/// replaces it by `nn.Identity()`), `1.mlp.{0,2,4}.{weight,bias}` (the projector), and for
/// methods with a cosine classifier (SimGCD, ProtoGCD) the classifier as a weight-normalised
/// linear layer, `1.last_layer` / `1.prototype_layer` `.weight_g` (ones `[K, 1]`: the
/// reference fixes the norm at 1) and `.weight_v` (the prototypes `[K, d]`). `FILE.json`'s
/// `class_names` are the old classes in label order, then `new cluster N` for the discovered
/// ones (which new class a cluster is, the evaluation's Hungarian matching decides). The
/// sample holds, for the first 8 test images, the backbone `features` `[n, d]`, the
/// projector's `x_proj` `[n, proj_dim]` (before normalisation, as `DINOHead` returns it)
/// and, with a classifier, the cosine `logits` `[n, K]` (before the temperature).
///
/// # Errors
/// No such checkpoint, data that cannot be loaded, or an existing output without
/// `overwrite`.
pub fn export_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    out: &Path,
    overwrite: bool,
    device: &B::Device,
) -> Result<Vec<PathBuf>> {
    export_paths(out, overwrite)?;
    let super::RunModel {
        model,
        data,
        step,
        sec,
        method,
    } = super::load_run::<B>(cfg, run_dir, which, device)?;
    let head = model.backbone.head_name();
    let head_keys = [format!("{head}.weight"), format!("{head}.bias")];
    let mut weights: TensorMap =
        unseen_backbones::weights::state_dict(&model.backbone, step as i64)?
            .into_iter()
            .filter(|(name, _)| !head_keys.contains(name))
            .map(|(name, t)| (format!("0.{name}"), t))
            .collect();
    for (i, l) in [
        &model.projector.fc1,
        &model.projector.fc2,
        &model.projector.fc3,
    ]
    .into_iter()
    .enumerate()
    {
        // torch Linear weights are `[out, in]`; burn's `[in, out]`.
        weights.insert(
            format!("1.mlp.{}.weight", 2 * i),
            tensor_entry(l.weight.val().transpose()),
        );
        if let Some(b) = &l.bias {
            weights.insert(format!("1.mlp.{}.bias", 2 * i), tensor_entry(b.val()));
        }
    }
    let k = data.split.num_classes();
    let layer = method.classifier;
    if let Some(layer) = layer {
        let protos = model.prototypes.val();
        let device = protos.device();
        weights.insert(
            format!("1.{layer}.weight_g"),
            tensor_entry(Tensor::<B, 2>::ones([k, 1], &device)),
        );
        weights.insert(format!("1.{layer}.weight_v"), tensor_entry(protos));
    }
    let num_old = data.split.num_old;
    let names = &data.split.labelled.class_names;
    let class_names: Vec<String> = (0..k)
        .map(|c| {
            if c < num_old {
                names[c].clone()
            } else {
                format!("new cluster {}", c - num_old)
            }
        })
        .collect();
    let heads = serde_json::json!({
        "layout": method.layout,
        "module": "nn.Sequential(backbone with nn.Identity() as its head, DINOHead)",
        "feature_dim": model.backbone.feature_dim(),
        "hidden_dim": sec.proj_hidden,
        "bottleneck_dim": sec.proj_dim,
        "num_classes": k,
        "num_old_classes": num_old,
        "classifier": layer,
    });
    let test = Arc::new(data.test.set);
    let mut info = ExportInfo::new(cfg, class_names, &test)?;
    info.heads = Some(heads);
    let (batch, x) = sample_input::<B>(&test, cfg, device)?;
    let o = model.forward(x);
    let x_proj = model.projector.forward(o.features.clone());
    let sample = sample_map(
        &batch,
        [
            ("features", Some(o.features)),
            ("x_proj", Some(x_proj)),
            ("logits", layer.map(|_| o.logits)),
        ],
    );
    write_files(out, &info, &weights, &sample)
}
