//! One augmented *view* of an image: flip, crop (a padded random crop with zero or reflect
//! padding, or a random resized crop), optional RandAugment + Cutout, normalization. Weak
//! and strong views of FixMatch-style methods and the two contrastive views of GCD /
//! SimGCD are all [`ViewAugment`]s; the
//! [`MultiViewLoader`](crate::multiview::MultiViewLoader) draws several per image.
//!
//! # The references
//! - USB / IOMatch (`semilearn/datasets/cv_datasets/cifar.py`, `get_cifar_openset`):
//!   weak = `RandomCrop(s, padding=int(s * (1 - crop_ratio)), padding_mode='reflect')`,
//!   `RandomHorizontalFlip()`; strong = weak + `RandAugment(3, 5)` (which ends with
//!   Cutout); `crop_ratio = 0.875`, so `padding = 4` at 32x32. [`ViewAugment::usb_weak`],
//!   [`ViewAugment::usb_strong`].
//! - IOMatch on ImageNet-30 (`semilearn/datasets/cv_datasets/imagenet30.py`,
//!   `get_imagenet30`), after `Resize((256, 256))` (a [`Preprocess`](super::Preprocess)
//!   with `resize_to`, applied when loading): weak = `RandomCrop((224, 224))` +
//!   `RandomHorizontalFlip()`; strong = `RandomResizedCropAndInterpolation((224, 224))`
//!   (bilinear, `semilearn/datasets/augmentation/transforms.py`), `RandomHorizontalFlip()`,
//!   `RandAugment(3, 10)` (USB's RandAugment draws its magnitudes and ignores the 10, so it
//!   is [`RandAugment::usb`]). [`ViewAugment::imagenet_weak`],
//!   [`ViewAugment::imagenet_strong`].
//! - GCD / SimGCD (`data/augmentations/__init__.py`, `ContrastiveLearningViewGenerator`):
//!   two independent draws of the same train transform. For 32x32 images that is
//!   `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` (GCD's `pytorch-cifar`
//!   transform, zero padding): [`ViewAugment::from_augment`] of an [`Augment`]. (Their
//!   ViT runs resize to 224 first; resizing is [`Preprocess`](super::Preprocess)'s job.)
//!
//! # Crops
//! - Padded random crop (torchvision `RandomCrop(size, padding)`): pad by `crop_padding`,
//!   then cut a `crop_size x crop_size` window (the image's own `h x w` when `crop_size` is
//!   absent) at a uniform offset.
//! - Random resized crop (torchvision `RandomResizedCrop.get_params`, [`RandomResizedCrop`]):
//!   a box of random area and aspect ratio, resized to `size x size` with Pillow's bilinear
//!   filter ([`resize_bilinear`]). Exclusive with the padded crop.
//!
//! A view's output is `c x` [`ViewAugment::output_size`]: the crop's size when it has one,
//! else the input size.
//!
//! # Order
//! [`ViewAugment::apply`] flips, crops, runs RandAugment, then normalizes. The references
//! crop before flipping; a uniform crop offset is symmetric, so the two orders give the
//! same distribution of outputs (except the centre-crop fallback of a resized crop, whose
//! left offset `(W - w) / 2` then lands one pixel to the left of its mirror when `W - w` is
//! odd), and flipping first makes a view without RandAugment and with zero padding
//! *bit-identical* to [`Augment::apply`] with the same generator (tested).
//!
//! # Digits (MNIST, Fashion-MNIST, 1x28x28)
//! [`ViewAugment::digits_weak`] / [`ViewAugment::digits_strong`]: no flip (a mirrored 2 is
//! not a 2; Fashion-MNIST items are mostly symmetric, so flipping adds little), zero
//! padding of `int(28 * (1 - 0.875)) = 3` (black is the background, so zero padding is the
//! natural choice), and [`RandAugment::grey`] for the strong view.
//!
//! # Draws
//! From the given [`Rng`], in this order:
//! 1. the flip (`next_f64`, when `hflip`);
//! 2. the crop:
//!    - padded crop of `s` (`s` = `crop_size`, or the image size) from `H x W` padded by
//!      `p`: nothing when `H + 2p = s` and `W + 2p = s` (torchvision's shortcut, so no crop
//!      and no padding draw nothing), else the top then the left offset,
//!      `below(H + 2p - s + 1)` and `below(W + 2p - s + 1)`; with `crop_size` absent that is
//!      `below(2p + 1)` twice when `p > 0`;
//!    - resized crop: per attempt (at most 10) `next_f64` for the area then `next_f64` for
//!      the log aspect ratio, and for the accepted attempt `below(H - h + 1)` (top) then
//!      `below(W - w + 1)` (left); the fallback draws nothing more;
//! 3. RandAugment's draws (see [`randaugment`](super::randaugment)).

use serde::{Deserialize, Serialize};

use super::check_len;
use super::normalize::normalize_pixel;
use super::randaugment::{RandAugment, RandAugmentDraw};
use super::resize::resize_bilinear;
use super::Augment;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// How the random crop pads the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    /// Black (zero) pixels, torchvision's default `padding_mode='constant'`.
    #[default]
    Zero,
    /// Mirror without repeating the edge, torchvision's `padding_mode='reflect'` (USB):
    /// padded pixel `-k` reads pixel `k`, pixel `n - 1 + k` reads `n - 1 - k`.
    Reflect,
}

/// A box inside an image: rows `top..top + height`, columns `left..left + width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// First row.
    pub top: usize,
    /// First column.
    pub left: usize,
    /// Number of rows.
    pub height: usize,
    /// Number of columns.
    pub width: usize,
}

fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}

fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}

/// torchvision's `RandomResizedCrop` (IOMatch's `RandomResizedCropAndInterpolation`,
/// bilinear): a box covering a random fraction `scale` of the image area with a random
/// aspect ratio (width / height) in `ratio`, resized to `size x size`.
///
/// ```toml
/// [strong.resized_crop]
/// size = 224
/// scale = [0.08, 1.0]      # the defaults
/// ratio = [0.75, 1.3333333333333333]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomResizedCrop {
    /// Side of the square output.
    pub size: usize,
    /// Range of the box area as a fraction of the image area (default `[0.08, 1.0]`).
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// Range of the box aspect ratio, width / height (default `[3/4, 4/3]`); drawn
    /// log-uniformly.
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
}

