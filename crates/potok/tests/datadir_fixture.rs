//! Data directories written by an earlier release open with every record, topic config,
//! partition count and committed offset (issue #13 acceptance 3), against the real binary.
//!
//! `tests/fixtures/datadir-v0.1/` is a data directory written and cleanly shut down by Potok
//! 0.1.0 (the metadata log in Potok's own record types, before the switch to Kafka's KRaft
//! records). It was made by [`make_datadir_fixture`] (run through `scripts/make-datadir-fixture`)
//! from the deterministic content in [`fixture_batches`], so the checks below compare what the
//! broker serves with what was produced, field by field. `tests/fixtures/README.md` says how
//! and when each fixture was made.
//!
//! The fixture was written at a fixed date and its records carry fixed 2026 timestamps, so
//! the brokers started on it keep data and committed offsets forever (`log.retention.ms=-1`,
//! a large `offsets.retention.minutes`): otherwise time-based retention would delete them
//! once the fixture is a week old, and the test would depend on the calendar.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use potok_protocol::messages::describe_configs_request::DescribeConfigsResource;
use potok_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use potok_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use potok_protocol::messages::leave_group_request::MemberIdentity;
use potok_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use potok_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use potok_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use potok_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, FetchRequest, FetchResponse,
    InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, MetadataRequest, MetadataResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use potok_records::{
    split_batches, Compression, Header, NewRecord, ProducerEpoch, ProducerId, RecordBatch,
    RecordBatchBuilder,
};

use common::wire::Client;
use common::Broker;

/// The fixture written by Potok 0.1.0.
fn fixture_v0_1() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v0.1")
}

/// 2026-01-01T00:00:00Z: the base of every record timestamp in the fixture.
const BASE_TS: i64 = 1_767_225_600_000;

const GROUP: &str = "fixture-group";

/// `(topic, partitions, config overrides)` of the fixture.
fn fixture_topics() -> Vec<(&'static str, i32, BTreeMap<String, String>)> {
    let orders = [
        // 100 years, so that the fixed timestamps never expire.
        ("retention.ms", "3153600000000"),
        ("max.message.bytes", "200000"),
    ];
    vec![
        (
            "orders",
            3,
            orders
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ("events", 1, BTreeMap::new()),
    ]
}

/// `(topic, partition, committed offset, metadata)` of [`GROUP`].
fn fixture_commits() -> Vec<(&'static str, i32, i64, Option<&'static str>)> {
    vec![
        ("orders", 0, 3, Some("m-0")),
        ("orders", 1, 1, None),
        ("orders", 2, 5, Some("")),
        ("events", 0, 2, Some("e")),
    ]
}

/// One produced batch of the fixture.
struct FixtureBatch {
    topic: &'static str,
    partition: i32,
    compression: Compression,
    /// Produced by an idempotent producer (InitProducerId), so that the fixture has
    /// producer-state snapshots and the producer-id block file.
    idempotent: bool,
    records: Vec<NewRecord>,
}

fn text(s: String) -> Option<Bytes> {
    Some(Bytes::from(s))
}

/// Every batch of the fixture in produce order. Keys, values and headers vary (null keys, a
/// null value, no headers, duplicate header keys, a null header value), and some batches are
/// compressed.
fn fixture_batches() -> Vec<FixtureBatch> {
    let mut out = Vec::new();
    let mut push = |topic: &'static str, partition: i32, j: i64, n: i64, idempotent: bool| {
        let compression = match (partition + j as i32) % 4 {
            1 => Compression::Lz4,
            2 if j > 0 => Compression::Zstd,
            3 => Compression::Gzip,
            _ => Compression::None,
        };
        let records = (0..n)
            .map(|i| NewRecord {
                timestamp: BASE_TS + (i64::from(partition) * 100 + j * 10 + i) * 1000,
                key: (i % 4 != 3).then(|| Bytes::from(format!("{topic}/{partition}/k{j}.{i}"))),
                value: if (j, i) == (1, 2) {
                    None
                } else {
                    text(format!(
                        "{topic}/{partition}/v{j}.{i}/{}",
                        "x".repeat(i as usize * 7)
                    ))
                },
                headers: match i % 3 {
                    0 => Vec::new(),
                    1 => vec![Header {
                        key: Bytes::from_static(b"trace"),
                        value: text(format!("{j}.{i}")),
                    }],
                    _ => vec![
                        Header {
                            key: Bytes::from_static(b"a"),
                            value: Some(Bytes::from_static(b"1")),
                        },
                        Header {
                            key: Bytes::from_static(b"a"),
                            value: Some(Bytes::from_static(b"2")),
                        },
                        Header {
                            key: Bytes::from_static(b"nul"),
                            value: None,
                        },
                    ],
                },
            })
            .collect();
        out.push(FixtureBatch {
            topic,
            partition,
            compression,
            idempotent,
            records,
        });
    };
    for j in 0..3 {
        for p in 0..3 {
            push("orders", p, j, 2 + j + i64::from(p), false);
        }
    }
    for j in 0..4 {
        push("events", 0, j, 3, j == 3);
    }
    out
}

