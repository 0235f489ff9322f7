//! [`AdminBackend`] over the running broker: topics from [`crate::topics::TopicManager`]
//! (whose operations make every change durable in the metadata log before applying it),
//! partition logs for DeleteRecords, and [`crate::config::BrokerConfig`] for broker configs —
//! plus [`register`], which puts the admin handlers into the broker's handler registry (and so
//! into the ApiVersions answer).

use std::collections::BTreeMap;
use std::sync::Arc;

use potok_protocol::{ApiKey, ErrorCode, Request, Response, Uuid};
use potok_records::Offset;

use super::{
    handle_alter_configs, handle_create_partitions, handle_delete_records, handle_delete_topics,
    handle_describe_cluster, handle_describe_configs, handle_describe_topic_partitions,
    handle_incremental_alter_configs, AdminBackend, BrokerConfigEntry, BrokerConfigLookup,
    ConfigSource, ConfigType, TopicInfo, ADMIN_API_VERSIONS,
};
use crate::dynamic_config::{self, DynamicConfigs, Layered};
use crate::error::{BrokerError, Result};
use crate::metadata_log::METADATA_DIR;
use crate::registry::{Registry, Reply, RequestContext};
use crate::topic_config::TopicDefaults;
use crate::topics::{log_error_code, ApiError, Topic, TopicManager};
use crate::Broker;

impl BrokerConfigLookup for Broker {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        let dynamic = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        crate::dynamic_config::Layered {
            config: &self.config,
            dynamic: &dynamic,
        }
        .broker_value_at(name, level)
    }
}

fn topic_info(topics: &TopicManager, topic: &Topic) -> TopicInfo {
    let state = topic.state();
    // In a cluster the image says who leads and replicates each partition.
    let replication = topics.is_replicated().then(|| {
        let ids = |v: &[potok_metadata::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        topics
            .partition_states(topic.id())
            .iter()
            .map(|st| {
                (
                    st.leader.map_or(-1, |l| l.0),
                    ids(&st.replicas),
                    ids(&st.isr),
                )
            })
            .collect()
    });
    TopicInfo {
        replication,
        name: topic.name().to_string(),
        id: topic.id(),
        leader_epochs: state
            .partitions
            .iter()
            .map(|p| p.leader_epoch().0)
            .collect(),
        overrides: state.overrides,
        internal: crate::internal_topics::is_internal(topic.name()),
    }
}

/// The DescribeConfigs type of a broker setting. Potok's settings table has no types, so it
/// is derived from the name and default the way Kafka's `KafkaConfig` declares them; the type
/// only informs clients (nothing is parsed by it).
pub(crate) fn broker_config_type(name: &str, default: &str) -> ConfigType {
    // A setting that is the same-unit default of a topic config has that config's type
    // (`log.cleaner.min.cleanable.ratio` is a DOUBLE like `min.cleanable.dirty.ratio`).
    let same_unit = crate::topic_config::TOPIC_CONFIGS.iter().find(|def| {
        def.synonyms
            .first()
            .is_some_and(|(synonym, _)| *synonym == name)
    });
    if let Some(def) = same_unit {
        return def.config_type;
    }
    if default == "true" || default == "false" {
        ConfigType::Boolean
    } else if matches!(name, "process.roles" | "log.cleanup.policy") {
        ConfigType::List
    } else if name.ends_with(".ms")
        || name.ends_with("retention.bytes")
        || name.ends_with("interval.messages")
    {
        ConfigType::Long
    } else if default.parse::<i64>().is_ok()
        || name.ends_with(".hours")
        || name.ends_with(".minutes")
        || name.ends_with(".bytes")
    {
        ConfigType::Int
    } else {
        ConfigType::String
    }
}

impl AdminBackend for Broker {
    fn node_id(&self) -> i32 {
        self.config.node_id
    }

    fn cluster_id(&self) -> String {
        self.cluster_id.clone()
    }

    fn advertised_endpoint(&self) -> (String, i32) {
        (
            self.config.advertised.host.clone(),
            i32::from(self.advertised_port),
        )
    }

    fn topics(&self) -> Vec<TopicInfo> {
        self.topics
            .all()
            .iter()
            .map(|t| topic_info(&self.topics, t))
            .collect()
    }

    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).map(|t| topic_info(&self.topics, &t))
    }

    fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo> {
        self.topics
            .get_by_id(id)
            .map(|t| topic_info(&self.topics, &t))
    }

    fn broker_configs(&self) -> Vec<BrokerConfigEntry> {
        crate::config::SETTINGS
            .iter()
            .map(|s| BrokerConfigEntry {
                name: s.name.to_string(),
                value: self
                    .config
                    .get(s.name)
                    .filter(|v| !v.is_empty())
                    .map(str::to_string),
                explicit: self.config.is_explicit(s.name),
                // No Potok setting holds a secret yet (no SASL/SSL).
                sensitive: false,
                config_type: broker_config_type(s.name, s.default),
                documentation: s.doc.to_string(),
            })
            .collect()
    }

    fn partition_count(&self) -> usize {
        self.topics.all().iter().map(|t| t.partition_count()).sum()
    }

    fn max_partitions(&self) -> i64 {
        self.config.max_partitions
    }

    fn delete_topic(&self, name: &str) -> std::result::Result<(), ApiError> {
        if !self.config.delete_topic_enable {
            return Err(ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled (delete.topic.enable=false).",
            ));
        }
        let topic = self.topics.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic.",
            )
        })?;
        self.topics.delete_topic(topic.id())
    }

    fn create_partitions(&self, name: &str, new_total: i32) -> std::result::Result<(), ApiError> {
        let topic = self.topics.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic.",
            )
        })?;
        self.topics.create_partitions(topic.id(), new_total, false)
    }

    fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> std::result::Result<(), ApiError> {
        let topic = self.topics.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic.",
            )
        })?;
        self.topics.set_topic_configs(topic.id(), overrides, false)
    }

    fn dynamic_broker_configs(&self) -> DynamicConfigs {
        self.dynamic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_dynamic_broker_configs(
        &self,
        cluster_default: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), ApiError> {
        let mut dynamic = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = dynamic.clone();
        if cluster_default {
            next.cluster_default = configs;
        } else {
            next.per_broker = configs;
        }
        if next == *dynamic {
            return Ok(());
        }
        // The topic defaults are recomputed over the new layers and every topic's overrides
        // resolved over them before anything is stored, so a value that breaks a topic (a
        // retention below its local retention, a bad unit) is refused whole.
        let defaults = TopicDefaults::from_broker(&Layered {
            config: &self.config,
            dynamic: &next,
        })
        .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        self.topics.check_defaults(&defaults)?;
        if validate_only {
            return Ok(());
        }
        let path = dynamic_config::file_path(&self.config.data_dir.join(METADATA_DIR));
        dynamic_config::store(&path, &next)
            .map_err(|e| ApiError::new(ErrorCode::KafkaStorageError, e.to_string()))?;
        *dynamic = next;
        drop(dynamic);
        self.topics.set_defaults(defaults)
    }

    fn delete_records(
        &self,
        name: &str,
        partition: i32,
        offset: i64,
    ) -> std::result::Result<i64, ApiError> {
        let partition = self
            .topics
            .get(name)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::UnknownTopicOrPartition,
                    "This server does not host this topic-partition.",
                )
            })?;
        // Only the leader deletes records (followers follow its log start, Kafka's
        // `ReplicaManager.deleteRecords`), and never at or past the high watermark.
        let Some(high_watermark) = partition.leader_high_watermark() else {
            return Err(ApiError::new(
                ErrorCode::NotLeaderOrFollower,
                "This server is not the leader for that topic-partition.",
            ));
        };
        let outcome = partition.with_log(|log| {
            let high_watermark = high_watermark.min(log.log_end_offset()).0;
            let target = if offset == -1 { high_watermark } else { offset };
            if target < 0 || target > high_watermark {
                return Ok(Err(ApiError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!("Cannot delete records before offset {offset}: the high watermark is {high_watermark}."),
                )));
            }
            log.delete_records_before(Offset(target)).map(|start| Ok(start.0))
        });
        match outcome {
            // The moved log start offset must survive a crash before it is acknowledged; the
            // data directory's checkpoint holds it (see topics::TopicManager).
            Ok(Ok(start)) => match self.topics.write_dir_checkpoints() {
                Ok(()) => Ok(start),
                Err(e) => Err(ApiError::new(
                    ErrorCode::KafkaStorageError,
                    format!("could not write the log start offset checkpoint: {e}"),
                )),
            },
            Ok(result) => result,
            Err(e) => Err(ApiError::new(log_error_code(&e), e.to_string())),
        }
    }
}

