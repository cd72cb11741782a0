//! The links: a bridge made or brought to the spec (its ports, STP, MTU, addresses, and the
//! addresses that leave its ports), a bridge removed, the default route, and the links the
//! spec does not name.

use std::collections::BTreeSet;

use super::{Ctx, ip, s};
use crate::kinds::net::Link;
use crate::plan::{Action, Address, Op, OpId, Options, Outcome, Verb};
use crate::spec::types::{Bridge, Presence, Spec};

/// One present bridge's planning so far: why it changes, and the ops later steps wait for.
struct Steps<'b> {
    name: &'b str,
    res: String,
    /// The links its address ops touch: the bridge and its ports.
    touches: Vec<&'b str>,
    reasons: Vec<String>,
    /// The bridge's creation, when it is new: every op on it waits for it.
    base: Vec<OpId>,
    enslaved: Vec<OpId>,
    /// Addresses added and links brought up: the deletions wait for them.
    adds: Vec<OpId>,
    dels: Vec<OpId>,
}

impl Steps<'_> {
    /// What the deletions of addresses wait for: add first, then delete on the port.
    fn dels_after(&self) -> Vec<OpId> {
        let mut after = self.adds.clone();
        after.extend(self.enslaved.iter().cloned());
        after
    }
}

/// A bridge the spec wants present: create it or bring it to the spec. Its ops join
/// `route_after`; a port whose address leaves it while it holds the default route joins
/// `carrier_gone`.
pub(super) fn present(
    c: &mut Ctx,
    name: &str,
    b: &Bridge,
    route_after: &mut Vec<OpId>,
    carrier_gone: &mut Vec<String>,
) {
    let res = format!("bridge {name}");
    let cur = c.net.links.get(name).cloned();
    if !admissible(c, &res, name, b, cur.as_ref()) {
        return;
    }
    let create = cur.is_none();
    let mut touches: Vec<&str> = vec![name];
    touches.extend(b.ports.iter().map(|p| p.value.as_str()));
    let mut st = Steps {
        name,
        res,
        touches,
        reasons: Vec::new(),
        base: Vec::new(),
        enslaved: Vec::new(),
        adds: Vec::new(),
        dels: Vec::new(),
    };
    create_or_stp(c, &mut st, b, cur.as_ref());
    enslave(c, &mut st, b);
    mtu(c, &mut st, b, cur.as_ref());
    let have: Vec<_> = cur
        .as_ref()
        .map(|l| l.addresses.clone())
        .unwrap_or_default();
    add_addresses(c, &mut st, b, &have);
    bring_up(c, &mut st, b, cur.as_ref());
    // Then the addresses leave the ports (and the bridge's extra ones go).
    clear_ports(c, &mut st, b, carrier_gone);
    remove_extra(c, &mut st, b, &have);
    let Steps {
        res,
        reasons,
        base,
        enslaved,
        adds,
        dels,
        ..
    } = st;
    route_after.extend(base);
    route_after.extend(enslaved);
    route_after.extend(adds);
    route_after.extend(dels);
    let outcome = if reasons.is_empty() {
        Outcome::identity()
    } else {
        let action = if create {
            Action::Create
        } else {
            Action::Update
        };
        // A bridge's reasons read as one list, separated by commas.
        Outcome::Changed(action, vec![reasons.join(", ")])
    };
    c.record(&res, outcome);
}