/// The draws [`RandomResizedCrop::get_params`] needs (a generator, or a script in tests).
trait Draws {
    fn unit(&mut self) -> f64;
    fn below(&mut self, n: usize) -> usize;
}

impl Draws for Rng {
    fn unit(&mut self) -> f64 {
        self.next_f64()
    }
    fn below(&mut self, n: usize) -> usize {
        Rng::below(self, n)
    }
}

/// Python's `int(round(x))` (round half to even) for a non-negative finite `x`.
fn round_even(x: f64) -> usize {
    x.round_ties_even() as usize
}

impl RandomResizedCrop {
    /// A crop to `size x size` with the default `scale` and `ratio`.
    pub fn new(size: usize) -> Self {
        Self {
            size,
            scale: default_scale(),
            ratio: default_ratio(),
        }
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the value: `size` 0, `scale` not finite with
    /// `0 < scale[0] <= scale[1]`, or `ratio` not finite with `0 < ratio[0] <= ratio[1]`.
    pub fn validate(&self) -> Result<()> {
        if self.size == 0 {
            return Err(DataError::Invalid(
                "view: resized_crop.size must be at least 1".into(),
            ));
        }
        for (key, [lo, hi]) in [("scale", self.scale), ("ratio", self.ratio)] {
            if !(lo.is_finite() && hi.is_finite() && lo > 0.0 && lo <= hi) {
                return Err(DataError::Invalid(format!(
                    "view: resized_crop.{key} = [{lo}, {hi}] must be [min, max] with \
                     0 < min <= max"
                )));
            }
        }
        Ok(())
    }

    /// Draws the box for an `h x w` image, as torchvision's `RandomResizedCrop.get_params`:
    /// up to 10 attempts of `target_area = h·w·U(scale)`,
    /// `aspect = exp(U(ln ratio[0], ln ratio[1]))`, `width = round(√(target_area·aspect))`,
    /// `height = round(√(target_area / aspect))` (half to even, as Python), accepted when
    /// `0 < width <= w` and `0 < height <= h`, then `top = below(h - height + 1)` and
    /// `left = below(w - width + 1)`. When no attempt fits, the centre box of the whole
    /// image with its aspect ratio clamped into `ratio` (`w / h < ratio[0]`: full width,
    /// `height = round(w / ratio[0])`; `w / h > ratio[1]`: full height,
    /// `width = round(h · ratio[1])`; else the whole image), at `((h - height) / 2,
    /// (w - width) / 2)` (floor). The fallback's sides are kept within `1..=h` / `1..=w`
    /// (torchvision would fail on an empty box).
    pub fn get_params(&self, h: usize, w: usize, rng: &mut Rng) -> CropBox {
        self.params_from(h, w, rng)
    }

    fn params_from(&self, h: usize, w: usize, draws: &mut impl Draws) -> CropBox {
        let area = (h * w) as f64;
        let (log_lo, log_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * draws.unit());
            let aspect = (log_lo + (log_hi - log_lo) * draws.unit()).exp();
            let bw = round_even((target * aspect).sqrt());
            let bh = round_even((target / aspect).sqrt());
            if 0 < bw && bw <= w && 0 < bh && bh <= h {
                let top = draws.below(h - bh + 1);
                let left = draws.below(w - bw + 1);
                return CropBox {
                    top,
                    left,
                    height: bh,
                    width: bw,
                };
            }
        }
        let in_ratio = w as f64 / h as f64;
        let (bh, bw) = if in_ratio < self.ratio[0] {
            (round_even(w as f64 / self.ratio[0]), w)
        } else if in_ratio > self.ratio[1] {
            (h, round_even(h as f64 * self.ratio[1]))
        } else {
            (h, w)
        };
        let (bh, bw) = (bh.clamp(1, h.max(1)), bw.clamp(1, w.max(1)));
        CropBox {
            top: (h - bh) / 2,
            left: (w - bw) / 2,
            height: bh,
            width: bw,
        }
    }
}

/// One view's pipeline, written in a config as e.g.
///
/// ```toml
/// [strong]
/// crop_padding = 4
/// padding_mode = "reflect"
/// hflip = true
/// mean = [0.485, 0.456, 0.406]
/// std = [0.229, 0.224, 0.225]
/// [strong.randaugment]          # absent = weak view
/// num_ops = 3
/// ```
///
/// or, for ImageNet-sized images (IOMatch's ImageNet-30 views):
///
/// ```toml
/// [weak]
/// crop_size = 224               # RandomCrop(224), no padding
/// hflip = true
/// mean = [0.485, 0.456, 0.406]
/// std = [0.229, 0.224, 0.225]
///
/// [strong]
/// hflip = true
/// mean = [0.485, 0.456, 0.406]
/// std = [0.229, 0.224, 0.225]
/// resized_crop = { size = 224 } # RandomResizedCrop(224)
/// [strong.randaugment]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewAugment {
    /// Padding of the random crop on each side, in pixels; 0 and no `crop_size` disables
    /// the padded crop.
    #[serde(default)]
    pub crop_padding: usize,
    /// Side of the square random crop cut from the padded image (torchvision
    /// `RandomCrop(crop_size, padding)`); absent: the image's own size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop_size: Option<usize>,
    /// What the padding holds.
    #[serde(default)]
    pub padding_mode: PaddingMode,
    /// A random resized crop instead of the padded crop (exclusive with `crop_padding` and
    /// `crop_size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resized_crop: Option<RandomResizedCrop>,
    /// Random horizontal flip with probability 1/2. Keep it off for digits.
    #[serde(default)]
    pub hflip: bool,
    /// RandAugment + Cutout after the crop (a *strong* view); `None` for a weak view.
    #[serde(default)]
    pub randaugment: Option<RandAugment>,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

