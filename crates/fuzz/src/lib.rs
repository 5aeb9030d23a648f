//! # unseen-fuzz
//!
//! A small, dependency-free mutation fuzzer (stable Rust, seeded, reproducible) for every
//! parser that reads a file a user may not control: IDX and CIFAR datasets, images behind
//! image folders and file lists, class and SSB split files, safetensors and PyTorch weights,
//! Unseen's own checkpoints and `state.json`, TOML configs and `--set` values. The targets
//! live in this crate's `tests/`; `scripts/fuzz.sh` runs them for as long as asked.
//!
//! Each case takes a valid seed file, mutates it (bit flips, random bytes, "interesting"
//! integers such as `0`, `u32::MAX` or the file's own length written over header fields,
//! truncation, insertion, deletion, duplication, or random bytes outright), writes it to a
//! file and calls the parser on it. The invariant checked for every case:
//! - the parser returns (`Ok` or an error), it never panics;
//! - an error names the file it read (so a user can find the bad file);
//! - the memory it allocates stays within a bound that depends on the file's actual size,
//!   never on a size the file claims (every allocation is counted: this crate installs
//!   [`peak_alloc::PeakAlloc`] as the global allocator of any binary that links it).
//!
//! A violation is shrunk (chunks removed while it persists), written to
//! `<tmp>/unseen-fuzz-failures/`, and fails the test with its bytes in hex. Minimised inputs
//! are kept as regression files in `crates/fuzz/regressions/<target>/` and replayed
//! unmutated before the random cases. The number of cases comes from
//! `UNSEEN_FUZZ_CASES` (default: each target's CI budget) or `UNSEEN_FUZZ_SECONDS` (run for
//! that long); `UNSEEN_FUZZ_SEED` changes the stream.

use peak_alloc::PeakAlloc;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// One fuzz case at a time per process, so the allocation peak belongs to the case.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A header field of a seed file that mutations should target on purpose (a dimension, a
/// count, an offset, a length): integers written there exercise size checks.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    /// Byte offset of the field.
    pub offset: usize,
    /// Width in bytes: 1, 2, 4 or 8.
    pub width: usize,
    /// Big-endian (IDX) or little-endian (safetensors, CIFAR has bytes only).
    pub big_endian: bool,
}

/// A valid input to start mutating from, with the fields worth targeting.
#[derive(Debug, Clone)]
pub struct Seed {
    /// What the seed is (printed with failures).
    pub name: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Header fields to target (may be empty).
    pub fields: Vec<Field>,
}

impl Seed {
    /// A seed without field hints.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Seed {
            name: name.into(),
            bytes,
            fields: Vec::new(),
        }
    }

    /// Adds a header field to target.
    pub fn field(mut self, offset: usize, width: usize, big_endian: bool) -> Self {
        assert!(matches!(width, 1 | 2 | 4 | 8), "field width {width}");
        self.fields.push(Field {
            offset,
            width,
            big_endian,
        });
        self
    }
}

/// How much fuzzing one target does.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Number of mutated cases (ignored when `seconds` is set).
    pub cases: u64,
    /// Run until this many seconds have passed.
    pub seconds: Option<f64>,
    /// Seed of the mutation stream.
    pub seed: u64,
}

impl Budget {
    /// `default_cases` unless `UNSEEN_FUZZ_CASES`, `UNSEEN_FUZZ_SECONDS` or
    /// `UNSEEN_FUZZ_SEED` say otherwise.
    pub fn from_env(default_cases: u64) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let parse = |name: &str, v: String| -> f64 {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        };
        Budget {
            cases: var("UNSEEN_FUZZ_CASES")
                .map_or(default_cases, |v| parse("UNSEEN_FUZZ_CASES", v) as u64),
            seconds: var("UNSEEN_FUZZ_SECONDS").map(|v| parse("UNSEEN_FUZZ_SECONDS", v)),
            seed: var("UNSEEN_FUZZ_SEED").map_or(0x5EED, |v| parse("UNSEEN_FUZZ_SEED", v) as u64),
        }
    }
}

/// The seeded mutation engine (SplitMix64).
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

