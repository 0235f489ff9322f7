//! Incremental fetch sessions (KIP-227) for follower fetches: the leader remembers each
//! follower's partitions and fetch positions, so a follower sends only the partitions whose
//! position changed and the leader answers only the partitions with something new (records,
//! an error, a diverging epoch, a moved high watermark or log start). With thousands of
//! partitions per follower an idle round then costs a few bytes instead of a full list.
//!
//! Kafka's rules (`FetchSession`, `FetchManager`): a request with session id 0 and epoch 0 is a
//! full fetch that opens a session (its id comes back in the response); later requests name the
//! session with the next epoch (1, 2, ...), carry added or changed partitions and list removed
//! ones in `forgotten_topics_data`; a wrong epoch is INVALID_FETCH_SESSION_EPOCH, an unknown
//! id FETCH_SESSION_ID_NOT_FOUND (the follower then starts a new session); epoch -1 closes the
//! session. Sessions are kept only for follower fetches by topic id (v13+); consumers get no
//! session (session id 0), which Kafka also answers when its cache is full.
//!
//! Bounds: at most [`MAX_SESSIONS`] sessions (Kafka's `max.incremental.fetch.session.cache.slots`
//! default); when full, the least recently used session idle for [`EVICTABLE_AFTER`] is
//! evicted, else no session is created. A session holds one small entry per partition.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use potok_protocol::messages::fetch_request::FetchPartition;
use potok_protocol::{ErrorCode, Uuid};

/// Kafka's `max.incremental.fetch.session.cache.slots` default.
pub const MAX_SESSIONS: usize = 1000;
/// A session unused for this long may be evicted for a new one (Kafka's
/// `min.incremental.fetch.session.eviction.ms` default, 2 minutes).
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);

/// One partition of a session: the follower's last position and what the leader last sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    /// The request fields the follower last sent for it.
    pub fetch: FetchPartition,
    /// The high watermark and log start last answered (-1: never).
    pub sent_high_watermark: i64,
    pub sent_log_start: i64,
}

#[derive(Debug)]
struct Session {
    replica: i32,
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeMap<(Uuid, i32), SessionPartition>,
    last_used: Instant,
}

/// What a follower's request asks after the session rules.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionRequest {
    /// Answer in full, with no session (epoch -1, or no topic ids).
    Sessionless,
    /// Answer in full and open session `id` (0: the cache is full, none was opened).
    Open { id: i32 },
    /// Session `id`, incremental: the partitions to answer are the session's.
    Incremental { id: i32 },
}

/// The leader's sessions.
#[derive(Debug, Default)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: i32,
    sessions: HashMap<i32, Session>,
}

fn key(topic: Uuid, p: &FetchPartition) -> (Uuid, i32) {
    (topic, p.partition)
}

