//! Nearest-neighbour detectors on a bank of normalised ID training features: KNN (minus
//! the distance to the k-th nearest neighbour) and NNGuide (the mean similarity to the k
//! nearest, guided by the energy of the logits).
//!
//! Both search the bank exactly (brute force, as faiss's `IndexFlatL2` / `IndexFlatIP`
//! that OpenOOD uses). The bank is kept in `f32`, in blocks of [`BLOCK_ROWS`] rows; the
//! queries are scored in chunks of at most [`QUERY_CHUNK`] (as many chunks as that needs,
//! of equal length), one chunk per rayon task: the chunk's keys against one bank block come
//! from one `f32` GEMM (faer, sequential inside the task; for KNN it adds `−2 q·b` onto
//! `‖q‖² + ‖b‖²`), and a per-query candidate buffer keeps the `k` smallest keys seen so far
//! (a vector compare of 16 keys at a time with its threshold, a selection when it fills).
//! No `[queries, bank]` matrix is ever formed.
//!
//! Peak memory while scoring, in bytes, with `N_b` bank rows of dimension `D`, `T` rayon
//! threads, `C` ≤ [`QUERY_CHUNK`] queries per chunk, `B` = [`BLOCK_ROWS`] and `k` neighbours:
//!
//! `4·N_b·D` (the bank) `+ 4·N_b` (its squared norms, KNN only)
//! `+ T·4·C·(D + 2B + 2k + 16)` (per task: the normalised chunk, its keys against one block,
//! the candidate buffers of `2k + B` keys and their bookkeeping)
//! `+ 20·n` (per-query results and the scores of `n` queries).
//!
//! The fit holds the bank plus one batch of the source (and, while a block fills, at most
//! one partly used block of `4·B·D` bytes).
//!
//! Scores do not depend on the number of threads: the chunks depend on the number of
//! queries alone, each chunk is searched by one task with a sequential GEMM, and the bank is
//! visited in the same order for every chunk.

use std::fmt;

use faer::linalg::matmul::matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

use super::linalg::{check_features, validate_batch};
use super::logit::{logsumexp, with_params};
use super::{validate_rows, Detector, FeatureBatch, FeatureSource, Head, Needs};
use crate::error::{EvalError, Result};

/// Bank rows per block: the bank is stored, and searched, in blocks of this many rows. A
/// block's keys for a chunk of queries (`4·B·C` bytes) stay in a core's L2 cache, and the
/// count is a multiple of the rows of faer's `f32` GEMM micro-kernels (96 with AVX-512, 24
/// with AVX2), so no narrower remainder kernel runs.
const BLOCK_ROWS: usize = 384;

/// At most this many queries are searched together (one rayon task, one GEMM per bank
/// block; the GEMM repacks the bank block for every chunk, so larger chunks pack less).
const QUERY_CHUNK: usize = 768;

/// OpenOOD's `normalizer`, `x / ‖x‖₂ + 1e-10`, times `scale`, written to `out`.
///
/// Python's precedence makes OpenOOD add the `1e-10` to every component after the
/// division (not to the norm); we do the same. An all-zero row, for which OpenOOD gets
/// NaN (`0 / 0`), becomes `1e-10 · scale` in every component. Computed in `f64`, rounded
/// to `f32` once.
fn normalize_into(row: &[f32], scale: f64, out: &mut [f32]) {
    let norm = row
        .iter()
        .map(|&v| f64::from(v) * f64::from(v))
        .sum::<f64>()
        .sqrt();
    let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
    for (o, &v) in out.iter_mut().zip(row) {
        *o = ((f64::from(v) * inv + 1e-10) * scale) as f32;
    }
}

/// Whether training row `i` (0-based, in the source's order) is kept by a subsample of
/// fraction `s`: `⌊(i + 1)·s + ½⌋ > ⌊i·s + ½⌋`.
///
/// The kept rows are evenly spaced, `⌊N·s + ½⌋` of the first `N` (`s·N` rounded, halves
/// up), decided from the row's index alone: the same rows whatever the batch size, and
/// bit-reproducible (one `f64` multiply-add per row). `s = 1` keeps every row.
pub(crate) fn keep_row(i: u64, s: f64) -> bool {
    ((i + 1) as f64 * s + 0.5).floor() > (i as f64 * s + 0.5).floor()
}

/// Which bank is built, and which similarity it is searched with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Metric {
    /// KNN: normalised rows; squared Euclidean distance `‖q‖² + ‖b‖² − 2 q·b` (faiss
    /// `IndexFlatL2`). The key is the distance, the smallest wins.
    L2,
    /// NNGuide: normalised rows times the `logsumexp` of their logits; inner product `q·b`
    /// (faiss `IndexFlatIP`). The key is `−q·b`, the smallest wins.
    Ip,
}

