//! The CONTROLLER listener: raft-rs messages between the voters.
//!
//! Each voter opens one outbound connection to every other voter and sends its messages on
//! it; what it receives arrives on the connections the others opened to it, so a connection
//! carries one direction only. Raft tolerates loss, duplication and reordering, so the
//! transport drops rather than waits: a full queue drops the message, a broken connection
//! drops what was being written and reconnects with backoff.
//!
//! # Wire format
//!
//! Every frame is `u32 BE length` + payload, at most [`MAX_MESSAGE_BYTES`]. The first frame
//! of a connection is the handshake: `b"PTKQ"`, `u8` version 1, `u32 BE` sender node id,
//! `u16 BE` length + the cluster id in UTF-8. A receiver closes connections from nodes that
//! are not voters or that name another cluster (Kafka's INCONSISTENT_CLUSTER_ID). Every later
//! frame starts with a kind byte: [`KIND_RAFT`] and one raft-rs `Message` in its protobuf
//! encoding, or [`KIND_CONTROL`] and a broker-to-controller request or its reply
//! (BrokerRegistration, BrokerHeartbeat; see `lifecycle`), which Kafka sends on the same
//! CONTROLLER listener.

use std::collections::BTreeMap;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use potok_controller::quorum::codec;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::driver::Event;

/// Largest frame (raft-rs messages are bounded by `max_size_per_msg`, 1 MiB, plus headers).
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// Messages queued per peer before new ones are dropped.
pub const PEER_QUEUE: usize = 1024;
const MAGIC: &[u8; 4] = b"PTKQ";
const VERSION: u8 = 2;
/// A frame holding a raft-rs message.
pub const KIND_RAFT: u8 = 0;
/// A frame holding a controller request or reply.
pub const KIND_CONTROL: u8 = 1;
/// Connect, handshake and write timeout.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The handshake frame's payload.
pub fn hello(from: i32, cluster_id: &str) -> Vec<u8> {
    let mut b = MAGIC.to_vec();
    b.push(VERSION);
    b.extend_from_slice(&from.to_be_bytes());
    b.extend_from_slice(&(cluster_id.len() as u16).to_be_bytes());
    b.extend_from_slice(cluster_id.as_bytes());
    b
}

/// Parses a handshake: the sender id and cluster id.
pub fn parse_hello(b: &[u8]) -> Option<(i32, String)> {
    if b.get(..4)? != MAGIC || *b.get(4)? != VERSION {
        return None;
    }
    let id = i32::from_be_bytes(b.get(5..9)?.try_into().ok()?);
    let n = u16::from_be_bytes(b.get(9..11)?.try_into().ok()?) as usize;
    let cid = std::str::from_utf8(b.get(11..11 + n)?).ok()?;
    (b.len() == 11 + n).then(|| (id, cid.to_string()))
}

async fn write_frame(s: &mut TcpStream, payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 4);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    tokio::time::timeout(IO_TIMEOUT, s.write_all(&buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

async fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let n = s.read_u32().await? as usize;
    if n > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {n} bytes"),
        ));
    }
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).await?;
    Ok(b)
}

/// What goes to a peer.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A raft-rs message.
    Raft(Message),
    /// A controller request or reply (already encoded by `lifecycle`).
    Control(Vec<u8>),
}

impl Frame {
    /// The frame's payload: the kind byte and the body.
    pub fn encode(&self) -> Option<Vec<u8>> {
        match self {
            Frame::Raft(m) => {
                let body = codec::encode(m).ok()?;
                let mut b = Vec::with_capacity(body.len() + 1);
                b.push(KIND_RAFT);
                b.extend_from_slice(&body);
                Some(b)
            }
            Frame::Control(body) => {
                let mut b = Vec::with_capacity(body.len() + 1);
                b.push(KIND_CONTROL);
                b.extend_from_slice(body);
                Some(b)
            }
        }
    }
}

/// The senders of the per-peer queues, by voter id.
#[derive(Debug, Clone)]
pub struct Peers {
    queues: BTreeMap<u64, mpsc::Sender<Frame>>,
}

impl Peers {
    /// Queues `msg` for `to`; dropped when the queue is full or `to` is unknown (Raft resends).
    pub fn send(&self, to: u64, msg: Message) {
        self.send_frame(to, Frame::Raft(msg));
    }

    /// Queues a controller request or reply for `to`; dropped like a raft message when the
    /// queue is full (the broker resends its heartbeat at the next interval).
    pub fn send_control(&self, to: u64, body: Vec<u8>) {
        self.send_frame(to, Frame::Control(body));
    }

    fn send_frame(&self, to: u64, frame: Frame) {
        if let Some(q) = self.queues.get(&to) {
            if q.try_send(frame).is_err() {
                tracing::debug!(to, "frame dropped: peer queue full");
            }
        }
    }
}

/// Starts one sender task per other voter; returns the queues' senders.
pub fn start_peers(
    me: i32,
    cluster_id: &str,
    voters: &BTreeMap<i32, String>,
    shutdown: &watch::Receiver<bool>,
) -> Peers {
    let mut queues = BTreeMap::new();
    for (&id, addr) in voters.iter().filter(|(&id, _)| id != me) {
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        queues.insert(id as u64, tx);
        tokio::spawn(peer_task(
            id,
            addr.clone(),
            hello(me, cluster_id),
            rx,
            shutdown.clone(),
        ));
    }
    Peers { queues }
}

async fn connect(addr: &str, hello: &[u8]) -> std::io::Result<TcpStream> {
    let mut s = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    s.set_nodelay(true)?;
    write_frame(&mut s, hello).await?;
    Ok(s)
}

