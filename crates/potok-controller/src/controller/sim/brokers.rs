//! The simulated brokers: processes with an incarnation that register, heartbeat, change the
//! ISRs of what they lead from their view of the metadata, allocate producer ids, shut down
//! cleanly, crash and come back; and the admin write that creates the topics.

use super::*;

/// A running broker process.
#[derive(Debug)]
pub(super) struct Proc {
    pub(super) incarnation: Uuid,
    pub(super) epoch: Option<i64>,
    pub(super) registering_since: Option<u64>,
    pub(super) next_heartbeat_ms: u64,
    pub(super) fenced: bool,
    pub(super) want_shut_down: bool,
}

/// A broker process that stopped.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dead {
    pub(super) since_ms: u64,
    pub(super) incarnation: Uuid,
    pub(super) restart_after_ms: u64,
    pub(super) checked: bool,
}

/// The BrokerRegistration a broker process sends.
fn registration(b: i32, incarnation: Uuid) -> Request {
    Request::BrokerRegistration(BrokerRegistrationRequest {
        broker_id: b,
        cluster_id: CLUSTER.into(),
        incarnation_id: incarnation,
        listeners: vec![Listener {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9000 + b as u16,
            ..Default::default()
        }],
        rack: None,
        ..Default::default()
    })
}

