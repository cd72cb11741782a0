//! Discovery: read the live host through the runner seam and describe it in the spec language
//! (so `hostform discover` prints a spec an operator can adopt), with the observed facts the
//! spec does not carry (signatures, mounts, array health) beside it.
//!
//! Processes spawned: `lsblk` once and `pvs`, `vgs`, `lvs` once each (and `lvs` once more for
//! the thin report where there are thin pools), whatever the number of disks and volumes; md state and stable names come from /proc, /sys and /dev files; `ip -j -d
//! link`, `ip -j addr` and `ip -j route` once each, whatever the number of links; `virsh` twice
//! and `xl` once, whatever the number of guests. The rooms read side by side. Then the block
//! devices held open by processes, from the `/proc/PID/fd` links (no process).

use indexmap::IndexMap;
use serde::Serialize;
use std::collections::BTreeMap;

use crate::kinds::block::{BlockDev, Inventory};
use crate::kinds::lvm::Lvm;
use crate::kinds::md::{self, MdArray};
use crate::runner::{Runner, joined};
use crate::spec::de::Sp;
use crate::spec::types::*;
use crate::spec::units::{LvSize, MIB, PartSize, Size};

/// What discovery writes as the host's name when the host has none: a snapshot whose spec
/// says this recorded no host.
pub const NOT_RECORDED: &str = "discovered";

/// Where the kernel keeps the hostname.
pub const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

/// Names that say no hostname was set: the kernel's default, and the loopback's names a fresh
/// installation may leave.
const UNSET: &[&str] = &["(none)", "localhost", "localhost.localdomain"];

/// This host's name from the kernel, or `None` when none is set.
pub fn read_hostname(r: &dyn Runner) -> Option<String> {
    r.read(HOSTNAME_FILE).and_then(|h| set_name(&h))
}

/// A hostname, or `None` when it is empty or unset.
pub fn set_name(name: &str) -> Option<String> {
    let n = name.trim();
    if n.is_empty() || UNSET.iter().any(|u| n.eq_ignore_ascii_case(u)) {
        None
    } else {
        Some(n.to_string())
    }
}

/// What discovery saw, beyond the spec: the planner's evidence for adoption and safety.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Facts {
    pub blocks: Inventory,
    pub arrays: BTreeMap<String, MdArray>,
    pub lvm: Lvm,
    /// `/dev/disk/by-id/` names → kernel names.
    pub by_id: BTreeMap<String, String>,
    /// `/dev/disk/by-path/` names → kernel names, for disks that have no by-id name (a virtio
    /// disk without a serial). Where udev made no links, derived from the disk's PCI address in
    /// sysfs as udev names it (`pci-0000:00:02.0`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_path: BTreeMap<String, String>,
    pub root_readonly: bool,
    /// What discovery could not express in the spec language.
    pub notes: Vec<String>,
    /// The spec's images (`image:` of an LV), keyed as the spec writes them: not read by
    /// discovery (it knows no spec) but by `plan` and `apply`, through `kinds::image`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, crate::kinds::image::ImageFact>,
    /// Links, addresses, routes and network configuration files (`crate::kinds::net`).
    #[serde(default)]
    pub net: crate::kinds::net::NetFacts,
    /// Guests (libvirt domains, Xen domains and xl configs).
    #[serde(default)]
    pub guests: crate::kinds::guest::GuestFacts,
    /// Block devices held open by processes (a descriptor in `/proc/PID/fd`), by kernel name:
    /// a guest given a disk directly, a `dd` or a backup reading it. Never written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub openers: BTreeMap<String, Vec<crate::kinds::block::Opener>>,
    /// What the disks' boot sectors and BIOS boot partitions hold, and this machine's GRUB.
    #[serde(
        default,
        skip_serializing_if = "crate::kinds::boot::BootFacts::is_empty"
    )]
    pub boot: crate::kinds::boot::BootFacts,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Discovered {
    /// The host as a spec.
    pub spec: Spec,
    pub facts: Facts,
}

