//! Class splits of the Semantic Shift Benchmark (SSB; Vaze et al., "Open-Set Recognition:
//! a Good Closed-Set Classifier is All You Need?", ICLR 2022) in a plain-text format, and
//! the published splits of CUB-200-2011, Stanford Cars and FGVC-Aircraft.
//!
//! # Format
//! One `key: ids` line per list, class ids (non-negative integers) separated by spaces;
//! blank lines and lines starting with `#` are ignored:
//!
//! ```text
//! # comments say where the lists come from and how classes are numbered
//! known_classes: 150 70 34 178
//! unknown_classes_hard: 29 110
//! unknown_classes_medium: 3
//! unknown_classes_easy: 20 159
//! ```
//!
//! Keys: `known_classes` (required), and any of `unknown_classes`, `unknown_classes_hard`,
//! `unknown_classes_medium`, `unknown_classes_easy`; each at most once, at least one unknown
//! list. Order within a list is kept. A class may appear only once in the whole file. Every
//! error names the file (or source) and the line.
//!
//! # The bundled splits
//! `crates/data/splits/ssb/{cub,scars,aircraft}.txt` hold the lists of
//! `github.com/sgvaze/SSB`, `SSB/splits/<name>_ssb_splits.json` (commit `615320b`),
//! copied in the published order by `tests/fixtures/ssb_splits_from_json.py`; an
//! independent copy of the CUB and Stanford Cars lists hard-coded in a third-party GCD
//! repository agrees with them. Class ids are 0-based: CUB `class_id - 1`; Stanford Cars in
//! the order of `cars_meta.mat` (not a sorted image folder); FGVC-Aircraft in the order of
//! `variants.txt`. [`SsbSplit::builtin`] returns them.
//!
//! GCD (`sgvaze/generalized-category-discovery`, `data/get_datasets.py`,
//! `get_class_splits` with `use_ssb_splits`; SimGCD's default) takes `known_classes` as
//! the old classes and `Hard + Medium + Easy`, in that order, as the new ones:
//! [`SsbSplit::gcd_config`] (defined with the GCD splits, in [`super::gcd`]: this module
//! only describes class lists and does not depend on the GCD code).

use std::path::Path;

use crate::error::{DataError, Result};

/// The SSB datasets with a bundled split, as [`SsbSplit::builtin`] names them.
pub const SSB_DATASETS: [&str; 3] = ["cub", "scars", "aircraft"];

const CUB: &str = include_str!("../../splits/ssb/cub.txt");
const SCARS: &str = include_str!("../../splits/ssb/scars.txt");
const AIRCRAFT: &str = include_str!("../../splits/ssb/aircraft.txt");

/// Known and unknown classes of one dataset.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsbSplit {
    /// The known (seen, "old") classes, in the order written.
    pub known: Vec<u32>,
    /// Unknown classes without a difficulty (`unknown_classes:`).
    pub unknown: Vec<u32>,
    /// Unknown classes most similar to the known ones (`unknown_classes_hard:`).
    pub hard: Vec<u32>,
    /// `unknown_classes_medium:` (the SSB merges them into Hard when benchmarking OSR).
    pub medium: Vec<u32>,
    /// Unknown classes least similar to the known ones (`unknown_classes_easy:`).
    pub easy: Vec<u32>,
}

const KEYS: [&str; 5] = [
    "known_classes",
    "unknown_classes",
    "unknown_classes_hard",
    "unknown_classes_medium",
    "unknown_classes_easy",
];

