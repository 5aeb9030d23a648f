//! Building a backbone from a config: seeded initialisation, pretrained weights, frozen
//! blocks. Every family builds its network's backbone here.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use unseen_backbones::Backbone;
use unseen_data::Rng;

use crate::config::ExperimentConfig;

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
        let (m, report) = match w.strip_prefix("run:") {
            Some(dir) => {
                let raw = run_backbone_tensors::<B>(spec, Path::new(dir), device)?;
                model
                    .load_tensors(raw, Path::new(w), &spec.allow_partial, &spec.name)
                    .context("model.weights")?
            }
            None => {
                let file = unseen_backbones::hub::resolve(w).context("model.weights")?;
                model
                    .load_weights(
                        &file,
                        spec.weights_key.as_deref(),
                        &spec.allow_partial,
                        &spec.name,
                    )
                    .context("model.weights")?
            }
        };
        if !quiet {
            eprintln!("{report}");
        }
        model = m;
    }
    Ok(freeze(spec, model))
}

/// `model.weights = "run:DIR"`: the backbone of run folder `DIR`'s last checkpoint (an
/// open-set SSL run's EMA weights), as the state dict an export would write. A
/// category-discovery run's linear head is left out (it is never trained); any other
/// run's head loads like a file's (`allow_partial = ["head"]` for another number of
/// classes).
///
/// # Errors
/// `DIR` is not a run folder, has no checkpoint, or trained another network than `spec`.
fn run_backbone_tensors<B: Backend>(
    spec: &unseen_backbones::BackboneSpec,
    dir: &Path,
    device: &B::Device,
) -> Result<unseen_backbones::weights::Tensors> {
    let what = || format!("model.weights = \"run:{}\"", dir.display());
    let config = dir.join("config.toml");
    if !config.is_file() {
        bail!(
            "{}: {} is not a run folder (no config.toml in it)",
            what(),
            dir.display()
        );
    }
    let src = crate::families::load_config(&config, &[]).with_context(what)?;
    let (a, b) = (&src.model, spec);
    if (&a.name, a.in_channels, a.width) != (&b.name, b.in_channels, b.width) {
        bail!(
            "{}: that run trained `{}` (in_channels {}, width {:?}), this config builds `{}` \
             (in_channels {}, width {:?}); [model] must name the same network",
            what(),
            a.name,
            a.in_channels,
            a.width,
            b.name,
            b.in_channels,
            b.width
        );
    }
    let backbone = crate::families::load_backbone::<B>(&src, dir, device).with_context(what)?;
    let gcd = crate::families::family_of(&src.recipe)? == crate::families::FamilyKind::Gcd;
    let head = backbone.head_name();
    let mut out = unseen_backbones::weights::Tensors::new();
    for (key, (dtype, shape, bytes)) in
        unseen_backbones::weights::state_dict(&backbone, 0).with_context(what)?
    {
        let in_head = key.strip_prefix(head).is_some_and(|r| r.starts_with('.'));
        if dtype != safetensors::Dtype::F32 || (gcd && in_head) {
            continue; // num_batches_tracked; an untrained GCD head
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            key,
            unseen_backbones::weights::SourceTensor::new(shape, values),
        );
    }
    Ok(out)
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
