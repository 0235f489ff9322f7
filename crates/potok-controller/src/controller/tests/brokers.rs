//! Registration, heartbeats, session fencing, controlled shutdown, the reply pipeline and
//! activation.

use potok_protocol::messages::broker_registration_request::Feature;
use potok_protocol::messages::internal::feature_level_record::FeatureLevelRecord;

use super::*;

#[test]
fn registration_gets_its_record_offset_as_epoch_and_starts_fenced() {
    let mut h = H::new();
    let r = h.register(1, 0);
    assert_eq!(code(r.error_code), ErrorCode::None);
    // The first proposal of a controller active from offset 2.
    assert_eq!(r.broker_epoch, 2);
    let MetadataRecord::RegisterBroker(rec) = &h.log[0].1[0] else {
        panic!("{:?}", h.log)
    };
    assert_eq!(rec.broker_epoch, 2);
    assert_eq!(rec.incarnation_id, incarnation(1, 0));
    assert!(rec.fenced);
    assert_eq!(rec.rack.as_deref(), Some("rack-1"));
    assert_eq!(rec.end_points[0].port, 9093);
    let reg = &h.c.image().brokers()[&BrokerId(1)];
    assert!(reg.fenced);
    assert_eq!(reg.epoch, 2);
    // A second broker gets the next offset: epochs are unique in the cluster.
    assert_eq!(h.register(2, 0).broker_epoch, 3);
    assert!(h.faults.is_empty(), "{:?}", h.faults);
}

#[test]
fn registration_is_refused_for_another_cluster_a_negative_id_or_an_unsupported_feature() {
    let mut h = H::new();
    let mut req = registration(1, incarnation(1, 0));
    req.cluster_id = "other".into();
    let Reply::BrokerRegistration(r) = h.request(Request::BrokerRegistration(req)) else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::InconsistentClusterId);
    assert_eq!(r.broker_epoch, -1);
    let Reply::BrokerRegistration(r) = h.request(Request::BrokerRegistration(registration(
        -1,
        incarnation(1, 0),
    ))) else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::InvalidRequest);
    // A finalized feature level outside the broker's range.
    let r = h.request(Request::Write(vec![MetadataRecord::FeatureLevel(
        FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 21,
            ..Default::default()
        },
    )]));
    assert!(matches!(r, Reply::Write(Ok(_))));
    let mut req = registration(1, incarnation(1, 0));
    req.features = vec![Feature {
        name: "metadata.version".into(),
        min_supported_version: 1,
        max_supported_version: 20,
        ..Default::default()
    }];
    let Reply::BrokerRegistration(r) = h.request(Request::BrokerRegistration(req.clone())) else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::UnsupportedVersion);
    // Not naming metadata.version means supporting only level 1.
    let Reply::BrokerRegistration(r) = h.request(Request::BrokerRegistration(registration(
        1,
        incarnation(1, 0),
    ))) else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::UnsupportedVersion);
    req.features[0].max_supported_version = 21;
    let Reply::BrokerRegistration(r) = h.request(Request::BrokerRegistration(req)) else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::None);
    assert!(h.c.image().brokers().contains_key(&BrokerId(1)));
}

#[test]
fn heartbeats_check_the_broker_epoch() {
    let mut h = H::new();
    let e = h.register(1, 0).broker_epoch;
    let r = h.heartbeat(1, e + 1);
    assert_eq!(code(r.error_code), ErrorCode::StaleBrokerEpoch);
    assert!(r.is_fenced);
    let r = h.heartbeat(7, e);
    assert_eq!(code(r.error_code), ErrorCode::StaleBrokerEpoch);
    let r = h.heartbeat(1, e);
    assert_eq!(code(r.error_code), ErrorCode::None);
    assert!(!r.is_fenced);
}

