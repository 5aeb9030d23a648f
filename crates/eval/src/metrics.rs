//! OOD detection metrics: AUROC, AUPR-In, AUPR-Out, FPR@95TPR (two conventions) and
//! classification accuracy.
//!
//! # Score convention
//!
//! Every score in this crate follows one rule: **higher = more in-distribution** (MSP, max
//! logit, negative energy, …). Each metric takes the ID test scores and the OOD test scores
//! as two slices and decides internally which set is "positive" and whether to negate.
//!
//! | metric                      | positive class | ranked by   | sklearn equivalent                               |
//! |-----------------------------|----------------|-------------|--------------------------------------------------|
//! | [`auroc`]                   | OOD            | `-score`    | `roc_auc_score(is_ood, -score)`                  |
//! | [`aupr_in`]                 | ID             | `score`     | `average_precision_score(is_id, score)`          |
//! | [`aupr_out`]                | OOD            | `-score`    | `average_precision_score(is_ood, -score)`        |
//! | [`fpr_at_tpr`]              | OOD            | `-score`    | `fpr[argmax(tpr >= t)]` of `roc_curve(is_ood, -score)` |
//! | [`fpr_at_tpr_id_positive`]  | ID             | `score`     | `fpr[argmax(tpr >= t)]` of `roc_curve(is_id, score)`   |
//!
//! AUROC does not depend on which class is positive (negating the score and swapping the
//! classes gives the same area), so it is the one number every paper agrees on.
//!
//! # The two FPR@95TPR conventions
//!
//! * **OOD positive** ([`fpr_at_tpr`], the `fpr95` field of [`OodMetrics`]): choose the
//!   threshold so that at least 95% of OOD samples are *detected*, report the fraction of
//!   ID samples wrongly flagged as OOD. This is OpenOOD v1.5
//!   (`openood/evaluators/metrics.py`, `auc_and_fpr_recall`): `roc_curve(ood_indicator,
//!   -conf)` followed by `fpr_list[np.argmax(tpr_list >= 0.95)]`.
//! * **ID positive** ([`fpr_at_tpr_id_positive`], the `fpr95_id_positive` field): choose the
//!   threshold so that at least 95% of ID samples are *kept*, report the fraction of OOD
//!   samples wrongly accepted as ID. This is what the energy paper (Liu et al., NeurIPS
//!   2020) and the Outlier Exposure line of work report as "FPR95". Here it is computed
//!   the same way as the OpenOOD number, only with the roles swapped: `roc_curve(is_id,
//!   score)` and `fpr[argmax(tpr >= 0.95)]`.
//!
//! The two can differ a lot (they threshold different tails), so always say which one a
//! number is.
//!
//! Two details that make these exact copies rather than "the same idea":
//!
//! * `roc_curve` drops collinear intermediate points by default (`drop_intermediate=True`).
//!   When two consecutive tie groups move the curve by the same step (typical with
//!   quantized scores), the first point with `tpr >= 0.95` can be dropped, and the
//!   reported FPR is then the one of the *next* kept point, which is higher. This module
//!   reproduces that on purpose; see the `drop_intermediate` test case.
//! * The energy / Outlier-Exposure reference code (`fpr_and_fdr_at_recall`) does not use
//!   `roc_curve`: it picks the point whose recall is *closest* to 0.95
//!   (`argmin |recall - 0.95|`), which may lie below 0.95. On large test sets the two
//!   agree to a fraction of a percent; on small ones they can differ.
//!
//! # AUPR
//!
//! AUPR-In and AUPR-Out are average precision exactly as sklearn's
//! `average_precision_score` (step-wise sum `Σ (R_k − R_{k−1}) P_k`, no interpolation, one
//! step per group of tied scores). Note that OpenOOD v1.5 itself integrates the PR curve
//! with the trapezoidal rule (`metrics.auc(recall, precision)`), which is optimistic and
//! differs from average precision on small or tie-heavy sets.
//!
//! # Ties and cost
//!
//! Tied scores form one threshold step, as in sklearn; AUROC is therefore the Mann-Whitney
//! U statistic with ties counted 1/2. [`RankedScores`] sorts each score set once
//! (`O(n log n)`); every metric is then one linear merge over the two sorted copies, so
//! the extra memory is one `f32` per score, and millions of scores are fine.

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result, ScoreSet};

/// The true-positive rate of the standard FPR@95TPR metrics.
pub const DEFAULT_TPR: f64 = 0.95;

/// All OOD metrics of one (ID set, OOD set, detector) evaluation, as fractions in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OodMetrics {
    /// Area under the ROC curve (see [`auroc`]).
    pub auroc: f64,
    /// Average precision with ID as the positive class (see [`aupr_in`]).
    pub aupr_in: f64,
    /// Average precision with OOD as the positive class (see [`aupr_out`]).
    pub aupr_out: f64,
    /// FPR at 95% TPR, OOD positive, as OpenOOD v1.5 (see [`fpr_at_tpr`]).
    pub fpr95: f64,
    /// FPR at 95% TPR, ID positive, as the energy paper (see [`fpr_at_tpr_id_positive`]).
    pub fpr95_id_positive: f64,
}

