//! Checkpoints: everything needed to continue a run exactly where it stopped.
//!
//! `<run>/checkpoints/last/` holds `model.mpk` (weights and BatchNorm statistics, f32),
//! `optim.mpk` (momentum / Adam moments), `state.json` (epochs done, global step, the
//! method generator's state, the best evaluation so far), whatever the family keeps besides
//! (an EMA model, a queue) and `checksums.json`, the size and SHA-256 of every other file.
//! The data order needs no state: each batch and its augmentation are derived from the
//! seed, the epoch and the batch's position. The checkpoint before the last is kept as
//! `checkpoints/previous/`, which `--resume` falls back to when the last one is damaged
//! ([`find_for_resume`]). A checkpoint is written into a temporary folder
//! and renamed into place, so a crash never leaves a half-written `last/`; a file damaged
//! later (a truncated copy, a bad disk) is caught by its checksum before burn reads it.
//!
//! `<run>/checkpoints/best/` holds the weights of the evaluation with the highest selection
//! metric, for families that name one ([`crate::run::family::Evaluated::selection`]), and
//! `best.json`, its record.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::prelude::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use serde::{Deserialize, Serialize};

use crate::run::io::{guarded, mpk_path, read_record, write_atomic, write_record};
use crate::run::optim::Optim;

/// The non-tensor state of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimisation steps done.
    pub step: usize,
    /// State of the method's generator (xoshiro256++).
    pub rng: [u64; 4],
    /// The best evaluation so far (its weights are in [`best_dir`]); absent for families
    /// without a selection metric and in checkpoints of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<Best>,
}

impl TrainState {
    /// The state of a run before its first step.
    pub fn start(seed: u64) -> Self {
        Self {
            epochs_done: 0,
            step: 0,
            rng: unseen_data::Rng::stream(seed, "recipe").state(),
            best: None,
        }
    }
}

/// The best evaluation of a run so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The step it was made at.
    pub step: usize,
    /// Its selection metric.
    pub score: f64,
    /// The family's record of it (also `checkpoints/best/best.json`).
    pub record: serde_json::Value,
}

/// Which weights of a run `trainer eval`, `export` and `embed --run` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Which {
    /// `checkpoints/last/` (for open-set SSL: its EMA weights).
    #[default]
    Last,
    /// `checkpoints/best/`: the weights of the evaluation with the highest selection metric.
    Best,
}

impl Which {
    /// The folder of `<run>` that `trainer eval` writes for these weights.
    pub fn eval_dir(self) -> &'static str {
        match self {
            Which::Last => "eval",
            Which::Best => "eval_best",
        }
    }
}

/// `<run>/checkpoints/best`.
pub fn best_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("best")
}

/// The folder of `run_dir`'s best checkpoint (or the previous one kept beside it by a crash
/// mid-replace) and its `best.json` record.
///
/// # Errors
/// The run has no best checkpoint (its family selects none, or it was trained by an earlier
/// version), or the record or a checksum is bad.
pub fn find_best(run_dir: &Path) -> Result<(PathBuf, serde_json::Value)> {
    let dir = crate::run::io::existing_dir(&best_dir(run_dir), "best.json")
        .unwrap_or_else(|| best_dir(run_dir));
    let p = dir.join("best.json");
    let text = std::fs::read_to_string(&p).with_context(|| {
        format!(
            "{} has no best checkpoint (cannot read {}): `trainer train` keeps one for methods \
             that select a checkpoint (open-set SSL: the highest closed-set accuracy), and runs \
             of earlier versions lack it; use the last checkpoint (`--checkpoint last`)",
            run_dir.display(),
            p.display()
        )
    })?;
    verify(&dir)?;
    let record = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid best-checkpoint record", p.display()))?;
    Ok((dir, record))
}

/// Writes `checkpoints/best/` as a whole: `fill` writes the weights, then `best.json` and the
/// checksums are added.
pub fn save_best(
    run_dir: &Path,
    record: &serde_json::Value,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    crate::run::io::replace_dir(&best_dir(run_dir), |tmp| {
        fill(tmp)?;
        write_atomic(
            &tmp.join("best.json"),
            (serde_json::to_string_pretty(record)? + "\n").as_bytes(),
        )?;
        write_checksums(tmp)
    })
}

