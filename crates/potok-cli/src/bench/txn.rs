//! `potok bench produce --transactional-batch N`: each producer thread is a transactional
//! producer (its own `transactional.id`) that commits every N records, as Kafka's
//! `producer-perf-test --transactional-id` does by time. The commit is synchronous, so the
//! figures include what a transaction costs a producer: AddPartitionsToTxn before the first
//! record of each partition, the flush of the transaction's records, EndTxn and the markers the
//! coordinator writes before it answers. `--abort-every K` aborts every K-th transaction
//! instead (after its records are acknowledged, so they are in the log), which gives
//! `bench consume` at `isolation.level=read_committed` aborted data to skip.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

use super::new_histogram;
use crate::error::{Error, Result};

/// Distinct `transactional.id`s for the producer threads of one process.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A `transactional.id` no other bench producer (of this or a concurrent process) uses.
pub(super) fn transactional_id() -> String {
    format!(
        "potok-bench-{}-{}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the transactions of the timed part did.
#[derive(Clone)]
pub(super) struct TxnStats {
    pub committed: u64,
    pub aborted: u64,
    /// Time of each `commit_transaction` call (flush of the transaction's records, EndTxn,
    /// markers), in microseconds.
    pub commit_latency: Histogram<u64>,
}

impl TxnStats {
    pub fn empty() -> TxnStats {
        TxnStats {
            committed: 0,
            aborted: 0,
            commit_latency: new_histogram(),
        }
    }

    pub fn add(&mut self, other: &TxnStats) {
        self.committed += other.committed;
        self.aborted += other.aborted;
        let _ = self.commit_latency.add(&other.commit_latency);
    }
}

/// The transaction state of one bench producer.
pub(super) struct Transactions {
    every: u64,
    abort_every: Option<u64>,
    timeout: Duration,
    /// Records handed to the producer in the open transaction.
    in_txn: u64,
    /// Transactions ended since start (warm-up included): picks the ones to abort.
    ended: u64,
    /// Only the timed part's transactions are counted.
    measuring: bool,
    stats: TxnStats,
}

fn txn_error(what: &str, e: rdkafka::error::KafkaError) -> Error {
    Error::kafka(what, e)
}

impl Transactions {
    /// Initialises the producer's transactions and begins the first one.
    pub fn start<C: ProducerContext>(
        producer: &BaseProducer<C>,
        every: u64,
        abort_every: Option<u64>,
        timeout: Duration,
        measuring: bool,
    ) -> Result<Transactions> {
        producer
            .init_transactions(timeout)
            .map_err(|e| txn_error("initialising transactions", e))?;
        producer
            .begin_transaction()
            .map_err(|e| txn_error("beginning a transaction", e))?;
        Ok(Transactions {
            every: every.max(1),
            abort_every,
            timeout,
            in_txn: 0,
            ended: 0,
            measuring,
            stats: TxnStats::empty(),
        })
    }

    /// Called after each record is handed to the producer: ends the transaction when it holds
    /// `every` records and begins the next.
    pub fn after_send<C: ProducerContext>(&mut self, producer: &BaseProducer<C>) -> Result<()> {
        self.in_txn += 1;
        if self.in_txn >= self.every {
            self.end(producer)?;
            producer
                .begin_transaction()
                .map_err(|e| txn_error("beginning a transaction", e))?;
        }
        Ok(())
    }

    /// Ends the warm-up: its open transaction is committed, uncounted, and the counting starts.
    pub fn start_measuring<C: ProducerContext>(
        &mut self,
        producer: &BaseProducer<C>,
    ) -> Result<()> {
        if self.in_txn > 0 {
            self.end(producer)?;
            producer
                .begin_transaction()
                .map_err(|e| txn_error("beginning a transaction", e))?;
        }
        self.measuring = true;
        self.stats = TxnStats::empty();
        Ok(())
    }

    /// Ends the last transaction (committing an empty one costs nothing: librdkafka sends
    /// no EndTxn for a transaction without partitions) and returns the counts.
    pub fn finish<C: ProducerContext>(mut self, producer: &BaseProducer<C>) -> Result<TxnStats> {
        self.end(producer)?;
        Ok(self.stats)
    }

    fn end<C: ProducerContext>(&mut self, producer: &BaseProducer<C>) -> Result<()> {
        self.ended += 1;
        let abort = self
            .abort_every
            .is_some_and(|k| k > 0 && self.ended.is_multiple_of(k));
        let t0 = Instant::now();
        // The transaction's records are acknowledged first. rdkafka's `flush` (which
        // `commit_transaction` starts with) polls in 100 ms steps and, once the last delivery
        // report is served, sleeps a whole step before it looks again, which put 100 ms into
        // every commit; served here in 1 ms steps, its own flush then returns at once.
        // Before an abort this also matters for correctness of the figures: librdkafka would
        // purge records still queued and report them as failed; flushed, they are in the log
        // and the ABORT marker covers them.
        let deadline = t0 + self.timeout;
        while producer.in_flight_count() > 0 {
            if Instant::now() >= deadline {
                let pending = u64::try_from(producer.in_flight_count()).unwrap_or(0);
                return Err(Error::Delivery {
                    failed: pending,
                    total: self.in_txn.max(pending),
                    first: format!(
                        "not acknowledged within {} ms before the end of a transaction",
                        self.timeout.as_millis()
                    ),
                });
            }
            producer.poll(Duration::from_millis(1));
        }
        if abort {
            producer
                .abort_transaction(self.timeout)
                .map_err(|e| txn_error("aborting a transaction", e))?;
        } else {
            producer
                .commit_transaction(self.timeout)
                .map_err(|e| txn_error("committing a transaction", e))?;
        }
        if self.measuring && self.in_txn > 0 {
            if abort {
                self.stats.aborted += 1;
            } else {
                self.stats.committed += 1;
                let us = t0.elapsed().as_micros() as u64;
                self.stats.commit_latency.saturating_record(us.max(1));
            }
        }
        self.in_txn = 0;
        Ok(())
    }
}
