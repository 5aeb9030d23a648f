//! IOMatch (Li et al., ICCV 2023; `semilearn/algorithms/iomatch/iomatch.py`): `train_step`
//! as [`unseen_losses::iomatch::iomatch_loss`] on the closed-set logits and IOMatchNet's
//! one-vs-all and open-set heads ([`crate::families::ossl::model::IoMatchHeads`]). The
//! open-set loss is switched off during epoch 0 (`if self.epoch == 0: op_loss *= 0.0`).
//! Distribution alignment keeps a queue of the weak views' mean predictions, checkpointed
//! with the run.

use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};
use unseen_losses::iomatch::{iomatch_loss, DistAlignQueue, IoMatchConfig, IoMatchLogits};

use super::{BatchSizes, Loss, OsslMethod, OsslMethodDef};
use crate::families::ossl::model::OsslOutput;

/// The `iomatch` method. `[ossl]` keys: `p_cutoff` (0.95), `q_cutoff` (0.5), `lambda_u`
/// (1), `lambda_op` (1), `lambda_mb` (1), `dist_align` (off, as the CIFAR-10 configs; the
/// CIFAR-100 configs run with it), `da_len` (128), `proj_dim` (128).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IoMatch {
    /// Confidence threshold on the weak view's max probability (`p_cutoff: 0.95`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_cutoff: Option<f64>,
    /// Threshold on the open-set targets `max q̃` (`q_cutoff: 0.5`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q_cutoff: Option<f64>,
    /// Weight of the unlabelled term `L_ui` (`ulb_loss_ratio: 1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_u: Option<f64>,
    /// Weight of the open-set loss `L_op` (`op_loss_ratio: 1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_op: Option<f64>,
    /// Weight of the one-vs-all loss `L_mb` (`mb_loss_ratio: 1.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_mb: Option<f64>,
    /// Distribution alignment of the closed-set targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dist_align: Option<bool>,
    /// Length of the alignment queue (`da_len: 128`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub da_len: Option<usize>,
    /// Output size of the projector (`proj_size = 128`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proj_dim: Option<usize>,
}

impl IoMatch {
    /// The official defaults with these values.
    pub fn config(&self) -> IoMatchConfig {
        let mut c = IoMatchConfig::new();
        if let Some(v) = self.p_cutoff {
            c.p_cutoff = v;
        }
        if let Some(v) = self.q_cutoff {
            c.q_cutoff = v;
        }
        if let Some(v) = self.lambda_u {
            c.lambda_u = v;
        }
        if let Some(v) = self.lambda_op {
            c.lambda_op = v;
        }
        if let Some(v) = self.lambda_mb {
            c.lambda_mb = v;
        }
        if let Some(v) = self.dist_align {
            c.dist_align = v;
        }
        if let Some(v) = self.da_len {
            c.da_len = v;
        }
        c
    }
}

impl OsslMethodDef for IoMatch {
    fn check(&self) -> Result<(), String> {
        for (name, v) in [("proj_dim", self.proj_dim), ("da_len", self.da_len)] {
            if v == Some(0) {
                return Err(format!("`{name}` must be at least 1"));
            }
        }
        self.config().validate().map_err(|e| e.to_string())
    }

    fn heads(&self) -> Option<usize> {
        Some(self.proj_dim.unwrap_or(128))
    }

    fn p_cutoff(&self) -> f64 {
        self.config().p_cutoff
    }

    fn build<B: AutodiffBackend>(&self, k: usize, device: &B::Device) -> Box<dyn OsslMethod<B>> {
        let cfg = self.config();
        let queue = cfg
            .dist_align
            .then(|| DistAlignQueue::<B>::new(k, cfg.da_len, device));
        Box::new(IoMatchStep { cfg, queue })
    }
}

/// IOMatch with its distribution-alignment queue.
struct IoMatchStep<B: AutodiffBackend> {
    cfg: IoMatchConfig,
    queue: Option<DistAlignQueue<B>>,
}

/// The checkpointed queue: values `[len, K]` row-major, their shape, the next slot.
type QueueState = (Vec<f32>, [usize; 2], usize);

impl<B: AutodiffBackend> OsslMethod<B> for IoMatchStep<B> {
    fn loss(
        &mut self,
        out: OsslOutput<B>,
        labels: Tensor<B, 1, Int>,
        sizes: BatchSizes,
        epoch: usize,
    ) -> Loss<B> {
        let (lg_lb, lg_w, lg_s) = sizes.split(out.logits);
        let (ova_lb, ova_w, _) = sizes.split(out.ova.expect("IOMatch heads"));
        let (_, _, open_s) = sizes.split(out.open.expect("IOMatch heads"));
        let p = iomatch_loss(
            IoMatchLogits {
                labelled: lg_lb,
                labelled_ova: ova_lb,
                weak: lg_w,
                weak_ova: ova_w,
                strong: lg_s,
                strong_open: open_s,
            },
            labels,
            epoch,
            &self.cfg,
            self.queue.as_mut(),
        );
        (
            p.total,
            vec![
                ("loss/sup", p.sup),
                ("loss/mb", p.mb),
                ("loss/ui", p.ui),
                ("loss/op", p.op),
                ("train/mask_ratio", p.mask_ratio),
                ("train/in_mask_ratio", p.in_mask_ratio),
                ("train/p_mask_ratio", p.p_mask_ratio),
                ("train/q_mask_ratio", p.q_mask_ratio),
            ],
        )
    }

    fn state(&self) -> Option<serde_json::Value> {
        let q = self.queue.as_ref()?;
        let (t, ptr) = q.state();
        let dims = t.dims();
        let v = t.into_data().convert::<f32>().to_vec::<f32>().expect("f32");
        serde_json::to_value::<QueueState>((v, dims, ptr)).ok()
    }

    fn restore(&mut self, state: serde_json::Value, device: &B::Device) -> Result<()> {
        if let Some(q) = self.queue.as_mut() {
            let (v, dims, ptr): QueueState =
                serde_json::from_value(state).context("the distribution-alignment queue")?;
            let t = Tensor::<B, 2>::from_data(TensorData::new(v, dims), device);
            *q = DistAlignQueue::from_state(t, ptr);
        }
        Ok(())
    }
}
