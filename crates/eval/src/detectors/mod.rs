//! Post-hoc OOD detectors: functions from a trained classifier's outputs to an OOD score.
//!
//! Every detector implements [`Detector`] and returns one score per sample with the crate's
//! convention, **higher = more in-distribution**, so its output goes straight into
//! [`crate::metrics`]. Logits are row-major `[n, num_classes]` `f32` slices.
//!
//! | name (for [`detector_from_name`]) | type         | score                          | paper |
//! |-----------------------------------|--------------|--------------------------------|-------|
//! | `msp`                             | [`Msp`]      | `max_k softmax(z)_k`           | Hendrycks & Gimpel, ICLR 2017 |
//! | `maxlogit`                        | [`MaxLogit`] | `max_k z_k`                    | Hendrycks et al., ICML 2022 |
//! | `energy`, `energy:T=2`            | [`Energy`]   | `T · logsumexp(z / T)`         | Liu et al., NeurIPS 2020 |
//! | `ce_uniform`                      | [`CeUniform`] | `−(1/K)·Σ_k log softmax(z)_k` | ProtoGCD's OOD scores, Ma et al., TPAMI 2025 |
//! | `ratio`                           | [`ProbRatio`] | `p₁ / (p₂ + 10⁻⁶)`            | 〃 |
//! | `margin`                          | [`ProbMargin`] | `p₁ − p₂`                    | 〃 |
//!
//! These need nothing but logits. Detectors that need penultimate features and
//! statistics of the ID training set (Mahalanobis, KNN, ViM, …) implement
//! [`Detector::fit`], which reads the training set through a [`FeatureSource`] one
//! [`FeatureBatch`] at a time (possibly over several passes), so memory stays bounded by
//! what the detector keeps, not by the size of the training set. [`Features`] is the
//! in-memory source.
//!
//! Two detectors run through the network rather than on its cached outputs: `odin` and
//! `mds_ensemble` move each input against the gradient of a loss on the network's outputs
//! before scoring it ([`Detector::perturbation`], [`Detector::output_gradient`],
//! [`Detector::score_passes`]); the caller (the trainer) owns the network and the backward
//! pass, this module the losses and the scores. `mds_ensemble` also reads several layers'
//! pooled outputs ([`Needs::layers`], [`Detector::set_layers`]).

use crate::error::{EvalError, Result};

mod activation;
mod gaussian;
mod gmm;
mod head;
mod knn;
pub(crate) mod linalg;
mod logit;
mod preprocess;
mod registry;
mod vim;

pub use activation::{Ash, Dice, React, Scale};
pub use gaussian::{Mds, Mvg, Rmds};
pub use gmm::Gmm;
pub use head::{Fdbd, She};
pub use knn::{Knn, NnGuide};
pub use logit::{CeUniform, Energy, Gen, MaxLogit, Msp, ProbMargin, ProbRatio, TempScale};
pub use preprocess::{MdsEnsemble, Odin};
pub use registry::{detector_from_name, search_grid, ALL_DETECTORS, KNOWN_DETECTORS};
pub use vim::Vim;

/// What a detector needs besides the logits of the samples it scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// Penultimate features of the scored samples (and of the training set in `fit`).
    pub features: bool,
    /// The ID training set (features, logits, labels as flagged) through [`Detector::fit`].
    pub fit: bool,
    /// Class labels of the training set.
    pub labels: bool,
    /// Logits of the training set.
    pub train_logits: bool,
    /// The network's linear head ([`Head`]), handed to [`Detector::fit`].
    pub head: bool,
    /// `features` are several layers' pooled outputs side by side (widths given by
    /// [`Detector::set_layers`] before the fit), for the training set and the scored
    /// samples alike, instead of the penultimate features.
    pub layers: bool,
}

impl Needs {
    /// Logits only: no fit, no features.
    pub const LOGITS: Needs = Needs {
        features: false,
        fit: false,
        labels: false,
        train_logits: false,
        head: false,
        layers: false,
    };
}

