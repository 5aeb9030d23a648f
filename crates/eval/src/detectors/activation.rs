//! Detectors that reshape the penultimate activations before the head, then score with the
//! energy of the new logits: ReAct (clip), ASH-B (prune and binarise), SCALE (rescale) and
//! DICE (sparsify the head's weights).

use super::linalg::{self, check_features, require_head};
use super::logit::{logsumexp, with_params};
use super::{Detector, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

fn needs_head() -> Needs {
    Needs {
        features: true,
        fit: true,
        head: true,
        ..Needs::LOGITS
    }
}

fn energies(head: &Head, features: &[f32]) -> Vec<f32> {
    head.logits(features)
        .chunks_exact(head.num_classes())
        .map(|r| logsumexp(r) as f32)
        .collect()
}

fn percentile_param(name: &str, p: f64, default: f64) -> String {
    with_params(
        name,
        &if p == default {
            vec![]
        } else {
            vec![format!("p={p}")]
        },
    )
}

/// ReAct: clip every activation at the `p`-th percentile of the ID training activations,
/// then score with the energy of the head's logits.
///
/// Sun, Guo & Li, "ReAct: Out-of-distribution Detection With Rectified Activations",
/// NeurIPS 2021; OpenOOD `react_postprocessor.py` (`percentile = 90`). The percentile is
/// exact (NumPy's linear interpolation) and computed in bounded memory.
#[derive(Debug, Clone)]
pub struct React {
    p: f64,
    fitted: Option<(Head, f32)>,
}

impl React {
    /// ReAct clipping at the `p`-th percentile (0 ≤ p < 100).
    pub fn new(p: f64) -> Self {
        Self { p, fitted: None }
    }
}

impl Detector for React {
    fn name(&self) -> String {
        percentile_param("react", self.p, 90.0)
    }

    fn needs(&self) -> Needs {
        needs_head()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let name = self.name();
        let head = require_head(&name, head, train.dim())?.clone();
        let t = linalg::stream_percentile(self.p, |visit| {
            train.for_each_batch(&mut |b| {
                linalg::validate_batch(&b)?;
                b.features.iter().for_each(|&v| visit(v));
                Ok(())
            })
        })?
        .ok_or(EvalError::Empty {
            what: "react training set",
        })?;
        self.fitted = Some((head, t as f32));
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.fitted
            .as_ref()
            .map(|(_, t)| vec![("threshold".into(), f64::from(*t))])
            .unwrap_or_default()
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (head, t) = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (f, _) = check_features("react", features, head.dim())?;
        let clipped: Vec<f32> = f.iter().map(|&v| v.min(*t)).collect();
        Ok(energies(head, &clipped))
    }
}

/// How many activations of `n` the ASH/SCALE top-k keeps at percentile `p`:
/// `n − round(n · p / 100)`, rounding half to even as NumPy does.
fn kept(n: usize, p: f64) -> usize {
    let x = n as f64 * p / 100.0;
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    };
    n.saturating_sub(r as usize).max(1)
}

/// Indices of the `k` largest values of `row` (ties: the lower index first).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Applies `f(row, out)` to every feature row, then scores with the head's energy.
fn reshape_and_score(
    head: &Head,
    features: &[f32],
    mut f: impl FnMut(&[f32], &mut [f32]),
) -> Vec<f32> {
    let d = head.dim();
    let mut out = vec![0.0f32; features.len()];
    for (row, o) in features.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
        f(row, o);
    }
    energies(head, &out)
}

