//! Fixed byte vectors produced by other Kafka implementations, checked field by field.

use bytes::Bytes;
use potok_records::{split_batches, Compression, Offset, RecordBatch, TimestampType};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// An uncompressed batch written by kafka-python 3.0.12's `DefaultRecordBatchBuilder`
/// (an independent pure-Python encoder) with producer id 1234, epoch 5, base sequence 17 and
/// three records: ("key-0", "value-0", headers h1="x", h2=null) at 1700000000000,
/// (null, "value-1") at +7 ms and ("key-2", null) at -1 ms. The header fields below were read off
/// the hex by hand against the layout in docs/format.md.
const KAFKA_PYTHON_BATCH: &str = "0000000000000000000000670000000002db5cc993000000000002\
0000018bcfe568000000018bcfe5680700000000000004d200050000001100000003360000000a6b65792d300e\
76616c75652d30040468310278046832011a000e02010e76616c75652d3100160001040a6b65792d320100";

#[test]
fn kafka_python_uncompressed_batch() {
    let bytes = hex(KAFKA_PYTHON_BATCH);
    assert_eq!(bytes.len(), 115);
    let batch = RecordBatch::new(Bytes::from(bytes)).unwrap();
    batch.validate().unwrap();
    let h = batch.header();
    assert_eq!(h.base_offset, 0);
    assert_eq!(h.batch_length, 103);
    assert_eq!(h.crc, 0xdb5c_c993);
    assert_eq!(h.compression().unwrap(), Compression::None);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert_eq!(h.last_offset_delta, 2);
    assert_eq!(h.base_timestamp, 1_700_000_000_000);
    assert_eq!(h.max_timestamp, 1_700_000_000_007);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (1234, 5, 17)
    );
    assert_eq!(h.records_count, 3);

    let recs: Vec<_> = batch.records().unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].key.as_deref(), Some(&b"key-0"[..]));
    assert_eq!(recs[0].value.as_deref(), Some(&b"value-0"[..]));
    assert_eq!(recs[0].headers.len(), 2);
    assert_eq!(recs[0].headers[0].key_str(), Some("h1"));
    assert_eq!(recs[0].headers[0].value.as_deref(), Some(&b"x"[..]));
    assert_eq!(recs[0].headers[1].key_str(), Some("h2"));
    assert_eq!(recs[0].headers[1].value, None);
    assert_eq!(recs[1].key, None);
    assert_eq!(recs[1].timestamp(h), 1_700_000_000_007);
    assert_eq!(recs[2].offset(h), Offset(2));
    assert_eq!(recs[2].timestamp_delta, -1);
    assert_eq!(recs[2].value, None);
}

#[test]
fn kafka_python_batch_corruption_detected() {
    let mut bytes = hex(KAFKA_PYTHON_BATCH);
    bytes[100] ^= 0x20;
    let mut it = split_batches(Bytes::from(bytes));
    let batch = it.next().unwrap().unwrap();
    assert!(batch.validate().is_err());
}
