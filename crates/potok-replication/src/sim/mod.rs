//! Test support for replication: an in-memory partition log ([`log::MemLog`]) with Kafka's
//! leader-epoch cache rules, used by the unit tests of the state machines.

pub mod log;