impl FetchSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies a follower's request (`session_id`, `session_epoch`, its partitions by topic id,
    /// the forgotten ones) at `now`. Returns what to answer, or the session error.
    pub fn begin(
        &self,
        replica: i32,
        session_id: i32,
        session_epoch: i32,
        partitions: &[(Uuid, FetchPartition)],
        forgotten: &[(Uuid, i32)],
        now: Instant,
    ) -> Result<SessionRequest, ErrorCode> {
        let mut g = self.lock();
        if session_id == 0 {
            if session_epoch != 0 {
                return Ok(SessionRequest::Sessionless);
            }
            if g.sessions.len() >= MAX_SESSIONS {
                let oldest = g
                    .sessions
                    .iter()
                    .filter(|(_, s)| now.duration_since(s.last_used) >= EVICTABLE_AFTER)
                    .min_by_key(|(_, s)| s.last_used)
                    .map(|(id, _)| *id);
                match oldest {
                    Some(id) => {
                        g.sessions.remove(&id);
                    }
                    None => return Ok(SessionRequest::Open { id: 0 }),
                }
            }
            let mut id = g.next_id;
            loop {
                id = if id >= i32::MAX - 1 { 1 } else { id + 1 };
                if !g.sessions.contains_key(&id) {
                    break;
                }
            }
            g.next_id = id;
            let partitions = partitions
                .iter()
                .map(|(t, p)| {
                    (
                        key(*t, p),
                        SessionPartition {
                            fetch: p.clone(),
                            sent_high_watermark: -1,
                            sent_log_start: -1,
                        },
                    )
                })
                .collect();
            g.sessions.insert(
                id,
                Session {
                    replica,
                    next_epoch: 1,
                    partitions,
                    last_used: now,
                },
            );
            return Ok(SessionRequest::Open { id });
        }
        if session_epoch == -1 {
            g.sessions.remove(&session_id);
            return Ok(SessionRequest::Sessionless);
        }
        let Some(s) = g.sessions.get_mut(&session_id) else {
            return Err(ErrorCode::FetchSessionIdNotFound);
        };
        if s.replica != replica {
            return Err(ErrorCode::FetchSessionIdNotFound);
        }
        if session_epoch != s.next_epoch {
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        s.next_epoch = if s.next_epoch == i32::MAX {
            1
        } else {
            s.next_epoch + 1
        };
        s.last_used = now;
        for k in forgotten {
            s.partitions.remove(k);
        }
        for (t, p) in partitions {
            let e = s.partitions.entry(key(*t, p)).or_insert(SessionPartition {
                fetch: p.clone(),
                sent_high_watermark: -1,
                sent_log_start: -1,
            });
            e.fetch = p.clone();
        }
        Ok(SessionRequest::Incremental { id: session_id })
    }

    /// The session's partitions (the ones an incremental request answers).
    pub fn partitions(&self, id: i32) -> Vec<(Uuid, SessionPartition)> {
        self.lock()
            .sessions
            .get(&id)
            .map(|s| {
                s.partitions
                    .iter()
                    .map(|((t, _), p)| (*t, p.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Records what was answered for partition `(topic, p)` of session `id`.
    pub fn answered(&self, id: i32, topic: Uuid, p: i32, high_watermark: i64, log_start: i64) {
        if let Some(e) = self
            .lock()
            .sessions
            .get_mut(&id)
            .and_then(|s| s.partitions.get_mut(&(topic, p)))
        {
            e.sent_high_watermark = high_watermark;
            e.sent_log_start = log_start;
        }
    }

    /// Open sessions (metrics, tests).
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(partition: i32, offset: i64) -> FetchPartition {
        FetchPartition {
            partition,
            fetch_offset: offset,
            ..Default::default()
        }
    }

    #[test]
    fn sessions_open_advance_by_epoch_and_close() {
        let s = FetchSessions::default();
        let t = Uuid([1; 16]);
        let now = Instant::now();
        let r = s.begin(2, 0, 0, &[(t, fp(0, 5)), (t, fp(1, 7))], &[], now);
        let Ok(SessionRequest::Open { id }) = r else {
            panic!("{r:?}")
        };
        assert!(id > 0);
        // Epoch 1 changes partition 0 and forgets partition 1.
        assert_eq!(
            s.begin(2, id, 1, &[(t, fp(0, 9))], &[(t, 1)], now),
            Ok(SessionRequest::Incremental { id })
        );
        let parts = s.partitions(id);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].1.fetch.fetch_offset, 9);
        // A replayed or skipped epoch, another replica, an unknown id are refused.
        assert_eq!(
            s.begin(2, id, 1, &[], &[], now),
            Err(ErrorCode::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            s.begin(3, id, 2, &[], &[], now),
            Err(ErrorCode::FetchSessionIdNotFound)
        );
        assert_eq!(
            s.begin(2, id + 1, 1, &[], &[], now),
            Err(ErrorCode::FetchSessionIdNotFound)
        );
        assert_eq!(
            s.begin(2, id, 2, &[], &[], now),
            Ok(SessionRequest::Incremental { id })
        );
        // Epoch -1 closes it.
        assert_eq!(
            s.begin(2, id, -1, &[], &[], now),
            Ok(SessionRequest::Sessionless)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn a_full_cache_evicts_only_idle_sessions() {
        let s = FetchSessions::default();
        let t0 = Instant::now();
        for _ in 0..MAX_SESSIONS {
            assert!(matches!(
                s.begin(2, 0, 0, &[], &[], t0),
                Ok(SessionRequest::Open { id }) if id > 0
            ));
        }
        assert_eq!(
            s.begin(2, 0, 0, &[], &[], t0),
            Ok(SessionRequest::Open { id: 0 })
        );
        let later = t0 + EVICTABLE_AFTER;
        assert!(matches!(
            s.begin(2, 0, 0, &[], &[], later),
            Ok(SessionRequest::Open { id }) if id > 0
        ));
        assert_eq!(s.len(), MAX_SESSIONS);
    }
}
