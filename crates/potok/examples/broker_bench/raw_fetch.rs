//! A raw Fetch load generator: measures what the broker can *serve*, with a client that does a
//! consumer's protocol and integrity work but does not deliver records one by one.
//!
//! It speaks the Kafka protocol through `potok-protocol` (the generated request and response
//! types and the framing), sends Fetch at the version librdkafka 2.12 sends to a broker that
//! supports it (v16, topics by id, taken from a Metadata v12 answer), with no incremental session
//! (session id 0, epoch -1) and one request in flight per connection, as a consumer does. For
//! every response it
//!
//! - reads the frame into a reused buffer (no allocation per response once the buffer has
//!   grown to the largest response, none per record ever);
//! - decodes the response with the generated decoder (the `records` fields are zero-copy
//!   slices of that buffer) and fails on any top-level or partition error code;
//! - walks every record batch header with `potok_records::split_batches`, verifies each batch's
//!   CRC-32C and header sanity with `RecordBatch::validate`, checks that each batch starts
//!   exactly at the offset it fetched from (no gap, no repeat), counts its records from the
//!   header (`lastOffsetDelta + 1`, cross-checked against `recordsCount`), and fetches the next
//!   round from the offset after the last complete batch (a partial batch at the end of a
//!   partition's data, which Kafka may send, is dropped and fetched again, as clients do);
//!
//! and at the end of a pass checks that every partition's next offset is its high watermark
//! and that the records counted equal the records produced, panicking otherwise.
//!
//! What it does *not* do, compared with a real consumer: it never decodes individual records
//! (no varint walk, no key/value/header slices, no per-message callback or queue), never
//! decompresses (the bench produces uncompressed batches), commits no offsets and keeps no
//! group membership. Its figure is therefore the broker's serving rate, not an application's
//! consume rate; the librdkafka rows of the bench are the latter.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::{
    FetchRequest, FetchResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use potok_protocol::{encode_request_frame, read_frame_len, ApiKey, Decode, Encode, Uuid, Wire};
use potok_records::{split_batches, RecordsError};

/// Fetch sizes and wait, as a consumer configures them.
#[derive(Clone, Copy, Debug)]
pub struct FetchConfig {
    /// Fetch request version.
    pub version: i16,
    /// `fetch.max.bytes`.
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_max_bytes: i32,
    /// `fetch.wait.max.ms`.
    pub max_wait_ms: i32,
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
}

/// librdkafka 2.12's defaults (CONFIGURATION.md): `fetch.max.bytes` 52428800,
/// `max.partition.fetch.bytes` 1048576, `fetch.wait.max.ms` 500, `fetch.min.bytes` 1; v16 is
/// the highest Fetch version librdkafka 2.12 sends.
pub const LIBRDKAFKA_DEFAULTS: FetchConfig = FetchConfig {
    version: 16,
    max_bytes: 52_428_800,
    partition_max_bytes: 1_048_576,
    max_wait_ms: 500,
    min_bytes: 1,
};

/// The outcome of one measured run (one or more passes over the data).
#[derive(Debug, Default)]
pub struct RawResult {
    /// Bytes of complete, CRC-checked record batches received.
    pub batch_bytes: u64,
    /// Records counted from the batch headers.
    pub records: u64,
    /// Fetch round trips.
    pub fetches: u64,
    /// Complete passes over the topic (each verified).
    pub passes: u64,
    /// Wall time of the run.
    pub secs: f64,
    /// Per-Fetch round trip (request written to response fully read), microseconds, sorted.
    pub rtt_us: Vec<u32>,
    /// Times a response buffer had to be (re)allocated: growth to the largest response, or a
    /// failed reuse. Stays at a few per connection when the buffer is reused as intended.
    pub buffer_allocs: u64,
}

