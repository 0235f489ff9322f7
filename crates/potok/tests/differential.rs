//! Differential tests against Apache Kafka (issue 16): the same sequence of client operations
//! runs against the pinned Kafka broker and against Potok, and what a client can observe is
//! compared: error codes, offsets, watermarks, metadata shape, config descriptions, group
//! states — every field of every answer, after `differential/normalise.rs` has taken out what
//! legitimately differs (node ids, addresses, cluster and topic ids, throttle times, broker
//! clocks, generated member ids).
//!
//! - `potok_matches_the_kafka_goldens` (CI): Kafka's answers are the committed goldens in
//!   `compat/differential/goldens/` (one JSON file per scenario); Potok runs every scenario and
//!   every difference must be on the allowlist `compat/differential/allowlist.json` (keyed by
//!   scenario and field, each with Potok's answer and a reason), which `docs/compatibility.md`
//!   shows as a table. An entry that no longer matches (Potok now answers as Kafka, or answers
//!   something else) fails too, so the list cannot go stale.
//! - `potok_matches_live_kafka` (ignored; `scripts/record-goldens --check`): both brokers live;
//!   Kafka must also still answer its goldens.
//! - `record_kafka_goldens` (ignored; `scripts/record-goldens`): rewrites the goldens from the
//!   pinned Kafka (`scripts/kafka-reference`).
//!
//! `POTOK_DIFF_ONLY=name,prefix*` runs some scenarios only; `POTOK_DIFF_KAFKA=host:port` uses a
//! running Kafka instead of starting one; `POTOK_DIFF_UPDATE_DOCS=1` rewrites the allowlist
//! table in docs/compatibility.md.

mod common;
#[path = "differential/debug_json.rs"]
mod debug_json;
#[path = "differential/group_ops.rs"]
mod group_ops;
#[path = "differential/normalise.rs"]
mod normalise;
#[path = "differential/ops.rs"]
mod ops;
#[path = "differential/scenarios/mod.rs"]
mod scenarios;
#[path = "differential/session.rs"]
mod session;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use common::java::repo_root;
use scenarios::Scenario;
use session::Session;

/// Potok's settings that are not its defaults, as `scripts/kafka-reference` configures Kafka
/// (`num.partitions=1`, `offsets.topic.num.partitions=50`,
/// `group.initial.rebalance.delay.ms=0`).
const POTOK_SETTINGS: &[(&str, &str)] = &[
    ("num.partitions", "1"),
    ("offsets.topic.num.partitions", "50"),
    ("group.initial.rebalance.delay.ms", "0"),
];

const DOCS_BEGIN: &str = "<!-- differential-allowlist:begin (generated from compat/differential/allowlist.json by tests/differential.rs) -->";
const DOCS_END: &str = "<!-- differential-allowlist:end -->";

fn goldens_dir() -> PathBuf {
    repo_root().join("compat/differential/goldens")
}

/// The scenarios selected by `POTOK_DIFF_ONLY` (all when unset).
fn selected() -> (Vec<Scenario>, bool) {
    let all = scenarios::all();
    let mut names = std::collections::HashSet::new();
    for s in &all {
        assert!(names.insert(s.name), "scenario {} defined twice", s.name);
        assert!(
            s.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "scenario name {} must be lowercase, digits and '-'",
            s.name
        );
    }
    match std::env::var("POTOK_DIFF_ONLY") {
        Ok(only) if !only.is_empty() => {
            let pats: Vec<&str> = only.split(',').collect();
            let keep = |n: &str| {
                pats.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => n.starts_with(prefix),
                    None => n == *p,
                })
            };
            (all.into_iter().filter(|s| keep(s.name)).collect(), true)
        }
        _ => (all, false),
    }
}

/// Runs every scenario against the broker at `addr`; normalised observations by name.
fn run_all(addr: &str, scenarios: &[Scenario]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for sc in scenarios {
        let mut s = Session::new(addr, sc.name);
        (sc.run)(&mut s);
        let mut v = s.into_steps();
        normalise::normalise(&mut v);
        out.insert(sc.name.to_string(), v);
    }
    out
}

fn start_potok() -> common::Broker {
    let mut b = common::Broker::builder();
    for (k, v) in POTOK_SETTINGS {
        b = b.set(k, v);
    }
    b.start()
}

// ---- the reference broker ------------------------------------------------------------------

