//! Supervised contrastive loss (SupCon) and the unsupervised InfoNCE (SimCLR) objective, as
//! the generalized-category-discovery references use them.
//!
//! - **SupCon**: Khosla et al., *Supervised Contrastive Learning*, NeurIPS 2020. Reference:
//!   `SupConLoss` (from HobbitLong/SupContrast) as copied into CVMI-Lab/SimGCD `model.py`,
//!   sgvaze/generalized-category-discovery
//!   `methods/contrastive_training/contrastive_training.py` and mashijie1028/ProtoGCD
//!   `models/loss.py` (the three are identical), with `contrast_mode='all'`.
//! - **InfoNCE**: Chen et al., *A Simple Framework for Contrastive Learning of Visual
//!   Representations* (SimCLR), ICML 2020, in the form of `info_nce_logits` in the same
//!   files, followed by `torch.nn.CrossEntropyLoss()(logits, labels)` in their `train.py`.
//!
//! # Functions
//! - [`supcon`]`(features, labels, temperature)`: SupCon with `base_temperature =
//!   temperature` (so the `τ/τ_base` factor is 1); without labels it is SimCLR (the identity
//!   mask of `SupConLoss(labels=None)`). GCD and SimGCD call `SupConLoss()` with its
//!   defaults, `temperature = base_temperature = 0.07`, on the labelled subset.
//! - [`supcon_with_base_temperature`]: the same with a separate `base_temperature`
//!   (ProtoGCD calls `SupConLoss(temperature=args.temp_sup_con)`, leaving the base at 0.07).
//! - [`supcon_masked`]: SupCon restricted to the samples a 0/1 mask selects, without
//!   gathering them (the recipes' "labelled subset of the batch"); an empty mask gives 0.
//! - [`info_nce_logits`]`(features, n_views, temperature) -> (logits, labels)` and
//!   [`info_nce`]`(features, n_views, temperature)` = cross-entropy of those logits against
//!   their all-zero labels. GCD/SimGCD/ProtoGCD use `temperature = 1.0` (the default of
//!   `info_nce_logits`, never overridden in SimGCD; ProtoGCD's `--temp_unsup_con 1.0`).
//!
//! # The official computation
//! Features `[b, v, d]` (L2-normalised by the caller) are laid out view-major,
//! `contrast = cat(unbind(features, 1))` of shape `[v·b, d]`; every row is an anchor
//! (`contrast_mode='all'`). With `s = contrast·contrastᵀ/τ` (minus its detached row max),
//! `P(i)` the rows with the anchor's label other than itself and `A(i)` all rows but itself,
//!
//! `loss = −(τ/τ_base) · mean_i [ (1/|P(i)|) Σ_{p∈P(i)} (s_ip − log Σ_{a∈A(i)} exp s_ia) ]`.
//!
//! Where the reference divides by `|P(i)| = 0` (one view and a label seen once) it returns
//! NaN; here that anchor contributes 0 (it is still counted in the mean).

use burn::prelude::*;
use burn::tensor::TensorData;

use crate::ce::cross_entropy;
use crate::common::{l2_normalize, masked_mean};

/// SupCon (Khosla et al.) with `contrast_mode='all'` and `base_temperature = temperature`,
/// as `SupConLoss(temperature=τ, base_temperature=τ)(features, labels)`; `labels = None` is
/// SimCLR (positives = the other views of the same sample). GCD/SimGCD use `τ = 0.07`.
///
/// `features` must already be L2-normalised along `dim` (the references call
/// `F.normalize(student_proj, dim=-1)` first).
///
/// # Shapes
/// - `features`: `[batch, views, dim]`, `labels`: `[batch]` -> `[1]`
///
/// # Panics
/// If `labels` does not have one entry per sample, or the batch is empty.
pub fn supcon<B: Backend>(
    features: Tensor<B, 3>,
    labels: Option<Tensor<B, 1, Int>>,
    temperature: f64,
) -> Tensor<B, 1> {
    supcon_impl(features, labels, None, temperature, temperature)
}

