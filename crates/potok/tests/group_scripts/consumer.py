"""A confluent-kafka group member driven by crates/potok/tests/groups.rs.

Usage: consumer.py BOOTSTRAP GROUP TOPIC MODE INSTANCE_ID SECONDS

MODE: "alo" prints each record then commits it (at-least-once), "amo" commits then prints
(at-most-once), "plain" only prints. INSTANCE_ID "-" means a dynamic member. Every line on
stdout is flushed at once: "ASSIGN p,p,..", "REVOKE p,..", "REC partition offset value".
The process exits after SECONDS (the test normally kills it earlier).
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition

bootstrap, group, topic, mode, instance, seconds = sys.argv[1:7]
conf = {
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    "topic.metadata.refresh.interval.ms": 1000,
}
if instance != "-":
    conf["group.instance.id"] = instance
c = Consumer(conf)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def on_assign(consumer, parts):
    out("ASSIGN " + ",".join(str(p.partition) for p in parts))


def on_revoke(consumer, parts):
    out("REVOKE " + ",".join(str(p.partition) for p in parts))


c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
deadline = time.time() + float(seconds)
while time.time() < deadline:
    m = c.poll(0.2)
    if m is None or m.error():
        continue
    line = "REC %d %d %s" % (m.partition(), m.offset(), (m.value() or b"").decode())
    if mode == "alo":
        out(line)
        c.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1)], asynchronous=False)
    elif mode == "amo":
        c.commit(offsets=[TopicPartition(m.topic(), m.partition(), m.offset() + 1)], asynchronous=False)
        out(line)
    else:
        out(line)
c.close()
