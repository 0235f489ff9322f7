//! Partition reassignment (KIP-455): start, catch-up through AlterPartition, completion with a
//! new leader when the old one is removed, immediate completion, cancellation, validation.

use super::*;
use crate::controller::partitions::{unclean_enabled, UNCLEAN_LEADER_ELECTION_ENABLE};
use crate::controller::reassign::{alter_reassignment, list_reassignments, ReassignError};

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&b| BrokerId(b)).collect()
}

/// Four live brokers and topic "t" with one partition on [1, 2, 3], led by 1.
fn cluster() -> (H, BTreeMap<i32, i64>, Uuid) {
    let mut h = H::new();
    let epochs = h.live_brokers(&[1, 2, 3, 4]);
    let t = h.create_topic("t", &[&[1, 2, 3]]);
    (h, epochs, t)
}

/// Builds the reassignment on the committed image and writes it through the controller, as
/// the broker's AlterPartitionReassignments does.
fn reassign(h: &mut H, p: i32, target: Option<&[i32]>) -> Result<(), ReassignError> {
    let unclean = unclean_enabled(h.c.image(), h.c.config(), "t");
    let record = alter_reassignment(h.c.image(), "t", p, target, unclean)?;
    if let Some(r) = record {
        let reply = h.request(Request::Write(vec![r]));
        assert!(matches!(reply, Reply::Write(Ok(_))), "{reply:?}");
    }
    Ok(())
}

#[test]
fn a_move_adds_catches_up_switches_elects_and_removes() {
    let (mut h, e, t) = cluster();
    // Move [1, 2, 3] to [2, 3, 4]: broker 1 (the leader) leaves, broker 4 joins.
    reassign(&mut h, 0, Some(&[2, 3, 4])).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(
        s.replicas,
        ids(&[2, 3, 4, 1]),
        "target first, then the removed"
    );
    assert_eq!(s.adding_replicas, ids(&[4]));
    assert_eq!(s.removing_replicas, ids(&[1]));
    assert_eq!(s.isr, ids(&[1, 2, 3]), "the ISR waits for the new replica");
    assert_eq!((s.leader, s.leader_epoch.0), (Some(BrokerId(1)), 0));
    assert!(
        s.replicas.len() >= 3,
        "never fewer replicas than the target"
    );
    let listed = list_reassignments(h.c.image(), None);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].1[0].adding, vec![4]);

    // Broker 4 caught up: the leader adds it to the ISR, which holds the whole target now, so
    // the same change completes the reassignment and moves leadership off broker 1.
    let pe = s.partition_epoch;
    let isr = [(1, e[&1]), (2, e[&2]), (3, e[&3]), (4, e[&4])];
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, pe, &isr);
    assert_eq!(
        code(r.topics[0].partitions[0].error_code),
        ErrorCode::NewLeaderElected
    );
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[2, 3, 4]));
    assert_eq!(s.isr, ids(&[2, 3, 4]));
    assert!(s.adding_replicas.is_empty() && s.removing_replicas.is_empty());
    assert_eq!(
        s.leader,
        Some(BrokerId(2)),
        "the first target replica in the ISR"
    );
    assert_eq!(s.leader_epoch.0, 1);
    assert!(list_reassignments(h.c.image(), None).is_empty());
}

#[test]
fn a_partial_catch_up_does_not_complete() {
    let (mut h, e, t) = cluster();
    h.live_brokers(&[5]);
    let e5 = h.c.image().brokers()[&BrokerId(5)].epoch;
    reassign(&mut h, 0, Some(&[1, 4, 5])).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[1, 4, 5, 2, 3]));
    // Only broker 4 caught up: nothing completes, the replicas stay the union.
    let isr = [(1, e[&1]), (2, e[&2]), (3, e[&3]), (4, e[&4])];
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, s.partition_epoch, &isr);
    assert_eq!(code(r.topics[0].partitions[0].error_code), ErrorCode::None);
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[1, 4, 5, 2, 3]));
    assert_eq!(s.isr, ids(&[1, 2, 3, 4]));
    assert!(s.is_reassigning());
    // Broker 5 too: complete; the leader stays (it is a target replica), the epoch is bumped
    // because replicas were dropped.
    let isr = [(1, e[&1]), (2, e[&2]), (3, e[&3]), (4, e[&4]), (5, e5)];
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, s.partition_epoch, &isr);
    let p = &r.topics[0].partitions[0];
    assert_eq!(code(p.error_code), ErrorCode::None);
    assert_eq!((p.leader_id, p.leader_epoch), (1, 1));
    assert_eq!(p.isr, vec![1, 4, 5]);
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[1, 4, 5]));
    assert!(!s.is_reassigning());
}

#[test]
fn reordering_or_removing_within_the_isr_completes_at_once() {
    let (mut h, _e, t) = cluster();
    reassign(&mut h, 0, Some(&[3, 2, 1])).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[3, 2, 1]));
    assert!(!s.is_reassigning());
    assert_eq!(
        s.leader,
        Some(BrokerId(1)),
        "an online election keeps a valid leader"
    );
    // Lowering the replication factor to 2 away from the leader: immediate, new leader.
    reassign(&mut h, 0, Some(&[3, 2])).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[3, 2]));
    assert_eq!(s.isr, ids(&[2, 3]));
    assert_eq!(s.leader, Some(BrokerId(3)));
    assert!(!s.is_reassigning());
}

