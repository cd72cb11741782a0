//! Loading a spec: read (file or git), parse, decode each resource on its own (so one run
//! reports every error), expand includes, templates and `like`, then validate.

use indexmap::IndexMap;
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::de::{Decoder, Sp};
use super::source::Reader;
use super::types::*;
use super::yaml::{self, Key, Node, NodeKind};
use crate::diag::{Diagnostic, Sources, Span, did_you_mean};

/// A spec that loaded and validated.
#[derive(Debug)]
pub struct Loaded {
    /// The resolved spec: includes, `vm-defaults`, templates and `like` applied.
    pub spec: Spec,
    pub sources: Sources,
    /// `specs/dom0.yaml @ 1a2b3c4 (modified)`.
    pub label: String,
    /// The spec's path relative to `root`.
    pub rel: String,
    /// The repository's work tree, or the spec's directory outside git: where relative paths
    /// (includes, images) are resolved and cannot escape from.
    pub root: std::path::PathBuf,
    /// Full commit id when the spec came from git.
    pub commit: Option<String>,
    pub warnings: Vec<Diagnostic>,
}

/// A spec that did not load: every problem found, and the sources to show them against.
#[derive(Debug)]
pub struct Failed {
    pub label: String,
    /// Full commit id when the spec came from git.
    pub commit: Option<String>,
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
}

const SECTIONS: &[&str] = &[
    "version",
    "host",
    "include",
    "root",
    "disks",
    "arrays",
    "volume-groups",
    "network",
    "bridges",
    "xen",
    "libvirt",
    "vm-defaults",
    "vm-templates",
    "vms",
    "shutdown",
    "cluster",
];

/// Sections an included file may hold besides `vm-templates` and `vm-defaults`: the cluster's
/// description, written once for every host. Their entries join the host's own; a name given
/// twice is an error.
const SHARED_SECTIONS: &[&str] = &["cluster", "disks", "volume-groups", "vms"];

/// Moves the shared sections of the included files into the spec's own tree.
fn merge_included(root: &mut Node, fragments: &[(String, Node)], dec: &Decoder) {
    let NodeKind::Map(top) = &mut root.kind else {
        return;
    };
    for (_, frag) in fragments {
        for (k, v) in frag.as_map().unwrap_or_default() {
            if !SHARED_SECTIONS.contains(&k.name.as_str()) {
                continue;
            }
            let Some(i) = top.iter().position(|(tk, _)| tk.name == k.name) else {
                top.push((k.clone(), v.clone()));
                continue;
            };
            if k.name == "cluster" {
                dec.push(
                    Diagnostic::error("`cluster` is given twice")
                        .code("duplicate")
                        .at(k.span)
                        .related(top[i].0.span, "also given here"),
                );
                continue;
            }
            let own = &mut top[i].1;
            if matches!(own.kind, NodeKind::Null) {
                own.kind = NodeKind::Map(Vec::new());
            }
            let (NodeKind::Map(mine), Some(theirs)) = (&mut own.kind, v.as_map()) else {
                continue;
            };
            for (ek, ev) in theirs {
                if let Some((prev, _)) = mine.iter().find(|(mk, _)| mk.name == ek.name) {
                    let what = match k.name.as_str() {
                        "vms" => "guest",
                        "disks" => "disk",
                        _ => "volume group",
                    };
                    dec.push(
                        Diagnostic::error(format!("{what} `{}` is defined twice", ek.name))
                            .code("duplicate")
                            .at(ek.span)
                            .related(prev.span, "also defined here")
                            .hint("a cluster's shared VGs and guests are written once, in the included file; a guest runs on the host its `runs-on` names"),
                    );
                    continue;
                }
                mine.push((ek.clone(), ev.clone()));
            }
        }
    }
}

/// Names of resources that are in the spec but failed to decode (their errors are already
/// reported), so that they do not also produce "dangling reference" errors where they are used.
#[derive(Debug, Default)]
pub struct Broken {
    pub disks: BTreeSet<String>,
    pub partitions: BTreeSet<String>,
    pub arrays: BTreeSet<String>,
    pub vgs: BTreeSet<String>,
    pub lvs: BTreeSet<String>,
    pub bridges: BTreeSet<String>,
    pub vms: BTreeSet<String>,
}

