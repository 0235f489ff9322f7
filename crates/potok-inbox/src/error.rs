//! The crate's one error type.

/// What can go wrong in the inbox.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// A PostgreSQL statement or the connection failed; the transaction (if any) was rolled
    /// back, so neither the side effects nor the inbox row nor the offset were stored.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The Kafka consumer failed (creating it, subscribing, polling).
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The handler returned an error: its transaction was rolled back, the message counts as
    /// not processed (it is delivered again after a restart or a rebalance).
    #[error("handler failed for message {message_id}: {source}")]
    Handler {
        message_id: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A setting is unusable; the message names it.
    #[error("invalid inbox setting: {0}")]
    Config(String),
    /// Reading the stored offsets for newly assigned partitions failed, so those partitions
    /// were assigned at the broker's committed offsets instead. Side effects are still applied
    /// once (the inbox rows drop what comes again), but messages after the broker's offset
    /// are delivered to the application again.
    #[error("reading the stored offsets at partition assignment failed: {0}")]
    AssignOffsets(String),
    /// A blocking poll task was cancelled or panicked.
    #[error("the consumer poll task failed: {0}")]
    Task(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, InboxError>;