/// The by-id name hostform prefers for a disk: vendor names (which carry the serial) before
/// `wwn-`, never a `-partN` link.
fn preferred_id<'a>(names: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    const ORDER: [&str; 7] = ["ata-", "nvme-", "scsi-", "virtio-", "usb-", "mmc-", "wwn-"];
    names
        .filter(|n| {
            !n.contains("-part")
                && !n.starts_with("nvme-eui.")
                && !n.starts_with("dm-")
                && !n.starts_with("md-")
                && !n.starts_with("lvm-")
        })
        .min_by_key(|n| {
            (
                ORDER
                    .iter()
                    .position(|p| n.starts_with(p))
                    .unwrap_or(ORDER.len()),
                n.len(),
                (*n).clone(),
            )
        })
}

fn part_type(guid: Option<&str>) -> Option<PartType> {
    let g = guid?;
    [
        PartType::BiosBoot,
        PartType::Efi,
        PartType::LinuxRaid,
        PartType::Lvm,
        PartType::Swap,
        PartType::Linux,
    ]
    .into_iter()
    .find(|t| t.guid().eq_ignore_ascii_case(g))
}

/// A partition's name in references: its GPT name, or `partN`.
fn part_name(p: &BlockDev) -> String {
    p.partlabel.clone().unwrap_or_else(|| {
        let n: String = p
            .kname
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        format!("part{n}")
    })
}

/// How the spec refers to a device: `md0`, `DISK/PART` or `DISK`.
fn reference(inv: &Inventory, arrays: &BTreeMap<String, MdArray>, dev: &str) -> Option<String> {
    let b = inv.by_path(dev)?;
    if arrays.contains_key(&b.kname) || b.kind.starts_with("raid") {
        return Some(b.kname.clone());
    }
    if b.is_partition() {
        let disk = b.parents.first()?;
        return Some(format!("{disk}/{}", part_name(b)));
    }
    Some(b.kname.clone())
}

use crate::kinds::lvm::dm_name;

fn fs_of(fstype: Option<&str>) -> Filesystem {
    match fstype {
        Some("ext4") => Filesystem::Ext4,
        Some("xfs") => Filesystem::Xfs,
        Some("swap") => Filesystem::Swap,
        _ => Filesystem::None,
    }
}

/// The thin pools of a VG and their thin LVs, in the spec language.
fn thin_pools(f: &Facts, vg: &str) -> IndexMap<Sp<String>, ThinPool> {
    use crate::kinds::lvm::Thin;
    let mut out = IndexMap::new();
    for lv in f.lvm.lvs.values().filter(|l| l.vg == vg) {
        let Some(Thin::Pool {
            chunk_size,
            metadata_size,
            ..
        }) = &lv.thin
        else {
            continue;
        };
        let lvs = f
            .lvm
            .lvs
            .iter()
            .filter(|(k, _)| f.lvm.pool_of(k) == Some(lv.name.as_str()))
            .filter(|(_, t)| t.vg == vg)
            .map(|(_, t)| {
                let fstype = f
                    .blocks
                    .by_name(&dm_name(vg, &t.name))
                    .and_then(|b| b.fstype.clone());
                (
                    Sp::bare(t.name.clone()),
                    ThinLv {
                        size: Some(Sp::bare(Size(t.size))),
                        fs: fs_of(fstype.as_deref()),
                        prevent_destroy: t.protected(),
                        state: Presence::Present,
                    },
                )
            })
            .collect();
        out.insert(
            Sp::bare(lv.name.clone()),
            ThinPool {
                size: Some(Sp::bare(Size(lv.size))),
                chunk_size: (*chunk_size > 0).then(|| Sp::bare(Size(*chunk_size))),
                metadata_size: (*metadata_size > 0).then(|| Sp::bare(Size(*metadata_size))),
                lvs,
                prevent_destroy: lv.protected(),
                state: Presence::Present,
            },
        );
    }
    out
}

