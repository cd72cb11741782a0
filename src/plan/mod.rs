//! Plans: what must change (per resource, with the reason), and the operations that change it,
//! as a dependency graph run in a deterministic order. The planner knows dependency rules
//! between operations but no tool flags (those live in the rooms, `crate::kinds`).

use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

pub mod dot;
pub mod guests;
pub mod net;
pub mod room;
pub mod safety;
pub mod storage;
pub mod vocab;

pub use room::{Outcome, Room};
pub use vocab::{Address, Effect, OpId, Verb};

use crate::discover::Facts;
use crate::spec::types::Spec;

/// What the operator allowed for this run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// `--allow-destroy`: resources the spec marks `state: absent` may be removed (never one
    /// marked `prevent-destroy`).
    pub allow_destroy: bool,
    /// `hostform drain` / `undrain`: a host of the cluster to drain, or to drain no more.
    pub drain: Option<Drain>,
}

/// A change of a cluster host's drain, asked by `hostform drain HOST` (`On`) or `hostform
/// undrain HOST` (`Off`). The drain is kept as a tag on the cluster's shared VG
/// (`hostform_drained_HOST`), which every host reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drain {
    On(String),
    Off(String),
}

/// The rooms, in the order they plan: a room may wait for the operations of the rooms before
/// it (a guest for its LVs), through the functions those rooms export.
pub const ROOMS: &[(&str, Room)] = &[
    ("storage", storage::plan),
    ("network", net::plan),
    ("guests", guests::plan),
];

/// The whole host's plan: each room plans its own kind, and their operations form one DAG.
pub fn plan_host(spec: &Spec, facts: &Facts, opts: &Options) -> Plan {
    // In a cluster with drained hosts, their guests are placed elsewhere.
    let drained = guests::drained(spec, facts, opts.drain.as_ref());
    let placed = spec.placed_with(&drained);
    let spec = placed.as_ref().unwrap_or(spec);
    let mut plan = Plan::default();
    for (_, room) in ROOMS {
        room(&mut plan, spec, facts, opts);
    }

    // After every room: the last lock on destruction, then one order for all ops.
    guard_destruction(&mut plan, opts);
    safety::guard(&mut plan, facts, opts);
    let ops = std::mem::take(&mut plan.ops);
    match order(ops) {
        Ok(o) => plan.ops = o,
        Err(e) => plan.refusals.push(Refusal {
            resource: "plan".into(),
            reason: e,
            hint: "this is a bug in hostform; please report it".into(),
        }),
    }
    plan
}

/// The last lock, whatever a room planned: without --allow-destroy, no destructive operation
/// may stand in an applicable plan. Rooms refuse first, with their own reason; this only
/// catches a room that did not.
fn guard_destruction(plan: &mut Plan, opts: &Options) {
    if opts.allow_destroy {
        return;
    }
    let unguarded: Vec<(String, String)> = plan
        .ops
        .iter()
        .filter(|o| o.risk == Risk::Destructive)
        .map(|o| (o.resource.clone(), o.summary.clone()))
        .collect();
    for (resource, summary) in unguarded {
        plan.refusals.push(Refusal {
            resource,
            reason: format!("`{summary}` destroys data, and --allow-destroy was not given"),
            hint: "review the plan, then run it again with --allow-destroy".into(),
        });
    }
}

/// Add a room's plan to the host's plan (ops are ordered once, by `plan_host`).
pub fn merge(into: &mut Plan, part: Plan) {
    into.changes.extend(part.changes);
    into.ops.extend(part.ops);
    into.refusals.extend(part.refusals);
    into.warnings.extend(part.warnings);
    into.unmanaged.extend(part.unmanaged);
    for (br, ports) in part.guest_ports {
        into.guest_ports.entry(br).or_default().extend(ports);
    }
    into.deferred.extend(part.deferred);
    into.remount_root |= part.remount_root;
    into.connectivity.extend(part.connectivity);
}

/// What happens to a resource, with Terraform's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
            Action::NoOp => " ",
        }
    }
}

/// How risky an operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Risk {
    /// Adds or grows; no data is at stake.
    Safe,
    /// Formats, removes or shrinks: refused unless the operator allowed it.
    Destructive,
}

