//! Vision Transformer (Dosovitskiy et al., ICLR 2021), as timm's `VisionTransformer`
//! (`timm/models/vision_transformer.py`) and DINO's (`facebookresearch/dino`,
//! `vision_transformer.py`), which share one module tree:
//!
//! `patch_embed.proj` (conv, kernel = stride = patch) -> prepend `cls_token` -> add
//! `pos_embed` -> `blocks.i` (pre-norm: `x + attn(norm1(x))`, `x + mlp(norm2(x))`, fused
//! `attn.qkv`, `attn.proj`, `mlp.fc1`/`mlp.fc2` with exact (erf) GELU) -> `norm` -> the CLS
//! token -> `head`.
//!
//! LayerNorm epsilon is 1e-6 in both references (`partial(nn.LayerNorm, eps=1e-6)`);
//! Hugging Face's `ViTModel` configs often say 1e-12, see [`crate::vit::weights`].
//!
//! **Input size.** The position embedding has one entry per patch of the configured
//! `img_size`. Weights trained at another size are resampled when loaded, with the
//! bicubic interpolation timm's `resample_abs_pos_embed` uses ([`resample_pos_embed`]), so
//! a 224-pixel checkpoint fine-tunes at 32 pixels (a 2x2 grid). `forward_features` panics
//! on an input whose size differs from `img_size`: the trainer builds the network for its
//! data's size, so that cannot happen through the CLI.
//!
//! **Partial fine-tuning.** [`VisionTransformer::freeze_before`] stops gradients for the
//! patch embedding, the CLS token, the position embedding and every block before the given
//! one, as GCD/SimGCD/ProtoGCD's `grad_from_block = 11` does for ViT-B/16.

pub mod weights;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};

use crate::error::BackboneError;

/// Configuration of a [`VisionTransformer`].
#[derive(Config, Debug)]
pub struct VitConfig {
    /// Input height and width (square).
    #[config(default = 224)]
    pub img_size: usize,
    /// Patch size.
    #[config(default = 16)]
    pub patch_size: usize,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
    /// Token width (192 tiny, 384 small, 768 base).
    pub embed_dim: usize,
    /// Number of blocks.
    pub depth: usize,
    /// Attention heads.
    pub num_heads: usize,
    /// Hidden width of the MLP relative to `embed_dim`.
    #[config(default = 4)]
    pub mlp_ratio: usize,
    /// Classes of the linear head; 0 for none (DINO backbones).
    pub num_classes: usize,
    /// LayerNorm epsilon.
    #[config(default = 1e-6)]
    pub ln_eps: f64,
}

/// Multi-head self-attention with a fused `qkv` projection.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    qkv: Linear<B>,
    proj: Linear<B>,
    num_heads: usize,
}

/// The two-layer MLP of a block.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// A pre-norm transformer block.
#[derive(Module, Debug)]
pub struct VitBlock<B: Backend> {
    norm1: LayerNorm<B>,
    attn: Attention<B>,
    norm2: LayerNorm<B>,
    mlp: Mlp<B>,
}

/// The patch embedding (timm's `PatchEmbed`, whose convolution is `proj`).
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    proj: Conv2d<B>,
}

/// A Vision Transformer with an optional linear head on the CLS token.
#[derive(Module, Debug)]
pub struct VisionTransformer<B: Backend> {
    patch_embed: PatchEmbed<B>,
    cls_token: Param<Tensor<B, 3>>,
    pos_embed: Param<Tensor<B, 3>>,
    blocks: Vec<VitBlock<B>>,
    norm: LayerNorm<B>,
    head: Option<Linear<B>>,
    img_size: usize,
    patch_size: usize,
}

