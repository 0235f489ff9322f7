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
/// release must not stop the broker; its id is then unknown here, as after expiry).
pub(super) fn load_coordinator(
    config: &TxnConfig,
    partitions: &[Arc<Partition>],
) -> Result<TxnCoordinator, String> {
    let mut loader = Loader::new();
    let mut corrupt = 0u64;
    for part in partitions {
        let (mut next, end) = part.offsets().map_err(|e| e.to_string())?;
        while next < end {
            let (slice, _, _) = part
                .read(next, 4 * 1024 * 1024)
                .map_err(|e| e.to_string())?;
            if slice.is_empty() {
                break;
            }
            let bytes: Bytes = slice.read_bytes().map_err(|e| e.to_string())?;
            let mut progressed = false;
            for batch in split_batches(bytes) {
                let batch = batch.map_err(|e| e.to_string())?;
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
    }
    if corrupt > 0 {
        tracing::warn!(
            corrupt,
            "skipped undecodable {TRANSACTION_STATE_TOPIC} records"
        );
    }
    let mut c = TxnCoordinator::new(config.clone());
    c.load(loader);
    Ok(c)
}
