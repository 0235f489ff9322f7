"""kafka-python's transactional producer against Potok (issue 21, acceptance 1): a transaction
over 3 partitions is invisible to a read_committed kafka-python consumer until it commits, and a
second transaction on the same producer commits too."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from potok_testlib import check_eq, main, unique


def read_all(bootstrap, topic, isolation, settle=3.0):
    c = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=int(settle * 1000),
    )
    c.assign([TopicPartition(topic, p) for p in range(3)])
    c.seek_to_beginning()
    out = [m.value for m in c]
    c.close()
    return out


def run(bootstrap):
    topic = unique("kp-txn")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    p = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=unique("kp-tx"))
    p.init_transactions()
    p.begin_transaction()
    for i in range(30):
        p.send(topic, f"k{i}".encode(), partition=i % 3)
    p.flush(30)
    check_eq(read_all(bootstrap, topic, "read_committed", settle=2.0), [], "read_committed while open")
    p.commit_transaction()
    check_eq(
        sorted(read_all(bootstrap, topic, "read_committed")),
        sorted(f"k{i}".encode() for i in range(30)),
        "read_committed after commit",
    )
    p.begin_transaction()
    p.send(topic, b"second", partition=2)
    p.commit_transaction()
    check_eq(len(read_all(bootstrap, topic, "read_committed")), 31, "after a second transaction")
    p.close(10)
    print("kafka-python: transactional producer committed over 3 partitions")


if __name__ == "__main__":
    main(run)
