//! The poll mode (at least once). One relay at a time holds a session-level
//! `pg_try_advisory_lock` on the table (several relays sharing rows with SKIP LOCKED would
//! publish one aggregate's rows out of order). Each round:
//!
//! 1. **stamp**: `UPDATE ... SET batch = nextval(seq) WHERE batch IS NULL` gives every row that
//!    is committed and not yet stamped the same new, larger number. Rows become visible to the
//!    relay's statement only once their transaction committed, so the stamp orders rows by
//!    when the relay first saw them committed; the insertion-order column breaks ties inside a
//!    stamp (the rows of one transaction, or of transactions that committed between two
//!    rounds). Neither `id` (a random uuid under Debezium's conventions) nor a serial column
//!    alone is commit order: a serial is drawn at INSERT time, and a transaction that drew 5
//!    can commit after one that drew 6 — reading `ORDER BY serial` would publish 6 and later
//!    5, or skip 5 forever if the reader remembered "after 6".
//! 2. **publish** the oldest stamped rows (`ORDER BY batch, seq LIMIT --batch-max-rows`) in one
//!    Kafka transaction;
//! 3. **delete** them.
//!
//! A crash between 2 and 3 publishes those rows again after the restart: duplicates carry the
//! same `id` header, and because a round publishes a prefix of the same order, a consumer sees
//! a replay of a suffix it already saw, never a reordering.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::config::{quote_ident, Mode, RunArgs, TableName};
use crate::error::{OutboxError, Result};
use crate::producer::TxnProducer;
use crate::row::{OutboxRow, Router};
use crate::sql::{batch_sequence, check_table, PayloadKind};
use crate::{connect, failpoint, Relay, SessionEnd};

/// The SQL of one table, built once.
struct Statements {
    stamp: String,
    select: String,
    delete: String,
    backlog: String,
}

fn statements(args: &RunArgs, payload: PayloadKind) -> Result<Statements> {
    let t = &args.table;
    let table = TableName::parse(&t.table).map_err(OutboxError::Config)?;
    let q = table.quoted();
    let seq = quote_ident(&t.seq_column);
    let batch = quote_ident(&t.batch_column);
    let payload = match payload {
        PayloadKind::Bytes => quote_ident(&t.payload_column),
        PayloadKind::Text => format!("{}::text", quote_ident(&t.payload_column)),
    };
    let headers = t
        .headers_column
        .as_ref()
        .map_or("NULL::text".to_string(), |h| {
            format!("{}::text", quote_ident(h))
        });
    Ok(Statements {
        stamp: format!(
            "UPDATE {q} SET {batch} = s.v FROM (SELECT nextval({lit}::regclass) AS v) s \
             WHERE {batch} IS NULL",
            lit = crate::config::quote_literal(&batch_sequence(&table, t).quoted()),
        ),
        select: format!(
            "SELECT {id}::text, {at}::text, {ai}::text, {ty}::text, {payload}, {headers}, {seq} \
             FROM {q} WHERE {batch} IS NOT NULL ORDER BY {batch}, {seq} LIMIT $1",
            id = quote_ident(&t.id_column),
            at = quote_ident(&t.aggregatetype_column),
            ai = quote_ident(&t.aggregateid_column),
            ty = quote_ident(&t.type_column),
        ),
        delete: format!("DELETE FROM {q} WHERE {seq} = ANY($1)"),
        backlog: format!("SELECT count(*) FROM {q}"),
    })
}

