//! The ID training set's features, logits and labels that post-hoc detectors fit on,
//! written once to `<run>/cache/train_features.bin` while the network runs over the set,
//! and streamed back from the file in batches: neither the inference nor the fits hold the
//! whole set in memory, and a second `trainer eval` of the same weights reads the file
//! instead of running the network again.
//!
//! The file is keyed by a SHA-256 of everything the features depend on: the network's
//! parameters (its record, serialised), the `data.id` dataset, `[data.preprocess]`, the
//! normalisation, the seed (which subsamples `limit_per_class`) and the inference batch
//! size. A file with another key, or one that does not parse, is recomputed and replaced.
//!
//! Detectors that read several layers' pooled outputs side by side (`mds_ensemble`) get
//! their own file, [`LAYERS_FILE_NAME`], with the same layout and a key that says so.
//!
//! Layout (little-endian): the magic `UNSEENF1`, a `u64` header length, the JSON header
//! `{"key", "rows", "dim", "classes"}`, `rows` `u32` labels, then `rows` records of
//! `dim + classes` `f32` (features, then logits). Written to a temporary file and renamed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use unseen_backbones::Backbone;
use unseen_data::ImageSet;
use unseen_eval::detectors::{FeatureBatch, FeatureSource};

use crate::config::ExperimentConfig;
use crate::run::infer::{check_finite_from, infer_batches, network_outputs};

/// The cache file's name inside the cache folder.
pub const FILE_NAME: &str = "train_features.bin";
/// The cache of the pooled layers side by side ([`Backbone::forward_layers`]).
pub const LAYERS_FILE_NAME: &str = "train_layers.bin";
const MAGIC: &[u8; 8] = b"UNSEENF1";
/// Rows per batch served to the detectors.
const BATCH_ROWS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Header {
    key: String,
    rows: usize,
    dim: usize,
    classes: usize,
}