/// `‖x‖²`, summed in `f64`, rounded to `f32` once.
fn sq_norm(x: &[f32]) -> f32 {
    x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() as f32
}

/// The normalised (and, for NNGuide, energy-scaled) training features.
#[derive(Clone)]
struct Bank {
    dim: usize,
    /// Rows kept (the bank size).
    rows: usize,
    /// Rows the source served.
    train_rows: usize,
    /// Row-major `[≤ BLOCK_ROWS, dim]` blocks, all full but the last.
    blocks: Vec<Vec<f32>>,
    /// Squared norms of every block's rows (L2 only; empty for IP).
    norms: Vec<Vec<f32>>,
}

impl fmt::Debug for Bank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bank({} x {} of {} training rows)",
            self.rows, self.dim, self.train_rows
        )
    }
}

/// The rows of `train` kept by the subsample `s`, normalised, each times `logsumexp` of
/// its logits for [`Metric::Ip`] (one pass).
fn collect_bank(name: &str, train: &mut dyn FeatureSource, s: f64, metric: Metric) -> Result<Bank> {
    let d = train.dim();
    let mut blocks: Vec<Vec<f32>> = Vec::new();
    let mut block: Vec<f32> = Vec::new();
    let (mut index, mut rows) = (0u64, 0usize);
    train.for_each_batch(&mut |b: FeatureBatch<'_>| {
        validate_batch(&b)?;
        if b.dim != d {
            return Err(EvalError::LengthMismatch {
                what: "training batch feature dimension vs the source's",
                left: b.dim,
                right: d,
            });
        }
        let logits = if metric == Metric::Ip {
            Some(training_logits(name, &b)?)
        } else {
            None
        };
        for (r, row) in b.features.chunks_exact(d).enumerate() {
            let i = index;
            index += 1;
            if !keep_row(i, s) {
                continue;
            }
            let scale = logits.map_or(1.0, |l| {
                logsumexp(&l[r * b.num_classes..(r + 1) * b.num_classes])
            });
            if block.capacity() == 0 {
                block.reserve_exact(BLOCK_ROWS * d);
            }
            let start = block.len();
            block.resize(start + d, 0.0);
            normalize_into(row, scale, &mut block[start..]);
            rows += 1;
            if block.len() == BLOCK_ROWS * d {
                blocks.push(std::mem::take(&mut block));
            }
        }
        Ok(())
    })?;
    if !block.is_empty() {
        block.shrink_to_fit();
        blocks.push(block);
    }
    Ok(Bank {
        dim: d,
        rows,
        train_rows: index as usize,
        blocks,
        norms: Vec::new(),
    })
}

/// A training batch's logits (NNGuide), validated.
fn training_logits<'b>(name: &str, b: &FeatureBatch<'b>) -> Result<&'b [f32]> {
    let logits = b.logits.ok_or_else(|| EvalError::Unsupported {
        detector: name.to_string(),
        reason: "it needs the logits of the training set, and the source has none".into(),
    })?;
    let rows = validate_rows("training logits", logits, b.num_classes)?;
    if rows != b.num_rows() {
        return Err(EvalError::LengthMismatch {
            what: "training feature rows vs logit rows",
            left: b.num_rows(),
            right: rows,
        });
    }
    Ok(logits)
}

/// Builds the bank: the subsample `s` of the training rows, or, when that keeps fewer than
/// `k` rows of a training set that has `k`, the subsample `k / N` (exactly `k` rows, a
/// second pass).
fn build_bank(
    name: &str,
    train: &mut dyn FeatureSource,
    k: usize,
    s: f64,
    metric: Metric,
) -> Result<Bank> {
    if k == 0 {
        return Err(EvalError::InvalidDetectorParameter {
            detector: name.to_string(),
            message: "`k` must be at least 1".into(),
        });
    }
    if !(s > 0.0 && s <= 1.0) {
        return Err(EvalError::InvalidDetectorParameter {
            detector: name.to_string(),
            message: format!("`subsample` = {s} must be in (0, 1]"),
        });
    }
    let mut bank = collect_bank(name, train, s, metric)?;
    let n = bank.train_rows;
    if n == 0 {
        return Err(EvalError::Empty {
            what: "the training set of a nearest-neighbour detector",
        });
    }
    if bank.rows < k && n >= k {
        bank = collect_bank(name, train, k as f64 / n as f64, metric)?;
    }
    if bank.rows < k {
        return Err(EvalError::Unsupported {
            detector: name.to_string(),
            reason: format!(
                "k = {k} is larger than the bank of {} training features (of {} in the training set)",
                bank.rows, bank.train_rows
            ),
        });
    }
    if metric == Metric::L2 {
        let d = bank.dim;
        bank.norms = bank
            .blocks
            .iter()
            .map(|b| b.chunks_exact(d).map(sq_norm).collect())
            .collect();
    }
    Ok(bank)
}

