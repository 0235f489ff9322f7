//! The inbox's settings.

use std::time::Duration;

/// How an [`Inbox`](crate::Inbox) connects and records messages.
#[derive(Clone, Debug)]
pub struct InboxConfig {
    /// PostgreSQL connection string (tokio-postgres `key=value` or URL form). No TLS.
    pub db: String,
    /// Kafka `bootstrap.servers`.
    pub bootstrap: String,
    /// The consumer group; also the `consumer_group` column, so several services can share
    /// the tables.
    pub group: String,
    /// Take the message id from this header when the message has it (the outbox relay's `id`
    /// header makes a re-published row count as the same message); else
    /// `(topic, partition, offset)`.
    pub id_header: Option<String>,
    /// The inbox table (`name` or `schema.name`).
    pub inbox_table: String,
    /// The stored-offsets table.
    pub offsets_table: String,
    /// Inbox rows older than this are deleted by [`Inbox::prune_expired`](crate::Inbox::prune_expired).
    /// A message delivered again after its row was pruned is processed again, so this must
    /// exceed the longest time a duplicate can arrive (a re-published outbox row, a producer
    /// retry). Seven days by default, as Kafka's `offsets.retention.minutes`.
    pub retention: Duration,
    /// When set, [`Inbox::recv`](crate::Inbox::recv) prunes at most this often.
    pub prune_interval: Option<Duration>,
    /// Further librdkafka consumer settings (`NAME`, `VALUE`), applied after the inbox's own,
    /// except the three the inbox depends on (see [`InboxConfig::FIXED`]).
    pub kafka: Vec<(String, String)>,
}

impl InboxConfig {
    /// Settings the inbox must own: offsets are stored and committed only by
    /// [`Inbox::process`](crate::Inbox::process), after the database commit.
    pub const FIXED: [&'static str; 3] =
        ["enable.auto.commit", "enable.auto.offset.store", "group.id"];

    /// Defaults for everything but the connection and the group.
    pub fn new(db: &str, bootstrap: &str, group: &str) -> InboxConfig {
        InboxConfig {
            db: db.to_string(),
            bootstrap: bootstrap.to_string(),
            group: group.to_string(),
            id_header: None,
            inbox_table: "inbox".into(),
            offsets_table: "inbox_offsets".into(),
            retention: Duration::from_secs(7 * 24 * 3600),
            prune_interval: None,
            kafka: Vec::new(),
        }
    }
}
