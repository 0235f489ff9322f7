//! Replay, record serialisation and refusal of contradictory or malformed records.

use bytes::Bytes;
use potok_protocol::messages::internal::{
    config_record::ConfigRecord,
    feature_level_record::FeatureLevelRecord,
    fence_broker_record::FenceBrokerRecord,
    partition_change_record::PartitionChangeRecord,
    partition_record::PartitionRecord,
    producer_ids_record::ProducerIdsRecord,
    register_broker_record::{BrokerEndpoint, RegisterBrokerRecord},
    remove_topic_record::RemoveTopicRecord,
    topic_record::TopicRecord,
};
use potok_protocol::Uuid;
use potok_records::LeaderEpoch;
use proptest::prelude::*;

use crate::image::{NO_LEADER_CHANGE, TOPIC_RESOURCE};
use crate::*;

fn id(n: u8) -> Uuid {
    Uuid([n; 16])
}

fn topic(n: u8, name: &str) -> MetadataRecord {
    MetadataRecord::Topic(TopicRecord {
        name: name.into(),
        topic_id: id(n),
        ..Default::default()
    })
}

fn partition(n: u8, p: i32, replicas: &[i32]) -> MetadataRecord {
    MetadataRecord::Partition(PartitionRecord {
        partition_id: p,
        topic_id: id(n),
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        partition_epoch: 0,
        ..Default::default()
    })
}

fn config(resource: &str, name: &str, value: Option<&str>) -> MetadataRecord {
    MetadataRecord::Config(ConfigRecord {
        resource_type: TOPIC_RESOURCE,
        resource_name: resource.into(),
        name: name.into(),
        value: value.map(Into::into),
        ..Default::default()
    })
}

fn change(n: u8, p: i32, leader: i32, isr: Option<&[i32]>) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: p,
        topic_id: id(n),
        leader,
        isr: isr.map(<[i32]>::to_vec),
        ..Default::default()
    })
}

fn broker(b: i32, epoch: i64) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBrokerRecord {
        broker_id: b,
        broker_epoch: epoch,
        incarnation_id: id(100 + b as u8),
        end_points: vec![BrokerEndpoint {
            name: "PLAINTEXT".into(),
            host: "127.0.0.1".into(),
            port: 9092,
            security_protocol: 0,
            ..Default::default()
        }],
        rack: Some(format!("r{b}")),
        fenced: true,
        ..Default::default()
    })
}

/// A small but complete log: brokers, two topics, configs, leader and ISR changes, a deletion.
fn sample_log() -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::FeatureLevel(FeatureLevelRecord {
            name: "metadata.version".into(),
            feature_level: 25,
            ..Default::default()
        }),
        broker(1, 10),
        broker(2, 11),
        MetadataRecord::UnfenceBroker(
            potok_protocol::messages::internal::unfence_broker_record::UnfenceBrokerRecord {
                id: 1,
                epoch: 10,
                ..Default::default()
            },
        ),
        topic(1, "orders"),
        partition(1, 0, &[1, 2]),
        partition(1, 1, &[2, 1]),
        config("orders", "retention.ms", Some("1000")),
        config("orders", "cleanup.policy", Some("compact")),
        config("orders", "retention.ms", None),
        topic(2, "gone"),
        partition(2, 0, &[1]),
        config("gone", "segment.ms", Some("5")),
        MetadataRecord::RemoveTopic(RemoveTopicRecord {
            topic_id: id(2),
            ..Default::default()
        }),
        change(1, 0, NO_LEADER_CHANGE, Some(&[1])),
        change(1, 1, 1, None),
        MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: 1,
            broker_epoch: 10,
            next_producer_id: 1000,
            ..Default::default()
        }),
    ]
}

