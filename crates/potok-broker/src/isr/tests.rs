//! The AlterPartition request built from pending ISR changes and how answers settle them.

use std::collections::BTreeMap;

use potok_metadata::PartitionState;
use potok_protocol::messages::alter_partition_response::{
    PartitionData as PartitionReply, TopicData as TopicReply,
};
use potok_records::Offset;

use super::*;
use crate::config::BrokerConfig;
use crate::topics::{NewTopic, TopicManager};

const T: Uuid = Uuid([7; 16]);

/// Broker 1 leads a partition with replicas 1, 2, 3, all in the ISR at partition epoch 4;
/// broker 2 fetches up to the end, broker 3 never does.
fn leader(dir: &std::path::Path) -> (TopicManager, Arc<Partition>) {
    let cfg = BrokerConfig::from_properties(vec![("log.dirs".into(), dir.display().to_string())])
        .unwrap();
    let m = TopicManager::open(&cfg).unwrap();
    let t = m
        .create_topic(NewTopic {
            name: "isr".into(),
            partitions: 1,
            configs: BTreeMap::new(),
        })
        .unwrap();
    let p = t.partition(0).unwrap();
    let state = PartitionState {
        replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        isr: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        leader: Some(BrokerId(1)),
        leader_epoch: LeaderEpoch(2),
        partition_epoch: 4,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    p.become_leader(BrokerId(1), &state, 0).unwrap();
    (m, p)
}

fn answer(
    code: ErrorCode,
    isr: &[i32],
    leader_epoch: i32,
    partition_epoch: i32,
) -> AlterPartitionResponse {
    AlterPartitionResponse {
        topics: vec![TopicReply {
            topic_id: T,
            partitions: vec![PartitionReply {
                partition_index: 0,
                error_code: code as i16,
                leader_id: 1,
                leader_epoch,
                isr: isr.to_vec(),
                partition_epoch,
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn a_lagging_follower_is_proposed_out_and_the_committed_answer_settles_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = leader(dir.path());
    // The leader took over at time 0; broker 2 fetched the whole log just now, broker 3 never.
    let now = now_ms();
    p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(0), now))
        .unwrap()
        .unwrap();
    // Without the lag check (a candidate from a fetch) nothing is proposed: all are members.
    let mut inflight = BTreeMap::new();
    propose((T, 0), &p, None, &Eligible::default(), &mut inflight);
    assert!(inflight.is_empty());
    // The periodic check drops broker 3, which has not caught up within the bound.
    propose(
        (T, 0),
        &p,
        Some(60_000),
        &Eligible::default(),
        &mut inflight,
    );
    let req = request(&inflight);
    assert_eq!(req.topics.len(), 1);
    let pd = &req.topics[0].partitions[0];
    assert_eq!((pd.leader_epoch, pd.partition_epoch), (2, 4));
    let members: Vec<(i32, i64)> = pd
        .new_isr_with_epochs
        .iter()
        .map(|m| (m.broker_id, m.broker_epoch))
        .collect();
    // The leader's own epoch is left for the driver; broker 2 sent none in its fetches.
    assert_eq!(members, vec![(1, -1), (2, -1)]);
    assert_eq!(
        p.with_leader(|r| r.clone()).unwrap().pending_isr(),
        Some(&[BrokerId(1), BrokerId(2)][..])
    );
    // A second proposal waits for the first.
    propose((T, 0), &p, Some(1_000), &Eligible::default(), &mut inflight);
    assert_eq!(inflight.len(), 1);
    // NOT_CONTROLLER at the top: everything is sent again.
    let top = AlterPartitionResponse {
        error_code: ErrorCode::NotController as i16,
        ..Default::default()
    };
    assert!(settle(&top, &mut inflight));
    assert_eq!(inflight.len(), 1);
    // Committed.
    assert!(!settle(
        &answer(ErrorCode::None, &[1, 2], 2, 5),
        &mut inflight
    ));
    assert!(inflight.is_empty());
    let s = p.with_leader(|r| r.clone()).unwrap();
    assert_eq!(s.isr(), &[BrokerId(1), BrokerId(2)][..]);
    assert_eq!((s.pending_isr(), s.partition_epoch()), (None, 5));
}

#[test]
fn refusals_clear_or_keep_the_pending_change_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = leader(dir.path());
    let now = now_ms();
    p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(0), now))
        .unwrap()
        .unwrap();
    let mut inflight = BTreeMap::new();
    propose((T, 0), &p, Some(1_000), &Eligible::default(), &mut inflight);
    assert_eq!(inflight.len(), 1);
    // INELIGIBLE_REPLICA: nothing was applied, the pending change is dropped.
    assert!(!settle(
        &answer(ErrorCode::IneligibleReplica, &[], 0, 0),
        &mut inflight
    ));
    assert_eq!(p.with_leader(|r| r.clone()).unwrap().pending_isr(), None);
    // INVALID_UPDATE_VERSION: the change may have been applied; it stays pending until the
    // metadata says, and is not resent.
    propose((T, 0), &p, Some(1_000), &Eligible::default(), &mut inflight);
    assert!(!settle(
        &answer(ErrorCode::InvalidUpdateVersion, &[], 0, 0),
        &mut inflight
    ));
    assert!(inflight.is_empty());
    assert!(p
        .with_leader(|r| r.clone())
        .unwrap()
        .pending_isr()
        .is_some());
    p.with_leader(|r| r.on_isr_committed(vec![BrokerId(1), BrokerId(2)], 5))
        .unwrap()
        .unwrap();
    assert_eq!(p.with_leader(|r| r.clone()).unwrap().pending_isr(), None);
}

#[test]
fn answers_for_an_earlier_leader_epoch_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = leader(dir.path());
    let now = now_ms();
    p.with_leader(|r| r.on_follower_fetch(BrokerId(2), Offset(0), now))
        .unwrap()
        .unwrap();
    let mut inflight = BTreeMap::new();
    propose((T, 0), &p, Some(1_000), &Eligible::default(), &mut inflight);
    let state = PartitionState {
        replicas: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        isr: vec![BrokerId(1), BrokerId(2), BrokerId(3)],
        leader: Some(BrokerId(1)),
        leader_epoch: LeaderEpoch(3),
        partition_epoch: 6,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
    };
    p.become_leader(BrokerId(1), &state, now).unwrap();
    assert!(!settle(
        &answer(ErrorCode::None, &[1, 2], 2, 5),
        &mut inflight
    ));
    let s = p.with_leader(|r| r.clone()).unwrap();
    assert_eq!((s.isr().len(), s.partition_epoch()), (3, 6));
}

