//! The one write rule: a command may write a block device only if the device is provably
//! blank, made by this plan, already what the spec says (it only adds to it), or the write is
//! shown destructive and `--allow-destroy` was given. Every storage operation declares the
//! devices it writes ([`Op::writes`](super::Op::writes)); [`guard`] asks [`check`] about each
//! of them, after every room planned, whatever the room decided itself.

use std::collections::{BTreeSet, HashSet};

use super::{Effect, Op, OpId, Options, Plan, Refusal, Risk};
use crate::discover::Facts;
use crate::kinds::block::BlockDev;

/// What the rule says about one device written by one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not on the host yet: an earlier operation of this plan makes it.
    MadeByPlan,
    /// No signature, no table, no partition, no holder, not in use.
    Blank,
    /// Already what the spec says; the write only adds to it (a partition in a GPT's free space).
    Belongs,
    /// Carries data, but the write is shown destructive and `--allow-destroy` was given.
    DestructiveAllowed,
    /// Never written: the signature or use found.
    Refused(String),
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        !matches!(self, Verdict::Refused(_))
    }
}

/// What the plan around a write says.
pub struct Context<'a> {
    pub allow_destroy: bool,
    /// The operation is destructive (shown so in the plan).
    pub destructive: bool,
    /// The operation only appends partitions to an existing GPT.
    pub appends_to_gpt: bool,
    /// The op builds a VG on its devices (`vgcreate`, `vgextend`): an orphan PV is its own.
    pub takes_pv: bool,
    /// The op adds its device back to this array (`mdadm /dev/md0 --add`): a member of that
    /// same array is its own.
    pub readds_to: Option<String>,
    /// Kernel names an allowed destructive operation of this plan erases first.
    pub wiped: &'a BTreeSet<String>,
    /// An operation of this plan makes the device (see [`Made`]).
    pub made: bool,
    /// The LVs (`/dev/VG/LV`) that `lvremove` operations of this plan remove.
    pub removed: &'a BTreeSet<String>,
    /// The op installs a boot loader (`grub-install DISK`): it writes the disk's boot code and
    /// its BIOS boot partition, not the partitions in use (see [`boot_verdict`]).
    pub boot_loader: bool,
}

/// The devices an argv writes: the rule's input, derived once from the command itself so that
/// no operation can leave it out. Reading commands (`lvs`, `partx`, `mdadm --assemble`) and
/// those writing only inside what they manage (`lvcreate` in free extents) write nothing here.
pub fn writes_of(argv: &[String]) -> Vec<String> {
    let Some(prog) = argv.first() else {
        return Vec::new();
    };
    let devs = |from: usize| -> Vec<String> {
        argv.iter()
            .skip(from)
            .filter(|a| a.starts_with("/dev/"))
            .cloned()
            .collect()
    };
    match prog.as_str() {
        "sfdisk" | "wipefs" | "mkswap" | "pvcreate" | "pvremove" => devs(1),
        // `grub-install --target=i386-pc DISK`: the disk's boot sector and its BIOS boot
        // partition (judged by `boot_verdict`).
        "grub-install" => devs(1),
        // `lvremove vg0/web_root`, `lvreduce … vg0/web_root`: the LV's own device. Growing
        // (`lvextend`) only adds to it and is not a write over data.
        "lvremove" | "lvreduce" => argv
            .iter()
            .skip(1)
            .filter(|a| !a.starts_with('-') && a.contains('/') && !a.starts_with("/dev/"))
            .map(|a| format!("/dev/{a}"))
            .chain(devs(1))
            .collect(),
        p if p.starts_with("mkfs") => devs(1),
        "vgcreate" | "vgextend" => devs(2),
        "qemu-img" if argv.get(1).is_some_and(|a| a == "convert") => argv
            .last()
            .filter(|a| a.starts_with("/dev/"))
            .cloned()
            .into_iter()
            .collect(),
        "mdadm" if argv.iter().any(|a| a == "--create") => devs(3),
        // Clearing members' superblocks erases them; stopping an array takes it away from
        // whatever reads it.
        "mdadm"
            if argv
                .iter()
                .any(|a| a == "--zero-superblock" || a == "--stop") =>
        {
            devs(1)
        }
        "mdadm" if argv.iter().any(|a| a == "--add") => {
            // `mdadm /dev/md0 --add DEV`: the array is not written, the new member is.
            let at = argv.iter().position(|a| a == "--add").unwrap_or(0);
            devs(at + 1)
        }
        _ => Vec::new(),
    }
}

