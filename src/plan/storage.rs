//! Storage planning: compare the spec's disks, arrays, volume groups, LVs and filesystems with
//! what discovery found, adopt what matches, and create what is missing in dependency order
//! (partition table → array → PV → VG → LV → filesystem). Anything that would format, shrink or
//! overwrite data the spec does not allow is refused, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Address, Effect, Op, OpId, Options, Plan, Refusal, Risk, Verb};
use crate::discover::Facts;
use crate::kinds::block::{BlockDev, sfdisk_script};
use crate::kinds::lvm::PREVENT_DESTROY_TAG;
use crate::spec::types::*;
use crate::spec::units::{LvSize, PartSize};

mod repair;
mod teardown;
mod thin;

struct Ctx<'a> {
    spec: &'a Spec,
    facts: &'a Facts,
    opts: Options,
    plan: Plan,
    ops: Vec<Op>,
    /// spec disk name → kernel name.
    disks: BTreeMap<String, String>,
    /// Device reference (`md0`, `sda/raid`, `sda`) → the op that creates it in this plan.
    made_by: BTreeMap<String, OpId>,
    /// Devices this plan brings back (an assembled array) whose contents are unknown until the
    /// host is read again: nothing is planned on them in this run.
    reappearing: BTreeSet<String>,
    /// Kernel name of a device this plan frees (no longer a PV, an array member or a
    /// device-mapper holder) → the op after which it is free.
    freed: BTreeMap<String, OpId>,
    /// LVs (`vg/lv`) this plan removes → the op that removes them.
    removing: BTreeMap<String, OpId>,
    /// Spec disk name → ops that tear down part of it (partitions deleted, signatures wiped):
    /// what is written on the disk afterwards waits for them.
    disk_teardown: BTreeMap<String, Vec<OpId>>,
}

fn s(v: &str) -> String {
    v.to_string()
}

impl<'a> Ctx<'a> {
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
        stdin: Option<String>,
        writes_root: bool,
        after: Vec<OpId>,
    ) -> OpId {
        self.push(
            Risk::Safe,
            id,
            resource,
            summary,
            argv,
            stdin,
            writes_root,
            after,
        )
    }

    /// An operation that destroys data (removes, wipes, shrinks). Only planned once
    /// [`Ctx::may_destroy`] said yes.
    fn destroy(
        &mut self,
        id: OpId,
        resource: &str,
        summary: String,
        argv: Vec<String>,
        writes_root: bool,
        after: Vec<OpId>,
    ) -> OpId {
        self.push(
            Risk::Destructive,
            id,
            resource,
            summary,
            argv,
            None,
            writes_root,
            after,
        )
    }

    /// Whether the operator allowed destruction; if not, the refusal says which flag to add.
    fn may_destroy(&mut self, resource: &str, what: &str) -> bool {
        if self.opts.allow_destroy {
            return true;
        }
        self.refuse(
            resource,
            format!("{what}: this destroys data, and --allow-destroy was not given"),
            "review the plan, then run it again with --allow-destroy",
        );
        false
    }

    /// Why a block device cannot be touched: mounted (/, /boot…), active swap, or holding
    /// something mounted. `None` when it is free.
    fn in_use(&self, kname: &str) -> Option<String> {
        let b = self.block(kname)?;
        if !b.mountpoints.is_empty() {
            return Some(if b.mountpoints.iter().any(|m| m == "[SWAP]") {
                format!("{} is active swap", b.kname)
            } else {
                format!("{} is mounted on {}", b.kname, b.mountpoints.join(", "))
            });
        }
        self.facts
            .blocks
            .busy(kname)
            .then(|| format!("{} holds something mounted or used as swap", b.kname))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        risk: Risk,
        id: OpId,
        resource: &str,
        summary: String,
        argv: Vec<String>,
        stdin: Option<String>,
        writes_root: bool,
        after: Vec<OpId>,
    ) -> OpId {
        let mut op = Op::run(id.clone(), resource, summary, argv);
        if let Effect::Run { stdin: input, .. } = &mut op.effect {
            *input = stdin;
        }
        op.risk = risk;
        op.writes_root = writes_root;
        op.after = after;
        // New partitions, arrays and LVs get their /dev nodes and by-id links from udev.
        op.settle = true;
        self.ops.push(op);
        id
    }

    fn block(&self, kname: &str) -> Option<&'a BlockDev> {
        self.facts.blocks.get(kname)
    }

    /// The stable path of a spec disk: the spec's `id` when it names the device found on this
    /// host, else a by-id name of that device (the disk was found by its serial: a path that
    /// does not exist here is never written to), else its kernel name.
    fn disk_path(&self, name: &str) -> String {
        let d = &self.spec.disks[name];
        let k = self.disks.get(name).cloned().unwrap_or_default();
        if let Some(id) = &d.id
            && (k.is_empty() || resolve_id(self.facts, &id.value).as_deref() == Some(k.as_str()))
        {
            return id.value.clone();
        }
        self.facts
            .by_id
            .iter()
            .filter(|(n, t)| **t == k && !n.contains("-part") && !n.starts_with("wwn-"))
            .map(|(n, _)| format!("/dev/disk/by-id/{n}"))
            .next()
            .unwrap_or_else(|| format!("/dev/{k}"))
    }

    /// Path of a device reference (`md0`, `sda/raid`, `sda`).
    fn device_path(&self, r: &str) -> Option<String> {
        if let Some((d, p)) = r.split_once('/') {
            let disk = self.spec.disks.get(d)?;
            let n = disk.partitions.iter().position(|x| x.name.value == p)? + 1;
            let base = self.disk_path(d);
            return Some(if base.starts_with("/dev/disk/by-") {
                format!("{base}-part{n}")
            } else if base.chars().last().is_some_and(|c| c.is_ascii_digit()) {
                format!("{base}p{n}")
            } else {
                format!("{base}{n}")
            });
        }
        if self.spec.arrays.contains_key(r) {
            return Some(crate::spec::names::array_path(r));
        }
        self.spec.disks.contains_key(r).then(|| self.disk_path(r))
    }

    /// The block device a reference designates today, if it exists.
    fn device_now(&self, r: &str) -> Option<&'a BlockDev> {
        if let Some((d, p)) = r.split_once('/') {
            let k = self.disks.get(d)?.clone();
            let facts: &'a Facts = self.facts;
            return facts.blocks.devices.values().find(|c| {
                c.is_partition() && c.parents.contains(&k) && c.partlabel.as_deref() == Some(p)
            });
        }
        if self.spec.arrays.contains_key(r) {
            return self.facts.blocks.get(r).or_else(|| {
                self.facts
                    .blocks
                    .devices
                    .values()
                    .find(|b| b.kind.starts_with("raid") && b.name == r)
            });
        }
        self.block(self.disks.get(r)?)
    }
}

/// The storage room.
pub fn plan(into: &mut Plan, spec: &Spec, facts: &Facts, opts: &Options) {
    super::merge(into, storage(spec, facts, opts));
}

fn storage(spec: &Spec, facts: &Facts, opts: &Options) -> Plan {
    let mut c = Ctx {
        spec,
        facts,
        opts: *opts,
        plan: Plan::default(),
        ops: Vec::new(),
        disks: BTreeMap::new(),
        made_by: BTreeMap::new(),
        reappearing: Default::default(),
        freed: BTreeMap::new(),
        removing: BTreeMap::new(),
        disk_teardown: BTreeMap::new(),
    };
    c.plan.remount_root = spec.root.readonly && facts.root_readonly;
    // What the spec marks absent goes first, top-down (snapshots, LVs, VGs, arrays); absent
    // partitions are removed with their disk, once what sat on them is gone.
    teardown::lvm_and_arrays(&mut c);
    disks(&mut c);
    arrays(&mut c);
    volume_groups(&mut c);
    unmanaged(&mut c);
    // Unordered: `plan_host` orders every room's operations together, once.
    c.plan.ops = std::mem::take(&mut c.ops);
    c.plan
}

/// The operations of a plan that make the LV `vg/lv` ready for a guest (those this plan has):
/// created, grown, activated, its permission set, its filesystem made.
pub fn lv_ready(lv: &str) -> Vec<OpId> {
    let a = || Address::lv_key(lv);
    vec![
        OpId::new(50, a(), Verb::Create),
        OpId::new(50, a(), Verb::Extend),
        OpId::new(52, a(), Verb::Activate),
        OpId::new(55, a(), Verb::Permission),
        OpId::new(57, a(), Verb::Mkfs),
        OpId::new(58, a(), Verb::Permission),
    ]
}

/// The LVs (`vg/lv`) the plan grows.
pub fn grown_lvs(plan: &Plan) -> BTreeSet<String> {
    plan.ops
        .iter()
        .filter(|o| *o.id.verb() == Verb::Extend)
        .filter_map(|o| match o.id.address() {
            Address::Lv { vg, lv } => Some(format!("{vg}/{lv}")),
            _ => None,
        })
        .collect()
}

/// Make the growth of each LV wait for an operation (a guest's stop): `(lv, op)` pairs.
pub fn grow_after(plan: &mut Plan, waits: Vec<(String, OpId)>) {
    if waits.is_empty() {
        return;
    }
    // Each op by id (the first, should two share one), found once instead of by a scan per
    // grown LV.
    let mut at: std::collections::HashMap<OpId, usize> = Default::default();
    for (i, o) in plan.ops.iter().enumerate() {
        at.entry(o.id.clone()).or_insert(i);
    }
    for (lv, op) in waits {
        if let Some(&i) = at.get(&OpId::new(50, Address::lv_key(&lv), Verb::Extend)) {
            plan.ops[i].after.push(op);
        }
    }
}

/// The kernel name of a spec disk `id`: a by-id name (a `wwn-` name also by the WWN lsblk
/// reports, where udev made no link) or a by-path name.
pub(crate) fn resolve_id(facts: &crate::discover::Facts, id: &str) -> Option<String> {
    if let Some(alias) = id.strip_prefix("/dev/disk/by-id/") {
        return facts.by_id.get(alias).cloned().or_else(|| {
            let wwn = alias.strip_prefix("wwn-")?;
            facts
                .blocks
                .devices
                .values()
                .find(|b| b.is_disk() && b.wwn.as_deref() == Some(wwn))
                .map(|b| b.kname.clone())
        });
    }
    let alias = id.strip_prefix("/dev/disk/by-path/")?;
    facts.by_path.get(alias).cloned()
}

