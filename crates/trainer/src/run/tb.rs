//! TensorBoard scalars: written with `tensorboard-rs` (the TFRecord `events.out.tfevents.*`
//! files TensorBoard reads) and read back by [`read_scalars`], a small decoder of the same
//! format (TFRecord framing + the few protobuf fields of `Event`/`Summary.Value` that
//! scalars use), so tests and users can check logs without Python.

use std::path::Path;

use anyhow::{bail, Context, Result};
use tensorboard_rs::summary_writer::SummaryWriter;

/// A TensorBoard log for one run.
pub struct TbLogger {
    writer: SummaryWriter,
}

impl TbLogger {
    /// Opens (creates) the log folder.
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create TensorBoard folder {}", dir.display()))?;
        Ok(Self {
            writer: SummaryWriter::new(dir),
        })
    }

    /// Logs one scalar.
    pub fn scalar(&mut self, tag: &str, value: f64, step: usize) {
        self.writer.add_scalar(tag, value as f32, step);
    }

    /// Flushes to disk.
    pub fn flush(&mut self) {
        self.writer.flush();
    }
}

/// One scalar read back from an event file.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalarEvent {
    /// Tag, e.g. `loss/total`.
    pub tag: String,
    /// Global step.
    pub step: i64,
    /// Value.
    pub value: f32,
}

/// Reads every scalar of every `events.out.tfevents.*` file in `dir` (sorted by file name).
pub fn read_scalars(dir: &Path) -> Result<Vec<ScalarEvent>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("events.out.tfevents"))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
        let mut pos = 0;
        while pos < bytes.len() {
            if pos + 12 > bytes.len() {
                bail!("{}: truncated record header at byte {pos}", f.display());
            }
            let len = u64::from_le_bytes(bytes[pos..pos + 8].try_into().unwrap()) as usize;
            let start = pos + 12;
            if start + len + 4 > bytes.len() {
                bail!("{}: truncated record at byte {pos}", f.display());
            }
            parse_event(&bytes[start..start + len], &mut out)
                .with_context(|| format!("{}: bad event at byte {pos}", f.display()))?;
            pos = start + len + 4;
        }
    }
    Ok(out)
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&byte) = b.get(*pos) else {
            bail!("truncated varint")
        };
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("varint too long")
}

/// One protobuf field: number, wire type, payload (length-delimited and fixed types) and
/// value (varints).
type Field<'a> = (u64, u8, &'a [u8], u64);

/// Iterates the fields of a protobuf message.
fn fields(b: &[u8]) -> Result<Vec<Field<'_>>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = varint(b, &mut pos)?;
        let (field, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                let v = varint(b, &mut pos)?;
                out.push((field, wire, &b[0..0], v));
            }
            1 => {
                out.push((field, wire, b.get(pos..pos + 8).context("truncated")?, 0));
                pos += 8;
            }
            2 => {
                let len = varint(b, &mut pos)? as usize;
                out.push((field, wire, b.get(pos..pos + len).context("truncated")?, 0));
                pos += len;
            }
            5 => {
                out.push((field, wire, b.get(pos..pos + 4).context("truncated")?, 0));
                pos += 4;
            }
            w => bail!("unsupported wire type {w}"),
        }
    }
    Ok(out)
}

fn parse_event(b: &[u8], out: &mut Vec<ScalarEvent>) -> Result<()> {
    let mut step = 0i64;
    let mut summaries = Vec::new();
    for (field, wire, payload, v) in fields(b)? {
        match (field, wire) {
            (2, 0) => step = v as i64,
            (5, 2) => summaries.push(payload),
            _ => {}
        }
    }
    for s in summaries {
        for (field, wire, value, _) in fields(s)? {
            if (field, wire) != (1, 2) {
                continue;
            }
            let mut tag = String::new();
            let mut simple = None;
            for (f, w, p, _) in fields(value)? {
                match (f, w) {
                    (1, 2) => tag = String::from_utf8_lossy(p).into_owned(),
                    (2, 5) => simple = Some(f32::from_le_bytes(p.try_into().unwrap())),
                    _ => {}
                }
            }
            if let Some(value) = simple {
                out.push(ScalarEvent { tag, step, value });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_scalars_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut tb = TbLogger::new(dir.path()).unwrap();
        tb.scalar("loss/total", 2.5, 0);
        tb.scalar("loss/total", 1.25, 10);
        tb.scalar("lr", 0.1, 10);
        tb.flush();
        drop(tb);
        let ev = read_scalars(dir.path()).unwrap();
        let want = vec![
            ScalarEvent {
                tag: "loss/total".into(),
                step: 0,
                value: 2.5,
            },
            ScalarEvent {
                tag: "loss/total".into(),
                step: 10,
                value: 1.25,
            },
            ScalarEvent {
                tag: "lr".into(),
                step: 10,
                value: 0.1,
            },
        ];
        assert_eq!(ev, want);
    }
}
