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

mod membership;
mod offsets;
mod ownership;
mod txn_offsets;
