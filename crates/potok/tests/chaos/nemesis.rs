//! The nemeses of the fault harness and the run that drives them: SIGKILL and restart of a
//! node (a random one, the leader of the busy partition, or the active controller),
//! SIGSTOP/SIGCONT pauses (GC-like stalls), and, on a cluster in network namespaces, network
//! partitions: a node (random, the active controller, the busy partition's leader) cut from
//! its peers while clients still reach it, and a majority/minority split where the minority is
//! cut from everyone, clients included. Faults are sequential: each is healed before the next,
//! so a run ends with every node running and connected.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use potok_chaos::{check, History, Report, Timeline};

use super::common::cluster::Cluster;
use super::common::Broker;
use super::workload::{self, Workload};

/// What a nemesis can do to the processes under test.
pub trait Target {
    /// The node ids.
    fn ids(&self) -> Vec<i32>;
    /// `bootstrap.servers` for the clients.
    fn bootstrap(&self) -> String;
    /// SIGKILLs node `id` and reaps it.
    fn kill(&mut self, id: i32);
    /// Starts node `id` again (after a kill), waiting until it listens.
    fn restart(&mut self, id: i32);
    /// The running process of node `id`.
    fn pid(&self, id: i32) -> Option<u32>;
    /// Every node's data directory (read only, to name the writers of duplicated records).
    fn data_dirs(&self) -> Vec<std::path::PathBuf>;
    /// Nodes worth aiming at, with why (the leader of the busy partition, the active
    /// controller); asked only while every node runs.
    fn targets(&self, _topic: &str) -> Vec<(&'static str, i32)> {
        Vec::new()
    }
    /// Whether the network between nodes can be cut ([`Target::cut`], [`Target::disconnect`]).
    fn can_cut(&self) -> bool {
        false
    }
    /// Cuts every node of `a` from every node of `b`, both directions; clients still reach all.
    fn cut(&mut self, _a: &[i32], _b: &[i32]) {}
    /// Cuts node `id` from everyone, clients included.
    fn disconnect(&mut self, _id: i32) {}
    /// Undoes every cut.
    fn heal(&mut self) {}
    /// Whether node clocks can be moved ([`Target::jump_clock`]).
    fn can_jump_clock(&self) -> bool {
        false
    }
    /// Sets node `id`'s wall clock to the real time plus `offset_secs`.
    fn jump_clock(&mut self, _id: i32, _offset_secs: i64) {}
}

impl Target for Broker {
    fn ids(&self) -> Vec<i32> {
        vec![1]
    }
    fn bootstrap(&self) -> String {
        Broker::bootstrap(self)
    }
    fn kill(&mut self, _: i32) {
        self.sigkill();
    }
    fn restart(&mut self, _: i32) {
        Broker::restart(self);
    }
    fn pid(&self, _: i32) -> Option<u32> {
        Broker::pid(self)
    }
    fn data_dirs(&self) -> Vec<std::path::PathBuf> {
        vec![self.data_dir()]
    }
}

impl Target for Cluster {
    fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }
    fn data_dirs(&self) -> Vec<std::path::PathBuf> {
        self.nodes.iter().map(|n| n.data_dir()).collect()
    }
    fn bootstrap(&self) -> String {
        Cluster::bootstrap(self)
    }
    fn kill(&mut self, id: i32) {
        self.kill9(id);
    }
    fn restart(&mut self, id: i32) {
        Cluster::restart(self, id);
    }
    fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).pid()
    }
    fn targets(&self, topic: &str) -> Vec<(&'static str, i32)> {
        let mut out = Vec::new();
        // The first node that answers (a restarted one may not yet).
        let answer = self
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .find_map(|n| super::common::wire::metadata(&n.bootstrap()));
        if let Some(m) = answer {
            out.push(("controller", m.controller_id));
            if let Some(p) = m
                .topics
                .iter()
                .find(|t| t.name.as_deref() == Some(topic))
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
            {
                out.push(("busy-leader", p.leader_id));
            }
        }
        out.retain(|&(_, id)| self.ids().contains(&id));
        out
    }
    fn can_cut(&self) -> bool {
        self.net.is_some()
    }
    fn cut(&mut self, a: &[i32], b: &[i32]) {
        self.net
            .as_mut()
            .expect("a cluster in namespaces")
            .cut(a, b);
    }
    fn disconnect(&mut self, id: i32) {
        self.net
            .as_mut()
            .expect("a cluster in namespaces")
            .disconnect(id);
    }
    fn heal(&mut self) {
        if let Some(net) = self.net.as_mut() {
            net.heal();
        }
    }
    fn can_jump_clock(&self) -> bool {
        self.has_fake_clock()
    }
    fn jump_clock(&mut self, id: i32, offset_secs: i64) {
        Cluster::jump_clock(self, id, offset_secs);
    }
}