fn disks(c: &mut Ctx) {
    for (name, d) in &c.spec.disks {
        let res = format!("disk {name}");
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
            c.refuse(&res, format!("not found on this host ({})", d.id.as_ref().or(d.serial.as_ref()).map(|x| x.value.clone()).unwrap_or_default()), "check `ls -l /dev/disk/by-id` and `lsblk -o NAME,SERIAL`; kernel names like sda can change");
            continue;
        };
        if let Some((other, _)) = c.disks.iter().find(|(_, k)| **k == kname) {
            c.refuse(
                &res,
                format!("resolves to {kname}, the same device as disk {other}"),
                "each spec disk must name a different device: check `id` and `serial`",
            );
            continue;
        }
        if let Some(dev) = c.block(&kname)
            && !dev.is_disk()
        {
            c.refuse(
                &res,
                format!("resolves to {kname}, a {}, not a whole disk", dev.kind),
                "`id` and `serial` must name a whole disk (no `-partN` alias); name the partition in the disk's `partitions` instead",
            );
            continue;
        }
        c.disks.insert(name.value.clone(), kname.clone());
        let Some(dev) = c.block(&kname) else { continue };
        if let Some(min) = d.size
            && dev.size < min.value.0
        {
            c.refuse(
                &res,
                format!(
                    "is {} bytes, smaller than the spec's {}",
                    dev.size, min.value
                ),
                "correct `size`, or check that this is the right disk",
            );
            continue;
        }
        if d.partitions.is_empty() {
            c.change(&res, Action::NoOp, format!("found as {kname}, used whole"));
            continue;
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
            if let Some(why) = c.in_use(&kname) {
                c.refuse(
                    &res,
                    format!("is in use ({why})"),
                    "hostform never touches a device in use",
                );
                continue;
            }
            for p in &absent {
                c.change(
                    &format!("partition {name}/{}", p.name),
                    Action::NoOp,
                    "absent, as the spec says",
                );
            }
            if let Some(why) = does_not_fit(&present, dev.size.saturating_sub(2 * MIB)) {
                c.refuse(
                    &res,
                    format!("{kname}: {why}"),
                    "fix the partition sizes, or check that this is the right disk",
                );
                continue;
            }
            new_table(c, name, &kname, &path, &present, Vec::new());
            c.change(
                &res,
                Action::Create,
                format!("{kname} is blank: new partition table"),
            );
            continue;
        }
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
                res.clone(),
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
                                res.clone(),
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
            continue;
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
            continue;
        }
        if missing.is_empty() {
            c.change(
                &res,
                Action::NoOp,
                format!("found as {kname}; its partitions match"),
            );
        } else {
            let after = c
                .disk_teardown
                .get(name.as_str())
                .cloned()
                .unwrap_or_default();
            let id = c.op(
                OpId::new(10, Address::Disk(name.to_string()), Verb::Append),
                &res,
                format!(
                    "add {} partition(s) in the free space of {kname}",
                    missing.len()
                ),
                // The disk is usually in use (its other partitions are array members or
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
                    path.clone(),
                ],
                Some(sfdisk_script(&script_parts(&missing), false)),
                false,
                after,
            );
            let id = c.op(
                OpId::new(11, Address::Disk(name.to_string()), Verb::Partx),
                &res,
                format!(
                    "make the kernel see the new partition(s) of {kname}, leaving the others alone"
                ),
                vec![
                    s("partx"),
                    s("--add"),
                    s("--nr"),
                    format!("-{}:-1", missing.len()),
                    path.clone(),
                ],
                None,
                false,
                vec![id],
            );
            for p in &missing {
                c.made_by.insert(format!("{name}/{}", p.name), id.clone());
            }
            c.change(
                &res,
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
    }
}

const MIB: u64 = 1 << 20;

