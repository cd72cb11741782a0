//! Removal of what the spec marks `state: absent`: snapshots, LVs, VGs (with their PVs),
//! arrays (stopped, members' superblocks cleared) and partitions, torn down in the reverse
//! order of creation through op dependencies.
//!
//! Each removal needs all of: the spec lists the resource as absent, `--allow-destroy`, no
//! `prevent-destroy` (in the spec, or hostform's LVM tag on the host), and nothing using it
//! (mounted, active swap, open, held by a device this plan keeps). Otherwise it is refused with
//! the reason and what to do. Absent and already gone is a no-op.

use super::*;
use crate::kinds::lvm::PREVENT_DESTROY_TAG;

use crate::kinds::lvm::dm_name;

/// A removal that cannot happen because what sits on the resource stays (refused above):
/// without --allow-destroy, that is the flag's refusal; with it, say what it waits for.
fn held_back(c: &mut Ctx, res: &str, by: &str) {
    if c.may_destroy(res, "marked `state: absent`") {
        c.refuse(
            res,
            format!("stays while {by} stays (refused above)"),
            "resolve the refusal above first",
        );
    }
}

pub(super) fn lvm_and_arrays(c: &mut Ctx) {
    for (vgname, vg) in &c.spec.volume_groups {
        let mut lv_ops: Vec<OpId> = Vec::new();
        // Snapshots before their origins.
        for (sname, snap) in &vg.snapshots {
            if snap.state != SnapshotState::Absent {
                continue;
            }
            let key = format!("{vgname}/{sname}");
            let res = format!("snapshot {key}");
            if let Some(id) = remove_lv(c, &res, &key, Vec::new()) {
                lv_ops.push(id);
            }
        }
        for (lvname, lv) in &vg.lvs {
            if lv.state != Presence::Absent {
                continue;
            }
            let key = format!("{vgname}/{lvname}");
            let res = format!("lv {key}");
            // Its snapshots on the host must go with it, and be marked absent themselves.
            let snaps: Vec<String> = c
                .facts
                .lvm
                .lvs
                .values()
                .filter(|l| l.vg == vgname.value && l.origin.as_deref() == Some(lvname.as_str()))
                .map(|l| l.name.clone())
                .collect();
            let kept: Vec<&String> = snaps
                .iter()
                .filter(|s| {
                    !vg.snapshots
                        .get(s.as_str())
                        .is_some_and(|x| x.state == SnapshotState::Absent)
                })
                .collect();
            if c.facts.lvm.lvs.contains_key(&key) && !kept.is_empty() {
                c.refuse(
                    &res,
                    format!(
                        "has snapshot(s) the spec does not mark absent: {}",
                        kept.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    "removing an LV removes its snapshots: list each under `snapshots` with `state: absent` too",
                );
                continue;
            }
            let after: Vec<OpId> = snaps
                .iter()
                .filter_map(|s| c.removing.get(&format!("{vgname}/{s}")).cloned())
                .collect();
            if let Some(id) = remove_lv(c, &res, &key, after) {
                lv_ops.push(id);
            }
        }
        lv_ops.extend(super::thin::teardown(c, vgname, vg));
        if vg.state == Presence::Absent {
            remove_vg(c, vgname, vg, lv_ops);
        }
    }
    for (name, a) in &c.spec.arrays {
        if a.state == Presence::Absent {
            remove_array(c, name, a);
        }
    }
}

/// Remove one LV or snapshot (`key` = `vg/lv`); the op id, or `None` (refused or already gone).
pub(super) fn remove_lv(c: &mut Ctx, res: &str, key: &str, after: Vec<OpId>) -> Option<OpId> {
    let Some(cur) = c.facts.lvm.lvs.get(key) else {
        c.change(res, Action::NoOp, "absent, as the spec says");
        return None;
    };
    if cur.protected() {
        c.refuse(
            res,
            format!("carries the LVM tag {PREVENT_DESTROY_TAG} (set by `prevent-destroy: true`): it is never removed"),
            format!("if it really must go, remove the protection deliberately: `lvchange --deltag {PREVENT_DESTROY_TAG} {key}`, then plan again"),
        );
        return None;
    }
    let dm = dm_name(&cur.vg, &cur.name);
    let busy = c
        .facts
        .blocks
        .by_name(&dm)
        .and_then(|b| c.in_use(&b.kname.clone()));
    if let Some(why) = busy.or_else(|| cur.open.then(|| format!("{key} is open"))) {
        c.refuse(
            res,
            format!("is in use ({why}): hostform never removes what is in use"),
            "stop what uses it (unmount it, swapoff, shut its guest down), then plan again",
        );
        return None;
    }
    if !c.may_destroy(res, "marked `state: absent`: removing it deletes its data") {
        return None;
    }
    // The spec's kind names the stage (and so the label), not what the host reports: a plain
    // LV the spec marks absent is never shown as a snapshot.
    let (vg, name) = key.split_once('/').unwrap_or(("", key));
    let id = if res.starts_with("snapshot ") {
        OpId::new(
            4,
            Address::Snapshot {
                vg: vg.into(),
                name: name.into(),
            },
            Verb::Remove,
        )
    } else {
        OpId::new(5, Address::lv(vg, name), Verb::Remove)
    };
    let id = c.add(
        Op::run(
            id,
            res,
            format!("remove {key}"),
            vec![s("lvremove"), s("--quiet"), s("--yes"), key.to_string()],
        )
        .destructive()
        .on_root()
        .after(after),
    );
    if let Some(b) = c.facts.blocks.by_name(&dm) {
        c.freed.insert(b.kname.clone(), id.clone());
    }
    c.removing.insert(key.to_string(), id.clone());
    c.change(res, Action::Delete, "state: absent");
    Some(id)
}

fn remove_vg(c: &mut Ctx, vgname: &str, vg: &VolumeGroup, lv_ops: Vec<OpId>) {
    let res = format!("volume group {vgname}");
    let Some(cur) = c.facts.lvm.vgs.get(vgname) else {
        c.change(&res, Action::NoOp, "absent, as the spec says");
        return;
    };
    if cur.protected() {
        c.refuse(
            &res,
            format!("carries the LVM tag {PREVENT_DESTROY_TAG} (set by `prevent-destroy: true`): it is never removed"),
            format!("if it really must go, remove the protection deliberately: `vgchange --deltag {PREVENT_DESTROY_TAG} {vgname}`, then plan again"),
        );
        return;
    }
    // Every LV on the host goes with the VG: each must be marked absent (and removable).
    let host_lvs: Vec<&crate::kinds::lvm::Lv> = c
        .facts
        .lvm
        .lvs
        .values()
        .filter(|l| l.vg == vgname && !l.internal)
        .collect();
    let unmarked: Vec<&str> = host_lvs
        .iter()
        .filter(|l| {
            let absent_lv = vg
                .lvs
                .get(l.name.as_str())
                .is_some_and(|x| x.state == Presence::Absent);
            let absent_snap = vg
                .snapshots
                .get(l.name.as_str())
                .is_some_and(|x| x.state == SnapshotState::Absent);
            !absent_lv && !absent_snap && !super::thin::marked_absent(vg, &l.name)
        })
        .map(|l| l.name.as_str())
        .collect();
    if !unmarked.is_empty() {
        c.refuse(
            &res,
            format!(
                "holds LVs the spec does not mark absent: {}",
                unmarked.join(", ")
            ),
            "removing a VG removes all its LVs: list each with `state: absent`",
        );
        return;
    }
    if let Some(l) = host_lvs
        .iter()
        .find(|l| !c.removing.contains_key(&format!("{vgname}/{}", l.name)))
    {
        // One of its LVs was refused (and said why): the VG stays too.
        let by = format!("lv {vgname}/{}", l.name);
        held_back(c, &res, &by);
        return;
    }
    if !c.may_destroy(&res, "marked `state: absent`") {
        return;
    }
    let id = c.add(
        Op::run(
            OpId::new(6, Address::Vg(vgname.to_string()), Verb::Remove),
            &res,
            format!("remove volume group {vgname}"),
            vec![s("vgremove"), s("--quiet"), vgname.to_string()],
        )
        .destructive()
        .on_root()
        .after(lv_ops),
    );
    let pvs: Vec<String> = c
        .facts
        .lvm
        .pvs
        .iter()
        .filter(|p| p.vg == vgname)
        .map(|p| p.device.clone())
        .collect();
    for dev in pvs {
        let kname = c
            .facts
            .blocks
            .by_path(&dev)
            .map(|b| b.kname.clone())
            .unwrap_or_else(|| dev.trim_start_matches("/dev/").to_string());
        let pid = c.add(
            Op::run(
                OpId::new(7, Address::Pv(kname.to_string()), Verb::Remove),
                &res,
                format!("clear the PV label of {dev}"),
                vec![s("pvremove"), s("--quiet"), dev.clone()],
            )
            .destructive()
            .on_root()
            .after(vec![id.clone()]),
        );
        c.freed.insert(kname, pid);
    }
    c.change(&res, Action::Delete, "state: absent");
}

/// What sits on an array marked absent must go in this plan first: the ops it waits for
/// (its PV label cleared, its VG removed); `None` when refused (in use, held, a PV kept).
fn freed_first(c: &mut Ctx, res: &str, b: &BlockDev) -> Option<Vec<OpId>> {
    let mut after: Vec<OpId> = Vec::new();
    if let Some(why) = c.in_use(&b.kname) {
        c.refuse(
            res,
            format!("is in use ({why})"),
            "hostform never stops an array that is in use: unmount what sits on it first",
        );
        return None;
    }
    // What sits on it must be going away in this plan.
    let mut lvm_goes = false;
    if b.fstype.as_deref() == Some("LVM2_member") {
        lvm_goes = true;
        match c.freed.get(&b.kname) {
            Some(id) => after.push(id.clone()),
            None => {
                let vg = c
                    .facts
                    .lvm
                    .pvs
                    .iter()
                    .find(|p| c.facts.blocks.by_path(&p.device).map(|x| &x.kname) == Some(&b.kname))
                    .map(|p| p.vg.clone())
                    .unwrap_or_default();
                let vg_absent = c
                    .spec
                    .volume_groups
                    .get(vg.as_str())
                    .is_some_and(|v| v.state == Presence::Absent);
                if vg_absent {
                    held_back(c, res, &format!("volume group {vg}"));
                    return None;
                } else if vg.is_empty() {
                    // A PV of no VG: clear its label first.
                    let id = c.add(
                        Op::run(
                            OpId::new(7, Address::Pv(b.kname.to_string()), Verb::Remove),
                            res,
                            format!("clear the PV label of /dev/{}", b.kname),
                            vec![s("pvremove"), s("--quiet"), format!("/dev/{}", b.kname)],
                        )
                        .destructive()
                        .on_root(),
                    );
                    after.push(id);
                } else {
                    c.refuse(
                        res,
                        format!("is a PV of volume group {vg}, which this plan keeps"),
                        format!("mark volume group {vg} absent too, or move it off the array (pvmove, vgreduce) by hand"),
                    );
                    return None;
                }
            }
        }
    }
    let held: Vec<String> = c
        .facts
        .blocks
        .children(&b.kname)
        // The device-mapper tables of a VG removed in this plan (LVs, snapshots' -real
        // and -cow) go with it.
        .filter(|h| !(c.freed.contains_key(&h.kname) || (lvm_goes && h.kind == "lvm")))
        .map(|h| h.name.clone())
        .collect();
    if !held.is_empty() {
        c.refuse(
            res,
            format!("is held by {}", held.join(", ")),
            "remove what sits on the array first (in the spec, with `state: absent`)",
        );
        return None;
    }
    Some(after)
}

fn remove_array(c: &mut Ctx, name: &str, a: &Array) {
    let res = format!("array {name}");
    let Some(cur) = c.facts.arrays.get(name) else {
        c.change(&res, Action::NoOp, "not running, as the spec says");
        return;
    };
    if a.prevent_destroy {
        // `validate` rejects this combination; kept as a second lock.
        c.refuse(
            &res,
            "is marked prevent-destroy",
            "drop the protection in its own reviewed change first",
        );
        return;
    }
    let mut after: Vec<OpId> = Vec::new();
    if let Some(b) = c.block(name) {
        match freed_first(c, &res, b) {
            Some(a) => after = a,
            None => return,
        }
    }
    if !c.may_destroy(
        &res,
        "marked `state: absent`: stopping it and clearing its members' superblocks",
    ) {
        // Undo a pvremove planned above: nothing of this array is touched.
        c.ops.retain(|o| o.resource != res);
        return;
    }
    let stop = c.add(
        Op::run(
            OpId::new(8, Address::Array(name.to_string()), Verb::Stop),
            &res,
            format!("stop {name}"),
            vec![
                s("mdadm"),
                s("--stop"),
                crate::spec::names::array_path(name),
            ],
        )
        .destructive()
        .after(after),
    );
    let mut members: Vec<String> = cur
        .members
        .iter()
        .map(|m| m.kname.clone())
        .filter(|k| c.block(k).is_some())
        .collect();
    members.sort();
    if !members.is_empty() {
        let mut argv = vec![s("mdadm"), s("--zero-superblock")];
        argv.extend(members.iter().map(|k| format!("/dev/{k}")));
        let zero = c.add(
            Op::run(
                OpId::new(8, Address::Array(name.to_string()), Verb::ZeroSuperblock),
                &res,
                format!("clear the md superblock of {}", members.join(", ")),
                argv,
            )
            .destructive()
            .after(vec![stop]),
        );
        for k in members {
            c.freed.insert(k, zero.clone());
        }
    }
    c.change(&res, Action::Delete, "state: absent");
}

/// A partition the spec marks absent (`found` on the host as partition `number` of `disk`).
pub(super) fn remove_partition(
    c: &mut Ctx,
    disk: &str,
    disk_path: &str,
    part: &Partition,
    found: Option<&BlockDev>,
) {
    let res = format!("partition {disk}/{}", part.name);
    let Some(b) = found else {
        c.change(&res, Action::NoOp, "absent, as the spec says");
        return;
    };
    let number: String = b
        .kname
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if number.is_empty() {
        c.refuse(
            &res,
            format!("cannot tell the partition number of {}", b.kname),
            "delete it by hand (sfdisk --delete)",
        );
        return;
    }
    if let Some(why) = c.in_use(&b.kname) {
        c.refuse(
            &res,
            format!("is in use ({why})"),
            "hostform never deletes a partition in use",
        );
        return;
    }
    let mut after = Vec::new();
    match (b.fstype.as_deref(), c.freed.get(&b.kname)) {
        (_, Some(id)) => after.push(id.clone()),
        (Some("linux_raid_member"), None) => {
            let arr = c
                .facts
                .arrays
                .values()
                .find(|a| a.members.iter().any(|m| m.kname == b.kname))
                .map(|a| a.kname.clone());
            if let Some(a) = &arr
                && c.spec
                    .arrays
                    .get(a.as_str())
                    .is_some_and(|x| x.state == Presence::Absent)
            {
                held_back(c, &res, &format!("array {a}"));
                return;
            }
            c.refuse(
                &res,
                match arr {
                    Some(a) => format!("{} is a member of {a}, which this plan keeps", b.kname),
                    None => format!("{} carries an md superblock", b.kname),
                },
                "mark the array absent too, or take the member out of it by hand (mdadm --fail, --remove, --zero-superblock)",
            );
            return;
        }
        (Some("LVM2_member"), None) => {
            c.refuse(
                &res,
                format!("{} is an LVM physical volume", b.kname),
                "mark its volume group absent too, or move it off (pvmove, vgreduce, pvremove) by hand",
            );
            return;
        }
        _ => {}
    }
    let held: Vec<String> = c
        .facts
        .blocks
        .children(&b.kname)
        .filter(|h| !c.freed.contains_key(&h.kname) && !c.facts.arrays.contains_key(&h.kname))
        .map(|h| h.name.clone())
        .collect();
    if !held.is_empty() {
        c.refuse(
            &res,
            format!("is held by {}", held.join(", ")),
            "remove what sits on the partition first",
        );
        return;
    }
    if !c.may_destroy(&res, "marked `state: absent`") {
        return;
    }
    let id = c.add(
        Op::run(
            OpId::new(
                9,
                Address::Disk(disk.to_string()),
                Verb::Delete(Some(part.name.to_string())),
            ),
            &res,
            format!("delete partition {number} ({}) of {disk}", part.name),
            vec![
                s("sfdisk"),
                s("--quiet"),
                s("--delete"),
                disk_path.to_string(),
                number,
            ],
        )
        .destructive()
        .after(after),
    );
    c.disk_teardown
        .entry(disk.to_string())
        .or_default()
        .push(id);
    c.change(&res, Action::Delete, "state: absent");
}