#[test]
fn a_broker_is_unfenced_only_once_it_has_caught_up_with_its_registration() {
    let mut h = H::new();
    let e = h.register(1, 0).broker_epoch;
    let r = h.heartbeat_full(1, e, e - 1, false, false);
    assert!(r.is_fenced && !r.is_caught_up, "{r:?}");
    assert!(h.c.image().brokers()[&BrokerId(1)].fenced);
    // want_fence keeps it fenced even when caught up.
    let r = h.heartbeat_full(1, e, e, true, false);
    assert!(r.is_fenced && r.is_caught_up, "{r:?}");
    let before = h.log.len();
    let r = h.heartbeat_full(1, e, e, false, false);
    assert!(!r.is_fenced && r.is_caught_up, "{r:?}");
    assert!(!h.c.image().brokers()[&BrokerId(1)].fenced);
    assert!(matches!(
        h.records_since(before).as_slice(),
        [MetadataRecord::UnfenceBroker(u)] if u.id == 1 && u.epoch == e
    ));
    // An unfenced broker asking to be fenced is.
    let r = h.heartbeat_full(1, e, e, true, false);
    assert!(r.is_fenced && !r.should_shut_down);
    assert!(h.c.image().brokers()[&BrokerId(1)].fenced);
}

#[test]
fn a_silent_broker_is_fenced_after_the_session_timeout_and_its_partitions_move() {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3]);
    let t = h.create_topic("t", &[&[1, 2, 3], &[2, 3, 1], &[3, 1, 2]]);
    // Brokers 2 and 3 keep heartbeating; 1 goes silent.
    for _ in 0..8 {
        h.now += 1_000;
        h.heartbeat(2, epochs[&2]);
        h.heartbeat(3, epochs[&3]);
        h.event(Event::Tick);
        h.commit();
    }
    assert!(
        !h.c.image().brokers()[&BrokerId(1)].fenced,
        "fenced too early"
    );
    let deadline = h.c.next_deadline_ms().expect("a session to expire");
    assert!(deadline > h.now);
    h.now = deadline - 1;
    h.event(Event::Tick);
    assert!(
        h.uncommitted.is_empty(),
        "nothing expires before the deadline"
    );
    h.now = deadline;
    h.event(Event::Tick);
    h.commit();
    assert!(h.c.image().brokers()[&BrokerId(1)].fenced);
    let p0 = h.partition(t, 0);
    assert_eq!(
        p0.leader,
        Some(BrokerId(2)),
        "next ISR member in preferred order"
    );
    assert_eq!(p0.leader_epoch.0, 1);
    assert_eq!(p0.isr, vec![BrokerId(2), BrokerId(3)]);
    for p in [1, 2] {
        let s = h.partition(t, p);
        assert!(!s.isr.contains(&BrokerId(1)));
        assert_eq!(
            s.leader_epoch.0, 0,
            "a follower leaving bumps no leader epoch"
        );
        assert!(s.leader.is_some_and(|l| l != BrokerId(1)));
    }
    // The fence record comes after the partition changes, in one entry.
    let (_, last) = h.log.last().unwrap();
    assert!(matches!(last.last(), Some(MetadataRecord::FenceBroker(f)) if f.id == 1));
    assert!(last[..last.len() - 1]
        .iter()
        .all(|r| matches!(r, MetadataRecord::PartitionChange(_))));
}

#[test]
fn the_last_isr_member_stays_and_gets_the_leadership_back_when_unfenced() {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2]);
    let t = h.create_topic("t", &[&[1, 2]]);
    // Both silent: 1 and 2 expire at the same time and are fenced one after the other.
    h.advance(SESSION_MS + 1);
    let p = h.partition(t, 0);
    assert_eq!(p.leader, None);
    assert_eq!(p.isr.len(), 1, "KIP-841: the last member stays: {p:?}");
    let last = p.isr[0].0;
    // The other one comes back first: it is not in the ISR, so it does not lead.
    let other = if last == 1 { 2 } else { 1 };
    let r = h.heartbeat(other, epochs[&other]);
    assert!(!r.is_fenced);
    assert_eq!(
        h.partition(t, 0).leader,
        None,
        "never a leader outside the ISR"
    );
    let r = h.heartbeat(last, epochs[&last]);
    assert!(!r.is_fenced);
    let p2 = h.partition(t, 0);
    assert_eq!(p2.leader, Some(BrokerId(last)));
    assert!(p2.leader_epoch > p.leader_epoch);
}

