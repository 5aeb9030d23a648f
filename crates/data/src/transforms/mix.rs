//! Mixing two images: mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019).
//!
//! These are the per-image building blocks; MixOE (Zhang et al., 2023) mixes ID images with
//! outliers using the same two operations.

use super::check_len;
use crate::rng::Rng;

/// mixup: `lambda * a + (1 - lambda) * b`, element-wise, in `f32` (as `lam * x + (1 - lam) *
/// x[index]` in the mixup reference `facebookresearch/mixup-cifar10`, `train.py`).
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn mixup(a: &[f32], b: &[f32], lambda: f32) -> Vec<f32> {
    let mut out = a.to_vec();
    mixup_in_place(&mut out, b, lambda);
    out
}

/// [`mixup`] writing into `a`: `a = lambda * a + (1 - lambda) * b`.
///
/// # Panics
/// If `a` and `b` differ in length.
pub fn mixup_in_place(a: &mut [f32], b: &[f32], lambda: f32) {
    assert_eq!(a.len(), b.len(), "mixup of buffers of different lengths");
    let mu = 1.0 - lambda;
    for (x, &y) in a.iter_mut().zip(b) {
        *x = lambda * *x + mu * y;
    }
}

/// A rectangle of an image: rows `y0..y1`, columns `x0..x1` (half-open, so it may be empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutBox {
    /// First row.
    pub y0: usize,
    /// One past the last row.
    pub y1: usize,
    /// First column.
    pub x0: usize,
    /// One past the last column.
    pub x1: usize,
}

impl CutBox {
    /// Number of rows.
    pub fn height(&self) -> usize {
        self.y1 - self.y0
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.x1 - self.x0
    }

    /// Number of pixels per channel.
    pub fn area(&self) -> usize {
        self.height() * self.width()
    }

    /// True when the box holds no pixel.
    pub fn is_empty(&self) -> bool {
        self.area() == 0
    }
}

/// The CutMix box for mixing coefficient `lambda`, as `rand_bbox` in the CutMix reference
/// (`clovaai/CutMix-PyTorch`, `train.py`):
///
/// ```text
/// cut_rat = sqrt(1 - lam)
/// cut_h = int(H * cut_rat);  cut_w = int(W * cut_rat)
/// cy = randint(H);           cx = randint(W)          # centre, drawn in this order
/// y0 = clip(cy - cut_h // 2, 0, H);  y1 = clip(cy + cut_h // 2, 0, H)
/// x0 = clip(cx - cut_w // 2, 0, W);  x1 = clip(cx + cut_w // 2, 0, W)
/// ```
///
/// The reference names its first image dimension `W` although NCHW puts the height there,
/// and draws that dimension's centre first; we keep its draw order (rows, then columns).
/// As in the reference, an odd cut size loses one pixel (the box spans `2 * (cut // 2)`),
/// and clipping at the border shrinks the box, so the area is not `(1 - lam) * H * W`:
/// recompute the coefficient with [`lambda_from_box`], as CutMix and MixOE do.
///
/// # Panics
/// If `lambda` is not in `[0, 1]`, or `h` or `w` is zero.
pub fn cutmix_box(h: usize, w: usize, lambda: f64, rng: &mut Rng) -> CutBox {
    assert!(
        (0.0..=1.0).contains(&lambda),
        "CutMix lambda must be in [0, 1], got {lambda}"
    );
    assert!(h > 0 && w > 0, "CutMix on an empty image ({h}x{w})");
    let cut_rat = (1.0 - lambda).sqrt();
    let cut_h = (h as f64 * cut_rat) as usize;
    let cut_w = (w as f64 * cut_rat) as usize;
    let cy = rng.below(h);
    let cx = rng.below(w);
    CutBox {
        y0: cy.saturating_sub(cut_h / 2),
        y1: (cy + cut_h / 2).min(h),
        x0: cx.saturating_sub(cut_w / 2),
        x1: (cx + cut_w / 2).min(w),
    }
}

/// The mixing coefficient of a pasted box: `1 - area / (h * w)`, the share of the image
/// that still comes from the destination (CutMix `train.py`; MixOE `train.py` does the same
/// after clipping).
pub fn lambda_from_box(b: CutBox, h: usize, w: usize) -> f64 {
    1.0 - b.area() as f64 / (h * w) as f64
}

