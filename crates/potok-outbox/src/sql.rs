//! The SQL the relay needs: `potok outbox init`'s statements (table, commit-order sequence,
//! publication, slot) and the checks at start that turn a missing table, a missing column or a
//! missing privilege into an error that names it, before any row is read.

use tokio_postgres::Client;

use crate::config::{quote_ident, quote_literal, Mode, TableArgs, TableName};
use crate::error::{OutboxError, Result};

/// The sequence the poll mode draws its commit-order numbers from.
pub fn batch_sequence(table: &TableName, t: &TableArgs) -> TableName {
    TableName {
        schema: table.schema.clone(),
        name: format!("{}_{}_seq", table.name, t.batch_column),
    }
}

/// The statements of `potok outbox init`, each to be run on its own (creating a slot is refused
/// inside a transaction that wrote, and a multi-statement string is one implicit transaction).
pub fn init_statements(t: &TableArgs, mode: Mode) -> Result<Vec<String>> {
    let table = TableName::parse(&t.table).map_err(OutboxError::Config)?;
    let q = table.quoted();
    let seq = batch_sequence(&table, t);
    let mut out = vec![
        format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(&table.schema)),
        format!(
            "CREATE TABLE IF NOT EXISTS {q} (\n  \
               {id} uuid PRIMARY KEY,\n  \
               {at} text NOT NULL,\n  \
               {ai} text NOT NULL,\n  \
               {ty} text NOT NULL,\n  \
               {pl} jsonb,\n  \
               created_at timestamptz NOT NULL DEFAULT now(),\n  \
               -- Insertion order: orders the rows of one transaction (poll mode).\n  \
               {sq} bigserial NOT NULL UNIQUE,\n  \
               -- Commit order, set by the relay when it first sees the row (poll mode).\n  \
               {bt} bigint\n)",
            id = quote_ident(&t.id_column),
            at = quote_ident(&t.aggregatetype_column),
            ai = quote_ident(&t.aggregateid_column),
            ty = quote_ident(&t.type_column),
            pl = quote_ident(&t.payload_column),
            sq = quote_ident(&t.seq_column),
            bt = quote_ident(&t.batch_column),
        ),
        format!("CREATE SEQUENCE IF NOT EXISTS {}", seq.quoted()),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {q} ({}, {})",
            quote_ident(&format!("{}_potok_order", table.name)),
            quote_ident(&t.batch_column),
            quote_ident(&t.seq_column)
        ),
    ];
    if mode != Mode::Poll {
        // Only inserts: the poll mode's updates and the deletes of published rows stay out of
        // the stream.
        out.push(format!(
            "DO $$ BEGIN\n  \
               IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = {lit}) THEN\n    \
                 CREATE PUBLICATION {name} FOR TABLE {q} WITH (publish = 'insert');\n  \
               END IF;\n\
             END $$",
            lit = quote_literal(&t.publication),
            name = quote_ident(&t.publication),
        ));
        out.push(format!(
            "SELECT pg_create_logical_replication_slot({lit}, 'pgoutput') \
             WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = {lit})",
            lit = quote_literal(&t.slot)
        ));
    }
    Ok(out)
}

/// The type of the payload column decides how it is read: bytea as bytes, anything else as its
/// text output (jsonb, json, text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadKind {
    Bytes,
    Text,
}

/// What the start-up checks learned about the table.
#[derive(Clone, Debug)]
pub struct TableInfo {
    pub payload: PayloadKind,
    /// The id column's type, for casting ids back in the delete of published rows.
    pub id_type: String,
}

