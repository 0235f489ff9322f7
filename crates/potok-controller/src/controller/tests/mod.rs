//! Unit tests of the controller's rules, driven through [`Controller::handle`] with a log that
//! commits every proposal in order (the quorum itself is the simulation's business).

mod brokers;
mod partitions;
mod reassign;

use std::collections::{BTreeMap, VecDeque};

use potok_metadata::{BrokerId, MetadataRecord, PartitionState};
use potok_protocol::messages::alter_partition_request::{
    AlterPartitionRequest, BrokerState, PartitionData, TopicData,
};
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use potok_protocol::messages::broker_heartbeat_response::BrokerHeartbeatResponse;
use potok_protocol::messages::broker_registration_request::{BrokerRegistrationRequest, Listener};
use potok_protocol::messages::internal::config_record::ConfigRecord;
use potok_protocol::messages::internal::topic_record::TopicRecord;
use potok_protocol::{ErrorCode, Uuid};

use super::*;
use crate::placement::partition_records;

pub(super) const CLUSTER: &str = "potok-test-cluster";
pub(super) const SESSION_MS: u64 = 9_000;

pub(super) fn incarnation(broker: i32, n: u8) -> Uuid {
    let mut b = [0u8; 16];
    b[0] = broker as u8;
    b[1] = n;
    b[15] = 1;
    Uuid(b)
}

pub(super) fn registration(broker: i32, incarnation: Uuid) -> BrokerRegistrationRequest {
    BrokerRegistrationRequest {
        broker_id: broker,
        cluster_id: CLUSTER.into(),
        incarnation_id: incarnation,
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092u16.wrapping_add(broker as u16),
            security_protocol: 0,
            ..Default::default()
        }],
        rack: Some(format!("rack-{}", broker % 2)),
        ..Default::default()
    }
}

/// One controller, activated at offset 2 (after the leader's empty entry 1), whose proposals
/// are committed when [`H::commit`] is called.
pub(super) struct H {
    pub c: Controller,
    pub now: u64,
    pub uncommitted: VecDeque<(MetadataOffset, Vec<MetadataRecord>)>,
    pub replies: BTreeMap<RequestId, Reply>,
    pub faults: Vec<String>,
    pub log: Vec<(MetadataOffset, Vec<MetadataRecord>)>,
    next_id: RequestId,
}

impl H {
    pub fn new() -> H {
        H::with(ControllerConfig {
            session_timeout_ms: SESSION_MS,
            ..ControllerConfig::new(CLUSTER)
        })
    }

    pub fn with(config: ControllerConfig) -> H {
        let mut h = H {
            c: Controller::new(config),
            now: 1_000,
            uncommitted: VecDeque::new(),
            replies: BTreeMap::new(),
            faults: Vec::new(),
            log: Vec::new(),
            next_id: 0,
        };
        h.event(Event::BecameLeader {
            next_offset: MetadataOffset(2),
        });
        assert!(!h.c.is_active(), "active before its empty entry committed");
        h.event(Event::Committed {
            offset: MetadataOffset(1),
            records: vec![],
        });
        assert!(h.c.is_active());
        h
    }

    pub fn event(&mut self, e: Event) {
        let effects = self.c.handle(e, self.now);
        self.absorb(effects);
    }

