//! Kafka's Java transactional producer on three real `potok` processes under
//! `transaction.version` 2 (KIP-890 part 2; issue 21, acceptance 2's 3-node part): kafka-clients
//! 4.x sends no AddPartitionsToTxn, so Produce v12 adds each partition to the transaction
//! (through the coordinator's broker when another broker leads it) and EndTxn v5 bumps the
//! producer epoch per transaction. The broker of the transaction coordinator is SIGKILLed while
//! the producer runs transactions back to back, then restarted. The Java side is
//! `compat/java/src/potok/compat/TxnFailover.java`; the librdkafka (TV1) counterpart is
//! `tests/cluster_transactions.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::txn_cluster::*;
use potok_protocol::messages::{MetadataRequest, MetadataResponse};
use potok_protocol::ApiKey;

/// The whole Java run: the cluster's failover (a 3 s session timeout and an election) and the
/// JVM share two cores with other tests.
const RUN_TIMEOUT: Duration = Duration::from_secs(240);
/// Records per partition in each transaction.
const PER_PARTITION: usize = 5;

/// Waits until node `node` is in the ISR of every partition of `TOPIC` and
/// `__transaction_state`, as node `addr` answers Metadata.
fn wait_in_every_isr(addr: &str, node: i32) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut w = common::wire::Client::connect(addr, Duration::from_secs(10));
        let r: MetadataResponse = w.call(
            ApiKey::Metadata,
            9,
            &MetadataRequest {
                topics: None,
                ..Default::default()
            },
        );
        let parts: Vec<(String, i32, Vec<i32>)> = r
            .topics
            .iter()
            .filter(|t| matches!(t.name.as_deref(), Some(TOPIC | "__transaction_state")))
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.clone().unwrap_or_default(),
                        p.partition_index,
                        p.isr_nodes.clone(),
                    )
                })
            })
            .collect();
        let expected = (PARTITIONS + STATE_PARTITIONS) as usize;
        if parts.len() == expected && parts.iter().all(|(_, _, isr)| isr.contains(&node)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {node} never rejoined every ISR: {parts:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `TxnFailover` wrote to its outcomes file.
#[derive(Debug, Default)]
struct Outcomes {
    tv_level: Option<i64>,
    committed: BTreeSet<String>,
    aborted: BTreeSet<String>,
    unknown: BTreeSet<String>,
    /// `(producer id, epoch after init, epoch at the end, transactions ended, no error seen,
    /// producer id at the end)` of the last producer instance.
    epochs: Option<(i64, i64, i64, i64, bool, i64)>,
    instances: usize,
    /// The transactions open at the kill and at the restart.
    killed_in: Option<String>,
    restarted_in: Option<String>,
    /// Transactions that failed (an abortable or fatal error), before and after the kill.
    errors_before_kill: Vec<String>,
    errors_after_kill: Vec<String>,
}

fn parse_outcomes(text: &str) -> Outcomes {
    let mut o = Outcomes::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words.as_slice() {
            ["feature", "transaction.version", level] => o.tv_level = level.parse().ok(),
            ["committed", tag] => {
                o.committed.insert(tag.to_string());
            }
            ["aborted", tag] => {
                o.aborted.insert(tag.to_string());
            }
            ["unknown", tag] => {
                o.unknown.insert(tag.to_string());
            }
            ["epochs", pid, e0, e1, ended, clean, pid1] => {
                let n = |s: &str| s.parse::<i64>().expect("a number in the epochs line");
                o.epochs = Some((n(pid), n(e0), n(e1), n(ended), *clean == "true", n(pid1)));
            }
            ["error", tag, "before-kill"] => o.errors_before_kill.push(tag.to_string()),
            ["error", tag, "after-kill"] => o.errors_after_kill.push(tag.to_string()),
            ["killed-in", tag] => o.killed_in = Some(tag.to_string()),
            ["restarted-in", tag] => o.restarted_in = Some(tag.to_string()),
            ["instances", n] => o.instances = n.parse().expect("instances"),
            _ => panic!("unexpected outcome line {line:?}"),
        }
    }
    o
}

/// Records per transaction tag (`TAG-PARTITION-I`) among `values`.
fn per_tag(values: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for v in values {
        let tag = v.split('-').next().expect("tag");
        *m.entry(tag.to_string()).or_default() += 1;
    }
    m
}

/// A Java transactional producer (kafka-clients 4.x, Java defaults) commits and aborts
/// transactions over the 3 partitions back to back while the broker of its transaction
/// coordinator is SIGKILLed in the middle of a transaction, then restarted in the middle of
/// another. Afterwards: `transaction.version` 2 was finalized and in use (the last producer
/// instance's epoch moved on by at least one per transaction it ended), every transaction is
/// read entirely or not at all under read_committed, every commit the producer saw return is
/// visible, every abort it saw return is invisible (and its records are there under
/// read_uncommitted), and every partition's last stable offset reaches its high watermark.
#[test]
fn java_tv2_transactions_stay_whole_across_a_kill_9_of_the_coordinator() {
    kill_during_java_transactions(Victim::Coordinator, "java-tv2-coordinator");
}

/// As above, the SIGKILLed broker leading a partition of the transactions without
/// coordinating them: the partition's new leader adds it to the transaction through the
/// coordinator's broker (Produce v12), and the coordinator re-sends its markers to it.
#[test]
fn java_tv2_transactions_stay_whole_across_a_kill_9_of_a_partition_leader() {
    kill_during_java_transactions(Victim::PartitionLeader, "java-tv2-leader");
}

/// Which broker [`kill_during_java_transactions`] kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Coordinator,
    PartitionLeader,
}

