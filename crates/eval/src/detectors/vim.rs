//! ViM: virtual-logit matching.

use faer::Mat;

use super::linalg::{self, add_gram, centered, check_features, require_head};
use super::logit::{logsumexp, row_max, with_params};
use super::{Detector, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// ViM: the energy of the logits minus a "virtual logit", the norm of the feature's
/// residual outside the principal subspace of ID features, scaled to match the logits.
///
/// With the head `W` (`[K, D]`) and `b`: origin `u = −W⁺ b`; the principal subspace is
/// spanned by the `dim` leading eigenvectors of `(1/N) Σ (z − u)(z − u)ᵀ` over the ID
/// training features; `NS` holds the other `D − dim`. `v(z) = ‖(z − u) · NS‖`,
/// `α = mean_train max_k logit_k / mean_train v`, and `score = logsumexp(logits) − α·v(z)`.
///
/// Wang et al., "ViM: Out-Of-Distribution with Virtual-logit Matching", CVPR 2022; OpenOOD
/// `vim_postprocessor.py`. `dim` defaults to `D/2`; a sweep over `dim` refits the subspace
/// for every value (OpenOOD's sweep did not).
#[derive(Debug, Clone)]
pub struct Vim {
    dim: Option<usize>,
    fitted: Option<VimFit>,
}

#[derive(Debug, Clone)]
struct VimFit {
    head: Head,
    origin: Vec<f64>,
    /// The residual subspace, `[D, D − dim]`.
    ns: Mat<f64>,
    alpha: f64,
    dim: usize,
}

impl Vim {
    /// A ViM detector keeping a `dim`-dimensional principal subspace (`None`: half the
    /// feature dimension).
    pub fn new(dim: Option<usize>) -> Self {
        Self { dim, fitted: None }
    }

    /// The fitted residual subspace, `[D][D − dim]` column-major (for tests of a sweep).
    pub fn residual_basis(&self) -> Option<Vec<f64>> {
        self.fitted.as_ref().map(|f| {
            (0..f.ns.ncols())
                .flat_map(|j| (0..f.ns.nrows()).map(move |i| (i, j)))
                .map(|(i, j)| f.ns[(i, j)])
                .collect()
        })
    }

    fn residual_norms(fit: &VimFit, features: &[f32], n: usize) -> Vec<f64> {
        let d = fit.origin.len();
        let x = Mat::from_fn(n, d, |i, j| f64::from(features[i * d + j]) - fit.origin[j]);
        let y = &x * &fit.ns;
        (0..n)
            .map(|i| {
                (0..y.ncols())
                    .map(|j| y[(i, j)] * y[(i, j)])
                    .sum::<f64>()
                    .sqrt()
            })
            .collect()
    }
}

impl Detector for Vim {
    fn name(&self) -> String {
        let p: Vec<String> = self.dim.iter().map(|d| format!("dim={d}")).collect();
        with_params("vim", &p)
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
        let name = self.name();
        let d = train.dim();
        let head = require_head(&name, head, d)?;
        let dim = self.dim.unwrap_or(d / 2);
        if dim == 0 || dim >= d {
            return Err(EvalError::Unsupported {
                detector: name,
                reason: format!("the principal subspace dimension dim = {dim} must be in 1..{d} (the feature dimension is {d})"),
            });
        }
        // u = −W⁺ b, W⁺ from the SVD of W as NumPy's `pinv` (OpenOOD's call) computes it:
        // singular values <= 1e-15 · max are dropped. Not Wᵀ (W Wᵀ)⁺, which squares the
        // condition number: heads trained with cross-entropy and weight decay have rows that
        // nearly sum to zero (exactly, for a logistic regression), so W is close to rank
        // K − 1 and the Gram form loses most digits of u along that direction.
        let k = head.num_classes();
        let w = Mat::from_fn(k, d, |i, j| f64::from(head.weight()[i * d + j]));
        let svd = w.thin_svd().map_err(|e| EvalError::Numerical {
            detector: name.clone(),
            message: format!("the SVD of the head's weight did not converge ({e:?})"),
        })?;
        let (su, ss, sv) = (svd.U(), svd.S().column_vector(), svd.V());
        let s_max = (0..ss.nrows()).fold(0.0f64, |m, i| m.max(ss[i]));
        // Uᵀ b scaled by 1/σ (0 for dropped σ), then V · that: W⁺ b.
        let coef: Vec<f64> = (0..ss.nrows())
            .map(|j| {
                let s = ss[j];
                if s > 1e-15 * s_max {
                    (0..k)
                        .map(|i| su[(i, j)] * f64::from(head.bias()[i]))
                        .sum::<f64>()
                        / s
                } else {
                    0.0
                }
            })
            .collect();
        let origin: Vec<f64> = (0..d)
            .map(|i| {
                -coef
                    .iter()
                    .enumerate()
                    .map(|(j, c)| sv[(i, j)] * c)
                    .sum::<f64>()
            })
            .collect();
        let mut gram = Mat::<f64>::zeros(d, d);
        let mut n = 0u64;
        train.for_each_batch(&mut |batch| {
            linalg::validate_batch(&batch)?;
            add_gram(&mut gram, centered(&batch, |_| Some(&origin)).as_ref());
            n += batch.num_rows() as u64;
            Ok(())
        })?;
        if n == 0 {
            return Err(EvalError::Empty {
                what: "vim training set",
            });
        }
        let cov = Mat::from_fn(d, d, |i, j| gram[(i, j)] / n as f64);
        let (_, vecs) = linalg::eigh(&name, &cov)?;
        // Eigenvalues ascending: the residual space is the first d − dim eigenvectors.
        let ns = Mat::from_fn(d, d - dim, |i, j| vecs[(i, j)]);
        let mut fit = VimFit {
            head: head.clone(),
            origin,
            ns,
            alpha: 0.0,
            dim,
        };
        let (mut max_logit_sum, mut v_sum) = (0.0f64, 0.0f64);
        train.for_each_batch(&mut |batch| {
            let rows = batch.num_rows();
            let logits = fit.head.logits(batch.features);
            max_logit_sum += logits
                .chunks_exact(k)
                .map(|r| f64::from(row_max(r)))
                .sum::<f64>();
            v_sum += Self::residual_norms(&fit, batch.features, rows)
                .iter()
                .sum::<f64>();
            Ok(())
        })?;
        if v_sum <= 0.0 {
            return Err(EvalError::Numerical {
                detector: name,
                message: "the ID features have no component outside the principal subspace (all virtual logits are 0)".into(),
            });
        }
        fit.alpha = max_logit_sum / v_sum;
        self.fitted = Some(fit);
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.fitted
            .as_ref()
            .map(|f| vec![("alpha".into(), f.alpha), ("dim".into(), f.dim as f64)])
            .unwrap_or_default()
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let fit = self.fitted.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: self.name(),
        })?;
        let (f, n) = check_features("vim", features, fit.origin.len())?;
        let logits = fit.head.logits(f);
        let v = Self::residual_norms(fit, f, n);
        Ok(logits
            .chunks_exact(fit.head.num_classes())
            .zip(v)
            .map(|(r, v)| (logsumexp(r) - fit.alpha * v) as f32)
            .collect())
    }
}
