//! Generalized category discovery (GCD) splits: a labelled set drawn from the *old*
//! classes, and an unlabelled set holding the rest of the old-class images and every image
//! of the *new* classes.
//!
//! Reference: Vaze et al., "Generalized Category Discovery", CVPR 2022,
//! `sgvaze/generalized-category-discovery` (SimGCD, `CVMI-Lab/SimGCD`, uses the same data
//! code):
//! - `data/get_datasets.py`, `get_class_splits`: old classes `range(5)` for CIFAR-10,
//!   `range(80)` for CIFAR-100, `range(50)` for ImageNet-100, SSB splits for CUB /
//!   Stanford Cars / FGVC-Aircraft (see [`SsbSplit`]); the new classes are
//!   the others. Labels are then remapped so that old classes come first
//!   (`target_transform_dict[cls] = i` over `train_classes + unlabeled_classes`), in the
//!   labelled, unlabelled and test sets alike.
//! - `data/cifar.py`, `get_cifar_10_datasets`: the labelled set is
//!   `subsample_instances(old-class images, prop_train_labels)`, the unlabelled set every
//!   other training image; the test set keeps all classes.
//! - `data/data_utils.py`, `subsample_instances`: `np.random.choice(range(n),
//!   size=int(prop * n), replace=False)` over **all** old-class images together: the
//!   labelled fraction is *not* stratified per class (each class gets about, not exactly,
//!   `prop` of its images). We do the same: `floor(fraction * n_old)` images drawn
//!   uniformly without replacement from all old-class images. (The reference also reseeds
//!   NumPy with 0 inside `subsample_instances`, whatever the run's seed; ours follows the
//!   seed given.)
//! - `prop_train_labels` defaults to 0.5 in every training script.
//!
//! # Conventions
//! - Labels are remapped: old class `old[k]` becomes label `k`, new class `new[j]` becomes
//!   `num_old + j` ([`GcdSplit::classes`] maps back). Class names follow.
//! - Images keep their original relative order in every set (the reference's labelled set
//!   is in draw order; order within a set does not matter once a loader shuffles it).
//! - [`GcdSplit::merged`] concatenates labelled then unlabelled images, as GCD's
//!   `MergedDataset`; [`WeightedSampler::gcd_balanced`](crate::sampler::WeightedSampler)
//!   samples it as SimGCD does.
//! - The split is a pure function of the training set, the config and the seed (drawn from
//!   `Rng::stream(seed, "gcd-split")`).
//!
//! ```toml
//! [gcd]
//! old_classes = "0-4"          # CIFAR-10 / MNIST / Fashion-MNIST default
//! labelled_fraction = 0.5
//! # new_classes = "5-9"        # default: every other class, ascending
//! ```

use serde::{Deserialize, Serialize};

use super::ssb::SsbSplit;
use super::ClassSpec;
use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// GCD's ImageNet-100: the ImageNet-1k class indices (sorted-wnid order, as torchvision's
/// `ImageFolder` numbers them) that `data/imagenet.py` draws with `np.random.seed(0);
/// np.random.choice(range(1000), size=(100,), replace=False)`, sorted. They are relabelled
/// 0..99 in this order; the first 50 are the old classes. Computed by
/// `tests/fixtures/imagenet100_gcd_classes.py` (NumPy's legacy generator is frozen).
pub const IMAGENET100_GCD_CLASSES: [u32; 100] = [
    1, 14, 27, 31, 45, 55, 77, 103, 108, 141, //
    142, 175, 196, 202, 230, 231, 236, 239, 247, 251, //
    252, 261, 262, 264, 267, 270, 272, 279, 295, 298, //
    299, 306, 310, 311, 316, 319, 331, 366, 367, 386, //
    389, 408, 412, 413, 432, 452, 456, 481, 485, 494, //
    496, 497, 501, 531, 553, 558, 568, 569, 576, 578, //
    582, 587, 601, 614, 635, 638, 643, 644, 654, 672, //
    693, 698, 706, 710, 736, 738, 740, 760, 783, 784, //
    788, 790, 796, 819, 823, 859, 862, 874, 883, 906, //
    909, 918, 923, 926, 957, 971, 982, 987, 993, 996,
];

