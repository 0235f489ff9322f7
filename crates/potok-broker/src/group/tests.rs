//! Tests of the group service against real `__consumer_offsets` logs: failed appends (through
//! `potok_log::FaultyStorage`) must leave the coordinator as it was, and the start-up rewrite
//! of oversized partitions must keep every group's live state.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use potok_group::{
    CommitPartition, GroupState, JoinGroupRequest, OffsetCommitRequest, PartitionResults, Protocol,
    SyncGroupRequest,
};
use potok_log::{FaultPlan, FaultyStorage, RealStorage, Storage};
use potok_protocol::ErrorCode;
use potok_records::{LeaderEpoch, Offset};

use super::*;

fn config(dir: &Path, partitions: i32) -> BrokerConfig {
    BrokerConfig::from_properties(vec![
        ("log.dirs".into(), dir.display().to_string()),
        (
            "offsets.topic.num.partitions".into(),
            partitions.to_string(),
        ),
        ("group.initial.rebalance.delay.ms".into(), "0".into()),
    ])
    .unwrap()
}

/// A group service over a topic manager whose logs go through `storage`, opened as the broker
/// opens them at start.
struct Svc {
    svc: GroupService,
    topics: Arc<TopicManager>,
}

impl std::ops::Deref for Svc {
    type Target = GroupService;
    fn deref(&self) -> &GroupService {
        &self.svc
    }
}

impl Svc {
    /// Closes every log cleanly, as the broker's shutdown does.
    fn close(&self) {
        self.topics.close_all(1);
    }
}

fn open(dir: &Path, partitions: i32, storage: Arc<dyn Storage>) -> Svc {
    let cfg = config(dir, partitions);
    finish_interrupted_rewrites(dir).unwrap();
    let topics = Arc::new(TopicManager::open_with_storage(&cfg, storage).unwrap());
    let svc = GroupService::open(&cfg, Arc::clone(&topics)).unwrap();
    Svc { svc, topics }
}

fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    OffsetCommitRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        retention_time_ms: -1,
        topics: vec![(
            "t".into(),
            offsets
                .iter()
                .map(|&(partition, offset)| CommitPartition {
                    partition,
                    offset: Offset(offset),
                    leader_epoch: LeaderEpoch(-1),
                    metadata: Some(format!("m{offset}")),
                })
                .collect(),
        )],
    }
}

fn commit(
    svc: &GroupService,
    group: &str,
    offsets: &[(i32, i64)],
) -> Result<PartitionResults, ErrorCode> {
    let req = commit_req(group, -1, "", offsets);
    svc.call(|c, now| c.commit_offsets(now, &req))
}

fn fetched(svc: &GroupService, group: &str, partition: i32) -> (i64, String) {
    let r = svc
        .call(|c, _| c.fetch_offsets(group, Some(&[("t".to_string(), vec![partition])])))
        .unwrap();
    let p = &r.topics[0].1[0];
    (p.offset.0, p.metadata.clone())
}

fn all_ok(r: &PartitionResults) -> bool {
    r.iter()
        .all(|(_, ps)| ps.iter().all(|(_, c)| *c == ErrorCode::None))
}

fn join_req(member: &str) -> JoinGroupRequest {
    JoinGroupRequest {
        group_id: "cg".into(),
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: Bytes::from_static(b"sub"),
        }],
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 60_000,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: false,
        supports_skip_assignment: false,
    }
}

/// Joins `cg` as a single member (or rejoins as `member`) and returns (member id, generation).
fn join(svc: &GroupService, member: &str) -> (String, i32) {
    let (token, mut rx) = svc.park();
    let req = join_req(member);
    svc.call(|c, now| c.join_group(now, token, req)).unwrap();
    // With no initial delay the join phase ends at the next timer.
    svc.tick();
    match rx.try_recv().expect("join answered") {
        Parked::Join(r) => {
            assert_eq!(r.error, ErrorCode::None, "{r:?}");
            (r.member_id, r.generation_id)
        }
        other => panic!("{other:?}"),
    }
}

fn sync(svc: &GroupService, member: &str, generation: i32, assignment: &'static [u8]) -> ErrorCode {
    let (token, mut rx) = svc.park();
    let req = SyncGroupRequest {
        group_id: "cg".into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: vec![(member.into(), Bytes::from_static(assignment))],
    };
    let _ = svc.call(|c, now| c.sync_group(now, token, req));
    match rx.try_recv().expect("sync answered") {
        Parked::Sync(r) => r.error,
        other => panic!("{other:?}"),
    }
}

