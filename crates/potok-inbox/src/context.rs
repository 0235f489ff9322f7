//! The consumer context whose rebalance callback assigns newly assigned partitions at the
//! offsets stored in the database.
//!
//! Why here and not a seek after the first poll: a seek happens after librdkafka has already
//! started fetching from the broker's committed offset, so messages between that offset and the
//! stored one can reach the application first. Setting the offsets in the assignment itself
//! (incremental assign under the cooperative protocol, KIP-429; assign under the eager one)
//! means the first fetch starts at the stored position.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaResult;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;

/// How long the rebalance callback waits for the stored offsets before it gives up and
/// assigns at the broker's offsets (the callback blocks the consumer's poll meanwhile).
const READ_OFFSETS_TIMEOUT: Duration = Duration::from_secs(10);

/// The stored offsets lookup the callback runs.
pub struct InboxContext {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) db: Arc<tokio_postgres::Client>,
    pub(crate) group: String,
    pub(crate) read_offsets: String,
    /// An assignment that fell back to the broker's offsets; `recv` reports it once.
    pub(crate) assign_error: Mutex<Option<String>>,
}

impl InboxContext {
    /// Fills the stored next offsets into `tpl`; partitions without a stored offset keep
    /// `Invalid`, which makes librdkafka use the committed offset or `auto.offset.reset`.
    fn apply_stored(&self, tpl: &mut TopicPartitionList) -> Result<usize, String> {
        let mut topics: Vec<String> = tpl
            .elements()
            .iter()
            .map(|e| e.topic().to_string())
            .collect();
        topics.sort();
        topics.dedup();
        let db = self.db.clone();
        let sql = self.read_offsets.clone();
        let group = self.group.clone();
        // The callback runs inside librdkafka's poll, which `Inbox::recv` calls on a blocking
        // thread, so blocking on the runtime here does not stall an async worker.
        let rows = self
            .runtime
            .block_on(async move {
                tokio::time::timeout(READ_OFFSETS_TIMEOUT, db.query(&sql, &[&group, &topics])).await
            })
            .map_err(|_| format!("no answer within {READ_OFFSETS_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        let mut applied = 0;
        for row in rows {
            let topic: String = row.get(0);
            let partition: i32 = row.get(1);
            let next: i64 = row.get(2);
            // Only partitions in this assignment: the table holds every partition the group
            // ever processed.
            if tpl.find_partition(&topic, partition).is_some() {
                tpl.set_partition_offset(&topic, partition, Offset::Offset(next))
                    .map_err(|e| e.to_string())?;
                applied += 1;
            }
        }
        Ok(applied)
    }
}

impl ClientContext for InboxContext {}

impl ConsumerContext for InboxContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result: KafkaResult<()> = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                match self.apply_stored(tpl) {
                    Ok(n) => tracing::info!(
                        "inbox: assigned {} partition(s), {n} at offsets stored in the database",
                        tpl.count()
                    ),
                    Err(e) => {
                        tracing::warn!(
                            "inbox: stored offsets unreadable, assigning at the broker's: {e}"
                        );
                        *self.assign_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                }
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Nothing to flush: every processed message's offset is already in the
                // database and was committed to the broker after it.
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!("inbox: rebalance error {other:?}; dropping the assignment");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!("inbox: applying the rebalance failed: {e}");
        }
    }
}
