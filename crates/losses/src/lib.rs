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
//! | [`logitnorm`] | Wei et al., *Mitigating Neural Network Overconfidence with Logit Normalization*, ICML 2022 | `hongxin001/logitnorm_ood` `common/loss_function.py` (`LogitNormLoss`) |
//! | [`mixoe`] | Zhang et al., *Mixture Outlier Exposure*, WACV 2023 | `zjysteven/MixOE` `train/train_mixoe.py` |
//! | [`supcon`] | Khosla et al., *Supervised Contrastive Learning*, NeurIPS 2020; SimCLR InfoNCE (Chen et al., ICML 2020) | `CVMI-Lab/SimGCD` `model.py` (`SupConLoss`, `info_nce_logits`) |
//! | [`simgcd`] | Wen et al., *Parametric Classification for Generalized Category Discovery*, ICCV 2023 | `CVMI-Lab/SimGCD` `model.py`, `train.py` |
//! | [`protogcd`] | Ma et al., *ProtoGCD: Unified and Unbiased Prototype Learning for GCD*, TPAMI 2025 | `mashijie1028/ProtoGCD` `models/loss.py`, `models/model.py`, `train.py` |
//! | [`fixmatch`] | Sohn et al., *FixMatch*, NeurIPS 2020 | `microsoft/Semi-supervised-learning` `semilearn/algorithms/fixmatch/fixmatch.py` |
//! | [`iomatch`] | Li et al., *IOMatch: Simplifying Open-Set Semi-Supervised Learning*, ICCV 2023 | `nukezil/IOMatch` `semilearn/algorithms/iomatch/iomatch.py` |
//!
//! Shared tensor helpers (row-wise log-sum-exp, one-hot) live in [`ops`]; those of the GCD
//! and open-set SSL losses (L2 normalisation, per-sample and masked cross-entropies, numpy's
//! `linspace` for epoch schedules) in [`common`].
//!
//! Every config has a `validate()` returning [`LossConfigError`], for the trainer to call
//! after reading a TOML file. Shape mismatches between tensors are programming errors and
//! panic with a message, as burn's own tensor operations do.

pub mod ce;
pub mod common;
pub mod fixmatch;
pub mod iomatch;
pub mod logitnorm;
pub mod mixoe;
pub mod oe;
pub mod ops;
pub mod protogcd;
#[cfg(test)]
mod refs;
pub mod simgcd;
pub mod supcon;

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
