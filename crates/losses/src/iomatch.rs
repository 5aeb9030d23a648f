//! IOMatch: open-set semi-supervised learning with joint inliers and outliers utilisation.
//!
//! Li, Qi, Tan, Wang, *IOMatch: Simplifying Open-Set Semi-Supervised Learning with Joint
//! Inliers and Outliers Utilization*, ICCV 2023. Reference: nukezil/IOMatch
//! `semilearn/algorithms/iomatch/iomatch.py` (`IOMatchNet`, `IOMatch.train_step`),
//! `semilearn/algorithms/iomatch/utils.py` (`mb_sup_loss`, from VisionLearningGroup/OP_Match
//! and equal to OpenMatch's `ova_loss_func` in `semilearn/algorithms/openmatch/utils.py`
//! for labels in range), `semilearn/algorithms/hooks/dist_align.py`
//! (`DistAlignQueueHook`), `semilearn/algorithms/hooks/masking.py`
//! (`FixedThresholdingHook`) and `semilearn/algorithms/utils/loss.py` (`ce_loss`,
//! `consistency_loss`). Defaults: `IOMatch.get_argument()` and
//! `config/openset_cv/iomatch/*.yaml` (`p_cutoff 0.95`, `q_cutoff 0.5`, all loss ratios 1).
//!
//! # The network
//! `IOMatchNet` has three heads: the closed-set classifier (`logits`, `[n, K]`), a
//! multi-binary (one-vs-all) head on the projected features (`logits_mb`, `[n, 2K]`, read as
//! `view(n, 2, K)`: row 0 the "outlier" and row 1 the "inlier" logit of each class, softmax
//! over that pair) and an open-set classifier (`logits_open`, `[n, K + 1]`). Labelled, weak
//! and strong images are forwarded together (`use_cat`).
//!
//! # The official step (`IOMatch.train_step`)
//! - `sup_loss = CE(logits_x_lb, y_lb) + lambda_mb · mb_sup_loss(logits_mb_x_lb, y_lb)`
//!   ([`one_vs_all_loss`]: the OVA loss is supervised only, on the labelled batch);
//! - under `torch.no_grad()`: `p = softmax(logits_x_ulb_w)`, optionally distribution-aligned
//!   ([`DistAlignQueue`]), then `r = softmax(logits_mb_x_ulb_w.view(n, 2, K), 1)`,
//!   `q[:, :K] = p · r[:, 1]`, `q[:, K] = Σ_k p_k · r[:, 0, k]` ([`open_set_targets`]) and
//!   `in_mask = q[:, K] < 0.5`;
//! - `p_mask = max p >= p_cutoff`, `q_mask = max q >= q_cutoff` (on the *targets*, no second
//!   softmax: `softmax_x_ulb=False`);
//! - `ui_loss = mean_i( in_mask·p_mask · (−Σ_k p_ik log softmax(logits_x_ulb_s)_ik) )`:
//!   soft-target cross-entropy of the strong view's closed-set logits against `p` (not a
//!   hard label), averaged over **all** unlabelled samples;
//! - `op_loss = mean_i( q_mask · (−Σ_k q_ik log softmax(logits_open_x_ulb_s)_ik) )`, multiplied
//!   by 0 during the first epoch (`if self.epoch == 0: op_loss *= 0.0`);
//! - `total = sup_loss + lambda_u·ui_loss + lambda_op·op_loss` (`use_rot` is `False` in
//!   every config, so the rotation loss is 0 and not implemented here).
//!
//! The issue text that asked for this module describes `L_ui` exactly as the code does
//! (`max p̃ >= 0.95` and `q̃_{K+1} < 0.5`, soft targets `p̃`); nothing differs there.
//!
//! # Distribution alignment
//! `--dist_align` defaults to `True` in `IOMatch.get_argument()`. The CIFAR-10 configs set
//! `dist_align: False`; the CIFAR-100 and ImageNet-30 configs do not mention it, so they
//! run **with** alignment (a 128-batch queue of mean predictions, uniform target). The
//! config here keeps it off by default ([`IoMatchConfig::dist_align`]); a recipe that
//! reproduces the CIFAR-100 / ImageNet-30 runs turns it on and passes a
//! [`DistAlignQueue`] to [`iomatch_loss`].