fn default_fraction() -> f64 {
    0.5
}

/// Which classes are old and new, and how many old-class images are labelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcdConfig {
    /// The old (labelled) classes as a [`ClassSpec`], e.g. `"0-4"`; they become labels
    /// `0..k` in the order written.
    pub old_classes: String,
    /// The new classes, in the order of their labels `k..`; by default every class that is
    /// not old, ascending. Classes named in neither list are left out of every set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_classes: Option<String>,
    /// Fraction of the old-class training images that are labelled, in `(0, 1]` (GCD's
    /// `prop_train_labels`, default 0.5).
    #[serde(default = "default_fraction")]
    pub labelled_fraction: f64,
}

impl GcdConfig {
    /// Old classes `old_classes`, the others new, half the old-class images labelled.
    pub fn new(old_classes: &str) -> Self {
        Self {
            old_classes: old_classes.to_string(),
            new_classes: None,
            labelled_fraction: default_fraction(),
        }
    }

    /// The reference's split of a dataset: `"cifar10"`, `"mnist"`, `"fashion-mnist"`: old
    /// `0-4`; `"cifar100"`: `0-79`; `"imagenet100"`: `0-49` (of the 100 classes of
    /// [`IMAGENET100_GCD_CLASSES`], relabelled 0..99); `"cub"`, `"scars"`, `"aircraft"`: the
    /// bundled SSB split ([`SsbSplit::gcd_config`]). Labelled fraction 0.5.
    pub fn for_dataset(name: &str) -> Result<Self> {
        let old = match name.to_ascii_lowercase().as_str() {
            "cifar10" | "cifar-10" | "mnist" | "fashion-mnist" | "fashion_mnist"
            | "fashionmnist" => "0-4",
            "cifar100" | "cifar-100" => "0-79",
            "imagenet100" | "imagenet-100" | "imagenet_100" => "0-49",
            "cub" | "scars" | "aircraft" => {
                return SsbSplit::builtin(name)?.gcd_config(default_fraction())
            }
            other => {
                return Err(DataError::Split(format!(
                    "no GCD default for dataset {other:?} (known: cifar10, cifar100, mnist, \
                     fashion-mnist, imagenet100, cub, scars, aircraft); set gcd.old_classes"
                )))
            }
        };
        Ok(Self::new(old))
    }

    /// The old and new classes for a set of `num_classes` classes, checked: both lists
    /// parse, exist, are disjoint and non-empty.
    pub fn classes(&self, num_classes: usize) -> Result<(Vec<u32>, Vec<u32>)> {
        let ctx = |what: &str, e: DataError| match e {
            DataError::Split(m) => DataError::Split(format!("gcd.{what}: {m}")),
            other => other,
        };
        let old = ClassSpec::parse(&self.old_classes).map_err(|e| ctx("old_classes", e))?;
        old.check(num_classes).map_err(|e| ctx("old_classes", e))?;
        let old = old.into_vec();
        let new = match &self.new_classes {
            Some(spec) => {
                let new = ClassSpec::parse(spec).map_err(|e| ctx("new_classes", e))?;
                new.check(num_classes).map_err(|e| ctx("new_classes", e))?;
                let new = new.into_vec();
                if let Some(c) = new.iter().find(|c| old.contains(c)) {
                    return Err(DataError::Split(format!(
                        "gcd: class {c} is both old ({:?}) and new ({spec:?})",
                        self.old_classes
                    )));
                }
                new
            }
            None => (0..num_classes as u32)
                .filter(|c| !old.contains(c))
                .collect(),
        };
        if new.is_empty() {
            return Err(DataError::Split(format!(
                "gcd.old_classes = {:?} covers all {num_classes} classes: no class is new",
                self.old_classes
            )));
        }
        Ok((old, new))
    }

    /// Checks the labelled fraction.
    pub fn check_fraction(&self) -> Result<()> {
        let f = self.labelled_fraction;
        if !(f > 0.0 && f <= 1.0) {
            return Err(DataError::Split(format!(
                "gcd.labelled_fraction = {f} is not in (0, 1]"
            )));
        }
        Ok(())
    }
}

