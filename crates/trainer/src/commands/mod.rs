//! The CLI verbs that are more than a call into a family: `export` (shared file layout in
//! [`crate::run::export`], layouts in each family), `embed` (features of any network) and
//! `bench` (throughput next to PyTorch). `train` and `eval` go straight to
//! [`crate::families`].

pub mod bench;
pub mod embed;
