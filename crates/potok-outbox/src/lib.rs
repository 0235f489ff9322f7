//! `potok outbox`: the transactional outbox relay from a PostgreSQL table to Kafka topics
//! (issue 22, `docs/outbox-inbox.md`).
//!
//! A service writes its change and an event row into the outbox table in one database
//! transaction; the relay publishes the rows of committed transactions, in commit order, with a
//! transactional producer. Two modes:
//! - [`logical`]: a pgoutput replication slot, the last published commit LSN stored in the same
//!   Kafka transaction as the rows: exactly once for read_committed consumers;
//! - [`poll`]: an advisory lock, a commit-ordered column the relay maintains, publish then
//!   delete: at least once, duplicates carrying the same `id` header.
//!
//! The binary flattens [`OutboxCommand`] into its subcommands and calls [`run`]. A bad row or a
//! bad setting stops the relay with an error naming it; a broker or database outage is retried
//! with backoff (nothing is dropped: the table or the slot holds the backlog).
//!
//! No TLS to PostgreSQL yet: the relay is meant to run next to the database or over a trusted
//! network; the connection string's `sslmode` other than `disable`/`prefer` is refused by
//! tokio-postgres without a TLS connector.

pub mod config;
pub mod error;
pub mod logical;
pub mod metrics;
pub mod pgoutput;
pub mod poll;
pub mod producer;
pub mod row;
pub mod sql;

use std::sync::Arc;
use std::time::Duration;

pub use config::{InitArgs, Mode, RunArgs, TableArgs};
pub use error::{OutboxError, Result};

use metrics::Metrics;
use row::Router;

/// `potok outbox ...`.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum OutboxCommand {
    /// Run the relay until SIGTERM/SIGINT (or, with --once, until the backlog is published).
    Run(Box<RunArgs>),
    /// Print the SQL that prepares a database (table, sequence, publication, slot); --apply
    /// runs it.
    Init(Box<InitArgs>),
}

/// Runs one `potok outbox` subcommand to completion on its own runtime.
pub fn run(cmd: OutboxCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("potok-outbox")
        .build()?;
    match cmd {
        OutboxCommand::Run(args) => runtime.block_on(run_relay(*args)),
        OutboxCommand::Init(args) => runtime.block_on(init(*args)),
    }
}

async fn init(args: InitArgs) -> Result<()> {
    let statements = sql::init_statements(&args.table, args.mode)?;
    if !args.apply {
        for s in &statements {
            println!("{s};\n");
        }
        return Ok(());
    }
    let client = connect(&args.table.db).await?;
    for s in &statements {
        client.batch_execute(s).await?;
    }
    println!(
        "applied {} statements for {}",
        statements.len(),
        args.table.table
    );
    Ok(())
}

/// A stop request (SIGTERM/SIGINT), observable by polling and by awaiting.
#[derive(Clone, Debug)]
pub struct Stop {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Stop {
    /// Requests the stop.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
    /// True once requested.
    pub fn requested(&self) -> bool {
        *self.tx.borrow()
    }
    /// Resolves once requested.
    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }
    /// Sleeps for `d` or until the stop, whichever comes first.
    pub async fn sleep(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.wait() => {}
        }
    }
}

/// What every session of the relay shares.
pub struct Relay {
    pub args: RunArgs,
    pub router: Router,
    pub transactional_id: String,
    pub group: String,
    pub kafka_settings: Vec<(String, String)>,
    pub stop: Stop,
    pub metrics: Arc<Metrics>,
}

/// How a session ended without an error.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// SIGTERM/SIGINT: the batch in flight was finished.
    Stopped,
    /// `--once`: the backlog is published.
    Done,
}

