//! Pretrained weights: read a PyTorch or safetensors file, map its names to ours, load.
//!
//! The pipeline, the same for every family:
//! 1. [`read_tensors`] reads the file into `name -> f32 tensor`. The format is sniffed from
//!    the first bytes: a zip archive or a pickle is a PyTorch file (`torch.save`, read with
//!    burn-store's `PytorchReader`), anything else must be safetensors. Float16, bfloat16
//!    and float64 tensors are converted to float32; integer buffers named
//!    `num_batches_tracked` are dropped (we do not keep them). `key` selects a nested state
//!    dict (`teacher` in a DINO training checkpoint, `state_dict`, `model`, ...).
//! 2. The family's `weights.rs` renames the source's keys to the family's *canonical*
//!    names (torchvision for ResNet, the reference code's for WideResNet, timm's for ViT)
//!    and reports which naming it recognised.
//! 3. [`apply`] matches canonical names to the module's parameters (their PyTorch names
//!    come from burn-store's `BurnToPyTorchAdapter` and the family's `torch_key`), checks
//!    every shape, transposes linear weights, and loads everything in one `apply`.
//!
//! Nothing is loaded unless every parameter of the module is found with the right shape
//! and every tensor of the file is used, apart from the keys matched by `allow_partial`
//! patterns (`"head"` matches `head` and `head.*`; `"*"` matches everything). Keys the
//! patterns allow to be absent or of another shape keep their initial values; the
//! [`LoadReport`] lists them.
//!
//! Weight files are untrusted input; what [`read_tensors`] guarantees is listed in its
//! documentation.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::module::{Module, ParamId};
use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot, TensorSnapshot};

mod export;
mod pickle_guard;

pub use export::{state_dict, to_safetensors, TensorMap};

/// A tensor read from a weights file, as float32.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceTensor {
    /// Shape in the file (PyTorch layout).
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f32>,
}

impl SourceTensor {
    /// A tensor from its parts (`values.len()` must equal the shape's product).
    pub fn new(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        Self { shape, values }
    }
}

/// Tensors by name.
pub type Tensors = BTreeMap<String, SourceTensor>;

/// Errors raised while reading or applying weights. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file cannot be opened or read.
    #[error("cannot read weights file {file}: {source}")]
    Io {
        /// The file.
        file: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is neither a readable PyTorch file nor safetensors.
    #[error("{file} is not a valid {format} file: {message}")]
    Format {
        /// The file.
        file: PathBuf,
        /// `PyTorch` or `safetensors`.
        format: &'static str,
        /// What was wrong.
        message: String,
    },
    /// A PyTorch file whose pickle names a Python global other than the tensor and container
    /// types of a `torch.save` state dict (for example `os.system`): refused before anything
    /// in it is interpreted further. Nothing from a weights file is ever executed.
    #[error(
        "{file} was refused for safety: its pickle references the Python global `{global}`. \
         Unseen never executes code from a weights file and only loads tensors, so it refuses \
         pickles that name anything beyond the tensor and container types of a torch.save \
         state dict. Load the file only if you trust it, in Python, and save \
         `model.state_dict()` with torch.save, or convert it to safetensors"
    )]
    Unsafe {
        /// The file.
        file: PathBuf,
        /// The global (`module.name`), or what names it.
        global: String,
    },
    /// A tensor has a dtype we cannot convert to float32.
    #[error("{file}: tensor `{key}` has dtype {dtype}, expected a floating-point tensor")]
    Dtype {
        /// The file.
        file: PathBuf,
        /// The tensor.
        key: String,
        /// Its dtype.
        dtype: String,
    },
    /// A tensor's shape differs from the parameter it maps to.
    #[error(
        "{file}: `{key}` has shape {found:?} but the {arch} parameter needs {expected:?} \
         (a different architecture or number of classes? allow it with \
         model.allow_partial = [\"{key}\"] to keep the initial value)"
    )]
    Shape {
        /// The file.
        file: PathBuf,
        /// The (canonical) key.
        key: String,
        /// The network.
        arch: String,
        /// The parameter's shape in PyTorch layout.
        expected: Vec<usize>,
        /// The file's shape.
        found: Vec<usize>,
    },
    /// Parameters without a tensor in the file, or tensors no parameter uses.
    #[error(
        "{file} does not fit {arch}: {} missing parameter(s) [{}] and {} unused tensor(s) \
         [{}] (recognised naming: {naming}). Nothing was loaded. If this is intended (e.g. a \
         new classifier head), list the keys in model.allow_partial, e.g. [{}]",
        missing.len(), preview(missing), unused.len(), preview(unused), modules(missing, unused)
    )]
    Mismatch {
        /// The file.
        file: PathBuf,
        /// The network.
        arch: String,
        /// Naming the family recognised.
        naming: String,
        /// Canonical keys of parameters the file lacks.
        missing: Vec<String>,
        /// File keys (after renaming) nothing uses.
        unused: Vec<String>,
    },
    /// The selected nested state dict does not exist.
    #[error("{file} has no entry `{key}`; top-level entries: {available}")]
    NoSuchKey {
        /// The file.
        file: PathBuf,
        /// The key asked for.
        key: String,
        /// What the file has.
        available: String,
    },
    /// A source-specific conversion failed (e.g. split q/k/v tensors missing a part).
    #[error("{file}: {message}")]
    Convert {
        /// The file.
        file: PathBuf,
        /// What failed.
        message: String,
    },
    /// burn-store refused a tensor after our checks (should not happen).
    #[error("{file}: loading failed: {message}")]
    Apply {
        /// The file.
        file: PathBuf,
        /// burn-store's message.
        message: String,
    },
    /// A Hub reference could not be resolved.
    #[error("{0}")]
    Hub(String),
}

