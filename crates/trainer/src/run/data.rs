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
    /// OOD test sets (`near`/`far`): name, group, images.
    pub ood: Vec<(String, OodGroup, Arc<ImageSet>)>,
    /// Covariate-shifted ID test sets (`[[data.ood]]` with `group = "csid"`): name, images
    /// (labelled with ID classes). Kept apart from `ood`: they count as ID in full-spectrum
    /// OOD evaluation.
    pub csid: Vec<(String, Arc<ImageSet>)>,
}

impl ExperimentData {
    /// Number of ID classes.
    pub fn num_classes(&self) -> usize {
        self.id_train.num_classes()
    }
}

/// Loads one dataset (train or test split), keeps its classes, applies the per-class
/// limit with a seeded subsample, then `preprocess` (pass
/// [`DataConfig::preprocess_for`]`(train)`). `folder` (`path/train/`, `path/test/`) and
/// `file-list` (`train_list`, `test_list`) sources are read as RGB, each image resized /
/// cropped as it is decoded, so they may hold images of any size.
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
    // Sources of images of any size: each is resized / cropped as it is decoded.
    let per_image = matches!(d.source.as_str(), "file-list" | "folder");
    let mut set = if d.source == "folder" {
        let dir = path.join(split);
        unseen_data::formats::load_image_folder_with(&dir, 3, preprocess)
            .with_context(|| format!("{what}: cannot load the {split} split"))?
    } else if d.source == "file-list" {
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
    if !per_image && !preprocess.is_identity() {
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
    let mut csid = Vec::new();
    for (i, o) in cfg.ood.iter().enumerate() {
        let what = format!("data.ood[{i}] ({})", o.name);
        let s = load_dataset(&o.dataset, false, seed, &what, cfg.preprocess_for(false))?;
        check(&s, &what)?;
        let group = match o.group {
            unseen_data::splits::OodGroup::Near => OodGroup::Near,
            unseen_data::splits::OodGroup::Far => OodGroup::Far,
            unseen_data::splits::OodGroup::Csid => {
                check_csid_labels(&s, &id_train, &what)?;
                csid.push((o.name.clone(), Arc::new(s)));
                continue;
            }
        };
        ood.push((o.name.clone(), group, Arc::new(s)));
    }
    Ok(ExperimentData {
        id_train: Arc::new(id_train),
        id_test: Arc::new(id_test),
        outliers,
        ood,
        csid,
    })
}

/// A covariate-shifted ID set (`group = "csid"`) must be labelled with the ID classes
/// (`0..k` of `data.id` after its class selection): its accuracy is measured against them.
fn check_csid_labels(set: &ImageSet, id: &ImageSet, what: &str) -> Result<()> {
    let k = id.num_classes();
    if let Some((i, &label)) = set
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= k)
    {
        let name = set
            .class_names
            .get(label as usize)
            .map(|n| format!(" (class {n:?})"))
            .unwrap_or_default();
        anyhow::bail!(
            "{what}: a csid set must hold ID classes, but image {i} has label {label}{name} and \
             data.id has {k} classes (labels 0..{}); select and order its classes as data.id's \
             with `classes`",
            k.saturating_sub(1)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A csid set labelled beyond the ID classes is refused, naming the set, the image and
    /// its class; one within them passes.
    #[test]
    fn csid_labels_must_be_id_classes() {
        let names = |n: usize| (0..n).map(|c| c.to_string()).collect::<Vec<_>>();
        let set =
            |labels: Vec<u32>, k| ImageSet::new(vec![0; labels.len()], labels, 1, 1, 1, names(k));
        let id = set(vec![0, 1, 2], 3).unwrap();
        check_csid_labels(&set(vec![2, 0, 1, 1], 3).unwrap(), &id, "data.ood[2] (x)").unwrap();
        let e = check_csid_labels(&set(vec![2, 7, 1], 10).unwrap(), &id, "data.ood[2] (x)")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("data.ood[2] (x)")
                && e.contains("image 1 has label 7 (class \"7\")")
                && e.contains("3 classes"),
            "{e}"
        );
    }

    /// A `folder` source whose images differ in size (as CUB-200 or ImageNet-100) loads
    /// through `[data.preprocess]`, each image resized and cropped as it is decoded.
    #[test]
    fn folder_of_mixed_sizes_loads_through_preprocess() {
        let root = tempfile::tempdir().unwrap();
        for (split, sizes) in [
            ("train", [(40u32, 30u32), (25, 50)]),
            ("test", [(33, 33), (60, 20)]),
        ] {
            for (c, class) in ["bird", "cat"].iter().enumerate() {
                let dir = root.path().join(split).join(class);
                std::fs::create_dir_all(&dir).unwrap();
                for (k, &(w, h)) in sizes.iter().enumerate() {
                    image::RgbImage::from_pixel(w, h, image::Rgb([c as u8 * 100, k as u8, 7]))
                        .save(dir.join(format!("{k}.png")))
                        .unwrap();
                }
            }
        }
        let d = DatasetRef {
            source: "folder".into(),
            path: root.path().to_path_buf(),
            train_list: None,
            test_list: None,
            classes: None,
            limit_per_class: None,
        };
        let p = Preprocess {
            resize: Some(16),
            center_crop: Some(16),
            ..Preprocess::default()
        };
        for train in [true, false] {
            let set = load_dataset(&d, train, 0, "data.id", &p).unwrap();
            assert_eq!(
                (set.len(), set.channels, set.height, set.width),
                (4, 3, 16, 16)
            );
            assert_eq!(set.class_names, ["bird", "cat"]);
            // Constant images stay constant through the resize and the crop.
            assert!(set.image(3).chunks(256).map(|p| p[0]).eq([100, 1, 7]));
        }
        // Without a size the first odd image is named.
        let e = load_dataset(&d, true, 0, "data.id", &Preprocess::default()).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("1.png") && msg.contains("[data.preprocess]"),
            "{msg}"
        );
    }
}