/// Input pre-processing a detector asks for (ODIN; Lee et al.'s Mahalanobis detector): each
/// scored image `x` (normalised) becomes `x − noise · sign(∇ₓL) / std` per channel, where
/// `std` is the input normalisation's (so `noise` is a step in the `[0, 1]` pixel range,
/// as ODIN's `input_std` scaling), `sign(0) = +1` as `torch.ge(grad, 0)`, and `L` a loss
/// the detector defines on the network's outputs for the clean image
/// ([`Detector::output_gradient`]). The detector then scores the network's outputs for the
/// moved image ([`Detector::score_passes`]). With `passes > 1` this happens once per pass,
/// each with its own loss, from the same clean image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perturbation {
    /// Step size (`> 0`).
    pub noise: f32,
    /// Perturbed copies of each image (one per layer for `mds_ensemble`).
    pub passes: usize,
}

/// A batch of network outputs handed to the input pre-processing methods: logits
/// `[n, num_classes]` (empty for a headless network) and features `[n, dim]` (the
/// penultimate features, or the layers side by side when [`Needs::layers`]).
#[derive(Debug, Clone, Copy)]
pub struct Outputs<'a> {
    /// Logits, row-major.
    pub logits: &'a [f32],
    /// Number of classes (0 without logits).
    pub num_classes: usize,
    /// Features, row-major.
    pub features: &'a [f32],
}

/// `∂L/∂logits` and `∂L/∂features` of a pass's loss (same shapes as the [`Outputs`]; an
/// empty vector means zero).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputGradient {
    /// Gradient with respect to the logits.
    pub logits: Vec<f32>,
    /// Gradient with respect to the features.
    pub features: Vec<f32>,
}

/// A network's final linear layer, `logits = W · f + b`: `weight` row-major
/// `[num_classes, dim]` (PyTorch's `fc.weight` layout), `bias` `[num_classes]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    weight: Vec<f32>,
    bias: Vec<f32>,
    num_classes: usize,
    dim: usize,
}

impl Head {
    /// Wraps a head's weight `[num_classes, dim]` and bias `[num_classes]`.
    ///
    /// # Errors
    /// [`EvalError::Shape`] / [`EvalError::NonFiniteValue`] for buffers that do not fit the
    /// stated shape or hold NaN / infinity.
    pub fn new(weight: Vec<f32>, bias: Vec<f32>, num_classes: usize, dim: usize) -> Result<Self> {
        let rows = validate_rows("head weight", &weight, dim)?;
        if rows != num_classes || bias.len() != num_classes {
            return Err(EvalError::LengthMismatch {
                what: "head weight rows vs bias length",
                left: rows,
                right: bias.len(),
            });
        }
        validate_rows("head bias", &bias, 1)?;
        Ok(Self {
            weight,
            bias,
            num_classes,
            dim,
        })
    }

    /// Weight, row-major `[num_classes, dim]`.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// Bias, `[num_classes]`.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// Number of classes (rows of the weight).
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Feature dimension (columns of the weight).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `features · Wᵀ + b` for row-major features `[n, dim]`: the logits `[n, num_classes]`,
    /// accumulated in `f64`.
    pub fn logits(&self, features: &[f32]) -> Vec<f32> {
        self.logits_with(features, &self.weight)
    }

    /// As [`Head::logits`] with another weight of the same shape (DICE's sparsified one).
    pub(crate) fn logits_with(&self, features: &[f32], weight: &[f32]) -> Vec<f32> {
        let (d, k) = (self.dim, self.num_classes);
        let mut out = Vec::with_capacity(features.len() / d.max(1) * k);
        for f in features.chunks_exact(d) {
            for (w, &b) in weight.chunks_exact(d).zip(&self.bias) {
                let dot: f64 = f
                    .iter()
                    .zip(w)
                    .map(|(&x, &y)| f64::from(x) * f64::from(y))
                    .sum();
                out.push((dot + f64::from(b)) as f32);
            }
        }
        out
    }
}

