//! The durable Raft storage of a voter: everything `potok_controller::quorum::Output::Persist`
//! asks for (log entries, the hard state of term, vote and commit, snapshots), appended to
//! one file and fsynced before the driver acts on any later output (Raft's rule: a vote or
//! an append acknowledgement is sent only once what it promises is on disk).
//!
//! # File format (`{log.dirs}/__potok_metadata/quorum/raft.log`)
//!
//! A sequence of frames, one per `Persist`:
//!
//! ```text
//! u32 BE  payload length n (1..=MAX_FRAME_BYTES)
//! u32 BE  CRC-32C (Castagnoli) of the payload
//! n bytes payload:
//!   u8      flags: bit 0 a snapshot follows, bit 1 a hard state follows
//!   [u32 BE length, raft-rs Snapshot protobuf]     if bit 0
//!   [u32 BE length, raft-rs HardState protobuf]    if bit 1
//!   u32 BE  entry count, then per entry u32 BE length, raft-rs Entry protobuf
//! ```
//!
//! Replay applies the frames in order to a `MemStorage`: a snapshot replaces the log below
//! it, entries overwrite the stored suffix from their first index (a new leader's log wins),
//! the last hard state wins. A torn or corrupt tail (short frame, bad length, bad CRC) is
//! truncated with a warning: a frame is acted on only after its fsync, so nothing after a torn
//! frame was ever promised. A whole frame whose contents contradict the log (entries that do
//! not continue it, a commit beyond the last entry) refuses the start rather than panic
//! inside raft-rs. The file is never compacted yet (no snapshots are taken).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use potok_controller::quorum::codec;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::storage::MemStorage;
use raft::{GetEntriesContext, Storage};

use crate::error::{BrokerError, Result};

pub use crate::frames::MAX_FRAME_BYTES;

/// The file's name under the quorum directory.
pub const FILE: &str = "raft.log";

/// The append-only Raft file of one voter. Used by the driver thread only.
#[derive(Debug)]
pub struct RaftStore {
    path: PathBuf,
    file: File,
}

fn corrupt(path: &Path, reason: String) -> BrokerError {
    BrokerError::CorruptMetadata {
        path: path.to_path_buf(),
        reason,
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Encodes one `Persist` as a frame.
pub fn encode_frame(
    snapshot: Option<&Snapshot>,
    entries: &[Entry],
    hard_state: Option<&HardState>,
) -> Result<Vec<u8>> {
    let enc = |e: potok_controller::ControllerError| BrokerError::Config(e.to_string());
    let mut payload = vec![u8::from(snapshot.is_some()) | (u8::from(hard_state.is_some()) << 1)];
    if let Some(s) = snapshot {
        put_bytes(&mut payload, &codec::encode(s).map_err(enc)?);
    }
    if let Some(h) = hard_state {
        put_bytes(&mut payload, &codec::encode(h).map_err(enc)?);
    }
    payload.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        put_bytes(&mut payload, &codec::encode(e).map_err(enc)?);
    }
    crate::frames::frame(&payload, "a raft write")
}

/// One decoded frame.
#[derive(Debug, Default, PartialEq)]
pub struct Frame {
    /// A snapshot, if the frame carries one.
    pub snapshot: Option<Snapshot>,
    /// A hard state, if the frame carries one.
    pub hard_state: Option<HardState>,
    /// Entries in index order.
    pub entries: Vec<Entry>,
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u32(&mut self) -> std::result::Result<u32, String> {
        let s = self
            .b
            .get(self.pos..self.pos + 4)
            .ok_or("truncated length")?;
        self.pos += 4;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn bytes(&mut self) -> std::result::Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| format!("{n} bytes do not fit the frame"))?;
        self.pos += n;
        Ok(s)
    }
}

/// Decodes a frame payload whose CRC matched.
pub fn decode_payload(payload: &[u8]) -> std::result::Result<Frame, String> {
    let flags = *payload.first().ok_or("empty payload")?;
    if flags > 3 {
        return Err(format!("unknown flags {flags:#x}"));
    }
    let mut r = Reader { b: payload, pos: 1 };
    let mut f = Frame::default();
    if flags & 1 != 0 {
        f.snapshot = Some(codec::decode_snapshot(r.bytes()?).map_err(|e| e.to_string())?);
    }
    if flags & 2 != 0 {
        f.hard_state = Some(codec::decode_hard_state(r.bytes()?).map_err(|e| e.to_string())?);
    }
    let count = r.u32()? as usize;
    // Every entry takes at least its 4-byte length: a larger count is corruption.
    if count > payload.len() / 4 {
        return Err(format!("entry count {count} does not fit the frame"));
    }
    for _ in 0..count {
        f.entries
            .push(codec::decode_entry(r.bytes()?).map_err(|e| e.to_string())?);
    }
    if r.pos != payload.len() {
        return Err(format!(
            "{} bytes after the last entry",
            payload.len() - r.pos
        ));
    }
    Ok(f)
}

