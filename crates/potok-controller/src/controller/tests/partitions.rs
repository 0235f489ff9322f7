//! AlterPartition, unclean elections and producer-id blocks.

use potok_protocol::messages::allocate_producer_ids_request::AllocateProducerIdsRequest;

use super::*;
use crate::controller::partitions::unclean_enabled;
use crate::placement::NO_LEADER_CHANGE;

/// Three live brokers and topic "t" with one partition on [1, 2, 3], led by 1.
fn cluster() -> (H, BTreeMap<i32, i64>, Uuid) {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3]);
    let t = h.create_topic("t", &[&[1, 2, 3]]);
    (h, epochs, t)
}

fn partition_code(r: &AlterPartitionResponse) -> ErrorCode {
    assert_eq!(code(r.error_code), ErrorCode::None, "{r:?}");
    code(r.topics[0].partitions[0].error_code)
}

#[test]
fn alter_partition_shrinks_and_expands_the_isr() {
    let (mut h, e, t) = cluster();
    let before = h.log.len();
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1]), (2, e[&2])]);
    assert_eq!(partition_code(&r), ErrorCode::None);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.leader_id, p.leader_epoch, p.partition_epoch), (1, 0, 1));
    assert_eq!(p.isr, vec![1, 2]);
    assert!(matches!(
        h.records_since(before).as_slice(),
        [MetadataRecord::PartitionChange(c)] if c.isr == Some(vec![1, 2]) && c.leader == NO_LEADER_CHANGE
    ));
    let s = h.partition(t, 0);
    assert_eq!(s.isr, vec![BrokerId(1), BrokerId(2)]);
    assert_eq!((s.leader_epoch.0, s.partition_epoch), (0, 1));
    // Broker 3 caught up again: the leader adds it with its current epoch.
    let r = h.alter_partition(
        3,
        1,
        e[&1],
        t,
        "",
        0,
        0,
        1,
        &[(1, e[&1]), (2, e[&2]), (3, e[&3])],
    );
    assert_eq!(partition_code(&r), ErrorCode::None);
    assert_eq!(r.topics[0].partitions[0].partition_epoch, 2);
    assert_eq!(h.partition(t, 0).isr.len(), 3);
}

#[test]
fn alter_partition_validates_epochs_and_the_leader() {
    let (mut h, e, t) = cluster();
    let isr = [(1, e[&1]), (2, e[&2])];
    // A stale partition epoch: another change won.
    h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &isr);
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::InvalidUpdateVersion);
    // A leader epoch from the future: this controller is behind.
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 1, 1, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::NotController);
    // Not the leader.
    let r = h.alter_partition(3, 2, e[&2], t, "", 0, 0, 1, &[(2, e[&2])]);
    assert_eq!(partition_code(&r), ErrorCode::InvalidRequest);
    // An ISR without the leader, with a non-replica, or with a duplicate.
    for isr in [
        vec![(2, e[&2])],
        vec![(1, e[&1]), (4, -1)],
        vec![(1, e[&1]), (1, e[&1])],
    ] {
        let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 1, &isr);
        assert_eq!(partition_code(&r), ErrorCode::InvalidRequest, "{isr:?}");
    }
    // Unknown partition and topic id.
    let r = h.alter_partition(3, 1, e[&1], t, "", 5, 0, 1, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::UnknownTopicOrPartition);
    let r = h.alter_partition(3, 1, e[&1], Uuid([3; 16]), "", 0, 0, 1, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::UnknownTopicId);
    // Before version 2 topics go by name.
    let r = h.alter_partition(1, 1, e[&1], Uuid::ZERO, "nope", 0, 0, 1, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::UnknownTopicOrPartition);
    let r = h.alter_partition(1, 1, e[&1], Uuid::ZERO, "t", 0, 0, 1, &[(1, -1)]);
    assert_eq!(partition_code(&r), ErrorCode::None);
    // The requesting broker's own epoch is checked first.
    let r = h.alter_partition(3, 1, e[&1] + 100, t, "", 0, 0, 2, &[(1, e[&1])]);
    assert_eq!(code(r.error_code), ErrorCode::StaleBrokerEpoch);
    assert!(r.topics.is_empty());
    // A leader epoch behind: the leader was replaced.
    h.advance(SESSION_MS + 1);
    let e2 = h.register(2, 0).broker_epoch;
    let e3 = h.register(3, 0).broker_epoch;
    let e1 = h.register(1, 0).broker_epoch;
    assert!(!h.heartbeat(2, e2).is_fenced);
    let _ = (e1, e3);
    let s = h.partition(t, 0);
    assert!(s.leader_epoch.0 > 0, "{s:?}");
    let r = h.alter_partition(3, 1, e1, t, "", 0, 0, s.partition_epoch, &[(1, e1)]);
    assert_eq!(partition_code(&r), ErrorCode::FencedLeaderEpoch);
}

