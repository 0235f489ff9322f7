//! The leader side of the reassignment throttle (issue 19; Kafka's `ReplicationQuotaManager`
//! for `QuotaType.LeaderReplication`, KIP-73).
//!
//! `leader.replication.throttled.rate` (bytes per second, a dynamic broker config: this
//! broker's value, else the cluster-wide default, as stored on this node) bounds what this broker sends to followers
//! that are **not in the ISR** of a partition listed in the topic's
//! `leader.replication.throttled.replicas` (`partition:broker` entries naming this broker, or
//! `*`), as Kafka's `ReplicaManager.shouldLeaderThrottle` does: in-sync followers are never
//! throttled, so a throttled move does not slow `acks=all` writes. When the measured rate is
//! over the limit, a throttled partition is answered without records (its high watermark and
//! log start still travel); the follower fetches again after its long poll.
//!
//! The rate is measured over `replication.quota.window.num` (11) windows of
//! `replication.quota.window.size.seconds` (1 s), Kafka's defaults. Kafka's `Rate` divides by
//! at least ten windows' time while the first samples fill, which lets a move start with ten
//! seconds' worth of bytes at full speed; here the divisor is the time actually covered (at
//! least one window), so the rate holds from the first second.
//!
//! The follower side (Kafka's `QuotaType.FollowerReplication`): `follower.replication.throttled.rate`
//! bounds what this broker's replica fetchers receive for partitions whose
//! `follower.replication.throttled.replicas` names this broker, while this broker is not in the
//! partition's ISR (Kafka's `ReplicaFetcherThread.shouldFollowerThrottle`). While the measured
//! rate is over the limit, those partitions are left out of the next fetch requests (Kafka's
//! `buildFetch` does the same); the bytes received for them are recorded in a second quota.

use std::collections::VecDeque;
use std::sync::Mutex;

use potok_metadata::{BrokerId, MetadataImage};

/// `leader.replication.throttled.rate`.
pub const LEADER_RATE: &str = "leader.replication.throttled.rate";
/// `leader.replication.throttled.replicas`.
pub const LEADER_REPLICAS: &str = "leader.replication.throttled.replicas";
/// `follower.replication.throttled.rate`.
pub const FOLLOWER_RATE: &str = "follower.replication.throttled.rate";
/// `follower.replication.throttled.replicas`.
pub const FOLLOWER_REPLICAS: &str = "follower.replication.throttled.replicas";

/// Kafka's `replication.quota.window.num` default.
const WINDOWS: usize = 11;
/// Kafka's `replication.quota.window.size.seconds` default, in milliseconds.
const WINDOW_MS: u64 = 1_000;

/// Milliseconds of a monotonic clock (since the first call in this process).
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = *START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Bytes sent per window, for the rate over the last [`WINDOWS`] windows.
#[derive(Debug, Default)]
pub struct ReplicationQuota {
    /// `(window start in ms, bytes)`, oldest first.
    windows: Mutex<VecDeque<(u64, u64)>>,
}

impl ReplicationQuota {
    /// Counts `bytes` sent at `now_ms` (a monotonic clock).
    pub fn record(&self, bytes: u64, now_ms: u64) {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let start = now_ms - now_ms % WINDOW_MS;
        match w.back_mut() {
            Some((s, b)) if *s == start => *b += bytes,
            _ => w.push_back((start, bytes)),
        }
        Self::expire(&mut w, now_ms);
    }

    /// Whether the rate over the last windows is above `limit` bytes per second.
    pub fn is_exceeded(&self, limit: u64, now_ms: u64) -> bool {
        let mut w = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        Self::expire(&mut w, now_ms);
        let Some(&(oldest, _)) = w.front() else {
            return false;
        };
        let bytes: u64 = w.iter().map(|(_, b)| b).sum();
        let elapsed_ms = now_ms.saturating_sub(oldest).max(WINDOW_MS);
        // bytes / (elapsed_ms / 1000) > limit, without division.
        u128::from(bytes) * 1_000 > u128::from(limit) * u128::from(elapsed_ms)
    }

    fn expire(w: &mut VecDeque<(u64, u64)>, now_ms: u64) {
        let horizon = now_ms.saturating_sub(WINDOW_MS * WINDOWS as u64);
        while w.front().is_some_and(|(s, _)| *s + WINDOW_MS <= horizon) {
            w.pop_front();
        }
    }
}

/// This broker's `leader.replication.throttled.rate` among its dynamic configs (its own
/// value, else the cluster-wide default; Potok keeps dynamic broker configs per node, not in
/// the metadata log yet), `None` when unset or not a non-negative integer.
pub fn leader_rate(dynamic: &crate::dynamic_config::DynamicConfigs) -> Option<u64> {
    rate(dynamic, LEADER_RATE)
}

/// This broker's `follower.replication.throttled.rate`, as [`leader_rate`].
pub fn follower_rate(dynamic: &crate::dynamic_config::DynamicConfigs) -> Option<u64> {
    rate(dynamic, FOLLOWER_RATE)
}

fn rate(dynamic: &crate::dynamic_config::DynamicConfigs, name: &str) -> Option<u64> {
    dynamic
        .per_broker
        .get(name)
        .or_else(|| dynamic.cluster_default.get(name))?
        .trim()
        .parse::<u64>()
        .ok()
}

