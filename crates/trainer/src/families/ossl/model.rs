//! The open-set SSL network: the backbone (its head is the closed-set classifier over the
//! `K` seen classes) and, for IOMatch, IOMatchNet's heads.

use anyhow::{bail, Result};
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use unseen_backbones::Backbone;
use unseen_data::Rng;

use crate::config::ExperimentConfig;

/// IOMatch's heads on the backbone features `d` (`IOMatchNet`, `iomatch.py`): the projector
/// `mlp_proj = Linear(d, d) → ReLU → Linear(d, 128)`, and on the **projection** both the
/// multi-binary one-vs-all head `mb_classifiers = Linear(128, 2K, bias=False)` and the
/// open-set head `openset_classifier = Linear(128, K + 1)`. The closed-set head is the
/// backbone's own linear head on the features (`backbone(feat, only_fc=True)`).
///
/// Initialisation as `IOMatchNet.__init__`: PyTorch's default `U(±1/√fan_in)` for the
/// projector, `xavier_normal_` for both classifiers' weights, a zero bias for the open-set
/// head; drawn from a seeded generator.
#[derive(Module, Debug)]
pub struct IoMatchHeads<B: Backend> {
    /// `mlp_proj[0]`: `d -> d`.
    pub proj1: Linear<B>,
    /// `mlp_proj[2]`: `d -> proj_dim`.
    pub proj2: Linear<B>,
    /// `mb_classifiers`: `proj_dim -> 2K`, no bias; columns `0..K` are the "outlier" and
    /// `K..2K` the "inlier" logits (the reference's `view(n, 2, K)`).
    pub mb: Linear<B>,
    /// `openset_classifier`: `proj_dim -> K + 1`.
    pub open: Linear<B>,
}

fn linear_from<B: Backend>(
    d_in: usize,
    d_out: usize,
    weight: Vec<f32>,
    bias: Option<Vec<f32>>,
    device: &B::Device,
) -> Linear<B> {
    let mut l = LinearConfig::new(d_in, d_out)
        .with_bias(bias.is_some())
        .init::<B>(device);
    l.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight, [d_in, d_out]),
        device,
    ));
    l.bias =
        bias.map(|b| Param::from_tensor(Tensor::from_data(TensorData::new(b, [d_out]), device)));
    l
}

