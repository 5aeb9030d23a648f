//! Estimating the number of classes `k` for generalized category discovery (GCD).
//!
//! # GCD's estimator ([`estimate_k_gcd`])
//!
//! Vaze et al., CVPR 2022, `methods/estimate_k/estimate_k.py` of
//! `github.com/sgvaze/generalized-category-discovery` (`scipy_optimise` and
//! `test_kmeans_for_scipy`):
//!
//! * the points are **all** training points, labelled and unlabelled, L2-normalised;
//! * for a candidate `K` (a float from the optimiser, truncated with `int(K)`), it runs
//!   **plain, unsupervised** k-means on all of them (`sklearn.cluster.KMeans(n_clusters=K,
//!   random_state=0)`: the labels are not used for clustering), and scores the clustering
//!   by the Hungarian cluster accuracy of the **labelled** points only;
//! * `scipy.optimize.minimize_scalar(-accuracy, bounds=(num_labeled_classes,
//!   max_classes), method='bounded')`, i.e. Brent's bounded minimisation with scipy's
//!   defaults `xatol = 1e-5`, `maxiter = 500`; the answer is `int(res.x)`
//!   (`--max_classes` defaults to 1000).
//!
//! Here the clustering is this crate's k-means ([`crate::kmeans`] with no labels), seeded
//! from the caller's [`RandomSource`], not scikit-learn's (which seeds with greedy
//! k-means++ and uses a tolerance relative to the data variance), so the same data can give
//! a different `k`. [`brent_bounded`] is scipy's `_minimize_scalar_bounded` step for step,
//! so the same objective gives the same sequence of trial points (the fixture tests check
//! this against scipy). Each integer `k` is clustered once and cached, as the reference's
//! fixed `random_state=0` makes repeated calls return the same value anyway. Because the
//! trial points never reach the upper bound exactly, `int(x)` never reaches `max_k`: the
//! reference effectively searches `[L, max_k - 1]`, and so does this.
//!
//! The reference script also has a `binary_search` mode (the one its
//! `bash_scripts/estimate_k.sh` selects with `--search_mode other`); it only prints its
//! findings and is not reproduced. [`KSearch::Exhaustive`] scans every `k` instead.
//!
//! # ProtoGCD's estimator: not available
//!
//! ProtoGCD (Ma et al., TPAMI 2025) describes a "prototype score" criterion that a model
//! **trained with each candidate number of prototypes** is scored by. Its released code
//! (`mashijie1028/ProtoGCD`) has no estimator: `my_utils/cluster_and_log_utils.py` keeps a
//! copy of GCD's `cluster_acc` commented "used ONLY for estimating # of novel categories in
//! `estimate_k.py`", but no `estimate_k.py` is in the repository. The author posted a
//! snippet in issue #3 ("Finding the number of classes", 2025-09-11), saying the score
//! combines an accuracy score and a centroid score: it accumulates labelled-class feature
//! centroids and pseudo-label centroids of the unlabelled data over `L + k_novel`
//! prototypes, with Hungarian accuracy on the labelled data. Only the first part of that
//! snippet was readable here; how the two scores are defined and combined was not, so it
//! is not implemented. It also needs a trained model per candidate, which is beyond this
//! crate (it scores given features).
//!
//! # Our alternative ([`estimate_k_probe`], not from a paper as such)
//!
//! A held-out-class probe, taken from the accuracy half of DTC's estimator (Han et al.,
//! ICCV 2019, `k-han/DTC`, `cifar100_est_k.py`): some labelled classes (the "probe"
//! classes, chosen at random) are hidden, i.e. treated as unlabelled; for each candidate
//! `k`, [`crate::kmeans::semi_supervised_kmeans`] clusters everything with the remaining
//! labelled classes as anchors, and `k` is scored by the cluster accuracy of the hidden
//! points against their true classes. Hidden classes behave like new classes whose answer
//! is known: with too many clusters they are split, with too few they are merged. Unlike
//! GCD's criterion, it evaluates the clustering that GCD actually uses (semi-supervised),
//! and unlike DTC it drops the silhouette term and the final cluster-size filter. The
//! search over `k` is the same as for [`estimate_k_gcd`].
//!
//! Both criteria are flat where the classes they look at are already separated: merging
//! two *unlabelled* classes costs nothing as long as the scored classes stay apart. So they
//! tend to underestimate on well-separated data with Brent's search; the exhaustive scan
//! breaks ties towards the largest `k`, which counters that (see the blob tests).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::gcd::cluster_accuracy;
use crate::kmeans::{draw, semi_supervised_kmeans, RandomSource, SsKMeansConfig};

