//! Open-set semi-supervised learning (OSSL) splits: a few labels per *seen* class, and an
//! unlabelled set polluted by images of *unseen* classes.
//!
//! Reference: IOMatch (Li et al., ICCV 2023, `nukezil/IOMatch`, built on USB,
//! `microsoft/Semi-supervised-learning`):
//! - `semilearn/datasets/cv_datasets/cifar.py`, `get_cifar_openset`: CIFAR-10 seen classes
//!   `set(range(2, 8))` (6/4: the six animals); CIFAR-100 seen classes are the fine classes
//!   whose super-class (coarse label) is below `num_classes // 5`, with the fine-to-coarse
//!   table hard-coded as `super_classes` ([`CIFAR100_FINE_TO_COARSE`]): 20 seen = 4
//!   super-classes, 50 = 10, 80 = 16.
//! - `semilearn/datasets/utils.py`, `reassign_target`: seen classes are relabelled
//!   `0..K` in ascending order, unseen classes `K..N` in ascending order.
//! - `sample_labeled_data`: for each seen class, `np.random.choice(class images,
//!   num_labels / K, replace=False)`: exactly `labels_per_class` labelled images per seen
//!   class (the papers use 4 and 25).
//! - `split_ossl_data(..., include_lb_to_ulb=True)`: the unlabelled set is the **whole**
//!   training set, the labelled images included (FixMatch/USB convention). Set
//!   [`OsslConfig::include_labelled_in_unlabelled`] to false for "every remaining image".
//! - The test sets: `eval_dset` keeps the seen classes only (closed-set accuracy);
//!   `test_full_dset` keeps everything, and `evaluate.ipynb` maps every unseen label to
//!   `K` before computing the open-set balanced accuracy ([`OsslTest`]).
//!
//! MNIST / Fashion-MNIST have no reference; we use the 6/4 protocol of open-set
//! recognition on digits, seen classes `0-5` ([`OsslConfig::digits`]).
//!
//! Seen classes are relabelled in the order written in [`OsslConfig::seen_classes`]
//! (ascending in every preset, as `reassign_target`), unseen classes ascending after them.
//! Images keep their original relative order. The split is a pure function of the training
//! set, the config and the seed (`Rng::stream(seed, "ossl-split")`).
//!
//! ```toml
//! [ossl]
//! seen_classes = "2-7"         # CIFAR-10 6/4
//! labels_per_class = 25
//! include_labelled_in_unlabelled = true
//! ```

use serde::{Deserialize, Serialize};

use super::gcd::{check_present, label_map, select_relabelled};
use super::ClassSpec;
use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// CIFAR-100's super-class (coarse label) of each fine label: IOMatch's `super_classes`
/// table (`semilearn/datasets/cv_datasets/cifar.py`), the coarse labels stored next to the
/// fine ones in every record of the binary files (check a copy of the data with
/// [`fine_to_coarse_from_sets`]).
pub const CIFAR100_FINE_TO_COARSE: [u8; 100] = [
    4, 1, 14, 8, 0, 6, 7, 7, 18, 3, //
    3, 14, 9, 18, 7, 11, 3, 9, 7, 11, //
    6, 11, 5, 10, 7, 6, 13, 15, 3, 15, //
    0, 11, 1, 10, 12, 14, 16, 9, 11, 5, //
    5, 19, 8, 8, 15, 13, 14, 17, 18, 10, //
    16, 4, 17, 4, 2, 0, 17, 4, 18, 17, //
    10, 3, 2, 12, 12, 16, 12, 1, 9, 19, //
    2, 10, 0, 1, 16, 12, 9, 13, 15, 13, //
    16, 19, 2, 4, 6, 19, 5, 5, 8, 19, //
    18, 1, 2, 15, 6, 0, 17, 8, 14, 13,
];

