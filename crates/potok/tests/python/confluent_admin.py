"""confluent-kafka (librdkafka) AdminClient against a Potok broker.

Covers: create topics (and a duplicate refused), describe topics and the cluster, describe topic and
broker configs (values, sources, defaults, read-only flags, synonyms), incremental alter configs
(SET, APPEND, SUBTRACT, DELETE, validate_only, invalid values refused with INVALID_CONFIG), legacy
alter configs (replaces the whole override set), increase partitions (validate_only too) and
refuse a decrease or an equal count with INVALID_PARTITIONS, delete records (the low watermark
moves; beyond the high watermark is OFFSET_OUT_OF_RANGE) and delete topics (gone from metadata,
recreated empty under the same name).

Usage: confluent_admin.py HOST:PORT
"""

import time
import warnings

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from potok_testlib import CheckFailed, check, check_eq, main, step, unique, wait_until

TIMEOUT = 20.0


def result(future):
    return future.result(timeout=TIMEOUT)


def expect_error(future, code, what):
    """Waits for `future` and checks that it failed with the Kafka error `code`."""
    try:
        value = future.result(timeout=TIMEOUT)
    except KafkaException as error:
        got = error.args[0].code()
        check(got == code, f"{what}: expected {KafkaError(code).name()}, got {error.args[0]}")
        return error.args[0]
    raise CheckFailed(f"{what}: expected {KafkaError(code).name()}, but it succeeded with {value!r}")


def describe_topic_configs(admin, topic):
    resource = ConfigResource(ResourceType.TOPIC, topic)
    return result(admin.describe_configs([resource], request_timeout=TIMEOUT)[resource])


def incremental(admin, topic, entries, validate_only=False):
    resource = ConfigResource(
        ResourceType.TOPIC,
        topic,
        incremental_configs=[ConfigEntry(name, value, incremental_operation=op) for name, op, value in entries],
    )
    return admin.incremental_alter_configs([resource], validate_only=validate_only, request_timeout=TIMEOUT)[resource]


def partition_count(admin, topic):
    metadata = admin.list_topics(topic=topic, timeout=TIMEOUT)
    entry = metadata.topics[topic]
    check(entry.error is None, f"metadata error for {topic}: {entry.error}")
    return len(entry.partitions)


def watermarks(bootstrap, topic, partition):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("unused-group"),
                         "enable.auto.commit": False})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT, cached=False)
    finally:
        consumer.close()


def first_offset_consumed(bootstrap, topic, partition):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("unused-group"),
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            return message.offset(), message.value()
        raise CheckFailed(f"nothing consumed from {topic}[{partition}]")
    finally:
        consumer.close()


def produce(bootstrap, topic, partition, count, prefix=b"r"):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": int(TIMEOUT * 1000)})
    errors = []
    for i in range(count):
        producer.produce(topic, value=prefix + b"%d" % i, partition=partition,
                         on_delivery=lambda e, m: errors.append(e) if e else None)
    check_eq(producer.flush(TIMEOUT), 0, "records in flight after flush")
    check(not errors, f"produce errors: {errors[:3]}")


def create_and_describe(admin, bootstrap):
    step("create topics, duplicate refused, describe topics and cluster")
    topic = unique("admin")
    futures = admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                            config={"retention.ms": "3600000"})],
                                  operation_timeout=TIMEOUT, request_timeout=TIMEOUT)
    result(futures[topic])
    check_eq(partition_count(admin, topic), 3, "partitions of a new topic")
    again = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                                request_timeout=TIMEOUT)
    expect_error(again[topic], KafkaError.TOPIC_ALREADY_EXISTS, "creating an existing topic")

    description = result(admin.describe_topics(TopicCollection([topic]), request_timeout=TIMEOUT)[topic])
    check_eq(description.name, topic, "described topic name")
    check_eq(len(description.partitions), 3, "described partitions")
    check(description.topic_id is not None and str(description.topic_id) != "AAAAAAAAAAAAAAAAAAAAAA",
          f"topic id of {topic} is missing: {description.topic_id}")

    cluster = result(admin.describe_cluster(request_timeout=TIMEOUT))
    check_eq(len(cluster.nodes), 1, "nodes in a one-broker cluster")
    node = cluster.nodes[0]
    host, port = bootstrap.rsplit(":", 1)
    check_eq((node.host, node.port), (host, int(port)), "advertised address of the broker")
    check(cluster.cluster_id, f"cluster id missing: {cluster.cluster_id!r}")
    check(cluster.controller is not None and cluster.controller.id == node.id,
          f"controller {cluster.controller} is not the only node {node.id}")
    return topic, node.id


