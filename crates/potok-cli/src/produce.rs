//! `potok produce TOPIC`: one record per line of stdin, with optional key, headers, partition and
//! producer tuning, and a summary on stderr when stdin ends.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};

use crate::client::{parse_key_value, partitions_of, ClientArgs};
use crate::error::{Error, Result};
use crate::partitioner::{CliPartitioner, Strategy};

/// `--acks`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acks {
    /// Fire and forget: the broker sends no response.
    #[value(name = "0")]
    None,
    /// The leader has written the record.
    #[value(name = "1")]
    Leader,
    /// Every in-sync replica has the record (Kafka's default since 3.0).
    #[value(name = "all")]
    All,
}

impl Acks {
    pub(crate) fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// `--compression`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub(crate) fn as_config(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// Producer tuning shared by `produce` and `bench`.
#[derive(Args, Clone, Debug)]
pub struct ProducerTuning {
    /// Acknowledgements the producer waits for.
    #[arg(long, value_enum, default_value = "all")]
    pub acks: Acks,
    /// Batch compression codec.
    #[arg(long, value_enum, default_value = "none")]
    pub compression: Compression,
    /// How long the producer waits to fill a batch (librdkafka `linger.ms`).
    #[arg(long, value_name = "MS")]
    pub linger_ms: Option<u64>,
    /// Maximum batch size in bytes (librdkafka `batch.size`).
    #[arg(long, value_name = "BYTES")]
    pub batch_size: Option<u64>,
}

impl ProducerTuning {
    pub(crate) fn apply(&self, config: &mut rdkafka::ClientConfig) {
        config
            .set("acks", self.acks.as_config())
            .set("compression.type", self.compression.as_config());
        if let Some(l) = self.linger_ms {
            config.set("linger.ms", l.to_string());
        }
        if let Some(b) = self.batch_size {
            config.set("batch.size", b.to_string());
        }
    }
}

/// Arguments of `potok produce`.
#[derive(Args, Clone, Debug)]
pub struct ProduceArgs {
    /// Topic to write to.
    pub topic: String,
    /// Split each line at the first occurrence of SEP into key and value; without it lines are
    /// values with no key.
    #[arg(long, short = 'K', value_name = "SEP")]
    pub key_separator: Option<String>,
    /// A header `key=value` added to every record; repeatable.
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub headers: Vec<(String, String)>,
    /// Write every record to this partition instead of using the partitioner.
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    /// How records are spread over partitions (`-X partitioner=...` overrides it with one of
    /// librdkafka's own partitioners).
    #[arg(long, value_enum, default_value = "murmur2")]
    pub partitioner: Strategy,
    /// Enable the idempotent producer (no duplicates or reordering on retries).
    #[arg(long)]
    pub idempotent: bool,
    #[command(flatten)]
    pub tuning: ProducerTuning,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Delivery outcome counters, updated by librdkafka's delivery callback (which runs on the thread
/// that polls the producer: here the main thread, so the mutex is never contended).
#[derive(Default)]
struct DeliveryStats {
    delivered: u64,
    failed: u64,
    bytes: u64,
    per_partition: BTreeMap<i32, u64>,
    first_error: Option<String>,
}

struct ProduceContext {
    partitioner: Option<CliPartitioner>,
    stats: Mutex<DeliveryStats>,
}

impl ClientContext for ProduceContext {}

impl ProducerContext<CliPartitioner> for ProduceContext {
    /// The payload length, so the summary counts bytes of acknowledged records only.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, len: usize) {
        let mut stats = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(msg) => {
                stats.delivered += 1;
                stats.bytes += len as u64;
                *stats.per_partition.entry(msg.partition()).or_default() += 1;
            }
            Err((e, _)) => {
                stats.failed += 1;
                if stats.first_error.is_none() {
                    stats.first_error = Some(e.to_string());
                }
            }
        }
    }

    fn get_custom_partitioner(&self) -> Option<&CliPartitioner> {
        self.partitioner.as_ref()
    }
}

