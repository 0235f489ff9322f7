//! Shared integration-test harness: runs the real `potok` binary on a free 127.0.0.1 port with
//! a temporary data directory.
//!
//! ```ignore
//! mod common;
//! let mut b = common::Broker::start();                       // defaults
//! let b2 = common::Broker::builder().set("num.partitions", "3").admin().start();
//! b.bootstrap();                                              // "127.0.0.1:PORT"
//! b.sigterm(); b.restart();                                   // same port and data dir
//! b.sigkill(); b.restart();
//! ```
//!
//! Every wait has a timeout; the child is killed when the `Broker` is dropped; the broker's
//! stderr goes to `{tempdir}/broker.log` (see [`Broker::log`]), and is printed when a start
//! fails.
#![allow(dead_code)]

pub mod cluster;
pub mod java;
pub mod kafka;
pub mod netns;
pub mod postgres;
pub mod txn_cluster;
pub mod wire;

/// Polls `f` every 100 ms until it returns a value, at most `timeout`; panics naming `what`
/// when it never does.
pub fn wait_for<T>(
    timeout: std::time::Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (bound and released; callers retry if it is taken meanwhile).
///
/// Ports come from below Linux's ephemeral range (`net.ipv4.ip_local_port_range` starts at
/// 32768 by default), so neither another process's `bind(0)` nor the local end of an outgoing
/// connection can take one between the probe and the broker's bind; and this process never
/// hands out the same port twice, so two listeners of one cluster never collide. Both
/// happened with `bind(0)` probes: a node's broker port was handed out again as another node's
/// controller port and that node failed with "Address already in use".
pub fn free_port() -> u16 {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    const LOW: u32 = 12_000;
    const HIGH: u32 = 32_000;
    // A per-process starting point spreads concurrent test processes over the range.
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let span = HIGH - LOW;
    let mut candidate = seed.wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        // A stride coprime to the span visits every port once.
        candidate = (candidate + 7_919) % span;
        let port = (LOW + candidate) as u16;
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOW} and {HIGH}");
}

/// A 127.0.0.1 port that refuses connections for as long as the returned socket lives: it is
/// bound (so no other process can take it) but never listens. Tests of "no broker there" use
/// it instead of a released port, which another test's broker could bind meanwhile.
pub fn refusing_port() -> (socket2::Socket, u16) {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("create a TCP socket");
    s.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .expect("bind an ephemeral port");
    let port = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .expect("local address of a bound socket");
    (s, port)
}

/// Copies the directory tree `src` to `dst` (created), as plain files; panics on failure.
pub fn copy_dir_all(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    for e in entries {
        let e = e.expect("directory entry");
        let to = dst.join(e.file_name());
        if e.file_type().expect("file type").is_dir() {
            copy_dir_all(&e.path(), &to);
        } else {
            std::fs::copy(e.path(), &to)
                .unwrap_or_else(|err| panic!("copy {}: {err}", e.path().display()));
        }
    }
}

/// Options for starting a broker.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    sets: Vec<(String, String)>,
    envs: Vec<(String, String)>,
    admin: bool,
    data_from: Option<PathBuf>,
}

impl Builder {
    /// Adds `--set name=value`.
    pub fn set(mut self, name: &str, value: &str) -> Builder {
        self.sets.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets an environment variable of the broker process (test-only switches such as
    /// failpoints).
    pub fn env(mut self, name: &str, value: &str) -> Builder {
        self.envs.push((name.to_string(), value.to_string()));
        self
    }

    /// Enables the admin (metrics) listener on a free port.
    pub fn admin(mut self) -> Builder {
        self.admin = true;
        self
    }

    /// Starts on a copy of the data directory `src` (a committed fixture) instead of an empty
    /// one; the fixture itself is never written.
    pub fn data_from(mut self, src: &Path) -> Builder {
        self.data_from = Some(src.to_path_buf());
        self
    }

    /// Starts the broker and waits until it accepts connections.
    pub fn start(self) -> Broker {
        let dir = tempfile::tempdir().expect("temp dir");
        if let Some(src) = &self.data_from {
            copy_dir_all(src, &dir.path().join("data"));
        }
        let mut b = Broker {
            child: None,
            port: 0,
            admin_port: None,
            dir,
            sets: self.sets,
            envs: self.envs,
            admin: self.admin,
        };
        b.start_fresh_ports();
        b
    }
}

/// A running (or stopped) `potok serve` child process.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    /// The client port.
    pub port: u16,
    /// The admin (metrics) port, when enabled.
    pub admin_port: Option<u16>,
    dir: tempfile::TempDir,
    sets: Vec<(String, String)>,
    envs: Vec<(String, String)>,
    admin: bool,
}

impl Broker {
    /// Starts a broker with default settings.
    pub fn start() -> Broker {
        Builder::default().start()
    }

