//! SimGCD (Wen, Zhao & Qi, ICCV 2023): `unseen_losses::simgcd::simgcd_loss` on the cosine
//! prototype logits and the projections; predictions are the prototype classifier's argmax
//! (the official `DINOHead.last_layer`).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_losses::simgcd::{simgcd_loss, SimGcdConfig};

use super::{check_sup_weight, GcdBatch, GcdMethod, GcdMethodDef, Loss};
use crate::families::gcd::model::{GcdForward, GcdModel};

/// The `simgcd` method. `[gcd]` keys: `sup_weight` (0.35), `memax_weight` (CIFAR-100 4, CUB
/// 2, others 1), `warmup_teacher_epochs` (30).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimGcd {
    /// Weight `w` of the supervised terms (0.35).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sup_weight: Option<f64>,
    /// Mean-entropy weight (CIFAR-100 4, CUB 2, others 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memax_weight: Option<f64>,
    /// Teacher-temperature warm-up length in epochs (30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_teacher_epochs: Option<usize>,
}

impl SimGcd {
    /// The paper's defaults with these values.
    pub fn config(&self) -> SimGcdConfig {
        let mut c = SimGcdConfig::new();
        if let Some(v) = self.sup_weight {
            c.sup_weight = v;
        }
        if let Some(v) = self.memax_weight {
            c.memax_weight = v;
        }
        if let Some(v) = self.warmup_teacher_epochs {
            c.warmup_teacher_epochs = v;
        }
        c
    }
}

impl GcdMethodDef for SimGcd {
    fn check(&self) -> Result<(), String> {
        check_sup_weight(self.sup_weight)
    }

    fn classifier(&self) -> Option<&'static str> {
        Some("last_layer")
    }

    fn layout(&self) -> &'static str {
        "SimGCD"
    }

    fn build<B: AutodiffBackend>(&self) -> Box<dyn GcdMethod<B>> {
        Box::new(self.config())
    }
}

impl<B: AutodiffBackend> GcdMethod<B> for SimGcdConfig {
    fn loss(
        &self,
        f: GcdForward<B>,
        _model: &GcdModel<B>,
        b: GcdBatch<B>,
        epoch: usize,
    ) -> Loss<B> {
        let p = simgcd_loss(f.logits, f.proj, b.labels, b.labelled, epoch, self);
        (
            p.total,
            vec![
                ("cls", p.cls),
                ("cluster", p.cluster),
                ("entropy", p.entropy),
                ("con", p.con),
                ("sup_con", p.sup_con),
            ],
        )
    }
}
