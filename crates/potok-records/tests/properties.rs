//! Property tests: build → split → validate → iterate round-trips for every codec, hostile
//! bytes never panic, CRC corruption is detected, offset/epoch rewrites keep the CRC valid, and
//! truncated input is reported as `Truncated`.

use bytes::Bytes;
use potok_records::{
    recompute_crc, set_base_offset, set_partition_leader_epoch, split_batches, Compression, Header,
    LeaderEpoch, NewRecord, Offset, ProducerEpoch, ProducerId, RecordBatch, RecordBatchBuilder,
    RecordChecks, RecordsError, BATCH_HEADER_LEN, NO_TIMESTAMP,
};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn opt_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn new_record() -> impl Strategy<Value = NewRecord> {
    (
        -1_000_000i64..1_000_000,
        opt_bytes(40),
        opt_bytes(300),
        proptest::collection::vec(
            (
                proptest::collection::vec(any::<u8>(), 0..10).prop_map(Bytes::from),
                opt_bytes(20),
            ),
            0..4,
        ),
    )
        .prop_map(|(ts, key, value, headers)| NewRecord {
            timestamp: 1_700_000_000_000 + ts,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(key, value)| Header { key, value })
                .collect(),
        })
}

#[derive(Debug, Clone)]
struct Spec {
    codec: Compression,
    base_offset: i64,
    epoch: i32,
    producer: (i64, i16, i32),
    transactional: bool,
    records: Vec<NewRecord>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        codec(),
        0i64..i64::MAX / 2,
        -1i32..1000,
        (-1i64..1 << 40, -1i16..100, -1i32..1 << 20),
        any::<bool>(),
        proptest::collection::vec(new_record(), 0..12),
    )
        .prop_map(
            |(codec, base_offset, epoch, producer, transactional, records)| Spec {
                codec,
                base_offset,
                epoch,
                producer,
                transactional,
                records,
            },
        )
}

fn build(spec: &Spec) -> RecordBatch {
    let mut b = RecordBatchBuilder::new()
        .compression(spec.codec)
        .base_offset(Offset(spec.base_offset))
        .leader_epoch(LeaderEpoch(spec.epoch))
        .producer(
            ProducerId(spec.producer.0),
            ProducerEpoch(spec.producer.1),
            spec.producer.2,
        )
        .transactional(spec.transactional);
    for r in &spec.records {
        b.push(r.clone());
    }
    b.build().expect("builder accepts generated input")
}

