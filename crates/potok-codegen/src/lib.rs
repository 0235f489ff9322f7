//! Generator of Potok's Kafka message types.
//!
//! It reads Apache Kafka's JSON message definitions (JSON with `//` line comments, one message per
//! file, see `kafka-message-specs/README.md`) and writes one Rust module per message into the
//! output directory of `potok-protocol` (`src/generated`). The generated code relies on the
//! runtime in `potok_protocol::codec`: every struct implements the `Wire` trait (`write` into a
//! `Sink`, `read` from `Bytes`, `min_size`), and the public `Encode`/`Decode` traits come from
//! blanket implementations there. This keeps the generated code small: one struct per message or
//! nested struct covering every valid version, with the version passed at run time, instead of one
//! type per version (compile time matters on the project's two-core CI).
//!
//! The output is formatted with `rustfmt` so that it is stable and `cargo fmt` leaves it alone;
//! the regeneration test in `potok-protocol` compares a fresh generation with the committed code.

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Subdirectories of `internal/` whose records are emitted into `generated::internal`. The group
/// and transaction coordinators store these records in `__consumer_offsets` and
/// `__transaction_state`; the KRaft metadata records (`metadata`) are the records of Potok's
/// metadata log, which the controller quorum replicates.
const INTERNAL_DIRS: &[&str] = &["group-coordinator", "metadata", "transaction-coordinator"];

/// Generates all modules from `spec_dir` into `out_dir` and returns the number of files written.
/// Stale `.rs` files in `out_dir` (from messages that no longer exist) are removed first.
pub fn generate(spec_dir: &Path, out_dir: &Path) -> Result<usize> {
    let mut specs = Vec::new();
    for path in json_files(spec_dir)? {
        specs.push(parse_spec(&path)?);
    }
    let mut internal = Vec::new();
    for dir in INTERNAL_DIRS {
        let d = spec_dir.join("internal").join(dir);
        if d.is_dir() {
            for path in json_files(&d)? {
                internal.push(parse_spec(&path)?);
            }
        }
    }
    internal.sort_by(|a, b| a.module.cmp(&b.module));

    remove_rs_files(out_dir)?;
    remove_rs_files(&out_dir.join("internal"))?;
    std::fs::create_dir_all(out_dir.join("internal"))?;

    let mut files = Vec::new();
    for spec in specs.iter().chain(internal.iter()) {
        let sub = if internal.iter().any(|s| std::ptr::eq(s, spec)) {
            out_dir.join("internal")
        } else {
            out_dir.to_path_buf()
        };
        let path = sub.join(format!("{}.rs", spec.module));
        std::fs::write(&path, emit_spec(spec)?)?;
        files.push(path);
    }
    let mod_path = out_dir.join("mod.rs");
    let mut others: Vec<String> = specs
        .iter()
        .filter(|s| !matches!(s.kind.as_str(), "request" | "response"))
        .map(|s| format!("{}::{}", s.module, s.name))
        .collect();
    others.extend(
        internal
            .iter()
            .map(|s| format!("internal::{}::{}", s.module, s.name)),
    );
    let mut mod_src = emit_mod(&specs)?;
    mod_src.push_str("\n/// Round-trips every header and data message (test builds only).\n#[cfg(test)]\npub(crate) fn round_trip_non_api(seed: u64) -> Result<(), String> {\n");
    for t in &others {
        let _ = writeln!(
            mod_src,
            "crate::testgen::round_trip_all_versions::<{t}>(seed)?;"
        );
    }
    mod_src.push_str("Ok(())\n}\n");
    std::fs::write(&mod_path, mod_src)?;
    files.push(mod_path);
    let int_path = out_dir.join("internal").join("mod.rs");
    std::fs::write(&int_path, emit_internal_mod(&internal))?;
    files.push(int_path);
    rustfmt(&files)?;
    Ok(files.len())
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    Ok(v)
}

fn remove_rs_files(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|e| e == "rs") {
            std::fs::remove_file(p)?;
        }
    }
    Ok(())
}

fn rustfmt(files: &[PathBuf]) -> Result<()> {
    let status = std::process::Command::new("rustfmt")
        .arg("--edition")
        .arg("2021")
        .args(files)
        .status()
        .context("running rustfmt")?;
    if !status.success() {
        bail!("rustfmt failed on generated code");
    }
    Ok(())
}