use burn::prelude::*;
use burn::tensor::activation::{sigmoid, softmax};

use crate::ce::cross_entropy;
use crate::common::{check_non_negative_f64, check_unit_interval, soft_cross_entropy_per_sample};
use crate::fixmatch::confidence_mask;
use crate::ops::one_hot;
use crate::LossConfigError;

/// IOMatch settings (nukezil/IOMatch `IOMatch.get_argument()` and
/// `config/openset_cv/iomatch/*.yaml`).
#[derive(Config, Debug)]
pub struct IoMatchConfig {
    /// Confidence threshold on the closed-set targets `max p̃` (`p_cutoff: 0.95`).
    #[config(default = 0.95)]
    pub p_cutoff: f64,
    /// Confidence threshold on the open-set targets `max q̃` (`q_cutoff: 0.5`).
    #[config(default = 0.5)]
    pub q_cutoff: f64,
    /// Weight of the closed-set unlabelled loss `L_ui` (`ulb_loss_ratio: 1.0`).
    #[config(default = 1.0)]
    pub lambda_u: f64,
    /// Weight of the open-set loss `L_op` (`op_loss_ratio: 1.0`).
    #[config(default = 1.0)]
    pub lambda_op: f64,
    /// Weight of the one-vs-all loss `L_mb` (`mb_loss_ratio: 1.0`).
    #[config(default = 1.0)]
    pub lambda_mb: f64,
    /// Distribution alignment of the closed-set targets (`--dist_align`). Off here; the
    /// official CIFAR-10 configs turn it off, the CIFAR-100 and ImageNet-30 configs leave the
    /// argparse default `True` (see the module doc). Read by the recipe, which then passes
    /// a [`DistAlignQueue`] to [`iomatch_loss`].
    #[config(default = false)]
    pub dist_align: bool,
    /// Queue length of the alignment (`--da_len 128`).
    #[config(default = 128)]
    pub da_len: usize,
}

impl IoMatchConfig {
    /// Checks that the cut-offs lie in `[0, 1]`, the weights are non-negative and
    /// `da_len > 0`.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_unit_interval("p_cutoff", self.p_cutoff)?;
        check_unit_interval("q_cutoff", self.q_cutoff)?;
        check_non_negative_f64("lambda_u", self.lambda_u)?;
        check_non_negative_f64("lambda_op", self.lambda_op)?;
        check_non_negative_f64("lambda_mb", self.lambda_mb)?;
        if self.da_len == 0 {
            return Err(LossConfigError::Invalid {
                field: "da_len",
                value: 0.0,
                expected: "a queue length >= 1",
            });
        }
        Ok(())
    }
}

/// The head outputs [`iomatch_loss`] needs, from one forward pass over
/// `cat(x_lb, x_ulb_w, x_ulb_s)`.
#[derive(Debug, Clone)]
pub struct IoMatchLogits<B: Backend> {
    /// Closed-set logits of the labelled batch, `[b, K]`.
    pub labelled: Tensor<B, 2>,
    /// One-vs-all logits of the labelled batch, `[b, 2K]`.
    pub labelled_ova: Tensor<B, 2>,
    /// Closed-set logits of the weakly augmented unlabelled batch, `[n, K]` (targets only).
    pub weak: Tensor<B, 2>,
    /// One-vs-all logits of the weak unlabelled batch, `[n, 2K]` (targets only).
    pub weak_ova: Tensor<B, 2>,
    /// Closed-set logits of the strongly augmented unlabelled batch, `[n, K]`.
    pub strong: Tensor<B, 2>,
    /// Open-set (`K + 1`-way) logits of the strong unlabelled batch, `[n, K + 1]`.
    pub strong_open: Tensor<B, 2>,
}

