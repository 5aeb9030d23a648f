//! The linear algebra the feature detectors share, on `faer`: streamed means and scatter
//! matrices in `f64`, the symmetric pseudo-inverse scikit-learn's `EmpiricalCovariance`
//! uses, Ledoit-Wolf shrinkage, symmetric eigendecompositions, and exact percentiles of
//! streamed values in bounded memory.

use faer::linalg::matmul::matmul;
use faer::{Accum, Mat, MatRef, Par, Side};

use super::{FeatureBatch, FeatureSource, Head};
use crate::error::{EvalError, Result};

/// Rows of a batch converted to `f64` and shifted by `shift(row)` (a mean to subtract).
pub(crate) fn centered<'m>(
    batch: &FeatureBatch<'_>,
    mut shift: impl FnMut(usize) -> Option<&'m [f64]>,
) -> Mat<f64> {
    let d = batch.dim;
    let n = batch.num_rows();
    let mut m = Mat::<f64>::zeros(n, d);
    for i in 0..n {
        let row = &batch.features[i * d..(i + 1) * d];
        let mu = shift(i);
        for j in 0..d {
            let v = f64::from(row[j]);
            m[(i, j)] = match mu {
                Some(mu) => v - mu[j],
                None => v,
            };
        }
    }
    m
}

/// Checks a training batch's features for shape and finiteness.
pub(crate) fn validate_batch(b: &FeatureBatch<'_>) -> Result<()> {
    super::validate_rows("training features", b.features, b.dim).map(|_| ())
}

/// `acc += xᵀ · x`.
pub(crate) fn add_gram(acc: &mut Mat<f64>, x: MatRef<'_, f64>) {
    matmul(acc.as_mut(), Accum::Add, x.transpose(), x, 1.0, Par::Seq);
}

/// Per-class (or, with one class, global) means of the training features, in one pass.
/// `class_of` maps a batch row to its class (`None` skips the row). Errors name the first
/// empty class.
pub(crate) fn class_means(
    detector: &str,
    train: &mut dyn FeatureSource,
    classes: usize,
    class_of: &dyn Fn(&FeatureBatch<'_>, usize) -> Result<Option<usize>>,
) -> Result<(Vec<Vec<f64>>, Vec<u64>)> {
    let d = train.dim();
    let mut sums = vec![vec![0.0f64; d]; classes];
    let mut counts = vec![0u64; classes];
    train.for_each_batch(&mut |b| {
        super::validate_rows("training features", b.features, b.dim)?;
        for i in 0..b.num_rows() {
            let Some(c) = class_of(&b, i)? else { continue };
            counts[c] += 1;
            for (s, &v) in sums[c].iter_mut().zip(&b.features[i * d..(i + 1) * d]) {
                *s += f64::from(v);
            }
        }
        Ok(())
    })?;
    for (c, (s, &n)) in sums.iter_mut().zip(&counts).enumerate() {
        if n == 0 {
            return Err(EvalError::EmptyClass {
                detector: detector.to_string(),
                class: c,
            });
        }
        s.iter_mut().for_each(|v| *v /= n as f64);
    }
    Ok((sums, counts))
}

/// The number of ID classes: the head's, else the training logits' width, else one more
/// than the largest training label (one pass).
pub(crate) fn num_classes(
    detector: &str,
    train: &mut dyn FeatureSource,
    head: Option<&Head>,
) -> Result<usize> {
    if let Some(h) = head {
        return Ok(h.num_classes());
    }
    let mut k = 0usize;
    train.for_each_batch(&mut |b| {
        if b.num_classes > 0 {
            k = k.max(b.num_classes);
        } else if let Some(l) = b.labels {
            k = k.max(l.iter().max().map_or(0, |&m| m + 1));
        }
        Ok(())
    })?;
    if k == 0 {
        return Err(EvalError::Unsupported {
            detector: detector.to_string(),
            reason:
                "it needs class labels (or logits) of the training set, and the source has none"
                    .into(),
        });
    }
    Ok(k)
}

/// The head, or an error saying the detector needs one.
pub(crate) fn require_head<'h>(
    detector: &str,
    head: Option<&'h Head>,
    dim: usize,
) -> Result<&'h Head> {
    let h = head.ok_or_else(|| EvalError::Unsupported {
        detector: detector.to_string(),
        reason: "it needs the network's linear head (W, b), and this network has none".into(),
    })?;
    if h.dim() != dim {
        return Err(EvalError::Unsupported {
            detector: detector.to_string(),
            reason: format!(
                "the head takes {}-dimensional features, the training features have {dim}",
                h.dim()
            ),
        });
    }
    Ok(h)
}

