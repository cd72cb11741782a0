//! The spec language: the typed shape of a host's desired state.
//!
//! The same types describe what discovery finds on a live host, so `hostform discover`
//! prints a spec that can be saved and adopted. docs/spec.md is the user-facing reference;
//! the JSON Schema (`hostform schema`) is generated from these types and their doc comments.

use indexmap::IndexMap;
use schemars::JsonSchema;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::de::Sp;
use super::units::{Cidr, Duration, Ip, LvSize, Mac, PartSize, Size};

/// A name as written in the spec (with its position, for error messages).
pub type Name = Sp<String>;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_default<T: Default + PartialEq>(t: &T) -> bool {
    *t == T::default()
}

/// The whole desired state of one host.
///
/// ```yaml
/// host: dom0
/// root: { readonly: true }
/// disks: { ... }
/// arrays: { ... }
/// volume-groups: { ... }
/// bridges: { ... }
/// vms: { ... }
/// shutdown: { ... }
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Spec {
    /// Version of the spec language. Optional; the only version is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The host's name (its hostname). A repository can hold one spec per host.
    pub host: Name,
    /// Files whose `vm-templates` and `vm-defaults` this spec uses, relative to this file,
    /// inside the same repository: `include: [../common/templates.yaml]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<Name>,
    /// Options of the host's own system.
    #[serde(default, skip_serializing_if = "is_default")]
    pub root: Root,
    /// Physical disks, keyed by a name of your choice (used in references).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub disks: IndexMap<Name, Disk>,
    /// Linux software RAID (mdadm) arrays, keyed by device name: `md0`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub arrays: IndexMap<Name, Array>,
    /// LVM volume groups, keyed by VG name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub volume_groups: IndexMap<Name, VolumeGroup>,
    /// How the host's network configuration is persisted.
    #[serde(default, skip_serializing_if = "is_default")]
    pub network: Network,
    /// Linux bridges, keyed by interface name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub bridges: IndexMap<Name, Bridge>,
    /// Settings of the Xen toolstack (xl).
    #[serde(default, skip_serializing_if = "is_default")]
    pub xen: XenSettings,
    /// Settings of libvirt.
    #[serde(default, skip_serializing_if = "is_default")]
    pub libvirt: LibvirtSettings,
    /// Fields every VM gets unless it (or its template) says otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_defaults: Option<Vm>,
    /// Named partial VMs; a VM uses one with `template: NAME`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vm_templates: IndexMap<Name, Vm>,
    /// Guests, keyed by domain name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub vms: IndexMap<Name, Vm>,
    /// How guests are stopped when the host shuts down (`hostform shutdown`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub shutdown: Shutdown,
    /// The cluster this host belongs to: its hosts and their sanlock host_ids. Written once, in
    /// a file every host's spec includes, with the shared VGs and the guests' placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<Cluster>,
    /// The cluster's guests that another host runs (`runs-on`), by name, with that host: left
    /// out of `vms` by [`Spec::place_guests`], and kept here so that a guest this host still
    /// has is moved there.
    #[serde(skip)]
    #[schemars(skip)]
    pub elsewhere: IndexMap<String, (String, Vm)>,
    /// In a cluster: the guests and `shutdown.first` as written, before
    /// [`Spec::place_guests`] placed them.
    #[serde(skip)]
    #[schemars(skip)]
    #[allow(clippy::type_complexity)]
    pub as_written: Option<Box<(IndexMap<Name, Vm>, Vec<Name>)>>,
}

/// Hosts sharing storage through a shared VG (lvmlockd + sanlock).
///
/// ```yaml
/// cluster:
///   hosts:
///     kvm1: { host-id: 1 }
///     kvm2: { host-id: 2 }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Cluster {
    /// The cluster's hosts, keyed by host name (each one's `host:`), in order: the first
    /// initialises a shared VG that names no `init-on`.
    pub hosts: IndexMap<Name, ClusterHost>,
}

