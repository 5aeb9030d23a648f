//! Image folders: one sub-folder per class, as torchvision's `ImageFolder`.
//!
//! ```text
//! root/
//!   cat/  001.png  002.jpg ...
//!   dog/  a.bmp ...
//! ```
//!
//! Classes are the sub-folders sorted by name (byte order), labelled `0..`; images within a
//! class are sorted by file name. Files ending in `.png`, `.jpg`, `.jpeg` or `.bmp` (any
//! case) are read; other files and names starting with `.` are ignored. Images are decoded
//! with the `image` crate, in parallel with rayon; the result does not depend on the number
//! of threads (the order is the sorted order above, and the first failing file in that order
//! is the one reported). An image may have at most [`MAX_IMAGE_SIDE`] pixels a side and
//! take at most [`MAX_IMAGE_BYTES`] to decode; both are checked on its header, so a small
//! file claiming a huge size is refused without allocating it.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::ImageDecoder;
use rayon::prelude::*;

use crate::dataset::ImageSet;
use crate::error::{DataError, Result};
use crate::transforms::Preprocess;

/// The filter used when [`load_image_folder`] resizes: `Triangle`, i.e. bilinear
/// interpolation (over the source footprint when shrinking), the same family as
/// torchvision's default `Resize` interpolation.
pub const RESIZE_FILTER: FilterType = FilterType::Triangle;

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_string_lossy().starts_with('.')
}

/// Sorted entries of `dir` that are not hidden.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        if !is_hidden(&entry.file_name()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The largest width or height an image may have, in pixels (16,384). ImageNet's images
/// are at most a few thousand pixels a side; a header claiming more is refused before any
/// pixel memory is allocated.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most memory decoding one image may take, in bytes (512 MiB): the decoder's output
/// plus the conversion to grey or RGB and the CHW copy. A 7,000 x 7,000 RGB image, or a
/// 16,384 x 16,384 grey one read as grey, fits. A header claiming more is refused before
/// any pixel memory is allocated (the decoders allocate their output before reading the
/// pixels, so a file of a few bytes can make them allocate up to this much).
pub const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// A PNG's pixels are deflate-compressed (at most 1032:1), and a pixel unpacks to at most
/// 32 times its bits (1-bit palette indices to RGBA): a PNG of `n` bytes cannot decode to
/// more than about `n * 1032 * 32` bytes. A header claiming more cannot be backed by the
/// file and is refused before the output is allocated.
const PNG_MAX_EXPANSION: u64 = 1032 * 32;

