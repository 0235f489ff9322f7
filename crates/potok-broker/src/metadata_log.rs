//! The durable cluster metadata: an append-only log of [`MetadataRecord`]s, replayed at start.
//!
//! Every change to topics (creation, deletion, partition increase, config change) is one
//! record appended and fsynced before the change is applied in memory or acknowledged. The
//! in-memory state is always `replay(records)`, so a Raft quorum can later replicate exactly
//! these records (as KRaft replicates `__cluster_metadata`) and every node derives the same
//! state. Records carry topic ids, never array positions, so replay does not depend on order
//! other than the log's.
//!
//! # File format (`{log.dirs}/__potok_metadata/metadata.log`)
//!
//! A sequence of frames, each
//!
//! ```text
//! u32 BE  payload length n (1..=MAX_RECORD_BYTES)
//! u32 BE  CRC-32C (Castagnoli) of the payload
//! n bytes payload: u8 format version (0), u8 record type, fields (below)
//! ```
//!
//! Fields: `uuid` = 16 bytes; `str` = u16 BE length + UTF-8; `i32` BE; `opt str` = u8 0/1 then
//! `str`; `configs` = u16 BE count then (`str` name, `str` value) pairs.
//!
//! | type | record | fields |
//! |---|---|---|
//! | 1 | TopicCreated | uuid id, str name, i32 partitions, configs |
//! | 2 | PartitionsIncreased | uuid id, i32 new total count |
//! | 3 | TopicConfigSet | uuid id, str name, opt str value (absent = remove override) |
//! | 4 | TopicDeleted | uuid id |
//!
//! A torn or corrupt tail (short frame, bad CRC, undecodable payload) ends replay: it is
//! truncated away with a warning, because a record is acknowledged only after its fsync, so a
//! torn record was never acknowledged.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use potok_protocol::Uuid;

use crate::error::{BrokerError, Result};

/// The largest payload a metadata record may have (a topic with many long config values still
/// fits easily); larger lengths on disk are treated as corruption, not allocated.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// The name of the metadata directory under `log.dirs`. It cannot clash with a partition
/// directory, which always ends in `-{partition}`.
pub const METADATA_DIR: &str = "__potok_metadata";

