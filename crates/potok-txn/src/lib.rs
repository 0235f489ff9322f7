//! Potok's transaction coordinator: Kafka's transactions (KIP-98) with KIP-360 producer-id
//! recovery, KIP-447 offsets, and KIP-890 (part 1 verification, part 2 epoch bump per
//! transaction) as a sans-IO state machine.
//!
//! # Model (how the broker drives it, like `potok-group`)
//!
//! [`TxnCoordinator`] owns every transactional id whose `__transaction_state` partition this
//! broker leads. The broker calls one method per request with `now_ms`
//! ([`TxnCoordinator::init_producer_id`], [`TxnCoordinator::add_partitions`] — also with
//! `verify_only` for a partition leader's KIP-890 check —, [`TxnCoordinator::add_offsets`],
//! [`TxnCoordinator::end_txn`], [`TxnCoordinator::describe`], [`TxnCoordinator::list`]), maps a
//! returned [`TxnError`] to its Kafka code, and then takes [`TxnCoordinator::drain_outputs`]:
//!
//! - [`Output::Persist`]: a record to append to the id's `__transaction_state` partition
//!   ([`records::partition_for`] with `transaction.state.log.num.partitions`). The broker
//!   appends every Persist before it sends the reply of the call that produced it. The state
//!   in memory already holds the change; if the append fails the broker must drop the
//!   coordinator for that partition and load it again from the log (as Kafka does when it
//!   loses leadership), so memory never stays ahead of what was written.
//! - [`Output::WriteMarkers`]: COMMIT/ABORT control batches for every partition of a
//!   transaction (WriteTxnMarkers to each leader). The broker reports each partition written
//!   with [`TxnCoordinator::markers_written`] quoting the output's `seq`; once all are in, the
//!   coordinator emits the CompleteCommit/CompleteAbort record. Failed writes are retried by
//!   the broker.
//!
//! Timers: [`TxnCoordinator::next_deadline`] tells when to call [`TxnCoordinator::tick`], which
//! aborts transactions past `transaction.timeout.ms` and removes ids idle past
//! `transactional.id.expiration.ms`. New producer ids come from a [`ProducerIdAllocator`] the
//! broker passes in (the controller's AllocateProducerIds blocks).
//!
//! At start-up (or on becoming leader of a `__transaction_state` partition) the broker feeds
//! the partition's records to a [`Loader`] and calls [`TxnCoordinator::load`]; transactions
//! found in PrepareCommit/PrepareAbort get their markers re-sent and complete.
//!
//! # transaction.version
//!
//! Both are run, per request: with `tv2 = true` (EndTxn v5+, KIP-890 part 2) every completion
//! bumps the epoch, so a delayed EndTxn of an earlier transaction is fenced; with TV1 the epoch
//! is bumped only by InitProducerId, fences and timeouts. Which version the broker finalizes is
//! the broker's choice (docs/transactions.md).
//!
//! There are no sockets, clocks, threads or tokio here; `src/tests` drives every rule.

mod coordinator;
mod error;
pub mod records;
#[cfg(test)]
mod tests;
mod types;

pub use coordinator::{Loader, ProducerIdAllocator, TxnConfig, TxnCoordinator, OFFSETS_TOPIC};
pub use error::TxnError;
pub use types::*;
