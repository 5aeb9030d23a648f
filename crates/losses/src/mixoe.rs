//! Mixture Outlier Exposure (MixOE).
//!
//! Zhang, Inkawhich, Linderman, Chen, Li, *Mixture Outlier Exposure: Towards
//! Out-of-Distribution Detection in Fine-grained Environments*, WACV 2023. Reference:
//! zjysteven/MixOE `train/train_mixoe.py` (hyper-parameters in `scripts/train.sh`).
//!
//! # The official step
//! For an ID batch `(x, y)` and an outlier batch `x_oe` of the same size:
//! 1. `id_loss = F.cross_entropy(net(x), y)`;
//! 2. one scalar `lam = np.random.beta(alpha, alpha)` per step (`λ ~ Beta(α, α)`);
//! 3. mixing, by `--mix-op`:
//!    - `mixup`: `mixed_x = lam * x + (1 - lam) * x_oe`;
//!    - `cutmix`: a box is cut with `rand_bbox(x.size(), lam)` (side ratio `sqrt(1 − lam)`,
//!      centre uniform, clipped to the image), the **outlier** patch is pasted into the ID
//!      image (`mixed_x[:, :, bbx1:bbx2, bby1:bby2] = oe_x[:, :, bbx1:bbx2, bby1:bby2]`:
//!      "pasting outlier patch into ID data performs better"), and λ is recomputed from the
//!      pasted area: `lam = 1 - box_area / (W * H)`;
//! 4. soft targets `lam * one_hot(y) + (1 - lam) / K` ([`mix_targets`]) and
//!    `mixed_loss = SoftCE(net(mixed_x), soft_labels)` ([`soft_cross_entropy`]);
//! 5. `loss = id_loss + beta * mixed_loss` ([`mixoe_loss`]).
//!
//! Unlike OE, MixOE's reference forwards the ID batch and the mixed batch in two separate
//! passes (`net(x)` then `net(mixed_x)`), so [`mixoe_loss`] takes their logits separately.
//! λ is sampled (and, for CutMix, recomputed from the box) by the trainer with its own RNG
//! and passed in; this crate draws no random numbers.
//!
//! Official settings (`scripts/train.sh`, fine-tuning a pre-trained ResNet-50 for 10
//! epochs): mixup `--alpha 1.0 --beta 5.0`; cutmix `--alpha 2.0 --beta 5.0`. (The argparse
//! defaults in `train_mixoe.py`, `alpha = 1.0`, `beta = 1.0`, are not what the scripts run.)
//!
//! # How OpenOOD's port differs
//! OpenOOD (Jingkang50/OpenOOD `openood/trainers/mixoe_trainer.py` with
//! `configs/pipelines/train/train_mixoe.yml`, used unchanged by
//! `scripts/ood/mixoe/{cifar10,cifar100,imagenet200}_train_mixoe.sh`) keeps the loss formula
//! but changes the sampling of λ and the weights:
//! - λ is drawn as `np.random.beta(self.alpha, self.beta)`, i.e. **Beta(α, β)**, reusing the
//!   name `beta` (the official loss weight) as the second shape parameter of the Beta law;
//! - the loss weight becomes a separate `lambda_oe`: `loss = id_loss + lambda_oe * mixed_loss`;
//! - its config sets `mix_op: cutmix`, `alpha: 0.1`, `beta: 1.0`, `lambda_oe: 1.0`. So λ ~
//!   Beta(0.1, 1) (mean ≈ 0.09, most draws near 0: CutMix boxes cover nearly the whole
//!   image and the soft targets are nearly uniform), with weight 1, where the official code
//!   uses λ ~ Beta(2, 2) (mean 0.5, symmetric) with weight 5 for CutMix.
//!
//! Minor, loss-irrelevant differences: OpenOOD skips the last ID batch of each epoch and
//! restarts the outlier loader when it runs out or returns a short batch; the official loop
//! skips ID batches (`continue`) once the outlier iterator is exhausted. [`MixOeConfig`]
//! follows the official code: `alpha` is the Beta(α, α) parameter and `beta` the weight.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use crate::ce::cross_entropy;
use crate::ops::one_hot;
use crate::{check_non_negative, LossConfigError};

