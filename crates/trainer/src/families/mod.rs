//! The method families, and the one place that dispatches on them.
//!
//! A family ([`ood`], [`gcd`], [`ossl`]) owns its config section, model, evaluation and
//! export layout, implements [`crate::run::family::Family`] for the driver, and keeps a
//! registry of its methods (`families/<family>/methods/mod.rs`, one line per method). This
//! module finds the family of a `recipe` from those registries and routes `train`, `eval`,
//! `export` and `embed --run` to it; nothing else in the crate matches on the family.
//! [`build`] builds a backbone from `[model]` for all of them (`model.weights = "run:DIR"`
//! included, which reads another run through this module).

pub mod build;
pub mod gcd;
pub mod ood;
pub mod ossl;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::de::DeserializeOwned;
use serde::Serialize;
use unseen_backbones::Backbone;

use crate::config::ExperimentConfig;
use crate::run::checkpoint::Which;
use crate::run::io::write_atomic;
use crate::run::run_dir::TrainOptions;

/// The families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    /// ID classification with OOD detection ([`ood`]).
    Ood,
    /// Generalized category discovery ([`gcd`]).
    Gcd,
    /// Open-set semi-supervised learning ([`ossl`]).
    Ossl,
}

impl FamilyKind {
    /// The family's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            FamilyKind::Ood => "OOD classifier",
            FamilyKind::Gcd => "category discovery",
            FamilyKind::Ossl => "open-set SSL",
        }
    }
}

/// Every registered method: `(recipe name, family, one-line description)`.
pub fn methods() -> Vec<(&'static str, FamilyKind, &'static str)> {
    let tag = |kind, list: Vec<(&'static str, &'static str)>| {
        list.into_iter()
            .map(move |(n, about)| (n, kind, about))
            .collect::<Vec<_>>()
    };
    let mut all = tag(FamilyKind::Ood, ood::methods());
    all.extend(tag(FamilyKind::Gcd, gcd::methods()));
    all.extend(tag(FamilyKind::Ossl, ossl::methods()));
    all
}

/// The family whose registry holds `recipe`.
///
/// # Errors
/// An unknown recipe; the message lists the known ones by family.
pub fn family_of(recipe: &str) -> Result<FamilyKind> {
    if ood::has(recipe) {
        return Ok(FamilyKind::Ood);
    }
    if gcd::has(recipe) {
        return Ok(FamilyKind::Gcd);
    }
    if ossl::has(recipe) {
        return Ok(FamilyKind::Ossl);
    }
    let list = [FamilyKind::Ood, FamilyKind::Gcd, FamilyKind::Ossl]
        .iter()
        .map(|k| {
            let names: Vec<&str> = methods()
                .into_iter()
                .filter(|m| m.1 == *k)
                .map(|m| m.0)
                .collect();
            format!("{}: {}", k.name(), names.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ");
    bail!("at `recipe`: unknown method {recipe:?}; the known ones are {list}")
}

/// Checks what the family of `cfg.recipe` owns (its section, the method's parameters, the
/// tables it needs or refuses) and returns `cfg` with those sections resolved: every value
/// the method reads written out, as `config.toml` records it.
///
/// # Errors
/// An unknown recipe, an unknown key (named with its path), a value out of range, or a
/// table that does not apply.
pub fn resolve(mut cfg: ExperimentConfig) -> Result<ExperimentConfig> {
    let kind = family_of(&cfg.recipe)?;
    // Every resolved config before the family registries wrote `label_smoothing = 0.0` into
    // `[loss]`, whatever the recipe; it meant "off", so such run folders still load.
    if cfg.loss.get("label_smoothing").and_then(|v| v.as_float()) == Some(0.0) {
        cfg.loss.remove("label_smoothing");
    }
    let name = &cfg.recipe;
    let tables = [
        ("[loss]", !cfg.loss.is_empty(), FamilyKind::Ood),
        ("[gcd]", cfg.gcd.is_some(), FamilyKind::Gcd),
        ("[ossl]", cfg.ossl.is_some(), FamilyKind::Ossl),
    ];
    for (table, given, owner) in tables {
        if given && owner != kind {
            bail!(
                "{table} applies to the {} methods; recipe `{name}` is a {} method: remove it",
                owner.name(),
                kind.name()
            );
        }
    }
    match kind {
        FamilyKind::Ood => ood::resolve(cfg),
        FamilyKind::Gcd => gcd::resolve(cfg),
        FamilyKind::Ossl => ossl::resolve(cfg),
    }
}

/// Reads a config file, applies `--set` overrides and resolves it ([`resolve`]).
///
/// # Errors
/// See [`crate::config::load`] and [`resolve`]; the message names the file.
pub fn load_config(path: &Path, overrides: &[String]) -> Result<ExperimentConfig> {
    use anyhow::Context;
    resolve(crate::config::load(path, overrides)?)
        .with_context(|| format!("invalid config {}", path.display()))
}

/// Parses a method's or family's table with its keys' paths in errors
/// (`at `gcd.memax_weight`: invalid type ...`).
///
/// # Errors
/// A key of the wrong type, or unknown to a struct that denies unknown fields.
pub fn parse_table<T: DeserializeOwned>(table: &toml::Table, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{path}")
        };
        anyhow::anyhow!("at `{path}`: {}", e.into_inner())
    })
}

