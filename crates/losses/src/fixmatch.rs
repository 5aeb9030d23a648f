//! FixMatch: consistency between weak and strong augmentations with confident pseudo-labels.
//!
//! Sohn et al., *FixMatch: Simplifying Semi-Supervised Learning with Consistency and
//! Confidence*, NeurIPS 2020. Reference: microsoft/Semi-supervised-learning (USB)
//! `semilearn/algorithms/fixmatch/fixmatch.py` with its hooks
//! `semilearn/algorithms/hooks/masking.py` (`FixedThresholdingHook`),
//! `semilearn/algorithms/hooks/pseudo_label.py` (`PseudoLabelingHook`) and
//! `semilearn/algorithms/utils/loss.py` (`ce_loss`, `consistency_loss`); the same step as
//! kekmodel/FixMatch-pytorch `train.py`. Defaults: USB `get_argument()` and
//! `config/classic_cv/fixmatch/*.yaml` (`p_cutoff: 0.95`, `hard_label: True`,
//! `ulb_loss_ratio: 1.0`).
//!
//! # The official step (`FixMatch.train_step`)
//! - `sup_loss = ce_loss(logits_x_lb, y_lb, reduction='mean')`;
//! - `probs_x_ulb_w = softmax(logits_x_ulb_w.detach())` (temperature 1);
//! - `mask = max(probs_x_ulb_w) >= p_cutoff` as 0/1 floats ([`confidence_mask`]);
//! - `pseudo_label = argmax(probs_x_ulb_w)` (`hard_label=True`);
//! - `unsup_loss = (ce(logits_x_ulb_s, pseudo_label) * mask).mean()`: the mean runs over
//!   **all** unlabelled samples, masked ones counting as 0 (not over the confident ones);
//! - `total_loss = sup_loss + lambda_u * unsup_loss`, `lambda_u = ulb_loss_ratio = 1`.
//!
//! USB's `--T 0.5` is unused by this step: with `hard_label=True` the target is the argmax,
//! and with `hard_label=False` the hook is called with `softmax=False`, which returns the
//! probabilities unchanged ([`FixMatchConfig::hard_label`]). No gradient flows through the
//! weak view.

use burn::prelude::*;
use burn::tensor::activation::softmax;

use crate::ce::cross_entropy;
use crate::common::{
    check_non_negative_f64, check_unit_interval, cross_entropy_per_sample,
    soft_cross_entropy_per_sample,
};
use crate::LossConfigError;

/// FixMatch settings (USB `fixmatch.py` arguments and `config/classic_cv/fixmatch/*.yaml`).
#[derive(Config, Debug)]
pub struct FixMatchConfig {
    /// Confidence threshold τ on the weak view's max probability (`p_cutoff: 0.95`).
    #[config(default = 0.95)]
    pub p_cutoff: f64,
    /// Weight λ_u of the unlabelled term (`ulb_loss_ratio: 1.0`).
    #[config(default = 1.0)]
    pub lambda_u: f64,
    /// Hard pseudo-labels (argmax, `hard_label: True`); `false` uses the weak view's
    /// probabilities as soft targets, as USB's `hard_label=False` branch does.
    #[config(default = true)]
    pub hard_label: bool,
}

impl FixMatchConfig {
    /// Checks that `p_cutoff` lies in `[0, 1]` and `lambda_u` is non-negative.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_unit_interval("p_cutoff", self.p_cutoff)?;
        check_non_negative_f64("lambda_u", self.lambda_u)
    }
}

/// The terms of [`fixmatch_loss`], each of shape `[1]` (`total`, `sup`, `unsup` still in the
/// autodiff graph). Names as USB's log dict.
#[derive(Debug, Clone)]
pub struct FixMatchLossParts<B: Backend> {
    /// `sup + lambda_u·unsup`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Cross-entropy of the labelled batch (`sup_loss`).
    pub sup: Tensor<B, 1>,
    /// Masked cross-entropy of the strong view, averaged over all unlabelled samples
    /// (`unsup_loss`), unweighted.
    pub unsup: Tensor<B, 1>,
    /// Fraction of unlabelled samples above the threshold (`util_ratio`/`mask_ratio`);
    /// detached.
    pub mask_ratio: Tensor<B, 1>,
    /// The per-sample 0/1 mask ([`confidence_mask`]); detached.
    pub mask: Tensor<B, 1>,
}

/// `1.0` where `max_k probs[i, k] >= threshold`, else `0.0` (USB's `FixedThresholdingHook`:
/// `max_probs.ge(cutoff)`). Detached.
///
/// # Shapes
/// - `probs`: `[n, k]` -> `[n]`
pub fn confidence_mask<B: Backend>(probs: Tensor<B, 2>, threshold: f64) -> Tensor<B, 1> {
    let [n, _k] = probs.dims();
    probs
        .detach()
        .max_dim(1)
        .greater_equal_elem(threshold)
        .float()
        .reshape([n])
}

