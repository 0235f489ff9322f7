//! Producer id allocation for InitProducerId (KIP-98): ids unique across restarts of the
//! broker, handed out from durably reserved blocks.
//!
//! This module is the single node's allocator; in a cluster, [`cluster`] takes blocks from the
//! active controller instead ([`ProducerIds`] is either).
//!
//! Kafka's controller hands brokers blocks of 1000 ids (`AllocateProducerIds`, KIP-730) and
//! records each block in the metadata log before it is used. Potok does the same on one node:
//! before the first id of a new block is returned, the end of that block is written to
//! `{log.dirs}/__potok_metadata/producer-id-block` and fsynced. After a restart (clean or
//! not) allocation continues at the recorded end, so an id is never issued twice; at most one
//! block's worth of ids is skipped per restart. When the metadata moves to a replicated log this
//! becomes a metadata record with the same meaning.
//!
//! # File format
//!
//! ASCII text like the log's checkpoint files: a version line `0`, then the first id not yet
//! reserved, in decimal, each line ending in `\n` (e.g. `"0\n2000\n"`). Replaced atomically
//! (written to `producer-id-block.tmp`, fsynced, renamed, directory fsynced). A missing file
//! means 0; an unreadable one fails the start rather than risking reissued ids.
//!
//! Thread-safety: one `std::sync::Mutex` guards the allocation state; it is a leaf lock (nothing
//! else is locked while it is held) and is held across the block file's fsync, once per
//! [`BLOCK_SIZE`] ids, never across an `.await`.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{BrokerError, Result};
use crate::metadata_log::METADATA_DIR;

pub mod cluster;

/// The broker's producer-id allocator: the node's own block file on a single node, the
/// controller's blocks in a cluster.
#[derive(Debug)]
pub enum ProducerIds {
    /// A single node (no quorum).
    Local(ProducerIdManager),
    /// A member of a controller quorum.
    Cluster(std::sync::Arc<cluster::ClusterProducerIds>),
}

/// Ids reserved per durable write (Kafka's `ProducerIdsBlock` size).
pub const BLOCK_SIZE: i64 = 1000;

/// The block file's name inside the metadata directory.
pub const BLOCK_FILE: &str = "producer-id-block";

#[derive(Debug)]
struct State {
    /// The next id to hand out.
    next: i64,
    /// The first id not covered by the durable reservation.
    reserved_end: i64,
}

/// Allocates producer ids. See the module docs.
#[derive(Debug)]
pub struct ProducerIdManager {
    path: PathBuf,
    state: Mutex<State>,
}

fn corrupt(path: &Path, reason: &str) -> BrokerError {
    BrokerError::CorruptMetadata {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl ProducerIdManager {
    /// Opens the allocator under `data_dir` (`log.dirs`).
    pub fn open(data_dir: &Path) -> Result<ProducerIdManager> {
        let dir = data_dir.join(METADATA_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| BrokerError::io(&dir, e))?;
        let path = dir.join(BLOCK_FILE);
        let start = match std::fs::read(&path) {
            Ok(bytes) => {
                if bytes.len() > 64 {
                    return Err(corrupt(&path, "file too large"));
                }
                let text = std::str::from_utf8(&bytes).map_err(|_| corrupt(&path, "not UTF-8"))?;
                let mut lines = text.lines();
                if lines.next() != Some("0") {
                    return Err(corrupt(&path, "unknown version"));
                }
                let v: i64 = lines
                    .next()
                    .and_then(|l| l.parse().ok())
                    .ok_or_else(|| corrupt(&path, "missing or malformed id"))?;
                if v < 0 || lines.next().is_some() {
                    return Err(corrupt(&path, "negative id or trailing data"));
                }
                v
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(BrokerError::io(&path, e)),
        };
        Ok(ProducerIdManager {
            path,
            state: Mutex::new(State {
                next: start,
                reserved_end: start,
            }),
        })
    }

    fn persist(&self, reserved_end: i64) -> Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(format!("0\n{reserved_end}\n").as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &self.path)?;
            File::open(dir)?.sync_all()
        };
        write().map_err(|e| BrokerError::io(&self.path, e))
    }

    /// A new producer id, durably never to be issued again.
    pub fn next_id(&self) -> Result<i64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.next >= s.reserved_end {
            let end = s
                .next
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| BrokerError::Config("producer ids exhausted".into()))?;
            self.persist(end)?;
            s.reserved_end = end;
        }
        let id = s.next;
        s.next += 1;
        Ok(id)
    }

    /// Whether `id` was issued by this broker (in this or an earlier run): every issued id is
    /// below the next one, and every id below it was reserved by this broker.
    pub fn was_issued(&self, id: i64) -> bool {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        id >= 0 && id < s.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let a: Vec<i64> = (0..5).map(|_| m.next_id().unwrap()).collect();
        assert_eq!(a, vec![0, 1, 2, 3, 4]);
        assert!(m.was_issued(4) && !m.was_issued(5) && !m.was_issued(-1));
        drop(m); // a crash: nothing else is written
        let m = ProducerIdManager::open(dir.path()).unwrap();
        let b = m.next_id().unwrap();
        assert_eq!(b, BLOCK_SIZE, "continues after the reserved block");
        assert!(m.was_issued(3), "ids of earlier runs count as issued");
        for _ in 0..BLOCK_SIZE {
            m.next_id().unwrap();
        }
        drop(m);
        let m = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(m.next_id().unwrap(), 3 * BLOCK_SIZE);
    }

    #[test]
    fn a_corrupt_block_file_fails_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join(METADATA_DIR);
        std::fs::create_dir_all(&meta).unwrap();
        for bad in ["", "0\n", "1\n5\n", "0\n-3\n", "0\nx\n", "0\n5\n6\n"] {
            std::fs::write(meta.join(BLOCK_FILE), bad).unwrap();
            assert!(ProducerIdManager::open(dir.path()).is_err(), "{bad:?}");
        }
    }
}
