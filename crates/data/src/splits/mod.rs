//! Class-based splits and OOD benchmark descriptions.
//!
//! - [`ClassSpec`]: class lists written as `"0-5"`, `"6,7,8,9"`, `"0-4,7"`; keep them with
//!   [`ImageSet::subset_classes`](crate::ImageSet::subset_classes).
//! - [`per_class_limit`] and [`fraction_split`]: seeded, per-class (stratified) subsampling.
//! - [`OodBenchmark`]: the ID set and the named `near` / `far` OOD sets of a benchmark, as a
//!   config describes them (serde, TOML). Loading the sets is the trainer's job (with
//!   [`formats`](crate::formats)); this module only describes and validates.
//!
//! Everything here is deterministic: the same input and the same [`Rng`](crate::Rng) state
//! give the same split, and the order of images within a split is their original order.

mod benchmark;
mod classes;

pub use benchmark::{DatasetRef, OodBenchmark, OodGroup, OodSet, SOURCES};
pub use classes::{fraction_split, per_class_limit, ClassSpec};
