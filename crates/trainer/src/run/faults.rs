//! Fault injection, for the reliability tests (`tests/crash.rs`, `scripts/crash_anywhere.sh`).
//!
//! Named points in the code where a test can make the process die or a write fail, chosen
//! with environment variables, all unset in normal use (then a point costs one atomic load):
//! - `UNSEEN_FAULT_TRACE=FILE` appends the name of every point reached to `FILE`, one per
//!   line, so a harness can list where a run can be killed;
//! - `UNSEEN_CRASH_AT=NAME:N` kills the process with `SIGKILL` (no destructor, no flush, as a
//!   power cut or the OOM killer would) the `N`-th time (from 1) point `NAME` is reached;
//! - `UNSEEN_FAIL_WRITE=NAME:N` makes point `NAME` fail from its `N`-th hit on with the
//!   error a full disk gives (`ENOSPC`), for the points that guard a write.
//!
//! The points: `step` (after each optimiser step), `infer` (each batch of an evaluation),
//! `evaluate` (before each evaluation), `write:<file>` (every file a run writes, after its
//! bytes went to the temporary file and before it is renamed into place), and
//! `replace:swap:<folder>` / `replace:keep:<folder>` (between the renames that put a new
//! checkpoint folder in place, [`crate::run::io::replace_dir`]).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

struct Plan {
    trace: Option<std::path::PathBuf>,
    crash: Option<(String, usize)>,
    fail: Option<(String, usize)>,
    hits: Mutex<HashMap<String, usize>>,
}

fn parse(var: &str) -> Option<(String, usize)> {
    let v = std::env::var(var).ok().filter(|v| !v.is_empty())?;
    let (name, n) = v.rsplit_once(':').unwrap_or((&v, "1"));
    match n.parse::<usize>() {
        Ok(n) if n > 0 => Some((name.to_string(), n)),
        _ => {
            eprintln!("warning: {var}={v} is not NAME:N with N >= 1; ignored");
            None
        }
    }
}

fn plan() -> Option<&'static Plan> {
    static PLAN: OnceLock<Option<Plan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let trace = std::env::var_os("UNSEEN_FAULT_TRACE").map(Into::into);
        let crash = parse("UNSEEN_CRASH_AT");
        let fail = parse("UNSEEN_FAIL_WRITE");
        (trace.is_some() || crash.is_some() || fail.is_some()).then(|| Plan {
            trace,
            crash,
            fail,
            hits: Mutex::new(HashMap::new()),
        })
    })
    .as_ref()
}

/// Point `name` is reached: traced, and the process killed here when `UNSEEN_CRASH_AT`
/// names this hit.
pub fn point(name: &str) {
    let _ = hit(name, false);
}

/// As [`point`], for a point that guards a write: also fails with `ENOSPC` when
/// `UNSEEN_FAIL_WRITE` names it.
///
/// # Errors
/// The injected "No space left on device".
pub fn write_point(name: &str) -> std::io::Result<()> {
    hit(name, true)
}

fn hit(name: &str, is_write: bool) -> std::io::Result<()> {
    let Some(plan) = plan() else {
        return Ok(());
    };
    let n = {
        let mut hits = plan.hits.lock().unwrap_or_else(|p| p.into_inner());
        let c = hits.entry(name.to_string()).or_insert(0);
        *c += 1;
        *c
    };
    if let Some(path) = &plan.trace {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{name}");
        }
    }
    if plan
        .crash
        .as_ref()
        .is_some_and(|(p, k)| p == name && *k == n)
    {
        // As `kill -9` from outside: nothing after this line runs.
        let _ = signal_hook::low_level::raise(signal_hook::consts::SIGKILL);
        std::process::abort();
    }
    if is_write
        && plan
            .fail
            .as_ref()
            .is_some_and(|(p, k)| p == name && n >= *k)
    {
        return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
    }
    Ok(())
}
