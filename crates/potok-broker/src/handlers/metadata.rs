//! Metadata: brokers (this node), the controller (this node) and topics with their
//! partitions, every one led by this node at the partition's current leader epoch. Unknown
//! topics are created when `auto.create.topics.enable` is on and the request allows it (always
//! for v0-v3), as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use potok_protocol::messages::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use potok_protocol::{ErrorCode, Request, Response, Uuid};

use crate::admin_api::{
    limits, AdminBackend, CLUSTER_OPERATIONS, OPERATIONS_NOT_REQUESTED, TOPIC_OPERATIONS,
};
use crate::error::{BrokerError, Result};
use crate::internal_topics::{self, GROUP_METADATA_TOPIC};
use crate::registry::{Reply, RequestContext};
use crate::topics::{NewTopic, Topic};
use crate::Broker;

pub(crate) fn topic_entry(broker: &Broker, t: &Topic) -> MetadataResponseTopic {
    if broker.topics.is_replicated() {
        // Kafka's KRaftMetadataCache.getOfflineReplicas: a replica is offline when its broker
        // is not registered or is fenced.
        let live: std::collections::BTreeSet<i32> = broker.topics.with_image(|i| {
            i.brokers()
                .values()
                .filter(|b| !b.fenced)
                .map(|b| b.id.0)
                .collect()
        });
        return replicated_topic_entry(t, broker.topics.partition_states(t.id()), &live);
    }
    let node = broker.config.node_id;
    // One read of the topic's partitions, so that the count and the epochs agree.
    let epochs = t.leader_epochs();
    let n = epochs.len() as i32;
    MetadataResponseTopic {
        error_code: 0,
        name: Some(t.name().to_string()),
        topic_id: t.id(),
        is_internal: internal_topics::is_internal(t.name()),
        partitions: (0..n)
            .map(|p| MetadataResponsePartition {
                error_code: 0,
                partition_index: p,
                leader_id: node,
                leader_epoch: epochs.get(p as usize).copied().unwrap_or(-1),
                replica_nodes: vec![node],
                isr_nodes: vec![node],
                offline_replicas: vec![],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A topic of a cluster: leaders, replicas and ISRs as the metadata image has them. A replica
/// whose broker is not among the `live` (registered, unfenced) ones is reported offline.
fn replicated_topic_entry(
    t: &Topic,
    states: Vec<potok_metadata::PartitionState>,
    live: &std::collections::BTreeSet<i32>,
) -> MetadataResponseTopic {
    let ids = |v: &[potok_metadata::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    MetadataResponseTopic {
        error_code: 0,
        name: Some(t.name().to_string()),
        topic_id: t.id(),
        is_internal: internal_topics::is_internal(t.name()),
        partitions: states
            .iter()
            .enumerate()
            .map(|(p, st)| MetadataResponsePartition {
                error_code: if st.leader.is_some() {
                    0
                } else {
                    ErrorCode::LeaderNotAvailable.code()
                },
                partition_index: p as i32,
                leader_id: st.leader.map_or(-1, |l| l.0),
                leader_epoch: st.leader_epoch.0,
                replica_nodes: ids(&st.replicas),
                isr_nodes: ids(&st.isr),
                offline_replicas: st
                    .replicas
                    .iter()
                    .map(|b| b.0)
                    .filter(|b| !live.contains(b))
                    .collect(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The brokers and controller id of a cluster: every registered broker with its PLAINTEXT
/// listener, and the active controller (the quorum's leader; Kafka 4.x names a live broker).
fn cluster_brokers(broker: &Broker) -> Option<(Vec<MetadataResponseBroker>, i32)> {
    let q = broker.quorum.as_ref()?;
    let brokers: Vec<MetadataResponseBroker> = broker.topics.with_image(|image| {
        image
            .brokers()
            .values()
            .filter(|b| !b.fenced)
            .filter_map(|b| {
                let (_, host, port) = b.listeners.iter().find(|(n, _, _)| n == "PLAINTEXT")?;
                Some(MetadataResponseBroker {
                    node_id: b.id.0,
                    host: host.clone(),
                    port: i32::from(*port),
                    rack: b.rack.clone(),
                    ..Default::default()
                })
            })
            .collect()
    });
    // Kafka's KRaft brokers name any live broker because they forward admin requests to the
    // controller. Potok's forward too (`crate::quorum::forwarding`), but the answer is still
    // the active controller, which saves the hop, or -1 (none) while it is not among the
    // listed brokers (it is not unfenced yet in this node's image): a broker named there while
    // no controller is known would answer NOT_CONTROLLER, and with -1 librdkafka's admin
    // client asks Metadata again until a controller is named.
    let controller = q
        .leader()
        .filter(|l| brokers.iter().any(|b| b.node_id == *l))
        .unwrap_or(-1);
    Some((brokers, controller))
}

fn error_entry(name: Option<String>, id: Uuid, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic {
        error_code: code.code(),
        name,
        topic_id: id,
        ..Default::default()
    }
}

/// Handles Metadata.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::Metadata(req) = req else {
        return Err(BrokerError::NoHandler("Metadata"));
    };
    let v = ctx.api_version;
    // v0 has no null: an empty list means "all topics". From v1 null means all, empty none.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && v == 0 => None,
        Some(t) => Some(t),
    };
    // Automatic creation is a local metadata change; in a cluster it would have to go through
    // the active controller (not yet), so it is off there.
    let allow_auto = broker.config.auto_create_topics
        && broker.quorum.is_none()
        && (v < 4 || req.allow_auto_topic_creation);
    // A request naming `__consumer_offsets` may create it, as Kafka's `AutoTopicCreationManager`
    // creates internal topics (with the coordinator's partition count and configs, not
    // `num.partitions`); the group coordinator owns that creation. It is file IO, so it runs
    // off the request thread.
    let names_offsets_topic = requested.as_ref().is_some_and(|list| {
        list.iter()
            .any(|t| t.topic_id == Uuid::ZERO && t.name.as_deref() == Some(GROUP_METADATA_TOPIC))
    });
    if allow_auto && names_offsets_topic && broker.topics.get(GROUP_METADATA_TOPIC).is_none() {
        let b = Arc::clone(&broker);
        match tokio::task::spawn_blocking(move || b.groups.ensure_offsets_topic()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e.message, "cannot create the offsets topic"),
            Err(e) => tracing::warn!(error = %e, "offsets topic creation task failed"),
        }
    }
    let topics = match requested {
        None => broker
            .topics
            .all()
            .iter()
            .map(|t| topic_entry(&broker, t))
            .collect(),
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for rt in list {
                // A non-zero id decides, whatever the name: the Java Admin's describeTopics by
                // id sends an empty (not null) name beside the id, and Kafka's KafkaApis uses
                // the ids whenever any is set (v12+).
                match rt.name {
                    Some(name) if rt.topic_id == Uuid::ZERO => {
                        out.push(lookup_or_create(&broker, name, allow_auto))
                    }
                    _ => match broker.topics.get_by_id(rt.topic_id) {
                        Some(t) => out.push(topic_entry(&broker, &t)),
                        None => out.push(error_entry(None, rt.topic_id, ErrorCode::UnknownTopicId)),
                    },
                }
            }
            out
        }
    };
    let mut topics: Vec<MetadataResponseTopic> = topics;
    // Authorized operations (v8+; the cluster's only up to v10, later DescribeCluster's), as
    // Kafka's `AuthHelper.authorizedOperations` answers without an authorizer: every
    // operation that applies to the resource. Kafka fills them in for every topic entry but
    // those of unknown topic ids; unrequested fields keep the "omitted" value.
    if v >= 8 && req.include_topic_authorized_operations {
        for t in topics
            .iter_mut()
            .filter(|t| t.error_code != ErrorCode::UnknownTopicId.code())
        {
            t.topic_authorized_operations = TOPIC_OPERATIONS;
        }
    }
    let cluster_authorized_operations =
        if (8..=10).contains(&v) && req.include_cluster_authorized_operations {
            CLUSTER_OPERATIONS
        } else {
            OPERATIONS_NOT_REQUESTED
        };
    let node = broker.config.node_id;
    let (brokers, controller_id) = cluster_brokers(&broker).unwrap_or_else(|| {
        (
            vec![MetadataResponseBroker {
                node_id: node,
                host: broker.config.advertised.host.clone(),
                port: i32::from(broker.advertised_port),
                rack: None,
                ..Default::default()
            }],
            node,
        )
    });
    let resp = MetadataResponse {
        cluster_authorized_operations,
        brokers,
        cluster_id: Some(broker.cluster_id.clone()),
        controller_id,
        topics,
        ..Default::default()
    };
    Ok(Reply::Response(Response::Metadata(resp)))
}

fn lookup_or_create(broker: &Broker, name: String, allow_auto: bool) -> MetadataResponseTopic {
    if let Some(t) = broker.topics.get(&name) {
        return topic_entry(broker, &t);
    }
    // Internal topics are never created as user topics: `__consumer_offsets` was created above
    // if it could be, and the others have no coordinator here.
    if !allow_auto || internal_topics::is_internal(&name) {
        return error_entry(Some(name), Uuid::ZERO, ErrorCode::UnknownTopicOrPartition);
    }
    let new = NewTopic {
        name: name.clone(),
        partitions: broker.config.num_partitions,
        configs: BTreeMap::new(),
    };
    // Automatic creation obeys the broker's partition limit like CreateTopics (see
    // `admin_api::limits`), under the same lock.
    let _budget = limits::budget_guard();
    if let Err(e) = limits::check_broker_total(
        AdminBackend::partition_count(broker),
        i64::from(new.partitions),
        broker.config.max_partitions,
    ) {
        tracing::warn!(topic = %name, error = %e.message, "automatic topic creation refused");
        return error_entry(Some(name), Uuid::ZERO, e.code);
    }
    match broker.topics.create_topic(new) {
        Ok(t) => topic_entry(broker, &t),
        // Two clients racing to auto-create: the loser sees the winner's topic.
        Err(e) if e.code == ErrorCode::TopicAlreadyExists => match broker.topics.get(&name) {
            Some(t) => topic_entry(broker, &t),
            None => error_entry(Some(name), Uuid::ZERO, ErrorCode::LeaderNotAvailable),
        },
        Err(e) => error_entry(Some(name), Uuid::ZERO, e.code),
    }
}
