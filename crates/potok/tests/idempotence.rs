//! Idempotent producer end to end (issue #6): real clients with `enable.idempotence`, a
//! loopback proxy that cuts connections mid-response and delays responses, and a broker that is
//! SIGKILLed and restarted mid-run. Every record must end up in its partition exactly once and
//! in order.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;

// ---------------------------------------------------------------------------------------------
// A chaos proxy on 127.0.0.1.

/// Forwards client connections to the broker. On some connections it cuts both directions
/// after a random number of response bytes (so acknowledgements are lost, often mid-frame,
/// while the requests they answer were already appended), and it delays some response chunks.
/// The number of cuts and delays is bounded, so a run always finishes.
struct ChaosProxy {
    port: u16,
    shared: Arc<ProxyShared>,
    accept: Option<JoinHandle<()>>,
}

struct Chaos {
    max_cuts: usize,
    max_delays: usize,
    /// Response bytes a cut connection forwards first, drawn from this range.
    cut_after: (u64, u64),
    max_delay_ms: u64,
}

/// State shared by the proxy's threads.
struct ProxyShared {
    upstream: AtomicU16,
    stop: AtomicBool,
    cuts: AtomicUsize,
    delays: AtomicUsize,
    /// While set, responses are swallowed instead of forwarded (acknowledgements lost while
    /// the requests they answer are appended).
    blackhole: AtomicBool,
    chaos: Chaos,
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Claims one unit of a bounded budget.
fn claim(counter: &AtomicUsize, max: usize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

impl ChaosProxy {
    fn start(chaos: Chaos, seed: u64) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(ProxyShared {
            upstream: AtomicU16::new(0),
            stop: AtomicBool::new(false),
            cuts: AtomicUsize::new(0),
            delays: AtomicUsize::new(0),
            blackhole: AtomicBool::new(false),
            chaos,
        });
        let sh = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            let mut rng = seed | 1;
            let mut conns: Vec<JoinHandle<()>> = Vec::new();
            while !sh.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let seed = xorshift(&mut rng);
                        let sh = Arc::clone(&sh);
                        conns.push(std::thread::spawn(move || serve_conn(client, &sh, seed)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
                conns.retain(|h| !h.is_finished());
            }
            for h in conns {
                let _ = h.join();
            }
        });
        ChaosProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    fn set_upstream(&self, port: u16) {
        self.shared.upstream.store(port, Ordering::SeqCst);
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve_conn(client: TcpStream, sh: &Arc<ProxyShared>, mut rng: u64) {
    let upstream = sh.upstream.load(Ordering::SeqCst);
    let Ok(server) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], upstream)),
        Duration::from_secs(5),
    ) else {
        return;
    };
    let _ = client.set_nonblocking(false);
    for s in [&client, &server] {
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        let _ = s.set_nodelay(true);
    }
    // Every connection is cut while the budget lasts (the client opens a new one after each
    // cut, so cuts spread over the run); later connections pass everything.
    let cut_after = if claim(&sh.cuts, sh.chaos.max_cuts) {
        let (lo, hi) = sh.chaos.cut_after;
        Some(lo + xorshift(&mut rng) % (hi - lo))
    } else {
        None
    };
    let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let sh2 = Arc::clone(sh);
    let up = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while !sh2.stop.load(Ordering::Relaxed) {
            match c_read.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if is_timeout(&e) => {}
                Err(_) => break,
            }
        }
        let _ = s_write.shutdown(Shutdown::Both);
        let _ = c_read.shutdown(Shutdown::Both);
    });
    let (mut s_read, mut c_write) = (server, client);
    let mut sent = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    while !sh.stop.load(Ordering::Relaxed) {
        match s_read.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let chunk = &buf[..n];
                if sh.blackhole.load(Ordering::SeqCst) {
                    continue;
                }
                if let Some(limit) = cut_after {
                    if sent + n as u64 >= limit {
                        // Forward part of the response, then drop the connection.
                        let keep = (limit - sent) as usize;
                        let _ = c_write.write_all(&chunk[..keep]);
                        break;
                    }
                }
                if xorshift(&mut rng).is_multiple_of(16) && claim(&sh.delays, sh.chaos.max_delays) {
                    let ms = xorshift(&mut rng) % sh.chaos.max_delay_ms;
                    std::thread::sleep(Duration::from_millis(ms));
                }
                if c_write.write_all(chunk).is_err() {
                    break;
                }
                sent += n as u64;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => break,
        }
    }
    let _ = c_write.shutdown(Shutdown::Both);
    let _ = s_read.shutdown(Shutdown::Both);
    let _ = up.join();
}

