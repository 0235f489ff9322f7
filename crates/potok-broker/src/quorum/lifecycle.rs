//! The broker's side of its lifecycle with the active controller (Kafka's
//! `BrokerLifecycleManager`): register with BrokerRegistration, then send BrokerHeartbeat every
//! `broker.heartbeat.interval.ms` with the broker epoch the registration returned and the
//! metadata offset applied here; re-register when the controller answers
//! `STALE_BROKER_EPOCH` (the controller fenced us and we registered again elsewhere, or it
//! lost our registration). `want_shut_down` asks for controlled shutdown; the controller's
//! `should_shut_down` says when the process may exit.
//!
//! It runs inside the driver thread and does no IO: [`BrokerLifecycle::poll`] says what to
//! send now and the driver delivers it, to the local controller when this node is the active
//! one, else on the CONTROLLER listener to the leader (a `KIND_CONTROL` frame holding a
//! [`ControlMessage`]).

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use potok_controller::controller::{Reply, Request};
use potok_protocol::codec::{Decode, Encode, Message};
use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;
use potok_protocol::messages::allocate_producer_ids_response::AllocateProducerIdsResponse;
use potok_protocol::messages::alter_partition_request::AlterPartitionRequest;
use potok_protocol::messages::alter_partition_response::AlterPartitionResponse;
use potok_protocol::messages::broker_heartbeat_request::BrokerHeartbeatRequest;
use potok_protocol::messages::broker_heartbeat_response::BrokerHeartbeatResponse;
use potok_protocol::messages::broker_registration_request::{BrokerRegistrationRequest, Listener};
use potok_protocol::messages::broker_registration_response::BrokerRegistrationResponse;
use potok_protocol::{ErrorCode, Uuid};

const OP_REQUEST: u8 = 0;
const OP_REPLY: u8 = 1;
const API_REGISTRATION: i16 = 62;
const API_HEARTBEAT: i16 = 63;
const API_ALTER_PARTITION: i16 = 56;
const API_ALLOCATE_PRODUCER_IDS: i16 = 67;

/// A broker-to-controller request or its reply, as carried by a control frame:
/// `u8` op, `u64 BE` id, `i16 BE` API key, then the Kafka message body at its highest version.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlMessage {
    /// A request; the reply carries the same id.
    Request {
        /// The sender's handle.
        id: u64,
        /// BrokerRegistration, BrokerHeartbeat, AlterPartition (at its highest version) or
        /// AllocateProducerIds.
        request: Request,
    },
    /// A reply to the request `id`.
    Reply {
        /// The request's handle.
        id: u64,
        /// The controller's answer.
        reply: Reply,
    },
}

fn put<M: Encode + Message>(b: &mut BytesMut, m: &M) -> Option<()> {
    m.encode(b, M::VALID_VERSIONS.1).ok()
}

fn get<M: Decode + Message>(b: &mut Bytes) -> Option<M> {
    let m = M::decode(b, M::VALID_VERSIONS.1).ok()?;
    b.is_empty().then_some(m)
}