    /// Options for a broker.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data directory (`log.dirs`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A scratch directory that lives as long as the broker (for test files).
    pub fn scratch_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The broker's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// The child's pid, if running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn start_fresh_ports(&mut self) {
        let mut last = String::new();
        for _ in 0..5 {
            self.port = free_port();
            if self.admin {
                self.admin_port = Some(free_port());
            }
            match self.spawn() {
                Ok(()) => return,
                // Another process took the port between probing and binding: try another.
                Err(e) => last = e,
            }
        }
        panic!(
            "potok did not start: {last}\n--- broker log ---\n{}",
            self.log()
        );
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("broker.log"))
            .map_err(|e| e.to_string())?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_potok"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--set")
            .arg(format!("log.dirs={}", self.data_dir().display()));
        if let Some(a) = self.admin_port {
            cmd.arg("--set")
                .arg(format!("potok.admin.listener=127.0.0.1:{a}"));
        }
        for (k, v) in &self.sets {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.env(
            "POTOK_LOG",
            std::env::var("POTOK_LOG").unwrap_or_else(|_| "info".into()),
        )
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        // The log is appended to across restarts: only what this start writes counts.
        let log_start = std::fs::metadata(self.dir.path().join("broker.log"))
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        // A successful connect alone does not prove that *this* child listens: another test's
        // broker may have taken the probed port first (ours then fails to bind and exits a
        // moment later), and a connect to a port nobody listens on can even succeed as a TCP
        // self-connect. So wait for our own start-up line as well, unless the caller chose a
        // log filter that may hide it.
        let expect_line = std::env::var("POTOK_LOG").is_err();
        let child = cmd.spawn().map_err(|e| format!("spawn: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("potok exited during start-up with {status}"));
                }
            }
            let started = !expect_line
                || self
                    .log()
                    .get(log_start..)
                    .is_some_and(|l| l.contains("potok broker started"));
            if started && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("timed out waiting for the listener".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the broker again on the same port and data directory (after a stop).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart: the broker is still running");
        let mut last = String::new();
        for _ in 0..50 {
            match self.spawn() {
                Ok(()) => return,
                // The old socket may linger briefly; retry on the same port.
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "potok did not restart: {last}\n--- broker log ---\n{}",
            self.log()
        );
    }

    fn signal(&mut self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) with the pid of our own child process.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
        }
    }

    fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while let Some(c) = self.child.as_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Sends SIGTERM and waits (up to 30 s) for a clean exit; panics otherwise.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        match self.wait(Duration::from_secs(30)) {
            Some(s) => s,
            None => {
                self.kill();
                panic!("potok did not exit within 30 s of SIGTERM\n{}", self.log());
            }
        }
    }

    /// Removes the environment variables set with [`Builder::env`] for the next restart.
    pub fn clear_env(&mut self) {
        self.envs.clear();
    }

    /// Waits up to `timeout` for the broker to exit on its own (a failpoint); its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.wait(timeout)
    }

    /// Sends SIGKILL and reaps the process.
    pub fn sigkill(&mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The resident set size of the broker in bytes (from /proc).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    }

    /// GET `path` from the admin listener; returns the body.
    pub fn admin_get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let port = self.admin_port.expect("broker started without admin()");
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or(out)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `program args` in `dir` to completion, killed after `timeout`: its stdout on success,
/// else the failure with everything it printed. Both pipes are drained on threads so a chatty
/// client cannot block on a full pipe. Shared by the tests that drive Python clients, kcat and
/// Kafka's tools.
pub fn run_program(
    program: &str,
    args: &[&str],
    dir: &Path,
    timeout: Duration,
) -> Result<String, String> {
    use std::io::Read;
    let started = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program} (run ./scripts/install-test-deps): {e}"))?;
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the client") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(out),
        Some(s) => Err(format!(
            "{program} {args:?} failed ({s}) after {:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            started.elapsed()
        )),
        None => Err(format!(
            "{program} {args:?} killed after the {timeout:?} timeout\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
        )),
    }
}

/// Waits until `dir/name` exists (a handshake file a client program creates) or `client`
/// finished, at most `timeout`; true when it exists.
pub fn wait_file<T>(
    dir: &Path,
    name: &str,
    client: &std::thread::JoinHandle<T>,
    timeout: Duration,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !dir.join(name).exists() {
        if client.is_finished() || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}