// ---------------------------------------------------------------------------------------------
// Clients.

fn create_topic(bootstrap: &str, name: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
    assert!(r[0].is_ok(), "{r:?}");
}

/// The value of record `id`: its id (8 bytes, big-endian) then filler, ~100 bytes in all.
fn value_of(id: u64) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend((0..92u8).map(|i| i ^ (id as u8)));
    v
}

fn id_of(value: &[u8]) -> u64 {
    let (head, rest) = value.split_at(8);
    let id = u64::from_be_bytes(head.try_into().unwrap());
    assert_eq!(rest, &value_of(id)[8..], "record {id} corrupted");
    id
}

#[derive(Default)]
struct Deliveries {
    /// (partition, offset, id) of every acknowledged record.
    ok: Mutex<Vec<(i32, i64, u64)>>,
    failed: Mutex<Vec<String>>,
    acked: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        match r {
            Ok(m) => {
                let id = id_of(m.payload().unwrap_or_default());
                self.ok
                    .lock()
                    .unwrap()
                    .push((m.partition(), m.offset(), id));
                self.acked.fetch_add(1, Ordering::SeqCst);
            }
            Err((e, _)) => self.failed.lock().unwrap().push(e.to_string()),
        }
    }
}

fn idempotent_producer(bootstrap: &str, extra: &[(&str, &str)]) -> ThreadedProducer<Deliveries> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("batch.num.messages", "500")
        .set("message.timeout.ms", "90000")
        .set("reconnect.backoff.ms", "20")
        .set("retry.backoff.ms", "20");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create_with_context(Deliveries::default())
        .expect("producer")
}

/// Queues records `ids` (record `id` goes to partition `id % PARTITIONS`), waiting while the
/// local queue is full.
fn send_all(p: &ThreadedProducer<Deliveries>, topic: &str, ids: std::ops::Range<u64>) {
    for id in ids {
        let v = value_of(id);
        let key = id.to_string();
        let mut rec = BaseRecord::to(topic)
            .partition((id % PARTITIONS as u64) as i32)
            .key(&key)
            .payload(&v);
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((e, _)) => panic!("send {id}: {e}"),
            }
        }
    }
}

/// Reads every partition of `topic` to its high watermark: per partition, the record ids in
/// log order. Also checks that the partitions hold exactly the records read (no hidden extra
/// copies below what was read).
fn read_topic(bootstrap: &str, topic: &str) -> Vec<Vec<u64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "idempotence-check")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut highs = Vec::new();
    for p in 0..PARTITIONS {
        let (lo, hi) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        assert_eq!(lo, 0);
        highs.push(hi);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = vec![Vec::new(); PARTITIONS as usize];
    let mut next = vec![0i64; PARTITIONS as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while (0..PARTITIONS as usize).any(|p| next[p] < highs[p]) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {topic}: {next:?} of {highs:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let p = m.partition() as usize;
            assert_eq!(m.offset(), next[p], "offsets are dense");
            next[p] = m.offset() + 1;
            out[p].push(id_of(m.payload().unwrap_or_default()));
        }
    }
    out
}

/// Every id in `0..n` exactly once, in its own partition, in increasing order per partition.
fn assert_exactly_once_in_order(parts: &[Vec<u64>], n: u64) {
    let mut seen = HashSet::new();
    for (p, ids) in parts.iter().enumerate() {
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "partition {p}: {} before {}", w[0], w[1]);
        }
        for &id in ids {
            assert_eq!(
                id % PARTITIONS as u64,
                p as u64,
                "record {id} in partition {p}"
            );
            assert!(seen.insert(id), "record {id} appears twice");
        }
    }
    assert_eq!(seen.len() as u64, n, "missing records");
}

fn chaos() -> Chaos {
    Chaos {
        max_cuts: 12,
        max_delays: 40,
        cut_after: (200, 6000),
        max_delay_ms: 300,
    }
}

fn broker_behind(proxy: &ChaosProxy) -> common::Broker {
    let b = common::Broker::builder()
        .set(
            "advertised.listeners",
            &format!("PLAINTEXT://127.0.0.1:{}", proxy.port),
        )
        .start();
    proxy.set_upstream(b.port);
    b
}

const N: u64 = 100_000;

