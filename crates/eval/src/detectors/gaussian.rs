//! Gaussian feature-space detectors: class-conditional Gaussians with a shared covariance
//! (`mds`), their relative version (`rmds`), and one Gaussian over all ID features with
//! Ledoit-Wolf shrinkage (`mvg`, optionally on the least-variance principal components).
//!
//! All three stream the training set twice (means, then scatter matrices), accumulate in
//! `f64`, and keep `O(K·D + D²)` numbers: peak memory `8·(K·D + 3·D²)` bytes plus one
//! batch, whatever the number of training images.

use faer::Mat;

use super::linalg::{self, add_gram, centered, check_features, class_means, label_of, pinvh};
use super::logit::with_params;
use super::{Detector, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// What the Mahalanobis detectors keep after a fit.
#[derive(Debug, Clone)]
pub(super) struct ClassGaussians {
    /// Class means, `[K][D]`.
    pub(super) means: Vec<Vec<f64>>,
    /// Shared precision (pseudo-inverse of the pooled within-class covariance).
    pub(super) precision: Mat<f64>,
    /// `P · μ_c` per class.
    pub(super) p_mu: Vec<Vec<f64>>,
    /// `μ_cᵀ P μ_c` per class.
    mu_p_mu: Vec<f64>,
}

/// Mean and covariance of rows: `cov = Σ (x − m)(x − m)ᵀ / n` with `m` the mean of the
/// (already shifted) rows, scikit-learn's `EmpiricalCovariance(assume_centered=False)`.
struct Scatter {
    gram: Mat<f64>,
    sum: Vec<f64>,
    n: u64,
}

impl Scatter {
    fn new(d: usize) -> Self {
        Self {
            gram: Mat::zeros(d, d),
            sum: vec![0.0; d],
            n: 0,
        }
    }

    fn add(&mut self, x: &Mat<f64>) {
        add_gram(&mut self.gram, x.as_ref());
        for i in 0..x.nrows() {
            for j in 0..x.ncols() {
                self.sum[j] += x[(i, j)];
            }
        }
        self.n += x.nrows() as u64;
    }

    fn covariance(&self) -> Mat<f64> {
        let n = self.n.max(1) as f64;
        let d = self.sum.len();
        Mat::from_fn(d, d, |i, j| {
            self.gram[(i, j)] / n - (self.sum[i] / n) * (self.sum[j] / n)
        })
    }
}

impl ClassGaussians {
    fn new(detector: &str, means: Vec<Vec<f64>>, cov: &Mat<f64>) -> Result<Self> {
        let precision = pinvh(detector, cov)?;
        let d = cov.nrows();
        let p_mu: Vec<Vec<f64>> = means
            .iter()
            .map(|m| {
                (0..d)
                    .map(|i| (0..d).map(|j| precision[(i, j)] * m[j]).sum())
                    .collect()
            })
            .collect();
        let mu_p_mu = means.iter().zip(&p_mu).map(|(m, pm)| dot(m, pm)).collect();
        Ok(Self {
            means,
            precision,
            p_mu,
            mu_p_mu,
        })
    }

    /// `−(x − μ_c)ᵀ P (x − μ_c)` for every row and class, row-major `[n, K]`.
    pub(super) fn neg_distances(&self, features: &[f32], n: usize) -> Vec<f64> {
        let d = self.precision.nrows();
        let x = Mat::from_fn(n, d, |i, j| f64::from(features[i * d + j]));
        let q = linalg::quadratic_rows(x.as_ref(), &self.precision);
        let mut out = Vec::with_capacity(n * self.means.len());
        for (i, qi) in q.iter().enumerate() {
            let row = &features[i * d..(i + 1) * d];
            for (pm, mpm) in self.p_mu.iter().zip(&self.mu_p_mu) {
                let cross: f64 = row.iter().zip(pm).map(|(&a, b)| f64::from(a) * b).sum();
                out.push(-(qi - 2.0 * cross + mpm));
            }
        }
        out
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// RMDS's background Gaussian: the mean of all features and its precision.
pub(super) type Background = (Vec<f64>, Mat<f64>);

/// Class means and the pooled within-class covariance (two passes), plus, when `global`,
/// the mean and covariance of all features (RMDS's background Gaussian).
pub(super) fn fit_class_gaussians(
    detector: &str,
    train: &mut dyn FeatureSource,
    head: Option<&Head>,
    global: bool,
) -> Result<(ClassGaussians, Option<Background>)> {
    let k = linalg::num_classes(detector, train, head)?;
    let (means, counts) = class_means(detector, train, k, &|b, i| {
        label_of(detector, b, i, k).map(Some)
    })?;
    let d = train.dim();
    let total: u64 = counts.iter().sum();
    let global_mean: Vec<f64> = (0..d)
        .map(|j| {
            means
                .iter()
                .zip(&counts)
                .map(|(m, &c)| m[j] * c as f64)
                .sum::<f64>()
                / total as f64
        })
        .collect();
    let mut within = Scatter::new(d);
    let mut all = Scatter::new(d);
    train.for_each_batch(&mut |b| {
        let mut labels = Vec::with_capacity(b.num_rows());
        for i in 0..b.num_rows() {
            labels.push(label_of(detector, &b, i, k)?);
        }
        within.add(&centered(&b, |i| Some(&means[labels[i]])));
        if global {
            all.add(&centered(&b, |_| Some(&global_mean)));
        }
        Ok(())
    })?;
    let gaussians = ClassGaussians::new(detector, means, &within.covariance())?;
    let background = if global {
        let cov = all.covariance();
        Some((global_mean, pinvh(detector, &cov)?))
    } else {
        None
    };
    Ok((gaussians, background))
}

fn needs_labelled_features() -> Needs {
    Needs {
        features: true,
        fit: true,
        labels: true,
        ..Needs::LOGITS
    }
}

/// Mahalanobis score with class-conditional Gaussians and one shared covariance:
/// `max_c −(z − μ_c)ᵀ Σ⁺ (z − μ_c)`, `Σ` the pooled within-class covariance (scikit-learn's
/// `EmpiricalCovariance` of the class-centred features) and `Σ⁺` its pseudo-inverse.
///
/// Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
/// Adversarial Attacks", NeurIPS 2018; OpenOOD `mds_postprocessor.py` (penultimate layer,
/// no input pre-processing).
#[derive(Debug, Clone, Default)]
pub struct Mds {
    fitted: Option<ClassGaussians>,
}

impl Detector for Mds {
    fn name(&self) -> String {
        "mds".into()
    }

    fn needs(&self) -> Needs {
        needs_labelled_features()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        self.fitted = Some(fit_class_gaussians("mds", train, head, false)?.0);
        Ok(())
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let g = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (f, n) = check_features("mds", features, g.precision.nrows())?;
        let k = g.means.len();
        Ok(g.neg_distances(f, n)
            .chunks_exact(k)
            .map(|r| r.iter().copied().fold(f64::NEG_INFINITY, f64::max) as f32)
            .collect())
    }
}

/// Relative Mahalanobis score: the MDS class scores minus the score under one background
/// Gaussian fitted to all ID features, `max_c [−d_c(z)] + d_bg(z)`.
///
/// Ren et al., "A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection",
/// arXiv 2106.09022 (2021); OpenOOD `rmds_postprocessor.py`.
#[derive(Debug, Clone, Default)]
pub struct Rmds {
    fitted: Option<(ClassGaussians, Vec<f64>, Mat<f64>)>,
}

impl Detector for Rmds {
    fn name(&self) -> String {
        "rmds".into()
    }

    fn needs(&self) -> Needs {
        needs_labelled_features()
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, head: Option<&Head>) -> Result<()> {
        let (g, bg) = fit_class_gaussians("rmds", train, head, true)?;
        let (mean, precision) = bg.expect("background requested");
        self.fitted = Some((g, mean, precision));
        Ok(())
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (g, mean, precision) = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let d = mean.len();
        let (f, n) = check_features("rmds", features, d)?;
        let x = Mat::from_fn(n, d, |i, j| f64::from(f[i * d + j]) - mean[j]);
        let bg = linalg::quadratic_rows(x.as_ref(), precision);
        let k = g.means.len();
        Ok(g.neg_distances(f, n)
            .chunks_exact(k)
            .zip(bg)
            .map(|(r, b)| (r.iter().copied().fold(f64::NEG_INFINITY, f64::max) + b) as f32)
            .collect())
    }
}

/// Rippel's multivariate Gaussian: one Gaussian over all ID training features, its
/// covariance shrunk by Ledoit-Wolf (scikit-learn's `LedoitWolf`), scored by minus the
/// Mahalanobis distance `−√((z − μ)ᵀ Σ⁻¹ (z − μ))`. With `npca = v`, the leading principal
/// components that explain a fraction `v` of the variance are dropped and only the rest
/// (the least-variance ones, where ID data is tight and OOD data is not) are scored.
///
/// Rippel, Mertens & Merhof, "Modeling the Distribution of Normal Data in Pre-Trained Deep
/// Features for Anomaly Detection", ICPR 2020. Needs no labels: it is the detector for
/// headless, pretrained networks.
#[derive(Debug, Clone)]
pub struct Mvg {
    npca: Option<f64>,
    fitted: Option<MvgFit>,
}

#[derive(Debug, Clone)]
struct MvgFit {
    mean: Vec<f64>,
    /// Kept directions scaled by `1/√λ`, as columns: the score is `−‖(z − μ) · W‖`.
    whiten: Mat<f64>,
    shrinkage: f64,
    kept: usize,
}

impl Mvg {
    /// A detector on all components (`npca = None`) or on those left after dropping the
    /// leading ones that explain a fraction `npca ∈ (0, 1)` of the variance.
    pub fn new(npca: Option<f64>) -> Self {
        Self { npca, fitted: None }
    }
}

impl Detector for Mvg {
    fn name(&self) -> String {
        let p: Vec<String> = self.npca.iter().map(|v| format!("npca={v}")).collect();
        with_params("mvg", &p)
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, _head: Option<&Head>) -> Result<()> {
        let name = self.name();
        let d = train.dim();
        let (means, counts) = class_means(&name, train, 1, &|_, _| Ok(Some(0)))?;
        let mean = means.into_iter().next().expect("one class");
        let n = counts[0] as f64;
        // Centred Gram matrix, Gram matrix of the squares (Ledoit-Wolf's β).
        let (mut gram, mut gram2) = (Mat::<f64>::zeros(d, d), Mat::<f64>::zeros(d, d));
        train.for_each_batch(&mut |b| {
            let x = centered(&b, |_| Some(&mean));
            let x2 = Mat::from_fn(x.nrows(), d, |i, j| x[(i, j)] * x[(i, j)]);
            add_gram(&mut gram, x.as_ref());
            add_gram(&mut gram2, x2.as_ref());
            Ok(())
        })?;
        // scikit-learn's ledoit_wolf_shrinkage (one block).
        let emp = Mat::from_fn(d, d, |i, j| gram[(i, j)] / n);
        let trace: f64 = (0..d).map(|i| emp[(i, i)]).sum();
        let mu = trace / d as f64;
        let beta_sum: f64 = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| gram2[(i, j)])
            .sum();
        let delta_sum: f64 = (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| gram[(i, j)] * gram[(i, j)])
            .sum::<f64>()
            / (n * n);
        let beta = (beta_sum / n - delta_sum) / (d as f64 * n);
        let delta = (delta_sum - 2.0 * mu * trace + d as f64 * mu * mu) / d as f64;
        let beta = beta.min(delta);
        let shrinkage = if beta == 0.0 { 0.0 } else { beta / delta };
        let cov = Mat::from_fn(d, d, |i, j| {
            (1.0 - shrinkage) * emp[(i, j)] + if i == j { shrinkage * mu } else { 0.0 }
        });
        let (vals, vecs) = linalg::eigh(&name, &cov)?;
        // Eigenvalues ascending: the leading components are at the end.
        let total: f64 = vals.iter().sum();
        let mut keep = d;
        if let Some(v) = self.npca {
            let mut cum = 0.0;
            let mut leading = 0;
            for &l in vals.iter().rev() {
                cum += l;
                leading += 1;
                if cum / total >= v {
                    break;
                }
            }
            keep = d - leading;
            if keep == 0 {
                return Err(EvalError::Unsupported {
                    detector: name,
                    reason: format!("the leading components explaining {v} of the variance are all {d} of them; nothing is left to score (use a larger npca)"),
                });
            }
        }
        let cutoff = vals.iter().fold(0.0f64, |m, v| m.max(v.abs())) * d as f64 * f64::EPSILON;
        let whiten = Mat::from_fn(d, keep, |i, j| {
            if vals[j] > cutoff {
                vecs[(i, j)] / vals[j].sqrt()
            } else {
                0.0
            }
        });
        self.fitted = Some(MvgFit {
            mean,
            whiten,
            shrinkage,
            kept: keep,
        });
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.fitted
            .as_ref()
            .map(|f| {
                vec![
                    ("shrinkage".into(), f.shrinkage),
                    ("components".into(), f.kept as f64),
                ]
            })
            .unwrap_or_default()
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let fit = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let d = fit.mean.len();
        let (f, n) = check_features("mvg", features, d)?;
        let x = Mat::from_fn(n, d, |i, j| f64::from(f[i * d + j]) - fit.mean[j]);
        let y = &x * &fit.whiten;
        Ok((0..n)
            .map(|i| {
                -((0..y.ncols())
                    .map(|j| y[(i, j)] * y[(i, j)])
                    .sum::<f64>()
                    .sqrt()) as f32
            })
            .collect())
    }
}
