//! Helpers of the outbox relay tests: a `potok outbox run` child process, a PostgreSQL with the
//! outbox prepared by `potok outbox init --apply`, and a read_committed consumer that drains
//! the relay's topics.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

use crate::common::postgres::Postgres;
use crate::common::Broker;

pub fn potok() -> Command {
    Command::new(env!("CARGO_BIN_EXE_potok"))
}

/// Runs `potok outbox init --apply` with `extra` options; panics on failure.
pub fn init(pg: &Postgres, extra: &[&str]) {
    let out = potok()
        .args(["outbox", "init", "--apply", "--db", &pg.conninfo()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run potok outbox init");
    assert!(
        out.status.success(),
        "potok outbox init failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `potok outbox run` child; its stderr goes to a file in `dir`.
pub struct Relay {
    child: Option<Child>,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

impl Relay {
    pub fn new(dir: &std::path::Path, args: &[String]) -> Relay {
        Relay {
            child: None,
            args: args.to_vec(),
            envs: Vec::new(),
            log: dir.join(format!("relay-{}.log", std::process::id())),
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Relay {
        self.envs.push((k.into(), v.into()));
        self
    }

    pub fn clear_env(&mut self) {
        self.envs.clear();
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "relay already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("relay log");
        let mut cmd = potok();
        cmd.args(["outbox", "run"]).args(&self.args);
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.env("POTOK_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().expect("spawn potok outbox run"));
    }

    /// Runs to completion (e.g. with --once) within `timeout`; its exit status.
    pub fn run_to_end(&mut self, timeout: Duration) -> ExitStatus {
        self.start();
        self.wait(timeout)
            .unwrap_or_else(|| panic!("the relay did not exit within {timeout:?}\n{}", self.log()))
    }

    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            if let Ok(Some(s)) = c.try_wait() {
                self.child = None;
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn sigterm(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.child.as_ref().expect("relay running").id();
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        match self.wait(timeout) {
            Some(s) => s,
            None => {
                self.sigkill();
                panic!(
                    "the relay did not stop within {timeout:?} of SIGTERM\n{}",
                    self.log()
                );
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// The usual relay arguments for `pg` and `broker`, plus `extra`.
pub fn relay_args(pg: &Postgres, broker: &Broker, mode: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "--db".into(),
        pg.conninfo(),
        "-b".into(),
        broker.bootstrap(),
        "--mode".into(),
        mode.into(),
        "--backoff-max-ms".into(),
        "1000".into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// One consumed record.
#[derive(Clone, Debug)]
pub struct Got {
    pub topic: String,
    pub key: String,
    pub value: String,
    pub headers: HashMap<String, String>,
}

/// Reads `topics` from the beginning at read_committed until `want` records arrived or nothing
/// new came for `idle`; every record in partition order.
pub fn drain(broker: &Broker, topics: &[&str], want: usize, idle: Duration) -> Vec<Got> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("outbox-check-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("consumer");
    c.subscribe(topics).expect("subscribe");
    let mut out = Vec::new();
    let mut last = Instant::now();
    while out.len() < want && last.elapsed() < idle {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                last = Instant::now();
                let mut headers = HashMap::new();
                if let Some(h) = m.headers() {
                    for hd in h.iter() {
                        headers.insert(
                            hd.key.to_string(),
                            String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                        );
                    }
                }
                out.push(Got {
                    topic: m.topic().to_string(),
                    key: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                });
            }
            // The relay may not have created the topic yet.
            Some(Err(e)) if e.to_string().contains("UnknownTopicOrPartition") => {}
            Some(Err(e)) => panic!("consume: {e}"),
            None => {}
        }
    }
    out
}

/// A small deterministic PRNG (xorshift64*), seeded per test so failures can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A seed from the environment (`POTOK_TEST_SEED`) or the clock, printed for replays.
pub fn seed() -> u64 {
    let s = std::env::var("POTOK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed {s} (POTOK_TEST_SEED)");
    s
}
