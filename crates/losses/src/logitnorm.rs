//! LogitNorm: cross-entropy on L2-normalised logits.
//!
//! Wei, Xie, Cheng, Feng, An, Li, *Mitigating Neural Network Overconfidence with Logit
//! Normalization*, ICML 2022. Reference: hongxin001/logitnorm_ood
//! `common/loss_function.py` (`LogitNormLoss.forward`):
//!
//! `norms = torch.norm(x, p=2, dim=-1, keepdim=True) + 1e-7`
//! `logit_norm = torch.div(x, norms) / self.t`
//! `return F.cross_entropy(logit_norm, target)`
//!
//! i.e. `loss = mean_i CE(z_i / (τ·(‖z_i‖₂ + 1e-7)), y_i)` ([`logitnorm_loss`]). Only the
//! direction of each logit vector enters the loss, so training cannot lower it by growing
//! the logits' norm, which is what makes plain cross-entropy overconfident (the paper's
//! motivation); `1/τ` is the fixed norm the softmax sees. The loss is invariant to scaling
//! a row by any positive constant, up to the `1e-7`.
//!
//! The normalisation is a training-time device only: at test time the network's raw logits
//! are scored (MSP, energy, ...) as for any other classifier.
//!
//! # Zero rows
//! `torch.norm`'s backward pass sets the gradient to 0 where the norm is 0, so an all-zero
//! logit row gets the finite gradient `(softmax(0) − onehot)/(n·τ·1e-7)` from the division
//! alone. A plain `sqrt` would give `0·∞ = NaN` there; the squared norm is therefore clamped
//! at `1e-30` before the square root (a change of at most `1e-15` in a norm that the `1e-7`
//! already dominates, and a zero norm gradient exactly where torch's is zero). The clamp
//! assumes an f32 (or wider) float element type.

use burn::prelude::*;

use crate::ce::cross_entropy;
use crate::common::check_positive;
use crate::LossConfigError;

/// Added to each row's L2 norm before dividing, as the reference's `+ 1e-7`.
const NORM_EPS: f32 = 1e-7;

/// Lower bound of the squared norm under the square root (see the module doc, *Zero rows*).
const SQUARED_NORM_FLOOR: f32 = 1e-30;

/// LogitNorm settings (Wei et al., ICML 2022).
#[derive(Config, Debug)]
pub struct LogitNormConfig {
    /// Temperature τ > 0: the normalised logits `z/‖z‖` are divided by τ, so `1/τ` is the
    /// norm of what the softmax sees. 0.04 is the CIFAR-10 value given for the paper and
    /// the one OpenOOD trains with (`configs/pipelines/train/train_logitnorm.yml`,
    /// `tau: 0.04`). The official repository takes it from the command line: `train.py
    /// --temp` defaults to 1.0 (plain normalisation) and its README example passes
    /// `--temp 0.01`; it ships no CIFAR-100 run script, so no CIFAR-100 value is confirmed
    /// here.
    #[config(default = 0.04)]
    pub tau: f32,
}

impl LogitNormConfig {
    /// Checks that `tau` is finite and `> 0`.
    pub fn validate(&self) -> Result<(), LossConfigError> {
        check_positive("tau", f64::from(self.tau))
    }
}

/// Each row of `logits` divided by `τ·(‖row‖₂ + 1e-7)`: the reference's `logit_norm`.
///
/// # Shapes
/// - `logits`: `[n, k]` -> `[n, k]`
fn normalize_logits<B: Backend>(logits: Tensor<B, 2>, tau: f32) -> Tensor<B, 2> {
    let norms = logits
        .clone()
        .square()
        .sum_dim(1)
        .clamp_min(SQUARED_NORM_FLOOR)
        .sqrt()
        .add_scalar(NORM_EPS); // [n, 1]
    logits.div(norms).div_scalar(tau)
}

