//! Decoding the spanned node tree into typed spec structs, through serde.
//!
//! Unlike deserializing straight from text, decoding from the tree lets us keep going after
//! an error: unknown keys are all reported (with "did you mean"), and each resource is
//! decoded on its own by the loader, so one run reports the errors of every resource.
//! Every error carries the span of the node it is about.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::fmt;

use super::yaml::{Node, NodeKind};
use crate::diag::{Diagnostic, Sources, Span, did_you_mean};

/// A decoded value with the place it came from. Compares, orders and hashes by value only,
/// so it can key a map; serializes as the bare value.
#[derive(Clone, Copy, Default)]
pub struct Sp<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Sp<T> {
    pub fn new(value: T, span: Span) -> Self {
        Sp { value, span }
    }
    /// A value that did not come from a source file (defaults, discovered state).
    pub fn bare(value: T) -> Self {
        Sp {
            value,
            span: Span::default(),
        }
    }
}

impl<T> std::ops::Deref for Sp<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}
impl<T: fmt::Debug> fmt::Debug for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}
impl<T: fmt::Display> fmt::Display for Sp<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}
impl<T: PartialEq> PartialEq for Sp<T> {
    fn eq(&self, o: &Self) -> bool {
        self.value == o.value
    }
}
impl<T: Eq> Eq for Sp<T> {}
impl<T: PartialOrd> PartialOrd for Sp<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&o.value)
    }
}
impl<T: Ord> Ord for Sp<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.value.cmp(&o.value)
    }
}
impl<T: std::hash::Hash> std::hash::Hash for Sp<T> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.value.hash(h)
    }
}
impl std::borrow::Borrow<str> for Sp<String> {
    fn borrow(&self) -> &str {
        &self.value
    }
}
impl<T: serde::Serialize> serde::Serialize for Sp<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}
impl<T: schemars::JsonSchema> schemars::JsonSchema for Sp<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}

const SPANNED: &str = "$hostform::Sp";
const SPAN_KEY: &str = "$span";
const VALUE_KEY: &str = "$value";

impl<'de, T: de::Deserialize<'de>> de::Deserialize<'de> for Sp<T> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: de::Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Sp<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            // Any deserializer but ours: no position known.
            fn visit_newtype_struct<D: de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<Sp<T>, D::Error> {
                T::deserialize(d).map(Sp::bare)
            }
            // Ours: a two-entry map, span then value.
            fn visit_map<A: de::MapAccess<'de>>(self, mut m: A) -> Result<Sp<T>, A::Error> {
                let _k: Option<String> = m.next_key()?;
                let (file, start, len): (u32, u32, u32) = m.next_value()?;
                let _k: Option<String> = m.next_key()?;
                let value = m.next_value()?;
                Ok(Sp {
                    value,
                    span: Span { file, start, len },
                })
            }
        }
        d.deserialize_newtype_struct(SPANNED, V(std::marker::PhantomData))
    }
}

/// Decoding error. `Reported` means the error has already been pushed into the sink.
#[derive(Debug)]
pub enum Error {
    Reported,
    Message {
        msg: String,
        hint: Option<String>,
        span: Option<Span>,
    },
}

impl Error {
    fn at(self, span: Span) -> Self {
        match self {
            Error::Message {
                msg,
                hint,
                span: None,
            } => Error::Message {
                msg,
                hint,
                span: Some(span),
            },
            e => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Reported => f.write_str("(reported)"),
            Error::Message { msg, .. } => f.write_str(msg),
        }
    }
}
impl std::error::Error for Error {}

impl de::Error for Error {
    /// A custom message may carry a hint after a "\nhint: " separator.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let msg = msg.to_string();
        let (msg, hint) = match msg.split_once("\nhint: ") {
            Some((m, h)) => (m.to_string(), Some(h.to_string())),
            None => (msg, None),
        };
        Error::Message {
            msg,
            hint,
            span: None,
        }
    }
    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Error::Message {
            msg: format!("unknown value `{variant}`"),
            hint: Some(match did_you_mean(variant, expected.iter().copied()) {
                Some(h) => format!("{h} (one of: {})", expected.join(", ")),
                None => format!("expected one of: {}", expected.join(", ")),
            }),
            span: None,
        }
    }
    fn missing_field(field: &'static str) -> Self {
        Error::Message {
            msg: format!("missing required key `{field}`"),
            hint: Some(format!("add `{field}:` here; see docs/spec.md")),
            span: None,
        }
    }
}

