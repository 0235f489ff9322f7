"""Transactions with confluent-kafka (issue 21, acceptance 1), one part per invocation:

    confluent_transactions.py BOOTSTRAP PART

PART is one of:
- commit: a transaction over 3 partitions is invisible to read_committed while open (the
  last stable offset holds the consumer back) and entirely visible once committed;
- abort: an aborted transaction over 3 partitions is invisible to read_committed (the aborted
  records lie below the last stable offset, so the consumer skips them by the fetch's
  aborted_transactions) and visible to read_uncommitted; a later commit is read alone;
- fence: a second producer with the same transactional.id fences the first, whose commit fails
  fatally, and the second one's transaction commits;
- timeout: a transaction left open past transaction.timeout.ms is aborted by the broker (the
  producer learns it on commit, and read_committed consumers are no longer held back by it);
- ctp: consume-transform-produce over 10,000 records with send_offsets_to_transaction: every
  input appears exactly once in the output and the group's committed offsets are at the end.
"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from potok_testlib import check, check_eq, main, unique, wait_until


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(30)


def producer(bootstrap, txn_id, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "linger.ms": 5,
    }
    conf.update(extra)
    return Producer(conf)


def read_all(bootstrap, topic, partitions, isolation, settle=3.0, group=None):
    """Reads every partition from the start until nothing new arrives for `settle` seconds."""
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or unique("reader"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    last = time.monotonic()
    while time.monotonic() - last < settle:
        msgs = c.consume(500, 0.5)
        for m in msgs:
            check(m.error() is None, f"consume error {m.error()}")
            out.append((m.partition(), m.value()))
        if msgs:
            last = time.monotonic()
    c.close()
    return out


def part_commit(bootstrap):
    topic = unique("txn-commit")
    create_topic(bootstrap, topic, 3)
    p = producer(bootstrap, unique("tx"))
    p.init_transactions(30)
    p.begin_transaction()
    values = set()
    for i in range(300):
        v = f"v{i}".encode()
        values.add(v)
        p.produce(topic, v, partition=i % 3)
    p.flush(30)
    # Open: read_committed stops at the last stable offset, read_uncommitted sees it all.
    check_eq(read_all(bootstrap, topic, 3, "read_committed", settle=2.0), [], "read_committed while open")
    check_eq(
        len(read_all(bootstrap, topic, 3, "read_uncommitted", settle=2.0)),
        300,
        "read_uncommitted while open",
    )
    p.commit_transaction(30)
    got = read_all(bootstrap, topic, 3, "read_committed")
    check_eq(sorted(v for _, v in got), sorted(values), "read_committed after commit")
    check_eq({part for part, _ in got}, {0, 1, 2}, "partitions of the transaction")
    # A second transaction on the same producer.
    p.begin_transaction()
    p.produce(topic, b"second", partition=1)
    p.commit_transaction(30)
    got = read_all(bootstrap, topic, 3, "read_committed")
    check_eq(len(got), 301, "records after a second transaction")
    print("commit: 3 partitions invisible while open, visible after commit")


def part_fence(bootstrap):
    topic = unique("txn-fence")
    create_topic(bootstrap, topic, 1)
    txn_id = unique("tx")
    a = producer(bootstrap, txn_id)
    a.init_transactions(30)
    a.begin_transaction()
    a.produce(topic, b"zombie", partition=0)
    a.flush(30)
    b = producer(bootstrap, txn_id)
    # The newer producer's InitProducerId aborts the zombie's transaction and bumps the epoch.
    b.init_transactions(60)
    b.begin_transaction()
    b.produce(topic, b"live", partition=0)
    b.commit_transaction(30)
    try:
        a.produce(topic, b"zombie-2", partition=0)
        a.commit_transaction(30)
        raise AssertionError("the fenced producer committed")
    except KafkaException as e:
        err = e.args[0]
        check(err.fatal() or err.txn_requires_abort(), f"fenced producer's error: {err}")
    got = read_all(bootstrap, topic, 1, "read_committed")
    check(b"live" in [v for _, v in got], f"the live producer's record is committed: {got}")
    check(b"zombie-2" not in [v for _, v in got], f"the zombie's later record is refused: {got}")
    print("fence: the second producer fenced the first")


def part_timeout(bootstrap):
    topic = unique("txn-timeout")
    create_topic(bootstrap, topic, 1)
    p = producer(bootstrap, unique("tx"), **{"transaction.timeout.ms": 2000})
    p.init_transactions(30)
    p.begin_transaction()
    p.produce(topic, b"left-open", partition=0)
    p.flush(30)
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("lso"),
            "isolation.level": "read_committed",
        }
    )
    tp = TopicPartition(topic, 0)
    # The open transaction holds the last stable offset (read_committed high watermark) at 0
    # until the broker aborts it.
    lo, hi = c.get_watermark_offsets(tp, timeout=10)
    check_eq(hi, 0, "last stable offset while the transaction is open")
    time.sleep(5)
    lo, hi = c.get_watermark_offsets(tp, timeout=10)
    check_eq(hi, 2, "last stable offset after the broker aborted (record + ABORT marker)")
    c.close()
    try:
        p.commit_transaction(30)
        raise AssertionError("a transaction aborted by the broker committed")
    except KafkaException as e:
        err = e.args[0]
        check(err.fatal() or err.txn_requires_abort(), f"commit after timeout: {err}")
    # The aborted record stays invisible to read_committed and visible to read_uncommitted.
    check_eq(read_all(bootstrap, topic, 1, "read_committed", settle=2.0), [], "read_committed after the broker's abort")
    check_eq(
        [v for _, v in read_all(bootstrap, topic, 1, "read_uncommitted", settle=2.0)],
        [b"left-open"],
        "read_uncommitted after the broker's abort",
    )
    print("timeout: the broker aborted the transaction left open")


def part_abort(bootstrap):
    topic = unique("txn-abort")
    create_topic(bootstrap, topic, 3)
    p = producer(bootstrap, unique("tx"))
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(300):
        p.produce(topic, f"aborted{i}".encode(), partition=i % 3)
    p.flush(30)
    p.abort_transaction(30)
    # A committed transaction after the aborted one moves every last stable offset past the
    # aborted records, so read_committed must skip them rather than stop before them.
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, f"committed{i}".encode(), partition=i)
    p.commit_transaction(30)
    got = read_all(bootstrap, topic, 3, "read_committed")
    check_eq(
        sorted(v for _, v in got),
        [b"committed0", b"committed1", b"committed2"],
        "read_committed after an abort and a commit",
    )
    everything = read_all(bootstrap, topic, 3, "read_uncommitted")
    check_eq(len(everything), 303, "read_uncommitted sees the aborted records too")
    print("abort: invisible to read_committed, visible to read_uncommitted")


def part_ctp(bootstrap):
    n = 10_000
    src, dst = unique("ctp-in"), unique("ctp-out")
    create_topic(bootstrap, src, 3)
    create_topic(bootstrap, dst, 3)
    plain = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(n):
        plain.produce(src, str(i).encode(), partition=i % 3)
        if i % 1000 == 0:
            plain.poll(0)
    plain.flush(60)
    group = unique("ctp-group")
    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    c.subscribe([src])
    p = producer(bootstrap, unique("ctp-tx"))
    p.init_transactions(30)
    done = 0
    idle_since = time.monotonic()
    while done < n and time.monotonic() - idle_since < 60:
        msgs = c.consume(500, 1.0)
        if not msgs:
            continue
        idle_since = time.monotonic()
        p.begin_transaction()
        for m in msgs:
            check(m.error() is None, f"consume error {m.error()}")
            p.produce(dst, b"out-" + m.value(), partition=m.partition())
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        p.commit_transaction(30)
        done += len(msgs)
    check_eq(done, n, "records transformed")
    committed = c.committed([TopicPartition(src, p_) for p_ in range(3)], timeout=10)
    c.close()
    check_eq(
        sorted((t.partition, t.offset) for t in committed),
        [(0, 3334), (1, 3333), (2, 3333)],
        "group offsets at the end",
    )
    got = read_all(bootstrap, dst, 3, "read_committed", settle=3.0)
    values = [v for _, v in got]
    check_eq(len(values), n, "output records")
    check_eq(sorted(values), sorted(f"out-{i}".encode() for i in range(n)), "each input exactly once")
    print(f"ctp: {n} records consumed, transformed and committed exactly once")


CRASH_TOPIC = "txn-crash"


def part_crash_commit(bootstrap):
    """Runs against a broker armed with a coordinator failpoint: the commit kills it."""
    create_topic(bootstrap, CRASH_TOPIC, 3)
    p = producer(bootstrap, "tx-crash", **{"message.timeout.ms": 10000})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(300):
        p.produce(CRASH_TOPIC, f"c{i}".encode(), partition=i % 3)
    check_eq(p.flush(30), 0, "records left unsent before the commit")
    try:
        p.commit_transaction(8)
        print("commit answered before the broker stopped")
    except KafkaException as e:
        print(f"commit failed as the broker stopped: {e.args[0]}")


def part_crash_check(bootstrap):
    """After the restart: the transaction whose PrepareCommit was written is fully visible and
    no last stable offset is held back."""
    got = read_all(bootstrap, CRASH_TOPIC, 3, "read_committed", settle=3.0)
    check_eq(sorted(v for _, v in got), sorted(f"c{i}".encode() for i in range(300)), "records after the restart")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("w"), "isolation.level": "read_committed"})
    u = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("w"), "isolation.level": "read_uncommitted"})
    for part in range(3):
        tp = TopicPartition(CRASH_TOPIC, part)
        _, lso = c.get_watermark_offsets(tp, timeout=10)
        _, hw = u.get_watermark_offsets(tp, timeout=10)
        check_eq(lso, hw, f"last stable offset of partition {part}")
        # 100 records and the COMMIT marker; a partition whose marker was written before the
        # crash gets a second one when the restarted coordinator re-sends them all (as Kafka's
        # does on load), which changes nothing for readers.
        check(hw in (101, 102), f"records and COMMIT marker(s) of partition {part}: {hw}")
    c.close()
    u.close()
    print("crash: the prepared commit was completed after the restart")


KILL_TOPIC = "txn-kill"
KILL_SIZE = 30


def part_kill_load(bootstrap):
    """Commits transactions of KILL_SIZE records over 3 partitions until the broker is killed
    (the test SIGKILLs it meanwhile and then kills this script)."""
    create_topic(bootstrap, KILL_TOPIC, 3)
    p = producer(bootstrap, "tx-kill", **{"transaction.timeout.ms": 3000})
    p.init_transactions(30)
    k = 0
    while True:
        p.begin_transaction()
        for i in range(KILL_SIZE):
            p.produce(KILL_TOPIC, f"{k}-{i}".encode(), partition=i % 3)
        p.commit_transaction(30)
        k += 1
        print(f"committed {k}", flush=True)


def part_kill_check(bootstrap):
    """After the SIGKILL and restart: no last stable offset stays behind its high watermark
    (the transaction cut by the kill is completed or aborted by its timeout), and every
    transaction's records are visible to read_committed entirely or not at all."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("w"), "isolation.level": "read_committed"})
    u = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("w"), "isolation.level": "read_uncommitted"})

    def stable():
        for part in range(3):
            tp = TopicPartition(KILL_TOPIC, part)
            if c.get_watermark_offsets(tp, timeout=10)[1] != u.get_watermark_offsets(tp, timeout=10)[1]:
                return False
        return True

    wait_until(stable, "last stable offsets to reach the high watermarks", timeout=60)
    c.close()
    u.close()
    got = read_all(bootstrap, KILL_TOPIC, 3, "read_committed")
    per_txn = {}
    for _, v in got:
        k, i = v.decode().split("-")
        per_txn.setdefault(int(k), set()).add(int(i))
    check(len(per_txn) >= 1, "at least one transaction committed before the kill")
    for k, items in per_txn.items():
        check_eq(items, set(range(KILL_SIZE)), f"records of transaction {k}")
    print(f"kill: {len(per_txn)} transactions, each entirely visible; no LSO held back")


PARTS = {
    "kill-load": part_kill_load,
    "kill-check": part_kill_check,
    "crash-commit": part_crash_commit,
    "crash-check": part_crash_check,
    "commit": part_commit,
    "abort": part_abort,
    "fence": part_fence,
    "timeout": part_timeout,
    "ctp": part_ctp,
}

if __name__ == "__main__":
    part = PARTS[sys.argv.pop(2)]
    main(part)
