//! Ctrl-C and SIGTERM: the first one asks the run to stop after the step in progress (the
//! driver then writes a checkpoint and returns [`crate::run::run_dir::Interrupted`]); a second
//! one ends the process at once, as an impatient user expects.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once per process; later calls do nothing).
///
/// # Errors
/// The operating system refused a handler.
pub fn install() -> anyhow::Result<()> {
    if FLAG.get().is_some() {
        return Ok(());
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag before this signal sets it: a signal that
        // finds the flag already set exits with status 130 (128 + SIGINT).
        signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone())?;
        signal_hook::flag::register(sig, flag.clone())?;
    }
    let _ = FLAG.set(flag);
    Ok(())
}

/// Whether a stop was asked for since [`install`].
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}
