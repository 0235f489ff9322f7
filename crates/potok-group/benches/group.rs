//! Benchmarks of the group coordinator state machine, in broker time (no network, no disk):
//!
//! - `rebalance/10_members_100_partitions_from_empty`: ten new members join an empty group
//!   (MEMBER_ID_REQUIRED round trip included, `group.initial.rebalance.delay.ms=0`), the leader
//!   syncs a precomputed range assignment of 100 partitions, the followers sync; ends Stable.
//! - `rebalance/10_members_100_partitions_rejoin`: a Stable group of ten rebalances because its
//!   leader rejoins; everyone rejoins and syncs again.
//! - `commit/1_partition` and `commit/100_partitions`: OffsetCommit requests from a member of a
//!   Stable group, including record encoding (what the broker then appends).
//!
//! Run: `cargo bench -p potok-group --bench group`.

use bytes::{BufMut, Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use potok_group::*;
use potok_protocol::messages::consumer_protocol_assignment::TopicPartition;
use potok_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use potok_protocol::{Encode, ErrorCode};
use potok_records::{LeaderEpoch, Offset};

const MEMBERS: usize = 10;
const PARTITIONS: i32 = 100;

fn subscription() -> Bytes {
    let sub = ConsumerProtocolSubscription {
        topics: vec!["topic".into()],
        ..Default::default()
    };
    let mut b = BytesMut::new();
    b.put_i16(1);
    sub.encode(&mut b, 1).unwrap();
    b.freeze()
}

fn assignment(member: usize) -> Bytes {
    let per = PARTITIONS as usize / MEMBERS;
    let a = ConsumerProtocolAssignment {
        assigned_partitions: vec![TopicPartition {
            topic: "topic".into(),
            partitions: ((member * per) as i32..((member + 1) * per) as i32).collect(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut b = BytesMut::new();
    b.put_i16(1);
    a.encode(&mut b, 1).unwrap();
    b.freeze()
}

fn join_req(member_id: &str, sub: &Bytes) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: "bench-group".into(),
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: sub.clone(),
        }],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        client_id: "bench".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
        supports_skip_assignment: true,
    }
}

/// Drains outputs, returning join/sync answers; persisted records are counted (the broker
/// would append them).
fn drain(c: &mut GroupCoordinator, joins: &mut Vec<(Token, JoinGroupResponse)>, syncs: &mut usize) {
    for o in c.drain_outputs() {
        match o {
            Output::Join(t, r) => joins.push((t, r)),
            Output::Sync(_, r) => {
                assert_eq!(r.error, ErrorCode::None);
                *syncs += 1;
            }
            Output::Persist { records, .. } => {
                black_box(records);
            }
        }
    }
}

/// Syncs every member of generation `generation`; the leader sends the assignment.
fn sync_all(
    c: &mut GroupCoordinator,
    now: i64,
    joins: &[(Token, JoinGroupResponse)],
    assignments: &[Bytes],
) {
    let mut syncs = 0;
    let mut no_joins = Vec::new();
    let leader = &joins[0].1.leader;
    let ids: Vec<String> = joins.iter().map(|(_, r)| r.member_id.clone()).collect();
    let generation = joins[0].1.generation_id;
    for (i, id) in ids.iter().enumerate() {
        let assign = if id == leader {
            ids.iter()
                .cloned()
                .zip(assignments.iter().cloned())
                .collect()
        } else {
            Vec::new()
        };
        c.sync_group(
            now,
            Token(10_000 + i as u64),
            SyncGroupRequest {
                group_id: "bench-group".into(),
                generation_id: generation,
                member_id: id.clone(),
                group_instance_id: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignments: assign,
            },
        );
        drain(c, &mut no_joins, &mut syncs);
    }
    assert_eq!(syncs, MEMBERS);
}

fn rebalance_from_empty(sub: &Bytes, assignments: &[Bytes]) -> GroupCoordinator {
    let mut c = GroupCoordinator::new(
        GroupConfig {
            initial_rebalance_delay_ms: 0,
            ..Default::default()
        },
        0,
    );
    let now = 1;
    let mut joins = Vec::new();
    let mut syncs = 0;
    for i in 0..MEMBERS {
        c.join_group(now, Token(i as u64), join_req("", sub));
        drain(&mut c, &mut joins, &mut syncs);
        let (_, r) = joins.pop().unwrap();
        assert_eq!(r.error, ErrorCode::MemberIdRequired);
        c.join_group(now, Token(100 + i as u64), join_req(&r.member_id, sub));
        drain(&mut c, &mut joins, &mut syncs);
    }
    c.tick(now);
    drain(&mut c, &mut joins, &mut syncs);
    assert_eq!(joins.len(), MEMBERS);
    sync_all(&mut c, now, &joins, assignments);
    assert_eq!(c.group_state("bench-group"), Some((GroupState::Stable, 1)));
    c
}

fn bench(crit: &mut Criterion) {
    let sub = subscription();
    let assignments: Vec<Bytes> = (0..MEMBERS).map(assignment).collect();

    let mut g = crit.benchmark_group("rebalance");
    g.throughput(Throughput::Elements(1));
    g.bench_function("10_members_100_partitions_from_empty", |b| {
        b.iter(|| black_box(rebalance_from_empty(&sub, &assignments)))
    });
    let mut c = rebalance_from_empty(&sub, &assignments);
    let mut generation = 1;
    let ids: Vec<String> = c
        .describe_group("bench-group")
        .unwrap()
        .members
        .into_iter()
        .map(|m| m.member_id)
        .collect();
    g.bench_function("10_members_100_partitions_rejoin", |b| {
        b.iter(|| {
            let mut joins = Vec::new();
            let mut syncs = 0;
            for (i, id) in ids.iter().enumerate() {
                c.join_group(2, Token(i as u64), join_req(id, &sub));
                drain(&mut c, &mut joins, &mut syncs);
            }
            // Followers rejoining a Stable group with unchanged metadata get the current
            // generation back; the leader's rejoin starts the rebalance, so rejoin the
            // followers until all have joined the new generation.
            joins.retain(|(_, r)| r.generation_id > generation);
            if joins.len() < MEMBERS {
                for (i, id) in ids.iter().enumerate() {
                    if joins.iter().any(|(_, r)| &r.member_id == id) {
                        continue;
                    }
                    c.join_group(2, Token(200 + i as u64), join_req(id, &sub));
                    drain(&mut c, &mut joins, &mut syncs);
                }
            }
            assert_eq!(joins.len(), MEMBERS);
            generation = joins[0].1.generation_id;
            sync_all(&mut c, 2, &joins, &assignments);
        })
    });
    g.finish();

    let mut g = crit.benchmark_group("commit");
    let c0 = rebalance_from_empty(&sub, &assignments);
    let member = c0.describe_group("bench-group").unwrap().members[0]
        .member_id
        .clone();
    for parts in [1, 100] {
        let mut c = rebalance_from_empty(&sub, &assignments);
        let _ = &c0;
        // Member ids are deterministic for a given seed, so `member` exists in `c` too.
        let mut offset = 0i64;
        g.throughput(Throughput::Elements(parts as u64));
        g.bench_function(format!("{parts}_partitions"), |b| {
            b.iter(|| {
                offset += 1;
                let req = OffsetCommitRequest {
                    group_id: "bench-group".into(),
                    generation_id: 1,
                    member_id: member.clone(),
                    group_instance_id: None,
                    retention_time_ms: -1,
                    topics: vec![(
                        "topic".into(),
                        (0..parts)
                            .map(|p| CommitPartition {
                                partition: p,
                                offset: Offset(offset),
                                leader_epoch: LeaderEpoch(0),
                                metadata: None,
                            })
                            .collect(),
                    )],
                };
                let r = c.commit_offsets(3, &req);
                debug_assert_eq!(r[0].1[0].1, ErrorCode::None);
                for o in c.drain_outputs() {
                    black_box(o);
                }
                black_box(r)
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
