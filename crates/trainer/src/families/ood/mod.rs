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
pub mod search;

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::families::build::build_for_checkpoint;
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use unseen_eval::detectors::detector_from_name;

    fn shipped_configs() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for dir in ["configs", "configs/cpu", "configs/papers"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "toml") {
                    files.push(p);
                }
            }
        }
        files.sort();
        files
    }

    /// Every shipped config of this family parses and resolves without its data, and names
    /// detectors that exist.
    #[test]
    fn shipped_ood_configs_parse_and_name_known_detectors() {
        let mut seen = 0;
        for p in shipped_configs() {
            let text = std::fs::read_to_string(&p).unwrap();
            let value: toml::Value = toml::from_str(&text).unwrap();
            if !value["recipe"].as_str().is_some_and(super::has) {
                continue;
            }
            let cfg = crate::families::load_config(&p, &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
            for spec in cfg.eval.detectors.iter().filter(|s| *s != "all") {
                detector_from_name(spec)
                    .unwrap_or_else(|e| panic!("{}: detector {spec:?}: {e}", p.display()));
            }
            seen += 1;
        }
        assert!(seen >= 7, "only {seen} OOD configs found");
    }

    /// The OpenOOD v1.5 benchmark configs: OpenOOD's sets and checkpoint layout, and a
    /// published near and far AUROC for every configured detector, under the name the
    /// report gives that detector (so they line up in `report.md`).
    #[test]
    fn openood_configs_follow_the_benchmark() {
        // (file, ID set, near, far, csid, network, checkpoint run folder)
        let cases = [
            (
                "openood_cifar10",
                "cifar10",
                vec!["cifar100", "tin"],
                vec!["mnist", "svhn", "texture", "places365"],
                vec![],
                "resnet18_cifar",
                "cifar10_resnet18_32x32_base_e100_lr0.1_default",
            ),
            (
                "openood_cifar100",
                "cifar100",
                vec!["cifar10", "tin"],
                vec!["mnist", "svhn", "texture", "places365"],
                vec![],
                "resnet18_cifar",
                "cifar100_resnet18_32x32_base_e100_lr0.1_default",
            ),
            (
                "openood_imagenet200",
                "imagenet200",
                vec!["ssb_hard", "ninco"],
                vec!["inaturalist", "textures", "openimage_o"],
                vec!["imagenet_v2", "imagenet_c", "imagenet_r"],
                "resnet18",
                "imagenet200_resnet18_224x224_base_e90_lr0.1_default",
            ),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for (file, id, near, far, csid, net, run) in cases {
            let p = root.join(format!("configs/papers/{file}.toml"));
            let cfg =
                crate::families::load_config(&p, &[]).unwrap_or_else(|e| panic!("{file}: {e:#}"));
            assert_eq!(cfg.recipe, "supervised", "{file}");
            assert_eq!(cfg.data.id_name, id, "{file}");
            assert_eq!(cfg.model.name, net, "{file}");
            assert_eq!(
                cfg.model.weights.as_deref(),
                Some(format!("results/{run}/s0/best.ckpt").as_str()),
                "{file}"
            );
            let list = |p: &Option<PathBuf>| p.as_ref().unwrap().display().to_string();
            assert_eq!(
                list(&cfg.data.id.test_list),
                format!("../benchmark_imglist/{id}/test_{id}.txt"),
                "{file}"
            );
            assert_eq!(
                list(&cfg.data.id.train_list),
                format!("../benchmark_imglist/{id}/train_{id}.txt"),
                "{file}"
            );
            let group = |g: &str| -> Vec<&str> {
                cfg.data
                    .ood
                    .iter()
                    .filter(|o| o.group.as_str() == g)
                    .map(|o| o.name.as_str())
                    .collect()
            };
            assert_eq!(group("near"), near, "{file}");
            assert_eq!(group("far"), far, "{file}");
            assert_eq!(group("csid"), csid, "{file}");
            for o in &cfg.data.ood {
                // OpenOOD's list of that set, for that benchmark.
                let tail = list(&o.dataset.test_list);
                assert!(
                    tail.starts_with(&format!("../benchmark_imglist/{id}/test_")),
                    "{file}: {tail}"
                );
            }
            let names: Vec<String> = cfg
                .eval
                .detectors
                .iter()
                .map(|s| detector_from_name(s).unwrap().name())
                .collect();
            let paper = cfg.paper.as_ref().unwrap();
            for row in &paper.rows {
                assert!(
                    names.contains(&row.detector) || row.detector == "odin",
                    "{file}: published row for {:?}, which is not configured",
                    row.detector
                );
                assert!(row.auroc.is_some_and(|a| a > 0.5 && a < 1.0), "{file}");
            }
            for name in &names {
                for g in ["near", "far"] {
                    assert!(
                        paper
                            .rows
                            .iter()
                            .any(|r| &r.detector == name && r.dataset == g),
                        "{file}: no published {g} AUROC for {name}"
                    );
                }
            }
        }
    }
}
