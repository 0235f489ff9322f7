//! Small durable files in the partition directory: the recovery-point and log-start-offset
//! checkpoints and the clean-shutdown marker.
//!
//! A checkpoint file is ASCII text in the spirit of Kafka's `CheckpointFile`: a version line
//! `0`, then the offset in decimal, each line ending in `\n` (e.g. `"0\n1234\n"`). It is
//! replaced atomically: written to `{name}.tmp`, fsynced, renamed over the old file, and the
//! directory fsynced, so a crash leaves either the old or the new value.
//!
//! The clean-shutdown marker is an empty file written by [`crate::Log::close`] after everything
//! else is durable and removed by [`crate::Log::open`] before the log accepts writes, so its
//! presence proves the previous process closed the log completely.
//!
//! A broker with many partitions keeps these per data directory instead, as Kafka's
//! `LogManager` does (issue #14: one file per partition costs a directory fsync per partition
//! at every start and stop): [`write_offsets_file`] / [`read_offsets_file`] hold one offset
//! per partition in Kafka's `OffsetCheckpointFile` layout — version line `0`, the entry
//! count, then one `topic partition offset` line per partition — and the marker is one file
//! in the data directory ([`write_clean_shutdown`], [`has_clean_shutdown`],
//! [`remove_clean_shutdown`]). Logs opened with [`crate::Log::open_managed`] then write none of
//! their own.

use std::path::{Path, PathBuf};

use crate::storage::{read_exact_at, write_all_at, Storage};
use crate::{LogError, Result};

/// File holding the offset below which all data is known to be durable and valid.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// File holding the log start offset (advanced by retention and DeleteRecords).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// The clean-shutdown marker's name (Kafka's is `.kafka_cleanshutdown`).
pub const CLEAN_SHUTDOWN_FILE: &str = ".potok_cleanshutdown";

const VERSION: &str = "0";

/// Reads a checkpoint; `Ok(None)` when the file does not exist, an error when it is malformed.
pub(crate) fn read_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> Result<Option<i64>> {
    let path = dir.join(name);
    if !storage.exists(&path).map_err(|e| LogError::io(&path, e))? {
        return Ok(None);
    }
    let file = storage
        .open(&path, false)
        .map_err(|e| LogError::io(&path, e))?;
    let len = file.len().map_err(|e| LogError::io(&path, e))?;
    if len > 64 {
        return Err(LogError::Corrupt {
            path,
            reason: format!("checkpoint file of {len} bytes is too large"),
        });
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*file, &mut buf, 0).map_err(|e| LogError::io(&path, e))?;
    let bad = |reason: &str| LogError::Corrupt {
        path: path.clone(),
        reason: reason.to_string(),
    };
    let text = std::str::from_utf8(&buf).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(bad("unknown checkpoint version"));
    }
    let offset: i64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("missing or malformed offset"))?;
    if offset < 0 || lines.next().is_some() {
        return Err(bad("negative offset or trailing data"));
    }
    Ok(Some(offset))
}

/// Atomically replaces a checkpoint with `offset`.
pub(crate) fn write_checkpoint(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    offset: i64,
) -> Result<()> {
    let text = format!("{VERSION}\n{offset}\n");
    replace_file(storage, dir, &dir.join(name), text.as_bytes())
}

/// Replaces `path` (a file in `dir`) with `bytes` so that a crash leaves either the old or the
/// new content: written to `{path}.tmp`, fsynced, renamed over `path`, directory fsynced. Every
/// small durable file of a partition (checkpoints, leader-epoch checkpoint, producer-state
/// snapshots) goes through here.
pub(crate) fn replace_file(
    storage: &dyn Storage,
    dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = storage
        .open(&tmp, true)
        .map_err(|e| LogError::io(&tmp, e))?;
    file.set_len(0).map_err(|e| LogError::io(&tmp, e))?;
    write_all_at(&*file, bytes, 0).map_err(|e| LogError::io(&tmp, e))?;
    file.sync_data().map_err(|e| LogError::io(&tmp, e))?;
    drop(file);
    storage
        .rename(&tmp, path)
        .map_err(|e| LogError::io(path, e))?;
    storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))
}

/// [`replace_file`] without the fsyncs: a crash may leave the old file, the new one, or (rarely)
/// an empty or partial one, so only for files whose loss recovery repairs.
pub(crate) fn replace_file_unsynced(
    storage: &dyn Storage,
    path: &Path,
    bytes: &[u8],
) -> Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let file = storage
        .open(&tmp, true)
        .map_err(|e| LogError::io(&tmp, e))?;
    file.set_len(0).map_err(|e| LogError::io(&tmp, e))?;
    write_all_at(&*file, bytes, 0).map_err(|e| LogError::io(&tmp, e))?;
    drop(file);
    storage
        .rename(&tmp, path)
        .map_err(|e| LogError::io(path, e))
}

/// Largest per-data-directory checkpoint file read (a million partitions of 249-character
/// topic names fit); anything larger is corrupt, not read into memory.
const MAX_OFFSETS_FILE: u64 = 512 << 20;