/// What [`ViewAugment::apply`] drew for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewDraw {
    /// Whether the image was mirrored.
    pub flipped: bool,
    /// Top row of the crop box in the (mirrored, padded) image.
    pub top: usize,
    /// Left column of the crop box in the (mirrored, padded) image.
    pub left: usize,
    /// Rows of the crop box: the output height for a padded crop, the box before resizing
    /// for a resized crop.
    pub crop_height: usize,
    /// Columns of the crop box: the output width for a padded crop, the box before
    /// resizing for a resized crop.
    pub crop_width: usize,
    /// RandAugment's draws (strong views only).
    pub randaugment: Option<RandAugmentDraw>,
}

/// USB's `crop_ratio` default: the crop padding is `int(size * (1 - 0.875))`.
pub const USB_CROP_RATIO: f64 = 0.875;

/// Validates every view against `channels x height x width` images and returns the one
/// output size they share ([`ViewAugment::output_size`]): the views drawn into one batch
/// must give one shape.
///
/// # Errors
/// [`DataError::Invalid`] naming the view: no view, a view that does not fit the images
/// ([`ViewAugment::validate`]), or a view whose output size differs from view 0's.
pub fn shared_output_size(
    views: &[ViewAugment],
    channels: usize,
    height: usize,
    width: usize,
) -> Result<(usize, usize)> {
    let Some(first) = views.first() else {
        return Err(DataError::Invalid("no view".into()));
    };
    for (v, view) in views.iter().enumerate() {
        view.validate(channels, height, width)
            .map_err(|e| DataError::Invalid(format!("view {v}: {e}")))?;
    }
    let (h0, w0) = first.output_size(height, width);
    for (v, view) in views.iter().enumerate().skip(1) {
        let (h, w) = view.output_size(height, width);
        if (h, w) != (h0, w0) {
            return Err(DataError::Invalid(format!(
                "view {v} outputs {h}x{w} images and view 0 {h0}x{w0} (from {height}x{width} \
                 inputs); the views of a batch must share one size (set their crop_size / \
                 resized_crop.size alike)"
            )));
        }
    }
    Ok((h0, w0))
}

/// `int(size * (1 - crop_ratio))`, USB's padding for a random crop of `size`.
pub fn usb_padding(size: usize, crop_ratio: f64) -> usize {
    (size as f64 * (1.0 - crop_ratio)) as usize
}

/// The source index read by padded coordinate `i` (in `0..n + 2p`), or `None` for a zero
/// pixel.
#[inline]
fn source_index(i: usize, n: usize, p: usize, mode: PaddingMode) -> Option<usize> {
    let s = i as isize - p as isize;
    let n = n as isize;
    if (0..n).contains(&s) {
        return Some(s as usize);
    }
    match mode {
        PaddingMode::Zero => None,
        PaddingMode::Reflect => {
            let r = if s < 0 { -s } else { 2 * (n - 1) - s };
            Some(r.clamp(0, n - 1) as usize)
        }
    }
}

/// Crops an `h x w` window at `(top, left)` out of `src` padded by `padding` pixels on
/// every side (`mode` decides what the padding holds), reading `src` mirrored when
/// `flipped`: `dst[ch][y][x] = padded(flip(src))[ch][y + top][x + left]`.
///
/// # Panics
/// If `src` or `dst` does not hold `c * h * w` bytes, an offset exceeds `2 * padding`, or
/// reflect padding is not smaller than the image (`padding >= h` or `>= w`).
pub fn crop_padded(
    src: &[u8],
    c: usize,
    h: usize,
    w: usize,
    padding: usize,
    mode: PaddingMode,
    flipped: bool,
    top: usize,
    left: usize,
    dst: &mut [u8],
) {
    assert!(
        top <= 2 * padding && left <= 2 * padding,
        "crop offset ({top}, {left}) is outside 0..={} for padding {padding}",
        2 * padding
    );
    crop_padded_window(src, c, h, w, padding, mode, flipped, top, left, h, w, dst);
}

/// Crops an `oh x ow` window at `(top, left)` out of the `c x h x w` image `src` padded by
/// `padding` pixels on every side (`mode` decides what the padding holds), reading `src`
/// mirrored when `flipped`: `dst[ch][y][x] = padded(flip(src))[ch][y + top][x + left]`.
///
/// # Panics
/// If `src` does not hold `c * h * w` bytes or `dst` `c * oh * ow`, the window leaves the
/// padded image (`top + oh > h + 2 * padding` or `left + ow > w + 2 * padding`), or reflect
/// padding is not smaller than the image (`padding >= h` or `>= w`).
pub fn crop_padded_window(
    src: &[u8],
    c: usize,
    h: usize,
    w: usize,
    padding: usize,
    mode: PaddingMode,
    flipped: bool,
    top: usize,
    left: usize,
    oh: usize,
    ow: usize,
    dst: &mut [u8],
) {
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, oh, ow);
    assert!(
        top + oh <= h + 2 * padding && left + ow <= w + 2 * padding,
        "crop window {oh}x{ow} at ({top}, {left}) leaves the {}x{} padded image",
        h + 2 * padding,
        w + 2 * padding
    );
    assert!(
        mode == PaddingMode::Zero || (padding < h && padding < w),
        "reflect padding {padding} needs an image larger than it ({h}x{w})"
    );
    let cols: Vec<Option<usize>> = (0..ow)
        .map(|x| {
            source_index(x + left, w, padding, mode).map(|sx| if flipped { w - 1 - sx } else { sx })
        })
        .collect();
    for ch in 0..c {
        for y in 0..oh {
            let out = &mut dst[(ch * oh + y) * ow..(ch * oh + y + 1) * ow];
            match source_index(y + top, h, padding, mode) {
                None => out.fill(0),
                Some(sy) => {
                    let row = &src[(ch * h + sy) * w..(ch * h + sy + 1) * w];
                    for (o, col) in out.iter_mut().zip(&cols) {
                        *o = col.map_or(0, |sx| row[sx]);
                    }
                }
            }
        }
    }
}