#[test]
fn new_isr_members_must_be_eligible_with_their_current_epoch() {
    let (mut h, e, t) = cluster();
    h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1])]);
    // Broker 2 restarts (new incarnation after its old one was fenced): the leader still
    // knows the old epoch from the old incarnation's fetches (KIP-903).
    h.heartbeat_full(2, e[&2], h.c.committed_offset().0, true, false);
    let new2 = h.register(2, 1).broker_epoch;
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 1, &[(1, e[&1]), (2, e[&2])]);
    assert_eq!(partition_code(&r), ErrorCode::IneligibleReplica, "fenced");
    h.heartbeat(2, new2);
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 1, &[(1, e[&1]), (2, e[&2])]);
    assert_eq!(
        partition_code(&r),
        ErrorCode::IneligibleReplica,
        "stale epoch"
    );
    // Version 1 has no epochs in the request and a different code for ineligible members.
    h.heartbeat_full(3, e[&3], h.c.committed_offset().0, false, true);
    let r = h.alter_partition(1, 1, e[&1], t, "t", 0, 0, 1, &[(1, -1), (3, -1)]);
    assert_eq!(
        partition_code(&r),
        ErrorCode::OperationNotAttempted,
        "shutting down"
    );
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 1, &[(1, e[&1]), (2, new2)]);
    assert_eq!(partition_code(&r), ErrorCode::None);
}

#[test]
fn a_leader_deposed_by_its_controlled_shutdown_gets_fenced_leader_epoch() {
    let (mut h, e, t) = cluster();
    // Broker 1 starts a controlled shutdown, which moves its leadership in the same batch: an
    // ISR change it sends afterwards carries a leader epoch that is gone.
    h.heartbeat_full(1, e[&1], h.c.committed_offset().0, false, true);
    let s = h.partition(t, 0);
    assert_eq!(s.leader, Some(BrokerId(2)));
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, s.partition_epoch, &[(1, e[&1])]);
    assert_eq!(partition_code(&r), ErrorCode::FencedLeaderEpoch);
}

#[test]
fn unclean_election_only_when_the_topic_enables_it() {
    for enabled in [false, true] {
        let mut h = H::new();
        let e = h.live_brokers(&[1, 2]);
        let t = h.create_topic("t", &[&[1, 2]]);
        if enabled {
            h.set_topic_config("t", "unclean.leader.election.enable", "TRUE");
        }
        // Broker 2 falls out of the ISR, then the leader dies.
        h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1])]);
        h.heartbeat_full(1, e[&1], h.c.committed_offset().0, true, false);
        let s = h.partition(t, 0);
        if enabled {
            // The out-of-sync replica leads, alone in the ISR, recovering (lossy).
            assert_eq!(s.leader, Some(BrokerId(2)));
            assert_eq!(s.isr, vec![BrokerId(2)]);
            let (_, last) = h.log.last().unwrap();
            assert!(last.iter().any(|r| matches!(
                r,
                MetadataRecord::PartitionChange(c) if c.leader == 2 && c.leader_recovery_state == 1
            )));
        } else {
            assert_eq!(s.leader, None);
            assert_eq!(s.isr, vec![BrokerId(1)]);
        }
    }
}

#[test]
fn the_cluster_default_and_the_static_setting_enable_unclean_election() {
    let mut h = H::with(ControllerConfig {
        session_timeout_ms: SESSION_MS,
        unclean_leader_election_enable: true,
        ..ControllerConfig::new(CLUSTER)
    });
    h.live_brokers(&[1]);
    assert!(unclean_enabled(h.c.image(), h.c.config(), "t"));
    h.set_topic_config("t", "unclean.leader.election.enable", "false");
    assert!(!unclean_enabled(h.c.image(), h.c.config(), "t"));
    let mut h = H::new();
    let r = h.request(Request::Write(vec![MetadataRecord::Config(ConfigRecord {
        resource_type: potok_metadata::image::BROKER_RESOURCE,
        resource_name: String::new(),
        name: "unclean.leader.election.enable".into(),
        value: Some("true".into()),
        ..Default::default()
    })]));
    assert!(matches!(r, Reply::Write(Ok(_))));
    assert!(unclean_enabled(h.c.image(), h.c.config(), "t"));
}

