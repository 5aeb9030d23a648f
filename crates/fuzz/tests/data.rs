//! Fuzz targets for every parser of `unseen-data`: IDX images and labels (raw and gzip),
//! gzip itself, CIFAR-10 / CIFAR-100 batches and class-name files, PNG / JPEG / BMP images
//! behind image folders and file lists, the file-list text format, SSB split files and
//! class specifications.
//!
//! Seeds are real data: MNIST and Fashion-MNIST digits from the repository's
//! `datasets/*-subset/`, written with the crate's own writers (IDX), packed into CIFAR
//! records, or encoded with the `image` crate; the SSB seeds are the bundled splits.
//! The default number of cases of each target is its CI budget (a few seconds each in the
//! dev test profile); `scripts/fuzz.sh` raises it through `UNSEEN_FUZZ_CASES` /
//! `UNSEEN_FUZZ_SECONDS`.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use image::codecs::bmp::BmpEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use unseen_data::formats::folder::MAX_IMAGE_BYTES;
use unseen_data::formats::{
    self, load_cifar10, load_cifar100, load_file_list, load_image_folder, read_file_list,
    read_file_list_as, read_idx_images, read_idx_labels, Cifar100Labels, ListLabels, Split,
};
use unseen_data::splits::{ClassSpec, SsbSplit};
use unseen_data::transforms::Preprocess;
use unseen_fuzz::{default_alloc_limit, run, Budget, Report, Seed, Target};

/// Every test of this file holds this lock from its first allocation (building seeds
/// decodes MNIST and encodes images) to its last: the harness counts the allocations of
/// the whole process, so a seed built on another test thread would otherwise land in the
/// peak of a running case.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const MIB: usize = 1 << 20;

/// `Ok(())` or the error's text (which is what a user sees, path included).
fn text<T>(r: Result<T, unseen_data::DataError>) -> Result<(), String> {
    r.map(|_| ()).map_err(|e| e.to_string())
}

/// The seeds must be valid (they are replayed first) and the mutations must reach the
/// checks: a target that accepts or refuses everything fuzzes nothing.
fn check_report(r: &Report) {
    assert!(r.accepted > 0, "no case accepted: the seeds are not valid");
    assert!(
        r.refused > 0,
        "no case refused: the mutations do not reach the parser"
    );
}

// ---------------------------------------------------------------------------------------
// Real data
// ---------------------------------------------------------------------------------------

/// A few real 28x28 grey images with their labels.
struct Real {
    /// MNIST `t10k` images 0..4 (digits 7, 2, 1, 0), row-major.
    digits: Vec<Vec<u8>>,
    /// Their labels.
    digit_labels: Vec<u8>,
    /// Fashion-MNIST `t10k` images 0..3.
    fashion: Vec<Vec<u8>>,
    /// Their labels.
    fashion_labels: Vec<u8>,
}

fn datasets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets")
}

fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        let take = |folder: &str, n: usize| {
            let dir = datasets().join(folder);
            let (count, h, w, px) =
                read_idx_images(&dir.join("t10k-images-idx3-ubyte.gz")).expect("bundled images");
            assert!(count >= n && (h, w) == (28, 28));
            let labels =
                read_idx_labels(&dir.join("t10k-labels-idx1-ubyte.gz")).expect("bundled labels");
            let images = px
                .chunks_exact(28 * 28)
                .take(n)
                .map(<[u8]>::to_vec)
                .collect();
            (images, labels[..n].to_vec())
        };
        let (digits, digit_labels) = take("mnist-subset", 4);
        let (fashion, fashion_labels) = take("fashion-mnist-subset", 3);
        Real {
            digits,
            digit_labels,
            fashion,
            fashion_labels,
        }
    })
}

// ---------------------------------------------------------------------------------------
// IDX and gzip
// ---------------------------------------------------------------------------------------

