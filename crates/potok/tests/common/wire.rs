//! A raw Kafka-protocol client for tests that must see every field of a response (error
//! codes, `record_errors`, authorized-operations bitfields), which real clients hide.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use potok_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use potok_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use potok_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use potok_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DescribeQuorumRequest, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode};

/// Metadata v12 (every topic) as node `addr` answers it; `None` when it accepts no connection
/// within 2 s or answers nothing within 10 s (a restarted cluster node reads no request until
/// it is caught up and unfenced), so that callers can poll.
pub fn metadata(addr: &str) -> Option<MetadataResponse> {
    TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    let req = MetadataRequest {
        topics: None,
        ..Default::default()
    };
    let mut c = Client::connect(addr, Duration::from_secs(10));
    c.send(ApiKey::Metadata, 12, &req);
    c.recv(ApiKey::Metadata, 12).ok()
}

/// DescribeQuorum of the metadata log (`__cluster_metadata` partition 0), as
/// `kafka-metadata-quorum` asks it.
pub fn describe_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest {
        topics: vec![TopicData {
            topic_name: "__cluster_metadata".into(),
            partitions: vec![PartitionData::default()],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// One connection; requests are answered in order.
pub struct Client {
    s: TcpStream,
    corr: i32,
}

impl Client {
    /// Connects to `broker` with a 20 s read timeout.
    pub fn new(broker: &super::Broker) -> Client {
        Client::with_timeout(broker, Duration::from_secs(20))
    }

    /// Connects to `broker` with a read timeout of `timeout` (for requests that do much IO).
    pub fn with_timeout(broker: &super::Broker, timeout: Duration) -> Client {
        Client::connect(&broker.bootstrap(), timeout)
    }

    /// Connects to `addr` (`host:port`, any Kafka broker) with a read timeout of `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> Client {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(timeout)).unwrap();
        Client { s, corr: 0 }
    }

    /// Sends `body` as `key` v`v` and decodes the response.
    pub fn call<M: Encode, R: Decode>(&mut self, key: ApiKey, v: i16, body: &M) -> R {
        self.send(key, v, body);
        self.recv(key, v)
            .unwrap_or_else(|e| panic!("{key:?} v{v}: {e}"))
    }

    /// Sends `body` as `key` v`v` without waiting for the answer (to keep several requests in
    /// flight on several connections, e.g. JoinGroup calls that wait for each other).
    pub fn send<M: Encode>(&mut self, key: ApiKey, v: i16, body: &M) {
        self.corr += 1;
        let h = RequestHeader {
            request_api_key: key as i16,
            request_api_version: v,
            correlation_id: self.corr,
            client_id: Some("wire-test".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &h, body).unwrap();
        self.s.write_all(&buf).unwrap();
    }

    /// Reads and decodes the answer to the request sent last with [`Client::send`] (one request
    /// in flight per connection); an error when the broker closed the connection (or the read
    /// timed out) instead.
    pub fn recv<R: Decode>(&mut self, key: ApiKey, v: i16) -> Result<R, String> {
        let mut len = [0u8; 4];
        self.s
            .read_exact(&mut len)
            .map_err(|e| format!("no response: {e}"))?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s
            .read_exact(&mut body)
            .map_err(|e| format!("truncated response: {e}"))?;
        let mut b = Bytes::from(body);
        assert_eq!(b.get_i32(), self.corr);
        if key.response_header_version(v) >= 1 {
            assert_eq!(b.get_u8(), 0, "no tagged fields expected in the header");
        }
        R::decode(&mut b, v).map_err(|e| format!("undecodable response: {e}"))
    }

    /// CreateTopics v7 of one topic with `configs`; panics unless it succeeds.
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let r: CreateTopicsResponse = self.call(
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest {
                topics: vec![CreatableTopic {
                    name: name.into(),
                    num_partitions: partitions,
                    replication_factor: -1,
                    configs: configs
                        .iter()
                        .map(|(k, v)| CreatableTopicConfig {
                            name: (*k).into(),
                            value: Some((*v).into()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                timeout_ms: 10_000,
                ..Default::default()
            },
        );
        assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
    }

    /// Produce v9 (acks=1) of `records` to one partition.
    pub fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> ProduceResponse {
        let req = ProduceRequest {
            acks: 1,
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
        self.call(ApiKey::Produce, 9, &req)
    }
}