/// Removes `//` comments outside JSON strings (the spec files are JSON with line comments).
pub fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut chars = src.chars().peekable();
    let mut in_str = false;
    let mut escaped = false;
    while let Some(c) = chars.next() {
        if in_str {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_str = false;
            }
        } else if c == '"' {
            in_str = true;
            out.push(c);
        } else if c == '/' && chars.peek() == Some(&'/') {
            for c2 in chars.by_ref() {
                if c2 == '\n' {
                    out.push('\n');
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// An inclusive version range; empty when `lo > hi`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Range {
    lo: i16,
    hi: i16,
}

impl Range {
    const NONE: Range = Range { lo: 1, hi: 0 };
    fn parse(s: &str) -> Result<Range> {
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
    fn empty(self) -> bool {
        self.lo > self.hi
    }
    fn and(self, o: Range) -> Range {
        Range {
            lo: self.lo.max(o.lo),
            hi: self.hi.min(o.hi),
        }
    }
}

/// A version condition as Rust source, simplified against the message's valid versions.
fn cond(r: Range, valid: Range) -> String {
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
enum Prim {
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
    fn parse(s: &str) -> Option<Prim> {
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
    fn rust(self) -> &'static str {
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
    fn fname(self) -> &'static str {
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
    fn fixed_size(self) -> Option<usize> {
        match self {
            Prim::I8 | Prim::Bool => Some(1),
            Prim::I16 | Prim::U16 => Some(2),
            Prim::I32 | Prim::U32 => Some(4),
            Prim::I64 | Prim::F64 => Some(8),
            Prim::Uuid => Some(16),
            Prim::Str | Prim::Bytes | Prim::Records => None,
        }
    }
    fn is_var(self) -> bool {
        self.fixed_size().is_none()
    }
}

#[derive(Clone, Debug)]
enum Elem {
    Prim(Prim),
    Struct(String),
}

#[derive(Clone, Debug)]
enum Ty {
    Prim(Prim),
    Array(Elem),
    Struct(String),
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    rust: String,
    ty: Ty,
    versions: Range,
    nullable: Range,
    tagged: Range,
    tag: Option<u32>,
    default: Option<String>,
    ignorable: bool,
    flex_override: Option<Range>,
    about: String,
}

#[derive(Clone, Debug)]
struct StructDef {
    name: String,
    about: String,
    fields: Vec<Field>,
}

#[derive(Clone, Debug)]
struct Spec {
    name: String,
    module: String,
    kind: String,
    api_key: Option<i16>,
    valid: Range,
    flexible: Range,
    listeners: Vec<String>,
    unstable: bool,
    /// The message struct first, then nested and common structs in definition order.
    structs: Vec<StructDef>,
}

fn parse_spec(path: &Path) -> Result<Spec> {
    let raw = std::fs::read_to_string(path)?;
    let v: Value = serde_json::from_str(&strip_comments(&raw))
        .with_context(|| format!("parsing {}", path.display()))?;
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

fn str_of<'a>(v: &'a Value, k: &str) -> Result<&'a str> {
    v.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("missing string attribute {k}"))
}

fn parse_fields(parent: &Value, structs: &mut Vec<StructDef>) -> Result<Vec<Field>> {
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
fn snake(s: &str) -> String {
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

fn rust_ident(s: &str) -> String {
    match s {
        "type" | "match" | "self" | "mod" | "ref" | "move" | "loop" | "async" | "await"
        | "yield" => {
            format!("r#{s}")
        }
        _ => s.to_string(),
    }
}

/// Per-struct generation context.
struct Ctx<'a> {
    valid: Range,
    flexible: Range,
    owner: &'a str,
}

impl Ctx<'_> {
    fn nullable_any(&self, f: &Field) -> bool {
        matches!(f.ty, Ty::Prim(Prim::Records))
            || !f.nullable.and(f.versions).and(self.valid).empty()
    }
    fn rust_type(&self, f: &Field) -> String {
        let inner = match &f.ty {
            Ty::Prim(p) => p.rust().to_string(),
            Ty::Array(Elem::Prim(p)) => format!("Vec<{}>", p.rust()),
            Ty::Array(Elem::Struct(s)) => format!("Vec<{s}>"),
            Ty::Struct(s) => s.clone(),
        };
        let optional = match &f.ty {
            Ty::Prim(p) => p.is_var() && self.nullable_any(f),
            _ => self.nullable_any(f),
        };
        if optional {
            format!("Option<{inner}>")
        } else {
            inner
        }
    }
    fn is_option(&self, f: &Field) -> bool {
        self.rust_type(f).starts_with("Option<")
    }
    fn default_expr(&self, f: &Field) -> Result<String> {
        let d = f.default.as_deref();
        let opt = self.is_option(f);
        let wrap = |s: String| if opt { format!("Some({s})") } else { s };
        Ok(match &f.ty {
            Ty::Prim(p) if !p.is_var() => match p {
                Prim::Bool => d.unwrap_or("false").to_string(),
                Prim::Uuid => "Uuid::ZERO".into(),
                Prim::F64 => {
                    let v: f64 = d.unwrap_or("0").parse()?;
                    format!("{v:?}")
                }
                _ => {
                    let s = d.unwrap_or("0");
                    let v: i64 = if let Some(h) = s.strip_prefix("0x") {
                        i64::from_str_radix(h, 16)?
                    } else {
                        s.parse()?
                    };
                    v.to_string()
                }
            },
            Ty::Prim(Prim::Records) => "None".into(),
            _ if opt && d == Some("null") => "None".into(),
            Ty::Prim(Prim::Str) => match d {
                None | Some("") => wrap("String::new()".into()),
                Some(s) => wrap(format!("String::from({s:?})")),
            },
            Ty::Prim(_) => wrap("Bytes::new()".into()),
            Ty::Array(e) => {
                let t = match e {
                    Elem::Prim(p) => p.rust().to_string(),
                    Elem::Struct(s) => s.clone(),
                };
                wrap(format!("Vec::<{t}>::new()"))
            }
            Ty::Struct(s) => wrap(format!("{s}::default()")),
        })
    }
    fn flex_expr(&self, f: &Field) -> String {
        match f.flex_override {
            None => "flex".into(),
            Some(r) => match cond(self.flexible.and(r), self.valid).as_str() {
                "true" => "flex".into(),
                "false" => "false".into(),
                c => format!("({c})"),
            },
        }
    }
    fn lit(&self, f: &Field) -> String {
        format!("\"{}.{}\"", self.owner, f.name)
    }

    /// Statements writing field `f` to sink expression `s`.
    fn write_code(&self, f: &Field, s: &str, flex: &str) -> String {
        let v = format!("self.{}", f.rust);
        let nullable = cond(f.nullable, self.valid);
        let name = self.lit(f);
        let opt = self.is_option(f);
        match &f.ty {
            Ty::Prim(p) if !p.is_var() => format!("codec::put_{}({s}, {v});", p.fname()),
            Ty::Prim(Prim::Records) => {
                format!("codec::put_orecords({s}, {v}.as_ref(), {nullable}, {flex}, {name})?;")
            }
            Ty::Prim(p) => {
                let fnm = p.fname();
                if opt {
                    format!("codec::put_o{fnm}({s}, {v}.as_deref(), {nullable}, {flex}, {name})?;")
                } else {
                    format!("codec::put_{fnm}({s}, &{v}, {flex}, {name})?;")
                }
            }
            Ty::Array(e) => {
                let elem = match e {
                    Elem::Prim(p) if !p.is_var() => format!("codec::put_{}({s}, *e);", p.fname()),
                    Elem::Prim(p) => format!("codec::put_{}({s}, e, {flex}, {name})?;", p.fname()),
                    Elem::Struct(_) => format!("e.write({s}, version)?;"),
                };
                if opt {
                    format!("codec::put_oarray_len({s}, {v}.as_ref().map(Vec::len), {nullable}, {flex}, {name})?; if let Some(v) = &{v} {{ for e in v {{ {elem} }} }}")
                } else {
                    format!("codec::put_array_len({s}, {v}.len(), {flex}, {name})?; for e in &{v} {{ {elem} }}")
                }
            }
            Ty::Struct(_) => {
                if opt {
                    format!("codec::put_struct_marker({s}, {v}.is_some(), {nullable}, {name})?; if let Some(v) = &{v} {{ v.write({s}, version)?; }}")
                } else {
                    format!("{v}.write({s}, version)?;")
                }
            }
        }
    }

    /// An expression reading field `f` from buffer expression `b`.
    fn read_code(&self, f: &Field, b: &str, flex: &str) -> String {
        let nullable = cond(f.nullable, self.valid);
        let name = self.lit(f);
        let opt = self.is_option(f);
        match &f.ty {
            Ty::Prim(p) if !p.is_var() => format!("codec::get_{}({b})?", p.fname()),
            Ty::Prim(p) => {
                let fnm = p.fname();
                if opt {
                    format!("codec::get_o{fnm}({b}, {nullable}, {flex}, {name})?")
                } else {
                    format!("codec::get_{fnm}({b}, {flex}, {name})?")
                }
            }
            Ty::Array(e) => {
                let (elem, min) = match e {
                    Elem::Prim(p) if !p.is_var() => (
                        format!("codec::get_{}({b})?", p.fname()),
                        p.fixed_size().unwrap_or(1).to_string(),
                    ),
                    Elem::Prim(p) => (
                        format!("codec::get_{}({b}, {flex}, {name})?", p.fname()),
                        format!("codec::min_var_size({flex})"),
                    ),
                    Elem::Struct(t) => (
                        format!("{t}::read({b}, version)?"),
                        format!("{t}::min_size(version)"),
                    ),
                };
                let fill = format!(
                    "let mut v = Vec::with_capacity(n); for _ in 0..n {{ v.push({elem}); }}"
                );
                if opt {
                    format!("match codec::get_oarray_len({b}, {nullable}, {flex}, {min}, {name})? {{ None => None, Some(n) => {{ {fill} Some(v) }} }}")
                } else {
                    format!(
                        "{{ let n = codec::get_array_len({b}, {flex}, {min}, {name})?; {fill} v }}"
                    )
                }
            }
            Ty::Struct(t) => {
                if opt {
                    format!("if codec::get_struct_marker({b}, {nullable})? {{ Some({t}::read({b}, version)?) }} else {{ None }}")
                } else {
                    format!("{t}::read({b}, version)?")
                }
            }
        }
    }

    fn random_code(&self, f: &Field) -> String {
        let nullable = cond(f.nullable, self.valid);
        let opt = self.is_option(f);
        let elem = |e: &Elem| match e {
            Elem::Prim(p) => format!("g.{}()", p.fname()),
            Elem::Struct(t) => format!("{t}::random(g, version)"),
        };
        match &f.ty {
            Ty::Prim(p) if !p.is_var() => format!("g.{}()", p.fname()),
            Ty::Prim(p) => {
                let base = if *p == Prim::Records {
                    "records"
                } else {
                    p.fname()
                };
                if opt {
                    format!("g.option({nullable}, |g| g.{base}())")
                } else {
                    format!("g.{base}()")
                }
            }
            Ty::Array(e) => {
                if opt {
                    format!("g.option({nullable}, |g| g.vec(|g| {}))", elem(e))
                } else {
                    format!("g.vec(|g| {})", elem(e))
                }
            }
            Ty::Struct(t) => {
                if opt {
                    format!("g.option({nullable}, |g| {t}::random(g, version))")
                } else {
                    format!("{t}::random(g, version)")
                }
            }
        }
    }

    /// Minimal encoded size of `f` when present as a regular (untagged) field.
    fn min_size_code(&self, f: &Field, flex: &str) -> String {
        let nullable = cond(f.nullable, self.valid);
        match &f.ty {
            Ty::Prim(p) => match p.fixed_size() {
                Some(n) => n.to_string(),
                None => format!("codec::min_var_size({flex})"),
            },
            Ty::Array(_) => format!("codec::min_var_size({flex})"),
            Ty::Struct(t) => {
                if self.is_option(f) {
                    format!("if {nullable} {{ 1 }} else {{ {t}::min_size(version) }}")
                } else {
                    format!("{t}::min_size(version)")
                }
            }
        }
    }
}

fn doc(out: &mut String, text: &str) {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = writeln!(out, "/// {}", line.replace('[', "\\[").replace(']', "\\]"));
    }
}

fn range_text(r: Range) -> String {
    if r.empty() {
        "none".into()
    } else if r.hi == i16::MAX {
        format!("{}+", r.lo)
    } else if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    }
}

fn emit_spec(spec: &Spec) -> Result<String> {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "//! Generated by potok-codegen from Kafka's `{}.json`; do not edit.\n",
        spec.name
    );
    o.push_str("use crate::codec::{self, RawTaggedField, Sink, Uuid, Wire};\n");
    o.push_str("use crate::error::{DecodeError, EncodeError};\n");
    o.push_str("#[allow(unused_imports)] use bytes::Bytes;\n\n");
    for (i, st) in spec.structs.iter().enumerate() {
        emit_struct(&mut o, spec, st, i == 0)?;
    }
    Ok(o)
}