/// One operation of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "OpRepr", try_from = "OpRepr")]
pub struct Op {
    /// Stable identifier, the tie-breaker of the order: `50:lv:vg0/dom0_root:create`.
    pub id: OpId,
    /// The resource it changes: `lv vg0/dom0_root`.
    pub resource: String,
    /// What it does, for people.
    pub summary: String,
    /// What running it does: a command (never through a shell), a file written, a guest stopped.
    pub effect: Effect,
    pub risk: Risk,
    /// Writes LVM metadata under /etc/lvm: wrapped in remount rw/ro when / is read-only.
    pub writes_root: bool,
    /// Operations that must finish first.
    pub after: Vec<OpId>,
    /// Wait for udev to create the device nodes this op makes (`udevadm settle`).
    pub settle: bool,
    /// Block devices the command writes (`/dev/disk/by-id/…`, `/dev/md0`, `/dev/vg0/lv`):
    /// each must pass the one write rule (`safety::check`) or the op is refused.
    pub writes: Vec<String>,
}

impl Op {
    /// An operation that runs `argv`; what it writes is read from the argv itself.
    pub fn run(
        id: OpId,
        resource: impl Into<String>,
        summary: impl Into<String>,
        argv: Vec<String>,
    ) -> Op {
        let writes = safety::writes_of(&argv);
        Op {
            id,
            resource: resource.into(),
            summary: summary.into(),
            effect: Effect::run(argv),
            risk: Risk::Safe,
            writes_root: false,
            after: Vec::new(),
            settle: false,
            writes,
        }
    }

    /// The same operation, run only after `ops`.
    pub fn after(mut self, ops: Vec<OpId>) -> Op {
        self.after = ops;
        self
    }

    /// The same operation, writing LVM metadata under /etc (wrapped in a remount of a
    /// read-only root).
    pub fn on_root(mut self) -> Op {
        self.writes_root = true;
        self
    }

    /// The same operation, destroying data: planned only once the operator allowed it.
    pub fn destructive(mut self) -> Op {
        self.risk = Risk::Destructive;
        self
    }

    /// The same operation, with text on the standard input of its command.
    pub fn with_stdin(mut self, input: String) -> Op {
        if let Effect::Run { stdin, .. } = &mut self.effect {
            *stdin = Some(input);
        }
        self
    }

    /// The argv plan format 1 shows (empty for a file write).
    pub fn argv(&self) -> Vec<String> {
        self.effect.argv()
    }

    /// The program it runs, if it runs one.
    pub fn program(&self) -> Option<&str> {
        match &self.effect {
            Effect::Run { argv, .. } => argv.first().map(String::as_str),
            _ => None,
        }
    }

    /// The class of operations that run one at a time, whatever the parallelism: Xen's
    /// device hotplug (`xl create`, `xl block-attach`, `xl network-attach`). Its block script
    /// holds one global lock for each disk it adds, so creates side by side only queue on it,
    /// and under load libxl kills the queued scripts at its hotplug timeout (seen in the
    /// sandbox: three `xl create` at once of guests with 3-4 disks, all three killed with
    /// `killing execution of /etc/xen/scripts/block add because of timeout`). xendomains, too,
    /// starts one domain after the other. Unlike an `after` edge, a failure here skips nothing.
    pub fn one_at_a_time(&self) -> Option<&'static str> {
        match &self.effect {
            Effect::Run { argv, .. }
                if argv.first().map(String::as_str) == Some("xl")
                    && matches!(
                        argv.get(1).map(String::as_str),
                        Some("create" | "block-attach" | "network-attach")
                    ) =>
            {
                Some("xen hotplug")
            }
            _ => None,
        }
    }

    pub fn stdin(&self) -> Option<&str> {
        match &self.effect {
            Effect::Run { stdin, .. } => stdin.as_deref(),
            _ => None,
        }
    }

    pub fn write_mut(&mut self) -> Option<&mut FileWrite> {
        match &mut self.effect {
            Effect::Write(w) => Some(w),
            _ => None,
        }
    }

    pub fn write(&self) -> Option<&FileWrite> {
        match &self.effect {
            Effect::Write(w) => Some(w),
            _ => None,
        }
    }
}

/// An operation as plan format 1 writes it: the effect spread over `argv`, `stdin` and `write`.
#[derive(Serialize, Deserialize)]
struct OpRepr {
    id: OpId,
    resource: String,
    summary: String,
    argv: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    stdin: Option<String>,
    risk: Risk,
    #[serde(default)]
    writes_root: bool,
    #[serde(default)]
    after: Vec<OpId>,
    #[serde(default)]
    settle: bool,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    write: Option<FileWrite>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    writes: Vec<String>,
}

impl From<Op> for OpRepr {
    fn from(o: Op) -> Self {
        let (argv, stdin, write) = o.effect.into_parts();
        OpRepr {
            id: o.id,
            resource: o.resource,
            summary: o.summary,
            argv,
            stdin,
            risk: o.risk,
            writes_root: o.writes_root,
            after: o.after,
            settle: o.settle,
            write,
            writes: o.writes,
        }
    }
}

