//! Detectors that read nothing but the logits: MSP, MaxLogit, Energy, GEN, temperature
//! scaling and ProtoGCD's three prototype scores.

use super::{validate_rows, Detector, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// Applies `f` to each validated logit row.
pub(crate) fn score_rows(
    logits: &[f32],
    num_classes: usize,
    f: impl Fn(&[f32]) -> f32,
) -> Result<Vec<f32>> {
    validate_rows("logits", logits, num_classes)?;
    Ok(logits.chunks_exact(num_classes).map(f).collect())
}

/// Largest value of a non-empty row.
pub(crate) fn row_max(row: &[f32]) -> f32 {
    row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Maximum softmax probability (MSP), the baseline OOD score.
///
/// `score = max_k exp(z_k) / Σ_j exp(z_j) = 1 / Σ_j exp(z_j − max z)`, computed in `f64`
/// after subtracting the row maximum, so it never overflows. Hendrycks & Gimpel, "A
/// Baseline for Detecting Misclassified and Out-of-Distribution Examples in Neural
/// Networks", ICLR 2017; OpenOOD `openood/postprocessors/base_postprocessor.py`.
///
/// Note: for very confident rows the `f32` result rounds to exactly 1.0, so MSP produces
/// ties that MaxLogit and Energy do not.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Msp;

impl Detector for Msp {
    fn name(&self) -> String {
        "msp".to_string()
    }

    fn score(
        &self,
        logits: &[f32],
        num_classes: usize,
        _features: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        score_rows(logits, num_classes, |row| {
            let max = row_max(row);
            let sum: f64 = row.iter().map(|&z| f64::from(z - max).exp()).sum();
            (1.0 / sum) as f32
        })
    }
}

/// Maximum logit (MaxLogit / MLS): `score = max_k z_k`.
///
/// Hendrycks et al., "Scaling Out-of-Distribution Detection for Real-World Settings", ICML
/// 2022; OpenOOD `openood/postprocessors/mls_postprocessor.py`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MaxLogit;

impl Detector for MaxLogit {
    fn name(&self) -> String {
        "maxlogit".to_string()
    }

    fn score(
        &self,
        logits: &[f32],
        num_classes: usize,
        _features: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        score_rows(logits, num_classes, row_max)
    }
}

/// Energy score (negative free energy): `score = T · logsumexp(z / T)`.
///
/// Computed as `m + T · ln Σ_j exp((z_j − m) / T)` with `m = max z`, in `f64`, so large
/// logits do not overflow. Liu et al., "Energy-based Out-of-distribution Detection",
/// NeurIPS 2020 (the paper's energy is `E(x) = −T · logsumexp(z / T)`, and it scores with
/// `−E`); OpenOOD `openood/postprocessors/ebo_postprocessor.py`
/// (`temperature * torch.logsumexp(output / temperature, dim=1)`). The paper and OpenOOD
/// use `T = 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Energy {
    /// Temperature `T > 0` (default 1).
    pub temperature: f32,
}

impl Energy {
    /// An energy detector with temperature `temperature`.
    ///
    /// # Errors
    /// [`EvalError::InvalidDetectorParameter`] unless `temperature` is finite and `> 0`.
    pub fn new(temperature: f32) -> Result<Self> {
        let energy = Self { temperature };
        energy.check()?;
        Ok(energy)
    }

    pub(crate) fn check(&self) -> Result<()> {
        if self.temperature.is_finite() && self.temperature > 0.0 {
            Ok(())
        } else {
            Err(EvalError::InvalidDetectorParameter {
                detector: self.name(),
                message: format!(
                    "temperature T = {} must be a finite number > 0",
                    self.temperature
                ),
            })
        }
    }
}

impl Default for Energy {
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl Detector for Energy {
    fn name(&self) -> String {
        if self.temperature == 1.0 {
            "energy".to_string()
        } else {
            format!("energy:T={}", self.temperature)
        }
    }

    fn score(
        &self,
        logits: &[f32],
        num_classes: usize,
        _features: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        self.check()?;
        let t = f64::from(self.temperature);
        score_rows(logits, num_classes, |row| {
            let max = f64::from(row_max(row));
            let sum: f64 = row.iter().map(|&z| ((f64::from(z) - max) / t).exp()).sum();
            (max + t * sum.ln()) as f32
        })
    }
}

/// The two largest softmax probabilities of a row, computed in `f64` after subtracting the
/// row maximum.
fn top2_probs(row: &[f32]) -> (f64, f64) {
    let max = row_max(row);
    let e: Vec<f64> = row.iter().map(|&z| f64::from(z - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    let (mut p1, mut p2) = (f64::NEG_INFINITY, 0.0f64);
    for &v in &e {
        if v > p1 {
            p2 = p1.max(0.0);
            p1 = v;
        } else if v > p2 {
            p2 = v;
        }
    }
    (p1 / sum, p2 / sum)
}

/// Cross-entropy from the uniform distribution to the softmax, `−(1/K)·Σ_k log p_k`: large
/// for peaked (confident) predictions, `log K` for a flat one. Outlier Exposure trains
/// outliers towards the uniform distribution with this term; ProtoGCD scores OOD samples
/// with it (Ma et al., TPAMI 2025, the `ce` score of its OOD evaluation).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CeUniform;

impl Detector for CeUniform {
    fn name(&self) -> String {
        "ce_uniform".to_string()
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        score_rows(logits, num_classes, |row| {
            let max = f64::from(row_max(row));
            let lse = max
                + row
                    .iter()
                    .map(|&z| (f64::from(z) - max).exp())
                    .sum::<f64>()
                    .ln();
            let mean_logp = row.iter().map(|&z| f64::from(z) - lse).sum::<f64>() / row.len() as f64;
            (-mean_logp) as f32
        })
    }
}

/// Ratio of the two largest softmax probabilities, `p₁ / (p₂ + 10⁻⁶)` (ProtoGCD's `ratio`
/// score; `p₂ = 0` for a single class).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbRatio;

impl Detector for ProbRatio {
    fn name(&self) -> String {
        "ratio".to_string()
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        score_rows(logits, num_classes, |row| {
            let (p1, p2) = top2_probs(row);
            (p1 / (p2 + 1e-6)) as f32
        })
    }
}

/// Margin between the two largest softmax probabilities, `p₁ − p₂` (ProtoGCD's `margin`
/// score).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProbMargin;

impl Detector for ProbMargin {
    fn name(&self) -> String {
        "margin".to_string()
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        score_rows(logits, num_classes, |row| {
            let (p1, p2) = top2_probs(row);
            (p1 - p2) as f32
        })
    }
}

/// Softmax probabilities of a row in `f64` (max-subtracted).
pub(crate) fn softmax(row: &[f32], temperature: f64) -> Vec<f64> {
    let max = f64::from(row_max(row));
    let e: Vec<f64> = row
        .iter()
        .map(|&z| ((f64::from(z) - max) / temperature).exp())
        .collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

/// GEN, the generalized-entropy score: `−Σ_{top M} p_k^γ (1 − p_k)^γ` over the `M` largest
/// softmax probabilities (all of them when `M >= K`).
///
/// Liu, Lochman & Zach, "GEN: Pushing the Limits of Softmax-Based Out-of-Distribution
/// Detection", CVPR 2023; OpenOOD `gen_postprocessor.py` (`gamma = 0.1`, `M = 100`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gen {
    /// Exponent `γ > 0` (default 0.1).
    pub gamma: f64,
    /// Number of largest probabilities summed (default 100).
    pub m: usize,
}

impl Gen {
    /// A GEN detector.
    pub fn new(gamma: f64, m: usize) -> Self {
        Self { gamma, m: m.max(1) }
    }
}

impl Default for Gen {
    fn default() -> Self {
        Self::new(0.1, 100)
    }
}

impl Detector for Gen {
    fn name(&self) -> String {
        let mut params = Vec::new();
        if self.gamma != 0.1 {
            params.push(format!("gamma={}", self.gamma));
        }
        if self.m != 100 {
            params.push(format!("M={}", self.m));
        }
        with_params("gen", &params)
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        let g = self.gamma;
        score_rows(logits, num_classes, |row| {
            let mut p = softmax(row, 1.0);
            p.sort_by(|a, b| b.total_cmp(a));
            let s: f64 = p
                .iter()
                .take(self.m)
                .map(|&q| q.powf(g) * (1.0 - q).powf(g))
                .sum();
            (-s) as f32
        })
    }
}

/// `name` or `name:k=v,…`.
pub(crate) fn with_params(name: &str, params: &[String]) -> String {
    if params.is_empty() {
        name.to_string()
    } else {
        format!("{name}:{}", params.join(","))
    }
}

/// Temperature scaling: MSP of `z / T` with `T` fitted on the ID training set by
/// minimising the negative log-likelihood of the labels.
///
/// Guo et al., "On Calibration of Modern Neural Networks", ICML 2017; OpenOOD
/// `temperature_scaling_postprocessor.py` (which fits `T` by L-BFGS; the NLL is convex in
/// `1/T`, so we find its minimum exactly, by bisection on the derivative
/// `mean(E_p[z] − z_y)` over `1/T ∈ [0.01, 100]`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TempScale {
    temperature: Option<f64>,
}

impl TempScale {
    /// The fitted temperature (`None` before [`Detector::fit`]).
    pub fn temperature(&self) -> Option<f64> {
        self.temperature
    }
}

impl Detector for TempScale {
    fn name(&self) -> String {
        "temp_scale".to_string()
    }

    fn needs(&self) -> Needs {
        Needs {
            fit: true,
            labels: true,
            train_logits: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, _head: Option<&Head>) -> Result<()> {
        // d/dβ mean NLL(β) = mean over rows of (Σ_k softmax(βz)_k z_k − z_y).
        let mut grad = |beta: f64| -> Result<f64> {
            let (mut sum, mut n) = (0.0f64, 0u64);
            train.for_each_batch(&mut |b| {
                let (logits, k, labels) = match (b.logits, b.labels) {
                    (Some(l), Some(y)) => (l, b.num_classes, y),
                    _ => {
                        return Err(EvalError::Unsupported {
                            detector: "temp_scale".into(),
                            reason: "it needs the logits and labels of the training set".into(),
                        })
                    }
                };
                validate_rows("training logits", logits, k)?;
                for (row, &y) in logits.chunks_exact(k).zip(labels) {
                    let p = softmax(row, 1.0 / beta);
                    let ez: f64 = p.iter().zip(row).map(|(p, &z)| p * f64::from(z)).sum();
                    sum += ez - f64::from(*row.get(y).unwrap_or(&0.0));
                    n += 1;
                }
                Ok(())
            })?;
            if n == 0 {
                return Err(EvalError::Empty {
                    what: "temp_scale training set",
                });
            }
            Ok(sum / n as f64)
        };
        let (mut lo, mut hi) = (0.01f64.ln(), 100f64.ln());
        let beta = if grad(lo.exp())? >= 0.0 {
            lo.exp()
        } else if grad(hi.exp())? <= 0.0 {
            hi.exp()
        } else {
            for _ in 0..60 {
                let mid = 0.5 * (lo + hi);
                if grad(mid.exp())? < 0.0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            (0.5 * (lo + hi)).exp()
        };
        self.temperature = Some(1.0 / beta);
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.temperature
            .map(|t| vec![("T".to_string(), t)])
            .unwrap_or_default()
    }

    fn score(&self, logits: &[f32], num_classes: usize, _: Option<&[f32]>) -> Result<Vec<f32>> {
        let t = self.temperature.ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        score_rows(logits, num_classes, |row| {
            softmax(row, t).into_iter().fold(0.0f64, f64::max) as f32
        })
    }
}

/// `logsumexp` of a row, in `f64` (max-subtracted): the energy score at `T = 1`.
pub(crate) fn logsumexp(row: &[f32]) -> f64 {
    let max = f64::from(row_max(row));
    max + row
        .iter()
        .map(|&z| (f64::from(z) - max).exp())
        .sum::<f64>()
        .ln()
}