/// [`supcon`] with the `base_temperature` of `SupConLoss` set separately: the loss is
/// scaled by `temperature / base_temperature`.
///
/// # Shapes
/// - `features`: `[batch, views, dim]`, `labels`: `[batch]` -> `[1]`
pub fn supcon_with_base_temperature<B: Backend>(
    features: Tensor<B, 3>,
    labels: Option<Tensor<B, 1, Int>>,
    temperature: f64,
    base_temperature: f64,
) -> Tensor<B, 1> {
    supcon_impl(features, labels, None, temperature, base_temperature)
}

/// SupCon over the samples selected by a 0/1 `sample_mask`, equal (up to rounding) to
/// [`supcon_with_base_temperature`] on `features[mask]`, `labels[mask]`, which is what
/// SimGCD/ProtoGCD's `train.py` compute on the labelled subset
/// (`f[mask_lab]`, `class_labels[mask_lab]`). Unselected samples are neither anchors nor
/// contrasted against; labels of unselected samples are ignored. An empty mask gives `0`
/// (the reference would return NaN).
///
/// # Shapes
/// - `features`: `[batch, views, dim]`, `labels`: `[batch]`, `sample_mask`: `[batch]`
///   (0/1 floats) -> `[1]`
pub fn supcon_masked<B: Backend>(
    features: Tensor<B, 3>,
    labels: Option<Tensor<B, 1, Int>>,
    sample_mask: Tensor<B, 1>,
    temperature: f64,
    base_temperature: f64,
) -> Tensor<B, 1> {
    supcon_impl(
        features,
        labels,
        Some(sample_mask),
        temperature,
        base_temperature,
    )
}

fn supcon_impl<B: Backend>(
    features: Tensor<B, 3>,
    labels: Option<Tensor<B, 1, Int>>,
    sample_mask: Option<Tensor<B, 1>>,
    temperature: f64,
    base_temperature: f64,
) -> Tensor<B, 1> {
    let [b, v, d] = features.dims();
    assert!(b > 0 && v > 0, "supcon: empty batch {:?}", [b, v, d]);
    let device = features.device();
    let m = b * v;
    // View-major rows: row r is sample r mod b of view r / b.
    let contrast = features.swap_dims(0, 1).reshape([m, d]);
    let sim = contrast
        .clone()
        .matmul(contrast.transpose())
        .div_scalar(temperature);
    let logits = sim.clone() - sim.detach().max_dim(1);

    let labels = match labels {
        Some(l) => {
            let [n_labels] = l.dims();
            assert_eq!(n_labels, b, "supcon: {b} samples but {n_labels} labels");
            l
        }
        // SimCLR: each sample its own class, i.e. the identity mask tiled over views.
        None => Tensor::arange(0..b as i64, &device),
    };
    let labels_all = labels.repeat_dim(0, v); // [m]
    let same = labels_all
        .clone()
        .reshape([m, 1])
        .expand([m, m])
        .equal(labels_all.reshape([1, m]).expand([m, m]))
        .float();
    let not_self = Tensor::<B, 2>::ones([m, m], &device) - Tensor::<B, 2>::eye(m, &device);
    let (contrast_mask, row_weight) = match sample_mask {
        Some(w) => {
            let [n_mask] = w.dims();
            assert_eq!(
                n_mask, b,
                "supcon_masked: {b} samples but {n_mask} mask entries"
            );
            let w_all = w.repeat_dim(0, v); // [m]
            (not_self * w_all.clone().reshape([1, m]), Some(w_all))
        }
        None => (not_self, None),
    };
    let positives = same * contrast_mask.clone();
    // log Σ_{a≠i} exp(s_ia); the clamp keeps rows with no admissible column (unselected
    // anchors, or a single selected sample with one view) finite: their weight is 0.
    let denom = (logits.clone().exp() * contrast_mask)
        .sum_dim(1)
        .clamp_min(1e-30)
        .log();
    let log_prob = logits - denom;
    let n_pos = positives.clone().sum_dim(1).clamp_min(1.0);
    let mean_log_prob_pos = (positives * log_prob).sum_dim(1) / n_pos; // [m, 1]
    let per_anchor = mean_log_prob_pos
        .mul_scalar(-(temperature / base_temperature))
        .reshape([m]);
    match row_weight {
        Some(w) => masked_mean(per_anchor, w),
        None => per_anchor.mean(),
    }
}

