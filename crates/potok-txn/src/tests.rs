//! Tests of every transition, replay, crash recovery, KIP-890 and a randomized simulation.

use std::collections::BTreeSet;

use bytes::Bytes;
use potok_records::{ProducerEpoch, ProducerId};

use crate::*;

struct Alloc(i64);
impl ProducerIdAllocator for Alloc {
    fn allocate(&mut self) -> Result<ProducerId, TxnError> {
        self.0 += 1;
        Ok(ProducerId(self.0))
    }
}

/// A coordinator plus the log of everything it persisted, so tests can replay it.
struct Harness {
    c: TxnCoordinator,
    log: Vec<(Bytes, Option<Bytes>)>,
    markers: Vec<(String, u64, BTreeSet<TopicPartition>)>,
    alloc: Alloc,
}

impl Harness {
    fn new() -> Harness {
        Harness {
            c: TxnCoordinator::new(TxnConfig::default()),
            log: Vec::new(),
            markers: Vec::new(),
            alloc: Alloc(999),
        }
    }
    fn drain(&mut self) {
        for o in self.c.drain_outputs() {
            match o {
                Output::Persist { key, value, .. } => self.log.push((key, value)),
                Output::WriteMarkers {
                    transactional_id,
                    seq,
                    partitions,
                    ..
                } => self.markers.push((transactional_id, seq, partitions)),
            }
        }
    }
    fn init(&mut self, id: &str, now: i64) -> Result<ProducerIdAndEpoch, TxnError> {
        let r = self
            .c
            .init_producer_id(id, 60_000, None, now, &mut self.alloc);
        self.drain();
        r
    }
    fn add(
        &mut self,
        id: &str,
        p: ProducerIdAndEpoch,
        tps: &[TopicPartition],
    ) -> Result<(), TxnError> {
        let r = self
            .c
            .add_partitions(id, p.producer_id, p.producer_epoch, tps, false, 1);
        self.drain();
        r
    }
    fn end(
        &mut self,
        id: &str,
        p: ProducerIdAndEpoch,
        commit: bool,
        tv2: bool,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        let r = self.c.end_txn(id, p, commit, tv2, 2, &mut self.alloc);
        self.drain();
        r
    }
    /// Acknowledges every outstanding marker write.
    fn ack_all(&mut self) {
        for (id, seq, parts) in std::mem::take(&mut self.markers) {
            let parts: Vec<_> = parts.into_iter().collect();
            self.c.markers_written(&id, seq, &parts, 3).unwrap();
        }
        self.drain();
    }
    fn replay(&self) -> TxnCoordinator {
        let mut loader = Loader::new();
        for (k, v) in &self.log {
            loader.add(k.clone(), v.clone()).unwrap();
        }
        let mut c = TxnCoordinator::new(TxnConfig::default());
        c.load(loader);
        c
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    TopicPartition::new(t, p)
}

#[test]
fn init_allocates_then_bumps_epoch() {
    let mut h = Harness::new();
    let a = h.init("t", 0).unwrap();
    assert_eq!(
        (a.producer_id, a.producer_epoch),
        (ProducerId(1000), ProducerEpoch(0))
    );
    let b = h.init("t", 0).unwrap();
    assert_eq!(
        (b.producer_id, b.producer_epoch),
        (ProducerId(1000), ProducerEpoch(1))
    );
    // The old epoch is fenced.
    assert!(matches!(
        h.add("t", a, &[tp("x", 0)]),
        Err(TxnError::ProducerFenced)
    ));
}

#[test]
fn invalid_timeout_and_ids_are_refused() {
    let mut h = Harness::new();
    for t in [0, -1, 900_001] {
        let r = h.c.init_producer_id("t", t, None, 0, &mut h.alloc);
        assert!(matches!(r, Err(TxnError::InvalidTransactionTimeout { .. })));
    }
    assert!(matches!(h.init("", 0), Err(TxnError::InvalidRequest(_))));
    assert!(h.log.is_empty());
}

#[test]
fn commit_writes_prepare_markers_then_complete() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0), tp("a", 1)]).unwrap();
    let o =
        h.c.add_offsets("t", p.producer_id, p.producer_epoch, "g", 1)
            .unwrap();
    h.drain();
    assert_eq!(o.topic, OFFSETS_TOPIC);
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::Ongoing);
    assert_eq!(h.end("t", p, true, false).unwrap(), p);
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::PrepareCommit);
    assert_eq!(h.markers.len(), 1);
    assert_eq!(h.markers[0].2.len(), 3);
    // While markers are pending, a retry and the opposite outcome alike wait for them
    // (CONCURRENT_TRANSACTIONS, as Kafka answers during a pending transition).
    assert!(matches!(
        h.end("t", p, true, false),
        Err(TxnError::ConcurrentTransactions)
    ));
    assert!(matches!(
        h.end("t", p, false, false),
        Err(TxnError::ConcurrentTransactions)
    ));
    assert!(matches!(
        h.add("t", p, &[tp("a", 2)]),
        Err(TxnError::ConcurrentTransactions)
    ));
    h.ack_all();
    let s = h.c.stored("t").unwrap();
    assert_eq!(s.state, TxnState::CompleteCommit);
    assert!(s.partitions.is_empty());
    // TV1 retry of a finished commit succeeds; an abort of it does not.
    assert_eq!(h.end("t", p, true, false).unwrap(), p);
    assert!(matches!(
        h.end("t", p, false, false),
        Err(TxnError::InvalidTxnState)
    ));
    // EndTxn with nothing open is refused under TV1.
    let q = h.init("t", 5).unwrap();
    assert!(matches!(
        h.end("t", q, true, false),
        Err(TxnError::InvalidTxnState)
    ));
}

