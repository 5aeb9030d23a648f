//! Tensor helpers shared by the GCD and open-set semi-supervised losses ([`crate::supcon`],
//! [`crate::simgcd`], [`crate::protogcd`], [`crate::fixmatch`], [`crate::iomatch`]):
//! L2 normalisation, per-sample (soft) cross-entropy, masked means that stay defined when the
//! mask is empty, and numpy's `linspace` evaluated at one index (the epoch schedules of
//! SimGCD and ProtoGCD are `np.linspace` tables).
//!
//! Everything stays on the device: masks are float tensors of 0/1, never read back, so a
//! step runs without host synchronisation.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::LossConfigError;

/// `x / max(‖x‖₂, 1e-12)` along `dim`, as PyTorch's `F.normalize(x, dim=dim)`.
///
/// # Shapes
/// - `x`: any shape -> the same shape
pub fn l2_normalize<B: Backend, const D: usize>(x: Tensor<B, D>, dim: usize) -> Tensor<B, D> {
    let norm = x.clone().square().sum_dim(dim).sqrt().clamp_min(1e-12);
    x / norm
}

/// Per-sample cross-entropy against soft targets, `−Σ_j t_ij·log softmax(z_i)_j` (USB's
/// `ce_loss(logits, targets, reduction='none')` when the targets have the logits' shape).
/// The targets are used as given: detach them first if no gradient may flow into them.
///
/// # Shapes
/// - `logits`: `[n, k]`, `targets`: `[n, k]` -> `[n]`
///
/// # Panics
/// If the two shapes differ.
pub fn soft_cross_entropy_per_sample<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 2>,
) -> Tensor<B, 1> {
    assert_eq!(
        logits.dims(),
        targets.dims(),
        "soft_cross_entropy_per_sample: logits and targets must have the same shape"
    );
    (log_softmax(logits, 1) * targets)
        .sum_dim(1)
        .neg()
        .squeeze_dim::<1>(1)
}

/// Per-sample cross-entropy `−log softmax(z_i)_{y_i}` (`F.cross_entropy(..., reduction='none')`).
///
/// # Shapes
/// - `logits`: `[n, k]`, `labels`: `[n]` (values in `0..k`) -> `[n]`
///
/// # Panics
/// If `labels` does not have one entry per row of `logits`.
pub fn cross_entropy_per_sample<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let [n, _] = logits.dims();
    let [n_labels] = labels.dims();
    assert_eq!(
        n, n_labels,
        "cross_entropy_per_sample: {n} rows of logits but {n_labels} labels"
    );
    log_softmax(logits, 1)
        .gather(1, labels.reshape([n, 1]))
        .neg()
        .squeeze_dim::<1>(1)
}

/// `Σ_i m_i·v_i / max(Σ_i m_i, 1)` for a 0/1 mask `m`: the mean of the selected values, and
/// exactly `0` (with zero gradient) when the mask selects nothing, where PyTorch's mean of
/// an empty selection is NaN.
///
/// # Shapes
/// - `values`: `[n]`, `mask`: `[n]` (0/1 floats) -> `[1]`
pub fn masked_mean<B: Backend>(values: Tensor<B, 1>, mask: Tensor<B, 1>) -> Tensor<B, 1> {
    let count = mask.clone().sum().clamp_min(1.0);
    (values * mask).sum() / count
}

/// Element `i` of `np.linspace(start, stop, num)` (endpoint included), computed as numpy
/// does (`start + i·((stop − start)/(num − 1))`, the last element set to `stop`), so the
/// epoch schedules match the references bit for bit in f64.
///
/// # Panics
/// If `i >= num`.
pub fn linspace_at(start: f64, stop: f64, num: usize, i: usize) -> f64 {
    assert!(
        i < num,
        "linspace_at: index {i} out of a {num}-point linspace"
    );
    if num == 1 {
        return start;
    }
    if i == num - 1 {
        return stop;
    }
    start + i as f64 * ((stop - start) / (num - 1) as f64)
}