/// The terms of [`iomatch_loss`]: losses of shape `[1]` (unweighted, still in the autodiff
/// graph), detached mask ratios and targets. Names as IOMatch's log dict.
#[derive(Debug, Clone)]
pub struct IoMatchLossParts<B: Backend> {
    /// `sup + lambda_mb·mb + lambda_u·ui + lambda_op·op`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Closed-set cross-entropy of the labelled batch (`s_loss`).
    pub sup: Tensor<B, 1>,
    /// One-vs-all loss of the labelled batch ([`one_vs_all_loss`]), unweighted (the
    /// reference logs `lambda_mb·mb` as `mb_loss`).
    pub mb: Tensor<B, 1>,
    /// Closed-set unlabelled loss `L_ui`, unweighted.
    pub ui: Tensor<B, 1>,
    /// Open-set loss `L_op`, unweighted, already 0 at epoch 0 (the reference logs
    /// `lambda_op·op`).
    pub op: Tensor<B, 1>,
    /// Fraction of unlabelled samples used by `L_ui`, `mean(in_mask·p_mask)`
    /// (`selected_ratio`).
    pub mask_ratio: Tensor<B, 1>,
    /// `mean(q̃_{K+1} < 0.5)` (`in_mask_ratio`).
    pub in_mask_ratio: Tensor<B, 1>,
    /// `mean(max p̃ >= p_cutoff)` (`p_mask_ratio`).
    pub p_mask_ratio: Tensor<B, 1>,
    /// `mean(max q̃ >= q_cutoff)` (`q_mask_ratio`).
    pub q_mask_ratio: Tensor<B, 1>,
    /// Closed-set targets `p̃` (after alignment, if any), `[n, K]`.
    pub targets_p: Tensor<B, 2>,
    /// Open-set targets `q̃`, `[n, K + 1]`.
    pub targets_q: Tensor<B, 2>,
}

/// Splits one-vs-all logits `[n, 2K]` (the reference's `view(n, 2, K)`) into the outlier
/// logits (columns `0..K`) and the inlier logits (columns `K..2K`).
fn split_ova<B: Backend>(ova_logits: Tensor<B, 2>, caller: &str) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [_n, two_k] = ova_logits.dims();
    assert!(
        two_k >= 2 && two_k % 2 == 0,
        "{caller}: one-vs-all logits need 2K columns, got {two_k}"
    );
    let k = two_k / 2;
    let outlier = ova_logits.clone().narrow(1, 0, k);
    let inlier = ova_logits.narrow(1, k, k);
    (outlier, inlier)
}

/// Inlier probabilities `o_k = softmax(view(n, 2, K), dim 1)[:, 1, k]` of a one-vs-all head,
/// computed as `sigmoid(z_in − z_out)`.
///
/// # Shapes
/// - `ova_logits`: `[n, 2K]` -> `[n, K]`
pub fn ova_inlier_probs<B: Backend>(ova_logits: Tensor<B, 2>) -> Tensor<B, 2> {
    let (outlier, inlier) = split_ova(ova_logits, "ova_inlier_probs");
    sigmoid(inlier - outlier)
}

/// IOMatch's open-set targets: `q̃_k = p̃_k·o_k` for the `K` known classes and
/// `q̃_{K+1} = Σ_j p̃_j·(1 − o_j)` for "outlier"; rows sum to `Σ p̃ = 1`.
///
/// # Shapes
/// - `p`: `[n, K]` (closed-set probabilities), `o_inlier`: `[n, K]` -> `[n, K + 1]`
///
/// # Panics
/// If the shapes differ.
pub fn open_set_targets<B: Backend>(p: Tensor<B, 2>, o_inlier: Tensor<B, 2>) -> Tensor<B, 2> {
    assert_eq!(
        p.dims(),
        o_inlier.dims(),
        "open_set_targets: p and o_inlier must have the same shape"
    );
    let known = p.clone() * o_inlier.clone();
    let outlier = (p * o_inlier.neg().add_scalar(1.0)).sum_dim(1);
    Tensor::cat(vec![known, outlier], 1)
}

