//! Deterministic preprocessing applied once when a dataset is loaded: resize and centre
//! crop, as torchvision's `Resize(size)` or `Resize((h, w))` followed by `CenterCrop(crop)`
//! on PIL images (the evaluation transform of every ImageNet-pretrained reference).
//!
//! - `resize = s`: torchvision `Resize(s)`, the shorter side becomes `s` and the aspect
//!   ratio is kept (IOMatch's ImageNet-30 test transform, `Resize(256)`).
//! - `resize_to = [h, w]`: torchvision `Resize((h, w))`, both sides set, the aspect ratio
//!   is not kept (IOMatch's ImageNet-30 train transforms, `Resize((256, 256))`,
//!   `semilearn/datasets/cv_datasets/imagenet30.py`). Exclusive with `resize`.
//! - `center_crop = c`: then torchvision `CenterCrop(c)`, a `c x c` square.
//!
//! [`resize_bilinear`] is Pillow's `BILINEAR` resampling (the default of `Resize`): a
//! triangle filter widened by the scale factor when shrinking (antialiasing), applied
//! horizontally then vertically, rounding to 8 bits after each pass as Pillow does. Pillow
//! computes with 22-bit fixed-point coefficients; we use `f64`, so a pixel can differ by one
//! level where the exact value falls on a rounding boundary (measured against Pillow 11 in
//! `tests/resize.rs`).
//!
//! An image already at the requested size is returned unchanged (no resampling).
//!
//! ```toml
//! [data.preprocess]
//! resize_to = [256, 256]   # [height, width]
//! center_crop = 224
//! ```

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::ImageSet;
use crate::error::DataError;

/// Resize and crop settings (`[data.preprocess]` in configs, `trainer embed --resize`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resize so that the shorter side has this length, keeping the aspect ratio
    /// (torchvision `Resize(int)`). Exclusive with `resize_to`.
    #[serde(default)]
    pub resize: Option<usize>,
    /// Resize to exactly `[height, width]`, not keeping the aspect ratio (torchvision
    /// `Resize((h, w))`, Pillow bilinear). Exclusive with `resize`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize_to: Option<[usize; 2]>,
    /// Then crop the centre square of this side (torchvision `CenterCrop`).
    #[serde(default)]
    pub center_crop: Option<usize>,
}

impl Preprocess {
    /// Nothing to do?
    pub fn is_identity(&self) -> bool {
        self.resize.is_none() && self.resize_to.is_none() && self.center_crop.is_none()
    }