/// ID and OOD scores, validated and sorted once, from which every metric is read off.
///
/// Use this instead of the free functions when several metrics (or several target TPRs)
/// are needed for the same scores: the free functions each sort again.
///
/// ```
/// use unseen_eval::metrics::RankedScores;
/// let ranked = RankedScores::new(&[0.9, 0.8, 0.7], &[0.1, 0.75])?;
/// assert!((ranked.auroc() - 5.0 / 6.0).abs() < 1e-12);
/// assert_eq!(ranked.fpr_at_tpr(0.5)?, 0.0);
/// # Ok::<(), unseen_eval::error::EvalError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RankedScores {
    /// ID scores, ascending, with `-0.0` folded into `0.0`.
    id: Vec<f32>,
    /// OOD scores, ascending, with `-0.0` folded into `0.0`.
    ood: Vec<f32>,
}

impl RankedScores {
    /// Validates (non-empty, all finite) and sorts copies of both score sets.
    ///
    /// # Errors
    /// [`EvalError::EmptyScores`] if a set is empty, [`EvalError::NonFiniteScore`] (naming
    /// the set and index) if a score is NaN or infinite.
    pub fn new(id_scores: &[f32], ood_scores: &[f32]) -> Result<Self> {
        Ok(Self {
            id: sorted_copy(ScoreSet::Id, id_scores)?,
            ood: sorted_copy(ScoreSet::Ood, ood_scores)?,
        })
    }

    /// Number of ID scores.
    pub fn num_id(&self) -> usize {
        self.id.len()
    }

    /// Number of OOD scores.
    pub fn num_ood(&self) -> usize {
        self.ood.len()
    }

    /// Area under the ROC curve; see [`auroc`].
    pub fn auroc(&self) -> f64 {
        roc_auc(self.ood_positive(), self.ood.len(), self.id.len())
    }

    /// Average precision with ID positive; see [`aupr_in`].
    pub fn aupr_in(&self) -> f64 {
        average_precision(self.id_positive(), self.id.len())
    }

    /// Average precision with OOD positive; see [`aupr_out`].
    pub fn aupr_out(&self) -> f64 {
        average_precision(self.ood_positive(), self.ood.len())
    }

    /// FPR at the given TPR, OOD positive (OpenOOD v1.5); see [`fpr_at_tpr`].
    ///
    /// # Errors
    /// [`EvalError::InvalidTpr`] unless `0 <= tpr <= 1`.
    pub fn fpr_at_tpr(&self, tpr: f64) -> Result<f64> {
        check_tpr(tpr)?;
        Ok(roc_fpr_at_tpr(
            self.ood_positive(),
            self.ood.len(),
            self.id.len(),
            tpr,
        ))
    }

    /// FPR at the given TPR, ID positive (energy paper); see [`fpr_at_tpr_id_positive`].
    ///
    /// # Errors
    /// [`EvalError::InvalidTpr`] unless `0 <= tpr <= 1`.
    pub fn fpr_at_tpr_id_positive(&self, tpr: f64) -> Result<f64> {
        check_tpr(tpr)?;
        Ok(roc_fpr_at_tpr(
            self.id_positive(),
            self.id.len(),
            self.ood.len(),
            tpr,
        ))
    }

    /// The ROC curve with OOD positive; see [`roc_curve`].
    pub fn roc_curve(&self) -> Vec<(f64, f64)> {
        roc_points(self.ood_positive(), self.ood.len(), self.id.len())
    }

    /// All metrics of [`OodMetrics`], FPRs at [`DEFAULT_TPR`].
    pub fn metrics(&self) -> OodMetrics {
        OodMetrics {
            auroc: self.auroc(),
            aupr_in: self.aupr_in(),
            aupr_out: self.aupr_out(),
            fpr95: roc_fpr_at_tpr(
                self.ood_positive(),
                self.ood.len(),
                self.id.len(),
                DEFAULT_TPR,
            ),
            fpr95_id_positive: roc_fpr_at_tpr(
                self.id_positive(),
                self.id.len(),
                self.ood.len(),
                DEFAULT_TPR,
            ),
        }
    }

    /// Tie groups with ID positive, in decreasing order of the raw score.
    fn id_positive(
        &self,
    ) -> TieGroups<std::iter::Rev<std::iter::Copied<std::slice::Iter<'_, f32>>>> {
        TieGroups::new(
            self.id.iter().copied().rev(),
            self.ood.iter().copied().rev(),
            Order::Descending,
        )
    }

    /// Tie groups with OOD positive, in decreasing order of the negated score (that is,
    /// increasing raw score).
    fn ood_positive(&self) -> TieGroups<std::iter::Copied<std::slice::Iter<'_, f32>>> {
        TieGroups::new(
            self.ood.iter().copied(),
            self.id.iter().copied(),
            Order::Ascending,
        )
    }
}

