//! The data directory's on-disk format version, and the migration of older formats on the
//! first start of a newer Potok.
//!
//! | format | written by | metadata log |
//! |---|---|---|
//! | 0 | Potok 0.1 | `metadata.log`, Potok's own four record types (see `v0`) |
//! | 1 | Potok after issue #13 | `cluster-metadata.log`, Kafka's KRaft records |
//!
//! The version lives in `{log.dirs}/__potok_metadata/format.properties`
//! (`potok.data.format.version=1`). Format 0 had no such file; a directory without it but with
//! a `metadata.log` file is format 0. `{log.dirs}/meta.properties` (cluster and node id, as
//! Kafka has it) is unchanged by the formats.
//!
//! # Migration 0 → 1
//!
//! The format-0 log is replayed as Potok 0.1 replayed it and the resulting state written as
//! Kafka's records (topic ids, partition counts and config overrides kept) to a temporary file,
//! fsynced and renamed to `cluster-metadata.log`; then the version file is written the same
//! way. Partition logs and `__consumer_offsets` need no change. A crash at any point leaves
//! either the old format (no version file: the migration runs again from the untouched
//! `metadata.log`) or the new one. The old log is then kept as `metadata.log.v0`, and a
//! directory named `metadata.log` takes its place: Potok 0.1 started on a migrated directory
//! fails to open it as a file and stops, instead of finding no metadata log and deleting every
//! partition directory as unknown.
//!
//! A version file naming a format this Potok does not know (written by a newer Potok) is
//! refused at start with a message naming the version.

use std::path::Path;

use potok_metadata::{BrokerId, MetadataImage};

use super::{encode_frame, replace_file, v0, LOG_FILE};
use crate::error::{BrokerError, Result};

/// The file holding the format version, in the metadata directory.
pub const FORMAT_FILE: &str = "format.properties";

/// The key of the format version in [`FORMAT_FILE`].
pub const FORMAT_KEY: &str = "potok.data.format.version";

/// The format this Potok writes.
pub const CURRENT_FORMAT: u32 = 1;

/// Format 0's metadata log, and (from format 1 on) the guard directory in its place.
const V0_LOG: &str = "metadata.log";

/// Where the migration keeps format 0's metadata log.
const V0_BACKUP: &str = "metadata.log.v0";

/// The largest version file read; anything larger is not ours.
const MAX_FORMAT_FILE_BYTES: u64 = 4096;

/// Records per frame of a migrated log, so that no frame nears `MAX_FRAME_BYTES` however
/// many partitions a directory has (the whole file is replaced atomically anyway).
const MIGRATION_FRAME_RECORDS: usize = 10_000;

fn unsupported(path: &Path, reason: String) -> BrokerError {
    BrokerError::DataFormat {
        path: path.to_path_buf(),
        reason,
    }
}

/// The format version recorded in `dir` (the metadata directory), `None` without a version
/// file.
pub fn read_version(dir: &Path) -> Result<Option<u32>> {
    let path = dir.join(FORMAT_FILE);
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(BrokerError::io(&path, e)),
    };
    if len > MAX_FORMAT_FILE_BYTES {
        return Err(unsupported(
            &path,
            format!("{len} bytes is not a format version file"),
        ));
    }
    let text = std::fs::read(&path).map_err(|e| BrokerError::io(&path, e))?;
    let text = String::from_utf8(text)
        .map_err(|_| unsupported(&path, "the format version file is not UTF-8".into()))?;
    let props = crate::config::parse_properties(&text, &path.display().to_string())?;
    let value = props
        .iter()
        .find(|(k, _)| k == FORMAT_KEY)
        .map(|(_, v)| v.trim().to_string())
        .ok_or_else(|| unsupported(&path, format!("no {FORMAT_KEY} in the format version file")))?;
    value.parse().map(Some).map_err(|_| {
        unsupported(
            &path,
            format!("{FORMAT_KEY}={value} is not a format version this Potok knows"),
        )
    })
}

fn write_version(dir: &Path) -> Result<()> {
    let text = format!(
        "# The on-disk format of this Potok data directory (docs/format.md). Written by Potok.\n\
         {FORMAT_KEY}={CURRENT_FORMAT}\n"
    );
    replace_file(dir, FORMAT_FILE, text.as_bytes())
}

