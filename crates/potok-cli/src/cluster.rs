//! `potok cluster describe`: the cluster's brokers (DescribeCluster) and its controller quorum
//! (DescribeQuorum: voters, leader, epoch, high watermark and each voter's lag), what Kafka's
//! `kafka-cluster.sh` and `kafka-metadata-quorum.sh describe --status --replication` show.
//!
//! librdkafka has no API for either request, so this command speaks the Kafka protocol itself:
//! one blocking connection to the first bootstrap address that answers, ApiVersions first (a
//! single node without a quorum does not advertise DescribeQuorum, and the quorum part is then
//! reported as absent rather than failed), then the two requests at versions every Kafka 3.7+
//! broker serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use clap::{Args, Subcommand};
use potok_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use potok_protocol::messages::describe_quorum_response::ReplicaState;
use potok_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, DescribeClusterRequest, DescribeClusterResponse,
    DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader,
};
use potok_protocol::{encode_request_frame, ApiKey, Decode, Encode, ErrorCode};
use serde_json::{json, Value};

use crate::client::{print_json, print_table, ClientArgs, OutputFormat};
use crate::error::{Error, Result};

/// The metadata log's topic, as DescribeQuorum names it.
const METADATA_TOPIC: &str = "__cluster_metadata";
/// The largest response this command reads (a cluster description is a few KiB).
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

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

/// One connection speaking the Kafka protocol, one request at a time.
struct Conn {
    s: TcpStream,
    corr: i32,
    addr: String,
}

impl Conn {
    fn open(args: &ClientArgs) -> Result<Conn> {
        let mut last = String::from("no address given");
        for addr in args.bootstrap_server.split(',').map(str::trim) {
            let addrs = match std::net::ToSocketAddrs::to_socket_addrs(addr) {
                Ok(a) => a.collect::<Vec<_>>(),
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            for a in addrs {
                match TcpStream::connect_timeout(&a, args.timeout()) {
                    Ok(s) => {
                        let io = |e| Error::io(format!("configuring the connection to {addr}"), e);
                        s.set_read_timeout(Some(args.timeout())).map_err(io)?;
                        s.set_write_timeout(Some(args.timeout())).map_err(io)?;
                        return Ok(Conn {
                            s,
                            corr: 0,
                            addr: addr.to_string(),
                        });
                    }
                    Err(e) => last = format!("{addr}: {e}"),
                }
            }
        }
        Err(Error::Unreachable {
            bootstrap: args.bootstrap_server.clone(),
            timeout_ms: args.timeout_ms,
            detail: last,
        })
    }

    fn call<M: Encode, R: Decode>(&mut self, key: ApiKey, version: i16, body: &M) -> Result<R> {
        let context = format!("{key:?} v{version} to {}", self.addr);
        self.corr += 1;
        let header = RequestHeader {
            request_api_key: key as i16,
            request_api_version: version,
            correlation_id: self.corr,
            client_id: Some("potok-cli".into()),
            ..Default::default()
        };
        let mut buf = BytesMut::new();
        encode_request_frame(&mut buf, &header, body)
            .map_err(|e| Error::Usage(format!("{context}: cannot encode: {e}")))?;
        self.s
            .write_all(&buf)
            .map_err(|e| Error::io(context.clone(), e))?;
        let mut len = [0u8; 4];
        self.s
            .read_exact(&mut len)
            .map_err(|e| Error::io(context.clone(), e))?;
        let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
        if !(4..=MAX_RESPONSE).contains(&len) {
            return Err(Error::Usage(format!(
                "{context}: implausible response size {len}"
            )));
        }
        let mut body = vec![0u8; len];
        self.s
            .read_exact(&mut body)
            .map_err(|e| Error::io(context.clone(), e))?;
        let mut b = Bytes::from(body);
        let bad = |what: &str| Error::Usage(format!("{context}: {what}"));
        if b.get_i32() != self.corr {
            return Err(bad("the response answers another request"));
        }
        if key.response_header_version(version) >= 1 {
            // The response header's tagged fields: none are defined; skip a count of zero.
            if b.is_empty() || b.get_u8() != 0 {
                return Err(bad("unexpected tagged fields in the response header"));
            }
        }
        R::decode(&mut b, version).map_err(|e| bad(&format!("undecodable response: {e}")))
    }
}

fn check(context: &str, code: i16, message: Option<&str>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name =
        ErrorCode::from_code(code).map_or_else(|| format!("error {code}"), |c| format!("{c:?}"));
    Err(Error::Usage(match message {
        Some(m) if !m.is_empty() => format!("{context}: {name}: {m}"),
        _ => format!("{context}: {name}"),
    }))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
            conn.addr
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
