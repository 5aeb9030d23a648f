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
/// features).
///
/// Liu & Qin, "Fast Decision Boundary based Out-of-Distribution Detector", ICML 2024;
/// OpenOOD `fdbd_postprocessor.py` (`distance_as_normalizer = True`).
#[derive(Debug, Clone, Default)]
pub struct Fdbd {
    fitted: Option<(Head, Vec<f64>, Vec<f64>)>,
}

impl Detector for Fdbd {
    fn name(&self) -> String {
        "fdbd".into()
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
                let norm = row
                    .iter()
                    .zip(mean)
                    .map(|(&x, m)| (f64::from(x) - m).powi(2))
                    .sum::<f64>()
                    .sqrt();
                (sum / norm) as f32
            })
            .collect())
    }
}
