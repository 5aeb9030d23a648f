//! Wide residual networks (Zagoruyko & Komodakis, BMVC 2016, "Wide Residual Networks").
//!
//! Two flavours, because the papers we reproduce train two different networks under the
//! same name:
//! - [`WrnStyle::Oe`]: `CIFAR/models/wrn.py` of hendrycks/outlier-exposure (also
//!   wetliu/energy_ood), used by OE, energy-bounded OE and MixOE's CIFAR runs: convolutions
//!   without bias, PyTorch's default BatchNorm (`eps = 1e-5`, `momentum = 0.1`), ReLU.
//! - [`WrnStyle::Usb`]: `semilearn/nets/wrn/wrn.py` of microsoft/Semi-supervised-learning
//!   (and nukezil/IOMatch, which vendors it), used by FixMatch and IOMatch: convolutions
//!   *with* bias, BatchNorm `eps = 1e-3`, `momentum = 0.001`, LeakyReLU(0.1). USB's
//!   `activate_before_residual` argument is stored but never read by its `forward`, so
//!   both flavours compute the same graph apart from these constants.
//!
//! The block, in both files: a pre-activation basic block. When the input and output widths
//! differ the *input itself* is replaced by `act(bn1(x))` and the shortcut is a 1x1
//! convolution of that; otherwise `act(bn1(x))` only feeds `conv1` and the shortcut is the
//! identity. Module names follow the reference (`conv1`, `block1.layer.0.bn1`,
//! `block1.layer.0.convShortcut`, `bn1`, `fc`), so [`torch_key`] only renames
//! `conv_shortcut`.
//!
//! Widths: `16, 16k, 32k, 64k` for widen factor `k`, `(depth − 4) / 6` blocks per stage,
//! strides 1, 2, 2, global average pooling (the OE file's `avg_pool2d(8)` is global at
//! 32x32; we pool globally at every size).

pub mod weights;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{leaky_relu, relu};

use crate::error::BackboneError;
use crate::norm::{BatchNorm, BatchNormConfig};

/// Which reference implementation a [`WideResNet`] follows (see the module docs).
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum WrnStyle {
    /// hendrycks/outlier-exposure: no conv bias, BN eps 1e-5 / momentum 0.1, ReLU.
    Oe,
    /// USB / IOMatch: conv bias, BN eps 1e-3 / momentum 0.001, LeakyReLU(0.1).
    Usb,
}

impl WrnStyle {
    fn conv_bias(self) -> bool {
        matches!(self, WrnStyle::Usb)
    }
}

/// Configuration of a [`WideResNet`].
#[derive(Config, Debug)]
pub struct WrnConfig {
    /// Total depth; `(depth − 4)` must be divisible by 6 (28, 40, ...).
    pub depth: usize,
    /// Widen factor `k`.
    pub widen_factor: usize,
    /// Classes of the linear head.
    pub num_classes: usize,
    /// Reference flavour.
    #[config(default = "WrnStyle::Oe")]
    pub style: WrnStyle,
    /// Input channels.
    #[config(default = 3)]
    pub in_channels: usize,
}

/// One pre-activation block.
#[derive(Module, Debug)]
pub struct WrnBlock<B: Backend> {
    bn1: BatchNorm<B>,
    conv1: Conv2d<B>,
    bn2: BatchNorm<B>,
    conv2: Conv2d<B>,
    conv_shortcut: Option<Conv2d<B>>,
    leaky: bool,
}

/// A stage: the reference's `NetworkBlock`, whose blocks live in `.layer`.
#[derive(Module, Debug)]
pub struct NetworkBlock<B: Backend> {
    layer: Vec<WrnBlock<B>>,
}

/// A wide residual network.
#[derive(Module, Debug)]
pub struct WideResNet<B: Backend> {
    conv1: Conv2d<B>,
    block1: NetworkBlock<B>,
    block2: NetworkBlock<B>,
    block3: NetworkBlock<B>,
    bn1: BatchNorm<B>,
    fc: Linear<B>,
    leaky: bool,
}

fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    bias: bool,
    dev: &B::Device,
) -> Conv2d<B> {
    let pad = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(bias)
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(dev)
}