/// One client connection: blocking socket, a reused request buffer and a reused response
/// buffer.
struct Conn {
    s: TcpStream,
    corr: i32,
    req: BytesMut,
    /// The response buffer. It is handed out as `Bytes` for zero-copy decoding and taken back
    /// afterwards, so its allocation is reused.
    resp: Vec<u8>,
    /// See [`RawResult::buffer_allocs`].
    allocs: u64,
}

fn io_err(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl Conn {
    fn connect(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            s,
            corr: 0,
            req: BytesMut::with_capacity(4096),
            resp: Vec::new(),
            allocs: 0,
        })
    }

    fn send<M: Encode>(&mut self, key: ApiKey, version: i16, body: &M) -> std::io::Result<i32> {
        self.corr = self.corr.wrapping_add(1);
        let h = RequestHeader {
            request_api_key: key as i16,
            request_api_version: version,
            correlation_id: self.corr,
            client_id: Some("potok-raw-fetch".into()),
            ..Default::default()
        };
        self.req.clear();
        encode_request_frame(&mut self.req, &h, body).map_err(|e| io_err(e.to_string()))?;
        self.s.write_all(&self.req)?;
        Ok(self.corr)
    }

    /// Reads one response frame into the reused buffer and returns it as `Bytes` (the length
    /// prefix stripped). Give it back with [`Conn::reclaim`] once every slice of it is dropped.
    fn recv_frame(&mut self) -> std::io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len)?;
        // The bound is the client's own (fetch.max.bytes plus room for the response's
        // non-record fields), so a confused broker cannot make it allocate without limit.
        let len = read_frame_len(&len, 64 << 20).map_err(|e| io_err(e.to_string()))?;
        let mut buf = std::mem::take(&mut self.resp);
        buf.clear();
        let before = buf.as_ptr();
        buf.reserve(len);
        if buf.as_ptr() != before {
            self.allocs += 1;
        }
        // `read_to_end` on a `Take<&TcpStream>` reads into the spare capacity directly, so the
        // reused buffer is not zeroed on each response.
        let n = (&self.s).take(len as u64).read_to_end(&mut buf)?;
        if n != len {
            return Err(io_err(format!(
                "connection closed after {n} of {len} response bytes"
            )));
        }
        Ok(Bytes::from(buf))
    }

    /// Takes the response buffer back for the next read (when nothing else holds a slice of
    /// it; otherwise the next read allocates, which only costs speed).
    fn reclaim(&mut self, frame: Bytes) {
        if let Ok(m) = frame.try_into_mut() {
            self.resp = Vec::from(m);
        }
    }

    /// Reads the response header of `key`/`version`, checks the correlation id, and returns
    /// the body bytes.
    fn recv<R: Decode>(&mut self, key: ApiKey, version: i16, corr: i32) -> std::io::Result<R> {
        let frame = self.recv_frame()?;
        let mut b = frame.clone();
        let h = ResponseHeader::read(&mut b, key.response_header_version(version))
            .map_err(|e| io_err(e.to_string()))?;
        if h.correlation_id != corr {
            return Err(io_err(format!(
                "correlation id {} for request {corr}",
                h.correlation_id
            )));
        }
        R::decode(&mut b, version).map_err(|e| io_err(e.to_string()))
    }
}

