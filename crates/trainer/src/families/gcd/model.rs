//! The GCD network: the backbone, SimGCD's `DINOHead` projector and a cosine prototype
//! classifier (SimGCD's weight-normed `last_layer` with the gain fixed at 1 = ProtoGCD's
//! prototypes) over the L2-normalised backbone features.

use std::sync::Arc;

use anyhow::Result;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;
use unseen_backbones::Backbone;
use unseen_data::{ImageSet, Rng};

use super::config::GcdSection;
use super::GcdData;
use crate::config::ExperimentConfig;
use crate::run::infer::{infer, Rows};

/// SimGCD's `DINOHead.mlp`: three linear layers with GELU between them.
#[derive(Module, Debug)]
pub struct Projector<B: Backend> {
    /// `mlp.0`: `d -> hidden`.
    pub fc1: Linear<B>,
    /// `mlp.2`: `hidden -> hidden`.
    pub fc2: Linear<B>,
    /// `mlp.4`: `hidden -> proj_dim`.
    pub fc3: Linear<B>,
}

/// A `d_in -> d_out` linear layer initialised as `DINOHead._init_weights` does:
/// `trunc_normal_(weight, std=0.02)` (its cut at ±2 is 100 standard deviations out, so a
/// plain normal) and a zero bias.
fn dino_linear<B: Backend>(d_in: usize, d_out: usize, rng: &mut Rng, dev: &B::Device) -> Linear<B> {
    let mut layer = LinearConfig::new(d_in, d_out).init(dev);
    // burn's layout is [in, out]; every entry is an independent draw, so the order of the
    // draws only has to be fixed, not PyTorch's.
    let w: Vec<f32> = (0..d_in * d_out)
        .map(|_| (0.02 * rng.normal()) as f32)
        .collect();
    layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), dev));
    layer.bias = Some(Param::from_tensor(Tensor::zeros([d_out], dev)));
    layer
}

impl<B: Backend> Projector<B> {
    fn new(d: usize, hidden: usize, out: usize, rng: &mut Rng, dev: &B::Device) -> Self {
        Self {
            fc1: dino_linear(d, hidden, rng, dev),
            fc2: dino_linear(hidden, hidden, rng, dev),
            fc3: dino_linear(hidden, out, rng, dev),
        }
    }

    /// The projection before normalisation (`DINOHead`'s `x_proj`).
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc3
            .forward(gelu(self.fc2.forward(gelu(self.fc1.forward(x)))))
    }
}

/// Backbone, projector and prototype classifier.
#[derive(Module, Debug)]
pub struct GcdModel<B: Backend> {
    /// The feature extractor (its own linear head is not used).
    pub backbone: Backbone<B>,
    /// Contrastive projector.
    pub projector: Projector<B>,
    /// Class prototypes `[K, feature_dim]` (normalised in the forward pass).
    pub prototypes: Param<Tensor<B, 2>>,
}

/// Rows scaled to unit L2 norm.
pub fn l2n<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let n = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / n
}

/// What one forward pass gives.
pub struct GcdForward<B: Backend> {
    /// Backbone features `[n, d]`.
    pub features: Tensor<B, 2>,
    /// L2-normalised projections `[n, p]`.
    pub proj: Tensor<B, 2>,
    /// Cosine logits `[n, K]` (in `[-1, 1]`).
    pub logits: Tensor<B, 2>,
}

impl<B: Backend> GcdModel<B> {
    /// Runs the three parts.
    pub fn forward(&self, x: Tensor<B, 4>) -> GcdForward<B> {
        let features = self.backbone.forward_features(x);
        let proj = l2n(self.projector.forward(features.clone()));
        let logits = l2n(features.clone()).matmul(l2n(self.prototypes.val()).transpose());
        GcdForward {
            features,
            proj,
            logits,
        }
    }
}

/// Builds the model: seeded backbone (plus `model.weights`), projector and prototypes.
pub fn build_model<B: Backend>(
    cfg: &ExperimentConfig,
    sec: &GcdSection,
    k: usize,
    img: usize,
    device: &B::Device,
    load_weights: bool,
) -> Result<GcdModel<B>> {
    let mut spec = cfg.model.clone();
    if !load_weights {
        spec.weights = None;
    }
    // The backbone's own linear head is never used here: weights (a file, or another run's
    // backbone with `run:`) need not bring one.
    for head in ["fc", "head"] {
        if !spec.allow_partial.iter().any(|p| p == head) {
            spec.allow_partial.push(head.into());
        }
    }
    let backbone =
        crate::families::build::build_backbone::<B>(&spec, k, img, cfg.seed, device, false)?;
    let d = backbone.feature_dim();
    let mut rng = Rng::stream(cfg.seed, "gcd-heads");
    let projector = Projector::new(d, sec.proj_hidden, sec.proj_dim, &mut rng, device);
    // The prototypes are the `weight_v` of the official weight-normalised `nn.Linear(d, K)`
    // (`prototype_layer` / `last_layer`), created after `_init_weights` ran and so left at
    // PyTorch's default `U(±1/√d)`: rows of norm about 0.58. The scale matters although the
    // forward pass normalises them: the gradient reaching `v` through `v/‖v‖` shrinks as
    // 1/‖v‖, so SGD turns a prototype by about lr·‖∂L/∂ĉ‖/‖v‖² per step. Unit-normal rows
    // (norm √d ≈ 11 at d = 128) turned ~370 times slower than the reference's and the new
    // classes' prototypes never left their random directions.
    let protos = initial_prototypes(k, d, &mut rng);
    let prototypes = Param::from_tensor(Tensor::from_data(TensorData::new(protos, [k, d]), device));
    Ok(GcdModel {
        backbone,
        projector,
        prototypes,
    })
}

