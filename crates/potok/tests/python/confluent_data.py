"""confluent-kafka (librdkafka) data path against a Potok broker.

Produces records with keys, headers and explicit timestamps at every acks level (0, 1, all) with
every compression codec (none, gzip, snappy, lz4, zstd), consumes everything back with assign()
(no consumer group) and compares key, value, headers, timestamp, partition and offset byte for
byte. Then: keyed records stay in one partition in production order, offsets-for-times and max
timestamp, watermarks, LogAppendTime topics, a 1 MiB record accepted, and records over the broker
and topic limits refused with MESSAGE_TOO_LARGE while the partition stays usable.

Usage: confluent_data.py HOST:PORT
"""

import os
import random
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_CREATE_TIME,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from potok_testlib import check, check_eq, main, short, step, unique

TIMEOUT = 20.0
ONE_MIB = 1024 * 1024
# Kafka's default message.max.bytes (the default too): the largest record batch accepted.
BROKER_MAX_BATCH = 1048588


def create_topics(admin, specs):
    """Creates topics given as (name, partitions, config dict) and waits for each result."""
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=parts, replication_factor=1, config=config) for name, parts, config in specs],
        operation_timeout=TIMEOUT,
        request_timeout=TIMEOUT,
    )
    for name, future in futures.items():
        future.result(timeout=TIMEOUT)
    # The broker creates topics synchronously, but check that metadata shows them with leaders.
    metadata = admin.list_topics(timeout=TIMEOUT)
    for name, parts, _config in specs:
        check(name in metadata.topics, f"created topic {name} missing from metadata")
        topic = metadata.topics[name]
        check(topic.error is None, f"topic {name} has metadata error {topic.error}")
        check_eq(len(topic.partitions), parts, f"partition count of {name}")
        for partition in topic.partitions.values():
            check(partition.leader >= 0, f"{name}[{partition.id}] has no leader")


def make_producer(bootstrap, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "linger.ms": 20,
        "message.timeout.ms": int(TIMEOUT * 1000),
        "socket.timeout.ms": 10000,
        # Idempotence is another helper's feature and another test's subject.
        "enable.idempotence": False,
    }
    config.update(extra)
    return Producer(config)


def flush(producer):
    remaining = producer.flush(TIMEOUT)
    check_eq(remaining, 0, "records still in flight after flush")