/// Whether the bridge can be planned: the name is free or a bridge, its ports exist and are
/// free (or already its own), and its addresses are on no other link. Refuses otherwise.
fn admissible(c: &mut Ctx, res: &str, name: &str, b: &Bridge, cur: Option<&Link>) -> bool {
    if let Some(l) = cur
        && !l.is_bridge()
    {
        c.refuse(
            res,
            format!(
                "{name} exists and is not a bridge ({})",
                l.kind.as_deref().unwrap_or(&l.link_type)
            ),
            "rename the bridge in the spec, or remove that link yourself",
        );
        return false;
    }
    // Ports must exist and be free (or already ours).
    for p in &b.ports {
        match c.net.links.get(p.value.as_str()) {
            None => {
                c.refuse(
                    res,
                    format!("port {p} does not exist on this host"),
                    "check the interface names with `ip link`",
                );
                return false;
            }
            Some(l) if l.master.as_deref().is_some_and(|m| m != name) => {
                c.refuse(
                    res,
                    format!(
                        "port {p} is already a port of {}",
                        l.master.as_deref().unwrap_or("")
                    ),
                    "release it from there first, or change the spec",
                );
                return false;
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
                res,
                format!(
                    "address {} is on {other}, which is not a port of {name}",
                    a.value
                ),
                "move it by hand, or make that link a port of the bridge",
            );
            return false;
        }
    }
    true
}

/// Create the bridge with its STP, or set the STP of the one there.
fn create_or_stp(c: &mut Ctx, st: &mut Steps, b: &Bridge, cur: Option<&Link>) {
    let name = st.name;
    let stp = if b.stp { "1" } else { "0" };
    let on_off = if b.stp { "on" } else { "off" };
    if cur.is_none() {
        let create_id = OpId::new(60, Address::Link(name.to_string()), Verb::Create);
        st.base.push(create_id.clone());
        st.reasons.push("missing".into());
        c.op(
            Op::run(
                create_id,
                &st.res,
                format!("create bridge {name} (STP {on_off})"),
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
            ),
            &[name],
        );
    } else if let Some(l) = cur
        && l.stp != Some(b.stp)
    {
        st.reasons.push(format!("STP {on_off}"));
        c.op(
            Op::run(
                OpId::new(62, Address::Link(name.to_string()), Verb::Stp),
                &st.res,
                format!("STP {on_off} on {name}"),
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
            ),
            &[name],
        );
    }
}

/// Make each port that is not yet one a port of the bridge.
fn enslave(c: &mut Ctx, st: &mut Steps, b: &Bridge) {
    let name = st.name;
    for p in &b.ports {
        let l = c.net.links.get(p.value.as_str());
        if l.is_some_and(|l| l.master.as_deref() == Some(name)) {
            continue;
        }
        st.reasons.push(format!("enslave {p}"));
        let id = OpId::new(
            61,
            Address::Link(name.to_string()),
            Verb::Port(p.to_string()),
        );
        c.op(
            Op::run(
                id.clone(),
                &st.res,
                format!("enslave {p} to {name}"),
                ip(&["link", "set", "dev", &p.value, "master", name]),
            )
            .after(st.base.clone()),
            &[&p.value],
        );
        st.enslaved.push(id);
    }
}

/// The spec's MTU, after the ports: enslaving a port resets a bridge MTU the user did not set.
fn mtu(c: &mut Ctx, st: &mut Steps, b: &Bridge, cur: Option<&Link>) {
    let name = st.name;
    let Some(m) = b.mtu else { return };
    if cur.is_some_and(|l| l.mtu == m.value) {
        return;
    }
    st.reasons.push(format!("MTU {}", m.value));
    let mut after = st.base.clone();
    after.extend(st.enslaved.iter().cloned());
    let mtu = m.value.to_string();
    c.op(
        Op::run(
            OpId::new(62, Address::Link(name.to_string()), Verb::Mtu),
            &st.res,
            format!("MTU {mtu} on {name}"),
            ip(&["link", "set", "dev", name, "mtu", &mtu]),
        )
        .after(after),
        &[name],
    );
}

/// Add the spec's addresses the bridge lacks (saying which port each moves from).
fn add_addresses(c: &mut Ctx, st: &mut Steps, b: &Bridge, have: &[crate::spec::units::Cidr]) {
    let name = st.name;
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
        st.reasons.push(format!("address {}{from}", a.value));
        let id = OpId::new(
            63,
            Address::Link(name.to_string()),
            Verb::Addr(a.value.to_string()),
        );
        let addr = a.value.to_string();
        c.op(
            Op::run(
                id.clone(),
                &st.res,
                format!("add {addr} to {name}{from}"),
                ip(&["addr", "add", &addr, "dev", name]),
            )
            .after(st.base.clone()),
            &st.touches,
        );
        st.adds.push(id);
    }
}

