//! Unit tests of the leader's answers to followers and clients.

use super::*;
use crate::follower::FetchAnswer;
use crate::leader::AcksOutcome;
use crate::sim::log::{MemLog, Rec};
use potok_metadata::{BrokerId, PartitionState};

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&b| BrokerId(b)).collect()
}

/// Broker 1 leads epoch 3 of replicas 1, 2, 3 with a log of `n` records of epoch 3.
fn leader(n: u64) -> (LeaderState, MemLog) {
    let image = PartitionState {
        replicas: ids(&[1, 2, 3]),
        isr: ids(&[1, 2, 3]),
        leader: Some(BrokerId(1)),
        leader_epoch: LeaderEpoch(3),
        partition_epoch: 5,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let mut log = MemLog::default();
    log.assign_epoch(LeaderEpoch(3), Offset(0));
    let mut s = LeaderState::become_leader(BrokerId(1), &image, Offset(0), Offset(0), 0).unwrap();
    for v in 0..n {
        log.append(Rec {
            epoch: LeaderEpoch(3),
            value: v,
        });
    }
    s.on_local_append(log.end());
    (s, log)
}

fn pos(replica: i32, offset: i64, last: Option<i32>, epoch: i32) -> FetchPosition {
    FetchPosition {
        leader: BrokerId(1),
        replica_id: BrokerId(replica),
        replica_epoch: 100,
        fetch_offset: Offset(offset),
        last_fetched_epoch: last.map(LeaderEpoch),
        current_leader_epoch: LeaderEpoch(epoch),
        log_start_offset: Offset(0),
    }
}

#[test]
fn fetches_are_fenced_by_leader_epoch_replica_and_incarnation() {
    let (mut s, log) = leader(4);
    assert_eq!(
        s.answer_follower_fetch(&pos(2, 0, None, 2), log.view(), 1),
        Err(ReplicationError::FencedLeaderEpoch {
            request: LeaderEpoch(2),
            current: LeaderEpoch(3)
        })
    );
    assert_eq!(
        s.answer_follower_fetch(&pos(2, 0, None, 4), log.view(), 1),
        Err(ReplicationError::UnknownLeaderEpoch {
            request: LeaderEpoch(4),
            current: LeaderEpoch(3)
        })
    );
    assert_eq!(
        s.answer_follower_fetch(&pos(9, 0, None, 3), log.view(), 1),
        Err(ReplicationError::UnknownReplica(BrokerId(9)))
    );
    assert_eq!(
        s.answer_follower_fetch(&pos(2, 5, Some(3), 3), log.view(), 1),
        Ok(LeaderFetchAnswer {
            answer: FetchAnswer::Data {
                high_watermark: Offset(0),
                log_start_offset: Offset(0),
                diverging_epoch: Some((LeaderEpoch(3), Offset(4))),
            },
            new_high_watermark: None,
        }),
        "ahead of the leader in its own epoch: cut back to its end"
    );
    assert_eq!(
        s.answer_follower_fetch(&pos(2, 5, None, 3), log.view(), 1),
        Err(ReplicationError::OffsetOutOfRange {
            offset: Offset(5),
            log_start: Offset(0),
            log_end: Offset(4)
        })
    );
    // Broker 2 fetches at broker epoch 100; a delayed fetch of its previous incarnation is
    // refused afterwards, and the AlterPartition members carry the epochs seen.
    s.answer_follower_fetch(&pos(2, 4, Some(3), 3), log.view(), 1)
        .unwrap();
    let mut old = pos(2, 4, Some(3), 3);
    old.replica_epoch = 90;
    assert_eq!(
        s.answer_follower_fetch(&old, log.view(), 1),
        Err(ReplicationError::StaleReplicaEpoch {
            replica: BrokerId(2),
            request: 90,
            known: 100
        })
    );
    assert_eq!(
        s.isr_with_broker_epochs(&ids(&[1, 2, 3]), 55),
        vec![(BrokerId(1), 55), (BrokerId(2), 100), (BrokerId(3), -1)]
    );
    assert!(s.check_leader_epoch(None).is_ok());
    assert!(s.check_leader_epoch(Some(LeaderEpoch(-1))).is_ok());
}

#[test]
fn the_answer_carries_the_high_watermark_before_the_fetch_and_reports_the_new_one() {
    let (mut s, log) = leader(4);
    let a = s
        .answer_follower_fetch(&pos(2, 4, Some(3), 3), log.view(), 1)
        .unwrap();
    assert_eq!(a.new_high_watermark, None, "broker 3 has not fetched");
    let a = s
        .answer_follower_fetch(&pos(3, 2, Some(3), 3), log.view(), 1)
        .unwrap();
    assert_eq!(a.new_high_watermark, Some(Offset(2)));
    assert_eq!(
        a.answer,
        FetchAnswer::Data {
            high_watermark: Offset(0),
            log_start_offset: Offset(0),
            diverging_epoch: None
        }
    );
}

#[test]
fn a_deposed_leader_cannot_acknowledge_acks_all() {
    // Broker 1 led epoch 3; the controller made broker 2 leader at epoch 4. Broker 1 has not
    // learnt it and accepts a write; broker 3, also behind on metadata, keeps fetching from it.
    let (mut s, mut log) = leader(4);
    for b in [2, 3] {
        s.answer_follower_fetch(&pos(b, 4, Some(3), 3), log.view(), 1)
            .unwrap();
    }
    assert_eq!(s.high_watermark(), Offset(4));
    log.append(Rec {
        epoch: LeaderEpoch(3),
        value: 99,
    });
    s.on_local_append(log.end());
    assert!(
        s.check_acks_all(2).is_ok(),
        "its stale ISR still looks full"
    );
    for t in 2..100 {
        // Broker 3 has the record, broker 2 (the new leader) never fetches again.
        s.answer_follower_fetch(&pos(3, 5, Some(3), 3), log.view(), t)
            .unwrap();
        assert_eq!(s.acks_all_outcome(Offset(5), 2), AcksOutcome::Wait);
    }
    // Broker 3 learns of epoch 4 before broker 1 does: its fetch is UNKNOWN_LEADER_EPOCH here.
    assert!(matches!(
        s.answer_follower_fetch(&pos(3, 5, Some(3), 4), log.view(), 100),
        Err(ReplicationError::UnknownLeaderEpoch { .. })
    ));
    // Shrinking the ISR to drop broker 2 needs the controller, which refuses a stale leader
    // epoch; until then the high watermark waits for broker 2 (KIP-497's maximal ISR).
    let shrink = s.isr_to_shrink(1_000_000, 30_000).unwrap();
    s.propose_isr(shrink);
    assert_eq!(s.acks_all_outcome(Offset(5), 2), AcksOutcome::Wait);
}

#[test]
fn a_refused_change_goes_back_to_the_committed_isr() {
    let (mut s, log) = leader(4);
    for b in [2, 3] {
        s.answer_follower_fetch(&pos(b, 2, Some(3), 3), log.view(), 1)
            .unwrap();
    }
    assert_eq!(s.high_watermark(), Offset(2));
    s.on_isr_committed(ids(&[1, 2]), 6).unwrap();
    // Broker 3 caught up and is proposed back; the controller answers INELIGIBLE_REPLICA.
    s.answer_follower_fetch(&pos(3, 4, Some(3), 3), log.view(), 2)
        .unwrap();
    let expand = s.isr_to_expand().unwrap();
    assert_eq!(expand, ids(&[1, 2, 3]));
    let first = s.propose_isr(expand);
    assert_eq!(s.pending_isr(), Some(&ids(&[1, 2, 3])[..]));
    assert_eq!(s.isr_to_expand(), None, "one change at a time");
    s.on_isr_change_refused(first);
    assert_eq!(s.pending_isr(), None);
    assert_eq!(s.isr_to_expand(), Some(ids(&[1, 2, 3])));
    // A late refusal of the first proposal does not clear the second: the high watermark keeps
    // waiting for broker 3, which the controller may be adding.
    let second = s.propose_isr(ids(&[1, 2, 3]));
    s.on_local_append(Offset(6));
    s.answer_follower_fetch(&pos(2, 6, Some(3), 3), log.view(), 3)
        .unwrap();
    assert_eq!(s.on_isr_change_refused(first), None);
    assert_eq!(s.pending_isr(), Some(&ids(&[1, 2, 3])[..]));
    assert_eq!(s.high_watermark(), Offset(4), "waits for broker 3 (at 4)");
    assert_eq!(s.on_isr_change_refused(second), Some(Offset(6)));
}

#[test]
fn kip_207_a_new_leader_with_a_lagging_high_watermark_hides_latest() {
    // Broker 1 becomes leader at epoch 3 with 10 records it knows to be committed only up to 6.
    let image = PartitionState {
        replicas: ids(&[1, 2]),
        isr: ids(&[1, 2]),
        leader: Some(BrokerId(1)),
        leader_epoch: LeaderEpoch(3),
        partition_epoch: 5,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let mut s = LeaderState::become_leader(BrokerId(1), &image, Offset(10), Offset(6), 0).unwrap();
    assert_eq!(s.epoch_start_offset(), Offset(10));
    let not_available = Err(ReplicationError::OffsetNotAvailable {
        high_watermark: Offset(6),
        epoch_start: Offset(10),
    });
    assert_eq!(
        s.check_client_list_offsets(ClientOffsetQuery::Latest),
        not_available
    );
    assert_eq!(
        s.check_client_list_offsets(ClientOffsetQuery::Timestamp {
            found: Some(Offset(7))
        }),
        not_available
    );
    assert!(s
        .check_client_list_offsets(ClientOffsetQuery::Timestamp {
            found: Some(Offset(3))
        })
        .is_ok());
    assert!(s
        .check_client_list_offsets(ClientOffsetQuery::Timestamp { found: None })
        .is_ok());
    assert!(s
        .check_client_list_offsets(ClientOffsetQuery::Earliest)
        .is_ok());
    // The follower reaches the epoch start: the high watermark follows and latest is answered.
    let mut p = pos(2, 10, None, 3);
    p.leader = BrokerId(1);
    let mut log = MemLog::default();
    for v in 0..10 {
        log.append(Rec {
            epoch: LeaderEpoch(2),
            value: v,
        });
    }
    log.assign_epoch(LeaderEpoch(3), Offset(10));
    let a = s.answer_follower_fetch(&p, log.view(), 1).unwrap();
    assert_eq!(a.new_high_watermark, Some(Offset(10)));
    assert!(s
        .check_client_list_offsets(ClientOffsetQuery::Latest)
        .is_ok());
}

#[test]
fn only_eligible_followers_are_proposed_back_into_the_isr() {
    let (mut s, log) = leader(4);
    for b in [2, 3] {
        s.answer_follower_fetch(&pos(b, 2, Some(3), 3), log.view(), 1)
            .unwrap();
    }
    s.on_isr_committed(ids(&[1, 2]), 6).unwrap();
    s.answer_follower_fetch(&pos(3, 4, Some(3), 3), log.view(), 2)
        .unwrap();
    // Broker 3 caught up, but the leader's metadata shows it fenced (or registered under
    // another epoch than its fetches carry, 100): no proposal, so no AlterPartition that the
    // controller would refuse with INELIGIBLE_REPLICA after every fetch.
    assert_eq!(s.isr_to_expand_eligible(|_, _| false), None);
    assert_eq!(
        s.isr_to_expand_eligible(|b, epoch| b != BrokerId(3) || epoch == 101),
        None
    );
    assert_eq!(
        s.isr_to_expand_eligible(|b, epoch| b != BrokerId(3) || epoch == 100),
        Some(ids(&[1, 2, 3]))
    );
}
