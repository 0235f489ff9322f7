//! Per-partition load and unload (a broker in a cluster serves the groups of the
//! `__consumer_offsets` partitions it leads): NOT_COORDINATOR before a load and after an
//! unload, COORDINATOR_LOAD_IN_PROGRESS during one, the groups and offsets of the log after it,
//! parked requests completed on unload, stale loads dropped.

use super::*;

/// A coordinator that serves no partition yet, with the harness's settings.
fn partitioned() -> H {
    let mut h = H::new();
    let config = h.c.config().clone();
    h.c = GroupCoordinator::new_partitioned(config, h.now);
    h
}

/// Every record persisted so far, as a loader of that partition's log would read it.
fn loader_of(out: &[Output], partition: i32) -> Loader {
    let mut l = Loader::new();
    for o in out {
        if let Output::Persist {
            partition: p,
            records,
            ..
        } = o
        {
            if *p == partition {
                for r in records {
                    l.apply(Some(&r.key), r.value.as_deref());
                }
            }
        }
    }
    l
}

#[test]
fn a_partition_is_served_only_after_its_load() {
    let mut h = partitioned();
    let p = h.c.partition_for("g");
    assert_eq!(h.c.check_coordinator("g"), Err(ErrorCode::NotCoordinator));
    let t = h.join("");
    assert_eq!(h.join_reply(t).unwrap().error, ErrorCode::NotCoordinator);
    assert_eq!(h.commit("", -1, "t", 0, 5), ErrorCode::NotCoordinator);
    assert_eq!(
        h.c.fetch_offsets("g", None).error,
        ErrorCode::NotCoordinator
    );
    assert!(
        h.persisted().is_empty(),
        "nothing is written for a group not served"
    );

    h.c.begin_load(p, 3, h.now);
    assert!(h.c.is_loading());
    assert_eq!(h.hb("m", 1), ErrorCode::CoordinatorLoadInProgress);
    let t = h.join("");
    assert_eq!(
        h.join_reply(t).unwrap().error,
        ErrorCode::CoordinatorLoadInProgress
    );
    // Another partition stays unserved.
    let other = (0..100)
        .map(|i| format!("x{i}"))
        .find(|g| h.c.partition_for(g) != p)
        .unwrap();
    assert_eq!(
        h.c.check_coordinator(&other),
        Err(ErrorCode::NotCoordinator)
    );
    // A load of an older epoch is stale.
    assert!(h.c.complete_load(p, 2, Loader::new(), h.now).is_none());
    assert!(h.c.is_loading());
    let report = h.c.complete_load(p, 3, Loader::new(), h.now).unwrap();
    assert_eq!(report.groups, 0);
    assert!(!h.c.is_loading());
    assert_eq!(h.c.served_partitions(), Some(vec![p]));
    assert_eq!(h.commit("", -1, "t", 0, 5), ErrorCode::None);
    assert_eq!(h.committed("t", 0), 5);
}

/// The state written by one coordinator is what another loads from the partition's log: the
/// group Stable at its generation with its members and assignments, the committed offsets.
#[test]
fn a_load_rebuilds_the_groups_of_the_partition_log() {
    let mut old = partitioned();
    let p = old.c.partition_for("g");
    old.c.begin_load(p, 0, old.now);
    old.c.complete_load(p, 0, Loader::new(), old.now).unwrap();
    let (leader, follower) = old.stable_pair();
    assert_eq!(old.commit(&leader, 1, "t", 0, 42), ErrorCode::None);
    assert_eq!(old.commit(&follower, 1, "t", 1, 7), ErrorCode::None);

    let mut new = partitioned();
    new.now = old.now;
    new.c.begin_load(p, 1, new.now);
    let report = new
        .c
        .complete_load(p, 1, loader_of(&old.out, p), new.now)
        .unwrap();
    assert_eq!((report.groups, report.offsets), (1, 2));
    assert_eq!(new.state(), (GroupState::Stable, 1));
    assert_eq!(new.committed("t", 0), 42);
    assert_eq!(new.committed("t", 1), 7);
    // The members carry on in their generation.
    assert_eq!(new.hb(&leader, 1), ErrorCode::None);
    assert_eq!(new.hb(&follower, 1), ErrorCode::None);
}

