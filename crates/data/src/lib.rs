//! # unseen-data
//!
//! Datasets, benchmark splits, augmentation and loaders for Unseen.
//!
//! - [`formats`]: readers for IDX (MNIST / Fashion-MNIST, raw or gzip), CIFAR-10/100 binary
//!   and image folders. Every reader validates headers and sizes and returns a typed
//!   [`DataError`] naming the file.
//! - [`ImageSet`]: the one in-memory representation every reader returns (u8 pixels, CHW).
//! - [`splits`]: seeded class-subset splits, OOD benchmark descriptions, GCD and open-set
//!   SSL splits, the Semantic Shift Benchmark's class lists.
//! - [`transforms`]: normalize, random crop with padding, horizontal flip, mixup, CutMix,
//!   RandAugment + Cutout, weak / strong views.
//! - [`loader`]: seeded, parallel batching into `f32` buffers ready for burn tensors.
//! - [`multiview`]: batches with several augmented views per image (contrastive views for
//!   GCD / SimGCD, weak / strong views for FixMatch / IOMatch).
//! - [`sampler`]: weighted sampling with replacement (SimGCD's labelled / unlabelled balance).
//! - [`download`]: fetch official archives into a cache with checksum verification.
//! - [`rng`]: the deterministic random generator used everywhere (stable across versions).

pub mod dataset;
pub mod download;
mod epoch;
pub mod error;
pub mod formats;
pub mod loader;
pub mod multiview;
pub mod rng;
pub mod sampler;
pub mod splits;
pub mod transforms;

pub use dataset::ImageSet;
pub use error::DataError;
pub use rng::Rng;
