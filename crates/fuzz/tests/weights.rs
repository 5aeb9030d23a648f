//! Fuzz targets for the pretrained-weights reader `unseen_backbones::weights::read_tensors`:
//! safetensors, PyTorch zip (`torch.save`) and PyTorch legacy-format files.
//!
//! Seeds: a safetensors file written by `weights::to_safetensors` (f32, f16, bf16, f64, an
//! int64 `num_batches_tracked`, an empty tensor, metadata); the torch.save replicas
//! `tiny_zip.pth` / `tiny_legacy.pth` and two of the exploit files from
//! `crates/backbones/tests/fixtures/untrusted/` (see `make_untrusted.py` there), so that
//! mutations explore both accepted files and refusals. Field hints target the safetensors
//! header length, the zip end records and local sizes, pickle string lengths and the legacy
//! storages' element counts. Besides the harness's invariants (no panic, errors name the
//! file, allocation bounded by the input's actual size), every accepted tensor must hold as
//! many values as its shape says.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use unseen_backbones::weights::{read_tensors, to_safetensors, TensorMap};
use unseen_fuzz::{regressions_dir, run, Budget, Report, Seed, Target};

/// One target at a time in this process (the harness counts every allocation).
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cases per target in CI (each target runs a few seconds in the dev test profile).
const CI_CASES: u64 = 2500;