/// Header fields of an IDX image file: magic, count, rows, columns (big-endian `u32`s).
fn idx_image_seed(name: &str, bytes: Vec<u8>) -> Seed {
    Seed::new(name, bytes)
        .field(0, 4, true)
        .field(4, 4, true)
        .field(8, 4, true)
        .field(12, 4, true)
}

/// Header fields of an IDX label file: magic, count.
fn idx_label_seed(name: &str, bytes: Vec<u8>) -> Seed {
    Seed::new(name, bytes).field(0, 4, true).field(4, 4, true)
}

/// Bytes of an IDX image file written by the crate's writer.
fn idx_images_bytes(h: usize, w: usize, pixels: &[u8], gzip: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("images");
    formats::write_idx_images(&p, h, w, pixels, gzip).unwrap();
    std::fs::read(p).unwrap()
}

/// Bytes of an IDX label file written by the crate's writer.
fn idx_labels_bytes(labels: &[u8], gzip: bool) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("labels");
    formats::write_idx_labels(&p, labels, gzip).unwrap();
    std::fs::read(p).unwrap()
}

fn idx_images_seeds(gzip: bool) -> Vec<Seed> {
    let r = real();
    let three: Vec<u8> = r.digits[..3].concat();
    let fashion: Vec<u8> = r.fashion[..2].concat();
    // One 2x3 crop of a digit: a short file, so more mutations land in the header.
    let crop: Vec<u8> = r.digits[0][14 * 28 + 10..14 * 28 + 13]
        .iter()
        .chain(&r.digits[0][15 * 28 + 10..15 * 28 + 13])
        .copied()
        .collect();
    let seed = |name: &str, b| {
        if gzip {
            // The header sits inside the deflate stream: no field to aim at.
            Seed::new(name, b)
        } else {
            idx_image_seed(name, b)
        }
    };
    vec![
        seed("3 MNIST digits", idx_images_bytes(28, 28, &three, gzip)),
        seed(
            "2 Fashion-MNIST images",
            idx_images_bytes(28, 28, &fashion, gzip),
        ),
        seed("one 2x3 crop", idx_images_bytes(2, 3, &crop, gzip)),
    ]
}

fn idx_labels_seeds(gzip: bool) -> Vec<Seed> {
    let r = real();
    let seed = |name: &str, b| {
        if gzip {
            Seed::new(name, b)
        } else {
            idx_label_seed(name, b)
        }
    };
    vec![
        seed(
            "3 MNIST labels",
            idx_labels_bytes(&r.digit_labels[..3], gzip),
        ),
        seed(
            "3 Fashion-MNIST labels",
            idx_labels_bytes(&r.fashion_labels, gzip),
        ),
        seed("no label", idx_labels_bytes(&[], gzip)),
    ]
}

/// Deflate expands at most 1032:1 (a 258-byte match costs at least 2 bits), and a `Vec`
/// growing by doubling holds up to twice its content, three times while `realloc` copies
/// (the counting allocator sees the old and the new block at once). So a gzip file of
/// `len` bytes may legitimately take about `3 * 1032 * len` bytes: that is its actual
/// content, not a size it claims. The default limit (64 bytes per input byte) would call a
/// well-compressed file a violation.
fn gzip_alloc_limit(len: usize) -> usize {
    default_alloc_limit(len) + 3 * 1032 * len
}

#[test]
fn idx_images_raw() {
    let _serial = serial();
    let seeds = idx_images_seeds(false);
    let target = Target::new("idx_images", "train-images-idx3-ubyte");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_idx_images(p))
    });
    check_report(&r);
}

#[test]
fn idx_labels_raw() {
    let _serial = serial();
    let seeds = idx_labels_seeds(false);
    let target = Target::new("idx_labels", "train-labels-idx1-ubyte");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_idx_labels(p))
    });
    check_report(&r);
}

#[test]
fn idx_images_gzip() {
    let _serial = serial();
    let seeds = idx_images_seeds(true);
    let target = Target {
        alloc_limit: gzip_alloc_limit,
        ..Target::new("idx_images_gz", "t10k-images-idx3-ubyte.gz")
    };
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_idx_images(p))
    });
    check_report(&r);
}

