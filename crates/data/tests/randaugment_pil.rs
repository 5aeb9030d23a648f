//! RandAugment's operations against Pillow: every case of `fixtures/randaugment_pil.txt`
//! (written by `fixtures/randaugment_pil.py` with Pillow 13 and torchvision, on a real
//! MNIST digit and random RGB images) must match byte for byte.

use std::collections::HashMap;

use unseen_data::transforms::randaugment::{cutout, cutout_rect, RandOp, USB_CUTOUT_FILL};
use unseen_data::transforms::views::{crop_padded, PaddingMode};

const FIXTURE: &str = include_str!("fixtures/randaugment_pil.txt");

struct Image {
    c: usize,
    h: usize,
    w: usize,
    pixels: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn op_by_name(name: &str) -> RandOp {
    match name {
        "auto_contrast" => RandOp::AutoContrast,
        "brightness" => RandOp::Brightness,
        "color" => RandOp::Color,
        "contrast" => RandOp::Contrast,
        "equalize" => RandOp::Equalize,
        "identity" => RandOp::Identity,
        "posterize" => RandOp::Posterize,
        "rotate" => RandOp::Rotate,
        "sharpness" => RandOp::Sharpness,
        "shear_x" => RandOp::ShearX,
        "shear_y" => RandOp::ShearY,
        "solarize" => RandOp::Solarize,
        "translate_x" => RandOp::TranslateX,
        "translate_y" => RandOp::TranslateY,
        other => panic!("unknown op {other}"),
    }
}

fn images() -> HashMap<String, Image> {
    let mut out = HashMap::new();
    for line in FIXTURE.lines().filter(|l| l.starts_with("image ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (c, h, w) = (
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        );
        let pixels = unhex(f[5]);
        assert_eq!(pixels.len(), c * h * w);
        out.insert(f[1].to_string(), Image { c, h, w, pixels });
    }
    out
}

/// Number of differing bytes, and a description of the first one.
fn compare(got: &[u8], want: &[u8], img: &Image) -> Option<String> {
    assert_eq!(got.len(), want.len());
    let bad: Vec<usize> = (0..got.len()).filter(|&i| got[i] != want[i]).collect();
    bad.first().map(|&i| {
        let plane = img.h * img.w;
        format!(
            "{} bytes differ; first at channel {} row {} col {}: got {}, Pillow {}",
            bad.len(),
            i / plane,
            i % plane / img.w,
            i % img.w,
            got[i],
            want[i]
        )
    })
}

#[test]
fn every_operation_matches_pillow() {
    let images = images();
    assert!(images["mnist0"].pixels.iter().filter(|&&v| v > 0).count() > 100);
    let mut cases = 0;
    let mut failures = Vec::new();
    for line in FIXTURE.lines().filter(|l| l.starts_with("case ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let img = &images[f[1]];
        let v: f64 = f[3].parse().unwrap();
        let mut got = img.pixels.clone();
        op_by_name(f[2]).apply(&mut got, img.c, img.h, img.w, v, &mut Vec::new());
        if let Some(e) = compare(&got, &unhex(f[4]), img) {
            failures.push(format!("{} {} {}: {e}", f[1], f[2], f[3]));
        }
        cases += 1;
    }
    assert!(cases >= 70, "only {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn chains_of_operations_match_pillow() {
    let images = images();
    let mut n = 0;
    for line in FIXTURE.lines().filter(|l| l.starts_with("chain ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let img = &images[f[1]];
        let mut got = img.pixels.clone();
        let mut scratch = Vec::new();
        for step in f[2].split(',') {
            let (name, v) = step.split_once(':').unwrap();
            op_by_name(name).apply(
                &mut got,
                img.c,
                img.h,
                img.w,
                v.parse().unwrap(),
                &mut scratch,
            );
        }
        assert_eq!(compare(&got, &unhex(f[3]), img), None, "{} {}", f[1], f[2]);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn cutout_matches_pillow_rectangle() {
    let images = images();
    let mut n = 0;
    for line in FIXTURE.lines().filter(|l| l.starts_with("cutout ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let img = &images[f[1]];
        let (size, cx, cy): (f64, f64, f64) = (
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
            f[4].parse().unwrap(),
        );
        let rect = cutout_rect(img.h, img.w, size, cx, cy);
        let fill: Vec<u8> = if img.c == 3 {
            USB_CUTOUT_FILL.to_vec()
        } else {
            vec![123]
        };
        let mut got = img.pixels.clone();
        cutout(&mut got, img.c, img.h, img.w, rect, &fill);
        assert_eq!(compare(&got, &unhex(f[5]), img), None, "{line:.60}");
        n += 1;
    }
    assert_eq!(n, 5);
}

#[test]
fn reflect_crop_matches_torchvision() {
    let images = images();
    let mut n = 0;
    for line in FIXTURE.lines().filter(|l| l.starts_with("crop ")) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let img = &images[f[1]];
        let p: usize = f[2].parse().unwrap();
        let flip = f[3] == "1";
        let (top, left): (usize, usize) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        let mut got = vec![0u8; img.pixels.len()];
        crop_padded(
            &img.pixels,
            img.c,
            img.h,
            img.w,
            p,
            PaddingMode::Reflect,
            flip,
            top,
            left,
            &mut got,
        );
        assert_eq!(compare(&got, &unhex(f[6]), img), None, "{line:.60}");
        n += 1;
    }
    assert_eq!(n, 4);
}
