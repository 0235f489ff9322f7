//! The parsed form of Kafka's JSON message definitions: version ranges, field types, nested
//! structs, and the naming rules that turn spec names into Rust identifiers.

use super::*;
/// An inclusive version range; empty when `lo > hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Range {
    pub(crate) lo: i16,
    pub(crate) hi: i16,
}

impl Range {
    const NONE: Range = Range { lo: 1, hi: 0 };
    pub(crate) fn parse(s: &str) -> Result<Range> {
        let s = s.trim();
        if s == "none" {
            return Ok(Range::NONE);
        }
        if let Some(a) = s.strip_suffix('+') {
            return Ok(Range {
                lo: a.parse()?,
                hi: i16::MAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Ok(Range {
                lo: a.parse()?,
                hi: b.parse()?,
            });
        }
        let v = s.parse()?;
        Ok(Range { lo: v, hi: v })
    }
    pub(crate) fn empty(self) -> bool {
        self.lo > self.hi
    }
    pub(crate) fn and(self, o: Range) -> Range {
        Range {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        }
    }
}

/// A version condition as Rust source, simplified against the message's valid versions.
pub(crate) fn cond(r: Range, valid: Range) -> String {
    let r = r.and(valid);
    if r.empty() {
        "false".into()
    } else if r.lo <= valid.lo && r.hi >= valid.hi {
        "true".into()
    } else if r.lo <= valid.lo {
        format!("version <= {}", r.hi)
    } else if r.hi >= valid.hi {
        format!("version >= {}", r.lo)
    } else if r.lo == r.hi {
        format!("version == {}", r.lo)
    } else {
        format!("({}..={}).contains(&version)", r.lo, r.hi)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Prim {
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    F64,
    Bool,
    Uuid,
    Str,
    Bytes,
    Records,
}

impl Prim {
    pub(crate) fn parse(s: &str) -> Option<Prim> {
        Some(match s {
            "int8" => Prim::I8,
            "int16" => Prim::I16,
            "int32" => Prim::I32,
            "int64" => Prim::I64,
            "uint16" => Prim::U16,
            "uint32" => Prim::U32,
            "float64" => Prim::F64,
            "bool" => Prim::Bool,
            "uuid" => Prim::Uuid,
            "string" => Prim::Str,
            "bytes" => Prim::Bytes,
            "records" => Prim::Records,
            _ => return None,
        })
    }
    pub(crate) fn rust(self) -> &'static str {
        match self {
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::I32 => "i32",
            Prim::I64 => "i64",
            Prim::U16 => "u16",
            Prim::U32 => "u32",
            Prim::F64 => "f64",
            Prim::Bool => "bool",
            Prim::Uuid => "Uuid",
            Prim::Str => "String",
            Prim::Bytes | Prim::Records => "Bytes",
        }
    }
    /// Suffix of the codec function names (`put_i32`, `get_i32`, `g.i32()`).
    pub(crate) fn fname(self) -> &'static str {
        match self {
            Prim::I8 => "i8",
            Prim::I16 => "i16",
            Prim::I32 => "i32",
            Prim::I64 => "i64",
            Prim::U16 => "u16",
            Prim::U32 => "u32",
            Prim::F64 => "f64",
            Prim::Bool => "bool",
            Prim::Uuid => "uuid",
            Prim::Str => "str",
            Prim::Bytes | Prim::Records => "bytes",
        }
    }
    pub(crate) fn fixed_size(self) -> Option<usize> {
        match self {
            Prim::I8 | Prim::Bool => Some(1),
            Prim::I16 | Prim::U16 => Some(2),
            Prim::I32 | Prim::U32 => Some(4),
            Prim::I64 | Prim::F64 => Some(8),
            Prim::Uuid => Some(16),
            Prim::Str | Prim::Bytes | Prim::Records => None,
        }
    }
    pub(crate) fn is_var(self) -> bool {
        self.fixed_size().is_none()
    }
}

#[derive(Clone, Debug)]
pub(crate) enum Elem {
    Prim(Prim),
    Struct(String),
}

#[derive(Clone, Debug)]
pub(crate) enum Ty {
    Prim(Prim),
    Array(Elem),
    Struct(String),
}

#[derive(Clone, Debug)]
pub(crate) struct Field {
    pub(crate) name: String,
    pub(crate) rust: String,
    pub(crate) ty: Ty,
    pub(crate) versions: Range,
    pub(crate) nullable: Range,
    pub(crate) tagged: Range,
    pub(crate) tag: Option<u32>,
    pub(crate) default: Option<String>,
    pub(crate) ignorable: bool,
    pub(crate) flex_override: Option<Range>,
    pub(crate) about: String,
}

#[derive(Clone, Debug)]
pub(crate) struct StructDef {
    pub(crate) name: String,
    pub(crate) about: String,
    pub(crate) fields: Vec<Field>,
}

#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) module: String,
    pub(crate) kind: String,
    pub(crate) api_key: Option<i16>,
    pub(crate) valid: Range,
    pub(crate) flexible: Range,
    pub(crate) listeners: Vec<String>,
    pub(crate) unstable: bool,
    /// The message struct first, then nested and common structs in definition order.
    pub(crate) structs: Vec<StructDef>,
}

pub(crate) fn parse_spec(path: &Path) -> Result<Spec> {
    let raw = std::fs::read_to_string(path)?;
    parse_spec_text(&raw).with_context(|| format!("parsing {}", path.display()))
}

/// Parses one definition (JSON with `//` comments).
pub(crate) fn parse_spec_text(raw: &str) -> Result<Spec> {
    let v: Value = serde_json::from_str(&strip_comments(raw))?;
    let name = str_of(&v, "name")?.to_string();
    let valid = Range::parse(str_of(&v, "validVersions")?)?;
    let flexible = match v.get("flexibleVersions").and_then(Value::as_str) {
        Some(s) => Range::parse(s)?,
        None => Range::NONE,
    };
    let mut structs = vec![StructDef {
        name: name.clone(),
        about: format!("Kafka `{name}` (versions {}-{}).", valid.lo, valid.hi),
        fields: Vec::new(),
    }];
    let fields = parse_fields(&v, &mut structs)?;
    structs[0].fields = fields;
    if let Some(cs) = v.get("commonStructs").and_then(Value::as_array) {
        for c in cs {
            let cname = str_of(c, "name")?.to_string();
            let idx = structs.len();
            structs.push(StructDef {
                name: cname,
                about: "A common struct shared by several fields of this message.".into(),
                fields: Vec::new(),
            });
            let f = parse_fields(c, &mut structs)?;
            structs[idx].fields = f;
        }
    }
    let listeners = v
        .get("listeners")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Spec {
        module: snake(&name),
        kind: str_of(&v, "type")?.to_string(),
        api_key: v.get("apiKey").and_then(Value::as_i64).map(|k| k as i16),
        name,
        valid,
        flexible,
        listeners,
        unstable: v
            .get("latestVersionUnstable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        structs,
    })
}

pub(crate) fn str_of<'a>(v: &'a Value, k: &str) -> Result<&'a str> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("missing string attribute {k}"))
}