/// A post-hoc OOD detector: scores samples from their logits (and, for some detectors,
/// their penultimate features). Higher score = more in-distribution.
pub trait Detector: Send + Sync {
    /// The detector's name, including non-default parameters, in the form
    /// [`detector_from_name`] accepts (so `detector_from_name(&d.name())` rebuilds `d`).
    fn name(&self) -> String;

    /// What the detector needs: features, a fit on the training set, labels, the head.
    fn needs(&self) -> Needs {
        Needs::LOGITS
    }

    /// Whether [`Detector::score`] needs the `features` argument.
    fn needs_features(&self) -> bool {
        self.needs().features
    }

    /// Learns whatever the detector needs from the ID training set (class means, a
    /// feature bank, a principal subspace, …) by streaming it from `train`, plus the
    /// network's `head` for detectors that flag [`Needs::head`]. Call once before
    /// [`Detector::score`]; calling it again refits from scratch. The default does
    /// nothing, which is right for detectors that only look at logits.
    ///
    /// # Errors
    /// Whatever the source or the detector's own validation reports; a missing head or
    /// labels the detector needs; an empty class.
    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let _ = (train, head);
        Ok(())
    }

    /// Tells a detector that flags [`Needs::layers`] the widths of the layers its
    /// features hold side by side; called before [`Detector::fit`]. The default ignores
    /// them.
    ///
    /// # Errors
    /// Layers the detector cannot use (a `layer` index past the last one).
    fn set_layers(&mut self, widths: &[usize]) -> Result<()> {
        let _ = widths;
        Ok(())
    }

    /// The input pre-processing the detector wants before scoring, `None` (the default)
    /// to score the network's outputs as they are with [`Detector::score`].
    fn perturbation(&self) -> Option<Perturbation> {
        None
    }

    /// The gradient of pass `pass`'s loss with respect to the network's outputs for a
    /// batch of clean images ([`Perturbation`]).
    ///
    /// # Errors
    /// [`EvalError::Unsupported`] for a detector without input pre-processing (the
    /// default); shape errors; [`EvalError::NotFitted`].
    fn output_gradient(&self, pass: usize, clean: Outputs<'_>) -> Result<OutputGradient> {
        let _ = (pass, clean);
        Err(EvalError::Unsupported {
            detector: self.name(),
            reason: "it has no input pre-processing".into(),
        })
    }

    /// Scores from the network's outputs for the perturbed images, one [`Outputs`] per
    /// pass in order. The default scores the first pass with [`Detector::score`].
    ///
    /// # Errors
    /// As [`Detector::score`]; a wrong number of passes.
    fn score_passes(&self, passes: &[Outputs<'_>]) -> Result<Vec<f32>> {
        let first = passes.first().ok_or_else(|| EvalError::Unsupported {
            detector: self.name(),
            reason: "no perturbed outputs to score".into(),
        })?;
        self.score(first.logits, first.num_classes, Some(first.features))
    }

    /// How many weighted components the score sums (Lee et al.'s layers), 0 (the default)
    /// for a detector without weights to fit. With validation sets the trainer fits them
    /// ([`Detector::fit_weights`]) on [`Detector::components`].
    fn num_components(&self) -> usize {
        0
    }

    /// The score's components, row-major `[n, num_components]`, from the outputs
    /// [`Detector::score_passes`] reads (or one clean [`Outputs`] without input
    /// pre-processing).
    ///
    /// # Errors
    /// [`EvalError::Unsupported`] for a detector without components (the default); as
    /// [`Detector::score_passes`].
    fn components(&self, passes: &[Outputs<'_>]) -> Result<Vec<f32>> {
        let _ = passes;
        Err(EvalError::Unsupported {
            detector: self.name(),
            reason: "its score has no weighted components".into(),
        })
    }

    /// Fits the components' weights on validation data: `id` and `ood` are
    /// [`Detector::components`] of ID and OOD validation images.
    ///
    /// # Errors
    /// [`EvalError::Unsupported`] for a detector without components (the default); shape
    /// errors; a fit that diverges.
    fn fit_weights(&mut self, id: &[f32], ood: &[f32]) -> Result<()> {
        let _ = (id, ood);
        Err(EvalError::Unsupported {
            detector: self.name(),
            reason: "its score has no weighted components".into(),
        })
    }

    /// Values the fit chose (a temperature, a threshold, ViM's `alpha`), as `(name,
    /// value)`, for reports. Empty by default.
    fn fitted(&self) -> Vec<(String, f64)> {
        Vec::new()
    }

    /// One score per row of `logits` (row-major `[n, num_classes]`); `features` are the
    /// matching penultimate features (row-major `[n, dim]`) for detectors that need them
    /// and are ignored by the others.
    ///
    /// # Errors
    /// [`EvalError::Shape`] if `logits` is not a whole number of rows of `num_classes`
    /// (or `num_classes` is 0), [`EvalError::NonFiniteValue`] for a NaN or infinite logit,
    /// [`EvalError::MissingFeatures`] if the detector needs features and got none,
    /// [`EvalError::NotFitted`] if it needs a fit that has not happened.
    fn score(
        &self,
        logits: &[f32],
        num_classes: usize,
        features: Option<&[f32]>,
    ) -> Result<Vec<f32>>;
}

impl std::fmt::Debug for dyn Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Detector({})", self.name())
    }
}