/// One record as the checks compare it: offset, timestamp, key, value, headers.
type Rec = (i64, i64, Option<Bytes>, Option<Bytes>, Vec<Header>);

/// The records each partition must hold, with their offsets, and the base offsets of its
/// batches.
fn expected() -> BTreeMap<(String, i32), (Vec<Rec>, Vec<i64>)> {
    let mut out: BTreeMap<(String, i32), (Vec<Rec>, Vec<i64>)> = BTreeMap::new();
    for (t, n, _) in fixture_topics() {
        for p in 0..n {
            out.insert((t.to_string(), p), Default::default());
        }
    }
    for b in fixture_batches() {
        let (recs, bases) = out
            .get_mut(&(b.topic.to_string(), b.partition))
            .expect("fixture batch for a fixture partition");
        bases.push(recs.len() as i64);
        for r in b.records {
            recs.push((recs.len() as i64, r.timestamp, r.key, r.value, r.headers));
        }
    }
    out
}

fn batch_bytes(b: &FixtureBatch, producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut builder = RecordBatchBuilder::new().compression(b.compression);
    if let Some((id, epoch, seq)) = producer {
        builder = builder.producer(ProducerId(id), ProducerEpoch(epoch), seq);
    }
    for r in &b.records {
        builder = builder.record(r.clone());
    }
    builder.build().expect("fixture batch").into_bytes()
}

fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    )
}

/// `name -> (topic id, partition count)` of every non-internal topic.
fn user_topics(c: &mut Client) -> BTreeMap<String, (String, usize)> {
    metadata(c)
        .topics
        .iter()
        .filter(|t| !t.is_internal)
        .map(|t| {
            assert_eq!(t.error_code, 0, "{t:?}");
            (
                t.name.clone().unwrap_or_default(),
                (t.topic_id.to_string(), t.partitions.len()),
            )
        })
        .collect()
}

