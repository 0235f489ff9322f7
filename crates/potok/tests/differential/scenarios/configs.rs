//! DescribeConfigs (values, sources, read-only, sensitivity, synonyms), AlterConfigs and
//! IncrementalAlterConfigs edge cases, topic and broker resources.

use super::{sc, Scenario};
use crate::ops::{APPEND, BROKER, DELETE, SET, SUBTRACT, TOPIC};

/// Topic configs whose description the scenarios look at after changes.
const KEYS: &[&str] = &[
    "retention.ms",
    "cleanup.policy",
    "segment.bytes",
    "max.message.bytes",
];

pub fn all() -> Vec<Scenario> {
    vec![
        sc("config-describe-topic-all", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.describe_configs("describe", TOPIC, &t, None, false);
        }),
        sc("config-describe-topic-synonyms", |s| {
            let t = s.setup_topic("t", 1, &[("retention.ms", "5000")]);
            let keys = [
                "retention.ms",
                "segment.bytes",
                "cleanup.policy",
                "compression.type",
                "min.insync.replicas",
                "message.timestamp.type",
            ];
            s.describe_configs("describe", TOPIC, &t, Some(&keys), true);
        }),
        sc("config-describe-unknown-key", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.describe_configs(
                "describe",
                TOPIC,
                &t,
                Some(&["no.such.config", "retention.ms"]),
                false,
            );
        }),
        sc("config-describe-unknown-topic", |s| {
            s.describe_configs("describe", TOPIC, &s.n("missing"), None, false);
            s.describe_configs("describe-invalid-name", TOPIC, "bad name", None, false);
        }),
        sc("config-describe-broker", |s| {
            let keys = [
                "num.partitions",
                "message.max.bytes",
                "log.retention.hours",
                "auto.create.topics.enable",
                "log.segment.bytes",
                "min.insync.replicas",
                "compression.type",
                "delete.topic.enable",
                "log.cleanup.policy",
            ];
            s.describe_configs("describe", BROKER, "1", Some(&keys), true);
        }),
        sc("config-describe-broker-wrong-name", |s| {
            s.describe_configs("other-id", BROKER, "7", Some(&["num.partitions"]), false);
            s.describe_configs(
                "not-a-number",
                BROKER,
                "abc",
                Some(&["num.partitions"]),
                false,
            );
        }),
        sc("config-describe-invalid-resource-type", |s| {
            s.describe_configs("type-99", 99, "x", None, false);
        }),
        sc("config-incremental-set-delete", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.incremental_alter(
                "set",
                TOPIC,
                &t,
                &[("retention.ms", SET, Some("1234"))],
                false,
            );
            s.describe_configs("after-set", TOPIC, &t, Some(KEYS), false);
            s.incremental_alter(
                "delete",
                TOPIC,
                &t,
                &[("retention.ms", DELETE, None)],
                false,
            );
            s.describe_configs("after-delete", TOPIC, &t, Some(KEYS), false);
            s.incremental_alter(
                "delete-unset",
                TOPIC,
                &t,
                &[("segment.bytes", DELETE, None)],
                false,
            );
        }),
        sc("config-incremental-append-subtract", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.incremental_alter(
                "append",
                TOPIC,
                &t,
                &[("cleanup.policy", APPEND, Some("compact"))],
                false,
            );
            s.describe_configs("after-append", TOPIC, &t, Some(KEYS), false);
            s.incremental_alter(
                "append-again",
                TOPIC,
                &t,
                &[("cleanup.policy", APPEND, Some("compact"))],
                false,
            );
            s.incremental_alter(
                "subtract",
                TOPIC,
                &t,
                &[("cleanup.policy", SUBTRACT, Some("delete"))],
                false,
            );
            s.describe_configs("after-subtract", TOPIC, &t, Some(KEYS), false);
        }),
        sc("config-incremental-errors", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.incremental_alter(
                "unknown-config",
                TOPIC,
                &t,
                &[("no.such.config", SET, Some("1"))],
                false,
            );
            s.incremental_alter(
                "invalid-value",
                TOPIC,
                &t,
                &[("retention.ms", SET, Some("abc"))],
                false,
            );
            s.incremental_alter(
                "append-non-list",
                TOPIC,
                &t,
                &[("retention.ms", APPEND, Some("1"))],
                false,
            );
            s.incremental_alter(
                "unknown-operation",
                TOPIC,
                &t,
                &[("retention.ms", 7, Some("1"))],
                false,
            );
            s.incremental_alter("set-null", TOPIC, &t, &[("retention.ms", SET, None)], false);
            let dup = [
                ("retention.ms", SET, Some("1")),
                ("retention.ms", SET, Some("2")),
            ];
            s.incremental_alter("duplicate-key", TOPIC, &t, &dup, false);
            s.incremental_alter(
                "unknown-topic",
                TOPIC,
                &s.n("missing"),
                &[("retention.ms", SET, Some("1"))],
                false,
            );
            s.describe_configs("after", TOPIC, &t, Some(KEYS), false);
        }),
        sc("config-incremental-validate-only", |s| {
            let t = s.setup_topic("t", 1, &[]);
            s.incremental_alter(
                "validate",
                TOPIC,
                &t,
                &[("retention.ms", SET, Some("99"))],
                true,
            );
            s.incremental_alter(
                "validate-invalid",
                TOPIC,
                &t,
                &[("retention.ms", SET, Some("x"))],
                true,
            );
            s.describe_configs("after", TOPIC, &t, Some(KEYS), false);
        }),
        sc("config-alter-legacy", |s| {
            let t = s.setup_topic("t", 1, &[]);
            let both = [
                ("retention.ms", Some("1000")),
                ("max.message.bytes", Some("5000")),
            ];
            s.alter_configs("set-both", TOPIC, &t, &both, false);
            s.describe_configs("after-both", TOPIC, &t, Some(KEYS), false);
            s.alter_configs(
                "set-one",
                TOPIC,
                &t,
                &[("segment.bytes", Some("2000000"))],
                false,
            );
            s.describe_configs("after-one", TOPIC, &t, Some(KEYS), false);
            s.alter_configs(
                "invalid",
                TOPIC,
                &t,
                &[("retention.ms", Some("abc"))],
                false,
            );
            s.alter_configs(
                "unknown-topic",
                TOPIC,
                &s.n("missing"),
                &[("retention.ms", Some("1"))],
                false,
            );
            s.alter_configs(
                "validate-only",
                TOPIC,
                &t,
                &[("retention.ms", Some("7"))],
                true,
            );
            s.describe_configs("after-validate", TOPIC, &t, Some(KEYS), false);
        }),
        sc("config-alter-broker", |s| {
            let dynamic = [("log.cleaner.threads", SET, Some("2"))];
            s.incremental_alter("dynamic-validate-only", BROKER, "1", &dynamic, true);
            let read_only = [("node.id", SET, Some("5"))];
            s.incremental_alter("read-only-validate-only", BROKER, "1", &read_only, true);
        }),
    ]
}
