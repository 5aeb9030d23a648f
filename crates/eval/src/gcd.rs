//! Clustering accuracy for generalized category discovery (GCD): the Hungarian-matched
//! accuracy of predicted clusters against true labels, and its split into old and new
//! classes in the two protocols of the GCD literature.
//!
//! # Reference
//!
//! Vaze et al., "Generalized Category Discovery", CVPR 2022,
//! `github.com/sgvaze/generalized-category-discovery`:
//!
//! * `project_utils/cluster_utils.py`, `cluster_acc`: build the contingency matrix
//!   `w[pred, true]` of size `D x D` with `D = max(max pred, max true) + 1`, solve
//!   `linear_sum_assignment(w.max() - w)` (a maximum-weight one-to-one matching of
//!   clusters to labels) and return the matched count over the sample count.
//! * `project_utils/cluster_and_log_utils.py`, `split_cluster_acc_v1` and
//!   `split_cluster_acc_v2` (see [`gcd_accuracy_v1`] and [`gcd_accuracy_v2`]). SimGCD
//!   (`CVMI-Lab/SimGCD`, `util/cluster_and_log_utils.py`) and ProtoGCD
//!   (`mashijie1028/ProtoGCD`, `my_utils/cluster_and_log_utils.py`) keep only v2, which is
//!   the protocol every recent GCD paper reports.
//!
//! # v1 and v2
//!
//! * **v2** ([`gcd_accuracy_v2`]) matches clusters to classes **once**, over all samples,
//!   and then reads the accuracy of the old-class and of the new-class samples off that one
//!   matching. A cluster can serve one class only, old or new.
//! * **v1** ([`gcd_accuracy_v1`]) matches the old-class samples and the new-class samples
//!   **separately** (two Hungarian runs), so one cluster may be matched to an old class in
//!   the first run and to a new class in the second. "All" is the sample-weighted mean of
//!   the two. v1 is therefore never below v2 and can be well above it when a model merges
//!   old and new classes into shared clusters; the `v1_vs_v2` unit test shows a 3-class
//!   case where v1 gives all = 1.0 and v2 gives all = 0.75.
//!
//! # Differences from the reference, all in what the reference leaves undefined
//!
//! * Empty input is an [`EvalError::Empty`] (the reference crashes on `max()` of an empty
//!   array).
//! * With no old (or no new) samples, `old` (or `new`) is `None` (the reference divides by
//!   zero); `all` stays defined.
//! * The matrix is built over the ids that occur, padded to a square of
//!   `max(#clusters, #classes)`, instead of over `0..=max id`. Unused ids only add zero
//!   rows and columns, so the matched total, and therefore every accuracy, is the same,
//!   while huge sparse ids (e.g. a cluster id of 1,000,000) cost nothing.
//! * When several matchings reach the same total, which one is chosen is up to the solver
//!   (`pathfinding::kuhn_munkres` here, scipy's `linear_sum_assignment` there). `all` does
//!   not depend on it, but v2's old/new split can: with ties, two correct solvers may
//!   report different old/new numbers. The fixture cases are checked to have a unique
//!   optimal matching, so they compare exactly.
//! * [`gcd_accuracy_v2`] rejects a class whose samples are marked partly old and partly
//!   new ([`EvalError::MixedOldNew`]); the reference would count such a class in both
//!   subsets.

use std::collections::BTreeMap;

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The best one-to-one matching of predicted clusters to true labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMatching {
    /// `(cluster, label)` pairs of the matching, ascending by cluster, holding only pairs
    /// that share at least one sample (pairs of zero weight are left out).
    pub pairs: Vec<(usize, usize)>,
    /// Samples whose cluster is matched to their label.
    pub correct: usize,
    /// Number of samples.
    pub total: usize,
}

impl ClusterMatching {
    /// `correct / total`.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.total as f64
    }

    /// The label matched to `cluster`, if any.
    pub fn label_of(&self, cluster: usize) -> Option<usize> {
        self.pairs
            .binary_search_by_key(&cluster, |&(c, _)| c)
            .ok()
            .map(|i| self.pairs[i].1)
    }
}

