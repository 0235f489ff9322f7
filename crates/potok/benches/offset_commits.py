#!/usr/bin/env python3
"""Offset commits per second through a running Potok broker (issue #5, acceptance 6).

Usage: offset_commits.py BOOTSTRAP ADMIN_HOST:PORT [COUNT]

A confluent-kafka (librdkafka) consumer in group `commit-bench` commits COUNT single-partition
offsets asynchronously (librdkafka pipelines the OffsetCommit requests on the coordinator
connection), then one synchronous commit, and waits until every commit callback has fired. The
rate is COUNT over that whole time. The broker's own count of OffsetCommit requests, read from
`/metrics` on the admin listener before and after, must have grown by at least COUNT, so the
figure counts commits the broker handled, not commits the client merely queued.
"""
import sys, time, urllib.request
from confluent_kafka import Consumer, TopicPartition, Producer

def offset_commit_requests(admin):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("potok_request_latency_seconds_count") and 'api="OffsetCommit"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return int(total)

def main():
    bootstrap, admin = sys.argv[1], sys.argv[2]
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 50000
    topic = f"commit-bench-{int(time.time())}"
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, b"x")
    assert p.flush(10) == 0, "produce failed"
    done = [0]
    errors = []
    def on_commit(err, parts):
        done[0] += 1
        if err is not None:
            errors.append(err)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "commit-bench",
                  "enable.auto.commit": False, "on_commit": on_commit})
    c.assign([TopicPartition(topic, 0, 0)])
    c.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)  # find the coordinator
    c.poll(0.1)
    before = offset_commit_requests(admin)
    done[0] = 0
    t0 = time.perf_counter()
    for i in range(count):
        c.commit(offsets=[TopicPartition(topic, 0, i + 1)], asynchronous=True)
        if i % 1000 == 0:
            c.poll(0)
    deadline = time.time() + 120
    while done[0] < count and time.time() < deadline:
        c.poll(0.01)
    dt = time.perf_counter() - t0
    after = offset_commit_requests(admin)
    committed = c.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
    c.close()
    assert not errors, f"commit errors: {errors[:3]}"
    assert done[0] >= count, f"only {done[0]} of {count} commits completed"
    assert after - before >= count, f"broker counted {after - before} OffsetCommit requests"
    assert committed == count, f"committed offset {committed}, expected {count}"
    print(f"{count} offset commits in {dt:.3f} s: {count / dt:,.0f} commits/s "
          f"(broker handled {after - before} OffsetCommit requests; final committed offset {committed})")

if __name__ == "__main__":
    main()
