//! What every run shares, whatever its family: the one training loop ([`driver`]) and the
//! hooks a family gives it ([`family`]), the run folder ([`run_dir`]), checkpoints, the
//! optimiser and schedules, TensorBoard, file writes, devices, the one
//! inference path ([`infer`]), EMA, data loading, export files and Ctrl-C.

pub mod checkpoint;
pub mod data;
pub mod detect;
pub mod device;
pub mod driver;
pub mod ema;
pub mod export;
pub mod family;
pub mod faults;
pub mod feature_cache;
pub mod infer;
pub mod interrupt;
pub mod io;
pub mod optim;
pub mod preprocess;
pub mod run_dir;
pub mod tb;
