//! Appending to a [`Log`]: offset assignment and batch checks, writes into the active
//! segment, the flush policy (`flush.messages`, `flush.ms`) and segment roll.

use bytes::{Bytes, BytesMut};
use potok_records::{
    set_base_offset, set_max_timestamp_and_log_append_time, set_partition_leader_epoch,
    BatchHeader, LeaderEpoch, Offset,
};

use super::{last_segment, AppendInfo, Log};
use crate::config::TimestampPolicy;
use crate::producer_state::{LeaderCheck, ProducerUpdate, EXPIRATION_CHECK_INTERVAL_MS};
use crate::segment::PendingBatch;
use crate::txn_marker::{parse_marker, MarkerRequest};
use crate::{LogError, Result};

impl Log {
    /// Appends a COMMIT or ABORT marker as the leader (Kafka's WriteTxnMarkers for one
    /// partition, `UnifiedLog.appendAsLeader` with the coordinator origin): the control batch
    /// is built here, stamped with `leader_epoch`, and checked against the producer state: an
    /// older producer epoch is [`LogError::InvalidProducerEpoch`] (with `transaction.version`
    /// 2, KIP-890 part 2, the marker must carry an epoch above the producer's current one, so
    /// the current epoch is refused too), an older coordinator epoch than the last marker's is
    /// [`LogError::TransactionCoordinatorFenced`]. A newer epoch becomes the producer's, so the
    /// data batches of the transaction the marker ended can no longer be appended. An ABORT of
    /// a transaction with data here adds a `.txnindex` entry.
    pub fn append_marker(&mut self, marker: &MarkerRequest, now_ms: i64) -> Result<AppendInfo> {
        if marker.transaction_version >= 2 {
            if let Some(e) = self.producers.get(marker.producer_id) {
                if marker.producer_epoch.0 <= e.epoch.0 {
                    return Err(LogError::InvalidProducerEpoch {
                        producer_id: marker.producer_id,
                        epoch: marker.producer_epoch,
                        current_epoch: e.epoch,
                    });
                }
            }
        }
        let batch = marker.build(now_ms)?;
        self.append_inner(batch, now_ms, true, Some(marker.leader_epoch))
    }