/// Keys compared with the threshold at a time: one vector compare, and only when a key
/// passes are the ones below the threshold pushed.
const LANES: usize = 16;

/// The `k` smallest keys seen so far (as values; which rows they came from is not kept).
struct TopK {
    k: usize,
    /// Candidates kept before a selection: `2k + B`.
    cap: usize,
    cand: Vec<f32>,
    /// Every key `>= tau` can be dropped: `k` kept keys are `<= tau`.
    tau: f32,
}

impl TopK {
    fn new(k: usize) -> Self {
        let cap = 2 * k + BLOCK_ROWS;
        Self {
            k,
            cap,
            cand: Vec::with_capacity(cap),
            tau: f32::INFINITY,
        }
    }

    /// Offers the keys of one bank block.
    fn offer(&mut self, mut keys: &[f32]) {
        if self.tau == f32::INFINITY {
            // Nothing to compare with yet: the keys go in as they come until the buffer is
            // full, and its first selection sets the threshold.
            let take = keys.len().min(self.cap - self.cand.len());
            self.cand.extend_from_slice(&keys[..take]);
            keys = &keys[take..];
            if self.cand.len() == self.cap {
                self.shrink();
            }
        }
        let (groups, rest) = keys.as_chunks::<LANES>();
        for group in groups {
            // Most groups hold no key below the threshold once `k` are kept: one vector
            // compare rejects them. Otherwise only the keys below it are pushed.
            let tau = self.tau;
            if group.iter().fold(false, |hit, &v| hit | (v < tau)) {
                let mut below = group
                    .iter()
                    .enumerate()
                    .fold(0u32, |m, (l, &v)| m | (u32::from(v < tau) << l));
                while below != 0 {
                    self.push(group[below.trailing_zeros() as usize]);
                    below &= below - 1;
                }
            }
        }
        for &v in rest {
            self.push(v);
        }
    }

    fn push(&mut self, v: f32) {
        if v < self.tau {
            self.cand.push(v);
            if self.cand.len() >= self.cap {
                self.shrink();
            }
        }
    }

    /// Keeps the `k` smallest candidates; `tau` becomes the largest of them.
    fn shrink(&mut self) {
        self.cand.select_nth_unstable_by(self.k - 1, f32::total_cmp);
        self.cand.truncate(self.k);
        self.tau = self.cand[self.k - 1];
    }

    /// The k-th smallest key and the sum of the `k` smallest (`f64`).
    fn finish(mut self) -> (f32, f64) {
        self.shrink();
        (self.tau, self.cand.iter().map(|&v| f64::from(v)).sum())
    }
}

/// Queries per chunk for `n` queries: the `⌈n / C⌉` chunks share them evenly (so that no
/// short last chunk leaves a thread idle), and depend on `n` alone (so do the scores).
fn chunk_len(n: usize) -> usize {
    n.div_ceil(n.div_ceil(QUERY_CHUNK).max(1)).max(1)
}

/// For every row of `queries` (raw features, row-major `[n, dim]`, normalised here): the
/// k-th smallest key over the bank and the sum of the `k` smallest keys.
fn search(bank: &Bank, queries: &[f32], k: usize, metric: Metric) -> Vec<(f32, f64)> {
    let d = bank.dim;
    let n = queries.len() / d;
    let c = chunk_len(n);
    let mut out = vec![(0.0f32, 0.0f64); n];
    out.par_chunks_mut(c)
        .zip(queries.par_chunks(c * d))
        .for_each(|(out, q)| search_chunk(bank, q, k, metric, out));
    out
}

