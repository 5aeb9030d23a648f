//! The image operations of RandAugment, on `u8` CHW images, computed as Pillow computes
//! them (the references apply them to PIL images).
//!
//! USB's RandAugment (`microsoft/Semi-supervised-learning`,
//! `semilearn/datasets/augmentation/randaugment.py`, identical in `nukezil/IOMatch`) calls
//! `PIL.ImageOps` / `PIL.ImageEnhance` / `Image.transform`; each function here names the
//! Pillow function it reproduces and how:
//!
//! | function | Pillow | arithmetic |
//! |---|---|---|
//! | [`autocontrast`] | `ImageOps.autocontrast(img)` | per-channel LUT `int(i * 255/(hi-lo) - lo * 255/(hi-lo))`, clipped |
//! | [`equalize`] | `ImageOps.equalize(img)` | per-channel LUT from the histogram, integer arithmetic |
//! | [`posterize`] | `ImageOps.posterize(img, bits)` | `v & !(2^(8-bits) - 1)` |
//! | [`solarize`] | `ImageOps.solarize(img, t)` | `v < t ? v : 255 - v` |
//! | [`brightness`] | `ImageEnhance.Brightness` | blend with black |
//! | [`color`] | `ImageEnhance.Color` | blend with the grey (luma) image; identity on 1 channel |
//! | [`contrast`] | `ImageEnhance.Contrast` | blend with the rounded mean luma |
//! | [`sharpness`] | `ImageEnhance.Sharpness` | blend with `ImageFilter.SMOOTH` (borders kept) |
//! | [`affine_nearest`] | `Image.transform(size, AFFINE, m)` | nearest neighbour at pixel centres, fill 0 |
//! | [`rotate`] | `Image.rotate(deg)` | the affine map Pillow builds, about the centre |
//!
//! Blends follow Pillow's `ImagingBlend`: `out = d + f * (v - d)` in `f32`, truncated
//! towards zero and clipped to `[0, 255]` (no rounding). The luma of an RGB pixel is
//! Pillow's `L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
//!
//! `tests/randaugment_pil.rs` checks every operation against Pillow 13 on a real MNIST digit
//! and on random RGB images (fixture written by `tests/fixtures/randaugment_pil.py`): all
//! equal byte for byte. Pillow evaluates affine maps incrementally or in 16.16 fixed point;
//! we evaluate them directly in `f64`, which agreed on every fixture pixel but could in
//! principle pick the neighbouring pixel when a source coordinate falls within ~1e-5 of a
//! pixel boundary.
//!
//! Images are channel-first: `c` planes of `h` rows of `w` bytes. Functions that change
//! pixel values in place take `&mut [u8]`; geometric ones write to a separate `dst`.

use super::check_len;

/// Pillow's luma of an RGB pixel: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16` (ITU-R 601
/// weights 0.299, 0.587, 0.114 in 16-bit fixed point, `Convert.c`).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// Pillow's `Image.blend(degenerate, image, factor)` for one pixel: `d + f * (v - d)` in
/// `f32`, clipped to `[0, 255]` and truncated (`Blend.c`).
#[inline]
pub fn blend_pixel(degenerate: u8, value: u8, factor: f32) -> u8 {
    let d = degenerate as f32;
    let t = d + factor * (value as f32 - d);
    if t <= 0.0 {
        0
    } else if t >= 255.0 {
        255
    } else {
        t as u8
    }
}

/// Applies a 256-entry lookup table to every byte.
fn apply_lut(plane: &mut [u8], lut: &[u8; 256]) {
    for v in plane {
        *v = lut[*v as usize];
    }
}

fn histogram(plane: &[u8]) -> [u64; 256] {
    let mut h = [0u64; 256];
    for &v in plane {
        h[v as usize] += 1;
    }
    h
}

