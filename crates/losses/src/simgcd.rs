//! SimGCD: parametric classification with cross-view self-distillation.
//!
//! Wen, Zhao, Qi, *Parametric Classification for Generalized Category Discovery: A Baseline
//! Study*, ICCV 2023. Reference: CVMI-Lab/SimGCD `model.py` (`DistillLoss`, `SupConLoss`,
//! `info_nce_logits`, `DINOHead`) and `train.py` (`train()`: the total loss), hyper-parameters
//! from `scripts/run_*.sh`.
//!
//! # The official step (`train.py`)
//! The two augmented views of a batch of `N` images are forwarded together
//! (`images = torch.cat(images, dim=0)`): `student_out` (`[2N, K]`, the `DINOHead` logits,
//! which are cosine similarities since its last layer is weight-normalised with `g = 1` on
//! L2-normalised features) and `student_proj` (`[2N, 256]`, the projection head's output).
//! `mask_lab` marks the labelled images. Then
//!
//! - `cls_loss = CE(cat_views((student_out / 0.1)[mask_lab]), cat_views(labels[mask_lab]))`
//!   ([`labelled_cross_entropy`], both views);
//! - `cluster_loss = DistillLoss(student_out, student_out.detach(), epoch)` ([`distill_loss`]:
//!   the teacher of each view is the detached softmax of the *other* view at the teacher
//!   temperature [`teacher_temperature`], the student's log-softmax at 0.1; cross-entropy
//!   summed over classes, averaged over samples and over the ordered pairs of different
//!   views);
//! - `avg_probs = (student_out / 0.1).softmax(dim=1).mean(dim=0)`,
//!   `me_max_loss = -Σ log(avg_probs^(−avg_probs)) + log K` = `log K − H(avg_probs)`
//!   ([`mean_entropy_regularizer`], over both views and every sample, labelled or not), and
//!   `cluster_loss += memax_weight · me_max_loss`;
//! - `contrastive_loss = CE(info_nce_logits(student_proj))` over all `2N` rows
//!   ([`crate::supcon::info_nce`], temperature 1.0);
//! - `sup_con_loss = SupConLoss()(normalize(proj[mask_lab] as [n_lab, 2, d]), labels[mask_lab])`
//!   ([`crate::supcon::supcon_masked`], temperature = base temperature = 0.07);
//! - `loss = (1 − w)·(cluster_loss + contrastive_loss) + w·(cls_loss + sup_con_loss)`,
//!   `w = sup_weight = 0.35` ([`simgcd_loss`]).
//!
//! Note the sign: `me_max_loss = log K − H ≥ 0` is *added*, so minimising it maximises the
//! entropy of the batch-mean prediction; equivalently `cluster = distill − memax_weight·H +
//! const`.
//!
//! # Differences from the reference, all at its edges
//! - A batch without labelled images: the reference's `cls_loss` and `sup_con_loss` are NaN
//!   (mean over an empty selection); here they are 0.
//! - Views: the reference chunks the teacher and the labelled CE into exactly 2 views;
//!   [`simgcd_loss`] infers `V = rows / N` and generalises the same formulas (identical for
//!   `V = 2`).
//! - Epochs past the schedule: the reference indexes a table of `--epochs` entries; here
//!   every epoch after the warm-up uses the final teacher temperature.

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};

use crate::common::{
    check_non_negative_f64, check_positive, check_unit_interval, cross_entropy_per_sample,
    l2_normalize, linspace_at, masked_mean, n_views, soft_cross_entropy_per_sample,
};
use crate::ops::logsumexp;
use crate::supcon::{info_nce, supcon_masked};
use crate::LossConfigError;

