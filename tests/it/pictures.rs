//! Pictures: `plan --format dot` and `shutdown-order --format dot`. The DOT is read back here
//! by a reader of the subset of the language hostform writes, with Graphviz's own rules for
//! quoted strings and label escapes (no Graphviz in the tests): every operation is a node in
//! its resource's cluster, every dependency an edge, destructive operations are marked, and no
//! string of a spec or a host can leave its label.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;
use hostform::plan::{Action, Change, Deferred, Op, Options, Plan, Refusal, Risk};
use hostform::plan::{Address, OpId, Verb};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Id(String),
    /// A quoted string as written, without its quotes.
    Quoted(String),
    Arrow,
    P(char),
}

/// DOT's tokens, as Graphviz's lexer reads them: in a quoted string `\"` is a quote and a
/// backslash escapes the next character; anything but our identifiers, quoted strings, `->`
/// and `{}[];,=` is an error.
fn lex(s: &str) -> Vec<Tok> {
    let c: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '"' {
            let mut raw = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => panic!("unterminated quoted string"),
                    Some('"') => break,
                    Some('\\') => {
                        raw.push('\\');
                        raw.push(*c.get(i + 1).expect("a backslash ends the text"));
                        i += 2;
                    }
                    Some('\n') => panic!("a line break inside a quoted string: {raw}"),
                    Some(&o) => {
                        raw.push(o);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Tok::Quoted(raw));
        } else if ch == '-' && c.get(i + 1) == Some(&'>') {
            out.push(Tok::Arrow);
            i += 2;
        } else if "{}[];,=".contains(ch) {
            out.push(Tok::P(ch));
            i += 1;
        } else if ch.is_ascii_alphanumeric() || ch == '_' || ch == '.' || ch == '#' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == '.') {
                i += 1;
            }
            out.push(Tok::Id(c[start..i].iter().collect()));
        } else {
            panic!("unexpected {ch:?} in {s}");
        }
    }
    out
}

/// What Graphviz shows for a quoted string: its escapes (`\\`, `\"`, the line breaks `\n`
/// and `\l`) and entities (only `&amp;` is written). Any other escape is an error: it would
/// be Graphviz's (`\N`, `\G`) rather than the text's.
fn shown(raw: &str) -> String {
    let mut out = String::new();
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') | Some('l') => out.push('\n'),
            other => panic!("escape \\{other:?} in {raw}"),
        }
    }
    assert!(
        out.match_indices('&')
            .all(|(i, _)| out[i..].starts_with("&amp;")),
        "an entity other than &amp; in {raw}"
    );
    out.replace("&amp;", "&")
}

type Attrs = BTreeMap<String, String>;

#[derive(Debug, Default)]
struct Graph {
    attrs: Attrs,
    /// Node → its attributes and the cluster it is in.
    nodes: BTreeMap<String, (Attrs, Option<String>)>,
    /// In the order written.
    edges: Vec<(String, String, Attrs)>,
    /// Cluster → its attributes, in the order written.
    clusters: Vec<(String, Attrs)>,
}

struct Reader {
    toks: Vec<Tok>,
    at: usize,
}