/// Collects diagnostics while decoding; shared by all the nodes of one decode.
pub struct Decoder<'a> {
    pub sources: &'a Sources,
    errors: RefCell<Vec<Diagnostic>>,
}

impl<'a> Decoder<'a> {
    pub fn new(sources: &'a Sources) -> Self {
        Decoder {
            sources,
            errors: RefCell::new(Vec::new()),
        }
    }

    /// Decode one node; on failure the errors are in the sink and `None` is returned.
    pub fn decode<T: de::DeserializeOwned>(&self, node: &Node) -> Option<T> {
        let before = self.errors.borrow().len();
        match T::deserialize(NodeDe { node, dec: self }) {
            Ok(v) if self.errors.borrow().len() == before => Some(v),
            Ok(_) => None,
            Err(e) => {
                self.report(e.at(node.span));
                None
            }
        }
    }

    fn report(&self, e: Error) {
        if let Error::Message { msg, hint, span } = e {
            let mut d = Diagnostic::error(msg).code("invalid").maybe_hint(hint);
            if let Some(s) = span {
                d = d.at(s);
            }
            self.errors.borrow_mut().push(d);
        }
    }

    pub fn push(&self, d: Diagnostic) {
        self.errors.borrow_mut().push(d);
    }

    pub fn into_errors(self) -> Vec<Diagnostic> {
        self.errors.into_inner()
    }

    /// The raw source text of a scalar (so `0755` or `1.10` read as a string stays as
    /// written).
    fn raw(&self, node: &Node) -> String {
        let t = self.sources.text(node.span);
        if !t.is_empty() {
            return t.trim_matches(|c| c == '"' || c == '\'').to_string();
        }
        match &node.kind {
            NodeKind::Bool(b) => b.to_string(),
            NodeKind::Int(i) => i.to_string(),
            NodeKind::Float(f) => f.to_string(),
            NodeKind::Str(s) => s.clone(),
            _ => String::new(),
        }
    }
}

/// Friendly names of spec structs, for messages.
fn friendly(name: &str) -> String {
    match name {
        "Lv" => "logical volume",
        "ThinPool" => "thin pool",
        "ThinLv" => "thin LV",
        "Vm" => "guest",
        "VmDisk" => "guest disk",
        "VmNic" => "guest NIC",
        "VolumeGroup" => "volume group",
        "Boot" => "boot settings",
        "Root" => "root settings",
        "XenSettings" => "xen settings",
        "LibvirtSettings" => "libvirt settings",
        "Network" => "network settings",
        "Shutdown" => "shutdown settings",
        other => return other.to_lowercase(),
    }
    .to_string()
}

struct NodeDe<'a, 'b> {
    node: &'a Node,
    dec: &'b Decoder<'b>,
}

impl<'a, 'b> NodeDe<'a, 'b> {
    fn unexpected(&self, what: &str) -> Error {
        let found = match &self.node.kind {
            NodeKind::Str(s) => format!("the string `{s}`"),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                format!("{} `{}`", self.node.describe(), self.dec.raw(self.node))
            }
            _ => self.node.describe().to_string(),
        };
        Error::Message {
            msg: format!("expected {what}, found {found}"),
            hint: None,
            span: Some(self.node.span),
        }
    }

    fn int(&self) -> Result<i128, Error> {
        match self.node.kind {
            NodeKind::Int(i) => Ok(i),
            _ => Err(self.unexpected("an integer")),
        }
    }
}

macro_rules! de_int {
    ($name:ident, $visit:ident, $t:ty) => {
        fn $name<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
            let i = self.int()?;
            let n = <$t>::try_from(i).map_err(|_| Error::Message {
                msg: format!("{i} is out of range ({} to {})", <$t>::MIN, <$t>::MAX),
                hint: None,
                span: Some(self.node.span),
            })?;
            v.$visit(n).map_err(|e: Error| e.at(self.node.span))
        }
    };
}

