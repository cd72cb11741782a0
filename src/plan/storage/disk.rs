//! Disks: each spec disk found by its id or serial, its partition table made, appended to,
//! or left alone; signatures erased only when allowed.

use super::*;

pub(super) fn disks(c: &mut Ctx) {
    for (name, d) in &c.spec.disks {
        disk(c, name, d);
    }
}

/// One spec disk: found, then partitioned (blank), adopted (its GPT matches), appended to
/// (partitions missing at its end), erased and partitioned again (`wipe: true`), or refused.
fn disk<'a>(c: &mut Ctx<'a>, name: &'a Name, d: &'a Disk) {
    let res = format!("disk {name}");
    let Some(kname) = find(c, &res, name, d) else {
        return;
    };
    let Some(dev) = c.block(&kname) else { return };
    if d.partitions.is_empty() {
        c.change(&res, Action::NoOp, format!("found as {kname}, used whole"));
        return;
    }
    let path = c.disk_path(name);
    let parts: Vec<&BlockDev> = {
        let mut v: Vec<&BlockDev> = c
            .facts
            .blocks
            .children(&kname)
            .filter(|p| p.is_partition())
            .collect();
        v.sort_by_key(|p| p.start.unwrap_or(0));
        v
    };
    let present: Vec<&Partition> = d
        .partitions
        .iter()
        .filter(|p| p.state == Presence::Present)
        .collect();
    let absent: Vec<&Partition> = d
        .partitions
        .iter()
        .filter(|p| p.state == Presence::Absent)
        .collect();
    let blank = dev.pttype.is_none() && dev.fstype.is_none() && parts.is_empty();
    if blank {
        blank_disk(c, &res, name, dev, &path, &present, &absent);
        return;
    }
    let (problems, missing) = differences(&res, name, dev, &parts, &present, &absent);
    if !problems.is_empty() {
        if d.wipe {
            let what = problems
                .iter()
                .map(|p| p.reason.clone())
                .collect::<Vec<_>>()
                .join("; ");
            if let Some(after) = wipe_disk(c, name, &kname, &path, &parts, &what) {
                new_table(c, name, &kname, &path, &present, after);
                c.change(
                    &res,
                    Action::Replace,
                    format!("{what}; `wipe: true`: erased, then partitioned as the spec says"),
                );
            }
        } else {
            c.plan.refusals.extend(problems);
        }
        return;
    }
    for x in &parts {
        if !d
            .partitions
            .iter()
            .any(|p| Some(p.name.value.as_str()) == x.partlabel.as_deref())
        {
            c.plan.unmanaged.push(format!(
                "partition {} ({})",
                x.kname,
                x.partlabel.as_deref().unwrap_or("no name")
            ));
        }
    }
    for p in &absent {
        let found = parts
            .iter()
            .copied()
            .find(|x| x.partlabel.as_deref() == Some(p.name.value.as_str()));
        teardown::remove_partition(c, name, &path, p, found);
    }
    let used_end = parts
        .iter()
        .map(|x| x.start.unwrap_or(0) * 512 + x.size)
        .max()
        .unwrap_or(MIB);
    let free = dev.size.saturating_sub(used_end).saturating_sub(2 * MIB);
    if !missing.is_empty()
        && let Some(why) = does_not_fit(&missing, free)
    {
        c.refuse(
            &res,
            format!("{kname}: {why} (the free space after its last partition)"),
            "fix the partition sizes, or check that this is the right disk",
        );
        return;
    }
    if missing.is_empty() {
        c.change(
            &res,
            Action::NoOp,
            format!("found as {kname}; its partitions match"),
        );
    } else {
        append(c, &res, name, &kname, &path, &missing);
    }
}

