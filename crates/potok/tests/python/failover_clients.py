"""One real client producing and consuming across a partition leader's SIGKILL (issue 18, acceptance 2).

Driven by crates/potok/tests/failover_clients.rs, which starts three nodes, creates TOPIC (replication
factor 3, min.insync.replicas=2) and kills the leader of partition 0 with SIGKILL when this script
says so. The client is given ONE bootstrap address; whether that node is the one killed is the
caller's choice. The handshake goes through files in DIR: this script creates DIR/ready once the
first records of every partition are acknowledged and keeps producing, the caller SIGKILLs the
leader and creates DIR/killed; the script produces more and, once they are acknowledged,
creates DIR/rejoin; the caller restarts the killed node and creates DIR/restarted; the script
produces the last records while the node catches up (a client may be sent to it again).

What the application must see, as it does against Apache Kafka: every delivery report succeeds
(acks=all, retries and idempotence, which every client here enables by default or is told to), and
a consumer that assigned the partitions before the first record and kept polling across the kill
reads every value exactly once, in the order it was sent, per partition.

Usage: failover_clients.py CLIENT HOST:PORT TOPIC PARTITIONS DIR
       CLIENT is confluent-kafka, kafka-python or kcat.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
import time

from potok_testlib import CheckFailed, check, check_eq, step

# Records per partition: BEFORE are acknowledged before the kill is asked for, DURING are sent
# paced while the caller kills (so some are in flight on the killed leader), AFTER once the kill
# happened (they wait for the new leader in the client's queue), REJOIN paced while the killed
# node restarts and rejoins.
BEFORE = 50
DURING = 100
AFTER = 100
REJOIN = 100
PER_PARTITION = BEFORE + DURING + AFTER + REJOIN
PACE_S = 0.01
# The caller kills within a second of DIR/ready; the failover then takes the controller's
# broker.session.timeout.ms (3 s in the test) plus an election.
KILL_TIMEOUT = 30
# Everything produced must be acknowledged and read within this (clients back off and refresh
# metadata on their own schedule; librdkafka's message.timeout.ms is 300 s by default).
DRAIN_TIMEOUT = 120


def value(client, partition, seq):
    v = f"{client}-{partition}-{seq}"
    # kcat 1.7 -P reads its input in blocks and produces a short line only once a whole block
    # arrived (or at the end of input); a line of 1,024 bytes with its newline is produced as
    # soon as it is written (measured with kcat 1.7.1), so the kill finds records in flight.
    return v.ljust(1023, ".") if client == "kcat" else v


def expected(client, partitions):
    return {p: [value(client, p, i) for i in range(PER_PARTITION)] for p in range(partitions)}


def touch(path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("1\n")


def wait_for(handshake, name, what):
    deadline = time.monotonic() + KILL_TIMEOUT
    while not os.path.exists(os.path.join(handshake, name)):
        check(time.monotonic() < deadline, f"the caller did not {what}")
        time.sleep(0.01)


def produce_schedule(client, partitions, handshake, send, wait_acked):
    """Calls send(partition, value) for every record of the four phases; wait_acked(n) returns
    once the first n records of every partition are acknowledged (and fails on any error)."""
    for i in range(BEFORE):
        for p in range(partitions):
            send(p, value(client, p, i))
    wait_acked(BEFORE)
    step(f"{client}: {BEFORE} records per partition acknowledged, asking for the leader kill")
    touch(os.path.join(handshake, "ready"))
    for i in range(BEFORE, BEFORE + DURING):
        for p in range(partitions):
            send(p, value(client, p, i))
        time.sleep(PACE_S)
    wait_for(handshake, "killed", "kill the leader")
    step(f"{client}: leader killed; producing more")
    end = BEFORE + DURING + AFTER
    for i in range(BEFORE + DURING, end):
        for p in range(partitions):
            send(p, value(client, p, i))
    wait_acked(end)
    step(f"{client}: {end} records per partition acknowledged, asking for the restart")
    touch(os.path.join(handshake, "rejoin"))
    wait_for(handshake, "restarted", "restart the killed node")
    for i in range(end, PER_PARTITION):
        for p in range(partitions):
            send(p, value(client, p, i))
        time.sleep(PACE_S)


class Reads:
    """What a consumer thread read, per partition, and the first error it surfaced."""

    def __init__(self, partitions):
        self.values = {p: [] for p in range(partitions)}
        self.error = None
        self.lock = threading.Lock()

    def add(self, partition, v):
        with self.lock:
            self.values[partition].append(v)

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.values.values())

    def check(self, client, partitions):
        check(self.error is None, f"{client}: the consumer surfaced an error: {self.error!r}")
        want = expected(client, partitions)
        for p in range(partitions):
            got = self.values[p]
            dups = len(got) - len(set(got))
            check_eq(dups, 0, f"{client}: duplicates read from partition {p}")
            check_eq(got, want[p], f"{client}: values read from partition {p} in order")


def consume_until(reads, total, poll_once):
    """Polls until `total` values are read or DRAIN_TIMEOUT passes (after the producer's end)."""
    deadline = time.monotonic() + KILL_TIMEOUT + DRAIN_TIMEOUT + 60
    while reads.count() < total and reads.error is None:
        if time.monotonic() > deadline:
            return
        poll_once()


def confluent(bootstrap, topic, partitions, handshake):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    client = "ck"
    conf = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    reads = Reads(partitions)
    consumer = Consumer({**conf, "group.id": f"unused-{topic}", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 100})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def poll_once():
        m = consumer.poll(0.2)
        if m is None:
            return
        if m.error() is not None:
            # An application sees this as an error event from poll(); a partition EOF is not
            # an error (and is off by default).
            reads.error = m.error()
            return
        reads.add(m.partition(), m.value().decode())

    total = PER_PARTITION * partitions
    reader = threading.Thread(target=consume_until, args=(reads, total, poll_once), daemon=True)
    reader.start()

    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append((msg.partition(), msg.value(), err))
        else:
            delivered.append(msg.value())

    # acks=all, retries and idempotence: librdkafka's defaults are acks=all and unlimited retries
    # within message.timeout.ms; idempotence is off by default, so it is asked for.
    producer = Producer({**conf, "linger.ms": 5, "acks": "all", "enable.idempotence": True})

    def send(p, v):
        while True:
            try:
                producer.produce(topic, value=v.encode(), partition=p, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)

    def wait_acked(_n):
        check_eq(producer.flush(DRAIN_TIMEOUT), 0, "records queued after a flush")
        check_eq(errors, [], "confluent-kafka delivery errors")

    produce_schedule(client, partitions, handshake, send, wait_acked)
    remaining = producer.flush(DRAIN_TIMEOUT)
    check_eq(errors, [], "confluent-kafka delivery errors")
    check_eq(remaining, 0, "confluent-kafka records not delivered")
    check_eq(len(delivered), total, "confluent-kafka delivery reports")
    step(f"confluent-kafka: all {total} records acknowledged")
    reader.join(DRAIN_TIMEOUT + 60)
    consumer.close()
    reads.check(client, partitions)
    _ = KafkaException


def kafka_python(bootstrap, topic, partitions, handshake):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    client = "kp"
    reads = Reads(partitions)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=30000,
                             fetch_max_wait_ms=100)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)

    def poll_once():
        try:
            for tp, records in consumer.poll(timeout_ms=200).items():
                for r in records:
                    reads.add(tp.partition, r.value.decode())
        except Exception as error:  # What the application would see raised from poll().
            reads.error = error

    total = PER_PARTITION * partitions
    reader = threading.Thread(target=consume_until, args=(reads, total, poll_once), daemon=True)
    reader.start()

    # kafka-python's defaults are acks=all, unlimited retries within delivery_timeout_ms and
    # idempotence on; they are spelled out so the test says what it relies on.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=5, request_timeout_ms=10000, delivery_timeout_ms=120000)
    futures = []

    def send(p, v):
        futures.append(producer.send(topic, value=v.encode(), partition=p))

    def wait_acked(_n):
        producer.flush(timeout=DRAIN_TIMEOUT)
        for f in futures:
            check(f.is_done and f.succeeded(), f"kafka-python: send failed: {f.exception!r}")

    produce_schedule(client, partitions, handshake, send, wait_acked)
    producer.flush(timeout=DRAIN_TIMEOUT)
    failed = [f.exception for f in futures if not (f.is_done and f.succeeded())]
    check_eq(failed, [], "kafka-python send failures")
    check_eq(len(futures), total, "kafka-python sends")
    producer.close(timeout=5)
    step(f"kafka-python: all {total} records acknowledged")
    reader.join(DRAIN_TIMEOUT + 60)
    consumer.close()
    reads.check(client, partitions)