def describe_configs(admin, topic, node_id):
    step("describe topic and broker configs")
    configs = describe_topic_configs(admin, topic)
    retention = configs["retention.ms"]
    check_eq(retention.value, "3600000", "retention.ms set at creation")
    check_eq(retention.source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value, "source of a topic override")
    check(not retention.is_default, "an override reported as default")
    synonyms = list(retention.synonyms.values())
    check(synonyms and synonyms[0].name == "retention.ms", f"first synonym of retention.ms: {synonyms}")
    check(any(s.name.startswith("log.retention.") for s in synonyms),
          f"retention.ms synonyms lack the broker default log.retention.*: {[s.name for s in synonyms]}")
    policy = configs["cleanup.policy"]
    check_eq(policy.value, "delete", "default cleanup.policy")
    check_eq(policy.source, ConfigSource.DEFAULT_CONFIG.value, "source of a default topic config")
    check(policy.is_default, "cleanup.policy default not flagged as default")
    for name in ["segment.bytes", "max.message.bytes", "min.insync.replicas", "message.timestamp.type",
                 "retention.bytes", "segment.ms"]:
        check(name in configs, f"topic config {name} not described")
    check_eq(configs["max.message.bytes"].value, "1048588", "default max.message.bytes")

    resource = ConfigResource(ResourceType.BROKER, str(node_id))
    broker = result(admin.describe_configs([resource], request_timeout=TIMEOUT)[resource])
    check_eq(broker["message.max.bytes"].value, "1048588", "broker message.max.bytes")
    check_eq(broker["node.id"].value, str(node_id), "broker node.id")
    check_eq(broker["log.retention.hours"].value, "168", "broker log.retention.hours")
    log_dirs = broker["log.dirs"]
    check_eq(log_dirs.source, ConfigSource.STATIC_BROKER_CONFIG.value, "source of log.dirs set at start")
    check(log_dirs.is_read_only, "log.dirs reported as dynamically alterable")

    missing = ConfigResource(ResourceType.TOPIC, unique("no-such-topic"))
    expect_error(admin.describe_configs([missing], request_timeout=TIMEOUT)[missing],
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "describing configs of a missing topic")