fn assignment(svc: &GroupService) -> (GroupState, i32, Vec<Bytes>) {
    svc.call(|c, _| {
        let d = c.describe_group("cg").unwrap();
        let (state, generation) = c.group_state("cg").unwrap();
        (
            state,
            generation,
            d.members.into_iter().map(|m| m.assignment).collect(),
        )
    })
    .unwrap()
}

#[test]
fn failed_offset_commit_append_leaves_memory_and_disk_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new();
    let svc = open(dir.path(), 1, Arc::new(faulty.clone()));
    assert!(all_ok(&commit(&svc, "g", &[(0, 10)]).unwrap()));
    assert_eq!(fetched(&svc, "g", 0), (10, "m10".into()));

    faulty.set_plan(FaultPlan {
        fail_writes: 1,
        ..FaultPlan::default()
    });
    // Kafka maps the storage error of a failed append to NOT_COORDINATOR.
    assert_eq!(
        commit(&svc, "g", &[(0, 20)]),
        Err(ErrorCode::NotCoordinator)
    );
    assert_eq!(
        fetched(&svc, "g", 0),
        (10, "m10".into()),
        "B must not be visible"
    );
    // A commit that would have created its group leaves none behind.
    faulty.set_plan(FaultPlan {
        fail_writes: 1,
        ..FaultPlan::default()
    });
    assert_eq!(commit(&svc, "h", &[(0, 1)]), Err(ErrorCode::NotCoordinator));
    assert!(svc.call(|c, _| c.group_state("h")).unwrap().is_none());

    // The fault is used up: the next commit works and survives a restart.
    assert!(all_ok(&commit(&svc, "g", &[(0, 30), (1, 31)]).unwrap()));
    assert_eq!(fetched(&svc, "g", 0), (30, "m30".into()));
    svc.close();
    drop(svc);
    let svc = open(dir.path(), 1, Arc::new(RealStorage));
    assert_eq!(fetched(&svc, "g", 0), (30, "m30".into()));
    assert_eq!(fetched(&svc, "g", 1), (31, "m31".into()));
    assert!(svc.call(|c, _| c.group_state("h")).unwrap().is_none());
    svc.close();
}

#[test]
fn failed_sync_group_append_does_not_make_the_group_stable() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = FaultyStorage::new();
    let svc = open(dir.path(), 1, Arc::new(faulty.clone()));
    // The topic exists before the fault, as after a client's FindCoordinator: the write that
    // fails is the append, not the creation of the topic.
    svc.ensure_offsets_topic().unwrap();
    let (member, generation) = join(&svc, "");
    assert_eq!(generation, 1);
    faulty.set_plan(FaultPlan {
        fail_writes: 1,
        ..FaultPlan::default()
    });
    assert_eq!(sync(&svc, &member, 1, b"A1"), ErrorCode::NotCoordinator);
    // As Kafka's SyncGroup storeGroup callback: the assignment is reset and the group
    // rebalances instead of staying Stable with an assignment that was never written.
    let (state, generation, assignments) = assignment(&svc);
    assert_eq!((state, generation), (GroupState::PreparingRebalance, 1));
    assert!(assignments.iter().all(|a| a.is_empty()));

    // The member rejoins; the next generation's assignment is written and survives a restart.
    let (member, generation) = join(&svc, &member);
    assert_eq!(generation, 2);
    assert_eq!(sync(&svc, &member, 2, b"A2"), ErrorCode::None);
    assert_eq!(
        assignment(&svc),
        (GroupState::Stable, 2, vec![Bytes::from_static(b"A2")])
    );
    svc.close();
    drop(svc);
    let svc = open(dir.path(), 1, Arc::new(RealStorage));
    let (_, generation, assignments) = assignment(&svc);
    assert_eq!(generation, 2);
    assert_eq!(assignments, vec![Bytes::from_static(b"A2")]);
    svc.close();
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn partition0(dir: &Path) -> PathBuf {
    dir.join(OFFSETS_TOPIC).join(format!("{OFFSETS_TOPIC}-0"))
}

fn log_end(svc: &GroupService, p: i32) -> i64 {
    lock(&svc.inner).partitions[p as usize]
        .offsets()
        .unwrap()
        .1
         .0
}