impl ControlMessage {
    /// The frame body; `None` for requests and replies this transport does not carry.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut b = BytesMut::new();
        match self {
            ControlMessage::Request { id, request } => {
                b.put_u8(OP_REQUEST);
                b.put_u64(*id);
                match request {
                    Request::BrokerRegistration(r) => {
                        b.put_i16(API_REGISTRATION);
                        put(&mut b, r)?;
                    }
                    Request::BrokerHeartbeat(r) => {
                        b.put_i16(API_HEARTBEAT);
                        put(&mut b, r)?;
                    }
                    // The receiver decodes at the highest version; a request built for
                    // another version would be read wrongly.
                    Request::AlterPartition { version, request }
                        if *version == AlterPartitionRequest::VALID_VERSIONS.1 =>
                    {
                        b.put_i16(API_ALTER_PARTITION);
                        put(&mut b, request)?;
                    }
                    Request::AllocateProducerIds(r) => {
                        b.put_i16(API_ALLOCATE_PRODUCER_IDS);
                        put(&mut b, r)?;
                    }
                    _ => return None,
                }
            }
            ControlMessage::Reply { id, reply } => {
                b.put_u8(OP_REPLY);
                b.put_u64(*id);
                match reply {
                    Reply::BrokerRegistration(r) => {
                        b.put_i16(API_REGISTRATION);
                        put(&mut b, r)?;
                    }
                    Reply::BrokerHeartbeat(r) => {
                        b.put_i16(API_HEARTBEAT);
                        put(&mut b, r)?;
                    }
                    Reply::AlterPartition(r) => {
                        b.put_i16(API_ALTER_PARTITION);
                        put(&mut b, r)?;
                    }
                    Reply::AllocateProducerIds(r) => {
                        b.put_i16(API_ALLOCATE_PRODUCER_IDS);
                        put(&mut b, r)?;
                    }
                    _ => return None,
                }
            }
        }
        Some(b.to_vec())
    }

    /// Parses a frame body; `None` for anything malformed (the frame is dropped).
    pub fn decode(data: &[u8]) -> Option<ControlMessage> {
        if data.len() < 11 {
            return None;
        }
        let mut b = Bytes::copy_from_slice(data);
        let op = b.get_u8();
        let id = b.get_u64();
        let api = b.get_i16();
        match (op, api) {
            (OP_REQUEST, API_REGISTRATION) => Some(ControlMessage::Request {
                id,
                request: Request::BrokerRegistration(get::<BrokerRegistrationRequest>(&mut b)?),
            }),
            (OP_REQUEST, API_HEARTBEAT) => Some(ControlMessage::Request {
                id,
                request: Request::BrokerHeartbeat(get::<BrokerHeartbeatRequest>(&mut b)?),
            }),
            (OP_REPLY, API_REGISTRATION) => Some(ControlMessage::Reply {
                id,
                reply: Reply::BrokerRegistration(get::<BrokerRegistrationResponse>(&mut b)?),
            }),
            (OP_REPLY, API_HEARTBEAT) => Some(ControlMessage::Reply {
                id,
                reply: Reply::BrokerHeartbeat(get::<BrokerHeartbeatResponse>(&mut b)?),
            }),
            (OP_REQUEST, API_ALTER_PARTITION) => Some(ControlMessage::Request {
                id,
                request: Request::AlterPartition {
                    version: AlterPartitionRequest::VALID_VERSIONS.1,
                    request: get::<AlterPartitionRequest>(&mut b)?,
                },
            }),
            (OP_REPLY, API_ALTER_PARTITION) => Some(ControlMessage::Reply {
                id,
                reply: Reply::AlterPartition(get::<AlterPartitionResponse>(&mut b)?),
            }),
            (OP_REQUEST, API_ALLOCATE_PRODUCER_IDS) => Some(ControlMessage::Request {
                id,
                request: Request::AllocateProducerIds(get::<AllocateProducerIdsRequest>(&mut b)?),
            }),
            (OP_REPLY, API_ALLOCATE_PRODUCER_IDS) => Some(ControlMessage::Reply {
                id,
                reply: Reply::AllocateProducerIds(get::<AllocateProducerIdsResponse>(&mut b)?),
            }),
            _ => None,
        }
    }
}

/// This broker's registration and heartbeat state.
#[derive(Debug)]
pub struct BrokerLifecycle {
    broker_id: i32,
    cluster_id: String,
    incarnation_id: Uuid,
    listener: Listener,
    interval: Duration,
    /// The broker epoch of the current registration, once the controller answered it.
    epoch: Option<i64>,
    next_send: Instant,
    /// The request awaiting its reply and when it was sent.
    inflight: Option<(u64, Instant)>,
    next_id: u64,
    fenced: bool,
    /// Set on SIGTERM: heartbeats ask for controlled shutdown.
    pub want_shut_down: bool,
    /// The controller's permission to exit.
    pub should_shut_down: bool,
}

