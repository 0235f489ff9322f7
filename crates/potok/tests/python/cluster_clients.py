"""confluent-kafka, kafka-python and kcat against a three-node Potok cluster (issue 17, acceptance 3).

Each client is given one bootstrap address only. It must see the three brokers, create a topic with
three replicas per partition (placed on three distinct brokers), produce to every partition (whose
leaders are spread over the nodes, so most records go to a broker other than the bootstrap one)
and read every record back. Consumers assign their partitions: the records are checked, not groups.

Usage: cluster_clients.py HOST:PORT
"""

import json
import shutil
import subprocess
import time

from confluent_kafka import Consumer, Producer, TopicPartition as CkTopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic as KpNewTopic

from potok_testlib import CheckFailed, check, check_eq, main, step, unique, wait_until

TIMEOUT = 30
PARTITIONS = 3
RECORDS = 30
BROKERS = 3


def replicas_ok(partitions):
    """Every partition lists three distinct replicas with one of them leading."""
    return len(partitions) == PARTITIONS and all(
        sorted(p["replicas"]) == [1, 2, 3] and p["leader"] in p["replicas"] for p in partitions)


def confluent(bootstrap):
    step("confluent-kafka: 3 brokers, an RF=3 topic, produce and consume")
    conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    admin = AdminClient(conf)
    wait_until(lambda: len(admin.list_topics(timeout=5).brokers) == BROKERS, "confluent-kafka to see 3 brokers",
               timeout=TIMEOUT)
    topic = unique("ck-rf3")
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                        operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)

    def described():
        md = admin.list_topics(topic, timeout=5).topics.get(topic)
        if md is None or md.error is not None:
            return None
        parts = [{"replicas": list(p.replicas), "leader": p.leader} for p in md.partitions.values()]
        return parts if replicas_ok(parts) else None

    parts = wait_until(described, f"{topic} with 3 replicas per partition", timeout=TIMEOUT)
    leaders = {p["leader"] for p in parts}
    step(f"confluent-kafka: partition leaders {sorted(leaders)}")

    producer = Producer({**conf, "linger.ms": 0, "enable.idempotence": True})
    errors = []
    for i in range(RECORDS):
        producer.produce(topic, value=f"ck-{i}".encode(), partition=i % PARTITIONS,
                         on_delivery=lambda err, _msg: err and errors.append(err))
    check_eq(producer.flush(TIMEOUT), 0, "records still queued after flush")
    check_eq(errors, [], "delivery errors")

    consumer = Consumer({**conf, "group.id": unique("unused"), "enable.auto.commit": False})
    consumer.assign([CkTopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    seen = set()
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < RECORDS:
        check(time.monotonic() < deadline, f"confluent-kafka read {len(seen)} of {RECORDS} records")
        m = consumer.poll(0.5)
        if m is not None and m.error() is None:
            seen.add(m.value().decode())
    consumer.close()
    check_eq(seen, {f"ck-{i}" for i in range(RECORDS)}, "records read back by confluent-kafka")


def kafka_python(bootstrap):
    step("kafka-python: describe_cluster, an RF=3 topic, produce and consume")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)
    cluster = wait_until(lambda: (c := admin.describe_cluster()) and len(c["brokers"]) == BROKERS and c,
                         "kafka-python to see 3 brokers", timeout=TIMEOUT)
    check_eq(sorted(b["broker_id"] for b in cluster["brokers"]), [1, 2, 3], "brokers in DescribeCluster")
    check(cluster["controller_id"] in (1, 2, 3), f"controller in {cluster}")
    topic = unique("kp-rf3")
    admin.create_topics([KpNewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                        timeout_ms=TIMEOUT * 1000)

    def described():
        ts = admin.describe_topics([topic])
        if not ts or ts[0]["error_code"] != 0:
            return None
        parts = [{"replicas": p["replica_nodes"], "leader": p["leader_id"]} for p in ts[0]["partitions"]]
        return parts if replicas_ok(parts) else None

    wait_until(described, f"{topic} with 3 replicas per partition (kafka-python)", timeout=TIMEOUT)
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0,
                             request_timeout_ms=TIMEOUT * 1000)
    futures = [producer.send(topic, value=f"kp-{i}".encode(), partition=i % PARTITIONS) for i in range(RECORDS)]
    producer.flush(timeout=TIMEOUT)
    for f in futures:
        check(f.get(timeout=TIMEOUT).offset >= 0, "kafka-python: no offset")
    producer.close(timeout=5)

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=TIMEOUT * 1000,
                             fetch_max_wait_ms=200)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = set()
    deadline = time.monotonic() + TIMEOUT
    while len(seen) < RECORDS:
        check(time.monotonic() < deadline, f"kafka-python read {len(seen)} of {RECORDS} records")
        for records in consumer.poll(timeout_ms=500).values():
            seen.update(r.value.decode() for r in records)
    consumer.close()
    check_eq(seen, {f"kp-{i}" for i in range(RECORDS)}, "records read back by kafka-python")


def kcat(bootstrap, *args, stdin=None):
    command = ["kcat", "-b", bootstrap, "-X", "socket.timeout.ms=10000", *args]
    try:
        completed = subprocess.run(command, input=stdin, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as error:
        raise CheckFailed(f"{' '.join(command)} timed out after {TIMEOUT}s; stderr: {error.stderr!r}")
    if completed.returncode != 0:
        raise CheckFailed(f"{' '.join(command)} exited {completed.returncode}; stderr: "
                          f"{completed.stderr.decode(errors='replace')[-2000:]}")
    return completed.stdout


def with_kcat(bootstrap):
    step("kcat: -L sees 3 brokers and 3 replicas, -P to every partition, -C -e reads back")
    check(shutil.which("kcat") is not None, "kcat is not installed (run ./scripts/install-test-deps)")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = unique("kcat-rf3")
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=3)],
                        operation_timeout=TIMEOUT)[topic].result(timeout=TIMEOUT)

    def listed():
        listing = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic))
        topics = {t["topic"]: t for t in listing["topics"]}
        if len(listing["brokers"]) != BROKERS or topic not in topics:
            return None
        parts = [{"replicas": [r["id"] for r in p["replicas"]], "leader": p["leader"]}
                 for p in topics[topic]["partitions"]]
        return listing if replicas_ok(parts) else None

    listing = wait_until(listed, "kcat -L to list 3 brokers and 3 replicas per partition", timeout=TIMEOUT)
    check_eq(sorted(b["id"] for b in listing["brokers"]), [1, 2, 3], "broker ids in kcat -L")
    for p in range(PARTITIONS):
        lines = "".join(f"kcat-{p}-{i}\n" for i in range(10)).encode()
        kcat(bootstrap, "-P", "-t", topic, "-p", str(p), stdin=lines)
    for p in range(PARTITIONS):
        out = kcat(bootstrap, "-C", "-t", topic, "-p", str(p), "-o", "beginning", "-e", "-J")
        got = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        check_eq([m["payload"] for m in got], [f"kcat-{p}-{i}" for i in range(10)], f"kcat -C of partition {p}")
        check_eq([m["offset"] for m in got], list(range(10)), f"offsets of partition {p}")


def run(bootstrap):
    confluent(bootstrap)
    kafka_python(bootstrap)
    with_kcat(bootstrap)


if __name__ == "__main__":
    main(run)