/// Finds the maximum-weight one-to-one matching of predicted clusters to labels
/// (`cluster_acc` of the GCD reference, which also returns the matching with
/// `return_ind=True`).
///
/// # Errors
/// [`EvalError::Empty`] if there are no samples, [`EvalError::LengthMismatch`] if the two
/// slices differ in length.
pub fn match_clusters(y_true: &[usize], y_pred: &[usize]) -> Result<ClusterMatching> {
    check_pair(y_true, y_pred)?;
    // Compact ids: rows are the clusters that occur, columns the labels that occur.
    let clusters = dense_ids(y_pred);
    let labels = dense_ids(y_true);
    let n = clusters.len().max(labels.len());
    let mut w = Matrix::new(n, n, 0i64);
    for (&t, &p) in y_true.iter().zip(y_pred) {
        w[(clusters[&p], labels[&t])] += 1;
    }
    let (correct, row_to_col) = kuhn_munkres(&w);
    let cluster_ids: Vec<usize> = clusters.keys().copied().collect();
    let label_ids: Vec<usize> = labels.keys().copied().collect();
    let pairs = row_to_col
        .iter()
        .enumerate()
        .filter(|&(r, &c)| r < cluster_ids.len() && c < label_ids.len() && w[(r, c)] > 0)
        .map(|(r, &c)| (cluster_ids[r], label_ids[c]))
        .collect();
    Ok(ClusterMatching {
        pairs,
        correct: correct as usize,
        total: y_true.len(),
    })
}

/// Clustering accuracy: the fraction of samples whose predicted cluster is matched to
/// their label under the best one-to-one matching of clusters to labels (Hungarian
/// algorithm on the contingency matrix), as `cluster_acc` of the GCD reference.
///
/// Labels and clusters may use any ids, unrelated to each other and not contiguous. With
/// one class and one cluster the accuracy is 1.0; more clusters than classes (or the
/// reverse) leave the unmatched ones counted as wrong.
///
/// ```
/// use unseen_eval::gcd::cluster_accuracy;
/// // Cluster 7 is class 0, cluster 3 is class 1; one sample of class 1 sits in cluster 7.
/// let acc = cluster_accuracy(&[0, 0, 1, 1, 1], &[7, 7, 3, 3, 7])?;
/// assert_eq!(acc, 0.8);
/// # Ok::<(), unseen_eval::EvalError>(())
/// ```
///
/// # Errors
/// [`EvalError::Empty`] if there are no samples, [`EvalError::LengthMismatch`] if the two
/// slices differ in length.
pub fn cluster_accuracy(y_true: &[usize], y_pred: &[usize]) -> Result<f64> {
    Ok(match_clusters(y_true, y_pred)?.accuracy())
}

/// GCD accuracy on all samples and on the old-class and new-class subsets, as fractions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GcdAccuracy {
    /// Accuracy over all samples.
    pub all: f64,
    /// Accuracy over the samples of old (labelled) classes; `None` if there are none.
    pub old: Option<f64>,
    /// Accuracy over the samples of new classes; `None` if there are none.
    pub new: Option<f64>,
}

