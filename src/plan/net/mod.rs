//! Network planning: bridges, their ports, the move of a port's addresses to its bridge, the
//! default route, and the files that persist it all (ifupdown or systemd-networkd).
//!
//! The room is cut by what it plans: [`bridge`] the links themselves (bridges, ports,
//! addresses, the default route, and the links the spec does not name); [`persist`] the files
//! that bring them back at boot. This module holds the room's entry, [`plan`], and what both
//! share.
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

mod bridge;
mod persist;

use super::{Op, OpId, Options, Outcome, Plan};
use crate::discover::Facts;
use crate::kinds::net::NetFacts;
use crate::spec::types::{NetManager, Presence, Spec};

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
    /// Record what planning `resource` concluded.
    fn record(&mut self, resource: &str, outcome: Outcome) {
        self.plan.record(resource, outcome);
    }
    fn refuse(&mut self, resource: &str, reason: impl Into<String>, hint: impl Into<String>) {
        self.plan.refuse(resource, reason, hint);
    }
    /// Add an operation; one touching a link that carries this host's address or default
    /// route is named in the plan's connectivity risks.
    fn op(&mut self, op: Op, touches: &[&str]) {
        if let Some(l) = touches
            .iter()
            .find(|l| self.carriers.iter().any(|c| c == *l))
        {
            self.plan.connectivity.push(format!(
                "{}: {l} carries this host's address or default route",
                op.summary
            ));
        }
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
    super::room::unified_diff(old.unwrap_or(""), new, &old_label, path)
}

/// The network room.
pub fn plan(into: &mut Plan, spec: &Spec, facts: &Facts, opts: &Options) {
    super::merge(into, bridges(spec, facts, opts));
}

/// The room's steps, in order: each bridge, the default route, the links the spec does not
/// name, then the files.
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
    // What the default route waits for, and the links whose move takes it away.
    let mut route_after: Vec<OpId> = Vec::new();
    let mut carrier_gone: Vec<String> = Vec::new();
    for (name, b) in &spec.bridges {
        match b.state {
            Presence::Present => {
                bridge::present(&mut c, &name.value, b, &mut route_after, &mut carrier_gone)
            }
            Presence::Absent => bridge::absent(&mut c, &name.value, b, opts),
        }
    }
    bridge::default_route(&mut c, spec, route_after, carrier_gone);
    bridge::unmanaged(&mut c, spec);
    persist::persistence(&mut c, spec);
    c.plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::net::IFUPDOWN_MAIN;
    use crate::runner::fixtures::runner as fx;

    pub(super) fn spec(yaml: &str) -> Spec {
        match crate::spec::load_str("t.yaml", yaml) {
            Ok(l) => l.spec,
            Err(e) => panic!("{:?}", e.diagnostics),
        }
    }

    pub(super) fn facts(scenario: &str) -> Facts {
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

    pub(super) const BR0: &str = "host: lab
bridges:
  br0:
    ports: [eth0]
    addresses: [192.0.2.10/24]
    gateway: 192.0.2.1
";

    pub(super) fn argvs(p: &Plan) -> Vec<String> {
        p.ops
            .iter()
            .map(|o| match o.write() {
                Some(w) => format!("write {}", w.path),
                None => o.argv().join(" "),
            })
            .collect()
    }

    pub(super) fn planned(yaml: &str, scenario: &str, opts: &Options) -> Plan {
        crate::plan::plan_host(&spec(yaml), &facts(scenario), opts)
    }

    #[test]
    fn an_unreadable_network_is_refused() {
        // Unreadable network.
        let p = crate::plan::plan_host(&spec(BR0), &Facts::default(), &Options::default());
        assert!(p.refusals[0].reason.contains("could not be read"));
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