#[test]
fn a_restarted_broker_keeps_its_replicas_and_rejoins() {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3]);
    let t = h.create_topic("t", &[&[1, 2, 3]]);
    // Broker 1 restarts at once: a new incarnation while the old session is alive is
    // refused, as Kafka refuses it, until that session expires.
    let r = h.register(1, 1);
    assert_eq!(code(r.error_code), ErrorCode::DuplicateBrokerRegistration);
    // The same incarnation may re-register (a retried registration).
    let again = h.register(1, 0);
    assert_eq!(code(again.error_code), ErrorCode::None);
    assert!(again.broker_epoch > epochs[&1]);
    // Re-registering fences it and takes it out of the ISR and leadership (KIP-966's
    // unclean-shutdown handling); its replicas stay.
    let p = h.partition(t, 0);
    assert_eq!(p.replicas, vec![BrokerId(1), BrokerId(2), BrokerId(3)]);
    assert_eq!(p.isr, vec![BrokerId(2), BrokerId(3)]);
    assert_eq!(p.leader, Some(BrokerId(2)));
    // The old epoch is stale now.
    let r = h.heartbeat(1, epochs[&1]);
    assert_eq!(code(r.error_code), ErrorCode::StaleBrokerEpoch);
    // A fenced registration has no session: a new incarnation takes the id over.
    let new = h.register(1, 2);
    assert_eq!(code(new.error_code), ErrorCode::None);
    let r = h.heartbeat(1, new.broker_epoch);
    assert!(!r.is_fenced);
    assert_eq!(
        h.c.image().brokers()[&BrokerId(1)].incarnation_id,
        incarnation(1, 2)
    );
    assert_eq!(h.partition(t, 0).replicas.len(), 3);
}

#[test]
fn controlled_shutdown_moves_leadership_before_the_broker_may_stop() {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3, 4]);
    let t = h.create_topic("t", &[&[1, 2, 3], &[2, 1, 3], &[1, 3, 2]]);
    // A broker leading nothing may stop at once.
    let at = h.c.committed_offset().0;
    let r = h.heartbeat_full(4, epochs[&4], at, false, true);
    assert!(r.should_shut_down && r.is_fenced, "{r:?}");
    assert!(h.c.image().brokers()[&BrokerId(4)].fenced);
    let before = h.log.len();
    let at = h.c.committed_offset().0;
    let r = h.heartbeat_full(1, epochs[&1], at, false, true);
    assert!(!r.should_shut_down && !r.is_fenced, "{r:?}");
    let reg = &h.c.image().brokers()[&BrokerId(1)];
    assert!(reg.in_controlled_shutdown && !reg.fenced);
    let records = h.records_since(before);
    assert!(matches!(
        &records[0],
        MetadataRecord::BrokerRegistrationChange(c) if c.broker_id == 1 && c.in_controlled_shutdown == 1
    ));
    for p in 0..3 {
        let s = h.partition(t, p);
        assert!(s.leader.is_some_and(|l| l != BrokerId(1)), "p{p}: {s:?}");
        assert!(!s.isr.contains(&BrokerId(1)));
    }
    // It leads nothing now, but may stop only once every active broker has applied the move.
    let shutdown_at = h.c.committed_offset().0;
    let r = h.heartbeat_full(1, epochs[&1], shutdown_at, false, true);
    assert!(
        !r.should_shut_down,
        "brokers 2 and 3 have not seen the change yet"
    );
    h.heartbeat_full(2, epochs[&2], shutdown_at, false, false);
    let r = h.heartbeat_full(1, epochs[&1], shutdown_at, false, true);
    assert!(!r.should_shut_down, "broker 3 has not seen it yet");
    h.heartbeat_full(3, epochs[&3], shutdown_at, false, false);
    let r = h.heartbeat_full(1, epochs[&1], shutdown_at, false, true);
    assert!(r.should_shut_down && r.is_fenced, "{r:?}");
    assert!(h.c.image().brokers()[&BrokerId(1)].fenced);
    assert!(h.faults.is_empty(), "{:?}", h.faults);
}

