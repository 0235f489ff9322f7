//! The `--balance` plan of `potok topics reassign` (issue 19): a pure function from the current
//! assignment and the brokers to a new one that spreads replicas and preferred leaders (the
//! first replica, which Kafka's preferred election and `auto.leader.rebalance.enable` make the
//! leader) evenly, moving as little as it can.
//!
//! - **Replicas**: each broker ends with ⌊R/B⌋ or ⌈R/B⌉ of the R replicas (B brokers); the
//!   brokers that hold the most today keep the ⌈R/B⌉ quotas. Replicas over a broker's quota
//!   leave (the last ones first), and every freed slot takes the broker with the most room that
//!   the partition does not hold yet; when every broker with room already holds the partition,
//!   a swap with another partition makes room. Every partition keeps its replica count: a plan
//!   never lowers what the user asked.
//! - **Leaders**: each broker ends with ⌊P/B⌋ or ⌈P/B⌉ of the P partitions as first replica
//!   where the replicas allow it, found as augmenting paths (a broker leading too many hands a
//!   partition to another of its replicas, which may hand one of its own on, until a broker
//!   below its quota is reached), so a plan is balanced whenever a balanced order exists.
//!
//! Kafka's `kafka-reassign-partitions --generate` instead reassigns from scratch with its
//! placement (rack-aware round robin), moving most replicas; this keeps what is already fine.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// One partition's replicas (the first is the preferred leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The topic.
    pub topic: String,
    /// The partition index.
    pub partition: i32,
    /// The replicas, preferred leader first.
    pub replicas: Vec<i32>,
}

/// Why no plan could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BalanceError {
    /// No brokers to balance over.
    NoBrokers,
    /// A partition has more replicas than there are brokers.
    TooManyReplicas {
        /// `topic-partition`.
        partition: String,
        /// Its replica count.
        replicas: usize,
        /// The brokers available.
        brokers: usize,
    },
}

impl std::fmt::Display for BalanceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BalanceError::NoBrokers => write!(f, "no brokers to balance over"),
            BalanceError::TooManyReplicas {
                partition,
                replicas,
                brokers,
            } => write!(
                f,
                "{partition} has {replicas} replicas but only {brokers} brokers are available"
            ),
        }
    }
}

/// Quotas of `total` items over `brokers`: ⌊total/B⌋ each, plus one for the `total mod B`
/// brokers first in `priority` order (highest first, ties by id): the brokers holding the most
/// today, so that the fewest items move.
fn quotas<K: Ord>(
    brokers: &[i32],
    priority: impl Fn(i32) -> K,
    total: usize,
) -> BTreeMap<i32, usize> {
    let base = total / brokers.len();
    let extra = total % brokers.len();
    let mut by_load: Vec<i32> = brokers.to_vec();
    by_load.sort_by_key(|&b| (std::cmp::Reverse(priority(b)), b));
    by_load
        .iter()
        .enumerate()
        .map(|(i, &b)| (b, base + usize::from(i < extra)))
        .collect()
}

/// The balanced assignment of `current` over `brokers` (see the module documentation); the
/// partitions come back in the same order.
pub fn balance(current: &[Assignment], brokers: &[i32]) -> Result<Vec<Assignment>, BalanceError> {
    let brokers: Vec<i32> = brokers
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if brokers.is_empty() {
        return Err(BalanceError::NoBrokers);
    }
    for a in current {
        if a.replicas.len() > brokers.len() {
            return Err(BalanceError::TooManyReplicas {
                partition: format!("{}-{}", a.topic, a.partition),
                replicas: a.replicas.len(),
                brokers: brokers.len(),
            });
        }
    }
    let mut plan: Vec<Assignment> = current.to_vec();
    balance_leaders(&mut plan, &brokers);
    balance_replicas(&mut plan, &brokers);
    // A last-resort swap of the replica phase may have moved a leadership: reorder again.
    let mut counts = leader_counts(&plan, &brokers);
    let led = plan.iter().filter(|a| !a.replicas.is_empty()).count();
    let quota = quotas(&brokers, |b| counts[&b], led);
    reorder_leaders(&mut plan, &mut counts, &quota);
    Ok(plan)
}

