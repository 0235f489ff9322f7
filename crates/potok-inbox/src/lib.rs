//! The inbox pattern for Kafka consumers on PostgreSQL (issue 22, `docs/outbox-inbox.md`):
//! each message's side effects are applied once within a service, on top of at-least-once
//! delivery.
//!
//! [`Inbox::process`] runs the application's handler in a database transaction that first
//! inserts `(consumer_group, message_id)` into the inbox table (a duplicate id skips the
//! handler) and, in the same transaction, stores the partition's next offset. After the
//! database commit the offset is committed to the broker too, but the database is the source
//! of truth: when partitions are assigned, the consumer's rebalance callback assigns them at the
//! stored offsets ([`context`]), so a crash between the database commit and the broker commit
//! delivers nothing again.
//!
//! ```no_run
//! # async fn f() -> Result<(), potok_inbox::InboxError> {
//! use potok_inbox::{Inbox, InboxConfig, Outcome};
//! let mut inbox = Inbox::connect(InboxConfig::new("host=127.0.0.1 dbname=app", "127.0.0.1:9092", "billing")).await?;
//! inbox.subscribe(&["orders"])?;
//! loop {
//!     let msg = inbox.recv().await?;
//!     let outcome = inbox
//!         .process(&msg, async |tx| {
//!             tx.execute("INSERT INTO invoices (order_id) VALUES ($1)", &[&"o-1"]).await?;
//!             Ok::<_, tokio_postgres::Error>(())
//!         })
//!         .await?;
//!     if let Outcome::Duplicate = outcome { /* seen before: nothing was run */ }
//! }
//! # }
//! ```

pub mod config;
pub mod context;
pub mod error;
pub mod sql;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio_postgres::Transaction;

pub use config::InboxConfig;
pub use context::InboxContext;
pub use error::{InboxError, Result};
pub use sql::schema_sql;

/// How long one blocking poll waits; `recv` loops over polls, so this only bounds how late a
/// dropped `recv` future lets its poll finish.
const POLL_SLICE: Duration = Duration::from_millis(200);

/// Inbox rows deleted per statement by [`Inbox::prune_expired`].
const PRUNE_BATCH: i64 = 10_000;

/// What [`Inbox::process`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// The handler ran and its transaction committed with the inbox row and the offset.
    Processed(T),
    /// The id was in the inbox already: the handler did not run; the offset was still stored
    /// and committed, so the message is not delivered again.
    Duplicate,
}

/// A Kafka consumer whose messages are processed through the inbox tables.
pub struct Inbox {
    config: InboxConfig,
    statements: sql::Statements,
    /// The connection the handlers' transactions run on.
    db: tokio_postgres::Client,
    consumer: Arc<BaseConsumer<InboxContext>>,
    last_prune: Instant,
    /// Counts database commits for the test-only failpoint (see [`failpoint`]).
    commits: u64,
}

impl Inbox {
    /// The SQL that creates the inbox tables named in `config` (the same as [`schema_sql`]).
    pub fn schema_sql(config: &InboxConfig) -> Result<String> {
        sql::schema_sql(&config.inbox_table, &config.offsets_table)
    }

    /// Creates the inbox tables if they do not exist.
    pub async fn create_schema(config: &InboxConfig) -> Result<()> {
        let sql = Inbox::schema_sql(config)?;
        let db = connect_db(&config.db).await?;
        db.batch_execute(&sql).await?;
        Ok(())
    }

    /// Opens two database connections (one for the handlers' transactions, one for the
    /// rebalance callback, which can run while a handler's transaction is open) and creates the
    /// consumer. Must be called inside a tokio runtime.
    pub async fn connect(config: InboxConfig) -> Result<Inbox> {
        let statements = sql::Statements::new(&config.inbox_table, &config.offsets_table)?;
        let db = connect_db(&config.db).await?;
        let ctx_db = connect_db(&config.db).await?;
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.bootstrap)
            // KIP-429's cooperative protocol: a rebalance hands over only the partitions that
            // move, and the callback assigns them incrementally at their stored offsets.
            .set("partition.assignment.strategy", "cooperative-sticky")
            // Outbox topics are written in Kafka transactions; an aborted one must not be
            // processed.
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest");
        for (k, v) in &config.kafka {
            if InboxConfig::FIXED.contains(&k.as_str()) {
                return Err(InboxError::Config(format!(
                    "the Kafka setting {k} is set by the inbox and cannot be changed"
                )));
            }
            cc.set(k, v);
        }
        cc.set("group.id", &config.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        let context = InboxContext {
            runtime: tokio::runtime::Handle::current(),
            db: Arc::new(ctx_db),
            group: config.group.clone(),
            read_offsets: statements.read_offsets.clone(),
            assign_error: Mutex::new(None),
        };
        let consumer: BaseConsumer<InboxContext> = cc.create_with_context(context)?;
        Ok(Inbox {
            config,
            statements,
            db,
            consumer: Arc::new(consumer),
            last_prune: Instant::now(),
            commits: 0,
        })
    }

    /// Subscribes to `topics` (a group subscription: partitions come through the rebalance
    /// callback).
    pub fn subscribe(&self, topics: &[&str]) -> Result<()> {
        self.consumer.subscribe(topics)?;
        Ok(())
    }

    /// The underlying consumer, for what the inbox does not wrap (metadata, pause/resume).
    /// Committing offsets or assigning partitions through it bypasses the inbox.
    pub fn consumer(&self) -> &BaseConsumer<InboxContext> {
        &self.consumer
    }