/// The fine-to-coarse table of CIFAR-100 read from the data: `fine` and `coarse` are the
/// same file loaded with fine and with coarse labels
/// ([`load_cifar100`](crate::formats::load_cifar100) with
/// [`Cifar100Labels::Fine`](crate::formats::Cifar100Labels) and `Coarse`).
///
/// # Errors
/// [`DataError::Split`] when the two sets differ in size, a fine class maps to two coarse
/// classes (naming both and the image), or a fine class has no image.
pub fn fine_to_coarse_from_sets(fine: &ImageSet, coarse: &ImageSet) -> Result<Vec<u32>> {
    if fine.len() != coarse.len() {
        return Err(DataError::Split(format!(
            "fine ({} images) and coarse ({} images) sets differ",
            fine.len(),
            coarse.len()
        )));
    }
    let mut map: Vec<Option<u32>> = vec![None; fine.num_classes()];
    for (i, (&f, &c)) in fine.labels.iter().zip(&coarse.labels).enumerate() {
        match map[f as usize] {
            None => map[f as usize] = Some(c),
            Some(prev) if prev != c => {
                return Err(DataError::Split(format!(
                    "fine class {f} has coarse classes {prev} and {c} (image {i})"
                )))
            }
            _ => {}
        }
    }
    map.iter()
        .enumerate()
        .map(|(f, c)| c.ok_or_else(|| DataError::Split(format!("fine class {f} has no image"))))
        .collect()
}

/// The CIFAR-100 seen classes of IOMatch for `num_seen` seen classes: the fine classes of
/// the first `num_seen / 5` super-classes, ascending.
///
/// # Errors
/// When `num_seen` is not a multiple of 5 in `5..=95`.
pub fn cifar100_seen_classes(num_seen: usize) -> Result<Vec<u32>> {
    if num_seen == 0 || num_seen >= 100 || !num_seen.is_multiple_of(5) {
        return Err(DataError::Split(format!(
            "ossl: CIFAR-100 seen classes come in whole super-classes of 5; {num_seen} is not \
             a multiple of 5 in 5..=95 (IOMatch uses 20, 50, 80)"
        )));
    }
    let supers = (num_seen / 5) as u8;
    Ok((0..100u32)
        .filter(|&f| CIFAR100_FINE_TO_COARSE[f as usize] < supers)
        .collect())
}

fn default_true() -> bool {
    true
}

/// Which classes are seen and how many labels each gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsslConfig {
    /// The seen classes as a [`ClassSpec`] (`"2-7"`); they become labels `0..K` in the
    /// order written.
    pub seen_classes: String,
    /// Labelled images per seen class (IOMatch: 4 or 25).
    pub labels_per_class: usize,
    /// Whether the unlabelled set also holds the labelled images (IOMatch: true).
    #[serde(default = "default_true")]
    pub include_labelled_in_unlabelled: bool,
}

impl OsslConfig {
    /// Seen classes `seen_classes`, `labels_per_class` labels each, IOMatch's unlabelled
    /// set (labelled images included).
    pub fn new(seen_classes: &str, labels_per_class: usize) -> Self {
        Self {
            seen_classes: seen_classes.to_string(),
            labels_per_class,
            include_labelled_in_unlabelled: true,
        }
    }

    /// CIFAR-10 6/4: seen classes 2-7 (bird, cat, deer, dog, frog, horse).
    pub fn cifar10(labels_per_class: usize) -> Self {
        Self::new("2-7", labels_per_class)
    }

    /// CIFAR-100 with `num_seen` (20, 50 or 80) seen classes ([`cifar100_seen_classes`]).
    pub fn cifar100(num_seen: usize, labels_per_class: usize) -> Result<Self> {
        let seen = ClassSpec::from_classes(cifar100_seen_classes(num_seen)?)?;
        Ok(Self::new(&seen.to_string(), labels_per_class))
    }

    /// MNIST / Fashion-MNIST 6/4: seen classes 0-5.
    pub fn digits(labels_per_class: usize) -> Self {
        Self::new("0-5", labels_per_class)
    }
}

