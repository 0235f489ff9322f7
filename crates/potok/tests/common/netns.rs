//! Network namespaces for cluster tests that cut the network between processes (issue 18's
//! partition nemeses).
//!
//! Every node gets its own network namespace `potok-K-nID` with one veth interface
//! (`10.A.B.(10+ID)/24`) whose other end is a port of a bridge `pkbK` in the root namespace. The
//! bridge itself has `10.A.B.1`, so the test process (the clients) reaches every node from the
//! root namespace, and the nodes reach each other through the bridge. `K` is a slot claimed under
//! a lock in `/run/potok-netns/` (file `K` holds the owner's pid and start time), so parallel
//! tests, in one process or many, never share names or subnets.
//!
//! Two ways to cut, both tested to stop a TCP connect in both directions
//! (`tests/partition.rs`):
//! - [`Net::cut`] between two groups of nodes: a `blackhole` route to each peer's address in
//!   each side's namespace, on both sides. A blackhole drops every packet the namespace would
//!   send there, so neither a SYN nor its answer nor any segment of an open connection crosses;
//!   the clients in the root namespace still reach every node (as in Jepsen, where partitions
//!   are between the database nodes).
//! - [`Net::disconnect`]: the node's bridge port goes down, which cuts it from everyone,
//!   clients included (a rack that lost its uplink).
//!
//! `tc` qdiscs (netem, prio) and filter actions are not available in this machine's kernel
//! (`Specified qdisc kind is unknown`, `Failed to load TC action module`), and there is no
//! iptables/nft; routes and link state need nothing beyond the base kernel.
//!
//! [`Net`] removes everything it created on drop (namespaces, bridge, routes go with them). A
//! run killed before its drop leaves a claim file whose owner is dead: the next [`Net::create`]
//! on the machine kills the processes left in those namespaces and deletes them. Every `ip`
//! command is bounded by a timeout.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where the slot claims live (tmpfs, cleared at boot together with the network state).
pub const CLAIMS: &str = "/run/potok-netns";
/// Slots: subnets 10.200.0.0/24 to 10.203.255.0/24.
const SLOTS: u32 = 1024;
/// The bound of one `ip` command.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why network-namespace tests cannot run here, when the process is not root (creating
/// namespaces, links and routes needs CAP_NET_ADMIN). CI and this project's test machines run
/// as root; elsewhere the tests print this reason and return.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid(2) has no preconditions.
    let euid = unsafe { libc::geteuid() };
    (euid != 0).then(|| {
        format!("not root (euid {euid}): network namespaces need CAP_NET_ADMIN; CI runs as root")
    })
}

/// Runs `ip ARGS` with a timeout; the error carries its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("ip {}: {e} (is iproute2 installed?)", args.join(" ")))?;
    let deadline = Instant::now() + IP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "ip {}: no answer in {IP_TIMEOUT:?}",
                    args.join(" ")
                ));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// The namespace name of node `id` in slot `k`.
fn ns_name(k: u32, id: i32) -> String {
    format!("potok-{k}-n{id}")
}

/// The start time of process `pid` (clock ticks since boot), to tell a live owner from a new
/// process that reuses a dead owner's pid.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; starttime is 22.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Holds an exclusive flock on the claims directory's lock file while it lives: claims are
/// made and stale slots swept under it.
pub struct Lock(File);