impl SsbSplit {
    /// Parses the text format; `source` (a file name) prefixes every error message.
    pub fn parse(text: &str, source: &str) -> Result<Self> {
        let err = |line: usize, what: String| DataError::Split(format!("{source}:{line}: {what}"));
        let mut lists: [Option<Vec<u32>>; 5] = Default::default();
        let mut seen = std::collections::HashMap::new();
        for (k, raw) in text.lines().enumerate() {
            let line_no = k + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, ids)) = line.split_once(':') else {
                return Err(err(
                    line_no,
                    format!("expected `key: ids`, found {line:.40?}"),
                ));
            };
            let key = key.trim();
            let Some(slot) = KEYS.iter().position(|&k| k == key) else {
                return Err(err(
                    line_no,
                    format!("unknown key {key:?} (expected one of {})", KEYS.join(", ")),
                ));
            };
            if lists[slot].is_some() {
                return Err(err(line_no, format!("{key} is given twice")));
            }
            let mut list = Vec::new();
            for id in ids.split_whitespace() {
                let c: u32 = id
                    .parse()
                    .map_err(|_| err(line_no, format!("{key}: {id:?} is not a class id")))?;
                if let Some((other_key, other_line)) = seen.insert(c, (key, line_no)) {
                    return Err(err(
                        line_no,
                        format!("class {c} is already listed in {other_key} (line {other_line})"),
                    ));
                }
                list.push(c);
            }
            if list.is_empty() {
                return Err(err(line_no, format!("{key} lists no class")));
            }
            lists[slot] = Some(list);
        }
        let [known, unknown, hard, medium, easy] = lists;
        let Some(known) = known else {
            return Err(DataError::Split(format!("{source}: no known_classes line")));
        };
        let split = Self {
            known,
            unknown: unknown.unwrap_or_default(),
            hard: hard.unwrap_or_default(),
            medium: medium.unwrap_or_default(),
            easy: easy.unwrap_or_default(),
        };
        if split.unknown_all().is_empty() {
            return Err(DataError::Split(format!(
                "{source}: no unknown_classes* line"
            )));
        }
        Ok(split)
    }

    /// Reads and parses a split file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The bundled split of `"cub"`, `"scars"` or `"aircraft"` (see the
    /// [module docs](self) for the source).
    pub fn builtin(name: &str) -> Result<Self> {
        let text = match name.to_ascii_lowercase().as_str() {
            "cub" | "cub200" | "cub-200-2011" => CUB,
            "scars" | "stanford_cars" | "stanford-cars" => SCARS,
            "aircraft" | "fgvc_aircraft" | "fgvc-aircraft" => AIRCRAFT,
            other => {
                return Err(DataError::Split(format!(
                    "no bundled SSB split for {other:?} (known: {})",
                    SSB_DATASETS.join(", ")
                )))
            }
        };
        Self::parse(text, &format!("splits/ssb/{name}.txt"))
    }

    /// Every unknown class in GCD's order: `unknown`, then hard, medium, easy.
    pub fn unknown_all(&self) -> Vec<u32> {
        [&self.unknown, &self.hard, &self.medium, &self.easy]
            .into_iter()
            .flatten()
            .copied()
            .collect()
    }

    /// Number of classes named (known and unknown).
    pub fn num_classes(&self) -> usize {
        self.known.len() + self.unknown_all().len()
    }

    /// Checks that every class exists in a set of `num_classes` classes.
    pub fn check(&self, num_classes: usize) -> Result<()> {
        let all: Vec<u32> = self
            .known
            .iter()
            .copied()
            .chain(self.unknown_all())
            .collect();
        match all.iter().find(|&&c| c as usize >= num_classes) {
            Some(c) => Err(DataError::Split(format!(
                "SSB split: class {c} does not exist (the set has {num_classes} classes)"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_format() {
        let s = SsbSplit::parse(
            "# comment\n\nknown_classes: 3 1 2\nunknown_classes_easy: 0\n  unknown_classes_hard:5 4\n",
            "t.txt",
        )
        .unwrap();
        assert_eq!(s.known, [3, 1, 2]);
        assert_eq!(s.hard, [5, 4]);
        assert_eq!(s.easy, [0]);
        assert!(s.medium.is_empty() && s.unknown.is_empty());
        assert_eq!(s.unknown_all(), [5, 4, 0]);
        assert_eq!(s.num_classes(), 6);
        s.check(6).unwrap();
        assert!(s.check(5).unwrap_err().to_string().contains("class 5"));
    }

    #[test]
    fn errors_name_the_source_line_and_value() {
        let e = |t: &str| SsbSplit::parse(t, "f.txt").unwrap_err().to_string();
        assert!(e("known_classes: 1\nunknown_classes: 1\n")
            .contains("f.txt:2: class 1 is already listed in known_classes (line 1)"));
        assert!(e("known_classes: 1 x\nunknown_classes: 2")
            .contains("f.txt:1: known_classes: \"x\" is not a class id"));
        assert!(e("known: 1\n").contains("unknown key \"known\""));
        assert!(e("known_classes 1\n").contains("f.txt:1: expected `key: ids`"));
        assert!(e("known_classes: 1\nknown_classes: 2\n")
            .contains("f.txt:2: known_classes is given twice"));
        assert!(e("unknown_classes: 1\n").contains("f.txt: no known_classes line"));
        assert!(e("known_classes: 1\n").contains("no unknown_classes"));
        assert!(e("known_classes:\nunknown_classes: 1").contains("known_classes lists no class"));
        assert!(e("known_classes: -1\nunknown_classes: 1").contains("\"-1\""));
    }

    #[test]
    fn bundled_splits_are_partitions_with_the_published_sizes() {
        // (dataset, classes, known, hard, medium, easy) as in the SSB JSON files.
        for (name, n, k, hard, medium, easy) in [
            ("cub", 200, 100, 34, 34, 32),
            ("scars", 196, 98, 7, 15, 76),
            ("aircraft", 100, 50, 13, 17, 20),
        ] {
            let s = SsbSplit::builtin(name).unwrap();
            assert_eq!(
                (s.known.len(), s.hard.len(), s.medium.len(), s.easy.len()),
                (k, hard, medium, easy),
                "{name}"
            );
            assert!(s.unknown.is_empty());
            let mut all: Vec<u32> = s.known.iter().copied().chain(s.unknown_all()).collect();
            all.sort_unstable();
            assert_eq!(all, (0..n as u32).collect::<Vec<_>>(), "{name}");
        }
        // Spot checks against the published lists (first and last entries).
        let cub = SsbSplit::builtin("cub").unwrap();
        assert_eq!(&cub.known[..5], &[150, 70, 34, 178, 199]);
        assert_eq!(cub.known[99], 136);
        assert_eq!(&cub.hard[..4], &[29, 110, 3, 8]);
        let scars = SsbSplit::builtin("scars").unwrap();
        assert_eq!(scars.hard, [23, 42, 83, 94, 113, 126, 190]);
        let air = SsbSplit::builtin("aircraft").unwrap();
        assert_eq!(&air.known[..6], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(&air.hard[..3], &[6, 7, 8]);
        assert!(SsbSplit::builtin("imagenet")
            .unwrap_err()
            .to_string()
            .contains("cub"));
    }

    #[test]
    fn load_reads_a_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mine.txt");
        std::fs::write(&p, "known_classes: 0\nunknown_classes: 1 1\n").unwrap();
        let e = SsbSplit::load(&p).unwrap_err().to_string();
        assert!(e.contains("mine.txt:2"), "{e}");
        let missing = SsbSplit::load(&dir.path().join("none.txt"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.txt"), "{missing}");
    }
}
