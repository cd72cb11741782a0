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
    /// Device number, `MAJ:MIN` (`254:16`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub majmin: Option<String>,
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
    #[serde(default, rename = "maj:min")]
    majmin: Option<String>,
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
                majmin: raw.majmin.clone().filter(|s| !s.is_empty()),
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

/// A process holding a block device open (a descriptor on it), as `fuser -v` and lsof show.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Opener {
    pub pid: u32,
    /// `/proc/PID/comm`, control characters escaped; empty if the process left meanwhile.
    pub comm: String,
}

impl std::fmt::Display for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.comm.is_empty() {
            write!(f, "pid {}", self.pid)
        } else {
            write!(f, "{} (pid {})", self.comm, self.pid)
        }
    }
}

/// Which processes hold which block devices of `inv` open, by kernel name: one pass over
/// every `/proc/PID/fd/*` link (what `fuser -v /dev/vdb` does). A descriptor on a block device
/// is matched by its device number (lsblk's MAJ:MIN), whatever name it was opened by (a
/// container's own `/dev/xvdc` for the host's vdb); where the runner cannot tell the number, by
/// the link's name (`/dev/vdb`, `/dev/vda2`, `/dev/dm-3`, `/dev/md0`). hostform's own process
/// (`/proc/self`) is left out. A process whose descriptors cannot be read (it left, or
/// discovery does not run as root) shows nothing.
pub fn openers(r: &dyn crate::runner::Runner, inv: &Inventory) -> BTreeMap<String, Vec<Opener>> {
    let me = r
        .read_link("/proc/self")
        .and_then(|p| p.rsplit('/').next().map(str::to_string));
    // `/dev/KNAME` and lsblk's path (`/dev/mapper/vg0-lv`), looked up once per descriptor.
    let mut known: std::collections::HashMap<&str, &str> = std::collections::HashMap::new();
    for d in inv.devices.values() {
        known.insert(d.path.as_str(), d.kname.as_str());
    }
    let dev_names: std::collections::HashMap<String, &str> = inv
        .devices
        .keys()
        .map(|k| (format!("/dev/{k}"), k.as_str()))
        .collect();
    let by_number: std::collections::HashMap<&str, &str> = inv
        .devices
        .values()
        .filter_map(|d| Some((d.majmin.as_deref()?, d.kname.as_str())))
        .collect();
    let mut out: BTreeMap<String, Vec<Opener>> = BTreeMap::new();
    for pid in r.list("/proc") {
        if pid.is_empty() || !pid.bytes().all(|c| c.is_ascii_digit()) || Some(&pid) == me.as_ref() {
            continue;
        }
        let Ok(n) = pid.parse::<u32>() else {
            continue;
        };
        let mut held: Vec<String> = Vec::new();
        let fd_dir = format!("/proc/{pid}/fd");
        for fd in r.list(&fd_dir) {
            let link = format!("{fd_dir}/{fd}");
            // One `stat` per descriptor; the link's text only where the runner cannot tell.
            let kname = match r.block_device(&link) {
                Some(number) => by_number.get(number.as_str()),
                None if r.tells_block_devices() => continue,
                None => {
                    let Some(target) = r.read_link(&link) else {
                        continue;
                    };
                    dev_names
                        .get(target.as_str())
                        .or_else(|| known.get(target.as_str()))
                }
            };
            if let Some(k) = kname
                && !held.iter().any(|h| h == k)
            {
                held.push((*k).to_string());
            }
        }
        if held.is_empty() {
            continue;
        }
        let comm = r
            .read(&format!("/proc/{pid}/comm"))
            .map(|c| crate::diag::visible(c.trim_end_matches('\n')).into_owned())
            .unwrap_or_default();
        for k in held {
            out.entry(k).or_default().push(Opener {
                pid: n,
                comm: comm.clone(),
            });
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|o| o.pid);
    }
    out
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
    fn openers_are_read_from_the_descriptors_of_every_process() {
        let r = crate::runner::fixtures::runner("opened");
        let inv = Inventory::parse_lsblk(&fixture("opened", "lsblk.json")).unwrap();
        let o = openers(&r, &inv);
        let one = |k: &str| {
            o.get(k)
                .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        };
        // As `fuser -v /dev/vdb` and `lsof /dev/vda2` showed in the same capture.
        assert_eq!(one("vdb"), Some(vec!["sleep (pid 226)".to_string()]));
        assert_eq!(one("vda2"), Some(vec!["tail (pid 227)".to_string()]));
        // The LV vgo/held, by its kernel name.
        assert_eq!(inv.get("dm-0").map(|d| d.name.as_str()), Some("vgo-held"));
        assert_eq!(one("dm-0"), Some(vec!["sleep (pid 228)".to_string()]));
        // vda1 through /dev/hf-alias, a node of another name: its device number says which.
        // (fuser, matching the named node, missed it: fuser-vda1 is empty, exit status 1.)
        assert_eq!(
            crate::runner::Runner::read_link(&r, "/proc/238/fd/3").as_deref(),
            Some("/dev/hf-alias")
        );
        assert_eq!(one("vda1"), Some(vec!["sleep (pid 238)".to_string()]));
        assert!(fixture("opened", "fuser-vda1").trim().is_empty());
        // Nobody holds the rest; character devices (/dev/vport2p1, /dev/null) are no block
        // devices.
        assert_eq!(o.len(), 4, "{o:?}");
        // The same as the tools said about the same host.
        let fuser: Vec<u32> = fixture("opened", "fuser-vdb")
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(fuser, o["vdb"].iter().map(|x| x.pid).collect::<Vec<_>>());
        let lsof = fixture("opened", "lsof-vda2");
        let row: Vec<&str> = lsof.lines().nth(1).unwrap().split_whitespace().collect();
        assert_eq!(
            (row[0], row[1].parse::<u32>().unwrap()),
            (o["vda2"][0].comm.as_str(), o["vda2"][0].pid)
        );
    }

    /// The captured host, seen from inside one of its processes.
    struct AsPid(crate::runner::ReplayRunner, &'static str);

    impl crate::runner::Runner for AsPid {
        fn run_input(
            &self,
            argv: &[&str],
            input: Option<&str>,
        ) -> Result<crate::runner::Output, crate::runner::RunError> {
            self.0.run_input(argv, input)
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
        fn read_link(&self, path: &str) -> Option<String> {
            if path == "/proc/self" {
                return Some(self.1.to_string());
            }
            self.0.read_link(path)
        }
        fn block_device(&self, path: &str) -> Option<String> {
            self.0.block_device(path)
        }
        fn tells_block_devices(&self) -> bool {
            self.0.tells_block_devices()
        }
    }

    #[test]
    fn hostforms_own_descriptors_are_not_an_opener() {
        let inv = Inventory::parse_lsblk(&fixture("opened", "lsblk.json")).unwrap();
        let o = openers(
            &AsPid(crate::runner::fixtures::runner("opened"), "226"),
            &inv,
        );
        assert!(!o.contains_key("vdb"), "{o:?}");
        assert!(o.contains_key("vda2"), "{o:?}");
    }

    /// The captured host, replayed by a runner that cannot tell device numbers.
    struct NamesOnly(crate::runner::ReplayRunner);

    impl crate::runner::Runner for NamesOnly {
        fn run_input(
            &self,
            argv: &[&str],
            input: Option<&str>,
        ) -> Result<crate::runner::Output, crate::runner::RunError> {
            self.0.run_input(argv, input)
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
    fn without_device_numbers_the_links_names_are_matched() {
        let inv = Inventory::parse_lsblk(&fixture("opened", "lsblk.json")).unwrap();
        let o = openers(&NamesOnly(crate::runner::fixtures::runner("opened")), &inv);
        let keys: Vec<&str> = o.keys().map(String::as_str).collect();
        // All but the one opened through a node of another name.
        assert_eq!(keys, ["dm-0", "vda2", "vdb"]);
    }

    #[test]
    fn a_host_captured_without_proc_links_has_no_openers() {
        let inv = Inventory::parse_lsblk(&fixture("full", "lsblk.json")).unwrap();
        assert!(openers(&crate::runner::fixtures::runner("full"), &inv).is_empty());
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