fn kill_during_java_transactions(which: Victim, id: &str) {
    let mut c = cluster();
    create_topic(&c);
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let handshake = tempfile::tempdir().expect("handshake dir");
    let mut args = common::java::jvm_args("potok.compat.TxnFailover");
    args.extend([
        c.bootstrap(),
        TOPIC.into(),
        PARTITIONS.to_string(),
        handshake.path().display().to_string(),
        id.into(),
        PER_PARTITION.to_string(),
    ]);
    let client = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run_program("java", &args, &common::java::repo_root(), RUN_TIMEOUT)
    });
    let hs = handshake.path();
    let ready = common::wait_file(hs, "ready", &client, RUN_TIMEOUT);
    // The coordinator may have moved since the first answer (a leadership rebalance): the
    // victim is chosen from the leaderships of now.
    let mut victim = None;
    if ready {
        let now = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
        let ls = leaders(&c.node(now).bootstrap());
        assert!(
            ls.values().any(|l| *l != now),
            "every partition is led by the coordinator {now}: {ls:?}"
        );
        // The producer wrote its transaction's records to every partition and has not ended
        // it: it holds every partition's last stable offset below the high watermark.
        for (p, l) in &ls {
            let addr = c.node(*l).bootstrap();
            let (lso, hw) = (latest(&addr, *p, 1), latest(&addr, *p, 0));
            assert!(
                matches!((lso, hw), (Ok(lso), Ok(hw)) if lso < hw),
                "partition {p}: (lso, hw) = {:?} with a transaction open",
                (lso, hw)
            );
        }
        let v = match which {
            Victim::Coordinator => now,
            Victim::PartitionLeader => *ls.values().find(|l| **l != now).expect("checked above"),
        };
        c.kill9(v);
        std::fs::write(hs.join("killed"), "1\n").expect("write the killed file");
        victim = Some((v, now));
    }
    let mut new_coordinator = None;
    let restarted = match victim {
        Some((v, coordinator_at_kill)) if common::wait_file(hs, "rejoin", &client, RUN_TIMEOUT) => {
            let alive: Vec<i32> = (1..=3).filter(|n| *n != v).collect();
            let after = agreed_txn_coordinator(&c, &alive, id, Some(v));
            if which == Victim::PartitionLeader {
                assert_eq!(after, coordinator_at_kill, "the coordinator stays");
            }
            new_coordinator = Some(after);
            c.restart(v);
            // The transaction stays open while the restarted broker catches up, and the
            // producer's last transactions run with it back in the ISR.
            wait_in_every_isr(&c.node(alive[0]).bootstrap(), v);
            std::fs::write(hs.join("restarted"), "1\n").expect("write the restarted file");
            true
        }
        _ => false,
    };
    let result = client.join().expect("client thread");
    let out = result.unwrap_or_else(|failure| panic!("{failure}\n{}", c.log_tails(60)));
    print!("{out}");
    assert!(ready && restarted, "the client skipped a step:\n{out}");
    assert!(out.contains("OK TxnFailover"), "{out}");
    let text = std::fs::read_to_string(hs.join("outcomes")).expect("the outcomes file");
    let o = parse_outcomes(&text);

    // On a healthy cluster no transaction fails: one that did before the kill was refused by a
    // broker bug (a TV2 verification guard dropped by the previous transaction's marker made a
    // good write fail with INVALID_TXN_STATE, `txn/verify.rs`).
    assert!(
        o.errors_before_kill.is_empty(),
        "transactions failed before the kill: {:?}\n{out}",
        o.errors_before_kill
    );
    assert_eq!(
        o.tv_level,
        Some(2),
        "the finalized transaction.version the Java client read"
    );
    let (pid, e0, e1, ended, clean, pid1) = o.epochs.expect("the epochs line");
    assert_eq!(pid, pid1, "the last producer instance kept its producer id");
    assert!(
        ended >= 3,
        "the last producer instance ended {ended} transactions"
    );
    // TV2 bumps the epoch at every EndTxn; TV1 only at InitProducerId. An instance that saw
    // an error may also have bumped it through InitProducerId (KIP-360).
    if clean {
        assert_eq!(
            e1 - e0,
            ended,
            "epoch {e0} -> {e1} over {ended} transactions"
        );
    } else {
        assert!(
            e1 - e0 >= ended,
            "epoch {e0} -> {e1} over {ended} transactions"
        );
    }

    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let committed_reads = per_tag(&read_all(&c.bootstrap(), "read_committed"));
    let uncommitted_reads = per_tag(&read_all(&c.bootstrap(), "read_uncommitted"));
    let whole = PER_PARTITION * PARTITIONS as usize;
    let partial: Vec<_> = committed_reads
        .iter()
        .filter(|(_, n)| **n != whole)
        .collect();
    assert!(
        partial.is_empty(),
        "transactions read partly (or twice) under read_committed: {partial:?}\n{text}"
    );
    for tag in &o.committed {
        assert!(
            committed_reads.contains_key(tag),
            "the commit of {tag} returned but it is not visible"
        );
    }
    for tag in &o.aborted {
        assert!(
            !committed_reads.contains_key(tag),
            "the abort of {tag} returned but it is visible under read_committed"
        );
    }
    let ran: BTreeSet<&String> = o
        .committed
        .iter()
        .chain(&o.aborted)
        .chain(&o.unknown)
        .collect();
    for tag in committed_reads.keys() {
        assert!(ran.contains(tag), "{tag} is visible but was never run");
    }
    let aborted_written = o
        .aborted
        .iter()
        .filter(|t| uncommitted_reads.get(*t) == Some(&whole))
        .count();
    assert!(
        aborted_written >= 1,
        "no aborted transaction's records reached the log: {uncommitted_reads:?}"
    );
    let (killed_in, restarted_in) = (
        o.killed_in
            .clone()
            .expect("the transaction open at the kill"),
        o.restarted_in
            .clone()
            .expect("the transaction open at the restart"),
    );
    let fate = |tag: &str| {
        let seen = if o.committed.contains(tag) {
            "committed"
        } else if o.aborted.contains(tag) {
            "aborted"
        } else {
            "unknown"
        };
        format!(
            "{tag} {seen}, {} records visible",
            committed_reads.get(tag).copied().unwrap_or(0)
        )
    };
    println!(
        "open at the kill: {}; open at the restart: {}",
        fate(&killed_in),
        fate(&restarted_in)
    );
    println!(
        "{which:?}: coordinator {coordinator}, (killed, coordinator at the kill) {victim:?}, coordinator after {new_coordinator:?}; {} committed, {} aborted, {} unknown ({:?}), failed after the kill {:?}, {} producer instances; last instance: epoch {e0} -> {e1} over {ended} transactions; {} transactions visible",
        o.committed.len(),
        o.aborted.len(),
        o.unknown.len(),
        o.unknown,
        o.errors_after_kill,
        o.instances,
        committed_reads.len()
    );
}
