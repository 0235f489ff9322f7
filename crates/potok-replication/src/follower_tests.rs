//! Unit tests of the follower's fetch state, against [`crate::sim::log::MemLog`] logs and a real
//! [`crate::leader::LeaderState`] where the leader's answer matters.

use super::*;
use crate::leader::LeaderState;
use crate::sim::log::{MemLog, Rec};
use potok_metadata::PartitionState;

const F: BrokerId = BrokerId(2);
const L: BrokerId = BrokerId(1);

fn log_of(epochs: &[i32]) -> MemLog {
    let mut log = MemLog::default();
    for (i, e) in epochs.iter().enumerate() {
        log.append(Rec {
            epoch: LeaderEpoch(*e),
            value: i as u64,
        });
    }
    log
}

fn follower(log: &MemLog, epoch: i32) -> FollowerState {
    FollowerState::new(
        F,
        7,
        Some(L),
        LeaderEpoch(epoch),
        Offset(0),
        log.view(),
        DEFAULT_FETCH_BACKOFF_MS,
    )
}

fn fetch(s: &mut FollowerState, log: &MemLog, now: i64) -> FetchPosition {
    match s.next_request(log.view(), now) {
        Some(FollowerRequest::Fetch(p)) => p,
        other => panic!("expected a fetch, got {other:?}"),
    }
}

fn data(hw: i64, diverging: Option<(i32, i64)>) -> FetchAnswer {
    FetchAnswer::Data {
        high_watermark: Offset(hw),
        log_start_offset: Offset(0),
        diverging_epoch: diverging.map(|(e, o)| (LeaderEpoch(e), Offset(o))),
    }
}

#[test]
fn the_fetch_names_the_log_end_the_last_epoch_and_the_leader_epoch() {
    let log = log_of(&[0, 0, 3]);
    let mut s = follower(&log, 4);
    let p = fetch(&mut s, &log, 0);
    assert_eq!(
        p,
        FetchPosition {
            leader: L,
            replica_id: F,
            replica_epoch: 7,
            fetch_offset: Offset(3),
            last_fetched_epoch: Some(LeaderEpoch(3)),
            current_leader_epoch: LeaderEpoch(4),
            log_start_offset: Offset(0),
        }
    );
    let empty = MemLog::default();
    let mut s = follower(&empty, 0);
    assert_eq!(fetch(&mut s, &empty, 0).last_fetched_epoch, None);
    let mut none = FollowerState::new(F, 7, None, LeaderEpoch(0), Offset(0), empty.view(), 10);
    assert_eq!(none.next_request(empty.view(), 0), None);
}

#[test]
fn appended_records_give_the_smaller_of_the_leader_high_watermark_and_the_log_end() {
    let mut log = log_of(&[0, 0]);
    let mut s = follower(&log, 0);
    let p = fetch(&mut s, &log, 0);
    assert_eq!(
        s.on_fetch_response(&p, data(10, None), log.view(), 0),
        FetchOutcome::Append {
            log_start: Offset(0)
        }
    );
    for v in 0..3 {
        log.append(Rec {
            epoch: LeaderEpoch(0),
            value: v,
        });
    }
    assert_eq!(s.on_appended(Offset(0), log.end()), Offset(5));
    let p = fetch(&mut s, &log, 1);
    s.on_fetch_response(&p, data(3, None), log.view(), 1);
    assert_eq!(
        s.on_appended(Offset(0), log.end()),
        Offset(3),
        "a new leader's lagging high watermark is followed (KIP-207)"
    );
}

