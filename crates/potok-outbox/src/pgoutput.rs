//! The pgoutput messages the logical mode needs (protocol version 1, text format): Relation,
//! to learn the column names of a relation id, and Insert, whose tuple becomes an
//! [`OutboxRow`]. Begin and Commit arrive as events of the replication transport; every other
//! message (Update, Delete, Truncate, Type, Origin, logical messages) is skipped, since the
//! publication publishes inserts only. Every length and count is checked against the bytes
//! that remain, so a malformed message is an error, never a panic.

use std::collections::HashMap;

use crate::config::TableArgs;
use crate::error::OutboxError;
use crate::row::{decode_bytea_hex, OutboxRow};
use crate::sql::PayloadKind;

/// A relation as announced by a Relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
}

/// One column value of a tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    /// An unchanged TOASTed value (only in updates; an insert always carries its values).
    Unchanged,
    Text(Vec<u8>),
}

/// What a message means to the relay.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    /// An insert into `relation` with these values, in the relation's column order.
    Insert { relation: u32, values: Vec<Value> },
    /// Anything else (already applied to the decoder's state, or of no interest).
    Other,
}

/// A cursor over one message that fails instead of panicking.
struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn err(what: &str) -> OutboxError {
        OutboxError::Decode(format!("truncated message ({what})"))
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], OutboxError> {
        if self.buf.len() < n {
            return Err(Self::err(what));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, OutboxError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, OutboxError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, OutboxError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn cstr(&mut self, what: &str) -> Result<String, OutboxError> {
        let end = self
            .buf
            .iter()
            .position(|&c| c == 0)
            .ok_or_else(|| Self::err(what))?;
        let s = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }
}

/// Decodes the stream's messages, remembering relations.
#[derive(Debug, Default)]
pub struct Decoder {
    relations: HashMap<u32, Relation>,
}

impl Decoder {
    /// Decodes one pgoutput message.
    pub fn decode(&mut self, msg: &[u8]) -> Result<Change, OutboxError> {
        let mut c = Cursor { buf: msg };
        match c.u8("message type")? {
            b'R' => {
                let id = c.u32("relation id")?;
                let schema = c.cstr("namespace")?;
                let name = c.cstr("relation name")?;
                c.u8("replica identity")?;
                let n = c.u16("column count")?;
                // Each column needs at least 10 bytes: refuse a count the message cannot hold
                // before allocating for it.
                if usize::from(n) * 10 > c.buf.len() {
                    return Err(Cursor::err("relation columns"));
                }
                let mut columns = Vec::with_capacity(n.into());
                for _ in 0..n {
                    c.u8("column flags")?;
                    columns.push(c.cstr("column name")?);
                    c.u32("column type")?;
                    c.u32("column type modifier")?;
                }
                self.relations.insert(
                    id,
                    Relation {
                        schema,
                        name,
                        columns,
                    },
                );
                Ok(Change::Other)
            }
            b'I' => {
                let relation = c.u32("relation id")?;
                if c.u8("new tuple marker")? != b'N' {
                    return Err(OutboxError::Decode("insert without a new tuple".into()));
                }
                let n = c.u16("tuple column count")?;
                if usize::from(n) > c.buf.len() {
                    return Err(Cursor::err("tuple columns"));
                }
                let mut values = Vec::with_capacity(n.into());
                for _ in 0..n {
                    values.push(match c.u8("column kind")? {
                        b'n' => Value::Null,
                        b'u' => Value::Unchanged,
                        b't' => {
                            let len = c.u32("value length")? as usize;
                            Value::Text(c.take(len, "value")?.to_vec())
                        }
                        k => {
                            return Err(OutboxError::Decode(format!(
                                "column kind {:?} (the relay asks for text values)",
                                k as char
                            )))
                        }
                    });
                }
                Ok(Change::Insert { relation, values })
            }
            _ => Ok(Change::Other),
        }
    }

    /// The relation announced under `id`.
    pub fn relation(&self, id: u32) -> Option<&Relation> {
        self.relations.get(&id)
    }
}

/// Builds an [`OutboxRow`] from an insert's values, by the configured column names.
pub fn to_row(
    rel: &Relation,
    values: Vec<Value>,
    t: &TableArgs,
    payload: PayloadKind,
) -> Result<OutboxRow, OutboxError> {
    if values.len() != rel.columns.len() {
        return Err(OutboxError::Decode(format!(
            "an insert into {}.{} has {} values for {} columns",
            rel.schema,
            rel.name,
            values.len(),
            rel.columns.len()
        )));
    }
    let mut id = None;
    let mut row = OutboxRow {
        id: String::new(),
        aggregatetype: None,
        aggregateid: None,
        event_type: None,
        payload: None,
        headers_json: None,
        seq: None,
    };
    let text = |v: &Value| match v {
        Value::Text(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    for (name, v) in rel.columns.iter().zip(&values) {
        if *name == t.id_column {
            id = text(v);
        } else if *name == t.aggregatetype_column {
            row.aggregatetype = text(v);
        } else if *name == t.aggregateid_column {
            row.aggregateid = text(v);
        } else if *name == t.type_column {
            row.event_type = text(v);
        } else if *name == t.payload_column {
            row.payload = match (v, payload) {
                (Value::Text(b), PayloadKind::Text) => Some(b.clone()),
                (Value::Text(b), PayloadKind::Bytes) => {
                    Some(decode_bytea_hex(&String::from_utf8_lossy(b)).map_err(|e| {
                        OutboxError::Decode(format!("payload of {}.{}: {e}", rel.schema, rel.name))
                    })?)
                }
                _ => None,
            };
        } else if Some(name) == t.headers_column.as_ref() {
            row.headers_json = text(v);
        }
    }
    row.id = id.unwrap_or_else(|| "NULL".into());
    Ok(row)
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

    fn relation_msg() -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(16384u32.to_be_bytes());
        m.extend(b"public\0outbox\0");
        m.push(b'd');
        let cols = ["id", "aggregatetype", "aggregateid", "type", "payload"];
        m.extend((cols.len() as u16).to_be_bytes());
        for c in cols {
            m.push(0);
            m.extend(c.as_bytes());
            m.push(0);
            m.extend(25u32.to_be_bytes());
            m.extend(u32::MAX.to_be_bytes());
        }
        m
    }

    fn insert_msg(vals: &[Option<&str>]) -> Vec<u8> {
        let mut m = vec![b'I'];
        m.extend(16384u32.to_be_bytes());
        m.push(b'N');
        m.extend((vals.len() as u16).to_be_bytes());
        for v in vals {
            match v {
                None => m.push(b'n'),
                Some(s) => {
                    m.push(b't');
                    m.extend((s.len() as u32).to_be_bytes());
                    m.extend(s.as_bytes());
                }
            }
        }
        m
    }

    #[test]
    fn decodes_relation_then_insert() {
        let p = P::parse_from(["x", "--db", ""]);
        let mut d = Decoder::default();
        assert_eq!(d.decode(&relation_msg()).unwrap(), Change::Other);
        let ins = insert_msg(&[Some("u1"), Some("order"), None, Some("Created"), Some("{}")]);
        let Change::Insert { relation, values } = d.decode(&ins).unwrap() else {
            panic!("not an insert")
        };
        let rel = d.relation(relation).unwrap();
        let row = to_row(rel, values, &p.t, PayloadKind::Text).unwrap();
        assert_eq!(row.id, "u1");
        assert_eq!(row.aggregatetype.as_deref(), Some("order"));
        assert_eq!(row.aggregateid, None);
        assert_eq!(row.payload.as_deref(), Some(&b"{}"[..]));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut d = Decoder::default();
        let rel = relation_msg();
        for n in 1..rel.len() {
            assert!(d.decode(&rel[..n]).is_err(), "relation cut at {n}");
        }
        let ins = insert_msg(&[Some("u1"), None]);
        for n in 1..ins.len() {
            assert!(d.decode(&ins[..n]).is_err(), "insert cut at {n}");
        }
        // A huge declared count in a short message.
        let bad = vec![b'R', 0, 0, 0, 1, b'a', 0, b'b', 0, b'd', 0xff, 0xff];
        assert!(d.decode(&bad).is_err());
        assert!(d.decode(&[b'I', 0, 0, 0, 1, b'N', 0xff, 0xff]).is_err());
    }
}