/// Checks that the table exists, has the configured columns and that the current role has the
/// privileges `mode` needs. Every failure names the table, the column or the privilege.
pub async fn check_table(
    client: &Client,
    t: &TableArgs,
    mode: Mode,
    delete: bool,
) -> Result<TableInfo> {
    let table = TableName::parse(&t.table).map_err(OutboxError::Config)?;
    let q = table.quoted();
    let exists: Option<String> = client
        .query_one("SELECT to_regclass($1)::text", &[&q])
        .await?
        .get(0);
    if exists.is_none() {
        return Err(OutboxError::Config(format!(
            "the outbox table {} (--table) does not exist; `potok outbox init` prints the SQL \
             that creates it",
            table.display()
        )));
    }
    let rows = client
        .query(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attnum > 0 AND NOT attisdropped",
            &[&q],
        )
        .await?;
    let cols: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let type_of = |name: &str, flag: &str| -> Result<String> {
        cols.iter()
            .find(|(n, _)| n == name)
            .map(|(_, ty)| ty.clone())
            .ok_or_else(|| {
                OutboxError::Config(format!(
                    "the outbox table {} has no column {name:?} ({flag})",
                    table.display()
                ))
            })
    };
    let id_type = type_of(&t.id_column, "--id-column")?;
    type_of(&t.aggregatetype_column, "--aggregatetype-column")?;
    type_of(&t.aggregateid_column, "--aggregateid-column")?;
    type_of(&t.type_column, "--type-column")?;
    let payload_type = type_of(&t.payload_column, "--payload-column")?;
    if let Some(h) = &t.headers_column {
        type_of(h, "--headers-column")?;
    }
    let mut privileges = vec!["SELECT"];
    if mode == Mode::Poll {
        type_of(&t.seq_column, "--seq-column")?;
        type_of(&t.batch_column, "--batch-column")?;
        privileges.extend(["UPDATE", "DELETE"]);
    } else if delete {
        privileges.push("DELETE");
    }
    let role: String = client
        .query_one("SELECT current_user::text", &[])
        .await?
        .get(0);
    for p in privileges {
        let ok: bool = client
            .query_one(
                "SELECT has_table_privilege($1::text::regclass, $2)",
                &[&q, &p],
            )
            .await?
            .get(0);
        if !ok {
            return Err(OutboxError::Config(format!(
                "role {role:?} lacks the {p} privilege on the outbox table {} (the {} mode \
                 needs it): GRANT {p} ON {} TO {}",
                table.display(),
                if mode == Mode::Poll {
                    "poll"
                } else {
                    "logical"
                },
                q,
                quote_ident(&role)
            )));
        }
    }
    if mode == Mode::Poll {
        let seq = batch_sequence(&table, t);
        let ok: Option<bool> = client
            .query_one(
                "SELECT has_sequence_privilege(to_regclass($1), 'USAGE')",
                &[&seq.quoted()],
            )
            .await
            .ok()
            .and_then(|r| r.get(0));
        if ok != Some(true) {
            return Err(OutboxError::Config(format!(
                "the poll mode's sequence {} is missing or role {role:?} may not use it \
                 (`potok outbox init` creates it)",
                seq.display()
            )));
        }
    }
    Ok(TableInfo {
        payload: if payload_type == "bytea" {
            PayloadKind::Bytes
        } else {
            PayloadKind::Text
        },
        id_type,
    })
}

/// Whether the logical mode can run: `wal_level=logical` and a role that may replicate.
pub async fn logical_possible(client: &Client) -> Result<Result<(), String>> {
    let wal_level: String = client.query_one("SHOW wal_level", &[]).await?.get(0);
    if wal_level != "logical" {
        return Ok(Err(format!(
            "the server's wal_level is {wal_level:?}; the logical mode needs wal_level=logical"
        )));
    }
    let row = client
        .query_one(
            "SELECT rolreplication OR rolsuper, rolname::text FROM pg_roles \
             WHERE rolname = current_user",
            &[],
        )
        .await?;
    let may: bool = row.get(0);
    let role: String = row.get(1);
    if !may {
        return Ok(Err(format!(
            "role {role:?} has neither REPLICATION nor SUPERUSER; the logical mode needs one \
             (ALTER ROLE {} REPLICATION)",
            quote_ident(&role)
        )));
    }
    Ok(Ok(()))
}

/// Checks the publication and the slot of the logical mode.
pub async fn check_logical(client: &Client, t: &TableArgs) -> Result<()> {
    let table = TableName::parse(&t.table).map_err(OutboxError::Config)?;
    let published: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 \
             AND schemaname = $2 AND tablename = $3",
            &[&t.publication, &table.schema, &table.name],
        )
        .await?
        .get(0);
    if published == 0 {
        return Err(OutboxError::Config(format!(
            "the publication {:?} (--publication) does not exist or does not include {} \
             (`potok outbox init` prints the SQL)",
            t.publication,
            table.display()
        )));
    }
    let slot = client
        .query_opt(
            "SELECT plugin::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&t.slot],
        )
        .await?;
    match slot {
        None => Err(OutboxError::Config(format!(
            "the replication slot {:?} (--slot) does not exist (`potok outbox init` prints the \
             SQL that creates it)",
            t.slot
        ))),
        Some(r) if r.get::<_, Option<String>>(0).as_deref() != Some("pgoutput") => {
            Err(OutboxError::Config(format!(
                "the replication slot {:?} (--slot) is not a pgoutput logical slot",
                t.slot
            )))
        }
        Some(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        t: TableArgs,
    }

    #[test]
    fn init_quotes_every_name_and_creates_the_slot_last() {
        let p = P::parse_from(["x", "--db", "", "--table", "app.out", "--slot", "s'1"]);
        let s = init_statements(&p.t, Mode::Logical).unwrap();
        assert!(s[1].starts_with("CREATE TABLE IF NOT EXISTS \"app\".\"out\""));
        assert!(s
            .iter()
            .any(|x| x.contains("\"app\".\"out_potok_batch_seq\"")));
        assert!(s.last().unwrap().contains("'s''1'"));
        assert!(s.iter().any(|x| x.contains("publish = 'insert'")));
        let poll = init_statements(&p.t, Mode::Poll).unwrap();
        assert!(!poll.iter().any(|x| x.contains("PUBLICATION")));
    }
}