    /// Appends batches as the leader: assigns offsets from the log end offset (rewriting each
    /// batch's base offset in place), stamps `LogAppendTime` when configured, and applies the
    /// flush policy. The batches must be well-formed v2 batches (the broker has checked their
    /// CRCs); header fields are sanity-checked here, and nothing is written if any batch fails.
    ///
    /// On an IO error the batches of the failing write are removed again; when a buffer of
    /// several batches straddles a roll, the batches written before the failure stay (the log
    /// end offset shows how far it got). A Produce v2+ request carries one batch per partition,
    /// so for the leader an append is all or nothing.
    pub fn append(&mut self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, true, None)
    }

    /// Appends batches as a follower: the offsets they carry are kept. The first batch must
    /// start at or above the log end offset and batches must not overlap.
    pub fn append_as_follower(&mut self, batches: Bytes, now_ms: i64) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, false, None)
    }

    /// [`Log::append`] that first stamps `leader_epoch` into every batch's partition leader
    /// epoch, as Kafka's `appendAsLeader` (via `LogValidator`) does, so the leader-epoch cache
    /// records where each epoch began.
    pub fn append_with_leader_epoch(
        &mut self,
        batches: Bytes,
        leader_epoch: LeaderEpoch,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_inner(batches, now_ms, true, Some(leader_epoch))
    }

    fn append_inner(
        &mut self,
        batches: Bytes,
        now_ms: i64,
        assign: bool,
        leader_epoch: Option<LeaderEpoch>,
    ) -> Result<AppendInfo> {
        self.check_online()?;
        let mut buf: BytesMut = batches
            .try_into_mut()
            .unwrap_or_else(|b| BytesMut::from(&b[..]));
        let mut next = self.log_end_offset().0;
        let mut pending: Vec<PendingBatch> = Vec::new();
        // (index into `pending`, update) for the batches that carry a producer id.
        let mut updates: Vec<(usize, ProducerUpdate)> = Vec::new();
        // Indexes into `pending` of the ABORT markers, which get `.txnindex` entries.
        let mut aborts: Vec<usize> = Vec::new();
        let mut pos = 0usize;
        let mut records = 0u64;
        let append_time = match self.config.timestamp_policy {
            TimestampPolicy::LogAppendTime if assign => Some(now_ms),
            _ => None,
        };
        while pos < buf.len() {
            let rest = buf.get_mut(pos..).unwrap_or(&mut []);
            let header = BatchHeader::parse(rest)?;
            let len = header.total_size();
            if len > rest.len() {
                return Err(LogError::InvalidBatch(
                    potok_records::RecordsError::Truncated {
                        position: pos,
                        needed: len,
                        available: rest.len(),
                    },
                ));
            }
            if len as u64 > self.config.segment_bytes {
                return Err(LogError::BatchTooLarge {
                    size: len,
                    segment_bytes: self.config.segment_bytes,
                });
            }
            if header.last_offset_delta < 0 || header.records_count < 0 {
                return Err(LogError::InvalidBatchFields(
                    "negative record count or last offset delta".into(),
                ));
            }
            let batch = rest.get_mut(..len).unwrap_or(&mut []);
            let header = if assign {
                // Kafka's LogValidator: the offset range must match the record count.
                if header.records_count == 0
                    || i64::from(header.last_offset_delta) + 1 != i64::from(header.records_count)
                {
                    return Err(LogError::InvalidBatchFields(format!(
                        "inconsistent batch offset range (last offset delta {}) and record count {}",
                        header.last_offset_delta, header.records_count
                    )));
                }
                set_base_offset(batch, Offset(next))?;
                if let Some(e) = leader_epoch {
                    set_partition_leader_epoch(batch, e)?;
                }
                if let Some(t) = append_time {
                    set_max_timestamp_and_log_append_time(batch, t)?;
                }
                BatchHeader::parse(batch)?
            } else {
                if header.base_offset < next {
                    return Err(LogError::OutOfOrderOffsets {
                        batch_base_offset: Offset(header.base_offset),
                        log_end_offset: Offset(next),
                    });
                }
                header
            };
            let last = header.last_offset().0;
            if last == i64::MAX {
                return Err(LogError::InvalidBatchFields("offset overflow".into()));
            }
            next = last + 1;
            // A transaction marker's type and coordinator epoch are in its one record.
            let marker = if header.is_control() {
                let bytes = buf.get(pos..pos + len).unwrap_or(&[]);
                match parse_marker(bytes) {
                    Ok(Some(m)) => Some(m),
                    // Only transaction coordinators write control batches on a leader, and
                    // only markers; a follower copies the leader's batches as they are.
                    Ok(None) | Err(_) if !assign => None,
                    Ok(None) => {
                        return Err(LogError::InvalidBatchFields(
                            "a control batch that is not a transaction marker".into(),
                        ))
                    }
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            if marker.is_some_and(|m| !m.commit) {
                aborts.push(pending.len());
            }
            if assign {
                let earlier = updates.iter().map(|(_, u)| *u);
                let check = match (marker, ProducerUpdate::from_header(&header)) {
                    (Some(m), Some(mut u)) => {
                        u.coordinator_epoch = m.coordinator_epoch;
                        self.producers.check_leader_batch_update(&header, u)?
                    }
                    _ => self.producers.check_leader_batch(&header, earlier)?,
                };
                match check {
                    LeaderCheck::Untracked => {}
                    LeaderCheck::Accept(u) => updates.push((pending.len(), u)),
                    LeaderCheck::Duplicate(dup) => {
                        return Ok(AppendInfo {
                            first_offset: dup.first_offset,
                            last_offset: dup.last_offset,
                            max_timestamp: dup.timestamp,
                            offset_of_max_timestamp: dup.last_offset,
                            log_append_time_ms: None,
                            batches: 0,
                            records: 0,
                            bytes: 0,
                            log_start_offset: Offset(self.log_start_offset),
                            duplicate: true,
                        });
                    }
                }
            } else if let Some(mut u) = ProducerUpdate::from_header(&header) {
                if let Some(m) = marker {
                    u.coordinator_epoch = m.coordinator_epoch;
                }
                // A control batch of another type ends no transaction.
                if !header.is_control() || marker.is_some() {
                    updates.push((pending.len(), u));
                }
            }
            records += u64::try_from(header.records_count).unwrap_or(0);
            pending.push(PendingBatch {
                start: pos,
                len,
                header,
            });
            pos += len;
        }
        let (Some(first), Some(last)) = (pending.first().copied(), pending.last().copied()) else {
            return Err(LogError::InvalidBatchFields(
                "no record batches to append".into(),
            ));
        };
        let buf = buf.freeze();

        // Write in groups: as many consecutive batches as fit the active segment, rolling in
        // between when a batch would exceed segment.bytes, segment.ms or the index size.
        let mut i = 0;
        while i < pending.len() {
            let mut j = i;
            let mut group_bytes = 0u64;
            while j < pending.len() {
                let b = &pending[j];
                let active = last_segment(&self.segments)?;
                let nonempty = active.size() + group_bytes > 0;
                let too_far =
                    b.header.last_offset().0.saturating_sub(active.base) > i64::from(i32::MAX);
                let roll = too_far
                    || (nonempty
                        && (active.size() + group_bytes + b.len as u64
                            > self.config.segment_bytes
                            || active.is_older_than(
                                now_ms,
                                b.header.max_timestamp,
                                self.config.effective_segment_ms(),
                            )
                            || active.indexes_full(j - i)));
                if roll {
                    break;
                }
                group_bytes += b.len as u64;
                j += 1;
            }
            if j == i {
                self.roll_at_or_go_offline(pending[i].header.base_offset, now_ms)?;
                continue;
            }
            let config = &self.config;
            let active = self
                .segments
                .values_mut()
                .next_back()
                .ok_or_else(|| LogError::InvalidConfig("log has no segments".into()))?;
            if let Err((e, state_unknown)) = active.append(config, &buf, &pending[i..j], now_ms) {
                if state_unknown {
                    self.offline = true;
                }
                return Err(e);
            }
            // Written: the producer state follows before a later roll snapshots it.
            for (k, u) in updates.iter().filter(|(k, _)| (i..j).contains(k)) {
                if aborts.contains(k) {
                    // The entry needs the state before the marker ends the transaction. A
                    // failed write leaves the index behind the log: offline until reopened,
                    // when recovery rebuilds it from the batches.
                    if let Err(e) = self.index_abort(u, false) {
                        self.offline = true;
                        return Err(e);
                    }
                }
                self.producers.apply(u);
            }
            // Kafka's UnifiedLog assigns each batch's partition leader epoch to the cache; a
            // failed checkpoint write leaves the file behind the log, so the log goes offline
            // and the next open rebuilds the cache from the unflushed batches.
            let mut changed = false;
            for b in &pending[i..j] {
                changed |= self
                    .epochs
                    .assign(b.header.partition_leader_epoch, b.header.base_offset);
            }
            if changed {
                if let Err(e) = self.epochs.write(&*self.storage) {
                    self.offline = true;
                    return Err(e);
                }
            }
            i = j;
        }

        let max = pending
            .iter()
            .map(|b| (b.header.max_timestamp, b.header.last_offset().0))
            .fold((-1i64, first.header.base_offset), |acc, x| {
                if x.0 > acc.0 {
                    x
                } else {
                    acc
                }
            });
        if now_ms.saturating_sub(self.last_expiration_check_ms) >= EXPIRATION_CHECK_INTERVAL_MS {
            self.remove_expired_producers(now_ms);
        }
        self.unflushed_records += records;
        if self.first_unflushed_ms.is_none() {
            self.first_unflushed_ms = Some(now_ms);
        }
        let due = self.config.fsync_before_ack
            || self
                .config
                .flush_messages
                .is_some_and(|n| self.unflushed_records >= n);
        if due {
            self.flush()?;
        } else {
            self.maybe_flush(now_ms)?;
        }
        Ok(AppendInfo {
            first_offset: Offset(first.header.base_offset),
            last_offset: last.header.last_offset(),
            max_timestamp: max.0,
            offset_of_max_timestamp: Offset(max.1),
            log_append_time_ms: append_time,
            batches: pending.len(),
            records,
            bytes: buf.len(),
            log_start_offset: Offset(self.log_start_offset),
            duplicate: false,
        })
    }
}
