//! The simulation's seeds and its planted bugs.

use super::*;

#[test]
fn batches_round_trip() {
    let records = vec![MetadataRecord::Topic(TopicRecord {
        name: "x".into(),
        topic_id: Uuid([1; 16]),
        ..Default::default()
    })];
    assert_eq!(decode_batch(&encode_batch(&records)).unwrap(), records);
    assert!(decode_batch(&[0, 0, 0, 9, 1]).is_err());
}

/// Runs `seeds` and checks that the schedules did real work in total.
fn run_seeds(seeds: std::ops::Range<u64>) {
    let mut total = Stats::default();
    let n = seeds.end - seeds.start;
    for seed in seeds {
        let (violations, stats) = run(seed, TICKS, PlantedBug::None);
        assert!(violations.is_empty(), "seed {seed}: {violations:#?}");
        total.committed_batches += stats.committed_batches;
        total.elections += stats.elections;
        total.isr_changes += stats.isr_changes;
        total.controller_changes += stats.controller_changes;
        total.fencings += stats.fencings;
        total.clean_shutdowns += stats.clean_shutdowns;
        total.stale_epochs_refused += stats.stale_epochs_refused;
        total.fencing_checked += stats.fencing_checked;
        total.settle_ticks_max = total.settle_ticks_max.max(stats.settle_ticks_max);
    }
    eprintln!("{n} seeds: {total:?}");
    // The schedules must have done real work, or the checks proved nothing.
    assert!(total.elections > n && total.isr_changes > n, "{total:?}");
    assert!(
        total.controller_changes > n && total.fencings > n,
        "{total:?}"
    );
    assert!(
        total.clean_shutdowns > n / 10 && total.stale_epochs_refused > n / 10,
        "{total:?}"
    );
    assert!(total.fencing_checked > n / 10, "{total:?}");
}

// 2,000 seeds in two halves, so that the test threads share them.
#[test]
fn the_controller_keeps_its_invariants_over_a_faulty_quorum_seeds_0_to_999() {
    run_seeds(0..1_000);
}

#[test]
fn the_controller_keeps_its_invariants_over_a_faulty_quorum_seeds_1000_to_1999() {
    run_seeds(1_000..2_000);
}

fn first_caught(bug: PlantedBug, seeds: u64) -> Option<(u64, Vec<String>)> {
    (0..seeds).find_map(|seed| {
        let (v, _) = run(seed, TICKS, bug);
        (!v.is_empty()).then_some((seed, v))
    })
}

#[test]
fn the_simulation_catches_a_leader_elected_outside_the_isr() {
    let (seed, v) = first_caught(PlantedBug::ElectOutsideIsr, 200)
        .expect("no schedule exposed elections outside the ISR");
    eprintln!("elect-outside-ISR caught with seed {seed}: {}", v[0]);
    assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
}

#[test]
fn the_simulation_catches_a_stale_broker_epoch_accepted() {
    let (seed, v) = first_caught(PlantedBug::AcceptStaleBrokerEpoch, 200)
        .expect("no schedule exposed a stale broker epoch accepted");
    eprintln!("stale-broker-epoch caught with seed {seed}: {}", v[0]);
    assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
}

#[test]
fn the_simulation_catches_a_controller_that_never_fences_a_silent_broker() {
    let (seed, v) = first_caught(PlantedBug::NeverExpireSessions, 200)
        .expect("no schedule exposed sessions that never expire");
    eprintln!("never-expiring sessions caught with seed {seed}: {}", v[0]);
    assert!(run(seed, TICKS, PlantedBug::None).0.is_empty());
}

/// The long run: `cargo test -p potok-controller -- --ignored controller::sim` (50,000 seeds).
#[test]
#[ignore]
fn the_controller_keeps_its_invariants_over_a_faulty_quorum_seeds_2000_to_51999() {
    run_seeds(2_000..52_000);
}