#[test]
fn replay_builds_the_image() {
    let log = sample_log();
    let img = MetadataImage::replay(&log).unwrap();
    assert_eq!(img.records_applied(), log.len() as u64);
    let t = img.topic_by_name("orders").unwrap();
    assert_eq!(t.id, id(1));
    assert_eq!(img.topic(id(1)).unwrap().name, "orders");
    assert_eq!(t.partitions.len(), 2);
    // ISR shrink without a leader change: same leader and leader epoch, new partition epoch.
    let p0 = &t.partitions[&0];
    assert_eq!(p0.leader, Some(BrokerId(1)));
    assert_eq!(p0.isr, vec![BrokerId(1)]);
    assert_eq!(p0.replicas, vec![BrokerId(1), BrokerId(2)]);
    assert_eq!(p0.leader_epoch, LeaderEpoch(0));
    assert_eq!(p0.partition_epoch, 1);
    // Leader change: epoch bumped, ISR kept.
    let p1 = &t.partitions[&1];
    assert_eq!(p1.leader, Some(BrokerId(1)));
    assert_eq!(p1.leader_epoch, LeaderEpoch(1));
    assert_eq!(p1.isr, vec![BrokerId(2), BrokerId(1)]);
    assert_eq!(
        img.topic_configs("orders").into_iter().collect::<Vec<_>>(),
        vec![("cleanup.policy".to_string(), "compact".to_string())]
    );
    // The deleted topic, its name and its configs are gone.
    assert!(img.topic(id(2)).is_none());
    assert!(img.topic_by_name("gone").is_none());
    assert!(img.topic_configs("gone").is_empty());
    assert_eq!(img.partition_count(), 2);
    assert_eq!(img.brokers().len(), 2);
    assert!(!img.brokers()[&BrokerId(1)].fenced);
    assert!(img.brokers()[&BrokerId(2)].fenced);
    assert_eq!(img.brokers()[&BrokerId(2)].rack.as_deref(), Some("r2"));
    assert_eq!(img.feature_level("metadata.version"), Some(25));
    assert_eq!(img.next_producer_id(), 1000);
}

#[test]
fn a_deleted_topic_name_can_be_reused() {
    let mut log = sample_log();
    log.push(topic(3, "gone"));
    log.push(partition(3, 0, &[2]));
    let img = MetadataImage::replay(&log).unwrap();
    assert_eq!(img.topic_by_name("gone").unwrap().id, id(3));
}

#[test]
fn removing_the_leader_leaves_no_leader_and_bumps_the_epoch() {
    let mut log = sample_log();
    log.push(change(1, 0, -1, None));
    let img = MetadataImage::replay(&log).unwrap();
    let p = &img.topic(id(1)).unwrap().partitions[&0];
    assert_eq!(p.leader, None);
    assert_eq!(p.leader_epoch, LeaderEpoch(1));
}

#[test]
fn a_reassignment_keeps_adding_and_removing_replicas_until_a_change_clears_them() {
    let mut log = sample_log();
    log.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id: id(1),
        leader: NO_LEADER_CHANGE,
        replicas: Some(vec![2, 3, 1]),
        adding_replicas: Some(vec![3]),
        removing_replicas: Some(vec![1]),
        ..Default::default()
    }));
    let img = MetadataImage::replay(&log).unwrap();
    let p = &img.topic(id(1)).unwrap().partitions[&0];
    assert!(p.is_reassigning());
    assert_eq!(p.adding_replicas, vec![BrokerId(3)]);
    assert_eq!(p.removing_replicas, vec![BrokerId(1)]);
    assert_eq!(
        p.leader_epoch,
        LeaderEpoch(0),
        "adding replicas keeps the leader epoch"
    );
    // An ISR change leaves them (null fields keep their value); the completion clears them.
    log.push(change(1, 0, NO_LEADER_CHANGE, Some(&[1, 2, 3])));
    let img = MetadataImage::replay(&log).unwrap();
    assert!(img.topic(id(1)).unwrap().partitions[&0].is_reassigning());
    log.push(MetadataRecord::PartitionChange(PartitionChangeRecord {
        partition_id: 0,
        topic_id: id(1),
        leader: 2,
        isr: Some(vec![2, 3]),
        replicas: Some(vec![2, 3]),
        adding_replicas: Some(vec![]),
        removing_replicas: Some(vec![]),
        ..Default::default()
    }));
    let img = MetadataImage::replay(&log).unwrap();
    let p = &img.topic(id(1)).unwrap().partitions[&0];
    assert!(!p.is_reassigning());
    assert_eq!(p.replicas, vec![BrokerId(2), BrokerId(3)]);
    // A PartitionRecord carries them too (a snapshot of a partition being moved).
    let mut log = sample_log();
    log.push(MetadataRecord::Partition(PartitionRecord {
        partition_id: 0,
        topic_id: id(1),
        replicas: vec![2, 1],
        isr: vec![1],
        adding_replicas: vec![2],
        removing_replicas: vec![1],
        leader: 1,
        ..Default::default()
    }));
    let img = MetadataImage::replay(&log).unwrap();
    assert!(img.topic(id(1)).unwrap().partitions[&0].is_reassigning());
}

