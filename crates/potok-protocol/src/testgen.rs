//! Random value generation for the property tests (test builds only).
//!
//! The generator emits a `Random` implementation for every struct that only produces values valid
//! for the requested version: fields absent at that version keep their defaults, and fields that
//! are not nullable at that version are never null. Randomness comes from a small seeded PRNG so
//! that proptest drives it through a `u64` seed (cheap to compile compared with generated
//! proptest strategies for ~900 structs).

use crate::codec::{RawTaggedField, Uuid};
use bytes::Bytes;

/// Implemented by every generated struct in test builds.
pub(crate) trait Random: Sized {
    /// A random value valid at `version`.
    fn random(g: &mut Gen, version: i16) -> Self;
}

/// A seeded splitmix64 generator with helpers for Kafka field types.
pub(crate) struct Gen {
    state: u64,
    /// Nesting depth, used to keep nested arrays small.
    depth: u32,
    /// Whether to add unknown tagged fields to flexible structs.
    pub unknown_tags: bool,
}

impl Gen {
    pub(crate) fn new(seed: u64) -> Gen {
        Gen {
            state: seed,
            depth: 0,
            unknown_tags: true,
        }
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// Integers biased towards edge values, which exercise sign handling.
    fn int(&mut self) -> i64 {
        match self.below(4) {
            0 => 0,
            1 => -1,
            2 => self.next() as i64,
            _ => self.below(1000) as i64,
        }
    }
    pub(crate) fn i8(&mut self) -> i8 {
        self.int() as i8
    }
    pub(crate) fn i16(&mut self) -> i16 {
        self.int() as i16
    }
    pub(crate) fn i32(&mut self) -> i32 {
        self.int() as i32
    }
    pub(crate) fn i64(&mut self) -> i64 {
        self.int()
    }
    pub(crate) fn u16(&mut self) -> u16 {
        self.int() as u16
    }
    // No current message has a uint32 field, but the generator supports the type.
    #[allow(dead_code)]
    pub(crate) fn u32(&mut self) -> u32 {
        self.int() as u32
    }
    pub(crate) fn f64(&mut self) -> f64 {
        // Finite values only: NaN != NaN would make equality-based round-trip checks meaningless.
        (self.int() as f64) / 8.0
    }
    pub(crate) fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub(crate) fn uuid(&mut self) -> Uuid {
        let a = self.next().to_be_bytes();
        let b = self.next().to_be_bytes();
        let mut u = [0u8; 16];
        u[..8].copy_from_slice(&a);
        u[8..].copy_from_slice(&b);
        Uuid(u)
    }
    pub(crate) fn str(&mut self) -> String {
        let n = self.below(12);
        (0..n)
            .map(|_| {
                let c = self.below(40) as u8;
                match c {
                    0..=25 => (b'a' + c) as char,
                    26..=35 => (b'0' + c - 26) as char,
                    36 => '-',
                    37 => '.',
                    38 => '_',
                    _ => 'é',
                }
            })
            .collect()
    }
    pub(crate) fn bytes(&mut self) -> Bytes {
        let n = self.below(24) as usize;
        Bytes::from((0..n).map(|_| self.next() as u8).collect::<Vec<u8>>())
    }
    pub(crate) fn records(&mut self) -> Bytes {
        self.bytes()
    }
    pub(crate) fn option<T>(&mut self, nullable: bool, f: impl FnOnce(&mut Gen) -> T) -> Option<T> {
        if nullable && self.below(4) == 0 {
            None
        } else {
            Some(f(self))
        }
    }
    pub(crate) fn vec<T>(&mut self, mut f: impl FnMut(&mut Gen) -> T) -> Vec<T> {
        let max = if self.depth >= 2 { 2 } else { 4 };
        let n = self.below(max);
        self.depth += 1;
        let v = (0..n).map(|_| f(self)).collect();
        self.depth -= 1;
        v
    }
    /// Unknown tagged fields with tags far above any tag Kafka defines, sorted and unique, so
    /// every implementation writes them in the same place (after the known ones).
    pub(crate) fn unknown_tagged_fields(&mut self) -> Vec<RawTaggedField> {
        if !self.unknown_tags || self.below(4) != 0 {
            return Vec::new();
        }
        let n = 1 + self.below(2);
        (0..n)
            .map(|i| RawTaggedField {
                tag: 1000 + (i as u32) * 7 + self.below(5) as u32,
                data: self.bytes(),
            })
            .collect()
    }
}

/// Checks `decode(encode(x)) == x` and `encode(x).len() == encoded_size(x)` for a random value of
/// every valid version of `T`.
pub(crate) fn round_trip_all_versions<T>(seed: u64) -> Result<(), String>
where
    T: crate::codec::Wire + crate::codec::Message + Random + PartialEq + std::fmt::Debug,
{
    let (lo, hi) = T::VALID_VERSIONS;
    for version in lo..=hi {
        let mut g = Gen::new(seed ^ (version as u64).wrapping_mul(0x1234_5678_9abc_def1));
        let x = T::random(&mut g, version);
        round_trip_value(&x, version).map_err(|e| format!("{} v{version}: {e}", T::NAME))?;
    }
    Ok(())
}

/// Encodes `x` at `version`, checks the size against `encoded_size` and decodes it back.
pub(crate) fn round_trip_value<T>(x: &T, version: i16) -> Result<(), String>
where
    T: crate::codec::Wire + PartialEq + std::fmt::Debug,
{
    use crate::codec::{Decode, Encode};
    let mut buf = bytes::BytesMut::new();
    x.encode(&mut buf, version)
        .map_err(|e| format!("encode failed: {e} for {x:?}"))?;
    let size = x
        .encoded_size(version)
        .map_err(|e| format!("encoded_size failed: {e}"))?;
    if size != buf.len() {
        return Err(format!(
            "encoded_size {size} != encoded length {}",
            buf.len()
        ));
    }
    let mut b = buf.freeze();
    let y = T::decode(&mut b, version).map_err(|e| format!("decode failed: {e} for {x:?}"))?;
    if !b.is_empty() {
        return Err(format!("{} trailing bytes after decode", b.len()));
    }
    if &y != x {
        return Err(format!("round trip mismatch:\n  {x:?}\n  {y:?}"));
    }
    Ok(())
}
