//! Test-only access to the committed torch fixtures under `tests/fixtures/`:
//! `gcd_ossl_refs.json` (written once by `make_gcd_ossl_refs.py`) and `logitnorm_refs.json`
//! (written once by `make_logitnorm_refs.py`); each script's header records the command and
//! versions. The files' top-level objects are merged into one tree, so paths are
//! `/`-separated keys, e.g. `"simgcd/epoch10_memax2/total"` or `"logitnorm/hand/tau1/loss"`.

use std::sync::OnceLock;

use burn::prelude::*;
use burn::tensor::{TensorData, Tolerance};
use serde_json::Value;

/// Every fixture file, by name; their top-level keys must not collide.
static FILES: [(&str, &str); 2] = [
    (
        "gcd_ossl_refs.json",
        include_str!("../tests/fixtures/gcd_ossl_refs.json"),
    ),
    (
        "logitnorm_refs.json",
        include_str!("../tests/fixtures/logitnorm_refs.json"),
    ),
];

fn root() -> &'static Value {
    static ROOT: OnceLock<Value> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut merged = serde_json::Map::new();
        for (name, text) in FILES {
            let value: Value =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{name} parses: {e}"));
            let Value::Object(map) = value else {
                panic!("{name}: the top level is not an object");
            };
            for (key, v) in map {
                assert!(
                    merged.insert(key.clone(), v).is_none(),
                    "{name}: top-level key `{key}` is also in another fixture file"
                );
            }
        }
        Value::Object(merged)
    })
}

/// The JSON value at `path`.
pub(crate) fn get(path: &str) -> &'static Value {
    path.split('/').fold(root(), |v, key| {
        v.get(key)
            .unwrap_or_else(|| panic!("the fixtures have no key `{key}` in `{path}`"))
    })
}

/// The number at `path`.
pub(crate) fn num(path: &str) -> f64 {
    get(path)
        .as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number"))
}

fn flatten(v: &Value, shape: &mut Vec<usize>, depth: usize, out: &mut Vec<f64>) {
    match v {
        Value::Array(items) => {
            if shape.len() == depth {
                shape.push(items.len());
            }
            for item in items {
                flatten(item, shape, depth + 1, out);
            }
        }
        Value::Bool(b) => out.push(if *b { 1.0 } else { 0.0 }),
        other => out.push(other.as_f64().expect("a number")),
    }
}

/// The nested array at `path` as flat f64 values and its shape.
pub(crate) fn array(path: &str) -> (Vec<f64>, Vec<usize>) {
    let mut shape = Vec::new();
    let mut out = Vec::new();
    flatten(get(path), &mut shape, 0, &mut out);
    (out, shape)
}

/// The array at `path` as `TensorData` (f64, for `assert_approx_eq::<f32>`).
pub(crate) fn data(path: &str) -> TensorData {
    let (v, shape) = array(path);
    TensorData::new(v, shape)
}

/// The array at `path` as a float tensor (rounded to f32, as the script's inputs are).
pub(crate) fn tensor<B: Backend, const D: usize>(path: &str, device: &B::Device) -> Tensor<B, D> {
    let (v, shape) = array(path);
    assert_eq!(shape.len(), D, "`{path}` has {} dims, not {D}", shape.len());
    let v: Vec<f32> = v.into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The array at `path` as an integer tensor.
pub(crate) fn ints<B: Backend>(path: &str, device: &B::Device) -> Tensor<B, 1, Int> {
    let (v, shape) = array(path);
    let v: Vec<i64> = v.into_iter().map(|x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The array at `path` (JSON booleans) as a bool tensor.
pub(crate) fn bools<B: Backend>(path: &str, device: &B::Device) -> Tensor<B, 1, Bool> {
    let (v, shape) = array(path);
    let v: Vec<bool> = v.into_iter().map(|x| x != 0.0).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Asserts that a `[1]` loss equals the number at `path` within `1e-5` relative
/// (absolute below 1).
pub(crate) fn assert_scalar<B: Backend>(actual: Tensor<B, 1>, path: &str) {
    assert_eq!(actual.dims(), [1], "a loss must have shape [1]");
    let actual: f64 = actual.into_scalar().elem();
    let expected = num(path);
    let tol = 1e-5 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() < tol,
        "{path}: got {actual}, expected {expected}"
    );
}

/// Asserts that a tensor equals the array at `path` (relative 1e-4, absolute 1e-6).
pub(crate) fn assert_tensor<B: Backend, const D: usize>(actual: Tensor<B, D>, path: &str) {
    actual
        .into_data()
        .assert_approx_eq::<f32>(&data(path), Tolerance::rel_abs(1e-4, 1e-6));
}