fn emit_struct(o: &mut String, spec: &Spec, st: &StructDef, top: bool) -> Result<()> {
    let cx = Ctx {
        valid: spec.valid,
        flexible: spec.flexible,
        owner: &st.name,
    };
    let n = &st.name;
    doc(o, &st.about);
    o.push_str("#[derive(Debug, Clone, PartialEq)]\n");
    let _ = writeln!(o, "pub struct {n} {{");
    for f in &st.fields {
        let mut about = f.about.clone();
        let _ = write!(about, "\n\nVersions: {}", range_text(f.versions));
        if !f.nullable.empty() {
            let _ = write!(about, "; nullable: {}", range_text(f.nullable));
        }
        if !f.tagged.empty() {
            let _ = write!(
                about,
                "; tagged (tag {}): {}",
                f.tag.unwrap_or(0),
                range_text(f.tagged)
            );
        }
        if let Some(d) = &f.default {
            let _ = write!(about, "; default: `{d}`");
        }
        if f.ignorable {
            about.push_str("; ignorable");
        }
        about.push('.');
        doc(o, &about);
        let _ = writeln!(o, "pub {}: {},", f.rust, cx.rust_type(f));
    }
    o.push_str(
        "/// Tagged fields unknown to this version of Potok, kept verbatim so they round-trip.\n",
    );
    o.push_str("pub unknown_tagged_fields: Vec<RawTaggedField>,\n}\n\n");

    // Default.
    let _ = writeln!(o, "impl Default for {n} {{ fn default() -> Self {{ Self {{");
    for f in &st.fields {
        let _ = writeln!(o, "{}: {},", f.rust, cx.default_expr(f)?);
    }
    o.push_str("unknown_tagged_fields: Vec::new(), } } }\n\n");

    let flex = cond(spec.flexible, spec.valid);
    let regular = |f: &Field| {
        // Regular in versions ∩ ¬tagged; when tagged versions are a suffix this is a prefix range.
        let t = f.tagged.and(f.versions);
        if t.and(spec.valid) == f.versions.and(spec.valid) {
            "false".to_string()
        } else if t.empty() {
            cond(f.versions, spec.valid)
        } else {
            let c1 = cond(f.versions, spec.valid);
            let c2 = cond(t, spec.valid);
            format!("({c1}) && !({c2})")
        }
    };
    let mut tagged: Vec<&Field> = st
        .fields
        .iter()
        .filter(|f| !f.tagged.and(f.versions).and(spec.valid).empty())
        .collect();
    tagged.sort_by_key(|f| f.tag.unwrap_or(0));

    let _ = writeln!(o, "impl Wire for {n} {{");
    // write
    o.push_str("fn write<S: Sink>(&self, s: &mut S, version: i16) -> Result<(), EncodeError> {\n");
    if top {
        let _ = writeln!(
            o,
            "codec::check_version(version, {}, {}, \"{n}\")?;",
            spec.valid.lo, spec.valid.hi
        );
    }
    let _ = writeln!(o, "let flex = {flex};");
    for f in &st.fields {
        let fl = cx.flex_expr(f);
        let reg = regular(f);
        let present = cond(f.versions, spec.valid);
        let w = cx.write_code(f, "s", &fl);
        let def = cx.default_expr(f)?;
        let absent_check = if f.ignorable {
            String::new()
        } else {
            format!(
                "if !({present}) && self.{} != {def} {{ return Err(EncodeError::UnsupportedField {{ field: {}, version }}); }}",
                f.rust,
                cx.lit(f)
            )
        };
        match reg.as_str() {
            "true" => {
                let _ = writeln!(o, "{w}");
            }
            "false" => {}
            _ => {
                let _ = writeln!(o, "if {reg} {{ {w} }}");
            }
        }
        if present != "true" {
            let _ = writeln!(o, "{absent_check}");
        }
    }
    o.push_str("if flex {\n");
    o.push_str("let mut count = self.unknown_tagged_fields.len();\n");
    for f in &tagged {
        let def = cx.default_expr(f)?;
        let tc = cond(f.tagged.and(f.versions), spec.valid);
        let _ = writeln!(
            o,
            "let has_{} = ({tc}) && self.{} != {def};",
            f.tag.unwrap_or(0),
            f.rust
        );
        let _ = writeln!(o, "count += usize::from(has_{});", f.tag.unwrap_or(0));
    }
    o.push_str("codec::put_tag_count(s, count)?;\n");
    if tagged.is_empty() {
        o.push_str("for u in &self.unknown_tagged_fields { codec::put_raw_tag(s, u)?; }\n");
    } else {
        o.push_str("let mut unknown = self.unknown_tagged_fields.iter().peekable();\n");
        for f in &tagged {
            let tag = f.tag.unwrap_or(0);
            let wc = cx.write_code(f, "&mut c", "true");
            let ws = cx.write_code(f, "s", "true");
            if tag > 0 {
                let _ = writeln!(o, "while let Some(u) = unknown.next_if(|u| u.tag < {tag}) {{ codec::put_raw_tag(s, u)?; }}");
            }
            let _ = writeln!(o, "if has_{tag} {{ let mut c = codec::SizeCounter::default(); {wc} codec::put_uvarint(s, {tag}); codec::put_tag_size(s, c.0)?; {ws} }}");
        }
        o.push_str("for u in unknown { codec::put_raw_tag(s, u)?; }\n");
    }
    o.push_str("} else if !self.unknown_tagged_fields.is_empty() {\n");
    let _ = writeln!(
        o,
        "return Err(EncodeError::TaggedFieldsUnsupported {{ message: \"{n}\", version }});"
    );
    o.push_str("}\nOk(())\n}\n");

    // read
    o.push_str("fn read(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {\n");
    if top {
        let _ = writeln!(
            o,
            "codec::check_decode_version(version, {}, {}, \"{n}\")?;",
            spec.valid.lo, spec.valid.hi
        );
    }
    let _ = writeln!(o, "let flex = {flex};");
    o.push_str("let mut this = Self::default();\n");
    for f in &st.fields {
        let fl = cx.flex_expr(f);
        let reg = regular(f);
        let r = cx.read_code(f, "buf", &fl);
        match reg.as_str() {
            "true" => {
                let _ = writeln!(o, "this.{} = {r};", f.rust);
            }
            "false" => {}
            _ => {
                let _ = writeln!(o, "if {reg} {{ this.{} = {r}; }}", f.rust);
            }
        }
    }
    o.push_str("if flex {\nlet count = codec::get_tag_count(buf)?;\nfor _ in 0..count {\n");
    o.push_str("let (tag, mut sub) = codec::get_raw_tag(buf)?;\n");
    o.push_str("match tag {\n");
    for f in &tagged {
        let tag = f.tag.unwrap_or(0);
        let tc = cond(f.tagged.and(f.versions), spec.valid);
        let r = cx.read_code(f, "&mut sub", "true");
        let guard = if tc == "true" {
            String::new()
        } else {
            format!(" if {tc}")
        };
        let _ = writeln!(
            o,
            "{tag}{guard} => {{ this.{} = {r}; codec::check_tag_consumed(&sub, tag)?; }}",
            f.rust
        );
    }
    o.push_str("_ => this.unknown_tagged_fields.push(RawTaggedField { tag, data: sub }),\n");
    o.push_str("}\n}\n}\nOk(this)\n}\n");

    // min_size
    o.push_str("fn min_size(version: i16) -> usize {\n");
    let _ = writeln!(o, "let flex = {flex};");
    o.push_str("let mut n = usize::from(flex);\n");
    for f in &st.fields {
        let reg = regular(f);
        let fl = cx.flex_expr(f);
        let m = cx.min_size_code(f, &fl);
        match reg.as_str() {
            "true" => {
                let _ = writeln!(o, "n += {m};");
            }
            "false" => {}
            _ => {
                let _ = writeln!(o, "if {reg} {{ n += {m}; }}");
            }
        }
    }
    o.push_str("n\n}\n}\n\n");

    // random (tests only)
    o.push_str("#[cfg(test)]\n");
    let _ = writeln!(o, "impl crate::testgen::Random for {n} {{");
    o.push_str("fn random(g: &mut crate::testgen::Gen, version: i16) -> Self {\n");
    let _ = writeln!(o, "let flex = {flex};");
    o.push_str("let mut this = Self::default();\n");
    for f in &st.fields {
        let present = cond(f.versions, spec.valid);
        let r = cx.random_code(f);
        match present.as_str() {
            "true" => {
                let _ = writeln!(o, "this.{} = {r};", f.rust);
            }
            "false" => {}
            _ => {
                let _ = writeln!(o, "if {present} {{ this.{} = {r}; }}", f.rust);
            }
        }
    }
    let _ = writeln!(
        o,
        "if flex {{ this.unknown_tagged_fields = g.unknown_tagged_fields(); }}"
    );
    o.push_str("this\n}\n}\n\n");

    if top {
        let _ = writeln!(o, "impl crate::codec::Message for {n} {{");
        let _ = writeln!(o, "const NAME: &'static str = \"{n}\";");
        let _ = writeln!(
            o,
            "const VALID_VERSIONS: (i16, i16) = ({}, {});",
            spec.valid.lo, spec.valid.hi
        );
        let fs = if spec.flexible.and(spec.valid).empty() {
            "None".to_string()
        } else {
            format!("Some({})", spec.flexible.and(spec.valid).lo)
        };
        let _ = writeln!(o, "const FLEXIBLE_VERSIONS_START: Option<i16> = {fs};");
        o.push_str("}\n\n");
    }
    Ok(())
}

