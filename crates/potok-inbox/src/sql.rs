//! The inbox's SQL: the two tables, the statements run per message, and how a message's id
//! is derived. Table names come from the configuration, so they are validated and quoted here
//! rather than bound as parameters (PostgreSQL does not bind identifiers).

use crate::error::{InboxError, Result};

/// The most bytes of a header id kept as the message id; a longer id is refused rather than
/// cut, since cutting could make two ids equal.
pub const MAX_HEADER_ID_BYTES: usize = 512;

/// A table name, `name` or `schema.name`, each part a plain identifier (letters, digits, `_`,
/// not starting with a digit, at most 63 bytes as PostgreSQL's NAMEDATALEN allows); returned
/// quoted for SQL.
pub fn quote_table(name: &str) -> Result<String> {
    let parts: Vec<&str> = name.split('.').collect();
    if parts.is_empty() || parts.len() > 2 {
        return Err(InboxError::Config(format!(
            "table name {name:?}: expected name or schema.name"
        )));
    }
    let mut quoted = Vec::new();
    for p in parts {
        let ok = !p.is_empty()
            && p.len() <= 63
            && !p.as_bytes()[0].is_ascii_digit()
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(InboxError::Config(format!(
                "table name {name:?}: each part must be letters, digits or _ (at most 63 bytes)"
            )));
        }
        quoted.push(format!("\"{p}\""));
    }
    Ok(quoted.join("."))
}

/// The index name derived from a table name (indexes live in the table's schema).
fn index_name(table: &str, suffix: &str) -> String {
    let base = table.rsplit('.').next().unwrap_or(table);
    format!("\"{base}_{suffix}\"")
}

/// The statements the inbox runs, with the table names filled in.
#[derive(Clone, Debug)]
pub struct Statements {
    pub insert_inbox: String,
    pub upsert_offset: String,
    pub read_offsets: String,
    pub prune: String,
}

impl Statements {
    pub fn new(inbox_table: &str, offsets_table: &str) -> Result<Statements> {
        let inbox = quote_table(inbox_table)?;
        let offsets = quote_table(offsets_table)?;
        Ok(Statements {
            // A duplicate is an existing primary key: DO NOTHING makes it a zero-row insert,
            // which is how `process` tells it apart. A concurrent insert of the same id (a
            // consumer that lost the partition and still works on it) waits on the unique
            // index until the other transaction ends, then finds the row.
            insert_inbox: format!(
                "INSERT INTO {inbox} (consumer_group, message_id, topic, \"partition\", \
                 message_offset) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (consumer_group, message_id) DO NOTHING"
            ),
            // GREATEST: a consumer that lost the partition and finishes an older message must
            // not move the stored position back behind what the new owner processed.
            upsert_offset: format!(
                "INSERT INTO {offsets} AS o (consumer_group, topic, \"partition\", next_offset) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (consumer_group, topic, \"partition\") \
                 DO UPDATE SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset), \
                 updated_at = now()"
            ),
            read_offsets: format!(
                "SELECT topic, \"partition\", next_offset FROM {offsets} \
                 WHERE consumer_group = $1 AND topic = ANY($2)"
            ),
            // Bounded batches: one huge DELETE would hold its locks and WAL for as long as the
            // backlog is large; `prune_expired` repeats this until a batch comes back short.
            prune: format!(
                "DELETE FROM {inbox} WHERE ctid IN (SELECT ctid FROM {inbox} \
                 WHERE consumer_group = $1 AND processed_at < now() - make_interval(secs => $2) \
                 LIMIT $3)"
            ),
        })
    }
}

/// The SQL that creates the inbox tables (idempotent: `IF NOT EXISTS` everywhere).
pub fn schema_sql(inbox_table: &str, offsets_table: &str) -> Result<String> {
    let inbox = quote_table(inbox_table)?;
    let offsets = quote_table(offsets_table)?;
    let idx = index_name(inbox_table, "processed_at");
    Ok(format!(
        "CREATE TABLE IF NOT EXISTS {inbox} (\n\
         \x20 consumer_group text NOT NULL,\n\
         \x20 message_id text NOT NULL,\n\
         \x20 topic text NOT NULL,\n\
         \x20 \"partition\" integer NOT NULL,\n\
         \x20 message_offset bigint NOT NULL,\n\
         \x20 processed_at timestamptz NOT NULL DEFAULT now(),\n\
         \x20 PRIMARY KEY (consumer_group, message_id)\n\
         );\n\
         CREATE INDEX IF NOT EXISTS {idx} ON {inbox} (consumer_group, processed_at);\n\
         CREATE TABLE IF NOT EXISTS {offsets} (\n\
         \x20 consumer_group text NOT NULL,\n\
         \x20 topic text NOT NULL,\n\
         \x20 \"partition\" integer NOT NULL,\n\
         \x20 next_offset bigint NOT NULL,\n\
         \x20 updated_at timestamptz NOT NULL DEFAULT now(),\n\
         \x20 PRIMARY KEY (consumer_group, topic, \"partition\")\n\
         );\n"
    ))
}