/// How ID and outlier images are mixed (`--mix-op` in `train_mixoe.py`). Serialised in
/// lowercase: `"mixup"`, `"cutmix"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixOp {
    /// Pixel-wise interpolation `λ·x + (1 − λ)·x_oe` (Zhang et al., ICLR 2018).
    Mixup,
    /// An outlier box pasted into the ID image, λ = 1 − box area / image area (Yun et al.,
    /// ICCV 2019).
    Cutmix,
}

impl MixOp {
    /// The official Beta(α, α) parameter for this mixing (`scripts/train.sh`): 1.0 for
    /// mixup, 2.0 for cutmix.
    pub fn default_alpha(self) -> f32 {
        match self {
            MixOp::Mixup => 1.0,
            MixOp::Cutmix => 2.0,
        }
    }
}

/// MixOE settings (Zhang et al., WACV 2023; zjysteven/MixOE `train/train_mixoe.py`,
/// `scripts/train.sh`).
#[derive(Config, Debug)]
pub struct MixOeConfig {
    /// The mixing operation; the official scripts run both.
    pub mix: MixOp,
    /// α of λ ~ Beta(α, α). `None` means the official value for [`Self::mix`]
    /// ([`MixOp::default_alpha`]: 1.0 mixup, 2.0 cutmix); read it through [`Self::alpha`].
    pub alpha: Option<f32>,
    /// Weight β of the mixed term: `total = CE(ID) + β·soft_CE(mixed)` (`--beta 5.0` in
    /// `scripts/train.sh` for both mixup and cutmix).
    #[config(default = 5.0)]
    pub beta: f32,
}

impl MixOeConfig {
    /// The Beta(α, α) parameter in effect: the explicit `alpha` or the official default for
    /// the mixing operation.
    pub fn alpha(&self) -> f32 {
        self.alpha.unwrap_or_else(|| self.mix.default_alpha())
    }

    /// Checks that α is finite and positive and β finite and non-negative.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        let alpha = self.alpha();
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(LossConfigError::Invalid {
                field: "alpha",
                value: alpha,
                expected: "a finite number > 0",
            });
        }
        check_non_negative("beta", self.beta)
    }
}

/// The terms of [`mixoe_loss`], each of shape `[1]` and still in the autodiff graph.
#[derive(Debug, Clone)]
pub struct MixOeLoss<B: Backend> {
    /// `ce + beta·mixed`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Cross-entropy of the ID logits against their labels (`id_loss`).
    pub ce: Tensor<B, 1>,
    /// Soft cross-entropy of the mixed logits against [`mix_targets`] (`mixed_loss`),
    /// unweighted.
    pub mixed: Tensor<B, 1>,
}

/// MixOE soft targets `λ·onehot(y) + (1 − λ)·(1/K)`: each row sums to 1
/// (`soft_labels = lam * one_hot_y + (1 - lam) * oe_y` with `oe_y = 1/num_classes`).
///
/// # Shapes
/// - `labels`: `[n]` (values in `0..num_classes`) -> `[n, num_classes]`
pub fn mix_targets<B: Backend>(
    labels: Tensor<B, 1, Int>,
    num_classes: usize,
    lambda: f32,
) -> Tensor<B, 2> {
    one_hot(labels, num_classes)
        .mul_scalar(lambda)
        .add_scalar((1.0 - lambda) / num_classes as f32)
}

/// Batch mean of `−Σ_j t_ij·log softmax(z_i)_j` (MixOE's `SoftCE` with
/// `reduction="mean"`). Equals [`cross_entropy`] when the targets are one-hot.
///
/// # Shapes
/// - `logits`: `[n, k]`, `soft_targets`: `[n, k]` -> `[1]`
///
/// # Panics
/// If the two shapes differ (the reference asserts the same).
pub fn soft_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    soft_targets: Tensor<B, 2>,
) -> Tensor<B, 1> {
    assert_eq!(
        logits.dims(),
        soft_targets.dims(),
        "soft_cross_entropy: logits and soft targets must have the same shape"
    );
    (log_softmax(logits, 1) * soft_targets)
        .sum_dim(1)
        .neg()
        .mean()
}

