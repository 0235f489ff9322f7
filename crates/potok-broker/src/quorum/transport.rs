//! The CONTROLLER listener: raft-rs messages between the voters, and the connections of
//! broker-only nodes (observers).
//!
//! Each voter opens one outbound connection to every other voter and sends its messages on
//! it; what it receives arrives on the connections the others opened to it, so a connection
//! between voters carries one direction only. An observer has no listener (Kafka's broker-only
//! nodes have no controller listener): it opens one connection to every voter and the voter
//! answers on that same connection, so those carry both directions. Raft tolerates loss, duplication and reordering, so the
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
//! CONTROLLER listener, or [`KIND_FETCH`] and an observer's fetch, or [`KIND_FETCHED`] and a
//! voter's answer to it (`potok_controller::observer`'s encodings). A sender that is not a
//! voter is an observer: its fetches and control frames are heard, a Raft message from it
//! closes the connection (an observer never votes).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use potok_controller::observer::{FetchAnswer, FetchRequest};
use potok_controller::quorum::codec;
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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
/// A frame holding an observer's fetch.
pub const KIND_FETCH: u8 = 2;
/// A frame holding a voter's answer to an observer's fetch.
pub const KIND_FETCHED: u8 = 3;
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

async fn write_frame(s: &mut (impl AsyncWrite + Unpin), payload: &[u8]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(payload.len() + 4);
    buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    buf.extend_from_slice(payload);
    tokio::time::timeout(IO_TIMEOUT, s.write_all(&buf))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

async fn read_frame(s: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
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
    /// An observer's fetch.
    Fetch(FetchRequest),
    /// A voter's answer to an observer's fetch.
    Fetched(FetchAnswer),
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
            Frame::Fetch(r) => {
                let mut b = vec![KIND_FETCH];
                b.extend_from_slice(&r.encode());
                Some(b)
            }
            Frame::Fetched(a) => {
                let mut b = vec![KIND_FETCHED];
                b.extend_from_slice(&a.encode().ok()?);
                Some(b)
            }
        }
    }
}

/// The observers connected to this voter: id → (connection number, the queue of the task
/// that writes to its connection). Locked only to look up or replace an entry, never across
/// an await.
pub type Observers = Arc<Mutex<HashMap<u64, (u64, mpsc::Sender<Frame>)>>>;

/// Numbers the observers' connections, so that a closed connection removes only its own entry.
static CONNECTIONS: AtomicU64 = AtomicU64::new(0);

/// The senders of the per-peer queues, by voter id, and the observers connected here.
#[derive(Debug, Clone)]
pub struct Peers {
    queues: BTreeMap<u64, mpsc::Sender<Frame>>,
    observers: Observers,
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

    /// Queues an observer's fetch for voter `to`.
    pub fn send_fetch(&self, to: u64, request: FetchRequest) {
        self.send_frame(to, Frame::Fetch(request));
    }

    /// Queues the answer to observer `to`'s fetch on its connection (dropped when it is gone:
    /// the observer fetches again).
    pub fn send_fetched(&self, to: u64, answer: FetchAnswer) {
        self.send_frame(to, Frame::Fetched(answer));
    }

    fn send_frame(&self, to: u64, frame: Frame) {
        let q = match self.queues.get(&to) {
            Some(q) => q.clone(),
            None => {
                let observers = self.observers.lock().unwrap_or_else(|e| e.into_inner());
                match observers.get(&to) {
                    Some((_, q)) => q.clone(),
                    None => return,
                }
            }
        };
        if q.try_send(frame).is_err() {
            tracing::debug!(to, "frame dropped: peer queue full");
        }
    }

    /// The observers connected to this node (shared with [`serve`]).
    pub fn observers(&self) -> Observers {
        self.observers.clone()
    }
}

/// Starts one sender task per other voter; returns the queues' senders. An observer passes
/// its driver's `inbox`: the voters answer on the connections it opened, and what they send is
/// read there.
pub fn start_peers(
    me: i32,
    cluster_id: &str,
    voters: &BTreeMap<i32, String>,
    shutdown: &watch::Receiver<bool>,
    inbox: Option<SyncSender<Event>>,
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
            inbox.clone(),
            shutdown.clone(),
        ));
    }
    Peers {
        queues,
        observers: Default::default(),
    }
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
    inbox: Option<SyncSender<Event>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut conn: Option<tokio::net::tcp::OwnedWriteHalf> = None;
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
                    let (read, write) = s.into_split();
                    if let Some(inbox) = &inbox {
                        // An observer: the voter's answers come back on this connection.
                        tokio::spawn(read_answers(id, read, inbox.clone(), shutdown.clone()));
                    }
                    conn = Some(write);
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