impl VitConfig {
    /// Checks that the sizes fit together.
    pub fn validate(&self) -> Result<(), BackboneError> {
        if self.patch_size == 0
            || self.img_size == 0
            || !self.img_size.is_multiple_of(self.patch_size)
        {
            return Err(BackboneError::InvalidSpec(format!(
                "ViT img_size ({}) must be a positive multiple of patch_size ({})",
                self.img_size, self.patch_size
            )));
        }
        if self.num_heads == 0 || !self.embed_dim.is_multiple_of(self.num_heads) {
            return Err(BackboneError::InvalidSpec(format!(
                "ViT embed_dim ({}) must be divisible by num_heads ({})",
                self.embed_dim, self.num_heads
            )));
        }
        if self.depth == 0 || self.in_channels == 0 {
            return Err(BackboneError::InvalidSpec(
                "ViT depth and in_channels must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }

    /// Builds the network. Linear layers get PyTorch's default initialisation (through
    /// [`crate::init::reinit`] in the trainer), the CLS token and position embedding
    /// `N(0, 0.02²)`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> VisionTransformer<B> {
        let d = self.embed_dim;
        let hidden = d * self.mlp_ratio;
        let n = self.grid() * self.grid();
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.ln_eps)
                .init(device)
        };
        let blocks = (0..self.depth)
            .map(|_| VitBlock {
                norm1: ln(),
                attn: Attention {
                    qkv: LinearConfig::new(d, 3 * d).init(device),
                    proj: LinearConfig::new(d, d).init(device),
                    num_heads: self.num_heads,
                },
                norm2: ln(),
                mlp: Mlp {
                    fc1: LinearConfig::new(d, hidden).init(device),
                    fc2: LinearConfig::new(hidden, d).init(device),
                },
            })
            .collect();
        let normal = burn::tensor::Distribution::Normal(0.0, 0.02);
        VisionTransformer {
            patch_embed: PatchEmbed {
                proj: Conv2dConfig::new([self.in_channels, d], [self.patch_size; 2])
                    .with_stride([self.patch_size; 2])
                    .init(device),
            },
            cls_token: Param::from_tensor(Tensor::random([1, 1, d], normal, device)),
            pos_embed: Param::from_tensor(Tensor::random([1, n + 1, d], normal, device)),
            blocks,
            norm: ln(),
            head: (self.num_classes > 0)
                .then(|| LinearConfig::new(d, self.num_classes).init(device)),
            img_size: self.img_size,
            patch_size: self.patch_size,
        }
    }
}

impl<B: Backend> Attention<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, n, d] = x.dims();
        let h = self.num_heads;
        let dh = d / h;
        // [b, n, 3d] -> [3, b, h, n, dh], the order of timm's reshape + permute.
        let qkv = self
            .qkv
            .forward(x)
            .reshape([b, n, 3, h, dh])
            .permute([2, 0, 3, 1, 4]);
        let part = |i: usize| {
            qkv.clone()
                .slice([i..i + 1, 0..b, 0..h, 0..n, 0..dh])
                .reshape([b, h, n, dh])
        };
        let (q, k, v) = (part(0), part(1), part(2));
        let scale = (dh as f64).powf(-0.5);
        let attn = softmax(q.mul_scalar(scale).matmul(k.swap_dims(2, 3)), 3);
        let out = attn.matmul(v).swap_dims(1, 2).reshape([b, n, d]);
        self.proj.forward(out)
    }
}

impl<B: Backend> VitBlock<B> {
    fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x));
        let m = self
            .mlp
            .fc2
            .forward(gelu(self.mlp.fc1.forward(self.norm2.forward(x.clone()))));
        x + m
    }
}

