//! File helpers. Every file a run writes goes through [`write_atomic`] (temp file in the same
//! folder, then rename, by `unseen_data::formats::write_atomic`), so an interrupted run never
//! leaves a half-written file; a folder written as a whole (a checkpoint) goes through
//! [`replace_dir`]. burn records (weights, optimiser state) are serialised in memory and
//! written the same way ([`write_record`]), and read back from memory ([`read_record`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::record::FullPrecisionSettings;
use burn::tensor::backend::Backend;

use crate::run::faults;

/// Writes `bytes` to `path` atomically, creating the parent folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let point = format!(
        "write:{}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    unseen_data::formats::write_atomic(path, |w| {
        w.write_all(bytes)?;
        faults::write_point(&point)
    })?;
    Ok(())
}

/// `parent/.NAME.old` for the folder `dest = parent/NAME`: where [`replace_dir`] keeps the
/// previous contents while it swaps the new ones in.
pub fn old_dir(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "dir".to_string(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.old"))
}

/// Replaces the folder `dest` as a whole. `fill` writes the new contents into a fresh
/// temporary folder beside it (`.NAME.tmp-<pid>`); then the previous `dest` is moved to
/// [`old_dir`], the new folder renamed to `dest`, and the old one removed. A crash leaves
/// either `dest` complete or, between the two renames, the previous contents complete in
/// `old_dir(dest)`, where readers look next ([`existing_dir`]). Nothing is half-written.
///
/// # Errors
/// `fill`'s error (the temporary folder is then removed), or a folder that cannot be
/// created, moved or renamed.
pub fn replace_dir(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    replace(dest, None, fill)
}

/// As [`replace_dir`], but the previous contents of `dest` become `keep` (replacing what
/// `keep` held) instead of being removed: the last two versions stay on disk. A crash
/// leaves `dest` complete, or the previous contents in [`old_dir`]`(dest)`, and `keep`
/// complete or absent.
///
/// # Errors
/// As [`replace_dir`].
pub fn replace_dir_keeping(
    dest: &Path,
    keep: &Path,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    replace(dest, Some(keep), fill)
}

fn replace(dest: &Path, keep: Option<&Path>, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dest
        .file_name()
        .with_context(|| format!("{} names no folder", dest.display()))?
        .to_string_lossy()
        .into_owned();
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    // Temporary folders of earlier processes killed while filling one (one writer per run
    // folder, so none is in use).
    let prefix = format!(".{name}.tmp-");
    if let Some(Ok(entries)) = dest.parent().map(std::fs::read_dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_dir_all(e.path()).ok();
            }
        }
    }
    std::fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    if let Err(e) = fill(&tmp) {
        std::fs::remove_dir_all(&tmp).ok();
        return Err(e);
    }
    let old = old_dir(dest);
    if dest.exists() {
        // `dest` is complete, so an `old` beside it is stale. (Without `dest`, `old` is the
        // only complete copy and stays until the new folder is in place.)
        if old.exists() {
            std::fs::remove_dir_all(&old)
                .with_context(|| format!("cannot remove {}", old.display()))?;
        }
        std::fs::rename(dest, &old).with_context(|| format!("cannot move {}", dest.display()))?;
        faults::point(&format!("replace:swap:{name}"));
    }
    std::fs::rename(&tmp, dest)
        .with_context(|| format!("cannot move {} into place", tmp.display()))?;
    if old.exists() {
        faults::point(&format!("replace:keep:{name}"));
        match keep {
            Some(keep) => {
                if keep.exists() {
                    std::fs::remove_dir_all(keep)
                        .with_context(|| format!("cannot remove {}", keep.display()))?;
                }
                std::fs::rename(&old, keep).with_context(|| {
                    format!("cannot move {} to {}", old.display(), keep.display())
                })?;
            }
            None => {
                std::fs::remove_dir_all(&old).ok();
            }
        }
    }
    Ok(())
}