/// GCD accuracy, protocol v2 (`split_cluster_acc_v2` of the GCD reference, the protocol
/// of SimGCD, ProtoGCD and most later work): one Hungarian matching over all samples, then
/// the accuracy of the old-class samples and of the new-class samples under that matching.
///
/// `is_old[i]` says whether sample `i` belongs to an old (labelled) class; it must agree
/// for all samples of a class. `old` / `new` is `None` when no sample is old / new.
///
/// ```
/// use unseen_eval::gcd::gcd_accuracy_v2;
/// // Classes 0 and 1 are old, 2 is new; the model puts class 2 into class 1's cluster.
/// let y_true = [0, 0, 1, 1, 2, 2];
/// let y_pred = [0, 0, 1, 1, 1, 1];
/// let is_old = [true, true, true, true, false, false];
/// let acc = gcd_accuracy_v2(&y_true, &y_pred, &is_old)?;
/// assert_eq!((acc.old, acc.new), (Some(1.0), Some(0.0)));
/// # Ok::<(), unseen_eval::EvalError>(())
/// ```
///
/// # Errors
/// [`EvalError::Empty`] for no samples, [`EvalError::LengthMismatch`] if the three slices
/// differ in length, [`EvalError::MixedOldNew`] if a class has old and new samples.
pub fn gcd_accuracy_v2(y_true: &[usize], y_pred: &[usize], is_old: &[bool]) -> Result<GcdAccuracy> {
    check_mask(y_true, y_pred, is_old)?;
    let mut class_is_old = BTreeMap::new();
    for (&t, &o) in y_true.iter().zip(is_old) {
        if *class_is_old.entry(t).or_insert(o) != o {
            return Err(EvalError::MixedOldNew { class: t });
        }
    }
    let m = match_clusters(y_true, y_pred)?;
    let label_to_cluster: BTreeMap<usize, usize> = m.pairs.iter().map(|&(c, l)| (l, c)).collect();
    let (mut old_ok, mut old_n, mut new_ok, mut new_n) = (0usize, 0usize, 0usize, 0usize);
    for ((&t, &p), &o) in y_true.iter().zip(y_pred).zip(is_old) {
        let ok = usize::from(label_to_cluster.get(&t) == Some(&p));
        if o {
            old_ok += ok;
            old_n += 1;
        } else {
            new_ok += ok;
            new_n += 1;
        }
    }
    Ok(GcdAccuracy {
        all: m.accuracy(),
        old: ratio(old_ok, old_n),
        new: ratio(new_ok, new_n),
    })
}

/// GCD accuracy, protocol v1 (`split_cluster_acc_v1` of the GCD reference): the old-class
/// samples and the new-class samples are matched **separately** (one Hungarian run each),
/// and "all" is the sample-weighted mean of the two accuracies.
///
/// Kept to compare with numbers reported under it; it is optimistic because one cluster
/// can be matched twice, once in each subset (see the [module docs](self)).
///
/// `all` is computed as `(correct_old + correct_new) / n`, which equals the reference's
/// `w * old + (1 - w) * new` with `w = n_old / n`; with no new (or old) samples it is the
/// accuracy of the other subset.
///
/// # Errors
/// [`EvalError::Empty`] for no samples, [`EvalError::LengthMismatch`] if the three slices
/// differ in length.
pub fn gcd_accuracy_v1(y_true: &[usize], y_pred: &[usize], is_old: &[bool]) -> Result<GcdAccuracy> {
    check_mask(y_true, y_pred, is_old)?;
    let subset = |want: bool| -> Result<Option<ClusterMatching>> {
        let (t, p): (Vec<usize>, Vec<usize>) = y_true
            .iter()
            .zip(y_pred)
            .zip(is_old)
            .filter(|&(_, &o)| o == want)
            .map(|((&t, &p), _)| (t, p))
            .unzip();
        if t.is_empty() {
            Ok(None)
        } else {
            match_clusters(&t, &p).map(Some)
        }
    };
    let old = subset(true)?;
    let new = subset(false)?;
    let correct: usize = old.iter().chain(&new).map(|m| m.correct).sum();
    Ok(GcdAccuracy {
        all: correct as f64 / y_true.len() as f64,
        old: old.map(|m| m.accuracy()),
        new: new.map(|m| m.accuracy()),
    })
}

/// `ok / n`, or `None` when `n` is 0.
fn ratio(ok: usize, n: usize) -> Option<f64> {
    (n > 0).then(|| ok as f64 / n as f64)
}

/// Maps each distinct id to its rank among the distinct ids (ascending).
fn dense_ids(ids: &[usize]) -> BTreeMap<usize, usize> {
    let mut map: BTreeMap<usize, usize> = ids.iter().map(|&i| (i, 0)).collect();
    for (rank, v) in map.values_mut().enumerate() {
        *v = rank;
    }
    map
}

