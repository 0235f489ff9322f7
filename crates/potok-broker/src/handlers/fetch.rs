//! Fetch: consumer reads with long polling and zero-copy record data.
//!
//! - Response size (Kafka's `ReplicaManager.readFromLog`, KIP-74): `max_bytes`, capped by the
//!   broker's `fetch.max.bytes`, bounds the whole response and `partition_max_bytes` each
//!   partition. Only the first partition that returns data may exceed them, by one whole batch,
//!   so a consumer always progresses on an oversized batch; every later partition gets only the
//!   whole batches that fit in what is left of both limits (see [`SizeBudget`]).
//! - Long poll: when fewer than `min_bytes` are available, the request waits up to
//!   `max_wait_ms`. Before each read it registers one `Notify` with every fetched partition
//!   ([`crate::topics::Partition::add_waiter`]); an append notifies it, and the request is then
//!   re-evaluated. Registering before reading means an append between the read and the wait is
//!   not lost (the `Notify` keeps the permit). Shutdown ends the wait early.
//! - Fetch sessions (KIP-227): Potok keeps sessions for follower fetches only
//!   (`fetch_sessions`, `replica_fetch`); for consumers it does not. A request with session id 0 gets
//!   a full answer and session id 0, which tells the client no session was created; a request
//!   naming a session gets `FETCH_SESSION_ID_NOT_FOUND`, after which clients fall back to full
//!   fetches. Both are what Kafka answers when its session cache is full.
//! - v13+ identifies topics by id; an unknown id is `UNKNOWN_TOPIC_ID`.
//! - Consumers read below the high watermark (the last stable offset under read_committed); a
//!   follower's fetch (`replica_id` / `ReplicaState` ≥ 0) is answered by `replica_fetch`.

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use potok_log::{AbortedTxn, LogError, ReadSlice};
use potok_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use potok_protocol::messages::{FetchRequest, FetchResponse};
use potok_protocol::{ErrorCode, Request, Uuid};
use potok_records::Offset;
use tokio::sync::Notify;

use super::non_negative;
use crate::error::{BrokerError, Result};
use crate::registry::{FetchReply, Reply, RequestContext};
use crate::sendfile::placeholder;
use crate::topics::{log_error_code, Partition};
use crate::Broker;

/// The longest a fetch may wait, whatever the client asks (Kafka has no cap, but a client
/// asking for hours would pin a connection; 5 minutes is far above any client default).
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Handles Fetch.
pub async fn handle(broker: Arc<Broker>, ctx: RequestContext, req: Request) -> Result<Reply> {
    let Request::Fetch(req) = req else {
        return Err(BrokerError::NoHandler("Fetch"));
    };
    let v = ctx.api_version;
    // A broker's follower fetch (Fetch v15+ names it in ReplicaState with its broker epoch,
    // KIP-903; earlier versions in replica_id): the leader's side of replication.
    let (replica_id, replica_epoch) = if v >= 15 {
        (
            req.replica_state.replica_id,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id, -1)
    };
    if replica_id >= 0 {
        return super::replica_fetch::handle(
            broker,
            v,
            req,
            potok_metadata::BrokerId(replica_id),
            replica_epoch,
        )
        .await;
    }
    if req.session_id != 0 {
        return Ok(top_level_error(ErrorCode::FetchSessionIdNotFound));
    }
    if req.session_epoch != -1 && req.session_epoch != 0 {
        return Ok(top_level_error(ErrorCode::InvalidFetchSessionEpoch));
    }
    let wait = Duration::from_millis(non_negative(req.max_wait_ms) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    // Kafka's KafkaApis caps the request's limit with `fetch.max.bytes` and `min_bytes` with
    // the result, so a wait can never ask for more than one response may carry.
    let max_bytes = non_negative(req.max_bytes).min(broker.config.fetch_max_bytes);
    let min_bytes = non_negative(req.min_bytes).min(max_bytes);
    let notify = Arc::new(Notify::new());
    let mut shutdown = broker.shutdown_signal();
    loop {
        let round = read_all(&broker, &req, v, max_bytes, Some(&notify));
        let now = Instant::now();
        // Kafka's `DelayedFetch` conditions: enough bytes, an error, nothing to wait for, or
        // the wait is over.
        if round.bytes >= min_bytes
            || round.has_error
            || req.topics.is_empty()
            || now >= deadline
            || broker.is_shutting_down()
        {
            return Ok(round.into_reply(&broker));
        }
        drop(round);
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = shutdown.changed() => {}
        }
    }
}