/// Checks that `features` are rows of the fitted dimension `dim` and returns the row count.
pub(crate) fn check_features<'f>(
    detector: &str,
    features: Option<&'f [f32]>,
    dim: usize,
) -> Result<(&'f [f32], usize)> {
    let f = features.ok_or_else(|| EvalError::MissingFeatures {
        detector: detector.to_string(),
    })?;
    let n = super::validate_rows("features", f, dim)?;
    Ok((f, n))
}

/// The class label of row `i`, checked against `classes`.
pub(crate) fn label_of(
    detector: &str,
    b: &FeatureBatch<'_>,
    i: usize,
    classes: usize,
) -> Result<usize> {
    let labels = b.labels.ok_or_else(|| EvalError::Unsupported {
        detector: detector.to_string(),
        reason: "it needs the class labels of the training set, and the source has none".into(),
    })?;
    let c = labels[i];
    if c >= classes {
        return Err(EvalError::Unsupported {
            detector: detector.to_string(),
            reason: format!("training label {c} is not below the number of classes {classes}"),
        });
    }
    Ok(c)
}

/// The symmetric pseudo-inverse of `a` as SciPy's `pinvh` computes it (scikit-learn's
/// `EmpiricalCovariance.precision_`): eigenvalues with `|λ| <= max|λ| · n · ε` are dropped.
pub(crate) fn pinvh(detector: &str, a: &Mat<f64>) -> Result<Mat<f64>> {
    let (vals, vecs) = eigh(detector, a)?;
    let n = a.nrows();
    let max = vals.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let cutoff = max * n as f64 * f64::EPSILON;
    let mut scaled = vecs.clone();
    for (j, &l) in vals.iter().enumerate() {
        let inv = if l.abs() > cutoff { 1.0 / l } else { 0.0 };
        for i in 0..n {
            scaled[(i, j)] *= inv;
        }
    }
    let mut out = Mat::<f64>::zeros(n, n);
    matmul(
        out.as_mut(),
        Accum::Replace,
        scaled.as_ref(),
        vecs.transpose(),
        1.0,
        Par::Seq,
    );
    Ok(out)
}

/// Eigenvalues (ascending) and eigenvectors (columns) of a symmetric matrix.
pub(crate) fn eigh(detector: &str, a: &Mat<f64>) -> Result<(Vec<f64>, Mat<f64>)> {
    let e = a
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| EvalError::Numerical {
            detector: detector.to_string(),
            message: format!("the symmetric eigendecomposition did not converge ({e:?})"),
        })?;
    let s = e.S();
    let vals: Vec<f64> = (0..a.nrows()).map(|i| s[i]).collect();
    Ok((vals, e.U().to_owned()))
}

/// `diag(X · P · Xᵀ)`: the quadratic form of every row of `x` under `p`.
pub(crate) fn quadratic_rows(x: MatRef<'_, f64>, p: &Mat<f64>) -> Vec<f64> {
    let mut xp = Mat::<f64>::zeros(x.nrows(), x.ncols());
    matmul(xp.as_mut(), Accum::Replace, x, p.as_ref(), 1.0, Par::Seq);
    (0..x.nrows())
        .map(|i| (0..x.ncols()).map(|j| xp[(i, j)] * x[(i, j)]).sum())
        .collect()
}