struct Api {
    key: i16,
    name: String,
    req: String,
    resp: String,
    valid: Range,
    flexible: Range,
    listeners: Vec<String>,
    unstable: bool,
}

fn emit_mod(specs: &[Spec]) -> Result<String> {
    let mut o = String::new();
    o.push_str(
        "//! Generated by potok-codegen from Kafka's message definitions; do not edit.\n//!\n",
    );
    o.push_str(
        "//! One module per message. Every message struct, and every nested struct whose name is\n",
    );
    o.push_str("//! unique across all messages, is re-exported here; the others are reached through their\n");
    o.push_str(
        "//! message's module (e.g. `messages::produce_request::PartitionProduceData`).\n\n",
    );
    o.push_str("use crate::codec::{Encode, Sink, Wire, WriteBody};\nuse crate::error::{DecodeError, EncodeError};\nuse bytes::Bytes;\n\n");
    o.push_str("pub mod internal;\n");
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in specs {
        for st in &s.structs {
            *counts.entry(st.name.as_str()).or_default() += 1;
        }
    }
    for s in specs {
        let _ = writeln!(o, "pub mod {};", s.module);
    }
    for s in specs {
        let names: BTreeSet<&str> = s
            .structs
            .iter()
            .map(|st| st.name.as_str())
            .filter(|n| counts.get(n) == Some(&1))
            .collect();
        let list: Vec<&str> = names.into_iter().collect();
        let _ = writeln!(o, "pub use {}::{{{}}};", s.module, list.join(", "));
    }

    // Pair requests and responses by API key.
    let mut apis: BTreeMap<i16, Api> = BTreeMap::new();
    for s in specs {
        let Some(k) = s.api_key else { continue };
        match s.kind.as_str() {
            "request" => {
                let name = s.name.trim_end_matches("Request").to_string();
                let e = apis.entry(k).or_insert_with(|| Api {
                    key: k,
                    name: String::new(),
                    req: String::new(),
                    resp: String::new(),
                    valid: s.valid,
                    flexible: s.flexible,
                    listeners: Vec::new(),
                    unstable: false,
                });
                e.name = name;
                e.req = s.name.clone();
                e.valid = s.valid;
                e.flexible = s.flexible;
                e.listeners = s.listeners.clone();
                e.unstable = s.unstable;
            }
            "response" => {
                let e = apis.entry(k).or_insert_with(|| Api {
                    key: k,
                    name: String::new(),
                    req: String::new(),
                    resp: String::new(),
                    valid: s.valid,
                    flexible: s.flexible,
                    listeners: Vec::new(),
                    unstable: false,
                });
                e.resp = s.name.clone();
            }
            _ => {}
        }
    }
    for a in apis.values() {
        if a.req.is_empty() || a.resp.is_empty() {
            bail!("API key {} lacks a request or a response", a.key);
        }
    }
    let apis: Vec<&Api> = apis.values().collect();

    // ApiKey
    o.push_str("\n/// Kafka API keys, one per request/response pair.\n");
    o.push_str("#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]\n#[repr(i16)]\npub enum ApiKey {\n");
    for a in &apis {
        let _ = writeln!(
            o,
            "/// API key {} (`{}`/`{}`).\n{} = {},",
            a.key, a.req, a.resp, a.name, a.key
        );
    }
    o.push_str("}\n\nimpl ApiKey {\n");
    o.push_str("/// Every API key, in key order.\npub const ALL: &'static [ApiKey] = &[");
    for a in &apis {
        let _ = write!(o, "ApiKey::{},", a.name);
    }
    o.push_str("];\n");
    o.push_str("/// The key for a wire value, or `None` for keys Potok does not know.\npub fn from_i16(key: i16) -> Option<ApiKey> { Some(match key {");
    for a in &apis {
        let _ = write!(o, "{} => ApiKey::{},", a.key, a.name);
    }
    o.push_str("_ => return None, }) }\n");
    o.push_str("/// The Kafka name of the API (e.g. `\"Metadata\"`).\npub fn name(self) -> &'static str { match self {");
    for a in &apis {
        let _ = write!(o, "ApiKey::{} => \"{}\",", a.name, a.name);
    }
    o.push_str("} }\n");
    o.push_str("/// The inclusive range of versions defined by the message definitions.\npub fn valid_versions(self) -> (i16, i16) { match self {");
    for a in &apis {
        let _ = write!(o, "ApiKey::{} => ({}, {}),", a.name, a.valid.lo, a.valid.hi);
    }
    o.push_str("} }\n");
    o.push_str("/// The first flexible (KIP-482 compact/tagged) version, if any.\npub fn flexible_versions_start(self) -> Option<i16> { match self {");
    for a in &apis {
        let f = a.flexible.and(a.valid);
        let v = if f.empty() {
            "None".to_string()
        } else {
            format!("Some({})", f.lo)
        };
        let _ = write!(o, "ApiKey::{} => {v},", a.name);
    }
    o.push_str("} }\n");
    o.push_str("/// The listeners the API is exposed on (`broker`, `controller`, `zkBroker`).\npub fn listeners(self) -> &'static [&'static str] { match self {");
    for a in &apis {
        let l: Vec<String> = a.listeners.iter().map(|x| format!("{x:?}")).collect();
        let _ = write!(o, "ApiKey::{} => &[{}],", a.name, l.join(", "));
    }
    o.push_str("} }\n");
    o.push_str("/// Whether the latest version is still marked unstable (`latestVersionUnstable`).\npub fn latest_version_unstable(self) -> bool { matches!(self, ");
    let unstable: Vec<String> = apis
        .iter()
        .filter(|a| a.unstable)
        .map(|a| format!("ApiKey::{}", a.name))
        .collect();
    if unstable.is_empty() {
        o.push_str("ApiKey::Produce if false");
    } else {
        o.push_str(&unstable.join(" | "));
    }
    o.push_str(") }\n}\n\n");

    // Request / Response enums.
    for (enum_name, is_req) in [("Request", true), ("Response", false)] {
        let _ = writeln!(
            o,
            "/// Any {} body, one variant per API.",
            enum_name.to_lowercase()
        );
        o.push_str("#[derive(Debug, Clone, PartialEq)]\n#[allow(clippy::large_enum_variant)]\n");
        let _ = writeln!(o, "pub enum {enum_name} {{");
        for a in &apis {
            let t = if is_req { &a.req } else { &a.resp };
            let _ = writeln!(o, "/// `{t}`.\n{}({t}),", a.name);
        }
        let _ = writeln!(o, "}}\n\nimpl {enum_name} {{");
        o.push_str(
            "/// The API this body belongs to.\npub fn api_key(&self) -> ApiKey { match self {",
        );
        for a in &apis {
            let _ = write!(o, "{enum_name}::{}(_) => ApiKey::{},", a.name, a.name);
        }
        o.push_str("} }\n");
        o.push_str("/// Decodes a body of the given API and version from `buf`.\npub fn decode(api_key: ApiKey, buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> { Ok(match api_key {");
        for a in &apis {
            let t = if is_req { &a.req } else { &a.resp };
            let _ = write!(
                o,
                "ApiKey::{} => {enum_name}::{}({t}::read(buf, version)?),",
                a.name, a.name
            );
        }
        o.push_str("}) }\n");
        o.push_str("/// The body with every field at its Kafka default.\npub fn default_for(api_key: ApiKey) -> Self { match api_key {");
        for a in &apis {
            let t = if is_req { &a.req } else { &a.resp };
            let _ = write!(
                o,
                "ApiKey::{} => {enum_name}::{}({t}::default()),",
                a.name, a.name
            );
        }
        o.push_str("} }\n");
        o.push_str("#[cfg(test)]\npub(crate) fn random(api_key: ApiKey, g: &mut crate::testgen::Gen, version: i16) -> Self { use crate::testgen::Random; match api_key {");
        for a in &apis {
            let t = if is_req { &a.req } else { &a.resp };
            let _ = write!(
                o,
                "ApiKey::{} => {enum_name}::{}({t}::random(g, version)),",
                a.name, a.name
            );
        }
        o.push_str("} }\n");
        o.push_str("}\n\n");
        let _ = writeln!(o, "impl crate::codec::WriteBody for {enum_name} {{");
        o.push_str("fn write_body<S: Sink>(&self, s: &mut S, version: i16) -> Result<(), EncodeError> { match self {");
        for a in &apis {
            let _ = write!(o, "{enum_name}::{}(m) => m.write(s, version),", a.name);
        }
        o.push_str("} }\n}\n\n");
        let _ = writeln!(o, "impl Encode for {enum_name} {{");
        o.push_str("fn encode(&self, buf: &mut bytes::BytesMut, version: i16) -> Result<(), EncodeError> { self.write_body(buf, version) }\n");
        o.push_str("fn encoded_size(&self, version: i16) -> Result<usize, EncodeError> { let mut c = crate::codec::SizeCounter::default(); self.write_body(&mut c, version)?; Ok(c.0) }\n}\n\n");
        for a in &apis {
            let t = if is_req { &a.req } else { &a.resp };
            let _ = writeln!(
                o,
                "impl From<{t}> for {enum_name} {{ fn from(m: {t}) -> Self {{ {enum_name}::{}(m) }} }}",
                a.name
            );
        }
    }
    for a in &apis {
        let _ = writeln!(
            o,
            "impl crate::codec::ApiMessage for {} {{ const API_KEY: ApiKey = ApiKey::{}; }}",
            a.req, a.name
        );
        let _ = writeln!(
            o,
            "impl crate::codec::ApiMessage for {} {{ const API_KEY: ApiKey = ApiKey::{}; }}",
            a.resp, a.name
        );
    }
    Ok(o)
}

