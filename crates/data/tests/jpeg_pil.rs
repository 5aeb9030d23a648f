//! JPEG decoding against Pillow, the decoder of the Python references (IOMatch's
//! ImageNet-30 lists, torchvision's `ImageFolder`): `fixtures/jpeg_pil.txt`, written by
//! `fixtures/make_jpeg.py` (Pillow 13.0.0, libjpeg-turbo), holds Pillow's pixels for the
//! JPEGs in `fixtures/jpeg/` (real Fashion-MNIST content; 4:2:0, 4:4:4, progressive, grey).
//!
//! We decode with the `image` crate, whose IDCT and chroma upsampling are not
//! libjpeg-turbo's, so pixels are not identical. This test pins how far apart they are, so a
//! change of decoder (or of `image`'s) that moves them shows up.

use std::collections::HashMap;
use std::path::Path;

use unseen_data::formats::folder::load_image_folder;

const FIXTURE: &str = include_str!("fixtures/jpeg_pil.txt");

/// An image of the fixture: channels, height, width, HWC pixels.
type Decoded = (usize, usize, usize, Vec<u8>);

/// `(set, name) -> image` from the fixture.
fn pillow() -> HashMap<(String, String), Decoded> {
    FIXTURE
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (h, w, c): (usize, usize, usize) = (
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            );
            let px = (0..f[5].len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&f[5][i..i + 2], 16).unwrap())
                .collect();
            ((f[0].to_string(), f[1].to_string()), (c, h, w, px))
        })
        .collect()
}

/// Largest and mean absolute difference of our decode of every image of `set` to Pillow's.
fn differences(set: &str, channels: usize) -> Vec<(String, u8, f64)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jpeg")
        .join(set);
    let ours = load_image_folder(&dir, channels, None).unwrap();
    let want = pillow();
    assert_eq!(ours.len(), ours.class_names.len());
    let mut out = Vec::new();
    for (i, name) in ours.class_names.iter().enumerate() {
        let (c, h, w, hwc) = &want[&(set.to_string(), name.clone())];
        assert_eq!(
            (ours.channels, ours.height, ours.width),
            (*c, *h, *w),
            "{name}"
        );
        let chw = ours.image(i);
        let (mut max, mut sum) = (0u8, 0u64);
        for y in 0..*h {
            for x in 0..*w {
                for k in 0..*c {
                    let d = chw[k * h * w + y * w + x].abs_diff(hwc[(y * w + x) * c + k]);
                    max = max.max(d);
                    sum += d as u64;
                }
            }
        }
        out.push((name.clone(), max, sum as f64 / hwc.len() as f64));
    }
    out
}

/// Bounds from the run that wrote this test (max |difference|, mean |difference| in grey
/// levels): 4:2:0 quality 75: 3, 0.287; progressive quality 50 (4:2:0): 4, 0.286; 4:4:4
/// quality 95: 2, 0.018; grey quality 75 / 90: 1, 0.007 / 0.013. Chroma upsampling is most
/// of the 4:2:0 gap; without subsampling only the IDCT's rounding is left.
fn check(set: &str, channels: usize, bounds: &[(&str, u8, f64)]) {
    let d = differences(set, channels);
    assert_eq!(d.len(), bounds.len());
    for ((name, max, mean), (want_name, max_bound, mean_bound)) in d.iter().zip(bounds) {
        assert_eq!(name, want_name);
        assert!(
            *max <= *max_bound && *mean <= *mean_bound,
            "{set}/{name}: max {max} (bound {max_bound}), mean {mean} (bound {mean_bound})"
        );
    }
}

#[test]
fn colour_jpegs_decode_within_a_few_levels_of_pillow() {
    check(
        "rgb",
        3,
        &[
            ("q50_progressive", 4, 0.30),
            ("q75_420", 3, 0.30),
            ("q95_444", 2, 0.03),
        ],
    );
}

#[test]
fn grey_jpegs_decode_within_one_level_of_pillow() {
    check("grey", 1, &[("q75", 1, 0.01), ("q90", 1, 0.02)]);
}