/// One partition's offset in a per-data-directory checkpoint: `(topic, partition, offset)`.
pub type OffsetEntry = (String, i32, i64);

/// Atomically replaces `dir/name` with one offset per partition (Kafka's
/// `OffsetCheckpointFile` layout, see the module docs).
pub fn write_offsets_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
    entries: &[OffsetEntry],
) -> Result<()> {
    let mut text = String::with_capacity(16 + entries.len() * 32);
    text.push_str(VERSION);
    text.push('\n');
    text.push_str(&entries.len().to_string());
    text.push('\n');
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    replace_file(storage, dir, &dir.join(name), text.as_bytes())
}

/// Reads a per-data-directory checkpoint; `Ok(None)` when the file does not exist, an error
/// when it is malformed (wrong version, count or line, negative offset or partition).
pub fn read_offsets_file(
    storage: &dyn Storage,
    dir: &Path,
    name: &str,
) -> Result<Option<Vec<OffsetEntry>>> {
    let path = dir.join(name);
    if !storage.exists(&path).map_err(|e| LogError::io(&path, e))? {
        return Ok(None);
    }
    let file = storage
        .open(&path, false)
        .map_err(|e| LogError::io(&path, e))?;
    let len = file.len().map_err(|e| LogError::io(&path, e))?;
    let bad = |reason: String| LogError::Corrupt {
        path: path.clone(),
        reason,
    };
    if len > MAX_OFFSETS_FILE {
        return Err(bad(format!("checkpoint file of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    read_exact_at(&*file, &mut buf, 0).map_err(|e| LogError::io(&path, e))?;
    let text = std::str::from_utf8(&buf).map_err(|_| bad("not UTF-8".into()))?;
    let mut lines = text.lines();
    if lines.next() != Some(VERSION) {
        return Err(bad("unknown checkpoint version".into()));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad("missing or malformed entry count".into()))?;
    // Each entry takes at least six bytes ("t 0 0\n"), so a count the file cannot hold is
    // refused before anything is reserved for it.
    if count > buf.len() / 6 {
        return Err(bad(format!("entry count {count} exceeds the file")));
    }
    let mut entries = Vec::with_capacity(count);
    for (i, line) in lines.by_ref().take(count).enumerate() {
        let mut fields = line.split(' ');
        let parsed = match (fields.next(), fields.next(), fields.next(), fields.next()) {
            (Some(t), Some(p), Some(o), None) if !t.is_empty() => {
                match (p.parse::<i32>(), o.parse::<i64>()) {
                    (Ok(p), Ok(o)) if p >= 0 && o >= 0 => Some((t.to_string(), p, o)),
                    _ => None,
                }
            }
            _ => None,
        };
        entries.push(parsed.ok_or_else(|| bad(format!("malformed entry {}", i + 1)))?);
    }
    if entries.len() != count || lines.next().is_some() {
        return Err(bad(format!(
            "{} entries where the header says {count}",
            entries.len()
        )));
    }
    Ok(Some(entries))
}

/// Writes the clean-shutdown marker durably.
pub fn write_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let file = storage
        .open(&path, true)
        .map_err(|e| LogError::io(&path, e))?;
    file.sync_data().map_err(|e| LogError::io(&path, e))?;
    storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))
}

/// Whether the clean-shutdown marker exists.
pub fn has_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<bool> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    storage.exists(&path).map_err(|e| LogError::io(&path, e))
}

/// Removes the clean-shutdown marker durably (a no-op when absent).
pub fn remove_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match storage.remove_file(&path) {
        Ok(()) => storage.sync_dir(dir).map_err(|e| LogError::io(dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::RealStorage;

    #[test]
    fn offsets_files_roundtrip_and_refuse_malformed_content() {
        let dir = tempfile::tempdir().unwrap();
        let st = RealStorage;
        assert_eq!(read_offsets_file(&st, dir.path(), "cp").unwrap(), None);
        let entries = vec![
            ("a.b_c-d".to_string(), 0, 0),
            ("t".to_string(), 999, i64::MAX),
        ];
        write_offsets_file(&st, dir.path(), "cp", &entries).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("cp")).unwrap(),
            "0\n2\na.b_c-d 0 0\nt 999 9223372036854775807\n"
        );
        assert_eq!(
            read_offsets_file(&st, dir.path(), "cp").unwrap(),
            Some(entries)
        );
        write_offsets_file(&st, dir.path(), "cp", &[]).unwrap();
        assert_eq!(
            read_offsets_file(&st, dir.path(), "cp").unwrap(),
            Some(vec![])
        );
        for bad in [
            "",
            "1\n0\n",
            "0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt 0 1\nu 0 1\n",
            "0\n1\nt -1 1\n",
            "0\n1\nt 0 -1\n",
            "0\n1\nt 0 1 2\n",
            "0\n1\n 0 1\n",
            "0\n99999999999\nt 0 1\n",
            "0\n1\nt 0 x\n",
        ] {
            std::fs::write(dir.path().join("cp"), bad).unwrap();
            assert!(
                matches!(
                    read_offsets_file(&st, dir.path(), "cp"),
                    Err(LogError::Corrupt { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
