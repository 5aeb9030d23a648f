//! ResNet weights: torchvision's names, which timm's ResNets share.
//!
//! | source | keys | notes |
//! |---|---|---|
//! | torchvision `resnet*.pth` / safetensors | `conv1.weight`, `layer1.0.bn1.running_var`, `layer2.0.downsample.0.weight`, `fc.weight` | canonical |
//! | timm `resnet*` safetensors | same as torchvision | |
//! | OpenOOD v1.5 `best.ckpt` (`ResNet18_32x32`, kuangliu/pytorch-cifar style) | torchvision's, but the projection shortcut is `layer2.0.shortcut.0.weight` (conv) / `layer2.0.shortcut.1.*` (BatchNorm) | `shortcut.{0,1}` renamed to `downsample.{0,1}`; load into `resnet18_cifar` (OpenOOD's `ResNet18_224x224` for ImageNet-200 has torchvision's names: `resnet18`) |
//! | checkpoints saved from `DataParallel` / wrappers | `module.` / `backbone.` prefixes | stripped |
//!
//! A 3-channel `conv1` loads into a 1-channel network by summing its filters over the
//! input channels (timm's `adapt_input_conv`).

use crate::weights::{adapt_input_conv, strip_wrappers, SourceTensor, Tensors};

/// The block-level module names of the sources whose projection shortcut is not
/// torchvision's `downsample`, and the naming they are reported as.
const SHORTCUT_NAMES: &[(&str, &str)] = &[("shortcut", "openood")];

/// Renames a source state dict to torchvision names; returns the naming recognised.
pub fn canonicalize(tensors: Tensors) -> (Tensors, String) {
    let tensors = strip_wrappers(tensors);
    // `layerN.M.<shortcut>.{0,1}.*` -> `layerN.M.downsample.{0,1}.*`; only the block's own
    // child is renamed, so a key elsewhere that happens to contain the word is left alone.
    let Some(&(from, naming)) = SHORTCUT_NAMES.iter().find(|(from, _)| {
        tensors
            .keys()
            .any(|k| k.starts_with("layer") && k.split('.').nth(2) == Some(*from))
    }) else {
        return (tensors, "torchvision".into());
    };
    let target = |k: &str| match k.splitn(4, '.').collect::<Vec<_>>().as_slice() {
        [layer, block, child, rest] if layer.starts_with("layer") && *child == from => {
            Some(format!("{layer}.{block}.downsample.{rest}"))
        }
        _ => None,
    };
    // A file with both namings keeps the colliding key as it is: `apply` then reports it
    // unused instead of one silently replacing the other.
    let taken: std::collections::BTreeSet<String> = tensors.keys().cloned().collect();
    let renamed = tensors
        .into_iter()
        .map(|(k, v)| match target(&k) {
            Some(t) if !taken.contains(&t) => (t, v),
            _ => (k, v),
        })
        .collect();
    (renamed, naming.into())
}

/// Shape conversions a ResNet file may need (the first convolution's input channels).
pub fn adapt(key: &str, src: &SourceTensor, expected: &[usize]) -> Option<(SourceTensor, String)> {
    (key == "conv1.weight")
        .then(|| adapt_input_conv(src, expected))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> SourceTensor {
        SourceTensor::new(vec![1], vec![0.0])
    }

    #[test]
    fn openood_shortcut_becomes_downsample() {
        let mut src = Tensors::new();
        for k in [
            "module.conv1.weight",
            "module.layer2.0.shortcut.0.weight",
            "module.layer2.0.shortcut.1.running_var",
            "module.layer1.0.conv1.weight",
            "module.fc.weight",
        ] {
            src.insert(k.into(), t());
        }
        let (out, naming) = canonicalize(src);
        assert_eq!(naming, "openood");
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "conv1.weight",
                "fc.weight",
                "layer1.0.conv1.weight",
                "layer2.0.downsample.0.weight",
                "layer2.0.downsample.1.running_var",
            ]
        );
    }

    #[test]
    fn torchvision_names_are_kept() {
        let mut src = Tensors::new();
        src.insert("layer2.0.downsample.0.weight".into(), t());
        src.insert("shortcut.0.weight".into(), t());
        let (out, naming) = canonicalize(src.clone());
        assert_eq!(naming, "torchvision");
        assert_eq!(out, src);
    }

    #[test]
    fn both_namings_are_not_merged() {
        // The `shortcut` tensor stays under its name (and is reported unused on load).
        let mut src = Tensors::new();
        src.insert("layer2.0.downsample.0.weight".into(), t());
        src.insert("layer2.0.shortcut.0.weight".into(), t());
        src.insert("layer3.0.shortcut.0.weight".into(), t());
        let (out, _) = canonicalize(src);
        let keys: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "layer2.0.downsample.0.weight",
                "layer2.0.shortcut.0.weight",
                "layer3.0.downsample.0.weight",
            ]
        );
    }
}
