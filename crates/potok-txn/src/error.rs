//! The crate's error type: every way a transactional request or a stored record can be refused.
//! The broker maps the protocol variants to Kafka error codes (the names say which).

use potok_protocol::{DecodeError, EncodeError};

/// Errors of `potok-txn`.
#[derive(Debug, thiserror::Error)]
pub enum TxnError {
    /// `INVALID_REQUEST`: an empty or over-long `transactional.id`, or an empty partition list.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// `INVALID_TRANSACTION_TIMEOUT`: the timeout is not in `1..=transaction.max.timeout.ms`.
    #[error("transaction timeout {timeout_ms} ms outside 1..={max_ms}")]
    InvalidTransactionTimeout {
        /// The requested timeout.
        timeout_ms: i32,
        /// `transaction.max.timeout.ms`.
        max_ms: i32,
    },
    /// `PRODUCER_FENCED`: a newer epoch of this transactional id exists (KIP-588).
    #[error("producer fenced: a newer epoch of the transactional id exists")]
    ProducerFenced,
    /// `INVALID_PRODUCER_EPOCH`: an epoch newer than the coordinator's, which no producer can hold.
    #[error("invalid producer epoch")]
    InvalidProducerEpoch,
    /// `INVALID_PRODUCER_ID_MAPPING`: the transactional id is unknown or holds another producer id.
    #[error("producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    /// `CONCURRENT_TRANSACTIONS`: a previous transaction is still completing; retry later.
    #[error("a previous transaction is still completing")]
    ConcurrentTransactions,
    /// `INVALID_TXN_STATE`: the request does not fit the transaction's state.
    #[error("invalid transaction state")]
    InvalidTxnState,
    /// `TRANSACTIONAL_ID_NOT_FOUND` (DescribeTransactions).
    #[error("transactional id not found")]
    TransactionalIdNotFound,
    /// The injected producer-id allocator could not give an id (`PRODUCER_ID_EXHAUSTED` or a
    /// controller outage, which the broker maps to `COORDINATOR_NOT_AVAILABLE`).
    #[error("no producer id available: {0}")]
    ProducerIdUnavailable(String),
    /// A `__transaction_state` record could not be decoded.
    #[error("corrupt __transaction_state record ({what}): {source}")]
    CorruptRecord {
        /// Which part failed.
        what: &'static str,
        /// The codec's error.
        #[source]
        source: DecodeError,
    },
    /// A record was too short for its version prefix or had a version we cannot read, or held
    /// an unknown transaction status.
    #[error("unsupported __transaction_state record ({what}) version/status {version}")]
    UnsupportedVersion {
        /// Which part.
        what: &'static str,
        /// The version or status read.
        version: i16,
    },
    /// Encoding failed: strings are checked on the way in, so this is a bug, not bad input.
    #[error("cannot encode __transaction_state record: {source}")]
    Encode {
        /// The codec's error.
        #[source]
        source: EncodeError,
    },
}
