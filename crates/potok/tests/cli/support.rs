//! Running the `potok` binary with a timeout and reading what it printed.

use super::*;

/// Longest any single CLI invocation may take before the test fails (it is killed).
pub(crate) const CMD_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `potok` run produced.
pub(crate) struct Run {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: String,
}

impl Run {
    pub(crate) fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {}\nstderr: {}",
                self.stdout(),
                self.stderr
            )
        })
    }
    /// Asserts success and returns self, printing both streams on failure.
    pub(crate) fn success(self, what: &str) -> Run {
        assert!(
            self.ok(),
            "{what}: exit {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout(),
            self.stderr
        );
        self
    }
    /// Asserts a failure reported as exactly one `potok: error: ...` line containing `needle`.
    pub(crate) fn fails_with(self, what: &str, needle: &str) {
        assert!(
            !self.ok() && self.code.is_some(),
            "{what}: expected a non-zero exit, got {:?}\nstdout: {}\nstderr: {}",
            self.code,
            self.stdout(),
            self.stderr
        );
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("potok: error:"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{what}: want one error line, stderr: {}",
            self.stderr
        );
        assert!(
            errors[0].contains(needle),
            "{what}: error line {:?} lacks {needle:?}",
            errors[0]
        );
    }
}

/// Runs `potok ARGS` with `stdin`, killing it after [`CMD_TIMEOUT`].
pub(crate) fn potok(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_potok"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn potok");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + CMD_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("potok {args:?} did not finish within {CMD_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = writer.join();
    Run {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned(),
    }
}

/// `potok ARGS -b BOOTSTRAP`.
pub(crate) fn cli(b: &common::Broker, args: &[&str], stdin: &[u8]) -> Run {
    let bootstrap = b.bootstrap();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-b", &bootstrap]);
    potok(&all, stdin)
}

pub(crate) fn create_topic(b: &common::Broker, topic: &str, partitions: u32) {
    cli(
        b,
        &[
            "topics",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
        ],
        b"",
    )
    .success("topics create");
}

/// Sum of the high watermarks of `topic`, read directly from the broker with librdkafka (the
/// broker-side count of records the tests compare the CLI's figures with).
pub(crate) fn broker_record_count(b: &common::Broker, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    md.topics()[0]
        .partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), Duration::from_secs(10))
                .expect("watermarks");
            high - low
        })
        .sum()
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