/// Makes `dir` (the metadata directory) a format-[`CURRENT_FORMAT`] directory with an existing
/// [`LOG_FILE`]: creates a fresh one, migrates format 0, or refuses an unknown format.
pub(crate) fn prepare(dir: &Path, node: BrokerId) -> Result<()> {
    let log = dir.join(LOG_FILE);
    match read_version(dir)? {
        Some(CURRENT_FORMAT) => {
            if !log.is_file() {
                return Err(BrokerError::CorruptMetadata {
                    path: log,
                    reason: format!(
                        "the data directory is in format {CURRENT_FORMAT} but its metadata log \
                         is missing; refusing to start with no topics"
                    ),
                });
            }
        }
        Some(v) => {
            return Err(unsupported(
                &dir.join(FORMAT_FILE),
                format!(
                    "the data directory is in format version {v}, written by a newer Potok; \
                     Potok {} reads format versions 0 (Potok 0.1) to {CURRENT_FORMAT}",
                    env!("CARGO_PKG_VERSION")
                ),
            ))
        }
        None => {
            let old = dir.join(V0_LOG);
            if old.is_file() {
                migrate_v0(dir, &old, node)?;
            } else if std::fs::metadata(&log).is_ok_and(|m| m.len() > 0) {
                return Err(BrokerError::CorruptMetadata {
                    path: dir.join(FORMAT_FILE),
                    reason: format!(
                        "{LOG_FILE} exists but the format version file does not; restore it \
                         ({FORMAT_KEY}={CURRENT_FORMAT}) if this directory was written by this \
                         Potok"
                    ),
                });
            } else {
                replace_file(dir, LOG_FILE, &[])?;
            }
            write_version(dir)?;
        }
    }
    guard_against_v0(dir)
}

/// Rewrites format 0's metadata log as format 1's, atomically (see the module docs).
fn migrate_v0(dir: &Path, old: &Path, node: BrokerId) -> Result<()> {
    let data = std::fs::read(old).map_err(|e| BrokerError::io(old, e))?;
    let records = v0::read(&data).map_err(|reason| {
        unsupported(
            old,
            format!("cannot migrate the format 0 (Potok 0.1) metadata log: {reason}"),
        )
    })?;
    let converted = v0::convert(records, node);
    // The converted records must replay; anything else is a bug, caught before writing.
    let image = MetadataImage::replay(&converted).map_err(|e| BrokerError::CorruptMetadata {
        path: old.to_path_buf(),
        reason: format!("the format 0 metadata log converts to inconsistent records: {e}"),
    })?;
    let mut bytes = Vec::new();
    for chunk in converted.chunks(MIGRATION_FRAME_RECORDS) {
        bytes.extend(encode_frame(chunk)?);
    }
    replace_file(dir, LOG_FILE, &bytes)?;
    tracing::info!(
        dir = %dir.display(),
        topics = image.topics().count(),
        partitions = image.partition_count(),
        "migrated the metadata log from data format 0 (Potok 0.1) to format {CURRENT_FORMAT} (Kafka's KRaft records)"
    );
    Ok(())
}

/// Puts a directory where format 0's `metadata.log` was (keeping a leftover file as
/// [`V0_BACKUP`]), so that Potok 0.1 refuses the directory (see the module docs).
fn guard_against_v0(dir: &Path) -> Result<()> {
    let old = dir.join(V0_LOG);
    match std::fs::symlink_metadata(&old) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            let backup = dir.join(V0_BACKUP);
            std::fs::rename(&old, &backup).map_err(|e| BrokerError::io(&backup, e))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(BrokerError::io(&old, e)),
    }
    std::fs::create_dir(&old).map_err(|e| BrokerError::io(&old, e))?;
    let readme = "This directory stands where Potok 0.1 kept its metadata log, so that Potok 0.1 \
                  refuses this data directory: it was migrated to a newer on-disk format \
                  (see format.properties and docs/format.md).\n";
    std::fs::write(old.join("README"), readme).map_err(|e| BrokerError::io(&old, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BrokerError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata_log::{MetadataLog, METADATA_DIR};

    #[test]
    fn a_fresh_directory_gets_the_current_format_and_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let (_, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert!(recs.is_empty());
        let meta = dir.path().join(METADATA_DIR);
        assert_eq!(read_version(&meta).unwrap(), Some(CURRENT_FORMAT));
        assert!(meta.join(V0_LOG).is_dir());
        // Opening again changes nothing.
        MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert!(!meta.join(V0_BACKUP).exists());
    }

    #[test]
    fn unknown_or_malformed_versions_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        let meta = dir.path().join(METADATA_DIR);
        std::fs::write(meta.join(FORMAT_FILE), format!("{FORMAT_KEY}=7\n")).unwrap();
        let e = MetadataLog::open(dir.path(), BrokerId(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("format version 7"), "{e}");
        std::fs::write(meta.join(FORMAT_FILE), format!("{FORMAT_KEY}=x\n")).unwrap();
        let e = MetadataLog::open(dir.path(), BrokerId(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{FORMAT_KEY}=x")), "{e}");
        std::fs::write(meta.join(FORMAT_FILE), "other=1\n").unwrap();
        let e = MetadataLog::open(dir.path(), BrokerId(1))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("no {FORMAT_KEY}")), "{e}");
    }

    #[test]
    fn a_missing_log_or_version_file_is_refused_not_recreated_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        log.append(&[super::super::partition_record(
            potok_protocol::Uuid([1; 16]),
            0,
            BrokerId(1),
        )])
        .unwrap();
        drop(log);
        let meta = dir.path().join(METADATA_DIR);
        std::fs::remove_file(meta.join(FORMAT_FILE)).unwrap();
        assert!(MetadataLog::open(dir.path(), BrokerId(1)).is_err());
        write_version(&meta).unwrap();
        std::fs::remove_file(meta.join(LOG_FILE)).unwrap();
        assert!(MetadataLog::open(dir.path(), BrokerId(1)).is_err());
    }
}
