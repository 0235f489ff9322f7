//! The example service's logic (issue 22): both patterns end to end. Each message of the
//! input topic goes through the inbox; its handler writes a business row (`processed_orders`)
//! and an outbox row in the inbox's transaction, and `potok outbox run` publishes the outbox
//! rows to `outbox.event.order-processed`. So one input message gives, exactly once, one
//! business row and one event for read_committed consumers (logical mode of the relay).
//!
//! This file is also compiled into `crates/potok/tests/inbox`, whose tests run it as the
//! consumer process they SIGKILL, so the example cannot rot.

use std::future::Future;
use std::path::PathBuf;

use potok_inbox::{Inbox, InboxConfig, Outcome};
use rdkafka::message::{Headers, Message};
use tokio::io::AsyncWriteExt;

/// The business table. No unique constraint on `message_ref` on purpose: the inbox alone
/// keeps one row per message, and the tests count rows to show it.
pub const BUSINESS_SQL: &str = "CREATE TABLE IF NOT EXISTS processed_orders (\n\
  id bigserial PRIMARY KEY,\n\
  message_ref text NOT NULL,\n\
  order_key text,\n\
  payload text,\n\
  processed_at timestamptz NOT NULL DEFAULT now()\n\
);\n";

/// What the service needs beyond the inbox's settings.
pub struct ServiceConfig {
    pub inbox: InboxConfig,
    pub input_topic: String,
    /// The outbox table `potok outbox init` created.
    pub outbox_table: String,
    /// Appends `topic/partition/offset` of every message as it is received, before it is
    /// processed (a debugging aid; the tests use it to see what was delivered).
    pub delivery_log: Option<PathBuf>,
}

/// Creates the inbox tables and the business table (the outbox table is `potok outbox
/// init`'s).
pub async fn init(cfg: &InboxConfig) -> anyhow::Result<()> {
    Inbox::create_schema(cfg).await?;
    let (db, conn) = tokio_postgres::connect(&cfg.db, tokio_postgres::NoTls).await?;
    let task = tokio::spawn(conn);
    db.batch_execute(BUSINESS_SQL).await?;
    drop(db);
    let _ = task.await;
    Ok(())
}

/// Consumes until `stop` completes or an error occurs.
pub async fn run(cfg: ServiceConfig, stop: impl Future<Output = ()>) -> anyhow::Result<()> {
    // The outbox table name goes into SQL text; accept only what the inbox accepts for its own.
    let outbox = potok_inbox::sql::quote_table(&cfg.outbox_table)?;
    let insert_business = "INSERT INTO processed_orders (message_ref, order_key, payload) \
                           VALUES ($1, $2, $3)";
    let insert_outbox = format!(
        "INSERT INTO {outbox} (id, aggregatetype, aggregateid, type, payload) VALUES \
         (gen_random_uuid(), 'order-processed', $1, 'OrderProcessed', \
          jsonb_build_object('order', $1::text, 'ref', $2::text, 'payload', $3::text))"
    );
    let id_header = cfg.inbox.id_header.clone();
    let mut inbox = Inbox::connect(cfg.inbox).await?;
    inbox.subscribe(&[&cfg.input_topic])?;
    let mut log = match &cfg.delivery_log {
        Some(p) => Some(
            tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .await?,
        ),
        None => None,
    };
    let (mut processed, mut duplicates) = (0u64, 0u64);
    tokio::pin!(stop);
    loop {
        let msg = tokio::select! {
            _ = &mut stop => break,
            m = inbox.recv() => m?,
        };
        if let Some(f) = log.as_mut() {
            let line = format!("{}/{}/{}\n", msg.topic(), msg.partition(), msg.offset());
            f.write_all(line.as_bytes()).await?;
            f.flush().await?;
        }
        // What the business row records as the message: the id header when there is one,
        // else where the record is; the tests group by it.
        let header_ref = id_header.as_deref().and_then(|name| {
            msg.headers().and_then(|h| {
                h.iter()
                    .filter(|hd| hd.key == name)
                    .last()
                    .and_then(|hd| hd.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        });
        let message_ref = header_ref
            .unwrap_or_else(|| format!("{}/{}/{}", msg.topic(), msg.partition(), msg.offset()));
        let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let payload = msg
            .payload()
            .map(|p| String::from_utf8_lossy(p).into_owned());
        let order = key.clone().unwrap_or_else(|| message_ref.clone());
        let outcome = inbox
            .process(&msg, async |tx| {
                tx.execute(insert_business, &[&message_ref, &key, &payload])
                    .await?;
                tx.execute(&insert_outbox, &[&order, &message_ref, &payload])
                    .await?;
                Ok::<_, tokio_postgres::Error>(())
            })
            .await?;
        match outcome {
            Outcome::Processed(()) => processed += 1,
            Outcome::Duplicate => duplicates += 1,
        }
        if (processed + duplicates) % 1000 == 0 {
            tracing::info!("inbox service: {processed} processed, {duplicates} duplicates");
        }
    }
    tracing::info!("inbox service: stopping; {processed} processed, {duplicates} duplicates");
    Ok(())
}