/// Unloading drops the partition's groups: parked JoinGroup and SyncGroup requests are
/// answered NOT_COORDINATOR, the groups' timers are gone, later requests answer
/// NOT_COORDINATOR, and a later load at a newer epoch serves the logged state again.
#[test]
fn an_unload_completes_parked_requests_and_forgets_the_groups() {
    let mut h = partitioned();
    let p = h.c.partition_for("g");
    h.c.begin_load(p, 0, h.now);
    h.c.complete_load(p, 0, Loader::new(), h.now).unwrap();
    let (leader, follower) = h.stable_pair();
    assert_eq!(h.commit(&leader, 1, "t", 0, 9), ErrorCode::None);
    let written = std::mem::take(&mut h.out);
    // A new member starts a rebalance: its JoinGroup parks, and so does the follower's
    // rejoin.
    let (_, t_new) = h.new_member();
    assert_eq!(h.hb(&follower, 1), ErrorCode::RebalanceInProgress);
    let t_follower = h.join(&follower);
    assert!(h.join_reply(t_new).is_none() && h.join_reply(t_follower).is_none());

    h.c.unload(p, h.now);
    h.collect();
    assert_eq!(
        h.join_reply(t_new).unwrap().error,
        ErrorCode::NotCoordinator
    );
    assert_eq!(
        h.join_reply(t_follower).unwrap().error,
        ErrorCode::NotCoordinator
    );
    assert_eq!(h.c.group_count(), 0);
    assert_eq!(h.c.served_partitions(), Some(vec![]));
    assert_eq!(h.hb(&leader, 1), ErrorCode::NotCoordinator);
    assert_eq!(h.commit(&leader, 1, "t", 0, 10), ErrorCode::NotCoordinator);
    // Only the offset-expiry task is left; firing it touches nothing.
    assert_eq!(
        h.c.next_deadline(),
        Some(1_000_000 + GroupConfig::default().offsets_retention_check_interval_ms)
    );
    h.advance(i64::from(SESSION) * 3);
    assert!(h.out.is_empty(), "no timer of an unloaded group fires");

    // A parked SyncGroup is completed too.
    let mut s = partitioned();
    s.c.begin_load(p, 0, s.now);
    s.c.complete_load(p, 0, Loader::new(), s.now).unwrap();
    let (a, ta) = s.new_member();
    let (_, tb) = s.new_member();
    s.advance(i64::from(DELAY) * 2);
    let ra = s.join_reply(ta).unwrap();
    let rb = s.join_reply(tb).unwrap();
    let follower = if ra.leader == a { rb.member_id } else { a };
    let ts = s.sync(&follower, 1, vec![]);
    assert!(s.sync_reply(ts).is_none(), "the follower's sync parks");
    s.c.unload(p, s.now);
    s.collect();
    assert_eq!(s.sync_reply(ts).unwrap().error, ErrorCode::NotCoordinator);

    // Elected again (a newer epoch): the log's state is back.
    h.c.begin_load(p, 2, h.now);
    h.c.complete_load(p, 2, loader_of(&written, p), h.now)
        .unwrap();
    assert_eq!(h.committed("t", 0), 9);
    assert_eq!(h.state(), (GroupState::Stable, 1));
}

/// `begin_load` at a newer epoch while a partition is served unloads it first (the log may
/// have changed under other leaders), and a load at an epoch not newer is ignored.
#[test]
fn a_newer_election_reloads_and_an_older_one_is_ignored() {
    let mut h = partitioned();
    let p = h.c.partition_for("g");
    h.c.begin_load(p, 4, h.now);
    h.c.complete_load(p, 4, Loader::new(), h.now).unwrap();
    assert_eq!(h.commit("", -1, "t", 0, 1), ErrorCode::None);
    h.c.begin_load(p, 3, h.now);
    assert_eq!(h.c.check_coordinator("g"), Ok(()));
    h.c.begin_load(p, 5, h.now);
    assert_eq!(
        h.c.check_coordinator("g"),
        Err(ErrorCode::CoordinatorLoadInProgress)
    );
    assert_eq!(h.c.group_count(), 0);
    // A single-node coordinator serves everything and ignores loads and unloads.
    let mut single = H::new();
    single.c.unload(p, single.now);
    assert_eq!(single.c.check_coordinator("g"), Ok(()));
    assert_eq!(single.c.served_partitions(), None);
}
