//! The `__transaction_state` record formats (KIP-98) and the id-to-partition mapping.
//!
//! Key and value each start with a big-endian `i16` version followed by the body of Kafka's
//! internal `TransactionLogKey` (version 0) / `TransactionLogValue` (version 0, or 1 when a
//! flexible field — previous/next producer id, client transaction version — is set, as Kafka
//! writes), so a data directory is readable by Kafka's `kafka-dump-log
//! --transaction-log-decoder`. A null value is a tombstone: the transactional id expired
//! (`transactional.id.expiration.ms`).

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use potok_protocol::messages::internal::{
    transaction_log_key::TransactionLogKey,
    transaction_log_value::{PartitionsSchema, TransactionLogValue},
};
use potok_protocol::{Decode, Encode};
use potok_records::{ProducerEpoch, ProducerId};

use crate::{TopicPartition, TxnError, TxnState};

/// The longest string a non-flexible Kafka string field can hold (`i16` length prefix).
pub const MAX_STRING_LEN: usize = i16::MAX as usize;

/// The `__transaction_state` partition that owns `transactional_id`: Kafka's
/// `Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions`, with Java's
/// `String.hashCode` over UTF-16 code units. The same function places a group on
/// `__consumer_offsets` (AddOffsetsToTxn), with `offsets.topic.num.partitions`.
pub fn partition_for(id: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in id.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// The stored part of one transactional id's state, as in a `TransactionLogValue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTxn {
    /// The producer id in use.
    pub producer_id: ProducerId,
    /// `PreviousProducerId`: the id before the last epoch-exhaustion switch (-1 if none).
    pub previous_producer_id: ProducerId,
    /// `NextProducerId`: the id a TV2 transaction completing at an exhausted epoch moves to.
    pub next_producer_id: ProducerId,
    /// The current epoch.
    pub producer_epoch: ProducerEpoch,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// The state.
    pub state: TxnState,
    /// The partitions of the transaction (empty outside Ongoing/Prepare*).
    pub partitions: BTreeSet<TopicPartition>,
    /// Last update (ms since the epoch).
    pub last_update_ms: i64,
    /// Start of the current transaction (-1 when none).
    pub start_ms: i64,
    /// 2 when the client runs `transaction.version` 2 (KIP-890 part 2), else 0.
    pub client_transaction_version: i16,
}

fn encode_versioned<T: Encode>(msg: &T, version: i16) -> Result<Bytes, TxnError> {
    let size = msg
        .encoded_size(version)
        .map_err(|source| TxnError::Encode { source })?;
    let mut buf = BytesMut::with_capacity(2 + size);
    buf.put_i16(version);
    msg.encode(&mut buf, version)
        .map_err(|source| TxnError::Encode { source })?;
    Ok(buf.freeze())
}

fn decode_versioned<T: Decode>(
    mut bytes: Bytes,
    what: &'static str,
    max_version: i16,
) -> Result<T, TxnError> {
    if bytes.len() < 2 {
        return Err(TxnError::UnsupportedVersion { what, version: -1 });
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(TxnError::UnsupportedVersion { what, version });
    }
    // Newer versions only append or tag fields, so the highest known version reads them (as
    // Kafka's own readers do).
    T::decode(&mut bytes, version.min(max_version))
        .map_err(|source| TxnError::CorruptRecord { what, source })
}

/// The record key of `transactional_id`.
pub fn encode_key(transactional_id: &str) -> Result<Bytes, TxnError> {
    let key = TransactionLogKey {
        transactional_id: transactional_id.to_owned(),
        ..Default::default()
    };
    encode_versioned(&key, 0)
}

/// Decodes a record key into its transactional id.
pub fn decode_key(bytes: Bytes) -> Result<String, TxnError> {
    let key: TransactionLogKey = decode_versioned(bytes, "key", 0)?;
    Ok(key.transactional_id)
}

