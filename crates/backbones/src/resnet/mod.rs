//! ResNet (He et al., CVPR 2016, "Deep Residual Learning for Image Recognition").
//!
//! The module tree mirrors torchvision's `torchvision/models/resnet.py` (`conv1`, `bn1`,
//! `layer1.0.conv1`, `layer1.0.downsample.{0,1}`, `fc`), so exported weights load into
//! torchvision's `resnet18` with `load_state_dict(strict=True)` after the key map in
//! [`torch_key`]. Two stems:
//! - [`Stem::ImageNet`]: 7x7 stride-2 convolution + 3x3 stride-2 max-pool (torchvision);
//! - [`Stem::Cifar`]: 3x3 stride-1 convolution, no max-pool — the variant every OOD, GCD and
//!   open-set paper trains on 32x32 inputs (e.g. the OpenOOD `resnet18_32x32`); in
//!   torchvision terms: `model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)`,
//!   `model.maxpool = nn.Identity()`.
//!
//! Initialisation follows torchvision: convolutions Kaiming-normal (fan-out, ReLU gain),
//! BatchNorm weight 1 and bias 0, the linear head PyTorch's default
//! (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`).
//!
//! BatchNorm is [`crate::norm::BatchNorm`] (PyTorch's running-variance update, and fast on
//! `flex`).

pub mod weights;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{Initializer, Linear, LinearConfig, PaddingConfig2d};

use crate::norm::{BatchNorm, BatchNormConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Which residual block a ResNet stacks.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Two 3x3 convolutions (ResNet-18/34), expansion 1.
    Basic,
    /// 1x1, 3x3, 1x1 convolutions (ResNet-50/101), expansion 4; stride on the 3x3
    /// convolution as torchvision ("ResNet v1.5").
    Bottleneck,
}

impl BlockKind {
    /// Output channels per unit of width.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The network's first layers.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Stem {
    /// 3x3 stride-1 convolution, no max-pool (for 32x32 and 28x28 inputs).
    Cifar,
    /// 7x7 stride-2 convolution and 3x3 stride-2 max-pool (torchvision, 224x224 inputs).
    ImageNet,
}

/// Configuration of a [`ResNet`].
#[derive(Config, Debug)]
pub struct ResNetConfig {
    /// Residual block type.
    pub block: BlockKind,
    /// Blocks per stage, e.g. `[2, 2, 2, 2]` for ResNet-18.
    pub layers: [usize; 4],
    /// Number of output classes of the linear head.
    pub num_classes: usize,
    /// Stem type.
    #[config(default = "Stem::Cifar")]
    pub stem: Stem,
    /// Input channels (3 for RGB, 1 for grey digits).
    #[config(default = 3)]
    pub in_channels: usize,
    /// Width of the first stage; stages use `w, 2w, 4w, 8w` (64 for the standard ResNets;
    /// smaller for quick CPU runs).
    #[config(default = 64)]
    pub base_width: usize,
    /// Apply the ReLU at the end of the last residual block (torchvision: always). Without
    /// it the features are signed rather than confined to the non-negative orthant, which
    /// cosine-prototype heads assume (see [`ResNet::last_relu`]).
    #[config(default = true)]
    pub last_relu: bool,
}

/// 3x3 convolution, padding 1, no bias (torchvision's `conv3x3`).
fn conv3x3<B: Backend>(cin: usize, cout: usize, stride: usize, dev: &B::Device) -> Conv2d<B> {
    conv(cin, cout, 3, stride, 1, dev)
}

fn conv<B: Backend>(
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dev: &B::Device,
) -> Conv2d<B> {
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        // torchvision: kaiming_normal_(mode="fan_out", nonlinearity="relu").
        .with_initializer(Initializer::KaimingNormal {
            gain: std::f64::consts::SQRT_2,
            fan_out_only: true,
        })
        .init(dev)
}

fn bn<B: Backend>(ch: usize, dev: &B::Device) -> BatchNorm<B> {
    BatchNormConfig::new(ch).init(dev)
}

/// The projection shortcut (`downsample.0` conv 1x1, `downsample.1` BatchNorm in torchvision).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

impl<B: Backend> Downsample<B> {
    fn new(cin: usize, cout: usize, stride: usize, dev: &B::Device) -> Self {
        Self {
            conv: conv(cin, cout, 1, stride, 0, dev),
            bn: bn(cout, dev),
        }
    }

    fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        self.bn.forward(self.conv.forward(x))
    }
}

