//! Small tensor helpers shared by the losses: row-wise log-sum-exp and one-hot encoding.
//!
//! Both stay on the device (no read-back to the host), unlike burn 0.21's
//! `Tensor::one_hot`, which converts its input through `to_data()`.

use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;

/// Row-wise `log Σ_j exp(z_ij)`, computed stably as `m + log Σ_j exp(z_ij − m)` with
/// `m = max_j z_ij` (the max is detached: it cancels in value and gradient, so the
/// gradient is exactly `softmax(z)`). Equivalent to `torch.logsumexp(z, dim=1)`.
///
/// # Shapes
/// - `logits`: `[n, k]` -> `[n]`
pub fn logsumexp<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    let max = logits.clone().detach().max_dim(1); // [n, 1]
    let sum = (logits - max.clone()).exp().sum_dim(1); // [n, 1]
    (sum.log() + max).squeeze_dim::<1>(1)
}

/// One-hot encoding of integer labels as floats: row `i` is 1 at column `labels[i]`,
/// 0 elsewhere. Built with a scatter on the device.
///
/// Labels must lie in `0..num_classes`; not every backend checks the bounds of a scatter.
///
/// # Shapes
/// - `labels`: `[n]` -> `[n, num_classes]`
pub fn one_hot<B: Backend>(labels: Tensor<B, 1, Int>, num_classes: usize) -> Tensor<B, 2> {
    let [n] = labels.dims();
    let device = labels.device();
    Tensor::zeros([n, num_classes], &device).scatter(
        1,
        labels.reshape([n, 1]),
        Tensor::ones([n, 1], &device),
        IndexingUpdateOp::Add,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{TensorData, Tolerance};

    type TB = burn::backend::Flex;

    #[test]
    fn logsumexp_matches_hand_values_and_is_stable() {
        let device = Default::default();
        // log(e^0 + e^0 + e^0) = ln 3; rows of 1000 must not overflow.
        let z = Tensor::<TB, 2>::from_floats(
            [
                [0.0, 0.0, 0.0],
                [1000.0, 1000.0, 1000.0],
                [1000.0, 0.0, -1000.0],
            ],
            &device,
        );
        let ln3 = 3f32.ln();
        logsumexp(z).into_data().assert_approx_eq::<f32>(
            &TensorData::from([ln3, 1000.0 + ln3, 1000.0]),
            Tolerance::rel_abs(1e-6, 1e-6),
        );
    }

    #[test]
    fn one_hot_places_a_single_one_per_row() {
        let device = Default::default();
        let labels = Tensor::<TB, 1, Int>::from_ints([2, 0, 1], &device);
        one_hot(labels, 4).into_data().assert_eq(
            &TensorData::from([
                [0.0f32, 0.0, 1.0, 0.0],
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
            ]),
            true,
        );
    }
}
