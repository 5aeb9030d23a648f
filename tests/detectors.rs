//! Post-hoc detectors through the trainer: a tiny OE run evaluated with every detector
//! (`eval.detectors = ["all"]`), re-evaluated bit for bit, and `trainer predict` on a folder
//! of real MNIST and Fashion-MNIST images written as PNGs.

mod common;

use std::path::Path;
use std::process::Output;

use common::{metrics, run_ok, stderr, tiny_args, trainer};
use unseen_data::formats::{load_fashion_mnist, load_mnist, Split};

fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {e}");
    assert!(!e.contains("panicked"), "panic instead of an error: {e}");
    for n in needles {
        assert!(e.contains(n), "error should mention {n:?}: {e}");
    }
}

/// Writes the first `n` test images of the bundled subset whose label passes `keep` as
/// grey PNGs into `dir`.
fn write_pngs(fashion: bool, keep: impl Fn(u32) -> bool, n: usize, dir: &Path) {
    let src = common::root().join(if fashion {
        "datasets/fashion-mnist-subset"
    } else {
        "datasets/mnist-subset"
    });
    let set = if fashion {
        load_fashion_mnist(&src, Split::Test)
    } else {
        load_mnist(&src, Split::Test)
    }
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let px = set.height * set.width;
    let mut written = 0;
    for (i, &label) in set.labels.iter().enumerate() {
        if written == n {
            break;
        }
        if keep(label) {
            let img = image::GrayImage::from_raw(
                set.width as u32,
                set.height as u32,
                set.pixels[i * px..(i + 1) * px].to_vec(),
            )
            .unwrap();
            img.save(dir.join(format!("{i:05}.png"))).unwrap();
            written += 1;
        }
    }
    assert_eq!(written, n);
}

#[test]
fn every_detector_evaluates_reproducibly_and_predict_flags_unseen_images() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    run_ok(&tiny_args(out, &["--set", r#"eval.detectors=["all"]"#]));
    let run = out.join("quickstart");
    let m = metrics(&run);

    // Every detector of `all` ran, on both OOD sets, with what its fit chose.
    let names: Vec<&str> = m["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, unseen_eval::detectors::ALL_DETECTORS);
    assert_eq!(m["ood"].as_array().unwrap().len(), 2 * names.len());
    let fitted = |det: &str, key: &str| {
        m["detectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == det)
            .unwrap()["fitted"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("{det}.{key} missing: {m}"))
    };
    assert!(fitted("temp_scale", "T") > 0.0);
    assert!(fitted("react", "threshold") > 0.0);
    assert_eq!(
        fitted("vim", "dim"),
        32.0,
        "half of the width-8 ResNet's 64 features"
    );
    assert!(fitted("vim", "alpha").is_finite());
    for row in m["ood"].as_array().unwrap() {
        let auroc = row["auroc"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&auroc), "{row}");
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Detectors ranked by mean AUROC"),
        "{report}"
    );
    assert!(
        report.contains("| vim |") || report.contains("| vim | "),
        "{report}"
    );

    // Re-evaluation refits every detector and reproduces metrics.json bit for bit.
    let o = trainer(&["eval", "--run", run.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&run.join("eval")), m);

    // Bad detector specs fail cleanly, naming why.
    let o = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--set",
        r#"eval.detectors=["mahalanobis"]"#,
    ]);
    assert_clean_failure(&o, &["unknown detector `mahalanobis`", "knn[:k=50"]);
    let o = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--set",
        r#"eval.detectors=["vim:dim=64"]"#,
    ]);
    assert_clean_failure(&o, &["vim:dim=64", "must be in 1..64"]);
    let o = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--set",
        r#"eval.detectors=["knn:k=100000"]"#,
    ]);
    assert_clean_failure(&o, &["knn", "100000"]);

    // predict: 20 held-out ID digits (classes 0-5) and 20 Fashion-MNIST images, in two
    // sub-folders; the threshold keeps 95% of the ID test digits.
    let images = out.join("images");
    write_pngs(false, |l| l <= 5, 20, &images.join("digits"));
    write_pngs(true, |_| true, 20, &images.join("fashion"));
    let csv_path = out.join("pred.csv");
    let args = [
        "predict",
        "--run",
        run.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--detector",
        "knn",
        "--out",
        csv_path.to_str().unwrap(),
    ];
    let o = trainer(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("path,class,class_name,score,is_ood"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 40);
    assert!(rows[0][0].contains("digits/"), "{:?}", rows[0]);
    assert!(rows[39][0].contains("fashion"), "{:?}", rows[39]);
    let flagged = |part: &str| {
        rows.iter()
            .filter(|r| r[0].contains(part) && r[4] == "1")
            .count()
    };
    let (digits, fashion) = (flagged("digits"), flagged("fashion"));
    // The quickstart's KNN has a far-OOD AUROC near 1 even on this tiny run: most
    // Fashion images fall below the 95%-TPR threshold, few digits do.
    assert!(
        fashion >= 10 && digits <= 5,
        "digits flagged {digits}/20, fashion flagged {fashion}/20\n{csv}"
    );
    for r in &rows {
        let class: usize = r[1].parse().unwrap();
        assert!(class < 6 && r[2] == class.to_string(), "{r:?}");
        assert!(r[3].parse::<f32>().unwrap().is_finite());
    }
    // The CSV is not overwritten without asking; the same call with --overwrite
    // reproduces it byte for byte.
    assert_clean_failure(&trainer(&args), &["already exists", "--overwrite"]);
    let mut again = args.to_vec();
    again.push("--overwrite");
    let o = trainer(&again);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&csv_path).unwrap(), csv);
}

/// `eval --config`: a headless ViT-Ti/16 imported from a timm-format file (no training run)
/// evaluated with every detector it supports, Rippel's workflow; a config without weights is
/// refused.
#[test]
fn eval_config_scores_imported_weights_without_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("posthoc");
    let args = [
        "eval",
        "--config",
        "configs/vit_tiny_mnist.toml",
        "--set",
        "model.num_classes=0",
        "--set",
        "data.id.limit_per_class=40",
        "--set",
        r#"eval.detectors=["all", "mvg:npca=0.9"]"#,
        "--out",
        out.to_str().unwrap(),
    ];
    let o = trainer(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = metrics(&out);
    let names: Vec<&str> = m["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    // Without a head only the feature detectors that need no logits can run.
    assert_eq!(names, ["mds", "rmds", "mvg", "gmm", "knn", "mvg:npca=0.9"]);
    assert!(m["id"].get("accuracy").is_none(), "{m}");
    assert!(m["detectors"][5]["fitted"]["components"].as_f64().unwrap() < 192.0);
    assert!(out.join("plots/roc_mnist-6-9.png").exists());
    // The same evaluation again is identical.
    let o = trainer(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&out), m);

    // A head-only detector on the headless network, and a config without weights.
    let mut bad = args.to_vec();
    bad[8] = r#"eval.detectors=["vim"]"#;
    assert_clean_failure(&trainer(&bad), &["vim", "linear head"]);
    let o = trainer(&[
        "eval",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["model.weights", "eval --run"]);
}