/// Settings of [`brent_bounded`], with scipy's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BrentOptions {
    /// Absolute tolerance on `x` (scipy's `xatol`, default `1e-5`).
    pub xatol: f64,
    /// Maximum number of function evaluations (scipy's `maxiter`, default 500).
    pub max_evals: usize,
}

impl Default for BrentOptions {
    fn default() -> Self {
        Self {
            xatol: 1e-5,
            max_evals: 500,
        }
    }
}

/// The outcome of [`brent_bounded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrentResult {
    /// The best point found (scipy's `res.x`).
    pub x: f64,
    /// `f(x)` (scipy's `res.fun`).
    pub fun: f64,
    /// Every point `f` was called at, in order (`trace.len()` is scipy's `res.nfev`).
    pub trace: Vec<f64>,
    /// `false` if the evaluation budget ran out or `f` returned NaN (scipy's
    /// `res.success`).
    pub converged: bool,
}

/// Minimises `f` on `[lo, hi]` with Brent's bounded method (golden-section search with
/// parabolic interpolation), exactly as `scipy.optimize.minimize_scalar(f, bounds=(lo, hi),
/// method='bounded')` (`_minimize_scalar_bounded` in `scipy/optimize/_optimize.py`):
/// same first point, same steps, same stopping rule, so the same `f` is called at the same
/// points.
///
/// ```
/// use unseen_eval::estimate_k::{brent_bounded, BrentOptions};
/// let r = brent_bounded(|x| Ok((x - 2.0) * (x - 2.0)), 0.0, 5.0, BrentOptions::default())?;
/// assert!((r.x - 2.0).abs() < 1e-5);
/// # Ok::<(), unseen_eval::EvalError>(())
/// ```
///
/// # Errors
/// [`EvalError::InvalidConfig`] if a bound is not finite, `lo > hi`, `xatol` is negative or
/// not finite, or `max_evals` is 0; any error `f` returns.
pub fn brent_bounded<F>(mut f: F, lo: f64, hi: f64, opts: BrentOptions) -> Result<BrentResult>
where
    F: FnMut(f64) -> Result<f64>,
{
    let invalid = |message: String| {
        Err(EvalError::InvalidConfig {
            what: "bounded Brent search",
            message,
        })
    };
    if !(lo.is_finite() && hi.is_finite()) || lo > hi {
        return invalid(format!("bounds ({lo}, {hi}) must be finite with lo <= hi"));
    }
    if !(opts.xatol.is_finite() && opts.xatol >= 0.0) || opts.max_evals == 0 {
        return invalid(format!(
            "xatol = {} must be finite and >= 0, max_evals = {} must be >= 1",
            opts.xatol, opts.max_evals
        ));
    }
    // numpy's sign (0 for 0) plus scipy's `+ (v == 0)`: never 0.
    let step_sign = |v: f64| {
        let s = if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            0.0
        };
        s + f64::from(u8::from(v == 0.0))
    };
    let sqrt_eps = 2.2e-16f64.sqrt();
    let golden_mean = 0.5 * (3.0 - 5.0f64.sqrt());
    let (mut a, mut b) = (lo, hi);
    let mut fulc = a + golden_mean * (b - a);
    let (mut nfc, mut xf) = (fulc, fulc);
    let (mut rat, mut e) = (0.0f64, 0.0f64);
    let mut trace = vec![xf];
    let mut fx = f(xf)?;
    let mut fu = f64::INFINITY;
    let (mut ffulc, mut fnfc) = (fx, fx);
    let mut xm = 0.5 * (a + b);
    let mut tol1 = sqrt_eps * xf.abs() + opts.xatol / 3.0;
    let mut tol2 = 2.0 * tol1;
    let mut converged = true;

    while (xf - xm).abs() > tol2 - 0.5 * (b - a) {
        let mut golden = true;
        if e.abs() > tol1 {
            golden = false;
            let mut r = (xf - nfc) * (fx - ffulc);
            let mut q = (xf - fulc) * (fx - fnfc);
            let mut p = (xf - fulc) * q - (xf - nfc) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            r = e;
            e = rat;
            if p.abs() < (0.5 * q * r).abs() && p > q * (a - xf) && p < q * (b - xf) {
                rat = (p + 0.0) / q;
                let x = xf + rat;
                if (x - a) < tol2 || (b - x) < tol2 {
                    rat = tol1 * step_sign(xm - xf);
                }
            } else {
                golden = true;
            }
        }
        if golden {
            e = if xf >= xm { a - xf } else { b - xf };
            rat = golden_mean * e;
        }
        let x = xf + step_sign(rat) * rat.abs().max(tol1);
        trace.push(x);
        fu = f(x)?;
        if fu <= fx {
            if x >= xf {
                a = xf;
            } else {
                b = xf;
            }
            (fulc, ffulc) = (nfc, fnfc);
            (nfc, fnfc) = (xf, fx);
            (xf, fx) = (x, fu);
        } else {
            if x < xf {
                a = x;
            } else {
                b = x;
            }
            if fu <= fnfc || nfc == xf {
                (fulc, ffulc) = (nfc, fnfc);
                (nfc, fnfc) = (x, fu);
            } else if fu <= ffulc || fulc == xf || fulc == nfc {
                (fulc, ffulc) = (x, fu);
            }
        }
        xm = 0.5 * (a + b);
        tol1 = sqrt_eps * xf.abs() + opts.xatol / 3.0;
        tol2 = 2.0 * tol1;
        if trace.len() >= opts.max_evals {
            converged = false;
            break;
        }
    }
    if xf.is_nan() || fx.is_nan() || fu.is_nan() {
        converged = false;
    }
    Ok(BrentResult {
        x: xf,
        fun: fx,
        trace,
        converged,
    })
}

