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

pub mod error;
pub mod init;
pub mod norm;
pub mod registry;
pub mod resnet;

pub use error::BackboneError;
pub use registry::{Backbone, BackboneSpec};
