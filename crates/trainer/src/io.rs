//! File helpers. Every file a run writes goes through [`write_atomic`] (temp file in the same
//! folder, then rename, by `unseen_data::formats::write_atomic`), so an interrupted run never
//! leaves a half-written file.

use std::path::Path;

use anyhow::Result;

/// Writes `bytes` to `path` atomically, creating the parent folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    unseen_data::formats::write_atomic(path, |w| w.write_all(bytes))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