/// The GCD side of an SSB class split (here rather than in [`super::ssb`], so that the
/// dependency between the two modules points one way: `gcd` uses `ssb`).
impl SsbSplit {
    /// The GCD split this describes: old = known, new = hard + medium + easy (GCD's
    /// order), with `labelled_fraction` of the old-class images labelled (GCD: 0.5).
    pub fn gcd_config(&self, labelled_fraction: f64) -> Result<GcdConfig> {
        Ok(GcdConfig {
            old_classes: ClassSpec::from_classes(self.known.clone())?.to_string(),
            new_classes: Some(ClassSpec::from_classes(self.unknown_all())?.to_string()),
            labelled_fraction,
        })
    }
}

/// The images of `set` at `indices` (in that order), relabelled through `map` (source
/// label -> new label; every selected label must map), with the new class names.
pub(crate) fn select_relabelled(
    set: &ImageSet,
    indices: &[usize],
    map: &[Option<u32>],
    class_names: &[String],
) -> ImageSet {
    let mut out = set.select(indices);
    for l in &mut out.labels {
        *l = map[*l as usize].expect("selected image of an unmapped class");
    }
    out.class_names = class_names.to_vec();
    out
}

/// Source label -> new label for `classes` (class `classes[k]` becomes `k`).
pub(crate) fn label_map(num_classes: usize, classes: &[u32]) -> Vec<Option<u32>> {
    let mut map = vec![None; num_classes];
    for (k, &c) in classes.iter().enumerate() {
        map[c as usize] = Some(k as u32);
    }
    map
}

/// Fails when a class of `classes` has no image in `set`, naming the class and the role.
pub(crate) fn check_present(set: &ImageSet, classes: &[u32], role: &str) -> Result<()> {
    let counts = set.class_counts();
    match classes.iter().find(|&&c| counts[c as usize] == 0) {
        Some(&c) => Err(DataError::Split(format!(
            "{role} class {c} ({}) has no image in the training set",
            set.class_names[c as usize]
        ))),
        None => Ok(()),
    }
}

/// A GCD split of a training set (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct GcdSplit {
    /// The labelled images: old classes only, labels `0..num_old`.
    pub labelled: ImageSet,
    /// The unlabelled images: the other old-class images and every new-class image, with
    /// their (remapped) true labels, for evaluation only.
    pub unlabelled: ImageSet,
    /// Index in the source set of each labelled image (ascending).
    pub labelled_indices: Vec<usize>,
    /// Index in the source set of each unlabelled image (ascending).
    pub unlabelled_indices: Vec<usize>,
    /// For each unlabelled image, whether its class is old.
    pub is_old: Vec<bool>,
    /// `classes[k]` is the source class of label `k` (old classes first, then new).
    pub classes: Vec<u32>,
    /// Number of old classes (labels `0..num_old`).
    pub num_old: usize,
    /// Number of classes of the source set.
    pub source_classes: usize,
}

/// A test set relabelled for a [`GcdSplit`].
#[derive(Debug, Clone, PartialEq)]
pub struct GcdEval {
    /// The images, labels remapped as in the split (all old and new classes kept).
    pub set: ImageSet,
    /// Whether each image's class is old.
    pub is_old: Vec<bool>,
    /// Index in the source test set of each image.
    pub indices: Vec<usize>,
}

/// The labelled and unlabelled sets concatenated, GCD's `MergedDataset`: images
/// `0..num_labelled` are labelled.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedSet {
    /// Labelled images, then unlabelled ones.
    pub set: ImageSet,
    /// How many images at the start are labelled.
    pub num_labelled: usize,
}

impl MergedSet {
    /// Whether image `i` of the merged set is labelled (GCD's `mask_lab`).
    pub fn is_labelled(&self, i: usize) -> bool {
        i < self.num_labelled
    }
}

