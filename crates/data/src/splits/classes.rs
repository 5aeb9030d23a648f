//! Class lists and seeded per-class subsampling.

use std::fmt;
use std::str::FromStr;

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::rng::Rng;

/// The most classes one specification may name (guards against `"0-4000000000"`).
const MAX_CLASSES: usize = 1 << 20;

/// An ordered list of distinct class labels, written as comma-separated items, each a class
/// (`"7"`) or an inclusive range (`"0-5"`): `"0-5"`, `"6,7,8,9"`, `"0-4,7"`. Spaces around
/// items are allowed.
///
/// The order is kept: with [`ImageSet::subset_classes`], `classes()[k]` becomes label `k`.
/// A class named twice, an empty item, a reversed range (`"5-0"`) or anything that is not
/// a non-negative integer is an error that quotes the item and the whole specification.
///
/// ```
/// use unseen_data::splits::ClassSpec;
/// let spec: ClassSpec = "0-2, 7".parse().unwrap();
/// assert_eq!(spec.classes(), &[0, 1, 2, 7]);
/// assert_eq!(spec.to_string(), "0-2,7");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSpec {
    classes: Vec<u32>,
}

impl ClassSpec {
    /// Parses a specification such as `"0-4,7"`.
    pub fn parse(spec: &str) -> Result<Self> {
        let err = |what: String| DataError::Split(format!("class list {spec:?}: {what}"));
        if spec.trim().is_empty() {
            return Err(err("no class given".into()));
        }
        let number = |s: &str| -> Result<u32> {
            let s = s.trim();
            if s.is_empty() {
                return Err(err("a range is missing a bound".into()));
            }
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(format!("{s:?} is not a class number")));
            }
            s.parse::<u32>()
                .map_err(|_| err(format!("class {s} is too large")))
        };
        let mut classes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (k, item) in spec.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                return Err(err(format!("item {} is empty", k + 1)));
            }
            let (lo, hi) = match item.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let c = number(item)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(err(format!("range {item:?} is reversed (write {hi}-{lo})")));
            }
            if classes.len() + (hi - lo) as usize >= MAX_CLASSES {
                return Err(err(format!("more than {MAX_CLASSES} classes")));
            }
            for c in lo..=hi {
                if !seen.insert(c) {
                    return Err(err(format!("class {c} is named twice")));
                }
                classes.push(c);
            }
        }
        Ok(Self { classes })
    }

    /// Builds a specification from labels (checked to be distinct).
    pub fn from_classes(classes: Vec<u32>) -> Result<Self> {
        let mut seen = std::collections::HashSet::new();
        if classes.is_empty() {
            return Err(DataError::Split("class list is empty".into()));
        }
        if let Some(c) = classes.iter().find(|&&c| !seen.insert(c)) {
            return Err(DataError::Split(format!(
                "class list {classes:?}: class {c} is named twice"
            )));
        }
        Ok(Self { classes })
    }

    /// The classes, in the order written.
    pub fn classes(&self) -> &[u32] {
        &self.classes
    }

    /// The classes, in the order written.
    pub fn into_vec(self) -> Vec<u32> {
        self.classes
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Always false: a specification names at least one class.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }

    /// Checks that every class exists in a set of `num_classes` classes.
    pub fn check(&self, num_classes: usize) -> Result<()> {
        match self.classes.iter().find(|&&c| c as usize >= num_classes) {
            Some(c) => Err(DataError::Split(format!(
                "class list \"{self}\": class {c} does not exist (the set has {num_classes} \
                 classes, 0-{})",
                num_classes.saturating_sub(1)
            ))),
            None => Ok(()),
        }
    }
}

impl FromStr for ClassSpec {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl fmt::Display for ClassSpec {
    /// The canonical form: runs of consecutive increasing classes written as ranges.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut i = 0;
        let c = &self.classes;
        while i < c.len() {
            let mut j = i;
            // `checked_add`: u32::MAX followed by 0 is not a run (it would print as a
            // reversed range, which does not parse).
            while j + 1 < c.len() && c[j].checked_add(1) == Some(c[j + 1]) {
                j += 1;
            }
            if i > 0 {
                f.write_str(",")?;
            }
            if j > i {
                write!(f, "{}-{}", c[i], c[j])?;
            } else {
                write!(f, "{}", c[i])?;
            }
            i = j + 1;
        }
        Ok(())
    }
}

