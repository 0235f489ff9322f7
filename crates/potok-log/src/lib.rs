//! The partition log: segments, sparse indexes, crash recovery and retention.
