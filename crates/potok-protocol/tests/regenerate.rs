//! The committed generated code must equal a fresh generation from Kafka's message definitions.
//!
//! The definitions live outside the repository (`<workspace root>/../shared/kafka-message-specs`,
//! or the folder named by `POTOK_KAFKA_SPECS`). Where they are present, any difference fails the
//! test. Where they are absent the test prints a note and passes, so the project still builds
//! and tests on machines without them, except under CI (`CI` set), which always has them beside
//! the checkout: there a missing folder fails, so the check can never be skipped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, base, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.insert(
                p.strip_prefix(base).unwrap().to_path_buf(),
                std::fs::read(&p).unwrap(),
            );
        }
    }
}

#[test]
fn generated_code_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let specs = std::env::var_os("POTOK_KAFKA_SPECS")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate_dir.join("../../../shared/kafka-message-specs"));
    if !specs.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{} not found under CI, which must have Kafka's message definitions",
            specs.display()
        );
        eprintln!(
            "note: {} not found; skipping the regeneration check",
            specs.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    potok_codegen::generate(&specs, tmp.path()).unwrap();
    let mut fresh = BTreeMap::new();
    collect(tmp.path(), tmp.path(), &mut fresh);
    let committed_dir = crate_dir.join("src/generated");
    let mut committed = BTreeMap::new();
    collect(&committed_dir, &committed_dir, &mut committed);
    let fresh_names: Vec<_> = fresh.keys().collect();
    let committed_names: Vec<_> = committed.keys().collect();
    assert_eq!(
        fresh_names, committed_names,
        "generated file sets differ; run `cargo run -p potok-codegen -- ../shared/kafka-message-specs crates/potok-protocol/src/generated`"
    );
    for (name, content) in &fresh {
        assert!(
            committed.get(name) == Some(content),
            "{} is out of date; run `cargo run -p potok-codegen -- ../shared/kafka-message-specs crates/potok-protocol/src/generated`",
            name.display()
        );
    }
    assert!(fresh.len() > 150, "only {} generated files", fresh.len());
}
