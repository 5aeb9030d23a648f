//! CIFAR-10 and CIFAR-100, binary version (Krizhevsky 2009,
//! <https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! - CIFAR-10 (`cifar-10-binary.tar.gz` extracts to `cifar-10-batches-bin/`): training
//!   records in `data_batch_1.bin` .. `data_batch_5.bin`, test records in `test_batch.bin`,
//!   class names in `batches.meta.txt`. A record is 1 label byte then 3072 pixel bytes.
//! - CIFAR-100 (`cifar-100-binary.tar.gz` extracts to `cifar-100-binary/`): `train.bin` and
//!   `test.bin`, class names in `fine_label_names.txt` / `coarse_label_names.txt`. A record
//!   is the coarse label byte, the fine label byte, then 3072 pixel bytes.
//!
//! Pixels are 32x32 RGB stored plane by plane (1024 red, 1024 green, 1024 blue, each plane
//! row-major): exactly the CHW layout of [`ImageSet`], so they are copied as they are.
//! The official files hold 10,000 (CIFAR-10 batches and both test files) or 50,000
//! (CIFAR-100 `train.bin`) records; any whole number of records is accepted so that
//! subsets written in the same format also load.

use std::path::{Path, PathBuf};

use super::Split;
use crate::dataset::ImageSet;
use crate::error::{DataError, Result};

/// Bytes of pixels in one CIFAR record (3 x 32 x 32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;

/// CIFAR-10 class names, indexed by label (as in `batches.meta.txt`).
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100 fine class names, indexed by fine label (as in `fine_label_names.txt`).
pub const CIFAR100_FINE_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// CIFAR-100 coarse (superclass) names, indexed by coarse label (as in
/// `coarse_label_names.txt`).
pub const CIFAR100_COARSE_CLASSES: [&str; 20] = [
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
];

/// Which CIFAR-100 labels to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Cifar100Labels {
    /// The 100 fine classes (the usual CIFAR-100 benchmark).
    #[default]
    Fine,
    /// The 20 coarse superclasses.
    Coarse,
}

/// The first of `dir/<sub>`, `dir` and `dir/<alias>/<sub>` that holds the file `marker`;
/// `dir` itself when none does, so that the reader's error names a path in the folder given.
fn resolve(dir: &Path, alias: &str, sub: &str, marker: &str) -> PathBuf {
    [dir.join(sub), dir.to_path_buf(), dir.join(alias).join(sub)]
        .into_iter()
        .find(|d| d.join(marker).is_file())
        .unwrap_or_else(|| dir.to_path_buf())
}

