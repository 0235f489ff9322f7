//! Newtypes for the numbers a record batch carries, so an offset cannot be passed where an epoch
//! is expected. They are defined here, in the lowest crate, and re-exported by the others.

use std::fmt;

macro_rules! newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl From<$inner> for $name {
            fn from(v: $inner) -> Self {
                $name(v)
            }
        }

        impl From<$name> for $inner {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
}

newtype!(
    /// A position in a partition's log. Kafka offsets are signed 64-bit; `-1` is used on the wire
    /// for "unknown".
    Offset(i64)
);
newtype!(
    /// The epoch of the partition leader that appended a batch (KIP-101); `-1` when unknown.
    LeaderEpoch(i32)
);
newtype!(
    /// An idempotent/transactional producer's id (KIP-98); `-1` for non-idempotent producers.
    ProducerId(i64)
);
newtype!(
    /// The epoch of a producer id, bumped when a transactional producer is fenced; `-1` when unset.
    ProducerEpoch(i16)
);

impl Offset {
    /// Adds `delta` without overflowing: offsets near `i64::MAX` saturate instead of wrapping,
    /// because a wrapped offset would silently point to the start of the log.
    pub fn saturating_add(self, delta: i64) -> Offset {
        Offset(self.0.saturating_add(delta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newtypes_display_and_order() {
        assert_eq!(Offset(42).to_string(), "42");
        assert_eq!(LeaderEpoch(-1).to_string(), "-1");
        assert!(Offset(1) < Offset(2));
        assert_eq!(i64::from(ProducerId(7)), 7);
        assert_eq!(ProducerEpoch::from(3i16), ProducerEpoch(3));
        assert_eq!(Offset(i64::MAX).saturating_add(5), Offset(i64::MAX));
    }
}