/// The frames of a file's bytes and the length of its valid prefix (the rest is a torn tail).
pub fn parse(data: &[u8], path: &Path) -> Result<(Vec<Frame>, usize)> {
    crate::frames::parse(data, |pos, p| decode_frame(path, pos, p))
}

/// The whole frame at byte `pos` of `path`, whose checksum matched.
fn decode_frame(path: &Path, pos: usize, payload: &[u8]) -> Result<Frame> {
    decode_payload(payload).map_err(|reason| {
        corrupt(
            path,
            format!(
                "the raft frame at byte {pos} has a valid checksum but cannot be read ({reason})"
            ),
        )
    })
}

/// Applies decoded frames to a fresh `MemStorage` of `voters`, checking everything raft-rs
/// would otherwise panic on.
pub fn replay(frames: Vec<Frame>, voters: &[u64], path: &Path) -> Result<MemStorage> {
    let store = MemStorage::new_with_conf_state(ConfState::from((voters.to_vec(), vec![])));
    for (i, f) in frames.into_iter().enumerate() {
        let bad = |why: String| corrupt(path, format!("raft frame {i}: {why}"));
        if let Some(s) = f.snapshot {
            store
                .wl()
                .apply_snapshot(s)
                .map_err(|e| bad(format!("snapshot refused: {e}")))?;
        }
        if let Some(first) = f.entries.first() {
            let (lo, hi) = (
                store.first_index().unwrap_or(1),
                store.last_index().unwrap_or(0),
            );
            let contiguous = f.entries.windows(2).all(|w| w[1].index == w[0].index + 1);
            if first.index < lo || first.index > hi + 1 || !contiguous {
                return Err(bad(format!(
                    "entries from index {} do not continue the log [{lo}, {hi}]",
                    first.index
                )));
            }
            store
                .wl()
                .append(&f.entries)
                .map_err(|e| bad(format!("entries refused: {e}")))?;
        }
        if let Some(hs) = f.hard_state {
            store.wl().set_hardstate(hs);
        }
    }
    let last = store.last_index().unwrap_or(0);
    let hs = store.rl().hard_state().clone();
    if hs.commit > last {
        return Err(corrupt(
            path,
            format!("commit index {} beyond the last entry {last}", hs.commit),
        ));
    }
    Ok(store)
}

/// The committed entries of `store` (first index to the stored commit), for the state machine
/// to rebuild itself at start.
pub fn committed_entries(store: &MemStorage) -> Result<Vec<Entry>> {
    let first = store.first_index().unwrap_or(1);
    let commit = store.rl().hard_state().commit;
    if commit < first {
        return Ok(Vec::new());
    }
    store
        .entries(first, commit + 1, None, GetEntriesContext::empty(false))
        .map_err(|e| BrokerError::Config(format!("reading the raft log: {e}")))
}