impl<'de, 'a, 'b> de::Deserializer<'de> for NodeDe<'a, 'b> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        let span = self.node.span;
        match &self.node.kind {
            NodeKind::Null => v.visit_unit(),
            NodeKind::Bool(b) => v.visit_bool(*b),
            NodeKind::Int(i) => match i64::try_from(*i) {
                Ok(x) => v.visit_i64(x),
                Err(_) => v.visit_i128(*i),
            },
            NodeKind::Float(f) => v.visit_f64(*f),
            NodeKind::Str(s) => v.visit_str(s),
            NodeKind::Seq(items) => v.visit_seq(SeqDe {
                items: items.iter(),
                dec: self.dec,
            }),
            NodeKind::Map(_) => return self.deserialize_map(v),
        }
        .map_err(|e: Error| e.at(span))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Bool(b) => v.visit_bool(b).map_err(|e: Error| e.at(self.node.span)),
            _ => Err(self.unexpected("true or false")),
        }
    }

    de_int!(deserialize_i8, visit_i8, i8);
    de_int!(deserialize_i16, visit_i16, i16);
    de_int!(deserialize_i32, visit_i32, i32);
    de_int!(deserialize_i64, visit_i64, i64);
    de_int!(deserialize_u8, visit_u8, u8);
    de_int!(deserialize_u16, visit_u16, u16);
    de_int!(deserialize_u32, visit_u32, u32);
    de_int!(deserialize_u64, visit_u64, u64);

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_f64(v)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Float(f) => v.visit_f64(f),
            NodeKind::Int(i) => v.visit_f64(i as f64),
            _ => return Err(self.unexpected("a number")),
        }
        .map_err(|e: Error| e.at(self.node.span))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Str(s) => v.visit_str(s),
            NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => {
                v.visit_string(self.dec.raw(self.node))
            }
            _ => return Err(self.unexpected("a string")),
        }
        .map_err(|e: Error| e.at(self.node.span))
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
        Err(self.unexpected("bytes"))
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _v: V) -> Result<V::Value, Error> {
        Err(self.unexpected("bytes"))
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Null => v.visit_none(),
            _ => v.visit_some(self),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match self.node.kind {
            NodeKind::Null => v.visit_unit(),
            _ => Err(self.unexpected("nothing")),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _n: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_unit(v)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, Error> {
        if name == SPANNED {
            return v.visit_map(SpanAccess {
                node: self.node,
                dec: self.dec,
                step: 0,
            });
        }
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Seq(items) => v
                .visit_seq(SeqDe {
                    items: items.iter(),
                    dec: self.dec,
                })
                .map_err(|e: Error| e.at(self.node.span)),
            _ => Err(self.unexpected("a list")),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _l: usize, v: V) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _n: &'static str,
        _l: usize,
        v: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Map(entries) => v
                .visit_map(MapDe {
                    entries: entries.iter(),
                    value: None,
                    dec: self.dec,
                    fields: None,
                    what: String::new(),
                })
                .map_err(|e: Error| e.at(self.node.span)),
            _ => Err(self.unexpected("a mapping")),
        }
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        match &self.node.kind {
            NodeKind::Map(entries) => v
                .visit_map(MapDe {
                    entries: entries.iter(),
                    value: None,
                    dec: self.dec,
                    fields: Some(fields),
                    what: friendly(name),
                })
                .map_err(|e: Error| e.at(self.node.span)),
            _ => Err(self.unexpected(&format!("a mapping ({})", friendly(name)))),
        }
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        let span = self.node.span;
        match &self.node.kind {
            NodeKind::Str(_) | NodeKind::Int(_) | NodeKind::Bool(_) | NodeKind::Float(_) => {
                let s = match &self.node.kind {
                    NodeKind::Str(s) => s.clone(),
                    _ => self.dec.raw(self.node),
                };
                v.visit_enum(s.into_deserializer())
                    .map_err(|e: Error| e.at(span))
            }
            NodeKind::Map(entries) if entries.len() == 1 => {
                let (k, val) = &entries[0];
                v.visit_enum(EnumDe {
                    key: k,
                    value: val,
                    dec: self.dec,
                })
                .map_err(|e: Error| e.at(span))
            }
            _ => Err(Error::Message {
                msg: format!(
                    "expected one of: {}, found {}",
                    variants.join(", "),
                    self.node.describe()
                ),
                hint: None,
                span: Some(span),
            }),
        }
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        self.deserialize_str(v)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Error> {
        v.visit_unit()
    }
}