impl<B: Backend> VisionTransformer<B> {
    /// Tokens after the final norm, CLS first.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, img_size, img_size]` -> `[batch, 1 + patches, dim]`
    pub fn forward_tokens(&self, x: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, _, hh, ww] = x.dims();
        assert!(
            hh == self.img_size && ww == self.img_size,
            "ViT built for {0}x{0} inputs got {hh}x{ww}; set the model's img_size (the \
             trainer does this from the data)",
            self.img_size
        );
        let t = self.patch_embed.proj.forward(x);
        let [_, d, gh, gw] = t.dims();
        let t = t.reshape([b, d, gh * gw]).swap_dims(1, 2);
        let cls = self.cls_token.val().expand([b, 1, d]);
        let mut x = Tensor::cat(vec![cls, t], 1) + self.pos_embed.val();
        for blk in &self.blocks {
            x = blk.forward(x);
        }
        self.norm.forward(x)
    }

    /// The CLS token after the final norm (timm's `pre_logits`, DINO's output).
    ///
    /// # Shapes
    /// - input `[batch, in_channels, img_size, img_size]` -> `[batch, dim]`
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let t = self.forward_tokens(x);
        let [b, _, d] = t.dims();
        t.slice([0..b, 0..1, 0..d]).reshape([b, d])
    }

    /// Logits from features; the features themselves when the network has no head.
    pub fn forward_head(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        match &self.head {
            Some(h) => h.forward(features),
            None => features,
        }
    }

    /// The linear head (`logits = features · weight + bias`, burn's `[in, out]` layout) or None when the network has none.
    pub fn head_linear(&self) -> Option<&Linear<B>> {
        self.head.as_ref()
    }

    /// Token width.
    pub fn feature_dim(&self) -> usize {
        self.norm.gamma.dims()[0]
    }

    /// Classes of the head (0 without one).
    pub fn num_classes(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.weight.dims()[1])
    }

    /// Number of transformer blocks.
    pub fn depth(&self) -> usize {
        self.blocks.len()
    }

    /// Input size the position embedding is built for.
    pub fn img_size(&self) -> usize {
        self.img_size
    }

    /// Stops gradients for the patch embedding, CLS token, position embedding and blocks
    /// `0..first_trained` (`grad_from_block` in GCD's code); the later blocks, the final
    /// norm and the head keep training.
    pub fn freeze_before(mut self, first_trained: usize) -> Self {
        self.patch_embed = self.patch_embed.no_grad();
        self.cls_token = self.cls_token.set_require_grad(false);
        self.pos_embed = self.pos_embed.set_require_grad(false);
        self.blocks = self
            .blocks
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i < first_trained { b.no_grad() } else { b })
            .collect();
        self
    }
}

/// Maps a burn parameter path to timm's key (the module tree is timm's; burn-store's
/// adapter renames LayerNorm `gamma`/`beta`).
pub fn torch_key(burn_path: &str) -> String {
    burn_path.to_string()
}

/// Cubic convolution kernel with parameter `a` (−0.75 in PyTorch's plain bicubic, −0.5 in
/// its antialiased one, which follows Pillow).
fn cubic(x: f64, a: f64) -> f64 {
    let x = x.abs();
    if x <= 1.0 {
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
    } else {
        0.0
    }
}

/// For each output index along one axis: the source indices and their weights.
type Taps = Vec<Vec<(usize, f64)>>;

/// `F.interpolate(mode="bicubic", align_corners=False, antialias=False)` along one axis:
/// four clamped taps, `a = −0.75`.
fn bicubic_taps(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let src = (o as f64 + 0.5) * scale - 0.5;
            let f = src.floor();
            let t = src - f;
            let base = f as i64;
            let w = [t + 1.0, t, 1.0 - t, 2.0 - t].map(|d| cubic(d, -0.75));
            (0..4)
                .map(|j| {
                    let idx = (base - 1 + j as i64).clamp(0, n_in as i64 - 1) as usize;
                    (idx, w[j])
                })
                .collect()
        })
        .collect()
}

/// `F.interpolate(mode="bicubic", align_corners=False, antialias=True)` along one axis
/// (ATen's `_upsample_bicubic2d_aa`): the kernel widened by the scale when downsampling,
/// `a = −0.5`, weights normalised to sum 1.
fn bicubic_aa_taps(n_in: usize, n_out: usize) -> Taps {
    let scale = n_in as f64 / n_out as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..n_out)
        .map(|o| {
            let center = scale * (o as f64 + 0.5);
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(n_in as i64) as usize;
            let w: Vec<f64> = (xmin..xmax)
                .map(|j| cubic((j as f64 - center + 0.5) * invscale, -0.5))
                .collect();
            let total: f64 = w.iter().sum();
            (xmin..xmax)
                .zip(w)
                .map(|(j, wj)| (j, if total != 0.0 { wj / total } else { 0.0 }))
                .collect()
        })
        .collect()
}

