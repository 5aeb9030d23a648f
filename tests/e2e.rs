//! End-to-end tests: the `trainer` binary on the bundled MNIST / Fashion-MNIST subset.
//!
//! Runs are tiny (a few hundred images, 1-2 epochs of a width-8 ResNet) so the suite stays
//! fast; they exercise the same code path as the quickstart.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

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
    let ev = trainer::run::tb::read_scalars(&run.join("tb")).unwrap();
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

    // Ctrl-C in the middle of epoch 1 (step 5 of 11; the testing flag takes the signal
    // handler's path): the step finishes, a mid-epoch checkpoint is written, the process
    // exits with 130 and says how to resume; resuming ends bit-identical.
    let ctrl_c = tmp.path().join("ctrl_c");
    let a = tiny_args(&ctrl_c, &["--interrupt-after-steps", "5"]);
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let o = trainer(&a);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let run3 = ctrl_c.join("quickstart");
    let resume_hint = format!("trainer train --resume {}", run3.display());
    assert!(stderr(&o).contains(&resume_hint), "{}", stderr(&o));
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run3.join("checkpoints/last/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (state["step"].as_u64(), state["epochs_done"].as_u64()),
        (Some(5), Some(0))
    );
    // A damaged checkpoint is named, not fed to burn's reader.
    let model_file = run3.join("checkpoints/last/model.mpk");
    let bytes = std::fs::read(&model_file).unwrap();
    std::fs::write(&model_file, &bytes[..bytes.len() - 100]).unwrap();
    let o = trainer(&["train", "--resume", run3.to_str().unwrap(), "--quiet"]);
    assert_clean_failure(&o, &["is corrupt (model.mpk: expected", "bytes"]);
    std::fs::write(&model_file, &bytes).unwrap();
    let o = trainer(&["train", "--resume", run3.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(run.join("metrics.json")).unwrap(),
        std::fs::read(run3.join("metrics.json")).unwrap(),
        "metrics.json after Ctrl-C and --resume differs from the uninterrupted run"
    );
    // A damaged last checkpoint: `--resume` falls back to the previous one (epoch 1 of the
    // uninterrupted run, kept in checkpoints/previous/), says so, replays epoch 2 and ends
    // with the same metrics; evaluation refuses the damaged checkpoint instead.
    let fallback = tmp.path().join("fallback");
    std::fs::create_dir_all(&fallback).unwrap();
    let run4 = fallback.join("quickstart");
    assert!(std::process::Command::new("cp")
        .args(["-r", run.to_str().unwrap(), run4.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    let prev: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run4.join("checkpoints/previous/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(prev["epochs_done"].as_u64(), Some(1));
    std::fs::remove_file(run4.join("metrics.json")).unwrap();
    std::fs::write(run4.join("checkpoints/last/optim.mpk"), b"damaged").unwrap();
    let o = trainer(&["eval", "--run", run4.to_str().unwrap()]);
    assert_clean_failure(&o, &["is corrupt (optim.mpk"]);
    let o = trainer(&["train", "--resume", run4.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming from the previous checkpoint"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(run.join("metrics.json")).unwrap(),
        std::fs::read(run4.join("metrics.json")).unwrap(),
        "metrics.json after falling back to the previous checkpoint differs"
    );

    // One writer per run folder: a lock held by a live process (this test's) refuses a
    // second `train --resume`, naming the holder; one left by a dead process is taken over.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    if !host.is_empty() {
        let lock = run4.join(".lock");
        std::fs::write(&lock, format!("{} {host}\n", std::process::id())).unwrap();
        let o = trainer(&["train", "--resume", run4.to_str().unwrap(), "--quiet"]);
        let holder = format!("in use by process {}", std::process::id());
        assert_clean_failure(&o, &[&holder, ".lock"]);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        std::fs::write(&lock, format!("{dead} {host}\n")).unwrap();
        let o = trainer(&["train", "--resume", run4.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("no longer running"), "{}", stderr(&o));
        assert!(!lock.exists(), "the lock outlived its run");
    }

    // A run folder without a checkpoint (stopped before its first one) trains from the
    // beginning on `--resume`, saying so, and ends as the uninterrupted run.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::copy(run.join("config.toml"), empty.join("config.toml")).unwrap();
    let o = trainer(&["train", "--resume", empty.to_str().unwrap(), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("holds no checkpoint yet"),
        "{}",
        stderr(&o)
    );
    assert_eq!(metrics(&empty), m);

    // Re-evaluation reproduces the metrics and writes per-sample scores.
    let o = trainer(&["eval", "--run", run.to_str().unwrap(), "--save-scores"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(metrics(&run.join("eval")), m);
    // Only open-set SSL runs keep a best checkpoint.
    let o = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        "best",
    ]);
    assert_clean_failure(&o, &["has no best checkpoint", "--checkpoint last"]);
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
    // A bad weights file: the error names it, and no run folder is left behind (the folder
    // is created only once data and weights have loaded).
    let o = trainer(&[
        "train",
        "--config",
        "configs/quickstart.toml",
        "--set",
        &out_set,
        "--set",
        "model.weights=\"no/such/weights.pth\"",
    ]);
    assert_clean_failure(&o, &["no/such/weights.pth", "model.weights"]);
    assert!(
        !tmp.path().join("quickstart").exists(),
        "a failed start left a run folder"
    );
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

/// Arguments for a tiny ViT-Ti fine-tuning run of `configs/vit_tiny_mnist.toml` in `out`.
fn vit_args(out: &Path) -> Vec<String> {
    [
        "train",
        "--config",
        "configs/vit_tiny_mnist.toml",
        "--quiet",
        "--set",
        "data.id.limit_per_class=20",
        "--set",
        "train.epochs=1",
        "--set",
        "train.warmup_epochs=0",
        "--set",
        "train.batch_size=40",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--set".to_string(),
        format!("output_dir={:?}", out.display().to_string()),
    ])
    .collect()
}

fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    (t.shape().to_vec(), t.data().to_vec())
}

#[test]
fn vit_fine_tunes_from_imported_weights_then_embeds_and_exports_timm_names() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run_ok(&vit_args(tmp.path()));
    let err = stderr(&o);
    // The load report: grey patch embedding, resampled grid, fresh 6-class head.
    assert!(
        err.contains("timm naming")
            && err.contains("patch_embed.proj.weight: input channels 3 -> 1")
            && err.contains("pos_embed: grid 14x14 -> 2x2")
            && err.contains("head.weight (file [10, 192], model [6, 192])"),
        "{err}"
    );
    let run = tmp.path().join("vit_tiny_mnist");
    let m = metrics(&run);
    assert!(m["id"]["accuracy"].as_f64().unwrap() > 0.0);

    // Embed the test split with the trained run: 192-d features, 6 logits, labels.
    let out = tmp.path().join("emb.safetensors");
    let run_s = run.display().to_string();
    let out_s = out.display().to_string();
    let args = [
        "embed",
        "--config",
        "configs/vit_tiny_mnist.toml",
        "--run",
        &run_s,
        "--out",
        &out_s,
        "--set",
        "data.id.limit_per_class=5",
    ];
    let o = trainer(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let (fs, _) = read_tensor(&out, "features");
    let (ls, _) = read_tensor(&out, "logits");
    let (ys, _) = read_tensor(&out, "labels");
    // limit_per_class applies to the test split too: 6 classes x 5.
    assert_eq!((fs, ls, ys), (vec![30, 192], vec![30, 6], vec![30]));
    // An existing output is not replaced without --overwrite.
    let o = trainer(&args);
    assert!(!o.status.success() && stderr(&o).contains("--overwrite"));

    // Embedding straight from the imported file (no run): the file's own 10-class head, and
    // the same bytes twice (deterministic).
    let embed_file = |name: &str| {
        let p = tmp.path().join(name);
        let p_s = p.display().to_string();
        let o = trainer(&[
            "embed",
            "--config",
            "configs/vit_tiny_mnist.toml",
            "--out",
            &p_s,
            "--set",
            "data.id.limit_per_class=3",
            "--set",
            "model.num_classes=10",
            "--set",
            "model.allow_partial=[]",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        read_tensor(&p, "logits")
    };
    let (a_shape, a) = embed_file("a.safetensors");
    let (_, b) = embed_file("b.safetensors");
    assert_eq!(a_shape, vec![18, 10]);
    assert_eq!(a, b);

    // Export: timm key names, the timm recipe in the json.
    let exp = tmp.path().join("vit.safetensors");
    let exp_s = exp.display().to_string();
    let o = trainer(&["export", "--run", &run_s, "--out", &exp_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (qkv, _) = read_tensor(&exp, "blocks.11.attn.qkv.weight");
    assert_eq!(qkv, vec![576, 192]);
    let (pe, _) = read_tensor(&exp, "pos_embed");
    assert_eq!(pe, vec![1, 5, 192]);
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("vit.json")).unwrap())
            .unwrap();
    assert_eq!(info["pytorch"]["library"], "timm");
    assert_eq!(info["pytorch"]["kwargs"]["img_size"], 32);
    assert_eq!(info["preprocess"]["resize"], 32);
}

#[test]
fn hub_weights_resolve_from_the_cache_offline_and_fail_clearly_when_absent() {
    let tmp = tempfile::tempdir().unwrap();
    // The Hugging Face cache layout: hub/models--org--name/{refs/main, snapshots/<commit>/}.
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = tmp.path().join("hub/models--unseen-test--vit-tiny");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::create_dir_all(repo.join("snapshots").join(commit)).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    std::fs::copy(
        root().join("crates/backbones/tests/fixtures/parity/vit_tiny_timm_f16.safetensors"),
        repo.join("snapshots")
            .join(commit)
            .join("model.safetensors"),
    )
    .unwrap();
    let embed = |weights: &str, out: &str| {
        Command::new(env!("CARGO_BIN_EXE_trainer"))
            .args([
                "embed",
                "--config",
                "configs/vit_tiny_mnist.toml",
                "--out",
                out,
                "--set",
                "data.id.limit_per_class=2",
                "--set",
            ])
            .arg(format!("model.weights={weights:?}"))
            .env("HF_HOME", tmp.path())
            .env("HF_HUB_OFFLINE", "1")
            .current_dir(root())
            .output()
            .unwrap()
    };
    let out = tmp.path().join("hub.safetensors");
    let o = embed("hf:unseen-test/vit-tiny", &out.display().to_string());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("snapshots"), "{}", stderr(&o));
    let local = tmp.path().join("local.safetensors");
    let o = embed(
        "crates/backbones/tests/fixtures/parity/vit_tiny_timm_f16.safetensors",
        &local.display().to_string(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        read_tensor(&out, "features"),
        read_tensor(&local, "features")
    );
    // Not in the cache while offline: the error names the repo, the cache and the setting.
    let o = embed(
        "hf:unseen-test/missing",
        &tmp.path().join("x.safetensors").display().to_string(),
    );
    assert_clean_failure(&o, &["hf:unseen-test/missing", "HF_HUB_OFFLINE", "hub"]);
    // A weights file of another architecture.
    let o = embed(
        "crates/backbones/tests/fixtures/parity/wrn28_2_oe.pth",
        &tmp.path().join("y.safetensors").display().to_string(),
    );
    assert_clean_failure(&o, &["wrn28_2_oe.pth", "model.weights"]);
}

// ---------------------------------------------------------------------------------------
// Open-set semi-supervised learning (fixmatch / iomatch)
// ---------------------------------------------------------------------------------------

#[test]
fn ossl_iomatch_trains_resumes_bit_identically_and_writes_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let split = tmp.path().join("split");

    run_ok(&ossl_args("iomatch", &full, &[]));
    let run = full.join("iomatch_mnist");
    for f in [
        "config.toml",
        "metrics.json",
        "report.md",
        "checkpoints/last/model.mpk",
        "checkpoints/last/optim.mpk",
        "checkpoints/last/state.json",
        "checkpoints/last/ema.mpk",
        "checkpoints/last/ossl.json",
        "checkpoints/best/ema.mpk",
        "checkpoints/best/best.json",
    ] {
        assert!(run.join(f).exists(), "missing {f}");
    }
    let raw = metrics(&run);
    assert!(raw["ossl"]["train_seconds"].as_f64().unwrap() > 0.0);
    let m = ossl_metrics(&run);
    let o = &m["ossl"];
    assert_eq!(m["recipe"], "iomatch");
    assert_eq!(o["num_seen_classes"], 6);
    assert_eq!(o["num_unseen_classes"], 4);
    assert_eq!(o["labels_per_class"], 4);
    assert_eq!(o["seen_classes"], "0-5");
    assert_eq!(o["labelled_images"], 24);
    assert_eq!(o["unlabelled_images"], 300);
    assert_eq!(o["closed_test_images"], 180);
    assert_eq!(o["full_test_images"], 300);
    assert_eq!(o["iterations"], 6);
    assert_eq!(o["evaluated_model"], "ema");
    for k in ["closed_accuracy", "open_balanced_accuracy", "auroc"] {
        let v = o[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(o["open_recall"].as_array().unwrap().len(), 7);
    // The notebook's second prediction (closed + one-vs-all heads) is reported too.
    for k in ["ova_open_balanced_accuracy", "ova_auroc"] {
        let v = o[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    // TensorBoard: every IOMatch term, the mask ratios, the schedule and the evaluations.
    let ev = trainer::run::tb::read_scalars(&run.join("tb")).unwrap();
    let tags: std::collections::BTreeSet<&str> = ev.iter().map(|e| e.tag.as_str()).collect();
    for t in [
        "loss/total",
        "loss/sup",
        "loss/mb",
        "loss/ui",
        "loss/op",
        "train/mask_ratio",
        "train/q_mask_ratio",
        "lr",
        "eval/closed_accuracy",
        "eval/open_balanced_accuracy",
        "eval/auroc",
    ] {
        assert!(tags.contains(t), "missing TensorBoard tag {t}: {tags:?}");
    }
    // L_op is off during the first epoch (iterations 0-2), as the reference.
    assert!(ev
        .iter()
        .filter(|e| e.tag == "loss/op" && e.step < 3)
        .all(|e| e.value == 0.0));
    // The best checkpoint (the paper's protocol): of the evaluations at iterations 2, 4 and
    // 6 as TensorBoard logged them, the first with the highest closed-set accuracy.
    let evals: Vec<(usize, f64)> = ev
        .iter()
        .filter(|e| e.tag == "eval/closed_accuracy")
        .map(|e| (e.step as usize, e.value as f64))
        .collect();
    assert_eq!(
        evals.iter().map(|e| e.0).collect::<Vec<_>>(),
        [2, 4, 6],
        "{evals:?}"
    );
    let top = evals
        .iter()
        .fold(evals[0], |b, &e| if e.1 > b.1 { e } else { b });
    let best = &m["ossl_best"];
    assert_eq!(best["iterations"], top.0, "{evals:?}");
    assert!((best["closed_accuracy"].as_f64().unwrap() - top.1).abs() < 1e-6);
    assert!(best.get("train_seconds").is_none());
    let best_file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("checkpoints/best/best.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(&best_file, best);

    // Interrupted after the first epoch, then resumed: the same metrics.
    let a = ossl_args("iomatch", &split, &["--halt-after-epochs", "1"]);
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let out = trainer(&a);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let run2 = split.join("iomatch_mnist");
    assert!(!run2.join("metrics.json").exists());
    // Resuming with another config is refused and leaves the run as it was.
    let state = std::fs::read(run2.join("checkpoints/last/state.json")).unwrap();
    let a = ossl_args(
        "iomatch",
        &split,
        &["--resume", run2.to_str().unwrap(), "--set", "seed=5"],
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    let out = trainer(&a);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the config differs from the one"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(run2.join("checkpoints/last/state.json")).unwrap(),
        state
    );
    let out = trainer(&["train", "--resume", run2.to_str().unwrap(), "--quiet"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        ossl_metrics(&run2),
        m,
        "resumed metrics differ from the run"
    );

    // Re-evaluation reproduces the metrics (of the last checkpoint, and with `--checkpoint
    // best` of the best one) and writes per-image predictions.
    let out = trainer(&["eval", "--run", run.to_str().unwrap(), "--save-scores"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut last_only = m.clone();
    last_only.as_object_mut().unwrap().remove("ossl_best");
    assert_eq!(ossl_metrics(&run.join("eval")), last_only);
    let out = trainer(&[
        "eval",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        "best",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(&metrics(&run.join("eval_best"))["ossl"], best);
    let csv = std::fs::read_to_string(run.join("eval/predictions.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "index,label,is_unseen,closed_pred,open_pred,unknown_score"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(|s| s.to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 300);
    let mut right = 0usize;
    for (i, r) in rows.iter().enumerate() {
        let label: usize = r[1].parse().unwrap();
        assert_eq!(r[0], i.to_string());
        assert!(label <= 6);
        assert_eq!(r[2], if label == 6 { "1" } else { "0" });
        assert!(r[3].parse::<usize>().unwrap() < 6);
        assert!(r[4].parse::<usize>().unwrap() <= 6);
        let s: f32 = r[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&s));
        right += (label < 6 && r[3] == r[1]) as usize;
    }
    // The closed accuracy is recomputable from the file.
    let acc = m["ossl"]["closed_accuracy"].as_f64().unwrap();
    assert!((right as f64 / 180.0 - acc).abs() < 1e-9);
    // So is the never-unknown baseline: the mean over the 7 classes of the closed head's
    // recall, the unknown class (label 6, never a closed prediction) counting 0.
    let (mut hits, mut count) = ([0usize; 7], [0usize; 7]);
    for r in &rows {
        let label: usize = r[1].parse().unwrap();
        count[label] += 1;
        hits[label] += (r[3] == r[1]) as usize;
    }
    assert_eq!(hits[6], 0);
    let never: f64 = (0..7)
        .map(|c| hits[c] as f64 / count[c] as f64)
        .sum::<f64>()
        / 7.0;
    let got = m["ossl"]["never_unknown_balanced_accuracy"]
        .as_f64()
        .unwrap();
    assert!((never - got).abs() < 1e-9, "{never} vs {got}");

    // Export: IOMatchNet's state dict of the EMA model, in PyTorch layouts (width-4
    // resnet_small: d = 32 features, projection 128, K = 6), and a sample whose arg-maxes are
    // the predictions `eval` wrote for the same first 8 full-test images.
    let exp = tmp.path().join("io.safetensors");
    let o = trainer(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        exp.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("io.json")).unwrap())
            .unwrap();
    assert_eq!(info["weights"], "ema");
    assert_eq!(info["heads"]["layout"], "IOMatchNet");
    assert_eq!(info["num_classes"], 6);
    for (name, shape) in [
        ("backbone.conv1.weight", vec![4, 1, 3, 3]),
        ("backbone.fc.weight", vec![6, 32]),
        ("mlp_proj.0.weight", vec![32, 32]),
        ("mlp_proj.0.bias", vec![32]),
        ("mlp_proj.2.weight", vec![128, 32]),
        ("mb_classifiers.weight", vec![12, 128]),
        ("openset_classifier.weight", vec![7, 128]),
        ("openset_classifier.bias", vec![7]),
    ] {
        assert_eq!(read_tensor(&exp, name).0, shape, "{name}");
    }
    let bytes = std::fs::read(&exp).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.tensor("mb_classifiers.bias").is_err());
    assert!(st.tensor("conv1.weight").is_err());
    let argmax = |name: &str| -> Vec<String> {
        let (shape, data) = read_tensor(&tmp.path().join("io.sample.safetensors"), name);
        let v: Vec<f32> = data
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        v.chunks(shape[1])
            .map(|r| {
                let best = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
                best.to_string()
            })
            .collect()
    };
    assert_eq!(
        argmax("logits"),
        rows[..8].iter().map(|r| r[3].clone()).collect::<Vec<_>>()
    );
    assert_eq!(
        argmax("logits_open"),
        rows[..8].iter().map(|r| r[4].clone()).collect::<Vec<_>>()
    );
    // The best checkpoint exports too, and says so.
    let o = trainer(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--checkpoint",
        "best",
        "--out",
        tmp.path().join("io_best.safetensors").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("io_best.json")).unwrap())
            .unwrap();
    assert_eq!(info["weights"], "ema-best");

    // A crash between the two renames that replace a checkpoint folder leaves the previous
    // one as `.NAME.old` beside it: evaluation (and resuming) reads that one.
    let ck = run.join("checkpoints");
    std::fs::rename(ck.join("best"), ck.join(".best.old")).unwrap();
    std::fs::rename(ck.join("last"), ck.join(".last.old")).unwrap();
    std::fs::remove_dir_all(run.join("eval_best")).unwrap();
    for which in ["best", "last"] {
        let out = trainer(&[
            "eval",
            "--run",
            run.to_str().unwrap(),
            "--checkpoint",
            which,
        ]);
        assert!(out.status.success(), "{which}: {}", stderr(&out));
    }
    assert_eq!(&metrics(&run.join("eval_best"))["ossl"], best);
    assert_eq!(ossl_metrics(&run.join("eval")), last_only);
}

#[test]
fn ossl_fixmatch_same_seed_same_metrics_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    run_ok(&ossl_args("fixmatch", &a, &[]));
    run_ok(&ossl_args("fixmatch", &b, &[]));
    let m = ossl_metrics(&a.join("fixmatch_mnist"));
    assert_eq!(m, ossl_metrics(&b.join("fixmatch_mnist")));
    assert_eq!(m["recipe"], "fixmatch");
    assert_eq!(m["ossl"]["unknown_score"], "1 - max softmax(closed head)");
    assert!(m["ossl"].get("ova_auroc").is_none());
    let extras =
        std::fs::read_to_string(a.join("fixmatch_mnist/checkpoints/last/ossl.json")).unwrap();
    assert!(extras.contains("\"method\":null"), "{extras}");
    // A run without a best checkpoint (removed here; older runs have none) names what is
    // missing instead of evaluating something else.
    let best = a.join("fixmatch_mnist/checkpoints/best");
    std::fs::remove_dir_all(&best).unwrap();
    let o = trainer(&[
        "eval",
        "--run",
        a.join("fixmatch_mnist").to_str().unwrap(),
        "--checkpoint",
        "best",
    ]);
    assert_clean_failure(
        &o,
        &["has no best checkpoint", "best.json", "--checkpoint last"],
    );

    let run = |extra: &[&str]| {
        let args = ossl_args("fixmatch", &tmp.path().join("bad"), extra);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        trainer(&args)
    };
    // More labels per class than a seen class has (30 digits each here).
    let o = run(&["--set", "ossl.labels_per_class=50"]);
    assert_clean_failure(&o, &["fewer than labels_per_class = 50", "seen class 0"]);
    // Bad data or split settings leave no run folder behind.
    assert!(!tmp.path().join("bad/fixmatch_mnist").exists());
    // Every class seen: nothing left to be unseen.
    let o = run(&["--set", "ossl.seen_classes=\"0-9\""]);
    assert_clean_failure(&o, &["no unseen class"]);
    let o = run(&["--set", "ossl.labels_per_class=0"]);
    assert_clean_failure(&o, &["labels_per_class", "at least 1"]);
    // An IOMatch-only key on FixMatch, and an unknown key.
    let o = run(&["--set", "ossl.q_cutoff=0.3"]);
    assert_clean_failure(&o, &["q_cutoff", "setting of `iomatch`"]);
    let o = run(&["--set", "ossl.mu_ratio=3"]);
    assert_clean_failure(&o, &["mu_ratio", "unknown field"]);
    // OOD test sets belong to the OOD recipes.
    let o = run(&[
        "--set",
        "data.ood=[{ name = \"f\", group = \"far\", dataset = { source = \"fashion-mnist\", path = \"datasets/fashion-mnist-subset\" } }]",
    ]);
    assert_clean_failure(&o, &["[[data.ood]]"]);
}

/// Writes real digits of the bundled MNIST subset as PNGs laid out as IOMatch's
/// ImageNet-30 (`data/imagenet30/one_class_{train,test}/<class>/...`) with its file lists
/// (`<path> <label>` per line, paths relative to `root`), `per_class` training and
/// `per_class / 2` test images for each digit. The labelled list holds the first 2 training
/// images of digits 0-5 and repeats one line, as `train_labeled_p1.txt` does.
fn write_imagenet30_style(root: &Path, per_class: usize) {
    const NAMES: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let base = root.join("data/imagenet30");
    std::fs::create_dir_all(base.join("filelist")).unwrap();
    let mut lists: [String; 3] = Default::default(); // train, test, labelled
    for (train, n) in [(true, per_class), (false, per_class / 2)] {
        let set = unseen_data::formats::load_named(
            "mnist",
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-subset"),
            train,
        )
        .unwrap();
        let mut count = [0usize; 10];
        for i in 0..set.len() {
            let c = set.labels[i] as usize;
            if count[c] == n {
                continue;
            }
            let rel = if train {
                format!(
                    "data/imagenet30/one_class_train/{}/n{c:02}_{i}.png",
                    NAMES[c]
                )
            } else {
                format!(
                    "data/imagenet30/one_class_test/{}/n{c:02}/test_{i}.png",
                    NAMES[c]
                )
            };
            let path = root.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::GrayImage::from_raw(28, 28, set.image(i).to_vec())
                .unwrap()
                .save(&path)
                .unwrap();
            let line = format!("{rel} {c}\n");
            if train && c < 6 && count[c] < 2 {
                lists[2].push_str(&line);
            }
            lists[usize::from(!train)].push_str(&line);
            count[c] += 1;
        }
    }
    let repeated = lists[2].lines().next().unwrap().to_string();
    lists[2].push_str(&format!("{repeated}\n"));
    for (name, text) in ["train_unlabeled_full", "test", "train_labeled_p1"]
        .iter()
        .zip(&lists)
    {
        std::fs::write(base.join(format!("filelist/{name}.txt")), text).unwrap();
    }
}

#[test]
fn ossl_iomatch_runs_the_imagenet30_config_from_file_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("in30");
    write_imagenet30_style(&data, 12);
    let out = tmp.path().join("runs");
    // The shipped paper config, shrunk: every data and view setting is the paper's except
    // the image sizes (28-pixel digits: training images stretched to 36x36, test images
    // Resize(32) + CenterCrop(28), so the views crop 28 out of 36).
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "--config",
            "configs/papers/iomatch_in30_p1.toml",
            "--quiet",
            "--set",
            "model.name=\"resnet_small\"",
            "--set",
            "model.width=4",
            "--set",
            "data.train_preprocess.resize_to=[36, 36]",
            "--set",
            "data.preprocess.resize=32",
            "--set",
            "data.preprocess.center_crop=28",
            "--set",
            "train.epochs=2",
            "--set",
            "train.batch_size=4",
            "--set",
            "ossl.mu=2",
            "--set",
            "ossl.iters_per_epoch=2",
            "--set",
            "ossl.eval_every_iters=0",
            "--set",
            "ossl.seen_classes=\"0-5\"",
            "--set",
            "eval.batch_size=16",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend([
            "--set".to_string(),
            format!("data.id.path={:?}", data.display().to_string()),
            "--set".to_string(),
            format!("output_dir={:?}", out.display().to_string()),
        ]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    run_ok(&args(&[]));
    let m = ossl_metrics(&out.join("iomatch_in30_p1"));
    let o = &m["ossl"];
    assert_eq!(o["num_seen_classes"], 6);
    assert_eq!(o["num_unseen_classes"], 4);
    // 12 listed lines for digits 0-5 plus one repeated line: 13 labelled images.
    assert_eq!(o["labelled_images"], 13);
    assert_eq!(o["unlabelled_images"], 120);
    assert_eq!(o["closed_test_images"], 36);
    assert_eq!(o["full_test_images"], 60);
    assert_eq!(o["iterations"], 4);
    for k in ["closed_accuracy", "open_balanced_accuracy", "auroc"] {
        let v = o[k].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&v), "{k} = {v}");
    }
    assert_eq!(o["labels_per_class"], serde_json::Value::Null);
    assert_eq!(
        o["labelled_list"],
        "data/imagenet30/filelist/train_labeled_p1.txt"
    );
    // Same config, same seed: the same metrics.
    run_ok(&args(&["--set", "name=\"again\""]));
    let mut again = ossl_metrics(&out.join("again"));
    assert_eq!(again["run"], "again");
    again["run"] = m["run"].clone();
    assert_eq!(again, m);

    let fails = |extra: &[&str], needles: &[&str]| {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        assert_clean_failure(&trainer(&a), needles);
    };
    // A labelled line that is not in the training list names the entry.
    let list = data.join("data/imagenet30/filelist/train_labeled_p1.txt");
    let good = std::fs::read_to_string(&list).unwrap();
    std::fs::write(
        &list,
        format!("{good}data/imagenet30/one_class_train/x.png 0\n"),
    )
    .unwrap();
    fails(&[], &["labelled_list", "entry 14", "x.png"]);
    std::fs::write(&list, &good).unwrap();
    // A missing image names the list, the line and the file.
    let train_list = data.join("data/imagenet30/filelist/train_unlabeled_full.txt");
    let first = std::fs::read_to_string(&train_list).unwrap();
    let img = first.lines().nth(1).unwrap().split(' ').next().unwrap();
    std::fs::remove_file(data.join(img)).unwrap();
    fails(&[], &["train_unlabeled_full.txt", "line 2", img]);
    // The list and a drawn split exclude each other; the list needs a file-list source.
    fails(
        &["--set", "ossl.labels_per_class=2"],
        &["labels_per_class", "labelled_list", "exclude"],
    );
    fails(
        &[
            "--set",
            "data.id={ source = \"mnist\", path = \"datasets/mnist-subset\" }",
        ],
        &["labelled_list", "file-list"],
    );
}

fn f32s(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect()
}

/// `trainer export` of a GCD run: SimGCD's / ProtoGCD's `nn.Sequential(backbone, DINOHead)`
/// names and shapes, and sample logits that are the cosines of the sample features with the
/// exported prototypes (recomputed here in f64).
fn check_gcd_export(recipe: &str, run: &Path, dir: &Path) {
    let out = dir.join(format!("{recipe}.safetensors"));
    let o = trainer(&[
        "export",
        "--run",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{recipe}: {}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    // The backbone (resnet_small, width 8: 64 features) without its head, under `0.`.
    assert!(names.contains(&"0.conv1.weight".to_string()), "{recipe}");
    assert!(!names.iter().any(|n| n.starts_with("0.fc.")), "{recipe}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("0.") || n.starts_with("1.")));
    let shape = |n: &str| st.tensor(n).unwrap().shape().to_vec();
    assert_eq!(shape("1.mlp.0.weight"), [32, 64]);
    assert_eq!(shape("1.mlp.2.weight"), [32, 32]);
    assert_eq!(shape("1.mlp.4.weight"), [16, 32]);
    assert_eq!(shape("1.mlp.4.bias"), [16]);
    let layer = match recipe {
        "simgcd" => Some("last_layer"),
        "protogcd" => Some("prototype_layer"),
        _ => None,
    };
    let head: Vec<&String> = names.iter().filter(|n| n.contains("_layer.")).collect();
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(info["num_classes"], 10);
    assert_eq!(info["class_names"][9], "new cluster 4");
    assert_eq!(info["heads"]["num_old_classes"], 5);
    let sample = dir.join(format!("{recipe}.sample.safetensors"));
    let (fshape, fbytes) = read_tensor(&sample, "features");
    assert_eq!(fshape, [8, 64]);
    assert_eq!(read_tensor(&sample, "x_proj").0, [8, 16]);
    let Some(layer) = layer else {
        assert!(head.is_empty(), "{head:?}");
        assert_eq!(info["heads"]["layout"], "GCD");
        return;
    };
    assert_eq!(head.len(), 2, "{head:?}");
    let g = f32s(st.tensor(&format!("1.{layer}.weight_g")).unwrap().data());
    assert_eq!(g, vec![1.0; 10]);
    let v = st.tensor(&format!("1.{layer}.weight_v")).unwrap();
    assert_eq!(v.shape(), [10, 64]);
    let v = f32s(v.data());
    // metrics.json's head statistics describe these prototypes.
    let norms: Vec<f64> = v
        .chunks_exact(64)
        .map(|r| r.iter().map(|a| a * a).sum::<f64>().sqrt())
        .collect();
    let mean = norms.iter().sum::<f64>() / 10.0;
    let head = &metrics(run)["gcd"]["head"];
    let want = head["prototype_norm_mean"].as_f64().unwrap();
    assert!(
        (mean - want).abs() < 1e-6 * want,
        "{recipe}: {mean} vs {want}"
    );
    let min = norms.iter().copied().fold(f64::INFINITY, f64::min);
    assert!((min - head["prototype_norm_min"].as_f64().unwrap()).abs() < 1e-6 * min);
    let f = f32s(&fbytes);
    let (lshape, lbytes) = read_tensor(&sample, "logits");
    assert_eq!(lshape, [8, 10]);
    let logits = f32s(&lbytes);
    let norm = |x: &[f64]| x.iter().map(|a| a * a).sum::<f64>().sqrt();
    for i in 0..8 {
        let fi = &f[i * 64..(i + 1) * 64];
        for c in 0..10 {
            let vc = &v[c * 64..(c + 1) * 64];
            let cos = fi.iter().zip(vc).map(|(a, b)| a * b).sum::<f64>() / norm(fi) / norm(vc);
            assert!((logits[i * 10 + c] - cos).abs() < 1e-5, "{recipe} {i} {c}");
        }
    }
}

/// `trainer embed --train-split` of a GCD run: the `labelled` mask marks the 60 images the
/// run saw labelled, the other rows are the unlabelled images in `predictions.csv`'s order
/// with its labels, and `logits` are the prototype logits whose argmax is its prediction
/// (no logits for `gcd`, which predicts with k-means).
fn check_gcd_embed(recipe: &str, run: &Path, dir: &Path, y: &[usize], pred: &[usize]) {
    let out = dir.join(format!("{recipe}_train.safetensors"));
    let o = trainer(&[
        "embed",
        "--config",
        run.join("config.toml").to_str().unwrap(),
        "--run",
        run.to_str().unwrap(),
        "--train-split",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{recipe}: {}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mask = st.tensor("labelled").unwrap().data().to_vec();
    assert_eq!(mask.len(), 240);
    assert_eq!(mask.iter().filter(|&&m| m == 1).count(), 60, "{recipe}");
    let labels: Vec<i64> = st
        .tensor("labels")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let unl: Vec<usize> = (0..240).filter(|&i| mask[i] == 0).collect();
    let y_embed: Vec<usize> = unl.iter().map(|&i| labels[i] as usize).collect();
    assert_eq!(y_embed, y, "{recipe}");
    // The labelled images are old-class ones (labels 0-4).
    assert!((0..240).all(|i| mask[i] == 0 || labels[i] < 5), "{recipe}");
    match st.tensor("logits") {
        Err(_) => assert_eq!(recipe, "gcd"),
        Ok(t) => {
            assert_eq!(t.shape(), [240, 10], "{recipe}");
            let l = f32s(t.data());
            let argmax: Vec<usize> = unl
                .iter()
                .map(|&i| {
                    let row = &l[i * 10..(i + 1) * 10];
                    (0..10).fold(0, |b, c| if row[c] > row[b] { c } else { b })
                })
                .collect();
            assert_eq!(argmax, pred, "{recipe}");
        }
    }
}

/// `model.weights = "run:DIR"` starts a network from another run's backbone: the ProtoGCD
/// run of `dir`, embedded through a config whose weights point at it, gives exactly the
/// run's own features (its untrained linear head is left out); another network or a folder
/// that is not a run is refused, naming why.
fn check_run_weights(dir: &Path) {
    let src = dir.join("protogcd_mnist");
    let config = src.join("config.toml").display().to_string();
    let embed = |extra: &[String], out: &str| {
        let mut a: Vec<String> = ["embed", "--config", &config, "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(dir.join(out).display().to_string());
        a.extend(extra.iter().cloned());
        trainer(&a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    };
    let weights = |d: &Path| {
        vec![
            "--set".to_string(),
            format!("model.weights=\"run:{}\"", d.display()),
        ]
    };
    let o = embed(
        &["--run".into(), src.display().to_string()],
        "src.safetensors",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut a = weights(&src);
    a.extend(["--set".into(), "model.allow_partial=[\"fc\"]".into()]);
    let o = embed(&a, "chained.safetensors");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("kept initial: fc.weight (absent)"),
        "{}",
        stderr(&o)
    );
    let (s1, f1) = read_tensor(&dir.join("src.safetensors"), "features");
    let (s2, f2) = read_tensor(&dir.join("chained.safetensors"), "features");
    assert_eq!(s1, s2);
    assert_eq!(
        f1, f2,
        "the chained backbone computes the source run's features"
    );
    // Without allow_partial the missing head is named, with the key to allow.
    assert_clean_failure(
        &embed(&weights(&src), "x.safetensors"),
        &["fc.weight", "[\"fc\"]"],
    );
    // Another width: refused before loading, naming both networks.
    let mut a = weights(&src);
    a.extend(["--set".into(), "model.width=16".into()]);
    assert_clean_failure(
        &embed(&a, "x.safetensors"),
        &["run:", "width Some(8)", "width Some(16)"],
    );
    // Not a run folder.
    assert_clean_failure(
        &embed(&weights(dir), "x.safetensors"),
        &["not a run folder"],
    );
}

#[test]
fn gcd_recipes_train_evaluate_and_write_recomputable_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    for recipe in ["gcd", "simgcd", "protogcd"] {
        let extra: &[&str] = if recipe == "gcd" {
            &["--set", "gcd.estimate_k=true", "--set", "gcd.max_k=12"]
        } else {
            &[]
        };
        run_ok(&gcd_args(recipe, tmp.path(), extra));
        let run = tmp.path().join(format!("{recipe}_mnist"));
        let m = metrics(&run);
        let g = &m["gcd"];
        let report = std::fs::read_to_string(run.join("report.md")).unwrap();
        let want = format!(
            "| unlabelled (the papers' number) | {:.2} |",
            100.0 * g["unlabelled"]["all"].as_f64().unwrap()
        );
        assert!(report.contains(&want), "{recipe}: {report}");
        assert_eq!(g["old_classes"], 5, "{recipe}");
        assert_eq!(g["new_classes"], 5, "{recipe}");
        // 24 per class: half of the 5 x 24 old-class images are labelled.
        assert_eq!(g["labelled"], 60, "{recipe}");
        for set in ["unlabelled", "test"] {
            let all = g[set]["all"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&all), "{recipe} {set}: {all}");
        }
        if recipe == "gcd" {
            let k = g["estimated_k"].as_u64().unwrap();
            assert!((5..=12).contains(&k), "estimated K {k}");
        } else {
            // ProtoGCD-style OOD scores on Fashion-MNIST: six scores.
            assert_eq!(m["ood"].as_array().unwrap().len(), 6, "{recipe}");
        }
        // Re-evaluation with --save-scores: the same numbers, and a predictions.csv from
        // which the v2 accuracy is recomputed.
        let run_s = run.display().to_string();
        let o = trainer(&["eval", "--run", &run_s, "--save-scores"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let ev: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("eval/metrics.json")).unwrap())
                .unwrap();
        assert_eq!(ev["gcd"]["unlabelled"], g["unlabelled"], "{recipe}");
        let csv = std::fs::read_to_string(run.join("eval/predictions.csv")).unwrap();
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("set,index,label,is_old,prediction"));
        let (mut y, mut p, mut old) = (vec![], vec![], vec![]);
        for l in lines {
            let f: Vec<&str> = l.split(',').collect();
            if f[0] == "unlabelled" {
                y.push(f[2].parse::<usize>().unwrap());
                old.push(f[3] == "1");
                p.push(f[4].parse::<usize>().unwrap());
            }
        }
        // 5 x 12 unlabelled old + 5 x 24 new.
        assert_eq!(y.len(), 180);
        let acc = unseen_eval::gcd_accuracy_v2(&y, &p, &old).unwrap();
        assert!(
            (acc.all - g["unlabelled"]["all"].as_f64().unwrap()).abs() < 1e-12,
            "{recipe}"
        );
        if recipe == "gcd" {
            assert!(g["head"].is_null() && g["backbone_kmeans"].is_null());
        } else {
            // The CPU configs set backbone_kmeans; the head statistics count the distinct
            // predictions of the unlabelled images.
            let bk = g["backbone_kmeans"]["all"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&bk), "{recipe}: {bk}");
            let mut distinct = p.clone();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(g["head"]["prototypes_used"], distinct.len(), "{recipe}");
        }
        check_gcd_embed(recipe, &run, tmp.path(), &y, &p);
        // predict would use the backbone's untrained linear head: refused, naming why.
        let o = trainer(&[
            "predict",
            "--run",
            &run_s,
            "--images",
            tmp.path().to_str().unwrap(),
            "--detector",
            "msp",
            "--out",
            tmp.path().join("pred.csv").to_str().unwrap(),
        ]);
        assert_clean_failure(&o, &["category-discovery", "eval", "embed"]);
        check_gcd_export(recipe, &run, tmp.path());
    }
    check_run_weights(tmp.path());
    // Bad split settings name the value.
    let a = gcd_args(
        "protogcd",
        tmp.path(),
        &["--set", "gcd.labelled_fraction=1.5", "--overwrite"],
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    assert_clean_failure(&trainer(&a), &["1.5"]);
    let a = gcd_args(
        "protogcd",
        tmp.path(),
        &["--set", "gcd.old_classes=\"0-12\"", "--overwrite"],
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    assert_clean_failure(&trainer(&a), &["12"]);
    let a = gcd_args(
        "gcd",
        tmp.path(),
        &["--set", "gcd.memax_weight=4", "--overwrite"],
    );
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    assert_clean_failure(&trainer(&a), &["memax_weight", "simgcd"]);
}

/// GCD through the driver: halted after epoch 1 of 2, or interrupted mid-epoch, then
/// resumed, it ends with the uninterrupted run's metrics (all but the wall time), and
/// `train.eval_every` now evaluates during training (TensorBoard `gcd/unlabelled/all`).
#[test]
fn gcd_resume_is_bit_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &Path, extra: &[&str]| {
        let mut e = vec!["--set", "train.epochs=2", "--set", "train.eval_every=1"];
        e.extend_from_slice(extra);
        gcd_args("protogcd", out, &e)
    };
    let strip = |run: &Path| {
        let mut m = metrics(run);
        m.as_object_mut().unwrap().remove("train_seconds");
        m
    };
    let full = tmp.path().join("full");
    run_ok(&args(&full, &[]));
    let run = full.join("protogcd_mnist");
    let tags: Vec<String> = trainer::run::tb::read_scalars(&run.join("tb"))
        .unwrap()
        .into_iter()
        .filter(|e| e.tag == "gcd/unlabelled/all")
        .map(|e| e.step.to_string())
        .collect();
    assert_eq!(
        tags.len(),
        2,
        "one evaluation after epoch 1, one at the end: {tags:?}"
    );
    for (dir, flag, code) in [
        ("halted", ["--halt-after-epochs", "1"], 3),
        ("ctrl_c", ["--interrupt-after-steps", "3"], 130),
    ] {
        let out = tmp.path().join(dir);
        let a = args(&out, &flag);
        let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
        let o = trainer(&a);
        assert_eq!(o.status.code(), Some(code), "{dir}: {}", stderr(&o));
        let r = out.join("protogcd_mnist");
        let o = trainer(&["train", "--resume", r.to_str().unwrap(), "--quiet"]);
        assert!(o.status.success(), "{dir}: {}", stderr(&o));
        assert_eq!(strip(&r), strip(&run), "{dir}: resumed metrics differ");
    }
}
