//! The files that persist the bridges across reboots: hostform's own ifupdown file or
//! systemd-networkd files, rendered by `kinds::netconf`. Never overwrites a file without
//! hostform's header; never edits /etc/network/interfaces.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, diff, manager, s};
use crate::kinds::net::{IFUPDOWN_DIR, IFUPDOWN_MAIN, NETWORKD_DIR};
use crate::kinds::netconf::{self, HEADER};
use crate::plan::{Action, Address, Effect, FileWrite, Op, OpId, Outcome, Verb};
use crate::spec::types::{NetManager, Spec};

/// The configuration files that persist the bridges, under the host's manager.
pub(super) fn persistence(c: &mut Ctx, spec: &Spec) {
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
    foreign_files(c, spec, m);
    if m == NetManager::Ifupdown {
        ifupdown_ready(c);
    }
    write(c, &files);
    if m == NetManager::Networkd {
        remove_stale(c, &files);
    }
}

/// Other files that already configure our interfaces would fight with ours: refused.
fn foreign_files(c: &mut Ctx, spec: &Spec, m: NetManager) {
    let ifaces: BTreeSet<String> = spec
        .bridges
        .iter()
        .flat_map(|(n, b)| {
            std::iter::once(n.value.clone()).chain(b.ports.iter().map(|p| p.value.clone()))
        })
        .collect();
    let net = c.net;
    for (path, text) in &net.files {
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
}

/// ifupdown must be able to make bridges at boot, and read hostform's file: refused otherwise.
fn ifupdown_ready(c: &mut Ctx) {
    if !c.net.ifupdown_bridges {
        c.refuse(
            &format!("file {}", netconf::IFUPDOWN_FILE),
            "ifupdown cannot create bridges at boot on this host (neither bridge-utils' /etc/network/if-pre-up.d/bridge nor ifupdown2 is installed): after a reboot the bridge, and the address on it, would be gone",
            "install bridge-utils (apt-get install bridge-utils), then plan again",
        );
    }
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

/// Write each rendered file that differs from the host's, when hostform owns it.
fn write(c: &mut Ctx, files: &BTreeMap<String, String>) {
    let mut existing: BTreeMap<&str, &str> = BTreeMap::new();
    for (p, t) in &c.net.files {
        existing.insert(p, t);
    }
    for (path, content) in files {
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
        let action = if old.is_some() {
            Action::Update
        } else {
            Action::Create
        };
        c.record(
            &res,
            Outcome::Changed(action, vec!["persist the bridges across reboots".into()]),
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
}

/// networkd files of bridges that are gone from the spec's rendering.
fn remove_stale(c: &mut Ctx, files: &BTreeMap<String, String>) {
    let net = c.net;
    for (path, text) in &net.files {
        if netconf::is_networkd_name(path) && netconf::owned(text) && !files.contains_key(path) {
            let res = format!("file {path}");
            c.record(
                &res,
                Outcome::Changed(
                    Action::Delete,
                    vec!["its bridge is no longer in the spec".into()],
                ),
            );
            c.plan.ops.push(Op::run(
                OpId::new(66, Address::File(path.to_string()), Verb::Write),
                res,
                format!("remove {path}"),
                vec![s("rm"), s("-f"), s("--"), path.clone()],
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{BR0, facts, spec};
    use super::*;
    use crate::plan::Options;

    #[test]
    fn refusals_other_files_unsourced_and_no_manager() {
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
}