/// One residual block, basic or bottleneck (the `conv3`/`bn3` pair only in bottlenecks).
#[derive(Module, Debug)]
pub struct Block<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    conv3: Option<Conv2d<B>>,
    bn3: Option<BatchNorm<B>>,
    downsample: Option<Downsample<B>>,
}

impl<B: Backend> Block<B> {
    fn new(kind: BlockKind, cin: usize, width: usize, stride: usize, dev: &B::Device) -> Self {
        let cout = width * kind.expansion();
        let downsample =
            (stride != 1 || cin != cout).then(|| Downsample::new(cin, cout, stride, dev));
        match kind {
            BlockKind::Basic => Self {
                conv1: conv3x3(cin, width, stride, dev),
                bn1: bn(width, dev),
                conv2: conv3x3(width, width, 1, dev),
                bn2: bn(width, dev),
                conv3: None,
                bn3: None,
                downsample,
            },
            BlockKind::Bottleneck => Self {
                conv1: conv(cin, width, 1, 1, 0, dev),
                bn1: bn(width, dev),
                conv2: conv3x3(width, width, stride, dev),
                bn2: bn(width, dev),
                conv3: Some(conv(width, cout, 1, 1, 0, dev)),
                bn3: Some(bn(cout, dev)),
                downsample,
            },
        }
    }

    /// # Shapes
    /// - input `[batch, in, h, w]` -> `[batch, width * expansion, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        relu(self.forward_pre_activation(x))
    }

    /// The block's output before its final ReLU: residual branch plus shortcut.
    ///
    /// # Shapes
    /// - as [`Block::forward`]
    pub fn forward_pre_activation(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let identity = match &self.downsample {
            Some(d) => d.forward(x.clone()),
            None => x.clone(),
        };
        let mut out = relu(self.bn1.forward(self.conv1.forward(x)));
        out = self.bn2.forward(self.conv2.forward(out));
        if let (Some(c3), Some(b3)) = (&self.conv3, &self.bn3) {
            out = b3.forward(c3.forward(relu(out)));
        }
        out + identity
    }
}

/// A ResNet: stem, four stages of residual blocks, global average pooling, linear head.
#[derive(Module, Debug)]
pub struct ResNet<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    maxpool: Option<MaxPool2d>,
    layer1: Vec<Block<B>>,
    layer2: Vec<Block<B>>,
    layer3: Vec<Block<B>>,
    layer4: Vec<Block<B>>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear<B>,
    /// Whether the last block ends with its ReLU (a constant, not saved in records; the
    /// parameters are the same either way). `false` makes the pooled features the sum of
    /// the last block's residual branch and shortcut before the activation, as
    /// "pre-ReLU" features: signed, so that L2-normalised features are not all within 90°
    /// of each other. Cosine classifiers over learnt prototypes (SimGCD, ProtoGCD) were
    /// designed on ViT features (after a LayerNorm, signed); on post-ReLU features a
    /// prototype pushed away from the labelled classes ends up pointing away from every
    /// image and is never predicted again.
    pub last_relu: bool,
}

impl ResNetConfig {
    /// Builds the network with torchvision's initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> ResNet<B> {
        let w = self.base_width;
        let (conv1, maxpool) = match self.stem {
            Stem::Cifar => (conv(self.in_channels, w, 3, 1, 1, device), None),
            Stem::ImageNet => (
                conv(self.in_channels, w, 7, 2, 3, device),
                Some(
                    MaxPool2dConfig::new([3, 3])
                        .with_strides([2, 2])
                        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                        .init(),
                ),
            ),
        };
        let mut cin = w;
        let mut stage = |i: usize| {
            let width = w << i;
            let stride = if i == 0 { 1 } else { 2 };
            let blocks: Vec<Block<B>> = (0..self.layers[i])
                .map(|b| {
                    let blk = Block::new(
                        self.block,
                        cin,
                        width,
                        if b == 0 { stride } else { 1 },
                        device,
                    );
                    cin = width * self.block.expansion();
                    blk
                })
                .collect();
            blocks
        };
        let layer1 = stage(0);
        let layer2 = stage(1);
        let layer3 = stage(2);
        let layer4 = stage(3);
        let feat = (w << 3) * self.block.expansion();
        ResNet {
            conv1,
            bn1: bn(w, device),
            maxpool,
            layer1,
            layer2,
            layer3,
            layer4,
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(feat, self.num_classes).init(device),
            last_relu: self.last_relu,
        }
    }
}