/// The name of the checksum file in a checkpoint folder.
pub const CHECKSUMS: &str = "checksums.json";

/// Size and SHA-256 of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileSum {
    bytes: u64,
    sha256: String,
}

fn file_sum(path: &Path) -> Result<FileSum> {
    use sha2::{Digest, Sha256};
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let digest = Sha256::digest(&data);
    Ok(FileSum {
        bytes: data.len() as u64,
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// Writes `checksums.json` for every other file of the folder `dir`.
pub fn write_checksums(dir: &Path) -> Result<()> {
    let mut sums = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name == CHECKSUMS || !e.file_type()?.is_file() {
            continue;
        }
        sums.insert(name, file_sum(&e.path())?);
    }
    write_atomic(
        &dir.join(CHECKSUMS),
        serde_json::to_string_pretty(&sums)?.as_bytes(),
    )
}

/// Checks every file named in `dir/checksums.json`. A folder without the file (written by an
/// earlier version) is accepted as it is.
///
/// # Errors
/// `checkpoint <dir> is corrupt (<file>: expected ..., found ...)` for the first file that is
/// missing or differs, or an unreadable `checksums.json`.
pub fn verify(dir: &Path) -> Result<()> {
    let p = dir.join(CHECKSUMS);
    let text = match std::fs::read(&p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("checkpoint {} is corrupt ({CHECKSUMS}: {e})", dir.display()),
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            anyhow::anyhow!(
                "checkpoint {} is corrupt ({CHECKSUMS} is not UTF-8 text)",
                dir.display()
            )
        })?,
    };
    let sums: std::collections::BTreeMap<String, FileSum> =
        serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!("checkpoint {} is corrupt ({CHECKSUMS}: {e})", dir.display())
        })?;
    for (name, want) in &sums {
        let plain = Path::new(name)
            .file_name()
            .is_some_and(|n| n == name.as_str());
        if !plain || name == CHECKSUMS {
            anyhow::bail!(
                "checkpoint {} is corrupt ({CHECKSUMS} lists `{name}`, which is not a file \
                 of the checkpoint folder)",
                dir.display()
            );
        }
        let found = match std::fs::metadata(dir.join(name)) {
            Err(_) => "no such file".to_string(),
            Ok(m) if m.len() != want.bytes => format!("{} bytes", m.len()),
            Ok(_) => {
                let got = file_sum(&dir.join(name))?;
                if got == *want {
                    continue;
                }
                format!("sha256 {}", got.sha256)
            }
        };
        let expected = if found.ends_with("bytes") || found == "no such file" {
            format!("{} bytes", want.bytes)
        } else {
            format!("sha256 {}", want.sha256)
        };
        anyhow::bail!(
            "checkpoint {} is corrupt ({name}: expected {expected}, found {found})",
            dir.display()
        );
    }
    Ok(())
}

/// `<run>/checkpoints/last`.
pub fn last_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints").join("last")
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

/// Saves model, optimiser and state as `<run>/checkpoints/last`; `extras` writes the
/// family's own files into the same folder, so they are replaced together.
///
/// # Errors
/// The model has a non-finite tensor ([`non_finite_tensors`]): nothing is written and the
/// previous checkpoint stays in place; or the files cannot be written.
pub fn save<B: AutodiffBackend, M: AutodiffModule<B>>(
    run_dir: &Path,
    model: &M,
    optim: &Optim<B, M>,
    state: &TrainState,
    extras: impl FnOnce(&Path) -> Result<()>,
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
    let previous = run_dir.join("checkpoints").join("previous");
    crate::run::io::replace_dir_keeping(&last_dir(run_dir), &previous, |tmp| {
        save_weights(&tmp.join("model"), model)?;
        optim.save(&tmp.join("optim"))?;
        write_atomic(
            &tmp.join("state.json"),
            serde_json::to_string_pretty(state)?.as_bytes(),
        )?;
        extras(tmp)?;
        write_checksums(tmp)
    })
}

