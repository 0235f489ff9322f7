//! The reference broker (issue 16): `scripts/kafka-reference` starts the pinned Apache Kafka in
//! KRaft combined mode and stops it, and every Java check of `java_clients.rs` passes against it.
//! That is what makes those checks a measure of Kafka compatibility: each asserts what Kafka
//! itself does (the few intended differences are switched by `--target`, see
//! docs/compatibility.md).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::java::{expect_checks, repo_root, tail};

/// A reference broker in its own directory; stopped (and the directory removed) when dropped.
struct Reference {
    dir: PathBuf,
    bootstrap: String,
}

fn script(dir: &Path, action: &str) -> std::process::Output {
    // The script bounds its own waits: 90 s for the start, 35 s for the stop.
    Command::new(repo_root().join("scripts/kafka-reference"))
        .arg(action)
        .env("KAFKA_REFERENCE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/kafka-reference")
}

impl Reference {
    fn start(dir: PathBuf) -> Reference {
        let out = script(&dir, "start");
        assert!(
            out.status.success(),
            "kafka-reference start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bootstrap = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            bootstrap.starts_with("127.0.0.1:"),
            "start printed {bootstrap:?}"
        );
        Reference { dir, bootstrap }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.dir.join("kafka.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = script(&self.dir, "stop");
    }
}

#[test]
fn reference_kafka_starts_passes_every_java_check_and_stops() {
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("kafka");
    let kafka = Reference::start(dir.clone());

    // `status` agrees with `start`, and a second `start` reuses the running broker.
    let status = script(&dir, "status");
    assert!(status.status.success(), "status of a running broker");
    assert_eq!(
        String::from_utf8_lossy(&status.stdout).trim(),
        kafka.bootstrap
    );
    let again = script(&dir, "start");
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        kafka.bootstrap
    );

    // The admin suite creates topics with the Java Admin client, among everything else.
    expect_checks(
        &kafka.bootstrap,
        "kafka",
        "admin,clients,groups,tools,streams",
        &[],
        || {
            format!(
                "--- reference broker log (tail) ---\n{}",
                tail(&kafka.log(), 60)
            )
        },
    );

    let pid = kafka.pid().expect("pid file of the running broker");
    let stop = script(&dir, "stop");
    assert!(stop.status.success(), "kafka-reference stop failed");
    // Gone, or a zombie waiting for whoever adopted it to reap it (its cmdline is then empty).
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(
        cmdline.is_empty(),
        "the broker (pid {pid}) still runs after stop"
    );
    assert!(!dir.exists(), "stop left {}", dir.display());
    assert!(
        !script(&dir, "status").status.success(),
        "status after stop"
    );
    drop(kafka);
}
