//! Block devices as `lsblk -J -b -O` reports them: one process for every disk, partition, md
//! array and LV of the host, with their signatures (FSTYPE, UUID), partition table facts
//! (PARTLABEL, PARTTYPE, START) and mount points.
//!
//! lsblk prints a device once under each of its parents (md0 under both members, an LVM
//! snapshot under both `-real` and `-cow`); the inventory keeps one entry per kernel name and
//! records every parent.

use serde::Deserialize;
use std::collections::BTreeMap;

/// One block device.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct BlockDev {
    /// Kernel name: `vda`, `vda2`, `md0`, `dm-3`.
    pub kname: String,
    /// lsblk's display name: `vda2`, `md0`, `vg0-dom0_root`.
    pub name: String,
    pub path: String,
    /// `disk`, `part`, `raid1`, `lvm`, `loop`, `rom`…
    pub kind: String,
    pub size: u64,
    /// Signature found on the device: `ext4`, `swap`, `linux_raid_member`, `LVM2_member`…
    pub fstype: Option<String>,
    pub uuid: Option<String>,
    pub label: Option<String>,
    pub partlabel: Option<String>,
    /// GPT type GUID, upper case (as sfdisk and the spec write it).
    pub parttype: Option<String>,
    /// First sector of a partition.
    pub start: Option<u64>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub model: Option<String>,
    /// Partition table type on a disk: `gpt`, `dos`.
    pub pttype: Option<String>,
    pub mountpoints: Vec<String>,
    pub readonly: bool,
    /// Kernel names of the devices this one sits on.
    pub parents: Vec<String>,
}

impl BlockDev {
    pub fn is_disk(&self) -> bool {
        self.kind == "disk"
    }
    pub fn is_partition(&self) -> bool {
        self.kind == "part"
    }
    /// Mounted, or active swap.
    pub fn in_use(&self) -> bool {
        !self.mountpoints.is_empty()
    }
}

#[derive(Deserialize)]
struct Report {
    blockdevices: Vec<Raw>,
}

#[derive(Deserialize)]
struct Raw {
    kname: String,
    name: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    fstype: Option<String>,
    #[serde(default)]
    uuid: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    partlabel: Option<String>,
    #[serde(default)]
    parttype: Option<String>,
    #[serde(default)]
    start: Option<u64>,
    #[serde(default)]
    serial: Option<String>,
    #[serde(default)]
    wwn: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    pttype: Option<String>,
    #[serde(default)]
    mountpoints: Vec<Option<String>>,
    #[serde(default)]
    ro: bool,
    #[serde(default)]
    children: Vec<Raw>,
}

/// All block devices, keyed by kernel name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Inventory {
    pub devices: BTreeMap<String, BlockDev>,
    /// lsblk display name (`vg0-dom0_root`) → kernel name, for device-mapper lookups.
    #[serde(skip)]
    names: BTreeMap<String, String>,
}

impl Inventory {
    pub fn parse_lsblk(json: &str) -> Result<Inventory, String> {
        let report: Report =
            serde_json::from_str(json).map_err(|e| format!("cannot read lsblk's JSON: {e}"))?;
        let mut inv = Inventory::default();
        for d in report.blockdevices {
            inv.add(d, None);
        }
        inv.index();
        Ok(inv)
    }