/// Resolve a written path to what discovery found there, if anything.
pub fn resolve<'f>(path: &str, facts: &'f Facts) -> Option<&'f BlockDev> {
    if let Some(alias) = path.strip_prefix("/dev/disk/by-id/") {
        return facts.blocks.get(facts.by_id.get(alias)?);
    }
    if let Some(b) = facts.blocks.by_path(path) {
        return Some(b);
    }
    // `/dev/VG/LV` and `/dev/mapper/VG-LV`.
    let rest = path.strip_prefix("/dev/")?;
    let dm = rest
        .strip_prefix("mapper/")
        .map(str::to_string)
        .or_else(|| {
            let (vg, lv) = rest.split_once('/')?;
            (vg != "md").then(|| crate::kinds::lvm::dm_name(vg, lv))
        })?;
    facts.blocks.by_name(&dm)
}

/// Every signature source that says a device holds something, in words; empty when blank.
pub fn signatures(b: &BlockDev, facts: &Facts) -> Vec<String> {
    let mut found = Vec::new();
    // lsblk shows a partition its disk's table type: only a table inside the device counts.
    if let Some(t) = b.pttype.as_ref().filter(|_| !b.is_partition()) {
        found.push(format!("a {t} partition table"));
    }
    if let Some(f) = &b.fstype {
        found.push(format!("a {f} signature"));
    }
    let parts: Vec<&str> = facts
        .blocks
        .children(&b.kname)
        .filter(|c| c.is_partition())
        .map(|c| c.kname.as_str())
        .collect();
    if !parts.is_empty() {
        found.push(format!("partition(s) {}", parts.join(", ")));
    }
    let holders: Vec<&str> = facts
        .blocks
        .children(&b.kname)
        .filter(|c| !c.is_partition())
        .map(|c| c.kname.as_str())
        .collect();
    if !holders.is_empty() {
        found.push(format!("holder(s) {}", holders.join(", ")));
    }
    if let Some(a) = facts
        .arrays
        .values()
        .find(|a| a.members.iter().any(|m| m.kname == b.kname))
    {
        found.push(format!("membership of the array {}", a.kname));
    }
    if let Some(v) = facts
        .lvm
        .pvs
        .iter()
        .find(|v| facts.blocks.by_path(&v.device).map(|x| &x.kname) == Some(&b.kname))
    {
        found.push(if v.vg.is_empty() {
            "an LVM physical volume".to_string()
        } else {
            format!("an LVM physical volume of {}", v.vg)
        });
    }
    found
}

/// Why the device is in use (mounted, swap, something on it mounted, held open by a process,
/// an LV held open by a guest): never written, whatever the flags.
pub fn in_use(b: &BlockDev, facts: &Facts) -> Option<String> {
    in_use_removing(b, facts, &BTreeSet::new())
}

/// [`in_use`], for a plan that removes the LVs `removed` (`/dev/VG/LV`): a thin pool is open
/// while its thin LVs are active, and stops being used when the plan removes them all.
fn in_use_removing(b: &BlockDev, facts: &Facts, removed: &BTreeSet<String>) -> Option<String> {
    if b.mountpoints.iter().any(|m| m == "[SWAP]") {
        return Some(format!("{} is active swap", b.kname));
    }
    if !b.mountpoints.is_empty() {
        return Some(format!(
            "{} is mounted on {}",
            b.kname,
            b.mountpoints.join(", ")
        ));
    }
    if facts.blocks.busy(&b.kname) {
        return Some(format!(
            "{} holds something mounted or used as swap",
            b.kname
        ));
    }
    if let Some(why) = open_by(b, facts) {
        return Some(why);
    }
    facts
        .lvm
        .lvs
        .iter()
        .find(|(key, lv)| {
            lv.open
                && !pool_emptied(key, facts, removed)
                && facts
                    .blocks
                    .by_name(&dm_name(&lv.vg, &lv.name))
                    .map(|x| &x.kname)
                    == Some(&b.kname)
        })
        .map(|(key, _)| format!("{key} is open (mounted, or attached to a running guest)"))
}

/// A thin pool shows as open while its thin LVs are active. It is not in use when this plan
/// removes every one of them (`removed`) and none is open itself; otherwise it is.
fn pool_emptied(key: &str, facts: &Facts, removed: &BTreeSet<String>) -> bool {
    let Some(lv) = facts.lvm.lvs.get(key) else {
        return false;
    };
    if !matches!(lv.thin, Some(crate::kinds::lvm::Thin::Pool { .. })) {
        return false;
    }
    facts
        .lvm
        .lvs
        .iter()
        .filter(|(k, t)| t.vg == lv.vg && facts.lvm.pool_of(k) == Some(lv.name.as_str()))
        .all(|(_, t)| !t.open && removed.contains(&format!("/dev/{}/{}", t.vg, t.name)))
}

