//! The other direction: a backbone's state dict under its family's canonical names, and
//! safetensors bytes with sorted metadata (what `trainer export` writes, and what
//! `model.weights = "run:..."` reads back through [`crate::Backbone::load_tensors`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::prelude::*;
use burn::store::{BurnToPyTorchAdapter, ModuleSnapshot};

use super::WeightsError;

/// Tensors in safetensors form: name -> (dtype, shape, little-endian bytes).
pub type TensorMap = BTreeMap<String, (safetensors::Dtype, Vec<usize>, Vec<u8>)>;

/// The state dict of a backbone under its family's canonical names (torchvision, the WRN
/// reference, timm), with PyTorch layouts and the `num_batches_tracked` buffers PyTorch
/// expects for `load_state_dict(strict=True)`: the inverse of loading.
pub fn state_dict<B: Backend>(
    model: &crate::Backbone<B>,
    batches_tracked: i64,
) -> Result<TensorMap, WeightsError> {
    use safetensors::Dtype;
    let mut out = TensorMap::new();
    // Enum variants (`Backbone::ResNet`) are skipped by `collect(.., true)`.
    for s in model.collect(None, Some(Box::new(BurnToPyTorchAdapter)), true) {
        let path = s.full_path();
        let key = model.torch_key(&path);
        let data = s
            .to_data()
            .map_err(|e| WeightsError::Convert {
                file: PathBuf::from("<model>"),
                message: format!("cannot read tensor {path}: {e:?}"),
            })?
            .convert::<f32>();
        let shape = data.shape.to_vec();
        let bytes = data
            .to_vec::<f32>()
            .map_err(|e| WeightsError::Convert {
                file: PathBuf::from("<model>"),
                message: format!("{path}: {e:?}"),
            })?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        if key.ends_with(".running_var") {
            let nbt = key.trim_end_matches("running_var").to_string() + "num_batches_tracked";
            out.insert(
                nbt,
                (Dtype::I64, vec![], batches_tracked.to_le_bytes().to_vec()),
            );
        }
        out.insert(key, (Dtype::F32, shape, bytes));
    }
    Ok(out)
}

/// Serialises tensors to safetensors bytes, with string metadata.
pub fn to_safetensors(
    tensors: &TensorMap,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> Result<Vec<u8>, WeightsError> {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(k, (dt, shape, bytes))| {
            safetensors::tensor::TensorView::new(*dt, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
                .map_err(|e| WeightsError::Convert {
                    file: PathBuf::from("<export>"),
                    message: format!("tensor {k}: {e}"),
                })
        })
        .collect::<Result<_, _>>()?;
    let convert = |message: String| WeightsError::Convert {
        file: PathBuf::from("<export>"),
        message,
    };
    let bytes = safetensors::serialize(views, &None)
        .map_err(|e| convert(format!("cannot serialise safetensors: {e}")))?;
    let Some(metadata) = metadata else {
        return Ok(bytes);
    };
    // The same tensors and metadata give the same bytes: the safetensors crate writes the
    // metadata in `HashMap` order, which changes from process to process, so the header is
    // rewritten with sorted keys (offsets are relative to the data, which does not move).
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let mut header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n])
            .map_err(|e| convert(format!("cannot re-read the header: {e}")))?;
    let sorted: std::collections::BTreeMap<String, String> = metadata.into_iter().collect();
    header.insert(
        "__metadata__".into(),
        serde_json::to_value(sorted).map_err(|e| convert(e.to_string()))?,
    );
    let mut json = serde_json::to_vec(&header).map_err(|e| convert(e.to_string()))?;
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}
