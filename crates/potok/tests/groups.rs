//! Consumer groups end to end with real clients (issue #5, acceptance 2-5): librdkafka through
//! the `rdkafka` crate, Python `confluent-kafka` and `kafka-python` processes, and `kcat -G`,
//! all against a `potok serve` child process with `group.initial.rebalance.delay.ms=0` and
//! 6-second session timeouts so that the file runs in about a minute.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

fn broker() -> common::Broker {
    common::Broker::builder()
        .set("group.initial.rebalance.delay.ms", "0")
        .admin()
        .start()
}

fn create_topic(b: &common::Broker, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin client");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics");
    assert!(r[0].is_ok(), "{r:?}");
}

/// Produces `per_partition` records to every partition; values are "p-i".
fn produce(b: &common::Broker, topic: &str, partitions: i32, per_partition: usize, tag: &str) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for part in 0..partitions {
        for i in 0..per_partition {
            let v = format!("{tag}-{part}-{i}");
            p.send(BaseRecord::<(), _>::to(topic).partition(part).payload(&v))
                .expect("enqueue");
        }
    }
    p.flush(Duration::from_secs(10)).expect("flush");
}

/// Counts rebalances seen by a consumer.
#[derive(Default, Clone)]
struct Counting(Arc<AtomicUsize>);

