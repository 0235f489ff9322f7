//! The sparse `.index` (offset → position) and `.timeindex` (timestamp → offset) files.
//!
//! Both have Kafka's layouts (see `docs/format.md`):
//!
//! * `.index`: 8-byte entries `relative_offset: u32 BE, position: u32 BE`, where
//!   `relative_offset = batch last offset - segment base offset` and `position` is the byte
//!   position of that batch in the `.log` file. Strictly increasing in both fields.
//! * `.timeindex`: 12-byte entries `timestamp: i64 BE, relative_offset: u32 BE`: the largest
//!   timestamp seen so far in the segment and the relative (last) offset of the batch that
//!   carried it. Strictly increasing in both fields.
//!
//! The active segment's entries are kept in memory and written to the file when the segment
//! stops being active or the log is closed (Kafka preallocates `segment.index.bytes` and maps
//! the file instead; with 100,000 partitions that is two mappings and two descriptors per
//! partition, beyond `vm.max_map_count` and the descriptor limit, issue #14). The in-memory
//! copy costs 20 bytes per `index.interval.bytes` (4 KiB) of active data, 0.5 % of it. No file
//! is preallocated, so a crash leaves no zero-filled tails to repair or sparse holes to keep
//! sparse; after a crash the active segment is always rebuilt from its `.log` file anyway,
//! because it lies past the recovery point. `segment.index.bytes` still limits the entries of
//! a segment (a full index rolls it, as in Kafka). A closed segment's index is mapped
//! read-only on first use and the mapping can be dropped again ([`IndexFile::unmap`]);
//! [`crate::Log`] keeps only a bounded number of them mapped. No index holds a descriptor: a
//! file is opened for a mapping or a write and closed right after.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;

use crate::storage::{read_exact_at, write_all_at, Storage};
use crate::{LogError, Result};

/// Size of an `.index` entry.
pub const OFFSET_ENTRY_SIZE: usize = 8;
/// Size of a `.timeindex` entry.
pub const TIME_ENTRY_SIZE: usize = 12;

enum Mapping {
    /// The active segment's entries, in memory; `dirty` when they differ from the file.
    Active {
        buf: Vec<u8>,
        max_entries: usize,
        dirty: bool,
    },
    /// Trimmed to its entries; mapped read-only on demand.
    Closed { cache: Mutex<Option<Arc<Mmap>>> },
}

/// One index file: its path, its valid entry count and its entries or mapping.
pub(crate) struct IndexFile {
    path: PathBuf,
    entry_size: usize,
    entries: usize,
    mapping: Mapping,
}

impl std::fmt::Debug for IndexFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexFile")
            .field("path", &self.path)
            .field("entries", &self.entries)
            .field("active", &matches!(self.mapping, Mapping::Active { .. }))
            .finish()
    }
}

/// Read access to an index's valid bytes, either borrowed from the active segment's entries or
/// holding a shared read-only mapping alive.
pub(crate) enum IndexBytes<'a> {
    Borrowed(&'a [u8]),
    Shared(Arc<Mmap>, usize),
}

impl std::ops::Deref for IndexBytes<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            IndexBytes::Borrowed(b) => b,
            IndexBytes::Shared(m, len) => m.get(..*len).unwrap_or(&[]),
        }
    }
}

impl IndexFile {
    /// Opens (creating if needed) an index file as the active segment's: its first `entries`
    /// entries are read into memory, and at most `prealloc_bytes` worth of entries (never
    /// fewer than the valid ones) may be appended.
    pub(crate) fn open_active(
        storage: &dyn Storage,
        path: &Path,
        entry_size: usize,
        entries: usize,
        prealloc_bytes: u64,
    ) -> Result<IndexFile> {
        drop(
            storage
                .open(path, true)
                .map_err(|e| LogError::io(path, e))?,
        );
        let mut idx = IndexFile {
            path: path.to_path_buf(),
            entry_size,
            entries,
            mapping: Mapping::Closed {
                cache: Mutex::new(None),
            },
        };
        idx.make_active(storage, prealloc_bytes)?;
        Ok(idx)
    }

