//! Observers against the seeded quorum simulation (`crate::sim`): observers fetch over a network
//! that loses, delays and reorders, crash and restart from their storage, while the voters
//! suffer the simulation's faults. The checks: an observer never emits a Raft message (so it
//! never votes nor campaigns), every entry it hands out is the one the quorum committed at that
//! index, in order without gaps, it learns the leader, and it is never counted: with a majority
//! of voters down nothing commits, however many observers fetch.

use std::collections::BTreeMap;

use raft::storage::MemStorage;
use rand::Rng;

use super::*;
use crate::sim::{Faults, Sim};

const OBSERVERS: [u64; 2] = [10, 11];

enum Msg {
    ToVoter { from: u64, to: u64, bytes: Vec<u8> },
    ToObserver { from: u64, to: u64, bytes: Vec<u8> },
}

struct ObsSim {
    sim: Sim,
    observers: BTreeMap<u64, Option<ObserverNode>>,
    storage: BTreeMap<u64, MemStorage>,
    /// Per observer, the last index handed out (or held in storage at its restart).
    applied: BTreeMap<u64, u64>,
    in_flight: Vec<(u64, u64, Msg)>,
    seq: u64,
    /// Per tick: crash one running observer / restart one crashed observer.
    crash: f64,
    restart: f64,
    violations: Vec<String>,
    read_answers: Vec<(u64, u64)>,
    /// ReadIndex requests of the observers, by tag: the highest index committed anywhere
    /// when it was asked (the answer must cover it).
    reads_asked: BTreeMap<u64, u64>,
    next_read: u64,
    /// Links (observer, voter) on which every message is lost.
    blocked: std::collections::BTreeSet<(u64, u64)>,
    /// The observers' fetch timeout (ticks) from their next restart on.
    fetch_timeout: u64,
}

fn config(id: u64, fetch_timeout_ticks: u64) -> ObserverConfig {
    ObserverConfig {
        id,
        voters: vec![1, 2, 3],
        fetch_timeout_ticks,
        max_bytes: 64,
    }
}

impl ObsSim {
    fn new(seed: u64, faults: Faults) -> ObsSim {
        let mut observers = BTreeMap::new();
        let mut storage = BTreeMap::new();
        let mut applied = BTreeMap::new();
        for id in OBSERVERS {
            let node = ObserverNode::new(config(id, 8)).unwrap();
            storage.insert(id, node.storage());
            observers.insert(id, Some(node));
            applied.insert(id, 0);
        }
        ObsSim {
            sim: Sim::new(seed, 3, faults),
            observers,
            storage,
            applied,
            in_flight: Vec::new(),
            seq: 0,
            crash: 0.0,
            restart: 0.0,
            violations: Vec::new(),
            read_answers: Vec::new(),
            reads_asked: BTreeMap::new(),
            next_read: 1,
            blocked: Default::default(),
            fetch_timeout: 8,
        }
    }

    fn send(&mut self, msg: Msg) {
        let f = &self.sim.faults;
        let (loss, max_delay) = (f.loss, f.max_delay);
        if self.sim.rng.gen_bool(loss) {
            return;
        }
        let at = self.sim.now + self.sim.rng.gen_range(0..=max_delay);
        self.seq += 1;
        self.in_flight.push((at, self.seq, msg));
    }