#[test]
fn oversized_offsets_partition_is_rewritten_at_start() {
    let dir = tempfile::tempdir().unwrap();
    // One partition so that every group shares the log that grows.
    let svc = open(dir.path(), 1, Arc::new(RealStorage));
    let (member, generation) = join(&svc, "");
    assert_eq!(sync(&svc, &member, generation, b"ASSIGN"), ErrorCode::None);
    // 2 groups x 10 partitions x 600 rounds = 12,000 offset records for 20 live keys.
    let rounds = 600;
    for round in 0..rounds {
        for group in ["a", "b"] {
            let offsets: Vec<(i32, i64)> = (0..10).map(|p| (p, round * 100 + p as i64)).collect();
            assert!(all_ok(&commit(&svc, group, &offsets).unwrap()));
        }
    }
    // The consumer group commits as its member; a deleted group must stay deleted.
    let req = commit_req("cg", generation, &member, &[(0, 77)]);
    assert!(all_ok(
        &svc.call(|c, now| c.commit_offsets(now, &req)).unwrap()
    ));
    assert!(all_ok(&commit(&svc, "gone", &[(0, 5)]).unwrap()));
    let deleted = svc.call(|c, _| c.delete_groups(&["gone".into()])).unwrap();
    assert_eq!(deleted[0].1, ErrorCode::None);
    let before_records = log_end(&svc, 0);
    assert!(
        before_records as u64 >= COMPACT_MIN_RECORDS,
        "{before_records}"
    );
    svc.close();
    drop(svc);
    let before_bytes = dir_bytes(&partition0(dir.path()));

    let check = |svc: &GroupService| {
        for group in ["a", "b"] {
            for p in 0..10 {
                let last = (rounds - 1) * 100 + p as i64;
                assert_eq!(fetched(svc, group, p), (last, format!("m{last}")));
            }
        }
        assert_eq!(fetched(svc, "cg", 0), (77, "m77".into()));
        assert_eq!(
            assignment(svc),
            (GroupState::Stable, 1, vec![Bytes::from_static(b"ASSIGN")])
        );
        assert!(svc.call(|c, _| c.group_state("gone")).unwrap().is_none());
    };

    // First restart: the partition is rewritten with its live records only.
    let svc = open(dir.path(), 1, Arc::new(RealStorage));
    check(&svc);
    // 20 + 1 offsets and the group metadata of `cg` ("a" and "b" have none stored).
    let after_records = log_end(&svc, 0);
    assert_eq!(after_records, 22);
    svc.close();
    drop(svc);
    let after_bytes = dir_bytes(&partition0(dir.path()));
    assert!(
        after_bytes * 10 < before_bytes,
        "{after_bytes} vs {before_bytes}"
    );
    let offsets_dir = dir.path().join(OFFSETS_TOPIC);
    let leftovers: Vec<String> = std::fs::read_dir(&offsets_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".old") || n.ends_with(".compacting"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Second restart: nothing to rewrite, same state, same log.
    let svc = open(dir.path(), 1, Arc::new(RealStorage));
    check(&svc);
    assert_eq!(log_end(&svc, 0), after_records);
    svc.close();
    drop(svc);
    assert_eq!(dir_bytes(&partition0(dir.path())), after_bytes);
}

/// A deadline that has passed takes effect before the next request is handled, whether or not
/// the timer task has run: DeleteGroups sent right after the only member's session expired finds
/// the group empty (librdkafka's 0081-admin sends it exactly `session.timeout.ms` after closing
/// static members). No timer task runs in this test, so only the request itself can expire the
/// member.
#[test]
fn expired_sessions_take_effect_before_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut props = vec![
        ("log.dirs".into(), dir.path().display().to_string()),
        ("offsets.topic.num.partitions".into(), "1".into()),
        ("group.initial.rebalance.delay.ms".into(), "0".into()),
        ("group.min.session.timeout.ms".into(), "10".into()),
    ];
    props.sort();
    let cfg = BrokerConfig::from_properties(props).unwrap();
    let topics = Arc::new(TopicManager::open(&cfg).unwrap());
    let svc = GroupService::open(&cfg, topics).unwrap();
    let (token, mut rx) = svc.park();
    let mut req = join_req("");
    req.session_timeout_ms = 200;
    req.group_instance_id = Some("static-1".into());
    svc.call(|c, now| c.join_group(now, token, req)).unwrap();
    svc.tick();
    let (member, generation) = match rx.try_recv().expect("join answered") {
        Parked::Join(r) => (r.member_id, r.generation_id),
        other => panic!("{other:?}"),
    };
    assert_eq!(sync(&svc, &member, generation, b"a"), ErrorCode::None);
    let still_there = svc
        .call(|c, _| c.delete_groups(&["cg".to_string()]))
        .unwrap();
    assert_eq!(
        still_there,
        vec![("cg".to_string(), ErrorCode::NonEmptyGroup)]
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    let deleted = svc
        .call(|c, _| c.delete_groups(&["cg".to_string()]))
        .unwrap();
    assert_eq!(deleted, vec![("cg".to_string(), ErrorCode::None)]);
}

/// `__consumer_offsets` exists only once the coordinator needs it, then as an internal topic of
/// the topic manager with `offsets.topic.num.partitions` partitions and Kafka's configs.
#[test]
fn offsets_topic_is_created_when_first_needed() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), 3, Arc::new(RealStorage));
    assert!(
        svc.topics.get(OFFSETS_TOPIC).is_none(),
        "an idle broker has no offsets topic"
    );
    svc.ensure_offsets_topic().unwrap();
    let t = svc.topics.get(OFFSETS_TOPIC).expect("created");
    assert_eq!(t.partition_count(), 3);
    let state = t.state();
    assert_eq!(
        state.overrides.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    // Compacted: retention never deletes live offsets.
    assert_eq!(state.config.log.retention_ms, -1);
    assert_eq!(state.config.log.retention_bytes, -1);
    // A second call keeps the topic.
    svc.ensure_offsets_topic().unwrap();
    assert_eq!(svc.topics.get(OFFSETS_TOPIC).unwrap().id(), t.id());
    // Group records go into the topic's partitions, which clients can read like any other.
    assert!(all_ok(&commit(&svc, "g", &[(0, 5)]).unwrap()));
    let ends: i64 = (0..3).map(|p| log_end(&svc, p)).sum();
    assert_eq!(ends, 1);
    // Clients may not create it, nor the other internal topics.
    for name in [OFFSETS_TOPIC, "__transaction_state", "__share_group_state"] {
        let e = svc
            .topics
            .create_topic(NewTopic {
                name: name.into(),
                partitions: 1,
                configs: Default::default(),
            })
            .unwrap_err();
        let want = if name == OFFSETS_TOPIC {
            ErrorCode::TopicAlreadyExists
        } else {
            ErrorCode::InvalidRequest
        };
        assert_eq!(e.code, want, "{name}: {e:?}");
    }
    svc.close();
}