/// The topic's id and partition count from a Metadata v12 request (librdkafka learns topic ids
/// the same way before it can send Fetch v13+).
pub fn topic_id(addr: &str, topic: &str) -> std::io::Result<(Uuid, usize)> {
    let mut c = Conn::connect(addr)?;
    let req = MetadataRequest {
        topics: Some(vec![MetadataRequestTopic {
            name: Some(topic.into()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let corr = c.send(ApiKey::Metadata, 12, &req)?;
    let resp: MetadataResponse = c.recv(ApiKey::Metadata, 12, corr)?;
    let t = resp
        .topics
        .into_iter()
        .find(|t| t.name.as_deref() == Some(topic))
        .ok_or_else(|| io_err(format!("topic {topic} missing from Metadata")))?;
    if t.error_code != 0 {
        return Err(io_err(format!(
            "Metadata error {} for {topic}",
            t.error_code
        )));
    }
    Ok((t.topic_id, t.partitions.len()))
}

/// Consumer state of one connection: its request (offsets updated in place between rounds)
/// and, per partition of the request, the offset the pass must reach.
struct Fetcher {
    conn: Conn,
    cfg: FetchConfig,
    req: FetchRequest,
    end: Vec<i64>,
}

impl Fetcher {
    fn new(
        addr: &str,
        topic: &str,
        id: Uuid,
        partitions: &[(i32, i64)],
        cfg: FetchConfig,
    ) -> std::io::Result<Fetcher> {
        let req = FetchRequest {
            replica_id: -1,
            max_wait_ms: cfg.max_wait_ms,
            min_bytes: cfg.min_bytes,
            max_bytes: cfg.max_bytes,
            // librdkafka's default isolation.level is read_committed.
            isolation_level: 1,
            session_id: 0,
            session_epoch: -1,
            topics: vec![FetchTopic {
                topic: if cfg.version >= 13 {
                    String::new()
                } else {
                    topic.into()
                },
                topic_id: id,
                partitions: partitions
                    .iter()
                    .map(|&(p, _)| FetchPartition {
                        partition: p,
                        fetch_offset: 0,
                        partition_max_bytes: cfg.partition_max_bytes,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        Ok(Fetcher {
            conn: Conn::connect(addr)?,
            cfg,
            req,
            end: partitions.iter().map(|&(_, e)| e).collect(),
        })
    }

    /// Fetches every partition from offset 0 to its end once, verifying as described in the
    /// module documentation; adds to `out`.
    fn pass(&mut self, out: &mut RawResult) {
        let v = self.cfg.version;
        for p in &mut self.req.topics[0].partitions {
            p.fetch_offset = 0;
        }
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut counted = 0u64;
        loop {
            let parts = &self.req.topics[0].partitions;
            if parts
                .iter()
                .zip(&self.end)
                .all(|(p, &e)| p.fetch_offset >= e)
            {
                break;
            }
            assert!(Instant::now() < deadline, "raw fetch pass timed out");
            let t0 = Instant::now();
            let corr = self
                .conn
                .send(ApiKey::Fetch, v, &self.req)
                .expect("send Fetch");
            let frame = self.conn.recv_frame().expect("read Fetch response");
            let rtt = t0.elapsed();
            out.rtt_us
                .push(rtt.as_micros().min(u128::from(u32::MAX)) as u32);
            out.fetches += 1;
            let mut b = frame.clone();
            let h = ResponseHeader::read(&mut b, ApiKey::Fetch.response_header_version(v))
                .expect("Fetch response header");
            assert_eq!(h.correlation_id, corr, "correlation id");
            let resp = FetchResponse::decode(&mut b, v).expect("decode Fetch response");
            assert_eq!(resp.error_code, 0, "Fetch top-level error");
            for t in &resp.responses {
                for pd in &t.partitions {
                    assert_eq!(
                        pd.error_code, 0,
                        "Fetch error for partition {}",
                        pd.partition_index
                    );
                    let i = self.req.topics[0]
                        .partitions
                        .iter()
                        .position(|p| p.partition == pd.partition_index)
                        .expect("response names a partition that was not fetched");
                    let fp = &mut self.req.topics[0].partitions[i];
                    let Some(records) = &pd.records else { continue };
                    for batch in split_batches(records.clone()) {
                        let batch = match batch {
                            Ok(b) => b,
                            // A partial batch at the end: fetched again from its start.
                            Err(RecordsError::Truncated { .. }) => break,
                            Err(e) => panic!("partition {}: bad batch: {e}", pd.partition_index),
                        };
                        batch.validate().unwrap_or_else(|e| {
                            panic!("partition {}: invalid batch: {e}", pd.partition_index)
                        });
                        let bh = batch.header();
                        assert_eq!(
                            bh.base_offset().0,
                            fp.fetch_offset,
                            "partition {}: batch does not start at the fetch offset",
                            pd.partition_index
                        );
                        let n = i64::from(bh.last_offset_delta) + 1;
                        assert_eq!(n, i64::from(bh.records_count), "records count");
                        counted += n as u64;
                        out.batch_bytes += batch.len() as u64;
                        fp.fetch_offset = bh.last_offset().0 + 1;
                    }
                    assert!(
                        pd.high_watermark >= fp.fetch_offset,
                        "partition {}: read past the high watermark",
                        pd.partition_index
                    );
                }
            }
            drop(resp);
            drop(b);
            self.conn.reclaim(frame);
        }
        out.buffer_allocs += std::mem::take(&mut self.conn.allocs);
        for (p, &e) in self.req.topics[0].partitions.iter().zip(&self.end) {
            assert_eq!(
                p.fetch_offset, e,
                "partition {}: pass ended at the wrong offset",
                p.partition
            );
        }
        out.records += counted;
    }
}

fn finish(mut r: RawResult, t0: Instant, expected: u64) -> RawResult {
    r.secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        r.records, expected,
        "raw fetch counted a different number of records than were produced"
    );
    r.rtt_us.sort_unstable();
    r
}

/// Round trips a one-connection run makes at least (repeating whole passes), so that its
/// p99.9 latency is not simply its maximum: with 8 partitions a pass over 300,000 records is
/// only about 40 Fetch round trips.
const MIN_ROUND_TRIPS: u64 = 1000;

/// All of `ends` (partition, end offset) over one connection, at least `passes` times and at
/// least [`MIN_ROUND_TRIPS`] round trips.
pub fn one_connection(
    addr: &str,
    topic: &str,
    ends: &[(i32, i64)],
    cfg: FetchConfig,
    passes: usize,
) -> RawResult {
    let (id, _) = topic_id(addr, topic).expect("Metadata");
    let mut f = Fetcher::new(addr, topic, id, ends, cfg).expect("connect");
    let mut r = RawResult::default();
    let expected: i64 = ends.iter().map(|&(_, e)| e).sum();
    let t0 = Instant::now();
    let mut done = 0u64;
    while done < passes as u64 || r.fetches < MIN_ROUND_TRIPS {
        f.pass(&mut r);
        done += 1;
    }
    r.passes = done;
    finish(r, t0, expected as u64 * done)
}

/// One connection (and one thread) per partition, `passes` times each, all at once (8
/// connections make enough round trips between them for the percentiles).
pub fn connection_per_partition(
    addr: &str,
    topic: &str,
    ends: &[(i32, i64)],
    cfg: FetchConfig,
    passes: usize,
) -> RawResult {
    let (id, _) = topic_id(addr, topic).expect("Metadata");
    let mut fetchers: Vec<Fetcher> = ends
        .iter()
        .map(|&pe| Fetcher::new(addr, topic, id, &[pe], cfg).expect("connect"))
        .collect();
    let expected: i64 = ends.iter().map(|&(_, e)| e).sum();
    let t0 = Instant::now();
    let parts: Vec<RawResult> = std::thread::scope(|s| {
        let handles: Vec<_> = fetchers
            .iter_mut()
            .map(|f| {
                s.spawn(move || {
                    let mut r = RawResult::default();
                    for _ in 0..passes {
                        f.pass(&mut r);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("fetch thread panicked"))
            .collect()
    });
    let mut r = RawResult {
        passes: passes as u64,
        ..Default::default()
    };
    for p in parts {
        r.batch_bytes += p.batch_bytes;
        r.records += p.records;
        r.fetches += p.fetches;
        r.rtt_us.extend(p.rtt_us);
        r.buffer_allocs += p.buffer_allocs;
    }
    finish(r, t0, expected as u64 * passes as u64)
}
