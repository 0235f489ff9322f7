//! Transactions on three real `potok` processes (issue 21, acceptance 2's 3-node part): the
//! transaction coordinator of an id is the leader of its `__transaction_state` partition, the
//! partitions of a transaction are led by other brokers, and the coordinator's broker is
//! SIGKILLed while transactions are in flight. The producers are librdkafka's (the `rdkafka`
//! crate); FindCoordinator and ListOffsets are also sent raw, to see what each broker answers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::kafka::cluster_client as client;
use common::txn_cluster::*;
use potok_protocol::ErrorCode;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};

/// Commit and abort on three nodes, the transaction's partitions led by other brokers than its
/// coordinator: the committed records are visible to read_committed, the aborted ones only to
/// read_uncommitted, and every partition's last stable offset reaches its high watermark.
#[test]
fn commit_and_abort_work_with_partitions_led_by_other_brokers() {
    let c = cluster();
    create_topic(&c);
    let id = "simple-txn";
    let p = transactional_producer(&c.bootstrap(), id);
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let ls = leaders(&c.node(1).bootstrap());
    assert!(
        ls.values().any(|l| *l != coordinator),
        "every partition is led by the coordinator {coordinator}: {ls:?}"
    );
    run_txn(&p, "c1", 20, true).expect("first commit");
    run_txn(&p, "a1", 20, false).expect("abort");
    run_txn(&p, "c2", 20, true).expect("second commit");
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let committed = read_all(&c.bootstrap(), "read_committed");
    let uncommitted = read_all(&c.bootstrap(), "read_uncommitted");
    let count = |vs: &[String], tag: &str| vs.iter().filter(|v| v.starts_with(tag)).count();
    let per_txn = 20 * PARTITIONS as usize;
    assert_eq!(count(&committed, "c1:"), per_txn, "{committed:?}");
    assert_eq!(count(&committed, "c2:"), per_txn);
    assert_eq!(
        count(&committed, "a1:"),
        0,
        "aborted records read_committed"
    );
    assert_eq!(count(&uncommitted, "a1:"), per_txn);
    assert_eq!(
        count(&uncommitted, "c1:") + count(&uncommitted, "c2:"),
        2 * per_txn
    );
}

/// What one producer thread saw of its transactions.
#[derive(Debug, Default)]
struct Outcomes {
    /// Transactions whose commit librdkafka acknowledged.
    committed: BTreeSet<String>,
    /// Transactions committed after the kill.
    committed_after_kill: usize,
}

/// Transactions in flight from several producers whose ids the same broker coordinates, each
/// spanning partitions led by different brokers; the coordinator's broker is SIGKILLed. Then
/// every transaction is entirely visible or entirely invisible to read_committed, every
/// acknowledged commit is visible, the producers commit again through the new coordinator, and
/// every partition's last stable offset reaches its high watermark.
#[test]
fn a_kill_9_of_the_transaction_coordinator_leaves_every_transaction_whole() {
    kill_during_transactions(Victim::Coordinator);
}

/// As above, the SIGKILLed broker being one that leads a partition of the transactions but
/// does not coordinate them: the coordinator re-sends its markers to the partition's new leader.
#[test]
fn a_kill_9_of_a_partition_leader_that_is_not_the_coordinator_leaves_every_transaction_whole() {
    kill_during_transactions(Victim::PartitionLeader);
}

/// Which broker [`kill_during_transactions`] kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Coordinator,
    PartitionLeader,
}