impl Mutator {
    /// A mutator whose stream depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Mutator { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn interesting(&mut self, len: usize) -> u64 {
        const FIXED: [u64; 14] = [
            0,
            1,
            2,
            3,
            0x7f,
            0x80,
            0xff,
            0x7fff,
            0xffff,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            u64::MAX,
            1 << 40,
        ];
        match self.below(4) {
            0 | 1 => FIXED[self.below(FIXED.len())],
            2 => [len, len + 1, len.saturating_sub(1), len / 2, len * 2][self.below(5)] as u64,
            _ => self.next_u64() >> self.below(64),
        }
    }

    fn write_int(bytes: &mut [u8], offset: usize, width: usize, big_endian: bool, v: u64) {
        if offset + width > bytes.len() {
            return;
        }
        let le = v.to_le_bytes();
        for i in 0..width {
            let b = le[i];
            let at = if big_endian { width - 1 - i } else { i };
            bytes[offset + at] = b;
        }
    }

    /// One mutated copy of `seed`: one to four edits.
    pub fn mutate(&mut self, seed: &Seed) -> Vec<u8> {
        let mut b = seed.bytes.clone();
        if self.below(25) == 0 {
            let n = self.below(512);
            return (0..n).map(|_| self.next_u64() as u8).collect();
        }
        for _ in 0..1 + self.below(4) {
            let len = b.len();
            match self.below(10) {
                0 if len > 0 => {
                    let i = self.below(len);
                    b[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    b[i] = self.next_u64() as u8;
                }
                2 if len > 0 => {
                    let width = [1, 2, 4, 8][self.below(4)];
                    let offset = self.below(len);
                    let v = self.interesting(len);
                    let be = self.below(2) == 0;
                    Self::write_int(&mut b, offset, width, be, v);
                }
                3 | 4 if !seed.fields.is_empty() => {
                    let f = seed.fields[self.below(seed.fields.len())];
                    let v = self.interesting(len);
                    Self::write_int(&mut b, f.offset, f.width, f.big_endian, v);
                }
                5 if len > 0 => {
                    let keep = self.below(len);
                    b.truncate(keep);
                }
                6 => {
                    let at = self.below(len + 1);
                    let n = 1 + self.below(64);
                    let extra: Vec<u8> = (0..n).map(|_| self.next_u64() as u8).collect();
                    b.splice(at..at, extra);
                }
                7 if len > 1 => {
                    let start = self.below(len);
                    let end = (start + 1 + self.below(64)).min(len);
                    b.drain(start..end);
                }
                8 if len > 1 => {
                    let start = self.below(len);
                    let end = (start + 1 + self.below(256)).min(len);
                    let chunk = b[start..end].to_vec();
                    let at = self.below(len + 1);
                    b.splice(at..at, chunk);
                }
                _ => {
                    let n = 1 + self.below(16);
                    b.extend((0..n).map(|_| self.next_u64() as u8));
                }
            }
        }
        b
    }
}

/// What a fuzz target reads and how strictly it is judged.
pub struct Target<'a> {
    /// Name (used for regression folders and messages).
    pub name: &'a str,
    /// The file name each case is written under (some parsers look at the extension).
    pub file_name: &'a str,
    /// The most bytes a case of `len` input bytes may allocate.
    pub alloc_limit: fn(usize) -> usize,
    /// Whether an error must contain the file's name.
    pub names_file: bool,
}

impl<'a> Target<'a> {
    /// A target judged with [`default_alloc_limit`], whose errors must name the file.
    pub fn new(name: &'a str, file_name: &'a str) -> Self {
        Target {
            name,
            file_name,
            alloc_limit: default_alloc_limit,
            names_file: true,
        }
    }
}

/// 64 MiB plus 64 bytes per input byte: generous for parsing and decoding, far below what
/// trusting a claimed size (a `u32` count, a 64-bit length) would allocate.
pub fn default_alloc_limit(len: usize) -> usize {
    (64 << 20) + 64 * len
}

/// What a fuzz run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Cases run (regression files included).
    pub cases: u64,
    /// Cases the parser accepted.
    pub accepted: u64,
    /// Cases refused with an error.
    pub refused: u64,
    /// Distinct error messages (file path removed), a rough measure of coverage.
    pub distinct_errors: usize,
    /// The largest allocation peak of one case, in bytes.
    pub peak_bytes: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

enum Verdict {
    Fine {
        accepted: bool,
        message: Option<String>,
        peak: usize,
    },
    Bad(String),
}

