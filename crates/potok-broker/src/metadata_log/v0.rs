//! Data directory format 0 (Potok 0.1): the metadata log in Potok's own four record types, read
//! only to migrate it to Kafka's records (format 1).
//!
//! # File format (`{log.dirs}/__potok_metadata/metadata.log`)
//!
//! A sequence of frames, each `u32 BE` payload length n (1..=1 MiB), `u32 BE` CRC-32C of the
//! payload, n bytes of payload: `u8` record format version (0), `u8` record type, fields.
//! Fields: `uuid` = 16 bytes; `str` = `u16 BE` length + UTF-8; `i32 BE`; `opt str` = `u8` 0/1
//! then `str`; `configs` = `u16 BE` count then (`str` name, `str` value) pairs.
//!
//! | type | record | fields |
//! |---|---|---|
//! | 1 | TopicCreated | uuid id, str name, i32 partitions, configs |
//! | 2 | PartitionsIncreased | uuid id, i32 new total count |
//! | 3 | TopicConfigSet | uuid id, str name, opt str value (absent = remove override) |
//! | 4 | TopicDeleted | uuid id |
//!
//! Potok 0.1 treated a short frame, a bad length, a CRC mismatch or an undecodable payload as a
//! torn tail (never acknowledged, because each record was acknowledged only after its fsync)
//! and ignored everything from there. The migration reads the same valid prefix, with one
//! difference: a frame whose CRC matches but whose payload this reader does not understand was
//! written whole by something else, so the migration refuses it instead of dropping it.

use std::collections::BTreeMap;

use potok_metadata::{BrokerId, MetadataRecord};
use potok_protocol::messages::internal::{
    config_record::ConfigRecord, partition_record::PartitionRecord, topic_record::TopicRecord,
};
use potok_protocol::Uuid;

/// The largest payload Potok 0.1 wrote; a larger length is a torn or corrupt frame.
const MAX_RECORD_BYTES: usize = 1 << 20;

/// `ConfigRecord.resource_type` of a topic (Kafka's `ConfigResource.Type.TOPIC`).
const TOPIC_RESOURCE: i8 = 2;

/// One record of format 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum V0Record {
    TopicCreated {
        id: Uuid,
        name: String,
        partitions: i32,
        configs: BTreeMap<String, String>,
    },
    PartitionsIncreased {
        id: Uuid,
        total: i32,
    },
    TopicConfigSet {
        id: Uuid,
        name: String,
        value: Option<String>,
    },
    TopicDeleted {
        id: Uuid,
    },
}

/// Why a payload with a valid CRC could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// The record format version byte is not 0.
    Version(u8),
    /// Version 0, but the fields do not decode.
    Malformed,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn uuid(&mut self) -> Option<Uuid> {
        let mut u = [0u8; 16];
        u.copy_from_slice(self.take(16)?);
        Some(Uuid(u))
    }
    fn string(&mut self) -> Option<String> {
        let n = usize::from(self.u16()?);
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes one payload (never panics).
pub(crate) fn decode(payload: &[u8]) -> Result<V0Record, Unreadable> {
    let mut r = Reader(payload);
    let version = r.u8().ok_or(Unreadable::Malformed)?;
    if version != 0 {
        return Err(Unreadable::Version(version));
    }
    let fields = |r: &mut Reader<'_>| -> Option<V0Record> {
        let rec = match r.u8()? {
            1 => {
                let id = r.uuid()?;
                let name = r.string()?;
                let partitions = r.i32()?;
                let n = r.u16()?;
                let mut configs = BTreeMap::new();
                for _ in 0..n {
                    let k = r.string()?;
                    let v = r.string()?;
                    configs.insert(k, v);
                }
                V0Record::TopicCreated {
                    id,
                    name,
                    partitions,
                    configs,
                }
            }
            2 => V0Record::PartitionsIncreased {
                id: r.uuid()?,
                total: r.i32()?,
            },
            3 => {
                let id = r.uuid()?;
                let name = r.string()?;
                let value = match r.u8()? {
                    0 => None,
                    1 => Some(r.string()?),
                    _ => return None,
                };
                V0Record::TopicConfigSet { id, name, value }
            }
            4 => V0Record::TopicDeleted { id: r.uuid()? },
            _ => return None,
        };
        r.0.is_empty().then_some(rec)
    };
    fields(&mut r).ok_or(Unreadable::Malformed)
}