/// One host of a [`Cluster`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClusterHost {
    /// The host's sanlock `host_id` (`host_id` in lvmlocal.conf): 1 to 2000, each host its own.
    pub host_id: Sp<u32>,
    /// Where the other hosts reach it: its address on the cluster's private network (or a name
    /// that resolves there). A guest moving to it is sent there (`virsh migrate` to
    /// `qemu+ssh://root@ADDRESS/system`, the memory over `tcp://ADDRESS`), and the moving host
    /// activates the guest's LVs there over `ssh root@ADDRESS`. Default: the host's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Sp<String>>,
}

/// How a guest moves to another host of its cluster when its `runs-on` changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Migration {
    /// `virsh migrate --live`: the guest keeps running while its memory is copied; its LVs
    /// are active on both hosts (shared) only for the move.
    #[default]
    Live,
    /// Stopped here, started there: for a guest that cannot migrate live. Downtime: from its
    /// stop until its start on the other host.
    Cold,
}

/// The lock manager of a shared VG.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LockType {
    /// sanlock: disk leases on the shared storage itself (the `lvmlock` LV).
    #[default]
    Sanlock,
}

/// Seconds a guest may take to stop cleanly when the spec does not say (as xendomains).
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 300;

impl Spec {
    /// The host that creates the shared VG `vg`: its `init-on`, else the cluster's first host.
    /// None outside a cluster.
    pub fn init_host(&self, vg: &str) -> Option<&str> {
        let cl = self.cluster.as_ref()?;
        self.volume_groups
            .get(vg)
            .and_then(|v| v.init_on.as_ref())
            .map(|i| i.value.as_str())
            .or_else(|| cl.hosts.keys().next().map(|h| h.value.as_str()))
    }

    /// Where the cluster's host `host` is reached: its `address`, else its name.
    pub fn host_address(&self, host: &str) -> String {
        self.cluster
            .as_ref()
            .and_then(|c| c.hosts.iter().find(|(k, _)| k.value == host))
            .and_then(|(_, h)| h.address.as_ref())
            .map(|a| a.value.clone())
            .unwrap_or_else(|| host.to_string())
    }

    /// The cluster's host whose sanlock host_id is `id`.
    pub fn host_of_id(&self, id: u32) -> Option<&str> {
        self.cluster
            .as_ref()?
            .hosts
            .iter()
            .find(|(_, h)| h.host_id.value == id)
            .map(|(k, _)| k.value.as_str())
    }

    /// This host's view of a cluster: the guests another host runs (`runs-on`) are left out,
    /// with every dependency on them; the other hosts' plans own them.
    pub fn place_guests(&mut self) {
        self.place_guests_with(&BTreeSet::new());
    }

    /// The host that runs a guest whose `runs-on` is `host`, while the hosts in `drained` are
    /// drained: `host` itself, or else the first host of `cluster.hosts` that is not drained
    /// (none when every host is).
    pub fn placement<'a>(&'a self, host: &'a str, drained: &BTreeSet<String>) -> Option<&'a str> {
        if !drained.contains(host) {
            return Some(host);
        }
        self.cluster
            .as_ref()?
            .hosts
            .keys()
            .map(|h| h.value.as_str())
            .find(|h| !drained.contains(*h))
    }

    /// This host's view of the cluster while the hosts in `drained` are drained (`hostform
    /// drain`): a drained host's guests are placed on the first host of `cluster.hosts` that
    /// is not. None outside a cluster, or when nothing is drained.
    pub fn placed_with(&self, drained: &BTreeSet<String>) -> Option<Spec> {
        if self.cluster.is_none() || drained.is_empty() {
            return None;
        }
        let mut s = self.clone();
        s.place_guests_with(drained);
        Some(s)
    }

    fn place_guests_with(&mut self, drained: &BTreeSet<String>) {
        if self.cluster.is_none() {
            return;
        }
        // The guests and the stop order as written, kept for a placement with drained hosts.
        if self.as_written.is_none() {
            self.as_written = Some(Box::new((self.vms.clone(), self.shutdown.first.clone())));
        }
        let Some((vms, first)) = self.as_written.as_deref().cloned() else {
            return;
        };
        let here = self.host.value.clone();
        self.vms = vms;
        self.shutdown.first = first;
        self.elsewhere.clear();
        let mut placed = IndexMap::new();
        for (name, vm) in std::mem::take(&mut self.vms) {
            let on = vm.runs_on.as_ref().map(|r| {
                self.placement(&r.value, drained)
                    .unwrap_or(&r.value)
                    .to_string()
            });
            match on {
                Some(h) if h != here => {
                    self.elsewhere.insert(name.value.clone(), (h, vm));
                }
                _ => {
                    placed.insert(name, vm);
                }
            }
        }
        self.vms = placed;
        let kept: Vec<String> = self.vms.keys().map(|k| k.value.clone()).collect();
        for vm in self.vms.values_mut() {
            vm.depends_on.retain(|d| kept.contains(&d.value));
        }
        self.shutdown.first.retain(|d| kept.contains(&d.value));
    }