impl ControllerSim {
    pub(super) fn start_broker(&mut self, b: i32) {
        self.dead.remove(&b);
        self.incarnations += 1;
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&self.incarnations.to_be_bytes());
        id[15] = b as u8;
        self.brokers.insert(
            b,
            Some(Proc {
                incarnation: Uuid(id),
                epoch: None,
                registering_since: None,
                next_heartbeat_ms: self.now_ms,
                fenced: true,
                want_shut_down: false,
            }),
        );
    }

    pub(super) fn broker_reply(&mut self, broker: i32, incarnation: Uuid, reply: Reply) {
        let now = self.now_ms;
        let Some(Some(p)) = self.brokers.get_mut(&broker) else {
            return;
        };
        if p.incarnation != incarnation {
            // The connection died with the process that sent the request.
            return;
        }
        match reply {
            Reply::BrokerRegistration(r) => {
                p.registering_since = None;
                if r.error_code == 0 {
                    p.epoch = Some(r.broker_epoch);
                    p.fenced = true;
                    p.next_heartbeat_ms = now;
                }
            }
            Reply::BrokerHeartbeat(r) => {
                if r.error_code == ErrorCode::StaleBrokerEpoch as i16 {
                    p.epoch = None;
                    self.stats.stale_epochs_refused += 1;
                } else if r.error_code == 0 {
                    p.fenced = r.is_fenced;
                    if r.should_shut_down && p.want_shut_down {
                        // A clean stop.
                        self.stop_broker(broker, 0);
                        self.stats.clean_shutdowns += 1;
                    } else if r.should_shut_down {
                        // Fenced on its way out (its session expired in controlled shutdown):
                        // it comes back with a new registration.
                        p.epoch = None;
                    }
                }
            }
            _ => {}
        }
    }

    /// Broker `b`'s process stops (a crash or a clean stop); it may restart `outage_ms` later.
    pub(super) fn stop_broker(&mut self, b: i32, outage_ms: u64) {
        if let Some(Some(p)) = self.brokers.insert(b, None) {
            self.dead.insert(
                b,
                Dead {
                    since_ms: self.now_ms,
                    incarnation: p.incarnation,
                    restart_after_ms: self.now_ms + outage_ms,
                    checked: false,
                },
            );
        }
    }

    /// The voter a broker talks to: the one it believes leads, else any running one.
    fn target(&mut self) -> Option<u64> {
        let up: Vec<u64> = self
            .net
            .voter_ids()
            .into_iter()
            .filter(|v| self.ctrls[v].is_some())
            .collect();
        if let Some(&l) = up
            .iter()
            .find(|v| self.net.voter(**v).is_some_and(|n| n.is_leader()))
        {
            if self.rng().gen_bool(0.9) {
                return Some(l);
            }
        }
        if up.is_empty() {
            return None;
        }
        let i = self.rng().gen_range(0..up.len());
        Some(up[i])
    }

    fn request(&mut self, voter: u64, broker: i32, request: Request) {
        let Some(Some(p)) = self.brokers.get(&broker) else {
            return;
        };
        self.next_request += 1;
        let id = self.next_request;
        let heartbeat_epoch = match &request {
            Request::BrokerHeartbeat(h) => Some(h.broker_epoch),
            _ => None,
        };
        self.sent.insert(
            id,
            Sent {
                broker,
                incarnation: p.incarnation,
                heartbeat_epoch,
            },
        );
        self.send(Msg::ToController { voter, id, request });
    }

    pub(super) fn brokers_act(&mut self) {
        self.maybe_create_topics();
        for b in 1..=BROKERS {
            // Lifecycle faults.
            let alive = self.brokers[&b].is_some();
            if alive && self.rng().gen_bool(0.004) {
                // Some outages are long, so that fencing is seen to happen.
                let outage = if self.rng().gen_bool(0.3) { 10_000 } else { 0 };
                self.stop_broker(b, outage);
                continue;
            }
            if !alive {
                let may = self
                    .dead
                    .get(&b)
                    .is_none_or(|d| self.now_ms >= d.restart_after_ms);
                if may && self.rng().gen_bool(0.03) {
                    self.start_broker(b);
                }
                continue;
            }
            let unfenced = self.brokers[&b].as_ref().is_some_and(|p| !p.fenced);
            if unfenced && self.rng().gen_bool(0.003) {
                if let Some(Some(p)) = self.brokers.get_mut(&b) {
                    p.want_shut_down = true;
                }
            }
            let Some(voter) = self.target() else {
                continue;
            };
            let view_offset = self.ctrls[&voter]
                .as_ref()
                .map_or(0, |c| c.committed_offset().0);
            let now = self.now_ms;
            let Some(Some(p)) = self.brokers.get_mut(&b) else {
                continue;
            };
            match p.epoch {
                None => {
                    let stuck = p.registering_since.is_some_and(|t| now - t > 2_000);
                    if p.registering_since.is_none() || stuck {
                        p.registering_since = Some(now);
                        let incarnation = p.incarnation;
                        self.request(voter, b, registration(b, incarnation));
                    }
                }
                Some(epoch) => {
                    let fenced = p.fenced;
                    if now >= p.next_heartbeat_ms {
                        p.next_heartbeat_ms = now + HEARTBEAT_MS;
                        let want_shut_down = p.want_shut_down;
                        self.request(
                            voter,
                            b,
                            Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                                broker_id: b,
                                broker_epoch: epoch,
                                current_metadata_offset: view_offset,
                                want_fence: false,
                                want_shut_down,
                                ..Default::default()
                            }),
                        );
                    }
                    if !fenced && self.rng().gen_bool(0.08) {
                        self.alter_isr(voter, b, epoch);
                    }
                    if self.rng().gen_bool(0.01) {
                        self.request(
                            voter,
                            b,
                            Request::AllocateProducerIds(AllocateProducerIdsRequest {
                                broker_id: b,
                                broker_epoch: epoch,
                                ..Default::default()
                            }),
                        );
                    }
                }
            }
        }
    }

    /// A leader shrinks or expands the ISR of one partition it leads, as its (possibly stale)
    /// view of the metadata says.
    fn alter_isr(&mut self, voter: u64, b: i32, epoch: i64) {
        let Some(view) = self.ctrls[&voter].as_ref().map(|c| c.image().clone()) else {
            return;
        };
        let mut led: Vec<(Uuid, i32, potok_metadata::PartitionState)> = Vec::new();
        let mut topics: Vec<_> = view.topics().collect();
        topics.sort_by_key(|t| t.id);
        for t in topics {
            for (&p, s) in &t.partitions {
                if s.leader == Some(BrokerId(b)) {
                    led.push((t.id, p, s.clone()));
                }
            }
        }
        if led.is_empty() {
            return;
        }
        let i = self.rng().gen_range(0..led.len());
        let (topic, p, s) = led.swap_remove(i);
        let outside: Vec<BrokerId> = s
            .replicas
            .iter()
            .copied()
            .filter(|r| !s.isr.contains(r))
            .collect();
        let mut isr = s.isr.clone();
        if !outside.is_empty() && self.rng().gen_bool(0.6) {
            let j = self.rng().gen_range(0..outside.len());
            isr.push(outside[j]);
        } else if isr.len() > 1 {
            let others: Vec<usize> = (0..isr.len()).filter(|&k| isr[k] != BrokerId(b)).collect();
            let k = others[self.rng().gen_range(0..others.len())];
            isr.remove(k);
        } else {
            return;
        }
        let members = isr
            .iter()
            .map(|m| BrokerState {
                broker_id: m.0,
                broker_epoch: view.brokers().get(m).map_or(-1, |r| r.epoch),
                ..Default::default()
            })
            .collect();
        let req = AlterPartitionRequest {
            broker_id: b,
            broker_epoch: epoch,
            topics: vec![TopicData {
                topic_id: topic,
                partitions: vec![PartitionData {
                    partition_index: p,
                    leader_epoch: s.leader_epoch.0,
                    new_isr_with_epochs: members,
                    partition_epoch: s.partition_epoch,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        self.request(
            voter,
            b,
            Request::AlterPartition {
                version: 3,
                request: req,
            },
        );
    }

    /// Two topics of RF 3 over the brokers, written as soon as a controller is active (the
    /// brokers may not even be registered yet).
    pub(super) fn maybe_create_topics(&mut self) {
        if self.topics_created {
            return;
        }
        let Some(voter) = self
            .ctrls
            .iter()
            .find(|(_, c)| c.as_ref().is_some_and(|c| c.is_active()))
            .map(|(v, _)| *v)
        else {
            return;
        };
        if let Some(c) = self.ctrls[&voter].as_ref() {
            if c.image().topic_by_name("a").is_some() {
                self.topics_created = true;
                return;
            }
        }
        let mut records = Vec::new();
        for (n, name) in ["a", "b"].iter().enumerate() {
            let id = Uuid([n as u8 + 1; 16]);
            records.push(MetadataRecord::Topic(TopicRecord {
                name: (*name).into(),
                topic_id: id,
                ..Default::default()
            }));
            for p in 0..4 {
                let replicas: Vec<i32> = (0..3).map(|k| 1 + (p + k + n as i32) % BROKERS).collect();
                // Written as an admin path builds it from its own view (the first replica
                // leads), whatever has happened to that broker since: the controller must
                // repair leaders that are not live ISR members.
                records.push(MetadataRecord::Partition(PartitionRecord {
                    partition_id: p,
                    topic_id: id,
                    replicas: replicas.clone(),
                    leader: replicas[0],
                    isr: replicas,
                    ..Default::default()
                }));
            }
        }
        self.next_request += 1;
        let id = self.next_request;
        // Straight to the controller (an admin write forwarded from a broker).
        self.feed(
            voter,
            Event::Request {
                id,
                request: Request::Write(records),
            },
        );
    }

    pub(super) fn settling_brokers(&mut self) {
        self.maybe_create_topics();
        for b in 1..=BROKERS {
            let Some(voter) = self.target() else {
                continue;
            };
            let view_offset = self.ctrls[&voter]
                .as_ref()
                .map_or(0, |c| c.committed_offset().0);
            let now = self.now_ms;
            let Some(Some(p)) = self.brokers.get_mut(&b) else {
                continue;
            };
            match p.epoch {
                None => {
                    let stuck = p.registering_since.is_some_and(|t| now - t > 2_000);
                    if p.registering_since.is_none() || stuck {
                        p.registering_since = Some(now);
                        let incarnation = p.incarnation;
                        self.request(voter, b, registration(b, incarnation));
                    }
                }
                Some(epoch) if now >= p.next_heartbeat_ms => {
                    p.next_heartbeat_ms = now + HEARTBEAT_MS;
                    self.request(
                        voter,
                        b,
                        Request::BrokerHeartbeat(BrokerHeartbeatRequest {
                            broker_id: b,
                            broker_epoch: epoch,
                            current_metadata_offset: view_offset,
                            ..Default::default()
                        }),
                    );
                }
                Some(_) => {}
            }
        }
    }
}
