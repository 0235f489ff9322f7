//! The active controller's decisions over the metadata image, as Kafka's metadata records: where
//! new replicas go, and what fencing a broker does to the partitions it leads or follows.
//!
//! Pure functions: the image in, records out. The controller proposes the records through the
//! quorum; every node applies them in log order to its own image, so all agree.

use std::collections::BTreeMap;

use potok_metadata::{BrokerId, MetadataImage, MetadataRecord};
use potok_protocol::messages::internal::partition_record::PartitionRecord;
use potok_protocol::Uuid;

use crate::ControllerError;

/// `PartitionChangeRecord.leader` for "no leader" (Kafka's `LeaderConstants.NO_LEADER`).
pub const NO_LEADER: i32 = -1;
/// `PartitionChangeRecord.leader` for "unchanged" (Kafka's `NO_LEADER_CHANGE`).
pub const NO_LEADER_CHANGE: i32 = -2;

/// A broker that can take replicas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveBroker {
    pub id: BrokerId,
    pub rack: Option<String>,
}

/// The brokers that may take new replicas: registered, not fenced, not shutting down, in id
/// order.
pub fn live_brokers(image: &MetadataImage) -> Vec<LiveBroker> {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced && !b.in_controlled_shutdown)
        .map(|b| LiveBroker {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect()
}

/// How many partitions each broker leads now (its preferred, first replica), so that new
/// leaders go where there are fewest.
pub fn leader_counts(image: &MetadataImage) -> BTreeMap<BrokerId, usize> {
    let mut counts = BTreeMap::new();
    for t in image.topics() {
        for p in t.partitions.values() {
            if let Some(first) = p.replicas.first() {
                *counts.entry(*first).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// Brokers ordered so that consecutive ones are on different racks where possible (rack A's
/// first, rack B's first, ..., rack A's second, ...), as Kafka's rack-aware placement
/// alternates racks. Brokers without a rack form one rack of their own.
fn rack_alternating(brokers: &[LiveBroker]) -> Vec<LiveBroker> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<&LiveBroker>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.as_deref()).or_default().push(b);
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for list in by_rack.values() {
            if let Some(b) = list.get(round) {
                out.push((*b).clone());
            }
        }
        round += 1;
    }
    out
}

/// Replica lists (preferred leader first) for `partitions` new partitions with
/// `replication_factor` replicas each, on distinct live brokers. Leaders go to the brokers that
/// lead fewest partitions (counting `existing` and the ones placed here); followers follow the
/// leader in rack-alternating order, so each partition spans as many racks as it can.
pub fn place_replicas(
    live: &[LiveBroker],
    partitions: i32,
    replication_factor: i32,
    existing: &BTreeMap<BrokerId, usize>,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    if partitions < 1 {
        return Err(ControllerError::InvalidArgument {
            what: "partition count",
            value: partitions.into(),
        });
    }
    if replication_factor < 1 {
        return Err(ControllerError::InvalidArgument {
            what: "replication factor",
            value: replication_factor.into(),
        });
    }
    if replication_factor as usize > live.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            requested: replication_factor,
            available: live.len(),
        });
    }
    let ring = rack_alternating(live);
    let mut leads: Vec<usize> = ring
        .iter()
        .map(|b| existing.get(&b.id).copied().unwrap_or(0))
        .collect();
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        // The least-loaded leader; ties go round the ring from the partition's own position so
        // that equal brokers take turns.
        let n = ring.len();
        let leader = (0..n)
            .map(|k| (p + k) % n)
            .min_by_key(|&i| leads[i])
            .unwrap_or(0);
        leads[leader] += 1;
        let mut replicas = vec![ring[leader].id];
        let mut racks: Vec<Option<&str>> = vec![ring[leader].rack.as_deref()];
        // Followers: first pass takes brokers on racks not used yet, second pass fills up.
        for prefer_new_rack in [true, false] {
            for k in 1..n {
                if replicas.len() == replication_factor as usize {
                    break;
                }
                let b = &ring[(leader + k) % n];
                if replicas.contains(&b.id) {
                    continue;
                }
                if prefer_new_rack && racks.contains(&b.rack.as_deref()) {
                    continue;
                }
                replicas.push(b.id);
                racks.push(b.rack.as_deref());
            }
        }
        out.push(replicas);
    }
    Ok(out)
}

