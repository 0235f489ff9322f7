//! Timestamp lookups in a segment (ListOffsets by timestamp): the time index narrows the
//! search, then record prefixes are decoded from a mapping of the `.log` file or from small
//! page-aligned reads.

use std::sync::Arc;

use bytes::Bytes;
use memmap2::Mmap;
use potok_records::{BatchHeader, Compression, RecordBatch, TimestampType, BATCH_HEADER_LEN};

use super::{corrupt, Segment};
use crate::index::{bracket_offset_hinted, lookup_time_below};
use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

impl Segment {
    /// The first record at or after `min_offset` whose timestamp is `>= target`, as
    /// `(offset, timestamp)`, found through the time index and a forward scan (Kafka's
    /// `LogSegment.findOffsetByTimestamp`). Records inside the matching batch are decoded to
    /// find the exact one.
    pub(crate) fn find_by_timestamp(
        &self,
        storage: &dyn Storage,
        target: i64,
        min_offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(i64, i64)>> {
        if self.max_timestamp < target {
            return Ok(None);
        }
        // The entry names the last offset of a batch whose running max is below the target,
        // so the first candidate batch is the one after it.
        let (hint, from_offset) = {
            let (t, m) = self.time_index.bytes(storage)?;
            *mapped |= m;
            match lookup_time_below(&t, target) {
                Some((i, (_, rel))) => (Some(i + 1), self.base + i64::from(rel) + 1),
                None => (Some(0), self.base),
            }
        };
        let from_offset = from_offset.max(min_offset);
        let map = self.log_map(storage, mapped);
        let map = map.as_deref().map(|m| &m[..]);
        if let Some(hit) =
            self.timestamp_fast_path(storage, map, from_offset, hint, target, min_offset, mapped)?
        {
            return Ok(Some(hit));
        }
        let Some((mut pos, mut h)) = self.translate(storage, from_offset, mapped)? else {
            return Ok(None);
        };
        loop {
            let len = h.total_size() as u64;
            if h.max_timestamp >= target && h.last_offset().0 >= min_offset {
                let hit = if matches!(h.compression(), Ok(Compression::None)) {
                    match map {
                        Some(m) => self.scan_prefixes(
                            pos,
                            &h,
                            &mut Prefixes::Mapped(m),
                            target,
                            min_offset,
                        )?,
                        None => with_scratch(SCAN_WINDOW_MAX, |window| {
                            let mut src = Prefixes::Read {
                                window,
                                loaded: (pos, 0),
                            };
                            self.scan_prefixes(pos, &h, &mut src, target, min_offset)
                        })?,
                    }
                } else {
                    self.scan_decoded(pos, &h, target, min_offset)?
                };
                if hit.is_some() {
                    return Ok(hit);
                }
            }
            pos += len;
            if pos >= self.size {
                return Ok(None);
            }
            h = self.header_at(pos, map)?;
        }
    }

    /// A read-only mapping of the `.log` file covering every valid byte, for timestamp lookups
    /// (which walk record prefixes scattered over a batch; through the mapping they touch a few
    /// cache lines instead of copying pages out of the page cache). Created on first use and
    /// re-created when the segment has grown past it; `None` when the storage does not map log
    /// files (the fault-injection storage) or mapping fails, and the caller then reads with
    /// `pread`. Sets `mapped` when a mapping was created, so the log can bound how many closed
    /// segments keep one.
    pub(super) fn log_map(&self, storage: &dyn Storage, mapped: &mut bool) -> Option<Arc<Mmap>> {
        let len = usize::try_from(self.size).ok().filter(|&l| l > 0)?;
        let mut guard = self.log_map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = guard.as_ref().filter(|m| m.len() >= len) {
            return Some(Arc::clone(m));
        }
        match storage.map_log(&*self.log, len) {
            Ok(m) => {
                let m = Arc::new(m);
                *guard = Some(Arc::clone(&m));
                *mapped = true;
                Some(m)
            }
            Err(e) => {
                tracing::debug!(path = %self.log_path.display(), error = %e, "log file not mapped; timestamp lookups read it instead");
                *guard = None;
                None
            }
        }
    }

    /// Walks the record prefixes (length, attributes, timestamp delta, offset delta) of the
    /// uncompressed batch at `pos` for the first record at or after `min_offset` with a
    /// timestamp `>= target`, without allocating. The prefixes come from `src`: a mapping of
    /// the file, or reads through a page-sized window (see [`Prefixes`]).
    fn scan_prefixes(
        &self,
        pos: u64,
        h: &BatchHeader,
        src: &mut Prefixes<'_>,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let bad = || {
            corrupt(
                &self.log_path,
                format!("malformed record in batch at byte {pos}"),
            )
        };
        let batch_end = pos + h.total_size() as u64;
        let mut at = pos + BATCH_HEADER_LEN as u64;
        for _ in 0..h.records_count.max(0) {
            let want = (at + RECORD_PREFIX_MAX).min(batch_end);
            let prefix = src.prefix(self, at, want, batch_end)?.ok_or_else(bad)?;
            let (body_len, used) = read_zigzag(prefix).ok_or_else(bad)?;
            let body_len = u64::try_from(body_len).map_err(|_| bad())?;
            let fields = prefix.get(used + 1..).ok_or_else(bad)?; // skip the attributes byte
            let (ts_delta, n) = read_zigzag(fields).ok_or_else(bad)?;
            let (offset_delta, _) =
                read_zigzag(fields.get(n..).ok_or_else(bad)?).ok_or_else(bad)?;
            let next = at
                .checked_add(used as u64 + body_len)
                .filter(|&e| e <= batch_end)
                .ok_or_else(bad)?;
            let ts = match h.timestamp_type() {
                TimestampType::LogAppendTime => h.max_timestamp,
                TimestampType::CreateTime => h.base_timestamp.wrapping_add(ts_delta),
            };
            let offset = h.base_offset.saturating_add(offset_delta);
            if ts >= target && offset >= min_offset {
                return Ok(Some((offset, ts)));
            }
            at = next;
        }
        Ok(None)
    }