def make_consumer(bootstrap, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group id even for assign(); offsets are never committed or fetched.
        "group.id": unique("unused-group"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "error",
        "enable.partition.eof": True,
        "socket.timeout.ms": 10000,
    }
    config.update(extra)
    return Consumer(config)


def consume_all(bootstrap, topic, partitions, expected_counts, **extra):
    """Reads every partition of `topic` from the beginning until `expected_counts[p]` records each.

    Returns {partition: [Message, ...]} in offset order. Fails if more records than expected
    arrive, if offsets are not contiguous from the log start, or on any consumer error.
    """
    consumer = make_consumer(bootstrap, **extra)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        received = {p: [] for p in partitions}
        done = {p for p in partitions if expected_counts[p] == 0}
        deadline = time.monotonic() + TIMEOUT
        while len(done) < len(partitions):
            check(time.monotonic() < deadline, f"timed out consuming {topic}: got "
                  f"{ {p: len(v) for p, v in received.items()} }, expected {expected_counts}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(message.error())
            p = message.partition()
            received[p].append(message)
            check(len(received[p]) <= expected_counts[p],
                  f"{topic}[{p}]: more records than produced (offset {message.offset()})")
            if len(received[p]) == expected_counts[p]:
                done.add(p)
        for p, messages in received.items():
            offsets = [m.offset() for m in messages]
            if offsets:
                check_eq(offsets, list(range(offsets[0], offsets[0] + len(offsets))), f"{topic}[{p}] offsets")
        return received
    finally:
        consumer.close()


def random_payload(rng, i):
    """Alternates incompressible and very compressible values so every codec really compresses."""
    size = rng.randrange(0, 3000)
    if i % 2 == 0:
        return rng.randbytes(size)
    return (b"potok-%d " % i) * (size // 8)


def produce_consume_matrix(bootstrap, admin):
    rng = random.Random(4)
    base_ts = int(time.time() * 1000) - 86_400_000
    acks_levels = ["0", "1", "all"]
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    topics = {(acks, codec): unique(f"data-acks{acks}-{codec}") for acks in acks_levels for codec in codecs}
    create_topics(admin, [(name, 2, {}) for name in topics.values()])

    for (acks, codec), topic in topics.items():
        step(f"acks={acks} compression={codec} -> {topic}")
        producer = make_producer(bootstrap, **{"acks": acks, "compression.type": codec})
        sent = {0: [], 1: []}
        reports = []

        def on_delivery(error, message, reports=reports):
            reports.append((error, message.partition(), message.offset(), message.value()))

        count = 60
        for i in range(count):
            partition = i % 2
            key = None if i % 10 == 3 else (b"" if i % 10 == 4 else b"key-%d-\x00\xff" % i)
            value = None if i % 15 == 7 else random_payload(rng, i)
            headers = [("h-index", str(i).encode()), ("bin", bytes([i % 256, 0, 255])), ("dup", b"1"), ("dup", b"2")]
            if i % 4 == 0:
                headers.append(("null-header", None))
            if i % 9 == 0:
                headers = []
            timestamp = base_ts + i * 7
            producer.produce(topic, value=value, key=key, partition=partition, headers=headers,
                             timestamp=timestamp, on_delivery=on_delivery)
            sent[partition].append((key, value, headers, timestamp))
            if i == count // 2:
                # Two flushes give each partition several batches, not one.
                flush(producer)
        flush(producer)
        check_eq(len(reports), count, "delivery reports")
        for error, partition, offset, _value in reports:
            check(error is None, f"acks={acks} {codec}: delivery failed: {error}")
        if acks != "0":
            # With acks the broker returns base offsets; they must match production order.
            for p in (0, 1):
                offsets = [offset for _e, part, offset, _v in reports if part == p]
                check_eq(offsets, list(range(len(sent[p]))), f"acks={acks} {codec}: acknowledged offsets of partition {p}")

        received = consume_all(bootstrap, topic, [0, 1], {0: len(sent[0]), 1: len(sent[1])})
        for p in (0, 1):
            for index, (message, (key, value, headers, timestamp)) in enumerate(zip(received[p], sent[p])):
                where = f"acks={acks} {codec} {topic}[{p}]@{message.offset()}"
                check_eq(message.offset(), index, f"{where} offset")
                check_eq(message.key(), key, f"{where} key")
                check_eq(message.value(), value, f"{where} value")
                check_eq(message.headers() or [], headers, f"{where} headers")
                check_eq(message.timestamp(), (TIMESTAMP_CREATE_TIME, timestamp), f"{where} timestamp")

        low, high = consume_watermarks(bootstrap, topic, 0)
        check_eq((low, high), (0, len(sent[0])), f"{topic}[0] watermarks")


def consume_watermarks(bootstrap, topic, partition):
    consumer = make_consumer(bootstrap)
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT, cached=False)
    finally:
        consumer.close()


def keyed_order(bootstrap, admin):
    step("keyed records stay in one partition, in order")
    topic = unique("keyed")
    create_topics(admin, [(topic, 6, {})])
    producer = make_producer(bootstrap, acks="all", **{"compression.type": "lz4"})
    keys = [b"user-%d" % k for k in range(12)]
    errors = []
    for seq in range(600):
        key = keys[(seq * 7) % len(keys)]
        producer.produce(topic, key=key, value=b"%d" % seq,
                         on_delivery=lambda e, m: errors.append(e) if e else None)
        if seq % 100 == 0:
            producer.poll(0)
    flush(producer)
    check(not errors, f"keyed produce errors: {errors[:3]}")

    low_high = {p: consume_watermarks(bootstrap, topic, p) for p in range(6)}
    counts = {p: high - low for p, (low, high) in low_high.items()}
    check_eq(sum(counts.values()), 600, "keyed record total")
    received = consume_all(bootstrap, topic, list(range(6)), counts)
    partition_of_key = {}
    sequences = {}
    for p, messages in received.items():
        for message in messages:
            key = message.key()
            check_eq(partition_of_key.setdefault(key, p), p, f"partition of key {key!r}")
            sequences.setdefault(key, []).append(int(message.value()))
    check_eq(sorted(partition_of_key), sorted(keys), "keys seen")
    for key, seqs in sequences.items():
        check_eq(seqs, sorted(seqs), f"production order of key {key!r}")
    used = len(set(partition_of_key.values()))
    check(used >= 2, f"12 keys all hashed to one of 6 partitions ({used}); partitioner not applied?")


def timestamps(bootstrap, admin):
    step("offsets-for-times, max timestamp, LogAppendTime")
    topic = unique("times")
    append_topic = unique("append-time")
    create_topics(admin, [(topic, 1, {}), (append_topic, 1, {"message.timestamp.type": "LogAppendTime"})])
    base = int(time.time() * 1000) - 3_600_000
    # Offset 3 carries the largest timestamp: offsets-for-times answers the first offset whose
    # timestamp is at or after the target, so it wins every target between base+2000 and base+50000.
    stamps = [base, base + 1000, base + 2000, base + 50_000, base + 4000, base + 5000, base + 6000]
    producer = make_producer(bootstrap, acks="1", **{"linger.ms": 0})
    for i, ts in enumerate(stamps):
        producer.produce(topic, value=b"t%d" % i, partition=0, timestamp=ts)
        flush(producer)  # One batch per record so the time index has several entries.
    consumer = make_consumer(bootstrap)
    try:
        queries = [(base - 10, 0), (base, 0), (base + 1, 1), (base + 1000, 1), (base + 2500, 3),
                   (base + 4500, 3), (base + 50_000, 3), (base + 50_001, -1)]
        for ts, expected in queries:
            # One query per call: a request naming the same partition twice has no defined answer.
            [answer] = consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT)
            check(answer.error is None, f"offsets_for_times({ts - base:+}) error {answer.error}")
            check_eq(answer.offset, expected, f"offsets_for_times(base{ts - base:+})")
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT, cached=False)
        check_eq((low, high), (0, len(stamps)), "watermarks of the timestamp topic")
    finally:
        consumer.close()

    tp = TopicPartition(topic, 0)
    specs = {"earliest": OffsetSpec.earliest(), "latest": OffsetSpec.latest(), "max": OffsetSpec.max_timestamp()}
    results = {}
    for label, spec in specs.items():
        future = admin.list_offsets({tp: spec}, request_timeout=TIMEOUT)[tp]
        results[label] = future.result(timeout=TIMEOUT)
    check_eq(results["earliest"].offset, 0, "list_offsets earliest")
    check_eq(results["latest"].offset, len(stamps), "list_offsets latest")
    check_eq((results["max"].offset, results["max"].timestamp), (3, base + 50_000), "list_offsets max timestamp")

    before = int(time.time() * 1000)
    producer.produce(append_topic, value=b"x", partition=0, timestamp=1000)
    flush(producer)
    after = int(time.time() * 1000)
    received = consume_all(bootstrap, append_topic, [0], {0: 1})
    kind, ts = received[0][0].timestamp()
    check_eq(kind, TIMESTAMP_LOG_APPEND_TIME, "timestamp type on a LogAppendTime topic")
    check(before - 1000 <= ts <= after + 1000, f"LogAppendTime {ts} not within [{before}, {after}]")