/// Read the host. The rooms' readings are independent, so they run side by side, each on its
/// own thread: block devices (`lsblk`, then files), LVM (`pvs`, `vgs`, `lvs` side by side), the
/// network (`ip`, three times) and the guests (`virsh`, `xl`). A plan then waits for the slowest
/// tool, not for all of them one after another. The results are put together in a fixed order,
/// so the facts (and the first error, if any) do not depend on which finished first.
/// The by-path names of the disks that have neither a by-id name nor a serial nor a WWN: udev's
/// links, or where there are none (no udev in a container), the PCI address of the disk's
/// controller in sysfs, as udev's `path_id` writes it for virtio (`pci-0000:00:02.0`).
fn by_path(
    r: &dyn Runner,
    blocks: &Inventory,
    by_id: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in r.list("/dev/disk/by-path") {
        if name.contains("-part") {
            continue;
        }
        if let Some(target) = r.resolve_link(&format!("/dev/disk/by-path/{name}")) {
            out.insert(name, target.trim_start_matches("/dev/").to_string());
        }
    }
    for d in blocks.devices.values().filter(|d| d.is_disk()) {
        let named = by_id.values().any(|k| *k == d.kname)
            || out.values().any(|k| *k == d.kname)
            || d.serial.is_some()
            || d.wwn.is_some();
        if named || !d.kname.starts_with("vd") {
            continue;
        }
        if let Some(pci) = r
            .resolve_link(&format!("/sys/block/{}", d.kname))
            .and_then(|p| pci_of(&p))
        {
            out.insert(format!("pci-{pci}"), d.kname.clone());
        }
    }
    out
}

/// The PCI address of the last PCI device on a sysfs path
/// (`/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda` → `0000:00:02.0`).
fn pci_of(sys_path: &str) -> Option<String> {
    let is_pci = |c: &str| {
        let b = c.as_bytes();
        b.len() == 12
            && b[4] == b':'
            && b[7] == b':'
            && b[10] == b'.'
            && c.chars()
                .enumerate()
                .all(|(i, ch)| [4, 7, 10].contains(&i) || ch.is_ascii_hexdigit())
    };
    sys_path.rsplit('/').find(|c| is_pci(c)).map(str::to_string)
}

pub fn discover(r: &dyn Runner) -> Result<Discovered, String> {
    let (blocks, lvm, net, guests) = std::thread::scope(|s| {
        let blocks = s.spawn(|| -> Result<_, String> {
            let lsblk = r
                .check(&["lsblk", "-J", "-b", "-O"])
                .map_err(|e| format!("cannot list block devices: {e}"))?;
            let blocks = Inventory::parse_lsblk(&lsblk.stdout)?;
            let mut by_id = BTreeMap::new();
            for name in r.list("/dev/disk/by-id") {
                if let Some(target) = r.resolve_link(&format!("/dev/disk/by-id/{name}")) {
                    by_id.insert(name, target.trim_start_matches("/dev/").to_string());
                }
            }
            let by_path = by_path(r, &blocks, &by_id);
            Ok((blocks, by_id, by_path, md::discover(r)))
        });
        let lvm = s.spawn(|| Lvm::discover(r));
        let net = s.spawn(|| crate::kinds::net::discover(r));
        let guests = s.spawn(|| crate::kinds::guest::discover(r));
        (joined(blocks), joined(lvm), joined(net), joined(guests))
    });
    let (blocks, by_id, by_path, arrays) = blocks?;
    let lvm = lvm?;
    let net = net?;
    // After the rooms, not beside them: the LVM tools open every device they scan, and would
    // be taken for openers.
    let openers = crate::kinds::block::openers(r, &blocks);
    // One read per disk and per BIOS boot partition, no process.
    let boot = crate::kinds::boot::discover(r, &blocks);
    let root_readonly = r
        .read("/proc/self/mounts")
        .and_then(|m| {
            m.lines()
                .find(|l| l.split_whitespace().nth(1) == Some("/"))
                .map(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .unwrap_or("")
                        .split(',')
                        .any(|o| o == "ro")
                })
        })
        .unwrap_or(false);
    // A host without a name is described as `discovered`: a snapshot then records no host
    // (`crate::workflow::host`), and planning against it needs `--host`.
    let host = read_hostname(r).unwrap_or_else(|| NOT_RECORDED.into());

    let mut facts = Facts {
        blocks,
        arrays,
        lvm,
        by_id,
        by_path,
        root_readonly,
        notes: Vec::new(),
        images: BTreeMap::new(),
        net,
        guests,
        openers,
        boot,
    };
    let spec = describe(&host, &mut facts);
    Ok(Discovered { spec, facts })
}