impl Reader {
    fn next(&mut self) -> Tok {
        let t = self.toks.get(self.at).cloned().expect("more DOT");
        self.at += 1;
        t
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }
    fn expect(&mut self, t: Tok) {
        let got = self.next();
        assert_eq!(got, t, "at token {}", self.at);
    }
    fn id(&mut self) -> String {
        match self.next() {
            Tok::Id(s) => s,
            t => panic!("an identifier expected, found {t:?}"),
        }
    }
    fn attrs(&mut self) -> Attrs {
        let mut a = Attrs::new();
        if self.peek() != Some(&Tok::P('[')) {
            return a;
        }
        self.next();
        loop {
            match self.next() {
                Tok::P(']') => return a,
                Tok::P(',') => continue,
                Tok::Id(k) => {
                    self.expect(Tok::P('='));
                    let v = match self.next() {
                        Tok::Id(v) => v,
                        Tok::Quoted(q) => shown(&q),
                        t => panic!("a value expected, found {t:?}"),
                    };
                    assert!(a.insert(k.clone(), v).is_none(), "{k} given twice");
                }
                t => panic!("an attribute expected, found {t:?}"),
            }
        }
    }
    fn block(&mut self, g: &mut Graph, cluster: Option<&str>) {
        loop {
            match self.next() {
                Tok::P('}') => return,
                Tok::Id(k) if k == "graph" => {
                    let a = self.attrs();
                    match cluster {
                        Some(c) => g.clusters.iter_mut().find(|x| x.0 == c).unwrap().1 = a,
                        None => g.attrs = a,
                    }
                    self.expect(Tok::P(';'));
                }
                Tok::Id(k) if k == "node" || k == "edge" => {
                    self.attrs();
                    self.expect(Tok::P(';'));
                }
                Tok::Id(k) if k == "subgraph" => {
                    let name = self.id();
                    assert!(name.starts_with("cluster_"), "{name}");
                    assert!(
                        !g.clusters.iter().any(|c| c.0 == name),
                        "cluster {name} twice"
                    );
                    g.clusters.push((name.clone(), Attrs::new()));
                    self.expect(Tok::P('{'));
                    self.block(g, Some(&name));
                }
                Tok::Id(id) => match self.next() {
                    Tok::P('=') => {
                        let _ = self.id();
                        self.expect(Tok::P(';'));
                    }
                    Tok::Arrow => {
                        let to = self.id();
                        let a = self.attrs();
                        self.expect(Tok::P(';'));
                        g.edges.push((id, to, a));
                    }
                    Tok::P('[') => {
                        self.at -= 1;
                        let a = self.attrs();
                        self.expect(Tok::P(';'));
                        let prev = g.nodes.insert(id.clone(), (a, cluster.map(String::from)));
                        assert!(prev.is_none(), "node {id} declared twice");
                    }
                    t => panic!("after {id}: {t:?}"),
                },
                t => panic!("a statement expected, found {t:?}"),
            }
        }
    }
}

/// Read a whole `digraph NAME { … }`; every edge joins declared nodes.
fn read(dot: &str, name: &str) -> Graph {
    let mut r = Reader {
        toks: lex(dot),
        at: 0,
    };
    r.expect(Tok::Id("digraph".into()));
    r.expect(Tok::Id(name.into()));
    r.expect(Tok::P('{'));
    let mut g = Graph::default();
    r.block(&mut g, None);
    assert!(r.peek().is_none(), "text after the graph");
    assert!(dot.ends_with("}\n"));
    for (a, b, _) in &g.edges {
        assert!(
            g.nodes.contains_key(a) && g.nodes.contains_key(b),
            "{a} -> {b}"
        );
    }
    g
}

fn label<'a>(g: &'a Graph, node: &str) -> &'a str {
    &g.nodes[node].0["label"]
}

fn runner(scenario: &str) -> hostform::runner::ReplayRunner {
    hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(scenario)).unwrap()
}

/// The captured disks' host: two disks by serial, a RAID1 of a partition of each, a VG on it
/// with two LVs. Planned on blank disks, the whole stack is built.
const LAB: &str = "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios, size: 2MiB, type: bios-boot }
      - { name: raid, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B, like: a }
arrays:
  md0: { level: 1, devices: [a/raid, b/raid], bootloader-on: [a, b] }
volume-groups:
  vg0:
    pvs: [md0]
    lvs:
      dom0_root: { size: 512MiB, fs: ext4 }
      dom0_swap: { size: 128MiB, fs: swap }
";

