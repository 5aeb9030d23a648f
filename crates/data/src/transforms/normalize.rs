//! `u8` pixels to normalized `f32` (torchvision `ToTensor()` followed by `Normalize`).

use super::check_len;

/// One pixel value: `(v / 255 - mean) / std`, in `f32`, in that order.
///
/// torchvision computes `img.float().div(255)` (`ToTensor`) then `sub_(mean).div_(std)`
/// (`Normalize`) in `f32`; doing the same operations in the same order gives the same bits.
#[inline]
pub fn normalize_pixel(v: u8, mean: f32, std: f32) -> f32 {
    (v as f32 / 255.0 - mean) / std
}

/// Converts one `u8` CHW image to `f32` and normalizes each channel:
/// `dst[ch] = (src[ch] / 255 - mean[ch]) / std[ch]`.
///
/// # Panics
/// If `src` or `dst` does not hold `c * h * w` values, or `mean` / `std` do not hold `c`.
pub fn to_f32_normalized(
    src: &[u8],
    mean: &[f32],
    std: &[f32],
    c: usize,
    h: usize,
    w: usize,
    dst: &mut [f32],
) {
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, h, w);
    assert!(
        mean.len() == c && std.len() == c,
        "mean ({}) and std ({}) need one value per channel ({c})",
        mean.len(),
        std.len()
    );
    let plane = h * w;
    for ch in 0..c {
        let (m, s) = (mean[ch], std[ch]);
        let range = ch * plane..(ch + 1) * plane;
        for (d, &v) in dst[range.clone()].iter_mut().zip(&src[range]) {
            *d = normalize_pixel(v, m, s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_hand_computed_values() {
        // 2 channels of 1x2: channel 0 mean 0.5 std 0.5, channel 1 mean 0 std 1.
        let src = [0u8, 255, 51, 255];
        let mut dst = [0f32; 4];
        to_f32_normalized(&src, &[0.5, 0.0], &[0.5, 1.0], 2, 1, 2, &mut dst);
        assert_eq!(dst, [-1.0, 1.0, 0.2, 1.0]);
    }

    #[test]
    fn identity_normalization_is_to_tensor() {
        let src: Vec<u8> = (0..=255).collect();
        let mut dst = vec![0f32; 256];
        to_f32_normalized(&src, &[0.0], &[1.0], 1, 16, 16, &mut dst);
        for (v, d) in src.iter().zip(&dst) {
            assert_eq!(*d, *v as f32 / 255.0);
        }
    }

    #[test]
    #[should_panic(expected = "one value per channel")]
    fn rejects_wrong_mean_length() {
        let mut dst = [0f32; 3];
        to_f32_normalized(&[0, 0, 0], &[0.0], &[1.0], 3, 1, 1, &mut dst);
    }
}