/// The key a plan saved by `plan --out` starts with (`workflow::saved` writes it): a file that
/// has it is refused as a spec with a hint, not with YAML errors.
pub const SAVED_PLAN_MAGIC: &str = "hostform-saved-plan";

/// Whether a file's text is (or was meant to be) a saved plan rather than a spec.
pub fn looks_saved(text: &str) -> bool {
    let t = text.trim_start();
    t.starts_with('{')
        && t.chars()
            .take(200)
            .collect::<String>()
            .contains(&format!("\"{SAVED_PLAN_MAGIC}\""))
}

pub fn load(path: &Path, rev: Option<&str>) -> Result<Loaded, Failed> {
    let fail = |label: String, msg: String| {
        let (msg, hint) = match msg.split_once("\nhint: ") {
            Some((m, h)) => (m.to_string(), Some(h.to_string())),
            None => (msg, None),
        };
        Failed {
            label,
            commit: None,
            sources: Sources::default(),
            diagnostics: vec![Diagnostic::error(msg).code("read").maybe_hint(hint)],
        }
    };
    let shown = path.display().to_string();
    let (reader, rel) = Reader::open(path, rev).map_err(|m| fail(shown.clone(), m))?;
    let main = reader
        .read(&rel)
        .map_err(|m| fail(shown.clone(), m.replacen(&rel, &shown, 1)))?;
    // A plan saved by `plan --out` given where a spec is expected: say so, not YAML errors.
    if looks_saved(&main.text) {
        return Err(Failed {
            label: shown.clone(),
            commit: reader.commit(),
            sources: Sources::default(),
            diagnostics: vec![
                Diagnostic::error("this is a saved plan: use show or apply")
                    .code("saved-plan")
                    .hint(format!(
                        "`hostform show {shown}` prints it, `hostform apply {shown}` runs it"
                    )),
            ],
        });
    }
    // In a repository, files are shown from its root; elsewhere as the user typed them.
    let display = if reader.in_git() {
        main.rel.clone()
    } else {
        shown.clone()
    };
    let label = format!("{display}{}", main.suffix);
    let mut sources = Sources::default();
    let file = sources.add(display, main.text);
    let root = match yaml::parse(&sources.files[file as usize].text, file) {
        Ok(n) => n,
        Err(d) => {
            return Err(Failed {
                label,
                commit: reader.commit(),
                sources,
                diagnostics: vec![d],
            });
        }
    };

    // Included fragments are parsed into the same source table.
    let mut fragments: Vec<(String, Node)> = Vec::new();
    let mut early: Vec<Diagnostic> = Vec::new();
    if let Some(inc) = root.get("include")
        && let NodeKind::Seq(items) = &inc.kind
    {
        for item in items {
            let Some(p) = item.as_str() else { continue };
            let target = match reader.join(&rel, p) {
                Ok(t) => t,
                Err(m) => {
                    early.push(
                        Diagnostic::error(format!("include {m}"))
                            .code("path-escape")
                            .at(item.span)
                            .hint("includes must be relative paths inside the spec repository"),
                    );
                    continue;
                }
            };
            match reader.read_include(&target) {
                Ok(t) => {
                    let id = sources.add(t.rel.clone(), t.text);
                    match yaml::parse(&sources.files[id as usize].text, id) {
                        Ok(n) => fragments.push((t.rel, n)),
                        Err(d) => early.push(d),
                    }
                }
                Err(m) => {
                    let (m, h) = match m.split_once("\nhint: ") {
                        Some((m, h)) => (m.to_string(), Some(h.to_string())),
                        None => (m, None),
                    };
                    early.push(
                        Diagnostic::error(m)
                            .code("include")
                            .at(item.span)
                            .maybe_hint(h),
                    )
                }
            }
        }
    }

    let mut loaded = finish(root, fragments, early, sources, Some(&reader), label, rel)?;
    // Inside a sandbox VM, the spec it was shaped from: capacities divided as its disks were,
    // the parts the sandbox cannot host left out, and the label (every plan's header) says so.
    let sandboxed = super::sandboxed::Sandboxed::from_env(path);
    if sandboxed != super::sandboxed::Sandboxed::default() {
        let (spec, label) = sandboxed.apply(loaded.spec, loaded.label);
        (loaded.spec, loaded.label) = (spec, label);
    }
    Ok(loaded)
}