#[test]
fn idx_labels_gzip() {
    let _serial = serial();
    let seeds = idx_labels_seeds(true);
    let target = Target {
        alloc_limit: gzip_alloc_limit,
        ..Target::new("idx_labels_gz", "t10k-labels-idx1-ubyte.gz")
    };
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_idx_labels(p))
    });
    check_report(&r);
}

/// Gzip-compresses `parts` as consecutive gzip members (one member per part).
fn gzip_members(parts: &[&[u8]]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for part in parts {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(part).unwrap();
        out.extend(enc.finish().unwrap());
    }
    out
}

/// `read_maybe_gzip` on gzip bombs and multi-member streams. Decompressed bytes are actual
/// content, so the limit is deflate's (see [`gzip_alloc_limit`]); what is checked is that
/// nothing panics and every error names the file. No cap in `read_maybe_gzip` itself: it
/// does not know what the file should hold. The IDX readers, which do, stop decompressing
/// one byte past the size their header announces (next test).
#[test]
fn gzip_bombs() {
    let _serial = serial();
    let zeros = vec![0u8; 4 * MIB];
    let r = real();
    let seeds = vec![
        Seed::new("4 MiB of zeros", gzip_members(&[&zeros])),
        Seed::new(
            "two members: a digit, then 1 MiB of zeros",
            gzip_members(&[&r.digits[0], &zeros[..MIB]]),
        ),
        Seed::new("an empty member", gzip_members(&[b""])),
        Seed::new("not compressed", r.digits[1].clone()),
    ];
    let target = Target {
        alloc_limit: gzip_alloc_limit,
        ..Target::new("gzip", "bomb.gz")
    };
    let rep = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(formats::read_maybe_gzip(p))
    });
    check_report(&rep);
}

/// An IDX gzip bomb whose header is consistent (3 images of 28x28) but whose stream goes
/// on with 64 MiB of zeros: the reader stops one byte past the announced size, so it must
/// stay within the default limit (64 MiB + 64 bytes per input byte, about 68 MiB here),
/// which it would exceed by far if it decompressed everything first. Mutated headers may
/// then announce more (the limit is deflate's again).
#[test]
fn idx_gzip_bomb_stops_at_the_announced_size() {
    let _serial = serial();
    let r = real();
    let mut body = idx_images_bytes(28, 28, &r.digits[..3].concat(), false);
    body.resize(body.len() + 64 * MIB, 0);
    let bomb = gzip_members(&[&body]);
    drop(body);
    let seeds = [Seed::new("3 images, then 64 MiB of zeros", bomb)];
    let strict = Target::new("idx_images_gz_bomb", "train-images-idx3-ubyte.gz");
    // The seed alone, unmutated, whatever the environment asks for.
    let none = Budget {
        cases: 0,
        seconds: None,
        ..Budget::from_env(0)
    };
    let rep = run(&strict, &seeds, none, |p| text(read_idx_images(p)));
    assert_eq!(rep.refused, rep.cases, "a bomb must be refused");
    let lenient = Target {
        alloc_limit: gzip_alloc_limit,
        ..strict
    };
    // The seed is a 64 KiB file: 300 cases in CI.
    run(&lenient, &seeds, Budget::from_env(300), |p| {
        text(read_idx_images(p))
    });
}

// ---------------------------------------------------------------------------------------
// CIFAR
// ---------------------------------------------------------------------------------------

/// A 28x28 image centred in a 32x32 plane (2-pixel black border).
fn pad32(img: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32 * 32];
    for y in 0..28 {
        out[(y + 2) * 32 + 2..(y + 2) * 32 + 30].copy_from_slice(&img[y * 28..(y + 1) * 28]);
    }
    out
}

/// One CIFAR record: the label bytes, then the red, green and blue planes.
fn cifar_record(labels: &[u8], r: &[u8], g: &[u8], b: &[u8]) -> Vec<u8> {
    let mut rec = labels.to_vec();
    for plane in [r, g, b] {
        rec.extend(pad32(plane));
    }
    rec
}