#[test]
fn producer_checks() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    let wrong_id = ProducerIdAndEpoch {
        producer_id: ProducerId(5),
        ..p
    };
    assert!(matches!(
        h.add("t", wrong_id, &[tp("a", 0)]),
        Err(TxnError::InvalidProducerIdMapping)
    ));
    assert!(matches!(
        h.add("u", p, &[tp("a", 0)]),
        Err(TxnError::InvalidProducerIdMapping)
    ));
    let future = ProducerIdAndEpoch {
        producer_epoch: ProducerEpoch(4),
        ..p
    };
    assert!(matches!(
        h.add("t", future, &[tp("a", 0)]),
        Err(TxnError::InvalidProducerEpoch)
    ));
    assert!(matches!(
        h.add("t", p, &[]),
        Err(TxnError::InvalidRequest(_))
    ));
}

#[test]
fn verify_only_accepts_only_partitions_of_the_ongoing_transaction() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    let v = |h: &mut Harness, part| {
        h.c.add_partitions("t", p.producer_id, p.producer_epoch, &[part], true, 1)
    };
    assert!(matches!(
        v(&mut h, tp("a", 0)),
        Err(TxnError::InvalidTxnState)
    ));
    h.add("t", p, &[tp("a", 0)]).unwrap();
    let before = h.log.len();
    v(&mut h, tp("a", 0)).unwrap();
    assert!(matches!(
        v(&mut h, tp("a", 1)),
        Err(TxnError::InvalidTxnState)
    ));
    h.drain();
    assert_eq!(h.log.len(), before, "verification writes nothing");
    h.end("t", p, true, false).unwrap();
    h.ack_all();
    // KIP-890 part 1: a late write of the finished transaction fails verification.
    assert!(matches!(
        v(&mut h, tp("a", 0)),
        Err(TxnError::InvalidTxnState)
    ));
}

