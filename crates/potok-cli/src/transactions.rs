//! `potok transactions list|describe|abort`: what Kafka's `kafka-transactions.sh` does for an
//! operator (KIP-664).
//!
//! - `list` asks every broker's transaction coordinator (ListTransactions) and prints each
//!   transactional id with its coordinator, producer id and state.
//! - `describe` finds the coordinator of one transactional id (FindCoordinator `key_type=1`) and
//!   prints its state, epoch, timeout, start time and the partitions of its open transaction
//!   (DescribeTransactions).
//! - `abort` ends a hanging transaction on one partition the way Kafka's `Admin.abortTransaction`
//!   does: an ABORT marker written by the partition's leader (WriteTxnMarkers) for a producer id,
//!   epoch and coordinator epoch, which `--start-offset` looks up with DescribeProducers (the
//!   producer whose open transaction starts at that offset). It is the tool for a transaction
//!   whose coordinator forgot it; a live coordinator's transactions end by commit, abort or
//!   `transaction.timeout.ms`.
//!
//! librdkafka has none of these requests, so the commands speak the protocol themselves
//! ([`crate::wire::Conn`]).

use std::io::Write;

use clap::{Args, Subcommand};
use potok_protocol::messages::describe_producers_request::TopicRequest;
use potok_protocol::messages::metadata_request::MetadataRequestTopic;
use potok_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use potok_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    ListTransactionsRequest, ListTransactionsResponse, MetadataRequest, MetadataResponse,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use potok_protocol::ApiKey;
use serde_json::{json, Value};

use crate::client::{print_json, print_table, ClientArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::wire::{check, now_ms, Conn};

/// FindCoordinator's key type of a transaction coordinator (KIP-98).
const KEY_TYPE_TRANSACTION: i8 = 1;

/// `potok transactions ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum TransactionsCommand {
    /// List the transactional ids every coordinator knows, with their state.
    List(ListArgs),
    /// Show one transactional id's state and the partitions of its open transaction.
    Describe(DescribeArgs),
    /// Abort a hanging transaction on one partition (writes an ABORT marker there).
    Abort(AbortArgs),
}

#[derive(Args, Clone, Debug)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct DescribeArgs {
    /// The transactional id to describe.
    #[arg(long)]
    pub transactional_id: String,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct AbortArgs {
    /// The topic of the partition holding the hanging transaction.
    #[arg(long)]
    pub topic: String,
    /// The partition holding the hanging transaction.
    #[arg(long)]
    pub partition: i32,
    /// The offset of the transaction's first record on the partition (as `potok transactions`
    /// users find it in DescribeProducers' `current_txn_start_offset`); looks up the producer.
    #[arg(long, conflicts_with_all = ["producer_id", "producer_epoch", "coordinator_epoch"])]
    pub start_offset: Option<i64>,
    /// The producer id of the transaction (instead of `--start-offset`).
    #[arg(long, requires_all = ["producer_epoch", "coordinator_epoch"])]
    pub producer_id: Option<i64>,
    /// The producer epoch of the transaction.
    #[arg(long)]
    pub producer_epoch: Option<i16>,
    /// The coordinator epoch the marker carries.
    #[arg(long)]
    pub coordinator_epoch: Option<i32>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `potok transactions ...`.
pub fn run(cmd: &TransactionsCommand) -> Result<()> {
    match cmd {
        TransactionsCommand::List(a) => list(a),
        TransactionsCommand::Describe(a) => describe(a),
        TransactionsCommand::Abort(a) => abort(a),
    }
}

/// Metadata v12 for `topics` (every topic when `None`).
fn metadata(conn: &mut Conn, topics: Option<&[&str]>) -> Result<MetadataResponse> {
    let req = MetadataRequest {
        topics: topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic {
                    name: Some((*t).to_string()),
                    ..Default::default()
                })
                .collect()
        }),
        ..Default::default()
    };
    conn.call(ApiKey::Metadata, 12, &req)
}