fn cifar_seeds(label_bytes: usize) -> Vec<Seed> {
    let r = real();
    let (d, f) = (&r.digits, &r.fashion);
    let labels = |k: usize| -> Vec<u8> {
        if label_bytes == 1 {
            vec![r.digit_labels[k]]
        } else {
            // (coarse, fine): 7 -> (people 14, baby 2) style pairs, all valid.
            vec![r.digit_labels[k] + 10, r.digit_labels[k] * 11]
        }
    };
    let records: Vec<Vec<u8>> = (0..3)
        .map(|k| cifar_record(&labels(k), &d[k], &f[k], &d[(k + 1) % 3]))
        .collect();
    let record = label_bytes + 3072;
    let with_fields = |name: &str, bytes: Vec<u8>| {
        let n = bytes.len() / record;
        (0..n).fold(Seed::new(name, bytes), |s, i| {
            (0..label_bytes).fold(s, |s, j| s.field(i * record + j, 1, false))
        })
    };
    vec![
        with_fields("3 records", records.concat()),
        with_fields("1 record", records[2].clone()),
    ]
}

#[test]
fn cifar10_batches() {
    let _serial = serial();
    let seeds = cifar_seeds(1);
    let target = Target::new("cifar10", "test_batch.bin");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(load_cifar10(p.parent().unwrap(), Split::Test))
    });
    check_report(&r);
}

#[test]
fn cifar100_batches() {
    let _serial = serial();
    let seeds = cifar_seeds(2);
    let target = Target::new("cifar100", "test.bin");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        let dir = p.parent().unwrap();
        text(load_cifar100(dir, Split::Test, Cifar100Labels::Fine))?;
        text(load_cifar100(dir, Split::Test, Cifar100Labels::Coarse))
    });
    check_report(&r);
}

#[test]
fn cifar10_class_names() {
    let _serial = serial();
    let batch = cifar_seeds(1).swap_remove(1).bytes;
    let names: String = formats::CIFAR10_CLASSES.map(|c| format!("{c}\n")).concat();
    let seeds = vec![
        Seed::new("batches.meta.txt", (names.clone() + "\n").into_bytes()),
        Seed::new("CRLF", names.replace('\n', "\r\n").into_bytes()),
    ];
    let target = Target::new("cifar10_names", "batches.meta.txt");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        let dir = p.parent().unwrap();
        let b = dir.join("test_batch.bin");
        if !b.exists() {
            std::fs::write(&b, &batch).unwrap();
        }
        text(load_cifar10(dir, Split::Test))
    });
    check_report(&r);
}

// ---------------------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------------------

fn encode(f: impl FnOnce(&mut Vec<u8>) -> image::ImageResult<()>) -> Vec<u8> {
    let mut out = Vec::new();
    f(&mut out).unwrap();
    out
}

/// Interleaved RGB from three grey 28x28 images.
fn rgb(r: &[u8], g: &[u8], b: &[u8]) -> Vec<u8> {
    (0..28 * 28).flat_map(|i| [r[i], g[i], b[i]]).collect()
}

fn png(px: &[u8], color: ExtendedColorType) -> Vec<u8> {
    encode(|w| PngEncoder::new(w).write_image(px, 28, 28, color))
}

fn jpeg(px: &[u8], color: ExtendedColorType) -> Vec<u8> {
    encode(|w| JpegEncoder::new_with_quality(w, 90).write_image(px, 28, 28, color))
}

fn bmp(px: &[u8], color: ExtendedColorType) -> Vec<u8> {
    encode(|w| BmpEncoder::new(w).write_image(px, 28, 28, color))
}

