//! Kafka's `replica.*` broker settings as the replica fetchers and the leader use them.

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};

/// The follower-side replication settings (Kafka's names and defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaSettings {
    /// `num.replica.fetchers`: fetcher tasks per source broker.
    pub num_fetchers: usize,
    /// `replica.fetch.wait.max.ms`: the long poll of a follower's Fetch at the leader.
    pub fetch_wait_max_ms: i32,
    /// `replica.fetch.min.bytes`.
    pub fetch_min_bytes: i32,
    /// `replica.fetch.max.bytes`: per partition.
    pub fetch_max_bytes: i32,
    /// `replica.fetch.response.max.bytes`: per response.
    pub fetch_response_max_bytes: i32,
    /// `replica.fetch.backoff.ms`.
    pub fetch_backoff_ms: i64,
    /// `replica.socket.timeout.ms`.
    pub socket_timeout_ms: u64,
    /// `replica.high.watermark.checkpoint.interval.ms`.
    pub hw_checkpoint_interval_ms: u64,
}

impl ReplicaSettings {
    /// Reads and checks the settings.
    pub fn from_config(cfg: &BrokerConfig) -> Result<ReplicaSettings> {
        fn num<T: std::str::FromStr + PartialOrd>(
            cfg: &BrokerConfig,
            name: &str,
            min: T,
        ) -> Result<T> {
            let raw = cfg.get(name).unwrap_or_default();
            let v: T = raw
                .trim()
                .parse()
                .map_err(|_| BrokerError::Config(format!("{name}={raw}: not a number")))?;
            if v < min {
                return Err(BrokerError::Config(format!("{name}={raw}: too small")));
            }
            Ok(v)
        }
        Ok(ReplicaSettings {
            num_fetchers: num(cfg, "num.replica.fetchers", 1usize)?,
            fetch_wait_max_ms: num(cfg, "replica.fetch.wait.max.ms", 0i32)?,
            fetch_min_bytes: num(cfg, "replica.fetch.min.bytes", 0i32)?,
            fetch_max_bytes: num(cfg, "replica.fetch.max.bytes", 0i32)?,
            fetch_response_max_bytes: num(cfg, "replica.fetch.response.max.bytes", 0i32)?,
            fetch_backoff_ms: num(cfg, "replica.fetch.backoff.ms", 0i64)?,
            socket_timeout_ms: num(cfg, "replica.socket.timeout.ms", 1u64)?,
            hw_checkpoint_interval_ms: num(
                cfg,
                "replica.high.watermark.checkpoint.interval.ms",
                1u64,
            )?,
        })
    }
}