fn untrusted(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../backbones/tests/fixtures/untrusted")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Reads the file. An accepted tensor must hold as many values as its shape says, and must
/// not be zeros the file does not contain: a run of `k` values that are exactly `+0.0` needs
/// at least `2k` zero bytes in a row in the file (the narrowest float is 2 bytes). This
/// catches a reader that fills a missing or short storage with zeros.
fn parse(path: &Path) -> Result<(), String> {
    let tensors = read_tensors(path, None).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(path).expect("the case file");
    let zero_bytes = longest_run(bytes.iter().map(|&b| b == 0));
    for (name, t) in &tensors {
        let n = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if n != Some(t.values.len()) {
            panic!(
                "tensor {name}: shape {:?} but {} values",
                t.shape,
                t.values.len()
            );
        }
        let zeros = longest_run(t.values.iter().map(|v| v.to_bits() == 0));
        if 2 * zeros > zero_bytes {
            panic!(
                "silent zeros: tensor {name} has {zeros} zero values in a row but the file has \
                 at most {zero_bytes} zero bytes in a row"
            );
        }
    }
    Ok(())
}

fn longest_run(flags: impl Iterator<Item = bool>) -> usize {
    let (mut best, mut run) = (0, 0);
    for f in flags {
        run = if f { run + 1 } else { 0 };
        best = best.max(run);
    }
    best
}

fn check_report(r: &Report) {
    assert!(r.accepted > 0, "no case accepted: the seeds are not valid");
    assert!(
        r.refused > 0,
        "no case refused: the mutations do not reach the parser"
    );
}

/// Offsets of the 4-byte length of every BINUNICODE in `bytes[from..to]` (a heuristic: the
/// opcode byte `X` followed by a small length).
fn binunicode_lengths(bytes: &[u8], from: usize, to: usize) -> Vec<usize> {
    (from..to.saturating_sub(5))
        .filter(|&i| {
            bytes[i] == b'X' && {
                let n = u32::from_le_bytes(bytes[i + 1..i + 5].try_into().unwrap());
                n > 0 && n < 64 && i + 5 + n as usize <= to
            }
        })
        .map(|i| i + 1)
        .collect()
}

#[test]
fn safetensors() {
    let _g = serial();
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut t = TensorMap::new();
    use safetensors::Dtype;
    t.insert(
        "conv.weight".into(),
        (
            Dtype::F32,
            vec![2, 1, 2, 2],
            f32s(&[0.5, -1.0, 2.0, 0.0, 1.0, 3.0, -2.0, 0.25]),
        ),
    );
    t.insert(
        "conv.bias".into(),
        (
            Dtype::F16,
            vec![2],
            [1.5f32, -0.5]
                .iter()
                .flat_map(|&x| burn::tensor::f16::from_f32(x).to_le_bytes())
                .collect(),
        ),
    );
    t.insert(
        "bn.weight".into(),
        (
            Dtype::BF16,
            vec![2],
            [0.5f32, 2.0]
                .iter()
                .flat_map(|&x| burn::tensor::bf16::from_f32(x).to_le_bytes())
                .collect(),
        ),
    );
    t.insert(
        "fc.weight".into(),
        (
            Dtype::F64,
            vec![3],
            [1.0f64, 2.0, 3.0]
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect(),
        ),
    );
    t.insert("empty".into(), (Dtype::F32, vec![0, 4], Vec::new()));
    t.insert(
        "bn.num_batches_tracked".into(),
        (Dtype::I64, vec![], 7i64.to_le_bytes().to_vec()),
    );
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = to_safetensors(&t, Some(meta)).unwrap();
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // The header length, and the JSON's numbers (offsets and dims) as ASCII digits are
    // reached by byte mutations.
    let seed = Seed::new("to_safetensors", bytes.clone()).field(0, 8, false);
    let small = {
        let mut one = TensorMap::new();
        one.insert("w".into(), (Dtype::F32, vec![2], f32s(&[1.0, -1.0])));
        to_safetensors(&one, None).unwrap()
    };
    let seeds = [seed, Seed::new("one tensor", small).field(0, 8, false)];
    assert!(header < bytes.len());
    let r = run(
        &Target::new("weights_safetensors", "weights.safetensors"),
        &seeds,
        Budget::from_env(CI_CASES),
        parse,
    );
    check_report(&r);
}

/// Field hints for a torch.save zip: the end-of-central-directory (and zip64) sizes and
/// offsets, every record's central sizes and offset, and data.pkl's string lengths.
fn zip_seed(name: &str, bytes: Vec<u8>) -> Seed {
    let mut seed = Seed::new(name, bytes.clone());
    let n = bytes.len();
    let eocd = n - 22;
    assert_eq!(&bytes[eocd..eocd + 4], b"PK\x05\x06");
    for (off, w) in [(8, 2), (10, 2), (12, 4), (16, 4)] {
        seed = seed.field(eocd + off, w, false);
    }
    if let Some(z64) = bytes.windows(4).rposition(|w| w == b"PK\x06\x06") {
        for off in [24, 32, 40, 48] {
            seed = seed.field(z64 + off, 8, false);
        }
    }
    let mut i = 0;
    while let Some(p) = bytes[i..].windows(4).position(|w| w == b"PK\x01\x02") {
        let c = i + p;
        for (off, w) in [(20, 4), (24, 4), (28, 2), (42, 4)] {
            seed = seed.field(c + off, w, false);
        }
        i = c + 4;
    }
    // data.pkl is the first record; torch.save aligns its data to byte 64.
    let first = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    let pkl_len = u32::from_le_bytes(bytes[first + 24..first + 28].try_into().unwrap()) as usize;
    for off in binunicode_lengths(&bytes, 64, 64 + pkl_len) {
        seed = seed.field(off, 4, false);
    }
    seed
}

#[test]
fn pytorch_zip() {
    let _g = serial();
    let seeds = [
        zip_seed("tiny_zip.pth", untrusted("tiny_zip.pth")),
        zip_seed("evil_os_system.pth", untrusted("evil_os_system.pth")),
    ];
    let r = run(
        &Target::new("weights_pytorch_zip", "weights.pth"),
        &seeds,
        Budget::from_env(CI_CASES),
        parse,
    );
    check_report(&r);
}

/// Field hints for a legacy file: pickle string lengths and the storages' element counts
/// (found by walking the storages back from the end: the sizes are known).
fn legacy_seed(name: &str, bytes: Vec<u8>, storage_bytes: &[usize]) -> Seed {
    let mut seed = Seed::new(name, bytes.clone());
    let mut end = bytes.len();
    for &b in storage_bytes.iter().rev() {
        end -= b + 8;
        seed = seed.field(end, 8, false);
    }
    for off in binunicode_lengths(&bytes, 0, end) {
        seed = seed.field(off, 4, false);
    }
    seed
}

#[test]
fn pytorch_legacy() {
    let _g = serial();
    // tiny_legacy.pth's storages in key order: f32 x72, f32 x2, f16 x2, bf16 x2, i64 x1,
    // f64 x9; evil_legacy_os_system.pth has one f32 x2.
    let seeds = [
        legacy_seed(
            "tiny_legacy.pth",
            untrusted("tiny_legacy.pth"),
            &[288, 8, 4, 4, 8, 72],
        ),
        legacy_seed(
            "evil_legacy_os_system.pth",
            untrusted("evil_legacy_os_system.pth"),
            &[8],
        ),
    ];
    let r = run(
        &Target::new("weights_pytorch_legacy", "weights.pth"),
        &seeds,
        Budget::from_env(CI_CASES),
        parse,
    );
    check_report(&r);
}

/// Every kept PyTorch regression input is refused with an error (each was accepted with
/// zeros, over-allocated or crashed before the checks of `weights::pickle_guard`); the
/// targets above only require that reading them stays within the invariants.
#[test]
fn pytorch_regressions_are_refused() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.pth");
    let mut n = 0;
    for target in ["weights_pytorch_zip", "weights_pytorch_legacy"] {
        let mut files: Vec<_> = std::fs::read_dir(regressions_dir(target))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            std::fs::copy(&f, &path).unwrap();
            let err = read_tensors(&path, None).map(|t| t.len());
            assert!(
                matches!(&err, Err(e) if e.to_string().contains("weights.pth")),
                "{}: {err:?}",
                f.display()
            );
            n += 1;
        }
    }
    assert!(n >= 10, "{n} regression files");
}