/// The host these facts describe, in the spec language (what `hostform discover` prints);
/// what it cannot express becomes a note in `f.notes`.
pub fn describe(host: &str, f: &mut Facts) -> Spec {
    let mut spec = Spec {
        version: Some(1),
        host: Sp::bare(host.to_string()),
        root: Root {
            readonly: f.root_readonly,
        },
        ..Spec::default()
    };
    // Disks, with their partitions in order on the disk.
    // Memory-backed and loop devices are not disks an operator manages.
    let disks: Vec<BlockDev> = f
        .blocks
        .devices
        .values()
        .filter(|d| d.is_disk() && d.size > 0)
        .filter(|d| {
            !["zram", "ram", "loop", "nbd"]
                .iter()
                .any(|p| d.kname.starts_with(p))
        })
        .cloned()
        .collect();
    for d in &disks {
        let names: Vec<&String> = f
            .by_id
            .iter()
            .filter(|(_, k)| **k == d.kname)
            .map(|(n, _)| n)
            .collect();
        // By-id first; else the WWN (its by-id name, also where udev made no link); else
        // by-path (a virtio disk without a serial).
        let id = preferred_id(names.into_iter())
            .map(|n| format!("/dev/disk/by-id/{n}"))
            .or_else(|| {
                if d.serial.is_some() {
                    return None;
                }
                if let Some(w) = &d.wwn {
                    return Some(format!("/dev/disk/by-id/wwn-{w}"));
                }
                f.by_path
                    .iter()
                    .filter(|(_, k)| **k == d.kname)
                    .map(|(n, _)| format!("/dev/disk/by-path/{n}"))
                    .next()
            })
            .map(Sp::bare);
        let mut parts: Vec<&BlockDev> = f
            .blocks
            .children(&d.kname)
            .filter(|c| c.is_partition())
            .collect();
        parts.sort_by_key(|p| p.start.unwrap_or(0));
        let mut partitions = Vec::new();
        for p in parts {
            let kind = part_type(p.parttype.as_deref()).unwrap_or_else(|| {
                f.notes.push(format!(
                    "{}: partition type {} has no name in the spec language; shown as `linux`",
                    p.kname,
                    p.parttype.as_deref().unwrap_or("(none)")
                ));
                PartType::Linux
            });
            partitions.push(Partition {
                name: Sp::bare(part_name(p)),
                size: Sp::bare(PartSize::Bytes(Size(p.size))),
                kind,
                state: Presence::Present,
            });
        }
        if id.is_none() && d.serial.is_none() {
            f.notes.push(format!(
                "{}: no /dev/disk/by-id or by-path name and no serial; give it a stable `id` before adopting this spec",
                d.kname
            ));
        }
        if d.pttype.as_deref().is_some_and(|t| t != "gpt") {
            f.notes.push(format!(
                "{}: {} partition table; hostform manages GPT only",
                d.kname,
                d.pttype.as_deref().unwrap_or("")
            ));
        }
        spec.disks.insert(
            Sp::bare(d.kname.clone()),
            Disk {
                id,
                serial: if d.serial.is_some() {
                    d.serial.clone().map(Sp::bare)
                } else {
                    None
                },
                size: Some(Sp::bare(Size(d.size))),
                partitions,
                ..Disk::default()
            },
        );
    }
    // Arrays.
    let arrays = f.arrays.clone();
    for a in arrays.values() {
        let level = match a.level_number() {
            Some(0) => RaidLevel::Raid0,
            Some(1) => RaidLevel::Raid1,
            Some(5) => RaidLevel::Raid5,
            Some(6) => RaidLevel::Raid6,
            Some(10) => RaidLevel::Raid10,
            _ => {
                f.notes.push(format!(
                    "{}: level `{}` is not managed by hostform",
                    a.kname, a.level
                ));
                continue;
            }
        };
        if a.degraded() && a.members.iter().filter(|m| !m.spare).count() < a.raid_disks as usize {
            f.notes.push(format!(
                "{}: degraded [{}/{}], a member is missing: add the replacement to its `devices` before adopting",
                a.kname, a.raid_disks, a.working
            ));
        }
        let refer = |m: &md::Member| reference(&f.blocks, &f.arrays, &m.kname).map(Sp::bare);
        let mut members: Vec<&md::Member> = a.members.iter().collect();
        members.sort_by_key(|m| m.slot);
        spec.arrays.insert(
            Sp::bare(a.kname.clone()),
            Array {
                level: Sp::bare(level),
                // A faulty member is still one of the array's devices: the spec says what the
                // array should be, and the planner repairs it.
                devices: members
                    .iter()
                    .filter(|m| !m.spare)
                    .filter_map(|m| refer(m))
                    .collect(),
                spares: members
                    .iter()
                    .filter(|m| m.spare)
                    .filter_map(|m| refer(m))
                    .collect(),
                metadata: match a.metadata.as_deref() {
                    Some("0.90") => MdMetadata::V090,
                    Some("1.0") => MdMetadata::V10,
                    Some("1.1") => MdMetadata::V11,
                    _ => MdMetadata::V12,
                },
                bootloader_on: Vec::new(),
                wipe: false,
                prevent_destroy: false,
                state: Presence::Present,
            },
        );
    }
    // Volume groups.
    for vg in f.lvm.vgs.values() {
        let pvs = f
            .lvm
            .pvs
            .iter()
            .filter(|p| p.vg == vg.name)
            .filter_map(|p| reference(&f.blocks, &f.arrays, &p.device).map(Sp::bare))
            .collect();
        let mut lvs = IndexMap::new();
        let mut snapshots = IndexMap::new();
        let thin_pools = thin_pools(f, &vg.name);
        for lv in f
            .lvm
            .lvs
            .values()
            .filter(|l| l.vg == vg.name && !l.internal && l.thin.is_none())
        {
            let dm = dm_name(&vg.name, &lv.name);
            let fstype = f.blocks.by_name(&dm).and_then(|b| b.fstype.clone());
            if let Some(origin) = &lv.origin {
                snapshots.insert(
                    Sp::bare(lv.name.clone()),
                    Snapshot {
                        origin: Sp::bare(origin.clone()),
                        // The origin's size is what the snapshot shows; its COW space is
                        // the `-cow` device.
                        size: Sp::bare(Size(
                            f.blocks
                                .by_name(&format!("{dm}-cow"))
                                .map(|b| b.size)
                                .unwrap_or(lv.size),
                        )),
                        state: SnapshotState::Present,
                    },
                );
                continue;
            }
            lvs.insert(
                Sp::bare(lv.name.clone()),
                crate::spec::types::Lv {
                    size: Some(Sp::bare(LvSize::Bytes(Size(lv.size)))),
                    fs: fs_of(fstype.as_deref()),
                    readonly: lv.readonly,
                    // hostform's tag on the host: the protection travels with the adopted spec.
                    prevent_destroy: lv.protected(),
                    ..Default::default()
                },
            );
        }
        spec.volume_groups.insert(
            Sp::bare(vg.name.clone()),
            VolumeGroup {
                pvs,
                shared: vg.shared,
                lock_type: None,
                init_on: None,
                extent_size: (vg.extent_size != 4 * MIB && vg.extent_size > 0)
                    .then(|| Sp::bare(Size(vg.extent_size))),
                lvs,
                snapshots,
                thin_pools,
                prevent_destroy: vg.protected(),
                state: Presence::Present,
            },
        );
    }
    // Bridges, with their ports, addresses, gateway, STP and MTU; how the host persists them.
    spec.bridges = f.net.bridges();
    if !spec.bridges.is_empty() {
        spec.network.manager = f.net.manager.unwrap_or_default();
    }
    spec.vms = crate::kinds::guest::to_spec_vms(&f.guests, &mut f.notes);
    spec
}

