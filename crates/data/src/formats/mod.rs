//! Readers for the on-disk dataset formats Unseen understands.
//!
//! | format | reader | files |
//! |---|---|---|
//! | IDX (MNIST, Fashion-MNIST) | [`idx`] | `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…` |
//! | CIFAR-10 binary | [`cifar::load_cifar10`] | `cifar-10-batches-bin/data_batch_{1..5}.bin`, `test_batch.bin` |
//! | CIFAR-100 binary | [`cifar::load_cifar100`] | `cifar-100-binary/train.bin`, `test.bin` |
//! | image folder | [`folder::load_image_folder`] | `<root>/<class>/<image>.{png,jpg,jpeg,bmp}` |
//! | file list (ImageNet-30 of IOMatch) | [`filelist::load_file_list`] | `<list>.txt` of `<path> <label>` lines, images under a root |
//!
//! Every reader validates headers and sizes and returns a typed [`DataError`] whose message
//! names the file at fault, what was expected and what was found. Nothing here panics on bad
//! input. [`load_named`] picks the right reader from a dataset name, which is what configs
//! and the CLI use.

pub mod cifar;
pub mod filelist;
pub mod folder;
pub mod idx;

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};

pub use cifar::{
    load_cifar10, load_cifar100, Cifar100Labels, CIFAR100_COARSE_CLASSES, CIFAR100_FINE_CLASSES,
    CIFAR10_CLASSES,
};
pub use filelist::{
    find_entries, list_class_names, load_file_list, load_file_list_as, read_file_list,
    read_file_list_as, ListEntry, ListLabels, MAX_LIST_LABEL,
};
pub use folder::{
    load_image_files, load_image_folder, load_image_folder_with, MAX_IMAGE_BYTES, MAX_IMAGE_SIDE,
    RESIZE_FILTER,
};
pub use idx::{
    load_fashion_mnist, load_idx_dataset, load_mnist, mnist_dir, read_idx_images, read_idx_labels,
    write_idx_images, write_idx_labels, FASHION_MNIST_CLASSES, MNIST_CLASSES,
};

/// Which half of a dataset's official train/test partition to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The official training set (`train-*` for IDX, `data_batch_*` / `train.bin` for CIFAR).
    Train,
    /// The official test set (`t10k-*` for IDX, `test_batch.bin` / `test.bin` for CIFAR).
    Test,
}

impl Split {
    /// [`Split::Train`] when `train` is true, else [`Split::Test`].
    pub fn from_train(train: bool) -> Self {
        if train {
            Split::Train
        } else {
            Split::Test
        }
    }
}

/// The dataset names [`load_named`] accepts.
pub const NAMED_DATASETS: [&str; 5] = ["mnist", "fashion-mnist", "cifar10", "cifar100", "folder"];

/// Loads a dataset by name from a local folder.
///
/// - `"mnist"`, `"fashion-mnist"` (also `"fashion_mnist"`, `"fashionmnist"`): IDX files, raw
///   or gzip, directly in `dir` or in `dir/<name>/` (the layout [`crate::download`] writes).
/// - `"cifar10"`: the binary batches in `dir`, `dir/cifar-10-batches-bin/` or
///   `dir/cifar10/cifar-10-batches-bin/`.
/// - `"cifar100"`: `train.bin` / `test.bin` in `dir`, `dir/cifar-100-binary/` or
///   `dir/cifar100/cifar-100-binary/`, with the 100 fine labels (use
///   [`cifar::load_cifar100`] for the 20 coarse ones).
/// - `"folder"`: an image folder with `dir/train/<class>/…` and `dir/test/<class>/…`, read
///   as RGB without resizing (use [`folder::load_image_folder`] for other choices).
///
/// `train` selects the official training set, else the test set. Names are matched
/// case-insensitively.
///
/// `"file-list"` (the [`DatasetRef`](crate::splits::DatasetRef) source of ImageNet-30) is
/// not loaded here: it needs the list files, a channel count and the preprocessing, so
/// this returns an error pointing to [`filelist::load_file_list`].
pub fn load_named(name: &str, dir: &Path, train: bool) -> Result<ImageSet> {
    let split = Split::from_train(train);
    match name.to_ascii_lowercase().as_str() {
        "mnist" => load_mnist(&locate(dir, &["mnist"], idx::marker(split))?, split),
        "fashion-mnist" | "fashion_mnist" | "fashionmnist" => load_fashion_mnist(
            &locate(
                dir,
                &["fashion-mnist", "fashion_mnist", "fashionmnist"],
                idx::marker(split),
            )?,
            split,
        ),
        "cifar10" | "cifar-10" => load_cifar10(dir, split),
        "cifar100" | "cifar-100" => load_cifar100(dir, split, Cifar100Labels::Fine),
        "folder" => load_image_folder(&dir.join(if train { "train" } else { "test" }), 3, None),
        "file-list" | "file_list" | "filelist" => Err(DataError::Split(format!(
            "dataset source \"file-list\" at {} is read from its `train_list` / `test_list` \
             files, not by name: load it with formats::load_file_list(list, root, channels, \
             preprocess)",
            dir.display()
        ))),
        other => Err(DataError::Split(format!(
            "unknown dataset '{other}' (known: {})",
            NAMED_DATASETS.join(", ")
        ))),
    }
}