#[test]
fn rdkafka_idempotent_producer_through_a_lossy_proxy_writes_each_record_once() {
    let proxy = ChaosProxy::start(chaos(), 0x5eed_1234);
    let b = broker_behind(&proxy);
    create_topic(&b.bootstrap(), "idem-rdkafka");
    let p = idempotent_producer(&proxy.bootstrap(), &[]);
    send_all(&p, "idem-rdkafka", 0..N);
    p.flush(Duration::from_secs(120)).expect("flush");
    let ctx = p.context();
    {
        let failed = ctx.failed.lock().unwrap();
        assert!(
            failed.is_empty(),
            "{} failed: {:?}",
            failed.len(),
            &failed[..failed.len().min(5)]
        );
    }
    assert_eq!(ctx.acked.load(Ordering::SeqCst), N);
    let cuts = proxy.shared.cuts.load(Ordering::SeqCst);
    assert!(cuts >= 3, "the proxy cut only {cuts} connections");
    let parts = read_topic(&b.bootstrap(), "idem-rdkafka");
    assert_exactly_once_in_order(&parts, N);
    // The acknowledged offsets are where the records are.
    for &(partition, offset, id) in ctx.ok.lock().unwrap().iter() {
        assert_eq!(parts[partition as usize][offset as usize], id);
    }
    eprintln!(
        "rdkafka: {N} records, {cuts} cut connections, {} delayed responses",
        proxy.shared.delays.load(Ordering::SeqCst)
    );
}

/// Runs a Python script with a timeout; returns stdout.
fn python(script: &str, args: &[&str], timeout: Duration) -> String {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            let mut err = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "python failed: {status}\n{out}\n{err}");
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("python timed out");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CONFLUENT_SCRIPT: &str = r#"
import sys
from confluent_kafka import Producer
bootstrap, topic, n, parts = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 2,
              "message.timeout.ms": 90000, "reconnect.backoff.ms": 20, "retry.backoff.ms": 20})
acked, failed = [0], []
def cb(err, msg):
    if err is not None:
        failed.append(str(err))
    else:
        acked[0] += 1
for i in range(n):
    v = i.to_bytes(8, "big") + bytes((j ^ (i & 0xff)) for j in range(92))
    while True:
        try:
            p.produce(topic, value=v, key=str(i), partition=i % parts, on_delivery=cb)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)
left = p.flush(120)
print("acked", acked[0], "failed", len(failed), "left", left, failed[:3])
"#;

#[test]
fn confluent_kafka_idempotent_producer_through_a_lossy_proxy_writes_each_record_once() {
    let proxy = ChaosProxy::start(chaos(), 0xc0ff_ee11);
    let b = broker_behind(&proxy);
    create_topic(&b.bootstrap(), "idem-confluent");
    let out = python(
        CONFLUENT_SCRIPT,
        &[
            &proxy.bootstrap(),
            "idem-confluent",
            &N.to_string(),
            &PARTITIONS.to_string(),
        ],
        Duration::from_secs(240),
    );
    assert!(
        out.trim()
            .starts_with(&format!("acked {N} failed 0 left 0")),
        "{out}"
    );
    let cuts = proxy.shared.cuts.load(Ordering::SeqCst);
    assert!(cuts >= 3, "the proxy cut only {cuts} connections");
    let parts = read_topic(&b.bootstrap(), "idem-confluent");
    assert_exactly_once_in_order(&parts, N);
}

