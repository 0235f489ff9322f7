//! Deleting a [`Log`]'s oldest data: DeleteRecords, `retention.ms` and `retention.bytes`.
//!
//! Deletion has two steps, as Kafka's `UnifiedLog.deleteSegments` has: under the log's lock
//! the segments leave the log and their files are renamed to `{name}.deleted` (directory
//! operations only, no data IO); the files are removed afterwards, without the lock, by
//! [`DeletedSegments::remove_files`] (Kafka removes them `file.delete.delay.ms` later on its
//! scheduler). Removing a large file can take long (the file system frees its extents), and a
//! produce or fetch waiting for the lock must not wait for that. A crash in between leaves
//! `.deleted` files, which the next open removes.

use std::path::PathBuf;
use std::sync::Arc;

use potok_records::Offset;

use super::Log;
use crate::producer_state;
use crate::segment::Segment;
use crate::storage::Storage;
use crate::{LogError, Result};

/// Segments taken out of a log whose files are still to be removed; see the module docs.
#[derive(Debug)]
#[must_use = "the renamed files stay on disk until remove_files is called"]
pub struct DeletedSegments {
    storage: Arc<dyn Storage>,
    dir: PathBuf,
    bases: Vec<Offset>,
    files: Vec<PathBuf>,
    /// Producer-state snapshots below this offset went with their segments.
    first_kept: i64,
}

impl DeletedSegments {
    fn new(log: &Log) -> DeletedSegments {
        DeletedSegments {
            storage: Arc::clone(&log.storage),
            dir: log.dir.clone(),
            bases: Vec::new(),
            files: Vec::new(),
            first_kept: i64::MIN,
        }
    }

    /// Base offsets of the deleted segments, oldest first.
    pub fn bases(&self) -> &[Offset] {
        &self.bases
    }

    /// Whether no segment was deleted.
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// Removes the renamed files and the producer-state snapshots of the deleted segments. Call
    /// it without the log's lock held. Returns the deleted segments' base offsets.
    pub fn remove_files(self) -> Result<Vec<Offset>> {
        let st = &*self.storage;
        for p in &self.files {
            match st.remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(p, e)),
            }
        }
        if !self.bases.is_empty() {
            // Snapshots go with their segments, as in Kafka; the in-memory state is kept (since
            // KIP-360 producers outlive their data until `producer.id.expiration.ms`), and the
            // snapshot at the new first segment's base still carries it across a restart.
            for (offset, path) in producer_state::list_snapshots(st, &self.dir)? {
                if offset < self.first_kept {
                    producer_state::remove_snapshot(st, &path)?;
                }
            }
        }
        Ok(self.bases)
    }
}