/// Bring the bridge up, then any of its ports that is down.
fn bring_up(c: &mut Ctx, st: &mut Steps, b: &Bridge, cur: Option<&Link>) {
    let name = st.name;
    if cur.is_none_or(|l| !l.up) {
        st.reasons.push("up".into());
        let id = OpId::new(63, Address::Link(name.to_string()), Verb::Up);
        c.op(
            Op::run(
                id.clone(),
                &st.res,
                format!("bring {name} up"),
                ip(&["link", "set", "dev", name, "up"]),
            )
            .after(st.base.clone()),
            &[name],
        );
        st.adds.push(id);
    }
    for p in &b.ports {
        if c.net.links.get(p.value.as_str()).is_some_and(|l| !l.up) {
            st.reasons.push(format!("{p} up"));
            let id = OpId::new(63, Address::Link(p.to_string()), Verb::Up);
            c.op(
                Op::run(
                    id.clone(),
                    &st.res,
                    format!("bring {p} up"),
                    ip(&["link", "set", "dev", &p.value, "up"]),
                ),
                &[&p.value],
            );
            st.adds.push(id);
        }
    }
}

/// Remove every address from the ports (a port keeps none: the bridge's move there), noting a
/// port that held the default route in `carrier_gone`.
fn clear_ports(c: &mut Ctx, st: &mut Steps, b: &Bridge, carrier_gone: &mut Vec<String>) {
    let dels_after = st.dels_after();
    let net = c.net;
    let default_dev = net
        .default_route()
        .and_then(|r| r.dev.clone())
        .unwrap_or_default();
    for p in &b.ports {
        let Some(l) = net.links.get(p.value.as_str()) else {
            continue;
        };
        for a in &l.addresses {
            let moved = b.addresses.iter().any(|x| x.value == *a);
            st.reasons.push(if moved {
                format!("{a} off {p}")
            } else {
                format!("remove {a} from port {p}")
            });
            let id = OpId::new(64, Address::Link(p.to_string()), Verb::Del(a.to_string()));
            let addr = a.to_string();
            c.op(
                Op::run(
                    id.clone(),
                    &st.res,
                    format!(
                        "remove {addr} from {p}{}",
                        if moved {
                            " (now on the bridge)"
                        } else {
                            " (a port keeps no address)"
                        }
                    ),
                    ip(&["addr", "del", &addr, "dev", &p.value]),
                )
                .after(dels_after.clone()),
                &st.touches,
            );
            st.dels.push(id);
            if default_dev == p.value && !carrier_gone.contains(&p.value) {
                carrier_gone.push(p.value.clone());
            }
        }
    }
}

/// Remove the bridge's addresses that the spec does not list.
fn remove_extra(c: &mut Ctx, st: &mut Steps, b: &Bridge, have: &[crate::spec::units::Cidr]) {
    let name = st.name;
    let dels_after = st.dels_after();
    for a in have {
        if b.addresses.iter().any(|x| x.value == *a) {
            continue;
        }
        st.reasons.push(format!("remove {a}"));
        let id = OpId::new(
            64,
            Address::Link(name.to_string()),
            Verb::Del(a.to_string()),
        );
        let addr = a.to_string();
        c.op(
            Op::run(
                id.clone(),
                &st.res,
                format!("remove {addr} from {name} (not in the spec)"),
                ip(&["addr", "del", &addr, "dev", name]),
            )
            .after(dels_after.clone()),
            &st.touches,
        );
        st.dels.push(id);
    }
}

