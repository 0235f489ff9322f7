//! Raw-protocol tests of the data-path handlers: Produce validation errors, Fetch long polling
//! and limits, ListOffsets lookups, CreateTopics validation. They speak the wire protocol
//! directly (through potok-protocol) so that every error code is observable, which real
//! clients would hide behind retries.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use potok_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceRequest, ProduceResponse, RequestHeader,
};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode, ErrorCode};
use potok_records::RecordBatchBuilder;

struct Client {
    s: TcpStream,
    corr: i32,
}

impl Client {
    fn new(b: &common::Broker) -> Client {
        let s = TcpStream::connect(("127.0.0.1", b.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Client { s, corr: 0 }
    }

    fn send<M: Encode>(&mut self, key: ApiKey, v: i16, body: &M) -> i32 {
        self.corr += 1;
        let h = RequestHeader {
            request_api_key: key as i16,
            request_api_version: v,
            correlation_id: self.corr,
            client_id: Some("protocol-test".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &h, body).unwrap();
        self.s.write_all(&buf).unwrap();
        self.corr
    }

    fn recv<R: Decode>(&mut self, key: ApiKey, v: i16, corr: i32) -> R {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut body).unwrap();
        let mut b = Bytes::from(body);
        assert_eq!(b.get_i32(), corr);
        if key.response_header_version(v) >= 1 {
            assert_eq!(b.get_u8(), 0, "no tagged fields expected in the header");
        }
        R::decode(&mut b, v).unwrap()
    }

    fn call<M: Encode, R: Decode>(&mut self, key: ApiKey, v: i16, body: &M) -> R {
        let c = self.send(key, v, body);
        self.recv(key, v, c)
    }
}

fn create(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest {
            topics: vec![creatable(name, partitions, -1, configs)],
            timeout_ms: 10_000,
            ..Default::default()
        },
    )
}

/// One CreateTopics entry with the given configs.
fn creatable(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    CreatableTopic {
        name: name.into(),
        num_partitions: partitions,
        replication_factor: rf,
        configs: configs
            .iter()
            .map(|(k, v)| CreatableTopicConfig {
                name: (*k).into(),
                value: Some((*v).into()),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn batch(records: &[(i64, &[u8])]) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for (ts, v) in records {
        b = b.key_value(*ts, Some(b"k"), Some(v));
    }
    b.build().unwrap().into_bytes()
}

fn produce(
    c: &mut Client,
    topic: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
) -> ProduceResponse {
    let req = ProduceRequest {
        acks,
        timeout_ms: 10_000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(records),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    c.call(ApiKey::Produce, 9, &req)
}

fn produce_code(c: &mut Client, topic: &str, acks: i16, records: Bytes) -> (i16, i64) {
    let r = produce(c, topic, 0, acks, records);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_req(
    topic: &str,
    offset: i64,
    max_wait: i32,
    min_bytes: i32,
    part_max: i32,
    max: i32,
) -> FetchRequest {
    FetchRequest {
        max_wait_ms: max_wait,
        min_bytes,
        max_bytes: max,
        topics: vec![FetchTopic {
            topic: topic.into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: offset,
                partition_max_bytes: part_max,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn produce_validation_errors() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    let r = create(&mut c, "p", 1, &[("max.message.bytes", "2000")]);
    assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);

    let ok = batch(&[(1, b"hello")]);
    assert_eq!(produce_code(&mut c, "p", 1, ok.clone()), (0, 0));
    assert_eq!(produce_code(&mut c, "p", -1, ok.clone()), (0, 1));
    // acks=0: no response; the next request's answer arrives with its own correlation id.
    let c0 = c.send(
        ApiKey::Produce,
        9,
        &ProduceRequest {
            acks: 0,
            timeout_ms: 1000,
            topic_data: vec![TopicProduceData {
                name: "p".into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(ok.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(produce_code(&mut c, "p", 1, ok.clone()), (0, 3));
    assert!(c.corr > c0);

    // A flipped payload byte breaks the CRC.
    let mut bad = ok.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert_eq!(
        produce_code(&mut c, "p", 1, Bytes::from(bad)).0,
        ErrorCode::CorruptMessage.code()
    );
    // Magic 1 is refused.
    let mut old = ok.to_vec();
    old[16] = 1;
    assert_ne!(produce_code(&mut c, "p", 1, Bytes::from(old)).0, 0);
    // Truncated batch.
    assert_eq!(
        produce_code(&mut c, "p", 1, ok.slice(..ok.len() - 5)).0,
        ErrorCode::CorruptMessage.code()
    );
    // Over max.message.bytes.
    let big = batch(&[(1, &[9u8; 3000])]);
    assert_eq!(
        produce_code(&mut c, "p", 1, big).0,
        ErrorCode::MessageTooLarge.code()
    );
    // Two batches in one partition's records.
    let mut two = ok.to_vec();
    two.extend_from_slice(&ok);
    assert_eq!(
        produce_code(&mut c, "p", 1, Bytes::from(two)).0,
        ErrorCode::InvalidRecord.code()
    );
    // Bad acks, unknown topic, unknown partition.
    assert_eq!(
        produce_code(&mut c, "p", 2, ok.clone()).0,
        ErrorCode::InvalidRequiredAcks.code()
    );
    assert_eq!(
        produce_code(&mut c, "nope", 1, ok.clone()).0,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    let r = produce(&mut c, "p", 5, 1, ok.clone());
    assert_eq!(
        r.responses[0].partition_responses[0].error_code,
        ErrorCode::UnknownTopicOrPartition.code()
    );
    // min.insync.replicas above 1 cannot be met by one node with acks=-1, but acks=1 works.
    let r = create(&mut c, "isr", 1, &[("min.insync.replicas", "2")]);
    assert_eq!(r.topics[0].error_code, 0);
    assert_eq!(
        produce_code(&mut c, "isr", -1, ok.clone()).0,
        ErrorCode::NotEnoughReplicas.code()
    );
    assert_eq!(produce_code(&mut c, "isr", 1, ok.clone()).0, 0);
    // Nothing bad was appended: the log end is 4 (offsets 0..=3).
    let f: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_req("p", 0, 0, 0, 1 << 20, 1 << 20),
    );
    assert_eq!(f.responses[0].partitions[0].high_watermark, 4);
}

#[test]
fn log_append_time_is_stamped_and_returned() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    create(
        &mut c,
        "lat",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = produce(&mut c, "lat", 0, 1, batch(&[(5, b"a"), (6, b"b")]));
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= before, "{}", p.log_append_time_ms);
    let r = produce(&mut c, "p-missing", 0, 1, batch(&[(5, b"a")]));
    assert_eq!(r.responses[0].partition_responses[0].log_append_time_ms, -1);
}

#[test]
fn fetch_long_poll_wakes_on_append_and_respects_limits() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    create(&mut c, "f", 1, &[]);

    // No data, min_bytes 1: the fetch waits max_wait_ms, then answers empty.
    let t = Instant::now();
    let f: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_req("f", 0, 300, 1, 1 << 20, 1 << 20),
    );
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(290), "{waited:?}");
    assert_eq!(
        f.responses[0].partitions[0]
            .records
            .as_ref()
            .map_or(0, |r| r.len()),
        0
    );

    // A parked fetch is woken by an append on another connection well before max_wait.
    let corr = c.send(
        ApiKey::Fetch,
        12,
        &fetch_req("f", 0, 10_000, 1, 1 << 20, 1 << 20),
    );
    let t = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let mut other = Client::new(&b);
    let payload = batch(&[(1, b"wake up")]);
    assert_eq!(produce_code(&mut other, "f", 1, payload.clone()).0, 0);
    let f: FetchResponse = c.recv(ApiKey::Fetch, 12, corr);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "not woken: {:?}",
        t.elapsed()
    );
    let recs = f.responses[0].partitions[0].records.clone().unwrap();
    // Bytes 12..16 are the partition leader epoch, which the leader stamps (Kafka's
    // LogValidator); the CRC does not cover it.
    assert_eq!(&recs[12..16], &0i32.to_be_bytes(), "stamped leader epoch");
    assert_eq!(
        &recs[16..],
        &payload[16..],
        "the batch comes back unchanged but for its offset and leader epoch"
    );
    assert_eq!(f.responses[0].partitions[0].high_watermark, 1);

    // min_bytes larger than what is there: waits for more.
    let t = Instant::now();
    let f: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_req("f", 0, 300, 1 << 20, 1 << 20, 1 << 20),
    );
    assert!(t.elapsed() >= Duration::from_millis(290));
    assert_eq!(
        f.responses[0].partitions[0].records.as_ref().unwrap().len(),
        payload.len()
    );

    // Limits: 10 batches of ~1 KiB; partition_max_bytes 3000 returns whole batches within it,
    // but always at least one batch even when it is larger than the limit.
    for _ in 0..10 {
        produce_code(&mut other, "f", 1, batch(&[(1, &[3u8; 1000])]));
    }
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 1, 0, 0, 3000, 1 << 20));
    let n = f.responses[0].partitions[0].records.as_ref().unwrap().len();
    assert!(n > 1000 && n <= 3000, "{n}");
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 1, 0, 0, 10, 1 << 20));
    let n = f.responses[0].partitions[0].records.as_ref().unwrap().len();
    assert!(
        n > 1000 && n < 2000,
        "one whole batch expected, got {n} bytes"
    );
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &fetch_req("f", 1, 0, 0, 1 << 20, 2500));
    let n = f.responses[0].partitions[0].records.as_ref().unwrap().len();
    assert!(n > 1000 && n <= 2500, "total max_bytes ignored: {n}");
    // Out of range.
    let f: FetchResponse = c.call(
        ApiKey::Fetch,
        12,
        &fetch_req("f", 999, 0, 0, 1 << 20, 1 << 20),
    );
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ErrorCode::OffsetOutOfRange.code()
    );
    // A fetch session id we never handed out.
    let mut req = fetch_req("f", 0, 0, 0, 1 << 20, 1 << 20);
    req.session_id = 1234;
    req.session_epoch = 1;
    let f: FetchResponse = c.call(ApiKey::Fetch, 12, &req);
    assert_eq!(f.error_code, ErrorCode::FetchSessionIdNotFound.code());
    // v13+ addresses topics by id; an unknown id is UNKNOWN_TOPIC_ID.
    let mut req = fetch_req("", 0, 0, 0, 1 << 20, 1 << 20);
    req.topics[0].topic_id = potok_protocol::Uuid([1; 16]);
    let f: FetchResponse = c.call(ApiKey::Fetch, 13, &req);
    assert_eq!(
        f.responses[0].partitions[0].error_code,
        ErrorCode::UnknownTopicId.code()
    );
}

#[test]
fn list_offsets_earliest_latest_by_time_and_max_timestamp() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    create(&mut c, "lo", 1, &[]);
    // Offsets 0..=5 with timestamps 100, 200, 900 (the max), 300, 400, 500.
    for ts in [100, 200, 900, 300, 400, 500] {
        assert_eq!(produce_code(&mut c, "lo", 1, batch(&[(ts, b"v")])).0, 0);
    }
    let ask = |c: &mut Client, ts: i64| -> (i16, i64, i64) {
        let r: ListOffsetsResponse = c.call(
            ApiKey::ListOffsets,
            8,
            &ListOffsetsRequest {
                replica_id: -1,
                topics: vec![ListOffsetsTopic {
                    name: "lo".into(),
                    partitions: vec![ListOffsetsPartition {
                        partition_index: 0,
                        timestamp: ts,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let p = &r.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    };
    assert_eq!(ask(&mut c, -2).1, 0);
    assert_eq!(ask(&mut c, -1).1, 6);
    assert_eq!(ask(&mut c, -3), (0, 2, 900));
    assert_eq!(ask(&mut c, 250), (0, 2, 900));
    assert_eq!(ask(&mut c, 200), (0, 1, 200));
    assert_eq!(ask(&mut c, 1000), (0, -1, -1));
}

#[test]
fn create_topics_validation() {
    let b = common::Broker::start();
    let mut c = Client::new(&b);
    let one = creatable;
    let req = CreateTopicsRequest {
        topics: vec![
            one("ok", 2, 1, &[("retention.ms", "1000")]),
            one("rf3", 1, 3, &[]),
            one("bad name", 1, 1, &[]),
            one("zero", 0, 1, &[]),
            one("cfg", 1, 1, &[("retention.ms", "soon")]),
            one("unknown-cfg", 1, 1, &[("no.such.config", "1")]),
            one("dup", 1, 1, &[]),
            one("dup", 1, 1, &[]),
            one("default", -1, -1, &[]),
        ],
        timeout_ms: 10_000,
        validate_only: false,
        ..Default::default()
    };
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &req);
    let code = |n: &str| r.topics.iter().find(|t| t.name == n).unwrap().error_code;
    assert_eq!(code("ok"), 0);
    assert_eq!(code("rf3"), ErrorCode::InvalidReplicationFactor.code());
    assert_eq!(code("bad name"), ErrorCode::InvalidTopicException.code());
    assert_eq!(code("zero"), ErrorCode::InvalidPartitions.code());
    assert_eq!(code("cfg"), ErrorCode::InvalidConfig.code());
    assert_eq!(code("unknown-cfg"), ErrorCode::InvalidConfig.code());
    assert_eq!(code("dup"), ErrorCode::InvalidRequest.code());
    assert_eq!(code("default"), 0);
    let ok = r.topics.iter().find(|t| t.name == "ok").unwrap();
    assert_eq!(ok.num_partitions, 2);
    assert_ne!(ok.topic_id, potok_protocol::Uuid::ZERO);
    let retention = ok
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    // Sources as DescribeConfigs reports them: the topic's override, the built-in default.
    assert_eq!(retention.config_source, 1);
    let policy = ok
        .configs
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.name == "cleanup.policy");
    assert_eq!(
        policy.map(|c| (c.value.as_deref(), c.config_source)),
        Some((Some("delete"), 5))
    );
    // Existing topic; a name colliding through '.'/'_'; validate_only creates nothing.
    let again: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest {
            topics: vec![one("ok", 1, 1, &[])],
            ..Default::default()
        },
    );
    assert_eq!(
        again.topics[0].error_code,
        ErrorCode::TopicAlreadyExists.code()
    );
    create(&mut c, "a.b", 1, &[]);
    assert_eq!(
        create(&mut c, "a_b", 1, &[]).topics[0].error_code,
        ErrorCode::InvalidTopicException.code()
    );
    let v: CreateTopicsResponse = c.call(
        ApiKey::CreateTopics,
        7,
        &CreateTopicsRequest {
            topics: vec![one("only-validated", 4, 1, &[])],
            validate_only: true,
            ..Default::default()
        },
    );
    assert_eq!(v.topics[0].error_code, 0);
    let again = create(&mut c, "only-validated", 1, &[]);
    assert_eq!(
        again.topics[0].error_code, 0,
        "validate_only must not create the topic"
    );
}
