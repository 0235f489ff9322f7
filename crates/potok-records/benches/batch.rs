//! Hot-path costs of record batches: header parse, header parse + CRC-32C validation of a
//! 16 KiB batch, base-offset rewrite, splitting 1 MiB of concatenated batches, and iterating the
//! records of a batch, and the leader's per-record scan of a produced batch (big and small
//! records, uncompressed and lz4). Results are recorded in docs/benchmarks.md.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use potok_records::{
    set_base_offset, set_max_timestamp, split_batches, BatchHeader, Compression, Offset,
    RecordBatch, RecordBatchBuilder, RecordChecks, TimestampType, TimestampWindow,
};

/// A 16 KiB uncompressed batch of 16 records with 1 000-byte values, as a producer with
/// `batch.size=16384` would send.
fn batch_16k() -> RecordBatch {
    batch_of(1000, Compression::None)
}

/// About 16 KiB of records with `value_len`-byte values, compressed with `codec`.
fn batch_of(value_len: usize, codec: Compression) -> RecordBatch {
    let mut b = RecordBatchBuilder::new().compression(codec);
    let mut i = 0;
    loop {
        let next = b.clone().key_value(
            1_700_000_000_000 + i,
            Some(format!("key-{i}").as_bytes()),
            Some(&vec![i as u8; value_len]),
        );
        if next.len() * (value_len + 20) > 16 * 1024 {
            break;
        }
        b = next;
        i += 1;
    }
    b.build().unwrap()
}

fn benches(c: &mut Criterion) {
    let batch = batch_16k();
    let bytes = batch.as_bytes().clone();
    let mut g = c.benchmark_group("records");
    g.measurement_time(Duration::from_secs(3));
    g.warm_up_time(Duration::from_secs(1));

    g.throughput(Throughput::Elements(1));
    g.bench_function("header_parse", |b| {
        b.iter(|| BatchHeader::parse(black_box(&bytes)).unwrap())
    });
    let mut buf = bytes.to_vec();
    g.bench_function("set_base_offset", |b| {
        let mut o = 0i64;
        b.iter(|| {
            o += 1;
            set_base_offset(black_box(&mut buf), Offset(o)).unwrap();
        })
    });

    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("parse_and_validate_crc_16k", |b| {
        b.iter(|| {
            let batch = RecordBatch::new(black_box(bytes.clone())).unwrap();
            batch.validate().unwrap();
        })
    });
    g.bench_function("iterate_records_16k", |b| {
        b.iter(|| {
            let n = batch.records().unwrap().filter(|r| r.is_ok()).count();
            black_box(n)
        })
    });

    // The leader's per-record scan on the produce path (compacted topic and timestamp window
    // checked too), and the header rewrite a batch with a wrong max timestamp costs.
    let checks = RecordChecks {
        require_key: true,
        create_time_window: Some(TimestampWindow {
            now_ms: 1_700_000_000_000,
            before_max_ms: i64::MAX,
            after_max_ms: 3_600_000,
        }),
    };
    for (name, value_len, codec) in [
        ("scan_records_16k_1000b", 1000, Compression::None),
        ("scan_records_16k_100b", 100, Compression::None),
        ("scan_records_16k_100b_lz4", 100, Compression::Lz4),
    ] {
        let scanned = batch_of(value_len, codec);
        g.throughput(Throughput::Elements(
            u64::try_from(scanned.header().records_count).unwrap(),
        ));
        g.bench_function(name, |b| {
            b.iter(|| black_box(&scanned).scan_records(&checks, 1 << 20).unwrap())
        });
    }
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    let mut wrong = bytes.to_vec();
    g.bench_function("set_max_timestamp_16k", |b| {
        let mut t = 0i64;
        b.iter(|| {
            t += 1;
            set_max_timestamp(black_box(&mut wrong), TimestampType::CreateTime, t).unwrap()
        })
    });

    let mut mib = Vec::new();
    while mib.len() < 1 << 20 {
        mib.extend_from_slice(&bytes);
    }
    let mib = Bytes::from(mib);
    g.throughput(Throughput::Bytes(mib.len() as u64));
    g.bench_function("split_and_validate_1mib", |b| {
        b.iter(|| {
            for batch in split_batches(black_box(mib.clone())) {
                batch.unwrap().validate().unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(batch, benches);
criterion_main!(batch);