#[test]
fn a_caught_up_follower_outside_the_isr_is_proposed_in() {
    let dir = tempfile::tempdir().unwrap();
    let (_m, p) = leader(dir.path());
    let now = now_ms();
    // The ISR is 1 and 2; broker 3 is out.
    p.with_leader(|r| r.on_isr_committed(vec![BrokerId(1), BrokerId(2)], 5))
        .unwrap()
        .unwrap();
    let mut inflight = BTreeMap::new();
    let all = Eligible((1..=3).map(|b| (BrokerId(b), 7)).collect());
    propose((T, 0), &p, None, &all, &mut inflight);
    assert!(inflight.is_empty());
    // Broker 3 fetched up to the high watermark and the epoch's start (both 0 here).
    p.with_leader(|r| r.on_follower_fetch(BrokerId(3), Offset(0), now))
        .unwrap()
        .unwrap();
    // Fenced (absent from the eligible brokers): not proposed; the controller would refuse it.
    propose((T, 0), &p, None, &Eligible::default(), &mut inflight);
    assert!(inflight.is_empty());
    propose((T, 0), &p, None, &all, &mut inflight);
    let req = request(&inflight);
    let isr: Vec<i32> = req.topics[0].partitions[0]
        .new_isr_with_epochs
        .iter()
        .map(|m| m.broker_id)
        .collect();
    assert_eq!(isr, vec![1, 2, 3]);
    assert_eq!(req.topics[0].partitions[0].partition_epoch, 5);
    // While it is pending the maximal ISR includes broker 3 (KIP-497).
    assert_eq!(p.with_leader(|r| r.clone()).unwrap().maximal_isr().len(), 3);
}
