//! WideResNet weights: the reference code's names (both flavours share them).
//!
//! | source | keys | notes |
//! |---|---|---|
//! | hendrycks/outlier-exposure, wetliu/energy_ood `.pt` | `conv1.weight`, `block1.layer.0.bn1.weight`, `block1.layer.0.convShortcut.weight`, `bn1.*`, `fc.*` | canonical |
//! | USB / IOMatch checkpoints | same names; a training checkpoint nests them under `model` or `ema_model` (select with `weights_key`) | `module.` prefixes stripped |
//!
//! The flavour is not stored in the file: an OE file has no convolution biases, so loading
//! it into a USB-style network reports the missing `*.bias` keys (and the reverse reports
//! unused ones).

use crate::weights::{adapt_input_conv, strip_wrappers, SourceTensor, Tensors};

/// Renames a source state dict to the reference names; returns the naming recognised.
pub fn canonicalize(tensors: Tensors) -> (Tensors, String) {
    (strip_wrappers(tensors), "wrn reference".into())
}

/// Shape conversions a WideResNet file may need (the first convolution's input channels).
pub fn adapt(key: &str, src: &SourceTensor, expected: &[usize]) -> Option<(SourceTensor, String)> {
    (key == "conv1.weight")
        .then(|| adapt_input_conv(src, expected))
        .flatten()
}