/// Decodes one image to CHW `u8` with `channels` channels (1: luma, 3: RGB), resized to
/// `(height, width)` with [`RESIZE_FILTER`] when asked; returns `(height, width, pixels)`.
/// Shared by the folder and file-list readers.
///
/// Images are limited to [`MAX_IMAGE_SIDE`] pixels a side and [`MAX_IMAGE_BYTES`] of
/// memory; a PNG whose header claims more pixels than its compressed data can hold is
/// refused too. All three are checked on the header, before the pixels are allocated.
pub(crate) fn decode(
    path: &Path,
    channels: usize,
    resize_to: Option<(usize, usize)>,
) -> Result<(usize, usize, Vec<u8>)> {
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| DataError::io(path, e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_BYTES);
    reader.limits(limits);
    let format = reader.format();
    let cannot = |e: image::ImageError| {
        let why = match e {
            image::ImageError::Limits(_) => format!(
                " (images may have at most {MAX_IMAGE_SIDE} pixels a side and take at most {} \
                 MiB to decode)",
                MAX_IMAGE_BYTES >> 20
            ),
            _ => String::new(),
        };
        DataError::format(path, format!("cannot decode image: {e}{why}"))
    };
    let decoder = reader.into_decoder().map_err(cannot)?;
    let (w, h) = decoder.dimensions();
    let decoded = decoder.total_bytes();
    // Output bytes; the RGB path holds the converted HWC image and its CHW copy at once.
    let out = w as u64 * h as u64 * channels as u64;
    let needed = decoded.saturating_add(if channels == 1 { out } else { 2 * out });
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || needed > MAX_IMAGE_BYTES {
        return Err(DataError::format(
            path,
            format!(
                "the header claims a {w}x{h} (width x height) image, which would take {} MiB \
                 to decode to {channels} channel(s); images may have at most {MAX_IMAGE_SIDE} \
                 pixels a side and take at most {} MiB",
                needed.div_ceil(1 << 20),
                MAX_IMAGE_BYTES >> 20
            ),
        ));
    }
    if format == Some(image::ImageFormat::Png) {
        let len = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        if decoded > len.saturating_mul(PNG_MAX_EXPANSION) {
            return Err(DataError::format(
                path,
                format!(
                    "the PNG header claims a {w}x{h} (width x height) image of {decoded} \
                     bytes, more than the file's {len} bytes can hold (deflate expands at \
                     most 1032:1)"
                ),
            ));
        }
    }
    if format == Some(image::ImageFormat::Jpeg) {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        if !jpeg_is_complete(&bytes) {
            return Err(DataError::format(
                path,
                "the JPEG is truncated (no end-of-image marker after its last scan); the \
                 decoder would fill the missing pixels with grey, and Pillow refuses such \
                 files too",
            ));
        }
    }
    let img = image::DynamicImage::from_decoder(decoder).map_err(cannot)?;
    let img = match resize_to {
        Some((h, w)) if (img.height() as usize, img.width() as usize) != (h, w) => {
            img.resize_exact(w as u32, h as u32, RESIZE_FILTER)
        }
        _ => img,
    };
    let (h, w) = (img.height() as usize, img.width() as usize);
    let chw = if channels == 1 {
        img.into_luma8().into_raw()
    } else {
        let hwc = img.into_rgb8().into_raw();
        let plane = h * w;
        let mut chw = vec![0u8; 3 * plane];
        for (i, px) in hwc.chunks_exact(3).enumerate() {
            chw[i] = px[0];
            chw[plane + i] = px[1];
            chw[2 * plane + i] = px[2];
        }
        chw
    };
    Ok((h, w, chw))
}

/// Whether a JPEG stream ends: an end-of-image marker (`FF D9`) follows its last
/// start-of-scan (`FF DA`). Inside scan data a `FF` byte is always followed by `00` or a
/// restart marker, so `FF D9` there is the real end; an EXIF thumbnail's own markers come
/// before the main image's scans. The image crate's JPEG decoder is lenient and decodes a
/// cut-off file, filling what is missing.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}

/// Loads an image folder (one sub-folder per class) into an [`ImageSet`].
///
/// - `channels`: 1 converts every image to grey (luma), 3 to RGB.
/// - `resize_to`: `Some((height, width))` resizes every image to exactly that size with
///   [`RESIZE_FILTER`] (aspect ratio not kept); `None` requires all images to share the
///   size of the first one.
///
/// # Errors
/// [`DataError::Io`] naming an unreadable folder or file; [`DataError::Format`] naming the
/// root when `channels` is not 1 or 3, when it has no class sub-folder or no image, naming
/// an image that cannot be decoded or exceeds [`MAX_IMAGE_SIDE`] / [`MAX_IMAGE_BYTES`], or
/// (without `resize_to`) the first image whose size differs from the first image's.
pub fn load_image_folder(
    dir: &Path,
    channels: usize,
    resize_to: Option<(usize, usize)>,
) -> Result<ImageSet> {
    if let Some((h, w)) = resize_to {
        if h == 0 || w == 0 || h > u32::MAX as usize || w > u32::MAX as usize {
            return Err(DataError::format(
                dir,
                format!("expected a positive resize size, found {h}x{w}"),
            ));
        }
    }
    load_folder(dir, channels, |path| decode(path, channels, resize_to))
}

/// Loads an image folder like [`load_image_folder`], passing each image through
/// `preprocess` as it is decoded ([`Preprocess::apply_image`]): torchvision's
/// `Resize` + `CenterCrop` on images of any size, e.g. CUB-200 or ImageNet-100 for the GCD
/// papers (`resize = 224`, `center_crop = 224`). Every image must come out at the same size.
///
/// # Errors
/// As [`load_image_folder`]; an image that does not fit `preprocess` is named.
pub fn load_image_folder_with(
    dir: &Path,
    channels: usize,
    preprocess: &Preprocess,
) -> Result<ImageSet> {
    load_folder(dir, channels, |path| {
        let (h, w, pixels) = decode(path, channels, None)?;
        preprocess
            .apply_image(&pixels, channels, h, w)
            .map_err(|e| DataError::format(path, e.to_string()))
    })
}

