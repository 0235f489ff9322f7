//! Membership: joins, syncs, heartbeats, rebalances, static members and the request errors of
//! each phase.

use super::*;

#[test]
fn empty_to_stable_with_member_id_required_and_initial_delay() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    // Empty -> PreparingRebalance: the initial delay holds the join phase open.
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 0));
    h.advance(i64::from(DELAY) - 1);
    assert!(h.join_reply(ta).is_none());
    h.advance(1);
    let r = h.join_reply(ta).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1);
    assert_eq!(r.leader, a);
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.members.len(), 1);
    assert_eq!(h.state(), (GroupState::CompletingRebalance, 1));
    let t = h.sync(&a, 1, vec![(a.clone(), Bytes::from_static(b"x"))]);
    let s = h.sync_reply(t).unwrap();
    assert_eq!(s.error, ErrorCode::None);
    assert_eq!(s.assignment, Bytes::from_static(b"x"));
    assert_eq!(h.state(), (GroupState::Stable, 1));
    // The assignment was persisted as group metadata.
    let recs = h.persisted();
    assert!(recs.iter().any(|r| matches!(r,
        OffsetsRecord::GroupMetadata { value: Some(g), .. }
            if g.generation == 1 && g.members[0].assignment == Bytes::from_static(b"x"))));
    assert_eq!(h.hb(&a, 1), ErrorCode::None);
}

#[test]
fn old_join_version_without_member_id_required_joins_directly() {
    let mut h = H::new();
    let mut req = h.join_req("", None, &[("range", subscription(&["t"]))]);
    req.require_known_member_id = false;
    let t = h.send_join(req);
    assert!(h.join_reply(t).is_none(), "parked in the join phase");
    h.advance(i64::from(DELAY));
    let r = h.join_reply(t).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1);
}

#[test]
fn initial_delay_extends_while_members_arrive_up_to_rebalance_timeout() {
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..Default::default()
    });
    let (_, t1) = h.new_member();
    let mut tokens = vec![t1];
    // A new member every 2 s keeps extending the delay (3 s at a time)...
    for _ in 0..20 {
        h.advance(2_000);
        if h.state().0 != GroupState::PreparingRebalance {
            break;
        }
        let (_, t) = h.new_member();
        tokens.push(t);
    }
    // ...but never beyond the rebalance timeout (30 s) from the first join.
    assert_eq!(h.state().0, GroupState::CompletingRebalance);
    let elapsed = h.now - 1_000_000;
    assert!(elapsed <= i64::from(REBALANCE) + 2_000, "elapsed {elapsed}");
    assert!(elapsed >= i64::from(REBALANCE) - 3_000, "elapsed {elapsed}");
    for t in tokens {
        assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::None);
    }
}

#[test]
fn new_member_triggers_rebalance_of_stable_group_and_completes_when_all_rejoin() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    let (c, tc) = h.new_member();
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 1));
    assert_eq!(h.hb(&l, 1), ErrorCode::RebalanceInProgress);
    assert_eq!(h.hb(&f, 1), ErrorCode::RebalanceInProgress);
    // Sync in PreparingRebalance is refused.
    let t = h.sync(&f, 1, vec![]);
    assert_eq!(
        h.sync_reply(t).unwrap().error,
        ErrorCode::RebalanceInProgress
    );
    // Commits with the old generation are still accepted while preparing (revocation commits).
    assert_eq!(h.commit(&f, 1, "t", 0, 5), ErrorCode::None);
    let tl = h.join(&l);
    assert!(h.join_reply(tc).is_none());
    let tf = h.join(&f);
    // Everyone rejoined: the join phase ends at once, without waiting for the timeout.
    assert_eq!(h.state(), (GroupState::CompletingRebalance, 2));
    for t in [tl, tf, tc] {
        let r = h.join_reply(t).unwrap();
        assert_eq!(r.generation_id, 2);
        assert_eq!(r.leader, l);
    }
    let _ = c;
}

#[test]
fn member_that_does_not_rejoin_is_removed_at_rebalance_timeout() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    let tl = h.join(&l); // leader rejoin triggers a rebalance
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 1));
    // The follower keeps heartbeating but never rejoins.
    for _ in 0..5 {
        h.advance(i64::from(REBALANCE) / 6);
        assert_eq!(h.hb(&f, 1), ErrorCode::RebalanceInProgress);
    }
    assert!(h.join_reply(tl).is_none());
    h.advance(i64::from(REBALANCE) / 6 + 1);
    let r = h.join_reply(tl).unwrap();
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.members.len(), 1);
    assert_eq!(h.hb(&f, 1), ErrorCode::UnknownMemberId);
}

