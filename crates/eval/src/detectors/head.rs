//! Detectors built on the head's decision geometry: SHE (similarity to the class's stored
//! pattern) and fDBD (distance to the decision boundaries).

use super::linalg::{self, check_features, require_head};
use super::logit::row_max;
use super::{Detector, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// SHE: the inner product of a feature with the mean training feature of its predicted
/// class, the mean taken over correctly classified training samples only.
///
/// Zhang et al., "Out-of-Distribution Detection based on In-Distribution Data Patterns
/// Memorization with Modern Hopfield Energy", ICLR 2023; OpenOOD `she_postprocessor.py`
/// (`metric = inner_product`). A class with no correctly classified training sample is an
/// error naming it.
#[derive(Debug, Clone, Default)]
pub struct She {
    fitted: Option<(Head, Vec<Vec<f64>>)>,
}

impl Detector for She {
    fn name(&self) -> String {
        "she".into()
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            labels: true,
            head: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let head = require_head("she", head, train.dim())?.clone();
        let k = head.num_classes();
        let h = head.clone();
        let (patterns, _) = linalg::class_means("she", train, k, &move |b, i| {
            let y = linalg::label_of("she", b, i, k)?;
            let d = b.dim;
            let logits = h.logits(&b.features[i * d..(i + 1) * d]);
            Ok((argmax(&logits) == y).then_some(y))
        })
        .map_err(|e| match e {
            EvalError::EmptyClass { class, .. } => EvalError::Unsupported {
                detector: "she".into(),
                reason: format!(
                    "the network classifies no training image of class {class} correctly, and \
                     SHE stores the mean feature of those"
                ),
            },
            e => e,
        })?;
        self.fitted = Some((head, patterns));
        Ok(())
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (head, patterns) = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let d = head.dim();
        let (f, _) = check_features("she", features, d)?;
        let logits = head.logits(f);
        Ok(f.chunks_exact(d)
            .zip(logits.chunks_exact(head.num_classes()))
            .map(|(row, l)| {
                let p = &patterns[argmax(l)];
                row.iter()
                    .zip(p)
                    .map(|(&x, &m)| f64::from(x) * m)
                    .sum::<f64>() as f32
            })
            .collect())
    }
}

/// Index of the largest value (the first on ties, as `torch.argmax` on CPU).
fn argmax(row: &[f32]) -> usize {
    let m = row_max(row);
    row.iter().position(|&v| v == m).unwrap_or(0)
}

/// fDBD: the mean distance of a feature to the decision boundaries between its predicted
/// class `c` and every other class `k`, `Σ_k |z_c − z_k| / ‖W_c − W_k‖`, divided by the
/// feature's distance to the mean ID training feature (so it does not simply reward large
/// features), or with `distance=0` by the feature's norm `‖z‖`.
///
/// Liu & Qin, "Fast Decision Boundary based Out-of-Distribution Detector", ICML 2024;
/// OpenOOD `fdbd_postprocessor.py` (`distance_as_normalizer`, default `True`, swept over
/// both values).
#[derive(Debug, Clone)]
pub struct Fdbd {
    distance_as_normalizer: bool,
    fitted: Option<(Head, Vec<f64>, Vec<f64>)>,
}

impl Fdbd {
    /// fDBD normalised by the distance to the mean training feature (`true`, the default)
    /// or by the feature's norm.
    pub fn new(distance_as_normalizer: bool) -> Self {
        Self {
            distance_as_normalizer,
            fitted: None,
        }
    }
}

impl Default for Fdbd {
    fn default() -> Self {
        Self::new(true)
    }
}

impl Detector for Fdbd {
    fn name(&self) -> String {
        if self.distance_as_normalizer {
            "fdbd".into()
        } else {
            "fdbd:distance=0".into()
        }
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            head: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let head = require_head("fdbd", head, train.dim())?.clone();
        let (means, _) = linalg::class_means("fdbd", train, 1, &|_, _| Ok(Some(0)))?;
        let (k, d) = (head.num_classes(), head.dim());
        let w = head.weight();
        let mut denom = vec![1.0f64; k * k];
        for i in 0..k {
            for j in 0..k {
                if i != j {
                    denom[i * k + j] = (0..d)
                        .map(|t| f64::from(w[i * d + t] - w[j * d + t]).powi(2))
                        .sum::<f64>()
                        .sqrt();
                }
            }
        }
        self.fitted = Some((head, means.into_iter().next().expect("one mean"), denom));
        Ok(())
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (head, mean, denom) = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (k, d) = (head.num_classes(), head.dim());
        let (f, _) = check_features("fdbd", features, d)?;
        let logits = head.logits(f);
        Ok(f.chunks_exact(d)
            .zip(logits.chunks_exact(k))
            .map(|(row, l)| {
                let c = argmax(l);
                let top = f64::from(l[c]);
                let sum: f64 = (0..k)
                    .map(|j| (top - f64::from(l[j])).abs() / denom[c * k + j])
                    .sum();
                let centre = |j: usize| {
                    if self.distance_as_normalizer {
                        mean[j]
                    } else {
                        0.0
                    }
                };
                let norm = row
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| (f64::from(x) - centre(j)).powi(2))
                    .sum::<f64>()
                    .sqrt();
                (sum / norm) as f32
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{detector_from_name, Features};

    /// By hand: `W = I₂`, `b = 0`, training features (1, 1), (3, 1) (mean (2, 1)). For
    /// `z = (2, 0)` the logits are (2, 0), class 0, and the boundary term is
    /// `|2 − 0| / ‖W₀ − W₁‖ = 2/√2 = √2`; divided by `‖z − μ‖ = 1` it is √2, by `‖z‖ = 2`
    /// it is √2/2.
    #[test]
    fn fdbd_normalisers_by_hand() {
        let head = Head::new(vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], 2, 2).unwrap();
        for (spec, want) in [
            ("fdbd", std::f64::consts::SQRT_2),
            ("fdbd:distance=0", std::f64::consts::SQRT_2 / 2.0),
        ] {
            let mut d = detector_from_name(spec).unwrap();
            assert_eq!(d.name(), spec);
            let mut src = Features::new(vec![1.0, 1.0, 3.0, 1.0], 2).unwrap();
            d.fit(&mut src, Some(&head)).unwrap();
            let s = d.score(&[2.0, 0.0], 2, Some(&[2.0, 0.0])).unwrap();
            assert!((f64::from(s[0]) - want).abs() < 1e-6, "{spec}: {s:?}");
        }
        assert!(detector_from_name("fdbd:distance=2").is_err());
    }
}