/// The processes holding the device open: the device itself, anything stacked on it (its
/// partitions, an array or LV on it), and everything it sits on (a process with the whole
/// disk, a member or the array open reads and writes the sectors of a partition or LV on it).
fn open_by(b: &BlockDev, facts: &Facts) -> Option<String> {
    if facts.openers.is_empty() {
        return None;
    }
    let mut order: Vec<&str> = vec![b.kname.as_str()];
    let mut seen: BTreeSet<&str> = order.iter().copied().collect();
    let mut i = 0;
    while i < order.len() {
        let k = order[i];
        for c in facts.blocks.children(k) {
            if seen.insert(c.kname.as_str()) {
                order.push(c.kname.as_str());
            }
        }
        i += 1;
    }
    let mut below: Vec<&str> = b.parents.iter().map(String::as_str).collect();
    while let Some(k) = below.pop() {
        if seen.insert(k) {
            order.push(k);
            if let Some(p) = facts.blocks.get(k) {
                below.extend(p.parents.iter().map(String::as_str));
            }
        }
    }
    order.into_iter().find_map(|k| {
        let who = facts.openers.get(k).filter(|v| !v.is_empty())?;
        let who: Vec<String> = who.iter().map(ToString::to_string).collect();
        Some(format!("{k} is open by {}", who.join(", ")))
    })
}

/// The LV `/dev/VG/LV` names, when LVM reports it but discovery found no device for it.
fn inactive_lv<'f>(path: &str, facts: &'f Facts) -> Option<(String, &'f crate::kinds::lvm::Lv)> {
    let (vg, lv) = path.strip_prefix("/dev/")?.split_once('/')?;
    let key = format!("{vg}/{lv}");
    let found = facts.lvm.lvs.get(&key)?;
    Some((key, found))
}

use crate::kinds::lvm::dm_name;

/// What the operations of a plan make, read once from their argv: `lvcreate -n LV … VG`
/// makes `/dev/VG/LV`, `mdadm --create PATH` makes PATH, and `sfdisk DISK` makes DISK's
/// partitions (`DISK-partN`, `DISKN`, `DISKpN`). Looked up per written device, so the rule
/// costs one pass over the plan, not one per device (10,000 LVs planned in 12 s before).
pub struct Made {
    paths: HashSet<String>,
    tables: Vec<String>,
}

impl Made {
    pub fn new(ops: &[Op]) -> Made {
        let mut paths = HashSet::new();
        let mut tables = Vec::new();
        for o in ops {
            let Effect::Run { argv: a, .. } = &o.effect else {
                continue;
            };
            match a.first().map(String::as_str) {
                Some("lvcreate") => {
                    let names: Vec<&String> = a
                        .windows(2)
                        .filter(|w| w[0] == "-n")
                        .map(|w| &w[1])
                        .collect();
                    for x in a.iter().skip(1) {
                        // A VG, or VG/LV (an origin, a pool): the VG is its first part.
                        let vg = x.split_once('/').map_or(x.as_str(), |(vg, _)| vg);
                        for lv in &names {
                            paths.insert(format!("/dev/{vg}/{lv}"));
                        }
                    }
                }
                Some("mdadm") => {
                    if let Some(made) = a
                        .iter()
                        .position(|x| x == "--create")
                        .and_then(|i| a.get(i + 1))
                    {
                        paths.insert(made.clone());
                    }
                }
                Some("sfdisk") => {
                    tables.extend(a.iter().skip(1).filter(|x| x.starts_with("/dev/")).cloned())
                }
                _ => {}
            }
        }
        Made { paths, tables }
    }

    /// Whether an operation of the plan makes `path`.
    pub fn makes(&self, path: &str) -> bool {
        self.paths.contains(path)
            || self.tables.iter().any(|disk| {
                path.strip_prefix(disk.as_str()).is_some_and(|n| {
                    let n = n
                        .strip_prefix("-part")
                        .or_else(|| n.strip_prefix('p'))
                        .unwrap_or(n);
                    !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())
                })
            })
    }
}