    /// Seconds the guest `name` may take to stop cleanly: its own `shutdown-timeout`, else
    /// the spec's `shutdown.timeout`, else [`DEFAULT_SHUTDOWN_TIMEOUT_SECS`].
    pub fn shutdown_timeout_secs(&self, name: &str) -> u64 {
        self.vms
            .get(name)
            .and_then(|vm| vm.shutdown_timeout.as_ref())
            .or(self.shutdown.timeout.as_ref())
            .map(|d| d.value.0)
            .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT_SECS)
    }
}

/// The host's own system.
///
/// ```yaml
/// root:
///   readonly: true   # / is mounted read-only: LVM changes are wrapped in remount rw/ro
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Root {
    /// `/` is mounted read-only. Commands that write LVM metadata (under /etc/lvm) run between
    /// `mount -o remount,rw /` and `mount -o remount,ro /`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
}

/// Whether a resource should exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    #[default]
    Present,
    /// Remove it (only with `--allow-destroy`, and never when `prevent-destroy` is set).
    Absent,
}

fn is_present(p: &Presence) -> bool {
    *p == Presence::Present
}

/// A physical disk, identified by a stable id, never by its kernel name (sdX can swap).
///
/// ```yaml
/// disks:
///   sda:
///     id: /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234
///     size: 8TB
///     partitions:
///       - { name: bios, size: 2MiB, type: bios-boot }
///       - { name: raid, size: rest, type: linux-raid }
///   sdb:
///     serial: 7SGK5678
///     like: sda
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Disk {
    /// Stable path: a name under /dev/disk/by-id/ (a WWN as `wwn-0x…`), or under
    /// /dev/disk/by-path/ for a disk with neither serial nor WWN (a virtio disk without a
    /// serial). Give `id` or `serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Name>,
    /// The disk's serial number, as `lsblk -o SERIAL` shows it. Give `id` or `serial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<Name>,
    /// Expected capacity. Optional: used to check that partitions and VGs fit, and as the
    /// size of the disk in `hostform sandbox`. The real disk must be at least this big.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Sp<Size>>,
    /// Partition table type. Only `gpt` is supported.
    #[serde(default, skip_serializing_if = "is_default")]
    pub table: TableType,
    /// Copy the partition layout of another disk (as `sfdisk -d sdb | sfdisk sda` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub like: Option<Name>,
    /// Partitions, in order on the disk.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<Partition>,
    /// Allow writing a partition table over existing signatures (a used disk): when the disk
    /// differs from the spec, its signatures are erased (`wipefs`, with `--allow-destroy`) and
    /// it is partitioned anew. Without it, hostform refuses to touch a disk that carries any
    /// signature it did not expect. Never on a disk in use.
    #[serde(default, skip_serializing_if = "is_false")]
    pub wipe: bool,
}

/// Partition table type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TableType {
    #[default]
    Gpt,
}

/// A GPT partition.
///
/// ```yaml
/// - { name: bios, size: 2MiB, type: bios-boot }
/// - { name: boot, size: 1GiB, type: linux-raid }
/// - { name: raid, size: rest, type: linux-raid }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Partition {
    /// GPT partition name (PARTLABEL), unique on the disk; referenced as `DISK/NAME`.
    pub name: Name,
    /// Size, or `rest` for the remaining space (last partition only).
    pub size: Sp<PartSize>,
    /// Partition type.
    #[serde(rename = "type")]
    pub kind: PartType,
    /// `absent` removes the partition (destructive).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// GPT partition types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PartType {
    /// BIOS boot partition for GRUB on GPT (EF02), 1–2 MiB, never in a RAID.
    BiosBoot,
    /// EFI system partition (EF00).
    Efi,
    /// Linux RAID member (FD00).
    LinuxRaid,
    /// LVM physical volume (8E00).
    Lvm,
    /// Linux swap (8200).
    Swap,
    /// Linux filesystem (8300).
    Linux,
}

