//! One augmented *view* of an image: flip, padded crop (zero or reflect padding), optional
//! RandAugment + Cutout, normalization. Weak and strong views of FixMatch-style methods and
//! the two contrastive views of GCD / SimGCD are all [`ViewAugment`]s; the
//! [`MultiViewLoader`](crate::multiview::MultiViewLoader) draws several per image.
//!
//! # The references
//! - USB / IOMatch (`semilearn/datasets/cv_datasets/cifar.py`, `get_cifar_openset`):
//!   weak = `RandomCrop(s, padding=int(s * (1 - crop_ratio)), padding_mode='reflect')`,
//!   `RandomHorizontalFlip()`; strong = weak + `RandAugment(3, 5)` (which ends with
//!   Cutout); `crop_ratio = 0.875`, so `padding = 4` at 32x32. [`ViewAugment::usb_weak`],
//!   [`ViewAugment::usb_strong`].
//! - GCD / SimGCD (`data/augmentations/__init__.py`, `ContrastiveLearningViewGenerator`):
//!   two independent draws of the same train transform. For 32x32 images that is
//!   `RandomCrop(32, padding=4)` + `RandomHorizontalFlip()` (GCD's `pytorch-cifar`
//!   transform, zero padding): [`ViewAugment::from_augment`] of an [`Augment`]. (Their
//!   ViT runs resize to 224 first; resizing is [`Preprocess`](super::Preprocess)'s job.)
//!
//! # Order
//! [`ViewAugment::apply`] flips, crops, runs RandAugment, then normalizes. USB crops
//! before flipping; with symmetric padding (zero or reflect) the two orders give the same
//! distribution of outputs, and flipping first makes a view without RandAugment and with
//! zero padding *bit-identical* to [`Augment::apply`] with the same generator (tested).
//!
//! # Digits (MNIST, Fashion-MNIST, 1x28x28)
//! [`ViewAugment::digits_weak`] / [`ViewAugment::digits_strong`]: no flip (a mirrored 2 is
//! not a 2; Fashion-MNIST items are mostly symmetric, so flipping adds little), zero
//! padding of `int(28 * (1 - 0.875)) = 3` (black is the background, so zero padding is the
//! natural choice), and [`RandAugment::grey`] for the strong view.
//!
//! # Draws
//! From the given [`Rng`], in this order: the flip (`next_f64`, when `hflip`), the crop's
//! top then left offset (`below(2p + 1)` each, when `crop_padding = p > 0`), then
//! RandAugment's draws (see [`randaugment`](super::randaugment)).

use serde::{Deserialize, Serialize};

use super::check_len;
use super::normalize::normalize_pixel;
use super::randaugment::{RandAugment, RandAugmentDraw};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewAugment {
    /// Padding of the random crop on each side, in pixels; 0 disables the crop.
    #[serde(default)]
    pub crop_padding: usize,
    /// What the padding holds.
    #[serde(default)]
    pub padding_mode: PaddingMode,
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
    /// Top offset of the crop in the padded image.
    pub top: usize,
    /// Left offset of the crop in the padded image.
    pub left: usize,
    /// RandAugment's draws (strong views only).
    pub randaugment: Option<RandAugmentDraw>,
}

/// USB's `crop_ratio` default: the crop padding is `int(size * (1 - 0.875))`.
pub const USB_CROP_RATIO: f64 = 0.875;

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
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, h, w);
    assert!(
        top <= 2 * padding && left <= 2 * padding,
        "crop offset ({top}, {left}) is outside 0..={} for padding {padding}",
        2 * padding
    );
    assert!(
        mode == PaddingMode::Zero || (padding < h && padding < w),
        "reflect padding {padding} needs an image larger than it ({h}x{w})"
    );
    let cols: Vec<Option<usize>> = (0..w)
        .map(|x| {
            source_index(x + left, w, padding, mode).map(|sx| if flipped { w - 1 - sx } else { sx })
        })
        .collect();
    for ch in 0..c {
        for y in 0..h {
            let out = &mut dst[(ch * h + y) * w..(ch * h + y + 1) * w];
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
            padding_mode: PaddingMode::Zero,
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
            padding_mode: PaddingMode::Reflect,
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

    /// The weak view for 1x28x28 digits: no flip, zero padding of 3, no RandAugment.
    pub fn digits_weak(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: usb_padding(28, USB_CROP_RATIO),
            padding_mode: PaddingMode::Zero,
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

    /// True when the view draws random numbers.
    pub fn is_random(&self) -> bool {
        self.hflip || self.crop_padding > 0 || self.randaugment.is_some()
    }

    /// Checks the view against images of `channels x height x width`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the value: mean / std not one finite value (std
    /// positive) per channel, reflect padding not smaller than the image, or RandAugment
    /// settings that do not fit (see [`RandAugment::validate`]).
    pub fn validate(&self, channels: usize, height: usize, width: usize) -> Result<()> {
        Augment::normalize_only(self.mean.clone(), self.std.clone())
            .validate(channels)
            .map_err(|e| DataError::Invalid(format!("view: {e}")))?;
        if self.padding_mode == PaddingMode::Reflect
            && (self.crop_padding >= height || self.crop_padding >= width)
        {
            return Err(DataError::Invalid(format!(
                "view: reflect crop_padding = {} needs images larger than it ({height}x{width})",
                self.crop_padding
            )));
        }
        if let Some(ra) = &self.randaugment {
            ra.validate(channels)?;
        }
        Ok(())
    }

    /// Flips, crops and (for a strong view) runs RandAugment on the `u8` CHW image `src`,
    /// writing `u8` pixels to `dst` (no normalization).
    ///
    /// # Panics
    /// If `src` or `dst` does not hold `c * h * w` bytes or the settings do not fit the
    /// image (see [`ViewAugment::validate`]).
    pub fn apply_u8(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        dst: &mut [u8],
    ) -> ViewDraw {
        let flipped = self.hflip && rng.bernoulli(0.5);
        let p = self.crop_padding;
        let (top, left) = if p > 0 {
            let top = rng.below(2 * p + 1);
            (top, rng.below(2 * p + 1))
        } else {
            (0, 0)
        };
        crop_padded(src, c, h, w, p, self.padding_mode, flipped, top, left, dst);
        let randaugment = self
            .randaugment
            .as_ref()
            .map(|ra| ra.apply(dst, c, h, w, rng));
        ViewDraw {
            flipped,
            top,
            left,
            randaugment,
        }
    }

    /// [`ViewAugment::apply_u8`] followed by `(x / 255 - mean) / std` into `dst`
    /// (`c * h * w` floats).
    ///
    /// # Panics
    /// As [`ViewAugment::apply_u8`], or if `dst` does not hold `c * h * w` values or mean /
    /// std do not hold `c`.
    pub fn apply(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        dst: &mut [f32],
    ) -> ViewDraw {
        check_len("destination buffer", dst.len(), c, h, w);
        assert!(
            self.mean.len() == c && self.std.len() == c,
            "view mean ({}) and std ({}) need one value per channel ({c})",
            self.mean.len(),
            self.std.len()
        );
        let mut pixels = vec![0u8; c * h * w];
        let draw = self.apply_u8(src, c, h, w, rng, &mut pixels);
        let plane = h * w;
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
