//! `potok topics create|list|describe|alter|delete|reassign` (`reassign` in `crate::reassign`).

use std::io::Write;

use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::error::RDKafkaErrorCode;
use serde_json::{json, Value};

use crate::client::{
    block_on, metadata, parse_key_value, print_json, print_table, watermarks, ClientArgs,
    OutputFormat,
};
use crate::error::{Error, Result};

/// `potok topics ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topics with their partition counts.
    List(ListArgs),
    /// Show partitions, leaders, replicas, ISR, watermarks and configuration overrides.
    Describe(DescribeArgs),
    /// Grow the partition count and/or change configuration.
    Alter(AlterArgs),
    /// Delete topics.
    Delete(DeleteArgs),
    /// Move partitions between brokers (submit a kafka-reassign-partitions plan, --list,
    /// --cancel) or print a --balance plan.
    Reassign(crate::reassign::ReassignArgs),
}

#[derive(Args, Clone, Debug)]
pub struct CreateArgs {
    /// Name of the topic.
    pub topic: String,
    /// Number of partitions.
    #[arg(long, short = 'p', default_value_t = 1)]
    pub partitions: i32,
    /// Number of replicas of each partition.
    #[arg(long, short = 'r', default_value_t = 1)]
    pub replication_factor: i32,
    /// A topic configuration `name=value` (e.g. `retention.ms=3600000`); repeatable.
    #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    /// Succeed without doing anything when the topic already exists.
    #[arg(long)]
    pub if_not_exists: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct ListArgs {
    /// Also list internal topics (names starting with `__`).
    #[arg(long)]
    pub internal: bool,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct DescribeArgs {
    /// Topics to describe.
    #[arg(required = true)]
    pub topics: Vec<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true).args(["partitions", "configs"])))]
pub struct AlterArgs {
    /// Topic to change.
    pub topic: String,
    /// New total partition count; it can only grow.
    #[arg(long, short = 'p')]
    pub partitions: Option<usize>,
    /// A configuration override `name=value` to set; repeatable. Other overrides are kept.
    #[arg(long = "config", short = 'c', value_name = "NAME=VALUE", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args, Clone, Debug)]
pub struct DeleteArgs {
    /// Topics to delete.
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Succeed when a topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs a `potok topics` subcommand.
pub fn run(cmd: &TopicsCommand) -> Result<()> {
    match cmd {
        TopicsCommand::Create(a) => create(a),
        TopicsCommand::List(a) => list(a),
        TopicsCommand::Describe(a) => describe(a),
        TopicsCommand::Alter(a) => alter(a),
        TopicsCommand::Delete(a) => delete(a),
        TopicsCommand::Reassign(a) => crate::reassign::run(a),
    }
}

fn admin_options(client: &ClientArgs) -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(client.timeout()))
        .operation_timeout(Some(client.timeout()))
}