/// The device a spec disk names (by `id`, else by serial), checked: found, not another spec
/// disk's, a whole disk, large enough. Refused (and `None`) otherwise.
fn find(c: &mut Ctx, res: &str, name: &Name, d: &Disk) -> Option<String> {
    let found =
        d.id.as_ref()
            .and_then(|id| resolve_id(c.facts, &id.value))
            .or_else(|| {
                let serial = d.serial.as_ref()?;
                c.facts
                    .blocks
                    .devices
                    .values()
                    .find(|b| b.is_disk() && b.serial.as_deref() == Some(serial.value.as_str()))
                    .map(|b| b.kname.clone())
            });
    let Some(kname) = found else {
        c.refuse(res, format!("not found on this host ({})", d.id.as_ref().or(d.serial.as_ref()).map(|x| x.value.clone()).unwrap_or_default()), "check `ls -l /dev/disk/by-id` and `lsblk -o NAME,SERIAL`; kernel names like sda can change");
        return None;
    };
    if let Some((other, _)) = c.disks.iter().find(|(_, k)| **k == kname) {
        c.refuse(
            res,
            format!("resolves to {kname}, the same device as disk {other}"),
            "each spec disk must name a different device: check `id` and `serial`",
        );
        return None;
    }
    if let Some(dev) = c.block(&kname)
        && !dev.is_disk()
    {
        c.refuse(
            res,
            format!("resolves to {kname}, a {}, not a whole disk", dev.kind),
            "`id` and `serial` must name a whole disk (no `-partN` alias); name the partition in the disk's `partitions` instead",
        );
        return None;
    }
    c.disks.insert(name.value.clone(), kname.clone());
    let Some(dev) = c.block(&kname) else {
        return Some(kname);
    };
    if let Some(min) = d.size
        && dev.size < min.value.0
    {
        c.refuse(
            res,
            format!(
                "is {} bytes, smaller than the spec's {}",
                dev.size, min.value
            ),
            "correct `size`, or check that this is the right disk",
        );
        return None;
    }
    Some(kname)
}

/// A blank disk: a new partition table, unless it is in use or the partitions do not fit.
fn blank_disk(
    c: &mut Ctx,
    res: &str,
    name: &Name,
    dev: &BlockDev,
    path: &str,
    present: &[&Partition],
    absent: &[&Partition],
) {
    let kname = &dev.kname;
    if let Some(why) = c.in_use(kname) {
        c.refuse(
            res,
            format!("is in use ({why})"),
            "hostform never touches a device in use",
        );
        return;
    }
    for p in absent {
        c.change(
            &format!("partition {name}/{}", p.name),
            Action::NoOp,
            "absent, as the spec says",
        );
    }
    if let Some(why) = does_not_fit(present, dev.size.saturating_sub(2 * MIB)) {
        c.refuse(
            res,
            format!("{kname}: {why}"),
            "fix the partition sizes, or check that this is the right disk",
        );
        return;
    }
    new_table(c, name, kname, path, present, Vec::new());
    c.change(
        res,
        Action::Create,
        format!("{kname} is blank: new partition table"),
    );
}