/// [`search`] for one chunk of queries, sequentially.
fn search_chunk(bank: &Bank, queries: &[f32], k: usize, metric: Metric, out: &mut [(f32, f64)]) {
    let d = bank.dim;
    let c = out.len();
    let mut q = vec![0.0f32; c * d];
    for (src, dst) in queries.chunks_exact(d).zip(q.chunks_exact_mut(d)) {
        normalize_into(src, 1.0, dst);
    }
    let q_sq: Vec<f32> = match metric {
        Metric::L2 => q.chunks_exact(d).map(sq_norm).collect(),
        Metric::Ip => Vec::new(),
    };
    // `[D, C]` column-major: the chunk, transposed.
    let rhs = MatRef::from_column_major_slice(&q, d, c);
    let mut tops: Vec<TopK> = (0..c).map(|_| TopK::new(k)).collect();
    let mut keys = vec![0.0f32; BLOCK_ROWS.min(bank.rows) * c];
    for (bi, block) in bank.blocks.iter().enumerate() {
        let rows = block.len() / d;
        let keys = &mut keys[..rows * c];
        // `[rows, D]`: the row-major block as a view.
        let lhs = MatRef::from_column_major_slice(block, d, rows).transpose();
        let (accum, alpha) = match metric {
            Metric::L2 => {
                // `‖q‖² + ‖b‖²`, to which the GEMM adds `−2 q·b` (faiss's order).
                for (col, &qq) in keys.chunks_exact_mut(rows).zip(&q_sq) {
                    for (x, &bb) in col.iter_mut().zip(&bank.norms[bi]) {
                        *x = qq + bb;
                    }
                }
                (Accum::Add, -2.0f32)
            }
            Metric::Ip => (Accum::Replace, -1.0f32),
        };
        // `[rows, C]` column-major: query j's keys are contiguous.
        let dst = MatMut::from_column_major_slice_mut(keys, rows, c);
        matmul(dst, accum, lhs, rhs, alpha, Par::Seq);
        for (top, col) in tops.iter_mut().zip(keys.chunks_exact(rows)) {
            top.offer(col);
        }
    }
    for (o, top) in out.iter_mut().zip(tops) {
        *o = top.finish();
    }
}

/// What [`Knn`] and [`NnGuide`] share: `k`, the subsample, and the bank once fitted.
#[derive(Debug, Clone)]
struct Searcher {
    k: usize,
    subsample: f64,
    metric: Metric,
    bank: Option<Bank>,
}

impl Searcher {
    fn new(k: usize, subsample: f64, metric: Metric) -> Self {
        Self {
            k,
            subsample,
            metric,
            bank: None,
        }
    }

    /// `name` with the parameters that differ from the defaults.
    fn spec(&self, name: &str, default_k: usize) -> String {
        let mut p = Vec::new();
        if self.k != default_k {
            p.push(format!("k={}", self.k));
        }
        if self.subsample != 1.0 {
            p.push(format!("subsample={}", self.subsample));
        }
        with_params(name, &p)
    }

    /// Builds the bank (unfitted if that fails).
    fn fit(&mut self, name: &str, train: &mut dyn FeatureSource) -> Result<()> {
        self.bank = None;
        self.bank = Some(build_bank(
            name,
            train,
            self.k,
            self.subsample,
            self.metric,
        )?);
        Ok(())
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.bank
            .as_ref()
            .map(|b| {
                vec![
                    ("bank_size".into(), b.rows as f64),
                    ("train_size".into(), b.train_rows as f64),
                ]
            })
            .unwrap_or_default()
    }

    /// The fitted bank and the checked query features with their number of rows.
    fn queries<'f>(
        &self,
        name: &str,
        features: Option<&'f [f32]>,
    ) -> Result<(&Bank, &'f [f32], usize)> {
        let bank = self.bank.as_ref().ok_or_else(|| EvalError::NotFitted {
            detector: name.to_string(),
        })?;
        let (f, n) = check_features(name, features, bank.dim)?;
        Ok((bank, f, n))
    }
}

/// KNN: minus the squared Euclidean distance from the normalised feature to its `k`-th
/// nearest neighbour among the normalised ID training features,
/// `score(z) = −‖ẑ − b̂_(k)‖²` with `x̂ = x / ‖x‖₂ + 10⁻¹⁰` and `b̂_(k)` the k-th nearest.
///
/// Sun et al., "Out-of-Distribution Detection with Deep Nearest Neighbors", ICML 2022;
/// OpenOOD `knn_postprocessor.py` (faiss `IndexFlatL2`, which returns squared distances,
/// computed as `‖q‖² + ‖b‖² − 2 q·b` in `f32` and clamped at 0, as here; score
/// `−D[:, -1]`; `K = 50`). The logits are not used.
///
/// `subsample = s ∈ (0, 1]` keeps evenly spaced training rows: row `i` (0-based, in the
/// source's order) is kept iff `⌊(i + 1)·s + ½⌋ > ⌊i·s + ½⌋`, which keeps `⌊N·s + ½⌋` of
/// `N` rows whatever the batch size, bit-reproducibly. If that is fewer than `k` (and the
/// training set has `k` rows), the same rule with `s = k / N` keeps exactly `k`. OpenOOD
/// (and the default, `s = 1`) keeps all.
///
/// The bank is exact brute force, in `f32`, searched by blocked `f32` GEMMs. Peak memory
/// while scoring, in bytes, for a bank of `N_b` rows of dimension `D`, `T` rayon threads,
/// `C ≤ 768` queries per chunk, `B = 384` bank rows per block and `n` queries:
/// `4·N_b·(D + 1) + T·4·C·(D + 2B + 2k + 16) + 20·n`; the fit holds `4·N_b·D` plus one
/// batch of the source and one partly filled block (`≤ 4·B·D`). Scores are identical
/// whatever the thread count.
#[derive(Debug, Clone)]
pub struct Knn(Searcher);