/// Area under the ROC curve with OOD as the positive class, ranked by the negated score.
///
/// Equal to sklearn's `roc_auc_score(is_ood, -score)`: the trapezoidal area under the ROC
/// curve with one step per group of tied scores, i.e. the probability that a random ID
/// sample scores higher than a random OOD sample, ties counting 1/2. 1.0 is perfect
/// separation, 0.5 chance, 0.0 perfectly reversed.
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]).
pub fn auroc(id_scores: &[f32], ood_scores: &[f32]) -> Result<f64> {
    Ok(RankedScores::new(id_scores, ood_scores)?.auroc())
}

/// AUPR-In: average precision with ID as the positive class, ranked by the raw score.
///
/// Equal to sklearn's `average_precision_score(is_id, score)` (step-wise, no
/// interpolation, tied scores form one step).
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]).
pub fn aupr_in(id_scores: &[f32], ood_scores: &[f32]) -> Result<f64> {
    Ok(RankedScores::new(id_scores, ood_scores)?.aupr_in())
}

/// AUPR-Out: average precision with OOD as the positive class, ranked by the negated score.
///
/// Equal to sklearn's `average_precision_score(is_ood, -score)`.
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]).
pub fn aupr_out(id_scores: &[f32], ood_scores: &[f32]) -> Result<f64> {
    Ok(RankedScores::new(id_scores, ood_scores)?.aupr_out())
}

/// FPR at a target TPR with **OOD as the positive class**, exactly as OpenOOD v1.5.
///
/// The threshold on the negated score is the first one (walking from the most OOD-like
/// score down) at which at least `tpr` of the OOD samples are flagged; the result is the
/// fraction of ID samples flagged at that threshold. Computed as OpenOOD's
/// `auc_and_fpr_recall`: `fpr, tpr_, _ = roc_curve(is_ood, -score)` (with sklearn's default
/// `drop_intermediate=True`) and `fpr[argmax(tpr_ >= tpr)]`. Use `tpr = `[`DEFAULT_TPR`]
/// for the usual FPR@95TPR. See the module docs for how this differs from
/// [`fpr_at_tpr_id_positive`].
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]); [`EvalError::InvalidTpr`] unless
/// `0 <= tpr <= 1`.
pub fn fpr_at_tpr(id_scores: &[f32], ood_scores: &[f32], tpr: f64) -> Result<f64> {
    check_tpr(tpr)?;
    RankedScores::new(id_scores, ood_scores)?.fpr_at_tpr(tpr)
}

/// FPR at a target TPR with **ID as the positive class** (the energy-paper convention).
///
/// The threshold on the raw score is the first one (walking from the most ID-like score
/// down) that keeps at least `tpr` of the ID samples; the result is the fraction of OOD
/// samples accepted as ID at that threshold. Computed as
/// `fpr, tpr_, _ = roc_curve(is_id, score)` and `fpr[argmax(tpr_ >= tpr)]`.
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]); [`EvalError::InvalidTpr`] unless
/// `0 <= tpr <= 1`.
pub fn fpr_at_tpr_id_positive(id_scores: &[f32], ood_scores: &[f32], tpr: f64) -> Result<f64> {
    check_tpr(tpr)?;
    RankedScores::new(id_scores, ood_scores)?.fpr_at_tpr_id_positive(tpr)
}

/// The ROC curve behind [`auroc`] and [`fpr_at_tpr`]: OOD is the positive class, ranked by
/// the negated score, and each point is `(fpr, tpr)` = (fraction of ID flagged as OOD,
/// fraction of OOD flagged) at one threshold.
///
/// One point per group of tied scores, from the most OOD-like score down, after the origin:
/// sklearn's `roc_curve(is_ood, -score, drop_intermediate=False)` with the `(fpr, tpr)`
/// columns zipped. The curve starts at `(0, 0)`, ends at `(1, 1)` and never decreases in
/// either coordinate; its trapezoidal area is [`auroc`] (to rounding).
///
/// ```
/// use unseen_eval::metrics::roc_curve;
/// let curve = roc_curve(&[0.9, 0.8], &[0.1, 0.85])?;
/// assert_eq!(curve, vec![(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
/// # Ok::<(), unseen_eval::error::EvalError>(())
/// ```
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]).
pub fn roc_curve(id_scores: &[f32], ood_scores: &[f32]) -> Result<Vec<(f64, f64)>> {
    Ok(RankedScores::new(id_scores, ood_scores)?.roc_curve())
}

/// All of [`OodMetrics`] from one sort of the scores (FPRs at [`DEFAULT_TPR`]).
///
/// # Errors
/// Empty or non-finite scores (see [`RankedScores::new`]).
pub fn ood_metrics(id_scores: &[f32], ood_scores: &[f32]) -> Result<OodMetrics> {
    Ok(RankedScores::new(id_scores, ood_scores)?.metrics())
}

