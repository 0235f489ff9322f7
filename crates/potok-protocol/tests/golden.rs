//! Acceptance 4: request frames captured from librdkafka 2.16 (confluent-kafka, see
//! `tests/fixtures/README.md`) decode to the values the client sent, and re-encode to the same
//! bytes.

use bytes::{Bytes, BytesMut};
use potok_protocol::messages::RequestHeader;
use potok_protocol::{decode_request, encode_request_frame, ApiKey, Request, Uuid};

fn fixture(name: &str) -> Bytes {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn decode(name: &str) -> (RequestHeader, Request) {
    let frame = fixture(name);
    let (h, r) = decode_request(frame.clone()).unwrap();
    // Re-encoding reproduces the client's bytes exactly.
    let mut out = BytesMut::new();
    encode_request_frame(&mut out, &h, &r).unwrap();
    assert_eq!(
        &out[4..],
        &frame[..],
        "{name} does not re-encode identically"
    );
    (h, r)
}

#[test]
fn librdkafka_api_versions_v3() {
    let (h, r) = decode("golden-producer-ApiVersions-v3.bin");
    assert_eq!(h.request_api_key, ApiKey::ApiVersions as i16);
    assert_eq!(h.request_api_version, 3);
    assert_eq!(h.correlation_id, 1);
    assert_eq!(h.client_id.as_deref(), Some("golden-producer"));
    let Request::ApiVersions(r) = r else {
        panic!("not ApiVersions: {r:?}")
    };
    assert_eq!(r.client_software_name, "confluent-kafka-python");
    assert_eq!(r.client_software_version, "2.16.1-rdkafka-2.16.0");
}

#[test]
fn librdkafka_metadata_v12() {
    let (h, r) = decode("golden-producer-Metadata-v12.bin");
    assert_eq!(h.request_api_version, 12);
    assert_eq!(h.client_id.as_deref(), Some("golden-producer"));
    let Request::Metadata(m) = r else {
        panic!("not Metadata: {r:?}")
    };
    let topics = m.topics.expect("explicit topic list");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0].name.as_deref(), Some("golden"));
    assert_eq!(topics[0].topic_id, Uuid::ZERO);
    assert!(m.allow_auto_topic_creation);
    assert!(!m.include_topic_authorized_operations);
}

#[test]
fn librdkafka_produce_v10_records_are_a_zero_copy_slice() {
    let frame = fixture("golden-producer-Produce-v10.bin");
    let (h, r) = decode_request(frame.clone()).unwrap();
    assert_eq!(h.request_api_key, ApiKey::Produce as i16);
    assert_eq!(h.request_api_version, 10);
    assert_eq!(h.client_id.as_deref(), Some("golden-producer"));
    let Request::Produce(p) = r else {
        panic!("not Produce: {r:?}")
    };
    assert_eq!(p.transactional_id, None);
    assert_eq!(p.acks, 1);
    assert_eq!(p.timeout_ms, 30_000);
    assert_eq!(p.topic_data.len(), 1);
    assert_eq!(p.topic_data[0].name, "golden");
    let parts = &p.topic_data[0].partition_data;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].index, 0);
    let records = parts[0].records.as_ref().expect("records");
    // One v2 record batch: batch_length + 12 bytes of offset and length, magic 2, 3 records.
    assert_eq!(records.len(), 118);
    let batch_length = i32::from_be_bytes(records[8..12].try_into().unwrap());
    assert_eq!(batch_length as usize + 12, records.len());
    assert_eq!(records[16], 2, "magic");
    let count = i32::from_be_bytes(records[57..61].try_into().unwrap());
    assert_eq!(count, 3);
    assert!(records.windows(7).any(|w| w == b"value-1"));
    // Zero-copy: the records bytes point into the frame buffer.
    let start = frame.as_ptr() as usize;
    let at = records.as_ptr() as usize;
    assert!(at >= start && at + records.len() <= start + frame.len());
    // Re-encoding gives the client's bytes back.
    decode("golden-producer-Produce-v10.bin");
}

#[test]
fn librdkafka_fetch_v16_uses_topic_ids() {
    let (h, r) = decode("golden-consumer-Fetch-v16.bin");
    assert_eq!(h.request_api_key, ApiKey::Fetch as i16);
    assert_eq!(h.request_api_version, 16);
    assert_eq!(h.client_id.as_deref(), Some("golden-consumer"));
    let Request::Fetch(f) = r else {
        panic!("not Fetch: {r:?}")
    };
    assert_eq!(f.replica_state.replica_id, -1);
    assert_eq!(f.max_wait_ms, 100);
    assert_eq!(f.min_bytes, 1);
    assert_eq!(f.max_bytes, 52_428_800);
    assert_eq!(
        f.isolation_level, 1,
        "librdkafka defaults to read_committed"
    );
    assert_eq!((f.session_id, f.session_epoch), (0, -1));
    assert_eq!(f.topics.len(), 1);
    // Fetch v13+ names topics by id; the capture server advertised this id in Metadata.
    assert_eq!(f.topics[0].topic, "");
    assert_eq!(
        f.topics[0].topic_id.to_string(),
        "706f746f-6b2d-676f-6c64-656e2d696431"
    );
    let p = &f.topics[0].partitions[0];
    assert_eq!(p.partition, 0);
    assert_eq!(p.fetch_offset, 0);
    assert_eq!(p.current_leader_epoch, 0);
    assert_eq!(p.partition_max_bytes, 1_048_576);
    assert!(f.forgotten_topics_data.is_empty());
}
