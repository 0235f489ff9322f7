//! Emission of one message module: a struct per message and nested struct, with its `Wire`
//! implementation (encode, decode, minimum size) over every valid version.

use super::*;
/// Per-struct generation context.
pub(crate) struct Ctx<'a> {
    pub(crate) valid: Range,
    pub(crate) flexible: Range,
    pub(crate) owner: &'a str,
}

impl Ctx<'_> {
    pub(crate) fn nullable_any(&self, f: &Field) -> bool {
        matches!(f.ty, Ty::Prim(Prim::Records))
            || !f.nullable.and(f.versions).and(self.valid).empty()
    }
    pub(crate) fn rust_type(&self, f: &Field) -> String {
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
    pub(crate) fn is_option(&self, f: &Field) -> bool {
        self.rust_type(f).starts_with("Option<")
    }
    pub(crate) fn default_expr(&self, f: &Field) -> Result<String> {
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
    pub(crate) fn flex_expr(&self, f: &Field) -> String {
        match f.flex_override {
            None => "flex".into(),
            Some(r) => match cond(self.flexible.and(r), self.valid).as_str() {
                "true" => "flex".into(),
                "false" => "false".into(),
                c => format!("({c})"),
            },
        }
    }
    pub(crate) fn lit(&self, f: &Field) -> String {
        format!("\"{}.{}\"", self.owner, f.name)
    }

    /// Statements writing field `f` to sink expression `s`.
    pub(crate) fn write_code(&self, f: &Field, s: &str, flex: &str) -> String {
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
    pub(crate) fn read_code(&self, f: &Field, b: &str, flex: &str) -> String {
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

    pub(crate) fn random_code(&self, f: &Field) -> String {
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
    pub(crate) fn min_size_code(&self, f: &Field, flex: &str) -> String {
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

pub(crate) fn doc(out: &mut String, text: &str) {
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = writeln!(out, "/// {}", line.replace('[', "\\[").replace(']', "\\]"));
    }
}

pub(crate) fn range_text(r: Range) -> String {
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

pub(crate) fn emit_spec(spec: &Spec) -> Result<String> {
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

pub(crate) fn emit_struct(o: &mut String, spec: &Spec, st: &StructDef, top: bool) -> Result<()> {
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