/// Everything that makes an existing disk differ from the spec (a table that is not GPT, a
/// partition of another type, size or name), and the spec's partitions missing at its end.
fn differences<'p>(
    res: &str,
    name: &Name,
    dev: &BlockDev,
    parts: &[&BlockDev],
    present: &[&'p Partition],
    absent: &[&Partition],
) -> (Vec<Refusal>, Vec<&'p Partition>) {
    let kname = &dev.kname;
    // Partitions the spec removes do not count when matching the others.
    let kept: Vec<&BlockDev> = parts
        .iter()
        .copied()
        .filter(|x| {
            !absent
                .iter()
                .any(|p| Some(p.name.value.as_str()) == x.partlabel.as_deref())
        })
        .collect();
    // Everything that makes this disk differ from the spec: refused, or with `wipe: true`
    // (and --allow-destroy) the reason to erase it and start again.
    let mut problems: Vec<Refusal> = Vec::new();
    let mut problem = |resource: String, reason: String, hint: &str| {
        problems.push(Refusal {
            resource,
            reason,
            hint: hint.into(),
        })
    };
    let mut missing: Vec<&Partition> = Vec::new();
    if dev.pttype.as_deref() != Some("gpt") {
        let what = dev
            .pttype
            .clone()
            .map(|t| format!("a {t} partition table"))
            .or_else(|| dev.fstype.clone().map(|f| format!("a {f} signature")))
            .unwrap_or_else(|| "data".into());
        problem(
            res.to_string(),
            format!("{kname} holds {what}, not the spec's GPT"),
            "if its data may go, set `wipe: true` on the disk after checking it is the right one",
        );
    } else {
        // Existing GPT: adopt partitions that match by name, add missing ones at the end.
        for (i, p) in present.iter().enumerate() {
            match kept
                .iter()
                .find(|x| x.partlabel.as_deref() == Some(p.name.value.as_str()))
            {
                Some(found) => {
                    if found.parttype.as_deref() != Some(p.kind.guid()) {
                        problem(
                            format!("partition {name}/{}", p.name),
                            format!(
                                "{} has type {}, the spec says {}",
                                found.kname,
                                found.parttype.as_deref().unwrap_or("none"),
                                p.kind.name()
                            ),
                            "changing a partition's type is not done automatically: check it, then fix it with sfdisk --part-type, or fix the spec",
                        );
                    }
                    if let PartSize::Bytes(b) = p.size.value
                        && found.size != b.0
                    {
                        problem(
                            format!("partition {name}/{}", p.name),
                            format!(
                                "{} is {} bytes, the spec says {}",
                                found.kname, found.size, b
                            ),
                            "resizing partitions is not planned automatically; fix the spec to the real size",
                        );
                    }
                    if !missing.is_empty() {
                        problem(
                            res.to_string(),
                            format!("partition `{}` exists but one before it does not", p.name),
                            "partitions are only ever added at the end of the disk",
                        );
                    }
                }
                None if i < kept.len() => {
                    // The slot is taken by a partition of another name: never guess.
                    problem(
                        format!("partition {name}/{}", p.name),
                        format!(
                            "partition {} of {kname} is `{}`, where the spec expects `{}`",
                            i + 1,
                            kept[i].partlabel.as_deref().unwrap_or("(no name)"),
                            p.name
                        ),
                        "name the partition in the spec as it is on the disk, or relabel it (sfdisk --part-label)",
                    );
                }
                None => missing.push(p),
            }
        }
    }
    (problems, missing)
}

