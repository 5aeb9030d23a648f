//! The CLI verbs that are more than a call into a family: `export` (shared file layout in
//! [`crate::run::export`], layouts in each family), `embed` (features of any network),
//! `predict` (a fitted detector's verdict on a folder of images) and `bench` (throughput
//! next to PyTorch). `train` and `eval` go straight to
//! [`crate::families`].

pub mod bench;
pub mod embed;
pub mod predict;