/// Which node a fault aims at.
#[derive(Debug, Clone, Copy)]
enum Aim {
    Random,
    Controller,
    BusyLeader,
}

/// One kind of fault.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Pause,
    Kill(Aim),
    Isolate(Aim),
    Split,
    ClockJump,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Pause => "pause",
            Fault::Kill(Aim::Random) => "kill-random",
            Fault::Kill(Aim::Controller) => "kill-controller",
            Fault::Kill(Aim::BusyLeader) => "kill-busy-leader",
            Fault::Isolate(Aim::Random) => "isolate-random",
            Fault::Isolate(Aim::Controller) => "isolate-controller",
            Fault::Isolate(Aim::BusyLeader) => "isolate-busy-leader",
            Fault::Split => "split",
            Fault::ClockJump => "clock-jump",
        }
    }

    /// The kinds `target` supports, in the order they take turns.
    fn all_for<T: Target>(target: &T) -> Vec<Fault> {
        let mut kinds = vec![Fault::Pause, Fault::Kill(Aim::Random)];
        if target.ids().len() > 1 {
            kinds.extend([Fault::Kill(Aim::Controller), Fault::Kill(Aim::BusyLeader)]);
        }
        if target.can_cut() {
            kinds.extend([
                Fault::Isolate(Aim::Random),
                Fault::Isolate(Aim::Controller),
                Fault::Isolate(Aim::BusyLeader),
                Fault::Split,
            ]);
        }
        if target.can_jump_clock() {
            kinds.push(Fault::ClockJump);
        }
        kinds
    }
}

/// A small deterministic generator (xorshift64*), so a seed replays the same fault schedule.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `lo..hi` (`hi > lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on the pid of a child process that the harness started and still owns.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Sends SIGCONT on drop, so a panic during a pause never leaves a process stopped.
struct Paused(u32);

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, libc::SIGCONT);
    }
}

/// The settings of one run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The seed of the fault schedule.
    pub seed: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Idempotent producers.
    pub idempotent: bool,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Its replication factor.
    pub rf: i32,
    /// A name unique to the run (topic and group).
    pub name: String,
    /// Test-only: drop one acknowledged value from the drain before checking, to show that the
    /// harness reports a loss.
    pub plant_loss: bool,
    /// The availability bound: the longest time without an acknowledged write allowed while no
    /// fault is active ([`potok_chaos::Timeline::bound_ms`]). The run ends with a fault-free
    /// phase longer than it, and long runs hold one every [`QUIET_EVERY`] faults.
    pub availability: Duration,
}

/// Faults between two fault-free phases (each the availability bound plus [`QUIET_MARGIN`]),
/// so a long run judges availability along the way, not only at its end.
pub const QUIET_EVERY: usize = 50;

/// How much longer than the availability bound a fault-free phase lasts.
const QUIET_MARGIN: Duration = Duration::from_secs(5);

