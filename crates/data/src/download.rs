//! Fetch the standard dataset archives into a local folder, with checksum verification.
//!
//! Everything in Unseen also works from a local path (tests and the quickstart use the
//! bundled subsets in `datasets/`); this module is for users who want the full sets:
//!
//! ```no_run
//! # fn main() -> unseen_data::error::Result<()> {
//! use std::path::Path;
//! let folder = unseen_data::download::download("mnist", Path::new("data"), |done, total| {
//!     eprint!("\r{done} / {total:?} bytes");
//! })?;
//! let train = unseen_data::formats::load_named("mnist", &folder, true)?;
//! # Ok(()) }
//! ```
//!
//! Files land in `dir/<dataset>/` through a temporary file and a rename, so an interrupted
//! download never leaves a file under its final name. Each file's MD5 is checked; a file
//! already present with the right MD5 is not fetched again. `.tar.gz` archives (CIFAR) are
//! kept and extracted next to themselves, through a temporary folder.
//!
//! # Checksums
//! The table [`DATASETS`] mirrors torchvision's (`torchvision/datasets/mnist.py` for MNIST
//! and Fashion-MNIST, `torchvision/datasets/svhn.py` for SVHN); the CIFAR binary MD5s are
//! the ones published on <https://www.cs.toronto.edu/~kriz/cifar.html> (torchvision itself
//! downloads the Python version). The values were checked against those sources' text, not
//! by downloading the archives (no network was available when this was written).
//!
//! # Mirrors
//! Set the environment variable [`MIRROR_ENV`] (`UNSEEN_DATA_MIRROR`) to a base URL to fetch
//! every file from `<base>/<file name>` instead of its official address (a local cache, an
//! institutional mirror), or call [`download_from`] with the base URL.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::{DataError, Result};
use crate::formats::temp_path;

/// Environment variable that overrides the base URL of every download.
pub const MIRROR_ENV: &str = "UNSEEN_DATA_MIRROR";

/// One downloadable dataset: where its files live and their MD5 checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteDataset {
    /// Canonical name, also the folder created under the download directory.
    pub name: &'static str,
    /// Official base URL; each file is fetched from `base_url` + file name.
    pub base_url: &'static str,
    /// `(file name, MD5 of the file as served)`.
    pub files: &'static [(&'static str, &'static str)],
    /// For `.tar.gz` archives, the folder the archive extracts to; `None` for files that are
    /// used as they are (the IDX `.gz` files are read compressed).
    pub extracts_to: Option<&'static str>,
    /// License and citation line for the README of a run.
    pub license: &'static str,
}

