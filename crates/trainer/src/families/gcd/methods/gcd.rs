//! GCD (Vaze, Han, Vedaldi & Zisserman, CVPR 2022): `(1 − w)·InfoNCE(τ = 1) + w·SupCon(τ =
//! 0.07)` on the projections, `w = 0.35` (`methods/contrastive_training/
//! contrastive_training.py`); predictions come from semi-supervised k-means on the backbone
//! features after training.

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_losses::supcon::{info_nce, supcon_masked};

use super::{check_sup_weight, GcdBatch, GcdMethod, GcdMethodDef, Loss};
use crate::families::gcd::model::{GcdForward, GcdModel};

/// The `gcd` method. `[gcd]` keys: `sup_weight` (0.35).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gcd {
    /// Weight `w` of the supervised contrastive term (0.35).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sup_weight: Option<f64>,
}

impl GcdMethodDef for Gcd {
    fn check(&self) -> Result<(), String> {
        check_sup_weight(self.sup_weight)
    }

    fn classifier(&self) -> Option<&'static str> {
        None
    }

    fn layout(&self) -> &'static str {
        "GCD"
    }

    fn build<B: AutodiffBackend>(&self) -> Box<dyn GcdMethod<B>> {
        Box::new(self.clone())
    }
}

impl<B: AutodiffBackend> GcdMethod<B> for Gcd {
    fn loss(
        &self,
        f: GcdForward<B>,
        _model: &GcdModel<B>,
        b: GcdBatch<B>,
        _epoch: usize,
    ) -> Loss<B> {
        let w_sup = self.sup_weight.unwrap_or(0.35);
        let n = b.n;
        let con = info_nce(f.proj.clone(), 2, 1.0);
        let p = f.proj.dims()[1];
        // [2n, p] view-major -> [n, 2, p] for SupCon.
        let views = f.proj.reshape([2, n, p]).swap_dims(0, 1);
        let sup = supcon_masked(views, Some(b.labels), b.labelled_f, 0.07, 0.07);
        let total = con.clone().mul_scalar(1.0 - w_sup) + sup.clone().mul_scalar(w_sup);
        (total, vec![("con", con), ("sup_con", sup)])
    }
}