    /// Checks the settings that do not depend on the image size: `resize` and `resize_to`
    /// not both set, and no size of 0.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), DataError> {
        self.resized_size(1, 1)?;
        if self.center_crop == Some(0) {
            return Err(DataError::Invalid(
                "preprocess.center_crop must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The size `(height, width)` after the resize step (before the centre crop) for an
    /// input of `(h, w)`.
    fn resized_size(&self, h: usize, w: usize) -> Result<(usize, usize), DataError> {
        match (self.resize, self.resize_to) {
            (Some(_), Some(_)) => Err(DataError::Invalid(
                "preprocess.resize and preprocess.resize_to are exclusive: set one of them \
                 (resize keeps the aspect ratio, resize_to = [height, width] does not)"
                    .into(),
            )),
            (Some(0), None) => Err(DataError::Invalid(
                "preprocess.resize must be at least 1".into(),
            )),
            (Some(s), None) => Ok(resized_dims(h, w, s)),
            (None, Some([rh, rw])) if rh == 0 || rw == 0 => Err(DataError::Invalid(format!(
                "preprocess.resize_to = [{rh}, {rw}] must be at least 1 on both sides"
            ))),
            (None, Some([rh, rw])) => Ok((rh, rw)),
            (None, None) => Ok((h, w)),
        }
    }

    /// The output `(height, width)` for an input of `(h, w)`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] naming the key: `resize` and `resize_to` both set, a size of
    /// 0, or a `center_crop` larger than the resized image.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), DataError> {
        let (h, w) = self.resized_size(h, w)?;
        match self.center_crop {
            Some(c) if c == 0 || c > h || c > w => Err(DataError::Invalid(format!(
                "preprocess.center_crop = {c} does not fit {h}x{w} images"
            ))),
            Some(c) => Ok((c, c)),
            None => Ok((h, w)),
        }
    }

    /// Applies the steps to one CHW `u8` image of `c x h x w` (any size) and returns the
    /// output `(height, width, pixels)`.
    ///
    /// # Errors
    /// [`DataError::Invalid`] when `img` does not hold `c * h * w` bytes or the settings do
    /// not fit the image (see [`Preprocess::output_size`]).
    pub fn apply_image(
        &self,
        img: &[u8],
        c: usize,
        h: usize,
        w: usize,
    ) -> Result<(usize, usize, Vec<u8>), DataError> {
        if c == 0 || img.len() != c * h * w {
            return Err(DataError::Invalid(format!(
                "preprocess: the image holds {} bytes, expected c*h*w = {c}*{h}*{w} (c >= 1)",
                img.len()
            )));
        }
        let (oh, ow) = self.output_size(h, w)?;
        let (rh, rw) = self.resized_size(h, w)?;
        let resized;
        let src: &[u8] = if (rh, rw) != (h, w) {
            resized = resize_bilinear(img, c, h, w, rh, rw);
            &resized
        } else {
            img
        };
        if (oh, ow) == (rh, rw) {
            return Ok((oh, ow, src.to_vec()));
        }
        // torchvision's CenterCrop rounds the offsets: int(round((h - crop) / 2)).
        let top = round_half_even_offset(rh, oh).unwrap_or(0);
        let left = round_half_even_offset(rw, ow).unwrap_or(0);
        let mut out = Vec::with_capacity(c * oh * ow);
        for ch in 0..c {
            for y in 0..oh {
                let row = (ch * rh + top + y) * rw + left;
                out.extend_from_slice(&src[row..row + ow]);
            }
        }
        Ok((oh, ow, out))
    }

    /// Applies the steps to every image of a set ([`Preprocess::apply_image`] per image, in
    /// parallel; the result does not depend on the thread count).
    ///
    /// # Errors
    /// As [`Preprocess::output_size`] for the set's image size.
    pub fn apply(&self, set: &ImageSet) -> Result<ImageSet, DataError> {
        if self.is_identity() {
            return Ok(set.clone());
        }
        let (c, h, w) = (set.channels, set.height, set.width);
        let (oh, ow) = self.output_size(h, w)?;
        let per = c * oh * ow;
        let mut pixels = vec![0u8; set.len() * per];
        pixels
            .par_chunks_mut(per)
            .enumerate()
            .try_for_each(|(i, dst)| {
                let (_, _, out) = self.apply_image(set.image(i), c, h, w)?;
                dst.copy_from_slice(&out);
                Ok::<(), DataError>(())
            })?;
        ImageSet::new(
            pixels,
            set.labels.clone(),
            c,
            oh,
            ow,
            set.class_names.clone(),
        )
    }
}

/// torchvision `CenterCrop`: `int(round((size - crop) / 2.0))` with Python's
/// round-half-to-even.
fn round_half_even_offset(size: usize, crop: usize) -> Option<usize> {
    let d = size.checked_sub(crop)?;
    let half = d / 2;
    Some(if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    })
}

/// torchvision `Resize(int)`: the shorter side becomes `s`, the longer one
/// `int(s * long / short)` (truncated).
fn resized_dims(h: usize, w: usize, s: usize) -> (usize, usize) {
    if h <= w {
        (s, (s * w) / h)
    } else {
        ((s * h) / w, s)
    }
}

/// Pillow's per-output-pixel taps for one axis (`precompute_coeffs` in `Resample.c`).
fn taps(n_in: usize, n_out: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = n_in as f64 / n_out as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0, widened
    (0..n_out)
        .map(|o| {
            let center = (o as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
            let xmax = ((center + support + 0.5).floor() as usize).min(n_in);
            let mut w: Vec<f64> = (xmin..xmax)
                .map(|x| {
                    let t = ((x as f64 - center + 0.5) / filterscale).abs();
                    if t < 1.0 {
                        1.0 - t
                    } else {
                        0.0
                    }
                })
                .collect();
            let total: f64 = w.iter().sum();
            if total > 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w)
        })
        .collect()
}

fn clip8(v: f64) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// Resizes one CHW `u8` image to `oh x ow` with Pillow's antialiased bilinear filter.
pub fn resize_bilinear(img: &[u8], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<u8> {
    if (h, w) == (oh, ow) {
        return img.to_vec();
    }
    let tx = taps(w, ow);
    let ty = taps(h, oh);
    let mut out = vec![0u8; c * oh * ow];
    let mut tmp = vec![0u8; h * ow];
    for ch in 0..c {
        let plane = &img[ch * h * w..(ch + 1) * h * w];
        // Horizontal pass (Pillow resamples horizontally first when both change).
        for y in 0..h {
            for (x, (xmin, ws)) in tx.iter().enumerate() {
                let v: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(j, wj)| wj * plane[y * w + xmin + j] as f64)
                    .sum();
                tmp[y * ow + x] = clip8(v);
            }
        }
        for (y, (ymin, ws)) in ty.iter().enumerate() {
            for x in 0..ow {
                let v: f64 = ws
                    .iter()
                    .enumerate()
                    .map(|(j, wj)| wj * tmp[(ymin + j) * ow + x] as f64)
                    .sum();
                out[(ch * oh + y) * ow + x] = clip8(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_sizes_and_crop_offsets() {
        assert_eq!(resized_dims(28, 28, 32), (32, 32));
        assert_eq!(resized_dims(300, 400, 256), (256, 341));
        // round((256 - 224) / 2) = 16; round(1.5) = 2, round(2.5) = 2 (half to even).
        assert_eq!(round_half_even_offset(256, 224), Some(16));
        assert_eq!(round_half_even_offset(5, 2), Some(2));
        assert_eq!(round_half_even_offset(7, 2), Some(2));
    }

    #[test]
    fn same_size_is_untouched_and_constant_stays_constant() {
        let img: Vec<u8> = (0..16).map(|i| i as u8 * 7).collect();
        assert_eq!(resize_bilinear(&img, 1, 4, 4, 4, 4), img);
        let flat = vec![200u8; 3 * 28 * 28];
        assert!(resize_bilinear(&flat, 3, 28, 28, 32, 32)
            .iter()
            .all(|&v| v == 200));
    }

    #[test]
    fn crop_larger_than_image_is_an_error() {
        let p = Preprocess {
            resize: None,
            resize_to: None,
            center_crop: Some(40),
        };
        assert!(p.output_size(32, 32).is_err());
    }

    #[test]
    fn resize_to_both_sides_then_centre_crop_by_hand() {
        // Pillow bilinear, width 2 -> 4 (scale 1/2, support 1): output x reads centre
        // (x + 0.5) / 2, so the taps are [1], [3/4, 1/4], [1/4, 3/4], [1]; the height is
        // unchanged. Rows (0 100) and (200 40) become (0 25 75 100) and (200 160 80 40).
        let img = [0u8, 100, 200, 40];
        let to = Preprocess {
            resize_to: Some([2, 4]),
            ..Preprocess::default()
        };
        assert!(!to.is_identity());
        assert_eq!(to.output_size(2, 2).unwrap(), (2, 4));
        let (h, w, out) = to.apply_image(&img, 1, 2, 2).unwrap();
        assert_eq!((h, w), (2, 4));
        assert_eq!(out, [0, 25, 75, 100, 200, 160, 80, 40]);
        // CenterCrop(2) of the 2x4 result: top 0, left round((4 - 2) / 2) = 1.
        let crop = Preprocess {
            center_crop: Some(2),
            ..to.clone()
        };
        assert_eq!(crop.output_size(2, 2).unwrap(), (2, 2));
        assert_eq!(
            crop.apply_image(&img, 1, 2, 2).unwrap(),
            (2, 2, vec![25, 75, 160, 80])
        );
        // The aspect ratio is not kept: a 300x400 input becomes exactly 256x256.
        let sq = Preprocess {
            resize_to: Some([256, 256]),
            center_crop: Some(224),
            ..Preprocess::default()
        };
        assert_eq!(sq.output_size(300, 400).unwrap(), (224, 224));
        // An image already at the size is untouched.
        assert_eq!(
            to.apply_image(&[1, 2, 3, 4, 5, 6, 7, 8], 1, 2, 4)
                .unwrap()
                .2,
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn resize_and_resize_to_are_exclusive_and_sizes_are_checked() {
        let both = Preprocess {
            resize: Some(256),
            resize_to: Some([256, 256]),
            center_crop: None,
        };
        let e = both.output_size(10, 10).unwrap_err().to_string();
        assert!(
            e.contains("preprocess.resize") && e.contains("resize_to"),
            "{e}"
        );
        assert!(both
            .validate()
            .unwrap_err()
            .to_string()
            .contains("resize_to"));
        let crop0 = Preprocess {
            center_crop: Some(0),
            ..Preprocess::default()
        };
        assert!(crop0
            .validate()
            .unwrap_err()
            .to_string()
            .contains("center_crop"));
        Preprocess {
            resize: Some(256),
            resize_to: None,
            center_crop: Some(224),
        }
        .validate()
        .unwrap();
        let zero = Preprocess {
            resize_to: Some([0, 3]),
            ..Preprocess::default()
        };
        assert!(zero.validate().is_err());
        assert!(zero
            .output_size(4, 4)
            .unwrap_err()
            .to_string()
            .contains("[0, 3]"));
        let e = Preprocess::default()
            .apply_image(&[0; 5], 1, 2, 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("5 bytes") && e.contains("1*2*2"), "{e}");
        let t: Preprocess = toml::from_str("resize_to = [256, 128]\ncenter_crop = 64").unwrap();
        assert_eq!((t.resize_to, t.center_crop), (Some([256, 128]), Some(64)));
        assert!(!toml::to_string(&Preprocess::default())
            .unwrap()
            .contains("resize_to"));
    }

    #[test]
    fn apply_is_apply_image_per_image() {
        let pixels: Vec<u8> = (0..3 * 2 * 5 * 7).map(|i| (i * 53 % 256) as u8).collect();
        let set = ImageSet::new(pixels, vec![0, 1], 3, 5, 7, vec!["a".into(), "b".into()]).unwrap();
        for p in [
            Preprocess {
                resize: Some(4),
                resize_to: None,
                center_crop: Some(3),
            },
            Preprocess {
                resize: None,
                resize_to: Some([6, 3]),
                center_crop: None,
            },
        ] {
            let out = p.apply(&set).unwrap();
            let (h, w) = p.output_size(5, 7).unwrap();
            assert_eq!((out.height, out.width), (h, w));
            for i in 0..2 {
                assert_eq!(
                    out.image(i),
                    &p.apply_image(set.image(i), 3, 5, 7).unwrap().2[..]
                );
            }
        }
    }
}