/// Decode, expand and validate a parsed spec; split errors from warnings.
fn finish(
    root: Node,
    fragments: Vec<(String, Node)>,
    early: Vec<Diagnostic>,
    sources: Sources,
    reader: Option<&Reader>,
    label: String,
    rel: String,
) -> Result<Loaded, Failed> {
    let dec = Decoder::new(&sources);
    for d in early {
        dec.push(d);
    }
    let mut cc = Vec::new();
    control_chars(&root, &mut cc);
    for (_, f) in &fragments {
        control_chars(f, &mut cc);
    }
    for d in cc {
        dec.push(d);
    }
    let mut broken = Broken::default();
    let mut root = root;
    merge_included(&mut root, &fragments, &dec);
    let spec = decode(&root, &fragments, &dec, &mut broken);
    if let (Some(spec), Some(reader)) = (&spec, reader) {
        check_images(spec, reader, &rel, &dec);
    }
    let mut diagnostics = dec.into_errors();
    let spec = spec.map(|mut s| {
        expand_like(&mut s, &mut diagnostics);
        diagnostics.extend(super::validate::validate(&s, &broken));
        s.place_guests();
        s
    });
    dedup(&mut diagnostics);
    let (errors, warnings): (Vec<_>, Vec<_>) =
        diagnostics.into_iter().partition(Diagnostic::is_error);
    match spec {
        Some(spec) if errors.is_empty() => Ok(Loaded {
            spec,
            sources,
            label,
            rel,
            root: reader
                .map(|r| r.root.clone())
                .or_else(|| std::env::current_dir().ok())
                .unwrap_or_default(),
            commit: reader.and_then(Reader::commit),
            warnings,
        }),
        _ => Err(Failed {
            label,
            commit: reader.and_then(Reader::commit),
            sources,
            diagnostics: errors.into_iter().chain(warnings).collect(),
        }),
    }
}

/// Control characters (ESC, CR, tab, newline and the rest of C0 and C1, DEL) in any key or
/// string of the spec: they reach plan text, diagnostics and config files, where they can hide
/// lines from a reviewer's terminal or add lines to a config. Refused everywhere.
fn control_chars(n: &Node, out: &mut Vec<Diagnostic>) {
    let bad = |s: &str, span: Span, out: &mut Vec<Diagnostic>| {
        if let Some(c) = s.chars().find(|c| c.is_control()) {
            out.push(
                Diagnostic::error(format!(
                    "`{}` contains the control character {}",
                    crate::diag::visible(s),
                    c.escape_default()
                ))
                .code("control-char")
                .at(span)
                .hint("remove it: spec strings are printed in plans and written to config files"),
            );
        }
    };
    match &n.kind {
        NodeKind::Str(s) => bad(s, n.span, out),
        NodeKind::Seq(items) => items.iter().for_each(|i| control_chars(i, out)),
        NodeKind::Map(entries) => {
            for (k, v) in entries {
                bad(&k.name, k.span, out);
                control_chars(v, out);
            }
        }
        _ => {}
    }
}

/// Parse and validate a spec held in memory (tests, benchmarks, fuzzing).
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Failed> {
    let mut sources = Sources::default();
    let file = sources.add(name, text.to_string());
    let root = match yaml::parse(text, file) {
        Ok(n) => n,
        Err(d) => {
            return Err(Failed {
                label: name.into(),
                commit: None,
                sources,
                diagnostics: vec![d],
            });
        }
    };
    finish(
        root,
        Vec::new(),
        Vec::new(),
        sources,
        None,
        name.into(),
        name.into(),
    )
}

fn dedup(diags: &mut Vec<Diagnostic>) {
    let mut seen = BTreeSet::new();
    diags.retain(|d| seen.insert((d.span, d.message.clone())));
    diags.sort_by_key(|d| (d.span.map(|s| (s.file, s.start)), d.severity));
}

