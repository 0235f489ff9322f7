//! Generator of Potok's Kafka message types.
//!
//! It reads Apache Kafka's JSON message definitions (JSON with `//` line comments, one message per
//! file, see `kafka-message-specs/README.md`) and writes one Rust module per message into the
//! output directory of `potok-protocol` (`src/generated`). The generated code relies on the
//! runtime in `potok_protocol::codec`: every struct implements the `Wire` trait (`write` into a
//! `Sink`, `read` from `Bytes`, `min_size`), and the public `Encode`/`Decode` traits come from
//! blanket implementations there. This keeps the generated code small: one struct per message or
//! nested struct covering every valid version, with the version passed at run time, instead of one
//! type per version (compile time matters on the project's two-core CI).
//!
//! The output is formatted with `rustfmt` so that it is stable and `cargo fmt` leaves it alone;
//! the regeneration test in `potok-protocol` compares a fresh generation with the committed code.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

mod emit;
mod emit_mod;
mod overlay;
mod spec;

use emit::*;
use emit_mod::*;
use spec::*;

/// Subdirectories of `internal/` whose records are emitted into `generated::internal`. The group
/// and transaction coordinators store these records in `__consumer_offsets` and
/// `__transaction_state`; the KRaft metadata records (`metadata`) are the records of Potok's
/// metadata log, which the controller quorum replicates.
const INTERNAL_DIRS: &[&str] = &["group-coordinator", "metadata", "transaction-coordinator"];

/// Generates all modules from `spec_dir` into `out_dir` and returns the number of files written.
/// Stale `.rs` files in `out_dir` (from messages that no longer exist) are removed first.
pub fn generate(spec_dir: &Path, out_dir: &Path) -> Result<usize> {
    let mut specs = Vec::new();
    for path in json_files(spec_dir)? {
        specs.push(parse_spec(&path)?);
    }
    overlay::apply(&mut specs)?;
    let mut internal = Vec::new();
    for dir in INTERNAL_DIRS {
        let d = spec_dir.join("internal").join(dir);
        if d.is_dir() {
            for path in json_files(&d)? {
                internal.push(parse_spec(&path)?);
            }
        }
    }
    internal.sort_by(|a, b| a.module.cmp(&b.module));

    remove_rs_files(out_dir)?;
    remove_rs_files(&out_dir.join("internal"))?;
    std::fs::create_dir_all(out_dir.join("internal"))?;

    let mut files = Vec::new();
    for spec in specs.iter().chain(internal.iter()) {
        let sub = if internal.iter().any(|s| std::ptr::eq(s, spec)) {
            out_dir.join("internal")
        } else {
            out_dir.to_path_buf()
        };
        let path = sub.join(format!("{}.rs", spec.module));
        std::fs::write(&path, emit_spec(spec)?)?;
        files.push(path);
    }
    let mod_path = out_dir.join("mod.rs");
    let mut others: Vec<String> = specs
        .iter()
        .filter(|s| !matches!(s.kind.as_str(), "request" | "response"))
        .map(|s| format!("{}::{}", s.module, s.name))
        .collect();
    others.extend(
        internal
            .iter()
            .map(|s| format!("internal::{}::{}", s.module, s.name)),
    );
    let mut mod_src = emit_mod(&specs)?;
    mod_src.push_str("\n/// Round-trips every header and data message (test builds only).\n#[cfg(test)]\npub(crate) fn round_trip_non_api(seed: u64) -> Result<(), String> {\n");
    for t in &others {
        let _ = writeln!(
            mod_src,
            "crate::testgen::round_trip_all_versions::<{t}>(seed)?;"
        );
    }
    mod_src.push_str("Ok(())\n}\n");
    std::fs::write(&mod_path, mod_src)?;
    files.push(mod_path);
    let int_path = out_dir.join("internal").join("mod.rs");
    std::fs::write(&int_path, emit_internal_mod(&internal))?;
    files.push(int_path);
    rustfmt(&files)?;
    Ok(files.len())
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    Ok(v)
}

fn remove_rs_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|e| e == "rs") {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

fn rustfmt(files: &[PathBuf]) -> Result<()> {
    let status = std::process::Command::new("rustfmt")
        .arg("--edition")
        .arg("2021")
        .args(files)
        .status()
        .context("running rustfmt")?;
    if !status.success() {
        bail!("rustfmt failed on generated code");
    }
    Ok(())
}

/// Removes `//` comments outside JSON strings (the spec files are JSON with line comments).
pub fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut in_str = false;
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c2 in chars.by_ref() {
                if c2 == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comments_but_not_slashes_in_strings() {
        let s = "{ // c\n \"a\": \"http://x\" // d\n}";
        let v: Value = serde_json::from_str(&strip_comments(s)).unwrap();
        assert_eq!(v["a"], "http://x");
    }

    #[test]
    fn snake_case() {
        assert_eq!(snake("ClientId"), "client_id");
        assert_eq!(snake("ISRNodes"), "isr_nodes");
        assert_eq!(snake("leaderEpoch"), "leader_epoch");
        assert_eq!(snake("TopicId"), "topic_id");
    }

    #[test]
    fn tags_as_numbers_or_strings() {
        let v: Value = serde_json::from_str(
            r#"{"fields": [
                {"name": "A", "type": "int8", "versions": "0+", "taggedVersions": "0+", "tag": 0},
                {"name": "B", "type": "int8", "versions": "0+", "taggedVersions": "0+", "tag": "2"}
            ]}"#,
        )
        .unwrap();
        let fields = parse_fields(&v, &mut Vec::new()).unwrap();
        assert_eq!(fields[0].tag, Some(0));
        assert_eq!(fields[1].tag, Some(2));
        let bad: Value = serde_json::from_str(
            r#"{"fields": [{"name": "C", "type": "int8", "versions": "0+", "taggedVersions": "0+"}]}"#,
        )
        .unwrap();
        assert!(parse_fields(&bad, &mut Vec::new()).is_err());
    }

    #[test]
    fn ranges() {
        let valid = Range::parse("0-12").unwrap();
        assert_eq!(cond(Range::parse("0+").unwrap(), valid), "true");
        assert_eq!(cond(Range::parse("3+").unwrap(), valid), "version >= 3");
        assert_eq!(cond(Range::parse("0-2").unwrap(), valid), "version <= 2");
        assert_eq!(cond(Range::parse("none").unwrap(), valid), "false");
        assert_eq!(
            cond(Range::parse("2-4").unwrap(), valid),
            "(2..=4).contains(&version)"
        );
    }
}
