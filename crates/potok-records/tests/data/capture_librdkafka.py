#!/usr/bin/env python3
"""Captures the record batches librdkafka (via confluent-kafka) writes for each codec.

Not run by CI: it regenerates tests/data/librdkafka-<codec>.hex, which tests/vectors.rs reads.
A minimal fake broker on 127.0.0.1 answers ApiVersions (v3) and Metadata (v1) and records the
`records` field of Produce (v3-v8, acks=0) requests; nothing else of the protocol is implemented.
Usage: python3 capture_librdkafka.py OUTDIR
"""
import socket
import struct
import sys
import threading

from confluent_kafka import Producer, libversion

TOPIC = b"t"
captured = {}


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def uvarint(n):
    out = b""
    while n >= 0x80:
        out += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return out + bytes([n])


def string(b):
    return struct.pack(">h", len(b)) + b


def api_versions_v3():
    # librdkafka enables message format v2 only with Produce >= 3 and Fetch >= 4, and zstd only
    # with Produce >= 7 and Fetch >= 10, so those are advertised although Fetch is never served.
    # Produce v3..v8 share one request layout, which parse_produce_v3 reads.
    # librdkafka ties its lz4 feature to FindCoordinator (Kafka 0.8.2), so that is listed too.
    apis = [(0, 3, 8), (1, 4, 11), (3, 1, 1), (10, 0, 0), (18, 0, 3)]
    body = struct.pack(">h", 0) + uvarint(len(apis) + 1)
    for key, lo, hi in apis:
        body += struct.pack(">hhh", key, lo, hi) + b"\x00"
    return body + struct.pack(">i", 0) + b"\x00"


def metadata_v1(port):
    body = struct.pack(">i", 1) + struct.pack(">i", 0) + string(b"127.0.0.1")
    body += struct.pack(">i", port) + struct.pack(">h", -1)
    body += struct.pack(">i", 0)  # controller id
    body += struct.pack(">i", 1) + struct.pack(">h", 0) + string(TOPIC) + b"\x00"
    body += struct.pack(">i", 1) + struct.pack(">hii", 0, 0, 0)
    body += struct.pack(">ii", 1, 0) + struct.pack(">ii", 1, 0)
    return body


def parse_produce_v3(body, codec):
    pos = 0
    (tlen,) = struct.unpack_from(">h", body, pos)
    pos += 2 + max(tlen, 0)
    pos += 2 + 4  # acks, timeout
    (ntopics,) = struct.unpack_from(">i", body, pos)
    pos += 4
    for _ in range(ntopics):
        (nlen,) = struct.unpack_from(">h", body, pos)
        pos += 2 + nlen
        (nparts,) = struct.unpack_from(">i", body, pos)
        pos += 4
        for _ in range(nparts):
            pos += 4
            (rlen,) = struct.unpack_from(">i", body, pos)
            pos += 4
            captured.setdefault(codec, b"")
            captured[codec] += body[pos:pos + rlen]
            pos += rlen


def serve(srv, codec, stop):
    srv.settimeout(0.2)
    conns = []
    while not stop.is_set():
        try:
            c, _ = srv.accept()
            c.settimeout(10)
            conns.append(c)
            threading.Thread(target=handle, args=(c, codec), daemon=True).start()
        except socket.timeout:
            pass
    for c in conns:
        c.close()


def handle(c, codec):
    port = c.getsockname()[1]
    try:
        while True:
            (size,) = struct.unpack(">i", read_exact(c, 4))
            frame = read_exact(c, size)
            key, ver, corr = struct.unpack_from(">hhi", frame, 0)
            (clen,) = struct.unpack_from(">h", frame, 8)
            pos = 10 + max(clen, 0)
            if key == 18:
                if ver >= 3:
                    pos += 1  # empty tagged fields of header v2
                resp = struct.pack(">i", corr) + api_versions_v3()
            elif key == 3:
                resp = struct.pack(">i", corr) + metadata_v1(port)
            elif key == 0:
                parse_produce_v3(frame[pos:], codec)
                continue  # acks=0: no response
            else:
                return
            c.sendall(struct.pack(">i", len(resp)) + resp)
    except (EOFError, OSError):
        return


def main():
    out = sys.argv[1]
    print("librdkafka", libversion()[0])
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        stop = threading.Event()
        t = threading.Thread(target=serve, args=(srv, codec, stop), daemon=True)
        t.start()
        p = Producer({
            "bootstrap.servers": f"127.0.0.1:{port}",
            "acks": 0,
            "compression.type": codec,
            "linger.ms": 50,
            "enable.idempotence": False,
        })
        for i in range(3):
            p.produce("t", key=f"key-{i}".encode(), value=(f"value-{i}-" * 20).encode(),
                      headers=[("h", b"v%d" % i)], timestamp=1700000000000 + i)
        p.flush(10)
        # Give the fake broker time to read the acks=0 request.
        for _ in range(50):
            if codec in captured:
                break
            stop.wait(0.1)
        stop.set()
        t.join()
        srv.close()
        data = captured.get(codec)
        if data is None:
            sys.exit(f"nothing captured for {codec}")
        with open(f"{out}/librdkafka-{codec}.hex", "w") as f:
            f.write(data.hex() + "\n")
        print(codec, len(data))


if __name__ == "__main__":
    main()
