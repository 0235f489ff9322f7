//! Offset lookups in a segment: translating an offset to a file position through the sparse
//! offset index, and choosing the byte range of whole batches a fetch reads.

use potok_records::{BatchHeader, BATCH_HEADER_LEN};

use super::{corrupt, Segment, SegmentRead};
use crate::index::{bracket_offset, lookup_position};
use crate::storage::{read_exact_at, Storage};
use crate::{LogError, Result};

impl Segment {
    /// The header of the batch at `pos`, checked to lie within the segment; taken from `map` (a
    /// mapping of the `.log` file) when given, else read with one `pread`.
    pub(super) fn header_at(&self, pos: u64, map: Option<&[u8]>) -> Result<BatchHeader> {
        let avail = self.size.saturating_sub(pos);
        if avail < BATCH_HEADER_LEN as u64 {
            return Err(corrupt(
                &self.log_path,
                format!("batch header at byte {pos} extends past the segment end"),
            ));
        }
        let mut hb = [0u8; BATCH_HEADER_LEN];
        let mapped = map.and_then(|m| m.get(usize::try_from(pos).ok()?..)?.get(..BATCH_HEADER_LEN));
        match mapped {
            Some(b) => hb.copy_from_slice(b),
            None => read_exact_at(&*self.log, &mut hb, pos)
                .map_err(|e| LogError::io(&self.log_path, e))?,
        }
        let h = BatchHeader::parse(&hb)
            .map_err(|e| corrupt(&self.log_path, format!("at byte {pos}: {e}")))?;
        if h.total_size() as u64 > avail {
            return Err(corrupt(
                &self.log_path,
                format!("batch at byte {pos} extends past the segment end"),
            ));
        }
        Ok(h)
    }

    /// Finds the batch containing `offset` (the first batch whose last offset is `>= offset`):
    /// its position and header, or `None` when every batch here ends before `offset`.
    /// `mapped` is set when a closed index had to be mapped.
    pub(crate) fn translate(
        &self,
        storage: &dyn Storage,
        offset: i64,
        mapped: &mut bool,
    ) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let (below, above, _) = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            let rel = u64::try_from(offset - self.base).unwrap_or(0);
            bracket_offset(&idx, rel)
        };
        // The batch holding `offset` starts after the `below` entry's batch and at or before
        // the `above` entry's batch. Two shortcuts save header reads: a short span is read in
        // one call and walked in memory; across a long span (large batches), the `above`
        // batch is checked first, since with large batches it usually is the one.
        let mut pos = below.map_or(0, |(_, p)| u64::from(p));
        if let Some((_, p)) = above {
            let p = u64::from(p);
            if p >= pos && p - pos <= SPAN_READ_BYTES {
                if let Some(found) = self.walk_span(pos, p, offset)? {
                    return Ok(Some(found));
                }
            } else {
                let h = self.header_at(p, None)?;
                if h.base_offset <= offset {
                    return Ok(Some((p, h)));
                }
            }
        }
        while pos < self.size {
            let h = self.header_at(pos, None)?;
            if h.last_offset().0 >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.total_size() as u64;
        }
        Ok(None)
    }

    /// Reads `[from, to + header)` in one call and walks the batch headers in it, returning the
    /// first batch whose last offset is `>= offset`; `None` if the span does not show one (the
    /// caller then falls back to reading header by header).
    fn walk_span(&self, from: u64, to: u64, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        let end = to.saturating_add(BATCH_HEADER_LEN as u64).min(self.size);
        let Some(len) = end.checked_sub(from).and_then(|l| usize::try_from(l).ok()) else {
            return Ok(None);
        };
        let mut buf = [0u8; SPAN_READ_BYTES as usize + BATCH_HEADER_LEN];
        let Some(span) = buf.get_mut(..len) else {
            return Ok(None);
        };
        read_exact_at(&*self.log, span, from).map_err(|e| LogError::io(&self.log_path, e))?;
        let mut at = 0usize;
        while let Some(rest) = span.get(at..) {
            if rest.len() < BATCH_HEADER_LEN {
                break;
            }
            let pos = from + at as u64;
            let h = BatchHeader::parse(rest)
                .map_err(|e| corrupt(&self.log_path, format!("at byte {pos}: {e}")))?;
            if pos + h.total_size() as u64 > self.size {
                return Err(corrupt(
                    &self.log_path,
                    format!("batch at byte {pos} extends past the segment end"),
                ));
            }
            if h.last_offset().0 >= offset {
                return Ok(Some((pos, h)));
            }
            at += h.total_size();
        }
        Ok(None)
    }

    /// Chooses the bytes to return for a fetch from `from`: whole batches starting with the one
    /// containing `from`, at most `max_bytes` unless the first batch alone is larger (then just
    /// that batch, as Kafka does so a consumer can always progress), and only batches whose last
    /// offset is below `max_offset`. `None` when no batch here contains `from` or later.
    pub(crate) fn read(
        &self,
        storage: &dyn Storage,
        from: i64,
        max_bytes: usize,
        max_offset: Option<i64>,
        mapped: &mut bool,
    ) -> Result<Option<SegmentRead>> {
        let Some((start, first)) = self.translate(storage, from, mapped)? else {
            return Ok(None);
        };
        let empty = SegmentRead {
            position: start,
            len: 0,
            first_offset: first.base_offset,
            end_offset: first.base_offset,
        };
        let mut limit = self.size;
        if let Some(mo) = max_offset {
            if first.last_offset().0 >= mo {
                return Ok(Some(empty));
            }
            if let Some((p, _)) = self.translate(storage, mo, mapped)? {
                limit = limit.min(p);
            }
        }
        let first_end = start + first.total_size() as u64;
        let budget_end = start.saturating_add(max_bytes as u64).min(limit);
        if budget_end <= first_end {
            return Ok(Some(SegmentRead {
                len: first_end - start,
                end_offset: first.next_offset().0,
                ..empty
            }));
        }
        // Jump close to the end with the index (its entries are batch boundaries), then walk.
        let mut pos = {
            let (idx, m) = self.index.bytes(storage)?;
            *mapped |= m;
            lookup_position(&idx, budget_end).map_or(0, |(_, p)| u64::from(p))
        }
        .max(first_end);
        // The offset after the last batch read: the base offset of the first batch not read.
        let mut end_offset = None;
        while pos < budget_end {
            let h = self.header_at(pos, None)?;
            let end = pos + h.total_size() as u64;
            if end > budget_end {
                end_offset = Some(h.base_offset);
                break;
            }
            pos = end;
        }
        let end_offset = match end_offset {
            Some(o) => o,
            None if pos >= self.size => self.next_offset,
            None => self.header_at(pos, None)?.base_offset,
        };
        Ok(Some(SegmentRead {
            len: pos - start,
            end_offset,
            ..empty
        }))
    }
}

/// Index spans up to this long are read in one call when translating an offset (the default
/// `index.interval.bytes` is 4096, so a span usually holds a few small batches).
const SPAN_READ_BYTES: u64 = 8192;
