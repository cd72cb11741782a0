//! Network planning: bridges, their ports, the move of a port's addresses to its bridge, the
//! default route, and the files that persist it all (ifupdown or systemd-networkd).
//!
//! Op ids (stage 60-69, so the id order is also the natural order):
//! `60:BR:create`, `61:BR:port:P`, `62:BR:stp`, `62:BR:mtu`, `63:BR:addr:A`, `63:BR:up`,
//! `63:P:up`, `64:P:del:A` (after every add on the bridge: add first, then delete on the port),
//! `64:BR:del:A`, `65:route:default`, `66:file:PATH`, and `69:BR:delete`.
//!
//! Every operation that touches a link carrying the host's reachability (the default route's
//! link, the link holding its source address or the SSH session's address) or the default
//! route itself is listed in `Plan::connectivity`: `hostform apply` runs such a plan only with
//! `--confirm-within`, which rolls back by itself unless confirmed.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Address, Effect, FileWrite, Op, OpId, Options, Plan, Risk, Verb};
use crate::discover::Facts;
use crate::kinds::net::{IFUPDOWN_DIR, IFUPDOWN_MAIN, NETWORKD_DIR, NetFacts};
use crate::kinds::netconf::{self, HEADER};
use crate::spec::types::{Bridge, NetManager, Presence, Spec};

fn s(v: &str) -> String {
    v.to_string()
}

fn ip(args: &[&str]) -> Vec<String> {
    std::iter::once("ip")
        .chain(args.iter().copied())
        .map(s)
        .collect()
}

struct Ctx<'a> {
    plan: Plan,
    net: &'a NetFacts,
    carriers: Vec<String>,
}

impl Ctx<'_> {
    fn change(&mut self, resource: &str, action: Action, reason: impl Into<String>) {
        self.plan.change(resource, action, reason);
    }
    fn refuse(&mut self, resource: &str, reason: impl Into<String>, hint: impl Into<String>) {
        self.plan.refuse(resource, reason, hint);
    }
    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        id: OpId,
        resource: &str,
        summary: String,
        argv: Vec<String>,
        risk: Risk,
        after: Vec<OpId>,
        touches: &[&str],
    ) {
        if let Some(l) = touches
            .iter()
            .find(|l| self.carriers.iter().any(|c| c == *l))
        {
            self.plan.connectivity.push(format!(
                "{summary}: {l} carries this host's address or default route"
            ));
        }
        let mut op = Op::run(id, resource, summary, argv);
        op.risk = risk;
        op.after = after;
        self.plan.ops.push(op);
    }
}

/// The persistence manager: the spec's choice, else what the host uses.
pub fn manager(spec: &Spec, net: &NetFacts) -> Option<NetManager> {
    match spec.network.manager {
        NetManager::Auto => net.manager,
        m => Some(m),
    }
}

/// A unified diff between two versions of a file.
pub fn diff(path: &str, old: Option<&str>, new: &str) -> String {
    let old_label = if old.is_some() {
        path.to_string()
    } else {
        "/dev/null".to_string()
    };
    similar::TextDiff::from_lines(old.unwrap_or(""), new)
        .unified_diff()
        .context_radius(3)
        .header(&old_label, path)
        .to_string()
}

/// The network room.
pub fn plan(into: &mut Plan, spec: &Spec, facts: &Facts, opts: &Options) {
    super::merge(into, bridges(spec, facts, opts));
}