#[test]
fn leader_that_does_not_rejoin_is_replaced_by_a_joined_member() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    // A follower with new metadata rejoins, twice (the client gave up on the first).
    let req = h.join_req(&f, None, &[("range", subscription(&["t", "u"]))]);
    let tf = h.send_join(req.clone());
    let tf2 = h.send_join(req);
    // The first parked JoinGroup is answered when replaced.
    assert_eq!(
        h.join_reply(tf).unwrap().error,
        ErrorCode::RebalanceInProgress
    );
    h.advance(i64::from(REBALANCE));
    let r = h.join_reply(tf2).unwrap();
    assert_eq!(r.leader, f);
    assert_eq!(r.members.len(), 1);
    assert_eq!(h.hb(&l, 2), ErrorCode::UnknownMemberId);
}

#[test]
fn session_timeout_removes_silent_member_and_rebalances() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    // The leader heartbeats, the follower stops.
    for _ in 0..4 {
        h.advance(i64::from(SESSION) / 4);
        if h.hb(&l, 1) != ErrorCode::None {
            break;
        }
    }
    h.advance(1);
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 1));
    assert_eq!(h.hb(&l, 1), ErrorCode::RebalanceInProgress);
    assert_eq!(h.hb(&f, 1), ErrorCode::UnknownMemberId);
    let t = h.join(&l);
    let r = h.join_reply(t).unwrap();
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

#[test]
fn heartbeat_just_before_session_timeout_keeps_member() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    for _ in 0..10 {
        h.advance(i64::from(SESSION) - 1);
        assert_eq!(h.hb(&l, 1), ErrorCode::None);
        assert_eq!(h.hb(&f, 1), ErrorCode::None);
    }
    assert_eq!(h.state(), (GroupState::Stable, 1));
}

#[test]
fn last_member_expiring_makes_group_empty_and_persists_it() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    h.advance(i64::from(DELAY));
    h.join_reply(ta).unwrap();
    let t = h.sync(&a, 1, vec![]);
    h.sync_reply(t).unwrap();
    h.persisted();
    h.advance(i64::from(SESSION));
    assert_eq!(h.state(), (GroupState::Empty, 2));
    let recs = h.persisted();
    assert!(recs.iter().any(|r| matches!(r,
        OffsetsRecord::GroupMetadata { value: Some(g), .. }
            if g.generation == 2 && g.members.is_empty() && g.protocol.is_none())));
}

#[test]
fn pending_member_id_required_member_expires_after_session_timeout() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    // A new member gets its id but never comes back; it blocks the join phase only until its
    // session timeout.
    let t = h.join("");
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::MemberIdRequired);
    let tl = h.join(&l); // leader rejoin starts a rebalance
    let tf = h.join(&f);
    assert!(h.join_reply(tl).is_none(), "waiting for the pending member");
    h.advance(i64::from(SESSION));
    assert_eq!(h.join_reply(tl).unwrap().generation_id, 2);
    assert_eq!(h.join_reply(tf).unwrap().generation_id, 2);
}

#[test]
fn member_that_never_syncs_is_removed_after_rebalance_timeout() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    let (b, tb) = h.new_member();
    h.advance(2 * i64::from(DELAY));
    let ra = h.join_reply(ta).unwrap();
    h.join_reply(tb).unwrap();
    let leader = ra.leader.clone();
    let other = if leader == a { b.clone() } else { a.clone() };
    let tl = h.sync(
        &leader,
        1,
        vec![
            (leader.clone(), Bytes::new()),
            (other.clone(), Bytes::new()),
        ],
    );
    h.sync_reply(tl).unwrap();
    assert_eq!(h.state(), (GroupState::Stable, 1));
    // `other` never sends SyncGroup (but heartbeats).
    for _ in 0..3 {
        h.advance(i64::from(REBALANCE) / 3 - 10);
        h.hb(&leader, 1);
        h.hb(&other, 1);
    }
    h.advance(100);
    assert_eq!(h.state().0, GroupState::PreparingRebalance);
    assert_eq!(h.hb(&other, 1), ErrorCode::UnknownMemberId);
}

