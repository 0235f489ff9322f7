//! The logical mode (exactly once). Rows come from a logical replication slot with pgoutput on
//! a publication of the table (protocol version 1, no `streaming` of in-progress
//! transactions), so they arrive in commit order, each transaction whole, with no polling.
//!
//! Each Kafka transaction carries whole database transactions and, inside the same Kafka
//! transaction, a transactional offset commit for the relay's group (`--group`) on
//! `--position-topic` partition 0 whose offset is the commit end LSN of the last database
//! transaction published and whose `committed_metadata` is that LSN in PostgreSQL's notation
//! (KIP-618 stores a source connector's offsets the same way, atomically with its records). At
//! start the relay first fences any previous relay (`init_transactions`, which aborts its open
//! transaction), then reads the position back with OffsetFetch `require_stable` (librdkafka
//! sets it for a read_committed consumer), and skips every transaction that ends at or before
//! it. The slot's confirmed position is advanced only after the Kafka commit, and only to let
//! PostgreSQL free WAL: a crash between the two replays transactions the relay then skips.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio_postgres::Client;

use crate::config::{quote_ident, Mode, TableName};
use crate::error::{OutboxError, Result};
use crate::pgoutput::{to_row, Change, Decoder};
use crate::poll::route_prefix;
use crate::producer::{PositionCommit, TxnProducer};
use crate::row::OutboxRow;
use crate::sql::{check_logical, check_table, logical_possible, TableInfo};
use crate::{connect, failpoint, Relay, SessionEnd};

/// One database transaction decoded from the stream.
struct Txn {
    end_lsn: u64,
    commit_time_micros: i64,
    rows: Vec<OutboxRow>,
}

/// PostgreSQL's epoch (2000-01-01) in Unix microseconds, for commit times.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

pub async fn session(relay: &Relay) -> Result<SessionEnd> {
    let args = &relay.args;
    let client = connect(&args.table.db).await?;
    if let Err(why) = logical_possible(&client).await? {
        return Err(OutboxError::Config(format!("--mode logical: {why}")));
    }
    let info = check_table(&client, &args.table, Mode::Logical, args.delete_published).await?;
    check_logical(&client, &args.table).await?;

    let producer = TxnProducer::create(
        &args.bootstrap_server,
        &relay.transactional_id,
        &relay.kafka_settings,
    )?;
    producer.init().await?;
    ensure_position_topic(relay).await?;
    let consumer = Arc::new(position_consumer(relay)?);
    let mut position = read_position(relay, &consumer).await?;
    let target = if args.once {
        let lsn: String = client
            .query_one("SELECT pg_current_wal_lsn()::text", &[])
            .await?
            .get(0);
        Some(parse_lsn(&lsn)?)
    } else {
        None
    };
    tracing::info!(
        "logical mode: slot {} from {} (stored position {})",
        args.table.slot,
        args.table.publication,
        Lsn(position)
    );

    let mut repl = ReplicationClient::connect(replication_config(relay, position)?)
        .await
        .map_err(|e| OutboxError::Replication(e.to_string()))?;
    if position > 0 {
        // The stored position was published: let PostgreSQL free the WAL before it (the slot
        // may lag behind it after a crash right after a Kafka commit).
        repl.update_applied_lsn(Lsn(position));
    }
    let mut decoder = Decoder::default();
    let mut current: Option<Txn> = None;
    let mut pending: Vec<Txn> = Vec::new();
    let mut pending_rows = 0usize;
    let mut first_pending: Option<Instant> = None;
    let linger = Duration::from_millis(args.linger_ms);
    let mut last_slot_check = Instant::now();
    loop {
        let due = first_pending.map(|t| t + linger);
        let flush_now =
            due.is_some_and(|d| Instant::now() >= d) || pending_rows >= args.batch_max_rows;
        if flush_now || (relay.stop.requested() && !pending.is_empty()) {
            position = flush(
                relay,
                &client,
                &info,
                &producer,
                &consumer,
                &repl,
                &mut pending,
                position,
            )
            .await?;
            pending_rows = 0;
            first_pending = None;
            continue;
        }
        if relay.stop.requested() {
            return Ok(SessionEnd::Stopped);
        }
        if last_slot_check.elapsed() >= Duration::from_secs(5) {
            last_slot_check = Instant::now();
            update_slot_metrics(relay, &client, position).await?;
        }
        let wait = due.map_or(Duration::from_millis(500), |d| {
            d.saturating_duration_since(Instant::now())
        });
        let ev = tokio::select! {
            ev = repl.recv() => ev.map_err(|e| OutboxError::Replication(e.to_string()))?,
            _ = tokio::time::sleep(wait) => continue,
            _ = relay.stop.wait() => continue,
        };
        let Some(ev) = ev else {
            return Err(OutboxError::Replication(
                "the server ended the stream".into(),
            ));
        };
        match ev {
            ReplicationEvent::Begin {
                commit_time_micros, ..
            } => {
                current = Some(Txn {
                    end_lsn: 0,
                    commit_time_micros,
                    rows: Vec::new(),
                });
            }
            ReplicationEvent::XLogData { data, .. } => {
                if let Change::Insert { relation, values } = decoder.decode(&data)? {
                    let rel = decoder.relation(relation).ok_or_else(|| {
                        OutboxError::Decode(format!("an insert into unknown relation {relation}"))
                    })?;
                    if !is_table(rel, &args.table.table) {
                        continue;
                    }
                    let row = to_row(rel, values, &args.table, info.payload)?;
                    match current.as_mut() {
                        Some(t) => t.rows.push(row),
                        None => {
                            return Err(OutboxError::Decode(
                                "an insert outside a transaction".into(),
                            ))
                        }
                    }
                }
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                let Some(mut txn) = current.take() else {
                    return Err(OutboxError::Decode("a commit without a begin".into()));
                };
                txn.end_lsn = end_lsn.as_u64();
                if txn.end_lsn <= position {
                    // Published before a crash that came ahead of the slot's confirmation.
                    continue;
                }
                if txn.rows.is_empty() {
                    if pending.is_empty() {
                        repl.update_applied_lsn(end_lsn);
                    }
                    continue;
                }
                pending_rows += txn.rows.len();
                first_pending.get_or_insert_with(Instant::now);
                pending.push(txn);
                if let Some(t) = target {
                    if end_lsn.as_u64() >= t {
                        flush(
                            relay,
                            &client,
                            &info,
                            &producer,
                            &consumer,
                            &repl,
                            &mut pending,
                            position,
                        )
                        .await?;
                        return Ok(SessionEnd::Done);
                    }
                }
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                if current.is_none() && pending.is_empty() {
                    // Every transaction that committed before `wal_end` was streamed before
                    // this keepalive and is published or had no outbox row: the slot may move
                    // on, so writes to other tables do not hold WAL back while the outbox is
                    // idle (PostgreSQL's own subscribers answer keepalives the same way). The
                    // position in Kafka stays; a restart starts from the later of the two.
                    repl.update_applied_lsn(wal_end);
                }
                if let Some(t) = target {
                    if wal_end.as_u64() >= t && current.is_none() {
                        flush(
                            relay,
                            &client,
                            &info,
                            &producer,
                            &consumer,
                            &repl,
                            &mut pending,
                            position,
                        )
                        .await?;
                        return Ok(SessionEnd::Done);
                    }
                }
            }
            ReplicationEvent::StoppedAt { .. } => {
                return Err(OutboxError::Replication("the stream stopped".into()));
            }
            ReplicationEvent::Message { .. } => {}
        }
    }
}

