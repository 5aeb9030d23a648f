//! ProtoGCD: unified and unbiased prototype learning.
//!
//! Ma, Zhu, Zhang, Liu, *ProtoGCD: Unified and Unbiased Prototype Learning for Generalized
//! Category Discovery*, TPAMI 2025. Reference: mashijie1028/ProtoGCD `models/model.py`
//! (`DINOHead`: the prototype classifier), `models/loss.py` (`DistillLoss_ratio`,
//! `entropy_regularization_loss`, `prototype_separation_loss`, `SupConLoss`,
//! `info_nce_logits`) and `train.py` (`train()`: the total), with the hyper-parameters of the
//! README's training commands.
//!
//! # The official step (`train.py`)
//! As SimGCD (see [`crate::simgcd`]), with the clustering term changed:
//!
//! - **Prototype classifier** ([`prototype_logits`]): `DINOHead.prototype_layer` is a
//!   bias-free `weight_norm(Linear)` with `weight_g` filled with 1 and frozen, applied to
//!   `F.normalize(x)`; its logits are the cosine similarities between the features and the
//!   normalised prototypes `weight_v / ‖weight_v‖`. The student probabilities are
//!   `softmax(logits / 0.1)` (`--temp_logits 0.1`).
//! - **Adaptive pseudo-labels** ([`adaptive_pseudo_labels`], in `DistillLoss_ratio`): per
//!   view, the teacher is `softmax(logits.detach() / 0.05)` (`--temp_teacher_logits 0.05`,
//!   a sharpening of the student's `softmax(logits/0.1)`: `softmax(log p / 0.5)`); the rows
//!   are ranked by `top1 / (top2 + 1e-6)` of those probabilities, the first
//!   `int(N · r)` (a floor) become the one-hot argmax, the rest keep the sharpened soft
//!   probabilities. The ratio `r` follows [`pseudo_label_ratio`]: README commands
//!   `--wait_ratio_epochs 0 --ramp_ratio_teacher_epochs 100 --init_ratio 0.0 --final_ratio
//!   1.0`, i.e. `np.linspace(0, 1, 100)[epoch]` (epoch 99 already 1), then 1.
//! - **Distillation** ([`adaptive_distillation`]): cross-entropy from the student of one
//!   view to the adaptive targets of the other, averaged over the view pairs
//!   ([`crate::simgcd::cross_view_distillation`]), over all samples.
//! - **Entropy regulariser**: SimGCD's mean-entropy term `log K − H(mean softmax(logits/0.1))`
//!   ([`crate::simgcd::mean_entropy_regularizer`]), weight 2 (`--weight_entropy_reg 2`).
//! - **Prototype separation** ([`prototype_separation`]): on the normalised prototypes,
//!   `(τ/τ_base) · mean_i log( Σ_{j≠i} exp(c_i·c_j / τ) / (K − 1) )` with `τ = temp_logits =
//!   0.1`, `τ_base = 0.1`; weight `--weight_proto_sep` 0.1 (CIFAR-100 command), 0.05 (CUB).
//! - **Total**: `cluster = distill + 2·entropy + w_sep·proto_sep`,
//!   `loss = 0.65·(cluster + con) + 0.35·(cls + sup_con)` with `cls` the cross-entropy of
//!   the labelled rows of both views at `logits / 0.1`, `con` InfoNCE (temperature
//!   `--temp_unsup_con 1.0`) and `sup_con` SupCon on the labelled subset (temperature
//!   `--temp_sup_con 0.07`, base temperature 0.07) ([`protogcd_loss`]).
//!
//! # What could not be recovered, and choices
//! - The README runs `train_fix.py`, which the repository does not contain; `train.py` (the
//!   only training script) is followed. It uses `DistillLoss_ratio` (fixed teacher
//!   temperature 0.05); `DistillLoss_ratio_ramp` (a 0.07 -> 0.04 teacher schedule as SimGCD)
//!   is defined but not used.
//! - `train.py`'s argparse defaults differ from the README commands in two places:
//!   `--weight_proto_sep 1` (README: 0.1 CIFAR-100, 0.05 CUB) and `--init_ratio 0.2`
//!   (README: 0.0). The README values are the defaults here.
//! - Ties in the top-2 ratio go to the lower row index (torch's `topk` leaves their order
//!   unspecified). The ranking is computed on the device from an `[N, N]` comparison, not
//!   a sort (burn 0.21's GPU backends sort on the host).
//! - `K = 1`: the reference's `topk(k=2)` fails and its separation loss is NaN; here
//!   [`adaptive_pseudo_labels`] panics and [`prototype_separation`] returns 0. Empty
//!   labelled subsets give `cls = sup_con = 0` (the reference: NaN).

