//! The storage side of the group service: which offsets logs a data directory holds, the
//! repair of an interrupted start-up rewrite, the batches the coordinator's records are
//! written in, and the replay of a partition log into a [`Loader`].

use std::path::Path;

use bytes::Bytes;
use potok_group::{Loader, PersistRecord};
use potok_log::LogError;
use potok_records::{split_batches, NewRecord, Offset, RecordBatchBuilder};

use super::{txn, OFFSETS_TOPIC};
use crate::error::{BrokerError, Result};
use crate::topics::Partition;

/// Whether `dir` (`{log.dirs}/__consumer_offsets`) holds partition logs.
pub(super) fn has_offsets_logs(dir: &Path) -> bool {
    let prefix = format!("{OFFSETS_TOPIC}-");
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.strip_prefix(&prefix)
                .is_some_and(|p| p.parse::<u32>().is_ok())
        })
    })
}

/// Completes or rolls back every start-up rewrite of an offsets partition that a crash
/// interrupted (see the module docs). Runs before the topic manager opens the partition
/// logs, which would otherwise create an empty log where the old one was moved aside.
pub fn finish_interrupted_rewrites(data_dir: &Path) -> Result<()> {
    let dir = data_dir.join(OFFSETS_TOPIC);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(BrokerError::io(&dir, e)),
    };
    let mut pdirs = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let path = e.path();
        if matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("old" | "compacting")
        ) {
            pdirs.insert(path.with_extension(""));
        }
    }
    for pdir in pdirs {
        finish_interrupted_swap(&pdir)?;
    }
    Ok(())
}

/// Completes or rolls back a start-up rewrite interrupted by a crash (see module docs).
fn finish_interrupted_swap(pdir: &Path) -> Result<()> {
    let old = pdir.with_extension("old");
    let tmp = pdir.with_extension("compacting");
    if old.exists() {
        if pdir.exists() {
            // The new log was swapped in; only the removal of the old one was missed.
            std::fs::remove_dir_all(&old).map_err(|e| BrokerError::io(&old, e))?;
        } else {
            // The old log was moved aside but the new one not yet in place: keep the old.
            std::fs::rename(&old, pdir).map_err(|e| BrokerError::io(&old, e))?;
        }
    }
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| BrokerError::io(&tmp, e))?;
    }
    Ok(())
}

/// One batch of `records`, timestamped `now`.
pub(super) fn build_batch(
    records: &[PersistRecord],
    now: i64,
) -> std::result::Result<Bytes, LogError> {
    let mut b = RecordBatchBuilder::new();
    for r in records {
        b.push(NewRecord {
            timestamp: now,
            key: Some(r.key.clone()),
            value: r.value.clone(),
            headers: Vec::new(),
        });
    }
    let batch = b.build().map_err(LogError::InvalidBatch)?;
    Ok(batch.as_bytes().clone())
}

/// Reads a whole partition log into `loader` (up to the high watermark, which on a single
/// node is the log end).
pub(super) fn replay_into(
    part: &Partition,
    loader: &mut Loader,
) -> std::result::Result<(), String> {
    let (start, end) = part.offsets().map_err(|e| e.to_string())?;
    replay_range(start, end, loader, |from| {
        part.read(from, READ_CHUNK).map(|(slice, _, _)| slice)
    })
}

/// Reads a partition log that this broker just became the leader of into `loader`, up to its
/// log end: everything a new leader holds is what the followers will copy (they truncate what
/// differs), and the previous leader's committed records are all there since leaders come from
/// the ISR (Kafka's coordinator loader reads up to the log end offset too).
pub(super) fn replay_to_log_end(
    part: &Partition,
    loader: &mut Loader,
) -> std::result::Result<(), String> {
    let (start, end) = part.log_bounds().map_err(|e| e.to_string())?;
    replay_range(start, end, loader, |from| {
        part.read_for_follower(from, READ_CHUNK)
            .map(|(slice, _, _)| slice)
    })
}

/// How much one read of a replay takes.
const READ_CHUNK: usize = 4 * 1024 * 1024;

fn replay_range(
    mut next: Offset,
    end: Offset,
    loader: &mut Loader,
    read: impl Fn(Offset) -> std::result::Result<potok_log::ReadSlice, LogError>,
) -> std::result::Result<(), String> {
    while next < end {
        let slice = read(next).map_err(|e| e.to_string())?;
        if slice.is_empty() {
            break;
        }
        let bytes: Bytes = slice.read_bytes().map_err(|e| e.to_string())?;
        let mut progressed = false;
        for batch in split_batches(bytes) {
            let batch = batch.map_err(|e| e.to_string())?;
            let last = batch.header().last_offset();
            if last >= end {
                break;
            }
            txn::replay_batch(&batch, loader)?;
            next = Offset(last.0 + 1);
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(())
}