    fn handle(&mut self, id: u64, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Send { .. } => self
                    .violations
                    .push(format!("observer {id} sent a Raft message")),
                Output::Fetch { to, request } => self.send(Msg::ToVoter {
                    from: id,
                    to,
                    bytes: request.encode(),
                }),
                Output::Persist { .. } => {}
                Output::ReadIndex { ctx, index } => {
                    // Raft's ReadIndex promise, which the broker-only node's start-up gate
                    // relies on: the answer covers everything committed before the request.
                    if let Some(&floor) = self.reads_asked.get(&ctx) {
                        if index < floor {
                            self.violations.push(format!(
                                "observer {id}'s read {ctx} answered {index}, below {floor} \
                                 committed when it was asked"
                            ));
                        }
                    }
                    self.read_answers.push((ctx, index));
                }
                Output::ObserverRead { .. } | Output::ObserverAnswer { .. } => self
                    .violations
                    .push(format!("observer {id} answered an observer")),
                Output::Committed { index, term, data } => {
                    let last = self.applied[&id];
                    if index != last + 1 {
                        self.violations
                            .push(format!("observer {id} handed out {index} after {last}"));
                    }
                    self.applied.insert(id, index);
                    match self.sim.committed_log().get(&index) {
                        Some((t, d)) if *t == term && *d == data => {}
                        other => self.violations.push(format!(
                            "observer {id} applied ({term}, {data:?}) at {index}; the quorum \
                             committed {other:?}"
                        )),
                    }
                }
            }
        }
    }

    fn tick(&mut self) {
        self.sim.tick();
        for id in OBSERVERS {
            let out = match self.observers.get_mut(&id).and_then(Option::as_mut) {
                Some(o) => o.tick(),
                None => continue,
            };
            self.handle(id, out);
        }
        let now = self.sim.now;
        let mut due = Vec::new();
        let mut rest = Vec::new();
        for m in self.in_flight.drain(..) {
            if m.0 <= now {
                due.push(m);
            } else {
                rest.push(m);
            }
        }
        self.in_flight = rest;
        due.sort_by_key(|m| (m.0, m.1));
        for (_, _, msg) in due {
            match msg {
                Msg::ToVoter { from, to, bytes } => {
                    if self.blocked.contains(&(from, to)) || self.sim.paused.contains(&to) {
                        continue;
                    }
                    let request = FetchRequest::decode(&bytes).expect("request round trip");
                    let Some(voter) = self.sim.voter_mut(to) else {
                        continue;
                    };
                    let (answer, out) = voter.serve_fetch(from, &request);
                    self.sim.handle(to, out);
                    // `None`: the fetch waits at the voter (an `ObserverAnswer` later).
                    if let Some(answer) = answer {
                        let bytes = answer.encode().expect("answer encodes");
                        self.send(Msg::ToObserver {
                            from: to,
                            to: from,
                            bytes,
                        });
                    }
                }
                Msg::ToObserver { from, to, bytes } => {
                    if self.blocked.contains(&(to, from)) {
                        continue;
                    }
                    let answer = FetchAnswer::decode(&bytes).expect("answer round trip");
                    let out = match self.observers.get_mut(&to).and_then(Option::as_mut) {
                        Some(o) => o.on_answer(from, answer),
                        None => continue,
                    };
                    self.handle(to, out);
                }
            }
        }
        // Fetches that waited at a voter, answered now.
        for (voter, observer, answer) in std::mem::take(&mut self.sim.observer_answers) {
            self.send(Msg::ToObserver {
                from: voter,
                to: observer,
                bytes: answer.encode().expect("answer encodes"),
            });
        }
        // The leaders' answers to observers' reads travel like fetch answers.
        for (voter, observer, ctx, index) in std::mem::take(&mut self.sim.observer_reads) {
            let (leader, term, commit) = match self.sim.voter(voter) {
                Some(v) => (v.leader().unwrap_or(0), v.term(), v.commit_index()),
                None => continue,
            };
            let answer = FetchAnswer {
                leader,
                term,
                commit,
                read: Some((ctx, index)),
                entries: Vec::new(),
            };
            self.send(Msg::ToObserver {
                from: voter,
                to: observer,
                bytes: answer.encode().expect("answer encodes"),
            });
        }
        let crash = self.crash;
        if self.sim.rng.gen_bool(crash) {
            let id = OBSERVERS[self.sim.rng.gen_range(0..OBSERVERS.len())];
            self.observers.insert(id, None);
        }
        let restart = self.restart;
        if self.sim.rng.gen_bool(restart) {
            let id = OBSERVERS[self.sim.rng.gen_range(0..OBSERVERS.len())];
            if self.observers[&id].is_none() {
                self.restart_observer(id);
            }
        }
    }

    fn restart_observer(&mut self, id: u64) {
        let node = ObserverNode::restart(config(id, self.fetch_timeout), self.storage[&id].clone())
            .unwrap();
        // The driver replays what the storage holds; the node hands out only what follows.
        self.applied.insert(id, node.last_index());
        self.observers.insert(id, Some(node));
    }

    /// Observer `id` asks a ReadIndex (if it runs).
    fn read_on(&mut self, id: u64) {
        let floor = self
            .sim
            .committed_log()
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        let ctx = self.next_read;
        let Some(o) = self.observers.get_mut(&id).and_then(Option::as_mut) else {
            return;
        };
        self.next_read += 1;
        self.reads_asked.insert(ctx, floor);
        let out = o.read_index(ctx);
        self.handle(id, out);
    }

    fn observer(&self, id: u64) -> &ObserverNode {
        self.observers[&id].as_ref().expect("observer up")
    }

    fn leader(&self) -> Option<(u64, u64)> {
        self.sim
            .voter_ids()
            .into_iter()
            .filter_map(|id| self.sim.voter(id))
            .filter(|v| v.is_leader())
            .map(|v| (v.id(), v.term()))
            .max_by_key(|&(_, term)| term)
    }
}

