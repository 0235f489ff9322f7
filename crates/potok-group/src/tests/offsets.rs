//! Offsets, group expiry, deletion, listing, and replay of the persisted records, including
//! failed appends.

use super::membership::stable_static_pair;
use super::*;

#[test]
fn offsets_commit_fetch_and_persist() {
    let mut h = H::new();
    // A simple (non-group-managed) consumer creates the group by committing.
    assert_eq!(h.commit("", -1, "t", 0, 10), ErrorCode::None);
    assert_eq!(h.state(), (GroupState::Empty, 0));
    assert_eq!(h.committed("t", 0), 10);
    assert_eq!(h.committed("t", 1), -1);
    assert_eq!(h.committed("u", 0), -1);
    let recs = h.persisted();
    assert_eq!(recs.len(), 1);
    assert!(
        matches!(&recs[0], OffsetsRecord::OffsetCommit { group, topic, partition: 0, value: Some(v) }
        if group == "g" && topic == "t" && v.offset == Offset(10))
    );
    let all = h.c.fetch_offsets("g", None);
    assert_eq!(all.topics.len(), 1);
    assert!(h.c.fetch_offsets("nope", None).topics.is_empty());
    // Metadata limit.
    let r = h.c.commit_offsets(
        h.now,
        &OffsetCommitRequest {
            group_id: "g".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics: vec![(
                "t".into(),
                vec![
                    CommitPartition {
                        partition: 1,
                        offset: Offset(1),
                        leader_epoch: LeaderEpoch(2),
                        metadata: Some("x".repeat(4097)),
                    },
                    CommitPartition {
                        partition: 2,
                        offset: Offset(2),
                        leader_epoch: LeaderEpoch(2),
                        metadata: Some("ok".into()),
                    },
                ],
            )],
        },
    );
    assert_eq!(
        r[0].1,
        vec![(1, ErrorCode::OffsetMetadataTooLarge), (2, ErrorCode::None)]
    );
    h.collect();
    let f = h.c.fetch_offsets("g", Some(&[("t".to_string(), vec![2])]));
    assert_eq!(f.topics[0].1[0].metadata, "ok");
    assert_eq!(f.topics[0].1[0].leader_epoch, LeaderEpoch(2));
}

#[test]
fn commit_from_member_counts_as_heartbeat() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    for _ in 0..5 {
        h.advance(i64::from(SESSION) - 1);
        assert_eq!(h.hb(&l, 1), ErrorCode::None);
        assert_eq!(h.commit(&f, 1, "t", 0, 1), ErrorCode::None);
    }
    assert_eq!(h.state(), (GroupState::Stable, 1));
}

#[test]
fn offsets_of_empty_group_expire_after_retention_then_group_is_removed() {
    let retention = 60_000;
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: 1_000,
        ..Default::default()
    });
    let (a, ta) = h.new_member();
    h.advance(0);
    h.join_reply(ta).unwrap();
    let t = h.sync(&a, 1, vec![]);
    h.sync_reply(t).unwrap();
    assert_eq!(h.commit(&a, 1, "t", 0, 5), ErrorCode::None);
    // While the member is there (subscribed to "t"), the offset does not expire.
    for _ in 0..100 {
        h.advance(1_000);
        h.hb(&a, 1);
    }
    assert_eq!(h.committed("t", 0), 5);
    h.c.leave_group(
        h.now,
        "g",
        vec![LeavingMember {
            member_id: a,
            group_instance_id: None,
        }],
    );
    h.collect();
    assert_eq!(h.state().0, GroupState::Empty);
    h.persisted();
    // Retention counts from when the group became empty.
    h.advance(retention - 1_000);
    assert_eq!(h.committed("t", 0), 5);
    h.advance(2_000);
    assert_eq!(h.committed("t", 0), -1);
    assert!(
        h.c.group_state("g").is_none(),
        "empty group without offsets is removed"
    );
    let recs = h.persisted();
    assert!(recs
        .iter()
        .any(|r| matches!(r, OffsetsRecord::OffsetCommit { value: None, .. })));
    assert!(recs
        .iter()
        .any(|r| matches!(r, OffsetsRecord::GroupMetadata { value: None, .. })));
}

#[test]
fn stable_group_expires_only_offsets_of_unsubscribed_topics() {
    let retention = 60_000;
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        offsets_retention_ms: retention,
        offsets_retention_check_interval_ms: 1_000,
        ..Default::default()
    });
    let (a, ta) = h.new_member();
    h.advance(0);
    h.join_reply(ta).unwrap();
    let t = h.sync(&a, 1, vec![]);
    h.sync_reply(t).unwrap();
    assert_eq!(h.commit(&a, 1, "t", 0, 5), ErrorCode::None);
    assert_eq!(h.commit(&a, 1, "old", 0, 7), ErrorCode::None);
    for _ in 0..65 {
        h.advance(1_000);
        h.hb(&a, 1);
    }
    assert_eq!(h.committed("t", 0), 5);
    assert_eq!(h.committed("old", 0), -1);
}

