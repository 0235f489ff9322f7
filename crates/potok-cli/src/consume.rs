//! `potok consume TOPIC...`: reads records and writes them to stdout as plain values, a template
//! or JSON lines.
//!
//! Two modes, as in `kafka-console-consumer.sh`: with `--group` and no explicit position the
//! consumer subscribes and the group assigns partitions (resuming at committed offsets); otherwise
//! it assigns partitions itself at the requested position (`--from-beginning`, `--offset`,
//! `--timestamp`, default: the end). With a group, offsets are committed only after the records
//! were written out and stdout flushed (at-least-once), unless `--no-commit`.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{partitions_of, ClientArgs};
use crate::error::{Error, Result};
use crate::format::{parse_format, write_record, Format};
use crate::signal;

/// Arguments of `potok consume`.
#[derive(Args, Clone, Debug)]
pub struct ConsumeArgs {
    /// Topic(s) to read.
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Start at the earliest available record (with `--group`: when the group has no committed
    /// offset).
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    pub from_beginning: bool,
    /// Start at this offset; a negative value starts that many records before the end.
    #[arg(
        long,
        short = 'o',
        allow_hyphen_values = true,
        conflicts_with = "timestamp"
    )]
    pub offset: Option<i64>,
    /// Start at the first record whose timestamp is at or after this time (ms since the epoch).
    #[arg(long)]
    pub timestamp: Option<i64>,
    /// Read only these partitions (repeatable).
    #[arg(long, short = 'p')]
    pub partition: Vec<i32>,
    /// Consumer group: subscribe through the group and commit processed offsets.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// With `--group`, never commit offsets.
    #[arg(long, requires = "group")]
    pub no_commit: bool,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub max_messages: Option<u64>,
    /// Stop once every assigned partition has been read to its end.
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    /// `plain` (value only), `json` (JSON lines, base64 for non-UTF-8) or a template such as
    /// `'%t %p %o %k %v %T %h\n'`.
    #[arg(long, short = 'f', default_value = "plain", value_parser = parse_format)]
    pub format: Format,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How often processed offsets are committed (after flushing stdout); Kafka's console consumer
