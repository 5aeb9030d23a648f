//! Deterministic preprocessing applied once when a dataset is loaded: resize and centre
//! crop, as torchvision's `Resize(size)` + `CenterCrop(crop)` on PIL images (the evaluation
//! transform of every ImageNet-pretrained reference).
//!
//! [`resize_bilinear`] is Pillow's `BILINEAR` resampling (the default of `Resize`): a
//! triangle filter widened by the scale factor when shrinking (antialiasing), applied
//! horizontally then vertically, rounding to 8 bits after each pass as Pillow does. Pillow
//! computes with 22-bit fixed-point coefficients; we use `f64`, so a pixel can differ by one
//! level where the exact value falls on a rounding boundary (measured against Pillow 11 in
//! `tests/resize.rs`).
//!
//! An image already at the requested size is returned unchanged (no resampling).

use serde::{Deserialize, Serialize};

use crate::dataset::ImageSet;
use crate::error::DataError;

/// Resize and crop settings (`[data.preprocess]` in configs, `trainer embed --resize`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preprocess {
    /// Resize so that the shorter side has this length, keeping the aspect ratio
    /// (torchvision `Resize(int)`).
    #[serde(default)]
    pub resize: Option<usize>,
    /// Then crop the centre square of this side (torchvision `CenterCrop`).
    #[serde(default)]
    pub center_crop: Option<usize>,
}

impl Preprocess {
    /// Nothing to do?
    pub fn is_identity(&self) -> bool {
        self.resize.is_none() && self.center_crop.is_none()
    }

    /// The output `(height, width)` for an input of `(h, w)`.
    pub fn output_size(&self, h: usize, w: usize) -> Result<(usize, usize), DataError> {
        let (mut h, mut w) = (h, w);
        if let Some(s) = self.resize {
            if s == 0 {
                return Err(DataError::Invalid(
                    "preprocess.resize must be at least 1".into(),
                ));
            }
            (h, w) = resized_dims(h, w, s);
        }
        if let Some(c) = self.center_crop {
            if c == 0 || c > h || c > w {
                return Err(DataError::Invalid(format!(
                    "preprocess.center_crop = {c} does not fit {h}x{w} images"
                )));
            }
            (h, w) = (c, c);
        }
        Ok((h, w))
    }

    /// Applies the steps to every image of a set.
    pub fn apply(&self, set: &ImageSet) -> Result<ImageSet, DataError> {
        if self.is_identity() {
            return Ok(set.clone());
        }
        let (oh, ow) = self.output_size(set.height, set.width)?;
        let c = set.channels;
        let mut pixels = Vec::with_capacity(set.len() * c * oh * ow);
        let mut rh = set.height;
        let mut rw = set.width;
        if let Some(s) = self.resize {
            (rh, rw) = resized_dims(set.height, set.width, s);
        }
        for i in 0..set.len() {
            let img = set.image(i);
            let resized;
            let src: &[u8] = if (rh, rw) != (set.height, set.width) {
                resized = resize_bilinear(img, c, set.height, set.width, rh, rw);
                &resized
            } else {
                img
            };
            // torchvision's CenterCrop rounds the offsets: int(round((h - crop) / 2)).
            let top = round_half_even_offset(rh, oh).unwrap_or(0);
            let left = round_half_even_offset(rw, ow).unwrap_or(0);
            for ch in 0..c {
                for y in 0..oh {
                    let row = (ch * rh + top + y) * rw + left;
                    pixels.extend_from_slice(&src[row..row + ow]);
                }
            }
        }
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
            center_crop: Some(40),
        };
        assert!(p.output_size(32, 32).is_err());
    }
}
