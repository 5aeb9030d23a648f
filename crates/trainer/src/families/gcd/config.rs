//! `[gcd]`: the family's keys (the split, the heads, k-means, the class-number estimate).
//! The method's keys in the same table (`sup_weight`, `memax_weight`, ...) are collected in
//! [`GcdSection::method`] and parsed by the method named in `recipe` (`methods/*.rs`).

use serde::{Deserialize, Serialize};
use unseen_data::splits::gcd::GcdConfig;

/// `[gcd]` (unset values are the official defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GcdSection {
    /// Old (known) classes of `data.id`, as a class spec (`"0-4"`); the rest are new.
    #[serde(default = "default_old")]
    pub old_classes: String,
    /// Fraction of old-class training images that keep their labels (GCD: 0.5).
    #[serde(default = "default_fraction")]
    pub labelled_fraction: f64,
    /// Hidden width of the projector MLP (SimGCD's `DINOHead`: 2048).
    #[serde(default = "default_hidden")]
    pub proj_hidden: usize,
    /// Output width of the projector (SimGCD: 256).
    #[serde(default = "default_proj_dim")]
    pub proj_dim: usize,
    /// Start the old-class prototypes at the labelled class means of the (pretrained)
    /// backbone features (ProtoGCD's option; methods with a prototype classifier only).
    #[serde(default)]
    pub init_prototypes: bool,
    /// Semi-supervised k-means restarts (`gcd` predictions, class-number estimation).
    #[serde(default = "default_n_init")]
    pub kmeans_n_init: usize,
    /// Also estimate the number of classes (GCD's Brent search) after training.
    #[serde(default)]
    pub estimate_k: bool,
    /// Upper bound of the class-number search (default: twice the true number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_k: Option<usize>,
    /// At every evaluation of a prototype method, also cluster the backbone features with
    /// semi-supervised k-means and report its accuracy next to the head's
    /// (`gcd.backbone_kmeans` in `metrics.json`): whether the head predicts as well as its
    /// representation allows. Costs one clustering of the training set per evaluation.
    #[serde(default)]
    pub backbone_kmeans: bool,
    /// The method's keys, checked by the method (unknown keys are rejected there).
    #[serde(flatten)]
    pub method: toml::Table,
}

fn default_old() -> String {
    "0-4".into()
}
fn default_fraction() -> f64 {
    0.5
}
fn default_hidden() -> usize {
    2048
}
fn default_proj_dim() -> usize {
    256
}
fn default_n_init() -> usize {
    10
}

impl Default for GcdSection {
    fn default() -> Self {
        Self {
            old_classes: default_old(),
            labelled_fraction: default_fraction(),
            proj_hidden: default_hidden(),
            proj_dim: default_proj_dim(),
            init_prototypes: false,
            kmeans_n_init: default_n_init(),
            estimate_k: false,
            max_k: None,
            backbone_kmeans: false,
            method: toml::Table::new(),
        }
    }
}

impl GcdSection {
    /// Checks the family's values.
    pub fn validate(&self) -> Result<(), String> {
        self.split()
            .check_fraction()
            .map_err(|e| format!("labelled_fraction: {e}"))?;
        if self.proj_hidden == 0 || self.proj_dim == 0 {
            return Err("proj_hidden and proj_dim must be at least 1".into());
        }
        if self.kmeans_n_init == 0 {
            return Err("kmeans_n_init must be at least 1".into());
        }
        Ok(())
    }

    /// The split settings.
    pub fn split(&self) -> GcdConfig {
        let mut c = GcdConfig::new(&self.old_classes);
        c.labelled_fraction = self.labelled_fraction;
        c
    }
}
