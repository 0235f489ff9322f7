//! The crate's error type.
//!
//! Group APIs answer with Kafka error codes (most outcomes are "errors" only from the client's
//! point of view, e.g. `REBALANCE_IN_PROGRESS` tells a member to rejoin), so the request methods
//! of [`crate::GroupCoordinator`] return [`potok_protocol::ErrorCode`]s inside their response
//! types. [`GroupError`] covers what can go wrong outside the protocol: decoding records read
//! back from `__consumer_offsets`.

use potok_protocol::{DecodeError, EncodeError};

/// Errors of `potok-group`.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    /// A `__consumer_offsets` record key or value could not be decoded.
    #[error("corrupt __consumer_offsets record ({what}): {source}")]
    CorruptRecord {
        /// Which part of the record failed (key, offset value, group value).
        what: &'static str,
        /// The codec's error.
        #[source]
        source: DecodeError,
    },
    /// A record key or value was too short to carry its 2-byte version prefix, or carried a
    /// version this coordinator cannot read.
    #[error("unsupported __consumer_offsets record ({what}) version {version}")]
    UnsupportedVersion {
        /// Which part of the record.
        what: &'static str,
        /// The version read (-1 when the prefix was missing).
        version: i16,
    },
    /// Encoding a record failed. The coordinator checks every string's length on the way in,
    /// so this indicates a bug rather than bad input.
    #[error("cannot encode __consumer_offsets record: {source}")]
    Encode {
        /// The codec's error.
        #[source]
        source: EncodeError,
    },
}
