//! IDX files: the format of MNIST and Fashion-MNIST.
//!
//! Format (Y. LeCun, <http://yann.lecun.com/exdb/mnist/>): a big-endian header, then the
//! data. The magic number is `0x00 0x00 <type> <ndims>`; images are `0x00000803` (`u8`, 3
//! dimensions: count, rows, columns), labels `0x00000801` (`u8`, 1 dimension: count). Each
//! dimension is a big-endian `u32`. Images are stored row-major, one after the other, with
//! 0 = background. Files may be raw or gzip-compressed; gzip is recognised by its magic
//! bytes (`1f 8b`), not by the file name.
//!
//! The readers check the magic number, the dimensions and the exact byte length, so a
//! truncated download is reported as e.g. `train-images-idx3-ubyte.gz: expected 47040016
//! bytes for 60000 images of 28x28, found 1234`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{read_maybe_gzip_lenient, write_atomic, Split};
use crate::dataset::ImageSet;
use crate::error::{DataError, Result};

/// Magic number of an IDX file of `u8` images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// MNIST class names: the digits `"0"` to `"9"`.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Fashion-MNIST class names, indexed by label (Xiao et al. 2017, the dataset's README;
/// identical to torchvision's `FashionMNIST.classes`).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn describe_magic(magic: u32) -> &'static str {
    match magic {
        IDX_IMAGES_MAGIC => " (an IDX image file)",
        IDX_LABELS_MAGIC => " (an IDX label file)",
        0x0000_0000..=0x0000_FFFF => " (IDX, but not of u8 data with the expected dimensions)",
        _ => " (not an IDX file)",
    }
}

/// Appends the gzip error, if any, to a size message.
fn with_gz(msg: String, gz_error: &Option<String>) -> String {
    match gz_error {
        Some(e) => format!("{msg} ({e})"),
        None => msg,
    }
}

/// Checks the magic number (when at least 4 bytes are there) and that the whole
/// `header_len`-byte header is present.
fn check_header(
    path: &Path,
    data: &[u8],
    gz_error: &Option<String>,
    expected_magic: u32,
    header_len: usize,
    what: &str,
) -> Result<()> {
    if data.len() >= 4 {
        let magic = be_u32(data, 0);
        if magic != expected_magic {
            return Err(DataError::format(
                path,
                format!(
                    "expected IDX magic 0x{expected_magic:08x} ({what}), found 0x{magic:08x}{}",
                    describe_magic(magic)
                ),
            ));
        }
    }
    if data.len() < header_len {
        return Err(DataError::format(
            path,
            with_gz(
                format!(
                    "expected an IDX header of {header_len} bytes ({what}), found a file of {} \
                     bytes",
                    data.len()
                ),
                gz_error,
            ),
        ));
    }
    Ok(())
}

/// Reads an IDX image file (raw or gzip).
///
/// Returns `(count, height, width, pixels)` with `pixels.len() == count * height * width`,
/// row-major, one image after the other.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Format`] naming the file for
/// a wrong magic number, a zero height or width, a truncated gzip stream or a byte length
/// other than `16 + count * height * width` (a gzip stream is not decompressed past that
/// length, so a gzip bomb behind a consistent header is refused without inflating it).
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>)> {
    // 16 + n * h * w, in u128: three u32 factors overflow u64. A gzip stream is not
    // decompressed past this size (+1), whatever it holds.
    let expected =
        |d: &[u8]| 16 + be_u32(d, 4) as u128 * be_u32(d, 8) as u128 * be_u32(d, 12) as u128;
    let read = read_maybe_gzip_lenient(path, 16, |d| {
        u64::try_from(expected(d)).unwrap_or(u64::MAX - 1)
    })?;
    let (mut data, gz_error) = (read.data, read.gz_error);
    check_header(
        path,
        &data,
        &gz_error,
        IDX_IMAGES_MAGIC,
        16,
        "u8 images, 3 dimensions",
    )?;
    let (n, h, w) = (be_u32(&data, 4), be_u32(&data, 8), be_u32(&data, 12));
    if h == 0 || w == 0 {
        return Err(DataError::format(
            path,
            format!("expected non-zero image dimensions, found {n} images of {h}x{w}"),
        ));
    }
    let expected = expected(&data);
    if data.len() as u128 != expected {
        return Err(DataError::format(
            path,
            with_gz(
                format!(
                    "expected {expected} bytes for {n} images of {h}x{w}, found {}",
                    found(data.len(), read.capped)
                ),
                &gz_error,
            ),
        ));
    }
    if let Some(e) = gz_error {
        return Err(DataError::format(path, e));
    }
    data.drain(..16);
    Ok((n as usize, h as usize, w as usize, data))
}