/// A parsed table written back as TOML.
///
/// # Errors
/// A value TOML cannot hold.
pub fn to_table<T: Serialize>(value: &T) -> Result<toml::Table> {
    match toml::Value::try_from(value)? {
        toml::Value::Table(t) => Ok(t),
        other => bail!("expected a table, got {other}"),
    }
}

/// Trains `cfg` on `device` (see [`crate::run::driver`]); returns the summary. The run
/// folder is created only once the data, the weights and the method are ready.
///
/// # Errors
/// Anything the family's setup or the driver reports.
pub fn train<B: AutodiffBackend>(
    cfg: ExperimentConfig,
    opts: &TrainOptions,
    device: B::Device,
) -> Result<String> {
    let started = Instant::now();
    let cfg = resolve(cfg)?;
    if let Some(dir) = &opts.resume {
        // Compared resolved, so a folder written by an earlier version (which recorded its
        // config in another form) resumes with the config it was started with.
        let saved = resolve(crate::run::run_dir::saved_config(dir)?)?;
        crate::run::run_dir::check_resume(dir, saved, &cfg)?;
    }
    B::seed(&device, cfg.seed);
    let label = &opts.device_label;
    let resume = opts.resume.is_some();
    use crate::run::driver::train as drive;
    match family_of(&cfg.recipe)? {
        FamilyKind::Ood => {
            let (fam, model) = ood::setup::<B>(&cfg, label, &device)?;
            drive(&cfg, opts, &device, fam, model, started)
        }
        FamilyKind::Gcd => {
            let (fam, model) = gcd::setup::<B>(&cfg, resume, label, &device)?;
            drive(&cfg, opts, &device, fam, model, started)
        }
        FamilyKind::Ossl => {
            let (fam, model) = ossl::setup::<B>(&cfg, label, &device)?;
            drive(&cfg, opts, &device, fam, model, started)
        }
    }
}