fn list(a: &ListArgs) -> Result<()> {
    let mut boot = Conn::open(&a.client)?;
    let meta = metadata(&mut boot, Some(&[]))?;
    let mut brokers = meta.brokers.clone();
    brokers.sort_by_key(|b| b.node_id);
    // Every broker may coordinate transactional ids (the `__transaction_state` partitions it
    // leads), so each is asked, as Kafka's Admin.listTransactions does.
    let mut rows: Vec<(String, i32, i64, String)> = Vec::new();
    for b in &brokers {
        let addr = format!("{}:{}", b.host, b.port);
        let mut conn = Conn::to(&addr, a.client.timeout())?;
        let r: ListTransactionsResponse = conn.call(
            ApiKey::ListTransactions,
            0,
            &ListTransactionsRequest::default(),
        )?;
        check(
            &format!("ListTransactions to broker {}", b.node_id),
            r.error_code,
            None,
        )?;
        rows.extend(r.transaction_states.into_iter().map(|t| {
            (
                t.transactional_id,
                b.node_id,
                t.producer_id,
                t.transaction_state,
            )
        }));
    }
    rows.sort();
    if a.output == OutputFormat::Json {
        return print_json(&Value::Array(
            rows.iter()
                .map(|(id, c, pid, state)| {
                    json!({"transactional_id": id, "coordinator": c, "producer_id": pid, "state": state})
                })
                .collect(),
        ));
    }
    let mut table = vec![vec![
        "TRANSACTIONAL ID".to_string(),
        "COORDINATOR".into(),
        "PRODUCER ID".into(),
        "STATE".into(),
    ]];
    for (id, c, pid, state) in rows {
        table.push(vec![id, c.to_string(), pid.to_string(), state]);
    }
    print_table(&mut std::io::stdout().lock(), &table)
}

fn describe(a: &DescribeArgs) -> Result<()> {
    let mut boot = Conn::open(&a.client)?;
    let req = FindCoordinatorRequest {
        key: a.transactional_id.clone(),
        key_type: KEY_TYPE_TRANSACTION,
        ..Default::default()
    };
    let found: FindCoordinatorResponse = boot.call(ApiKey::FindCoordinator, 3, &req)?;
    check(
        &format!("FindCoordinator for {:?}", a.transactional_id),
        found.error_code,
        found.error_message.as_deref(),
    )?;
    let addr = format!("{}:{}", found.host, found.port);
    let mut conn = Conn::to(&addr, a.client.timeout())?;
    let r: DescribeTransactionsResponse = conn.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest {
            transactional_ids: vec![a.transactional_id.clone()],
            ..Default::default()
        },
    )?;
    let Some(t) = r.transaction_states.into_iter().next() else {
        return Err(Error::Usage(format!(
            "DescribeTransactions to {addr}: an empty answer"
        )));
    };
    check(
        &format!("DescribeTransactions for {:?}", a.transactional_id),
        t.error_code,
        None,
    )?;
    let mut partitions: Vec<String> = t
        .topics
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| format!("{}-{p}", tp.topic))
        })
        .collect();
    partitions.sort();
    // Kafka reports -1 as the start time of a transaction that is not open.
    let duration =
        (t.transaction_start_time_ms >= 0).then(|| (now_ms() - t.transaction_start_time_ms).max(0));
    if a.output == OutputFormat::Json {
        return print_json(&json!({
            "coordinator": found.node_id,
            "transactional_id": t.transactional_id,
            "producer_id": t.producer_id,
            "producer_epoch": t.producer_epoch,
            "state": t.transaction_state,
            "transaction_timeout_ms": t.transaction_timeout_ms,
            "transaction_start_time_ms": t.transaction_start_time_ms,
            "transaction_duration_ms": duration,
            "partitions": partitions,
        }));
    }
    let table = vec![
        vec!["Coordinator".to_string(), found.node_id.to_string()],
        vec!["Transactional id".into(), t.transactional_id],
        vec!["Producer id".into(), t.producer_id.to_string()],
        vec!["Producer epoch".into(), t.producer_epoch.to_string()],
        vec!["State".into(), t.transaction_state],
        vec!["Timeout (ms)".into(), t.transaction_timeout_ms.to_string()],
        vec![
            "Start time (ms)".into(),
            t.transaction_start_time_ms.to_string(),
        ],
        vec![
            "Duration (ms)".into(),
            duration.map_or_else(|| "-".into(), |d| d.to_string()),
        ],
        vec![
            "Partitions".into(),
            if partitions.is_empty() {
                "-".into()
            } else {
                partitions.join(",")
            },
        ],
    ];
    print_table(&mut std::io::stdout().lock(), &table)
}