#[cfg(test)]
mod tests {
    #[test]
    fn pci_addresses_come_from_the_sysfs_path() {
        assert_eq!(
            pci_of("/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda").as_deref(),
            Some("0000:00:02.0")
        );
        assert_eq!(
            pci_of("/sys/devices/pci0000:00/0000:00:1c.0/0000:01:00.0/virtio3/block/vdb")
                .as_deref(),
            Some("0000:01:00.0")
        );
        assert_eq!(pci_of("/sys/devices/virtual/block/vda"), None);
    }

    /// `hostform discover` on the machine that runs the tests (whatever its disks: here a
    /// virtio disk without a serial and no /dev/disk links), read back by `validate`: an
    /// adopted spec must be valid as printed, on every host.
    #[test]
    fn discover_round_trips_through_validate_on_this_machine() {
        let d = match discover(&crate::runner::RealRunner::new()) {
            Ok(d) => d,
            Err(e) if e.contains("cannot list block devices") => return, // no lsblk here
            Err(e) => panic!("{e}"),
        };
        let yaml = serde_saphyr::to_string(&d.spec).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.yaml");
        std::fs::write(&path, &yaml).unwrap();
        if let Err(f) = crate::spec::load(&path, None) {
            let msgs: Vec<String> = f.diagnostics.iter().map(|d| d.message.clone()).collect();
            panic!("discover's output does not validate: {msgs:?}\n{yaml}");
        }
    }