fn is_table(rel: &crate::pgoutput::Relation, table: &str) -> bool {
    TableName::parse(table).is_ok_and(|t| t.schema == rel.schema && t.name == rel.name)
}

/// Publishes the pending transactions (whole ones only) with their position, confirms the slot,
/// optionally deletes the rows; returns the new position. A bad row publishes the transactions
/// before its own and then stops the relay.
#[allow(clippy::too_many_arguments)]
async fn flush(
    relay: &Relay,
    client: &Client,
    info: &TableInfo,
    producer: &TxnProducer,
    consumer: &Arc<BaseConsumer>,
    repl: &ReplicationClient,
    pending: &mut Vec<Txn>,
    position: u64,
) -> Result<u64> {
    if pending.is_empty() {
        return Ok(position);
    }
    let txns = std::mem::take(pending);
    let mut batch = Vec::new();
    let mut end = position;
    let mut commit_micros = 0;
    let mut bad = None;
    for txn in txns {
        let (routed, err) = route_prefix(&relay.router, txn.rows);
        if let Some(e) = err {
            // A transaction is published whole or not at all: the rows of this one stay
            // unpublished with the bad row.
            bad = Some(e);
            break;
        }
        batch.extend(routed);
        end = txn.end_lsn;
        commit_micros = txn.commit_time_micros;
    }
    if end > position {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                &relay.args.position_topic,
                0,
                Offset::Offset(lsn_offset(end)),
            )
            .map_err(|e| OutboxError::Kafka(format!("position: {e}")))?;
        let metadata = format!("lsn={}", Lsn(end));
        for mut el in offsets.elements() {
            el.set_metadata(&metadata);
        }
        let group = consumer
            .group_metadata()
            .ok_or_else(|| OutboxError::Kafka("no consumer group metadata".into()))?;
        producer
            .publish(&batch, Some(PositionCommit { offsets, group }))
            .await?;
        failpoint("logical-after-kafka-commit");
        repl.update_applied_lsn(Lsn(end));
        if relay.args.delete_published {
            delete_rows(relay, client, info, &batch).await?;
        }
        let lag_ms = (unix_micros() - (commit_micros + PG_EPOCH_UNIX_MICROS)) / 1000;
        relay.metrics.published(batch.len(), Some(lag_ms.max(0)));
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(end),
    }
}

