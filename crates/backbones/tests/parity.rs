//! Numerical parity with PyTorch: weights written by torchvision / timm / DINO / Hugging Face
//! code (random but seeded, see `fixtures/make_parity.py` and `fixtures/README.md`) load
//! through our key maps and give the features and logits PyTorch computed for the same input.
//!
//! Tolerance: max |Δ| <= 1e-4 · max(1, max |reference|) (f32 on the CPU; the WRN fixtures
//! have random BatchNorm statistics and logits up to ~60, so the bound scales). Run with
//! `--nocapture` to print the parity table quoted in the README.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::prelude::*;
use unseen_backbones::vit::{resample_pos_embed, PosEmbedInterp, VitConfig};
use unseen_backbones::weights::{read_tensors, state_dict, WeightsError};
use unseen_backbones::{Backbone, BackboneSpec};

type B = Flex;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(name)
}

/// `name -> (shape, values)` of an io file.
fn io(name: &str) -> std::collections::BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    read_tensors(&fixture(name), None)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, (t.shape, t.values)))
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn to_vec(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// Loads `weights` into `model`, runs the io file's input and checks features (and logits).
fn check(label: &str, model: Backbone<B>, weights: &str, key: Option<&str>, io_name: &str) {
    let dev = Default::default();
    let (model, report) = model
        .load_weights(&fixture(weights), key, &[], label)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    let r = io(io_name);
    let (shape, input) = &r["input"];
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(input.clone(), [shape[0], shape[1], shape[2], shape[3]]),
        &dev,
    );
    let (f, l) = model.forward(x);
    let (f, l) = (to_vec(f), to_vec(l));
    let ref_f = &r["features"].1;
    let df = max_diff(&f, ref_f);
    let scale_f = ref_f.iter().fold(1f32, |m, v| m.max(v.abs()));
    let mut line = format!("| {label} | {} | {weights} | {df:.2e}", report.naming);
    assert!(df <= 1e-4 * scale_f, "{label}: features differ by {df}");
    if let Some((_, ref_l)) = r.get("logits") {
        let dl = max_diff(&l, ref_l);
        let scale_l = ref_l.iter().fold(1f32, |m, v| m.max(v.abs()));
        line += &format!(" | {dl:.2e} (max |logit| {scale_l:.1}) |");
        assert!(dl <= 1e-4 * scale_l, "{label}: logits differ by {dl}");
    } else {
        line += " | (no head) |";
    }
    println!("{line}");
}

fn spec(name: &str) -> BackboneSpec {
    BackboneSpec::new(name)
}

#[test]
fn resnet18_torchvision_pth_f16() {
    let m = spec("resnet18").init::<B>(10, &Default::default()).unwrap();
    check(
        "resnet18",
        m,
        "resnet18_tv_f16.pth",
        None,
        "resnet18_tv_io.safetensors",
    );
}

#[test]
fn wrn28_2_oe_pth() {
    let m = spec("wrn28_2").init::<B>(10, &Default::default()).unwrap();
    check(
        "wrn28_2",
        m,
        "wrn28_2_oe.pth",
        None,
        "wrn28_2_oe_io.safetensors",
    );
}

#[test]
fn wrn28_2_usb_safetensors() {
    let m = spec("wrn28_2_usb")
        .init::<B>(6, &Default::default())
        .unwrap();
    check(
        "wrn28_2_usb",
        m,
        "wrn28_2_usb.safetensors",
        None,
        "wrn28_2_usb_io.safetensors",
    );
}

#[test]
fn vit_tiny_timm_safetensors_at_224_and_32() {
    let dev = Default::default();
    let m = spec("vit_tiny_patch16_224").init::<B>(10, &dev).unwrap();
    check(
        "vit_tiny_patch16 @224",
        m,
        "vit_tiny_timm_f16.safetensors",
        None,
        "vit_tiny_timm_io224.safetensors",
    );
    // The same file at 32x32: the 14x14 position grid is resampled to 2x2 on load.
    let m = spec("vit_tiny_patch16")
        .init_for::<B>(10, Some(32), &dev)
        .unwrap();
    check(
        "vit_tiny_patch16 @32",
        m,
        "vit_tiny_timm_f16.safetensors",
        None,
        "vit_tiny_timm_io32.safetensors",
    );
}

