//! Transactional offset commits: written at once, visible only at the COMMIT marker, dropped
//! at ABORT, checked against the group's generation and members (KIP-447), and rebuilt from
//! the log by the loader according to the markers found there.

use super::*;

fn txn_req(producer_id: i64, generation: i32, member: &str, offset: i64) -> TxnOffsetCommitRequest {
    TxnOffsetCommitRequest {
        group_id: "g".into(),
        producer_id,
        producer_epoch: 0,
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        topics: vec![(
            "t".into(),
            vec![CommitPartition {
                partition: 0,
                offset: Offset(offset),
                leader_epoch: LeaderEpoch(-1),
                metadata: None,
            }],
        )],
    }
}

#[test]
fn transactional_offsets_wait_for_the_commit_marker() {
    let mut h = H::new();
    let r = h.c.commit_txn_offsets(h.now, &txn_req(7, -1, "", 42));
    assert_eq!(r, vec![("t".to_string(), vec![(0, ErrorCode::None)])]);
    h.collect();
    let producer = h.out.iter().find_map(|o| match o {
        Output::Persist { producer, .. } => *producer,
        _ => None,
    });
    assert_eq!(
        producer,
        Some((7, 0)),
        "written as the producer's transactional batch"
    );
    assert_eq!(h.committed("t", 0), -1, "not visible before the marker");
    assert!(h.c.has_pending_txn_offset("g", "t", 0));
    let p = h.c.partition_for("g");
    // A marker on another offsets partition does not resolve them.
    assert_eq!(h.c.complete_txn(p + 1, 7, true), 0);
    assert_eq!(h.c.complete_txn(p, 7, true), 1);
    assert_eq!(h.committed("t", 0), 42);
    assert!(!h.c.has_pending_txn_offset("g", "t", 0));
}

#[test]
fn transactional_offsets_are_dropped_at_the_abort_marker() {
    let mut h = H::new();
    h.c.commit_txn_offsets(h.now, &txn_req(7, -1, "", 42));
    h.collect();
    let p = h.c.partition_for("g");
    assert_eq!(h.c.complete_txn(p, 7, false), 0);
    assert_eq!(h.committed("t", 0), -1);
    assert!(!h.c.has_pending_txn_offset("g", "t", 0));
}

#[test]
fn a_failed_append_leaves_nothing_pending() {
    let mut h = H::new();
    h.fail_appends = Some(ErrorCode::NotCoordinator);
    h.c.commit_txn_offsets(h.now, &txn_req(7, -1, "", 42));
    h.collect();
    assert!(!h.c.has_pending_txn_offset("g", "t", 0));
}

#[test]
fn kip_447_checks_generation_and_member() {
    let mut h = H::new();
    let (leader, _) = h.stable_pair();
    let (_, generation) = h.state();
    let code = |r: PartitionResults| r[0].1[0].1;
    assert_eq!(
        code(h.c.commit_txn_offsets(h.now, &txn_req(7, generation + 1, &leader, 1))),
        ErrorCode::IllegalGeneration
    );
    assert_eq!(
        code(h.c.commit_txn_offsets(h.now, &txn_req(7, generation, "stranger", 1))),
        ErrorCode::UnknownMemberId
    );
    assert_eq!(
        code(h.c.commit_txn_offsets(h.now, &txn_req(7, generation, &leader, 1))),
        ErrorCode::None
    );
    // Without member and generation (an older client) the transaction itself fences zombies.
    assert_eq!(
        code(h.c.commit_txn_offsets(h.now, &txn_req(8, -1, "", 1))),
        ErrorCode::None
    );
}

#[test]
fn the_loader_follows_the_markers_in_the_log() {
    let key = |p: i32| records::offset_commit_key("g", "t", p).unwrap();
    let value = |o: i64| {
        records::offset_commit_value(&records::CommittedOffset {
            offset: Offset(o),
            leader_epoch: LeaderEpoch(-1),
            metadata: String::new(),
            commit_timestamp_ms: 1,
            expire_timestamp_ms: None,
        })
        .unwrap()
    };
    let mut l = Loader::new();
    l.apply_txn(1, Some(&key(0)), Some(&value(10)));
    l.apply_txn(2, Some(&key(1)), Some(&value(20)));
    l.apply_txn(3, Some(&key(2)), Some(&value(30)));
    l.end_txn(1, true);
    l.end_txn(2, false);
    let mut c = GroupCoordinator::new(GroupConfig::default(), 0);
    c.load(l, 0);
    let r = c.fetch_offsets("g", None);
    let offsets: Vec<(i32, i64)> = r.topics[0]
        .1
        .iter()
        .map(|f| (f.partition, f.offset.0))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, 10)],
        "committed kept, aborted dropped, open not yet visible"
    );
    assert!(
        c.has_pending_txn_offset("g", "t", 2),
        "the open transaction waits for its marker"
    );
    let p = c.partition_for("g");
    assert_eq!(c.complete_txn(p, 3, true), 1);
}