use burn::prelude::*;
use burn::tensor::activation::softmax;
use burn::tensor::TensorData;

use crate::common::{
    check_non_negative_f64, check_positive, check_unit_interval, l2_normalize, linspace_at, n_views,
};
use crate::ops::{logsumexp, one_hot};
use crate::simgcd::{
    cross_view_distillation, labelled_cross_entropy, mean_entropy_regularizer, representation_terms,
};
use crate::LossConfigError;

/// ProtoGCD settings, defaults from the README's CIFAR-100 command (mashijie1028/ProtoGCD):
/// `--weight_sup 0.35 --weight_entropy_reg 2 --weight_proto_sep 0.1 --temp_logits 0.1
/// --temp_teacher_logits 0.05 --wait_ratio_epochs 0 --ramp_ratio_teacher_epochs 100
/// --init_ratio 0.0 --final_ratio 1.0`, plus `train.py`'s `--temp_sup_con 0.07` and
/// `--temp_unsup_con 1.0`. For CUB the command sets `proto_sep_weight = 0.05`.
#[derive(Config, Debug)]
pub struct ProtoGcdConfig {
    /// Weight `w` of the supervised terms: `total = (1 − w)·(cluster + con) + w·(cls +
    /// sup_con)` (`--weight_sup 0.35`).
    #[config(default = 0.35)]
    pub sup_weight: f64,
    /// Weight of the mean-entropy regulariser (`--weight_entropy_reg 2`).
    #[config(default = 2.0)]
    pub entropy_weight: f64,
    /// Weight of the prototype separation (`--weight_proto_sep`: 0.1 in the CIFAR-100
    /// command, 0.05 in the CUB one; the argparse default, 1, is not what they run).
    #[config(default = 0.1)]
    pub proto_sep_weight: f64,
    /// Student temperature `--temp_logits 0.1`: divides the cosine logits in the
    /// distillation, `cls`, the entropy term, and is the separation temperature
    /// (`prototype_separation_loss(temperature=args.temp_logits)`).
    #[config(default = 0.1)]
    pub student_temp: f64,
    /// Teacher sharpening temperature `--temp_teacher_logits 0.05`.
    #[config(default = 0.05)]
    pub teacher_temp: f64,
    /// Base temperature of the separation loss (`base_temperature=0.1`, its default).
    #[config(default = 0.1)]
    pub proto_sep_base_temp: f64,
    /// SupCon temperature (`--temp_sup_con 0.07`).
    #[config(default = 0.07)]
    pub sup_con_temp: f64,
    /// SupCon base temperature (`SupConLoss` default 0.07; `train.py` does not set it).
    #[config(default = 0.07)]
    pub sup_con_base_temp: f64,
    /// InfoNCE temperature (`--temp_unsup_con 1.0`).
    #[config(default = 1.0)]
    pub unsup_con_temp: f64,
    /// Epochs at ratio 0 before the ramp (`--wait_ratio_epochs 0`).
    #[config(default = 0)]
    pub wait_ratio_epochs: usize,
    /// Length of the linear ratio ramp (`--ramp_ratio_teacher_epochs 100`).
    #[config(default = 100)]
    pub ramp_ratio_epochs: usize,
    /// Ratio at the start of the ramp (`--init_ratio 0.0` in the README; argparse 0.2).
    #[config(default = 0.0)]
    pub init_ratio: f64,
    /// Ratio at the end of the ramp and after it (`--final_ratio 1.0`).
    #[config(default = 1.0)]
    pub final_ratio: f64,
}

