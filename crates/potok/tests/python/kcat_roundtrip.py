"""kcat (librdkafka 2.0 built in, an older client than confluent-kafka's) against a Potok broker.

`kcat -L -J` lists the broker and a topic's partitions; `kcat -P` produces lines with a key
delimiter (-K) and headers (-H), once per compression codec, to a chosen partition and, for an
unknown topic, through auto-creation; `kcat -C -e -J` reads everything back and the keys, payloads,
headers and offsets must match exactly.

Usage: kcat_roundtrip.py HOST:PORT
"""

import json
import shutil
import subprocess

from confluent_kafka.admin import AdminClient, NewTopic

from potok_testlib import CheckFailed, check, check_eq, main, step, unique, wait_until

TIMEOUT = 30


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


def consume_json(bootstrap, topic, partition):
    out = kcat(bootstrap, "-C", "-t", topic, "-p", str(partition), "-o", "beginning", "-e", "-J")
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def run(bootstrap):
    check(shutil.which("kcat") is not None, "kcat is not installed (run ./scripts/install-test-deps)")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = unique("kcat")
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=TIMEOUT)

    step("kcat -L")
    listing = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic))
    host, port = bootstrap.rsplit(":", 1)
    brokers = listing["brokers"]
    check_eq(len(brokers), 1, f"brokers in kcat -L: {brokers}")
    check(brokers[0]["name"].startswith(f"{host}:{port}"), f"broker address in kcat -L: {brokers[0]}")
    topics = {t["topic"]: t for t in listing["topics"]}
    check(topic in topics, f"{topic} missing from kcat -L: {list(topics)}")
    check_eq(len(topics[topic]["partitions"]), 2, "partitions in kcat -L")
    for partition in topics[topic]["partitions"]:
        check_eq(partition["leader"], brokers[0]["id"], f"leader of partition {partition['partition']}")

    expected = []
    for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
        step(f"kcat -P -K: -H compression={codec}")
        lines = [f"k{codec}-{i}:value {i} via {codec} " + "x" * (i * 37) for i in range(20)]
        args = ["-P", "-t", topic, "-p", "1", "-K", ":", "-H", f"codec={codec}", "-H", "origin=kcat"]
        if codec in ("gzip", "snappy", "lz4"):
            args += ["-z", codec]
        elif codec == "zstd":
            args += ["-X", "compression.codec=zstd"]
        kcat(bootstrap, *args, stdin=("\n".join(lines) + "\n").encode())
        for line in lines:
            key, value = line.split(":", 1)
            expected.append((key, value, ["codec", str(codec), "origin", "kcat"]))

    step("kcat -C -e round trip")
    messages = consume_json(bootstrap, topic, 1)
    check_eq(len(messages), len(expected), "records read back by kcat -C")
    for offset, (message, (key, value, headers)) in enumerate(zip(messages, expected)):
        where = f"{topic}[1]@{offset}"
        check_eq(message["offset"], offset, f"{where} offset")
        check_eq(message["key"], key, f"{where} key")
        check_eq(message["payload"], value, f"{where} payload")
        check_eq(message.get("headers"), headers, f"{where} headers")
        check_eq(message["tstype"], "create", f"{where} timestamp type")
    check_eq(consume_json(bootstrap, topic, 0), [], "records in the partition nobody produced to")

    step("kcat -P to an unknown topic auto-creates it (auto.create.topics.enable=true)")
    auto_topic = unique("kcat-auto")
    kcat(bootstrap, "-P", "-t", auto_topic, "-K", ":", stdin=b"a:1\nb:2\n")
    messages = wait_until(lambda: consume_json(bootstrap, auto_topic, 0), f"records in {auto_topic}")
    check_eq([(m["key"], m["payload"]) for m in messages], [("a", "1"), ("b", "2")], "auto-created topic records")


if __name__ == "__main__":
    main(run)
