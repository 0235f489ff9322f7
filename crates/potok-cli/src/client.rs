//! Options every subcommand shares (`--bootstrap-server`, `-X name=value`, `--timeout-ms`) and the
//! librdkafka client setup built from them.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use clap::Args;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use crate::error::{Error, Result};

/// Connection options shared by every client subcommand.
#[derive(Args, Clone, Debug)]
pub struct ClientArgs {
    /// Broker(s) to bootstrap from, `host:port[,host:port...]`.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        value_name = "HOST:PORT",
        default_value = "localhost:9092"
    )]
    pub bootstrap_server: String,
    /// A librdkafka client property, e.g. `-X security.protocol=ssl`; repeatable. Applied last, so it
    /// overrides what the subcommand's own flags set.
    #[arg(short = 'X', value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub property: Vec<(String, String)>,
    /// How long to wait for each request to the cluster before giving up with an error.
    #[arg(long, value_name = "MS", default_value_t = 5000)]
    pub timeout_ms: u64,
}

/// Parses `name=value` (the value may itself contain `=`).
pub(crate) fn parse_key_value(s: &str) -> std::result::Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

impl ClientArgs {
    /// The request timeout as a `Duration`.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A librdkafka configuration with the bootstrap servers and short timeouts, so that an
    /// unreachable broker is reported within `--timeout-ms` instead of librdkafka's default of
    /// retrying for a minute. `-X` properties are applied by [`ClientArgs::finish`].
    pub(crate) fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_server)
            .set("client.id", "potok-cli")
            .set("socket.timeout.ms", self.timeout_ms.max(10).to_string())
            // librdkafka logs every failed connection attempt to stderr; the CLI reports the
            // failure itself as one line, so only errors that matter are kept.
            .set("log_level", "3");
        config
    }

    /// Applies the user's `-X` properties on top of `config`.
    pub(crate) fn finish(&self, mut config: ClientConfig) -> ClientConfig {
        for (k, v) in &self.property {
            config.set(k, v);
        }
        config
    }

    /// An admin client; librdkafka creates it as a producer-type handle, for which
    /// `allow.auto.create.topics` defaults to true, so it is turned off here: describing a topic
    /// must never create it.
    pub(crate) fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        let mut config = self.config();
        config.set("allow.auto.create.topics", "false");
        self.finish(config)
            .create()
            .map_err(|e| Error::kafka("creating the admin client", e))
    }

    /// A consumer handle with no subscription, used for metadata, watermarks, offsets by time and
    /// (with a group id) committed offsets.
    pub(crate) fn plain_consumer(&self, group: Option<&str>) -> Result<BaseConsumer> {
        let mut config = self.config();
        config
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false");
        if let Some(g) = group {
            config.set("group.id", g);
        }
        self.finish(config)
            .create()
            .map_err(|e| Error::kafka("creating the consumer", e))
    }

    /// Maps a librdkafka error from a cluster request, turning "no broker answered" into the
    /// dedicated one-line [`Error::Unreachable`].
    pub(crate) fn request_error(&self, context: &str, e: KafkaError) -> Error {
        // An admin request that failed as a whole: the broker was reached (metadata is always
        // fetched first), so the code is reported as the broker's answer.
        if let KafkaError::AdminOp(code) = e {
            return Error::broker(context, code);
        }
        match e.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::TimedOutQueue
                | RDKafkaErrorCode::RequestTimedOut,
            ) => Error::Unreachable {
                bootstrap: self.bootstrap_server.clone(),
                timeout_ms: self.timeout_ms,
                detail: format!("{context}: {e}"),
            },
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {
                Error::kafka(context, e)
            }
            _ => Error::kafka(context, e),
        }
    }
}

/// Fetches metadata for one topic (or all when `None`) and fails with [`Error::UnknownTopic`]
/// when the topic is missing.
pub(crate) fn metadata<C: rdkafka::ClientContext>(
    args: &ClientArgs,
    client: &rdkafka::client::Client<C>,
    topic: Option<&str>,
) -> Result<Metadata> {
    let md = client.fetch_metadata(topic, args.timeout()).map_err(|e| {
        match (topic, e.rdkafka_error_code()) {
            (
                Some(t),
                Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic),
            ) => Error::UnknownTopic(t.to_string()),
            _ => args.request_error("fetching metadata", e),
        }
    })?;
    if let Some(t) = topic {
        match md.topics().iter().find(|mt| mt.name() == t) {
            None => return Err(Error::UnknownTopic(t.to_string())),
            Some(mt) => {
                if let Some(err) = mt.error() {
                    let code = RDKafkaErrorCode::from(err);
                    return Err(match code {
                        RDKafkaErrorCode::UnknownTopicOrPartition
                        | RDKafkaErrorCode::UnknownTopic => Error::UnknownTopic(t.to_string()),
                        _ => Error::broker(format!("metadata for topic '{t}'"), code),
                    });
                }
            }
        }
    }
    Ok(md)
}

/// Partition ids of `topic`, sorted, from metadata; fails with [`Error::UnknownTopic`].
pub(crate) fn partitions_of<C: rdkafka::ClientContext>(
    args: &ClientArgs,
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<Vec<i32>> {
    let md = metadata(args, client, Some(topic))?;
    let mut ids: Vec<i32> = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    if ids.is_empty() {
        return Err(Error::UnknownTopic(topic.to_string()));
    }
    Ok(ids)
}

/// Low and high watermarks of one partition.
pub(crate) fn watermarks(
    args: &ClientArgs,
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    consumer
        .fetch_watermarks(topic, partition, args.timeout())
        .map_err(|e| args.request_error(&format!("watermarks of {topic}/{partition}"), e))
}

/// Runs a future to completion on the calling thread.
///
/// The admin futures of rdkafka are completed by librdkafka's own background thread through a
/// oneshot channel, so they need no async runtime; parking the thread keeps the CLI free of a
/// tokio runtime, which also means it can be called from inside the binary's runtime without the
/// "runtime within a runtime" panic.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

/// `--output` of listing commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns for people.
    #[default]
    Text,
    /// One JSON document on stdout, for scripts.
    Json,
}

/// Prints rows as left-aligned columns separated by two spaces.
pub(crate) fn print_table(out: &mut impl std::io::Write, rows: &[Vec<String>]) -> Result<()> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[i] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{line}").map_err(|e| Error::io("writing output", e))?;
    }
    Ok(())
}

/// Serializes `value` as pretty JSON on stdout.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(value).expect("a serde_json::Value always serializes");
    writeln!(out, "{text}").map_err(|e| Error::io("writing output", e))
}