/// `ImageOps.autocontrast(img)` (cutoff 0): each channel is stretched so that its darkest
/// value becomes 0 and its brightest 255, through the LUT
/// `clip(int(i * scale + offset))` with `scale = 255 / (hi - lo)`, `offset = -lo * scale`
/// (`f64`, truncated). A constant channel is left unchanged.
pub fn autocontrast(img: &mut [u8], c: usize, h: usize, w: usize) {
    check_len("image", img.len(), c, h, w);
    for plane in img.chunks_exact_mut(h * w) {
        let (lo, hi) = plane
            .iter()
            .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if hi <= lo {
            continue;
        }
        let scale = 255.0 / (hi - lo) as f64;
        let offset = -(lo as f64) * scale;
        let mut lut = [0u8; 256];
        for (i, l) in lut.iter_mut().enumerate() {
            let v = (i as f64 * scale + offset) as i64; // Python int(): towards zero
            *l = v.clamp(0, 255) as u8;
        }
        apply_lut(plane, &lut);
    }
}

/// `ImageOps.equalize(img)`: per channel, with `hist` the histogram and `nz` its non-zero
/// entries, `step = (sum(nz) - last(nz)) // 256`; when `nz` has at most one entry or
/// `step == 0` the channel is unchanged, else `lut[i] = (step // 2 + sum(hist[..i])) // step`
/// (clipped to 255).
pub fn equalize(img: &mut [u8], c: usize, h: usize, w: usize) {
    check_len("image", img.len(), c, h, w);
    for plane in img.chunks_exact_mut(h * w) {
        let hist = histogram(plane);
        let nonzero: Vec<u64> = hist.iter().copied().filter(|&n| n > 0).collect();
        if nonzero.len() <= 1 {
            continue;
        }
        let step = (nonzero.iter().sum::<u64>() - nonzero[nonzero.len() - 1]) / 256;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut n = step / 2;
        for i in 0..256 {
            lut[i] = (n / step).min(255) as u8;
            n += hist[i];
        }
        apply_lut(plane, &lut);
    }
}

/// `ImageOps.posterize(img, bits)`: keeps the top `bits` bits of every value
/// (`v & !(2^(8 - bits) - 1)`). `bits` is clamped to `1..=8`.
pub fn posterize(img: &mut [u8], bits: u8) {
    let bits = bits.clamp(1, 8);
    let mask = !((1u16 << (8 - bits)) - 1) as u8;
    for v in img {
        *v &= mask;
    }
}

