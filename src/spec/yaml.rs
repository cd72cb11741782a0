//! YAML text → a spanned node tree.
//!
//! serde-saphyr does the parsing (with budgets against alias bombs and deep nesting, and
//! duplicate-key detection); this module keeps every node's location so that every later
//! error (unknown key, bad unit, dangling reference…) can point at file:line:column.
//! The tree is only an intermediate step: it is decoded into the typed spec by
//! [`super::de`], never round-tripped through an untyped value that loses positions.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

use crate::diag::{Diagnostic, Span};

/// Largest spec file accepted. A host spec is a few KB; a generated one with 10,000 LVs is
/// about 1 MB. Anything far larger is a mistake (or an attack) and is refused before parsing.
pub const MAX_SPEC_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
}

impl Node {
    pub fn null(span: Span) -> Node {
        Node {
            kind: NodeKind::Null,
            span,
        }
    }

    /// What the node is, for "expected X, found Y" messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Overlay `over` on `self`: mappings merge key by key (recursively), anything else is
    /// replaced. Used for `vm-defaults` and templates. Each value keeps its own span, so an
    /// error in a value that came from a template points into the template.
    pub fn merged_with(&self, over: &Node) -> Node {
        match (&self.kind, &over.kind) {
            (NodeKind::Map(base), NodeKind::Map(top)) => {
                let mut out: Vec<(Key, Node)> = base.clone();
                for (k, v) in top {
                    if let Some(slot) = out.iter_mut().find(|(bk, _)| bk.name == k.name) {
                        slot.1 = slot.1.merged_with(v);
                        slot.0 = k.clone();
                    } else {
                        out.push((k.clone(), v.clone()));
                    }
                }
                Node {
                    kind: NodeKind::Map(out),
                    span: over.span,
                }
            }
            _ => over.clone(),
        }
    }
}

/// Intermediate shape filled by serde-saphyr; converted to [`Node`] with file-relative spans.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Raw;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_none<E>(self) -> Result<Raw, E> {
                Ok(Raw::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
                Raw::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
                Ok(Raw::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
                Ok(Raw::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
                Ok(Raw::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Raw, E> {
                i128::try_from(v)
                    .map(Raw::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
                Ok(Raw::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
                Ok(Raw::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Raw, E> {
                Ok(Raw::Str(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<Raw, E> {
                Err(E::custom(
                    "binary values (!!binary) are not allowed in a spec",
                ))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x)
                }
                Ok(Raw::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Raw, A::Error> {
                let mut v = Vec::new();
                while let Some(k) = a.next_key()? {
                    v.push((k, a.next_value()?))
                }
                Ok(Raw::Map(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn span_of(loc: &serde_saphyr::Location, file: u32) -> Span {
    let s = loc.span();
    Span {
        file,
        start: s.byte_offset().unwrap_or(0) as u32,
        len: s.byte_len().unwrap_or(0) as u32,
    }
}

fn convert(raw: Spanned<Raw>, file: u32) -> Node {
    let span = span_of(&raw.defined, file);
    let kind = match raw.value {
        Raw::Null => NodeKind::Null,
        Raw::Bool(b) => NodeKind::Bool(b),
        Raw::Int(i) => NodeKind::Int(i),
        Raw::Float(f) => NodeKind::Float(f),
        Raw::Str(s) => NodeKind::Str(s),
        Raw::Seq(v) => NodeKind::Seq(v.into_iter().map(|x| convert(x, file)).collect()),
        Raw::Map(v) => NodeKind::Map(
            v.into_iter()
                .map(|(k, val)| {
                    (
                        Key {
                            span: span_of(&k.defined, file),
                            name: k.value,
                        },
                        convert(val, file),
                    )
                })
                .collect(),
        ),
    };
    Node { kind, span }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_documents: 1,
            max_events: 20_000_000,
            max_nodes: 10_000_000,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_alias_expansions_per_anchor: 1_000,
        },
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
    }
}

/// Parse one YAML document. `text` must already be checked for size and UTF-8.
pub fn parse(text: &str, file: u32) -> Result<Node, Diagnostic> {
    if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Err(Diagnostic::error("the spec is empty")
            .at(Span {
                file,
                start: 0,
                len: 0,
            })
            .code("empty")
            .hint("a spec needs at least `host: NAME`; see docs/spec.md"));
    }
    match serde_saphyr::from_str_with_options::<Spanned<Raw>>(text, options()) {
        Ok(raw) => Ok(convert(raw, file)),
        Err(e) => Err(saphyr_error(&e, text, file)),
    }
}

fn saphyr_error(e: &serde_saphyr::Error, text: &str, file: u32) -> Diagnostic {
    let inner = e.without_snippet();
    let mut msg = inner.to_string();
    // serde-saphyr appends " at line L column C"; we show the location ourselves.
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    // Advice meant for programmers using the library, not for spec authors.
    if let Some(i) = msg.find(", set DuplicateKeyPolicy") {
        msg.truncate(i);
    }
    let lower = msg.to_lowercase();
    if lower.contains("documents") {
        return Diagnostic::error(
            "a spec holds one YAML document, but this file has more (a second `---`)",
        )
        .code("yaml-syntax")
        .at(Span {
            file,
            start: 0,
            len: 0,
        })
        .hint("put each host in its own file");
    }
    let (code, hint) = if lower.contains("duplicate") {
        (
            "duplicate-key",
            "each key may appear once in a mapping: remove or rename one of them",
        )
    } else if lower.contains("tabs ") {
        ("yaml-tab", "YAML forbids tabs for indentation: use spaces")
    } else if lower.contains("recursion") || lower.contains("depth") {
        (
            "yaml-budget",
            "the document is nested too deeply; a host spec never needs this",
        )
    } else if lower.contains("budget") || lower.contains("alias") {
        (
            "yaml-budget",
            "the document expands too many aliases; a host spec never needs this",
        )
    } else {
        (
            "yaml-syntax",
            "check the indentation and quoting around this position",
        )
    };
    let span = e
        .location()
        .map(|loc| {
            let start = loc
                .span()
                .byte_offset()
                .map(|b| b as usize)
                .unwrap_or_else(|| {
                    crate::diag::offset_of(text, loc.line() as usize, loc.column() as usize)
                });
            Span {
                file,
                start: start.min(text.len()) as u32,
                len: 0,
            }
        })
        .unwrap_or(Span {
            file,
            start: 0,
            len: 0,
        });
    Diagnostic::error(msg).at(span).code(code).hint(hint)
}