/// Fraction of predictions equal to their label.
///
/// # Errors
/// [`EvalError::LengthMismatch`] if the slices differ in length, [`EvalError::Empty`] if
/// they are empty.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> Result<f64> {
    if predictions.len() != labels.len() {
        return Err(EvalError::LengthMismatch {
            what: "predictions vs labels",
            left: predictions.len(),
            right: labels.len(),
        });
    }
    if labels.is_empty() {
        return Err(EvalError::Empty { what: "labels" });
    }
    let correct = predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count();
    Ok(correct as f64 / labels.len() as f64)
}

/// Recall of each class `0..=max(label)`: the fraction of its samples predicted as it
/// (`None` for a class with no sample). Predictions may name classes no label has (an
/// open-set method predicting "unknown" on a closed test set).
///
/// # Errors
/// [`EvalError::LengthMismatch`] if the slices differ in length, [`EvalError::Empty`] if
/// they are empty.
pub fn per_class_recall(predictions: &[usize], labels: &[usize]) -> Result<Vec<Option<f64>>> {
    if predictions.len() != labels.len() {
        return Err(EvalError::LengthMismatch {
            what: "predictions vs labels",
            left: predictions.len(),
            right: labels.len(),
        });
    }
    let Some(&max) = labels.iter().max() else {
        return Err(EvalError::Empty { what: "labels" });
    };
    let mut total = vec![0usize; max + 1];
    let mut hit = vec![0usize; max + 1];
    for (&p, &y) in predictions.iter().zip(labels) {
        total[y] += 1;
        hit[y] += usize::from(p == y);
    }
    Ok(total
        .iter()
        .zip(&hit)
        .map(|(&t, &h)| (t > 0).then(|| h as f64 / t as f64))
        .collect())
}

/// Balanced accuracy, sklearn's `balanced_accuracy_score` (`adjusted=False`): the mean of
/// [`per_class_recall`] over the classes present in `labels`. It is the open-set accuracy
/// of IOMatch (its Eq. 9, over `K + 1` classes with every unseen class merged into `K`),
/// where one "unknown" class would otherwise outweigh the seen ones.
///
/// # Errors
/// As [`per_class_recall`].
pub fn balanced_accuracy(predictions: &[usize], labels: &[usize]) -> Result<f64> {
    let present: Vec<f64> = per_class_recall(predictions, labels)?
        .into_iter()
        .flatten()
        .collect();
    Ok(present.iter().sum::<f64>() / present.len() as f64)
}

/// Checks a target TPR: a number in `[0, 1]`.
fn check_tpr(tpr: f64) -> Result<()> {
    if (0.0..=1.0).contains(&tpr) {
        Ok(())
    } else {
        Err(EvalError::InvalidTpr { tpr })
    }
}

/// Validates one score set and returns it sorted ascending, `-0.0` folded into `0.0` (so
/// that the total order used for sorting agrees with `==`, which groups ties).
fn sorted_copy(set: ScoreSet, scores: &[f32]) -> Result<Vec<f32>> {
    check_scores(set, scores)?;
    let mut sorted: Vec<f32> = scores
        .iter()
        .map(|&s| if s == 0.0 { 0.0 } else { s })
        .collect();
    sorted.sort_unstable_by(f32::total_cmp);
    Ok(sorted)
}

/// Checks one score set as every metric does: non-empty, every score finite.
///
/// # Errors
/// [`EvalError::EmptyScores`] or [`EvalError::NonFiniteScore`], naming `set`.
pub(crate) fn check_scores(set: ScoreSet, scores: &[f32]) -> Result<()> {
    if scores.is_empty() {
        return Err(EvalError::EmptyScores { set });
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore { set, index, value });
    }
    Ok(())
}

/// Direction in which [`TieGroups`] walks the scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    Ascending,
    Descending,
}

/// Merges two sorted score sequences and yields, for each distinct score in walking order,
/// `(positives, negatives)`: how many scores of each set equal it. This is sklearn's
/// `_binary_clf_curve` in increments: one item per threshold.
struct TieGroups<I: Iterator<Item = f32>> {
    pos: std::iter::Peekable<I>,
    neg: std::iter::Peekable<I>,
    order: Order,
}

impl<I: Iterator<Item = f32>> TieGroups<I> {
    fn new(pos: I, neg: I, order: Order) -> Self {
        Self {
            pos: pos.peekable(),
            neg: neg.peekable(),
            order,
        }
    }
}

impl<I: Iterator<Item = f32>> Iterator for TieGroups<I> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        let value = match (self.pos.peek().copied(), self.neg.peek().copied()) {
            (None, None) => return None,
            (Some(p), None) => p,
            (None, Some(n)) => n,
            (Some(p), Some(n)) => match self.order {
                Order::Ascending => p.min(n),
                Order::Descending => p.max(n),
            },
        };
        Some((
            take_equal(&mut self.pos, value),
            take_equal(&mut self.neg, value),
        ))
    }
}

/// Consumes and counts the leading items equal to `value`.
fn take_equal<I: Iterator<Item = f32>>(it: &mut std::iter::Peekable<I>, value: f32) -> u64 {
    let mut count = 0;
    while it.next_if(|&x| x == value).is_some() {
        count += 1;
    }
    count
}