#[test]
fn producer_id_blocks_are_unique_and_survive_a_controller_change() {
    let mut h = H::new();
    let e = h.live_brokers(&[1, 2]);
    let mut starts = Vec::new();
    for b in [1, 2, 1] {
        let Reply::AllocateProducerIds(r) =
            h.request(Request::AllocateProducerIds(AllocateProducerIdsRequest {
                broker_id: b,
                broker_epoch: e[&b],
                ..Default::default()
            }))
        else {
            panic!()
        };
        assert_eq!(code(r.error_code), ErrorCode::None);
        assert_eq!(r.producer_id_len, 1000);
        starts.push(r.producer_id_start);
    }
    assert_eq!(starts, vec![0, 1000, 2000]);
    let Reply::AllocateProducerIds(r) =
        h.request(Request::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id: 1,
            broker_epoch: 12345,
            ..Default::default()
        }))
    else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::StaleBrokerEpoch);
    // A controller replaying the log continues after the last committed block.
    let mut c = Controller::new(ControllerConfig::new(CLUSTER));
    c.handle(
        Event::Committed {
            offset: MetadataOffset(1),
            records: vec![],
        },
        0,
    );
    for (offset, records) in h.log.clone() {
        c.handle(Event::Committed { offset, records }, 0);
    }
    let next = MetadataOffset(h.log.last().unwrap().0 .0 + 1);
    c.handle(
        Event::BecameLeader {
            next_offset: MetadataOffset(next.0 + 1),
        },
        0,
    );
    c.handle(
        Event::Committed {
            offset: next,
            records: vec![],
        },
        0,
    );
    let out = c.handle(
        Event::Request {
            id: 1,
            request: Request::AllocateProducerIds(AllocateProducerIdsRequest {
                broker_id: 2,
                broker_epoch: e[&2],
                ..Default::default()
            }),
        },
        0,
    );
    let Some(Effect::Propose { records, .. }) = out.first() else {
        panic!("{out:?}")
    };
    assert!(matches!(
        records.as_slice(),
        [MetadataRecord::ProducerIds(p)] if p.next_producer_id == 4000
    ));
}

#[test]
fn producer_ids_near_the_end_of_the_range_are_refused() {
    let mut h = H::new();
    let e = h.live_brokers(&[1]);
    let r = h.request(Request::Write(vec![MetadataRecord::ProducerIds(
        potok_protocol::messages::internal::producer_ids_record::ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: e[&1],
            next_producer_id: i64::MAX - 999,
            ..Default::default()
        },
    )]));
    assert!(matches!(r, Reply::Write(Ok(_))));
    let Reply::AllocateProducerIds(r) =
        h.request(Request::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id: 1,
            broker_epoch: e[&1],
            ..Default::default()
        }))
    else {
        panic!()
    };
    assert_eq!(code(r.error_code), ErrorCode::UnknownServerError);
}

#[test]
fn preferred_leaders_are_restored_after_the_imbalance_interval() {
    for enabled in [true, false] {
        let mut h = H::with(ControllerConfig {
            session_timeout_ms: SESSION_MS,
            auto_leader_rebalance_enable: enabled,
            leader_imbalance_check_interval_ms: 60_000,
            ..ControllerConfig::new(CLUSTER)
        });
        let e = h.live_brokers(&[1, 2, 3]);
        let t = h.create_topic("t", &[&[1, 2, 3], &[2, 3, 1]]);
        // Broker 1 restarts: it loses the leadership of partition 0 and comes back in sync.
        h.heartbeat_full(1, e[&1], h.c.committed_offset().0, true, false);
        let e1 = h.register(1, 1).broker_epoch;
        h.heartbeat(1, e1);
        let s = h.partition(t, 0);
        assert_eq!(s.leader, Some(BrokerId(2)));
        h.alter_partition(
            3,
            2,
            e[&2],
            t,
            "",
            0,
            s.leader_epoch.0,
            s.partition_epoch,
            &[(2, e[&2]), (3, e[&3]), (1, e1)],
        );
        assert_eq!(h.partition(t, 0).isr.len(), 3);
        // Keep everyone's session alive until the check, 60 s after the activation at 1 s.
        while h.now + 1_000 < 61_000 {
            h.now += 1_000;
            let o = h.c.committed_offset().0;
            for (b, ep) in [(1, e1), (2, e[&2]), (3, e[&3])] {
                h.heartbeat_full(b, ep, o, false, false);
            }
        }
        h.advance(1_000);
        let s = h.partition(t, 0);
        if enabled {
            assert_eq!(s.leader, Some(BrokerId(1)), "{s:?}");
            assert_eq!(s.leader_epoch.0, 2);
        } else {
            assert_eq!(s.leader, Some(BrokerId(2)));
        }
        assert_eq!(
            h.partition(t, 1).leader,
            Some(BrokerId(2)),
            "already preferred"
        );
    }
}

