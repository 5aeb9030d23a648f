//! Turns the `[data]` section of a config into in-memory datasets.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use unseen_data::formats::ListLabels;
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
    /// Validation sets of a hyper-parameter search (`[data.id_val]`, `[[data.ood_val]]`).
    pub val: Option<ValData>,
}

/// The validation sets `eval.search` chooses detector hyper-parameters on.
#[derive(Debug, Clone)]
pub struct ValData {
    /// ID validation images.
    pub id: Arc<ImageSet>,
    /// OOD validation sets: name, images.
    pub ood: Vec<(String, Arc<ImageSet>)>,
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
/// cropped as it is decoded, so they may hold images of any size. A `file-list` source's
/// labels are class labels: use [`load_ood_dataset`] for OOD sets.
pub fn load_dataset(
    d: &DatasetRef,
    train: bool,
    seed: u64,
    what: &str,
    preprocess: &Preprocess,
) -> Result<ImageSet> {
    load_dataset_as(d, train, seed, what, preprocess, ListLabels::Classes)
}

/// [`load_dataset`] for an OOD test set (`[[data.ood]]` with group `near` / `far`), whose
/// labels are not used: a `file-list` source's list may label its images with any integer
/// (OpenOOD v1.5's OOD lists write `-1`), every image then gets label 0. When the set
/// selects `classes`, its labels are used and read as class labels.
pub fn load_ood_dataset(
    d: &DatasetRef,
    seed: u64,
    what: &str,
    preprocess: &Preprocess,
) -> Result<ImageSet> {
    let labels = if d.classes.is_some() {
        ListLabels::Classes
    } else {
        ListLabels::Ignored
    };
    load_dataset_as(d, false, seed, what, preprocess, labels)
}

/// The folder-missing error's advice: `trainer data download` for the sources it fetches.
fn missing_folder_hint(source: &str) -> String {
    if unseen_data::download::remote_dataset(source).is_some() {
        format!("fetch it with `trainer data download {source}` or fix `path`")
    } else {
        "fix `path` (`trainer data download` does not fetch this source)".into()
    }
}

fn load_dataset_as(
    d: &DatasetRef,
    train: bool,
    seed: u64,
    what: &str,
    preprocess: &Preprocess,
    labels: ListLabels,
) -> Result<ImageSet> {
    let path: &Path = &d.path;
    if !path.exists() {
        anyhow::bail!(
            "{what}: dataset folder {} does not exist (relative paths are resolved against {}); \
             {}",
            path.display(),
            std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            missing_folder_hint(&d.source)
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
        let key = if train { "train_list" } else { "test_list" };
        let list = d.list_path(train).with_context(|| {
            format!(
                "{what}: source \"file-list\" reads the {split} split from `{key}`, which is not \
                 set"
            )
        })?;
        unseen_data::formats::load_file_list_as(&list, path, 3, preprocess, labels)
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
        // csid sets carry ID labels; near / far sets' labels are not used.
        let s = if o.group.is_csid() {
            load_dataset(&o.dataset, false, seed, &what, cfg.preprocess_for(false))?
        } else {
            load_ood_dataset(&o.dataset, seed, &what, cfg.preprocess_for(false))?
        };
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
    let val = match &cfg.id_val {
        Some(id_val) => {
            let pre = cfg.preprocess_for(false);
            let id = load_dataset(id_val, false, seed, "data.id_val", pre)?;
            check(&id, "data.id_val")?;
            let mut ood_val = Vec::new();
            for (i, o) in cfg.ood_val.iter().enumerate() {
                let what = format!("data.ood_val[{i}] ({})", o.name);
                let s = load_ood_dataset(&o.dataset, seed, &what, pre)?;
                check(&s, &what)?;
                ood_val.push((o.name.clone(), Arc::new(s)));
            }
            Some(ValData {
                id: Arc::new(id),
                ood: ood_val,
            })
        }
        None => None,
    };
    Ok(ExperimentData {
        id_train: Arc::new(id_train),
        id_test: Arc::new(id_test),
        outliers,
        ood,
        csid,
        val,
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

    /// OpenOOD's layout: one image folder, lists beside it, OOD lists labelled `-1`. As an
    /// OOD set the list loads (every image label 0, no `train_list` needed); as `data.id`
    /// the same list is refused, naming the list and the line.
    #[test]
    fn openood_minus_one_list_loads_as_an_ood_set_only() {
        let root = tempfile::tempdir().unwrap();
        let images = root.path().join("images_classic");
        let mut lines = String::new();
        for k in 0..3u8 {
            let rel = format!("svhn/test/{k}.png");
            let path = images.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            image::RgbImage::from_pixel(12 + k as u32, 10, image::Rgb([k * 50, 7, 9]))
                .save(&path)
                .unwrap();
            lines.push_str(&format!("{rel} -1\n"));
        }
        let lists = root.path().join("benchmark_imglist/cifar10");
        std::fs::create_dir_all(&lists).unwrap();
        std::fs::write(lists.join("test_svhn.txt"), &lines).unwrap();
        let d = DatasetRef {
            source: "file-list".into(),
            path: images.clone(),
            train_list: None,
            test_list: Some("../benchmark_imglist/cifar10/test_svhn.txt".into()),
            classes: None,
            limit_per_class: None,
        };
        d.validate_test_only().unwrap();
        let p = Preprocess {
            resize_to: Some([8, 8]),
            ..Preprocess::default()
        };
        let set = load_ood_dataset(&d, 0, "data.ood[0] (svhn)", &p).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (3, 3, 8, 8)
        );
        assert_eq!(set.labels, [0, 0, 0]);

        // As the ID set (class labels), -1 is refused with the list and the line.
        let e = format!(
            "{:#}",
            load_dataset(&d, false, 0, "data.id", &p).unwrap_err()
        );
        assert!(
            e.contains("data.id")
                && e.contains("test_svhn.txt")
                && e.contains("line 1")
                && e.contains("\"-1\""),
            "{e}"
        );
        // Its training split is not set: the missing key is named.
        let e = format!(
            "{:#}",
            load_dataset(&d, true, 0, "data.id", &p).unwrap_err()
        );
        assert!(e.contains("`train_list`") && e.contains("not set"), "{e}");
    }

    /// The missing-folder error suggests `trainer data download` only for the sources it
    /// fetches.
    #[test]
    fn missing_folder_hints_download_only_for_downloadable_sources() {
        let mut d = DatasetRef {
            source: "cifar10".into(),
            path: "no/such/folder".into(),
            train_list: None,
            test_list: None,
            classes: None,
            limit_per_class: None,
        };
        let e = format!(
            "{:#}",
            load_dataset(&d, true, 0, "data.id", &Preprocess::default()).unwrap_err()
        );
        assert!(
            e.contains("does not exist") && e.contains("`trainer data download cifar10`"),
            "{e}"
        );
        for source in ["file-list", "folder"] {
            d.source = source.into();
            d.test_list = (source == "file-list").then(|| "t.txt".into());
            let e = format!(
                "{:#}",
                load_ood_dataset(&d, 0, "data.ood[0] (x)", &Preprocess::default()).unwrap_err()
            );
            assert!(
                e.contains("no/such/folder")
                    && e.contains("does not exist")
                    && !e.contains(&format!("`trainer data download {source}`"))
                    && e.contains("does not fetch this source")
                    && e.contains("fix `path`"),
                "{e}"
            );
        }
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