#[test]
fn parked_follower_sync_is_told_to_rejoin_when_rebalance_restarts() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    let (b, tb) = h.new_member();
    h.advance(2 * i64::from(DELAY));
    let ra = h.join_reply(ta).unwrap();
    h.join_reply(tb).unwrap();
    let follower = if ra.leader == a { b } else { a };
    let ts = h.sync(&follower, 1, vec![]);
    assert!(h.sync_reply(ts).is_none());
    // A third member arrives before the leader syncs.
    let _ = h.new_member();
    assert_eq!(
        h.sync_reply(ts).unwrap().error,
        ErrorCode::RebalanceInProgress
    );
    assert_eq!(h.state().0, GroupState::PreparingRebalance);
}

#[test]
fn commit_during_completing_rebalance_is_rebalance_in_progress() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    h.advance(i64::from(DELAY));
    h.join_reply(ta).unwrap();
    assert_eq!(h.commit(&a, 1, "t", 0, 1), ErrorCode::RebalanceInProgress);
    // Heartbeats are fine between JoinGroup and SyncGroup.
    assert_eq!(h.hb(&a, 1), ErrorCode::None);
}

#[test]
fn rejoin_with_same_metadata_in_completing_rebalance_returns_current_generation() {
    let mut h = H::new();
    let (a, ta) = h.new_member();
    h.advance(i64::from(DELAY));
    h.join_reply(ta).unwrap();
    let t = h.join(&a);
    let r = h.join_reply(t).unwrap();
    assert_eq!(
        (r.error, r.generation_id, r.members.len()),
        (ErrorCode::None, 1, 1)
    );
    assert_eq!(h.state(), (GroupState::CompletingRebalance, 1));
}

#[test]
fn follower_rejoin_in_stable_with_same_metadata_does_not_rebalance() {
    let mut h = H::new();
    let (_, f) = h.stable_pair();
    let t = h.join(&f);
    let r = h.join_reply(t).unwrap();
    assert_eq!((r.error, r.generation_id), (ErrorCode::None, 1));
    assert!(r.members.is_empty());
    assert_eq!(h.state(), (GroupState::Stable, 1));
}

#[test]
fn fencing_errors() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    // ILLEGAL_GENERATION
    assert_eq!(h.hb(&l, 0), ErrorCode::IllegalGeneration);
    assert_eq!(h.hb(&l, 2), ErrorCode::IllegalGeneration);
    let t = h.sync(&f, 7, vec![]);
    assert_eq!(h.sync_reply(t).unwrap().error, ErrorCode::IllegalGeneration);
    assert_eq!(h.commit(&f, 3, "t", 0, 1), ErrorCode::IllegalGeneration);
    // UNKNOWN_MEMBER_ID
    assert_eq!(h.hb("nobody", 1), ErrorCode::UnknownMemberId);
    let t = h.sync("nobody", 1, vec![]);
    assert_eq!(h.sync_reply(t).unwrap().error, ErrorCode::UnknownMemberId);
    let t = h.join("nobody");
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::UnknownMemberId);
    assert_eq!(h.commit("nobody", 1, "t", 0, 1), ErrorCode::UnknownMemberId);
    // A commit without member id and generation is refused while the group has members.
    assert_eq!(h.commit("", -1, "t", 0, 1), ErrorCode::UnknownMemberId);
    // Unknown group.
    let r = h.c.heartbeat(
        h.now,
        &HeartbeatRequest {
            group_id: "other".into(),
            generation_id: 1,
            member_id: l.clone(),
            group_instance_id: None,
        },
    );
    assert_eq!(r, ErrorCode::UnknownMemberId);
    let mut req = h.join_req("someone", None, &[("range", Bytes::new())]);
    req.group_id = "other".into();
    let t = h.send_join(req);
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::UnknownMemberId);
    assert!(h.c.group_state("other").is_none());
    // Committing to a group that does not exist with a generation.
    let r = h.c.commit_offsets(
        h.now,
        &OffsetCommitRequest {
            group_id: "other".into(),
            generation_id: 3,
            member_id: "x".into(),
            group_instance_id: None,
            retention_time_ms: -1,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: Offset(1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: None,
                }],
            )],
        },
    );
    assert_eq!(r[0].1[0].1, ErrorCode::IllegalGeneration);
}