impl Lock {
    /// Waits for the lock.
    pub fn take() -> Lock {
        std::fs::create_dir_all(CLAIMS).unwrap_or_else(|e| panic!("create {CLAIMS}: {e}"));
        let f = File::create(Path::new(CLAIMS).join(".lock")).expect("lock file");
        // SAFETY: flock(2) on a descriptor this function owns.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {CLAIMS}/.lock");
        Lock(f)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: flock(2) on the descriptor taken above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Whether the claim file of a slot names a process that still runs.
fn claim_alive(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let mut it = text.split_whitespace().map(|s| s.parse::<u64>().ok());
    match (it.next().flatten(), it.next().flatten()) {
        (Some(pid), Some(start)) => start_time(pid as u32) == Some(start),
        _ => false,
    }
}

/// Deletes what slot `k` may have left: processes in its namespaces, the namespaces, the bridge
/// and the veths. A deleted namespace is only destroyed once nothing refers to it any more
/// (sockets closing in it can hold it for minutes), and its veths live as long, so they are
/// deleted by name.
fn remove_slot(k: u32) {
    let prefix = format!("potok-{k}-n");
    for ns in namespaces().into_iter().filter(|n| n.starts_with(&prefix)) {
        if let Ok(pids) = ip(&["netns", "pids", &ns]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2) of a process left in a namespace of a dead test run.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = ip(&["netns", "del", &ns]);
    }
    let _ = ip(&["link", "del", &format!("pkb{k}")]);
    let veth = format!("pkv{k}n");
    for link in links().into_iter().filter(|l| l.starts_with(&veth)) {
        let _ = ip(&["link", "del", &link]);
    }
}

/// The names of the root namespace's links (`ip -o link`, without the `@peer` suffix).
fn links() -> Vec<String> {
    ip(&["-o", "link"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

/// The names of every network namespace (`ip netns list`).
pub fn namespaces() -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Removes what dead test runs left: every claim whose owner is gone, and every `potok-K-n*`
/// namespace, `pkbK` bridge or `pkvKn*` veth without a live claim. Called with the lock held.
fn sweep_stale() {
    let live = |k: u32| claim_alive(&Path::new(CLAIMS).join(k.to_string()));
    if let Ok(entries) = std::fs::read_dir(CLAIMS) {
        for e in entries.flatten() {
            let Some(k) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if !live(k) {
                remove_slot(k);
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let slot_of_ns = |n: &String| n.strip_prefix("potok-")?.split_once("-n")?.0.parse().ok();
    let slot_of_link = |l: &String| {
        let rest = l.strip_prefix("pkb").or_else(|| l.strip_prefix("pkv"))?;
        rest.split('n').next()?.parse().ok()
    };
    let orphans: BTreeSet<u32> = namespaces()
        .iter()
        .filter_map(slot_of_ns)
        .chain(links().iter().filter_map(slot_of_link))
        .filter(|&k| !live(k))
        .collect();
    for k in orphans {
        remove_slot(k);
    }
}

/// The network of one cluster test; see the module documentation.
#[derive(Debug)]
pub struct Net {
    k: u32,
    ids: Vec<i32>,
    claim: PathBuf,
    /// Blackhole routes in place: (namespace of node, address of node) pairs.
    routes: BTreeSet<(i32, i32)>,
    /// Nodes whose bridge port is down.
    down: BTreeSet<i32>,
}

impl Net {
    /// Creates one namespace per id, connected to a fresh bridge; panics with the failing
    /// command if the kernel refuses (the caller checked [`unavailable`] first).
    pub fn create(ids: &[i32]) -> Net {
        let lock = Lock::take();
        sweep_stale();
        let pid = std::process::id();
        let me = format!("{pid} {}\n", start_time(pid).expect("own start time"));
        let first = pid % SLOTS;
        let (k, claim) = (0..SLOTS)
            .map(|i| (first + i) % SLOTS)
            .find_map(|k| {
                let path = Path::new(CLAIMS).join(k.to_string());
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .ok()?;
                f.write_all(me.as_bytes()).ok()?;
                Some((k, path))
            })
            .expect("a free network slot");
        let net = Net {
            k,
            ids: ids.to_vec(),
            claim,
            routes: BTreeSet::new(),
            down: BTreeSet::new(),
        };
        // From here on, a failure drops `net`, which removes what was made so far.
        let bridge = net.bridge();
        ip_ok(&["link", "add", &bridge, "type", "bridge"]);
        ip_ok(&[
            "addr",
            "add",
            &format!("{}/24", net.client_addr()),
            "dev",
            &bridge,
        ]);
        ip_ok(&["link", "set", &bridge, "up"]);
        for &id in ids {
            let ns = ns_name(k, id);
            let (host, inner) = (net.veth(id), format!("{}p", net.veth(id)));
            ip_ok(&["netns", "add", &ns]);
            ip_ok(&["link", "add", &host, "type", "veth", "peer", "name", &inner]);
            ip_ok(&["link", "set", &inner, "netns", &ns]);
            ip_ok(&["link", "set", &host, "master", &bridge, "up"]);
            let cidr = format!("{}/24", net.addr(id));
            ip_ok(&["-n", &ns, "addr", "add", &cidr, "dev", &inner]);
            ip_ok(&["-n", &ns, "link", "set", &inner, "up"]);
            ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        drop(lock);
        net
    }

    fn bridge(&self) -> String {
        format!("pkb{}", self.k)
    }

    fn veth(&self, id: i32) -> String {
        format!("pkv{}n{id}", self.k)
    }

    fn octets(&self) -> (u32, u32) {
        (200 + self.k / 256, self.k % 256)
    }

    /// The address of the root namespace on the bridge (where the clients connect from).
    pub fn client_addr(&self) -> String {
        let (a, b) = self.octets();
        format!("10.{a}.{b}.1")
    }

    /// The address of node `id`.
    pub fn addr(&self, id: i32) -> String {
        let (a, b) = self.octets();
        format!("10.{a}.{b}.{}", 10 + id)
    }

    /// The namespace of node `id`.
    pub fn namespace(&self, id: i32) -> String {
        ns_name(self.k, id)
    }

    /// Makes `cmd` run in node `id`'s namespace. The namespace file is opened now and moved
    /// into the child's pre-exec hook, which only calls setns(2).
    pub fn enter(&self, id: i32, cmd: &mut Command) {
        let f = File::open(format!("/run/netns/{}", self.namespace(id))).expect("netns file");
        // SAFETY: the hook runs between fork and exec and calls only setns(2), which is
        // async-signal-safe; the file stays open inside the closure until the command drops.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }

    /// Runs `f` on a new thread inside node `id`'s namespace (sockets it creates stay there)
    /// and returns its result.
    pub fn run_in<R: Send + 'static>(&self, id: i32, f: impl FnOnce() -> R + Send + 'static) -> R {
        let f_ns = File::open(format!("/run/netns/{}", self.namespace(id))).expect("netns file");
        std::thread::spawn(move || {
            // SAFETY: setns(2) on this thread only, with a namespace file it owns.
            let r = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in namespace")
    }

    /// Cuts every node of `a` from every node of `b`, both directions. Clients are not cut.
    pub fn cut(&mut self, a: &[i32], b: &[i32]) {
        for &x in a {
            for &y in b.iter().filter(|&&y| y != x) {
                for (from, to) in [(x, y), (y, x)] {
                    if self.routes.insert((from, to)) {
                        let dst = format!("{}/32", self.addr(to));
                        let ns = self.namespace(from);
                        ip_ok(&["-n", &ns, "route", "replace", "blackhole", &dst]);
                    }
                }
            }
        }
    }

    /// Cuts node `id` from everyone, clients included: its bridge port goes down.
    pub fn disconnect(&mut self, id: i32) {
        if self.down.insert(id) {
            ip_ok(&["link", "set", &self.veth(id), "down"]);
        }
    }

    /// Whether any cut is in place.
    pub fn is_cut(&self) -> bool {
        !self.routes.is_empty() || !self.down.is_empty()
    }

    /// Undoes every cut.
    pub fn heal(&mut self) {
        for (from, to) in std::mem::take(&mut self.routes) {
            let dst = format!("{}/32", self.addr(to));
            ip_ok(&[
                "-n",
                &self.namespace(from),
                "route",
                "del",
                "blackhole",
                &dst,
            ]);
        }
        for id in std::mem::take(&mut self.down) {
            let veth = self.veth(id);
            ip_ok(&["link", "set", &veth, "up"]);
            // The carrier of a veth comes back asynchronously; the heal is done once both
            // ends report it (bounded: a link that never returns fails the test).
            let deadline = Instant::now() + IP_TIMEOUT;
            let inner = format!("{veth}p");
            let ns = self.namespace(id);
            while !(ip(&["link", "show", &veth]).is_ok_and(|l| l.contains("LOWER_UP"))
                && ip(&["-n", &ns, "link", "show", &inner]).is_ok_and(|l| l.contains("LOWER_UP")))
            {
                assert!(Instant::now() < deadline, "{veth} did not come back up");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Net {
    /// Needs no lock: the claim goes last, so until then no sweep touches this slot (and
    /// `create` drops a half-built `Net` while it holds the lock).
    fn drop(&mut self) {
        for &id in &self.ids {
            let _ = ip(&["link", "del", &self.veth(id)]);
            let _ = ip(&["netns", "del", &self.namespace(id)]);
        }
        let _ = ip(&["link", "del", &self.bridge()]);
        let _ = std::fs::remove_file(&self.claim);
    }
}