/// SimGCD settings (Wen et al., ICCV 2023). Defaults: CVMI-Lab/SimGCD `train.py` argparse and
/// `scripts/run_*.sh` (identical for these fields except `memax_weight`).
///
/// Naming: `teacher_temp`/`teacher_temp_final` here are SimGCD's `--warmup_teacher_temp`
/// (0.07) and `--teacher_temp` (0.04), and `warmup_teacher_epochs` its
/// `--warmup_teacher_temp_epochs` (30).
#[derive(Config, Debug)]
pub struct SimGcdConfig {
    /// Weight `w` of the supervised terms: `total = (1 − w)·(cluster + con) + w·(cls +
    /// sup_con)` (`--sup_weight 0.35`).
    #[config(default = 0.35)]
    pub sup_weight: f64,
    /// Weight of the mean-entropy regulariser inside `cluster` (`--memax_weight`): 2 is the
    /// argparse default and CUB's; the scripts use 4 for CIFAR-100 and 1 for CIFAR-10,
    /// ImageNet-100/1K, Stanford Cars, FGVC-Aircraft and Herbarium 19
    /// ([`SimGcdConfig::official_memax_weight`]).
    #[config(default = 2.0)]
    pub memax_weight: f64,
    /// Teacher temperature at epoch 0 (`--warmup_teacher_temp 0.07`).
    #[config(default = 0.07)]
    pub teacher_temp: f64,
    /// Teacher temperature after the warm-up (`--teacher_temp 0.04`).
    #[config(default = 0.04)]
    pub teacher_temp_final: f64,
    /// Length of the linear teacher-temperature warm-up, in epochs
    /// (`--warmup_teacher_temp_epochs 30`).
    #[config(default = 30)]
    pub warmup_teacher_epochs: usize,
    /// Student temperature: the logits are divided by it in the distillation
    /// (`DistillLoss(student_temp=0.1)`), in `cls_loss` and in the entropy term (both
    /// hard-coded `/ 0.1` in `train.py`).
    #[config(default = 0.1)]
    pub student_temp: f64,
    /// SupCon temperature (and base temperature): `SupConLoss()` defaults, 0.07.
    #[config(default = 0.07)]
    pub sup_con_temp: f64,
    /// InfoNCE temperature: `info_nce_logits` default, 1.0.
    #[config(default = 1.0)]
    pub unsup_con_temp: f64,
}

impl SimGcdConfig {
    /// The `--memax_weight` of SimGCD's `scripts/run_<dataset>.sh`, by the `--dataset_name`
    /// it passes: `cifar100` 4, `cub` 2, and 1 for `cifar10`, `imagenet_100`, `imagenet_1k`,
    /// `scars`, `aircraft`, `herbarium_19`. `None` for other names.
    pub fn official_memax_weight(dataset: &str) -> Option<f64> {
        match dataset {
            "cifar100" => Some(4.0),
            "cub" => Some(2.0),
            "cifar10" | "imagenet_100" | "imagenet_1k" | "scars" | "aircraft" | "herbarium_19" => {
                Some(1.0)
            }
            _ => None,
        }
    }

    /// The teacher temperature at `epoch` (0-based): [`teacher_temperature`] with this
    /// config's schedule.
    pub fn teacher_temperature(&self, epoch: usize) -> f64 {
        teacher_temperature(
            epoch,
            self.teacher_temp,
            self.teacher_temp_final,
            self.warmup_teacher_epochs,
        )
    }

    /// Checks that `sup_weight` lies in `[0, 1]`, `memax_weight` is non-negative and every
    /// temperature is positive.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_unit_interval("sup_weight", self.sup_weight)?;
        check_non_negative_f64("memax_weight", self.memax_weight)?;
        check_positive("teacher_temp", self.teacher_temp)?;
        check_positive("teacher_temp_final", self.teacher_temp_final)?;
        check_positive("student_temp", self.student_temp)?;
        check_positive("sup_con_temp", self.sup_con_temp)?;
        check_positive("unsup_con_temp", self.unsup_con_temp)
    }
}