/// Decode each entry of a mapping section on its own.
fn entries<T: serde::de::DeserializeOwned>(
    node: &Node,
    section: &str,
    dec: &Decoder,
    names: &mut BTreeSet<String>,
) -> IndexMap<Sp<String>, T> {
    let mut out = IndexMap::new();
    let Some(map) = node.as_map() else {
        if !matches!(node.kind, NodeKind::Null) {
            dec.push(
                Diagnostic::error(format!(
                    "`{section}` must be a mapping of names to {section}, found {}",
                    node.describe()
                ))
                .code("invalid")
                .at(node.span),
            );
        }
        return out;
    };
    for (key, value) in map {
        match dec.decode::<T>(value) {
            Some(v) => {
                out.insert(Sp::new(key.name.clone(), key.span), v);
            }
            None => {
                names.insert(key.name.clone());
            }
        }
    }
    out
}

fn without(node: &Node, drop: &[&str]) -> Node {
    match &node.kind {
        NodeKind::Map(m) => Node {
            kind: NodeKind::Map(
                m.iter()
                    .filter(|(k, _)| !drop.contains(&k.name.as_str()))
                    .cloned()
                    .collect(),
            ),
            span: node.span,
        },
        _ => node.clone(),
    }
}

fn decode(
    root: &Node,
    fragments: &[(String, Node)],
    dec: &Decoder,
    broken: &mut Broken,
) -> Option<Spec> {
    let Some(map) = root.as_map() else {
        dec.push(
            Diagnostic::error(format!(
                "a spec must be a mapping, found {}",
                root.describe()
            ))
            .code("invalid")
            .at(root.span)
            .hint("start with `host: NAME`; see docs/spec.md"),
        );
        return None;
    };
    let mut spec = Spec::default();
    let mut host_seen = false;
    let mut vm_defaults: Option<&Node> = None;
    let mut templates: Vec<(&Key, &Node)> = Vec::new();
    let mut vms: Option<&Node> = None;
    for (key, value) in map {
        match key.name.as_str() {
            "version" => {
                if let Some(v) = dec.decode::<Sp<u32>>(value) {
                    if v.value != 1 {
                        dec.push(
                            Diagnostic::error(format!("unsupported spec version {}", v.value))
                                .code("version")
                                .at(v.span)
                                .hint("this hostform understands version 1"),
                        );
                    }
                    spec.version = Some(v.value);
                }
            }
            "host" => {
                host_seen = true;
                if let Some(h) = dec.decode(value) {
                    spec.host = h;
                }
            }
            "include" => spec.include = dec.decode(value).unwrap_or_default(),
            "root" => spec.root = dec.decode(value).unwrap_or_default(),
            "network" => spec.network = dec.decode(value).unwrap_or_default(),
            "xen" => spec.xen = dec.decode(value).unwrap_or_default(),
            "libvirt" => spec.libvirt = dec.decode(value).unwrap_or_default(),
            "shutdown" => spec.shutdown = dec.decode(value).unwrap_or_default(),
            "cluster" => spec.cluster = dec.decode(value),
            "disks" => {
                spec.disks = entries(value, "disks", dec, &mut broken.disks);
                for (d, n) in value.as_map().unwrap_or_default() {
                    if !broken.disks.contains(&d.name) {
                        continue;
                    }
                    if let Some(NodeKind::Seq(parts)) = n.get("partitions").map(|p| &p.kind) {
                        for p in parts {
                            if let Some(pn) = p.get("name").and_then(Node::as_str) {
                                broken.partitions.insert(format!("{}/{pn}", d.name));
                            }
                        }
                    }
                }
            }
            "arrays" => spec.arrays = entries(value, "arrays", dec, &mut broken.arrays),
            "bridges" => spec.bridges = entries(value, "bridges", dec, &mut broken.bridges),
            "volume-groups" => {
                spec.volume_groups = volume_groups(value, dec, broken);
            }
            "vm-defaults" => vm_defaults = Some(value),
            "vm-templates" => match value.as_map() {
                Some(m) => templates.extend(m.iter().map(|(k, v)| (k, v))),
                None => dec.push(
                    Diagnostic::error(
                        "`vm-templates` must be a mapping of template names to VM fields",
                    )
                    .code("invalid")
                    .at(value.span),
                ),
            },
            "vms" => vms = Some(value),
            other => dec.push(
                Diagnostic::error(format!("unknown key `{other}` at the top of the spec"))
                    .code("unknown-key")
                    .at(key.span)
                    .hint(
                        did_you_mean(other, SECTIONS.iter().copied())
                            .unwrap_or_else(|| format!("valid keys here: {}", SECTIONS.join(", "))),
                    ),
            ),
        }
    }
    if !host_seen {
        dec.push(
            Diagnostic::error("missing required key `host`")
                .code("invalid")
                .at(Span {
                    file: root.span.file,
                    start: 0,
                    len: 0,
                })
                .hint("name the host this spec describes: `host: dom0`"),
        );
    }

    // Fragments from `include:` bring templates and defaults.
    let mut defaults: Option<Node> = None;
    let mut all_templates: BTreeMap<String, (Key, Node)> = BTreeMap::new();
    for (path, frag) in fragments {
        let Some(m) = frag.as_map() else {
            dec.push(
                Diagnostic::error(format!("included file {path} must be a mapping"))
                    .code("include")
                    .at(frag.span),
            );
            continue;
        };
        for (k, v) in m {
            match k.name.as_str() {
                "vm-defaults" => {
                    defaults = Some(match defaults {
                        Some(base) => base.merged_with(v),
                        None => v.clone(),
                    })
                }
                "vm-templates" => {
                    for (tk, tv) in v.as_map().unwrap_or_default() {
                        if let Some((prev, _)) = all_templates.get(&tk.name) {
                            dec.push(
                                Diagnostic::error(format!(
                                    "template `{}` is defined twice",
                                    tk.name
                                ))
                                .code("duplicate")
                                .at(tk.span)
                                .related(prev.span, "also defined here"),
                            );
                        }
                        all_templates.insert(tk.name.clone(), (tk.clone(), tv.clone()));
                    }
                }
                shared if SHARED_SECTIONS.contains(&shared) => {}
                other => dec.push(
                    Diagnostic::error(format!("`{other}` cannot be included"))
                        .code("include")
                        .at(k.span)
                        .hint("an included file may hold only `vm-templates`, `vm-defaults`, `cluster`, `disks`, `volume-groups` and `vms`"),
                ),
            }
        }
    }
    if let Some(d) = vm_defaults {
        defaults = Some(match defaults {
            Some(base) => base.merged_with(d),
            None => d.clone(),
        });
    }
    for (k, v) in templates {
        if let Some((prev, _)) = all_templates.get(&k.name)
            && prev.span.file != k.span.file
        {
            dec.push(
                Diagnostic::error(format!("template `{}` is defined twice", k.name))
                    .code("duplicate")
                    .at(k.span)
                    .related(prev.span, "also defined here"),
            );
        }
        all_templates.insert(k.name.clone(), (k.clone(), v.clone()));
    }
    // Check templates and defaults on their own, even when no VM uses them.
    if let Some(d) = &defaults {
        spec.vm_defaults = dec.decode(d);
    }
    for (name, (k, v)) in &all_templates {
        if let Err(e) = crate::spec::names::simple(name, "template", 64) {
            push_rule(dec, e, k.span);
        }
        if let Some(t) = dec.decode::<Vm>(v) {
            spec.vm_templates.insert(Sp::new(name.clone(), k.span), t);
        }
    }
    if let Some(vms) = vms {
        let mut resolver = Templates::new(defaults.as_ref(), &all_templates);
        match vms.as_map() {
            Some(m) => {
                for (k, v) in m {
                    let vm = resolver
                        .vm(v, dec)
                        .and_then(|merged| dec.decode::<Vm>(&merged));
                    match vm {
                        Some(vm) => {
                            spec.vms.insert(Sp::new(k.name.clone(), k.span), vm);
                        }
                        None => {
                            broken.vms.insert(k.name.clone());
                        }
                    }
                }
            }
            None if matches!(vms.kind, NodeKind::Null) => {}
            None => dec.push(
                Diagnostic::error(format!(
                    "`vms` must be a mapping of guest names to guests, found {}",
                    vms.describe()
                ))
                .code("invalid")
                .at(vms.span),
            ),
        }
    }
    host_seen.then_some(spec)
}

