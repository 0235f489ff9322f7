//! The single error type of this crate.

/// Everything that can go wrong while reading, validating, rewriting or (de)compressing batches.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordsError {
    /// The buffer ends before the batch (or header) it started does. When this comes from
    /// [`crate::split_batches`] it means the input ends with a partial batch: a Fetch response
    /// may legitimately do that, and log recovery truncates such a tail.
    #[error("truncated batch at byte {position}: need {needed} bytes, have {available}")]
    Truncated {
        /// Byte position of the incomplete batch within the buffer that was split.
        position: usize,
        /// Bytes the batch needs (its header when the length is known, else the length prefix).
        needed: usize,
        /// Bytes that remain in the buffer from `position`.
        available: usize,
    },
    /// Magic 0 and 1 (the pre-0.11 message sets) are refused, as Kafka 4.0 does (KIP-724).
    #[error(
        "unsupported record batch magic {0}: only magic 2 (Kafka 0.11+) is supported; \
         message format v0/v1 was removed in Kafka 4.0"
    )]
    UnsupportedMagic(i8),
    /// `batchLength` is smaller than a header or disagrees with the bytes supplied.
    #[error("invalid batch length {length}: {reason}")]
    InvalidBatchLength {
        /// The `batchLength` field as read.
        length: i32,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// The CRC-32C stored in the header does not match the bytes from `attributes` to the end.
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// The `crc` field as read.
        stored: u32,
        /// The CRC-32C computed over the batch.
        computed: u32,
    },
    /// A header field or record inside the batch is malformed.
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// The compression codec id in the attributes is not one Kafka defines.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// Decompressing would produce more bytes than the configured limit (a decompression bomb or
    /// simply a batch larger than the broker accepts).
    #[error("decompressed batch exceeds the limit of {limit} bytes")]
    DecompressedTooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The compressed payload could not be decoded.
    #[error("{codec} decompression failed: {message}")]
    Decompress {
        /// Codec name (`gzip`, `snappy`, `lz4`, `zstd`).
        codec: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// Compressing failed (only possible through an IO error inside an encoder).
    #[error("{codec} compression failed: {message}")]
    Compress {
        /// Codec name.
        codec: &'static str,
        /// The encoder's message.
        message: String,
    },
    /// A caller-supplied value cannot be represented in the format (e.g. more records than fit
    /// in an `i32` offset delta).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