impl PartType {
    /// The name used in specs.
    pub fn name(self) -> &'static str {
        match self {
            PartType::BiosBoot => "bios-boot",
            PartType::Efi => "efi",
            PartType::LinuxRaid => "linux-raid",
            PartType::Lvm => "lvm",
            PartType::Swap => "swap",
            PartType::Linux => "linux",
        }
    }

    /// The GPT type GUID, as sfdisk writes and reads it.
    pub fn guid(self) -> &'static str {
        match self {
            PartType::BiosBoot => "21686148-6449-6E6F-744E-656564454649",
            PartType::Efi => "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
            PartType::LinuxRaid => "A19D880F-05FC-4D3B-A006-743F0F84911E",
            PartType::Lvm => "E6D6D379-F507-44C2-A23C-238F2A3DF928",
            PartType::Swap => "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F",
            PartType::Linux => "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        }
    }
}

/// A Linux software RAID array (mdadm).
///
/// ```yaml
/// arrays:
///   md0:
///     level: 1
///     devices: [sda/raid, sdb/raid]
///     bootloader-on: [sda, sdb]
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Array {
    /// RAID level: 0, 1, 5, 6 or 10.
    pub level: Sp<RaidLevel>,
    /// Active members: partitions (`DISK/PART`) or whole disks (`DISK`).
    pub devices: Vec<Name>,
    /// Hot spares.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spares: Vec<Name>,
    /// Superblock format; `1.2` by default. Use `1.0` for a /boot array read by old loaders.
    #[serde(default, skip_serializing_if = "is_default")]
    pub metadata: MdMetadata,
    /// Disks to install the bootloader on (`grub-install /dev/DISK`) so either can boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bootloader_on: Vec<Name>,
    /// Allow creating the array over members that carry other signatures (erased first with
    /// `wipefs`, with `--allow-destroy`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub wipe: bool,
    /// Never remove this array, even if asked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// `absent` stops the array and clears its members' superblocks (destructive).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// RAID level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(into = "u8")]
pub enum RaidLevel {
    Raid0,
    Raid1,
    Raid5,
    Raid6,
    Raid10,
}

impl JsonSchema for RaidLevel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RaidLevel".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "RAID level: 0, 1, 5, 6 or 10 (`raid1` is accepted too).",
            "anyOf": [
                { "enum": [0, 1, 5, 6, 10] },
                { "type": "string", "pattern": "^(raid)?(0|1|5|6|10)$" }
            ]
        })
    }
}

impl From<RaidLevel> for u8 {
    fn from(l: RaidLevel) -> u8 {
        match l {
            RaidLevel::Raid0 => 0,
            RaidLevel::Raid1 => 1,
            RaidLevel::Raid5 => 5,
            RaidLevel::Raid6 => 6,
            RaidLevel::Raid10 => 10,
        }
    }
}

impl RaidLevel {
    /// Fewest active members mdadm accepts for a sound (non-degraded) array.
    pub fn min_devices(self) -> usize {
        match self {
            RaidLevel::Raid0 | RaidLevel::Raid1 | RaidLevel::Raid10 => 2,
            RaidLevel::Raid5 => 3,
            RaidLevel::Raid6 => 4,
        }
    }
    /// Usable size for `n` members of `member` bytes each (before metadata).
    pub fn capacity(self, n: u64, member: u64) -> u64 {
        match self {
            RaidLevel::Raid0 => n * member,
            RaidLevel::Raid1 => member,
            RaidLevel::Raid5 => n.saturating_sub(1) * member,
            RaidLevel::Raid6 => n.saturating_sub(2) * member,
            RaidLevel::Raid10 => n * member / 2,
        }
    }
}