/// One batch of the ID training set handed to [`Detector::fit`]; all buffers row-major
/// and with the same number of rows.
#[derive(Debug, Clone, Copy)]
pub struct FeatureBatch<'a> {
    /// Penultimate features, `[n, dim]`.
    pub features: &'a [f32],
    /// Feature dimension (`> 0`).
    pub dim: usize,
    /// Logits, `[n, num_classes]`, when the source has them.
    pub logits: Option<&'a [f32]>,
    /// Number of classes of `logits` (0 when there are no logits).
    pub num_classes: usize,
    /// Class labels, `[n]`, when the source has them.
    pub labels: Option<&'a [usize]>,
}

impl FeatureBatch<'_> {
    /// Number of samples in the batch.
    pub fn num_rows(&self) -> usize {
        self.features.len() / self.dim.max(1)
    }
}

/// The ID training set as a detector's [`Detector::fit`] reads it: a replayable stream of
/// [`FeatureBatch`]es.
///
/// Each call of [`FeatureSource::for_each_batch`] is one full pass over the data, in a
/// fixed order, so detectors that need two passes (means, then covariances) call it twice.
/// An implementation may hold everything in memory ([`Features`]) or produce batches on
/// the fly (for example by running a backbone over a data loader).
pub trait FeatureSource {
    /// Feature dimension of every batch.
    fn dim(&self) -> usize;

    /// Calls `visit` on every batch, in order, stopping at the first error.
    ///
    /// # Errors
    /// The first error returned by `visit` or met while producing a batch.
    fn for_each_batch(
        &mut self,
        visit: &mut dyn FnMut(FeatureBatch<'_>) -> Result<()>,
    ) -> Result<()>;
}

/// An in-memory [`FeatureSource`]: features (and optionally logits and labels) of the ID
/// training set, served in batches of [`Features::with_batch_size`] rows.
#[derive(Debug, Clone)]
pub struct Features {
    features: Vec<f32>,
    dim: usize,
    logits: Option<(Vec<f32>, usize)>,
    labels: Option<Vec<usize>>,
    batch_size: usize,
}

impl Features {
    /// Default rows per batch served by [`FeatureSource::for_each_batch`].
    pub const DEFAULT_BATCH_SIZE: usize = 4096;

