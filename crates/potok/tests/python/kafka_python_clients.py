"""kafka-python (a pure-Python client with its own protocol code) against a Potok broker.

Admin: create topics, describe the cluster (DescribeCluster API), describe topics by name and by
topic id, describe configs, incremental alter configs and reset, DescribeTopicPartitions (KIP-966)
with a cursor, increase partitions (a decrease refused), delete records, delete topics by name and
by topic id. Data: producer at acks 0/1/all with gzip and without compression, keys, headers and
timestamps; consumer with assign() (no group) reads everything back byte for byte, plus
beginning/end offsets and offsets-for-times.

Usage: kafka_python_clients.py HOST:PORT
"""

import logging
import random
import time
import uuid

import kafka.errors as Errors
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import AlterConfigOp, ConfigResource, ConfigResourceType, KafkaAdminClient

from potok_testlib import CheckFailed, check, check_eq, main, step, unique, wait_until

TIMEOUT_MS = 20000


def expect_raises(error_type, call, what):
    try:
        value = call()
    except error_type as error:
        return error
    except Exception as error:  # A different failure is a failed check, named as such.
        raise CheckFailed(f"{what}: expected {error_type.__name__}, got {type(error).__name__}: {error}")
    raise CheckFailed(f"{what}: expected {error_type.__name__}, but it succeeded with {value!r}")


def topic_configs(admin, topic):
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    return described["topic"][topic]


def admin_checks(admin, bootstrap):
    step("kafka-python admin: create, describe cluster/topics/configs")
    topic = unique("kp-admin")
    by_id_topic = unique("kp-by-id")
    admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                 "configs": {"retention.ms": "3600000"}},
                         by_id_topic: {"num_partitions": 1, "replication_factor": 1}})
    expect_raises(Errors.TopicAlreadyExistsError,
                  lambda: admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}),
                  "creating an existing topic")

    cluster = admin.describe_cluster()
    check_eq(len(cluster["brokers"]), 1, "brokers in DescribeCluster")
    broker = cluster["brokers"][0]
    host, port = bootstrap.rsplit(":", 1)
    check_eq((broker["host"], broker["port"]), (host, int(port)), "advertised address in DescribeCluster")
    check(cluster["cluster_id"], f"cluster id missing in {cluster}")
    check_eq(cluster["controller_id"], broker["broker_id"], "controller of a one-node cluster")

    topics = {t["name"]: t for t in admin.describe_topics([topic, by_id_topic])}
    check_eq(len(topics[topic]["partitions"]), 3, "partitions in describe_topics")
    # Metadata responses carry the id as a string in kafka-python; lookups by id need a UUID.
    topic_id = uuid.UUID(str(topics[by_id_topic]["topic_id"]))
    check(topic_id.int != 0, f"topic id of {by_id_topic}: {topic_id!r}")
    by_id = admin.describe_topics([topic_id])
    check_eq([t["name"] for t in by_id], [by_id_topic], "describe_topics by topic id")

    configs = topic_configs(admin, topic)
    check_eq(configs["retention.ms"]["value"], "3600000", "retention.ms via kafka-python")
    check_eq(configs["retention.ms"]["config_source"], "DYNAMIC_TOPIC_CONFIG", "source of retention.ms")
    check_eq(configs["cleanup.policy"]["config_source"], "DEFAULT_CONFIG", "source of cleanup.policy")
    with_synonyms = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                           include_synonyms=True, config_filter="all")["topic"][topic]
    synonyms = [s["name"] for s in with_synonyms["retention.ms"]["synonyms"]]
    check(synonyms and synonyms[0] == "retention.ms", f"synonyms of retention.ms: {synonyms}")
    broker_configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, str(broker["broker_id"]))],
                                            config_filter="all")["broker"][str(broker["broker_id"])]
    check_eq(broker_configs["message.max.bytes"]["value"], "1048588", "broker message.max.bytes")

    step("kafka-python admin: alter and reset configs")
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                                 configs={"retention.ms": "7200000",
                                                          "cleanup.policy": (AlterConfigOp.APPEND, "compact")})])
    check_eq(result["topic"][topic], "OK", "incremental alter via kafka-python")
    configs = topic_configs(admin, topic)
    check_eq(configs["retention.ms"]["value"], "7200000", "retention.ms after alter")
    check_eq(configs["cleanup.policy"]["value"], "delete,compact", "cleanup.policy after APPEND")
    result = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "soon"})],
                                 raise_on_unknown=False)
    check("InvalidConfig" in result["topic"][topic], f"invalid retention.ms: {result}")
    admin.reset_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=["retention.ms", "cleanup.policy"])])
    configs = topic_configs(admin, topic)
    check_eq(configs["retention.ms"]["value"], "604800000", "retention.ms after reset")
    check_eq(configs["cleanup.policy"]["value"], "delete", "cleanup.policy after reset")
    legacy = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "3600000"})],
                                 incremental=False)
    check_eq(legacy["topic"][topic], "OK", "legacy AlterConfigs via kafka-python")
    check_eq(topic_configs(admin, topic)["segment.ms"]["value"], "3600000", "segment.ms after legacy alter")

    step("kafka-python admin: partitions and DescribeTopicPartitions with a cursor")
    admin.create_partitions({topic: 5})
    expect_raises(Errors.InvalidPartitionsError, lambda: admin.create_partitions({topic: 4}),
                  "decreasing partitions 5 -> 4")
    first = admin.describe_topic_partitions([topic, by_id_topic], response_partition_limit=2)
    described = [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in first["topics"]]
    ordered = sorted([topic, by_id_topic])
    pages = [first]
    while pages[-1]["next_cursor"] is not None:
        check(len(pages) < 10, f"DescribeTopicPartitions cursor does not advance: {pages[-1]['next_cursor']}")
        pages.append(admin.describe_topic_partitions([topic, by_id_topic], response_partition_limit=2,
                                                     cursor=pages[-1]["next_cursor"]))
        described += [(t["name"], [p["partition_index"] for p in t["partitions"]]) for t in pages[-1]["topics"]]
    seen = {}
    for name, indexes in described:
        seen.setdefault(name, []).extend(indexes)
    check_eq(seen, {topic: [0, 1, 2, 3, 4], by_id_topic: [0]}, "partitions over all DescribeTopicPartitions pages")
    check_eq(len(pages), 3, "pages of 2 partitions for 6 partitions")
    check_eq([name for name, _ in described][0], ordered[0], "DescribeTopicPartitions orders topics by name")
    for page in pages:
        for t in page["topics"]:
            for p in t["partitions"]:
                check_eq((p["leader_id"], p["replica_nodes"], p["isr_nodes"]),
                         (broker["broker_id"], [broker["broker_id"]], [broker["broker_id"]]),
                         f"leader/replicas of {t['name']}[{p['partition_index']}]")
    return topic, by_id_topic, topic_id


