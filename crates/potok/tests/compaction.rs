//! Log compaction through the wire with a real client (issue #20, acceptance 3): a compacted
//! topic written with 100 keys x 200 versions and 10 tombstones reads back one record per key
//! below the active segment, at the offsets the producer was given, plus the active segment
//! whole; the same after a SIGKILL while more versions are being cleaned. The cleaner settings
//! are given with `potok serve --set`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::{create_topic, produce_all, producer};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "compacted";

/// What was acknowledged: offset -> (key, value; `None` for a tombstone).
type Acked = BTreeMap<i64, (Vec<u8>, Option<Vec<u8>>)>;

/// A record read back: (offset, key, value).
type Read = (i64, Vec<u8>, Option<Vec<u8>>);

async fn write_versions(p: &FutureProducer, acked: &mut Acked, versions: std::ops::Range<u32>) {
    for v in versions {
        let recs: Vec<(i32, Vec<u8>, Vec<u8>)> = (0..100)
            .map(|k| {
                (
                    0,
                    format!("key-{k:03}").into_bytes(),
                    format!("value-{k}-{v}-{}", "x".repeat((k * 7 + v as usize) % 40)).into_bytes(),
                )
            })
            .collect();
        let offsets = produce_all(p, TOPIC, &recs).await;
        for ((_, k, val), (_, o)) in recs.into_iter().zip(offsets) {
            acked.insert(o, (k, Some(val)));
        }
    }
}

async fn write_tombstones(p: &FutureProducer, acked: &mut Acked, keys: std::ops::Range<usize>) {
    for k in keys {
        let key = format!("key-{k:03}").into_bytes();
        let d = tokio::time::timeout(
            Duration::from_secs(30),
            p.send(
                FutureRecord::<[u8], [u8]>::to(TOPIC).partition(0).key(&key),
                Duration::from_secs(10),
            ),
        )
        .await
        .expect("tombstone timed out")
        .map_err(|(e, _)| e)
        .expect("tombstone delivered");
        acked.insert(d.offset, (key, None));
    }
}

/// Every record of partition 0 up to the high watermark: (offset, key, value).
fn read_all(bootstrap: &str) -> Vec<Read> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "compaction-reader")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(TOPIC, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // The last offset is in the active segment, which is never cleaned.
    while out.last().is_none_or(|(o, _, _)| *o < high - 1) {
        assert!(Instant::now() < deadline, "timed out reading to {high}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume error");
            out.push((
                m.offset(),
                m.key().map(<[u8]>::to_vec).unwrap_or_default(),
                m.payload().map(<[u8]>::to_vec),
            ));
        }
    }
    out
}

/// The active segment's base offset, from the partition directory's file names.
fn active_base(data: &Path) -> i64 {
    std::fs::read_dir(data.join(format!("{TOPIC}-0")))
        .expect("partition dir")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse::<i64>().ok()
        })
        .max()
        .expect("a segment")
}

/// What a compacted read must show: below `base` the latest record of each key among those
/// below `base` (tombstones included: `delete.retention.ms` has not passed), at its acked
/// offset; from `base` on, every acked record.
fn expected(acked: &Acked, base: i64) -> Vec<Read> {
    let mut latest: HashMap<&[u8], i64> = HashMap::new();
    for (o, (k, _)) in acked.range(..base) {
        latest.insert(k, *o);
    }
    acked
        .iter()
        .filter(|(o, (k, _))| **o >= base || latest.get(k.as_slice()) == Some(o))
        .map(|(o, (k, v))| (*o, k.clone(), v.clone()))
        .collect()
}

/// Waits until the cleaner has compacted everything below the active segment.
fn wait_compacted(b: &common::Broker, acked: &Acked) -> Vec<Read> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let base = active_base(&b.data_dir());
        let got = read_all(&b.bootstrap());
        let want = expected(acked, base);
        if got == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {} records read, {} expected (active segment at {base})\n{}",
            got.len(),
            want.len(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn check_shape(got: &[Read], acked: &Acked, base: i64) {
    for (o, k, v) in got {
        assert_eq!(
            acked.get(o),
            Some(&(k.clone(), v.clone())),
            "offset {o} changed"
        );
    }
    let below: Vec<_> = got.iter().filter(|r| r.0 < base).collect();
    let mut keys: Vec<_> = below.iter().map(|r| &r.1).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        below.len(),
        "one record per key below the active segment"
    );
    assert!(
        below.len() <= 100,
        "at most one record for each of the 100 keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_keeps_the_latest_record_per_key_across_sigkill() {
    let mut b = common::Broker::builder()
        .set("log.cleaner.backoff.ms", "200")
        .set("log.cleaner.threads", "2")
        .set("log.cleaner.dedupe.buffer.size", "16777216")
        .set("log.cleaner.io.max.bytes.per.second", "50000000")
        .set("log.cleaner.min.cleanable.ratio", "0.1")
        .admin()
        .start();
    let boot = b.bootstrap();
    create_topic(
        &boot,
        TOPIC,
        1,
        &[("cleanup.policy", "compact"), ("segment.bytes", "16384")],
    )
    .await;
    let p = producer(&boot, "all", &[("batch.size", "8000")]);
    let mut acked = Acked::new();
    write_versions(&p, &mut acked, 0..200).await;
    write_tombstones(&p, &mut acked, 0..10).await;
    assert_eq!(acked.len(), 100 * 200 + 10);
    assert_eq!(
        *acked.keys().last().unwrap(),
        100 * 200 + 10 - 1,
        "offsets are dense"
    );

    let got = wait_compacted(&b, &acked);
    let base = active_base(&b.data_dir());
    check_shape(&got, &acked, base);
    let below = got.iter().filter(|r| r.0 < base).count();
    assert!(
        below >= 90 && got.len() < 2000,
        "{below} records below the active segment at {base}, {} in all",
        got.len()
    );
    let metrics = b.admin_get("/metrics");
    let runs: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("potok_cleaner_runs_total "))
        .and_then(|v| v.parse().ok())
        .expect("cleaner runs metric");
    assert!(runs >= 1, "{metrics}");
    assert!(metrics.contains(&format!(
        "potok_cleaner_dirty_ratio{{topic=\"{TOPIC}\",partition=\"0\"}}"
    )));
    assert!(metrics.contains("potok_cleaner_seconds_since_last_clean{"));

    // More versions, then SIGKILL while the cleaner works on them.
    write_versions(&p, &mut acked, 200..260).await;
    drop(p);
    tokio::time::sleep(Duration::from_millis(300)).await;
    b.sigkill();
    b.restart();
    let got = wait_compacted(&b, &acked);
    let base = active_base(&b.data_dir());
    check_shape(&got, &acked, base);
    // Every live key's latest value is there, at the offset it was acknowledged at.
    let mut last: HashMap<&[u8], (i64, &Option<Vec<u8>>)> = HashMap::new();
    for (o, (k, v)) in &acked {
        last.insert(k, (*o, v));
    }
    for (k, (o, v)) in last {
        let found = got.iter().rev().find(|r| r.1 == k).expect("key present");
        assert_eq!((found.0, &found.2), (o, v));
    }
}
