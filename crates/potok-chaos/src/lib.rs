//! The checker of Potok's Jepsen-style fault harness (issue 18).
//!
//! A test records a [`History`] while producers, consumers and a nemesis run against real broker
//! processes; [`check`] then reports every [`Anomaly`] in it. The checker is pure (no IO, no
//! clock), so the same code judges a single node today and replicated partitions once replication
//! lands: it only assumes Kafka's client-visible contract, not how the broker keeps it.
//!
//! What is an anomaly, and why:
//! - an acknowledged write absent from the final drain (a lost write), or present only at another
//!   offset than the one acknowledged (the log was rewritten under the producer);
//! - one (partition, offset) seen with two values across polls and the drain (a divergent log
//!   that a consumer could observe, the failure Kafka's KIP-101 exists to prevent);
//! - a value stored twice, when the run used an idempotent producer (without idempotence a retry
//!   after a lost response legitimately duplicates, as in Kafka), unless the history names the
//!   writer of every copy and no two copies share one: a broker deduplicates retries within one
//!   producer id and epoch (KIP-98), and a client that re-sends a possibly persisted record after
//!   bumping its epoch (librdkafka's drain-and-bump after a message timeout, confluentinc/
//!   librdkafka#4953) makes a copy no broker could recognise, against Kafka as against Potok;
//! - within one consumer session, an offset going back without a rebalance or seek in between, or
//!   skipping an offset that the drain shows exists (a consumer must read a partition in order);
//! - a value read (polled or drained) whose write was never sent or definitely failed: only an
//!   indeterminate write (timeout, lost connection) may turn up without an acknowledgement;
//! - an offset committed beyond the end of the drained partition (a commit of data that was never
//!   there, or was lost after the commit);
//! - with a [`Timeline`], unavailability: no write acknowledged for longer than its bound while
//!   no fault was active (from a heal, or from the previous acknowledgement, to the next
//!   acknowledgement or the end of producing). A cluster that stops accepting writes after a
//!   fault heals loses no acknowledged data, yet it is broken, and a run must not pass silently.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

/// A produced value; every invocation sends a distinct one.
pub type Value = u64;
/// A partition index of the one topic under test.
pub type Partition = i32;
/// An offset within a partition.
pub type Offset = i64;

/// How one produce invocation ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged at this partition and offset.
    Ack {
        /// The partition the broker appended to.
        partition: Partition,
        /// The offset the broker reported.
        offset: Offset,
    },
    /// Definitely not written (the broker refused it before appending, e.g. an invalid record).
    Failed,
    /// Unknown: a timeout or a lost connection; the value may or may not be stored.
    Indeterminate,
}

/// One produce invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produce {
    /// The unique value sent.
    pub value: Value,
    /// Its outcome.
    pub outcome: Outcome,
    /// When the client learnt the outcome, in milliseconds since the run started (the
    /// availability check reads it for acknowledgements).
    pub at_ms: u64,
}

/// When the faults were active and the producers ran, for the availability check. Times are
/// milliseconds since the run started, on the clock of [`Produce::at_ms`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Every fault, from its injection to its heal (`start <= healed`).
    pub faults: Vec<(u64, u64)>,
    /// When the producers started sending.
    pub produce_from_ms: u64,
    /// When the producers stopped sending.
    pub produce_until_ms: u64,
    /// The longest time without an acknowledged write allowed while no fault is active.
    pub bound_ms: u64,
}

/// One event of a consumer session, in the order the consumer saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A record returned by a poll.
    Record {
        /// Its partition.
        partition: Partition,
        /// Its offset.
        offset: Offset,
        /// Its value.
        value: Value,
    },
    /// The consumer's position in `partition` may jump anywhere next: the partition was
    /// (re)assigned by a rebalance, or the application seeked.
    Reset {
        /// The partition whose position was reset.
        partition: Partition,
    },
}

/// The events of one consumer session (one consumer instance from creation to close).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Session {
    /// A name for the report.
    pub name: String,
    /// Its events in order.
    pub events: Vec<Event>,
}

/// An offset commit that the broker acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    /// The partition.
    pub partition: Partition,
    /// The committed offset (the next one to read, as Kafka commits).
    pub offset: Offset,
}

/// Everything a run observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Whether the producers were idempotent (`enable.idempotence=true`).
    pub idempotent: bool,
    /// Every produce invocation.
    pub produces: Vec<Produce>,
    /// Every consumer session.
    pub sessions: Vec<Session>,
    /// Every acknowledged offset commit.
    pub commits: Vec<Commit>,
    /// The final drain: per partition, every record from the log start to the end, in order.
    pub drain: BTreeMap<Partition, Vec<(Offset, Value)>>,
    /// Fault and producer times: without it, availability is not judged.
    pub timeline: Option<Timeline>,
    /// The writer (producer id and epoch of its batch) of drained records, where the harness
    /// read it from the brokers' logs; only duplicates are looked up.
    pub writers: HashMap<(Partition, Offset), Writer>,
}