impl RaftStore {
    /// Opens (or creates) the file in `dir` and replays it for `voters`. A torn tail is
    /// truncated with a warning.
    pub fn open(dir: &Path, voters: &[u64]) -> Result<(RaftStore, MemStorage)> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::io(dir, e))?;
        let path = dir.join(FILE);
        let (file, frames, was_empty) = crate::frames::open(&path, true, "raft log", |pos, p| {
            decode_frame(&path, pos, p)
        })?;
        // The directory entry of a new file must survive a crash too.
        if was_empty {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| BrokerError::io(dir, e))?;
        }
        let store = replay(frames, voters, &path)?;
        Ok((RaftStore { path, file }, store))
    }

    /// Appends one `Persist` as one frame with one write and one fsync.
    pub fn persist(
        &mut self,
        snapshot: Option<&Snapshot>,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<()> {
        let frame = encode_frame(snapshot, entries, hard_state)?;
        self.file
            .write_all(&frame)
            .and_then(|_| self.file.sync_data())
            .map_err(|e| BrokerError::io(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
        Entry {
            index,
            term,
            data: data.to_vec().into(),
            ..Default::default()
        }
    }

    fn hs(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..Default::default()
        }
    }

    /// The writes of a voter that is overwritten by a new leader: entries 1-3 in term 1, then
    /// 3-4 in term 2 replace the old 3.
    fn writes() -> Vec<(Vec<Entry>, Option<HardState>)> {
        vec![
            (vec![], Some(hs(1, 1, 0))),
            (vec![entry(1, 1, b""), entry(2, 1, b"a")], None),
            (vec![entry(3, 1, b"b")], Some(hs(1, 1, 2))),
            (
                vec![entry(3, 2, b"c"), entry(4, 2, b"d")],
                Some(hs(2, 2, 4)),
            ),
        ]
    }

    fn state(store: &MemStorage) -> (Vec<(u64, u64, Vec<u8>)>, HardState) {
        let last = store.last_index().unwrap();
        let ents = if last == 0 {
            Vec::new()
        } else {
            store
                .entries(1, last + 1, None, GetEntriesContext::empty(false))
                .unwrap()
        };
        (
            ents.into_iter()
                .map(|e| (e.index, e.term, e.data.to_vec()))
                .collect(),
            store.rl().hard_state().clone(),
        )
    }

    #[test]
    fn writes_survive_reopen_and_every_torn_tail_is_cut_to_whole_frames() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, mem) = RaftStore::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(mem.last_index().unwrap(), 0);
        let path = dir.path().join(FILE);
        let mut ends = vec![0u64];
        // The expected state after each prefix of writes, built with raft-rs's own storage.
        let mut expected = vec![state(&mem)];
        let reference = MemStorage::new_with_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
        for (ents, h) in writes() {
            st.persist(None, &ents, h.as_ref()).unwrap();
            ends.push(std::fs::metadata(&path).unwrap().len());
            reference.wl().append(&ents).unwrap();
            if let Some(h) = h {
                reference.wl().set_hardstate(h);
            }
            expected.push(state(&reference));
        }
        drop(st);
        let (_, mem) = RaftStore::open(dir.path(), &[1, 2, 3]).unwrap();
        assert_eq!(state(&mem), *expected.last().unwrap());
        assert_eq!(
            committed_entries(&mem)
                .unwrap()
                .iter()
                .map(|e| (e.index, e.term))
                .collect::<Vec<_>>(),
            vec![(1, 1), (2, 1), (3, 2), (4, 2)]
        );
        let full = std::fs::read(&path).unwrap();
        for cut in 0..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, mem) = RaftStore::open(dir.path(), &[1, 2, 3]).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut as u64).count() - 1;
            assert_eq!(state(&mem), expected[whole], "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), ends[whole]);
        }
    }

    #[test]
    fn flipped_bytes_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (mut st, _) = RaftStore::open(dir.path(), &[1]).unwrap();
        for (ents, h) in writes() {
            st.persist(None, &ents, h.as_ref()).unwrap();
        }
        drop(st);
        let path = dir.path().join(FILE);
        let full = std::fs::read(&path).unwrap();
        // Every single-byte corruption either drops a tail or is refused with an error.
        for i in 0..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x5a;
            std::fs::write(&path, &bad).unwrap();
            let _ = RaftStore::open(dir.path(), &[1]);
        }
    }

    #[test]
    fn contradictory_frames_are_refused_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        // Entries that skip ahead of the log.
        let frame = encode_frame(None, &[entry(5, 1, b"x")], None).unwrap();
        std::fs::write(&path, &frame).unwrap();
        let e = RaftStore::open(dir.path(), &[1]).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("do not continue"), "{e}");
        // A commit beyond the last entry.
        let frame = encode_frame(None, &[entry(1, 1, b"x")], Some(&hs(1, 1, 9))).unwrap();
        std::fs::write(&path, &frame).unwrap();
        let e = RaftStore::open(dir.path(), &[1]).map(|_| ()).unwrap_err();
        assert!(e.to_string().contains("beyond the last entry"), "{e}");
        // Hostile counts and lengths inside a valid checksum.
        assert!(decode_payload(&[]).is_err());
        assert!(decode_payload(&[9]).is_err());
        assert!(decode_payload(&[0, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_payload(&[2, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_payload(&[0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