/// The exact `p`-th percentile (NumPy's default linear interpolation between order
/// statistics) of a stream of values, in memory bounded by one 65,536-bin histogram: a
/// radix select on the values' order-preserving 32-bit keys (one pass to count, then two
/// histogram passes per order statistic: the high 16 bits, then the low 16 within the
/// chosen high bin). `None` for an empty stream.
///
/// `pass` must visit the same values, in any order, every time it is called.
pub(crate) fn stream_percentile(
    p: f64,
    mut pass: impl FnMut(&mut dyn FnMut(f32)) -> Result<()>,
) -> Result<Option<f64>> {
    let mut n = 0u64;
    pass(&mut |_| n += 1)?;
    if n == 0 {
        return Ok(None);
    }
    let pos = p / 100.0 * (n - 1) as f64;
    let r0 = pos.floor() as u64;
    let r1 = (r0 + 1).min(n - 1);
    let frac = pos - r0 as f64;
    let a = order_statistic(r0, &mut pass)?;
    let b = if r1 == r0 {
        a
    } else {
        order_statistic(r1, &mut pass)?
    };
    Ok(Some(f64::from(a) + (f64::from(b) - f64::from(a)) * frac))
}

/// An order-preserving map from `f32` (finite, `-0.0` as `0.0`) to `u32`.
fn key(v: f32) -> u32 {
    let bits = (v + 0.0).to_bits();
    if bits >> 31 == 1 {
        !bits
    } else {
        bits | 0x8000_0000
    }
}

/// The inverse of [`key`].
fn from_key(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// The `rank`-th smallest value (0-based) of the stream.
fn order_statistic(
    rank: u64,
    pass: &mut impl FnMut(&mut dyn FnMut(f32)) -> Result<()>,
) -> Result<f32> {
    let mut hist = vec![0u64; 1 << 16];
    pass(&mut |v| hist[(key(v) >> 16) as usize] += 1)?;
    let (high, below) = pick(&hist, rank);
    hist.iter_mut().for_each(|c| *c = 0);
    pass(&mut |v| {
        let k = key(v);
        if k >> 16 == high {
            hist[(k & 0xffff) as usize] += 1;
        }
    })?;
    let (low, _) = pick(&hist, rank - below);
    Ok(from_key((high << 16) | low))
}

/// The bin holding the `rank`-th value of a histogram, and how many values lie before it.
fn pick(hist: &[u64], rank: u64) -> (u32, u64) {
    let mut acc = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        if acc + c > rank {
            return (i as u32, acc);
        }
        acc += c;
    }
    (hist.len() as u32 - 1, acc)
}

