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

/// Writes the clean-shutdown marker durably.
pub(crate) fn write_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    let file = storage
        .open(&path, true)
        .map_err(|e| LogError::io(&path, e))?;
    file.sync_data().map_err(|e| LogError::io(&path, e))?;
    storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))
}

/// Whether the clean-shutdown marker exists.
pub(crate) fn has_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<bool> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    storage.exists(&path).map_err(|e| LogError::io(&path, e))
}

/// Removes the clean-shutdown marker durably (a no-op when absent).
pub(crate) fn remove_clean_shutdown(storage: &dyn Storage, dir: &Path) -> Result<()> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    match storage.remove_file(&path) {
        Ok(()) => storage.sync_dir(dir).map_err(|e| LogError::io(dir, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(&path, e)),
    }
}