/// `trainer eval`: re-evaluates a run's checkpoint `which` into `<run>/eval/` (or
/// `eval_best/`: `metrics.json`, `report.md`); with `save_scores` the per-image file
/// (`scores.csv` for OOD runs, `predictions.csv` for GCD and OSSL runs). Returns the
/// summary.
///
/// # Errors
/// No such checkpoint, data that cannot be loaded, or unwritable files.
pub fn evaluate_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    device_label: &str,
    device: &B::Device,
    save_scores: bool,
) -> Result<String> {
    let out = run_dir.join(which.eval_dir());
    let summary = match family_of(&cfg.recipe)? {
        FamilyKind::Ood => {
            let ev = ood::eval::evaluate_run::<B>(cfg, run_dir, which, device_label, device)?;
            ev.write(&out, cfg)?;
            if save_scores {
                ev.write_scores(&out.join("scores.csv"))?;
            }
            ev.summary()
        }
        FamilyKind::Gcd => {
            let ev = gcd::eval::evaluate_run::<B>(cfg, run_dir, which, device_label, device)?;
            ev.write(&ev.metrics, &out)?;
            if save_scores {
                ev.write_predictions(&out.join("predictions.csv"))?;
            }
            ev.summary(&ev.metrics)
        }
        FamilyKind::Ossl => {
            let (ev, k) = ossl::eval::evaluate_run::<B>(cfg, run_dir, which, device_label, device)?;
            ev.metrics.write(&out)?;
            if save_scores {
                write_atomic(&out.join("predictions.csv"), &ev.predictions_csv(k)?)?;
            }
            ev.metrics.summary()
        }
    };
    Ok(format!("{}\nwrote {}", summary.trim_end(), out.display()))
}

/// `trainer eval --config`: evaluates the config's `model.weights` (a torchvision / timm /
/// Hub import, no training run) with the config's detectors on its ID and OOD sets, into
/// `out` (`metrics.json`, `report.md`, `plots/`, with `save_scores` `scores.csv`): Rippel's
/// workflow (a Gaussian on pretrained features) and OpenOOD's "bring your checkpoint".
///
/// # Errors
/// A config of another family or without `model.weights`, data or weights that cannot be
/// loaded, a detector the network cannot run, or unwritable files.
pub fn evaluate_config<B: Backend>(
    cfg: &ExperimentConfig,
    out: &Path,
    device_label: &str,
    device: &B::Device,
    save_scores: bool,
) -> Result<String> {
    if family_of(&cfg.recipe)? != FamilyKind::Ood {
        bail!(
            "`eval --config` evaluates OOD detectors on a network's weights; recipe `{}` is not \
             an OOD recipe (evaluate its runs with `eval --run`)",
            cfg.recipe
        );
    }
    if cfg.model.weights.is_none() {
        bail!(
            "`eval --config` evaluates the config's `model.weights`, and this config has none \
             (set model.weights to a torchvision/timm/Hub file, or evaluate a trained run with \
             `eval --run`)"
        );
    }
    let data = crate::run::data::load(&cfg.data, cfg.seed, false, cfg.model.in_channels)?;
    let classes = cfg.model.num_classes.unwrap_or(data.num_classes());
    let model = crate::families::build::build_backbone::<B>(
        &cfg.model,
        classes,
        data.id_train.height,
        cfg.seed,
        device,
        false,
    )?;
    let cache = out.join("cache");
    let ev = ood::eval::evaluate(&model, cfg, &data, Some(&cache), device_label, device)?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    ev.write(out, cfg)?;
    if save_scores {
        ev.write_scores(&out.join("scores.csv"))?;
    }
    Ok(format!(
        "{}\nwrote {}",
        ev.summary().trim_end(),
        out.display()
    ))
}

/// `trainer export`: a run's checkpoint `which` in its family's layout, on the CPU.
///
/// # Errors
/// No such checkpoint, data that cannot be loaded, or an existing output without
/// `overwrite`.
pub fn export_run(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    which: Which,
    out: &Path,
    overwrite: bool,
) -> Result<Vec<PathBuf>> {
    type B = burn::backend::Flex;
    let device = Default::default();
    match family_of(&cfg.recipe)? {
        FamilyKind::Ood => {
            ood::export::export_run::<B>(cfg, run_dir, which, out, overwrite, &device)
        }
        FamilyKind::Gcd => {
            gcd::export::export_run::<B>(cfg, run_dir, which, out, overwrite, &device)
        }
        FamilyKind::Ossl => {
            ossl::export::export_run::<B>(cfg, run_dir, which, out, overwrite, &device)
        }
    }
}

