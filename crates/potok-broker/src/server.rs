//! The network server: accepts connections (at most `max.connections` at once), reads
//! length-prefixed request frames, dispatches them through the [`crate::registry::Registry`]
//! and writes the responses back.
//!
//! # One connection
//!
//! A reader task reads frames and handles requests strictly one after another (Kafka mutes a
//! connection while a request is in flight, and clients rely on responses arriving in request
//! order); it hands each reply to a writer task through a bounded channel
//! ([`RESPONSE_QUEUE`]), so encoding and writing one response overlaps with reading and
//! handling the next, and a client that does not read its responses stalls its own reader
//! instead of growing a buffer.
//!
//! A frame is validated against `socket.request.max.bytes` from its 4-byte length prefix, and
//! the read buffer only grows with bytes that actually arrive, so an announced size costs
//! nothing. A malformed, truncated or oversized frame, an unknown API key or a version that
//! is not advertised closes that connection with a log line; nothing else is affected. The
//! exception is ApiVersions at an unsupported version, which is answered with
//! `UNSUPPORTED_VERSION` and the v0 body listing the supported versions (KIP-511), so a newer
//! client can retry at a version we know.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, BytesMut};
use potok_protocol::messages::{ApiVersionsResponse, RequestHeader};
use potok_protocol::{
    decode_request, encode_response_frame, read_frame_len, ApiKey, DecodeError, ErrorCode, Response,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use crate::registry::{Reply, RequestContext};
use crate::sendfile::{encode_fetch, write_parts};
use crate::Broker;

/// Responses queued between a connection's reader and writer.
pub const RESPONSE_QUEUE: usize = 16;

/// The read buffer's growth when no frame length is known yet.
const READ_CHUNK: usize = 64 * 1024;

/// The most the read buffer grows at once for a frame whose length is known.
const FRAME_RESERVE_STEP: usize = 8 << 20;

/// Accepts connections until shutdown.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let permits = Arc::new(Semaphore::new(broker.config.max_connections));
    let mut shutdown = broker.shutdown_signal();
    if let Some(q) = &broker.quorum {
        // No client is read before this node's metadata caught up with the quorum's and it is
        // unfenced (`Quorum::caught_up`): the listener is bound, so clients connect and wait in
        // the accept queue meanwhile.
        tokio::select! {
            () = q.caught_up() => {}
            _ = shutdown.changed() => return,
        }
    }
    loop {
        // Waiting for a permit before accepting leaves further clients in the kernel's accept
        // queue instead of holding their sockets.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let b = Arc::clone(&broker);
        tokio::spawn(async move {
            b.metrics.connection_opened();
            connection(Arc::clone(&b), stream, peer).await;
            b.metrics.connection_closed();
            drop(permit);
        });
    }
}

enum Outgoing {
    Reply {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
        reply: Reply,
        started: Instant,
    },
    /// ApiVersions v0 error answer (header v0, body v0).
    Raw(BytesMut),
}

async fn connection(broker: Arc<Broker>, stream: TcpStream, peer: SocketAddr) {
    tracing::debug!(%peer, "connection opened");
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Outgoing>(RESPONSE_QUEUE);
    let writer = tokio::spawn(writer(Arc::clone(&broker), w, rx, peer));
    let mut shutdown = broker.shutdown_signal();
    tokio::select! {
        res = reader(&broker, r, tx, peer) => {
            if let Err(msg) = res {
                tracing::info!(%peer, "closing connection: {msg}");
            }
        }
        _ = shutdown.changed() => {}
    }
    // The writer finishes queued responses and ends when the channel closes.
    let _ = writer.await;
    tracing::debug!(%peer, "connection closed");
}

