"""kafka-python group consumer: reads COUNT records of TOPIC in GROUP, commits, prints them.

Usage: kafka_python_consumer.py BOOTSTRAP GROUP TOPIC COUNT
"""
import sys

from kafka import KafkaConsumer

bootstrap, group, topic, count = sys.argv[1:5]
c = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id=group,
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    session_timeout_ms=6000,
    heartbeat_interval_ms=500,
    consumer_timeout_ms=30000,
)
seen = 0
for m in c:
    print("REC %d %d %s" % (m.partition, m.offset, m.value.decode()), flush=True)
    seen += 1
    if seen >= int(count):
        break
c.commit()
c.close()