/// The availability bound of the runs: `POTOK_CHAOS_AVAILABILITY_SECS`, else 10 s. After a
/// heal, a 3-node cluster elects a controller within about a second (Raft election timeout) and
/// moves leaders off a fenced broker within its session timeout; the clients refresh metadata
/// every second and retry every 50 ms. Ten seconds leaves room for all of that on a loaded
/// 2-core machine and is still short against the producers' 15 s message timeout.
pub fn availability_bound() -> Duration {
    Duration::from_secs(
        std::env::var("POTOK_CHAOS_AVAILABILITY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10),
    )
}

/// The result of a run.
#[derive(Debug)]
pub struct RunResult {
    /// The recorded history.
    pub history: History,
    /// The checker's verdict.
    pub report: Report,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Fatal producer errors (the client gave up; with idempotence, e.g. a sequence error).
    pub producer_fatal: Vec<String>,
    /// How many kinds of fault took turns.
    pub kinds: usize,
}

impl RunResult {
    /// All faults injected.
    pub fn total_faults(&self) -> usize {
        self.faults.values().sum()
    }

    /// One Markdown table row: name | seed | seconds | faults by kind | ops | anomalies.
    pub fn row(&self, cfg: &RunConfig) -> String {
        let s = &self.report.stats;
        let faults = self
            .faults
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let anomalies = if self.report.ok() && self.producer_fatal.is_empty() {
            "0".to_string()
        } else {
            format!(
                "{} ({:?})",
                self.report.anomalies.len(),
                self.report.counts()
            )
        };
        format!(
            "| {} | {} | {} | {:.0} | {} ({}) | {} acked, {} indeterminate ({} stored), {} failed; {} polled, {} drained, {} commits, {} duplicated{} | {} |",
            cfg.name,
            if cfg.idempotent { "idempotent" } else { "acks=all" },
            cfg.seed,
            self.elapsed.as_secs_f64(),
            self.total_faults(),
            faults,
            s.acked,
            s.indeterminate,
            s.indeterminate_stored,
            s.failed,
            s.polled,
            s.drained,
            s.commits,
            s.duplicated,
            if s.duplicated_by_new_epoch > 0 {
                format!(" ({} re-sent by the client under a new epoch)", s.duplicated_by_new_epoch)
            } else {
                String::new()
            },
            anomalies
        )
    }
}

/// Runs the workload against `target` while injecting faults, drains, and checks.
pub fn run<T: Target>(target: &mut T, cfg: &RunConfig) -> RunResult {
    let started = Instant::now();
    let w = Workload {
        bootstrap: target.bootstrap(),
        topic: format!("chaos-{}", cfg.name),
        partitions: cfg.partitions,
        idempotent: cfg.idempotent,
        group: format!("chaos-{}-group", cfg.name),
    };
    workload::create_topic(&w.bootstrap, &w.topic, w.partitions, cfg.rf);
    let stop = Arc::new(AtomicBool::new(false));
    let ms = |at: Instant| at.duration_since(started).as_millis() as u64;
    let acked = Arc::new(AtomicUsize::new(0));
    let produce_from = Instant::now();
    let producers: Vec<_> = (0..2u64)
        .map(|i| {
            workload::start_producer(
                &w,
                1 + i * 1_000_000_000,
                Duration::from_millis(3),
                stop.clone(),
                started,
                acked.clone(),
            )
        })
        .collect();
    let consumer_stop = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = (0..2)
        .map(|i| workload::start_consumer(&w, &format!("{}-c{i}", cfg.name), consumer_stop.clone()))
        .collect();

    let mut rng = Rng::new(cfg.seed);
    let mut faults: BTreeMap<&'static str, usize> = BTreeMap::new();
    // Every fault from its injection to its heal, for the availability check.
    let mut windows: Vec<(u64, u64)> = Vec::new();
    let mut progress_at = Instant::now();
    let quiet = cfg.availability + QUIET_MARGIN;
    let ids = target.ids();
    let until = Instant::now() + cfg.duration;
    // Let the clients connect and the group form before the first fault.
    std::thread::sleep(Duration::from_millis(1500));
    // `POTOK_CHAOS_NEMESES` (comma-separated names, e.g. `pause,clock-jump`) narrows the kinds,
    // to run or bisect one nemesis alone.
    let kinds: Vec<Fault> = match std::env::var("POTOK_CHAOS_NEMESES") {
        Ok(only) => Fault::all_for(target)
            .into_iter()
            .filter(|f| only.split(',').any(|n| n.trim() == f.name()))
            .collect(),
        Err(_) => Fault::all_for(target),
    };
    assert!(!kinds.is_empty(), "POTOK_CHAOS_NEMESES selects no nemesis");
    let mut round = 0usize;
    while Instant::now() < until {
        // The nemeses take turns, so even a short run injects every kind; nodes and durations
        // are drawn from the seed. A fault aimed at a role falls back to a random node when
        // Metadata does not name one.
        let fault = kinds[round % kinds.len()];
        round += 1;
        if progress_at.elapsed() >= Duration::from_secs(10) {
            progress_at = Instant::now();
            println!(
                "CHAOS-PROGRESS {} t={}s faults={} acked={}",
                cfg.name,
                started.elapsed().as_secs(),
                round - 1,
                acked.load(Ordering::Relaxed)
            );
        }
        if round > 1 && (round - 1).is_multiple_of(QUIET_EVERY) {
            // A fault-free phase longer than the bound: writes must be acknowledged in it.
            std::thread::sleep(quiet);
        }
        let injected = Instant::now();
        let aimed = target.targets(&w.topic);
        let random = ids[rng.range(0, ids.len() as u64) as usize];
        let node = |aim: Aim| {
            let role = match aim {
                Aim::Random => return random,
                Aim::Controller => "controller",
                Aim::BusyLeader => "busy-leader",
            };
            aimed
                .iter()
                .find(|(r, _)| *r == role)
                .map_or(random, |&(_, id)| id)
        };
        match fault {
            Fault::Pause => {
                if let Some(pid) = target.pid(random) {
                    signal(pid, libc::SIGSTOP);
                    let guard = Paused(pid);
                    std::thread::sleep(Duration::from_millis(rng.range(200, 3000)));
                    drop(guard);
                }
            }
            Fault::Kill(aim) => {
                let id = node(aim);
                target.kill(id);
                std::thread::sleep(Duration::from_millis(rng.range(100, 1500)));
                target.restart(id);
            }
            Fault::Isolate(aim) => {
                // Long enough, at times, for elections (1 s) and broker session timeouts.
                let id = node(aim);
                let rest: Vec<i32> = ids.iter().copied().filter(|&p| p != id).collect();
                target.cut(&[id], &rest);
                std::thread::sleep(Duration::from_millis(rng.range(500, 6000)));
                target.heal();
            }
            Fault::Split => {
                // A random minority (⌊(n-1)/2⌋ nodes, one of three) loses the network; the
                // clients stay with the majority.
                let mut order = ids.clone();
                for i in (1..order.len()).rev() {
                    order.swap(i, rng.range(0, i as u64 + 1) as usize);
                }
                for &id in &order[..(ids.len() - 1) / 2] {
                    target.disconnect(id);
                }
                std::thread::sleep(Duration::from_millis(rng.range(500, 6000)));
                target.heal();
            }
            Fault::ClockJump => {
                // A step of the wall clock of a random node, forward or back by up to an hour
                // (as NTP may step a clock), held for a while, then stepped back to the real
                // time. Kept below an hour: time-based settings a step may legitimately fire
                // (retention.ms, producer.id.expiration.ms at a day) would delete state.
                let secs = rng.range(1, 3600) as i64;
                let offset = if rng.next().is_multiple_of(2) {
                    secs
                } else {
                    -secs
                };
                target.jump_clock(random, offset);
                std::thread::sleep(Duration::from_millis(rng.range(500, 4000)));
                target.jump_clock(random, 0);
            }
        }
        windows.push((ms(injected), ms(Instant::now())));
        *faults.entry(fault.name()).or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(rng.range(200, 1200)));
    }

    // Every node runs and is connected (faults heal themselves). A fault-free phase longer
    // than the availability bound, in which writes must be acknowledged again; then stop
    // producing and let every write resolve, and let the consumers catch up a little before
    // closing them.
    std::thread::sleep(quiet);
    let produce_until = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let mut produces = Vec::new();
    let mut producer_fatal = Vec::new();
    for p in producers {
        let (outcomes, fatal) = p.finish();
        produces.extend(outcomes);
        producer_fatal.extend(fatal);
    }
    std::thread::sleep(Duration::from_secs(2));
    consumer_stop.store(true, Ordering::SeqCst);
    let sessions: Vec<_> = consumers.into_iter().map(|c| c.finish()).collect();
    let mut drained = workload::drain(&w);
    if cfg.plant_loss {
        plant_loss(&produces, &mut drained);
    }
    let timeline = Timeline {
        faults: windows,
        produce_from_ms: ms(produce_from),
        produce_until_ms: ms(produce_until),
        bound_ms: cfg.availability.as_millis() as u64,
    };
    let mut history = workload::history(cfg.idempotent, produces, sessions, drained, timeline);
    if cfg.idempotent {
        history.writers = workload::writers_of_duplicates(&history, &target.data_dirs(), &w.topic);
    }
    let report = check(&history);
    RunResult {
        history,
        report,
        faults,
        elapsed: started.elapsed(),
        producer_fatal,
        kinds: kinds.len(),
    }
}

/// Removes the first acknowledged value from the drain (the planted bug of the harness test).
fn plant_loss(produces: &[potok_chaos::Produce], drain: &mut BTreeMap<i32, Vec<(i64, u64)>>) {
    let acked = produces
        .iter()
        .find_map(|p| match p.outcome {
            potok_chaos::Outcome::Ack { partition, offset } => Some((partition, offset)),
            _ => None,
        })
        .expect("an acknowledged write to drop");
    if let Some(records) = drain.get_mut(&acked.0) {
        records.retain(|&(o, _)| o != acked.1);
    }
}
