//! Physical volumes and volume groups: created on the spec's devices, extended with new
//! PVs, protected by hostform's LVM tag, deferred while their array is coming back.

use super::*;

pub(super) fn volume_groups(c: &mut Ctx) {
    for (vgname, vg) in &c.spec.volume_groups {
        if vg.state == Presence::Present {
            volume_group(c, vgname, vg);
        }
    }
}

/// One spec VG: its PVs, the VG itself, its protection, then its LVs and snapshots.
fn volume_group<'a>(c: &mut Ctx<'a>, vgname: &'a Name, vg: &'a VolumeGroup) {
    let res = format!("volume group {vgname}");
    let existing = c.facts.lvm.vgs.get(vgname.value.as_str()).cloned();
    if let Some(pv) = vg
        .pvs
        .iter()
        .find(|p| c.reappearing.contains(p.value.as_str()))
    {
        // Its contents (a PV, a VG, LVs) are read after assembly, in apply's follow-up round.
        defer_vg(c, vgname, vg, pv);
        return;
    }
    let Some(pvs) = physical_volumes(c, &res, vgname, vg) else {
        return;
    };
    // `prevent-destroy: true` is written on the host as an LVM tag, so it outlives the spec.
    let protect = vg.prevent_destroy && !existing.as_ref().is_some_and(|v| v.protected());
    let Some(after_vg) = group(c, &res, vgname, vg, existing.is_some(), protect, pvs) else {
        return;
    };
    if protect {
        c.add(
            Op::run(
                OpId::new(41, Address::Vg(vgname.to_string()), Verb::Protect),
                &res,
                format!("tag {vgname} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                vec![
                    s("vgchange"),
                    s("--quiet"),
                    s("--addtag"),
                    s(PREVENT_DESTROY_TAG),
                    vgname.value.clone(),
                ],
            )
            .on_root()
            .after(after_vg.clone()),
        );
    }
    let extent = existing
        .as_ref()
        .map(|v| v.extent_size)
        .filter(|e| *e > 0)
        .or(vg.extent_size.map(|e| e.value.0))
        .unwrap_or(4 << 20);
    for (lvname, lv) in &vg.lvs {
        logical_volume(c, vgname, lvname, lv, extent, &after_vg);
    }
    super::thin::pools(c, vgname, vg, extent, &after_vg);
    snapshots(c, vgname, vg, &after_vg);
}

/// The spec's PVs: adopted, taken (a PV of no VG), or made (`pvcreate`). The paths of those
/// new to the VG and the ops making them; `None` when one is refused or not found.
fn physical_volumes(
    c: &mut Ctx,
    res: &str,
    vgname: &Name,
    vg: &VolumeGroup,
) -> Option<(Vec<String>, Vec<OpId>)> {
    let mut new_pvs: Vec<String> = Vec::new();
    let mut pv_ops: Vec<OpId> = Vec::new();
    let mut blocked = false;
    for pv in &vg.pvs {
        let Some(path) = c.device_path(&pv.value) else {
            blocked = true;
            continue;
        };
        let now = c.device_now(&pv.value);
        if now.is_none() && !c.made_by.contains_key(pv.value.as_str()) {
            c.refuse(
                res,
                format!(
                    "PV {pv} is not on the host under that name, and this plan does not create it"
                ),
                "see the refusals above for the device it lives on",
            );
            blocked = true;
            continue;
        }
        let as_pv = now.and_then(|b| {
            c.facts
                .lvm
                .pvs
                .iter()
                .find(|p| c.facts.blocks.by_path(&p.device).map(|x| &x.kname) == Some(&b.kname))
        });
        match as_pv {
            Some(p) if p.vg == vgname.value => continue,
            Some(p) if !p.vg.is_empty() => {
                c.refuse(
                    res,
                    format!("{} is a PV of volume group {}", pv, p.vg),
                    "a PV belongs to one VG; fix the spec",
                );
                blocked = true;
                continue;
            }
            // Already a PV of no VG (an earlier apply stopped after pvcreate): use it.
            Some(_) => {
                new_pvs.push(path);
                continue;
            }
            None => {}
        }
        if let Some(b) = now
            && let Some(f) = &b.fstype
            && f != "LVM2_member"
        {
            c.refuse(
                res,
                format!("{} ({}) carries a {f} signature", pv, b.kname),
                "hostform never makes a PV over existing data; wipe it by hand if it may go",
            );
            blocked = true;
            continue;
        }
        let after: Vec<OpId> = c
            .made_by
            .get(pv.value.as_str())
            .cloned()
            .into_iter()
            .collect();
        if vg.shared {
            // `vgcreate --shared` makes the PV itself: a `pvcreate` with `use_lvmlockd = 1`
            // needs the global lock, which no shared VG holds before the first one exists
            // ("Global lock failed: check that global lockspace is started").
            pv_ops.extend(after);
            new_pvs.push(path);
            continue;
        }
        let after: Vec<OpId> = after.into_iter().chain(global_lock(c)).collect();
        let id = c.add(
            Op::run(
                OpId::new(30, Address::Pv(pv.to_string()), Verb::Create),
                res,
                format!("make {pv} an LVM physical volume"),
                vec![s("pvcreate"), s("--quiet"), path.clone()],
            )
            .on_root()
            .after(after),
        );
        pv_ops.push(id);
        new_pvs.push(path);
    }
    (!blocked).then_some((new_pvs, pv_ops))
}