/// The PartitionRecords of a new topic with the given replica lists: every replica in the ISR,
/// the first one leading, epochs 0 (what Kafka's controller writes for a new partition).
pub fn partition_records(topic_id: Uuid, replicas: &[Vec<BrokerId>]) -> Vec<MetadataRecord> {
    replicas
        .iter()
        .enumerate()
        .map(|(p, r)| {
            let ids: Vec<i32> = r.iter().map(|b| b.0).collect();
            MetadataRecord::Partition(PartitionRecord {
                partition_id: p as i32,
                topic_id,
                replicas: ids.clone(),
                isr: ids.clone(),
                leader: ids.first().copied().unwrap_or(NO_LEADER),
                leader_epoch: 0,
                partition_epoch: 0,
                ..Default::default()
            })
        })
        .collect()
}

/// The PartitionChangeRecords that fencing `broker` requires: it leaves every ISR it is in; a
/// partition it led gets the first other replica (in preferred order) that is in the ISR and not
/// fenced, or no leader when there is none — never a replica outside the ISR
/// (`unclean.leader.election.enable=false`). As KIP-841 has it, the last member of an ISR stays
/// in it (with leader -1), so the ISR never becomes empty and the replica that has every
/// committed record stays known.
pub fn fence_broker(image: &MetadataImage, broker: BrokerId) -> Vec<MetadataRecord> {
    crate::controller::partitions::leader_and_isr_updates(
        image,
        Some(broker),
        None,
        crate::controller::partitions::Affected::WithBroker(broker),
        &|_| false,
        false,
    )
}

#[cfg(test)]
mod tests {
    use potok_protocol::messages::internal::fence_broker_record::FenceBrokerRecord;
    use potok_protocol::messages::internal::register_broker_record::RegisterBrokerRecord;
    use potok_protocol::messages::internal::topic_record::TopicRecord;
    use potok_protocol::messages::internal::unfence_broker_record::UnfenceBrokerRecord;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn live(ids: &[(i32, Option<&str>)]) -> Vec<LiveBroker> {
        ids.iter()
            .map(|(id, rack)| LiveBroker {
                id: BrokerId(*id),
                rack: rack.map(String::from),
            })
            .collect()
    }

