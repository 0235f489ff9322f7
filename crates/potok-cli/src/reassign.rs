//! `potok topics reassign` (issue 19): partition reassignment as Kafka's
//! `kafka-reassign-partitions.sh` does it, on the wire (librdkafka has no API for
//! AlterPartitionReassignments or ListPartitionReassignments).
//!
//! - `--plan FILE`: submits a plan in `kafka-reassign-partitions`' JSON format
//!   (`{"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]}]}`, `log_dirs`
//!   ignored) to the active controller, and reports each partition's outcome.
//! - `--plan FILE --cancel`: cancels the plan's partitions' reassignments (KIP-455's null
//!   target: the partitions go back to their replicas before the move).
//! - `--list`: the reassignments in progress (replicas, adding, removing).
//! - `--balance`: prints a plan spreading replicas and preferred leaders evenly over the brokers
//!   ([`crate::balance`]); with `--execute` it is also submitted.
//!
//! Requests go to the active controller that Metadata names (`controller_id`), as Kafka's admin
//! client sends them.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use potok_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use potok_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse,
};
use potok_protocol::{ApiKey, ErrorCode};
use serde_json::{json, Value};

use crate::balance::{balance, Assignment};
use crate::client::{print_json, print_table, ClientArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::wire::{check, Conn};

#[derive(Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["plan", "list", "balance"])))]
pub struct ReassignArgs {
    /// A plan in kafka-reassign-partitions' JSON format to submit (with --cancel: whose
    /// partitions' reassignments to cancel).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Cancel the reassignments of the plan's partitions instead of starting them.
    #[arg(long, requires = "plan")]
    pub cancel: bool,
    /// List the reassignments in progress.
    #[arg(long)]
    pub list: bool,
    /// Print a plan that spreads replicas and leaders evenly over the brokers.
    #[arg(long)]
    pub balance: bool,
    /// With --balance: also submit the plan.
    #[arg(long, requires = "balance")]
    pub execute: bool,
    /// With --balance: the topics to balance (repeatable; default every topic not starting
    /// with `__`).
    #[arg(long = "topic", requires = "balance")]
    pub topics: Vec<String>,
    /// With --balance: the brokers to spread over, comma-separated (default every broker
    /// Metadata lists).
    #[arg(long, value_delimiter = ',', requires = "balance")]
    pub brokers: Vec<i32>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses a `kafka-reassign-partitions` plan: version 1, each partition once, replica ids
/// present (the broker validates them further).
pub fn parse_plan(text: &str) -> Result<Vec<Assignment>> {
    let bad = |why: String| Error::Usage(format!("invalid reassignment plan: {why}"));
    let v: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    match v.get("version").and_then(Value::as_i64) {
        Some(1) => {}
        other => return Err(bad(format!("version {other:?}, expected 1"))),
    }
    let parts = v
        .get("partitions")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"partitions\" array".into()))?;
    let mut out: Vec<Assignment> = Vec::with_capacity(parts.len());
    for p in parts {
        let topic = p
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("a partition without a topic: {p}")))?;
        let partition = p
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| bad(format!("a partition without an index: {p}")))?;
        let replicas = p
            .get("replicas")
            .and_then(Value::as_array)
            .ok_or_else(|| bad(format!("{topic}-{partition} has no replicas")))?
            .iter()
            .map(|r| r.as_i64().and_then(|n| i32::try_from(n).ok()))
            .collect::<Option<Vec<i32>>>()
            .ok_or_else(|| bad(format!("{topic}-{partition}: replicas must be broker ids")))?;
        if out
            .iter()
            .any(|a| a.topic == topic && a.partition == partition)
        {
            return Err(bad(format!("{topic}-{partition} appears twice")));
        }
        out.push(Assignment {
            topic: topic.to_string(),
            partition,
            replicas,
        });
    }
    Ok(out)
}

