//! Helpers shared by the integration tests: building batches and decoding read slices.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use potok_log::{Log, LogConfig, ReadSlice, RealStorage, Storage};
use potok_records::{split_batches, Offset, RecordBatchBuilder};

/// A batch of records `(timestamp, value)` with base offset 0 (the log assigns offsets).
pub fn batch(records: &[(i64, Vec<u8>)]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (ts, v) in records {
        b = b.key_value(*ts, None, Some(v));
    }
    b.build().expect("build batch").into_bytes()
}

/// A batch of `n` records stamped `ts`, each value `value_len` bytes derived from `tag`.
pub fn simple_batch(n: usize, ts: i64, value_len: usize, tag: u8) -> Bytes {
    let recs: Vec<(i64, Vec<u8>)> = (0..n)
        .map(|i| (ts, vec![tag.wrapping_add(i as u8); value_len]))
        .collect();
    batch(&recs)
}

/// A batch with explicit base offset (for follower appends).
pub fn batch_at(base: i64, records: &[(i64, Vec<u8>)]) -> Bytes {
    let mut b = RecordBatchBuilder::new().base_offset(Offset(base));
    for (ts, v) in records {
        b = b.key_value(*ts, None, Some(v));
    }
    b.build().expect("build batch").into_bytes()
}

/// Opens a log on real storage.
pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Log {
    Log::open(
        dir,
        config,
        Arc::new(RealStorage) as Arc<dyn Storage>,
        now_ms,
    )
    .expect("open log")
}

/// A decoded record: (offset, timestamp, value).
pub type Rec = (i64, i64, Vec<u8>);

/// Decodes every record of a slice, checking that it holds only whole, CRC-valid batches.
pub fn decode(slice: &ReadSlice) -> Vec<Rec> {
    let bytes = slice.read_bytes().expect("read slice");
    let mut out = Vec::new();
    let mut total = 0;
    for b in split_batches(bytes.clone()) {
        let b = b.expect("whole batch");
        b.validate().expect("valid batch");
        total += b.len();
        let h = *b.header();
        for r in b.records().expect("records") {
            let r = r.expect("record");
            out.push((
                r.offset(&h).0,
                r.timestamp(&h),
                r.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
        }
    }
    assert_eq!(total, bytes.len(), "slice must hold whole batches only");
    out
}

/// Reads the whole log from `from` to the end, batch slice by batch slice.
pub fn read_all(log: &Log, from: i64) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut next = from;
    let leo = log.log_end_offset().0;
    while next < leo {
        let s = log.read(Offset(next), 1 << 20, None).expect("read");
        assert!(!s.is_empty(), "empty slice at {next} below LEO {leo}");
        let recs = decode(&s);
        let last = recs.last().expect("non-empty slice has records").0;
        out.extend(recs.into_iter().filter(|r| r.0 >= next));
        next = last + 1;
    }
    out
}

/// Small segments and dense indexes so tests exercise rolls and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        segment_index_bytes: 4096,
        retention_ms: -1,
        ..LogConfig::default()
    }
}
