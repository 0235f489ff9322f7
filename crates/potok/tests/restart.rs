//! Restart tests (issue #4 acceptance 2): after SIGTERM and after SIGKILL, topics, topic
//! configs and every acknowledged record are still there and offsets continue.

mod common;

use common::kafka::{consume, create_topic, produce_all, producer, watermarks};
use rdkafka::Offset;

fn records(n: usize, partitions: i32, tag: &str) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                (i as i32) % partitions,
                format!("{tag}-key-{i}").into_bytes(),
                format!("{tag}-value-{i}-{}", "x".repeat(i % 300)).into_bytes(),
            )
        })
        .collect()
}

/// Checks that `got` (sorted by partition, offset) is exactly `sent` with its acknowledged
/// offsets.
fn assert_same(got: &[common::kafka::Got], sent: &[(i32, Vec<u8>, Vec<u8>)], acks: &[(i32, i64)]) {
    let mut want: Vec<_> = sent
        .iter()
        .zip(acks)
        .map(|((_, k, v), (p, o))| (*p, *o, k.clone(), v.clone()))
        .collect();
    want.sort_by_key(|w| (w.0, w.1));
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1), (w.0, w.1));
        assert_eq!(g.2.as_deref(), Some(&w.2[..]));
        assert_eq!(g.3.as_deref(), Some(&w.3[..]));
    }
}

async fn restart_keeps_everything(kill: bool) {
    let mut b = common::Broker::start();
    let boot = b.bootstrap();
    // Topic configs whose effect is observable: LogAppendTime stamps records with the broker
    // clock, and a small max.message.bytes refuses larger batches.
    create_topic(
        &boot,
        "durable",
        2,
        &[
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "200000"),
        ],
    )
    .await;
    let p = producer(&boot, "1", &[("batch.size", "100000")]);
    let first = records(400, 2, "a");
    let acks1 = produce_all(&p, "durable", &first).await;
    drop(p);

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    if kill {
        b.sigkill();
    } else {
        let status = b.sigterm();
        assert!(status.success(), "SIGTERM exit status {status}");
        // One marker and one pair of checkpoints for the data directory (Kafka's layout,
        // issue #14), none per partition.
        let marker = b.data_dir().join(potok_log_marker());
        assert!(
            marker.exists(),
            "no clean-shutdown marker in {}",
            marker.display()
        );
        let recovery =
            std::fs::read_to_string(b.data_dir().join("recovery-point-offset-checkpoint"))
                .expect("data directory recovery point checkpoint");
        for part in 0..2 {
            assert!(
                recovery
                    .lines()
                    .any(|l| l.starts_with(&format!("durable {part} "))),
                "partition {part} missing from the checkpoint:\n{recovery}"
            );
            let pdir = b.data_dir().join(format!("durable-{part}"));
            assert!(!pdir.join(potok_log_marker()).exists());
        }
    }
    b.restart();
    let boot = b.bootstrap();
    let log = b.log();
    if kill {
        assert!(
            log.contains("recovered partition log"),
            "no recovery after SIGKILL:\n{log}"
        );
        assert!(
            !opened_line(&log).contains("segments_recovered=0"),
            "no segment counted as recovered after SIGKILL:\n{log}"
        );
    } else {
        assert!(
            !log.contains("recovered partition log"),
            "recovery ran after a clean shutdown:\n{log}"
        );
        assert!(
            opened_line(&log).contains("segments_recovered=0"),
            "no recovery count after a clean shutdown:\n{log}"
        );
    }

    // librdkafka keeps batches below batch.size, so none hits the topic's 200 kB limit.
    // Every acknowledged record is back, byte for byte, at its acknowledged offset.
    let got = consume(&boot, "durable", &[0, 1], Offset::Beginning, first.len());
    assert_same(&got, &first, &acks1);

    // Offsets continue where they were.
    let p = producer(&boot, "1", &[("batch.size", "100000")]);
    let second = records(100, 2, "b");
    let acks2 = produce_all(&p, "durable", &second).await;
    for part in 0..2 {
        let last1 = acks1
            .iter()
            .filter(|a| a.0 == part)
            .map(|a| a.1)
            .max()
            .unwrap();
        let first2 = acks2
            .iter()
            .filter(|a| a.0 == part)
            .map(|a| a.1)
            .min()
            .unwrap();
        assert_eq!(
            first2,
            last1 + 1,
            "partition {part}: offsets do not continue"
        );
        let (lo, hi) = watermarks(&boot, "durable", part);
        assert_eq!(
            (lo, hi),
            (
                0,
                acks2
                    .iter()
                    .filter(|a| a.0 == part)
                    .map(|a| a.1)
                    .max()
                    .unwrap()
                    + 1
            )
        );
    }

    // The topic configs survived: new records carry the broker's append time...
    let got2 = consume(
        &boot,
        "durable",
        &[0, 1],
        Offset::Offset(0),
        first.len() + second.len(),
    );
    let stamped_after = got2.iter().filter(|g| g.4.unwrap_or(0) >= before).count();
    assert!(
        stamped_after >= second.len(),
        "LogAppendTime lost: {stamped_after}"
    );
    // ...and a batch above max.message.bytes is refused.
    let big = [(0, b"k".to_vec(), vec![7u8; 300_000])];
    let r = p
        .send_result(
            rdkafka::producer::FutureRecord::to("durable")
                .partition(0)
                .key(&big[0].1)
                .payload(&big[0].2),
        )
        .map_err(|(e, _)| e)
        .expect("enqueue")
        .await
        .expect("canceled");
    let err = r
        .expect_err("a 300 kB record must be refused by max.message.bytes=200000")
        .0;
    assert_eq!(
        err.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge),
        "{err:?}"
    );
}

/// The broker's last "opened partition logs" line (the restart's).
fn opened_line(log: &str) -> &str {
    log.lines()
        .rfind(|l| l.contains("opened partition logs"))
        .unwrap_or_default()
}

fn potok_log_marker() -> &'static str {
    // potok-log's clean-shutdown marker file name (potok_log::CLEAN_SHUTDOWN_FILE), which the
    // broker writes once in its data directory.
    ".potok_cleanshutdown"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_topics_configs_and_records() {
    restart_keeps_everything(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_keeps_every_acknowledged_record() {
    restart_keeps_everything(true).await;
}