/// Whether a `*.replication.throttled.replicas` list names `partition` on `node` (`*`: every
/// partition). Kafka's list: `partition:broker` entries separated by commas.
pub fn lists_replica(list: &str, partition: i32, node: BrokerId) -> bool {
    let list = list.trim();
    if list == "*" {
        return true;
    }
    list.split(',').any(|entry| {
        let mut it = entry.trim().splitn(2, ':');
        let p = it.next().and_then(|p| p.trim().parse::<i32>().ok());
        let b = it.next().and_then(|b| b.trim().parse::<i32>().ok());
        p == Some(partition) && b == Some(node.0)
    })
}

/// The rate limit (`rate`, this broker's [`leader_rate`]) for a follower's fetch of `topic`'s
/// `partition` from this leader (`node`), `None` when the partition is not throttled here.
pub fn leader_limit(
    image: &MetadataImage,
    rate: Option<u64>,
    node: BrokerId,
    topic: &str,
    partition: i32,
) -> Option<u64> {
    let rate = rate?;
    let configs = image.topic_configs(topic);
    let list = configs.get(LEADER_REPLICAS)?;
    lists_replica(list, partition, node).then_some(rate)
}

/// Whether this broker's (`node`) fetches of `topic`'s `partition` are held to
/// `follower.replication.throttled.rate`: the topic's `follower.replication.throttled.replicas`
/// names this broker for it and this broker is not in its ISR (an in-sync follower is never
/// throttled, so `acks=all` writes are not slowed).
pub fn follower_throttled(
    image: &MetadataImage,
    node: BrokerId,
    topic: &str,
    partition: i32,
) -> bool {
    let Some(list) = image.topic_configs(topic).remove(FOLLOWER_REPLICAS) else {
        return false;
    };
    let in_sync = image
        .topic_by_name(topic)
        .and_then(|t| t.partitions.get(&partition))
        .is_some_and(|p| p.isr.contains(&node));
    !in_sync && lists_replica(&list, partition, node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_is_measured_over_the_recent_windows() {
        let q = ReplicationQuota::default();
        assert!(!q.is_exceeded(1_000, 0), "nothing sent yet");
        q.record(900, 100);
        assert!(!q.is_exceeded(1_000, 500), "900 B in the first second");
        q.record(200, 600);
        assert!(q.is_exceeded(1_000, 700), "1,100 B within one second");
        // Two seconds later the same bytes are a lower rate.
        assert!(!q.is_exceeded(1_000, 2_100));
        // Sending 1,000 B per second for 20 s keeps the rate at the limit.
        let q = ReplicationQuota::default();
        let mut sent = 0u64;
        for ms in (0..20_000u64).step_by(10) {
            if !q.is_exceeded(1_000, ms) {
                q.record(100, ms);
                sent += 100;
            }
        }
        assert!(
            (19_000..=22_000).contains(&sent),
            "{sent} B in 20 s at 1,000 B/s"
        );
        // Old windows expire.
        q.record(0, 100_000);
        assert!(!q.is_exceeded(1, 100_000));
    }

    #[test]
    fn a_follower_is_throttled_only_when_listed_and_out_of_sync() {
        use potok_metadata::MetadataRecord;
        use potok_protocol::messages::internal::config_record::ConfigRecord;
        use potok_protocol::messages::internal::partition_record::PartitionRecord;
        use potok_protocol::messages::internal::topic_record::TopicRecord;
        use potok_protocol::Uuid;
        let mut image = MetadataImage::new();
        let id = Uuid([7; 16]);
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: "t".into(),
            topic_id: id,
            ..Default::default()
        })];
        for p in 0..2 {
            records.push(MetadataRecord::Partition(PartitionRecord {
                partition_id: p,
                topic_id: id,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                ..Default::default()
            }));
        }
        for r in &records {
            image.apply(r).unwrap();
        }
        // No list: nothing throttled.
        assert!(!follower_throttled(&image, BrokerId(3), "t", 0));
        image
            .apply(&MetadataRecord::Config(ConfigRecord {
                resource_type: potok_metadata::image::TOPIC_RESOURCE,
                resource_name: "t".into(),
                name: FOLLOWER_REPLICAS.into(),
                value: Some("0:3,0:2,1:2".into()),
                ..Default::default()
            }))
            .unwrap();
        // Broker 3 is listed for partition 0 and out of its ISR.
        assert!(follower_throttled(&image, BrokerId(3), "t", 0));
        // Not listed for partition 1.
        assert!(!follower_throttled(&image, BrokerId(3), "t", 1));
        // Broker 2 is listed but in sync: never throttled.
        assert!(!follower_throttled(&image, BrokerId(2), "t", 0));
        assert!(!follower_throttled(&image, BrokerId(3), "unknown", 0));
    }

    #[test]
    fn throttled_replica_lists_name_partitions_on_brokers() {
        assert!(lists_replica("*", 3, BrokerId(2)));
        assert!(lists_replica("0:1, 3:2", 3, BrokerId(2)));
        assert!(!lists_replica("0:1,3:1", 3, BrokerId(2)));
        assert!(!lists_replica("", 0, BrokerId(1)));
        assert!(!lists_replica("x:y,3", 3, BrokerId(2)));
    }
}
