//! Loading the coordinator from `__transaction_state`: every partition is read in full and
//! the latest value per transactional id is kept (a tombstone removes the id), as Kafka's
//! `TransactionStateManager.loadTransactionMetadata` does.

use std::sync::Arc;

use bytes::Bytes;
use potok_records::{split_batches, Offset};
use potok_txn::{Loader, TxnConfig, TxnCoordinator};

use crate::internal_topics::TRANSACTION_STATE_TOPIC;
use crate::topics::Partition;

/// A coordinator rebuilt from `partitions`; transactions found prepared have their markers
/// queued in its outputs. Undecodable records are skipped with a warning (a record of a newer
/// release must not stop the broker; its id is then unknown here, as after expiry). With
/// `to_log_end` (a cluster's leader) each partition is read up to its log end, as Kafka's
/// `TransactionStateManager` loads a partition it was elected for; else up to the high
/// watermark (the same on a single node).
pub(super) fn load_coordinator(
    config: &TxnConfig,
    partitions: &[Arc<Partition>],
    to_log_end: bool,
) -> Result<TxnCoordinator, String> {
    let mut loader = Loader::new();
    for part in partitions {
        read_partition(part, &mut loader, to_log_end)?;
    }
    let mut c = TxnCoordinator::new(config.clone());
    c.load(loader);
    Ok(c)
}

/// Feeds one partition's records to `loader` (see [`load_coordinator`]).
pub(super) fn read_partition(
    part: &Partition,
    loader: &mut Loader,
    to_log_end: bool,
) -> Result<(), String> {
    let mut corrupt = 0u64;
    let (mut next, end) = if to_log_end {
        part.log_bounds()
    } else {
        part.offsets()
    }
    .map_err(|e| e.to_string())?;
    while next < end {
        let (slice, _, _) = if to_log_end {
            part.read_for_follower(next, 4 * 1024 * 1024)
        } else {
            part.read(next, 4 * 1024 * 1024)
        }
        .map_err(|e| e.to_string())?;
        if slice.is_empty() {
            break;
        }
        let bytes: Bytes = slice.read_bytes().map_err(|e| e.to_string())?;
        let mut progressed = false;
        for batch in split_batches(bytes) {
            let batch = batch.map_err(|e| e.to_string())?;
            if batch.header().last_offset() >= end {
                break;
            }
            next = Offset(batch.header().last_offset().0 + 1);
            progressed = true;
            if batch.header().is_control() {
                continue;
            }
            for rec in batch.records().map_err(|e| e.to_string())? {
                let rec = rec.map_err(|e| e.to_string())?;
                let Some(key) = rec.key else {
                    corrupt += 1;
                    continue;
                };
                if loader.add(key, rec.value).is_err() {
                    corrupt += 1;
                }
            }
        }
        if !progressed {
            break;
        }
    }
    if corrupt > 0 {
        tracing::warn!(
            corrupt,
            "skipped undecodable {TRANSACTION_STATE_TOPIC} records"
        );
    }
    Ok(())
}