/// Trapezoidal ROC area from tie groups in decreasing order of the positive-class score.
/// Exact integer arithmetic: `Σ Δfp · (2·tp_before + Δtp) / (2·P·N)`.
fn roc_auc(groups: impl Iterator<Item = (u64, u64)>, num_pos: usize, num_neg: usize) -> f64 {
    let mut tp: u64 = 0;
    let mut twice_area: u128 = 0;
    for (d_tp, d_fp) in groups {
        twice_area += u128::from(d_fp) * u128::from(2 * tp + d_tp);
        tp += d_tp;
    }
    twice_area as f64 / (2.0 * num_pos as f64 * num_neg as f64)
}

/// ROC points `(fpr, tpr)` from tie groups in decreasing order of the positive-class score:
/// the origin, then one point per group (the walk [`roc_auc`] integrates).
fn roc_points(
    groups: impl Iterator<Item = (u64, u64)>,
    num_pos: usize,
    num_neg: usize,
) -> Vec<(f64, f64)> {
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut points = vec![(0.0, 0.0)];
    points.extend(groups.map(|(d_tp, d_fp)| {
        tp += d_tp;
        fp += d_fp;
        (fp as f64 / num_neg as f64, tp as f64 / num_pos as f64)
    }));
    points
}

/// sklearn's `average_precision_score`: `Σ (R_k − R_{k−1}) · P_k` over thresholds, from tie
/// groups in decreasing order of the positive-class score.
fn average_precision(groups: impl Iterator<Item = (u64, u64)>, num_pos: usize) -> f64 {
    let (mut tp, mut fp) = (0u64, 0u64);
    let (mut ap, mut prev_recall) = (0.0f64, 0.0f64);
    for (d_tp, d_fp) in groups {
        tp += d_tp;
        fp += d_fp;
        if d_tp > 0 {
            let recall = tp as f64 / num_pos as f64;
            let precision = tp as f64 / (tp + fp) as f64;
            ap += (recall - prev_recall) * precision;
            prev_recall = recall;
        }
    }
    ap
}

/// `fpr[argmax(tpr >= target)]` of sklearn's `roc_curve` (with `drop_intermediate=True`),
/// from tie groups in decreasing order of the positive-class score.
///
/// `roc_curve` keeps the first and last threshold and every interior one where the curve
/// changes direction (`np.diff(fps, 2)` or `np.diff(tps, 2)` non-zero, i.e. the step into
/// the point differs from the step out of it), then prepends the origin. The walk below
/// decides each point's fate when the step out of it is known, so it needs no buffer.
fn roc_fpr_at_tpr(
    groups: impl Iterator<Item = (u64, u64)>,
    num_pos: usize,
    num_neg: usize,
    target: f64,
) -> f64 {
    let tpr = |tp: u64| tp as f64 / num_pos as f64;
    let fpr = |fp: u64| fp as f64 / num_neg as f64;
    // The prepended origin (tpr = fpr = 0) is always kept.
    if tpr(0) >= target {
        return 0.0;
    }
    // (tp, fp): the point of the current threshold; step_in: the step (Δtp, Δfp) that led
    // to it. The first threshold is always kept; it is the only point equal to its own step
    // (every tie group holds at least one sample, so later points have moved further).
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut step_in: Option<(u64, u64)> = None;
    for step in groups {
        if let Some(previous) = step_in {
            let first = tp == previous.0 && fp == previous.1;
            if (first || previous != step) && tpr(tp) >= target {
                return fpr(fp);
            }
        }
        tp += step.0;
        fp += step.1;
        step_in = Some(step);
    }
    // The last threshold is always kept and has tpr = 1 >= target.
    fpr(fp)
}

#[cfg(test)]
mod tests {
    //! Reference values come from `crates/eval/tests/fixtures/make_metric_refs.py`
    //! (scikit-learn 1.9.1, numpy 2.4.6), whose case names the tests below reuse. Each
    //! `Case` is one `CASES` entry; the numbers are the script's output, pasted.

    use super::*;

    const TOL: f64 = 1e-12;

    /// Expected values for one case, as printed by the reference script.
    struct Expected {
        auroc: f64,
        aupr_in: f64,
        aupr_out: f64,
        fpr95: f64,
        fpr95_id_positive: f64,
        fpr50: f64,
        fpr50_id_positive: f64,
    }