impl ProtoGcdConfig {
    /// The hard-label ratio at `epoch` (0-based): [`pseudo_label_ratio`] with this config.
    pub fn pseudo_label_ratio(&self, epoch: usize) -> f64 {
        pseudo_label_ratio(
            epoch,
            self.wait_ratio_epochs,
            self.ramp_ratio_epochs,
            self.init_ratio,
            self.final_ratio,
        )
    }

    /// Checks the weights (non-negative, `sup_weight` in `[0, 1]`), the temperatures
    /// (positive) and the ratios (in `[0, 1]`).
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_unit_interval("sup_weight", self.sup_weight)?;
        check_non_negative_f64("entropy_weight", self.entropy_weight)?;
        check_non_negative_f64("proto_sep_weight", self.proto_sep_weight)?;
        check_positive("student_temp", self.student_temp)?;
        check_positive("teacher_temp", self.teacher_temp)?;
        check_positive("proto_sep_base_temp", self.proto_sep_base_temp)?;
        check_positive("sup_con_temp", self.sup_con_temp)?;
        check_positive("sup_con_base_temp", self.sup_con_base_temp)?;
        check_positive("unsup_con_temp", self.unsup_con_temp)?;
        check_unit_interval("init_ratio", self.init_ratio)?;
        check_unit_interval("final_ratio", self.final_ratio)
    }
}

/// The terms of [`protogcd_loss`], each of shape `[1]` and still in the autodiff graph
/// (names as in ProtoGCD's `train.py` log line).
#[derive(Debug, Clone)]
pub struct ProtoGcdLossParts<B: Backend> {
    /// `(1 − w)·(cluster + con) + w·(cls + sup_con)`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Cross-entropy of the labelled rows of both views at `logits / student_temp`.
    pub cls: Tensor<B, 1>,
    /// `distill + entropy_weight·entropy + proto_sep_weight·proto_sep`.
    pub cluster: Tensor<B, 1>,
    /// The adaptive-pseudo-label distillation ([`adaptive_distillation`]).
    pub distill: Tensor<B, 1>,
    /// `log K − H(mean softmax(logits / student_temp))`, unweighted.
    pub entropy: Tensor<B, 1>,
    /// [`prototype_separation`], unweighted.
    pub proto_sep: Tensor<B, 1>,
    /// InfoNCE over every row of the projections.
    pub con: Tensor<B, 1>,
    /// SupCon over the labelled samples.
    pub sup_con: Tensor<B, 1>,
}

/// Cosine-similarity logits of the prototype classifier: `normalize(features) ·
/// normalize(prototypes)ᵀ` (ProtoGCD's weight-normalised `prototype_layer` with the gain
/// fixed at 1, on `F.normalize(x)`). Both inputs are L2-normalised here, row by row.
///
/// # Shapes
/// - `features`: `[N, D]`, `prototypes`: `[K, D]` -> `[N, K]`
pub fn prototype_logits<B: Backend>(
    features: Tensor<B, 2>,
    prototypes: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let f = l2_normalize(features, 1);
    let c = l2_normalize(prototypes, 1);
    f.matmul(c.transpose())
}

/// The hard-label ratio of ProtoGCD's `DistillLoss_ratio.ratio_schedule` at `epoch`
/// (0-based): 0 for the first `wait_epochs`, then `np.linspace(init_ratio, final_ratio,
/// ramp_epochs)` (so the last ramp epoch is already `final_ratio`), then `final_ratio`.
/// Official (README): wait 0, ramp 100, 0 -> 1, i.e. `epoch / 99` up to epoch 99.
pub fn pseudo_label_ratio(
    epoch: usize,
    wait_epochs: usize,
    ramp_epochs: usize,
    init_ratio: f64,
    final_ratio: f64,
) -> f64 {
    if epoch < wait_epochs {
        0.0
    } else if epoch < wait_epochs + ramp_epochs {
        linspace_at(init_ratio, final_ratio, ramp_epochs, epoch - wait_epochs)
    } else {
        final_ratio
    }
}