    /// The active index of a segment whose files do not exist yet
    /// ([`crate::segment::Segment::create_deferred`]): no entries, no IO. It counts as changed,
    /// so the file is written when the segment stops being active.
    pub(crate) fn new_unwritten(
        path: PathBuf,
        entry_size: usize,
        prealloc_bytes: u64,
    ) -> IndexFile {
        IndexFile {
            path,
            entry_size,
            entries: 0,
            mapping: Mapping::Active {
                buf: Vec::new(),
                max_entries: (prealloc_bytes / entry_size as u64) as usize,
                dirty: true,
            },
        }
    }

    /// Opens an index file of a closed segment, trimming it to `entries` entries.
    pub(crate) fn open_closed(
        storage: &dyn Storage,
        path: &Path,
        entry_size: usize,
        entries: usize,
    ) -> Result<IndexFile> {
        let file = storage
            .open(path, true)
            .map_err(|e| LogError::io(path, e))?;
        let want = (entries * entry_size) as u64;
        if file.len().map_err(|e| LogError::io(path, e))? != want {
            file.set_len(want).map_err(|e| LogError::io(path, e))?;
        }
        Ok(IndexFile {
            path: path.to_path_buf(),
            entry_size,
            entries,
            mapping: Mapping::Closed {
                cache: Mutex::new(None),
            },
        })
    }

    /// Turns a closed index into an active one (after a truncation made its segment the last,
    /// or when opening the last segment): reads its entries into memory.
    pub(crate) fn make_active(&mut self, storage: &dyn Storage, prealloc_bytes: u64) -> Result<()> {
        if matches!(self.mapping, Mapping::Active { .. }) {
            return Ok(());
        }
        // Drop any read-only mapping before the file can change again.
        self.mapping = Mapping::Closed {
            cache: Mutex::new(None),
        };
        let max_entries = ((prealloc_bytes / self.entry_size as u64) as usize).max(self.entries);
        let io = |e| LogError::io(&self.path, e);
        let mut buf = vec![0u8; self.entries * self.entry_size];
        if !buf.is_empty() {
            let file = storage.open(&self.path, false).map_err(io)?;
            read_exact_at(&*file, &mut buf, 0).map_err(io)?;
        }
        self.mapping = Mapping::Active {
            buf,
            max_entries,
            dirty: false,
        };
        Ok(())
    }

