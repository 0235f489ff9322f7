//! Producer ids in a cluster: blocks handed out by the active controller (AllocateProducerIds,
//! KIP-730), so that no two brokers ever issue the same id.
//!
//! Kafka's `RPCProducerIdManager`: the broker holds its current block and asks the controller
//! for the next one once 90% of the current block is used (`PID_PREFETCH_THRESHOLD`), so
//! InitProducerId rarely waits. Each block is committed in the metadata log (a
//! `ProducerIdsRecord` moving the cluster's next id past it) before the controller answers, so a
//! block is never handed to two brokers, whichever controller is active, and ids of a block are
//! lost (never reissued) when the broker restarts. When no block is at hand, InitProducerId
//! waits for one a bounded time and then answers `COORDINATOR_LOAD_IN_PROGRESS`, the retriable
//! error Kafka's broker gives in that case.
//!
//! Thread-safety: one `std::sync::Mutex` (a leaf lock, never held across an `.await`) guards the
//! blocks; at most one request for a block is in flight, run as its own task so that a
//! cancelled InitProducerId cannot leave the manager waiting forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use potok_protocol::ErrorCode;
use tokio::sync::Notify;

/// Kafka's `PID_PREFETCH_THRESHOLD`: the next block is asked for once this share of the
/// current one is used.
const PREFETCH_PERCENT: i64 = 90;
/// How long an InitProducerId waits for a block before answering COORDINATOR_LOAD_IN_PROGRESS,
/// which clients retry. Kafka's `RPCProducerIdManager` does not wait at all (KAFKA-14694); a
/// short wait saves a round trip when the block is on its way, and a long one held requests
/// past clients' timeouts while a restarted broker could not register yet (its old session
/// still valid), which is when a block cannot come.
const WAIT_FOR_BLOCK: Duration = Duration::from_secs(2);
/// How long one request for a block may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause after a refused request for a block (not registered yet, no controller), so that
/// waiting requests do not spin.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// A pending request for a block: `(first id, length)` or Kafka's error code.
pub type BlockFuture = Pin<Box<dyn Future<Output = Result<(i64, i32), ErrorCode>> + Send>>;

/// Where blocks come from (the quorum's active controller; a stand-in in tests).
pub type BlockSource = Box<dyn Fn() -> BlockFuture + Send + Sync>;

#[derive(Debug, Clone, Copy)]
struct Block {
    start: i64,
    next: i64,
    end: i64,
}

impl Block {
    fn prefetch_at(&self) -> i64 {
        self.start + (self.end - self.start) * PREFETCH_PERCENT / 100
    }
}

#[derive(Debug, Default)]
struct State {
    current: Option<Block>,
    prefetched: Option<Block>,
    fetching: bool,
}

impl State {
    /// The next id, moving to the prefetched block when the current one is used up.
    fn take(&mut self) -> Option<i64> {
        loop {
            match &mut self.current {
                Some(b) if b.next < b.end => {
                    let id = b.next;
                    b.next += 1;
                    return Some(id);
                }
                _ => {
                    self.current = Some(self.prefetched.take()?);
                }
            }
        }
    }

    /// Whether the next block should be asked for now.
    fn wants_block(&self) -> bool {
        !self.fetching
            && self.prefetched.is_none()
            && self.current.is_none_or(|b| b.next >= b.prefetch_at())
    }
}

/// The cluster's producer-id manager. See the module docs.
pub struct ClusterProducerIds {
    source: BlockSource,
    state: Mutex<State>,
    changed: Notify,
}

impl std::fmt::Debug for ClusterProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterProducerIds")
            .field("state", &self.state)
            .finish()
    }
}

impl ClusterProducerIds {
    /// A manager with no block yet; the first InitProducerId asks `source` for one.
    pub fn new(source: BlockSource) -> Arc<ClusterProducerIds> {
        Arc::new(ClusterProducerIds {
            source,
            state: Mutex::new(State::default()),
            changed: Notify::new(),
        })
    }

