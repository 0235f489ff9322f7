//! A throwaway PostgreSQL server for integration tests (Debian's `postgresql` package, installed
//! by `scripts/install-test-deps`): `initdb` into a temporary directory, `postgres` on
//! 127.0.0.1 and a free port with `wal_level=logical`, replication slots and WAL senders, trust
//! authentication for the superuser `postgres`. Start-up waits (with a timeout) until the server
//! accepts connections; drop stops it (fast shutdown, then immediate, then SIGKILL) and deletes
//! the directory. initdb and postgres refuse to run as root, so under root (CI) they run as the
//! `postgres` system user the package creates, which then owns the temporary directory.
//!
//! ```ignore
//! let pg = common::postgres::Postgres::start();
//! pg.psql("CREATE TABLE t (x int)");
//! pg.conninfo(); // "host=127.0.0.1 port=N user=postgres dbname=postgres"
//! ```

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running PostgreSQL server.
pub struct Postgres {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    run_as: Option<(u32, u32)>,
}

/// The directory of the newest installed server's programs (`/usr/lib/postgresql/N/bin`), or
/// `POTOK_TEST_PG_BINDIR`.
pub fn bindir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var("POTOK_TEST_PG_BINDIR") {
        return Some(PathBuf::from(d));
    }
    let mut best: Option<(u32, PathBuf)> = None;
    for e in std::fs::read_dir("/usr/lib/postgresql").ok()?.flatten() {
        let Some(v) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let bin = e.path().join("bin");
        if bin.join("postgres").exists() && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, bin));
        }
    }
    best.map(|(_, p)| p)
}

/// The uid and gid of the `postgres` user when this process is root.
fn unprivileged_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").expect("no NUL");
    // SAFETY: getpwnam with a valid C string; the result is read at once, before any other
    // call that could overwrite its static storage.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, and there is no `postgres` user to run the server as (install \
         Debian's postgresql package: ./scripts/install-test-deps)"
    );
    // SAFETY: pw is non-null and points to a valid passwd entry.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

impl Postgres {
    /// Initialises and starts a server; panics (with the server's log) if it does not accept
    /// connections within a minute.
    pub fn start() -> Postgres {
        let bin = bindir().expect(
            "no PostgreSQL server under /usr/lib/postgresql (run ./scripts/install-test-deps)",
        );
        let dir = tempfile::Builder::new()
            .prefix("potok-pg-")
            .tempdir()
            .expect("temp dir");
        let run_as = unprivileged_user();
        if let Some((uid, gid)) = run_as {
            chown(dir.path(), uid, gid);
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .arg("--locale=C");
        let out = run_as_user(&mut initdb, run_as)
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let mut pg = Postgres {
            child: None,
            dir,
            bin,
            port: 0,
            run_as,
        };
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = super::free_port();
            match pg.spawn() {
                Ok(()) => return pg,
                Err(e) => last = e,
            }
        }
        panic!(
            "PostgreSQL did not start: {last}\n--- log ---\n{}",
            pg.log()
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("postgres.log"))
            .map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = self.run_as {
            chown(&self.dir.path().join("postgres.log"), uid, gid);
        }
        let mut cmd = Command::new(self.bin.join("postgres"));
        cmd.arg("-D").arg(self.data());
        for (k, v) in [
            ("listen_addresses", "127.0.0.1".to_string()),
            ("port", self.port.to_string()),
            // The socket goes into the private directory, not /var/run/postgresql.
            (
                "unix_socket_directories",
                self.dir.path().display().to_string(),
            ),
            ("wal_level", "logical".into()),
            ("max_replication_slots", "10".into()),
            ("max_wal_senders", "10".into()),
            ("max_connections", "100".into()),
            ("fsync", "off".into()),
            ("shared_buffers", "32MB".into()),
        ] {
            cmd.arg("-c").arg(format!("{k}={v}"));
        }
        run_as_user(&mut cmd, self.run_as)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let child = cmd.spawn().map_err(|e| format!("spawn postgres: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("postgres exited during start-up with {status}"));
                }
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-t", "2"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.stop();
                return Err("timed out waiting for connections".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A libpq connection string for the superuser.
    pub fn conninfo(&self) -> String {
        self.conninfo_as("postgres")
    }

    /// A libpq connection string for `user` (trust authentication).
    pub fn conninfo_as(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname=postgres",
            self.port
        )
    }

    /// Runs SQL with psql as the superuser (stopping at the first error); its output, or a
    /// panic with psql's messages.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.conninfo(),
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server: fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL, each
    /// with a timeout, so a test never hangs here.
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        for sig in [libc::SIGINT, libc::SIGQUIT, libc::SIGKILL] {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(c.id() as libc::pid_t, sig);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = c.wait();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        // The TempDir removes the directory (root may remove the postgres user's files).
    }
}

fn run_as_user(cmd: &mut Command, user: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    cmd
}

fn chown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}