/// The id a message is recorded under. With `header` set and present, its value (`h:` then
/// the value; not UTF-8 → `hx:` then hex) — the outbox relay's `id` header makes a re-published
/// row the same message. Otherwise `o:<topic>/<partition>/<offset>`, which identifies one
/// record of the log. The prefixes keep the two kinds from ever colliding.
pub fn message_id(
    header: Option<&str>,
    headers: &[(&str, Option<&[u8]>)],
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<String> {
    if let Some(name) = header {
        // The last header of that name wins, as Kafka's Headers.lastHeader does.
        if let Some((_, Some(v))) = headers.iter().rev().find(|(k, _)| *k == name) {
            if v.len() > MAX_HEADER_ID_BYTES {
                return Err(InboxError::Config(format!(
                    "header {name:?} of {topic}/{partition}/{offset} is {} bytes, over the \
                     {MAX_HEADER_ID_BYTES} kept as a message id",
                    v.len()
                )));
            }
            return Ok(match std::str::from_utf8(v) {
                Ok(s) => format!("h:{s}"),
                Err(_) => {
                    let mut s = String::from("hx:");
                    for b in *v {
                        s.push_str(&format!("{b:02x}"));
                    }
                    s
                }
            });
        }
    }
    Ok(format!("o:{topic}/{partition}/{offset}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_validated_and_quoted() {
        assert_eq!(quote_table("inbox").unwrap(), "\"inbox\"");
        assert_eq!(quote_table("app.inbox_2").unwrap(), "\"app\".\"inbox_2\"");
        for bad in [
            "",
            "a.b.c",
            "in box",
            "x;drop",
            "1abc",
            "a.",
            "\"q\"",
            &"a".repeat(64),
        ] {
            assert!(quote_table(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn header_id_wins_over_the_offset() {
        let h: Vec<(&str, Option<&[u8]>)> = vec![("id", Some(b"abc")), ("type", Some(b"T"))];
        assert_eq!(message_id(Some("id"), &h, "t", 1, 7).unwrap(), "h:abc");
        // The last of repeated headers, as Kafka's lastHeader.
        let h2: Vec<(&str, Option<&[u8]>)> = vec![("id", Some(b"a")), ("id", Some(b"b"))];
        assert_eq!(message_id(Some("id"), &h2, "t", 1, 7).unwrap(), "h:b");
    }

    #[test]
    fn missing_or_null_header_falls_back_to_the_offset() {
        let h: Vec<(&str, Option<&[u8]>)> = vec![("id", None)];
        assert_eq!(message_id(Some("id"), &h, "t", 2, 9).unwrap(), "o:t/2/9");
        assert_eq!(message_id(Some("id"), &[], "t", 2, 9).unwrap(), "o:t/2/9");
        let h: Vec<(&str, Option<&[u8]>)> = vec![("id", Some(b"x"))];
        assert_eq!(message_id(None, &h, "t", 0, 0).unwrap(), "o:t/0/0");
    }

    #[test]
    fn binary_and_oversized_header_ids() {
        let h: Vec<(&str, Option<&[u8]>)> = vec![("id", Some(&[0xff, 0x01]))];
        assert_eq!(message_id(Some("id"), &h, "t", 0, 0).unwrap(), "hx:ff01");
        let big = vec![b'a'; MAX_HEADER_ID_BYTES + 1];
        let h: Vec<(&str, Option<&[u8]>)> = vec![("id", Some(&big))];
        assert!(message_id(Some("id"), &h, "t", 0, 0).is_err());
    }

    #[test]
    fn schema_and_statements_use_the_configured_tables() {
        let sql = schema_sql("app.inbox", "app.inbox_offsets").unwrap();
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app\".\"inbox\""));
        assert!(sql.contains("\"inbox_processed_at\" ON \"app\".\"inbox\""));
        assert!(sql.contains("PRIMARY KEY (consumer_group, message_id)"));
        assert!(sql.contains("CREATE TABLE IF NOT EXISTS \"app\".\"inbox_offsets\""));
        let st = Statements::new("inbox", "offs").unwrap();
        assert!(st.insert_inbox.starts_with("INSERT INTO \"inbox\""));
        assert!(st.upsert_offset.contains("GREATEST"));
        assert!(st.read_offsets.contains("FROM \"offs\""));
        assert!(schema_sql("bad name", "x").is_err());
    }
}
