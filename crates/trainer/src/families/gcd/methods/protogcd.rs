//! ProtoGCD (Ma, Xie, Zhang, Liu & Lin, TPAMI 2025): `unseen_losses::protogcd::protogcd_loss`
//! on the cosine prototype logits, the projections and the prototypes themselves;
//! predictions are the prototypes' argmax (the official `prototype_layer`).

use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_losses::protogcd::{protogcd_loss, ProtoGcdConfig};

use super::{check_sup_weight, GcdBatch, GcdMethod, GcdMethodDef, Loss};
use crate::families::gcd::model::{GcdForward, GcdModel};

/// The `protogcd` method. `[gcd]` keys: `sup_weight` (0.35), `entropy_weight` (2),
/// `proto_sep_weight` (0.1; CUB 0.05), `ramp_ratio_epochs` (100).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoGcd {
    /// Weight `w` of the supervised terms (0.35).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sup_weight: Option<f64>,
    /// Entropy weight (2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entropy_weight: Option<f64>,
    /// Prototype-separation weight (0.1; CUB 0.05).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_sep_weight: Option<f64>,
    /// Ramp of the hard pseudo-label ratio, in epochs (100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_ratio_epochs: Option<usize>,
}

impl ProtoGcd {
    /// The paper's defaults with these values.
    pub fn config(&self) -> ProtoGcdConfig {
        let mut c = ProtoGcdConfig::new();
        if let Some(v) = self.sup_weight {
            c.sup_weight = v;
        }
        if let Some(v) = self.entropy_weight {
            c.entropy_weight = v;
        }
        if let Some(v) = self.proto_sep_weight {
            c.proto_sep_weight = v;
        }
        if let Some(v) = self.ramp_ratio_epochs {
            c.ramp_ratio_epochs = v;
        }
        c
    }
}

impl GcdMethodDef for ProtoGcd {
    fn check(&self) -> Result<(), String> {
        check_sup_weight(self.sup_weight)
    }

    fn classifier(&self) -> Option<&'static str> {
        Some("prototype_layer")
    }

    fn layout(&self) -> &'static str {
        "ProtoGCD"
    }

    fn build<B: AutodiffBackend>(&self) -> Box<dyn GcdMethod<B>> {
        Box::new(self.config())
    }
}

impl<B: AutodiffBackend> GcdMethod<B> for ProtoGcdConfig {
    fn loss(&self, f: GcdForward<B>, model: &GcdModel<B>, b: GcdBatch<B>, epoch: usize) -> Loss<B> {
        let p = protogcd_loss(
            f.logits,
            f.proj,
            model.prototypes.val(),
            b.labels,
            b.labelled,
            epoch,
            self,
        );
        (
            p.total,
            vec![
                ("cls", p.cls),
                ("cluster", p.cluster),
                ("entropy", p.entropy),
                ("proto_sep", p.proto_sep),
                ("con", p.con),
                ("sup_con", p.sup_con),
            ],
        )
    }
}
