//! Topic administration: CreateTopics edge cases (names, counts, replication, configs,
//! validate_only), DeleteTopics, Metadata, CreatePartitions, DescribeCluster.

use super::{sc, Scenario};
use crate::ops::topic;
use potok_protocol::Uuid;

pub fn all() -> Vec<Scenario> {
    vec![
        sc("topic-create-and-describe", |s| {
            let t = s.n("t");
            s.create("create", topic(&t, 3));
            s.metadata("metadata", &[&t], false);
            s.metadata_all("metadata-all");
        }),
        sc("topic-already-exists", |s| {
            let t = s.n("t");
            s.create("first", topic(&t, 1));
            s.create("second", topic(&t, 2));
        }),
        sc("topic-invalid-names", |s| {
            let names = ["", ".", "..", "a b", "a/b", "t\u{e4}", "a:b"];
            let topics: Vec<_> = names.iter().map(|n| topic(n, 1)).collect();
            s.create_topics("create", &topics, false);
        }),
        sc("topic-name-length", |s| {
            let base = s.n("");
            let ok = format!("{base}{}", "a".repeat(249 - base.len()));
            let long = format!("{base}{}", "b".repeat(250 - base.len()));
            s.create("create-249", topic(&ok, 1));
            s.create("create-250", topic(&long, 1));
        }),
        sc("topic-name-collision", |s| {
            let (dot, underscore) = (s.n("a.b"), s.n("a_b"));
            s.create("create-dot", topic(&dot, 1));
            s.create("create-underscore", topic(&underscore, 1));
            s.metadata("metadata", &[&dot, &underscore], false);
        }),
        sc("topic-partition-counts", |s| {
            let topics = [
                topic(&s.n("zero"), 0),
                topic(&s.n("minus-two"), -2),
                topic(&s.n("default"), -1),
                topic(&s.n("one"), 1),
            ];
            s.create_topics("create", &topics, false);
            s.metadata_all("metadata");
        }),
        sc("topic-partition-counts-huge", |s| {
            let topics = [
                topic(&s.n("ten-thousand-one"), 10_001),
                topic(&s.n("max"), i32::MAX),
            ];
            s.create_topics("validate", &topics, true);
        }),
        sc("topic-replication-factors", |s| {
            let topics = [
                topic(&s.n("rf3"), 1).rf(3),
                topic(&s.n("rf0"), 1).rf(0),
                topic(&s.n("rf-2"), 1).rf(-2),
                topic(&s.n("rf1"), 1).rf(1),
            ];
            s.create_topics("create", &topics, false);
        }),
        sc("topic-manual-assignment", |s| {
            let topics = [
                topic(&s.n("ok"), -1).assign(0, &[1]).assign(1, &[1]),
                topic(&s.n("with-count"), 2).assign(0, &[1]),
                topic(&s.n("unknown-broker"), -1).assign(0, &[7]),
                topic(&s.n("duplicate-broker"), -1).assign(0, &[1, 1]),
                topic(&s.n("gap"), -1).assign(1, &[1]),
            ];
            s.create_topics("create", &topics, false);
            s.metadata("metadata", &[&s.n("ok")], false);
        }),
        sc("topic-unknown-config", |s| {
            s.create("create", topic(&s.n("t"), 1).config("no.such.config", "1"));
        }),
        sc("topic-invalid-config-values", |s| {
            let topics = [
                topic(&s.n("retention"), 1).config("retention.ms", "abc"),
                topic(&s.n("policy"), 1).config("cleanup.policy", "bogus"),
                topic(&s.n("isr"), 1).config("min.insync.replicas", "0"),
                topic(&s.n("codec"), 1).config("compression.type", "brotli"),
                topic(&s.n("max-bytes"), 1).config("max.message.bytes", "-5"),
                topic(&s.n("ts-type"), 1).config("message.timestamp.type", "Bogus"),
                topic(&s.n("ratio"), 1).config("min.cleanable.dirty.ratio", "2"),
            ];
            s.create_topics("create", &topics, false);
        }),
        sc("topic-small-segment-bytes", |s| {
            s.create(
                "create",
                topic(&s.n("t"), 1).config("segment.bytes", "1000"),
            );
        }),
        sc("topic-null-config-value", |s| {
            s.create("create", topic(&s.n("t"), 1).null_config("retention.ms"));
        }),
        sc("topic-configs-in-create-response", |s| {
            let t = topic(&s.n("t"), 2)
                .config("retention.ms", "1000")
                .config("cleanup.policy", "compact")
                .config("max.message.bytes", "2000");
            s.create("create", t);
        }),
        sc("topic-validate-only", |s| {
            let t = s.n("t");
            s.create_topics(
                "validate",
                &[topic(&t, 2).config("retention.ms", "5")],
                true,
            );
            s.metadata("metadata", &[&t], false);
        }),
        sc("topic-validate-only-errors", |s| {
            let exists = s.setup_topic("exists", 1, &[]);
            let topics = [
                topic(&exists, 1),
                topic("bad name", 1),
                topic(&s.n("bad-config"), 1).config("retention.ms", "x"),
                topic(&s.n("zero"), 0),
            ];
            s.create_topics("validate", &topics, true);
        }),
        sc("topic-duplicate-in-request", |s| {
            let t = s.n("t");
            s.create_topics("create", &[topic(&t, 1), topic(&t, 2)], false);
            s.metadata("metadata", &[&t], false);
        }),
        sc("topic-delete", |s| {
            let t = s.setup_topic("t", 2, &[]);
            s.delete_topics("delete", &[&t]);
            s.delete_topics("delete-again", &[&t]);
            s.metadata("metadata", &[&t], false);
        }),
        sc("topic-delete-by-id", |s| {
            let t = s.n("t");
            let id = s.create("create", topic(&t, 1)).unwrap().topics[0].topic_id;
            s.delete_topic_id("delete", id);
            s.wait_topic_gone(&t);
            s.delete_topic_id("delete-again", id);
            s.delete_topic_id("delete-unknown", Uuid([7; 16]));
        }),
        sc("metadata-unknown-topic", |s| {
            s.metadata("metadata", &[&s.n("missing")], false);
        }),
        sc("metadata-auto-create", |s| {
            let t = s.n("t");
            s.metadata("first", &[&t], true);
            s.wait_topic(&t, 1);
            s.metadata("second", &[&t], true);
        }),
        sc("metadata-auto-create-invalid-name", |s| {
            s.metadata("metadata", &["bad name", "."], true);
        }),
        sc("create-partitions-grow", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.create_partitions("grow", &t, 3, false);
            s.metadata("metadata", &[&t], false);
        }),
        sc("create-partitions-invalid-counts", |s| {
            let t = s.setup_topic("t", 3, &[]);
            s.create_partitions("shrink", &t, 2, false);
            s.create_partitions("same", &t, 3, false);
            s.create_partitions("huge", &t, 1_000_000, true);
            s.create_partitions("unknown-topic", &s.n("missing"), 2, false);
        }),
        sc("create-partitions-validate-only", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.create_partitions("validate", &t, 4, true);
            s.metadata("metadata", &[&t], false);
        }),
        sc("describe-cluster", |s| {
            s.describe_cluster("describe");
        }),
    ]
}