fn plan_of(loaded: hostform::spec::Loaded, scenario: &str, allow_destroy: bool) -> Plan {
    let facts = hostform::discover::discover(&runner(scenario))
        .unwrap()
        .facts;
    hostform::plan::plan_host(
        &loaded.spec,
        &facts,
        &Options {
            allow_destroy,
            ..Default::default()
        },
    )
}

fn load(spec: &str) -> hostform::spec::Loaded {
    hostform::spec::load::load(&root().join(spec), None)
        .unwrap_or_else(|f| panic!("{spec}: {:?}", f.diagnostics))
}

/// The picture of a plan holds exactly the plan: each op once, in the cluster of its
/// resource, with its summary and its risk; an edge for each dependency on an op of the plan
/// and no other; refusals and deferred resources as nodes of their own.
fn check_plan_picture(p: &Plan, what: &str) {
    let dot = hostform::plan::dot::render_dot(p, what);
    let g = read(&dot, "plan");
    assert!(g.attrs["label"].starts_with(what), "{what}");
    let ops: Vec<&String> = g.nodes.keys().filter(|n| n.starts_with("op")).collect();
    assert_eq!(ops.len(), p.ops.len(), "{what}");
    for (i, o) in p.ops.iter().enumerate() {
        let node = format!("op{i}");
        let (attrs, cluster) = &g.nodes[&node];
        let text = attrs["label"].replace('\n', " ");
        let first = o.summary.lines().next().unwrap_or_default();
        assert!(text.starts_with(first), "{what}: {text:?} for {first:?}");
        assert_eq!(
            text.ends_with(" [destructive]"),
            o.risk == Risk::Destructive,
            "{what}: {text}"
        );
        assert_eq!(
            attrs.get("penwidth").map(String::as_str),
            (o.risk == Risk::Destructive).then_some("3"),
            "{what}: {node}"
        );
        // The tooltip: the op's id and its command or the file it writes.
        let argv = o.argv();
        let tip = match o.write() {
            Some(w) => format!("{}\nwrites {}", o.id, w.path),
            None => format!(
                "{}\n$ {}",
                o.id,
                hostform::runner::show_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>())
            ),
        };
        assert_eq!(
            attrs.get("tooltip"),
            (!tip.contains('\\')).then_some(&tip),
            "{what}: {node}"
        );
        let cluster = cluster
            .as_ref()
            .unwrap_or_else(|| panic!("{node} in no cluster"));
        let head = g.clusters.iter().find(|c| &c.0 == cluster).unwrap().1["label"]
            .lines()
            .next()
            .unwrap()
            .to_string();
        assert!(
            head == o.resource || head.ends_with(&format!(" {}", o.resource)),
            "{what}: {node} of {} in {head}",
            o.resource
        );
    }
    let index: BTreeMap<&str, usize> = p
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    let want: BTreeSet<(String, String)> = p
        .ops
        .iter()
        .enumerate()
        .flat_map(|(i, o)| {
            o.after
                .iter()
                .filter_map(|a| index.get(a.as_str()))
                .map(move |j| (format!("op{j}"), format!("op{i}")))
        })
        .collect();
    let drawn: Vec<(String, String)> = g
        .edges
        .iter()
        .filter(|(a, _, e)| a.starts_with("op") && !e.contains_key("style"))
        .map(|(a, b, _)| (a.clone(), b.clone()))
        .collect();
    assert_eq!(drawn.len(), want.len(), "{what}: an edge drawn twice");
    assert_eq!(drawn.into_iter().collect::<BTreeSet<_>>(), want, "{what}");
    let refusal_resources: BTreeSet<&str> =
        p.refusals.iter().map(|r| r.resource.as_str()).collect();
    let refused: Vec<&String> = g
        .nodes
        .keys()
        .filter(|n| n.starts_with("refused"))
        .collect();
    assert_eq!(refused.is_empty(), refusal_resources.is_empty(), "{what}");
    for r in &refusal_resources {
        assert!(
            refused
                .iter()
                .any(|n| label(&g, n).replace('\n', " ").contains(r)),
            "{what}: refusal of {r} not drawn"
        );
    }
    let deferred = g.nodes.keys().filter(|n| n.starts_with("deferred")).count();
    assert_eq!(deferred, p.deferred.len(), "{what}");
    // Same plan, same bytes.
    assert_eq!(dot, hostform::plan::dot::render_dot(p, what));
}

