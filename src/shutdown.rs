//! Dependency-ordered shutdown of the guests: the stop order (pure), and its renderings.
//!
//! A guest stops before everything it depends on. Guests are grouped in batches: batch 1 holds
//! the guests nothing else depends on, and each later batch the guests whose dependents have
//! all stopped in earlier batches (a guest's batch is one more than the latest batch of the
//! guests that depend on it). Guests in one batch are independent and stop side by side.
//! `shutdown.first` guests are stopped before everything, in the background, without waiting;
//! running guests that are not in the spec are placed by `shutdown.unknown-guests`.
//! Everything here is deterministic: batches are sorted by name.
//!
//! The executor (`hostform shutdown`, `hostform start`) lives in [`run`].

pub mod run;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::spec::Spec;
use crate::spec::types::{Hypervisor, OnTimeout, UnknownGuests, VmState};

pub use crate::spec::types::DEFAULT_SHUTDOWN_TIMEOUT_SECS as DEFAULT_TIMEOUT_SECS;

/// The order in which guests stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    /// Stopped before everything, in the background (not waited for before batch 1).
    pub first: Vec<String>,
    /// Where running guests that are not in the spec go: `first` (before batch 1), `last`
    /// (after the last batch) or `leave` (not stopped).
    pub unknown_guests: UnknownGuests,
    /// The ordered batches; the guests of one batch stop in parallel.
    pub batches: Vec<Vec<String>>,
}

/// A dependency cycle: guests that can never stop in an order that respects depends-on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("depends-on forms a cycle: {}", .0.join(" → "))]
pub struct Cycle(pub Vec<String>);

/// The guests the spec manages that take part in the shutdown: every guest not `absent`.
fn members(spec: &Spec) -> BTreeSet<String> {
    spec.vms
        .iter()
        .filter(|(_, vm)| vm.state != Some(VmState::Absent))
        .map(|(n, _)| n.value.clone())
        .collect()
}

/// Compute the stop order of a spec's guests.
pub fn order(spec: &Spec) -> Result<Order, Cycle> {
    let all = members(spec);
    let first: BTreeSet<String> = spec
        .shutdown
        .first
        .iter()
        .map(|f| f.value.clone())
        .filter(|f| all.contains(f))
        .collect();
    // The graph of the ordered guests: name → what it depends on (edges to `first` guests,
    // absent guests and unknown names are dropped: they do not take part in the batches).
    let deps: BTreeMap<&str, BTreeSet<&str>> = spec
        .vms
        .iter()
        .filter(|(n, _)| all.contains(&n.value) && !first.contains(&n.value))
        .map(|(n, vm)| {
            let ds = vm
                .depends_on
                .iter()
                .map(|d| d.value.as_str())
                .filter(|d| all.contains(*d) && !first.contains(*d))
                .collect();
            (n.value.as_str(), ds)
        })
        .collect();
    if let Some(c) = find_cycle(&deps) {
        return Err(Cycle(c));
    }
    // dependents[x] = guests that depend on x.
    let mut dependents: BTreeMap<&str, BTreeSet<&str>> =
        deps.keys().map(|k| (*k, BTreeSet::new())).collect();
    for (n, ds) in &deps {
        for d in ds {
            dependents.entry(d).or_default().insert(n);
        }
    }
    // level(x) = 0 when nothing depends on x, else 1 + max(level(dependent)).
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    fn level_of<'a>(
        x: &'a str,
        dependents: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        level: &mut BTreeMap<&'a str, usize>,
    ) -> usize {
        if let Some(l) = level.get(x) {
            return *l;
        }
        let l = dependents
            .get(x)
            .map(|ds| {
                ds.iter()
                    .map(|d| level_of(d, dependents, level) + 1)
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        level.insert(x, l);
        l
    }
    let mut batches: Vec<Vec<String>> = Vec::new();
    for x in deps.keys() {
        let l = level_of(x, &dependents, &mut level);
        if batches.len() <= l {
            batches.resize(l + 1, Vec::new());
        }
        batches[l].push(x.to_string());
    }
    for b in &mut batches {
        b.sort();
    }
    Ok(Order {
        first: first.into_iter().collect(),
        unknown_guests: spec.shutdown.unknown_guests,
        batches,
    })
}

/// The first cycle found (depth-first, in name order), as a closed path `a → b → a`.
fn find_cycle(deps: &BTreeMap<&str, BTreeSet<&str>>) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        n: &'a str,
        deps: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|p| *p == n).unwrap_or(0);
                let mut c: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                c.push(n.to_string());
                return Some(c);
            }
            None => {}
        }
        marks.insert(n, Mark::Open);
        path.push(n);
        if let Some(ds) = deps.get(n) {
            for d in ds {
                if let Some(c) = visit(d, deps, marks, path) {
                    return Some(c);
                }
            }
        }
        path.pop();
        marks.insert(n, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in deps.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(n, deps, &mut marks, &mut path) {
            return Some(c);
        }
    }
    None
}