    /// Wraps row-major features `[n, dim]`.
    ///
    /// # Errors
    /// [`EvalError::Shape`] if `dim` is 0 or does not divide the length,
    /// [`EvalError::NonFiniteValue`] for a NaN or infinite value.
    pub fn new(features: Vec<f32>, dim: usize) -> Result<Self> {
        validate_rows("features", &features, dim)?;
        Ok(Self {
            features,
            dim,
            logits: None,
            labels: None,
            batch_size: Self::DEFAULT_BATCH_SIZE,
        })
    }

    /// Adds the class labels, one per row.
    ///
    /// # Errors
    /// [`EvalError::LengthMismatch`] if there is not one label per row.
    pub fn with_labels(mut self, labels: Vec<usize>) -> Result<Self> {
        if labels.len() != self.num_rows() {
            return Err(EvalError::LengthMismatch {
                what: "feature rows vs labels",
                left: self.num_rows(),
                right: labels.len(),
            });
        }
        self.labels = Some(labels);
        Ok(self)
    }

    /// Adds the logits, row-major `[n, num_classes]`.
    ///
    /// # Errors
    /// [`EvalError::Shape`] / [`EvalError::NonFiniteValue`] as for [`Features::new`],
    /// [`EvalError::LengthMismatch`] if the logits do not have one row per feature row.
    pub fn with_logits(mut self, logits: Vec<f32>, num_classes: usize) -> Result<Self> {
        let rows = validate_rows("logits", &logits, num_classes)?;
        if rows != self.num_rows() {
            return Err(EvalError::LengthMismatch {
                what: "feature rows vs logit rows",
                left: self.num_rows(),
                right: rows,
            });
        }
        self.logits = Some((logits, num_classes));
        Ok(self)
    }

    /// Sets the number of rows per batch (at least 1).
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Number of samples.
    pub fn num_rows(&self) -> usize {
        self.features.len() / self.dim
    }
}

impl FeatureSource for Features {
    fn dim(&self) -> usize {
        self.dim
    }