#[test]
fn explicit_retention_time_and_simple_group_expiry() {
    let mut h = H::with(GroupConfig {
        offsets_retention_ms: 1_000_000,
        offsets_retention_check_interval_ms: 1_000,
        ..Default::default()
    });
    let r = h.c.commit_offsets(
        h.now,
        &OffsetCommitRequest {
            group_id: "g".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: 5_000,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: Offset(3),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: None,
                }],
            )],
        },
    );
    assert_eq!(r[0].1[0].1, ErrorCode::None);
    // The driver reports the append before anything else reaches the coordinator.
    h.collect();
    h.advance(4_000);
    assert_eq!(h.committed("t", 0), 3);
    h.advance(2_000);
    assert_eq!(h.committed("t", 0), -1);
}

#[test]
fn delete_groups() {
    let mut h = H::new();
    let (l, _f) = h.stable_pair();
    assert_eq!(h.commit(&l, 1, "t", 0, 5), ErrorCode::None);
    assert_eq!(
        h.c.delete_groups(&["g".into(), "nope".into(), String::new()]),
        vec![
            ("g".into(), ErrorCode::NonEmptyGroup),
            ("nope".into(), ErrorCode::GroupIdNotFound),
            (String::new(), ErrorCode::InvalidGroupId)
        ]
    );
    let mut h = H::new();
    assert_eq!(h.commit("", -1, "t", 0, 5), ErrorCode::None);
    h.persisted();
    assert_eq!(
        h.c.delete_groups(&["g".into()]),
        vec![("g".into(), ErrorCode::None)]
    );
    h.collect();
    assert!(h.c.group_state("g").is_none());
    assert_eq!(h.committed("t", 0), -1);
    let recs = h.persisted();
    assert_eq!(recs.len(), 2);
}

#[test]
fn delete_offsets() {
    let mut h = H::new();
    let (l, _f) = h.stable_pair();
    assert_eq!(h.commit(&l, 1, "t", 0, 5), ErrorCode::None);
    assert_eq!(h.commit(&l, 1, "u", 0, 6), ErrorCode::None);
    let r =
        h.c.delete_offsets("g", &[("t".into(), vec![0]), ("u".into(), vec![0])])
            .unwrap();
    assert_eq!(r[0].1[0].1, ErrorCode::GroupSubscribedToTopic);
    assert_eq!(r[1].1[0].1, ErrorCode::None);
    assert_eq!(h.committed("t", 0), 5);
    assert_eq!(h.committed("u", 0), -1);
    assert_eq!(
        h.c.delete_offsets("nope", &[]),
        Err(ErrorCode::GroupIdNotFound)
    );
    // A non-consumer group with members refuses.
    let mut h2 = H::new();
    let mut req = h2.join_req("", None, &[("x", Bytes::new())]);
    req.protocol_type = "connect".into();
    req.require_known_member_id = false;
    let t = h2.send_join(req);
    h2.advance(i64::from(DELAY));
    h2.join_reply(t).unwrap();
    assert_eq!(h2.c.delete_offsets("g", &[]), Err(ErrorCode::NonEmptyGroup));
}

#[test]
fn list_and_describe_groups() {
    let mut h = H::new();
    let (l, _) = h.stable_pair();
    assert_eq!(h.commit("", -1, "t", 0, 1), ErrorCode::UnknownMemberId);
    h.c.commit_offsets(
        h.now,
        &OffsetCommitRequest {
            group_id: "simple".into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics: vec![],
        },
    );
    let all = h.c.list_groups(&[], &[]);
    assert_eq!(all.len(), 2);
    let stable = h.c.list_groups(&["stable".into()], &[]);
    assert_eq!(stable.len(), 1);
    assert_eq!(stable[0].group_id, "g");
    assert_eq!(stable[0].protocol_type, "consumer");
    assert_eq!(
        h.c.list_groups(&["Empty".into()], &[])[0].group_id,
        "simple"
    );
    assert!(h.c.list_groups(&[], &["consumer".into()]).is_empty());
    assert_eq!(h.c.list_groups(&[], &["Classic".into()]).len(), 2);
    let d = h.c.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.protocol, "range");
    assert_eq!(d.members.len(), 2);
    assert!(d
        .members
        .iter()
        .any(|m| m.member_id == l && m.assignment == Bytes::from_static(b"L")));
    assert!(!d.members[0].metadata.is_empty());
    assert!(h.c.describe_group("nope").is_none());
    // Not stable: no protocol, metadata or assignment, as Kafka.
    let _ = h.new_member();
    let d = h.c.describe_group("g").unwrap();
    assert_eq!(d.state, GroupState::PreparingRebalance);
    assert_eq!(d.protocol, "");
    assert!(d.members.iter().all(|m| m.assignment.is_empty()));
}