/// A plan in `kafka-reassign-partitions`' JSON format.
pub fn plan_json(plan: &[Assignment]) -> Value {
    json!({
        "version": 1,
        "partitions": plan
            .iter()
            .map(|a| json!({
                "topic": a.topic,
                "partition": a.partition,
                "replicas": a.replicas,
                "log_dirs": a.replicas.iter().map(|_| "any").collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>(),
    })
}

/// Runs `potok topics reassign`.
pub fn run(a: &ReassignArgs) -> Result<()> {
    let mut conn = Conn::open(&a.client)?;
    let metadata: MetadataResponse = conn.call(
        ApiKey::Metadata,
        12,
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
    )?;
    let controller = metadata
        .brokers
        .iter()
        .find(|b| b.node_id == metadata.controller_id)
        .map(|b| format!("{}:{}", b.host, b.port))
        .ok_or_else(|| Error::Usage("no active controller is known to the cluster yet".into()))?;
    let mut ctl = Conn::to(&controller, a.client.timeout())?;
    if a.list {
        return list(&mut ctl, a.output);
    }
    if let Some(file) = &a.plan {
        let text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("reading {}", file.display()), e))?;
        let plan = parse_plan(&text)?;
        return submit(&mut ctl, &plan, a.cancel, a);
    }
    // --balance.
    let current = assignments(&metadata, &a.topics)?;
    let brokers: Vec<i32> = if a.brokers.is_empty() {
        metadata.brokers.iter().map(|b| b.node_id).collect()
    } else {
        a.brokers.clone()
    };
    let planned = balance(&current, &brokers).map_err(|e| Error::Usage(e.to_string()))?;
    let changed: Vec<Assignment> = planned
        .into_iter()
        .zip(&current)
        .filter(|(p, c)| p.replicas != c.replicas)
        .map(|(p, _)| p)
        .collect();
    if !a.execute {
        return print_json(&plan_json(&changed));
    }
    if changed.is_empty() {
        writeln!(std::io::stdout(), "already balanced: nothing to move")
            .map_err(|e| Error::io("writing output", e))?;
        return Ok(());
    }
    submit(&mut ctl, &changed, false, a)
}

/// The current assignment of `topics` (every topic not starting with `__` when empty), in
/// topic and partition order.
fn assignments(metadata: &MetadataResponse, topics: &[String]) -> Result<Vec<Assignment>> {
    for t in topics {
        if !metadata
            .topics
            .iter()
            .any(|m| m.name.as_deref() == Some(t.as_str()))
        {
            return Err(Error::UnknownTopic(t.clone()));
        }
    }
    let mut out = Vec::new();
    let mut listed: Vec<_> = metadata
        .topics
        .iter()
        .filter(|t| t.error_code == 0)
        .filter_map(|t| t.name.as_deref().map(|n| (n, t)))
        .filter(|(n, _)| {
            if topics.is_empty() {
                !n.starts_with("__")
            } else {
                topics.iter().any(|t| t == n)
            }
        })
        .collect();
    listed.sort_by(|a, b| a.0.cmp(b.0));
    for (name, t) in listed {
        let mut parts: Vec<_> = t.partitions.iter().collect();
        parts.sort_by_key(|p| p.partition_index);
        for p in parts {
            out.push(Assignment {
                topic: name.to_string(),
                partition: p.partition_index,
                replicas: p.replica_nodes.clone(),
            });
        }
    }
    Ok(out)
}

fn submit(conn: &mut Conn, plan: &[Assignment], cancel: bool, a: &ReassignArgs) -> Result<()> {
    let mut topics: Vec<ReassignableTopic> = Vec::new();
    for p in plan {
        let part = ReassignablePartition {
            partition_index: p.partition,
            replicas: (!cancel).then(|| p.replicas.clone()),
            ..Default::default()
        };
        match topics.iter_mut().find(|t| t.name == p.topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(ReassignableTopic {
                name: p.topic.clone(),
                partitions: vec![part],
                ..Default::default()
            }),
        }
    }
    let request = AlterPartitionReassignmentsRequest {
        timeout_ms: i32::try_from(a.client.timeout_ms).unwrap_or(i32::MAX),
        topics,
        ..Default::default()
    };
    let response: AlterPartitionReassignmentsResponse =
        conn.call(ApiKey::AlterPartitionReassignments, 0, &request)?;
    check(
        "AlterPartitionReassignments",
        response.error_code,
        response.error_message.as_deref(),
    )?;
    let mut failed = 0;
    let mut first_failure = None;
    let mut rows = vec![vec!["TOPIC".into(), "PARTITION".into(), "RESULT".into()]];
    let mut results = Vec::new();
    for t in &response.responses {
        for p in &t.partitions {
            let outcome = if p.error_code == 0 {
                if cancel { "cancelled" } else { "started" }.to_string()
            } else {
                failed += 1;
                let name = ErrorCode::from_code(p.error_code)
                    .map_or_else(|| format!("error {}", p.error_code), |c| format!("{c:?}"));
                let outcome = match p.error_message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{name}: {m}"),
                    _ => name,
                };
                first_failure
                    .get_or_insert_with(|| format!("{}-{}: {outcome}", t.name, p.partition_index));
                outcome
            };
            rows.push(vec![
                t.name.clone(),
                p.partition_index.to_string(),
                outcome.clone(),
            ]);
            results.push(json!({"topic": t.name, "partition": p.partition_index,
                "error_code": p.error_code, "result": outcome}));
        }
    }
    match a.output {
        OutputFormat::Json => print_json(&json!({ "partitions": results }))?,
        OutputFormat::Text => print_table(&mut std::io::stdout().lock(), &rows)?,
    }
    if failed > 0 {
        return Err(Error::Usage(format!(
            "{failed} of {} partitions refused (first: {})",
            rows.len() - 1,
            first_failure.unwrap_or_default()
        )));
    }
    Ok(())
}