/// Encodes a value, at version 0 unless a version-1 field is set.
pub fn encode_value(txn: &StoredTxn) -> Result<Bytes, TxnError> {
    // Group partition ids by topic, as Kafka's layout does; the set is sorted so each topic's
    // partitions are contiguous.
    let mut topics: Vec<PartitionsSchema> = Vec::new();
    for tp in &txn.partitions {
        match topics.last_mut() {
            Some(last) if last.topic == tp.topic => last.partition_ids.push(tp.partition),
            _ => topics.push(PartitionsSchema {
                topic: tp.topic.clone(),
                partition_ids: vec![tp.partition],
                ..Default::default()
            }),
        }
    }
    let value = TransactionLogValue {
        producer_id: txn.producer_id.0,
        previous_producer_id: txn.previous_producer_id.0,
        next_producer_id: txn.next_producer_id.0,
        producer_epoch: txn.producer_epoch.0,
        transaction_timeout_ms: txn.timeout_ms,
        transaction_status: txn.state.status_id(),
        transaction_partitions: Some(topics),
        transaction_last_update_timestamp_ms: txn.last_update_ms,
        transaction_start_timestamp_ms: txn.start_ms,
        client_transaction_version: txn.client_transaction_version,
        unknown_tagged_fields: Vec::new(),
    };
    let flexible = value.previous_producer_id != -1
        || value.next_producer_id != -1
        || value.client_transaction_version != 0;
    encode_versioned(&value, i16::from(flexible))
}

/// Decodes a value.
pub fn decode_value(bytes: Bytes) -> Result<StoredTxn, TxnError> {
    let v: TransactionLogValue = decode_versioned(bytes, "value", 1)?;
    let state =
        TxnState::from_status_id(v.transaction_status).ok_or(TxnError::UnsupportedVersion {
            what: "transaction status",
            version: i16::from(v.transaction_status),
        })?;
    let mut partitions = BTreeSet::new();
    for t in v.transaction_partitions.unwrap_or_default() {
        for p in t.partition_ids {
            partitions.insert(TopicPartition::new(&t.topic, p));
        }
    }
    Ok(StoredTxn {
        producer_id: ProducerId(v.producer_id),
        previous_producer_id: ProducerId(v.previous_producer_id),
        next_producer_id: ProducerId(v.next_producer_id),
        producer_epoch: ProducerEpoch(v.producer_epoch),
        timeout_ms: v.transaction_timeout_ms,
        state,
        partitions,
        last_update_ms: v.transaction_last_update_timestamp_ms,
        start_ms: v.transaction_start_timestamp_ms,
        client_transaction_version: v.client_transaction_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_round_trips_at_both_versions() {
        let mut txn = StoredTxn {
            producer_id: ProducerId(7),
            previous_producer_id: ProducerId(-1),
            next_producer_id: ProducerId(-1),
            producer_epoch: ProducerEpoch(3),
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                TopicPartition::new("a", 1),
                TopicPartition::new("a", 0),
                TopicPartition::new("b", 2),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 10,
            start_ms: 5,
            client_transaction_version: 0,
        };
        let v0 = encode_value(&txn).unwrap();
        assert_eq!(&v0[..2], &[0, 0]);
        assert_eq!(decode_value(v0).unwrap(), txn);
        txn.client_transaction_version = 2;
        txn.next_producer_id = ProducerId(9);
        let v1 = encode_value(&txn).unwrap();
        assert_eq!(&v1[..2], &[0, 1]);
        assert_eq!(decode_value(v1).unwrap(), txn);
        assert_eq!(decode_key(encode_key("tx-1").unwrap()).unwrap(), "tx-1");
    }

    #[test]
    fn short_and_unknown_records_are_errors_not_panics() {
        assert!(decode_key(Bytes::from_static(&[0])).is_err());
        assert!(decode_value(Bytes::from_static(&[0, 0, 1])).is_err());
    }

    #[test]
    fn partition_matches_java_hash() {
        // "" hashes to 0; Java's "abc".hashCode() is 96354.
        assert_eq!(partition_for("", 50), 0);
        assert_eq!(partition_for("abc", 50), 96354 % 50);
    }
}
