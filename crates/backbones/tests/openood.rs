//! OpenOOD v1.5 checkpoints (`<run>/s0/best.ckpt`, `torch.save(net.state_dict())` of
//! `ResNet18_32x32` / `ResNet18_224x224`) load through the `model.weights` path and give the
//! features and logits PyTorch computed. Fixtures: `fixtures/openood/make_openood_fixture.py`
//! (OpenOOD's module names and structure re-implemented; a width-8 ResNet18_32x32 checkpoint
//! with random BatchNorm statistics, its outputs, and the full-size key layouts).
//!
//! Tolerance: max |Δ| <= 1e-4 · max |reference| (f32 on the CPU). Run with `--nocapture`
//! for the numbers quoted in docs/parity.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::*;
use unseen_backbones::resnet::weights::canonicalize;
use unseen_backbones::weights::{
    read_tensors, state_dict, to_safetensors, SourceTensor, TensorMap,
};
use unseen_backbones::{hub, Backbone, BackboneSpec};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openood")
        .join(name)
}

/// The spec a config gives for an OpenOOD CIFAR checkpoint (`model.width = 8` for the
/// fixture's reduced width; the released networks use the default 64).
fn cifar_spec(weights: &Path) -> BackboneSpec {
    let mut spec = BackboneSpec::new("resnet18_cifar");
    spec.width = Some(8);
    spec.weights = Some(weights.display().to_string());
    spec
}

/// What `trainer`'s `build_backbone` does with `[model]`: build, resolve `weights`, load.
fn load(spec: &BackboneSpec, classes: usize) -> (Backbone<B>, String) {
    let m = spec
        .init_for::<B>(classes, Some(32), &Default::default())
        .unwrap();
    let file = hub::resolve(spec.weights.as_deref().unwrap()).unwrap();
    let (m, report) = m
        .load_weights(
            &file,
            spec.weights_key.as_deref(),
            &spec.allow_partial,
            &spec.name,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    (m, report.to_string())
}

fn to_vec(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Runs the io file's input; returns (max |Δ| features, max |ref|, max |Δ| logits, max |ref|).
fn compare(model: &Backbone<B>) -> (f32, f32, f32, f32) {
    let io = read_tensors(&fixture("resnet18_32x32_w8_io.safetensors"), None).unwrap();
    let x = &io["input"];
    let s = &x.shape;
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(x.values.clone(), [s[0], s[1], s[2], s[3]]),
        &Default::default(),
    );
    let (f, l) = model.forward(x);
    let diff = |ours: Vec<f32>, reference: &SourceTensor| {
        assert_eq!(ours.len(), reference.values.len());
        let d = ours
            .iter()
            .zip(&reference.values)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let scale = reference.values.iter().fold(0f32, |m, v| m.max(v.abs()));
        (d, scale)
    };
    let (df, sf) = diff(to_vec(f), &io["features"]);
    let (dl, sl) = diff(to_vec(l), &io["logits"]);
    (df, sf, dl, sl)
}

#[test]
fn openood_resnet18_32x32_checkpoint_matches_pytorch() {
    let (m, report) = load(&cifar_spec(&fixture("resnet18_32x32_w8.ckpt")), 10);
    assert!(report.contains("(openood naming)"), "{report}");
    let (df, sf, dl, sl) = compare(&m);
    println!(
        "| OpenOOD ResNet18_32x32 (width 8) | best.ckpt | {df:.2e} (max |feature| {sf:.2}) | \
         {dl:.2e} (max |logit| {sl:.2}) |"
    );
    assert!(df <= 1e-4 * sf, "features differ by {df} (scale {sf})");
    assert!(dl <= 1e-4 * sl, "logits differ by {dl} (scale {sl})");
}

#[test]
fn data_parallel_prefix_is_stripped() {
    // The same tensors under `module.` (a checkpoint saved from a DataParallel wrapper).
    let src = read_tensors(&fixture("resnet18_32x32_w8.ckpt"), None).unwrap();
    let prefixed: TensorMap = src
        .into_iter()
        .map(|(k, t)| {
            let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (
                format!("module.{k}"),
                (safetensors::Dtype::F32, t.shape, bytes),
            )
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("best.safetensors");
    std::fs::write(&file, to_safetensors(&prefixed, None).unwrap()).unwrap();
    let (m, report) = load(&cifar_spec(&file), 10);
    assert!(report.contains("openood"), "{report}");
    let (df, sf, dl, sl) = compare(&m);
    assert!(df <= 1e-4 * sf && dl <= 1e-4 * sl, "{df} {dl}");
}

#[test]
fn a_checkpoint_for_another_class_count_names_the_head() {
    let spec = cifar_spec(&fixture("resnet18_32x32_w8.ckpt"));
    let m = spec
        .init_for::<B>(100, Some(32), &Default::default())
        .unwrap();
    let err = m
        .load_weights(&fixture("resnet18_32x32_w8.ckpt"), None, &[], &spec.name)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("fc.") && err.contains("[100,") && err.contains("[10,"),
        "{err}"
    );
}

/// `key -> shape` of a manifest entry, without the integer `num_batches_tracked` buffers
/// (the reader drops them).
fn manifest(arch: &str) -> BTreeMap<String, Vec<usize>> {
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[arch]
        .as_object()
        .unwrap_or_else(|| panic!("manifest.json has no {arch}"))
        .iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, v)| {
            let s = v
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), s)
        })
        .collect()
}

#[test]
fn full_size_openood_state_dicts_map_onto_ours() {
    // The released checkpoints' layouts: after the key map, exactly our parameters with
    // their shapes (what `apply` checks before loading anything).
    let dev = Default::default();
    let cases = [
        ("openood_resnet18_32x32_c10", "resnet18_cifar", 10),
        ("openood_resnet18_32x32_c100", "resnet18_cifar", 100),
        ("openood_resnet18_224x224_c200", "resnet18", 200),
    ];
    for (arch, name, classes) in cases {
        let theirs = manifest(arch);
        let tensors = theirs
            .iter()
            .map(|(k, s)| {
                let n = s.iter().product();
                (k.clone(), SourceTensor::new(s.clone(), vec![0.0; n]))
            })
            .collect();
        let (mapped, naming) = canonicalize(tensors);
        let mapped: BTreeMap<String, Vec<usize>> =
            mapped.into_iter().map(|(k, t)| (k, t.shape)).collect();
        let model = BackboneSpec::new(name)
            .init_for::<B>(classes, Some(224), &dev)
            .unwrap();
        let ours: BTreeMap<String, Vec<usize>> = state_dict(&model, 0)
            .unwrap()
            .into_iter()
            .filter(|(_, (dt, _, _))| *dt == safetensors::Dtype::F32)
            .map(|(k, (_, s, _))| (k, s))
            .collect();
        assert_eq!(mapped, ours, "{arch} -> {name}");
        let want = if name == "resnet18" {
            "torchvision"
        } else {
            "openood"
        };
        assert_eq!(naming, want, "{arch}");
        println!("{arch}: {} tensors -> {name} ({naming})", theirs.len());
    }
}
