//! Per-image transforms on CHW buffers: normalization, random crop with zero padding,
//! horizontal flip, mixup and CutMix, and the [`Augment`] pipeline the loaders apply.
//!
//! Every function works on one image laid out channel-first (`c` planes of `h` rows of `w`
//! pixels), either the `u8` pixels of an [`ImageSet`](crate::ImageSet) or an `f32` buffer.
//! Randomness comes only from the [`Rng`](crate::Rng) passed in, so the same generator state
//! always gives the same output.
//!
//! # Order of operations (matches torchvision)
//! The usual training pipeline of the references, e.g. Outlier Exposure's
//! `trn.Compose([RandomHorizontalFlip(), RandomCrop(32, padding=4), ToTensor(), Normalize(m, s)])`
//! (`hendrycks/outlier-exposure`, `CIFAR/oe_tune.py`), is, in this order:
//! 1. [`random_horizontal_flip`] on the `u8` image (p = 0.5);
//! 2. [`random_crop_with_padding`] on the `u8` image: the padding is zero, i.e. black pixels,
//!    *before* normalization, so a padded pixel becomes `(0 - mean) / std` after step 3. This
//!    is what torchvision does (it pads the PIL image). Padding after normalization would
//!    fill with the mean colour instead: a different augmentation;
//! 3. [`to_f32_normalized`]: `(x / 255 - mean[c]) / std[c]` (`ToTensor` + `Normalize`).
//!
//! [`Augment::apply`] fuses the three steps into one pass over the output (no temporary
//! buffer) and gives exactly the values of the three functions applied in turn.
//!
//! Mixing ([`mixup`], [`cutmix_box`] + [`paste_box`]) works on normalized `f32` images of a
//! batch; the trainer's recipes decide the coefficients.
//!
//! # Views for semi-supervised and category-discovery methods
//! - [`pixel_ops`]: the Pillow operations RandAugment uses (rotate, shear, translate,
//!   posterize, solarize, equalize, autocontrast, contrast, brightness, sharpness, color),
//!   on `u8` CHW images, byte-exact with Pillow on the fixtures.
//! - [`randaugment`]: USB's RandAugment (3 ops with replacement, magnitudes uniform in each
//!   op's range) followed by Cutout; a grey-image variant for digits.
//! - [`views`]: [`ViewAugment`], one view = flip + crop (padded random crop, zero or
//!   reflect, or [`RandomResizedCrop`]) + optional RandAugment + normalization; presets for
//!   USB's weak / strong views, IOMatch's ImageNet-30 views and digits.
//! - [`resize`]: [`Preprocess`], the deterministic resize / centre crop applied when a set
//!   is loaded (torchvision `Resize(s)`, `Resize((h, w))`, `CenterCrop`).

mod augment;
mod geometric;
mod mix;
mod normalize;
pub mod pixel_ops;
pub mod randaugment;
pub mod resize;
pub mod views;

pub use augment::{Augment, AugmentDraw};
pub use geometric::{
    crop_with_padding, horizontal_flip, random_crop_with_padding, random_horizontal_flip,
};
pub use mix::{cutmix_box, lambda_from_box, mixup, mixup_in_place, paste_box, CutBox};
pub use normalize::{normalize_pixel, to_f32_normalized};
pub use randaugment::{RandAugment, RandAugmentDraw, RandAugmentOps, RandOp};
pub use resize::Preprocess;
pub use views::{
    shared_output_size, CropBox, PaddingMode, RandomResizedCrop, ViewAugment, ViewDraw,
};

/// Panics with a clear message unless `len == c * h * w`.
fn check_len(what: &str, len: usize, c: usize, h: usize, w: usize) {
    assert_eq!(
        len,
        c * h * w,
        "{what} holds {len} values, expected c*h*w = {c}*{h}*{w}"
    );
}
