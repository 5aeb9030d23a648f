//! Crash-anywhere resume: a run killed with `SIGKILL` at any point, then continued with
//! `trainer train --resume`, ends with the same `metrics.json` as an uninterrupted run, bit
//! for bit (wall-clock times aside).
//!
//! The kill points come from the run itself: an uninterrupted run with
//! `UNSEEN_FAULT_TRACE` lists every fault point it passed (`trainer::run::faults`: each
//! optimiser step, each evaluation batch, each file written before its rename, each swap of
//! a checkpoint or `best/` folder). The test picks kill points from that list with a seeded
//! generator, one point kind after another (so a short run still covers checkpoint writes,
//! evaluation and best-checkpoint replacement), and kills a fresh run there with
//! `UNSEEN_CRASH_AT=NAME:N` (the process raises `SIGKILL` on itself, as `kill -9` would).
//! Then it does what a user would: `--resume` (or, when the run folder was never created,
//! the same command again), and compares.
//!
//! `UNSEEN_CRASH_KILLS` sets the number of kill points per family (default 4 in CI) and
//! `UNSEEN_CRASH_SEED` the seed; `scripts/crash_anywhere.sh` runs a long version.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64, to pick kill points reproducibly.
struct Pick(u64);

impl Pick {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) % n as u64) as usize
    }
}

fn run_with_env(args: &[String], env: &[(&str, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root())
        .output()
        .expect("run trainer")
}

/// `metrics.json` without wall-clock fields.
fn stable_metrics(run: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("train_seconds");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut m = metrics(run);
    strip(&mut m);
    m
}

/// The kill points chosen from a trace: `kills` (name, hit) pairs, one point kind after
/// another in a seeded order, a seeded hit of each.
fn choose(trace: &str, kills: usize, seed: u64) -> Vec<(String, usize)> {
    let mut hits: BTreeMap<&str, usize> = BTreeMap::new();
    for line in trace.lines() {
        *hits.entry(line).or_insert(0) += 1;
    }
    let mut kinds: Vec<(&str, usize)> = hits.into_iter().collect();
    let mut pick = Pick(seed);
    // Fisher-Yates over the kinds, then round-robin.
    for i in (1..kinds.len()).rev() {
        let j = pick.below(i + 1);
        kinds.swap(i, j);
    }
    (0..kills)
        .map(|k| {
            let (name, n) = kinds[k % kinds.len()];
            (name.to_string(), 1 + pick.below(n))
        })
        .collect()
}

/// Runs `args` once uninterrupted (tracing the fault points), then once per kill point:
/// killed there, resumed, compared. Returns the table rows (point, outcome).
fn crash_anywhere(family: &str, args: impl Fn(&Path) -> Vec<String>, run_name: &str) {
    let kills = env_usize("UNSEEN_CRASH_KILLS", 4);
    let seed = env_usize("UNSEEN_CRASH_SEED", 17) as u64;
    let tmp = tempfile::tempdir().unwrap();
    let trace = tmp.path().join("trace.txt");
    let full = tmp.path().join("full");
    let o = run_with_env(
        &args(&full),
        &[("UNSEEN_FAULT_TRACE", trace.display().to_string())],
    );
    assert!(o.status.success(), "{family}: {}", stderr(&o));
    let reference = stable_metrics(&full.join(run_name));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let salt = family
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
    let points = choose(&trace, kills, seed ^ salt);
    let mut table = Vec::new();
    for (i, (name, n)) in points.iter().enumerate() {
        let out = tmp.path().join(format!("kill{i}"));
        let a = args(&out);
        let o = run_with_env(&a, &[("UNSEEN_CRASH_AT", format!("{name}:{n}"))]);
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{family}: expected SIGKILL at {name}:{n}, got {:?}\n{}",
            o.status,
            stderr(&o)
        );
        let run = out.join(run_name);
        // What a user does next: continue the run; if the folder was never created (killed
        // before its config was in place), the same command again.
        let again = if run.join("config.toml").exists() {
            vec![
                "train".to_string(),
                "--resume".into(),
                run.display().to_string(),
                "--quiet".into(),
            ]
        } else {
            a.clone()
        };
        let o = run_with_env(&again, &[]);
        assert!(
            o.status.success(),
            "{family}: resume after a kill at {name}:{n} failed:\n{}",
            stderr(&o)
        );
        assert_eq!(
            stable_metrics(&run),
            reference,
            "{family}: metrics after a kill at {name}:{n} and resume differ"
        );
        table.push(format!("{family} | {name}:{n} | identical"));
    }
    println!("{}", table.join("\n"));
}

#[test]
fn ood_run_killed_anywhere_resumes_bit_identically() {
    crash_anywhere("ood", |out| tiny_args(out, &[]), "quickstart");
}

#[test]
fn gcd_run_killed_anywhere_resumes_bit_identically() {
    crash_anywhere(
        "gcd",
        |out| gcd_args("protogcd", out, &["--set", "train.epochs=2"]),
        "protogcd_mnist",
    );
}

