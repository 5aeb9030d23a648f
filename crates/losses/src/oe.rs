//! Outlier Exposure (OE) and its energy-margin variant.
//!
//! - **OE**: Hendrycks, Mazeika, Dietterich, *Deep Anomaly Detection with Outlier
//!   Exposure*, ICLR 2019. Reference: hendrycks/outlier-exposure `CIFAR/oe_tune.py`
//!   (fine-tuning) and `CIFAR/oe_scratch.py`; the loss line is
//!   `loss = F.cross_entropy(x[:len(in_set[0])], target)`
//!   `loss += 0.5 * -(x[len(in_set[0]):].mean(1) - torch.logsumexp(x[len(in_set[0]):], dim=1)).mean()`,
//!   i.e. cross-entropy on ID rows plus λ = 0.5 times the cross-entropy from the softmax of
//!   each outlier row to the uniform distribution ([`uniform_cross_entropy`]).
//! - **Energy OE**: Liu, Wang, Owens, Li, *Energy-based Out-of-distribution Detection*,
//!   NeurIPS 2020. Reference: wetliu/energy_ood `CIFAR/train.py` (`--score energy`):
//!   `Ec_in = -torch.logsumexp(x[:n_in], dim=1)`, `Ec_out = -torch.logsumexp(x[n_in:], dim=1)`,
//!   `loss += 0.1*(torch.pow(F.relu(Ec_in-args.m_in), 2).mean() + torch.pow(F.relu(args.m_out-Ec_out), 2).mean())`
//!   ([`energy_margin`], weighted by [`EnergyOeConfig::weight`]).
//!
//! # One forward pass for ID and outliers
//! Both references build `data = torch.cat((in_set[0], out_set[0]), 0)` and call the network
//! **once**, so BatchNorm normalises ID and outlier images with shared batch statistics
//! (and updates its running statistics with the mixture). OpenOOD's first port
//! (`openood/trainers/oe_trainer.py`, e.g. commit `7385b96`) called `self.net` on the ID
//! batch and on the outlier batch separately, which cost most of OE's gain; its later
//! version concatenates as the reference does. [`oe_loss`] and [`energy_oe_loss`] therefore
//! take the logits of the
//! *concatenated* batch — the first `labels_id.dims()[0]` rows are ID, the rest outliers —
//! and split them here, so a caller cannot forward the two halves separately by accident.
//! (MixOE is different: its reference forwards the ID batch and the mixed batch separately;
//! see [`crate::mixoe`].)

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu};

use crate::ce::cross_entropy;
use crate::ops::logsumexp;
use crate::{check_non_negative, LossConfigError};

/// Outlier Exposure settings (Hendrycks et al., ICLR 2019).
#[derive(Config, Debug)]
pub struct OutlierExposureConfig {
    /// Weight λ of the outlier term: `total = CE(ID) + λ·uniform_CE(outliers)`.
    /// 0.5 for the vision experiments (hendrycks/outlier-exposure `CIFAR/oe_tune.py` and
    /// `CIFAR/oe_scratch.py`: `loss += 0.5 * ...`; the paper uses 1.0 for its NLP experiments).
    #[config(default = 0.5)]
    pub lambda: f32,
}

impl OutlierExposureConfig {
    /// Checks that `lambda` is finite and non-negative.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_non_negative("lambda", self.lambda)
    }
}

/// Energy-bounded OE settings (Liu et al., NeurIPS 2020), CIFAR-10 official values from
/// wetliu/energy_ood `CIFAR/run.sh` (`energy_ft 0`: `m_in=-23`, `m_out=-5`) and the fixed
/// weight `0.1` in `CIFAR/train.py`.
///
/// For CIFAR-100 the same `run.sh` (`energy_ft 1`) uses `m_in = -27`, `m_out = -5`:
/// `EnergyOeConfig::new().with_m_in(-27.0)`. (`train.py`'s own argparse defaults,
/// `-25`/`-7`, are not what the published runs used.)
#[derive(Config, Debug)]
pub struct EnergyOeConfig {
    /// Weight of the margin term: `total = CE(ID) + weight·energy_margin` (`0.1*(...)` in
    /// `CIFAR/train.py`).
    #[config(default = 0.1)]
    pub weight: f32,
    /// ID margin: ID energies above `m_in` are penalised, `relu(E_in − m_in)²`.
    /// CIFAR-10: −23 (CIFAR-100: −27).
    #[config(default = -23.0)]
    pub m_in: f32,
    /// Outlier margin: outlier energies below `m_out` are penalised, `relu(m_out − E_out)²`.
    /// −5 for both CIFAR-10 and CIFAR-100.
    #[config(default = -5.0)]
    pub m_out: f32,
}

