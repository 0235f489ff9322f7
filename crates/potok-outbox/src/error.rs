//! The crate's one error type. Each variant says whether the relay may retry (the broker or the
//! database was unreachable for a while) or must stop (a row or a setting is wrong, and skipping
//! it would break the per-aggregate order the relay promises).

/// Everything that can stop or interrupt the relay.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A setting is wrong or the database is not prepared for the chosen mode; names the setting.
    #[error("{0}")]
    Config(String),
    /// A row cannot be published as it is; names the row. The relay stops without skipping it.
    #[error("outbox row {row}: {reason}")]
    BadRow {
        /// The row's id (and aggregate, when known).
        row: String,
        /// What is wrong with it.
        reason: String,
    },
    /// PostgreSQL refused or lost the connection; retried with backoff unless it is a
    /// permission or schema error (those are turned into [`OutboxError::Config`]).
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// The replication stream failed; retried with backoff.
    #[error("replication stream: {0}")]
    Replication(String),
    /// The broker refused or timed out; retried with backoff.
    #[error("Kafka: {0}")]
    Kafka(String),
    /// The producer was fenced by another relay with the same transactional.id: this relay
    /// stops, the other one owns the outbox now.
    #[error("fenced by another relay with transactional.id {0}: stopping")]
    Fenced(String),
    /// The pgoutput stream held a message this relay cannot decode.
    #[error("pgoutput: {0}")]
    Decode(String),
    /// Local IO (the metrics listener, the runtime).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl OutboxError {
    /// True when the relay should reconnect and try again after a backoff; false when it must
    /// stop (a bad row, a bad setting, fenced).
    pub fn is_retriable(&self) -> bool {
        match self {
            OutboxError::Db(e) => db_error_is_retriable(e),
            OutboxError::Replication(_) | OutboxError::Kafka(_) => true,
            OutboxError::Io(_) => true,
            OutboxError::Config(_)
            | OutboxError::BadRow { .. }
            | OutboxError::Fenced(_)
            | OutboxError::Decode(_) => false,
        }
    }
}

/// A PostgreSQL error is worth retrying when the connection broke or the server is starting or
/// shutting down; SQL states of class 42 (syntax, missing objects, privileges) and 28
/// (authentication) will not fix themselves.
fn db_error_is_retriable(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            !(c.starts_with("42") || c.starts_with("28") || c.starts_with("22"))
        }
    }
}

/// The crate's result type.
pub type Result<T, E = OutboxError> = std::result::Result<T, E>;