#[test]
fn init_fences_ongoing_transaction_by_aborting_with_bumped_epoch() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0)]).unwrap();
    assert!(matches!(
        h.init("t", 1),
        Err(TxnError::ConcurrentTransactions)
    ));
    let s = h.c.stored("t").unwrap();
    assert_eq!(s.state, TxnState::PrepareAbort);
    assert_eq!(s.producer_epoch, ProducerEpoch(1));
    assert!(matches!(
        h.init("t", 1),
        Err(TxnError::ConcurrentTransactions)
    ));
    // The old producer cannot commit.
    assert!(matches!(
        h.end("t", p, true, false),
        Err(TxnError::ProducerFenced)
    ));
    h.ack_all();
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::CompleteAbort);
    let q = h.init("t", 2).unwrap();
    assert_eq!(q.producer_epoch, ProducerEpoch(2));
}

#[test]
fn epoch_exhaustion_moves_to_a_new_producer_id() {
    let mut h = Harness::new();
    let mut p = h.init("t", 0).unwrap();
    while p.producer_epoch.0 < i16::MAX - 1 {
        p = h.init("t", 0).unwrap();
    }
    assert_eq!(p.producer_epoch, ProducerEpoch(i16::MAX - 1));
    let q = h.init("t", 0).unwrap();
    assert_eq!(
        (q.producer_id, q.producer_epoch),
        (ProducerId(1001), ProducerEpoch(0))
    );
    assert_eq!(
        h.c.stored("t").unwrap().previous_producer_id,
        ProducerId(1000)
    );
}

#[test]
fn kip360_recovery_with_expected_id_and_epoch() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    let r =
        h.c.init_producer_id("t", 60_000, Some(p), 1, &mut h.alloc)
            .unwrap();
    assert_eq!(r.producer_epoch, ProducerEpoch(1));
    // A retry of the same recovery gets the same answer, no second bump.
    let again =
        h.c.init_producer_id("t", 60_000, Some(p), 1, &mut h.alloc)
            .unwrap();
    assert_eq!(again, r);
    // An expected epoch that is neither current nor the retried one: fenced.
    let stale = ProducerIdAndEpoch {
        producer_epoch: ProducerEpoch(7),
        ..p
    };
    let e =
        h.c.init_producer_id("t", 60_000, Some(stale), 1, &mut h.alloc);
    assert!(matches!(e, Err(TxnError::ProducerFenced)));
}

#[test]
fn tv2_bumps_epoch_per_transaction_and_fences_a_delayed_end_txn() {
    // Jepsen's case closed by KIP-890 part 2: a delayed EndTxn of transaction 1 must not
    // complete transaction 2.
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0)]).unwrap();
    let next = h.end("t", p, true, true).unwrap();
    assert_eq!(next.producer_epoch, ProducerEpoch(1));
    let (_, seq1, _) = h.markers[0].clone();
    h.ack_all();
    // A retry of the EndTxn (old epoch) is answered with the new epoch.
    assert_eq!(h.end("t", p, true, true).unwrap(), next);
    // Transaction 2 starts.
    h.add("t", next, &[tp("a", 1)]).unwrap();
    // The delayed EndTxn of transaction 1, now with abort, and the delayed commit: neither
    // touches transaction 2.
    assert!(h.end("t", p, false, true).is_err());
    assert!(matches!(
        h.end("t", p, true, true),
        Err(TxnError::ProducerFenced)
    ));
    // A delayed marker ack of transaction 1 neither.
    assert!(!h.c.markers_written("t", seq1, &[tp("a", 1)], 5).unwrap());
    let s = h.c.stored("t").unwrap();
    assert_eq!(s.state, TxnState::Ongoing);
    assert_eq!(s.partitions, [tp("a", 1)].into_iter().collect());
    // TV2 allows aborting with nothing open, still bumping.
    let n2 = h.end("t", next, false, true).unwrap();
    h.ack_all();
    let n3 = h.end("t", n2, false, true).unwrap();
    assert_eq!(n3.producer_epoch.0, n2.producer_epoch.0 + 1);
}