impl EnergyOeConfig {
    /// Checks that `weight` is finite and non-negative, both margins are finite and
    /// `m_in < m_out`.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_non_negative("weight", self.weight)?;
        for (field, value) in [("m_in", self.m_in), ("m_out", self.m_out)] {
            if !value.is_finite() {
                return Err(LossConfigError::Invalid {
                    field,
                    value,
                    expected: "a finite number",
                });
            }
        }
        if self.m_in < self.m_out {
            Ok(())
        } else {
            Err(LossConfigError::MarginOrder {
                m_in: self.m_in,
                m_out: self.m_out,
            })
        }
    }
}

/// The terms of [`oe_loss`], each of shape `[1]` and still in the autodiff graph.
#[derive(Debug, Clone)]
pub struct OeLoss<B: Backend> {
    /// `ce + lambda·oe`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Cross-entropy of the ID rows against their labels.
    pub ce: Tensor<B, 1>,
    /// [`uniform_cross_entropy`] of the outlier rows (unweighted).
    pub oe: Tensor<B, 1>,
}

/// The terms of [`energy_oe_loss`], each of shape `[1]` and still in the autodiff graph.
#[derive(Debug, Clone)]
pub struct EnergyOeLoss<B: Backend> {
    /// `ce + weight·margin`: the tensor to call `backward()` on.
    pub total: Tensor<B, 1>,
    /// Cross-entropy of the ID rows against their labels.
    pub ce: Tensor<B, 1>,
    /// [`energy_margin`] of the ID and outlier rows (unweighted).
    pub margin: Tensor<B, 1>,
}

/// Batch mean of the cross-entropy from `softmax(z)` to the uniform distribution over the
/// `k` classes: per row `−(1/k)·Σ_j log softmax(z)_j = logsumexp(z) − mean(z)`, the
/// reference's `-(x.mean(1) - torch.logsumexp(x, dim=1)).mean()`. Its minimum, `ln k`, is
/// reached by constant rows. Its gradient w.r.t. `z` is `(softmax(z) − 1/k)/n`.
///
/// # Shapes
/// - `logits`: `[n, k]` -> `[1]`
pub fn uniform_cross_entropy<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    log_softmax(logits, 1).mean_dim(1).neg().mean()
}

/// Per-sample free energy `E(z) = −T·logsumexp(z/T)` (Liu et al., eq. 1 with the logits as
/// `−E(x, y)`). Lower energy = more in-distribution; the OOD *score* is `−E`.
///
/// # Shapes
/// - `logits`: `[n, k]` -> `[n]`
pub fn energy<B: Backend>(logits: Tensor<B, 2>, temperature: f32) -> Tensor<B, 1> {
    logsumexp(logits.div_scalar(temperature)).mul_scalar(-temperature)
}

/// The energy-margin bracket of Liu et al. (eq. 6), unweighted and with `T = 1`:
/// `mean(relu(E_in − m_in)²) + mean(relu(m_out − E_out)²)`, each mean over its own batch
/// (the reference's `torch.pow(F.relu(Ec_in-args.m_in), 2).mean() +
/// torch.pow(F.relu(args.m_out-Ec_out), 2).mean()`).
///
/// # Shapes
/// - `logits_id`: `[n_id, k]`, `logits_ood`: `[n_ood, k]` -> `[1]`
pub fn energy_margin<B: Backend>(
    logits_id: Tensor<B, 2>,
    logits_ood: Tensor<B, 2>,
    m_in: f32,
    m_out: f32,
) -> Tensor<B, 1> {
    let e_in = energy(logits_id, 1.0);
    let e_out = energy(logits_ood, 1.0);
    let id_term = relu(e_in.sub_scalar(m_in)).square().mean();
    let ood_term = relu(e_out.neg().add_scalar(m_out)).square().mean();
    id_term + ood_term
}

