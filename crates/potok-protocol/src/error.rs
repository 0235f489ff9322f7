//! The crate's error types: [`DecodeError`] for hostile or malformed input, [`EncodeError`] for
//! values that cannot be represented at the requested version, [`FrameError`] for framing.
//!
//! They are one `thiserror` enum family for the crate; a broker turns a `DecodeError` into a
//! closed connection (Kafka closes on `InvalidRequestException` while parsing) or, for an unknown
//! API version, into an `UNSUPPORTED_VERSION` ApiVersions answer.

use thiserror::Error;

/// Why bytes could not be decoded. Decoding never panics; every failure is one of these.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended early.
    #[error("not enough bytes: needed {needed}, {remaining} remaining")]
    NotEnoughBytes {
        /// Bytes needed by the next read.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A length prefix was negative but not the null marker `-1`.
    #[error("negative length {len} for {field}")]
    NegativeLength {
        /// The field being decoded.
        field: &'static str,
        /// The length read.
        len: i64,
    },
    /// An array count cannot fit in the remaining input (checked before allocating).
    #[error("{field}: count {count} cannot fit in the {remaining} remaining bytes")]
    CountTooLarge {
        /// The field being decoded.
        field: &'static str,
        /// The count read from the wire.
        count: usize,
        /// Bytes remaining after the count.
        remaining: usize,
    },
    /// Null was sent for a field that is not nullable at this version.
    #[error("null is not allowed for {field}")]
    NullNotAllowed {
        /// The field being decoded.
        field: &'static str,
    },
    /// A string was not valid UTF-8.
    #[error("invalid UTF-8 in {field}")]
    InvalidUtf8 {
        /// The field being decoded.
        field: &'static str,
    },
    /// An unsigned varint was longer than 5 bytes or exceeded 32 bits.
    #[error("varint too long")]
    VarintTooLong,
    /// A known tagged field was longer than its contents.
    #[error("tagged field {tag} has {left} unread bytes")]
    TaggedFieldSize {
        /// The tag.
        tag: u32,
        /// Bytes left after decoding the field.
        left: usize,
    },
    /// A message was decoded at a version outside its valid versions.
    #[error("{message} has no version {version}")]
    UnsupportedMessageVersion {
        /// The message name.
        message: &'static str,
        /// The requested version.
        version: i16,
    },
    /// The request header names an API key Potok does not know.
    #[error("unknown API key {api_key} (version {api_version}, correlation id {correlation_id})")]
    UnknownApiKey {
        /// The key read.
        api_key: i16,
        /// The version read.
        api_version: i16,
        /// The correlation id read, so that the caller can still answer.
        correlation_id: i32,
    },
    /// The request header names a version of a known API outside its valid versions.
    #[error("unsupported version {api_version} of API key {api_key:?} (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// The API key.
        api_key: crate::ApiKey,
        /// The version read.
        api_version: i16,
        /// The correlation id read, so that the caller can answer with UNSUPPORTED_VERSION.
        correlation_id: i32,
    },
}

/// Why a value could not be encoded at a version.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The field holds a non-default value but does not exist at this version and is not
    /// `ignorable` (Kafka throws `UnsupportedVersionException` in the same case).
    #[error("{field} has a non-default value but does not exist at version {version}")]
    UnsupportedField {
        /// The field.
        field: &'static str,
        /// The version requested.
        version: i16,
    },
    /// The field is null but not nullable at this version.
    #[error("{field} is null but not nullable at this version")]
    NullNotAllowed {
        /// The field.
        field: &'static str,
    },
    /// A string, byte string or array is too long for its length prefix.
    #[error("{field} is too long ({len})")]
    TooLong {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// Unknown tagged fields are set but the version is not flexible.
    #[error("tagged fields are set but version {version} of {message} does not support them")]
    TaggedFieldsUnsupported {
        /// The message or struct.
        message: &'static str,
        /// The version requested.
        version: i16,
    },
    /// The message has no such version.
    #[error("{message} has no version {version}")]
    UnsupportedVersion {
        /// The message.
        message: &'static str,
        /// The version requested.
        version: i16,
    },
}

/// Why a frame length prefix was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The length prefix is negative.
    #[error("negative frame size {0}")]
    NegativeSize(i32),
    /// The frame is larger than `socket.request.max.bytes`.
    #[error("frame size {size} exceeds the maximum {max} (socket.request.max.bytes)")]
    TooLarge {
        /// The announced size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
}