macro_rules! admin_handler {
    ($registry:expr, $key:ident, $handler:path) => {{
        let (min, max) = ADMIN_API_VERSIONS
            .iter()
            .find(|(k, _, _)| *k == ApiKey::$key)
            .map(|(_, lo, hi)| (*lo, *hi))
            .expect("every admin API has a version range");
        $registry.register(
            ApiKey::$key,
            min,
            max,
            |broker: Arc<Broker>, ctx: RequestContext, request: Request| async move {
                let Request::$key(request) = request else {
                    return Err(BrokerError::NoHandler(stringify!($key)));
                };
                // Admin changes fsync the metadata log; like CreateTopics they run inline, since
                // they are rare and each is one small synchronous write.
                let response = $handler(&*broker, &request, ctx.api_version);
                Result::Ok(Reply::Response(Response::$key(response)))
            },
        );
    }};
}

/// Registers every admin API at the versions in [`ADMIN_API_VERSIONS`].
pub fn register(registry: &mut Registry) {
    admin_handler!(registry, DeleteTopics, handle_delete_topics);
    admin_handler!(registry, CreatePartitions, handle_create_partitions);
    admin_handler!(registry, DeleteRecords, handle_delete_records);
    admin_handler!(registry, DescribeConfigs, handle_describe_configs);
    admin_handler!(registry, AlterConfigs, handle_alter_configs);
    admin_handler!(
        registry,
        IncrementalAlterConfigs,
        handle_incremental_alter_configs
    );
    admin_handler!(registry, DescribeCluster, handle_describe_cluster);
    admin_handler!(
        registry,
        DescribeTopicPartitions,
        handle_describe_topic_partitions
    );
}
