//! Hostile clients (issue #4 acceptance 3): garbage, truncated, oversized and negative-length
//! frames, unknown API keys and versions, announced-but-never-sent frames and a client that
//! never reads its responses. Each bad connection is closed (or stalls alone); the broker keeps
//! serving well-behaved clients and its memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use potok_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader,
};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode, ErrorCode};

fn connect(b: &common::Broker) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", b.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn frame<M: Encode>(key: ApiKey, version: i16, correlation_id: i32, body: &M) -> Vec<u8> {
    let header = RequestHeader {
        request_api_key: key as i16,
        request_api_version: version,
        correlation_id,
        client_id: Some("hostile-test".into()),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    encode_request_frame(&mut buf, &header, body).expect("encode");
    buf.to_vec()
}

/// Reads one response frame; returns (correlation id, rest of the frame after it).
fn read_response(s: &mut TcpStream) -> (i32, bytes::Bytes) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("response body");
    let mut b = bytes::Bytes::from(body);
    let corr = b.get_i32();
    (corr, b)
}

/// Asserts the broker closes the connection (EOF or reset) within the read timeout, without
/// sending a response.
fn assert_closed(mut s: TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: expected the connection to close, got {n} bytes"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{what}: expected the connection to close, got {e}"),
    }
}

/// A well-behaved Metadata round trip on a fresh connection.
fn healthy(b: &common::Broker) {
    let mut s = connect(b);
    s.write_all(&frame(
        ApiKey::Metadata,
        12,
        42,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    ))
    .unwrap();
    let (corr, mut body) = read_response(&mut s);
    assert_eq!(corr, 42);
    // Flexible response header: one empty tagged-field section.
    assert_eq!(body.get_u8(), 0);
    let m = MetadataResponse::decode(&mut body, 12).expect("metadata response");
    assert_eq!(m.brokers.len(), 1);
}

