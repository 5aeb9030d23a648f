//! Post-hoc detectors through the trainer: a tiny OE run evaluated with every detector
//! (`eval.detectors = ["all"]`), re-evaluated bit for bit, and `trainer predict` on a folder
//! of real MNIST and Fashion-MNIST images written as PNGs.

mod common;

use std::path::Path;

use common::{assert_clean_failure, metrics, run_ok, stderr, tiny_args, trainer, trainer_ok};
use unseen_data::formats::{load_fashion_mnist, load_mnist, Split};

/// The detector names of `metrics.json`'s `detectors` section, in order.
fn detector_names(m: &serde_json::Value) -> Vec<&str> {
    m["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect()
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
    // The quickstart's OOD sets, 100 images per class: `odin` and `mds_ensemble` run the
    // network again per image (ODIN once, the ensemble once per layer, each a forward,
    // backward and forward pass), which would dominate this test on the full sets.
    let ood = r#"data.ood=[
        { name = "mnist-6-9", group = "near", dataset = { source = "mnist", path = "datasets/mnist-subset", classes = "6-9", limit_per_class = 100 } },
        { name = "fashion-mnist-5-9", group = "far", dataset = { source = "fashion-mnist", path = "datasets/fashion-mnist-subset", classes = "5-9", limit_per_class = 100 } }]"#;
    run_ok(&tiny_args(
        out,
        &["--set", r#"eval.detectors=["all"]"#, "--set", ood],
    ));
    let run = out.join("quickstart");
    let m = metrics(&run);

    // Every detector of `all` ran, on both OOD sets, with what its fit chose.
    let names = detector_names(&m);
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
    // Lee et al.'s ensemble fitted a Gaussian on each of resnet_small's five pooled layers
    // (stem and stages of widths 8, 8, 16, 32, 64).
    assert_eq!(fitted("mds_ensemble", "layer0_dim"), 8.0);
    assert_eq!(fitted("mds_ensemble", "layer4_dim"), 64.0);
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
    trainer_ok(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(metrics(&run.join("eval")), m);

    // That evaluation streamed the training features from a cache file in the run folder
    // (the training run's own evaluation held them in memory: the same metrics, above).
    // A second evaluation reuses the file; a damaged one is recomputed, with the same
    // metrics again.
    let cache = run.join("cache/train_features.bin");
    let written = std::fs::metadata(&cache).unwrap().modified().unwrap();
    trainer_ok(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        written
    );
    assert_eq!(metrics(&run.join("eval")), m);
    let len = std::fs::metadata(&cache).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cache)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    trainer_ok(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&cache).unwrap().len(), len);
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
    trainer_ok(&args);
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
    trainer_ok(&again);
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
    trainer_ok(&args);
    let m = metrics(&out);
    let names = detector_names(&m);
    // Without a head only the feature detectors that need no logits can run.
    assert_eq!(names, ["mds", "rmds", "mvg", "gmm", "knn", "mvg:npca=0.9"]);
    assert!(m["id"].get("accuracy").is_none(), "{m}");
    assert!(m["detectors"][5]["fitted"]["components"].as_f64().unwrap() < 192.0);
    assert!(out.join("plots/roc_mnist-6-9.png").exists());
    // The same evaluation again is identical.
    trainer_ok(&args);
    assert_eq!(metrics(&out), m);

    // A head-only detector on the headless network, and a config without weights.
    let mut bad = args.to_vec();
    bad[8] = r#"eval.detectors=["vim"]"#;
    assert_clean_failure(&trainer(&bad), &["vim", "linear head"]);
    bad[8] = r#"eval.detectors=["mds_ensemble"]"#;
    assert_clean_failure(&trainer(&bad), &["mds_ensemble", "Vision Transformer"]);
    let o = trainer(&[
        "eval",
        "--config",
        "configs/quickstart.toml",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_clean_failure(&o, &["model.weights", "eval --run"]);
}

/// `[[data.ood]]` entries as one `--set data.ood=[...]` value (an inline array of tables
/// replaces the config's whole list; `--set` cannot append to it): the quickstart's near and
/// far sets, then `extra` (inline tables) if any.
fn ood_sets_with(extra: &[&str]) -> String {
    let mut sets = vec![
        r#"{ name = "mnist-6-9", group = "near", dataset = { source = "mnist", path = "datasets/mnist-subset", classes = "6-9" } }"#,
        r#"{ name = "fashion-mnist-5-9", group = "far", dataset = { source = "fashion-mnist", path = "datasets/fashion-mnist-subset", classes = "5-9" } }"#,
    ];
    sets.extend_from_slice(extra);
    format!("data.ood=[{}]", sets.join(", "))
}

/// Full-spectrum OOD (OpenOOD v1.5's FSOOD): a `group = "csid"` set is scored as ID, not
/// OOD. The csid set here is the ID test set itself (MNIST 0-5, test split), so every
/// expectation is exact: its accuracy is the ID accuracy, its scores are the ID scores, and
/// the `fsood` rows (ID = ID test ∪ csid, i.e. every ID score twice) have the `ood` rows'
/// AUROC and FPR@95s.
#[test]
fn csid_sets_are_scored_as_id_in_full_spectrum_ood() {
    const CSID: &str = r#"{ name = "mnist-0-5-test", group = "csid", dataset = { source = "mnist", path = "datasets/mnist-subset", classes = "0-5" } }"#;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let with_csid = ood_sets_with(&[CSID]);
    // Training with a csid set: the final evaluation writes its sections, and the standard
    // OOD table keeps the near/far sets only.
    run_ok(&tiny_args(out, &["--set", &with_csid]));
    let run = out.join("quickstart");
    let m = metrics(&run);
    assert_eq!(m["csid"].as_array().unwrap().len(), 1, "{m}");
    assert_eq!(m["csid"][0]["dataset"], "mnist-0-5-test");
    assert_eq!(m["ood"].as_array().unwrap().len(), 2 * 3);
    assert_eq!(m["fsood"].as_array().unwrap().len(), 2 * 3);
    assert_eq!(m["fsood_groups"].as_array().unwrap().len(), 2 * 3);
    for key in ["ood", "ood_groups", "fsood", "fsood_groups"] {
        for row in m[key].as_array().unwrap() {
            assert!(
                row["group"] == "near" || row["group"] == "far",
                "{key}: {row}"
            );
            assert_ne!(row["dataset"], "mnist-0-5-test", "{key}: {row}");
        }
    }
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("## Full-spectrum OOD (csid counted as ID)")
            && report.contains("| mnist-0-5-test |"),
        "{report}"
    );
    // No plot for the csid set.
    assert!(!run.join("plots/roc_mnist-0-5-test.png").exists());

    // The run's ID test set is a seeded 60-per-class subsample, the csid set another one.
    // Re-evaluated with `limit_per_class = 500`, the whole test split of the bundled subset
    // (500 digits per class), both are the same 3,000 images in the same order. The
    // detectors include feature-based ones, so the csid set goes through the feature path.
    let run_s = run.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let mut args = vec![
            "eval",
            "--run",
            run_s,
            "--save-scores",
            "--set",
            "data.id.limit_per_class=500",
            "--set",
            r#"eval.detectors=["msp", "energy", "knn:k=10", "mds"]"#,
        ];
        args.extend_from_slice(extra);
        trainer(&args)
    };
    // The run's config.toml holds the csid set: the plain evaluation drops it.
    let o = eval(&["--set", &ood_sets_with(&[])]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plain = metrics(&run.join("eval"));
    // Without a csid set metrics.json has none of the new sections.
    for key in ["csid", "fsood", "fsood_groups"] {
        assert!(plain.get(key).is_none(), "{key} in {plain}");
    }
    let o = eval(&["--set", &with_csid]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(
        summary.contains("csid accuracy: mnist-0-5-test "),
        "{summary}"
    );
    let fs = metrics(&run.join("eval"));
    // Everything of the plain evaluation is unchanged, bit for bit.
    let mut rest = fs.clone();
    for key in ["csid", "fsood", "fsood_groups"] {
        rest.as_object_mut().unwrap().remove(key);
    }
    assert_eq!(rest, plain);

    let id_acc = fs["id"]["accuracy"].as_f64().unwrap();
    assert_eq!(fs["csid"][0]["accuracy"].as_f64().unwrap(), id_acc);
    let (ood, fsood) = (
        fs["ood"].as_array().unwrap(),
        fs["fsood"].as_array().unwrap(),
    );
    assert_eq!(ood.len(), 2 * 4);
    assert_eq!(fsood.len(), ood.len());
    // ID = ID test ∪ csid holds every ID score twice. Each ROC point's coordinates are
    // fractions of each class above a threshold, and doubling every ID count leaves those
    // fractions (2k / 2n = k / n) and the tie-group steps unchanged: AUROC (the
    // Mann-Whitney fraction of (ID, OOD) pairs ranked right) and both FPR@95 conventions
    // (OOD positive: the fraction of ID at 95% TPR of OOD; ID positive: the fraction of OOD
    // at 95% TPR of ID) are the same numbers. Average precision is not a fraction of one
    // class: with twice the ID images precision rises where ID is positive (AUPR-In) and
    // falls where OOD is (AUPR-Out), at the same recall steps.
    let f = |row: &serde_json::Value, k: &str| row[k].as_f64().unwrap();
    for (a, b) in ood.iter().zip(fsood) {
        for k in ["dataset", "group", "detector"] {
            assert_eq!(a[k], b[k]);
        }
        for k in ["auroc", "fpr95", "fpr95_id_positive"] {
            assert!((f(a, k) - f(b, k)).abs() < 1e-12, "{k}: {a} vs {b}");
        }
        assert!(f(b, "aupr_in") >= f(a, "aupr_in") - 1e-12, "{a} vs {b}");
        assert!(f(b, "aupr_out") <= f(a, "aupr_out") + 1e-12, "{a} vs {b}");
    }
    let (groups, fs_groups) = (
        fs["ood_groups"].as_array().unwrap(),
        fs["fsood_groups"].as_array().unwrap(),
    );
    assert_eq!(groups.len(), fs_groups.len());
    for (a, b) in groups.iter().zip(fs_groups) {
        assert_eq!(
            (&a["dataset"], &a["detector"]),
            (&b["dataset"], &b["detector"])
        );
        assert!((f(a, "auroc") - f(b, "auroc")).abs() < 1e-12, "{a} vs {b}");
    }

    // scores.csv: csid rows have group `csid` and is_ood 0, and repeat the ID rows' scores.
    let csv = std::fs::read_to_string(run.join("eval/scores.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for det in ["msp", "energy", "knn:k=10", "mds"] {
        let scores = |group: &str| -> Vec<(&str, &str)> {
            rows.iter()
                .filter(|r| r[1] == group && r[2] == det)
                .map(|r| (r[4], r[5]))
                .collect()
        };
        let (id, csid) = (scores("id"), scores("csid"));
        assert_eq!(id.len(), 3000, "{det}");
        assert_eq!(csid, id, "{det}");
        assert!(csid.iter().all(|(is_ood, _)| *is_ood == "0"));
    }
    assert!(rows
        .iter()
        .filter(|r| r[1] == "csid")
        .all(|r| r[0] == "mnist-0-5-test"));
    let report = std::fs::read_to_string(run.join("eval/report.md")).unwrap();
    let section = report
        .split("## Full-spectrum OOD (csid counted as ID)")
        .nth(1)
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        section.contains(&format!("| mnist-0-5-test | {:.2} |", 100.0 * id_acc)),
        "{section}"
    );
    assert!(section.contains("| mean | far | knn:k=10 |"), "{section}");

    // A csid set must hold ID classes: all ten digits (labels 0-9, no `classes`) against six
    // ID classes is refused, naming the set; so is a csid set named like the ID set.
    let bad = r#"{ name = "mnist-all", group = "csid", dataset = { source = "mnist", path = "datasets/mnist-subset" } }"#;
    let o = eval(&["--set", &ood_sets_with(&[bad])]);
    assert_clean_failure(
        &o,
        &["mnist-all", "csid set must hold ID classes", "6 classes"],
    );
    let same_name = CSID.replace("mnist-0-5-test", "mnist-0-5");
    let o = eval(&["--set", &ood_sets_with(&[&same_name])]);
    assert_clean_failure(&o, &["\"mnist-0-5\"", "data.id_name"]);
}

/// `eval.search`: detectors named without parameters take the candidate of OpenOOD's sweep
/// list with the best validation AUROC (`[data.id_val]` against `[[data.ood_val]]`); the
/// others are used as written; candidates that cannot run (k above the training set) are
/// recorded as skipped. Search settings without validation sets, and the reverse, are
/// refused.
#[test]
fn search_chooses_hyper_parameters_on_validation_sets() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path();
    let id_val = r#"data.id_val={ source = "mnist", path = "datasets/mnist-subset", classes = "0-5", limit_per_class = 20 }"#;
    let ood_val = r#"data.ood_val=[{ name = "fashion-val", group = "far", dataset = { source = "fashion-mnist", path = "datasets/fashion-mnist-subset", classes = "0-4", limit_per_class = 20 } }]"#;
    let dets = r#"eval.detectors=["msp", "knn", "react", "knn:k=10", "mds_ensemble:noise=0"]"#;
    run_ok(&tiny_args(
        out,
        &[
            "--set",
            "eval.search=true",
            "--set",
            id_val,
            "--set",
            ood_val,
            "--set",
            dets,
        ],
    ));
    let m = metrics(&out.join("quickstart"));
    let det = |i: usize| &m["detectors"][i];
    assert_eq!(det(0)["name"], "msp");
    assert!(det(0).get("search").is_none(), "msp has no sweep: {m}");
    assert_eq!(
        det(3)["name"],
        "knn:k=10",
        "given with parameters: used as written"
    );
    assert!(det(3).get("search").is_none());
    // knn: k = 50, 100, 200 run on the 360 training images; 500 and 1000 cannot.
    let knn = det(1)["search"].as_array().unwrap();
    assert_eq!(knn.len(), 5);
    let tried: Vec<(&str, Option<f64>)> = knn
        .iter()
        .map(|p| (p["detector"].as_str().unwrap(), p["val_auroc"].as_f64()))
        .collect();
    assert_eq!(tried[0].0, "knn");
    assert!(tried[..3].iter().all(|t| t.1.is_some()), "{tried:?}");
    assert!(tried[3..].iter().all(|t| t.1.is_none()), "{tried:?}");
    assert!(
        knn[4]["skipped"].as_str().unwrap().contains("1000"),
        "{knn:?}"
    );
    // The chosen candidate is the first with the largest validation AUROC.
    for (i, name) in [(1, "knn"), (2, "react")] {
        let pts = det(i)["search"].as_array().unwrap();
        let best = pts
            .iter()
            .filter_map(|p| Some((p["detector"].as_str().unwrap(), p["val_auroc"].as_f64()?)))
            .fold(
                ("", f64::NEG_INFINITY),
                |b, p| if p.1 > b.1 { p } else { b },
            );
        assert_eq!(det(i)["name"], best.0, "{name}: {pts:?}");
    }
    assert_eq!(
        det(2)["search"].as_array().unwrap().len(),
        4,
        "react: p = 90, 85, 95, 99"
    );
    // Lee et al.'s layer weights, fitted on the validation sets (logistic regression of
    // ID against OOD on the five layers' scores), even for a spec given with parameters.
    assert_eq!(det(4)["name"], "mds_ensemble:noise=0");
    let weights: Vec<f64> = (0..5)
        .map(|l| {
            det(4)["fitted"][format!("layer{l}_weight")]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(
        weights.iter().all(|w| w.is_finite()) && weights.iter().any(|&w| w != 1.0),
        "{weights:?}"
    );
    let report = std::fs::read_to_string(out.join("quickstart/report.md")).unwrap();
    assert!(report.contains("## Hyper-parameter search"), "{report}");
    assert!(report.contains("fashion-val"), "{report}");

    // The same search again gives the same choice and metrics, bit for bit.
    let run = out.join("quickstart");
    trainer_ok(&["eval", "--run", run.to_str().unwrap()]);
    assert_eq!(metrics(&run.join("eval")), m);

    // Validation sets without a search, or a search without them, are refused.
    let o = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--set",
        "eval.search=false",
    ]);
    assert_clean_failure(&o, &["data.id_val", "eval.search = true"]);
    let args = tiny_args(&out.join("other"), &["--set", "eval.search=true"]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    assert_clean_failure(&trainer(&args), &["eval.search = true", "[data.id_val]"]);
}
