//! Output formats of `potok consume`: the plain value, a kcat-like template and JSON lines.
//!
//! JSON lines are binary-safe: a key, value or header value that is valid UTF-8 is written as a
//! JSON string with `"*_encoding": "utf8"`, anything else as standard base64 with
//! `"*_encoding": "base64"`, so `base64 -d` of the field gives back the exact bytes.

use std::io::Write;

use base64::Engine;
use rdkafka::message::{Headers, Message};
use serde_json::{json, Map, Value};

/// One element of a parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Timestamp,
    Headers,
}

/// How `potok consume` writes each record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// The value bytes followed by a newline.
    Plain,
    /// One JSON object per line.
    Json,
    /// A template such as `%t/%p@%o %k=%v\n`.
    Template(Vec<PieceWrapper>),
}

/// Opaque wrapper so the template representation stays private.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceWrapper(Piece);

/// Parses `--format`: `plain`, `json`, or a template containing `%` escapes:
/// `%t` topic, `%p` partition, `%o` offset, `%k` key, `%v` value, `%T` timestamp (ms since the
/// epoch, -1 when absent), `%h` headers as `k=v,k=v`, `%%` a percent sign; `\n`, `\t`, `\\` are
/// the usual escapes. As in kcat, a template adds no newline of its own.
pub fn parse_format(s: &str) -> Result<Format, String> {
    match s {
        "plain" => return Ok(Format::Plain),
        "json" => return Ok(Format::Json),
        _ => {}
    }
    if !s.contains('%') {
        return Err(format!(
            "unknown format '{s}': use plain, json or a template with %t %p %o %k %v %T %h"
        ));
    }
    let mut pieces = Vec::new();
    let mut lit = Vec::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let piece = match c {
            '%' => match chars.next() {
                Some('t') => Piece::Topic,
                Some('p') => Piece::Partition,
                Some('o') => Piece::Offset,
                Some('k') => Piece::Key,
                Some('v') => Piece::Value,
                Some('T') => Piece::Timestamp,
                Some('h') => Piece::Headers,
                Some('%') => {
                    lit.push(b'%');
                    continue;
                }
                Some(other) => return Err(format!("unknown template escape '%{other}'")),
                None => return Err("template ends with a lone '%'".to_string()),
            },
            '\\' => {
                match chars.next() {
                    Some('n') => lit.push(b'\n'),
                    Some('t') => lit.push(b'\t'),
                    Some('r') => lit.push(b'\r'),
                    Some('\\') => lit.push(b'\\'),
                    Some(other) => {
                        lit.push(b'\\');
                        let mut buf = [0u8; 4];
                        lit.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                    }
                    None => lit.push(b'\\'),
                }
                continue;
            }
            other => {
                let mut buf = [0u8; 4];
                lit.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
                continue;
            }
        };
        if !lit.is_empty() {
            pieces.push(PieceWrapper(Piece::Literal(std::mem::take(&mut lit))));
        }
        pieces.push(PieceWrapper(piece));
    }
    if !lit.is_empty() {
        pieces.push(PieceWrapper(Piece::Literal(lit)));
    }
    Ok(Format::Template(pieces))
}