/// CutMix paste: copies the pixels of `src` inside `b` onto `dst`, in every channel
/// (`x[:, :, y0:y1, x0:x1] = x2[:, :, y0:y1, x0:x1]`).
///
/// # Panics
/// If `dst` or `src` does not hold `c * h * w` values, or the box exceeds the image.
pub fn paste_box<T: Copy>(dst: &mut [T], src: &[T], c: usize, h: usize, w: usize, b: CutBox) {
    check_len("destination image", dst.len(), c, h, w);
    check_len("source image", src.len(), c, h, w);
    assert!(
        b.y0 <= b.y1 && b.y1 <= h && b.x0 <= b.x1 && b.x1 <= w,
        "box {b:?} does not fit a {h}x{w} image"
    );
    for ch in 0..c {
        for y in b.y0..b.y1 {
            let row = (ch * h + y) * w;
            dst[row + b.x0..row + b.x1].copy_from_slice(&src[row + b.x0..row + b.x1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixup_exact_values() {
        // Chosen so every product and sum is exact in f32.
        let a = [1.0f32, 0.0, -2.0, 4.0];
        let b = [0.0f32, 1.0, 2.0, 8.0];
        assert_eq!(mixup(&a, &b, 0.75), vec![0.75, 0.25, -1.0, 5.0]);
        assert_eq!(mixup(&a, &b, 1.0), a.to_vec());
        assert_eq!(mixup(&a, &b, 0.0), b.to_vec());
        let mut c = a;
        mixup_in_place(&mut c, &b, 0.5);
        assert_eq!(c, [0.5, 0.5, 0.0, 6.0]);
    }

    #[test]
    fn cutmix_box_matches_the_reference_formula() {
        // lambda = 0.75 on 32x32: cut_rat = 0.5, cut = 16, half = 8.
        let mut rng = Rng::new(3);
        for _ in 0..500 {
            let mut replay = rng.clone();
            let (cy, cx) = (replay.below(32), replay.below(32));
            let b = cutmix_box(32, 32, 0.75, &mut rng);
            assert_eq!(rng, replay, "exactly two draws");
            let clip = |v: i64| v.clamp(0, 32) as usize;
            let want = CutBox {
                y0: clip(cy as i64 - 8),
                y1: clip(cy as i64 + 8),
                x0: clip(cx as i64 - 8),
                x1: clip(cx as i64 + 8),
            };
            assert_eq!(b, want);
            assert!(b.area() <= 256);
            let lam = lambda_from_box(b, 32, 32);
            assert_eq!(lam, 1.0 - b.area() as f64 / 1024.0);
            assert!((0.75..=1.0).contains(&lam));
        }
    }

    #[test]
    fn cutmix_box_interior_has_full_area_and_lambda() {
        // Find a draw whose centre is far from the borders: the box is exactly 16x16 and the
        // recomputed lambda equals the requested one.
        let mut rng = Rng::new(11);
        let b = std::iter::repeat_with(|| cutmix_box(32, 32, 0.75, &mut rng))
            .find(|b| b.y0 > 0 && b.x0 > 0 && b.y1 < 32 && b.x1 < 32)
            .unwrap();
        assert_eq!((b.height(), b.width()), (16, 16));
        assert_eq!(lambda_from_box(b, 32, 32), 0.75);
    }

    #[test]
    fn cutmix_extremes_and_odd_sizes() {
        let mut rng = Rng::new(4);
        // lambda = 1: empty box, nothing pasted.
        let b = cutmix_box(8, 8, 1.0, &mut rng);
        assert!(b.is_empty());
        assert_eq!(lambda_from_box(b, 8, 8), 1.0);
        // lambda = 0 on 7x7: cut = 7, half = 3, box spans at most 6 (the reference's loss
        // of one pixel for odd sizes).
        for _ in 0..100 {
            let b = cutmix_box(7, 7, 0.0, &mut rng);
            assert!(b.height() <= 6 && b.width() <= 6);
        }
    }

    #[test]
    fn paste_box_copies_exactly_the_box() {
        // 2 channels of 3x4.
        let mut dst = vec![0u8; 24];
        let src: Vec<u8> = (1..=24).collect();
        let b = CutBox {
            y0: 1,
            y1: 3,
            x0: 2,
            x1: 4,
        };
        paste_box(&mut dst, &src, 2, 3, 4, b);
        #[rustfmt::skip]
        let want = [
            0, 0, 0, 0,
            0, 0, 7, 8,
            0, 0, 11, 12,
            0, 0, 0, 0,
            0, 0, 19, 20,
            0, 0, 23, 24,
        ];
        assert_eq!(dst, want);
        assert_eq!(lambda_from_box(b, 3, 4), 1.0 - 4.0 / 12.0);
    }
}