fn preview(keys: &[String]) -> String {
    let shown: Vec<&str> = keys.iter().take(8).map(String::as_str).collect();
    let more = keys.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{}, ... {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Reads every floating-point tensor of a PyTorch (`.pth`/`.pt`/`.bin`, zip or legacy) or
/// safetensors file. `key` selects a nested dict (PyTorch) or a `key.` name prefix
/// (safetensors), which is stripped.
///
/// # Untrusted files
///
/// The file may come from anyone; whatever its bytes, this function returns the tensors or a
/// [`WeightsError`] that names the file and what was wrong. In particular:
/// - **No code runs.** A PyTorch pickle is interpreted, never executed: burn-store's reader
///   knows a fixed set of opcodes and a few torch functions by name and calls nothing.
///   Beyond that, a pickle that names any Python global other than those a `torch.save`
///   state dict uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor(_v2)`,
///   `_rebuild_parameter`, `torch._tensor._rebuild_from_type_v2`, the `torch.*Storage`
///   types, and `argparse.Namespace`, which training checkpoints store as inert data) is
///   refused with [`WeightsError::Unsafe`], naming the global (`os.system`,
///   `builtins.eval`, a model class, ...), whichever opcode names it.
/// - **Memory follows the file's actual size**, never a size it claims: string lengths,
///   record sizes, shapes and element counts are checked against the bytes present before
///   anything is allocated, and the objects a pickle builds (memo references copy them) are
///   bounded by a budget proportional to the pickle's size. Nesting depth and batch sizes
///   are bounded too.
/// - **No silent garbage.** A tensor whose storage is missing, shorter than its shape needs,
///   fails its CRC, is compressed, lies past the end of the file or is not contiguous is an
///   error naming the tensor (the underlying reader would load zeros or misplaced values).
///   Nothing outside the file is read.
///
/// These checks (module `weights::pickle_guard`) run before burn-store's `PytorchReader`
/// sees the file, and every tensor it returns must be one the checks accepted, with the same
/// shape and type. safetensors files are parsed by the `safetensors` crate, which validates
/// the header length, offsets, shapes and dtypes against the file before any tensor is read.
/// `crates/fuzz/tests/weights.rs` fuzzes all three formats against these guarantees and
/// `tests/untrusted_weights.rs` checks the refusals with working exploits.
pub fn read_tensors(path: &Path, key: Option<&str>) -> Result<Tensors, WeightsError> {
    let io = |source| WeightsError::Io {
        file: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; 9];
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
    }
    // safetensors: an 8-byte little-endian header length, then the JSON header's `{`. Checked
    // first: the length's low byte can be 0x80, a pickle's first byte (protocol 2+).
    let is_safetensors = n == 9 && head[8] == b'{';
    let is_pytorch = !is_safetensors && n >= 2 && (head.starts_with(b"PK") || head[0] == 0x80);
    if is_pytorch {
        read_pytorch(path, key)
    } else {
        read_safetensors(path, key)
    }
}

fn read_pytorch(path: &Path, key: Option<&str>) -> Result<Tensors, WeightsError> {
    use burn::store::pytorch::PytorchReader;
    let err = |e: &dyn std::fmt::Display| WeightsError::Format {
        file: path.to_path_buf(),
        format: "PyTorch",
        message: e.to_string(),
    };
    let checked = pickle_guard::check(path, key).map_err(|e| match e {
        pickle_guard::GuardError::Refused { global } => WeightsError::Unsafe {
            file: path.to_path_buf(),
            global,
        },
        pickle_guard::GuardError::Invalid(message) => err(&message),
    })?;
    let reader = match key {
        Some(k) => PytorchReader::with_top_level_key(path, k).map_err(|e| {
            // Name what the file offers instead.
            match PytorchReader::new(path) {
                Ok(all) => {
                    let tops: BTreeSet<String> = all
                        .keys()
                        .iter()
                        .map(|k| k.split('.').next().unwrap_or("").to_string())
                        .collect();
                    WeightsError::NoSuchKey {
                        file: path.to_path_buf(),
                        key: k.to_string(),
                        available: tops.into_iter().collect::<Vec<_>>().join(", "),
                    }
                }
                Err(_) => err(&e),
            }
        })?,
        None => PytorchReader::new(path).map_err(|e| err(&e))?,
    };
    let mut out = Tensors::new();
    for (name, snap) in reader.into_tensors() {
        let dtype = snap.dtype;
        // Only tensors the guard checked are read (it mirrors burn-store; were they ever to
        // disagree, refuse rather than read unchecked).
        let Some(c) = checked.tensors.get(&name) else {
            return Err(err(&format!(
                "tensor `{name}` was not found by the safety check (refusing to read it)"
            )));
        };
        if c.dtype != dtype || c.shape.as_slice() != &snap.shape[..] {
            return Err(err(&format!(
                "tensor `{name}`: the safety check saw {:?} {:?}, the reader {dtype:?} {:?}",
                c.dtype,
                c.shape,
                &snap.shape[..]
            )));
        }
        if !dtype.is_float() {
            if name.ends_with("num_batches_tracked") {
                continue;
            }
            return Err(WeightsError::Dtype {
                file: path.to_path_buf(),
                key: name,
                dtype: format!("{dtype:?}"),
            });
        }
        if c.numel == 0 {
            // burn-store cannot materialise an empty tensor (it allocates one element).
            out.insert(name, SourceTensor::new(c.shape.clone(), Vec::new()));
            continue;
        }
        let data = snap.to_data().map_err(|e| err(&format!("{name}: {e:?}")))?;
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| err(&format!("{name}: {e:?}")))?;
        out.insert(name, SourceTensor::new(shape, values));
    }
    Ok(out)
}

