//! Cross-entropy with optional label smoothing.
//!
//! Label smoothing: Szegedy et al., *Rethinking the Inception Architecture for Computer
//! Vision*, CVPR 2016 (§7). The formula is PyTorch's
//! `F.cross_entropy(logits, labels, label_smoothing=ε)` (`torch/nn/functional.py`): the
//! target of row `i` is `(1 − ε)·onehot(y_i) + ε/K`, so
//!
//! `loss_i = (1 − ε)·(−log p_{i,y_i}) + ε·(−(1/K)·Σ_j log p_ij)`,   `p = softmax(z)`,
//!
//! averaged over the batch. `ε = 0` is plain cross-entropy. Computed from `log_softmax`,
//! so logits of magnitude 1000 stay finite.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::LossConfigError;

/// Cross-entropy settings. The default (`label_smoothing = 0.0`) is plain cross-entropy,
/// which is what every reference trainer in this crate uses for its in-distribution term
/// (e.g. `F.cross_entropy(x[:len(in_set[0])], target)` in hendrycks/outlier-exposure
/// `CIFAR/oe_tune.py`).
#[derive(Config, Debug)]
pub struct CrossEntropyConfig {
    /// Label smoothing ε in `[0, 1]`: the target is `(1 − ε)·onehot + ε/K` (PyTorch's
    /// `label_smoothing` argument).
    #[config(default = 0.0)]
    pub label_smoothing: f32,
}

impl CrossEntropyConfig {
    /// Checks that `label_smoothing` lies in `[0, 1]`.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        let eps = self.label_smoothing;
        if (0.0..=1.0).contains(&eps) {
            Ok(())
        } else {
            Err(LossConfigError::Invalid {
                field: "label_smoothing",
                value: eps,
                expected: "a number in [0, 1]",
            })
        }
    }

    /// [`cross_entropy`] with this config's smoothing.
    ///
    /// # Shapes
    /// - `logits`: `[n, k]`, `labels`: `[n]` (values in `0..k`) -> `[1]`
    pub fn loss<B: Backend>(
        &self,
        logits: Tensor<B, 2>,
        labels: Tensor<B, 1, Int>,
    ) -> Tensor<B, 1> {
        cross_entropy(logits, labels, self.label_smoothing)
    }
}