/// "1234", or "more (the gzip stream goes on past ...)" when decompression stopped at the
/// announced size.
fn found(len: usize, capped: bool) -> String {
    if capped {
        format!(
            "more (decompression stopped after {} bytes: the gzip stream goes on past the \
             size the header announces)",
            len
        )
    } else {
        len.to_string()
    }
}

/// Reads an IDX label file (raw or gzip): one `u8` per image.
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Format`] naming the file for
/// a wrong magic number, a truncated gzip stream or a byte length other than `8 + count`
/// (a gzip stream is not decompressed past that length).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let read = read_maybe_gzip_lenient(path, 8, |d| 8 + be_u32(d, 4) as u64)?;
    let (mut data, gz_error) = (read.data, read.gz_error);
    check_header(
        path,
        &data,
        &gz_error,
        IDX_LABELS_MAGIC,
        8,
        "u8 labels, 1 dimension",
    )?;
    let n = be_u32(&data, 4);
    let expected = 8u64 + n as u64;
    if data.len() as u64 != expected {
        return Err(DataError::format(
            path,
            with_gz(
                format!(
                    "expected {expected} bytes for {n} labels, found {}",
                    found(data.len(), read.capped)
                ),
                &gz_error,
            ),
        ));
    }
    if let Some(e) = gz_error {
        return Err(DataError::format(path, e));
    }
    data.drain(..8);
    Ok(data)
}

/// Reads an IDX image file and its label file into a grey (1-channel) [`ImageSet`].
///
/// # Errors
/// Those of [`read_idx_images`] and [`read_idx_labels`]; a [`DataError::Format`] naming the
/// label file when the counts differ or a label is not below `class_names.len()`.
pub fn load_idx_dataset(
    images_path: &Path,
    labels_path: &Path,
    class_names: &[&str],
) -> Result<ImageSet> {
    let (n, h, w, pixels) = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if labels.len() != n {
        return Err(DataError::format(
            labels_path,
            format!(
                "expected {n} labels to match the {n} images of {}, found {}",
                images_path.display(),
                labels.len()
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= class_names.len())
    {
        return Err(DataError::format(
            labels_path,
            format!(
                "expected labels below {} (the number of classes), found {l} at index {i}",
                class_names.len()
            ),
        ));
    }
    ImageSet::new(
        pixels,
        labels.into_iter().map(u32::from).collect(),
        1,
        h,
        w,
        class_names.iter().map(|s| s.to_string()).collect(),
    )
}

/// The file-name prefix of a split: `train` or `t10k`.
pub(crate) fn marker(split: Split) -> &'static str {
    match split {
        Split::Train => "train-images-idx3-ubyte",
        Split::Test => "t10k-images-idx3-ubyte",
    }
}

/// Finds the IDX image and label files of `split` in `dir`.
///
/// Looks for `{train,t10k}-images-idx3-ubyte` and `{train,t10k}-labels-idx1-ubyte`, each
/// raw or with a `.gz` suffix (raw preferred when both exist). Returns `(images, labels)`.
///
/// # Errors
/// [`DataError::Io`] (kind `NotFound`) naming the missing file and the folder searched.
pub fn mnist_dir(dir: &Path, split: Split) -> Result<(PathBuf, PathBuf)> {
    let prefix = match split {
        Split::Train => "train",
        Split::Test => "t10k",
    };
    let find = |stem: String| -> Result<PathBuf> {
        let raw = dir.join(&stem);
        if raw.is_file() {
            return Ok(raw);
        }
        let gz = dir.join(format!("{stem}.gz"));
        if gz.is_file() {
            return Ok(gz);
        }
        Err(DataError::io(
            raw,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "no such file (looked for {stem} and {stem}.gz in {})",
                    dir.display()
                ),
            ),
        ))
    };
    Ok((
        find(format!("{prefix}-images-idx3-ubyte"))?,
        find(format!("{prefix}-labels-idx1-ubyte"))?,
    ))
}

/// Loads MNIST (or any IDX set with digit classes) from a folder holding the standard file
/// names, raw or gzip. Class names are [`MNIST_CLASSES`].
pub fn load_mnist(dir: &Path, split: Split) -> Result<ImageSet> {
    let (images, labels) = mnist_dir(dir, split)?;
    load_idx_dataset(&images, &labels, &MNIST_CLASSES)
}

/// Loads Fashion-MNIST from a folder holding the standard IDX file names, raw or gzip.
/// Class names are [`FASHION_MNIST_CLASSES`].
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<ImageSet> {
    let (images, labels) = mnist_dir(dir, split)?;
    load_idx_dataset(&images, &labels, &FASHION_MNIST_CLASSES)
}

fn write_maybe_gz(path: &Path, header: &[u8], body: &[u8], gzip: bool) -> Result<()> {
    write_atomic(path, |w| {
        if gzip {
            // flate2 writes mtime 0 and no file name by default: reproducible bytes.
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::best());
            enc.write_all(header)?;
            enc.write_all(body)?;
            enc.finish()?;
        } else {
            w.write_all(header)?;
            w.write_all(body)?;
        }
        Ok(())
    })
}

/// Writes `u8` images of `height x width` (row-major, one after the other) as an IDX image
/// file, gzip-compressed when `gzip` (level 9, mtime 0). The write is atomic (temporary
/// file + rename).
///
/// # Errors
/// [`DataError::Format`] naming `path` when `pixels` is not a whole number of images or a
/// dimension does not fit the format's `u32`; [`DataError::Io`] on write failure.
pub fn write_idx_images(
    path: &Path,
    height: usize,
    width: usize,
    pixels: &[u8],
    gzip: bool,
) -> Result<()> {
    let per = height * width;
    if per == 0 || !pixels.len().is_multiple_of(per) {
        return Err(DataError::format(
            path,
            format!(
                "expected a whole number of {height}x{width} images, found {} pixel bytes",
                pixels.len()
            ),
        ));
    }
    let n = pixels.len() / per;
    let dims = [n, height, width].map(u32::try_from);
    let [Ok(n), Ok(h), Ok(w)] = dims else {
        return Err(DataError::format(
            path,
            format!("dimensions {n}x{height}x{width} do not fit IDX's 32-bit header"),
        ));
    };
    let mut header = Vec::with_capacity(16);
    for v in [IDX_IMAGES_MAGIC, n, h, w] {
        header.extend_from_slice(&v.to_be_bytes());
    }
    write_maybe_gz(path, &header, pixels, gzip)
}

/// Writes `u8` labels as an IDX label file, gzip-compressed when `gzip` (level 9, mtime 0).
/// The write is atomic (temporary file + rename).
///
/// # Errors
/// [`DataError::Format`] when there are more than `u32::MAX` labels; [`DataError::Io`] on
/// write failure.
pub fn write_idx_labels(path: &Path, labels: &[u8], gzip: bool) -> Result<()> {
    let n = u32::try_from(labels.len()).map_err(|_| {
        DataError::format(
            path,
            format!("{} labels do not fit IDX's 32-bit header", labels.len()),
        )
    })?;
    let mut header = Vec::with_capacity(8);
    header.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
    header.extend_from_slice(&n.to_be_bytes());
    write_maybe_gz(path, &header, labels, gzip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::read_maybe_gzip;
    use md5::{Digest, Md5};
    use sha2::Sha256;

    fn datasets() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Three 2x3 images whose pixels encode (image, position), labels 2, 0, 1.
    fn toy(dir: &Path, gzip: bool) -> (PathBuf, PathBuf) {
        let pixels: Vec<u8> = (0..3u8)
            .flat_map(|i| (0..6u8).map(move |p| i * 10 + p))
            .collect();
        let ext = if gzip { ".gz" } else { "" };
        let img = dir.join(format!("train-images-idx3-ubyte{ext}"));
        let lbl = dir.join(format!("train-labels-idx1-ubyte{ext}"));
        write_idx_images(&img, 2, 3, &pixels, gzip).unwrap();
        write_idx_labels(&lbl, &[2, 0, 1], gzip).unwrap();
        (img, lbl)
    }

    #[test]
    fn round_trip_raw_and_gzip() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let (img, lbl) = toy(dir.path(), gzip);
            let (n, h, w, px) = read_idx_images(&img).unwrap();
            assert_eq!((n, h, w), (3, 2, 3));
            assert_eq!(&px[6..12], &[10, 11, 12, 13, 14, 15]);
            assert_eq!(read_idx_labels(&lbl).unwrap(), vec![2, 0, 1]);
            let set = load_mnist(dir.path(), Split::Train).unwrap();
            assert_eq!(
                (set.len(), set.channels, set.height, set.width),
                (3, 1, 2, 3)
            );
            assert_eq!(set.labels, vec![2, 0, 1]);
            assert_eq!(set.image(2), &[20, 21, 22, 23, 24, 25]);
            let on_disk = std::fs::read(&img).unwrap();
            assert_eq!(on_disk[..2] == [0x1f, 0x8b], gzip);
        }
    }

    #[test]
    fn gzip_writer_is_reproducible() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        toy(a.path(), true);
        toy(b.path(), true);
        let name = "train-images-idx3-ubyte.gz";
        assert_eq!(
            std::fs::read(a.path().join(name)).unwrap(),
            std::fs::read(b.path().join(name)).unwrap()
        );
    }

    #[test]
    fn truncated_raw_file_reports_expected_and_found_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-images-idx3-ubyte");
        let mut bytes = Vec::new();
        for v in [IDX_IMAGES_MAGIC, 60000, 28, 28] {
            bytes.extend_from_slice(&v.to_be_bytes());
        }
        bytes.resize(1234, 0);
        std::fs::write(&p, &bytes).unwrap();
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(
            msg.contains("expected 47040016 bytes for 60000 images of 28x28, found 1234"),
            "{msg}"
        );
    }

    #[test]
    fn truncated_gzip_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lbl) = toy(dir.path(), true);
        for p in [img, lbl] {
            let bytes = std::fs::read(&p).unwrap();
            std::fs::write(&p, &bytes[..bytes.len() - 12]).unwrap();
        }
        let (img, lbl) = mnist_dir(dir.path(), Split::Train).unwrap();
        let msg = read_idx_images(&img).unwrap_err().to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte.gz") && msg.contains("gzip"),
            "{msg}"
        );
        let msg = read_idx_labels(&lbl).unwrap_err().to_string();
        assert!(
            msg.contains("train-labels-idx1-ubyte.gz") && msg.contains("gzip"),
            "{msg}"
        );
        // A real file cut in half: the size message says what was expected.
        let real = datasets().join("mnist-subset/t10k-labels-idx1-ubyte.gz");
        let bytes = std::fs::read(real).unwrap();
        let cut = dir.path().join("cut-labels.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let msg = read_idx_labels(&cut).unwrap_err().to_string();
        assert!(
            msg.contains("cut-labels.gz") && msg.contains("gzip"),
            "{msg}"
        );
        assert!(
            msg.contains("expected 5008 bytes for 5000 labels, found"),
            "{msg}"
        );
    }

    #[test]
    fn gzip_bomb_and_overflowing_dims_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A consistent label header, then 64 MiB of zeros: refused after 9 bytes.
        let bomb = dir.path().join("bomb-labels.gz");
        let mut body = Vec::new();
        body.extend_from_slice(&IDX_LABELS_MAGIC.to_be_bytes());
        body.extend_from_slice(&1u32.to_be_bytes());
        body.resize(8 + (64 << 20), 0);
        write_atomic(&bomb, |w| {
            let mut enc = flate2::write::GzEncoder::new(w, flate2::Compression::fast());
            enc.write_all(&body)?;
            enc.finish()?;
            Ok(())
        })
        .unwrap();
        let msg = read_idx_labels(&bomb).unwrap_err().to_string();
        assert!(
            msg.contains("bomb-labels.gz")
                && msg.contains("expected 9 bytes for 1 labels, found more")
                && msg.contains("stopped after 10 bytes"),
            "{msg}"
        );
        // Found by the fuzzer: n * h * w overflowed u64 (a panic in debug builds).
        let p = dir.path().join("dims");
        let mut bytes = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
        for v in [0xff, u32::MAX, 0xffff_fffc] {
            bytes.extend_from_slice(&u32::to_be_bytes(v));
        }
        std::fs::write(&p, &bytes).unwrap();
        let msg = read_idx_images(&p).unwrap_err().to_string();
        assert!(
            msg.contains("expected 4703919733319852360716 bytes for 255 images"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_magic_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lbl) = toy(dir.path(), false);
        // Swapped files: each has the other's magic number.
        let msg = read_idx_images(&lbl).unwrap_err().to_string();
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
        assert!(
            msg.contains("0x00000803") && msg.contains("found 0x00000801"),
            "{msg}"
        );
        assert!(msg.contains("label file"), "{msg}");
        let msg = read_idx_labels(&img).unwrap_err().to_string();
        assert!(msg.contains("train-images-idx3-ubyte") && msg.contains("found 0x00000803"));
        let junk = dir.path().join("junk.bin");
        std::fs::write(&junk, b"PNG\r\n this is not idx at all").unwrap();
        let msg = read_idx_images(&junk).unwrap_err().to_string();
        assert!(
            msg.contains("junk.bin") && msg.contains("not an IDX file"),
            "{msg}"
        );
        let tiny = dir.path().join("tiny");
        std::fs::write(&tiny, [0, 0, 8]).unwrap();
        let msg = read_idx_labels(&tiny).unwrap_err().to_string();
        assert!(
            msg.contains("tiny") && msg.contains("found a file of 3 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn count_mismatch_and_bad_label_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (img, lbl) = toy(dir.path(), false);
        write_idx_labels(&lbl, &[0, 1], false).unwrap();
        let msg = load_idx_dataset(&img, &lbl, &MNIST_CLASSES)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
        assert!(
            msg.contains("expected 3 labels") && msg.contains("found 2"),
            "{msg}"
        );
        write_idx_labels(&lbl, &[0, 1, 2], false).unwrap();
        let msg = load_idx_dataset(&img, &lbl, &["a", "b"])
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train-labels-idx1-ubyte") && msg.contains("found 2 at index 2"));
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = mnist_dir(dir.path(), Split::Test).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t10k-images-idx3-ubyte"), "{msg}");
        assert!(matches!(err, DataError::Io { ref source, .. }
            if source.kind() == std::io::ErrorKind::NotFound));
        toy(dir.path(), true);
        std::fs::remove_file(dir.path().join("train-labels-idx1-ubyte.gz")).unwrap();
        let msg = load_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
        let msg = read_idx_images(&dir.path().join("nope.gz"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nope.gz"), "{msg}");
    }

    /// Pixel sums and raw-content digests as printed by `datasets/make_subset.py` into
    /// `datasets/README.md`.
    #[test]
    fn bundled_subsets_match_the_readme() {
        let cases = [
            (
                "mnist-subset",
                Split::Train,
                1000,
                264_042_938u64,
                "96448e792027ae8c3d693bf7f6685beb422442276734ffe24b7860a3581dcb08",
            ),
            (
                "mnist-subset",
                Split::Test,
                500,
                123_752_278,
                "5b96d8d5c9a90e3bfed00f56bc82a37930359afae5eb88e2d8b01946fbf12c5e",
            ),
            (
                "fashion-mnist-subset",
                Split::Train,
                500,
                287_231_516,
                "444ed5f7ce17397f236f5eba17dd507d3f6912f04edd3e4f1701cdf82f2cc0c5",
            ),
            (
                "fashion-mnist-subset",
                Split::Test,
                300,
                171_578_191,
                "39b3bea53d347350c5032c59dd23ab8d166da21f62e1ad81bb0be61bc726d310",
            ),
        ];
        for (folder, split, per_class, pixel_sum, sha) in cases {
            let dir = datasets().join(folder);
            let set = crate::formats::load_named(
                folder.trim_end_matches("-subset"),
                &dir,
                split == Split::Train,
            )
            .unwrap();
            assert_eq!(set.len(), 10 * per_class, "{folder} {split:?}");
            assert_eq!((set.channels, set.height, set.width), (1, 28, 28));
            assert_eq!(
                set.class_counts(),
                vec![per_class; 10],
                "{folder} {split:?}"
            );
            let sum: u64 = set.pixels.iter().map(|&p| p as u64).sum();
            assert_eq!(sum, pixel_sum, "{folder} {split:?}");
            let (images, _) = mnist_dir(&dir, split).unwrap();
            let raw = read_maybe_gzip(&images).unwrap();
            assert_eq!(hex(&Sha256::digest(&raw)), sha, "{}", images.display());
        }
        let fashion =
            load_fashion_mnist(&datasets().join("fashion-mnist-subset"), Split::Test).unwrap();
        assert_eq!(fashion.class_names[9], "Ankle boot");
        let mnist = load_mnist(&datasets().join("mnist-subset"), Split::Test).unwrap();
        assert_eq!(mnist.class_names, MNIST_CLASSES.to_vec());
        // The original t10k file starts 7, 2, 1, 0, 4: the subset keeps file order.
        assert_eq!(&mnist.labels[..5], &[7, 2, 1, 0, 4]);
    }

    /// The full datasets in `../shared/data` (next to the repository); skipped when absent.
    #[test]
    fn full_shared_datasets() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
        if !root.join("mnist").is_dir() {
            eprintln!("skipped: {} not found", root.display());
            return;
        }
        for name in ["mnist", "fashion-mnist"] {
            let train = crate::formats::load_named(name, &root, true).unwrap();
            let test = crate::formats::load_named(name, &root, false).unwrap();
            assert_eq!((train.len(), test.len()), (60_000, 10_000), "{name}");
            assert_eq!(train.class_counts().iter().sum::<usize>(), 60_000);
            assert!(train.class_counts().iter().all(|&c| c >= 5_000), "{name}");
        }
        let (images, _) = mnist_dir(&root.join("mnist"), Split::Train).unwrap();
        let raw = read_maybe_gzip(&images).unwrap();
        assert_eq!(hex(&Md5::digest(&raw)), "6bbc9ace898e44ae57da46a324031adb");
    }
}
