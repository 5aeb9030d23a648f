//! Gradients of 2-D convolution against PyTorch (`fixtures/make_conv_grads.py`, float64
//! reference): the output and the input, weight and bias gradients that every CPU training step
//! of a convolutional backbone goes through. On `flex` all three run on the vendored
//! `burn-flex`'s NCHW im2col kernels (`vendor/burn-flex/src/ops/conv2d_nchw.rs`, see
//! `vendor/burn-flex/UNSEEN.md`); the cases cover each of their paths: the patch matrix at
//! stride 1 and 2, with dilation and groups, the 1x1 stride-1 case that skips it, and a
//! non-square input under the 7x7 stem, and a batch of 40, which the weight gradient sums
//! in 32 chunks, some of two samples.
//!
//! Tolerance: max |Δ| <= 1e-4 · max(1, max |reference|).

use std::collections::BTreeMap;
use std::path::Path;

use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use unseen_backbones::weights::read_tensors;

type B = Autodiff<Flex>;

/// `(name, stride, padding, dilation, groups)` as `make_conv_grads.py` writes them.
const CASES: [(&str, usize, usize, usize, usize); 9] = [
    ("k3s1", 1, 1, 1, 1),
    ("k3s2", 2, 1, 1, 1),
    ("k1s2", 2, 0, 1, 1),
    ("k3d2", 1, 2, 2, 1),
    ("k3g2", 1, 1, 1, 2),
    ("k1s1", 1, 0, 1, 1),
    ("k1g3", 1, 0, 1, 3),
    ("k7s2", 2, 3, 1, 1),
    ("b40", 1, 1, 1, 1),
];

fn tensor<const D: usize>(
    r: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    key: &str,
    dev: &burn::tensor::Device<B>,
) -> Tensor<B, D> {
    let (shape, v) = &r[key];
    Tensor::from_data(TensorData::new(v.clone(), shape.clone()), dev)
}

fn check(label: &str, got: Vec<f32>, want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{label}: length");
    let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff <= 1e-4 * scale,
        "{label}: max |Δ| = {diff} (scale {scale})"
    );
}

#[test]
fn conv2d_gradients_match_pytorch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/conv_grads/conv_grads.safetensors");
    let r: BTreeMap<String, (Vec<usize>, Vec<f32>)> = read_tensors(&path, None)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, (t.shape, t.values)))
        .collect();
    let dev = Default::default();
    for (name, s, p, d, g) in CASES {
        let x = tensor::<4>(&r, &format!("{name}.x"), &dev).require_grad();
        let w = tensor::<4>(&r, &format!("{name}.weight"), &dev).require_grad();
        let b = tensor::<1>(&r, &format!("{name}.bias"), &dev).require_grad();
        let up = tensor::<4>(&r, &format!("{name}.g"), &dev);
        let y = conv2d(
            x.clone(),
            w.clone(),
            Some(b.clone()),
            ConvOptions::new([s, s], [p, p], [d, d], g),
        );
        let vals = |t: Tensor<Flex, 4>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        check(
            &format!("{name} y"),
            vals(y.clone().inner()),
            &r[&format!("{name}.y")].1,
        );
        let grads = (y * up).sum().backward();
        check(
            &format!("{name} dx"),
            vals(x.grad(&grads).unwrap()),
            &r[&format!("{name}.dx")].1,
        );
        check(
            &format!("{name} dweight"),
            vals(w.grad(&grads).unwrap()),
            &r[&format!("{name}.dweight")].1,
        );
        let db = b.grad(&grads).unwrap();
        check(
            &format!("{name} dbias"),
            db.into_data().convert::<f32>().to_vec::<f32>().unwrap(),
            &r[&format!("{name}.dbias")].1,
        );
    }
}