def alter_configs(admin, topic):
    step("incremental alter configs")
    SET, DELETE, APPEND, SUBTRACT = (AlterConfigOpType.SET, AlterConfigOpType.DELETE,
                                     AlterConfigOpType.APPEND, AlterConfigOpType.SUBTRACT)
    result(incremental(admin, topic, [("retention.ms", SET, "7200000")]))
    check_eq(describe_topic_configs(admin, topic)["retention.ms"].value, "7200000", "retention.ms after SET")

    result(incremental(admin, topic, [("cleanup.policy", APPEND, "compact")]))
    check_eq(describe_topic_configs(admin, topic)["cleanup.policy"].value, "delete,compact",
             "cleanup.policy after APPEND compact to the default")
    result(incremental(admin, topic, [("cleanup.policy", SUBTRACT, "delete")]))
    check_eq(describe_topic_configs(admin, topic)["cleanup.policy"].value, "compact",
             "cleanup.policy after SUBTRACT delete")

    result(incremental(admin, topic, [("retention.ms", SET, "1")], validate_only=True))
    check_eq(describe_topic_configs(admin, topic)["retention.ms"].value, "7200000",
             "retention.ms after a validate_only SET")

    for entries, what in [
        ([("retention.ms", SET, "not-a-number")], "non-numeric retention.ms"),
        ([("cleanup.policy", SET, "shred")], "unknown cleanup.policy"),
        ([("no.such.config", SET, "1")], "unknown config name"),
        ([("retention.ms", APPEND, "5")], "APPEND to a non-list config"),
        ([("min.insync.replicas", SET, "0")], "min.insync.replicas below 1"),
    ]:
        expect_error(incremental(admin, topic, entries), KafkaError.INVALID_CONFIG, what)
    check_eq(describe_topic_configs(admin, topic)["retention.ms"].value, "7200000",
             "retention.ms after refused changes")

    result(incremental(admin, topic, [("retention.ms", DELETE, None)]))
    retention = describe_topic_configs(admin, topic)["retention.ms"]
    check_eq(retention.value, "604800000", "retention.ms after DELETE (log.retention.hours=168)")
    check_eq(retention.source, ConfigSource.DEFAULT_CONFIG.value, "source after DELETE")

    step("legacy alter configs replaces the whole override set")
    resource = ConfigResource(ResourceType.TOPIC, topic, set_config={"retention.ms": "100000", "segment.ms": "3600000"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # alter_configs is deprecated in the client, still a Kafka API.
        result(admin.alter_configs([resource], request_timeout=TIMEOUT)[resource])
    configs = describe_topic_configs(admin, topic)
    check_eq(configs["retention.ms"].value, "100000", "retention.ms after legacy alter")
    check_eq(configs["segment.ms"].value, "3600000", "segment.ms after legacy alter")
    check_eq(configs["cleanup.policy"].value, "delete", "cleanup.policy reset by a legacy alter that omits it")
    bad = ConfigResource(ResourceType.TOPIC, topic, set_config={"segment.bytes": "-5"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expect_error(admin.alter_configs([bad], request_timeout=TIMEOUT)[bad], KafkaError.INVALID_CONFIG,
                     "legacy alter with a negative segment.bytes")
    check_eq(describe_topic_configs(admin, topic)["retention.ms"].value, "100000",
             "retention.ms after a refused legacy alter")


def partitions(admin, bootstrap, topic):
    step("increase partitions; decrease and equal counts refused")
    result(admin.create_partitions([NewPartitions(topic, 5)], request_timeout=TIMEOUT)[topic])
    check_eq(partition_count(admin, topic), 5, "partitions after increasing 3 -> 5")
    produce(bootstrap, topic, 4, 3, prefix=b"new-partition-")
    check_eq(watermarks(bootstrap, topic, 4), (0, 3), "watermarks of a new partition")

    result(admin.create_partitions([NewPartitions(topic, 8)], validate_only=True, request_timeout=TIMEOUT)[topic])
    check_eq(partition_count(admin, topic), 5, "partitions after a validate_only increase")

    for count, what in [(2, "a decrease 5 -> 2"), (5, "an equal count")]:
        future = admin.create_partitions([NewPartitions(topic, count)], request_timeout=TIMEOUT)[topic]
        expect_error(future, KafkaError.INVALID_PARTITIONS, what)
    check_eq(partition_count(admin, topic), 5, "partitions after refused changes")
    missing = unique("no-such-topic")
    expect_error(admin.create_partitions([NewPartitions(missing, 2)], request_timeout=TIMEOUT)[missing],
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "adding partitions to a missing topic")


def delete_records(admin, bootstrap, topic):
    step("delete records moves the low watermark")
    produce(bootstrap, topic, 0, 10)
    check_eq(watermarks(bootstrap, topic, 0), (0, 10), "watermarks before delete records")
    tp = TopicPartition(topic, 0, 4)
    deleted = result(admin.delete_records([tp], request_timeout=TIMEOUT, operation_timeout=TIMEOUT)[tp])
    check_eq(deleted.low_watermark, 4, "low watermark returned by delete records")
    check_eq(watermarks(bootstrap, topic, 0), (4, 10), "watermarks after delete records")
    check_eq(first_offset_consumed(bootstrap, topic, 0), (4, b"r4"), "first record consumed after delete records")
    earliest_tp = TopicPartition(topic, 0)
    earliest = result(admin.list_offsets({earliest_tp: OffsetSpec.earliest()}, request_timeout=TIMEOUT)[earliest_tp])
    check_eq(earliest.offset, 4, "list_offsets earliest after delete records")

    beyond = TopicPartition(topic, 0, 11)
    expect_error(admin.delete_records([beyond], request_timeout=TIMEOUT)[beyond], KafkaError.OFFSET_OUT_OF_RANGE,
                 "deleting beyond the high watermark")
    lower = TopicPartition(topic, 0, 2)
    deleted = result(admin.delete_records([lower], request_timeout=TIMEOUT)[lower])
    check_eq(deleted.low_watermark, 4, "deleting below the log start offset leaves it")

    to_end = TopicPartition(topic, 0, OFFSET_END)
    deleted = result(admin.delete_records([to_end], request_timeout=TIMEOUT)[to_end])
    check_eq(deleted.low_watermark, 10, "deleting up to the high watermark (offset -1)")
    check_eq(watermarks(bootstrap, topic, 0), (10, 10), "watermarks of an emptied partition")
    produce(bootstrap, topic, 0, 1, prefix=b"again-")
    check_eq(first_offset_consumed(bootstrap, topic, 0), (10, b"again-0"), "offsets continue after delete records")


def delete_topics(admin, bootstrap, topic):
    step("delete topics")
    result(admin.delete_topics([topic], operation_timeout=TIMEOUT, request_timeout=TIMEOUT)[topic])
    wait_until(lambda: topic not in admin.list_topics(timeout=TIMEOUT).topics, f"{topic} to leave metadata")
    expect_error(admin.delete_topics([topic], request_timeout=TIMEOUT)[topic], KafkaError.UNKNOWN_TOPIC_OR_PART,
                 "deleting a missing topic")
    resource = ConfigResource(ResourceType.TOPIC, topic)
    expect_error(admin.describe_configs([resource], request_timeout=TIMEOUT)[resource],
                 KafkaError.UNKNOWN_TOPIC_OR_PART, "configs of a deleted topic")

    # The same name again is a new, empty topic with default configs: nothing of the old one survives.
    result(admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                               request_timeout=TIMEOUT)[topic])
    check_eq(watermarks(bootstrap, topic, 0), (0, 0), "watermarks of a recreated topic")
    check_eq(describe_topic_configs(admin, topic)["retention.ms"].value, "604800000",
             "retention.ms of a recreated topic")
    result(admin.delete_topics([topic], request_timeout=TIMEOUT)[topic])


def run(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    topic, node_id = create_and_describe(admin, bootstrap)
    describe_configs(admin, topic, node_id)
    alter_configs(admin, topic)
    partitions(admin, bootstrap, topic)
    delete_records(admin, bootstrap, topic)
    delete_topics(admin, bootstrap, topic)


if __name__ == "__main__":
    main(run)