async fn delete_rows(
    relay: &Relay,
    client: &Client,
    info: &TableInfo,
    batch: &[(OutboxRow, crate::row::Record)],
) -> Result<()> {
    let t = &relay.args.table;
    let table = TableName::parse(&t.table).map_err(OutboxError::Config)?;
    let ids: Vec<&str> = batch.iter().map(|(r, _)| r.id.as_str()).collect();
    let sql = format!(
        "DELETE FROM {} WHERE {} = ANY($1::text[]::{}[])",
        table.quoted(),
        quote_ident(&t.id_column),
        info.id_type
    );
    client.execute(&sql, &[&ids]).await?;
    Ok(())
}

fn unix_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// An LSN as a Kafka offset (LSNs stay far below 2^63 in practice; a larger one saturates,
/// and the metadata carries the exact value).
fn lsn_offset(lsn: u64) -> i64 {
    i64::try_from(lsn).unwrap_or(i64::MAX)
}

/// Parses PostgreSQL's `X/Y` notation.
pub fn parse_lsn(s: &str) -> Result<u64> {
    Lsn::parse(s)
        .map(|l| l.as_u64())
        .map_err(|e| OutboxError::Decode(format!("LSN {s:?}: {e}")))
}

/// Creates `--position-topic` (one partition, the broker's default replication factor) unless
/// it exists: a transactional offset commit names a partition the broker must know
/// (UNKNOWN_TOPIC_OR_PARTITION otherwise). Nothing is ever written to it.
async fn ensure_position_topic(relay: &Relay) -> Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::types::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &relay.args.bootstrap_server)
        .create()
        .map_err(|e| OutboxError::Config(format!("Kafka admin client settings: {e}")))?;
    // KIP-464: -1 takes the broker's default.replication.factor.
    let topic = NewTopic::new(&relay.args.position_topic, 1, TopicReplication::Fixed(-1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&topic], &opts)
        .await
        .map_err(|e| OutboxError::Kafka(format!("create the position topic: {e}")))?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(OutboxError::Kafka(format!(
                    "create the position topic {name:?} (--position-topic): {code}"
                )))
            }
        }
    }
    Ok(())
}

fn position_consumer(relay: &Relay) -> Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", &relay.args.bootstrap_server)
        .set("group.id", &relay.group)
        .set("enable.auto.commit", "false")
        // read_committed makes librdkafka send OffsetFetch with require_stable (KIP-447), so a
        // position still inside an open transaction is never read.
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|e| OutboxError::Config(format!("Kafka consumer settings: {e}")))
}

/// The position stored by the last committed Kafka transaction, 0 if none.
async fn read_position(relay: &Relay, consumer: &Arc<BaseConsumer>) -> Result<u64> {
    let c = Arc::clone(consumer);
    let topic = relay.args.position_topic.clone();
    let r = tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        c.committed_offsets(tpl, Duration::from_secs(30))
    })
    .await
    .map_err(|e| OutboxError::Kafka(e.to_string()))?
    .map_err(|e| OutboxError::Kafka(format!("OffsetFetch of the relay's position: {e}")))?;
    let Some(el) = r.elements().into_iter().next() else {
        return Ok(0);
    };
    if let Some(lsn) = el.metadata().strip_prefix("lsn=") {
        return parse_lsn(lsn);
    }
    match el.offset() {
        Offset::Offset(o) if o > 0 => Ok(o as u64),
        _ => Ok(0),
    }
}

fn replication_config(relay: &Relay, position: u64) -> Result<ReplicationConfig> {
    let cfg: tokio_postgres::Config = relay
        .args
        .table
        .db
        .parse()
        .map_err(|e| OutboxError::Config(format!("--db: {e}")))?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    let user = cfg
        .get_user()
        .map(str::to_string)
        .or_else(|| std::env::var("USER").ok())
        .ok_or_else(|| OutboxError::Config("--db names no user".into()))?;
    let password = cfg
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let dbname = cfg
        .get_dbname()
        .map_or_else(|| user.clone(), str::to_string);
    Ok(ReplicationConfig::new(
        host,
        user,
        password,
        dbname,
        relay.args.table.slot.clone(),
        relay.args.table.publication.clone(),
    )
    .with_port(port)
    .with_start_lsn(Lsn(position))
    .with_status_interval(Duration::from_secs(1))
    .with_application_name("potok-outbox"))
}

async fn update_slot_metrics(relay: &Relay, client: &Client, position: u64) -> Result<()> {
    let row = client
        .query_opt(
            "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint, \
             pg_current_wal_lsn()::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&relay.args.table.slot],
        )
        .await?;
    if let Some(r) = row {
        let retained: Option<i64> = r.get(0);
        let current: String = r.get(1);
        relay
            .metrics
            .slot_retained_bytes
            .store(retained.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
        if let Ok(cur) = parse_lsn(&current) {
            let lag = i64::try_from(cur.saturating_sub(position)).unwrap_or(i64::MAX);
            relay
                .metrics
                .lag_bytes
                .store(lag, std::sync::atomic::Ordering::Relaxed);
        }
    }
    Ok(())
}
