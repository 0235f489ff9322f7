//! The Jepsen-style fault harness (issue 18) against real `potok` processes: producers with
//! unique values (`acks=all`, and a run with idempotence), a consumer group committing offsets,
//! nemeses (SIGKILL + restart of a random node, of the busy partition's leader and of the active
//! controller; SIGSTOP/SIGCONT pauses; on the cluster, network partitions: a random node, the
//! active controller or the busy partition's leader cut from its peers, and a majority/minority
//! split), a final drain, and `potok_chaos::check` on the history.
//!
//! CI runs short schedules; `scripts/chaos-long` runs long ones with `POTOK_CHAOS_SECS` and
//! `POTOK_CHAOS_SEED`. Each run prints one Markdown row for `docs/reliability.md`.
//!
//! Today a topic's partitions live on one broker each (replication is not wired into the broker
//! yet), so on the cluster a killed broker's partitions are unavailable until it returns: those
//! writes end acknowledged after the restart, or indeterminate, never lost. The checker and the
//! nemeses do not change when replication lands; only the topics' replication factor does.

#[path = "../common/mod.rs"]
mod common;
mod nemesis;
mod workload;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use nemesis::{run, RunConfig};

/// Fault-injection seconds and seed: CI defaults, or the long script's environment.
fn schedule(default_secs: u64, default_seed: u64) -> (Duration, u64) {
    let secs = std::env::var("POTOK_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_secs);
    let seed = std::env::var("POTOK_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default_seed);
    (Duration::from_secs(secs), seed)
}

fn report(cfg: &RunConfig, r: &nemesis::RunResult) {
    println!("CHAOS-ROW {}", r.row(cfg));
    for a in r.report.anomalies.iter().take(20) {
        println!("  anomaly: {a}");
        // A duplicate's writers tell a broker that failed to deduplicate (one producer id and
        // epoch twice) from a copy the log could not attribute.
        if let potok_chaos::Anomaly::Duplicate { at, .. } = a {
            let writers: Vec<_> = at.iter().map(|pos| r.history.writers.get(pos)).collect();
            println!("    writers: {writers:?}");
        }
    }
}

/// Every node answers Metadata with the same topic partitions, leaders and leader epochs, and
/// the same active controller, within 30 s of the last fault.
fn assert_metadata_consistent(c: &Cluster, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let views: Vec<_> = c
            .nodes
            .iter()
            .map(|n| {
                common::wire::metadata(&n.bootstrap()).map(|m| {
                    let mut parts: Vec<_> = m
                        .topics
                        .iter()
                        .filter(|t| t.name.as_deref() == Some(topic))
                        .flat_map(|t| t.partitions.iter())
                        .map(|p| (p.partition_index, p.leader_id, p.leader_epoch, p.error_code))
                        .collect();
                    parts.sort_unstable();
                    (m.controller_id, parts)
                })
            })
            .collect();
        if views.iter().all(|v| v.is_some() && *v == views[0]) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "metadata differs between nodes: {views:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn single_node_kill_and_pause_lose_nothing_acknowledged() {
    let (duration, seed) = schedule(40, 1);
    let mut b = common::Broker::builder()
        .set("group.initial.rebalance.delay.ms", "0")
        .start();
    for idempotent in [false, true] {
        let cfg = RunConfig {
            seed,
            duration: duration / 2,
            idempotent,
            partitions: 3,
            rf: 1,
            name: format!("single-{}", if idempotent { "idem" } else { "plain" }),
            plant_loss: false,
            availability: nemesis::availability_bound(),
        };
        let r = run(&mut b, &cfg);
        report(&cfg, &r);
        assert!(
            r.report.stats.acked > 100,
            "too few acknowledged writes: {:?}",
            r.report.stats
        );
        assert!(r.total_faults() >= 5, "{:?}", r.faults);
        assert!(r.report.ok(), "anomalies: {:#?}", r.report.anomalies);
        assert!(r.producer_fatal.is_empty(), "{:?}", r.producer_fatal);
        // The harness catches a planted loss in the same history.
        let mut planted = r.history.clone();
        let (p, o) = planted
            .produces
            .iter()
            .find_map(|p| match p.outcome {
                potok_chaos::Outcome::Ack { partition, offset } => Some((partition, offset)),
                _ => None,
            })
            .expect("an acknowledged write");
        planted
            .drain
            .get_mut(&p)
            .unwrap()
            .retain(|&(off, _)| off != o);
        let kinds = potok_chaos::check(&planted).counts();
        assert_eq!(kinds.get("lost"), Some(&1), "{kinds:?}");
    }
}

/// The 3-node run. With `partitions`, in network namespaces with every nemesis (network cuts
/// and clock jumps too) where the process may make them (root, as in CI), else on 127.0.0.1
/// without those nemeses (the reason printed); without, on 127.0.0.1 with kills and pauses.
fn cluster_run(idempotent: bool, default_seed: u64, partitions: bool) {
    let (duration, seed) = schedule(if partitions { 90 } else { 50 }, default_seed);
    // A node killed and restarted serves again only once the controller let its old
    // incarnation's session expire and unfenced the new one (Kafka's DUPLICATE_BROKER_REGISTRATION
    // until then), and partitions whose only in-sync replica it was wait for it as long. The
    // session is shortened from Kafka's 9 s default so that this fits the availability bound;
    // heartbeats every 500 ms keep a loaded machine from fencing live brokers.
    let settings = [
        ("group.initial.rebalance.delay.ms", "0"),
        ("broker.session.timeout.ms", "5000"),
        ("broker.heartbeat.interval.ms", "500"),
    ];
    let mut c = match common::netns::unavailable() {
        None if partitions => Cluster::start_netns(3, &settings, true),
        Some(why) if partitions => {
            println!("partition and clock nemeses skipped: {why}");
            Cluster::start(3, &settings)
        }
        _ => Cluster::start(3, &settings),
    };
    let name = match (idempotent, c.net.is_some()) {
        (true, _) => "cluster-idem",
        (false, true) => "cluster-net",
        (false, false) => "cluster",
    };
    let cfg = RunConfig {
        seed,
        duration,
        idempotent,
        partitions: 3,
        // Replicated as users run Kafka for durability: RF=3 with min.insync.replicas=2 and
        // acks=all, so every kill or cut of a leader is a failover the checker judges.
        rf: 3,
        name: name.into(),
        plant_loss: false,
        availability: nemesis::availability_bound(),
    };
    let r = run(&mut c, &cfg);
    report(&cfg, &r);
    assert!(
        r.report.stats.acked > 100,
        "too few acknowledged writes: {:?}",
        r.report.stats
    );
    let min_faults = if partitions { 20 } else { 10 };
    assert!(r.total_faults() >= min_faults, "{:?}", r.faults);
    if std::env::var_os("POTOK_CHAOS_NEMESES").is_none() {
        assert_eq!(r.kinds, if c.net.is_some() { 9 } else { 4 });
    }
    assert_eq!(
        r.faults.len(),
        r.kinds,
        "not every nemesis ran: {:?}",
        r.faults
    );
    assert!(r.report.ok(), "anomalies: {:#?}", r.report.anomalies);
    assert!(r.producer_fatal.is_empty(), "{:?}", r.producer_fatal);
    // Until e62e21f the group APIs were absent on cluster members and these sessions read
    // nothing ("0 polled"); now they are real group members of a coordinator that moves with
    // its `__consumer_offsets` leader. What that exposed is in docs/reliability.md, "The
    // 3-node runs with consumer groups": leaders re-proposing fenced followers into the ISR on
    // every fetch (fixed by d79d356) and restarted nodes serving before they were unfenced,
    // whose Metadata answers left librdkafka's consumers without brokers (fixed by the
    // start-up gate's second step, docs/replication.md). The drain (no group) checks the logs
    // either way.
    assert_metadata_consistent(&c, &format!("chaos-{name}"));
}

#[test]
fn three_node_cluster_kill_controller_leader_and_pause() {
    cluster_run(false, 2, false);
}

/// Every nemesis on 3 nodes in network namespaces (CI runs as root). Before the replication
/// data path (roles applied from the metadata image) it found partitions left unreadable after
/// the faults (docs/reliability.md, "Findings").
#[test]
fn three_node_cluster_all_nemeses() {
    cluster_run(false, 5, true);
}

/// Idempotent producers bootstrapped at different nodes: their producer ids come from blocks
/// the active controller hands out (AllocateProducerIds), so no two share an id. (With per-node
/// allocation two producers both got id 0 and the partition leader answered the second one
/// OUT_OF_ORDER_SEQUENCE_NUMBER, librdkafka's fatal "sequence desynchronization".)
#[test]
fn three_node_cluster_idempotent() {
    cluster_run(true, 4, false);
}

/// The harness's own switch: one acknowledged value dropped from the drain must be reported.
#[test]
fn planted_loss_is_reported() {
    let mut b = common::Broker::start();
    let cfg = RunConfig {
        seed: 3,
        duration: Duration::from_secs(4),
        idempotent: false,
        partitions: 1,
        rf: 1,
        name: "planted".into(),
        plant_loss: true,
        availability: nemesis::availability_bound(),
    };
    let r = run(&mut b, &cfg);
    report(&cfg, &r);
    assert_eq!(
        r.report.counts().get("lost"),
        Some(&1),
        "{:?}",
        r.report.anomalies
    );
}

/// The checker excuses an idempotent run's duplicate only when the brokers' logs name a
/// different writer for every copy. Two idempotent producers sending the same value make two
/// copies with different producer ids, which are named and excused; one plain producer sending
/// it twice makes two copies without a producer id (both -1), which stay a duplicate.
#[test]
fn duplicates_are_excused_only_with_distinct_writers_read_from_the_log() {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    let b = common::Broker::start();
    let send_twice = |topic: &str, idempotent: bool, producers: usize| {
        workload::create_topic(&b.bootstrap(), topic, 1, 1);
        // Two copies of one value: from `producers` producers, `2 / producers` each.
        for _ in 0..producers {
            let p: BaseProducer = ClientConfig::new()
                .set("bootstrap.servers", b.bootstrap())
                .set("enable.idempotence", idempotent.to_string())
                .set("acks", "all")
                .create()
                .expect("producer");
            for _ in 0..2 / producers {
                p.send(BaseRecord::<(), str>::to(topic).payload("42").partition(0))
                    .expect("enqueue");
            }
            p.flush(Duration::from_secs(30)).expect("flush");
        }
        let w = workload::Workload {
            bootstrap: b.bootstrap(),
            topic: topic.into(),
            partitions: 1,
            idempotent: true,
            group: format!("{topic}-g"),
        };
        let mut h = potok_chaos::History {
            idempotent: true,
            // The value was sent: the checker's only question is the second copy.
            produces: vec![potok_chaos::Produce {
                value: 42,
                outcome: potok_chaos::Outcome::Indeterminate,
                at_ms: 0,
            }],
            drain: workload::drain(&w),
            ..Default::default()
        };
        assert_eq!(h.drain[&0], vec![(0, 42), (1, 42)]);
        h.writers = workload::writers_of_duplicates(&h, &[b.data_dir()], topic);
        (h.writers.clone(), potok_chaos::check(&h))
    };

    let (writers, r) = send_twice("dup-two-producers", true, 2);
    assert_eq!(writers.len(), 2, "{writers:?}");
    assert_ne!(writers[&(0, 0)], writers[&(0, 1)]);
    assert!(writers.values().all(|w| w.producer_id >= 0 && w.epoch == 0));
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
    assert_eq!(r.stats.duplicated_by_new_epoch, 1);

    let (writers, r) = send_twice("dup-one-plain-producer", false, 1);
    assert_eq!(writers[&(0, 0)], writers[&(0, 1)]);
    assert_eq!(writers[&(0, 0)].producer_id, -1);
    assert_eq!(r.counts().get("duplicate"), Some(&1), "{:?}", r.anomalies);
}