#[test]
fn a_controlled_shutdown_never_leaves_a_partition_it_led_without_a_leader_when_others_are_in_sync()
{
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3]);
    let mut lists: Vec<Vec<i32>> = Vec::new();
    for p in 0..12 {
        lists.push(vec![1 + p % 3, 1 + (p + 1) % 3, 1 + (p + 2) % 3]);
    }
    let refs: Vec<&[i32]> = lists.iter().map(|l| l.as_slice()).collect();
    let t = h.create_topic("t", &refs);
    let at = h.c.committed_offset().0;
    h.heartbeat_full(2, epochs[&2], at, false, true);
    for (p, s) in &h.c.image().topic(t).unwrap().partitions {
        assert!(s.leader.is_some(), "p{p}: {s:?}");
    }
}

#[test]
fn replies_wait_for_the_commit_of_earlier_proposals() {
    let mut h = H::new();
    let reg = h.send(Request::BrokerRegistration(registration(
        1,
        incarnation(1, 0),
    )));
    assert!(
        h.replies.is_empty(),
        "a reply before its record is committed"
    );
    // A heartbeat with a stale epoch writes nothing but waits for the registration's commit.
    let hb = h.send(Request::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 1,
        broker_epoch: 99,
        ..Default::default()
    }));
    assert!(h.replies.is_empty());
    h.commit();
    assert!(h.replies.contains_key(&reg) && h.replies.contains_key(&hb));
}

#[test]
fn losing_leadership_answers_waiting_requests_not_controller() {
    let mut h = H::new();
    let id = h.send(Request::BrokerRegistration(registration(
        1,
        incarnation(1, 0),
    )));
    h.event(Event::Resigned);
    assert!(!h.c.is_active());
    let Some(Reply::BrokerRegistration(r)) = h.replies.remove(&id) else {
        panic!("{:?}", h.replies)
    };
    assert_eq!(code(r.error_code), ErrorCode::NotController);
    // Requests to a standby are refused at once.
    let hb = h.send(Request::BrokerHeartbeat(BrokerHeartbeatRequest {
        broker_id: 1,
        ..Default::default()
    }));
    let Some(Reply::BrokerHeartbeat(r)) = h.replies.remove(&hb) else {
        panic!("{:?}", h.replies)
    };
    assert_eq!(code(r.error_code), ErrorCode::NotController);
    // The dropped proposal, committed after all by the next leader, is applied as any entry.
    let (offset, records) = h.uncommitted.pop_front().unwrap();
    h.event(Event::Committed { offset, records });
    assert!(h.c.image().brokers().contains_key(&BrokerId(1)));
}

#[test]
fn another_entry_at_a_proposed_offset_means_the_leadership_was_lost() {
    let mut h = H::new();
    let id = h.send(Request::BrokerRegistration(registration(
        1,
        incarnation(1, 0),
    )));
    let (offset, _) = h.uncommitted.pop_front().unwrap();
    // A new leader's empty entry took that offset.
    h.event(Event::Committed {
        offset,
        records: vec![],
    });
    assert!(!h.c.is_active());
    assert!(matches!(
        h.replies.remove(&id),
        Some(Reply::BrokerRegistration(r)) if code(r.error_code) == ErrorCode::NotController
    ));
    assert!(h.c.image().brokers().is_empty());
}