#[test]
fn hostile_frames_close_only_their_connection_and_memory_stays_bounded() {
    let b = common::Broker::builder()
        .set("socket.request.max.bytes", "1048576")
        .start();
    healthy(&b);
    // A long-lived good connection that must survive everything below.
    let mut good = connect(&b);
    let mut corr = 0;
    let mut good_roundtrip = |good: &mut TcpStream| {
        corr += 1;
        good.write_all(&frame(
            ApiKey::ApiVersions,
            3,
            corr,
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
        let (c, mut body) = read_response(good);
        assert_eq!(c, corr);
        let v = ApiVersionsResponse::decode(&mut body, 3).unwrap();
        assert_eq!(v.error_code, 0);
    };
    good_roundtrip(&mut good);
    let rss_start = b.rss_bytes().expect("rss");

    // Garbage: a length prefix that happens to be in range followed by random bytes.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..50 {
        let mut s = connect(&b);
        let n = 8 + (rand() % 4000) as usize;
        let mut junk: Vec<u8> = (0..n).map(|_| rand() as u8).collect();
        // Half of them get a valid length so the garbage reaches the decoder.
        if i % 2 == 0 {
            junk[..4].copy_from_slice(&((n - 4) as i32).to_be_bytes());
        }
        let _ = s.write_all(&junk);
        if i % 2 == 0 {
            assert_closed(s, "garbage frame");
        }
    }
    // Oversized and negative lengths are refused from the prefix alone.
    for len in [1_048_577i32, i32::MAX, -5] {
        let mut s = connect(&b);
        s.write_all(&len.to_be_bytes()).unwrap();
        assert_closed(s, "oversized/negative frame");
    }
    // Truncated: the frame announces more than is sent and the client half-closes.
    {
        let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
        f.truncate(f.len() - 3);
        let mut s = connect(&b);
        s.write_all(&f).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        assert_closed(s, "truncated frame");
    }
    // A whole frame whose body is cut short inside (valid length, missing fields).
    {
        let f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
        let mut cut = f[..f.len() - 2].to_vec();
        let n = (cut.len() - 4) as i32;
        cut[..4].copy_from_slice(&n.to_be_bytes());
        let mut s = connect(&b);
        s.write_all(&cut).unwrap();
        assert_closed(s, "short body");
    }
    // Unknown API key, and a known API at a version the broker does not serve.
    {
        let mut f = frame(ApiKey::Metadata, 1, 7, &MetadataRequest::default());
        f[4..6].copy_from_slice(&999i16.to_be_bytes());
        let mut s = connect(&b);
        s.write_all(&f).unwrap();
        assert_closed(s, "unknown api key");
        let mut f = frame(ApiKey::Metadata, 1, 7, &MetadataRequest::default());
        f[6..8].copy_from_slice(&99i16.to_be_bytes());
        let mut s = connect(&b);
        s.write_all(&f).unwrap();
        assert_closed(s, "unknown version");
        // Produce v0 is decodable but not served (Kafka 4 dropped it): closed, not answered.
        let p = frame(
            ApiKey::Produce,
            0,
            8,
            &potok_protocol::messages::ProduceRequest::default(),
        );
        let mut s = connect(&b);
        s.write_all(&p).unwrap();
        assert_closed(s, "unsupported produce version");
    }
    // ApiVersions at a version the broker lacks gets UNSUPPORTED_VERSION with the v0 body
    // listing the real versions (KIP-511), and the connection stays usable.
    {
        let mut f = frame(ApiKey::ApiVersions, 0, 9, &ApiVersionsRequest::default());
        f[6..8].copy_from_slice(&77i16.to_be_bytes());
        let mut s = connect(&b);
        s.write_all(&f).unwrap();
        let (c, mut body) = read_response(&mut s);
        assert_eq!(c, 9);
        let v = ApiVersionsResponse::decode(&mut body, 0).unwrap();
        assert_eq!(v.error_code, ErrorCode::UnsupportedVersion.code());
        let av = v
            .api_keys
            .iter()
            .find(|k| k.api_key == ApiKey::ApiVersions as i16)
            .unwrap();
        assert_eq!((av.min_version, av.max_version), (0, 4));
        assert!(v.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
        s.write_all(&frame(
            ApiKey::ApiVersions,
            3,
            10,
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
        assert_eq!(read_response(&mut s).0, 10);
    }
    good_roundtrip(&mut good);
    healthy(&b);

    // Memory: 200 connections each announce a maximum-size frame and send only a little of it;
    // the broker must not reserve the announced size.
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = connect(&b);
        s.write_all(&1_048_576i32.to_be_bytes()).unwrap();
        s.write_all(&[1u8; 1000]).unwrap();
        held.push(s);
    }
    // A client that pipelines requests and never reads the answers only stalls itself.
    let mut flood = connect(&b);
    flood
        .set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let req = frame(
        ApiKey::Metadata,
        12,
        1,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    );
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < Duration::from_secs(3) {
        match flood.write_all(&req) {
            Ok(()) => sent += 1,
            Err(_) => break, // the broker stopped reading: backpressure reached the client
        }
    }
    assert!(sent > 0);
    good_roundtrip(&mut good);
    healthy(&b);
    std::thread::sleep(Duration::from_millis(200));
    let rss_end = b.rss_bytes().expect("rss");
    let grown = rss_end.saturating_sub(rss_start);
    // 200 announced megabyte frames would be 200 MiB if reserved; allow generous slack for
    // socket buffers, tasks and allocator behaviour.
    assert!(
        grown < 48 << 20,
        "RSS grew by {} MiB (from {} to {} MiB)",
        grown >> 20,
        rss_start >> 20,
        rss_end >> 20
    );
    drop(held);
    drop(flood);
    let log = b.log();
    assert!(
        log.contains("closing connection"),
        "no log line for closed connections:\n{log}"
    );
    good_roundtrip(&mut good);
}