impl Log {
    /// Advances the log start offset to `offset` (DeleteRecords) and deletes segments that lie
    /// wholly below it. The caller checks `offset` against the high watermark; here it may be at
    /// most the log end offset. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: Offset) -> Result<Offset> {
        self.check_online()?;
        if offset.0 > self.log_end_offset().0 || offset.0 < 0 {
            return Err(self.out_of_range(offset.0));
        }
        if offset.0 > self.log_start_offset {
            self.log_start_offset = offset.0;
            self.checkpoint_log_start(offset.0)?;
            self.truncate_epochs_from_start()?;
            self.delete_segments_below_log_start()?;
        }
        Ok(Offset(self.log_start_offset))
    }

    pub(super) fn delete_segments_below_log_start(&mut self) -> Result<()> {
        let mut out = DeletedSegments::new(self);
        let r = self.detach_segments_below_log_start(&mut out);
        out.remove_files()?;
        r
    }

    fn detach_segments_below_log_start(&mut self, out: &mut DeletedSegments) -> Result<()> {
        loop {
            let mut keys = self.segments.keys();
            let (Some(&first), Some(&second)) = (keys.next(), keys.next()) else {
                return Ok(());
            };
            if second > self.log_start_offset {
                return Ok(());
            }
            self.detach_segment(first, out)?;
        }
    }

    /// Takes the segment at `base` out of the log and renames its files for deletion.
    fn detach_segment(&mut self, base: i64, out: &mut DeletedSegments) -> Result<()> {
        if let Some(seg) = self.segments.remove(&base) {
            self.mapped
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&x| x != base);
            out.bases.push(Offset(base));
            out.files.extend(seg.rename_for_deletion(&*self.storage)?);
        }
        let first = self.segments.keys().next().copied().unwrap_or(i64::MAX);
        out.first_kept = first;
        if self.on_disk.producer_snapshot.is_some_and(|o| o < first) {
            self.on_disk.producer_snapshot = None;
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes` (in that order, as Kafka's
    /// `deleteOldSegments` does) and returns the base offsets of the deleted segments.
    ///
    /// Only whole segments are deleted, oldest first, stopping at the first one that must be
    /// kept. A segment expires by time when `now_ms - largest timestamp > retention.ms`, where
    /// the largest timestamp is the maximum record timestamp in the segment (its file's
    /// modification time when no record has one). **A record stamped in the future therefore
    /// keeps its segment, and every later segment, until the clock passes that timestamp plus
    /// `retention.ms`** — Kafka behaves the same way; `message.timestamp.after.max.ms` on the
    /// broker is the guard against such timestamps. When every segment including the active
    /// one is deletable, the active segment is rolled first so it can be deleted too, as Kafka
    /// does; an empty active segment is never deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<Vec<Offset>> {
        self.apply_retention_below(now_ms, None)
    }

    /// Like [`Log::apply_retention`], but never deletes a segment holding offsets at or above
    /// `high_watermark` (Kafka only deletes segments below the high watermark).
    pub fn apply_retention_below(
        &mut self,
        now_ms: i64,
        high_watermark: Option<Offset>,
    ) -> Result<Vec<Offset>> {
        self.detach_expired_segments(now_ms, high_watermark)?
            .remove_files()
    }

    /// [`Log::apply_retention_below`] without removing the files: the deleted segments leave
    /// the log and their files are renamed; the caller removes them with
    /// [`DeletedSegments::remove_files`] after releasing the log's lock.
    pub fn detach_expired_segments(
        &mut self,
        now_ms: i64,
        high_watermark: Option<Offset>,
    ) -> Result<DeletedSegments> {
        self.check_online()?;
        let mut out = DeletedSegments::new(self);
        let r = self.detach_expired_into(now_ms, high_watermark, &mut out);
        match r {
            Ok(()) => Ok(out),
            Err(e) => {
                // What was renamed already is gone from the log either way.
                let _ = out.remove_files();
                Err(e)
            }
        }
    }

    fn detach_expired_into(
        &mut self,
        now_ms: i64,
        high_watermark: Option<Offset>,
        out: &mut DeletedSegments,
    ) -> Result<()> {
        if self.config.retention_ms >= 0 {
            let retention_ms = self.config.retention_ms;
            let mut expired = Vec::new();
            for seg in self.segments.values() {
                expired.push(
                    now_ms.saturating_sub(seg.largest_timestamp_for_retention()?) > retention_ms,
                );
            }
            let mut it = expired.into_iter();
            let n = self.deletable(high_watermark, |_| it.next().unwrap_or(false));
            self.delete_oldest(n, now_ms, out)?;
        }
        if self.config.retention_bytes >= 0 {
            let mut diff = i128::from(self.size_bytes()) - i128::from(self.config.retention_bytes);
            let n = self.deletable(high_watermark, |seg| {
                let size = i128::from(seg.size());
                if diff - size >= 0 {
                    diff -= size;
                    true
                } else {
                    false
                }
            });
            self.delete_oldest(n, now_ms, out)?;
        }
        Ok(())
    }

    /// How many of the oldest segments satisfy `pred` in a row (Kafka's `deletableSegments`):
    /// stops at an empty active segment and, with a high watermark, at the first segment
    /// reaching it.
    fn deletable(
        &self,
        high_watermark: Option<Offset>,
        mut pred: impl FnMut(&Segment) -> bool,
    ) -> usize {
        let mut n = 0;
        let segs: Vec<&Segment> = self.segments.values().collect();
        for (i, seg) in segs.iter().enumerate() {
            let upper = segs.get(i + 1).map_or(seg.next_offset(), |next| next.base);
            if i + 1 == segs.len() && seg.is_empty() {
                break;
            }
            if high_watermark.is_some_and(|hw| upper > hw.0) {
                break;
            }
            if !pred(seg) {
                break;
            }
            n += 1;
        }
        n
    }

    fn delete_oldest(&mut self, n: usize, now_ms: i64, out: &mut DeletedSegments) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if n >= self.segments.len() {
            self.roll(now_ms)?;
        }
        let victims: Vec<i64> = self.segments.keys().take(n).copied().collect();
        let new_start = self
            .segments
            .keys()
            .nth(n)
            .copied()
            .unwrap_or(self.log_start_offset);
        // Persist the new log start offset before deleting, so a crash in between cannot bring
        // deleted-but-not-yet-removed data back into the readable range.
        if new_start > self.log_start_offset {
            self.log_start_offset = new_start;
            self.checkpoint_log_start(new_start)?;
            self.truncate_epochs_from_start()?;
        }
        for &b in &victims {
            self.detach_segment(b, out)?;
        }
        Ok(())
    }
}
