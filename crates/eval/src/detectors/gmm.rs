//! Per-class Gaussian mixtures on penultimate features (`gmm`), fitted by EM while
//! streaming the training set.
//!
//! The fitted model keeps, per class and component, a mean, the lower Cholesky factor of
//! the covariance, a log-determinant and a log-weight: `8·C·K·(D² + D + 2)` bytes for `C`
//! classes, `K` components and `D` feature dimensions. Fitting peaks at about twice that,
//! `16·C·K·(D² + D)` bytes (the factors of the current mixtures plus the `Σ r·x·xᵀ`
//! accumulators of the next ones), plus a few `f64` copies of one batch, whatever the
//! number of training images. That is 63 MB for CIFAR-10 (`C = 10, K = 3, D = 512`), but
//! 100 GB for ImageNet-1k with `D = 2048`: use `mds` there.

use faer::linalg::matmul::triangular::{self, BlockStructure};
use faer::linalg::triangular_solve::solve_lower_triangular_in_place;
use faer::{Accum, Mat, Par, Side};
use rayon::prelude::*;

use super::linalg::{self, check_features, label_of, validate_batch};
use super::logit::with_params;
use super::{Detector, FeatureBatch, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// Lloyd (hard k-means) iterations of the initialisation.
const LLOYD_ITERS: usize = 10;
/// EM stops once the mean log-likelihood changes by less than this between iterations.
const TOL: f64 = 1e-6;
/// Rows scored together (one triangular solve per class and component).
const SCORE_CHUNK: usize = 1024;

/// Per-class Gaussian mixtures on penultimate features, fitted by EM:
/// `score(z) = max_c log Σ_k π_ck · N(z | μ_ck, Σ_ck)`, the log-likelihood of the best
/// class's mixture (no class prior), returned as `f32`.
///
/// It generalises the class-conditional Gaussians of Lee et al., "A Simple Unified
/// Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS
/// 2018 (`mds`, which shares one covariance and scores by the Mahalanobis distance alone),
/// to `K` full-covariance Gaussians per class, as in hierarchical visual category modelling:
/// class-conditional Gaussian mixtures on a classifier's latent space (Li et al.,
/// "Hierarchical Visual Categories Modeling: A Joint Representation Learning and Density
/// Estimation Framework for Out-of-Distribution Detection", arXiv 2408.15580, which also
/// learns the representation; here the network is fixed and the mixtures are post-hoc).
///
/// # The fit, exactly
///
/// Every step streams the training set in its fixed order; all sums are in `f64` (features
/// widened from `f32`), and only the lower triangle of a covariance is formed and read.
///
/// 1. Classes: `C` from the head, else the training logits' width, else `1 + max label`.
///    `n_c` = number of training samples of class `c`. `n_c = 0` is
///    [`EvalError::EmptyClass`]; `0 < n_c < K` is [`EvalError::Unsupported`].
/// 2. Initial centres: for class `c`, the class's samples at in-class positions
///    `⌊j·n_c / K⌋` (integer division, 0-based, in stream order), `j = 0..K−1`.
/// 3. 10 Lloyd iterations, one pass each, all classes at once: each sample goes to the
///    nearest centre of its own class by squared Euclidean distance `Σ_d (x_d − c_d)²`
///    (ties to the lowest index); each centre becomes the mean of its members, and a
///    centre without members keeps its value. (When an iteration leaves every centre
///    bit-for-bit unchanged, the remaining iterations would repeat it, so the fit skips to
///    the 10th; the result is the same.)
/// 4. Initial mixtures from the hard assignment of the 10th iteration (the members whose
///    mean is the final centre): `n_k` members, `π_k = n_k / n_c`, `μ_k = Σ x / n_k`,
///    `Σ_k = (Σ x·xᵀ) / n_k − μ_k·μ_kᵀ + reg·I`. A component without members is
///    [`EvalError::Numerical`].
/// 5. EM, `t = 1..=iters`, one pass each. E-step with the current mixtures, for a sample
///    `x` of class `c`: `w_k = log π_ck + log N(x | μ_ck, Σ_ck)` with
///    `log N = −½·(D·ln 2π + ln|Σ| + ‖L⁻¹(x − μ)‖²)`, `Σ = L·Lᵀ` the Cholesky
///    factorisation, `ln|Σ| = 2·Σ_d ln L_dd`; `ℓ(x) = logsumexp_k w_k` (max-shifted:
///    `m + ln Σ_k exp(w_k − m)`, `m = max_k w_k`) and `r_k = exp(w_k − ℓ(x))`. M-step, from
///    the sums over the class's samples `N_k = Σ r_k`, `s_k = Σ r_k·x`,
///    `S_k = Σ r_k·x·xᵀ` (no `ε` is added to `N_k`, unlike scikit-learn): `π_k = N_k / n_c`,
///    `μ_k = s_k / N_k`, `Σ_k = S_k / N_k − μ_k·μ_kᵀ + reg·I` (one pass, not the two-pass
///    `Σ r (x − μ)(x − μ)ᵀ`). `N_k = 0` is [`EvalError::Numerical`]. The mean
///    log-likelihood of iteration `t` is `L_t = Σ_x ℓ(x) / n` over all `n` training
///    samples (each under its own class's mixture, i.e. the mixtures *before* this
///    M-step, scikit-learn's `lower_bound_`). After the M-step of iteration `t ≥ 2`, EM
///    stops if `|L_t − L_{t−1}| < 10⁻⁶` (scikit-learn's `tol` is 10⁻³). The mixtures kept
///    are those of the last M-step.
///
/// A covariance that is not positive definite (or not finite) when it is factorised
/// (the initial ones and after every M-step) is [`EvalError::Numerical`], naming the
/// class and component; a larger `reg` fixes it. [`Detector::fitted`] reports
/// `iterations` (EM iterations run; 0 with `iters = 0`, when the mixtures of step 4 are
/// kept) and `mean_log_likelihood` (the last `L_t`; absent with `iters = 0`).
///
/// Defaults: `components = 3`, `iters = 100`, `reg = 1e-6`.
#[derive(Debug, Clone)]
pub struct Gmm {
    components: usize,
    iters: usize,
    reg: f64,
    fitted: Option<GmmFit>,
}

#[derive(Debug, Clone)]
struct GmmFit {
    /// `[C][K]` mixtures.
    classes: Vec<Vec<Component>>,
    dim: usize,
    iterations: usize,
    mean_log_likelihood: Option<f64>,
}

/// One Gaussian of a class mixture.
#[derive(Debug, Clone)]
struct Component {
    /// `ln π_k`.
    log_weight: f64,
    mean: Vec<f64>,
    /// Lower Cholesky factor `L` of the covariance, `Σ = L·Lᵀ`.
    chol: Mat<f64>,
    /// `ln |Σ| = 2·Σ ln L_dd`.
    log_det: f64,
}

impl Gmm {
    /// Default number of components per class.
    pub const DEFAULT_COMPONENTS: usize = 3;
    /// Default maximum number of EM iterations.
    pub const DEFAULT_ITERS: usize = 100;
    /// Default ridge added to every covariance's diagonal.
    pub const DEFAULT_REG: f64 = 1e-6;

    /// `components` Gaussians per class, at most `iters` EM iterations, `reg` added to the
    /// diagonal of every covariance. Out-of-range values (`components = 0`, a negative or
    /// non-finite `reg`) are reported by [`Detector::fit`].
    pub fn new(components: usize, iters: usize, reg: f64) -> Self {
        Self {
            components,
            iters,
            reg,
            fitted: None,
        }
    }
}

impl Default for Gmm {
    fn default() -> Self {
        Self::new(
            Self::DEFAULT_COMPONENTS,
            Self::DEFAULT_ITERS,
            Self::DEFAULT_REG,
        )
    }
}

impl Detector for Gmm {
    fn name(&self) -> String {
        let mut params = Vec::new();
        if self.components != Self::DEFAULT_COMPONENTS {
            params.push(format!("components={}", self.components));
        }
        if self.iters != Self::DEFAULT_ITERS {
            params.push(format!("iters={}", self.iters));
        }
        if self.reg != Self::DEFAULT_REG {
            params.push(format!("reg={}", self.reg));
        }
        with_params("gmm", &params)
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            labels: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        self.fitted = None;
        let name = self.name();
        let kk = self.components;
        let unsupported = |reason: String| EvalError::Unsupported {
            detector: name.clone(),
            reason,
        };
        if kk == 0 {
            return Err(unsupported("`components` must be at least 1".into()));
        }
        if !(self.reg.is_finite() && self.reg >= 0.0) {
            return Err(unsupported(format!(
                "`reg` = {} must be a finite number >= 0",
                self.reg
            )));
        }
        let classes = linalg::num_classes(&name, train, head)?;
        let d = train.dim();

        // 1. Class sizes.
        let mut counts = vec![0u64; classes];
        train.for_each_batch(&mut |b| {
            for (c, rows) in group_rows(&name, &b, classes, d)?.iter().enumerate() {
                counts[c] += rows.len() as u64;
            }
            Ok(())
        })?;
        for (c, &n) in counts.iter().enumerate() {
            if n == 0 {
                return Err(EvalError::EmptyClass {
                    detector: name.clone(),
                    class: c,
                });
            }
            if n < kk as u64 {
                return Err(unsupported(format!(
                    "class {c} has {n} training samples, fewer than the {kk} mixture components \
                     (use gmm:components={n} or fewer)"
                )));
            }
        }

        // 2. Initial centres: in-class positions ⌊j·n_c / K⌋.
        let mut centres: Vec<Vec<Vec<f64>>> = vec![Vec::with_capacity(kk); classes];
        let mut seen = vec![0u64; classes];
        train.for_each_batch(&mut |b| {
            for (c, rows) in group_rows(&name, &b, classes, d)?.iter().enumerate() {
                for &i in rows {
                    let j = centres[c].len();
                    if j < kk && seen[c] == j as u64 * counts[c] / kk as u64 {
                        centres[c].push(
                            b.features[i * d..(i + 1) * d]
                                .iter()
                                .map(|&v| f64::from(v))
                                .collect(),
                        );
                    }
                    seen[c] += 1;
                }
            }
            Ok(())
        })?;
        if seen != counts || centres.iter().any(|c| c.len() != kk) {
            return Err(unsupported(
                "the training source served different samples on different passes; it must replay the same data in the same order".into(),
            ));
        }

        // 3–4. Lloyd iterations, then the mixtures of the last hard assignment.
        let mut it = 1;
        let mut model = loop {
            let last = it == LLOYD_ITERS;
            let accs = pass(&name, train, classes, kk, Step::Hard(&centres), last)?;
            if last {
                break mixtures(&name, accs, &counts, self.reg)?;
            }
            let updated: Vec<Vec<Vec<f64>>> = accs
                .iter()
                .zip(&centres)
                .map(|(acc, old)| {
                    acc.weight
                        .iter()
                        .zip(&acc.sum)
                        .zip(old)
                        .map(|((&w, s), o)| {
                            if w > 0.0 {
                                s.iter().map(|v| v / w).collect()
                            } else {
                                o.clone()
                            }
                        })
                        .collect()
                })
                .collect();
            // Unchanged centres give the same assignment again: skip to the last iteration.
            it = if updated == centres {
                LLOYD_ITERS
            } else {
                it + 1
            };
            centres = updated;
        };
        drop(centres);

        // 5. EM.
        let n_total = counts.iter().sum::<u64>() as f64;
        let mut iterations = 0;
        let mut mean_ll: Option<f64> = None;
        for t in 1..=self.iters {
            let accs = pass(&name, train, classes, kk, Step::Soft(&model), true)?;
            let ll = accs.iter().map(|a| a.ll).sum::<f64>() / n_total;
            // Free the old factors before the new ones are made (peak memory).
            drop(std::mem::take(&mut model));
            model = mixtures(&name, accs, &counts, self.reg)?;
            iterations = t;
            let prev = mean_ll.replace(ll);
            if prev.is_some_and(|p| (ll - p).abs() < TOL) {
                break;
            }
        }
        self.fitted = Some(GmmFit {
            classes: model,
            dim: d,
            iterations,
            mean_log_likelihood: mean_ll,
        });
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        let Some(f) = &self.fitted else {
            return Vec::new();
        };
        let mut out = vec![("iterations".to_string(), f.iterations as f64)];
        if let Some(ll) = f.mean_log_likelihood {
            out.push(("mean_log_likelihood".to_string(), ll));
        }
        out
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let fit = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let d = fit.dim;
        let (f, _) = check_features(&self.name(), features, d)?;
        let chunks: Vec<Vec<f32>> = f
            .par_chunks(SCORE_CHUNK * d)
            .map(|chunk| {
                let xt = Mat::from_fn(d, chunk.len() / d, |j, i| f64::from(chunk[i * d + j]));
                let mut best = vec![f64::NEG_INFINITY; xt.ncols()];
                for comps in &fit.classes {
                    let w = weighted_log_probs(&xt, comps);
                    for (b, row) in best.iter_mut().zip(w.chunks_exact(comps.len())) {
                        *b = b.max(log_sum_exp(row));
                    }
                }
                best.into_iter().map(|v| v as f32).collect()
            })
            .collect();
        Ok(chunks.concat())
    }
}

/// How a pass assigns samples to the components of their class.
#[derive(Clone, Copy)]
enum Step<'a> {
    /// Lloyd: all weight to the nearest centre, `[C][K][D]`.
    Hard(&'a [Vec<Vec<f64>>]),
    /// EM: the responsibilities under the current mixtures, `[C][K]`.
    Soft(&'a [Vec<Component>]),
}

/// Sums of one class over a pass: `N_k = Σ r_k`, `s_k = Σ r_k·x`, the lower triangle of
/// `S_k = Σ r_k·x·xᵀ` (when asked for) and `Σ ℓ(x)` (EM only).
struct Acc {
    weight: Vec<f64>,
    sum: Vec<Vec<f64>>,
    gram: Vec<Mat<f64>>,
    ll: f64,
}

impl Acc {
    fn new(k: usize, d: usize, gram: bool) -> Self {
        Self {
            weight: vec![0.0; k],
            sum: vec![vec![0.0; d]; k],
            gram: if gram {
                (0..k).map(|_| Mat::zeros(d, d)).collect()
            } else {
                Vec::new()
            },
            ll: 0.0,
        }
    }

    /// Adds the samples `xt` (`[D, m]`, one per column) with weights `resp` (row-major
    /// `[m, K]`). Zero weights are skipped.
    fn add(&mut self, xt: &Mat<f64>, resp: &[f64]) {
        let (d, m) = (xt.nrows(), xt.ncols());
        let kk = self.weight.len();
        for k in 0..kk {
            let members: Vec<usize> = (0..m).filter(|&i| resp[i * kk + k] != 0.0).collect();
            if members.is_empty() {
                continue;
            }
            for &i in &members {
                let r = resp[i * kk + k];
                self.weight[k] += r;
                for (s, x) in self.sum[k].iter_mut().zip(xt.col_as_slice(i)) {
                    *s += r * x;
                }
            }
            if let Some(gram) = self.gram.get_mut(k) {
                let y = Mat::from_fn(d, members.len(), |j, t| {
                    resp[members[t] * kk + k] * xt[(j, members[t])]
                });
                let picked;
                let x = if members.len() == m {
                    xt
                } else {
                    picked = Mat::from_fn(d, members.len(), |j, t| xt[(j, members[t])]);
                    &picked
                };
                triangular::matmul(
                    gram.as_mut(),
                    BlockStructure::TriangularLower,
                    Accum::Add,
                    y.as_ref(),
                    BlockStructure::Rectangular,
                    x.transpose(),
                    BlockStructure::Rectangular,
                    1.0,
                    Par::Seq,
                );
            }
        }
    }

    /// The class's mixture from the sums: `π_k = N_k / n_c`, `μ_k = s_k / N_k`,
    /// `Σ_k = S_k / N_k − μ_k·μ_kᵀ + reg·I`, factorised. Each accumulator is turned into
    /// its covariance in place and dropped once factorised.
    fn into_mixture(self, name: &str, class: usize, n_c: f64, reg: f64) -> Result<Vec<Component>> {
        let mut out = Vec::with_capacity(self.weight.len());
        for (k, ((n_k, sum), mut cov)) in self
            .weight
            .into_iter()
            .zip(self.sum)
            .zip(self.gram)
            .enumerate()
        {
            if n_k <= 0.0 {
                return Err(EvalError::Numerical {
                    detector: name.to_string(),
                    message: format!(
                        "component {k} of class {class} is empty (no training sample is assigned to it); \
                         use fewer components"
                    ),
                });
            }
            let d = sum.len();
            let mean: Vec<f64> = sum.iter().map(|s| s / n_k).collect();
            for j in 0..d {
                for i in j..d {
                    cov[(i, j)] = cov[(i, j)] / n_k - mean[i] * mean[j];
                }
                cov[(j, j)] += reg;
            }
            let chol = cholesky(name, class, k, &cov)?;
            drop(cov);
            let log_det = 2.0 * (0..d).map(|i| chol[(i, i)].ln()).sum::<f64>();
            out.push(Component {
                log_weight: (n_k / n_c).ln(),
                mean,
                chol,
                log_det,
            });
        }
        Ok(out)
    }
}

/// The mixtures of all classes from a pass's sums (classes in parallel; the first failing
/// class, in class order, is reported).
fn mixtures(name: &str, accs: Vec<Acc>, counts: &[u64], reg: f64) -> Result<Vec<Vec<Component>>> {
    let per_class: Vec<Result<Vec<Component>>> = accs
        .into_par_iter()
        .zip(counts.par_iter())
        .enumerate()
        .map(|(c, (acc, &n))| acc.into_mixture(name, c, n as f64, reg))
        .collect();
    per_class.into_iter().collect()
}

/// Lower Cholesky factor of a covariance (only its lower triangle is read).
fn cholesky(name: &str, class: usize, k: usize, cov: &Mat<f64>) -> Result<Mat<f64>> {
    let fail = |why: String| EvalError::Numerical {
        detector: name.to_string(),
        message: format!(
            "the covariance of component {k} of class {class} is not positive definite ({why}); \
             use a larger `reg` (e.g. gmm:reg=1e-3)"
        ),
    };
    let d = cov.nrows();
    if (0..d).any(|j| (j..d).any(|i| !cov[(i, j)].is_finite())) {
        return Err(fail("it has non-finite entries".into()));
    }
    cov.llt(Side::Lower)
        .map(|llt| llt.L().to_owned())
        .map_err(|e| fail(format!("Cholesky factorisation failed: {e:?}")))
}

/// Row indices of a training batch, grouped by class (after checking the batch).
fn group_rows(
    name: &str,
    b: &FeatureBatch<'_>,
    classes: usize,
    d: usize,
) -> Result<Vec<Vec<usize>>> {
    validate_batch(b)?;
    if b.dim != d {
        return Err(EvalError::LengthMismatch {
            what: "training batch feature width vs the source's dimension",
            left: b.dim,
            right: d,
        });
    }
    let mut groups = vec![Vec::new(); classes];
    for i in 0..b.num_rows() {
        groups[label_of(name, b, i, classes)?].push(i);
    }
    Ok(groups)
}

/// One streaming pass: every sample's weights for the components of its class (`step`),
/// summed per class (classes of a batch in parallel; each class's sums stay in stream
/// order, so the result does not depend on the thread count).
fn pass(
    name: &str,
    train: &mut dyn FeatureSource,
    classes: usize,
    k: usize,
    step: Step<'_>,
    gram: bool,
) -> Result<Vec<Acc>> {
    let d = train.dim();
    let mut accs: Vec<Acc> = (0..classes).map(|_| Acc::new(k, d, gram)).collect();
    train.for_each_batch(&mut |b| {
        let groups = group_rows(name, &b, classes, d)?;
        accs.par_iter_mut()
            .zip(groups.par_iter())
            .enumerate()
            .for_each(|(c, (acc, rows))| {
                if rows.is_empty() {
                    return;
                }
                let xt = Mat::from_fn(d, rows.len(), |j, i| f64::from(b.features[rows[i] * d + j]));
                let resp = match step {
                    Step::Hard(centres) => nearest(&xt, &centres[c]),
                    Step::Soft(model) => {
                        let mut w = weighted_log_probs(&xt, &model[c]);
                        for row in w.chunks_exact_mut(k) {
                            let l = log_sum_exp(row);
                            acc.ll += l;
                            row.iter_mut().for_each(|v| *v = (*v - l).exp());
                        }
                        w
                    }
                };
                acc.add(&xt, &resp);
            });
        Ok(())
    })?;
    Ok(accs)
}

/// One-hot weights (row-major `[m, K]`) of the nearest centre of every column of `xt`
/// (squared Euclidean distance, ties to the lowest index).
fn nearest(xt: &Mat<f64>, centres: &[Vec<f64>]) -> Vec<f64> {
    let kk = centres.len();
    let mut resp = vec![0.0; xt.ncols() * kk];
    for i in 0..xt.ncols() {
        let x = xt.col_as_slice(i);
        let (mut best, mut best_dist) = (0, f64::INFINITY);
        for (k, c) in centres.iter().enumerate() {
            let dist: f64 = x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
            if dist < best_dist {
                (best, best_dist) = (k, dist);
            }
        }
        resp[i * kk + best] = 1.0;
    }
    resp
}

/// `log π_k + log N(x | μ_k, Σ_k)` for every column `x` of `xt` (`[D, m]`) and component,
/// row-major `[m, K]`, with `‖L⁻¹(x − μ)‖²` from a triangular solve.
fn weighted_log_probs(xt: &Mat<f64>, comps: &[Component]) -> Vec<f64> {
    let (d, m) = (xt.nrows(), xt.ncols());
    let kk = comps.len();
    let d_log_2pi = d as f64 * (2.0 * std::f64::consts::PI).ln();
    let mut out = vec![0.0; m * kk];
    let mut diff = Mat::<f64>::zeros(d, m);
    for (k, comp) in comps.iter().enumerate() {
        for i in 0..m {
            for ((t, x), mu) in diff
                .col_as_slice_mut(i)
                .iter_mut()
                .zip(xt.col_as_slice(i))
                .zip(&comp.mean)
            {
                *t = x - mu;
            }
        }
        solve_lower_triangular_in_place(comp.chol.as_ref(), diff.as_mut(), Par::Seq);
        for i in 0..m {
            let q: f64 = diff.col_as_slice(i).iter().map(|v| v * v).sum();
            out[i * kk + k] = comp.log_weight - 0.5 * (d_log_2pi + comp.log_det + q);
        }
    }
    out
}

/// `ln Σ exp(w)`, shifted by the maximum.
fn log_sum_exp(w: &[f64]) -> f64 {
    let m = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + w.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{detector_from_name, Features};

    /// A 64-bit LCG (Knuth's MMIX constants): uniform draws in `[0, 1)`.
    struct Lcg(u64);

    impl Lcg {
        fn uniform(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Roughly normal noise with standard deviation `s` (sum of four uniforms).
        fn noise(&mut self, s: f64) -> f32 {
            let u: f64 = (0..4).map(|_| self.uniform()).sum::<f64>() - 2.0;
            (u * s * 3f64.sqrt()) as f32
        }
    }

    fn train(features: Vec<f32>, labels: Vec<usize>, batch: usize) -> Features {
        Features::new(features, 2)
            .unwrap()
            .with_labels(labels)
            .unwrap()
            .with_batch_size(batch)
    }

    /// Two classes, two blobs each, 60 points per blob; in-class order: all of blob A, then
    /// all of blob B; the classes alternate in the stream.
    const BLOBS: [[(f32, f32); 2]; 2] = [[(0.0, 0.0), (10.0, 0.0)], [(0.0, 10.0), (10.0, 10.0)]];

    fn blobs(seed: u64) -> Features {
        let mut rng = Lcg(seed);
        let (mut f, mut l) = (Vec::new(), Vec::new());
        for i in 0..120 {
            for (c, blob) in BLOBS.iter().enumerate() {
                let (x, y) = blob[i / 60];
                f.extend([x + rng.noise(0.3), y + rng.noise(0.3)]);
                l.push(c);
            }
        }
        train(f, l, 17)
    }

    /// `K = 1`: each class is one Gaussian with its own (biased) covariance.
    ///
    /// Class 0: (0,0), (2,0), (0,2), (2,2): μ = (1,1), Σ = I.
    /// Class 1: (4,4), (6,6), (4,5), (6,5): μ = (5,5), Σ = [[1, ½], [½, ½]], |Σ| = ¼,
    /// Σ⁻¹ = [[2, −2], [−2, 4]].
    /// log N = −ln 2π − ½ ln|Σ| − ½ q, ln 2π = 1.8378770664093453, ln 2 = 0.6931471805599453:
    /// - (1,1): class 0 q = 0 → −1.8378770664 (class 1: q = 32 → −17.14).
    /// - (5,5): class 1 q = 0 → −ln 2π + ln 2 = −1.1447298858 (class 0: q = 32).
    /// - (5,6): class 1 d = (0,1), q = 4 → −3.1447298858 (class 0: q = 41).
    /// - (3,3): class 1 d = (−2,−2), q = 8 − 16 + 16 = 8 → −5.1447298858; class 0 q = 8
    ///   → −5.8378770664; the max is class 1's (a shared covariance would tie them).
    ///
    /// Every training point has q = 2, so the mean log-likelihood is
    /// ½(−ln 2π − 1) + ½(−ln 2π + ln 2 − 1) = −2.4913034761.
    #[test]
    fn one_component_is_the_class_conditional_gaussian() {
        let c0 = [(0., 0.), (2., 0.), (0., 2.), (2., 2.)];
        let c1 = [(4., 4.), (6., 6.), (4., 5.), (6., 5.)];
        let (mut f, mut l) = (Vec::new(), Vec::new());
        for (a, b) in c0.iter().zip(&c1) {
            f.extend([a.0, a.1, b.0, b.1]);
            l.extend([0, 1]);
        }
        let mut gmm = Gmm::new(1, 100, 1e-12);
        gmm.fit(&mut train(f, l, 3), None).unwrap();
        let s = gmm
            .score(&[], 2, Some(&[1., 1., 5., 5., 5., 6., 3., 3.]))
            .unwrap();
        let (ln2pi, ln2) = (1.837_877_066_409_345_3, std::f64::consts::LN_2);
        let want = [-ln2pi, -ln2pi + ln2, -ln2pi + ln2 - 2.0, -ln2pi + ln2 - 4.0];
        for (g, w) in s.iter().zip(want) {
            assert!((f64::from(*g) - w).abs() < 1e-5, "{s:?} vs {want:?}");
        }
        // K = 1: the responsibilities are all 1, EM reproduces the initial fit and stops
        // after the second iteration (|ΔL| = 0).
        let fitted = gmm.fitted();
        assert_eq!(fitted[0], ("iterations".to_string(), 2.0));
        assert_eq!(fitted[1].0, "mean_log_likelihood");
        assert!(
            (fitted[1].1 - (-ln2pi + 0.5 * ln2 - 1.0)).abs() < 1e-9,
            "{fitted:?}"
        );
    }

    #[test]
    fn em_recovers_blobs() {
        let mut gmm = Gmm::new(2, 100, 1e-6);
        gmm.fit(&mut blobs(7), None).unwrap();
        let fit = gmm.fitted.as_ref().unwrap();
        for (c, blob) in BLOBS.iter().enumerate() {
            let mut comps: Vec<&Component> = fit.classes[c].iter().collect();
            comps.sort_by(|a, b| a.mean[0].total_cmp(&b.mean[0]));
            for (comp, &(x, y)) in comps.iter().zip(blob) {
                let err = (comp.mean[0] - f64::from(x)).hypot(comp.mean[1] - f64::from(y));
                assert!(err < 0.2, "class {c}: {:?} vs ({x}, {y})", comp.mean);
                assert!((comp.log_weight.exp() - 0.5).abs() < 1e-9);
            }
        }
        let (iters, ll) = (gmm.fitted()[0].1, gmm.fitted()[1].1);
        assert!(
            (1.0..100.0).contains(&iters) && ll.is_finite(),
            "{iters} {ll}"
        );
        // Blob centres, then points between the classes (and far away).
        let s = gmm
            .score(
                &[],
                2,
                Some(&[0., 0., 10., 0., 0., 10., 10., 10., 5., 5., 0., 5., 50., 50.]),
            )
            .unwrap();
        let worst_centre = s[..4].iter().copied().fold(f32::INFINITY, f32::min);
        assert!(
            s[4] < worst_centre && s[5] < worst_centre && s[6] < s[4],
            "{s:?}"
        );
    }

    #[test]
    fn fits_are_deterministic() {
        let score = |gmm: &Gmm| {
            gmm.score(&[], 2, Some(&[0.3, 0.1, 5., 5., 9.8, 10.2, -3., 4.]))
                .unwrap()
        };
        let mut a = Gmm::default();
        a.fit(&mut blobs(11), None).unwrap();
        let mut b = Gmm::default();
        b.fit(&mut blobs(11), None).unwrap();
        assert_eq!(score(&a), score(&b));
        assert_eq!(a.fitted(), b.fitted());
        let first = score(&a);
        a.fit(&mut blobs(11), None).unwrap();
        assert_eq!(score(&a), first);
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(Gmm::default().name(), "gmm");
        assert_eq!(Gmm::new(2, 100, 1e-6).name(), "gmm:components=2");
        for spec in [
            "gmm",
            "gmm:components=2",
            "gmm:iters=50",
            "gmm:reg=0.001",
            "gmm:components=4,iters=7,reg=0",
        ] {
            assert_eq!(detector_from_name(spec).unwrap().name(), spec);
        }
        assert_eq!(
            detector_from_name("gmm:reg=1e-3").unwrap().name(),
            "gmm:reg=0.001"
        );
        let needs = Gmm::default().needs();
        assert!(needs.features && needs.fit && needs.labels && !needs.head);
    }

    #[test]
    fn bad_inputs_are_errors() {
        // Not fitted.
        let gmm = Gmm::default();
        assert!(matches!(
            gmm.score(&[], 2, Some(&[0., 0.])),
            Err(EvalError::NotFitted { .. })
        ));

        // Too few samples in class 1 for three components.
        let mut gmm = Gmm::default();
        let err = gmm.fit(
            &mut train(
                vec![0., 0., 1., 0., 0., 1., 5., 5., 6., 5.],
                vec![0, 0, 0, 1, 1],
                2,
            ),
            None,
        );
        let msg = err.unwrap_err().to_string();
        assert!(
            msg.contains("class 1 has 2 training samples, fewer than the 3"),
            "{msg}"
        );
        assert!(matches!(
            gmm.score(&[], 2, Some(&[0., 0.])),
            Err(EvalError::NotFitted { .. })
        ));

        // An empty class.
        let err = Gmm::new(1, 5, 1e-6).fit(
            &mut train(vec![0., 0., 1., 1., 2., 2., 3., 3.], vec![0, 0, 2, 2], 4),
            None,
        );
        assert!(
            matches!(err, Err(EvalError::EmptyClass { class: 1, .. })),
            "{err:?}"
        );

        // Missing labels: no labels or logits at all, and logits without labels.
        let no_labels = Features::new(vec![0.; 8], 2).unwrap();
        let err = Gmm::default()
            .fit(&mut no_labels.clone(), None)
            .unwrap_err();
        assert!(matches!(err, EvalError::Unsupported { .. }), "{err}");
        let err = Gmm::default()
            .fit(&mut no_labels.with_logits(vec![0.; 8], 2).unwrap(), None)
            .unwrap_err();
        assert!(err.to_string().contains("class labels"), "{err}");

        // Identical points: all go to centre 0 (ties), components 1 and 2 stay empty.
        let err = Gmm::default()
            .fit(&mut train(vec![1.; 6], vec![0; 3], 2), None)
            .unwrap_err();
        assert!(
            matches!(err, EvalError::Numerical { .. })
                && err.to_string().contains("component 1 of class 0"),
            "{err}"
        );

        // A singular covariance (constant second coordinate) fails without `reg`.
        let flat = || train(vec![0., 5., 1., 5., 2., 5.], vec![0; 3], 2);
        let err = Gmm::new(1, 10, 0.0).fit(&mut flat(), None).unwrap_err();
        assert!(
            err.to_string().contains("class 0 is not positive definite")
                && err.to_string().contains("reg"),
            "{err}"
        );
        let mut gmm = Gmm::new(1, 10, 1e-6);
        gmm.fit(&mut flat(), None).unwrap();

        // Wrong feature width, missing features.
        assert!(matches!(
            gmm.score(&[], 1, Some(&[0., 0., 0.])),
            Err(EvalError::Shape { width: 2, .. })
        ));
        assert!(matches!(
            gmm.score(&[], 1, None),
            Err(EvalError::MissingFeatures { .. })
        ));
        assert!(gmm.score(&[], 1, Some(&[])).unwrap().is_empty());

        // Out-of-range parameters.
        assert!(matches!(
            Gmm::new(0, 10, 1e-6).fit(&mut flat(), None),
            Err(EvalError::Unsupported { .. })
        ));
        assert!(matches!(
            Gmm::new(1, 10, -1.0).fit(&mut flat(), None),
            Err(EvalError::Unsupported { .. })
        ));
    }
}