/// `model.weights = "run:DIR"`: reads the backbone of run folder `DIR`'s last checkpoint (an
/// open-set SSL run's EMA weights) once, on the CPU, as the state dict an export would write,
/// into `cfg.model.preloaded` (which [`build::build_backbone`] then loads with a file's
/// rules). A category-discovery run's linear head is left out (it is never trained). Other
/// weights are left alone. Commands call this when they start (not when resuming: a
/// checkpoint replaces every weight).
///
/// # Errors
/// `DIR` is not a run folder, has no checkpoint, or trained another network than `[model]`.
pub fn preload_run_weights(cfg: &mut ExperimentConfig) -> Result<()> {
    type Cpu = burn::backend::Flex;
    let Some(dir) = cfg
        .model
        .weights
        .as_deref()
        .and_then(|w| w.strip_prefix("run:"))
    else {
        return Ok(());
    };
    let dir = PathBuf::from(dir);
    let what = || format!("model.weights = \"run:{}\"", dir.display());
    let config = dir.join("config.toml");
    if !config.is_file() {
        bail!(
            "{}: {} is not a run folder (no config.toml in it)",
            what(),
            dir.display()
        );
    }
    let src = load_config(&config, &[]).with_context(what)?;
    let (a, b) = (&src.model, &cfg.model);
    if (&a.name, a.in_channels, a.width) != (&b.name, b.in_channels, b.width) {
        bail!(
            "{}: that run trained `{}` (in_channels {}, width {:?}), this config builds `{}` \
             (in_channels {}, width {:?}); [model] must name the same network",
            what(),
            a.name,
            a.in_channels,
            a.width,
            b.name,
            b.in_channels,
            b.width
        );
    }
    let backbone = load_backbone::<Cpu>(&src, &dir, &Default::default()).with_context(what)?;
    let gcd = family_of(&src.recipe)? == FamilyKind::Gcd;
    let head = backbone.head_name();
    let mut out = unseen_backbones::weights::Tensors::new();
    for (key, (dtype, shape, bytes)) in
        unseen_backbones::weights::state_dict(&backbone, 0).with_context(what)?
    {
        let in_head = key.strip_prefix(head).is_some_and(|r| r.starts_with('.'));
        if dtype != safetensors::Dtype::F32 || (gcd && in_head) {
            continue; // num_batches_tracked; an untrained GCD head
        }
        let values = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(
            key,
            unseen_backbones::weights::SourceTensor::new(shape, values),
        );
    }
    cfg.model.preloaded = Some(std::sync::Arc::new(out));
    Ok(())
}

/// What `trainer embed --run` writes for a run ([`embed_run`]).
pub struct RunEmbedding {
    /// Backbone features `[n, d]`.
    pub features: crate::run::infer::Rows,
    /// The logits the run classifies with: the backbone's head, a category-discovery run's
    /// cosine prototype logits, none for `gcd` (k-means) or a headless network.
    pub logits: Option<crate::run::infer::Rows>,
    /// With the run's training images (a category-discovery run): 1 for each image it saw
    /// labelled.
    pub labelled: Option<Vec<u8>>,
    /// A category-discovery run's labels: `classes[k]` is the source class of its label `k`.
    pub classes: Option<Vec<u32>>,
}