    fn for_each_batch(
        &mut self,
        visit: &mut dyn FnMut(FeatureBatch<'_>) -> Result<()>,
    ) -> Result<()> {
        let n = self.num_rows();
        let mut start = 0;
        while start < n {
            let end = (start + self.batch_size).min(n);
            let (logits, num_classes) = match &self.logits {
                Some((l, k)) => (Some(&l[start * k..end * k]), *k),
                None => (None, 0),
            };
            visit(FeatureBatch {
                features: &self.features[start * self.dim..end * self.dim],
                dim: self.dim,
                logits,
                num_classes,
                labels: self.labels.as_deref().map(|l| &l[start..end]),
            })?;
            start = end;
        }
        Ok(())
    }
}

/// Checks that `data` is a row-major matrix of finite values with rows of `width`, and
/// returns the number of rows. Detectors use it on logits and features.
///
/// # Errors
/// [`EvalError::Shape`] if `width` is 0 or does not divide `data.len()`,
/// [`EvalError::NonFiniteValue`] (with row and column) for a NaN or infinite value.
pub fn validate_rows(what: &'static str, data: &[f32], width: usize) -> Result<usize> {
    if width == 0 || !data.len().is_multiple_of(width) {
        return Err(EvalError::Shape {
            what,
            len: data.len(),
            width,
        });
    }
    if let Some((i, &value)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(EvalError::NonFiniteValue {
            what,
            row: i / width,
            column: i % width,
            value,
        });
    }
    Ok(data.len() / width)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            // Relative tolerance: one f32 ulp at 1000 is 6e-5.
            assert!(
                (f64::from(*g) - w).abs() < 1e-6 * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }

    // Hand-computed rows (k = 3):
    //   [0, 0, 0]        softmax 1/3 each; max 0; logsumexp ln 3
    //   [ln 3, 0, 0]     softmax 3/5, 1/5, 1/5; max ln 3 = 1.0986123; logsumexp ln 5
    //   [1, 2, 3]        softmax max e^3 / (e + e^2 + e^3) = 0.66524096; logsumexp
    //                    3 + ln(1 + e^-1 + e^-2) = 3.40760596
    fn logits() -> Vec<f32> {
        vec![0.0, 0.0, 0.0, 3f32.ln(), 0.0, 0.0, 1.0, 2.0, 3.0]
    }

    /// Hand values. Row 0: z = [ln 3, 0, 0], p = [3/5, 1/5, 1/5]: CE to uniform
    /// −(ln 0.6 + 2 ln 0.2)/3 = 1.2432338, ratio 0.6/0.200001, margin 0.4. Row 1 flat: ln 3,
    /// (1/3)/(1/3 + 1e-6), 0. Shifting a row by a constant changes none of them.
    #[test]
    fn prototype_scores_by_hand() {
        let z = [3f32.ln(), 0.0, 0.0, 5.0, 5.0, 5.0];
        let ce = CeUniform.score(&z, 3, None).unwrap();
        close(&ce, &[1.243_233_8, 3f64.ln()]);
        let r = ProbRatio.score(&z, 3, None).unwrap();
        close(&r, &[0.6 / 0.200_001, (1.0 / 3.0) / (1.0 / 3.0 + 1e-6)]);
        let m = ProbMargin.score(&z, 3, None).unwrap();
        assert!((m[0] - 0.4).abs() < 1e-6 && m[1].abs() < 1e-7, "{m:?}");
        for name in ["ce_uniform", "ratio", "margin"] {
            let d = detector_from_name(name).unwrap();
            assert_eq!(d.name(), name);
            assert!(detector_from_name(&format!("{name}:T=2")).is_err());
            assert!(d.score(&[f32::NAN, 0.0], 2, None).is_err());
        }
    }

    #[test]
    fn msp_matches_hand_values() {
        let s = Msp.score(&logits(), 3, None).unwrap();
        close(&s, &[1.0 / 3.0, 0.6, 0.665_240_955_774_822]);
    }

    #[test]
    fn maxlogit_matches_hand_values() {
        let s = MaxLogit.score(&logits(), 3, None).unwrap();
        close(&s, &[0.0, 3f64.ln(), 3.0]);
    }

    #[test]
    fn energy_matches_hand_values() {
        let s = Energy::default().score(&logits(), 3, None).unwrap();
        close(&s, &[3f64.ln(), 5f64.ln(), 3.407_605_964_444_38]);
        // T = 2 on [2, 0]: 2 · ln(e^1 + e^0) = 2 ln(1 + e) = 2.6265233750364456.
        let s = Energy::new(2.0)
            .unwrap()
            .score(&[2.0, 0.0], 2, None)
            .unwrap();
        close(&s, &[2.626_523_375_036_445_6]);
    }

    #[test]
    fn huge_logits_do_not_overflow() {
        let z = [1000.0, 1000.0, 1000.0, 0.0, -1000.0, -1000.0];
        close(&Msp.score(&z, 2, None).unwrap(), &[0.5, 1.0, 0.5]);
        close(
            &Energy::default().score(&z, 2, None).unwrap(),
            &[1000.0 + 2f64.ln(), 1000.0, -1000.0 + 2f64.ln()],
        );
        // A tiny temperature sharpens logsumexp towards the max without overflowing.
        let s = Energy::new(1e-3)
            .unwrap()
            .score(&[5.0, 1.0], 2, None)
            .unwrap();
        close(&s, &[5.0]);
    }

    #[test]
    fn bad_logits_are_errors() {
        assert!(matches!(
            Msp.score(&[1.0, 2.0, 3.0], 2, None),
            Err(EvalError::Shape {
                len: 3,
                width: 2,
                ..
            })
        ));
        assert!(matches!(
            MaxLogit.score(&[1.0], 0, None),
            Err(EvalError::Shape { width: 0, .. })
        ));
        let err = Energy::default()
            .score(&[0.0, 1.0, f32::NAN, 2.0], 2, None)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "logits at row 1, column 0 is NaN: values must be finite"
        );
        assert!(Energy { temperature: 0.0 }.score(&[1.0], 1, None).is_err());
        assert!(Msp.score(&[], 10, None).unwrap().is_empty());
    }

