//! What the end-to-end tests (`e2e.rs`) and the crash-anywhere tests (`crash.rs`) share:
//! running the `trainer` binary and the tiny configs of each family on the bundled MNIST
//! subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run trainer")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the trainer and asserts it succeeded (its stderr in the failure message).
pub fn trainer_ok(args: &[&str]) -> Output {
    let o = trainer(args);
    assert!(
        o.status.success(),
        "trainer {args:?} failed:\n{}",
        stderr(&o)
    );
    o
}

/// Asserts a failed run with a clean error (no panic) that mentions every needle.
pub fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {e}");
    assert!(!e.contains("panicked"), "panic instead of an error: {e}");
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

/// A tiny OE run of the quickstart config in `out`.
pub fn tiny_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--config",
        "configs/quickstart.toml",
        "--quiet",
        "--set",
        "model.width=8",
        "--set",
        "data.id.limit_per_class=60",
        "--set",
        "data.outliers.limit_per_class=60",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend([
        "--set".to_string(),
        format!("output_dir={:?}", out.display().to_string()),
        "--set".into(),
        "train.epochs=2".into(),
        "--set".into(),
        "train.batch_size=32".into(),
        "--set".into(),
        "train.outlier_batch_size=32".into(),
    ]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn run_ok(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = trainer(&a);
    assert!(
        o.status.success(),
        "trainer {args:?} failed:\n{}",
        stderr(&o)
    );
    o
}

pub fn metrics(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A tiny OSSL run of `configs/cpu/<recipe>_mnist.toml` in `out`: 30 digits per class
/// (300 train, 300 test), width-4 ResNet, 2 epochs of 3 iterations of 4 labelled + 8
/// unlabelled images, evaluated every 2 iterations (and at the end: iterations 2, 4, 6).
pub fn ossl_args(recipe: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--config",
        &format!("configs/cpu/{recipe}_mnist.toml"),
        "--quiet",
        "--set",
        "model.width=4",
        "--set",
        "data.id.limit_per_class=30",
        "--set",
        "train.epochs=2",
        "--set",
        "train.batch_size=4",
        "--set",
        "ossl.mu=2",
        "--set",
        "ossl.iters_per_epoch=3",
        "--set",
        "ossl.eval_every_iters=2",
        "--set",
        &format!("output_dir={:?}", out.display().to_string()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `metrics.json` without the wall-clock time (the only field allowed to differ between
/// two runs of the same config and seed).
pub fn ossl_metrics(run: &Path) -> serde_json::Value {
    let mut m = metrics(run);
    m["ossl"].as_object_mut().unwrap().remove("train_seconds");
    m
}

/// A tiny GCD-family run (`recipe`) of the CPU MNIST config in `out`.
pub fn gcd_args(recipe: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--config",
        &format!("configs/cpu/{recipe}_mnist.toml"),
        "--quiet",
        "--set",
        "data.id.limit_per_class=24",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=32",
        "--set",
        "model.width=8",
        "--set",
        "gcd.proj_hidden=32",
        "--set",
        "gcd.proj_dim=16",
        "--set",
        "gcd.kmeans_n_init=2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend([
        "--set".to_string(),
        format!("output_dir={:?}", out.display().to_string()),
    ]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}