/// The rule itself. `path` is not on the host: it is written only if `made` (an operation of
/// this plan makes it), since a device discovery did not see has unknown content.
pub fn check(path: &str, facts: &Facts, ctx: &Context) -> Verdict {
    let Some(b) = resolve(path, facts) else {
        return if ctx.made {
            Verdict::MadeByPlan
        } else if let Some((key, lv)) = inactive_lv(path, facts) {
            // LVM knows it, but it has no device node: its content cannot be read. Only its
            // shown, allowed removal may touch it.
            if lv.open {
                Verdict::Refused(format!("{key} is open"))
            } else if ctx.destructive && ctx.allow_destroy {
                Verdict::DestructiveAllowed
            } else {
                Verdict::Refused(format!("{key} is inactive: its content could not be read"))
            }
        } else {
            Verdict::Refused(format!(
                "{path} was not found on this host, and no operation of this plan makes it: its content is unknown"
            ))
        };
    };
    // A refusal names the device as the kernel does too: an alias alone hides which disk it is.
    let who = if path == b.path || path.strip_prefix("/dev/") == Some(b.kname.as_str()) {
        path.to_string()
    } else {
        format!("{path} ({})", b.kname)
    };
    if ctx.boot_loader {
        return boot_verdict(&who, b, facts);
    }
    if let Some(why) = in_use_removing(b, facts, ctx.removed) {
        return Verdict::Refused(format!("{who} is in use ({why})"));
    }
    if ctx.wiped.contains(&b.kname) && ctx.allow_destroy {
        return Verdict::DestructiveAllowed;
    }
    let found = signatures(b, facts);
    if found.is_empty() {
        return Verdict::Blank;
    }
    if ctx.appends_to_gpt
        && b.pttype.as_deref() == Some("gpt")
        && b.fstype.is_none()
        && found
            .iter()
            .all(|f| f.starts_with("a gpt") || f.starts_with("partition"))
    {
        return Verdict::Belongs;
    }
    let orphan_pv = b.fstype.as_deref() == Some("LVM2_member")
        && found.len() == 2
        && found.iter().any(|f| f == "an LVM physical volume");
    if ctx.takes_pv && orphan_pv {
        return Verdict::Belongs;
    }
    if let Some(array) = &ctx.readds_to {
        // A member of that array, or one removed from it that still carries its superblock
        // (the array's UUID, as its working members show it): the array's own half coming
        // back, resynced from the running array, as `mdadm --add` does.
        let own = facts.arrays.get(array.as_str()).is_some_and(|a| {
            let uuid = a
                .members
                .iter()
                .find_map(|m| facts.blocks.get(&m.kname)?.uuid.clone());
            a.members.iter().any(|m| m.kname == b.kname)
                || (b.fstype.as_deref() == Some("linux_raid_member")
                    && uuid.is_some()
                    && b.uuid == uuid)
        });
        let ours = found.iter().all(|f| {
            f == "a linux_raid_member signature"
                || f == &format!("membership of the array {array}")
                || f == &format!("holder(s) {array}")
        });
        if own && ours {
            return Verdict::Belongs;
        }
    }
    if ctx.destructive && ctx.allow_destroy {
        return Verdict::DestructiveAllowed;
    }
    Verdict::Refused(format!("{who} holds {}", found.join(", ")))
}

/// A boot loader's write (`grub-install DISK`): it writes the boot code of the disk's first
/// sector (the partition table there is kept) and the disk's BIOS boot partition, nothing
/// else. So the disk's partitions may be in use (the arrays it boots from run), but the boot
/// code must be empty or GRUB's, and each BIOS boot partition empty or GRUB's core image, and
/// not in use. A disk whose boot sector was not read is written only when it is blank (its
/// table made by this plan).
fn boot_verdict(who: &str, b: &BlockDev, facts: &Facts) -> Verdict {
    use crate::kinds::boot::{BIOS_BOOT_GUID, BootCode};
    if !b.is_disk() {
        return Verdict::Refused(format!("{who} is not a whole disk"));
    }
    if !b.mountpoints.is_empty() {
        return Verdict::Refused(format!("{who} is mounted whole"));
    }
    let blank = signatures(b, facts).is_empty();
    match facts.boot.sectors.get(&b.kname) {
        Some(BootCode::Other(what)) => {
            return Verdict::Refused(format!("the boot sector of {who} holds {what}"));
        }
        Some(_) => {}
        None if blank => return Verdict::Blank,
        None => {
            return Verdict::Refused(format!("the boot sector of {who} could not be read"));
        }
    }
    for p in facts.blocks.children(&b.kname).filter(|p| {
        p.is_partition()
            && p.parttype
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case(BIOS_BOOT_GUID))
    }) {
        if let Some(why) = in_use(p, facts) {
            return Verdict::Refused(format!("its BIOS boot partition is in use ({why})"));
        }
        match facts.boot.cores.get(&p.kname) {
            Some(BootCode::Empty | BootCode::Grub { .. }) => {}
            Some(BootCode::Other(what)) => {
                return Verdict::Refused(format!(
                    "its BIOS boot partition {} holds {what}",
                    p.kname
                ));
            }
            None => {
                return Verdict::Refused(format!(
                    "its BIOS boot partition {} could not be read",
                    p.kname
                ));
            }
        }
    }
    if blank {
        Verdict::Blank
    } else {
        Verdict::Belongs
    }
}

