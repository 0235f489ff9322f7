//! Domain types of the coordinator: states, partitions, outputs, replies.

use std::collections::BTreeSet;

use bytes::Bytes;
use potok_records::{ProducerEpoch, ProducerId};

/// A transaction's state, with Kafka's `TransactionState` status ids as stored in
/// `TransactionLogValue.TransactionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    /// No transaction open (after InitProducerId).
    Empty,
    /// Partitions were added; the transaction runs.
    Ongoing,
    /// EndTxn(commit) was accepted; COMMIT markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fence or a timeout; ABORT markers are being written.
    PrepareAbort,
    /// Every COMMIT marker was written.
    CompleteCommit,
    /// Every ABORT marker was written.
    CompleteAbort,
    /// The id is being removed (only in Kafka's memory; read from a log, it is removed).
    Dead,
    /// Kafka's in-memory state while a fence bumps the epoch before aborting. This coordinator
    /// writes the bumped PrepareAbort at once, so it only reads the status from a log.
    PrepareEpochFence,
}

impl TxnState {
    /// Kafka's status id.
    pub fn status_id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a status id, `None` for an unknown one.
    pub fn from_status_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Describe/ListTransactions use (Kafka's `TransactionState.name`).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// Builds one.
    pub fn new(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_owned(),
            partition,
        }
    }
}

/// The outcome markers carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    /// COMMIT control records.
    Commit,
    /// ABORT control records.
    Abort,
}

/// Something the broker must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Append this record to the id's `__transaction_state` partition before sending any reply
    /// that follows it. `value: None` is a tombstone.
    Persist {
        /// The transactional id (the broker picks the partition with
        /// [`crate::records::partition_for`]).
        transactional_id: String,
        /// Encoded key.
        key: Bytes,
        /// Encoded value, `None` for a tombstone.
        value: Option<Bytes>,
    },
    /// Write COMMIT/ABORT control batches (WriteTxnMarkers) to every partition, then report
    /// each written partition with [`crate::TxnCoordinator::markers_written`] quoting `seq`.
    /// A partition whose write failed is retried by the broker (Kafka's marker channel retries
    /// until the partition is deleted).
    WriteMarkers {
        /// The transactional id.
        transactional_id: String,
        /// Which completion this is: the ack must quote it, so a delayed ack of an earlier
        /// transaction never completes a later one.
        seq: u64,
        /// Producer id of the markers.
        producer_id: ProducerId,
        /// Producer epoch of the markers (bumped under TV2 and for fences/timeouts).
        producer_epoch: ProducerEpoch,
        /// Commit or abort.
        result: TxnResult,
        /// The partitions.
        partitions: BTreeSet<TopicPartition>,
    },
}

/// InitProducerId's and (TV2) EndTxn's answer: the id and epoch the producer uses next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// Producer id.
    pub producer_id: ProducerId,
    /// Epoch.
    pub producer_epoch: ProducerEpoch,
}

/// DescribeTransactions' answer for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTxn {
    /// State name source.
    pub state: TxnState,
    /// Producer id.
    pub producer_id: ProducerId,
    /// Epoch.
    pub producer_epoch: ProducerEpoch,
    /// Timeout.
    pub timeout_ms: i32,
    /// Start of the transaction, -1 when none runs.
    pub start_ms: i64,
    /// Partitions of the transaction.
    pub partitions: BTreeSet<TopicPartition>,
}

/// One ListTransactions entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTxn {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: ProducerId,
    /// State.
    pub state: TxnState,
}

/// ListTransactions filters; empty lists match everything.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// States to keep.
    pub states: Vec<TxnState>,
    /// Producer ids to keep.
    pub producer_ids: Vec<ProducerId>,
    /// KIP-994 `DurationFilter`: keep only transactions running at least this long (-1: off).
    pub min_duration_ms: i64,
}

impl Default for ListFilter {
    /// No filter at all: the duration filter is off (-1, as the request's default).
    fn default() -> Self {
        ListFilter {
            states: Vec::new(),
            producer_ids: Vec::new(),
            min_duration_ms: -1,
        }
    }
}
