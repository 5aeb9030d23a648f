//! The detectors with input pre-processing (`odin`, `mds_ensemble`) against PyTorch: the
//! width-8 OpenOOD ResNet18_32x32 checkpoint, real MNIST digits, OpenOOD's postprocessor
//! formulas re-implemented in `tests/fixtures/preprocess/make_fixture.py` (its docstring
//! says what and how). The input gradient runs through burn's autodiff with BatchNorm in
//! inference mode; the fit and the scores through `unseen-eval`.
//!
//! Tolerance: 1e-4 relative on the pooled layers (of the largest value), ODIN's scores and
//! the Mahalanobis ensemble without pre-processing. The Mahalanobis scores of moved inputs
//! get 5e-3: a moved input lies off the training data, where the score reads the fitted
//! precision matrix along its least-variance directions (condition numbers 4e3 to 3e5 on
//! these 100 training images), which amplify the f32 rounding of the training features.
//! Measured: refitting the reference on its own training features times (1 + 1e-6·N(0,1))
//! moves its moved-input scores by up to 3e-4 (layer 0) and 1.7e-3 (layer 1); Unseen's
//! differ from the reference by 2.7e-3 (layer 0), 1.2e-3 (layer 1), < 1e-4 (layers 2-4),
//! 3.7e-4 summed. The moved inputs themselves were checked equal bit for bit (the gradient's
//! sign pattern: no flipped pixel on layer 0, 3 of 49,152 with |gradient| < 1e-5 on layer 1).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::backend::Flex;
use trainer::run::infer::{infer, network_outputs};
use trainer::run::preprocess::{through_network, Collect};
use unseen_backbones::weights::read_tensors;
use unseen_backbones::{hub, Backbone, BackboneSpec};
use unseen_data::ImageSet;
use unseen_eval::detectors::{detector_from_name, Detector, Features};

type B = Flex;
const MEAN: [f32; 3] = [0.4914, 0.4822, 0.4465];
const STD: [f32; 3] = [0.2470, 0.2435, 0.2616];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 28x28 grey digits (0..255 as f32) zero-padded to 32x32 and repeated over 3 channels.
fn image_set(pixels: &[f32], labels: Vec<u32>) -> Arc<ImageSet> {
    let n = pixels.len() / 784;
    let mut out = Vec::with_capacity(n * 3 * 1024);
    for img in pixels.chunks_exact(784) {
        let mut padded = vec![0u8; 1024];
        for y in 0..28 {
            for x in 0..28 {
                padded[(y + 2) * 32 + x + 2] = img[y * 28 + x] as u8;
            }
        }
        for _ in 0..3 {
            out.extend_from_slice(&padded);
        }
    }
    let names = (0..10).map(|c| c.to_string()).collect();
    Arc::new(ImageSet::new(out, labels, 3, 32, 32, names).unwrap())
}

fn model() -> Backbone<B> {
    let dir = root().join("crates/backbones/tests/fixtures/openood");
    let mut spec = BackboneSpec::new("resnet18_cifar");
    spec.width = Some(8);
    let m = spec
        .init_for::<B>(10, Some(32), &Default::default())
        .unwrap();
    let file = hub::resolve(dir.join("resnet18_32x32_w8.ckpt").to_str().unwrap()).unwrap();
    m.load_weights(&file, None, &[], &spec.name).unwrap().0
}

/// Every `got[i]` within `tol` of `want[i]`, relative to `scale(want[i])`.
fn assert_close_by(what: &str, got: &[f32], want: &[f32], tol: f32, scale: impl Fn(f32) -> f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let rel = (g - w).abs() / scale(w);
        worst = worst.max(rel);
        assert!(
            rel <= tol,
            "{what}[{i}]: {g} vs PyTorch {w} (relative {rel:e})"
        );
    }
    println!("{what}: max relative difference {worst:e}");
}

fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_close_by(what, got, want, tol, f32::abs);
}

#[test]
fn odin_and_mds_ensemble_match_pytorch() {
    let fx = read_tensors(
        &root().join("tests/fixtures/preprocess/preprocess.safetensors"),
        None,
    )
    .unwrap();
    let t = |k: &str| {
        fx.get(k)
            .unwrap_or_else(|| panic!("{k} missing"))
            .values
            .clone()
    };
    let dev = Default::default();
    let model = model();
    let train_labels: Vec<u32> = t("train_labels").iter().map(|&v| v as u32).collect();
    let train = image_set(&t("train_pixels"), train_labels.clone());
    let queries = image_set(&t("query_pixels"), vec![0; 16]);

    // The pooled layers: OpenOOD's feature1 .. feature5, averaged over positions.
    let rows = infer::<B>(&queries, &MEAN, &STD, 16, &dev, |x| {
        network_outputs(&model, x, true).unwrap()
    })
    .unwrap();
    let want = t("layers");
    let peak = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_eq!(model.layer_widths().unwrap(), vec![8, 8, 16, 32, 64]);
    assert_close_by("layers", &rows[0].values, &want, 1e-4, |_| peak);

    let score = |det: &dyn Detector| {
        through_network(
            &model,
            det,
            &queries,
            "queries",
            &MEAN,
            &STD,
            5,
            &dev,
            Collect::Scores,
        )
        .unwrap()
    };
    let odin = detector_from_name("odin").unwrap();
    assert_close("odin", &score(odin.as_ref()), &t("odin"), 1e-4);

    let train_rows = infer::<B>(&train, &MEAN, &STD, 32, &dev, |x| {
        network_outputs(&model, x, true).unwrap()
    })
    .unwrap();
    let labels: Vec<usize> = train_labels.iter().map(|&l| l as usize).collect();
    for (spec, key) in [
        ("mds_ensemble:noise=0", "mds_ensemble_clean"),
        ("mds_ensemble:layer=0", "mds_layer0"),
        ("mds_ensemble:layer=1", "mds_layer1"),
        ("mds_ensemble:layer=2", "mds_layer2"),
        ("mds_ensemble:layer=3", "mds_layer3"),
        ("mds_ensemble:layer=4", "mds_layer4"),
        ("mds_ensemble", "mds_ensemble"),
    ] {
        let mut det = detector_from_name(spec).unwrap();
        det.set_layers(&model.layer_widths().unwrap()).unwrap();
        let mut src = Features::new(train_rows[0].values.clone(), train_rows[0].width)
            .unwrap()
            .with_labels(labels.clone())
            .unwrap();
        det.fit(&mut src, None).unwrap();
        let tol = if spec.contains("noise=0") { 1e-4 } else { 5e-3 };
        assert_close(spec, &score(det.as_ref()), &t(key), tol);
    }
}