/// Splits the logits of a concatenated `[ID; outliers]` batch after its first `n_id` rows.
///
/// # Panics
/// If there is not at least one ID row and one outlier row.
fn split_id_ood<B: Backend>(
    logits_all: Tensor<B, 2>,
    n_id: usize,
    caller: &str,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let [n_all, _k] = logits_all.dims();
    assert!(
        n_id > 0 && n_id < n_all,
        "{caller}: logits_all has {n_all} rows and labels_id {n_id} entries; the batch must be \
         [ID rows; outlier rows] with at least one of each, forwarded together in one pass"
    );
    let id = logits_all.clone().narrow(0, 0, n_id);
    let ood = logits_all.narrow(0, n_id, n_all - n_id);
    (id, ood)
}

/// Outlier Exposure loss on the logits of **one** forward pass over the concatenated batch
/// `torch.cat((x_id, x_outliers), 0)` (see the module doc for why):
/// `total = CE(logits_all[..n_id], labels_id) + λ·uniform_CE(logits_all[n_id..])`,
/// `n_id = labels_id.dims()[0]`.
///
/// # Shapes
/// - `logits_all`: `[n_id + n_ood, k]`, `labels_id`: `[n_id]` -> terms of shape `[1]`
///
/// # Panics
/// If `logits_all` does not have more rows than `labels_id` has entries, or `labels_id` is
/// empty.
pub fn oe_loss<B: Backend>(
    logits_all: Tensor<B, 2>,
    labels_id: Tensor<B, 1, Int>,
    cfg: &OutlierExposureConfig,
) -> OeLoss<B> {
    let [n_id] = labels_id.dims();
    let (id, ood) = split_id_ood(logits_all, n_id, "oe_loss");
    let ce = cross_entropy(id, labels_id, 0.0);
    let oe = uniform_cross_entropy(ood);
    let total = ce.clone() + oe.clone().mul_scalar(cfg.lambda);
    OeLoss { total, ce, oe }
}