impl<B: Backend> IoMatchHeads<B> {
    /// Heads for features of size `d`, `k` seen classes and a `proj_dim` projection,
    /// initialised from `rng`.
    pub fn new(d: usize, k: usize, proj_dim: usize, rng: &mut Rng, device: &B::Device) -> Self {
        let mut uniform = |fan_in: usize, n: usize| -> Vec<f32> {
            let bound = 1.0 / (fan_in as f64).sqrt();
            (0..n)
                .map(|_| ((rng.next_f64() * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        let p1w = uniform(d, d * d);
        let p1b = uniform(d, d);
        let p2w = uniform(d, d * proj_dim);
        let p2b = uniform(d, proj_dim);
        let mut xavier = |fan_in: usize, fan_out: usize| -> Vec<f32> {
            let std = (2.0 / (fan_in + fan_out) as f64).sqrt();
            (0..fan_in * fan_out)
                .map(|_| (rng.normal() * std) as f32)
                .collect()
        };
        let mbw = xavier(proj_dim, 2 * k);
        let openw = xavier(proj_dim, k + 1);
        Self {
            proj1: linear_from(d, d, p1w, Some(p1b), device),
            proj2: linear_from(d, proj_dim, p2w, Some(p2b), device),
            mb: linear_from(proj_dim, 2 * k, mbw, None, device),
            open: linear_from(proj_dim, k + 1, openw, Some(vec![0.0; k + 1]), device),
        }
    }

    /// The heads under `IOMatchNet`'s parameter names, in PyTorch's layouts (`Linear`
    /// weights `[out, in]`), f32: `mlp_proj.0.{weight,bias}`, `mlp_proj.2.{weight,bias}`,
    /// `mb_classifiers.weight`, `openset_classifier.{weight,bias}`.
    pub fn torch_state_dict(&self) -> unseen_backbones::weights::TensorMap {
        use crate::run::export::tensor_entry as entry;
        let mut out = unseen_backbones::weights::TensorMap::new();
        for (name, l) in [
            ("mlp_proj.0", &self.proj1),
            ("mlp_proj.2", &self.proj2),
            ("mb_classifiers", &self.mb),
            ("openset_classifier", &self.open),
        ] {
            out.insert(format!("{name}.weight"), entry(l.weight.val().transpose()));
            if let Some(b) = &l.bias {
                out.insert(format!("{name}.bias"), entry(b.val()));
            }
        }
        out
    }

    /// `(one-vs-all logits [n, 2K], open-set logits [n, K + 1])` of features `[n, d]`.
    pub fn forward(&self, features: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let proj = self.proj2.forward(relu(self.proj1.forward(features)));
        (self.mb.forward(proj.clone()), self.open.forward(proj))
    }
}

/// The network of an OSSL run: the backbone (its head is the closed-set classifier over
/// the `K` seen classes) and, for IOMatch, the [`IoMatchHeads`].
#[derive(Module, Debug)]
pub struct OsslModel<B: Backend> {
    /// Backbone with a `K`-class head.
    pub backbone: Backbone<B>,
    /// IOMatch's projector, one-vs-all and open-set heads (`None` for FixMatch).
    pub heads: Option<IoMatchHeads<B>>,
}

/// What [`OsslModel::forward`] returns.
#[derive(Debug, Clone)]
pub struct OsslOutput<B: Backend> {
    /// Closed-set logits `[n, K]`.
    pub logits: Tensor<B, 2>,
    /// One-vs-all logits `[n, 2K]` (IOMatch).
    pub ova: Option<Tensor<B, 2>>,
    /// Open-set logits `[n, K + 1]` (IOMatch).
    pub open: Option<Tensor<B, 2>>,
}

impl<B: Backend> OsslModel<B> {
    /// Every head's logits for images `[n, c, h, w]`.
    pub fn forward(&self, x: Tensor<B, 4>) -> OsslOutput<B> {
        let (features, logits) = self.backbone.forward(x);
        let (ova, open) = match &self.heads {
            Some(h) => {
                let (ova, open) = h.forward(features);
                (Some(ova), Some(open))
            }
            None => (None, None),
        };
        OsslOutput { logits, ova, open }
    }

    /// Number of seen classes `K`.
    pub fn num_classes(&self) -> usize {
        self.backbone.num_classes()
    }
}

/// Builds the network of a run: the backbone (seeded initialisation, then `model.weights`
/// when `with_weights`) with a `k`-class head, plus IOMatch's heads with a `heads`-sized
/// projection when the method asks for them.
///
/// # Errors
/// `model.num_classes` disagreeing with `k`, or bad weights.
pub fn build_model<B: Backend>(
    cfg: &ExperimentConfig,
    heads: Option<usize>,
    k: usize,
    img_size: usize,
    device: &B::Device,
    with_weights: bool,
) -> Result<OsslModel<B>> {
    if let Some(n) = cfg.model.num_classes {
        if n != k {
            bail!(
                "model.num_classes = {n} but [ossl] has {k} seen classes; the closed-set head \
                 has one output per seen class (remove the key)"
            );
        }
    }
    let mut spec = cfg.model.clone();
    if !with_weights {
        spec.weights = None;
    }
    let backbone = crate::families::build::build_backbone(
        &spec,
        k,
        img_size,
        cfg.seed,
        device,
        !with_weights,
    )?;
    let heads = heads.map(|proj_dim| {
        let mut rng = Rng::stream(cfg.seed, "ossl-heads");
        IoMatchHeads::new(backbone.feature_dim(), k, proj_dim, &mut rng, device)
    });
    Ok(OsslModel { backbone, heads })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type TB = Flex;

    fn floats<B: Backend, M: Module<B>>(m: &M) -> Vec<f32> {
        let mut c = crate::run::ema::CollectFloats(Vec::new());
        m.visit(&mut c);
        c.0.into_iter()
            .flat_map(|t| t.into_data().to_vec::<f32>().unwrap())
            .collect()
    }

    #[test]
    fn heads_follow_iomatchnet() {
        let device = Default::default();
        let mut rng = Rng::new(3);
        let h = IoMatchHeads::<TB>::new(16, 6, 8, &mut rng, &device);
        assert_eq!(h.proj1.weight.val().dims(), [16, 16]);
        assert_eq!(h.proj2.weight.val().dims(), [16, 8]);
        assert_eq!(h.mb.weight.val().dims(), [8, 12]);
        assert!(h.mb.bias.is_none());
        assert_eq!(h.open.weight.val().dims(), [8, 7]);
        let bias = h
            .open
            .bias
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(bias, vec![0.0; 7]);
        let (ova, open) = h.forward(Tensor::ones([5, 16], &device));
        assert_eq!((ova.dims(), open.dims()), ([5, 12], [5, 7]));
        // Seeded: same generator state, same weights.
        let again = IoMatchHeads::<TB>::new(16, 6, 8, &mut Rng::new(3), &device);
        assert_eq!(floats(&h), floats(&again));
    }
}