fn judge(
    target: &Target,
    path: &Path,
    bytes: &[u8],
    parse: &dyn Fn(&Path) -> Result<(), String>,
) -> Verdict {
    if let Err(e) = std::fs::write(path, bytes) {
        panic!("cannot write fuzz input {}: {e}", path.display());
    }
    ALLOC.reset_peak_usage();
    let before = ALLOC.current_usage();
    let result = catch_unwind(AssertUnwindSafe(|| parse(path)));
    let peak = ALLOC.peak_usage().saturating_sub(before);
    let limit = (target.alloc_limit)(bytes.len());
    let verdict = match result {
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(non-string panic)".into());
            Verdict::Bad(format!("panicked: {msg}"))
        }
        Ok(Ok(())) => Verdict::Fine {
            accepted: true,
            message: None,
            peak,
        },
        Ok(Err(msg)) => {
            if target.names_file && !msg.contains(target.file_name) {
                Verdict::Bad(format!("error does not name the file: {msg}"))
            } else {
                Verdict::Fine {
                    accepted: false,
                    message: Some(msg.replace(&path.display().to_string(), "<file>")),
                    peak,
                }
            }
        }
    };
    match verdict {
        Verdict::Fine { peak, .. } if peak > limit => Verdict::Bad(format!(
            "allocated {peak} bytes for a {}-byte input (limit {limit})",
            bytes.len()
        )),
        v => v,
    }
}

fn kind(problem: &str) -> &str {
    problem.split(':').next().unwrap_or(problem)
}

/// Removes chunks of `bytes` while the same kind of problem persists.
fn shrink(
    target: &Target,
    path: &Path,
    mut bytes: Vec<u8>,
    problem: &str,
    parse: &dyn Fn(&Path) -> Result<(), String>,
) -> Vec<u8> {
    let want = kind(problem).to_string();
    let mut chunk = bytes.len().div_ceil(2).max(1);
    let mut tries = 0;
    while chunk >= 1 && tries < 4000 {
        let mut i = 0;
        let mut changed = false;
        while i < bytes.len() && tries < 4000 {
            let mut candidate = bytes.clone();
            candidate.drain(i..(i + chunk).min(bytes.len()));
            tries += 1;
            match judge(target, path, &candidate, parse) {
                Verdict::Bad(p) if kind(&p) == want => {
                    bytes = candidate;
                    changed = true;
                }
                _ => i += chunk,
            }
        }
        if !changed {
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
    }
    bytes
}

fn hex(bytes: &[u8]) -> String {
    let shown: Vec<String> = bytes.iter().take(512).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 512 { " ..." } else { "" };
    format!("{}{more}", shown.join(""))
}

/// The folder of a target's regression inputs: `crates/fuzz/regressions/<target>/`.
pub fn regressions_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target)
}