impl<'de> Deserialize<'de> for RaidLevel {
    /// From the spec's YAML (where `1` and `raid1` both arrive as text) or from JSON snapshots
    /// (where the level is a number).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RaidLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a RAID level: 0, 1, 5, 6 or 10")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RaidLevel, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RaidLevel, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RaidLevel, E> {
                match s.trim().trim_start_matches("raid") {
                    "0" => Ok(RaidLevel::Raid0),
                    "1" => Ok(RaidLevel::Raid1),
                    "5" => Ok(RaidLevel::Raid5),
                    "6" => Ok(RaidLevel::Raid6),
                    "10" => Ok(RaidLevel::Raid10),
                    _ => Err(E::custom(format!(
                        "`{s}` is not a supported RAID level\nhint: use 0, 1, 5, 6 or 10"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// md superblock format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum MdMetadata {
    #[serde(rename = "0.90")]
    V090,
    #[serde(rename = "1.0")]
    V10,
    #[serde(rename = "1.1")]
    V11,
    #[default]
    #[serde(rename = "1.2")]
    V12,
}

impl JsonSchema for MdMetadata {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MdMetadata".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        // YAML reads an unquoted 1.0 as a number; the loader accepts both spellings.
        schemars::json_schema!({
            "description": "md superblock format: \"0.90\", \"1.0\", \"1.1\" or \"1.2\" (the default).",
            "anyOf": [
                { "enum": ["0.90", "1.0", "1.1", "1.2"] },
                { "enum": [0.9, 1.0, 1.1, 1.2] }
            ]
        })
    }
}

impl MdMetadata {
    pub fn as_str(self) -> &'static str {
        match self {
            MdMetadata::V090 => "0.90",
            MdMetadata::V10 => "1.0",
            MdMetadata::V11 => "1.1",
            MdMetadata::V12 => "1.2",
        }
    }
}

/// An LVM volume group with its logical volumes and snapshots.
///
/// ```yaml
/// volume-groups:
///   vg0:
///     pvs: [md0]
///     lvs:
///       dom0_root: { size: 20GiB, fs: ext4, pv: md0 }
///       dom0_swap: { size: 2GiB, fs: swap }
///       nas_home:  { size: 4TiB, fs: ext4, prevent-destroy: true }
///     snapshots:
///       dom0_root_snap1: { origin: dom0_root, size: 1GiB }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VolumeGroup {
    /// Physical volumes: arrays (`md0`), partitions (`sda/lvm`) or whole disks (`sdc`).
    pub pvs: Vec<Name>,
    /// A shared VG for a cluster (`vgcreate --shared`, lvmlockd + sanlock). Guests' LVs are
    /// then activated exclusively (`lvchange -aey`) on the host that runs them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared: bool,
    /// The lock manager of a shared VG (`vgcreate --shared --lock-type`); `sanlock`, the only
    /// one, by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_type: Option<Sp<LockType>>,
    /// The host of the cluster that creates a shared VG (`vgcreate --shared`); the others
    /// start its lockspace once it exists. The first of `cluster.hosts` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_on: Option<Name>,
    /// Physical extent size; LVM's default is 4MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extent_size: Option<Sp<Size>>,
    /// Logical volumes, keyed by LV name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lvs: IndexMap<Name, Lv>,
    /// Snapshots of LVs in this VG, keyed by snapshot name.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub snapshots: IndexMap<Name, Snapshot>,
    /// Thin pools of this VG, keyed by pool name, each with its thin LVs.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub thin_pools: IndexMap<Name, ThinPool>,
    /// Never remove this VG, even if asked; kept as a protection on the host (the LVM tag
    /// `hostform_prevent_destroy`) after it leaves the spec.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// `absent` removes the VG (destructive).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// A logical volume.
///
/// ```yaml
/// guest1_root:   { size: 2GiB, fs: ext4 }
/// guest1_swap:   { size: 1GiB, fs: swap }
/// pinned:        { size: 2GiB, pv: md0 }
/// data:          { size: 100%FREE, fs: xfs }
/// firewall_root: { image: images/firewall.vmdk }   # sized from the image, to the byte
/// archive:       { size: 1TiB, fs: ext4, readonly: true, prevent-destroy: true }
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Lv {
    /// Size: `20GiB`, exact bytes `1073741824B`, `50%VG` or `100%FREE`. Required unless
    /// `image` gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Sp<LvSize>>,
    /// Filesystem to create on the LV: ext4, xfs, swap or none (the default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub fs: Filesystem,
    /// Place the LV on this PV of the VG (`lvcreate ... vg0 /dev/md0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv: Option<Name>,
    /// Read-only permission (`lvchange -pr`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
    /// Create the LV from a disk image (raw, qcow2, vmdk…), relative to the spec file and
    /// inside its repository; the LV gets the image's exact virtual size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Name>,
    /// Allow shrinking this LV and its ext4 when the spec's size is smaller (with
    /// `--allow-destroy`). Without it, a smaller size is an error, never a shrink. A mounted
    /// filesystem is never shrunk; xfs and swap are not shrunk.
    #[serde(default, skip_serializing_if = "is_false")]
    pub allow_shrink: bool,
    /// Allow creating the filesystem over an existing signature (erased first with `wipefs`,
    /// with `--allow-destroy`; never while the LV is in use).
    #[serde(default, skip_serializing_if = "is_false")]
    pub wipe: bool,
    /// Never remove this LV, even if asked; kept as a protection on the host (the LVM tag
    /// `hostform_prevent_destroy`) after the LV leaves the spec.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// Mount the LV's filesystem (ext4 or xfs): its /etc/fstab line, by UUID, in hostform's
    /// marked section, and mounted. Removing the field removes the line (it does not unmount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<Mount>,
    /// `absent` removes the LV (destructive).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// Where and how an LV's filesystem is mounted.
///
/// ```yaml
/// srv: { size: 100GiB, fs: ext4, mount: { path: /srv, options: "noatime,nodev" } }
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mount {
    /// An absolute path, without `.` or `..` parts, spaces or control characters: `/srv`.
    pub path: Name,
    /// fstab options, comma-separated: `defaults` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Name>,
}

/// A thin pool (`lvcreate --type thin-pool`): space that thin LVs take as they are written,
/// so their virtual sizes may add up to more than the pool holds.
///
/// ```yaml
/// thin-pools:
///   pool0:
///     size: 100GiB
///     chunk-size: 64KiB
///     metadata-size: 128MiB
///     lvs:
///       web_root: { size: 40GiB, fs: ext4 }
///       web_data: { size: 200GiB }
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThinPool {
    /// Size of the pool's data space (`-L`). Grown with `lvextend`; never shrunk (LVM cannot
    /// shrink a thin pool). Required unless `state: absent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Sp<Size>>,
    /// Chunk size (`--chunksize`): a power of two from 64KiB to 1GiB; LVM chooses when omitted.
    /// Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<Sp<Size>>,
    /// Size of the pool's metadata (`--poolmetadatasize`), 2MiB to 16GiB; LVM chooses when
    /// omitted. Grown with `lvextend --poolmetadatasize`, never shrunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_size: Option<Sp<Size>>,
    /// Thin LVs in this pool, keyed by LV name (the VG's LV namespace).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub lvs: IndexMap<Name, ThinLv>,
    /// Never remove this pool, even if asked; kept as a protection on the host (the LVM tag
    /// `hostform_prevent_destroy`) after it leaves the spec.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// `absent` removes the pool (destructive); its thin LVs must be absent too.
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// A thin LV (`lvcreate --type thin`): a virtual size, backed by its pool as it is written.
///
/// ```yaml
/// web_root: { size: 40GiB, fs: ext4 }
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ThinLv {
    /// Virtual size (`-V`): what the LV shows, not what it takes from the pool. Grown with
    /// `lvextend` (and its filesystem with it); never shrunk. Required unless `state: absent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Sp<Size>>,
    /// Filesystem to create on the LV: ext4, xfs, swap or none (the default).
    #[serde(default, skip_serializing_if = "is_default")]
    pub fs: Filesystem,
    /// Never remove this LV, even if asked; kept as a protection on the host (the LVM tag
    /// `hostform_prevent_destroy`) after it leaves the spec.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// `absent` removes the thin LV (destructive).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

impl VolumeGroup {
    /// A thin LV of this VG by name, with the name of its pool.
    pub fn thin_lv(&self, name: &str) -> Option<(&Name, &ThinLv)> {
        self.thin_pools
            .iter()
            .find_map(|(p, pool)| pool.lvs.get(name).map(|l| (p, l)))
    }
}

/// Filesystem (or swap) created on a volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Filesystem {
    #[default]
    None,
    Ext4,
    Xfs,
    Swap,
}

/// A copy-on-write snapshot of an LV.
///
/// ```yaml
/// snapshots:
///   guest1_root_snap1: { origin: guest1_root, size: 1GiB }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Snapshot {
    /// The LV (in the same VG) it is a snapshot of.
    pub origin: Name,
    /// Space reserved for changes.
    pub size: Sp<Size>,
    /// `absent` drops the snapshot (`lvremove`); `merged` merges it back into its origin
    /// (`lvconvert --merge`), which then holds the snapshot's content again.
    #[serde(default, skip_serializing_if = "snapshot_present")]
    pub state: SnapshotState,
}

/// What becomes of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    #[default]
    Present,
    /// Drop it (only with `--allow-destroy`).
    Absent,
    /// Merge it back into its origin (`lvconvert --merge`): the origin returns to the state it
    /// had when the snapshot was taken, and the snapshot is gone. Only with `--allow-destroy`
    /// (what the origin got since is lost), and only while neither is open.
    Merged,
}

fn snapshot_present(s: &SnapshotState) -> bool {
    *s == SnapshotState::Present
}

/// Which program persists the network configuration.
///
/// ```yaml
/// network:
///   manager: ifupdown
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Network {
    /// `auto` (detect), `ifupdown` (/etc/network/interfaces.d) or `networkd`
    /// (/etc/systemd/network).
    #[serde(default, skip_serializing_if = "is_default")]
    pub manager: NetManager,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NetManager {
    #[default]
    Auto,
    Ifupdown,
    Networkd,
}

/// A Linux bridge; guests' NICs become its ports.
///
/// ```yaml
/// bridges:
///   br0:
///     ports: [eth0]
///     addresses: [192.168.1.10/24]
///     gateway: 192.168.1.1
///     stp: false
///     mtu: 1500
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Bridge {
    /// Physical interfaces enslaved to the bridge. Their addresses move to the bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Name>,
    /// The bridge's addresses, with prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Sp<Cidr>>,
    /// Default gateway through this bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<Sp<Ip>>,
    /// Spanning tree protocol; off by default.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stp: bool,
    /// MTU in bytes (68 to 65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<Sp<u32>>,
    /// Never remove this bridge, even if asked.
    #[serde(default, skip_serializing_if = "is_false")]
    pub prevent_destroy: bool,
    /// `absent` removes the bridge (only with `--allow-destroy`).
    #[serde(default, skip_serializing_if = "is_present")]
    pub state: Presence,
}

/// Xen toolstack settings.
///
/// ```yaml
/// xen:
///   config-dir: /etc/xen/guest
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct XenSettings {
    /// Where guests' xl config files live; `/etc/xen` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_dir: Option<Name>,
}

/// libvirt settings.
///
/// ```yaml
/// libvirt:
///   uri: qemu:///system
///   domain-type: kvm
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LibvirtSettings {
    /// Connection URI; `qemu:///system` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<Name>,
    /// `kvm` (hardware virtualization, the default) or `qemu` (software emulation: a nested
    /// test host without KVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain_type: Option<Sp<DomainType>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DomainType {
    #[default]
    Kvm,
    Qemu,
}

/// A guest. Every field may come from `vm-defaults` or a template; a VM's own fields win.
///
/// ```yaml
/// vms:
///   guest1:
///     template: debian
///     memory: 2GiB
///     vcpus: 2
///     boot: { loader: pygrub, kernel: /vmlinuz, ramdisk: /initrd.img, root: /dev/xvda1 ro }
///     disks:
///       - { lv: vg0/guest1_root, target: xvda1 }
///       - { lv: vg0/guest1_var, target: xvda2 }
///     nics: [{ bridge: br0, mac: "00:16:3e:00:00:01" }]
///     depends-on: [firewall, srvnfs]
/// ```
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Vm {
    /// Name of a `vm-templates` entry whose fields this VM starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Name>,
    /// `xen` (xl) or `libvirt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hypervisor: Option<Sp<Hypervisor>>,
    /// Memory: `512MiB`, `2GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Sp<Size>>,
    /// Virtual CPUs; 1 by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<Sp<u32>>,
    /// How the guest boots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<Boot>,
    /// Disks, in order: each an LV of the host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<VmDisk>,
    /// Network interfaces, each a port of a bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<VmNic>,
    /// `running` (the default), `stopped`, or `absent` (undefined; its LVs are kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<VmState>,
    /// Start with the host. Defaults to true for running guests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autostart: Option<bool>,
    /// Guests this one needs: it starts after them and stops before them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Name>,
    /// The host of the cluster that runs this guest (its LVs active exclusively there); the
    /// other hosts' plans leave it alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_on: Option<Name>,
    /// How the guest moves when its `runs-on` names another host: `live` (the default) or
    /// `cold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Sp<Migration>>,
    /// How long a clean shutdown may take before `shutdown.on-timeout` applies; overrides
    /// `shutdown.timeout` for this guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_timeout: Option<Sp<Duration>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Hypervisor {
    Xen,
    Libvirt,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum VmState {
    #[default]
    Running,
    Stopped,
    Absent,
}

/// How a guest boots: through pygrub (Xen), a kernel from the host, or firmware.
///
/// ```yaml
/// boot: { loader: pygrub, kernel: /vmlinuz, ramdisk: /initrd.img, root: /dev/xvda1 ro }
/// boot: { kernel: /boot/guests/vmlinuz, ramdisk: /boot/guests/initrd.img, root: /dev/xvda1 ro, args: console=hvc0 }
/// boot: { firmware: uefi }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Boot {
    /// `pygrub`: read the kernel from the guest's own disk (Xen). `kernel`/`ramdisk` are then
    /// paths inside the guest, passed as pygrub's `--kernel`/`--ramdisk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loader: Option<Loader>,
    /// Kernel path: in the guest with `loader: pygrub`, on the host otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Name>,
    /// Initial ramdisk path (same rule as `kernel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramdisk: Option<Name>,
    /// Root device and options, as the kernel command line's `root=`: `/dev/xvda1 ro`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<Name>,
    /// Extra kernel command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Name>,
    /// Boot through firmware (`bios` or `uefi`) from the first disk instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firmware: Option<Sp<Firmware>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Loader {
    Pygrub,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Firmware {
    Bios,
    Uefi,
}

/// A guest disk backed by an LV of the host.
///
/// ```yaml
/// - { lv: vg0/guest1_root, target: xvda1 }
/// - { lv: vg0/shared_data, target: xvdb, readonly: true }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmDisk {
    /// The LV as `VG/LV`.
    pub lv: Name,
    /// Device name inside the guest: `xvda`, `xvda1` (Xen), `vda`, `sda` (libvirt).
    pub target: Name,
    /// Attach read-only (xl `r`, libvirt `<readonly/>`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
}

/// A guest NIC, a port of a host bridge.
///
/// ```yaml
/// - { bridge: br0, mac: "00:16:3e:00:00:01" }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VmNic {
    /// The bridge, one of this spec's `bridges`.
    pub bridge: Name,
    /// Fixed MAC address; generated by the hypervisor when absent. Quote it in YAML.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Sp<Mac>>,
}

/// Ordered shutdown of the guests.
///
/// ```yaml
/// shutdown:
///   timeout: 120s
///   on-timeout: destroy
///   first: [firewall-slave]
///   unknown-guests: first
/// ```
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Shutdown {
    /// How long each guest may take to stop cleanly; 300s by default (as xendomains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Sp<Duration>>,
    /// What to do with a guest still running after its timeout.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_timeout: OnTimeout,
    /// Guests stopped first, in the background, before the ordered batches (a passive HA peer).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first: Vec<Name>,
    /// Running guests that are not in the spec: stop them `first` (the default), `last`,
    /// or `leave` them running.
    #[serde(default, skip_serializing_if = "is_default")]
    pub unknown_guests: UnknownGuests,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OnTimeout {
    /// Force it off (`xl destroy`, `virsh destroy`).
    #[default]
    Destroy,
    /// Keep waiting, and say so.
    Wait,
    /// Stop the sequence and exit with an error, leaving the rest running.
    Fail,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownGuests {
    #[default]
    First,
    Last,
    Leave,
}