/// How candidate values of `k` are searched.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum KSearch {
    /// [`brent_bounded`] on `[L, max_k]` over `-score(int(x))`, as the GCD reference; the
    /// answer is `int(x)` of the best point.
    Brent(BrentOptions),
    /// Every `k` in `[L, max_k]`; the answer is the best score, the **largest** such `k`
    /// on ties (as DTC's `get_best_k`).
    Exhaustive,
}

/// Settings of [`estimate_k_gcd`] and [`estimate_k_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EstimateKConfig {
    /// Upper bound of the search (the reference's `--max_classes`, default 1000).
    pub max_k: usize,
    /// k-means starts per candidate.
    pub n_init: usize,
    /// k-means iteration cap per start.
    pub max_iter: usize,
    /// k-means tolerance (see [`SsKMeansConfig::tol`]).
    pub tol: f64,
    /// How candidates are searched.
    pub search: KSearch,
}

impl EstimateKConfig {
    /// Search up to `max_k` with Brent's method (scipy's defaults) and k-means with 10
    /// starts, at most 300 iterations (scikit-learn's `KMeans` defaults, which the
    /// reference used) and tolerance 1e-4.
    pub fn new(max_k: usize) -> Self {
        Self {
            max_k,
            n_init: 10,
            max_iter: 300,
            tol: SsKMeansConfig::DEFAULT_TOL,
            search: KSearch::Brent(BrentOptions::default()),
        }
    }

    fn kmeans(&self, k: usize) -> SsKMeansConfig {
        SsKMeansConfig {
            k,
            n_init: self.n_init,
            max_iter: self.max_iter,
            tol: self.tol,
        }
    }
}

/// The outcome of a class-number search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KEstimate {
    /// The chosen number of classes.
    pub k: usize,
    /// Its score (a cluster accuracy in `[0, 1]`).
    pub score: f64,
    /// Every distinct `k` that was clustered and its score, in the order they were first
    /// tried.
    pub evaluated: Vec<(usize, f64)>,
}

