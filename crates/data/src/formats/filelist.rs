//! File lists: a text file naming one image and its integer label per line, as the
//! official ImageNet-30 splits of IOMatch (`nukezil/IOMatch`, `data/imagenet30/filelist/`,
//! read by `make_dataset_from_list` in `semilearn/datasets/cv_datasets/imagenet30.py`):
//!
//! ```text
//! data/imagenet30/one_class_train/acorn/n12267677_23294.JPEG 0
//! data/imagenet30/one_class_train/acorn/n12267677_8791.JPEG 0
//! ...
//! data/imagenet30/one_class_test/acorn/n12267677/ILSVRC2012_test_00086250.JPEG 0
//! ```
//!
//! - `train_unlabeled_full.txt`: the 39,000 training images of the 30 classes;
//! - `train_labeled_p1.txt` / `train_labeled_p5.txt`: the labelled images of the 20 seen
//!   classes (labels `0..20`), a subset of the full list (match them with
//!   [`find_entries`]; note that both hold some lines twice);
//! - `test.txt`: the 3,000 test images, labels `0..30`.
//!
//! Each line is `<path> <label>` separated by whitespace; blank lines are skipped. Relative
//! paths are resolved against a root folder (for the lists above, the folder that holds
//! `data/`), absolute ones are used as written. Images are decoded with the `image` crate
//! (as the [image-folder reader](super::folder), in parallel with rayon, list order kept)
//! and converted to grey or RGB (IOMatch: `Image.open(f).convert('RGB')`), then
//! [`Preprocess::apply_image`] brings each to a common size: IOMatch resizes training
//! images to `(256, 256)` (`resize_to`) and test images to a shorter side of 256 with a
//! centre crop of 224 (`resize` + `center_crop`). JPEG files are decoded by the `image`
//! crate, whose IDCT and chroma upsampling are not libjpeg's (Pillow's): decoded pixels
//! differ from the reference's by at most 4 grey levels, 0.29 on average, for 4:2:0 JPEGs
//! (ImageNet's usual), and by at most 2 without chroma subsampling
//! (`tests/jpeg_pil.rs`, against Pillow 13).
//!
//! Class names come from the paths ([`list_class_names`]): the component right after the
//! longest directory prefix shared by every entry, so `acorn` for both lists above.
//!
//! A benchmark config names such a dataset with source `"file-list"`
//! ([`DatasetRef`](crate::splits::DatasetRef)):
//!
//! ```toml
//! [data.id]
//! source = "file-list"
//! path = "/data/IOMatch"                                   # the lists' paths start here
//! train_list = "data/imagenet30/filelist/train_unlabeled_full.txt"
//! test_list = "data/imagenet30/filelist/test.txt"
//! ```

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::folder::decode;
use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::transforms::Preprocess;

/// The form every non-blank line of a list must have (quoted in errors).
const LINE_FORM: &str = "`<image path> <integer label>` separated by whitespace";

/// Labels of a file list must be below this (65,536 classes; ImageNet-21k has 21,841): a
/// set has `max label + 1` classes, each with a name, so a single line with label
/// 4294967295 would otherwise ask for four billion class names (found by the fuzzer,
/// `crates/fuzz/tests/data.rs`).
pub const MAX_LIST_LABEL: u32 = 1 << 16;

/// One line of a file list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListEntry {
    /// The image path as written in the list (relative to the loader's root unless
    /// absolute).
    pub path: String,
    /// The integer label.
    pub label: u32,
}

/// How the labels of a file list are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ListLabels {
    /// Labels are class indices: each must be a non-negative integer below
    /// [`MAX_LIST_LABEL`] (the lists of ID and covariate-shifted ID sets).
    #[default]
    Classes,
    /// Labels are not used (the lists of OOD sets): each must still be an integer, of any
    /// sign, and every entry is read with label 0. OpenOOD v1.5's OOD lists label every
    /// image `-1` (`path -1`).
    Ignored,
}