/// One connection's worth of relaying: returns when stopped, when `--once` is done, or with the
/// error that ended the session.
pub async fn session(relay: &Relay) -> Result<SessionEnd> {
    let args = &relay.args;
    let client = connect(&args.table.db).await?;
    let info = check_table(&client, &args.table, Mode::Poll, true).await?;
    let st = statements(args, info.payload)?;
    wait_for_lock(relay, &client).await?;
    if relay.stop.requested() {
        return Ok(SessionEnd::Stopped);
    }
    let producer = TxnProducer::create(
        &args.bootstrap_server,
        &relay.transactional_id,
        &relay.kafka_settings,
    )?;
    producer.init().await?;
    tracing::info!(
        "poll mode: relaying {} to {} as {}",
        args.table.table,
        args.bootstrap_server,
        relay.transactional_id
    );
    loop {
        if relay.stop.requested() {
            return Ok(SessionEnd::Stopped);
        }
        let mut rows = read_batch(&client, &st, args.batch_max_rows, info.payload).await?;
        if rows.len() < args.batch_max_rows && args.linger_ms > 0 && !rows.is_empty() {
            // A batch that is not full waits a moment for more rows (--linger-ms).
            relay
                .stop
                .sleep(Duration::from_millis(args.linger_ms))
                .await;
            rows = read_batch(&client, &st, args.batch_max_rows, info.payload).await?;
        }
        if rows.is_empty() {
            relay.metrics.set_lag_rows(0);
            if args.once {
                return Ok(SessionEnd::Done);
            }
            relay
                .stop
                .sleep(Duration::from_millis(args.poll_interval_ms))
                .await;
            continue;
        }
        publish(relay, &client, &st, &producer, rows).await?;
        let backlog: i64 = client.query_one(&st.backlog, &[]).await?.get(0);
        relay.metrics.set_lag_rows(backlog);
    }
}

/// Blocks (politely) until this session holds the table's advisory lock.
async fn wait_for_lock(relay: &Relay, client: &Client) -> Result<()> {
    let key = format!("potok-outbox:{}", relay.args.table.table);
    let mut logged = false;
    loop {
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock(hashtext($1))", &[&key])
            .await?
            .get(0);
        if got || relay.stop.requested() {
            return Ok(());
        }
        if relay.args.once {
            return Err(OutboxError::Config(format!(
                "another relay holds the advisory lock of {} (key hashtext({key:?}))",
                relay.args.table.table
            )));
        }
        if !logged {
            tracing::info!(
                "another relay holds the lock of {}; waiting",
                relay.args.table.table
            );
            logged = true;
        }
        relay.stop.sleep(Duration::from_secs(1)).await;
    }
}

async fn read_batch(
    client: &Client,
    st: &Statements,
    max: usize,
    payload: PayloadKind,
) -> Result<Vec<OutboxRow>> {
    client.execute(&st.stamp, &[]).await?;
    let limit = i64::try_from(max).unwrap_or(i64::MAX);
    let rows = client.query(&st.select, &[&limit]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let payload = match payload {
            PayloadKind::Bytes => r.get::<_, Option<Vec<u8>>>(4),
            PayloadKind::Text => r.get::<_, Option<String>>(4).map(String::into_bytes),
        };
        out.push(OutboxRow {
            id: r
                .get::<_, Option<String>>(0)
                .unwrap_or_else(|| "NULL".into()),
            aggregatetype: r.get(1),
            aggregateid: r.get(2),
            event_type: r.get(3),
            payload,
            headers_json: r.get(5),
            seq: Some(r.get(6)),
        });
    }
    Ok(out)
}

/// Publishes the good prefix of `rows`, deletes it, and reports the first bad row, if any.
async fn publish(
    relay: &Relay,
    client: &Client,
    st: &Statements,
    producer: &TxnProducer,
    rows: Vec<OutboxRow>,
) -> Result<()> {
    let started = Instant::now();
    let (batch, bad) = route_prefix(&relay.router, rows);
    if !batch.is_empty() {
        producer.publish(&batch, None).await?;
        failpoint("poll-after-kafka-commit");
        let seqs: Vec<i64> = batch.iter().filter_map(|(r, _)| r.seq).collect();
        client.execute(&st.delete, &[&seqs]).await?;
        relay.metrics.published(batch.len(), None);
        tracing::debug!("published {} rows in {:?}", batch.len(), started.elapsed());
    }
    match bad {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Routes rows in order up to the first that cannot be published: the rows before it go out,
/// it and every row after it stay (nothing is skipped or reordered).
pub fn route_prefix(
    router: &Router,
    rows: impl IntoIterator<Item = OutboxRow>,
) -> (Vec<(OutboxRow, crate::row::Record)>, Option<OutboxError>) {
    let mut out = Vec::new();
    for row in rows {
        match router.route(&row) {
            Ok(rec) => out.push((row, rec)),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}