/// Indices of each class's images, in original order; `out[label]`.
fn indices_by_class(set: &ImageSet) -> Vec<Vec<usize>> {
    let mut by_class = vec![Vec::new(); set.num_classes()];
    for (i, &l) in set.labels.iter().enumerate() {
        by_class[l as usize].push(i);
    }
    by_class
}

/// Keeps at most `n_per_class` images of each class, chosen uniformly at random.
///
/// For each class in label order, the class's indices (in original order) are shuffled with
/// `rng` (Fisher-Yates) and the first `n_per_class` kept; the kept images stay in their
/// original order. Classes with fewer images keep them all. Labels and class names are
/// unchanged.
pub fn per_class_limit(set: &ImageSet, n_per_class: usize, rng: &mut Rng) -> ImageSet {
    let mut keep = Vec::new();
    for mut idx in indices_by_class(set) {
        rng.shuffle(&mut idx);
        idx.truncate(n_per_class);
        keep.extend(idx);
    }
    keep.sort_unstable();
    set.select(&keep)
}

/// Splits each class in two: `round(fraction * n_c)` of its `n_c` images, chosen uniformly
/// at random, go to the first set and the rest to the second (a stratified split, e.g. the
/// labelled share of the old classes in GCD, or a validation hold-out).
///
/// For each class in label order, the class's indices are shuffled with `rng` and the first
/// `round(fraction * n_c)` (half away from zero) taken. Both sets keep the original order of
/// images, the labels and the class names.
///
/// # Errors
/// [`DataError::Split`] when `fraction` is not in `[0, 1]`.
pub fn fraction_split(
    set: &ImageSet,
    fraction: f64,
    rng: &mut Rng,
) -> Result<(ImageSet, ImageSet)> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::Split(format!(
            "split fraction {fraction} is not in [0, 1]"
        )));
    }
    let (mut first, mut second) = (Vec::new(), Vec::new());
    for mut idx in indices_by_class(set) {
        rng.shuffle(&mut idx);
        let k = ((fraction * idx.len() as f64).round() as usize).min(idx.len());
        first.extend_from_slice(&idx[..k]);
        second.extend_from_slice(&idx[k..]);
    }
    first.sort_unstable();
    second.sort_unstable();
    Ok((set.select(&first), set.select(&second)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<u32> {
        ClassSpec::parse(s).unwrap().into_vec()
    }

    fn parse_err(s: &str) -> String {
        ClassSpec::parse(s).unwrap_err().to_string()
    }

    /// `per` images of each of `k` classes, interleaved (labels 0,1,..,k-1,0,1,..); the single
    /// pixel of image `i` is `i`.
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
    fn parses_ranges_lists_and_mixtures() {
        assert_eq!(parse("0-5"), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(parse("6,7,8,9"), vec![6, 7, 8, 9]);
        assert_eq!(parse("0-4,7"), vec![0, 1, 2, 3, 4, 7]);
        assert_eq!(parse(" 9 , 2-3 "), vec![9, 2, 3]);
        assert_eq!(parse("4-4"), vec![4]);
        assert_eq!("3,1".parse::<ClassSpec>().unwrap().classes(), &[3, 1]);
    }

    #[test]
    fn errors_quote_the_offending_item() {
        assert!(parse_err("").contains("no class"));
        assert!(parse_err("1,,2").contains("item 2 is empty"));
        assert!(parse_err("1,").contains("item 2 is empty"));
        assert!(parse_err("a-3").contains("\"a\" is not a class number"));
        assert!(parse_err("-1").contains("missing a bound"));
        assert!(parse_err("1-").contains("missing a bound"));
        assert!(parse_err("5-0").contains("\"5-0\" is reversed"));
        assert!(parse_err("0-3,2").contains("class 2 is named twice"));
        assert!(parse_err("1.5").contains("\"1.5\" is not a class number"));
        assert!(parse_err("1-2-3").contains("\"2-3\" is not a class number"));
        assert!(parse_err("99999999999").contains("too large"));
        assert!(parse_err("0-4000000000").contains("more than"));
        // Every message quotes the whole specification.
        assert!(parse_err("0-3,x").contains("class list \"0-3,x\""));
    }

    #[test]
    fn display_is_canonical_and_round_trips() {
        for (s, canon) in [
            ("0,1,2,5", "0-2,5"),
            ("6-9", "6-9"),
            ("3,2,1", "3,2,1"),
            // Found by the fuzzer: u32::MAX then 0 once printed as "4294967295-0".
            ("4294967294-4294967295,0", "4294967294-4294967295,0"),
        ] {
            let spec = ClassSpec::parse(s).unwrap();
            assert_eq!(spec.to_string(), canon);
            assert_eq!(ClassSpec::parse(canon).unwrap(), spec);
        }
    }

    #[test]
    fn check_against_the_set_and_from_classes() {
        let spec = ClassSpec::parse("0-4,10").unwrap();
        assert!(spec.check(11).is_ok());
        let e = spec.check(10).unwrap_err().to_string();
        assert!(
            e.contains("class 10 does not exist") && e.contains("0-9"),
            "{e}"
        );
        assert!(ClassSpec::from_classes(vec![1, 1]).is_err());
        assert!(ClassSpec::from_classes(vec![]).is_err());
        assert_eq!(ClassSpec::from_classes(vec![2, 0]).unwrap().len(), 2);
    }

    #[test]
    fn per_class_limit_is_seeded_and_bounded() {
        let set = toy(3, 5); // 5 images per class
        let a = per_class_limit(&set, 2, &mut Rng::new(1));
        let b = per_class_limit(&set, 2, &mut Rng::new(1));
        assert_eq!(a, b);
        assert_eq!(a.class_counts(), vec![2, 2, 2]);
        // Original order kept, each kept image still carries its own label.
        assert!(a.pixels.windows(2).all(|p| p[0] < p[1]));
        for (p, l) in a.pixels.iter().zip(&a.labels) {
            assert_eq!(*p as u32 % 3, *l);
        }
        // Different seeds pick different images (for at least one of a few seeds).
        assert!((2..6).any(|s| per_class_limit(&set, 2, &mut Rng::new(s)) != a));
        // A limit above the class size keeps everything.
        assert_eq!(per_class_limit(&set, 9, &mut Rng::new(1)), set);
    }

    #[test]
    fn per_class_limit_is_uniform() {
        let set = toy(2, 4);
        let mut counts = [0usize; 8];
        let mut rng = Rng::new(7);
        for _ in 0..8000 {
            for &p in &per_class_limit(&set, 1, &mut rng).pixels {
                counts[p as usize] += 1;
            }
        }
        for c in counts {
            assert!((1800..2200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn fraction_split_is_stratified_and_a_partition() {
        let set = toy(4, 10);
        let (a, b) = fraction_split(&set, 0.25, &mut Rng::new(3)).unwrap();
        // round(2.5) = 3 per class in the first part.
        assert_eq!(a.class_counts(), vec![3; 4]);
        assert_eq!(b.class_counts(), vec![7; 4]);
        let mut all: Vec<u8> = a.pixels.iter().chain(&b.pixels).copied().collect();
        all.sort_unstable();
        assert_eq!(all, set.pixels);
        assert!(a.pixels.windows(2).all(|p| p[0] < p[1]));
        assert_eq!(
            (a.clone(), b.clone()),
            fraction_split(&set, 0.25, &mut Rng::new(3)).unwrap()
        );
        let (all_a, none_b) = fraction_split(&set, 1.0, &mut Rng::new(3)).unwrap();
        assert_eq!((all_a, none_b.len()), (set.clone(), 0));
        assert_eq!(fraction_split(&set, 0.0, &mut Rng::new(3)).unwrap().1, set);
    }

    #[test]
    fn fraction_split_rejects_bad_fractions() {
        let set = toy(2, 2);
        for f in [-0.1, 1.5, f64::NAN] {
            let e = fraction_split(&set, f, &mut Rng::new(0)).unwrap_err();
            assert!(e.to_string().contains(&format!("{f}")), "{e}");
        }
    }
}