fn push_rule(dec: &Decoder, msg: String, span: Span) {
    let (m, h) = match msg.split_once("\nhint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (msg, None),
    };
    dec.push(Diagnostic::error(m).code("name").at(span).maybe_hint(h));
}

/// defaults ⊕ template chain ⊕ the VM's own fields (the VM's node itself when there is
/// nothing to merge it with).
/// Most work (template steps walked plus YAML nodes copied while merging) spent resolving the
/// guests' templates of one spec. Each template's chain is resolved once and shared by every
/// guest that uses it, so a legitimate spec needs a small fraction of this; a deep chain with a
/// growing template at each level is refused instead of taking minutes.
pub const MAX_TEMPLATE_WORK: usize = 4_000_000;

/// Resolves guests' templates: each template (merged over `vm-defaults` and its ancestors)
/// is computed once, and the total work is bounded by [`MAX_TEMPLATE_WORK`].
struct Templates<'a> {
    defaults: Option<&'a Node>,
    templates: &'a BTreeMap<String, (Key, Node)>,
    /// `None`: the chain is broken (its error is reported once).
    memo: std::collections::HashMap<String, Option<Node>>,
    work: usize,
    over_budget: bool,
}

fn weight(n: &Node) -> usize {
    match &n.kind {
        NodeKind::Seq(items) => 1 + items.iter().map(weight).sum::<usize>(),
        NodeKind::Map(entries) => 1 + entries.iter().map(|(_, v)| weight(v)).sum::<usize>(),
        _ => 1,
    }
}

