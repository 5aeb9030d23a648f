//! Parity of every post-hoc OOD detector with a reference implementation of its formula, and
//! the detectors' errors on bad input.
//!
//! The reference scores come from `tests/fixtures/detectors/make_fixtures.py` (NumPy,
//! scikit-learn, PyTorch and faiss, following OpenOOD v1.5's postprocessor code; run by hand,
//! never in CI), stored with their inputs in `tests/fixtures/detectors/fixture.json`: a
//! small classifier's penultimate features (D = 32, post-ReLU), its linear head (K = 5),
//! 500 labelled training rows and 120 ID + 120 OOD test rows.
//!
//! `cargo test -p unseen-eval --test detector_parity -- --nocapture` prints the table of
//! maximum relative differences.

use std::path::Path;

use serde_json::Value;
use unseen_eval::detectors::{detector_from_name, Detector, Features, Head, Vim, ALL_DETECTORS};
use unseen_eval::EvalError;

/// Whether detector `name` reads the network's pooled layers or moves its input (`odin`,
/// `mds_ensemble`), so it cannot run on this fixture's fixed features.
fn through_network(name: &str) -> bool {
    let d = detector_from_name(name).unwrap();
    d.needs().layers || d.perturbation().is_some()
}

/// Largest accepted relative difference between our scores and the reference's.
const TOLERANCE: f64 = 1e-4;

/// One detector's reference: its spec, the values its fit chose, and its scores.
struct Case {
    spec: String,
    fitted: Vec<(String, f64)>,
    id: Vec<f64>,
    ood: Vec<f64>,
}

/// A test set: features `[n, dim]` and logits `[n, num_classes]`.
struct Split {
    features: Vec<f32>,
    logits: Vec<f32>,
}

struct Fixture {
    dim: usize,
    num_classes: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    train_features: Vec<f32>,
    train_labels: Vec<usize>,
    train_logits: Vec<f32>,
    id: Split,
    ood: Split,
    cases: Vec<Case>,
}

/// The fixture's floats are the shortest reprs of `f32` values, which parse back exactly.
fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number"))
        .collect()
}

fn fixture() -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/detectors/fixture.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let split = |s: &Value| Split {
        features: f32s(&s["features"]),
        logits: f32s(&s["logits"]),
    };
    let cases = v["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            spec: c["spec"].as_str().unwrap().to_string(),
            fitted: c["fitted"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect(),
            id: f64s(&c["id"]),
            ood: f64s(&c["ood"]),
        })
        .collect();
    Fixture {
        dim: v["dim"].as_u64().unwrap() as usize,
        num_classes: v["num_classes"].as_u64().unwrap() as usize,
        weight: f32s(&v["head"]["weight"]),
        bias: f32s(&v["head"]["bias"]),
        train_features: f32s(&v["train"]["features"]),
        train_labels: v["train"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|y| y.as_u64().unwrap() as usize)
            .collect(),
        train_logits: f32s(&v["train"]["logits"]),
        id: split(&v["test_id"]),
        ood: split(&v["test_ood"]),
        cases,
    }
}

impl Fixture {
    /// The training set with labels and logits, served in batches of 64 rows so that every
    /// fit streams several batches.
    fn train_with_labels(&self, labels: Vec<usize>) -> Features {
        Features::new(self.train_features.clone(), self.dim)
            .unwrap()
            .with_labels(labels)
            .unwrap()
            .with_logits(self.train_logits.clone(), self.num_classes)
            .unwrap()
            .with_batch_size(64)
    }

    fn train(&self) -> Features {
        self.train_with_labels(self.train_labels.clone())
    }

    fn head(&self) -> Head {
        Head::new(
            self.weight.clone(),
            self.bias.clone(),
            self.num_classes,
            self.dim,
        )
        .unwrap()
    }

    /// `spec` built and fitted on the training set with the head.
    fn fitted(&self, spec: &str) -> Box<dyn Detector> {
        let mut det = detector_from_name(spec).unwrap();
        det.fit(&mut self.train(), Some(&self.head()))
            .unwrap_or_else(|e| panic!("{spec}: fit failed: {e}"));
        det
    }

    fn score(&self, det: &dyn Detector, split: &Split) -> Vec<f32> {
        det.score(&split.logits, self.num_classes, Some(&split.features))
            .unwrap_or_else(|e| panic!("{}: score failed: {e}", det.name()))
    }
}