impl ClientContext for Counting {}
impl ConsumerContext for Counting {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if matches!(r, Rebalance::Assign(_) | Rebalance::Revoke(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type Member = BaseConsumer<Counting>;

fn member(b: &common::Broker, group: &str, topic: &str, extra: &[(&str, &str)]) -> Member {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let c: Member = cfg
        .create_with_context(Counting::default())
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

fn partitions_of(c: &Member) -> BTreeSet<i32> {
    c.assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every member (committing each record it reads) until `done` holds; returns the
/// records read, as (member index, partition, offset).
fn pump(
    members: &[&Member],
    timeout: Duration,
    reads: &mut Vec<(usize, i32, i64)>,
    mut done: impl FnMut(&[(usize, i32, i64)]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, m) in members.iter().enumerate() {
            while let Some(r) = m.poll(Duration::from_millis(20)) {
                let msg = r.expect("consume");
                reads.push((i, msg.partition(), msg.offset()));
                m.commit_message(&msg, CommitMode::Sync).expect("commit");
            }
        }
        if done(reads) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; reads so far: {}",
            reads.len()
        );
    }
}

fn disjoint_cover(sets: &[BTreeSet<i32>], n: i32) -> bool {
    let total: usize = sets.iter().map(|s| s.len()).sum();
    let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
    sets.iter().all(|s| !s.is_empty()) && total == n as usize && union.len() == n as usize
}

#[test]
fn two_then_three_members_split_six_partitions() {
    let b = broker();
    create_topic(&b, "split", 6);
    produce(&b, "split", 6, 10, "a");
    let c1 = member(&b, "split-group", "split", &[]);
    let c2 = member(&b, "split-group", "split", &[]);
    let mut reads = Vec::new();
    pump(&[&c1, &c2], Duration::from_secs(60), &mut reads, |r| {
        r.len() >= 60 && disjoint_cover(&[partitions_of(&c1), partitions_of(&c2)], 6)
    });
    check_each_read_once(&reads, 60);
    assert_eq!(partitions_of(&c1).len(), 3);

    let c3 = member(&b, "split-group", "split", &[]);
    produce(&b, "split", 6, 10, "b");
    let mut reads = Vec::new();
    pump(&[&c1, &c2, &c3], Duration::from_secs(60), &mut reads, |r| {
        r.len() >= 60
            && disjoint_cover(
                &[partitions_of(&c1), partitions_of(&c2), partitions_of(&c3)],
                6,
            )
    });
    check_each_read_once(&reads, 60);
    for c in [&c1, &c2, &c3] {
        assert_eq!(partitions_of(c).len(), 2);
    }
}

/// Every (partition, offset) read exactly once, by one member per partition.
fn check_each_read_once(reads: &[(usize, i32, i64)], expected: usize) {
    let mut seen = BTreeMap::new();
    for (m, p, o) in reads {
        assert!(
            seen.insert((*p, *o), *m).is_none(),
            "record {p}/{o} read twice"
        );
    }
    assert_eq!(seen.len(), expected, "records read");
    let mut owner: BTreeMap<i32, BTreeSet<usize>> = BTreeMap::new();
    for ((p, _), m) in &seen {
        owner.entry(*p).or_default().insert(*m);
    }
    for (p, ms) in owner {
        assert_eq!(ms.len(), 1, "partition {p} read by {ms:?}");
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/group_scripts")
        .join(name)
}

/// A Python client process whose stdout lines arrive on a channel; killed on drop.
struct Py {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Py {
    fn start(script_name: &str, args: &[&str]) -> Py {
        let mut child = Command::new("python3")
            .arg(script(script_name))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Py { child, lines: rx }
    }

    fn consumer(b: &common::Broker, group: &str, topic: &str, mode: &str, instance: &str) -> Py {
        Py::start(
            "consumer.py",
            &[&b.bootstrap(), group, topic, mode, instance, "120"],
        )
    }

    /// The next line, failing the test after `timeout`.
    fn line(&self, timeout: Duration) -> String {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no output from the Python client within {timeout:?}"))
    }

    /// Lines until one satisfies `f` (returned).
    fn until(&self, timeout: Duration, mut f: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let l = self.line(left.max(Duration::from_millis(1)));
            if f(&l) {
                return l;
            }
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Lines still buffered after the process died.
    fn rest(&self) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            v.push(l);
        }
        v
    }
}

impl Drop for Py {
    fn drop(&mut self) {
        self.kill();
    }
}

fn assigned(line: &str) -> Option<BTreeSet<i32>> {
    let rest = line.strip_prefix("ASSIGN ")?;
    Some(rest.split(',').filter_map(|p| p.parse().ok()).collect())
}

#[test]
fn silent_member_loses_partitions_after_session_timeout() {
    let b = broker();
    create_topic(&b, "silent", 6);
    let c1 = member(&b, "silent-group", "silent", &[]);
    let mut py = Py::consumer(&b, "silent-group", "silent", "plain", "-");
    let mut reads = Vec::new();
    let mut py_parts = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(partitions_of(&c1).len() == 3 && py_parts.len() == 3) {
        pump(&[&c1], Duration::from_secs(5), &mut reads, |_| true);
        while let Ok(l) = py.lines.try_recv() {
            if let Some(p) = assigned(&l) {
                py_parts = p;
            }
        }
        assert!(Instant::now() < deadline, "group did not settle");
    }
    // The Python member dies without leaving the group: no LeaveGroup, no more heartbeats.
    py.kill();
    let killed = Instant::now();
    pump(&[&c1], Duration::from_secs(30), &mut reads, |_| {
        partitions_of(&c1).len() == 6
    });
    let took = killed.elapsed();
    // It is the session timeout (6 s) that moves the partitions, not a leave.
    assert!(took >= Duration::from_secs(4), "took over after {took:?}");
    // ...and the survivor reads them.
    produce(&b, "silent", 6, 5, "x");
    let mut reads = Vec::new();
    pump(&[&c1], Duration::from_secs(30), &mut reads, |r| {
        r.len() >= 30
    });
    let parts: BTreeSet<i32> = reads.iter().map(|(_, p, _)| *p).collect();
    assert_eq!(parts.len(), 6);
}

#[test]
fn cooperative_sticky_moves_only_what_must_move() {
    let b = broker();
    create_topic(&b, "coop", 6);
    let coop = [("partition.assignment.strategy", "cooperative-sticky")];
    let c1 = member(&b, "coop-group", "coop", &coop);
    let c2 = member(&b, "coop-group", "coop", &coop);
    let mut reads = Vec::new();
    pump(&[&c1, &c2], Duration::from_secs(60), &mut reads, |_| {
        disjoint_cover(&[partitions_of(&c1), partitions_of(&c2)], 6)
    });
    let (a1, a2) = (partitions_of(&c1), partitions_of(&c2));
    let c3 = member(&b, "coop-group", "coop", &coop);
    pump(
        &[&c1, &c2, &c3],
        Duration::from_secs(60),
        &mut reads,
        |_| {
            disjoint_cover(
                &[partitions_of(&c1), partitions_of(&c2), partitions_of(&c3)],
                6,
            ) && partitions_of(&c3).len() == 2
        },
    );
    let (b1, b2) = (partitions_of(&c1), partitions_of(&c2));
    // Incremental: the old members only gave up partitions, they gained none...
    assert!(b1.is_subset(&a1), "{b1:?} vs {a1:?}");
    assert!(b2.is_subset(&a2), "{b2:?} vs {a2:?}");
    // ...and only the two partitions the new member needed moved.
    assert_eq!(a1.len() + a2.len() - b1.len() - b2.len(), 2);
}

#[test]
fn static_member_restarts_within_session_timeout_without_rebalance() {
    let b = broker();
    create_topic(&b, "static", 6);
    let c1 = member(&b, "static-group", "static", &[]);
    let mut py = Py::consumer(&b, "static-group", "static", "plain", "instance-1");
    let mut reads = Vec::new();
    let mut py_parts = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(partitions_of(&c1).len() == 3 && py_parts.len() == 3) {
        pump(&[&c1], Duration::from_secs(5), &mut reads, |_| true);
        while let Ok(l) = py.lines.try_recv() {
            if let Some(p) = assigned(&l) {
                py_parts = p;
            }
        }
        assert!(Instant::now() < deadline, "group did not settle");
    }
    // Let the group settle, then count the survivor's rebalances from here.
    pump(&[&c1], Duration::from_secs(2), &mut reads, |_| {
        false_after(Duration::from_secs(1))
    });
    let before = c1.context().0.load(Ordering::SeqCst);
    let mine = partitions_of(&c1);
    py.kill();
    let py2 = Py::consumer(&b, "static-group", "static", "plain", "instance-1");
    let l = py2.until(Duration::from_secs(30), |l| l.starts_with("ASSIGN"));
    assert_eq!(
        assigned(&l).unwrap(),
        py_parts,
        "the static member gets its partitions back"
    );
    // Keep the survivor running past the old incarnation's session timeout.
    let until = Instant::now() + Duration::from_secs(8);
    pump(&[&c1], Duration::from_secs(20), &mut reads, |_| {
        Instant::now() > until
    });
    assert_eq!(
        c1.context().0.load(Ordering::SeqCst),
        before,
        "no rebalance"
    );
    assert_eq!(partitions_of(&c1), mine);
}

/// A `pump` stop condition that is true once `d` has passed since its first call.
fn false_after(d: Duration) -> bool {
    thread_local!(static START: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) });
    START.with(|s| {
        let start = s.get().unwrap_or_else(|| {
            let now = Instant::now();
            s.set(Some(now));
            now
        });
        let done = start.elapsed() >= d;
        if done {
            s.set(None);
        }
        done
    })
}

fn rec_offset(line: &str) -> Option<i64> {
    let mut it = line.strip_prefix("REC ")?.split(' ');
    let _p = it.next()?;
    it.next()?.parse().ok()
}

/// Runs a Python consumer in `mode` over a 1-partition topic of 100 records, kills it after 30
/// records, restarts it, and returns the offsets each run printed.
fn kill_and_resume(mode: &str) -> (Vec<i64>, Vec<i64>) {
    let b = broker();
    let topic = format!("resume-{mode}");
    create_topic(&b, &topic, 1);
    produce(&b, &topic, 1, 100, "r");
    let group = format!("{topic}-group");
    let mut first = Vec::new();
    let mut py = Py::consumer(&b, &group, &topic, mode, "-");
    while first.len() < 30 {
        let l = py.line(Duration::from_secs(60));
        if let Some(o) = rec_offset(&l) {
            first.push(o);
        }
    }
    py.kill();
    first.extend(py.rest().iter().filter_map(|l| rec_offset(l)));
    let py2 = Py::consumer(&b, &group, &topic, mode, "-");
    let mut second = Vec::new();
    while second.last() != Some(&99) {
        let l = py2.line(Duration::from_secs(60));
        if let Some(o) = rec_offset(&l) {
            second.push(o);
        }
    }
    (first, second)
}

#[test]
fn at_least_once_resumes_from_last_commit_without_loss() {
    let (first, second) = kill_and_resume("alo");
    let all: BTreeSet<i64> = first.iter().chain(&second).copied().collect();
    assert_eq!(all, (0..100).collect(), "no record lost");
    // It resumes at the last committed offset: at most the record in flight is read again.
    let last = *first.last().unwrap();
    assert!(
        second[0] == last + 1 || second[0] == last,
        "{} after {last}",
        second[0]
    );
}

#[test]
fn at_most_once_loses_at_most_the_in_flight_record_and_duplicates_nothing() {
    let (first, second) = kill_and_resume("amo");
    let mut all: Vec<i64> = first.iter().chain(&second).copied().collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no record read twice");
    assert!(
        all.len() >= 99,
        "lost more than the in-flight record: {}",
        100 - all.len()
    );
    assert_eq!(*all.last().unwrap(), 99);
}

fn committed(b: &common::Broker, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let r = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    r.elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => -1,
        })
        .collect()
}

