//! Replication on three real `potok` processes (issue 18, acceptance 2; issue 17, acceptance 2's
//! controlled shutdown): RF=3 topics with `min.insync.replicas=2`, written by librdkafka (the
//! `rdkafka` crate) with `acks=all` and `acks=1`, under SIGKILL, SIGTERM and SIGSTOP/SIGCONT.
//! Partition state is read with Metadata requests from the client, as applications see it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::kafka::{cluster_client as client, runtime};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(60);
/// Short enough for the fencing of a killed broker to happen within a test.
const SESSION_TIMEOUT_MS: &str = "3000";
const HEARTBEAT_INTERVAL_MS: &str = "300";

/// `(leader, replicas, isr)` of each partition of `topic`, as `bootstrap` answers Metadata.
type Parts = Vec<(i32, Vec<i32>, Vec<i32>)>;

fn partitions(consumer: &BaseConsumer, topic: &str) -> Option<Parts> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    if t.error().is_some() || t.partitions().is_empty() {
        return None;
    }
    let mut parts: Vec<_> = t.partitions().iter().collect();
    parts.sort_by_key(|p| p.id());
    Some(
        parts
            .iter()
            .map(|p| {
                let mut isr = p.isr().to_vec();
                isr.sort_unstable();
                (p.leader(), p.replicas().to_vec(), isr)
            })
            .collect(),
    )
}

fn wait_partitions(
    consumer: &BaseConsumer,
    topic: &str,
    what: &str,
    ok: impl Fn(&Parts) -> bool,
) -> Parts {
    let deadline = Instant::now() + TIMEOUT;
    let mut last = None;
    loop {
        if let Some(p) = partitions(consumer, topic) {
            if ok(&p) {
                return p;
            }
            last = Some(p);
        }
        assert!(Instant::now() < deadline, "{what}: last seen {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metadata_client(bootstrap: &str) -> BaseConsumer {
    client(bootstrap).create().expect("metadata client")
}

/// Creates `topic` (RF=3, `min.insync.replicas=2`) and waits until every replica is in the ISR.
fn create_rf3(c: &Cluster, topic: &str, partitions: i32) -> Parts {
    let bootstrap = c.bootstrap();
    common::kafka::create_topic_retrying(
        &bootstrap,
        &NewTopic::new(topic, partitions, TopicReplication::Fixed(3))
            .set("min.insync.replicas", "2"),
        TIMEOUT,
    );
    let m = metadata_client(&bootstrap);
    wait_partitions(&m, topic, "every replica in the ISR", |p| {
        p.len() == partitions as usize
            && p.iter().all(|(l, r, isr)| *l >= 0 && isr.len() == r.len())
    })
}

fn producer(bootstrap: &str, acks: &str, retries: bool) -> FutureProducer {
    let mut c = client(bootstrap);
    c.set("acks", acks)
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "0");
    if !retries {
        c.set("retries", "0");
    }
    c.create().expect("producer")
}

/// Sends one record and waits for its outcome.
fn send(
    rt: &tokio::runtime::Runtime,
    p: &FutureProducer,
    topic: &str,
    value: &str,
) -> Result<(i32, i64), KafkaError> {
    rt.block_on(
        p.send(
            FutureRecord::<(), str>::to(topic)
                .partition(0)
                .payload(value),
            Duration::from_secs(30),
        ),
    )
    .map(|d| (d.partition, d.offset))
    .map_err(|(e, _)| e)
}

/// Every value in partition 0 of `topic` up to its end, read from `bootstrap`.
fn read_all(bootstrap: &str, topic: &str) -> Vec<String> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "replication-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    let mut next = 0;
    while next < high {
        assert!(Instant::now() < deadline, "read {next} of {high}");
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            next = m.offset() + 1;
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    out
}

fn cluster() -> Cluster {
    Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", SESSION_TIMEOUT_MS),
            ("broker.heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS),
            ("replica.lag.time.max.ms", "2000"),
        ],
    )
}