fn replica_counts(plan: &[Assignment], brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut counts: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for a in plan {
        for r in &a.replicas {
            if let Some(c) = counts.get_mut(r) {
                *c += 1;
            }
        }
    }
    counts
}

fn balance_replicas(plan: &mut [Assignment], brokers: &[i32]) {
    let total: usize = plan.iter().map(|a| a.replicas.len()).sum();
    let mut counts = replica_counts(plan, brokers);
    let leaders = leader_counts(plan, brokers);
    // The leaders are balanced already and stay: brokers leading more get the larger quotas
    // first, so that no broker's leaderships alone exceed its quota.
    let quota = quotas(brokers, |b| (leaders[&b], counts[&b]), total);
    // Slots freed: followers on brokers that are gone or over their quota (taken from the last
    // partitions first, so early partitions keep their replicas).
    let mut missing = vec![0usize; plan.len()];
    for (i, a) in plan.iter_mut().enumerate().rev() {
        let before = a.replicas.len();
        let mut kept = Vec::with_capacity(before);
        for (pos, r) in a.replicas.iter().enumerate() {
            let keep = match counts.get_mut(r) {
                None => false,
                Some(c) if pos > 0 && *c > quota[r] => {
                    *c -= 1;
                    false
                }
                Some(_) => true,
            };
            if keep {
                kept.push(*r);
            }
        }
        a.replicas = kept;
        missing[i] = before - a.replicas.len();
    }
    for i in 0..plan.len() {
        for _ in 0..missing[i] {
            let room = |b: &i32, counts: &BTreeMap<i32, usize>| quota[b].saturating_sub(counts[b]);
            let pick = brokers
                .iter()
                .filter(|b| room(b, &counts) > 0 && !plan[i].replicas.contains(b))
                .max_by_key(|b| (room(b, &counts), std::cmp::Reverse(**b)))
                .copied();
            if let Some(b) = pick {
                plan[i].replicas.push(b);
                *counts.get_mut(&b).expect("a broker") += 1;
                continue;
            }
            // Every broker with room already holds this partition: a broker `x` it does not
            // hold gives its follower replica of another partition `j` (one without the roomy
            // broker `d`) to `d`, and joins this partition instead.
            let Some(&d) = brokers.iter().find(|b| room(b, &counts) > 0) else {
                break;
            };
            // A follower is swapped if one can be; a leader only as a last resort (the leaders
            // are reordered again afterwards).
            let swap = [1usize, 0].into_iter().find_map(|from| {
                brokers
                    .iter()
                    .filter(|x| !plan[i].replicas.contains(x))
                    .find_map(|&x| {
                        (0..plan.len())
                            .find(|&j| {
                                j != i
                                    && plan[j].replicas[from..].contains(&x)
                                    && !plan[j].replicas.contains(&d)
                            })
                            .map(|j| (x, j, from))
                    })
            });
            if let Some((x, j, from)) = swap {
                for r in plan[j].replicas[from..].iter_mut() {
                    if *r == x {
                        *r = d;
                    }
                }
                plan[i].replicas.push(x);
                *counts.get_mut(&d).expect("a broker") += 1;
            }
        }
    }
}

fn leader_counts(plan: &[Assignment], brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut counts: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
    for a in plan {
        if let Some(c) = a.replicas.first().and_then(|l| counts.get_mut(l)) {
            *c += 1;
        }
    }
    counts
}

/// Balances the first replicas: reordering first (no data moves), then, for what reordering
/// cannot fix (and for leaders on brokers that are gone), the leader's replica moves to a
/// broker below its quota.
fn balance_leaders(plan: &mut [Assignment], brokers: &[i32]) {
    let mut counts = leader_counts(plan, brokers);
    let replicas = replica_counts(plan, brokers);
    let led = plan.iter().filter(|a| !a.replicas.is_empty()).count();
    let quota = quotas(brokers, |b| (counts[&b], replicas[&b]), led);
    reorder_leaders(plan, &mut counts, &quota);
    for a in plan.iter_mut() {
        let Some(&leader) = a.replicas.first() else {
            continue;
        };
        let over = counts.get(&leader).is_none_or(|&c| c > quota[&leader]);
        if !over {
            continue;
        }
        let room = |b: &i32, counts: &BTreeMap<i32, usize>| quota[b].saturating_sub(counts[b]);
        // A follower with room takes over without moving data; else a broker with room
        // replaces the leader's replica.
        let Some(to) = brokers
            .iter()
            .filter(|b| room(b, &counts) > 0)
            .max_by_key(|b| (a.replicas.contains(b), room(b, &counts)))
            .copied()
        else {
            continue;
        };
        match a.replicas.iter().position(|&r| r == to) {
            Some(pos) => a.replicas.swap(0, pos),
            None => a.replicas[0] = to,
        }
        if let Some(c) = counts.get_mut(&leader) {
            *c -= 1;
        }
        *counts.get_mut(&to).expect("a broker") += 1;
    }
}