/// Who wrote a stored record: its batch's producer id and epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Writer {
    /// The batch's producer id.
    pub producer_id: i64,
    /// The batch's producer epoch.
    pub epoch: i16,
}

/// Every value the drain holds more than once, with its positions, ordered by value: the
/// copies whose writers a harness looks up ([`History::writers`]).
pub fn duplicates(h: &History) -> Vec<(Value, Vec<(Partition, Offset)>)> {
    let mut stored: BTreeMap<Value, Vec<(Partition, Offset)>> = BTreeMap::new();
    for (&p, records) in &h.drain {
        for &(o, v) in records {
            stored.entry(v).or_default().push((p, o));
        }
    }
    stored.into_iter().filter(|(_, at)| at.len() > 1).collect()
}

/// One violation of the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// An acknowledged value that the drain does not contain.
    LostWrite {
        /// The value.
        value: Value,
        /// Where it was acknowledged.
        partition: Partition,
        /// Where it was acknowledged.
        offset: Offset,
    },
    /// An acknowledged value that the drain holds, but not at the acknowledged position.
    MovedWrite {
        /// The value.
        value: Value,
        /// The acknowledged position.
        acked: (Partition, Offset),
        /// Where the drain has it.
        found: Vec<(Partition, Offset)>,
    },
    /// A value stored at more than one position in an idempotent run.
    Duplicate {
        /// The value.
        value: Value,
        /// Every position holding it.
        at: Vec<(Partition, Offset)>,
    },
    /// One position seen with different values (by polls and the drain).
    Divergence {
        /// The partition.
        partition: Partition,
        /// The offset.
        offset: Offset,
        /// Every value seen there.
        values: Vec<Value>,
    },
    /// A consumer session read an offset not after its previous one, with no reset in between.
    NonMonotonic {
        /// The session.
        session: String,
        /// The partition.
        partition: Partition,
        /// The previous offset read.
        previous: Offset,
        /// The offset read next.
        next: Offset,
    },
    /// A consumer session jumped over offsets that the drain shows exist.
    Skip {
        /// The session.
        session: String,
        /// The partition.
        partition: Partition,
        /// The previous offset read.
        previous: Offset,
        /// The offset read next.
        next: Offset,
        /// The first existing offset jumped over.
        missed: Offset,
    },
    /// A value read (by a poll or the drain) that was never acknowledged and whose write was not
    /// indeterminate: it was never sent, or definitely failed.
    UnexpectedValue {
        /// The value.
        value: Value,
        /// Where it was read.
        partition: Partition,
        /// Where it was read.
        offset: Offset,
    },
    /// No write acknowledged for longer than the bound while no fault was active.
    Unavailable {
        /// Start of the window (a heal, the producers' start, or an acknowledgement), ms.
        from_ms: u64,
        /// End of the window (the next acknowledgement, a fault, or the producers' stop), ms.
        until_ms: u64,
        /// The bound it exceeded, ms.
        bound_ms: u64,
    },
    /// A committed offset beyond the end of the drained partition.
    CommitBeyondEnd {
        /// The partition.
        partition: Partition,
        /// The committed offset.
        committed: Offset,
        /// The drained log end (last offset + 1, or 0).
        end: Offset,
    },
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anomaly::LostWrite {
                value,
                partition,
                offset,
            } => write!(f, "lost write: value {value} acked at {partition}@{offset}"),
            Anomaly::MovedWrite {
                value,
                acked,
                found,
            } => write!(
                f,
                "moved write: value {value} acked at {}@{} but stored at {found:?}",
                acked.0, acked.1
            ),
            Anomaly::Duplicate { value, at } => write!(f, "duplicate: value {value} at {at:?}"),
            Anomaly::Divergence {
                partition,
                offset,
                values,
            } => write!(f, "divergence: {partition}@{offset} seen as {values:?}"),
            Anomaly::NonMonotonic {
                session,
                partition,
                previous,
                next,
            } => write!(
                f,
                "non-monotonic poll: {session} read {partition}@{next} after {partition}@{previous}"
            ),
            Anomaly::Skip {
                session,
                partition,
                previous,
                next,
                missed,
            } => write!(
                f,
                "skipping poll: {session} read {partition}@{next} after {partition}@{previous}, \
                 missing {partition}@{missed}"
            ),
            Anomaly::UnexpectedValue {
                value,
                partition,
                offset,
            } => write!(
                f,
                "unexpected value: {value} at {partition}@{offset} was never acknowledged nor \
                 indeterminate"
            ),
            Anomaly::Unavailable {
                from_ms,
                until_ms,
                bound_ms,
            } => write!(
                f,
                "unavailable: no write acknowledged from {:.1} s to {:.1} s of the run with no \
                 fault active (bound {:.1} s)",
                *from_ms as f64 / 1000.0,
                *until_ms as f64 / 1000.0,
                *bound_ms as f64 / 1000.0
            ),
            Anomaly::CommitBeyondEnd {
                partition,
                committed,
                end,
            } => write!(
                f,
                "commit beyond end: partition {partition} committed {committed}, log end {end}"
            ),
        }
    }
}