    use super::*;

    use crate::runner::fixtures::runner as fx;

    #[test]
    fn the_full_stack_reads_back_as_a_spec() {
        let r = fx("full");
        let d = discover(&r).expect("discovers");
        // lsblk, pvs, vgs, lvs; virsh list (+ its autostart list when libvirt answers), xl list.
        assert!(
            r.asked.lock().unwrap().len() <= 7,
            "{:?}",
            r.asked.lock().unwrap()
        );
        let s = &d.spec;
        let vda = &s.disks["vda"];
        assert_eq!(
            vda.id.as_ref().map(|i| i.value.as_str()),
            Some("/dev/disk/by-id/virtio-HF-DISK-A")
        );
        assert_eq!(
            vda.serial.as_ref().map(|i| i.value.as_str()),
            Some("HF-DISK-A")
        );
        let names: Vec<&str> = vda
            .partitions
            .iter()
            .map(|p| p.name.value.as_str())
            .collect();
        assert_eq!(names, ["bios_grub", "raid_md0"]);
        assert_eq!(vda.partitions[0].kind, PartType::BiosBoot);
        assert_eq!(vda.partitions[1].kind, PartType::LinuxRaid);
        let md0 = &s.arrays["md0"];
        assert_eq!(md0.level.value, RaidLevel::Raid1);
        let members: Vec<&str> = md0.devices.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(members, ["vda/raid_md0", "vdb/raid_md0"]);
        let vg0 = &s.volume_groups["vg0"];
        assert_eq!(
            vg0.pvs.iter().map(|p| p.value.as_str()).collect::<Vec<_>>(),
            ["md0"]
        );
        assert_eq!(vg0.lvs["dom0_root"].fs, Filesystem::Ext4);
        assert_eq!(vg0.lvs["dom0_swap"].fs, Filesystem::Swap);
        assert!(vg0.lvs["guest1_iso"].readonly);
        assert_eq!(
            vg0.snapshots["guest1_root_snap"].origin.value,
            "guest1_root"
        );
        assert_eq!(vg0.snapshots["guest1_root_snap"].size.value.0, 64 << 20);
        assert!(!vg0.lvs.contains_key("guest1_root_snap"));
        assert!(d.facts.notes.is_empty(), "{:?}", d.facts.notes);
    }

    #[test]
    fn discovered_specs_validate() {
        for scenario in ["full", "blank", "reused", "failed"] {
            let d = discover(&fx(scenario)).expect("discovers");
            let yaml = serde_saphyr::to_string(&d.spec).expect("serializes");
            if let Err(f) = crate::spec::load_str("discovered.yaml", &yaml) {
                panic!("{scenario}: {:?}\n{yaml}", f.diagnostics);
            }
        }
    }

