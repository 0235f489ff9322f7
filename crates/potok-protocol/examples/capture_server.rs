//! A minimal fake Kafka broker that records the request frames real clients send, used once to
//! capture the golden fixtures in `tests/fixtures/` (see `tests/fixtures/README.md`).
//!
//! It listens on 127.0.0.1, answers ApiVersions, Metadata (advertising itself as the leader of
//! every requested topic, one partition each), Produce (accepting everything at offset 0) and
//! Fetch (empty records) with Potok's own codec, and writes the body of the first request of each
//! (client id, API key) to `<out dir>/<client id>-<api>-v<version>.bin`. It exits on its own after
//! the given number of seconds so that it can never hang a script.
//!
//! Usage: `cargo run -p potok-protocol --example capture_server -- <out dir> <port> <seconds>`.

use bytes::{Bytes, BytesMut};
use potok_protocol::messages::{
    api_versions_response::ApiVersion, fetch_response, produce_response, ApiVersionsResponse,
    FetchResponse, MetadataResponse, MetadataResponseBroker, MetadataResponsePartition,
    MetadataResponseTopic, ProduceResponse,
};
use potok_protocol::{
    decode_request, encode_response_frame, read_frame_len, ApiKey, Request, Response, Uuid,
    DEFAULT_MAX_REQUEST_BYTES,
};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVED: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
];

/// A fixed topic id so that Fetch requests by topic id (v13+) can be mapped back.
const TOPIC_ID: Uuid = Uuid([
    0x70, 0x6f, 0x74, 0x6f, 0x6b, 0x2d, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x2d, 0x69, 0x64, 0x31,
]);

struct Shared {
    out: PathBuf,
    port: u16,
    seen: Mutex<HashSet<(String, i16)>>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(
        args.len() == 4,
        "usage: capture_server <out dir> <port> <seconds>"
    );
    let out = PathBuf::from(&args[1]);
    let port: u16 = args[2].parse()?;
    let secs: u64 = args[3].parse()?;
    std::fs::create_dir_all(&out)?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let shared = Arc::new(Shared {
        out,
        port,
        seen: Mutex::new(HashSet::new()),
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    eprintln!("capture_server listening on 127.0.0.1:{port} for {secs}s");
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || {
                    if let Err(e) = serve(stream, &shared, deadline) {
                        eprintln!("connection ended: {e}");
                    }
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn serve(mut stream: TcpStream, shared: &Shared, deadline: Instant) -> anyhow::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    loop {
        if Instant::now() > deadline {
            return Ok(());
        }
        let mut prefix = [0u8; 4];
        match stream.read_exact(&mut prefix) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
        let len = read_frame_len(&prefix, DEFAULT_MAX_REQUEST_BYTES)?;
        let mut body = vec![0u8; len];
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.read_exact(&mut body)?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        let frame = Bytes::from(body);
        let (header, request) = decode_request(frame.clone())?;
        let key = request.api_key();
        let version = header.request_api_version;
        let client = header.client_id.clone().unwrap_or_default();
        let first = shared
            .seen
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert((client.clone(), key as i16));
        if first {
            let name = format!("{client}-{}-v{version}.bin", key.name());
            std::fs::write(shared.out.join(&name), &frame)?;
            eprintln!("captured {name} ({} bytes)", frame.len());
        }
        let response = respond(&request, shared.port);
        let mut out = BytesMut::new();
        encode_response_frame(&mut out, key, version, header.correlation_id, &response)?;
        stream.write_all(&out)?;
    }
}

fn respond(request: &Request, port: u16) -> Response {
    match request {
        Request::ApiVersions(_) => Response::ApiVersions(ApiVersionsResponse {
            api_keys: SERVED
                .iter()
                .map(|k| ApiVersion {
                    api_key: *k as i16,
                    min_version: k.valid_versions().0,
                    max_version: k.valid_versions().1,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        Request::Metadata(m) => {
            let names: Vec<String> = m
                .topics
                .iter()
                .flatten()
                .filter_map(|t| t.name.clone())
                .collect();
            Response::Metadata(MetadataResponse {
                brokers: vec![MetadataResponseBroker {
                    node_id: 1,
                    host: "127.0.0.1".into(),
                    port: i32::from(port),
                    ..Default::default()
                }],
                cluster_id: Some("potok-capture".into()),
                controller_id: 1,
                topics: names
                    .into_iter()
                    .map(|name| MetadataResponseTopic {
                        name: Some(name),
                        topic_id: TOPIC_ID,
                        partitions: vec![MetadataResponsePartition {
                            partition_index: 0,
                            leader_id: 1,
                            leader_epoch: 0,
                            replica_nodes: vec![1],
                            isr_nodes: vec![1],
                            ..Default::default()
                        }],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        }
        Request::Produce(p) => Response::Produce(ProduceResponse {
            responses: p
                .topic_data
                .iter()
                .map(|t| produce_response::TopicProduceResponse {
                    name: t.name.clone(),
                    partition_responses: t
                        .partition_data
                        .iter()
                        .map(|pd| produce_response::PartitionProduceResponse {
                            index: pd.index,
                            base_offset: 0,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        Request::Fetch(f) => Response::Fetch(FetchResponse {
            responses: f
                .topics
                .iter()
                .map(|t| fetch_response::FetchableTopicResponse {
                    topic: t.topic.clone(),
                    topic_id: t.topic_id,
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| fetch_response::PartitionData {
                            partition_index: p.partition,
                            high_watermark: 0,
                            last_stable_offset: 0,
                            log_start_offset: 0,
                            records: Some(Bytes::new()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        other => {
            // Not advertised in ApiVersions, so well-behaved clients never send these.
            Response::default_for(other.api_key())
        }
    }
}
