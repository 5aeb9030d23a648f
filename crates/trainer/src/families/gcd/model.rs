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

impl<B: Backend> Projector<B> {
    fn new(d: usize, hidden: usize, out: usize, dev: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(d, hidden).init(dev),
            fc2: LinearConfig::new(hidden, hidden).init(dev),
            fc3: LinearConfig::new(hidden, out).init(dev),
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
    let backbone = crate::run::build::build_backbone::<B>(&spec, k, img, cfg.seed, device, false)?;
    let d = backbone.feature_dim();
    let mut rng = Rng::stream(cfg.seed, "gcd-heads");
    let projector = unseen_backbones::init::reinit(
        Projector::new(d, sec.proj_hidden, sec.proj_dim, device),
        &mut || rng.next_f64(),
    );
    let protos: Vec<f32> = (0..k * d).map(|_| rng.normal() as f32).collect();
    let prototypes = Param::from_tensor(Tensor::from_data(TensorData::new(protos, [k, d]), device));
    Ok(GcdModel {
        backbone,
        projector,
        prototypes,
    })
}

/// Labelled class means of the backbone features, written into the first `old` prototypes.
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
    for c in 0..k {
        if counts[c] > 0 {
            for j in 0..d {
                protos[c * d + j] = (sums[c * d + j] / counts[c] as f64) as f32;
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