#[test]
fn tv2_end_txn_retry_is_recognised_after_a_reload_and_an_empty_abort_waits_for_the_markers() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0)]).unwrap();
    let next = h.end("t", p, true, true).unwrap();
    // The producer, at its new epoch, aborts an empty transaction at once: the commit's
    // markers are still being written, so it waits (retriable), not a fatal error
    // (KAFKA-18464). A retry of the commit meanwhile waits too.
    for (q, commit) in [(next, false), (p, true)] {
        assert!(matches!(
            h.end("t", q, commit, true),
            Err(TxnError::ConcurrentTransactions)
        ));
    }
    h.ack_all();
    // The coordinator moves (a reload from the log): the retry of the commit, quoting the
    // epoch before the bump, is still recognised from what is stored.
    h.c = h.replay();
    assert_eq!(h.end("t", p, true, true).unwrap(), next);
    assert!(matches!(
        h.end("t", p, false, true),
        Err(TxnError::InvalidTxnState)
    ));
    // An epoch two behind is not a retry.
    let after = h.end("t", next, false, true).unwrap();
    h.ack_all();
    assert!(matches!(
        h.end("t", p, true, true),
        Err(TxnError::ProducerFenced)
    ));
    assert_eq!(after.producer_epoch.0, next.producer_epoch.0 + 1);
}

#[test]
fn tv2_epoch_exhaustion_switches_id_at_completion() {
    let mut h = Harness::new();
    let mut p = h.init("t", 0).unwrap();
    while p.producer_epoch.0 < i16::MAX - 1 {
        p = h.init("t", 0).unwrap();
    }
    h.add("t", p, &[tp("a", 0)]).unwrap();
    let next = h.end("t", p, true, true).unwrap();
    assert_eq!(next.producer_epoch, ProducerEpoch(0));
    assert_ne!(next.producer_id, p.producer_id);
    h.ack_all();
    let s = h.c.stored("t").unwrap();
    assert_eq!(
        (s.producer_id, s.producer_epoch),
        (next.producer_id, next.producer_epoch)
    );
    h.add("t", next, &[tp("a", 0)]).unwrap();
}

#[test]
fn timeout_aborts_with_epoch_bump_and_expiration_tombstones() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.c.add_partitions(
        "t",
        p.producer_id,
        p.producer_epoch,
        &[tp("a", 0)],
        false,
        100,
    )
    .unwrap();
    h.drain();
    assert_eq!(h.c.next_deadline(), Some(60_101));
    h.c.tick(60_100).unwrap();
    h.drain();
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::Ongoing);
    h.c.tick(60_101).unwrap();
    h.drain();
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::PrepareAbort);
    assert!(matches!(
        h.end("t", p, true, false),
        Err(TxnError::ProducerFenced)
    ));
    assert_eq!(h.c.next_deadline(), None);
    h.ack_all();
    let last = h.c.stored("t").unwrap().last_update_ms;
    let exp = TxnConfig::default().id_expiration_ms;
    assert_eq!(h.c.next_deadline(), Some(last + exp));
    h.c.tick(last + exp).unwrap();
    h.drain();
    assert!(h.c.stored("t").is_none());
    assert_eq!(h.log.last().unwrap().1, None);
    assert!(h.replay().stored("t").is_none());
}