const FORMAT_VERSION: u8 = 0;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A topic was created.
    TopicCreated {
        /// Its id.
        id: Uuid,
        /// Its name.
        name: String,
        /// Its partition count.
        partitions: i32,
        /// Its config overrides.
        configs: BTreeMap<String, String>,
    },
    /// A topic's partition count grew to `total`.
    PartitionsIncreased {
        /// The topic.
        id: Uuid,
        /// The new partition count.
        total: i32,
    },
    /// A topic config override was set (`Some`) or removed (`None`).
    TopicConfigSet {
        /// The topic.
        id: Uuid,
        /// The config name.
        name: String,
        /// The new value.
        value: Option<String>,
    },
    /// A topic was deleted.
    TopicDeleted {
        /// The topic.
        id: Uuid,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<()> {
    let len = u16::try_from(s.len()).map_err(|_| {
        BrokerError::Config(format!("metadata string of {} bytes is too long", s.len()))
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl MetadataRecord {
    /// Encodes the payload (without the frame).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = vec![FORMAT_VERSION];
        match self {
            MetadataRecord::TopicCreated {
                id,
                name,
                partitions,
                configs,
            } => {
                out.push(1);
                out.extend_from_slice(&id.0);
                put_str(&mut out, name)?;
                out.extend_from_slice(&partitions.to_be_bytes());
                let n = u16::try_from(configs.len())
                    .map_err(|_| BrokerError::Config("too many topic configs".into()))?;
                out.extend_from_slice(&n.to_be_bytes());
                for (k, v) in configs {
                    put_str(&mut out, k)?;
                    put_str(&mut out, v)?;
                }
            }
            MetadataRecord::PartitionsIncreased { id, total } => {
                out.push(2);
                out.extend_from_slice(&id.0);
                out.extend_from_slice(&total.to_be_bytes());
            }
            MetadataRecord::TopicConfigSet { id, name, value } => {
                out.push(3);
                out.extend_from_slice(&id.0);
                put_str(&mut out, name)?;
                match value {
                    Some(v) => {
                        out.push(1);
                        put_str(&mut out, v)?;
                    }
                    None => out.push(0),
                }
            }
            MetadataRecord::TopicDeleted { id } => {
                out.push(4);
                out.extend_from_slice(&id.0);
            }
        }
        Ok(out)
    }

    /// Decodes a payload; `None` when it is malformed (never panics).
    pub fn decode(mut p: &[u8]) -> Option<MetadataRecord> {
        fn take<'a>(p: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if p.len() < n {
                return None;
            }
            let (a, b) = p.split_at(n);
            *p = b;
            Some(a)
        }
        fn uuid(p: &mut &[u8]) -> Option<Uuid> {
            let mut u = [0u8; 16];
            u.copy_from_slice(take(p, 16)?);
            Some(Uuid(u))
        }
        fn i32_(p: &mut &[u8]) -> Option<i32> {
            let b = take(p, 4)?;
            Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn u16_(p: &mut &[u8]) -> Option<u16> {
            let b = take(p, 2)?;
            Some(u16::from_be_bytes([b[0], b[1]]))
        }
        fn string(p: &mut &[u8]) -> Option<String> {
            let n = u16_(p)? as usize;
            String::from_utf8(take(p, n)?.to_vec()).ok()
        }
        let p = &mut p;
        if *take(p, 1)?.first()? != FORMAT_VERSION {
            return None;
        }
        let rec = match *take(p, 1)?.first()? {
            1 => {
                let id = uuid(p)?;
                let name = string(p)?;
                let partitions = i32_(p)?;
                let n = u16_(p)?;
                let mut configs = BTreeMap::new();
                for _ in 0..n {
                    let k = string(p)?;
                    let v = string(p)?;
                    configs.insert(k, v);
                }
                MetadataRecord::TopicCreated {
                    id,
                    name,
                    partitions,
                    configs,
                }
            }
            2 => MetadataRecord::PartitionsIncreased {
                id: uuid(p)?,
                total: i32_(p)?,
            },
            3 => {
                let id = uuid(p)?;
                let name = string(p)?;
                let value = match *take(p, 1)?.first()? {
                    0 => None,
                    1 => Some(string(p)?),
                    _ => return None,
                };
                MetadataRecord::TopicConfigSet { id, name, value }
            }
            4 => MetadataRecord::TopicDeleted { id: uuid(p)? },
            _ => return None,
        };
        p.is_empty().then_some(rec)
    }
}

/// The append-only metadata log file. Not thread-safe by itself: the broker serialises every
/// metadata change through one `Mutex` around it (see `TopicManager`).
#[derive(Debug)]
pub struct MetadataLog {
    path: PathBuf,
    file: File,
}

impl MetadataLog {
    /// Opens (creating) the log under `data_dir`, returning it with every valid record in
    /// order. A corrupt or torn tail is truncated with a warning.
    pub fn open(data_dir: &Path) -> Result<(MetadataLog, Vec<MetadataRecord>)> {
        let dir = data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io(&dir, e))?;
        let path = dir.join("metadata.log");
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| BrokerError::io(&path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(|e| BrokerError::io(&path, e))?;
        let mut records = Vec::new();
        let mut pos = 0usize;
        let good_end = loop {
            let Some(head) = data.get(pos..pos + 8) else {
                break pos;
            };
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let crc = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if len == 0 || len > MAX_RECORD_BYTES {
                break pos;
            }
            let Some(payload) = data.get(pos + 8..pos + 8 + len) else {
                break pos;
            };
            if crc32c::crc32c(payload) != crc {
                break pos;
            }
            let Some(rec) = MetadataRecord::decode(payload) else {
                break pos;
            };
            records.push(rec);
            pos += 8 + len;
        };
        if good_end < data.len() {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = good_end,
                dropped_bytes = data.len() - good_end,
                "metadata log has a torn or corrupt tail; truncating it (it was never acknowledged)"
            );
            file.set_len(good_end as u64)
                .and_then(|_| file.sync_all())
                .map_err(|e| BrokerError::io(&path, e))?;
        }
        Ok((MetadataLog { path, file }, records))
    }

    /// Appends `rec` and fsyncs it; the change may be applied once this returns.
    pub fn append(&mut self, rec: &MetadataRecord) -> Result<()> {
        let payload = rec.encode()?;
        if payload.len() > MAX_RECORD_BYTES {
            return Err(BrokerError::Config(format!(
                "metadata record of {} bytes exceeds {MAX_RECORD_BYTES}",
                payload.len()
            )));
        }
        let mut frame = Vec::with_capacity(payload.len() + 8);
        frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
        frame.extend_from_slice(&payload);
        self.file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| BrokerError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<MetadataRecord> {
        let id = Uuid([7; 16]);
        let mut configs = BTreeMap::new();
        configs.insert("retention.ms".to_string(), "1000".to_string());
        vec![
            MetadataRecord::TopicCreated {
                id,
                name: "t".into(),
                partitions: 3,
                configs,
            },
            MetadataRecord::PartitionsIncreased { id, total: 5 },
            MetadataRecord::TopicConfigSet {
                id,
                name: "segment.bytes".into(),
                value: Some("1024".into()),
            },
            MetadataRecord::TopicConfigSet {
                id,
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::TopicDeleted { id },
        ]
    }

    #[test]
    fn records_survive_reopen_and_torn_tails_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, recs) = MetadataLog::open(dir.path()).unwrap();
        assert!(recs.is_empty());
        for r in sample() {
            log.append(&r).unwrap();
        }
        drop(log);
        let (_, recs) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(recs, sample());
        // Every proper prefix of the file replays to a prefix of the records, never panics.
        let path = dir.path().join(METADATA_DIR).join("metadata.log");
        let full = std::fs::read(&path).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, recs) = MetadataLog::open(dir.path()).unwrap();
            assert!(sample().starts_with(&recs));
            assert!(std::fs::metadata(&path).unwrap().len() <= cut as u64);
        }
        // A flipped byte drops the damaged record and everything after it.
        let mut bad = full.clone();
        bad[12] ^= 0xff;
        std::fs::write(&path, &bad).unwrap();
        let (_, recs) = MetadataLog::open(dir.path()).unwrap();
        assert!(recs.is_empty());
    }
}