/// The terms of [`simgcd_loss`], each of shape `[1]` and still in the autodiff graph
/// (names as in SimGCD's `train.py` log line).
#[derive(Debug, Clone)]
pub struct SimGcdLossParts<B: Backend> {
    /// `(1 − w)·(cluster + con) + w·(cls + sup_con)`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// `cls_loss`: cross-entropy of the labelled rows of both views at the student
    /// temperature.
    pub cls: Tensor<B, 1>,
    /// `cluster_loss = distill + memax_weight·entropy`.
    pub cluster: Tensor<B, 1>,
    /// The cross-view self-distillation term ([`distill_loss`]).
    pub distill: Tensor<B, 1>,
    /// `me_max_loss = log K − H(mean softmax)` ([`mean_entropy_regularizer`]), unweighted.
    pub entropy: Tensor<B, 1>,
    /// `contrastive_loss`: InfoNCE over every row ([`crate::supcon::info_nce`]).
    pub con: Tensor<B, 1>,
    /// `sup_con_loss`: SupCon over the labelled samples ([`crate::supcon::supcon_masked`]).
    pub sup_con: Tensor<B, 1>,
}

/// SimGCD's teacher temperature at `epoch` (0-based): `np.linspace(teacher_temp,
/// teacher_temp_final, warmup_epochs)[epoch]` during the warm-up (so epoch 0 is
/// `teacher_temp` and epoch `warmup_epochs − 1` already `teacher_temp_final`), then
/// `teacher_temp_final` (`DistillLoss.teacher_temp_schedule` in `model.py`).
pub fn teacher_temperature(
    epoch: usize,
    teacher_temp: f64,
    teacher_temp_final: f64,
    warmup_epochs: usize,
) -> f64 {
    if epoch < warmup_epochs {
        linspace_at(teacher_temp, teacher_temp_final, warmup_epochs, epoch)
    } else {
        teacher_temp_final
    }
}

/// Cross-view distillation against given teacher probabilities: for every ordered pair of
/// different views `(t, s)`, the batch mean of `−Σ_k q_t,k · log softmax(z_s / τ_s)_k`,
/// averaged over the `V(V − 1)` pairs (the loop of SimGCD's `DistillLoss.forward` and
/// ProtoGCD's `DistillLoss_ratio.forward`). `teacher_probs` are detached here: no gradient
/// flows into them.
///
/// # Shapes
/// - `student_logits`: `[V·N, K]`, `teacher_probs`: `[V·N, K]` (both view-major) -> `[1]`
///
/// # Panics
/// If the shapes differ, `n_views < 2`, or the rows are not `n_views` equal views.
pub fn cross_view_distillation<B: Backend>(
    student_logits: Tensor<B, 2>,
    teacher_probs: Tensor<B, 2>,
    n_views: usize,
    student_temp: f64,
) -> Tensor<B, 1> {
    let [rows, _k] = student_logits.dims();
    assert_eq!(
        student_logits.dims(),
        teacher_probs.dims(),
        "cross_view_distillation: student and teacher shapes differ"
    );
    assert!(
        n_views >= 2 && rows.is_multiple_of(n_views) && rows > 0,
        "cross_view_distillation: {rows} rows must be n_views = {n_views} (>= 2) equal views"
    );
    let n = rows / n_views;
    let student = student_logits.div_scalar(student_temp);
    let teacher = teacher_probs.detach();
    let mut total: Option<Tensor<B, 1>> = None;
    for t in 0..n_views {
        let q = teacher.clone().narrow(0, t * n, n);
        for s in (0..n_views).filter(|&s| s != t) {
            let z = student.clone().narrow(0, s * n, n);
            let term = soft_cross_entropy_per_sample(z, q.clone()).mean();
            total = Some(match total {
                Some(acc) => acc + term,
                None => term,
            });
        }
    }
    let pairs = (n_views * (n_views - 1)) as f64;
    total.expect("at least one pair of views").div_scalar(pairs)
}

/// SimGCD's `DistillLoss(student_output, student_output.detach(), epoch)`: the teacher of
/// each view is `softmax(z / teacher_temp)` of the same logits, detached
/// ([`cross_view_distillation`]).
///
/// # Shapes
/// - `student_logits`: `[V·N, K]` (view-major) -> `[1]`
pub fn distill_loss<B: Backend>(
    student_logits: Tensor<B, 2>,
    n_views: usize,
    student_temp: f64,
    teacher_temp: f64,
) -> Tensor<B, 1> {
    let teacher = softmax(student_logits.clone().detach().div_scalar(teacher_temp), 1);
    cross_view_distillation(student_logits, teacher, n_views, student_temp)
}

