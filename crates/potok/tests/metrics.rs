//! The Prometheus endpoint on the admin listener: per-topic bytes/records in and out, request
//! latency histograms per API, active connections.

mod common;

use common::kafka::{consume, create_topic, produce_all, producer};
use rdkafka::Offset;

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|r| r.trim().parse::<f64>().ok())
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_traffic_per_topic_and_api() {
    let b = common::Broker::builder().admin().start();
    let boot = b.bootstrap();
    create_topic(&boot, "m", 1, &[]).await;
    let p = producer(&boot, "1", &[]);
    let recs: Vec<_> = (0..50)
        .map(|i| (0, format!("k{i}").into_bytes(), vec![b'v'; 100]))
        .collect();
    produce_all(&p, "m", &recs).await;
    let got = consume(&boot, "m", &[0], Offset::Beginning, 50);
    assert_eq!(got.len(), 50);

    let text = b.admin_get("/metrics");
    assert_eq!(
        value(&text, "potok_topic_records_in_total{topic=\"m\"}"),
        50.0
    );
    assert!(value(&text, "potok_topic_bytes_in_total{topic=\"m\"}") > 50.0 * 100.0);
    assert!(value(&text, "potok_topic_bytes_out_total{topic=\"m\"}") > 50.0 * 100.0);
    assert_eq!(
        value(&text, "potok_topic_records_out_total{topic=\"m\"}"),
        50.0
    );
    assert!(value(&text, "potok_requests_total{api=\"Produce\"}") >= 1.0);
    assert!(value(&text, "potok_request_latency_seconds_count{api=\"Fetch\"}") >= 1.0);
    assert!(
        value(
            &text,
            "potok_request_latency_seconds_bucket{api=\"Produce\",le=\"+Inf\"}"
        ) >= 1.0
    );
    // The producer's connection is still open.
    assert!(value(&text, "potok_active_connections") >= 1.0);
    assert!(b.admin_get("/nope").contains("not found"));
}