/// `ImageOps.solarize(img, threshold)`: values `v >= threshold` become `255 - v`, the others
/// are kept. The threshold is a real number as in the reference (`[0, 256]`).
pub fn solarize(img: &mut [u8], threshold: f64) {
    for v in img {
        if (*v as f64) >= threshold {
            *v = 255 - *v;
        }
    }
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: a blend with a black image, i.e.
/// `trunc(factor * v)` (clipped). `factor` is cast to `f32` as Pillow's C code does.
pub fn brightness(img: &mut [u8], factor: f64) {
    let f = factor as f32;
    for v in img {
        *v = blend_pixel(0, *v, f);
    }
}

/// `ImageEnhance.Color(img).enhance(factor)`: a blend with the grey version of the image
/// (the luma of each pixel, in every channel). On a 1-channel image the grey version is the
/// image itself, so the operation is the identity.
///
/// # Panics
/// If `c` is not 1 or 3.
pub fn color(img: &mut [u8], c: usize, h: usize, w: usize, factor: f64) {
    check_len("image", img.len(), c, h, w);
    assert!(c == 1 || c == 3, "color needs 1 or 3 channels, got {c}");
    if c == 1 {
        return;
    }
    let f = factor as f32;
    let n = h * w;
    let (r, rest) = img.split_at_mut(n);
    let (g, b) = rest.split_at_mut(n);
    for i in 0..n {
        let l = luma(r[i], g[i], b[i]);
        r[i] = blend_pixel(l, r[i], f);
        g[i] = blend_pixel(l, g[i], f);
        b[i] = blend_pixel(l, b[i], f);
    }
}

/// The mean luma of an image, rounded as `ImageEnhance.Contrast` does:
/// `int(mean + 0.5)` over the grey (`L`) version of the image.
///
/// # Panics
/// If `c` is not 1 or 3.
pub fn mean_luma(img: &[u8], c: usize, h: usize, w: usize) -> u8 {
    check_len("image", img.len(), c, h, w);
    assert!(c == 1 || c == 3, "mean_luma needs 1 or 3 channels, got {c}");
    let n = h * w;
    let sum: u64 = if c == 1 {
        img.iter().map(|&v| v as u64).sum()
    } else {
        (0..n)
            .map(|i| luma(img[i], img[n + i], img[2 * n + i]) as u64)
            .sum()
    };
    (sum as f64 / n as f64 + 0.5) as u8
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: a blend with a uniform image of the
/// rounded mean luma ([`mean_luma`]).
///
/// # Panics
/// If `c` is not 1 or 3.
pub fn contrast(img: &mut [u8], c: usize, h: usize, w: usize, factor: f64) {
    let m = mean_luma(img, c, h, w);
    let f = factor as f32;
    for v in img {
        *v = blend_pixel(m, *v, f);
    }
}

/// `img.filter(ImageFilter.SMOOTH)`: the 3x3 kernel `[1 1 1; 1 5 1; 1 1 1] / 13` on every
/// channel, in `f32` with Pillow's `+0.5` rounding offset; the outermost rows and columns
/// are copied unchanged, and images smaller than 3x3 are returned as they are
/// (`Filter.c`, `ImagingFilter3x3`).
pub fn smooth(src: &[u8], c: usize, h: usize, w: usize, dst: &mut [u8]) {
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, h, w);
    dst.copy_from_slice(src);
    if h < 3 || w < 3 {
        return;
    }
    // Pillow stores kernel values as f32 after dividing by the scale.
    let edge = (1.0f64 / 13.0) as f32;
    let centre = (5.0f64 / 13.0) as f32;
    let k = [edge, edge, edge, edge, centre, edge, edge, edge, edge];
    let row = |p: &[u8], y: usize, x: usize, k: &[f32]| -> f32 {
        let r = &p[y * w..(y + 1) * w];
        r[x - 1] as f32 * k[0] + r[x] as f32 * k[1] + r[x + 1] as f32 * k[2]
    };
    for ch in 0..c {
        let p = &src[ch * h * w..(ch + 1) * h * w];
        let out = &mut dst[ch * h * w..(ch + 1) * h * w];
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                // Pillow's order: the row below, the row itself, the row above.
                let mut ss = 0.5f32;
                ss += row(p, y + 1, x, &k[0..3]);
                ss += row(p, y, x, &k[3..6]);
                ss += row(p, y - 1, x, &k[6..9]);
                out[y * w + x] = if ss <= 0.0 {
                    0
                } else if ss >= 255.0 {
                    255
                } else {
                    ss as u8
                };
            }
        }
    }
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: a blend with [`smooth`]`(img)`. Factors
/// below 1 blur, above 1 sharpen; border pixels never change (the smoothed image keeps them).
pub fn sharpness(img: &mut [u8], c: usize, h: usize, w: usize, factor: f64) {
    let mut smoothed = vec![0u8; img.len()];
    smooth(img, c, h, w, &mut smoothed);
    let f = factor as f32;
    for (v, &d) in img.iter_mut().zip(&smoothed) {
        *v = blend_pixel(d, *v, f);
    }
}

/// `Image.transform(size, Image.AFFINE, m, Image.NEAREST, fillcolor=fill)`: output pixel
/// `(x, y)` reads the input at `(floor(m0 (x+½) + m1 (y+½) + m2), floor(m3 (x+½) + m4 (y+½)
/// + m5))` (the matrix maps *output* to *input* coordinates, as in Pillow); outside the
/// image the output is `fill`.
pub fn affine_nearest(
    src: &[u8],
    c: usize,
    h: usize,
    w: usize,
    m: [f64; 6],
    fill: u8,
    dst: &mut [u8],
) {
    check_len("source image", src.len(), c, h, w);
    check_len("destination buffer", dst.len(), c, h, w);
    for y in 0..h {
        let yc = y as f64 + 0.5;
        for x in 0..w {
            let xc = x as f64 + 0.5;
            let sx = (m[0] * xc + m[1] * yc + m[2]).floor();
            let sy = (m[3] * xc + m[4] * yc + m[5]).floor();
            let inside = sx >= 0.0 && sy >= 0.0 && sx < w as f64 && sy < h as f64;
            for ch in 0..c {
                dst[(ch * h + y) * w + x] = if inside {
                    src[(ch * h + sy as usize) * w + sx as usize]
                } else {
                    fill
                };
            }
        }
    }
}