impl Knn {
    /// KNN with `k` neighbours on a subsample `subsample ∈ (0, 1]` of the training set.
    pub fn new(k: usize, subsample: f64) -> Self {
        Self(Searcher::new(k, subsample, Metric::L2))
    }
}

impl Detector for Knn {
    fn name(&self) -> String {
        self.0.spec("knn", 50)
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, _head: Option<&Head>) -> Result<()> {
        self.0.fit(&self.name(), train)
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.0.fitted()
    }

    fn score(&self, _logits: &[f32], _k: usize, features: Option<&[f32]>) -> Result<Vec<f32>> {
        let (bank, f, _) = self.0.queries(&self.name(), features)?;
        Ok(search(bank, f, self.0.k, self.0.metric)
            .into_iter()
            .map(|(kth, _)| -kth.max(0.0))
            .collect())
    }
}

/// NNGuide: the mean inner product of the normalised feature with its `k` most similar
/// "guide" rows, times the energy of its logits:
/// `score(z, ℓ) = logsumexp(ℓ) · (1/k) Σ_{top k over i} ⟨ẑ, g_i⟩` with the guide bank
/// `g_i = x̂_i · logsumexp(ℓ_i)` over the ID training features `x_i` and logits `ℓ_i`, and
/// `x̂ = x / ‖x‖₂ + 10⁻¹⁰`.
///
/// Park et al., "Nearest Neighbor Guidance for Out-of-Distribution Detection", ICCV 2023;
/// OpenOOD `nnguide_postprocessor.py` (faiss `IndexFlatIP`, `K = 100`). OpenOOD builds the
/// bank from a fraction `alpha = 0.01` of the training set: the first batches of the
/// (unshuffled) training loader until they exceed `int(alpha·N)` rows. Here `subsample`
/// plays that part with evenly spaced rows (the rule of [`Knn`]), and defaults to the
/// whole set. Memory and speed as for [`Knn`], less the `4·N_b` bytes of bank norms.
#[derive(Debug, Clone)]
pub struct NnGuide(Searcher);

impl NnGuide {
    /// NNGuide with `k` neighbours on a subsample `subsample ∈ (0, 1]` of the training set.
    pub fn new(k: usize, subsample: f64) -> Self {
        Self(Searcher::new(k, subsample, Metric::Ip))
    }
}

impl Detector for NnGuide {
    fn name(&self) -> String {
        self.0.spec("nnguide", 100)
    }

    fn needs(&self) -> Needs {
        Needs {
            features: true,
            fit: true,
            train_logits: true,
            ..Needs::LOGITS
        }
    }

    fn fit(&mut self, train: &mut dyn FeatureSource, _head: Option<&Head>) -> Result<()> {
        self.0.fit(&self.name(), train)
    }

    fn fitted(&self) -> Vec<(String, f64)> {
        self.0.fitted()
    }

    fn score(
        &self,
        logits: &[f32],
        num_classes: usize,
        features: Option<&[f32]>,
    ) -> Result<Vec<f32>> {
        let (bank, f, n) = self.0.queries(&self.name(), features)?;
        let rows = validate_rows("logits", logits, num_classes)?;
        if rows != n {
            return Err(EvalError::LengthMismatch {
                what: "feature rows vs logit rows",
                left: n,
                right: rows,
            });
        }
        let k = self.0.k as f64;
        Ok(search(bank, f, self.0.k, self.0.metric)
            .into_iter()
            .zip(logits.chunks_exact(num_classes))
            .map(|((_, neg_sum), z)| (-neg_sum / k * logsumexp(z)) as f32)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detectors::{detector_from_name, Features};

    /// A tiny LCG (Knuth's MMIX constants): uniform `f32` in `[0, 1)`.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> f32 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 40) as f32 / (1u64 << 24) as f32
        }

        /// `n × d` post-ReLU-like features: about a third of the values are exactly 0.
        fn features(&mut self, n: usize, d: usize) -> Vec<f32> {
            (0..n * d)
                .map(|_| (self.next() * 3.0 - 1.0).max(0.0))
                .collect()
        }
    }

    fn fitted_knn(k: usize, s: f64, train: &[f32], d: usize) -> Knn {
        let mut det = Knn::new(k, s);
        det.fit(
            &mut Features::new(train.to_vec(), d).unwrap().with_batch_size(7),
            None,
        )
        .unwrap();
        det
    }