/// Largest relative difference of `got` from `want`, each difference divided by
/// `max(|want|, 1e-3 · scale)` with `scale = max |want|` over all of the detector's
/// reference scores (ID and OOD together).
///
/// Plain `|got − want| / |want|` is meaningless for scores that pass near 0 (RMDS is a
/// difference of two Mahalanobis distances, fDBD / energy / SHE can cross 0): there, the
/// rounding of a score of size `scale` to `f32` alone is an absolute error of about
/// `6e-8 · scale`. The floor `1e-3 · scale` keeps the test at 1e-4 relative for every score
/// within three orders of magnitude of the largest, and at an absolute `1e-7 · scale` below.
fn max_rel_diff(got: &[f32], want: &[f64], scale: f64) -> (f64, usize) {
    assert_eq!(got.len(), want.len());
    let floor = 1e-3 * scale;
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() / w.abs().max(floor).max(f64::MIN_POSITIVE))
        .enumerate()
        .fold(
            (0.0, 0),
            |best, (i, r)| if r > best.0 { (r, i) } else { best },
        )
}

#[test]
fn every_detector_matches_the_reference() {
    let fx = fixture();
    // The fixture covers every detector `"all"` expands to, except the two that run through
    // the network (input pre-processing, pooled layers): `tests/preprocess.rs` compares
    // those with PyTorch on a real network.
    for name in ALL_DETECTORS.iter().filter(|n| !through_network(n)) {
        assert!(
            fx.cases.iter().any(|c| c.spec == *name),
            "the fixture has no reference for `{name}`: rerun make_fixtures.py"
        );
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for case in &fx.cases {
        let det = fx.fitted(&case.spec);
        let id = fx.score(det.as_ref(), &fx.id);
        let ood = fx.score(det.as_ref(), &fx.ood);
        let scale = case
            .id
            .iter()
            .chain(&case.ood)
            .fold(0.0f64, |m, v| m.max(v.abs()));
        let (rel_id, i_id) = max_rel_diff(&id, &case.id, scale);
        let (rel_ood, i_ood) = max_rel_diff(&ood, &case.ood, scale);
        let rel = rel_id.max(rel_ood);
        if rel > TOLERANCE {
            failures.push(format!(
                "{}: max rel diff {rel:.3e} (ID row {i_id}: {} vs {}; OOD row {i_ood}: {} vs {})",
                case.spec, id[i_id], case.id[i_id], ood[i_ood], case.ood[i_ood]
            ));
        }
        // The values the fit chose (temperature, thresholds, ViM's alpha, MVG's shrinkage).
        let ours = det.fitted();
        let mut fitted = Vec::new();
        for (key, want) in &case.fitted {
            let got = ours
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{}: fitted() has no `{key}`: {ours:?}", case.spec));
            let r = (got - want).abs() / want.abs().max(1e-12);
            if r > TOLERANCE {
                failures.push(format!("{}: fitted {key} = {got} vs {want}", case.spec));
            }
            fitted.push(format!("{key} {got:.6} (ref {want:.6})"));
        }
        rows.push((case.spec.clone(), rel, fitted.join(", ")));
    }
    println!("\n| detector | max rel diff | fitted |");
    println!("|---|---|---|");
    for (spec, rel, fitted) in &rows {
        println!("| {spec} | {rel:.2e} | {fitted} |");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_nan_in_the_scored_features_names_its_row() {
    let fx = fixture();
    let mut features = fx.id.features.clone();
    features[7 * fx.dim + 3] = f32::NAN;
    for name in ALL_DETECTORS.iter().filter(|n| !through_network(n)) {
        let det = fx.fitted(name);
        if !det.needs_features() {
            continue;
        }
        let err = det
            .score(&fx.id.logits, fx.num_classes, Some(&features))
            .expect_err(name);
        assert!(
            matches!(
                err,
                EvalError::NonFiniteValue {
                    row: 7,
                    column: 3,
                    ..
                }
            ),
            "{name}: {err}"
        );
        assert!(err.to_string().contains("row 7"), "{name}: {err}");
    }
    // The same in the training set, before any detector sees it.
    let mut train = fx.train_features.clone();
    train[11 * fx.dim] = f32::NAN;
    let err = Features::new(train, fx.dim).unwrap_err();
    assert!(err.to_string().contains("row 11"), "{err}");
}

#[test]
fn an_empty_class_is_named() {
    let fx = fixture();
    // Class 4's samples become class 3's: class 4 has no training sample.
    let labels: Vec<usize> = fx
        .train_labels
        .iter()
        .map(|&y| if y == 4 { 3 } else { y })
        .collect();
    for name in ["mds", "rmds", "she"] {
        let mut det = detector_from_name(name).unwrap();
        let err = det
            .fit(&mut fx.train_with_labels(labels.clone()), Some(&fx.head()))
            .expect_err(name);
        if name == "she" {
            // SHE needs correctly classified images of every class, which an empty class
            // lacks too: it says that.
            assert!(
                matches!(&err, EvalError::Unsupported { detector, .. } if detector == name),
                "{name}: {err}"
            );
            assert!(
                err.to_string()
                    .contains("no training image of class 4 correctly"),
                "{err}"
            );
        } else {
            assert!(
                matches!(&err, EvalError::EmptyClass { class: 4, detector } if detector == name),
                "{name}: {err}"
            );
        }
        assert!(err.to_string().contains("class 4"), "{name}: {err}");
    }
}

#[test]
fn vim_with_dim_equal_to_the_feature_dimension_says_why() {
    let fx = fixture();
    let mut det = detector_from_name(&format!("vim:dim={}", fx.dim)).unwrap();
    let err = det.fit(&mut fx.train(), Some(&fx.head())).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EvalError::Unsupported { .. }), "{msg}");
    assert!(
        msg.contains("dim = 32") && msg.contains("feature dimension is 32"),
        "{msg}"
    );
    // And it is not fitted.
    assert!(matches!(
        det.score(&fx.id.logits, fx.num_classes, Some(&fx.id.features)),
        Err(EvalError::NotFitted { .. })
    ));
}

#[test]
fn detectors_needing_a_head_say_so_without_one() {
    let fx = fixture();
    let mut needing = Vec::new();
    for name in ALL_DETECTORS {
        let mut det = detector_from_name(name).unwrap();
        if !det.needs().head {
            continue;
        }
        needing.push(*name);
        let err = det.fit(&mut fx.train(), None).expect_err(name);
        let msg = err.to_string();
        assert!(
            matches!(err, EvalError::Unsupported { .. }) && msg.contains("linear head"),
            "{name}: {msg}"
        );
        assert!(msg.contains(&format!("`{name}`")), "{name}: {msg}");
    }
    for name in ["vim", "react", "ash", "scale", "she", "fdbd", "dice"] {
        assert!(needing.contains(&name), "{name} does not flag Needs::head");
    }
}

/// OpenOOD's ViM sweep changed `dim` without recomputing the residual subspace (fixed
/// upstream in October 2025). Ours is fitted for the `dim` it was built with.
#[test]
fn vim_refits_its_residual_subspace_for_each_dim() {
    let fx = fixture();
    let d = fx.dim;
    let fit = |dim: usize| {
        let mut v = Vim::new(Some(dim));
        v.fit(&mut fx.train(), Some(&fx.head())).unwrap();
        v
    };
    let (v8, v16) = (fit(8), fit(16));
    let (b8, b16) = (v8.residual_basis().unwrap(), v16.residual_basis().unwrap());
    assert_eq!((b8.len(), b16.len()), (d * (d - 8), d * (d - 16)));
    // Projectors onto the two residual subspaces; the 24-dimensional one contains the
    // 16-dimensional one, so their difference is a projector of rank (trace) 8.
    let projector = |b: &[f64]| {
        let cols = b.len() / d;
        let mut p = vec![0.0f64; d * d];
        for c in 0..cols {
            let u = &b[c * d..(c + 1) * d];
            for i in 0..d {
                for j in 0..d {
                    p[i * d + j] += u[i] * u[j];
                }
            }
        }
        p
    };
    let (p8, p16) = (projector(&b8), projector(&b16));
    let trace_diff: f64 = (0..d).map(|i| p8[i * d + i] - p16[i * d + i]).sum();
    assert!((trace_diff - 8.0).abs() < 1e-9, "{trace_diff}");
    // P8 · P16 = P16: the dim = 16 residual space lies inside the dim = 8 one.
    for i in 0..d {
        for j in 0..d {
            let prod: f64 = (0..d).map(|t| p8[i * d + t] * p16[t * d + j]).sum();
            assert!((prod - p16[i * d + j]).abs() < 1e-9);
        }
    }
    let fitted_dim = |v: &Vim| v.fitted().into_iter().find(|(k, _)| k == "dim").unwrap().1;
    assert_eq!((fitted_dim(&v8), fitted_dim(&v16)), (8.0, 16.0));
    let s8 = fx.score(&v8, &fx.ood);
    let s16 = fx.score(&v16, &fx.ood);
    let max_diff = s8
        .iter()
        .zip(&s16)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(max_diff > 1e-2, "scores barely change with dim: {max_diff}");
    // A refit of the same detector gives the same subspace.
    let mut again = fit(8);
    again.fit(&mut fx.train(), Some(&fx.head())).unwrap();
    assert_eq!(again.residual_basis().unwrap().len(), b8.len());
    assert_eq!(fx.score(&again, &fx.ood), s8);
}