impl<B: Backend> ResNet<B> {
    /// Penultimate features (after global average pooling).
    ///
    /// # Shapes
    /// - input `[batch, in_channels, h, w]` -> `[batch, feature_dim]`
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_taps(x, None)
    }

    /// The stem's output and each stage's output, each averaged over its positions:
    /// OpenOOD's `return_feature_list` (`feature1` … `feature5`) pooled with its `mean`
    /// feature type. The last is the penultimate features.
    ///
    /// # Shapes
    /// - input `[batch, in_channels, h, w]` -> 5 x `[batch, channels]`, widths
    ///   [`ResNet::layer_widths`]
    pub fn forward_layers(&self, x: Tensor<B, 4>) -> Vec<Tensor<B, 2>> {
        let mut taps = Vec::with_capacity(5);
        let last = self.forward_taps(x, Some(&mut taps));
        taps.push(last);
        taps
    }

    /// The widths of [`ResNet::forward_layers`]' outputs.
    pub fn layer_widths(&self) -> Vec<usize> {
        let out = |blocks: &[Block<B>], cin: usize| {
            blocks
                .last()
                .map_or(cin, |b| b.bn3.as_ref().unwrap_or(&b.bn2).gamma.dims()[0])
        };
        let stem = self.bn1.gamma.dims()[0];
        let l1 = out(&self.layer1, stem);
        let l2 = out(&self.layer2, l1);
        let l3 = out(&self.layer3, l2);
        vec![stem, l1, l2, l3, self.feature_dim()]
    }

    /// Makes every BatchNorm normalise with its running statistics, under autodiff too
    /// ([`BatchNorm::use_running_stats`]): for gradients through a network in inference
    /// mode.
    pub fn use_running_batchnorm(mut self) -> Self {
        self.bn1.use_running_stats = true;
        for blk in self
            .layer1
            .iter_mut()
            .chain(&mut self.layer2)
            .chain(&mut self.layer3)
            .chain(&mut self.layer4)
        {
            blk.bn1.use_running_stats = true;
            blk.bn2.use_running_stats = true;
            if let Some(b) = &mut blk.bn3 {
                b.use_running_stats = true;
            }
            if let Some(d) = &mut blk.downsample {
                d.bn.use_running_stats = true;
            }
        }
        self
    }

    /// The penultimate features; with `taps`, the pooled stem and first three stages'
    /// outputs are pushed there on the way.
    fn forward_taps(
        &self,
        x: Tensor<B, 4>,
        mut taps: Option<&mut Vec<Tensor<B, 2>>>,
    ) -> Tensor<B, 2> {
        let mut x = relu(self.bn1.forward(self.conv1.forward(x)));
        if let Some(mp) = &self.maxpool {
            x = mp.forward(x);
        }
        let stages = [&self.layer1, &self.layer2, &self.layer3, &self.layer4];
        let blocks = stages.iter().map(|s| s.len()).sum::<usize>();
        let mut seen = 0;
        for stage in stages {
            if let Some(t) = taps.as_deref_mut() {
                t.push(self.pool(x.clone()));
            }
            for blk in stage {
                seen += 1;
                x = if seen == blocks && !self.last_relu {
                    blk.forward_pre_activation(x)
                } else {
                    blk.forward(x)
                };
            }
        }
        self.pool(x)
    }

    /// Global average pooling, `[batch, c, h, w]` -> `[batch, c]`.
    fn pool(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        let x = self.avgpool.forward(x);
        let [b, c, _, _] = x.dims();
        x.reshape([b, c])
    }

    /// Logits from features.
    ///
    /// # Shapes
    /// - input `[batch, feature_dim]` -> `[batch, num_classes]`
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

/// Maps a burn parameter path of a [`ResNet`] (as collected with enum variants skipped) to
/// the torchvision state-dict key. The only structural difference is the shortcut:
/// burn's `downsample.conv` / `downsample.bn` are torchvision's `downsample.0` /
/// `downsample.1`. BatchNorm `gamma`/`beta` become `weight`/`bias` through burn-store's
/// `BurnToPyTorchAdapter`, which also transposes the linear weight.
pub fn torch_key(burn_path: &str) -> String {
    burn_path
        .replace(".downsample.conv.", ".downsample.0.")
        .replace(".downsample.bn.", ".downsample.1.")
}

