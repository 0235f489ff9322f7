//! Wire codec benchmarks (acceptance 5).
//!
//! - Decoding a Produce request with 16 partitions must cost the same for 1 KiB and 64 KiB
//!   record batches, because `records` is a zero-copy slice of the frame.
//! - Encoding a Fetch response (16 partitions) with `encode_response_chunks` must not touch the
//!   record bytes, so it costs the same for 1 KiB and 64 KiB of records per partition; the
//!   copying `encode_response_frame` is measured alongside for contrast.
//!
//! Run: `cargo bench -p potok-protocol --bench codec`.

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use potok_protocol::messages::{
    fetch_response, produce_request, FetchResponse, ProduceRequest, RequestHeader,
};
use potok_protocol::{
    decode_request, encode_request_frame, encode_response_chunks, encode_response_frame, ApiKey,
    Uuid,
};

const PARTITIONS: i32 = 16;

fn produce_frame(batch: usize) -> Bytes {
    let header = RequestHeader {
        request_api_key: ApiKey::Produce as i16,
        request_api_version: 9,
        correlation_id: 1,
        client_id: Some("bench".into()),
        ..Default::default()
    };
    let body = ProduceRequest {
        acks: -1,
        timeout_ms: 30_000,
        topic_data: vec![produce_request::TopicProduceData {
            name: "bench-topic".into(),
            partition_data: (0..PARTITIONS)
                .map(|i| produce_request::PartitionProduceData {
                    index: i,
                    records: Some(Bytes::from(vec![i as u8; batch])),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    encode_request_frame(&mut buf, &header, &body).unwrap();
    Bytes::from(buf).slice(4..)
}

fn fetch_response(batch: usize) -> FetchResponse {
    FetchResponse {
        responses: vec![fetch_response::FetchableTopicResponse {
            topic_id: Uuid([7; 16]),
            partitions: (0..PARTITIONS)
                .map(|i| fetch_response::PartitionData {
                    partition_index: i,
                    high_watermark: 1_000_000,
                    last_stable_offset: 1_000_000,
                    log_start_offset: 0,
                    records: Some(Bytes::from(vec![i as u8; batch])),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_produce_16_partitions");
    for batch in [1024usize, 65536] {
        let frame = produce_frame(batch);
        g.bench_with_input(BenchmarkId::from_parameter(batch), &frame, |b, f| {
            b.iter(|| decode_request(black_box(f.clone())).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode_fetch_response_16_partitions_chunked");
    for batch in [1024usize, 65536] {
        let resp = fetch_response(batch);
        g.bench_with_input(BenchmarkId::from_parameter(batch), &resp, |b, r| {
            b.iter(|| encode_response_chunks(ApiKey::Fetch, 16, 1, black_box(r), 512).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode_fetch_response_16_partitions_copying");
    for batch in [1024usize, 65536] {
        let resp = fetch_response(batch);
        g.bench_with_input(BenchmarkId::from_parameter(batch), &resp, |b, r| {
            b.iter(|| {
                let mut buf = BytesMut::new();
                encode_response_frame(&mut buf, ApiKey::Fetch, 16, 1, black_box(r)).unwrap();
                buf
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