/// An OSSL split of a training set (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq)]
pub struct OsslSplit {
    /// The labelled images of the seen classes, labels `0..K`: `labels_per_class` per class
    /// ([`OsslSplit::new`]) or the given ones ([`OsslSplit::from_labelled_indices`]).
    pub labelled: ImageSet,
    /// The unlabelled images of every class, labelled as IOMatch's `reassign_target`
    /// (seen `0..K`, unseen `K..N`), for evaluation only.
    pub unlabelled: ImageSet,
    /// Index in the source set of each labelled image (ascending; an image given twice to
    /// [`OsslSplit::from_labelled_indices`] appears twice).
    pub labelled_indices: Vec<usize>,
    /// Index in the source set of each unlabelled image (ascending).
    pub unlabelled_indices: Vec<usize>,
    /// For each unlabelled image, whether its class is seen.
    pub is_seen: Vec<bool>,
    /// `classes[k]` is the source class of label `k` (seen first, then unseen ascending).
    pub classes: Vec<u32>,
    /// Number of seen classes `K`.
    pub num_seen: usize,
}

/// The two test sets of an OSSL split.
#[derive(Debug, Clone, PartialEq)]
pub struct OsslTest {
    /// Seen classes only, labels `0..K` (closed-set accuracy).
    pub closed: ImageSet,
    /// Index in the source test set of each closed-set image.
    pub closed_indices: Vec<usize>,
    /// Every image; seen classes `0..K`, every unseen class mapped to `K` (class name
    /// `"unseen"`), as IOMatch's open-set evaluation does.
    pub full: ImageSet,
    /// The labels of `full` before unseen classes are merged (`reassign_target`: unseen
    /// class `j` is `K + j`).
    pub full_fine_labels: Vec<u32>,
}

impl OsslSplit {
    /// The seen classes of `config` (in the order written) and the unseen ones (ascending)
    /// of `train`.
    fn seen_and_unseen(train: &ImageSet, config: &OsslConfig) -> Result<(Vec<u32>, Vec<u32>)> {
        let ctx = |e: DataError| match e {
            DataError::Split(m) => DataError::Split(format!("ossl.seen_classes: {m}")),
            other => other,
        };
        let spec = ClassSpec::parse(&config.seen_classes).map_err(ctx)?;
        spec.check(train.num_classes()).map_err(ctx)?;
        let seen = spec.into_vec();
        let unseen: Vec<u32> = (0..train.num_classes() as u32)
            .filter(|c| !seen.contains(c))
            .collect();
        if unseen.is_empty() {
            return Err(DataError::Split(format!(
                "ossl.seen_classes = {:?} covers all {} classes: no unseen class",
                config.seen_classes,
                train.num_classes()
            )));
        }
        Ok((seen, unseen))
    }

    /// Splits `train` by `config`, drawing the labelled images with `seed`.
    ///
    /// # Errors
    /// [`DataError::Split`] naming the value: the class list does not parse or names a
    /// class the set lacks, every class is seen (no unseen class), `labels_per_class` is 0,
    /// or a seen class has fewer images than `labels_per_class` (naming the class and both
    /// counts).
    pub fn new(train: &ImageSet, config: &OsslConfig, seed: u64) -> Result<Self> {
        let (seen, unseen) = Self::seen_and_unseen(train, config)?;
        if config.labels_per_class == 0 {
            return Err(DataError::Split(
                "ossl.labels_per_class = 0: every seen class needs at least one label".into(),
            ));
        }
        check_present(train, &unseen, "ossl: unseen")?;
        let counts = train.class_counts();
        for &c in &seen {
            let n = counts[c as usize];
            if n < config.labels_per_class {
                return Err(DataError::Split(format!(
                    "ossl: seen class {c} ({}) has {n} training images, fewer than \
                     labels_per_class = {}",
                    train.class_names[c as usize], config.labels_per_class
                )));
            }
        }
        let mut by_class = vec![Vec::new(); train.num_classes()];
        for (i, &l) in train.labels.iter().enumerate() {
            by_class[l as usize].push(i);
        }
        let mut rng = Rng::stream(seed, "ossl-split");
        let mut picked = Vec::with_capacity(seen.len() * config.labels_per_class);
        for &c in &seen {
            let mut idx = std::mem::take(&mut by_class[c as usize]);
            rng.shuffle(&mut idx);
            picked.extend_from_slice(&idx[..config.labels_per_class]);
        }
        Ok(Self::build(train, config, &seen, &unseen, picked))
    }

