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
        let (m, report) = match (&spec.preloaded, w.starts_with("run:")) {
            (Some(raw), _) => model
                .load_tensors(
                    raw.as_ref().clone(),
                    Path::new(w),
                    &spec.allow_partial,
                    &spec.name,
                )
                .context("model.weights")?,
            (None, true) => bail!(
                "model.weights = {w:?}: another run's backbone is read when a command starts \
                 (crate::families::preload_run_weights); this caller did not"
            ),
            (None, false) => {
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
