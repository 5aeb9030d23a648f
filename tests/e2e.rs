//! End-to-end tests: the `trainer` binary on the bundled MNIST / Fashion-MNIST subset.
//!
//! Runs are tiny (a few hundred images, 1-2 epochs of a width-8 ResNet) so the suite stays
//! fast; they exercise the same code path as the quickstart.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run trainer")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A tiny OE run of the quickstart config in `out`.
fn tiny_args(out: &Path, extra: &[&str]) -> Vec<String> {
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

fn run_ok(args: &[String]) -> Output {
    let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = trainer(&a);
    assert!(
        o.status.success(),
        "trainer {args:?} failed:\n{}",
        stderr(&o)
    );
    o
}

fn metrics(run: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(run.join("metrics.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn oe_run_writes_the_run_folder_and_resume_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let split = tmp.path().join("split");

    // Uninterrupted run.
    run_ok(&tiny_args(&full, &[]));
    let run = full.join("quickstart");
    for f in [
        "config.toml",
        "metrics.json",
        "report.md",
        "checkpoints/last/model.mpk",
        "checkpoints/last/optim.mpk",
        "checkpoints/last/state.json",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let m = metrics(&run);
    assert_eq!(m["recipe"], "oe");
    assert_eq!(m["device"], "cpu");
    let acc = m["id"]["accuracy"].as_f64().unwrap();
    assert!(acc > 0.3 && acc <= 1.0, "accuracy {acc}");
    // 2 OOD sets x 3 detectors, each metric a fraction.
    let rows = m["ood"].as_array().unwrap();
    assert_eq!(rows.len(), 6);
    for r in rows {
        for k in ["auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_id_positive"] {
            let v = r[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
    }
    // TensorBoard: every loss term, the learning rate, accuracy and AUROC per OOD set.
    let ev = trainer::tb::read_scalars(&run.join("tb")).unwrap();
    let tags: std::collections::BTreeSet<&str> = ev.iter().map(|e| e.tag.as_str()).collect();
    for t in [
        "loss/total",
        "loss/ce",
        "loss/oe",
        "lr",
        "train/accuracy",
        "eval/accuracy",
        "eval/auroc/mnist-6-9/msp",
        "eval/auroc/fashion-mnist-5-9/energy",
    ] {
        assert!(tags.contains(t), "missing TensorBoard tag {t}: {tags:?}");
    }

    // Interrupted after its first checkpoint, then resumed.
    let a = tiny_args(&split, &["--halt-after-epochs", "1"]);
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = trainer(&a);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let run2 = split.join("quickstart");
    assert!(!run2.join("metrics.json").exists());
    let o = trainer(&["train", "--resume", run2.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(run.join("metrics.json")).unwrap(),
        std::fs::read(run2.join("metrics.json")).unwrap(),
        "resumed metrics.json differs from the uninterrupted run"
    );

    // Re-evaluation reproduces the metrics and writes per-sample scores.
    let o = trainer(&["eval", "--run", run.to_str().unwrap(), "--save-scores"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&run.join("eval")), m);
    let csv = std::fs::read_to_string(run.join("eval/scores.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "dataset,group,detector,index,is_ood,score"
    );
    assert!(csv.contains("mnist-6-9,near,msp,0,1,"));

    // Export: torchvision names, including num_batches_tracked, plus json and sample.
    let out = tmp.path().join("model.safetensors");
    let export = [
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    let o = trainer(&export);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    for k in [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "fc.weight",
        "fc.bias",
    ] {
        assert!(names.iter().any(|n| n == k), "missing {k} in {names:?}");
    }
    assert!(!names
        .iter()
        .any(|n| n.contains("gamma") || n.contains("downsample.conv")));
    // fc.weight is [classes, features] in PyTorch layout.
    assert_eq!(st.tensor("fc.weight").unwrap().shape(), &[6, 64]);
    assert!(tmp.path().join("model.json").exists());
    let sample_bytes = std::fs::read(tmp.path().join("model.sample.safetensors")).unwrap();
    let sample = safetensors::SafeTensors::deserialize(&sample_bytes).unwrap();
    assert_eq!(sample.tensor("input").unwrap().shape(), &[8, 1, 28, 28]);
    assert_eq!(sample.tensor("logits").unwrap().shape(), &[8, 6]);
    // Never overwritten without asking.
    let o = trainer(&export);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
}

#[test]
fn same_seed_same_metrics_supervised() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run_ok(&tiny_args(
        &a,
        &["--set", "recipe=supervised", "--set", "train.epochs=1"],
    ));
    run_ok(&tiny_args(
        &b,
        &["--set", "recipe=supervised", "--set", "train.epochs=1"],
    ));
    assert_eq!(
        std::fs::read(a.join("quickstart/metrics.json")).unwrap(),
        std::fs::read(b.join("quickstart/metrics.json")).unwrap()
    );
    assert_eq!(metrics(&a.join("quickstart"))["recipe"], "supervised");
}

fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {e}");
    assert!(!e.contains("panicked"), "panic instead of an error: {e}");
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

#[test]
fn bad_input_gives_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap().to_string();
    let out_set = format!("output_dir={out:?}");
    // Unknown key: the error names its path.
    let o = trainer(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--set",
        "train.lr_max=1",
    ]);
    assert_clean_failure(&o, &["train.lr_max", "unknown field"]);
    // Non-numeric override.
    let o = trainer(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--set",
        "train.lr=fast",
    ]);
    assert_clean_failure(&o, &["train.lr"]);
    // Missing dataset folder.
    let o = trainer(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--set",
        &out_set,
        "--set",
        "data.id.path=\"no/such/dir\"",
    ]);
    assert_clean_failure(&o, &["no/such/dir", "does not exist"]);
    // A device that is not compiled in.
    #[cfg(not(feature = "tch"))]
    {
        let o = trainer(&[
            "train",
            "--config",
            "configs/quickstart.toml",
            "--device",
            "tch-cpu",
        ]);
        assert_clean_failure(&o, &["--features tch"]);
    }
    let o = trainer(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--device",
        "gpu",
    ]);
    assert_clean_failure(&o, &["unknown device"]);
    // Missing config file.
    let o = trainer(&["train", "--config", "configs/nope.toml"]);
    assert_clean_failure(&o, &["configs/nope.toml"]);
}

#[test]
fn nan_loss_stops_the_run_and_existing_runs_are_not_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    // A learning rate this large overflows within a few steps.
    let a = tiny_args(
        tmp.path(),
        &["--set", "train.lr=1e30", "--set", "recipe=supervised"],
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = trainer(&a);
    assert_clean_failure(&o, &["the loss became", "checkpoint"]);
    // The folder now exists: a second start refuses to overwrite it.
    let o = trainer(&a);
    assert_clean_failure(&o, &["already exists", "--overwrite"]);
    assert!(tmp.path().join("quickstart/config.toml").exists());
}