fn commit(b: &common::Broker, group: &str, topic: &str, offsets: &[i64]) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets.iter().enumerate() {
        tpl.add_partition_offset(topic, p as i32, Offset::Offset(*o))
            .expect("offset");
    }
    c.commit(&tpl, CommitMode::Sync).expect("commit");
}

#[test]
fn committed_offsets_survive_sigterm_and_sigkill() {
    let mut b = broker();
    create_topic(&b, "durable", 3);
    produce(&b, "durable", 3, 20, "d");
    commit(&b, "durable-group", "durable", &[7, 9, 11]);
    assert_eq!(committed(&b, "durable-group", "durable", 3), vec![7, 9, 11]);
    // Lag for tools and metrics: committed vs high watermark (20 per partition).
    let metrics = b.admin_get("/metrics");
    assert!(
        metrics.contains(
            "potok_group_lag{group=\"durable-group\",topic=\"durable\",partition=\"1\"} 11"
        ),
        "{metrics}"
    );
    b.sigterm();
    b.restart();
    assert_eq!(committed(&b, "durable-group", "durable", 3), vec![7, 9, 11]);
    commit(&b, "durable-group", "durable", &[8, 10, 12]);
    b.sigkill();
    b.restart();
    assert_eq!(
        committed(&b, "durable-group", "durable", 3),
        vec![8, 10, 12]
    );
    // The offsets are stored in `__consumer_offsets`, which Metadata still lists after the
    // SIGKILL as Kafka does: internal, `offsets.topic.num.partitions` (50) partitions.
    use potok_protocol::messages::{MetadataRequest, MetadataResponse};
    let r: MetadataResponse = common::wire::Client::new(&b).call(
        potok_protocol::ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    );
    let offsets = r
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some("__consumer_offsets"))
        .expect("__consumer_offsets listed");
    assert!(offsets.is_internal);
    assert_eq!(offsets.partitions.len(), 50);
    assert!(r
        .topics
        .iter()
        .any(|t| t.name.as_deref() == Some("durable") && !t.is_internal));
}

