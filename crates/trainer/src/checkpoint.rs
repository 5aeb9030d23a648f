//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `<run>/checkpoints/last/` holds `model.mpk` (weights and BatchNorm statistics, f32),
//! `optim.mpk` (momentum / Adam moments) and `state.json` (epochs done, global step, the
//! recipe generator's state). The data order needs no state: each epoch's shuffle and
//! augmentation are derived from `(seed, epoch)`. A checkpoint is written into a temporary
//! folder and renamed into place, so a crash never leaves a half-written `last/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::prelude::Tensor;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::io::write_atomic;
use crate::optim::Optim;

/// The non-tensor state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimisation steps done.
    pub step: usize,
    /// State of the recipe's generator (xoshiro256++).
    pub rng: [u64; 4],
}

/// `<run>/checkpoints/last`.
pub fn last_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("last")
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// Collects the dotted names of float tensors that hold a NaN or an infinity.
struct NonFinite {
    path: Vec<String>,
    found: Vec<String>,
}

impl<B: Backend> ModuleVisitor<B> for NonFinite {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let finite = param
            .val()
            .is_finite()
            .all()
            .int()
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .is_ok_and(|v| v == [1]);
        if !finite {
            self.found.push(self.path.join("."));
        }
    }
}

/// The dotted names (`layer1.0.conv1.weight`, ...) of the model's float tensors, parameters
/// and BatchNorm statistics alike, that hold a NaN or an infinity; empty when all are finite.
///
/// The loss alone does not catch every divergence: a non-finite *gradient* (from a finite
/// loss) makes the weights NaN, and on `flex` the ReLU maps NaN activations to 0, so the
/// logits, and the loss, can stay finite while the network is garbage.
pub fn non_finite_tensors<B: Backend, M: Module<B>>(model: &M) -> Vec<String> {
    let mut v = NonFinite {
        path: Vec::new(),
        found: Vec::new(),
    };
    model.visit(&mut v);
    v.found
}

/// Saves model, optimiser and state as `<run>/checkpoints/last`.
///
/// # Errors
/// The model has a non-finite tensor ([`non_finite_tensors`]): nothing is written and the
/// previous checkpoint stays in place; or the files cannot be written.
pub fn save<B: AutodiffBackend, M: AutodiffModule<B>>(
    run_dir: &Path,
    model: &M,
    optim: &Optim<B, M>,
    state: &TrainState,
) -> Result<()> {
    let bad = non_finite_tensors(model);
    if !bad.is_empty() {
        let kept = match find(run_dir).and_then(|d| Ok((load_state(&d)?, d))) {
            Ok((s, d)) => format!("{} ({} epoch(s) done) is kept", d.display(), s.epochs_done),
            Err(_) => "there is no earlier checkpoint".to_string(),
        };
        let names = if bad.len() > 3 {
            format!("{} and {} more", bad[..3].join(", "), bad.len() - 3)
        } else {
            bad.join(", ")
        };
        anyhow::bail!(
            "the weights are no longer finite after epoch {}, step {} (NaN or infinity in \
             {names}); training stopped without writing a checkpoint, and {kept}. The loss \
             can stay finite while this happens (a NaN gradient; flex's ReLU maps NaN to 0): \
             lower `train.lr`, set `train.grad_clip`, or check the data",
            state.epochs_done,
            state.step
        );
    }
    crate::io::replace_dir(&run_dir.join("checkpoints").join("last"), |tmp| {
        model
            .clone()
            .save_file(tmp.join("model"), &recorder())
            .with_context(|| format!("cannot write {}", tmp.join("model.mpk").display()))?;
        optim.save(&tmp.join("optim"))?;
        write_atomic(
            &tmp.join("state.json"),
            serde_json::to_string_pretty(state)?.as_bytes(),
        )
    })
}

/// The checkpoint folder to resume from: `checkpoints/last`, or the previous checkpoint
/// kept beside it when a crash happened between the two renames of [`save`]
/// ([`crate::io::existing_dir`]; earlier versions named that folder `.old`).
pub fn find(run_dir: &Path) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    let last = root.join("last");
    crate::io::existing_dir(&last, "state.json")
        .or_else(|| Some(root.join(".old")).filter(|d| d.join("state.json").exists()))
        .with_context(|| {
            format!(
                "{} holds no checkpoint (expected {}/state.json); nothing to resume or evaluate",
                run_dir.display(),
                last.display()
            )
        })
}

/// Reads `state.json`.
pub fn load_state(dir: &Path) -> Result<TrainState> {
    let p = dir.join("state.json");
    let text =
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid checkpoint state", p.display()))
}

/// Loads weights saved by [`save`] into a freshly built model of the same architecture.
pub fn load_model<B: Backend, M: Module<B>>(dir: &Path, model: M, device: &B::Device) -> Result<M> {
    model
        .load_file(dir.join("model"), &recorder(), device)
        .with_context(|| format!("cannot load weights {}", dir.join("model.mpk").display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OptimizerKind, TrainConfig};
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};

    type AB = Autodiff<Flex>;

    #[derive(Module, Debug)]
    struct Net<B: Backend> {
        fc: Linear<B>,
        bn: BatchNorm<B>,
    }

    fn net(device: &burn::tensor::Device<AB>) -> Net<AB> {
        Net {
            fc: LinearConfig::new(3, 2).init(device),
            bn: BatchNormConfig::new(2).init(device),
        }
    }

    fn optim() -> Optim<AB, Net<AB>> {
        Optim::new(&TrainConfig {
            epochs: 1,
            batch_size: 1,
            outlier_batch_size: None,
            optimizer: OptimizerKind::Sgd,
            lr: 0.1,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
            warmup_epochs: 0,
            min_lr_ratio: 0.0,
            grad_clip: None,
            checkpoint_every: 1,
            eval_every: 0,
        })
    }

    /// A NaN weight or an infinite BatchNorm statistic is named, nothing is written, and
    /// the good checkpoint before it survives; a finite model saves and reloads.
    #[test]
    fn non_finite_weights_are_named_and_never_replace_a_good_checkpoint() {
        let device = Default::default();
        let dir = std::env::temp_dir().join(format!("unseen-ckpt-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        let good = net(&device);
        assert!(non_finite_tensors(&good).is_empty());
        let state = |epochs_done| TrainState {
            epochs_done,
            step: 10 * epochs_done,
            rng: [1, 2, 3, 4],
        };
        save(&dir, &good, &optim(), &state(1)).unwrap();

        let mut bad = net(&device);
        let mut w = bad.fc.weight.val().into_data().to_vec::<f32>().unwrap();
        w[4] = f32::NAN;
        bad.fc.weight = Param::from_tensor(Tensor::from_data(
            burn::tensor::TensorData::new(w, [3, 2]),
            &device,
        ));
        let var = bad.bn.running_var.value();
        bad.bn.running_var = burn::module::RunningState::new(var.mul_scalar(f32::INFINITY));
        assert_eq!(non_finite_tensors(&bad), ["fc.weight", "bn.running_var"]);
        let e = save(&dir, &bad, &optim(), &state(2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("after epoch 2, step 20"), "{e}");
        assert!(e.contains("fc.weight, bn.running_var"), "{e}");
        assert!(e.contains("(1 epoch(s) done) is kept"), "{e}");
        let kept = find(&dir).unwrap();
        assert_eq!(load_state(&kept).unwrap(), state(1));
        let back = load_model(&kept, net(&device), &device).unwrap();
        assert_eq!(
            back.fc.weight.val().into_data(),
            good.fc.weight.val().into_data()
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