/// Counts of what a history contained, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Acknowledged writes.
    pub acked: usize,
    /// Definitely failed writes.
    pub failed: usize,
    /// Indeterminate writes.
    pub indeterminate: usize,
    /// Indeterminate writes that the drain holds.
    pub indeterminate_stored: usize,
    /// Records returned by polls.
    pub polled: usize,
    /// Records in the drain.
    pub drained: usize,
    /// Acknowledged commits.
    pub commits: usize,
    /// Values stored more than once (counted in any run; an anomaly only when idempotent).
    pub duplicated: usize,
    /// Of those, values whose copies all have different writers (producer id and epoch): the
    /// client re-sent them under a new epoch, so no broker could deduplicate them.
    pub duplicated_by_new_epoch: usize,
}

/// The checker's verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every anomaly found, in a stable order.
    pub anomalies: Vec<Anomaly>,
    /// What the history contained.
    pub stats: Stats,
}

impl Report {
    /// Whether the history is free of anomalies.
    pub fn ok(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// The number of anomalies per kind, by the kind's name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for a in &self.anomalies {
            *m.entry(kind(a)).or_insert(0) += 1;
        }
        m
    }
}

/// The short name of an anomaly's kind.
pub fn kind(a: &Anomaly) -> &'static str {
    match a {
        Anomaly::LostWrite { .. } => "lost",
        Anomaly::MovedWrite { .. } => "moved",
        Anomaly::Duplicate { .. } => "duplicate",
        Anomaly::Divergence { .. } => "divergence",
        Anomaly::NonMonotonic { .. } => "non-monotonic",
        Anomaly::Skip { .. } => "skip",
        Anomaly::UnexpectedValue { .. } => "unexpected",
        Anomaly::Unavailable { .. } => "unavailable",
        Anomaly::CommitBeyondEnd { .. } => "commit-beyond-end",
    }
}