#[test]
fn a_new_controller_activates_only_after_replaying_the_log_and_gives_sessions_afresh() {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2]);
    h.create_topic("t", &[&[1, 2]]);
    // Another node replays the same log; it leads from the offset after its empty entry.
    let mut c = Controller::new(ControllerConfig {
        session_timeout_ms: SESSION_MS,
        ..ControllerConfig::new(CLUSTER)
    });
    let later = h.now + 60_000;
    let mut out = c.handle(
        Event::Committed {
            offset: MetadataOffset(1),
            records: vec![],
        },
        later,
    );
    let last = h.log.last().unwrap().0 .0;
    let noop = MetadataOffset(last + 1);
    out.extend(c.handle(
        Event::BecameLeader {
            next_offset: MetadataOffset(noop.0 + 1),
        },
        later,
    ));
    for (offset, records) in h.log.clone() {
        assert!(
            !c.is_active(),
            "active before replaying offset {}",
            offset.0
        );
        out.extend(c.handle(Event::Committed { offset, records }, later));
    }
    assert!(!c.is_active());
    out.extend(c.handle(
        Event::Committed {
            offset: noop,
            records: vec![],
        },
        later,
    ));
    assert!(c.is_active());
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(c.image(), h.c.image());
    // Its sessions start now: nobody is fenced for the time before it took over.
    let out = c.handle(Event::Tick, later + SESSION_MS);
    assert!(out.is_empty(), "{out:?}");
    let out = c.handle(Event::Tick, later + SESSION_MS + 1);
    assert_eq!(out.len(), 2, "one fencing batch per broker: {out:?}");
    let _ = epochs;
}

#[test]
fn writes_are_checked_against_the_speculative_image() {
    let mut h = H::new();
    h.live_brokers(&[1]);
    h.create_topic("t", &[&[1]]);
    let r = h.request(Request::Write(vec![MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: Uuid([9; 16]),
        ..Default::default()
    })]));
    assert!(
        matches!(r, Reply::Write(Err(WriteError::Invalid(_)))),
        "{r:?}"
    );
    // Two writes in flight: the second sees the first.
    let a = h.send(Request::Write(vec![MetadataRecord::Topic(TopicRecord {
        name: "u".into(),
        topic_id: Uuid([10; 16]),
        ..Default::default()
    })]));
    let b = h.send(Request::Write(vec![MetadataRecord::Topic(TopicRecord {
        name: "u".into(),
        topic_id: Uuid([11; 16]),
        ..Default::default()
    })]));
    h.commit();
    assert!(matches!(h.replies[&a], Reply::Write(Ok(_))));
    assert!(matches!(
        h.replies[&b],
        Reply::Write(Err(WriteError::Invalid(_)))
    ));
    assert!(h.c.image().topic_by_name("u").is_some());
    assert!(h.faults.is_empty());
}

#[test]
fn a_write_naming_a_leader_that_is_not_a_live_isr_member_gets_an_election() {
    let mut h = H::new();
    let e = h.live_brokers(&[1, 2, 3]);
    h.heartbeat_full(1, e[&1], h.c.committed_offset().0, true, false);
    assert!(h.c.image().brokers()[&BrokerId(1)].fenced);
    // Built by an admin path that still saw broker 1 alive.
    let before = h.log.len();
    let t = h.create_topic("t", &[&[1, 2, 3], &[2, 3, 1], &[4, 1]]);
    let p0 = h.partition(t, 0);
    assert_eq!(p0.leader, Some(BrokerId(2)), "{p0:?}");
    assert_eq!(p0.leader_epoch.0, 1);
    assert_eq!(h.partition(t, 1).leader, Some(BrokerId(2)));
    assert_eq!(h.partition(t, 1).leader_epoch.0, 0, "a live leader is kept");
    // Nobody live in the ISR: no leader rather than a dead one.
    assert_eq!(h.partition(t, 2).leader, None);
    // All in the write's own entry.
    assert_eq!(h.log.len(), before + 1);
}

