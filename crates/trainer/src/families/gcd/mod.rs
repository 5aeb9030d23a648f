//! Generalized category discovery: the `gcd`, `simgcd` and `protogcd` methods ([`mod@methods`])
//! on the one driver.
//!
//! **Data.** `data.id` is the whole labelled dataset (old and new classes). `[gcd]` picks
//! the old classes and the labelled fraction of their training images
//! (`unseen_data::splits::gcd`); the unlabelled training set holds the rest of the old
//! classes and every image of the new ones. Labels are remapped old-first (`0..old`, then
//! `old..K`), as GCD's `get_datasets.py`. Batches mix labelled and unlabelled images with
//! SimGCD's class-balanced sampler (each draw labelled with probability 1/2), two views
//! each (the `[data.augment]` pipeline drawn twice).
//!
//! **Model** ([`model::GcdModel`]): the backbone, SimGCD's `DINOHead` projector and a cosine
//! prototype classifier. **Losses**: one per method file. **Evaluation** ([`eval`]): GCD's
//! "v2" protocol on the unlabelled training images and the test split, after training and
//! every `train.eval_every` epochs. **Export** ([`export`]): the official
//! `nn.Sequential(backbone, DINOHead)`.

pub mod config;
pub mod eval;
pub mod export;
pub mod family;
pub mod methods;
pub mod model;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_data::splits::gcd::GcdSplit;
use unseen_data::ImageSet;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::{self, Which};
use config::GcdSection;
pub use family::{setup, GcdFamily};
use methods::{GcdMethod, GcdMethodDef};
use model::GcdModel;

/// What a registered method says about itself, once its keys are parsed.
#[derive(Debug, Clone)]
pub struct MethodInfo {
    /// Its cosine classifier's name in the official code, `None` for k-means prediction.
    pub classifier: Option<&'static str>,
    /// The export layout.
    pub layout: &'static str,
    /// The method's keys with the parsed values.
    pub table: toml::Table,
}

/// The registered methods' names and descriptions.
pub fn methods() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl methods::Visitor for Names {
        fn method<M: GcdMethodDef>(&mut self, name: &'static str, about: &'static str) {
            self.0.push((name, about));
        }
    }
    let mut v = Names(Vec::new());
    methods::registry(&mut v);
    v.0
}

/// Whether `recipe` is one of this family's methods.
pub fn has(recipe: &str) -> bool {
    methods().iter().any(|(n, _)| *n == recipe)
}

/// The `[gcd]` section of `cfg` (defaults when absent), checked.
///
/// # Errors
/// A value of the wrong type (named with its path) or out of range.
pub fn section(cfg: &ExperimentConfig) -> Result<GcdSection> {
    let sec: GcdSection = match &cfg.gcd {
        Some(t) => crate::families::parse_table(t, "gcd")?,
        None => GcdSection::default(),
    };
    sec.validate().map_err(|e| anyhow::anyhow!("[gcd]: {e}"))?;
    Ok(sec)
}

/// Parses and checks the method's keys of `[gcd]` (`sec.method`).
///
/// # Errors
/// An unknown key, a value out of range, or `init_prototypes` for a method without
/// prototypes.
pub fn method_info(cfg: &ExperimentConfig, sec: &GcdSection) -> Result<MethodInfo> {
    struct Find<'a> {
        recipe: &'a str,
        table: &'a toml::Table,
        out: Option<Result<MethodInfo>>,
    }
    impl methods::Visitor for Find<'_> {
        fn method<M: GcdMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name != self.recipe {
                return;
            }
            let parse = || -> Result<MethodInfo> {
                let m: M = crate::families::parse_table(self.table, "gcd")?;
                m.check().map_err(|e| anyhow::anyhow!("[gcd]: {e}"))?;
                Ok(MethodInfo {
                    classifier: m.classifier(),
                    layout: m.layout(),
                    table: crate::families::to_table(&m)?,
                })
            };
            self.out = Some(parse());
        }
    }
    for (key, value) in &sec.method {
        let owners = owners_of(key, value);
        if !owners.is_empty() && !owners.contains(&cfg.recipe.as_str()) {
            bail!(
                "[gcd]: `{key}` is a setting of {}; recipe `{}` does not use it",
                owners
                    .iter()
                    .map(|o| format!("`{o}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                cfg.recipe
            );
        }
    }
    let mut f = Find {
        recipe: &cfg.recipe,
        table: &sec.method,
        out: None,
    };
    methods::registry(&mut f);
    let info = f
        .out
        .with_context(|| format!("`{}` is not a category-discovery method", cfg.recipe))??;
    if sec.init_prototypes && info.classifier.is_none() {
        bail!(
            "[gcd]: init_prototypes applies to methods with a prototype classifier (simgcd, \
             protogcd); `{}` predicts with k-means",
            cfg.recipe
        );
    }
    Ok(info)
}

/// The methods whose parameters include `key` (with a value of `value`'s type).
fn owners_of(key: &str, value: &toml::Value) -> Vec<&'static str> {
    struct Owners {
        table: toml::Table,
        found: Vec<&'static str>,
    }
    impl methods::Visitor for Owners {
        fn method<M: GcdMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if crate::families::parse_table::<M>(&self.table, "gcd").is_ok() {
                self.found.push(name);
            }
        }
    }
    let mut table = toml::Table::new();
    table.insert(key.to_string(), value.clone());
    let mut o = Owners {
        table,
        found: Vec::new(),
    };
    methods::registry(&mut o);
    o.found
}