fn top_level_error(code: ErrorCode) -> Reply {
    Reply::Fetch(FetchReply {
        body: FetchResponse {
            error_code: code.code(),
            session_id: 0,
            ..Default::default()
        },
        slices: Vec::new(),
    })
}

struct Round {
    body: FetchResponse,
    slices: Vec<ReadSlice>,
    bytes: usize,
    has_error: bool,
    /// (topic name, bytes) for metrics.
    per_topic: Vec<(String, usize)>,
    /// The topic of each entry of `slices`, for the records-out metric.
    slice_topics: Vec<Arc<str>>,
}

impl Round {
    fn into_reply(self, broker: &Broker) -> Reply {
        for (t, b) in &self.per_topic {
            if *b > 0 {
                broker.metrics.fetched(t, *b as u64, 0);
            }
        }
        for (s, t) in self.slices.iter().zip(&self.slice_topics) {
            let n = count_records(s);
            if n > 0 {
                broker.metrics.fetched(t, 0, n);
            }
        }
        Reply::Fetch(FetchReply {
            body: self.body,
            slices: self.slices,
        })
    }
}

/// Counts the records in a slice by reading each batch's 61-byte header (from the page
/// cache), without touching the records themselves.
fn count_records(s: &ReadSlice) -> u64 {
    let mut pos = s.position;
    let end = s.position + s.len as u64;
    let mut n = 0u64;
    let mut h = [0u8; 61];
    while pos + 61 <= end {
        if s.file.read_exact_at(&mut h, pos).is_err() {
            break;
        }
        let len = i32::from_be_bytes([h[8], h[9], h[10], h[11]]);
        let count = i32::from_be_bytes([h[57], h[58], h[59], h[60]]);
        if len < 49 {
            break;
        }
        n += u64::try_from(count).unwrap_or(0);
        pos += 12 + len as u64;
    }
    n
}

/// What is left of a response's size limits while its partitions are read in request order.
///
/// This is Kafka's `ReplicaManager.readFromLog`: `limit` starts at the request's `max_bytes`
/// and shrinks by every partition's records; `min_one` (Kafka's `minOneMessage`, KIP-74) lets
/// a partition return its first batch whole even beyond both limits, and is cleared by the
/// first partition that returns data. Kafka clears it from the start for Fetch v0-v2
/// (`hardMaxBytesLimit`); Potok serves Fetch v4+ only, so it always starts set.
///
/// Kafka hands a later partition the bytes that fit even when they end inside a batch; every
/// client discards such an incomplete trailing batch, so Potok returns whole batches only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SizeBudget {
    limit: usize,
    min_one: bool,
}

impl SizeBudget {
    fn new(max_bytes: usize) -> SizeBudget {
        SizeBudget {
            limit: max_bytes,
            min_one: true,
        }
    }

    /// The byte limit for the next partition, given its `partition_max_bytes`.
    fn partition_limit(&self, partition_max_bytes: i32) -> usize {
        non_negative(partition_max_bytes).min(self.limit)
    }

    /// Whether a read of `len` bytes under `limit` may be returned: within the limit, or one
    /// oversized batch while `min_one` holds.
    fn admits(&self, len: usize, limit: usize) -> bool {
        len <= limit || self.min_one
    }

    /// Accounts for `len` bytes returned by a partition.
    fn take(&mut self, len: usize) {
        if len > 0 {
            self.min_one = false;
        }
        self.limit = self.limit.saturating_sub(len);
    }
}

