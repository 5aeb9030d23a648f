//! Untrusted PyTorch files: a pickle never runs code, and one that names a Python global
//! beyond a state dict's tensor and container types is refused, naming it.
//!
//! The `evil_*.pth` fixtures are working exploits (`make_untrusted.py --prove` unpickles each
//! with Python, and each creates its marker file `/tmp/unseen-untrusted-<variant>`); the
//! legitimate `tiny_*.pth` files are the same generator's torch.save replicas.

use std::path::{Path, PathBuf};

use unseen_backbones::weights::{read_tensors, WeightsError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/untrusted")
        .join(name)
}

#[test]
fn pickles_that_would_run_code_are_refused_and_run_nothing() {
    // (variant, the global the refusal must name)
    let cases = [
        ("os_system", "os.system"),
        ("posix_system", "posix.system"),
        ("builtins_eval", "builtins.eval"),
        ("subprocess_popen", "subprocess.Popen"),
        ("stack_global", "os.system"),
        ("inst", "os.system"),
        ("newobj_build", "evil.Payload"),
        ("legacy_os_system", "os.system"),
        ("legacy_sysinfo", "os.system"),
    ];
    for (variant, global) in cases {
        let marker = PathBuf::from(format!("/tmp/unseen-untrusted-{variant}"));
        let _ = std::fs::remove_file(&marker);
        let path = fixture(&format!("evil_{variant}.pth"));
        for key in [None, Some("payload")] {
            let err = read_tensors(&path, key).expect_err(variant);
            let msg = err.to_string();
            assert!(
                matches!(&err, WeightsError::Unsafe { global: g, .. } if g == global),
                "{variant}: {msg}"
            );
            assert!(
                msg.contains(&format!("`{global}`"))
                    && msg.contains(&format!("evil_{variant}.pth"))
                    && msg.contains("never executes code"),
                "{variant}: {msg}"
            );
        }
        assert!(
            !marker.exists(),
            "{variant}: the payload ran ({} exists)",
            marker.display()
        );
    }
}

#[test]
fn torch_save_replicas_load_exactly() {
    for file in ["tiny_zip.pth", "tiny_legacy.pth"] {
        let t = read_tensors(&fixture(file), None).unwrap_or_else(|e| panic!("{file}: {e}"));
        let keys: Vec<&str> = t.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "bn.running_var",
                "bn.weight",
                "conv.bias",
                "conv.weight",
                "fc.bias",
                "fc.weight"
            ],
            "{file} (num_batches_tracked is dropped)"
        );
        let w = &t["conv.weight"];
        assert_eq!(w.shape, [4, 2, 3, 3]);
        let expected: Vec<f32> = (0..72).map(|i| (i as f32 + 0.5) / 8.0 - 4.5).collect();
        assert_eq!(w.values, expected, "{file}");
        assert_eq!(t["conv.bias"].values, [0.25, -0.5], "{file}");
        assert_eq!(t["bn.weight"].values, [1.5, -0.25], "{file} f16");
        assert_eq!(t["bn.running_var"].values, [0.5, 2.0], "{file} bf16");
        // Two views of one f64 storage, the second at offset 6.
        assert_eq!(t["fc.weight"].shape, [3, 2]);
        assert_eq!(
            t["fc.weight"].values,
            [0.25, 0.5, 0.75, 1.0, 1.25, 1.5],
            "{file}"
        );
        assert_eq!(t["fc.bias"].values, [1.75, 2.0, 2.25], "{file}");
    }
}

#[test]
fn damaged_storages_are_errors_naming_the_tensor_not_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture("tiny_zip.pth")).unwrap();
    // Flip one byte inside conv.weight's record (data/0): its CRC no longer matches, which
    // the underlying reader would have turned into a tensor of zeros.
    let first: Vec<u8> = [0.0625f32 - 4.5, 0.1875 - 4.5]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let at = bytes
        .windows(first.len())
        .position(|w| w == first.as_slice())
        .expect("conv.weight's data");
    let mut bad = bytes.clone();
    bad[at] ^= 1;
    let p = dir.path().join("flipped.pth");
    std::fs::write(&p, &bad).unwrap();
    let msg = read_tensors(&p, None).unwrap_err().to_string();
    assert!(
        msg.contains("flipped.pth") && msg.contains("conv.weight") && msg.contains("corrupt"),
        "{msg}"
    );

    // A legacy file cut inside its storages.
    let bytes = std::fs::read(fixture("tiny_legacy.pth")).unwrap();
    let p = dir.path().join("cut.pth");
    std::fs::write(&p, &bytes[..bytes.len() - 10]).unwrap();
    let msg = read_tensors(&p, None).unwrap_err().to_string();
    assert!(
        msg.contains("cut.pth") && msg.contains("truncated"),
        "{msg}"
    );
}