fn replay(h: &mut H, config: GroupConfig) -> GroupCoordinator {
    let mut loader = Loader::new();
    for o in h.out.drain(..) {
        if let Output::Persist { records, .. } = o {
            for r in records {
                loader.apply(Some(&r.key), r.value.as_deref());
            }
        }
    }
    let mut c = GroupCoordinator::new(config, h.now);
    let report = c.load(loader, h.now);
    assert_eq!(report.corrupt_records, 0);
    c
}

#[test]
fn replay_restores_offsets_and_stable_group() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    assert_eq!(h.commit(&l, 1, "t", 0, 5), ErrorCode::None);
    assert_eq!(h.commit(&l, 1, "t", 0, 9), ErrorCode::None);
    assert_eq!(h.commit(&f, 1, "t", 1, 4), ErrorCode::None);
    h.commit_in("gone", "", -1, "t", 0, 1);
    h.c.delete_groups(&["gone".into()]);
    h.collect();
    let config = GroupConfig {
        initial_rebalance_delay_ms: DELAY,
        ..Default::default()
    };
    let mut c = replay(&mut h, config.clone());
    assert_eq!(c.group_state("g"), Some((GroupState::Stable, 1)));
    assert!(c.group_state("gone").is_none());
    let f0 = c.fetch_offsets("g", Some(&[("t".into(), vec![0, 1])]));
    assert_eq!(f0.topics[0].1[0].offset, Offset(9));
    assert_eq!(f0.topics[0].1[1].offset, Offset(4));
    // Members carry on with their generation; the assignment is still there.
    let hb = HeartbeatRequest {
        group_id: "g".into(),
        generation_id: 1,
        member_id: l.clone(),
        group_instance_id: None,
    };
    assert_eq!(c.heartbeat(h.now, &hb), ErrorCode::None);
    c.sync_group(
        h.now,
        Token(1),
        SyncGroupRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: f.clone(),
            group_instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![],
        },
    );
    let outs: Vec<Output> = c.drain_outputs().collect();
    assert!(matches!(&outs[0], Output::Sync(_, r) if r.assignment == Bytes::from_static(b"F")));
    // The follower stops heartbeating after the restart and is removed after its session.
    c.tick(h.now + i64::from(SESSION) - 1);
    assert_eq!(
        c.heartbeat(h.now + i64::from(SESSION) - 1, &hb),
        ErrorCode::None
    );
    c.tick(h.now + i64::from(SESSION) + 100);
    assert_eq!(
        c.group_state("g").unwrap().0,
        GroupState::PreparingRebalance
    );
    // Snapshot records reproduce the same state.
    let mut loader = Loader::new();
    for p in 0..50 {
        for r in c.snapshot_records(p).unwrap() {
            loader.apply(Some(&r.key), r.value.as_deref());
        }
    }
    let mut c2 = GroupCoordinator::new(config, h.now);
    c2.load(loader, h.now);
    assert_eq!(c2.fetch_offsets("g", None), c.fetch_offsets("g", None));
}

#[test]
fn loader_keeps_latest_value_per_key_and_counts_corrupt() {
    let mut loader = Loader::new();
    let k = records::offset_commit_key("g", "t", 0).unwrap();
    for off in 0..100 {
        let v = records::offset_commit_value(&records::CommittedOffset {
            offset: Offset(off),
            leader_epoch: LeaderEpoch(-1),
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        })
        .unwrap();
        loader.apply(Some(&k), Some(&v));
    }
    loader.apply(None, Some(b"x"));
    loader.apply(Some(&[0, 1, 0xff]), Some(b"junk"));
    assert_eq!(loader.records_read(), 102);
    assert_eq!(loader.live_keys(), 2);
    let mut c = GroupCoordinator::new(GroupConfig::default(), 0);
    let report = c.load(loader, 0);
    assert_eq!(report.corrupt_records, 2);
    assert_eq!(report.offsets, 1);
    assert_eq!(c.fetch_offsets("g", None).topics[0].1[0].offset, Offset(99));
}

#[test]
fn next_deadline_tracks_timers() {
    let mut h = H::new();
    let first = h.c.next_deadline().unwrap();
    assert_eq!(first, h.now + 600_000, "only the offset-expiry task");
    let (_a, _t) = h.new_member();
    assert_eq!(h.c.next_deadline(), Some(h.now + i64::from(DELAY)));
}

