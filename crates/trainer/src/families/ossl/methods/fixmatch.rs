//! FixMatch (Sohn et al., NeurIPS 2020) on open-set data, as USB's
//! `semilearn/algorithms/fixmatch/fixmatch.py` ([`unseen_losses::fixmatch::fixmatch_loss`]):
//! cross-entropy on the labelled images plus `λ_u` times the cross-entropy of the strong
//! views against the weak views' confident (`max p ≥ p_cutoff`) pseudo-labels. It has no
//! open-set head: at test time it predicts "unknown" when `max p < p_cutoff`.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_losses::fixmatch::{fixmatch_loss, FixMatchConfig};

use super::{BatchSizes, Loss, OsslMethod, OsslMethodDef};
use crate::families::ossl::model::OsslOutput;

/// The `fixmatch` method. `[ossl]` keys: `p_cutoff` (0.95), `lambda_u` (1).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixMatch {
    /// Confidence threshold on the weak view's max probability (`p_cutoff: 0.95`); also the
    /// test-time "unknown" threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_cutoff: Option<f64>,
    /// Weight `λ_u` of the unlabelled term (`ulb_loss_ratio: 1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_u: Option<f64>,
}

impl FixMatch {
    /// USB's defaults with these values.
    pub fn config(&self) -> FixMatchConfig {
        let mut c = FixMatchConfig::new();
        if let Some(v) = self.p_cutoff {
            c.p_cutoff = v;
        }
        if let Some(v) = self.lambda_u {
            c.lambda_u = v;
        }
        c
    }
}

impl OsslMethodDef for FixMatch {
    fn check(&self) -> Result<(), String> {
        self.config().validate().map_err(|e| e.to_string())
    }

    fn p_cutoff(&self) -> f64 {
        self.config().p_cutoff
    }

    fn build<B: AutodiffBackend>(&self, _k: usize, _device: &B::Device) -> Box<dyn OsslMethod<B>> {
        Box::new(self.config())
    }
}

impl<B: AutodiffBackend> OsslMethod<B> for FixMatchConfig {
    fn loss(
        &mut self,
        out: OsslOutput<B>,
        labels: Tensor<B, 1, Int>,
        sizes: BatchSizes,
        _epoch: usize,
    ) -> Loss<B> {
        let (lg_lb, lg_w, lg_s) = sizes.split(out.logits);
        let p = fixmatch_loss(lg_lb, labels, lg_w, lg_s, self);
        (
            p.total,
            vec![
                ("loss/sup", p.sup),
                ("loss/unsup", p.unsup),
                ("train/mask_ratio", p.mask_ratio),
            ],
        )
    }
}
