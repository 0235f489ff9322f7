//! The single error type of the broker crate, [`BrokerError`].
//!
//! Errors that belong to one partition or topic of a request are not `BrokerError`s: handlers
//! turn them into Kafka error codes in the response (this crate is the only one that maps
//! domain errors to error codes). A `BrokerError` returned by a handler closes the connection,
//! which is what Kafka does when it cannot answer a request at all.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong in the broker outside a per-partition answer.
#[derive(Debug, Error)]
pub enum BrokerError {
    /// A setting in the configuration file or a `--set` override is unknown or invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An IO operation failed.
    #[error("io error on {path}: {source}")]
    Io {
        /// The file, directory or address involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata log on disk cannot be understood.
    #[error("corrupt metadata log {path}: {reason}")]
    CorruptMetadata {
        /// The metadata log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory is in an on-disk format this Potok cannot read (a newer one, or
    /// an older one it cannot migrate).
    #[error("unsupported data directory {path}: {reason}")]
    DataFormat {
        /// The file that names or holds the format.
        path: PathBuf,
        /// What is unsupported, naming the version.
        reason: String,
    },
    /// A partition log failed in a way that is not a per-partition error code.
    #[error(transparent)]
    Log(#[from] potok_log::LogError),
    /// A response could not be encoded (a bug or a value out of range for the version).
    #[error("cannot encode response: {0}")]
    Encode(#[from] potok_protocol::EncodeError),
    /// A request could not be decoded.
    #[error("cannot decode request: {0}")]
    Decode(#[from] potok_protocol::DecodeError),
    /// A request arrived for an API the handler does not serve (a registry bug).
    #[error("no handler for {0}")]
    NoHandler(&'static str),
}

impl BrokerError {
    /// Wraps an IO error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> BrokerError {
        BrokerError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;