/// Acceptance 2 (issue 18): RF=3, min.insync.replicas=2, acks=all survives kill -9 of the
/// leader with no acknowledged record lost.
#[test]
fn acks_all_survives_a_leader_kill9_without_losing_acknowledged_records() {
    let mut c = cluster();
    let parts = create_rf3(&c, "survive", 1);
    let leader = parts[0].0;
    let rt = runtime();
    let p = producer(&c.bootstrap(), "all", true);
    let mut acked = Vec::new();
    for i in 0..200 {
        let v = format!("v{i}");
        if send(&rt, &p, "survive", &v).is_ok() {
            acked.push(v);
        }
    }
    assert_eq!(
        acked.len(),
        200,
        "every write before the kill is acknowledged"
    );
    c.kill9(leader);
    let killed = Instant::now();
    // The producer carries on: librdkafka retries until the new leader (from the ISR) takes
    // the writes.
    for i in 200..400 {
        let v = format!("v{i}");
        match send(&rt, &p, "survive", &v) {
            Ok(_) => acked.push(v),
            Err(e) => eprintln!("write {v} failed: {e}"),
        }
    }
    eprintln!(
        "{} of 400 acknowledged; {:?} from the kill to the last write",
        acked.len(),
        killed.elapsed()
    );
    assert!(acked.len() > 300, "writes resume after the failover");
    let m = metadata_client(&c.bootstrap());
    let now = wait_partitions(&m, "survive", "a new leader", |p| {
        p[0].0 >= 0 && p[0].0 != leader
    });
    let survivor = c.node(now[0].0).bootstrap();
    let read: BTreeSet<String> = read_all(&survivor, "survive").into_iter().collect();
    let lost: Vec<_> = acked.iter().filter(|v| !read.contains(*v)).collect();
    assert!(lost.is_empty(), "acknowledged records lost: {lost:?}");
}

/// Acceptance 2 (issue 18): with two brokers down, acks=all is refused with
/// NOT_ENOUGH_REPLICAS and acks=1 still works. The two followers stop by SIGTERM one after
/// the other: a controlled shutdown takes each out of the ISR through the controller while a
/// majority of the three voters still runs (with two voters gone at once no controller could
/// commit the smaller ISR, and acks=all would wait for the dead replicas until it timed out,
/// as in Kafka).
#[test]
fn with_two_brokers_down_acks_all_is_refused_and_acks_1_works() {
    let mut c = cluster();
    let parts = create_rf3(&c, "two-down", 1);
    let leader = parts[0].0;
    let followers: Vec<i32> = parts[0]
        .1
        .iter()
        .copied()
        .filter(|&b| b != leader)
        .collect();
    let rt = runtime();
    let all = producer(&c.node(leader).bootstrap(), "all", false);
    send(&rt, &all, "two-down", "before").expect("acks=all with the full ISR");
    for f in &followers {
        c.terminate(*f, Duration::from_secs(30))
            .expect("the follower exits after SIGTERM");
    }
    let m = metadata_client(&c.node(leader).bootstrap());
    wait_partitions(&m, "two-down", "the ISR down to the leader", |p| {
        p[0].0 == leader && p[0].2 == vec![leader]
    });
    match send(&rt, &all, "two-down", "refused") {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {}
        other => panic!("acks=all with one ISR member: {other:?}"),
    }
    let one = producer(&c.node(leader).bootstrap(), "1", false);
    send(&rt, &one, "two-down", "acks-1").expect("acks=1 with one ISR member");
}