    fn check(name: &str, id: &[f32], ood: &[f32], e: Expected) {
        let close = |what: &str, got: f64, want: f64| {
            assert!(
                (got - want).abs() < TOL,
                "{name}: {what} = {got}, sklearn says {want}"
            );
        };
        // Free functions (each sorts on its own).
        close("auroc", auroc(id, ood).unwrap(), e.auroc);
        close("aupr_in", aupr_in(id, ood).unwrap(), e.aupr_in);
        close("aupr_out", aupr_out(id, ood).unwrap(), e.aupr_out);
        close("fpr95", fpr_at_tpr(id, ood, 0.95).unwrap(), e.fpr95);
        close(
            "fpr95_id_positive",
            fpr_at_tpr_id_positive(id, ood, 0.95).unwrap(),
            e.fpr95_id_positive,
        );
        close("fpr50", fpr_at_tpr(id, ood, 0.5).unwrap(), e.fpr50);
        close(
            "fpr50_id_positive",
            fpr_at_tpr_id_positive(id, ood, 0.5).unwrap(),
            e.fpr50_id_positive,
        );
        // One sort, all metrics.
        let m = ood_metrics(id, ood).unwrap();
        close("metrics.auroc", m.auroc, e.auroc);
        close("metrics.aupr_in", m.aupr_in, e.aupr_in);
        close("metrics.aupr_out", m.aupr_out, e.aupr_out);
        close("metrics.fpr95", m.fpr95, e.fpr95);
        close(
            "metrics.fpr95_id_positive",
            m.fpr95_id_positive,
            e.fpr95_id_positive,
        );
        // Shuffling the input must not matter (reverse is enough to break any order).
        let rid: Vec<f32> = id.iter().rev().copied().collect();
        let rood: Vec<f32> = ood.iter().rev().copied().collect();
        assert_eq!(
            ood_metrics(&rid, &rood).unwrap(),
            m,
            "{name}: order dependence"
        );
    }

    /// Python: CASES["interleave"]
    #[test]
    fn interleave() {
        check(
            "interleave",
            &[0.9, 0.8, 0.7, 0.4, 0.3],
            &[0.6, 0.5, 0.2, 0.85, 0.1],
            Expected {
                auroc: 0.68,
                aupr_in: 0.7226190476190477,
                aupr_out: 0.7644444444444445,
                fpr95: 0.8,
                fpr95_id_positive: 0.6,
                fpr50: 0.4,
                fpr50_id_positive: 0.2,
            },
        );
    }

    /// Python: CASES["separated"]
    #[test]
    fn perfectly_separated() {
        check(
            "separated",
            &[2.0, 3.0, 4.0],
            &[-1.0, 0.0, 1.0],
            Expected {
                auroc: 1.0,
                aupr_in: 1.0,
                aupr_out: 1.0,
                fpr95: 0.0,
                fpr95_id_positive: 0.0,
                fpr50: 0.0,
                fpr50_id_positive: 0.0,
            },
        );
    }

    /// Python: CASES["reversed"]
    #[test]
    fn perfectly_reversed() {
        check(
            "reversed",
            &[-1.0, 0.0, 1.0],
            &[2.0, 3.0, 4.0],
            Expected {
                auroc: 0.0,
                aupr_in: 0.38333333333333336,
                aupr_out: 0.38333333333333336,
                fpr95: 1.0,
                fpr95_id_positive: 1.0,
                fpr50: 1.0,
                fpr50_id_positive: 1.0,
            },
        );
    }

    /// Python: CASES["all_equal"]
    #[test]
    fn all_scores_equal() {
        check(
            "all_equal",
            &[0.5; 4],
            &[0.5; 3],
            Expected {
                auroc: 0.5,
                aupr_in: 0.5714285714285714,
                aupr_out: 0.42857142857142855,
                fpr95: 1.0,
                fpr95_id_positive: 1.0,
                fpr50: 1.0,
                fpr50_id_positive: 1.0,
            },
        );
    }

