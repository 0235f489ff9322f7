//! The group service's part of transactions: TxnOffsetCommit records are appended as a
//! transactional batch of the committing producer (as Kafka's `GroupMetadataManager.storeOffsets`
//! does with a producer id), the transaction coordinator's COMMIT/ABORT marker is appended to
//! the group's `__consumer_offsets` partition and resolves the pending offsets, and replay at
//! start honours the markers it finds (offsets of an aborted transaction never come back; those
//! of a transaction whose marker is missing wait for it again).

use std::sync::Arc;

use potok_group::{Loader, PartitionResults, PersistRecord, TxnOffsetCommitRequest};
use potok_log::{AppendInfo, LogError};
use potok_protocol::ErrorCode;
use potok_records::{
    ControlRecordType, NewRecord, ProducerEpoch, ProducerId, RecordBatch, RecordBatchBuilder,
};

use super::{lock, GroupService, Inner, OFFSETS_TOPIC};
use crate::handlers::delayed_produce::Waiting;
use crate::topics::Partition;

impl GroupService {
    /// TxnOffsetCommit: the coordinator checks the group (KIP-447) and the offsets are written
    /// in a transactional batch of the producer; they become the group's offsets at the COMMIT
    /// marker ([`Self::write_txn_marker`]). `Err(code)` when the append failed. In a cluster,
    /// also the appends the answer waits for (the `__consumer_offsets` ISR, as Kafka's
    /// coordinator appends with `acks=all`).
    pub fn commit_txn_offsets_waiting(
        &self,
        req: &TxnOffsetCommitRequest,
    ) -> (
        std::result::Result<PartitionResults, ErrorCode>,
        Vec<Waiting>,
    ) {
        let (r, replies, failed, waits) = self.call_inner(|c, now| c.commit_txn_offsets(now, req));
        self.deliver(replies, failed);
        (failed.map_or(Ok(r), Err), waits)
    }

    /// Whether an offset of the group for the partition waits for a transaction's marker
    /// (OffsetFetch `require_stable`, KIP-447).
    pub fn has_pending_txn_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        lock(&self.inner)
            .coordinator
            .has_pending_txn_offset(group, topic, partition)
    }

    /// Appends the COMMIT or ABORT marker of a transaction to `__consumer_offsets` partition
    /// `partition` and then applies or drops the transaction's offsets there, under the
    /// service's lock so that the log and the coordinator change together.
    pub fn write_txn_marker(
        &self,
        partition: i32,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        marker: ControlRecordType,
        coordinator_epoch: i32,
        now: i64,
    ) -> std::result::Result<AppendInfo, LogError> {
        let mut inner = lock(&self.inner);
        if let Err(e) = self.ensure_locked(&mut inner) {
            tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
            return Err(LogError::Offline);
        }
        let part = offsets_partition(&inner, partition)?;
        let batch = RecordBatchBuilder::end_transaction_marker(
            producer_id,
            epoch,
            marker,
            coordinator_epoch,
            now,
        )
        .build()
        .map_err(LogError::InvalidBatch)?;
        let info = part.append(batch.as_bytes().clone(), now)?;
        inner.coordinator.complete_txn(
            partition,
            producer_id.0,
            marker == ControlRecordType::Commit,
        );
        Ok(info)
    }

    /// Appends TxnOffsetCommit records as one transactional batch of the producer. Its
    /// sequence continues the producer's last batch on this partition (0 after an epoch
    /// change), so the log's idempotence check accepts it; only this service writes the
    /// partition, under its lock, so nothing can come in between.
    pub(super) fn persist_transactional(
        &self,
        inner: &mut Inner,
        partition: i32,
        records: &[PersistRecord],
        producer_id: i64,
        epoch: i16,
        now: i64,
    ) -> std::result::Result<(), LogError> {
        if let Err(e) = self.ensure_locked(inner) {
            tracing::error!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
            return Err(LogError::Offline);
        }
        let part = offsets_partition(inner, partition)?;
        let sequence = part.with_log(|log| {
            Ok(log
                .producer_state()
                .get(ProducerId(producer_id))
                .filter(|e| e.epoch.0 == epoch)
                .and_then(|e| e.batches().last().map(|b| b.last_seq))
                .map_or(0, |last| if last == i32::MAX { 0 } else { last + 1 }))
        })?;
        let mut b = RecordBatchBuilder::new()
            .producer(ProducerId(producer_id), ProducerEpoch(epoch), sequence)
            .transactional(true);
        for r in records {
            b.push(NewRecord {
                timestamp: now,
                key: Some(r.key.clone()),
                value: r.value.clone(),
                headers: Vec::new(),
            });
        }
        let batch = b.build().map_err(LogError::InvalidBatch)?;
        let info = part.append(batch.as_bytes().clone(), now)?;
        if self.cluster.is_some() {
            let w = super::cluster::waiting(&self.topics, &part, &info);
            inner.waits.push(w);
        }
        Ok(())
    }
}

fn offsets_partition(inner: &Inner, partition: i32) -> Result<Arc<Partition>, LogError> {
    usize::try_from(partition)
        .ok()
        .and_then(|i| inner.partitions.get(i))
        .cloned()
        .ok_or(LogError::Offline)
}

/// Feeds one stored batch to the loader: plain records at once, a transaction's records under
/// its producer until its marker, markers as the end of their producer's transaction.
pub(super) fn replay_batch(batch: &RecordBatch, loader: &mut Loader) -> Result<(), String> {
    let h = batch.header();
    let producer_id = h.producer_id;
    let control = h.is_control();
    let transactional = h.is_transactional();
    for rec in batch.records().map_err(|e| e.to_string())? {
        let rec = rec.map_err(|e| e.to_string())?;
        if control {
            match rec.key.as_deref().and_then(ControlRecordType::parse) {
                Some(ControlRecordType::Commit) => loader.end_txn(producer_id, true),
                Some(ControlRecordType::Abort) => loader.end_txn(producer_id, false),
                None => {}
            }
        } else if transactional {
            loader.apply_txn(producer_id, rec.key.as_deref(), rec.value.as_deref());
        } else {
            loader.apply(rec.key.as_deref(), rec.value.as_deref());
        }
    }
    Ok(())
}