/// The LogitNorm loss: batch-mean cross-entropy of the L2-normalised logits divided by
/// `cfg.tau`, `mean_i CE(z_i / (τ·(‖z_i‖₂ + 1e-7)), y_i)`, as the reference
/// `LogitNormLoss.forward` (see the module doc). Plain cross-entropy is [`cross_entropy`]
/// with no label smoothing, as the reference's `F.cross_entropy`.
///
/// # Shapes
/// - `logits`: `[n, k]`, `labels`: `[n]` (values in `0..k`) -> `[1]`
///
/// # Panics
/// If `labels` does not have one entry per row of `logits`.
pub fn logitnorm_loss<B: Backend>(
    logits: Tensor<B, 2>,
    labels: Tensor<B, 1, Int>,
    cfg: &LogitNormConfig,
) -> Tensor<B, 1> {
    cross_entropy(normalize_logits(logits, cfg.tau), labels, 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refs::{array, ints, num, tensor};
    use burn::backend::{Autodiff, Flex};

    type TB = Flex;
    type AD = Autodiff<Flex>;

    /// The cases and temperatures of `tests/fixtures/make_logitnorm_refs.py`.
    const CASES: [&str; 4] = ["hand", "random", "zero_row", "two_class"];
    const TAUS: [(f32, &str); 2] = [(0.04, "tau0.04"), (1.0, "tau1")];

    fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
        assert_eq!(t.dims(), [1], "a loss must have shape [1]");
        t.into_scalar().elem()
    }

    fn cfg(tau: f32) -> LogitNormConfig {
        LogitNormConfig::new().with_tau(tau)
    }

    /// `|actual − expected| / |expected|`.
    fn rel(actual: f64, expected: f64) -> f64 {
        (actual - expected).abs() / expected.abs()
    }

    #[test]
    fn config_default_and_validate() {
        let c = LogitNormConfig::new();
        assert_eq!(c.tau, 0.04);
        assert!(c.validate().is_ok());
        assert!(cfg(1.0).validate().is_ok());
        for bad in [0.0, -0.04, f32::NAN, f32::INFINITY] {
            let err = cfg(bad).validate().expect_err("tau must be finite and > 0");
            assert!(
                matches!(err, LossConfigError::Invalid { field: "tau", .. }),
                "{err:?}"
            );
        }
    }

    /// Relative tolerance of a loss computed in f32: 1e-5, or what f32 allows when the
    /// normalised logits are as large as `1/τ`. They carry an absolute rounding error of a
    /// few `ε_f32/τ`, and a row the network already classifies confidently has
    /// `CE ≈ Σ_j e^{−gap_j}`, so its loss is known only to a few `ε_f32/τ` relative
    /// (`2.6e-5` for the `hand` case at τ = 0.04 — torch's own float32 forward pass of the
    /// official class is off by the same `2.64e-5` from the float64 fixture).
    fn loss_tolerance(tau: f32) -> f64 {
        1e-5f64.max(16.0 * f64::from(f32::EPSILON) / f64::from(tau))
    }

    /// Absolute error allowed on the gradient of row `i` on top of 1e-5 relative: a few f32
    /// rounding units of `softmax − onehot`, times the Jacobian's scale `1/(τ·(‖z_i‖ + 1e-7))`,
    /// over `n`. When a row is saturated its `softmax − onehot` is below `ε_f32` and its
    /// gradient is pure rounding, in torch's float32 as here.
    fn grad_floor(tau: f32, row_norm: f64, n: usize) -> f64 {
        4.0 * f64::from(f32::EPSILON) / (f64::from(tau) * (row_norm + 1e-7) * n as f64)
    }

    /// Loss and logits gradient (through `Autodiff`) against the float64 torch fixture of
    /// the official formula: 1e-5 relative, widened only by the f32 limits above. Prints the
    /// largest differences (`--nocapture`).
    #[test]
    fn matches_torch_reference() {
        let device = Default::default();
        let (mut max_loss_rel, mut max_grad_rel_to_row) = (0f64, 0f64);
        for case in CASES {
            let logits_path = format!("logitnorm/{case}/logits");
            let labels_path = format!("logitnorm/{case}/labels");
            let (logits, shape) = array(&logits_path);
            let (n, k) = (shape[0], shape[1]);
            for (tau, key) in TAUS {
                let path = format!("logitnorm/{case}/{key}");
                let z = tensor::<TB, 2>(&logits_path, &device);
                let y = ints::<TB>(&labels_path, &device);
                let loss = scalar(logitnorm_loss(z, y, &cfg(tau)));
                let expected = num(&format!("{path}/loss"));
                let r = rel(loss, expected);
                assert!(
                    r <= loss_tolerance(tau),
                    "{path}/loss: got {loss}, expected {expected} (relative {r:.2e})"
                );
                max_loss_rel = max_loss_rel.max(r);

                let z = tensor::<AD, 2>(&logits_path, &device).require_grad();
                let y = ints::<AD>(&labels_path, &device);
                let grads = logitnorm_loss(z.clone(), y, &cfg(tau)).backward();
                let grad: Vec<f32> = z
                    .grad(&grads)
                    .expect("logits require grad")
                    .into_data()
                    .to_vec()
                    .expect("an f32 gradient");
                let (expected, _) = array(&format!("{path}/grad"));
                assert_eq!(grad.len(), n * k);
                for i in 0..n {
                    let row = i * k..(i + 1) * k;
                    let norm = logits[row.clone()]
                        .iter()
                        .map(|x| x * x)
                        .sum::<f64>()
                        .sqrt();
                    let floor = grad_floor(tau, norm, n);
                    let row_max = expected[row.clone()]
                        .iter()
                        .fold(0f64, |m, e| m.max(e.abs()));
                    for j in row {
                        let (g, e) = (f64::from(grad[j]), expected[j]);
                        let d = (g - e).abs();
                        assert!(
                            g.is_finite() && d <= 1e-5 * e.abs() + floor,
                            "{path}/grad[{i}][{}]: got {g}, expected {e}",
                            j - i * k
                        );
                        if row_max > floor {
                            max_grad_rel_to_row = max_grad_rel_to_row.max(d / row_max);
                        }
                    }
                }
            }
        }
        eprintln!(
            "logitnorm vs torch (float64): max relative loss difference {max_loss_rel:.2e}, \
             max gradient difference relative to its row's largest entry \
             {max_grad_rel_to_row:.2e} (rows above the f32 floor)"
        );
    }

    #[test]
    fn hand_computed_two_class_value() {
        // Logits [3, 4], label 1: ‖z‖ = 5, so the normalised logits are [0.6, 0.8]/τ (the
        // 1e-7 changes them by 2e-8 relative) and
        //   CE = −log(e^{0.8/τ} / (e^{0.6/τ} + e^{0.8/τ})) = ln(1 + e^{−0.2/τ}).
        // τ = 1:    ln(1 + e^{−0.2}) = 0.5981388694;
        // τ = 0.04: ln(1 + e^{−5})   = 0.0067153485.
        let device = Default::default();
        for (tau, expected) in [(1.0f64, 0.598_138_869_4), (0.04, 0.006_715_348_5)] {
            let by_formula = (1.0 + (-0.2 / tau).exp()).ln();
            assert!(rel(by_formula, expected) < 1e-8, "{by_formula}");
            let z = Tensor::<TB, 2>::from_floats([[3.0, 4.0]], &device);
            let y = Tensor::<TB, 1, Int>::from_ints([1], &device);
            let loss = scalar(logitnorm_loss(z, y, &cfg(tau as f32)));
            assert!(
                rel(loss, expected) < 1e-5,
                "tau {tau}: {loss} vs {expected}"
            );
        }
    }

    #[test]
    fn invariant_to_positive_scaling_of_the_logits() {
        // Rows of norm ~10 scaled by 0.05 .. 1000: the 1e-7 is below 1e-6 of every norm.
        let device = Default::default();
        let z = tensor::<TB, 2>("logitnorm/random/logits", &device);
        let y = ints::<TB>("logitnorm/random/labels", &device);
        for tau in [0.04, 1.0] {
            let base = scalar(logitnorm_loss(z.clone(), y.clone(), &cfg(tau)));
            for c in [0.05, 0.5, 7.5, 1000.0] {
                let scaled = scalar(logitnorm_loss(
                    z.clone().mul_scalar(c),
                    y.clone(),
                    &cfg(tau),
                ));
                assert!(
                    rel(scaled, base) < 1e-5,
                    "tau {tau}, scale {c}: {scaled} vs {base}"
                );
            }
        }
    }

    #[test]
    fn zero_row_has_loss_ln_k_and_a_finite_gradient() {
        // softmax(0) is uniform: the row's cross-entropy is ln 3 whatever τ.
        let device = Default::default();
        let z = Tensor::<AD, 2>::from_floats([[0.0, 0.0, 0.0]], &device).require_grad();
        let y = Tensor::<AD, 1, Int>::from_ints([2], &device);
        let loss = logitnorm_loss(z.clone(), y, &LogitNormConfig::new());
        let grads = loss.clone().backward();
        assert!(rel(scalar(loss), 3f64.ln()) < 1e-6);
        let grad: Vec<f32> = z
            .grad(&grads)
            .expect("logits require grad")
            .into_data()
            .to_vec()
            .expect("f32 gradient");
        // (softmax(0) − onehot(2)) / (τ·1e-7) = [1/3, 1/3, −2/3] · 2.5e8.
        let scale = 1.0 / (0.04 * 1e-7);
        for (g, e) in grad
            .iter()
            .zip([scale / 3.0, scale / 3.0, -2.0 * scale / 3.0])
        {
            assert!(rel(f64::from(*g), e) < 1e-5, "{grad:?}");
        }
    }

    #[test]
    #[should_panic(expected = "rows of logits but")]
    fn rejects_a_label_count_mismatch() {
        let device = Default::default();
        let z = Tensor::<TB, 2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device);
        let y = Tensor::<TB, 1, Int>::from_ints([0], &device);
        let _ = logitnorm_loss(z, y, &LogitNormConfig::new());
    }
}
