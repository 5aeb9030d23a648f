//! Geometric transforms: crop with zero padding and horizontal flip.
//!
//! Both are generic over the pixel type so they run on `u8` images (before normalization,
//! where the zero fill means black, as in torchvision) as well as on `f32` buffers.

use super::check_len;
use crate::rng::Rng;

/// The range of output columns `x` whose source column `x + left - padding` lies inside
/// `0..w`, as `lo..hi` with `lo <= hi <= w`.
pub(super) fn valid_columns(w: usize, padding: usize, left: usize) -> (usize, usize) {
    let lo = padding.saturating_sub(left).min(w);
    let hi = (w + padding).saturating_sub(left).min(w).max(lo);
    (lo, hi)
}

/// The source row read by output row `y`, or `None` when it falls in the padding.
#[inline]
pub(super) fn source_row(y: usize, h: usize, padding: usize, top: usize) -> Option<usize> {
    (y + top).checked_sub(padding).filter(|&sy| sy < h)
}

/// Crops an `h x w` window at offset `(top, left)` out of the image zero-padded by `padding`
/// pixels on every side: `dst[ch][y][x] = padded[ch][y + top][x + left]`, where
/// `padded[ch][y'][x']` is `src[ch][y' - padding][x' - padding]` inside the image and
/// `T::default()` (zero) outside.
///
/// # Panics
/// If `src` or `dst` does not hold `c * h * w` values, or `top` / `left` exceed `2 * padding`.
pub fn crop_with_padding<T: Copy + Default>(
    src: &[T],
    c: usize,
    h: usize,
    w: usize,
    padding: usize,
    top: usize,
    left: usize,
    dst: &mut [T],
) {
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, h, w);
    assert!(
        top <= 2 * padding && left <= 2 * padding,
        "crop offset ({top}, {left}) is outside 0..={} for padding {padding}",
        2 * padding
    );
    let (lo, hi) = valid_columns(w, padding, left);
    for ch in 0..c {
        for y in 0..h {
            let out = &mut dst[(ch * h + y) * w..(ch * h + y + 1) * w];
            match source_row(y, h, padding, top) {
                None => out.fill(T::default()),
                Some(sy) => {
                    out[..lo].fill(T::default());
                    if hi > lo {
                        let sx = lo + left - padding;
                        let row = (ch * h + sy) * w;
                        out[lo..hi].copy_from_slice(&src[row + sx..row + sx + (hi - lo)]);
                    }
                    out[hi..].fill(T::default());
                }
            }
        }
    }
}

/// torchvision `RandomCrop(size=(h, w), padding=padding)` (fill 0, `padding_mode="constant"`):
/// draws the top offset then the left offset, each uniform in `0..=2 * padding` (torchvision's
/// `get_params`: `randint(0, h + 2p - h + 1)`), and crops with [`crop_with_padding`]. Returns
/// the offsets `(top, left)`.
///
/// With `padding == 0` the crop is the whole image and, like torchvision, no random number is
/// drawn.
///
/// Apply it to the `u8` image (or the `[0, 1]` image), *before* normalization, so the padding
/// is black as in the references; see the [module docs](super).
///
/// # Panics
/// If `src` or `dst` does not hold `c * h * w` values.
pub fn random_crop_with_padding<T: Copy + Default>(
    src: &[T],
    c: usize,
    h: usize,
    w: usize,
    padding: usize,
    rng: &mut Rng,
    dst: &mut [T],
) -> (usize, usize) {
    let (top, left) = if padding == 0 {
        (0, 0)
    } else {
        let top = rng.below(2 * padding + 1);
        let left = rng.below(2 * padding + 1);
        (top, left)
    };
    crop_with_padding(src, c, h, w, padding, top, left, dst);
    (top, left)
}

/// Mirrors the image left-right in place (every row reversed). Applying it twice is the
/// identity.
///
/// # Panics
/// If `img` does not hold `c * h * w` values.
pub fn horizontal_flip<T>(img: &mut [T], c: usize, h: usize, w: usize) {
    check_len("image", img.len(), c, h, w);
    if w == 0 {
        return;
    }
    for row in img.chunks_exact_mut(w) {
        row.reverse();
    }
}