async fn peer_task(
    id: i32,
    addr: String,
    hello: Vec<u8>,
    mut rx: mpsc::Receiver<Frame>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut conn: Option<TcpStream> = None;
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m { Some(m) => m, None => return },
            _ = shutdown.changed() => return,
        };
        if conn.is_none() {
            match connect(&addr, &hello).await {
                Ok(s) => {
                    tracing::info!(peer = id, %addr, "connected to voter");
                    backoff = BACKOFF_MIN;
                    conn = Some(s);
                }
                Err(e) => {
                    tracing::debug!(peer = id, %addr, error = %e, "cannot reach voter; retrying");
                    // Messages queued meanwhile are stale by the time the peer is back: Raft
                    // sends fresh ones, so the queue is emptied rather than replayed.
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => return,
                    }
                    while rx.try_recv().is_ok() {}
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        let Some(bytes) = msg.encode() else {
            continue;
        };
        if let Some(s) = conn.as_mut() {
            if let Err(e) = write_frame(s, &bytes).await {
                tracing::info!(peer = id, error = %e, "connection to voter lost; reconnecting");
                conn = None;
            }
        }
    }
}

/// Accepts the other voters' connections on the CONTROLLER listener and hands their
/// messages to the driver.
pub async fn serve(
    listener: TcpListener,
    cluster_id: String,
    voters: Vec<i32>,
    inbox: SyncSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                tokio::time::sleep(BACKOFF_MIN).await;
                continue;
            }
        };
        let (cid, voters, inbox, shutdown) = (
            cluster_id.clone(),
            voters.clone(),
            inbox.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = inbound(stream, &cid, &voters, inbox, shutdown).await {
                tracing::debug!(%peer, error = %e, "controller connection closed");
            }
        });
    }
}

async fn inbound(
    mut s: TcpStream,
    cluster_id: &str,
    voters: &[i32],
    inbox: SyncSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let first = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut s))
        .await
        .map_err(|_| bad("no handshake".into()))??;
    let (from, cid) = parse_hello(&first).ok_or_else(|| bad("bad handshake".into()))?;
    if cid != cluster_id {
        tracing::warn!(from, their_cluster = %cid, our_cluster = %cluster_id, "refused a voter of another cluster (INCONSISTENT_CLUSTER_ID)");
        return Err(bad("inconsistent cluster id".into()));
    }
    if !voters.contains(&from) {
        return Err(bad(format!("node {from} is not a voter")));
    }
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut s) => f?,
            _ = shutdown.changed() => return Ok(()),
        };
        let event = match frame.split_first() {
            Some((&KIND_RAFT, body)) => {
                let msg = codec::decode_message(body).map_err(|e| bad(e.to_string()))?;
                // A message must come from the voter that shook hands; anything else is
                // dropped.
                if msg.from != from as u64 {
                    continue;
                }
                Event::Message(msg)
            }
            // The sender of a controller frame is the voter that shook hands.
            Some((&KIND_CONTROL, body)) => Event::Control {
                from,
                data: body.to_vec(),
            },
            _ => return Err(bad("unknown frame kind".into())),
        };
        match inbox.try_send(event) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                tracing::debug!(from, "raft message dropped: driver inbox full");
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: u64, to: u64) -> Message {
        Message {
            from,
            to,
            term: 7,
            ..Default::default()
        }
    }

    async fn send(s: &mut TcpStream, payload: &[u8]) {
        write_frame(s, payload).await.unwrap();
    }

    // Multi-threaded: the test blocks on the driver's std channel while the server runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_voters_of_this_cluster_are_heard_and_only_as_themselves() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve(listener, "ours".into(), vec![1, 2], tx, shutdown));
        let received = || {
            let mut got = Vec::new();
            while let Ok(Event::Message(m)) = rx.recv_timeout(Duration::from_millis(300)) {
                got.push((m.from, m.term));
            }
            got
        };
        // Another cluster's voter: the connection is closed, nothing reaches the driver.
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, &hello(2, "theirs")).await;
        let _ = write_frame(&mut s, &Frame::Raft(message(2, 1)).encode().unwrap()).await;
        let mut buf = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(received().is_empty());
        // A node that is not a voter: refused too.
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, &hello(9, "ours")).await;
        let _ = write_frame(&mut s, &Frame::Raft(message(9, 1)).encode().unwrap()).await;
        assert!(received().is_empty());
        // A voter of this cluster: its messages arrive; one claiming another sender is dropped.
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, &hello(2, "ours")).await;
        send(&mut s, &Frame::Raft(message(1, 1)).encode().unwrap()).await;
        send(&mut s, &Frame::Raft(message(2, 1)).encode().unwrap()).await;
        assert_eq!(received(), vec![(2, 7)]);
        // A frame above the bound closes the connection before anything is allocated.
        s.write_all(&((MAX_MESSAGE_BYTES as u32) + 1).to_be_bytes())
            .await
            .unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    }

    #[test]
    fn handshakes_round_trip_and_garbage_is_refused() {
        assert_eq!(parse_hello(&hello(3, "abc")), Some((3, "abc".into())));
        let h = hello(3, "abc");
        for cut in 0..h.len() {
            assert_eq!(parse_hello(&h[..cut]), None);
        }
        let mut long = h.clone();
        long.push(0);
        assert_eq!(parse_hello(&long), None);
        assert_eq!(parse_hello(b"PTKQ\x01\0\0\0\x01\0\0"), None);
    }
}