/// Checks the family's parts of `cfg` and records `[gcd]` with the parsed values.
///
/// # Errors
/// See [`section`] and [`method_info`]; `[data.train_preprocess]` (GCD evaluates on its
/// training images); a `csid` `[[data.ood]]` set (only the OOD family evaluates those).
pub fn resolve(mut cfg: ExperimentConfig) -> Result<ExperimentConfig> {
    if cfg.data.train_preprocess.is_some() {
        bail!(
            "[data.train_preprocess]: category discovery evaluates on its training images, \
             which must therefore be preprocessed as the test images; remove the table and \
             use [data.preprocess]"
        );
    }
    if let Some(o) = cfg.data.ood.iter().find(|o| o.group.is_csid()) {
        bail!(
            "[[data.ood]] {:?}: covariate-shifted ID sets (group = \"csid\") are evaluated by \
             the OOD family only (category discovery would score it as OOD); remove the table",
            o.name
        );
    }
    let mut sec = section(&cfg)?;
    sec.method = method_info(&cfg, &sec)?.table;
    cfg.gcd = Some(crate::families::to_table(&sec)?);
    Ok(cfg)
}

fn build_method<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    sec: &GcdSection,
) -> Result<Box<dyn GcdMethod<B>>> {
    struct Build<'a, B: AutodiffBackend> {
        recipe: &'a str,
        table: &'a toml::Table,
        out: Option<Result<Box<dyn GcdMethod<B>>>>,
    }
    impl<B: AutodiffBackend> methods::Visitor for Build<'_, B> {
        fn method<M: GcdMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name == self.recipe {
                self.out = Some(
                    crate::families::parse_table::<M>(self.table, "gcd").map(|m| m.build::<B>()),
                );
            }
        }
    }
    let mut b = Build::<B> {
        recipe: &cfg.recipe,
        table: &sec.method,
        out: None,
    };
    methods::registry(&mut b);
    b.out
        .with_context(|| format!("`{}` is not a category-discovery method", cfg.recipe))?
}

/// Everything the loop and the evaluation need about the data.
pub struct GcdData {
    /// The labelled / unlabelled split of the training images.
    pub split: GcdSplit,
    /// Labelled then unlabelled training images, as one set.
    pub merged: Arc<ImageSet>,
    /// The first `num_labelled` images of `merged` are labelled.
    pub num_labelled: usize,
    /// The test split with old/new flags.
    pub test: unseen_data::splits::gcd::GcdEval,
    /// OOD test sets.
    pub ood: Vec<(String, Arc<ImageSet>)>,
}

/// Loads `data.id` (train and test), splits it as `[gcd]` says, and the OOD sets.
///
/// # Errors
/// Data that cannot be read or split.
pub fn load_data(cfg: &ExperimentConfig, sec: &GcdSection) -> Result<GcdData> {
    let load = |r, train, what: &str| {
        crate::run::data::load_dataset(r, train, cfg.seed, what, &cfg.data.preprocess)
    };
    let train = load(&cfg.data.id, true, "data.id")?;
    let test = load(&cfg.data.id, false, "data.id")?;
    if train.channels != cfg.model.in_channels {
        bail!(
            "data.id has {} channel(s) but model.in_channels is {}",
            train.channels,
            cfg.model.in_channels
        );
    }
    let split = GcdSplit::new(&train, &sec.split(), cfg.seed).context("[gcd] split")?;
    let test = split.test(&test).context("[gcd] split of the test set")?;
    let merged = split.merged();
    let mut ood = Vec::new();
    for (i, o) in cfg.data.ood.iter().enumerate() {
        let s = crate::run::data::load_ood_dataset(
            &o.dataset,
            cfg.seed,
            &format!("data.ood[{i}] ({})", o.name),
            &cfg.data.preprocess,
        )?;
        ood.push((o.name.clone(), Arc::new(s)));
    }
    Ok(GcdData {
        num_labelled: merged.num_labelled,
        merged: Arc::new(merged.set),
        split,
        test,
        ood,
    })
}

/// A GCD run's checkpoint with the data and settings it was trained with.
pub struct RunModel<B: Backend> {
    /// The network.
    pub model: GcdModel<B>,
    /// The data split.
    pub data: GcdData,
    /// Optimisation steps of the checkpoint.
    pub step: usize,
    /// `[gcd]`.
    pub sec: GcdSection,
    /// The method.
    pub method: MethodInfo,
}

/// Loads `run_dir`'s checkpoint `which` into the config's network (and the run's data split).
///
/// # Errors
/// No such checkpoint, a corrupt one, or data that cannot be loaded.
pub fn load_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device: &B::Device,
) -> Result<RunModel<B>> {
    let sec = section(cfg)?;
    let method = method_info(cfg, &sec)?;
    let dir = match which {
        Which::Last => checkpoint::find(run_dir)?,
        Which::Best => checkpoint::find_best(run_dir)?.0,
    };
    let data = load_data(cfg, &sec)?;
    let k = data.split.num_classes();
    let model = model::build_model::<B>(cfg, &sec, k, data.merged.height, device, false)?;
    let step = checkpoint::load_state(&dir).map_or(0, |s| s.step);
    let model = checkpoint::load_model(&dir, model, device)?;
    Ok(RunModel {
        model,
        data,
        step,
        sec,
        method,
    })
}
