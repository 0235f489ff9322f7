//! The service's settings, read from the broker configuration under Kafka's names.

use potok_txn::TxnConfig;

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};

/// Settings of the service, from Kafka's names.
#[derive(Debug, Clone)]
pub struct TxnSettings {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.replication.factor` (capped at the live brokers: one).
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`.
    pub min_isr: i32,
    /// `transaction.state.log.segment.bytes`.
    pub segment_bytes: i64,
    /// The coordinator's own settings.
    pub coordinator: TxnConfig,
}

fn parse<T: std::str::FromStr>(cfg: &BrokerConfig, name: &str) -> Result<T> {
    let v = cfg.get(name).unwrap_or_default();
    v.parse()
        .map_err(|_| BrokerError::Config(format!("{name}={v}: not a valid number")))
}

impl TxnSettings {
    /// Reads and checks the settings.
    pub fn from_config(cfg: &BrokerConfig) -> Result<TxnSettings> {
        let partitions: i32 = parse(cfg, "transaction.state.log.num.partitions")?;
        let replication_factor: i16 = parse(cfg, "transaction.state.log.replication.factor")?;
        let min_isr: i32 = parse(cfg, "transaction.state.log.min.isr")?;
        let max_timeout_ms: i32 = parse(cfg, "transaction.max.timeout.ms")?;
        let id_expiration_ms: i64 = parse(cfg, "transactional.id.expiration.ms")?;
        let offsets_partitions: i32 = parse(cfg, "offsets.topic.num.partitions")?;
        let segment_bytes: i64 = parse(cfg, "transaction.state.log.segment.bytes")?;
        let positive = |name: &str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(BrokerError::Config(format!("{name} must be at least 1")))
            }
        };
        positive("transaction.state.log.num.partitions", partitions >= 1)?;
        positive(
            "transaction.state.log.replication.factor",
            replication_factor >= 1,
        )?;
        positive("transaction.state.log.min.isr", min_isr >= 1)?;
        positive("transaction.max.timeout.ms", max_timeout_ms >= 1)?;
        positive("transactional.id.expiration.ms", id_expiration_ms >= 1)?;
        Ok(TxnSettings {
            partitions,
            replication_factor,
            min_isr,
            segment_bytes,
            coordinator: TxnConfig {
                max_timeout_ms,
                id_expiration_ms,
                offsets_partitions,
            },
        })
    }
}