/// One step of the sequence, as the executor runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// `first`, `unknown` or `batch N`.
    pub label: String,
    pub guests: Vec<String>,
    /// Started without waiting for it (the `first` guests); waited for at the very end.
    pub background: bool,
}

impl Order {
    /// The whole stop sequence for a host where `unknown` guests run outside the spec.
    pub fn stages(&self, unknown: &[String]) -> Vec<Stage> {
        let mut out = Vec::new();
        if !self.first.is_empty() {
            out.push(Stage {
                label: "first".into(),
                guests: self.first.clone(),
                background: true,
            });
        }
        let mut unknown: Vec<String> = unknown.to_vec();
        unknown.sort();
        unknown.dedup();
        let unknown_stage = (!unknown.is_empty()).then(|| Stage {
            label: "unknown".into(),
            guests: unknown,
            background: false,
        });
        if self.unknown_guests == UnknownGuests::First
            && let Some(s) = unknown_stage.clone()
        {
            out.push(s);
        }
        for (i, b) in self.batches.iter().enumerate() {
            out.push(Stage {
                label: format!("batch {}", i + 1),
                guests: b.clone(),
                background: false,
            });
        }
        if self.unknown_guests == UnknownGuests::Last
            && let Some(s) = unknown_stage
        {
            out.push(s);
        }
        out
    }

    /// The start sequence: the batches in reverse (dependencies first), then the `first`
    /// guests (they stopped first, they start last). Unknown guests are not started.
    pub fn start_stages(&self) -> Vec<Stage> {
        let n = self.batches.len();
        let mut out: Vec<Stage> = self
            .batches
            .iter()
            .enumerate()
            .rev()
            .map(|(i, b)| Stage {
                label: format!("batch {}", n - i),
                guests: b.clone(),
                background: false,
            })
            .collect();
        if !self.first.is_empty() {
            out.push(Stage {
                label: "last".into(),
                guests: self.first.clone(),
                background: false,
            });
        }
        out
    }
}

/// How long `name` may take to stop cleanly.
pub fn timeout_secs(spec: &Spec, name: &str) -> u64 {
    spec.shutdown_timeout_secs(name)
}

fn policy_word(u: UnknownGuests) -> &'static str {
    match u {
        UnknownGuests::First => "first",
        UnknownGuests::Last => "last",
        UnknownGuests::Leave => "leave",
    }
}

fn on_timeout_word(o: OnTimeout) -> &'static str {
    match o {
        OnTimeout::Destroy => "destroy",
        OnTimeout::Wait => "wait",
        OnTimeout::Fail => "fail",
    }
}