#[test]
fn invalid_requests() {
    let mut h = H::new();
    let mut req = h.join_req("", None, &[("range", Bytes::new())]);
    req.session_timeout_ms = 5_999;
    let t = h.send_join(req.clone());
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InvalidSessionTimeout
    );
    req.session_timeout_ms = 1_800_001;
    let t = h.send_join(req.clone());
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InvalidSessionTimeout
    );
    req.session_timeout_ms = SESSION;
    req.group_id = String::new();
    let t = h.send_join(req.clone());
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::InvalidGroupId);
    req.group_id = "g".into();
    req.protocols.clear();
    let t = h.send_join(req.clone());
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    assert!(
        h.c.group_state("g").is_none(),
        "a failed first join leaves no group"
    );
    req.protocol_type = String::new();
    req.protocols = vec![Protocol {
        name: "range".into(),
        metadata: Bytes::new(),
    }];
    let t = h.send_join(req);
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn inconsistent_protocols_with_existing_members() {
    let mut h = H::new();
    let (l, _) = h.stable_pair();
    let mut req = h.join_req("", None, &[("roundrobin", Bytes::new())]);
    let t = h.send_join(req.clone());
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    req.protocol_type = "connect".into();
    req.protocols = vec![Protocol {
        name: "range".into(),
        metadata: Bytes::new(),
    }];
    let t = h.send_join(req);
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
    // SyncGroup v5 protocol name mismatch.
    h.token += 1;
    h.c.sync_group(
        h.now,
        Token(h.token),
        SyncGroupRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: l,
            group_instance_id: None,
            protocol_type: Some("consumer".into()),
            protocol_name: Some("roundrobin".into()),
            assignments: vec![],
        },
    );
    h.collect();
    let tok = Token(h.token);
    assert_eq!(
        h.sync_reply(tok).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn protocol_selection_by_vote() {
    let mut h = H::new();
    let protos = |first: &str, second: &str| {
        vec![
            (first.to_string(), Bytes::new()),
            (second.to_string(), Bytes::new()),
        ]
    };
    let mut tokens = vec![];
    for prefs in [
        protos("roundrobin", "range"),
        protos("range", "roundrobin"),
        protos("range", "roundrobin"),
    ] {
        let p: Vec<(&str, Bytes)> = prefs.iter().map(|(n, m)| (n.as_str(), m.clone())).collect();
        let req = h.join_req("", None, &p);
        let t = h.send_join(req.clone());
        let id = h.join_reply(t).unwrap().member_id;
        let mut req = req;
        req.member_id = id;
        tokens.push(h.send_join(req));
    }
    h.advance(2 * i64::from(DELAY));
    for t in tokens {
        assert_eq!(
            h.join_reply(t).unwrap().protocol_name.as_deref(),
            Some("range")
        );
    }
}

#[test]
fn group_max_size() {
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: 0,
        max_size: 2,
        ..Default::default()
    });
    let (_l, _f) = {
        let (a, ta) = h.new_member();
        let (b, tb) = h.new_member();
        h.advance(0);
        h.join_reply(ta).unwrap();
        h.join_reply(tb).unwrap();
        (a, b)
    };
    let t = h.join("");
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::GroupMaxSizeReached
    );
    assert_eq!(h.state(), (GroupState::CompletingRebalance, 1));
}

#[test]
fn leave_group_batch_and_errors() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    let r = h.c.leave_group(
        h.now,
        "g",
        vec![
            LeavingMember {
                member_id: f.clone(),
                group_instance_id: None,
            },
            LeavingMember {
                member_id: "ghost".into(),
                group_instance_id: None,
            },
        ],
    );
    h.collect();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.members[0].1, ErrorCode::None);
    assert_eq!(r.members[1].1, ErrorCode::UnknownMemberId);
    assert_eq!(h.state(), (GroupState::PreparingRebalance, 1));
    // The remaining leader is the only member, so its rejoin completes the phase at once.
    let t = h.join(&l);
    assert_eq!(h.join_reply(t).unwrap().generation_id, 2);
    let r = h.c.leave_group(
        h.now,
        "g",
        vec![LeavingMember {
            member_id: l.clone(),
            group_instance_id: None,
        }],
    );
    h.collect();
    assert_eq!(r.members[0].1, ErrorCode::None);
    // CompletingRebalance -> PreparingRebalance -> (all joined: none) -> Empty.
    assert_eq!(h.state(), (GroupState::Empty, 3));
    let r = h.c.leave_group(
        h.now,
        "nope",
        vec![LeavingMember {
            member_id: l,
            group_instance_id: None,
        }],
    );
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.members[0].1, ErrorCode::UnknownMemberId);
}

