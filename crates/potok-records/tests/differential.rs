//! Differential tests against an independent implementation: the `kafka-protocol` crate's
//! record batch encoder and decoder (a dev-dependency only). For every codec, batches it
//! encodes must parse, validate and iterate here with the same contents, and batches built here
//! must decode there with the same contents. Its lz4 path uses the C liblz4 frame encoder and
//! its snappy path writes the xerial framing on its own, so this also cross-checks our framing.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KpTimestampType,
};
use potok_records::{
    split_batches, Compression, Header, NewRecord, Offset, ProducerEpoch, ProducerId,
    RecordBatchBuilder,
};
use proptest::prelude::*;

const CODECS: [(Compression, KpCompression); 5] = [
    (Compression::None, KpCompression::None),
    (Compression::Gzip, KpCompression::Gzip),
    (Compression::Snappy, KpCompression::Snappy),
    (Compression::Lz4, KpCompression::Lz4),
    (Compression::Zstd, KpCompression::Zstd),
];

#[derive(Debug, Clone)]
struct Rec {
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Unique keys: kafka-protocol keeps headers in an `IndexMap`.
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        0i64..10_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..2000)),
        proptest::collection::btree_map(
            "[a-z]{1,6}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..10)),
            0..3,
        ),
    )
        .prop_map(|(ts, key, value, headers)| Rec {
            timestamp: 1_600_000_000_000 + ts,
            key,
            value,
            headers: headers.into_iter().collect(),
        })
}

fn kp_record(r: &Rec, offset: i64, sequence: i32, producer: (i64, i16)) -> KpRecord {
    let mut headers = IndexMap::new();
    for (k, v) in &r.headers {
        headers.insert(StrBytes::from_string(k.clone()), v.clone().map(Bytes::from));
    }
    KpRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: 4,
        producer_id: producer.0,
        producer_epoch: producer.1,
        timestamp_type: KpTimestampType::Creation,
        offset,
        sequence,
        timestamp: r.timestamp,
        key: r.key.clone().map(Bytes::from),
        value: r.value.clone().map(Bytes::from),
        headers,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn kafka_protocol_encoded_batches_parse_here(
        recs in proptest::collection::vec(rec(), 1..8),
        base in 0i64..1 << 40,
        seq in 0i32..1 << 20,
    ) {
        for (ours, theirs) in CODECS {
            let kp: Vec<KpRecord> = recs
                .iter()
                .enumerate()
                .map(|(i, r)| kp_record(r, base + i as i64, seq + i as i32, (77, 3)))
                .collect();
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                &kp,
                &RecordEncodeOptions { version: 2, compression: theirs },
            )
            .unwrap();
            let batches: Vec<_> = split_batches(buf.freeze()).collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(batches.len(), 1);
            let batch = &batches[0];
            batch.validate().unwrap();
            let h = batch.header();
            prop_assert_eq!(h.compression().unwrap(), ours);
            prop_assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 3, seq));
            prop_assert_eq!(h.partition_leader_epoch, 4);
            prop_assert_eq!(h.base_offset, base);
            prop_assert_eq!(h.last_offset(), Offset(base + recs.len() as i64 - 1));
            let got: Vec<_> = batch.records().unwrap().collect::<Result<_, _>>().unwrap();
            prop_assert_eq!(got.len(), recs.len());
            for (i, (g, want)) in got.iter().zip(&recs).enumerate() {
                prop_assert_eq!(g.offset(h), Offset(base + i as i64));
                prop_assert_eq!(g.timestamp(h), want.timestamp);
                prop_assert_eq!(g.key.as_deref(), want.key.as_deref());
                prop_assert_eq!(g.value.as_deref(), want.value.as_deref());
                let headers: Vec<(String, Option<Vec<u8>>)> = g
                    .headers
                    .iter()
                    .map(|hd| (hd.key_str().unwrap().to_owned(), hd.value.as_ref().map(|v| v.to_vec())))
                    .collect();
                prop_assert_eq!(&headers, &want.headers);
            }
        }
    }

    #[test]
    fn batches_built_here_decode_in_kafka_protocol(
        recs in proptest::collection::vec(rec(), 1..8),
        base in 0i64..1 << 40,
        seq in 0i32..1 << 20,
        transactional in any::<bool>(),
    ) {
        for (ours, theirs) in CODECS {
            let mut builder = RecordBatchBuilder::new()
                .compression(ours)
                .base_offset(Offset(base))
                .producer(ProducerId(55), ProducerEpoch(2), seq)
                .transactional(transactional);
            for r in &recs {
                builder.push(NewRecord {
                    timestamp: r.timestamp,
                    key: r.key.clone().map(Bytes::from),
                    value: r.value.clone().map(Bytes::from),
                    headers: r
                        .headers
                        .iter()
                        .map(|(k, v)| Header {
                            key: Bytes::from(k.clone()),
                            value: v.clone().map(Bytes::from),
                        })
                        .collect(),
                });
            }
            let batch = builder.build().unwrap();
            let mut bytes = batch.into_bytes();
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            prop_assert_eq!(set.compression, theirs);
            prop_assert_eq!(set.records.len(), recs.len());
            for (i, (g, want)) in set.records.iter().zip(&recs).enumerate() {
                prop_assert_eq!(g.offset, base + i as i64);
                prop_assert_eq!(g.sequence, seq + i as i32);
                prop_assert_eq!((g.producer_id, g.producer_epoch), (55, 2));
                prop_assert_eq!(g.transactional, transactional);
                prop_assert_eq!(g.timestamp, want.timestamp);
                prop_assert_eq!(g.key.as_deref(), want.key.as_deref());
                prop_assert_eq!(g.value.as_deref(), want.value.as_deref());
                let headers: Vec<(String, Option<Vec<u8>>)> = g
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.as_ref().map(|v| v.to_vec())))
                    .collect();
                prop_assert_eq!(&headers, &want.headers);
            }
        }
    }
}
