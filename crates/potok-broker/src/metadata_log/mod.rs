//! The durable cluster metadata: an append-only log of Kafka's KRaft metadata records
//! ([`potok_metadata::MetadataRecord`]: `TopicRecord`, `PartitionRecord`, `ConfigRecord`,
//! `RemoveTopicRecord`, ...), replayed at start into a [`potok_metadata::MetadataImage`].
//!
//! Every change to topics (creation, deletion, partition increase, config change) is one
//! frame of records appended and fsynced before the change is applied in memory or
//! acknowledged. The in-memory state is always the replay of the records, and they are the
//! records a KRaft controller quorum replicates in `__cluster_metadata`, so the quorum (issue
//! #17) only has to replicate this log, not change what is in it.
//!
//! # File format (`{log.dirs}/__potok_metadata/cluster-metadata.log`, data format 1)
//!
//! A sequence of frames, each one atomic change (all records of one request):
//!
//! ```text
//! u32 BE  payload length n (1..=MAX_FRAME_BYTES)
//! u32 BE  CRC-32C (Castagnoli) of the payload
//! n bytes payload: u32 BE record count c (>= 1), then c times
//!         u32 BE record length m, m bytes: one record as Kafka serialises it in
//!         __cluster_metadata (MetadataRecordSerde: unsigned varints frame version 1, API key,
//!         record version, then the record's fields at that version)
//! ```
//!
//! A torn or corrupt tail (short frame, bad length, bad CRC) ends replay: it is truncated away
//! with a warning, because a frame is acknowledged only after its fsync, so a torn frame was
//! never acknowledged. A frame whose CRC matches but whose records do not decode (a record
//! type this Potok does not know) was written whole by a newer Potok: the broker refuses to
//! start rather than drop it. [`format`] keeps the data directory's format version and
//! migrates older formats.

pub mod format;
mod v0;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use potok_metadata::{decode_record, encode_record, BrokerId, MetadataRecord};

use crate::error::{BrokerError, Result};

pub(crate) use v0::partition_record;

/// The largest frame payload (see [`crate::frames`]). A CreateTopics request of Kafka's
/// 10,000 partitions is about 0.6 MB.
pub use crate::frames::MAX_FRAME_BYTES;

/// The name of the metadata directory under `log.dirs`. It cannot clash with a partition
/// directory, which always ends in `-{partition}`.
pub const METADATA_DIR: &str = "__potok_metadata";

/// The metadata log's file name in [`METADATA_DIR`].
pub const LOG_FILE: &str = "cluster-metadata.log";

/// The append-only metadata log file. Not thread-safe by itself: the broker serialises every
/// metadata change through one `Mutex` around it (see `TopicManager`).
#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

/// Encodes `records` as one frame.
pub(crate) fn encode_frame(records: &[MetadataRecord]) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    let count = u32::try_from(records.len())
        .map_err(|_| BrokerError::Config("too many metadata records in one change".into()))?;
    payload.extend_from_slice(&count.to_be_bytes());
    for r in records {
        let b = encode_record(r).map_err(|e| BrokerError::Config(e.to_string()))?;
        payload.extend_from_slice(&(b.len() as u32).to_be_bytes());
        payload.extend_from_slice(&b);
    }
    crate::frames::frame(&payload, "a metadata change")
}

/// Decodes the records of one frame payload whose CRC matched.
fn decode_payload(payload: &[u8]) -> std::result::Result<Vec<MetadataRecord>, String> {
    let head = payload.get(..4).ok_or("payload shorter than its count")?;
    let count = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    // Each record takes at least its 4-byte length: a larger count is corruption and must not
    // size an allocation.
    if count == 0 || count > payload.len() / 4 {
        return Err(format!("record count {count} does not fit the frame"));
    }
    let mut records = Vec::with_capacity(count);
    let mut pos = 4usize;
    for i in 0..count {
        let len = payload
            .get(pos..pos + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| format!("record {i}: length missing"))?;
        let body = payload
            .get(pos + 4..pos + 4 + len)
            .ok_or_else(|| format!("record {i}: {len} bytes do not fit the frame"))?;
        let rec =
            decode_record(Bytes::copy_from_slice(body)).map_err(|e| format!("record {i}: {e}"))?;
        records.push(rec);
        pos += 4 + len;
    }
    if pos != payload.len() {
        return Err(format!(
            "{} bytes after the last record",
            payload.len() - pos
        ));
    }
    Ok(records)
}

/// The records of a log file's bytes and the length of its valid prefix (the rest is a torn
/// tail). A whole frame that does not decode is an error. The quorum's entries are such
/// frames too (`crate::quorum::decode_entry`).
pub(crate) fn parse_frames(data: &[u8], path: &Path) -> Result<(Vec<MetadataRecord>, usize)> {
    let (frames, good_end) = crate::frames::parse(data, |pos, p| decode_frame(path, pos, p))?;
    Ok((frames.into_iter().flatten().collect(), good_end))
}