/// The hard-negative one-vs-all loss of OpenMatch (`ova_loss_func`) and IOMatch
/// (`mb_sup_loss`): with `p_in = softmax(view(n, 2, K), 1)[:, 1]` and `p_out = [:, 0]`,
///
/// `mean_i −log(p_in[i, y_i] + 1e-8) + mean_i max_{k≠y_i} −log(p_out[i, k] + 1e-8)`,
///
/// the `+ 1e-8` as in the reference (it caps each term at `−log 1e-8 ≈ 18.4`). With `K = 1`
/// there is no negative class and the second term is 0.
///
/// # Shapes
/// - `ova_logits`: `[n, 2K]`, `labels`: `[n]` (values in `0..K`) -> `[1]`
///
/// # Panics
/// If `labels` does not have one entry per row.
pub fn one_vs_all_loss<B: Backend>(
    ova_logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
) -> Tensor<B, 1> {
    let [n, _] = ova_logits.dims();
    let [n_labels] = labels.dims();
    assert_eq!(
        n, n_labels,
        "one_vs_all_loss: {n} rows but {n_labels} labels"
    );
    let (outlier, inlier) = split_ova(ova_logits, "one_vs_all_loss");
    let [_, k] = inlier.dims();
    let p_in = sigmoid(inlier.clone() - outlier.clone());
    let p_out = sigmoid(outlier - inlier);
    let pos = one_hot(labels, k);
    let neg = pos.clone().neg().add_scalar(1.0);
    let positive = (p_in.add_scalar(1e-8).log().neg() * pos).sum_dim(1).mean();
    let negative = (p_out.add_scalar(1e-8).log().neg() * neg).max_dim(1).mean();
    positive + negative
}

/// Distribution alignment (Berthelot et al., ReMixMatch): `p · (p_target + 1e-6) /
/// (p_model + 1e-6)`, renormalised per row (USB's `DistAlignQueueHook.dist_align`).
///
/// # Shapes
/// - `probs`: `[n, K]`, `p_model`: `[K]`, `p_target`: `[K]` -> `[n, K]`
pub fn distribution_alignment<B: Backend>(
    probs: Tensor<B, 2>,
    p_model: Tensor<B, 1>,
    p_target: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let [_n, k] = probs.dims();
    let scale = (p_target.add_scalar(1e-6) / p_model.add_scalar(1e-6)).reshape([1, k]);
    let aligned = probs * scale;
    aligned.clone() / aligned.sum_dim(1)
}

/// USB's `DistAlignQueueHook` with a uniform target (`p_target_type='uniform'`, as IOMatch
/// registers it): a ring buffer of the last `len` batch-mean predictions, initialised with
/// zeros (so the first steps average in zero rows, as the reference does). The trainer owns
/// it across steps; it is state, not a module parameter.
#[derive(Debug, Clone)]
pub struct DistAlignQueue<B: Backend> {
    queue: Tensor<B, 2>,
    ptr: usize,
}

impl<B: Backend> DistAlignQueue<B> {
    /// An empty (all-zero) queue of `len` rows over `num_classes` classes.
    pub fn new(num_classes: usize, len: usize, device: &B::Device) -> Self {
        assert!(len > 0, "DistAlignQueue: length must be >= 1");
        Self {
            queue: Tensor::zeros([len, num_classes], device),
            ptr: 0,
        }
    }

    /// Writes the batch mean of `probs` (detached) at the current slot and advances it.
    pub fn push(&mut self, probs: Tensor<B, 2>) {
        let [len, k] = self.queue.dims();
        let mean = probs.detach().mean_dim(0); // [1, K]
        let queue = self.queue.clone();
        self.queue = queue.slice_assign([self.ptr..self.ptr + 1, 0..k], mean);
        self.ptr = (self.ptr + 1) % len;
    }

    /// `p_model`: the mean of the queue rows, `[K]`.
    pub fn p_model(&self) -> Tensor<B, 1> {
        let [_len, k] = self.queue.dims();
        self.queue.clone().mean_dim(0).reshape([k])
    }

