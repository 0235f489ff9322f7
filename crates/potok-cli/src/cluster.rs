//! `potok cluster describe`: the cluster's brokers (DescribeCluster) and its controller quorum
//! (DescribeQuorum: voters, leader, epoch, high watermark and each voter's lag), what Kafka's
//! `kafka-cluster.sh` and `kafka-metadata-quorum.sh describe --status --replication` show.
//!
//! librdkafka has no API for either request, so this command speaks the Kafka protocol itself:
//! one blocking connection to the first bootstrap address that answers, ApiVersions first (a
//! single node without a quorum does not advertise DescribeQuorum, and the quorum part is then
//! reported as absent rather than failed), then the two requests at versions every Kafka 3.7+
//! broker serves.

use std::io::Write;

use clap::{Args, Subcommand};
use potok_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use potok_protocol::messages::describe_quorum_response::ReplicaState;
use potok_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse,
};
use potok_protocol::ApiKey;
use serde_json::{json, Value};

use crate::client::{print_json, print_table, ClientArgs, OutputFormat};
use crate::error::{Error, Result};
use crate::wire::{check, now_ms, Conn};

/// The metadata log's topic, as DescribeQuorum names it.
const METADATA_TOPIC: &str = "__cluster_metadata";

/// `potok cluster ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum ClusterCommand {
    /// Show the brokers, the active controller and the controller quorum's state.
    Describe(DescribeArgs),
}

#[derive(Args, Clone, Debug)]
pub struct DescribeArgs {
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `potok cluster ...`.
pub fn run(cmd: &ClusterCommand) -> Result<()> {
    match cmd {
        ClusterCommand::Describe(a) => describe(a),
    }
}

/// "1234 ms ago", or "-" for Kafka's -1 (unknown).
fn ago(ts: i64, now: i64) -> String {
    if ts < 0 {
        "-".into()
    } else {
        format!("{} ms ago", (now - ts).max(0))
    }
}

fn replica_json(r: &ReplicaState, hw: i64) -> Value {
    json!({
        "id": r.replica_id,
        "log_end_offset": r.log_end_offset,
        "lag": (hw - r.log_end_offset).max(0),
        "last_fetch_timestamp": r.last_fetch_timestamp,
        "last_caught_up_timestamp": r.last_caught_up_timestamp,
    })
}

fn describe(a: &DescribeArgs) -> Result<()> {
    let mut conn = Conn::open(&a.client)?;
    let versions: ApiVersionsResponse =
        conn.call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
    check("ApiVersions", versions.error_code, None)?;
    let supports = |k: ApiKey| versions.api_keys.iter().any(|v| v.api_key == k as i16);
    let cluster: DescribeClusterResponse = if supports(ApiKey::DescribeCluster) {
        conn.call(
            ApiKey::DescribeCluster,
            0,
            &DescribeClusterRequest::default(),
        )?
    } else {
        return Err(Error::Usage(format!(
            "{} does not serve DescribeCluster",
            conn.addr()
        )));
    };
    check(
        "DescribeCluster",
        cluster.error_code,
        cluster.error_message.as_deref(),
    )?;
    let quorum: Option<DescribeQuorumResponse> = if supports(ApiKey::DescribeQuorum) {
        let req = DescribeQuorumRequest {
            topics: vec![TopicData {
                topic_name: METADATA_TOPIC.into(),
                partitions: vec![PartitionData {
                    partition_index: 0,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let r: DescribeQuorumResponse = conn.call(ApiKey::DescribeQuorum, 1, &req)?;
        check("DescribeQuorum", r.error_code, r.error_message.as_deref())?;
        Some(r)
    } else {
        None
    };
    let part = quorum
        .as_ref()
        .and_then(|q| q.topics.first())
        .and_then(|t| t.partitions.first());
    if let Some(p) = part {
        check("DescribeQuorum", p.error_code, p.error_message.as_deref())?;
    }
    let mut brokers = cluster.brokers.clone();
    brokers.sort_by_key(|b| b.broker_id);
    let now = now_ms();
    if a.output == OutputFormat::Json {
        let quorum = part.map(|p| {
            json!({
                "leader_id": p.leader_id,
                "leader_epoch": p.leader_epoch,
                "high_watermark": p.high_watermark,
                "voters": p.current_voters.iter().map(|r| replica_json(r, p.high_watermark)).collect::<Vec<_>>(),
                "observers": p.observers.iter().map(|r| replica_json(r, p.high_watermark)).collect::<Vec<_>>(),
            })
        });
        return print_json(&json!({
            "cluster_id": cluster.cluster_id,
            "controller_id": cluster.controller_id,
            "brokers": brokers.iter().map(|b| json!({
                "id": b.broker_id, "host": b.host, "port": b.port, "rack": b.rack,
            })).collect::<Vec<_>>(),
            "quorum": quorum,
        }));
    }
    let mut out = std::io::stdout().lock();
    let w = |out: &mut std::io::StdoutLock<'_>, line: String| {
        writeln!(out, "{line}").map_err(|e| Error::io("writing output", e))
    };
    w(&mut out, format!("Cluster id:  {}", cluster.cluster_id))?;
    w(&mut out, format!("Controller:  {}", cluster.controller_id))?;
    w(&mut out, String::new())?;
    let mut rows = vec![vec!["BROKER".into(), "ADDRESS".into(), "RACK".into()]];
    for b in &brokers {
        rows.push(vec![
            b.broker_id.to_string(),
            format!("{}:{}", b.host, b.port),
            b.rack
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    print_table(&mut out, &rows)?;
    w(&mut out, String::new())?;
    let Some(p) = part else {
        return w(
            &mut out,
            "Quorum:      none (a single node with its own metadata log)".into(),
        );
    };
    w(&mut out, format!("Quorum leader: {}", p.leader_id))?;
    w(&mut out, format!("Leader epoch:  {}", p.leader_epoch))?;
    w(&mut out, format!("High watermark: {}", p.high_watermark))?;
    w(&mut out, String::new())?;
    let mut rows = vec![vec![
        "NODE".into(),
        "ROLE".into(),
        "LOG END OFFSET".into(),
        "LAG".into(),
        "LAST FETCH".into(),
        "LAST CAUGHT UP".into(),
    ]];
    let mut replicas: Vec<(&ReplicaState, &str)> = p
        .current_voters
        .iter()
        .map(|r| {
            (
                r,
                if r.replica_id == p.leader_id {
                    "Leader"
                } else {
                    "Follower"
                },
            )
        })
        .collect();
    replicas.extend(p.observers.iter().map(|r| (r, "Observer")));
    for (r, role) in replicas {
        rows.push(vec![
            r.replica_id.to_string(),
            role.into(),
            r.log_end_offset.to_string(),
            (p.high_watermark - r.log_end_offset).max(0).to_string(),
            ago(r.last_fetch_timestamp, now),
            ago(r.last_caught_up_timestamp, now),
        ]);
    }
    print_table(&mut out, &rows)?;
    Ok(())
}
