#!/usr/bin/env python3
"""Many partitions on one broker (issue #14, point 2): creation, memory, descriptors, Metadata,
clean restart and restart after SIGKILL while producing.

Usage: partitions.py POTOK_BINARY TOPICS PARTITIONS_PER_TOPIC [--keep DIR] [--set NAME=VALUE]...
                     [--metadata-only]

Starts `POTOK_BINARY serve` on a free 127.0.0.1 port with a fresh data directory (removed at the
end unless --keep; `--set` passes broker settings through), and prints one line per figure:

- create: CreateTopics in requests of at most 10,000 partitions (Kafka's per-request cap), wall
  time until the last request is answered;
- idle RSS (VmRSS) and open descriptors (/proc/PID/fd) once everything exists;
- metadata: one Metadata request for all topics (kafka-python), answered and decoded; and the
  broker's part of it: the median of five raw Metadata v12 requests for all topics, from sending
  the request to the response's last byte (no decoding); and kafka-python's own part: its
  `MetadataResponse.decode` and `to_dict` (what `list_topics` runs) on those bytes, v12 being
  the version kafka-python uses with Potok; and the same with librdkafka (confluent-kafka's
  `AdminClient.list_topics()`, median of five, Python objects for every partition included),
  a client that decodes in C (--metadata-only stops here);
- clean restart: SIGTERM, time to exit; then time from spawn until the port accepts and the
  broker logs "potok broker started", and how many partition logs it logged as recovered;
- SIGKILL restart: one record produced to every partition (confluent-kafka, acks=1, default
  flush settings), SIGKILL while a second round is in flight, then the same start-up timing;
- with each start, the broker's `segments_recovered` count, and the largest /proc/PID/fd count
  seen (sampled every 50 ms) over the whole run, next to `potok.log.max.open.files`;
- the data directory's size on disk at the end.

Every wait is bounded; the broker is killed on any failure.
"""
import os, re, signal, socket, struct, subprocess, sys, tempfile, threading, time, shutil

from kafka.admin import KafkaAdminClient, NewTopic

START_TIMEOUT = 900


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary, data, port, sets):
        self.binary, self.data, self.port, self.proc, self.runs = binary, data, port, None, 0
        self.sets = sets
        self.max_fds = 0
        self.sampling = True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self.sampling:
            proc = self.proc
            if proc is not None and proc.poll() is None:
                try:
                    self.max_fds = max(self.max_fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
                except OSError:
                    pass
            time.sleep(0.05)

    def start(self):
        self.runs += 1
        self.log = os.path.join(os.path.dirname(self.data), f"broker-{self.runs}.log")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--set", f"log.dirs={self.data}",
             "--set", f"listeners=PLAINTEXT://127.0.0.1:{self.port}"]
            + [a for kv in self.sets for a in ("--set", kv)],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"broker exited with {self.proc.returncode}; see {self.log}")
            with open(self.log) as f:
                if "potok broker started" in f.read():
                    return time.perf_counter() - t0
            time.sleep(0.02)
        raise SystemExit("broker did not start in time")

    def recovered(self):
        """(partition logs logged as recovered, segments_recovered of the start-up line)."""
        with open(self.log) as f:
            text = f.read()
        parts = text.count("recovered partition log")
        m = re.search(r"segments_recovered=(\d+)", text)
        return parts, int(m.group(1)) if m else None

    def bound(self):
        with open(self.log) as f:
            m = re.search(r"max\.open\.files.*?\b(?:bound|used)=(\d+)", f.read())
        return m.group(1) if m else None

    def stop(self, sig):
        t0 = time.perf_counter()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=START_TIMEOUT)
        return time.perf_counter() - t0

    def rss_mib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return kb / 1024

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))


