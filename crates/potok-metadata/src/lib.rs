//! The cluster metadata image: Kafka's KRaft metadata records (`TopicRecord`, `PartitionRecord`,
//! `PartitionChangeRecord`, `ConfigRecord`, `RemoveTopicRecord`, `RegisterBrokerRecord`, ...)
//! applied, in log order, to a pure in-memory [`MetadataImage`].
//!
//! # Why Kafka's records
//!
//! These are the records a KRaft controller quorum replicates in `__cluster_metadata`; every
//! broker that applies the same records in the same order derives the same image. Using them
//! for the single-node metadata log now means the controller quorum (issue #17) only has to
//! replicate the log, not change what is in it.
//!
//! # Crate rules
//!
//! No IO, no clock, no tokio: records in, state out. A record that contradicts the image (a
//! partition of an unknown topic, a second topic with an existing name, ...) is an
//! [`MetadataError`], never a panic, because the bytes come from disk or from other nodes.
//! Records this image does not track (ACLs, quotas, delegation tokens, SCRAM credentials,
//! ZooKeeper migration, transaction markers of the metadata log, `NoOpRecord`) are accepted
//! and ignored, as a Kafka broker without those features ignores them.
//!
//! Modules: [`record`] (the record enum and Kafka's on-disk serialisation of one record),
//! [`image`] (the state and `apply`).

pub mod image;
pub mod record;

#[cfg(test)]
mod tests;

pub use image::{BrokerRegistration, MetadataImage, PartitionState, TopicImage};
pub use record::{decode_record, encode_record, MetadataRecord};

use potok_protocol::Uuid;

/// A broker's `node.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerId(pub i32);

impl std::fmt::Display for BrokerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Why a record could not be decoded or applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MetadataError {
    /// The bytes are not one metadata record in Kafka's serialisation.
    #[error("undecodable metadata record: {0}")]
    Decode(String),
    /// A record that could not be encoded (a field beyond the record version's limits).
    #[error("unencodable metadata record: {0}")]
    Encode(String),
    /// An API key this version of Potok does not know.
    #[error("unknown metadata record type {api_key} (version {version})")]
    UnknownRecord {
        /// The record's API key.
        api_key: u16,
        /// The record's version.
        version: u16,
    },
    /// A record that refers to a topic the image does not have.
    #[error("metadata record refers to unknown topic id {0:?}")]
    UnknownTopic(Uuid),
    /// A `TopicRecord` whose name or id is already taken.
    #[error("topic {name} ({id:?}) already exists")]
    TopicExists {
        /// The name in the record.
        name: String,
        /// The id in the record.
        id: Uuid,
    },
    /// A record that refers to a partition the image does not have.
    #[error("metadata record refers to unknown partition {partition} of topic id {topic:?}")]
    UnknownPartition {
        /// The topic.
        topic: Uuid,
        /// The partition index.
        partition: i32,
    },
    /// A record whose fields contradict each other or the image.
    #[error("invalid metadata record: {0}")]
    Invalid(String),
}
