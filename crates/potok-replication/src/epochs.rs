//! Truncation by leader epoch (KIP-101, KIP-279, and Fetch v12's `DivergingEpoch`).
//!
//! Each replica keeps the start offset of every leader epoch in its log (the
//! `leader-epoch-checkpoint`). When a follower fetches it names the epoch of its last record and
//! its log end; the leader answers with the end of that epoch in its own log, and the follower
//! cuts its log there if it diverges. Truncating to the high watermark instead loses records that
//! were acknowledged (KIP-101 scenario 1) or keeps records that diverge (scenario 2).

use potok_records::{LeaderEpoch, Offset};

/// One entry of a leader-epoch cache: `epoch` starts at `start_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochStart {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor`: for `requested`, the largest epoch in `epochs`
/// that is ≤ `requested`, and where it ends — the start offset of the next higher epoch, or
/// `log_end` when it is the latest. `None` when every epoch in the cache is above `requested`
/// (or the cache is empty): the replica knows nothing about that epoch.
///
/// `epochs` must be sorted by epoch with increasing start offsets, as the checkpoint keeps them.
pub fn end_offset_for(
    epochs: &[EpochStart],
    log_end: Offset,
    requested: LeaderEpoch,
) -> Option<(LeaderEpoch, Offset)> {
    let i = epochs.partition_point(|e| e.epoch <= requested);
    if i == 0 {
        return None;
    }
    let found = epochs[i - 1].epoch;
    let end = epochs.get(i).map_or(log_end, |next| next.start_offset);
    Some((found, end))
}

/// The leader's check of a follower's fetch position (Fetch v12+): when the follower's last
/// fetched epoch ends earlier in the leader's log than where the follower is, or the leader does
/// not have that epoch at all, the follower diverges and must truncate; the answer is the
/// leader's `(epoch, end offset)` for it (`DivergingEpoch`). `None`: the follower may go on.
pub fn diverging_epoch(
    leader_epochs: &[EpochStart],
    leader_log_end: Offset,
    last_fetched_epoch: LeaderEpoch,
    fetch_offset: Offset,
) -> Option<(LeaderEpoch, Offset)> {
    match end_offset_for(leader_epochs, leader_log_end, last_fetched_epoch) {
        Some((epoch, end)) if epoch == last_fetched_epoch && end >= fetch_offset => None,
        Some(answer) => Some(answer),
        // Every epoch the leader knows is newer (its older ones went with retention): Kafka's
        // `LeaderEpochFileCache.endOffsetFor` answers the requested epoch ending where the
        // leader's first known epoch starts, so the follower keeps at most what lies below the
        // leader's data and its next fetch below the leader's log start is answered
        // OFFSET_OUT_OF_RANGE. (An epoch of -1 would read as "no divergence" on the wire.)
        None => {
            let first = leader_epochs.first()?.start_offset;
            (first < fetch_offset).then_some((last_fetched_epoch, first))
        }
    }
}