/// The folder to read of one written by [`replace_dir`]: `dest` when it holds `marker`, else
/// [`old_dir`]`(dest)` when that does (a crash between the two renames), else `None`.
pub fn existing_dir(dest: &Path, marker: &str) -> Option<PathBuf> {
    [dest.to_path_buf(), old_dir(dest)]
        .into_iter()
        .find(|d| d.join(marker).exists())
}

/// Writes `record` as `<path>.mpk`: named MessagePack at full precision, the bytes burn's
/// `NamedMpkFileRecorder` writes and reads back. Serialised in memory, then written
/// atomically ([`write_atomic`]), so a failed write keeps the operating system's reason
/// ("No space left on device"), which burn's file recorder reports as a MessagePack error.
pub fn write_record<B: Backend, R: burn::record::Record<B>>(path: &Path, record: R) -> Result<()> {
    use burn::record::Recorder;
    let file = mpk_path(path);
    let bytes = Recorder::<B>::record(
        &burn::record::NamedMpkBytesRecorder::<FullPrecisionSettings>::new(),
        record,
        (),
    )
    .map_err(|e| anyhow::anyhow!("cannot serialise {}: {e:?}", file.display()))?;
    write_atomic(&file, &bytes)
}

/// `<path>.mpk`.
pub(crate) fn mpk_path(path: &Path) -> PathBuf {
    let mut file = path.as_os_str().to_owned();
    file.push(".mpk");
    PathBuf::from(file)
}

/// Runs `f`, turning a panic inside burn's record decoding into an error (silently: the
/// message goes into the error, not to stderr).
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> Result<T> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    out.map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        anyhow::anyhow!("the record is malformed ({msg})")
    })
}

/// Reads a record written by [`write_record`] from the file `file` (with its `.mpk`).
///
/// # Errors
/// An unreadable file or a record that does not decode (see [`crate::run::checkpoint::load_weights`]).
pub fn read_record<B: Backend, R: burn::record::Record<B>>(
    file: &Path,
    device: &B::Device,
) -> Result<R> {
    use burn::record::Recorder;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let rec = burn::record::NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
    guarded(|| Recorder::<B>::load::<R>(&rec, bytes, device))?
        .map_err(|e| anyhow::anyhow!("the record does not decode ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_folder_as_a_whole() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("ck/last");
        std::fs::create_dir_all(d.path().join("ck")).unwrap();
        replace_dir(&dest, |t| write_atomic(&t.join("a.txt"), b"one")).unwrap();
        replace_dir(&dest, |t| write_atomic(&t.join("b.txt"), b"two")).unwrap();
        // Only the new contents, and no temporary or old folder beside them.
        let names = |p: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&dest), ["b.txt"]);
        assert_eq!(names(&d.path().join("ck")), ["last"]);
        assert_eq!(existing_dir(&dest, "b.txt"), Some(dest.clone()));

        // A failing fill leaves the previous folder untouched and removes its temporary one.
        let err = replace_dir(&dest, |_| anyhow::bail!("disk full")).unwrap_err();
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(names(&dest), ["b.txt"]);
        assert_eq!(names(&d.path().join("ck")), ["last"]);

        // A crash between the two renames: only `.last.old` holds the checkpoint.
        std::fs::rename(&dest, old_dir(&dest)).unwrap();
        assert_eq!(old_dir(&dest), d.path().join("ck/.last.old"));
        assert_eq!(existing_dir(&dest, "b.txt"), Some(old_dir(&dest)));
        assert_eq!(existing_dir(&dest, "a.txt"), None);
        // The next replace clears it, and the temporary folder of a process killed while
        // filling one.
        std::fs::create_dir_all(d.path().join("ck/.last.tmp-999999")).unwrap();
        replace_dir(&dest, |t| write_atomic(&t.join("c.txt"), b"three")).unwrap();
        assert_eq!(names(&d.path().join("ck")), ["last"]);
    }

    #[test]
    fn writes_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b.txt");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }
}