/// The records of a format-0 log, in order, up to its torn tail (if any). A frame with a valid
/// CRC that does not decode is an error naming its byte position.
pub(crate) fn read(data: &[u8]) -> Result<Vec<V0Record>, String> {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while let Some(head) = data.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_RECORD_BYTES {
            break;
        }
        let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        match decode(payload) {
            Ok(r) => records.push(r),
            Err(Unreadable::Version(v)) => {
                return Err(format!(
                    "the record at byte {pos} has record format version {v}; this Potok reads \
                     version 0 (Potok 0.1) only"
                ))
            }
            Err(Unreadable::Malformed) => {
                return Err(format!(
                    "the record at byte {pos} has a valid checksum but cannot be decoded"
                ))
            }
        }
        pos += 8 + len;
    }
    Ok(records)
}

/// One topic as Potok 0.1's replay left it.
struct V0Topic {
    name: String,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Replays format-0 records exactly as Potok 0.1 did (records about unknown topics are
/// ignored, a partition count only grows) and returns Kafka's records that create the same
/// state: per topic (by name), a `TopicRecord`, a `ConfigRecord` per override and a
/// `PartitionRecord` per partition led by `node` at leader epoch 0 (the epoch Potok 0.1
/// stamped into every batch), which is what Kafka's controller writes for a new topic.
pub(crate) fn convert(records: Vec<V0Record>, node: BrokerId) -> Vec<MetadataRecord> {
    let mut topics: BTreeMap<Uuid, V0Topic> = BTreeMap::new();
    for r in records {
        match r {
            V0Record::TopicCreated {
                id,
                name,
                partitions,
                configs,
            } => {
                topics.insert(
                    id,
                    V0Topic {
                        name,
                        partitions,
                        configs,
                    },
                );
            }
            V0Record::PartitionsIncreased { id, total } => {
                if let Some(t) = topics.get_mut(&id) {
                    t.partitions = t.partitions.max(total);
                }
            }
            V0Record::TopicConfigSet { id, name, value } => {
                if let Some(t) = topics.get_mut(&id) {
                    match value {
                        Some(v) => t.configs.insert(name, v),
                        None => t.configs.remove(&name),
                    };
                }
            }
            V0Record::TopicDeleted { id } => {
                topics.remove(&id);
            }
        }
    }
    let mut sorted: Vec<(Uuid, V0Topic)> = topics.into_iter().collect();
    sorted.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    let mut out = Vec::new();
    for (id, t) in sorted {
        out.push(MetadataRecord::Topic(TopicRecord {
            name: t.name.clone(),
            topic_id: id,
            ..Default::default()
        }));
        for (k, v) in t.configs {
            out.push(MetadataRecord::Config(ConfigRecord {
                resource_type: TOPIC_RESOURCE,
                resource_name: t.name.clone(),
                name: k,
                value: Some(v),
                ..Default::default()
            }));
        }
        out.extend((0..t.partitions).map(|p| partition_record(id, p, node)));
    }
    out
}

/// The `PartitionRecord` of a new partition on this single node: `node` is the only replica,
/// in sync and leader, at leader and partition epoch 0.
pub(crate) fn partition_record(topic: Uuid, partition: i32, node: BrokerId) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: partition,
        topic_id: topic,
        replicas: vec![node.0],
        isr: vec![node.0],
        leader: node.0,
        leader_epoch: 0,
        partition_epoch: 0,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use potok_metadata::MetadataImage;

    /// Encodes a format-0 payload as Potok 0.1 did, for the tests only.
    fn encode(r: &V0Record) -> Vec<u8> {
        fn s(out: &mut Vec<u8>, v: &str) {
            out.extend_from_slice(&(v.len() as u16).to_be_bytes());
            out.extend_from_slice(v.as_bytes());
        }
        let mut out = vec![0u8];
        match r {
            V0Record::TopicCreated {
                id,
                name,
                partitions,
                configs,
            } => {
                out.push(1);
                out.extend_from_slice(&id.0);
                s(&mut out, name);
                out.extend_from_slice(&partitions.to_be_bytes());
                out.extend_from_slice(&(configs.len() as u16).to_be_bytes());
                for (k, v) in configs {
                    s(&mut out, k);
                    s(&mut out, v);
                }
            }
            V0Record::PartitionsIncreased { id, total } => {
                out.push(2);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&total.to_be_bytes());
            }
            V0Record::TopicConfigSet { id, name, value } => {
                out.push(3);
                out.extend_from_slice(&id.0);
                s(&mut out, name);
                match value {
                    Some(v) => {
                        out.push(1);
                        s(&mut out, v);
                    }
                    None => out.push(0),
                }
            }
            V0Record::TopicDeleted { id } => {
                out.push(4);
                out.extend_from_slice(&id.0);
            }
        }
        out
    }