fn emit_internal_mod(specs: &[Spec]) -> String {
    let mut o = String::new();
    o.push_str("//! Generated by potok-codegen from Kafka's internal record definitions\n");
    o.push_str("//! (`internal/group-coordinator`, `internal/metadata`, `internal/transaction-coordinator`);\n//! do not edit.\n//!\n");
    o.push_str("//! These are the key/value records of `__consumer_offsets` and `__transaction_state`, and\n//! the KRaft metadata records (`TopicRecord`, `PartitionRecord`, ...).\n\n");
    for s in specs {
        let _ = writeln!(o, "pub mod {};", s.module);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comments_but_not_slashes_in_strings() {
        let s = "{ // c\n \"a\": \"http://x\" // d\n}";
        let v: Value = serde_json::from_str(&strip_comments(s)).unwrap();
        assert_eq!(v["a"], "http://x");
    }

    #[test]
    fn snake_case() {
        assert_eq!(snake("ClientId"), "client_id");
        assert_eq!(snake("ISRNodes"), "isr_nodes");
        assert_eq!(snake("leaderEpoch"), "leader_epoch");
        assert_eq!(snake("TopicId"), "topic_id");
    }

    #[test]
    fn tags_as_numbers_or_strings() {
        let v: Value = serde_json::from_str(
            r#"{"fields": [
                {"name": "A", "type": "int8", "versions": "0+", "taggedVersions": "0+", "tag": 0},
                {"name": "B", "type": "int8", "versions": "0+", "taggedVersions": "0+", "tag": "2"}
            ]}"#,
        )
        .unwrap();
        let fields = parse_fields(&v, &mut Vec::new()).unwrap();
        assert_eq!(fields[0].tag, Some(0));
        assert_eq!(fields[1].tag, Some(2));
        let bad: Value = serde_json::from_str(
            r#"{"fields": [{"name": "C", "type": "int8", "versions": "0+", "taggedVersions": "0+"}]}"#,
        )
        .unwrap();
        assert!(parse_fields(&bad, &mut Vec::new()).is_err());
    }

    #[test]
    fn ranges() {
        let valid = Range::parse("0-12").unwrap();
        assert_eq!(cond(Range::parse("0+").unwrap(), valid), "true");
        assert_eq!(cond(Range::parse("3+").unwrap(), valid), "version >= 3");
        assert_eq!(cond(Range::parse("0-2").unwrap(), valid), "version <= 2");
        assert_eq!(cond(Range::parse("none").unwrap(), valid), "false");
        assert_eq!(
            cond(Range::parse("2-4").unwrap(), valid),
            "(2..=4).contains(&version)"
        );
    }
}