/// Python's `round(v, 15)`, which Pillow applies to the rotation matrix so that multiples of
/// 90 degrees give exact zeros.
fn round15(v: f64) -> f64 {
    (v * 1e15).round() / 1e15
}

/// The output-to-input matrix of Pillow's `Image.rotate(degrees)` (no expand, centre
/// `(w/2, h/2)`): positive angles turn the content counter-clockwise.
pub fn rotation_matrix(degrees: f64, h: usize, w: usize) -> [f64; 6] {
    let angle = -(degrees % 360.0).to_radians();
    let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let (a, b, d, e) = (cos, sin, -sin, cos);
    [a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy]
}

/// `Image.rotate(degrees)` with nearest-neighbour sampling and black (`fill`) corners:
/// [`affine_nearest`] with [`rotation_matrix`].
pub fn rotate(src: &[u8], c: usize, h: usize, w: usize, degrees: f64, fill: u8, dst: &mut [u8]) {
    affine_nearest(src, c, h, w, rotation_matrix(degrees, h, w), fill, dst);
}

/// USB's `ShearX(img, v)`: `img.transform(size, AFFINE, (1, v, 0, 0, 1, 0))`, i.e. output
/// `(x, y)` reads input `(x + v y, y)` (at pixel centres).
pub fn shear_x(src: &[u8], c: usize, h: usize, w: usize, v: f64, fill: u8, dst: &mut [u8]) {
    affine_nearest(src, c, h, w, [1.0, v, 0.0, 0.0, 1.0, 0.0], fill, dst);
}

/// USB's `ShearY(img, v)`: `img.transform(size, AFFINE, (1, 0, 0, v, 1, 0))`: output
/// `(x, y)` reads input `(x, y + v x)`.
pub fn shear_y(src: &[u8], c: usize, h: usize, w: usize, v: f64, fill: u8, dst: &mut [u8]) {
    affine_nearest(src, c, h, w, [1.0, 0.0, 0.0, v, 1.0, 0.0], fill, dst);
}

/// USB's `TranslateX(img, v)`: a shift by `v * width` pixels
/// (`AFFINE, (1, 0, v * w, 0, 1, 0)`): output `(x, y)` reads input `(x + v w, y)`, so a
/// positive `v` moves the content to the left.
pub fn translate_x(src: &[u8], c: usize, h: usize, w: usize, v: f64, fill: u8, dst: &mut [u8]) {
    let t = v * w as f64;
    affine_nearest(src, c, h, w, [1.0, 0.0, t, 0.0, 1.0, 0.0], fill, dst);
}

