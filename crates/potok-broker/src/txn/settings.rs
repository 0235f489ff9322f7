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
    /// `transaction.version`: the feature level finalized in ApiVersions (0 to 2).
    pub transaction_version: i16,
    /// The coordinator's own settings.
    pub coordinator: TxnConfig,
}

/// The highest `transaction.version` this broker supports (KIP-890 part 2).
pub const MAX_TRANSACTION_VERSION: i16 = 2;

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
        let transaction_version: i16 = parse(cfg, "transaction.version")?;
        if !(0..=MAX_TRANSACTION_VERSION).contains(&transaction_version) {
            return Err(BrokerError::Config(format!(
                "transaction.version={transaction_version}: must be 0, 1 or {MAX_TRANSACTION_VERSION}"
            )));
        }
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
            transaction_version,
            coordinator: TxnConfig {
                max_timeout_ms,
                id_expiration_ms,
                offsets_partitions,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_version(v: &str) -> Result<TxnSettings> {
        let cfg = BrokerConfig::from_properties(vec![("transaction.version".into(), v.into())])?;
        TxnSettings::from_config(&cfg)
    }

    #[test]
    fn transaction_version_defaults_to_2_and_takes_0_to_2() {
        let default = TxnSettings::from_config(&BrokerConfig::defaults()).unwrap();
        assert_eq!(default.transaction_version, 2);
        for v in 0..=2 {
            assert_eq!(with_version(&v.to_string()).unwrap().transaction_version, v);
        }
        for bad in ["3", "-1", "two"] {
            let e = with_version(bad).unwrap_err().to_string();
            assert!(e.contains("transaction.version"), "{bad}: {e}");
        }
    }
}