#[test]
fn kafka_python_and_kcat_groups_work() {
    let b = broker();
    create_topic(&b, "tools", 1);
    produce(&b, "tools", 1, 20, "t");
    let kp = Py::start(
        "kafka_python_consumer.py",
        &[&b.bootstrap(), "kp-group", "tools", "20"],
    );
    let mut offsets = Vec::new();
    while offsets.len() < 20 {
        if let Some(o) = rec_offset(&kp.line(Duration::from_secs(60))) {
            offsets.push(o);
        }
    }
    assert_eq!(offsets, (0..20).collect::<Vec<_>>());
    let deadline = Instant::now() + Duration::from_secs(30);
    while committed(&b, "kp-group", "tools", 1) != vec![20] {
        assert!(Instant::now() < deadline, "kafka-python did not commit");
        std::thread::sleep(Duration::from_millis(200));
    }

    // kcat's balanced consumer (-G) commits what it consumed when it exits.
    let out = Command::new("kcat")
        .args([
            "-b",
            &b.bootstrap(),
            "-G",
            "kcat-group",
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "session.timeout.ms=6000",
            "-c",
            "20",
            "-q",
            "-f",
            "%o\n",
            "tools",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("kcat");
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<i64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(committed(&b, "kcat-group", "tools", 1), vec![20]);
}

/// One request over a raw connection, decoded at the same version.
fn raw_call<M: potok_protocol::Encode>(
    s: &mut std::net::TcpStream,
    api: potok_protocol::ApiKey,
    version: i16,
    body: &M,
) -> potok_protocol::Response {
    use bytes::{Buf, Bytes, BytesMut};
    use potok_protocol::messages::{RequestHeader, ResponseHeader};
    use potok_protocol::Decode;
    use std::io::{Read, Write};
    let header = RequestHeader {
        request_api_key: api as i16,
        request_api_version: version,
        correlation_id: 42,
        client_id: Some("raw".into()),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    potok_protocol::encode_request_frame(&mut buf, &header, body).expect("encode");
    s.write_all(&buf).expect("write");
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("read length");
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).expect("read frame");
    let mut frame = Bytes::from(frame);
    let h = ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .expect("response header");
    assert_eq!(h.correlation_id, 42);
    let r = potok_protocol::Response::decode(api, &mut frame, version).expect("decode");
    assert!(!frame.has_remaining(), "trailing bytes");
    r
}

/// The admin-side APIs at the versions tools use: batched FindCoordinator (v4), multi-group
/// OffsetFetch (v8), ListGroups with a state filter (v4), DescribeGroups, OffsetDelete and
/// DeleteGroups.
#[test]
fn group_admin_apis_over_the_wire() {
    use potok_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use potok_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    use potok_protocol::messages::*;
    use potok_protocol::{ApiKey, ErrorCode, Response};

    let b = broker();
    create_topic(&b, "adm", 2);
    produce(&b, "adm", 2, 5, "a");
    commit(&b, "adm-1", "adm", &[3, 4]);
    commit(&b, "adm-2", "adm", &[1, 2]);
    let mut s = std::net::TcpStream::connect(b.bootstrap()).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let Response::FindCoordinator(r) = raw_call(
        &mut s,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest {
            key_type: 0,
            coordinator_keys: vec!["adm-1".into(), "adm-2".into()],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    assert_eq!(r.coordinators.len(), 2);
    for c in &r.coordinators {
        assert_eq!(c.error_code, 0);
        assert_eq!(c.port, i32::from(b.port));
    }

    let Response::OffsetFetch(r) = raw_call(
        &mut s,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest {
            groups: vec![
                OffsetFetchRequestGroup {
                    group_id: "adm-1".into(),
                    topics: None,
                    ..Default::default()
                },
                OffsetFetchRequestGroup {
                    group_id: "adm-2".into(),
                    topics: Some(vec![OffsetFetchRequestTopics {
                        name: "adm".into(),
                        partition_indexes: vec![1],
                        ..Default::default()
                    }]),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    let offsets: Vec<Vec<i64>> = r
        .groups
        .iter()
        .map(|g| {
            g.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.committed_offset))
                .collect()
        })
        .collect();
    assert_eq!(offsets, vec![vec![3, 4], vec![2]]);

    let Response::ListGroups(r) = raw_call(
        &mut s,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest {
            states_filter: vec!["Empty".into()],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    let mut ids: Vec<&str> = r.groups.iter().map(|g| g.group_id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["adm-1", "adm-2"]);
    let Response::ListGroups(r) = raw_call(
        &mut s,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest {
            states_filter: vec!["Stable".into()],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    assert!(r.groups.is_empty());

    let Response::DescribeGroups(r) = raw_call(
        &mut s,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest {
            groups: vec!["adm-1".into(), "nope".into()],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    assert_eq!(r.groups[0].group_state, "Empty");
    assert_eq!(r.groups[1].group_state, "Dead");

    let Response::OffsetDelete(r) = raw_call(
        &mut s,
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest {
            group_id: "adm-2".into(),
            topics: vec![OffsetDeleteRequestTopic {
                name: "adm".into(),
                partitions: vec![OffsetDeleteRequestPartition {
                    partition_index: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(committed(&b, "adm-2", "adm", 2), vec![-1, 2]);

    let Response::DeleteGroups(r) = raw_call(
        &mut s,
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest {
            groups_names: vec!["adm-1".into(), "nope".into()],
            ..Default::default()
        },
    ) else {
        panic!("wrong response")
    };
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(r.results[1].error_code, ErrorCode::GroupIdNotFound.code());
    assert_eq!(committed(&b, "adm-1", "adm", 2), vec![-1, -1]);
}