/// ProtoGCD's adaptive targets for one view: the `floor(N · ratio)` rows with the largest
/// `top1 / (top2 + 1e-6)` probability ratio become the one-hot argmax, the others keep
/// `probs` (the sharpened teacher probabilities `softmax(logits / 0.05)`). The result is
/// detached.
///
/// # Shapes
/// - `probs`: `[N, K]` -> `[N, K]`
///
/// # Panics
/// If `K < 2` (no top-2 ratio) or `ratio` is not in `[0, 1]`.
pub fn adaptive_pseudo_labels<B: Backend>(probs: Tensor<B, 2>, ratio: f64) -> Tensor<B, 2> {
    let [n, k] = probs.dims();
    assert!(
        k >= 2,
        "adaptive_pseudo_labels: the top-2 ratio needs at least 2 classes, got {k}"
    );
    assert!(
        (0.0..=1.0).contains(&ratio),
        "adaptive_pseudo_labels: ratio {ratio} is not in [0, 1]"
    );
    let probs = probs.detach();
    // `int(len(teacher_out[i]) * ratio_epoch)` in the reference: truncation, i.e. a floor.
    let n_hard = (n as f64 * ratio).floor() as usize;
    if n_hard == 0 {
        return probs;
    }
    let device = probs.device();
    // top-1 and top-2 probabilities without a sort: the runner-up is the max once the
    // argmax entry is masked out (a tie at the top gives top2 = top1, as torch.topk does).
    let argmax = probs.clone().argmax(1).reshape([n]);
    let top_one_hot = one_hot(argmax, k);
    let top1 = probs.clone().max_dim(1); // [N, 1]
    let second = (probs.clone() - top_one_hot.clone().mul_scalar(2.0)).max_dim(1);
    let score = (top1 / second.add_scalar(1e-6)).reshape([n]);
    // Rank of each row by descending score, computed on the device (no host round trip):
    // rank_i = #{j : s_j > s_i} + #{j < i : s_j = s_i}, ties going to the lower index.
    let s_i = score.clone().reshape([n, 1]).expand([n, n]);
    let s_j = score.reshape([1, n]).expand([n, n]);
    let earlier = Tensor::<B, 2>::ones([n, n], &device).tril(-1); // j < i
    let rank = s_j.clone().greater(s_i.clone()).float() + s_j.equal(s_i).float() * earlier;
    let hard_rows = rank.sum_dim(1).lower_elem(n_hard as f64 - 0.5).float(); // [N, 1]
    top_one_hot * hard_rows.clone() + probs * hard_rows.neg().add_scalar(1.0)
}

/// ProtoGCD's `DistillLoss_ratio(student_out, student_out.detach(), epoch)`: per view, the
/// teacher is `softmax(logits.detach() / teacher_temp)` turned into
/// [`adaptive_pseudo_labels`] with `ratio`, and the student of every other view is trained
/// towards it at `student_temp` ([`cross_view_distillation`]).
///
/// # Shapes
/// - `student_logits`: `[V·N, K]` (view-major) -> `[1]`
pub fn adaptive_distillation<B: Backend>(
    student_logits: Tensor<B, 2>,
    n_views: usize,
    ratio: f64,
    student_temp: f64,
    teacher_temp: f64,
) -> Tensor<B, 1> {
    let [rows, _k] = student_logits.dims();
    assert!(
        n_views >= 2 && rows.is_multiple_of(n_views) && rows > 0,
        "adaptive_distillation: {rows} rows must be n_views = {n_views} (>= 2) equal views"
    );
    let n = rows / n_views;
    let teacher = softmax(student_logits.clone().detach().div_scalar(teacher_temp), 1);
    let targets = (0..n_views)
        .map(|v| adaptive_pseudo_labels(teacher.clone().narrow(0, v * n, n), ratio))
        .collect::<Vec<_>>();
    cross_view_distillation(
        student_logits,
        Tensor::cat(targets, 0),
        n_views,
        student_temp,
    )
}

