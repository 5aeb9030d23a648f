//! Semi-supervised k-means, the clustering step of generalized category discovery (GCD).
//!
//! # Reference
//!
//! `K_Means.fit_mix` in `methods/clustering/faster_mix_k_means_pytorch.py` of
//! `github.com/sgvaze/generalized-category-discovery` (Vaze et al., CVPR 2022; DTC,
//! `k-han/DTC`, ships a file of the same name in `utils/`). One run
//! (`fit_mix_once`) does:
//!
//! 1. The labelled classes, sorted ascending, become clusters `0..L`; each labelled point
//!    is assigned to its class's cluster for good.
//! 2. Those `L` centres start at the class means of the labelled points; the other `k - L`
//!    come from k-means++ over the **unlabelled** points only, with the class means counted
//!    as centres already chosen (`kpp(u_feats, pre_centers=l_centers)`): each new centre is
//!    the first unlabelled point whose cumulative `D²` probability reaches a uniform draw
//!    (one candidate per step, not scikit-learn's greedy several-candidate variant).
//! 3. Lloyd iterations, at most `max_iter`: assign each unlabelled point to its nearest
//!    centre (squared Euclidean distance); inertia = the unlabelled points' squared
//!    distances to those centres plus the labelled points' squared distances to their own
//!    class's centre; move every centre to the mean of all its points, labelled and
//!    unlabelled; keep the assignment, the moved centres and the inertia of the iteration
//!    with the lowest inertia; stop once `(Σ_j ‖c_j − c_j^old‖)² < tol` (an absolute
//!    tolerance, unlike scikit-learn's, which is relative to the data variance).
//!
//! `fit_mix` repeats that `n_init` times with one random state and keeps the run with the
//! lowest inertia (the first on ties). The reference's defaults are `n_init = 10`,
//! `max_iterations = 100`, `tolerance = 1e-4`, which [`SsKMeansConfig::new`] copies; its
//! evaluation script `methods/clustering/k_means.py` passes `--max_kmeans_iter 10
//! --k_means_init 10` by default, and `bash_scripts/k_means.sh` passes 200 and 100. The
//! script L2-normalises the features first (see [`l2_normalize_rows`]).
//!
//! # Where this differs (only where the reference is undefined or broken)
//!
//! * A cluster that loses all its points keeps its previous centre (the reference takes the
//!   mean of an empty set: NaN).
//! * If every unlabelled point already sits on a centre (all `D²` are zero), k-means++
//!   picks a uniformly random unlabelled point (the reference divides by zero); if rounding
//!   leaves the cumulative sum below the draw, the last point with `D² > 0` is taken (the
//!   reference reuses a stale index).
//! * [`KMeansResult::iterations`] counts the Lloyd iterations of the chosen run (the
//!   reference returns an unrelated loop variable there).
//! * With no labelled point at all this is plain k-means with k-means++ seeding (the first
//!   centre a uniformly random point), i.e. the reference's `fit` rather than `fit_mix`.
//!
//! # Determinism and speed
//!
//! Randomness comes only from the caller's [`RandomSource`]. Per-point work (nearest
//! centre, `D²` updates) runs in parallel with rayon, but every sum (inertia, `D²` total,
//! centre means) is taken sequentially in point order, so the result is bit-identical for
//! any number of threads. Points are one flat row-major `f32` slice; distances are
//! accumulated in `f32` over 8 lanes (vectorisable), sums in `f64`. One Lloyd iteration
//! costs `O(n·k·dim)`; n = 50,000, dim = 768, k = 200 is about 8·10⁹ multiply-adds.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::detectors::validate_rows;
use crate::error::{EvalError, Result};

/// A source of uniform random numbers in `[0, 1)`, so that callers bring their own seeded
/// generator (the trainer's xoshiro, a test's SplitMix, …).
///
/// Any `FnMut() -> f64` is one:
///
/// ```
/// use unseen_eval::kmeans::RandomSource;
/// let mut state = 0u64;
/// let mut rng = move || {
///     state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
///     (state >> 11) as f64 / (1u64 << 53) as f64
/// };
/// let u = rng.uniform();
/// assert!((0.0..1.0).contains(&u));
/// ```
pub trait RandomSource {
    /// The next uniform draw in `[0, 1)`.
    fn uniform(&mut self) -> f64;
}