#[test]
fn describe_and_list() {
    let mut h = Harness::new();
    let p = h.init("a", 0).unwrap();
    h.init("b", 0).unwrap();
    h.c.add_partitions(
        "a",
        p.producer_id,
        p.producer_epoch,
        &[tp("x", 0)],
        false,
        10,
    )
    .unwrap();
    let d = h.c.describe("a").unwrap();
    assert_eq!(
        (d.state, d.start_ms, d.partitions.len()),
        (TxnState::Ongoing, 10, 1)
    );
    assert!(matches!(
        h.c.describe("zz"),
        Err(TxnError::TransactionalIdNotFound)
    ));
    let all = h.c.list(&ListFilter::default(), 20);
    assert_eq!(all.len(), 2);
    let ongoing = ListFilter {
        states: vec![TxnState::Ongoing],
        ..Default::default()
    };
    assert_eq!(h.c.list(&ongoing, 20)[0].transactional_id, "a");
    let by_pid = ListFilter {
        producer_ids: vec![p.producer_id],
        ..Default::default()
    };
    assert_eq!(h.c.list(&by_pid, 20).len(), 1);
    let long = ListFilter {
        min_duration_ms: 15,
        ..Default::default()
    };
    assert!(h.c.list(&long, 20).is_empty());
    assert_eq!(h.c.list(&long, 25).len(), 1);
}

#[test]
fn replay_reproduces_state() {
    let mut h = Harness::new();
    let p = h.init("a", 0).unwrap();
    h.add("a", p, &[tp("x", 0), tp("y", 3)]).unwrap();
    let q = h.init("b", 0).unwrap();
    h.add("b", q, &[tp("x", 1)]).unwrap();
    h.end("b", q, false, false).unwrap();
    h.ack_all();
    let r = h.replay();
    for id in ["a", "b"] {
        assert_eq!(r.stored(id), h.c.stored(id));
    }
}

#[test]
fn crash_after_prepare_commit_completes_on_load() {
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0), tp("a", 1), tp("b", 0)])
        .unwrap();
    h.end("t", p, true, false).unwrap();
    // Crash: no marker acknowledged. Then again after only some were.
    for acked in [0usize, 2] {
        let mut c = h.replay();
        let outs = c.drain_outputs();
        let (seq, parts) = match &outs[..] {
            [Output::WriteMarkers {
                seq,
                partitions,
                result: TxnResult::Commit,
                ..
            }] => (*seq, partitions.clone()),
            other => panic!("expected markers, got {other:?}"),
        };
        assert_eq!(parts.len(), 3);
        let parts: Vec<_> = parts.into_iter().collect();
        assert!(!c.markers_written("t", seq, &parts[..acked], 9).unwrap());
        if acked == 0 {
            continue;
        }
        assert!(c.markers_written("t", seq, &parts[acked..], 9).unwrap());
        assert_eq!(c.stored("t").unwrap().state, TxnState::CompleteCommit);
        assert!(matches!(c.drain_outputs()[..], [Output::Persist { .. }]));
    }
}

/// Seeded simulation: several producers, random operations, coordinator crashes (replay from
/// the log, markers acknowledged or lost) and timeouts, checking the invariants.
#[test]
fn randomized_producers_keep_invariants() {
    let mut total = Coverage::default();
    for seed in 1..=40u64 {
        let c = simulate(seed);
        total.commits += c.commits;
        total.fences += c.fences;
        total.timeouts += c.timeouts;
        total.crashes_in_prepare += c.crashes_in_prepare;
        total.refused_stale_commits += c.refused_stale_commits;
    }
    // The schedules must reach every path the invariants are about, or they prove nothing.
    assert!(total.commits > 0, "{total:?}");
    assert!(total.fences > 0, "{total:?}");
    assert!(total.timeouts > 0, "{total:?}");
    assert!(total.crashes_in_prepare > 0, "{total:?}");
    assert!(total.refused_stale_commits > 0, "{total:?}");
}

#[derive(Debug, Default)]
struct Coverage {
    commits: u32,
    fences: u32,
    timeouts: u32,
    crashes_in_prepare: u32,
    refused_stale_commits: u32,
}