    /// Blocks from the active controller of `quorum`.
    pub fn from_quorum(quorum: Arc<crate::quorum::Quorum>) -> Arc<ClusterProducerIds> {
        ClusterProducerIds::new(Box::new(move || {
            let q = Arc::clone(&quorum);
            Box::pin(async move { q.allocate_producer_ids(REQUEST_TIMEOUT).await })
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new producer id, never issued by any broker of the cluster before; waits for a block
    /// at most [`WAIT_FOR_BLOCK`], then answers COORDINATOR_LOAD_IN_PROGRESS.
    pub async fn next_id(self: &Arc<Self>) -> Result<i64, ErrorCode> {
        self.next_id_within(WAIT_FOR_BLOCK).await
    }

    async fn next_id_within(self: &Arc<Self>, wait: Duration) -> Result<i64, ErrorCode> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Registered before the state is read, so that a block arriving in between wakes
            // this waiter.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let id = {
                let mut s = self.lock();
                let id = s.take();
                if s.wants_block() {
                    s.fetching = true;
                    self.spawn_fetch();
                }
                id
            };
            if let Some(id) = id {
                return Ok(id);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ErrorCode::CoordinatorLoadInProgress);
            }
        }
    }

    fn spawn_fetch(self: &Arc<Self>) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let result = (me.source)().await;
            match result {
                Ok((start, len)) => {
                    let block = Block {
                        start,
                        next: start,
                        end: start.saturating_add(i64::from(len)),
                    };
                    tracing::debug!(start, len, "producer id block received");
                    let mut s = me.lock();
                    if s.current.is_none_or(|b| b.next >= b.end) {
                        s.current = Some(block);
                    } else {
                        s.prefetched = Some(block);
                    }
                    s.fetching = false;
                }
                Err(code) => {
                    tracing::debug!(?code, "no producer id block yet; retrying");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    me.lock().fetching = false;
                }
            }
            me.changed.notify_waiters();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

    /// A controller stand-in handing out consecutive blocks of `len` from a shared counter,
    /// refusing the first `refusals` requests.
    fn source(
        next: Arc<AtomicI64>,
        len: i32,
        calls: Arc<AtomicUsize>,
        refusals: usize,
    ) -> BlockSource {
        Box::new(move || {
            let next = Arc::clone(&next);
            let n = calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n < refusals {
                    return Err(ErrorCode::BrokerNotAvailable);
                }
                Ok((next.fetch_add(i64::from(len), Ordering::SeqCst), len))
            })
        })
    }

    #[tokio::test]
    async fn two_brokers_never_share_an_id_and_the_next_block_is_prefetched() {
        let counter = Arc::new(AtomicI64::new(0));
        let (calls_a, calls_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let a = ClusterProducerIds::new(source(Arc::clone(&counter), 10, calls_a.clone(), 2));
        let b = ClusterProducerIds::new(source(Arc::clone(&counter), 10, calls_b.clone(), 0));
        let mut seen = HashSet::new();
        for i in 0..45 {
            let m = if i % 3 == 0 { &a } else { &b };
            let id = m.next_id().await.unwrap();
            assert!(seen.insert(id), "id {id} issued twice");
            // Let a prefetch that was started complete, as it would between requests.
            tokio::task::yield_now().await;
        }
        // b used 30 ids = 3 blocks of 10; with prefetch at 90% its fourth block is already
        // asked for, but never more than one ahead.
        let b_calls = calls_b.load(Ordering::SeqCst);
        assert!((3..=4).contains(&b_calls), "{b_calls} requests");
        assert!(
            calls_a.load(Ordering::SeqCst) >= 3,
            "two refusals, then blocks"
        );
    }

    #[tokio::test]
    async fn without_a_block_the_answer_is_coordinator_load_in_progress() {
        let calls = Arc::new(AtomicUsize::new(0));
        let m = ClusterProducerIds::new(source(
            Arc::new(AtomicI64::new(0)),
            10,
            calls.clone(),
            usize::MAX,
        ));
        assert_eq!(
            m.next_id_within(Duration::from_millis(500)).await,
            Err(ErrorCode::CoordinatorLoadInProgress)
        );
        // Retried with the backoff, not in a spin.
        let n = calls.load(Ordering::SeqCst);
        assert!((2..=6).contains(&n), "{n} requests in 500 ms");
    }
}