/// The entries of `list` with the 1-based line number of each, labels read as `labels`
/// says.
fn read_numbered(list: &Path, labels: ListLabels) -> Result<Vec<(usize, ListEntry)>> {
    let text = std::fs::read_to_string(list).map_err(|e| DataError::io(list, e))?;
    let mut out = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let n = k + 1;
        let mut fields = line.split_whitespace();
        let (path, label) = match (fields.next(), fields.next(), fields.next()) {
            (None, _, _) => continue,
            (Some(path), Some(label), None) => (path, label),
            _ => {
                return Err(DataError::format(
                    list,
                    format!("line {n}: expected {LINE_FORM}, found {line:?}"),
                ))
            }
        };
        let label = match labels {
            ListLabels::Ignored => {
                label.parse::<i64>().map_err(|_| {
                    DataError::format(
                        list,
                        format!(
                            "line {n}: expected {LINE_FORM}, found the label {label:?}, which is \
                             not an integer"
                        ),
                    )
                })?;
                0
            }
            ListLabels::Classes => {
                let label = label.parse::<u32>().map_err(|_| {
                    DataError::format(
                        list,
                        format!(
                            "line {n}: expected {LINE_FORM}, found the label {label:?}, which is \
                             not a non-negative integer (labels such as -1 are only accepted in \
                             the lists of OOD sets, whose labels are not used)"
                        ),
                    )
                })?;
                if label >= MAX_LIST_LABEL {
                    return Err(DataError::format(
                        list,
                        format!(
                            "line {n}: expected a label below {MAX_LIST_LABEL} (the most classes \
                             a list may have), found {label}"
                        ),
                    ));
                }
                label
            }
        };
        out.push((
            n,
            ListEntry {
                path: path.to_string(),
                label,
            },
        ));
    }
    if out.is_empty() {
        return Err(DataError::format(
            list,
            format!("expected at least one line {LINE_FORM}, found none"),
        ));
    }
    Ok(out)
}

/// Reads a file list: one `<path> <label>` per line, separated by whitespace (spaces or
/// tabs, `\r\n` line ends accepted); blank lines are skipped. Labels are class indices
/// ([`ListLabels::Classes`]); [`read_file_list_as`] reads the lists of OOD sets.
///
/// # Errors
/// [`DataError::Io`] when the list cannot be read; [`DataError::Format`] naming the list
/// and the 1-based line number when a line does not have exactly two fields or its label
/// is not a non-negative integer below [`MAX_LIST_LABEL`], or when the list holds no
/// entry.
pub fn read_file_list(list: &Path) -> Result<Vec<ListEntry>> {
    read_file_list_as(list, ListLabels::Classes)
}