/// Writes one record in `format` to `out`.
pub fn write_record<M: Message>(
    out: &mut impl Write,
    format: &Format,
    msg: &M,
) -> std::io::Result<()> {
    match format {
        Format::Plain => {
            out.write_all(msg.payload().unwrap_or_default())?;
            out.write_all(b"\n")
        }
        Format::Json => {
            let line = serde_json::to_string(&record_json(msg)).map_err(std::io::Error::other)?;
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        }
        Format::Template(pieces) => {
            for PieceWrapper(p) in pieces {
                match p {
                    Piece::Literal(b) => out.write_all(b)?,
                    Piece::Topic => out.write_all(msg.topic().as_bytes())?,
                    Piece::Partition => write!(out, "{}", msg.partition())?,
                    Piece::Offset => write!(out, "{}", msg.offset())?,
                    Piece::Key => out.write_all(msg.key().unwrap_or_default())?,
                    Piece::Value => out.write_all(msg.payload().unwrap_or_default())?,
                    Piece::Timestamp => {
                        write!(out, "{}", msg.timestamp().to_millis().unwrap_or(-1))?
                    }
                    Piece::Headers => {
                        if let Some(h) = msg.headers() {
                            for (i, header) in h.iter().enumerate() {
                                if i > 0 {
                                    out.write_all(b",")?;
                                }
                                out.write_all(header.key.as_bytes())?;
                                out.write_all(b"=")?;
                                out.write_all(header.value.unwrap_or_default())?;
                            }
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

/// `(text, encoding)` for a possibly binary field.
fn encode_bytes(bytes: Option<&[u8]>) -> (Value, Value) {
    match bytes {
        None => (Value::Null, Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Value::String(s.to_string()), Value::String("utf8".into())),
            Err(_) => (
                Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                Value::String("base64".into()),
            ),
        },
    }
}

/// The JSON object written for one record by `--format json`.
pub fn record_json<M: Message>(msg: &M) -> Value {
    let (key, key_enc) = encode_bytes(msg.key());
    let (value, value_enc) = encode_bytes(msg.payload());
    let headers: Vec<Value> = msg
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| {
                    let (v, enc) = encode_bytes(header.value);
                    json!({"key": header.key, "value": v, "value_encoding": enc})
                })
                .collect()
        })
        .unwrap_or_default();
    let mut obj = Map::new();
    obj.insert("topic".into(), msg.topic().into());
    obj.insert("partition".into(), msg.partition().into());
    obj.insert("offset".into(), msg.offset().into());
    obj.insert(
        "timestamp".into(),
        msg.timestamp()
            .to_millis()
            .map(Value::from)
            .unwrap_or(Value::Null),
    );
    obj.insert("key".into(), key);
    obj.insert("key_encoding".into(), key_enc);
    obj.insert("value".into(), value);
    obj.insert("value_encoding".into(), value_enc);
    obj.insert("headers".into(), Value::Array(headers));
    Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};

    fn msg(key: Option<&[u8]>, value: Option<&[u8]>) -> OwnedMessage {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "h1",
                value: Some(b"v1".as_slice()),
            })
            .insert(Header {
                key: "bin",
                value: Some([0xffu8, 0x00].as_slice()),
            });
        OwnedMessage::new(
            value.map(<[u8]>::to_vec),
            key.map(<[u8]>::to_vec),
            "t".into(),
            Timestamp::CreateTime(1234),
            3,
            42,
            Some(headers),
        )
    }

    fn render(format: &str, m: &OwnedMessage) -> Vec<u8> {
        let f = parse_format(format).unwrap();
        let mut out = Vec::new();
        write_record(&mut out, &f, m).unwrap();
        out
    }

    #[test]
    fn template_expands_every_escape() {
        let m = msg(Some(b"k"), Some(b"v"));
        assert_eq!(
            render("%t|%p|%o|%k|%v|%T|%h|%%\\n", &m),
            b"t|3|42|k|v|1234|h1=v1,bin=\xff\x00|%\n".to_vec()
        );
    }

    #[test]
    fn plain_is_value_and_newline() {
        assert_eq!(render("plain", &msg(None, Some(b"abc"))), b"abc\n".to_vec());
    }

    #[test]
    fn json_is_binary_safe() {
        let m = msg(Some(b"key"), Some(&[0xc3, 0x28, 0x00, 0xff]));
        let out = render("json", &m);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["key"], "key");
        assert_eq!(v["key_encoding"], "utf8");
        assert_eq!(v["value_encoding"], "base64");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, vec![0xc3, 0x28, 0x00, 0xff]);
        assert_eq!(v["headers"][1]["value_encoding"], "base64");
        assert_eq!(v["partition"], 3);
        assert_eq!(v["offset"], 42);
        assert_eq!(v["timestamp"], 1234);
        let null_key = render("json", &msg(None, Some(b"x")));
        let v: Value = serde_json::from_slice(&null_key).unwrap();
        assert!(v["key"].is_null());
    }

    #[test]
    fn bad_formats_are_rejected() {
        assert!(parse_format("xml").is_err());
        assert!(parse_format("%q").is_err());
        assert!(parse_format("abc%").is_err());
    }
}