async fn reader(
    broker: &Arc<Broker>,
    mut r: OwnedReadHalf,
    tx: mpsc::Sender<Outgoing>,
    peer: SocketAddr,
) -> Result<(), String> {
    let max = broker.config.socket_request_max_bytes;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        // Read until one whole frame is buffered.
        let frame = loop {
            if buf.len() >= 4 {
                let mut p = [0u8; 4];
                p.copy_from_slice(&buf[..4]);
                let len = read_frame_len(&p, max).map_err(|e| e.to_string())?;
                if buf.len() >= 4 + len {
                    buf.advance(4);
                    let frame = buf.split_to(len);
                    // Give the frame its allocation to itself: the bytes already read of the
                    // next frame (at most one read's worth) move to a fresh buffer, so that a
                    // single-partition Produce hands the log a uniquely owned batch it can
                    // rewrite in place instead of copying the whole batch.
                    buf = if buf.is_empty() {
                        BytesMut::new()
                    } else {
                        BytesMut::from(&buf[..])
                    };
                    break frame.freeze();
                }
                // Room for the rest of the frame in one allocation (so it is not copied while
                // it grows), but at most FRAME_RESERVE_STEP beyond what has arrived: an
                // announced size alone cannot make the broker allocate more than that, and the
                // pages of an allocation only become resident as bytes arrive in them.
                let need = 4 + len - buf.len();
                buf.reserve(need.min(FRAME_RESERVE_STEP));
            } else if buf.capacity() - buf.len() < 4 {
                buf.reserve(READ_CHUNK);
            }
            let n = r
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("read error: {e}"))?;
            if n == 0 {
                if buf.is_empty() {
                    return Ok(());
                }
                return Err(format!(
                    "client closed the connection mid-frame ({} bytes buffered)",
                    buf.len()
                ));
            }
        };
        let started = Instant::now();
        let (header, request) = match decode_request(frame) {
            Ok(x) => x,
            Err(DecodeError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                api_version,
                correlation_id,
            }) => {
                tracing::debug!(%peer, api_version, "ApiVersions at an unsupported version; answering with v0");
                let out =
                    api_versions_fallback(broker, correlation_id).map_err(|e| e.to_string())?;
                tx.send(Outgoing::Raw(out))
                    .await
                    .map_err(|_| "writer gone".to_string())?;
                continue;
            }
            Err(e) => return Err(format!("bad request: {e}")),
        };
        let key = match ApiKey::from_i16(header.request_api_key) {
            Some(k) => k,
            None => return Err("unknown api key".into()),
        };
        let version = header.request_api_version;
        let Some(reg) = broker.registry.get(key) else {
            return Err(format!("{key:?} is not supported"));
        };
        if version < reg.min_version || version > reg.max_version {
            if key == ApiKey::ApiVersions {
                let out = api_versions_fallback(broker, header.correlation_id)
                    .map_err(|e| e.to_string())?;
                tx.send(Outgoing::Raw(out))
                    .await
                    .map_err(|_| "writer gone".to_string())?;
                continue;
            }
            return Err(format!(
                "{key:?} v{version} is not supported (supported: v{}-v{})",
                reg.min_version, reg.max_version
            ));
        }
        let correlation_id = header.correlation_id;
        let ctx = RequestContext {
            header: header_without_tags(header),
            api_key: key,
            api_version: version,
            peer,
        };
        let reply = (reg.handler)(Arc::clone(broker), ctx, request)
            .await
            .map_err(|e| format!("{key:?} failed: {e}"))?;
        tx.send(Outgoing::Reply {
            api_key: key,
            version,
            correlation_id,
            reply,
            started,
        })
        .await
        .map_err(|_| "writer gone".to_string())?;
    }
}

fn header_without_tags(h: RequestHeader) -> RequestHeader {
    h
}

fn api_versions_fallback(
    broker: &Broker,
    correlation_id: i32,
) -> Result<BytesMut, potok_protocol::EncodeError> {
    let mut body: ApiVersionsResponse = crate::handlers::api_versions::response(broker);
    body.error_code = ErrorCode::UnsupportedVersion.code();
    let mut out = BytesMut::new();
    encode_response_frame(&mut out, ApiKey::ApiVersions, 0, correlation_id, &body)?;
    Ok(out)
}

async fn writer(
    broker: Arc<Broker>,
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Outgoing>,
    peer: SocketAddr,
) {
    let mut buf = BytesMut::new();
    while let Some(out) = rx.recv().await {
        let res = match out {
            Outgoing::Raw(b) => w.write_all(&b).await,
            Outgoing::Reply {
                api_key,
                version,
                correlation_id,
                reply,
                started,
            } => {
                let r = match reply {
                    Reply::None => Ok(()),
                    Reply::Response(resp) => {
                        buf.clear();
                        match encode(&mut buf, api_key, version, correlation_id, &resp) {
                            Ok(()) => w.write_all(&buf).await,
                            Err(e) => Err(e),
                        }
                    }
                    Reply::Fetch(f) => {
                        let r = encode_fetch(&f.body, f.slices, version, correlation_id);
                        match r {
                            Ok(parts) => write_parts(&mut w, parts).await.map(|_| ()),
                            Err(e) => Err(e),
                        }
                    }
                };
                broker.metrics.request_done(api_key, started.elapsed());
                r
            }
        };
        if let Err(e) = res {
            tracing::info!(%peer, error = %e, "closing connection: write failed");
            break;
        }
        // Large buffers from an occasional big response are not kept for the connection's life.
        if buf.capacity() > 1 << 20 {
            buf = BytesMut::new();
        }
    }
    let _ = w.shutdown().await;
}

fn encode(
    buf: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    resp: &Response,
) -> std::io::Result<()> {
    encode_response_frame(buf, api_key, version, correlation_id, resp)
        .map_err(|e| std::io::Error::other(e.to_string()))
}
