//! The transactional producer: one Kafka transaction per batch, every record of the batch
//! acknowledged before the commit, and (logical mode) the relay's position committed inside the
//! same transaction as a transactional offset commit (KIP-98's `sendOffsetsToTransaction`, the
//! way KIP-618 stores a source connector's offsets atomically with its records).
//!
//! librdkafka's transaction calls block their caller, so they run on tokio's blocking pool,
//! never on an async worker. Any failure aborts the transaction (best effort) and is returned;
//! the caller drops this producer and builds a new one, whose `init_transactions` fences this
//! one and aborts whatever it left open.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;

use crate::error::{OutboxError, Result};
use crate::row::{OutboxRow, Record};

/// How long one blocking transaction call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The position committed with a batch (logical mode).
pub struct PositionCommit {
    pub offsets: TopicPartitionList,
    pub group: ConsumerGroupMetadata,
}

/// A transactional producer for one relay.
pub struct TxnProducer {
    inner: Arc<FutureProducer>,
    transactional_id: String,
}

impl TxnProducer {
    /// Builds the producer; nothing is sent until [`TxnProducer::init`].
    pub fn create(
        bootstrap: &str,
        transactional_id: &str,
        extra: &[(String, String)],
    ) -> Result<TxnProducer> {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("transactional.id", transactional_id)
            .set("enable.idempotence", "true")
            // A relay that dies mid-transaction is replaced by one that fences it at once, so
            // the broker's timeout only matters when no relay comes back.
            .set("transaction.timeout.ms", "60000")
            // Must not exceed transaction.timeout.ms (librdkafka refuses the configuration).
            .set("message.timeout.ms", "30000")
            .set("socket.connection.setup.timeout.ms", "10000");
        for (k, v) in extra {
            cfg.set(k, v);
        }
        let inner: FutureProducer = cfg
            .create()
            .map_err(|e| OutboxError::Config(format!("Kafka producer settings: {e}")))?;
        Ok(TxnProducer {
            inner: Arc::new(inner),
            transactional_id: transactional_id.to_string(),
        })
    }

