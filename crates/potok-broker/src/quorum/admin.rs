//! DeleteTopics, CreatePartitions, AlterConfigs and IncrementalAlterConfigs on a voter: the
//! single-node handlers of `admin_api` validate the request exactly as before, but run over a
//! [`RecordingBackend`] whose writes become Kafka's records (`RemoveTopicRecord`,
//! `PartitionRecord`s placed over the live brokers, `ConfigRecord`s) instead of local changes.
//! The records of one request are proposed as one entry; the answer waits until it is
//! committed and applied here. If it fails, every part of the request the handler reported as
//! done gets the failure instead. A node that is not the active controller forwards these
//! requests to it (`super::forwarding`); the handlers here answer every write NOT_CONTROLLER
//! only when they still run on such a node (no controller known or reachable, or a forwarded
//! request that arrived after this node lost the leadership).
//!
//! Dynamic broker configs (BROKER resources) are still this node's own file, as on a single
//! node: they are not replicated yet.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use potok_controller::placement;
use potok_metadata::{BrokerId, MetadataRecord};
use potok_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use potok_protocol::messages::internal::{
    config_record::ConfigRecord, remove_topic_record::RemoveTopicRecord,
};
use potok_protocol::{ApiKey, ErrorCode, Request, Response, Uuid};

use crate::admin_api::{
    self, AdminBackend, BrokerConfigEntry, BrokerConfigLookup, ConfigSource, DynamicConfigs,
    TopicInfo, ADMIN_API_VERSIONS,
};
use crate::error::BrokerError;
use crate::registry::{Registry, Reply, RequestContext};
use crate::topics::ApiError;
use crate::Broker;

/// How long an admin write waits for its entry to commit.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads from the broker; writes become records.
pub struct RecordingBackend<'a> {
    broker: &'a Broker,
    leader: bool,
    records: Mutex<Vec<MetadataRecord>>,
    leads: Mutex<BTreeMap<BrokerId, usize>>,
}

impl<'a> RecordingBackend<'a> {
    /// A backend for one request on `broker`; `leader` is whether this node is the active
    /// controller (otherwise every write is NOT_CONTROLLER).
    pub fn new(broker: &'a Broker, leader: bool) -> RecordingBackend<'a> {
        let leads = broker.topics.with_image(placement::leader_counts);
        RecordingBackend {
            broker,
            leader,
            records: Mutex::new(Vec::new()),
            leads: Mutex::new(leads),
        }
    }

    fn push(&self, records: impl IntoIterator<Item = MetadataRecord>) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(records);
    }

    fn topic_id(&self, name: &str) -> Result<Uuid, ApiError> {
        self.broker.topics.get(name).map(|t| t.id()).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic.",
            )
        })
    }

    fn check_leader(&self) -> Result<(), ApiError> {
        if self.leader {
            Ok(())
        } else {
            Err(super::not_controller())
        }
    }

    /// Proposes what was recorded (nothing to do when nothing was).
    pub async fn commit(self, quorum: &super::Quorum) -> Result<(), ApiError> {
        let records = self.records.into_inner().unwrap_or_else(|e| e.into_inner());
        if records.is_empty() {
            return Ok(());
        }
        quorum.propose(&records, COMMIT_TIMEOUT).await
    }
}

impl BrokerConfigLookup for RecordingBackend<'_> {
    fn broker_value_at(&self, name: &str, level: ConfigSource) -> Option<String> {
        self.broker.broker_value_at(name, level)
    }
}

