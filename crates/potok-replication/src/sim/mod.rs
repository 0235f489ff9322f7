//! A deterministic simulation of partition replication (issue 18, test-only): three replicas
//! each with an in-memory log of `(offset, epoch, value)` records, driven by the crate's
//! [`crate::LeaderState`] and [`crate::FollowerState`] as a broker drives them; a simple
//! controller (`controller.rs`) that fences crashed brokers, elects leaders from the ISR with
//! epoch bumps and commits AlterPartition; producers writing unique values with `acks=all` and
//! `min.insync.replicas=2`. A seed fixes everything: crashes that lose the unflushed tail of
//! the log (Kafka's default flush settings leave it to the page cache), restarts under a new
//! broker epoch, controlled elections, message loss, duplication, delay (hence reordering) and
//! cut links between brokers, then a healing phase.
//!
//! The checker (`check.rs`) holds, at every step:
//! - no record acknowledged with `acks=all` is lost or replaced: every acknowledged record lies
//!   in the committed prefix, and every new leader's log holds the whole committed prefix;
//! - logs agree below each replica's high watermark (the committed prefix is the same on all);
//! - a leader's high watermark never moves back within its epoch;
//! - leader epochs only grow (the controller's, each replica's view, each log's epochs);
//!
//! and at the end of the healing phase, when the partition has a leader, every replica holds
//! the leader's log and the high watermark reached its end.
//!
//! [`Bugs`] plants the bugs the checker must catch, in the simulation's driver only (never in
//! the crate's state machines): truncating to the high watermark instead of by epoch, electing
//! a leader outside the ISR, and acting on a pending ISR shrink.

pub mod check;
pub mod controller;
pub mod log;
pub mod replica;
pub mod world;

use potok_metadata::{BrokerId, PartitionState};
use potok_records::{LeaderEpoch, Offset};

use crate::follower::{FetchAnswer, FetchPosition};
use controller::AlterError;
use log::Rec;

/// SplitMix64: small, fast, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x005E_ED0F_D07A)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

/// The bugs the simulation must catch, planted in its driver.
#[derive(Clone, Copy, Debug, Default)]
pub struct Bugs {
    /// Pre-KIP-101 followers: on a leader change, and on a diverging epoch, cut the log at the
    /// high watermark instead of where the epochs say.
    pub truncate_to_high_watermark: bool,
    /// The controller elects any live replica, not only ISR members.
    pub elect_outside_isr: bool,
    /// The leader treats its ISR shrink as committed as soon as it sends AlterPartition (for
    /// the high watermark, `acks=all` and `min.insync.replicas`), instead of using the maximal
    /// ISR until the controller commits it (KIP-497).
    pub act_on_pending_shrink: bool,
}

pub struct SimConfig {
    pub replicas: usize,
    pub tick_ms: i64,
    pub fault_ticks: u64,
    pub heal_ticks: u64,
    pub min_isr: usize,
    /// `replica.lag.time.max.ms`.
    pub lag_max_ms: i64,
    /// `replica.fetch.backoff.ms`.
    pub fetch_backoff_ms: i64,
    /// A request without an answer after this many ticks failed (fetches, AlterPartition).
    pub request_timeout_ticks: u64,
    pub produce_timeout_ticks: u64,
    pub max_fetch_records: usize,
    pub p_produce: f64,
    pub p_crash: f64,
    pub p_election: f64,
    pub p_loss: f64,
    pub p_duplicate: f64,
    pub max_delay_ticks: u64,
    pub p_cut: f64,
    pub p_flush: f64,
    pub p_metadata: f64,
    /// DeleteRecords on the leader, below its high watermark (so followers behind it get
    /// OFFSET_OUT_OF_RANGE and restart at its log start).
    pub p_delete_records: f64,
    pub bugs: Bugs,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            replicas: 3,
            tick_ms: 100,
            fault_ticks: 200,
            heal_ticks: 120,
            min_isr: 2,
            lag_max_ms: 2_000,
            fetch_backoff_ms: 300,
            request_timeout_ticks: 8,
            produce_timeout_ticks: 60,
            max_fetch_records: 8,
            p_produce: 0.6,
            p_crash: 0.015,
            p_election: 0.015,
            p_loss: 0.05,
            p_duplicate: 0.02,
            max_delay_ticks: 4,
            p_cut: 0.02,
            p_flush: 0.1,
            p_metadata: 0.5,
            p_delete_records: 0.01,
            bugs: Bugs::default(),
        }
    }
}

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Node {
    Broker(usize),
    Controller,
}

/// The messages between brokers and the controller. Answers name the broker epoch of the
/// incarnation that asked: a connection does not outlive its process.
#[derive(Clone, Debug)]
pub enum Msg {
    Fetch {
        id: u64,
        from: usize,
        pos: FetchPosition,
    },
    FetchAnswer {
        id: u64,
        to_epoch: i64,
        answer: FetchAnswer,
        records: Vec<Rec>,
    },
    Offsets {
        id: u64,
        from: usize,
        from_epoch: i64,
        epoch: LeaderEpoch,
    },
    OffsetsAnswer {
        id: u64,
        to_epoch: i64,
        answer: Option<(Offset, Offset)>,
    },
    Alter {
        proposal: u64,
        from: BrokerId,
        from_epoch: i64,
        leader_epoch: LeaderEpoch,
        partition_epoch: i32,
        isr: Vec<(BrokerId, i64)>,
    },
    AlterAnswer {
        proposal: u64,
        to_epoch: i64,
        leader_epoch: LeaderEpoch,
        result: Result<PartitionState, AlterError>,
    },
}

/// What one seed did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub produced: u64,
    /// Writes a leader refused with NOT_ENOUGH_REPLICAS (`min.insync.replicas`).
    pub refused: u64,
    /// Writes appended by a leader the controller had already replaced (it had not learnt it).
    pub deposed_writes: u64,
    pub acked: u64,
    pub crashes: u64,
    pub elections: u64,
    pub truncations: u64,
    pub resets: u64,
    pub offline: bool,
}

/// Runs one seed; `Err` names the broken invariant.
pub fn run_seed(seed: u64, cfg: &SimConfig) -> Result<Stats, String> {
    world::World::new(seed, cfg).run()
}

mod tests;