fn bn<B: Backend>(style: WrnStyle, ch: usize, dev: &B::Device) -> BatchNorm<B> {
    match style {
        WrnStyle::Oe => BatchNormConfig::new(ch).init(dev),
        WrnStyle::Usb => BatchNormConfig::new(ch)
            .with_epsilon(1e-3)
            .with_momentum(1e-3)
            .init(dev),
    }
}

/// `[batch, c, h, w]` averaged over its positions -> `[batch, c]`.
fn spatial_mean<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 2> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c])
}

fn act<B: Backend, const D: usize>(x: Tensor<B, D>, leaky: bool) -> Tensor<B, D> {
    if leaky {
        leaky_relu(x, 0.1)
    } else {
        relu(x)
    }
}

impl<B: Backend> WrnBlock<B> {
    fn new(style: WrnStyle, cin: usize, cout: usize, stride: usize, dev: &B::Device) -> Self {
        let bias = style.conv_bias();
        Self {
            bn1: bn(style, cin, dev),
            conv1: conv(cin, cout, 3, stride, bias, dev),
            bn2: bn(style, cout, dev),
            conv2: conv(cout, cout, 3, 1, bias, dev),
            conv_shortcut: (cin != cout).then(|| conv(cin, cout, 1, stride, bias, dev)),
            leaky: matches!(style, WrnStyle::Usb),
        }
    }

    /// # Shapes
    /// - input `[batch, in, h, w]` -> `[batch, out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let pre = act(self.bn1.forward(x.clone()), self.leaky);
        match &self.conv_shortcut {
            // Widths differ: the activated input replaces x for both branches.
            Some(sc) => {
                let out = act(
                    self.bn2.forward(self.conv1.forward(pre.clone())),
                    self.leaky,
                );
                sc.forward(pre) + self.conv2.forward(out)
            }
            None => {
                let out = act(self.bn2.forward(self.conv1.forward(pre)), self.leaky);
                x + self.conv2.forward(out)
            }
        }
    }
}