#[test]
fn elect_leaders_preferred_outcomes() {
    use crate::controller::partitions::{elect_leader, Election};
    let (mut h, e, t) = cluster();
    // The preferred replica leads; a missing topic or partition is unknown.
    assert_eq!(
        elect_leader(h.c.image(), "t", 0, false),
        Election::NotNeeded
    );
    assert_eq!(
        elect_leader(h.c.image(), "t", 1, false),
        Election::UnknownPartition
    );
    assert_eq!(
        elect_leader(h.c.image(), "u", 0, false),
        Election::UnknownPartition
    );
    // Broker 1 is fenced: broker 2 leads and the preferred replica is out of the ISR.
    h.heartbeat_full(1, e[&1], h.c.committed_offset().0, true, false);
    let s = h.partition(t, 0);
    assert_eq!(s.leader, Some(BrokerId(2)));
    assert_eq!(
        elect_leader(h.c.image(), "t", 0, false),
        Election::PreferredNotAvailable
    );
    // Broker 1 comes back and rejoins the ISR: now it can be elected.
    let new1 = h.register(1, 1).broker_epoch;
    h.heartbeat(1, new1);
    let r = h.alter_partition(
        3,
        2,
        e[&2],
        t,
        "",
        0,
        s.leader_epoch.0,
        s.partition_epoch,
        &[(2, e[&2]), (3, e[&3]), (1, new1)],
    );
    assert_eq!(partition_code(&r), ErrorCode::None);
    let c = elected_change(elect_leader(h.c.image(), "t", 0, false));
    assert_eq!((c.topic_id, c.partition_id, c.leader), (t, 0, 1));
    assert_eq!(c.isr, None, "a preferred election keeps the ISR");
    // With a leader, an unclean election is not needed.
    assert_eq!(elect_leader(h.c.image(), "t", 0, true), Election::NotNeeded);
}

#[test]
fn elect_leaders_unclean_elects_outside_the_isr_only_without_a_leader() {
    use crate::controller::partitions::{elect_leader, Election};
    let mut h = H::new();
    let e = h.live_brokers(&[1, 2]);
    let t = h.create_topic("t", &[&[1, 2]]);
    // Broker 2 falls out of the ISR, then the leader dies: no leader (unclean election is off
    // for the topic).
    h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1])]);
    h.heartbeat_full(1, e[&1], h.c.committed_offset().0, true, false);
    assert_eq!(h.partition(t, 0).leader, None);
    // The preferred replica is not available, but an operator's unclean election is obeyed.
    assert_eq!(
        elect_leader(h.c.image(), "t", 0, false),
        Election::PreferredNotAvailable
    );
    let c = elected_change(elect_leader(h.c.image(), "t", 0, true));
    assert_eq!(c.leader, 2);
    assert_eq!(c.isr, Some(vec![2]));
    assert_eq!(c.leader_recovery_state, 1, "recovering (KIP-704)");
    // With every replica fenced nobody can lead.
    h.heartbeat_full(2, e[&2], h.c.committed_offset().0, true, false);
    assert_eq!(
        elect_leader(h.c.image(), "t", 0, true),
        Election::NoEligibleLeader
    );
}

/// The partition change of an `Elected` outcome; panics on any other.
fn elected_change(
    e: crate::controller::partitions::Election,
) -> potok_protocol::messages::internal::partition_change_record::PartitionChangeRecord {
    match e {
        crate::controller::partitions::Election::Elected(r) => match *r {
            MetadataRecord::PartitionChange(c) => c,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}