impl AdminBackend for RecordingBackend<'_> {
    fn node_id(&self) -> i32 {
        AdminBackend::node_id(self.broker)
    }
    fn cluster_id(&self) -> String {
        AdminBackend::cluster_id(self.broker)
    }
    fn advertised_endpoint(&self) -> (String, i32) {
        self.broker.advertised_endpoint()
    }
    fn topics(&self) -> Vec<TopicInfo> {
        AdminBackend::topics(self.broker)
    }
    fn topic_by_name(&self, name: &str) -> Option<TopicInfo> {
        self.broker.topic_by_name(name)
    }
    fn topic_by_id(&self, id: Uuid) -> Option<TopicInfo> {
        self.broker.topic_by_id(id)
    }
    fn broker_configs(&self) -> Vec<BrokerConfigEntry> {
        self.broker.broker_configs()
    }
    fn partition_count(&self) -> usize {
        AdminBackend::partition_count(self.broker)
    }
    fn max_partitions(&self) -> i64 {
        self.broker.max_partitions()
    }

    fn delete_topic(&self, name: &str) -> Result<(), ApiError> {
        if !self.broker.config.delete_topic_enable {
            return Err(ApiError::new(
                ErrorCode::TopicDeletionDisabled,
                "Topic deletion is disabled (delete.topic.enable=false).",
            ));
        }
        let id = self.topic_id(name)?;
        self.check_leader()?;
        self.push([MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id,
            ..Default::default()
        })]);
        Ok(())
    }

    fn create_partitions(&self, name: &str, new_total: i32) -> Result<(), ApiError> {
        let id = self.topic_id(name)?;
        self.check_leader()?;
        let (live, current, rf) = self.broker.topics.with_image(|i| {
            let t = i.topic(id);
            (
                placement::live_brokers(i),
                t.map_or(0, |t| t.partitions.len() as i32),
                t.and_then(|t| t.partitions.values().next())
                    .map_or(1, |p| p.replicas.len().max(1) as i32),
            )
        });
        let mut leads = self.leads.lock().unwrap_or_else(|e| e.into_inner());
        let placed = placement::place_replicas(&live, new_total - current, rf, &leads)
            .map_err(|e| ApiError::new(ErrorCode::InvalidReplicationFactor, e.to_string()))?;
        for r in &placed {
            if let Some(first) = r.first() {
                *leads.entry(*first).or_insert(0) += 1;
            }
        }
        let records = placement::partition_records(id, &placed)
            .into_iter()
            .map(|mut r| {
                if let MetadataRecord::Partition(p) = &mut r {
                    // The ISR is every replica, as at creation (see `controller`).
                    p.partition_id += current;
                }
                r
            });
        self.push(records);
        Ok(())
    }

    fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
    ) -> Result<(), ApiError> {
        let topic = self.broker.topics.get(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownTopicOrPartition,
                "This server does not host this topic.",
            )
        })?;
        self.check_leader()?;
        let overrides = crate::topic_config::normalize_overrides(&overrides)?;
        let old = topic.state().overrides;
        let record = |k: &str, v: Option<&String>| {
            MetadataRecord::Config(ConfigRecord {
                resource_type: potok_metadata::image::TOPIC_RESOURCE,
                resource_name: name.to_string(),
                name: k.to_string(),
                value: v.cloned(),
                ..Default::default()
            })
        };
        let mut records: Vec<MetadataRecord> = overrides
            .iter()
            .filter(|(k, v)| old.get(*k) != Some(*v))
            .map(|(k, v)| record(k, Some(v)))
            .collect();
        records.extend(
            old.keys()
                .filter(|k| !overrides.contains_key(*k))
                .map(|k| record(k, None)),
        );
        self.push(records);
        Ok(())
    }

    fn dynamic_broker_configs(&self) -> DynamicConfigs {
        self.broker.dynamic_broker_configs()
    }

    fn set_dynamic_broker_configs(
        &self,
        cluster_default: bool,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.broker
            .set_dynamic_broker_configs(cluster_default, configs, validate_only)
    }

    fn delete_records(&self, name: &str, partition: i32, offset: i64) -> Result<i64, ApiError> {
        self.broker.delete_records(name, partition, offset)
    }
}

fn versions(key: ApiKey) -> (i16, i16) {
    ADMIN_API_VERSIONS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, lo, hi)| (*lo, *hi))
        .unwrap_or((0, 0))
}