#[test]
fn leave_of_pending_member_unblocks_join() {
    let mut h = H::new();
    let (l, f) = h.stable_pair();
    let t = h.join("");
    let pending = h.join_reply(t).unwrap().member_id;
    let tl = h.join(&l);
    let tf = h.join(&f);
    assert!(h.join_reply(tl).is_none());
    let r = h.c.leave_group(
        h.now,
        "g",
        vec![LeavingMember {
            member_id: pending,
            group_instance_id: None,
        }],
    );
    h.collect();
    assert_eq!(r.members[0].1, ErrorCode::None);
    assert_eq!(h.join_reply(tl).unwrap().generation_id, 2);
    assert_eq!(h.join_reply(tf).unwrap().generation_id, 2);
}

pub(super) fn stable_static_pair(h: &mut H) -> (String, String) {
    let t1 = h.join_static("", "i1");
    let t2 = h.join_static("", "i2");
    h.advance(2 * i64::from(DELAY));
    let r1 = h.join_reply(t1).unwrap();
    let r2 = h.join_reply(t2).unwrap();
    assert!(
        r1.member_id.starts_with("i1-"),
        "static ids use the instance id"
    );
    let (m1, m2) = (r1.member_id.clone(), r2.member_id.clone());
    let leader = r1.leader.clone();
    let tl = if leader == m1 {
        h.sync_inst(
            &m1,
            Some("i1"),
            1,
            vec![
                (m1.clone(), Bytes::from_static(b"A1")),
                (m2.clone(), Bytes::from_static(b"A2")),
            ],
        )
    } else {
        h.sync_inst(
            &m2,
            Some("i2"),
            1,
            vec![
                (m1.clone(), Bytes::from_static(b"A1")),
                (m2.clone(), Bytes::from_static(b"A2")),
            ],
        )
    };
    h.sync_reply(tl).unwrap();
    let t = if leader == m1 {
        h.sync_inst(&m2, Some("i2"), 1, vec![])
    } else {
        h.sync_inst(&m1, Some("i1"), 1, vec![])
    };
    h.sync_reply(t).unwrap();
    assert_eq!(h.state(), (GroupState::Stable, 1));
    (m1, m2)
}

#[test]
fn static_member_restart_within_session_timeout_does_not_rebalance() {
    let mut h = H::new();
    let (m1, m2) = stable_static_pair(&mut h);
    h.persisted();
    // i2 restarts: it joins with no member id but its instance id.
    h.advance(i64::from(SESSION) / 2);
    assert_eq!(h.hb_inst(&m1, Some("i1"), 1), ErrorCode::None);
    let t = h.join_static("", "i2");
    let r = h.join_reply(t).unwrap();
    assert_eq!(r.error, ErrorCode::None);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert_ne!(r.member_id, m2);
    assert_eq!(h.state(), (GroupState::Stable, 1));
    // The new identity is persisted, and it gets its old assignment back.
    assert!(h.persisted().iter().any(|rec| matches!(rec,
        OffsetsRecord::GroupMetadata { value: Some(g), .. }
            if g.members.iter().any(|m| m.member_id == r.member_id))));
    let t = h.sync_inst(&r.member_id, Some("i2"), 1, vec![]);
    assert_eq!(
        h.sync_reply(t).unwrap().assignment,
        Bytes::from_static(b"A2")
    );
    // The old incarnation is fenced.
    assert_eq!(h.hb_inst(&m2, Some("i2"), 1), ErrorCode::FencedInstanceId);
    let t = h.sync_inst(&m2, Some("i2"), 1, vec![]);
    assert_eq!(h.sync_reply(t).unwrap().error, ErrorCode::FencedInstanceId);
    let mut req = h.join_req(&m2, Some("i2"), &[("range", subscription(&["t"]))]);
    req.require_known_member_id = true;
    let t = h.send_join(req);
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::FencedInstanceId);
    let r2 = h.c.commit_offsets(
        h.now,
        &OffsetCommitRequest {
            group_id: "g".into(),
            generation_id: 1,
            member_id: m2.clone(),
            group_instance_id: Some("i2".into()),
            retention_time_ms: -1,
            topics: vec![(
                "t".into(),
                vec![CommitPartition {
                    partition: 0,
                    offset: Offset(1),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: None,
                }],
            )],
        },
    );
    assert_eq!(r2[0].1[0].1, ErrorCode::FencedInstanceId);
    // An instance id that is not in the group.
    assert_eq!(h.hb_inst(&m1, Some("i9"), 1), ErrorCode::UnknownMemberId);
}