/// Why these partitions cannot fit in `room` bytes (sfdisk aligns each to 1 MiB; a `rest`
/// partition needs at least 1 MiB), or `None`.
fn does_not_fit(ps: &[&Partition], room: u64) -> Option<String> {
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

fn script_parts(ps: &[&Partition]) -> Vec<(String, Option<u64>, &'static str)> {
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
fn new_table(
    c: &mut Ctx,
    name: &str,
    kname: &str,
    path: &str,
    present: &[&Partition],
    after: Vec<OpId>,
) {
    let id = c.op(
        OpId::new(10, Address::Disk(name.to_string()), Verb::Table),
        &format!("disk {name}"),
        format!("write a GPT with {} partitions on {kname}", present.len()),
        vec![
            s("sfdisk"),
            s("--quiet"),
            s("--wipe"),
            s("never"),
            path.to_string(),
        ],
        Some(sfdisk_script(&script_parts(present), true)),
        false,
        after,
    );
    for p in present {
        c.made_by.insert(format!("{name}/{}", p.name), id.clone());
    }
}

/// `wipe: true` on a disk that differs from the spec: erase the signatures of its partitions,
/// then of the disk (the partition table). Refused when anything on it is in use or still part
/// of an array or a VG, and without --allow-destroy. The ops to wait for, or `None`.
fn wipe_disk(
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
        ids.push(c.destroy(
            OpId::new(
                9,
                Address::Disk(name.to_string()),
                Verb::Wipe(Some(p.kname.to_string())),
            ),
            &res,
            format!("erase the signatures on {}", p.kname),
            vec![s("wipefs"), s("--all"), format!("/dev/{}", p.kname)],
            false,
            Vec::new(),
        ));
    }
    let id = c.destroy(
        OpId::new(9, Address::Disk(name.to_string()), Verb::Wipe(None)),
        &res,
        format!("erase the partition table and signatures of {kname}"),
        vec![s("wipefs"), s("--all"), path.to_string()],
        false,
        ids,
    );
    Some(vec![id])
}

fn arrays(c: &mut Ctx) {
    for (name, a) in &c.spec.arrays {
        let res = format!("array {name}");
        if a.state == Presence::Absent {
            continue; // teardown
        }
        let refs: Vec<&str> = a
            .devices
            .iter()
            .chain(&a.spares)
            .map(|r| r.value.as_str())
            .collect();
        let Some(paths) = refs
            .iter()
            .map(|r| c.device_path(r))
            .collect::<Option<Vec<String>>>()
        else {
            continue; // a member disk was not found: already refused
        };
        let now: Vec<Option<&BlockDev>> = refs.iter().map(|r| c.device_now(r)).collect();
        let knames: Vec<&str> = now.iter().flatten().map(|b| b.kname.as_str()).collect();
        // The same device twice (two references, or a disk and one of its partitions).
        let twice = paths
            .iter()
            .enumerate()
            .find(|(i, p)| paths[..*i].contains(p))
            .map(|(_, p)| p.clone())
            .or_else(|| {
                knames
                    .iter()
                    .enumerate()
                    .find(|(i, k)| knames[..*i].contains(k))
                    .map(|(_, k)| k.to_string())
            })
            .or_else(|| {
                now.iter().flatten().find_map(|b| {
                    now.iter()
                        .flatten()
                        .find(|o| b.parents.contains(&o.kname))
                        .map(|o| format!("{} and its partition {}", o.kname, b.kname))
                })
            });
        if let Some(dup) = twice {
            c.refuse(
                &res,
                format!("names the same device twice: {dup}"),
                "each member must be a different device",
            );
            continue;
        }
        // An array already running on these members?
        let running = c
            .facts
            .arrays
            .values()
            .find(|x| x.members.iter().any(|m| knames.contains(&m.kname.as_str())));
        if let Some(x) = running {
            let level = u8::from(a.level.value);
            if x.level_number() != Some(level) {
                c.refuse(
                    &res,
                    format!(
                        "{} on these members is {}, the spec says RAID{level}",
                        x.kname, x.level
                    ),
                    "hostform does not change RAID levels",
                );
            } else if x.kname != name.value {
                c.refuse(
                    &res,
                    format!("its members form {}, the spec names it {name}", x.kname),
                    format!("rename the array in the spec to `{}`", x.kname),
                );
            } else if x.degraded() || x.members.iter().any(|m| m.failed) {
                let x = x.clone();
                repair::degraded(c, name, &refs, &now, &paths, &x);
            } else {
                let spec_set: BTreeSet<&str> = knames.iter().copied().collect();
                let host_set: BTreeSet<&str> = x.members.iter().map(|m| m.kname.as_str()).collect();
                let missing: Vec<&str> = spec_set.difference(&host_set).copied().collect();
                let extra: Vec<&str> = host_set.difference(&spec_set).copied().collect();
                if missing.is_empty() && extra.is_empty() {
                    c.change(&res, Action::NoOp, "running with the spec's members");
                } else {
                    c.refuse(
                        &res,
                        format!(
                            "{} is running with members that differ from the spec: not in the array {}; in the array, not in the spec {}",
                            x.kname,
                            if missing.is_empty() { "(none)".into() } else { missing.join(", ") },
                            if extra.is_empty() { "(none)".into() } else { extra.join(", ") },
                        ),
                        "check which devices are the array's members (`mdadm --detail`), and fix the spec; hostform does not move members between devices",
                    );
                }
            }
            continue;
        }
        // Its name is taken by a running array on other members.
        if let Some(x) = c.facts.arrays.values().find(|x| {
            x.kname == name.value
                || c.facts
                    .blocks
                    .get(&x.kname)
                    .is_some_and(|b| b.name == name.value)
        }) {
            c.refuse(
                &res,
                format!(
                    "the name is taken by the running array {} on other members ({})",
                    x.kname,
                    x.members
                        .iter()
                        .map(|m| m.kname.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "check which disks the spec names: they are not that array's members",
            );
            continue;
        }
        // Not running: members either carry its superblock (assemble) or are blank (create).
        let uuids: Vec<Option<&str>> = now
            .iter()
            .map(|b| {
                b.and_then(|b| {
                    (b.fstype.as_deref() == Some("linux_raid_member"))
                        .then_some(b.uuid.as_deref().unwrap_or(""))
                })
            })
            .collect();
        let foreign: Vec<String> = now
            .iter()
            .flatten()
            .filter(|b| b.fstype.is_some() && b.fstype.as_deref() != Some("linux_raid_member"))
            .map(|b| format!("{} ({})", b.kname, b.fstype.as_deref().unwrap_or("")))
            .collect();
        let mut wiped: Vec<OpId> = Vec::new();
        if !foreign.is_empty() {
            if !a.wipe {
                c.refuse(
                    &res,
                    format!("members carry other data: {}", foreign.join(", ")),
                    "check them; set `wipe: true` on the array if that data may go",
                );
                continue;
            }
            // `wipe: true`: erase those signatures first (never on a device in use).
            let targets: Vec<&BlockDev> = now
                .iter()
                .flatten()
                .copied()
                .filter(|b| b.fstype.is_some() && b.fstype.as_deref() != Some("linux_raid_member"))
                .collect();
            if let Some(why) = targets.iter().find_map(|b| c.in_use(&b.kname)) {
                c.refuse(
                    &res,
                    format!(
                        "a member is in use ({why}); `wipe: true` never erases a device in use"
                    ),
                    "hostform never touches a device in use",
                );
                continue;
            }
            if !c.may_destroy(
                &res,
                &format!(
                    "members carry other data ({}); `wipe: true` erases it",
                    foreign.join(", ")
                ),
            ) {
                continue;
            }
            for b in targets {
                wiped.push(c.destroy(
                    OpId::new(
                        19,
                        Address::Array(name.to_string()),
                        Verb::Wipe(Some(b.kname.to_string())),
                    ),
                    &res,
                    format!(
                        "erase the {} signature on {}",
                        b.fstype.as_deref().unwrap_or(""),
                        b.kname
                    ),
                    vec![s("wipefs"), s("--all"), format!("/dev/{}", b.kname)],
                    false,
                    Vec::new(),
                ));
            }
        }
        // Every member must exist and have been inspected, or be made by this plan.
        let unknown: Vec<&str> = refs
            .iter()
            .zip(&now)
            .filter(|(r, b)| b.is_none() && !c.made_by.contains_key(**r))
            .map(|(r, _)| *r)
            .collect();
        if !unknown.is_empty() {
            c.refuse(&res, format!("member(s) {} are not on the host under those names, and this plan does not create them", unknown.join(", ")), "see the refusals above for their disks");
            continue;
        }
        let after: Vec<OpId> = refs
            .iter()
            .filter_map(|r| c.made_by.get(*r).cloned())
            .chain(wiped)
            .collect();
        if uuids.iter().any(Option::is_some) {
            let set: std::collections::BTreeSet<&str> = uuids.iter().flatten().copied().collect();
            if set.len() > 1 || uuids.iter().any(Option::is_none) {
                c.refuse(
                    &res,
                    "its members carry different md superblocks (or some none)",
                    "inspect with `mdadm --examine`; hostform assembles only members of one array",
                );
                continue;
            }
            let mut argv = vec![
                s("mdadm"),
                s("--assemble"),
                crate::spec::names::array_path(name),
            ];
            argv.extend(paths.iter().cloned());
            c.op(
                OpId::new(20, Address::Array(name.to_string()), Verb::Assemble),
                &res,
                format!("assemble {name} from its members (they carry its superblock)"),
                argv,
                None,
                false,
                after,
            );
            c.reappearing.insert(name.value.clone());
            c.change(
                &res,
                Action::Create,
                "members carry its superblock: assembled, not created",
            );
            continue;
        }
        let n = a.devices.len();
        let mut argv = vec![
            s("mdadm"),
            s("--create"),
            crate::spec::names::array_path(name),
            s("--run"),
            format!("--level={}", u8::from(a.level.value)),
            format!("--raid-devices={n}"),
            format!("--metadata={}", a.metadata.as_str()),
        ];
        if !a.spares.is_empty() {
            argv.push(format!("--spare-devices={}", a.spares.len()));
        }
        argv.extend(paths.iter().cloned());
        let id = c.op(
            OpId::new(20, Address::Array(name.to_string()), Verb::Create),
            &res,
            format!(
                "create RAID{} {name} over {}",
                u8::from(a.level.value),
                refs.join(", ")
            ),
            argv,
            None,
            false,
            after,
        );
        c.made_by.insert(name.value.clone(), id);
        c.change(&res, Action::Create, "no array on these members");
    }
}

fn volume_groups(c: &mut Ctx) {
    for (vgname, vg) in &c.spec.volume_groups {
        let res = format!("volume group {vgname}");
        if vg.state == Presence::Absent {
            continue;
        }
        let existing = c.facts.lvm.vgs.get(vgname.value.as_str()).cloned();
        let mut after_vg: Vec<OpId> = Vec::new();
        let mut new_pvs: Vec<String> = Vec::new();
        let mut pv_ops: Vec<OpId> = Vec::new();
        let mut blocked = false;
        if let Some(pv) = vg
            .pvs
            .iter()
            .find(|p| c.reappearing.contains(p.value.as_str()))
        {
            // Its contents (a PV, a VG, LVs) are read after assembly, in apply's follow-up round.
            defer_vg(c, vgname, vg, pv);
            continue;
        }
        for pv in &vg.pvs {
            let Some(path) = c.device_path(&pv.value) else {
                blocked = true;
                continue;
            };
            let now = c.device_now(&pv.value);
            if now.is_none() && !c.made_by.contains_key(pv.value.as_str()) {
                c.refuse(&res, format!("PV {pv} is not on the host under that name, and this plan does not create it"), "see the refusals above for the device it lives on");
                blocked = true;
                continue;
            }
            let as_pv =
                now.and_then(|b| {
                    c.facts.lvm.pvs.iter().find(|p| {
                        c.facts.blocks.by_path(&p.device).map(|x| &x.kname) == Some(&b.kname)
                    })
                });
            match as_pv {
                Some(p) if p.vg == vgname.value => continue,
                Some(p) if !p.vg.is_empty() => {
                    c.refuse(
                        &res,
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
                    &res,
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
            let id = c.op(
                OpId::new(30, Address::Pv(pv.to_string()), Verb::Create),
                &res,
                format!("make {pv} an LVM physical volume"),
                vec![s("pvcreate"), s("--quiet"), path.clone()],
                None,
                true,
                after,
            );
            pv_ops.push(id);
            new_pvs.push(path);
        }
        if blocked {
            continue;
        }
        // `prevent-destroy: true` is written on the host as an LVM tag, so it outlives the spec.
        let protect = vg.prevent_destroy && !existing.as_ref().is_some_and(|v| v.protected());
        match &existing {
            Some(_) if new_pvs.is_empty() && protect => {
                c.change(&res, Action::Update, "prevent-destroy: tagged on the host")
            }
            Some(_) if new_pvs.is_empty() => {
                c.change(&res, Action::NoOp, "exists with the spec's PVs")
            }
            Some(_) => {
                let mut argv = vec![s("vgextend"), s("--quiet"), vgname.value.clone()];
                argv.extend(new_pvs.iter().cloned());
                let id = c.op(
                    OpId::new(40, Address::Vg(vgname.to_string()), Verb::Extend),
                    &res,
                    format!("add {} PV(s) to {vgname}", new_pvs.len()),
                    argv,
                    None,
                    true,
                    pv_ops,
                );
                after_vg.push(id);
                c.change(&res, Action::Update, "new PVs");
            }
            None => {
                if vg.shared && !c.facts.lvm.lockd {
                    c.refuse(
                        &res,
                        "a shared VG (`vgcreate --shared`) needs lvmlockd, which is not running on this host",
                        "start lvmlockd and its lock manager (sanlock or dlm) with `use_lvmlockd = 1` in lvm.conf, or remove `shared: true`",
                    );
                    continue;
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
                let id = c.op(
                    OpId::new(40, Address::Vg(vgname.to_string()), Verb::Create),
                    &res,
                    format!("create volume group {vgname}"),
                    argv,
                    None,
                    true,
                    pv_ops,
                );
                after_vg.push(id);
                c.change(&res, Action::Create, "no such volume group");
            }
        }
        if protect {
            c.op(
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
                None,
                true,
                after_vg.clone(),
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
        thin::pools(c, vgname, vg, extent, &after_vg);
        for (sname, snap) in &vg.snapshots {
            let res = format!("snapshot {vgname}/{sname}");
            if snap.state == Presence::Absent {
                continue; // teardown
            }
            if c.facts.lvm.lvs.contains_key(&format!("{vgname}/{sname}")) {
                c.change(&res, Action::NoOp, "exists");
                continue;
            }
            let origin = format!("lv {vgname}/{}", snap.origin);
            let after: Vec<OpId> = c
                .ops
                .iter()
                .filter(|o| o.resource == origin)
                .map(|o| o.id.clone())
                .chain(after_vg.iter().cloned())
                .collect();
            c.op(
                OpId::new(
                    60,
                    Address::Snapshot {
                        vg: vgname.to_string(),
                        name: sname.to_string(),
                    },
                    Verb::Create,
                ),
                &res,
                format!("snapshot {vgname}/{}", snap.origin),
                vec![
                    s("lvcreate"),
                    s("--quiet"),
                    s("--snapshot"),
                    s("-n"),
                    sname.value.clone(),
                    s("-L"),
                    format!("{}b", snap.size.value.0),
                    format!("{vgname}/{}", snap.origin),
                ],
                None,
                true,
                after,
            );
            c.change(&res, Action::Create, "no such snapshot");
        }
    }
}

/// A VG on an array this plan assembles: it, its LVs and snapshots are announced as deferred.
fn defer_vg(c: &mut Ctx, vgname: &str, vg: &VolumeGroup, waits_for: &str) {
    let res = std::iter::once(format!("volume group {vgname}"))
        .chain(vg.lvs.keys().map(|l| format!("lv {vgname}/{l}")))
        .chain(
            vg.snapshots
                .keys()
                .map(|l| format!("snapshot {vgname}/{l}")),
        )
        .chain(thin::resources(vgname, vg));
    for resource in res {
        c.plan.deferred.push(super::Deferred {
            resource,
            waits_for: waits_for.to_string(),
        });
    }
}

#[allow(clippy::too_many_arguments)]
fn logical_volume(
    c: &mut Ctx,
    vgname: &str,
    lvname: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
    after_vg: &[OpId],
) {
    let res = format!("lv {vgname}/{lvname}");
    let key = format!("{vgname}/{lvname}");
    let path = format!("/dev/{vgname}/{lvname}");
    let current = c.facts.lvm.lvs.get(&key).cloned();
    if lv.state == Presence::Absent {
        return; // teardown
    }
    if thin::not_plain(c, &res, &key) {
        return;
    }
    let dm = format!(
        "{}-{}",
        vgname.replace('-', "--"),
        lvname.replace('-', "--")
    );
    let fstype = c.facts.blocks.by_name(&dm).and_then(|b| b.fstype.clone());
    let want_fs = match lv.fs {
        Filesystem::Ext4 => Some("ext4"),
        Filesystem::Xfs => Some("xfs"),
        Filesystem::Swap => Some("swap"),
        Filesystem::None => None,
    };
    let mkfs = |fs: &str| -> Vec<String> {
        match fs {
            "ext4" => vec![s("mkfs.ext4"), s("-q"), path.clone()],
            "xfs" => vec![s("mkfs.xfs"), s("-q"), path.clone()],
            _ => vec![s("mkswap"), path.clone()],
        }
    };
    match current {
        Some(cur) => {
            let mut reasons = Vec::new();
            if lv.image.is_some()
                && !image_lv_existing(c, vgname, lvname, lv, &cur, extent, after_vg, &mut reasons)
            {
                return;
            }
            if let Some(size) = lv.size
                && let LvSize::Bytes(b) = size.value
            {
                let want = b.0.div_ceil(extent) * extent;
                if want > cur.size {
                    let mut argv = vec![s("lvextend"), s("--quiet"), s("-L"), format!("{want}b")];
                    if want_fs.is_some_and(|f| f != "swap") && fstype.is_some() {
                        argv.push(s("--resizefs"));
                    }
                    argv.push(key.clone());
                    c.op(
                        OpId::new(50, Address::lv_key(&key), Verb::Extend),
                        &res,
                        format!("grow {key} from {} to {}", cur.size, want),
                        argv,
                        None,
                        true,
                        after_vg.to_vec(),
                    );
                    reasons.push(format!("grows from {} to {want} bytes", cur.size));
                } else if want < cur.size {
                    let shrink = format!("is {} bytes, the spec says {want}", cur.size);
                    if !lv.allow_shrink {
                        c.refuse(&res, format!("{shrink}: that would shrink it"), "hostform never shrinks by accident: fix the spec to the real size, or set `allow-shrink: true`");
                        return;
                    }
                    let dev = c.facts.blocks.by_name(&dm).map(|b| b.kname.clone());
                    if let Some(why) = dev.and_then(|k| c.in_use(&k)) {
                        c.refuse(
                            &res,
                            format!("{shrink}, but {why}: a mounted filesystem is never shrunk"),
                            "unmount it (or swapoff), then plan again",
                        );
                        return;
                    }
                    if cur.open {
                        c.refuse(&res, format!("{shrink}, but it is open (a guest or a process uses it): never shrunk while in use"), "stop what uses it, then plan again");
                        return;
                    }
                    if !cur.active {
                        c.refuse(
                            &res,
                            format!(
                                "{shrink}, but it is inactive: its filesystem could not be read"
                            ),
                            "activate it (lvchange -ay), then plan again",
                        );
                        return;
                    }
                    let resizefs = match fstype.as_deref() {
                        Some("ext4") => true,
                        None => false,
                        Some("xfs") => {
                            c.refuse(&res, format!("{shrink}, but it holds xfs, which cannot be shrunk"), "fix the spec to the real size, or copy the data to a new, smaller LV");
                            return;
                        }
                        Some(f) => {
                            c.refuse(&res, format!("{shrink}, but it holds {f}, which hostform does not shrink"), "fix the spec to the real size, or recreate it (state: absent, then present again)");
                            return;
                        }
                    };
                    if !c.may_destroy(
                        &res,
                        &format!("{shrink}: shrinking it (allow-shrink) cuts off its end"),
                    ) {
                        return;
                    }
                    let mut argv = vec![s("lvreduce"), s("--quiet"), s("--yes")];
                    if resizefs {
                        // fsadm checks the filesystem (e2fsck -f), then shrinks it first.
                        argv.push(s("--resizefs"));
                    }
                    argv.extend([s("-L"), format!("{want}b"), key.clone()]);
                    c.destroy(
                        OpId::new(50, Address::lv_key(&key), Verb::Reduce),
                        &res,
                        format!(
                            "shrink {key} from {} to {want}{}",
                            cur.size,
                            if resizefs { " with its ext4" } else { "" }
                        ),
                        argv,
                        true,
                        after_vg.to_vec(),
                    );
                    reasons.push(format!("shrinks from {} to {want} bytes", cur.size));
                }
            }
            if cur.readonly != lv.readonly {
                c.op(
                    OpId::new(55, Address::lv_key(&key), Verb::Permission),
                    &res,
                    format!(
                        "make {key} {}",
                        if lv.readonly {
                            "read-only"
                        } else {
                            "read-write"
                        }
                    ),
                    vec![
                        s("lvchange"),
                        s("--quiet"),
                        s("-p"),
                        s(if lv.readonly { "r" } else { "rw" }),
                        key.clone(),
                    ],
                    None,
                    true,
                    after_vg.to_vec(),
                );
                reasons.push("permission".into());
            }
            // An inactive LV has no device node, so no signature could be read: activate it and
            // leave the filesystem to the next reading (the verification after apply), never mkfs.
            let unread = !cur.active && !cur.open;
            if unread {
                c.op(
                    OpId::new(52, Address::lv_key(&key), Verb::Activate),
                    &res,
                    format!("activate {key} (inactive: its filesystem could not be read)"),
                    vec![s("lvchange"), s("--quiet"), s("-ay"), key.clone()],
                    None,
                    false,
                    after_vg.to_vec(),
                );
                reasons.push("inactive: activated".into());
            }
            match (want_fs, fstype.as_deref()) {
                _ if unread => {}
                (Some(w), None) => {
                    c.op(
                        OpId::new(57, Address::lv_key(&key), Verb::Mkfs),
                        &res,
                        format!("create {w} on {key} (it holds no signature)"),
                        mkfs(w),
                        None,
                        false,
                        after_vg.to_vec(),
                    );
                    reasons.push(format!("new {w}"));
                }
                (Some(w), Some(f)) if w != f => {
                    if !lv.wipe {
                        c.refuse(&res, format!("holds {f}, the spec says {w}"), "hostform does not reformat by accident; fix the spec, or set `wipe: true` on the LV if its data may go");
                        return;
                    }
                    let dev = c.facts.blocks.by_name(&dm).map(|b| b.kname.clone());
                    if let Some(why) = dev
                        .and_then(|k| c.in_use(&k))
                        .or_else(|| cur.open.then(|| format!("{key} is open")))
                    {
                        c.refuse(&res, format!("holds {f}, the spec says {w}, but it is in use ({why}); `wipe: true` never erases what is in use"), "stop what uses it, then plan again");
                        return;
                    }
                    if !c.may_destroy(
                        &res,
                        &format!("holds {f}; `wipe: true` erases it for a new {w}"),
                    ) {
                        return;
                    }
                    let wipe = c.destroy(
                        OpId::new(56, Address::lv_key(&key), Verb::Wipe(None)),
                        &res,
                        format!("erase the {f} signature on {key}"),
                        vec![s("wipefs"), s("--all"), path.clone()],
                        false,
                        after_vg.to_vec(),
                    );
                    c.op(
                        OpId::new(57, Address::lv_key(&key), Verb::Mkfs),
                        &res,
                        format!("create {w} on {key}"),
                        mkfs(w),
                        None,
                        false,
                        vec![wipe],
                    );
                    reasons.push(format!("{f} erased (wipe: true), new {w}"));
                }
                _ => {}
            }
            if lv.prevent_destroy && !cur.protected() {
                c.op(
                    OpId::new(58, Address::lv_key(&key), Verb::Protect),
                    &res,
                    format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                    protect_argv(&key),
                    None,
                    true,
                    after_vg.to_vec(),
                );
                reasons.push("prevent-destroy: tagged on the host".into());
            }
            if reasons.is_empty() {
                c.change(&res, Action::NoOp, "matches");
            } else {
                c.change(&res, Action::Update, reasons.join(", "));
            }
        }
        None => {
            if lv.image.is_some() {
                image_lv_create(c, vgname, lvname, lv, extent, after_vg);
                return;
            }
            let Some(size) = lv.size else { return };
            let mut argv = vec![
                s("lvcreate"),
                s("--quiet"),
                s("--yes"),
                s("-n"),
                lvname.to_string(),
            ];
            match size.value {
                LvSize::Bytes(b) => {
                    argv.push(s("-L"));
                    argv.push(format!("{}b", b.0.div_ceil(extent) * extent));
                }
                LvSize::PercentVg(p) => {
                    argv.push(s("-l"));
                    argv.push(format!("{p}%VG"));
                }
                LvSize::PercentFree(p) => {
                    argv.push(s("-l"));
                    argv.push(format!("{p}%FREE"));
                }
            }
            argv.push(vgname.to_string());
            if let Some(pv) = &lv.pv
                && let Some(p) = c.device_path(&pv.value)
            {
                argv.push(p);
            }
            let id = c.op(
                OpId::new(50, Address::lv_key(&key), Verb::Create),
                &res,
                format!("create {key} ({})", size.value),
                argv,
                None,
                true,
                after_vg.to_vec(),
            );
            let mut last = id.clone();
            if let Some(w) = want_fs {
                last = c.op(
                    OpId::new(57, Address::lv_key(&key), Verb::Mkfs),
                    &res,
                    format!("create {w} on {key}"),
                    mkfs(w),
                    None,
                    false,
                    vec![last],
                );
            }
            if lv.prevent_destroy {
                c.op(
                    OpId::new(58, Address::lv_key(&key), Verb::Protect),
                    &res,
                    format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                    protect_argv(&key),
                    None,
                    true,
                    vec![id.clone()],
                );
            }
            if lv.readonly {
                c.op(
                    OpId::new(58, Address::lv_key(&key), Verb::Permission),
                    &res,
                    format!("make {key} read-only"),
                    vec![s("lvchange"), s("--quiet"), s("-p"), s("r"), key.clone()],
                    None,
                    true,
                    vec![last],
                );
            }
            c.change(&res, Action::Create, "no such LV");
        }
    }
}

/// The image of an LV, read at plan time, and the LV size it needs: its virtual size rounded
/// up to whole extents. Refused (None) when it cannot be read or is not self-contained.
fn image_lv_size<'f>(
    c: &mut Ctx<'f>,
    res: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
) -> Option<(&'f crate::kinds::image::ImageInfo, u64)> {
    use crate::kinds::image::ImageFact;
    let img = lv.image.as_ref()?;
    let facts: &'f Facts = c.facts;
    match facts.images.get(&img.value) {
        Some(ImageFact::Read(i)) if i.unsafe_because.is_none() => {
            Some((i, i.virtual_size.div_ceil(extent) * extent))
        }
        Some(ImageFact::Read(i)) => {
            c.refuse(
                res,
                format!(
                    "image {img} is refused: {}",
                    i.unsafe_because.as_deref().unwrap_or("")
                ),
                "import one self-contained file of the repository (raw, qcow2 without backing or data file, a monolithic vmdk…): `qemu-img convert -O qcow2` what you have into a new file, after checking what it names",
            );
            None
        }
        Some(ImageFact::Unreadable(e)) => {
            c.refuse(
                res,
                format!("image {img} cannot be read: {e}"),
                "the image must exist (relative to the spec, inside its repository) and qemu-img must read it",
            );
            None
        }
        None => {
            c.refuse(
                res,
                format!("image {img} was not read before planning"),
                "plan with `hostform plan`, which reads the spec's images",
            );
            None
        }
    }
}

/// An LV made from an image: created at the image's size (rounded up to extents), then the
/// image written into it by `qemu-img convert`. Only ever into an LV this plan creates.
fn image_lv_create(
    c: &mut Ctx,
    vgname: &str,
    lvname: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
    after_vg: &[OpId],
) {
    let res = format!("lv {vgname}/{lvname}");
    let key = format!("{vgname}/{lvname}");
    let Some((info, size)) = image_lv_size(c, &res, lv, extent) else {
        return;
    };
    let img = lv
        .image
        .as_ref()
        .map(|i| i.value.clone())
        .unwrap_or_default();
    let mut argv = vec![
        s("lvcreate"),
        s("--quiet"),
        s("--yes"),
        s("-n"),
        lvname.to_string(),
        s("-L"),
        format!("{size}b"),
        vgname.to_string(),
    ];
    if let Some(pv) = &lv.pv
        && let Some(p) = c.device_path(&pv.value)
    {
        argv.push(p);
    }
    let rounded = if size == info.virtual_size {
        String::new()
    } else {
        format!(
            ", rounded up to {} extents",
            crate::spec::units::Size(extent)
        )
    };
    let id = c.op(
        OpId::new(50, Address::lv_key(&key), Verb::Create),
        &res,
        format!(
            "create {key} ({size} bytes: {img} is {} bytes{rounded})",
            info.virtual_size
        ),
        argv,
        None,
        true,
        after_vg.to_vec(),
    );
    let last = image_write_op(c, &res, &key, info, &img, vec![id]);
    if lv.readonly {
        c.op(
            OpId::new(58, Address::lv_key(&key), Verb::Permission),
            &res,
            format!("make {key} read-only"),
            vec![s("lvchange"), s("--quiet"), s("-p"), s("r"), key.clone()],
            None,
            true,
            vec![last],
        );
    }
    c.change(&res, Action::Create, format!("no such LV: made from {img}"));
}

/// `qemu-img convert` of the image into the LV: raw, over the existing device (`-n`: it is
/// not created), the source given as `json:` with its driver and file and no backing (never
/// probed, and nothing the image names is followed), writing through to the device (`-t
/// none`: no page cache, so the data is on the LV when it exits).
fn image_write_op(
    c: &mut Ctx,
    res: &str,
    key: &str,
    info: &crate::kinds::image::ImageInfo,
    img: &str,
    after: Vec<OpId>,
) -> OpId {
    let id = c.op(
        OpId::new(56, Address::lv_key(key), Verb::Image),
        res,
        format!("write {img} ({}) into {key}", info.format),
        vec![
            s("qemu-img"),
            s("convert"),
            s("-n"),
            s("-t"),
            s("none"),
            s("-O"),
            s("raw"),
            crate::kinds::image::convert_source(info),
            format!("/dev/{key}"),
        ],
        None,
        false,
        after,
    );
    // The op just pushed (found without a scan of every op, once per image LV).
    if let Some(o) = c.ops.last_mut() {
        // udev reads what the image put there (a partition table, a filesystem) once it is
        // written; the verification after apply sees it.
        o.settle = true;
    }
    id
}

/// An existing LV the spec makes from an image: adopted when its size is the image's (rounded
/// up to extents), refused otherwise. If it holds nothing at all (no partition table, no
/// filesystem: an import interrupted after lvcreate), the image is written again: the LV was
/// seen blank, and only this spec's image goes there. Returns false when refused.
#[allow(clippy::too_many_arguments)]
fn image_lv_existing(
    c: &mut Ctx,
    vgname: &str,
    lvname: &str,
    lv: &crate::spec::types::Lv,
    cur: &crate::kinds::lvm::Lv,
    extent: u64,
    after_vg: &[OpId],
    reasons: &mut Vec<String>,
) -> bool {
    let res = format!("lv {vgname}/{lvname}");
    let key = format!("{vgname}/{lvname}");
    let Some((info, size)) = image_lv_size(c, &res, lv, extent) else {
        return false;
    };
    if cur.size != size {
        c.refuse(
            &res,
            format!(
                "is {} bytes, its image {} needs {size}",
                cur.size,
                lv.image.as_ref().map(|i| i.value.as_str()).unwrap_or("")
            ),
            "hostform writes an image only into an LV it creates: check which LV this is, fix the spec, or remove the LV by hand to import it again",
        );
        return false;
    }
    let dm = format!(
        "{}-{}",
        vgname.replace('-', "--"),
        lvname.replace('-', "--")
    );
    let blank = c
        .facts
        .blocks
        .by_name(&dm)
        .is_some_and(|b| b.fstype.is_none() && b.pttype.is_none());
    if blank && cur.active && !cur.readonly {
        let img = lv
            .image
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default();
        image_write_op(c, &res, &key, info, &img, after_vg.to_vec());
        reasons.push(format!("holds nothing: {img} is written into it"));
    }
    true
}

fn protect_argv(key: &str) -> Vec<String> {
    vec![
        s("lvchange"),
        s("--quiet"),
        s("--addtag"),
        s(PREVENT_DESTROY_TAG),
        key.to_string(),
    ]
}

/// What exists but is not in the spec: reported, never touched.
fn unmanaged(c: &mut Ctx) {
    let mine: Vec<&String> = c.disks.values().collect();
    for d in c
        .facts
        .blocks
        .devices
        .values()
        .filter(|d| d.is_disk() && d.size > 0)
    {
        if !mine.contains(&&d.kname)
            && !["zram", "ram", "loop", "nbd"]
                .iter()
                .any(|p| d.kname.starts_with(p))
        {
            c.plan.unmanaged.push(format!("disk {}", d.kname));
        }
    }
    for a in c.facts.arrays.keys() {
        if !c.spec.arrays.contains_key(a.as_str()) {
            c.plan.unmanaged.push(format!("array {a}"));
        }
    }
    for v in c.facts.lvm.vgs.keys() {
        if !c.spec.volume_groups.contains_key(v.as_str()) {
            c.plan.unmanaged.push(format!("volume group {v}"));
        }
    }
    for (k, l) in &c.facts.lvm.lvs {
        if l.internal {
            continue;
        }
        let known = c.spec.volume_groups.get(l.vg.as_str()).is_some_and(|vg| {
            vg.lvs.contains_key(l.name.as_str())
                || vg.snapshots.contains_key(l.name.as_str())
                || thin::known(vg, &l.name)
        });
        if !known && c.spec.volume_groups.contains_key(l.vg.as_str()) {
            c.plan.unmanaged.push(format!("lv {k}"));
        }
    }
    c.plan.unmanaged.sort();
    c.plan.unmanaged.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::discover;
    use crate::runner::fixtures::runner;

    fn full() -> crate::discover::Discovered {
        discover(&runner("full")).expect("full")
    }

    #[test]
    fn adopting_an_existing_stack_plans_nothing() {
        let d = full();
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        assert!(
            p.changes.iter().all(|c| c.action == Action::NoOp),
            "{:?}",
            p.changes
        );
        assert!(
            p.changes
                .iter()
                .any(|c| c.resource == "array md0" && c.reason.contains("running"))
        );
    }

    #[test]
    fn blank_disks_get_the_whole_stack_in_dependency_order() {
        let spec = full().spec;
        let blank = discover(&runner("blank")).expect("blank").facts;
        let p = super::super::plan_host(&spec, &blank, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let pos = |id: &str| {
            p.ops
                .iter()
                .position(|o| o.id == id)
                .unwrap_or_else(|| panic!("no op {id}: {:#?}", p.ops))
        };
        assert!(pos("10:disk:vda:table") < pos("20:array:md0:create"));
        assert!(pos("10:disk:vdb:table") < pos("20:array:md0:create"));
        assert!(pos("20:array:md0:create") < pos("30:pv:md0:create"));
        assert!(pos("30:pv:md0:create") < pos("40:vg:vg0:create"));
        assert!(pos("40:vg:vg0:create") < pos("50:lv:vg0/dom0_root:create"));
        assert!(pos("50:lv:vg0/dom0_root:create") < pos("57:lv:vg0/dom0_root:mkfs"));
        assert!(
            pos("50:lv:vg0/guest1_root:create") < pos("60:snapshot:vg0/guest1_root_snap:create")
        );
        let md = &p.ops[pos("20:array:md0:create")];
        assert_eq!(
            md.argv(),
            [
                "mdadm",
                "--create",
                "/dev/md0",
                "--run",
                "--level=1",
                "--raid-devices=2",
                "--metadata=1.2",
                "/dev/disk/by-id/virtio-HF-DISK-A-part2",
                "/dev/disk/by-id/virtio-HF-DISK-B-part2"
            ]
        );
        let table = &p.ops[pos("10:disk:vda:table")];
        assert_eq!(
            table.stdin(),
            Some(
                "label: gpt\nsize=2048KiB, type=21686148-6449-6E6F-744E-656564454649, name=bios_grub\nsize=2093056KiB, type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid_md0\n"
            )
        );
        // The same inputs give the same plan, byte for byte.
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            serde_json::to_string(&super::super::plan_host(&spec, &blank, &Default::default()))
                .unwrap()
        );
        insta::assert_snapshot!("blank_to_full", crate::plan::render(&p, false));
    }

    #[test]
    fn growing_an_lv_grows_its_filesystem_too() {
        let mut d = full();
        let vg = d.spec.volume_groups.get_index_mut(0).unwrap().1;
        let lv = vg.lvs.get_mut("dom0_root").unwrap();
        lv.size = Some(crate::spec::de::Sp::bare(LvSize::Bytes(
            crate::spec::units::Size(1 << 30),
        )));
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(p.ops.len(), 1);
        assert_eq!(
            p.ops[0].argv(),
            [
                "lvextend",
                "--quiet",
                "-L",
                "1073741824b",
                "--resizefs",
                "vg0/dom0_root"
            ]
        );
        assert!(p.ops[0].writes_root);
    }

    #[test]
    fn shrinking_and_reformatting_are_refused() {
        let mut d = full();
        let vg = d.spec.volume_groups.get_index_mut(0).unwrap().1;
        vg.lvs.get_mut("dom0_root").unwrap().size = Some(crate::spec::de::Sp::bare(LvSize::Bytes(
            crate::spec::units::Size(64 << 20),
        )));
        vg.lvs.get_mut("guest1_var").unwrap().fs = Filesystem::Xfs;
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", p.ops);
        let reasons: Vec<&str> = p.refusals.iter().map(|r| r.reason.as_str()).collect();
        assert!(
            reasons.iter().any(|r| r.contains("would shrink")),
            "{reasons:?}"
        );
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("holds ext4, the spec says xfs")),
            "{reasons:?}"
        );
    }

    #[test]
    fn what_the_spec_leaves_out_is_reported_not_touched() {
        let mut d = full();
        d.spec
            .volume_groups
            .get_index_mut(0)
            .unwrap()
            .1
            .lvs
            .shift_remove("guest1_iso");
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty());
        assert!(
            p.unmanaged.contains(&"lv vg0/guest1_iso".to_string()),
            "{:?}",
            p.unmanaged
        );
    }

    #[test]
    fn a_missing_disk_is_refused() {
        let d = full();
        let mut spec = d.spec.clone();
        spec.disks.get_index_mut(0).unwrap().1.id = Some(crate::spec::de::Sp::bare(
            "/dev/disk/by-id/ata-NOT_HERE".into(),
        ));
        spec.disks.get_index_mut(0).unwrap().1.serial = None;
        let p = super::super::plan_host(&spec, &d.facts, &Default::default());
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "disk vda" && r.reason.contains("not found")),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn an_orphan_pv_left_by_an_interrupted_apply_is_reused_not_recreated() {
        let d = full();
        let mut facts = d.facts.clone();
        // As if apply was killed after pvcreate: md0 is a PV of no VG, and no VG exists yet.
        facts.lvm.vgs.clear();
        facts.lvm.lvs.clear();
        for p in &mut facts.lvm.pvs {
            p.vg.clear();
        }
        facts.blocks.devices.retain(|_, b| b.kind != "lvm");
        let p = super::super::plan_host(&d.spec, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(
            !p.ops.iter().any(|o| o.argv()[0] == "pvcreate"),
            "{:#?}",
            p.ops
        );
        assert_eq!(
            p.ops
                .iter()
                .find(|o| o.argv()[0] == "vgcreate")
                .map(|o| o.argv().clone())
                .unwrap(),
            ["vgcreate", "--quiet", "vg0", "/dev/md0"]
        );
    }

    #[test]
    fn an_inactive_lv_is_activated_never_formatted() {
        let mut d = full();
        // As after `vgchange -an`: the LVs are listed, but have no device nodes to read.
        for l in d.facts.lvm.lvs.values_mut() {
            l.active = false;
            l.open = false;
        }
        d.facts.blocks.devices.retain(|_, b| b.kind != "lvm");
        d.facts.blocks.index();
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(
            !p.ops
                .iter()
                .any(|o| o.argv()[0].starts_with("mkfs") || o.argv()[0] == "mkswap"),
            "{:#?}",
            p.ops
        );
        assert!(
            p.ops
                .iter()
                .any(|o| o.argv() == ["lvchange", "--quiet", "-ay", "vg0/dom0_root"]),
            "{:#?}",
            p.ops
        );
    }

    #[test]
    fn an_assembled_array_is_not_built_upon_before_it_is_read() {
        let mut d = full();
        // As after `mdadm --stop /dev/md0`: the members still carry its superblock.
        d.facts.arrays.clear();
        d.facts.lvm = Default::default();
        d.facts
            .blocks
            .devices
            .retain(|_, b| b.kind != "lvm" && !b.kind.starts_with("raid"));
        d.facts.blocks.index();
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let cmds: Vec<String> = p.ops.iter().map(|o| o.argv()[0].clone()).collect();
        assert_eq!(cmds, ["mdadm"], "{:#?}", p.ops);
        assert_eq!(p.ops[0].argv()[1], "--assemble");
    }

    // ---- destruction, protection, wipe, shrink, repair (issue 3's safety invariants) ----

    use crate::spec::de::Sp;

    const DESTROY: super::super::Options = super::super::Options {
        allow_destroy: true,
    };

    fn scenario(name: &str) -> crate::discover::Discovered {
        discover(&runner(name)).expect(name)
    }

    fn vg0(spec: &mut Spec) -> &mut VolumeGroup {
        spec.volume_groups.get_mut("vg0").expect("vg0")
    }

    fn absent_lv(spec: &mut Spec, lv: &str) {
        vg0(spec).lvs.get_mut(lv).expect(lv).state = Presence::Absent;
    }

    fn argvs(p: &Plan) -> Vec<String> {
        p.ops.iter().map(|o| o.argv().join(" ")).collect()
    }

    fn refused<'p>(p: &'p Plan, resource: &str) -> &'p Refusal {
        p.refusals
            .iter()
            .find(|r| r.resource == resource)
            .unwrap_or_else(|| panic!("no refusal for {resource}: {:#?}", p.refusals))
    }

    /// Everything the full stack holds, marked absent: LVs, the snapshot, vg0, md0 and the RAID
    /// partitions of both disks.
    fn everything_absent(spec: &mut Spec) {
        let vg = vg0(spec);
        vg.state = Presence::Absent;
        for lv in vg.lvs.values_mut() {
            lv.state = Presence::Absent;
        }
        for s in vg.snapshots.values_mut() {
            s.state = Presence::Absent;
        }
        spec.arrays.get_mut("md0").unwrap().state = Presence::Absent;
        for d in spec.disks.values_mut() {
            d.partitions[1].state = Presence::Absent;
        }
    }

    #[test]
    fn an_absent_lv_is_removed_only_with_allow_destroy() {
        let mut spec = full().spec;
        absent_lv(&mut spec, "guest1_swap");
        let facts = full().facts;
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let r = refused(&p, "lv vg0/guest1_swap");
        assert!(r.reason.contains("--allow-destroy"), "{r:?}");
        assert!(r.hint.contains("--allow-destroy"), "{r:?}");

        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(argvs(&p), ["lvremove --quiet --yes vg0/guest1_swap"]);
        assert_eq!(p.ops[0].risk, Risk::Destructive);
        assert!(p.ops[0].writes_root);
        assert!(
            p.changes
                .iter()
                .any(|c| c.resource == "lv vg0/guest1_swap" && c.action == Action::Delete)
        );
        // Not an unmanaged resource: the spec names it.
        assert!(!p.unmanaged.iter().any(|u| u.contains("guest1_swap")));
    }

    #[test]
    fn what_is_in_use_is_never_removed() {
        let mut spec = full().spec;
        absent_lv(&mut spec, "dom0_root"); // mounted on /srv/dom0
        absent_lv(&mut spec, "dom0_swap"); // active swap
        let p = super::super::plan_host(&spec, &full().facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let root = refused(&p, "lv vg0/dom0_root");
        assert!(root.reason.contains("mounted on /srv/dom0"), "{root:?}");
        let swap = refused(&p, "lv vg0/dom0_swap");
        assert!(swap.reason.contains("active swap"), "{swap:?}");
        // The whole stack under a mounted LV stays, whatever the spec says.
        let mut spec = full().spec;
        everything_absent(&mut spec);
        let p = super::super::plan_host(&spec, &full().facts, &DESTROY);
        assert!(
            !p.ops.iter().any(|o| o.argv()[0] == "vgremove"
                || o.argv()[0] == "mdadm"
                || o.argv()[0] == "sfdisk"),
            "{:#?}",
            p.ops
        );
        assert!(!p.refusals.is_empty());
    }

    #[test]
    fn absent_and_already_gone_is_a_no_op() {
        let mut spec = full().spec;
        vg0(&mut spec).lvs.insert(
            Sp::bare("old".into()),
            crate::spec::types::Lv {
                state: Presence::Absent,
                ..Default::default()
            },
        );
        let p = super::super::plan_host(&spec, &full().facts, &Default::default());
        assert!(p.refusals.is_empty() && p.ops.is_empty(), "{p:#?}");
        assert!(
            p.changes
                .iter()
                .any(|c| c.resource == "lv vg0/old" && c.action == Action::NoOp)
        );
    }

    #[test]
    fn the_whole_stack_is_torn_down_in_reverse_order() {
        // After a reboot (reused/): the stack is assembled and active, nothing is mounted.
        let mut spec = full().spec;
        everything_absent(&mut spec);
        let facts = scenario("reused").facts;
        let refused_plan = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(refused_plan.ops.is_empty(), "{:#?}", refused_plan.ops);
        assert!(
            refused_plan
                .refusals
                .iter()
                .all(|r| r.reason.contains("--allow-destroy")),
            "{:#?}",
            refused_plan.refusals
        );
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert!(p.ops.iter().all(|o| o.risk == Risk::Destructive));
        let pos = |argv: &str| {
            argvs(&p)
                .iter()
                .position(|a| a == argv)
                .unwrap_or_else(|| panic!("no `{argv}`: {:#?}", argvs(&p)))
        };
        let snap = pos("lvremove --quiet --yes vg0/guest1_root_snap");
        let origin = pos("lvremove --quiet --yes vg0/guest1_root");
        let vg = pos("vgremove --quiet vg0");
        let pv = pos("pvremove --quiet /dev/md0");
        let stop = pos("mdadm --stop /dev/md0");
        let zero = pos("mdadm --zero-superblock /dev/vda2 /dev/vdb2");
        // The reused capture holds no /dev/disk/by-id listing: the spec's `id` names nothing
        // there, the disk is found by its serial and written by its kernel name.
        let del_a = pos("sfdisk --quiet --delete /dev/vda 2");
        assert!(snap < origin && origin < vg && vg < pv && pv < stop && stop < zero);
        assert!(zero < del_a);
        // Dependencies, not only the order: each step waits for the one below it to be free.
        let op = |id: &str| p.ops.iter().find(|o| o.id == id).unwrap();
        assert_eq!(op("08:array:md0:stop").after, ["07:pv:md0:remove"]);
        assert_eq!(
            op("09:disk:vdb:delete:raid_md0").after,
            ["08:array:md0:zero-superblock"]
        );
        assert!(op("06:vg:vg0:remove").after.len() == 7, "every LV first");
        insta::assert_snapshot!("teardown", crate::plan::render(&p, false));
    }

    /// An inactive LV has no device node, so the rule cannot read it: only its shown, allowed
    /// removal touches it; any other write to it is refused. (Crafted from the reused capture:
    /// guest1_var deactivated, as `lvchange -an` leaves it.)
    #[test]
    fn an_inactive_lv_is_removed_only_by_an_allowed_removal() {
        let mut facts = scenario("reused").facts;
        let var = facts
            .blocks
            .by_name("vg0-guest1_var")
            .unwrap()
            .kname
            .clone();
        facts.blocks.devices.remove(&var);
        facts.lvm.lvs.get_mut("vg0/guest1_var").unwrap().active = false;
        let mut spec = full().spec;
        everything_absent(&mut spec);
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert!(argvs(&p).contains(&"lvremove --quiet --yes vg0/guest1_var".to_string()));
        let op = |argv: &[&str], risk| {
            let mut o = Op::run(
                OpId::new(50, Address::lv("vg0", "guest1_var"), Verb::Create),
                "lv vg0/guest1_var",
                argv.join(" "),
                argv.iter().map(|a| a.to_string()).collect(),
            );
            o.risk = risk;
            o
        };
        for (o, opts, allowed) in [
            (
                op(
                    &["lvremove", "--quiet", "--yes", "vg0/guest1_var"],
                    Risk::Destructive,
                ),
                DESTROY,
                true,
            ),
            (
                op(
                    &["lvremove", "--quiet", "--yes", "vg0/guest1_var"],
                    Risk::Destructive,
                ),
                Default::default(),
                false,
            ),
            (
                op(&["mkfs.ext4", "-q", "/dev/vg0/guest1_var"], Risk::Safe),
                DESTROY,
                false,
            ),
        ] {
            let v = super::super::safety::verdicts(std::slice::from_ref(&o), &facts, &opts);
            assert_eq!(v.len(), 1, "{o:?}");
            assert_eq!(v[0].2.allowed(), allowed, "{:?}: {:?}", o.argv(), v[0].2);
        }
    }

    /// Removals go through the one write rule too, not only through their room's own checks:
    /// a process holding open an LV, the array, a member (which neither lsblk nor lvs shows)
    /// stops every removal that would write it or what sits on it, and what waits for those.
    #[test]
    fn a_removal_whose_device_a_process_holds_open_is_refused_by_the_rule() {
        let mut spec = full().spec;
        everything_absent(&mut spec);
        let base = scenario("reused").facts;
        let all = argvs(&super::super::plan_host(&spec, &base, &DESTROY));
        assert_eq!(all.len(), 13, "{all:#?}");
        // The process that held vda2 open in the `opened` capture (tail, pid 221).
        let tail = scenario("opened").facts.openers["vda2"].clone();
        let var = base.blocks.by_name("vg0-guest1_var").unwrap().kname.clone();
        for (held, kept) in [
            // A member or the array: every LV sits on it, nothing is removed.
            ("vdb2", vec![]),
            ("md0", vec![]),
            // One LV: the others go, the VG (and what is under it) stays.
            (
                var.as_str(),
                all.iter()
                    .filter(|a| a.starts_with("lvremove") && !a.ends_with("/guest1_var"))
                    .map(String::as_str)
                    .collect(),
            ),
        ] {
            let mut facts = base.clone();
            facts.openers.insert(held.to_string(), tail.clone());
            let p = super::super::plan_host(&spec, &facts, &DESTROY);
            assert_eq!(argvs(&p), kept, "{held}");
            let why: Vec<&str> = p.refusals.iter().map(|r| r.reason.as_str()).collect();
            assert!(
                why.iter()
                    .any(|r| r.contains(&format!("{held} is open by tail (pid 221)"))),
                "{held}: {why:#?}"
            );
        }
    }

    #[test]
    fn a_vg_is_removed_only_with_every_lv_marked_absent() {
        let mut spec = full().spec;
        vg0(&mut spec).state = Presence::Absent;
        let p = super::super::plan_host(&spec, &scenario("reused").facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let r = refused(&p, "volume group vg0");
        assert!(
            r.reason
                .contains("holds LVs the spec does not mark absent: dom0_root"),
            "{r:?}"
        );
        // An origin goes only with its snapshots.
        let mut spec = full().spec;
        absent_lv(&mut spec, "guest1_root");
        let p = super::super::plan_host(&spec, &scenario("reused").facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            refused(&p, "lv vg0/guest1_root")
                .reason
                .contains("guest1_root_snap")
        );
    }

    #[test]
    fn an_array_under_a_kept_vg_is_not_stopped() {
        let mut spec = full().spec;
        spec.arrays.get_mut("md0").unwrap().state = Presence::Absent;
        let p = super::super::plan_host(&spec, &scenario("reused").facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            refused(&p, "array md0")
                .reason
                .contains("is a PV of volume group vg0, which this plan keeps")
        );
        // Nor a partition that is a member of a running array.
        let mut spec = full().spec;
        spec.disks.get_mut("vdb").unwrap().partitions[1].state = Presence::Absent;
        let p = super::super::plan_host(&spec, &scenario("reused").facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            refused(&p, "partition vdb/raid_md0")
                .reason
                .contains("member of md0")
        );
    }

    #[test]
    fn lvm_tags_are_read_and_adopted_as_prevent_destroy() {
        let d = scenario("tagged");
        assert!(d.facts.lvm.lvs["vg0/guest1_iso"].protected());
        assert!(d.facts.lvm.vgs["vg0"].protected());
        assert!(!d.facts.lvm.lvs["vg0/guest1_var"].protected());
        assert!(d.spec.volume_groups["vg0"].prevent_destroy);
        assert!(d.spec.volume_groups["vg0"].lvs["guest1_iso"].prevent_destroy);
        // Adopting the tagged host as discovered plans nothing: the tags are there.
        let p = super::super::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty() && p.ops.is_empty(), "{p:#?}");
        assert!(!full().facts.lvm.lvs["vg0/guest1_iso"].protected());
    }

    #[test]
    fn prevent_destroy_is_written_on_the_host_as_an_lvm_tag() {
        let mut spec = full().spec;
        vg0(&mut spec).prevent_destroy = true;
        vg0(&mut spec)
            .lvs
            .get_mut("guest1_iso")
            .unwrap()
            .prevent_destroy = true;
        let p = super::super::plan_host(&spec, &full().facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "vgchange --quiet --addtag hostform_prevent_destroy vg0",
                "lvchange --quiet --addtag hostform_prevent_destroy vg0/guest1_iso"
            ]
        );
        assert!(p.ops.iter().all(|o| o.risk == Risk::Safe && o.writes_root));
        // A new LV is tagged once created.
        let blank = scenario("blank").facts;
        let p = super::super::plan_host(&spec, &blank, &Default::default());
        let tag = p
            .ops
            .iter()
            .find(|o| o.id == "58:lv:vg0/guest1_iso:protect")
            .expect("tag op");
        assert_eq!(tag.after, ["50:lv:vg0/guest1_iso:create"]);
    }

    #[test]
    fn a_tagged_lv_stays_refused_after_the_spec_drops_the_flag() {
        // The spec says nothing of prevent-destroy any more, and marks the LV absent; the host's
        // tag still protects it, with --allow-destroy too.
        // (tagged/ was captured after replaced/: vdb is blank, md0 degraded; only the LVM side
        // matters here.)
        let removes = |p: &Plan| {
            p.ops
                .iter()
                .filter(|o| o.risk == Risk::Destructive)
                .map(|o| o.argv().join(" "))
                .collect::<Vec<_>>()
        };
        let mut spec = full().spec;
        absent_lv(&mut spec, "guest1_iso");
        let p = super::super::plan_host(&spec, &scenario("tagged").facts, &DESTROY);
        assert!(removes(&p).is_empty(), "{:#?}", p.ops);
        let r = refused(&p, "lv vg0/guest1_iso");
        assert!(r.reason.contains("hostform_prevent_destroy"), "{r:?}");
        assert_eq!(
            r.hint,
            "if it really must go, remove the protection deliberately: `lvchange --deltag hostform_prevent_destroy vg0/guest1_iso`, then plan again"
        );
        // Its VG too.
        let mut spec = full().spec;
        everything_absent(&mut spec);
        let p = super::super::plan_host(&spec, &scenario("tagged").facts, &DESTROY);
        assert!(
            refused(&p, "volume group vg0")
                .hint
                .contains("vgchange --deltag")
        );
        assert!(
            !removes(&p).iter().any(|a| a.starts_with("vgremove")),
            "{:#?}",
            p.ops
        );
    }

    #[test]
    fn shrinking_needs_allow_shrink_allow_destroy_and_an_unmounted_ext4() {
        let small = |spec: &mut Spec, lv: &str, mib: u64| {
            let l = vg0(spec).lvs.get_mut(lv).unwrap();
            l.size = Some(Sp::bare(LvSize::Bytes(crate::spec::units::Size(mib << 20))));
            l.allow_shrink = true;
        };
        let mut spec = full().spec;
        small(&mut spec, "dom0_root", 256);
        let reused = scenario("reused").facts;
        let p = super::super::plan_host(&spec, &reused, &Default::default());
        assert!(p.ops.is_empty());
        assert!(
            refused(&p, "lv vg0/dom0_root")
                .reason
                .contains("--allow-destroy")
        );
        let p = super::super::plan_host(&spec, &reused, &DESTROY);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            ["lvreduce --quiet --yes --resizefs -L 268435456b vg0/dom0_root"]
        );
        assert_eq!(p.ops[0].risk, Risk::Destructive);
        // Mounted (full/: on /srv/dom0): refused, whatever the flags.
        let p = super::super::plan_host(&spec, &full().facts, &DESTROY);
        assert!(p.ops.is_empty());
        let r = refused(&p, "lv vg0/dom0_root");
        assert!(
            r.reason.contains("mounted on /srv/dom0") && r.reason.contains("never shrunk"),
            "{r:?}"
        );
        // Swap is not shrunk.
        let mut spec = full().spec;
        small(&mut spec, "guest1_swap", 32);
        let p = super::super::plan_host(&spec, &reused, &DESTROY);
        assert!(
            refused(&p, "lv vg0/guest1_swap")
                .reason
                .contains("holds swap")
        );
        // Nor xfs (as if dom0_root held xfs: no fixture has one).
        let mut spec = full().spec;
        small(&mut spec, "dom0_root", 256);
        vg0(&mut spec).lvs.get_mut("dom0_root").unwrap().fs = Filesystem::Xfs;
        let mut facts = reused.clone();
        let k = facts.blocks.by_name("vg0-dom0_root").unwrap().kname.clone();
        facts.blocks.devices.get_mut(&k).unwrap().fstype = Some("xfs".into());
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            refused(&p, "lv vg0/dom0_root")
                .reason
                .contains("holds xfs, which cannot be shrunk")
        );
    }

    #[test]
    fn wipe_on_an_lv_reformats_only_what_is_not_in_use() {
        let mut spec = full().spec;
        {
            let l = vg0(&mut spec).lvs.get_mut("guest1_var").unwrap();
            l.fs = Filesystem::Xfs;
            l.wipe = true;
        }
        // full/: guest1_var is mounted.
        let p = super::super::plan_host(&spec, &full().facts, &DESTROY);
        assert!(p.ops.is_empty());
        assert!(refused(&p, "lv vg0/guest1_var").reason.contains("in use"));
        let reused = scenario("reused").facts;
        let p = super::super::plan_host(&spec, &reused, &Default::default());
        assert!(p.ops.is_empty());
        assert!(
            refused(&p, "lv vg0/guest1_var")
                .reason
                .contains("--allow-destroy")
        );
        let p = super::super::plan_host(&spec, &reused, &DESTROY);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "wipefs --all /dev/vg0/guest1_var",
                "mkfs.xfs -q /dev/vg0/guest1_var"
            ]
        );
        assert_eq!(p.ops[0].risk, Risk::Destructive);
    }

    /// full/ as after `mdadm --stop` and a reboot that did not assemble it: the disks carry
    /// GPTs whose partitions hold md superblocks of an array that is not running.
    fn stopped_array_facts() -> Facts {
        let mut f = full().facts;
        f.arrays.clear();
        f.lvm = Default::default();
        f.blocks
            .devices
            .retain(|_, b| b.kind != "lvm" && !b.kind.starts_with("raid"));
        f.blocks.index();
        f
    }

    #[test]
    fn wipe_on_a_disk_erases_it_then_partitions_it() {
        let mut spec = full().spec;
        let vdb = spec.disks.get_mut("vdb").unwrap();
        vdb.partitions[1].name = Sp::bare("data".into());
        vdb.partitions[1].kind = PartType::Linux;
        spec.arrays.clear();
        spec.volume_groups.clear();
        let facts = stopped_array_facts();
        // Without `wipe`: refused as before.
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.ops.is_empty());
        assert!(
            refused(&p, "partition vdb/data")
                .reason
                .contains("`raid_md0`")
        );
        spec.disks.get_mut("vdb").unwrap().wipe = true;
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty());
        assert!(refused(&p, "disk vdb").reason.contains("--allow-destroy"));
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "wipefs --all /dev/vdb1",
                "wipefs --all /dev/vdb2",
                "wipefs --all /dev/disk/by-id/virtio-HF-DISK-B",
                "sfdisk --quiet --wipe never /dev/disk/by-id/virtio-HF-DISK-B"
            ]
        );
        assert_eq!(
            p.ops.iter().map(|o| o.risk).collect::<Vec<_>>(),
            [
                Risk::Destructive,
                Risk::Destructive,
                Risk::Destructive,
                Risk::Safe
            ]
        );
        assert!(
            p.changes
                .iter()
                .any(|c| c.resource == "disk vdb" && c.action == Action::Replace)
        );
        // A disk in use is never wiped (full/: its array carries mounted LVs).
        let p = super::super::plan_host(&spec, &full().facts, &DESTROY);
        assert!(refused(&p, "disk vdb").reason.contains("in use"));
    }

    #[test]
    fn a_failed_member_on_a_blank_replacement_disk_is_partitioned_and_added() {
        // replaced/: vdb2 failed and removed from md0, vdb wiped: md0 runs [2/1] on vda2.
        let spec = full().spec;
        let facts = scenario("replaced").facts;
        assert!(facts.arrays["md0"].degraded());
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "sfdisk --quiet --wipe never /dev/disk/by-id/virtio-HF-DISK-B",
                "mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B-part2"
            ]
        );
        assert!(p.ops.iter().all(|o| o.risk == Risk::Safe));
        assert_eq!(p.ops[1].after, ["10:disk:vdb:table"]);
        let md0 = p
            .changes
            .iter()
            .find(|c| c.resource == "array md0")
            .unwrap();
        assert_eq!(md0.action, Action::Update);
        assert!(md0.reason.starts_with("degraded [2/1]"), "{md0:?}");
        insta::assert_snapshot!("replace_member", crate::plan::render(&p, false));
    }

    #[test]
    fn a_faulty_member_is_removed_before_its_device_is_added_back() {
        // failed/: vdb2 marked faulty, still attached.
        let spec = full().spec;
        let facts = scenario("failed").facts;
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "mdadm --manage /dev/md0 --remove /dev/vdb2",
                "mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B-part2"
            ]
        );
        assert_eq!(p.ops[1].after, ["21:array:md0:remove:vdb2"]);
        let md0 = p
            .changes
            .iter()
            .find(|c| c.resource == "array md0")
            .unwrap();
        assert!(md0.reason.contains("vdb2 faulty"), "{md0:?}");
    }

    #[test]
    fn another_arrays_superblock_is_never_added() {
        let spec = full().spec;
        let mut facts = scenario("failed").facts;
        // As if the device named by the spec carried the superblock of some other array.
        let md0 = facts.arrays.get_mut("md0").unwrap();
        md0.members.retain(|m| m.kname != "vdb2");
        facts.blocks.devices.get_mut("vdb2").unwrap().uuid =
            Some("00000000-0000-0000-0000-000000000001".into());
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            refused(&p, "array md0")
                .reason
                .contains("carries the superblock of another array")
        );
    }

    #[test]
    fn a_recovering_array_is_reported_and_left_alone() {
        let spec = full().spec;
        let mut facts = full().facts;
        facts.arrays = crate::kinds::md::parse_mdstat(&crate::runner::fixtures::text(
            "degraded/recovering-mdstat",
        ));
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty() && p.refusals.is_empty(), "{p:#?}");
        let md0 = p
            .changes
            .iter()
            .find(|c| c.resource == "array md0")
            .unwrap();
        assert_eq!(md0.action, Action::NoOp);
        assert!(md0.reason.contains("recovery"), "{md0:?}");
        assert!(md0.reason.contains('%'), "{md0:?}");
    }

    #[test]
    fn wipe_on_an_array_erases_its_members_other_data_first() {
        let spec = full().spec;
        let mut facts = stopped_array_facts();
        // As if both members held filesystems instead of md0's superblock.
        for k in ["vda2", "vdb2"] {
            let b = facts.blocks.devices.get_mut(k).unwrap();
            b.fstype = Some("ext4".into());
            b.uuid = Some(format!("5e1f0f3a-0000-4000-8000-00000000000{}", k.len()));
        }
        let mut spec_nowipe = spec.clone();
        spec_nowipe.volume_groups.clear();
        let p = super::super::plan_host(&spec_nowipe, &facts, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(refused(&p, "array md0").reason.contains("vdb2 (ext4)"));
        let mut spec = spec_nowipe;
        spec.arrays.get_mut("md0").unwrap().wipe = true;
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty());
        assert!(refused(&p, "array md0").reason.contains("--allow-destroy"));
        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(
            argvs(&p)[..2],
            ["wipefs --all /dev/vda2", "wipefs --all /dev/vdb2"]
        );
        assert!(p.ops[..2].iter().all(|o| o.risk == Risk::Destructive));
        let create = p
            .ops
            .iter()
            .find(|o| o.id == "20:array:md0:create")
            .unwrap();
        assert_eq!(
            create.after,
            ["19:array:md0:wipe:vda2", "19:array:md0:wipe:vdb2"]
        );
    }
}