/// The topic configs set on `topic` itself (source DYNAMIC_TOPIC_CONFIG).
fn topic_overrides(c: &mut Client, topic: &str) -> BTreeMap<String, String> {
    let r: DescribeConfigsResponse = c.call(
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest {
            resources: vec![DescribeConfigsResource {
                resource_type: 2,
                resource_name: topic.into(),
                configuration_keys: None,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(
        r.results[0].error_code, 0,
        "{:?}",
        r.results[0].error_message
    );
    r.results[0]
        .configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| (c.name.clone(), c.value.clone().unwrap_or_default()))
        .collect()
}

/// Every batch of one partition, fetched from offset 0 to the high watermark; also returns
/// `(log start offset, high watermark)`.
fn fetch_all(c: &mut Client, topic: &str, partition: i32) -> (Vec<RecordBatch>, i64, i64) {
    let mut out: Vec<RecordBatch> = Vec::new();
    loop {
        let offset = out.last().map_or(0, |b| b.header().next_offset().0);
        let r: FetchResponse = c.call(
            ApiKey::Fetch,
            12,
            &FetchRequest {
                max_wait_ms: 0,
                min_bytes: 0,
                max_bytes: 1 << 20,
                topics: vec![FetchTopic {
                    topic: topic.into(),
                    partitions: vec![FetchPartition {
                        partition,
                        fetch_offset: offset,
                        partition_max_bytes: 1 << 20,
                        current_leader_epoch: -1,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            },
        );
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch {topic}-{partition} at {offset}");
        let before = out.len();
        out.extend(split_batches(p.records.clone().unwrap_or_default()).map(|b| b.unwrap()));
        if out.len() == before || out.last().unwrap().header().next_offset().0 >= p.high_watermark {
            return (out, p.log_start_offset, p.high_watermark);
        }
    }
}

/// `(topic, partition) -> (committed offset, metadata)` of [`GROUP`].
fn committed(c: &mut Client) -> BTreeMap<(String, i32), (i64, Option<String>)> {
    let r: OffsetFetchResponse = c.call(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest {
            group_id: GROUP.into(),
            topics: Some(
                fixture_topics()
                    .iter()
                    .map(|(t, n, _)| OffsetFetchRequestTopic {
                        name: (*t).into(),
                        partition_indexes: (0..*n).collect(),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, 0);
    let mut out = BTreeMap::new();
    for t in &r.topics {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0);
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.clone(), p.partition_index),
                    (p.committed_offset, p.metadata.clone()),
                );
            }
        }
    }
    out
}

/// The topic ids the fixture's topics had when it was written, from `{fixture}.topic-ids`.
fn recorded_topic_ids(fixture: &Path) -> BTreeMap<String, String> {
    let path = PathBuf::from(format!("{}.topic-ids", fixture.display()));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, id)| (n.to_string(), id.to_string()))
        .collect()
}

/// Checks everything the fixture holds, as served by the broker `b`.
fn check_fixture_content(b: &Broker, fixture: &Path) {
    let mut c = Client::new(b);
    let topics = user_topics(&mut c);
    let ids = recorded_topic_ids(fixture);
    let want: BTreeMap<String, (String, usize)> = fixture_topics()
        .iter()
        .map(|(t, n, _)| (t.to_string(), (ids[*t].clone(), *n as usize)))
        .collect();
    assert_eq!(topics, want, "topics, their ids and partition counts");
    for (t, _, overrides) in fixture_topics() {
        assert_eq!(topic_overrides(&mut c, t), overrides, "overrides of {t}");
    }
    for ((t, p), (recs, bases)) in expected() {
        let (batches, start, hw) = fetch_all(&mut c, &t, p);
        assert_eq!((start, hw), (0, recs.len() as i64), "{t}-{p} offsets");
        let got_bases: Vec<i64> = batches.iter().map(|b| b.header().base_offset).collect();
        assert_eq!(got_bases, bases, "{t}-{p} batch boundaries");
        let mut got: Vec<Rec> = Vec::new();
        for b in &batches {
            let h = b.header();
            for r in b.records().unwrap() {
                let r = r.unwrap();
                got.push((
                    r.offset(h).0,
                    r.timestamp(h),
                    r.key.clone(),
                    r.value.clone(),
                    r.headers.clone(),
                ));
            }
        }
        assert_eq!(got, recs, "{t}-{p} records");
    }
    // A commit without metadata reads back as "" (Kafka's `OffsetAndMetadata.NoMetadata`).
    let want: BTreeMap<(String, i32), (i64, Option<String>)> = fixture_commits()
        .iter()
        .map(|(t, p, o, m)| ((t.to_string(), *p), (*o, Some(m.unwrap_or("").to_string()))))
        .collect();
    assert_eq!(committed(&mut c), want, "committed offsets of {GROUP}");
}

/// Starts a broker on a copy of `fixture` with the settings the module docs explain.
fn start_on(fixture: &Path) -> Broker {
    Broker::builder()
        .data_from(fixture)
        .set("log.retention.ms", "-1")
        .set("offsets.retention.minutes", "52560000")
        .start()
}

#[test]
fn datadir_v0_1_opens_with_every_record_config_and_offset() {
    let mut b = start_on(&fixture_v0_1());
    check_fixture_content(&b, &fixture_v0_1());
    // Offsets continue where the fixture ended.
    let mut c = Client::new(&b);
    let next = expected()[&("events".to_string(), 0)].0.len() as i64;
    let r = c.produce(
        "events",
        0,
        RecordBatchBuilder::new()
            .key_value(BASE_TS, Some(b"after"), Some(b"upgrade"))
            .build()
            .unwrap()
            .into_bytes(),
    );
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, next));
    drop(c);
    // And everything is still there after a clean restart on the upgraded directory.
    assert!(b.sigterm().success());
    b.restart();
    let mut c = Client::new(&b);
    let (_, _, hw) = fetch_all(&mut c, "events", 0);
    assert_eq!(hw, next + 1);
}

fn join_group(c: &mut Client) -> (String, i32) {
    let join = |c: &mut Client, member: &str| -> JoinGroupResponse {
        c.call(
            ApiKey::JoinGroup,
            7,
            &JoinGroupRequest {
                group_id: GROUP.into(),
                session_timeout_ms: 30_000,
                rebalance_timeout_ms: 30_000,
                member_id: member.into(),
                protocol_type: "consumer".into(),
                protocols: vec![JoinGroupRequestProtocol {
                    name: "range".into(),
                    metadata: Bytes::from_static(b"fixture-subscription"),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
    };
    let first = join(c, "");
    assert_eq!(first.error_code, ErrorCode::MemberIdRequired as i16);
    let r = join(c, &first.member_id);
    assert_eq!(r.error_code, 0, "join: {r:?}");
    assert_eq!(r.leader, r.member_id);
    let s: SyncGroupResponse = c.call(
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest {
            group_id: GROUP.into(),
            generation_id: r.generation_id,
            member_id: r.member_id.clone(),
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            assignments: vec![SyncGroupRequestAssignment {
                member_id: r.member_id.clone(),
                assignment: Bytes::from_static(b"fixture-assignment"),
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(s.error_code, 0, "sync: {s:?}");
    (r.member_id, r.generation_id)
}

/// Writes a fixture data directory with the binary under test: run by
/// `scripts/make-datadir-fixture OUT`, which sets `POTOK_FIXTURE_OUT=OUT`. It creates the
/// topics, produces [`fixture_batches`], commits [`fixture_commits`] as a real group member,
/// shuts the broker down cleanly (SIGTERM) and copies its data directory to `OUT`, and the
/// topic ids to `OUT.topic-ids`.
#[test]
#[ignore = "writes a fixture; run by scripts/make-datadir-fixture"]
fn make_datadir_fixture() {
    let out = PathBuf::from(
        std::env::var("POTOK_FIXTURE_OUT").expect("POTOK_FIXTURE_OUT: where to write the fixture"),
    );
    assert!(
        !out.exists(),
        "{} exists; remove it first to re-make the fixture",
        out.display()
    );
    let mut b = Broker::builder()
        .set("group.initial.rebalance.delay.ms", "0")
        .start();
    let mut c = Client::new(&b);
    for (t, n, overrides) in fixture_topics() {
        let configs: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        c.create_topic(t, n, &configs);
    }
    let pid: InitProducerIdResponse = c.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest {
            transactional_id: None,
            transaction_timeout_ms: 60_000,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        },
    );
    assert_eq!(pid.error_code, 0);
    let mut next_offsets: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for fb in fixture_batches() {
        let producer = fb
            .idempotent
            .then_some((pid.producer_id, pid.producer_epoch, 0));
        let r = c.produce(fb.topic, fb.partition, batch_bytes(&fb, producer));
        let p = &r.responses[0].partition_responses[0];
        let next = next_offsets
            .entry((fb.topic.to_string(), fb.partition))
            .or_default();
        assert_eq!((p.error_code, p.base_offset), (0, *next), "{:?}", p);
        *next += fb.records.len() as i64;
    }
    let (member, generation) = join_group(&mut c);
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, offset, meta) in fixture_commits() {
        if topics.last().map(|x| x.name.as_str()) != Some(t) {
            topics.push(OffsetCommitRequestTopic {
                name: t.into(),
                ..Default::default()
            });
        }
        let topic = topics.last_mut().expect("just pushed");
        topic.partitions.push(OffsetCommitRequestPartition {
            partition_index: p,
            committed_offset: offset,
            committed_leader_epoch: 0,
            committed_metadata: meta.map(str::to_string),
            ..Default::default()
        });
    }
    let r: OffsetCommitResponse = c.call(
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest {
            group_id: GROUP.into(),
            generation_id_or_member_epoch: generation,
            member_id: member.clone(),
            retention_time_ms: -1,
            topics,
            ..Default::default()
        },
    );
    for t in &r.topics {
        for p in &t.partitions {
            assert_eq!(p.error_code, 0, "commit {}-{}", t.name, p.partition_index);
        }
    }
    let r: LeaveGroupResponse = c.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest {
            group_id: GROUP.into(),
            members: vec![MemberIdentity {
                member_id: member,
                ..Default::default()
            }],
            ..Default::default()
        },
    );
    assert_eq!(r.error_code, 0);
    let ids: String = user_topics(&mut c)
        .iter()
        .map(|(n, (id, _))| format!("{n} {id}\n"))
        .collect();
    drop(c);
    assert!(b.sigterm().success(), "clean shutdown");
    common::copy_dir_all(&b.data_dir(), &out);
    std::fs::write(format!("{}.topic-ids", out.display()), ids).expect("write topic ids");
}

/// The migration of a format-0 directory happens once: the second start opens the migrated
/// log as it is, and Potok 0.1's log is kept beside it.
#[test]
fn datadir_v0_1_is_migrated_once() {
    let mut b = start_on(&fixture_v0_1());
    let meta = b.data_dir().join("__potok_metadata");
    let format = std::fs::read_to_string(meta.join("format.properties")).unwrap();
    assert!(
        format.lines().any(|l| l == "potok.data.format.version=1"),
        "{format}"
    );
    // Potok 0.1 would find a directory where its log was, and stop.
    assert!(meta.join("metadata.log").is_dir());
    assert_eq!(
        std::fs::read(meta.join("metadata.log.v0")).unwrap(),
        std::fs::read(fixture_v0_1().join("__potok_metadata/metadata.log")).unwrap()
    );
    let migrated = std::fs::read(meta.join("cluster-metadata.log")).unwrap();
    assert!(!migrated.is_empty());
    const MIGRATED: &str = "migrated the metadata log from data format 0";
    assert_eq!(b.log().matches(MIGRATED).count(), 1, "{}", b.log());
    assert!(b.sigterm().success());
    b.restart();
    check_fixture_content(&b, &fixture_v0_1());
    assert_eq!(b.log().matches(MIGRATED).count(), 1, "{}", b.log());
    assert_eq!(
        std::fs::read(meta.join("cluster-metadata.log")).unwrap(),
        migrated
    );
}

/// A data directory in a format newer than this Potok knows is refused at start, with an
/// error naming the format version, and left as it was.
#[test]
fn a_future_data_format_is_refused_naming_its_version() {
    let mut b = start_on(&fixture_v0_1());
    assert!(b.sigterm().success());
    let data = b.data_dir();
    let format = data.join("__potok_metadata/format.properties");
    std::fs::write(&format, "potok.data.format.version=99\n").unwrap();
    let log = std::fs::read(data.join("__potok_metadata/cluster-metadata.log")).unwrap();
    let stderr_path = b.scratch_dir().join("refused.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_potok"))
        .arg("serve")
        .arg("--set")
        .arg(format!(
            "listeners=PLAINTEXT://127.0.0.1:{}",
            common::free_port()
        ))
        .arg("--set")
        .arg(format!("log.dirs={}", data.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + common::START_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("potok started on a data directory of format 99");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("format version 99"), "{stderr}");
    assert!(stderr.contains(&format.display().to_string()), "{stderr}");
    assert_eq!(
        std::fs::read(data.join("__potok_metadata/cluster-metadata.log")).unwrap(),
        log
    );
}