fn simulate(seed: u64) -> Coverage {
    let mut cov = Coverage::default();
    // Which simulated producer last initialised each id: any other one is fenced.
    let mut holder = std::collections::HashMap::<usize, usize>::new();
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let ids = ["t0", "t1", "t2"];
    let mut h = Harness::new();
    // Each simulated producer: (id index, what it believes, tv2).
    let mut producers: Vec<(usize, ProducerIdAndEpoch, bool)> = Vec::new();
    let mut max_epoch = std::collections::HashMap::<(String, i64), i16>::new();
    let mut prepared: std::collections::HashMap<String, BTreeSet<TopicPartition>> =
        Default::default();
    let mut now = 0i64;
    for _ in 0..400 {
        now += next(5_000) as i64;
        match next(9) {
            0 | 1 => {
                let i = next(3) as usize;
                match h
                    .c
                    .init_producer_id(ids[i], 30_000, None, now, &mut h.alloc)
                {
                    Ok(p) => {
                        holder.insert(i, producers.len());
                        producers.push((i, p, next(2) == 0));
                    }
                    Err(TxnError::ConcurrentTransactions) => cov.fences += 1,
                    Err(e) => panic!("seed {seed}: {e}"),
                }
            }
            2 | 3 if !producers.is_empty() => {
                let (i, p, _) = producers[next(producers.len() as u64) as usize];
                let part = tp("x", next(4) as i32);
                let _ = h.c.add_partitions(
                    ids[i],
                    p.producer_id,
                    p.producer_epoch,
                    &[part],
                    false,
                    now,
                );
            }
            4 if !producers.is_empty() => {
                let k = next(producers.len() as u64) as usize;
                let (i, p, tv2) = producers[k];
                let commit = next(2) == 0;
                let before = h.c.stored(ids[i]).cloned();
                let r = h.c.end_txn(ids[i], p, commit, tv2, now, &mut h.alloc);
                let started_commit =
                    h.c.stored(ids[i])
                        .is_some_and(|s| s.state == TxnState::PrepareCommit)
                        && before
                            .as_ref()
                            .is_some_and(|b| b.state == TxnState::Ongoing);
                if started_commit {
                    // Only the producer that initialised the id last may commit.
                    assert_eq!(
                        holder.get(&i),
                        Some(&k),
                        "seed {seed}: fenced producer committed"
                    );
                    cov.commits += 1;
                } else if commit && holder.get(&i) != Some(&k) {
                    cov.refused_stale_commits += 1;
                }
                if let Ok(n) = r {
                    producers[k].1 = n;
                }
            }
            5 if !h.markers.is_empty() => {
                // Acknowledge some markers (possibly out of order / partially).
                {
                    let j = next(h.markers.len() as u64) as usize;
                    let (id, seq, parts) = h.markers.remove(j);
                    let parts: Vec<_> = parts.into_iter().collect();
                    let cut = next(parts.len() as u64 + 1) as usize;
                    let _ = h.c.markers_written(&id, seq, &parts[..cut], now);
                    if cut < parts.len() {
                        let rest: BTreeSet<_> = parts[cut..].iter().cloned().collect();
                        h.markers.push((id, seq, rest));
                    }
                }
            }
            6 => {
                let ongoing = |h: &Harness| {
                    ids.iter()
                        .filter(|id| h.c.stored(id).is_some_and(|s| s.state == TxnState::Ongoing))
                        .count()
                };
                let before = ongoing(&h);
                h.c.tick(now).unwrap();
                cov.timeouts += (before - ongoing(&h)) as u32;
            }
            7 => {
                // Crash: replay the log; lost marker acks are re-sent by load.
                if ids.iter().any(|id| {
                    h.c.stored(id).is_some_and(|s| {
                        matches!(s.state, TxnState::PrepareCommit | TxnState::PrepareAbort)
                    })
                }) {
                    cov.crashes_in_prepare += 1;
                }
                h.drain();
                h.markers.clear();
                h.c = h.replay();
            }
            _ => {}
        }
        h.drain();
        // Invariants over the coordinator's state.
        for id in ids {
            let Some(s) = h.c.stored(id) else { continue };
            let key = (id.to_owned(), s.producer_id.0);
            let e = max_epoch.entry(key).or_insert(s.producer_epoch.0);
            assert!(
                s.producer_epoch.0 >= *e,
                "seed {seed}: epoch went back for {id}"
            );
            *e = s.producer_epoch.0;
            match s.state {
                TxnState::PrepareCommit | TxnState::PrepareAbort => {
                    let prev = prepared.insert(id.to_owned(), s.partitions.clone());
                    if let Some(prev) = prev {
                        assert_eq!(
                            prev, s.partitions,
                            "seed {seed}: partitions changed in Prepare"
                        );
                    }
                }
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    prepared.remove(id);
                }
                _ => assert!(
                    !prepared.contains_key(id),
                    "seed {seed}: Prepare not completed for {id}"
                ),
            }
        }
    }
    // Eventually every Prepare completes: acknowledge everything outstanding.
    for _ in 0..3 {
        h.ack_all();
    }
    for id in ids {
        if let Some(s) = h.c.stored(id) {
            assert!(
                !matches!(s.state, TxnState::PrepareCommit | TxnState::PrepareAbort),
                "seed {seed}: {id} stuck in {:?}",
                s.state
            );
        }
    }
    // And the log replays to the same state.
    let r = h.replay();
    for id in ids {
        assert_eq!(
            r.stored(id),
            h.c.stored(id),
            "seed {seed}: replay differs for {id}"
        );
    }
    cov
}