/// `log K − H(p̄)`, `p̄ = mean_i softmax(z_i / τ)` over all rows: SimGCD's `me_max_loss`
/// (`- torch.sum(torch.log(avg_probs**(-avg_probs))) + math.log(float(len(avg_probs)))`) and
/// ProtoGCD's `entropy_regularization_loss`. Non-negative; 0 when the batch-mean prediction
/// is uniform. Computed in log space (`log p̄ = logsumexp_i log softmax(z_i/τ) − log n`), so
/// classes no row predicts stay finite.
///
/// # Shapes
/// - `logits`: `[n, K]` -> `[1]`
pub fn mean_entropy_regularizer<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f64,
) -> Tensor<B, 1> {
    let [n, k] = logits.dims();
    let log_p = log_softmax(logits.div_scalar(temperature), 1);
    let log_avg = logsumexp(log_p.transpose()).sub_scalar((n as f64).ln()); // [K]
    let avg = log_avg.clone().exp();
    (avg * log_avg).sum().add_scalar((k as f64).ln())
}

/// Cross-entropy of the labelled rows of every view, `CE(cat_v(z_v[mask]), cat_v(y[mask]))`
/// (`cls_loss` of SimGCD/ProtoGCD, which pass `student_out / 0.1`); 0 when no row is
/// labelled. Labels of unlabelled rows are ignored (clamped into range, then masked).
///
/// # Shapes
/// - `logits`: `[V·N, K]` (view-major, already divided by the temperature), `labels`:
///   `[N]`, `labelled`: `[N]` (0/1 floats) -> `[1]`
pub fn labelled_cross_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    labelled: Tensor<B, 1>,
) -> Tensor<B, 1> {
    let [rows, k] = logits.dims();
    let [n] = labels.dims();
    let v = n_views(rows, n, "labelled_cross_entropy");
    let labels = labels.clamp(0, k as i64 - 1).repeat_dim(0, v);
    let per_row = cross_entropy_per_sample(logits, labels);
    masked_mean(per_row, labelled.repeat_dim(0, v))
}

/// The representation terms shared by SimGCD and ProtoGCD: InfoNCE over every row of
/// `proj` and SupCon over the labelled samples (projections L2-normalised first).
/// Returns `(con, sup_con)`.
pub(crate) fn representation_terms<B: Backend>(
    proj: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    labelled: Tensor<B, 1>,
    n_views: usize,
    sup_con_temp: f64,
    sup_con_base_temp: f64,
    unsup_con_temp: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [rows, d] = proj.dims();
    let n = rows / n_views;
    let con = info_nce(proj.clone(), n_views, unsup_con_temp);
    // [V·N, d] view-major -> [N, V, d], as torch.cat([f.unsqueeze(1) for f in proj.chunk(V)], 1)
    let per_sample = l2_normalize(proj.reshape([n_views, n, d]).swap_dims(0, 1), 2);
    let sup_con = supcon_masked(
        per_sample,
        Some(labels),
        labelled,
        sup_con_temp,
        sup_con_base_temp,
    );
    (con, sup_con)
}