fn list(conn: &mut Conn, output: OutputFormat) -> Result<()> {
    let response: ListPartitionReassignmentsResponse = conn.call(
        ApiKey::ListPartitionReassignments,
        0,
        &ListPartitionReassignmentsRequest {
            timeout_ms: 30_000,
            topics: None,
            ..Default::default()
        },
    )?;
    check(
        "ListPartitionReassignments",
        response.error_code,
        response.error_message.as_deref(),
    )?;
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let mut rows = vec![vec![
        "TOPIC".into(),
        "PARTITION".into(),
        "REPLICAS".into(),
        "ADDING".into(),
        "REMOVING".into(),
    ]];
    let mut listed = Vec::new();
    for t in &response.topics {
        for p in &t.partitions {
            rows.push(vec![
                t.name.clone(),
                p.partition_index.to_string(),
                ids(&p.replicas),
                ids(&p.adding_replicas),
                ids(&p.removing_replicas),
            ]);
            listed.push(json!({"topic": t.name, "partition": p.partition_index,
                "replicas": p.replicas, "adding": p.adding_replicas,
                "removing": p.removing_replicas}));
        }
    }
    match output {
        OutputFormat::Json => print_json(&json!({ "reassignments": listed })),
        OutputFormat::Text if listed.is_empty() => {
            writeln!(std::io::stdout(), "No partition reassignments in progress.")
                .map_err(|e| Error::io("writing output", e))
        }
        OutputFormat::Text => print_table(&mut std::io::stdout().lock(), &rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_in_kafkas_format() {
        let text = r#"{"version":1,"partitions":[
            {"topic":"a","partition":0,"replicas":[1,2],"log_dirs":["any","any"]},
            {"topic":"b","partition":3,"replicas":[4]}]}"#;
        let plan = parse_plan(text).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].replicas, vec![4]);
        assert_eq!(
            parse_plan(&plan_json(&plan).to_string()).unwrap(),
            plan,
            "what --balance prints can be submitted"
        );
    }

    #[test]
    fn bad_plans_are_refused_before_anything_is_sent() {
        for bad in [
            "not json",
            r#"{"version":2,"partitions":[]}"#,
            r#"{"version":1}"#,
            r#"{"version":1,"partitions":[{"partition":0,"replicas":[1]}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","replicas":[1]}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":["x"]}]}"#,
            r#"{"version":1,"partitions":[{"topic":"a","partition":0,"replicas":[1]},
                {"topic":"a","partition":0,"replicas":[2]}]}"#,
        ] {
            assert!(parse_plan(bad).is_err(), "{bad}");
        }
    }
}