    /// Makes the index closed: writes the in-memory entries to the file when they changed,
    /// trims the file to them, and fsyncs it when `sync`.
    pub(crate) fn make_closed(&mut self, storage: &dyn Storage, sync: bool) -> Result<()> {
        let old = std::mem::replace(
            &mut self.mapping,
            Mapping::Closed {
                cache: Mutex::new(None),
            },
        );
        let Mapping::Active { buf, dirty, .. } = old else {
            return Ok(());
        };
        let io = |e| LogError::io(&self.path, e);
        let len = self.entries * self.entry_size;
        if dirty {
            let file = storage.open(&self.path, true).map_err(io)?;
            write_all_at(&*file, buf.get(..len).unwrap_or(&buf), 0).map_err(io)?;
            file.set_len(len as u64).map_err(io)?;
            if sync {
                file.sync_data().map_err(io)?;
            }
        }
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// Whether an active index has no room for `reserve` more entries. Closed indexes are
    /// never appended to, so they count as full.
    pub(crate) fn is_full(&self, reserve: usize) -> bool {
        match &self.mapping {
            Mapping::Active { max_entries, .. } => self.entries + reserve > *max_entries,
            Mapping::Closed { .. } => true,
        }
    }

    /// Appends one entry to an active index; false when it is full or closed.
    pub(crate) fn append(&mut self, entry: &[u8]) -> bool {
        debug_assert_eq!(entry.len(), self.entry_size);
        match &mut self.mapping {
            Mapping::Active {
                buf,
                max_entries,
                dirty,
            } if self.entries < *max_entries => {
                buf.truncate(self.entries * self.entry_size);
                buf.extend_from_slice(entry);
                self.entries += 1;
                *dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Forgets entries beyond the first `n` (used by truncation).
    pub(crate) fn truncate_entries(&mut self, n: usize) {
        if n >= self.entries {
            return;
        }
        self.entries = n;
        if let Mapping::Active { buf, dirty, .. } = &mut self.mapping {
            buf.truncate(n * self.entry_size);
            *dirty = true;
        }
    }

    /// The valid entries' bytes, mapping a closed index on demand. Returns whether a new
    /// mapping was created (so the caller can account for it).
    pub(crate) fn bytes(&self, storage: &dyn Storage) -> Result<(IndexBytes<'_>, bool)> {
        let len = self.entries * self.entry_size;
        match &self.mapping {
            Mapping::Active { buf, .. } => {
                Ok((IndexBytes::Borrowed(buf.get(..len).unwrap_or(&[])), false))
            }
            Mapping::Closed { cache } => {
                if len == 0 {
                    return Ok((IndexBytes::Borrowed(&[]), false));
                }
                let mut guard = cache.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(m) = guard.as_ref() {
                    return Ok((IndexBytes::Shared(Arc::clone(m), len), false));
                }
                let io = |e| LogError::io(&self.path, e);
                // The mapping keeps the file's pages; the descriptor is closed right away.
                let file = storage.open(&self.path, false).map_err(io)?;
                let m = Arc::new(storage.map(&*file, len).map_err(io)?);
                *guard = Some(Arc::clone(&m));
                Ok((IndexBytes::Shared(m, len), true))
            }
        }
    }

    /// Drops a closed index's read-only mapping (it is re-created on the next lookup).
    pub(crate) fn unmap(&self) {
        if let Mapping::Closed { cache } = &self.mapping {
            *cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Whether a closed index currently holds a mapping (active ones never do).
    pub(crate) fn is_mapped(&self) -> bool {
        match &self.mapping {
            Mapping::Active { .. } => false,
            Mapping::Closed { cache } => cache.lock().unwrap_or_else(|e| e.into_inner()).is_some(),
        }
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_be_bytes(a)
}

/// Encodes an `.index` entry.
pub(crate) fn offset_entry(relative_offset: u32, position: u32) -> [u8; OFFSET_ENTRY_SIZE] {
    let mut e = [0u8; OFFSET_ENTRY_SIZE];
    e[..4].copy_from_slice(&relative_offset.to_be_bytes());
    e[4..].copy_from_slice(&position.to_be_bytes());
    e
}

/// Encodes a `.timeindex` entry.
pub(crate) fn time_entry(timestamp: i64, relative_offset: u32) -> [u8; TIME_ENTRY_SIZE] {
    let mut e = [0u8; TIME_ENTRY_SIZE];
    e[..8].copy_from_slice(&timestamp.to_be_bytes());
    e[8..].copy_from_slice(&relative_offset.to_be_bytes());
    e
}

/// Decodes `.index` entry `i` as `(relative_offset, position)`.
pub(crate) fn offset_entry_at(bytes: &[u8], i: usize) -> (u32, u32) {
    let at = i * OFFSET_ENTRY_SIZE;
    (be_u32(bytes, at), be_u32(bytes, at + 4))
}

/// Decodes `.timeindex` entry `i` as `(timestamp, relative_offset)`.
pub(crate) fn time_entry_at(bytes: &[u8], i: usize) -> (i64, u32) {
    let at = i * TIME_ENTRY_SIZE;
    (be_i64(bytes, at), be_u32(bytes, at + 8))
}

/// Index of the last entry for which `le` holds, given that `le` is monotone (true then
/// false) over the `n` entries; `None` when it holds for none.
fn last_where(n: usize, mut le: impl FnMut(usize) -> bool) -> Option<usize> {
    let (mut lo, mut hi) = (0usize, n);
    // Invariant: le(i) for all i < lo; !le(i) for all i >= hi.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if le(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo.checked_sub(1)
}

/// The entries around `target_rel`: the last one with a relative offset below it (its batch
/// ends before the target), the first one at or above it (its batch ends at or after it), and
/// the entry after that one.
pub(crate) type Entry = (u32, u32);

pub(crate) fn bracket_offset(
    bytes: &[u8],
    target_rel: u64,
) -> (Option<Entry>, Option<Entry>, Option<Entry>) {
    bracket_offset_hinted(bytes, target_rel, None)
}

/// [`bracket_offset`] that first tries `hint` as the index of the "at or above" entry and
/// skips the binary search when the entries around it confirm the guess. The time and offset
/// indexes get entries at the same moments, so the time index entry's position is a good
/// guess; a wrong guess costs two entry reads.
pub(crate) fn bracket_offset_hinted(
    bytes: &[u8],
    target_rel: u64,
    hint: Option<usize>,
) -> (Option<Entry>, Option<Entry>, Option<Entry>) {
    let n = bytes.len() / OFFSET_ENTRY_SIZE;
    let rel = |i: usize| u64::from(offset_entry_at(bytes, i).0);
    let above = match hint {
        Some(h) if h < n && rel(h) >= target_rel && (h == 0 || rel(h - 1) < target_rel) => h,
        _ => last_where(n, |i| rel(i) < target_rel).map_or(0, |i| i + 1),
    };
    let at = |i: usize| (i < n).then(|| offset_entry_at(bytes, i));
    let below = above.checked_sub(1).map(|i| offset_entry_at(bytes, i));
    (below, at(above), at(above + 1))
}

/// The `.index` entry with the largest position `<= position`.
pub(crate) fn lookup_position(bytes: &[u8], position: u64) -> Option<(u32, u32)> {
    let n = bytes.len() / OFFSET_ENTRY_SIZE;
    last_where(n, |i| u64::from(offset_entry_at(bytes, i).1) <= position)
        .map(|i| offset_entry_at(bytes, i))
}

/// The `.timeindex` entry with the largest timestamp `< target` (so every batch before its
/// offset has a max timestamp below `target`), as `(entry number, (timestamp, relative_offset))`.
pub(crate) fn lookup_time_below(bytes: &[u8], target: i64) -> Option<(usize, (i64, u32))> {
    let n = bytes.len() / TIME_ENTRY_SIZE;
    last_where(n, |i| time_entry_at(bytes, i).0 < target).map(|i| (i, time_entry_at(bytes, i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_roundtrip_big_endian() {
        let e = offset_entry(0x01020304, 0x0a0b0c0d);
        assert_eq!(e, [1, 2, 3, 4, 0xa, 0xb, 0xc, 0xd]);
        assert_eq!(offset_entry_at(&e, 0), (0x01020304, 0x0a0b0c0d));
        let t = time_entry(-2, 7);
        assert_eq!(&t[..8], &(-2i64).to_be_bytes());
        assert_eq!(time_entry_at(&t, 0), (-2, 7));
    }

    #[test]
    fn lookups_find_floor_entries() {
        let mut b = Vec::new();
        for (o, p) in [(3u32, 0u32), (10, 4100), (20, 8300)] {
            b.extend_from_slice(&offset_entry(o, p));
        }
        assert_eq!(
            bracket_offset(&b, 2),
            (None, Some((3, 0)), Some((10, 4100)))
        );
        assert_eq!(
            bracket_offset(&b, 3),
            (None, Some((3, 0)), Some((10, 4100)))
        );
        assert_eq!(
            bracket_offset(&b, 4),
            (Some((3, 0)), Some((10, 4100)), Some((20, 8300)))
        );
        assert_eq!(
            bracket_offset(&b, 20),
            (Some((10, 4100)), Some((20, 8300)), None)
        );
        assert_eq!(bracket_offset(&b, 1000), (Some((20, 8300)), None, None));
        assert_eq!(lookup_position(&b, 8299), Some((10, 4100)));
        assert_eq!(lookup_position(&b, 8300), Some((20, 8300)));
        let mut t = Vec::new();
        for (ts, o) in [(100i64, 1u32), (200, 5), (300, 9)] {
            t.extend_from_slice(&time_entry(ts, o));
        }
        assert_eq!(lookup_time_below(&t, 100), None);
        assert_eq!(lookup_time_below(&t, 101), Some((0, (100, 1))));
        assert_eq!(lookup_time_below(&t, 300), Some((1, (200, 5))));
        assert_eq!(lookup_time_below(&t, i64::MAX), Some((2, (300, 9))));
        // Hints are used only when they are right.
        for target in 0..25u64 {
            let plain = bracket_offset(&b, target);
            for hint in 0..5 {
                assert_eq!(
                    bracket_offset_hinted(&b, target, Some(hint)),
                    plain,
                    "{target} {hint}"
                );
            }
        }
        assert_eq!(bracket_offset(&[], 5), (None, None, None));
    }
}