impl TryFrom<OpRepr> for Op {
    type Error = String;
    fn try_from(r: OpRepr) -> Result<Self, String> {
        Ok(Op {
            effect: Effect::from_parts(r.argv, r.stdin, r.write)?,
            id: r.id,
            resource: r.resource,
            summary: r.summary,
            risk: r.risk,
            writes_root: r.writes_root,
            after: r.after,
            settle: r.settle,
            writes: r.writes,
        })
    }
}

/// A configuration file an operation writes (atomically), with the diff the plan shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWrite {
    pub path: String,
    pub content: String,
    /// Permission bits, e.g. 0o644.
    pub mode: u32,
    /// Unified diff from the file's current content (or from nothing) to `content`.
    pub diff: String,
}

/// A resource's change and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub resource: String,
    pub action: Action,
    pub reason: String,
}

/// A resource that cannot be planned yet: it lives on something this plan brings back (an
/// array it assembles), whose contents are only known once the host is read again. Apply
/// announces it, then plans it in a follow-up round after that reading; the follow-up may only
/// run safe operations on the resources announced here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deferred {
    /// `volume group vg0`, `lv vg0/dom0_root`, `snapshot vg0/s`.
    pub resource: String,
    /// The device whose reappearance it waits for: `md0`.
    pub waits_for: String,
}

/// Something the plan will not do, and why; a plan with refusals cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub resource: String,
    pub reason: String,
    pub hint: String,
}

/// Something the operator must know that the plan does not change: another host of the
/// cluster that stopped renewing its lease, and what this host can and cannot do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub resource: String,
    pub reason: String,
    pub hint: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// In execution order.
    pub ops: Vec<Op>,
    pub refusals: Vec<Refusal>,
    /// Shown, never blocking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
    /// On the host, not in the spec: reported, never touched.
    pub unmanaged: Vec<String>,
    /// Running guests' interfaces (tap devices, Xen vifs) on the spec's bridges: bridge →
    /// ports. The hypervisor makes and removes them; left alone, summarised, not listed as
    /// unmanaged resources.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub guest_ports: BTreeMap<String, Vec<String>>,
    /// Planned once what they sit on is assembled and read again (a follow-up round of apply).
    #[serde(default)]
    pub deferred: Vec<Deferred>,
    /// `/` is read-only and some operations write under /etc/lvm.
    pub remount_root: bool,
    /// Operations that could cut this host off the network (they touch the link carrying its
    /// address or the default route), each with why. `hostform apply` runs such a plan only
    /// with `--confirm-within`, which rolls back unless confirmed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connectivity: Vec<String>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.ops.is_empty() || !self.deferred.is_empty()
    }
}

