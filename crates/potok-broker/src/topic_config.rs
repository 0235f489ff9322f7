//! Topic-level configs (Kafka's names): validation of overrides, their broker-wide defaults
//! and the effective [`LogConfig`] of a topic.
//!
//! A topic stores only its overrides (name → value strings, persisted in the metadata log).
//! The effective value of a config is the override if present, else the broker default taken
//! from the `log.*` settings ([`TopicDefaults`]), exactly as Kafka resolves them. Only configs
//! whose behaviour Potok implements are accepted; anything else is `INVALID_CONFIG` rather than
//! a setting that is stored but silently ignored.

use std::collections::BTreeMap;

use potok_log::{LogConfig, TimestampPolicy};

use crate::config::BrokerConfig;
use crate::error::{BrokerError, Result};

/// A topic config Potok understands.
#[derive(Debug, Clone, Copy)]
pub struct TopicSetting {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// The broker setting that supplies its default.
    pub broker_setting: &'static str,
}

/// Every topic config Potok accepts, with the broker setting that gives its default.
pub const TOPIC_SETTINGS: &[TopicSetting] = &[
    TopicSetting {
        name: "cleanup.policy",
        broker_setting: "log.cleanup.policy",
    },
    TopicSetting {
        name: "retention.ms",
        broker_setting: "log.retention.ms",
    },
    TopicSetting {
        name: "retention.bytes",
        broker_setting: "log.retention.bytes",
    },
    TopicSetting {
        name: "segment.bytes",
        broker_setting: "log.segment.bytes",
    },
    TopicSetting {
        name: "segment.ms",
        broker_setting: "log.roll.ms",
    },
    TopicSetting {
        name: "segment.index.bytes",
        broker_setting: "log.index.size.max.bytes",
    },
    TopicSetting {
        name: "index.interval.bytes",
        broker_setting: "log.index.interval.bytes",
    },
    TopicSetting {
        name: "flush.messages",
        broker_setting: "log.flush.interval.messages",
    },
    TopicSetting {
        name: "flush.ms",
        broker_setting: "log.flush.interval.ms",
    },
    TopicSetting {
        name: "max.message.bytes",
        broker_setting: "message.max.bytes",
    },
    TopicSetting {
        name: "message.timestamp.type",
        broker_setting: "log.message.timestamp.type",
    },
    TopicSetting {
        name: "min.insync.replicas",
        broker_setting: "min.insync.replicas",
    },
];

/// The resolved configs of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveTopicConfig {
    /// What the partition logs obey.
    pub log: LogConfig,
    /// `max.message.bytes`: largest batch a producer may append.
    pub max_message_bytes: usize,
    /// `min.insync.replicas`.
    pub min_insync_replicas: i32,
    /// `cleanup.policy` contains `compact` (Potok does not compact; such topics are not
    /// deleted by retention either, which is what `compact` alone means in Kafka).
    pub compact: bool,
}

/// The broker-wide defaults of every topic config, as strings (what DescribeConfigs reports as
/// `DEFAULT_CONFIG` / `STATIC_BROKER_CONFIG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    values: BTreeMap<&'static str, String>,
}

impl TopicDefaults {
    /// Derives the defaults from the broker's `log.*` settings (Kafka's precedence:
    /// `log.retention.ms` > `log.retention.minutes` > `log.retention.hours`, `log.roll.ms` >
    /// `log.roll.hours`).
    pub fn from_broker(cfg: &BrokerConfig) -> Result<TopicDefaults> {
        let num = |k: &str| -> Result<Option<i64>> {
            match cfg.get(k) {
                Some(v) if !v.is_empty() => v
                    .parse::<i64>()
                    .map(Some)
                    .map_err(|_| BrokerError::Config(format!("{k}={v}: not a valid number"))),
                _ => Ok(None),
            }
        };
        let retention_ms = match (
            num("log.retention.ms")?,
            num("log.retention.minutes")?,
            num("log.retention.hours")?,
        ) {
            (Some(ms), _, _) => ms,
            (None, Some(m), _) => m.saturating_mul(60_000),
            (None, None, Some(h)) => h.saturating_mul(3_600_000),
            (None, None, None) => potok_log::SEVEN_DAYS_MS,
        };
        let segment_ms = match (num("log.roll.ms")?, num("log.roll.hours")?) {
            (Some(ms), _) => ms,
            (None, Some(h)) => h.saturating_mul(3_600_000),
            (None, None) => potok_log::SEVEN_DAYS_MS,
        };
        let mut values = BTreeMap::new();
        for s in TOPIC_SETTINGS {
            let v = match s.name {
                "retention.ms" => Some(retention_ms.to_string()),
                "segment.ms" => Some(segment_ms.to_string()),
                _ => cfg.get(s.broker_setting).map(str::to_string),
            };
            if let Some(v) = v {
                values.insert(s.name, v);
            }
        }
        let d = TopicDefaults { values };
        // Validates every default through the same code as a topic override.
        d.effective(&BTreeMap::new())
            .map_err(|e| BrokerError::Config(format!("broker default of a topic config: {e}")))?;
        Ok(d)
    }