/// The VG itself: adopted, extended with new PVs, or created. The ops its LVs wait for;
/// `None` when refused.
fn group(
    c: &mut Ctx,
    res: &str,
    vgname: &Name,
    vg: &VolumeGroup,
    exists: bool,
    protect: bool,
    (new_pvs, pv_ops): (Vec<String>, Vec<OpId>),
) -> Option<Vec<OpId>> {
    let mut after_vg: Vec<OpId> = Vec::new();
    match exists.then_some(()) {
        Some(_) if vg.shared && !c.facts.lvm.lockd => {
            c.refuse(
                res,
                "a shared VG's LVs are reached through lvmlockd, which is not running on this host",
                "start the lock manager and lvmlockd (`systemctl start sanlock lvmlockd`, with `use_lvmlockd = 1` in lvm.conf and this host's `host_id` in lvmlocal.conf), then plan again",
            );
            return None;
        }
        Some(_) if vg.shared && !c.facts.lvm.lockspaces.contains(vgname.value.as_str()) => {
            let id = c.add(
                Op::run(
                    lock_start(vgname),
                    res,
                    format!("start the lockspace of {vgname} on this host (sanlock joins with this host's host_id; 20 s or more)"),
                    vec![s("vgchange"), s("--lock-start"), vgname.value.clone()],
                )
                .after(pv_ops),
            );
            after_vg.push(id);
            c.change(res, Action::Update, "lockspace not started on this host");
        }
        Some(_) if new_pvs.is_empty() && protect => {
            c.change(res, Action::Update, "prevent-destroy: tagged on the host")
        }
        Some(_) if new_pvs.is_empty() => c.change(res, Action::NoOp, "exists with the spec's PVs"),
        Some(_) => {
            let mut argv = vec![s("vgextend"), s("--quiet"), vgname.value.clone()];
            argv.extend(new_pvs.iter().cloned());
            let id = c.add(
                Op::run(
                    OpId::new(40, Address::Vg(vgname.to_string()), Verb::Extend),
                    res,
                    format!("add {} PV(s) to {vgname}", new_pvs.len()),
                    argv,
                )
                .on_root()
                .after(pv_ops),
            );
            after_vg.push(id);
            c.change(res, Action::Update, "new PVs");
        }
        None => {
            if vg.shared && !c.facts.lvm.lockd {
                c.refuse(
                    res,
                    "a shared VG (`vgcreate --shared`) needs lvmlockd, which is not running on this host",
                    "start lvmlockd and its lock manager (sanlock or dlm) with `use_lvmlockd = 1` in lvm.conf, or remove `shared: true`",
                );
                return None;
            }
            if vg.shared
                && let Some(init) = c.spec.init_host(&vgname.value)
                && init != c.spec.host.value
            {
                c.refuse(
                    res,
                    format!("shared VG {vgname} does not exist yet, and {init} creates it (the cluster's init host), not {}", c.spec.host.value),
                    format!("apply {init}'s spec first; this host then starts the VG's lockspace and uses it"),
                );
                return None;
            }
            let mut argv = vec![s("vgcreate"), s("--quiet")];
            if vg.shared {
                argv.push(s("--shared"));
            }
            if let Some(e) = vg.extent_size {
                argv.push(s("-s"));
                argv.push(format!("{}k", e.value.0 / 1024));
            }
            argv.push(vgname.value.clone());
            argv.extend(new_pvs.iter().cloned());
            let mut pv_ops = pv_ops;
            if !vg.shared {
                pv_ops.extend(global_lock(c));
            }
            let id = c.add(
                Op::run(
                    OpId::new(40, Address::Vg(vgname.to_string()), Verb::Create),
                    res,
                    format!("create volume group {vgname}"),
                    argv,
                )
                .on_root()
                .after(pv_ops),
            );
            after_vg.push(id);
            c.change(res, Action::Create, "no such volume group");
        }
    }
    Some(after_vg)
}

/// The op that starts a shared VG's lockspace on this host.
fn lock_start(vgname: &Name) -> OpId {
    OpId::new(
        40,
        Address::Vg(vgname.to_string()),
        Verb::Lock("start".into()),
    )
}

/// Where lvmlockd runs, a new PV or VG needs LVM's global lock, which lives in a shared VG's
/// lockspace: the ops of this plan that create a shared VG here or start its lockspace.
fn global_lock(c: &Ctx) -> Vec<OpId> {
    if !c.facts.lvm.lockd {
        return Vec::new();
    }
    c.spec
        .volume_groups
        .iter()
        .filter(|(_, v)| v.shared && v.state == Presence::Present)
        .filter_map(|(name, _)| match c.facts.lvm.vgs.get(name.value.as_str()) {
            Some(_) if !c.facts.lvm.lockspaces.contains(name.value.as_str()) => {
                Some(lock_start(name))
            }
            Some(_) => None,
            None if c
                .spec
                .init_host(&name.value)
                .is_none_or(|h| h == c.spec.host.value) =>
            {
                Some(OpId::new(40, Address::Vg(name.to_string()), Verb::Create))
            }
            None => None,
        })
        .collect()
}

/// A VG on an array this plan assembles: it, its LVs and snapshots are announced as deferred.
pub(super) fn defer_vg(c: &mut Ctx, vgname: &str, vg: &VolumeGroup, waits_for: &str) {
    let res = std::iter::once(format!("volume group {vgname}"))
        .chain(vg.lvs.keys().map(|l| format!("lv {vgname}/{l}")))
        .chain(
            vg.snapshots
                .keys()
                .map(|l| format!("snapshot {vgname}/{l}")),
        )
        .chain(super::thin::resources(vgname, vg));
    for resource in res {
        c.plan.deferred.push(crate::plan::Deferred {
            resource,
            waits_for: waits_for.to_string(),
        });
    }
}