/// The folder walk shared by the loaders: `load` decodes one image to `(h, w, CHW)`.
fn load_folder(
    dir: &Path,
    channels: usize,
    load: impl Fn(&Path) -> Result<(usize, usize, Vec<u8>)> + Sync,
) -> Result<ImageSet> {
    if channels != 1 && channels != 3 {
        return Err(DataError::format(
            dir,
            format!("expected 1 (grey) or 3 (RGB) channels, found {channels}"),
        ));
    }
    let class_dirs: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if class_dirs.is_empty() {
        return Err(DataError::format(
            dir,
            "expected one sub-folder per class, found none",
        ));
    }
    let mut class_names = Vec::with_capacity(class_dirs.len());
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for (label, class_dir) in class_dirs.iter().enumerate() {
        class_names.push(
            class_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        for path in sorted_entries(class_dir)? {
            if is_image_file(&path) {
                files.push((path, label as u32));
            }
        }
    }
    if files.is_empty() {
        return Err(DataError::format(
            dir,
            format!(
                "expected images ({}) in the class sub-folders, found none",
                EXTENSIONS.join(", ")
            ),
        ));
    }
    decode_files(dir, &files, channels, class_names, load)
}

/// Whether `path` has one of the image [`EXTENSIONS`] (any case).
fn is_image_file(path: &Path) -> bool {
    path.extension()
        .map(|e| EXTENSIONS.contains(&e.to_string_lossy().to_ascii_lowercase().as_str()))
        .unwrap_or(false)
        && path.is_file()
}

/// Loads every image under `dir` (recursively, in sorted path order, hidden entries
/// skipped), whatever the layout, passing each through `preprocess`: the input of
/// `trainer predict`. Returns the images (all labelled 0, class `"?"`) and their paths.
///
/// # Errors
/// As [`load_image_folder_with`]; a folder with no image is named.
pub fn load_image_files(
    dir: &Path,
    channels: usize,
    preprocess: &Preprocess,
) -> Result<(ImageSet, Vec<PathBuf>)> {
    if channels != 1 && channels != 3 {
        return Err(DataError::format(
            dir,
            format!("expected 1 (grey) or 3 (RGB) channels, found {channels}"),
        ));
    }
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let mut subdirs = Vec::new();
        for path in sorted_entries(&d)? {
            if path.is_dir() {
                subdirs.push(path);
            } else if is_image_file(&path) {
                files.push((path, 0));
            }
        }
        pending.extend(subdirs.into_iter().rev());
    }
    files.sort();
    if files.is_empty() {
        return Err(DataError::format(
            dir,
            format!(
                "expected images ({}) in the folder, found none",
                EXTENSIONS.join(", ")
            ),
        ));
    }
    let set = decode_files(dir, &files, channels, vec!["?".to_string()], |path| {
        let (h, w, pixels) = decode(path, channels, None)?;
        preprocess
            .apply_image(&pixels, channels, h, w)
            .map_err(|e| DataError::format(path, e.to_string()))
    })?;
    Ok((set, files.into_iter().map(|(p, _)| p).collect()))
}