#[test]
fn a_committed_entry_with_a_refused_record_is_skipped_whole() {
    let mut c = Controller::new(ControllerConfig::new(CLUSTER));
    let topic = MetadataRecord::Topic(TopicRecord {
        name: "t".into(),
        topic_id: Uuid([1; 16]),
        ..Default::default()
    });
    let out = c.handle(
        Event::Committed {
            offset: MetadataOffset(1),
            records: vec![
                topic.clone(),
                // A fence of a broker that is not registered.
                MetadataRecord::FenceBroker(
                    potok_protocol::messages::internal::fence_broker_record::FenceBrokerRecord {
                        id: 5,
                        epoch: 1,
                        ..Default::default()
                    },
                ),
            ],
        },
        0,
    );
    assert!(matches!(out.as_slice(), [Effect::MetadataFault { offset, .. }] if offset.0 == 1));
    assert!(
        c.image().topic_by_name("t").is_none(),
        "half an entry applied"
    );
    assert_eq!(c.committed_offset(), MetadataOffset(1));
    // An offset reported twice is a fault, not applied again.
    let out = c.handle(
        Event::Committed {
            offset: MetadataOffset(1),
            records: vec![topic],
        },
        0,
    );
    assert!(matches!(out.as_slice(), [Effect::MetadataFault { .. }]));
    assert!(c.image().topic_by_name("t").is_none());
}

#[test]
fn a_refused_write_leaves_nothing_behind_in_the_speculative_image() {
    let mut h = H::new();
    let topic = |name: &str, id: u8| {
        MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: Uuid([id; 16]),
            ..Default::default()
        })
    };
    // Its first record applies, its second does not: the whole write is refused.
    let r = h.request(Request::Write(vec![topic("v", 20), topic("v", 21)]));
    assert!(
        matches!(r, Reply::Write(Err(WriteError::Invalid(_)))),
        "{r:?}"
    );
    assert!(h.log.is_empty(), "nothing proposed");
    // Had "v" stayed in the speculative image, this would be refused.
    let r = h.request(Request::Write(vec![topic("v", 22)]));
    assert!(matches!(r, Reply::Write(Ok(_))), "{r:?}");
    assert_eq!(h.c.image().topic_by_name("v").unwrap().id, Uuid([22; 16]));
}

#[test]
fn a_standby_has_no_deadline_and_answers_every_request_not_controller() {
    let mut c = Controller::new(ControllerConfig::new(CLUSTER));
    assert_eq!(c.next_deadline_ms(), None);
    let requests = [
        Request::BrokerRegistration(registration(1, incarnation(1, 0))),
        Request::BrokerHeartbeat(BrokerHeartbeatRequest::default()),
        Request::AlterPartition {
            version: 3,
            request: AlterPartitionRequest::default(),
        },
        Request::AllocateProducerIds(
            potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest::default(),
        ),
        Request::Write(vec![]),
    ];
    for (id, request) in requests.into_iter().enumerate() {
        let out = c.handle(
            Event::Request {
                id: id as u64,
                request: request.clone(),
            },
            0,
        );
        let [Effect::Reply { reply, .. }] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(*reply, Reply::error(&request, ErrorCode::NotController));
        let code = match reply {
            Reply::BrokerRegistration(r) => r.error_code,
            Reply::BrokerHeartbeat(r) => r.error_code,
            Reply::AlterPartition(r) => r.error_code,
            Reply::AllocateProducerIds(r) => r.error_code,
            Reply::Write(r) => {
                assert_eq!(*r, Err(WriteError::NotController));
                ErrorCode::NotController as i16
            }
        };
        assert_eq!(code, ErrorCode::NotController as i16);
    }
}