/// SimCLR logits in the layout of the references' `info_nce_logits`: for each of the `m`
/// rows (view-major, `n_views` views of `m/n_views` samples), the cosine similarities to the
/// other `m − 1` rows, positives (the same sample in the other views, in row order) first,
/// then the negatives in row order, all divided by `temperature`; the labels are all 0 (the
/// first positive).
///
/// The reference hard-codes two views (`b_ = 0.5 * features.size(0)`); for `n_views = 2`
/// this function is identical to it. For more views it keeps every positive at the front,
/// but, as the reference's layout implies, the cross-entropy with label 0 then only pulls
/// the first one.
///
/// The features need not be normalised: they are L2-normalised here, as in the reference.
///
/// # Shapes
/// - `features`: `[m, d]` -> logits `[m, m − 1]`, labels `[m]`
///
/// # Panics
/// If `n_views < 2` or `m` is not a positive multiple of `n_views`.
pub fn info_nce_logits<B: Backend>(
    features: Tensor<B, 2>,
    n_views: usize,
    temperature: f64,
) -> (Tensor<B, 2>, Tensor<B, 1, Int>) {
    let [m, _d] = features.dims();
    assert!(
        n_views >= 2 && m > 0 && m.is_multiple_of(n_views),
        "info_nce_logits: {m} rows must be n_views = {n_views} (>= 2) views of the same batch"
    );
    let device = features.device();
    let b = m / n_views;
    let f = l2_normalize(features, 1);
    let sim = f.clone().matmul(f.transpose());
    // Column order of each row: positives, then negatives, each in increasing column index,
    // the diagonal left out (a static index table: no data leaves the device).
    let mut idx = Vec::with_capacity(m * (m - 1));
    for i in 0..m {
        idx.extend(
            (0..m)
                .filter(|&j| j != i && j % b == i % b)
                .map(|j| j as i64),
        );
        idx.extend((0..m).filter(|&j| j % b != i % b).map(|j| j as i64));
    }
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [m, m - 1]), &device);
    let logits = sim.gather(1, idx).div_scalar(temperature);
    (logits, Tensor::zeros([m], &device))
}