/// Acceptance 2 (issue 18): a SIGSTOPped follower leaves the ISR after
/// replica.lag.time.max.ms (2 s here; the broker session timeout is raised so that the
/// controller does not fence it first) and rejoins after SIGCONT.
#[test]
fn a_paused_follower_leaves_the_isr_and_rejoins_after_it_resumes() {
    let c = Cluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "60000"),
            ("broker.heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS),
            ("replica.lag.time.max.ms", "2000"),
        ],
    );
    let parts = create_rf3(&c, "paused", 1);
    let leader = parts[0].0;
    let follower = parts[0].1.iter().copied().find(|&b| b != leader).unwrap();
    let pid = c.node(follower).pid().expect("follower runs") as libc::pid_t;
    let rt = runtime();
    let p = producer(&c.node(leader).bootstrap(), "1", true);
    // SAFETY: kill(2) on the pid of a child the harness spawned and has not reaped.
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    let stopped = Instant::now();
    let m = metadata_client(&c.node(leader).bootstrap());
    let deadline = Instant::now() + TIMEOUT;
    let mut i = 0;
    loop {
        // Writes keep the leader's log end moving away from the paused follower.
        send(&rt, &p, "paused", &format!("w{i}")).expect("acks=1 write");
        i += 1;
        if partitions(&m, "paused").is_some_and(|p| !p[0].2.contains(&follower)) {
            break;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(pid, libc::SIGCONT) };
            panic!("the paused follower stayed in the ISR");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let left = stopped.elapsed();
    eprintln!("the paused follower left the ISR {left:?} after SIGSTOP");
    unsafe { libc::kill(pid, libc::SIGCONT) };
    assert!(left >= Duration::from_millis(2000), "left after {left:?}");
    wait_partitions(&m, "paused", "the resumed follower back in the ISR", |p| {
        p[0].2.contains(&follower) && p[0].2.len() == 3
    });
}