    pub fn absorb(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Propose { offset, records } => {
                    let expected = self
                        .uncommitted
                        .back()
                        .map(|(o, _)| o.0 + 1)
                        .unwrap_or(self.c.committed_offset().0 + 1);
                    assert_eq!(offset.0, expected, "proposals must be consecutive");
                    self.uncommitted.push_back((offset, records));
                }
                Effect::Reply { id, reply } => {
                    assert!(self.replies.insert(id, reply).is_none(), "reply {id} twice");
                }
                Effect::MetadataFault { error, .. } => self.faults.push(error),
            }
        }
    }

    /// Commits every proposal so far (and any they cause), in order.
    pub fn commit(&mut self) {
        while let Some((offset, records)) = self.uncommitted.pop_front() {
            self.log.push((offset, records.clone()));
            self.event(Event::Committed { offset, records });
        }
    }

    /// Sends `request` without committing anything; returns its id.
    pub fn send(&mut self, request: Request) -> RequestId {
        self.next_id += 1;
        let id = self.next_id;
        self.event(Event::Request { id, request });
        id
    }

    /// Sends `request`, commits, and returns the reply.
    pub fn request(&mut self, request: Request) -> Reply {
        let id = self.send(request);
        self.commit();
        self.replies.remove(&id).expect("a reply once committed")
    }

    pub fn register(&mut self, broker: i32, n: u8) -> BrokerRegistrationResponseOrErr {
        match self.request(Request::BrokerRegistration(registration(
            broker,
            incarnation(broker, n),
        ))) {
            Reply::BrokerRegistration(r) => r,
            other => panic!("{other:?}"),
        }
    }

    pub fn heartbeat_full(
        &mut self,
        broker: i32,
        epoch: i64,
        offset: i64,
        want_fence: bool,
        want_shut_down: bool,
    ) -> BrokerHeartbeatResponse {
        match self.request(Request::BrokerHeartbeat(BrokerHeartbeatRequest {
            broker_id: broker,
            broker_epoch: epoch,
            current_metadata_offset: offset,
            want_fence,
            want_shut_down,
            ..Default::default()
        })) {
            Reply::BrokerHeartbeat(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// A heartbeat of a broker that has applied everything committed.
    pub fn heartbeat(&mut self, broker: i32, epoch: i64) -> BrokerHeartbeatResponse {
        let offset = self.c.committed_offset().0;
        self.heartbeat_full(broker, epoch, offset, false, false)
    }

    /// Registers and unfences `brokers`; returns their epochs.
    pub fn live_brokers(&mut self, brokers: &[i32]) -> BTreeMap<i32, i64> {
        let mut epochs = BTreeMap::new();
        for &b in brokers {
            let r = self.register(b, 0);
            assert_eq!(r.error_code, 0);
            epochs.insert(b, r.broker_epoch);
        }
        for (&b, &e) in &epochs {
            let r = self.heartbeat(b, e);
            assert!(!r.is_fenced, "broker {b}: {r:?}");
        }
        epochs
    }

    /// Advances the clock by `ms` and ticks; commits what the tick proposed.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.event(Event::Tick);
        self.commit();
    }

    /// Creates topic `name` with the given replica lists (first replica leads) through a
    /// Write request.
    pub fn create_topic(&mut self, name: &str, replicas: &[&[i32]]) -> Uuid {
        let mut id = [0u8; 16];
        for (i, b) in name.bytes().enumerate().take(15) {
            id[i] = b;
        }
        id[15] = 7;
        let id = Uuid(id);
        let lists: Vec<Vec<BrokerId>> = replicas
            .iter()
            .map(|r| r.iter().map(|&b| BrokerId(b)).collect())
            .collect();
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: id,
            ..Default::default()
        })];
        records.extend(partition_records(id, &lists));
        match self.request(Request::Write(records)) {
            Reply::Write(Ok(_)) => id,
            other => panic!("{other:?}"),
        }
    }

    pub fn set_topic_config(&mut self, topic: &str, name: &str, value: &str) {
        let r = self.request(Request::Write(vec![MetadataRecord::Config(ConfigRecord {
            resource_type: potok_metadata::image::TOPIC_RESOURCE,
            resource_name: topic.into(),
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        })]));
        assert!(matches!(r, Reply::Write(Ok(_))), "{r:?}");
    }

    pub fn partition(&self, topic: Uuid, p: i32) -> PartitionState {
        self.c.image().topic(topic).unwrap().partitions[&p].clone()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn alter_partition(
        &mut self,
        version: i16,
        leader: i32,
        leader_epoch_of_broker: i64,
        topic: Uuid,
        topic_name: &str,
        p: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: &[(i32, i64)],
    ) -> AlterPartitionResponse {
        let req = AlterPartitionRequest {
            broker_id: leader,
            broker_epoch: leader_epoch_of_broker,
            topics: vec![TopicData {
                topic_name: topic_name.into(),
                topic_id: topic,
                partitions: vec![PartitionData {
                    partition_index: p,
                    leader_epoch,
                    new_isr: isr.iter().map(|(b, _)| *b).collect(),
                    new_isr_with_epochs: isr
                        .iter()
                        .map(|&(b, e)| BrokerState {
                            broker_id: b,
                            broker_epoch: e,
                            ..Default::default()
                        })
                        .collect(),
                    leader_recovery_state: 0,
                    partition_epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        match self.request(Request::AlterPartition {
            version,
            request: req,
        }) {
            Reply::AlterPartition(r) => r,
            other => panic!("{other:?}"),
        }
    }

    /// Every record committed since the log's `from`th entry.
    pub fn records_since(&self, from: usize) -> Vec<MetadataRecord> {
        self.log[from..]
            .iter()
            .flat_map(|(_, r)| r.iter().cloned())
            .collect()
    }
}

pub(super) type BrokerRegistrationResponseOrErr =
    potok_protocol::messages::broker_registration_response::BrokerRegistrationResponse;

pub(super) fn code(c: i16) -> ErrorCode {
    ErrorCode::from_code(c).unwrap_or(ErrorCode::UnknownServerError)
}