/// The datasets [`download`] knows, with official URLs and MD5 checksums.
pub const DATASETS: [RemoteDataset; 5] = [
    RemoteDataset {
        name: "mnist",
        // torchvision's MNIST.mirrors: the ossci-datasets S3 copy of yann.lecun.com/exdb/mnist.
        base_url: "https://ossci-datasets.s3.amazonaws.com/mnist/",
        files: &[
            (
                "train-images-idx3-ubyte.gz",
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "d53e105ee54ea40749a09fcbcd1e9432",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "9fb629c4189551a2d022fa330f9573f3",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        ],
        extracts_to: None,
        license: "MNIST: Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0",
    },
    RemoteDataset {
        name: "fashion-mnist",
        // torchvision's FashionMNIST.mirrors (Zalando's S3 website bucket; plain HTTP).
        base_url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        files: &[
            (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ],
        extracts_to: None,
        license: "Fashion-MNIST: Zalando Research (Xiao, Rasul, Vollgraf 2017); MIT",
    },
    RemoteDataset {
        name: "cifar10",
        base_url: "https://www.cs.toronto.edu/~kriz/",
        files: &[("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530")],
        extracts_to: Some("cifar-10-batches-bin"),
        license: "CIFAR-10: A. Krizhevsky, 2009 (Learning Multiple Layers of Features from \
                  Tiny Images)",
    },
    RemoteDataset {
        name: "cifar100",
        base_url: "https://www.cs.toronto.edu/~kriz/",
        files: &[(
            "cifar-100-binary.tar.gz",
            "03b5dce01913d631647c71ecec9e9cb8",
        )],
        extracts_to: Some("cifar-100-binary"),
        license: "CIFAR-100: A. Krizhevsky, 2009 (Learning Multiple Layers of Features from \
                  Tiny Images)",
    },
    RemoteDataset {
        name: "svhn",
        // torchvision's SVHN.split_list (cropped digits, format 2; MATLAB files).
        base_url: "http://ufldl.stanford.edu/housenumbers/",
        files: &[
            ("train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
            ("test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3"),
        ],
        extracts_to: None,
        license: "SVHN: Netzer et al. 2011; non-commercial use only",
    },
];

/// The entry of [`DATASETS`] for `name` (case-insensitive; `fashion_mnist`, `cifar-10` and
/// similar spellings are accepted).
pub fn remote_dataset(name: &str) -> Option<&'static RemoteDataset> {
    let key: String = name
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    DATASETS.iter().find(|d| d.name.replace('-', "") == key)
}

/// One file to fetch: address, name on disk, checksum and whether to extract it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Full URL.
    pub url: String,
    /// File name in the destination folder.
    pub file_name: String,
    /// Expected MD5 of the file, lowercase hex.
    pub md5: String,
    /// For a `.tar.gz` archive, the folder it extracts to (extraction is skipped when that
    /// folder exists); `None` to keep the file as it is.
    pub extracts_to: Option<String>,
}

impl RemoteDataset {
    /// The files of this dataset, fetched from `base_url` when given (a mirror holding the
    /// same file names), else from [`RemoteDataset::base_url`].
    pub fn remote_files(&self, base_url: Option<&str>) -> Vec<RemoteFile> {
        let base = base_url.unwrap_or(self.base_url);
        let sep = if base.ends_with('/') { "" } else { "/" };
        self.files
            .iter()
            .map(|(file, md5)| RemoteFile {
                url: format!("{base}{sep}{file}"),
                file_name: file.to_string(),
                md5: md5.to_string(),
                extracts_to: self.extracts_to.map(String::from),
            })
            .collect()
    }
}

/// Downloads `dataset` (`mnist`, `fashion-mnist`, `cifar10`, `cifar100` or `svhn`) into
/// `dir/<dataset>/` and returns that folder, ready for [`crate::formats::load_named`].
///
/// The base URL is the official one unless [`MIRROR_ENV`] is set. `progress(done, total)`
/// is called as each file arrives with the bytes received so far for that file and its
/// size when the server sent one; it starts again from 0 for each file.
///
/// # Errors
/// [`DataError::Download`] for an unknown name, a network or HTTP error, or a checksum
/// mismatch (the downloaded file is removed); [`DataError::Io`] when `dir` cannot be
/// written; [`DataError::Format`] when an archive cannot be extracted.
pub fn download(
    dataset: &str,
    dir: &Path,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    let mirror = std::env::var(MIRROR_ENV).ok().filter(|m| !m.is_empty());
    download_from(dataset, dir, mirror.as_deref(), progress)
}

/// [`download`] with an explicit base URL (`None`: the official one; the environment is
/// not read).
pub fn download_from(
    dataset: &str,
    dir: &Path,
    base_url: Option<&str>,
    progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    let Some(info) = remote_dataset(dataset) else {
        let known: Vec<&str> = DATASETS.iter().map(|d| d.name).collect();
        return Err(DataError::Download {
            url: dataset.to_string(),
            message: format!("unknown dataset (known: {})", known.join(", ")),
        });
    };
    let out = dir.join(info.name);
    download_files(&info.remote_files(base_url), &out, progress)?;
    Ok(out)
}

/// Fetches each file into `dest` (see [`fetch`]) and extracts the archives among them.
pub fn download_files(
    files: &[RemoteFile],
    dest: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<()> {
    for file in files {
        let path = fetch(file, dest, &mut progress)?;
        if let Some(folder) = &file.extracts_to {
            if !dest.join(folder).is_dir() {
                extract_tar_gz(&path, dest)?;
            }
        }
    }
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(120))
        .build()
}

/// Downloads one file to `dest/<file_name>` and checks its MD5; returns the path.
///
/// A file already there with the right MD5 is kept and nothing is fetched (one with a wrong
/// MD5 is replaced). Bytes go to a hidden temporary file that is renamed into place only
/// after the checksum matched, and is removed on any error.
///
/// # Errors
/// [`DataError::Download`] naming the URL for network and HTTP errors, a body shorter than
/// announced, or a checksum mismatch (naming the file, the expected and the found digest);
/// [`DataError::Write`] when `dest` cannot be written.
pub fn fetch(
    file: &RemoteFile,
    dest: &Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<PathBuf> {
    let target = dest.join(&file.file_name);
    if target.is_file() && md5_file(&target)?.eq_ignore_ascii_case(&file.md5) {
        return Ok(target);
    }
    std::fs::create_dir_all(dest).map_err(|e| DataError::write(dest, e))?;
    let tmp = temp_path(&target);
    let result = fetch_to(file, &tmp, &target, &mut progress);
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

fn fetch_to(
    file: &RemoteFile,
    tmp: &Path,
    target: &Path,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<()> {
    let fail = |message: String| DataError::Download {
        url: file.url.clone(),
        message,
    };
    let response = match agent().get(&file.url).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            return Err(fail(format!("HTTP {code} {}", r.status_text())));
        }
        Err(e) => return Err(fail(e.to_string())),
    };
    let total: Option<u64> = response
        .header("Content-Length")
        .and_then(|v| v.trim().parse().ok());
    let mut reader = response.into_reader();
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(tmp).map_err(|e| DataError::write(tmp, e))?);
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = 0u64;
    progress(0, total);
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fail(format!("connection failed after {done} bytes: {e}"))),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| DataError::write(tmp, e))?;
        done += n as u64;
        progress(done, total);
    }
    let f = out
        .into_inner()
        .map_err(|e| DataError::write(tmp, e.into_error()))?;
    f.sync_all().map_err(|e| DataError::write(tmp, e))?;
    drop(f);
    if let Some(total) = total {
        if done != total {
            return Err(fail(format!(
                "expected {total} bytes (Content-Length), received {done}"
            )));
        }
    }
    let found = hex(&hasher.finalize());
    if !found.eq_ignore_ascii_case(&file.md5) {
        return Err(fail(format!(
            "{}: MD5 mismatch: expected {}, found {found}; the downloaded file was removed",
            target.display(),
            file.md5
        )));
    }
    std::fs::rename(tmp, target).map_err(|e| DataError::write(target, e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The MD5 of a file, lowercase hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Checks that the file at `path` has MD5 `md5` (hex, any case).
///
/// # Errors
/// [`DataError::Io`] when the file cannot be read; [`DataError::Format`] naming the file,
/// the expected and the found digest when they differ.
pub fn verify(path: &Path, md5: &str) -> Result<()> {
    let found = md5_file(path)?;
    if found.eq_ignore_ascii_case(md5.trim()) {
        Ok(())
    } else {
        Err(DataError::format(
            path,
            format!("MD5 mismatch: expected {}, found {found}", md5.trim()),
        ))
    }
}

/// Extracts a `.tar.gz` (or plain `.tar`) archive into `dest`.
///
/// Entries are unpacked into a hidden temporary folder inside `dest`, then each top-level
/// entry is moved into `dest` (replacing an existing one of the same name), so `dest` never
/// holds a half-extracted folder under its final name. Entries that would land outside the
/// folder (`..`, absolute paths) are skipped by the `tar` crate.
///
/// # Errors
/// [`DataError::Format`] naming the archive when it is not a valid (gzip-compressed) tar;
/// [`DataError::Write`] when `dest` cannot be written.
pub fn extract_tar_gz(archive: &Path, dest: &Path) -> Result<()> {
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let mut head = [0u8; 2];
    let gz = {
        let mut f = &file;
        f.read_exact(&mut head).is_ok() && head == [0x1f, 0x8b]
    };
    let file = std::fs::File::open(archive).map_err(|e| DataError::io(archive, e))?;
    let reader: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    std::fs::create_dir_all(dest).map_err(|e| DataError::write(dest, e))?;
    let staging = dest.join(format!(".extract-tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    let result = (|| {
        tar::Archive::new(reader)
            .unpack(&staging)
            .map_err(|e| DataError::format(archive, format!("cannot extract tar archive: {e}")))?;
        let entries = std::fs::read_dir(&staging).map_err(|e| DataError::io(&staging, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| DataError::io(&staging, e))?;
            let final_path = dest.join(entry.file_name());
            if final_path.is_dir() {
                std::fs::remove_dir_all(&final_path)
                    .map_err(|e| DataError::write(&final_path, e))?;
            } else if final_path.exists() {
                std::fs::remove_file(&final_path).map_err(|e| DataError::write(&final_path, e))?;
            }
            std::fs::rename(entry.path(), &final_path)
                .map_err(|e| DataError::write(&final_path, e))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&staging);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    /// A tiny HTTP/1.1 server on 127.0.0.1:0 answering `GET /<name>` with the matching body
    /// (404 otherwise). It serves at most `max_requests` connections or stops after 30 s.
    /// Returns the base URL and the count of requests served.
    fn serve(
        routes: Vec<(&'static str, Vec<u8>)>,
        max_requests: usize,
    ) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let served = count.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while served.load(Ordering::SeqCst) < max_requests && Instant::now() < deadline {
                let (stream, _) = match listener.accept() {
                    Ok(s) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                served.fetch_add(1, Ordering::SeqCst);
                stream.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let body = routes
                    .iter()
                    .find(|(name, _)| path.trim_start_matches('/') == *name)
                    .map(|(_, b)| b.as_slice());
                let mut stream = stream;
                let (status, body) = match body {
                    Some(b) => ("200 OK", b),
                    None => ("404 Not Found", &b"not here"[..]),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body);
            }
        });
        (base, count)
    }

    fn md5_hex(bytes: &[u8]) -> String {
        hex(&Md5::digest(bytes))
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn download_verifies_and_is_not_repeated() {
        let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (base, served) = serve(vec![("blob.bin", body.clone())], 3);
        let dest = tempfile::tempdir().unwrap();
        let file = RemoteFile {
            url: format!("{base}blob.bin"),
            file_name: "blob.bin".into(),
            md5: md5_hex(&body).to_uppercase(),
            extracts_to: None,
        };
        let mut last = (0, None);
        let path = fetch(&file, dest.path(), |d, t| last = (d, t)).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), body);
        assert_eq!(last, (body.len() as u64, Some(body.len() as u64)));
        assert_eq!(listing(dest.path()), vec!["blob.bin"]);
        // Present with the right checksum: no second request.
        fetch(&file, dest.path(), |_, _| {}).unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 1);
        verify(&path, &file.md5).unwrap();
    }

    #[test]
    fn wrong_checksum_fails_and_leaves_no_file() {
        let (base, _) = serve(
            vec![("train-images-idx3-ubyte.gz", b"not mnist".to_vec())],
            2,
        );
        let dir = tempfile::tempdir().unwrap();
        let err = download_from("MNIST", dir.path(), Some(&base), |_, _| {}).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
        assert!(
            msg.contains("expected f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("found {}", md5_hex(b"not mnist"))),
            "{msg}"
        );
        assert!(listing(&dir.path().join("mnist")).is_empty());
        // A file the server does not have: the HTTP status is reported.
        let file = RemoteFile {
            url: format!("{base}missing.bin"),
            file_name: "missing.bin".into(),
            md5: md5_hex(b""),
            extracts_to: None,
        };
        let msg = fetch(&file, dir.path(), |_, _| {}).unwrap_err().to_string();
        assert!(msg.contains("missing.bin") && msg.contains("404"), "{msg}");
        assert!(listing(&dir.path().join("mnist")).is_empty());
    }

    fn bundled(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../datasets/mnist-subset")
            .join(name)
    }

    /// A tar.gz holding `cifar-10-batches-bin/test_batch.bin` (two records) and a real IDX
    /// label file (the bundled t10k labels, decompressed then gzipped again).
    fn make_tar_gz() -> Vec<u8> {
        let labels =
            crate::formats::read_maybe_gzip(&bundled("t10k-labels-idx1-ubyte.gz")).unwrap();
        let mut gz_labels = Vec::new();
        let mut enc = flate2::write::GzEncoder::new(&mut gz_labels, flate2::Compression::best());
        enc.write_all(&labels).unwrap();
        enc.finish().unwrap();
        let mut records = vec![7u8];
        records.extend(std::iter::repeat_n(1u8, 3072));
        records.push(2);
        records.extend(std::iter::repeat_n(9u8, 3072));
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut builder = tar::Builder::new(enc);
        for (name, data) in [
            ("cifar-10-batches-bin/test_batch.bin", &records),
            ("mnist/t10k-labels-idx1-ubyte.gz", &gz_labels),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, name, &data[..]).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn archive_is_downloaded_extracted_and_readable() {
        let archive = make_tar_gz();
        let (base, served) = serve(vec![("cifar-10-binary.tar.gz", archive.clone())], 2);
        let dest = tempfile::tempdir().unwrap();
        let file = RemoteFile {
            url: format!("{base}cifar-10-binary.tar.gz"),
            file_name: "cifar-10-binary.tar.gz".into(),
            md5: md5_hex(&archive),
            extracts_to: Some("cifar-10-batches-bin".into()),
        };
        download_files(std::slice::from_ref(&file), dest.path(), |_, _| {}).unwrap();
        assert_eq!(
            listing(dest.path()),
            vec!["cifar-10-batches-bin", "cifar-10-binary.tar.gz", "mnist"]
        );
        let test = crate::formats::load_named("cifar10", dest.path(), false).unwrap();
        assert_eq!(test.labels, vec![7, 2]);
        assert_eq!(test.image(1)[3071], 9);
        let labels =
            crate::formats::read_idx_labels(&dest.path().join("mnist/t10k-labels-idx1-ubyte.gz"))
                .unwrap();
        assert_eq!(labels.len(), 5000);
        // Second call: archive verified locally, already extracted, nothing fetched.
        download_files(&[file], dest.path(), |_, _| {}).unwrap();
        assert_eq!(served.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn verify_and_extract_local_files() {
        let dir = tempfile::tempdir().unwrap();
        // The raw (decompressed) bundled t10k labels; digest from `zcat ... | md5sum`.
        let raw = dir.path().join("t10k-labels-idx1-ubyte");
        std::fs::write(
            &raw,
            crate::formats::read_maybe_gzip(&bundled("t10k-labels-idx1-ubyte.gz")).unwrap(),
        )
        .unwrap();
        verify(&raw, "f072e21570a7ffdcb01ae4ca3d889ed2").unwrap();
        verify(&raw, "F072E21570A7FFDCB01AE4CA3D889ED2").unwrap();
        let msg = verify(&raw, "00000000000000000000000000000000")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("t10k-labels-idx1-ubyte"), "{msg}");
        assert!(
            msg.contains("expected 00000000000000000000000000000000"),
            "{msg}"
        );
        assert!(
            msg.contains("found f072e21570a7ffdcb01ae4ca3d889ed2"),
            "{msg}"
        );
        let msg = verify(&dir.path().join("absent"), "x")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("absent"), "{msg}");

        let archive = dir.path().join("a.tar.gz");
        std::fs::write(&archive, make_tar_gz()).unwrap();
        let out = dir.path().join("out");
        extract_tar_gz(&archive, &out).unwrap();
        extract_tar_gz(&archive, &out).unwrap(); // replaces, does not fail
        assert_eq!(listing(&out), vec!["cifar-10-batches-bin", "mnist"]);
        let labels =
            crate::formats::read_idx_labels(&out.join("mnist/t10k-labels-idx1-ubyte.gz")).unwrap();
        assert_eq!(&labels[..5], &[7, 2, 1, 0, 4]);

        let bad = dir.path().join("bad.tar.gz");
        std::fs::write(&bad, &make_tar_gz()[..100]).unwrap();
        let msg = extract_tar_gz(&bad, &dir.path().join("out2"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("bad.tar.gz"), "{msg}");
        assert!(listing(&dir.path().join("out2")).is_empty());
    }

    #[test]
    fn table_is_well_formed() {
        for d in &DATASETS {
            assert!(d.base_url.ends_with('/'), "{}", d.name);
            for (file, md5) in d.files {
                assert_eq!(md5.len(), 32, "{file}");
                assert!(md5
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            }
            assert_eq!(remote_dataset(d.name), Some(d));
        }
        assert_eq!(
            remote_dataset("Fashion_MNIST").unwrap().name,
            "fashion-mnist"
        );
        assert_eq!(remote_dataset("CIFAR-10").unwrap().name, "cifar10");
        let files = remote_dataset("svhn")
            .unwrap()
            .remote_files(Some("http://mirror.example/data"));
        assert_eq!(files[0].url, "http://mirror.example/data/train_32x32.mat");
        let msg = download_from("imagenet", Path::new("."), None, |_, _| {})
            .unwrap_err()
            .to_string();
        assert!(msg.contains("imagenet") && msg.contains("svhn"), "{msg}");
    }
}