pub(crate) fn parse_fields(parent: &Value, structs: &mut Vec<StructDef>) -> Result<Vec<Field>> {
    let mut out = Vec::new();
    let Some(arr) = parent.get("fields").and_then(Value::as_array) else {
        return Ok(out);
    };
    for f in arr {
        let name = str_of(f, "name")?.to_string();
        let tystr = str_of(f, "type")?;
        let (is_array, base) = match tystr.strip_prefix("[]") {
            Some(b) => (true, b),
            None => (false, tystr),
        };
        let ty = match (is_array, Prim::parse(base)) {
            (false, Some(p)) => Ty::Prim(p),
            (true, Some(p)) => Ty::Array(Elem::Prim(p)),
            (false, None) => Ty::Struct(base.to_string()),
            (true, None) => Ty::Array(Elem::Struct(base.to_string())),
        };
        if f.get("fields").is_some() {
            let idx = structs.len();
            structs.push(StructDef {
                name: base.to_string(),
                about: f
                    .get("about")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                fields: Vec::new(),
            });
            let nested = parse_fields(f, structs)?;
            structs[idx].fields = nested;
        }
        let range = |k: &str| -> Result<Option<Range>> {
            f.get(k)
                .and_then(Value::as_str)
                .map(Range::parse)
                .transpose()
        };
        // Kafka's generator lets a tagged-only field omit `versions`; they equal `taggedVersions`.
        let versions = match range("versions")? {
            Some(r) => r,
            None => {
                range("taggedVersions")?.ok_or_else(|| anyhow!("field {name} lacks versions"))?
            }
        };
        let default = match f.get("default") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Null) => Some("null".to_string()),
            Some(other) => bail!("unsupported default {other} for {name}"),
        };
        // A few definitions write the tag as a string (`"tag": "2"` in
        // BrokerRegistrationChangeRecord); Kafka's generator accepts both. A tagged field whose
        // tag cannot be read is an error: defaulting it to 0 would give two fields one tag.
        let tagged = range("taggedVersions")?.unwrap_or(Range::NONE);
        let tag = match f.get("tag") {
            None => None,
            Some(Value::Number(n)) => n.as_u64().and_then(|t| u32::try_from(t).ok()),
            Some(Value::String(s)) => s.trim().parse::<u32>().ok(),
            Some(_) => None,
        };
        if !tagged.empty() && tag.is_none() {
            bail!("tagged field {name} lacks a valid tag");
        }
        out.push(Field {
            rust: rust_ident(&snake(&name)),
            name,
            ty,
            versions,
            nullable: range("nullableVersions")?.unwrap_or(Range::NONE),
            tagged,
            tag,
            default,
            ignorable: f.get("ignorable").and_then(Value::as_bool).unwrap_or(false),
            flex_override: range("flexibleVersions")?,
            about: f
                .get("about")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    Ok(out)
}

/// `PascalCase`/`camelCase` to `snake_case` (`ClientId` -> `client_id`, `ISRNodes` -> `isr_nodes`).
pub(crate) fn snake(s: &str) -> String {
    let cs: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in cs.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev_lower =
                i > 0 && (cs[i - 1].is_ascii_lowercase() || cs[i - 1].is_ascii_digit());
            let next_lower = cs.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let prev_upper = i > 0 && cs[i - 1].is_ascii_uppercase();
            if i > 0 && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn rust_ident(s: &str) -> String {
    match s {
        "type" | "match" | "self" | "mod" | "ref" | "move" | "loop" | "async" | "await"
        | "yield" => {
            format!("r#{s}")
        }
        _ => s.to_string(),
    }
}