/// The number of classes by GCD's criterion: the `k` whose plain k-means over all points
/// gives the labelled points the best cluster accuracy (see the [module docs](self)).
///
/// `labels[i]` is `Some(class)` for a labelled point; the search runs over
/// `[L, cfg.max_k]` with `L` the number of labelled classes. Pass L2-normalised features
/// to follow the reference ([`crate::kmeans::l2_normalize_rows`]).
///
/// # Errors
/// [`EvalError::Empty`] if no point is labelled, [`EvalError::InvalidConfig`] if
/// `max_k < L` or `max_k` exceeds the number of points, and the errors of
/// [`semi_supervised_kmeans`] and [`brent_bounded`].
pub fn estimate_k_gcd<R: RandomSource + ?Sized>(
    x: &[f32],
    dim: usize,
    labels: &[Option<usize>],
    cfg: &EstimateKConfig,
    rng: &mut R,
) -> Result<KEstimate> {
    let (l_idx, l_true) = labelled_points(labels);
    let num_classes = distinct(&l_true);
    check_range(num_classes, cfg.max_k, labels.len(), labels.len())?;
    let unlabelled = vec![None; labels.len()];
    search_k(num_classes, cfg.max_k, cfg.search, |k| {
        let r = semi_supervised_kmeans(x, dim, &unlabelled, &cfg.kmeans(k), rng)?;
        let pred: Vec<usize> = l_idx.iter().map(|&i| r.assignments[i]).collect();
        cluster_accuracy(&l_true, &pred)
    })
}

/// The outcome of [`estimate_k_probe`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeKEstimate {
    /// The search result; scores are the cluster accuracies of the probe points.
    pub estimate: KEstimate,
    /// The labelled classes that were hidden, ascending.
    pub probe_classes: Vec<usize>,
}

/// The number of classes by our held-out-class probe (see the [module docs](self)): hide
/// `round(probe_fraction · L)` (at least 1) randomly chosen labelled classes, cluster with
/// [`semi_supervised_kmeans`] anchored on the other labelled classes, and choose the `k`
/// in `[L, cfg.max_k]` whose clustering best recovers the hidden classes.
///
/// # Errors
/// [`EvalError::Empty`] if no point is labelled, [`EvalError::InvalidConfig`] if
/// `probe_fraction` is not in `(0, 1]` or `max_k < L`, [`EvalError::TooFewPoints`] if the
/// points left unlabelled cannot seed `max_k` clusters, and the errors of
/// [`semi_supervised_kmeans`] and [`brent_bounded`].
pub fn estimate_k_probe<R: RandomSource + ?Sized>(
    x: &[f32],
    dim: usize,
    labels: &[Option<usize>],
    cfg: &EstimateKConfig,
    probe_fraction: f64,
    rng: &mut R,
) -> Result<ProbeKEstimate> {
    if !(probe_fraction > 0.0 && probe_fraction <= 1.0) {
        return Err(EvalError::InvalidConfig {
            what: "probe fraction",
            message: format!("{probe_fraction} is not in (0, 1]"),
        });
    }
    let (_, l_true) = labelled_points(labels);
    let mut classes: Vec<usize> = l_true.clone();
    classes.sort_unstable();
    classes.dedup();
    let num_classes = classes.len();
    let num_probe =
        ((probe_fraction * num_classes as f64).round() as usize).clamp(1, num_classes.max(1));
    // Partial Fisher-Yates: the first `num_probe` entries become the probe classes.
    for i in 0..num_probe.min(num_classes) {
        let r = draw(rng)?;
        let j = i + ((r * (num_classes - i) as f64) as usize).min(num_classes - i - 1);
        classes.swap(i, j);
    }
    let mut probe_classes = classes[..num_probe.min(num_classes)].to_vec();
    probe_classes.sort_unstable();
    let anchors = num_classes.saturating_sub(probe_classes.len());
    let mut hidden = labels.to_vec();
    let mut p_idx = Vec::new();
    let mut p_true = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        if let Some(c) = l {
            if probe_classes.binary_search(c).is_ok() {
                hidden[i] = None;
                p_idx.push(i);
                p_true.push(*c);
            }
        }
    }
    let num_unlabelled = hidden.iter().filter(|l| l.is_none()).count();
    check_range(
        num_classes,
        cfg.max_k,
        labels.len(),
        num_unlabelled + anchors,
    )?;
    let estimate = search_k(num_classes, cfg.max_k, cfg.search, |k| {
        let r = semi_supervised_kmeans(x, dim, &hidden, &cfg.kmeans(k), rng)?;
        let pred: Vec<usize> = p_idx.iter().map(|&i| r.assignments[i]).collect();
        cluster_accuracy(&p_true, &pred)
    })?;
    Ok(ProbeKEstimate {
        estimate,
        probe_classes,
    })
}

/// Indices and classes of the labelled points.
fn labelled_points(labels: &[Option<usize>]) -> (Vec<usize>, Vec<usize>) {
    labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.map(|c| (i, c)))
        .unzip()
}