#[test]
fn broker_sigkill_mid_run_leaves_no_duplicate_and_no_gap() {
    // The producer talks through a proxy that, just before the kill, swallows the broker's
    // responses: the batches in flight then are appended but not acknowledged, so after the
    // restart the client retries batches the log already holds, and only the producer state
    // rebuilt from the log (snapshot + tail) keeps them from being written twice.
    let proxy = ChaosProxy::start(
        Chaos {
            max_cuts: 0,
            max_delays: 0,
            cut_after: (1, 2),
            max_delay_ms: 1,
        },
        7,
    );
    let mut b = broker_behind(&proxy);
    create_topic(&b.bootstrap(), "idem-kill");
    let p = Arc::new(idempotent_producer(&proxy.bootstrap(), &[]));
    let total = 60_000u64;
    let sender = {
        let p = Arc::clone(&p);
        std::thread::spawn(move || {
            // Paced so the kill lands in the middle of the run.
            for chunk in 0..60 {
                send_all(&p, "idem-kill", chunk * 1000..(chunk + 1) * 1000);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while p.context().acked.load(Ordering::SeqCst) < 15_000 {
        assert!(Instant::now() < deadline, "no progress before the kill");
        std::thread::sleep(Duration::from_millis(5));
    }
    proxy.shared.blackhole.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    b.sigkill();
    proxy.shared.blackhole.store(false, Ordering::SeqCst);
    b.restart();
    sender.join().unwrap();
    p.flush(Duration::from_secs(120)).expect("flush");
    let ctx = p.context();
    let acked: Vec<(i32, i64, u64)> = ctx.ok.lock().unwrap().clone();
    let failed = ctx.failed.lock().unwrap().clone();
    let parts = read_topic(&b.bootstrap(), "idem-kill");
    // No duplicates at all, and in order per partition.
    let mut seen = HashSet::new();
    for (pi, ids) in parts.iter().enumerate() {
        for w in ids.windows(2) {
            assert!(w[0] < w[1], "partition {pi}: {} before {}", w[0], w[1]);
        }
        for &id in ids {
            assert!(seen.insert(id), "record {id} appears twice");
        }
    }
    // Every acknowledged record is there, where it was acknowledged.
    for &(partition, offset, id) in &acked {
        assert_eq!(
            parts[partition as usize].get(offset as usize),
            Some(&id),
            "acked record {id}"
        );
    }
    // No gap among acknowledged records: per partition, the acknowledged ids are exactly the
    // records of that partition up to the last acknowledged one.
    for (pi, ids) in parts.iter().enumerate() {
        let mut acked_here: Vec<u64> = acked
            .iter()
            .filter(|a| a.0 == pi as i32)
            .map(|a| a.2)
            .collect();
        acked_here.sort_unstable();
        let upto = ids.len().min(acked_here.len());
        assert_eq!(&ids[..upto], &acked_here[..upto], "partition {pi}");
    }
    assert!(
        failed.is_empty(),
        "deliveries failed: {:?}",
        &failed[..failed.len().min(5)]
    );
    assert_eq!(acked.len() as u64, total);
    assert_exactly_once_in_order(&parts, total);
}

const KAFKA_PYTHON_SCRIPT: &str = r#"
import sys
from kafka import KafkaProducer
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all",
                  linger_ms=5, request_timeout_ms=30000)
futures = [p.send(topic, value=i.to_bytes(8, "big") + bytes((j ^ (i & 0xff)) for j in range(92)),
                  key=str(i).encode(), partition=i % 3) for i in range(n)]
p.flush(60)
offsets = [f.get(timeout=60) for f in futures]
print("ok", len(offsets), "producer_id", p._transaction_manager.producer_id_and_epoch.producer_id)
p.close(10)
"#;

#[test]
fn kafka_python_idempotent_producer_produces() {
    let b = common::Broker::start();
    create_topic(&b.bootstrap(), "idem-kafka-python");
    let n = 3000u64;
    let out = python(
        KAFKA_PYTHON_SCRIPT,
        &[&b.bootstrap(), "idem-kafka-python", &n.to_string()],
        Duration::from_secs(120),
    );
    assert!(out.starts_with(&format!("ok {n} producer_id ")), "{out}");
    let pid: i64 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(pid >= 0, "{out}");
    let parts = read_topic(&b.bootstrap(), "idem-kafka-python");
    assert_exactly_once_in_order(&parts, n);
}

// ---------------------------------------------------------------------------------------------
// Raw protocol checks: InitProducerId, the produce error codes, DescribeProducers.

mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use bytes::{Bytes, BytesMut};
    use potok_protocol::messages::{RequestHeader, ResponseHeader};
    use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode};

    /// One request/response exchange on a fresh connection; returns the response body.
    pub fn call<Req: Encode, Resp: Decode>(
        port: u16,
        key: ApiKey,
        version: i16,
        body: &Req,
    ) -> Resp {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let header = RequestHeader {
            request_api_key: key as i16,
            request_api_version: version,
            correlation_id: 42,
            client_id: Some("idempotence-test".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &header, body).expect("encode");
        s.write_all(&buf).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).expect("response length");
        let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut frame).expect("response");
        let mut b = Bytes::from(frame);
        let h =
            ResponseHeader::decode(&mut b, key.response_header_version(version)).expect("header");
        assert_eq!(h.correlation_id, 42);
        Resp::decode(&mut b, version).expect("decode response")
    }
}

fn init_producer_id(port: u16, id: i64, epoch: i16) -> (i16, i64, i16) {
    use potok_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let r: InitProducerIdResponse = raw::call(
        port,
        potok_protocol::ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: id,
            producer_epoch: epoch,
            ..Default::default()
        },
    );
    (r.error_code, r.producer_id, r.producer_epoch)
}