impl ViewAugment {
    /// The same pipeline as `augment` (zero padding, no RandAugment): applying it gives
    /// exactly [`Augment::apply`]'s values and draws.
    pub fn from_augment(augment: &Augment) -> Self {
        Self {
            crop_padding: augment.crop_padding,
            crop_size: None,
            padding_mode: PaddingMode::Zero,
            resized_crop: None,
            hflip: augment.hflip,
            randaugment: None,
            mean: augment.mean.clone(),
            std: augment.std.clone(),
        }
    }

    /// USB's weak view for `size x size` images: reflect-padded random crop with padding
    /// [`usb_padding`]`(size, 0.875)` (4 at 32) and a horizontal flip.
    pub fn usb_weak(size: usize, mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: usb_padding(size, USB_CROP_RATIO),
            crop_size: None,
            padding_mode: PaddingMode::Reflect,
            resized_crop: None,
            hflip: true,
            randaugment: None,
            mean,
            std,
        }
    }

    /// USB's strong view: [`ViewAugment::usb_weak`] followed by [`RandAugment::usb`].
    pub fn usb_strong(size: usize, mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self::usb_weak(size, mean, std).strong(RandAugment::usb())
    }

    /// IOMatch's ImageNet-30 weak view (`get_imagenet30`, on images already resized to
    /// 256x256): `RandomCrop(crop)` without padding and a horizontal flip.
    pub fn imagenet_weak(crop: usize, mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: 0,
            crop_size: Some(crop),
            padding_mode: PaddingMode::Zero,
            resized_crop: None,
            hflip: true,
            randaugment: None,
            mean,
            std,
        }
    }

    /// IOMatch's ImageNet-30 strong view: `RandomResizedCropAndInterpolation(crop)`
    /// (bilinear, default scale and ratio), a horizontal flip and [`RandAugment::usb`]
    /// (the reference's `RandAugment(3, 10)`).
    pub fn imagenet_strong(crop: usize, mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: 0,
            crop_size: None,
            padding_mode: PaddingMode::Zero,
            resized_crop: Some(RandomResizedCrop::new(crop)),
            hflip: true,
            randaugment: Some(RandAugment::usb()),
            mean,
            std,
        }
    }

    /// The weak view for 1x28x28 digits: no flip, zero padding of 3, no RandAugment.
    pub fn digits_weak(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: usb_padding(28, USB_CROP_RATIO),
            crop_size: None,
            padding_mode: PaddingMode::Zero,
            resized_crop: None,
            hflip: false,
            randaugment: None,
            mean,
            std,
        }
    }

    /// The strong view for digits: [`ViewAugment::digits_weak`] + [`RandAugment::grey`].
    pub fn digits_strong(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self::digits_weak(mean, std).strong(RandAugment::grey())
    }

    /// This view followed by `randaugment` (a strong view).
    pub fn strong(mut self, randaugment: RandAugment) -> Self {
        self.randaugment = Some(randaugment);
        self
    }

    /// True when the view may draw random numbers (a `crop_size` equal to the image size
    /// without padding draws nothing, but counts here).
    pub fn is_random(&self) -> bool {
        self.hflip
            || self.crop_padding > 0
            || self.crop_size.is_some()
            || self.resized_crop.is_some()
            || self.randaugment.is_some()
    }

    /// The `(height, width)` of the view of an `h x w` image: the resized crop's size, else
    /// `crop_size` squared, else `(h, w)`.
    pub fn output_size(&self, h: usize, w: usize) -> (usize, usize) {
        match (&self.resized_crop, self.crop_size) {
            (Some(r), _) => (r.size, r.size),
            (None, Some(s)) => (s, s),
            (None, None) => (h, w),
        }
    }

    /// Checks the view against images of `channels x height x width`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the value: mean / std not one finite value (std
    /// positive) per channel, reflect padding not smaller than the image, a `crop_size` of
    /// 0 or larger than the padded image, a `resized_crop` combined with `crop_padding` /
    /// `crop_size` or with bad settings ([`RandomResizedCrop::validate`]), or RandAugment
    /// settings that do not fit (see [`RandAugment::validate`]).
    pub fn validate(&self, channels: usize, height: usize, width: usize) -> Result<()> {
        Augment::normalize_only(self.mean.clone(), self.std.clone())
            .validate(channels)
            .map_err(|e| DataError::Invalid(format!("view: {e}")))?;
        if let Some(r) = &self.resized_crop {
            if self.crop_padding > 0 || self.crop_size.is_some() {
                return Err(DataError::Invalid(format!(
                    "view: resized_crop cannot be combined with crop_padding = {} / crop_size \
                     = {:?}: it is a crop of its own (remove one of them)",
                    self.crop_padding, self.crop_size
                )));
            }
            r.validate()?;
            if height == 0 || width == 0 {
                return Err(DataError::Invalid(format!(
                    "view: resized_crop needs non-empty images, found {height}x{width}"
                )));
            }
        }
        if self.padding_mode == PaddingMode::Reflect
            && (self.crop_padding >= height || self.crop_padding >= width)
        {
            return Err(DataError::Invalid(format!(
                "view: reflect crop_padding = {} needs images larger than it ({height}x{width})",
                self.crop_padding
            )));
        }
        if let Some(s) = self.crop_size {
            let p = self.crop_padding;
            if s == 0 || s > height + 2 * p || s > width + 2 * p {
                return Err(DataError::Invalid(format!(
                    "view: crop_size = {s} does not fit {height}x{width} images padded by \
                     crop_padding = {p} (expected 1..={})",
                    height.min(width) + 2 * p
                )));
            }
        }
        if let Some(ra) = &self.randaugment {
            ra.validate(channels)?;
        }
        Ok(())
    }

    /// Flips, crops and (for a strong view) runs RandAugment on the `u8` CHW image `src`
    /// (`c x h x w`), writing the `u8` view (`c x` [`ViewAugment::output_size`]`(h, w)`, no
    /// normalization) to `dst`.
    ///
    /// # Panics
    /// If `src` does not hold `c * h * w` bytes, `dst` does not hold `c * oh * ow` for
    /// `(oh, ow) = output_size(h, w)`, or the settings do not fit the image (see
    /// [`ViewAugment::validate`]).
    pub fn apply_u8(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        dst: &mut [u8],
    ) -> ViewDraw {
        let (oh, ow) = self.output_size(h, w);
        check_len("destination buffer", dst.len(), c, oh, ow);
        let flipped = self.hflip && rng.bernoulli(0.5);
        let crop = match &self.resized_crop {
            Some(r) => {
                let b = r.get_params(h, w, rng);
                let mut boxed = vec![0u8; c * b.height * b.width];
                crop_padded_window(
                    src,
                    c,
                    h,
                    w,
                    0,
                    PaddingMode::Zero,
                    flipped,
                    b.top,
                    b.left,
                    b.height,
                    b.width,
                    &mut boxed,
                );
                dst.copy_from_slice(&resize_bilinear(&boxed, c, b.height, b.width, oh, ow));
                b
            }
            None => {
                let p = self.crop_padding;
                let (ph, pw) = (h + 2 * p, w + 2 * p);
                assert!(
                    oh <= ph && ow <= pw,
                    "crop {oh}x{ow} does not fit {h}x{w} images padded by {p}"
                );
                let (top, left) = if (ph, pw) == (oh, ow) {
                    (0, 0)
                } else {
                    let top = rng.below(ph - oh + 1);
                    (top, rng.below(pw - ow + 1))
                };
                crop_padded_window(
                    src,
                    c,
                    h,
                    w,
                    p,
                    self.padding_mode,
                    flipped,
                    top,
                    left,
                    oh,
                    ow,
                    dst,
                );
                CropBox {
                    top,
                    left,
                    height: oh,
                    width: ow,
                }
            }
        };
        let randaugment = self
            .randaugment
            .as_ref()
            .map(|ra| ra.apply(dst, c, oh, ow, rng));
        ViewDraw {
            flipped,
            top: crop.top,
            left: crop.left,
            crop_height: crop.height,
            crop_width: crop.width,
            randaugment,
        }
    }

    /// [`ViewAugment::apply_u8`] followed by `(x / 255 - mean) / std` into `dst`
    /// (`c x` [`ViewAugment::output_size`]`(h, w)` floats).
    ///
    /// # Panics
    /// As [`ViewAugment::apply_u8`], or if `dst` does not hold `c * oh * ow` values or mean
    /// / std do not hold `c`.
    pub fn apply(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        dst: &mut [f32],
    ) -> ViewDraw {
        let (oh, ow) = self.output_size(h, w);
        check_len("destination buffer", dst.len(), c, oh, ow);
        assert!(
            self.mean.len() == c && self.std.len() == c,
            "view mean ({}) and std ({}) need one value per channel ({c})",
            self.mean.len(),
            self.std.len()
        );
        let mut pixels = vec![0u8; c * oh * ow];
        let draw = self.apply_u8(src, c, h, w, rng, &mut pixels);
        let plane = oh * ow;
        for ch in 0..c {
            let (m, s) = (self.mean[ch], self.std[ch]);
            let range = ch * plane..(ch + 1) * plane;
            for (d, &v) in dst[range.clone()].iter_mut().zip(&pixels[range]) {
                *d = normalize_pixel(v, m, s);
            }
        }
        draw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_padded_view_equals_augment_bit_for_bit() {
        let (c, h, w) = (3, 5, 6);
        let src: Vec<u8> = (0..c * h * w).map(|i| (i * 29 % 256) as u8).collect();
        let aug = Augment {
            crop_padding: 2,
            hflip: true,
            mean: vec![0.5, 0.4, 0.3],
            std: vec![0.2, 0.3, 0.4],
        };
        let view = ViewAugment::from_augment(&aug);
        for seed in 0..100 {
            let (mut r1, mut r2) = (Rng::new(seed), Rng::new(seed));
            let mut a = vec![0f32; c * h * w];
            let mut b = vec![0f32; c * h * w];
            let da = aug.apply(&src, c, h, w, &mut r1, &mut a);
            let db = view.apply(&src, c, h, w, &mut r2, &mut b);
            assert_eq!(a, b, "seed {seed}");
            assert_eq!((da.flipped, da.top, da.left), (db.flipped, db.top, db.left));
            assert_eq!(r1, r2);
        }
    }

    #[test]
    fn reflect_padding_by_hand() {
        // Rows 1 2 3 4 (three equal rows, top = 2: no vertical shift) padded by 2 with
        // reflect: 3 2 | 1 2 3 4 | 3 2.
        let src = [1u8, 2, 3, 4].repeat(3);
        let mut dst = [0u8; 12];
        for (left, want) in [
            (0, [3, 2, 1, 2]),
            (1, [2, 1, 2, 3]),
            (2, [1, 2, 3, 4]),
            (4, [3, 4, 3, 2]),
        ] {
            crop_padded(
                &src,
                1,
                3,
                4,
                2,
                PaddingMode::Reflect,
                false,
                2,
                left,
                &mut dst,
            );
            assert_eq!(dst[..4], want, "left {left}");
        }
        // Mirrored first, then padded: 4 3 2 1 -> padded 2 3 | 4 3 2 1 | 2 3.
        crop_padded(&src, 1, 3, 4, 2, PaddingMode::Reflect, true, 2, 0, &mut dst);
        assert_eq!(dst[..4], [2, 3, 4, 3]);
        // Zero padding: top = 0 shifts two black rows in.
        crop_padded(&src, 1, 3, 4, 2, PaddingMode::Zero, false, 0, 0, &mut dst);
        assert_eq!(dst, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        // Vertical reflect on 3x2 rows (1 1), (2 2), (3 3) with padding 1, top 0: rows 2 1 2.
        let mut img = [0u8; 6];
        crop_padded(
            &[1, 1, 2, 2, 3, 3],
            1,
            3,
            2,
            1,
            PaddingMode::Reflect,
            false,
            0,
            1,
            &mut img,
        );
        assert_eq!(img, [2, 2, 1, 1, 2, 2]);
    }

    #[test]
    fn presets_follow_the_references() {
        let m = vec![0.5; 3];
        let weak = ViewAugment::usb_weak(32, m.clone(), m.clone());
        assert_eq!(
            (weak.crop_padding, weak.padding_mode, weak.hflip),
            (4, PaddingMode::Reflect, true)
        );
        assert_eq!(
            ViewAugment::usb_strong(32, m.clone(), m.clone()).randaugment,
            Some(RandAugment::usb())
        );
        let d = ViewAugment::digits_strong(vec![0.1307], vec![0.3081]);
        assert_eq!((d.crop_padding, d.hflip), (3, false));
        assert_eq!(d.randaugment, Some(RandAugment::grey()));
        d.validate(1, 28, 28).unwrap();
        assert_eq!(usb_padding(224, 0.875), 28);
        let e = ViewAugment::usb_weak(32, m.clone(), m.clone())
            .validate(3, 4, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("reflect crop_padding = 4"), "{e}");
        let e = ViewAugment::usb_weak(32, m.clone(), m)
            .validate(1, 32, 32)
            .unwrap_err();
        assert!(e.to_string().contains("per channel"), "{e}");
    }

    #[test]
    fn strong_view_is_weak_then_randaugment() {
        let (c, h, w) = (3, 8, 8);
        let src: Vec<u8> = (0..c * h * w).map(|i| (i * 71 % 256) as u8).collect();
        let m = vec![0.0; 3];
        let s = vec![1.0; 3];
        let strong = ViewAugment::usb_strong(8, m.clone(), s.clone());
        assert_eq!(strong.crop_padding, 1);
        for seed in 0..30 {
            let mut rng = Rng::new(seed);
            let mut out = vec![0u8; c * h * w];
            let draw = strong.apply_u8(&src, c, h, w, &mut rng, &mut out);
            let mut manual = vec![0u8; c * h * w];
            crop_padded(
                &src,
                c,
                h,
                w,
                1,
                PaddingMode::Reflect,
                draw.flipped,
                draw.top,
                draw.left,
                &mut manual,
            );
            let mut replay = Rng::new(seed);
            replay.next_f64();
            replay.below(3);
            replay.below(3);
            let ra = RandAugment::usb().apply(&mut manual, c, h, w, &mut replay);
            assert_eq!(Some(ra), draw.randaugment);
            assert_eq!(out, manual);
            assert_eq!(rng, replay);
            let mut f = vec![0f32; c * h * w];
            strong.apply(&src, c, h, w, &mut Rng::new(seed), &mut f);
            assert!(f.iter().zip(&out).all(|(a, &b)| *a == b as f32 / 255.0));
        }
    }

    /// Scripted draws: `units` for `next_f64`, `belows` as `(expected n, value)`.
    struct Script {
        units: Vec<f64>,
        belows: Vec<(usize, usize)>,
    }

    impl Script {
        fn new(units: &[f64], belows: &[(usize, usize)]) -> Self {
            Self {
                units: units.iter().rev().copied().collect(),
                belows: belows.iter().rev().copied().collect(),
            }
        }
        fn done(&self) -> bool {
            self.units.is_empty() && self.belows.is_empty()
        }
    }

    impl Draws for Script {
        fn unit(&mut self) -> f64 {
            self.units.pop().expect("script ran out of units")
        }
        fn below(&mut self, n: usize) -> usize {
            let (want, v) = self.belows.pop().expect("script ran out of belows");
            assert_eq!(n, want, "below({n}) where the script expects below({want})");
            v
        }
    }

    fn bx(top: usize, left: usize, height: usize, width: usize) -> CropBox {
        CropBox {
            top,
            left,
            height,
            width,
        }
    }

    #[test]
    fn resized_crop_box_by_hand() {
        let r = RandomResizedCrop::new(8);
        // 100x100, U = 0.5 twice: area 10000 * (0.08 + 0.92 / 2) = 5400, aspect exp(0) = 1,
        // sides round(sqrt(5400)) = round(73.48) = 73; top / left below(100 - 73 + 1 = 28).
        let mut s = Script::new(&[0.5, 0.5], &[(28, 27), (28, 0)]);
        assert_eq!(r.params_from(100, 100, &mut s), bx(27, 0, 73, 73));
        assert!(s.done());
        // 100 rows x 50 columns. Attempt 1 (U = 0.999999, 0.999999): area ~ 5000, aspect ~
        // 4/3, width round(sqrt(6666.6)) = 82 > 50: rejected. Attempt 2 (U = 0, 0): area
        // 400, aspect 3/4: width round(sqrt(300)) = 17, height round(sqrt(533.3)) = 23;
        // top below(78), left below(34).
        let mut s = Script::new(&[0.999999, 0.999999, 0.0, 0.0], &[(78, 5), (34, 33)]);
        assert_eq!(r.params_from(100, 50, &mut s), bx(5, 33, 23, 17));
        assert!(s.done());
        // Python's round: sqrt(100 * 0.0625) = 2.5 rounds to 2 (half to even), not 3.
        let half = RandomResizedCrop {
            size: 4,
            scale: [0.0625, 0.0625],
            ratio: [1.0, 1.0],
        };
        let mut s = Script::new(&[0.3, 0.7], &[(9, 8), (9, 1)]);
        assert_eq!(half.params_from(10, 10, &mut s), bx(8, 1, 2, 2));
        assert!(s.done());
    }

    #[test]
    fn resized_crop_fallback_by_hand() {
        // scale = [2, 2] never fits: 10 attempts (20 units), then the centre crop.
        let never = |ratio: [f64; 2]| RandomResizedCrop {
            size: 8,
            scale: [2.0, 2.0],
            ratio,
        };
        let fallback = |r: &RandomResizedCrop, h: usize, w: usize| {
            let mut s = Script::new(&[0.5; 20], &[]);
            let b = r.params_from(h, w, &mut s);
            assert!(s.done());
            b
        };
        let default = never([3.0 / 4.0, 4.0 / 3.0]);
        // 10x40: w/h = 4 > 4/3, full height, width round(10 * 4/3) = 13, left (40-13)/2 = 13.
        assert_eq!(fallback(&default, 10, 40), bx(0, 13, 10, 13));
        // 40x10: w/h = 1/4 < 3/4, full width, height round(10 / 0.75) = 13, top 13.
        assert_eq!(fallback(&default, 40, 10), bx(13, 0, 13, 10));
        // Within the ratio range: the whole image.
        assert_eq!(fallback(&never([0.5, 2.0]), 20, 30), bx(0, 0, 20, 30));
        // round(10 * 1.25) = round(12.5) = 12 (half to even); left (40 - 12) / 2 = 14.
        assert_eq!(fallback(&never([0.75, 1.25]), 10, 40), bx(0, 14, 10, 12));
        // With a generator: exactly 20 uniforms are drawn.
        let mut rng = Rng::new(3);
        assert_eq!(default.get_params(10, 40, &mut rng), bx(0, 13, 10, 13));
        let mut replay = Rng::new(3);
        for _ in 0..20 {
            replay.next_f64();
        }
        assert_eq!(rng, replay);
    }

    #[test]
    fn resized_crop_boxes_stay_inside_the_image() {
        let r = RandomResizedCrop::new(16);
        for seed in 0..300 {
            let mut rng = Rng::new(seed);
            let (h, w) = (37, 53);
            let b = r.get_params(h, w, &mut rng);
            assert!(b.height > 0 && b.width > 0, "{b:?}");
            assert!(b.top + b.height <= h && b.left + b.width <= w, "{b:?}");
            let frac = (b.height * b.width) as f64 / (h * w) as f64;
            assert!(frac <= 1.0 && frac > 0.05, "{b:?}");
        }
    }

    /// `c x h x w` with varied values.
    fn varied(c: usize, h: usize, w: usize) -> Vec<u8> {
        (0..c * h * w).map(|i| (i * 67 % 256) as u8).collect()
    }

    /// The box of `src` at `b`, mirrored first when `flipped`, by direct indexing.
    fn cut(src: &[u8], c: usize, h: usize, w: usize, flipped: bool, b: CropBox) -> Vec<u8> {
        let mut out = Vec::new();
        for ch in 0..c {
            for y in 0..b.height {
                for x in 0..b.width {
                    let sx = b.left + x;
                    let sx = if flipped { w - 1 - sx } else { sx };
                    out.push(src[(ch * h + b.top + y) * w + sx]);
                }
            }
        }
        out
    }

    #[test]
    fn resized_crop_view_is_crop_then_resize_bilinear() {
        let (c, h, w) = (3, 12, 10);
        let src = varied(c, h, w);
        let m = vec![0.0; 3];
        let s = vec![1.0; 3];
        let strong = ViewAugment::imagenet_strong(8, m.clone(), s.clone());
        let plain = ViewAugment {
            randaugment: None,
            ..strong.clone()
        };
        assert_eq!(strong.output_size(h, w), (8, 8));
        strong.validate(c, h, w).unwrap();
        let mut flips = [0, 0];
        for seed in 0..40 {
            for view in [&plain, &strong] {
                let mut rng = Rng::new(seed);
                let mut out = vec![0u8; c * 64];
                let draw = view.apply_u8(&src, c, h, w, &mut rng, &mut out);
                let mut replay = Rng::new(seed);
                let flipped = replay.next_f64() < 0.5;
                let b = RandomResizedCrop::new(8).get_params(h, w, &mut replay);
                assert_eq!(draw.flipped, flipped);
                assert_eq!(
                    bx(draw.top, draw.left, draw.crop_height, draw.crop_width),
                    b
                );
                let boxed = cut(&src, c, h, w, flipped, b);
                let mut want = resize_bilinear(&boxed, c, b.height, b.width, 8, 8);
                if view.randaugment.is_some() {
                    let ra = RandAugment::usb().apply(&mut want, c, 8, 8, &mut replay);
                    assert_eq!(draw.randaugment, Some(ra));
                }
                assert_eq!(out, want, "seed {seed}");
                assert_eq!(rng, replay);
                flips[flipped as usize] += 1;
            }
        }
        assert!(flips[0] > 0 && flips[1] > 0);
        let mut f = vec![0f32; c * 64];
        let mut u = vec![0u8; c * 64];
        strong.apply(&src, c, h, w, &mut Rng::new(5), &mut f);
        strong.apply_u8(&src, c, h, w, &mut Rng::new(5), &mut u);
        assert!(f.iter().zip(&u).all(|(a, &b)| *a == b as f32 / 255.0));
    }

    #[test]
    fn crop_size_by_hand() {
        let (c, h, w) = (2, 6, 8);
        let src = varied(c, h, w);
        let weak = ViewAugment::imagenet_weak(4, vec![0.0; 2], vec![1.0; 2]);
        assert_eq!(weak.output_size(h, w), (4, 4));
        weak.validate(c, h, w).unwrap();
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let mut out = vec![0u8; c * 16];
            let draw = weak.apply_u8(&src, c, h, w, &mut rng, &mut out);
            // torchvision RandomCrop(4): top = randint(0, 6 - 4), left = randint(0, 8 - 4).
            let mut replay = Rng::new(seed);
            let flipped = replay.next_f64() < 0.5;
            let top = replay.below(3);
            let left = replay.below(5);
            assert_eq!(
                (
                    draw.flipped,
                    draw.top,
                    draw.left,
                    draw.crop_height,
                    draw.crop_width
                ),
                (flipped, top, left, 4, 4)
            );
            assert_eq!(out, cut(&src, c, h, w, flipped, bx(top, left, 4, 4)));
            assert_eq!(rng, replay);
        }
        // Padding then crop: 4x4 image padded by 1 (6x6), crop 3: offsets below(4).
        let img = varied(1, 4, 4);
        let pad = ViewAugment {
            crop_padding: 1,
            crop_size: Some(3),
            hflip: false,
            ..ViewAugment::imagenet_weak(3, vec![0.0], vec![1.0])
        };
        let mut rng = Rng::new(11);
        let mut out = vec![0u8; 9];
        let d = pad.apply_u8(&img, 1, 4, 4, &mut rng, &mut out);
        let mut replay = Rng::new(11);
        assert_eq!((d.top, d.left), (replay.below(4), replay.below(4)));
        for y in 0..3 {
            for x in 0..3 {
                let (py, px) = (d.top + y, d.left + x);
                let want = if (1..5).contains(&py) && (1..5).contains(&px) {
                    img[(py - 1) * 4 + px - 1]
                } else {
                    0
                };
                assert_eq!(out[y * 3 + x], want, "({y}, {x})");
            }
        }
    }

    #[test]
    fn crop_size_of_the_image_size_is_todays_view() {
        let (c, h, w) = (3, 7, 7);
        let src = varied(c, h, w);
        for (padding, mode) in [(0, PaddingMode::Zero), (2, PaddingMode::Reflect)] {
            let base = ViewAugment {
                crop_padding: padding,
                padding_mode: mode,
                ..ViewAugment::usb_strong(7, vec![0.5; 3], vec![0.5; 3])
            };
            let sized = ViewAugment {
                crop_size: Some(7),
                ..base.clone()
            };
            for seed in 0..20 {
                let (mut r1, mut r2) = (Rng::new(seed), Rng::new(seed));
                let (mut a, mut b) = (vec![0u8; c * h * w], vec![0u8; c * h * w]);
                let da = base.apply_u8(&src, c, h, w, &mut r1, &mut a);
                let db = sized.apply_u8(&src, c, h, w, &mut r2, &mut b);
                assert_eq!((a, da), (b, db), "padding {padding}, seed {seed}");
                assert_eq!(r1, r2);
            }
        }
    }

    #[test]
    fn crop_settings_are_validated() {
        let m = || (vec![0.5; 3], vec![0.5; 3]);
        let (mean, std) = m();
        let e = |v: &ViewAugment, h: usize, w: usize| v.validate(3, h, w).unwrap_err().to_string();
        let weak = ViewAugment::imagenet_weak(224, mean.clone(), std.clone());
        weak.validate(3, 256, 256).unwrap();
        assert_eq!(weak.output_size(256, 256), (224, 224));
        let msg = e(&weak, 200, 256);
        assert!(
            msg.contains("crop_size = 224") && msg.contains("200x256"),
            "{msg}"
        );
        let zero = ViewAugment {
            crop_size: Some(0),
            ..weak.clone()
        };
        assert!(e(&zero, 256, 256).contains("crop_size = 0"));
        let strong = ViewAugment::imagenet_strong(224, mean.clone(), std.clone());
        assert_eq!(strong.randaugment, Some(RandAugment::usb()));
        assert_eq!(strong.resized_crop, Some(RandomResizedCrop::new(224)));
        assert!(strong.hflip && strong.crop_size.is_none() && strong.crop_padding == 0);
        // A resized crop works from images of any size.
        strong.validate(3, 100, 300).unwrap();
        assert_eq!(strong.output_size(100, 300), (224, 224));
        let both = ViewAugment {
            crop_padding: 4,
            ..strong.clone()
        };
        let msg = e(&both, 256, 256);
        assert!(
            msg.contains("resized_crop") && msg.contains("crop_padding = 4"),
            "{msg}"
        );
        let both = ViewAugment {
            crop_size: Some(224),
            ..strong.clone()
        };
        assert!(e(&both, 256, 256).contains("crop_size"));
        let bad = ViewAugment {
            resized_crop: Some(RandomResizedCrop {
                size: 224,
                scale: [0.5, 0.1],
                ratio: [0.75, 1.33],
            }),
            ..strong.clone()
        };
        assert!(e(&bad, 256, 256).contains("resized_crop.scale = [0.5, 0.1]"));
        let bad = ViewAugment {
            resized_crop: Some(RandomResizedCrop {
                size: 224,
                scale: [0.08, 1.0],
                ratio: [0.0, 1.0],
            }),
            ..strong
        };
        assert!(e(&bad, 256, 256).contains("resized_crop.ratio"));
    }

    #[test]
    #[should_panic(expected = "destination buffer holds 48 values")]
    fn destination_must_hold_the_output_size() {
        let view = ViewAugment::imagenet_weak(2, vec![0.0], vec![1.0]);
        let mut dst = [0u8; 48];
        view.apply_u8(&[0u8; 48], 3, 4, 4, &mut Rng::new(0), &mut dst);
    }

    #[test]
    fn crops_from_toml() {
        let v: ViewAugment = toml::from_str(
            "hflip = true\nmean = [0.5]\nstd = [0.5]\nresized_crop = { size = 224 }\n\
             [randaugment]",
        )
        .unwrap();
        let r = v.resized_crop.as_ref().unwrap();
        assert_eq!(
            (r.size, r.scale, r.ratio),
            (224, [0.08, 1.0], [0.75, 4.0 / 3.0])
        );
        assert_eq!(v, ViewAugment::imagenet_strong(224, vec![0.5], vec![0.5]));
        let w: ViewAugment =
            toml::from_str("crop_size = 224\nhflip = true\nmean = [0.5]\nstd = [0.5]").unwrap();
        assert_eq!(w, ViewAugment::imagenet_weak(224, vec![0.5], vec![0.5]));
        assert!(toml::from_str::<ViewAugment>(
            "mean = [0.5]\nstd = [0.5]\nresized_crop = { size = 2, scales = [0.1, 1.0] }"
        )
        .is_err());
        let usb = toml::to_string(&ViewAugment::usb_weak(32, vec![0.5], vec![0.5])).unwrap();
        assert!(
            !usb.contains("crop_size") && !usb.contains("resized_crop"),
            "{usb}"
        );
        assert_eq!(
            toml::from_str::<ViewAugment>(&toml::to_string(&v).unwrap()).unwrap(),
            v
        );
    }

    #[test]
    fn view_config_from_toml() {
        let v: ViewAugment = toml::from_str(
            "crop_padding = 4\npadding_mode = \"reflect\"\nhflip = true\nmean = [0.5]\nstd = [0.5]\n\
             [randaugment]\nops = \"grey\"",
        )
        .unwrap();
        assert_eq!(v.randaugment, Some(RandAugment::grey()));
        assert_eq!(v.padding_mode, PaddingMode::Reflect);
        assert!(toml::from_str::<ViewAugment>("mean = [0.5]\nstd = [0.5]\nflip = true").is_err());
    }
}