/// `k` prototypes of width `d` as PyTorch's default `nn.Linear(d, k)` weight: `U(±1/√d)`
/// (rows of norm about `1/√3`), row-major `[k, d]`.
fn initial_prototypes(k: usize, d: usize, rng: &mut Rng) -> Vec<f32> {
    let bound = 1.0 / (d as f64).sqrt();
    (0..k * d)
        .map(|_| (bound * (2.0 * rng.next_f64() - 1.0)) as f32)
        .collect()
}

/// Labelled class means of the backbone features, written into the first `old` prototypes
/// (each scaled to the initial prototypes' norm, 1/√3).
pub fn init_prototypes<B: Backend>(
    model: GcdModel<B>,
    data: &GcdData,
    cfg: &ExperimentConfig,
    device: &B::Device,
) -> Result<GcdModel<B>> {
    let lab = Arc::new(data.split.labelled.clone());
    let out = features_logits(&model, &lab, cfg, 256, device)?.0;
    let k = data.split.num_classes();
    let d = out.width;
    let mut protos = model
        .prototypes
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let mut sums = vec![0f64; k * d];
    let mut counts = vec![0usize; k];
    for (i, &y) in lab.labels.iter().enumerate() {
        let y = y as usize;
        counts[y] += 1;
        for j in 0..d {
            sums[y * d + j] += out.values[i * d + j] as f64;
        }
    }
    // The means are rescaled to the norm the random rows start with (`√(d/3)·(1/√d)`, PyTorch's
    // `U(±1/√d)`), so that old and new prototypes turn at the same rate under SGD (see
    // `build_model`); the official code copies its means from a file whose scale it does not
    // record.
    let target = (1.0f64 / 3.0).sqrt();
    for c in 0..k {
        if counts[c] > 0 {
            let mean: Vec<f64> = (0..d).map(|j| sums[c * d + j] / counts[c] as f64).collect();
            let norm = mean.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            for j in 0..d {
                protos[c * d + j] = (mean[j] * target / norm) as f32;
            }
        }
    }
    let t = Tensor::from_data(TensorData::new(protos, [k, d]), device);
    Ok(GcdModel {
        prototypes: Param::from_tensor(t),
        ..model
    })
}

/// The backbone features `[n, d]` and cosine logits `[n, K]` of `model` over `set` (the one
/// inference path, [`crate::run::infer`]).
///
/// # Errors
/// A zero batch size.
pub fn features_logits<B: Backend>(
    model: &GcdModel<B>,
    set: &Arc<ImageSet>,
    cfg: &ExperimentConfig,
    batch: usize,
    device: &B::Device,
) -> Result<(Rows, Rows)> {
    let aug = &cfg.data.augment;
    let mut rows = infer(set, &aug.mean, &aug.std, batch, device, |x| {
        let f = model.forward(x);
        vec![f.features, f.logits]
    })?;
    let logits = rows.pop().unwrap_or_default();
    Ok((rows.pop().unwrap_or_default(), logits))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    /// The heads start as the official `DINOHead`: projector weights `N(0, 0.02²)` with zero
    /// biases, prototypes `U(±1/√d)`. Expected values: a row of `d` draws from `U(±b)`
    /// has `E‖v‖² = d·b²/3 = 1/3`, so norms near `0.577`; the sample standard deviation of
    /// 128·256 normal draws is within 1% of 0.02 (its relative error is about
    /// `1/√(2n) = 0.4%`).
    #[test]
    fn heads_start_at_the_official_scale() {
        let mut rng = Rng::stream(0, "gcd-heads");
        let (k, d) = (10, 128);
        let p = initial_prototypes(k, d, &mut rng);
        for row in p.chunks_exact(d) {
            let n = row
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((0.5..0.66).contains(&n), "prototype norm {n}");
        }
        let proj = Projector::<Flex>::new(d, 256, 64, &mut rng, &Default::default());
        let w = proj.fc1.weight.val().into_data().to_vec::<f32>().unwrap();
        let sd = (w.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        assert!((sd - 0.02).abs() < 2e-4, "projector std {sd}");
        let b = proj
            .fc3
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(b.iter().all(|&v| v == 0.0));
    }
}
