//! Producer state snapshot files (`{offset:020}.snapshot`): encoding, decoding with full
//! validation, and the file operations the log uses on them. The byte format is in
//! `docs/format.md`, section "Producer state snapshot".

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::{Path, PathBuf};

use potok_records::{Offset, ProducerEpoch, ProducerId};

use super::{BatchMetadata, ProducerEntry, ProducerStateManager, BATCHES_PER_PRODUCER};
use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

/// Suffix of producer state snapshot files (`{offset:020}.snapshot`, as Kafka).
pub const SNAPSHOT_SUFFIX: &str = "snapshot";

/// Version 3 added each producer's coordinator epoch (KIP-98's fencing of stale transaction
/// markers) and allows entries without batches (a producer known only from its markers, or
/// whose epoch a marker bumped); version 2 added the ongoing transaction; versions 1 and 2 are
/// still read.
const SNAPSHOT_VERSION: u16 = 3;
const SNAPSHOT_VERSION_V2: u16 = 2;
const SNAPSHOT_VERSION_V1: u16 = 1;
/// version (2) + crc (4) + offset (8) + producer count (4).
pub(crate) const SNAPSHOT_HEADER_LEN: usize = 18;
/// producer id (8) + epoch (2) + last timestamp (8) + batch count (1), version 1.
const ENTRY_HEADER_LEN_V1: usize = 19;
/// Version 2 adds the first offset of the ongoing transaction (8, -1 for none).
const ENTRY_HEADER_LEN_V2: usize = 27;
/// Version 3 adds the coordinator epoch (4, -1 for none).
const ENTRY_HEADER_LEN: usize = 31;
/// first seq (4) + last seq (4) + first offset (8) + last offset (8) + timestamp (8).
const BATCH_LEN: usize = 32;
/// Refuse to read snapshot files larger than this: a partition with more producers than fit
/// here (about 100k producers with five batches each) is far beyond what Kafka supports either.
const MAX_SNAPSHOT_BYTES: u64 = 64 << 20;

impl ProducerStateManager {
    /// Encodes the state as a snapshot at `offset` (format in `docs/format.md`).
    pub(crate) fn encode_snapshot(&self, offset: i64) -> Vec<u8> {
        let body_len: usize = self
            .entries
            .values()
            .map(|e| ENTRY_HEADER_LEN + BATCH_LEN * e.batches.len())
            .sum();
        let mut out = Vec::with_capacity(SNAPSHOT_HEADER_LEN + body_len);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&offset.to_be_bytes());
        let count = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for e in self.entries.values().take(count as usize) {
            out.extend_from_slice(&e.producer_id.0.to_be_bytes());
            out.extend_from_slice(&e.epoch.0.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            let txn = e.current_txn_first_offset.map_or(-1, |o| o.0);
            out.extend_from_slice(&txn.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            // At most BATCHES_PER_PRODUCER (5), so the cast is exact.
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.first_offset.0.to_be_bytes());
                out.extend_from_slice(&b.last_offset.0.to_be_bytes());
                out.extend_from_slice(&b.timestamp.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out[6..]);
        out[2..6].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a snapshot, checking its CRC, that it is for `offset`, and that every field is
    /// in range; never panics on arbitrary bytes.
    pub(crate) fn decode_snapshot(
        buf: &[u8],
        offset: i64,
    ) -> std::result::Result<ProducerStateManager, String> {
        let mut r = Reader { buf, pos: 0 };
        let version = u16::from_be_bytes(r.array()?);
        let entry_header_len = match version {
            SNAPSHOT_VERSION => ENTRY_HEADER_LEN,
            SNAPSHOT_VERSION_V2 => ENTRY_HEADER_LEN_V2,
            SNAPSHOT_VERSION_V1 => ENTRY_HEADER_LEN_V1,
            _ => return Err(format!("unknown snapshot version {version}")),
        };
        let crc = u32::from_be_bytes(r.array()?);
        let computed = crc32c::crc32c(buf.get(6..).unwrap_or(&[]));
        if crc != computed {
            return Err(format!(
                "CRC mismatch (stored {crc:#010x}, computed {computed:#010x})"
            ));
        }
        let stored_offset = i64::from_be_bytes(r.array()?);
        if stored_offset != offset {
            return Err(format!(
                "snapshot holds offset {stored_offset}, its name says {offset}"
            ));
        }
        let count = u32::from_be_bytes(r.array()?) as usize;
        // Each entry needs at least its fixed header, so this bounds the count by the file
        // size before anything is built from it.
        if count > r.remaining() / entry_header_len {
            return Err(format!("{count} producers cannot fit in the file"));
        }
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let pid = i64::from_be_bytes(r.array()?);
            let epoch = i16::from_be_bytes(r.array()?);
            let last_timestamp = i64::from_be_bytes(r.array()?);
            let txn = if version == SNAPSHOT_VERSION_V1 {
                -1
            } else {
                i64::from_be_bytes(r.array()?)
            };
            let coordinator_epoch = if version == SNAPSHOT_VERSION {
                i32::from_be_bytes(r.array()?)
            } else {
                -1
            };
            let [n] = r.array::<1>()?;
            if pid < 0
                || epoch < 0
                || (n == 0 && version != SNAPSHOT_VERSION)
                || coordinator_epoch < -1
                || usize::from(n) > BATCHES_PER_PRODUCER
                || txn < -1
                || txn >= offset
            {
                return Err(format!(
                    "invalid producer entry (id {pid}, epoch {epoch}, {n} batches, transaction at {txn})"
                ));
            }
            let mut batches = VecDeque::with_capacity(BATCHES_PER_PRODUCER);
            let mut prev_last = -1i64;
            for _ in 0..n {
                let b = BatchMetadata {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    first_offset: Offset(i64::from_be_bytes(r.array()?)),
                    last_offset: Offset(i64::from_be_bytes(r.array()?)),
                    timestamp: i64::from_be_bytes(r.array()?),
                };
                if b.first_seq < 0
                    || b.last_seq < 0
                    || b.first_offset.0 <= prev_last
                    || b.last_offset < b.first_offset
                    || b.last_offset.0 >= offset
                {
                    return Err(format!("invalid batch entry for producer {pid}: {b:?}"));
                }
                prev_last = b.last_offset.0;
                batches.push_back(b);
            }
            let entry = ProducerEntry {
                producer_id: ProducerId(pid),
                epoch: ProducerEpoch(epoch),
                last_timestamp,
                batches,
                current_txn_first_offset: (txn >= 0).then_some(Offset(txn)),
                coordinator_epoch,
            };
            if entries.insert(pid, entry).is_some() {
                return Err(format!("producer {pid} appears twice"));
            }
        }
        if r.remaining() != 0 {
            return Err(format!("{} trailing bytes", r.remaining()));
        }
        let ongoing = entries
            .values()
            .filter_map(|e| Some((e.current_txn_first_offset?, e.producer_id.0)))
            .collect();
        Ok(ProducerStateManager { entries, ongoing })
    }
}

/// A bounds-checked big-endian reader over a snapshot.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let end = self.pos.checked_add(N).ok_or("length overflow")?;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| format!("snapshot truncated at byte {}", self.pos))?;
        let mut a = [0u8; N];
        a.copy_from_slice(bytes);
        self.pos = end;
        Ok(a)
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
}