/// How [`resample_pos_embed`] interpolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PosEmbedInterp {
    /// Plain bicubic (`antialias=False`), as DINO's `interpolate_pos_encoding`.
    Bicubic,
    /// Antialiased bicubic (`antialias=True`), timm's default in `resample_abs_pos_embed`.
    BicubicAntialias,
}

/// Resamples a position embedding `[1, prefix + g_in², dim]` (row-major grid) to
/// `[1, prefix + g_out², dim]`, leaving the `prefix` (CLS) tokens as they are.
pub fn resample_pos_embed(
    values: &[f32],
    dim: usize,
    prefix: usize,
    g_in: usize,
    g_out: usize,
    interp: PosEmbedInterp,
) -> Vec<f32> {
    assert_eq!(values.len(), (prefix + g_in * g_in) * dim);
    let mut out = values[..prefix * dim].to_vec();
    let grid = &values[prefix * dim..];
    let taps = match interp {
        PosEmbedInterp::Bicubic => bicubic_taps(g_in, g_out),
        PosEmbedInterp::BicubicAntialias => bicubic_aa_taps(g_in, g_out),
    };
    // Separable, horizontal pass first (as ATen), accumulated in f64.
    let mut horiz = vec![0f64; g_in * g_out * dim];
    for iy in 0..g_in {
        for (ox, tx) in taps.iter().enumerate() {
            for c in 0..dim {
                horiz[(iy * g_out + ox) * dim + c] = tx
                    .iter()
                    .map(|&(ix, wx)| wx * grid[(iy * g_in + ix) * dim + c] as f64)
                    .sum();
            }
        }
    }
    let mut res = vec![0f32; g_out * g_out * dim];
    for (oy, ty) in taps.iter().enumerate() {
        for ox in 0..g_out {
            for c in 0..dim {
                let v: f64 = ty
                    .iter()
                    .map(|&(iy, wy)| wy * horiz[(iy * g_out + ox) * dim + c])
                    .sum();
                res[(oy * g_out + ox) * dim + c] = v as f32;
            }
        }
    }
    out.extend(res);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn parameter_counts_match_timm() {
        // timm 1.x: vit_tiny_patch16_224 (1000 classes) has 5,717,416 parameters,
        // vit_base_patch16_224 86,567,656.
        let dev = Default::default();
        let tiny = VitConfig::new(192, 12, 3, 1000).init::<Flex>(&dev);
        assert_eq!(tiny.num_params(), 5_717_416);
    }

    #[test]
    fn identity_resample_is_exact() {
        let v: Vec<f32> = (0..(1 + 9) * 2).map(|i| i as f32 * 0.5).collect();
        assert_eq!(
            resample_pos_embed(&v, 2, 1, 3, 3, PosEmbedInterp::Bicubic),
            v
        );
    }

    #[test]
    fn frozen_blocks_get_no_gradient() {
        use burn::backend::Autodiff;
        type AB = Autodiff<Flex>;
        let dev = Default::default();
        let m = VitConfig::new(8, 3, 2, 4)
            .with_img_size(16)
            .with_patch_size(8)
            .init::<AB>(&dev)
            .freeze_before(2);
        let x = Tensor::<AB, 4>::ones([1, 3, 16, 16], &dev);
        let loss = m.forward_head(m.forward_features(x)).sum();
        let grads = loss.backward();
        assert!(m.blocks[0].attn.qkv.weight.grad(&grads).is_none());
        assert!(m.pos_embed.grad(&grads).is_none());
        assert!(m.blocks[2].attn.qkv.weight.grad(&grads).is_some());
    }
}