/// A bridge the spec marks `state: absent`: deleted with --allow-destroy, when nothing but
/// its spec ports is attached to it.
pub(super) fn absent(c: &mut Ctx, name: &str, b: &Bridge, opts: &Options) {
    let res = format!("bridge {name}");
    let Some(l) = c.net.links.get(name) else {
        c.record(&res, Outcome::Identity("absent, as the spec says".into()));
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
    c.record(
        &res,
        Outcome::Changed(Action::Delete, vec!["`state: absent` in the spec".into()]),
    );
    c.op(
        Op::run(
            OpId::new(69, Address::Link(name.to_string()), Verb::Delete(None)),
            &res,
            format!("delete bridge {name} (its addresses go with it)"),
            ip(&["link", "del", "dev", name]),
        )
        .destructive(),
        &[name],
    );
}

/// The default route: set where the spec says (after every op of the bridges); otherwise left
/// alone, unless moving an address away takes it with it (the links in `carrier_gone`).
pub(super) fn default_route(
    c: &mut Ctx,
    spec: &Spec,
    route_after: Vec<OpId>,
    carrier_gone: Vec<String>,
) {
    let gw = spec
        .bridges
        .iter()
        .filter(|(_, b)| b.state == Presence::Present)
        .find_map(|(n, b)| b.gateway.map(|g| (n.value.as_str(), g.value)));
    let Some((br, g)) = gw else {
        for l in carrier_gone {
            c.refuse(
                &format!("link {l}"),
                format!(
                    "moving {l}'s addresses to its bridge removes the default route through {l}, and the spec sets no gateway"
                ),
                "add `gateway:` to the bridge that takes over the address",
            );
        }
        return;
    };
    if g.0.is_ipv6() {
        c.refuse(
            &format!("bridge {br}"),
            format!("IPv6 default gateway {g}: hostform manages the IPv4 default route only"),
            "set the IPv6 gateway with your distribution's tools for now",
        );
        return;
    }
    let cur = c.net.default_route();
    let g = g.to_string();
    let same = cur
        .is_some_and(|r| r.gateway.as_deref() == Some(g.as_str()) && r.dev.as_deref() == Some(br));
    if same {
        return;
    }
    let res = s("route default");
    let outcome = match cur {
        Some(r) => Outcome::Changed(
            Action::Update,
            vec![format!(
                "now via {} dev {}; the spec wants via {g} dev {br}",
                r.gateway.as_deref().unwrap_or("(none)"),
                r.dev.as_deref().unwrap_or("(none)")
            )],
        ),
        None => Outcome::Changed(
            Action::Create,
            vec![format!("no default route; the spec wants via {g} dev {br}")],
        ),
    };
    c.record(&res, outcome);
    let summary = format!("default route via {g} dev {br}");
    c.plan
        .connectivity
        .push(format!("{summary}: changes the default route"));
    c.op(
        Op::run(
            OpId::new(65, Address::Route(s("default")), Verb::Set),
            &res,
            summary,
            ip(&["route", "replace", "default", "via", &g, "dev", br]),
        )
        .after(route_after),
        &[],
    );
}

/// What hostform does not manage: reported, never touched. A running guest's tap or vif on
/// one of the spec's bridges is the hypervisor's, listed with its bridge.
pub(super) fn unmanaged(c: &mut Ctx, spec: &Spec) {
    let mut managed: BTreeSet<&str> = BTreeSet::new();
    for (name, b) in &spec.bridges {
        managed.insert(&name.value);
        for p in &b.ports {
            managed.insert(&p.value);
        }
    }
    for (n, l) in &c.net.links {
        if managed.contains(n.as_str()) || l.link_type == "loopback" {
            continue;
        }
        match &l.master {
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
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BR0, argvs, facts, planned, spec};
    use crate::kinds::netconf;
    use crate::plan::{Action, Options, Risk};
    use crate::spec::types::NetManager;

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
    fn refusals_missing_port_and_no_gateway() {
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
                ..Options::default()
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
                ..Options::default()
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
                ..Options::default()
            },
        );
        assert!(
            p.refusals[0].reason.contains("prevent-destroy"),
            "{:?}",
            p.refusals
        );
    }
}
