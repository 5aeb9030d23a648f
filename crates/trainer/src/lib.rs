//! # trainer
//!
//! Recipes, the shared training loop, checkpoints, TensorBoard logging, evaluation, export
//! and benchmarks of Unseen, behind the `trainer` command-line tool (see `main.rs` and the
//! README for every command).
//!
//! The library is generic over the burn backend; `main` monomorphises it for the device
//! named with `--device` ([`device`]).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod data_setup;
pub mod device;
pub mod embed;
pub mod evaluate;
pub mod export;
pub mod gcd;
pub mod io;
pub mod optim;
pub mod ossl;
pub mod recipes;
pub mod tb;
pub mod train;