fn read_all(
    broker: &Broker,
    req: &FetchRequest,
    v: i16,
    max_bytes: usize,
    notify: Option<&Arc<Notify>>,
) -> Round {
    let mut budget = SizeBudget::new(max_bytes);
    let mut bytes = 0usize;
    let mut has_error = false;
    let mut slices = Vec::new();
    let mut responses = Vec::with_capacity(req.topics.len());
    let mut per_topic = Vec::new();
    let mut slice_topics = Vec::new();
    for ft in &req.topics {
        let topic = if v >= 13 {
            broker.topics.get_by_id(ft.topic_id)
        } else {
            broker.topics.get(&ft.topic)
        };
        let unknown = if v >= 13 {
            ErrorCode::UnknownTopicId
        } else {
            ErrorCode::UnknownTopicOrPartition
        };
        let mut parts = Vec::with_capacity(ft.partitions.len());
        let mut topic_bytes = 0usize;
        let topic_name: Arc<str> = topic
            .as_ref()
            .map_or_else(|| Arc::from(""), |t| Arc::from(t.name()));
        for fp in &ft.partitions {
            let mut pd = PartitionData {
                partition_index: fp.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                records: Some(Bytes::new()),
                // Kafka sends null at read_uncommitted and a list only at read_committed.
                aborted_transactions: (req.isolation_level != 0).then(Vec::new),
                ..Default::default()
            };
            let partition = topic.as_ref().and_then(|t| t.partition(fp.partition));
            let Some(p) = partition else {
                // Kafka answers unknown partitions before reading, with the empty list.
                pd.aborted_transactions = Some(Vec::new());
                pd.error_code = unknown.code();
                has_error = true;
                parts.push(pd);
                continue;
            };
            if p.is_led_elsewhere() {
                pd.error_code = ErrorCode::NotLeaderOrFollower.code();
                has_error = true;
                parts.push(pd);
                continue;
            }
            if let Some(code) = p.check_current_leader_epoch(fp.current_leader_epoch) {
                pd.error_code = code.code();
                has_error = true;
                parts.push(pd);
                continue;
            }
            if let Some(n) = notify {
                p.add_waiter(n);
            }
            // KIP-98: read_committed (isolation level 1) reads stop at the last stable offset.
            let committed = req.isolation_level == 1;
            match read_partition(
                &p,
                fp.fetch_offset,
                &budget,
                fp.partition_max_bytes,
                committed,
            ) {
                Ok((slice, lso, hw, stable, aborted)) => {
                    pd.high_watermark = hw.0;
                    if committed && !aborted.is_empty() {
                        pd.aborted_transactions = Some(
                            aborted
                                .iter()
                                .map(|t| AbortedTransaction {
                                    producer_id: t.producer_id.0,
                                    first_offset: t.first_offset.0,
                                    ..Default::default()
                                })
                                .collect(),
                        );
                    }
                    // Kafka reports the last stable offset at either isolation level.
                    pd.last_stable_offset = stable.0;
                    pd.log_start_offset = lso.0;
                    if let Some(s) = slice {
                        let len = s.len;
                        budget.take(len);
                        bytes += len;
                        topic_bytes += len;
                        match placeholder(len) {
                            Some(ph) => {
                                pd.records = Some(ph);
                                slices.push(s);
                                slice_topics.push(Arc::clone(&topic_name));
                            }
                            None => match s.read_bytes() {
                                Ok(b) => pd.records = Some(b),
                                Err(e) => {
                                    tracing::warn!(topic = p.topic(), partition = p.index(), error = %e, "fetch read failed");
                                    pd.error_code = ErrorCode::KafkaStorageError.code();
                                    has_error = true;
                                }
                            },
                        }
                    }
                }
                Err(e) => {
                    // Kafka answers a failed read (e.g. OFFSET_OUT_OF_RANGE) with -1 watermarks
                    // and log start offset (`ReplicaManager.readFromLog`), as set above.
                    pd.error_code = log_error_code(&e).code();
                    has_error = true;
                }
            }
            parts.push(pd);
        }
        if topic_bytes > 0 {
            per_topic.push((topic_name.to_string(), topic_bytes));
        }
        responses.push(FetchableTopicResponse {
            topic: if v >= 13 {
                String::new()
            } else {
                ft.topic.clone()
            },
            topic_id: if v >= 13 { ft.topic_id } else { Uuid::ZERO },
            partitions: parts,
            ..Default::default()
        });
    }
    Round {
        body: FetchResponse {
            error_code: 0,
            session_id: 0,
            responses,
            ..Default::default()
        },
        slices,
        bytes,
        has_error,
        per_topic,
        slice_topics,
    }
}