    #[test]
    fn replicas_are_distinct_and_leaders_balanced() {
        let brokers = live(&[(1, None), (2, None), (3, None), (4, None)]);
        let placed = place_replicas(&brokers, 12, 3, &BTreeMap::new()).unwrap();
        let mut leads: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for r in &placed {
            assert_eq!(r.len(), 3);
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3, "{r:?}");
            *leads.entry(r[0]).or_default() += 1;
        }
        assert_eq!(
            leads.values().copied().collect::<Vec<_>>(),
            vec![3, 3, 3, 3]
        );
    }

    #[test]
    fn existing_leadership_is_evened_out() {
        let brokers = live(&[(1, None), (2, None), (3, None)]);
        let existing = BTreeMap::from([(BrokerId(1), 4), (BrokerId(2), 1)]);
        let placed = place_replicas(&brokers, 6, 1, &existing).unwrap();
        let mut leads = existing.clone();
        for r in &placed {
            *leads.entry(r[0]).or_default() += 1;
        }
        // 5 + 6 = 11 leaderships over 3 brokers: nobody above 4, broker 1 got none.
        assert_eq!(leads[&BrokerId(1)], 4);
        assert!(leads.values().all(|&n| (3..=4).contains(&n)), "{leads:?}");
    }

    #[test]
    fn replicas_spread_over_racks() {
        let brokers = live(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack = |b: BrokerId| brokers.iter().find(|x| x.id == b).unwrap().rack.clone();
        for rf in 1..=6 {
            let placed = place_replicas(&brokers, 30, rf, &BTreeMap::new()).unwrap();
            for r in placed {
                let mut racks: Vec<_> = r.iter().map(|b| rack(*b)).collect();
                racks.sort();
                racks.dedup();
                assert_eq!(racks.len(), (rf as usize).min(3), "rf {rf}: {r:?}");
            }
        }
    }

    #[test]
    fn too_few_brokers_is_invalid_replication_factor() {
        let brokers = live(&[(1, None), (2, None)]);
        assert!(matches!(
            place_replicas(&brokers, 1, 3, &BTreeMap::new()),
            Err(ControllerError::InvalidReplicationFactor {
                requested: 3,
                available: 2
            })
        ));
        assert!(place_replicas(&brokers, 0, 1, &BTreeMap::new()).is_err());
        assert!(place_replicas(&brokers, 1, 0, &BTreeMap::new()).is_err());
    }

    fn register(image: &mut MetadataImage, id: i32) {
        image
            .apply(&MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: id,
                broker_epoch: 10 + i64::from(id),
                rack: None,
                fenced: true,
                ..Default::default()
            }))
            .unwrap();
        image
            .apply(&MetadataRecord::UnfenceBroker(UnfenceBrokerRecord {
                id,
                epoch: 10 + i64::from(id),
                ..Default::default()
            }))
            .unwrap();
    }

    fn fence(image: &mut MetadataImage, id: i32) {
        image
            .apply(&MetadataRecord::FenceBroker(FenceBrokerRecord {
                id,
                epoch: 10 + i64::from(id),
                ..Default::default()
            }))
            .unwrap();
    }

    /// A cluster of `brokers`, one topic of `partitions` placed with RF 3 by `place_replicas`.
    fn cluster(brokers: i32, partitions: i32) -> (MetadataImage, Uuid) {
        let mut image = MetadataImage::new();
        for b in 1..=brokers {
            register(&mut image, b);
        }
        let id = Uuid([7; 16]);
        image
            .apply(&MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id: id,
                ..Default::default()
            }))
            .unwrap();
        let placed =
            place_replicas(&live_brokers(&image), partitions, 3, &leader_counts(&image)).unwrap();
        for r in partition_records(id, &placed) {
            image.apply(&r).unwrap();
        }
        (image, id)
    }

    #[test]
    fn fencing_elects_from_the_isr_and_bumps_the_epoch() {
        let (mut image, id) = cluster(4, 8);
        let before = image.topic(id).unwrap().clone();
        fence(&mut image, 1);
        for r in fence_broker(&image, BrokerId(1)) {
            image.apply(&r).unwrap();
        }
        let after = image.topic(id).unwrap();
        for (p, state) in &after.partitions {
            let old = &before.partitions[p];
            assert!(
                !state.isr.contains(&BrokerId(1)),
                "partition {p}: {state:?}"
            );
            if old.leader == Some(BrokerId(1)) {
                let leader = state.leader.expect("another ISR member leads");
                assert!(old.isr.contains(&leader) && leader != BrokerId(1));
                assert_eq!(
                    state.leader_epoch.0,
                    old.leader_epoch.0 + 1,
                    "partition {p}"
                );
            } else {
                assert_eq!(state.leader, old.leader);
                assert_eq!(state.leader_epoch, old.leader_epoch);
            }
        }
    }

    #[test]
    fn the_last_isr_member_stays_and_nobody_outside_the_isr_leads() {
        let (mut image, id) = cluster(3, 3);
        // Fence all three, one after another: the partitions end leaderless with the last
        // fenced replica still in their ISR (KIP-841), never with an out-of-sync leader.
        for b in [1, 2, 3] {
            fence(&mut image, b);
            for r in fence_broker(&image, BrokerId(b)) {
                image.apply(&r).unwrap();
            }
        }
        for state in image.topic(id).unwrap().partitions.values() {
            assert_eq!(state.leader, None);
            assert_eq!(state.isr, vec![BrokerId(3)]);
        }
        // Nothing more to do for an already leaderless partition.
        assert!(fence_broker(&image, BrokerId(3)).is_empty());
    }

    #[test]
    fn random_fencing_schedules_keep_leaders_in_the_isr() {
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(seed);
            let (mut image, id) = cluster(5, 20);
            let mut fenced = Vec::new();
            for _ in 0..4 {
                let b = rng.gen_range(1..=5);
                if fenced.contains(&b) {
                    continue;
                }
                fenced.push(b);
                let before = image.topic(id).unwrap().clone();
                fence(&mut image, b);
                for r in fence_broker(&image, BrokerId(b)) {
                    image.apply(&r).unwrap();
                }
                for (p, state) in &image.topic(id).unwrap().partitions {
                    assert!(!state.isr.is_empty());
                    if let Some(l) = state.leader {
                        assert!(state.isr.contains(&l), "seed {seed} p {p}: {state:?}");
                        assert!(!fenced.contains(&l.0), "seed {seed} p {p}: fenced leader");
                        // A new leader came from the previous ISR.
                        assert!(before.partitions[p].isr.contains(&l));
                    }
                }
            }
        }
    }
}