/// A client that commits without FindCoordinator creates the topic with its first write; the
/// topic's partition count then decides where groups live, even if the setting changes.
#[test]
fn existing_offsets_topic_keeps_its_partition_count() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), 2, Arc::new(RealStorage));
    assert!(all_ok(&commit(&svc, "g", &[(0, 5), (1, 6)]).unwrap()));
    let id = svc.topics.get(OFFSETS_TOPIC).unwrap().id();
    svc.close();
    drop(svc);
    let svc = open(dir.path(), 7, Arc::new(RealStorage));
    assert_eq!(svc.partitions(), 2);
    let t = svc.topics.get(OFFSETS_TOPIC).unwrap();
    assert_eq!((t.id(), t.partition_count()), (id, 2));
    assert_eq!(fetched(&svc, "g", 0), (5, "m5".into()));
    assert_eq!(fetched(&svc, "g", 1), (6, "m6".into()));
    svc.close();
}

/// A data directory of the release before `__consumer_offsets` became a topic: offsets logs
/// under `{log.dirs}/__consumer_offsets/` and no topic in the metadata log (reproduced by
/// removing the metadata log, which then held no topic). The topic is created at start and
/// adopts the logs; nothing is lost.
#[test]
fn offsets_logs_of_an_earlier_release_become_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let svc = open(dir.path(), 4, Arc::new(RealStorage));
    assert!(all_ok(&commit(&svc, "old", &[(0, 11), (3, 33)]).unwrap()));
    svc.close();
    drop(svc);
    std::fs::remove_dir_all(dir.path().join(crate::metadata_log::METADATA_DIR)).unwrap();
    let svc = open(dir.path(), 4, Arc::new(RealStorage));
    let t = svc.topics.get(OFFSETS_TOPIC).expect("adopted");
    assert_eq!(t.partition_count(), 4);
    assert_eq!(fetched(&svc, "old", 0), (11, "m11".into()));
    assert_eq!(fetched(&svc, "old", 3), (33, "m33".into()));
    svc.close();
}
