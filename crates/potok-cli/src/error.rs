//! The one error type of the CLI crate.
//!
//! A `thiserror` enum rather than `anyhow`, even though this is binary-side code: the project keeps
//! one `thiserror` enum per library crate, and the named variants let the binary print one clear
//! line per failure ("topic 'x' does not exist") instead of a chain of context strings, and let
//! tests match the failure kinds that the issue names (broker unreachable, unknown topic, partition
//! count decrease, authorization).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Everything a `potok` client subcommand can fail with. `Display` is the single line printed to
/// stderr before the process exits non-zero.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No broker answered within the request timeout.
    #[error("cannot reach a broker at {bootstrap} within {timeout_ms} ms ({detail})")]
    Unreachable {
        bootstrap: String,
        timeout_ms: u64,
        detail: String,
    },
    /// The topic does not exist on the cluster.
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    /// The partition does not exist in the topic.
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: i32,
        count: usize,
    },
    /// The consumer group does not exist (or has neither members nor committed offsets).
    #[error("group '{0}' does not exist")]
    UnknownGroup(String),
    /// Kafka never shrinks a topic: records are placed by `hash(key) % partitions`, so removing a
    /// partition would lose its data and silently re-route keys.
    #[error("topic '{topic}' has {current} partitions; the partition count can only grow (asked for {requested})")]
    PartitionsDecrease {
        topic: String,
        current: usize,
        requested: usize,
    },
    /// The broker refused the operation for lack of an ACL.
    #[error("not authorized: {0}")]
    Authorization(String),
    /// A group offset reset was asked for while the group has live members, which would be
    /// overwritten by their next commit (Kafka's `kafka-consumer-groups.sh` refuses the same).
    #[error("group '{group}' is {state} with {members} member(s); offsets can only be reset while it is inactive")]
    GroupActive {
        group: String,
        state: String,
        members: usize,
    },
    /// A command-line value that clap could not check on its own.
    #[error("{0}")]
    Usage(String),
    /// Some records were not acknowledged by the broker.
    #[error("{failed} of {total} records were not delivered; first error: {first}")]
    Delivery {
        failed: u64,
        total: u64,
        first: String,
    },
    /// The broker answered an admin or group request with an error code.
    #[error("{context}: {code}")]
    Broker {
        context: String,
        code: RDKafkaErrorCode,
    },
    /// librdkafka reported an error.
    #[error("{context}: {source}")]
    Kafka {
        context: String,
        #[source]
        source: KafkaError,
    },
    /// Reading stdin or writing stdout failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a librdkafka error, turning the codes that the issue wants reported specially into
    /// their own variants.
    pub(crate) fn kafka(context: impl Into<String>, source: KafkaError) -> Error {
        let context = context.into();
        match source.rdkafka_error_code() {
            Some(code) if is_authorization(code) => {
                Error::Authorization(format!("{context}: {code}"))
            }
            _ => Error::Kafka { context, source },
        }
    }

    /// Wraps an error code returned for one item of a batched admin request.
    pub(crate) fn broker(context: impl Into<String>, code: RDKafkaErrorCode) -> Error {
        let context = context.into();
        if is_authorization(code) {
            Error::Authorization(format!("{context}: {code}"))
        } else {
            Error::Broker { context, code }
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// True when the error is a closed stdout (`potok consume ... | head`), which a command-line
    /// tool treats as a normal end rather than a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

fn is_authorization(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::GroupAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
            | RDKafkaErrorCode::SaslAuthenticationFailed
    )
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
