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

/// Largest spec file accepted. A host spec is a few KB; a generated one with 50,000 LVs and
/// 10,000 guests is 5.5 MB. Anything larger is a mistake (or an attack) and is refused before
/// parsing. Together with [`MAX_NODES`] this keeps any input under 2 s and 200 MB.
pub const MAX_SPEC_BYTES: usize = 8 * 1024 * 1024;

/// Most YAML values (nodes) in one spec: the 50,000-LV, 10,000-guest spec has about 600,000.
pub const MAX_NODES: usize = 750_000;

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
        let mut out = self.clone();
        out.merge(over);
        out
    }

    /// [`Node::merged_with`] in place: what is overlaid is not copied again at each level of
    /// a template chain.
    pub fn merge(&mut self, over: &Node) {
        match (&mut self.kind, &over.kind) {
            (NodeKind::Map(base), NodeKind::Map(top)) => {
                for (k, v) in top {
                    if let Some(slot) = base.iter_mut().find(|(bk, _)| bk.name == k.name) {
                        slot.1.merge(v);
                        slot.0 = k.clone();
                    } else {
                        base.push((k.clone(), v.clone()));
                    }
                }
                self.span = over.span;
            }
            _ => *self = over.clone(),
        }
    }
}

/// Built directly by serde-saphyr: each child arrives wrapped in `Spanned` and takes its
/// span from it, so the tree is made in one pass. Spans get their file id afterwards.
impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeKind;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_none<E>(self) -> Result<NodeKind, E> {
                Ok(NodeKind::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<NodeKind, D::Error> {
                d.deserialize_any(V)
            }
            fn visit_bool<E>(self, v: bool) -> Result<NodeKind, E> {
                Ok(NodeKind::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<NodeKind, E> {
                Ok(NodeKind::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<NodeKind, E> {
                i128::try_from(v)
                    .map(NodeKind::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<NodeKind, E> {
                Ok(NodeKind::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<NodeKind, E> {
                Ok(NodeKind::Str(v))
            }
            // serde-saphyr hands `!!binary` scalars over as strings; raw bytes never
            // reach a spec, but refuse them should a parser version deliver them.
            fn visit_bytes<E: serde::de::Error>(self, _: &[u8]) -> Result<NodeKind, E> {
                Err(E::custom("binary values are not allowed in a spec"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<NodeKind, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
                while let Some(x) = a.next_element::<Spanned<Node>>()? {
                    v.push(spanned(x))
                }
                Ok(NodeKind::Seq(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<NodeKind, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    let key = Key {
                        span: span_of(&k.defined),
                        name: k.value,
                    };
                    v.push((key, spanned(a.next_value::<Spanned<Node>>()?)))
                }
                Ok(NodeKind::Map(v))
            }
        }
        d.deserialize_any(V).map(|kind| Node {
            kind,
            span: Span::default(),
        })
    }
}

fn spanned(x: Spanned<Node>) -> Node {
    let mut n = x.value;
    n.span = span_of(&x.defined);
    n
}

fn span_of(loc: &serde_saphyr::Location) -> Span {
    let s = loc.span();
    Span {
        file: 0,
        start: s.byte_offset().unwrap_or(0) as u32,
        len: s.byte_len().unwrap_or(0) as u32,
    }
}

/// Give every span of a freshly parsed tree its file id.
fn set_file(n: &mut Node, file: u32) {
    n.span.file = file;
    match &mut n.kind {
        NodeKind::Seq(v) => v.iter_mut().for_each(|c| set_file(c, file)),
        NodeKind::Map(v) => v.iter_mut().for_each(|(k, c)| {
            k.span.file = file;
            set_file(c, file)
        }),
        _ => {}
    }
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_depth: 64,
            max_aliases: 10_000,
            max_anchors: 10_000,
            max_documents: 1,
            max_events: 3_000_000,
            max_nodes: MAX_NODES,
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
    match serde_saphyr::from_str_with_options::<Spanned<Node>>(text, options()) {
        Ok(root) => {
            let mut root = spanned(root);
            if file != 0 {
                set_file(&mut root, file);
            }
            Ok(root)
        }
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
    if lower.contains("nodes {") || lower.contains("events {") {
        return Diagnostic::error(format!(
            "the spec is too large: more than {MAX_NODES} YAML values"
        ))
        .code("yaml-budget")
        .at(Span {
            file,
            start: 0,
            len: 0,
        })
        .hint("split the hosts into one spec each; a 50,000-LV host needs about 600,000");
    }
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