/// The inverse of [`torch_key`].
pub fn burn_key(torch_key: &str) -> String {
    torch_key
        .replace(".downsample.0.", ".downsample.conv.")
        .replace(".downsample.1.", ".downsample.bn.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    type TB = Flex;

    fn param_count<M: Module<TB>>(m: &M) -> usize {
        m.num_params()
    }

    // burn's `num_params` counts BatchNorm running statistics too, so the reference is
    // torchvision's parameters plus its running_mean/running_var buffers:
    //   sum(t.numel() for k, t in m.state_dict().items() if "num_batches" not in k)
    // resnet18(): 11,689,512 parameters + 2 x 4,800 BN channels = 11,699,112.
    // CIFAR stem (conv1 3x3x3x64 instead of 7x7x3x64) with a 10-class head:
    // 11,173,962 parameters + 9,600 = 11,183,562.
    // resnet50(): 25,557,032 parameters + 2 x 26,560 BN channels = 25,610,152.
    #[test]
    fn resnet18_matches_torchvision_parameter_count() {
        let dev = Default::default();
        let m = ResNetConfig::new(BlockKind::Basic, [2, 2, 2, 2], 1000)
            .with_stem(Stem::ImageNet)
            .init::<TB>(&dev);
        assert_eq!(param_count(&m), 11_699_112);
        let m = ResNetConfig::new(BlockKind::Basic, [2, 2, 2, 2], 10).init::<TB>(&dev);
        assert_eq!(param_count(&m), 11_183_562);
    }

    #[test]
    fn resnet50_matches_torchvision_parameter_count() {
        let dev = Default::default();
        let m = ResNetConfig::new(BlockKind::Bottleneck, [3, 4, 6, 3], 1000)
            .with_stem(Stem::ImageNet)
            .init::<TB>(&dev);
        assert_eq!(param_count(&m), 25_610_152);
        assert_eq!(m.feature_dim(), 2048);
    }

    #[test]
    fn shapes_for_cifar_and_digits() {
        let dev = Default::default();
        let m = ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1], 6)
            .with_in_channels(1)
            .with_base_width(8)
            .init::<TB>(&dev);
        let x = Tensor::<TB, 4>::zeros([2, 1, 28, 28], &dev);
        let f = m.forward_features(x);
        assert_eq!(f.dims(), [2, 64]);
        assert_eq!(m.forward_head(f).dims(), [2, 6]);
        assert_eq!(m.feature_dim(), 64);
    }

    /// `last_relu = false` changes the last block's output only: the same parameters give
    /// features that are the pooled pre-activation, with negative entries, whose positive
    /// part pools to the usual features wherever the pre-activation has one sign per
    /// channel. Checked here on a 1x1 output map (28 px through three stride-2 stages of a
    /// 4 px input would be 1x1), where pooling is the identity: `relu(pre) == post`.
    #[test]
    fn last_relu_false_gives_the_pre_activation() {
        let dev = Default::default();
        let cfg = ResNetConfig::new(BlockKind::Basic, [1, 1, 1, 1], 3)
            .with_in_channels(1)
            .with_base_width(4);
        // burn initialises parameters lazily (two clones of a fresh module would draw
        // different weights): a load materialises them once.
        let with = cfg
            .init::<TB>(&dev)
            .load_record(cfg.init::<TB>(&dev).into_record());
        assert!(with.last_relu);
        let without = cfg
            .clone()
            .with_last_relu(false)
            .init::<TB>(&dev)
            .load_record(with.clone().into_record());
        assert!(!without.last_relu, "the flag is not part of the record");
        let w = |m: &ResNet<TB>| m.conv1.weight.val().into_data().to_vec::<f32>().unwrap();
        assert_eq!(w(&with), w(&without));
        let mut r = 7u64;
        let x: Vec<f32> = (0..2 * 8 * 8)
            .map(|_| {
                r = r
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((r >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let x = Tensor::<TB, 4>::from_data(TensorData::new(x, [2, 1, 8, 8]), &dev);
        let post = with
            .forward_features(x.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let pre = without
            .forward_features(x.clone())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert!(post.iter().all(|&v| v >= 0.0));
        assert!(pre.iter().any(|&v| v < 0.0), "{pre:?}");
        for (a, b) in pre.iter().zip(&post) {
            assert!((a.max(0.0) - b).abs() < 1e-6, "{a} {b}");
        }
        // The last layer of forward_layers is still forward_features.
        let layers = without.forward_layers(x);
        let last = layers
            .last()
            .unwrap()
            .clone()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(last, pre);
    }

    #[test]
    fn key_map_round_trips() {
        let k = "layer2.0.downsample.bn.running_mean";
        assert_eq!(torch_key(k), "layer2.0.downsample.1.running_mean");
        assert_eq!(burn_key(&torch_key(k)), k);
        assert_eq!(torch_key("layer1.1.conv2.weight"), "layer1.1.conv2.weight");
    }
}