    /// Splits `train` by `config` with the labelled images given instead of drawn: the
    /// images of `train` at `labelled` (any order; the split keeps them ascending). This is
    /// how IOMatch's ImageNet-30 is split: `train_labeled_p1.txt` names the labelled images
    /// of the 20 seen classes, matched against `train_unlabeled_full.txt` (see
    /// [`find_entries`](crate::formats::find_entries)). `config.labels_per_class` is ignored;
    /// seen classes and the unlabelled set follow `config` as in [`OsslSplit::new`].
    ///
    /// An index given twice is a labelled image that appears twice in `labelled` (and is
    /// drawn twice as often), as the reference's list datasets do: IOMatch's
    /// `train_labeled_p1.txt` has 260 lines for 250 distinct images, `train_labeled_p5.txt`
    /// 1,300 lines for 1,028.
    ///
    /// # Errors
    /// [`DataError::Split`] naming the value: the class list does not parse or names a
    /// class the set lacks, no unseen class, an unseen class without training image, an
    /// index out of range, an index whose class is not seen, or a seen
    /// class without a labelled image.
    pub fn from_labelled_indices(
        train: &ImageSet,
        config: &OsslConfig,
        labelled: &[usize],
    ) -> Result<Self> {
        let (seen, unseen) = Self::seen_and_unseen(train, config)?;
        check_present(train, &unseen, "ossl: unseen")?;
        let mut is_seen = vec![false; train.num_classes()];
        for &c in &seen {
            is_seen[c as usize] = true;
        }
        let mut per_class = vec![0usize; train.num_classes()];
        for (k, &i) in labelled.iter().enumerate() {
            if i >= train.len() {
                return Err(DataError::Split(format!(
                    "ossl: labelled index {i} (entry {}) is out of range for a training set of \
                     {} images",
                    k + 1,
                    train.len()
                )));
            }
            let c = train.labels[i];
            if !is_seen[c as usize] {
                return Err(DataError::Split(format!(
                    "ossl: labelled index {i} (entry {}) is an image of class {c} ({}), which \
                     is not seen (ossl.seen_classes = {:?})",
                    k + 1,
                    train.class_names[c as usize],
                    config.seen_classes
                )));
            }
            per_class[c as usize] += 1;
        }
        if let Some(&c) = seen.iter().find(|&&c| per_class[c as usize] == 0) {
            return Err(DataError::Split(format!(
                "ossl: seen class {c} ({}) has no labelled image",
                train.class_names[c as usize]
            )));
        }
        Ok(Self::build(
            train,
            config,
            &seen,
            &unseen,
            labelled.to_vec(),
        ))
    }

    /// The split once the labelled images (`picked`, any order, checked) are chosen.
    fn build(
        train: &ImageSet,
        config: &OsslConfig,
        seen: &[u32],
        unseen: &[u32],
        mut picked: Vec<usize>,
    ) -> Self {
        let classes: Vec<u32> = seen.iter().chain(unseen).copied().collect();
        let map = label_map(train.num_classes(), &classes);
        picked.sort_unstable();
        let mut is_labelled = vec![false; train.len()];
        for &i in &picked {
            is_labelled[i] = true;
        }
        let unlabelled_indices: Vec<usize> = (0..train.len())
            .filter(|&i| config.include_labelled_in_unlabelled || !is_labelled[i])
            .collect();
        let names: Vec<String> = classes
            .iter()
            .map(|&c| train.class_names[c as usize].clone())
            .collect();
        let mut labelled = select_relabelled(train, &picked, &map, &names);
        labelled.class_names.truncate(seen.len());
        let unlabelled = select_relabelled(train, &unlabelled_indices, &map, &names);
        let is_seen = unlabelled
            .labels
            .iter()
            .map(|&l| (l as usize) < seen.len())
            .collect();
        Self {
            labelled,
            unlabelled,
            labelled_indices: picked,
            unlabelled_indices,
            is_seen,
            classes,
            num_seen: seen.len(),
        }
    }

