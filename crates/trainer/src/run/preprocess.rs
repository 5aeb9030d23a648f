//! Scoring with the detectors that do not read the cached penultimate features and logits:
//! those that pool several layers (`mds_ensemble`) and those that move each input against
//! a loss gradient before scoring it (ODIN's and Lee et al.'s input pre-processing,
//! [`Perturbation`]). Here the network runs again over the set: under autodiff, in
//! inference mode ([`Backbone::use_running_batchnorm`]), for the input gradient; then on
//! the moved input for the scores.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use burn::backend::Autodiff;
use burn::module::{AutodiffModule, Module};
use burn::prelude::*;
use unseen_backbones::Backbone;
use unseen_data::ImageSet;
use unseen_eval::detectors::{Detector, OutputGradient, Outputs, Perturbation};

use crate::run::infer::{check_finite_from, for_each_input, network_outputs, Rows};

/// Whether `det` must run through the network ([`through_network`]) rather than on
/// a set's cached penultimate features and logits.
pub fn runs_through_network(det: &dyn Detector) -> bool {
    det.needs().layers || det.perturbation().is_some()
}

/// The network's outputs as `(features, logits)` rows (logits empty for a headless network).
fn read(outputs: Vec<Tensor<impl Backend, 2>>) -> (Rows, Rows) {
    let mut it = outputs.into_iter().map(Rows::from_tensor);
    let f = it.next().unwrap_or_default();
    (f, it.next().unwrap_or_default())
}

fn as_outputs<'a>((f, l): &'a (Rows, Rows)) -> Outputs<'a> {
    Outputs {
        logits: &l.values,
        num_classes: l.width,
        features: &f.values,
    }
}

/// What [`through_network`] collects per image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collect {
    /// The detector's score ([`Detector::score_passes`]).
    Scores,
    /// The score's weighted components, row-major ([`Detector::components`]).
    Components,
}

/// The scores (or components) of `det` on every image of `set` (named `set_name` in
/// errors), running the network over it: with the layers side by side when the detector
/// reads them, and with its input pre-processing when it has one. Images are normalised
/// with `mean` / `std`, and the pre-processing step is divided by `std` per channel.
///
/// # Errors
/// A network without the layers the detector needs, a missing input gradient, non-finite
/// outputs (naming the image), the detector's own errors.
#[allow(clippy::too_many_arguments)]
pub fn through_network<B: Backend>(
    model: &Backbone<B>,
    det: &dyn Detector,
    set: &Arc<ImageSet>,
    set_name: &str,
    mean: &[f32],
    std: &[f32],
    batch_size: usize,
    device: &B::Device,
    collect: Collect,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(set.len());
    let norm = (mean, std, batch_size);
    for_each_pass_batch(model, det, set, set_name, norm, device, |passes| {
        out.extend(match collect {
            Collect::Scores => det.score_passes(passes)?,
            Collect::Components => det.components(passes)?,
        });
        Ok(())
    })?;
    Ok(out)
}

