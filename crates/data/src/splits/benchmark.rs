//! OOD benchmark descriptions: one in-distribution set and named OOD sets grouped
//! `near` / `far` (the grouping of OpenOOD v1.5).
//!
//! A trainer config embeds it, e.g. MNIST-0-5 as ID with two OOD sets:
//!
//! ```toml
//! [benchmark.id]
//! source = "mnist"
//! path = "data/mnist"
//! classes = "0-5"
//!
//! [[benchmark.ood]]
//! name = "mnist-6-9"
//! group = "near"
//! dataset = { source = "mnist", path = "data/mnist", classes = "6-9" }
//!
//! [[benchmark.ood]]
//! name = "fashion-mnist"
//! group = "far"
//! dataset = { source = "fashion-mnist", path = "data/fashion", limit_per_class = 100 }
//! ```
//!
//! ImageNet-30 as IOMatch reads it (source `"file-list"`, see
//! [`formats::filelist`](crate::formats::filelist)): `path` is the root the listed image
//! paths start from, the lists are relative to it unless absolute:
//!
//! ```toml
//! [benchmark.id]
//! source = "file-list"
//! path = "/data/IOMatch"
//! train_list = "data/imagenet30/filelist/train_unlabeled_full.txt"
//! test_list = "data/imagenet30/filelist/test.txt"
//! ```
//!
//! These types only describe the sets; the trainer loads them with
//! [`formats`](crate::formats), keeps `classes` with
//! [`ImageSet::subset_classes`](crate::ImageSet::subset_classes) and applies
//! `limit_per_class` with [`per_class_limit`](super::per_class_limit).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ClassSpec;
use crate::error::{DataError, Result};

/// The dataset sources a [`DatasetRef`] may name.
pub const SOURCES: &[&str] = &[
    "mnist",
    "fashion-mnist",
    "cifar10",
    "cifar100",
    "folder",
    "file-list",
];

/// Where a dataset comes from and which part of it to use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetRef {
    /// The format / dataset: one of [`SOURCES`] (`"mnist"`, `"fashion-mnist"`, `"cifar10"`,
    /// `"cifar100"`, `"folder"`, `"file-list"`).
    pub source: String,
    /// The directory (or file) holding it; for `"file-list"`, the root folder the listed
    /// image paths are relative to.
    pub path: PathBuf,
    /// `"file-list"` only: the list of training images, one `<path> <label>` per line
    /// ([`read_file_list`](crate::formats::read_file_list)), relative to `path` unless
    /// absolute. Required where the training split is read (the ID set, outliers:
    /// [`DatasetRef::validate`]); optional for sets of which only the test split is read
    /// (OOD and csid sets: [`DatasetRef::validate_test_only`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_list: Option<PathBuf>,
    /// `"file-list"` only (required there): the list of test images, as `train_list`; the
    /// only list an OOD or csid set needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_list: Option<PathBuf>,
    /// The classes to keep, as a [`ClassSpec`] (`"0-5"`, `"0-4,7"`); all when absent.
    /// Kept classes are relabelled `0..k` in the order written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<String>,
    /// Keep at most this many images per class (seeded); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_per_class: Option<usize>,
}

impl DatasetRef {
    /// The parsed class list, `None` when every class is kept.
    pub fn class_spec(&self) -> Result<Option<ClassSpec>> {
        self.classes.as_deref().map(ClassSpec::parse).transpose()
    }

    /// The resolved training (`train`) or test list of a `"file-list"` source: the list
    /// joined to `path` unless absolute; `None` when the list is not set.
    pub fn list_path(&self, train: bool) -> Option<PathBuf> {
        let list = if train {
            &self.train_list
        } else {
            &self.test_list
        };
        list.as_deref().map(|l| self.resolve(l))
    }

