//! Name -> constructor registry and the [`Backbone`] enum that the trainer holds.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::BackboneError;
use crate::resnet::{BlockKind, ResNet, ResNetConfig, Stem};

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
];

/// A network the trainer can hold; one variant per family.
#[derive(Module, Debug)]
pub enum Backbone<B: Backend> {
    /// ResNet family.
    ResNet(ResNet<B>),
}

impl BackboneSpec {
    /// A spec with default channels (3) and width.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            in_channels: 3,
            width: None,
        }
    }

    /// The ResNet configuration this spec names, if it names a ResNet.
    pub fn resnet_config(&self, num_classes: usize) -> Result<ResNetConfig, BackboneError> {
        if num_classes == 0 {
            return Err(BackboneError::InvalidSpec(
                "num_classes must be at least 1".into(),
            ));
        }
        if self.in_channels == 0 {
            return Err(BackboneError::InvalidSpec(
                "in_channels must be at least 1".into(),
            ));
        }
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
                return Err(BackboneError::UnknownName {
                    name: other.to_string(),
                    known: NAMES.join(", "),
                })
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
            .with_base_width(width))
    }

    /// Builds the named network with a `num_classes` head.
    pub fn init<B: Backend>(
        &self,
        num_classes: usize,
        device: &B::Device,
    ) -> Result<Backbone<B>, BackboneError> {
        Ok(Backbone::ResNet(
            self.resnet_config(num_classes)?.init(device),
        ))
    }
}

impl<B: Backend> Backbone<B> {
    /// Penultimate features `[batch, feature_dim]`.
    pub fn forward_features(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            Backbone::ResNet(m) => m.forward_features(x),
        }
    }

    /// Logits `[batch, classes]` from features.
    pub fn forward_head(&self, f: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Backbone::ResNet(m) => m.forward_head(f),
        }
    }

    /// Features and logits in one pass.
    pub fn forward(&self, x: Tensor<B, 4>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let f = self.forward_features(x);
        let logits = self.forward_head(f.clone());
        (f, logits)
    }

    /// Length of the feature vector.
    pub fn feature_dim(&self) -> usize {
        match self {
            Backbone::ResNet(m) => m.feature_dim(),
        }
    }

    /// Maps a burn parameter path to the reference (torchvision/timm) state-dict key.
    pub fn torch_key(&self, burn_path: &str) -> String {
        match self {
            Backbone::ResNet(_) => crate::resnet::torch_key(burn_path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known_names() {
        let err = BackboneSpec::new("resnet19").resnet_config(10).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("resnet19") && msg.contains("resnet18_cifar"),
            "{msg}"
        );
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
}