    /// The next message. Polls on a blocking thread, because librdkafka runs the rebalance
    /// callback (which reads the stored offsets) inside poll. Prunes expired inbox rows first
    /// when [`InboxConfig::prune_interval`] has passed.
    pub async fn recv(&mut self) -> Result<OwnedMessage> {
        loop {
            if let Some(every) = self.config.prune_interval {
                if self.last_prune.elapsed() >= every {
                    self.last_prune = Instant::now();
                    let n = self.prune_expired().await?;
                    tracing::debug!("inbox: pruned {n} expired rows");
                }
            }
            let c = self.consumer.clone();
            let polled = tokio::task::spawn_blocking(move || {
                c.poll(POLL_SLICE).map(|r| r.map(|m| m.detach()))
            })
            .await
            .map_err(|e| InboxError::Task(e.to_string()))?;
            let fell_back = self
                .consumer
                .context()
                .assign_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(e) = fell_back {
                return Err(InboxError::AssignOffsets(e));
            }
            match polled {
                Some(Ok(m)) => return Ok(m),
                Some(Err(e)) => return Err(e.into()),
                None => {}
            }
        }
    }

    /// Processes `msg` once: in one database transaction, inserts its id into the inbox, runs
    /// `handler` unless the id was there, and stores the partition's next offset; after the
    /// commit, commits that offset to the broker (asynchronously: the stored one is what the
    /// next assignment uses).
    ///
    /// A handler error rolls the transaction back and is returned; nothing of the message is
    /// stored, and it is delivered again after a restart or a rebalance (the caller may also
    /// retry it directly with another `process`).
    pub async fn process<M, T, E, F>(&mut self, msg: &M, handler: F) -> Result<Outcome<T>>
    where
        M: Message,
        F: AsyncFnOnce(&Transaction<'_>) -> std::result::Result<T, E>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let headers: Vec<(&str, Option<&[u8]>)> = msg
            .headers()
            .map(|h| h.iter().map(|hd| (hd.key, hd.value)).collect())
            .unwrap_or_default();
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        let id = sql::message_id(
            self.config.id_header.as_deref(),
            &headers,
            topic,
            partition,
            offset,
        )?;
        let tx = self.db.transaction().await?;
        let inserted = tx
            .execute(
                &self.statements.insert_inbox,
                &[&self.config.group, &id, &topic, &partition, &offset],
            )
            .await?;
        let outcome = if inserted == 1 {
            match handler(&tx).await {
                Ok(v) => Outcome::Processed(v),
                Err(e) => {
                    // An explicit rollback: dropping the transaction would also roll back,
                    // but only on the connection's next use.
                    tx.rollback().await?;
                    return Err(InboxError::Handler {
                        message_id: id,
                        source: e.into(),
                    });
                }
            }
        } else {
            Outcome::Duplicate
        };
        let next = offset + 1;
        tx.execute(
            &self.statements.upsert_offset,
            &[&self.config.group, &topic, &partition, &next],
        )
        .await?;
        tx.commit().await?;
        self.commits += 1;
        failpoint("after-db-commit", self.commits, topic, partition, offset);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, partition, Offset::Offset(next))?;
        // Async: the broker's committed offset is only a fallback (for a database without a
        // stored offset); a lost commit costs duplicates the inbox drops, not correctness.
        if failpoint_is("no-broker-commit") {
            return Ok(outcome);
        }
        if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
            tracing::debug!("inbox: offset commit to the broker failed: {e}");
        }
        Ok(outcome)
    }

    /// Deletes this group's inbox rows older than [`InboxConfig::retention`], in batches;
    /// returns how many.
    pub async fn prune_expired(&self) -> Result<u64> {
        let secs = self.config.retention.as_secs_f64();
        let mut total = 0;
        loop {
            let n = self
                .db
                .execute(
                    &self.statements.prune,
                    &[&self.config.group, &secs, &PRUNE_BATCH],
                )
                .await?;
            total += n;
            if n < PRUNE_BATCH as u64 {
                return Ok(total);
            }
        }
    }
}

/// Connects to PostgreSQL and drives the connection on the current runtime.
async fn connect_db(conninfo: &str) -> Result<tokio_postgres::Client> {
    let mut cfg: tokio_postgres::Config = conninfo.parse()?;
    if cfg.get_application_name().is_none() {
        cfg.application_name("potok-inbox");
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("inbox: PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// The test-only switch `POTOK_TEST_INBOX_FAILPOINT` (the tests of issue 22 set it; never set
/// it in production). `no-broker-commit` skips every offset commit to the broker, as if each
/// were lost, so a test can show that assignments use the stored offsets.
fn failpoint_is(name: &str) -> bool {
    std::env::var("POTOK_TEST_INBOX_FAILPOINT").is_ok_and(|v| v == name)
}

/// Test-only crash point (see [`failpoint_is`]): when `POTOK_TEST_INBOX_FAILPOINT` is `NAME`
/// or `NAME:N`, the process aborts at this point (the N-th time, counting database commits),
/// as a crash would: no destructor, no offset commit, no goodbye to the broker.
fn failpoint(name: &str, count: u64, topic: &str, partition: i32, offset: i64) {
    let Ok(v) = std::env::var("POTOK_TEST_INBOX_FAILPOINT") else {
        return;
    };
    let (point, at) = match v.split_once(':') {
        Some((p, n)) => (p, n.parse().unwrap_or(1)),
        None => (v.as_str(), 1),
    };
    if point == name && count == at {
        eprintln!("potok inbox: failpoint {name} at {topic}/{partition}/{offset}");
        std::process::abort();
    }
}