/// ProtoGCD's `prototype_separation_loss` on the L2-normalised prototypes `c`:
/// `(τ/τ_base) · mean_i log( (1/(K − 1)) Σ_{j≠i} exp(c_i·c_j / τ) )`, computed with a
/// log-sum-exp. Pushes prototypes apart (lower when they are spread out). Official: `τ =
/// τ_base = 0.1`. `K = 1` gives 0 (no pair to separate; the reference returns NaN).
///
/// # Shapes
/// - `prototypes`: `[K, D]` (normalised here) -> `[1]`
pub fn prototype_separation<B: Backend>(
    prototypes: Tensor<B, 2>,
    temperature: f64,
    base_temperature: f64,
) -> Tensor<B, 1> {
    let [k, _d] = prototypes.dims();
    let device = prototypes.device();
    if k < 2 {
        return Tensor::zeros([1], &device);
    }
    let c = l2_normalize(prototypes, 1);
    let sim = c.clone().matmul(c.transpose()).div_scalar(temperature);
    let mut idx = Vec::with_capacity(k * (k - 1));
    for i in 0..k {
        idx.extend((0..k).filter(|&j| j != i).map(|j| j as i64));
    }
    let idx = Tensor::<B, 2, Int>::from_data(TensorData::new(idx, [k, k - 1]), &device);
    let off_diagonal = sim.gather(1, idx);
    logsumexp(off_diagonal)
        .sub_scalar(((k - 1) as f64).ln())
        .mean()
        .mul_scalar(temperature / base_temperature)
}