#[test]
fn contradictory_records_are_errors_and_change_nothing() {
    let img = MetadataImage::replay(&sample_log()).unwrap();
    let bad = [
        (topic(1, "other"), "existing id"),
        (topic(9, "orders"), "existing name"),
        (partition(7, 0, &[1]), "unknown topic"),
        (change(1, 5, 1, None), "unknown partition"),
        (change(8, 0, 1, None), "unknown topic of a change"),
        (
            MetadataRecord::RemoveTopic(RemoveTopicRecord {
                topic_id: id(2),
                ..Default::default()
            }),
            "removing a removed topic",
        ),
        (
            MetadataRecord::FenceBroker(FenceBrokerRecord {
                id: 1,
                epoch: 99,
                ..Default::default()
            }),
            "wrong broker epoch",
        ),
        (
            MetadataRecord::ProducerIds(ProducerIdsRecord {
                next_producer_id: 10,
                ..Default::default()
            }),
            "producer ids moving back",
        ),
        (
            MetadataRecord::Partition(PartitionRecord {
                partition_id: 2,
                topic_id: id(1),
                ..Default::default()
            }),
            "no replicas",
        ),
    ];
    for (r, what) in bad {
        let mut copy = img.clone();
        assert!(copy.apply(&r).is_err(), "{what} was accepted");
        assert_eq!(copy, img, "{what} changed the image");
    }
}

#[test]
fn records_round_trip_through_kafkas_serialisation() {
    for r in sample_log() {
        let bytes = encode_record(&r).unwrap();
        assert_eq!(bytes[0], 1, "frame version");
        assert_eq!(u16::from(bytes[1]), r.api_key());
        assert_eq!(decode_record(bytes).unwrap(), r);
    }
    let other = MetadataRecord::Other {
        api_key: 18,
        version: 0,
        body: Bytes::from_static(b"\x01\x02"),
    };
    assert_eq!(
        decode_record(encode_record(&other).unwrap()).unwrap(),
        other
    );
}

#[test]
fn malformed_records_are_refused() {
    let good = encode_record(&topic(1, "t")).unwrap();
    let mut trailing = good.to_vec();
    trailing.push(0);
    let mut bad_frame = good.to_vec();
    bad_frame[0] = 2;
    let mut unknown = good.to_vec();
    unknown[1] = 99;
    for (b, what) in [
        (Bytes::from(trailing), "trailing byte"),
        (Bytes::from(bad_frame), "frame version"),
        (Bytes::from(unknown), "unknown key"),
        (good.slice(..good.len() - 1), "truncated"),
        (Bytes::new(), "empty"),
    ] {
        assert!(decode_record(b).is_err(), "{what} was accepted");
    }
}

proptest! {
    /// No input makes decoding panic.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_record(Bytes::from(b));
    }

    /// Replay is deterministic, and any prefix of a valid log is itself a valid log.
    #[test]
    fn every_prefix_replays(n in 0usize..17) {
        let log = sample_log();
        let a = MetadataImage::replay(&log[..n]).unwrap();
        let b = MetadataImage::replay(&log[..n]).unwrap();
        prop_assert_eq!(a, b);
    }
}