struct SeqDe<'a, 'b> {
    items: std::slice::Iter<'a, Node>,
    dec: &'b Decoder<'b>,
}

impl<'de, 'a, 'b> de::SeqAccess<'de> for SeqDe<'a, 'b> {
    type Error = Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        match seed.deserialize(NodeDe {
            node,
            dec: self.dec,
        }) {
            Ok(v) => Ok(Some(v)),
            Err(e) => {
                self.dec.report(e.at(node.span));
                Err(Error::Reported)
            }
        }
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct MapDe<'a, 'b> {
    entries: std::slice::Iter<'a, (super::yaml::Key, Node)>,
    value: Option<&'a Node>,
    dec: &'b Decoder<'b>,
    /// For structs: the known keys. Unknown ones are reported (all of them) and skipped.
    fields: Option<&'static [&'static str]>,
    what: String,
}

impl<'de, 'a, 'b> de::MapAccess<'de> for MapDe<'a, 'b> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        loop {
            let Some((key, value)) = self.entries.next() else {
                return Ok(None);
            };
            if let Some(fields) = self.fields
                && !fields.contains(&key.name.as_str())
            {
                let hint = did_you_mean(&key.name, fields.iter().copied())
                    .unwrap_or_else(|| format!("valid keys here: {}", fields.join(", ")));
                self.dec.push(
                    Diagnostic::error(format!("unknown key `{}` in {}", key.name, self.what))
                        .code("unknown-key")
                        .at(key.span)
                        .hint(hint),
                );
                continue;
            }
            self.value = Some(value);
            let knode = Node {
                kind: NodeKind::Str(key.name.clone()),
                span: key.span,
            };
            return seed
                .deserialize(NodeDe {
                    node: &knode,
                    dec: self.dec,
                })
                .map(Some)
                .map_err(|e: Error| e.at(key.span));
        }
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let Some(node) = self.value.take() else {
            return Err(Error::Reported);
        };
        seed.deserialize(NodeDe {
            node,
            dec: self.dec,
        })
        .map_err(|e| {
            self.dec.report(e.at(node.span));
            Error::Reported
        })
    }
}

/// Presents a node as the `{ $span, $value }` map that [`Sp`] reads.
struct SpanAccess<'a, 'b> {
    node: &'a Node,
    dec: &'b Decoder<'b>,
    step: u8,
}

impl<'de, 'a, 'b> de::MapAccess<'de> for SpanAccess<'a, 'b> {
    type Error = Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let key = match self.step {
            0 => SPAN_KEY,
            1 => VALUE_KEY,
            _ => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        self.step += 1;
        if self.step == 1 {
            let s = self.node.span;
            seed.deserialize(de::value::SeqDeserializer::<_, Error>::new(
                [s.file, s.start, s.len].into_iter(),
            ))
        } else {
            seed.deserialize(NodeDe {
                node: self.node,
                dec: self.dec,
            })
        }
    }
}

struct EnumDe<'a, 'b> {
    key: &'a super::yaml::Key,
    value: &'a Node,
    dec: &'b Decoder<'b>,
}

impl<'de, 'a, 'b> de::EnumAccess<'de> for EnumDe<'a, 'b> {
    type Error = Error;
    type Variant = NodeDe<'a, 'b>;
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), Error> {
        let v = seed
            .deserialize(self.key.name.as_str().into_deserializer())
            .map_err(|e: Error| e.at(self.key.span))?;
        Ok((
            v,
            NodeDe {
                node: self.value,
                dec: self.dec,
            },
        ))
    }
}

impl<'de, 'a, 'b> de::VariantAccess<'de> for NodeDe<'a, 'b> {
    type Error = Error;
    fn unit_variant(self) -> Result<(), Error> {
        match self.node.kind {
            NodeKind::Null => Ok(()),
            _ => Err(self.unexpected("nothing")),
        }
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Error> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, v: V) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_seq(self, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Error> {
        de::Deserializer::deserialize_struct(self, "", fields, v)
    }
}