/// Order operations: dependencies first, ties broken by id, so the same inputs always give the
/// same order. A dependency on an unknown op is ignored (it was not needed); a cycle is a bug
/// in a room and is reported.
pub fn order(ops: Vec<Op>) -> Result<Vec<Op>, String> {
    let n = ops.len();
    let out = {
        // Each op's rank in id order, found by one sort: the ready set below compares ranks
        // rather than ids (100,000 ops at 50,000 resources, their ids sharing long prefixes).
        let mut sorted: Vec<(&str, usize)> = ops
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.as_str(), i))
            .collect();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err("two operations share an id".into());
        }
        let by_rank: Vec<usize> = sorted.iter().map(|&(_, i)| i).collect();
        let mut rank = vec![0; n];
        for (r, &i) in by_rank.iter().enumerate() {
            rank[i] = r;
        }
        let by_id: HashMap<&str, usize> = sorted.into_iter().collect();
        // The edges, from each op to the ops waiting for it.
        let mut waiting: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut indeg = vec![0usize; n];
        for (i, o) in ops.iter().enumerate() {
            for a in &o.after {
                if let Some(&j) = by_id.get(a.as_str()) {
                    waiting[j].push(i);
                    indeg[i] += 1;
                }
            }
        }
        // Kahn's algorithm with the ready set ordered by id; ops left over are on a cycle.
        let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
            .filter(|&i| indeg[i] == 0)
            .map(|i| Reverse(rank[i]))
            .collect();
        let mut out = Vec::with_capacity(n);
        while let Some(Reverse(r)) = ready.pop() {
            let i = by_rank[r];
            out.push(i);
            for &j in &waiting[i] {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.push(Reverse(rank[j]));
                }
            }
        }
        if out.len() != n {
            return Err("the operations depend on each other in a cycle".into());
        }
        out
    };
    let mut slots: Vec<Option<Op>> = ops.into_iter().map(Some).collect();
    Ok(out.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// The human rendering: changes with `+ ~ - -/+`, each op with its exact command.
pub fn render(plan: &Plan, color: bool) -> String {
    use std::fmt::Write as _;
    let v = crate::diag::visible;
    let paint = |code: &str, s: &str| {
        if color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    let mut s = String::new();
    render_refusals(&mut s, plan, &paint);
    render_changes(&mut s, plan, &paint);
    let mut waits: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in &plan.deferred {
        waits.entry(&d.waits_for).or_default().push(&d.resource);
    }
    for (dev, res) in &waits {
        for r in res {
            let _ = writeln!(
                s,
                "{} {}  (will be planned once {} is assembled and read)",
                paint("36", "…"),
                v(r),
                v(dev)
            );
        }
    }
    for u in &plan.unmanaged {
        let _ = writeln!(
            s,
            "{} {}  (not in the spec: left alone)",
            paint("2", "?"),
            v(u)
        );
    }
    for (br, ports) in &plan.guest_ports {
        let _ = writeln!(
            s,
            "{} guest ports on {br}: {} ({})  (the guests' interfaces: left alone)",
            paint("2", "·"),
            ports.len(),
            ports.join(", ")
        );
    }
    if !plan.connectivity.is_empty() && plan.has_changes() {
        let _ = writeln!(
            s,
            "\n{} this plan changes the link or route that connects this host:",
            paint("1;33", "connectivity risk:")
        );
        for c in &plan.connectivity {
            let _ = writeln!(s, "    {}", v(c));
        }
        let _ = writeln!(
            s,
            "  apply it with `--confirm-within 60s`: it rolls back by itself unless `hostform confirm` follows."
        );
    }
    if plan.remount_root && plan.has_changes() {
        let _ = writeln!(
            s,
            "\n/ is read-only: LVM changes run between `mount -o remount,rw /` and `mount -o remount,ro /`."
        );
    }
    let _ = writeln!(
        s,
        "\n{}{}{}.",
        counts(plan),
        if plan.deferred.is_empty() {
            String::new()
        } else {
            format!(
                ", {} deferred until {} {} assembled and read",
                plan.deferred.len(),
                waits.keys().copied().collect::<Vec<_>>().join(", "),
                if waits.len() == 1 { "is" } else { "are" }
            )
        },
        if plan.refusals.is_empty() {
            String::new()
        } else {
            format!(", {} refused", plan.refusals.len())
        }
    );
    s
}

/// `Plan: 1 to create, 0 to change, 0 to replace, 0 to delete, 3 unchanged; 4 operations`: the
/// counts every rendering of a plan starts its summary with.
pub(crate) fn counts(plan: &Plan) -> String {
    let n = |a: Action| plan.changes.iter().filter(|c| c.action == a).count();
    format!(
        "Plan: {} to create, {} to change, {} to replace, {} to delete, {} unchanged; {} operations",
        n(Action::Create),
        n(Action::Update),
        n(Action::Replace),
        n(Action::Delete),
        n(Action::NoOp),
        plan.ops.len()
    )
}

/// Refusals with the same reason and hint are one line naming every object they concern.
fn render_refusals(s: &mut String, plan: &Plan, paint: &dyn Fn(&str, &str) -> String) {
    use std::fmt::Write as _;
    // Spec and host strings are shown with control characters escaped.
    let v = crate::diag::visible;
    let mut groups: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    let mut group_of: HashMap<(&str, &str), usize> = HashMap::new();
    for r in &plan.refusals {
        let key = (r.reason.as_str(), r.hint.as_str());
        match group_of.get(&key) {
            Some(&i) => groups[i].2.push(&r.resource),
            None => {
                group_of.insert(key, groups.len());
                groups.push((key.0, key.1, vec![&r.resource]));
            }
        }
    }
    for (reason, hint, resources) in &groups {
        let _ = writeln!(
            s,
            "{} {}: {}",
            paint("1;31", "refused"),
            v(&resources.join(", ")),
            v(reason)
        );
        let _ = writeln!(s, "        hint: {}", v(hint));
    }
    if !plan.refusals.is_empty() {
        s.push('\n');
    }
    for w in &plan.warnings {
        let _ = writeln!(
            s,
            "{} {}: {}",
            paint("1;33", "warning"),
            v(&w.resource),
            v(&w.reason)
        );
        let _ = writeln!(s, "        hint: {}", v(&w.hint));
    }
    if !plan.warnings.is_empty() {
        s.push('\n');
    }
}

/// Each change with its operations, in plan order, each with its exact command, its input
/// or the diff of the file it writes.
fn render_changes(s: &mut String, plan: &Plan, paint: &dyn Fn(&str, &str) -> String) {
    use std::fmt::Write as _;
    let v = crate::diag::visible;
    // Each change's operations, in plan order: grouped once (a scan of every op per change
    // made rendering quadratic: minutes for 50,000 LVs).
    let mut ops_of: HashMap<&str, Vec<&Op>> = HashMap::with_capacity(plan.changes.len());
    for o in &plan.ops {
        ops_of.entry(o.resource.as_str()).or_default().push(o);
    }
    for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        let code = match c.action {
            Action::Create => "32",
            Action::Update => "33",
            Action::Delete | Action::Replace => "31",
            Action::NoOp => "0",
        };
        let _ = writeln!(
            s,
            "{} {}  ({})",
            paint(code, c.action.symbol()),
            v(&c.resource),
            v(&c.reason)
        );
        for o in ops_of.get(c.resource.as_str()).into_iter().flatten() {
            let risk = if o.risk == Risk::Destructive {
                paint("1;31", " [destructive]")
            } else {
                String::new()
            };
            // A summary may hold a diff: its lines stay lines.
            let summary: Vec<_> = o.summary.split('\n').map(v).collect();
            let _ = writeln!(s, "    {}{risk}", summary.join("\n"));
            if let Some(w) = o.write() {
                let _ = writeln!(s, "      writes {}", v(&w.path));
                for l in w.diff.lines() {
                    let _ = writeln!(s, "      {}", v(l));
                }
                continue;
            }
            s.push_str("      $ ");
            crate::runner::push_argv(s, o.argv().iter().map(String::as_str));
            s.push('\n');
            if let Some(input) = o.stdin() {
                for l in input.lines() {
                    let _ = writeln!(s, "      < {}", v(l));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(name: &str) -> OpId {
        OpId::new(50, Address::lv("vg", name), Verb::Create)
    }

    fn op(name: &str, after: &[&str]) -> Op {
        let mut o = Op::run(id(name), "r", name, vec!["true".into()]);
        o.after = after.iter().map(|a| id(a)).collect();
        o
    }

    fn names(ops: Vec<Op>) -> Vec<String> {
        ops.into_iter()
            .map(|o| match o.id.address() {
                Address::Lv { lv, .. } => lv.clone(),
                a => panic!("{a}"),
            })
            .collect()
    }

    #[test]
    fn dependencies_first_then_ids() {
        let ops = vec![op("c", &["b"]), op("b", &[]), op("a", &["c"]), op("d", &[])];
        assert_eq!(names(order(ops).unwrap()), ["b", "c", "a", "d"]);
    }

    #[test]
    fn the_order_does_not_depend_on_the_input_order() {
        let a = vec![op("x", &[]), op("y", &["x"]), op("m", &[]), op("b", &[])];
        let mut b = a.clone();
        b.reverse();
        assert_eq!(names(order(a).unwrap()), names(order(b).unwrap()));
    }

    #[test]
    fn a_destructive_op_without_allow_destroy_is_always_refused() {
        let mut plan = Plan {
            ops: vec![op("a", &[]), op("b", &[])],
            ..Plan::default()
        };
        plan.ops[1].risk = Risk::Destructive;
        let mut allowed = plan.clone();
        guard_destruction(&mut plan, &Options::default());
        assert_eq!(plan.refusals.len(), 1);
        assert!(plan.refusals[0].reason.contains("--allow-destroy"));
        guard_destruction(
            &mut allowed,
            &Options {
                allow_destroy: true,
                ..Options::default()
            },
        );
        assert!(allowed.refusals.is_empty());
    }

    #[test]
    fn cycles_and_duplicate_ids_are_errors() {
        assert!(order(vec![op("a", &["b"]), op("b", &["a"])]).is_err());
        assert!(order(vec![op("a", &[]), op("a", &[])]).is_err());
    }
}

#[cfg(test)]
mod visible_tests {
    use super::*;

    #[test]
    fn host_and_spec_strings_reach_the_plan_text_with_control_characters_escaped() {
        let plan = Plan {
            unmanaged: vec!["link eth0\u{1b}[1A\u{1b}[2K\rok".into()],
            refusals: vec![Refusal {
                resource: "guest g\u{1b}]0;x\u{7}".into(),
                reason: "r\r".into(),
                hint: "h\u{1b}".into(),
            }],
            ..Plan::default()
        };
        let t = render(&plan, false);
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(t.contains("eth0\\u{1b}[1A"), "{t}");
    }
}