    /// The default of a topic config, if it has one.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Resolves `overrides` over these defaults. The error message names the bad config.
    pub fn effective(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> std::result::Result<EffectiveTopicConfig, String> {
        for k in overrides.keys() {
            if !TOPIC_SETTINGS.iter().any(|s| s.name == k) {
                return Err(format!("unknown or unsupported topic config `{k}`"));
            }
        }
        let get = |k: &str| -> Option<&str> {
            overrides.get(k).map(String::as_str).or_else(|| self.get(k))
        };
        fn num<T: std::str::FromStr>(
            k: &str,
            v: Option<&str>,
        ) -> std::result::Result<Option<T>, String> {
            match v {
                None | Some("") => Ok(None),
                Some(v) => v
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{k}={v}: not a valid number")),
            }
        }
        let mut log = LogConfig::default();
        if let Some(v) = num::<i64>("retention.ms", get("retention.ms"))? {
            if v < -1 {
                return Err(format!("retention.ms={v}: must be >= -1"));
            }
            log.retention_ms = v;
        }
        if let Some(v) = num::<i64>("retention.bytes", get("retention.bytes"))? {
            log.retention_bytes = v;
        }
        if let Some(v) = num::<i32>("segment.bytes", get("segment.bytes"))? {
            // Kafka's lower bound for segment.bytes is 1 MiB (LegacyKafkaConfig); Potok allows
            // smaller segments (down to one batch header) because tests use them.
            if v < 14 {
                return Err(format!("segment.bytes={v}: must be >= 14"));
            }
            log.segment_bytes = v as u64;
        }
        if let Some(v) = num::<i64>("segment.ms", get("segment.ms"))? {
            if v < 1 {
                return Err(format!("segment.ms={v}: must be >= 1"));
            }
            log.segment_ms = v;
        }
        if let Some(v) = num::<i32>("segment.index.bytes", get("segment.index.bytes"))? {
            if v < 24 {
                return Err(format!("segment.index.bytes={v}: must be >= 24"));
            }
            log.segment_index_bytes = v as u64;
        }
        if let Some(v) = num::<i32>("index.interval.bytes", get("index.interval.bytes"))? {
            if v < 0 {
                return Err(format!("index.interval.bytes={v}: must be >= 0"));
            }
            log.index_interval_bytes = v as u64;
        }
        if let Some(v) = num::<i64>("flush.messages", get("flush.messages"))? {
            if v < 1 {
                return Err(format!("flush.messages={v}: must be >= 1"));
            }
            // Long.MAX_VALUE is Kafka's way of saying "never"; keep it as "no policy".
            log.flush_messages = (v != i64::MAX).then_some(v as u64);
        }
        if let Some(v) = num::<i64>("flush.ms", get("flush.ms"))? {
            if v < 0 {
                return Err(format!("flush.ms={v}: must be >= 0"));
            }
            log.flush_ms = (v != i64::MAX).then_some(v);
        }
        log.timestamp_policy = match get("message.timestamp.type") {
            None | Some("CreateTime") => TimestampPolicy::CreateTime,
            Some("LogAppendTime") => TimestampPolicy::LogAppendTime,
            Some(v) => {
                return Err(format!(
                    "message.timestamp.type={v}: expected CreateTime or LogAppendTime"
                ))
            }
        };
        let max_message_bytes =
            num::<i32>("max.message.bytes", get("max.message.bytes"))?.unwrap_or(1_048_588);
        if max_message_bytes < 0 {
            return Err(format!(
                "max.message.bytes={max_message_bytes}: must be >= 0"
            ));
        }
        let min_insync_replicas =
            num::<i32>("min.insync.replicas", get("min.insync.replicas"))?.unwrap_or(1);
        if min_insync_replicas < 1 {
            return Err(format!(
                "min.insync.replicas={min_insync_replicas}: must be >= 1"
            ));
        }
        let policy = get("cleanup.policy").unwrap_or("delete");
        let mut compact = false;
        let mut delete = false;
        for p in policy.split(',').map(str::trim) {
            match p {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => {
                    return Err(format!(
                        "cleanup.policy={policy}: expected delete and/or compact"
                    ))
                }
            }
        }
        if !delete {
            // Without `delete`, Kafka never removes data by time or size.
            log.retention_ms = -1;
            log.retention_bytes = -1;
        }
        log.validate().map_err(|e| e.to_string())?;
        Ok(EffectiveTopicConfig {
            log,
            max_message_bytes: max_message_bytes as usize,
            min_insync_replicas,
            compact,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_defaults_and_overrides() {
        let b = BrokerConfig::from_properties(vec![("log.retention.minutes".into(), "5".into())])
            .unwrap();
        let d = TopicDefaults::from_broker(&b).unwrap();
        let e = d.effective(&BTreeMap::new()).unwrap();
        assert_eq!(e.log.retention_ms, 300_000);
        assert_eq!(e.max_message_bytes, 1_048_588);
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let e = d.effective(&o).unwrap();
        assert_eq!(e.log.retention_ms, 1000);
        assert_eq!(e.log.timestamp_policy, TimestampPolicy::LogAppendTime);
        o.insert("no.such".to_string(), "1".to_string());
        assert!(d.effective(&o).unwrap_err().contains("no.such"));
    }
}