    /// When the offset index brackets the batch holding `from_offset` exactly (an entry for it
    /// and the next entry right after it, as with batches larger than `index.interval.bytes`),
    /// looks for the match in that batch straight away: through the mapping when there is one,
    /// else by reading its header and first records in one call. `None` means "not applicable
    /// or not in this batch": the caller takes the general path.
    #[allow(clippy::too_many_arguments)]
    fn timestamp_fast_path(
        &self,
        storage: &dyn Storage,
        map: Option<&[u8]>,
        from_offset: i64,
        hint: Option<usize>,
        target: i64,
        min_offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(i64, i64)>> {
        let span = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            let rel = u64::try_from(from_offset - self.base).unwrap_or(0);
            match bracket_offset_hinted(&idx, rel, hint) {
                (_, Some((_, p)), next) => {
                    let p = u64::from(p);
                    let q = next.map_or(self.size, |(_, q)| u64::from(q));
                    (p, q)
                }
                _ => return Ok(None),
            }
        };
        let (p, q) = span;
        if q.saturating_sub(p) < BATCH_HEADER_LEN as u64 || q > self.size {
            return Ok(None);
        }
        let applies = |h: &BatchHeader| {
            h.base_offset <= from_offset
                && p + h.total_size() as u64 <= q
                && h.max_timestamp >= target
                && h.last_offset().0 >= min_offset
                && matches!(h.compression(), Ok(Compression::None))
        };
        if let Some(m) = map {
            let Ok(h) = self.header_at(p, Some(m)) else {
                return Ok(None);
            };
            if !applies(&h) {
                return Ok(None);
            }
            return self.scan_prefixes(p, &h, &mut Prefixes::Mapped(m), target, min_offset);
        }
        // The first window covers the header and the first record's prefix, up to the end of
        // that page.
        let end = align_up(p + BATCH_HEADER_LEN as u64 + RECORD_PREFIX_MAX)
            .min(q)
            .max(p + BATCH_HEADER_LEN as u64);
        let Ok(len) = usize::try_from(end - p) else {
            return Ok(None);
        };
        with_scratch(SCAN_WINDOW_MAX, |window| {
            let Some(first) = window.get_mut(..len) else {
                return Ok(None);
            };
            read_exact_at(&*self.log, first, p).map_err(|e| LogError::io(&self.log_path, e))?;
            let Ok(h) = BatchHeader::parse(first) else {
                return Ok(None);
            };
            if !applies(&h) {
                return Ok(None);
            }
            let mut src = Prefixes::Read {
                window,
                loaded: (p, len),
            };
            self.scan_prefixes(p, &h, &mut src, target, min_offset)
        })
    }

