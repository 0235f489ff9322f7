//! Planted histories: a clean one passes, and each kind of anomaly planted into it is reported
//! (and only that kind), so no check of the checker can pass vacuously.

use super::*;

fn ack(value: Value, partition: Partition, offset: Offset) -> Produce {
    Produce {
        value,
        outcome: Outcome::Ack { partition, offset },
        at_ms: 0,
    }
}

fn rec(partition: Partition, offset: Offset, value: Value) -> Event {
    Event::Record {
        partition,
        offset,
        value,
    }
}

/// Two partitions of three records each (values 10.. on partition 0, 20.. on partition 1), one
/// consumer that read everything in order, commits at the ends, one indeterminate write that was
/// stored (value 13) and one that was not (value 99), and a definite failure (value 98).
fn clean() -> History {
    let mut drain = BTreeMap::new();
    drain.insert(0, vec![(0, 10), (1, 11), (2, 12), (3, 13)]);
    drain.insert(1, vec![(0, 20), (1, 21), (2, 22)]);
    History {
        idempotent: true,
        produces: vec![
            ack(10, 0, 0),
            ack(11, 0, 1),
            ack(12, 0, 2),
            Produce {
                value: 13,
                outcome: Outcome::Indeterminate,
                at_ms: 0,
            },
            ack(20, 1, 0),
            ack(21, 1, 1),
            ack(22, 1, 2),
            Produce {
                value: 99,
                outcome: Outcome::Indeterminate,
                at_ms: 0,
            },
            Produce {
                value: 98,
                outcome: Outcome::Failed,
                at_ms: 0,
            },
        ],
        sessions: vec![Session {
            name: "c1".into(),
            events: vec![
                Event::Reset { partition: 0 },
                Event::Reset { partition: 1 },
                rec(0, 0, 10),
                rec(1, 0, 20),
                rec(0, 1, 11),
                rec(0, 2, 12),
                rec(1, 1, 21),
                rec(1, 2, 22),
                rec(0, 3, 13),
            ],
        }],
        commits: vec![
            Commit {
                partition: 0,
                offset: 4,
            },
            Commit {
                partition: 1,
                offset: 3,
            },
        ],
        drain,
        timeline: None,
        writers: HashMap::new(),
    }
}

fn kinds(h: &History) -> Vec<&'static str> {
    check(h).anomalies.iter().map(kind).collect()
}

#[test]
fn clean_history_has_no_anomaly() {
    let r = check(&clean());
    assert!(r.ok(), "{:?}", r.anomalies);
    assert_eq!(r.stats.acked, 6);
    assert_eq!(r.stats.indeterminate, 2);
    assert_eq!(r.stats.indeterminate_stored, 1);
    assert_eq!(r.stats.failed, 1);
    assert_eq!(r.stats.polled, 7);
    assert_eq!(r.stats.drained, 7);
}

#[test]
fn lost_acknowledged_write() {
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().pop();
    // The consumer's commit of 1@3 now runs past the log too; keep this case to the loss.
    h.commits[1].offset = 2;
    assert_eq!(kinds(&h), vec!["lost"]);
    assert_eq!(
        check(&h).anomalies[0],
        Anomaly::LostWrite {
            value: 22,
            partition: 1,
            offset: 2
        }
    );
}

#[test]
fn write_stored_elsewhere_than_acknowledged() {
    let mut h = clean();
    h.produces[2] = ack(12, 0, 7);
    assert_eq!(kinds(&h), vec!["moved"]);
}

#[test]
fn duplicate_is_an_anomaly_only_when_idempotent() {
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().push((3, 21));
    assert_eq!(kinds(&h), vec!["duplicate"]);
    h.idempotent = false;
    let r = check(&h);
    assert!(r.ok(), "{:?}", r.anomalies);
    assert_eq!(r.stats.duplicated, 1);
}

#[test]
fn an_idempotent_duplicate_is_excused_only_when_every_copy_has_its_own_writer() {
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().push((3, 21));
    let w = |producer_id, epoch| Writer { producer_id, epoch };
    // One copy's writer unknown: still an anomaly.
    h.writers.insert((1, 1), w(7, 0));
    assert_eq!(kinds(&h), vec!["duplicate"]);
    // Both copies from the same producer id and epoch: the broker should have deduplicated.
    h.writers.insert((1, 3), w(7, 0));
    assert_eq!(kinds(&h), vec!["duplicate"]);
    // The second copy under a bumped epoch: the client re-sent it, no broker can tell.
    h.writers.insert((1, 3), w(7, 1));
    let r = check(&h);
    assert!(r.ok(), "{:?}", r.anomalies);
    assert_eq!(
        (r.stats.duplicated, r.stats.duplicated_by_new_epoch),
        (1, 1)
    );
}

#[test]
fn one_offset_with_two_values() {
    let mut h = clean();
    // The consumer saw 11 at 0@2 but the drain holds 12 there; 11 is also at 0@1, so the only
    // anomaly is the divergence (plus the non-monotonic order is avoided by a reset).
    h.sessions.push(Session {
        name: "c2".into(),
        events: vec![rec(0, 2, 11)],
    });
    assert_eq!(kinds(&h), vec!["divergence"]);
}

#[test]
fn poll_going_back_without_reset() {
    let mut h = clean();
    h.sessions[0].events.push(rec(0, 1, 11));
    assert_eq!(kinds(&h), vec!["non-monotonic"]);
    // The same re-read after a rebalance is fine.
    let mut h = clean();
    h.sessions[0].events.push(Event::Reset { partition: 0 });
    h.sessions[0].events.push(rec(0, 1, 11));
    assert!(check(&h).ok());
}