/// Energy-bounded OE loss (Liu et al., eq. 5) on the logits of **one** forward pass over the
/// concatenated batch: `total = CE(logits_all[..n_id], labels_id) + weight·energy_margin(
/// logits_all[..n_id], logits_all[n_id..], m_in, m_out)`, `n_id = labels_id.dims()[0]`.
///
/// # Shapes
/// - `logits_all`: `[n_id + n_ood, k]`, `labels_id`: `[n_id]` -> terms of shape `[1]`
///
/// # Panics
/// If `logits_all` does not have more rows than `labels_id` has entries, or `labels_id` is
/// empty.
pub fn energy_oe_loss<B: Backend>(
    logits_all: Tensor<B, 2>,
    labels_id: Tensor<B, 1, Int>,
    cfg: &EnergyOeConfig,
) -> EnergyOeLoss<B> {
    let [n_id] = labels_id.dims();
    let (id, ood) = split_id_ood(logits_all, n_id, "energy_oe_loss");
    let ce = cross_entropy(id.clone(), labels_id, 0.0);
    let margin = energy_margin(id, ood, cfg.m_in, cfg.m_out);
    let total = ce.clone() + margin.clone().mul_scalar(cfg.weight);
    EnergyOeLoss { total, ce, margin }
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

    fn t2<const N: usize>(rows: [[f32; 3]; N]) -> Tensor<TB, 2> {
        Tensor::from_floats(rows, &Default::default())
    }

    // Inputs of refs_oe() in tests/fixtures/make_loss_refs.py.
    const Z_OOD: [[f32; 3]; 3] = [[0.2, -1.0, 3.0], [1.0, 1.0, 1.0], [-2.0, 0.5, 0.1]];
    const Z_ID: [[f32; 3]; 2] = [[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]];
    const Z_IN_INACTIVE: [[f32; 3]; 2] = [[30.0, 0.0, 0.0], [0.0, 25.0, 1.0]];
    const Z_OUT_ACTIVE: [[f32; 3]; 2] = [[10.0, 0.0, 0.0], [0.0, 8.0, 8.0]];
    const Z_OUT_INACTIVE: [[f32; 3]; 2] = [[0.2, -1.0, 3.0], [1.0, 1.0, 1.0]];

    #[test]
    fn configs_default_to_the_official_values() {
        let oe = OutlierExposureConfig::new();
        assert_eq!(oe.lambda, 0.5);
        assert!(oe.validate().is_ok());
        let en = EnergyOeConfig::new();
        assert_eq!((en.weight, en.m_in, en.m_out), (0.1, -23.0, -5.0));
        assert!(en.validate().is_ok());
        assert!(EnergyOeConfig::new().with_m_in(-27.0).validate().is_ok());
        assert_eq!(
            EnergyOeConfig::new().with_m_in(-4.0).validate(),
            Err(LossConfigError::MarginOrder {
                m_in: -4.0,
                m_out: -5.0
            })
        );
        assert!(OutlierExposureConfig::new()
            .with_lambda(-1.0)
            .validate()
            .is_err());
    }

    #[test]
    fn uniform_cross_entropy_matches_reference() {
        // make_loss_refs.py refs_oe(): uniform_ce(z_ood) = 1.656361985.
        close(scalar(uniform_cross_entropy(t2(Z_OOD))), 1.656361985);
        // By hand: a constant row is already uniform, so its value is ln k.
        close(
            scalar(uniform_cross_entropy(t2([[1.0, 1.0, 1.0]]))),
            3f64.ln(),
        );
    }

    #[test]
    fn uniform_cross_entropy_is_stable_for_large_logits() {
        // make_loss_refs.py refs_oe(): "uniform_ce large" = mean(1000, ln 3).
        let v = scalar(uniform_cross_entropy(t2([
            [1000.0, 0.0, -1000.0],
            [1000.0, 1000.0, 1000.0],
        ])));
        assert!(v.is_finite());
        close(v, 500.549306144);
    }

    #[test]
    fn uniform_cross_entropy_gradient_is_softmax_minus_uniform_over_n() {
        // Analytic gradient (softmax(z) − 1/k)/n; numbers: make_loss_refs.py refs_oe(),
        // "uniform_ce grad".
        type AD = Autodiff<Flex>;
        let z = Tensor::<AD, 2>::from_floats(Z_OOD, &Default::default()).require_grad();
        let grads = uniform_cross_entropy(z.clone()).backward();
        // f64 literals keep numpy's digits; assert_approx_eq::<f32> compares as f32.
        let expected = TensorData::from([
            [-9.232736715e-02f64, -1.054535562e-01, 1.977809233e-01],
            [0.0, 0.0, 0.0],
            [-9.549733147e-02, 7.910366506e-02, 1.639366641e-02],
        ]);
        z.grad(&grads)
            .expect("logits require grad")
            .into_data()
            .assert_approx_eq::<f32>(&expected, Tolerance::rel_abs(1e-4, 1e-6));
    }

    #[test]
    fn energy_matches_reference_and_temperature() {
        // make_loss_refs.py refs_oe(): energy(z_ood, 1.0) and energy(z_ood, 2.0).
        let tol = Tolerance::rel_abs(1e-5, 1e-6);
        energy(t2(Z_OOD), 1.0).into_data().assert_approx_eq::<f32>(
            &TensorData::from([-3.076151178f64, -2.098612289, -1.060989156]),
            tol,
        );
        energy(t2(Z_OOD), 2.0).into_data().assert_approx_eq::<f32>(
            &TensorData::from([-3.646965398f64, -3.197224577, -1.988854722]),
            tol,
        );
        // Large logits: −logsumexp([1000, 0, −1000]) = −1000, −logsumexp(1000·1) = −1000 − ln 3.
        let big = energy(t2([[1000.0, 0.0, -1000.0], [1000.0, 1000.0, 1000.0]]), 1.0);
        big.into_data()
            .assert_approx_eq::<f32>(&TensorData::from([-1000.0f64, -1001.098612289]), tol);
    }

    #[test]
    fn energy_margin_branches() {
        // make_loss_refs.py refs_oe(), margins m_in = −23, m_out = −5.
        let (m_in, m_out) = (-23.0, -5.0);
        // Both inactive: E_in = [−30, −25] < m_in and E_out = [−3.08, −2.10] > m_out.
        let zero = scalar(energy_margin(
            t2(Z_IN_INACTIVE),
            t2(Z_OUT_INACTIVE),
            m_in,
            m_out,
        ));
        assert_eq!(zero, 0.0);
        close(
            scalar(energy_margin(t2(Z_ID), t2(Z_OUT_ACTIVE), m_in, m_out)),
            438.146646661,
        );
        close(
            scalar(energy_margin(t2(Z_ID), t2(Z_OUT_INACTIVE), m_in, m_out)),
            418.825905211,
        );
        close(
            scalar(energy_margin(
                t2(Z_IN_INACTIVE),
                t2(Z_OUT_ACTIVE),
                m_in,
                m_out,
            )),
            19.320741450,
        );
        // One active and one inactive ID row: the mean still divides by both rows.
        close(
            scalar(energy_margin(
                t2([[2.0, 1.0, 0.1], [30.0, 0.0, 0.0]]),
                t2(Z_OUT_INACTIVE),
                m_in,
                m_out,
            )),
            211.829326675,
        );
        // By hand: logits [[0, 0]] have E = −ln 2; with m_in = −1 the ID term is
        // (1 − ln 2)²; logits [[0, 0]] as outliers with m_out = 0 give (ln 2)².
        let z = Tensor::<TB, 2>::from_floats([[0.0, 0.0]], &Default::default());
        let ln2 = 2f64.ln();
        close(
            scalar(energy_margin(z.clone(), z, -1.0, 0.0)),
            (1.0 - ln2).powi(2) + ln2.powi(2),
        );
    }

    /// `[Z_ID; Z_OOD]`: 2 ID rows followed by 3 outlier rows.
    fn concatenated() -> (Tensor<TB, 2>, Tensor<TB, 1, Int>) {
        let all = Tensor::cat(vec![t2(Z_ID), t2(Z_OOD)], 0);
        let labels = Tensor::from_ints([0, 1], &Default::default());
        (all, labels)
    }

    #[test]
    fn oe_loss_on_concatenated_batch_equals_the_separate_terms() {
        let (all, labels) = concatenated();
        let cfg = OutlierExposureConfig::new();
        let out = oe_loss(all.clone(), labels.clone(), &cfg);
        // The same logits, sliced by hand.
        let ce = scalar(cross_entropy(all.clone().narrow(0, 0, 2), labels, 0.0));
        let oe = scalar(uniform_cross_entropy(all.narrow(0, 2, 3)));
        let (total, ce_term, oe_term) = (scalar(out.total), scalar(out.ce), scalar(out.oe));
        assert_eq!(ce_term, ce);
        assert_eq!(oe_term, oe);
        close(total, f64::from(ce + 0.5 * oe));
        // make_loss_refs.py refs_oe(): "oe_loss ce/oe/total".
        close(ce_term, 0.285104112);
        close(oe_term, 1.656361985);
        close(total, 1.113285104);
    }

    #[test]
    fn energy_oe_loss_on_concatenated_batch() {
        let (all, labels) = concatenated();
        let out = energy_oe_loss(all.clone(), labels.clone(), &EnergyOeConfig::new());
        let margin = scalar(energy_margin(
            all.clone().narrow(0, 0, 2),
            all.narrow(0, 2, 3),
            -23.0,
            -5.0,
        ));
        let (total, ce, m) = (scalar(out.total), scalar(out.ce), scalar(out.margin));
        assert_eq!(m, margin);
        // make_loss_refs.py refs_oe(): "energy_oe margin/total".
        close(ce, 0.285104112);
        close(m, 418.825905211);
        close(total, 42.167694633);
    }

    #[test]
    #[should_panic(expected = "at least one of each")]
    fn oe_loss_rejects_a_batch_without_outliers() {
        let device = Default::default();
        let logits = t2(Z_ID);
        let labels = Tensor::<TB, 1, Int>::from_ints([0, 1], &device);
        let _ = oe_loss(logits, labels, &OutlierExposureConfig::new());
    }
}