/// [`read_file_list`] with the labels read as `labels` says: with
/// [`ListLabels::Ignored`] any integer label (OpenOOD's `-1`) is accepted and every entry
/// gets label 0.
///
/// # Errors
/// As [`read_file_list`]; with [`ListLabels::Ignored`] a label need only be an integer.
pub fn read_file_list_as(list: &Path, labels: ListLabels) -> Result<Vec<ListEntry>> {
    Ok(read_numbered(list, labels)?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// The class names of the labels of `entries`: `max label + 1` names, where the name of
/// label `k` is the path component right after the longest directory prefix shared by
/// every entry, taken from the first entry with label `k`, and `class{k}` when no entry
/// has label `k`.
///
/// For IOMatch's ImageNet-30 lists the shared prefix is `data/imagenet30/one_class_train/`
/// (or `.../one_class_test/`), so the names are the class folders (`acorn`, `airliner`,
/// ...). A list whose images all sit in one folder has that whole folder as prefix, and the
/// names are then file names.
///
/// The result has `max label + 1` names: keep labels small (lists read by
/// [`read_file_list`] have labels below [`MAX_LIST_LABEL`]).
pub fn list_class_names(entries: &[ListEntry]) -> Vec<String> {
    let parts: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            Path::new(&e.path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    // Longest common prefix of the directory components (all but the file name).
    let mut shared = parts.first().map_or(0, |p| p.len().saturating_sub(1));
    for p in parts.iter().skip(1) {
        let dirs = &p[..p.len().saturating_sub(1)];
        shared = parts[0][..shared]
            .iter()
            .zip(dirs)
            .take_while(|(a, b)| a == b)
            .count();
    }
    let num_classes = entries
        .iter()
        .map(|e| e.label as usize + 1)
        .max()
        .unwrap_or(0);
    let mut names: Vec<Option<String>> = vec![None; num_classes];
    for (e, p) in entries.iter().zip(&parts) {
        let slot = &mut names[e.label as usize];
        if slot.is_none() {
            *slot = p.get(shared).cloned();
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(k, n)| n.unwrap_or_else(|| format!("class{k}")))
        .collect()
}

/// `path` resolved against `root` unless it is absolute.
fn resolve(root: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        root.join(p)
    }
}

/// Loads the images named by `list` into an [`ImageSet`], in list order.
///
/// - `root`: the folder relative paths in the list start from (absolute paths are used as
///   written).
/// - `channels`: 1 converts every image to grey (luma), 3 to RGB.
/// - `preprocess`: applied to each image as decoded ([`Preprocess::apply_image`]); every
///   output must have the same size.
///
/// Labels are the listed ones; the set has `max label + 1` classes named by
/// [`list_class_names`] of the resolved paths. Images are decoded in parallel; the result
/// and the error reported (the first failing line) do not depend on the number of threads.
///
/// # Errors
/// As [`read_file_list`]; [`DataError::Format`] naming the list when `channels` is not 1 or
/// 3, and naming the list, the line and the resolved image path when an image is missing,
/// cannot be decoded, does not fit `preprocess`, or comes out of it at another size than
/// the first image (the message suggests `[data.preprocess]`).
pub fn load_file_list(
    list: &Path,
    root: &Path,
    channels: usize,
    preprocess: &Preprocess,
) -> Result<ImageSet> {
    load_file_list_as(list, root, channels, preprocess, ListLabels::Classes)
}

/// [`load_file_list`] with the labels read as `labels` says: with [`ListLabels::Ignored`]
/// (the lists of OOD sets) any integer label, such as OpenOOD's `-1`, is accepted and every
/// image gets label 0 (one class).
///
/// # Errors
/// As [`load_file_list`]; with [`ListLabels::Ignored`] a label need only be an integer.
pub fn load_file_list_as(
    list: &Path,
    root: &Path,
    channels: usize,
    preprocess: &Preprocess,
    labels: ListLabels,
) -> Result<ImageSet> {
    if channels != 1 && channels != 3 {
        return Err(DataError::format(
            list,
            format!("expected 1 (grey) or 3 (RGB) channels, found {channels}"),
        ));
    }
    let numbered = read_numbered(list, labels)?;
    let resolved: Vec<PathBuf> = numbered
        .iter()
        .map(|(_, e)| resolve(root, &e.path))
        .collect();
    let load = |k: usize| -> Result<(usize, usize, Vec<u8>)> {
        let (line, path) = (numbered[k].0, &resolved[k]);
        // Decoding errors already name the image.
        let (h, w, pixels) = decode(path, channels, None)
            .map_err(|e| DataError::format(list, format!("line {line}: {e}")))?;
        preprocess
            .apply_image(&pixels, channels, h, w)
            .map_err(|e| DataError::format(list, format!("line {line}: {}: {e}", path.display())))
    };
    let (oh, ow, first) = load(0)?;
    let per = first.len();
    if per == 0 {
        return Err(DataError::format(
            list,
            format!(
                "line {}: {} is an empty image",
                numbered[0].0,
                resolved[0].display()
            ),
        ));
    }
    let total = numbered.len().checked_mul(per).ok_or_else(|| {
        DataError::format(
            list,
            format!(
                "{} images of {channels}x{oh}x{ow} do not fit in memory",
                numbered.len()
            ),
        )
    })?;
    let mut pixels = vec![0u8; total];
    pixels[..per].copy_from_slice(&first);
    let results: Vec<Result<()>> = pixels
        .par_chunks_mut(per)
        .enumerate()
        .skip(1)
        .map(|(k, dst)| {
            let (h, w, img) = load(k)?;
            if (h, w) != (oh, ow) {
                return Err(DataError::format(
                    list,
                    format!(
                        "line {}: {} is {h}x{w} (height x width) after preprocessing, expected \
                         {oh}x{ow} like {} (line {}); set [data.preprocess] resize_to (or \
                         resize + center_crop) so that every image gets one size",
                        numbered[k].0,
                        resolved[k].display(),
                        resolved[0].display(),
                        numbered[0].0
                    ),
                ));
            }
            dst.copy_from_slice(&img);
            Ok(())
        })
        .collect();
    results.into_iter().collect::<Result<Vec<()>>>()?;
    // Names from the resolved paths, so that absolute and relative entries agree.
    let located: Vec<ListEntry> = numbered
        .iter()
        .zip(&resolved)
        .map(|((_, e), p)| ListEntry {
            path: p.to_string_lossy().into_owned(),
            label: e.label,
        })
        .collect();
    let class_names = list_class_names(&located);
    let labels = located.iter().map(|e| e.label).collect();
    ImageSet::new(pixels, labels, channels, oh, ow, class_names)
}

/// The position in `list` of each entry of `subset`, in `subset`'s order (duplicates in
/// `subset` give duplicate positions): how IOMatch's labelled lists
/// (`train_labeled_p1.txt`) map onto the training list (`train_unlabeled_full.txt`).
/// Paths are compared as written; when `list` names a path twice, its first line counts.
///
/// # Errors
/// [`DataError::Split`] naming the entry (1-based position in `subset`, path) when its path
/// is not in `list` or its label differs from the one `list` gives.
pub fn find_entries(list: &[ListEntry], subset: &[ListEntry]) -> Result<Vec<usize>> {
    let mut index = std::collections::HashMap::with_capacity(list.len());
    for (i, e) in list.iter().enumerate() {
        index.entry(e.path.as_str()).or_insert(i);
    }
    subset
        .iter()
        .enumerate()
        .map(|(k, e)| match index.get(e.path.as_str()) {
            None => Err(DataError::Split(format!(
                "entry {} ({} {}) is not in the list it should be part of",
                k + 1,
                e.path,
                e.label
            ))),
            Some(&i) if list[i].label != e.label => Err(DataError::Split(format!(
                "entry {} ({}) has label {}, the list gives it label {} (entry {})",
                k + 1,
                e.path,
                e.label,
                list[i].label,
                i + 1
            ))),
            Some(&i) => Ok(i),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::GrayImage;

    fn entry(path: &str, label: u32) -> ListEntry {
        ListEntry {
            path: path.into(),
            label,
        }
    }

    fn mnist() -> ImageSet {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/mnist-subset");
        crate::formats::load_named("mnist", &dir, true).unwrap()
    }

    /// The first `per` images of digits 0, 1 and 2, saved as PNGs under
    /// `root/data/imagenet30/one_class_train/<class>/` (classes named after ImageNet-30's)
    /// and listed in `root/data/imagenet30/filelist/train.txt` in IOMatch's format, classes
    /// interleaved; returns the listed MNIST indices in list order.
    fn write_imagenet30_like(root: &Path, set: &ImageSet, per: usize) -> Vec<usize> {
        let classes = ["acorn", "airliner", "ambulance"];
        let mut picked: Vec<Vec<usize>> = vec![Vec::new(); 3];
        for (i, &l) in set.labels.iter().enumerate() {
            if (l as usize) < 3 && picked[l as usize].len() < per {
                picked[l as usize].push(i);
            }
        }
        let mut order = Vec::new();
        let mut lines = String::new();
        for k in 0..per {
            for c in [2usize, 0, 1] {
                let i = picked[c][k];
                let rel = format!(
                    "data/imagenet30/one_class_train/{}/n{c}_{i}.png",
                    classes[c]
                );
                let path = root.join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                GrayImage::from_raw(28, 28, set.image(i).to_vec())
                    .unwrap()
                    .save(&path)
                    .unwrap();
                lines.push_str(&format!("{rel} {c}\n"));
                order.push(i);
            }
        }
        let list = root.join("data/imagenet30/filelist/train.txt");
        std::fs::create_dir_all(list.parent().unwrap()).unwrap();
        std::fs::write(&list, lines).unwrap();
        order
    }

    #[test]
    fn mnist_digits_round_trip_through_an_imagenet30_layout() {
        let set = mnist();
        let tmp = tempfile::tempdir().unwrap();
        let order = write_imagenet30_like(tmp.path(), &set, 3);
        let list = tmp.path().join("data/imagenet30/filelist/train.txt");
        let entries = read_file_list(&list).unwrap();
        assert_eq!(entries.len(), 9);
        assert_eq!(entries[0].label, 2);
        assert!(entries[0]
            .path
            .starts_with("data/imagenet30/one_class_train/ambulance/n2_"));

        let got = load_file_list(&list, tmp.path(), 1, &Preprocess::default()).unwrap();
        assert_eq!(
            (got.len(), got.channels, got.height, got.width),
            (9, 1, 28, 28)
        );
        assert_eq!(got.labels, [2, 0, 1, 2, 0, 1, 2, 0, 1]);
        assert_eq!(got.class_names, ["acorn", "airliner", "ambulance"]);
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(got.labels[k], set.labels[i]);
            assert_eq!(got.image(k), set.image(i), "image {k}");
        }
        // RGB: the grey value in all three planes.
        let rgb = load_file_list(&list, tmp.path(), 3, &Preprocess::default()).unwrap();
        for ch in 0..3 {
            assert_eq!(&rgb.image(4)[ch * 784..(ch + 1) * 784], set.image(order[4]));
        }
        // Preprocessing is applied per image.
        let pre = Preprocess {
            resize_to: Some([32, 30]),
            center_crop: Some(24),
            ..Preprocess::default()
        };
        let small = load_file_list(&list, tmp.path(), 1, &pre).unwrap();
        assert_eq!((small.height, small.width), (24, 24));
        assert_eq!(
            small.image(7),
            &pre.apply_image(set.image(order[7]), 1, 28, 28).unwrap().2[..]
        );
    }

    #[test]
    fn test_layout_absolute_paths_and_missing_labels() {
        // The test list's extra synset folder, an absolute path, label 3 without label 2.
        let set = mnist();
        let tmp = tempfile::tempdir().unwrap();
        let mut lines = String::from("\n");
        let mut want = Vec::new();
        for (k, (class, label)) in [("acorn", 0), ("airliner", 1), ("airliner", 1), ("barn", 3)]
            .into_iter()
            .enumerate()
        {
            let rel = format!("data/imagenet30/one_class_test/{class}/n0{label}/t{k}.png");
            let path = tmp.path().join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            GrayImage::from_raw(28, 28, set.image(k).to_vec())
                .unwrap()
                .save(&path)
                .unwrap();
            let shown = if k == 1 {
                path.display().to_string()
            } else {
                rel
            };
            lines.push_str(&format!("{shown}\t{label}\r\n\n"));
            want.push(label);
        }
        let list = tmp.path().join("test.txt");
        std::fs::write(&list, lines).unwrap();
        let got = load_file_list(&list, tmp.path(), 1, &Preprocess::default()).unwrap();
        assert_eq!(got.labels, want);
        assert_eq!(got.class_names, ["acorn", "airliner", "class2", "barn"]);
        assert_eq!(got.image(1), set.image(1));
    }

    #[test]
    fn class_names_by_hand() {
        let e = [
            entry("d/imagenet30/one_class_test/acorn/n1/a.JPEG", 1),
            entry("d/imagenet30/one_class_test/barn/n2/b.JPEG", 0),
            entry("d/imagenet30/one_class_test/barn/n2/c.JPEG", 3),
        ];
        assert_eq!(list_class_names(&e), ["barn", "acorn", "class2", "barn"]);
        // Everything in one folder: the names are the file names.
        let one = [entry("x/a.png", 0), entry("x/b.png", 1)];
        assert_eq!(list_class_names(&one), ["a.png", "b.png"]);
        assert!(list_class_names(&[]).is_empty());
    }

    #[test]
    fn bad_lines_name_the_list_and_the_line() {
        let tmp = tempfile::tempdir().unwrap();
        let list = tmp.path().join("train_labeled_p1.txt");
        let err = |text: &str| {
            std::fs::write(&list, text).unwrap();
            read_file_list(&list).unwrap_err().to_string()
        };
        for (text, line, found) in [
            (
                "a.png 0\n\ndata/imagenet30/one_class_train/acorn/x.JPEG\n",
                "line 3",
                "x.JPEG\"",
            ),
            ("a.png 0\nb.png 1\nc.png 1 2\n", "line 3", "c.png 1 2"),
            ("a.png 0\nb.png one\n", "line 2", "\"one\""),
            ("a.png -1\n", "line 1", "\"-1\""),
        ] {
            let m = err(text);
            assert!(
                m.contains("train_labeled_p1.txt")
                    && m.contains(line)
                    && m.contains("<image path> <integer label>")
                    && m.contains(found),
                "{m}"
            );
        }
        // Found by the fuzzer: this line used to ask list_class_names for 2^32 names.
        let m = err("a.png 0\nb.png 4294967295\n");
        assert!(
            m.contains("train_labeled_p1.txt")
                && m.contains("line 2")
                && m.contains("below 65536")
                && m.contains("found 4294967295"),
            "{m}"
        );
        std::fs::write(&list, "a.png 65535\n").unwrap();
        assert_eq!(read_file_list(&list).unwrap()[0].label, 65535);
        let m = err("\n  \n");
        assert!(
            m.contains("train_labeled_p1.txt") && m.contains("found none"),
            "{m}"
        );
        let m = read_file_list(&tmp.path().join("nope.txt"))
            .unwrap_err()
            .to_string();
        assert!(m.contains("nope.txt"), "{m}");
    }

    #[test]
    fn missing_and_mismatched_images_name_the_line_and_path() {
        let set = mnist();
        let tmp = tempfile::tempdir().unwrap();
        write_imagenet30_like(tmp.path(), &set, 1);
        let list = tmp.path().join("data/imagenet30/filelist/train.txt");
        let mut text = std::fs::read_to_string(&list).unwrap();
        text.push_str("data/imagenet30/one_class_train/acorn/gone.png 0\n");
        std::fs::write(&list, &text).unwrap();
        let m = load_file_list(&list, tmp.path(), 3, &Preprocess::default())
            .unwrap_err()
            .to_string();
        let resolved = tmp
            .path()
            .join("data/imagenet30/one_class_train/acorn/gone.png");
        assert!(
            m.contains("train.txt")
                && m.contains("line 4")
                && m.contains(&resolved.display().to_string()),
            "{m}"
        );
        // A 30x28 image among 28x28 ones.
        let odd = tmp
            .path()
            .join("data/imagenet30/one_class_train/acorn/gone.png");
        GrayImage::new(28, 30).save(&odd).unwrap();
        let m = load_file_list(&list, tmp.path(), 1, &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("line 4") && m.contains("30x28") && m.contains("[data.preprocess]"),
            "{m}"
        );
        // resize_to gives every image one size.
        let pre = Preprocess {
            resize_to: Some([28, 28]),
            ..Preprocess::default()
        };
        assert_eq!(load_file_list(&list, tmp.path(), 1, &pre).unwrap().len(), 4);
        // A crop that does not fit names the image.
        let big = Preprocess {
            center_crop: Some(29),
            ..Preprocess::default()
        };
        let m = load_file_list(&list, tmp.path(), 1, &big)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("line 1") && m.contains("center_crop = 29"),
            "{m}"
        );
        let m = load_file_list(&list, tmp.path(), 2, &pre)
            .unwrap_err()
            .to_string();
        assert!(m.contains("found 2"), "{m}");
    }

    /// OpenOOD v1.5's OOD lists label every image `-1`: read as an OOD list (labels
    /// ignored) every image loads with label 0; read as class labels the same list is
    /// refused, naming the list and the line.
    #[test]
    fn openood_minus_one_labels_are_read_only_when_labels_are_ignored() {
        let set = mnist();
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images_classic");
        let mut lines = String::new();
        for k in 0..3 {
            let rel = format!("mnist/test/{k}.png");
            let path = images.join(&rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            GrayImage::from_raw(28, 28, set.image(k).to_vec())
                .unwrap()
                .save(&path)
                .unwrap();
            lines.push_str(&format!("{rel} -1\n"));
        }
        let list = tmp.path().join("benchmark_imglist/cifar10/test_mnist.txt");
        std::fs::create_dir_all(list.parent().unwrap()).unwrap();
        std::fs::write(&list, &lines).unwrap();

        let entries = read_file_list_as(&list, ListLabels::Ignored).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries.iter().all(|e| e.label == 0));
        let got = load_file_list_as(
            &list,
            &images,
            1,
            &Preprocess::default(),
            ListLabels::Ignored,
        )
        .unwrap();
        assert_eq!(got.labels, [0, 0, 0]);
        assert_eq!(got.num_classes(), 1);
        for k in 0..3 {
            assert_eq!(got.image(k), set.image(k));
        }
        // Labels must still be integers.
        let bad = tmp.path().join("bad.txt");
        std::fs::write(&bad, "a.png -1\nb.png x\n").unwrap();
        let m = read_file_list_as(&bad, ListLabels::Ignored)
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("bad.txt") && m.contains("line 2") && m.contains("\"x\""),
            "{m}"
        );

        // As class labels (an ID or csid set), -1 is refused with the file and the line.
        for m in [
            read_file_list(&list).unwrap_err().to_string(),
            load_file_list(&list, &images, 1, &Preprocess::default())
                .unwrap_err()
                .to_string(),
        ] {
            assert!(
                m.contains("test_mnist.txt")
                    && m.contains("line 1")
                    && m.contains("\"-1\"")
                    && m.contains("non-negative"),
                "{m}"
            );
        }
    }

    #[test]
    fn find_entries_maps_a_labelled_list_onto_the_full_one() {
        let full = [entry("a", 0), entry("b", 1), entry("c", 0), entry("d", 2)];
        let lab = [entry("c", 0), entry("b", 1), entry("c", 0)];
        assert_eq!(find_entries(&full, &lab).unwrap(), [2, 1, 2]);
        let m = find_entries(&full, &[entry("a", 0), entry("z", 1)])
            .unwrap_err()
            .to_string();
        assert!(m.contains("entry 2 (z 1)"), "{m}");
        let m = find_entries(&full, &[entry("d", 1)])
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("label 1") && m.contains("label 2 (entry 4)"),
            "{m}"
        );
    }
}
