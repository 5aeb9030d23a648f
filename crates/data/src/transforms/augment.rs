//! The per-image training pipeline: optional flip, optional padded crop, normalization.

use serde::{Deserialize, Serialize};

use super::check_len;
use super::geometric::{source_row, valid_columns};
use super::normalize::normalize_pixel;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// A train-time augmentation pipeline for `u8` images, written in a config as e.g.
///
/// ```toml
/// [augment]
/// crop_padding = 4      # RandomCrop(32, padding=4); 0 = off (the default)
/// hflip = true          # RandomHorizontalFlip(); default false
/// mean = [0.4914, 0.4822, 0.4465]
/// std = [0.2470, 0.2435, 0.2616]
/// ```
///
/// [`Augment::apply`] runs, in this order (the order of the Outlier Exposure reference's
/// CIFAR `train_transform`, `hendrycks/outlier-exposure`, `CIFAR/oe_tune.py`):
/// horizontal flip with p = 0.5 (when `hflip`), random crop with `crop_padding` zero (black)
/// pixels on each side (when `crop_padding > 0`), then `(x / 255 - mean) / std`. The padding
/// is applied before normalization, as in torchvision, so padded pixels come out as
/// `-mean / std`. (The same reference's outlier transform crops *then* flips; the two orders
/// give the same distribution of outputs, only the draws are consumed differently.)
///
/// Horizontal flip is wrong for digits: a mirrored 2, 3, 4, 5, 6, 7 or 9 is not that digit,
/// so keep `hflip = false` (the default) for MNIST-like sets. The MNIST references train
/// without augmentation or with a small crop only.
///
/// With `crop_padding = 0` and `hflip = false` the pipeline is plain normalization and draws
/// nothing: this is the evaluation transform ([`Augment::normalize_only`],
/// [`Augment::for_eval`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Zero padding of the random crop on each side, in pixels; 0 disables the crop. The
    /// crop offset is uniform in `0..=2 * crop_padding` on each axis.
    #[serde(default)]
    pub crop_padding: usize,
    /// Random horizontal flip with probability 1/2. Keep it off for digits.
    #[serde(default)]
    pub hflip: bool,
    /// Per-channel mean subtracted after scaling to `[0, 1]`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after subtracting the mean.
    pub std: Vec<f32>,
}

/// What [`Augment::apply`] drew for one image (for tests, logging and debugging).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AugmentDraw {
    /// Whether the image was mirrored.
    pub flipped: bool,
    /// Top offset of the crop in the padded image (`crop_padding` = no shift).
    pub top: usize,
    /// Left offset of the crop in the padded image (`crop_padding` = no shift).
    pub left: usize,
}

impl Augment {
    /// Normalization only: no flip, no crop (the evaluation transform).
    pub fn normalize_only(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Self {
            crop_padding: 0,
            hflip: false,
            mean,
            std,
        }
    }

    /// The same normalization without the random parts, for evaluating a model trained with
    /// `self`.
    pub fn for_eval(&self) -> Self {
        Self::normalize_only(self.mean.clone(), self.std.clone())
    }

    /// True when [`Augment::apply`] draws random numbers (a flip or a crop is on).
    pub fn is_random(&self) -> bool {
        self.hflip || self.crop_padding > 0
    }