#[test]
fn tv1_delayed_marker_ack_of_an_earlier_transaction_does_not_complete_a_later_one() {
    // Under TV1 both transactions share the epoch, so only the completion's sequence tells the
    // acknowledgements apart.
    let mut h = Harness::new();
    let p = h.init("t", 0).unwrap();
    h.add("t", p, &[tp("a", 0)]).unwrap();
    h.end("t", p, true, false).unwrap();
    let (_, seq1, _) = h.markers[0].clone();
    h.ack_all();
    h.add("t", p, &[tp("a", 0)]).unwrap();
    h.end("t", p, false, false).unwrap();
    let (_, seq2, _) = h.markers[0].clone();
    assert_ne!(seq1, seq2);
    assert!(!h.c.markers_written("t", seq1, &[tp("a", 0)], 5).unwrap());
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::PrepareAbort);
    assert!(h.c.markers_written("t", seq2, &[tp("a", 0)], 5).unwrap());
    assert_eq!(h.c.stored("t").unwrap().state, TxnState::CompleteAbort);
}

#[test]
fn unloading_a_partition_drops_only_its_ids_and_a_reload_restores_them() {
    let mut h = Harness::new();
    let ids: Vec<String> = (0..20).map(|i| format!("txn-{i}")).collect();
    for id in &ids {
        let p = h.init(id, 0).unwrap();
        h.add(id, p, &[tp("x", 0)]).unwrap();
    }
    let gone = records::partition_for(&ids[0], 4);
    let in_gone: Vec<&String> = ids
        .iter()
        .filter(|id| records::partition_for(id, 4) == gone)
        .collect();
    assert_eq!(h.c.unload_partition(gone, 4), in_gone.len());
    for id in &ids {
        let kept = h.c.stored(id).is_some();
        assert_eq!(kept, records::partition_for(id, 4) != gone, "{id}");
    }
    // A marker acknowledgement for an unloaded id is ignored.
    assert!(!h.c.markers_written(&ids[0], 1, &[tp("x", 0)], 5).unwrap());
    // Loading the log again (the next election) brings the ongoing transactions back.
    let mut loader = Loader::new();
    for (k, v) in &h.log {
        loader.add(k.clone(), v.clone()).unwrap();
    }
    h.c.load(loader);
    for id in &ids {
        assert_eq!(h.c.stored(id).unwrap().state, TxnState::Ongoing, "{id}");
    }
}
