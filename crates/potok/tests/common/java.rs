//! Runs the Java compatibility checks (`compat/java/`, issue 16): Apache Kafka's own Java client
//! and command-line tools, resolved by `./scripts/install-java-deps`, driven by one JVM per suite.
//!
//! The check program prints one line per check (`PASS name 12ms` or `FAIL name: reason`); this
//! module compares those lines with the caller's list of known failures. A failure not on the
//! list fails the test, and so does a listed check that passes or did not run, so the list can
//! only shrink. Missing Java or Maven artifacts are a failure, never a skip.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Above the sum of the checks' own deadlines in practice (each check gives up after 120 s and
/// a suite takes well under a minute), so a stuck JVM is killed with its output shown.
pub const SUITE_TIMEOUT: Duration = Duration::from_secs(480);

/// A check that is known to fail, with the reason `docs/compatibility.md` gives.
pub struct KnownFailure {
    /// The suite (`clients`, `groups`, `admin`, `tools`, `streams`) the check belongs to.
    pub suite: &'static str,
    pub check: &'static str,
    pub reason: &'static str,
}

/// `compat/java/` in the repository.
pub fn compat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../compat/java")
}

/// The repository root (for `scripts/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The resolved Kafka classpath written by `./scripts/install-java-deps`.
pub fn kafka_classpath() -> String {
    let file = compat_dir().join("target/classpath.txt");
    match std::fs::read_to_string(&file) {
        Ok(cp) if !cp.trim().is_empty() => cp.trim().to_string(),
        _ => panic!(
            "{} is missing: run ./scripts/install-java-deps (./scripts/test does)",
            file.display()
        ),
    }
}

/// Compiles `compat/java/src` once per distinct source (cached under the target dir by a hash of
/// the sources and the classpath) and returns the classes directory.
pub fn compiled_classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(|| {
        let cp = kafka_classpath();
        let src = compat_dir().join("src/potok/compat");
        let mut sources: Vec<PathBuf> = std::fs::read_dir(&src)
            .unwrap_or_else(|e| panic!("read {}: {e}", src.display()))
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "java"))
            .collect();
        sources.sort();
        let mut h = DefaultHasher::new();
        cp.hash(&mut h);
        for s in &sources {
            s.file_name().hash(&mut h);
            std::fs::read(s).expect("read source").hash(&mut h);
        }
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("java-compat");
        let out = base.join(format!("{:016x}", h.finish()));
        if out.join("potok/compat/Main.class").exists() {
            return out;
        }
        std::fs::create_dir_all(&base).expect("create the classes cache dir");
        // Compiled beside the final place and renamed, so test binaries running at once never
        // see half a directory.
        let tmp = tempfile::tempdir_in(&base).expect("temp dir for javac");
        let output = Command::new("javac")
            .arg("-nowarn")
            .arg("-encoding")
            .arg("UTF-8")
            .arg("-d")
            .arg(tmp.path())
            .arg("-cp")
            .arg(&cp)
            .args(&sources)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run javac (needs a JDK 17): {e}"));
        assert!(
            output.status.success(),
            "javac failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let tmp = tmp.keep();
        if std::fs::rename(&tmp, &out).is_err() {
            // Another test binary finished the same compilation first.
            let _ = std::fs::remove_dir_all(&tmp);
        }
        out
    })
}

/// What one run of the check program printed.
pub struct SuiteRun {
    pub passed: Vec<String>,
    /// (check, reason)
    pub failed: Vec<(String, String)>,
    pub stdout: String,
    pub stderr: String,
}

/// The `java` arguments that run `main_class` of the compiled compat programs with Kafka's
/// client on the class path. Small heaps and the serial collector: several JVMs share two
/// cores in CI.
pub fn jvm_args(main_class: &str) -> Vec<String> {
    vec![
        "-Xmx384m".into(),
        "-XX:+UseSerialGC".into(),
        "-Djava.awt.headless=true".into(),
        format!(
            "-Dlog4j2.configurationFile={}",
            compat_dir().join("log4j2.properties").display()
        ),
        "-cp".into(),
        format!("{}:{}", compiled_classes().display(), kafka_classpath()),
        main_class.into(),
    ]
}