#[test]
fn static_member_rejoin_with_new_protocol_rebalances() {
    let mut h = H::new();
    let (_m1, _m2) = stable_static_pair(&mut h);
    let req = h.join_req(
        "",
        Some("i2"),
        &[
            ("roundrobin", Bytes::new()),
            ("range", subscription(&["t"])),
        ],
    );
    let t = h.send_join(req);
    // "range" is still the only common protocol, so the selected protocol does not change...
    let r = h.join_reply(t).unwrap();
    assert_eq!(r.generation_id, 1);
    // ...but if the group would pick another protocol, a rebalance starts.
    let mut h = H::new();
    let (_m1, _m2) = stable_static_pair(&mut h);
    let mut req = h.join_req("", Some("i1"), &[("range", subscription(&["t"]))]);
    req.protocols = vec![Protocol {
        name: "roundrobin".into(),
        metadata: Bytes::new(),
    }];
    let t = h.send_join(req);
    // No common protocol with i2 any more.
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::InconsistentGroupProtocol
    );
}

#[test]
fn static_member_join_during_preparing_rebalance_fences_old_parked_join() {
    let mut h = H::new();
    let (m1, m2) = stable_static_pair(&mut h);
    let leader_join = h.join_static(&m1, "i1");
    let old_join = h.join_static(&m2, "i2");
    // The join phase completed immediately (both rejoined); start another rebalance so that
    // a parked join exists, then restart i2.
    let r1 = h.join_reply(leader_join).unwrap();
    h.join_reply(old_join).unwrap();
    assert_eq!(r1.generation_id, 2);
    let _ = h.new_member(); // PreparingRebalance again, gen 2
    let parked = h.join_static(&m2, "i2");
    assert!(h.join_reply(parked).is_none());
    let t = h.join_static("", "i2");
    assert_eq!(
        h.join_reply(parked).unwrap().error,
        ErrorCode::FencedInstanceId
    );
    assert!(
        h.join_reply(t).is_none(),
        "the new incarnation waits for the join phase"
    );
}

#[test]
fn static_member_survives_join_phase_without_rejoining_until_session_timeout() {
    let mut h = H::new();
    let (m1, m2) = stable_static_pair(&mut h);
    let t = h.join_static(&m1, "i1"); // leader rejoin: rebalance; i2 does not rejoin
    for _ in 0..6 {
        h.advance(i64::from(REBALANCE) / 6);
        // i2 heartbeats (its session stays alive) but does not rejoin.
        h.hb_inst(&m2, Some("i2"), 1);
    }
    let r = h.join_reply(t).unwrap();
    // i2 is still a member of the new generation (static members are not dropped at the end
    // of the join phase).
    assert_eq!(r.members.len(), 2);
}

#[test]
fn new_member_join_timeout() {
    let mut h = H::with(GroupConfig {
        initial_rebalance_delay_ms: DELAY,
        ..Default::default()
    });
    let (l, _f) = h.stable_pair();
    // Rebalance timeouts longer than the new-member join timeout.
    let mut req = h.join_req(&l, None, &[("range", subscription(&["t"]))]);
    req.rebalance_timeout_ms = 600_000;
    let tl = h.send_join(req);
    let mut req = h.join_req("", None, &[("range", subscription(&["t"]))]);
    req.rebalance_timeout_ms = 600_000;
    let t = h.send_join(req.clone());
    req.member_id = h.join_reply(t).unwrap().member_id;
    let tn = h.send_join(req);
    // The old follower keeps its session alive without rejoining, which holds the join phase.
    for _ in 0..60 {
        h.advance(5_000);
        h.hb(&_f, 1);
    }
    assert_eq!(h.join_reply(tn).unwrap().error, ErrorCode::UnknownMemberId);
    assert!(h.join_reply(tl).is_none());
}