fn create(a: &CreateArgs) -> Result<()> {
    if a.partitions < 1 {
        return Err(Error::Usage("--partitions must be at least 1".into()));
    }
    if a.replication_factor < 1 {
        return Err(Error::Usage(
            "--replication-factor must be at least 1".into(),
        ));
    }
    let admin = a.client.admin()?;
    // Reach the cluster first so "no broker" is reported as such, not as an admin timeout.
    metadata(&a.client, admin.inner(), None)?;
    let mut topic = NewTopic::new(
        &a.topic,
        a.partitions,
        TopicReplication::Fixed(a.replication_factor),
    );
    for (k, v) in &a.configs {
        topic = topic.set(k, v);
    }
    let results = block_on(admin.create_topics([&topic], &admin_options(&a.client)))
        .map_err(|e| a.client.request_error("creating the topic", e))?;
    for r in results {
        match r {
            Ok(name) => println!("created topic '{name}'"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if a.if_not_exists => {
                println!("topic '{}' already exists", a.topic)
            }
            Err((name, code)) => {
                return Err(Error::broker(format!("creating topic '{name}'"), code))
            }
        }
    }
    Ok(())
}

fn list(a: &ListArgs) -> Result<()> {
    let admin = a.client.admin()?;
    let md = metadata(&a.client, admin.inner(), None)?;
    let mut topics: Vec<_> = md
        .topics()
        .iter()
        .filter(|t| a.internal || !t.name().starts_with("__"))
        .map(|t| {
            let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
            (t.name().to_string(), t.partitions().len(), rf)
        })
        .collect();
    topics.sort();
    match a.output {
        OutputFormat::Json => print_json(&Value::Array(
            topics
                .iter()
                .map(|(n, p, rf)| json!({"name": n, "partitions": p, "replication_factor": rf}))
                .collect(),
        )),
        OutputFormat::Text => {
            let mut rows = vec![vec!["TOPIC".into(), "PARTITIONS".into(), "REPLICAS".into()]];
            rows.extend(
                topics
                    .iter()
                    .map(|(n, p, rf)| vec![n.clone(), p.to_string(), rf.to_string()]),
            );
            print_table(&mut std::io::stdout().lock(), &rows)
        }
    }
}

/// The configuration overrides of a topic (entries whose source is a dynamic topic config).
fn topic_overrides(client: &ClientArgs, topic: &str) -> Result<Vec<(String, String)>> {
    let admin = client.admin()?;
    let spec = ResourceSpecifier::Topic(topic);
    let results = block_on(admin.describe_configs([&spec], &admin_options(client)))
        .map_err(|e| client.request_error(&format!("describing configs of '{topic}'"), e))?;
    let mut out = Vec::new();
    for r in results {
        let resource =
            r.map_err(|code| Error::broker(format!("describing configs of '{topic}'"), code))?;
        for e in resource.entries {
            if e.source == ConfigSource::DynamicTopic && !e.is_default {
                out.push((e.name, e.value.unwrap_or_default()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn describe(a: &DescribeArgs) -> Result<()> {
    let admin = a.client.admin()?;
    let consumer = a.client.plain_consumer(None)?;
    let mut docs = Vec::new();
    for name in &a.topics {
        let md = metadata(&a.client, admin.inner(), Some(name))?;
        let Some(t) = md.topics().iter().find(|t| t.name() == name) else {
            return Err(Error::UnknownTopic(name.clone()));
        };
        let mut parts = Vec::new();
        let mut sorted: Vec<_> = t.partitions().iter().collect();
        sorted.sort_by_key(|p| p.id());
        for p in sorted {
            let (low, high) = watermarks(&a.client, &consumer, name, p.id())?;
            parts.push(json!({
                "partition": p.id(),
                "leader": p.leader(),
                "replicas": p.replicas(),
                "isr": p.isr(),
                "low_watermark": low,
                "high_watermark": high,
            }));
        }
        // DescribeConfigs is optional for this listing: a broker without it still gets its
        // partitions described, and the missing part is said on stderr, not hidden.
        let configs = match topic_overrides(&a.client, name) {
            Ok(c) => Some(c),
            Err(e @ (Error::UnknownTopic(_) | Error::Unreachable { .. })) => return Err(e),
            Err(e) => {
                eprintln!("warning: configuration of '{name}' unavailable: {e}");
                None
            }
        };
        let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
        docs.push(json!({
            "name": name,
            "partitions": parts,
            "replication_factor": rf,
            "configs": configs.map(|c| Value::Object(c.into_iter().map(|(k, v)| (k, Value::String(v))).collect())),
        }));
    }
    match a.output {
        OutputFormat::Json => print_json(&Value::Array(docs)),
        OutputFormat::Text => {
            let mut out = std::io::stdout().lock();
            for d in &docs {
                let configs: Vec<String> = d["configs"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                            .collect()
                    })
                    .unwrap_or_default();
                writeln!(
                    out,
                    "Topic: {}  Partitions: {}  ReplicationFactor: {}  Configs: {}",
                    d["name"].as_str().unwrap_or_default(),
                    d["partitions"].as_array().map_or(0, Vec::len),
                    d["replication_factor"],
                    configs.join(",")
                )
                .map_err(|e| Error::io("writing output", e))?;
                let mut rows = vec![vec![
                    "  PARTITION".into(),
                    "LEADER".into(),
                    "REPLICAS".into(),
                    "ISR".into(),
                    "LOW".into(),
                    "HIGH".into(),
                ]];
                for p in d["partitions"].as_array().into_iter().flatten() {
                    let ids = |v: &Value| {
                        v.as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|x| x.to_string())
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_default()
                    };
                    rows.push(vec![
                        format!("  {}", p["partition"]),
                        p["leader"].to_string(),
                        ids(&p["replicas"]),
                        ids(&p["isr"]),
                        p["low_watermark"].to_string(),
                        p["high_watermark"].to_string(),
                    ]);
                }
                print_table(&mut out, &rows)?;
            }
            Ok(())
        }
    }
}

fn alter(a: &AlterArgs) -> Result<()> {
    let admin = a.client.admin()?;
    let md = metadata(&a.client, admin.inner(), Some(&a.topic))?;
    let current = md
        .topics()
        .iter()
        .find(|t| t.name() == a.topic)
        .map_or(0, |t| t.partitions().len());
    if let Some(n) = a.partitions {
        // Checked here for a clear message; the broker rejects it too (INVALID_PARTITIONS).
        if n < current {
            return Err(Error::PartitionsDecrease {
                topic: a.topic.clone(),
                current,
                requested: n,
            });
        }
        if n == current {
            // Kafka's CreatePartitions answers INVALID_PARTITIONS "Topic already has N
            // partitions"; for a command line a no-op that says so is friendlier in scripts.
            println!("topic '{}' already has {n} partitions", a.topic);
        } else {
            let np = NewPartitions::new(&a.topic, n);
            let results = block_on(admin.create_partitions([&np], &admin_options(&a.client)))
                .map_err(|e| a.client.request_error("adding partitions", e))?;
            for r in results {
                if let Err((name, code)) = r {
                    return Err(Error::broker(
                        format!("adding partitions to '{name}'"),
                        code,
                    ));
                }
            }
            println!("topic '{}' now has {n} partitions (was {current})", a.topic);
        }
    }
    if !a.configs.is_empty() {
        // AlterConfigs replaces the whole set of overrides, so the existing ones are read first
        // and carried over (what kafka-configs.sh did before KIP-339's incremental API).
        let existing = topic_overrides(&a.client, &a.topic)?;
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&a.topic));
        for (k, v) in &existing {
            if !a.configs.iter().any(|(nk, _)| nk == k) {
                alter = alter.set(k, v);
            }
        }
        for (k, v) in &a.configs {
            alter = alter.set(k, v);
        }
        let results = block_on(admin.alter_configs([&alter], &admin_options(&a.client)))
            .map_err(|e| a.client.request_error("altering configs", e))?;
        for r in results {
            if let Err((_, code)) = r {
                return Err(Error::broker(
                    format!("altering configs of '{}'", a.topic),
                    code,
                ));
            }
        }
        let set: Vec<String> = a.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("topic '{}' configs set: {}", a.topic, set.join(","));
    }
    Ok(())
}

fn delete(a: &DeleteArgs) -> Result<()> {
    let admin = a.client.admin()?;
    metadata(&a.client, admin.inner(), None)?;
    let names: Vec<&str> = a.topics.iter().map(String::as_str).collect();
    let results = block_on(admin.delete_topics(&names, &admin_options(&a.client)))
        .map_err(|e| a.client.request_error("deleting topics", e))?;
    for r in results {
        match r {
            Ok(name) => println!("deleted topic '{name}'"),
            Err((name, RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                if a.if_exists {
                    println!("topic '{name}' does not exist");
                } else {
                    return Err(Error::UnknownTopic(name));
                }
            }
            Err((name, code)) => {
                return Err(Error::broker(format!("deleting topic '{name}'"), code))
            }
        }
    }
    Ok(())
}