    /// Finds the first matching record of a compressed batch by decompressing it.
    fn scan_decoded(
        &self,
        pos: u64,
        h: &BatchHeader,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>> {
        let mut buf = vec![0u8; h.total_size()];
        read_exact_at(&*self.log, &mut buf, pos).map_err(|e| LogError::io(&self.log_path, e))?;
        let bad = |e: potok_records::RecordsError| {
            corrupt(&self.log_path, format!("batch at byte {pos}: {e}"))
        };
        let batch = RecordBatch::new(Bytes::from(buf)).map_err(bad)?;
        for r in batch.records().map_err(bad)? {
            let r = r.map_err(bad)?;
            let (o, ts) = (r.offset(h).0, r.timestamp(h));
            if ts >= target && o >= min_offset {
                return Ok(Some((o, ts)));
            }
        }
        Ok(None)
    }
}

/// The page size a timestamp lookup's read windows end on (see `Segment::scan_window`); a read
/// that ends on a page boundary does not touch a page it does not need.
const PAGE: u64 = 4096;

/// The largest read window: a batch header and a record prefix, then up to a page.
const SCAN_WINDOW_MAX: usize = BATCH_HEADER_LEN + RECORD_PREFIX_MAX as usize + PAGE as usize;

/// The longest record prefix a lookup decodes: length varint (5) + attributes (1) + timestamp
/// delta varlong (10) + offset delta varint (5).
const RECORD_PREFIX_MAX: u64 = 21;

/// Scratch buffers up to this size are kept per thread; larger requests get a buffer of their
/// own, so the scratch never pins more than this much memory per thread.
const SCRATCH_MAX: usize = 1 << 20;

thread_local! {
    /// Reused buffer for timestamp lookups, so a lookup does not allocate and zero a batch-sized
    /// buffer each time.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Where a timestamp lookup gets record prefixes from.
enum Prefixes<'a> {
    /// A mapping of the whole `.log` file: prefixes are borrowed, nothing is copied.
    Mapped(&'a [u8]),
    /// Reads into `window`, which holds the file bytes `[loaded.0, loaded.0 + loaded.1)`. When
    /// the next prefix lies beyond it, the window is refilled from that record to the end of its
    /// page: a lookup copies the pages up to the matching record instead of the whole batch, and
    /// the bodies of records larger than a page are skipped without being read.
    Read {
        window: &'a mut [u8],
        loaded: (u64, usize),
    },
}

impl Prefixes<'_> {
    /// The file bytes from `at` to at least `want` (more when already at hand), never past
    /// `batch_end`; `None` when the mapping is shorter than that (a corrupt length).
    fn prefix(
        &mut self,
        seg: &Segment,
        at: u64,
        want: u64,
        batch_end: u64,
    ) -> Result<Option<&[u8]>> {
        match self {
            Prefixes::Mapped(m) => {
                let (Ok(from), Ok(to)) = (usize::try_from(at), usize::try_from(want)) else {
                    return Ok(None);
                };
                Ok(m.get(from..to))
            }
            Prefixes::Read { window, loaded } => {
                if at < loaded.0 || want > loaded.0 + loaded.1 as u64 {
                    let end = align_up(want).min(batch_end).min(at + window.len() as u64);
                    let Some(dst) = usize::try_from(end.saturating_sub(at))
                        .ok()
                        .and_then(|len| window.get_mut(..len))
                    else {
                        return Ok(None);
                    };
                    read_exact_at(&*seg.log, dst, at)
                        .map_err(|e| LogError::io(&seg.log_path, e))?;
                    *loaded = (at, dst.len());
                }
                let from = usize::try_from(at - loaded.0).unwrap_or(usize::MAX);
                Ok(window.get(from..loaded.1))
            }
        }
    }
}

/// Rounds a file position up to the next page boundary.
fn align_up(pos: u64) -> u64 {
    pos.saturating_add(PAGE - 1) & !(PAGE - 1)
}

/// Runs `f` on a zero-initialised-once buffer of exactly `len` bytes (contents unspecified).
fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    if len > SCRATCH_MAX {
        return f(&mut vec![0u8; len]);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(buf.get_mut(..len).unwrap_or(&mut []))
        }
        // Not reachable (lookups do not nest), but a fresh buffer is always correct.
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// Decodes one zigzag varint (up to 10 bytes, as Kafka's varlong) from the start of `b`,
/// returning the value and the bytes used; `None` when `b` ends first or it is too long.
fn read_zigzag(b: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (i, &byte) in b.iter().enumerate().take(10) {
        raw |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::read_zigzag;

    #[test]
    fn zigzag_varints_decode() {
        assert_eq!(read_zigzag(&[0x00]), Some((0, 1)));
        assert_eq!(read_zigzag(&[0x01]), Some((-1, 1)));
        assert_eq!(read_zigzag(&[0x02]), Some((1, 1)));
        assert_eq!(read_zigzag(&[0xac, 0x02]), Some((150, 2)));
        assert_eq!(read_zigzag(&[0x80]), None);
        assert_eq!(read_zigzag(&[]), None);
    }
}
