//! The relay's settings: the table and its column names (the Debezium outbox event router's
//! conventions by default, every name configurable), the topic template, the mode, batching and
//! the names the relay uses in PostgreSQL and in Kafka.

use std::net::SocketAddr;

/// Where the outbox is and what its columns are called. Shared by `potok outbox` and
/// `potok outbox init`.
#[derive(clap::Args, Clone, Debug)]
pub struct TableArgs {
    /// libpq-style connection string, e.g. `host=127.0.0.1 port=5432 user=app dbname=app`.
    #[arg(long, value_name = "CONNINFO")]
    pub db: String,
    /// The outbox table, `schema.name` (an unqualified name is in `public`).
    #[arg(long, default_value = "public.outbox")]
    pub table: String,
    /// The event id column (Debezium's `table.field.event.id`); sent as the `id` header.
    #[arg(long, default_value = "id")]
    pub id_column: String,
    /// The column routed to the topic (Debezium's `route.by.field`).
    #[arg(long, default_value = "aggregatetype")]
    pub aggregatetype_column: String,
    /// The record key column (Debezium's `table.field.event.key`): one aggregate, one partition.
    #[arg(long, default_value = "aggregateid")]
    pub aggregateid_column: String,
    /// The event type column; sent as the `type` header.
    #[arg(long, default_value = "type")]
    pub type_column: String,
    /// The payload column (jsonb, json, text or bytea): the record value
    /// (Debezium's `table.field.event.payload`).
    #[arg(long, default_value = "payload")]
    pub payload_column: String,
    /// An optional jsonb object column whose entries become record headers.
    #[arg(long)]
    pub headers_column: Option<String>,
    /// Poll mode: the insertion-order column (a bigserial the table's default fills).
    #[arg(long, default_value = "potok_seq")]
    pub seq_column: String,
    /// Poll mode: the commit-order column the relay maintains (NULL until the relay sees the
    /// row committed).
    #[arg(long, default_value = "potok_batch")]
    pub batch_column: String,
    /// Logical mode: the publication of the table.
    #[arg(long, default_value = "potok_outbox")]
    pub publication: String,
    /// Logical mode: the logical replication slot (pgoutput).
    #[arg(long, default_value = "potok_outbox")]
    pub slot: String,
}

/// How rows are read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Logical when the role may replicate and `wal_level` is `logical`, else poll.
    Auto,
    /// A logical replication slot with pgoutput: exactly once, no polling.
    Logical,
    /// `pg_try_advisory_lock` plus a commit-ordered column: at least once.
    Poll,
}

/// `potok outbox`: run the relay.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// The Kafka bootstrap servers.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    /// How rows are read.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// The topic of a row; `${routedByValue}` is replaced by its aggregate type (Debezium's
    /// `route.topic.replacement`).
    #[arg(long, default_value = "outbox.event.${routedByValue}")]
    pub topic_template: String,
    /// The producer's transactional.id (default `potok-outbox.<slot or table>`). A relay that
    /// starts with the same id fences the previous one.
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Logical mode: the consumer group whose transactional offset carries the last published
    /// commit LSN (default `potok-outbox.<slot>`).
    #[arg(long)]
    pub group: Option<String>,
    /// Logical mode: the topic named in that offset commit (partition 0; nothing is written to
    /// it, the group's offset for it is the relay's position).
    #[arg(long, default_value = "potok-outbox-position")]
    pub position_topic: String,
    /// The most rows in one Kafka transaction (logical mode: a database transaction is never
    /// split, so a larger one goes out whole in one Kafka transaction).
    #[arg(long, default_value_t = 500)]
    pub batch_max_rows: usize,
    /// How long to wait for more rows before publishing a batch that is not full.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Poll mode: the pause between polls of an empty table.
    #[arg(long, default_value_t = 100)]
    pub poll_interval_ms: u64,
    /// Publish what is committed now and exit (poll: until the table is empty; logical: up to
    /// the WAL position at start).
    #[arg(long)]
    pub once: bool,
    /// Logical mode: delete rows after their transaction is published and the position stored.
    #[arg(long)]
    pub delete_published: bool,
    /// The longest pause between retries after the broker or the database failed.
    #[arg(long, default_value_t = 10_000)]
    pub backoff_max_ms: u64,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listener: Option<SocketAddr>,
    /// An extra librdkafka producer setting, e.g. `--kafka-set compression.type=lz4`.
    #[arg(long = "kafka-set", value_name = "NAME=VALUE")]
    pub kafka_set: Vec<String>,
}

/// `potok outbox init`: print (or apply) the SQL that prepares a database.
#[derive(clap::Args, Clone, Debug)]
pub struct InitArgs {
    #[command(flatten)]
    pub table: TableArgs,
    /// Which objects: the table (with both modes' columns), plus for logical the publication
    /// and the slot.
    #[arg(long, value_enum, default_value = "logical")]
    pub mode: Mode,
    /// Run the statements instead of only printing them.
    #[arg(long)]
    pub apply: bool,
}

/// A schema-qualified table name, split and quoted once.
#[derive(Clone, Debug)]
pub struct TableName {
    /// The schema, unquoted.
    pub schema: String,
    /// The table, unquoted.
    pub name: String,
}

impl TableName {
    /// Splits `schema.name` (or `name`, in `public`). Quoting dots is not supported: a name with
    /// a dot is refused rather than guessed.
    pub fn parse(s: &str) -> Result<TableName, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let (schema, name) = match parts.as_slice() {
            [n] => ("public", *n),
            [s, n] => (*s, *n),
            _ => return Err(format!("--table {s:?}: expected schema.name")),
        };
        if schema.is_empty() || name.is_empty() {
            return Err(format!("--table {s:?}: expected schema.name"));
        }
        Ok(TableName {
            schema: schema.to_string(),
            name: name.to_string(),
        })
    }

    /// `"schema"."name"`, safe to splice into SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// `schema.name` as the user wrote it, for messages.
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// An identifier quoted as PostgreSQL's `quote_ident` does (always quoted, `"` doubled), so
/// configured column names can never inject SQL.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal quoted for SQL (`'` doubled). Used only for names in `init` statements that
/// take no parameters (CREATE PUBLICATION).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Parses the `NAME=VALUE` pairs of `--kafka-set`.
pub fn parse_settings(items: &[String]) -> Result<Vec<(String, String)>, String> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--kafka-set {s:?}: expected NAME=VALUE"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_split_and_quote() {
        let t = TableName::parse("outbox").unwrap();
        assert_eq!(t.quoted(), "\"public\".\"outbox\"");
        let t = TableName::parse("app.Out\"box").unwrap();
        assert_eq!(t.quoted(), "\"app\".\"Out\"\"box\"");
        assert!(TableName::parse("a.b.c").is_err());
        assert!(TableName::parse(".b").is_err());
    }

    #[test]
    fn kafka_settings_need_a_name() {
        assert_eq!(
            parse_settings(&["a=b=c".into()]).unwrap(),
            vec![("a".into(), "b=c".into())]
        );
        assert!(parse_settings(&["=x".into()]).is_err());
        assert!(parse_settings(&["x".into()]).is_err());
    }
}