/// Runs `potok produce`, reading records from `input` (stdin in the binary).
pub fn run(args: &ProduceArgs, input: impl BufRead) -> Result<()> {
    let client = &args.client;
    let mut config = client.config();
    args.tuning.apply(&mut config);
    // Records that cannot be delivered fail after this long instead of librdkafka's default of
    // five minutes, so a broker that goes away mid-stream is reported promptly.
    config.set(
        "message.timeout.ms",
        (client.timeout_ms.max(1000) * 6).to_string(),
    );
    if args.idempotent {
        config.set("enable.idempotence", "true");
    }
    let user_partitioner = client.property.iter().any(|(k, _)| k == "partitioner");
    let partitioner = if user_partitioner {
        None
    } else {
        let p = CliPartitioner::new(args.partitioner, args.tuning.linger_ms.unwrap_or(10));
        if p.handles_unkeyed() {
            config.set("sticky.partitioning.linger.ms", "0");
        }
        Some(p)
    };
    let config = client.finish(config);
    let context = ProduceContext {
        partitioner,
        stats: Mutex::new(DeliveryStats::default()),
    };
    let producer: BaseProducer<ProduceContext, CliPartitioner> = config
        .create_with_context(context)
        .map_err(|e| Error::kafka("creating the producer", e))?;

    let partitions = partitions_of(client, producer.client(), &args.topic)?;
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            return Err(Error::UnknownPartition {
                topic: args.topic.clone(),
                partition: p,
                count: partitions.len(),
            });
        }
    }

    let started = Instant::now();
    let mut sent = 0u64;
    let mut line = Vec::new();
    let mut input = input;
    let mut line_no = 0u64;
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io("reading stdin", e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let (key, value): (Option<&[u8]>, &[u8]) = match &args.key_separator {
            None => (None, &line),
            Some(sep) => match find(&line, sep.as_bytes()) {
                Some(i) => (Some(&line[..i]), &line[i + sep.len()..]),
                None => {
                    return Err(Error::Usage(format!(
                        "line {line_no} has no key separator '{sep}'"
                    )))
                }
            },
        };
        let mut record = BaseRecord::with_opaque_to(&args.topic, value.len()).payload(value);
        if let Some(k) = key {
            record = record.key(k);
        }
        if let Some(p) = args.partition {
            record = record.partition(p);
        }
        if !args.headers.is_empty() {
            let mut headers = OwnedHeaders::new_with_capacity(args.headers.len());
            for (k, v) in &args.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
            record = record.headers(headers);
        }
        send_blocking(&producer, record)?;
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    let flush_timeout = Duration::from_millis(client.timeout_ms.max(1000) * 7);
    let flushed = producer.flush(flush_timeout);
    let elapsed = started.elapsed();
    let stats = producer
        .context()
        .stats
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let per_partition: Vec<String> = stats
        .per_partition
        .iter()
        .map(|(p, n)| format!("{p}={n}"))
        .collect();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "produced {} record(s), {} value bytes, to '{}' in {:.3} s (partitions: {}){}",
        stats.delivered,
        stats.bytes,
        args.topic,
        elapsed.as_secs_f64(),
        if per_partition.is_empty() {
            "none".to_string()
        } else {
            per_partition.join(" ")
        },
        if stats.failed > 0 {
            format!("; {} failed", stats.failed)
        } else {
            String::new()
        }
    );
    let undelivered = sent - stats.delivered;
    if undelivered > 0 {
        let first = stats
            .first_error
            .clone()
            .or_else(|| flushed.err().map(|e| e.to_string()))
            .unwrap_or_else(|| "no delivery report".to_string());
        return Err(Error::Delivery {
            failed: undelivered,
            total: sent,
            first,
        });
    }
    Ok(())
}

/// Enqueues a record, serving delivery reports while librdkafka's queue is full rather than
/// failing (the queue is bounded by `queue.buffering.max.messages`).
pub(crate) fn send_blocking<C, Part>(
    producer: &BaseProducer<C, Part>,
    mut record: BaseRecord<'_, [u8], [u8], C::DeliveryOpaque>,
) -> Result<()>
where
    Part: rdkafka::producer::Partitioner,
    C: ProducerContext<Part>,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(Error::kafka("sending a record", e)),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}