/// Runs the network over `set` in batches and hands `visit` what the detector reads of
/// each batch: one [`Outputs`] per perturbed pass, or the clean outputs alone without
/// input pre-processing. `norm` = (mean, std, batch size).
fn for_each_pass_batch<B: Backend>(
    model: &Backbone<B>,
    det: &dyn Detector,
    set: &Arc<ImageSet>,
    set_name: &str,
    (mean, std, batch_size): (&[f32], &[f32], usize),
    device: &B::Device,
    mut visit: impl FnMut(&[Outputs<'_>]) -> unseen_eval::Result<()>,
) -> Result<()> {
    let layers = det.needs().layers;
    let name = det.name();
    let perturbation = det.perturbation();
    // The autodiff copy of the network: running BatchNorm statistics, no parameter
    // gradients (only the input's are needed).
    let ad: Option<Backbone<Autodiff<B>>> = perturbation.map(|_| {
        <Backbone<Autodiff<B>> as AutodiffModule<Autodiff<B>>>::from_inner(
            model.clone().use_running_batchnorm(),
        )
        .no_grad()
    });
    let channels = std.len();
    let inv_std = Tensor::<B, 1>::from_data(
        TensorData::new(
            std.iter().map(|s| 1.0 / s).collect::<Vec<f32>>(),
            [channels],
        ),
        device,
    )
    .reshape([1, channels, 1, 1]);
    let mut first = 0;
    for_each_input::<B>(set, mean, std, batch_size, device, |x| {
        let n = x.dims()[0];
        let check = |rows: &(Rows, Rows)| -> Result<()> {
            check_finite_from("the feature", set_name, &rows.0, first)?;
            check_finite_from("the logit", set_name, &rows.1, first)
        };
        let passes = match (&ad, perturbation) {
            (Some(ad), Some(p)) => {
                let mut passes = Vec::with_capacity(p.passes);
                for pass in 0..p.passes {
                    let moved = perturb(ad, det, pass, p, &x, &inv_std, layers, set_name)
                        .with_context(|| format!("{name}: input pre-processing on {set_name}"))?;
                    let rows = read(network_outputs(model, moved, layers)?);
                    check(&rows)?;
                    passes.push(rows);
                }
                passes
            }
            _ => {
                let rows = read(network_outputs(model, x, layers)?);
                check(&rows)?;
                vec![rows]
            }
        };
        let outs: Vec<Outputs<'_>> = passes.iter().map(as_outputs).collect();
        visit(&outs).with_context(|| format!("detector {name} on {set_name}"))?;
        first += n;
        Ok(())
    })
}

/// One pass of input pre-processing: `x − noise · sign(∇ₓL) / std`, `L` the detector's
/// loss for `pass` on the network's outputs for `x` (`sign(0) = +1`).
#[allow(clippy::too_many_arguments)]
fn perturb<B: Backend>(
    ad: &Backbone<Autodiff<B>>,
    det: &dyn Detector,
    pass: usize,
    p: Perturbation,
    x: &Tensor<B, 4>,
    inv_std: &Tensor<B, 4>,
    layers: bool,
    set_name: &str,
) -> Result<Tensor<B, 4>> {
    let xa = Tensor::<Autodiff<B>, 4>::from_inner(x.clone()).require_grad();
    let outs = network_outputs(ad, xa.clone(), layers)?;
    let clean = read(outs.iter().map(|t| t.clone().inner()).collect());
    check_finite_from("the feature", set_name, &clean.0, 0)?;
    let OutputGradient { logits, features } = det.output_gradient(pass, as_outputs(&clean))?;
    let device = xa.device();
    let mut loss: Option<Tensor<Autodiff<B>, 1>> = None;
    let mut add = |t: &Tensor<Autodiff<B>, 2>, g: Vec<f32>| {
        let [n, w] = t.dims();
        let g = Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(g, [n, w]), &device);
        let term = (t.clone() * g).sum();
        loss = Some(match loss.take() {
            Some(l) => l + term,
            None => term,
        });
    };
    let mut outs = outs.into_iter();
    let f = outs.next();
    let l = outs.next();
    if !features.is_empty() {
        add(f.as_ref().expect("features"), features);
    }
    if !logits.is_empty() {
        let l =
            l.ok_or_else(|| anyhow!("the detector needs logits and the network has no head"))?;
        add(&l, logits);
    }
    let loss = loss.ok_or_else(|| anyhow!("the detector's loss has no gradient"))?;
    let grads = loss.backward();
    let gx = xa
        .grad(&grads)
        .ok_or_else(|| anyhow!("no gradient reached the input"))?;
    let sign = gx
        .greater_equal_elem(0.0)
        .float()
        .mul_scalar(2.0)
        .sub_scalar(1.0);
    Ok(x.clone() - sign * inv_std.clone().mul_scalar(p.noise))
}

/// The scores of `det` on `set` (named `set_name` in errors): from `rows`, the set's cached
/// penultimate features and logits, for a detector that reads only those; through the
/// network ([`through_network`], normalised as `cfg` says) for the others.
///
/// # Errors
/// As [`through_network`] or [`Detector::score`].
pub fn score_set<B: Backend>(
    model: &Backbone<B>,
    det: &dyn Detector,
    set: &Arc<ImageSet>,
    set_name: &str,
    rows: &(Rows, Rows),
    cfg: &crate::config::ExperimentConfig,
    device: &B::Device,
) -> Result<Vec<f32>> {
    if runs_through_network(det) {
        let (mean, std) = (&cfg.data.augment.mean, &cfg.data.augment.std);
        through_network(
            model,
            det,
            set,
            set_name,
            mean,
            std,
            cfg.eval.batch_size,
            device,
            Collect::Scores,
        )
    } else {
        let (f, l) = rows;
        Ok(det
            .score(&l.values, l.width, Some(&f.values))
            .with_context(|| format!("detector {} on {set_name}", det.name()))?)
    }
}