    #[test]
    fn a_degraded_array_keeps_its_faulty_member_and_notes_a_missing_one() {
        let d = discover(&fx("failed")).expect("discovers");
        let members: Vec<&str> = d.spec.arrays["md0"]
            .devices
            .iter()
            .map(|m| m.value.as_str())
            .collect();
        assert_eq!(members, ["vda/raid_md0", "vdb/raid_md0"]);
        let d = discover(&fx("replaced")).expect("discovers");
        assert!(
            d.facts
                .notes
                .iter()
                .any(|n| n.starts_with("md0: degraded [2/1], a member is missing")),
            "{:?}",
            d.facts.notes
        );
    }

    #[test]
    fn discovery_records_who_holds_a_device_open_and_old_snapshots_still_load() {
        let d = discover(&fx("opened")).expect("discovers");
        let pids = |k: &str| -> Vec<u32> {
            d.facts
                .openers
                .get(k)
                .map(|v| v.iter().map(|o| o.pid).collect())
                .unwrap_or_default()
        };
        assert_eq!(pids("vdb"), vec![226]);
        assert_eq!(pids("vda2"), vec![227]);
        assert_eq!(pids("dm-0"), vec![228]);
        assert_eq!(pids("vda1"), vec![238]);
        assert!(pids("dm-1").is_empty());
        // A snapshot saved before openers were known has no such key.
        let mut v = serde_json::to_value(&d.facts).unwrap();
        v.as_object_mut().unwrap().remove("openers");
        let old: Facts = serde_json::from_value(v).expect("an old snapshot loads");
        assert!(old.openers.is_empty());
    }

    /// The captured host, except that `lsblk` answers last and fails, and `lvs` fails at once.
    struct SlowFailing(crate::runner::ReplayRunner);

    impl Runner for SlowFailing {
        fn run_input(
            &self,
            argv: &[&str],
            input: Option<&str>,
        ) -> Result<crate::runner::Output, crate::runner::RunError> {
            let failed = |argv: &[&str]| crate::runner::RunError::Failed {
                argv: argv.join(" "),
                status: 5,
                stderr: "broken".into(),
            };
            match argv.first() {
                Some(&"lsblk") => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    Err(failed(argv))
                }
                Some(&"lvs") => Err(failed(argv)),
                _ => self.0.run_input(argv, input),
            }
        }
        fn read(&self, path: &str) -> Option<String> {
            self.0.read(path)
        }
        fn list(&self, dir: &str) -> Vec<String> {
            self.0.list(dir)
        }
        fn resolve_link(&self, path: &str) -> Option<String> {
            self.0.resolve_link(path)
        }
    }

    #[test]
    fn rooms_read_side_by_side_but_the_first_error_is_always_the_same() {
        // LVM fails first in time; the block devices' error is still the one reported, since
        // the rooms are combined in a fixed order.
        let r = SlowFailing(fx("full"));
        let Err(e) = discover(&r) else {
            panic!("lsblk failed, yet discovery succeeded")
        };
        assert!(e.starts_with("cannot list block devices: lsblk"), "{e}");
        // And the rooms did read side by side: the others asked while lsblk was still running.
        let asked = r.0.asked.lock().unwrap().clone();
        assert!(
            asked.iter().any(|a| a.starts_with("lvm fullreport")),
            "{asked:?}"
        );
        assert!(asked.iter().any(|a| a.starts_with("ip ")), "{asked:?}");
    }

    #[test]
    fn side_by_side_discovery_reads_the_same_facts_every_time() {
        let first = discover(&fx("full")).expect("discovers");
        let first = serde_saphyr::to_string(&first.spec).expect("serializes");
        for _ in 0..20 {
            let again = discover(&fx("full")).expect("discovers");
            assert_eq!(
                serde_saphyr::to_string(&again.spec).expect("serializes"),
                first
            );
        }
    }
}