/// Partitions missing at the end of an existing GPT: appended in its free space, and made
/// known to the kernel next to the busy ones.
fn append(c: &mut Ctx, res: &str, name: &Name, kname: &str, path: &str, missing: &[&Partition]) {
    let after = c
        .disk_teardown
        .get(name.as_str())
        .cloned()
        .unwrap_or_default();
    let id = c.add(
        Op::run(
            OpId::new(10, Address::Disk(name.to_string()), Verb::Append),
            res,
            format!(
                "add {} partition(s) in the free space of {kname}",
                missing.len()
            ), // The disk is usually in use (its other partitions are array members or
            // PVs): sfdisk then refuses unless told not to check with the re-read ioctl,
            // and the kernel cannot re-read a busy disk's table (both seen on the real
            // kernel, where sfdisk still exits 0). So sfdisk only writes the new entries,
            // and partx tells the kernel about those alone (BLKPG), next to the busy ones.
            vec![
                s("sfdisk"),
                s("--quiet"),
                s("--append"),
                s("--no-reread"),
                s("--no-tell-kernel"),
                s("--wipe"),
                s("never"),
                path.to_string(),
            ],
        )
        .with_stdin(sfdisk_script(&script_parts(missing), false))
        .after(after),
    );
    let id = c.add(
        Op::run(
            OpId::new(11, Address::Disk(name.to_string()), Verb::Partx),
            res,
            format!(
                "make the kernel see the new partition(s) of {kname}, leaving the others alone"
            ),
            vec![
                s("partx"),
                s("--add"),
                s("--nr"),
                format!("-{}:-1", missing.len()),
                path.to_string(),
            ],
        )
        .after(vec![id]),
    );
    for p in missing {
        c.made_by.insert(format!("{name}/{}", p.name), id.clone());
    }
    c.change(
        res,
        Action::Update,
        format!(
            "found as {kname}: new partitions {}",
            missing
                .iter()
                .map(|p| p.name.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
}

pub(super) const MIB: u64 = 1 << 20;

/// Why these partitions cannot fit in `room` bytes (sfdisk aligns each to 1 MiB; a `rest`
/// partition needs at least 1 MiB), or `None`.
pub(super) fn does_not_fit(ps: &[&Partition], room: u64) -> Option<String> {
    let mut need: u64 = 0;
    for p in ps {
        need = need.saturating_add(match p.size.value {
            PartSize::Bytes(b) => b.0.div_ceil(MIB).saturating_mul(MIB),
            PartSize::Rest => MIB,
        });
    }
    (need > room).then(|| {
        format!("the spec's partitions need {need} bytes, and only {room} are available: they cannot fit")
    })
}

pub(super) fn script_parts(ps: &[&Partition]) -> Vec<(String, Option<u64>, &'static str)> {
    ps.iter()
        .map(|p| {
            let size = match p.size.value {
                PartSize::Bytes(b) => Some(b.0),
                PartSize::Rest => None,
            };
            (p.name.value.clone(), size, p.kind.guid())
        })
        .collect()
}

/// A new GPT with the spec's partitions on a blank (or just wiped) disk.
pub(super) fn new_table(
    c: &mut Ctx,
    name: &str,
    kname: &str,
    path: &str,
    present: &[&Partition],
    after: Vec<OpId>,
) {
    let id = c.add(
        Op::run(
            OpId::new(10, Address::Disk(name.to_string()), Verb::Table),
            format!("disk {name}"),
            format!("write a GPT with {} partitions on {kname}", present.len()),
            vec![
                s("sfdisk"),
                s("--quiet"),
                s("--wipe"),
                s("never"),
                path.to_string(),
            ],
        )
        .with_stdin(sfdisk_script(&script_parts(present), true))
        .after(after),
    );
    for p in present {
        c.made_by.insert(format!("{name}/{}", p.name), id.clone());
    }
}

/// `wipe: true` on a disk that differs from the spec: erase the signatures of its partitions,
/// then of the disk (the partition table). Refused when anything on it is in use or still part
/// of an array or a VG, and without --allow-destroy. The ops to wait for, or `None`.
pub(super) fn wipe_disk(
    c: &mut Ctx,
    name: &str,
    kname: &str,
    path: &str,
    parts: &[&BlockDev],
    what: &str,
) -> Option<Vec<OpId>> {
    let res = format!("disk {name}");
    if let Some(why) = c.in_use(kname) {
        c.refuse(
            &res,
            format!("is in use ({why}); `wipe: true` never erases a disk in use"),
            "hostform never touches a device in use",
        );
        return None;
    }
    // The disk itself (a whole-disk member or PV) and each of its partitions.
    let whole = c.block(kname);
    for p in whole.iter().chain(parts) {
        let array = c
            .facts
            .arrays
            .values()
            .find(|a| a.members.iter().any(|m| m.kname == p.kname));
        if let Some(a) = array {
            c.refuse(
                &res,
                format!("{} is a member of the running array {}", p.kname, a.kname),
                "take it out of the array first (mdadm --fail, --remove), or check that this is the right disk",
            );
            return None;
        }
        let pv = c
            .facts
            .lvm
            .pvs
            .iter()
            .find(|v| c.facts.blocks.by_path(&v.device).map(|x| &x.kname) == Some(&p.kname));
        if let Some(v) = pv {
            c.refuse(
                &res,
                format!("{} is a PV of volume group {}", p.kname, v.vg),
                "move the VG off it first (pvmove, vgreduce), or check that this is the right disk",
            );
            return None;
        }
    }
    if !c.may_destroy(&res, &format!("{what}; `wipe: true` erases it")) {
        return None;
    }
    let mut ids = Vec::new();
    for p in parts {
        ids.push(
            c.add(
                Op::run(
                    OpId::new(
                        9,
                        Address::Disk(name.to_string()),
                        Verb::Wipe(Some(p.kname.to_string())),
                    ),
                    &res,
                    format!("erase the signatures on {}", p.kname),
                    vec![s("wipefs"), s("--all"), format!("/dev/{}", p.kname)],
                )
                .destructive(),
            ),
        );
    }
    let id = c.add(
        Op::run(
            OpId::new(9, Address::Disk(name.to_string()), Verb::Wipe(None)),
            &res,
            format!("erase the partition table and signatures of {kname}"),
            vec![s("wipefs"), s("--all"), path.to_string()],
        )
        .destructive()
        .after(ids),
    );
    Some(vec![id])
}