/// The records of the whole frame at byte `pos` of `path`, whose checksum matched: a payload
/// that does not decode was written whole by a newer Potok (or is corruption).
fn decode_frame(path: &Path, pos: usize, payload: &[u8]) -> Result<Vec<MetadataRecord>> {
    decode_payload(payload).map_err(|reason| BrokerError::CorruptMetadata {
        path: path.to_path_buf(),
        reason: format!(
            "the frame at byte {pos} has a valid checksum but cannot be read ({reason}); \
             was it written by a newer Potok?"
        ),
    })
}

impl MetadataLog {
    /// Opens the log under `data_dir` (checking the data directory's format version and
    /// migrating an older format first, see [`format`]), returning it with every valid record
    /// in order. A torn tail is truncated with a warning. `node` leads every partition of a
    /// migrated directory.
    pub fn open(data_dir: &Path, node: BrokerId) -> Result<(MetadataLog, Vec<MetadataRecord>)> {
        let dir = data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io(&dir, e))?;
        format::prepare(&dir, node)?;
        let path = dir.join(LOG_FILE);
        let (file, frames, _) = crate::frames::open(&path, false, "metadata log", |pos, p| {
            decode_frame(&path, pos, p)
        })?;
        let records = frames.into_iter().flatten().collect();
        Ok((MetadataLog { path, file }, records))
    }

    /// Appends `records` as one frame with one write and one fsync: they become durable
    /// together or not at all. The change may be applied once this returns.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let frame = encode_frame(records)?;
        self.file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| BrokerError::io(&self.path, e))
    }
}

/// Writes `bytes` to `dir/name` atomically: a temporary file, fsynced, renamed over the
/// target, the directory fsynced.
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| BrokerError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use potok_metadata::MetadataImage;
    use potok_protocol::messages::internal::{
        config_record::ConfigRecord, remove_topic_record::RemoveTopicRecord,
        topic_record::TopicRecord,
    };
    use potok_protocol::Uuid;
    use std::fs::OpenOptions;

    fn changes() -> Vec<Vec<MetadataRecord>> {
        let id = Uuid([7; 16]);
        vec![
            vec![
                MetadataRecord::Topic(TopicRecord {
                    name: "t".into(),
                    topic_id: id,
                    ..Default::default()
                }),
                MetadataRecord::Config(ConfigRecord {
                    resource_type: 2,
                    resource_name: "t".into(),
                    name: "retention.ms".into(),
                    value: Some("1000".into()),
                    ..Default::default()
                }),
                partition_record(id, 0, BrokerId(1)),
                partition_record(id, 1, BrokerId(1)),
            ],
            vec![partition_record(id, 2, BrokerId(1))],
            vec![MetadataRecord::Config(ConfigRecord {
                resource_type: 2,
                resource_name: "t".into(),
                name: "retention.ms".into(),
                value: None,
                ..Default::default()
            })],
            vec![MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: id,
                ..Default::default()
            })],
        ]
    }

    #[test]
    fn changes_survive_reopen_whole_and_torn_tails_are_dropped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert!(recs.is_empty());
        let mut ends = vec![0u64];
        let path = dir.path().join(METADATA_DIR).join(LOG_FILE);
        for c in changes() {
            log.append(&c).unwrap();
            ends.push(std::fs::metadata(&path).unwrap().len());
        }
        drop(log);
        let all: Vec<MetadataRecord> = changes().concat();
        let (_, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert_eq!(recs, all);
        MetadataImage::replay(&recs).unwrap();
        // Every proper prefix of the file replays to whole changes only, never panics, and
        // is cut back to the last whole frame.
        let full = std::fs::read(&path).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut as u64).count() - 1;
            assert_eq!(recs, changes()[..whole].concat(), "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), ends[whole]);
        }
        // A flipped byte drops the damaged frame and everything after it.
        let mut bad = full.clone();
        bad[12] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let (_, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert!(recs.is_empty());
    }

    #[test]
    fn a_whole_frame_of_an_unknown_record_type_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, _) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        log.append(&changes()[0]).unwrap();
        drop(log);
        // A record with API key 99: frame version 1, key 99, version 0, no fields.
        let payload = [0, 0, 0, 1, 0, 0, 0, 3, 1, 99, 0];
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        let path = dir.path().join(METADATA_DIR).join(LOG_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&frame).unwrap();
        drop(f);
        let e = MetadataLog::open(dir.path(), BrokerId(1)).unwrap_err();
        assert!(
            e.to_string().contains("unknown metadata record type 99"),
            "{e}"
        );
        // Nothing was truncated.
        assert!(std::fs::metadata(&path).unwrap().len() > frame.len() as u64);
    }

    #[test]
    fn hostile_counts_and_lengths_are_errors_not_allocations() {
        assert!(decode_payload(&[]).is_err());
        assert!(decode_payload(&[0, 0, 0, 0]).is_err());
        assert!(decode_payload(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(decode_payload(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
