//! The OOD-classifier family: ID classification trained with one of [`mod@methods`] (cross-
//! entropy, the Outlier Exposure family, ...), evaluated by ID accuracy and OOD detection
//! with every configured detector on every OOD set ([`eval`]).
//!
//! Each step draws one ID batch (the epoch's seeded shuffle, augmented per image) and, for
//! methods that use outliers, one batch of the auxiliary outlier stream; the method returns
//! the loss. Accuracy on the training batches is accumulated per epoch. Exports use the
//! source library's names ([`export`]).

pub mod eval;
pub mod export;
pub mod family;
pub mod methods;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::run::build::build_for_checkpoint;
use crate::run::checkpoint::{self, Which};
use crate::run::data::ExperimentData;
pub use family::{setup, OodFamily};
use methods::{OodMethod, OodMethodDef};

/// What a registered method says about itself, once its `[loss]` table is parsed.
pub struct MethodInfo {
    /// Whether it consumes auxiliary outliers.
    pub needs_outliers: bool,
    /// Its default outliers per step for an ID batch of `train.batch_size`.
    pub outlier_batch: usize,
    /// The `[loss]` table with the parsed values (what `config.toml` records).
    pub table: toml::Table,
}

/// Whether `recipe` is one of this family's methods.
pub fn has(recipe: &str) -> bool {
    names().contains(&recipe)
}

/// The registered methods' names and descriptions.
pub fn methods() -> Vec<(&'static str, &'static str)> {
    struct Names(Vec<(&'static str, &'static str)>);
    impl methods::Visitor for Names {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, about: &'static str) {
            self.0.push((name, about));
        }
    }
    let mut v = Names(Vec::new());
    methods::registry(&mut v);
    v.0
}

fn names() -> Vec<&'static str> {
    methods().into_iter().map(|(n, _)| n).collect()
}

/// Parses and checks `cfg`'s `[loss]` table with the method `cfg.recipe` names.
///
/// # Errors
/// An unknown key (named with its path), a value out of range, or a method that needs
/// outliers without `[data.outliers]`.
pub fn method_info(cfg: &ExperimentConfig) -> Result<MethodInfo> {
    struct Find<'a> {
        cfg: &'a ExperimentConfig,
        out: Option<Result<MethodInfo>>,
    }
    impl methods::Visitor for Find<'_> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name != self.cfg.recipe {
                return;
            }
            let parse = || -> Result<MethodInfo> {
                let m: M = crate::families::parse_table(&self.cfg.loss, "loss")?;
                m.check().map_err(|e| anyhow::anyhow!("[loss]: {e}"))?;
                Ok(MethodInfo {
                    needs_outliers: m.needs_outliers(),
                    outlier_batch: m.outlier_batch(self.cfg.train.batch_size),
                    table: crate::families::to_table(&m)?,
                })
            };
            self.out = Some(parse());
        }
    }
    let mut f = Find { cfg, out: None };
    methods::registry(&mut f);
    let info = f
        .out
        .with_context(|| format!("`{}` is not an OOD method", cfg.recipe))??;
    if info.needs_outliers && cfg.data.outliers.is_none() {
        bail!(
            "recipe `{}` needs auxiliary outliers: add a [data.outliers] table",
            cfg.recipe
        );
    }
    Ok(info)
}

/// Checks the family's parts of `cfg` and records the method's parsed `[loss]` table.
///
/// A `[loss]` key of another OOD method is dropped with a warning, as earlier versions
/// ignored it (the quickstart's `oe_lambda` under `--set recipe=supervised`); a key no
/// method knows is an error.
///
/// # Errors
/// See [`method_info`].
pub fn resolve(mut cfg: ExperimentConfig) -> Result<ExperimentConfig> {
    for key in foreign_keys(&cfg) {
        eprintln!(
            "warning: `loss.{key}` is a parameter of another method, not of `{}`; ignored",
            cfg.recipe
        );
        cfg.loss.remove(&key);
    }
    cfg.loss = method_info(&cfg)?.table;
    Ok(cfg)
}

/// The keys of `[loss]` that `cfg.recipe`'s method rejects but another OOD method accepts.
fn foreign_keys(cfg: &ExperimentConfig) -> Vec<String> {
    /// For each key: whether the recipe's method accepts it, whether any method does.
    struct Accepts<'a> {
        recipe: &'a str,
        key: &'a str,
        value: &'a toml::Value,
        own: bool,
        any: bool,
    }
    impl methods::Visitor for Accepts<'_> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            let mut t = toml::Table::new();
            t.insert(self.key.to_string(), self.value.clone());
            let ok = crate::families::parse_table::<M>(&t, "loss").is_ok();
            self.any |= ok;
            self.own |= ok && name == self.recipe;
        }
    }
    cfg.loss
        .iter()
        .filter(|(key, value)| {
            let mut a = Accepts {
                recipe: &cfg.recipe,
                key,
                value,
                own: false,
                any: false,
            };
            methods::registry(&mut a);
            a.any && !a.own
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Builds the method `cfg.recipe` names for a `num_classes`-way classifier.
fn build_method<B: AutodiffBackend>(
    cfg: &ExperimentConfig,
    num_classes: usize,
) -> Result<Box<dyn OodMethod<B>>> {
    struct Build<'a, B: AutodiffBackend> {
        cfg: &'a ExperimentConfig,
        k: usize,
        out: Option<Result<Box<dyn OodMethod<B>>>>,
    }
    impl<B: AutodiffBackend> methods::Visitor for Build<'_, B> {
        fn method<M: OodMethodDef>(&mut self, name: &'static str, _about: &'static str) {
            if name == self.cfg.recipe {
                self.out = Some(
                    crate::families::parse_table::<M>(&self.cfg.loss, "loss")
                        .map(|m| m.build::<B>(self.k)),
                );
            }
        }
    }
    let mut b = Build::<B> {
        cfg,
        k: num_classes,
        out: None,
    };
    methods::registry(&mut b);
    b.out
        .with_context(|| format!("`{}` is not an OOD method", cfg.recipe))?
}

/// A run's network with the checkpoint `which` loaded, its data and the checkpoint's step.
///
/// # Errors
/// No such checkpoint, a corrupt one, or data that cannot be loaded.
pub fn load_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device: &B::Device,
) -> Result<(Backbone<B>, ExperimentData, usize)> {
    let data = crate::run::data::load(&cfg.data, cfg.seed, false, cfg.model.in_channels)?;
    let model = build_for_checkpoint::<B>(cfg, data.num_classes(), data.id_train.height, device)?;
    let (model, step) = match which {
        Which::Last => {
            let ck = checkpoint::find(run_dir)?;
            let step = checkpoint::load_state(&ck)?.step;
            (checkpoint::load_model(&ck, model, device)?, step)
        }
        Which::Best => {
            let (dir, _) = checkpoint::find_best(run_dir)?;
            let step = checkpoint::load_state(&dir).map_or(0, |s| s.step);
            (checkpoint::load_model(&dir, model, device)?, step)
        }
    };
    Ok((model, data, step))
}