/// torchvision `RandomHorizontalFlip(p=0.5)`: flips in place with probability 1/2 (one draw,
/// `next_f64() < 0.5`) and returns whether it flipped.
///
/// Do not use it on digits (MNIST): a mirrored digit is often another glyph or no digit at
/// all, which is why the MNIST references train without it.
///
/// # Panics
/// If `img` does not hold `c * h * w` values.
pub fn random_horizontal_flip<T>(
    img: &mut [T],
    c: usize,
    h: usize,
    w: usize,
    rng: &mut Rng,
) -> bool {
    let flip = rng.bernoulli(0.5);
    if flip {
        horizontal_flip(img, c, h, w);
    } else {
        check_len("image", img.len(), c, h, w);
    }
    flip
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 1x3x3 image
    /// ```text
    /// 1 2 3
    /// 4 5 6
    /// 7 8 9
    /// ```
    const IMG: [u8; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

    #[test]
    fn every_offset_of_padding_one_by_hand() {
        // Padded 5x5 image; the crop at (top, left) reads rows top..top+3, cols left..left+3.
        let cases: [((usize, usize), [u8; 9]); 4] = [
            ((0, 0), [0, 0, 0, 0, 1, 2, 0, 4, 5]),
            ((1, 1), IMG),
            ((2, 2), [5, 6, 0, 8, 9, 0, 0, 0, 0]),
            ((0, 2), [0, 0, 0, 2, 3, 0, 5, 6, 0]),
        ];
        for ((top, left), want) in cases {
            let mut dst = [99u8; 9];
            crop_with_padding(&IMG, 1, 3, 3, 1, top, left, &mut dst);
            assert_eq!(dst, want, "offset ({top}, {left})");
        }
    }

    #[test]
    fn random_crop_uses_the_rng_offsets_in_torchvision_order() {
        // Replay the generator to know the offsets it will produce: top first, then left.
        let mut rng = Rng::new(12345);
        let mut replay = rng.clone();
        let want_top = replay.below(3);
        let want_left = replay.below(3);
        let mut dst = [99u8; 9];
        let (top, left) = random_crop_with_padding(&IMG, 1, 3, 3, 1, &mut rng, &mut dst);
        assert_eq!((top, left), (want_top, want_left));
        assert_eq!(rng, replay, "exactly two draws");
        // Check the pixels against the definition, element by element.
        for y in 0..3 {
            for x in 0..3 {
                let (py, px) = (y + top, x + left);
                let want = if (1..4).contains(&py) && (1..4).contains(&px) {
                    IMG[(py - 1) * 3 + (px - 1)]
                } else {
                    0
                };
                assert_eq!(dst[y * 3 + x], want, "pixel ({y}, {x})");
            }
        }
    }

    #[test]
    fn random_crop_offsets_cover_zero_to_two_p() {
        let mut rng = Rng::new(1);
        let mut seen = [[false; 9]; 9];
        let src = vec![1f32; 2 * 5 * 6];
        let mut dst = vec![0f32; 2 * 5 * 6];
        for _ in 0..2000 {
            let (t, l) = random_crop_with_padding(&src, 2, 5, 6, 4, &mut rng, &mut dst);
            seen[t][l] = true;
            // The number of image pixels kept is (5 - |t - 4|) * (6 - |l - 4|) per channel.
            let kept = (5 - t.abs_diff(4)) * (6 - l.abs_diff(4)) * 2;
            assert_eq!(dst.iter().filter(|&&v| v == 1.0).count(), kept);
        }
        assert!(
            seen.iter().flatten().all(|&s| s),
            "every offset in 0..=8 drawn"
        );
    }

    #[test]
    fn zero_padding_is_a_copy_without_draws() {
        let mut rng = Rng::new(5);
        let before = rng.clone();
        let mut dst = [0u8; 9];
        assert_eq!(
            random_crop_with_padding(&IMG, 1, 3, 3, 0, &mut rng, &mut dst),
            (0, 0)
        );
        assert_eq!(dst, IMG);
        assert_eq!(rng, before);
    }

    #[test]
    fn padding_larger_than_the_image() {
        // Padding 4 on a 1x2x2 image: offset (4, 4) is the image, (0, 0) is all padding.
        let src = [1u8, 2, 3, 4];
        let mut dst = [9u8; 4];
        crop_with_padding(&src, 1, 2, 2, 4, 4, 4, &mut dst);
        assert_eq!(dst, src);
        crop_with_padding(&src, 1, 2, 2, 4, 0, 0, &mut dst);
        assert_eq!(dst, [0; 4]);
        crop_with_padding(&src, 1, 2, 2, 4, 5, 3, &mut dst);
        assert_eq!(dst, [0, 3, 0, 0]);
    }

    #[test]
    fn flip_by_hand_and_twice_is_identity() {
        let mut img: Vec<u8> = (0..18).collect(); // 2x3x3
        horizontal_flip(&mut img, 2, 3, 3);
        assert_eq!(&img[..9], &[2, 1, 0, 5, 4, 3, 8, 7, 6]);
        assert_eq!(&img[9..], &[11, 10, 9, 14, 13, 12, 17, 16, 15]);
        horizontal_flip(&mut img, 2, 3, 3);
        assert_eq!(img, (0..18).collect::<Vec<u8>>());
    }

    #[test]
    fn random_flip_is_a_fair_coin() {
        let mut rng = Rng::new(2);
        let mut img = [0f32; 4];
        let flips = (0..10_000)
            .filter(|_| random_horizontal_flip(&mut img, 1, 2, 2, &mut rng))
            .count();
        assert!((4_800..5_200).contains(&flips), "{flips}");
    }
}