impl GcdSplit {
    /// Splits `train` (the official training set) by `config`, drawing the labelled
    /// images with `seed`.
    ///
    /// # Errors
    /// [`DataError::Split`] naming the value when a class list does not parse, names a class
    /// the set does not have or that has no image, old classes cover every class, old and
    /// new overlap, the fraction is not in `(0, 1]`, or the fraction selects no image.
    pub fn new(train: &ImageSet, config: &GcdConfig, seed: u64) -> Result<Self> {
        config.check_fraction()?;
        let (old, new) = config.classes(train.num_classes())?;
        check_present(train, &old, "gcd: old")?;
        check_present(train, &new, "gcd: new")?;
        let classes: Vec<u32> = old.iter().chain(&new).copied().collect();
        let map = label_map(train.num_classes(), &classes);
        let num_old = old.len();
        let is_old_label = |l: u32| map[l as usize].is_some_and(|k| (k as usize) < num_old);

        let old_indices: Vec<usize> = (0..train.len())
            .filter(|&i| is_old_label(train.labels[i]))
            .collect();
        let n_lab = (config.labelled_fraction * old_indices.len() as f64) as usize;
        if n_lab == 0 {
            return Err(DataError::Split(format!(
                "gcd.labelled_fraction = {} of {} old-class images labels no image",
                config.labelled_fraction,
                old_indices.len()
            )));
        }
        let mut picked = old_indices;
        Rng::stream(seed, "gcd-split").shuffle(&mut picked);
        picked.truncate(n_lab);
        picked.sort_unstable();

        let mut labelled_mask = vec![false; train.len()];
        for &i in &picked {
            labelled_mask[i] = true;
        }
        let unlabelled_indices: Vec<usize> = (0..train.len())
            .filter(|&i| !labelled_mask[i] && map[train.labels[i] as usize].is_some())
            .collect();
        let names: Vec<String> = classes
            .iter()
            .map(|&c| train.class_names[c as usize].clone())
            .collect();
        let labelled = select_relabelled(train, &picked, &map, &names);
        let unlabelled = select_relabelled(train, &unlabelled_indices, &map, &names);
        let is_old = unlabelled
            .labels
            .iter()
            .map(|&l| (l as usize) < num_old)
            .collect();
        Ok(Self {
            labelled,
            unlabelled,
            labelled_indices: picked,
            unlabelled_indices,
            is_old,
            classes,
            num_old,
            source_classes: train.num_classes(),
        })
    }