def create(bootstrap, topics, parts):
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=600_000)
    per_request = max(1, 10_000 // parts)
    names = [f"p{i:05d}" for i in range(topics)]
    t0 = time.perf_counter()
    for i in range(0, topics, per_request):
        batch = [NewTopic(n, parts, 1) for n in names[i:i + per_request]]
        admin.create_topics(batch, timeout_ms=600_000)
    dt = time.perf_counter() - t0
    t0 = time.perf_counter()
    listed = admin.list_topics()  # one Metadata request for all topics
    meta = time.perf_counter() - t0
    admin.close()
    assert len([t for t in listed if t.startswith("p")]) == topics, "not every topic is listed"
    return names, dt, meta


def raw_metadata_ms(port, rounds=5):
    """Median time of a Metadata v12 request for all topics until its last byte is read, the
    response size, and kafka-python's decode and to_dict times for the last response: what the
    broker costs without a client's decoding, and what the client adds."""
    hdr = struct.pack(">hhih", 3, 12, 1, 3) + b"raw" + b"\x00"
    # topics null, allow_auto_topic_creation false, include_topic_authorized_operations true
    msg = hdr + b"\x00\x00\x01\x00"
    times, size = [], 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        for _ in range(rounds):
            t0 = time.perf_counter()
            s.sendall(struct.pack(">i", len(msg)) + msg)
            size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
            chunks, got = [], 0
            while got < size:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise SystemExit("broker closed the connection")
                chunks.append(chunk)
                got += len(chunk)
            times.append(time.perf_counter() - t0)
    times.sort()
    from kafka.protocol.metadata import MetadataResponse
    # The flexible response header: correlation id and an empty tagged-field section.
    payload = b"".join(chunks)[5:]
    t0 = time.perf_counter()
    decoded = MetadataResponse.decode(payload, version=12)
    t1 = time.perf_counter()
    decoded.to_dict()
    t2 = time.perf_counter()
    return times[len(times) // 2] * 1000, size, (t1 - t0) * 1000, (t2 - t1) * 1000


def librdkafka_metadata_ms(bootstrap, total, rounds=5):
    """Median time of confluent-kafka's `list_topics()` (one Metadata request for all topics,
    decoded by librdkafka, then turned into Python objects), after one warm-up call that
    connects. Checks that every partition is listed."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.list_topics(timeout=60)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        md = admin.list_topics(timeout=60)
        times.append(time.perf_counter() - t0)
    listed = sum(len(t.partitions) for n, t in md.topics.items() if n.startswith("p"))
    assert listed == total, f"librdkafka listed {listed} of {total} partitions"
    times.sort()
    return times[len(times) // 2] * 1000


def produce_round(bootstrap, names, parts, flush=True):
    """One 100-byte record to every partition. One producer per 10,000 partitions, one after
    another when flushing: librdkafka's cost per partition grows with the partitions one producer
    handles (10,000 take ~5 s, 100,000 in one producer did not finish within its 300 s message
    timeout, so most records expired unsent). With `flush`, every record must be acknowledged
    without error; otherwise the producers are returned with their records in flight."""
    from confluent_kafka import Producer
    per_producer = max(1, 10_000 // parts)
    producers, failed = [], []

    def report(err, _msg):
        if err is not None:
            failed.append(err)

    for i in range(0, len(names), per_producer):
        p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                      "queue.buffering.max.messages": 2_000_000, "log_level": 0})
        for n in names[i:i + per_producer]:
            for q in range(parts):
                p.produce(n, b"x" * 100, partition=q, on_delivery=report)
            p.poll(0)
        if flush:
            left = p.flush(300)
            assert left == 0, f"{left} records not acknowledged"
            assert not failed, f"{len(failed)} records failed, first: {failed[0]}"
        else:
            producers.append(p)
    return producers


def du_mib(path):
    out = subprocess.run(["du", "-sm", path], capture_output=True, text=True).stdout
    return out.split()[0] if out else "?"


def main():
    binary, topics, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rest, keep, sets, metadata_only = sys.argv[4:], None, [], False
    while rest:
        if rest[0] == "--metadata-only":
            metadata_only, rest = True, rest[1:]
        elif rest[0] == "--keep" and len(rest) > 1:
            keep, rest = rest[1], rest[2:]
        elif rest[0] == "--set" and len(rest) > 1:
            sets, rest = sets + [rest[1]], rest[2:]
        else:
            raise SystemExit(__doc__)
    root = keep or tempfile.mkdtemp(prefix="potok-partitions-")
    os.makedirs(root, exist_ok=True)
    data = os.path.join(root, "data")
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    b = Broker(binary, data, port, sets)
    total = topics * parts
    try:
        b.start()
        names, dt, meta = create(bootstrap, topics, parts)
        print(f"partitions: {total} ({topics} topics x {parts})")
        print(f"create: {dt:.2f} s ({total / dt:,.0f} partitions/s)")
        time.sleep(1)
        print(f"idle RSS: {b.rss_mib():.1f} MiB; open descriptors: {b.fds()}")
        print(f"metadata for all topics: {meta * 1000:.0f} ms")
        raw, size, decode, to_dict = raw_metadata_ms(port)
        print(f"metadata for all topics, broker only (raw v12, median of 5): {raw:.0f} ms "
              f"for {size / 1e6:.1f} MB")
        print(f"metadata for all topics, kafka-python only: decode {decode:.0f} ms, "
              f"to_dict {to_dict:.0f} ms")
        print(f"metadata for all topics, librdkafka (confluent-kafka list_topics, median of 5): "
              f"{librdkafka_metadata_ms(bootstrap, total):.0f} ms")
        if metadata_only:
            return
        print(f"clean shutdown: {b.stop(signal.SIGTERM):.2f} s")
        t = b.start()
        logs, segs = b.recovered()
        print(f"clean restart: {t:.2f} s; partition logs recovered: {logs}; "
              f"segments_recovered: {segs}")
        t0 = time.perf_counter()
        produce_round(bootstrap, names, parts)
        print(f"one record to every partition (acks=1): {time.perf_counter() - t0:.2f} s")
        producers = produce_round(bootstrap, names, parts, flush=False)
        for p in producers:
            p.poll(0.5 / len(producers))
        b.stop(signal.SIGKILL)
        # The records in flight are lost with the broker; drop them rather than retry.
        for p in producers:
            p.purge()
            p.flush(0)
        del producers
        t = b.start()
        logs, segs = b.recovered()
        print(f"restart after SIGKILL while producing: {t:.2f} s; "
              f"partition logs recovered: {logs}; segments_recovered: {segs}")
        print(f"clean shutdown after recovery: {b.stop(signal.SIGTERM):.2f} s")
        print(f"most open descriptors seen: {b.max_fds} "
              f"(potok.log.max.open.files in force: {b.bound()})")
        print(f"data directory: {du_mib(data)} MiB on disk")
    finally:
        b.sampling = False
        if b.proc and b.proc.poll() is None:
            b.proc.kill()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
