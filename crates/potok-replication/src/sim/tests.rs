//! The simulation's seed runs: the invariants over 10,000 seeds in the normal test run (more
//! with `POTOK_SIM_SEEDS`, see `docs/replication.md`), and each planted bug caught within
//! 10,000 seeds.

use super::*;

/// Seeds to run: `POTOK_SIM_SEEDS` or `default`, starting at `POTOK_SIM_FIRST_SEED` or 0.
fn seeds(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let first = var("POTOK_SIM_FIRST_SEED").unwrap_or(0);
    first..first + var("POTOK_SIM_SEEDS").unwrap_or(default)
}

fn run_clean(seeds: std::ops::Range<u64>) {
    let cfg = SimConfig::default();
    let mut total = Stats::default();
    let mut offline = 0u64;
    let count = seeds.end - seeds.start;
    for seed in seeds {
        let s = run_seed(seed, &cfg).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        total.produced += s.produced;
        total.refused += s.refused;
        total.deposed_writes += s.deposed_writes;
        total.acked += s.acked;
        total.crashes += s.crashes;
        total.elections += s.elections;
        total.truncations += s.truncations;
        total.resets += s.resets;
        offline += u64::from(s.offline);
    }
    eprintln!(
        "{count} seeds: {} produced ({} by deposed leaders), {} refused for min.insync.replicas, {} acknowledged, \
         {} crashes, {} elections, {} truncations, {} restarts at the leader's log start, \
         {offline} seeds ended offline",
        total.produced,
        total.deposed_writes,
        total.refused,
        total.acked,
        total.crashes,
        total.elections,
        total.truncations,
        total.resets
    );
    // The schedules must exercise what the invariants are about, or the run proves little.
    assert!(total.acked > count * 20, "too few acknowledged writes");
    assert!(
        total.deposed_writes > count / 100,
        "too few writes on deposed leaders"
    );
    assert!(total.refused > count, "too few refused writes");
    assert!(total.crashes > count, "too few crashes");
    assert!(total.elections > count, "too few elections");
    assert!(total.truncations > count / 10, "too few divergent tails");
    assert!(
        total.resets > count / 100,
        "too few OFFSET_OUT_OF_RANGE restarts"
    );
    assert!(offline * 5 < count, "too many seeds ended offline");
}

#[test]
fn ten_thousand_seeds_keep_the_invariants() {
    run_clean(seeds(10_000));
}

/// The long run (`cargo test -p potok-replication --release -- --ignored sim`).
#[test]
#[ignore]
fn a_hundred_thousand_seeds_keep_the_invariants() {
    run_clean(seeds(100_000));
}

/// The first seed below 10,000 whose run breaks an invariant with `bugs` planted.
fn first_caught(bugs: Bugs) -> (u64, String) {
    let cfg = SimConfig {
        bugs,
        ..SimConfig::default()
    };
    for seed in 0..10_000 {
        if let Err(e) = run_seed(seed, &cfg) {
            eprintln!("{bugs:?} caught by seed {seed}: {e}");
            return (seed, e);
        }
    }
    panic!("{bugs:?} survived 10,000 seeds");
}

#[test]
fn planted_truncation_to_the_high_watermark_is_caught() {
    first_caught(Bugs {
        truncate_to_high_watermark: true,
        ..Bugs::default()
    });
}

#[test]
fn planted_election_outside_the_isr_is_caught() {
    first_caught(Bugs {
        elect_outside_isr: true,
        ..Bugs::default()
    });
}

#[test]
fn planted_action_on_a_pending_isr_shrink_is_caught() {
    first_caught(Bugs {
        act_on_pending_shrink: true,
        ..Bugs::default()
    });
}

#[test]
fn a_seed_is_deterministic() {
    let cfg = SimConfig::default();
    for seed in [1, 77, 4242] {
        let a = run_seed(seed, &cfg).unwrap();
        let b = run_seed(seed, &cfg).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }
}

/// How many seeds catch each planted bug (for `docs/replication.md`; run with `--ignored`).
#[test]
#[ignore]
fn planted_bug_detection_rates() {
    let bugs = [
        Bugs {
            truncate_to_high_watermark: true,
            ..Bugs::default()
        },
        Bugs {
            elect_outside_isr: true,
            ..Bugs::default()
        },
        Bugs {
            act_on_pending_shrink: true,
            ..Bugs::default()
        },
    ];
    for bugs in bugs {
        let cfg = SimConfig {
            bugs,
            ..SimConfig::default()
        };
        let range = seeds(10_000);
        let count = range.end - range.start;
        let caught = range.filter(|s| run_seed(*s, &cfg).is_err()).count();
        eprintln!("{bugs:?}: caught by {caught} of {count} seeds");
        assert!(caught > 0);
    }
}