    fn add(&mut self, raw: Raw, parent: Option<&str>) {
        let kname = raw.kname.clone();
        let entry = self
            .devices
            .entry(kname.clone())
            .or_insert_with(|| BlockDev {
                kname: raw.kname.clone(),
                name: raw.name.clone(),
                path: raw
                    .path
                    .clone()
                    .unwrap_or_else(|| format!("/dev/{}", raw.kname)),
                kind: raw.kind.clone(),
                size: raw.size.unwrap_or(0),
                fstype: raw.fstype.clone().filter(|s| !s.is_empty()),
                uuid: raw.uuid.clone().filter(|s| !s.is_empty()),
                label: raw.label.clone().filter(|s| !s.is_empty()),
                partlabel: raw.partlabel.clone().filter(|s| !s.is_empty()),
                parttype: raw.parttype.clone().map(|s| s.to_uppercase()),
                start: raw.start,
                serial: raw
                    .serial
                    .clone()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
                wwn: raw.wwn.clone().filter(|s| !s.is_empty()),
                model: raw
                    .model
                    .clone()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty()),
                pttype: raw.pttype.clone(),
                mountpoints: raw.mountpoints.iter().flatten().cloned().collect(),
                readonly: raw.ro,
                parents: Vec::new(),
            });
        if let Some(p) = parent
            && !entry.parents.iter().any(|x| x == p)
        {
            entry.parents.push(p.to_string());
        }
        for c in raw.children {
            self.add(c, Some(&kname));
        }
    }

    pub fn get(&self, kname: &str) -> Option<&BlockDev> {
        self.devices.get(kname)
    }

    /// Rebuild the name index (after parsing, or after loading a snapshot).
    pub fn index(&mut self) {
        self.names = self
            .devices
            .values()
            .map(|d| (d.name.clone(), d.kname.clone()))
            .collect();
    }

    /// The device lsblk shows under this name (`vg0-dom0_root`, `md0`).
    pub fn by_name(&self, name: &str) -> Option<&BlockDev> {
        match self.names.get(name) {
            Some(k) => self.devices.get(k),
            // An inventory built by hand or from a snapshot may have no index yet.
            None if self.names.is_empty() => self.devices.values().find(|d| d.name == name),
            None => None,
        }
    }

    /// Devices sitting directly on `kname` (partitions of a disk, an array on a member…).
    pub fn children<'a>(&'a self, kname: &'a str) -> impl Iterator<Item = &'a BlockDev> + 'a {
        self.devices
            .values()
            .filter(move |d| d.parents.iter().any(|p| p == kname))
    }

    /// Whether this device, or anything stacked on it, is mounted or used as swap.
    pub fn busy(&self, kname: &str) -> bool {
        let mut stack = vec![kname];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(k) = stack.pop() {
            if !seen.insert(k) {
                continue;
            }
            if self.get(k).is_some_and(BlockDev::in_use) {
                return true;
            }
            stack.extend(self.children(k).map(|c| c.kname.as_str()));
        }
        false
    }

    /// The device whose `path` or kernel name is `dev` (`/dev/vda2`, `vda2`, `/dev/dm-3`).
    pub fn by_path(&self, dev: &str) -> Option<&BlockDev> {
        let k = dev.strip_prefix("/dev/").unwrap_or(dev);
        self.devices
            .get(k)
            .or_else(|| self.devices.values().find(|d| d.path == dev))
    }
}

/// sfdisk script for a GPT with these partitions (`None` size: the rest of the disk).
/// sfdisk aligns to 1 MiB by default.
pub fn sfdisk_script(parts: &[(String, Option<u64>, &str)], with_label: bool) -> String {
    let mut s = String::new();
    if with_label {
        s.push_str("label: gpt\n");
    }
    for (name, size, guid) in parts {
        match size {
            Some(b) => s.push_str(&format!("size={}KiB, type={guid}, name={name}\n", b / 1024)),
            None => s.push_str(&format!("type={guid}, name={name}\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(scenario: &str, name: &str) -> String {
        crate::runner::fixtures::text(&format!("{scenario}/{name}"))
    }

    #[test]
    fn blank_disks() {
        let inv = Inventory::parse_lsblk(&fixture("blank", "lsblk.json")).unwrap();
        let vda = inv.get("vda").unwrap();
        assert!(vda.is_disk());
        assert_eq!(vda.serial.as_deref(), Some("HF-DISK-A"));
        assert_eq!(vda.size, 2 << 30);
        assert_eq!(vda.pttype, None);
        assert_eq!(vda.fstype, None);
        assert_eq!(inv.children("vda").count(), 0);
    }

    #[test]
    fn full_stack_is_deduplicated_with_all_parents() {
        let inv = Inventory::parse_lsblk(&fixture("full", "lsblk.json")).unwrap();
        let vda2 = inv.get("vda2").unwrap();
        assert!(vda2.is_partition());
        assert_eq!(vda2.partlabel.as_deref(), Some("raid_md0"));
        assert_eq!(
            vda2.parttype.as_deref(),
            Some("A19D880F-05FC-4D3B-A006-743F0F84911E")
        );
        assert_eq!(vda2.start, Some(6144));
        assert_eq!(vda2.fstype.as_deref(), Some("linux_raid_member"));
        let md0 = inv.get("md0").unwrap();
        assert_eq!(md0.kind, "raid1");
        assert_eq!(md0.parents, vec!["vda2".to_string(), "vdb2".to_string()]);
        assert_eq!(md0.fstype.as_deref(), Some("LVM2_member"));
        // One entry per device, although lsblk repeats md0's subtree under each member.
        assert_eq!(
            inv.devices
                .values()
                .filter(|d| d.name == "vg0-dom0_root")
                .count(),
            1
        );
        // The mounted root LV makes everything beneath it busy, down to the disks.
        assert!(inv.busy("vda"));
        assert!(inv.busy("md0"));
        assert!(!inv.busy("vda1"));
        let swap = inv
            .devices
            .values()
            .find(|d| d.name == "vg0-dom0_swap")
            .unwrap();
        assert_eq!(swap.mountpoints, vec!["[SWAP]".to_string()]);
        assert_eq!(
            inv.by_path("/dev/vda2").map(|d| d.kname.as_str()),
            Some("vda2")
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Inventory::parse_lsblk("").is_err());
        assert!(Inventory::parse_lsblk("{\"blockdevices\": 3}").is_err());
        assert_eq!(
            Inventory::parse_lsblk("{\"blockdevices\": []}")
                .unwrap()
                .devices
                .len(),
            0
        );
    }
}