    /// Number of classes (old and new).
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }

    /// Number of new classes.
    pub fn num_new(&self) -> usize {
        self.classes.len() - self.num_old
    }

    /// The split's label of source class `c`, `None` for a class left out.
    pub fn label_of(&self, c: u32) -> Option<u32> {
        self.classes.iter().position(|&x| x == c).map(|k| k as u32)
    }

    /// The test set with the split's labels (all old and new classes; classes named in
    /// neither list are dropped), and whether each image is old.
    ///
    /// # Errors
    /// [`DataError::Split`] when `test` does not have the training set's number of classes.
    pub fn test(&self, test: &ImageSet) -> Result<GcdEval> {
        if test.num_classes() != self.source_classes {
            return Err(DataError::Split(format!(
                "gcd: the test set has {} classes, the training set {}",
                test.num_classes(),
                self.source_classes
            )));
        }
        let map = label_map(test.num_classes(), &self.classes);
        let indices: Vec<usize> = (0..test.len())
            .filter(|&i| map[test.labels[i] as usize].is_some())
            .collect();
        let names: Vec<String> = self
            .classes
            .iter()
            .map(|&c| test.class_names[c as usize].clone())
            .collect();
        let set = select_relabelled(test, &indices, &map, &names);
        let is_old = set
            .labels
            .iter()
            .map(|&l| (l as usize) < self.num_old)
            .collect();
        Ok(GcdEval {
            set,
            is_old,
            indices,
        })
    }

    /// Labelled then unlabelled images in one set (GCD's `MergedDataset`).
    pub fn merged(&self) -> MergedSet {
        let mut set = self.labelled.clone();
        set.pixels.extend_from_slice(&self.unlabelled.pixels);
        set.labels.extend_from_slice(&self.unlabelled.labels);
        MergedSet {
            set,
            num_labelled: self.labelled.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per` images of each of `k` classes, interleaved; pixel of image `i` is `i`.
    fn toy(k: usize, per: usize) -> ImageSet {
        let n = k * per;
        ImageSet::new(
            (0..n).map(|i| i as u8).collect(),
            (0..n).map(|i| (i % k) as u32).collect(),
            1,
            1,
            1,
            (0..k).map(|c| format!("c{c}")).collect(),
        )
        .unwrap()
    }

    #[test]
    fn toy_split_by_hand() {
        // 4 classes x 5 images; old = 3,1 (in that order) -> labels 0, 1; new = 0, 2.
        let set = toy(4, 5);
        let mut cfg = GcdConfig::new("3,1");
        cfg.labelled_fraction = 0.35; // int(0.35 * 10) = 3 labelled
        let s = GcdSplit::new(&set, &cfg, 7).unwrap();
        assert_eq!(s.classes, [3, 1, 0, 2]);
        assert_eq!((s.num_old, s.num_new(), s.num_classes()), (2, 2, 4));
        assert_eq!(s.labelled.len(), 3);
        assert_eq!(s.unlabelled.len(), 17);
        assert_eq!(s.labelled.class_names, ["c3", "c1", "c0", "c2"]);
        for (k, &i) in s.labelled_indices.iter().enumerate() {
            assert!(set.labels[i] == 3 || set.labels[i] == 1);
            assert_eq!(s.labelled.labels[k], s.label_of(set.labels[i]).unwrap());
            assert_eq!(s.labelled.pixels[k], i as u8);
        }
        for (k, &i) in s.unlabelled_indices.iter().enumerate() {
            assert_eq!(s.is_old[k], set.labels[i] == 3 || set.labels[i] == 1);
            assert_eq!(s.unlabelled.labels[k], s.label_of(set.labels[i]).unwrap());
        }
        // A partition of the source, in ascending order.
        let mut all: Vec<usize> = s
            .labelled_indices
            .iter()
            .chain(&s.unlabelled_indices)
            .copied()
            .collect();
        assert!(s.labelled_indices.windows(2).all(|w| w[0] < w[1]));
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        assert_eq!(s.is_old.iter().filter(|&&o| o).count(), 7);
        // Deterministic; another seed draws another subset (for one of a few seeds).
        assert_eq!(GcdSplit::new(&set, &cfg, 7).unwrap(), s);
        assert!((8..14).any(|seed| GcdSplit::new(&set, &cfg, seed).unwrap() != s));
    }

    #[test]
    fn labelled_draw_is_uniform_over_all_old_images() {
        // 2 old classes x 4 images, fraction 0.25 -> 2 labelled: each old image is labelled
        // with probability 1/4, and both labelled images come from the same class with
        // probability 2 * C(4,2) / C(8,2) = 12/28 (not 0, as a stratified split would give).
        let set = toy(3, 4);
        let mut cfg = GcdConfig::new("0-1");
        cfg.labelled_fraction = 0.25;
        let mut hits = [0usize; 12];
        let mut same = 0;
        let n = 14000;
        for seed in 0..n {
            let s = GcdSplit::new(&set, &cfg, seed).unwrap();
            for &i in &s.labelled_indices {
                hits[i] += 1;
            }
            same += (s.labelled.labels[0] == s.labelled.labels[1]) as usize;
        }
        for (i, &h) in hits.iter().enumerate() {
            if set.labels[i] == 2 {
                assert_eq!(h, 0);
            } else {
                assert!((3200..3800).contains(&h), "{hits:?}");
            }
        }
        let p = same as f64 / n as f64;
        assert!((p - 12.0 / 28.0).abs() < 0.02, "{p}");
    }

    #[test]
    fn errors_name_the_value() {
        let set = toy(4, 5);
        let err = |cfg: GcdConfig| GcdSplit::new(&set, &cfg, 0).unwrap_err().to_string();
        for f in [0.0, -0.5, 1.5, f64::NAN] {
            let mut c = GcdConfig::new("0-1");
            c.labelled_fraction = f;
            let e = err(c);
            assert!(e.contains(&format!("labelled_fraction = {f}")), "{e}");
        }
        let e = err(GcdConfig::new("0-3"));
        assert!(e.contains("covers all 4 classes"), "{e}");
        let e = err(GcdConfig::new(""));
        assert!(
            e.contains("gcd.old_classes") && e.contains("no class"),
            "{e}"
        );
        let e = err(GcdConfig::new("0-4"));
        assert!(e.contains("class 4 does not exist"), "{e}");
        let mut c = GcdConfig::new("0-1");
        c.new_classes = Some("1-2".into());
        assert!(err(c).contains("class 1 is both old"));
        let mut c = GcdConfig::new("0-1");
        c.labelled_fraction = 0.05; // int(0.5) = 0
        assert!(err(c).contains("labels no image"));
        // A class without images.
        let mut sparse = toy(4, 5);
        sparse.labels.iter_mut().for_each(|l| {
            if *l == 2 {
                *l = 3
            }
        });
        let e = GcdSplit::new(&sparse, &GcdConfig::new("0-1"), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("new class 2 (c2) has no image"), "{e}");
    }

    #[test]
    fn excluded_classes_test_split_and_merge() {
        let set = toy(5, 4);
        let mut cfg = GcdConfig::new("0,1");
        cfg.new_classes = Some("4,2".into()); // class 3 left out
        let s = GcdSplit::new(&set, &cfg, 1).unwrap();
        assert_eq!(s.classes, [0, 1, 4, 2]);
        assert_eq!(s.label_of(3), None);
        assert_eq!(s.labelled.len() + s.unlabelled.len(), 16);
        assert!(s.unlabelled.labels.iter().all(|&l| l < 4));
        let t = s.test(&set).unwrap();
        assert_eq!(t.set.len(), 16);
        assert_eq!(t.set.class_counts(), vec![4, 4, 4, 4]);
        for (k, &i) in t.indices.iter().enumerate() {
            assert_eq!(t.set.labels[k], s.label_of(set.labels[i]).unwrap());
            assert_eq!(t.is_old[k], set.labels[i] <= 1);
        }
        assert!(s
            .test(&toy(3, 2))
            .unwrap_err()
            .to_string()
            .contains("3 classes"));
        let m = s.merged();
        assert_eq!(m.num_labelled, s.labelled.len());
        assert_eq!(m.set.len(), 16);
        assert!(m.is_labelled(0) && !m.is_labelled(m.num_labelled));
        assert_eq!(m.set.image(m.num_labelled), s.unlabelled.image(0));
    }

    #[test]
    fn ssb_gcd_config_orders_new_classes_hard_medium_easy() {
        let s = SsbSplit::parse(
            "known_classes: 4 0\nunknown_classes_easy: 1\nunknown_classes_medium: 3\nunknown_classes_hard: 2",
            "t",
        )
        .unwrap();
        let c = s.gcd_config(0.5).unwrap();
        assert_eq!(c.old_classes, "4,0");
        assert_eq!(c.new_classes.as_deref(), Some("2-3,1"));
        assert_eq!(c.labelled_fraction, 0.5);
    }

    #[test]
    fn dataset_defaults_and_toml() {
        assert_eq!(
            GcdConfig::for_dataset("cifar10").unwrap().old_classes,
            "0-4"
        );
        assert_eq!(GcdConfig::for_dataset("MNIST").unwrap().old_classes, "0-4");
        assert_eq!(
            GcdConfig::for_dataset("cifar100").unwrap().old_classes,
            "0-79"
        );
        assert_eq!(
            GcdConfig::for_dataset("imagenet100").unwrap().old_classes,
            "0-49"
        );
        let cub = GcdConfig::for_dataset("cub").unwrap();
        let (old, new) = cub.classes(200).unwrap();
        assert_eq!((old.len(), new.len(), old[0], new[0]), (100, 100, 150, 29));
        assert_eq!(cub.labelled_fraction, 0.5);
        assert!(GcdConfig::for_dataset("svhn").is_err());
        let c: GcdConfig = toml::from_str("old_classes = \"0-4\"").unwrap();
        assert_eq!(c, GcdConfig::new("0-4"));
        assert!(toml::from_str::<GcdConfig>("old_classes = \"0\"\nfraction = 0.5").is_err());
        let mut sorted = IMAGENET100_GCD_CLASSES.to_vec();
        sorted.dedup();
        assert_eq!(sorted.len(), 100);
        assert!(IMAGENET100_GCD_CLASSES.windows(2).all(|w| w[0] < w[1]));
        assert!(IMAGENET100_GCD_CLASSES.iter().all(|&c| c < 1000));
    }
}