fn read_safetensors(path: &Path, key: Option<&str>) -> Result<Tensors, WeightsError> {
    use safetensors::Dtype;
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        file: path.to_path_buf(),
        format: "safetensors (or PyTorch)",
        message: format!("{e:?}"),
    })?;
    let prefix = key.map(|k| format!("{k}."));
    let mut out = Tensors::new();
    for (name, view) in st.tensors() {
        let name = match &prefix {
            Some(p) => match name.strip_prefix(p.as_str()) {
                Some(rest) => rest.to_string(),
                None => continue,
            },
            None => name,
        };
        let b = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| burn::tensor::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| burn::tensor::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F64 => b
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                if name.ends_with("num_batches_tracked") {
                    continue;
                }
                return Err(WeightsError::Dtype {
                    file: path.to_path_buf(),
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        out.insert(name, SourceTensor::new(view.shape().to_vec(), values));
    }
    if out.is_empty() {
        if let Some(k) = key {
            let tops: BTreeSet<String> = st
                .names()
                .iter()
                .map(|n| n.split('.').next().unwrap_or("").to_string())
                .collect();
            return Err(WeightsError::NoSuchKey {
                file: path.to_path_buf(),
                key: k.to_string(),
                available: tops.into_iter().collect::<Vec<_>>().join(", "),
            });
        }
    }
    Ok(out)
}

/// Removes wrapper prefixes that training code adds (`module.` from DataParallel,
/// `backbone.` from DINO's `MultiCropWrapper`), from every key that has them.
pub fn strip_wrappers(tensors: Tensors) -> Tensors {
    tensors
        .into_iter()
        .map(|(k, v)| {
            let mut k = k.as_str();
            loop {
                if let Some(r) = k.strip_prefix("module.") {
                    k = r;
                } else if let Some(r) = k.strip_prefix("backbone.") {
                    k = r;
                } else {
                    break;
                }
            }
            (k.to_string(), v)
        })
        .collect()
}

/// The modules (key up to the last `.`) of the keys, quoted, as an `allow_partial` list:
/// `"fc"` for a ResNet's head, `"head"` for a ViT's.
fn modules(missing: &[String], unused: &[String]) -> String {
    let mut m: Vec<&str> = missing
        .iter()
        .chain(unused)
        .map(|k| k.rsplit_once('.').map_or(k.as_str(), |(m, _)| m))
        .collect();
    m.sort_unstable();
    m.dedup();
    if m.is_empty() {
        return "\"head\"".into();
    }
    m.iter()
        .take(4)
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Does a key match one of the `allow_partial` patterns?
pub fn allowed(key: &str, patterns: &[String]) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || key == p
            || key
                .strip_prefix(p.as_str())
                .is_some_and(|r| r.starts_with('.'))
    })
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// The file read.
    pub file: PathBuf,
    /// The naming the family recognised (e.g. `timm`, `hf-transformers`).
    pub naming: String,
    /// Parameters loaded from the file.
    pub loaded: usize,
    /// Parameters converted on the way (`key: what was done`).
    pub adapted: Vec<String>,
    /// Parameters allowed to be absent or of another shape, which kept their initial values.
    pub kept_initial: Vec<String>,
    /// File tensors allowed to go unused, or ignored by the family's documented rules.
    pub ignored: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} tensors from {} ({} naming)",
            self.loaded,
            self.file.display(),
            self.naming
        )?;
        if !self.adapted.is_empty() {
            write!(f, "; adapted: {}", self.adapted.join("; "))?;
        }
        if !self.kept_initial.is_empty() {
            write!(f, "; kept initial: {}", preview(&self.kept_initial))?;
        }
        if !self.ignored.is_empty() {
            write!(f, "; ignored from file: {}", preview(&self.ignored))?;
        }
        Ok(())
    }
}