impl<F: FnMut() -> f64> RandomSource for F {
    fn uniform(&mut self) -> f64 {
        self()
    }
}

/// Settings of [`semi_supervised_kmeans`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SsKMeansConfig {
    /// Number of clusters (labelled classes included).
    pub k: usize,
    /// Independent k-means++ starts; the one with the lowest inertia is kept.
    pub n_init: usize,
    /// Maximum Lloyd iterations per start.
    pub max_iter: usize,
    /// Stop when the squared sum of centre shifts falls below this (absolute).
    pub tol: f64,
}

impl SsKMeansConfig {
    /// The reference's default number of starts.
    pub const DEFAULT_N_INIT: usize = 10;
    /// The reference's default iteration cap.
    pub const DEFAULT_MAX_ITER: usize = 100;
    /// The reference's default tolerance.
    pub const DEFAULT_TOL: f64 = 1e-4;

    /// `k` clusters with the reference's defaults (10 starts, 100 iterations, tol 1e-4).
    pub fn new(k: usize) -> Self {
        Self {
            k,
            n_init: Self::DEFAULT_N_INIT,
            max_iter: Self::DEFAULT_MAX_ITER,
            tol: Self::DEFAULT_TOL,
        }
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`EvalError::InvalidConfig`] if `k`, `n_init` or `max_iter` is 0 or `tol` is
    /// negative or not finite.
    pub fn validate(&self) -> Result<()> {
        let bad = |what, message: &str| {
            Err(EvalError::InvalidConfig {
                what,
                message: message.to_string(),
            })
        };
        if self.k == 0 {
            return bad("k-means k", "at least one cluster is needed");
        }
        if self.n_init == 0 {
            return bad("k-means n_init", "at least one start is needed");
        }
        if self.max_iter == 0 {
            return bad("k-means max_iter", "at least one iteration is needed");
        }
        if !(self.tol.is_finite() && self.tol >= 0.0) {
            return bad(
                "k-means tol",
                &format!("{} is not a finite number >= 0", self.tol),
            );
        }
        Ok(())
    }
}

/// The outcome of [`semi_supervised_kmeans`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KMeansResult {
    /// Cluster of every point, in input order. Clusters `0..labelled_classes.len()` are the
    /// labelled classes; every labelled point is in its class's cluster.
    pub assignments: Vec<usize>,
    /// Centres, row-major `[k, dim]`: the means of the points of `assignments`.
    pub centers: Vec<f32>,
    /// Sum of squared distances of the points to the centres they were assigned to (the
    /// centres before the final mean update, as the reference reports it).
    pub inertia: f64,
    /// Lloyd iterations run by the kept start.
    pub iterations: usize,
    /// The labelled classes in ascending order; cluster `i` is class `labelled_classes[i]`.
    pub labelled_classes: Vec<usize>,
}

/// Semi-supervised k-means as in the GCD reference (see the [module docs](self)).
///
/// `x` holds `n` points of `dim` values, row-major; `labels[i]` is `Some(class)` for a
/// labelled point and `None` for an unlabelled one. Labelled classes may use any ids.
///
/// ```
/// use unseen_eval::kmeans::{semi_supervised_kmeans, SsKMeansConfig};
/// // Two labelled points of class 5 near 0, two unlabelled points near 10.
/// let x = [0.0, 0.2, 10.0, 10.2];
/// let labels = [Some(5), Some(5), None, None];
/// let mut seed = 1u64;
/// let mut rng = move || {
///     seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
///     (seed >> 11) as f64 / (1u64 << 53) as f64
/// };
/// let r = semi_supervised_kmeans(&x, 1, &labels, &SsKMeansConfig::new(2), &mut rng)?;
/// assert_eq!(r.assignments, vec![0, 0, 1, 1]);
/// assert_eq!(r.labelled_classes, vec![5]);
/// # Ok::<(), unseen_eval::EvalError>(())
/// ```
///
/// # Errors
/// [`EvalError::Shape`] / [`EvalError::NonFiniteValue`] for a malformed `x`,
/// [`EvalError::Empty`] for no points, [`EvalError::LengthMismatch`] if there is not one
/// label per point, [`EvalError::InvalidConfig`] for a bad `cfg`,
/// [`EvalError::TooFewClusters`] if `k` is below the number of labelled classes,
/// [`EvalError::TooFewPoints`] if fewer than `k - L` points are unlabelled,
/// [`EvalError::InvalidRandom`] if `rng` returns a value outside `[0, 1)`.
pub fn semi_supervised_kmeans<R: RandomSource + ?Sized>(
    x: &[f32],
    dim: usize,
    labels: &[Option<usize>],
    cfg: &SsKMeansConfig,
    rng: &mut R,
) -> Result<KMeansResult> {
    let problem = Problem::new(x, dim, labels, cfg)?;
    let mut best: Option<Run> = None;
    for _ in 0..cfg.n_init {
        let run = problem.fit_once(cfg, rng)?;
        if best.as_ref().is_none_or(|b| run.inertia < b.inertia) {
            best = Some(run);
        }
    }
    let best = best.expect("n_init >= 1 was checked");
    Ok(KMeansResult {
        assignments: best.assignments,
        centers: best.centers,
        inertia: best.inertia,
        iterations: best.iterations,
        labelled_classes: problem.classes,
    })
}