fn kill_during_transactions(victim: Victim) {
    let mut c = cluster();
    create_topic(&c);
    // Ids that live in the same `__transaction_state` partition, so one broker coordinates
    // them all.
    let ids: Vec<String> = (0..)
        .map(|i| format!("eos-{i}"))
        .filter(|id| state_partition_of(id) == 0)
        .take(3)
        .collect();
    let per_partition = 5;
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new(BTreeMap::<String, Outcomes>::new()));
    let bootstrap = c.bootstrap();
    let threads: Vec<_> = ids
        .iter()
        .map(|id| {
            let (id, stop, killed, outcomes, bootstrap) = (
                id.clone(),
                Arc::clone(&stop),
                Arc::clone(&killed),
                Arc::clone(&outcomes),
                bootstrap.clone(),
            );
            std::thread::spawn(move || {
                let mut p = transactional_producer(&bootstrap, &id);
                let mut n = 0;
                while !stop.load(Ordering::Acquire) {
                    let tag = format!("{id}#{n}");
                    n += 1;
                    let after_kill = killed.load(Ordering::Acquire);
                    match run_txn(&p, &tag, per_partition, true) {
                        Ok(()) => {
                            let mut o = outcomes.lock().unwrap();
                            let o = o.entry(id.clone()).or_default();
                            o.committed.insert(tag);
                            if after_kill {
                                o.committed_after_kill += 1;
                            }
                        }
                        Err(e) => {
                            eprintln!("{tag}: {e}; starting over with a new producer");
                            // Its outcome is unknown (the commit may have gone through); the
                            // check below only needs it whole or absent.
                            drop(p);
                            p = transactional_producer(&bootstrap, &id);
                        }
                    }
                }
            })
        })
        .collect();
    // Let every producer commit a few transactions, then kill their coordinator mid-stream.
    let deadline = Instant::now() + TIMEOUT;
    while outcomes
        .lock()
        .unwrap()
        .values()
        .filter(|o| o.committed.len() >= 3)
        .count()
        < ids.len()
    {
        assert!(Instant::now() < deadline, "the producers never got going");
        std::thread::sleep(Duration::from_millis(100));
    }
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], &ids[0], None);
    let ls = leaders(&c.node(1).bootstrap());
    assert!(
        ls.values().any(|l| *l != coordinator),
        "every partition is led by the coordinator {coordinator}: {ls:?}"
    );
    let killed_node = match victim {
        Victim::Coordinator => coordinator,
        Victim::PartitionLeader => *ls
            .values()
            .find(|l| **l != coordinator)
            .expect("checked above"),
    };
    c.kill9(killed_node);
    killed.store(true, Ordering::Release);
    let alive: Vec<i32> = (1..=3).filter(|n| *n != killed_node).collect();
    let new_coordinator = agreed_txn_coordinator(&c, &alive, &ids[0], Some(killed_node));
    if victim == Victim::PartitionLeader {
        assert_eq!(new_coordinator, coordinator, "the coordinator stays");
    }
    // The producers go on through the new coordinator.
    let deadline = Instant::now() + TIMEOUT;
    while outcomes
        .lock()
        .unwrap()
        .values()
        .filter(|o| o.committed_after_kill >= 3)
        .count()
        < ids.len()
    {
        assert!(
            Instant::now() < deadline,
            "the producers did not commit through the new coordinator: {:?}\n--- node {new_coordinator} ---\n{}",
            outcomes.lock().unwrap(),
            tail(&c.node(new_coordinator).log())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().expect("producer thread");
    }
    wait_lso_reaches_hw(&c, &alive);
    let survivors = alive
        .iter()
        .map(|n| c.node(*n).bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let values = read_all(&survivors, "read_committed");
    // Records per transaction read under read_committed.
    let mut per_txn: BTreeMap<String, usize> = BTreeMap::new();
    for v in &values {
        let tag = v.split(':').next().expect("tag");
        *per_txn.entry(tag.to_string()).or_default() += 1;
    }
    let whole = per_partition * PARTITIONS as usize;
    let partial: Vec<_> = per_txn.iter().filter(|(_, n)| **n != whole).collect();
    assert!(
        partial.is_empty(),
        "transactions read partly (or twice) under read_committed: {partial:?}"
    );
    let outcomes = outcomes.lock().unwrap();
    println!(
        "killed node {killed_node} ({victim:?}), coordinator {coordinator} then {new_coordinator}; {} transactions read whole, commits acknowledged: {:?}",
        per_txn.len(),
        outcomes
            .iter()
            .map(|(id, o)| (id, o.committed.len(), o.committed_after_kill))
            .collect::<Vec<_>>()
    );
    for (id, o) in outcomes.iter() {
        for tag in &o.committed {
            assert!(
                per_txn.contains_key(tag),
                "{id}: the acknowledged commit of {tag} is not visible"
            );
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// KIP-890 part 1 with the coordinator on another broker than the partition's leader: the
/// leader has the coordinator verify a transactional batch before appending it, so a batch of
/// a partition not in the transaction, and a late write after the transaction committed (which
/// would otherwise open a transaction nothing ends and hold the last stable offset forever),
/// are refused with INVALID_TXN_STATE, while the transaction's own write goes in.
#[test]
fn a_late_transactional_write_to_a_partition_led_by_another_broker_is_refused() {
    let c = cluster();
    create_topic(&c);
    let id = "late-writer";
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let ls = leaders(&c.node(coordinator).bootstrap());
    let (&partition, &leader) = ls
        .iter()
        .find(|(_, l)| **l != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let coord = c.node(coordinator).bootstrap();
    let lead = c.node(leader).bootstrap();
    let producer = init_producer(&coord, id);
    let invalid_txn_state = ErrorCode::InvalidTxnState.code();
    assert_eq!(
        produce_txn(&lead, id, producer, 0, partition),
        invalid_txn_state,
        "a write to a partition not in the transaction"
    );
    assert_eq!(add_partition(&coord, id, producer, partition), 0);
    assert_eq!(produce_txn(&lead, id, producer, 0, partition), 0);
    let r = end_txn(&coord, 3, id, producer, true);
    assert_eq!(r.error_code, 0, "{r:?}");
    // The COMMIT marker reaches the partition through the network.
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let hw = latest(&lead, partition, 0).expect("high watermark");
    assert_eq!(
        produce_txn(&lead, id, producer, 1, partition),
        invalid_txn_state,
        "the late write of the committed transaction"
    );
    assert_eq!(latest(&lead, partition, 0), Ok(hw), "nothing was appended");
    assert_eq!(
        latest(&lead, partition, 1),
        Ok(hw),
        "no transaction holds the LSO"
    );
}

/// KIP-447 on three nodes: offsets sent to a transaction (`send_offsets_to_transaction`) for a
/// group whose coordinator is another broker than the transaction's are verified with the
/// transaction coordinator, become the group's committed offsets with the commit, and are
/// dropped with an abort.
#[test]
fn offsets_sent_to_a_transaction_commit_and_abort_with_it_across_brokers() {
    let c = cluster();
    create_topic(&c);
    let id = "offsets-txn";
    let p = transactional_producer(&c.bootstrap(), id);
    let txn_coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    // A group whose coordinator (its `__consumer_offsets` leader) is another broker.
    let deadline = Instant::now() + TIMEOUT;
    let group = loop {
        let found = (0..30).map(|i| format!("eos-group-{i}")).find(|g| {
            matches!(find_coordinator(&c.node(1).bootstrap(), 0, g), Ok(n) if n != txn_coordinator)
        });
        if let Some(g) = found {
            break g;
        }
        assert!(Instant::now() < deadline, "no group coordinated elsewhere");
        std::thread::sleep(Duration::from_millis(300));
    };
    let consumer: BaseConsumer = client(&c.bootstrap())
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.group_metadata().expect("group metadata");
    let committed = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
            .expect("offsets");
        tpl
    };
    let send = |offset: i64, commit: bool| {
        p.begin_transaction().expect("begin");
        p.send(BaseRecord::<(), str>::to(TOPIC).partition(1).payload("x"))
            .map_err(|(e, _)| e)
            .expect("send");
        p.send_offsets_to_transaction(&committed(offset), &metadata, Duration::from_secs(60))
            .expect("send_offsets_to_transaction");
        if commit {
            p.commit_transaction(Duration::from_secs(60))
                .expect("commit");
        } else {
            p.flush(Duration::from_secs(60)).expect("flush");
            p.abort_transaction(Duration::from_secs(60)).expect("abort");
        }
    };
    send(42, true);
    send(99, false);
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got = consumer
            .committed_offsets(tpl.clone(), Timeout::After(Duration::from_secs(10)))
            .expect("committed offsets");
        let offset = got
            .find_partition(TOPIC, 0)
            .map(|e| e.offset())
            .expect("partition 0");
        if offset == Offset::Offset(42) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the committed offset of {group} is {offset:?}, not 42"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// EndTxn v5 to `addr`: `(error, producer id, producer epoch)` of the answer.
fn end_txn_v5(addr: &str, id: &str, producer: (i64, i16), commit: bool) -> (i16, i64, i16) {
    let r = end_txn(addr, 5, id, producer, commit);
    (r.error_code, r.producer_id, r.producer_epoch)
}

/// Produce v12 until it is not refused with a retriable code (the coordinator still writing
/// the previous transaction's markers answers CONCURRENT_TRANSACTIONS, as in Kafka).
fn produce_v12(addr: &str, id: &str, producer: (i64, i16), seq: i32, partition: i32) -> i16 {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let code = produce_txn_at(addr, 12, id, producer, seq, partition);
        let retriable = [
            ErrorCode::ConcurrentTransactions.code(),
            ErrorCode::NotEnoughReplicas.code(),
        ];
        if !retriable.contains(&code) || Instant::now() > deadline {
            return code;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// KIP-890 part 2 on three nodes: Produce v12 to a partition led by another broker than the
/// coordinator adds it to the transaction through the coordinator's broker (and one led by the
/// coordinator's broker adds it there), EndTxn v5 bumps the epoch, the markers carry it to the
/// other leaders, and a delayed EndTxn of the earlier transaction is fenced while the next one
/// is open.
#[test]
fn transaction_version_2_adds_partitions_across_brokers_and_fences_a_delayed_end_txn() {
    let c = cluster();
    create_topic(&c);
    let id = "tv2-cluster";
    let coordinator = agreed_txn_coordinator(&c, &[1, 2, 3], id, None);
    let ls = leaders(&c.node(coordinator).bootstrap());
    let (&remote, &leader) = ls
        .iter()
        .find(|(_, l)| **l != coordinator)
        .expect("a partition led by another broker than the coordinator");
    let coord = c.node(coordinator).bootstrap();
    let lead = c.node(leader).bootstrap();
    let (pid, e0) = init_producer(&coord, id);
    assert_eq!(produce_v12(&lead, id, (pid, e0), 0, remote), 0);
    if let Some((&local, _)) = ls.iter().find(|(_, l)| **l == coordinator) {
        assert_eq!(produce_v12(&coord, id, (pid, e0), 0, local), 0);
    }
    assert_eq!(
        end_txn_v5(&coord, id, (pid, e0), true),
        (0, pid, e0 + 1),
        "EndTxn v5 answers the bumped epoch"
    );
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    let e1 = e0 + 1;
    assert_eq!(produce_v12(&lead, id, (pid, e1), 0, remote), 0);
    let hw = latest(&lead, remote, 0).expect("high watermark");
    assert!(
        latest(&lead, remote, 1).expect("last stable offset") < hw,
        "the open transaction holds the LSO"
    );
    for commit in [true, false] {
        assert_eq!(
            end_txn_v5(&coord, id, (pid, e0), commit).0,
            ErrorCode::ProducerFenced.code(),
            "the delayed EndTxn of the first transaction"
        );
    }
    assert!(latest(&lead, remote, 1).expect("last stable offset") < hw);
    assert_eq!(end_txn_v5(&coord, id, (pid, e1), false), (0, pid, e1 + 1));
    wait_lso_reaches_hw(&c, &[1, 2, 3]);
    // Two records and two markers. The LSO can equal the high watermark before the ABORT
    // marker is replicated (the leader closed the transaction at the append), so wait for it.
    let hw = 4;
    let deadline = Instant::now() + TIMEOUT;
    while latest(&lead, remote, 0) != Ok(hw) {
        assert!(Instant::now() < deadline, "{:?}", latest(&lead, remote, 0));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        produce_txn_at(&lead, 12, id, (pid, e1), 1, remote),
        ErrorCode::InvalidProducerEpoch.code(),
        "a late write of the aborted transaction"
    );
    assert_eq!(latest(&lead, remote, 0), Ok(hw), "nothing was appended");
    let committed = read_all(&c.bootstrap(), "read_committed");
    let uncommitted = read_all(&c.bootstrap(), "read_uncommitted");
    assert_eq!(
        uncommitted.len() - committed.len(),
        1,
        "only the aborted record is hidden: {committed:?} / {uncommitted:?}"
    );
}