def kcat(bootstrap, topic, partitions, handshake):
    """kcat -P per partition fed line by line, kcat -C per partition running across the kill.

    kcat exits 1 when a delivery report fails (producer) and on any consume error other than
    the end of a partition (consumer), so a clean exit is the application seeing no error.
    """
    client = "kcat"
    check(shutil.which("kcat") is not None, "kcat is not installed (run ./scripts/install-test-deps)")
    common = ["kcat", "-b", bootstrap, "-t", topic, "-X", "socket.timeout.ms=10000"]
    consumers = [subprocess.Popen(common + ["-C", "-p", str(p), "-o", "beginning", "-c", str(PER_PARTITION),
                                           "-J", "-u", "-X", "fetch.wait.max.ms=100"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for p in range(partitions)]
    producers = [subprocess.Popen(common + ["-P", "-p", str(p), "-X", "acks=all",
                                           "-X", "enable.idempotence=true", "-X", "linger.ms=5"],
                                  stdin=subprocess.PIPE, stderr=subprocess.PIPE)
                 for p in range(partitions)]
    # Drain the producers' stderr on threads so a chatty kcat never blocks on a full pipe.
    stderrs = [[] for _ in producers]
    drains = [threading.Thread(target=lambda s=s, out=out: out.append(s.stderr.read()), daemon=True)
              for s, out in zip(producers, stderrs)]
    for d in drains:
        d.start()
    try:
        def send(p, v):
            producers[p].stdin.write(f"{v}\n".encode())
            producers[p].stdin.flush()

        def wait_acked(n):
            # kcat acknowledges nothing to its caller before it exits; the consumers reading
            # the records back (below the high watermark) are the evidence that they were
            # written with acks=all.
            deadline = time.monotonic() + DRAIN_TIMEOUT
            while not all(len(reads.values[p]) >= n for p in range(partitions)):
                check(time.monotonic() < deadline, f"kcat: the first {n} records were not read back")
                for p, proc in enumerate(producers + consumers):
                    check(proc.poll() is None, f"a kcat process exited early ({proc.args})")
                time.sleep(0.05)

        # The consumers' stdout is read on threads: each line is one record (JSON).
        reads = Reads(partitions)

        def read_consumer(p, proc):
            for line in proc.stdout:
                if not line.strip():
                    continue
                reads.add(p, json.loads(line)["payload"])

        readers = [threading.Thread(target=read_consumer, args=(p, c), daemon=True) for p, c in enumerate(consumers)]
        for r in readers:
            r.start()
        produce_schedule(client, partitions, handshake, send, wait_acked)
        for proc in producers:
            proc.stdin.close()
        for p, proc in enumerate(producers):
            try:
                code = proc.wait(DRAIN_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"kcat -P of partition {p} did not finish within {DRAIN_TIMEOUT}s")
            drains[p].join(5)
            err = b"".join(stderrs[p]).decode(errors="replace")
            check_eq(code, 0, f"kcat -P exit status of partition {p} (stderr: {err[-2000:]})")
            check("Delivery failed" not in err, f"kcat -P of partition {p} reported: {err[-2000:]}")
        step(f"kcat: every kcat -P exited 0 after {PER_PARTITION} records")
        for p, proc in enumerate(consumers):
            try:
                code = proc.wait(DRAIN_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise CheckFailed(f"kcat -C of partition {p} read {len(reads.values[p])} records")
            readers[p].join(5)
            err = proc.stderr.read().decode(errors="replace")
            check_eq(code, 0, f"kcat -C exit status of partition {p} (stderr: {err[-2000:]})")
        reads.check(client, partitions)
    finally:
        for proc in producers + consumers:
            if proc.poll() is None:
                proc.kill()


CLIENTS = {"confluent-kafka": confluent, "kafka-python": kafka_python, "kcat": kcat}


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in CLIENTS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    client, bootstrap, topic, partitions, handshake = sys.argv[1:]
    started = time.monotonic()
    try:
        CLIENTS[client](bootstrap, topic, int(partitions), handshake)
    except Exception as error:
        import traceback

        traceback.print_exc()
        print(f"FAILED {client}: {type(error).__name__}: {error}", file=sys.stderr)
        sys.stderr.flush()
        # os._exit: client handles left open must not keep the process alive past a failure.
        os._exit(1)
    print(f"OK failover_clients.py {client} in {time.monotonic() - started:.1f}s")
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