/// The first of `dir`, `dir/<sub>` for each `sub` that holds a file whose name starts with
/// `marker`; `dir` itself when none does (the reader then names the missing file).
fn locate(dir: &Path, subs: &[&str], marker: &str) -> Result<PathBuf> {
    let holds = |d: &Path| {
        std::fs::read_dir(d)
            .map(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(marker))
            })
            .unwrap_or(false)
    };
    if holds(dir) {
        return Ok(dir.to_path_buf());
    }
    Ok(subs
        .iter()
        .map(|s| dir.join(s))
        .find(|d| holds(d))
        .unwrap_or_else(|| dir.to_path_buf()))
}

/// Reads a whole file, transparently decompressing it when it starts with the gzip magic
/// bytes `1f 8b` (the file name does not matter).
///
/// A truncated or corrupt gzip stream is an error naming the file and how many bytes were
/// decompressed before the stream broke.
///
/// The decompressed size is not capped: it is the file's actual content (deflate expands
/// at most about 1032:1), and this function cannot know what the file should hold. The IDX
/// readers, which can, stop one byte past the size their header announces, so a gzip bomb
/// behind a consistent header costs nothing.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let read = read_maybe_gzip_lenient(path, 0, |_| u64::MAX)?;
    match read.gz_error {
        None => Ok(read.data),
        Some(e) => Err(DataError::format(path, e)),
    }
}

/// What [`read_maybe_gzip_lenient`] read.
pub(crate) struct MaybeGzip {
    /// The file's bytes, decompressed when it is gzip (at most `max_len + 1` of them).
    pub data: Vec<u8>,
    /// The gzip error, when the stream is truncated or corrupt.
    pub gz_error: Option<String>,
    /// Decompression stopped because the stream holds more than `max_len` bytes.
    pub capped: bool,
}

/// Like [`read_maybe_gzip`] but returns what could be decompressed together with the gzip
/// error, so format readers can report the size they expected.
///
/// A gzip stream is decompressed in two steps: the first `head_len` bytes (a header), then,
/// with `max_len` the size `max_len(header)` says the whole content should have, at most
/// `max_len + 1` bytes in all: enough to tell that the stream is longer than announced
/// without decompressing a bomb. A raw file is returned whole (its size is actual).
pub(crate) fn read_maybe_gzip_lenient(
    path: &Path,
    head_len: usize,
    max_len: impl FnOnce(&[u8]) -> u64,
) -> Result<MaybeGzip> {
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    if raw.len() < 2 || raw[..2] != [0x1f, 0x8b] {
        return Ok(MaybeGzip {
            data: raw,
            gz_error: None,
            capped: false,
        });
    }
    let mut out = Vec::with_capacity(raw.len().saturating_mul(4));
    let mut decoder = flate2::read::MultiGzDecoder::new(&raw[..]);
    // On error `read_to_end` keeps what was decoded so far in `out`.
    let mut result = (&mut decoder).take(head_len as u64).read_to_end(&mut out);
    let mut capped = false;
    if result.is_ok() && out.len() == head_len {
        let max = max_len(&out).max(head_len as u64);
        let rest = (max - head_len as u64).saturating_add(1);
        result = (&mut decoder).take(rest).read_to_end(&mut out);
        capped = out.len() as u64 > max;
    }
    let gz_error = result.err().map(|e| {
        format!(
            "gzip stream is truncated or corrupt after {} decompressed bytes ({e})",
            out.len()
        )
    });
    Ok(MaybeGzip {
        data: out,
        gz_error,
        capped,
    })
}

/// Writes a file atomically: the bytes go to a temporary file in the same folder (created
/// if missing), which is flushed, synced and renamed over `path`. A reader never sees a
/// half-written file; on error the temporary file is removed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|source| DataError::Write {
        path: dir.clone(),
        source,
    })?;
    let tmp = temp_path(path);
    let result = (|| {
        let file = File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::Write {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// `dir/.name.tmp-<pid>`: a sibling temporary name for atomic writes.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_detected_by_magic_not_extension() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("plain-name.bin");
        write_atomic(&gz, |w| {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            enc.write_all(b"hello idx")?;
            enc.finish()?;
            Ok(())
        })
        .unwrap();
        assert_eq!(read_maybe_gzip(&gz).unwrap(), b"hello idx");
        let raw = dir.path().join("looks.gz");
        std::fs::write(&raw, b"not compressed").unwrap();
        assert_eq!(read_maybe_gzip(&raw).unwrap(), b"not compressed");
    }

    #[test]
    fn corrupt_gzip_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.gz");
        std::fs::write(&p, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255, 1, 2, 3]).unwrap();
        let msg = read_maybe_gzip(&p).unwrap_err().to_string();
        assert!(msg.contains("bad.gz") && msg.contains("gzip"), "{msg}");
    }

    #[test]
    fn write_atomic_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub").join("out.bin");
        write_atomic(&p, |w| w.write_all(b"abc")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abc");
        let failed = write_atomic(&dir.path().join("x.bin"), |_| {
            Err(std::io::Error::other("boom"))
        });
        assert!(failed.unwrap_err().to_string().contains("x.bin"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("sub")]);
    }

    #[test]
    fn unknown_name_lists_the_known_ones() {
        let msg = load_named("imagenet", Path::new("."), true)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("imagenet") && msg.contains("fashion-mnist"),
            "{msg}"
        );
        let msg = load_named("file-list", Path::new("in30"), true)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train_list") && msg.contains("load_file_list"),
            "{msg}"
        );
    }
}
