//! ViT weights: timm's names are canonical; DINO's are the same; Hugging Face
//! transformers' `ViTModel` names are converted.
//!
//! | source | keys | conversion |
//! |---|---|---|
//! | timm `vit_*_patch16_224*` safetensors / `.pth` | `cls_token`, `pos_embed`, `patch_embed.proj.*`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`, `head.*` | none |
//! | DINO released backbone (`dino_vitbase16_pretrain.pth`) | timm's, without `head` | none (fine-tuning adds a head: allow `head`) |
//! | DINO training checkpoint | `teacher` / `student` dicts, `backbone.` / `module.backbone.` prefixes, `head.*` of the DINO projection head | select with `weights_key = "teacher"`; prefixes stripped; the projection head is reported unused unless allowed |
//! | Hugging Face `ViTModel` (`facebook/dino-vitb16`) | `embeddings.{cls_token,position_embeddings,patch_embeddings.projection}`, `encoder.layer.N.{layernorm_before, attention.attention.{query,key,value}, attention.output.dense, layernorm_after, intermediate.dense, output.dense}`, `layernorm` | q, k, v concatenated (in that order) into `qkv`; the `pooler.dense.*` tensors (a tanh layer on the CLS token that is not part of the features) are ignored and reported; a `vit.` prefix (`ViTForImageClassification`) is stripped and its `classifier` becomes `head` |
//!
//! Hugging Face configs of converted DINO models may give `layer_norm_eps = 1e-12` where the
//! original uses 1e-6; Unseen always uses 1e-6 (`ln_eps`), DINO's value.
//!
//! Two shape conversions: a position embedding for another grid is resampled with timm's
//! `resample_abs_pos_embed` (bicubic with antialiasing), and a 3-channel patch embedding
//! loads into a 1-channel network by summing over input channels (timm's
//! `adapt_input_conv`).

use crate::vit::{resample_pos_embed, PosEmbedInterp};
use crate::weights::{adapt_input_conv, strip_wrappers, SourceTensor, Tensors};

/// Is this a Hugging Face transformers state dict?
fn is_hf(tensors: &Tensors) -> bool {
    tensors
        .keys()
        .any(|k| k.starts_with("embeddings.") || k.starts_with("encoder.layer."))
}

/// Renames a source state dict to timm names; returns the naming recognised. Tensors it
/// drops on purpose (HF's pooler) come back in the third element.
pub fn canonicalize(tensors: Tensors) -> Result<(Tensors, String, Vec<String>), String> {
    let tensors = strip_wrappers(tensors);
    let tensors: Tensors = tensors
        .into_iter()
        .map(|(k, v)| (k.strip_prefix("vit.").map(str::to_string).unwrap_or(k), v))
        .collect();
    if !is_hf(&tensors) {
        let naming = if tensors.contains_key("head.weight") {
            "timm"
        } else {
            "timm/DINO (no head)"
        };
        return Ok((tensors, naming.into(), Vec::new()));
    }
    let mut out = Tensors::new();
    let mut ignored = Vec::new();
    let mut qkv: std::collections::BTreeMap<(usize, String), [Option<SourceTensor>; 3]> =
        Default::default();
    for (k, v) in tensors {
        if k.starts_with("pooler.") {
            ignored.push(k);
            continue;
        }
        let renamed = if let Some(rest) = k.strip_prefix("encoder.layer.") {
            let (idx, tail) = rest
                .split_once('.')
                .ok_or_else(|| format!("unexpected key `{k}`"))?;
            let i: usize = idx.parse().map_err(|_| format!("unexpected key `{k}`"))?;
            let part = |p: &str| tail.strip_prefix(p).map(str::to_string);
            if let Some(leaf) = part("attention.attention.query.") {
                qkv.entry((i, leaf)).or_default()[0] = Some(v);
                continue;
            } else if let Some(leaf) = part("attention.attention.key.") {
                qkv.entry((i, leaf)).or_default()[1] = Some(v);
                continue;
            } else if let Some(leaf) = part("attention.attention.value.") {
                qkv.entry((i, leaf)).or_default()[2] = Some(v);
                continue;
            }
            let map = [
                ("layernorm_before.", "norm1."),
                ("layernorm_after.", "norm2."),
                ("attention.output.dense.", "attn.proj."),
                ("intermediate.dense.", "mlp.fc1."),
                ("output.dense.", "mlp.fc2."),
            ];
            match map
                .iter()
                .find_map(|(from, to)| part(from).map(|l| format!("{to}{l}")))
            {
                Some(t) => format!("blocks.{i}.{t}"),
                None => k.clone(),
            }
        } else {
            match k.as_str() {
                "embeddings.cls_token" => "cls_token".into(),
                "embeddings.position_embeddings" => "pos_embed".into(),
                "embeddings.patch_embeddings.projection.weight" => "patch_embed.proj.weight".into(),
                "embeddings.patch_embeddings.projection.bias" => "patch_embed.proj.bias".into(),
                "layernorm.weight" => "norm.weight".into(),
                "layernorm.bias" => "norm.bias".into(),
                "classifier.weight" => "head.weight".into(),
                "classifier.bias" => "head.bias".into(),
                _ => k.clone(),
            }
        };
        out.insert(renamed, v);
    }
    for ((i, leaf), parts) in qkv {
        let [Some(q), Some(kk), Some(v)] = parts else {
            return Err(format!(
                "layer {i}: query/key/value `{leaf}` tensors are not all present"
            ));
        };
        let mut shape = q.shape.clone();
        shape[0] += kk.shape[0] + v.shape[0];
        let values = [q.values, kk.values, v.values].concat();
        out.insert(
            format!("blocks.{i}.attn.qkv.{leaf}"),
            SourceTensor::new(shape, values),
        );
    }
    Ok((out, "hf-transformers".into(), ignored))
}

/// Shape conversions a ViT file may need: another position-embedding grid, another number
/// of input channels.
pub fn adapt(key: &str, src: &SourceTensor, expected: &[usize]) -> Option<(SourceTensor, String)> {
    match key {
        "pos_embed" => {
            let (s, e) = (&src.shape, expected);
            if s.len() != 3 || e.len() != 3 || s[0] != 1 || e[0] != 1 || s[2] != e[2] {
                return None;
            }
            let g_in = ((s[1] - 1) as f64).sqrt().round() as usize;
            let g_out = ((e[1] - 1) as f64).sqrt().round() as usize;
            if g_in * g_in + 1 != s[1] || g_out * g_out + 1 != e[1] {
                return None;
            }
            let values = resample_pos_embed(
                &src.values,
                s[2],
                1,
                g_in,
                g_out,
                PosEmbedInterp::BicubicAntialias,
            );
            Some((
                SourceTensor::new(e.to_vec(), values),
                format!("grid {g_in}x{g_in} -> {g_out}x{g_out} (timm resample_abs_pos_embed)"),
            ))
        }
        "patch_embed.proj.weight" => adapt_input_conv(src, expected),
        _ => None,
    }
}