    #[test]
    fn names_parse_and_round_trip() {
        for spec in ["msp", "maxlogit", "energy", "energy:T=2", "energy:T=0.5"] {
            let d = detector_from_name(spec).unwrap();
            assert_eq!(d.name(), spec);
            assert!(!d.needs_features());
        }
        assert_eq!(detector_from_name(" MSP ").unwrap().name(), "msp");
        assert_eq!(
            detector_from_name("energy:T=2.0").unwrap().name(),
            "energy:T=2"
        );
        assert_eq!(
            detector_from_name("Energy: temperature = 1.5")
                .unwrap()
                .name(),
            "energy:T=1.5"
        );
        assert_eq!(detector_from_name("energy:T=1").unwrap().name(), "energy");
        // The built detector scores like the type it names.
        let d = detector_from_name("energy:T=2").unwrap();
        let want = Energy::new(2.0).unwrap().score(&logits(), 3, None).unwrap();
        assert_eq!(d.score(&logits(), 3, None).unwrap(), want);
    }

    #[test]
    fn search_grids_parse_and_start_with_the_default() {
        for name in ALL_DETECTORS {
            let grid = search_grid(name, 512);
            // The first candidate is the detector with its default parameters (ViM's
            // default D/2 = 256 is spelled out).
            if *name != "vim" {
                assert_eq!(
                    detector_from_name(&grid[0]).unwrap().name(),
                    *name,
                    "{grid:?}"
                );
            }
            for spec in &grid {
                detector_from_name(spec).unwrap();
            }
        }
        assert_eq!(search_grid("knn", 64).len(), 5);
        assert_eq!(search_grid("gen", 64).len(), 42);
        assert_eq!(search_grid("vim", 512), ["vim:dim=256"]);
        assert_eq!(search_grid("vim", 2048), ["vim:dim=256", "vim:dim=1000"]);
        assert_eq!(search_grid("vim", 128), ["vim"]);
        assert_eq!(search_grid("mds", 128), ["mds"]);
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = detector_from_name("mahalanobis").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown detector `mahalanobis`; known detectors: {KNOWN_DETECTORS}")
        );
        // Every name of `ALL_DETECTORS` parses with its defaults and round-trips.
        for name in ALL_DETECTORS {
            assert_eq!(detector_from_name(name).unwrap().name(), *name);
        }
        let err = detector_from_name("knn:K=5").unwrap_err().to_string();
        assert!(
            err.contains("unknown parameter `K`") && err.contains("knn[:k=50"),
            "{err}"
        );
    }

    #[test]
    fn bad_parameters_are_errors() {
        for spec in [
            "msp:T=2",
            "energy:",
            "energy:T",
            "energy:T=",
            "energy:T=abc",
            "energy:T=-1",
            "energy:T=0",
            "energy:T=inf",
            "energy:T=1,T=2",
            "energy:beta=1",
        ] {
            let err = detector_from_name(spec)
                .err()
                .unwrap_or_else(|| panic!("{spec} parsed"));
            assert!(
                matches!(err, EvalError::InvalidDetectorParameter { .. }),
                "{spec}: {err}"
            );
            assert!(err.to_string().contains(spec), "{spec}: {err}");
        }
        assert!(Energy::new(f32::NAN).is_err());
    }