#[test]
fn pos_embed_resampling_matches_timm_and_torch() {
    let w = read_tensors(&fixture("vit_tiny_timm_f16.safetensors"), None).unwrap();
    let pe = &w["pos_embed"];
    let r = io("vit_tiny_timm_io32.safetensors");
    let aa = resample_pos_embed(&pe.values, 192, 1, 14, 2, PosEmbedInterp::BicubicAntialias);
    let d_aa = max_diff(&aa, &r["pos_embed"].1);
    let plain = resample_pos_embed(&pe.values, 192, 1, 14, 2, PosEmbedInterp::Bicubic);
    let d_plain = max_diff(&plain, &r["pos_embed_noaa"].1);
    println!("pos_embed 14->2: antialiased max|Δ| {d_aa:.2e}, plain {d_plain:.2e}");
    assert!(d_aa < 1e-6 && d_plain < 1e-6, "{d_aa} {d_plain}");
}

fn vit_d2(classes: usize) -> Backbone<B> {
    Backbone::Vit(VitConfig::new(192, 2, 3, classes).init(&Default::default()))
}

#[test]
fn dino_state_dict_and_training_checkpoint() {
    check(
        "ViT (DINO layout, depth 2)",
        vit_d2(0),
        "vit_dino_d2.pth",
        None,
        "vit_dino_d2_io.safetensors",
    );
    // The training checkpoint: the teacher's backbone, with DINO's projection head unused.
    let err = vit_d2(0)
        .load_weights(
            &fixture("vit_dino_d2_full.pth"),
            Some("teacher"),
            &[],
            "dino",
        )
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, WeightsError::Mismatch { .. })
            && msg.contains("head.mlp.0.weight")
            && msg.contains("vit_dino_d2_full.pth")
            && msg.contains("allow_partial"),
        "{msg}"
    );
    let (m, report) = vit_d2(0)
        .load_weights(
            &fixture("vit_dino_d2_full.pth"),
            Some("teacher"),
            &["head".to_string()],
            "dino",
        )
        .unwrap();
    assert_eq!(report.ignored.len(), 2, "{report}");
    let (plain, _) = vit_d2(0)
        .load_weights(&fixture("vit_dino_d2.pth"), None, &[], "dino")
        .unwrap();
    assert_eq!(
        state_dict(&m, 0).unwrap(),
        state_dict(&plain, 0).unwrap(),
        "teacher backbone == released backbone"
    );
    let err = vit_d2(0)
        .load_weights(&fixture("vit_dino_d2_full.pth"), Some("nope"), &[], "dino")
        .unwrap_err();
    assert!(
        err.to_string().contains("teacher") && err.to_string().contains("nope"),
        "{err}"
    );
}

#[test]
fn hugging_face_vit_model_naming() {
    let (m, report) = vit_d2(0)
        .load_weights(&fixture("vit_hf_d2.safetensors"), None, &[], "hf")
        .unwrap();
    assert_eq!(report.naming, "hf-transformers");
    assert!(report.ignored.iter().any(|k| k == "pooler.dense.weight"));
    drop(m);
    check(
        "ViT (HF transformers, depth 2)",
        vit_d2(0),
        "vit_hf_d2.safetensors",
        None,
        "vit_hf_d2_io.safetensors",
    );
}