fn bridges(spec: &Spec, facts: &Facts, opts: &Options) -> Plan {
    let net = &facts.net;
    let mut c = Ctx {
        plan: Plan::default(),
        net,
        carriers: net.carrier_links(),
    };
    if !net.read {
        if !spec.bridges.is_empty() {
            c.refuse(
                "network",
                "the host's links could not be read (`ip -j -d link` failed or is missing)",
                "install iproute2, or plan against a snapshot that has network facts",
            );
        }
        return c.plan;
    }
    let mut managed: BTreeSet<&str> = BTreeSet::new();
    for (name, b) in &spec.bridges {
        managed.insert(&name.value);
        for p in &b.ports {
            managed.insert(&p.value);
        }
    }
    let mut route_after: Vec<OpId> = Vec::new();
    let mut carrier_gone_without_route: Vec<String> = Vec::new();
    for (name, b) in &spec.bridges {
        match b.state {
            Presence::Present => bridge(
                &mut c,
                &name.value,
                b,
                &mut route_after,
                &mut carrier_gone_without_route,
            ),
            Presence::Absent => remove(&mut c, &name.value, b, opts),
        }
    }
    // The default route: set where the spec says; otherwise left alone, unless moving an
    // address away takes it with it.
    let gw = spec
        .bridges
        .iter()
        .filter(|(_, b)| b.state == Presence::Present)
        .find_map(|(n, b)| b.gateway.map(|g| (n.value.as_str(), g.value)));
    match gw {
        Some((br, g)) if g.0.is_ipv6() => c.refuse(
            &format!("bridge {br}"),
            format!("IPv6 default gateway {g}: hostform manages the IPv4 default route only"),
            "set the IPv6 gateway with your distribution's tools for now",
        ),
        Some((br, g)) => {
            let cur = net.default_route();
            let g = g.to_string();
            let same = cur.is_some_and(|r| {
                r.gateway.as_deref() == Some(g.as_str()) && r.dev.as_deref() == Some(br)
            });
            if !same {
                let res = s("route default");
                c.change(
                    &res,
                    if cur.is_some() {
                        Action::Update
                    } else {
                        Action::Create
                    },
                    match cur {
                        Some(r) => format!(
                            "now via {} dev {}; the spec wants via {g} dev {br}",
                            r.gateway.as_deref().unwrap_or("(none)"),
                            r.dev.as_deref().unwrap_or("(none)")
                        ),
                        None => format!("no default route; the spec wants via {g} dev {br}"),
                    },
                );
                let summary = format!("default route via {g} dev {br}");
                c.plan
                    .connectivity
                    .push(format!("{summary}: changes the default route"));
                c.op(
                    OpId::new(65, Address::Route(s("default")), Verb::Set),
                    &res,
                    summary,
                    ip(&["route", "replace", "default", "via", &g, "dev", br]),
                    Risk::Safe,
                    route_after.clone(),
                    &[],
                );
            }
        }
        None => {
            for l in carrier_gone_without_route {
                c.refuse(
                    &format!("link {l}"),
                    format!(
                        "moving {l}'s addresses to its bridge removes the default route through {l}, and the spec sets no gateway"
                    ),
                    "add `gateway:` to the bridge that takes over the address",
                );
            }
        }
    }
    // What hostform does not manage.
    for (n, l) in &net.links {
        if managed.contains(n.as_str()) || l.link_type == "loopback" {
            continue;
        }
        match &l.master {
            // A running guest's tap or vif on one of the spec's bridges: the hypervisor's.
            Some(m) if managed.contains(m.as_str()) && l.is_guest_nic() => c
                .plan
                .guest_ports
                .entry(m.clone())
                .or_default()
                .push(n.clone()),
            Some(m) if managed.contains(m.as_str()) => {
                c.plan.unmanaged.push(format!("link {n}, port of {m}"))
            }
            _ if l.is_bridge() => c.plan.unmanaged.push(format!("bridge {n}")),
            _ => c.plan.unmanaged.push(format!("link {n}")),
        }
    }
    persistence(&mut c, spec);
    c.plan
}