/// The features and logits of run `run_dir`'s last checkpoint over `set` (`training`: `set`
/// is `data.id`'s training split, as the run loaded it). A category-discovery run never
/// trains its backbone's linear head: its logits are the prototype logits its evaluation
/// uses, and it also says which training images were labelled and how it relabelled them.
///
/// # Errors
/// No checkpoint, a corrupt one, data that cannot be loaded, or a zero batch size.
pub fn embed_run<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    set: &std::sync::Arc<unseen_data::ImageSet>,
    training: bool,
    batch_size: usize,
    device: &B::Device,
) -> Result<RunEmbedding> {
    if family_of(&cfg.recipe)? == FamilyKind::Gcd {
        let r = gcd::load_run::<B>(cfg, run_dir, Which::Last, device)?;
        let (features, logits) =
            gcd::model::features_logits(&r.model, set, cfg, batch_size, device)?;
        let labelled = training.then(|| {
            let mut mask = vec![0u8; set.len()];
            for &i in &r.data.split.labelled_indices {
                mask[i] = 1;
            }
            mask
        });
        return Ok(RunEmbedding {
            features,
            logits: r.method.classifier.map(|_| logits),
            labelled,
            classes: Some(r.data.split.classes.clone()),
        });
    }
    let model = load_backbone::<B>(cfg, run_dir, device)?;
    let aug = &cfg.data.augment;
    let (features, logits) = crate::run::infer::features_and_logits(
        &model, set, &aug.mean, &aug.std, batch_size, device,
    )?;
    Ok(RunEmbedding {
        features,
        logits: (model.num_classes() > 0).then_some(logits),
        labelled: None,
        classes: None,
    })
}

/// Whether a run of `recipe` trains its backbone's linear head (the classifier `predict`
/// scores with); a category-discovery run does not (it classifies with prototypes).
///
/// # Errors
/// An unknown recipe.
pub fn trains_backbone_head(recipe: &str) -> Result<bool> {
    Ok(family_of(recipe)? != FamilyKind::Gcd)
}