#[test]
fn export_round_trips_every_source_exactly() {
    // Import then export under the canonical names: the same tensors, bit for bit.
    let dev = Default::default();
    let cases: Vec<(Backbone<B>, &str)> = vec![
        (spec("wrn28_2").init(10, &dev).unwrap(), "wrn28_2_oe.pth"),
        (
            spec("wrn28_2_usb").init(6, &dev).unwrap(),
            "wrn28_2_usb.safetensors",
        ),
        (
            spec("vit_tiny_patch16").init(10, &dev).unwrap(),
            "vit_tiny_timm_f16.safetensors",
        ),
        (
            spec("resnet18").init(10, &dev).unwrap(),
            "resnet18_tv_f16.pth",
        ),
        (vit_d2(0), "vit_dino_d2.pth"),
    ];
    for (m, file) in cases {
        let src = read_tensors(&fixture(file), None).unwrap();
        let (m, _) = m.load_weights(&fixture(file), None, &[], file).unwrap();
        let exported = state_dict(&m, 0).unwrap();
        let floats: Vec<&String> = exported
            .iter()
            .filter(|(_, (dt, _, _))| *dt == safetensors::Dtype::F32)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(floats.len(), src.len(), "{file}: key sets differ");
        for k in floats {
            let (_, shape, bytes) = &exported[k];
            let t = src
                .get(k)
                .unwrap_or_else(|| panic!("{file}: exported {k} not in source"));
            assert_eq!(&t.shape, shape, "{file}: {k}");
            let v: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            let first_diff = v.iter().zip(&t.values).position(|(a, b)| a != b);
            assert_eq!(first_diff, None, "{file}: {k} differs at this index");
        }
    }
}

#[test]
fn large_variants_match_reference_keys_and_shapes() {
    // fixtures/manifest.json: key -> shape of each reference state dict (no weights).
    let text = std::fs::read_to_string(fixture("manifest.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dev = Default::default();
    let ours = |m: Backbone<B>| -> std::collections::BTreeMap<String, Vec<usize>> {
        state_dict(&m, 0)
            .unwrap()
            .into_iter()
            .map(|(k, (_, s, _))| (k, s))
            .collect()
    };
    let cases: Vec<(&str, Backbone<B>)> = vec![
        (
            "torchvision_resnet18",
            spec("resnet18").init(1000, &dev).unwrap(),
        ),
        (
            "torchvision_resnet34",
            spec("resnet34").init(1000, &dev).unwrap(),
        ),
        (
            "torchvision_resnet50",
            spec("resnet50").init(1000, &dev).unwrap(),
        ),
        (
            "torchvision_resnet101",
            spec("resnet101").init(1000, &dev).unwrap(),
        ),
        (
            "timm_vit_small_patch16_224",
            spec("vit_small_patch16").init(1000, &dev).unwrap(),
        ),
        (
            "timm_vit_base_patch16_224",
            spec("vit_base_patch16").init(1000, &dev).unwrap(),
        ),
        ("dino_vitb16", spec("dino_vitb16").init(0, &dev).unwrap()),
        ("dino_vits16", spec("dino_vits16").init(0, &dev).unwrap()),
        ("wrn28_10_oe", spec("wrn28_10").init(10, &dev).unwrap()),
        ("wrn40_2_oe", spec("wrn40_2").init(10, &dev).unwrap()),
        ("wrn28_2_usb", spec("wrn28_2_usb").init(10, &dev).unwrap()),
        ("wrn28_8_usb", spec("wrn28_8_usb").init(10, &dev).unwrap()),
    ];
    let archs: Vec<String> = manifest.as_object().unwrap().keys().cloned().collect();
    for (name, m) in cases {
        let want: std::collections::BTreeMap<String, Vec<usize>> = manifest
            .get(name)
            .unwrap_or_else(|| panic!("manifest has no {name}; it has {archs:?}"))
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let s = v
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (k.clone(), s)
            })
            .collect();
        assert_eq!(ours(m), want, "{name}");
    }
}