    /// Python: CASES["quantized"], i.e.
    /// `[((i * 37) % 11) / 4 for i in range(60)]`, `[((j * 53) % 9) / 4 for j in range(45)]`.
    #[test]
    fn quantized_tie_heavy() {
        let id: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 / 4.0).collect();
        let ood: Vec<f32> = (0..45).map(|j| ((j * 53) % 9) as f32 / 4.0).collect();
        check(
            "quantized",
            &id,
            &ood,
            Expected {
                auroc: 0.5796296296296296,
                aupr_in: 0.6858794008002755,
                aupr_out: 0.46859190646429966,
                fpr95: 0.8333333333333334,
                fpr95_id_positive: 1.0,
                fpr50: 0.5666666666666667,
                fpr50_id_positive: 0.5555555555555556,
            },
        );
    }

    /// Python: CASES["drop_intermediate"]. OOD = 0..20; ID = 17, 18, 19 (each tied with one
    /// OOD score) and 20..30. On `-score` the groups 18 and 19 both step by (1 OOD, 1 ID),
    /// so `roc_curve` drops the point after group 18, which is the first with tpr = 0.95
    /// (fpr 2/13); OpenOOD therefore reports 3/13. (`drop_intermediate=False` gives
    /// 0.15384615384615385 = 2/13.)
    #[test]
    fn drop_intermediate_matches_openood() {
        let id: Vec<f32> = [17.0, 18.0, 19.0]
            .into_iter()
            .chain((20..30).map(|v| v as f32))
            .collect();
        let ood: Vec<f32> = (0..20).map(|v| v as f32).collect();
        check(
            "drop_intermediate",
            &id,
            &ood,
            Expected {
                auroc: 0.9826923076923076,
                aupr_in: 0.9681776556776553,
                aupr_out: 0.9860847771602923,
                fpr95: 0.23076923076923078,
                fpr95_id_positive: 0.15,
                fpr50: 0.0,
                fpr50_id_positive: 0.0,
            },
        );
    }

    /// The 32-bit LCG of the reference script: `x = (1664525 x + 1013904223) mod 2^32`,
    /// yielding `x >> 8`.
    fn lcg(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = (1664525 * x + 1013904223) % (1 << 32);
                x >> 8
            })
            .collect()
    }

    /// Python: CASES["lcg"], i.e. `[v / 2**24 for v in lcg(7, 1000)]` and
    /// `[(v * 3 // 4) / 2**24 for v in lcg(11, 800)]`.
    #[test]
    fn pseudo_random_larger_set() {
        let scale = (1u64 << 24) as f32;
        let id: Vec<f32> = lcg(7, 1000).into_iter().map(|v| v as f32 / scale).collect();
        let ood: Vec<f32> = lcg(11, 800)
            .into_iter()
            .map(|v| (v * 3 / 4) as f32 / scale)
            .collect();
        check(
            "lcg",
            &id,
            &ood,
            Expected {
                auroc: 0.6006837500000001,
                aupr_in: 0.7232755302685937,
                aupr_out: 0.4896879087779695,
                fpr95: 0.717,
                fpr95_id_positive: 0.94875,
                fpr50: 0.413,
                fpr50_id_positive: 0.36625,
            },
        );
    }

    /// Trapezoidal area under a polyline of `(x, y)` points.
    fn trapezoid(points: &[(f64, f64)]) -> f64 {
        points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum()
    }

    #[test]
    fn roc_curve_area_is_auroc() {
        // Tie-heavy (the "quantized" case: 11 and 9 distinct values, shared between the
        // sets), all-equal, interleaved and a larger pseudo-random set.
        let quantized_id: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 / 4.0).collect();
        let quantized_ood: Vec<f32> = (0..45).map(|j| ((j * 53) % 9) as f32 / 4.0).collect();
        let scale = (1u64 << 24) as f32;
        let lcg_id: Vec<f32> = lcg(7, 1000).into_iter().map(|v| v as f32 / scale).collect();
        let lcg_ood: Vec<f32> = lcg(11, 800)
            .into_iter()
            .map(|v| (v * 3 / 4) as f32 / scale)
            .collect();
        let cases: [(&str, &[f32], &[f32]); 4] = [
            ("quantized", &quantized_id, &quantized_ood),
            ("all_equal", &[0.5; 4], &[0.5; 3]),
            (
                "interleave",
                &[0.9, 0.8, 0.7, 0.4, 0.3],
                &[0.6, 0.5, 0.2, 0.85, 0.1],
            ),
            ("lcg", &lcg_id, &lcg_ood),
        ];
        for (name, id, ood) in cases {
            let curve = roc_curve(id, ood).unwrap();
            let m = ood_metrics(id, ood).unwrap();
            let area = trapezoid(&curve);
            assert!(
                (area - m.auroc).abs() < 1e-12,
                "{name}: area {area} vs AUROC {}",
                m.auroc
            );
            assert_eq!(curve.first(), Some(&(0.0, 0.0)), "{name}");
            assert_eq!(curve.last(), Some(&(1.0, 1.0)), "{name}");
            assert!(
                curve
                    .windows(2)
                    .all(|w| w[1].0 >= w[0].0 && w[1].1 >= w[0].1),
                "{name}: not monotone"
            );
        }
        // One point per distinct score, plus the origin: the quantized sets share 9 values.
        let distinct = {
            let mut all: Vec<f32> = quantized_id.iter().chain(&quantized_ood).copied().collect();
            all.sort_by(f32::total_cmp);
            all.dedup();
            all.len()
        };
        let quantized = roc_curve(&quantized_id, &quantized_ood).unwrap();
        assert_eq!(quantized.len(), distinct + 1);
        // sklearn's roc_curve(is_ood, -score, drop_intermediate=False): 12 points, the
        // fourth being (0.2833333333333333, 0.3333333333333333).
        assert_eq!(quantized.len(), 12);
        assert_eq!(quantized[3], (17.0 / 60.0, 15.0 / 45.0));
        // sklearn: roc_curve([0,0,1,1,1], -[.9,.8,.8,.1,.8], drop_intermediate=False)
        // gives fpr [0, 0, .5, 1], tpr [0, 1/3, 1, 1].
        assert_eq!(
            roc_curve(&[0.9, 0.8], &[0.8, 0.1, 0.8]).unwrap(),
            vec![(0.0, 0.0), (0.0, 1.0 / 3.0), (0.5, 1.0), (1.0, 1.0)]
        );
        assert!(matches!(
            roc_curve(&[1.0], &[]),
            Err(EvalError::EmptyScores { set: ScoreSet::Ood })
        ));
    }

    #[test]
    fn negative_zero_ties_with_zero() {
        // -0.0 == 0.0, as in numpy: one tie group, AUROC 0.5.
        assert_eq!(auroc(&[0.0], &[-0.0]).unwrap(), 0.5);
        assert_eq!(auroc(&[-0.0, 1.0], &[0.0]).unwrap(), 0.75);
    }

    #[test]
    fn tpr_extremes() {
        let (id, ood) = ([0.9f32, 0.8, 0.7, 0.4, 0.3], [0.6f32, 0.5, 0.2, 0.85, 0.1]);
        // tpr = 0 is met by the prepended origin; tpr = 1 needs every positive.
        assert_eq!(fpr_at_tpr(&id, &ood, 0.0).unwrap(), 0.0);
        assert_eq!(fpr_at_tpr(&id, &ood, 1.0).unwrap(), 0.8);
        assert_eq!(fpr_at_tpr_id_positive(&id, &ood, 1.0).unwrap(), 0.6);
    }

    #[test]
    fn empty_and_non_finite_scores_are_errors() {
        assert!(matches!(
            auroc(&[], &[1.0]),
            Err(EvalError::EmptyScores { set: ScoreSet::Id })
        ));
        assert!(matches!(
            ood_metrics(&[1.0], &[]),
            Err(EvalError::EmptyScores { set: ScoreSet::Ood })
        ));
        let err = aupr_in(&[0.1, 0.2], &[0.3, f32::NAN]).unwrap_err();
        assert!(matches!(
            err,
            EvalError::NonFiniteScore {
                set: ScoreSet::Ood,
                index: 1,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "OOD score at index 1 is NaN: scores must be finite"
        );
        let err = fpr_at_tpr(&[f32::INFINITY], &[0.0], 0.95).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ID score at index 0 is inf: scores must be finite"
        );
        assert!(aupr_out(&[0.0], &[f32::NEG_INFINITY]).is_err());
    }

    #[test]
    fn invalid_tpr_is_an_error() {
        for tpr in [-0.1, 1.5, f64::NAN] {
            assert!(matches!(
                fpr_at_tpr(&[1.0], &[0.0], tpr),
                Err(EvalError::InvalidTpr { .. })
            ));
            assert!(fpr_at_tpr_id_positive(&[1.0], &[0.0], tpr).is_err());
        }
    }

    #[test]
    fn balanced_accuracy_by_hand() {
        // Class 0: 2/3 right, class 1: 1/1, class 2 (unknown): 0/2 -> (2/3 + 1 + 0) / 3.
        let labels = [0, 0, 0, 1, 2, 2];
        let preds = [0, 0, 1, 1, 0, 1];
        let ba = balanced_accuracy(&preds, &labels).unwrap();
        assert!((ba - (2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12);
        // sklearn: balanced_accuracy_score([0,0,0,1,2,2], [0,0,1,1,0,1]) = 0.5555...
        assert!((ba - 0.555_555_555_555_555_6).abs() < 1e-15);
        assert_eq!(
            per_class_recall(&preds, &labels).unwrap(),
            vec![Some(2.0 / 3.0), Some(1.0), Some(0.0)]
        );
        // A class absent from the labels does not count (sklearn); a predicted class no
        // label has is just a miss.
        assert_eq!(balanced_accuracy(&[3, 0], &[0, 0]).unwrap(), 0.5);
        assert_eq!(
            per_class_recall(&[1, 1], &[0, 2]).unwrap(),
            vec![Some(0.0), None, Some(0.0)]
        );
        assert!(matches!(
            balanced_accuracy(&[], &[]),
            Err(EvalError::Empty { .. })
        ));
        assert!(matches!(
            balanced_accuracy(&[0], &[0, 1]),
            Err(EvalError::LengthMismatch { .. })
        ));
    }

    #[test]
    fn accuracy_counts_matches() {
        assert_eq!(accuracy(&[0, 1, 2, 2], &[0, 1, 1, 2]).unwrap(), 0.75);
        assert!(matches!(
            accuracy(&[0, 1], &[0]),
            Err(EvalError::LengthMismatch {
                left: 2,
                right: 1,
                ..
            })
        ));
        assert!(matches!(accuracy(&[], &[]), Err(EvalError::Empty { .. })));
    }

    #[test]
    fn metrics_round_trip_through_json() {
        let m = ood_metrics(&[0.9, 0.8], &[0.1, 0.85]).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<OodMetrics>(&json).unwrap(), m);
        assert!(json.contains("\"fpr95_id_positive\""));
    }

    #[test]
    fn a_million_scores() {
        // Memory and time check: 10^6 + 10^6 quantized scores (heavy ties) sort and score
        // quickly; every ID score beats every OOD score by construction.
        let id: Vec<f32> = (0..1_000_000u32).map(|i| 1.0 + (i % 1000) as f32).collect();
        let ood: Vec<f32> = (0..1_000_000u32).map(|i| -((i % 777) as f32)).collect();
        let m = ood_metrics(&id, &ood).unwrap();
        assert_eq!(m.auroc, 1.0);
        assert_eq!(m.fpr95, 0.0);
        assert_eq!(m.fpr95_id_positive, 0.0);
        assert_eq!(m.aupr_in, 1.0);
        assert_eq!(m.aupr_out, 1.0);
    }
}
