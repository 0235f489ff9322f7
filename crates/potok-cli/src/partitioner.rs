//! Client-side partitioners for `potok produce --partitioner`, installed into librdkafka as a
//! custom partitioner callback.
//!
//! `murmur2` places keyed records exactly where the Java client's default partitioner puts them
//! (`BuiltInPartitioner.partitionForKey`: `toPositive(murmur2(key)) % numPartitions`), so a
//! topic written by `potok produce` and by a Java application keeps one partition per key. Records
//! without a key are left to librdkafka's sticky partitioning, which is what the Java client does
//! for them since KIP-480.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::Partitioner;

/// Kafka's 32-bit murmur2 hash (`org.apache.kafka.common.utils.Utils.murmur2`): MurmurHash2 with
/// seed `0x9747b28c`, reading the input as little-endian 4-byte words.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java mixes the length in as an int; keys longer than 2^31 bytes cannot exist on the wire.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        let mut k = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = words.remainder();
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key` among `partitions`.
/// `toPositive` clears the sign bit (rather than taking `abs`, which overflows for `i32::MIN`).
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    debug_assert!(partitions > 0);
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// `--partitioner` choices.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Java-compatible: murmur2 of the key; records without a key stick to one partition for a
    /// while (librdkafka's `sticky.partitioning.linger.ms`), as in KIP-480.
    Murmur2,
    /// Ignore keys; each record goes to the next partition in turn.
    RoundRobin,
    /// Ignore keys; stay on one partition, move to another one every `--linger-ms` (at least 10 ms)
    /// so batches fill up (Kafka's former `UniformStickyPartitioner`).
    Sticky,
    /// Ignore keys; a uniformly random partition per record.
    Random,
}

/// A [`Partitioner`] implementing [`Strategy`]. It is called by librdkafka from its own threads,
/// so all state is atomics.
pub struct CliPartitioner {
    strategy: Strategy,
    counter: AtomicU32,
    rng: AtomicU64,
    sticky: AtomicU64,
    started: Instant,
    sticky_ms: u64,
}

impl CliPartitioner {
    /// A partitioner for `strategy`; `sticky_ms` is how long [`Strategy::Sticky`] keeps a
    /// partition.
    pub fn new(strategy: Strategy, sticky_ms: u64) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x2545_f491_4f6c_dd1d)
            | 1;
        CliPartitioner {
            strategy,
            counter: AtomicU32::new(0),
            rng: AtomicU64::new(seed),
            // Epoch 0 is "no partition chosen yet" so the first record picks one.
            sticky: AtomicU64::new(u64::MAX),
            started: Instant::now(),
            sticky_ms: sticky_ms.max(10),
        }
    }

    /// xorshift64*: statistically fine for spreading records, and needs no extra crate.
    fn next_random(&self) -> u64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Whether librdkafka must call this partitioner for records without a key too (it skips
    /// the callback for them while `sticky.partitioning.linger.ms` is non-zero).
    pub fn handles_unkeyed(&self) -> bool {
        self.strategy != Strategy::Murmur2
    }
}

impl Partitioner for CliPartitioner {
    fn partition(
        &self,
        _topic_name: &str,
        key: Option<&[u8]>,
        partition_cnt: i32,
        _is_partition_available: impl Fn(i32) -> bool,
    ) -> i32 {
        if partition_cnt <= 0 {
            return rdkafka::producer::PARTITION_UA;
        }
        let n = partition_cnt as u64;
        match self.strategy {
            Strategy::Murmur2 => match key {
                Some(k) => partition_for_key(k, partition_cnt),
                None => (self.next_random() % n) as i32,
            },
            Strategy::RoundRobin => {
                (u64::from(self.counter.fetch_add(1, Ordering::Relaxed)) % n) as i32
            }
            Strategy::Random => (self.next_random() % n) as i32,
            Strategy::Sticky => {
                // The state packs (epoch << 32 | partition); a new epoch starts every sticky_ms.
                let epoch = self.started.elapsed().as_millis() as u64 / self.sticky_ms;
                let state = self.sticky.load(Ordering::Relaxed);
                if state != u64::MAX && state >> 32 == epoch & 0xffff_ffff {
                    return ((state & 0xffff_ffff) % n) as i32;
                }
                let p = self.next_random() % n;
                self.sticky
                    .store(((epoch & 0xffff_ffff) << 32) | p, Ordering::Relaxed);
                p as i32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vectors of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka_test_vectors() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, want) in cases {
            assert_eq!(
                murmur2(input),
                want,
                "murmur2({:?})",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn partition_for_key_is_non_negative_and_in_range() {
        for i in 0..10_000u32 {
            let key = i.to_be_bytes();
            let p = partition_for_key(&key, 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, (murmur2(&key) & 0x7fff_ffff) % 7);
        }
        // "foobar" hashes negative: toPositive(-790332482) = 1357151166, and 1357151166 % 10 = 6.
        assert_eq!(partition_for_key(b"foobar", 10), 6);
    }

    #[test]
    fn round_robin_cycles() {
        let p = CliPartitioner::new(Strategy::RoundRobin, 0);
        let got: Vec<i32> = (0..6)
            .map(|_| p.partition("t", Some(b"k"), 3, |_| true))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn random_and_sticky_stay_in_range() {
        for s in [Strategy::Random, Strategy::Sticky, Strategy::Murmur2] {
            let p = CliPartitioner::new(s, 10);
            for _ in 0..1000 {
                let got = p.partition("t", None, 5, |_| true);
                assert!((0..5).contains(&got), "{s:?} gave {got}");
            }
        }
    }
}