    /// `p` joined to `path` unless absolute: how the lists of a `"file-list"` source (and
    /// files that name their lines, such as `ossl.labelled_list`) are found.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.join(p)
        }
    }

    /// Checks the source name, the path, the lists (both set for `"file-list"`, neither
    /// for any other source), the class list and the limit: a set whose training and test
    /// splits are both read (the ID set, outliers).
    pub fn validate(&self) -> Result<()> {
        self.check(true)
    }

    /// As [`DatasetRef::validate`], for a set of which only the test split is read (OOD and
    /// csid sets): `"file-list"` needs `test_list` only, `train_list` may be left out.
    pub fn validate_test_only(&self) -> Result<()> {
        self.check(false)
    }

    /// The checks of [`DatasetRef::validate`], `train_list` required when `needs_train`.
    fn check(&self, needs_train: bool) -> Result<()> {
        if !SOURCES.contains(&self.source.as_str()) {
            return Err(DataError::Split(format!(
                "unknown dataset source {:?} (expected one of {})",
                self.source,
                SOURCES.join(", ")
            )));
        }
        if self.path.as_os_str().is_empty() {
            return Err(DataError::Split(format!(
                "dataset source {:?} has an empty path",
                self.source
            )));
        }
        let lists = [
            ("train_list", &self.train_list, needs_train),
            ("test_list", &self.test_list, true),
        ];
        for (key, list, needed) in lists {
            let is_list = self.source == "file-list";
            match list {
                None if is_list && needed => {
                    let read = if key == "train_list" {
                        "its training split is read (only OOD and csid sets, of which only the \
                         test split is read, may leave it out)"
                    } else {
                        "its test split is read"
                    };
                    return Err(DataError::Split(format!(
                        "dataset source \"file-list\" at {} needs `{key}` (a file of \
                         `<image path> <label>` lines, relative to `path`): {read}",
                        self.path.display()
                    )));
                }
                Some(p) if is_list && p.as_os_str().is_empty() => {
                    return Err(DataError::Split(format!(
                        "dataset source \"file-list\": `{key}` is empty"
                    )))
                }
                Some(p) if !is_list => {
                    return Err(DataError::Split(format!(
                        "`{key}` = {:?} is only read by source \"file-list\", not {:?}: \
                         remove it or change `source`",
                        p.display().to_string(),
                        self.source
                    )))
                }
                _ => {}
            }
        }
        self.class_spec()?;
        if self.limit_per_class == Some(0) {
            return Err(DataError::Split(format!(
                "dataset {}: limit_per_class = 0 keeps no image",
                self.default_name()
            )));
        }
        Ok(())
    }

    /// A readable name: the source, followed by the class list when one is given, e.g.
    /// `"mnist-0-5"` (the form `metrics.json` uses).
    pub fn default_name(&self) -> String {
        match self.class_spec() {
            Ok(Some(spec)) => format!("{}-{spec}", self.source),
            Ok(None) => self.source.clone(),
            Err(_) => format!("{}-{}", self.source, self.classes.as_deref().unwrap_or("")),
        }
    }

    /// True when `self` and `other` are the same source at the same path and may therefore
    /// hold the same images. Two `"file-list"` sets under one root are the same data only
    /// when they read a common list file (one of `train_list` / `test_list` of the one,
    /// resolved against `path`, is one of the other's): sets of OpenOOD's benchmarks share
    /// an image folder but read their own lists.
    pub fn same_data(&self, other: &DatasetRef) -> bool {
        if self.source != other.source || self.path != other.path {
            return false;
        }
        if self.source != "file-list" {
            return true;
        }
        let lists = |d: &DatasetRef| -> Vec<PathBuf> {
            [true, false]
                .into_iter()
                .filter_map(|train| d.list_path(train))
                .collect()
        };
        let theirs = lists(other);
        lists(self).iter().any(|l| theirs.contains(l))
    }
}

/// How far an OOD set is from the ID set (OpenOOD v1.5's split of benchmarks), or
/// [`OodGroup::Csid`] for a covariate-shifted ID set (OpenOOD v1.5's full-spectrum setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OodGroup {
    /// Semantic shift with similar style (e.g. held-out classes of the same dataset).
    Near,
    /// Different domain (e.g. Fashion-MNIST against MNIST).
    Far,
    /// Covariate-shifted ID: the ID classes in another style or domain (ImageNet-V2,
    /// ImageNet-C, ...). Not OOD: its images carry ID labels (the classes of the ID set,
    /// selected and relabelled the same way) and count as ID in full-spectrum OOD (FSOOD)
    /// evaluation.
    Csid,
}

