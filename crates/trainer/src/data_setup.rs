//! Turns the `[data]` section of a config into in-memory datasets.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use unseen_data::transforms::Preprocess;
use unseen_data::{ImageSet, Rng};

use unseen_data::splits::DatasetRef;
use unseen_eval::report::OodGroup;

use crate::config::DataConfig;

/// Every dataset an experiment uses, loaded and relabelled.
#[derive(Debug, Clone)]
pub struct ExperimentData {
    /// ID training images.
    pub id_train: Arc<ImageSet>,
    /// ID test images.
    pub id_test: Arc<ImageSet>,
    /// Auxiliary outliers (training split), when the recipe uses them.
    pub outliers: Option<Arc<ImageSet>>,
    /// OOD test sets: name, group, images.
    pub ood: Vec<(String, OodGroup, Arc<ImageSet>)>,
}

impl ExperimentData {
    /// Number of ID classes.
    pub fn num_classes(&self) -> usize {
        self.id_train.num_classes()
    }
}

/// Loads one dataset (train or test split), keeps its classes, applies the per-class
/// limit with a seeded subsample, then `preprocess` (pass
/// [`DataConfig::preprocess_for`]`(train)`). A `file-list` source reads `train_list` or
/// `test_list` as RGB and resizes each image as it is decoded.
pub fn load_dataset(
    d: &DatasetRef,
    train: bool,
    seed: u64,
    what: &str,
    preprocess: &Preprocess,
) -> Result<ImageSet> {
    let path: &Path = &d.path;
    if !path.exists() {
        anyhow::bail!(
            "{what}: dataset folder {} does not exist (relative paths are resolved against {}); \
             fetch it with `trainer data download {}` or fix `path`",
            path.display(),
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            d.source
        );
    }
    let split = if train { "train" } else { "test" };
    let from_list = d.source == "file-list";
    let mut set = if from_list {
        // Images of any size: each is resized / cropped as it is decoded.
        let list = d.list_path(train).with_context(|| {
            format!("{what}: source \"file-list\" needs `train_list` and `test_list`")
        })?;
        unseen_data::formats::load_file_list(&list, path, 3, preprocess)
            .with_context(|| format!("{what}: cannot load the {split} list"))?
    } else {
        unseen_data::formats::load_named(&d.source, path, train)
            .with_context(|| format!("{what}: cannot load the {split} split"))?
    };
    if let Some(spec) = &d.classes {
        let classes = unseen_data::splits::ClassSpec::parse(spec)
            .with_context(|| format!("{what}: bad `classes` value"))?
            .into_vec();
        set = set
            .subset_classes(&classes)
            .with_context(|| format!("{what}: bad `classes` value {spec:?}"))?;
    }
    if let Some(n) = d.limit_per_class {
        let mut rng = Rng::stream(seed, &format!("limit/{what}/{split}"));
        set = unseen_data::splits::per_class_limit(&set, n, &mut rng);
    }
    if set.is_empty() {
        anyhow::bail!("{what}: the {split} split holds no image after class selection");
    }
    if !from_list && !preprocess.is_identity() {
        set = preprocess
            .apply(&set)
            .with_context(|| format!("{what}: [data.preprocess]"))?;
    }
    Ok(set)
}

/// Loads everything a config names. Outliers are loaded only when `with_outliers`.
pub fn load(
    cfg: &DataConfig,
    seed: u64,
    with_outliers: bool,
    channels: usize,
) -> Result<ExperimentData> {
    let id_train = load_dataset(&cfg.id, true, seed, "data.id", cfg.preprocess_for(true))?;
    let id_test = load_dataset(&cfg.id, false, seed, "data.id", cfg.preprocess_for(false))?;
    let check = |s: &ImageSet, what: &str| -> Result<()> {
        if s.channels != channels {
            anyhow::bail!(
                "{what} has {} channel(s) but `model.in_channels` is {channels}",
                s.channels
            );
        }
        if (s.height, s.width) != (id_train.height, id_train.width) {
            anyhow::bail!(
                "{what} images are {}x{}, the ID images {}x{}",
                s.height,
                s.width,
                id_train.height,
                id_train.width
            );
        }
        Ok(())
    };
    check(&id_train, "data.id")?;
    let outliers = match (&cfg.outliers, with_outliers) {
        (Some(o), true) => {
            let s = load_dataset(o, true, seed, "data.outliers", cfg.preprocess_for(true))?;
            check(&s, "data.outliers")?;
            Some(Arc::new(s))
        }
        _ => None,
    };
    let mut ood = Vec::new();
    for (i, o) in cfg.ood.iter().enumerate() {
        let what = format!("data.ood[{i}] ({})", o.name);
        let s = load_dataset(&o.dataset, false, seed, &what, cfg.preprocess_for(false))?;
        check(&s, &what)?;
        let group = match o.group {
            unseen_data::splits::OodGroup::Near => OodGroup::Near,
            unseen_data::splits::OodGroup::Far => OodGroup::Far,
        };
        ood.push((o.name.clone(), group, Arc::new(s)));
    }
    Ok(ExperimentData {
        id_train: Arc::new(id_train),
        id_test: Arc::new(id_test),
        outliers,
        ood,
    })
}
