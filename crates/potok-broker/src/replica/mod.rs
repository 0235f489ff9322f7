//! The replica manager's tasks (issue 18): the replica fetchers that copy the logs of the
//! partitions this broker follows, and the periodic high-watermark checkpoint.
//!
//! Roles themselves change in `crate::topics` (`roles.rs`, Kafka's `applyDelta`) when a
//! metadata entry is applied; this module only follows them. [`run`] waits on
//! [`crate::topics::TopicManager::role_changes`] and keeps one [`fetcher::Fetcher`] task per source broker
//! (`num.replica.fetchers` per broker, partitions spread by hash as Kafka's
//! `AbstractFetcherManager.getFetcherId`), handing each its partitions through a `watch`
//! channel; a fetcher whose channel is dropped stops.
//!
//! Where the leader's side lives: a follower's Fetch is answered by
//! `crate::handlers::replica_fetch`, and each partition's `LeaderState` is in
//! [`crate::topics::Partition`] (see its docs for how to wait for the high watermark).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use potok_metadata::BrokerId;
use tokio::sync::watch;

use crate::topics::Partition;
use crate::Broker;

mod client;
mod fetcher;
mod settings;
pub mod throttle;

pub use client::{ClientError, LeaderConnection};
pub use fetcher::FOLLOWER_FETCH_VERSION;
pub use settings::ReplicaSettings;

/// Keeps the replica fetchers in step with the partitions' roles until shutdown.
pub async fn run(broker: Arc<Broker>, settings: ReplicaSettings) {
    let topics = Arc::clone(&broker.topics);
    let mut changes = topics.role_changes();
    let mut shutdown = broker.shutdown_signal();
    let mut fetchers: HashMap<(BrokerId, usize), watch::Sender<Vec<Arc<Partition>>>> =
        HashMap::new();
    loop {
        changes.borrow_and_update();
        let mut wanted: HashMap<(BrokerId, usize), Vec<Arc<Partition>>> = HashMap::new();
        for (leader, parts) in topics.followed_by_leader() {
            if leader == topics.node() {
                continue;
            }
            for p in parts {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                (p.topic(), p.index()).hash(&mut h);
                let id = (h.finish() % settings.num_fetchers as u64) as usize;
                wanted.entry((leader, id)).or_default().push(p);
            }
        }
        fetchers.retain(|k, _| wanted.contains_key(k));
        for (key, parts) in wanted {
            match fetchers.get(&key) {
                Some(tx) => {
                    tx.send_replace(parts);
                }
                None => {
                    let (tx, rx) = watch::channel(parts);
                    let f = fetcher::Fetcher {
                        topics: Arc::clone(&topics),
                        settings,
                        leader: key.0,
                        // A response is bounded by the leader's fetch.max.bytes-capped
                        // max_bytes plus one oversized batch; socket.request.max.bytes is the
                        // frame bound a broker accepts in either direction.
                        max_response_bytes: broker.config.socket_request_max_bytes,
                        partitions: rx,
                        broker: Arc::clone(&broker),
                        shutdown: broker.shutdown_signal(),
                    };
                    tracing::info!(
                        leader = key.0 .0,
                        fetcher = key.1,
                        "starting a replica fetcher"
                    );
                    tokio::spawn(f.run());
                    fetchers.insert(key, tx);
                }
            }
        }
        tokio::select! {
            r = changes.changed() => if r.is_err() { return },
            _ = shutdown.changed() => return,
        }
    }
}

/// Writes `replication-offset-checkpoint` every `replica.high.watermark.checkpoint.interval.ms`
/// until shutdown (Kafka's `ReplicaManager.startHighWatermarkCheckPointThread`); the last one is
/// written by the clean shutdown (`TopicManager::close_all`).
pub async fn checkpoint_high_watermarks(broker: Arc<Broker>, settings: ReplicaSettings) {
    let mut shutdown = broker.shutdown_signal();
    let every = Duration::from_millis(settings.hw_checkpoint_interval_ms);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        let topics = Arc::clone(&broker.topics);
        match tokio::task::spawn_blocking(move || topics.write_hw_checkpoint()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "writing replication-offset-checkpoint failed")
            }
            Err(e) => tracing::warn!(error = %e, "the high watermark checkpoint task failed"),
        }
    }
}