/// The full SimGCD objective of `train.py` from the forward pass of `V` views (see the
/// module doc): `total = (1 − w)·(distill + memax_weight·entropy + con) + w·(cls + sup_con)`.
///
/// - `student_logits`: the classifier's logits of all views, view-major (`[V·N, K]`, rows
///   `v·N .. (v+1)·N` are view `v`), as `student(torch.cat(images))` returns them;
/// - `proj_features`: the projection head's output for the same rows (`[V·N, d]`, not
///   normalised: InfoNCE and SupCon normalise it);
/// - `labels`: `[N]`, meaningful where `labelled_mask` is true;
/// - `epoch`: 0-based, selects the teacher temperature.
///
/// # Shapes
/// - `student_logits`: `[V·N, K]`, `proj_features`: `[V·N, d]`, `labels`: `[N]`,
///   `labelled_mask`: `[N]` -> terms of shape `[1]`
///
/// # Panics
/// If the rows are not `V >= 2` views of `N` samples, or the two inputs disagree on rows.
pub fn simgcd_loss<B: Backend>(
    student_logits: Tensor<B, 2>,
    proj_features: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    labelled_mask: Tensor<B, 1, Bool>,
    epoch: usize,
    cfg: &SimGcdConfig,
) -> SimGcdLossParts<B> {
    let [rows, _k] = student_logits.dims();
    let [proj_rows, _d] = proj_features.dims();
    assert_eq!(
        rows, proj_rows,
        "simgcd_loss: {rows} rows of logits but {proj_rows} rows of projections"
    );
    let [n] = labels.dims();
    let v = n_views(rows, n, "simgcd_loss");
    assert!(v >= 2, "simgcd_loss: needs at least two views, got {v}");
    let labelled = labelled_mask.float();

    let cls = labelled_cross_entropy(
        student_logits.clone().div_scalar(cfg.student_temp),
        labels.clone(),
        labelled.clone(),
    );
    let distill = distill_loss(
        student_logits.clone(),
        v,
        cfg.student_temp,
        cfg.teacher_temperature(epoch),
    );
    let entropy = mean_entropy_regularizer(student_logits, cfg.student_temp);
    let cluster = distill.clone() + entropy.clone().mul_scalar(cfg.memax_weight);
    let (con, sup_con) = representation_terms(
        proj_features,
        labels,
        labelled,
        v,
        cfg.sup_con_temp,
        cfg.sup_con_temp,
        cfg.unsup_con_temp,
    );
    let w = cfg.sup_weight;
    let total = (cluster.clone() + con.clone()).mul_scalar(1.0 - w)
        + (cls.clone() + sup_con.clone()).mul_scalar(w);
    SimGcdLossParts {
        total,
        cls,
        cluster,
        distill,
        entropy,
        con,
        sup_con,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{assert_scalar, assert_tensor, bools, get, ints, num, tensor};
    use burn::backend::{Autodiff, Flex};
    use burn::tensor::{TensorData, Tolerance};

    type TB = Flex;
    type AD = Autodiff<Flex>;

    #[test]
    fn config_defaults_follow_the_official_scripts() {
        let cfg = SimGcdConfig::new();
        assert_eq!(
            (cfg.sup_weight, cfg.memax_weight, cfg.student_temp),
            (0.35, 2.0, 0.1)
        );
        assert_eq!(
            (
                cfg.teacher_temp,
                cfg.teacher_temp_final,
                cfg.warmup_teacher_epochs
            ),
            (0.07, 0.04, 30)
        );
        assert_eq!((cfg.sup_con_temp, cfg.unsup_con_temp), (0.07, 1.0));
        assert!(cfg.validate().is_ok());
        assert_eq!(SimGcdConfig::official_memax_weight("cifar100"), Some(4.0));
        assert_eq!(SimGcdConfig::official_memax_weight("cub"), Some(2.0));
        assert_eq!(SimGcdConfig::official_memax_weight("scars"), Some(1.0));
        assert_eq!(SimGcdConfig::official_memax_weight("mnist"), None);
        assert!(SimGcdConfig::new().with_sup_weight(1.5).validate().is_err());
        assert!(SimGcdConfig::new()
            .with_student_temp(0.0)
            .validate()
            .is_err());
    }

    #[test]
    fn teacher_temperature_is_numpys_linspace_then_constant() {
        let cfg = SimGcdConfig::new();
        let epochs = get("simgcd/teacher_epochs").as_array().expect("array");
        let temps = get("simgcd/teacher_temps").as_array().expect("array");
        for (e, t) in epochs.iter().zip(temps) {
            let e = e.as_u64().expect("epoch") as usize;
            let t = t.as_f64().expect("temp");
            assert!(
                (cfg.teacher_temperature(e) - t).abs() < 1e-15,
                "epoch {e}: {} vs {t}",
                cfg.teacher_temperature(e)
            );
        }
        assert_eq!(cfg.teacher_temperature(10_000), 0.04);
        // No warm-up: the final temperature from epoch 0.
        assert_eq!(teacher_temperature(0, 0.07, 0.04, 0), 0.04);
    }

    #[test]
    fn distill_and_entropy_match_reference() {
        let device = Default::default();
        let z = tensor::<TB, 2>("simgcd/logits", &device);
        let temp = SimGcdConfig::new().teacher_temperature(10);
        assert_scalar(
            distill_loss(z.clone(), 2, 0.1, temp),
            "simgcd/distill_epoch10",
        );
        assert_scalar(
            mean_entropy_regularizer(z.clone(), 0.1),
            "simgcd/memax_t0.1",
        );
        assert_scalar(mean_entropy_regularizer(z, 1.0), "simgcd/memax_t1");
    }

    #[test]
    fn mean_entropy_regularizer_by_hand() {
        let device = Default::default();
        // Two rows predicting opposite classes: the mean is uniform, so the term is 0.
        let z = Tensor::<TB, 2>::from_floats([[5.0, -5.0], [-5.0, 5.0]], &device);
        assert!(mean_entropy_regularizer(z, 1.0).into_scalar().abs() < 1e-6);
        // Every row certain of class 0 (K = 3): mean ≈ one-hot, term ≈ log 3; a class with
        // probability ~e^-2000 must not give NaN.
        let z = Tensor::<TB, 2>::from_floats([[100.0, -100.0, -100.0]; 2], &device);
        let v = mean_entropy_regularizer(z, 0.1).into_scalar();
        assert!((v - 3f32.ln()).abs() < 1e-5, "{v}");
        // K = 1: the only class has probability 1, log 1 − 0 = 0.
        let z = Tensor::<TB, 2>::from_floats([[0.3], [-2.0]], &device);
        assert_eq!(mean_entropy_regularizer(z, 0.1).into_scalar(), 0.0);
    }

    #[test]
    fn distill_teacher_is_detached() {
        // The gradient of distill_loss(z) equals that of the same loss with the teacher
        // built from a constant copy of z: nothing flows through the teacher.
        let device = Default::default();
        let temp = 0.05;
        let z = tensor::<AD, 2>("simgcd/logits", &device).require_grad();
        let g1 = z
            .grad(&distill_loss(z.clone(), 2, 0.1, temp).backward())
            .expect("grad");
        let z2 = tensor::<AD, 2>("simgcd/logits", &device).require_grad();
        let constant = tensor::<AD, 2>("simgcd/logits", &device);
        let teacher = softmax(constant.div_scalar(temp), 1);
        let g2 = z2
            .grad(&cross_view_distillation(z2.clone(), teacher, 2, 0.1).backward())
            .expect("grad");
        g1.into_data()
            .assert_approx_eq::<f32>(&g2.into_data(), Tolerance::rel_abs(1e-6, 1e-7));
        // And a teacher that requires grad receives none.
        let z3 = tensor::<AD, 2>("simgcd/logits", &device).require_grad();
        let leaf = tensor::<AD, 2>("simgcd/logits", &device).require_grad();
        let t3 = softmax(leaf.clone(), 1);
        let grads = cross_view_distillation(z3, t3, 2, 0.1).backward();
        assert!(leaf.grad(&grads).is_none());
    }

    #[test]
    fn distill_averages_over_ordered_view_pairs() {
        // Three views, K = 2, one sample per view, by hand: teacher of view t is q_t, the
        // loss is the mean over the 6 ordered pairs (t, s ≠ t) of CE(q_t, softmax(z_s/τ)).
        let device = Default::default();
        let z = Tensor::<TB, 2>::from_floats([[0.2, -0.1], [0.0, 0.3], [-0.4, 0.1]], &device);
        let q = Tensor::<TB, 2>::from_floats([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]], &device);
        let got = cross_view_distillation(z, q, 3, 0.1).into_scalar();
        let zs = [[0.2f64, -0.1], [0.0, 0.3], [-0.4, 0.1]];
        let qs = [[0.9f64, 0.1], [0.5, 0.5], [0.2, 0.8]];
        let mut sum = 0.0;
        for t in 0..3 {
            for s in (0..3).filter(|&s| s != t) {
                let (a, b) = (zs[s][0] / 0.1, zs[s][1] / 0.1);
                let lse = a.max(b) + ((a - a.max(b)).exp() + (b - a.max(b)).exp()).ln();
                sum += -(qs[t][0] * (a - lse) + qs[t][1] * (b - lse));
            }
        }
        assert!(
            (f64::from(got) - sum / 6.0).abs() < 1e-5,
            "{got} vs {}",
            sum / 6.0
        );
    }

    fn check_simgcd_case(epoch: usize, memax: f64) {
        let key = format!("simgcd/epoch{epoch}_memax{}", memax as i64);
        let device = Default::default();
        let z = tensor::<AD, 2>("simgcd/logits", &device).require_grad();
        let p = tensor::<AD, 2>("simgcd/proj", &device).require_grad();
        let y = ints::<AD>("simgcd/labels", &device);
        let m = bools::<AD>("simgcd/mask_lab", &device);
        let cfg = SimGcdConfig::new().with_memax_weight(memax);
        let parts = simgcd_loss(z.clone(), p.clone(), y, m, epoch, &cfg);
        for (name, t) in [
            ("cls", &parts.cls),
            ("cluster", &parts.cluster),
            ("distill", &parts.distill),
            ("entropy", &parts.entropy),
            ("con", &parts.con),
            ("sup_con", &parts.sup_con),
            ("total", &parts.total),
        ] {
            assert_scalar(t.clone(), &format!("{key}/{name}"));
        }
        let grads = parts.total.backward();
        assert_tensor(z.grad(&grads).expect("grad"), &format!("{key}/grad_logits"));
        assert_tensor(p.grad(&grads).expect("grad"), &format!("{key}/grad_proj"));
    }

    #[test]
    fn simgcd_loss_matches_reference_terms_and_gradients() {
        // make_gcd_ossl_refs.py case_simgcd(): torch autograd through train.py's formulas
        // (teacher = student_out.detach()).
        check_simgcd_case(10, 2.0);
        check_simgcd_case(40, 4.0);
    }

    #[test]
    fn simgcd_loss_single_sample() {
        // N = 1, two views: InfoNCE has one column (the positive) and SupCon one positive and
        // nothing else, so both are 0; the rest stays finite.
        let device = Default::default();
        let z = Tensor::<TB, 2>::from_floats([[0.9, -0.2, 0.1], [0.7, 0.0, -0.3]], &device);
        let p = Tensor::<TB, 2>::from_floats([[1.0, 2.0], [2.0, -1.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([0], &device);
        let m = Tensor::<TB, 1, Bool>::from_data(TensorData::from([true]), &device);
        let parts = simgcd_loss(z, p, y, m, 0, &SimGcdConfig::new());
        assert!(parts.con.into_scalar().abs() < 1e-6);
        assert!(parts.sup_con.into_scalar().abs() < 1e-6);
        assert!(parts.total.into_scalar().is_finite());
    }

    #[test]
    fn simgcd_loss_without_labelled_samples_is_defined() {
        let device = Default::default();
        let z = tensor::<TB, 2>("simgcd/logits", &device);
        let p = tensor::<TB, 2>("simgcd/proj", &device);
        let y = Tensor::<TB, 1, Int>::from_ints([-1, -1, -1, -1, -1, -1], &device);
        let m = Tensor::<TB, 1, Bool>::from_data(TensorData::from([false; 6]), &device);
        let cfg = SimGcdConfig::new();
        let parts = simgcd_loss(z, p, y, m, 10, &cfg);
        assert_eq!(parts.cls.clone().into_scalar(), 0.0);
        assert_eq!(parts.sup_con.clone().into_scalar(), 0.0);
        // The unsupervised terms do not depend on the labels.
        assert_scalar(parts.distill, "simgcd/distill_epoch10");
        let expected =
            0.65 * (num("simgcd/epoch10_memax2/cluster") + num("simgcd/epoch10_memax2/con"));
        let total = f64::from(parts.total.into_scalar());
        assert!((total - expected).abs() < 1e-5, "{total} vs {expected}");
    }
}