#[test]
fn ossl_run_killed_anywhere_resumes_bit_identically() {
    crash_anywhere(
        "ossl",
        |out| ossl_args("iomatch", out, &[]),
        "iomatch_mnist",
    );
}

/// `trainer export` killed while writing its files, then run again with `--overwrite`,
/// writes the same bytes as an uninterrupted export.
#[test]
fn export_killed_anywhere_rewrites_the_same_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("runs");
    run_ok(&tiny_args(&out, &["--set", "train.epochs=1"]));
    let run = out.join("quickstart").display().to_string();
    let export = |dir: &Path, overwrite: bool| {
        let mut a: Vec<String> = ["export", "--run", &run, "--out"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.push(dir.join("model.safetensors").display().to_string());
        if overwrite {
            a.push("--overwrite".into());
        }
        a
    };
    let trace = tmp.path().join("trace.txt");
    let reference = tmp.path().join("reference");
    let o = run_with_env(
        &export(&reference, false),
        &[("UNSEEN_FAULT_TRACE", trace.display().to_string())],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trace = std::fs::read_to_string(&trace).unwrap();
    let names = [
        "model.safetensors",
        "model.json",
        "model.sample.safetensors",
    ];
    for point in trace.lines().filter(|l| l.starts_with("write:")) {
        let dir = tmp.path().join(point.replace(':', "_"));
        let o = run_with_env(
            &export(&dir, false),
            &[("UNSEEN_CRASH_AT", format!("{point}:1"))],
        );
        assert_eq!(o.status.signal(), Some(9), "{point}: {}", stderr(&o));
        // The weights file is written last: a killed export never leaves one.
        assert!(!dir.join("model.safetensors").exists(), "{point}");
        let o = run_with_env(&export(&dir, true), &[]);
        assert!(o.status.success(), "{point}: {}", stderr(&o));
        for n in names {
            assert!(
                std::fs::read(dir.join(n)).unwrap() == std::fs::read(reference.join(n)).unwrap(),
                "{point}: {n} differs from the uninterrupted export"
            );
        }
    }
}

/// Fills the file system holding `ballast` (written until `ENOSPC`), then frees `keep`
/// bytes: room for the run's small files, not for a checkpoint.
fn fill_disk(ballast: &Path, keep: u64) {
    use std::io::Write;
    let mut f = std::fs::File::create(ballast).unwrap();
    let mut chunk = vec![0u8; 1 << 20];
    while !chunk.is_empty() {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => {
                let half = chunk.len() / 2;
                chunk.truncate(half);
            }
        }
    }
    let len = f.metadata().unwrap().len();
    f.set_len(len.saturating_sub(keep)).unwrap();
    let _ = f.sync_all();
}

/// A small tmpfs mounted for the test (root only), unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .is_ok_and(|o| o.status.success());
        ok.then(|| SmallDisk(at.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).output();
    }
}

/// The disk fills up while a run writes its checkpoint: the run stops with the operating
/// system's error naming the file, the checkpoint before stays whole, and once space is
/// freed `--resume` ends with the uninterrupted run's metrics. On a real full file system
/// (a 16 MiB tmpfs, when the test may mount one: root) and with an injected `ENOSPC`
/// (`UNSEEN_FAIL_WRITE`, everywhere).
#[test]
fn full_disk_stops_the_run_and_keeps_the_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    run_ok(&tiny_args(&full, &[]));
    let reference = stable_metrics(&full.join("quickstart"));

    let check = |out: &Path, fill: &dyn Fn(), free: &dyn Fn(), env: &[(&str, String)]| {
        let o = run_with_env(&tiny_args(out, &["--halt-after-epochs", "1"]), &[]);
        assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
        let run = out.join("quickstart");
        fill();
        let resume: Vec<String> = ["train", "--resume", run.to_str().unwrap(), "--quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = run_with_env(&resume, env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("No space left on device"), "{err}");
        assert!(err.contains(&run.display().to_string()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // The checkpoint of epoch 1 is whole and still the last.
        let last = trainer::run::checkpoint::find(&run).unwrap();
        assert_eq!(
            trainer::run::checkpoint::load_state(&last)
                .unwrap()
                .epochs_done,
            1
        );
        free();
        let o = run_with_env(&resume, &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stable_metrics(&run), reference);
        err
    };

    // Injected: the model file of the next checkpoint fails to write.
    let out = tmp.path().join("injected");
    let err = check(
        &out,
        &|| {},
        &|| {},
        &[("UNSEEN_FAIL_WRITE", "write:model.mpk:1".to_string())],
    );
    println!("injected ENOSPC:\n{err}");

    // A real full file system.
    let at = tmp.path().join("disk");
    match SmallDisk::mount(&at, "16m") {
        None => println!("skipped the tmpfs case: cannot mount one here (not root?)"),
        Some(_disk) => {
            let out = at.join("runs");
            let ballast = at.join("ballast");
            let err = check(
                &out,
                &|| fill_disk(&ballast, 64 << 10),
                &|| std::fs::remove_file(&ballast).unwrap(),
                &[],
            );
            println!("full tmpfs:\n{err}");
        }
    }
}
