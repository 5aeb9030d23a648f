//! # trainer
//!
//! Training, evaluation, export and benchmarks of Unseen, behind the `trainer`
//! command-line tool (`main.rs`; the README shows every command). The library is generic
//! over the burn backend; `main` monomorphises it for the device named with `--device`
//! ([`run::device`]).
//!
//! The map (`docs/architecture.md` walks through it):
//! - [`config`]: the experiment file, strictly checked; it knows no family or method.
//! - [`run`]: what every run shares. [`run::driver`] is the one training loop (run folder,
//!   seed, resume, schedule, progress, TensorBoard, NaN guard, optimiser step, checkpoints
//!   and `best/`, Ctrl-C, final evaluation); [`run::family::Family`] is the trait a family
//!   implements for it; checkpoints, optimisers, the one inference path, EMA, export files.
//! - [`families`]: `ood` (ID classification + OOD detection), `gcd` (category discovery),
//!   `ossl` (open-set SSL). Each owns its config section, model, evaluation, export layout
//!   and a registry of its methods (`families/<family>/methods/`, one file per paper).
//!   [`families`] itself is the one place that dispatches on the family.
//! - [`commands`]: the CLI verbs beyond train/eval (`embed`, `bench`).
//!
//! A new method is a loss in `crates/losses`, one method file, one config and one registry
//! line (`docs/adding-a-method.md`).

pub mod commands;
pub mod config;
pub mod families;
pub mod run;