    /// A feature-based detector, written only to exercise the streaming `fit` contract:
    /// fit computes the mean training feature in one pass over batches; the score is the
    /// negative squared distance to it.
    #[derive(Default)]
    struct DistanceToMean {
        mean: Option<Vec<f64>>,
        batches_seen: usize,
    }

    impl Detector for DistanceToMean {
        fn name(&self) -> String {
            "distance_to_mean".to_string()
        }

        fn needs_features(&self) -> bool {
            true
        }

        fn fit(&mut self, train: &mut dyn FeatureSource, _head: Option<&Head>) -> Result<()> {
            let dim = train.dim();
            let (mut sum, mut n, mut batches) = (vec![0.0f64; dim], 0usize, 0usize);
            train.for_each_batch(&mut |batch| {
                for row in batch.features.chunks_exact(batch.dim) {
                    for (s, &x) in sum.iter_mut().zip(row) {
                        *s += f64::from(x);
                    }
                }
                n += batch.num_rows();
                batches += 1;
                Ok(())
            })?;
            self.mean = Some(sum.into_iter().map(|s| s / n as f64).collect());
            self.batches_seen = batches;
            Ok(())
        }

        fn score(
            &self,
            logits: &[f32],
            num_classes: usize,
            features: Option<&[f32]>,
        ) -> Result<Vec<f32>> {
            let features = features.ok_or_else(|| EvalError::MissingFeatures {
                detector: self.name(),
            })?;
            let mean = self.mean.as_ref().expect("test detector is fitted");
            validate_rows("logits", logits, num_classes)?;
            validate_rows("features", features, mean.len())?;
            Ok(features
                .chunks_exact(mean.len())
                .map(|row| {
                    -row.iter()
                        .zip(mean)
                        .map(|(&x, m)| (f64::from(x) - m).powi(2))
                        .sum::<f64>() as f32
                })
                .collect())
        }
    }

    #[test]
    fn feature_detectors_fit_by_streaming_batches() {
        // Five 2-d features, batches of 2: three batches; mean (2, 1).
        let mut train = Features::new(vec![0., 0., 1., 1., 2., 1., 3., 1., 4., 2.], 2)
            .unwrap()
            .with_labels(vec![0, 0, 1, 1, 1])
            .unwrap()
            .with_logits(vec![0.; 5], 1)
            .unwrap()
            .with_batch_size(2);
        let mut seen = Vec::new();
        train
            .for_each_batch(&mut |b| {
                seen.push((
                    b.num_rows(),
                    b.labels.unwrap().to_vec(),
                    b.logits.unwrap().len(),
                ));
                Ok(())
            })
            .unwrap();
        assert_eq!(
            seen,
            vec![(2, vec![0, 0], 2), (2, vec![1, 1], 2), (1, vec![1], 1)]
        );

        let mut d: Box<dyn Detector> = Box::<DistanceToMean>::default();
        d.fit(&mut train, None).unwrap();
        let s = d
            .score(&[0.0, 0.0], 1, Some(&[2.0, 1.0, 0.0, 0.0]))
            .unwrap();
        assert_eq!(s, vec![0.0, -5.0]);
        assert!(matches!(
            d.score(&[0.0], 1, None),
            Err(EvalError::MissingFeatures { .. })
        ));
    }

    #[test]
    fn feature_sets_are_validated() {
        assert!(matches!(
            Features::new(vec![1.0; 5], 2),
            Err(EvalError::Shape {
                what: "features",
                ..
            })
        ));
        assert!(Features::new(vec![1.0, f32::INFINITY], 2).is_err());
        let f = Features::new(vec![1.0; 6], 2).unwrap();
        assert_eq!(f.num_rows(), 3);
        assert!(matches!(
            f.clone().with_labels(vec![0; 2]),
            Err(EvalError::LengthMismatch {
                left: 3,
                right: 2,
                ..
            })
        ));
        assert!(f.with_logits(vec![0.0; 4], 2).is_err());
    }
}