    pub(crate) fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn sample() -> Vec<V0Record> {
        let a = Uuid([7; 16]);
        let b = Uuid([8; 16]);
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        vec![
            V0Record::TopicCreated {
                id: a,
                name: "a".into(),
                partitions: 2,
                configs,
            },
            V0Record::TopicCreated {
                id: b,
                name: "b".into(),
                partitions: 1,
                configs: BTreeMap::new(),
            },
            V0Record::PartitionsIncreased { id: a, total: 3 },
            V0Record::PartitionsIncreased { id: a, total: 2 },
            V0Record::TopicConfigSet {
                id: a,
                name: "segment.bytes".into(),
                value: Some("2000000".into()),
            },
            V0Record::TopicConfigSet {
                id: a,
                name: "retention.ms".into(),
                value: None,
            },
            V0Record::TopicDeleted { id: b },
            // About a deleted topic: ignored, as Potok 0.1 ignored it.
            V0Record::PartitionsIncreased { id: b, total: 9 },
        ]
    }

    #[test]
    fn conversion_gives_the_state_potok_0_1_replayed() {
        let bytes: Vec<u8> = sample().iter().flat_map(|r| frame(&encode(r))).collect();
        let read = read(&bytes).unwrap();
        assert_eq!(read, sample());
        let image = MetadataImage::replay(&convert(read, BrokerId(5))).unwrap();
        let a = image.topic_by_name("a").unwrap();
        assert_eq!(a.id, Uuid([7; 16]));
        assert_eq!(a.partitions.len(), 3);
        for p in a.partitions.values() {
            assert_eq!(p.leader, Some(BrokerId(5)));
            assert_eq!(p.replicas, vec![BrokerId(5)]);
            assert_eq!(p.isr, vec![BrokerId(5)]);
            assert_eq!(p.leader_epoch.0, 0);
        }
        let mut want = BTreeMap::new();
        want.insert("segment.bytes".to_string(), "2000000".to_string());
        assert_eq!(image.topic_configs("a"), want);
        assert!(image.topic_by_name("b").is_none());
        assert_eq!(image.topics().count(), 1);
    }

    /// Crash windows of the migration: the new log renamed into place but no version file
    /// yet (the migration runs again from the untouched format-0 log), and the version file
    /// written but the format-0 log not yet moved aside (the guard finishes the job).
    #[test]
    fn an_interrupted_migration_is_finished_on_the_next_start() {
        use crate::metadata_log::{format, MetadataLog, LOG_FILE, METADATA_DIR};
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join(METADATA_DIR);
        std::fs::create_dir_all(&meta).unwrap();
        let old: Vec<u8> = sample().iter().flat_map(|r| frame(&encode(r))).collect();
        std::fs::write(meta.join("metadata.log"), &old).unwrap();
        // A half-written leftover of an earlier attempt, never made current.
        std::fs::write(meta.join(LOG_FILE), b"garbage from a crashed migration").unwrap();
        std::fs::write(meta.join(format!("{LOG_FILE}.tmp")), b"partial").unwrap();
        let (_, recs) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert_eq!(recs, convert(sample(), BrokerId(1)));
        assert_eq!(
            format::read_version(&meta).unwrap(),
            Some(format::CURRENT_FORMAT)
        );
        assert_eq!(std::fs::read(meta.join("metadata.log.v0")).unwrap(), old);
        assert!(meta.join("metadata.log").is_dir());
        // The version file is there but the old log is back in its place.
        std::fs::remove_dir_all(meta.join("metadata.log")).unwrap();
        std::fs::rename(meta.join("metadata.log.v0"), meta.join("metadata.log")).unwrap();
        let (_, again) = MetadataLog::open(dir.path(), BrokerId(1)).unwrap();
        assert_eq!(again, recs);
        assert!(meta.join("metadata.log").is_dir());
        assert_eq!(std::fs::read(meta.join("metadata.log.v0")).unwrap(), old);
    }

    #[test]
    fn torn_tails_end_the_log_and_foreign_frames_are_refused() {
        let bytes: Vec<u8> = sample().iter().flat_map(|r| frame(&encode(r))).collect();
        // Every prefix reads as a prefix of the records, never panics.
        for cut in 0..bytes.len() {
            let got = read(&bytes[..cut]).unwrap();
            assert!(sample().starts_with(&got));
        }
        // A flipped payload byte fails the CRC: the log ends before that record.
        let mut bad = bytes.clone();
        bad[12] ^= 0xff;
        assert!(read(&bad).unwrap().is_empty());
        // A whole frame of an unknown record format version is refused with its version.
        let mut foreign = frame(&encode(&sample()[0]));
        foreign.extend(frame(&[9, 1, 2, 3]));
        let e = read(&foreign).unwrap_err();
        assert!(e.contains("record format version 9"), "{e}");
        let e = read(&frame(&[0, 77])).unwrap_err();
        assert!(e.contains("cannot be decoded"), "{e}");
    }
}