#[test]
fn a_reassignment_onto_a_lagging_replica_waits_for_it() {
    let (mut h, e, t) = cluster();
    // Broker 3 fell out of the ISR; removing broker 2 must wait for 3 to come back.
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, 0, &[(1, e[&1]), (2, e[&2])]);
    assert_eq!(code(r.topics[0].partitions[0].error_code), ErrorCode::None);
    reassign(&mut h, 0, Some(&[1, 3])).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[1, 3, 2]));
    assert_eq!(s.removing_replicas, ids(&[2]));
    assert!(s.adding_replicas.is_empty());
    assert_eq!(s.isr, ids(&[1, 2]), "broker 2 stays until broker 3 is back");
}

#[test]
fn cancelling_reverts_to_the_original_replicas() {
    let (mut h, _e, t) = cluster();
    reassign(&mut h, 0, Some(&[2, 3, 4])).unwrap();
    // Cancelled before broker 4 caught up.
    assert_eq!(
        reassign(&mut h, 0, None),
        Ok(()),
        "a reassignment in progress can be cancelled"
    );
    let s = h.partition(t, 0);
    // Kafka's `PartitionReassignmentRevert` keeps the moving order (target first): the
    // original brokers, not their original order.
    assert_eq!(s.replicas, ids(&[2, 3, 1]));
    assert_eq!(s.isr, ids(&[1, 2, 3]));
    assert!(!s.is_reassigning());
    assert_eq!(s.leader, Some(BrokerId(1)));
    // Nothing left to cancel.
    assert_eq!(
        reassign(&mut h, 0, None),
        Err(ReassignError::NoReassignmentInProgress)
    );
}

#[test]
fn cancelling_drops_added_replicas_from_the_isr() {
    let (mut h, e, t) = cluster();
    h.live_brokers(&[5]);
    let e5 = h.c.image().brokers()[&BrokerId(5)].epoch;
    reassign(&mut h, 0, Some(&[1, 4, 5])).unwrap();
    let pe = h.partition(t, 0).partition_epoch;
    let isr = [(1, e[&1]), (2, e[&2]), (3, e[&3]), (5, e5)];
    h.alter_partition(3, 1, e[&1], t, "", 0, 0, pe, &isr);
    assert_eq!(h.partition(t, 0).isr, ids(&[1, 2, 3, 5]));
    reassign(&mut h, 0, None).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[1, 2, 3]));
    assert_eq!(s.isr, ids(&[1, 2, 3]));
    assert!(!s.is_reassigning());
}

#[test]
fn requests_are_validated_before_anything_is_written() {
    let (mut h, _e, _t) = cluster();
    let before = h.log.len();
    let invalid = |r| matches!(r, Err(ReassignError::InvalidReplicaAssignment(_)));
    assert!(invalid(reassign(&mut h, 0, Some(&[]))));
    assert!(invalid(reassign(&mut h, 0, Some(&[1, 2, 2]))));
    assert!(
        invalid(reassign(&mut h, 0, Some(&[1, 2, 9]))),
        "unregistered"
    );
    assert!(matches!(
        reassign(&mut h, 7, Some(&[1, 2, 3])),
        Err(ReassignError::UnknownTopicOrPartition(_))
    ));
    let image = h.c.image().clone();
    assert!(matches!(
        alter_reassignment(&image, "nope", 0, Some(&[1]), false),
        Err(ReassignError::UnknownTopicOrPartition(_))
    ));
    // The current assignment with nothing in progress: no change at all.
    assert_eq!(
        alter_reassignment(&image, "t", 0, Some(&[1, 2, 3]), false),
        Ok(None)
    );
    assert_eq!(h.log.len(), before, "nothing was written");
}

#[test]
fn a_revert_needing_an_unclean_election_is_refused_unless_enabled() {
    let (mut h, e, t) = cluster();
    reassign(&mut h, 0, Some(&[2, 3, 4])).unwrap();
    // An ISR of added brokers only: 2 and 3 leave the ISR while 4 joins, then the leader 1
    // is fenced and 4 takes over alone.
    let pe = h.partition(t, 0).partition_epoch;
    let r = h.alter_partition(3, 1, e[&1], t, "", 0, 0, pe, &[(1, e[&1]), (4, e[&4])]);
    assert_eq!(code(r.topics[0].partitions[0].error_code), ErrorCode::None);
    // Broker 1's session expires: it leaves the ISR, broker 4 leads.
    for b in [2, 3, 4] {
        let ep = e[&b];
        h.now += SESSION_MS / 2;
        h.heartbeat(b, ep);
    }
    h.advance(SESSION_MS / 2 + 1);
    let s = h.partition(t, 0);
    assert_eq!(s.isr, ids(&[4]), "{s:?}");
    assert_eq!(s.leader, Some(BrokerId(4)));
    assert!(matches!(
        reassign(&mut h, 0, None),
        Err(ReassignError::InvalidReplicaAssignment(m)) if m.contains("unclean")
    ));
    h.set_topic_config("t", UNCLEAN_LEADER_ELECTION_ENABLE, "true");
    reassign(&mut h, 0, None).unwrap();
    let s = h.partition(t, 0);
    assert_eq!(s.replicas, ids(&[2, 3, 1]));
    assert!(!s.is_reassigning());
    // The ISR restarts from the first original replica; it leads once it can (2 is live).
    assert!(s.isr.iter().all(|b| s.replicas.contains(b)), "{s:?}");
}