/// Index of the nearest centre of every row of `x` (squared Euclidean distance, the lowest
/// index on ties), e.g. to assign test points to the centres of a [`KMeansResult`].
///
/// # Errors
/// [`EvalError::Shape`] / [`EvalError::NonFiniteValue`] for a malformed `x` or `centers`
/// (which must hold at least one centre).
pub fn nearest_centers(x: &[f32], dim: usize, centers: &[f32]) -> Result<Vec<usize>> {
    validate_rows("points", x, dim)?;
    if validate_rows("centers", centers, dim)? == 0 {
        return Err(EvalError::Empty { what: "centers" });
    }
    Ok(x.par_chunks_exact(dim)
        .map(|row| nearest(row, centers, dim).0)
        .collect())
}

/// Scales every row of `x` to unit L2 norm, as `torch.nn.functional.normalize(x, dim=-1)`
/// (a row is divided by `max(‖row‖, 1e-12)`, so an all-zero row stays zero). The GCD
/// reference does this to the features before every k-means.
///
/// # Errors
/// [`EvalError::Shape`] / [`EvalError::NonFiniteValue`] for a malformed `x`.
pub fn l2_normalize_rows(x: &mut [f32], dim: usize) -> Result<()> {
    validate_rows("features", x, dim)?;
    x.par_chunks_exact_mut(dim).for_each(|row| {
        let norm = row
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum::<f64>()
            .sqrt();
        let scale = 1.0 / norm.max(1e-12);
        for v in row {
            *v = (f64::from(*v) * scale) as f32;
        }
    });
    Ok(())
}

/// Validated input of one clustering.
struct Problem<'a> {
    x: &'a [f32],
    dim: usize,
    k: usize,
    /// Labelled classes, ascending; cluster `i` is `classes[i]`.
    classes: Vec<usize>,
    /// Indices of labelled points and their (fixed) clusters.
    labelled: Vec<(usize, usize)>,
    /// Indices of unlabelled points, ascending.
    unlabelled: Vec<usize>,
    /// Class means of the labelled points, `[classes.len(), dim]`.
    class_means: Vec<f32>,
}

/// One k-means start.
struct Run {
    assignments: Vec<usize>,
    centers: Vec<f32>,
    inertia: f64,
    iterations: usize,
}

impl<'a> Problem<'a> {
    fn new(
        x: &'a [f32],
        dim: usize,
        labels: &[Option<usize>],
        cfg: &SsKMeansConfig,
    ) -> Result<Self> {
        cfg.validate()?;
        let n = validate_rows("features", x, dim)?;
        if n == 0 {
            return Err(EvalError::Empty { what: "features" });
        }
        if labels.len() != n {
            return Err(EvalError::LengthMismatch {
                what: "feature rows vs labels",
                left: n,
                right: labels.len(),
            });
        }
        let mut cluster_of: BTreeMap<usize, usize> =
            labels.iter().flatten().map(|&c| (c, 0)).collect();
        for (i, v) in cluster_of.values_mut().enumerate() {
            *v = i;
        }
        let num_classes = cluster_of.len();
        if cfg.k < num_classes {
            return Err(EvalError::TooFewClusters {
                k: cfg.k,
                labelled_classes: num_classes,
            });
        }
        let mut labelled = Vec::new();
        let mut unlabelled = Vec::new();
        for (i, l) in labels.iter().enumerate() {
            match l {
                Some(c) => labelled.push((i, cluster_of[c])),
                None => unlabelled.push(i),
            }
        }
        if unlabelled.len() < cfg.k - num_classes {
            return Err(EvalError::TooFewPoints {
                needed: cfg.k - num_classes,
                available: unlabelled.len(),
            });
        }
        let problem = Self {
            x,
            dim,
            k: cfg.k,
            classes: cluster_of.into_keys().collect(),
            labelled,
            unlabelled,
            class_means: Vec::new(),
        };
        let mut assignments = vec![0; n];
        for &(i, c) in &problem.labelled {
            assignments[i] = c;
        }
        let mut class_means = vec![0.0; num_classes * dim];
        problem.mean_update(
            &mut class_means,
            problem.labelled.iter().map(|&(i, _)| i),
            &assignments,
        );
        Ok(Self {
            class_means,
            ..problem
        })
    }

    fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }

    /// One start: k-means++ seeding, then Lloyd iterations.
    fn fit_once<R: RandomSource + ?Sized>(&self, cfg: &SsKMeansConfig, rng: &mut R) -> Result<Run> {
        let dim = self.dim;
        let mut centers = self.seed(rng)?;
        let mut assignments = vec![0; self.x.len() / dim];
        for &(i, c) in &self.labelled {
            assignments[i] = c;
        }
        let all_points = 0..assignments.len();
        let mut best: Option<Run> = None;
        let mut iterations = 0;
        while iterations < cfg.max_iter {
            iterations += 1;
            let nearest_u: Vec<(usize, f32)> = self
                .unlabelled
                .par_iter()
                .map(|&i| nearest(self.row(i), &centers, dim))
                .collect();
            let labelled_d: Vec<f32> = self
                .labelled
                .par_iter()
                .map(|&(i, c)| sq_dist(self.row(i), &centers[c * dim..(c + 1) * dim]))
                .collect();
            let mut inertia = 0.0f64;
            for (&i, &(c, d)) in self.unlabelled.iter().zip(&nearest_u) {
                assignments[i] = c;
                inertia += f64::from(d);
            }
            inertia += labelled_d.iter().map(|&d| f64::from(d)).sum::<f64>();

            let old = centers.clone();
            self.mean_update(&mut centers, all_points.clone(), &assignments);
            if best.as_ref().is_none_or(|b| inertia < b.inertia) {
                best = Some(Run {
                    assignments: assignments.clone(),
                    centers: centers.clone(),
                    inertia,
                    iterations: 0,
                });
            }
            let shift: f64 = centers
                .chunks_exact(dim)
                .zip(old.chunks_exact(dim))
                .map(|(a, b)| f64::from(sq_dist(a, b)).sqrt())
                .sum();
            if shift * shift < cfg.tol {
                break;
            }
        }
        let mut best = best.expect("max_iter >= 1 was checked");
        best.iterations = iterations;
        Ok(best)
    }

    /// Initial centres: the class means, then k-means++ over the unlabelled points.
    fn seed<R: RandomSource + ?Sized>(&self, rng: &mut R) -> Result<Vec<f32>> {
        let dim = self.dim;
        let u = &self.unlabelled;
        let mut centers = Vec::with_capacity(self.k * dim);
        centers.extend_from_slice(&self.class_means);
        if centers.is_empty() {
            let j = uniform_index(draw(rng)?, u.len());
            centers.extend_from_slice(self.row(u[j]));
        }
        if centers.len() == self.k * dim {
            return Ok(centers);
        }
        let mut d2: Vec<f32> = u
            .par_iter()
            .map(|&i| nearest(self.row(i), &centers, dim).1)
            .collect();
        while centers.len() < self.k * dim {
            let total: f64 = d2.iter().map(|&d| f64::from(d)).sum();
            let r = draw(rng)?;
            let j = if total > 0.0 {
                let target = r * total;
                let mut cum = 0.0f64;
                let mut pick = None;
                let mut last_positive = 0;
                for (j, &d) in d2.iter().enumerate() {
                    if d > 0.0 {
                        cum += f64::from(d);
                        last_positive = j;
                        if cum >= target {
                            pick = Some(j);
                            break;
                        }
                    }
                }
                pick.unwrap_or(last_positive)
            } else {
                uniform_index(r, u.len())
            };
            let start = centers.len();
            centers.extend_from_slice(self.row(u[j]));
            let new = &centers[start..];
            d2.par_iter_mut().zip(u.par_iter()).for_each(|(d, &i)| {
                *d = d.min(sq_dist(self.row(i), new));
            });
        }
        Ok(centers)
    }

    /// Sets each centre to the mean of the points (from `points`) assigned to it, summing
    /// in `f64` in point order; a centre with no point keeps its value.
    fn mean_update(
        &self,
        centers: &mut [f32],
        points: impl Iterator<Item = usize>,
        assignments: &[usize],
    ) {
        let dim = self.dim;
        let k = centers.len() / dim;
        let mut sums = vec![0.0f64; k * dim];
        let mut counts = vec![0usize; k];
        for i in points {
            let c = assignments[i];
            counts[c] += 1;
            for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(self.row(i)) {
                *s += f64::from(v);
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                let n = counts[c] as f64;
                for (dst, &s) in centers[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                {
                    *dst = (s / n) as f32;
                }
            }
        }
    }
}

