//! `potok groups list|describe|reset-offsets|delete`.
//!
//! Committed offsets are read with OffsetFetch through a consumer handle that carries the group
//! id but never joins the group, and reset offsets are written with OffsetCommit from such a
//! handle (generation -1, empty member id), which Kafka accepts only while the group has no
//! members: the same mechanism `kafka-consumer-groups.sh --reset-offsets` uses.

use std::collections::BTreeMap;
use std::io::Write;

use clap::{Args, Subcommand};
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::client::{
    block_on, metadata, partitions_of, print_json, print_table, watermarks, ClientArgs,
    OutputFormat,
};
use crate::error::{Error, Result};

/// `potok groups ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum GroupsCommand {
    /// List consumer groups.
    List(ListArgs),
    /// Show a group's members, assignments, committed offsets and lag per partition.
    Describe(DescribeArgs),
    /// Move an inactive group's committed offsets.
    ResetOffsets(ResetArgs),
    /// Delete inactive groups and their committed offsets.
    Delete(DeleteArgs),
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
    /// Group id.
    pub group: String,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset", "to_timestamp", "shift_by"])))]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["dry_run", "execute"])))]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
pub struct ResetArgs {
    /// Group id.
    pub group: String,
    /// `TOPIC` or `TOPIC:P,P,...` to reset; repeatable.
    #[arg(long, short = 't')]
    pub topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset (skip everything).
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (clamped to the partition's watermarks, as Kafka does).
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Reset to the first offset whose record timestamp is at or after this time (ms since the
    /// epoch); partitions with no such record go to their end.
    #[arg(long)]
    pub to_timestamp: Option<i64>,
    /// Move each committed offset by N (negative goes back), clamped to the watermarks.
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// Only print the offsets that would be committed.
    #[arg(long)]
    pub dry_run: bool,
    /// Commit the new offsets (Kafka's tool also needs an explicit `--execute`).
    #[arg(long)]
    pub execute: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct DeleteArgs {
    /// Group ids.
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a `potok groups` subcommand.
pub fn run(cmd: &GroupsCommand) -> Result<()> {
    match cmd {
        GroupsCommand::List(a) => list(a),
        GroupsCommand::Describe(a) => describe(a),
        GroupsCommand::ResetOffsets(a) => reset(a),
        GroupsCommand::Delete(a) => delete(a),
    }
}

/// The partitions a member is assigned, parsed from the `consumer` protocol's Assignment
/// (`kafka/clients/.../ConsumerProtocolAssignment.json`: int16 version, then an array of
/// `{topic: string, partitions: [int32]}`, then nullable user data). Every length is checked
/// against the bytes left; `None` for anything malformed.
pub fn parse_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    struct Reader<'a>(&'a [u8]);
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            if self.0.len() < n {
                return None;
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Some(head)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        }
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut r = Reader(bytes);
    let _version = r.i16()?;
    let topics = r.i32()?;
    if topics < 0 {
        return Some(Vec::new());
    }
    let mut out = Vec::new();
    for _ in 0..topics {
        let len = r.i16()?;
        let name = r.take(usize::try_from(len).ok()?)?;
        let name = String::from_utf8_lossy(name).into_owned();
        let n = r.i32()?;
        let n = usize::try_from(n).ok()?;
        // Four bytes per partition must be there before anything is allocated for them.
        if r.0.len() < n.checked_mul(4)? {
            return None;
        }
        let parts = (0..n).map(|_| r.i32()).collect::<Option<Vec<i32>>>()?;
        out.push((name, parts));
    }
    Some(out)
}

fn list(a: &ListArgs) -> Result<()> {
    let consumer = a.client.plain_consumer(None)?;
    metadata(&a.client, consumer.client(), None)?;
    let groups = consumer
        .fetch_group_list(None, a.client.timeout())
        .map_err(|e| a.client.request_error("listing groups", e))?;
    let mut rows: Vec<(String, String, String, usize)> = groups
        .groups()
        .iter()
        .map(|g| {
            (
                g.name().to_string(),
                g.state().to_string(),
                g.protocol_type().to_string(),
                g.members().len(),
            )
        })
        .collect();
    rows.sort();
    match a.output {
        OutputFormat::Json => print_json(&Value::Array(
            rows.iter()
                .map(|(n, s, p, m)| json!({"group": n, "state": s, "protocol_type": p, "members": m}))
                .collect(),
        )),
        OutputFormat::Text => {
            let mut table = vec![vec![
                "GROUP".to_string(),
                "STATE".into(),
                "PROTOCOL-TYPE".into(),
                "MEMBERS".into(),
            ]];
            table.extend(
                rows.iter()
                    .map(|(n, s, p, m)| vec![n.clone(), s.clone(), p.clone(), m.to_string()]),
            );
            print_table(&mut std::io::stdout().lock(), &table)
        }
    }
}

/// DescribeGroups for one group. Kafka answers an unknown group with state `Dead` and no members
/// (or GROUP_ID_NOT_FOUND in newer versions); `None` in both cases.
fn group_info(
    client: &ClientArgs,
    consumer: &BaseConsumer,
    group: &str,
) -> Result<Option<GroupSummary>> {
    let list = consumer
        .fetch_group_list(Some(group), client.timeout())
        .map_err(|e| match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::GroupIdNotFound) => Error::UnknownGroup(group.to_string()),
            _ => client.request_error(&format!("describing group '{group}'"), e),
        });
    let list = match list {
        Ok(l) => l,
        Err(Error::UnknownGroup(_)) => return Ok(None),
        // A broker without DescribeGroups still has committed offsets to show; the missing
        // membership is said on stderr. The broker itself rejects an offset commit for a group
        // with live members, so a reset stays safe without this check.
        Err(Error::Kafka { source, .. })
            if source.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature) =>
        {
            eprintln!("warning: the broker does not support DescribeGroups; members not shown");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    Ok(list
        .groups()
        .iter()
        .find(|g| g.name() == group)
        .filter(|g| !(g.state() == "Dead" && g.members().is_empty()))
        .map(GroupSummary::from))
}

/// The parts of a DescribeGroups answer the CLI shows.
struct GroupSummary {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<MemberSummary>,
}

struct MemberSummary {
    id: String,
    client_id: String,
    host: String,
    assignment: Vec<(String, Vec<i32>)>,
}

impl From<&GroupInfo> for GroupSummary {
    fn from(g: &GroupInfo) -> Self {
        GroupSummary {
            state: g.state().to_string(),
            protocol_type: g.protocol_type().to_string(),
            protocol: g.protocol().to_string(),
            members: g
                .members()
                .iter()
                .map(|m| MemberSummary {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                    assignment: m
                        .assignment()
                        .and_then(parse_assignment)
                        .unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Committed offsets of `group` for every partition of `topics` (all non-internal topics when
/// `None`); only partitions with a committed offset are returned.
fn committed(
    client: &ClientArgs,
    consumer: &BaseConsumer,
    topics: Option<&[String]>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut tpl = TopicPartitionList::new();
    match topics {
        Some(ts) => {
            for t in ts {
                for p in partitions_of(client, consumer.client(), t)? {
                    tpl.add_partition(t, p);
                }
            }
        }
        None => {
            let md = metadata(client, consumer.client(), None)?;
            for t in md.topics() {
                if t.name().starts_with("__") {
                    continue;
                }
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
    }
    if tpl.count() == 0 {
        return Ok(BTreeMap::new());
    }
    let tpl = consumer
        .committed_offsets(tpl, client.timeout())
        .map_err(|e| client.request_error("fetching committed offsets", e))?;
    let mut out = BTreeMap::new();
    for e in tpl.elements() {
        if let Offset::Offset(o) = e.offset() {
            out.insert((e.topic().to_string(), e.partition()), o);
        }
    }
    Ok(out)
}

fn describe(a: &DescribeArgs) -> Result<()> {
    let consumer = a.client.plain_consumer(Some(&a.group))?;
    metadata(&a.client, consumer.client(), None)?;
    let info = group_info(&a.client, &consumer, &a.group)?;
    let offsets = committed(&a.client, &consumer, None)?;
    if info.is_none() && offsets.is_empty() {
        return Err(Error::UnknownGroup(a.group.clone()));
    }
    let info = info.unwrap_or(GroupSummary {
        state: "Empty".into(),
        protocol_type: String::new(),
        protocol: String::new(),
        members: Vec::new(),
    });
    // Every partition that has a committed offset or an owner, with its owner if any.
    let mut rows: BTreeMap<(String, i32), Option<usize>> =
        offsets.keys().map(|k| (k.clone(), None)).collect();
    for (i, m) in info.members.iter().enumerate() {
        for (t, ps) in &m.assignment {
            for p in ps {
                rows.insert((t.clone(), *p), Some(i));
            }
        }
    }
    let mut partitions = Vec::new();
    for ((topic, partition), owner) in &rows {
        let (low, high) = watermarks(&a.client, &consumer, topic, *partition)?;
        let committed = offsets.get(&(topic.clone(), *partition)).copied();
        // Lag is measured from the committed offset to the log end, as kafka-consumer-groups.sh
        // does; it is unknown (null) for a partition that has an owner but no commit yet.
        let lag = committed.map(|c| (high - c).max(0));
        let member = owner.map(|i| &info.members[i]);
        partitions.push(json!({
            "topic": topic,
            "partition": partition,
            "committed_offset": committed,
            "log_start_offset": low,
            "log_end_offset": high,
            "lag": lag,
            "member_id": member.map(|m| m.id.clone()),
            "client_id": member.map(|m| m.client_id.clone()),
            "host": member.map(|m| m.host.clone()),
        }));
    }
    let total_lag: i64 = partitions.iter().filter_map(|p| p["lag"].as_i64()).sum();
    let members: Vec<Value> = info
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": m.assignment.iter().map(|(t, ps)| json!({"topic": t, "partitions": ps})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = json!({
        "group": a.group,
        "state": info.state,
        "protocol_type": info.protocol_type,
        "protocol": info.protocol,
        "members": members,
        "partitions": partitions,
        "total_lag": total_lag,
    });
    match a.output {
        OutputFormat::Json => print_json(&doc),
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "Group: {}  State: {}  Protocol: {}  Members: {}  Total lag: {}",
                a.group,
                info.state,
                if info.protocol.is_empty() {
                    "-"
                } else {
                    &info.protocol
                },
                info.members.len(),
                total_lag
            )
            .map_err(|e| Error::io("writing output", e))?;
            let dash = |v: &Value| {
                if v.is_null() {
                    "-".to_string()
                } else {
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                }
            };
            let mut table = vec![[
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG",
                "CONSUMER-ID",
                "HOST",
                "CLIENT-ID",
            ]
            .map(String::from)
            .to_vec()];
            for p in &partitions {
                table.push(vec![
                    dash(&p["topic"]),
                    dash(&p["partition"]),
                    dash(&p["committed_offset"]),
                    dash(&p["log_end_offset"]),
                    dash(&p["lag"]),
                    dash(&p["member_id"]),
                    dash(&p["host"]),
                    dash(&p["client_id"]),
                ]);
            }
            print_table(&mut out, &table)
        }
    }
}

fn reset(a: &ResetArgs) -> Result<()> {
    let consumer = a.client.plain_consumer(Some(&a.group))?;
    metadata(&a.client, consumer.client(), None)?;
    if let Some(info) = group_info(&a.client, &consumer, &a.group)? {
        if a.execute && !info.members.is_empty() {
            return Err(Error::GroupActive {
                group: a.group.clone(),
                state: info.state,
                members: info.members.len(),
            });
        }
    }
    // The partitions to reset.
    let mut targets: Vec<(String, i32)> = Vec::new();
    let committed_now;
    if a.all_topics {
        committed_now = committed(&a.client, &consumer, None)?;
        targets.extend(committed_now.keys().cloned());
        if targets.is_empty() {
            return Err(Error::UnknownGroup(a.group.clone()));
        }
    } else {
        let mut names = Vec::new();
        for spec in &a.topic {
            let (name, parts) = match spec.split_once(':') {
                None => (spec.as_str(), None),
                Some((n, ps)) => {
                    let parsed = ps
                        .split(',')
                        .map(|p| p.trim().parse::<i32>())
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|_| Error::Usage(format!("bad partition list in '{spec}'")))?;
                    (n, Some(parsed))
                }
            };
            let all = partitions_of(&a.client, consumer.client(), name)?;
            for p in parts.unwrap_or_else(|| all.clone()) {
                if !all.contains(&p) {
                    return Err(Error::UnknownPartition {
                        topic: name.to_string(),
                        partition: p,
                        count: all.len(),
                    });
                }
                targets.push((name.to_string(), p));
            }
            names.push(name.to_string());
        }
        committed_now = committed(&a.client, &consumer, Some(&names))?;
    }

    let by_time = match a.to_timestamp {
        Some(ts) => {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &targets {
                tpl.add_partition_offset(t, *p, Offset::Offset(ts))
                    .map_err(|e| Error::kafka("building the offset list", e))?;
            }
            let found = consumer
                .offsets_for_times(tpl, a.client.timeout())
                .map_err(|e| a.client.request_error("looking up offsets by timestamp", e))?;
            found
                .elements()
                .iter()
                .map(|e| ((e.topic().to_string(), e.partition()), e.offset()))
                .collect::<BTreeMap<_, _>>()
        }
        None => BTreeMap::new(),
    };

    let mut plan = Vec::new();
    for (t, p) in &targets {
        let (low, high) = watermarks(&a.client, &consumer, t, *p)?;
        let old = committed_now.get(&(t.clone(), *p)).copied();
        let new = if a.to_earliest {
            low
        } else if a.to_latest {
            high
        } else if let Some(o) = a.to_offset {
            o.clamp(low, high)
        } else if a.to_timestamp.is_some() {
            match by_time.get(&(t.clone(), *p)) {
                Some(Offset::Offset(o)) if *o >= 0 => *o,
                _ => high,
            }
        } else if let Some(n) = a.shift_by {
            match old {
                Some(o) => o.saturating_add(n).clamp(low, high),
                None => {
                    return Err(Error::Usage(format!(
                        "--shift-by needs a committed offset, and group '{}' has none for {t}/{p}",
                        a.group
                    )))
                }
            }
        } else {
            return Err(Error::Usage(
                "one of --to-earliest, --to-latest, --to-offset, --to-timestamp, --shift-by is required".into(),
            ));
        };
        plan.push((t.clone(), *p, old, new));
    }

    if a.execute {
        let mut tpl = TopicPartitionList::new();
        for (t, p, _, new) in &plan {
            tpl.add_partition_offset(t, *p, Offset::Offset(*new))
                .map_err(|e| Error::kafka("building the offset list", e))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| a.client.request_error("committing the new offsets", e))?;
    }

    match a.output {
        OutputFormat::Json => print_json(&json!({
            "group": a.group,
            "executed": a.execute,
            "partitions": plan.iter().map(|(t, p, old, new)| json!({
                "topic": t, "partition": p, "old_offset": old, "new_offset": new,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut table = vec![["GROUP", "TOPIC", "PARTITION", "OLD-OFFSET", "NEW-OFFSET"]
                .map(String::from)
                .to_vec()];
            for (t, p, old, new) in &plan {
                table.push(vec![
                    a.group.clone(),
                    t.clone(),
                    p.to_string(),
                    old.map_or_else(|| "-".to_string(), |o| o.to_string()),
                    new.to_string(),
                ]);
            }
            let mut out = std::io::stdout().lock();
            print_table(&mut out, &table)?;
            if a.dry_run {
                writeln!(out, "(dry run: nothing committed; use --execute to apply)")
                    .map_err(|e| Error::io("writing output", e))?;
            }
            Ok(())
        }
    }
}

fn delete(a: &DeleteArgs) -> Result<()> {
    let admin = a.client.admin()?;
    metadata(&a.client, admin.inner(), None)?;
    let names: Vec<&str> = a.groups.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().request_timeout(Some(a.client.timeout()));
    let results = block_on(admin.delete_groups(&names, &opts))
        .map_err(|e| a.client.request_error("deleting groups", e))?;
    for r in results {
        match r {
            Ok(name) => println!("deleted group '{name}'"),
            Err((name, RDKafkaErrorCode::GroupIdNotFound)) => {
                return Err(Error::UnknownGroup(name))
            }
            Err((name, code)) => {
                return Err(Error::broker(format!("deleting group '{name}'"), code))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut b = vec![0, 1];
        b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (t, ps) in topics {
            b.extend_from_slice(&(t.len() as i16).to_be_bytes());
            b.extend_from_slice(t.as_bytes());
            b.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in *ps {
                b.extend_from_slice(&p.to_be_bytes());
            }
        }
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b
    }

    #[test]
    fn assignment_round_trips() {
        let b = encode(&[("a", &[0, 2]), ("bb", &[1])]);
        assert_eq!(
            parse_assignment(&b).unwrap(),
            vec![("a".to_string(), vec![0, 2]), ("bb".to_string(), vec![1])]
        );
    }

    #[test]
    fn truncated_or_lying_assignments_are_rejected_without_panic() {
        let b = encode(&[("topic", &[0, 1, 2])]);
        for cut in 1..b.len() - 4 {
            assert!(parse_assignment(&b[..cut]).is_none(), "prefix {cut}");
        }
        // A partition count far larger than the bytes left must not allocate.
        let mut lie = vec![0, 0, 0, 0, 0, 1, 0, 1, b'x'];
        lie.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse_assignment(&lie).is_none());
    }
}
