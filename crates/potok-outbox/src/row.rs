//! An outbox row and its record: the Debezium outbox event router's mapping (aggregate type →
//! topic through the template, aggregate id → key, `id` and `type` → headers, payload → value),
//! with every check that can fail done before anything is sent, so a bad row stops the relay
//! with a message that names it instead of failing halfway through a transaction.

use crate::error::OutboxError;

/// One row as read from the table (poll mode) or decoded from pgoutput (logical mode). Every
/// column arrives as PostgreSQL's text output except a bytea payload, which arrives as bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRow {
    /// The event id's text form.
    pub id: String,
    pub aggregatetype: Option<String>,
    pub aggregateid: Option<String>,
    pub event_type: Option<String>,
    /// The record value; `None` for SQL NULL (a tombstone, as Debezium's router sends).
    pub payload: Option<Vec<u8>>,
    /// The headers column's text (a JSON object), when configured and not NULL.
    pub headers_json: Option<String>,
    /// Poll mode: the insertion-order column, which identifies the row for the delete.
    pub seq: Option<i64>,
}

impl OutboxRow {
    /// How errors name the row.
    pub fn describe(&self) -> String {
        match &self.aggregateid {
            Some(a) => format!(
                "id={} (aggregate {} {a})",
                self.id,
                self.aggregatetype.as_deref().unwrap_or("NULL")
            ),
            None => format!("id={}", self.id),
        }
    }
}

/// A record ready for the producer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
}

/// The placeholder of the topic template (Debezium's `route.topic.replacement` uses the same).
pub const ROUTED_BY: &str = "${routedByValue}";

/// Maps rows to records.
#[derive(Clone, Debug)]
pub struct Router {
    template: String,
}

impl Router {
    /// A router for `template`, which must contain [`ROUTED_BY`] or be a fixed valid topic.
    pub fn new(template: &str) -> Result<Router, OutboxError> {
        if !template.contains(ROUTED_BY) {
            validate_topic(template)
                .map_err(|e| OutboxError::Config(format!("--topic-template {template:?}: {e}")))?;
        }
        Ok(Router {
            template: template.to_string(),
        })
    }

    /// The record of `row`, or why it cannot be published.
    pub fn route(&self, row: &OutboxRow) -> Result<Record, OutboxError> {
        let bad = |reason: String| OutboxError::BadRow {
            row: row.describe(),
            reason,
        };
        let Some(aggregatetype) = &row.aggregatetype else {
            return Err(bad(
                "the aggregate type is NULL, so the row has no topic".into()
            ));
        };
        let Some(aggregateid) = &row.aggregateid else {
            return Err(bad(
                "the aggregate id is NULL, so the row has no key and no partition that keeps its \
                 aggregate in order"
                    .into(),
            ));
        };
        let topic = self.template.replace(ROUTED_BY, aggregatetype);
        validate_topic(&topic).map_err(|e| {
            bad(format!(
                "the topic template {:?} gives {topic:?}, which is not a valid topic name: {e}",
                self.template
            ))
        })?;
        let mut headers = vec![("id".to_string(), row.id.clone().into_bytes())];
        if let Some(t) = &row.event_type {
            headers.push(("type".to_string(), t.clone().into_bytes()));
        }
        if let Some(json) = &row.headers_json {
            let value: serde_json::Value = serde_json::from_str(json)
                .map_err(|e| bad(format!("the headers column is not JSON: {e}")))?;
            let serde_json::Value::Object(map) = value else {
                return Err(bad("the headers column is not a JSON object".into()));
            };
            for (k, v) in map {
                let bytes = match v {
                    serde_json::Value::String(s) => s.into_bytes(),
                    serde_json::Value::Null => continue,
                    other => other.to_string().into_bytes(),
                };
                headers.push((k, bytes));
            }
        }
        Ok(Record {
            topic,
            key: aggregateid.clone().into_bytes(),
            value: row.payload.clone(),
            headers,
        })
    }
}

/// Kafka's topic name rules (`org.apache.kafka.common.internals.Topic.validate`): not empty, not
/// `.` or `..`, at most 249 characters of `[a-zA-Z0-9._-]`.
pub fn validate_topic(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name == "." || name == ".." {
        return Err("`.` and `..` are not allowed".into());
    }
    if name.len() > 249 {
        return Err(format!("{} characters, the limit is 249", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed (only ASCII letters, digits, '.', '_' and '-')"
        ));
    }
    Ok(())
}

/// The text form of a bytea value (`\x` hex, PostgreSQL's default `bytea_output`) as bytes.
pub fn decode_bytea_hex(text: &str) -> Result<Vec<u8>, String> {
    let hex = text.strip_prefix("\\x").ok_or_else(|| {
        "bytea text without the \\x prefix (bytea_output must be hex)".to_string()
    })?;
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits in bytea".into());
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", c as char)),
        }
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| Ok((digit(p[0])? << 4) | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> OutboxRow {
        OutboxRow {
            id: "7".into(),
            aggregatetype: Some("order".into()),
            aggregateid: Some("o-1".into()),
            event_type: Some("Created".into()),
            payload: Some(b"{}".to_vec()),
            headers_json: Some(r#"{"trace":"abc","n":1,"gone":null}"#.into()),
            seq: Some(1),
        }
    }

    #[test]
    fn routes_like_debeziums_outbox_router() {
        let r = Router::new("outbox.event.${routedByValue}").unwrap();
        let rec = r.route(&row()).unwrap();
        assert_eq!(rec.topic, "outbox.event.order");
        assert_eq!(rec.key, b"o-1");
        assert_eq!(rec.value.as_deref(), Some(&b"{}"[..]));
        assert_eq!(
            rec.headers,
            vec![
                ("id".into(), b"7".to_vec()),
                ("type".into(), b"Created".to_vec()),
                ("n".into(), b"1".to_vec()),
                ("trace".into(), b"abc".to_vec()),
            ]
        );
    }

    #[test]
    fn bad_rows_are_named() {
        let r = Router::new("outbox.event.${routedByValue}").unwrap();
        let mut no_key = row();
        no_key.aggregateid = None;
        let e = r.route(&no_key).unwrap_err().to_string();
        assert!(
            e.contains("id=7") && e.contains("aggregate id is NULL"),
            "{e}"
        );
        let mut bad_topic = row();
        bad_topic.aggregatetype = Some("or der".into());
        let e = r.route(&bad_topic).unwrap_err().to_string();
        assert!(
            e.contains("outbox.event.or der") && e.contains("id=7"),
            "{e}"
        );
        let mut bad_headers = row();
        bad_headers.headers_json = Some("[1]".into());
        assert!(r.route(&bad_headers).is_err());
    }

    #[test]
    fn topic_rules() {
        assert!(validate_topic("a.b_c-D9").is_ok());
        for bad in ["", ".", "..", "a/b", "ä", &"x".repeat(250)] {
            assert!(validate_topic(bad).is_err(), "{bad}");
        }
        assert!(Router::new("fixed topic").is_err());
        assert!(Router::new("fixed").is_ok());
    }

    #[test]
    fn bytea_hex() {
        assert_eq!(decode_bytea_hex("\\x00ffA0").unwrap(), vec![0, 255, 160]);
        assert!(decode_bytea_hex("00").is_err());
        assert!(decode_bytea_hex("\\x0").is_err());
        assert!(decode_bytea_hex("\\xzz").is_err());
    }
}
