//! A libvirt guest's configuration: its domain defined (or redefined with the same uuid) from
//! the spec, devices added to a running guest attached live, and whether it starts with the
//! host (autostart).

use super::{Ctx, Findings, Guest, Seen, class_word, lv_ops, op, unified};
use crate::discover::Facts;
use crate::kinds::guest::{ChangeClass, GuestConfig, classify};
use crate::kinds::libvirt;
use crate::plan::{Action, Address, OpId, Verb};
use crate::spec::types::VmState;

/// What libvirt has of the domain `name`.
pub(super) fn seen<'a>(facts: &'a Facts, name: &str) -> Seen<'a> {
    let seen = facts
        .guests
        .libvirt
        .as_ref()
        .and_then(|l| l.domains.get(name));
    let definition = seen.and_then(|d| d.definition.as_ref());
    Seen {
        running: seen.is_some_and(|d| d.running()),
        defined: seen.is_some(),
        current: definition.map(|d| &d.config),
        uuid: definition.and_then(|d| d.uuid.as_deref()),
        autostart: seen.is_some_and(|d| d.autostart),
    }
}

/// Define the domain when it is missing or differs from the spec: the define's id, which the
/// later steps wait for.
pub(super) fn configure(c: &mut Ctx, g: &Guest, f: &mut Findings) -> Option<OpId> {
    let (name, defined) = (g.name, g.seen.defined);
    // Compare what libvirt will store: our XML read back the way libvirt's is (read back only
    // when there is a definition to compare it with).
    let xml = libvirt::render_domain(&g.want, g.seen.uuid, c.domain_type);
    let compared = g.seen.current.map(|cur| {
        let want_cmp = libvirt::parse_domain(&xml)
            .map(|d| d.config)
            .unwrap_or_else(|_| g.want.clone());
        (cur, want_cmp)
    });
    let changes = match &compared {
        Some((cur, want_cmp)) => classify(cur, want_cmp),
        None if defined => vec![("definition could not be read".into(), ChangeClass::Restart)],
        None => Vec::new(),
    };
    if defined && changes.is_empty() {
        return None;
    }
    let summary = match &g.seen.current {
        Some(cur) if defined => {
            // The difference in the fields hostform manages, both sides rendered the same way.
            let now = libvirt::render_domain(cur, g.seen.uuid, c.domain_type);
            let diff = unified(&now, &xml, &format!("domain {name}"));
            format!(
                "redefine {name} (the same uuid)\n{}",
                diff.lines()
                    .map(|l| format!("      {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
        _ if defined => format!("redefine {name} (the same uuid)"),
        _ => format!("define {name}"),
    };
    let o = op(
        OpId::new(71, Address::Guest(name.to_string()), Verb::Define),
        &g.res,
        summary,
        c.virsh(&["define", "/dev/stdin"]),
    );
    let mut o = o.with_stdin(xml);
    o.after = lv_ops(&g.want);
    let id = o.id.clone();
    c.out.ops.push(o);
    if !defined {
        f.configure(Action::Create, ["not defined".to_string()]);
        return Some(id);
    }
    let running = g.seen.running;
    f.configure(
        Action::Update,
        changes
            .iter()
            .map(|(what, class)| format!("{what}: {}", class_word(*class, running))),
    );
    // Added disks reach the running guest now.
    if running && let Some((cur, want_cmp)) = &compared {
        attach_live(c, g, cur, want_cmp);
    }
    Some(id)
}

/// Attach the disks and NICs the spec adds to the running guest, after its redefinition.
fn attach_live(c: &mut Ctx, g: &Guest, cur: &GuestConfig, want_cmp: &GuestConfig) {
    let name = g.name;
    let define = || OpId::new(71, Address::Guest(name.to_string()), Verb::Define);
    let attach = |verb: Verb| OpId::new(72, Address::Guest(name.to_string()), verb);
    for d in &want_cmp.disks {
        if cur.disks.iter().any(|c| c.target == d.target) {
            continue;
        }
        let a = op(
            attach(Verb::Attach(d.target.to_string())),
            &g.res,
            format!("attach {} to the running {name} as {}", d.source, d.target),
            c.virsh(&["attach-device", name, "/dev/stdin", "--live"]),
        );
        let mut a = a.with_stdin(libvirt::disk_xml(d, ""));
        a.after = vec![define()];
        a.after.extend(lv_ops(&g.want));
        c.out.ops.push(a);
    }
    for (i, n) in crate::kinds::guest::added_nics(cur, want_cmp) {
        let a = op(
            attach(Verb::attach_nic(i, &n.bridge)),
            &g.res,
            format!("attach a NIC on {} to the running {name}", n.bridge),
            c.virsh(&["attach-device", name, "/dev/stdin", "--live"]),
        );
        let mut a = a.with_stdin(libvirt::nic_xml(n, ""));
        a.after = vec![define()];
        c.out.ops.push(a);
    }
}

/// Mark the guest to start with the host, or not: on by default when it should run.
pub(super) fn autostart(c: &mut Ctx, g: &Guest, config_op: Option<&OpId>, f: &mut Findings) {
    let name = g.name;
    let want_auto = g.vm.autostart.unwrap_or(g.want_state == VmState::Running);
    if want_auto == g.seen.autostart {
        return;
    }
    let mut o = op(
        OpId::new(73, Address::Guest(name.to_string()), Verb::Autostart),
        &g.res,
        if want_auto {
            format!("mark {name} to start with the host (autostart)")
        } else {
            format!("unmark {name}: not started with the host (autostart off)")
        },
        if want_auto {
            c.virsh(&["autostart", name])
        } else {
            c.virsh(&["autostart", "--disable", name])
        },
    );
    o.after = config_op.into_iter().cloned().collect();
    c.out.ops.push(o);
    f.update(Some(format!(
        "autostart {}",
        if want_auto { "on" } else { "off" }
    )));
}

#[cfg(test)]
mod tests {
    use super::super::tests::{G1, G2, ids, plan, spec};

    #[test]
    fn an_added_disk_is_attached_live_never_recreated() {
        let g1 = G1.replace(
            "[{ lv: vg0/g1_root, target: vda }]",
            "[{ lv: vg0/g1_root, target: vda }, { lv: vg0/g1_data, target: vdb }]",
        );
        let p = plan(&spec(&format!("{g1}{G2}")), vec![], false);
        assert_eq!(ids(&p), ["71:guest:g1:define", "72:guest:g1:attach:vdb"]);
        let a = &p.ops[1];
        assert_eq!(
            a.argv(),
            [
                "virsh",
                "-c",
                "qemu:///system",
                "attach-device",
                "g1",
                "/dev/stdin",
                "--live"
            ]
        );
        assert!(
            a.stdin()
                .as_ref()
                .unwrap()
                .contains("<source dev='/dev/vg0/g1_data'/>")
        );
        let c = p.changes.iter().find(|c| c.resource == "guest g1").unwrap();
        assert_eq!(c.reason, "disk /dev/vg0/g1_data as vdb: applied live");
        assert!(
            !p.ops
                .iter()
                .any(|o| o.argv().iter().any(|x| x == "undefine" || x == "destroy"))
        );
    }
}
