//! [`TOPIC_CONFIGS`]: every topic-level config of Apache Kafka 4.x (`LogConfig` /
//! `TopicConfig`), with Kafka's names, types, defaults, validators and broker synonyms
//! (`ServerTopicConfigSynonyms`). The documentation strings are Potok's own words; each says
//! whether Potok enforces the config. A config Potok does not enforce yet is still accepted,
//! validated, stored and described (with its source), as Kafka would, and is listed in
//! `docs/compatibility.md` as "accepted, not enforced".

use super::{def, ConfigType as T, Rule, TopicConfigDef, Unit, I32, LONG_MAX};

/// Not enforced: the sentence every such documentation string ends with.
macro_rules! not_enforced {
    ($doc:literal) => {
        concat!($doc, " Accepted, not enforced by Potok.")
    };
}

/// Every topic config Potok accepts, sorted by name. Kafka 4.x's list, with two deviations:
/// `segment.bytes` may go down to 14 bytes (one batch header; Kafka's floor is 1 MiB) because
/// tests use tiny segments, and `remote.storage.enable` accepts only `false`, which is what a
/// Kafka broker without tiered storage (`remote.log.storage.system.enable=false`, the default)
/// accepts too. `message.format.version`, removed in Kafka 4.0, is accepted and ignored as
/// Kafka 3.x did (see [`super::is_ignored_legacy_config`]); `message.downconversion.enable` and
/// `message.timestamp.difference.max.ms`, also removed in 4.0 (KIP-724, KIP-937), are unknown.
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def("cleanup.policy", T::List, "Comma-separated list of policies for old segments: `delete` removes them by retention time or size, `compact` keeps the latest record per key (the log cleaner).", Rule::ListOf(&["compact", "delete"]), "delete", &[("log.cleanup.policy", Unit::Same)]),
    def("compression.gzip.level", T::Int, "Level used when the broker recompresses batches to gzip (compression.type=gzip): 1 to 9, or -1 for the codec's default (6).", Rule::GzipLevel, "-1", &[("compression.gzip.level", Unit::Same)]),
    def("compression.lz4.level", T::Int, not_enforced!("Level for lz4 recompression (1 to 17); Potok's lz4 codec has a single level."), Rule::Range(1, 17), "9", &[("compression.lz4.level", Unit::Same)]),
    def("compression.type", T::String, "Codec of the batches the topic stores: `producer` keeps each batch as the producer compressed it; gzip, snappy, lz4, zstd or uncompressed make the broker recompress every batch whose codec differs.", Rule::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), "producer", &[("compression.type", Unit::Same)]),
    def("compression.zstd.level", T::Int, "Level used when the broker recompresses batches to zstd (-131072 to 22).", Rule::Range(-131_072, 22), "3", &[("compression.zstd.level", Unit::Same)]),
    def("delete.retention.ms", T::Long, "How long compaction keeps tombstones (records with a null value) after the cleaning that first kept them.", Rule::Range(0, i64::MAX), "86400000", &[("log.cleaner.delete.retention.ms", Unit::Same)]),
    def("file.delete.delay.ms", T::Long, not_enforced!("How long a deleted segment's files stay on disk before removal."), Rule::Range(0, i64::MAX), "60000", &[("log.segment.delete.delay.ms", Unit::Same)]),
    def("flush.messages", T::Long, "Force an fsync after this many records; the default leaves flushing to the operating system.", Rule::Range(1, i64::MAX), LONG_MAX, &[("log.flush.interval.messages", Unit::Same)]),
    def("flush.ms", T::Long, "Force an fsync when unflushed data is this old; the default leaves flushing to the operating system.", Rule::Range(0, i64::MAX), LONG_MAX, &[("log.flush.interval.ms", Unit::Same)]),
    def("follower.replication.throttled.replicas", T::List, not_enforced!("Replicas (partition:broker, or *) whose follower-side replication is throttled; a single node does not replicate."), Rule::ThrottledReplicas, "", &[]),
    def("index.interval.bytes", T::Int, "Bytes appended between two entries of the sparse offset index.", Rule::Range(0, I32), "4096", &[("log.index.interval.bytes", Unit::Same)]),
    def("leader.replication.throttled.replicas", T::List, not_enforced!("Replicas (partition:broker, or *) whose leader-side replication is throttled; a single node does not replicate."), Rule::ThrottledReplicas, "", &[]),
    def("local.retention.bytes", T::Long, not_enforced!("Local size limit of a partition with tiered storage; -2 means retention.bytes."), Rule::Range(-2, i64::MAX), "-2", &[("log.local.retention.bytes", Unit::Same)]),
    def("local.retention.ms", T::Long, not_enforced!("Local time limit of a segment with tiered storage; -2 means retention.ms."), Rule::Range(-2, i64::MAX), "-2", &[("log.local.retention.ms", Unit::Same)]),
    def("max.compaction.lag.ms", T::Long, "Longest time a record may stay uncompacted.", Rule::Range(1, i64::MAX), LONG_MAX, &[("log.cleaner.max.compaction.lag.ms", Unit::Same)]),
    def("max.message.bytes", T::Int, "Largest record batch (after compression) the topic accepts.", Rule::Range(0, I32), "1048588", &[("message.max.bytes", Unit::Same)]),
    def("message.timestamp.after.max.ms", T::Long, "How far a CreateTime record's timestamp may lie ahead of the broker's clock (KIP-937).", Rule::Range(0, i64::MAX), "3600000", &[("log.message.timestamp.after.max.ms", Unit::Same)]),
    def("message.timestamp.before.max.ms", T::Long, "How far a CreateTime record's timestamp may lie behind the broker's clock (KIP-937).", Rule::Range(0, i64::MAX), LONG_MAX, &[("log.message.timestamp.before.max.ms", Unit::Same)]),
    def("message.timestamp.type", T::String, "Whether record timestamps are the producer's (CreateTime) or stamped on append (LogAppendTime).", Rule::OneOf(&["CreateTime", "LogAppendTime"]), "CreateTime", &[("log.message.timestamp.type", Unit::Same)]),
    def("min.cleanable.dirty.ratio", T::Double, "Share of uncompacted log that makes a partition eligible for compaction.", Rule::Fraction, "0.5", &[("log.cleaner.min.cleanable.ratio", Unit::Same)]),
    def("min.compaction.lag.ms", T::Long, "Shortest time a record stays uncompacted.", Rule::Range(0, i64::MAX), "0", &[("log.cleaner.min.compaction.lag.ms", Unit::Same)]),
    def("min.insync.replicas", T::Int, "Replicas that must acknowledge a write with acks=all.", Rule::Range(1, I32), "1", &[("min.insync.replicas", Unit::Same)]),
    def("preallocate", T::Boolean, not_enforced!("Whether new segment files are preallocated to segment.bytes."), Rule::None, "false", &[("log.preallocate", Unit::Same)]),
    def("remote.copy.lag.bytes", T::Long, not_enforced!("Bytes a segment may wait before its copy to tiered storage (Kafka 4.4, KIP-1241); -1 means local.retention.bytes."), Rule::Range(-1, i64::MAX), "-1", &[]),
    def("remote.copy.lag.ms", T::Long, not_enforced!("Time a segment may wait before its copy to tiered storage (Kafka 4.4, KIP-1241); -1 means local.retention.ms."), Rule::Range(-1, i64::MAX), "0", &[]),
    def("remote.log.copy.disable", T::Boolean, not_enforced!("Stop copying segments of a tiered topic to remote storage."), Rule::None, "false", &[]),
    def("remote.log.delete.on.disable", T::Boolean, not_enforced!("Delete remote data when tiered storage is turned off for the topic."), Rule::None, "false", &[]),
    def("remote.storage.enable", T::Boolean, "Tiered storage for the topic. Potok has none, so only false is accepted, as on a Kafka broker with remote.log.storage.system.enable=false.", Rule::NotTrue("Tiered Storage functionality is disabled in the broker. Topic cannot be configured with remote log storage."), "false", &[]),
    def("retention.bytes", T::Long, "Largest size a partition may grow to before its oldest segments are deleted; -1 means unlimited.", Rule::None, "-1", &[("log.retention.bytes", Unit::Same)]),
    def("retention.ms", T::Long, "How long a segment is kept after its newest record; -1 means forever.", Rule::Range(-1, i64::MAX), "604800000", &[("log.retention.ms", Unit::Same), ("log.retention.minutes", Unit::MinutesToMs), ("log.retention.hours", Unit::HoursToMs)]),
    def("segment.bytes", T::Int, "Size at which the active segment is closed and a new one started.", Rule::Range(14, I32), "1073741824", &[("log.segment.bytes", Unit::Same)]),
    def("segment.index.bytes", T::Int, "Preallocated size of each segment's offset and time index.", Rule::Range(24, I32), "10485760", &[("log.index.size.max.bytes", Unit::Same)]),
    def("segment.jitter.ms", T::Long, not_enforced!("Random amount subtracted from segment.ms so that segments do not all roll at once."), Rule::Range(0, i64::MAX), "0", &[("log.roll.jitter.ms", Unit::Same), ("log.roll.jitter.hours", Unit::HoursToMs)]),
    def("segment.ms", T::Long, "Age after which the active segment is closed even if it is not full.", Rule::Range(1, i64::MAX), "604800000", &[("log.roll.ms", Unit::Same), ("log.roll.hours", Unit::HoursToMs)]),
    def("unclean.leader.election.enable", T::Boolean, not_enforced!("Whether a replica outside the ISR may become leader; a single node has no other replica."), Rule::None, "false", &[("unclean.leader.election.enable", Unit::Same)]),
];
