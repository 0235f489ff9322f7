#!/usr/bin/env python3
"""Many partitions on one broker (issue #14, point 2): creation, memory, descriptors, Metadata,
clean restart and restart after SIGKILL while producing.

Usage: partitions.py POTOK_BINARY TOPICS PARTITIONS_PER_TOPIC [--keep DIR] [--set NAME=VALUE]...

Starts `POTOK_BINARY serve` on a free 127.0.0.1 port with a fresh data directory (removed at the
end unless --keep; `--set` passes broker settings through), and prints one line per figure:

- create: CreateTopics in requests of at most 10,000 partitions (Kafka's per-request cap), wall
  time until the last request is answered;
- idle RSS (VmRSS) and open descriptors (/proc/PID/fd) once everything exists;
- metadata: one Metadata request for all topics (kafka-python), answered and decoded;
- clean restart: SIGTERM, time to exit; then time from spawn until the port accepts and the
  broker logs "potok broker started", and how many partition logs it logged as recovered;
- SIGKILL restart: one record produced to every partition (confluent-kafka, acks=1, default
  flush settings), SIGKILL while a second round is in flight, then the same start-up timing;
- with each start, the broker's `segments_recovered` count, and the largest /proc/PID/fd count
  seen (sampled every 50 ms) over the whole run, next to `potok.log.max.open.files`;
- the data directory's size on disk at the end.

Every wait is bounded; the broker is killed on any failure.
"""
import os, re, signal, socket, subprocess, sys, tempfile, threading, time, shutil

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


def produce_round(bootstrap, names, parts, flush=True):
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 5,
                  "queue.buffering.max.messages": 2_000_000, "log_level": 0})
    for n in names:
        for q in range(parts):
            p.produce(n, b"x" * 100, partition=q)
        p.poll(0)
    if flush:
        left = p.flush(300)
        assert left == 0, f"{left} records not acknowledged"
    return p


def du_mib(path):
    out = subprocess.run(["du", "-sm", path], capture_output=True, text=True).stdout
    return out.split()[0] if out else "?"


def main():
    binary, topics, parts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rest, keep, sets = sys.argv[4:], None, []
    while rest:
        if rest[0] == "--keep" and len(rest) > 1:
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
        print(f"clean shutdown: {b.stop(signal.SIGTERM):.2f} s")
        t = b.start()
        logs, segs = b.recovered()
        print(f"clean restart: {t:.2f} s; partition logs recovered: {logs}; "
              f"segments_recovered: {segs}")
        t0 = time.perf_counter()
        produce_round(bootstrap, names, parts)
        print(f"one record to every partition (acks=1): {time.perf_counter() - t0:.2f} s")
        p = produce_round(bootstrap, names, parts, flush=False)
        p.poll(0.5)
        b.stop(signal.SIGKILL)
        # The records in flight are lost with the broker; drop them rather than retry.
        p.purge()
        p.flush(0)
        del p
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