/// Issue 17 acceptance 2 with replication: SIGTERM on a broker that leads partitions whose
/// followers are in the ISR — Metadata polled every 100 ms never shows leader -1 for a
/// partition it led; the controller moves each to another ISR member before the process exits.
#[test]
fn controlled_shutdown_moves_leadership_without_a_leaderless_moment() {
    let mut c = cluster();
    let parts = create_rf3(&c, "moves", 6);
    let victim = parts[0].0;
    let led: Vec<usize> = (0..parts.len()).filter(|&i| parts[i].0 == victim).collect();
    let observer = c.nodes.iter().map(|n| n.id).find(|&i| i != victim).unwrap();
    let m = metadata_client(&c.node(observer).bootstrap());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let stop = std::sync::Arc::clone(&stop);
        let led = led.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(p) = partitions(&m, "moves") {
                    for &i in &led {
                        seen.push(p[i].0);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    c.terminate(victim, Duration::from_secs(30))
        .expect("the broker exits after SIGTERM");
    assert!(
        c.node(victim)
            .log()
            .contains("controlled shutdown: the controller let this broker go"),
        "exited without the controller's permission"
    );
    // A few more polls after the exit.
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = poller.join().unwrap();
    assert!(seen.len() > led.len() * 5, "polled {} times", seen.len());
    assert!(
        !seen.contains(&-1),
        "a led partition was leaderless: {seen:?}"
    );
    let m = metadata_client(&c.node(observer).bootstrap());
    let now = partitions(&m, "moves").expect("metadata");
    for &i in &led {
        assert!(
            now[i].0 >= 0 && now[i].0 != victim,
            "partition {i}: {:?}",
            now[i]
        );
    }
}

/// Issue 19 (preferred leaders): after a kill -9 and restart moved a partition's leadership
/// off its preferred replica, Kafka's `kafka-leader-election` tool (LeaderElectionCommand, the
/// Java admin client's ElectLeaders) gives every partition back to its preferred replica; asked
/// again, it is told no election is needed.
#[test]
fn kafka_leader_election_tool_restores_preferred_leaders_after_a_restart() {
    let mut c = cluster();
    let parts = create_rf3(&c, "elect", 3);
    let preferred: Vec<i32> = parts.iter().map(|(_, r, _)| r[0]).collect();
    assert!(
        parts.iter().zip(&preferred).all(|((l, _, _), p)| l == p),
        "new partitions are led by their preferred replicas: {parts:?}"
    );
    let victim = preferred[0];
    c.kill9(victim);
    let m = metadata_client(&c.bootstrap());
    wait_partitions(&m, "elect", "a new leader for elect-0", |p| {
        p[0].0 >= 0 && p[0].0 != victim
    });
    c.restart(victim);
    // Back in every ISR, but not leading (automatic rebalancing checks only every
    // leader.imbalance.check.interval.seconds, 300 s by default).
    let before = wait_partitions(&m, "elect", "the restarted broker in every ISR", |p| {
        p.iter().all(|(l, r, isr)| *l >= 0 && isr.len() == r.len())
    });
    assert_ne!(before[0].0, victim, "{before:?}");
    let cp = common::java::kafka_classpath();
    let dir = common::java::repo_root();
    let bootstrap = c.node(victim).bootstrap();
    let tool = |args: &[&str]| {
        let mut all = vec![
            "-cp",
            &cp,
            "org.apache.kafka.tools.LeaderElectionCommand",
            "--bootstrap-server",
            &bootstrap,
            "--election-type",
            "PREFERRED",
        ];
        all.extend(args);
        common::run_program("java", &all, &dir, Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("kafka-leader-election {args:?}: {e}"))
    };
    let out = tool(&["--all-topic-partitions"]);
    println!("{out}");
    assert!(
        out.contains("Successfully completed leader election (PREFERRED)")
            && out.contains("elect-0"),
        "{out}"
    );
    let after = wait_partitions(&m, "elect", "preferred leaders restored", |p| {
        p.iter().zip(&preferred).all(|((l, _, _), pr)| l == pr)
    });
    println!("before {before:?}\nafter {after:?}");
    let out = tool(&["--topic", "elect", "--partition", "0"]);
    println!("{out}");
    assert!(
        out.contains("Valid replica already elected") && out.contains("elect-0"),
        "{out}"
    );
}

/// Issue 19 (preferred leaders): with `auto.leader.rebalance.enable` (the default) the active
/// controller gives partitions back to their preferred replica by itself once it is back in
/// the ISR, every `leader.imbalance.check.interval.seconds` (2 s here); with it off they stay
/// where the failover put them.
#[test]
fn the_controller_restores_preferred_leaders_by_itself_unless_disabled() {
    for auto in ["true", "false"] {
        let mut c = Cluster::start(
            3,
            &[
                ("broker.session.timeout.ms", SESSION_TIMEOUT_MS),
                ("broker.heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS),
                ("replica.lag.time.max.ms", "2000"),
                ("leader.imbalance.check.interval.seconds", "2"),
                ("auto.leader.rebalance.enable", auto),
            ],
        );
        let parts = create_rf3(&c, "auto", 3);
        let preferred: Vec<i32> = parts.iter().map(|(_, r, _)| r[0]).collect();
        let victim = preferred[0];
        c.kill9(victim);
        let m = metadata_client(&c.bootstrap());
        wait_partitions(&m, "auto", "a new leader for auto-0", |p| {
            p[0].0 >= 0 && p[0].0 != victim
        });
        c.restart(victim);
        wait_partitions(&m, "auto", "the restarted broker in every ISR", |p| {
            p.iter().all(|(l, r, isr)| *l >= 0 && isr.len() == r.len())
        });
        if auto == "true" {
            wait_partitions(
                &m,
                "auto",
                "preferred leaders restored by the controller",
                |p| p.iter().zip(&preferred).all(|((l, _, _), pr)| l == pr),
            );
        } else {
            // Three check intervals pass without a move.
            std::thread::sleep(Duration::from_secs(6));
            let now = partitions(&m, "auto").expect("metadata");
            assert_ne!(
                now[0].0, victim,
                "auto.leader.rebalance.enable=false: {now:?}"
            );
        }
    }
}