fn distinct(v: &[usize]) -> usize {
    let mut s = v.to_vec();
    s.sort_unstable();
    s.dedup();
    s.len()
}

/// Checks that `[num_classes, max_k]` is a usable range; `capacity` is how many clusters
/// the data can seed at most (points that may start a centre, plus the anchor classes).
fn check_range(num_classes: usize, max_k: usize, n: usize, capacity: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(EvalError::Empty {
            what: "labelled points",
        });
    }
    if max_k < num_classes {
        return Err(EvalError::InvalidConfig {
            what: "k search range",
            message: format!("max_k = {max_k} is below the {num_classes} labelled classes"),
        });
    }
    if max_k > n {
        return Err(EvalError::InvalidConfig {
            what: "k search range",
            message: format!("max_k = {max_k} exceeds the {n} points"),
        });
    }
    if max_k > capacity {
        return Err(EvalError::TooFewPoints {
            needed: max_k,
            available: capacity,
        });
    }
    Ok(())
}

/// Searches `k` in `[lo, hi]` for the best `score(k)`; each `k` is scored once.
fn search_k(
    lo: usize,
    hi: usize,
    search: KSearch,
    mut score: impl FnMut(usize) -> Result<f64>,
) -> Result<KEstimate> {
    let mut cache: BTreeMap<usize, f64> = BTreeMap::new();
    let mut evaluated = Vec::new();
    let mut eval = |k: usize| -> Result<f64> {
        if let Some(&s) = cache.get(&k) {
            return Ok(s);
        }
        let s = score(k)?;
        cache.insert(k, s);
        evaluated.push((k, s));
        Ok(s)
    };
    let (k, s) = match search {
        KSearch::Brent(opts) => {
            let r = brent_bounded(|x| Ok(-eval(x as usize)?), lo as f64, hi as f64, opts)?;
            let k = r.x as usize;
            (k, eval(k)?)
        }
        KSearch::Exhaustive => {
            let mut best = (lo, f64::NEG_INFINITY);
            for k in lo..=hi {
                let s = eval(k)?;
                if s >= best.1 {
                    best = (k, s);
                }
            }
            best
        }
    };
    Ok(KEstimate {
        k,
        score: s,
        evaluated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brent_finds_a_parabola_minimum() {
        let r = brent_bounded(
            |x| Ok((x - 1.3) * (x - 1.3) + 2.0),
            -4.0,
            9.0,
            BrentOptions::default(),
        )
        .unwrap();
        assert!((r.x - 1.3).abs() < 1e-5);
        assert!(r.converged);
        assert_eq!(r.fun, (r.x - 1.3) * (r.x - 1.3) + 2.0);
    }

    #[test]
    fn brent_degenerate_and_bad_bounds() {
        let r = brent_bounded(Ok, 3.0, 3.0, BrentOptions::default()).unwrap();
        assert_eq!((r.x, r.trace.len()), (3.0, 1));
        assert!(brent_bounded(Ok, 3.0, 2.0, BrentOptions::default()).is_err());
        assert!(brent_bounded(Ok, f64::NAN, 2.0, BrentOptions::default()).is_err());
        let opts = BrentOptions {
            xatol: 1e-5,
            max_evals: 3,
        };
        let r = brent_bounded(|x| Ok(x.sin()), 0.0, 100.0, opts).unwrap();
        assert_eq!(r.trace.len(), 3);
        assert!(!r.converged);
    }

    #[test]
    fn search_caches_each_integer_once() {
        let mut calls = 0;
        let r = search_k(2, 40, KSearch::Brent(BrentOptions::default()), |k| {
            calls += 1;
            Ok(-((k as f64) - 17.0).abs())
        })
        .unwrap();
        assert_eq!(r.k, 17);
        assert_eq!(r.score, 0.0);
        assert_eq!(calls, r.evaluated.len());
        let ks: Vec<usize> = r.evaluated.iter().map(|&(k, _)| k).collect();
        let mut sorted = ks.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ks.len());
    }

    #[test]
    fn exhaustive_breaks_ties_towards_larger_k() {
        let r = search_k(3, 9, KSearch::Exhaustive, |k| {
            Ok(if k <= 6 { 1.0 } else { 0.5 })
        })
        .unwrap();
        assert_eq!((r.k, r.score), (6, 1.0));
        assert_eq!(r.evaluated.len(), 7);
    }
}