fn abort(a: &AbortArgs) -> Result<()> {
    let mut boot = Conn::open(&a.client)?;
    let meta = metadata(&mut boot, Some(&[a.topic.as_str()]))?;
    let topic = meta
        .topics
        .iter()
        .find(|t| t.name.as_deref() == Some(a.topic.as_str()));
    let Some(topic) = topic else {
        return Err(Error::Usage(format!(
            "topic {:?}: not in Metadata",
            a.topic
        )));
    };
    check(&format!("topic {:?}", a.topic), topic.error_code, None)?;
    let Some(part) = topic
        .partitions
        .iter()
        .find(|p| p.partition_index == a.partition)
    else {
        return Err(Error::Usage(format!(
            "topic {:?} has no partition {}",
            a.topic, a.partition
        )));
    };
    let Some(leader) = meta.brokers.iter().find(|b| b.node_id == part.leader_id) else {
        return Err(Error::Usage(format!(
            "{}-{} has no leader now (leader {}); try again",
            a.topic, a.partition, part.leader_id
        )));
    };
    let addr = format!("{}:{}", leader.host, leader.port);
    let mut conn = Conn::to(&addr, a.client.timeout())?;
    let tp = format!("{}-{}", a.topic, a.partition);
    let (producer_id, producer_epoch, coordinator_epoch) = match a.start_offset {
        Some(offset) => {
            let r: DescribeProducersResponse = conn.call(
                ApiKey::DescribeProducers,
                0,
                &DescribeProducersRequest {
                    topics: vec![TopicRequest {
                        name: a.topic.clone(),
                        partition_indexes: vec![a.partition],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )?;
            let p = r
                .topics
                .iter()
                .flat_map(|t| t.partitions.iter())
                .find(|p| p.partition_index == a.partition)
                .ok_or_else(|| {
                    Error::Usage(format!("DescribeProducers to {addr}: no answer for {tp}"))
                })?;
            check(
                &format!("DescribeProducers for {tp}"),
                p.error_code,
                p.error_message.as_deref(),
            )?;
            let Some(s) = p
                .active_producers
                .iter()
                .find(|s| s.current_txn_start_offset == offset)
            else {
                return Err(Error::Usage(format!(
                    "{tp}: no producer has an open transaction starting at offset {offset}"
                )));
            };
            let epoch = i16::try_from(s.producer_epoch).map_err(|_| {
                Error::Usage(format!(
                    "{tp}: producer epoch {} out of range",
                    s.producer_epoch
                ))
            })?;
            (s.producer_id, epoch, s.coordinator_epoch)
        }
        None => match (a.producer_id, a.producer_epoch, a.coordinator_epoch) {
            (Some(id), Some(epoch), Some(ce)) => (id, epoch, ce),
            _ => {
                return Err(Error::Usage(
                    "give --start-offset, or --producer-id with --producer-epoch and \
                     --coordinator-epoch"
                        .into(),
                ))
            }
        },
    };
    let r: WriteTxnMarkersResponse = conn.call(
        ApiKey::WriteTxnMarkers,
        1,
        &WriteTxnMarkersRequest {
            markers: vec![WritableTxnMarker {
                producer_id,
                producer_epoch,
                // false: ABORT.
                transaction_result: false,
                topics: vec![WritableTxnMarkerTopic {
                    name: a.topic.clone(),
                    partition_indexes: vec![a.partition],
                    ..Default::default()
                }],
                coordinator_epoch,
                ..Default::default()
            }],
            ..Default::default()
        },
    )?;
    let code = r
        .markers
        .iter()
        .flat_map(|m| m.topics.iter())
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == a.partition)
        .map(|p| p.error_code)
        .ok_or_else(|| Error::Usage(format!("WriteTxnMarkers to {addr}: no answer for {tp}")))?;
    check(&format!("WriteTxnMarkers (ABORT) for {tp}"), code, None)?;
    writeln!(
        std::io::stdout().lock(),
        "Aborted the transaction of producer {producer_id} (epoch {producer_epoch}, \
         coordinator epoch {coordinator_epoch}) on {tp}"
    )
    .map_err(|e| Error::io("writing output", e))
}