/// A Kafka started by `scripts/kafka-reference` in a directory of its own (stopped on drop), or
/// the one named by `POTOK_DIFF_KAFKA`.
struct Kafka {
    dir: Option<(tempfile::TempDir, PathBuf)>,
    addr: String,
}

fn reference_script(dir: &Path, action: &str) -> std::process::Output {
    Command::new(repo_root().join("scripts/kafka-reference"))
        .arg(action)
        .env("KAFKA_REFERENCE_DIR", dir)
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/kafka-reference")
}

impl Kafka {
    fn start() -> Kafka {
        if let Ok(addr) = std::env::var("POTOK_DIFF_KAFKA") {
            return Kafka { dir: None, addr };
        }
        let parent = tempfile::tempdir().expect("temp dir");
        let dir = parent.path().join("kafka");
        let out = reference_script(&dir, "start");
        assert!(
            out.status.success(),
            "kafka-reference start failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Kafka {
            dir: Some((parent, dir)),
            addr,
        }
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some((_, dir)) = &self.dir {
            let _ = reference_script(dir, "stop");
        }
    }
}

// ---- comparison ----------------------------------------------------------------------------

/// One accepted difference: in `scenario`, the value at `field` (`step/path/in/answer`) is
/// `potok` on Potok where Kafka answers its golden, for `reason`.
#[derive(Debug, Clone)]
struct Allowed {
    scenario: String,
    field: String,
    potok: Value,
    reason: String,
}

fn allowlist() -> Vec<Allowed> {
    let path = repo_root().join("compat/differential/allowlist.json");
    let text = std::fs::read_to_string(&path).expect("read compat/differential/allowlist.json");
    let v: Value = serde_json::from_str(&text).expect("allowlist.json is JSON");
    let mut seen = std::collections::HashSet::new();
    v.as_array()
        .expect("allowlist.json is an array")
        .iter()
        .map(|e| {
            let s = |k: &str| {
                e.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| panic!("allowlist entry without {k}: {e}"))
                    .to_string()
            };
            let a = Allowed {
                scenario: s("scenario"),
                field: s("field"),
                potok: e.get("potok").cloned().unwrap_or(Value::Null),
                reason: s("reason"),
            };
            assert!(
                seen.insert((a.scenario.clone(), a.field.clone())),
                "allowlist entry {}/{} twice",
                a.scenario,
                a.field
            );
            assert!(
                !a.reason.trim().is_empty(),
                "allowlist entry {e} has no reason"
            );
            a
        })
        .collect()
}