/// Every spec the scenario snapshots plan, against the captures that give plans of every
/// kind (creation from blank disks, changes, teardown, thin pools), with and without
/// --allow-destroy.
#[test]
fn every_plan_picture_holds_exactly_its_plan() {
    let mut specs: Vec<String> = Vec::new();
    for dir in ["tests/specs/e2e", "specs"] {
        for e in std::fs::read_dir(root().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                specs.push(p.strip_prefix(root()).unwrap().display().to_string());
            }
        }
    }
    specs.sort();
    let mut ops = 0;
    let mut destructive = 0;
    let mut edges = 0;
    for scenario in ["blank", "full", "thin"] {
        let facts = hostform::discover::discover(&runner(scenario))
            .unwrap()
            .facts;
        for spec in &specs {
            let loaded = hostform::spec::load::load(&root().join(spec), None).unwrap();
            for allow_destroy in [false, true] {
                let p = hostform::plan::plan_host(
                    &loaded.spec,
                    &facts,
                    &Options {
                        allow_destroy,
                        ..Default::default()
                    },
                );
                check_plan_picture(&p, &format!("{spec} against {scenario}"));
                ops += p.ops.len();
                destructive += p.ops.iter().filter(|o| o.risk == Risk::Destructive).count();
                edges += p.ops.iter().map(|o| o.after.len()).sum::<usize>();
            }
        }
    }
    // The pictures were not all empty.
    assert!(
        ops > 100 && destructive > 0 && edges > 50,
        "{ops} {destructive} {edges}"
    );
}

#[test]
fn plan_pictures_of_a_build_and_a_teardown() {
    let lab = hostform::spec::load::load_str("lab.yaml", LAB).unwrap();
    let p = plan_of(lab, "blank", false);
    assert!(p.refusals.is_empty() && p.ops.len() > 5, "{p:?}");
    insta::assert_snapshot!(
        "plan_dot_lab_on_blank",
        hostform::plan::dot::render_dot(&p, "lab.yaml against blank")
    );
    let p = plan_of(load("tests/specs/e2e/thin-destroy.yaml"), "thin", true);
    assert!(p.ops.iter().any(|o| o.risk == Risk::Destructive));
    insta::assert_snapshot!(
        "plan_dot_thin_destroy",
        hostform::plan::dot::render_dot(
            &p,
            "tests/specs/e2e/thin-destroy.yaml --allow-destroy against thin"
        )
    );
}

/// Strings that would end a quoted string and start statements of their own, Graphviz
/// escapes, entities and control characters, in every place a plan's text reaches the picture.
const HOSTILE: &str =
    "x\\\"]; evil [label=\"pwned\"]; op0 -> evil; \"\\\nsecond line\\N\\G\\l &lt; \u{1b}[2J\r}\\";