/// Produces one idempotent batch of `n` records; returns (error code, base offset).
fn produce_raw(port: u16, topic: &str, pid: i64, epoch: i16, seq: i32, n: usize) -> (i16, i64) {
    use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use potok_protocol::messages::{ProduceRequest, ProduceResponse};
    use potok_records::{ProducerEpoch, ProducerId, RecordBatchBuilder};
    let mut b = RecordBatchBuilder::new().producer(ProducerId(pid), ProducerEpoch(epoch), seq);
    // Current timestamps: a producer whose last batch is older than producer.id.expiration.ms
    // (1 day) is forgotten when the partition is reopened.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for i in 0..n {
        b = b.key_value(now, None, Some(&value_of(i as u64)));
    }
    let req = ProduceRequest {
        transactional_id: None,
        acks: -1,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(b.build().unwrap().into_bytes()),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let r: ProduceResponse = raw::call(port, potok_protocol::ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn init_producer_id_error_codes_and_describe_producers() {
    use potok_protocol::messages::describe_producers_request::TopicRequest;
    use potok_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse};
    use potok_protocol::ErrorCode;

    let mut b = common::Broker::start();
    create_topic(&b.bootstrap(), "idem-raw");
    let (e, a, ea) = init_producer_id(b.port, -1, -1);
    assert_eq!((e, ea), (0, 0));
    let (_, c, _) = init_producer_id(b.port, -1, -1);
    assert_ne!(a, c, "fresh ids differ");

    let ok = ErrorCode::None.code();
    assert_eq!(produce_raw(b.port, "idem-raw", a, 0, 0, 3), (ok, 0));
    assert_eq!(produce_raw(b.port, "idem-raw", a, 0, 3, 2), (ok, 3));
    // A retry is acknowledged again with its original offset, and nothing is written twice.
    assert_eq!(produce_raw(b.port, "idem-raw", a, 0, 0, 3), (ok, 0));
    assert_eq!(produce_raw(b.port, "idem-raw", a, 0, 3, 2), (ok, 3));
    // A gap.
    let (code, _) = produce_raw(b.port, "idem-raw", a, 0, 9, 1);
    assert_eq!(code, ErrorCode::OutOfOrderSequenceNumber.code());
    // KIP-360 epoch bump keeps the id; the old epoch is then stale.
    let (e, a2, ea2) = init_producer_id(b.port, a, 0);
    assert_eq!((e, a2, ea2), (0, a, 1));
    assert_eq!(produce_raw(b.port, "idem-raw", a, 1, 0, 1), (ok, 5));
    let (code, _) = produce_raw(b.port, "idem-raw", a, 0, 5, 1);
    assert_eq!(code, ErrorCode::InvalidProducerEpoch.code());
    // An id this broker never issued is not bumped: a fresh one is returned.
    let (_, d, ed) = init_producer_id(b.port, 1 << 40, 3);
    assert!(d != 1 << 40 && ed == 0);

    let describe = |port: u16| -> DescribeProducersResponse {
        raw::call(
            port,
            potok_protocol::ApiKey::DescribeProducers,
            0,
            &DescribeProducersRequest {
                topics: vec![TopicRequest {
                    name: "idem-raw".into(),
                    partition_indexes: vec![0, 7],
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
    };
    let r = describe(b.port);
    let parts = &r.topics[0].partitions;
    assert_eq!(parts[0].error_code, ok);
    let ps = &parts[0].active_producers;
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(
        (ps[0].producer_id, ps[0].producer_epoch, ps[0].last_sequence),
        (a, 1, 0)
    );
    assert_eq!(
        parts[1].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );

    // Producer ids stay unique across a crash, and the partition state survives it.
    b.sigkill();
    b.restart();
    let (_, f, _) = init_producer_id(b.port, -1, -1);
    assert!(f > a && f > c && f > d, "id {f} reissued after a restart");
    let r = describe(b.port);
    let ps = &r.topics[0].partitions[0].active_producers;
    assert_eq!(
        (ps[0].producer_id, ps[0].producer_epoch, ps[0].last_sequence),
        (a, 1, 0)
    );
    assert_eq!(
        produce_raw(b.port, "idem-raw", a, 1, 0, 1),
        (ok, 5),
        "duplicate after restart"
    );
    assert_eq!(produce_raw(b.port, "idem-raw", a, 1, 1, 1), (ok, 6));
}