/// The backbone of a run's last checkpoint (open-set SSL: its EMA weights), for `trainer
/// embed --run` and `trainer predict --run`. A category-discovery run's backbone comes with
/// the linear head it never trained: its callers use the prototypes instead
/// ([`gcd::model::features_logits`]) or refuse.
///
/// # Errors
/// No checkpoint, a corrupt one, or data that cannot be loaded.
pub fn load_backbone<B: Backend>(
    cfg: &ExperimentConfig,
    run_dir: &Path,
    device: &B::Device,
) -> Result<Backbone<B>> {
    Ok(match family_of(&cfg.recipe)? {
        FamilyKind::Ood => ood::load_run::<B>(cfg, run_dir, Which::Last, device)?.0,
        FamilyKind::Gcd => {
            gcd::load_run::<B>(cfg, run_dir, Which::Last, device)?
                .model
                .backbone
        }
        FamilyKind::Ossl => {
            ossl::load_run::<B>(cfg, run_dir, Which::Last, device)?
                .model
                .backbone
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::MINIMAL;

    fn resolved(text: &str) -> Result<ExperimentConfig> {
        resolve(crate::config::from_str(text)?)
    }

    #[test]
    fn methods_know_their_tables() {
        let c = resolved(MINIMAL).unwrap();
        assert!(c.loss.is_empty(), "{:?}", c.loss);
        let c = resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[loss]\noe_lambda = 1")).unwrap();
        assert_eq!(c.loss["oe_lambda"].as_float(), Some(1.0));
        // A key of another method is unknown to this one, with its path.
        let e = format!(
            "{:#}",
            resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[loss]\nbetta = 5")).unwrap_err()
        );
        assert!(
            e.contains("loss") && e.contains("unknown field `betta`"),
            "{e}"
        );
        // A key of another method is dropped (earlier versions ignored it): the quickstart's
        // `oe_lambda` under `--set recipe=supervised`.
        let c = resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[loss]\nbeta = 5")).unwrap();
        assert!(c.loss.is_empty(), "{:?}", c.loss);
        // Label smoothing 0, as every earlier resolved config wrote it, is accepted.
        let c = resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[loss]\nlabel_smoothing = 0.0"))
            .unwrap();
        assert!(c.loss.is_empty());
        // Another method's parameter (label smoothing is supervised's and MixOE's) is
        // dropped with a warning, not applied to OE.
        let c = resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[loss]\nlabel_smoothing = 0.1"))
            .unwrap();
        assert!(c.loss.is_empty(), "{:?}", c.loss);
        // An unknown recipe lists the registered ones.
        let e = format!(
            "{:#}",
            resolved(&MINIMAL.replace("\"oe\"", "\"oee\"")).unwrap_err()
        );
        assert!(
            e.contains("unknown method \"oee\"") && e.contains("mixoe"),
            "{e}"
        );
        // A family table given to another family's method.
        let e = format!(
            "{:#}",
            resolved(&MINIMAL.replace("lr = 0.1", "lr = 0.1\n[gcd]\nold_classes = \"0-2\""))
                .unwrap_err()
        );
        assert!(
            e.contains("[gcd] applies to the category discovery methods"),
            "{e}"
        );
    }

    #[test]
    fn oe_without_outliers_is_rejected() {
        let text = MINIMAL.replace(
            "[data.outliers]\nsource = \"fashion-mnist\"\npath = \"y\"\n",
            "",
        );
        let err = format!("{:#}", resolved(&text).unwrap_err());
        assert!(err.contains("needs auxiliary outliers"), "{err}");
        resolved(&text.replace("\"oe\"", "\"supervised\"")).unwrap();
    }

    #[test]
    fn csid_sets_are_checked_where_they_are_read() {
        let near = "[[data.ood]]\nname = \"n\"\ngroup = \"near\"\n\
                    dataset = { source = \"mnist\", path = \"x\", classes = \"6-9\" }\n";
        let csid = |name: &str| {
            format!(
                "[[data.ood]]\nname = \"{name}\"\ngroup = \"csid\"\n\
                 dataset = {{ source = \"mnist\", path = \"x\", classes = \"0-5\" }}\n"
            )
        };
        // The ID data itself as a csid set is accepted (an OOD set would share classes),
        // and survives the round trip through config.toml (what --resume compares).
        let c = resolved(&format!("{MINIMAL}{near}{}", csid("c"))).unwrap();
        assert!(c.data.ood[1].group.is_csid());
        assert_eq!(resolved(&c.to_toml().unwrap()).unwrap(), c);
        let e = format!(
            "{:#}",
            resolved(&format!("{MINIMAL}{}", csid("c"))).unwrap_err()
        );
        assert!(e.contains("only covariate-shifted ID sets"), "{e}");
        let e = format!(
            "{:#}",
            resolved(&format!("{MINIMAL}{near}{}", csid("mnist-0-5"))).unwrap_err()
        );
        assert!(
            e.contains("\"mnist-0-5\"") && e.contains("data.id_name"),
            "{e}"
        );
        // Category discovery would score a csid set as OOD: refused.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let set = r#"data.ood=[{ name = "n", group = "far", dataset = { source = "fashion-mnist", path = "y" } }, { name = "c", group = "csid", dataset = { source = "mnist", path = "x" } }]"#.to_string();
        let e = format!(
            "{:#}",
            load_config(&root.join("configs/cpu/simgcd_mnist.toml"), &[set]).unwrap_err()
        );
        assert!(e.contains("\"c\"") && e.contains("OOD family only"), "{e}");
    }

    #[test]
    fn resolved_configs_resolve_to_themselves() {
        let c = resolved(MINIMAL).unwrap();
        assert_eq!(resolved(&c.to_toml().unwrap()).unwrap(), c);
    }

    #[test]
    fn every_shipped_config_parses_and_validates() {
        // configs/**/*.toml: the quickstart, the CPU configs and every paper config must load
        // (unknown keys, bad values and recipe/section mismatches are load errors), and a
        // resolved config must resolve to itself (what `--resume` compares).
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        let mut dirs = vec![root];
        let mut n = 0;
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "toml") {
                    let c =
                        load_config(&p, &[]).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
                    let again = resolved(&c.to_toml().unwrap()).unwrap();
                    assert_eq!(again, c, "{}", p.display());
                    n += 1;
                }
            }
        }
        assert!(n >= 30, "only {n} configs found");
    }
}