#[test]
fn a_stale_answer_is_ignored() {
    let mut log = log_of(&[0, 0]);
    let mut s = follower(&log, 0);
    let p = fetch(&mut s, &log, 0);
    // The log moved meanwhile (an earlier answer was appended).
    log.append(Rec {
        epoch: LeaderEpoch(0),
        value: 9,
    });
    assert_eq!(
        s.on_fetch_response(&p, data(3, Some((0, 1))), log.view(), 0),
        FetchOutcome::Nothing
    );
    // A leader change meanwhile.
    let p = fetch(&mut s, &log, 0);
    assert!(s.become_follower(Some(BrokerId(3)), LeaderEpoch(1)));
    assert_eq!(
        s.on_fetch_response(&p, data(3, None), log.view(), 0),
        FetchOutcome::Nothing
    );
    assert_eq!(fetch(&mut s, &log, 0).leader, BrokerId(3));
    assert!(
        !s.become_follower(Some(L), LeaderEpoch(0)),
        "leader epochs only grow"
    );
}

#[test]
fn a_diverging_epoch_truncates_by_epoch_and_not_to_the_high_watermark() {
    // KIP-101 scenario 2 end to end: the leader (broker 1) has m0 (epoch 0) and m2 (epoch 1) at
    // offset 1; the follower has m0 and m1 (epoch 0) and believed its high watermark was 2.
    let mut leader_log = log_of(&[0]);
    leader_log.assign_epoch(LeaderEpoch(1), Offset(1));
    leader_log.append(Rec {
        epoch: LeaderEpoch(1),
        value: 2,
    });
    let image = PartitionState {
        replicas: vec![L, F],
        isr: vec![L, F],
        leader: Some(L),
        leader_epoch: LeaderEpoch(1),
        partition_epoch: 3,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    let mut leader = LeaderState::become_leader(L, &image, Offset(1), Offset(1), 0).unwrap();
    leader.on_local_append(leader_log.end());

    let mut log = log_of(&[0, 0]);
    let mut s = FollowerState::new(F, 7, Some(L), LeaderEpoch(1), Offset(2), log.view(), 10);
    assert_eq!(s.high_watermark(), Offset(2));
    let p = fetch(&mut s, &log, 0);
    let answer = leader
        .answer_follower_fetch(&p, leader_log.view(), 0)
        .unwrap();
    assert_eq!(
        answer.new_high_watermark, None,
        "divergence is not progress"
    );
    let outcome = s.on_fetch_response(&p, answer.answer, log.view(), 0);
    assert_eq!(outcome, FetchOutcome::Truncate { to: Offset(1) });
    assert_eq!(s.high_watermark(), Offset(1));
    log.truncate(Offset(1));
    // Now it agrees and copies m2 with the leader's epoch.
    let p = fetch(&mut s, &log, 1);
    assert_eq!(p.last_fetched_epoch, Some(LeaderEpoch(0)));
    let answer = leader
        .answer_follower_fetch(&p, leader_log.view(), 1)
        .unwrap();
    assert_eq!(
        s.on_fetch_response(&p, answer.answer, log.view(), 1),
        FetchOutcome::Append {
            log_start: Offset(0)
        }
    );
    log.append(leader_log.get(1).unwrap());
    s.on_appended(Offset(0), log.end());
    assert_eq!(log.records, leader_log.records);
    assert_eq!(log.epochs, leader_log.epochs);
    // Its next fetch moves the leader's high watermark to 2.
    let p = fetch(&mut s, &log, 2);
    let answer = leader
        .answer_follower_fetch(&p, leader_log.view(), 2)
        .unwrap();
    assert_eq!(answer.new_high_watermark, Some(Offset(2)));
}

#[test]
fn fenced_waits_for_a_newer_epoch_from_metadata() {
    let log = log_of(&[0]);
    let mut s = follower(&log, 2);
    let p = fetch(&mut s, &log, 0);
    assert_eq!(
        s.on_fetch_response(
            &p,
            FetchAnswer::Error(FetchError::FencedLeaderEpoch),
            log.view(),
            0
        ),
        FetchOutcome::Nothing
    );
    assert!(s.is_fenced());
    assert_eq!(s.next_request(log.view(), 1_000_000), None);
    assert!(!s.become_follower(Some(L), LeaderEpoch(2)), "same metadata");
    assert_eq!(s.next_request(log.view(), 1_000_000), None);
    assert!(s.become_follower(Some(L), LeaderEpoch(3)));
    assert_eq!(fetch(&mut s, &log, 0).current_leader_epoch, LeaderEpoch(3));
}

#[test]
fn unknown_epoch_and_not_leader_back_off_then_retry() {
    for error in [
        FetchError::UnknownLeaderEpoch,
        FetchError::NotLeaderOrFollower,
        FetchError::Other,
    ] {
        let log = log_of(&[0]);
        let mut s = follower(&log, 2);
        let p = fetch(&mut s, &log, 100);
        s.on_fetch_response(&p, FetchAnswer::Error(error), log.view(), 100);
        assert_eq!(s.next_request(log.view(), 100), None);
        assert_eq!(
            s.next_request(log.view(), 100 + DEFAULT_FETCH_BACKOFF_MS - 1),
            None
        );
        assert_eq!(fetch(&mut s, &log, 100 + DEFAULT_FETCH_BACKOFF_MS), p);
    }
    // A failed request backs off the same way.
    let log = log_of(&[0]);
    let mut s = follower(&log, 2);
    fetch(&mut s, &log, 0);
    s.on_request_failed(0);
    assert_eq!(s.next_request(log.view(), 999), None);
    fetch(&mut s, &log, 1000);
}

#[test]
fn out_of_range_asks_the_leader_offsets_then_truncates_or_restarts() {
    let leader_offsets =
        |s: &mut FollowerState, log: &MemLog, now| match s.next_request(log.view(), now) {
            Some(FollowerRequest::LeaderOffsets {
                leader,
                current_leader_epoch,
            }) => (leader, current_leader_epoch),
            other => panic!("expected ListOffsets, got {other:?}"),
        };
    let oor = FetchAnswer::Error(FetchError::OffsetOutOfRange);

    // The leader's log ends before ours (unclean election): truncate to its end.
    let log = log_of(&[0, 0, 0, 0]);
    let mut s = follower(&log, 1);
    let p = fetch(&mut s, &log, 0);
    s.on_fetch_response(&p, oor, log.view(), 0);
    assert_eq!(leader_offsets(&mut s, &log, 0), (L, LeaderEpoch(1)));
    assert_eq!(
        s.on_leader_offsets(Offset(0), Offset(2), log.view()),
        FetchOutcome::Truncate { to: Offset(2) }
    );
    fetch(&mut s, &log, 0);

    // The leader deleted everything we have: start over at its log start.
    let mut s = follower(&log, 1);
    let p = fetch(&mut s, &log, 0);
    s.on_fetch_response(&p, oor, log.view(), 0);
    // A failed ListOffsets is retried after the back-off.
    s.on_request_failed(0);
    assert_eq!(s.next_request(log.view(), 10), None);
    leader_offsets(&mut s, &log, DEFAULT_FETCH_BACKOFF_MS);
    assert_eq!(
        s.on_leader_offsets(Offset(50), Offset(60), log.view()),
        FetchOutcome::TruncateFullyAndStartAt { start: Offset(50) }
    );
    let mut moved = log.clone();
    moved.truncate_fully_and_start_at(Offset(50));
    assert_eq!(fetch(&mut s, &moved, 0).fetch_offset, Offset(50));

    // Inside the leader's bounds: fetch again from our end.
    let mut s = follower(&log, 1);
    let p = fetch(&mut s, &log, 0);
    s.on_fetch_response(&p, oor, log.view(), 0);
    assert_eq!(
        s.on_leader_offsets(Offset(0), Offset(9), log.view()),
        FetchOutcome::Nothing
    );
    assert_eq!(fetch(&mut s, &log, 0).fetch_offset, Offset(4));
    // An answer nobody asked for changes nothing.
    assert_eq!(
        s.on_leader_offsets(Offset(0), Offset(1), log.view()),
        FetchOutcome::Nothing
    );
}