/// Runs `suites` of the check program against `bootstrap`; `target` is `potok` or `kafka`.
/// Panics if the JVM does not finish cleanly within [`SUITE_TIMEOUT`].
pub fn run_suites(bootstrap: &str, target: &str, suites: &str) -> SuiteRun {
    let started = Instant::now();
    let mut child = Command::new("java")
        .args(jvm_args("potok.compat.Main"))
        .args([
            "--bootstrap",
            bootstrap,
            "--target",
            target,
            "--suites",
            suites,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start java (needs a JDK 17): {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for java") {
            break Some(status);
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let finished = stdout.lines().any(|l| l.starts_with("java checks: "));
    match status {
        Some(s) if s.success() && finished => {}
        Some(s) => panic!(
            "the Java checks ({suites}) exited with {s} after {:?}\n--- stdout ---\n{stdout}\n--- stderr (tail) ---\n{}",
            started.elapsed(),
            tail(&stderr, 80)
        ),
        None => panic!(
            "the Java checks ({suites}) were killed after {SUITE_TIMEOUT:?}\n--- stdout ---\n{stdout}\n--- stderr (tail) ---\n{}",
            tail(&stderr, 80)
        ),
    }
    let mut run = SuiteRun {
        passed: Vec::new(),
        failed: Vec::new(),
        stdout,
        stderr,
    };
    for line in run.stdout.lines() {
        if let Some(rest) = line.strip_prefix("PASS ") {
            let name = rest.split(' ').next().unwrap_or(rest);
            run.passed.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("FAIL ") {
            let (name, reason) = rest.split_once(": ").unwrap_or((rest, ""));
            run.failed.push((name.to_string(), reason.to_string()));
        }
    }
    run
}

/// The last `n` lines of `s`.
pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// What is wrong with `run` given the `known` failures of the suites it ran: a failure not on
/// the list, a listed check that passes, a listed check that did not run. Empty when all is well.
pub fn judge(run: &SuiteRun, known: &[&KnownFailure]) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, reason) in &run.failed {
        if !known.iter().any(|k| k.check == name) {
            problems.push(format!("FAIL {name}: {reason}"));
        }
    }
    for k in known {
        if run.passed.iter().any(|p| p == k.check) {
            problems.push(format!(
                "{} is listed as a known failure but passes now: remove it from the list and from docs/compatibility.md",
                k.check
            ));
        } else if !run.failed.iter().any(|(f, _)| f == k.check) {
            problems.push(format!(
                "{} is listed as a known failure but did not run",
                k.check
            ));
        }
    }
    problems
}

/// Runs `suites` against `bootstrap` and requires exactly the `known` failures. `context` is
/// appended to a failure report (e.g. the broker's log tail).
pub fn expect_checks(
    bootstrap: &str,
    target: &str,
    suites: &str,
    known: &[KnownFailure],
    context: impl FnOnce() -> String,
) {
    let run = run_suites(bootstrap, target, suites);
    let known: Vec<&KnownFailure> = known
        .iter()
        .filter(|k| suites.split(',').any(|s| s == k.suite))
        .collect();
    // Shown with --nocapture, and in CI logs of a failing run.
    print!("{}", run.stdout);
    for k in &known {
        println!(
            "known failure (docs/compatibility.md): {} — {}",
            k.check, k.reason
        );
    }
    let problems = judge(&run, &known);
    assert!(
        !run.passed.is_empty() || !run.failed.is_empty(),
        "no Java check ran:\n{}",
        run.stdout
    );
    if !problems.is_empty() {
        panic!(
            "Java checks ({suites}) against {target}:\n{}\n--- all results ---\n{}\n--- java stderr (tail) ---\n{}\n{}",
            problems.join("\n"),
            run.stdout,
            tail(&run.stderr, 60),
            context()
        );
    }
}
