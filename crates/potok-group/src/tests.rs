//! Sans-IO tests of the coordinator: every state transition, timeout and fencing error is
//! driven here by events and explicit times, with no sockets and no clocks.

use bytes::{BufMut, Bytes, BytesMut};
use potok_protocol::messages::ConsumerProtocolSubscription;
use potok_protocol::{Encode, ErrorCode};
use potok_records::{LeaderEpoch, Offset};

use crate::records;
use crate::records::{decode_record, OffsetsRecord};
use crate::*;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;
const DELAY: i32 = 3_000;

fn subscription(topics: &[&str]) -> Bytes {
    let sub = ConsumerProtocolSubscription {
        topics: topics.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    sub.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

struct H {
    c: GroupCoordinator,
    now: i64,
    token: u64,
    out: Vec<Output>,
    /// When set, `collect` reports every pending append as failed with this code (a broker
    /// whose `__consumer_offsets` write failed).
    fail_appends: Option<ErrorCode>,
}

impl H {
    fn new() -> H {
        H::with(GroupConfig {
            initial_rebalance_delay_ms: DELAY,
            member_id_seed: 7,
            ..Default::default()
        })
    }

    fn with(config: GroupConfig) -> H {
        H {
            c: GroupCoordinator::new(config, 1_000_000),
            now: 1_000_000,
            token: 0,
            out: Vec::new(),
            fail_appends: None,
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        self.c.tick(self.now);
        self.collect();
    }

    /// Drains the outputs, reporting every pending append as written (as the broker does
    /// after a successful append).
    fn collect(&mut self) {
        loop {
            let drained: Vec<Output> = self.c.drain_outputs().collect();
            if drained.is_empty() {
                return;
            }
            for o in &drained {
                if let Output::Persist {
                    pending: Some(id), ..
                } = o
                {
                    let result = match self.fail_appends {
                        Some(code) => Err(code),
                        None => Ok(()),
                    };
                    self.c.persisted(*id, result, self.now);
                }
            }
            self.out.extend(drained);
        }
    }

    fn join_req(
        &self,
        member: &str,
        instance: Option<&str>,
        protocols: &[(&str, Bytes)],
    ) -> JoinGroupRequest {
        JoinGroupRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: instance.map(Into::into),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| Protocol {
                    name: n.to_string(),
                    metadata: m.clone(),
                })
                .collect(),
            session_timeout_ms: SESSION,
            rebalance_timeout_ms: REBALANCE,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    fn send_join(&mut self, req: JoinGroupRequest) -> Token {
        self.token += 1;
        let t = Token(self.token);
        self.c.join_group(self.now, t, req);
        self.collect();
        t
    }

    fn join(&mut self, member: &str) -> Token {
        let req = self.join_req(member, None, &[("range", subscription(&["t"]))]);
        self.send_join(req)
    }

    fn join_static(&mut self, member: &str, instance: &str) -> Token {
        let req = self.join_req(member, Some(instance), &[("range", subscription(&["t"]))]);
        self.send_join(req)
    }

    fn sync(&mut self, member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> Token {
        self.sync_inst(member, None, generation, assignments)
    }

    fn sync_inst(
        &mut self,
        member: &str,
        instance: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Token {
        self.token += 1;
        let t = Token(self.token);
        self.c.sync_group(
            self.now,
            t,
            SyncGroupRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: instance.map(Into::into),
                protocol_type: Some("consumer".into()),
                protocol_name: None,
                assignments,
            },
        );
        self.collect();
        t
    }

    fn hb(&mut self, member: &str, generation: i32) -> ErrorCode {
        self.hb_inst(member, None, generation)
    }

    fn hb_inst(&mut self, member: &str, instance: Option<&str>, generation: i32) -> ErrorCode {
        let r = self.c.heartbeat(
            self.now,
            &HeartbeatRequest {
                group_id: "g".into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: instance.map(Into::into),
            },
        );
        self.collect();
        r
    }

    fn join_reply(&mut self, t: Token) -> Option<JoinGroupResponse> {
        let i = self
            .out
            .iter()
            .position(|o| matches!(o, Output::Join(x, _) if *x == t))?;
        match self.out.remove(i) {
            Output::Join(_, r) => Some(r),
            _ => unreachable!(),
        }
    }

    fn sync_reply(&mut self, t: Token) -> Option<SyncGroupResponse> {
        let i = self
            .out
            .iter()
            .position(|o| matches!(o, Output::Sync(x, _) if *x == t))?;
        match self.out.remove(i) {
            Output::Sync(_, r) => Some(r),
            _ => unreachable!(),
        }
    }

    fn persisted(&mut self) -> Vec<OffsetsRecord> {
        let mut recs = Vec::new();
        self.out.retain(|o| match o {
            Output::Persist { records, .. } => {
                for r in records {
                    recs.push(decode_record(r.key.clone(), r.value.clone()).unwrap());
                }
                false
            }
            _ => true,
        });
        recs
    }

    fn state(&self) -> (GroupState, i32) {
        self.c.group_state("g").unwrap()
    }

    /// A new dynamic member: MEMBER_ID_REQUIRED, then the rejoin that parks. Returns the id and
    /// the parked token.
    fn new_member(&mut self) -> (String, Token) {
        let t = self.join("");
        let r = self.join_reply(t).unwrap();
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        assert!(r.member_id.starts_with("client-"));
        let t2 = self.join(&r.member_id);
        (r.member_id, t2)
    }

    fn commit(
        &mut self,
        member: &str,
        generation: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> ErrorCode {
        self.commit_in("g", member, generation, topic, partition, offset)
    }

    /// [`H::commit`] to any group: generation -1 and an empty member id make it a commit from
    /// outside group management ("simple" consumers), which creates the group if needed.
    fn commit_in(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> ErrorCode {
        let r = self.c.commit_offsets(
            self.now,
            &OffsetCommitRequest {
                group_id: group.into(),
                generation_id: generation,
                member_id: member.into(),
                group_instance_id: None,
                retention_time_ms: -1,
                topics: vec![(
                    topic.into(),
                    vec![CommitPartition {
                        partition,
                        offset: Offset(offset),
                        leader_epoch: LeaderEpoch(-1),
                        metadata: None,
                    }],
                )],
            },
        );
        self.collect();
        r[0].1[0].1
    }

    fn committed(&self, topic: &str, partition: i32) -> i64 {
        let r = self
            .c
            .fetch_offsets("g", Some(&[(topic.to_string(), vec![partition])]));
        r.topics[0].1[0].offset.0
    }

    /// Two members in a Stable group at generation 1; returns (leader, follower).
    fn stable_pair(&mut self) -> (String, String) {
        let (a, ta) = self.new_member();
        let (b, tb) = self.new_member();
        // The second arrival extends the initial delay once (newMemberAdded).
        self.advance(i64::from(DELAY));
        assert!(self.join_reply(ta).is_none());
        self.advance(i64::from(DELAY));
        let ra = self.join_reply(ta).unwrap();
        let rb = self.join_reply(tb).unwrap();
        assert_eq!(self.state(), (GroupState::CompletingRebalance, 1));
        let (leader, follower) = if ra.leader == a { (a, b) } else { (b, a) };
        let (rl, rf) = if ra.leader == ra.member_id {
            (ra, rb)
        } else {
            (rb, ra)
        };
        assert_eq!(rl.members.len(), 2);
        assert!(rf.members.is_empty());
        let tf = self.sync(&follower, 1, vec![]);
        assert!(self.sync_reply(tf).is_none(), "follower sync parks");
        let tl = self.sync(
            &leader,
            1,
            vec![
                (leader.clone(), Bytes::from_static(b"L")),
                (follower.clone(), Bytes::from_static(b"F")),
            ],
        );
        assert_eq!(
            self.sync_reply(tl).unwrap().assignment,
            Bytes::from_static(b"L")
        );
        assert_eq!(
            self.sync_reply(tf).unwrap().assignment,
            Bytes::from_static(b"F")
        );
        assert_eq!(self.state(), (GroupState::Stable, 1));
        (leader, follower)
    }
}

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

fn stable_static_pair(h: &mut H) -> (String, String) {
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