/// USB's `TranslateY(img, v)`: a shift by `v * height` pixels; a positive `v` moves the
/// content up.
pub fn translate_y(src: &[u8], c: usize, h: usize, w: usize, v: f64, fill: u8, dst: &mut [u8]) {
    let t = v * h as f64;
    affine_nearest(src, c, h, w, [1.0, 0.0, 0.0, 0.0, 1.0, t], fill, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_and_blend_by_hand() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
        // (125*19595 + 123*38470 + 114*7471 + 32768) >> 16 = 8095949 >> 16 = 123.
        assert_eq!(luma(125, 123, 114), 123);
        assert_eq!(luma(255, 0, 0), 76); // 0.299 * 255 = 76.2
                                         // 0 + 0.5 * 201 = 100.5 -> 100 (truncated, not rounded).
        assert_eq!(blend_pixel(0, 201, 0.5), 100);
        // 100 + 0.25 * (0 - 100) = 75.
        assert_eq!(blend_pixel(100, 0, 0.25), 75);
        // Extrapolation clips.
        assert_eq!(blend_pixel(0, 200, 2.0), 255);
        assert_eq!(blend_pixel(200, 0, 2.0), 0);
    }

    #[test]
    fn autocontrast_stretches_each_channel() {
        // Channel 0 spans 50..=100: scale = 255/50 = 5.1, offset = -50 * 5.1. In f64,
        // 100 * 5.1 - 50 * 5.1 = 254.99999999999997, so the brightest value becomes 254, as
        // Pillow gives (checked: `ImageOps.autocontrast` on [50, 75, 100] -> [0, 127, 254]).
        // Channel 1 is constant and stays.
        let mut img = [50, 75, 100, 9, 9, 9];
        autocontrast(&mut img, 2, 1, 3);
        assert_eq!(img, [0, 127, 254, 9, 9, 9]);
    }

    #[test]
    fn equalize_by_hand() {
        // Values 0 (x2), 100 (x1), 200 (x1), 255 (x256): nonzero = [2, 1, 1, 256],
        // step = (260 - 256) // 256 = 0 -> unchanged.
        let mut img = vec![255u8; 260];
        img[..4].copy_from_slice(&[0, 0, 100, 200]);
        let before = img.clone();
        equalize(&mut img, 1, 1, 260);
        assert_eq!(img, before);
        // 256 pixels of 10 and 256 of 20 and 1 of 30: step = (513 - 1) // 256 = 2,
        // lut[i] = (1 + cum(i)) // 2: lut[10] = 0, lut[20] = (1 + 256) // 2 = 128,
        // lut[30] = (1 + 512) // 2 = 256 -> 255.
        let mut img = vec![10u8; 513];
        img[256..512].fill(20);
        img[512] = 30;
        equalize(&mut img, 1, 1, 513);
        assert_eq!((img[0], img[300], img[512]), (0, 128, 255));
    }

    #[test]
    fn posterize_and_solarize_by_hand() {
        let mut img = [0u8, 15, 16, 200, 255];
        posterize(&mut img, 4);
        assert_eq!(img, [0, 0, 16, 192, 240]);
        let mut img = [0u8, 127, 128, 200, 255];
        solarize(&mut img, 128.0);
        assert_eq!(img, [0, 127, 127, 55, 0]);
        let mut img = [0u8, 255];
        solarize(&mut img, 256.0); // nothing reaches the threshold
        assert_eq!(img, [0, 255]);
        solarize(&mut img, 0.0); // everything inverts
        assert_eq!(img, [255, 0]);
    }

    #[test]
    fn brightness_color_contrast_by_hand() {
        let mut img = [200u8, 100, 3];
        brightness(&mut img, 0.5);
        assert_eq!(img, [100, 50, 1]);
        // 1 pixel RGB (200, 0, 0): luma = (200*19595 + 32768) >> 16 = 60;
        // 0.5 blend: 60 + 0.5*140 = 130, 60 - 30 = 30 for G and B.
        let mut img = [200u8, 0, 0];
        color(&mut img, 3, 1, 1, 0.5);
        assert_eq!(img, [130, 30, 30]);
        let mut grey = [7u8, 200];
        color(&mut grey, 1, 1, 2, 0.1);
        assert_eq!(grey, [7, 200]);
        // Grey 0, 100: mean 50; 0.5 blend: 25, 75.
        let mut img = [0u8, 100];
        contrast(&mut img, 1, 1, 2, 0.5);
        assert_eq!(img, [25, 75]);
        // Mean 0.5 rounds up: values 0, 1 -> mean int(0.5 + 0.5) = 1.
        assert_eq!(mean_luma(&[0, 1], 1, 1, 2), 1);
    }

    #[test]
    fn smooth_by_hand() {
        // A single bright pixel in the centre of 3x3: centre = 5*130/13 + 0.5 = 50.5 -> 50;
        // borders unchanged.
        let mut src = [0u8; 9];
        src[4] = 130;
        let mut dst = [0u8; 9];
        smooth(&src, 1, 3, 3, &mut dst);
        assert_eq!(dst, [0, 0, 0, 0, 50, 0, 0, 0, 0]);
        // Sharpness 0.5: 50 + 0.5 * (130 - 50) = 90.
        let mut img = src;
        sharpness(&mut img, 1, 3, 3, 0.5);
        assert_eq!(img[4], 90);
        // Too small to filter: unchanged.
        let mut img = [1u8, 2, 3, 4];
        sharpness(&mut img, 1, 2, 2, 0.0);
        assert_eq!(img, [1, 2, 3, 4]);
    }

    #[test]
    fn rotation_by_quarter_turns_and_identity() {
        // 3x3 digits 1..9. Pillow's rotate(90) turns counter-clockwise.
        let src: Vec<u8> = (1..=9).collect();
        let mut dst = vec![0u8; 9];
        rotate(&src, 1, 3, 3, 90.0, 0, &mut dst);
        assert_eq!(dst, [3, 6, 9, 2, 5, 8, 1, 4, 7]);
        rotate(&src, 1, 3, 3, 180.0, 0, &mut dst);
        assert_eq!(dst, [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        rotate(&src, 1, 3, 3, -90.0, 0, &mut dst);
        assert_eq!(dst, [7, 4, 1, 8, 5, 2, 9, 6, 3]);
        rotate(&src, 1, 3, 3, 0.0, 0, &mut dst);
        assert_eq!(dst, src);
        // 45 degrees on 3x3: output (0, 0) is (-1, -1) from the centre (1.5, 1.5); the map
        // (cos 45, -sin 45; sin 45, cos 45) sends it to (0, -1.414) + centre = (1.5, 0.086),
        // i.e. input row 0, column 1 = 2. Pillow 13 gives the same whole image.
        rotate(&src, 1, 3, 3, 45.0, 0, &mut dst);
        assert_eq!(dst, [2, 3, 6, 1, 5, 9, 4, 7, 8]);
        // On 5x5 the output corners are 2.83 px from the centre: outside -> fill.
        let src: Vec<u8> = (1..=25).collect();
        let mut dst = vec![0u8; 25];
        rotate(&src, 1, 5, 5, 45.0, 0, &mut dst);
        assert_eq!(
            (dst[0], dst[4], dst[20], dst[24], dst[12]),
            (0, 0, 0, 0, 13)
        );
    }

    #[test]
    fn shear_and_translate_by_hand() {
        // 2 channels of 2x4: channel 1 = channel 0 + 100.
        let src: Vec<u8> = (0..8).chain(100..108).collect();
        let mut dst = vec![0u8; 16];
        // Translate by 0.25 * 4 = 1 pixel: output x reads input x + 1 (content moves left).
        translate_x(&src, 2, 2, 4, 0.25, 0, &mut dst);
        assert_eq!(
            dst,
            [1, 2, 3, 0, 5, 6, 7, 0, 101, 102, 103, 0, 105, 106, 107, 0]
        );
        // Translate up by 0.5 * 2 = 1 row.
        translate_y(&src, 2, 2, 4, 0.5, 9, &mut dst);
        assert_eq!(
            dst,
            [4, 5, 6, 7, 9, 9, 9, 9, 104, 105, 106, 107, 9, 9, 9, 9]
        );
        // ShearX by 1: xin = (x + 0.5) + 1 * (y + 0.5) = x + y + 1.
        shear_x(&src[..8], 1, 2, 4, 1.0, 0, &mut dst[..8]);
        // Row 0: xin = x + 1 -> [1, 2, 3, fill]; row 1: xin = x + 2 -> [6, 7, fill, fill].
        assert_eq!(&dst[..8], &[1, 2, 3, 0, 6, 7, 0, 0]);
        // ShearY by 0.5 on 4 rows x 2 cols: yin = (y + 0.5) + 0.5 (x + 0.5).
        let src: Vec<u8> = (1..=8).collect(); // rows [1,2],[3,4],[5,6],[7,8]
        let mut dst = vec![0u8; 8];
        shear_y(&src, 1, 4, 2, 0.5, 0, &mut dst);
        // x=0: yin = y + 0.75 -> y; x=1: yin = y + 1.25 -> y + 1.
        assert_eq!(dst, [1, 4, 3, 6, 5, 8, 7, 0]);
    }
}