/// Runs `target`: its regression files unmutated, each seed unmutated, then mutated cases
/// until the budget is spent. `parse` reads the file at the path it is given. Panics (fails
/// the test) on the first violation, after shrinking it.
pub fn run(
    target: &Target,
    seeds: &[Seed],
    budget: Budget,
    parse: impl Fn(&Path) -> Result<(), String>,
) -> Report {
    assert!(!seeds.is_empty(), "fuzz target {} has no seed", target.name);
    let _guard = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join(target.file_name);
    let start = Instant::now();
    let mut report = Report::default();
    let mut messages = std::collections::BTreeSet::new();
    let mut mutator = Mutator::new(budget.seed ^ fnv(target.name));

    let mut fixed: Vec<(String, Vec<u8>)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir(regressions_dir(target.name)) {
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f).expect("regression file");
            fixed.push((format!("regression {}", f.display()), bytes));
        }
    }
    for s in seeds {
        fixed.push((format!("seed {}", s.name), s.bytes.clone()));
    }

    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut case = 0u64;
    let mut failure = None;
    loop {
        let (origin, bytes) = if (case as usize) < fixed.len() {
            fixed[case as usize].clone()
        } else {
            let done = match budget.seconds {
                Some(s) => start.elapsed().as_secs_f64() >= s,
                None => case >= budget.cases + fixed.len() as u64,
            };
            if done {
                break;
            }
            let s = &seeds[mutator.below(seeds.len())];
            (
                format!("case {case} (from seed {})", s.name),
                mutator.mutate(s),
            )
        };
        case += 1;
        match judge(target, &path, &bytes, &parse) {
            Verdict::Fine {
                accepted,
                message,
                peak,
            } => {
                report.peak_bytes = report.peak_bytes.max(peak);
                if accepted {
                    report.accepted += 1;
                } else {
                    report.refused += 1;
                }
                if let Some(m) = message {
                    if messages.len() < 100_000 {
                        messages.insert(m);
                    }
                }
            }
            Verdict::Bad(problem) => {
                let small = shrink(target, &path, bytes, &problem, &parse);
                failure = Some((origin, problem, small));
                break;
            }
        }
    }
    std::panic::set_hook(previous_hook);
    report.cases = case;
    report.distinct_errors = messages.len();
    report.seconds = start.elapsed().as_secs_f64();

    if let Some((origin, problem, small)) = failure {
        let out = std::env::temp_dir().join("unseen-fuzz-failures");
        let _ = std::fs::create_dir_all(&out);
        let file = out.join(format!("{}-{case}.bin", target.name));
        let _ = std::fs::write(&file, &small);
        panic!(
            "fuzz target {}: {origin} {problem}\nminimised to {} bytes, written to {}; keep it \
             as crates/fuzz/regressions/{}/<name>.bin once fixed\nhex: {}",
            target.name,
            small.len(),
            file.display(),
            target.name,
            hex(&small)
        );
    }
    println!(
        "fuzz {}: {} cases ({} accepted, {} refused, {} distinct errors), peak {:.1} MiB, \
         {:.1} s",
        target.name,
        report.cases,
        report.accepted,
        report.refused,
        report.distinct_errors,
        report.peak_bytes as f64 / (1 << 20) as f64,
        report.seconds
    );
    report
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_varied() {
        let seed = Seed::new("s", (0..100u8).collect()).field(0, 4, true);
        let a: Vec<Vec<u8>> = {
            let mut m = Mutator::new(7);
            (0..50).map(|_| m.mutate(&seed)).collect()
        };
        let b: Vec<Vec<u8>> = {
            let mut m = Mutator::new(7);
            (0..50).map(|_| m.mutate(&seed)).collect()
        };
        assert_eq!(a, b);
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 40, "{} distinct of 50", distinct.len());
        assert!(a.iter().any(|x| x.len() < 100) && a.iter().any(|x| x.len() > 100));
    }

    #[test]
    fn a_panicking_parser_is_caught_and_shrunk() {
        // A parser that panics when byte 0x42 occurs anywhere: the harness must catch it
        // and shrink the input to that one byte.
        let target = Target::new("selftest_panic", "input.bin");
        let seeds = [Seed::new("s", vec![0x42; 40])];
        let err = catch_unwind(|| {
            run(
                &target,
                &seeds,
                Budget {
                    cases: 10,
                    seconds: None,
                    seed: 1,
                },
                |p| {
                    let b = std::fs::read(p).unwrap();
                    if b.contains(&0x42) {
                        panic!("found it");
                    }
                    Ok(())
                },
            )
        })
        .expect_err("must fail");
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("panicked: found it"), "{msg}");
        assert!(msg.contains("minimised to 1 bytes"), "{msg}");
    }

    #[test]
    fn claimed_size_allocations_are_caught() {
        // "Trusts" a u32 length from the file and allocates it.
        let target = Target::new("selftest_alloc", "input.bin");
        let seeds = [Seed::new("s", vec![0, 0, 0, 4]).field(0, 4, true)];
        let err = catch_unwind(|| {
            run(
                &target,
                &seeds,
                Budget {
                    cases: 2000,
                    seconds: None,
                    seed: 3,
                },
                |p| {
                    let b = std::fs::read(p).unwrap();
                    if b.len() < 4 {
                        return Err(format!("{}: too short", p.display()));
                    }
                    let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    let v = vec![1u8; n.min(1 << 30)];
                    std::hint::black_box(&v);
                    Ok(())
                },
            )
        })
        .expect_err("must fail");
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("allocated"), "{msg}");
    }

    #[test]
    fn errors_must_name_the_file() {
        let target = Target::new("selftest_name", "input.bin");
        let seeds = [Seed::new("s", vec![1])];
        let err = catch_unwind(|| {
            run(
                &target,
                &seeds,
                Budget {
                    cases: 1,
                    seconds: None,
                    seed: 3,
                },
                |_| Err("bad".into()),
            )
        })
        .expect_err("must fail");
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.contains("does not name the file"), "{msg}");
    }
}