fn check_matches(batch: &RecordBatch, spec: &Spec) -> Result<(), TestCaseError> {
    batch
        .validate()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let h = batch.header();
    prop_assert_eq!(h.compression().unwrap(), spec.codec);
    prop_assert_eq!(h.records_count as usize, spec.records.len());
    prop_assert_eq!(h.is_transactional(), spec.transactional);
    let recs = batch
        .records()
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(recs.len(), spec.records.len());
    for (i, (got, want)) in recs.iter().zip(&spec.records).enumerate() {
        prop_assert_eq!(got.offset(h), Offset(h.base_offset + i as i64));
        prop_assert_eq!(got.timestamp(h), want.timestamp);
        prop_assert_eq!(&got.key, &want.key);
        prop_assert_eq!(&got.value, &want.value);
        prop_assert_eq!(&got.headers, &want.headers);
    }
    if let Some(max) = spec.records.iter().map(|r| r.timestamp).max() {
        prop_assert_eq!(h.max_timestamp, max);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn build_split_iterate_roundtrip(specs in proptest::collection::vec(spec(), 1..4)) {
        let batches: Vec<RecordBatch> = specs.iter().map(build).collect();
        let mut concat = Vec::new();
        for b in &batches {
            concat.extend_from_slice(b.as_bytes());
        }
        let split: Vec<RecordBatch> = split_batches(Bytes::from(concat))
            .collect::<Result<_, _>>()
            .unwrap();
        prop_assert_eq!(split.len(), specs.len());
        for (b, s) in split.iter().zip(&specs) {
            check_matches(b, s)?;
        }
    }

    #[test]
    fn crc_corruption_detected(s in spec(), pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let batch = build(&s);
        let mut bytes = batch.as_bytes().to_vec();
        // Any change to bytes 17.. (the CRC itself or what it covers) must be caught.
        let i = 17 + pos.index(bytes.len() - 17);
        bytes[i] ^= flip;
        let corrupted = RecordBatch::new(Bytes::from(bytes)).unwrap();
        prop_assert!(
            matches!(corrupted.validate(), Err(RecordsError::CrcMismatch { .. })),
            "flip at {} not detected", i
        );
    }

    #[test]
    fn offset_and_epoch_rewrite_keep_crc_valid(s in spec(), offset in 0i64..i64::MAX / 2, epoch in any::<i32>()) {
        let batch = build(&s);
        let mut bytes = batch.as_bytes().to_vec();
        set_base_offset(&mut bytes, Offset(offset)).unwrap();
        set_partition_leader_epoch(&mut bytes, LeaderEpoch(epoch)).unwrap();
        prop_assert_eq!(&bytes[BATCH_HEADER_LEN..], &batch.as_bytes()[BATCH_HEADER_LEN..]);
        let rewritten = RecordBatch::new(Bytes::from(bytes)).unwrap();
        let expected = Spec { base_offset: offset, ..s };
        check_matches(&rewritten, &expected)?;
        prop_assert_eq!(rewritten.header().partition_leader_epoch, epoch);
    }

    #[test]
    fn every_prefix_is_ok_then_truncated(specs in proptest::collection::vec(spec(), 1..3), cut in any::<prop::sample::Index>()) {
        let mut concat = Vec::new();
        let mut ends = Vec::new();
        for s in &specs {
            concat.extend_from_slice(build(s).as_bytes());
            ends.push(concat.len());
        }
        let cut = cut.index(concat.len() + 1);
        let whole = ends.iter().filter(|&&e| e <= cut).count();
        let mut it = split_batches(Bytes::copy_from_slice(&concat[..cut]));
        for _ in 0..whole {
            prop_assert!(it.next().unwrap().is_ok());
        }
        if ends.contains(&cut) || cut == 0 {
            prop_assert!(it.next().is_none());
        } else {
            let truncated = matches!(it.next(), Some(Err(RecordsError::Truncated { .. })));
            prop_assert!(truncated);
            prop_assert_eq!(it.position(), if whole == 0 { 0 } else { ends[whole - 1] });
        }
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), limit in 0usize..4096) {
        for batch in split_batches(Bytes::from(data.clone())).flatten() {
            let _ = batch.validate();
            if let Ok(records) = batch.records_with_limit(limit) {
                for r in records {
                    let _ = r;
                }
            }
        }
        let _ = RecordBatch::new(Bytes::from(data.clone()));
        for c in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            if let Ok(out) = c.decompress(&data, limit) {
                prop_assert!(out.len() <= limit);
            }
        }
    }

    /// Random bytes behind a valid header with a recomputed CRC: the records iterator must
    /// reject or accept them without panicking, for every codec id.
    #[test]
    fn random_records_section_never_panics(
        codec_id in 0u8..8,
        count in any::<i32>(),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = RecordBatchBuilder::new().build().unwrap().as_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        let len = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        bytes[21..23].copy_from_slice(&i16::from(codec_id).to_be_bytes());
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        recompute_crc(&mut bytes).unwrap();
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        prop_assert_eq!(batch.validate().is_ok(), count >= 0);
        if let Ok(records) = batch.records_with_limit(1 << 16) {
            let n = records.take(1000).filter(|r| r.is_ok()).count();
            prop_assert!(n <= count.max(0) as usize);
        }
    }

    /// Valid batches with single bytes of the records section mutated (CRC fixed up): a hostile
    /// producer that computes a correct CRC over garbage.
    #[test]
    fn mutated_records_never_panic(s in spec(), pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut bytes = build(&s).as_bytes().to_vec();
        if bytes.len() > BATCH_HEADER_LEN {
            let i = BATCH_HEADER_LEN + pos.index(bytes.len() - BATCH_HEADER_LEN);
            bytes[i] = val;
        }
        recompute_crc(&mut bytes).unwrap();
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        batch.validate().unwrap();
        if let Ok(records) = batch.records() {
            for r in records {
                let _ = r;
            }
        }
    }

    /// The leader's allocation-free scan accepts exactly the batches the record iterator reads
    /// completely, finds the same max timestamp and the same keyless records, also for batches
    /// with one byte of the records section mutated (CRC fixed up).
    #[test]
    fn scan_agrees_with_the_record_iterator(
        s in spec(),
        mutation in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        let mut bytes = build(&s).as_bytes().to_vec();
        if let Some((pos, val)) = mutation {
            if bytes.len() > BATCH_HEADER_LEN {
                let i = BATCH_HEADER_LEN + pos.index(bytes.len() - BATCH_HEADER_LEN);
                bytes[i] = val;
            }
        }
        recompute_crc(&mut bytes).unwrap();
        let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
        let checks = RecordChecks { require_key: true, create_time_window: None };
        let limit = 1 << 20;
        let read: Result<Vec<_>, _> = batch
            .records_with_limit(limit)
            .and_then(|records| records.collect::<Result<Vec<_>, _>>());
        let scan = batch.scan_records(&checks, limit);
        prop_assert_eq!(scan.is_ok(), read.is_ok(), "scan {:?}", scan);
        if let (Ok(scan), Ok(read)) = (scan, read) {
            let max = read
                .iter()
                .map(|r| r.timestamp(batch.header()))
                .fold(NO_TIMESTAMP, i64::max);
            prop_assert_eq!(scan.max_timestamp, max);
            let keyless: Vec<i32> = read
                .iter()
                .enumerate()
                .filter(|(_, r)| r.key.is_none())
                .map(|(i, _)| i as i32)
                .collect();
            let faults: Vec<i32> = scan.faults.iter().map(|f| f.index).collect();
            prop_assert_eq!(faults, keyless);
        }
    }
}