/// Decodes `files` (in parallel) into one [`ImageSet`]; every image must come out at the
/// size of the first.
fn decode_files(
    dir: &Path,
    files: &[(PathBuf, u32)],
    channels: usize,
    class_names: Vec<String>,
    load: impl Fn(&Path) -> Result<(usize, usize, Vec<u8>)> + Sync,
) -> Result<ImageSet> {
    let decoded: Vec<Result<(usize, usize, Vec<u8>)>> =
        files.par_iter().map(|(path, _)| load(path)).collect();
    let mut pixels = Vec::new();
    let mut labels = Vec::with_capacity(files.len());
    let mut size: Option<(usize, usize, &Path)> = None;
    for ((path, label), result) in files.iter().zip(decoded) {
        let (h, w, chw) = result?;
        match size {
            None => {
                size = Some((h, w, path));
                pixels.reserve(files.len() * chw.len());
            }
            Some((h0, w0, first)) if (h, w) != (h0, w0) => {
                return Err(DataError::format(
                    path,
                    format!(
                        "expected {h0}x{w0} (height x width, the size of {}), found {h}x{w}; \
                         pass a resize size (in configs: [data.preprocess] resize + center_crop, or \
                         resize_to) to load images of different sizes",
                        first.display()
                    ),
                ));
            }
            Some(_) => {}
        }
        pixels.extend_from_slice(&chw);
        labels.push(*label);
    }
    let Some((h, w, _)) = size else {
        return Err(DataError::format(dir, "no image could be decoded"));
    };
    ImageSet::new(pixels, labels, channels, h, w, class_names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{GrayImage, Luma, Rgb, RgbImage};

    /// The shipped JPEG fixtures (real Fashion-MNIST content, written by Pillow) decode; cut
    /// anywhere inside their scan data they are refused as truncated, not filled with grey.
    #[test]
    fn truncated_jpegs_are_refused() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg/rgb");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&fixtures)
            .unwrap()
            .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let d = tempfile::tempdir().unwrap();
        for f in files.iter().take(3) {
            let bytes = std::fs::read(f).unwrap();
            assert!(decode(f, 3, None).is_ok(), "{}", f.display());
            for keep in [bytes.len() - 2, bytes.len() * 3 / 4, bytes.len() / 2] {
                let cut = d.path().join("cut.jpg");
                std::fs::write(&cut, &bytes[..keep]).unwrap();
                let e = decode(&cut, 3, None).unwrap_err().to_string();
                assert!(e.contains("cut.jpg") && e.contains("truncated"), "{e}");
            }
        }
    }

    /// root/{a,b}/ with 2x3 images; pixel (x, y) of image k in class c is c*100 + k*10 + x + y.
    fn make(root: &Path, ext: &str) {
        for (c, class) in ["b_second", "a_first"].iter().enumerate() {
            let dir = root.join(class);
            std::fs::create_dir_all(&dir).unwrap();
            for k in 0..2u8 {
                let img = RgbImage::from_fn(3, 2, |x, y| {
                    let v = (c as u8) * 100 + k * 10 + x as u8 + y as u8;
                    Rgb([v, v / 2, 255 - v])
                });
                img.save(dir.join(format!("img{k}.{ext}"))).unwrap();
            }
        }
        std::fs::write(root.join("a_first").join("notes.txt"), "ignored").unwrap();
    }

    #[test]
    fn reads_sorted_classes_as_chw_rgb() {
        let root = tempfile::tempdir().unwrap();
        make(root.path(), "png");
        let set = load_image_folder(root.path(), 3, None).unwrap();
        assert_eq!(set.class_names, vec!["a_first", "b_second"]);
        assert_eq!(set.labels, vec![0, 0, 1, 1]);
        assert_eq!((set.channels, set.height, set.width), (3, 2, 3));
        // Image 1 = a_first/img1 (written with c = 1): pixel (x=2, y=1) = 100 + 10 + 3.
        let img = set.image(1);
        let at = |ch: usize| img[ch * 6 + 3 + 2];
        assert_eq!((at(0), at(1), at(2)), (113, 56, 142));
    }

    #[test]
    fn grey_bmp_and_resize() {
        let root = tempfile::tempdir().unwrap();
        make(root.path(), "bmp");
        let dir = root.path().join("a_first");
        GrayImage::from_pixel(5, 4, Luma([77]))
            .save(dir.join("z_big.png"))
            .unwrap();
        let msg = load_image_folder(root.path(), 1, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("z_big.png") && msg.contains("expected 2x3") && msg.contains("4x5"));
        let set = load_image_folder(root.path(), 1, Some((4, 4))).unwrap();
        assert_eq!(
            (set.len(), set.channels, set.height, set.width),
            (5, 1, 4, 4)
        );
        // A constant image stays constant after resizing.
        assert!(set.image(2).iter().all(|&p| p == 77));
    }

    #[test]
    fn preprocessed_folder_takes_mixed_sizes() {
        let root = tempfile::tempdir().unwrap();
        make(root.path(), "png");
        let big = root.path().join("a_first").join("z_big.png");
        let img = RgbImage::from_fn(7, 5, |x, y| Rgb([(x * 30) as u8, (y * 40) as u8, 9]));
        img.save(&big).unwrap();
        // Resize(2) + CenterCrop(2): the 2x3 images become 2x3 (untouched), then 2x2; the
        // 5x7 one becomes 2x2 (int(2 * 7 / 5) = 2), then 2x2.
        let p = Preprocess {
            resize: Some(2),
            center_crop: Some(2),
            ..Preprocess::default()
        };
        let set = load_image_folder_with(root.path(), 3, &p).unwrap();
        assert_eq!((set.len(), set.height, set.width), (5, 2, 2));
        assert_eq!(set.labels, vec![0, 0, 0, 1, 1]);
        // Each image is exactly `apply_image` of its decoded pixels.
        let (h, w, raw) = decode(&big, 3, None).unwrap();
        let (_, _, want) = p.apply_image(&raw, 3, h, w).unwrap();
        assert_eq!(set.image(2), &want[..]);
        let (h, w, raw) = decode(&root.path().join("a_first/img0.png"), 3, None).unwrap();
        assert_eq!((h, w), (2, 3));
        let (_, _, want) = p.apply_image(&raw, 3, h, w).unwrap();
        assert_eq!(set.image(0), &want[..]);
        // Without a common output size the first differing image is named.
        let msg = load_image_folder_with(root.path(), 3, &Preprocess::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("z_big.png") && msg.contains("[data.preprocess]"),
            "{msg}"
        );
    }

    #[test]
    fn unreadable_image_is_named() {
        let root = tempfile::tempdir().unwrap();
        make(root.path(), "png");
        std::fs::write(
            root.path().join("b_second").join("broken.jpg"),
            b"not a jpeg",
        )
        .unwrap();
        let msg = load_image_folder(root.path(), 3, None)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("broken.jpg") && msg.contains("cannot decode"),
            "{msg}"
        );
    }

    /// A PNG of a 28x28 grey image whose IHDR claims `w x h` (CRC fixed).
    fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut b = Vec::new();
        GrayImage::from_pixel(28, 28, Luma([9]))
            .write_to(&mut std::io::Cursor::new(&mut b), image::ImageFormat::Png)
            .unwrap();
        b[16..20].copy_from_slice(&w.to_be_bytes());
        b[20..24].copy_from_slice(&h.to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(&b[12..29]);
        b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
        b
    }

    #[test]
    fn claimed_sizes_are_refused_before_allocating() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("huge.png");
        let cases = [
            // Beyond the side limit.
            (60000, 60000, "at most 16384 pixels a side"),
            // Within the side limit, beyond the memory one image may take as RGB.
            (16384, 16384, "at most 512 MiB"),
            // Within both, but 16 MB of pixels cannot come out of ~80 bytes of deflate.
            (4000, 4000, "more than the file's"),
        ];
        for (w, h, why) in cases {
            std::fs::write(&p, png_claiming(w, h)).unwrap();
            let msg = decode(&p, 3, None).unwrap_err().to_string();
            assert!(msg.contains("huge.png") && msg.contains(why), "{msg}");
        }
        std::fs::write(&p, png_claiming(28, 28)).unwrap();
        assert_eq!(decode(&p, 1, None).unwrap().2, vec![9; 28 * 28]);
    }

    #[test]
    fn bad_arguments_and_empty_folders() {
        let root = tempfile::tempdir().unwrap();
        let msg = load_image_folder(root.path(), 3, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("sub-folder per class"), "{msg}");
        std::fs::create_dir(root.path().join("empty")).unwrap();
        let msg = load_image_folder(root.path(), 3, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("found none"), "{msg}");
        let msg = load_image_folder(root.path(), 2, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("found 2"), "{msg}");
        let msg = load_image_folder(&root.path().join("missing"), 3, None)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("missing"), "{msg}");
    }

    #[test]
    fn named_folder_uses_train_and_test() {
        let root = tempfile::tempdir().unwrap();
        make(&root.path().join("train"), "png");
        make(&root.path().join("test"), "jpg");
        let train = crate::formats::load_named("folder", root.path(), true).unwrap();
        let test = crate::formats::load_named("folder", root.path(), false).unwrap();
        assert_eq!((train.len(), test.len()), (4, 4));
        assert_eq!(test.class_names, train.class_names);
    }
}
