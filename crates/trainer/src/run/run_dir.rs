//! The run folder and how a run was asked to go: options, the folder's creation or reuse,
//! the errors that stop a run on purpose, and the epoch progress bar.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::ExperimentConfig;

/// How `train` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    /// Device label for `metrics.json` (`cpu`, `cuda:0`, ...).
    pub device_label: String,
    /// Continue this run folder from its last checkpoint.
    pub resume: Option<PathBuf>,
    /// Replace an existing run folder.
    pub overwrite: bool,
    /// Testing aid: stop the process right after this many epochs are checkpointed, as if
    /// it had been killed (the CLI exits with code 3).
    pub halt_after_epochs: Option<usize>,
    /// Testing aid: behave as if Ctrl-C arrived during this (1-based) step: the step is
    /// finished, a checkpoint written and [`Interrupted`] returned.
    pub interrupt_after_steps: Option<usize>,
    /// No progress bar or per-epoch lines.
    pub quiet: bool,
}

/// Returned (as an error) when `halt_after_epochs` stopped the run on purpose.
#[derive(Debug, thiserror::Error)]
#[error("run halted on request after {0} checkpointed epoch(s)")]
pub struct Halted(pub usize);

/// Returned when Ctrl-C (SIGINT) or SIGTERM stopped the run: the step in progress was
/// finished and checkpointed.
#[derive(Debug, thiserror::Error)]
#[error(
    "interrupted after step {step} (epoch {epoch}); the checkpoint {checkpoint} holds it: \
     continue with `trainer train --resume {run}`"
)]
pub struct Interrupted {
    /// Steps done.
    pub step: usize,
    /// The epoch of the last finished step (1-based).
    pub epoch: usize,
    /// The checkpoint written.
    pub checkpoint: String,
    /// The run folder.
    pub run: String,
}

/// Returned when the loss stops being finite.
#[derive(Debug, thiserror::Error)]
#[error(
    "the loss became {value} at epoch {epoch}, step {step} ({terms}); training stopped. The last \
     good checkpoint is kept in {checkpoint} ({done} epoch(s) done). Lower `train.lr`, set \
     `train.grad_clip`, or check the data"
)]
pub struct NonFiniteLoss {
    /// The offending value.
    pub value: f32,
    /// Epoch (1-based).
    pub epoch: usize,
    /// Global step.
    pub step: usize,
    /// The loss terms at that step.
    pub terms: String,
    /// Last checkpoint folder.
    pub checkpoint: String,
    /// Epochs in that checkpoint.
    pub done: usize,
}

/// The progress bar of one epoch of `steps` steps (hidden with `--quiet`):
/// `epoch 3/10 [=====>    ] 40/100 loss 0.1234 (12s)`.
pub fn epoch_bar(quiet: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
}

/// The config a run folder was started with (`<dir>/config.toml`), as written.
///
/// # Errors
/// `dir` is not a run folder, or its config cannot be read.
pub fn saved_config(dir: &Path) -> Result<ExperimentConfig> {
    let p = dir.join("config.toml");
    if !p.exists() {
        bail!(
            "cannot resume: {} is not a run folder (no config.toml in it)",
            dir.display()
        );
    }
    crate::config::load(&p, &[])
        .with_context(|| format!("cannot read the saved config of {}", dir.display()))
}

/// Refuses to resume `dir` with a config `cfg` other than the one it was started with
/// (`saved`, compared in the same form as `cfg`: the caller resolves both).
///
/// # Errors
/// The configs differ.
pub fn check_resume(dir: &Path, saved: ExperimentConfig, cfg: &ExperimentConfig) -> Result<()> {
    if saved != *cfg {
        bail!(
            "the config differs from the one {} was started with; resume without --config \
             (the saved config is used) or start a new run",
            dir.display()
        );
    }
    Ok(())
}

/// Prepares the run folder of every training loop: refuses to clobber an existing one
/// unless asked (`--overwrite`) and writes `config.toml` into a new one; on `--resume`,
/// checks that the folder is a run (that `cfg` is its config, [`check_resume`] checks).
pub fn prepare_run_dir(cfg: &ExperimentConfig, opts: &TrainOptions) -> Result<PathBuf> {
    if let Some(dir) = &opts.resume {
        // Is a run folder; whether `cfg` is its config the caller checked ([`check_resume`]
        // on the resolved forms).
        saved_config(dir)?;
        return Ok(dir.clone());
    }
    let dir = cfg.run_dir();
    if dir.exists() {
        if !opts.overwrite {
            bail!(
                "run folder {} already exists; continue it with `--resume {}`, replace it with \
                 `--overwrite`, or pick another name with `--set name=...`",
                dir.display(),
                dir.display()
            );
        }
        RunLock::check_free(&dir)?;
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    // The folder appears with its config in it (written beside it, then renamed): a run
    // killed before then leaves no folder, and the same command starts it again.
    let toml = cfg.to_toml()?;
    crate::run::io::replace_dir(&dir, |tmp| {
        crate::run::io::write_atomic(&tmp.join("config.toml"), toml.as_bytes())
    })?;
    Ok(dir)
}

/// One writer per run folder: `<run>/.lock` holds the PID and host of the process training
/// in it, created atomically (`create_new`) and removed when the lock is dropped (the run
/// ends, stops on an error, or is interrupted). A second `train` or `--resume` on the folder
/// is refused, naming the holder; a lock left by a process that no longer runs (killed with
/// SIGKILL, a crash) on this host is taken over with a warning. Liveness is read from
/// `/proc/<pid>` (Linux); elsewhere, and for a lock from another host, the lock is assumed
/// live.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

/// The holder recorded in a lock file: `(pid, host)`.
fn lock_holder(path: &Path) -> Option<(u32, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    Some((pid, parts.next().unwrap_or("").to_string()))
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

/// Whether the lock holder `(pid, host)` may still be running.
fn holder_alive(pid: u32, host: &str) -> bool {
    if host != host_name() || !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

impl RunLock {
    /// Takes the lock of `run_dir` (which must exist).
    ///
    /// # Errors
    /// Another live process holds it (named), or the file cannot be written.
    pub fn acquire(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join(".lock");
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    writeln!(f, "{} {}", std::process::id(), host_name())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Self::check_free(run_dir)?;
                    // A stale lock: check_free said so; take it over.
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot remove the stale {}", path.display()))?;
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        bail!("cannot take the lock {}", path.display())
    }

    /// Checks that no live process holds `run_dir`'s lock; a stale lock is reported with a
    /// warning (and left for [`RunLock::acquire`] to take over).
    ///
    /// # Errors
    /// The holder is running (or cannot be checked: another host).
    pub fn check_free(run_dir: &Path) -> Result<()> {
        let path = run_dir.join(".lock");
        if !path.exists() {
            return Ok(());
        }
        match lock_holder(&path) {
            Some((pid, host)) if holder_alive(pid, &host) => bail!(
                "run folder {} is in use by process {pid} on {host} (lock {}): wait for it to \
                 finish, or remove the lock if that process is gone",
                run_dir.display(),
                path.display()
            ),
            Some((pid, _)) => eprintln!(
                "warning: taking over the lock {} of process {pid}, which is no longer running",
                path.display()
            ),
            None => eprintln!(
                "warning: taking over the unreadable lock {}",
                path.display()
            ),
        }
        Ok(())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