fn bridge(
    c: &mut Ctx,
    name: &str,
    b: &Bridge,
    route_after: &mut Vec<OpId>,
    carrier_gone: &mut Vec<String>,
) {
    let res = format!("bridge {name}");
    let cur = c.net.links.get(name).cloned();
    if let Some(l) = &cur
        && !l.is_bridge()
    {
        c.refuse(
            &res,
            format!(
                "{name} exists and is not a bridge ({})",
                l.kind.as_deref().unwrap_or(&l.link_type)
            ),
            "rename the bridge in the spec, or remove that link yourself",
        );
        return;
    }
    // Ports must exist and be free (or already ours).
    for p in &b.ports {
        match c.net.links.get(p.value.as_str()) {
            None => {
                c.refuse(
                    &res,
                    format!("port {p} does not exist on this host"),
                    "check the interface names with `ip link`",
                );
                return;
            }
            Some(l) if l.master.as_deref().is_some_and(|m| m != name) => {
                c.refuse(
                    &res,
                    format!(
                        "port {p} is already a port of {}",
                        l.master.as_deref().unwrap_or("")
                    ),
                    "release it from there first, or change the spec",
                );
                return;
            }
            _ => {}
        }
    }
    // A spec address on a link that is neither the bridge nor one of its ports.
    for a in &b.addresses {
        if let Some((other, _)) = c.net.links.iter().find(|(n, l)| {
            n.as_str() != name
                && !b.ports.iter().any(|p| p.value == **n)
                && l.addresses.iter().any(|x| x.addr == a.value.addr)
        }) {
            c.refuse(
                &res,
                format!(
                    "address {} is on {other}, which is not a port of {name}",
                    a.value
                ),
                "move it by hand, or make that link a port of the bridge",
            );
            return;
        }
    }
    let mut reasons: Vec<String> = Vec::new();
    let create = cur.is_none();
    let stp = if b.stp { "1" } else { "0" };
    let mut touches: Vec<&str> = vec![name];
    touches.extend(b.ports.iter().map(|p| p.value.as_str()));
    let mut adds: Vec<OpId> = Vec::new();
    let create_id = OpId::new(60, Address::Link(name.to_string()), Verb::Create);
    let base: Vec<OpId> = if create {
        vec![create_id.clone()]
    } else {
        vec![]
    };
    if create {
        reasons.push("missing".into());
        c.op(
            create_id.clone(),
            &res,
            format!(
                "create bridge {name} (STP {})",
                if b.stp { "on" } else { "off" }
            ),
            ip(&[
                "link",
                "add",
                "name",
                name,
                "type",
                "bridge",
                "stp_state",
                stp,
            ]),
            Risk::Safe,
            vec![],
            &[name],
        );
    } else if let Some(l) = &cur
        && l.stp != Some(b.stp)
    {
        reasons.push(format!("STP {}", if b.stp { "on" } else { "off" }));
        c.op(
            OpId::new(62, Address::Link(name.to_string()), Verb::Stp),
            &res,
            format!("STP {} on {name}", if b.stp { "on" } else { "off" }),
            ip(&[
                "link",
                "set",
                "dev",
                name,
                "type",
                "bridge",
                "stp_state",
                stp,
            ]),
            Risk::Safe,
            vec![],
            &[name],
        );
    }
    let mut enslaved: Vec<OpId> = Vec::new();
    for p in &b.ports {
        let l = c.net.links.get(p.value.as_str());
        if l.is_some_and(|l| l.master.as_deref() == Some(name)) {
            continue;
        }
        reasons.push(format!("enslave {p}"));
        let id = OpId::new(
            61,
            Address::Link(name.to_string()),
            Verb::Port(p.to_string()),
        );
        c.op(
            id.clone(),
            &res,
            format!("enslave {p} to {name}"),
            ip(&["link", "set", "dev", &p.value, "master", name]),
            Risk::Safe,
            base.clone(),
            &[&p.value],
        );
        enslaved.push(id);
    }
    if let Some(m) = b.mtu
        && cur.as_ref().is_none_or(|l| l.mtu != m.value)
    {
        // After the ports: enslaving a port resets a bridge MTU the user did not set.
        reasons.push(format!("MTU {}", m.value));
        let mut after = base.clone();
        after.extend(enslaved.iter().cloned());
        let mtu = m.value.to_string();
        c.op(
            OpId::new(62, Address::Link(name.to_string()), Verb::Mtu),
            &res,
            format!("MTU {mtu} on {name}"),
            ip(&["link", "set", "dev", name, "mtu", &mtu]),
            Risk::Safe,
            after,
            &[name],
        );
    }
    let have: Vec<_> = cur
        .as_ref()
        .map(|l| l.addresses.clone())
        .unwrap_or_default();
    for a in &b.addresses {
        if have.contains(&a.value) {
            continue;
        }
        let from = b
            .ports
            .iter()
            .find(|p| {
                c.net
                    .links
                    .get(p.value.as_str())
                    .is_some_and(|l| l.addresses.contains(&a.value))
            })
            .map(|p| format!(" (moved from {p})"))
            .unwrap_or_default();
        reasons.push(format!("address {}{from}", a.value));
        let id = OpId::new(
            63,
            Address::Link(name.to_string()),
            Verb::Addr(a.value.to_string()),
        );
        let addr = a.value.to_string();
        c.op(
            id.clone(),
            &res,
            format!("add {addr} to {name}{from}"),
            ip(&["addr", "add", &addr, "dev", name]),
            Risk::Safe,
            base.clone(),
            &touches,
        );
        adds.push(id);
    }
    if cur.as_ref().is_none_or(|l| !l.up) {
        reasons.push("up".into());
        let id = OpId::new(63, Address::Link(name.to_string()), Verb::Up);
        c.op(
            id.clone(),
            &res,
            format!("bring {name} up"),
            ip(&["link", "set", "dev", name, "up"]),
            Risk::Safe,
            base.clone(),
            &[name],
        );
        adds.push(id);
    }
    for p in &b.ports {
        if c.net.links.get(p.value.as_str()).is_some_and(|l| !l.up) {
            reasons.push(format!("{p} up"));
            let id = OpId::new(63, Address::Link(p.to_string()), Verb::Up);
            c.op(
                id.clone(),
                &res,
                format!("bring {p} up"),
                ip(&["link", "set", "dev", &p.value, "up"]),
                Risk::Safe,
                vec![],
                &[&p.value],
            );
            adds.push(id);
        }
    }
    // Then the addresses leave the ports (and the bridge's extra ones go).
    let mut dels_after = adds.clone();
    dels_after.extend(enslaved.iter().cloned());
    let default_dev = c
        .net
        .default_route()
        .and_then(|r| r.dev.clone())
        .unwrap_or_default();
    let mut dels: Vec<OpId> = Vec::new();
    for p in &b.ports {
        let Some(l) = c.net.links.get(p.value.as_str()) else {
            continue;
        };
        for a in &l.addresses {
            let moved = b.addresses.iter().any(|x| x.value == *a);
            reasons.push(if moved {
                format!("{a} off {p}")
            } else {
                format!("remove {a} from port {p}")
            });
            let id = OpId::new(64, Address::Link(p.to_string()), Verb::Del(a.to_string()));
            let addr = a.to_string();
            c.op(
                id.clone(),
                &res,
                format!(
                    "remove {addr} from {p}{}",
                    if moved {
                        " (now on the bridge)"
                    } else {
                        " (a port keeps no address)"
                    }
                ),
                ip(&["addr", "del", &addr, "dev", &p.value]),
                Risk::Safe,
                dels_after.clone(),
                &touches,
            );
            dels.push(id);
            if default_dev == p.value && !carrier_gone.contains(&p.value) {
                carrier_gone.push(p.value.clone());
            }
        }
    }
    for a in &have {
        if b.addresses.iter().any(|x| x.value == *a) {
            continue;
        }
        reasons.push(format!("remove {a}"));
        let id = OpId::new(
            64,
            Address::Link(name.to_string()),
            Verb::Del(a.to_string()),
        );
        let addr = a.to_string();
        c.op(
            id.clone(),
            &res,
            format!("remove {addr} from {name} (not in the spec)"),
            ip(&["addr", "del", &addr, "dev", name]),
            Risk::Safe,
            dels_after.clone(),
            &touches,
        );
        dels.push(id);
    }
    route_after.extend(base);
    route_after.extend(enslaved);
    route_after.extend(adds);
    route_after.extend(dels);
    if reasons.is_empty() {
        c.plan.record(&res, super::Outcome::identity());
    } else {
        c.change(
            &res,
            if create {
                Action::Create
            } else {
                Action::Update
            },
            reasons.join(", "),
        );
    }
}

