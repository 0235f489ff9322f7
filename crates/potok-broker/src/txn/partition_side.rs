//! What the coordinator does on the data partitions in process: markers appended to the
//! partitions this broker leads (all of them on a single node; in a cluster those led here,
//! `markers.rs` sending the others), and transactional appends verified against the
//! coordinator under its lock (KIP-890 part 1).

use std::collections::BTreeSet;

use potok_log::LogError;
use potok_protocol::ErrorCode;
use potok_records::{ControlRecordType, ProducerEpoch, ProducerId, RecordBatchBuilder};
use potok_txn::{records, TopicPartition, TxnError, TxnResult};

use super::{cluster, lock, Failpoint, TxnService};
use crate::group::GroupService;
use crate::handlers::delayed_produce::Waiting;
use crate::topics::{now_ms, Partition};

impl TxnService {
    /// Writes the markers of one completion; returns the partitions written (or gone).
    pub(super) fn write_markers(
        &self,
        partitions: &BTreeSet<TopicPartition>,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        result: TxnResult,
        coordinator_epoch: i32,
        groups: &GroupService,
    ) -> Vec<TopicPartition> {
        let marker = match result {
            TxnResult::Commit => ControlRecordType::Commit,
            TxnResult::Abort => ControlRecordType::Abort,
        };
        let mut written = Vec::with_capacity(partitions.len());
        for tp in partitions {
            let now = now_ms();
            let r = if tp.topic == crate::internal_topics::GROUP_METADATA_TOPIC {
                groups
                    .write_txn_marker(
                        tp.partition,
                        producer_id,
                        epoch,
                        marker,
                        coordinator_epoch,
                        now,
                    )
                    .map(|_| ())
            } else {
                match self
                    .topics
                    .get(&tp.topic)
                    .and_then(|t| t.partition(tp.partition))
                {
                    // A deleted partition needs no marker (Kafka's marker channel drops it).
                    None => Ok(()),
                    Some(part) => {
                        write_marker(&part, producer_id, epoch, marker, coordinator_epoch, now)
                            .map(|_| ())
                    }
                }
            };
            match r {
                Ok(()) => written.push(tp.clone()),
                Err(e) => {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, error = %e, "writing a transaction marker failed; retried later");
                }
            }
            if self.failpoint == Some(Failpoint::AfterFirstMarker)
                && partitions.len() > 1
                && written.len() == 1
            {
                tracing::error!("failpoint after-first-marker: aborting the process");
                std::process::abort();
            }
        }
        written
    }

    /// Verifies that `tp` belongs to the ongoing transaction of `transactional_id` held by
    /// `producer_id`/`epoch` (KIP-890 part 1) and runs `append` under the coordinator's lock,
    /// so no marker can be written in between. A failed verification answers Kafka's produce
    /// codes: an older epoch or another producer id `INVALID_PRODUCER_EPOCH`, a transaction
    /// still completing `CONCURRENT_TRANSACTIONS` (retriable), anything else
    /// `INVALID_TXN_STATE`.
    ///
    /// In a cluster, when another broker coordinates the id, the batch was verified by that
    /// broker with `guard` (`verify.rs`): it is appended if the guard still stands or the
    /// producer's transaction is open on the partition (no marker came in between, since
    /// markers are written under this lock), else refused with the retriable
    /// NOT_ENOUGH_REPLICAS (verified again on the client's retry) when it was never verified
    /// here, or INVALID_TXN_STATE when its transaction ended since.
    pub fn append_verified<R>(
        &self,
        transactional_id: &str,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        tp: TopicPartition,
        guard: Option<u64>,
        append: impl FnOnce() -> R,
    ) -> std::result::Result<R, ErrorCode> {
        let inner = &mut *lock(&self.inner);
        if self.owner(inner, transactional_id).is_err() {
            return match self.remotely_verified(&tp, producer_id, epoch, guard) {
                Some(true) => Ok(append()),
                Some(false) => Err(ErrorCode::InvalidTxnState),
                None => Err(ErrorCode::NotEnoughReplicas),
            };
        }
        let now = now_ms();
        let verified = inner.coordinator.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            std::slice::from_ref(&tp),
            true,
            now,
        );
        match verified {
            Ok(()) => Ok(append()),
            Err(TxnError::ProducerFenced | TxnError::InvalidProducerEpoch) => {
                Err(ErrorCode::InvalidProducerEpoch)
            }
            Err(TxnError::ConcurrentTransactions) => Err(ErrorCode::ConcurrentTransactions),
            Err(_) => Err(ErrorCode::InvalidTxnState),
        }
    }

    /// Runs `f` with the coordinator locked and the `__consumer_offsets` partition of a
    /// TxnOffsetCommit verified to be in the transaction (KIP-890 for TxnOffsetCommit), so
    /// that the offsets are written while the transaction is still ongoing. When another
    /// broker coordinates the id (a cluster), it verified the partition with `guard`, checked
    /// as in [`Self::append_verified`] (a TxnOffsetCommit never verified here gets the
    /// retriable CONCURRENT_TRANSACTIONS).
    pub fn with_verified_offsets<R>(
        &self,
        transactional_id: &str,
        (producer_id, epoch): (ProducerId, ProducerEpoch),
        group_id: &str,
        offsets_partitions: i32,
        guard: Option<u64>,
        f: impl FnOnce() -> R,
    ) -> std::result::Result<R, TxnError> {
        let inner = &mut *lock(&self.inner);
        let tp = TopicPartition::new(
            crate::internal_topics::GROUP_METADATA_TOPIC,
            records::partition_for(group_id, offsets_partitions),
        );
        if self.owner(inner, transactional_id).is_err() {
            return match self.remotely_verified(&tp, producer_id, epoch, guard) {
                Some(true) => Ok(f()),
                Some(false) => Err(TxnError::InvalidTxnState),
                None => Err(TxnError::ConcurrentTransactions),
            };
        }
        inner.coordinator.add_partitions(
            transactional_id,
            producer_id,
            epoch,
            std::slice::from_ref(&tp),
            true,
            now_ms(),
        )?;
        Ok(f())
    }

    /// Writes one marker now, under the coordinator's lock (the WriteTxnMarkers API and a
    /// cluster's markers to partitions led here). In a cluster, returns what the marker's
    /// answer waits for (the partition's ISR).
    pub fn write_marker_now(
        &self,
        groups: &GroupService,
        tp: &TopicPartition,
        producer_id: ProducerId,
        epoch: ProducerEpoch,
        result: TxnResult,
        coordinator_epoch: i32,
    ) -> std::result::Result<Option<Waiting>, LogError> {
        let _inner = lock(&self.inner);
        // A verification of this producer's writes on the partition made before the marker
        // no longer lets them in (KIP-890, `verify.rs`), unless it is the next transaction's.
        self.clear_guard(tp, producer_id, epoch);
        let marker = match result {
            TxnResult::Commit => ControlRecordType::Commit,
            TxnResult::Abort => ControlRecordType::Abort,
        };
        let now = now_ms();
        let part = self
            .topics
            .get(&tp.topic)
            .and_then(|t| t.partition(tp.partition))
            .ok_or(LogError::Offline)?;
        let info = if tp.topic == crate::internal_topics::GROUP_METADATA_TOPIC {
            groups.write_txn_marker(
                tp.partition,
                producer_id,
                epoch,
                marker,
                coordinator_epoch,
                now,
            )?
        } else {
            write_marker(&part, producer_id, epoch, marker, coordinator_epoch, now)?
        };
        Ok(self
            .cluster
            .is_some()
            .then(|| cluster::waiting_for(&self.topics, &tp.topic, &part, &info)))
    }
}

fn write_marker(
    part: &Partition,
    producer_id: ProducerId,
    epoch: ProducerEpoch,
    marker: ControlRecordType,
    coordinator_epoch: i32,
    now: i64,
) -> std::result::Result<potok_log::AppendInfo, LogError> {
    let batch = RecordBatchBuilder::end_transaction_marker(
        producer_id,
        epoch,
        marker,
        coordinator_epoch,
        now,
    )
    .build()
    .map_err(LogError::InvalidBatch)?;
    part.append(batch.as_bytes().clone(), now)
}