#[test]
fn bad_files_give_clear_errors_and_load_nothing() {
    let dev = Default::default();
    let tmp = tempfile::tempdir().unwrap();
    // A truncated safetensors header.
    let bytes = std::fs::read(fixture("wrn28_2_usb.safetensors")).unwrap();
    let cut = tmp.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..100]).unwrap();
    let err = spec("wrn28_2_usb")
        .init::<B>(6, &dev)
        .unwrap()
        .load_weights(&cut, None, &[], "wrn28_2_usb")
        .unwrap_err();
    assert!(
        matches!(err, WeightsError::Format { .. }) && err.to_string().contains("cut.safetensors"),
        "{err}"
    );
    // A truncated PyTorch zip.
    let bytes = std::fs::read(fixture("wrn28_2_oe.pth")).unwrap();
    let cut = tmp.path().join("cut.pth");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let err = spec("wrn28_2")
        .init::<B>(10, &dev)
        .unwrap()
        .load_weights(&cut, None, &[], "wrn28_2")
        .unwrap_err();
    assert!(err.to_string().contains("cut.pth"), "{err}");
    // The wrong architecture: a ResNet file into a WideResNet (conv1 exists in both, with
    // other shapes: the first mismatch is reported with both shapes).
    let err = spec("wrn28_2")
        .init::<B>(10, &dev)
        .unwrap()
        .load_weights(&fixture("resnet18_tv_f16.pth"), None, &[], "wrn28_2")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, WeightsError::Shape { .. })
            && msg.contains("resnet18_tv_f16.pth")
            && msg.contains("conv1.weight")
            && msg.contains("[64, 3, 7, 7]")
            && msg.contains("[16, 3, 3, 3]"),
        "{msg}"
    );
    // The other WRN flavour: the OE file has no convolution biases.
    let err = spec("wrn28_2_usb")
        .init::<B>(10, &dev)
        .unwrap()
        .load_weights(&fixture("wrn28_2_oe.pth"), None, &[], "wrn28_2_usb")
        .unwrap_err();
    assert!(err.to_string().contains("conv1.bias"), "{err}");
    // A head of another size: the shape error names the key and both shapes ...
    let m = spec("vit_tiny_patch16").init::<B>(5, &dev).unwrap();
    let before = state_dict(&m, 0).unwrap();
    let err = m
        .load_weights(&fixture("vit_tiny_timm_f16.safetensors"), None, &[], "vit")
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("head.weight") && msg.contains("[5, 192]") && msg.contains("[10, 192]"),
        "{msg}"
    );
    // ... and loads with the head allowed to differ; the head keeps its initial values.
    let m = spec("vit_tiny_patch16").init::<B>(5, &dev).unwrap();
    let head_before = before["head.weight"].clone();
    let (m, report) = m
        .load_weights(
            &fixture("vit_tiny_timm_f16.safetensors"),
            None,
            &["head".to_string()],
            "vit",
        )
        .unwrap();
    assert_eq!(report.kept_initial.len(), 2, "{report}");
    let after = state_dict(&m, 0).unwrap();
    assert_ne!(
        after["blocks.0.attn.qkv.weight"],
        before["blocks.0.attn.qkv.weight"]
    );
    assert_eq!(after["head.weight"].1, head_before.1);
    // A missing file.
    let err = read_tensors(Path::new("/nonexistent/w.pth"), None).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/w.pth"), "{err}");
}

#[test]
fn grey_inputs_reuse_rgb_weights() {
    // timm's adapt_input_conv: a 1-channel ViT sums the RGB patch filters, so a grey image
    // g gives the same features as the RGB image (g, g, g).
    let dev = Default::default();
    let mut s = spec("vit_tiny_patch16");
    s.in_channels = 1;
    let grey = s.init_for::<B>(10, Some(32), &dev).unwrap();
    let (grey, report) = grey
        .load_weights(&fixture("vit_tiny_timm_f16.safetensors"), None, &[], "vit")
        .unwrap();
    assert!(report
        .adapted
        .iter()
        .any(|a| a.contains("patch_embed.proj.weight")));
    let rgb = spec("vit_tiny_patch16")
        .init_for::<B>(10, Some(32), &dev)
        .unwrap();
    let (rgb, _) = rgb
        .load_weights(&fixture("vit_tiny_timm_f16.safetensors"), None, &[], "vit")
        .unwrap();
    let g: Vec<f32> = (0..32 * 32)
        .map(|i| ((i * 37) % 255) as f32 / 255.0)
        .collect();
    let x1 = Tensor::<B, 4>::from_data(TensorData::new(g.clone(), [1, 1, 32, 32]), &dev);
    let x3 = Tensor::<B, 4>::from_data(TensorData::new(g.repeat(3), [1, 3, 32, 32]), &dev);
    let d = max_diff(
        &to_vec(grey.forward_features(x1)),
        &to_vec(rgb.forward_features(x3)),
    );
    assert!(d < 1e-4, "{d}");
}
