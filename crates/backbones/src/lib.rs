//! # unseen-backbones
//!
//! Networks that map images to features and logits, generic over the burn backend.
//!
//! Every network exposes `forward_features(x) -> [batch, feature_dim]` (the penultimate
//! layer that detectors and GCD heads use), `forward_head(features) -> [batch, classes]`
//! and `feature_dim()`. Configs name a network by string through the [`registry`]:
//!
//! | name | network |
//! |---|---|
//! | `resnet18_cifar`, `resnet34_cifar`, `resnet50_cifar` | ResNet with the 3x3 CIFAR stem |
//! | `resnet18`, `resnet34`, `resnet50`, `resnet101` | torchvision ResNet (ImageNet stem) |
//! | `resnet_small` | CIFAR-stem ResNet with one basic block per stage and `width` (default 16) for CPU runs |
//! | `wrn28_2`, `wrn28_10`, `wrn40_2` | WideResNet as hendrycks/outlier-exposure (OE, energy, MixOE) |
//! | `wrn28_2_usb`, `wrn28_8_usb` | WideResNet as USB/IOMatch (conv bias, BN 1e-3, LeakyReLU 0.1) |
//! | `vit_tiny_patch16`, `vit_small_patch16`, `vit_base_patch16` (also with timm's `_224`) | timm ViT-Ti/S/B, patch 16 |
//! | `dino_vits16`, `dino_vitb16` | DINO ViT-S/16, ViT-B/16 (the same networks; DINO files have no head) |
//!
//! Pretrained weights ([`weights`], [`hub`]) load from torchvision/timm/DINO/Hugging Face
//! files with one documented key map per family (`resnet::weights`, `wrn::weights`,
//! `vit::weights`); the trainer exports back under the same names.

pub mod error;
pub mod hub;
pub mod init;
pub mod norm;
pub mod registry;
pub mod resnet;
pub mod vit;
pub mod weights;
pub mod wrn;

pub use error::BackboneError;
pub use registry::{Backbone, BackboneSpec, Family};
pub use weights::{LoadReport, WeightsError};
