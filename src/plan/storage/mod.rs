//! Storage planning: compare the spec's disks, arrays, volume groups, LVs and filesystems with
//! what discovery found, adopt what matches, and create what is missing in dependency order
//! (partition table → array → PV → VG → LV → filesystem). Anything that would format, shrink or
//! overwrite data the spec does not allow is refused, with the reason.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Address, Op, OpId, Options, Outcome, Plan, Refusal, Verb};
use crate::discover::Facts;
use crate::kinds::block::{BlockDev, sfdisk_script};
use crate::kinds::lvm::PREVENT_DESTROY_TAG;
use crate::spec::types::*;
use crate::spec::units::{LvSize, PartSize};

mod array;
mod boot;
mod disk;
mod image;
mod lv;
mod mdconf;
mod mounts;
mod repair;
mod snapshot;
mod teardown;
mod thin;
mod vg;

use array::*;
use disk::*;
use image::*;
use lv::*;
use snapshot::*;
use vg::*;

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
    /// Add an operation to the room's plan. New partitions, arrays and LVs get their /dev
    /// nodes and by-id links from udev: each waits for it to settle.
    fn add(&mut self, mut op: Op) -> OpId {
        op.settle = true;
        let id = op.id.clone();
        self.ops.push(op);
        id
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
        opts: opts.clone(),
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
    boot::bootloaders(&mut c);
    mdconf::boot_arrays(&mut c);
    volume_groups(&mut c);
    mounts::mounts(&mut c);
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
        OpId::new(61, a(), Verb::Merge),
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

fn protect_argv(key: &str) -> Vec<String> {
    addtag_argv(PREVENT_DESTROY_TAG, key)
}

/// `lvchange --quiet --addtag TAG VG/LV`.
fn addtag_argv(tag: &str, key: &str) -> Vec<String> {
    vec![
        s("lvchange"),
        s("--quiet"),
        s("--addtag"),
        s(tag),
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
    use crate::plan::Risk;
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
        drain: None,
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
            s.state = SnapshotState::Absent;
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
        // The process that held vda2 open in the `opened` capture (tail, pid 227).
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
                    .any(|r| r.contains(&format!("{held} is open by tail (pid 227)"))),
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

    /// `state: merged` on the real full stack's snapshot: `lvconvert --merge`, destructive
    /// (only with --allow-destroy), refused while the origin is open, nothing once merged.
    #[test]
    fn a_snapshot_is_merged_back_only_while_unused_and_with_allow_destroy() {
        let mut spec = full().spec;
        vg0(&mut spec)
            .snapshots
            .get_mut("guest1_root_snap")
            .unwrap()
            .state = SnapshotState::Merged;
        let facts = full().facts;
        let p = super::super::plan_host(&spec, &facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let r = refused(&p, "snapshot vg0/guest1_root_snap");
        assert!(r.reason.contains("--allow-destroy"), "{r:?}");

        let p = super::super::plan_host(&spec, &facts, &DESTROY);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(p.ops.len(), 1, "{:#?}", p.ops);
        let o = &p.ops[0];
        assert_eq!(o.id, "61:lv:vg0/guest1_root:merge");
        assert_eq!(
            o.argv(),
            ["lvconvert", "--quiet", "--merge", "vg0/guest1_root_snap"]
        );
        assert_eq!(o.risk, Risk::Destructive);
        // A guest on the origin starts after the merge.
        assert!(lv_ready("vg0/guest1_root").contains(&o.id));

        let mut open = facts.clone();
        open.lvm.lvs.get_mut("vg0/guest1_root").unwrap().open = true;
        let p = super::super::plan_host(&spec, &open, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let r = refused(&p, "snapshot vg0/guest1_root_snap");
        assert!(
            r.reason
                .contains("vg0/guest1_root is open (mounted, or attached to a running guest)"),
            "{r:?}"
        );

        let mut merged = facts.clone();
        merged.lvm.lvs.remove("vg0/guest1_root_snap");
        let p = super::super::plan_host(&spec, &merged, &DESTROY);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            p.changes
                .iter()
                .any(|c| c.resource == "snapshot vg0/guest1_root_snap"
                    && c.reason == "merged (no such snapshot)")
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