/// Checks a history; see the crate docs for what counts as an anomaly.
pub fn check(h: &History) -> Report {
    let mut out = Vec::new();
    let mut stats = Stats::default();

    // Every position's values, from the drain and every poll.
    let mut seen: BTreeMap<(Partition, Offset), BTreeSet<Value>> = BTreeMap::new();
    // Where the drain stores each value.
    let mut stored: HashMap<Value, Vec<(Partition, Offset)>> = HashMap::new();
    // The drain's offsets per partition (to tell a skip over an existing offset from a gap).
    let mut drained_offsets: BTreeMap<Partition, BTreeSet<Offset>> = BTreeMap::new();
    for (&p, records) in &h.drain {
        let set = drained_offsets.entry(p).or_default();
        for &(o, v) in records {
            stats.drained += 1;
            seen.entry((p, o)).or_default().insert(v);
            stored.entry(v).or_default().push((p, o));
            set.insert(o);
        }
    }

    // Outcomes by value; a value invoked twice would break the harness's own uniqueness, so the
    // most informative outcome wins (an ack over indeterminate over failed).
    let mut outcome: HashMap<Value, Outcome> = HashMap::new();
    for p in &h.produces {
        match p.outcome {
            Outcome::Ack { .. } => stats.acked += 1,
            Outcome::Failed => stats.failed += 1,
            Outcome::Indeterminate => {
                stats.indeterminate += 1;
                if stored.contains_key(&p.value) {
                    stats.indeterminate_stored += 1;
                }
            }
        }
        let rank = |o: &Outcome| match o {
            Outcome::Ack { .. } => 2,
            Outcome::Indeterminate => 1,
            Outcome::Failed => 0,
        };
        let e = outcome.entry(p.value).or_insert(p.outcome);
        if rank(&p.outcome) > rank(e) {
            *e = p.outcome;
        }
    }

    // Acknowledged writes must be in the drain, where they were acknowledged.
    let mut acked: Vec<(Value, Partition, Offset)> = outcome
        .iter()
        .filter_map(|(&v, o)| match *o {
            Outcome::Ack { partition, offset } => Some((v, partition, offset)),
            _ => None,
        })
        .collect();
    acked.sort_unstable();
    for (value, partition, offset) in acked {
        match stored.get(&value) {
            None => out.push(Anomaly::LostWrite {
                value,
                partition,
                offset,
            }),
            Some(at) if !at.contains(&(partition, offset)) => out.push(Anomaly::MovedWrite {
                value,
                acked: (partition, offset),
                found: at.clone(),
            }),
            Some(_) => {}
        }
    }

    // Duplicates in the drain.
    let dups = duplicates(h);
    stats.duplicated = dups.len();
    if h.idempotent {
        for (value, at) in dups {
            let writers: Option<BTreeSet<Writer>> =
                at.iter().map(|pos| h.writers.get(pos).copied()).collect();
            match writers {
                Some(w) if w.len() == at.len() => stats.duplicated_by_new_epoch += 1,
                _ => out.push(Anomaly::Duplicate { value, at }),
            }
        }
    }

    // Consumer sessions: order within each partition, and every value read.
    for s in &h.sessions {
        let mut last: HashMap<Partition, Offset> = HashMap::new();
        for e in &s.events {
            match *e {
                Event::Reset { partition } => {
                    last.remove(&partition);
                }
                Event::Record {
                    partition,
                    offset,
                    value,
                } => {
                    stats.polled += 1;
                    seen.entry((partition, offset)).or_default().insert(value);
                    if let Some(&previous) = last.get(&partition) {
                        if offset <= previous {
                            out.push(Anomaly::NonMonotonic {
                                session: s.name.clone(),
                                partition,
                                previous,
                                next: offset,
                            });
                        } else if let Some(&missed) = drained_offsets
                            .get(&partition)
                            .and_then(|set| set.range(previous + 1..offset).next())
                        {
                            out.push(Anomaly::Skip {
                                session: s.name.clone(),
                                partition,
                                previous,
                                next: offset,
                                missed,
                            });
                        }
                    }
                    last.insert(partition, offset);
                }
            }
        }
    }

    // Every value read at a position: one value per position, and each one either acknowledged
    // or indeterminate.
    for (&(partition, offset), values) in &seen {
        if values.len() > 1 {
            out.push(Anomaly::Divergence {
                partition,
                offset,
                values: values.iter().copied().collect(),
            });
        }
        for &value in values {
            match outcome.get(&value) {
                Some(Outcome::Ack { .. }) | Some(Outcome::Indeterminate) => {}
                Some(Outcome::Failed) | None => out.push(Anomaly::UnexpectedValue {
                    value,
                    partition,
                    offset,
                }),
            }
        }
    }

    // Commits must not run past the log.
    for c in &h.commits {
        stats.commits += 1;
        let end = h
            .drain
            .get(&c.partition)
            .and_then(|r| r.last())
            .map(|&(o, _)| o + 1)
            .unwrap_or(0);
        if c.offset > end {
            out.push(Anomaly::CommitBeyondEnd {
                partition: c.partition,
                committed: c.offset,
                end,
            });
        }
    }

    if let Some(t) = &h.timeline {
        let acks: Vec<u64> = h
            .produces
            .iter()
            .filter(|p| matches!(p.outcome, Outcome::Ack { .. }))
            .map(|p| p.at_ms)
            .collect();
        out.extend(unavailable(t, acks));
    }

    Report {
        anomalies: out,
        stats,
    }
}

/// The windows longer than the bound without an acknowledgement while no fault was active.
///
/// The producing time minus the faults falls into quiet intervals (a fault's end is its heal);
/// within each, the times of its edges and of the acknowledgements inside it must lie at most
/// the bound apart. An acknowledgement during a fault says nothing about the quiet time after it.
fn unavailable(t: &Timeline, mut acks: Vec<u64>) -> Vec<Anomaly> {
    acks.sort_unstable();
    let mut faults = t.faults.clone();
    faults.sort_unstable();
    // The quiet intervals: [from, until) between faults, within the producing time.
    let mut quiet = Vec::new();
    let mut from = t.produce_from_ms;
    for &(start, healed) in &faults {
        if start > from {
            quiet.push((from, start.min(t.produce_until_ms)));
        }
        from = from.max(healed);
    }
    if t.produce_until_ms > from {
        quiet.push((from, t.produce_until_ms));
    }
    let mut out = Vec::new();
    for (from, until) in quiet {
        if from >= until {
            continue;
        }
        let lo = acks.partition_point(|&a| a < from);
        let hi = acks.partition_point(|&a| a < until);
        let mut previous = from;
        for &a in acks[lo..hi].iter().chain(std::iter::once(&until)) {
            if a - previous > t.bound_ms {
                out.push(Anomaly::Unavailable {
                    from_ms: previous,
                    until_ms: a,
                    bound_ms: t.bound_ms,
                });
            }
            previous = a;
        }
    }
    out
}

#[cfg(test)]
mod tests;