/// One validated uniform draw.
pub(crate) fn draw<R: RandomSource + ?Sized>(rng: &mut R) -> Result<f64> {
    let value = rng.uniform();
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(EvalError::InvalidRandom { value })
    }
}

/// `floor(r * n)` for `r` in `[0, 1)`, kept below `n`.
fn uniform_index(r: f64, n: usize) -> usize {
    ((r * n as f64) as usize).min(n - 1)
}

/// Nearest centre of `row` and its squared distance (lowest index on ties).
fn nearest(row: &[f32], centers: &[f32], dim: usize) -> (usize, f32) {
    let mut best = (0, f32::INFINITY);
    for (c, center) in centers.chunks_exact(dim).enumerate() {
        let d = sq_dist(row, center);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

/// Squared Euclidean distance, accumulated over 8 lanes in a fixed order.
pub(crate) fn sq_dist(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0.0f32; LANES];
    let ca = a.chunks_exact(LANES);
    let cb = b.chunks_exact(LANES);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        tail += d * d;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SplitMix64 as a [`RandomSource`].
    fn splitmix(seed: u64) -> impl FnMut() -> f64 {
        let mut s = seed;
        move || {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn sq_dist_matches_naive() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| (i * i) as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        assert!((sq_dist(&a, &b) - naive).abs() <= 1e-4 * naive);
        assert_eq!(sq_dist(&[], &[]), 0.0);
    }

    #[test]
    fn normalize_rows() {
        let mut x = [3.0, 4.0, 0.0, 0.0];
        l2_normalize_rows(&mut x, 2).unwrap();
        assert_eq!(x, [0.6, 0.8, 0.0, 0.0]);
    }

    #[test]
    fn all_labelled_is_class_means_in_one_iteration() {
        let x = [0.0, 2.0, 10.0, 14.0];
        let labels = [Some(9), Some(9), Some(4), Some(4)];
        let r = semi_supervised_kmeans(&x, 1, &labels, &SsKMeansConfig::new(2), &mut splitmix(1))
            .unwrap();
        assert_eq!(r.labelled_classes, vec![4, 9]);
        assert_eq!(r.assignments, vec![1, 1, 0, 0]);
        assert_eq!(r.centers, vec![12.0, 1.0]);
        assert_eq!(r.inertia, 1.0 + 1.0 + 4.0 + 4.0);
        assert_eq!(r.iterations, 1);
    }

    #[test]
    fn seeding_never_uses_a_duplicate_of_a_chosen_centre() {
        // Three distinct unlabelled locations, k = 3, no labels: every start must place the
        // three centres on the three locations.
        let x = [0.0, 0.0, 5.0, 5.0, 9.0];
        let labels = [None; 5];
        for seed in 0..20 {
            let r = semi_supervised_kmeans(
                &x,
                1,
                &labels,
                &SsKMeansConfig::new(3),
                &mut splitmix(seed),
            )
            .unwrap();
            assert_eq!(r.inertia, 0.0, "seed {seed}");
            let mut c = r.centers.clone();
            c.sort_by(f32::total_cmp);
            assert_eq!(c, vec![0.0, 5.0, 9.0]);
        }
    }

    #[test]
    fn rejects_bad_random_values() {
        let x = [0.0, 1.0];
        let e = semi_supervised_kmeans(&x, 1, &[None, None], &SsKMeansConfig::new(2), &mut || 1.0)
            .unwrap_err();
        assert!(matches!(e, EvalError::InvalidRandom { value } if value == 1.0));
    }
}
