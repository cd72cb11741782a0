//! What every guest goes through, whatever its hypervisor: stopped (for `state: stopped`, or
//! while an LV under it grows), started (after its LVs, its configuration and the guests it
//! depends on; on a shared VG after an exclusive lock on its LVs), or removed.

use super::{Ctx, Findings, Guest, lv_ops, on_timeout, op, s, stop_guest};
use crate::kinds::guest::ChangeClass;
use crate::plan::{Action, Address, OpId, Outcome, Risk, Verb};
use crate::spec::types::{Hypervisor, VmState};

/// `state: absent`: stop it (a destructive act: the guest's own shutdown is not waited for
/// indefinitely) and undefine it, with --allow-destroy; its LVs are kept.
pub(super) fn absent(c: &mut Ctx, g: &Guest) {
    let (name, res) = (g.name, g.res.as_str());
    if !(g.seen.defined || g.seen.running) {
        return;
    }
    if !c.opts.allow_destroy {
        c.out.refuse(
            res,
            "the spec says `state: absent`: it would be stopped and undefined",
            "run again with --allow-destroy (its LVs are kept)",
        );
        return;
    }
    c.out.record(
        res,
        Outcome::Changed(
            Action::Delete,
            vec!["state: absent (its LVs are kept)".into()],
        ),
    );
    let mut after = Vec::new();
    if g.seen.running {
        let mut o = stop_guest(
            OpId::new(76, Address::Guest(name.to_string()), Verb::Destroy),
            res,
            format!(
                "stop {name} (up to {}s, then {})",
                g.timeout,
                on_timeout(c.spec)
            ),
            g.stop_order(c.spec),
        );
        o.risk = Risk::Destructive;
        after.push(o.id.clone());
        c.out.ops.push(o);
    }
    if g.hv == Hypervisor::Libvirt && g.seen.defined {
        let mut o = op(
            OpId::new(77, Address::Guest(name.to_string()), Verb::Undefine),
            res,
            format!("undefine {name}"),
            c.virsh(&["undefine", name]),
        );
        o.risk = Risk::Destructive;
        o.after = after;
        c.out.ops.push(o);
    }
}

/// Stop the running guest when the spec wants it stopped or an LV under it grows (`grown`):
/// the stop's id, which the start waits for.
pub(super) fn stop(c: &mut Ctx, g: &Guest, grown: &[String], f: &mut Findings) -> Option<OpId> {
    if !(g.seen.running && (!grown.is_empty() || g.want_state == VmState::Stopped)) {
        return None;
    }
    let name = g.name;
    let id = OpId::new(70, Address::Guest(name.to_string()), Verb::Stop);
    let why = if grown.is_empty() {
        "state: stopped".to_string()
    } else {
        format!(
            "{} grows: {}",
            grown.join(", "),
            super::class_word(ChangeClass::Stopped, g.seen.running)
        )
    };
    f.update(Some(why));
    let downtime = if grown.is_empty() {
        String::new()
    } else {
        format!(
            "; downtime: until {} {} grown",
            grown.join(", "),
            if grown.len() == 1 { "is" } else { "are" }
        )
    };
    c.out.ops.push(stop_guest(
        id.clone(),
        &g.res,
        format!(
            "stop {name} (up to {}s, then {}){downtime}",
            g.timeout,
            on_timeout(c.spec)
        ),
        g.stop_order(c.spec),
    ));
    for lv in grown {
        c.stops_for_resize.push((lv.clone(), id.clone()));
    }
    Some(id)
}

/// Start the guest: after its LVs, its configuration (`config_op`), its stop (`stop_id`) and
/// the guests it depends on; on a shared VG, after the exclusive lock on its LVs.
pub(super) fn start(
    c: &mut Ctx,
    g: &Guest,
    config_op: Option<OpId>,
    stop_id: Option<OpId>,
    f: &mut Findings,
) {
    let name = g.name;
    let mut after: Vec<OpId> = lv_ops(&g.want);
    after.extend(config_op);
    after.extend(stop_id.iter().cloned());
    for d in &g.vm.depends_on {
        after.push(OpId::new(
            75,
            Address::Guest(d.value.to_string()),
            Verb::Start,
        ));
    }
    lock(c, g, &mut after);
    let mut o = op(
        OpId::new(75, Address::Guest(name.to_string()), Verb::Start),
        &g.res,
        if stop_id.is_some() {
            format!("start {name} again")
        } else {
            format!("start {name}")
        },
        match g.hv {
            Hypervisor::Libvirt => c.virsh(&["start", name]),
            Hypervisor::Xen => vec![s("xl"), s("create"), c.xl_path(name)],
        },
    );
    o.after = after;
    c.out.ops.push(o);
    f.update(stop_id.is_none().then(|| "not running".into()));
}

