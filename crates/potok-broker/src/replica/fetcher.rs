//! One replica fetcher: the partitions this broker follows from one leader (or a share of
//! them with `num.replica.fetchers` > 1), fetched over one connection with one request in
//! flight (Kafka's `ReplicaFetcherThread`), as a tokio task.
//!
//! Each round asks every partition's [`potok_replication::FollowerState`] (through
//! [`Partition::next_follower_request`]) what to send: the partitions to fetch go into one
//! Fetch v15 (`ReplicaState` with this broker's epoch, KIP-903; `last_fetched_epoch`, v12+), the
//! ones that need the leader's log bounds after OFFSET_OUT_OF_RANGE into ListOffsets. Answers
//! are handled on a blocking thread (appends with the leader's offsets, truncation by epoch:
//! file IO) through [`Partition::on_follower_response`]; a failed request backs every partition
//! of it off for `replica.fetch.backoff.ms` and drops the connection. The leader's address is
//! its registration's listener in the metadata image, looked up at each connection.
//!
//! Bounds: one request in flight; a response is at most `replica.fetch.response.max.bytes`
//! plus one oversized batch, and the connection refuses frames over `socket.request.max.bytes`;
//! no lock is held across an `.await` (partitions lock internally in synchronous calls).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use potok_metadata::BrokerId;
use potok_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use potok_protocol::messages::{
    FetchRequest, FetchResponse, ListOffsetsPartition, ListOffsetsRequest, ListOffsetsResponse,
    ListOffsetsTopic,
};
use potok_protocol::{ApiKey, ErrorCode, Uuid};
use potok_records::{LeaderEpoch, Offset};
use potok_replication::{FetchAnswer, FetchError, FetchPosition, FollowerRequest};
use tokio::sync::watch;

use super::client::{ClientError, LeaderConnection};
use super::throttle;
use super::ReplicaSettings;
use crate::topics::{now_ms, Partition, TopicManager};

/// The Fetch version followers send: v15 carries `ReplicaState` (KIP-903) and topic ids.
pub const FOLLOWER_FETCH_VERSION: i16 = 15;
/// The ListOffsets version followers send (v4+ carries `current_leader_epoch`).
const LIST_OFFSETS_VERSION: i16 = 4;
/// How often an idle fetcher (every partition backing off or fenced) looks again.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// What one fetcher task needs.
pub(super) struct Fetcher {
    pub(super) topics: Arc<TopicManager>,
    pub(super) settings: ReplicaSettings,
    pub(super) leader: BrokerId,
    pub(super) max_response_bytes: usize,
    pub(super) partitions: watch::Receiver<Vec<Arc<Partition>>>,
    /// For this broker's dynamic configs (`follower.replication.throttled.rate`).
    pub(super) broker: Arc<crate::Broker>,
    pub(super) shutdown: watch::Receiver<bool>,
}

/// This fetcher's incremental fetch session with its leader (KIP-227): its id (0: none), the
/// epoch of the next request and the partitions as last sent, so a request carries only the
/// partitions whose position changed and lists the ones dropped as forgotten.
#[derive(Debug, Default)]
struct FollowerSession {
    id: i32,
    next_epoch: i32,
    sent: HashMap<(Uuid, i32), FetchPartition>,
}

/// A partition's request fields by topic id.
type Positioned = (Uuid, FetchPartition);

/// One partition of a round.
struct InFlight {
    partition: Arc<Partition>,
    position: FetchPosition,
    /// Held to `follower.replication.throttled.rate` (its bytes count in the follower quota).
    throttled: bool,
}

fn fetch_error(code: i16) -> FetchError {
    match ErrorCode::from_code(code) {
        Some(ErrorCode::FencedLeaderEpoch) => FetchError::FencedLeaderEpoch,
        Some(ErrorCode::UnknownLeaderEpoch) => FetchError::UnknownLeaderEpoch,
        Some(ErrorCode::NotLeaderOrFollower) => FetchError::NotLeaderOrFollower,
        Some(ErrorCode::OffsetOutOfRange) => FetchError::OffsetOutOfRange,
        _ => FetchError::Other,
    }
}

