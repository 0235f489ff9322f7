//! read_committed through the wire (issue #21, partition side): a Fetch at isolation level 1
//! returns the aborted transactions overlapping the batches it returns (from the `.txnindex`),
//! at level 0 none, and librdkafka's read_committed consumer drops the aborted records while a
//! read_uncommitted one gets them all.
//!
//! Transactions cannot be written through the wire before the transaction coordinator exists
//! (Produce refuses transactional batches then), so the test writes them the way the
//! coordinator's marker path does, with `potok_log` directly into the stopped broker's data
//! directory: transactional batches, an ABORT and a COMMIT marker through `Log::append_marker`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use potok_log::{DirCheckpoint, Log, LogConfig, MarkerRequest, RealStorage, Storage};
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::ApiKey;
use potok_records::{LeaderEpoch, ProducerEpoch, ProducerId, RecordBatchBuilder};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use common::wire::Client;

fn batch(producer: Option<i64>, values: &[&str]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    if let Some(pid) = producer {
        b = b
            .producer(ProducerId(pid), ProducerEpoch(0), 0)
            .transactional(true);
    }
    for v in values {
        b = b.key_value(1, None, Some(v.as_bytes()));
    }
    b.build().unwrap().into_bytes()
}

fn marker(pid: i64, commit: bool) -> MarkerRequest {
    MarkerRequest {
        producer_id: ProducerId(pid),
        producer_epoch: ProducerEpoch(0),
        commit,
        coordinator_epoch: 0,
        leader_epoch: LeaderEpoch(0),
        transaction_version: 1,
    }
}

fn find_dir(root: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(root).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if p.file_name().and_then(|n| n.to_str()) == Some(name) {
                return Some(p);
            }
            if let Some(found) = find_dir(&p, name) {
                return Some(found);
            }
        }
    }
    None
}

fn fetch(c: &mut Client, isolation_level: i8) -> FetchResponse {
    let req = FetchRequest {
        max_wait_ms: 0,
        min_bytes: 0,
        max_bytes: 1 << 20,
        isolation_level,
        topics: vec![FetchTopic {
            topic: "txn".into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(f.error_code, 0);
    f
}

fn consume_all(b: &common::Broker, isolation: &str, want: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", format!("rc-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("txn", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Past `want` records, keep polling a little: an aborted record delivered late would show.
    let mut quiet_until = None;
    loop {
        let now = Instant::now();
        assert!(now < deadline, "timed out with {got:?}");
        if quiet_until.is_some_and(|q| now > q) {
            break;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume error");
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
        if got.len() >= want && quiet_until.is_none() {
            quiet_until = Some(Instant::now() + Duration::from_secs(2));
        }
    }
    got
}

#[test]
fn read_committed_fetch_reports_aborted_transactions_and_clients_skip_them() {
    let mut b = common::Broker::start();
    let mut c = Client::new(&b);
    c.create_topic("txn", 1, &[]);
    let r = c.produce("txn", 0, batch(None, &["plain-0"]));
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    drop(c);
    b.sigterm();

    // Offsets: 0 plain-0, 1-2 aborted (producer 7), 3 plain-1, 4 ABORT, 5 committed
    // (producer 8), 6 COMMIT, 7 plain-2.
    let dir = find_dir(&b.data_dir(), "txn-0").expect("partition directory");
    let storage = Arc::new(RealStorage) as Arc<dyn Storage>;
    let known = DirCheckpoint {
        clean_shutdown: false,
        ..DirCheckpoint::default()
    };
    let mut log =
        Log::open_managed(&dir, LogConfig::default(), storage, 0, Some(known), None).unwrap();
    assert_eq!(log.log_end_offset().0, 1);
    log.append(batch(Some(7), &["aborted-a", "aborted-b"]), 0)
        .unwrap();
    log.append(batch(None, &["plain-1"]), 0).unwrap();
    let abort = log.append_marker(&marker(7, false), 0).unwrap();
    assert_eq!(abort.first_offset.0, 4);
    log.append(batch(Some(8), &["committed"]), 0).unwrap();
    log.append_marker(&marker(8, true), 0).unwrap();
    log.append(batch(None, &["plain-2"]), 0).unwrap();
    log.close().unwrap();
    b.restart();

    let mut c = Client::new(&b);
    let f = fetch(&mut c, 1);
    let p = &f.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!((p.high_watermark, p.last_stable_offset), (8, 8));
    let aborted: Vec<(i64, i64)> = p
        .aborted_transactions
        .as_ref()
        .expect("a list at read_committed")
        .iter()
        .map(|t| (t.producer_id, t.first_offset))
        .collect();
    assert_eq!(aborted, vec![(7, 1)]);
    let f = fetch(&mut c, 0);
    assert_eq!(f.responses[0].partitions[0].aborted_transactions, None);

    let committed = consume_all(&b, "read_committed", 4);
    assert_eq!(committed, ["plain-0", "plain-1", "committed", "plain-2"]);
    let all = consume_all(&b, "read_uncommitted", 6);
    assert_eq!(
        all,
        [
            "plain-0",
            "aborted-a",
            "aborted-b",
            "plain-1",
            "committed",
            "plain-2"
        ]
    );
}