/// On an observer: reads voter `from`'s frames (fetch answers, controller replies) from the
/// connection the observer opened, until it closes.
async fn read_answers(
    from: i32,
    mut read: tokio::net::tcp::OwnedReadHalf,
    inbox: SyncSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut read) => match f { Ok(f) => f, Err(_) => return },
            _ = shutdown.changed() => return,
        };
        let event = match frame.split_first() {
            Some((&KIND_FETCHED, body)) => match FetchAnswer::decode(body) {
                Ok(answer) => Event::Fetched { from, answer },
                Err(e) => {
                    tracing::debug!(from, error = %e, "malformed fetch answer; connection closed");
                    return;
                }
            },
            Some((&KIND_CONTROL, body)) => Event::Control {
                from,
                data: body.to_vec(),
            },
            _ => {
                tracing::debug!(from, "unexpected frame from a voter; connection closed");
                return;
            }
        };
        match inbox.try_send(event) {
            Ok(()) | Err(std::sync::mpsc::TrySendError::Full(_)) => {}
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Accepts the other voters' and the observers' connections on the CONTROLLER listener and
/// hands their messages to the driver; `observers` receives each observer's reply queue.
pub async fn serve(
    listener: TcpListener,
    cluster_id: String,
    voters: Vec<i32>,
    inbox: SyncSender<Event>,
    observers: Observers,
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
        let (cid, voters, inbox, observers, shutdown) = (
            cluster_id.clone(),
            voters.clone(),
            inbox.clone(),
            observers.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = inbound(stream, &cid, &voters, inbox, observers, shutdown).await {
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
    observers: Observers,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let first = tokio::time::timeout(IO_TIMEOUT, read_frame(&mut s))
        .await
        .map_err(|_| bad("no handshake".into()))??;
    let (from, cid) = parse_hello(&first).ok_or_else(|| bad("bad handshake".into()))?;
    if cid != cluster_id {
        tracing::warn!(from, their_cluster = %cid, our_cluster = %cluster_id, "refused a node of another cluster (INCONSISTENT_CLUSTER_ID)");
        return Err(bad("inconsistent cluster id".into()));
    }
    if from < 0 {
        return Err(bad(format!("node id {from}")));
    }
    if voters.contains(&from) {
        return read_inbound(s, from, true, inbox, shutdown).await;
    }
    // An observer: its answers go back on this connection, written by a task of their own so
    // that a slow observer never blocks the driver (its queue is bounded; a full one drops).
    let (read, mut write) = s.into_split();
    let (tx, mut rx) = mpsc::channel::<Frame>(PEER_QUEUE);
    let conn = CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    observers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(from as u64, (conn, tx));
    tracing::info!(observer = from, "a broker-only node (observer) connected");
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            let Some(bytes) = frame.encode() else {
                continue;
            };
            if write_frame(&mut write, &bytes).await.is_err() {
                return;
            }
        }
    });
    let r = read_inbound(read, from, false, inbox, shutdown).await;
    {
        let mut o = observers.lock().unwrap_or_else(|e| e.into_inner());
        if o.get(&(from as u64)).is_some_and(|(c, _)| *c == conn) {
            o.remove(&(from as u64));
        }
    }
    writer.abort();
    r
}

/// Reads a connected node's frames: a voter's Raft messages and control frames, or an
/// observer's fetches and control frames.
async fn read_inbound(
    mut s: impl AsyncRead + Unpin,
    from: i32,
    voter: bool,
    inbox: SyncSender<Event>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let bad = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut s) => f?,
            _ = shutdown.changed() => return Ok(()),
        };
        let event = match frame.split_first() {
            Some((&KIND_RAFT, body)) if voter => {
                let msg = codec::decode_message(body).map_err(|e| bad(e.to_string()))?;
                // A message must come from the voter that shook hands; anything else is
                // dropped.
                if msg.from != from as u64 {
                    continue;
                }
                Event::Message(msg)
            }
            Some((&KIND_RAFT, _)) => {
                return Err(bad(format!(
                    "node {from} is not a voter: a Raft message from it is refused"
                )))
            }
            // The sender of a controller frame is the node that shook hands.
            Some((&KIND_CONTROL, body)) => Event::Control {
                from,
                data: body.to_vec(),
            },
            Some((&KIND_FETCH, body)) if !voter => Event::Fetch {
                from,
                request: FetchRequest::decode(body).map_err(|e| bad(e.to_string()))?,
            },
            _ => return Err(bad("unknown frame kind".into())),
        };
        match inbox.try_send(event) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(_)) => {
                tracing::debug!(from, "frame dropped: driver inbox full");
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
        let observers = Observers::default();
        tokio::spawn(serve(
            listener,
            "ours".into(),
            vec![1, 2],
            tx,
            observers.clone(),
            shutdown,
        ));
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
        // A node that is not a voter is an observer: a Raft message from it closes its
        // connection and reaches nobody.
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, &hello(9, "ours")).await;
        let _ = write_frame(&mut s, &Frame::Raft(message(9, 1)).encode().unwrap()).await;
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(received().is_empty());
        // Its fetch reaches the driver, and the answer comes back on its own connection.
        let mut s = TcpStream::connect(addr).await.unwrap();
        send(&mut s, &hello(9, "ours")).await;
        let request = FetchRequest {
            from_index: 3,
            max_bytes: 100,
            read: 0,
        };
        send(&mut s, &Frame::Fetch(request.clone()).encode().unwrap()).await;
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Fetch { from, request: r }) => assert_eq!((from, r), (9, request)),
            other => panic!("{other:?}"),
        }
        let peers = Peers {
            queues: BTreeMap::new(),
            observers,
        };
        let answer = FetchAnswer {
            leader: 1,
            term: 2,
            commit: 3,
            read: Some((1, 3)),
            entries: Vec::new(),
        };
        peers.send_fetched(9, answer.clone());
        let frame = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut s))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frame[0], KIND_FETCHED);
        assert_eq!(FetchAnswer::decode(&frame[1..]).unwrap(), answer);
        drop(s);
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