/// `(slice, log start offset, high watermark, last stable offset, aborted transactions)`.
type PartitionRead = (Option<ReadSlice>, Offset, Offset, Offset, Vec<AbortedTxn>);

/// Reads one partition within what is left of the response's size limits (see
/// [`SizeBudget`]). With no room left it only checks the offset and reports the watermarks.
fn read_partition(
    p: &Partition,
    offset: i64,
    budget: &SizeBudget,
    partition_max_bytes: i32,
    read_committed: bool,
) -> std::result::Result<PartitionRead, LogError> {
    let max = budget.partition_limit(partition_max_bytes);
    if max == 0 && !budget.min_one {
        let (lso, hw, stable) = p.stable_offsets()?;
        if offset < lso.0 || offset > hw.0 {
            return Err(LogError::OffsetOutOfRange {
                offset: Offset(offset),
                log_start_offset: lso,
                log_end_offset: hw,
            });
        }
        return Ok((None, lso, hw, stable, Vec::new()));
    }
    // The log returns at least one whole batch, so a read longer than `max` is a single
    // oversized batch: returned only while the budget allows one.
    let r = p.read_isolated(Offset(offset), max, read_committed)?;
    let slice = r.slice;
    let keep = !slice.is_empty() && budget.admits(slice.len, max);
    Ok((
        keep.then_some(slice),
        r.log_start_offset,
        r.high_watermark,
        r.last_stable_offset,
        if keep {
            r.aborted_transactions
        } else {
            Vec::new()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::SizeBudget;

    /// Runs the budget over partitions holding one batch of each given length (0: empty) as
    /// `read_partition` does, returning the bytes each partition returns.
    fn simulate(max_bytes: usize, partition_max: i32, batches: &[usize]) -> Vec<usize> {
        let mut b = SizeBudget::new(max_bytes);
        batches
            .iter()
            .map(|&len| {
                let limit = b.partition_limit(partition_max);
                // The log returns at least one batch: `len` when it exceeds the limit.
                let got = if (limit > 0 || b.min_one) && len > 0 && b.admits(len, limit) {
                    len
                } else {
                    0
                };
                b.take(got);
                got
            })
            .collect()
    }

    /// 8 partitions of one 262,206-byte batch each and `max_bytes = 1,000,000`: three whole
    /// batches fit, the fourth would cross the limit and is left out.
    #[test]
    fn total_limit_admits_whole_batches_that_fit() {
        let got = simulate(1_000_000, 1 << 20, &[262_206; 8]);
        assert_eq!(got, [262_206, 262_206, 262_206, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn only_the_first_partition_with_data_may_exceed_the_limits() {
        // Empty partitions before it do not use up the exception.
        let got = simulate(1_000_000, 1 << 20, &[0, 0, 1_500_000, 10, 1_500_000]);
        assert_eq!(got, [0, 0, 1_500_000, 0, 0]);
        // partition_max_bytes below every batch: only the first partition returns one.
        let got = simulate(1_000_000, 100_000, &[262_206; 4]);
        assert_eq!(got, [262_206, 0, 0, 0]);
        // A small batch first clears the exception: the oversized one after it stays out.
        let got = simulate(1_000_000, 1 << 20, &[500, 1_500_000, 400]);
        assert_eq!(got, [500, 0, 400]);
    }

    #[test]
    fn zero_limits_still_return_one_batch_first() {
        let got = simulate(0, 0, &[300, 300]);
        assert_eq!(got, [300, 0]);
    }
}