#[test]
fn a_crafted_string_cannot_leave_its_label_in_a_plan_picture() {
    let id = |lv: &str, verb| OpId::new(50, Address::lv("vg0", lv), verb);
    let a = Op::run(
        id("a", Verb::Create),
        HOSTILE,
        HOSTILE,
        vec!["lvcreate".into(), HOSTILE.into()],
    );
    let b = Op::run(
        id("a", Verb::Remove),
        HOSTILE,
        format!("remove {HOSTILE}"),
        vec!["lvremove".into()],
    )
    .destructive()
    .after(vec![id("a", Verb::Create)]);
    let p = Plan {
        changes: vec![Change {
            resource: HOSTILE.into(),
            action: Action::Replace,
            reason: HOSTILE.into(),
        }],
        ops: vec![a, b],
        refusals: vec![Refusal {
            resource: HOSTILE.into(),
            reason: HOSTILE.into(),
            hint: HOSTILE.into(),
        }],
        deferred: vec![Deferred {
            resource: HOSTILE.into(),
            waits_for: HOSTILE.into(),
        }],
        ..Plan::default()
    };
    let dot = hostform::plan::dot::render_dot(&p, HOSTILE);
    assert!(!dot.chars().any(|c| c.is_control() && c != '\n'), "{dot:?}");
    let g = read(&dot, "plan");
    let nodes: Vec<&str> = g.nodes.keys().map(String::as_str).collect();
    assert_eq!(
        nodes,
        [
            "deferred0",
            "legend_destructive",
            "legend_replace",
            "op0",
            "op1",
            "refused0"
        ]
    );
    assert_eq!(g.clusters.len(), 4, "{:?}", g.clusters);
    let real: Vec<(&str, &str)> = g
        .edges
        .iter()
        .filter(|e| !e.2.contains_key("style"))
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(real, [("op0", "op1")]);
    // The text is shown whole (labels may fold long lines at spaces), control characters
    // as their escapes; an op's label shows the first line of its summary.
    let visible = HOSTILE.replace('\u{1b}', "\\u{1b}").replace('\r', "\\r");
    let flat = |s: &str| s.replace('\n', " ");
    let first_line = visible.lines().next().unwrap();
    assert_eq!(flat(label(&g, "op0")), format!("{first_line} …"));
    // Graphviz reads a tooltip's backslashes twice over: a text with one gets none.
    assert!(!g.nodes["op0"].0.contains_key("tooltip"));
    assert!(!g.nodes["refused0"].0.contains_key("tooltip"));
    for (text, what) in [
        (label(&g, "refused0"), "refused0"),
        (label(&g, "deferred0"), "deferred0"),
        (&g.clusters[0].1["label"][..], "cluster"),
        (&g.attrs["label"][..], "title"),
    ] {
        assert!(flat(text).contains(&flat(&visible)), "{what}: {text:?}");
    }
    assert!(flat(label(&g, "op1")).ends_with(" [destructive]"));
}

#[test]
fn a_crafted_guest_name_cannot_leave_its_label_in_a_shutdown_picture() {
    use hostform::spec::de::Sp;
    use hostform::spec::types::{Spec, Vm};
    let mut spec = Spec {
        host: Sp::bare(HOSTILE.to_string()),
        ..Spec::default()
    };
    let other = "b\"; a -> b; \"";
    spec.vms.insert(
        Sp::bare(HOSTILE.to_string()),
        Vm {
            depends_on: vec![Sp::bare(other.to_string())],
            ..Vm::default()
        },
    );
    spec.vms.insert(Sp::bare(other.to_string()), Vm::default());
    let order = hostform::shutdown::order(&spec).unwrap();
    assert_eq!(order.batches.len(), 2);
    let dot = hostform::shutdown::render_dot(&spec, &order);
    assert!(!dot.chars().any(|c| c.is_control() && c != '\n'), "{dot:?}");
    let g = read(&dot, "shutdown");
    let nodes: Vec<&str> = g.nodes.keys().map(String::as_str).collect();
    assert_eq!(nodes, ["g0", "g1", "unknown0"]);
    let visible = HOSTILE.replace('\u{1b}', "\\u{1b}").replace('\r', "\\r");
    assert_eq!(label(&g, "g0"), visible);
    assert_eq!(label(&g, "g1"), other);
    let deps: Vec<(&str, &str)> = g
        .edges
        .iter()
        .filter(|e| !e.2.contains_key("style"))
        .map(|(a, b, _)| (a.as_str(), b.as_str()))
        .collect();
    assert_eq!(deps, [("g0", "g1")]);
    assert!(g.attrs["label"].contains(&visible));
}

