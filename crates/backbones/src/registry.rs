//! Name -> constructor registry and the [`Backbone`] enum that the trainer holds.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use std::path::Path;

use crate::error::BackboneError;
use crate::resnet::{BlockKind, ResNet, ResNetConfig, Stem};
use crate::vit::{VisionTransformer, VitConfig};
use crate::weights::{self, LoadReport, WeightsError};
use crate::wrn::{WideResNet, WrnConfig, WrnStyle};

/// What a config says about the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackboneSpec {
    /// Registry name, e.g. `resnet18_cifar` (see the crate docs for the list).
    pub name: String,
    /// Input channels: 1 for MNIST-like data, 3 for RGB.
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    /// First-stage width for `resnet_small` (ignored by the fixed-width networks unless set,
    /// in which case it overrides their 64).
    #[serde(default)]
    pub width: Option<usize>,
    /// Pretrained weights: a file path or `hf:<org>/<name>[@<rev>][:<file>]` (see
    /// [`crate::hub`]); the trainer also resolves `run:<run folder>` (another run's backbone,
    /// through [`Backbone::load_tensors`]). Loaded after initialisation, before training.
    #[serde(default)]
    pub weights: Option<String>,
    /// Nested state dict inside the weights file (`teacher` in a DINO training checkpoint,
    /// `model`/`ema_model` in a USB one, `state_dict`, ...).
    #[serde(default)]
    pub weights_key: Option<String>,
    /// Canonical keys allowed to be absent, of another shape, or unused when loading
    /// weights (`["head"]` for a new classifier; `["*"]` for anything). Empty: the file
    /// must fit exactly.
    #[serde(default)]
    pub allow_partial: Vec<String>,
    /// Size of the classifier head. Training requires the data's number of classes (the
    /// default); `trainer embed` may set another (e.g. 1000 for an ImageNet file, 0 for a
    /// headless ViT such as DINO's).
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// ViT input size; by default the data's image size.
    #[serde(default)]
    pub img_size: Option<usize>,
    /// ViT: train only blocks `grad_from_block..` (plus the final norm and head), as GCD's
    /// `grad_from_block = 11`. Unset: train everything.
    #[serde(default)]
    pub grad_from_block: Option<usize>,
    /// ResNets: `false` drops the ReLU at the end of the last residual block, so that the
    /// features are signed (see [`crate::resnet::ResNet::last_relu`]); unset: torchvision's
    /// network, with it. Same parameters either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_relu: Option<bool>,
    /// Tensors to load instead of reading `weights` (never serialised): how the trainer
    /// hands `weights = "run:<run folder>"`, another run's backbone read once when a command
    /// starts, to [`Backbone::load_tensors`]; `weights` still names the source in reports.
    #[serde(skip)]
    pub preloaded: Option<std::sync::Arc<weights::Tensors>>,
}

fn default_in_channels() -> usize {
    3
}

/// Every name the registry knows.
pub const NAMES: &[&str] = &[
    "resnet_small",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet50_cifar",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "wrn28_2",
    "wrn28_10",
    "wrn40_2",
    "wrn28_2_usb",
    "wrn28_8_usb",
    "vit_tiny_patch16",
    "vit_small_patch16",
    "vit_base_patch16",
    "dino_vits16",
    "dino_vitb16",
];

/// The family a registry name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// [`crate::resnet`].
    ResNet,
    /// [`crate::wrn`].
    Wrn,
    /// [`crate::vit`].
    Vit,
}

/// A network the trainer can hold; one variant per family.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    /// ResNet family.
    ResNet(ResNet<B>),
    /// Wide residual networks.
    Wrn(WideResNet<B>),
    /// Vision Transformers.
    Vit(VisionTransformer<B>),
}