/// The path of the snapshot at `offset`.
pub fn snapshot_file(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

/// The snapshots in `dir` as `(offset, path)`, oldest first.
pub(crate) fn list_snapshots(storage: &dyn Storage, dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for path in storage.list_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some((offset, SNAPSHOT_SUFFIX)) = crate::segment::parse_segment_file_name(name) {
            out.push((offset, path));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Writes `state` as the snapshot at `offset`: to a `.tmp` file, fsynced, renamed into place,
/// directory fsynced, so a crash leaves either no snapshot or a whole one (a torn one would
/// also be caught by the CRC).
pub(crate) fn write_snapshot(
    storage: &dyn Storage,
    dir: &Path,
    offset: i64,
    state: &ProducerStateManager,
) -> Result<()> {
    let path = snapshot_file(dir, offset);
    let bytes = state.encode_snapshot(offset);
    crate::checkpoint::replace_file(storage, dir, &path, &bytes)
}

/// Reads and decodes the snapshot at `offset`; `Ok(Err(reason))` when it is invalid.
pub(crate) fn read_snapshot(
    storage: &dyn Storage,
    path: &Path,
    offset: i64,
) -> Result<std::result::Result<ProducerStateManager, String>> {
    let file = storage
        .open(path, false)
        .map_err(|e| LogError::io(path, e))?;
    let len = file.len().map_err(|e| LogError::io(path, e))?;
    if len > MAX_SNAPSHOT_BYTES {
        return Ok(Err(format!("snapshot of {len} bytes is too large")));
    }
    let mut buf = vec![0u8; len as usize];
    match read_exact_at(&*file, &mut buf, 0) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            return Ok(Err("snapshot shrank while being read".into()))
        }
        Err(e) => return Err(LogError::io(path, e)),
    }
    Ok(ProducerStateManager::decode_snapshot(&buf, offset))
}

/// Removes a snapshot file, ignoring one that is already gone.
pub(crate) fn remove_snapshot(storage: &dyn Storage, path: &Path) -> Result<()> {
    match storage.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}