/// Batch-mean cross-entropy of `logits` against integer `labels`, with label smoothing ε
/// as PyTorch's `F.cross_entropy(label_smoothing=ε)` (see the module doc).
///
/// # Shapes
/// - `logits`: `[n, k]`, `labels`: `[n]` (values in `0..k`) -> `[1]`
///
/// # Panics
/// If `labels` does not have one entry per row of `logits`.
pub fn cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    label_smoothing: f32,
) -> Tensor<B, 1> {
    let [n, _k] = logits.dims();
    let [n_labels] = labels.dims();
    assert_eq!(
        n, n_labels,
        "cross_entropy: {n} rows of logits but {n_labels} labels"
    );
    let log_p = log_softmax(logits, 1);
    let nll = log_p.clone().gather(1, labels.reshape([n, 1])).neg(); // [n, 1]
    let per_sample = if label_smoothing == 0.0 {
        nll
    } else {
        // −(1/K)·Σ_j log p_ij: the cross-entropy to the uniform part of the target.
        let to_uniform = log_p.mean_dim(1).neg(); // [n, 1]
        nll.mul_scalar(1.0 - label_smoothing) + to_uniform.mul_scalar(label_smoothing)
    };
    per_sample.mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{TensorData, Tolerance};

    type TB = Flex;

    fn scalar(t: Tensor<TB, 1>) -> f32 {
        assert_eq!(t.dims(), [1], "a loss must have shape [1]");
        t.into_scalar()
    }

    fn close(actual: f32, expected: f64) {
        let tol = 1e-5 * expected.abs().max(1.0);
        assert!(
            (f64::from(actual) - expected).abs() < tol,
            "got {actual}, expected {expected}"
        );
    }

    /// The batch of `refs_ce()` in `tests/fixtures/make_loss_refs.py`.
    fn batch(device: &Device<TB>) -> (Tensor<TB, 2>, Tensor<TB, 1, Int>) {
        let z = Tensor::from_floats(
            [
                [2.0, 1.0, 0.1],
                [0.5, 2.5, -1.0],
                [-0.3, 0.2, 0.8],
                [1.5, -0.5, 0.0],
            ],
            device,
        );
        let y = Tensor::from_ints([0, 1, 2, 1], device);
        (z, y)
    }

    #[test]
    fn default_config_is_plain_cross_entropy() {
        let cfg = CrossEntropyConfig::new();
        assert_eq!(cfg.label_smoothing, 0.0);
        assert!(cfg.validate().is_ok());
        assert!(CrossEntropyConfig::new()
            .with_label_smoothing(1.5)
            .validate()
            .is_err());
    }

    #[test]
    fn matches_numpy_reference() {
        // make_loss_refs.py refs_ce(): cross_entropy(z, y, eps) for eps in 0.0, 0.1, 1.0.
        let device = Default::default();
        for (eps, expected) in [(0.0, 0.877182594), (0.1, 0.940515927), (1.0, 1.510515927)] {
            let (z, y) = batch(&device);
            close(scalar(cross_entropy(z, y, eps)), expected);
        }
    }

    #[test]
    fn hand_computed_two_class_value() {
        // logits [0, ln 3] -> p = [1/4, 3/4]; label 1: CE = −ln(3/4) = 0.287682072.
        // With ε = 0.5 and K = 2 the target is 0.5·[0, 1] + 0.25 = [1/4, 3/4] = p, so the
        // loss is the entropy of p: −(1/4)ln(1/4) − (3/4)ln(3/4) = 0.562335145.
        let device = Default::default();
        let z = Tensor::<TB, 2>::from_floats([[0.0, 3f32.ln()]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([1], &device);
        close(
            scalar(cross_entropy(z.clone(), y.clone(), 0.0)),
            -(0.75f64).ln(),
        );
        let entropy = -(0.25f64 * 0.25f64.ln() + 0.75 * 0.75f64.ln());
        close(scalar(cross_entropy(z, y, 0.5)), entropy);
    }

    #[test]
    fn large_logits_stay_finite() {
        // make_loss_refs.py refs_ce(): "ce large" and "ce large eps=0.2".
        let device = Default::default();
        let z =
            Tensor::<TB, 2>::from_floats([[1000.0, 0.0, -1000.0], [0.0, 1000.0, 999.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([0, 2], &device);
        let plain = scalar(cross_entropy(z.clone(), y.clone(), 0.0));
        let smooth = scalar(cross_entropy(z, y, 0.2));
        assert!(plain.is_finite() && smooth.is_finite());
        close(plain, 0.656630844);
        close(smooth, 133.923297510);
    }

    #[test]
    fn config_loss_uses_its_smoothing() {
        let device = Default::default();
        let (z, y) = batch(&device);
        let cfg = CrossEntropyConfig::new().with_label_smoothing(0.1);
        close(scalar(cfg.loss(z, y)), 0.940515927);
    }

    #[test]
    fn gradient_is_softmax_minus_smoothed_target_over_n() {
        // make_loss_refs.py refs_ce(): "ce grad eps=0.1" = (softmax(z) − t) / n.
        type AD = Autodiff<Flex>;
        let device = Default::default();
        let z = Tensor::<AD, 2>::from_floats(
            [
                [2.0, 1.0, 0.1],
                [0.5, 2.5, -1.0],
                [-0.3, 0.2, 0.8],
                [1.5, -0.5, 0.0],
            ],
            &device,
        )
        .require_grad();
        let y = Tensor::<AD, 1, Int>::from_ints([0, 1, 2, 1], &device);
        let grads = cross_entropy(z.clone(), y, 0.1).backward();
        // f64 literals keep numpy's digits; assert_approx_eq::<f32> compares as f32.
        let expected = TensorData::from([
            [-0.068583049f64, 0.052274909, 0.016308139],
            [0.0206953, -0.018839131, -0.00185617],
            [0.035891854, 0.064581674, -0.100473528],
            [0.175697848, -0.208427421, 0.032729574],
        ]);
        z.grad(&grads)
            .expect("logits require grad")
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-4, 1e-6));
    }
}