/// A PNG whose IHDR claims `w x h` (CRC fixed, so the claim gets past the chunk check)
/// over the tiny IDAT of a 28x28 image.
fn png_claiming(png: &[u8], w: u32, h: u32) -> Vec<u8> {
    let mut b = png.to_vec();
    assert_eq!(&b[12..16], b"IHDR");
    b[16..20].copy_from_slice(&w.to_be_bytes());
    b[20..24].copy_from_slice(&h.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&b[12..29]);
    b[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    b
}

fn png_seeds() -> Vec<Seed> {
    let r = real();
    let grey = png(&r.digits[0], ExtendedColorType::L8);
    let colour = png(
        &rgb(&r.digits[1], &r.fashion[0], &r.digits[2]),
        ExtendedColorType::Rgb8,
    );
    // IHDR width, height, bit depth, colour type (the CRC catches most edits there; the
    // claiming seeds below have theirs right).
    let seed = |name: &str, b: Vec<u8>| {
        Seed::new(name, b)
            .field(16, 4, true)
            .field(20, 4, true)
            .field(24, 1, false)
            .field(25, 1, false)
    };
    vec![
        seed("grey digit", grey.clone()),
        seed("RGB digits", colour.clone()),
        seed(
            "grey 16-bit fashion",
            png(
                &r.fashion[1]
                    .iter()
                    .flat_map(|&v| [v, v ^ 0x55])
                    .collect::<Vec<u8>>(),
                ExtendedColorType::L16,
            ),
        ),
        seed("claims 60000x60000", png_claiming(&grey, 60000, 60000)),
        seed("claims 16384x16384 grey", png_claiming(&grey, 16384, 16384)),
        seed(
            "claims 10000x10000 RGB",
            png_claiming(&colour, 10000, 10000),
        ),
        seed("claims 1x4000000", png_claiming(&grey, 1, 4_000_000)),
    ]
}

/// Offsets of the height and width of a JPEG's start-of-frame segment.
fn jpeg_seed(name: &str, b: Vec<u8>) -> Seed {
    let sof = b
        .windows(2)
        .position(|m| m[0] == 0xFF && (0xC0..=0xC2).contains(&m[1]))
        .expect("a start of frame");
    Seed::new(name, b)
        .field(sof + 2, 2, true) // segment length
        .field(sof + 5, 2, true) // height
        .field(sof + 7, 2, true) // width
        .field(sof + 9, 1, false) // components
}

fn jpeg_seeds() -> Vec<Seed> {
    let r = real();
    vec![
        jpeg_seed("grey digit", jpeg(&r.digits[2], ExtendedColorType::L8)),
        jpeg_seed(
            "RGB digits",
            jpeg(
                &rgb(&r.digits[3], &r.fashion[2], &r.digits[0]),
                ExtendedColorType::Rgb8,
            ),
        ),
    ]
}

fn bmp_seeds() -> Vec<Seed> {
    let r = real();
    // File size, pixel offset, width, height, planes, bits per pixel, compression, image
    // size, colours used (little-endian).
    let seed = |name: &str, b: Vec<u8>| {
        Seed::new(name, b)
            .field(2, 4, false)
            .field(10, 4, false)
            .field(18, 4, false)
            .field(22, 4, false)
            .field(26, 2, false)
            .field(28, 2, false)
            .field(30, 4, false)
            .field(34, 4, false)
            .field(46, 4, false)
    };
    vec![
        seed("grey digit", bmp(&r.digits[1], ExtendedColorType::L8)),
        seed(
            "RGB digits",
            bmp(
                &rgb(&r.fashion[0], &r.digits[3], &r.digits[1]),
                ExtendedColorType::Rgb8,
            ),
        ),
    ]
}

/// Decoding may take up to [`MAX_IMAGE_BYTES`] (512 MiB) for an image of a few bytes:
/// the decoders allocate their output before reading the pixels, so a header that claims
/// a size within the documented limits (at most 16384 pixels a side and 512 MiB for one
/// image's decoding, checked on the header) costs up to that much even when the pixels
/// then turn out to be missing. (PNG is tighter: a claim its compressed data cannot back
/// is refused too.) That is the price of reading real datasets (ImageNet images are up to
/// a few thousand pixels a side); an allocation beyond the cap is still caught (a
/// 20000x20000 RGB claim would be 1.1 GiB before conversion).
fn image_alloc_limit(len: usize) -> usize {
    MAX_IMAGE_BYTES as usize + default_alloc_limit(len)
}

/// Loads the case through an image folder: `<dir>/root/digits/<file>` links to the
/// harness's file. The channels and the resize come from the bytes, so a case (and its
/// regression file) always replays the same way.
fn through_folder(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap();
    let root = dir.join("root");
    let class = root.join("digits");
    let link = class.join(path.file_name().unwrap());
    if !link.exists() {
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(path, &link).unwrap();
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let mode = bytes.iter().fold(0usize, |a, &b| a + b as usize) % 3;
    drop(bytes);
    let (channels, resize) = match mode {
        0 => (1, None),
        1 => (3, None),
        _ => (3, Some((16, 20))),
    };
    text(load_image_folder(&root, channels, resize))
}

fn image_target(name: &'static str, file_name: &'static str) -> Target<'static> {
    Target {
        alloc_limit: image_alloc_limit,
        ..Target::new(name, file_name)
    }
}

#[test]
fn png_images() {
    let _serial = serial();
    let seeds = png_seeds();
    let r = run(
        &image_target("image_png", "digit.png"),
        &seeds,
        Budget::from_env(3000),
        through_folder,
    );
    check_report(&r);
}

#[test]
fn jpeg_images() {
    let _serial = serial();
    let seeds = jpeg_seeds();
    let r = run(
        &image_target("image_jpeg", "digit.jpg"),
        &seeds,
        Budget::from_env(3000),
        through_folder,
    );
    check_report(&r);
}

#[test]
fn bmp_images() {
    let _serial = serial();
    let seeds = bmp_seeds();
    let r = run(
        &image_target("image_bmp", "digit.bmp"),
        &seeds,
        Budget::from_env(3000),
        through_folder,
    );
    check_report(&r);
}

/// `b` with its header fields claiming `w x h`: the JPEG start of frame, or the BMP info
/// header (its pixel data then falls short).
fn claiming(seed: &Seed, w: u32, h: u32) -> Seed {
    let mut b = seed.bytes.clone();
    if b.starts_with(b"BM") {
        b[18..22].copy_from_slice(&w.to_le_bytes());
        b[22..26].copy_from_slice(&h.to_le_bytes());
    } else {
        let f = &seed.fields;
        b[f[1].offset..f[1].offset + 2].copy_from_slice(&(h as u16).to_be_bytes());
        b[f[2].offset..f[2].offset + 2].copy_from_slice(&(w as u16).to_be_bytes());
    }
    Seed::new(format!("{} claiming {w}x{h}", seed.name), b)
}

/// Headers claiming sizes at the documented cap (16384 a side, 512 MiB for one image's
/// decoding, conversions included), replayed unmutated as grey and as RGB: whatever the
/// decoder allocates on top of what `decode` budgets must stay within the targets'
/// `image_alloc_limit`, or the long runs of `scripts/fuzz.sh` would report it at random.
#[test]
fn image_claims_at_the_cap() {
    let _serial = serial();
    let (jpeg, bmp) = (jpeg_seeds(), bmp_seeds());
    // The JPEG decoder fills missing pixels in (the `image` crate runs zune-jpeg in its
    // lenient mode), so these tiny files decode "successfully" at the claimed size: the
    // worst case. The largest measured peak is 512 MiB (a grey read of the RGB JPEG
    // claiming 16384x8192, which `decode` budgets at exactly 512 MiB).
    let seeds = [
        claiming(&jpeg[0], 16384, 16384),
        claiming(&jpeg[1], 16384, 8192),
        claiming(&jpeg[1], 7700, 7700),
        claiming(&bmp[0], 16384, 16384),
        claiming(&bmp[1], 7700, 7700),
    ];
    let only_seeds = Budget {
        cases: 0,
        seconds: None,
        ..Budget::from_env(0)
    };
    for (name, channels) in [("image_cap_grey", 1), ("image_cap_rgb", 3)] {
        let target = image_target(name, "big.jpg");
        run(&target, &seeds, only_seeds, |p| {
            let dir = p.parent().unwrap();
            let class = dir.join("root").join("c");
            if !class.exists() {
                std::fs::create_dir_all(&class).unwrap();
                std::os::unix::fs::symlink(p, class.join("big.jpg")).unwrap();
            }
            text(load_image_folder(&dir.join("root"), channels, None))
        });
    }
}

/// Recomputes the CRC of every whole chunk of a PNG, so that mutations get past the chunk
/// check into the decoder (IHDR sizes and bit depths, palettes, IDAT contents).
fn fix_png_crcs(b: &mut [u8]) {
    let mut at = 8;
    while at + 12 <= b.len() {
        let len = u32::from_be_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        let Some(end) = (at + 8).checked_add(len).filter(|&e| e + 4 <= b.len()) else {
            break;
        };
        let mut crc = flate2::Crc::new();
        crc.update(&b[at + 4..end]);
        b[end..end + 4].copy_from_slice(&crc.sum().to_be_bytes());
        at = end + 4;
    }
}

/// PNG again, with the chunk CRCs made right after each mutation: most edits of the
/// plain target stop at a CRC mismatch.
#[test]
fn png_images_with_fixed_crcs() {
    let _serial = serial();
    let seeds = png_seeds();
    let r = run(
        &image_target("image_png_crc", "digit.png"),
        &seeds,
        Budget::from_env(3000),
        |p| {
            let mut b = std::fs::read(p).map_err(|e| e.to_string())?;
            fix_png_crcs(&mut b);
            std::fs::write(p, &b).unwrap();
            drop(b);
            through_folder(p)
        },
    );
    check_report(&r);
}

/// An image named by a file list (IOMatch's ImageNet-30 style: `.JPEG`, resize + centre
/// crop), JPEG and PNG seeds.
#[test]
fn file_list_images() {
    let _serial = serial();
    let mut seeds = jpeg_seeds();
    seeds.extend(png_seeds().into_iter().take(2));
    let preprocess = Preprocess {
        resize: Some(24),
        center_crop: Some(20),
        ..Preprocess::default()
    };
    let r = run(
        &image_target("file_list_image", "photo.JPEG"),
        &seeds,
        Budget::from_env(3000),
        |p| {
            let dir = p.parent().unwrap();
            let list = dir.join("list.txt");
            if !list.exists() {
                std::fs::write(&list, "photo.JPEG 0\n").unwrap();
            }
            let channels = if std::fs::metadata(p).map_or(0, |m| m.len()) % 2 == 0 {
                3
            } else {
                1
            };
            text(load_file_list(&list, dir, channels, &preprocess))
        },
    );
    check_report(&r);
}

// ---------------------------------------------------------------------------------------
// Text formats
// ---------------------------------------------------------------------------------------

const IOMATCH_LIST: &str = "\
data/imagenet30/one_class_train/acorn/n12267677_23294.JPEG 0
data/imagenet30/one_class_train/acorn/n12267677_8791.JPEG 0
data/imagenet30/one_class_train/airliner/n02690373_1034.JPEG 1

data/imagenet30/one_class_test/acorn/n12267677/ILSVRC2012_test_00086250.JPEG 29
";

#[test]
fn file_list_text() {
    let _serial = serial();
    let seeds = vec![
        Seed::new("IOMatch lines", IOMATCH_LIST.as_bytes().to_vec()),
        Seed::new(
            "CRLF and tabs",
            IOMATCH_LIST
                .replace('\n', "\r\n")
                .replace(' ', "\t")
                .into_bytes(),
        ),
        Seed::new("one line", b"a.png 4294967295".to_vec()),
    ];
    let target = Target::new("file_list", "train.txt");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_file_list(p))
    });
    check_report(&r);
}