/// Shared VG: take the guest's LVs exclusively first, each lock after the last (`after`
/// gains them, for the start). A lock already planned (before the guest's definition, see
/// [`lock_before_define`]) is waited for, not planned twice.
pub(super) fn lock(c: &mut Ctx, g: &Guest, after: &mut Vec<OpId>) {
    for lv in g.want.lvs() {
        let vg = lv.split('/').next().unwrap_or("");
        if !c.spec.volume_groups.get(vg).is_some_and(|v| v.shared) {
            continue;
        }
        // Where the storage room starts the VG's lockspace, the lock waits for it: lvmlockd
        // refuses any lock of a VG whose lockspace is not started ("Cannot access VG … due to
        // failed lock").
        let lvm = &c.facts.lvm;
        if lvm.lockd && lvm.vgs.contains_key(vg) && !lvm.lockspaces.contains(vg) {
            let start = OpId::new(40, Address::Vg(vg.to_string()), Verb::Lock("start".into()));
            if !after.contains(&start) {
                after.push(start);
            }
        }
        let id = OpId::new(
            74,
            Address::Guest(g.name.to_string()),
            Verb::Lock(lv.to_string()),
        );
        if c.out.ops.iter().any(|o| o.id == id) {
            if !after.contains(&id) {
                after.push(id);
            }
            continue;
        }
        let mut summary =
            format!("activate {lv} exclusively on this host (fails when another host holds it)");
        let mut wait = None;
        // Held by another host that stopped renewing (discovery reads only the other hosts).
        if let Some(h) = lvm.stopped_holder(&lv).cloned() {
            // A holder the cluster does not name (a host_id missing from `cluster.hosts`) is
            // named by its id, in a form an op id can carry.
            let holder = c
                .spec
                .host_of_id(h.host_id)
                .map(str::to_string)
                .unwrap_or_else(|| format!("host-id-{}", h.host_id));
            if h.dead() {
                summary = format!(
                    "activate {lv} exclusively on this host, taking its lease from {holder} (dead for sanlock)"
                );
            } else {
                summary = format!(
                    "activate {lv} exclusively on this host, once its lease is free: {holder} holds it"
                );
                wait = Some(await_dead(c, g, vg, &holder, &h));
            }
        }
        let mut l = op(
            id,
            &g.res,
            summary,
            vec![s("lvchange"), s("-aey"), lv.clone()],
        );
        l.after = after.clone();
        l.after.extend(wait);
        after.push(l.id.clone());
        c.out.ops.push(l);
    }
}

/// A guest running here whose LVs this host holds shared (`-asy`), as a move cut short after
/// its migration leaves them: each taken exclusively again (`lvchange -aey`: lvmlockd converts
/// the lock in place, the LV stays active), so no other host can take it shared. Refused by
/// lvmlockd while the host it came from still holds its own shared lock; that host's next plan
/// releases it.
pub(super) fn relock(c: &mut Ctx, g: &Guest, f: &mut Findings) {
    let mut shared = Vec::new();
    for lv in g.want.lvs() {
        if !c.facts.lvm.shared_here.contains(&lv) {
            continue;
        }
        let vg = lv.split('/').next().unwrap_or("");
        if !c.spec.volume_groups.get(vg).is_some_and(|v| v.shared) {
            continue;
        }
        c.out.ops.push(op(
            OpId::new(74, Address::Guest(g.name.to_string()), Verb::Lock(lv.clone())),
            &g.res,
            format!(
                "take {lv} exclusively again: it is active shared here, as a move cut short leaves it"
            ),
            vec![s("lvchange"), s("-aey"), lv.clone()],
        ));
        shared.push(lv);
    }
    if !shared.is_empty() {
        f.update(Some(format!(
            "{} shared here, not exclusive",
            shared.join(", ")
        )));
    }
}

/// The wait until sanlock calls `holder` dead, planned once for each host and VG: an LV
/// lease it holds can be taken only then (lvmlockd refuses it before).
fn await_dead(
    c: &mut Ctx,
    g: &Guest,
    vg: &str,
    holder: &str,
    h: &crate::kinds::lvm::LeaseHost,
) -> OpId {
    let id = OpId::new(
        73,
        Address::Vg(vg.to_string()),
        Verb::AwaitDead(holder.to_string()),
    );
    if c.out.ops.iter().any(|o| o.id == id) {
        return id;
    }
    let mut o = op(
        id.clone(),
        &g.res,
        format!(
            "wait until sanlock calls {holder} dead (at most {} s from this plan: silent for {} s, dead after {} s), so its leases on {vg} can be taken",
            h.dead_in_s(),
            h.silent_s,
            h.dead_after_s()
        ),
        Vec::new(),
    );
    o.effect = crate::plan::Effect::AwaitDead(crate::plan::vocab::HostDeath {
        lockspace: format!("lvm_{vg}"),
        host_id: h.host_id,
        timeout_s: h.dead_after_s() + 60,
    });
    c.out.ops.push(o);
    id
}