/// The MixOE objective: `CE(logits_id, labels_id) + β·soft_CE(logits_mixed,
/// mix_targets(labels_id_of_mixed, K, λ))`, with `K = logits_mixed.dims()[1]`.
///
/// `logits_id` are the logits of the clean ID batch and `logits_mixed` those of a separate
/// forward pass over the mixed images; `labels_id_of_mixed` are the labels of the ID images
/// that went into the mix (in the reference the same `y` as `labels_id`). `lambda` is the
/// ID share of the mix: the Beta(α, α) draw for mixup, the recomputed `1 − box area / image
/// area` for CutMix.
///
/// # Shapes
/// - `logits_id`: `[n, k]`, `labels_id`: `[n]`, `logits_mixed`: `[m, k]`,
///   `labels_id_of_mixed`: `[m]` -> terms of shape `[1]`
///
/// # Panics
/// If a label tensor does not match its logits, or the two logits disagree on `k`.
pub fn mixoe_loss<B: Backend>(
    logits_id: Tensor<B, 2>,
    labels_id: Tensor<B, 1, Int>,
    logits_mixed: Tensor<B, 2>,
    labels_id_of_mixed: Tensor<B, 1, Int>,
    lambda: f32,
    beta: f32,
) -> MixOeLoss<B> {
    let [_, k_id] = logits_id.dims();
    let [m, k] = logits_mixed.dims();
    assert_eq!(
        k_id, k,
        "mixoe_loss: ID logits have {k_id} classes, mixed logits {k}"
    );
    let [m_labels] = labels_id_of_mixed.dims();
    assert_eq!(
        m, m_labels,
        "mixoe_loss: {m} mixed rows but {m_labels} labels_id_of_mixed"
    );
    let ce = cross_entropy(logits_id, labels_id, 0.0);
    let mixed = soft_cross_entropy(logits_mixed, mix_targets(labels_id_of_mixed, k, lambda));
    let total = ce.clone() + mixed.clone().mul_scalar(beta);
    MixOeLoss { total, ce, mixed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
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

    fn t2<const N: usize>(rows: [[f32; 4]; N]) -> Tensor<TB, 2> {
        Tensor::from_floats(rows, &Default::default())
    }

    fn ints<const N: usize>(v: [i32; N]) -> Tensor<TB, 1, Int> {
        Tensor::from_ints(v, &Default::default())
    }

    #[test]
    fn config_defaults_follow_the_official_scripts() {
        let mixup = MixOeConfig::new(MixOp::Mixup);
        assert_eq!((mixup.alpha(), mixup.beta), (1.0, 5.0));
        let cutmix = MixOeConfig::new(MixOp::Cutmix);
        assert_eq!((cutmix.alpha(), cutmix.beta), (2.0, 5.0));
        assert_eq!(cutmix.clone().with_alpha(Some(0.5)).alpha(), 0.5);
        assert!(mixup.validate().is_ok() && cutmix.validate().is_ok());
        assert!(MixOeConfig::new(MixOp::Mixup)
            .with_alpha(Some(0.0))
            .validate()
            .is_err());
    }

    #[test]
    fn mix_op_serialises_in_lowercase() {
        // The Config derive's Display is burn's JSON form (serde_json inside burn).
        let cfg = MixOeConfig::new(MixOp::Cutmix);
        let json = cfg.to_string();
        assert!(json.contains("\"cutmix\""), "{json}");
        let back = MixOeConfig::load_binary(json.as_bytes()).expect("round trip");
        assert_eq!(back.mix, MixOp::Cutmix);
        assert_eq!(back.alpha(), 2.0);
        // Trap of burn 0.21's `#[derive(Config)]`: deserialising does NOT fill
        // `#[config(default = ...)]` fields (only `Option` fields may be omitted), so a
        // partial config file must be merged onto `new(..)` by the caller.
        assert!(MixOeConfig::load_binary(br#"{"mix": "mixup"}"#).is_err());
        let no_alpha = MixOeConfig::load_binary(br#"{"mix": "mixup", "beta": 5.0}"#)
            .expect("an omitted Option field is None");
        assert_eq!((no_alpha.mix, no_alpha.alpha()), (MixOp::Mixup, 1.0));
    }

    #[test]
    fn mix_targets_by_hand_and_rows_sum_to_one() {
        // λ = 0.7, K = 4: 0.7 + 0.3/4 = 0.775 at the label, 0.075 elsewhere
        // (make_loss_refs.py refs_mixoe(): "mix_targets").
        let t = mix_targets(ints([0, 2, 1]), 4, 0.7);
        let expected = TensorData::from([
            [0.775f32, 0.075, 0.075, 0.075],
            [0.075, 0.075, 0.775, 0.075],
            [0.075, 0.775, 0.075, 0.075],
        ]);
        let tol = Tolerance::rel_abs(1e-6, 1e-7);
        t.clone()
            .into_data()
            .assert_approx_eq::<f32>(&expected, tol);
        t.sum_dim(1)
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[1.0f32], [1.0], [1.0]]), tol);
        // λ = 1 is the one-hot, λ = 0 the uniform distribution.
        mix_targets(ints([3]), 4, 1.0)
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[0.0f32, 0.0, 0.0, 1.0]]), tol);
        mix_targets(ints([3]), 4, 0.0)
            .into_data()
            .assert_approx_eq::<f32>(&TensorData::from([[0.25f32, 0.25, 0.25, 0.25]]), tol);
    }

    #[test]
    fn soft_cross_entropy_matches_reference() {
        // make_loss_refs.py refs_mixoe(): soft_ce(z, mix_targets([0, 2, 1], 4, 0.7)).
        let z = t2([
            [2.0, 1.0, 0.1, -0.4],
            [0.5, 2.5, -1.0, 0.0],
            [-0.3, 0.2, 0.8, 1.1],
        ]);
        let t = mix_targets(ints([0, 2, 1]), 4, 0.7);
        close(scalar(soft_cross_entropy(z, t)), 1.947263183);
    }

    #[test]
    fn soft_cross_entropy_with_one_hot_targets_is_hard_cross_entropy() {
        let z = t2([
            [2.0, 1.0, 0.1, -0.4],
            [0.5, 2.5, -1.0, 0.0],
            [-0.3, 0.2, 0.8, 1.1],
        ]);
        let y = ints([0, 2, 1]);
        let soft = scalar(soft_cross_entropy(z.clone(), one_hot(y.clone(), 4)));
        let hard = scalar(cross_entropy(z, y, 0.0));
        close(soft, f64::from(hard));
    }

    #[test]
    fn soft_cross_entropy_is_stable_for_large_logits() {
        // Row [1000, 0, −1000, 0] against [0.5, 0.5, 0, 0]: −0.5·0 − 0.5·(−1000) = 500.
        let z = t2([[1000.0, 0.0, -1000.0, 0.0]]);
        let t = Tensor::<TB, 2>::from_floats([[0.5, 0.5, 0.0, 0.0]], &Default::default());
        let v = scalar(soft_cross_entropy(z, t));
        assert!(v.is_finite());
        close(v, 500.0);
    }

    #[test]
    fn mixoe_loss_matches_reference() {
        // make_loss_refs.py refs_mixoe(): λ = 0.35, β = 5.
        let z_id = t2([[1.0, 0.0, -1.0, 0.5], [0.2, 0.1, 2.0, -0.3]]);
        let z_mix = t2([[0.3, 0.1, -0.2, 0.0], [-1.0, 0.4, 0.9, 0.2]]);
        let y = ints([0, 2]);
        let out = mixoe_loss(z_id, y.clone(), z_mix, y, 0.35, 5.0);
        close(scalar(out.ce), 0.546893045);
        close(scalar(out.mixed), 1.315433383);
        close(scalar(out.total), 7.124059962);
    }
}
