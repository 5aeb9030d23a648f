//! Where weights come from: a local file or a Hugging Face Hub repository.
//!
//! A config's `weights` is either a path (`"checkpoints/vit_tiny.safetensors"`) or
//! `"hf:<org>/<name>[@<revision>][:<file>]"`, e.g. `"hf:timm/vit_base_patch16_224.dino"`
//! (file `model.safetensors`, revision `main`) or
//! `"hf:facebook/dino-vitb16:model.safetensors"`.
//!
//! Hub files go to the standard Hugging Face cache (`$HF_HOME/hub`, default
//! `~/.cache/huggingface/hub`) through the `hf-hub` crate, so files that `huggingface-cli`
//! or Python's `huggingface_hub` already downloaded are reused, and ours are reused by
//! them. `HF_ENDPOINT` selects a mirror. With `HF_HUB_OFFLINE=1` nothing is downloaded: the
//! file must already be in the cache, otherwise the error says where it looked.

use std::path::PathBuf;

use hf_hub::{Cache, Repo, RepoType};

use crate::weights::WeightsError;

/// A parsed `weights` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightsRef {
    /// A file on disk.
    Local(PathBuf),
    /// A file of a Hub model repository.
    Hub {
        /// `org/name`.
        repo: String,
        /// Branch, tag or commit (`main` by default).
        revision: String,
        /// File inside the repository (`model.safetensors` by default).
        file: String,
    },
}

impl WeightsRef {
    /// Parses a config value (see the module docs).
    pub fn parse(value: &str) -> Result<Self, WeightsError> {
        let Some(rest) = value.strip_prefix("hf:") else {
            return Ok(WeightsRef::Local(PathBuf::from(value)));
        };
        let (repo_rev, file) = match rest.split_once(':') {
            Some((r, f)) => (r, f.to_string()),
            None => (rest, "model.safetensors".to_string()),
        };
        let (repo, revision) = match repo_rev.split_once('@') {
            Some((r, v)) => (r.to_string(), v.to_string()),
            None => (repo_rev.to_string(), "main".to_string()),
        };
        let parts: Vec<&str> = repo.split('/').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) || file.is_empty() {
            return Err(WeightsError::Hub(format!(
                "`{value}` is not a Hub reference of the form \
                 hf:<org>/<name>[@<revision>][:<file>]"
            )));
        }
        Ok(WeightsRef::Hub {
            repo,
            revision,
            file,
        })
    }
}

/// Is `HF_HUB_OFFLINE` set to a true value?
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Turns a `weights` value into a local file, downloading into the Hugging Face cache when
/// needed and allowed.
pub fn resolve(value: &str) -> Result<PathBuf, WeightsError> {
    match WeightsRef::parse(value)? {
        WeightsRef::Local(p) => {
            if p.is_file() {
                Ok(p)
            } else {
                Err(WeightsError::Io {
                    file: p,
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
                })
            }
        }
        WeightsRef::Hub {
            repo,
            revision,
            file,
        } => {
            let hub_repo = Repo::with_revision(repo.clone(), RepoType::Model, revision.clone());
            let cache = Cache::from_env();
            if let Some(p) = cache.repo(hub_repo.clone()).get(&file) {
                return Ok(p);
            }
            if offline() {
                return Err(WeightsError::Hub(format!(
                    "hf:{repo}@{revision}:{file} is not in the Hugging Face cache at {} and \
                     HF_HUB_OFFLINE is set, so it cannot be downloaded; fetch it where the Hub \
                     is reachable (`huggingface-cli download {repo} {file}`) and copy the \
                     cache, or give a local path",
                    cache.path().display()
                )));
            }
            let api = hf_hub::api::sync::ApiBuilder::from_env()
                .with_progress(false)
                .build()
                .map_err(|e| WeightsError::Hub(format!("cannot set up the Hub client: {e}")))?;
            api.repo(hub_repo).get(&file).map_err(|e| {
                WeightsError::Hub(format!(
                    "cannot download hf:{repo}@{revision}:{file} into {}: {e} (set \
                     HF_HUB_OFFLINE=1 to use only the cache, or give a local path)",
                    cache.path().display()
                ))
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hub_references() {
        assert_eq!(
            WeightsRef::parse("hf:timm/vit_base_patch16_224.dino").unwrap(),
            WeightsRef::Hub {
                repo: "timm/vit_base_patch16_224.dino".into(),
                revision: "main".into(),
                file: "model.safetensors".into()
            }
        );
        assert_eq!(
            WeightsRef::parse("hf:facebook/dino-vitb16@v1:pytorch_model.bin").unwrap(),
            WeightsRef::Hub {
                repo: "facebook/dino-vitb16".into(),
                revision: "v1".into(),
                file: "pytorch_model.bin".into()
            }
        );
        assert!(WeightsRef::parse("hf:no-org").is_err());
        assert_eq!(
            WeightsRef::parse("a/b.pth").unwrap(),
            WeightsRef::Local("a/b.pth".into())
        );
    }
}
