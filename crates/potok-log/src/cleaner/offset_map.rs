//! [`OffsetMap`]: the latest offset of every key of a log's dirty section, within a memory
//! bound (Kafka's `SkimpyOffsetMap`, sized by `log.cleaner.dedupe.buffer.size`).
//!
//! Kafka stores a 16-byte MD5 digest per key (24 bytes a slot) and accepts that two keys with
//! the same digest would lose one of them. Potok stores the keys themselves, so keys chosen by
//! a hostile producer cannot collide; each entry is charged its key length plus
//! [`ENTRY_OVERHEAD`] bytes against the bound, so the bound holds for any key sizes at the cost
//! of fewer entries per byte than Kafka when keys are longer than 16 bytes.

use std::collections::HashMap;

/// Bytes charged per entry besides the key: the hash table slot (a boxed slice and an offset,
/// 24 bytes) at the table's worst-case load of one half, plus the key allocation's header.
pub const ENTRY_OVERHEAD: usize = 64;

/// Key -> latest offset, bounded in bytes.
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<Box<[u8]>, i64>,
    used: usize,
    limit: usize,
    latest: i64,
}

impl OffsetMap {
    /// A map that holds entries costing at most `limit` bytes in total.
    pub fn new(limit: usize) -> OffsetMap {
        OffsetMap {
            map: HashMap::new(),
            used: 0,
            limit,
            latest: -1,
        }
    }

    /// Empties the map for the next cleaning (the table's capacity is kept, within the bound).
    pub fn clear(&mut self) {
        self.map.clear();
        self.used = 0;
        self.latest = -1;
    }

    /// Records `offset` as the latest for `key`. Returns false, changing nothing, when a new
    /// key does not fit any more (the map is full); an existing key is always updated.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(v) = self.map.get_mut(key) {
            *v = (*v).max(offset);
            return true;
        }
        let cost = key.len() + ENTRY_OVERHEAD;
        if self.used + cost > self.limit {
            return false;
        }
        self.used += cost;
        self.map.insert(key.into(), offset);
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    /// The last offset the map covers: records above it were not looked at (-1 at first).
    pub fn latest_offset(&self) -> i64 {
        self.latest
    }

    /// Raises the last offset covered.
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest = self.latest.max(offset);
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Fraction of the byte bound in use (Kafka's buffer utilization metric).
    pub fn utilization(&self) -> f64 {
        if self.limit == 0 {
            1.0
        } else {
            self.used as f64 / self.limit as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_bytes_and_updates_in_place() {
        let mut m = OffsetMap::new(2 * (ENTRY_OVERHEAD + 1));
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(!m.put(b"c", 3), "a third key does not fit");
        assert!(m.put(b"a", 7), "an existing key is updated");
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"c"), None);
        assert_eq!(m.len(), 2);
        m.update_latest_offset(9);
        assert_eq!(m.latest_offset(), 9);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.latest_offset(), -1);
        assert!(m.put(b"c", 3));
    }
}