/// The lists of OOD sets (labels ignored): OpenOOD v1.5's `path -1` lines, any integer label.
#[test]
fn file_list_ood_text() {
    let _serial = serial();
    let seeds = vec![
        Seed::new(
            "OpenOOD OOD lines",
            b"svhn/test/00001.png -1\nsvhn/test/00002.png -1\n\ntin/test/x.JPEG -1\n".to_vec(),
        ),
        Seed::new(
            "huge labels",
            b"a.png -9223372036854775808\nb.png 4294967295\n".to_vec(),
        ),
    ];
    let target = Target::new("file_list_ood", "test_svhn.txt");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(read_file_list_as(p, ListLabels::Ignored))
    });
    check_report(&r);
}

/// A mutated list loaded for real: lines name two PNG digits under the list's folder, so
/// labels reach the class naming and the image set.
#[test]
fn file_list_load() {
    let _serial = serial();
    let r = real();
    let images = [
        (
            "one_class_test/seven/a.png",
            png(&r.digits[0], ExtendedColorType::L8),
        ),
        (
            "one_class_test/two/b.png",
            png(&r.digits[1], ExtendedColorType::L8),
        ),
    ];
    let seeds = vec![
        Seed::new(
            "two classes",
            b"one_class_test/seven/a.png 0\none_class_test/two/b.png 1\n".to_vec(),
        ),
        Seed::new(
            "repeated lines, a gap in the labels",
            b"one_class_test/two/b.png 3\n\none_class_test/seven/a.png 0\none_class_test/seven/a.png 0\n"
                .to_vec(),
        ),
    ];
    let target = Target::new("file_list_load", "test.txt");
    let rep = run(&target, &seeds, Budget::from_env(3000), |p| {
        let dir = p.parent().unwrap();
        for (name, bytes) in &images {
            let f = dir.join(name);
            if !f.exists() {
                std::fs::create_dir_all(f.parent().unwrap()).unwrap();
                std::fs::write(&f, bytes).unwrap();
            }
        }
        text(load_file_list(p, dir, 1, &Preprocess::default()))
    });
    check_report(&rep);
}

