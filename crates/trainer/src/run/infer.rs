//! The one inference path: a network (inference mode: BatchNorm uses its running statistics)
//! over a whole image set, normalised as evaluation does, with its outputs read back as
//! row-major `f32` matrices. Every evaluation, `trainer embed`, the GCD k-means input and
//! the post-hoc detectors' features come through here.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
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
    /// A `[rows, width]` tensor read back as `f32`.
    pub fn from_tensor<B: Backend>(t: Tensor<B, 2>) -> Self {
        Rows {
            width: t.dims()[1],
            values: t.into_data().convert::<f32>().to_vec::<f32>().expect("f32"),
        }
    }

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

/// Checks inference outputs for NaN / infinity, naming the image.
pub fn check_finite(what: &str, set_name: &str, rows: &Rows) -> Result<()> {
    check_finite_from(what, set_name, rows, 0)
}

/// [`check_finite`] for a batch whose first row is image `first` of the set.
///
/// # Errors
/// As [`check_finite`].
pub fn check_finite_from(what: &str, set_name: &str, rows: &Rows, first: usize) -> Result<()> {
    if rows.width == 0 {
        return Ok(());
    }
    if let Err(e) = unseen_eval::detectors::validate_rows("values", &rows.values, rows.width) {
        if let unseen_eval::EvalError::NonFiniteValue {
            row, column, value, ..
        } = e
        {
            let image = first + row;
            bail!(
                "{what} of image {image} of {set_name} is {value} (column {column}): the network \
                 produced a non-finite value; check the checkpoint and the input normalisation"
            );
        }
        return Err(e.into());
    }
    Ok(())
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
    forward: impl FnMut(Tensor<B, 4>) -> Vec<Tensor<B, 2>>,
) -> Result<Vec<Rows>> {
    let mut out: Vec<Rows> = Vec::new();
    infer_batches(set, mean, std, batch_size, device, forward, |batch| {
        out.resize(batch.len(), Rows::default());
        for (o, b) in out.iter_mut().zip(batch) {
            o.width = b.width;
            o.values.extend_from_slice(&b.values);
        }
        Ok(())
    })?;
    Ok(out)
}

/// As [`infer`], but hands each batch's matrices to `visit` instead of collecting them, so
/// a whole set's outputs never need to be in memory at once.
///
/// # Errors
/// A zero batch size, or `visit`'s error.
pub fn infer_batches<B: Backend>(
    set: &Arc<ImageSet>,
    mean: &[f32],
    std: &[f32],
    batch_size: usize,
    device: &B::Device,
    mut forward: impl FnMut(Tensor<B, 4>) -> Vec<Tensor<B, 2>>,
    mut visit: impl FnMut(&[Rows]) -> Result<()>,
) -> Result<()> {
    for_each_input(set, mean, std, batch_size, device, |x| {
        let outputs: Vec<Rows> = forward(x).into_iter().map(Rows::from_tensor).collect();
        visit(&outputs)
    })
}

/// Calls `visit` on every batch of `set` as a normalised input tensor (no augmentation,
/// in order): what [`infer_batches`] runs the network on.
///
/// # Errors
/// A zero batch size, or `visit`'s error.
pub fn for_each_input<B: Backend>(
    set: &Arc<ImageSet>,
    mean: &[f32],
    std: &[f32],
    batch_size: usize,
    device: &B::Device,
    mut visit: impl FnMut(Tensor<B, 4>) -> Result<()>,
) -> Result<()> {
    let loader = Loader::new(
        set.clone(),
        batch_size,
        false,
        false,
        Augment::normalize_only(mean.to_vec(), std.to_vec()),
        0,
    )
    .context("evaluation loader")?;
    for batch in loader.epoch(0) {
        crate::run::faults::point("infer");
        visit(Tensor::<B, 4>::from_data(
            TensorData::new(batch.images, batch.shape),
            device,
        ))?;
    }
    Ok(())
}

/// The network's outputs for a batch: `[features, logits]` (`[features]` for a headless
/// network), the features being the penultimate ones, or with `layers` the pooled layers
/// of [`Backbone::forward_layers`] side by side.
///
/// # Errors
/// `layers` on a network without pooled layers (a Vision Transformer).
pub fn network_outputs<B: Backend>(
    model: &Backbone<B>,
    x: Tensor<B, 4>,
    layers: bool,
) -> Result<Vec<Tensor<B, 2>>> {
    let has_head = model.num_classes() > 0;
    let (f, l) = if layers {
        let Some(mut taps) = model.forward_layers(x) else {
            bail!(
                "this network has no pooled intermediate layers (a Vision Transformer); \
                 use a ResNet or a WideResNet"
            );
        };
        let last = taps.last().expect("at least one layer").clone();
        let logits = has_head.then(|| model.forward_head(last));
        let f = if taps.len() == 1 {
            taps.pop().expect("one")
        } else {
            Tensor::cat(taps, 1)
        };
        (f, logits)
    } else {
        let f = model.forward_features(x);
        let logits = has_head.then(|| model.forward_head(f.clone()));
        (f, logits)
    };
    Ok(std::iter::once(f).chain(l).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A NaN in row 1 of a batch that starts at image 4,096 names image 4,097 and its
    /// column; finite rows and an empty (headless) output pass.
    #[test]
    fn non_finite_outputs_name_the_image_in_the_whole_set() {
        let rows = Rows {
            values: vec![0.5, 1.0, 2.0, f32::NAN],
            width: 2,
        };
        let e = check_finite_from("the feature", "the ID training set", &rows, 4096)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the feature of image 4097 of the ID training set is NaN (column 1)"),
            "{e}"
        );
        let e = check_finite("the logit", "OOD set svhn", &rows)
            .unwrap_err()
            .to_string();
        assert!(e.contains("image 1 of OOD set svhn"), "{e}");
        let ok = Rows {
            values: vec![0.5, 1.0],
            width: 2,
        };
        check_finite_from("the feature", "x", &ok, 7).unwrap();
        check_finite("the logit", "x", &Rows::default()).unwrap();
    }
}
