//! A cluster of real `potok` processes: every node a voter of the controller quorum (combined
//! mode), each with its own client and controller port and data directory. By default every
//! node listens on 127.0.0.1; [`Cluster::start_netns`] puts each node in its own network
//! namespace with its own address ([`super::netns`]), so tests can cut the network between
//! nodes. Nodes are started, SIGKILLed and restarted one by one; every wait has a timeout and
//! every child is killed when the cluster is dropped (before its namespaces are deleted).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::Net;
use super::{free_port, START_TIMEOUT};

/// Where Debian's `faketime` package (installed by `scripts/install-test-deps`) puts
/// libfaketime on the architectures CI uses.
const LIBFAKETIME: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
];

/// The libfaketime library, if installed.
pub fn libfaketime() -> Option<&'static str> {
    LIBFAKETIME
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

/// Whether a TCP connect to `addr` succeeds within a second.
fn connects(addr: &str) -> bool {
    addr.parse()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// One node of a [`Cluster`].
#[derive(Debug)]
pub struct Node {
    /// `node.id` (1-based).
    pub id: i32,
    /// The address the node listens on (127.0.0.1, or its namespace's address).
    pub host: String,
    /// The PLAINTEXT (client) port.
    pub port: u16,
    /// The CONTROLLER port (unused by a broker-only node, which has no controller listener).
    pub controller_port: u16,
    /// A broker-only node (`process.roles=broker`): an observer of the quorum, not a voter.
    pub broker_only: bool,
    child: Option<Child>,
    dir: PathBuf,
}

impl Node {
    /// `host:port` of the client listener.
    pub fn bootstrap(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The data directory (`log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The node's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }
}

/// A running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// The nodes, `nodes[i].id == i + 1`.
    pub nodes: Vec<Node>,
    /// `potok.cluster.id`.
    pub cluster_id: String,
    voters: String,
    extra: Vec<(String, String)>,
    /// The network namespaces when started by [`Cluster::start_netns`]; declared after the
    /// nodes so that it is dropped after `Drop::drop` killed them.
    pub net: Option<Net>,
    /// libfaketime preloaded into every node ([`Cluster::jump_clock`]).
    faketime: Option<&'static str>,
    /// Environment variables of every node's process ([`Cluster::start_with_env`]).
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` voters with settings `extra` and waits until each accepts connections.
    pub fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        Cluster::start_in(n, n, extra, None, None, &[])
    }

    /// Like [`Cluster::start`], with environment variables `env` set for every node (also
    /// after a restart), such as the test-only `POTOK_TEST_PLANTED_BUG`.
    pub fn start_with_env(n: usize, extra: &[(&str, &str)], env: &[(&str, &str)]) -> Cluster {
        Cluster::start_in(n, n, extra, None, None, env)
    }

    /// A cluster of `n` voters of which only the first `running` are started; the others are
    /// started later with [`Cluster::start_node`]: `running` must be a majority of `n`.
    pub fn start_some(n: usize, running: usize, extra: &[(&str, &str)]) -> Cluster {
        assert!(running * 2 > n, "the started nodes must be a majority");
        Cluster::start_in(n, running, extra, None, None, &[])
    }

    /// `voters` voters, started, and `brokers` broker-only nodes (`process.roles=broker`,
    /// observers of the quorum; ids `voters + 1 ..`), started later with
    /// [`Cluster::start_node`], as brokers added to a running cluster.
    pub fn start_with_brokers(voters: usize, brokers: usize, extra: &[(&str, &str)]) -> Cluster {
        let mut c = Cluster::start_in(voters + brokers, 0, extra, None, None, &[]);
        c.voters = c.nodes[..voters]
            .iter()
            .map(|n| format!("{}@{}:{}", n.id, n.host, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        for n in &mut c.nodes[voters..] {
            n.broker_only = true;
        }
        for i in 0..voters {
            c.spawn(i);
        }
        for i in 0..voters {
            c.wait_started(i);
        }
        c
    }

    /// Starts node `id`, never started before ([`Cluster::start_some`]), and waits until it
    /// accepts connections.
    pub fn start_node(&mut self, id: i32) {
        self.restart(id);
    }

    /// Starts `n` voters like [`Cluster::start`], each in its own network namespace (node `i`
    /// on `net.addr(i)`, ports 9092 and 9093 in every namespace). The caller checks
    /// [`super::netns::unavailable`] first. With `fake_clock`, every node runs with libfaketime
    /// preloaded (panics if it is not installed), so [`Cluster::jump_clock`] can move its wall
    /// clock.
    pub fn start_netns(n: usize, extra: &[(&str, &str)], fake_clock: bool) -> Cluster {
        let ids: Vec<i32> = (1..=n as i32).collect();
        let faketime = fake_clock.then(|| {
            libfaketime().expect("libfaketime is not installed (scripts/install-test-deps)")
        });
        Cluster::start_in(n, n, extra, Some(Net::create(&ids)), faketime, &[])
    }

    fn start_in(
        n: usize,
        running: usize,
        extra: &[(&str, &str)],
        net: Option<Net>,
        faketime: Option<&'static str>,
        env: &[(&str, &str)],
    ) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Node> = (1..=n as i32)
            .map(|id| Node {
                id,
                host: net
                    .as_ref()
                    .map_or_else(|| "127.0.0.1".to_string(), |net| net.addr(id)),
                port: if net.is_some() { 9092 } else { free_port() },
                controller_port: if net.is_some() { 9093 } else { free_port() },
                broker_only: false,
                child: None,
                dir: dir.path().join(format!("node-{id}")),
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|n| format!("{}@{}:{}", n.id, n.host, n.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let mut c = Cluster {
            nodes,
            cluster_id: "potok-test-cluster".into(),
            voters,
            extra: extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            net,
            faketime,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _dir: dir,
        };
        for i in 0..running {
            c.spawn(i);
        }
        for i in 0..running {
            c.wait_started(i);
        }
        c
    }

    /// Every node's client address, comma-separated.
    pub fn bootstrap(&self) -> String {
        self.nodes
            .iter()
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node with `id`.
    pub fn node(&self, id: i32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    /// The last `lines` lines of every node's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut logs = String::new();
        for n in &self.nodes {
            let log = n.log();
            let all: Vec<&str> = log.lines().collect();
            logs.push_str(&format!("--- node {} (last {lines} lines) ---\n", n.id));
            logs.push_str(&all[all.len().saturating_sub(lines)..].join("\n"));
            logs.push('\n');
        }
        logs
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.dir).expect("node dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.dir.join("broker.log"))
            .expect("node log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_potok"));
        cmd.arg("serve");
        let listeners = if node.broker_only {
            format!("PLAINTEXT://{}:{}", node.host, node.port)
        } else {
            format!(
                "PLAINTEXT://{host}:{},CONTROLLER://{host}:{}",
                node.port,
                node.controller_port,
                host = node.host
            )
        };
        let roles = if node.broker_only {
            "broker"
        } else {
            "broker,controller"
        };
        let sets = [
            ("node.id".to_string(), node.id.to_string()),
            ("process.roles".into(), roles.to_string()),
            ("listeners".into(), listeners),
            (
                "log.dirs".into(),
                node.dir.join("data").display().to_string(),
            ),
            ("controller.quorum.voters".into(), self.voters.clone()),
            ("potok.cluster.id".into(), self.cluster_id.clone()),
        ];
        // A restarted node serves only once the controller let its old incarnation's session
        // expire and unfenced the new one (the start-up gate, docs/replication.md), so the
        // tests' clusters use a session shorter than Kafka's 9 s default unless a test sets
        // its own.
        let defaults = [
            ("broker.session.timeout.ms".to_string(), "3000".to_string()),
            (
                "broker.heartbeat.interval.ms".to_string(),
                "300".to_string(),
            ),
        ];
        let unset = defaults
            .iter()
            .filter(|(k, _)| !self.extra.iter().any(|(e, _)| e == k));
        for (k, v) in sets.iter().chain(unset).chain(&self.extra) {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.env("POTOK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(net) = &self.net {
            net.enter(node.id, &mut cmd);
        }
        if let Some(lib) = self.faketime {
            // The offset file is read on every wall-clock read (no cache), so a jump applies
            // at once; the monotonic clock (timers, timeouts) and file times stay real, as
            // they do when NTP steps a machine's clock.
            let clock = node.dir.join("clock");
            if !clock.exists() {
                std::fs::write(&clock, "+0\n").expect("clock offset file");
            }
            cmd.env("LD_PRELOAD", lib)
                .env("FAKETIME_TIMESTAMP_FILE", &clock)
                .env("FAKETIME_NO_CACHE", "1")
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("NO_FAKE_STAT", "1");
        }
        node.child = Some(cmd.spawn().expect("spawn potok"));
    }

    fn wait_started(&mut self, i: usize) {
        let deadline = Instant::now() + START_TIMEOUT;
        let node = &mut self.nodes[i];
        let before = node.log().matches("potok broker started").count();
        loop {
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                node.child = None;
                panic!("node {} exited with {status}:\n{}", node.id, node.log());
            }
            let started = node.log().matches("potok broker started").count() > before
                || before > 0 && node.log().matches("potok broker started").count() > 0;
            if started && connects(&node.bootstrap()) {
                return;
            }
            if Instant::now() > deadline {
                panic!("node {} did not start:\n{}", node.id, node.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the nodes run with libfaketime ([`Cluster::jump_clock`] works).
    pub fn has_fake_clock(&self) -> bool {
        self.faketime.is_some()
    }

    /// Sets node `id`'s wall clock to the real time plus `offset_secs` (negative: back). The
    /// offset survives a restart of the node; `0` heals.
    pub fn jump_clock(&self, id: i32, offset_secs: i64) {
        assert!(
            self.faketime.is_some(),
            "the cluster runs without libfaketime"
        );
        let node = self.node(id);
        let tmp = node.dir.join("clock.tmp");
        // Renamed into place, so a read never sees a half-written offset.
        std::fs::write(&tmp, format!("{offset_secs:+}\n")).expect("write clock offset");
        std::fs::rename(&tmp, node.dir.join("clock")).expect("rename clock offset");
    }

    /// SIGKILLs node `id` and reaps it.
    pub fn kill9(&mut self, id: i32) {
        if let Some(mut c) = self.nodes[(id - 1) as usize].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM to node `id` and waits at most `timeout` for it to exit; returns how long
    /// it took, or `None` if it still ran (it is then SIGKILLed).
    pub fn terminate(&mut self, id: i32, timeout: Duration) -> Option<Duration> {
        let mut c = self.nodes[(id - 1) as usize].child.take()?;
        let started = Instant::now();
        // SAFETY: kill(2) on the pid of a child this harness spawned and has not reaped.
        unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        while started.elapsed() < timeout {
            if let Ok(Some(_)) = c.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    /// Starts node `id` again on its ports and data directory.
    pub fn restart(&mut self, id: i32) {
        let i = (id - 1) as usize;
        assert!(self.nodes[i].child.is_none(), "node {id} still runs");
        let starts = self.nodes[i].log().matches("potok broker started").count();
        self.spawn(i);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let node = &mut self.nodes[i];
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                node.child = None;
                panic!("node {id} exited with {status}:\n{}", node.log());
            }
            if node.log().matches("potok broker started").count() > starts
                && connects(&node.bootstrap())
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("node {id} did not restart:\n{}", node.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in &self.nodes {
                eprintln!("--- node {} log ---\n{}", n.id, n.log());
            }
        }
        // `POTOK_TEST_KEEP_LOGS=DIR` keeps every node's log (`DIR/<pid>-node-<id>.log`) for a
        // diagnosis after the run, whose temporary directory is deleted below.
        if let Some(keep) = std::env::var_os("POTOK_TEST_KEEP_LOGS") {
            let keep = PathBuf::from(keep);
            let _ = std::fs::create_dir_all(&keep);
            for n in &self.nodes {
                let name = format!(
                    "{}-{}-node-{}.log",
                    std::process::id(),
                    self.nodes[0].port,
                    n.id
                );
                let _ = std::fs::copy(n.dir.join("broker.log"), keep.join(name));
            }
        }
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}