impl BackboneSpec {
    /// A spec with default channels (3) and width.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            in_channels: 3,
            width: None,
            weights: None,
            weights_key: None,
            allow_partial: Vec::new(),
            num_classes: None,
            img_size: None,
            grad_from_block: None,
            last_relu: None,
            preloaded: None,
        }
    }

    /// The registry name without timm's `_224` suffix.
    fn base_name(&self) -> &str {
        self.name.strip_suffix("_224").unwrap_or(&self.name)
    }

    /// Which family the name belongs to.
    pub fn family(&self) -> Result<Family, BackboneError> {
        let n = self.base_name();
        if n.starts_with("resnet") && NAMES.contains(&n) {
            Ok(Family::ResNet)
        } else if n.starts_with("wrn") && NAMES.contains(&n) {
            Ok(Family::Wrn)
        } else if (n.starts_with("vit") || n.starts_with("dino")) && NAMES.contains(&n) {
            Ok(Family::Vit)
        } else {
            Err(BackboneError::UnknownName {
                name: self.name.clone(),
                known: NAMES.join(", "),
            })
        }
    }

    fn check_common(&self, num_classes: usize) -> Result<(), BackboneError> {
        if self.in_channels == 0 {
            return Err(BackboneError::InvalidSpec(
                "in_channels must be at least 1".into(),
            ));
        }
        let fam = self.family()?;
        if fam != Family::Vit && num_classes == 0 {
            return Err(BackboneError::InvalidSpec(
                "num_classes must be at least 1".into(),
            ));
        }
        if fam != Family::Vit && (self.img_size.is_some() || self.grad_from_block.is_some()) {
            return Err(BackboneError::InvalidSpec(format!(
                "img_size and grad_from_block apply to ViT backbones only, not `{}`",
                self.name
            )));
        }
        if fam != Family::ResNet && (self.width.is_some() || self.last_relu.is_some()) {
            return Err(BackboneError::InvalidSpec(format!(
                "width and last_relu apply to ResNet backbones only, not `{}`",
                self.name
            )));
        }
        Ok(())
    }

    /// The WideResNet configuration this spec names.
    pub fn wrn_config(&self, num_classes: usize) -> Result<WrnConfig, BackboneError> {
        self.check_common(num_classes)?;
        let (depth, k, style) = match self.base_name() {
            "wrn28_2" => (28, 2, WrnStyle::Oe),
            "wrn28_10" => (28, 10, WrnStyle::Oe),
            "wrn40_2" => (40, 2, WrnStyle::Oe),
            "wrn28_2_usb" => (28, 2, WrnStyle::Usb),
            "wrn28_8_usb" => (28, 8, WrnStyle::Usb),
            _ => {
                return Err(BackboneError::InvalidSpec(format!(
                    "`{}` is not a WideResNet",
                    self.name
                )))
            }
        };
        let cfg = WrnConfig::new(depth, k, num_classes)
            .with_style(style)
            .with_in_channels(self.in_channels);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The ViT configuration this spec names, for inputs of `img_size` (the spec's own
    /// `img_size` wins; 224 when neither is given). `num_classes` 0 builds no head.
    pub fn vit_config(
        &self,
        num_classes: usize,
        img_size: Option<usize>,
    ) -> Result<VitConfig, BackboneError> {
        self.check_common(num_classes)?;
        let (dim, depth, heads) = match self.base_name() {
            "vit_tiny_patch16" => (192, 12, 3),
            "vit_small_patch16" | "dino_vits16" => (384, 12, 6),
            "vit_base_patch16" | "dino_vitb16" => (768, 12, 12),
            _ => {
                return Err(BackboneError::InvalidSpec(format!(
                    "`{}` is not a ViT",
                    self.name
                )))
            }
        };
        let cfg = VitConfig::new(dim, depth, heads, num_classes)
            .with_img_size(self.img_size.or(img_size).unwrap_or(224))
            .with_in_channels(self.in_channels);
        cfg.validate()?;
        if let Some(g) = self.grad_from_block {
            if g > depth {
                return Err(BackboneError::InvalidSpec(format!(
                    "grad_from_block = {g} but `{}` has {depth} blocks",
                    self.name
                )));
            }
        }
        Ok(cfg)
    }

    /// The ResNet configuration this spec names, if it names a ResNet.
    pub fn resnet_config(&self, num_classes: usize) -> Result<ResNetConfig, BackboneError> {
        self.check_common(num_classes)?;
        let (block, layers, stem, width) = match self.name.as_str() {
            "resnet_small" => (BlockKind::Basic, [1, 1, 1, 1], Stem::Cifar, 16),
            "resnet18_cifar" => (BlockKind::Basic, [2, 2, 2, 2], Stem::Cifar, 64),
            "resnet34_cifar" => (BlockKind::Basic, [3, 4, 6, 3], Stem::Cifar, 64),
            "resnet50_cifar" => (BlockKind::Bottleneck, [3, 4, 6, 3], Stem::Cifar, 64),
            "resnet18" => (BlockKind::Basic, [2, 2, 2, 2], Stem::ImageNet, 64),
            "resnet34" => (BlockKind::Basic, [3, 4, 6, 3], Stem::ImageNet, 64),
            "resnet50" => (BlockKind::Bottleneck, [3, 4, 6, 3], Stem::ImageNet, 64),
            "resnet101" => (BlockKind::Bottleneck, [3, 4, 23, 3], Stem::ImageNet, 64),
            other => {
                return Err(BackboneError::InvalidSpec(format!(
                    "`{other}` is not a ResNet"
                )))
            }
        };
        let width = self.width.unwrap_or(width);
        if width == 0 {
            return Err(BackboneError::InvalidSpec(
                "width must be at least 1".into(),
            ));
        }
        Ok(ResNetConfig::new(block, layers, num_classes)
            .with_stem(stem)
            .with_in_channels(self.in_channels)
            .with_base_width(width)
            .with_last_relu(self.last_relu.unwrap_or(true)))
    }

    /// How to build the same network in PyTorch, for an export's `FILE.json`: the library
    /// (`torchvision`, `timm`, or the reference file for WideResNets), the constructor and
    /// its arguments. Loading the export with `load_state_dict(strict=True)` into that module
    /// must succeed (`scripts/verify_export.py` does it).
    pub fn pytorch_recipe(
        &self,
        num_classes: usize,
        img_size: usize,
    ) -> Result<serde_json::Value, BackboneError> {
        use serde_json::json;
        Ok(match self.family()? {
            Family::ResNet => {
                let rc = self.resnet_config(num_classes)?;
                let standard = match (self.name.as_str(), rc.base_width) {
                    ("resnet18" | "resnet18_cifar", 64) => "resnet18",
                    ("resnet34" | "resnet34_cifar", 64) => "resnet34",
                    ("resnet50" | "resnet50_cifar", 64) => "resnet50",
                    ("resnet101", 64) => "resnet101",
                    _ => "ResNet",
                };
                json!({
                    "library": "torchvision",
                    "constructor": standard,
                    "block": match rc.block {
                        BlockKind::Basic => "BasicBlock",
                        BlockKind::Bottleneck => "Bottleneck",
                    },
                    "layers": rc.layers,
                    "base_width": rc.base_width,
                    "in_channels": rc.in_channels,
                    "num_classes": num_classes,
                    "stem": match rc.stem {
                        Stem::Cifar => "cifar",
                        Stem::ImageNet => "imagenet",
                    },
                    // false: the last block's final ReLU is skipped (same parameters).
                    "last_relu": rc.last_relu,
                })
            }
            Family::Wrn => {
                let wc = self.wrn_config(num_classes)?;
                json!({
                    "library": "reference",
                    "constructor": "WideResNet",
                    "file": match wc.style {
                        WrnStyle::Oe => "hendrycks/outlier-exposure CIFAR/models/wrn.py",
                        WrnStyle::Usb => "microsoft/Semi-supervised-learning semilearn/nets/wrn/wrn.py",
                    },
                    "style": match wc.style { WrnStyle::Oe => "oe", WrnStyle::Usb => "usb" },
                    "depth": wc.depth,
                    "widen_factor": wc.widen_factor,
                    "in_channels": wc.in_channels,
                    "num_classes": num_classes,
                })
            }
            Family::Vit => {
                let vc = self.vit_config(num_classes, Some(img_size))?;
                let timm = match vc.embed_dim {
                    192 => "vit_tiny_patch16_224",
                    384 => "vit_small_patch16_224",
                    _ => "vit_base_patch16_224",
                };
                json!({
                    "library": "timm",
                    "constructor": timm,
                    "kwargs": {
                        "num_classes": num_classes,
                        "img_size": vc.img_size,
                        "in_chans": vc.in_channels,
                    },
                })
            }
        })
    }

    /// Builds the named network with a `num_classes` head (ViTs for 224-pixel inputs unless
    /// the spec says otherwise; see [`BackboneSpec::init_for`]). No weights are loaded.
    pub fn init<B: Backend>(
        &self,
        num_classes: usize,
        device: &B::Device,
    ) -> Result<Backbone<B>, BackboneError> {
        self.init_for(num_classes, None, device)
    }

    /// Builds the named network for square inputs of `img_size` (used by ViTs, whose
    /// position embedding depends on it). No weights are loaded.
    pub fn init_for<B: Backend>(
        &self,
        num_classes: usize,
        img_size: Option<usize>,
        device: &B::Device,
    ) -> Result<Backbone<B>, BackboneError> {
        Ok(match self.family()? {
            Family::ResNet => Backbone::ResNet(self.resnet_config(num_classes)?.init(device)),
            Family::Wrn => Backbone::Wrn(self.wrn_config(num_classes)?.init(device)),
            Family::Vit => Backbone::Vit(self.vit_config(num_classes, img_size)?.init(device)),
        })
    }
}

impl<B: Backend> Backbone<B> {
    /// Penultimate features `[batch, feature_dim]`.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            Backbone::ResNet(m) => m.forward_features(x),
            Backbone::Wrn(m) => m.forward_features(x),
            Backbone::Vit(m) => m.forward_features(x),
        }
    }

    /// Logits `[batch, classes]` from features.
    pub fn forward_head(&self, f: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Backbone::ResNet(m) => m.forward_head(f),
            Backbone::Wrn(m) => m.forward_head(f),
            Backbone::Vit(m) => m.forward_head(f),
        }
    }

    /// Features and logits in one pass.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let f = self.forward_features(x);
        let logits = self.forward_head(f.clone());
        (f, logits)
    }

    /// Pooled intermediate outputs, the penultimate features last (widths
    /// [`Backbone::layer_widths`]): ResNet's stem and four stages, WideResNet's first
    /// convolution, first two stages and pooled output. `None` for a Vision Transformer,
    /// whose blocks have no spatial feature maps to pool.
    pub fn forward_layers(&self, x: Tensor<B, 4>) -> Option<Vec<Tensor<B, 2>>> {
        match self {
            Backbone::ResNet(m) => Some(m.forward_layers(x)),
            Backbone::Wrn(m) => Some(m.forward_layers(x)),
            Backbone::Vit(_) => None,
        }
    }

    /// The widths of [`Backbone::forward_layers`]' outputs; `None` for a Vision Transformer.
    pub fn layer_widths(&self) -> Option<Vec<usize>> {
        match self {
            Backbone::ResNet(m) => Some(m.layer_widths()),
            Backbone::Wrn(m) => Some(m.layer_widths()),
            Backbone::Vit(_) => None,
        }
    }

    /// The same network with every BatchNorm normalising with its running statistics even
    /// under autodiff: gradients through the network in inference mode (PyTorch's
    /// `model.eval()` with `requires_grad` inputs). A Vision Transformer (LayerNorm only)
    /// is returned as is.
    pub fn use_running_batchnorm(self) -> Self {
        match self {
            Backbone::ResNet(m) => Backbone::ResNet(m.use_running_batchnorm()),
            Backbone::Wrn(m) => Backbone::Wrn(m.use_running_batchnorm()),
            Backbone::Vit(m) => Backbone::Vit(m),
        }
    }

    /// The final linear layer, `None` for a headless network: what post-hoc detectors
    /// that reshape features before the head (ReAct, ViM, DICE, ...) need.
    pub fn head_linear(&self) -> Option<&burn::nn::Linear<B>> {
        match self {
            Backbone::ResNet(m) => m.head_linear(),
            Backbone::Wrn(m) => m.head_linear(),
            Backbone::Vit(m) => m.head_linear(),
        }
    }

    /// Length of the feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            Backbone::ResNet(m) => m.feature_dim(),
            Backbone::Wrn(m) => m.feature_dim(),
            Backbone::Vit(m) => m.feature_dim(),
        }
    }

    /// Classes of the head (0 for a ViT without one, whose "logits" are its features).
    pub fn num_classes(&self) -> usize {
        match self {
            Backbone::ResNet(m) => m.num_classes(),
            Backbone::Wrn(m) => m.num_classes(),
            Backbone::Vit(m) => m.num_classes(),
        }
    }

    /// The state-dict name of the linear head ([`weights::state_dict`] writes
    /// `NAME.weight` and `NAME.bias`): torchvision's and the reference WideResNets' `fc`,
    /// timm's `head`. Used to drop the head where a recipe replaces it (GCD's exports load
    /// into the backbone with `nn.Identity()` as its head).
    pub fn head_name(&self) -> &'static str {
        match self {
            Backbone::ResNet(_) | Backbone::Wrn(_) => "fc",
            Backbone::Vit(_) => "head",
        }
    }

    /// The family of this network.
    pub fn family(&self) -> Family {
        match self {
            Backbone::ResNet(_) => Family::ResNet,
            Backbone::Wrn(_) => Family::Wrn,
            Backbone::Vit(_) => Family::Vit,
        }
    }

    /// Loads weights from a file (see [`crate::weights`] for the rules and
    /// [`crate::resnet::weights`], [`crate::wrn::weights`], [`crate::vit::weights`] for each
    /// family's key map). `arch` names the network in errors.
    pub fn load_weights(
        self,
        file: &Path,
        key: Option<&str>,
        allow_partial: &[String],
        arch: &str,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let raw = weights::read_tensors(file, key)?;
        self.load_tensors(raw, file, allow_partial, arch)
    }

    /// Loads tensors already read (a state dict under any naming [`Backbone::load_weights`]
    /// accepts), with the same rules; `source` names where they come from in the report and
    /// in errors.
    pub fn load_tensors(
        self,
        raw: weights::Tensors,
        source: &Path,
        allow_partial: &[String],
        arch: &str,
    ) -> Result<(Self, LoadReport), WeightsError> {
        let file = source;
        let mut report = LoadReport {
            file: file.to_path_buf(),
            ..Default::default()
        };
        Ok(match self {
            Backbone::ResNet(m) => {
                let (t, naming) = crate::resnet::weights::canonicalize(raw);
                report.naming = naming;
                let (m, r) = weights::apply(
                    m,
                    t,
                    &crate::resnet::torch_key,
                    &crate::resnet::weights::adapt,
                    allow_partial,
                    report,
                    arch,
                )?;
                (Backbone::ResNet(m), r)
            }
            Backbone::Wrn(m) => {
                let (t, naming) = crate::wrn::weights::canonicalize(raw);
                report.naming = naming;
                let (m, r) = weights::apply(
                    m,
                    t,
                    &crate::wrn::torch_key,
                    &crate::wrn::weights::adapt,
                    allow_partial,
                    report,
                    arch,
                )?;
                (Backbone::Wrn(m), r)
            }
            Backbone::Vit(m) => {
                let (t, naming, ignored) =
                    crate::vit::weights::canonicalize(raw).map_err(|message| {
                        WeightsError::Convert {
                            file: file.to_path_buf(),
                            message,
                        }
                    })?;
                report.naming = naming;
                report.ignored = ignored;
                let (m, r) = weights::apply(
                    m,
                    t,
                    &crate::vit::torch_key,
                    &crate::vit::weights::adapt,
                    allow_partial,
                    report,
                    arch,
                )?;
                (Backbone::Vit(m), r)
            }
        })
    }

    /// Stops gradients before ViT block `first_trained` (see
    /// [`VisionTransformer::freeze_before`]); other families are returned unchanged.
    pub fn freeze_before(self, first_trained: usize) -> Self {
        match self {
            Backbone::Vit(m) => Backbone::Vit(m.freeze_before(first_trained)),
            other => other,
        }
    }

    /// Maps a burn parameter path to the reference (torchvision/timm) state-dict key.
    pub fn torch_key(&self, burn_path: &str) -> String {
        match self {
            Backbone::ResNet(_) => crate::resnet::torch_key(burn_path),
            Backbone::Wrn(_) => crate::wrn::torch_key(burn_path),
            Backbone::Vit(_) => crate::vit::torch_key(burn_path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known_names() {
        let err = BackboneSpec::new("resnet19").family().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("resnet19") && msg.contains("resnet18_cifar"),
            "{msg}"
        );
    }

    /// Every network with pooled layers returns them with the stated widths, the last being
    /// exactly the penultimate features; a ViT has none.
    #[test]
    fn pooled_layers_end_with_the_features() {
        use burn::backend::Flex;
        let dev = Default::default();
        for (name, widths) in [
            ("resnet_small", vec![16, 16, 32, 64, 128]),
            ("resnet50_cifar", vec![64, 256, 512, 1024, 2048]),
            ("wrn28_2", vec![16, 32, 64, 128]),
        ] {
            let m = BackboneSpec::new(name).init::<Flex>(3, &dev).unwrap();
            assert_eq!(m.layer_widths().unwrap(), widths, "{name}");
            let x = Tensor::<Flex, 4>::random(
                [2, 3, 16, 16],
                burn::tensor::Distribution::Normal(0.0, 1.0),
                &dev,
            );
            let taps = m.forward_layers(x.clone()).unwrap();
            let got: Vec<usize> = taps.iter().map(|t| t.dims()[1]).collect();
            assert_eq!(got, widths, "{name}");
            let last = taps.last().unwrap().clone().into_data();
            assert_eq!(last, m.forward_features(x).into_data(), "{name}");
        }
        let vit = BackboneSpec::new("vit_tiny_patch16")
            .init_for::<Flex>(3, Some(32), &dev)
            .unwrap();
        assert!(vit.layer_widths().is_none());
    }

    #[test]
    fn small_resnet_width_is_configurable() {
        let mut spec = BackboneSpec::new("resnet_small");
        spec.width = Some(8);
        spec.in_channels = 1;
        let m = spec
            .init::<burn::backend::Flex>(6, &Default::default())
            .unwrap();
        assert_eq!(m.feature_dim(), 64);
    }

    #[test]
    fn head_name_is_the_state_dict_name_of_the_head() {
        // The head is the only `[classes, features]` matrix of each family's state dict.
        let dev = Default::default();
        for (name, img) in [
            ("resnet_small", 32),
            ("wrn28_2", 32),
            ("vit_tiny_patch16", 32),
        ] {
            let m = BackboneSpec::new(name)
                .init_for::<burn::backend::Flex>(7, Some(img), &dev)
                .unwrap();
            let sd = crate::weights::state_dict(&m, 0).unwrap();
            let heads: Vec<&String> = sd
                .iter()
                .filter(|(_, (_, shape, _))| shape.as_slice() == [7, m.feature_dim()])
                .map(|(k, _)| k)
                .collect();
            let want = format!("{}.weight", m.head_name());
            assert_eq!(heads, [&want], "{name}");
            assert_eq!(sd[&format!("{}.bias", m.head_name())].1, [7], "{name}");
        }
    }
}
