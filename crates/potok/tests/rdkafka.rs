//! End-to-end with the `rdkafka` crate (librdkafka): create a topic, produce keyed records
//! with headers and timestamps, consume them back byte for byte.

mod common;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn admin(b: &common::Broker) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_keyed_records_with_headers() {
    let b = common::Broker::start();
    let r = admin(&b)
        .create_topics(
            &[NewTopic::new("orders", 3, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics");
    assert!(r[0].is_ok(), "{r:?}");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    let mut pending = Vec::new();
    for i in 0..300u32 {
        let key = format!("key-{}", i % 7);
        let value: Vec<u8> = (0..(i % 50) * 13).map(|j| (i as u8) ^ (j as u8)).collect();
        let ts = 1_700_000_000_000i64 + i64::from(i);
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(&i.to_be_bytes()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        // Enqueued without waiting, so the records are batched; librdkafka keeps them in
        // enqueue order per partition.
        let fut = producer
            .send_result(
                FutureRecord::to("orders")
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue");
        pending.push((fut, key, value, ts, i));
    }
    for (fut, key, value, ts, i) in pending {
        let rdkafka::producer::future_producer::Delivery {
            partition, offset, ..
        } = tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .expect("delivery timed out")
            .expect("delivery canceled")
            .map_err(|(e, _)| e)
            .expect("delivery");
        sent.push((partition, offset, key, value, ts, i));
    }

    // Consume every partition from the beginning and compare byte for byte.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .set("group.id", "unused-no-commit")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("orders", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < sent.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {} of {}",
            got.len(),
            sent.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let headers: Vec<(String, Option<Vec<u8>>)> = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default();
            got.push((
                m.partition(),
                m.offset(),
                m.key().map(<[u8]>::to_vec),
                m.payload().map(<[u8]>::to_vec),
                m.timestamp().to_millis(),
                headers,
            ));
        }
    }
    got.sort_by_key(|g| (g.0, g.1));
    let mut want = sent.clone();
    want.sort_by_key(|s| (s.0, s.1));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!((g.0, g.1), (w.0, w.1));
        assert_eq!(g.2.as_deref(), Some(w.2.as_bytes()));
        // librdkafka reports an empty payload as None.
        assert_eq!(g.3.clone().unwrap_or_default(), w.3);
        assert_eq!(g.4, Some(w.4));
        assert_eq!(
            g.5,
            vec![
                ("n".to_string(), Some(w.5.to_be_bytes().to_vec())),
                ("empty".to_string(), None)
            ]
        );
    }
    // Keyed records stay in one partition, in send order.
    for k in 0..7 {
        let key = format!("key-{k}");
        let mine: Vec<_> = want.iter().filter(|w| w.2 == key).collect();
        assert!(
            mine.iter().all(|w| w.0 == mine[0].0),
            "key {key} spread over partitions"
        );
        assert!(mine.windows(2).all(|p| p[0].5 < p[1].5 && p[0].1 < p[1].1));
    }
    // Offsets are dense per partition from 0.
    for p in 0..3 {
        let offs: Vec<i64> = want.iter().filter(|w| w.0 == p).map(|w| w.1).collect();
        assert_eq!(offs, (0..offs.len() as i64).collect::<Vec<_>>());
    }
    let (lo, hi) = consumer
        .fetch_watermarks("orders", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!(lo, 0);
    assert_eq!(hi, want.iter().filter(|w| w.0 == 0).count() as i64);
}

/// Every acks level with every compression codec: records come back byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acks_level_and_codec_round_trips() {
    use common::kafka::{consume, create_topic, produce_all, producer};
    let b = common::Broker::start();
    let boot = b.bootstrap();
    let mut n = 0;
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        for acks in ["0", "1", "all"] {
            n += 1;
            let topic = format!("codec-{codec}-acks-{acks}");
            create_topic(&boot, &topic, 1, &[]).await;
            let p = producer(
                &boot,
                acks,
                &[("compression.codec", codec), ("linger.ms", "20")],
            );
            // Compressible and incompressible values, and an empty one.
            let recs: Vec<(i32, Vec<u8>, Vec<u8>)> = (0..60u32)
                .map(|i| {
                    let v = if i % 3 == 0 {
                        vec![b'a'; 500]
                    } else if i % 3 == 1 {
                        (0..500u32)
                            .map(|j| (j.wrapping_mul(2654435761) >> (i % 24)) as u8)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (0, format!("{codec}-{acks}-{i}").into_bytes(), v)
                })
                .collect();
            produce_all(&p, &topic, &recs).await;
            let got = consume(&boot, &topic, &[0], rdkafka::Offset::Beginning, recs.len());
            for (i, (g, r)) in got.iter().zip(&recs).enumerate() {
                assert_eq!(g.1, i as i64, "{topic}: offsets must be dense and in order");
                assert_eq!(g.2.as_deref(), Some(&r.1[..]), "{topic}: key");
                assert_eq!(g.3.clone().unwrap_or_default(), r.2, "{topic}: value");
            }
        }
    }
    assert_eq!(n, 15);
}

/// A record with a 1 MiB value is accepted, a record over the limit is refused with
/// MESSAGE_TOO_LARGE, and offsets-for-times finds records by timestamp. Kafka's default
/// max.message.bytes (1048588) is 1 MiB plus the 12-byte log overhead, which a 1 MiB *value*
/// plus batch and record headers exceeds, in Kafka as here; so the topic allows 1.1 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_records_limits_and_offsets_for_times() {
    use common::kafka::{consume, create_topic, producer};
    let b = common::Broker::start();
    let boot = b.bootstrap();
    create_topic(&boot, "big", 1, &[("max.message.bytes", "1100000")]).await;
    // librdkafka's own limit must be above the broker's to see the broker refuse.
    let p = producer(
        &boot,
        "1",
        &[
            ("message.max.bytes", "3000000"),
            ("compression.codec", "none"),
        ],
    );
    let mib: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    let d = p
        .send(
            FutureRecord::to("big")
                .key("k")
                .payload(&mib)
                .timestamp(1000),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("1 MiB record");
    assert_eq!(d.offset, 0);
    let over = vec![1u8; 1_100_001];
    let e = p
        .send(
            FutureRecord::to("big")
                .key("k")
                .payload(&over)
                .timestamp(2000),
            Duration::from_secs(30),
        )
        .await
        .expect_err("a record over message.max.bytes must be refused")
        .0;
    assert_eq!(
        e.rdkafka_error_code(),
        Some(rdkafka::types::RDKafkaErrorCode::MessageSizeTooLarge),
        "{e:?}"
    );
    for (i, ts) in [3000i64, 4000, 5000].iter().enumerate() {
        let d = p
            .send(
                FutureRecord::to("big")
                    .key("t")
                    .payload(&[i as u8])
                    .timestamp(*ts),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        assert_eq!(d.offset, i as i64 + 1);
    }
    let got = consume(&boot, "big", &[0], rdkafka::Offset::Beginning, 4);
    assert_eq!(got[0].3.as_deref(), Some(&mib[..]));
    // offsets_for_times: first offset with timestamp >= the query.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &boot)
        .set("group.id", "oft")
        .create()
        .unwrap();
    for (ts, want) in [(0i64, 0i64), (1500, 1), (4000, 2), (4500, 3)] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("big", 0, Offset::Offset(ts))
            .unwrap();
        let r = consumer
            .offsets_for_times(tpl, Duration::from_secs(10))
            .unwrap();
        let o = r.find_partition("big", 0).unwrap().offset();
        assert_eq!(o, Offset::Offset(want), "timestamp {ts}");
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("big", 0, Offset::Offset(9999))
        .unwrap();
    let r = consumer
        .offsets_for_times(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(r.find_partition("big", 0).unwrap().offset(), Offset::End);
}