/// The order for people.
pub fn render_text(spec: &Spec, order: &Order) -> String {
    let mut s = format!(
        "Shutdown order of {} ({} guests; timeout {}s per guest unless the guest sets its own, then {}):\n",
        spec.host.value,
        order.first.len() + order.batches.iter().map(Vec::len).sum::<usize>(),
        spec.shutdown
            .timeout
            .as_ref()
            .map(|d| d.value.0)
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
        on_timeout_word(spec.shutdown.on_timeout),
    );
    let with_timeouts = |g: &[String]| {
        g.iter()
            .map(|n| {
                let own = spec
                    .vms
                    .iter()
                    .find(|(k, _)| k.value == *n)
                    .and_then(|(_, v)| v.shutdown_timeout.as_ref());
                match own {
                    Some(t) => format!("{n} ({}s)", t.value.0),
                    None => n.clone(),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !order.first.is_empty() {
        s += &format!(
            "  first, in the background: {}\n",
            with_timeouts(&order.first)
        );
    }
    let unknown_line = format!(
        "  guests running but not in the spec: {}\n",
        match order.unknown_guests {
            UnknownGuests::First => "stopped before batch 1",
            UnknownGuests::Last => "stopped after the last batch",
            UnknownGuests::Leave => "left running",
        }
    );
    if order.unknown_guests != UnknownGuests::Last {
        s += &unknown_line;
    }
    for (i, b) in order.batches.iter().enumerate() {
        s += &format!("  batch {}: {}\n", i + 1, with_timeouts(b));
    }
    if order.unknown_guests == UnknownGuests::Last {
        s += &unknown_line;
    }
    s
}

#[derive(Serialize)]
struct JsonOrder<'a> {
    format_version: u32,
    host: &'a str,
    first: &'a [String],
    unknown_guests: &'static str,
    batches: &'a [Vec<String>],
    timeouts: BTreeMap<&'a str, u64>,
    on_timeout: &'static str,
}

/// The order as JSON (`format_version` 1).
pub fn render_json(spec: &Spec, order: &Order) -> String {
    let timeouts = order
        .first
        .iter()
        .chain(order.batches.iter().flatten())
        .map(|n| (n.as_str(), timeout_secs(spec, n)))
        .collect();
    let j = JsonOrder {
        format_version: 1,
        host: &spec.host.value,
        first: &order.first,
        unknown_guests: policy_word(order.unknown_guests),
        batches: &order.batches,
        timeouts,
        on_timeout: on_timeout_word(spec.shutdown.on_timeout),
    };
    serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"
}

/// The `id name` lines a replacement `xen-list-domains` script feeds to /etc/init.d/xendomains,
/// in stop order: xendomains stops the domains in the order listed. `running` maps the names of
/// the running Xen domains to their domain ids (from `xl list -l`); Domain-0 is never listed.
/// xendomains stops one list at a time and knows nothing of batches: this keeps the order, not
/// the parallelism (use `hostform shutdown` for that).
pub fn render_xendomains(spec: &Spec, order: &Order, running: &BTreeMap<String, u32>) -> String {
    let known: BTreeSet<&str> = spec.vms.keys().map(|k| k.value.as_str()).collect();
    let unknown: Vec<String> = running
        .keys()
        .filter(|n| !known.contains(n.as_str()) && n.as_str() != "Domain-0")
        .cloned()
        .collect();
    let mut s = String::new();
    for stage in order.stages(&unknown) {
        for g in &stage.guests {
            if let Some(id) = running.get(g) {
                s += &format!("{id} {g}\n");
            }
        }
    }
    s
}

/// The hypervisors the spec's guests use (which services the systemd unit runs before).
fn hypervisors(spec: &Spec) -> BTreeSet<&'static str> {
    spec.vms
        .values()
        .filter_map(|v| v.hypervisor.as_ref())
        .map(|h| match h.value {
            Hypervisor::Xen => "xen",
            Hypervisor::Libvirt => "libvirt",
        })
        .collect()
}

/// The units the shutdown unit is ordered after, whatever the spec's hypervisors: at shutdown,
/// units stop in the reverse order of `After=`, so the guests stop first, while the
/// hypervisors' own guest services (libvirt-guests, xendomains, which would otherwise suspend
/// or stop them on their own terms), cluster locks (lvmlockd, sanlock) and remote storage
/// (iscsid, remote file systems) are still up. Ordering against a unit that is not installed
/// has no effect.
const ALWAYS_AFTER: [&str; 8] = [
    "network-online.target",
    "lvm2-monitor.service",
    "libvirt-guests.service",
    "xendomains.service",
    "lvmlockd.service",
    "sanlock.service",
    "iscsid.service",
    "remote-fs.target",
];

/// A systemd unit that runs `hostform shutdown` when the host shuts down. It is "started" at
/// boot (doing nothing) and "stopped" at shutdown: units stop in the reverse order of their
/// `After=`, so the guests stop while the hypervisor's services, storage and network are still
/// up. `RequiresMountsFor=` keeps the spec (and the Xen guest configs) mounted until it is
/// done. `TimeoutStopSec` is the worst case of the whole sequence plus a margin.
/// `exe` must be an installed hostform (see `installed_exe`), never a build tree's.
pub fn render_systemd(
    spec: &Spec,
    order: &Order,
    exe: &str,
    spec_path: &str,
) -> Result<String, String> {
    use crate::systemd::quote;
    let hv = hypervisors(spec);
    let mut after: Vec<String> = ALWAYS_AFTER.iter().map(|s| s.to_string()).collect();
    for (name, services) in HYPERVISOR_SERVICES {
        if hv.contains(name) {
            after.extend(services.iter().map(|s| s.to_string()));
        }
    }
    let mut mounts = vec![quote(spec_path)?];
    if hv.contains("xen") {
        let dir = spec
            .xen
            .config_dir
            .as_ref()
            .map(|d| d.value.as_str())
            .unwrap_or(crate::kinds::xen::DEFAULT_CONFIG_DIR);
        let q = quote(dir)?;
        if !mounts.contains(&q) {
            mounts.push(q);
        }
    }
    let mut worst: u64 = 0;
    for stage in order.stages(&[]) {
        worst += stage
            .guests
            .iter()
            .map(|g| timeout_secs(spec, g))
            .max()
            .unwrap_or(0);
    }
    let stop_timeout = if spec.shutdown.on_timeout == OnTimeout::Wait {
        "infinity".to_string()
    } else {
        // Each batch: its slowest timeout, plus the destroy and a margin of 30 s per batch.
        format!("{}", worst + 30 * (order.batches.len() as u64 + 1))
    };
    let exec_stop = [exe, "shutdown", spec_path]
        .iter()
        .map(|a| quote(a))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let host: String = spec
        .host
        .value
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .replace('%', "%%");
    Ok(shutdown_unit(
        "# Generated by hostform shutdown-order --format systemd; install as
# /etc/systemd/system/hostform-shutdown.service, then: systemctl enable --now hostform-shutdown
",
        &format!("the guests of {host}"),
        &after.join(" "),
        &mounts.join(" "),
        &exec_stop,
        &stop_timeout,
    ))
}

/// The name of the packaged template unit: `hostform-shutdown@.service`.
pub const TEMPLATE: &str = "hostform-shutdown@";

/// The template unit the package installs in /usr/lib/systemd/system: the unit of
/// `render_systemd` for the spec whose path is the instance (`%f`), which it cannot read.
/// So it is ordered after every hypervisor's services (ordering against a unit that is not
/// installed has no effect) and keeps only the spec mounted, and its `TimeoutStopSec` is
/// `infinity`: hostform's own per-guest timeouts, `on-timeout` policies and command time
/// limits bound the sequence, as the spec says. `shutdown-order --format systemd` prints the
/// spec's own bound, for a drop-in. `exe`: hostform's absolute path.
pub fn render_systemd_template(exe: &str) -> Result<String, String> {
    use crate::systemd::quote;
    let after: Vec<&str> = ALWAYS_AFTER
        .iter()
        .copied()
        .chain(
            HYPERVISOR_SERVICES
                .iter()
                .flat_map(|(_, s)| s.iter().copied()),
        )
        .collect();
    Ok(shutdown_unit(
        "# Installed by the hostform package. The instance is the spec's path, escaped:
# systemctl enable --now hostform-shutdown@$(systemd-escape --path /etc/hostform/dom0.yaml).service
# Its stop timeout is hostform's: `hostform shutdown-order SPEC --format systemd` prints the
# spec's worst case (TimeoutStopSec=), for `systemctl edit`.
",
        "the guests of the spec %f",
        &after.join(" "),
        "%f",
        &format!("{} shutdown %f", quote(exe)?),
        "infinity",
    ))
}

/// The services each hypervisor's guests need while they stop.
const HYPERVISOR_SERVICES: [(&str, [&str; 2]); 2] = [
    ("xen", ["xen.service", "xenconsoled.service"]),
    ("libvirt", ["libvirtd.service", "virtqemud.service"]),
];

/// The shutdown unit's text: everything but these parts is the same in the generated unit and
/// the packaged template.
fn shutdown_unit(
    header: &str,
    whose: &str,
    after: &str,
    mounts: &str,
    exec_stop: &str,
    stop_timeout: &str,
) -> String {
    format!(
        "{header}[Unit]
Description=Stop {whose} in dependency order (hostform)
After={after}
Wants=network-online.target
RequiresMountsFor={mounts}
DefaultDependencies=no
Before=shutdown.target reboot.target halt.target
Conflicts=shutdown.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop={exec_stop}
TimeoutStopSec={stop_timeout}
# The stop command runs to its end; what it leaves behind is stopped with it.
KillMode=mixed

[Install]
WantedBy=multi-user.target
"
    )
}

/// The order as a picture, in Graphviz's DOT language: each stage (the `first` guests, the
/// batches, the guests not in the spec) a cluster whose guests stand in one column, stages
/// left to right in stop order; an arrow from each guest to each guest it depends on ("stops
/// before"), dashed where the order ignores it (a `first` guest stops before everything).
/// Deterministic: guests are numbered in stop order, every string is quoted by `crate::dot`.
pub fn render_dot(spec: &Spec, order: &Order) -> String {
    use crate::dot::{quoted, tooltip};
    use std::fmt::Write as _;
    let mut s = String::from("digraph shutdown {\n");
    let default_timeout = spec
        .shutdown
        .timeout
        .as_ref()
        .map(|d| d.value.0)
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    let total = order.first.len() + order.batches.iter().map(Vec::len).sum::<usize>();
    let mut title = format!(
        "Shutdown order of {} ({total} guests; timeout {default_timeout}s per guest unless the guest sets its own, then {})\nan arrow: stops before",
        spec.host.value,
        on_timeout_word(spec.shutdown.on_timeout),
    );
    if order.unknown_guests == UnknownGuests::Leave {
        title.push_str("; guests running but not in the spec: left running");
    }
    let _ = writeln!(
        s,
        "  graph [label={}, labelloc=t, fontname=\"Helvetica\", rankdir=LR, newrank=true, nodesep=0.25, ranksep=0.6];",
        quoted(&title)
    );
    s.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#e3f2fd\", color=\"#1565c0\", fontname=\"Helvetica\", fontsize=11];\n");
    s.push_str("  edge [color=\"#424242\", arrowsize=0.7];\n");

    let own = |n: &str| {
        spec.vms
            .get(n)
            .and_then(|v| v.shutdown_timeout.as_ref())
            .map(|t| t.value.0)
    };
    // Each guest's node, numbered in stop order; each stage's nodes, for the sequence.
    let mut node_of: BTreeMap<&str, String> = BTreeMap::new();
    let mut stage_nodes: Vec<Vec<String>> = Vec::new();
    let mut stages: Vec<(String, Option<&[String]>, bool)> = Vec::new();
    if !order.first.is_empty() {
        stages.push(("first, in the background".into(), Some(&order.first), true));
    }
    if order.unknown_guests == UnknownGuests::First {
        stages.push(("not in the spec".into(), None, true));
    }
    for (i, b) in order.batches.iter().enumerate() {
        let word = if b.len() > 1 { ": side by side" } else { "" };
        stages.push((format!("batch {}{word}", i + 1), Some(b), false));
    }
    if order.unknown_guests == UnknownGuests::Last {
        stages.push(("not in the spec".into(), None, true));
    }
    let mut next = 0usize;
    for (k, (label, guests, dashed)) in stages.iter().enumerate() {
        let _ = writeln!(s, "  subgraph cluster_{k} {{");
        let _ = writeln!(
            s,
            "    graph [label={}, color=\"#1565c0\", fontcolor=\"#1565c0\", style=\"{}\", fontsize=11];",
            quoted(label),
            if *dashed { "rounded,dashed" } else { "rounded" }
        );
        s.push_str("    rank=same;\n");
        let mut here = Vec::new();
        match guests {
            Some(guests) => {
                for g in guests.iter() {
                    let name = format!("g{next}");
                    next += 1;
                    let label = match own(g) {
                        Some(t) => format!("{g}\n{t}s"),
                        None => g.clone(),
                    };
                    let _ = writeln!(
                        s,
                        "    {name} [label={}{}];",
                        quoted(&label),
                        tooltip(&format!("{g}: {}s to stop", timeout_secs(spec, g)))
                    );
                    node_of.insert(g.as_str(), name.clone());
                    here.push(name);
                }
            }
            None => {
                let name = format!("unknown{k}");
                let _ = writeln!(
                    s,
                    "    {name} [label={}, shape=note, style=\"filled,dashed\", fillcolor=\"#f5f5f5\", color=\"#616161\"];",
                    quoted("guests running\nbut not in the spec")
                );
                here.push(name);
            }
        }
        s.push_str("  }\n");
        stage_nodes.push(here);
    }
    // The sequence: each stage after the one before it.
    for w in stage_nodes.windows(2) {
        if let (Some(a), Some(b)) = (w[0].first(), w[1].first()) {
            let _ = writeln!(s, "  {a} -> {b} [style=invis, weight=10];");
        }
    }
    // The dependencies, in stop order of the guest that depends.
    let first: BTreeSet<&str> = order.first.iter().map(String::as_str).collect();
    for g in order.first.iter().chain(order.batches.iter().flatten()) {
        let Some(vm) = spec.vms.get(g.as_str()) else {
            continue;
        };
        let mut deps: Vec<&str> = vm.depends_on.iter().map(|d| d.value.as_str()).collect();
        deps.sort_unstable();
        deps.dedup();
        for d in deps {
            let (Some(a), Some(b)) = (node_of.get(g.as_str()), node_of.get(d)) else {
                continue;
            };
            if first.contains(g.as_str()) || first.contains(d) {
                let _ = writeln!(
                    s,
                    "  {a} -> {b} [style=dashed, color=\"#9e9e9e\"{}];",
                    tooltip(&format!(
                        "{g} depends on {d}; ignored: `first` guests stop before everything"
                    ))
                );
            } else {
                let tip = tooltip(&format!("{g} depends on {d}: {g} stops first"));
                match tip.strip_prefix(", ") {
                    Some(t) => {
                        let _ = writeln!(s, "  {a} -> {b} [{t}];");
                    }
                    None => {
                        let _ = writeln!(s, "  {a} -> {b};");
                    }
                }
            }
        }
    }
    s.push_str("}\n");
    s
}

/// The hostform a generated unit runs when `--exe` is not given: this executable, by its
/// canonical path, when it is installed; `/usr/bin/hostform` when it runs from a build tree
/// (a `target/` directory), which is no place for a unit to depend on.
pub fn installed_exe(current: Option<&std::path::Path>) -> String {
    const DEFAULT: &str = "/usr/bin/hostform";
    match current.and_then(|p| std::fs::canonicalize(p).ok()) {
        Some(p)
            if !p
                .components()
                .any(|c| c.as_os_str() == "target" || c.as_os_str() == "deps") =>
        {
            p.to_str()
                .map(str::to_string)
                .unwrap_or_else(|| DEFAULT.into())
        }
        _ => DEFAULT.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Spec {
        match crate::spec::load_str("t.yaml", yaml) {
            Ok(l) => l.spec,
            Err(f) => panic!("{:?}", f.diagnostics),
        }
    }

    fn dom0() -> Spec {
        crate::spec::load(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/dom0.yaml")),
            None,
        )
        .map(|l| l.spec)
        .map_err(|f| format!("{:?}", f.diagnostics))
        .expect("specs/dom0.yaml loads")
    }

    #[test]
    fn dom0_stops_in_the_batches_its_comments_state() {
        let o = order(&dom0()).expect("no cycle");
        assert_eq!(o.first, vec!["firewall-slave"]);
        assert_eq!(
            o.batches,
            vec![
                vec!["guest1", "guest2", "machin"],
                vec!["srvpub"],
                vec!["srvlan"],
                vec!["srvnfs"],
                vec!["firewall"],
            ]
        );
        assert_eq!(o.unknown_guests, UnknownGuests::First);
    }

    #[test]
    fn every_guest_stops_before_what_it_depends_on() {
        let s = dom0();
        let o = order(&s).unwrap();
        let batch_of = |n: &str| o.batches.iter().position(|b| b.iter().any(|g| g == n));
        for (name, vm) in &s.vms {
            for d in &vm.depends_on {
                if let (Some(a), Some(b)) = (batch_of(&name.value), batch_of(&d.value)) {
                    assert!(a < b, "{name} must stop before {d}");
                }
            }
        }
    }

    const BASE: &str = "host: h
vm-defaults: { hypervisor: libvirt, memory: 64MiB }
";

    #[test]
    fn unknown_guests_follow_the_policy() {
        for (policy, want) in [
            ("first", vec!["first", "unknown", "batch 1", "batch 2"]),
            ("last", vec!["first", "batch 1", "batch 2", "unknown"]),
            ("leave", vec!["first", "batch 1", "batch 2"]),
        ] {
            let s = spec(&format!(
                "{BASE}vms:\n  a: {{}}\n  b: {{ depends-on: [a] }}\n  p: {{}}\nshutdown: {{ first: [p], unknown-guests: {policy} }}\n"
            ));
            let o = order(&s).unwrap();
            let labels: Vec<String> = o
                .stages(&["zz".into(), "old".into()])
                .into_iter()
                .map(|st| st.label)
                .collect();
            assert_eq!(labels, want, "{policy}");
            let st = o.stages(&["zz".into(), "old".into()]);
            if let Some(u) = st.iter().find(|x| x.label == "unknown") {
                assert_eq!(u.guests, vec!["old", "zz"]);
            }
            assert!(st[0].background);
        }
    }

    #[test]
    fn a_cycle_is_an_error_that_shows_it() {
        // Validation rejects cycles when loading; order() must not trust that.
        let mut s = spec(&format!(
            "{BASE}vms:\n  a: {{}}\n  b: {{ depends-on: [a] }}\n  c: {{ depends-on: [b] }}\n"
        ));
        let a = s
            .vms
            .iter_mut()
            .find(|(k, _)| k.value == "a")
            .map(|(_, v)| v)
            .unwrap();
        a.depends_on
            .push(crate::spec::de::Sp::bare("c".to_string()));
        let e = order(&s).unwrap_err();
        assert_eq!(e.0, vec!["a", "c", "b", "a"]);
        assert_eq!(e.to_string(), "depends-on forms a cycle: a → c → b → a");
    }

    #[test]
    fn absent_guests_take_no_part_and_start_order_is_reversed() {
        let s = spec(&format!(
            "{BASE}vms:\n  db: {{}}\n  web: {{ depends-on: [db] }}\n  gone: {{ state: absent }}\n  peer: {{}}\nshutdown: {{ first: [peer] }}\n"
        ));
        let o = order(&s).unwrap();
        assert_eq!(o.batches, vec![vec!["web"], vec!["db"]]);
        let start: Vec<Vec<String>> = o.start_stages().into_iter().map(|s| s.guests).collect();
        assert_eq!(start, vec![vec!["db"], vec!["web"], vec!["peer"]]);
    }

    #[test]
    fn timeouts_come_from_the_guest_then_the_spec_then_the_default() {
        let s = spec(&format!(
            "{BASE}vms:\n  a: {{ shutdown-timeout: 10s }}\n  b: {{}}\nshutdown: {{ timeout: 2m }}\n"
        ));
        assert_eq!(timeout_secs(&s, "a"), 10);
        assert_eq!(timeout_secs(&s, "b"), 120);
        let s = spec(&format!("{BASE}vms:\n  a: {{}}\n"));
        assert_eq!(timeout_secs(&s, "a"), DEFAULT_TIMEOUT_SECS);
    }

    #[test]
    fn xendomains_lines_list_running_domains_in_stop_order() {
        let s = dom0();
        let o = order(&s).unwrap();
        let running: BTreeMap<String, u32> = [
            ("Domain-0", 0),
            ("firewall", 1),
            ("firewall-slave", 9),
            ("srvnfs", 2),
            ("guest1", 7),
            ("stray", 12),
        ]
        .into_iter()
        .map(|(n, i)| (n.to_string(), i))
        .collect();
        assert_eq!(
            render_xendomains(&s, &o, &running),
            "9 firewall-slave\n12 stray\n7 guest1\n2 srvnfs\n1 firewall\n"
        );
    }

    #[test]
    fn the_unit_runs_an_installed_hostform_never_a_build_tree() {
        let exe = std::env::current_exe().unwrap();
        assert!(exe.components().any(|c| c.as_os_str() == "target"));
        assert_eq!(installed_exe(Some(&exe)), "/usr/bin/hostform");
        assert_eq!(installed_exe(None), "/usr/bin/hostform");
        // An installed one is named by its canonical path.
        assert_eq!(
            installed_exe(Some(std::path::Path::new("/bin/sh"))),
            std::fs::canonicalize("/bin/sh").unwrap().to_str().unwrap()
        );
    }

    #[test]
    fn the_shutdown_unit_is_ordered_and_keeps_its_mounts() {
        let s = dom0();
        let o = order(&s).unwrap();
        let u = render_systemd(&s, &o, "/usr/bin/hostform", "/srv/my specs/dom0.yaml").unwrap();
        assert!(!u.contains("KillMode=none"), "{u}");
        assert!(u.lines().any(|l| l == "KillMode=mixed"), "{u}");
        let after = u.lines().find_map(|l| l.strip_prefix("After=")).unwrap();
        for unit in [
            "libvirt-guests.service",
            "xendomains.service",
            "lvmlockd.service",
            "sanlock.service",
            "iscsid.service",
            "remote-fs.target",
        ] {
            assert!(after.split(' ').any(|a| a == unit), "{unit}: {after}");
        }
        assert!(
            u.lines()
                .any(|l| l == "RequiresMountsFor=\"/srv/my specs/dom0.yaml\" /etc/xen/guest"),
            "{u}"
        );
        assert!(
            u.lines()
                .any(|l| l == "ExecStop=/usr/bin/hostform shutdown \"/srv/my specs/dom0.yaml\""),
            "{u}"
        );
        assert!(render_systemd(&s, &o, "/usr/bin/hostform", "/srv/a\nb.yaml").is_err());
    }

    /// The packaged template is the generated unit with the instance as the spec: the same
    /// lines, but for what only a spec can tell (its host, its hypervisors, its bound).
    #[test]
    fn the_template_is_the_generated_unit_with_the_instance_as_spec() {
        let s = dom0();
        let o = order(&s).unwrap();
        let u = render_systemd(&s, &o, "/usr/bin/hostform", "/etc/hostform/dom0.yaml").unwrap();
        let t = render_systemd_template("/usr/bin/hostform").unwrap();
        let lines = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect()
        };
        let (t_lines, u_lines) = (lines(&t), lines(&u));
        assert_eq!(t_lines.len(), u_lines.len(), "{t}\n{u}");
        let differ: Vec<(&String, &String)> = t_lines
            .iter()
            .zip(&u_lines)
            .filter(|(a, b)| a != b)
            .collect();
        let keys: Vec<&str> = differ
            .iter()
            .map(|(a, _)| a.split('=').next().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "Description",
                "After",
                "RequiresMountsFor",
                "ExecStop",
                "TimeoutStopSec"
            ],
            "{t}"
        );
        for want in [
            "Description=Stop the guests of the spec %f in dependency order (hostform)",
            "RequiresMountsFor=%f",
            "ExecStop=/usr/bin/hostform shutdown %f",
            "TimeoutStopSec=infinity",
        ] {
            assert!(t.lines().any(|l| l == want), "{want}:\n{t}");
        }
        // Every hypervisor's services, whichever the spec uses.
        let after = t.lines().find_map(|l| l.strip_prefix("After=")).unwrap();
        for unit in ALWAYS_AFTER.iter().chain(&[
            "xen.service",
            "xenconsoled.service",
            "libvirtd.service",
            "virtqemud.service",
        ]) {
            assert!(after.split(' ').any(|a| a == *unit), "{unit}: {after}");
        }
        assert!(render_systemd_template("/opt/a\nb").is_err());
    }

    #[test]
    fn dom0_renderings() {
        let s = dom0();
        let o = order(&s).unwrap();
        insta::assert_snapshot!("dom0_text", render_text(&s, &o));
        insta::assert_snapshot!("dom0_json", render_json(&s, &o));
        insta::assert_snapshot!(
            "dom0_systemd",
            render_systemd(&s, &o, "/usr/local/bin/hostform", "/etc/hostform/dom0.yaml").unwrap()
        );
    }
}
