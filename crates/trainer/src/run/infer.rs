//! The one inference path: a network (inference mode: BatchNorm uses its running statistics)
//! over a whole image set, normalised as evaluation does, with its outputs read back as
//! row-major `f32` matrices. Every evaluation, `trainer embed`, the GCD k-means input and
//! the post-hoc detectors' features come through here.

use std::sync::Arc;

use anyhow::{Context, Result};
use burn::prelude::*;
use unseen_backbones::Backbone;
use unseen_data::loader::Loader;
use unseen_data::transforms::Augment;
use unseen_data::ImageSet;

/// One output of [`infer`]: `rows x width` values, row-major.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// The values.
    pub values: Vec<f32>,
    /// Row length (0 before the first batch).
    pub width: usize,
}

impl Rows {
    /// The index of each row's largest value (the first on ties).
    pub fn argmax(&self) -> Vec<usize> {
        self.values
            .chunks(self.width.max(1))
            .map(|r| {
                let mut best = 0;
                for (i, &v) in r.iter().enumerate() {
                    if v > r[best] {
                        best = i;
                    }
                }
                best
            })
            .collect()
    }
}

/// Runs `forward` over `set` in batches of `batch_size` (images normalised with `mean` /
/// `std`, no augmentation) and collects each of the matrices it returns per batch.
///
/// # Errors
/// A zero batch size.
pub fn infer<B: Backend>(
    set: &Arc<ImageSet>,
    mean: &[f32],
    std: &[f32],
    batch_size: usize,
    device: &B::Device,
    mut forward: impl FnMut(Tensor<B, 4>) -> Vec<Tensor<B, 2>>,
) -> Result<Vec<Rows>> {
    let loader = Loader::new(
        set.clone(),
        batch_size,
        false,
        false,
        Augment::normalize_only(mean.to_vec(), std.to_vec()),
        0,
    )
    .context("evaluation loader")?;
    let mut out: Vec<Rows> = Vec::new();
    for batch in loader.epoch(0) {
        crate::run::faults::point("infer");
        let x = Tensor::<B, 4>::from_data(TensorData::new(batch.images, batch.shape), device);
        let outputs = forward(x);
        out.resize(outputs.len(), Rows::default());
        for (o, t) in out.iter_mut().zip(outputs) {
            o.width = t.dims()[1];
            o.values
                .extend(t.into_data().convert::<f32>().to_vec::<f32>().expect("f32"));
        }
    }
    Ok(out)
}

/// A backbone's penultimate features `[n, d]` and logits `[n, K]` over `set` (logits empty
/// for a headless network).
///
/// # Errors
/// A zero batch size.
pub fn features_and_logits<B: Backend>(
    model: &Backbone<B>,
    set: &Arc<ImageSet>,
    mean: &[f32],
    std: &[f32],
    batch_size: usize,
    device: &B::Device,
) -> Result<(Rows, Rows)> {
    let has_head = model.num_classes() > 0;
    let mut rows = infer(set, mean, std, batch_size, device, |x| {
        let (f, l) = model.forward(x);
        if has_head {
            vec![f, l]
        } else {
            vec![f]
        }
    })?;
    let logits = if has_head {
        rows.pop().unwrap_or_default()
    } else {
        Rows::default()
    };
    let features = rows.pop().unwrap_or_default();
    Ok((features, logits))
}