#[test]
fn dom0_shutdown_picture() {
    let o = hostform(
        &root(),
        &["shutdown-order", "specs/dom0.yaml", "--format", "dot"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let dot = stdout(&o);
    let g = read(&dot, "shutdown");
    // The stages, in stop order, each a cluster: first, the guests not in the spec, batches.
    let stages: Vec<&str> = g.clusters.iter().map(|c| c.1["label"].as_str()).collect();
    assert_eq!(
        stages,
        [
            "first, in the background",
            "not in the spec",
            "batch 1: side by side",
            "batch 2",
            "batch 3",
            "batch 4",
            "batch 5"
        ]
    );
    let in_cluster = |k: usize| -> Vec<&str> {
        g.nodes
            .values()
            .filter(|(_, c)| c.as_deref() == Some(&format!("cluster_{k}")[..]))
            .map(|(a, _)| a["label"].as_str())
            .collect()
    };
    assert_eq!(in_cluster(2), ["guest1", "guest2", "machin"]);
    assert_eq!(in_cluster(6), ["firewall"]);
    // Every depends-on of the spec is an edge from the guest to what it depends on.
    let spec = hostform::spec::load::load(&root().join("specs/dom0.yaml"), None).unwrap();
    let name = |n: &str| label(&g, n).to_string();
    let drawn: BTreeSet<(String, String)> = g
        .edges
        .iter()
        .filter(|e| !e.2.contains_key("style"))
        .map(|(a, b, _)| (name(a), name(b)))
        .collect();
    let want: BTreeSet<(String, String)> = spec
        .spec
        .vms
        .iter()
        .flat_map(|(k, v)| {
            v.depends_on
                .iter()
                .map(move |d| (k.value.clone(), d.value.clone()))
        })
        .collect();
    assert_eq!(drawn, want);
    insta::assert_snapshot!("shutdown_dot_dom0", dot);
}

/// A spec `validate` refuses: `plan --format dot` and `shutdown-order --format dot` print the
/// same located errors on stderr, in the same order, then what was not done; nothing on
/// stdout (no partial graph); exit 1 as validate.
#[test]
fn an_invalid_spec_gives_validates_errors_and_no_graph() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), LAB).unwrap();
    let snap = snapshot_of(dir.path(), "blank", "lab");
    let snap = snap.to_str().unwrap();
    for bad in [
        "dangling-references.yaml",
        "dependency-cycle.yaml",
        "tabs.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("tests/specs/invalid").join(bad)).unwrap();
        std::fs::write(dir.path().join(bad), text).unwrap();
        let v = hostform(dir.path(), &["validate", bad]);
        assert_eq!(code(&v), 1);
        // validate separates its diagnostics by a blank line.
        let errors: String = stderr(&v)
            .split("\n\n")
            .filter(|b| !b.is_empty())
            .map(|b| format!("{}\n", b.trim_end_matches('\n')))
            .collect();
        assert!(errors.contains(&format!("--> {bad}:")), "located: {errors}");
        let p = hostform(
            dir.path(),
            &[
                "plan",
                bad,
                "--against",
                snap,
                "--host",
                "lab",
                "--format",
                "dot",
            ],
        );
        assert_eq!(code(&p), code(&v), "{bad}");
        assert_eq!(stdout(&p), "", "{bad}: no graph");
        assert_eq!(
            stderr(&p),
            format!("{errors}{bad} is not valid; no plan was made\n")
        );
        let s = hostform(dir.path(), &["shutdown-order", bad, "--format", "dot"]);
        assert_eq!(code(&s), code(&v), "{bad}");
        assert_eq!(stdout(&s), "", "{bad}: no graph");
        assert_eq!(
            stderr(&s),
            format!("{errors}{bad} is not valid; no order computed\n")
        );
    }
    // A valid spec planned for another host: refused, no graph either.
    let p = hostform(
        dir.path(),
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap,
            "--host",
            "other",
            "--format",
            "dot",
        ],
    );
    assert_eq!(code(&p), 1);
    assert_eq!(stdout(&p), "");
    // And the spec itself: a whole graph, the same bytes each time.
    let args = ["plan", "lab.yaml", "--against", snap, "--format", "dot"];
    let p = hostform(dir.path(), &args);
    assert_eq!(code(&p), 0, "{}", stderr(&p));
    let g = read(&stdout(&p), "plan");
    assert!(g.attrs["label"].starts_with(&format!("lab.yaml against snapshot {snap}")));
    assert!(g.nodes.keys().any(|n| n.starts_with("op")));
    assert_eq!(stdout(&hostform(dir.path(), &args)), stdout(&p));
}