impl<'a> Templates<'a> {
    fn new(defaults: Option<&'a Node>, templates: &'a BTreeMap<String, (Key, Node)>) -> Self {
        Templates {
            defaults,
            templates,
            memo: std::collections::HashMap::new(),
            work: 0,
            over_budget: false,
        }
    }

    fn spend(&mut self, n: usize, at: Span, dec: &Decoder) -> bool {
        self.work = self.work.saturating_add(n);
        if self.work > MAX_TEMPLATE_WORK {
            if !self.over_budget {
                self.over_budget = true;
                dec.push(
                    Diagnostic::error(format!(
                        "resolving the guests' templates takes more than {MAX_TEMPLATE_WORK} steps"
                    ))
                    .code("limit")
                    .at(at)
                    .hint("shorten the template chains: a few levels are enough"),
                );
            }
            return false;
        }
        true
    }

    /// Template `name` merged over `vm-defaults` and its ancestors, from the farthest.
    fn resolve(&mut self, name: &str, at: Span, dec: &Decoder) -> Option<Node> {
        if let Some(r) = self.memo.get(name) {
            return r.clone();
        }
        // Walk up to a template already resolved, the end of the chain, or a cycle.
        let mut walk: Vec<String> = Vec::new();
        let mut on_walk: BTreeSet<String> = BTreeSet::new();
        let mut cur = name.to_string();
        let mut cur_span = at;
        let base: Option<Node> = loop {
            if self.over_budget || !self.spend(1, cur_span, dec) {
                for w in &walk {
                    self.memo.insert(w.clone(), None);
                }
                return None;
            }
            if let Some(r) = self.memo.get(&cur) {
                match r {
                    Some(n) => break Some(n.clone()),
                    None => {
                        for w in &walk {
                            self.memo.insert(w.clone(), None);
                        }
                        return None;
                    }
                }
            }
            if !on_walk.insert(cur.clone()) {
                let from = walk.iter().position(|w| *w == cur).unwrap_or(0);
                let mut shown: Vec<&str> = walk[from..].iter().map(String::as_str).collect();
                shown.push(&cur);
                dec.push(
                    Diagnostic::error(format!("templates form a cycle: {}", shown.join(" → ")))
                        .code("cycle")
                        .at(cur_span),
                );
                for w in &walk {
                    self.memo.insert(w.clone(), None);
                }
                return None;
            }
            let Some((_, tnode)) = self.templates.get(&cur) else {
                dec.push(
                    Diagnostic::error(format!("unknown template `{cur}`"))
                        .code("dangling")
                        .at(cur_span)
                        .hint(
                            did_you_mean(&cur, self.templates.keys().map(String::as_str))
                                .unwrap_or_else(|| "define it under `vm-templates`".to_string()),
                        ),
                );
                for w in &walk {
                    self.memo.insert(w.clone(), None);
                }
                return None;
            };
            walk.push(cur.clone());
            match tnode.get("template") {
                Some(t) => match t.as_str() {
                    Some(n) => {
                        cur = n.to_string();
                        cur_span = t.span;
                    }
                    // The decoder reports the type error.
                    None => break self.defaults.cloned(),
                },
                None => break self.defaults.cloned(),
            }
        };
        // Merge back down, from the farthest ancestor, remembering each template.
        let mut acc = base;
        for w in walk.iter().rev() {
            let tnode = &self.templates[w].1;
            let merged = match acc {
                Some(mut a) => {
                    a.merge(tnode);
                    a
                }
                None => tnode.clone(),
            };
            if !self.spend(weight(&merged), at, dec) {
                for w in &walk {
                    self.memo.insert(w.clone(), None);
                }
                return None;
            }
            self.memo.insert(w.clone(), Some(merged.clone()));
            acc = Some(merged);
        }
        acc
    }