#[test]
fn zero_timeouts_terminate() {
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 0,
        ..Default::default()
    });
    let mut req = h.join_req("", Some("s"), &[("range", Bytes::new())]);
    req.session_timeout_ms = 0;
    req.rebalance_timeout_ms = 0;
    let t = h.send_join(req);
    h.advance(0);
    h.advance(0);
    assert!(h.join_reply(t).is_some());
}

#[test]
fn failed_commit_append_leaves_offsets_untouched() {
    let mut h = H::new();
    let (l, _f) = h.stable_pair();
    assert_eq!(h.commit(&l, 1, "t", 0, 5), ErrorCode::None);
    h.fail_appends = Some(ErrorCode::NotCoordinator);
    // The coordinator answers before the append; the broker turns the answer into the
    // append's error. The offset must not be visible either way.
    let _ = h.commit(&l, 1, "t", 0, 9);
    assert_eq!(h.committed("t", 0), 5);
    let _ = h.commit(&l, 1, "t", 1, 3);
    assert_eq!(h.committed("t", 1), -1);
    // A commit outside group management that created its group leaves no group behind.
    let _ = h.commit_in("simple", "", -1, "t", 0, 1);
    assert!(h.c.group_state("simple").is_none());
    h.fail_appends = None;
    assert_eq!(h.commit(&l, 1, "t", 0, 11), ErrorCode::None);
    assert_eq!(h.committed("t", 0), 11);
}

#[test]
fn failed_sync_append_rebalances_as_kafka() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    let (b, tb) = h.new_member();
    h.advance(i64::from(DELAY) * 2);
    let ra = h.join_reply(ta).unwrap();
    let _ = h.join_reply(tb).unwrap();
    let (leader, follower) = if ra.leader == a { (a, b) } else { (b, a) };
    let tf = h.sync(&follower, 1, vec![]);
    h.fail_appends = Some(ErrorCode::NotCoordinator);
    let tl = h.sync(
        &leader,
        1,
        vec![
            (leader.clone(), Bytes::from_static(b"L")),
            (follower.clone(), Bytes::from_static(b"F")),
        ],
    );
    // The queued answers are replaced by the driver; the group itself must not stay Stable
    // with an assignment that was never written (Kafka: resetAndPropagateAssignmentError and
    // maybePrepareRebalance in the storeGroup callback).
    let _ = (h.sync_reply(tl), h.sync_reply(tf));
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 1));
    let d = h.c.describe_group("g").unwrap();
    assert!(d.members.iter().all(|m| m.assignment.is_empty()));
    // The members rejoin and the next generation completes once appends work again.
    h.fail_appends = None;
    let tl = h.join(&leader);
    let tf = h.join(&follower);
    assert!(h.join_reply(tl).is_some() && h.join_reply(tf).is_some());
    assert_eq!(h.state(), (GroupState::CompletingRebalance, 2));
}

#[test]
fn failed_static_rejoin_append_restores_the_old_member_id() {
    let mut h = H::new();
    let (m1, m2) = stable_static_pair(&mut h);
    h.fail_appends = Some(ErrorCode::NotCoordinator);
    let t = h.join_static("", "i2");
    // The broker replaces this answer with the append's error; the group must keep the
    // identity that is on disk (Kafka's updateStaticMemberAndRebalance callback).
    let new_id = h.join_reply(t).unwrap().member_id;
    assert_ne!(new_id, m2);
    h.fail_appends = None;
    assert_eq!(h.state(), (GroupState::Stable, 1));
    assert_eq!(h.hb_inst(&m2, Some("i2"), 1), ErrorCode::None);
    assert_eq!(
        h.hb_inst(&new_id, Some("i2"), 1),
        ErrorCode::FencedInstanceId
    );
    let d = h.c.describe_group("g").unwrap();
    let mut ids: Vec<String> = d.members.iter().map(|m| m.member_id.clone()).collect();
    ids.sort();
    let mut want = vec![m1.clone(), m2.clone()];
    want.sort();
    assert_eq!(ids, want);
    let t = h.sync_inst(&m2, Some("i2"), 1, vec![]);
    assert_eq!(
        h.sync_reply(t).unwrap().assignment,
        Bytes::from_static(b"A2")
    );
    // The restored member still expires on its own session timeout, and a retry works.
    let t = h.join_static("", "i2");
    let r = h.join_reply(t).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(h.hb_inst(&r.member_id, Some("i2"), 1), ErrorCode::None);
    assert_eq!(h.hb_inst(&m2, Some("i2"), 1), ErrorCode::FencedInstanceId);
}
