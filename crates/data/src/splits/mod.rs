//! Class-based splits and OOD benchmark descriptions.
//!
//! - [`ClassSpec`]: class lists written as `"0-5"`, `"6,7,8,9"`, `"0-4,7"`; keep them with
//!   [`ImageSet::subset_classes`](crate::ImageSet::subset_classes).
//! - [`per_class_limit`] and [`fraction_split`]: seeded, per-class (stratified) subsampling.
//! - [`OodBenchmark`]: the ID set and the named `near` / `far` OOD sets of a benchmark, as a
//!   config describes them (serde, TOML). Loading the sets is the trainer's job (with
//!   [`formats`](crate::formats)); this module only describes and validates.
//! - [`GcdSplit`]: generalized category discovery (old / new classes, a labelled fraction
//!   of the old-class images), with the reference's defaults ([`GcdConfig::for_dataset`]).
//! - [`SsbSplit`]: the Semantic Shift Benchmark's class splits (CUB, Stanford Cars,
//!   FGVC-Aircraft bundled) in a plain-text format.
//! - [`OsslSplit`]: open-set semi-supervised learning (seen / unseen classes, labels per
//!   seen class), with IOMatch's CIFAR presets.
//!
//! Everything here is deterministic: the same input and the same [`Rng`](crate::Rng) state
//! (for GCD and OSSL splits, the same seed) give the same split, and the order of images
//! within a split is their original order.

mod benchmark;
mod classes;
pub mod gcd;
pub mod ossl;
pub mod ssb;

pub use benchmark::{DatasetRef, OodBenchmark, OodGroup, OodSet, SOURCES};
pub use classes::{fraction_split, per_class_limit, ClassSpec};
pub use gcd::{GcdConfig, GcdEval, GcdSplit, MergedSet, IMAGENET100_GCD_CLASSES};
pub use ossl::{OsslConfig, OsslSplit, OsslTest, CIFAR100_FINE_TO_COARSE};
pub use ssb::SsbSplit;
