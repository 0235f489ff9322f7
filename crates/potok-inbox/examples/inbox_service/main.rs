//! An example service using the inbox and the outbox together (issue 22,
//! `docs/outbox-inbox.md` "Example service"): it consumes an input topic through
//! `potok_inbox::Inbox`, and for each new message writes a business row and an outbox row in
//! the inbox's database transaction; `potok outbox run` relays the outbox rows.
//!
//! ```text
//! potok outbox init --apply --db "$DB"                  # the outbox table, publication, slot
//! cargo run -p potok-inbox --example inbox_service -- --db "$DB" -b 127.0.0.1:9092 --init
//! potok outbox run --db "$DB" -b 127.0.0.1:9092          # publishes outbox.event.order-processed
//! ```

mod service;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use potok_inbox::InboxConfig;

#[derive(Parser, Debug)]
#[command(about = "Example: input topic → inbox → business row + outbox row")]
struct Args {
    /// PostgreSQL connection string.
    #[arg(long)]
    db: String,
    /// Kafka bootstrap servers.
    #[arg(short = 'b', long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    #[arg(long, default_value = "inbox-example")]
    group: String,
    #[arg(long, default_value = "orders")]
    input_topic: String,
    /// The header holding the message id (the outbox relay sets `id`); messages without it
    /// are identified by topic, partition and offset.
    #[arg(long, default_value = "id")]
    id_header: String,
    #[arg(long, default_value = "outbox")]
    outbox_table: String,
    /// Keep inbox rows this long (seconds).
    #[arg(long, default_value_t = 7 * 24 * 3600)]
    retention_secs: u64,
    /// Prune expired inbox rows at most this often (seconds).
    #[arg(long, default_value_t = 600)]
    prune_interval_secs: u64,
    /// Create the inbox and business tables first.
    #[arg(long)]
    init: bool,
    /// Append topic/partition/offset of each received message to this file.
    #[arg(long)]
    delivery_log: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let mut inbox = InboxConfig::new(&a.db, &a.bootstrap, &a.group);
    inbox.id_header = Some(a.id_header);
    inbox.retention = Duration::from_secs(a.retention_secs);
    inbox.prune_interval = Some(Duration::from_secs(a.prune_interval_secs));
    if a.init {
        service::init(&inbox).await?;
    }
    let cfg = service::ServiceConfig {
        inbox,
        input_topic: a.input_topic,
        outbox_table: a.outbox_table,
        delivery_log: a.delivery_log,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    service::run(cfg, stop).await
}