    /// The reference's `dist_align(probs)`: [`Self::push`], then
    /// [`distribution_alignment`] to the uniform target with the updated `p_model`.
    pub fn align(&mut self, probs: Tensor<B, 2>) -> Tensor<B, 2> {
        let [_n, k] = probs.dims();
        self.push(probs.clone());
        let device = probs.device();
        let uniform = Tensor::<B, 1>::ones([k], &device).div_scalar(k as f64);
        distribution_alignment(probs.detach(), self.p_model(), uniform)
    }

    /// The queue (`[len, K]`) and the next slot, for checkpointing (the reference saves
    /// `p_model` and `p_model_ptr`).
    pub fn state(&self) -> (Tensor<B, 2>, usize) {
        (self.queue.clone(), self.ptr)
    }

    /// Restores a queue saved with [`Self::state`].
    pub fn from_state(queue: Tensor<B, 2>, ptr: usize) -> Self {
        let [len, _k] = queue.dims();
        assert!(
            ptr < len,
            "DistAlignQueue: slot {ptr} out of a {len}-row queue"
        );
        Self { queue, ptr }
    }
}

/// The IOMatch objective of `IOMatch.train_step` (see the module doc); `epoch` is 0-based
/// (the open-set loss is 0 at epoch 0). `dist_align`: the alignment queue when
/// [`IoMatchConfig::dist_align`] is on, updated in place; `None` for no alignment.
///
/// Masks that select nothing give zero losses (the masked terms are means over all `n`
/// unlabelled samples), never NaN.
///
/// # Shapes
/// See [`IoMatchLogits`]; `labels`: `[b]` (values in `0..K`) -> losses `[1]`
///
/// # Panics
/// If the head shapes disagree (on `n`, `K`, `2K`, `K + 1`), or the unlabelled batch is
/// empty.
pub fn iomatch_loss<B: Backend>(
    logits: IoMatchLogits<B>,
    labels: Tensor<B, 1, Int>,
    epoch: usize,
    cfg: &IoMatchConfig,
    dist_align: Option<&mut DistAlignQueue<B>>,
) -> IoMatchLossParts<B> {
    let IoMatchLogits {
        labelled,
        labelled_ova,
        weak,
        weak_ova,
        strong,
        strong_open,
    } = logits;
    let [n, k] = weak.dims();
    assert!(n > 0, "iomatch_loss: empty unlabelled batch");
    assert_eq!(
        strong.dims(),
        [n, k],
        "iomatch_loss: strong logits must be [n, K]"
    );
    assert_eq!(
        weak_ova.dims(),
        [n, 2 * k],
        "iomatch_loss: weak_ova must be [n, 2K]"
    );
    assert_eq!(
        strong_open.dims(),
        [n, k + 1],
        "iomatch_loss: strong_open must be [n, K + 1]"
    );
    assert_eq!(
        labelled.dims()[1],
        k,
        "iomatch_loss: labelled logits must have K columns"
    );
    assert_eq!(
        labelled_ova.dims()[1],
        2 * k,
        "iomatch_loss: labelled_ova must have 2K columns"
    );

    let sup = cross_entropy(labelled, labels.clone(), 0.0);
    let mb = one_vs_all_loss(labelled_ova, labels);

    // Targets (torch.no_grad() in the reference).
    let p = softmax(weak.detach(), 1);
    let targets_p = match dist_align {
        Some(queue) => queue.align(p),
        None => p,
    };
    let o_inlier = ova_inlier_probs(weak_ova.detach());
    let targets_q = open_set_targets(targets_p.clone(), o_inlier);
    let in_mask = targets_q
        .clone()
        .narrow(1, k, 1)
        .lower_elem(0.5)
        .float()
        .reshape([n]);
    let p_mask = confidence_mask(targets_p.clone(), cfg.p_cutoff);
    let q_mask = confidence_mask(targets_q.clone(), cfg.q_cutoff);
    let selected = in_mask.clone() * p_mask.clone();

    let ui = (soft_cross_entropy_per_sample(strong, targets_p.clone()) * selected.clone()).mean();
    let mut op =
        (soft_cross_entropy_per_sample(strong_open, targets_q.clone()) * q_mask.clone()).mean();
    if epoch == 0 {
        op = op.mul_scalar(0.0);
    }
    let total = sup.clone()
        + mb.clone().mul_scalar(cfg.lambda_mb)
        + ui.clone().mul_scalar(cfg.lambda_u)
        + op.clone().mul_scalar(cfg.lambda_op);
    IoMatchLossParts {
        total,
        sup,
        mb,
        ui,
        op,
        mask_ratio: selected.mean(),
        in_mask_ratio: in_mask.mean(),
        p_mask_ratio: p_mask.mean(),
        q_mask_ratio: q_mask.mean(),
        targets_p,
        targets_q,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{assert_scalar, assert_tensor, get, ints, num, tensor};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{TensorData, Tolerance};

    type TB = Flex;
    type AD = Autodiff<Flex>;

    fn logits<B: Backend>(device: &B::Device, weak: &str) -> IoMatchLogits<B> {
        IoMatchLogits {
            labelled: tensor("iomatch/lb", device),
            labelled_ova: tensor("iomatch/lb_mb", device),
            weak: tensor(weak, device),
            weak_ova: tensor("iomatch/weak_mb", device),
            strong: tensor("iomatch/strong", device),
            strong_open: tensor("iomatch/strong_open", device),
        }
    }

    #[test]
    fn config_defaults_follow_the_official_configs() {
        let cfg = IoMatchConfig::new();
        assert_eq!((cfg.p_cutoff, cfg.q_cutoff), (0.95, 0.5));
        assert_eq!(
            (cfg.lambda_u, cfg.lambda_op, cfg.lambda_mb),
            (1.0, 1.0, 1.0)
        );
        assert_eq!((cfg.dist_align, cfg.da_len), (false, 128));
        assert!(cfg.validate().is_ok());
        assert!(IoMatchConfig::new().with_da_len(0).validate().is_err());
        assert!(IoMatchConfig::new().with_q_cutoff(-0.1).validate().is_err());
    }

    #[test]
    fn ova_probs_and_open_set_targets_match_reference() {
        let device = Default::default();
        let o = ova_inlier_probs(tensor::<TB, 2>("iomatch/weak_mb", &device));
        assert_tensor(o.clone(), "iomatch/ova_inlier");
        let p = softmax(tensor::<TB, 2>("iomatch/weak", &device), 1);
        let q = open_set_targets(p, o);
        q.clone().sum_dim(1).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[1.0f32]; 6]),
            Tolerance::rel_abs(1e-5, 1e-6),
        );
        assert_tensor(q, "iomatch/open_set_targets");
    }

    #[test]
    fn open_set_targets_by_hand() {
        // p = [0.75, 0.25], o = [0.8, 0.4]: q = [0.6, 0.1, 0.75·0.2 + 0.25·0.6 = 0.3].
        let device = Default::default();
        let p = Tensor::<TB, 2>::from_floats([[0.75, 0.25]], &device);
        let o = Tensor::<TB, 2>::from_floats([[0.8, 0.4]], &device);
        open_set_targets(p, o).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.6f32, 0.1, 0.3]]),
            Tolerance::rel_abs(1e-6, 1e-7),
        );
    }

    #[test]
    fn one_vs_all_loss_matches_reference() {
        let device = Default::default();
        assert_scalar(
            one_vs_all_loss(
                tensor::<TB, 2>("iomatch/lb_mb", &device),
                ints::<TB>("iomatch/y", &device),
            ),
            "iomatch/mb_loss",
        );
        let labels = Tensor::<TB, 1, Int>::from_ints([1, 3, 0, 0, 2, 2], &device);
        assert_scalar(
            one_vs_all_loss(tensor::<TB, 2>("iomatch/weak_mb", &device), labels),
            "iomatch/mb_loss_weak_mb_labels",
        );
        // K = 1: only the positive term.
        let k1 = tensor::<TB, 2>("iomatch/ova_k1_logits", &device);
        assert_scalar(
            one_vs_all_loss(k1, Tensor::from_ints([0, 0, 0], &device)),
            "iomatch/mb_loss_k1",
        );
    }

    #[test]
    fn one_vs_all_loss_by_hand() {
        // K = 2, label 0, logits view [[out0, out1], [in0, in1]] = [[0, ln 3], [ln 3, 0]]:
        // p_in[0] = 3/4 -> −ln(3/4); p_out[1] = 3/4 -> the hardest negative −ln(3/4).
        let device = Default::default();
        let ln3 = 3f32.ln();
        let z = Tensor::<TB, 2>::from_floats([[0.0, ln3, ln3, 0.0]], &device);
        let v = one_vs_all_loss(z, Tensor::from_ints([0], &device)).into_scalar();
        assert!((v - 2.0 * -(0.75f32).ln()).abs() < 1e-6, "{v}");
        // Saturated logits stay finite: p_in[0] = sigmoid(−2000) = 0 is capped by the 1e-8
        // at −ln 1e-8; the negative class 1 has p_out = 1/2.
        let z = Tensor::<TB, 2>::from_floats([[1000.0, 0.0, -1000.0, 0.0]], &device);
        let v = one_vs_all_loss(z, Tensor::from_ints([0], &device)).into_scalar();
        let expected = -(1e-8f32.ln()) + 2f32.ln();
        assert!(
            v.is_finite() && (v - expected).abs() < 1e-3,
            "{v} vs {expected}"
        );
    }

    fn check_epoch(epoch: usize) {
        let key = format!("iomatch/epoch{epoch}");
        let device = Default::default();
        let l = logits::<AD>(&device, "iomatch/weak");
        let l = IoMatchLogits {
            labelled: l.labelled.require_grad(),
            labelled_ova: l.labelled_ova.require_grad(),
            weak: l.weak.require_grad(),
            weak_ova: l.weak_ova.require_grad(),
            strong: l.strong.require_grad(),
            strong_open: l.strong_open.require_grad(),
        };
        let leaves = l.clone();
        let parts = iomatch_loss(
            l,
            ints("iomatch/y", &device),
            epoch,
            &IoMatchConfig::new(),
            None,
        );
        for (name, t) in [
            ("sup", &parts.sup),
            ("mb", &parts.mb),
            ("ui", &parts.ui),
            ("op", &parts.op),
            ("mask_ratio", &parts.mask_ratio),
            ("total", &parts.total),
        ] {
            assert_scalar(t.clone(), &format!("{key}/{name}"));
        }
        assert_tensor(parts.targets_p.clone(), &format!("{key}/targets_p"));
        assert_tensor(parts.targets_q.clone(), &format!("{key}/targets_q"));
        let mean = |name: &str| {
            let v = get(&format!("{key}/{name}")).as_array().expect("array");
            v.iter().map(|x| x.as_f64().expect("num")).sum::<f64>() / v.len() as f64
        };
        for (ratio, mask) in [
            (&parts.in_mask_ratio, "in_mask"),
            (&parts.p_mask_ratio, "p_mask"),
            (&parts.q_mask_ratio, "q_mask"),
        ] {
            let got = f64::from(ratio.clone().into_scalar());
            assert!((got - mean(mask)).abs() < 1e-6, "{mask}: {got}");
        }
        let grads = parts.total.backward();
        for (name, t) in [
            ("lb", &leaves.labelled),
            ("lb_mb", &leaves.labelled_ova),
            ("strong", &leaves.strong),
            ("strong_open", &leaves.strong_open),
        ] {
            assert_tensor(t.grad(&grads).expect("grad"), &format!("{key}/grad_{name}"));
        }
        // Targets are built without gradient (torch.no_grad()).
        assert!(get(&format!("{key}/grad_weak")).is_null());
        assert!(leaves.weak.grad(&grads).is_none());
        assert!(leaves.weak_ova.grad(&grads).is_none());
    }

    #[test]
    fn iomatch_loss_matches_reference_at_epoch_0_and_1() {
        // make_gcd_ossl_refs.py case_iomatch(): rows 0, 2, 5 pass both L_ui masks; row 1 is
        // confident but an outlier for the OVA head; row 4 fails q_cutoff.
        check_epoch(0);
        check_epoch(1);
        assert_eq!(num("iomatch/epoch0/op"), 0.0);
    }

    #[test]
    fn masks_that_remove_every_sample_give_zero_not_nan() {
        // Uniform weak predictions (max p = 1/4 < 0.95) and o = 0.6 everywhere
        // (q = [0.15 ×4, 0.4], max 0.4 < 0.5): L_ui and L_op select nothing.
        let device = Default::default();
        let k = 4;
        let l = logits::<TB>(&device, "iomatch/weak");
        let weak_ova = Tensor::cat(
            vec![
                Tensor::<TB, 2>::zeros([6, k], &device),
                Tensor::<TB, 2>::ones([6, k], &device).mul_scalar(1.5f64.ln()),
            ],
            1,
        );
        let l = IoMatchLogits {
            weak: Tensor::zeros([6, k], &device),
            weak_ova,
            ..l
        };
        let parts = iomatch_loss(
            l,
            ints("iomatch/y", &device),
            3,
            &IoMatchConfig::new(),
            None,
        );
        for t in [&parts.ui, &parts.op, &parts.mask_ratio, &parts.q_mask_ratio] {
            assert_eq!(t.clone().into_scalar(), 0.0);
        }
        let expected = num("iomatch/epoch1/sup") + num("iomatch/epoch1/mb");
        let total = f64::from(parts.total.into_scalar());
        assert!(
            total.is_finite() && (total - expected).abs() < 1e-5,
            "{total}"
        );
    }

    #[test]
    fn single_unlabelled_sample() {
        // One confident inlier: L_ui is its soft CE; the means divide by 1.
        let device = Default::default();
        let l = IoMatchLogits::<TB> {
            labelled: Tensor::from_floats([[0.0, 0.0]], &device),
            labelled_ova: Tensor::from_floats([[0.0, 0.0, 0.0, 0.0]], &device),
            weak: Tensor::from_floats([[10.0, 0.0]], &device),
            weak_ova: Tensor::from_floats([[0.0, 0.0, 10.0, 0.0]], &device),
            strong: Tensor::from_floats([[0.0, 0.0]], &device),
            strong_open: Tensor::from_floats([[0.0, 0.0, 0.0]], &device),
        };
        let parts = iomatch_loss(
            l,
            Tensor::from_ints([0], &device),
            1,
            &IoMatchConfig::new(),
            None,
        );
        // strong logits uniform: CE to any target distribution is ln 2 (closed), ln 3 (open).
        assert!((parts.ui.into_scalar() - 2f32.ln()).abs() < 1e-6);
        assert!((parts.op.into_scalar() - 3f32.ln()).abs() < 1e-6);
        assert_eq!(parts.mask_ratio.into_scalar(), 1.0);
    }

    #[test]
    fn distribution_alignment_queue_matches_reference_over_two_steps() {
        let device = Default::default();
        let mut queue = DistAlignQueue::<TB>::new(4, 4, &device);
        let cfg = IoMatchConfig::new().with_dist_align(true);
        let y = || ints::<TB>("iomatch/y", &device);
        for (step, weak) in [
            ("da_step1", "iomatch/weak"),
            ("da_step2", "iomatch/da_weak2"),
        ] {
            let parts = iomatch_loss(logits(&device, weak), y(), 1, &cfg, Some(&mut queue));
            assert_tensor(parts.targets_p, &format!("iomatch/{step}/targets_p"));
            assert_tensor(parts.targets_q, &format!("iomatch/{step}/targets_q"));
            for name in ["ui", "op", "total", "mask_ratio"] {
                let t = match name {
                    "ui" => parts.ui.clone(),
                    "op" => parts.op.clone(),
                    "total" => parts.total.clone(),
                    _ => parts.mask_ratio.clone(),
                };
                assert_scalar(t, &format!("iomatch/{step}/{name}"));
            }
        }
        assert_tensor(queue.p_model(), "iomatch/da_p_model_mean");
        let (q, ptr) = queue.state();
        assert_eq!((q.dims(), ptr), ([4, 4], 2));
    }
}
