//! Segment rolls flush in the background (issue #14, point 1): produce to a topic with small
//! segments so that it rolls many times, check that the rolls' flushes ran on the background
//! flusher, SIGKILL the broker right after the last acknowledgement (flushes of the last rolls
//! still queued or running) and restart it: every acknowledged record is back at its offset,
//! and appends continue after them.

mod common;

use common::kafka::{consume, create_topic, produce_all, producer};
use rdkafka::Offset;

fn records(n: usize, tag: &str) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                0,
                format!("{tag}-key-{i}").into_bytes(),
                format!("{tag}-value-{i}-{}", "r".repeat(200 + i % 300)).into_bytes(),
            )
        })
        .collect()
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_after_background_rolls_keeps_every_acknowledged_record() {
    let mut b = common::Broker::builder().admin().start();
    let boot = b.bootstrap();
    create_topic(&boot, "rolling", 1, &[("segment.bytes", "16384")]).await;
    let p = producer(&boot, "1", &[("batch.size", "4000")]);
    let sent = records(1500, "a");
    let acks = produce_all(&p, "rolling", &sent).await;
    drop(p);
    let segments = std::fs::read_dir(b.data_dir().join("rolling-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count();
    assert!(segments > 10, "only {segments} segments: too few rolls");
    let body = b.admin_get("/metrics");
    assert!(
        metric(&body, "potok_log_background_flushes_total") > 0,
        "no roll was flushed in the background:\n{body}"
    );
    b.sigkill();
    b.restart();
    let boot = b.bootstrap();

    let got = consume(&boot, "rolling", &[0], Offset::Beginning, sent.len());
    assert_eq!(got.len(), sent.len());
    for ((g, (_, k, v)), (_, off)) in got.iter().zip(&sent).zip(&acks) {
        assert_eq!(g.1, *off);
        assert_eq!(g.2.as_deref(), Some(&k[..]));
        assert_eq!(g.3.as_deref(), Some(&v[..]));
    }
    let last = acks.iter().map(|a| a.1).max().unwrap();
    let p = producer(&boot, "1", &[]);
    let more = produce_all(&p, "rolling", &records(10, "b")).await;
    assert_eq!(more[0].1, last + 1);
}