impl BrokerLifecycle {
    /// A broker that has not registered yet; `incarnation_id` is new for every process, as
    /// Kafka's.
    pub fn new(
        broker_id: i32,
        cluster_id: String,
        incarnation_id: Uuid,
        listener: Listener,
        interval: Duration,
        now: Instant,
    ) -> BrokerLifecycle {
        BrokerLifecycle {
            broker_id,
            cluster_id,
            incarnation_id,
            listener,
            interval,
            epoch: None,
            next_send: now,
            inflight: None,
            next_id: 1,
            fenced: true,
            want_shut_down: false,
            should_shut_down: false,
        }
    }

    /// The broker epoch, once registered.
    pub fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    /// Sends the next heartbeat at once (a SIGTERM's want_shut_down should not wait).
    pub fn hurry(&mut self, now: Instant) {
        self.next_send = now;
    }

    /// What to send at `now`, if anything: the registration until it is answered, then a
    /// heartbeat each interval. A request unanswered for two intervals (or a second at
    /// least) is given up and sent afresh: the leader may have changed or the frame been
    /// dropped.
    pub fn poll(&mut self, now: Instant, metadata_offset: i64) -> Option<(u64, Request)> {
        if let Some((_, sent)) = self.inflight {
            let patience = (self.interval * 2).max(Duration::from_secs(1));
            if now < sent + patience {
                return None;
            }
            self.inflight = None;
        }
        if now < self.next_send {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.inflight = Some((id, now));
        self.next_send = now + self.interval;
        let request = match self.epoch {
            None => Request::BrokerRegistration(BrokerRegistrationRequest {
                broker_id: self.broker_id,
                cluster_id: self.cluster_id.clone(),
                incarnation_id: self.incarnation_id,
                listeners: vec![self.listener.clone()],
                previous_broker_epoch: -1,
                ..Default::default()
            }),
            Some(epoch) => Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                broker_id: self.broker_id,
                broker_epoch: epoch,
                current_metadata_offset: metadata_offset,
                want_fence: false,
                want_shut_down: self.want_shut_down,
                ..Default::default()
            }),
        };
        Some((id, request))
    }

    /// Takes the reply to request `id` (replies to requests given up are ignored).
    pub fn on_reply(&mut self, id: u64, reply: Reply, now: Instant) {
        if self.inflight.map(|(i, _)| i) != Some(id) {
            return;
        }
        self.inflight = None;
        match reply {
            Reply::BrokerRegistration(r) if r.error_code == 0 => {
                tracing::info!(
                    broker_epoch = r.broker_epoch,
                    "registered with the controller"
                );
                self.epoch = Some(r.broker_epoch);
                // The first heartbeat follows at once, so that the broker is unfenced as soon
                // as it has caught up.
                self.next_send = now;
            }
            Reply::BrokerRegistration(r) => {
                tracing::debug!(
                    error_code = r.error_code,
                    "broker registration refused; retrying"
                );
            }
            Reply::BrokerHeartbeat(r) if r.error_code == ErrorCode::StaleBrokerEpoch as i16 => {
                tracing::warn!(epoch = ?self.epoch, "the controller no longer knows this broker epoch; registering again");
                self.epoch = None;
                self.fenced = true;
                self.next_send = now;
            }
            Reply::BrokerHeartbeat(r) if r.error_code == 0 => {
                if r.is_fenced != self.fenced {
                    tracing::info!(
                        fenced = r.is_fenced,
                        "the controller changed this broker's fencing"
                    );
                    self.fenced = r.is_fenced;
                }
                if r.should_shut_down && !self.should_shut_down {
                    tracing::info!("the controller allows this broker to shut down");
                    self.should_shut_down = true;
                }
                // A broker still fenced heartbeats faster while it catches up (Kafka's
                // lifecycle manager does too), so that it is unfenced soon after registering.
                if r.is_fenced || (self.want_shut_down && !self.should_shut_down) {
                    self.next_send = self.next_send.min(
                        now + self
                            .interval
                            .min(Duration::from_millis(100))
                            .max(Duration::from_millis(10)),
                    );
                }
            }
            Reply::BrokerHeartbeat(r) => {
                tracing::debug!(
                    error_code = r.error_code,
                    "broker heartbeat refused; retrying"
                );
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use potok_protocol::messages::alter_partition_request::{
        BrokerState, PartitionData, TopicData,
    };

    #[test]
    fn control_messages_round_trip_and_garbage_is_dropped() {
        let msgs = [
            ControlMessage::Request {
                id: 9,
                request: Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                    broker_id: 2,
                    broker_epoch: 17,
                    current_metadata_offset: 40,
                    want_shut_down: true,
                    ..Default::default()
                }),
            },
            ControlMessage::Reply {
                id: 3,
                reply: Reply::BrokerRegistration(BrokerRegistrationResponse {
                    broker_epoch: 5,
                    ..Default::default()
                }),
            },
            ControlMessage::Request {
                id: 4,
                request: Request::AlterPartition {
                    version: AlterPartitionRequest::VALID_VERSIONS.1,
                    request: AlterPartitionRequest {
                        broker_id: 1,
                        broker_epoch: 7,
                        topics: vec![TopicData {
                            topic_id: Uuid([9; 16]),
                            partitions: vec![PartitionData {
                                partition_index: 2,
                                leader_epoch: 3,
                                partition_epoch: 4,
                                new_isr_with_epochs: vec![BrokerState {
                                    broker_id: 1,
                                    broker_epoch: 7,
                                    ..Default::default()
                                }],
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                },
            },
            ControlMessage::Reply {
                id: 4,
                reply: Reply::AlterPartition(AlterPartitionResponse {
                    error_code: ErrorCode::NotController as i16,
                    ..Default::default()
                }),
            },
            ControlMessage::Request {
                id: 5,
                request: Request::AllocateProducerIds(AllocateProducerIdsRequest {
                    broker_id: 3,
                    broker_epoch: 8,
                    ..Default::default()
                }),
            },
            ControlMessage::Reply {
                id: 5,
                reply: Reply::AllocateProducerIds(AllocateProducerIdsResponse {
                    producer_id_start: 2000,
                    producer_id_len: 1000,
                    ..Default::default()
                }),
            },
        ];
        for m in msgs {
            let b = m.encode().unwrap();
            assert_eq!(ControlMessage::decode(&b), Some(m));
            for cut in 0..b.len() {
                assert_eq!(ControlMessage::decode(&b[..cut]), None);
            }
            let mut long = b.clone();
            long.push(0);
            assert_eq!(ControlMessage::decode(&long), None);
        }
    }

    #[test]
    fn registers_then_heartbeats_and_registers_again_on_a_stale_epoch() {
        let t0 = Instant::now();
        let mut l = BrokerLifecycle::new(
            1,
            "c".into(),
            Uuid([1; 16]),
            Listener::default(),
            Duration::from_millis(500),
            t0,
        );
        let (id, r) = l.poll(t0, 0).unwrap();
        assert!(matches!(r, Request::BrokerRegistration(_)));
        // Nothing more while the registration is in flight.
        assert!(l.poll(t0 + Duration::from_millis(600), 0).is_none());
        l.on_reply(
            id,
            Reply::BrokerRegistration(BrokerRegistrationResponse {
                broker_epoch: 12,
                ..Default::default()
            }),
            t0,
        );
        let (id, r) = l.poll(t0, 30).unwrap();
        let Request::BrokerHeartbeat(h) = r else {
            panic!("{r:?}")
        };
        assert_eq!((h.broker_epoch, h.current_metadata_offset), (12, 30));
        l.on_reply(
            id,
            Reply::BrokerHeartbeat(BrokerHeartbeatResponse {
                error_code: ErrorCode::StaleBrokerEpoch as i16,
                ..Default::default()
            }),
            t0,
        );
        assert_eq!(l.epoch(), None);
        let (_, r) = l.poll(t0, 30).unwrap();
        assert!(matches!(r, Request::BrokerRegistration(_)));
    }
}