/// Moves leaderships along augmenting paths until no broker over its quota can hand one to a
/// broker under it through the partitions' replicas; at most one round per partition.
fn reorder_leaders(
    plan: &mut [Assignment],
    counts: &mut BTreeMap<i32, usize>,
    quota: &BTreeMap<i32, usize>,
) {
    for _ in 0..plan.len() {
        let Some(path) = augmenting_path(plan, counts, quota) else {
            break;
        };
        // `path` is a list of (partition, new leader): each partition's leader hands over.
        for (p, to) in path {
            let from = plan[p].replicas[0];
            let pos = plan[p]
                .replicas
                .iter()
                .position(|&r| r == to)
                .expect("the new leader is a replica");
            plan[p].replicas.swap(0, pos);
            *counts.get_mut(&from).expect("a broker") -= 1;
            *counts.get_mut(&to).expect("a broker") += 1;
        }
    }
}

/// A breadth-first search over brokers: from every broker over its leader quota, an edge to
/// each other replica of a partition it leads; the first broker reached under its quota ends
/// the path. Returns the hand-overs along it.
fn augmenting_path(
    plan: &[Assignment],
    counts: &BTreeMap<i32, usize>,
    quota: &BTreeMap<i32, usize>,
) -> Option<Vec<(usize, i32)>> {
    let mut came_from: BTreeMap<i32, Option<(usize, i32)>> = BTreeMap::new();
    let mut queue = VecDeque::new();
    for (&b, &c) in counts {
        if c > quota[&b] {
            came_from.insert(b, None);
            queue.push_back(b);
        }
    }
    while let Some(b) = queue.pop_front() {
        for (p, a) in plan.iter().enumerate() {
            if a.replicas.first() != Some(&b) {
                continue;
            }
            for &r in &a.replicas[1..] {
                if came_from.contains_key(&r) || !counts.contains_key(&r) {
                    continue;
                }
                came_from.insert(r, Some((p, b)));
                if counts[&r] < quota[&r] {
                    let mut path = Vec::new();
                    let mut at = r;
                    while let Some(Some((p, from))) = came_from.get(&at) {
                        path.push((*p, at));
                        at = *from;
                    }
                    // Hand over from the start of the path, so each partition's current
                    // leader is the one the path recorded.
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(r);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(topic: &str, partition: i32, replicas: &[i32]) -> Assignment {
        Assignment {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    /// Asserts the plan's replica and leader counts per broker are within one of even, every
    /// partition kept its replica count, and no partition names a broker twice.
    fn assert_balanced(before: &[Assignment], plan: &[Assignment], brokers: &[i32]) {
        assert_eq!(before.len(), plan.len());
        let mut replicas: BTreeMap<i32, usize> = brokers.iter().map(|&b| (b, 0)).collect();
        let mut leaders = replicas.clone();
        for (b, a) in before.iter().zip(plan) {
            assert_eq!((&b.topic, b.partition), (&a.topic, a.partition));
            assert_eq!(b.replicas.len(), a.replicas.len(), "{a:?}");
            let set: BTreeSet<i32> = a.replicas.iter().copied().collect();
            assert_eq!(set.len(), a.replicas.len(), "a broker twice: {a:?}");
            for r in &a.replicas {
                *replicas.get_mut(r).expect("a known broker") += 1;
            }
            *leaders.get_mut(&a.replicas[0]).expect("a known broker") += 1;
        }
        for (what, counts) in [("replicas", &replicas), ("leaders", &leaders)] {
            let min = counts.values().min().unwrap();
            let max = counts.values().max().unwrap();
            assert!(max - min <= 1, "{what} per broker {counts:?} in {plan:?}");
        }
    }

    #[test]
    fn a_fourth_broker_gets_its_share_of_replicas_and_leaders() {
        // Three brokers, 8 partitions with RF=3: broker 4 was just added and holds nothing.
        let before: Vec<Assignment> = (0..8)
            .map(|p| {
                let l = (p % 3) + 1;
                assignment("orders", p, &[l, (l % 3) + 1, ((l + 1) % 3) + 1])
            })
            .collect();
        let plan = balance(&before, &[1, 2, 3, 4]).unwrap();
        assert_balanced(&before, &plan, &[1, 2, 3, 4]);
        // 24 replicas over 4 brokers: exactly 6 each, so 6 moved to broker 4, no more.
        let moved: usize = before
            .iter()
            .zip(&plan)
            .map(|(b, a)| {
                a.replicas
                    .iter()
                    .filter(|r| !b.replicas.contains(r))
                    .count()
            })
            .sum();
        assert_eq!(moved, 6);
    }

    #[test]
    fn leaders_piled_on_one_broker_are_spread_without_moving_replicas() {
        // Replicas balanced, every partition led by broker 1 (after failures).
        let before: Vec<Assignment> = (0..6)
            .map(|p| assignment("t", p, &[1, 2 + (p % 3), 2 + ((p + 1) % 3)]))
            .collect();
        let mut brokers_of = BTreeMap::new();
        for a in &before {
            for r in &a.replicas {
                *brokers_of.entry(*r).or_insert(0) += 1;
            }
        }
        let plan = balance(&before, &[1, 2, 3, 4]).unwrap();
        assert_balanced(&before, &plan, &[1, 2, 3, 4]);
    }

    #[test]
    fn a_balanced_assignment_is_left_alone() {
        let before = vec![
            assignment("a", 0, &[1, 2]),
            assignment("a", 1, &[2, 3]),
            assignment("a", 2, &[3, 4]),
            assignment("a", 3, &[4, 1]),
        ];
        assert_eq!(balance(&before, &[1, 2, 3, 4]).unwrap(), before);
    }

    #[test]
    fn removed_brokers_are_emptied_and_mixed_replication_factors_kept() {
        let before = vec![
            assignment("a", 0, &[1, 2, 5]),
            assignment("a", 1, &[5, 1, 2]),
            assignment("b", 0, &[5]),
            assignment("b", 1, &[2]),
            assignment("c", 0, &[1, 5]),
        ];
        let plan = balance(&before, &[1, 2, 3, 4]).unwrap();
        assert_balanced(&before, &plan, &[1, 2, 3, 4]);
        assert!(plan.iter().all(|a| !a.replicas.contains(&5)));
    }

    #[test]
    fn random_assignments_end_within_one_of_even() {
        // A small deterministic generator (no dependency): many shapes of clusters.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..3000 {
            let old_brokers = 1 + next(5) as i32;
            let brokers: Vec<i32> = (1..=old_brokers + next(3) as i32).collect();
            let partitions = 1 + next(40) as i32;
            let before: Vec<Assignment> = (0..partitions)
                .map(|p| {
                    let rf = 1 + next(old_brokers as u64) as usize;
                    let mut replicas: Vec<i32> = Vec::new();
                    while replicas.len() < rf {
                        let b = 1 + next(old_brokers as u64) as i32;
                        if !replicas.contains(&b) {
                            replicas.push(b);
                        }
                    }
                    assignment("t", p, &replicas)
                })
                .collect();
            let plan = balance(&before, &brokers).unwrap();
            assert_balanced(&before, &plan, &brokers);
        }
    }

    #[test]
    fn impossible_plans_are_refused() {
        let before = vec![assignment("a", 0, &[1, 2, 3])];
        assert!(matches!(
            balance(&before, &[1, 2]),
            Err(BalanceError::TooManyReplicas { .. })
        ));
        assert_eq!(balance(&before, &[]), Err(BalanceError::NoBrokers));
    }
}