#[test]
fn poll_repeating_an_offset_is_non_monotonic() {
    let mut h = clean();
    h.sessions[0].events.push(rec(0, 3, 13));
    assert_eq!(kinds(&h), vec!["non-monotonic"]);
}

#[test]
fn poll_skipping_an_existing_offset() {
    let mut h = clean();
    // Drop the read of 1@1: the session goes from 1@0 to 1@2 over an offset the drain holds.
    h.sessions[0].events.retain(|e| *e != rec(1, 1, 21));
    assert_eq!(kinds(&h), vec!["skip"]);
    // A jump over a gap the drain also has (e.g. a control record's offset) is fine.
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().retain(|&(o, _)| o != 1);
    h.produces.retain(|p| p.value != 21);
    h.sessions[0].events.retain(|e| *e != rec(1, 1, 21));
    assert!(check(&h).ok(), "{:?}", check(&h).anomalies);
}

#[test]
fn read_of_a_failed_or_never_sent_value() {
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().push((3, 98));
    assert_eq!(kinds(&h), vec!["unexpected"]);
    let mut h = clean();
    h.sessions[0].events.push(rec(1, 3, 12345));
    h.drain.get_mut(&1).unwrap().push((3, 12345));
    assert_eq!(kinds(&h), vec!["unexpected"]);
    // The indeterminate 99 may appear.
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().push((3, 99));
    assert!(check(&h).ok());
}

#[test]
fn commit_beyond_the_log() {
    let mut h = clean();
    h.commits.push(Commit {
        partition: 1,
        offset: 4,
    });
    assert_eq!(kinds(&h), vec!["commit-beyond-end"]);
}

#[test]
fn every_kind_is_counted() {
    let mut h = clean();
    h.drain.get_mut(&1).unwrap().pop();
    h.commits[1].offset = 2;
    h.commits.push(Commit {
        partition: 1,
        offset: 9,
    });
    let c = check(&h).counts();
    assert_eq!(c.get("lost"), Some(&1));
    assert_eq!(c.get("commit-beyond-end"), Some(&1));
}

/// The clean history with its six acknowledgements at `times` (ms), producers running from 0
/// to 42 s, one fault from 10 s to 20 s, and a bound of 5 s.
fn timed(times: [u64; 6]) -> History {
    let mut h = clean();
    let mut times = times.into_iter();
    for p in &mut h.produces {
        if matches!(p.outcome, Outcome::Ack { .. }) {
            p.at_ms = times.next().unwrap();
        }
    }
    h.timeline = Some(Timeline {
        faults: vec![(10_000, 20_000)],
        produce_from_ms: 0,
        produce_until_ms: 42_000,
        bound_ms: 5_000,
    });
    h
}

#[test]
fn acknowledgements_within_the_bound_of_every_quiet_time_are_available() {
    // Quiet from 0 to 10 s and from 20 s to 60 s; acknowledgements at most 5 s apart there,
    // and nothing during the fault, which is allowed.
    let h = timed([4_000, 9_000, 24_000, 29_000, 34_000, 39_000]);
    assert!(check(&h).ok(), "{:?}", check(&h).anomalies);
    // Exactly the bound apart is still available.
    let mut h2 = h.clone();
    h2.timeline.as_mut().unwrap().produce_until_ms = 44_000;
    assert!(check(&h2).ok(), "{:?}", check(&h2).anomalies);
}

#[test]
fn writes_stalled_after_the_last_heal_are_unavailable() {
    // Acknowledgements resume after the heal, then stop at 39 s while producing lasts to 60 s:
    // the stall the long runs showed (docs/reliability.md).
    let h = timed([4_000, 9_000, 24_000, 29_000, 34_000, 39_000]);
    let mut stalled = h.clone();
    stalled.timeline.as_mut().unwrap().produce_until_ms = 60_000;
    assert_eq!(kinds(&stalled), vec!["unavailable"]);
    assert_eq!(
        check(&stalled).anomalies[0],
        Anomaly::Unavailable {
            from_ms: 39_000,
            until_ms: 60_000,
            bound_ms: 5_000
        }
    );
    // Never resuming after the heal is reported from the heal on.
    let never = timed([4_000, 9_000, 9_500, 9_600, 9_700, 9_800]);
    assert_eq!(
        check(&never).anomalies,
        vec![Anomaly::Unavailable {
            from_ms: 20_000,
            until_ms: 42_000,
            bound_ms: 5_000
        }]
    );
    // A first acknowledgement 6 s after the heal is late by a second.
    let late = timed([4_000, 9_000, 26_000, 30_000, 35_000, 40_000]);
    assert_eq!(
        check(&late).anomalies,
        vec![Anomaly::Unavailable {
            from_ms: 20_000,
            until_ms: 26_000,
            bound_ms: 5_000
        }]
    );
}

#[test]
fn no_acknowledgement_during_a_fault_or_without_a_timeline_is_fine() {
    // Nothing between 9 s and 24 s, but the fault covers 10-20 s, leaving quiet gaps of 1 s
    // and 4 s.
    let h = timed([4_000, 9_000, 24_000, 29_000, 34_000, 39_000]);
    assert!(check(&h).ok());
    // A long fault-free gap goes unjudged without a timeline.
    let mut h = timed([0; 6]);
    h.timeline = None;
    assert!(check(&h).ok());
}

#[test]
fn quiet_time_before_the_first_fault_is_judged_too() {
    // No acknowledgement until 8 s although nothing was wrong from 0 s.
    let h = timed([8_000, 9_000, 24_000, 29_000, 34_000, 39_000]);
    assert_eq!(kinds(&h), vec!["unavailable"]);
}