#[test]
fn fetch_frames_round_trip_and_every_cut_or_bad_count_is_refused() {
    let r = FetchRequest {
        from_index: 7,
        max_bytes: 99,
        read: 3,
    };
    assert_eq!(FetchRequest::decode(&r.encode()).unwrap(), r);
    let a = FetchAnswer {
        leader: 2,
        term: 5,
        commit: 9,
        read: Some((3, 8)),
        entries: (7..10)
            .map(|index| Entry {
                index,
                term: 5,
                data: vec![index as u8; 3].into(),
                ..Default::default()
            })
            .collect(),
    };
    let bytes = a.encode().unwrap();
    assert_eq!(FetchAnswer::decode(&bytes).unwrap(), a);
    for cut in 0..bytes.len() {
        assert!(FetchAnswer::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut long = bytes.clone();
    long.push(0);
    assert!(FetchAnswer::decode(&long).is_err());
    // A count larger than the bytes that follow is refused before any allocation.
    let mut huge = bytes[..41].to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(FetchAnswer::decode(&huge).is_err());
    for cut in 0..20 {
        assert!(
            FetchRequest::decode(&r.encode()[..cut]).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn an_observer_id_must_not_be_a_voter() {
    let mut c = config(2, 8);
    assert!(ObserverNode::new(c.clone()).is_err());
    c.voters.clear();
    c.id = 10;
    assert!(ObserverNode::new(c).is_err());
}

#[test]
fn observers_learn_the_leader_and_the_committed_log_and_are_never_counted() {
    let mut s = ObsSim::new(3, Faults::none());
    for id in OBSERVERS {
        s.read_on(id);
    }
    s.sim
        .heal_and_check_progress(200)
        .expect("a leader commits");
    for _ in 0..5 {
        s.sim.propose_on_leaders();
        for _ in 0..5 {
            s.tick();
        }
    }
    for _ in 0..30 {
        s.tick();
    }
    let (leader, term) = s.leader().expect("a leader");
    let committed = *s.sim.committed_log().keys().next_back().unwrap();
    assert!(committed >= 6, "{committed}");
    for id in OBSERVERS {
        let o = s.observer(id);
        assert_eq!(
            (o.leader(), o.term()),
            (Some(leader), term),
            "observer {id}"
        );
        assert_eq!(o.last_index(), committed, "observer {id}");
        assert_eq!(s.applied[&id], committed);
    }
    // The start-up catch-up: each observer's ReadIndex was answered by the leader.
    assert_eq!(s.read_answers.len(), 2, "{:?}", s.read_answers);
    // The leader reports the observers' progress (DescribeQuorum) but its voters are the
    // three configured ones only.
    let status = s.sim.voter(leader).unwrap().status();
    assert_eq!(status.voters.len(), 3);
    assert_eq!(
        status.observers.iter().map(|o| o.0).collect::<Vec<_>>(),
        OBSERVERS.to_vec()
    );

    // Two voters down: the leader and two observers are three nodes, but observers are not
    // counted, so a proposal never commits and never reaches them.
    let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&v| v != leader).collect();
    // (The quiet schedule restarts crashed voters at once; not here.)
    s.sim.faults.restart = 0.0;
    for &v in &others {
        s.sim.crash(v);
    }
    let index = s
        .sim
        .propose_on(leader, b"needs a majority".to_vec())
        .unwrap();
    for _ in 0..100 {
        s.tick();
    }
    assert!(!s.sim.committed_log().contains_key(&index));
    for id in OBSERVERS {
        assert!(s.observer(id).last_index() < index, "observer {id}");
    }
    // The voters return: the quorum commits again and the observers follow.
    s.sim
        .heal_and_check_progress(300)
        .expect("progress once healed");
    for _ in 0..50 {
        s.tick();
    }
    let committed = *s.sim.committed_log().keys().next_back().unwrap();
    for id in OBSERVERS {
        assert_eq!(s.observer(id).last_index(), committed, "observer {id}");
    }
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(s.sim.violations.is_empty(), "{:?}", s.sim.violations);
}

#[test]
fn observers_stay_a_prefix_of_the_committed_log_under_faults_and_catch_up_once_healed() {
    let mut total = 0;
    let mut reads = 0;
    for seed in 0..30 {
        let mut s = ObsSim::new(seed, Faults::hostile());
        s.crash = 0.01;
        s.restart = 0.05;
        for t in 0..1200u64 {
            s.tick();
            if t % 40 == 0 {
                s.read_on(OBSERVERS[(t / 40) as usize % OBSERVERS.len()]);
            }
        }
        s.sim.heal_and_check_progress(400).expect("progress");
        s.crash = 0.0;
        for id in OBSERVERS {
            if s.observers[&id].is_none() {
                s.restart_observer(id);
            }
        }
        for _ in 0..200 {
            s.tick();
        }
        let committed = *s.sim.committed_log().keys().next_back().unwrap();
        let leader = s.leader().map(|l| l.0);
        for id in OBSERVERS {
            let o = s.observer(id);
            assert_eq!(o.last_index(), committed, "seed {seed}: observer {id}");
            assert_eq!(o.leader(), leader, "seed {seed}: observer {id}");
        }
        // Once healed, a read asked now is answered.
        let tag = s.next_read;
        s.read_on(OBSERVERS[0]);
        for _ in 0..100 {
            s.tick();
        }
        assert!(
            s.read_answers.iter().any(|r| r.0 == tag),
            "seed {seed}: a read was not answered once healed"
        );
        assert!(s.violations.is_empty(), "seed {seed}: {:?}", s.violations);
        assert!(
            s.sim.violations.is_empty(),
            "seed {seed}: {:?}",
            s.sim.violations
        );
        total += committed;
        reads += s.read_answers.len();
    }
    // The schedules must have committed real work and answered reads, or the checks proved
    // nothing.
    assert!(
        total > 1000,
        "only {total} entries committed over all seeds"
    );
    assert!(reads > 100, "only {reads} reads answered over all seeds");
}

/// A leader paused (a stopped process) while the other voters elect another and commit, then
/// resumed still cut off from them, believes it leads until its check-quorum deposes it: an
/// observer that can reach only it must not get a read answer below what the new leader
/// committed (Raft's ReadIndex on the old leader needs a majority's heartbeat
/// acknowledgements, which never come). Answering with the leader's own commit index at once
/// fails this test.
#[test]
fn a_deposed_leader_that_still_believes_it_leads_answers_no_stale_read_to_observers() {
    let mut moved = 0;
    let mut asked_of_old = 0;
    for seed in 0..20 {
        let mut s = ObsSim::new(seed, Faults::none());
        s.sim
            .heal_and_check_progress(200)
            .expect("a leader commits");
        for _ in 0..30 {
            s.tick();
        }
        let (old, _) = s.leader().expect("a leader");
        let others: Vec<u64> = [1, 2, 3].into_iter().filter(|&v| v != old).collect();
        s.sim.faults.heal = 0.0;
        s.sim.faults.restart = 0.0;
        for &v in &others {
            s.sim.cut_link(old, v);
            for id in OBSERVERS {
                s.blocked.insert((id, v));
            }
        }
        // Paused: the others elect a new leader, which commits.
        s.sim.paused.insert(old);
        for _ in 0..80 {
            for &v in &others {
                if s.sim.voter(v).is_some_and(|n| n.is_leader()) {
                    let _ = s.sim.propose_on(v, format!("new-{seed}").into_bytes());
                    moved += 1;
                }
            }
            s.tick();
        }
        // Resumed, still cut off: observers that reach only it ask for reads (restarted with a
        // short fetch timeout, so that they find it before its check-quorum deposes it).
        s.fetch_timeout = 2;
        for id in OBSERVERS {
            s.restart_observer(id);
        }
        s.sim.paused.remove(&old);
        for t in 0..40 {
            if s.sim.voter(old).is_some_and(|n| n.is_leader()) {
                asked_of_old += 1;
            }
            // (A new read replaces an unanswered one: asked now and then, so that answers
            // can arrive.)
            if t % 10 == 0 {
                for id in OBSERVERS {
                    s.read_on(id);
                }
            }
            s.tick();
        }
        assert!(s.violations.is_empty(), "seed {seed}: {:?}", s.violations);
        assert!(
            s.sim.violations.is_empty(),
            "seed {seed}: {:?}",
            s.sim.violations
        );
    }
    // The new leader must have written while the old one still believed it led, or nothing
    // was shown.
    assert!(moved > 100, "only {moved} proposals on a new leader");
    assert!(
        asked_of_old > 20,
        "the old leader never believed it led after resuming"
    );
}

/// A voter bounds an answer by its own limit, whatever the observer asks for.
#[test]
fn a_voter_caps_the_bytes_of_an_answer() {
    let mut sim = Sim::new(5, 3, Faults::none());
    sim.heal_and_check_progress(200).expect("a leader commits");
    let leader = sim
        .voter_ids()
        .into_iter()
        .find(|&v| sim.voter(v).is_some_and(|n| n.is_leader()))
        .expect("a leader");
    for i in 0..8u8 {
        sim.propose_on(leader, vec![i; 1024 * 1024])
            .expect("proposed");
    }
    for _ in 0..50 {
        sim.tick();
    }
    let v = sim.voter_mut(leader).expect("leader up");
    assert!(v.commit_index() >= 9, "{}", v.commit_index());
    let (answer, _) = v.serve_fetch(
        10,
        &FetchRequest {
            from_index: 1,
            max_bytes: u32::MAX,
            read: 0,
        },
    );
    let answer = answer.expect("entries to send: answered at once");
    let bytes: usize = answer.entries.iter().map(|e| e.data.len()).sum();
    assert!(!answer.entries.is_empty());
    assert!(
        bytes <= MAX_FETCH_BYTES as usize,
        "{bytes} bytes in {} entries",
        answer.entries.len()
    );
    assert!(answer.encode().unwrap().len() < 8 << 20);
}

/// The long poll: a fetch that finds nothing new waits at the voter and is answered in the same
/// step that commits the next entry, or empty once the wait is over.
#[test]
fn a_fetch_with_nothing_new_waits_for_the_next_commit() {
    let mut v = crate::quorum::QuorumNode::new(crate::quorum::QuorumConfig {
        id: 1,
        voters: vec![1],
        election_ticks: 10,
        heartbeat_ticks: 2,
        observer_wait_ticks: 3,
    })
    .unwrap();
    for _ in 0..30 {
        v.tick();
    }
    assert!(v.is_leader());
    let commit = v.commit_index();
    let request = FetchRequest {
        from_index: commit + 1,
        max_bytes: 1024,
        read: 0,
    };
    let (answer, _) = v.serve_fetch(10, &request);
    assert!(answer.is_none(), "nothing new: the fetch waits");
    let (_, _, out) = v.propose(b"new".to_vec()).unwrap();
    let answered: Vec<&FetchAnswer> = out
        .iter()
        .filter_map(|o| match o {
            Output::ObserverAnswer {
                observer: 10,
                answer,
            } => Some(answer),
            _ => None,
        })
        .collect();
    assert_eq!(answered.len(), 1, "{out:?}");
    assert_eq!(answered[0].entries.len(), 1);
    assert_eq!(answered[0].entries[0].data.as_ref(), b"new");
    // Up to date again: the next fetch waits, and after the wait it is answered empty.
    let request = FetchRequest {
        from_index: v.commit_index() + 1,
        ..request
    };
    assert!(v.serve_fetch(10, &request).0.is_none());
    let mut empty = 0;
    for _ in 0..3 {
        for o in v.tick() {
            if let Output::ObserverAnswer { answer, .. } = o {
                assert!(answer.entries.is_empty());
                empty += 1;
            }
        }
    }
    assert_eq!(empty, 1);
}