    /// A guest merged over its template chain and `vm-defaults`.
    fn vm<'n>(&mut self, vm: &'n Node, dec: &Decoder) -> Option<Cow<'n, Node>> {
        // A guest without its own `template` uses the one `vm-defaults` names, if any.
        let next = vm
            .get("template")
            .or_else(|| self.defaults.and_then(|d| d.get("template")));
        let base = match next {
            Some(t) => match t.as_str() {
                Some(name) => Some(self.resolve(name, t.span, dec)?),
                None => return Some(Cow::Borrowed(vm)), // the decoder reports the type error
            },
            None => self.defaults.cloned(),
        };
        let Some(mut acc) = base else {
            return Some(Cow::Borrowed(vm));
        };
        if !self.spend(weight(vm), vm.span, dec) {
            return None;
        }
        acc.merge(vm);
        Some(Cow::Owned(acc))
    }
}

fn volume_groups(
    node: &Node,
    dec: &Decoder,
    broken: &mut Broken,
) -> IndexMap<Sp<String>, VolumeGroup> {
    let mut out = IndexMap::new();
    let Some(map) = node.as_map() else {
        if !matches!(node.kind, NodeKind::Null) {
            dec.push(
                Diagnostic::error(format!(
                    "`volume-groups` must be a mapping of VG names to volume groups, found {}",
                    node.describe()
                ))
                .code("invalid")
                .at(node.span),
            );
        }
        return out;
    };
    for (key, value) in map {
        let mut lvs = IndexMap::new();
        let mut snaps = IndexMap::new();
        if let Some(l) = value.get("lvs") {
            let mut names = BTreeSet::new();
            lvs = entries::<Lv>(l, "lvs", dec, &mut names);
            broken
                .lvs
                .extend(names.into_iter().map(|n| format!("{}/{n}", key.name)));
        }
        if let Some(s) = value.get("snapshots") {
            let mut names = BTreeSet::new();
            snaps = entries::<Snapshot>(s, "snapshots", dec, &mut names);
            broken
                .lvs
                .extend(names.into_iter().map(|n| format!("{}/{n}", key.name)));
        }
        let mut pools = IndexMap::new();
        if let Some(t) = value.get("thin-pools") {
            let mut names = BTreeSet::new();
            pools = thin_pools(t, dec, &mut names);
            broken
                .lvs
                .extend(names.into_iter().map(|n| format!("{}/{n}", key.name)));
        }
        match dec.decode::<VolumeGroup>(&without(value, &["lvs", "snapshots", "thin-pools"])) {
            Some(mut vg) => {
                vg.lvs = lvs;
                vg.snapshots = snaps;
                vg.thin_pools = pools;
                out.insert(Sp::new(key.name.clone(), key.span), vg);
            }
            None => {
                broken.vgs.insert(key.name.clone());
                broken.lvs.extend(
                    lvs.keys()
                        .chain(snaps.keys())
                        .chain(pools.keys())
                        .chain(pools.values().flat_map(|p| p.lvs.keys()))
                        .map(|n| format!("{}/{n}", key.name)),
                );
            }
        }
    }
    out
}

