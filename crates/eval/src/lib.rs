//! `unseen-eval`: how well a model separates in-distribution (ID) from out-of-distribution
//! (OOD) data, measured the way the OOD literature measures it.
//!
//! * [`metrics`]: AUROC, AUPR-In, AUPR-Out, FPR@95TPR (OOD-positive as OpenOOD v1.5, and
//!   the ID-positive variant named as such) and accuracy, matching scikit-learn to the last
//!   digit, ties included.
//! * [`detectors`]: post-hoc OOD scores (MSP, MaxLogit, Energy) behind one [`Detector`]
//!   trait, built from names such as `"energy:T=2"`.
//! * [`report`]: result tables (terminal, Markdown, CSV, JSON) with near/far averages and
//!   optional paper numbers side by side.
//! * [`gcd`]: Hungarian clustering accuracy and the GCD old/new split (protocols v1 and v2).
//! * [`kmeans`]: semi-supervised k-means as in the GCD reference, seeded from the caller's
//!   [`RandomSource`].
//! * [`estimate_k`]: class-number estimation (GCD's Brent search over labelled accuracy,
//!   and our held-out-class probe).
//! * [`plots`]: ROC curves and ID-vs-OOD score histograms for reports, as SVG and PNG
//!   (text in an embedded DejaVu Sans, byte-identical output for the same input).
//! * [`error`]: the crate's [`EvalError`].
//!
//! One convention holds everywhere: **a higher score means more in-distribution**.
//!
//! ```
//! use unseen_eval::detectors::detector_from_name;
//! use unseen_eval::metrics::ood_metrics;
//!
//! // Two classes; ID logits are confident, OOD logits are not.
//! let id_logits = [4.0, 0.0, 0.0, 5.0, 3.0, 0.5];
//! let ood_logits = [0.2, 0.1, 0.4, 0.6];
//! let energy = detector_from_name("energy")?;
//! let id = energy.score(&id_logits, 2, None)?;
//! let ood = energy.score(&ood_logits, 2, None)?;
//! let m = ood_metrics(&id, &ood)?;
//! assert_eq!(m.auroc, 1.0);
//! # Ok::<(), unseen_eval::EvalError>(())
//! ```
//!
//! This crate does not depend on burn or on the other Unseen crates: it works on plain
//! `f32` slices, so it is cheap to build and easy to test.

pub mod detectors;
pub mod error;
pub mod estimate_k;
pub mod gcd;
pub mod kmeans;
pub mod metrics;
pub mod plots;
pub mod report;

pub use detectors::Detector;
pub use error::{EvalError, Result};
pub use estimate_k::{estimate_k_gcd, estimate_k_probe, EstimateKConfig, KEstimate};
pub use gcd::{cluster_accuracy, gcd_accuracy_v1, gcd_accuracy_v2, GcdAccuracy};
pub use kmeans::{semi_supervised_kmeans, KMeansResult, RandomSource, SsKMeansConfig};
pub use metrics::OodMetrics;