/// `first` guests, the guests not in the spec placed last or left running, a guest's own
/// timeout, and a dependency the order leaves out (on a `first` guest), dashed.
#[test]
fn shutdown_picture_of_first_last_and_own_timeouts() {
    let spec = |unknown: &str| {
        hostform::spec::load_str(
            "s.yaml",
            &format!(
                "host: h
shutdown: {{ first: [a], unknown-guests: {unknown} }}
vms:
  a: {{ hypervisor: xen, memory: 1GiB, depends-on: [b] }}
  b: {{ hypervisor: xen, memory: 1GiB, shutdown-timeout: 30s }}
  c: {{ hypervisor: xen, memory: 1GiB, depends-on: [b] }}
"
            ),
        )
        .unwrap()
        .spec
    };
    let s = spec("last");
    let dot = hostform::shutdown::render_dot(&s, &hostform::shutdown::order(&s).unwrap());
    let g = read(&dot, "shutdown");
    let stages: Vec<&str> = g.clusters.iter().map(|c| c.1["label"].as_str()).collect();
    assert_eq!(
        stages,
        [
            "first, in the background",
            "batch 1",
            "batch 2",
            "not in the spec"
        ]
    );
    let by_label = |l: &str| {
        g.nodes
            .iter()
            .find(|(_, (a, _))| a["label"] == l)
            .map(|(n, _)| n.clone())
            .unwrap_or_else(|| panic!("no node {l:?} in {dot}"))
    };
    let (a, b, c) = (by_label("a"), by_label("b\n30s"), by_label("c"));
    // The dependencies: every edge but the stages' invisible sequence.
    let edge = |x: &str, y: &str| {
        g.edges
            .iter()
            .find(|e| e.0 == x && e.1 == y && e.2.get("style").map(String::as_str) != Some("invis"))
            .map(|e| &e.2)
    };
    assert_eq!(edge(&c, &b).unwrap().get("style"), None);
    assert_eq!(edge(&a, &b).unwrap()["style"], "dashed");
    assert!(g.nodes[&b].0["tooltip"].contains("30s"));
    // The stages in stop order: invisible edges from each stage to the next.
    let seq: Vec<(&str, &str)> = g
        .edges
        .iter()
        .filter(|e| e.2.get("style").map(String::as_str) == Some("invis"))
        .map(|e| (e.0.as_str(), e.1.as_str()))
        .collect();
    assert_eq!(seq.len(), 3);
    assert_eq!(seq[0], (a.as_str(), c.as_str()));
    assert_eq!(seq[1], (c.as_str(), b.as_str()));

    let s = spec("leave");
    let dot = hostform::shutdown::render_dot(&s, &hostform::shutdown::order(&s).unwrap());
    let g = read(&dot, "shutdown");
    assert_eq!(g.clusters.len(), 3);
    assert!(!g.nodes.keys().any(|n| n.starts_with("unknown")));
    assert!(
        g.attrs["label"].ends_with("guests running but not in the spec: left running"),
        "{}",
        g.attrs["label"]
    );
}