/// What the rule says about every device every operation writes: (op id, device, verdict).
pub fn verdicts(ops: &[Op], facts: &Facts, opts: &Options) -> Vec<(OpId, String, Verdict)> {
    let wiped: BTreeSet<String> = ops
        .iter()
        .filter(|o| o.risk == Risk::Destructive && o.program() == Some("wipefs"))
        .flat_map(|o| o.writes.iter())
        .filter_map(|p| resolve(p, facts))
        .map(|b| b.kname.clone())
        .collect();
    // A wiped disk's partitions go with its table.
    let wiped: BTreeSet<String> = wiped
        .iter()
        .flat_map(|k| {
            std::iter::once(k.clone()).chain(facts.blocks.children(k).map(|c| c.kname.clone()))
        })
        .collect();
    let removed: BTreeSet<String> = ops
        .iter()
        .filter(|o| o.program() == Some("lvremove"))
        .flat_map(|o| o.writes.iter().cloned())
        .collect();
    let made = Made::new(ops);
    let mut out = Vec::new();
    for o in ops {
        let ctx = Context {
            allow_destroy: opts.allow_destroy,
            destructive: o.risk == Risk::Destructive,
            appends_to_gpt: is_append(o),
            takes_pv: matches!(o.program(), Some("vgcreate" | "vgextend")),
            readds_to: readds_to(o),
            wiped: &wiped,
            made: false,
            removed: &removed,
            boot_loader: o.program() == Some("grub-install"),
        };
        for w in &o.writes {
            let ctx = Context {
                made: made.makes(w),
                readds_to: ctx.readds_to.clone(),
                ..ctx
            };
            out.push((o.id.clone(), w.clone(), check(w, facts, &ctx)));
        }
    }
    out
}

/// After every room: each device an operation writes must pass [`check`]. A refused write
/// becomes a refusal, and the operation (with what waits for it) leaves the plan.
pub fn guard(plan: &mut Plan, facts: &Facts, opts: &Options) {
    let mut dropped: BTreeSet<OpId> = BTreeSet::new();
    for (id, _, v) in verdicts(&plan.ops, facts, opts) {
        if let Verdict::Refused(why) = v {
            let o = plan
                .ops
                .iter()
                .find(|o| o.id == id)
                .expect("op of this plan");
            let hint = if why.contains(" is open by ") {
                "a process holds the device open (a guest given it, a dd or a backup reading it): hostform never writes it, whatever the flags; if this is the right device, stop that process (`fuser -v DEVICE` lists them), then plan again"
            } else {
                "hostform writes only a device that is blank, made by this plan, or erased by a destructive step you allowed; check that this is the right device"
            };
            plan.refusals.push(Refusal {
                resource: o.resource.clone(),
                reason: format!("`{}` would write over data: {why}", o.summary),
                hint: hint.into(),
            });
            dropped.insert(id);
        }
    }
    if dropped.is_empty() {
        return;
    }
    // What waits for a dropped operation goes too.
    loop {
        let more: Vec<OpId> = plan
            .ops
            .iter()
            .filter(|o| !dropped.contains(&o.id) && o.after.iter().any(|a| dropped.contains(a)))
            .map(|o| o.id.clone())
            .collect();
        if more.is_empty() {
            break;
        }
        dropped.extend(more);
    }
    plan.ops.retain(|o| !dropped.contains(&o.id));
}

fn is_append(o: &Op) -> bool {
    o.program() == Some("sfdisk") && o.argv().iter().any(|a| a == "--append")
}

fn readds_to(o: &Op) -> Option<String> {
    let argv = o.argv();
    if o.program()? != "mdadm" || !argv.iter().any(|a| a == "--add") {
        return None;
    }
    let md = argv.iter().find(|a| a.starts_with("/dev/md"))?;
    let name = md.trim_start_matches("/dev/").trim_start_matches("md/");
    Some(name.to_string())
}