/// Reads `names_file` (one name per line, blank lines ignored) when it exists, else returns
/// `default`. A present file with the wrong number of names is an error.
fn class_names(names_file: &Path, default: &[&str]) -> Result<Vec<String>> {
    if !names_file.is_file() {
        return Ok(default.iter().map(|s| s.to_string()).collect());
    }
    let text = std::fs::read_to_string(names_file).map_err(|e| DataError::io(names_file, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != default.len() {
        return Err(DataError::format(
            names_file,
            format!(
                "expected {} class names (one per line), found {}",
                default.len(),
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// Reads one CIFAR binary file of records `label_bytes` labels + 3072 pixels, keeping label
/// byte `label_index`, appending to `pixels` / `labels`.
fn read_records(
    path: &Path,
    label_bytes: usize,
    label_index: usize,
    num_classes: usize,
    pixels: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let data = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let record = label_bytes + CIFAR_PIXELS;
    if data.is_empty() || !data.len().is_multiple_of(record) {
        return Err(DataError::format(
            path,
            format!(
                "expected a non-zero multiple of the {record}-byte record ({label_bytes} label \
                 byte{} + {CIFAR_PIXELS} pixel bytes), found {} bytes",
                if label_bytes == 1 { "" } else { "s" },
                data.len()
            ),
        ));
    }
    pixels.reserve(data.len() / record * CIFAR_PIXELS);
    for (i, rec) in data.chunks_exact(record).enumerate() {
        let label = rec[label_index] as usize;
        if label >= num_classes {
            return Err(DataError::format(
                path,
                format!(
                    "expected labels below {num_classes}, found {label} in record {i} (byte \
                     offset {})",
                    i * record + label_index
                ),
            ));
        }
        labels.push(label as u32);
        pixels.extend_from_slice(&rec[label_bytes..]);
    }
    Ok(())
}

/// Loads CIFAR-10 (binary version) as a 3x32x32 [`ImageSet`].
///
/// `dir` is the extracted `cifar-10-batches-bin/` folder, or a folder holding it (directly
/// or under `cifar10/`, the layout [`crate::download`] writes). Training data is the five
/// `data_batch_*.bin` files in order; test data is `test_batch.bin`. Class names come from
/// `batches.meta.txt` when present, else [`CIFAR10_CLASSES`].
///
/// # Errors
/// [`DataError::Io`] naming a missing or unreadable batch; [`DataError::Format`] naming the
/// file when its size is not a multiple of 3073 bytes or a label is not below 10.
pub fn load_cifar10(dir: &Path, split: Split) -> Result<ImageSet> {
    let files: Vec<String> = match split {
        Split::Train => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
        Split::Test => vec!["test_batch.bin".to_string()],
    };
    let dir = resolve(dir, "cifar10", "cifar-10-batches-bin", &files[0]);
    let files: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
    let names = class_names(&dir.join("batches.meta.txt"), &CIFAR10_CLASSES)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for f in &files {
        read_records(f, 1, 0, names.len(), &mut pixels, &mut labels)?;
    }
    ImageSet::new(pixels, labels, 3, 32, 32, names)
}

/// Loads CIFAR-100 (binary version) as a 3x32x32 [`ImageSet`] with fine or coarse labels.
///
/// `dir` is the extracted `cifar-100-binary/` folder, or a folder holding it (directly or
/// under `cifar100/`). Reads `train.bin` or `test.bin`. Class names come from
/// `fine_label_names.txt` / `coarse_label_names.txt` when present, else
/// [`CIFAR100_FINE_CLASSES`] / [`CIFAR100_COARSE_CLASSES`].
///
/// # Errors
/// [`DataError::Io`] naming a missing or unreadable file; [`DataError::Format`] naming the
/// file when its size is not a multiple of 3074 bytes or a label is out of range.
pub fn load_cifar100(dir: &Path, split: Split, labels: Cifar100Labels) -> Result<ImageSet> {
    let file = match split {
        Split::Train => "train.bin",
        Split::Test => "test.bin",
    };
    let dir = resolve(dir, "cifar100", "cifar-100-binary", file);
    let (label_index, names_file, default): (usize, &str, &[&str]) = match labels {
        Cifar100Labels::Coarse => (0, "coarse_label_names.txt", &CIFAR100_COARSE_CLASSES),
        Cifar100Labels::Fine => (1, "fine_label_names.txt", &CIFAR100_FINE_CLASSES),
    };
    let names = class_names(&dir.join(names_file), default)?;
    let (mut pixels, mut out_labels) = (Vec::new(), Vec::new());
    read_records(
        &dir.join(file),
        2,
        label_index,
        names.len(),
        &mut pixels,
        &mut out_labels,
    )?;
    ImageSet::new(pixels, out_labels, 3, 32, 32, names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record whose pixels are all `fill`, with the given label bytes.
    fn record(label_bytes: &[u8], fill: u8) -> Vec<u8> {
        let mut r = label_bytes.to_vec();
        r.extend((0..CIFAR_PIXELS).map(|p| fill.wrapping_add((p / 1024) as u8)));
        r
    }

    fn cifar10_dir(root: &Path) -> PathBuf {
        let dir = root.join("cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 1..=5u8 {
            let mut bytes = record(&[i], 10 * i);
            bytes.extend(record(&[9], 10 * i + 1));
            std::fs::write(dir.join(format!("data_batch_{i}.bin")), bytes).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[3], 200)).unwrap();
        dir
    }

    #[test]
    fn cifar10_reads_batches_in_order() {
        let root = tempfile::tempdir().unwrap();
        cifar10_dir(root.path());
        // Works from the parent folder and from the extracted one.
        let train = load_cifar10(root.path(), Split::Train).unwrap();
        assert_eq!(
            (train.len(), train.channels, train.height, train.width),
            (10, 3, 32, 32)
        );
        assert_eq!(train.labels, vec![1, 9, 2, 9, 3, 9, 4, 9, 5, 9]);
        // CHW: plane c of image 2 (batch 2, first record) is 20 + c.
        let img = train.image(2);
        assert_eq!((img[0], img[1024], img[2048], img[3071]), (20, 21, 22, 22));
        assert_eq!(train.class_names, CIFAR10_CLASSES.to_vec());
        let test = load_cifar10(&root.path().join("cifar-10-batches-bin"), Split::Test).unwrap();
        assert_eq!(test.labels, vec![3]);
    }

    #[test]
    fn cifar10_reads_class_names_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = cifar10_dir(root.path());
        let names: String = (0..10).map(|i| format!("class{i}\n")).collect();
        std::fs::write(dir.join("batches.meta.txt"), names + "\n\n").unwrap();
        let test = load_cifar10(root.path(), Split::Test).unwrap();
        assert_eq!(test.class_names[3], "class3");
        std::fs::write(dir.join("batches.meta.txt"), "a\nb\n").unwrap();
        let msg = load_cifar10(root.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("batches.meta.txt") && msg.contains("expected 10"),
            "{msg}"
        );
    }

    #[test]
    fn cifar_file_of_wrong_size_is_named() {
        let root = tempfile::tempdir().unwrap();
        let dir = cifar10_dir(root.path());
        let p = dir.join("data_batch_3.bin");
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.truncate(bytes.len() - 100);
        std::fs::write(&p, bytes).unwrap();
        let msg = load_cifar10(root.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("data_batch_3.bin"), "{msg}");
        assert!(
            msg.contains("3073-byte record") && msg.contains("found 6046 bytes"),
            "{msg}"
        );
        // Missing batch.
        std::fs::remove_file(dir.join("data_batch_5.bin")).unwrap();
        std::fs::remove_file(&p).unwrap();
        let msg = load_cifar10(root.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("data_batch_3.bin"), "{msg}");
        // Label out of range.
        std::fs::write(dir.join("test_batch.bin"), record(&[10], 0)).unwrap();
        let msg = load_cifar10(root.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("test_batch.bin") && msg.contains("found 10 in record 0"));
    }

    #[test]
    fn cifar100_fine_and_coarse() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cifar100").join("cifar-100-binary");
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = record(&[4, 30], 1);
        bytes.extend(record(&[19, 99], 2));
        std::fs::write(dir.join("train.bin"), &bytes).unwrap();
        let fine = load_cifar100(root.path(), Split::Train, Cifar100Labels::Fine).unwrap();
        assert_eq!(fine.labels, vec![30, 99]);
        assert_eq!(fine.num_classes(), 100);
        assert_eq!(fine.class_names[30], "dolphin");
        assert_eq!(fine.image(1)[0], 2);
        let coarse = load_cifar100(&dir, Split::Train, Cifar100Labels::Coarse).unwrap();
        assert_eq!(coarse.labels, vec![4, 19]);
        assert_eq!(coarse.class_names[19], "vehicles_2");
        std::fs::write(dir.join("test.bin"), &bytes[..3073]).unwrap();
        let msg = load_cifar100(&dir, Split::Test, Cifar100Labels::Fine)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("test.bin") && msg.contains("3074-byte record"),
            "{msg}"
        );
        let msg = load_cifar100(
            root.path().join("nowhere").as_path(),
            Split::Test,
            Cifar100Labels::Fine,
        )
        .unwrap_err()
        .to_string();
        assert!(msg.contains("nowhere") && msg.contains("test.bin"), "{msg}");
    }

    #[test]
    fn class_lists_have_the_right_lengths_and_no_duplicates() {
        let mut fine = CIFAR100_FINE_CLASSES.to_vec();
        fine.sort_unstable();
        fine.dedup();
        assert_eq!(fine.len(), 100);
        // The fine names are in alphabetical order in the official file.
        assert_eq!(fine, CIFAR100_FINE_CLASSES.to_vec());
        let mut coarse = CIFAR100_COARSE_CLASSES.to_vec();
        coarse.sort_unstable();
        assert_eq!(coarse, CIFAR100_COARSE_CLASSES.to_vec());
    }
}