impl OodGroup {
    /// `"near"`, `"far"` or `"csid"`, as in configs and `metrics.json`.
    pub fn as_str(&self) -> &'static str {
        match self {
            OodGroup::Near => "near",
            OodGroup::Far => "far",
            OodGroup::Csid => "csid",
        }
    }

    /// True for the covariate-shifted ID group (`csid`), which is not OOD.
    pub fn is_csid(&self) -> bool {
        matches!(self, OodGroup::Csid)
    }
}

impl fmt::Display for OodGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One named OOD test set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodSet {
    /// Unique name, reported in `metrics.json` (e.g. `"mnist-6-9"`).
    pub name: String,
    /// `near`, `far` or `csid` (covariate-shifted ID, scored as ID in full-spectrum OOD).
    pub group: OodGroup,
    /// Where its images come from.
    pub dataset: DatasetRef,
}

/// An OOD benchmark: the in-distribution dataset and the OOD sets to test against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OodBenchmark {
    /// The in-distribution dataset.
    pub id: DatasetRef,
    /// The OOD test sets (at least one).
    pub ood: Vec<OodSet>,
}

impl OodBenchmark {
    /// Checks the description: every dataset valid ([`DatasetRef::validate`] for the ID set,
    /// [`DatasetRef::validate_test_only`] for the others, of which only the test split is
    /// read), at least one
    /// OOD set (`near` or `far`; `csid` sets alone are not a benchmark), names non-empty and
    /// unique, and no OOD set that shares classes with the ID set (the same data, see
    /// [`DatasetRef::same_data`], with overlapping class lists, or one of them keeping every
    /// class). `csid` sets hold ID
    /// classes by definition and are exempt from that last check (whether their labels lie
    /// in the ID range can only be checked once they are loaded). Each error names the
    /// offending set and value.
    pub fn validate(&self) -> Result<()> {
        let ctx = |what: &str, e: DataError| match e {
            DataError::Split(m) => DataError::Split(format!("{what}: {m}")),
            other => other,
        };
        self.id.validate().map_err(|e| ctx("benchmark id set", e))?;
        if self.ood.is_empty() {
            return Err(DataError::Split(
                "benchmark has no OOD set (add at least one [[ood]] entry)".into(),
            ));
        }
        if self.ood.iter().all(|s| s.group.is_csid()) {
            return Err(DataError::Split(
                "benchmark has only covariate-shifted ID sets (group = \"csid\"), no OOD set: \
                 add at least one [[ood]] entry with group \"near\" or \"far\""
                    .into(),
            ));
        }
        let id_classes: Option<HashSet<u32>> = self
            .id
            .class_spec()?
            .map(|s| s.classes().iter().copied().collect());
        let mut names = HashSet::new();
        for (k, set) in self.ood.iter().enumerate() {
            if set.name.trim().is_empty() {
                return Err(DataError::Split(format!(
                    "OOD set #{} has an empty name",
                    k + 1
                )));
            }
            if !names.insert(set.name.as_str()) {
                return Err(DataError::Split(format!(
                    "OOD set name {:?} is used twice",
                    set.name
                )));
            }
            let what = format!("OOD set {:?}", set.name);
            set.dataset
                .validate_test_only()
                .map_err(|e| ctx(&what, e))?;
            if !set.group.is_csid() && set.dataset.same_data(&self.id) {
                let ood = set.dataset.class_spec()?;
                let shared: Vec<u32> = match (&id_classes, &ood) {
                    (Some(id), Some(ood)) => ood
                        .classes()
                        .iter()
                        .copied()
                        .filter(|c| id.contains(c))
                        .collect(),
                    _ => {
                        return Err(DataError::Split(format!(
                            "{what} reads the ID dataset ({} at {}) and one of the two keeps \
                             every class: give both disjoint `classes`",
                            self.id.source,
                            self.id.path.display()
                        )))
                    }
                };
                if !shared.is_empty() {
                    return Err(DataError::Split(format!(
                        "{what} shares classes {shared:?} with the ID set ({} at {})",
                        self.id.source,
                        self.id.path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The sets of one group (`csid`: the covariate-shifted ID sets), in the order written.
    pub fn group(&self, group: OodGroup) -> impl Iterator<Item = &OodSet> {
        self.ood.iter().filter(move |s| s.group == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MNIST_6_4: &str = r#"
        [id]
        source = "mnist"
        path = "data/mnist"
        classes = "0-5"

        [[ood]]
        name = "mnist-6-9"
        group = "near"
        dataset = { source = "mnist", path = "data/mnist", classes = "6-9" }

        [[ood]]
        name = "fashion"
        group = "far"
        dataset = { source = "fashion-mnist", path = "data/fashion", limit_per_class = 100 }
    "#;

    fn bench() -> OodBenchmark {
        toml::from_str(MNIST_6_4).unwrap()
    }

    fn err(b: &OodBenchmark) -> String {
        b.validate().unwrap_err().to_string()
    }

    #[test]
    fn parses_from_toml_and_validates() {
        let b = bench();
        b.validate().unwrap();
        assert_eq!(b.id.classes.as_deref(), Some("0-5"));
        assert_eq!(b.id.limit_per_class, None);
        assert_eq!(b.ood[0].group, OodGroup::Near);
        assert_eq!(b.ood[1].group, OodGroup::Far);
        assert_eq!(b.ood[1].dataset.limit_per_class, Some(100));
        assert_eq!(b.ood[1].dataset.path, PathBuf::from("data/fashion"));
        let near: Vec<_> = b.group(OodGroup::Near).map(|s| s.name.as_str()).collect();
        assert_eq!(near, ["mnist-6-9"]);
        assert_eq!(b.id.default_name(), "mnist-0-5");
        assert_eq!(b.ood[1].dataset.default_name(), "fashion-mnist");
        assert_eq!(OodGroup::Far.to_string(), "far");
    }

    #[test]
    fn round_trips_through_toml() {
        let b = bench();
        let text = toml::to_string(&b).unwrap();
        assert_eq!(toml::from_str::<OodBenchmark>(&text).unwrap(), b);
    }

    #[test]
    fn unknown_fields_and_groups_are_rejected() {
        let typo = MNIST_6_4.replace("limit_per_class", "limit_per_klass");
        let e = toml::from_str::<OodBenchmark>(&typo)
            .unwrap_err()
            .to_string();
        assert!(e.contains("limit_per_klass"), "{e}");
        let bad_group = MNIST_6_4.replace("\"near\"", "\"nearby\"");
        let e = toml::from_str::<OodBenchmark>(&bad_group)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nearby"), "{e}");
        let extra = format!("{MNIST_6_4}\nseed = 3\n");
        assert!(toml::from_str::<OodBenchmark>(&extra).is_err());
    }

    #[test]
    fn validation_names_the_offending_value() {
        let mut b = bench();
        b.ood[1].name = "mnist-6-9".into();
        assert!(err(&b).contains("\"mnist-6-9\" is used twice"));

        let mut b = bench();
        b.ood[0].name = "  ".into();
        assert!(err(&b).contains("OOD set #1 has an empty name"));

        let mut b = bench();
        b.ood.clear();
        assert!(err(&b).contains("no OOD set"));

        let mut b = bench();
        b.ood[1].dataset.source = "svhn".into();
        let e = err(&b);
        assert!(
            e.contains("OOD set \"fashion\"") && e.contains("\"svhn\""),
            "{e}"
        );

        let mut b = bench();
        b.id.classes = Some("0-5,x".into());
        let e = err(&b);
        assert!(e.contains("benchmark id set") && e.contains("\"x\""), "{e}");

        let mut b = bench();
        b.ood[1].dataset.limit_per_class = Some(0);
        assert!(err(&b).contains("limit_per_class = 0"));

        let mut b = bench();
        b.id.path = PathBuf::new();
        assert!(err(&b).contains("empty path"));
    }

    #[test]
    fn file_list_source_needs_both_lists() {
        let text = r#"
            source = "file-list"
            path = "/data/IOMatch"
            train_list = "data/imagenet30/filelist/train_unlabeled_full.txt"
            test_list = "/lists/test.txt"
        "#;
        let d: DatasetRef = toml::from_str(text).unwrap();
        d.validate().unwrap();
        assert_eq!(
            d.list_path(true).unwrap(),
            PathBuf::from("/data/IOMatch/data/imagenet30/filelist/train_unlabeled_full.txt")
        );
        assert_eq!(
            d.list_path(false).unwrap(),
            PathBuf::from("/lists/test.txt")
        );
        assert_eq!(
            toml::from_str::<DatasetRef>(&toml::to_string(&d).unwrap()).unwrap(),
            d
        );

        let mut no_test = d.clone();
        no_test.test_list = None;
        let e = no_test.validate().unwrap_err().to_string();
        assert!(e.contains("`test_list`") && e.contains("file-list"), "{e}");
        assert_eq!(no_test.list_path(false), None);
        let mut no_train = d.clone();
        no_train.train_list = None;
        assert!(no_train
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`train_list`"));

        // Other sources reject the keys, and do not write them.
        let mut b = bench();
        b.id.test_list = Some("t.txt".into());
        let e = err(&b);
        assert!(e.contains("`test_list`") && e.contains("\"mnist\""), "{e}");
        assert!(!toml::to_string(&bench()).unwrap().contains("_list"));
        let typo = text.replace("test_list", "test_lst");
        assert!(toml::from_str::<DatasetRef>(&typo).is_err());
    }

    /// OpenOOD's layout: every set under one image folder, each with its own lists.
    fn openood_like() -> OodBenchmark {
        toml::from_str(
            r#"
            [id]
            source = "file-list"
            path = "data/images_classic"
            train_list = "../benchmark_imglist/cifar10/train_cifar10.txt"
            test_list = "../benchmark_imglist/cifar10/test_cifar10.txt"

            [[ood]]
            name = "svhn"
            group = "far"
            dataset = { source = "file-list", path = "data/images_classic", test_list = "../benchmark_imglist/cifar10/test_svhn.txt" }

            [[ood]]
            name = "cifar10-c"
            group = "csid"
            dataset = { source = "file-list", path = "data/images_classic", test_list = "../benchmark_imglist/cifar10/test_cifar10c.txt" }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn ood_and_csid_file_lists_need_only_the_test_list() {
        let b = openood_like();
        b.validate().unwrap();
        assert_eq!(b.ood[0].dataset.train_list, None);
        b.ood[0].dataset.validate_test_only().unwrap();
        // Where the training split is read (the ID set, outliers), `train_list` is required.
        let e = b.ood[0].dataset.validate().unwrap_err().to_string();
        assert!(
            e.contains("`train_list`") && e.contains("data/images_classic"),
            "{e}"
        );
        let mut no_train = b.clone();
        no_train.id.train_list = None;
        let e = err(&no_train);
        assert!(
            e.contains("benchmark id set") && e.contains("`train_list`"),
            "{e}"
        );
        // The test list stays required for OOD sets.
        let mut no_test = b.clone();
        no_test.ood[0].dataset.test_list = None;
        let e = err(&no_test);
        assert!(e.contains("\"svhn\"") && e.contains("`test_list`"), "{e}");
        // Other sources still reject the keys.
        let mut other = b.clone();
        other.ood[0].dataset.source = "cifar10".into();
        let e = err(&other);
        assert!(
            e.contains("`test_list`") && e.contains("\"cifar10\""),
            "{e}"
        );
    }

    #[test]
    fn file_list_sets_are_the_same_data_only_with_a_common_list() {
        let b = openood_like();
        let (id, svhn) = (&b.id, &b.ood[0].dataset);
        // One folder, other lists: not the ID data.
        assert!(!svhn.same_data(id) && !id.same_data(svhn));
        // The same lists: the same data, and refused as an OOD set.
        let mut same = b.clone();
        same.ood[0].dataset.train_list = id.train_list.clone();
        same.ood[0].dataset.test_list = id.test_list.clone();
        assert!(same.ood[0].dataset.same_data(id));
        let e = err(&same);
        assert!(
            e.contains("\"svhn\"") && e.contains("reads the ID dataset"),
            "{e}"
        );
        // The ID test list alone (as an OOD set reads it) is enough.
        let mut test_only = b.clone();
        test_only.ood[0].dataset.test_list = id.test_list.clone();
        assert!(test_only.ood[0].dataset.same_data(id));
        assert!(err(&test_only).contains("reads the ID dataset"));
        // The same list file named absolutely is the same file.
        let mut absolute = b.clone();
        absolute.id.path = "/data/images_classic".into();
        absolute.id.test_list = Some("/data/benchmark_imglist/cifar10/test_svhn.txt".into());
        absolute.ood[0].dataset.path = "/data/images_classic".into();
        absolute.ood[0].dataset.test_list =
            Some("../benchmark_imglist/cifar10/test_svhn.txt".into());
        assert!(!absolute.ood[0].dataset.same_data(&absolute.id));
        absolute.ood[0].dataset.test_list = absolute.id.test_list.clone();
        assert!(absolute.ood[0].dataset.same_data(&absolute.id));
        // csid sets are exempt; other sources still compare source and path only.
        let mut csid = b.clone();
        csid.ood[1].dataset.test_list = id.test_list.clone();
        csid.validate().unwrap();
        let m = bench();
        assert!(m.ood[0].dataset.same_data(&m.id));
        assert!(!m.ood[1].dataset.same_data(&m.id));
    }

    #[test]
    fn ood_sets_must_not_share_id_classes() {
        let mut b = bench();
        b.ood[0].dataset.classes = Some("5-9".into());
        assert!(err(&b).contains("shares classes [5]"), "{}", err(&b));

        let mut b = bench();
        b.ood[0].dataset.classes = None;
        assert!(err(&b).contains("keeps every class"));

        // The same classes of a different source, or at another path, are fine.
        let mut b = bench();
        b.ood[0].dataset.classes = Some("0-5".into());
        b.ood[0].dataset.source = "fashion-mnist".into();
        b.validate().unwrap();
    }

    #[test]
    fn csid_sets_may_hold_id_classes_but_are_not_ood_sets() {
        let text = format!(
            "{MNIST_6_4}\n[[ood]]\nname = \"mnist-0-5-test\"\ngroup = \"csid\"\n\
             dataset = {{ source = \"mnist\", path = \"data/mnist\", classes = \"0-5\" }}\n"
        );
        let b: OodBenchmark = toml::from_str(&text).unwrap();
        assert_eq!(b.ood[2].group, OodGroup::Csid);
        assert_eq!(b.ood[2].group.as_str(), "csid");
        assert!(b.ood[2].group.is_csid() && !b.ood[0].group.is_csid());
        // A csid set shares the ID classes by definition, even keeping every class.
        b.validate().unwrap();
        let mut every = b.clone();
        every.ood[2].dataset.classes = None;
        every.validate().unwrap();
        let csid: Vec<_> = b.group(OodGroup::Csid).map(|s| s.name.as_str()).collect();
        assert_eq!(csid, ["mnist-0-5-test"]);
        assert_eq!(
            toml::from_str::<OodBenchmark>(&toml::to_string(&b).unwrap()).unwrap(),
            b
        );
        // Names stay unique across groups, and csid sets alone are no benchmark.
        let mut twice = b.clone();
        twice.ood[2].name = "fashion".into();
        assert!(err(&twice).contains("\"fashion\" is used twice"));
        let mut only = b.clone();
        only.ood.drain(..2);
        let e = err(&only);
        assert!(e.contains("csid") && e.contains("near"), "{e}");
    }
}