/// Keeps the head for a detector with no statistics of its own.
fn fit_head(name: &str, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<Head> {
    Ok(require_head(name, head, train.dim())?.clone())
}

/// What ASH and SCALE share: a percentile `p`, the head kept by the fit, and the energy
/// of each feature row reshaped by a rule that sees the row and `k`, the number of top
/// activations `p` keeps.
#[derive(Debug, Clone)]
struct Shaping {
    name: &'static str,
    default_p: f64,
    p: f64,
    head: Option<Head>,
}

impl Shaping {
    fn new(name: &'static str, default_p: f64, p: f64) -> Self {
        Self {
            name,
            default_p,
            p,
            head: None,
        }
    }

    fn name(&self) -> String {
        percentile_param(self.name, self.p, self.default_p)
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        self.head = Some(fit_head(&self.name(), train, head)?);
        Ok(())
    }

    fn score(
        &self,
        features: Option<&[f32]>,
        reshape: impl Fn(&[f32], usize, &mut [f32]),
    ) -> Result<Vec<f32>> {
        let head = self.head.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (f, _) = check_features(self.name, features, head.dim())?;
        let k = kept(head.dim(), self.p);
        Ok(reshape_and_score(head, f, |row, out| reshape(row, k, out)))
    }
}

/// ASH-B: keep the top `(100 − p)%` activations of each pooled feature, set each to the
/// sum of all activations divided by their number, zero the rest, score with the energy.
///
/// Djurisic et al., "Extremely Simple Activation Shaping for Out-of-Distribution
/// Detection", ICLR 2023; OpenOOD `ash_postprocessor.py` (`ash_b`, `percentile = 90`,
/// applied to the pooled penultimate feature).
#[derive(Debug, Clone)]
pub struct Ash(Shaping);

impl Ash {
    /// ASH-B at percentile `p`.
    pub fn new(p: f64) -> Self {
        Self(Shaping::new("ash", 90.0, p))
    }
}

impl Detector for Ash {
    fn name(&self) -> String {
        self.0.name()
    }

    fn needs(&self) -> Needs {
        needs_head()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        self.0.fit(train, head)
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        self.0.score(features, |row, k, out| {
            let s1: f64 = row.iter().map(|&v| f64::from(v)).sum();
            let fill = (s1 / k as f64) as f32;
            for i in top_k(row, k) {
                out[i] = fill;
            }
        })
    }
}

/// SCALE: multiply the whole feature by `exp(s₁ / s₂)`, `s₁` the sum of all activations and
/// `s₂` the sum of the top `(100 − p)%`, and score with the energy.
///
/// Xu et al., "Scaling for Training Time and Post-hoc Out-of-distribution Detection
/// Enhancement", ICLR 2024; OpenOOD `scale_postprocessor.py` (`percentile = 85`).
#[derive(Debug, Clone)]
pub struct Scale(Shaping);

impl Scale {
    /// SCALE at percentile `p`.
    pub fn new(p: f64) -> Self {
        Self(Shaping::new("scale", 85.0, p))
    }
}

impl Detector for Scale {
    fn name(&self) -> String {
        self.0.name()
    }

    fn needs(&self) -> Needs {
        needs_head()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        self.0.fit(train, head)
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        self.0.score(features, |row, k, out| {
            let s1: f64 = row.iter().map(|&v| f64::from(v)).sum();
            let s2: f64 = top_k(row, k).iter().map(|&i| f64::from(row[i])).sum();
            let factor = (s1 / s2).exp();
            for (o, &v) in out.iter_mut().zip(row) {
                *o = (f64::from(v) * factor) as f32;
            }
        })
    }
}

/// DICE: zero the head's weights whose contribution `mean_train(z)_j · W_kj` is at or
/// below its `p`-th percentile, and score with the energy of the sparsified head.
///
/// Sun & Li, "DICE: Leveraging Sparsification for Out-of-Distribution Detection", ECCV
/// 2022; OpenOOD `dice_postprocessor.py` (`p = 90`).
#[derive(Debug, Clone)]
pub struct Dice {
    p: f64,
    fitted: Option<(Head, Vec<f32>, f64)>,
}

impl Dice {
    /// DICE at sparsity percentile `p`.
    pub fn new(p: f64) -> Self {
        Self { p, fitted: None }
    }
}

impl Detector for Dice {
    fn name(&self) -> String {
        percentile_param("dice", self.p, 90.0)
    }

    fn needs(&self) -> Needs {
        needs_head()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let name = self.name();
        let head = require_head(&name, head, train.dim())?.clone();
        let (means, _) = linalg::class_means(&name, train, 1, &|_, _| Ok(Some(0)))?;
        let mean = &means[0];
        let d = head.dim();
        // The contributions in f32, as OpenOOD computes them (mean_act * w, NumPy float32).
        let contrib: Vec<f32> = head
            .weight()
            .chunks_exact(d)
            .flat_map(|w| w.iter().zip(mean).map(|(&w, &m)| (m as f32) * w))
            .collect();
        let thresh = linalg::stream_percentile(self.p, |visit| {
            contrib.iter().for_each(|&c| visit(c));
            Ok(())
        })?
        .ok_or(EvalError::Empty { what: "dice head" })?;
        let masked: Vec<f32> = head
            .weight()
            .iter()
            .zip(&contrib)
            .map(|(&w, &c)| if f64::from(c) > thresh { w } else { 0.0 })
            .collect();
        self.fitted = Some((head, masked, thresh));
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.fitted
            .as_ref()
            .map(|(_, _, t)| vec![("threshold".into(), *t)])
            .unwrap_or_default()
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (head, masked, _) = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (f, _) = check_features("dice", features, head.dim())?;
        Ok(head
            .logits_with(f, masked)
            .chunks_exact(head.num_classes())
            .map(|r| logsumexp(r) as f32)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NumPy: `512 - int(np.round(512 * 90 / 100))` = 51; `np.round(2.5)` = 2, so
    /// `5 - round(5 * 50 / 100)` = 3.
    #[test]
    fn kept_counts_round_like_numpy() {
        assert_eq!(kept(512, 90.0), 51);
        assert_eq!(kept(512, 85.0), 77);
        assert_eq!(kept(5, 50.0), 3);
        assert_eq!(kept(7, 50.0), 3);
    }
}