async fn run_relay(args: RunArgs) -> Result<()> {
    if args.batch_max_rows == 0 {
        return Err(OutboxError::Config(
            "--batch-max-rows must be at least 1".into(),
        ));
    }
    let router = Router::new(&args.topic_template)?;
    let kafka_settings = config::parse_settings(&args.kafka_set).map_err(OutboxError::Config)?;
    let name = if args.mode == Mode::Poll {
        args.table.table.clone()
    } else {
        args.table.slot.clone()
    };
    let relay = Relay {
        transactional_id: args
            .transactional_id
            .clone()
            .unwrap_or_else(|| format!("potok-outbox.{name}")),
        group: args
            .group
            .clone()
            .unwrap_or_else(|| format!("potok-outbox.{}", args.table.slot)),
        router,
        kafka_settings,
        stop: Stop::default(),
        metrics: Arc::new(Metrics::default()),
        args,
    };
    let stop = relay.stop.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stop requested: finishing the batch in flight");
        stop.trigger();
    });
    if let Some(addr) = relay.args.metrics_listener {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| OutboxError::Config(format!("--metrics-listener {addr}: {e}")))?;
        tokio::spawn(metrics::serve(listener, Arc::clone(&relay.metrics)));
    }
    let mode = resolve_mode(&relay).await?;
    let mut backoff = Duration::from_millis(100);
    let max = Duration::from_millis(relay.args.backoff_max_ms.max(100));
    loop {
        let published_before = relay
            .metrics
            .rows_published
            .load(std::sync::atomic::Ordering::Relaxed);
        let r = match mode {
            Mode::Poll => poll::session(&relay).await,
            _ => logical::session(&relay).await,
        };
        match r {
            Ok(end) => {
                tracing::info!("relay stopped ({end:?})");
                return Ok(());
            }
            Err(e) if e.is_retriable() && !relay.stop.requested() => {
                if relay
                    .metrics
                    .rows_published
                    .load(std::sync::atomic::Ordering::Relaxed)
                    > published_before
                {
                    // The session made progress: the failure is new, start the backoff over.
                    backoff = Duration::from_millis(100);
                }
                relay
                    .metrics
                    .retries
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!("{e}; retrying in {backoff:?}");
                relay.stop.sleep(backoff).await;
                if relay.stop.requested() {
                    return Ok(());
                }
                backoff = (backoff * 2).min(max);
            }
            Err(e) if e.is_retriable() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// `--mode auto`: logical when possible, else poll (with the reason logged).
async fn resolve_mode(relay: &Relay) -> Result<Mode> {
    if relay.args.mode != Mode::Auto {
        return Ok(relay.args.mode);
    }
    let mut delay = Duration::from_millis(100);
    loop {
        match connect(&relay.args.table.db).await {
            Ok(client) => {
                return Ok(match sql::logical_possible(&client).await? {
                    Ok(()) => Mode::Logical,
                    Err(why) => {
                        tracing::info!("--mode auto: poll mode, because {why}");
                        Mode::Poll
                    }
                });
            }
            Err(e) if e.is_retriable() && !relay.stop.requested() => {
                tracing::warn!("{e}; retrying in {delay:?}");
                relay.stop.sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Connects to PostgreSQL (10 s connect timeout unless the string sets one) and drives the
/// connection on its own task.
pub async fn connect(db: &str) -> Result<tokio_postgres::Client> {
    let mut cfg: tokio_postgres::Config = db
        .parse()
        .map_err(|e| OutboxError::Config(format!("--db: {e}")))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("potok-outbox");
    }
    let (client, conn) = cfg.connect(tokio_postgres::NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("PostgreSQL connection ended: {e}");
        }
    });
    Ok(client)
}

/// Test-only crash points: when `POTOK_TEST_OUTBOX_FAILPOINT` names this point, the process
/// aborts here, as a crash would (no destructor, no flush, no goodbye to the broker).
pub fn failpoint(name: &str) {
    if std::env::var("POTOK_TEST_OUTBOX_FAILPOINT").is_ok_and(|v| v == name) {
        eprintln!("potok outbox: failpoint {name}");
        std::process::abort();
    }
}
