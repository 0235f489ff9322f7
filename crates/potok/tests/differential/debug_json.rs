//! Turns the `Debug` text of a decoded message into JSON. Every generated message struct of
//! `potok-protocol` derives `Debug`, so the runner observes every field of every response
//! without one extraction function per API; what is not comparable is taken out afterwards, in
//! one place (`normalise.rs`).
//!
//! The grammar is the one `#[derive(Debug)]` writes: `Name { field: value, .. }`, `[a, b]`,
//! `Some(x)` / `None`, string literals, `bytes::Bytes` as `b"..."` (written as `"0x<hex>"`),
//! and bare tokens (numbers, booleans, UUIDs).

use serde_json::{Map, Number, Value};

/// The JSON form of `v`'s `Debug` text; panics on text the derive does not produce.
pub fn to_json<T: std::fmt::Debug>(v: &T) -> Value {
    let text = format!("{v:?}");
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let out = p.value();
    p.ws();
    assert_eq!(p.i, p.s.len(), "trailing Debug text: {text}");
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i] == b' ' {
            self.i += 1;
        }
    }

    fn peek(&self) -> u8 {
        self.s.get(self.i).copied().unwrap_or(0)
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == c {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) {
        assert!(
            self.eat(c),
            "expected {:?} at {} of {}",
            c as char,
            self.i,
            String::from_utf8_lossy(self.s)
        );
    }

    fn value(&mut self) -> Value {
        self.ws();
        match self.peek() {
            b'[' => {
                self.i += 1;
                Value::Array(self.items(b']'))
            }
            b'"' => Value::String(self.string()),
            b'b' if self.s.get(self.i + 1) == Some(&b'"') => {
                self.i += 1;
                Value::String(self.bytes())
            }
            _ => {
                let tok = self.token();
                self.ws();
                match self.peek() {
                    b'{' => {
                        self.i += 1;
                        let mut m = Map::new();
                        while !self.eat(b'}') {
                            self.ws();
                            let name = self.token();
                            self.expect(b':');
                            m.insert(name, self.value());
                            self.eat(b',');
                        }
                        Value::Object(m)
                    }
                    b'(' => {
                        self.i += 1;
                        let mut items = self.items(b')');
                        // `Some(x)` and one-field tuple structs are their content.
                        if items.len() == 1 {
                            items.pop().unwrap()
                        } else {
                            Value::Array(items)
                        }
                    }
                    _ => bare(&tok),
                }
            }
        }
    }

    fn items(&mut self, close: u8) -> Vec<Value> {
        let mut v = Vec::new();
        while !self.eat(close) {
            v.push(self.value());
            self.eat(b',');
        }
        v
    }

    fn token(&mut self) -> String {
        let start = self.i;
        while self.i < self.s.len()
            && (self.s[self.i].is_ascii_alphanumeric() || b"_-.+".contains(&self.s[self.i]))
        {
            self.i += 1;
        }
        assert!(
            self.i > start,
            "unexpected {:?} at {} of {}",
            self.peek() as char,
            self.i,
            String::from_utf8_lossy(self.s)
        );
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    /// A `str` Debug literal: escapes `\n \r \t \\ \" \' \0 \u{..}`.
    fn string(&mut self) -> String {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let c = self.peek();
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek();
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            self.expect(b'{');
                            let start = self.i;
                            while self.peek() != b'}' {
                                self.i += 1;
                            }
                            let hex = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                            self.i += 1;
                            let ch = char::from_u32(u32::from_str_radix(hex, 16).unwrap()).unwrap();
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                0 => panic!("unterminated string in {}", String::from_utf8_lossy(self.s)),
                other => out.push(other),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// A `bytes::Bytes` Debug literal (`\n \r \t \\ \" \0 \xNN`), as `0x` and lowercase hex.
    fn bytes(&mut self) -> String {
        self.i += 1;
        let mut out = String::from("0x");
        loop {
            let c = self.peek();
            self.i += 1;
            let b = match c {
                b'"' => break,
                b'\\' => {
                    let e = self.peek();
                    self.i += 1;
                    match e {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'0' => 0,
                        b'x' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 2]).unwrap();
                            self.i += 2;
                            u8::from_str_radix(hex, 16).unwrap()
                        }
                        other => other,
                    }
                }
                0 => panic!("unterminated bytes in {}", String::from_utf8_lossy(self.s)),
                other => other,
            };
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// A bare token: `None`, a boolean, an integer, or text (a UUID, a unit variant).
fn bare(tok: &str) -> Value {
    match tok {
        "None" => Value::Null,
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => {
            if let Ok(n) = tok.parse::<i64>() {
                Value::Number(n.into())
            } else if let Ok(n) = tok.parse::<u64>() {
                Value::Number(n.into())
            } else if let Some(n) = tok.parse::<f64>().ok().and_then(Number::from_f64) {
                Value::Number(n)
            } else {
                Value::String(tok.to_string())
            }
        }
    }
}

/// The bytes of a `"0x<hex>"` string made by [`to_json`].
pub fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let hex = s.strip_prefix("0x")?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}