/// Where a follower truncates its log after the leader answered `diverging` for its fetch: the
/// smaller of the leader's end offset for that epoch and the follower's own end offset for the
/// same epoch (KIP-279: with several leader changes the follower may have an epoch the leader
/// never had, and must go back to the last epoch both know). When the leader knows no epoch that
/// old, or the follower does not have the epoch either, nothing can be verified and the follower
/// truncates to its log start, `log_start` (its next fetch below the leader's log start is then
/// answered OFFSET_OUT_OF_RANGE and it starts over from the leader's log start, as in Kafka).
pub fn truncation_offset(
    follower_epochs: &[EpochStart],
    follower_log_end: Offset,
    log_start: Offset,
    diverging: (LeaderEpoch, Offset),
) -> Offset {
    let (epoch, leader_end) = diverging;
    if epoch.0 < 0 {
        return log_start;
    }
    match end_offset_for(follower_epochs, follower_log_end, epoch) {
        Some((_, own_end)) => leader_end.min(own_end).max(log_start),
        None => log_start,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> Vec<EpochStart> {
        entries
            .iter()
            .map(|&(e, o)| EpochStart {
                epoch: LeaderEpoch(e),
                start_offset: Offset(o),
            })
            .collect()
    }

    /// Runs the fetch/truncate exchange until the follower no longer diverges and returns the
    /// offset its log ends at.
    fn reconcile(
        leader: &[EpochStart],
        leader_end: i64,
        follower: &[EpochStart],
        follower_end: i64,
    ) -> i64 {
        let mut f_epochs = follower.to_vec();
        let mut f_end = Offset(follower_end);
        for _ in 0..10 {
            let last = f_epochs.last().map_or(LeaderEpoch(-1), |e| e.epoch);
            match diverging_epoch(leader, Offset(leader_end), last, f_end) {
                None => return f_end.0,
                Some(d) => {
                    f_end = truncation_offset(&f_epochs, f_end, Offset(0), d);
                    // The follower's cache loses the epochs that start at or after the cut.
                    f_epochs.retain(|e| e.start_offset < f_end);
                }
            }
        }
        panic!("no agreement after 10 rounds");
    }

    #[test]
    fn end_offsets_follow_the_cache() {
        let c = cache(&[(0, 0), (2, 5), (5, 9)]);
        assert_eq!(
            end_offset_for(&c, Offset(12), LeaderEpoch(0)),
            Some((LeaderEpoch(0), Offset(5)))
        );
        assert_eq!(
            end_offset_for(&c, Offset(12), LeaderEpoch(1)),
            Some((LeaderEpoch(0), Offset(5)))
        );
        assert_eq!(
            end_offset_for(&c, Offset(12), LeaderEpoch(4)),
            Some((LeaderEpoch(2), Offset(9)))
        );
        assert_eq!(
            end_offset_for(&c, Offset(12), LeaderEpoch(7)),
            Some((LeaderEpoch(5), Offset(12)))
        );
        assert_eq!(
            end_offset_for(&cache(&[(3, 4)]), Offset(6), LeaderEpoch(2)),
            None
        );
    }

    #[test]
    fn kip_101_scenario_1_no_truncation_to_the_high_watermark() {
        // Leader A and follower B both hold m0, m1 in epoch 0; B's high watermark is still 1.
        // B restarts. Truncating to its high watermark would drop m1, which A may have
        // acknowledged; by epoch, B keeps it because A's epoch 0 ends at 2.
        let a = cache(&[(0, 0)]);
        let b = cache(&[(0, 0)]);
        assert_eq!(reconcile(&a, 2, &b, 2), 2);
    }

    #[test]
    fn kip_101_scenario_2_divergent_tails_are_cut() {
        // A: m0 m1 (epoch 0). B: m0 (epoch 0). Both crash; B comes back first, leads epoch 1 and
        // writes m2 at offset 1. A returns as a follower: its m1 at offset 1 diverges from B's
        // m2 and must go, so that both logs hold m0 m2.
        let b_leader = cache(&[(0, 0), (1, 1)]);
        let a_follower = cache(&[(0, 0)]);
        assert_eq!(reconcile(&b_leader, 2, &a_follower, 2), 1);
    }

    #[test]
    fn kip_279_epochs_the_leader_never_had() {
        // Follower: epochs 0 (0..3), 1 (3..6), 3 (6..8) — it led epochs 1 and 3 without the
        // leader copying them. Leader: epochs 0 (0..3), 2 (3..10). The follower keeps epoch 0's
        // records only, over two rounds (epoch 3 → leader's epoch 2 ends at 10; the follower's
        // own end for epoch 2 is 6 → cut to 6; then epoch 1 → leader answers (0, 3) → cut to 3).
        let leader = cache(&[(0, 0), (2, 3)]);
        let follower = cache(&[(0, 0), (1, 3), (3, 6)]);
        assert_eq!(reconcile(&leader, 10, &follower, 8), 3);
    }

    #[test]
    fn a_follower_behind_in_the_same_epoch_is_not_truncated() {
        let c = cache(&[(0, 0), (4, 10)]);
        assert_eq!(
            diverging_epoch(&c, Offset(20), LeaderEpoch(4), Offset(15)),
            None
        );
        assert_eq!(
            diverging_epoch(&c, Offset(20), LeaderEpoch(0), Offset(10)),
            None
        );
        // Ahead of the leader in an old epoch: cut back to where that epoch ends.
        assert_eq!(
            diverging_epoch(&c, Offset(20), LeaderEpoch(0), Offset(12)),
            Some((LeaderEpoch(0), Offset(10)))
        );
    }

    #[test]
    fn an_epoch_older_than_the_leader_knows_ends_where_the_leader_data_starts() {
        // The leader's epochs start at 100 (older ones deleted). A follower at 50 in epoch 2
        // holds nothing the leader contradicts: no divergence, and its fetch below the leader's
        // log start is then answered OFFSET_OUT_OF_RANGE.
        let leader = cache(&[(5, 100)]);
        assert_eq!(
            diverging_epoch(&leader, Offset(120), LeaderEpoch(2), Offset(50)),
            None
        );
        // A follower past the leader's first epoch start in an epoch the leader never had cuts
        // back to that start.
        let d = diverging_epoch(&leader, Offset(120), LeaderEpoch(2), Offset(110)).unwrap();
        assert_eq!(d, (LeaderEpoch(2), Offset(100)));
        let follower = cache(&[(2, 0)]);
        assert_eq!(
            truncation_offset(&follower, Offset(110), Offset(0), d),
            Offset(100)
        );
        // A leader with no epoch at all (an empty log that never led) reports no divergence.
        assert_eq!(
            diverging_epoch(&[], Offset(0), LeaderEpoch(2), Offset(5)),
            None
        );
        // The empty-epoch entry of a replica that led without writing: cut to its start.
        let led_empty = cache(&[(0, 0)]);
        let leader1 = cache(&[(1, 0)]);
        assert_eq!(
            diverging_epoch(&leader1, Offset(4), LeaderEpoch(0), Offset(0)),
            None,
            "nothing to cut: it fetches from 0 and adopts epoch 1"
        );
        assert_eq!(
            truncation_offset(
                &led_empty,
                Offset(3),
                Offset(0),
                (LeaderEpoch(0), Offset(0))
            ),
            Offset(0)
        );
    }
}