/// A new libvirt guest on a shared VG is defined only once this host holds its LVs: while
/// another host runs it (a move not yet made there), lvmlockd refuses the lock and nothing
/// is defined here, so the other host's live migration (`--persistent`) finds no second
/// definition in its way.
pub(super) fn lock_before_define(c: &mut Ctx, g: &Guest, define: &OpId) {
    let mut locks = lv_ops(&g.want);
    lock(c, g, &mut locks);
    if let Some(o) = c.out.ops.iter_mut().find(|o| &o.id == define) {
        for l in locks {
            if !o.after.contains(&l) {
                o.after.push(l);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{G1, G2, ids, plan, spec};
    use crate::plan::{Action, Address, Op, OpId, Risk, Verb};

    #[test]
    fn an_lv_grown_under_a_running_guest_stops_it_grows_then_starts_it() {
        let mut extend = Op::run(
            OpId::new(50, Address::lv("vg0", "g1_root"), Verb::Extend),
            "lv vg0/g1_root",
            "grow",
            vec!["lvextend".into()],
        );
        extend.writes_root = true;
        extend.settle = true;
        let p = plan(&spec(&format!("{G1}{G2}")), vec![extend], false);
        assert_eq!(
            ids(&p),
            [
                "70:guest:g1:stop",
                "50:lv:vg0/g1_root:extend",
                "75:guest:g1:start"
            ]
        );
        assert_eq!(
            p.ops[0].argv(),
            [
                "hostform-stop-guest",
                "libvirt",
                "qemu:///system",
                "g1",
                "300",
                "destroy"
            ]
        );
        assert!(
            p.ops[0]
                .summary
                .contains("downtime: until vg0/g1_root is grown")
        );
        assert_eq!(
            p.ops[2].argv(),
            ["virsh", "-c", "qemu:///system", "start", "g1"]
        );
    }

    #[test]
    fn a_new_guest_is_defined_after_its_lvs_then_started_after_its_dependencies() {
        let g3 = "  g3: { disks: [{ lv: vg0/g3_root, target: vda }], nics: [{ bridge: br0 }], depends-on: [g1] }\n";
        let p = plan(&spec(&format!("{G1}{G2}{g3}")), vec![], false);
        assert_eq!(
            ids(&p),
            [
                "71:guest:g3:define",
                "73:guest:g3:autostart",
                "75:guest:g3:start"
            ]
        );
        let start = &p.ops[2];
        assert!(start.after.iter().any(|a| a == "50:lv:vg0/g3_root:create"));
        assert!(start.after.iter().any(|a| a == "75:guest:g1:start"));
        let c = p.changes.iter().find(|c| c.resource == "guest g3").unwrap();
        assert_eq!(c.action, Action::Create);
    }

    #[test]
    fn desired_state_and_autostart_are_honoured() {
        // g2 should run: started, and marked to start with the host.
        let p = plan(
            &spec(&format!("{G1}{}", G2.replace(", state: stopped", ""))),
            vec![],
            false,
        );
        assert_eq!(ids(&p), ["73:guest:g2:autostart", "75:guest:g2:start"]);
        // g1 should be stopped, and not start with the host.
        let p = plan(
            &spec(&format!(
                "{}{G2}",
                G1.replace("g1: {", "g1: { state: stopped,")
            )),
            vec![],
            false,
        );
        assert_eq!(ids(&p), ["70:guest:g1:stop", "73:guest:g1:autostart"]);
        assert_eq!(p.ops[1].argv()[3..], ["autostart", "--disable", "g1"]);
    }

    #[test]
    fn absent_needs_allow_destroy_and_unknown_guests_are_left_alone() {
        let g1 = G1.replace("g1: {", "g1: { state: absent,");
        let p = plan(&spec(&g1), vec![], false);
        assert!(p.ops.is_empty());
        assert_eq!(p.refusals.len(), 1);
        assert!(p.refusals[0].hint.contains("--allow-destroy"));
        assert_eq!(p.unmanaged, ["guest g2 (libvirt, shut off)"]);
        let p = plan(&spec(&g1), vec![], true);
        assert_eq!(ids(&p), ["76:guest:g1:destroy", "77:guest:g1:undefine"]);
        assert!(p.ops.iter().all(|o| o.risk == Risk::Destructive));
    }
}