/// The checkpoint folder to resume from: `checkpoints/last`, or the previous checkpoint
/// kept beside it when a crash happened between the two renames of [`save`]
/// ([`crate::run::io::existing_dir`]; earlier versions named that folder `.old`), after its
/// checksums are verified ([`verify`]).
///
/// # Errors
/// The run has no checkpoint, or its files do not match their checksums.
pub fn find(run_dir: &Path) -> Result<PathBuf> {
    let root = run_dir.join("checkpoints");
    let last = root.join("last");
    let dir = crate::run::io::existing_dir(&last, "state.json")
        .or_else(|| Some(root.join(".old")).filter(|d| d.join("state.json").exists()))
        .with_context(|| {
            format!(
                "{} holds no checkpoint (expected {}/state.json): the run stopped before its \
                 first checkpoint was written; start it again (`--overwrite`)",
                run_dir.display(),
                last.display()
            )
        })?;
    verify(&dir)?;
    Ok(dir)
}

/// The checkpoint `--resume` continues from: [`find`]'s, or, when that one is corrupt or
/// missing, the previous checkpoint (`checkpoints/previous/`, kept by [`save`]) if it is
/// whole, with a warning naming what was wrong; `None` when the run has no checkpoint of
/// any kind yet (it stopped before its first one: it starts from the beginning, nothing is
/// lost). Evaluation and export never fall back: they report the damaged checkpoint
/// ([`find`]).
///
/// # Errors
/// Checkpoints exist but none is whole: the error of the last one.
pub fn find_for_resume(run_dir: &Path) -> Result<Option<PathBuf>> {
    let err = match find(run_dir) {
        Ok(dir) => return Ok(Some(dir)),
        Err(e) => e,
    };
    let root = run_dir.join("checkpoints");
    let candidates = [
        root.join("last"),
        root.join("previous"),
        crate::run::io::old_dir(&root.join("last")),
        root.join(".old"),
    ];
    if !candidates.iter().any(|d| d.join("state.json").exists()) {
        return Ok(None);
    }
    for dir in [
        root.join("previous"),
        crate::run::io::old_dir(&root.join("last")),
    ] {
        if dir.join("state.json").exists() && verify(&dir).is_ok() {
            eprintln!(
                "warning: {err:#}; resuming from the previous checkpoint {} instead",
                dir.display()
            );
            return Ok(Some(dir));
        }
    }
    Err(err)
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
    load_weights(&dir.join("model"), model, device)
}

/// Loads `<path>.mpk` (weights written by [`save_weights`]) into `model`.
///
/// The file is read as a whole and decoded from memory, so a length it claims cannot make
/// the decoder allocate more than the file holds; a record that burn's decoder cannot
/// take (it panics on some malformed input) is an error naming the file; and every tensor
/// must have the shape of the network's own (burn would load any shape, and the first
/// forward pass would fail far from the cause).
///
/// # Errors
/// An unreadable file, a record that does not decode, or a tensor of another shape.
pub fn load_weights<B: Backend, M: Module<B>>(
    path: &Path,
    model: M,
    device: &B::Device,
) -> Result<M> {
    let file = mpk_path(path);
    let ctx = || format!("cannot load weights {}", file.display());
    let record: M::Record = read_record::<B, _>(&file, device).with_context(ctx)?;
    let expected = float_shapes(&model);
    let loaded = guarded(|| model.load_record(record)).with_context(ctx)?;
    for ((name, want), (_, got)) in expected.iter().zip(float_shapes(&loaded)) {
        if *want != got {
            anyhow::bail!(
                "cannot load weights {}: tensor `{name}` has shape {got:?} where the network \
                 has {want:?}; the file is not a checkpoint of this network",
                file.display()
            );
        }
    }
    Ok(loaded)
}

/// The dotted names and shapes of a module's float tensors, in visiting order.
fn float_shapes<B: Backend, M: Module<B>>(model: &M) -> Vec<(String, Vec<usize>)> {
    struct Shapes {
        path: Vec<String>,
        found: Vec<(String, Vec<usize>)>,
    }
    impl<B: Backend> ModuleVisitor<B> for Shapes {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.found
                .push((self.path.join("."), param.val().dims().to_vec()));
        }
    }
    let mut v = Shapes {
        path: Vec::new(),
        found: Vec::new(),
    };
    model.visit(&mut v);
    v.found
}