def data_checks(bootstrap, topic):
    rng = random.Random(7)
    base_ts = int(time.time() * 1000) - 600_000
    expected = {p: [] for p in range(5)}
    for acks, codec in [(0, None), (1, "gzip"), ("all", None), ("all", "gzip")]:
        step(f"kafka-python producer acks={acks} compression={codec}")
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks=acks, compression_type=codec, linger_ms=10,
                                 request_timeout_ms=TIMEOUT_MS, max_block_ms=TIMEOUT_MS,
                                 enable_idempotence=False)
        futures = []
        for i in range(40):
            partition = i % 5
            key = b"kp-%d-%s" % (i, str(acks).encode())
            value = rng.randbytes(rng.randrange(0, 2000)) if i % 3 else b"text " * 50
            headers = [("seq", str(i).encode()), ("codec", str(codec).encode())]
            timestamp = base_ts + len(expected[partition])
            futures.append(producer.send(topic, value=value, key=key, headers=headers, partition=partition,
                                         timestamp_ms=timestamp))
            expected[partition].append((key, value, headers, timestamp))
        producer.flush(timeout=TIMEOUT_MS / 1000)
        for future in futures:
            metadata = future.get(timeout=TIMEOUT_MS / 1000)
            if acks != 0:
                check(metadata.offset >= 0, f"acks={acks}: no offset in {metadata}")
        producer.close(timeout=5)

    step("kafka-python consumer with assign()")
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=TIMEOUT_MS,
                             fetch_max_wait_ms=200)
    try:
        partitions = [TopicPartition(topic, p) for p in range(5)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions, timeout_ms=TIMEOUT_MS)
        starts = consumer.beginning_offsets(partitions, timeout_ms=TIMEOUT_MS)
        for p in range(5):
            check_eq((starts[partitions[p]], ends[partitions[p]]), (0, len(expected[p])), f"offsets of {topic}[{p}]")
        received = {p: [] for p in range(5)}
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while sum(map(len, received.values())) < sum(map(len, expected.values())):
            check(time.monotonic() < deadline, f"timed out consuming; got { {p: len(r) for p, r in received.items()} }")
            for tp, records in consumer.poll(timeout_ms=500).items():
                received[tp.partition].extend(records)
        for p in range(5):
            check_eq(len(received[p]), len(expected[p]), f"records in {topic}[{p}]")
            for offset, (record, (key, value, headers, timestamp)) in enumerate(zip(received[p], expected[p])):
                where = f"{topic}[{p}]@{offset}"
                check_eq(record.offset, offset, f"{where} offset")
                check_eq(record.key, key, f"{where} key")
                check_eq(record.value, value, f"{where} value")
                check_eq([(k, v) for k, v in record.headers], headers, f"{where} headers")
                check_eq((record.timestamp, record.timestamp_type), (timestamp, 0), f"{where} timestamp")
        found = consumer.offsets_for_times({partitions[0]: base_ts + 3}, timeout_ms=TIMEOUT_MS)
        check_eq(found[partitions[0]].offset, 3, "offsets_for_times via kafka-python")
        return expected
    finally:
        consumer.close()


def delete_checks(admin, topic, by_id_topic, topic_id):
    step("kafka-python admin: delete records and topics (by name and by id)")
    tp = TopicPartition(topic, 0)
    result = admin.delete_records({tp: 3})
    check_eq(result[tp]["low_watermark"], 3, "low watermark after delete_records")
    expect_raises(Errors.OffsetOutOfRangeError, lambda: admin.delete_records({tp: 10_000}),
                  "delete_records beyond the high watermark")

    admin.delete_topics([topic_id])
    wait_until(lambda: by_id_topic not in admin.list_topics(), f"{by_id_topic} gone after delete by id")
    expect_raises(Errors.UnknownTopicIdError, lambda: admin.delete_topics([topic_id]), "deleting a deleted topic id")
    admin.delete_topics([topic])
    wait_until(lambda: topic not in admin.list_topics(), f"{topic} gone after delete by name")
    expect_raises(Errors.UnknownTopicOrPartitionError, lambda: admin.delete_topics([topic]),
                  "deleting a deleted topic name")


def run(bootstrap):
    logging.basicConfig(level=logging.ERROR)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)
    try:
        topic, by_id_topic, topic_id = admin_checks(admin, bootstrap)
        data_checks(bootstrap, topic)
        delete_checks(admin, topic, by_id_topic, topic_id)
    finally:
        admin.close()


if __name__ == "__main__":
    main(run)