/// commits every `auto.commit.interval.ms`, default 5 s; one second keeps redelivery after a crash
/// small at negligible cost.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// Runs `potok consume`, writing records to `out` (stdout in the binary).
pub fn run(args: &ConsumeArgs, out: &mut impl Write) -> Result<()> {
    let client = &args.client;
    let commit = args.group.is_some() && !args.no_commit;
    let subscribe = args.group.is_some()
        && args.offset.is_none()
        && args.timestamp.is_none()
        && args.partition.is_empty();

    let mut config = client.config();
    config
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        // Without a group librdkafka still wants a group.id for some code paths; it is never
        // used to join or commit in assign mode.
        .set(
            "group.id",
            args.group.as_deref().unwrap_or("potok-cli-no-group"),
        );
    let consumer: BaseConsumer = client
        .finish(config)
        .create()
        .map_err(|e| Error::kafka("creating the consumer", e))?;

    // Fail fast with one clear line when a topic is missing or the broker is unreachable.
    let mut all_partitions = Vec::new();
    for topic in &args.topics {
        let ids = partitions_of(client, consumer.client(), topic)?;
        for p in &args.partition {
            if !ids.contains(p) {
                return Err(Error::UnknownPartition {
                    topic: topic.clone(),
                    partition: *p,
                    count: ids.len(),
                });
            }
        }
        for id in ids {
            if args.partition.is_empty() || args.partition.contains(&id) {
                all_partitions.push((topic.clone(), id));
            }
        }
    }

    if let (Some(group), Some((t, p))) = (&args.group, all_partitions.first()) {
        // Reading the group's committed offset goes through its coordinator, so a broker without
        // consumer groups (or an unauthorized group) is reported here in one line, instead of
        // librdkafka waiting for a coordinator forever.
        let mut probe = TopicPartitionList::new();
        probe.add_partition(t, *p);
        consumer
            .committed_offsets(probe, client.timeout())
            .map_err(|e| Error::kafka(format!("reaching the coordinator of group '{group}'"), e))?;
    }
    if subscribe {
        let topics: Vec<&str> = args.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| Error::kafka("subscribing", e))?;
    } else {
        let start = if args.from_beginning {
            Offset::Beginning
        } else if let Some(o) = args.offset {
            if o >= 0 {
                Offset::Offset(o)
            } else {
                Offset::OffsetTail(o.unsigned_abs() as i64)
            }
        } else if args.group.is_some() {
            // Resume at the group's committed offset; `auto.offset.reset` covers partitions
            // without one.
            Offset::Stored
        } else {
            Offset::End
        };
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &all_partitions {
            let offset = match args.timestamp {
                Some(ts) => Offset::Offset(ts),
                None => start,
            };
            tpl.add_partition_offset(t, *p, offset)
                .map_err(|e| Error::kafka("building the assignment", e))?;
        }
        if args.timestamp.is_some() {
            // ListOffsets by timestamp; partitions with no record at or after it start at the end.
            tpl = consumer
                .offsets_for_times(tpl, client.timeout())
                .map_err(|e| client.request_error("looking up offsets by timestamp", e))?;
            let mut fixed = TopicPartitionList::new();
            for e in tpl.elements() {
                let o = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Offset::Offset(o),
                    _ => Offset::End,
                };
                fixed
                    .add_partition_offset(e.topic(), e.partition(), o)
                    .map_err(|e| Error::kafka("building the assignment", e))?;
            }
            tpl = fixed;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| Error::kafka("assigning partitions", e))?;
    }

    signal::install();
    let mut count = 0u64;
    let mut at_end: BTreeSet<(String, i32)> = BTreeSet::new();
    let mut pending_commit = false;
    let mut last_commit = Instant::now();
    let result = loop {
        if signal::stop_requested() {
            break Ok(());
        }
        if args.max_messages.is_some_and(|m| count >= m) {
            break Ok(());
        }
        if args.exit_at_end && !at_end.is_empty() {
            let assigned = assignment(&consumer);
            if !assigned.is_empty() && assigned.iter().all(|tp| at_end.contains(tp)) {
                break Ok(());
            }
        }
        if commit && pending_commit && last_commit.elapsed() >= COMMIT_INTERVAL {
            out.flush().map_err(|e| Error::io("writing stdout", e))?;
            commit_stored(&consumer, CommitMode::Async)?;
            pending_commit = false;
            last_commit = Instant::now();
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // The EOF event names only the partition; with several topics, any topic having
                // that partition id is at its end only once each has reported it, which the
                // position check below sorts out.
                for (t, q) in assignment(&consumer) {
                    if q == p && position_at_end(&consumer, &t, q) {
                        at_end.insert((t, q));
                    }
                }
            }
            Some(Err(e)) => break Err(client.request_error("consuming", e)),
            Some(Ok(msg)) => {
                at_end.remove(&(msg.topic().to_string(), msg.partition()));
                if let Err(e) = write_record(out, &args.format, &msg) {
                    break Err(Error::io("writing stdout", e));
                }
                count += 1;
                if commit {
                    consumer
                        .store_offset_from_message(&msg)
                        .map_err(|e| Error::kafka("storing the offset", e))?;
                    pending_commit = true;
                }
            }
        }
    };
    let flushed = out.flush().map_err(|e| Error::io("writing stdout", e));
    if commit && pending_commit && flushed.is_ok() && result.is_ok() {
        commit_stored(&consumer, CommitMode::Sync)?;
    }
    let _ = writeln!(std::io::stderr(), "consumed {count} record(s)");
    result.and(flushed)
}

/// The consumer's current assignment as `(topic, partition)` pairs.
fn assignment(consumer: &BaseConsumer) -> Vec<(String, i32)> {
    consumer
        .assignment()
        .map(|tpl| {
            tpl.elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the EOF event belongs to this topic: the partition's fetch position has reached the
/// high watermark that librdkafka cached from its last fetch (no network request).
fn position_at_end(consumer: &BaseConsumer, topic: &str, partition: i32) -> bool {
    let Ok(pos) = consumer.position() else {
        return true;
    };
    let Some(elem) = pos.find_partition(topic, partition) else {
        return false;
    };
    let Ok(topic_c) = std::ffi::CString::new(topic) else {
        return true;
    };
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the handle is alive for the borrow of `consumer`, the topic string is
    // NUL-terminated and outlives the call, and the out-pointers point at live locals.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic_c.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return true;
    }
    match elem.offset() {
        Offset::Offset(o) => high >= 0 && o >= high,
        _ => true,
    }
}

/// Commits the stored offsets; "nothing to commit" is not an error.
fn commit_stored(consumer: &BaseConsumer, mode: CommitMode) -> Result<()> {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => Ok(()),
        Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(()),
        Err(e) => Err(Error::kafka("committing offsets", e)),
    }
}