/// The FixMatch objective of USB's `train_step` (see the module doc).
///
/// # Shapes
/// - `logits_labelled`: `[b, k]`, `labels`: `[b]`, `logits_weak`: `[n, k]`,
///   `logits_strong`: `[n, k]` -> terms of shape `[1]`
///
/// # Panics
/// If the weak and strong logits differ in shape or the class counts disagree.
pub fn fixmatch_loss<B: Backend>(
    logits_labelled: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    logits_weak: Tensor<B, 2>,
    logits_strong: Tensor<B, 2>,
    cfg: &FixMatchConfig,
) -> FixMatchLossParts<B> {
    let [_b, k_lb] = logits_labelled.dims();
    let [n, k] = logits_weak.dims();
    assert_eq!(
        logits_weak.dims(),
        logits_strong.dims(),
        "fixmatch_loss: weak and strong logits must have the same shape"
    );
    assert_eq!(
        k_lb, k,
        "fixmatch_loss: labelled logits have {k_lb} classes, unlabelled {k}"
    );
    let sup = cross_entropy(logits_labelled, labels, 0.0);
    let probs = softmax(logits_weak.detach(), 1);
    let mask = confidence_mask(probs.clone(), cfg.p_cutoff);
    let per_sample = if cfg.hard_label {
        cross_entropy_per_sample(logits_strong, probs.argmax(1).reshape([n]))
    } else {
        soft_cross_entropy_per_sample(logits_strong, probs)
    };
    let unsup = (per_sample * mask.clone()).mean();
    let total = sup.clone() + unsup.clone().mul_scalar(cfg.lambda_u);
    FixMatchLossParts {
        total,
        sup,
        unsup,
        mask_ratio: mask.clone().mean(),
        mask,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{assert_scalar, assert_tensor, ints, tensor};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::TensorData;

    type TB = Flex;
    type AD = Autodiff<Flex>;

    #[test]
    fn config_defaults_follow_usb() {
        let cfg = FixMatchConfig::new();
        assert_eq!(
            (cfg.p_cutoff, cfg.lambda_u, cfg.hard_label),
            (0.95, 1.0, true)
        );
        assert!(cfg.validate().is_ok());
        assert!(FixMatchConfig::new().with_p_cutoff(1.2).validate().is_err());
    }

    #[test]
    fn confidence_mask_uses_greater_or_equal() {
        let device = Default::default();
        let p = Tensor::<TB, 2>::from_floats([[0.5, 0.5], [0.95, 0.05], [0.2, 0.8]], &device);
        confidence_mask(p.clone(), 0.5)
            .into_data()
            .assert_eq(&TensorData::from([1.0f32, 1.0, 1.0]), true);
        confidence_mask(p, 0.9)
            .into_data()
            .assert_eq(&TensorData::from([0.0f32, 1.0, 0.0]), true);
    }

    #[test]
    fn fixmatch_loss_matches_reference_and_gradients() {
        // make_gcd_ossl_refs.py case_fixmatch(): rows 0 and 3 of 6 are confident.
        let device = Default::default();
        let lb = tensor::<AD, 2>("fixmatch/lb", &device).require_grad();
        let weak = tensor::<AD, 2>("fixmatch/weak", &device).require_grad();
        let strong = tensor::<AD, 2>("fixmatch/strong", &device).require_grad();
        let y = ints::<AD>("fixmatch/y", &device);
        let parts = fixmatch_loss(
            lb.clone(),
            y,
            weak.clone(),
            strong.clone(),
            &FixMatchConfig::new(),
        );
        assert_scalar(parts.sup.clone(), "fixmatch/parts/sup");
        assert_scalar(parts.unsup.clone(), "fixmatch/parts/unsup");
        assert_scalar(parts.mask_ratio.clone(), "fixmatch/parts/mask_ratio");
        assert_tensor(parts.mask.clone(), "fixmatch/parts/mask");
        assert_scalar(parts.total.clone(), "fixmatch/parts/total");
        let grads = parts.total.backward();
        assert_tensor(strong.grad(&grads).expect("grad"), "fixmatch/grad_strong");
        assert_tensor(lb.grad(&grads).expect("grad"), "fixmatch/grad_lb");
        // The pseudo-labels come from the detached weak view.
        assert!(weak.grad(&grads).is_none());
    }

    #[test]
    fn nothing_confident_gives_zero_unsup_loss() {
        let device = Default::default();
        let lb = tensor::<TB, 2>("fixmatch/lb", &device);
        let y = ints::<TB>("fixmatch/y", &device);
        let weak = Tensor::<TB, 2>::zeros([4, 4], &device); // uniform: max prob 0.25
        let strong = Tensor::<TB, 2>::ones([4, 4], &device);
        let parts = fixmatch_loss(lb, y, weak, strong, &FixMatchConfig::new());
        assert_eq!(parts.unsup.into_scalar(), 0.0);
        assert_eq!(parts.mask_ratio.into_scalar(), 0.0);
        assert_scalar(parts.total, "fixmatch/parts/sup");
    }

    #[test]
    fn single_confident_sample_by_hand() {
        // Weak logits [10, 0] (p ≈ 0.99995): label 0; strong logits [0, ln 3]: CE = ln 4.
        let device = Default::default();
        let lb = Tensor::<TB, 2>::from_floats([[0.0, 0.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([1], &device);
        let weak = Tensor::<TB, 2>::from_floats([[10.0, 0.0]], &device);
        let strong = Tensor::<TB, 2>::from_floats([[0.0, 3f32.ln()]], &device);
        let parts = fixmatch_loss(lb, y, weak, strong, &FixMatchConfig::new());
        assert!((parts.unsup.into_scalar() - 4f32.ln()).abs() < 1e-6);
        assert!((parts.total.into_scalar() - (2f32.ln() + 4f32.ln())).abs() < 1e-6);
    }

    #[test]
    fn soft_labels_use_the_weak_probabilities() {
        let device = Default::default();
        let lb = Tensor::<TB, 2>::from_floats([[0.0, 0.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([1], &device);
        let weak = Tensor::<TB, 2>::from_floats([[3.0, 0.0]], &device); // p0 = 0.9526
        let strong = Tensor::<TB, 2>::from_floats([[0.0, 0.0]], &device);
        let cfg = FixMatchConfig::new().with_hard_label(false);
        // Uniform strong prediction: CE to any distribution is ln 2.
        let parts = fixmatch_loss(lb, y, weak, strong, &cfg);
        assert!((parts.unsup.into_scalar() - 2f32.ln()).abs() < 1e-6);
    }
}
