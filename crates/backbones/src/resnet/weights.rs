//! ResNet weights: torchvision's names, which timm's ResNets share.
//!
//! | source | keys | notes |
//! |---|---|---|
//! | torchvision `resnet*.pth` / safetensors | `conv1.weight`, `layer1.0.bn1.running_var`, `layer2.0.downsample.0.weight`, `fc.weight` | canonical |
//! | timm `resnet*` safetensors | same as torchvision | |
//! | checkpoints saved from `DataParallel` / wrappers | `module.` / `backbone.` prefixes | stripped |
//!
//! A 3-channel `conv1` loads into a 1-channel network by summing its filters over the
//! input channels (timm's `adapt_input_conv`).

use crate::weights::{adapt_input_conv, strip_wrappers, SourceTensor, Tensors};

/// Renames a source state dict to torchvision names; returns the naming recognised.
pub fn canonicalize(tensors: Tensors) -> (Tensors, String) {
    (strip_wrappers(tensors), "torchvision".into())
}

/// Shape conversions a ResNet file may need (the first convolution's input channels).
pub fn adapt(key: &str, src: &SourceTensor, expected: &[usize]) -> Option<(SourceTensor, String)> {
    (key == "conv1.weight")
        .then(|| adapt_input_conv(src, expected))
        .flatten()
}