    async fn blocking<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&FutureProducer) -> Result<T, KafkaError> + Send + 'static,
    {
        let p = Arc::clone(&self.inner);
        let tid = self.transactional_id.clone();
        match tokio::task::spawn_blocking(move || f(&p)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify_txn_error(what, &tid, e)),
            Err(e) => Err(OutboxError::Kafka(format!("{what}: {e}"))),
        }
    }

    /// `init_transactions`: takes over the transactional id, fencing any older relay and
    /// aborting its open transaction.
    pub async fn init(&self) -> Result<()> {
        self.blocking("init_transactions", |p| p.init_transactions(CALL_TIMEOUT))
            .await
    }

    /// Publishes `batch` in one transaction (plus `position`, if any) and commits it. Returns
    /// only after the commit succeeded; on any error the transaction is aborted.
    pub async fn publish(
        &self,
        batch: &[(OutboxRow, Record)],
        position: Option<PositionCommit>,
    ) -> Result<()> {
        self.blocking("begin_transaction", |p| p.begin_transaction())
            .await?;
        match self.send_all(batch, position).await {
            Ok(()) => {
                let r = self
                    .blocking("commit_transaction", |p| p.commit_transaction(CALL_TIMEOUT))
                    .await;
                if r.is_err() {
                    self.abort().await;
                }
                r
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn abort(&self) {
        if let Err(e) = self
            .blocking("abort_transaction", |p| p.abort_transaction(CALL_TIMEOUT))
            .await
        {
            // The next producer's init_transactions aborts it anyway.
            tracing::debug!("abort_transaction: {e}");
        }
    }

    async fn send_all(
        &self,
        batch: &[(OutboxRow, Record)],
        position: Option<PositionCommit>,
    ) -> Result<()> {
        let mut pending = Vec::with_capacity(batch.len());
        for (i, (row, rec)) in batch.iter().enumerate() {
            let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
            for (k, v) in &rec.headers {
                headers = headers.insert(Header {
                    key: k.as_str(),
                    value: Some(v),
                });
            }
            let mut fr: FutureRecord<'_, Vec<u8>, Vec<u8>> =
                FutureRecord::to(&rec.topic).key(&rec.key).headers(headers);
            if let Some(v) = &rec.value {
                fr = fr.payload(v);
            }
            loop {
                match self.inner.send_result(fr) {
                    Ok(f) => {
                        pending.push((i, f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // librdkafka's queue is full: wait for its threads to send some.
                        fr = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(classify_delivery_error(row, rec, e)),
                }
            }
        }
        let mut first_error = None;
        // The broker refuses a whole produce batch when it exceeds max.message.bytes, so every
        // record of that batch reports the size error: the culprit named is the largest one.
        let mut too_large: Option<usize> = None;
        for (i, f) in pending {
            let err = match f.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => {
                    if is_size_error(&e) {
                        let size = |j: usize| record_size(&batch[j].1);
                        if too_large.is_none_or(|j| size(i) > size(j)) {
                            too_large = Some(i);
                        }
                    }
                    classify_delivery_error(&batch[i].0, &batch[i].1, e)
                }
                Err(_) => OutboxError::Kafka("the producer dropped a delivery report".into()),
            };
            // Otherwise the first failure in row order is the one to report (later ones are
            // usually consequences of it, such as an aborted batch).
            first_error.get_or_insert(err);
        }
        if let Some(i) = too_large {
            let (row, rec) = &batch[i];
            return Err(OutboxError::BadRow {
                row: row.describe(),
                reason: format!(
                    "its record ({} bytes of payload) is larger than the topic {:?} accepts (the \
                     topic's max.message.bytes, or the producer's message.max.bytes): the \
                     broker refused the produce batch holding it as too large",
                    rec.value.as_ref().map_or(0, Vec::len),
                    rec.topic
                ),
            });
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if let Some(pos) = position {
            self.blocking("send_offsets_to_transaction", move |p| {
                p.send_offsets_to_transaction(&pos.offsets, &pos.group, CALL_TIMEOUT)
            })
            .await?;
        }
        Ok(())
    }
}

fn is_size_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// A record's size as the broker counts it, near enough to pick the largest of a batch.
fn record_size(rec: &Record) -> usize {
    rec.key.len()
        + rec.value.as_ref().map_or(0, Vec::len)
        + rec
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// A failed delivery: the row's own fault (too large, refused as invalid) stops the relay and
/// names the row; anything else is the broker's and is retried.
fn classify_delivery_error(row: &OutboxRow, rec: &Record, e: KafkaError) -> OutboxError {
    let size = rec.value.as_ref().map_or(0, Vec::len);
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge) => {
            OutboxError::BadRow {
                row: row.describe(),
                reason: format!(
                    "its record ({size} bytes of payload) is larger than the topic {:?} accepts \
                     (the topic's max.message.bytes, or the producer's message.max.bytes): {e}",
                    rec.topic
                ),
            }
        }
        Some(RDKafkaErrorCode::InvalidRecord | RDKafkaErrorCode::InvalidTopic) => {
            OutboxError::BadRow {
                row: row.describe(),
                reason: format!(
                    "the broker refused its record for topic {:?}: {e}",
                    rec.topic
                ),
            }
        }
        Some(RDKafkaErrorCode::TopicAuthorizationFailed) => OutboxError::Config(format!(
            "the relay may not write to topic {:?} (row {}): {e}",
            rec.topic,
            row.describe()
        )),
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced) => {
            OutboxError::Fenced(format!("{e}"))
        }
        _ => OutboxError::Kafka(format!("delivery of row {}: {e}", row.describe())),
    }
}

fn classify_txn_error(what: &str, tid: &str, e: KafkaError) -> OutboxError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced) => {
            OutboxError::Fenced(tid.to_string())
        }
        _ => OutboxError::Kafka(format!("{what}: {e}")),
    }
}