impl Fetcher {
    /// Runs until the replica manager drops this fetcher's partition list or shutdown.
    pub(super) async fn run(mut self) {
        let mut conn: Option<LeaderConnection> = None;
        let mut session = FollowerSession::default();
        let mut failing = false;
        loop {
            if *self.shutdown.borrow() || self.partitions.has_changed().is_err() {
                return;
            }
            let parts = self.partitions.borrow_and_update().clone();
            let now = now_ms();
            let mut fetches = Vec::new();
            let mut offsets = Vec::new();
            for p in &parts {
                match p.next_follower_request(now) {
                    Some(FollowerRequest::Fetch(mut position))
                        if position.leader == self.leader =>
                    {
                        // The broker epoch of this incarnation's latest registration (it may
                        // have registered after the partition became a follower).
                        position.replica_epoch = self.topics.broker_epoch();
                        fetches.push(InFlight {
                            partition: Arc::clone(p),
                            position,
                            throttled: false,
                        });
                    }
                    Some(FollowerRequest::LeaderOffsets {
                        leader,
                        current_leader_epoch,
                    }) if leader == self.leader => {
                        offsets.push((Arc::clone(p), current_leader_epoch));
                    }
                    _ => {}
                }
            }
            self.follower_throttle(&mut fetches);
            if fetches.is_empty() && offsets.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.partitions.changed() => {}
                    _ = self.shutdown.changed() => {}
                }
                continue;
            }
            let result = match conn.as_mut() {
                Some(c) => self.round(c, &mut session, &fetches, &offsets).await,
                None => match self.connect().await {
                    Ok(mut c) => {
                        let r = self.round(&mut c, &mut session, &fetches, &offsets).await;
                        conn = Some(c);
                        r
                    }
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(()) => {
                    if failing {
                        tracing::info!(
                            leader = self.leader.0,
                            "replica fetcher reached its leader again"
                        );
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(leader = self.leader.0, error = %e, "replica fetch failed; backing off");
                    }
                    failing = true;
                    conn = None;
                    session = FollowerSession::default();
                    let now = now_ms();
                    for f in &fetches {
                        f.partition.on_follower_request_failed(now);
                    }
                    for (p, _) in &offsets {
                        p.on_follower_request_failed(now);
                    }
                }
            }
        }
    }

    /// The follower-side replication throttle (`crate::replica::throttle`): marks the
    /// partitions held to `follower.replication.throttled.rate` and, while the rate received
    /// for them is over it, leaves them out of this round (Kafka's `buildFetch` with
    /// `shouldFollowerThrottle`); they keep their position and are fetched once the rate fell.
    fn follower_throttle(&self, fetches: &mut Vec<InFlight>) {
        let rate = throttle::follower_rate(
            &self
                .broker
                .dynamic
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        let Some(rate) = rate else {
            return;
        };
        let node = self.topics.node();
        self.topics.with_image(|image| {
            for f in fetches.iter_mut() {
                f.throttled = throttle::follower_throttled(
                    image,
                    node,
                    f.partition.topic(),
                    f.partition.index(),
                );
            }
        });
        if self
            .topics
            .follower_quota()
            .is_exceeded(rate, throttle::monotonic_ms())
        {
            fetches.retain(|f| !f.throttled);
        }
    }

    async fn connect(&self) -> Result<LeaderConnection, ClientError> {
        let Some((host, port)) = self.topics.broker_address(self.leader) else {
            return Err(ClientError::Malformed(format!(
                "broker {} has no registered listener",
                self.leader.0
            )));
        };
        LeaderConnection::connect(
            &host,
            port,
            format!("potok-replica-fetcher-{}", self.topics.node().0),
            self.max_response_bytes,
            Duration::from_millis(self.settings.socket_timeout_ms),
        )
        .await
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(
            self.settings
                .socket_timeout_ms
                .saturating_add(self.settings.fetch_wait_max_ms.max(0) as u64),
        )
    }

    async fn round(
        &self,
        conn: &mut LeaderConnection,
        session: &mut FollowerSession,
        fetches: &[InFlight],
        offsets: &[(Arc<Partition>, LeaderEpoch)],
    ) -> Result<(), ClientError> {
        if !offsets.is_empty() {
            self.leader_offsets(conn, offsets).await?;
        }
        if fetches.is_empty() {
            return Ok(());
        }
        // Every partition's position, by topic id (v13+).
        let mut current: Vec<(Uuid, FetchPartition)> = Vec::with_capacity(fetches.len());
        let mut index: HashMap<(Uuid, i32), usize> = HashMap::new();
        for (i, f) in fetches.iter().enumerate() {
            let Some(id) = self.topics.get(f.partition.topic()).map(|t| t.id()) else {
                continue;
            };
            current.push((
                id,
                FetchPartition {
                    partition: f.partition.index(),
                    current_leader_epoch: f.position.current_leader_epoch.0,
                    fetch_offset: f.position.fetch_offset.0,
                    last_fetched_epoch: f.position.last_fetched_epoch.map_or(-1, |e| e.0),
                    log_start_offset: f.position.log_start_offset.0,
                    partition_max_bytes: self.settings.fetch_max_bytes,
                    ..Default::default()
                },
            ));
            index.insert((id, f.partition.index()), i);
        }
        // KIP-227: a full request opens a session; later ones carry only what changed.
        let incremental = session.id != 0;
        let (to_send, forgotten): (Vec<&Positioned>, Vec<(Uuid, i32)>) = if incremental {
            let changed = current
                .iter()
                .filter(|(t, fp)| session.sent.get(&(*t, fp.partition)) != Some(fp))
                .collect();
            let forgotten = session
                .sent
                .keys()
                .filter(|k| !index.contains_key(*k))
                .copied()
                .collect();
            (changed, forgotten)
        } else {
            (current.iter().collect(), Vec::new())
        };
        let mut by_topic: Vec<FetchTopic> = Vec::new();
        for (t, fp) in &to_send {
            match by_topic.iter_mut().find(|x| x.topic_id == *t) {
                Some(x) => x.partitions.push(fp.clone()),
                None => by_topic.push(FetchTopic {
                    topic_id: *t,
                    partitions: vec![fp.clone()],
                    ..Default::default()
                }),
            }
        }
        let mut forgotten_topics: Vec<ForgottenTopic> = Vec::new();
        for (t, p) in &forgotten {
            match forgotten_topics.iter_mut().find(|x| x.topic_id == *t) {
                Some(x) => x.partitions.push(*p),
                None => forgotten_topics.push(ForgottenTopic {
                    topic_id: *t,
                    partitions: vec![*p],
                    ..Default::default()
                }),
            }
        }
        let req = FetchRequest {
            replica_state: ReplicaState {
                replica_id: self.topics.node().0,
                replica_epoch: self.topics.broker_epoch(),
                ..Default::default()
            },
            max_wait_ms: self.settings.fetch_wait_max_ms,
            min_bytes: self.settings.fetch_min_bytes,
            max_bytes: self.settings.fetch_response_max_bytes,
            isolation_level: 0,
            session_id: session.id,
            session_epoch: if incremental { session.next_epoch } else { 0 },
            topics: by_topic,
            forgotten_topics_data: forgotten_topics,
            ..Default::default()
        };
        let resp: FetchResponse = conn
            .call(ApiKey::Fetch, FOLLOWER_FETCH_VERSION, &req, self.timeout())
            .await?;
        if resp.error_code == ErrorCode::FetchSessionIdNotFound.code()
            || resp.error_code == ErrorCode::InvalidFetchSessionEpoch.code()
        {
            // The leader lost or refused the session (restart, eviction): start a new one with
            // the next, full request (Kafka's `FetchSessionHandler.handleError`).
            *session = FollowerSession::default();
            return Ok(());
        }
        if resp.error_code != 0 {
            return Err(ClientError::Malformed(format!(
                "fetch answered with error {}",
                resp.error_code
            )));
        }
        if resp.session_id == 0 {
            *session = FollowerSession::default();
        } else {
            if !incremental || resp.session_id != session.id {
                session.sent.clear();
            }
            session.id = resp.session_id;
            session.next_epoch = if incremental {
                session.next_epoch.checked_add(1).unwrap_or(1)
            } else {
                1
            };
            for k in &forgotten {
                session.sent.remove(k);
            }
            for (t, fp) in &to_send {
                session.sent.insert((*t, fp.partition), fp.clone());
            }
        }
        // Every answered partition: (partition, position, answer, records).
        let mut answers: Vec<(Arc<Partition>, FetchPosition, FetchAnswer, Bytes)> = Vec::new();
        let mut answered = vec![false; fetches.len()];
        let mut throttled_bytes = 0u64;
        for t in resp.responses {
            for pd in t.partitions {
                let Some(&i) = index.get(&(t.topic_id, pd.partition_index)) else {
                    continue;
                };
                answered[i] = true;
                if fetches[i].throttled {
                    let bytes = pd.records.as_ref().map_or(0, |r| r.len() as u64);
                    throttled_bytes += bytes;
                }
                let answer = if pd.error_code == 0 {
                    FetchAnswer::Data {
                        high_watermark: Offset(pd.high_watermark),
                        log_start_offset: Offset(pd.log_start_offset),
                        diverging_epoch: (pd.diverging_epoch.epoch >= 0
                            && pd.diverging_epoch.end_offset >= 0)
                            .then_some((
                                LeaderEpoch(pd.diverging_epoch.epoch),
                                Offset(pd.diverging_epoch.end_offset),
                            )),
                    }
                } else {
                    FetchAnswer::Error(fetch_error(pd.error_code))
                };
                answers.push((
                    Arc::clone(&fetches[i].partition),
                    fetches[i].position,
                    answer,
                    pd.records.unwrap_or_default(),
                ));
            }
        }
        if throttled_bytes > 0 {
            self.topics
                .follower_quota()
                .record(throttled_bytes, throttle::monotonic_ms());
        }
        // In an incremental session the leader leaves out what did not change; in a full
        // fetch a partition it did not answer is retried after the back-off.
        if !incremental {
            let now = now_ms();
            for (f, done) in fetches.iter().zip(&answered) {
                if !done {
                    f.partition.on_follower_request_failed(now);
                }
            }
        }
        // Appends and truncations are file IO: off the async workers.
        let handled = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for (p, position, answer, records) in answers {
                if let Err(e) = p.on_follower_response(&position, answer, records, now) {
                    tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "could not apply the leader's answer");
                    p.on_follower_request_failed(now);
                }
            }
        })
        .await;
        if let Err(e) = handled {
            tracing::error!(error = %e, "the replica fetcher's append task failed");
        }
        Ok(())
    }

    /// ListOffsets for the leader's earliest and latest offsets (as a replica: the latest is
    /// the leader's log end), then [`Partition::on_leader_offsets`].
    async fn leader_offsets(
        &self,
        conn: &mut LeaderConnection,
        parts: &[(Arc<Partition>, LeaderEpoch)],
    ) -> Result<(), ClientError> {
        let mut bounds: Vec<[Option<i64>; 2]> = vec![[None, None]; parts.len()];
        for (k, ts) in [-2i64, -1].into_iter().enumerate() {
            let mut topics: Vec<ListOffsetsTopic> = Vec::new();
            for (p, epoch) in parts {
                let lp = ListOffsetsPartition {
                    partition_index: p.index(),
                    current_leader_epoch: epoch.0,
                    timestamp: ts,
                    ..Default::default()
                };
                match topics.iter_mut().find(|t| t.name == p.topic()) {
                    Some(t) => t.partitions.push(lp),
                    None => topics.push(ListOffsetsTopic {
                        name: p.topic().to_string(),
                        partitions: vec![lp],
                        ..Default::default()
                    }),
                }
            }
            let req = ListOffsetsRequest {
                replica_id: self.topics.node().0,
                topics,
                ..Default::default()
            };
            let resp: ListOffsetsResponse = conn
                .call(
                    ApiKey::ListOffsets,
                    LIST_OFFSETS_VERSION,
                    &req,
                    self.timeout(),
                )
                .await?;
            for t in resp.topics {
                for pr in t.partitions {
                    if pr.error_code != 0 || pr.offset < 0 {
                        continue;
                    }
                    if let Some(i) = parts
                        .iter()
                        .position(|(p, _)| p.topic() == t.name && p.index() == pr.partition_index)
                    {
                        bounds[i][k] = Some(pr.offset);
                    }
                }
            }
        }
        let parts: Vec<(Arc<Partition>, [Option<i64>; 2])> = parts
            .iter()
            .map(|(p, _)| Arc::clone(p))
            .zip(bounds)
            .collect();
        let handled = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for (p, b) in parts {
                let applied = match b {
                    [Some(start), Some(end)] => p
                        .on_leader_offsets(Offset(start), Offset(end), now)
                        .map_err(|e| e.to_string()),
                    _ => Err("the leader did not answer its log bounds".to_string()),
                };
                if let Err(e) = applied {
                    tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "could not restart fetching at the leader's bounds");
                    p.on_follower_request_failed(now);
                }
            }
        })
        .await;
        if let Err(e) = handled {
            tracing::error!(error = %e, "the replica fetcher's truncation task failed");
        }
        Ok(())
    }
}