/// L2-regularised logistic regression of `positive` on the rows of `x` (`[n, d]`,
/// row-major): scikit-learn's `LogisticRegression(C=1)` objective, `½‖w‖² + Σ_i
/// log(1 + exp(−s_i (w·x_i + b)))` with `s_i = ±1` and the intercept `b` unpenalised,
/// minimised by Newton's method (at most 100 steps, to a step below `1e-10`). Returns
/// `(w, b)`.
pub(crate) fn logistic_regression(
    detector: &str,
    x: &[f64],
    positive: &[bool],
    d: usize,
) -> Result<(Vec<f64>, f64)> {
    let n = positive.len();
    let mut theta = vec![0.0; d + 1];
    for _ in 0..100 {
        let mut grad: Vec<f64> = theta[..d].to_vec();
        grad.push(0.0);
        let mut hess =
            Mat::<f64>::from_fn(d + 1, d + 1, |i, j| if i == j && i < d { 1.0 } else { 0.0 });
        for (i, &pos) in positive.iter().enumerate().take(n) {
            let row = &x[i * d..(i + 1) * d];
            let z: f64 = row.iter().zip(&theta).map(|(a, w)| a * w).sum::<f64>() + theta[d];
            let p = 1.0 / (1.0 + (-z).exp());
            let r = p - if pos { 1.0 } else { 0.0 };
            let h = p * (1.0 - p);
            for a in 0..=d {
                let xa = if a < d { row[a] } else { 1.0 };
                grad[a] += r * xa;
                for b in 0..=d {
                    let xb = if b < d { row[b] } else { 1.0 };
                    hess[(a, b)] += h * xa * xb;
                }
            }
        }
        let inv = pinvh(detector, &hess)?;
        let mut largest = 0f64;
        for a in 0..=d {
            let step: f64 = (0..=d).map(|b| inv[(a, b)] * grad[b]).sum();
            theta[a] -= step;
            largest = largest.max(step.abs());
        }
        if !theta.iter().all(|t| t.is_finite()) {
            return Err(EvalError::Numerical {
                detector: detector.to_string(),
                message: "the logistic regression of the layer weights diverged".into(),
            });
        }
        if largest < 1e-10 {
            break;
        }
    }
    let b = theta.pop().expect("d + 1 values");
    Ok((theta, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NumPy: `np.percentile([3, 1, 4, 1, 5, 9, 2, 6], [0, 25, 50, 90, 100])` =
    /// `[1, 1.75, 3.5, 6.9, 9]`.
    #[test]
    fn percentiles_match_numpy() {
        let v = [3.0f32, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        for (p, want) in [
            (0.0, 1.0),
            (25.0, 1.75),
            (50.0, 3.5),
            (90.0, 6.9),
            (100.0, 9.0),
        ] {
            let got = stream_percentile(p, |f| {
                v.iter().for_each(|&x| f(x));
                Ok(())
            })
            .unwrap()
            .unwrap();
            assert!((got - want).abs() < 1e-6, "p{p}: {got} vs {want}");
        }
    }

    /// Many ties (half zeros, like post-ReLU activations), negative values and an outlier
    /// give the exact order statistics (compared with a full sort).
    #[test]
    fn percentiles_are_exact_on_ties() {
        let mut v: Vec<f32> = (0..20_001u32)
            .map(|i| {
                if i % 2 == 0 {
                    0.0
                } else {
                    ((i * 7919) % 1000) as f32 / 7.0 - 30.0
                }
            })
            .collect();
        v.push(1e6);
        v.push(-0.0);
        let mut sorted = v.clone();
        sorted.sort_by(f32::total_cmp);
        for p in [0.0, 10.0, 49.0, 50.0, 51.0, 90.0, 99.9, 100.0] {
            let pos = p / 100.0 * (sorted.len() - 1) as f64;
            let (r0, fr) = (pos.floor() as usize, pos - pos.floor());
            let hi = sorted[(r0 + 1).min(sorted.len() - 1)];
            let want = f64::from(sorted[r0]) + (f64::from(hi) - f64::from(sorted[r0])) * fr;
            let got = stream_percentile(p, |f| {
                v.iter().for_each(|&x| f(x));
                Ok(())
            })
            .unwrap()
            .unwrap();
            assert_eq!(got, want, "p{p}");
        }
    }

    /// Against scikit-learn 1.9.1: `LogisticRegression(C=1.0, tol=1e-12,
    /// max_iter=10000).fit(X, y)` on `X = [[0,1],[1,0],[2,2],[3,1],[1,3],[4,4]]`,
    /// `y = [0,0,0,1,1,1]` gives `coef_ = [0.62559477, 0.62559477]`, `intercept_ =
    /// -2.21044103`; and the objective's gradient vanishes at the result.
    #[test]
    fn logistic_regression_reaches_the_optimum() {
        let x = [0.0, 1.0, 1.0, 0.0, 2.0, 2.0, 3.0, 1.0, 1.0, 3.0, 4.0, 4.0];
        let y = [false, false, false, true, true, true];
        let (w, b) = logistic_regression("t", &x, &y, 2).unwrap();
        let mut g = w.clone();
        let mut gb = 0.0;
        for (i, &pos) in y.iter().enumerate() {
            let z = w[0] * x[2 * i] + w[1] * x[2 * i + 1] + b;
            let r = 1.0 / (1.0 + (-z).exp()) - if pos { 1.0 } else { 0.0 };
            g[0] += r * x[2 * i];
            g[1] += r * x[2 * i + 1];
            gb += r;
        }
        assert!(g.iter().chain([&gb]).all(|v| v.abs() < 1e-9), "{g:?} {gb}");
        for (got, want) in [(w[0], 0.62559477), (w[1], 0.62559477), (b, -2.21044103)] {
            assert!((got - want).abs() < 1e-7, "{w:?} {b}");
        }
    }

    /// `pinvh` of a diagonal matrix with a zero: 1/λ on the others, 0 for the zero.
    #[test]
    fn pinvh_drops_null_directions() {
        let a = Mat::<f64>::from_fn(3, 3, |i, j| if i == j { [2.0, 0.0, 4.0][i] } else { 0.0 });
        let p = pinvh("t", &a).unwrap();
        for (i, want) in [0.5, 0.0, 0.25].iter().enumerate() {
            assert!((p[(i, i)] - want).abs() < 1e-12, "{:?}", p);
        }
    }
}