/// The full ProtoGCD objective of `train.py` from the forward pass of `V` views (see the
/// module doc).
///
/// - `student_logits`: the prototype classifier's cosine logits of all views, view-major
///   (`[V·N, K]`, e.g. [`prototype_logits`]), *not* divided by the temperature;
/// - `proj_features`: the projection head's output for the same rows (`[V·N, d]`);
/// - `prototypes`: the prototype matrix (`[K, D]`, normalised here for the separation term;
///   the gradient flows into it);
/// - `labels` `[N]`, meaningful where `labelled_mask` is true; `epoch` 0-based.
///
/// # Shapes
/// - `student_logits`: `[V·N, K]`, `proj_features`: `[V·N, d]`, `prototypes`: `[K, D]`,
///   `labels`: `[N]`, `labelled_mask`: `[N]` -> terms of shape `[1]`
///
/// # Panics
/// If the rows are not `V >= 2` views of `N` samples, the inputs disagree on rows or on
/// `K`, or `K < 2`.
pub fn protogcd_loss<B: Backend>(
    student_logits: Tensor<B, 2>,
    proj_features: Tensor<B, 2>,
    prototypes: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    labelled_mask: Tensor<B, 1, Bool>,
    epoch: usize,
    cfg: &ProtoGcdConfig,
) -> ProtoGcdLossParts<B> {
    let [rows, k] = student_logits.dims();
    let [proj_rows, _d] = proj_features.dims();
    let [k_protos, _dim] = prototypes.dims();
    assert_eq!(
        rows, proj_rows,
        "protogcd_loss: {rows} rows of logits but {proj_rows} rows of projections"
    );
    assert_eq!(
        k, k_protos,
        "protogcd_loss: {k} logit columns but {k_protos} prototypes"
    );
    let [n] = labels.dims();
    let v = n_views(rows, n, "protogcd_loss");
    assert!(v >= 2, "protogcd_loss: needs at least two views, got {v}");
    let labelled = labelled_mask.float();

    let cls = labelled_cross_entropy(
        student_logits.clone().div_scalar(cfg.student_temp),
        labels.clone(),
        labelled.clone(),
    );
    let distill = adaptive_distillation(
        student_logits.clone(),
        v,
        cfg.pseudo_label_ratio(epoch),
        cfg.student_temp,
        cfg.teacher_temp,
    );
    let entropy = mean_entropy_regularizer(student_logits, cfg.student_temp);
    let proto_sep = prototype_separation(prototypes, cfg.student_temp, cfg.proto_sep_base_temp);
    let cluster = distill.clone()
        + entropy.clone().mul_scalar(cfg.entropy_weight)
        + proto_sep.clone().mul_scalar(cfg.proto_sep_weight);
    let (con, sup_con) = representation_terms(
        proj_features,
        labels,
        labelled,
        v,
        cfg.sup_con_temp,
        cfg.sup_con_base_temp,
        cfg.unsup_con_temp,
    );
    let w = cfg.sup_weight;
    let total = (cluster.clone() + con.clone()).mul_scalar(1.0 - w)
        + (cls.clone() + sup_con.clone()).mul_scalar(w);
    ProtoGcdLossParts {
        total,
        cls,
        cluster,
        distill,
        entropy,
        proto_sep,
        con,
        sup_con,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{assert_scalar, assert_tensor, bools, get, ints, num, tensor};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::Tolerance;

    type TB = Flex;
    type AD = Autodiff<Flex>;

    #[test]
    fn config_defaults_follow_the_readme_command() {
        let cfg = ProtoGcdConfig::new();
        assert_eq!(
            (cfg.sup_weight, cfg.entropy_weight, cfg.proto_sep_weight),
            (0.35, 2.0, 0.1)
        );
        assert_eq!((cfg.student_temp, cfg.teacher_temp), (0.1, 0.05));
        assert_eq!(
            (cfg.sup_con_temp, cfg.sup_con_base_temp, cfg.unsup_con_temp),
            (0.07, 0.07, 1.0)
        );
        assert_eq!(
            (
                cfg.wait_ratio_epochs,
                cfg.ramp_ratio_epochs,
                cfg.init_ratio,
                cfg.final_ratio
            ),
            (0, 100, 0.0, 1.0)
        );
        assert!(cfg.validate().is_ok());
        assert!(ProtoGcdConfig::new()
            .with_final_ratio(1.5)
            .validate()
            .is_err());
        assert!(ProtoGcdConfig::new()
            .with_teacher_temp(-1.0)
            .validate()
            .is_err());
    }

    #[test]
    fn ratio_schedule_matches_numpy() {
        let check = |epochs: &str, ratios: &str, cfg: &ProtoGcdConfig| {
            let epochs = get(epochs).as_array().expect("array");
            let ratios = get(ratios).as_array().expect("array");
            for (e, r) in epochs.iter().zip(ratios) {
                let e = e.as_u64().expect("epoch") as usize;
                let r = r.as_f64().expect("ratio");
                assert!(
                    (cfg.pseudo_label_ratio(e) - r).abs() < 1e-15,
                    "epoch {e}: {} vs {r}",
                    cfg.pseudo_label_ratio(e)
                );
            }
        };
        check(
            "protogcd/ratio_epochs",
            "protogcd/ratios",
            &ProtoGcdConfig::new(),
        );
        // wait 5, ramp 10, 0.2 -> 1.0
        let cfg = ProtoGcdConfig::new()
            .with_wait_ratio_epochs(5)
            .with_ramp_ratio_epochs(10)
            .with_init_ratio(0.2);
        check("protogcd/ratio2_epochs", "protogcd/ratios2", &cfg);
    }

    #[test]
    fn prototype_logits_are_cosine_similarities() {
        let device = Default::default();
        let x = tensor::<TB, 2>("protogcd/x", &device);
        let v = tensor::<TB, 2>("protogcd/v", &device);
        assert_tensor(prototype_logits(x, v), "protogcd/prototype_logits");
        // Scale invariance: the gain is fixed at 1.
        let f = Tensor::<TB, 2>::from_floats([[3.0, 4.0]], &device);
        let c = Tensor::<TB, 2>::from_floats([[10.0, 0.0], [0.0, -0.5]], &device);
        prototype_logits(f, c).into_data().assert_approx_eq::<f32>(
            &TensorData::from([[0.6f32, -0.8]]),
            Tolerance::rel_abs(1e-6, 1e-7),
        );
    }

    #[test]
    fn adaptive_pseudo_labels_match_reference() {
        // Ratios 0, 0.34, 0.5, 1 on 6 rows: 0, floor(2.04) = 2, 3 and 6 hard rows.
        let device = Default::default();
        let probs = tensor::<TB, 2>("protogcd/teacher_probs_view0", &device);
        assert!(num("protogcd/min_rel_gap") > 1e-3);
        for r in ["0.0", "0.34", "0.5", "1.0"] {
            let ratio: f64 = r.parse().expect("ratio");
            let t = adaptive_pseudo_labels(probs.clone(), ratio);
            assert_tensor(t, &format!("protogcd/adaptive_r{r}"));
        }
    }

    #[test]
    fn adaptive_pseudo_labels_by_hand() {
        let device = Default::default();
        // Row ratios: 0.7/0.2 = 3.5, 0.5/0.4 = 1.25, 0.9/0.05 = 18: with ratio 0.5,
        // floor(1.5) = 1 hard row, the last one.
        let p = Tensor::<TB, 2>::from_floats(
            [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.05, 0.05, 0.9]],
            &device,
        );
        let expected = TensorData::from([[0.7f32, 0.2, 0.1], [0.4, 0.5, 0.1], [0.0, 0.0, 1.0]]);
        adaptive_pseudo_labels(p.clone(), 0.5)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-6, 1e-7));
        // ratio 0.67: floor(2.01) = 2 hard rows, the first and the last.
        let expected = TensorData::from([[1.0f32, 0.0, 0.0], [0.4, 0.5, 0.1], [0.0, 0.0, 1.0]]);
        adaptive_pseudo_labels(p, 0.67)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-6, 1e-7));
        // Equal scores: the lower rows win (2 of 3 identical rows become hard).
        let same = Tensor::<TB, 2>::from_floats([[0.6, 0.3, 0.1]; 3], &device);
        let expected = TensorData::from([[1.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.6, 0.3, 0.1]]);
        adaptive_pseudo_labels(same, 0.67)
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-6, 1e-7));
        // A single sample with ratio 1 is one-hot; K = 2 works (torch's topk(2) edge).
        let one = Tensor::<TB, 2>::from_floats([[0.3, 0.7]], &device);
        adaptive_pseudo_labels(one, 1.0)
            .into_data()
            .assert_approx_eq::<f32>(
                &TensorData::from([[0.0f32, 1.0]]),
                Tolerance::rel_abs(1e-6, 1e-7),
            );
    }

    #[test]
    #[should_panic(expected = "at least 2 classes")]
    fn adaptive_pseudo_labels_reject_one_class() {
        let device = Default::default();
        let _ = adaptive_pseudo_labels(Tensor::<TB, 2>::ones([3, 1], &device), 0.5);
    }

    #[test]
    fn prototype_separation_matches_reference() {
        let device = Default::default();
        let v = tensor::<TB, 2>("protogcd/v", &device);
        assert_scalar(
            prototype_separation(v.clone(), 0.1, 0.1),
            "protogcd/proto_sep_t0.1",
        );
        assert_scalar(
            prototype_separation(v.clone(), 0.2, 0.1),
            "protogcd/proto_sep_t0.2_base0.1",
        );
        assert_scalar(
            prototype_separation(v.clone().narrow(0, 0, 2), 0.1, 0.1),
            "protogcd/proto_sep_k2",
        );
        // K = 1: nothing to separate, 0 instead of the reference's NaN.
        assert_eq!(
            prototype_separation(v.narrow(0, 0, 1), 0.1, 0.1).into_scalar(),
            0.0
        );
        // By hand, K = 2 orthogonal prototypes: log(exp(0)/1) = 0; antipodal: −1/τ.
        let orth = Tensor::<TB, 2>::from_floats([[1.0, 0.0], [0.0, 2.0]], &device);
        assert!(prototype_separation(orth, 0.1, 0.1).into_scalar().abs() < 1e-6);
        let anti = Tensor::<TB, 2>::from_floats([[1.0, 0.0], [-3.0, 0.0]], &device);
        let v = prototype_separation(anti, 0.1, 0.1).into_scalar();
        assert!((v + 10.0).abs() < 1e-5, "{v}");
    }

    fn check_protogcd_case(epoch: usize) {
        let key = format!("protogcd/epoch{epoch}");
        let device = Default::default();
        let x = tensor::<AD, 2>("protogcd/x", &device).require_grad();
        let v = tensor::<AD, 2>("protogcd/v", &device).require_grad();
        let p = tensor::<AD, 2>("protogcd/proj", &device).require_grad();
        let y = ints::<AD>("protogcd/labels", &device);
        let m = bools::<AD>("protogcd/mask_lab", &device);
        let logits = prototype_logits(x.clone(), v.clone());
        let cfg = ProtoGcdConfig::new();
        let parts = protogcd_loss(logits, p.clone(), v.clone(), y, m, epoch, &cfg);
        for (name, t) in [
            ("cls", &parts.cls),
            ("cluster", &parts.cluster),
            ("distill", &parts.distill),
            ("entropy", &parts.entropy),
            ("proto_sep", &parts.proto_sep),
            ("con", &parts.con),
            ("sup_con", &parts.sup_con),
            ("total", &parts.total),
        ] {
            assert_scalar(t.clone(), &format!("{key}/{name}"));
        }
        let grads = parts.total.backward();
        assert_tensor(x.grad(&grads).expect("grad"), &format!("{key}/grad_x"));
        assert_tensor(v.grad(&grads).expect("grad"), &format!("{key}/grad_v"));
        assert_tensor(p.grad(&grads).expect("grad"), &format!("{key}/grad_proj"));
    }

    #[test]
    fn protogcd_loss_matches_reference_terms_and_gradients() {
        // make_gcd_ossl_refs.py case_protogcd(): epoch 0 (ratio 0: all soft targets) and
        // epoch 50 (ratio 50/99: 3 of 6 rows per view hard).
        check_protogcd_case(0);
        check_protogcd_case(50);
    }

    #[test]
    fn adaptive_targets_are_detached() {
        // The distillation gradient equals that of the same loss with constant targets.
        let device = Default::default();
        let x = tensor::<TB, 2>("protogcd/x", &device);
        let v = tensor::<TB, 2>("protogcd/v", &device);
        let logits = prototype_logits(x, v).into_data();
        let z = Tensor::<AD, 2>::from_data(logits.clone(), &device).require_grad();
        let g1 = z
            .grad(&adaptive_distillation(z.clone(), 2, 0.5, 0.1, 0.05).backward())
            .expect("grad");
        let constant = Tensor::<TB, 2>::from_data(logits.clone(), &device);
        let teacher = softmax(constant.div_scalar(0.05), 1);
        let targets = Tensor::cat(
            vec![
                adaptive_pseudo_labels(teacher.clone().narrow(0, 0, 6), 0.5),
                adaptive_pseudo_labels(teacher.narrow(0, 6, 6), 0.5),
            ],
            0,
        );
        let z2 = Tensor::<AD, 2>::from_data(logits, &device).require_grad();
        let targets = Tensor::<AD, 2>::from_data(targets.into_data(), &device);
        let g2 = z2
            .grad(&cross_view_distillation(z2.clone(), targets, 2, 0.1).backward())
            .expect("grad");
        g1.into_data()
            .assert_approx_eq::<f32>(&g2.into_data(), Tolerance::rel_abs(1e-6, 1e-7));
    }
}