def size_limits(bootstrap, admin):
    step("a 1 MiB record is accepted; records over the broker and topic limits are refused")
    topic = unique("big")
    small_limit_topic = unique("small-limit")
    create_topics(admin, [(topic, 1, {}), (small_limit_topic, 1, {"max.message.bytes": "4096"})])
    # librdkafka checks message.max.bytes itself before sending; raise its limit so that the broker,
    # not the client, is the one that must refuse.
    producer = make_producer(bootstrap, acks="all", **{"compression.type": "none", "linger.ms": 0,
                                                       "message.max.bytes": 8 * ONE_MIB})
    results = []

    def on_delivery(error, message):
        results.append((error, message.offset(), len(message.value() or b"")))

    rng = random.Random(1)
    # A record of 1 MiB in total: the value leaves room for the record and batch headers so the
    # batch stays within Kafka's default message.max.bytes (1048588), as it would on Apache Kafka.
    one_mib_value = rng.randbytes(ONE_MIB - 128)
    over_value = rng.randbytes(BROKER_MAX_BATCH + 1024)
    producer.produce(topic, value=one_mib_value, key=b"one-mib", partition=0, on_delivery=on_delivery)
    flush(producer)
    producer.produce(topic, value=over_value, key=b"too-big", partition=0, on_delivery=on_delivery)
    flush(producer)
    producer.produce(topic, value=b"after", key=b"after", partition=0, on_delivery=on_delivery)
    flush(producer)
    check_eq(len(results), 3, "delivery reports for the size checks")
    check(results[0][0] is None, f"1 MiB record refused: {results[0][0]}")
    check_eq(results[0][1], 0, "offset of the 1 MiB record")
    error = results[1][0]
    check(error is not None, "a record over message.max.bytes was accepted")
    check_eq(error.code(), KafkaError.MSG_SIZE_TOO_LARGE, f"error for an oversized record ({error})")
    check(results[2][0] is None, f"record after the refused one failed: {results[2][0]}")
    check_eq(results[2][1], 1, "offset after the refused record (nothing of it was appended)")

    received = consume_all(bootstrap, topic, [0], {0: 2})
    check_eq(received[0][0].value(), one_mib_value, "1 MiB record read back")
    check_eq(received[0][1].value(), b"after", "record after the refused one")

    results.clear()
    producer.produce(small_limit_topic, value=rng.randbytes(3000), partition=0, on_delivery=on_delivery)
    flush(producer)
    producer.produce(small_limit_topic, value=rng.randbytes(6000), partition=0, on_delivery=on_delivery)
    flush(producer)
    check(results[0][0] is None, f"3000-byte record refused under max.message.bytes=4096: {results[0][0]}")
    check(results[1][0] is not None and results[1][0].code() == KafkaError.MSG_SIZE_TOO_LARGE,
          f"6000-byte record under topic max.message.bytes=4096: expected MSG_SIZE_TOO_LARGE, got {results[1][0]}")


def run(bootstrap):
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000})
    produce_consume_matrix(bootstrap, admin)
    keyed_order(bootstrap, admin)
    timestamps(bootstrap, admin)
    size_limits(bootstrap, admin)


if __name__ == "__main__":
    main(run)