#[test]
fn ssb_split_files() {
    let _serial = serial();
    let splits = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/splits/ssb");
    let mut seeds: Vec<Seed> = ["cub", "scars", "aircraft"]
        .iter()
        .map(|n| Seed::new(*n, std::fs::read(splits.join(format!("{n}.txt"))).unwrap()))
        .collect();
    seeds.push(Seed::new(
        "small",
        b"# c\nknown_classes: 3 1 2\nunknown_classes: 7\nunknown_classes_easy: 0\n".to_vec(),
    ));
    let target = Target::new("ssb_split", "split.txt");
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        text(SsbSplit::load(p))
    });
    check_report(&r);
}

/// Class specifications are strings from configs and the command line, not files: the
/// error quotes the specification instead (`names_file = false`). Besides not panicking,
/// an accepted specification must print back to itself.
#[test]
fn class_specs() {
    let _serial = serial();
    let seeds = [
        "0-5",
        "6,7,8,9",
        "0-4,7",
        " 0 - 2 , 7 ",
        "4294967294-4294967295,0",
    ]
    .map(|s| Seed::new(s, s.as_bytes().to_vec()))
    .to_vec();
    let target = Target {
        names_file: false,
        ..Target::new("class_spec", "classes.txt")
    };
    let r = run(&target, &seeds, Budget::from_env(3000), |p| {
        let bytes = std::fs::read(p).map_err(|e| e.to_string())?;
        let spec = ClassSpec::parse(&String::from_utf8_lossy(&bytes)).map_err(|e| e.to_string())?;
        let printed = spec.to_string();
        let again = ClassSpec::parse(&printed)
            .unwrap_or_else(|e| panic!("{spec:?} prints as {printed:?}, which fails: {e}"));
        assert_eq!(again, spec, "{printed:?} does not parse back");
        Ok(())
    });
    check_report(&r);
}