/// The SHA-256 (hex) of what the training features of `model` under `cfg` depend on
/// (`layers`: the pooled layers side by side instead of the penultimate features).
///
/// # Errors
/// A network record that cannot be serialised.
pub fn cache_key<B: Backend>(
    model: &Backbone<B>,
    cfg: &ExperimentConfig,
    layers: bool,
) -> Result<String> {
    let bytes = Recorder::<B>::record(
        &NamedMpkBytesRecorder::<FullPrecisionSettings>::new(),
        model.clone().into_record(),
        (),
    )
    .map_err(|e| anyhow::anyhow!("cannot serialise the network to key its feature cache: {e:?}"))?;
    let mut h = Sha256::new();
    h.update(if layers {
        &b"unseen train layers v1\0"[..]
    } else {
        &b"unseen train features v1\0"[..]
    });
    h.update(&bytes);
    let inputs = serde_json::json!({
        "id": cfg.data.id,
        "preprocess": cfg.data.preprocess,
        "mean": cfg.data.augment.mean,
        "std": cfg.data.augment.std,
        "seed": cfg.seed,
        "batch_size": cfg.eval.batch_size,
    });
    h.update(inputs.to_string().as_bytes());
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// A [`FeatureSource`] reading the cache file batch by batch.
#[derive(Debug)]
pub struct FileFeatures {
    path: PathBuf,
    header: Header,
    labels: Vec<usize>,
    data_offset: u64,
}

impl FileFeatures {
    /// The cache in `dir` for `key`, computing it first (running `model` over `train`) when
    /// it is absent, stale or unreadable; with `layers`, the pooled layers side by side in
    /// [`LAYERS_FILE_NAME`]. Returns the source and whether it was reused.
    ///
    /// # Errors
    /// Non-finite network outputs (naming the image), an unwritable folder, `layers` on a
    /// network without pooled layers.
    pub fn open_or_create<B: Backend>(
        dir: &Path,
        key: &str,
        model: &Backbone<B>,
        cfg: &ExperimentConfig,
        train: &Arc<ImageSet>,
        device: &B::Device,
        layers: bool,
    ) -> Result<(Self, bool)> {
        let path = dir.join(if layers { LAYERS_FILE_NAME } else { FILE_NAME });
        if let Ok(Some(f)) = Self::open(&path, key) {
            if f.header.rows == train.len() {
                return Ok((f, true));
            }
        }
        Self::create(&path, key, model, cfg, train, device, layers)?;
        let f = Self::open(&path, key)?.with_context(|| {
            format!("{} was just written but does not read back", path.display())
        })?;
        Ok((f, false))
    }

    /// Opens the cache at `path` if it exists and was written for `key`.
    fn open(path: &Path, key: &str) -> Result<Option<Self>> {
        let Ok(file) = File::open(path) else {
            return Ok(None);
        };
        let len = file.metadata()?.len();
        let mut r = BufReader::new(file);
        let mut magic = [0u8; 8];
        let mut hlen = [0u8; 8];
        if r.read_exact(&mut magic).is_err() || &magic != MAGIC || r.read_exact(&mut hlen).is_err()
        {
            return Ok(None);
        }
        let hlen = u64::from_le_bytes(hlen);
        if hlen > 1 << 20 || 16 + hlen > len {
            return Ok(None);
        }
        let mut hbytes = vec![0u8; hlen as usize];
        r.read_exact(&mut hbytes)?;
        let Ok(header) = serde_json::from_slice::<Header>(&hbytes) else {
            return Ok(None);
        };
        let data_offset = 16 + hlen + 4 * header.rows as u64;
        let expected = data_offset + 4 * (header.rows * (header.dim + header.classes)) as u64;
        if header.key != key || header.dim == 0 || len != expected {
            return Ok(None);
        }
        let mut lbytes = vec![0u8; 4 * header.rows];
        r.read_exact(&mut lbytes)?;
        let labels = lbytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        Ok(Some(Self {
            path: path.to_path_buf(),
            header,
            labels,
            data_offset,
        }))
    }

    /// Runs the network over `train` and writes the cache, one batch at a time.
    fn create<B: Backend>(
        path: &Path,
        key: &str,
        model: &Backbone<B>,
        cfg: &ExperimentConfig,
        train: &Arc<ImageSet>,
        device: &B::Device,
        layers: bool,
    ) -> Result<()> {
        let dim = if layers {
            model
                .layer_widths()
                .context("this network has no pooled intermediate layers")?
                .iter()
                .sum()
        } else {
            model.feature_dim()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let header = Header {
            key: key.to_string(),
            rows: train.len(),
            dim,
            classes: model.num_classes(),
        };
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(FILE_NAME);
        let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = (|| -> Result<()> {
            let mut w = BufWriter::new(File::create(&tmp)?);
            let hjson = serde_json::to_vec(&header)?;
            w.write_all(MAGIC)?;
            w.write_all(&(hjson.len() as u64).to_le_bytes())?;
            w.write_all(&hjson)?;
            for &l in &train.labels {
                w.write_all(&l.to_le_bytes())?;
            }
            let mut row = 0usize;
            let (mean, std) = (&cfg.data.augment.mean, &cfg.data.augment.std);
            infer_batches(
                train,
                mean,
                std,
                cfg.eval.batch_size,
                device,
                // The only failure, `layers` without pooled layers, was ruled out above.
                |x| network_outputs(model, x, layers).unwrap_or_default(),
                |out| {
                    if out.is_empty() {
                        bail!("the network produced no outputs");
                    }
                    let f = &out[0];
                    if f.width != header.dim {
                        bail!(
                            "the network's features have {} values, expected {}",
                            f.width,
                            header.dim
                        );
                    }
                    check_finite_from("the feature", "the ID training set", f, row)?;
                    let n = f.values.len() / f.width;
                    let logits = out.get(1);
                    if let Some(l) = logits {
                        check_finite_from("the logit", "the ID training set", l, row)?;
                    }
                    for i in 0..n {
                        for v in &f.values[i * f.width..(i + 1) * f.width] {
                            w.write_all(&v.to_le_bytes())?;
                        }
                        if let Some(l) = logits {
                            for v in &l.values[i * l.width..(i + 1) * l.width] {
                                w.write_all(&v.to_le_bytes())?;
                            }
                        }
                    }
                    row += n;
                    Ok(())
                },
            )?;
            w.flush()?;
            w.get_ref().sync_all()?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!(
                "writing the training-feature cache {}",
                path.display()
            )));
        }
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move the cache to {}", path.display()))
    }
}

impl FeatureSource for FileFeatures {
    fn dim(&self) -> usize {
        self.header.dim
    }

    fn for_each_batch(
        &mut self,
        visit: &mut dyn FnMut(FeatureBatch<'_>) -> unseen_eval::Result<()>,
    ) -> unseen_eval::Result<()> {
        let io = |e: std::io::Error| unseen_eval::EvalError::InvalidConfig {
            what: "training-feature cache",
            message: format!("cannot read {}: {e}", self.path.display()),
        };
        let (d, k) = (self.header.dim, self.header.classes);
        let width = d + k;
        let mut r = BufReader::new(File::open(&self.path).map_err(io)?);
        r.seek(SeekFrom::Start(self.data_offset)).map_err(io)?;
        let mut bytes = vec![0u8; 4 * width * BATCH_ROWS.min(self.header.rows.max(1))];
        let (mut feats, mut logits) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < self.header.rows {
            let n = BATCH_ROWS.min(self.header.rows - start);
            let buf = &mut bytes[..4 * width * n];
            r.read_exact(buf).map_err(io)?;
            feats.clear();
            logits.clear();
            for rec in buf.chunks_exact(4 * width) {
                let mut vals = rec
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                feats.extend(vals.by_ref().take(d));
                logits.extend(vals);
            }
            visit(FeatureBatch {
                features: &feats,
                dim: d,
                logits: (k > 0).then_some(&logits[..]),
                num_classes: k,
                labels: Some(&self.labels[start..start + n]),
            })?;
            start += n;
        }
        Ok(())
    }
}