/// `Ok` when `value` is finite and `> 0`.
pub(crate) fn check_positive(field: &'static str, value: f64) -> Result<(), LossConfigError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossConfigError::Invalid {
            field,
            value: value as f32,
            expected: "a finite number > 0",
        })
    }
}

/// `Ok` when `value` is finite and `>= 0`.
pub(crate) fn check_non_negative_f64(
    field: &'static str,
    value: f64,
) -> Result<(), LossConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(LossConfigError::Invalid {
            field,
            value: value as f32,
            expected: "a finite number >= 0",
        })
    }
}

/// `Ok` when `value` lies in `[0, 1]`.
pub(crate) fn check_unit_interval(field: &'static str, value: f64) -> Result<(), LossConfigError> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(LossConfigError::Invalid {
            field,
            value: value as f32,
            expected: "a number in [0, 1]",
        })
    }
}

/// The `[v·n, ...]` rows of a view-major batch (`torch.cat([view_0, view_1, ...])`, the
/// layout of `torch.cat(images, dim=0)` in SimGCD/ProtoGCD) split into the number of views,
/// given the per-view batch `n`.
///
/// # Panics
/// If `rows` is not a positive multiple of `n`.
pub(crate) fn n_views(rows: usize, n: usize, caller: &str) -> usize {
    assert!(
        n > 0 && rows.is_multiple_of(n) && rows > 0,
        "{caller}: {rows} rows are not a whole number of views of {n} samples each"
    );
    rows / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{TensorData, Tolerance};

    type TB = Flex;

    #[test]
    fn l2_normalize_matches_hand_values_and_survives_zero_rows() {
        let device = Default::default();
        let x = Tensor::<TB, 2>::from_floats([[3.0, 4.0], [0.0, 0.0]], &device);
        l2_normalize(x, 1).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.6f32, 0.8], [0.0, 0.0]]),
            Tolerance::rel_abs(1e-6, 1e-7),
        );
    }

    #[test]
    fn masked_mean_of_an_empty_mask_is_zero_with_zero_gradient() {
        type AD = Autodiff<Flex>;
        let device = Default::default();
        let v = Tensor::<AD, 1>::from_floats([1.0, 2.0, 3.0], &device).require_grad();
        let empty = Tensor::<AD, 1>::zeros([3], &device);
        let out = masked_mean(v.clone(), empty);
        let grads = out.backward();
        assert_eq!(out.into_scalar(), 0.0);
        let g = v.grad(&grads).expect("values require grad");
        g.into_data()
            .assert_eq(&TensorData::from([0.0f32, 0.0, 0.0]), true);
        let m = Tensor::<TB, 1>::from_floats([1.0, 0.0, 1.0], &device);
        let v = Tensor::<TB, 1>::from_floats([1.0, 2.0, 3.0], &device);
        assert_eq!(masked_mean(v, m).into_scalar(), 2.0);
    }

    #[test]
    fn linspace_at_matches_numpy() {
        // np.linspace(0.07, 0.04, 30)[[0, 1, 10, 29]]; np.linspace(0, 1, 100)[50]
        assert_eq!(linspace_at(0.07, 0.04, 30, 0), 0.07);
        assert_eq!(linspace_at(0.07, 0.04, 30, 29), 0.04);
        assert!((linspace_at(0.07, 0.04, 30, 1) - 0.06896551724137931).abs() < 1e-16);
        assert!((linspace_at(0.0, 1.0, 100, 50) - 50.0 / 99.0).abs() < 1e-16);
        assert_eq!(linspace_at(0.3, 0.9, 1, 0), 0.3);
    }

    #[test]
    fn soft_and_hard_cross_entropy_agree_on_one_hot_targets() {
        let device = Default::default();
        let z = Tensor::<TB, 2>::from_floats([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([0, 2], &device);
        let t = Tensor::<TB, 2>::from_floats([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], &device);
        let hard = cross_entropy_per_sample(z.clone(), y).into_data();
        soft_cross_entropy_per_sample(z, t)
            .into_data()
            .assert_approx_eq::<f32>(&hard, Tolerance::rel_abs(1e-6, 1e-7));
    }
}