    fn close(got: &[f32], want: &[f64], tol: f64) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (f64::from(g) - w).abs() <= tol * w.abs().max(1.0),
                "row {i}: {g} vs {w}"
            );
        }
    }

    /// Bank (normalised): a = (1, 0), b = (0, 1), c = (−1, 0), d = (3, 4)/5 = (0.6, 0.8).
    /// Query (2, 0) → (1, 0): squared distances a 0, d 0.4² + 0.8² = 0.8, b 2, c 4.
    /// Query (0, −5) → (0, −1): a 2, c 2, d 0.6² + 1.8² = 3.6, b 4.
    /// k = 1: [−0, −2]; k = 2: [−0.8, −2]; k = 3: [−2, −3.6]; k = 4: [−4, −4].
    /// (The 1e-10 shift moves these by about 1e-10.)
    #[test]
    fn knn_by_hand() {
        let train = [1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 3.0, 4.0];
        let queries = [2.0, 0.0, 0.0, -5.0];
        for (k, want) in [
            (1, [0.0, -2.0]),
            (2, [-0.8, -2.0]),
            (3, [-2.0, -3.6]),
            (4, [-4.0, -4.0]),
        ] {
            let det = fitted_knn(k, 1.0, &train, 2);
            let s = det.score(&[], 1, Some(&queries)).unwrap();
            close(&s, &want, 1e-6);
        }
    }

    /// Bank: (1, 0) with logits [ln 3, 0] (logsumexp ln 4), (0, 1) with logits [0, 0]
    /// (ln 2): guides (ln 4, 0) and (0, ln 2). Query (3, 4) → (0.6, 0.8), logits [ln 3, 0]
    /// (energy ln 4). Inner products 0.6 ln 4 = 1.2 ln 2 and 0.8 ln 2.
    /// k = 1: 1.2 ln 2 · ln 4 = 2.4 (ln 2)²; k = 2: mean ln 2, times ln 4 = 2 (ln 2)².
    #[test]
    fn nnguide_by_hand() {
        let ln2 = 2f64.ln();
        let train = Features::new(vec![1.0, 0.0, 0.0, 1.0], 2)
            .unwrap()
            .with_logits(vec![3f32.ln(), 0.0, 0.0, 0.0], 2)
            .unwrap();
        for (k, want) in [(1, 2.4 * ln2 * ln2), (2, 2.0 * ln2 * ln2)] {
            let mut det = NnGuide::new(k, 1.0);
            det.fit(&mut train.clone(), None).unwrap();
            let s = det.score(&[3f32.ln(), 0.0], 2, Some(&[3.0, 4.0])).unwrap();
            close(&s, &[want], 1e-6);
        }
    }

    /// OpenOOD's normaliser in `f64`: `x / ‖x‖ + 1e-10`.
    fn normalized64(row: &[f32]) -> Vec<f64> {
        let n = row
            .iter()
            .map(|&v| f64::from(v).powi(2))
            .sum::<f64>()
            .sqrt();
        row.iter().map(|&v| f64::from(v) / n + 1e-10).collect()
    }

    fn logsumexp64(z: &[f32]) -> f64 {
        let m = z
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
        m + z
            .iter()
            .map(|&v| (f64::from(v) - m).exp())
            .sum::<f64>()
            .ln()
    }

    /// The k-th nearest squared distance and the NNGuide score, brute force in `f64`, on
    /// 2,500 training rows (seven bank blocks, the last partial) and 800 queries (two
    /// chunks), D = 19, with `k` from 1 to more than a block; includes queries equal to bank
    /// rows (distance 0).
    #[test]
    fn knn_and_nnguide_match_brute_force() {
        let (n, m, d, c) = (2_500, 800, 19, 4);
        let mut rng = Lcg(42);
        let train = rng.features(n, d);
        let train_logits: Vec<f32> = (0..n * c).map(|_| rng.next() * 8.0 - 2.0).collect();
        let mut queries = rng.features(m, d);
        queries[..5 * d].copy_from_slice(&train[100 * d..105 * d]);
        let logits: Vec<f32> = (0..m * c).map(|_| rng.next() * 8.0 - 2.0).collect();
        let bank: Vec<Vec<f64>> = train.chunks_exact(d).map(normalized64).collect();
        let guides: Vec<Vec<f64>> = bank
            .iter()
            .zip(train_logits.chunks_exact(c))
            .map(|(b, z)| b.iter().map(|v| v * logsumexp64(z)).collect())
            .collect();
        let source = Features::new(train.clone(), d)
            .unwrap()
            .with_logits(train_logits, c)
            .unwrap();
        for k in [1, 7, 50, 700] {
            let mut knn = Knn::new(k, 1.0);
            knn.fit(&mut source.clone().with_batch_size(333), None)
                .unwrap();
            let mut guide = NnGuide::new(k, 1.0);
            guide.fit(&mut source.clone(), None).unwrap();
            let got = knn.score(&[], 1, Some(&queries)).unwrap();
            let got_guide = guide.score(&logits, c, Some(&queries)).unwrap();
            let (mut want, mut want_guide) = (Vec::new(), Vec::new());
            for (qrow, z) in queries.chunks_exact(d).zip(logits.chunks_exact(c)) {
                let q = normalized64(qrow);
                let mut dist: Vec<f64> = bank
                    .iter()
                    .map(|b| b.iter().zip(&q).map(|(x, y)| (x - y).powi(2)).sum())
                    .collect();
                dist.sort_by(f64::total_cmp);
                want.push(-dist[k - 1]);
                let mut ip: Vec<f64> = guides
                    .iter()
                    .map(|g| g.iter().zip(&q).map(|(x, y)| x * y).sum())
                    .collect();
                ip.sort_by(|a, b| b.total_cmp(a));
                want_guide.push(ip[..k].iter().sum::<f64>() / k as f64 * logsumexp64(z));
            }
            // f32 GEMM on unit vectors: a few ulps of 2 absolute.
            for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                assert!((f64::from(g) - w).abs() < 2e-6, "k {k} row {i}: {g} vs {w}");
            }
            close(&got_guide, &want_guide, 1e-5);
            // A query equal to a training row is at distance 0 from it, clamped (never > 0).
            if k == 1 {
                assert!(
                    got[..5].iter().all(|&s| s <= 0.0 && s > -1e-6),
                    "{:?}",
                    &got[..5]
                );
            }
        }
    }

    /// Chunks of at most `QUERY_CHUNK` queries, of equal length (the last one shorter by
    /// less than the number of chunks).
    #[test]
    fn chunks_are_even() {
        for (n, c) in [
            (0, 1),
            (1, 1),
            (768, 768),
            (769, 385),
            (1_537, 513),
            (10_000, 715),
        ] {
            assert_eq!(chunk_len(n), c, "{n} queries");
        }
    }

    /// The same scores with 1 or 3 threads, bit for bit.
    #[test]
    fn scores_do_not_depend_on_the_thread_count() {
        let d = 33;
        let mut rng = Lcg(7);
        let train = rng.features(3_000, d);
        let queries = rng.features(1_000, d);
        let det = fitted_knn(10, 1.0, &train, d);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| det.score(&[], 1, Some(&queries)).unwrap())
        };
        let (one, three) = (run(1), run(3));
        assert_eq!(
            one.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            three.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
    }

    /// The documented rule: s = 0.5 over 7 rows keeps rows 0, 2, 4, 6 (⌊7·0.5 + ½⌋ = 4);
    /// s = 0.3 keeps ⌊N·0.3 + ½⌋ rows; s = 1 keeps all.
    #[test]
    fn subsample_rule() {
        let kept = |n: u64, s: f64| (0..n).filter(|&i| keep_row(i, s)).collect::<Vec<_>>();
        assert_eq!(kept(7, 0.5), vec![0, 2, 4, 6]);
        assert_eq!(kept(1_000, 0.3).len(), 300);
        assert_eq!(kept(1_001, 0.25).len(), 250);
        assert_eq!(kept(1_002, 0.25).len(), 251);
        assert_eq!(kept(100, 1.0).len(), 100);
        // Spread evenly: s = 0.1 keeps one row in every ten.
        assert_eq!(kept(40, 0.1), vec![4, 14, 24, 34]);
    }

    /// A subsampled bank holds exactly the rule's rows, whatever the batch size: a query
    /// equal to a kept row is at distance 0 (k = 1), one equal to a dropped row is not.
    /// Refits give the same bits.
    #[test]
    fn subsample_keeps_the_documented_rows_deterministically() {
        let (n, d) = (40, 5);
        let train = Lcg(3).features(n, d);
        let det = fitted_knn(1, 0.1, &train, d);
        assert_eq!(det.fitted()[0], ("bank_size".to_string(), 4.0));
        let s = det.score(&[], 1, Some(&train)).unwrap();
        for (i, &v) in s.iter().enumerate() {
            let zero = v > -1e-6;
            assert_eq!(zero, [4, 14, 24, 34].contains(&i), "row {i}: {v}");
        }
        let mut again = Knn::new(1, 0.1);
        again
            .fit(
                &mut Features::new(train.clone(), d).unwrap().with_batch_size(1),
                None,
            )
            .unwrap();
        assert_eq!(again.score(&[], 1, Some(&train)).unwrap(), s);
        // Fewer than k rows kept: the bank takes exactly k (the rule with s = k / N).
        let det = fitted_knn(10, 0.1, &train, d);
        assert_eq!(det.fitted()[0].1, 10.0);
    }

    #[test]
    fn errors() {
        let d = 3;
        let train = Lcg(5).features(4, d);
        // k larger than the bank names both.
        let mut det = Knn::new(5, 1.0);
        let err = det
            .fit(&mut Features::new(train.clone(), d).unwrap(), None)
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, EvalError::Unsupported { .. })
                && msg.contains("k = 5")
                && msg.contains("bank of 4"),
            "{msg}"
        );
        assert!(matches!(
            det.score(&[], 1, Some(&train)),
            Err(EvalError::NotFitted { .. })
        ));
        // Empty training set.
        let err = Knn::new(1, 1.0)
            .fit(&mut Features::new(Vec::new(), d).unwrap(), None)
            .unwrap_err();
        assert!(matches!(err, EvalError::Empty { .. }), "{err}");
        // Features of the wrong dimension, missing features, NaN.
        let det = fitted_knn(2, 1.0, &train, d);
        assert!(matches!(
            det.score(&[], 1, Some(&[1.0; 4])),
            Err(EvalError::Shape { width: 3, .. })
        ));
        assert!(matches!(
            det.score(&[], 1, None),
            Err(EvalError::MissingFeatures { .. })
        ));
        assert!(matches!(
            det.score(&[], 1, Some(&[1.0, f32::NAN, 0.0])),
            Err(EvalError::NonFiniteValue {
                row: 0,
                column: 1,
                ..
            })
        ));
        // Bad parameters built directly.
        for bad in [Knn::new(0, 1.0), Knn::new(1, 0.0), Knn::new(1, 1.5)] {
            let mut bad = bad;
            let err = bad
                .fit(&mut Features::new(train.clone(), d).unwrap(), None)
                .unwrap_err();
            assert!(
                matches!(err, EvalError::InvalidDetectorParameter { .. }),
                "{err}"
            );
        }
        // NNGuide without training logits; with query logits of the wrong length.
        let mut g = NnGuide::new(2, 1.0);
        let err = g
            .fit(&mut Features::new(train.clone(), d).unwrap(), None)
            .unwrap_err();
        assert!(
            matches!(&err, EvalError::Unsupported { reason, .. } if reason.contains("logits")),
            "{err}"
        );
        let mut src = Features::new(train.clone(), d)
            .unwrap()
            .with_logits(vec![0.0; 8], 2)
            .unwrap();
        g.fit(&mut src, None).unwrap();
        assert_eq!(g.score(&[0.0; 8], 2, Some(&train)).unwrap().len(), 4);
        assert!(matches!(
            g.score(&[0.0; 6], 2, Some(&train)),
            Err(EvalError::LengthMismatch {
                left: 4,
                right: 3,
                ..
            })
        ));
        // A failed refit leaves the detector unfitted.
        let mut src = Features::new(train[..d].to_vec(), d)
            .unwrap()
            .with_logits(vec![0.0; 2], 2)
            .unwrap();
        assert!(g.fit(&mut src, None).is_err());
        assert!(matches!(
            g.score(&[0.0; 8], 2, Some(&train)),
            Err(EvalError::NotFitted { .. })
        ));
    }

    /// An all-zero feature (OpenOOD: NaN) gets a finite score.
    #[test]
    fn zero_rows_are_finite() {
        let d = 4;
        let mut train = Lcg(9).features(20, d);
        train[..d].fill(0.0);
        let det = fitted_knn(3, 1.0, &train, d);
        let s = det.score(&[], 1, Some(&[0.0; 4])).unwrap();
        assert!(s[0].is_finite() && s[0] <= 0.0, "{s:?}");
    }

    #[test]
    fn names_round_trip() {
        for (det, name) in [
            (Box::new(Knn::new(50, 1.0)) as Box<dyn Detector>, "knn"),
            (Box::new(Knn::new(10, 1.0)), "knn:k=10"),
            (Box::new(Knn::new(10, 0.5)), "knn:k=10,subsample=0.5"),
            (Box::new(NnGuide::new(100, 1.0)), "nnguide"),
            (Box::new(NnGuide::new(100, 0.01)), "nnguide:subsample=0.01"),
        ] {
            assert_eq!(det.name(), name);
            assert_eq!(detector_from_name(name).unwrap().name(), name);
        }
        assert_eq!(
            detector_from_name("knn:subsample=1,k=50").unwrap().name(),
            "knn"
        );
    }
}