/// A family's hook for tensors whose shape legitimately differs: given the canonical key,
/// the file's tensor and the parameter's PyTorch shape, return the converted tensor and a
/// description, or `None` to treat the difference as a mismatch.
pub type Adapt<'a> = &'a dyn Fn(&str, &SourceTensor, &[usize]) -> Option<(SourceTensor, String)>;

/// Loads canonical-named tensors into `module` (see the module docs for the rules).
/// `torch_key` maps the PyTorch-adapted burn path to the canonical key.
pub fn apply<B: Backend, M: Module<B>>(
    mut module: M,
    mut tensors: Tensors,
    torch_key: &dyn Fn(&str) -> String,
    adapt: Adapt<'_>,
    allow_partial: &[String],
    mut report: LoadReport,
    arch: &str,
) -> Result<(M, LoadReport), WeightsError> {
    let file = report.file.clone();
    let burn_view = module.collect(None, None, false);
    let torch_view = module.collect(None, Some(Box::new(BurnToPyTorchAdapter)), false);
    assert_eq!(burn_view.len(), torch_view.len(), "collectors disagree");
    let mut snapshots = Vec::new();
    let mut missing = Vec::new();
    for (b, t) in burn_view.iter().zip(&torch_view) {
        let key = torch_key(&t.full_path());
        let expected: Vec<usize> = t.shape.to_vec();
        let burn_shape: Vec<usize> = b.shape.to_vec();
        let Some(src) = tensors.remove(&key) else {
            if allowed(&key, allow_partial) {
                report.kept_initial.push(format!("{key} (absent)"));
            } else {
                missing.push(key);
            }
            continue;
        };
        let src = if src.shape == expected {
            src
        } else if let Some((converted, what)) = adapt(&key, &src, &expected) {
            report.adapted.push(format!("{key}: {what}"));
            converted
        } else if allowed(&key, allow_partial) {
            report.kept_initial.push(format!(
                "{key} (file {:?}, model {:?})",
                src.shape, expected
            ));
            continue;
        } else {
            return Err(WeightsError::Shape {
                file,
                key,
                arch: arch.to_string(),
                expected,
                found: src.shape,
            });
        };
        // burn stores linear weights as [in, out], PyTorch as [out, in] (the adapter's
        // transpose; decided by the container, since square matrices look the same).
        let is_linear_weight = b.container_type().ends_with("Linear") && burn_shape.len() == 2;
        let values = if is_linear_weight && burn_shape == [expected[1], expected[0]] {
            transpose(&src.values, expected[0], expected[1])
        } else if !is_linear_weight && burn_shape == expected {
            src.values
        } else {
            return Err(WeightsError::Apply {
                file,
                message: format!(
                    "{key}: cannot lay out PyTorch shape {expected:?} as burn shape {burn_shape:?}"
                ),
            });
        };
        snapshots.push(TensorSnapshot::from_data(
            TensorData::new(values, burn_shape),
            b.path_stack.clone().unwrap_or_default(),
            b.container_stack.clone().unwrap_or_default(),
            ParamId::new(),
        ));
    }
    let unused: Vec<String> = tensors
        .keys()
        .filter(|k| !allowed(k, allow_partial))
        .cloned()
        .collect();
    if !missing.is_empty() || !unused.is_empty() {
        return Err(WeightsError::Mismatch {
            file,
            arch: arch.to_string(),
            naming: report.naming,
            missing,
            unused,
        });
    }
    report.ignored.extend(tensors.into_keys());
    report.loaded = snapshots.len();
    let result = module.apply(snapshots, None, None, false);
    if !result.errors.is_empty() {
        return Err(WeightsError::Apply {
            file,
            message: result
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    Ok((module, report))
}

/// `[rows, cols]` row-major -> `[cols, rows]`.
fn transpose(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// timm's `adapt_input_conv` for a first convolution: weights for 3 input channels summed
/// into 1 (grey inputs), or tiled and rescaled for more channels. `None` if the shapes
/// differ in anything but the input-channel axis.
pub fn adapt_input_conv(src: &SourceTensor, expected: &[usize]) -> Option<(SourceTensor, String)> {
    let s = &src.shape;
    if s.len() != 4 || expected.len() != 4 || s[0] != expected[0] || s[2..] != expected[2..] {
        return None;
    }
    let (o, ci, k) = (s[0], s[1], s[2] * s[3]);
    let co = expected[1];
    if ci != 3 || co == 3 {
        return None;
    }
    let mut values = vec![0f32; o * co * k];
    for oo in 0..o {
        for c in 0..co {
            for j in 0..k {
                values[(oo * co + c) * k + j] = if co == 1 {
                    (0..ci).map(|i| src.values[(oo * ci + i) * k + j]).sum()
                } else {
                    // timm: repeat the RGB filters, scale by 3 / channels.
                    src.values[(oo * ci + c % ci) * k + j] * (ci as f32 / co as f32)
                };
            }
        }
    }
    Some((
        SourceTensor::new(expected.to_vec(), values),
        format!("input channels {ci} -> {co} (timm adapt_input_conv)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_whose_header_length_starts_like_a_pickle_are_read() {
        // The header length's first (low) byte is 0x80 for one padded length in 32: such a
        // file was taken for a pickle (PyTorch protocol 2+ files start with 0x80).
        let dir = tempfile::tempdir().unwrap();
        let mut t = TensorMap::new();
        t.insert("w".into(), f32_entry_for_test(vec![2], &[1.5, -2.0]));
        let mut found = false;
        for pad in 0..64 {
            let meta = std::collections::HashMap::from([("pad".to_string(), "x".repeat(pad))]);
            let bytes = to_safetensors(&t, Some(meta)).unwrap();
            if bytes[0] != 0x80 {
                continue;
            }
            found = true;
            let p = dir.path().join("w.safetensors");
            std::fs::write(&p, &bytes).unwrap();
            let r = read_tensors(&p, None).unwrap();
            assert_eq!(r["w"].values, vec![1.5, -2.0]);
            assert_eq!(r["w"].shape, vec![2]);
        }
        assert!(
            found,
            "no metadata padding gave a header length ending in 0x80"
        );
    }

    fn f32_entry_for_test(
        shape: Vec<usize>,
        v: &[f32],
    ) -> (safetensors::Dtype, Vec<usize>, Vec<u8>) {
        (
            safetensors::Dtype::F32,
            shape,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        )
    }

    #[test]
    fn allow_patterns_match_whole_segments() {
        let p = vec!["head".to_string()];
        assert!(allowed("head", &p));
        assert!(allowed("head.weight", &p));
        assert!(!allowed("header.weight", &p));
        assert!(allowed("anything", &["*".to_string()]));
    }

    #[test]
    fn grey_input_conv_sums_rgb_filters() {
        let src = SourceTensor::new(vec![1, 3, 1, 1], vec![1.0, 2.0, 4.0]);
        let (t, _) = adapt_input_conv(&src, &[1, 1, 1, 1]).unwrap();
        assert_eq!(t.values, vec![7.0]);
        assert!(adapt_input_conv(&src, &[2, 1, 1, 1]).is_none());
    }

    #[test]
    fn wrappers_are_stripped() {
        let mut t = Tensors::new();
        t.insert(
            "module.backbone.x".into(),
            SourceTensor::new(vec![1], vec![0.0]),
        );
        assert!(strip_wrappers(t).contains_key("x"));
    }
}