/// Writes `model` as `<path>.mpk`, in the checkpoints' format ([`write_record`]).
pub fn save_weights<B: Backend, M: Module<B>>(path: &Path, model: &M) -> Result<()> {
    write_record::<B, _>(path, model.clone().into_record())
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
            best: None,
        };
        save(&dir, &good, &optim(), &state(1), |_| Ok(())).unwrap();

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
        let e = save(&dir, &bad, &optim(), &state(2), |_| Ok(()))
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

    /// A truncated or altered checkpoint file is named with what was expected; a checkpoint
    /// of an earlier version (no checksums) still loads; an empty run says so.
    #[test]
    fn corrupt_checkpoints_are_named() {
        let device = Default::default();
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let e = format!("{:#}", find(dir).unwrap_err());
        assert!(e.contains("holds no checkpoint"), "{e}");
        // `--resume` starts such a run from the beginning.
        assert_eq!(find_for_resume(dir).unwrap(), None);
        let state = TrainState {
            epochs_done: 1,
            step: 5,
            rng: [1, 2, 3, 4],
            best: None,
        };
        save(dir, &net(&device), &optim(), &state, |t| {
            write_atomic(&t.join("extra.json"), b"{}")
        })
        .unwrap();
        let last = find(dir).unwrap();
        let model = last.join("model.mpk");
        let bytes = std::fs::read(&model).unwrap();
        // Truncated: the size names it.
        std::fs::write(&model, &bytes[..bytes.len() / 2]).unwrap();
        let e = format!("{:#}", find(dir).unwrap_err());
        let want = format!(
            "is corrupt (model.mpk: expected {} bytes, found {} bytes)",
            bytes.len(),
            bytes.len() / 2
        );
        assert!(e.contains(&want), "{e}");
        // Same size, one byte flipped: the hash names it.
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 3] ^= 0x40;
        std::fs::write(&model, &flipped).unwrap();
        let e = format!("{:#}", find(dir).unwrap_err());
        assert!(e.contains("(model.mpk: expected sha256 "), "{e}");
        // A family file is covered too; a missing one is named.
        std::fs::write(&model, &bytes).unwrap();
        find(dir).unwrap();
        std::fs::remove_file(last.join("extra.json")).unwrap();
        let e = format!("{:#}", find(dir).unwrap_err());
        assert!(
            e.contains("(extra.json: expected 2 bytes, found no such file)"),
            "{e}"
        );
        std::fs::write(last.join("extra.json"), b"{}").unwrap();
        // The previous checkpoint is kept, and `--resume` falls back to it, saying so;
        // evaluation does not.
        let state2 = TrainState {
            epochs_done: 2,
            step: 10,
            ..state.clone()
        };
        save(dir, &net(&device), &optim(), &state2, |_| Ok(())).unwrap();
        assert_eq!(
            load_state(&dir.join("checkpoints/previous")).unwrap(),
            state
        );
        assert_eq!(load_state(&find(dir).unwrap()).unwrap(), state2);
        let model = dir.join("checkpoints/last/model.mpk");
        let bytes = std::fs::read(&model).unwrap();
        std::fs::write(&model, &bytes[..10]).unwrap();
        assert!(find(dir).is_err());
        assert_eq!(
            load_state(&find_for_resume(dir).unwrap().unwrap()).unwrap(),
            state
        );
        std::fs::write(dir.join("checkpoints/previous/state.json"), b"{}").unwrap();
        let e = format!("{:#}", find_for_resume(dir).unwrap_err());
        assert!(e.contains("last is corrupt (model.mpk"), "{e}");
        std::fs::write(&model, &bytes).unwrap();
        let last = find(dir).unwrap();
        // Without checksums.json (earlier versions) nothing is verified.
        std::fs::remove_file(last.join(CHECKSUMS)).unwrap();
        assert_eq!(load_state(&find(dir).unwrap()).unwrap(), state2);
    }
}