fn remove(c: &mut Ctx, name: &str, b: &Bridge, opts: &Options) {
    let res = format!("bridge {name}");
    let Some(l) = c.net.links.get(name) else {
        c.change(&res, Action::NoOp, "absent, as the spec says");
        return;
    };
    if !l.is_bridge() {
        c.refuse(
            &res,
            format!("{name} is marked absent, but the link of that name is not a bridge"),
            "remove the entry from the spec",
        );
        return;
    }
    if b.prevent_destroy {
        c.refuse(
            &res,
            format!("{name} is marked both `state: absent` and `prevent-destroy`"),
            "remove `prevent-destroy` first if the bridge really must go",
        );
        return;
    }
    let in_use: Vec<&str> = c
        .net
        .links
        .values()
        .filter(|p| p.master.as_deref() == Some(name))
        .filter(|p| !b.ports.iter().any(|x| x.value == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !in_use.is_empty() {
        c.refuse(
            &res,
            format!(
                "{name} has ports that are not in the spec (guests' interfaces?): {}",
                in_use.join(", ")
            ),
            "stop or move the guests attached to it first",
        );
        return;
    }
    if !opts.allow_destroy {
        c.refuse(
            &res,
            format!("removing bridge {name} (`state: absent`) needs --allow-destroy"),
            "re-run with --allow-destroy after reviewing the plan",
        );
        return;
    }
    c.change(&res, Action::Delete, "`state: absent` in the spec");
    c.op(
        OpId::new(69, Address::Link(name.to_string()), Verb::Delete(None)),
        &res,
        format!("delete bridge {name} (its addresses go with it)"),
        ip(&["link", "del", "dev", name]),
        Risk::Destructive,
        vec![],
        &[name],
    );
}

/// The configuration files that persist the bridges. Never overwrites a file without
/// hostform's header; never edits /etc/network/interfaces.
fn persistence(c: &mut Ctx, spec: &Spec) {
    if spec.bridges.is_empty() {
        return;
    }
    let Some(m) = manager(spec, c.net) else {
        c.refuse(
            "network",
            "cannot tell how this host persists its network (no /etc/network/interfaces, networkd not enabled)",
            "set `network: { manager: ifupdown }` or `manager: networkd` in the spec",
        );
        return;
    };
    let files = netconf::render(&spec.host.value, &spec.bridges, m);
    let ifaces: BTreeSet<String> = spec
        .bridges
        .iter()
        .flat_map(|(n, b)| {
            std::iter::once(n.value.clone()).chain(b.ports.iter().map(|p| p.value.clone()))
        })
        .collect();
    // Other files that already configure our interfaces would fight with ours.
    for (path, text) in &c.net.files {
        let ours = match m {
            NetManager::Ifupdown => path == netconf::IFUPDOWN_FILE,
            _ => netconf::is_networkd_name(path) && netconf::owned(text),
        };
        if ours {
            continue;
        }
        let defined: Vec<String> = if path == IFUPDOWN_MAIN
            || (m == NetManager::Ifupdown && path.starts_with(&format!("{IFUPDOWN_DIR}/")))
        {
            netconf::ifupdown_stanzas(text)
                .into_iter()
                .map(|s| s.0)
                .filter(|n| ifaces.contains(n))
                .collect()
        } else if m == NetManager::Networkd
            && path.starts_with(&format!("{NETWORKD_DIR}/"))
            && (path.ends_with(".network") || path.ends_with(".netdev"))
        {
            netconf::networkd_names(text)
                .into_iter()
                .filter(|n| ifaces.contains(n))
                .collect()
        } else {
            vec![]
        };
        if m == NetManager::Networkd && path == IFUPDOWN_MAIN {
            continue;
        }
        if let Some(n) = defined.first() {
            c.refuse(
                &format!("file {path}"),
                format!(
                    "{path} already configures {n}; hostform does not rewrite files it does not own"
                ),
                match m {
                    NetManager::Ifupdown => format!(
                        "remove the `{n}` stanzas from {path}: hostform writes them to {}",
                        netconf::IFUPDOWN_FILE
                    ),
                    _ => format!(
                        "remove {path} or its [Match] Name={n}: hostform writes its own files"
                    ),
                },
            );
        }
    }
    if m == NetManager::Ifupdown && !c.net.ifupdown_bridges {
        c.refuse(
            &format!("file {}", netconf::IFUPDOWN_FILE),
            "ifupdown cannot create bridges at boot on this host (neither bridge-utils' /etc/network/if-pre-up.d/bridge nor ifupdown2 is installed): after a reboot the bridge, and the address on it, would be gone",
            "install bridge-utils (apt-get install bridge-utils), then plan again",
        );
    }
    if m == NetManager::Ifupdown {
        let main = c.net.files.get(IFUPDOWN_MAIN);
        let sourced = main.is_some_and(|t| {
            t.lines().any(|l| {
                let l = l.trim();
                l.starts_with("source-directory /etc/network/interfaces.d")
                    || l.starts_with("source-directory interfaces.d")
                    || l.starts_with("source /etc/network/interfaces.d/")
                    || l.starts_with("source interfaces.d/")
            })
        });
        if !sourced {
            c.refuse(
                &format!("file {IFUPDOWN_MAIN}"),
                format!(
                    "{IFUPDOWN_MAIN} {} /etc/network/interfaces.d, so {} would not be read at boot",
                    if main.is_some() {
                        "does not source"
                    } else {
                        "is missing; nothing sources"
                    },
                    netconf::IFUPDOWN_FILE
                ),
                format!("add `source /etc/network/interfaces.d/*` to {IFUPDOWN_MAIN}"),
            );
        }
    }
    let mut existing: BTreeMap<&str, &str> = BTreeMap::new();
    for (p, t) in &c.net.files {
        existing.insert(p, t);
    }
    for (path, content) in &files {
        let old = existing.get(path.as_str()).copied();
        if old == Some(content.as_str()) {
            continue;
        }
        let res = format!("file {path}");
        if let Some(o) = old
            && !netconf::owned(o)
        {
            c.refuse(
                &res,
                format!(
                    "{path} exists and does not start with `{HEADER}`: hostform does not own it"
                ),
                "move it away, or merge it into the spec and delete it",
            );
            continue;
        }
        c.change(
            &res,
            if old.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            "persist the bridges across reboots",
        );
        let mut op = Op::run(
            OpId::new(66, Address::File(path.to_string()), Verb::Write),
            res,
            format!("write {path}"),
            Vec::new(),
        );
        op.effect = Effect::Write(FileWrite {
            path: path.clone(),
            content: content.clone(),
            mode: 0o644,
            diff: diff(path, old, content),
        });
        c.plan.ops.push(op);
    }
    // networkd files of bridges that are gone from the spec's rendering.
    if m == NetManager::Networkd {
        for (path, text) in &c.net.files {
            if netconf::is_networkd_name(path) && netconf::owned(text) && !files.contains_key(path)
            {
                let res = format!("file {path}");
                c.change(&res, Action::Delete, "its bridge is no longer in the spec");
                c.plan.ops.push(Op::run(
                    OpId::new(66, Address::File(path.to_string()), Verb::Write),
                    res,
                    format!("remove {path}"),
                    vec![s("rm"), s("-f"), s("--"), path.clone()],
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::runner as fx;

    fn spec(yaml: &str) -> Spec {
        match crate::spec::load_str("t.yaml", yaml) {
            Ok(l) => l.spec,
            Err(e) => panic!("{:?}", e.diagnostics),
        }
    }

    fn facts(scenario: &str) -> Facts {
        let mut net = crate::kinds::net::discover(&fx(scenario)).expect("discovers");
        net.ssh_local = None;
        // The sandbox has no /etc/network; a Debian host with ifupdown has this.
        net.files.insert(
            IFUPDOWN_MAIN.into(),
            "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n".into(),
        );
        net.manager = Some(NetManager::Ifupdown);
        net.ifupdown_bridges = true;
        Facts {
            net,
            ..Facts::default()
        }
    }

    const BR0: &str = "host: lab
bridges:
  br0:
    ports: [eth0]
    addresses: [192.0.2.10/24]
    gateway: 192.0.2.1
";

    fn argvs(p: &Plan) -> Vec<String> {
        p.ops
            .iter()
            .map(|o| match o.write() {
                Some(w) => format!("write {}", w.path),
                None => o.argv().join(" "),
            })
            .collect()
    }

    fn planned(yaml: &str, scenario: &str, opts: &Options) -> Plan {
        crate::plan::plan_host(&spec(yaml), &facts(scenario), opts)
    }

    #[test]
    fn moving_the_hosts_address_to_a_new_bridge() {
        let p = planned(BR0, "addressed", &Options::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "ip link add name br0 type bridge stp_state 0",
                "ip link set dev eth0 master br0",
                "ip addr add 192.0.2.10/24 dev br0",
                "ip link set dev br0 up",
                "ip addr del 192.0.2.10/24 dev eth0",
                "ip route replace default via 192.0.2.1 dev br0",
                "write /etc/network/interfaces.d/hostform",
            ]
        );
        // Add on the bridge before the delete on the port; the route after both.
        let del = &p.ops[4];
        assert!(del.after.iter().any(|a| a == "63:br0:addr:192.0.2.10/24"));
        assert!(del.after.iter().any(|a| a == "61:br0:port:eth0"));
        assert!(
            p.ops[5]
                .after
                .iter()
                .any(|a| a == "64:eth0:del:192.0.2.10/24")
        );
        // eth0 carries the address and the default route: the plan says so.
        assert!(!p.connectivity.is_empty());
        assert!(
            p.connectivity.iter().any(|c| c.contains("eth0 carries")),
            "{:?}",
            p.connectivity
        );
        assert_eq!(p.unmanaged, ["link dummy0"]);
        let w = p.ops[6].write().unwrap();
        assert!(
            w.diff
                .starts_with("--- /dev/null\n+++ /etc/network/interfaces.d/hostform\n"),
            "{}",
            w.diff
        );
        assert!(w.diff.contains("+    bridge_ports eth0\n"), "{}", w.diff);
        let text = crate::plan::render(&p, false);
        assert!(text.contains("connectivity risk:"), "{text}");
        assert!(
            text.contains("? link dummy0  (not in the spec: left alone)"),
            "{text}"
        );
    }

    #[test]
    fn the_bridged_host_plans_nothing() {
        // The captured bridge: br0 with eth0 and dummy0, STP on, MTU 1400.
        let yaml = "host: lab
bridges:
  br0:
    ports: [eth0, dummy0]
    addresses: [192.0.2.10/24]
    gateway: 192.0.2.1
    stp: true
    mtu: 1400
";
        let mut f = facts("bridge");
        let files = netconf::render("lab", &spec(yaml).bridges, NetManager::Ifupdown);
        f.net.files.extend(files);
        let p = crate::plan::plan_host(&spec(yaml), &f, &Options::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(!p.has_changes(), "{:?}", argvs(&p));
        assert!(p.connectivity.is_empty());
        assert_eq!(p.changes[0].action, Action::NoOp);
    }

    #[test]
    fn updates_stp_mtu_and_extra_addresses_and_leaves_guest_ports_alone() {
        let yaml = "host: lab
network: { manager: ifupdown }
bridges:
  br0:
    ports: [eth0]
    addresses: [192.0.2.20/24]
    gateway: 192.0.2.1
";
        let p = planned(yaml, "bridge", &Options::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "ip link set dev br0 type bridge stp_state 0",
                "ip addr add 192.0.2.20/24 dev br0",
                "ip addr del 192.0.2.10/24 dev br0",
                "write /etc/network/interfaces.d/hostform",
            ]
        );
        assert_eq!(p.unmanaged, ["link dummy0, port of br0"]);
        // dummy0 stays enslaved: no `nomaster` anywhere.
        assert!(!argvs(&p).iter().any(|a| a.contains("nomaster")));
        assert!(!p.connectivity.is_empty(), "br0 carries the default route");
    }

    #[test]
    fn refusals_missing_port_other_files_and_no_gateway() {
        let p = planned(
            "host: lab\nbridges:\n  br0: { ports: [eth9] }\n",
            "addressed",
            &Options::default(),
        );
        assert!(
            p.refusals[0].reason.contains("port eth9 does not exist"),
            "{:?}",
            p.refusals
        );

        // Moving eth0's address without a gateway would drop the default route.
        let p = planned(
            "host: lab\nbridges:\n  br0: { ports: [eth0], addresses: [192.0.2.10/24] }\n",
            "addressed",
            &Options::default(),
        );
        assert!(
            p.refusals
                .iter()
                .any(|r| r.reason.contains("removes the default route")),
            "{:?}",
            p.refusals
        );

        // The operator's own interfaces file defines eth0: not rewritten, refused.
        let mut f = facts("addressed");
        f.net.files.insert(
            IFUPDOWN_MAIN.into(),
            "source /etc/network/interfaces.d/*\nauto eth0\niface eth0 inet static\n    address 192.0.2.10/24\n".into(),
        );
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        let r = p
            .refusals
            .iter()
            .find(|r| r.resource == "file /etc/network/interfaces")
            .expect("refused");
        assert!(r.hint.contains("remove the `eth0` stanzas"), "{r:?}");

        // A file of that name that hostform does not own.
        let mut f = facts("addressed");
        f.net
            .files
            .insert(netconf::IFUPDOWN_FILE.into(), "auto br9\n".into());
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(
            p.refusals
                .iter()
                .any(|r| r.reason.contains("does not own it")),
            "{:?}",
            p.refusals
        );

        // interfaces.d not sourced.
        let mut f = facts("addressed");
        f.net.files.insert(
            IFUPDOWN_MAIN.into(),
            "auto lo\niface lo inet loopback\n".into(),
        );
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(
            p.refusals
                .iter()
                .any(|r| r.reason.contains("does not source")),
            "{:?}",
            p.refusals
        );

        // ifupdown without bridge support would lose the bridge at the next boot.
        let mut f = facts("addressed");
        f.net.ifupdown_bridges = false;
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(
            p.refusals.iter().any(|r| r.hint.contains("bridge-utils")),
            "{:?}",
            p.refusals
        );

        // No manager known.
        let mut f = facts("addressed");
        f.net.manager = None;
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(
            p.refusals
                .iter()
                .any(|r| r.hint.contains("manager: ifupdown")),
            "{:?}",
            p.refusals
        );

        // Unreadable network.
        let p = crate::plan::plan_host(&spec(BR0), &Facts::default(), &Options::default());
        assert!(p.refusals[0].reason.contains("could not be read"));
    }

    #[test]
    fn removing_a_bridge_needs_allow_destroy_and_no_guest_ports() {
        let yaml = "host: lab\nnetwork: { manager: ifupdown }\nbridges:\n  br0: { ports: [eth0, dummy0], state: absent }\n";
        let p = planned(yaml, "bridge", &Options::default());
        assert!(
            p.refusals[0].reason.contains("needs --allow-destroy"),
            "{:?}",
            p.refusals
        );
        assert!(!p.has_changes() || p.ops.iter().all(|o| o.write().is_some()));
        let p = planned(
            yaml,
            "bridge",
            &Options {
                allow_destroy: true,
            },
        );
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let del = p.ops.iter().find(|o| o.id == "69:br0:delete").unwrap();
        assert_eq!(del.argv().join(" "), "ip link del dev br0");
        assert_eq!(del.risk, Risk::Destructive);
        assert!(!p.connectivity.is_empty(), "br0 carries the default route");
        // dummy0 is not in the spec: it may be a guest's interface.
        let yaml = "host: lab\nbridges:\n  br0: { ports: [eth0], state: absent }\n";
        let p = planned(
            yaml,
            "bridge",
            &Options {
                allow_destroy: true,
            },
        );
        assert!(p.refusals[0].reason.contains("dummy0"), "{:?}", p.refusals);
        // prevent-destroy with absent is a validation error; the planner refuses it as well.
        let mut sp = spec("host: lab\nbridges:\n  br0: { ports: [eth0, dummy0], state: absent }\n");
        sp.bridges[0].prevent_destroy = true;
        let p = crate::plan::plan_host(
            &sp,
            &facts("bridge"),
            &Options {
                allow_destroy: true,
            },
        );
        assert!(
            p.refusals[0].reason.contains("prevent-destroy"),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn networkd_files_are_planned_with_diffs() {
        let mut f = facts("addressed");
        f.net.manager = Some(NetManager::Networkd);
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let writes: Vec<&str> = p
            .ops
            .iter()
            .filter_map(|o| o.write().as_ref().map(|w| w.path.as_str()))
            .collect();
        assert_eq!(
            writes,
            [
                "/etc/systemd/network/10-hostform-br0.netdev",
                "/etc/systemd/network/10-hostform-br0.network",
                "/etc/systemd/network/10-hostform-eth0.network",
            ]
        );
        // An operator's .network for eth0 is not rewritten: refused.
        f.net.files.insert(
            "/etc/systemd/network/20-wired.network".into(),
            "[Match]\nName=eth0\n\n[Network]\nDHCP=yes\n".into(),
        );
        let p = crate::plan::plan_host(&spec(BR0), &f, &Options::default());
        assert!(
            p.refusals.iter().any(|r| r.resource.contains("20-wired")),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn plans_are_deterministic() {
        let a = planned(BR0, "addressed", &Options::default());
        let b = planned(BR0, "addressed", &Options::default());
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            serde_json::to_string(&b).unwrap()
        );
    }
}