/// The InfoNCE loss of SimGCD/ProtoGCD's `train.py`:
/// `CrossEntropyLoss()(*info_nce_logits(features, n_views, temperature))`.
///
/// # Shapes
/// - `features`: `[m, d]` (view-major, unnormalised) -> `[1]`
///
/// # Panics
/// As [`info_nce_logits`].
pub fn info_nce<B: Backend>(
    features: Tensor<B, 2>,
    n_views: usize,
    temperature: f64,
) -> Tensor<B, 1> {
    let (logits, labels) = info_nce_logits(features, n_views, temperature);
    cross_entropy(logits, labels, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{assert_scalar, assert_tensor, ints, tensor};
    use burn::backend::{Autodiff, Flex};

    type TB = Flex;

    #[test]
    fn supcon_matches_reference_with_labels() {
        let device = Default::default();
        let f = tensor::<TB, 3>("supcon/features", &device);
        let y = ints::<TB>("supcon/labels", &device);
        assert_scalar(
            supcon(f.clone(), Some(y.clone()), 0.07),
            "supcon/loss_labels_t0.07",
        );
        assert_scalar(
            supcon(f.clone(), Some(y.clone()), 0.5),
            "supcon/loss_labels_t0.5",
        );
        assert_scalar(
            supcon_with_base_temperature(f, Some(y), 0.1, 0.07),
            "supcon/loss_labels_t0.1_base0.07",
        );
    }

    #[test]
    fn supcon_without_labels_is_simclr() {
        let device = Default::default();
        let f = tensor::<TB, 3>("supcon/features", &device);
        assert_scalar(supcon(f.clone(), None, 0.07), "supcon/loss_simclr_t0.07");
        // Distinct labels give the same positives as no labels.
        let distinct = Tensor::<TB, 1, Int>::from_ints([5, 4, 3, 2, 1, 0], &device);
        assert_scalar(supcon(f, Some(distinct), 0.07), "supcon/loss_simclr_t0.07");
    }

    #[test]
    fn supcon_three_views() {
        let device = Default::default();
        let f = tensor::<TB, 3>("supcon/features3", &device);
        let y = ints::<TB>("supcon/labels3", &device);
        assert_scalar(
            supcon(f.clone(), Some(y), 0.07),
            "supcon/loss3_labels_t0.07",
        );
        assert_scalar(supcon(f, None, 0.2), "supcon/loss3_simclr_t0.2");
    }

    #[test]
    fn supcon_masked_equals_supcon_on_the_subset() {
        let device = Default::default();
        let f = tensor::<TB, 3>("supcon/features", &device);
        let y = ints::<TB>("supcon/labels", &device);
        let mask = Tensor::<TB, 1>::from_floats([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], &device);
        assert_scalar(
            supcon_masked(f.clone(), Some(y.clone()), mask, 0.07, 0.07),
            "supcon/loss_subset_0235_t0.07",
        );
        // All ones = the plain loss; all zeros = 0.
        let ones = Tensor::<TB, 1>::ones([6], &device);
        assert_scalar(
            supcon_masked(f.clone(), Some(y.clone()), ones, 0.07, 0.07),
            "supcon/loss_labels_t0.07",
        );
        let zeros = Tensor::<TB, 1>::zeros([6], &device);
        assert_eq!(
            supcon_masked(f, Some(y), zeros, 0.07, 0.07).into_scalar(),
            0.0
        );
    }

    #[test]
    fn supcon_single_sample_single_view_is_zero_not_nan() {
        // One anchor and no other row: the reference divides 0 by 0.
        let device = Default::default();
        let f = Tensor::<TB, 3>::from_floats([[[0.6, 0.8]]], &device);
        let v = supcon(f, None, 0.07).into_scalar();
        assert_eq!(v, 0.0);
    }

    #[test]
    fn supcon_single_sample_two_views_by_hand() {
        // b = 1, v = 2: each anchor's only other row is its positive, so log_prob = 0.
        let device = Default::default();
        let f = Tensor::<TB, 3>::from_floats([[[0.6, 0.8], [1.0, 0.0]]], &device);
        assert!(supcon(f, None, 0.07).into_scalar().abs() < 1e-6);
    }

    #[test]
    fn supcon_gradient_matches_reference() {
        type AD = Autodiff<Flex>;
        let device = Default::default();
        let f = tensor::<AD, 3>("supcon/features", &device).require_grad();
        let y = ints::<AD>("supcon/labels", &device);
        let grads = supcon(f.clone(), Some(y), 0.07).backward();
        assert_tensor(f.grad(&grads).expect("grad"), "supcon/grad_labels_t0.07");
    }

    #[test]
    fn info_nce_logits_layout_matches_reference() {
        let device = Default::default();
        let f = tensor::<TB, 2>("info_nce/features", &device);
        let (logits, labels) = info_nce_logits(f, 2, 1.0);
        assert_eq!(logits.dims(), [8, 7]);
        assert_tensor(logits, "info_nce/logits_t1");
        labels
            .into_data()
            .assert_eq(&TensorData::from([0i64; 8]), false);
        let f3 = tensor::<TB, 2>("info_nce/features_3views", &device);
        let (logits3, _) = info_nce_logits(f3, 3, 1.0);
        assert_tensor(logits3, "info_nce/logits_3views_t1");
    }

    #[test]
    fn info_nce_matches_reference_value_and_gradient() {
        let device = Default::default();
        let f = tensor::<TB, 2>("info_nce/features", &device);
        assert_scalar(info_nce(f.clone(), 2, 1.0), "info_nce/loss_t1");
        assert_scalar(info_nce(f, 2, 0.5), "info_nce/loss_t0.5");
        type AD = Autodiff<Flex>;
        let f = tensor::<AD, 2>("info_nce/features", &device).require_grad();
        let grads = info_nce(f.clone(), 2, 0.5).backward();
        assert_tensor(f.grad(&grads).expect("grad"), "info_nce/grad_t0.5");
    }

    #[test]
    #[should_panic(expected = "n_views")]
    fn info_nce_rejects_a_ragged_batch() {
        let device = Default::default();
        let f = Tensor::<TB, 2>::ones([5, 3], &device);
        let _ = info_nce(f, 2, 1.0);
    }
}