    /// Number of unseen classes.
    pub fn num_unseen(&self) -> usize {
        self.classes.len() - self.num_seen
    }

    /// The closed-set and full test sets of `test` (see [`OsslTest`]).
    ///
    /// # Errors
    /// [`DataError::Split`] when `test` does not have the training set's number of classes.
    pub fn test(&self, test: &ImageSet) -> Result<OsslTest> {
        if test.num_classes() != self.classes.len() {
            return Err(DataError::Split(format!(
                "ossl: the test set has {} classes, the training set {}",
                test.num_classes(),
                self.classes.len()
            )));
        }
        let k = self.num_seen as u32;
        let map = label_map(test.num_classes(), &self.classes);
        let names: Vec<String> = self
            .classes
            .iter()
            .map(|&c| test.class_names[c as usize].clone())
            .collect();
        let closed_indices: Vec<usize> = (0..test.len())
            .filter(|&i| map[test.labels[i] as usize].is_some_and(|l| l < k))
            .collect();
        let mut closed = select_relabelled(test, &closed_indices, &map, &names);
        closed.class_names.truncate(self.num_seen);
        let all: Vec<usize> = (0..test.len()).collect();
        let mut full = select_relabelled(test, &all, &map, &names);
        let full_fine_labels = full.labels.clone();
        for l in &mut full.labels {
            *l = (*l).min(k);
        }
        full.class_names.truncate(self.num_seen);
        full.class_names.push("unseen".to_string());
        Ok(OsslTest {
            closed,
            closed_indices,
            full,
            full_fine_labels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::CIFAR100_COARSE_CLASSES;
    use crate::formats::CIFAR100_FINE_CLASSES;

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
    fn coarse_table_is_cifar100s() {
        // Every super-class holds exactly 5 fine classes.
        let mut per = [0; 20];
        for &c in &CIFAR100_FINE_TO_COARSE {
            per[c as usize] += 1;
        }
        assert_eq!(per, [5; 20]);
        // Spot checks by name against the official class lists.
        let coarse_of = |fine: &str| {
            let f = CIFAR100_FINE_CLASSES
                .iter()
                .position(|&n| n == fine)
                .unwrap();
            CIFAR100_COARSE_CLASSES[CIFAR100_FINE_TO_COARSE[f] as usize]
        };
        assert_eq!(coarse_of("apple"), "fruit_and_vegetables");
        assert_eq!(coarse_of("aquarium_fish"), "fish");
        assert_eq!(coarse_of("beaver"), "aquatic_mammals");
        assert_eq!(coarse_of("maple_tree"), "trees");
        assert_eq!(coarse_of("rocket"), "vehicles_2");
        assert_eq!(coarse_of("bicycle"), "vehicles_1");
        assert_eq!(coarse_of("woman"), "people");
        assert_eq!(coarse_of("worm"), "non-insect_invertebrates");
        assert_eq!(coarse_of("bee"), "insects");
        assert_eq!(coarse_of("television"), "household_electrical_devices");
        // The 20-seen split: super-classes 0-3 (aquatic mammals, fish, flowers, food
        // containers) = 20 fine classes, ascending.
        let seen = cifar100_seen_classes(20).unwrap();
        assert_eq!(seen.len(), 20);
        assert_eq!(&seen[..6], &[1, 4, 9, 10, 16, 28]);
        assert_eq!(cifar100_seen_classes(50).unwrap().len(), 50);
        assert_eq!(cifar100_seen_classes(80).unwrap().len(), 80);
        assert!(cifar100_seen_classes(30).unwrap().starts_with(&[0, 1]));
        for bad in [0, 7, 100] {
            let e = cifar100_seen_classes(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad} is not")), "{e}");
        }
    }

    #[test]
    fn coarse_table_from_data() {
        let fine = ImageSet::new(
            vec![0; 4],
            vec![0, 1, 0, 2],
            1,
            1,
            1,
            vec!["a".into(), "b".into(), "c".into()],
        )
        .unwrap();
        let coarse = ImageSet::new(
            vec![0; 4],
            vec![1, 0, 1, 1],
            1,
            1,
            1,
            vec!["x".into(), "y".into()],
        )
        .unwrap();
        assert_eq!(fine_to_coarse_from_sets(&fine, &coarse).unwrap(), [1, 0, 1]);
        let mut bad = coarse.clone();
        bad.labels[2] = 0;
        let e = fine_to_coarse_from_sets(&fine, &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("fine class 0 has coarse classes 1 and 0 (image 2)"),
            "{e}"
        );
    }

    #[test]
    fn toy_split_by_hand() {
        // 5 classes x 6 images, seen 3,1 with 2 labels each.
        let set = toy(5, 6);
        let s = OsslSplit::new(&set, &OsslConfig::new("3,1", 2), 4).unwrap();
        assert_eq!(s.classes, [3, 1, 0, 2, 4]);
        assert_eq!((s.num_seen, s.num_unseen()), (2, 3));
        assert_eq!(s.labelled.class_counts(), vec![2, 2]);
        assert_eq!(s.labelled.class_names, ["c3", "c1"]);
        // IOMatch: the unlabelled set is the whole training set.
        assert_eq!(s.unlabelled.len(), 30);
        assert_eq!(s.unlabelled_indices, (0..30).collect::<Vec<_>>());
        assert_eq!(s.unlabelled.class_counts(), vec![6; 5]);
        assert_eq!(s.is_seen.iter().filter(|&&b| b).count(), 12);
        for (k, &i) in s.unlabelled_indices.iter().enumerate() {
            let want = s.classes.iter().position(|&c| c == set.labels[i]).unwrap() as u32;
            assert_eq!(s.unlabelled.labels[k], want);
        }
        // Without the labelled images.
        let mut cfg = OsslConfig::new("3,1", 2);
        cfg.include_labelled_in_unlabelled = false;
        let t = OsslSplit::new(&set, &cfg, 4).unwrap();
        assert_eq!(t.labelled_indices, s.labelled_indices);
        assert_eq!(t.unlabelled.len(), 26);
        assert!(t
            .unlabelled_indices
            .iter()
            .all(|i| !s.labelled_indices.contains(i)));
        assert_eq!(
            OsslSplit::new(&set, &OsslConfig::new("3,1", 2), 4).unwrap(),
            s
        );
    }

    #[test]
    fn given_labelled_indices_by_hand() {
        // toy(4, 3): image i has class i % 4; seen classes 2,0 (labels 0, 1), unseen 1, 3.
        let set = toy(4, 3);
        let cfg = OsslConfig::new("2,0", 99); // labels_per_class is ignored
        let s = OsslSplit::from_labelled_indices(&set, &cfg, &[10, 0, 6]).unwrap();
        assert_eq!(s.classes, [2, 0, 1, 3]);
        assert_eq!(s.num_seen, 2);
        assert_eq!(s.labelled_indices, [0, 6, 10]);
        // Image 0 is class 0 -> label 1; images 6 and 10 are class 2 -> label 0.
        assert_eq!(s.labelled.labels, [1, 0, 0]);
        assert_eq!(s.labelled.pixels, [0, 6, 10]);
        assert_eq!(s.labelled.class_names, ["c2", "c0"]);
        assert_eq!(s.unlabelled_indices, (0..12).collect::<Vec<_>>());
        // Classes 0,1,2,3 -> labels 1,2,0,3.
        assert_eq!(&s.unlabelled.labels[..4], &[1, 2, 0, 3]);
        assert_eq!(&s.is_seen[..4], &[true, false, true, false]);
        let mut without = cfg.clone();
        without.include_labelled_in_unlabelled = false;
        let t = OsslSplit::from_labelled_indices(&set, &without, &[10, 0, 6]).unwrap();
        assert_eq!(t.unlabelled_indices, [1, 2, 3, 4, 5, 7, 8, 9, 11]);
        // The drawn split is the given split of the indices it drew.
        let drawn = OsslSplit::new(&set, &OsslConfig::new("2,0", 2), 7).unwrap();
        let given = OsslSplit::from_labelled_indices(&set, &cfg, &drawn.labelled_indices).unwrap();
        assert_eq!(given, drawn);
    }

    #[test]
    fn given_labelled_indices_errors_name_the_value() {
        let set = toy(4, 3);
        let e = |seen: &str, idx: &[usize]| {
            OsslSplit::from_labelled_indices(&set, &OsslConfig::new(seen, 1), idx)
                .unwrap_err()
                .to_string()
        };
        let m = e("0,2", &[0, 12]);
        assert!(
            m.contains("index 12 (entry 2) is out of range") && m.contains("12 images"),
            "{m}"
        );
        // A repeated index is a repeated labelled image (the reference's lists have some).
        let r =
            OsslSplit::from_labelled_indices(&set, &OsslConfig::new("0,2", 1), &[0, 2, 0]).unwrap();
        assert_eq!(r.labelled_indices, [0, 0, 2]);
        assert_eq!(r.labelled.labels, [0, 0, 1]);
        assert_eq!(r.unlabelled.len(), 12);
        let m = e("0,2", &[0, 5, 2]);
        assert!(
            m.contains("index 5 (entry 2)") && m.contains("class 1 (c1)"),
            "{m}"
        );
        assert!(m.contains("not seen"), "{m}");
        let m = e("0,2", &[4, 8]);
        assert!(m.contains("seen class 2 (c2) has no labelled image"), "{m}");
        let m = e("0-3", &[0, 1, 2, 3]);
        assert!(m.contains("no unseen class"), "{m}");
        assert!(e("0,7", &[0]).contains("ossl.seen_classes"));
    }

    #[test]
    fn test_sets_closed_and_full() {
        let set = toy(4, 3);
        let s = OsslSplit::new(&set, &OsslConfig::new("1-2", 1), 0).unwrap();
        let t = s.test(&set).unwrap();
        assert_eq!(t.closed.len(), 6);
        assert_eq!(t.closed.class_names, ["c1", "c2"]);
        assert!(t.closed.labels.iter().all(|&l| l < 2));
        assert_eq!(t.full.len(), 12);
        assert_eq!(t.full.class_names, ["c1", "c2", "unseen"]);
        // Source labels 0,1,2,3 -> fine 2,0,1,3 -> full 2,0,1,2.
        assert_eq!(&t.full_fine_labels[..4], &[2, 0, 1, 3]);
        assert_eq!(&t.full.labels[..4], &[2, 0, 1, 2]);
        assert!(s.test(&toy(3, 1)).is_err());
    }

    #[test]
    fn errors_name_the_value() {
        let set = toy(4, 3);
        let e = |c: OsslConfig| OsslSplit::new(&set, &c, 0).unwrap_err().to_string();
        let m = e(OsslConfig::new("0-2", 4));
        assert!(
            m.contains("seen class 0 (c0) has 3 training images, fewer than labels_per_class = 4"),
            "{m}"
        );
        assert!(e(OsslConfig::new("0-3", 1)).contains("covers all 4 classes: no unseen class"));
        assert!(e(OsslConfig::new("0-1", 0)).contains("labels_per_class = 0"));
        assert!(e(OsslConfig::new("0,9", 1)).contains("ossl.seen_classes"));
        assert!(e(OsslConfig::new("a", 1)).contains("\"a\""));
    }

    #[test]
    fn presets_and_toml() {
        assert_eq!(OsslConfig::cifar10(25).seen_classes, "2-7");
        assert_eq!(OsslConfig::digits(4).seen_classes, "0-5");
        let c = OsslConfig::cifar100(50, 25).unwrap();
        assert_eq!(ClassSpec::parse(&c.seen_classes).unwrap().len(), 50);
        let t: OsslConfig = toml::from_str("seen_classes = \"2-7\"\nlabels_per_class = 4").unwrap();
        assert_eq!(t, OsslConfig::cifar10(4));
        assert!(t.include_labelled_in_unlabelled);
    }
}