/// A VG's `thin-pools`: each pool, and each thin LV in it, decoded on its own. `names` gets
/// what failed to decode (a broken pool's thin LVs too), so references to them do not cascade.
fn thin_pools(
    node: &Node,
    dec: &Decoder,
    names: &mut BTreeSet<String>,
) -> IndexMap<Sp<String>, ThinPool> {
    let mut out = IndexMap::new();
    let Some(map) = node.as_map() else {
        if !matches!(node.kind, NodeKind::Null) {
            dec.push(
                Diagnostic::error(format!(
                    "`thin-pools` must be a mapping of pool names to thin pools, found {}",
                    node.describe()
                ))
                .code("invalid")
                .at(node.span),
            );
        }
        return out;
    };
    for (key, value) in map {
        let lvs = value
            .get("lvs")
            .map(|l| entries::<ThinLv>(l, "lvs", dec, names))
            .unwrap_or_default();
        match dec.decode::<ThinPool>(&without(value, &["lvs"])) {
            Some(mut pool) => {
                pool.lvs = lvs;
                out.insert(Sp::new(key.name.clone(), key.span), pool);
            }
            None => {
                names.insert(key.name.clone());
                names.extend(lvs.keys().map(|n| n.value.clone()));
            }
        }
    }
    out
}

/// Lay `like: other` disks out as copies of the other disk's partitions.
fn expand_like(spec: &mut Spec, diags: &mut Vec<Diagnostic>) {
    let names: Vec<Sp<String>> = spec.disks.keys().cloned().collect();
    let mut cycles: BTreeSet<Vec<String>> = BTreeSet::new();
    for name in names {
        let mut seen = vec![name.value.clone()];
        let mut cur = name.clone();
        let mut source: Option<Vec<Partition>> = None;
        while let Some(disk) = spec.disks.get(&cur) {
            let Some(like) = &disk.like else {
                if cur != name {
                    source = Some(disk.partitions.clone());
                }
                break;
            };
            if seen.contains(&like.value) {
                seen.push(like.value.clone());
                let start = seen.iter().position(|x| *x == like.value).unwrap_or(0);
                let mut key: Vec<String> = seen[start..seen.len() - 1].to_vec();
                key.sort();
                if !cycles.insert(key) {
                    break;
                }
                diags.push(
                    Diagnostic::error(format!("`like` forms a cycle: {}", seen.join(" → ")))
                        .code("cycle")
                        .at(like.span),
                );
                break;
            }
            if !spec.disks.contains_key(like.value.as_str()) {
                diags.push(
                    Diagnostic::error(format!("`like: {like}` names no disk of this spec"))
                        .code("dangling")
                        .at(like.span)
                        .maybe_hint(did_you_mean(
                            like,
                            spec.disks.keys().map(|k| k.value.as_str()),
                        )),
                );
                break;
            }
            seen.push(like.value.clone());
            cur = like.clone();
        }
        if let (Some(parts), Some(disk)) = (source, spec.disks.get_mut(&name)) {
            if !disk.partitions.is_empty() {
                if let Some(like) = &disk.like {
                    diags.push(
                        Diagnostic::error(format!(
                            "disk `{name}` has both `like` and `partitions`"
                        ))
                        .code("conflict")
                        .at(like.span)
                        .hint("remove one: `like` copies the other disk's partitions"),
                    );
                }
            } else {
                disk.partitions = parts;
            }
        }
    }
}

/// Images must be relative paths inside the repository; a missing one is a warning (it may
/// be fetched before apply), an escaping one an error.
fn check_images(spec: &Spec, reader: &Reader, rel: &str, dec: &Decoder) {
    for (vg, g) in &spec.volume_groups {
        for (lv, l) in &g.lvs {
            let Some(img) = &l.image else { continue };
            match reader.join(rel, img) {
                Err(m) => dec.push(
                    Diagnostic::error(format!("image of {vg}/{lv}: {m}"))
                        .code("path-escape")
                        .at(img.span)
                        .hint("images must be relative paths inside the spec repository"),
                ),
                Ok(p) if !reader.exists(&p) => dec.push(
                    Diagnostic::warning(format!("image of {vg}/{lv}: {p} does not exist"))
                        .code("image-missing")
                        .at(img.span)
                        .hint("it must be there when the plan is applied"),
                ),
                Ok(_) => {}
            }
        }
    }
}