/// Sets `e` on every result that reported success.
fn fail(code: &mut i16, message: &mut Option<String>, e: &ApiError) {
    if *code == 0 {
        *code = e.code.code();
        *message = Some(e.message.clone());
    }
}

macro_rules! quorum_admin_handler {
    ($registry:expr, $key:ident, $handler:path, |$resp:ident, $e:ident, $v:ident| $patch:block) => {{
        let (min, max) = versions(ApiKey::$key);
        $registry.register(
            ApiKey::$key,
            min,
            max,
            |broker: Arc<Broker>, ctx: RequestContext, request: Request| async move {
                let Request::$key(request) = request else {
                    return Err(BrokerError::NoHandler(stringify!($key)));
                };
                let Some(quorum) = broker.quorum.clone() else {
                    return Err(BrokerError::NoHandler(stringify!($key)));
                };
                // One admin write at a time on the controller, as in `controller`.
                let _permit = quorum.writes.acquire().await;
                let backend = RecordingBackend::new(&broker, quorum.is_leader());
                #[allow(unused_mut)]
                let mut $resp = $handler(&backend, &request, ctx.api_version);
                if let Err($e) = backend.commit(&quorum).await {
                    let $v = ctx.api_version;
                    $patch
                }
                Result::Ok(Reply::Response(Response::$key($resp)))
            },
        );
    }};
}

/// Registers the quorum's versions of the admin writes, and DescribeCluster listing every
/// registered broker (the registry must not hold them yet).
pub fn register(r: &mut Registry) {
    quorum_admin_handler!(
        r,
        DeleteTopics,
        admin_api::handle_delete_topics,
        |resp, e, v| {
            for x in resp.responses.iter_mut() {
                fail(&mut x.error_code, &mut x.error_message, &e);
                if v < 5 {
                    x.error_message = None;
                }
            }
        }
    );
    quorum_admin_handler!(
        r,
        CreatePartitions,
        admin_api::handle_create_partitions,
        |resp, e, v| {
            let _ = v;
            for x in resp.results.iter_mut() {
                fail(&mut x.error_code, &mut x.error_message, &e);
            }
        }
    );
    quorum_admin_handler!(
        r,
        AlterConfigs,
        admin_api::handle_alter_configs,
        |resp, e, v| {
            let _ = v;
            for x in resp.responses.iter_mut() {
                fail(&mut x.error_code, &mut x.error_message, &e);
            }
        }
    );
    quorum_admin_handler!(
        r,
        IncrementalAlterConfigs,
        admin_api::handle_incremental_alter_configs,
        |resp, e, v| {
            let _ = v;
            for x in resp.responses.iter_mut() {
                fail(&mut x.error_code, &mut x.error_message, &e);
            }
        }
    );
    let (min, max) = versions(ApiKey::DescribeCluster);
    r.register(
        ApiKey::DescribeCluster,
        min,
        max,
        |broker: Arc<Broker>, ctx: RequestContext, request: Request| async move {
            let Request::DescribeCluster(request) = request else {
                return Err(BrokerError::NoHandler("DescribeCluster"));
            };
            let mut resp = admin_api::handle_describe_cluster(&*broker, &request, ctx.api_version);
            if resp.error_code == 0 {
                if let Some(q) = &broker.quorum {
                    resp.brokers = broker.topics.with_image(|i| {
                        i.brokers()
                            .values()
                            .filter(|b| !b.fenced)
                            .filter_map(|b| {
                                let (_, host, port) =
                                    b.listeners.iter().find(|(n, _, _)| n == "PLAINTEXT")?;
                                Some(DescribeClusterBroker {
                                    broker_id: b.id.0,
                                    host: host.clone(),
                                    port: i32::from(*port),
                                    rack: b.rack.clone(),
                                    ..Default::default()
                                })
                            })
                            .collect()
                    });
                    if let Some(l) = q.leader() {
                        resp.controller_id = l;
                    }
                }
            }
            Result::Ok(Reply::Response(Response::DescribeCluster(resp)))
        },
    );
}