impl WrnConfig {
    /// Checks the depth and sizes.
    pub fn validate(&self) -> Result<(), BackboneError> {
        if self.depth < 10 || !(self.depth - 4).is_multiple_of(6) {
            return Err(BackboneError::InvalidSpec(format!(
                "WideResNet depth must be 6n+4 with n >= 1 (10, 16, 28, 40, ...), got {}",
                self.depth
            )));
        }
        if self.widen_factor == 0 || self.num_classes == 0 || self.in_channels == 0 {
            return Err(BackboneError::InvalidSpec(
                "WideResNet widen_factor, num_classes and in_channels must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Builds the network (Kaiming-normal fan-out convolutions, BatchNorm 1/0, PyTorch's
    /// default linear initialisation).
    pub fn init<B: Backend>(&self, device: &B::Device) -> WideResNet<B> {
        let k = self.widen_factor;
        let n = (self.depth - 4) / 6;
        let ch = [16, 16 * k, 32 * k, 64 * k];
        let style = self.style;
        let stage = |cin: usize, cout: usize, stride: usize| NetworkBlock {
            layer: (0..n)
                .map(|i| {
                    let (ci, s) = if i == 0 { (cin, stride) } else { (cout, 1) };
                    WrnBlock::new(style, ci, cout, s, device)
                })
                .collect(),
        };
        WideResNet {
            conv1: conv(self.in_channels, ch[0], 3, 1, style.conv_bias(), device),
            block1: stage(ch[0], ch[1], 1),
            block2: stage(ch[1], ch[2], 2),
            block3: stage(ch[2], ch[3], 2),
            bn1: bn(style, ch[3], device),
            fc: LinearConfig::new(ch[3], self.num_classes).init(device),
            leaky: matches!(style, WrnStyle::Usb),
        }
    }
}

impl<B: Backend> WideResNet<B> {
    /// Pooled features after the final BatchNorm and activation.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, h, w]` -> `[batch, 64·k]`
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_taps(x, None)
    }

    /// The first convolution's output, the first two stages' outputs and the penultimate
    /// features, each averaged over its positions (the taps of Lee et al.'s feature
    /// ensemble).
    ///
    /// # Shapes
    /// - input `[batch, in_channels, h, w]` -> 4 x `[batch, channels]`, widths
    ///   [`WideResNet::layer_widths`]
    pub fn forward_layers(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 2>> {
        let mut taps = Vec::with_capacity(4);
        let last = self.forward_taps(x, Some(&mut taps));
        taps.push(last);
        taps
    }

    /// The widths of [`WideResNet::forward_layers`]' outputs.
    pub fn layer_widths(&self) -> Vec<usize> {
        let out =
            |stage: &NetworkBlock<B>| stage.layer.last().map_or(0, |b| b.conv2.weight.dims()[0]);
        vec![
            self.conv1.weight.dims()[0],
            out(&self.block1),
            out(&self.block2),
            self.feature_dim(),
        ]
    }

    /// Makes every BatchNorm normalise with its running statistics, under autodiff too
    /// ([`BatchNorm::use_running_stats`]): for gradients through a network in inference
    /// mode.
    pub fn use_running_batchnorm(mut self) -> Self {
        self.bn1.use_running_stats = true;
        for blk in self
            .block1
            .layer
            .iter_mut()
            .chain(&mut self.block2.layer)
            .chain(&mut self.block3.layer)
        {
            blk.bn1.use_running_stats = true;
            blk.bn2.use_running_stats = true;
        }
        self
    }

    /// The penultimate features; with `taps`, the pooled outputs of the first convolution
    /// and of the first two stages are pushed there on the way.
    fn forward_taps(
        &self,
        x: Tensor<B, 4>,
        mut taps: Option<&mut Vec<Tensor<B, 2>>>,
    ) -> Tensor<B, 2> {
        let mut x = self.conv1.forward(x);
        for stage in [&self.block1, &self.block2, &self.block3] {
            if let Some(t) = taps.as_deref_mut() {
                t.push(spatial_mean(x.clone()));
            }
            for blk in &stage.layer {
                x = blk.forward(x);
            }
        }
        spatial_mean(act(self.bn1.forward(x), self.leaky))
    }

    /// Logits from features.
    pub fn forward_head(&self, features: Tensor<B, 2>) -> Tensor<B, 2> {
        self.fc.forward(features)
    }

    /// The linear head (`logits = features · weight + bias`, burn's `[in, out]` layout).
    pub fn head_linear(&self) -> Option<&Linear<B>> {
        Some(&self.fc)
    }

    /// Length of the feature vector.
    pub fn feature_dim(&self) -> usize {
        self.fc.weight.dims()[0]
    }

    /// Number of classes of the head.
    pub fn num_classes(&self) -> usize {
        self.fc.weight.dims()[1]
    }
}

/// Maps a burn parameter path of a [`WideResNet`] to the reference state-dict key (only
/// `conv_shortcut` is renamed to the reference's `convShortcut`).
pub fn torch_key(burn_path: &str) -> String {
    burn_path.replace(".conv_shortcut.", ".convShortcut.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn parameter_counts_match_the_references() {
        // PyTorch parameters: OE WideResNet(28, 10, widen_factor=2) 1,467,610; USB
        // wrn_28_2(num_classes=10) 1,469,642 (conv biases). burn's `num_params` also counts
        // the BatchNorm running mean and variance: + 2 x 1,808 BN channels = + 3,616.
        let dev = Default::default();
        let oe = WrnConfig::new(28, 2, 10).init::<Flex>(&dev);
        assert_eq!(oe.num_params(), 1_467_610 + 3_616);
        let usb = WrnConfig::new(28, 2, 10)
            .with_style(WrnStyle::Usb)
            .init::<Flex>(&dev);
        assert_eq!(usb.num_params(), 1_469_642 + 3_616);
        let x = Tensor::<Flex, 4>::zeros([2, 3, 32, 32], &dev);
        assert_eq!(oe.forward_features(x).dims(), [2, 128]);
    }

    #[test]
    fn bad_depth_is_an_error() {
        let e = WrnConfig::new(27, 2, 10).validate().unwrap_err();
        assert!(e.to_string().contains("27"), "{e}");
    }
}