fn check_pair(y_true: &[usize], y_pred: &[usize]) -> Result<()> {
    if y_true.len() != y_pred.len() {
        return Err(EvalError::LengthMismatch {
            what: "labels vs predicted clusters",
            left: y_true.len(),
            right: y_pred.len(),
        });
    }
    if y_true.is_empty() {
        return Err(EvalError::Empty { what: "labels" });
    }
    Ok(())
}

fn check_mask(y_true: &[usize], y_pred: &[usize], is_old: &[bool]) -> Result<()> {
    check_pair(y_true, y_pred)?;
    if is_old.len() != y_true.len() {
        return Err(EvalError::LengthMismatch {
            what: "labels vs old-class mask",
            left: y_true.len(),
            right: is_old.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Hand-computed cases. The scipy-checked cases are in `tests/gcd.rs`.
    use super::*;

    #[test]
    fn perfect_up_to_renaming() {
        let y = [0, 0, 1, 1, 2, 2];
        let p = [10, 10, 4, 4, 99, 99];
        assert_eq!(cluster_accuracy(&y, &p).unwrap(), 1.0);
        let m = match_clusters(&y, &p).unwrap();
        assert_eq!(m.pairs, vec![(4, 1), (10, 0), (99, 2)]);
        assert_eq!(m.label_of(99), Some(2));
        assert_eq!(m.label_of(5), None);
    }

    #[test]
    fn single_class() {
        assert_eq!(cluster_accuracy(&[3, 3, 3], &[0, 0, 0]).unwrap(), 1.0);
        // One class split over two clusters: only the larger cluster can be matched.
        assert_eq!(cluster_accuracy(&[3, 3, 3], &[0, 1, 1]).unwrap(), 2.0 / 3.0);
        assert_eq!(cluster_accuracy(&[5], &[9]).unwrap(), 1.0);
    }

    #[test]
    fn one_to_one_not_majority_vote() {
        // Both classes are mostly in cluster 0; a majority vote would give 4/6,
        // a one-to-one matching can use cluster 0 for one class only.
        let y = [0, 0, 0, 1, 1, 1];
        let p = [0, 0, 1, 0, 0, 1];
        // Best: 0->0 (2) + 1->1 (1) = 3, or 0->1 (2) + 1->0 (1) = 3.
        assert_eq!(cluster_accuracy(&y, &p).unwrap(), 0.5);
    }

    #[test]
    fn empty_and_mismatched_inputs_are_errors() {
        assert!(matches!(
            cluster_accuracy(&[], &[]),
            Err(EvalError::Empty { what: "labels" })
        ));
        assert!(matches!(
            cluster_accuracy(&[0, 1], &[0]),
            Err(EvalError::LengthMismatch {
                left: 2,
                right: 1,
                ..
            })
        ));
        assert!(matches!(
            gcd_accuracy_v2(&[0, 1], &[0, 1], &[true]),
            Err(EvalError::LengthMismatch {
                left: 2,
                right: 1,
                ..
            })
        ));
        assert!(matches!(
            gcd_accuracy_v1(&[], &[], &[]),
            Err(EvalError::Empty { .. })
        ));
    }

    #[test]
    fn huge_sparse_ids_cost_nothing() {
        let y = [usize::MAX, usize::MAX, 0];
        let p = [1_000_000_000, 1_000_000_000, 7];
        assert_eq!(cluster_accuracy(&y, &p).unwrap(), 1.0);
    }

    /// The smallest case that separates the two protocols. Classes 0 and 1 are old, class 2
    /// is new, and the model puts class 1 and class 2 into one cluster:
    ///
    /// ```text
    ///            c0  c1 | c2
    /// k0          2   0 |  0
    /// k1          0   1 |  2
    /// ```
    ///
    /// v2 matches once: k0->c0, k1->c2 (2 beats 1), class 1 is left without a cluster:
    /// all = 4/5, old = 2/3, new = 1. v1 matches the old samples alone (k1->c1, all 3
    /// right) and the new samples alone (k1->c2, both right): all = old = new = 1.
    #[test]
    fn v1_vs_v2() {
        let y = [0, 0, 1, 2, 2];
        let p = [0, 0, 1, 1, 1];
        let old = [true, true, true, false, false];
        let v2 = gcd_accuracy_v2(&y, &p, &old).unwrap();
        assert_eq!(v2.all, 0.8);
        assert_eq!(v2.old, Some(2.0 / 3.0));
        assert_eq!(v2.new, Some(1.0));
        let v1 = gcd_accuracy_v1(&y, &p, &old).unwrap();
        assert_eq!(
            v1,
            GcdAccuracy {
                all: 1.0,
                old: Some(1.0),
                new: Some(1.0)
            }
        );
    }

    /// A 3-class case (two old, one new) where v1 and v2 differ in every field, written out
    /// in full. Contingency (rows = clusters, columns = classes 0, 1 | 2):
    ///
    /// ```text
    ///            c0  c1 | c2
    /// k0          3   0 |  0
    /// k1          0   2 |  3
    /// k2          1   1 |  1
    /// ```
    ///
    /// v2, one matching over all: k0->c0 (3), k1->c2 (3), k2->c1 (1) = 7 of 11 (the
    /// alternative k1->c1, k2->c2 gives 3+2+1 = 6). all = 7/11, old = (3+1)/7 = 4/7,
    /// new = 3/4.
    /// v1, old samples alone (classes 0, 1; 7 samples): k0->c0 (3), k1->c1 (2) = 5/7;
    /// new samples alone (class 2; 4 samples): k1->c2 (3) = 3/4; all = (5+3)/11 = 8/11.
    #[test]
    fn v1_vs_v2_three_classes_in_full() {
        let mut y = Vec::new();
        let mut p = Vec::new();
        for (cluster, counts) in [[3, 0, 0], [0, 2, 3], [1, 1, 1]].iter().enumerate() {
            for (class, &c) in counts.iter().enumerate() {
                for _ in 0..c {
                    y.push(class);
                    p.push(cluster);
                }
            }
        }
        let old: Vec<bool> = y.iter().map(|&c| c < 2).collect();
        let v2 = gcd_accuracy_v2(&y, &p, &old).unwrap();
        assert_eq!(v2.all, 7.0 / 11.0);
        assert_eq!(v2.old, Some(4.0 / 7.0));
        assert_eq!(v2.new, Some(3.0 / 4.0));
        let v1 = gcd_accuracy_v1(&y, &p, &old).unwrap();
        assert_eq!(v1.all, 8.0 / 11.0);
        assert_eq!(v1.old, Some(5.0 / 7.0));
        assert_eq!(v1.new, Some(3.0 / 4.0));
    }

    #[test]
    fn no_new_or_no_old_samples_give_none() {
        let y = [0, 0, 1];
        let p = [1, 1, 0];
        for f in [gcd_accuracy_v1, gcd_accuracy_v2] {
            let all_old = f(&y, &p, &[true; 3]).unwrap();
            assert_eq!(
                all_old,
                GcdAccuracy {
                    all: 1.0,
                    old: Some(1.0),
                    new: None
                }
            );
            let all_new = f(&y, &p, &[false; 3]).unwrap();
            assert_eq!(
                all_new,
                GcdAccuracy {
                    all: 1.0,
                    old: None,
                    new: Some(1.0)
                }
            );
        }
    }

    #[test]
    fn v2_rejects_a_class_that_is_both_old_and_new() {
        let e = gcd_accuracy_v2(&[0, 0, 1], &[0, 0, 1], &[true, false, false]).unwrap_err();
        assert!(matches!(e, EvalError::MixedOldNew { class: 0 }));
        assert!(e.to_string().contains("class 0"));
    }
}
