//! Training losses of the Unseen framework: one module per paper, each a
//! [`Config`](burn::config::Config) struct whose defaults are the paper's official settings
//! plus pure functions from tensors to a scalar loss `Tensor<B, 1>` of shape `[1]`.
//!
//! Nothing here loads data, samples random numbers or touches an optimizer: randomness
//! (such as the MixOE mixing coefficient λ) is drawn by the trainer and passed in, so every
//! function is deterministic and generic over `B: Backend`.
//!
//! | module | paper | reference code |
//! |---|---|---|
//! | [`ce`] | cross-entropy with label smoothing (Szegedy et al., CVPR 2016) | PyTorch `F.cross_entropy(label_smoothing=ε)` |
//! | [`oe`] | Hendrycks et al., *Deep Anomaly Detection with Outlier Exposure*, ICLR 2019; Liu et al., *Energy-based Out-of-distribution Detection*, NeurIPS 2020 | `hendrycks/outlier-exposure` `CIFAR/oe_tune.py`; `wetliu/energy_ood` `CIFAR/train.py` |
//! | [`mixoe`] | Zhang et al., *Mixture Outlier Exposure*, WACV 2023 | `zjysteven/MixOE` `train/train_mixoe.py` |
//!
//! Shared tensor helpers (row-wise log-sum-exp, one-hot) live in [`ops`].
//!
//! Every config has a `validate()` returning [`LossConfigError`], for the trainer to call
//! after reading a TOML file. Shape mismatches between tensors are programming errors and
//! panic with a message, as burn's own tensor operations do.

pub mod ce;
pub mod mixoe;
pub mod oe;
pub mod ops;

/// A loss configuration holds a value outside its meaningful range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossConfigError {
    /// A single field is out of range (or not finite).
    #[error("loss config field `{field}` = {value} is invalid: expected {expected}")]
    Invalid {
        /// The field name, as spelled in the config struct (and in TOML).
        field: &'static str,
        /// The offending value.
        value: f32,
        /// The accepted range, in words.
        expected: &'static str,
    },
    /// The energy margins are in the wrong order.
    #[error(
        "energy margins must satisfy m_in < m_out (in-distribution energies are the lower ones), \
         got m_in = {m_in}, m_out = {m_out}"
    )]
    MarginOrder {
        /// The in-distribution margin.
        m_in: f32,
        /// The outlier margin.
        m_out: f32,
    },
}

/// `Ok` when `value` is finite and `>= 0`, else [`LossConfigError::Invalid`] naming `field`.
pub(crate) fn check_non_negative(field: &'static str, value: f32) -> Result<(), LossConfigError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(LossConfigError::Invalid {
            field,
            value,
            expected: "a finite number >= 0",
        })
    }
}