/// The value at `field` (`step/key/index/...`) of an observation, `None` when absent.
fn lookup<'a>(obs: &'a Value, field: &str) -> Option<&'a Value> {
    let mut parts = field.split('/');
    let step = parts.next()?;
    let mut v = obs
        .as_array()?
        .iter()
        .find(|s| s["step"] == step)?
        .get("response")?;
    for p in parts {
        v = match v {
            Value::Object(m) => m.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

/// Sets (or with `None` removes) the value at `field`; false when its parent is absent.
fn replace(obs: &mut Value, field: &str, new: Option<Value>) -> bool {
    if !field.contains('/') {
        // The whole answer of a step.
        let step = obs
            .as_array_mut()
            .and_then(|a| a.iter_mut().find(|s| s["step"] == field));
        return match (step, new) {
            (Some(s), Some(n)) => {
                s["response"] = n;
                true
            }
            _ => false,
        };
    }
    let mut parts: Vec<&str> = field.split('/').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let Some(step_label) = parts.first().copied() else {
        return false;
    };
    let Some(step) = obs
        .as_array_mut()
        .and_then(|a| a.iter_mut().find(|s| s["step"] == step_label))
    else {
        return false;
    };
    let mut v = step;
    let mut rest = parts[1..].to_vec();
    rest.insert(0, "response");
    for p in rest {
        v = match v {
            Value::Object(m) => match m.get_mut(p) {
                Some(x) => x,
                None => return false,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    match (v, new) {
        (Value::Object(m), Some(n)) => {
            m.insert(last.to_string(), n);
            true
        }
        (Value::Object(m), None) => m.remove(last).is_some(),
        (Value::Array(a), Some(n)) => match last.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
            Some(x) => {
                *x = n;
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Every field where `b` differs from `a`, as (path, a's value, b's value); `null` stands for
/// an absent field.
fn differences(path: &str, a: &Value, b: &Value, out: &mut Vec<(String, Value, Value)>) {
    if a == b {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}/{k}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                differences(
                    &join(k),
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(&join(&i.to_string()), p, q, out);
            }
        }
        _ => out.push((path.to_string(), a.clone(), b.clone())),
    }
}

/// The differences of two scenario observations, keyed by `step/field`.
fn compare(kafka: &Value, potok: &Value) -> Vec<(String, Value, Value)> {
    let (ka, pa) = (kafka.as_array().unwrap(), potok.as_array().unwrap());
    let mut out = Vec::new();
    if ka.len() != pa.len() {
        let labels =
            |a: &Vec<Value>| json!(a.iter().map(|s| s["step"].clone()).collect::<Vec<_>>());
        out.push(("(steps)".to_string(), labels(ka), labels(pa)));
        return out;
    }
    for (k, p) in ka.iter().zip(pa) {
        let label = k["step"].as_str().unwrap_or("?").to_string();
        if k["step"] != p["step"] || k["api"] != p["api"] {
            out.push((label.clone(), k.clone(), p.clone()));
            continue;
        }
        differences(&label, &k["response"], &p["response"], &mut out);
    }
    out
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 400 {
        format!("{}…", &s[..400])
    } else {
        s
    }
}

/// Compares Potok's observations with Kafka's under the allowlist; one line per failure.
fn check(
    kafka: &BTreeMap<String, Value>,
    potok: &BTreeMap<String, Value>,
    allowed: &[Allowed],
    partial: bool,
) -> Vec<String> {
    let mut failures = Vec::new();
    for a in allowed {
        if !kafka.contains_key(&a.scenario) && !partial {
            failures.push(format!(
                "allowlist: scenario {} does not exist (entry {})",
                a.scenario, a.field
            ));
        }
    }
    for (name, p) in potok {
        let Some(k) = kafka.get(name) else {
            failures.push(format!("{name}: no golden (run scripts/record-goldens)"));
            continue;
        };
        let mut p = p.clone();
        for a in allowed.iter().filter(|a| &a.scenario == name) {
            let (kv, pv) = (lookup(k, &a.field), lookup(&p, &a.field));
            let pv_or_null = pv.cloned().unwrap_or(Value::Null);
            if pv_or_null != a.potok {
                failures.push(format!(
                    "{name}: {}: allowlisted as potok={} but Potok answers {} (Kafka {}); update or remove the entry",
                    a.field,
                    short(&a.potok),
                    short(&pv_or_null),
                    short(kv.unwrap_or(&Value::Null))
                ));
            } else if kv == pv {
                failures.push(format!(
                    "{name}: {}: allowlisted but Potok now answers as Kafka; remove the entry (and its docs row)",
                    a.field
                ));
            } else if !replace(&mut p, &a.field, kv.cloned()) {
                failures.push(format!(
                    "{name}: {}: allowlisted field not found in Potok's answer",
                    a.field
                ));
            }
        }
        let diffs = compare(k, &p);
        if let Ok(dump) = std::env::var("POTOK_DIFF_DUMP") {
            // Development aid: every unaccepted difference, whole values, as JSON lines.
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dump)
                .unwrap();
            for (field, kv, pv) in &diffs {
                let line = json!({"scenario": name, "field": field, "kafka": kv, "potok": pv});
                writeln!(f, "{line}").unwrap();
            }
        }
        for (field, kv, pv) in diffs {
            failures.push(format!(
                "{name}: {field}: Kafka {} Potok {}",
                short(&kv),
                short(&pv)
            ));
        }
    }
    failures
}

fn read_goldens(names: &[&str]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for n in names {
        let path = goldens_dir().join(format!("{n}.json"));
        if let Ok(text) = std::fs::read_to_string(&path) {
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.insert(n.to_string(), v);
        }
    }
    out
}

/// The table docs/compatibility.md shows of the allowlist.
fn docs_table(allowed: &[Allowed], goldens: &BTreeMap<String, Value>) -> String {
    let mut s = String::new();
    s.push_str(DOCS_BEGIN);
    s.push_str("\n\n| scenario | field | Kafka | Potok | why |\n| --- | --- | --- | --- | --- |\n");
    for a in allowed {
        let kafka = goldens
            .get(&a.scenario)
            .and_then(|g| lookup(g, &a.field))
            .map(short)
            .unwrap_or_else(|| "(absent)".into());
        let cell = |t: &str| t.replace('|', "\\|");
        s.push_str(&format!(
            "| `{}` | `{}` | `{}` | `{}` | {} |\n",
            a.scenario,
            cell(&a.field),
            cell(&kafka),
            cell(&short(&a.potok)),
            cell(&a.reason)
        ));
    }
    if allowed.is_empty() {
        s.push_str("| (none) | | | | |\n");
    }
    s.push('\n');
    s.push_str(DOCS_END);
    s
}

/// Fails unless docs/compatibility.md shows exactly the allowlist (or rewrites it when
/// `POTOK_DIFF_UPDATE_DOCS=1`).
fn check_docs(allowed: &[Allowed], goldens: &BTreeMap<String, Value>) -> Option<String> {
    let path = repo_root().join("docs/compatibility.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/compatibility.md");
    let want = docs_table(allowed, goldens);
    let (Some(b), Some(e)) = (doc.find(DOCS_BEGIN), doc.find(DOCS_END)) else {
        return Some(format!(
            "docs/compatibility.md lacks the allowlist table between the markers:\n{want}"
        ));
    };
    let have = &doc[b..e + DOCS_END.len()];
    if have == want {
        return None;
    }
    if std::env::var("POTOK_DIFF_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let new = format!("{}{want}{}", &doc[..b], &doc[e + DOCS_END.len()..]);
        std::fs::write(&path, new).expect("write docs/compatibility.md");
        return None;
    }
    Some(format!(
        "docs/compatibility.md's allowlist table differs from compat/differential/allowlist.json \
         (POTOK_DIFF_UPDATE_DOCS=1 rewrites it); expected:\n{want}"
    ))
}

fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} unaccepted difference(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn potok_matches_the_kafka_goldens() {
    let (scenarios, partial) = selected();
    assert!(
        partial || scenarios.len() >= 60,
        "issue 16 asks for at least 60 scenarios"
    );
    let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    let goldens = read_goldens(&names);
    let potok = start_potok();
    let observed = run_all(&potok.bootstrap(), &scenarios);
    let allowed = allowlist();
    let mut failures = check(&goldens, &observed, &allowed, partial);
    if !partial {
        // A golden without a scenario is a scenario removed without re-recording.
        for entry in std::fs::read_dir(goldens_dir()).expect("goldens dir") {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            let stem = name.trim_end_matches(".json");
            if !names.contains(&stem) {
                failures.push(format!(
                    "golden {name} has no scenario (run scripts/record-goldens)"
                ));
            }
        }
        failures.extend(check_docs(&allowed, &goldens));
    }
    report(failures);
}

#[test]
#[ignore = "starts Apache Kafka (scripts/kafka-reference); run by scripts/record-goldens --check"]
fn potok_matches_live_kafka() {
    let (scenarios, partial) = selected();
    let names: Vec<&str> = scenarios.iter().map(|s| s.name).collect();
    let kafka = Kafka::start();
    let live = run_all(&kafka.addr, &scenarios);
    let potok = start_potok();
    let observed = run_all(&potok.bootstrap(), &scenarios);
    let mut failures = check(&live, &observed, &allowlist(), partial);
    // The goldens must still be what the pinned Kafka answers.
    let goldens = read_goldens(&names);
    for (name, v) in &live {
        match goldens.get(name) {
            None => failures.push(format!("{name}: no golden (run scripts/record-goldens)")),
            Some(g) => {
                for (field, gv, lv) in compare(g, v) {
                    failures.push(format!(
                        "{name}: {field}: golden {} but live Kafka {} (re-record)",
                        short(&gv),
                        short(&lv)
                    ));
                }
            }
        }
    }
    report(failures);
}

#[test]
#[ignore = "starts Apache Kafka (scripts/kafka-reference) and rewrites the goldens; run by scripts/record-goldens"]
fn record_kafka_goldens() {
    let (scenarios, partial) = selected();
    let kafka = Kafka::start();
    let live = run_all(&kafka.addr, &scenarios);
    let dir = goldens_dir();
    std::fs::create_dir_all(&dir).unwrap();
    if !partial {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
    for (name, v) in &live {
        let text = serde_json::to_string_pretty(v).unwrap() + "\n";
        std::fs::write(dir.join(format!("{name}.json")), text).unwrap();
    }
    eprintln!("recorded {} goldens in {}", live.len(), dir.display());
}