    /// Checks the pipeline against images of `channels` channels: one finite mean and one
    /// finite, positive standard deviation per channel.
    pub fn validate(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(DataError::Split(format!(
                "augment: mean {:?} and std {:?} need one value per channel ({channels})",
                self.mean, self.std
            )));
        }
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(DataError::Split(format!("augment: mean {m} is not finite")));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(DataError::Split(format!(
                "augment: std {s} must be finite and positive"
            )));
        }
        Ok(())
    }

    /// Augments and normalizes one `u8` CHW image into `dst` (`c * h * w` floats).
    ///
    /// Draws, in this order: the flip (one `next_f64`, when `hflip`), then the crop's top
    /// and left offsets (two `below(2p + 1)`, when `crop_padding = p > 0`). The result is
    /// exactly [`random_horizontal_flip`](super::random_horizontal_flip), then
    /// [`random_crop_with_padding`](super::random_crop_with_padding), then
    /// [`to_f32_normalized`](super::to_f32_normalized), fused into one pass that reads each
    /// source pixel at most once and needs no temporary buffer.
    ///
    /// # Panics
    /// If `src` or `dst` does not hold `c * h * w` values or `mean` / `std` do not hold `c`
    /// (see [`Augment::validate`]).
    pub fn apply(
        &self,
        src: &[u8],
        c: usize,
        h: usize,
        w: usize,
        rng: &mut Rng,
        dst: &mut [f32],
    ) -> AugmentDraw {
        check_len("source image", src.len(), c, h, w);
        check_len("destination buffer", dst.len(), c, h, w);
        assert!(
            self.mean.len() == c && self.std.len() == c,
            "augment mean ({}) and std ({}) need one value per channel ({c})",
            self.mean.len(),
            self.std.len()
        );
        let flipped = self.hflip && rng.bernoulli(0.5);
        let p = self.crop_padding;
        let (top, left) = if p > 0 {
            let top = rng.below(2 * p + 1);
            let left = rng.below(2 * p + 1);
            (top, left)
        } else {
            (0, 0)
        };
        let (lo, hi) = valid_columns(w, p, left);
        for ch in 0..c {
            let (m, s) = (self.mean[ch], self.std[ch]);
            let fill = normalize_pixel(0, m, s);
            for y in 0..h {
                let out = &mut dst[(ch * h + y) * w..(ch * h + y + 1) * w];
                let Some(sy) = source_row(y, h, p, top) else {
                    out.fill(fill);
                    continue;
                };
                let row = &src[(ch * h + sy) * w..(ch * h + sy + 1) * w];
                out[..lo].fill(fill);
                // Output column x reads column sx = x + left - p of the (flipped) image.
                let first = (lo + left).saturating_sub(p);
                for (k, o) in out[lo..hi].iter_mut().enumerate() {
                    let sx = first + k;
                    let v = if flipped { row[w - 1 - sx] } else { row[sx] };
                    *o = normalize_pixel(v, m, s);
                }
                out[hi..].fill(fill);
            }
        }
        AugmentDraw { flipped, top, left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::{random_crop_with_padding, random_horizontal_flip, to_f32_normalized};

    fn cifar_like() -> Augment {
        Augment {
            crop_padding: 2,
            hflip: true,
            mean: vec![0.5, 0.25, 0.0],
            std: vec![0.5, 0.5, 1.0],
        }
    }

    #[test]
    fn fused_apply_equals_the_three_steps() {
        let (c, h, w) = (3, 5, 4);
        let src: Vec<u8> = (0..c * h * w).map(|i| (i * 37 % 256) as u8).collect();
        let aug = cifar_like();
        let mut flips = 0;
        for seed in 0..200 {
            let mut r1 = Rng::new(seed);
            let mut r2 = Rng::new(seed);
            let mut fused = vec![0f32; c * h * w];
            let draw = aug.apply(&src, c, h, w, &mut r1, &mut fused);

            let mut img = src.clone();
            let flipped = random_horizontal_flip(&mut img, c, h, w, &mut r2);
            let mut cropped = vec![0u8; c * h * w];
            let (top, left) = random_crop_with_padding(&img, c, h, w, 2, &mut r2, &mut cropped);
            let mut want = vec![0f32; c * h * w];
            to_f32_normalized(&cropped, &aug.mean, &aug.std, c, h, w, &mut want);

            assert_eq!(draw, AugmentDraw { flipped, top, left });
            assert_eq!(fused, want, "seed {seed}");
            assert_eq!(r1, r2, "same number of draws");
            flips += flipped as usize;
        }
        assert!((60..140).contains(&flips), "{flips}");
    }

    #[test]
    fn hand_computed_1x3x3_with_padding_one() {
        // Image 1..9, mean 0, std 1: outputs are pixel / 255.
        let src = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        let aug = Augment {
            crop_padding: 1,
            hflip: false,
            mean: vec![0.0],
            std: vec![1.0],
        };
        let mut rng = Rng::new(99);
        let mut replay = rng.clone();
        let (top, left) = (replay.below(3), replay.below(3));
        let mut dst = [0f32; 9];
        let draw = aug.apply(&src, 1, 3, 3, &mut rng, &mut dst);
        assert_eq!((draw.top, draw.left, draw.flipped), (top, left, false));
        for y in 0..3 {
            for x in 0..3 {
                let (sy, sx) = ((y + top) as i64 - 1, (x + left) as i64 - 1);
                let inside = (0..3).contains(&sy) && (0..3).contains(&sx);
                let v = if inside {
                    src[(sy * 3 + sx) as usize]
                } else {
                    0
                };
                assert_eq!(dst[y * 3 + x], v as f32 / 255.0);
            }
        }
    }

    #[test]
    fn padding_is_black_before_normalization() {
        // A white 1x1x1 image shifted fully into the padding reads the black fill, which
        // normalizes to -mean/std, not to 0.
        let aug = Augment {
            crop_padding: 1,
            hflip: false,
            mean: vec![0.5],
            std: vec![0.25],
        };
        let mut seen = [false; 2];
        let mut rng = Rng::new(0);
        for _ in 0..100 {
            let mut dst = [0f32];
            let d = aug.apply(&[255], 1, 1, 1, &mut rng, &mut dst);
            let centre = d.top == 1 && d.left == 1;
            assert_eq!(dst[0], if centre { 2.0 } else { -2.0 });
            seen[centre as usize] = true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn eval_pipeline_draws_nothing() {
        let aug = cifar_like().for_eval();
        assert!(!aug.is_random());
        let mut rng = Rng::new(1);
        let before = rng.clone();
        let src = [0u8, 255, 51];
        let mut dst = [0f32; 3];
        aug.apply(&src, 3, 1, 1, &mut rng, &mut dst);
        assert_eq!(rng, before);
        assert_eq!(dst, [-1.0, 1.5, 0.2]);
    }

    #[test]
    fn validate_names_the_bad_value() {
        assert!(cifar_like().validate(3).is_ok());
        let e = cifar_like().validate(1).unwrap_err().to_string();
        assert!(e.contains("one value per channel (1)"), "{e}");
        let mut a = cifar_like();
        a.std[1] = 0.0;
        let e = a.validate(3).unwrap_err().to_string();
        assert!(e.contains("std 0"), "{e}");
        a.std[1] = 1.0;
        a.mean[0] = f32::NAN;
        assert!(a.validate(3).unwrap_err().to_string().contains("NaN"));
    }

    #[test]
    fn deserializes_with_defaults_and_rejects_unknown_keys() {
        let a: Augment = toml::from_str("mean = [0.1307]\nstd = [0.3081]").unwrap();
        assert_eq!(a, Augment::normalize_only(vec![0.1307], vec![0.3081]));
        let a: Augment =
            toml::from_str("crop_padding = 4\nhflip = true\nmean = [0.5]\nstd = [0.5]").unwrap();
        assert_eq!((a.crop_padding, a.hflip), (4, true));
        let e = toml::from_str::<Augment>("mean = [0.5]\nstd = [0.5]\nflip = true").unwrap_err();
        assert!(e.to_string().contains("flip"), "{e}");
    }
}
