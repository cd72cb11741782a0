//! Semantic checks on a decoded spec: names, references, devices used twice, capacity,
//! RAID geometry, dependency cycles. Every problem is collected; nothing stops at the first.

use std::collections::{BTreeMap, BTreeSet};

use super::de::Sp;
use super::load::Broken;
use super::names;
use super::types::*;
use super::units::{LvSize, MIB, PartSize};
use crate::diag::{Diagnostic, Span, did_you_mean};

/// What a device reference (`md0`, `sda/raid`, `sdc`) designates.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceRef {
    Disk(String),
    Partition(String, String),
    Array(String),
}

impl std::fmt::Display for DeviceRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceRef::Disk(d) => write!(f, "disk {d}"),
            DeviceRef::Partition(d, p) => write!(f, "partition {d}/{p}"),
            DeviceRef::Array(a) => write!(f, "array {a}"),
        }
    }
}

struct Ctx<'a> {
    spec: &'a Spec,
    broken: &'a Broken,
    out: Vec<Diagnostic>,
}

fn split_rule(msg: String) -> (String, Option<String>) {
    match msg.split_once("\nhint: ") {
        Some((m, h)) => (m.to_string(), Some(h.to_string())),
        None => (msg, None),
    }
}

impl Ctx<'_> {
    fn error(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.out.push(Diagnostic::error(msg).code(code).at(span));
        self.out.last_mut().expect("just pushed")
    }
    fn warn(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.out.push(Diagnostic::warning(msg).code(code).at(span));
        self.out.last_mut().expect("just pushed")
    }
    fn rule(&mut self, r: Result<(), String>, span: Span) {
        if let Err(m) = r {
            let (m, h) = split_rule(m);
            let d = self.error("name", span, m);
            d.hint = h;
        }
    }

    /// "did you mean" among the LVs of `vg`, including those that failed to decode.
    fn lv_hint(&self, vgname: &str, vg: &VolumeGroup, lv: &str) -> Option<String> {
        let prefix = format!("{vgname}/");
        did_you_mean(
            lv,
            vg.lvs
                .keys()
                .chain(vg.thin_pools.values().flat_map(|p| p.lvs.keys()))
                .map(|k| k.value.as_str())
                .chain(
                    self.broken
                        .lvs
                        .iter()
                        .filter_map(|k| k.strip_prefix(prefix.as_str())),
                ),
        )
    }

    /// Resolve a device reference; reports dangling and ambiguous ones.
    fn device(&mut self, r: &Sp<String>) -> Option<DeviceRef> {
        let s = r.value.as_str();
        if let Some((d, p)) = s.split_once('/') {
            if let Some(disk) = self.spec.disks.get(d) {
                if disk.partitions.iter().any(|x| x.name.value == p) {
                    return Some(DeviceRef::Partition(d.into(), p.into()));
                }
                if !self.broken.partitions.contains(s) {
                    let cands: Vec<String> = disk
                        .partitions
                        .iter()
                        .map(|x| x.name.value.clone())
                        .collect();
                    let h = did_you_mean(p, cands.iter().map(String::as_str))
                        .map(|h| {
                            h.replace('`', "")
                                .replace("did you mean ", &format!("did you mean `{d}/"))
                                .replace('?', "`?")
                        })
                        .unwrap_or_else(|| {
                            format!(
                                "partitions of {d}: {}",
                                if cands.is_empty() {
                                    "none".into()
                                } else {
                                    cands.join(", ")
                                }
                            )
                        });
                    self.error(
                        "dangling",
                        r.span,
                        format!("disk `{d}` has no partition `{p}`"),
                    )
                    .hint = Some(h);
                }
                return None;
            }
            if !self.broken.disks.contains(d) {
                let h = did_you_mean(d, self.spec.disks.keys().map(|k| k.value.as_str()));
                self.error(
                    "dangling",
                    r.span,
                    format!("`{s}` names no disk of this spec"),
                )
                .hint = Some(h.unwrap_or_else(|| "declare the disk under `disks`".into()));
            }
            return None;
        }
        let is_disk = self.spec.disks.contains_key(s);
        let is_array = self.spec.arrays.contains_key(s);
        match (is_disk, is_array) {
            (true, true) => {
                self.error(
                    "ambiguous",
                    r.span,
                    format!("`{s}` is both a disk and an array"),
                )
                .hint = Some("rename one of them".into());
                None
            }
            (true, false) => Some(DeviceRef::Disk(s.into())),
            (false, true) => Some(DeviceRef::Array(s.into())),
            _ => {
                if !self.broken.disks.contains(s) && !self.broken.arrays.contains(s) {
                    let cands: Vec<&str> = self
                        .spec
                        .disks
                        .keys()
                        .chain(self.spec.arrays.keys())
                        .map(|k| k.value.as_str())
                        .collect();
                    let h = did_you_mean(s, cands.iter().copied()).unwrap_or_else(|| {
                        "a device is an array (`md0`), a partition (`DISK/PART`) or a disk (`DISK`)".into()
                    });
                    self.error(
                        "dangling",
                        r.span,
                        format!("`{s}` names no disk, partition or array of this spec"),
                    )
                    .hint = Some(h);
                }
                None
            }
        }
    }

    /// Estimated usable size of a device, when the spec gives enough sizes.
    fn device_size(&self, d: &DeviceRef) -> Option<u64> {
        self.device_size_at(d, 0)
    }

    fn device_size_at(&self, d: &DeviceRef, depth: u8) -> Option<u64> {
        // Arrays may stack (RAID1 over RAID0); a loop among them is reported elsewhere.
        if depth > 8 {
            return None;
        }
        match d {
            DeviceRef::Disk(n) => self.spec.disks.get(n.as_str())?.size.map(|s| s.value.0),
            DeviceRef::Partition(dn, pn) => {
                let disk = self.spec.disks.get(dn.as_str())?;
                let p = disk.partitions.iter().find(|p| p.name.value == *pn)?;
                match p.size.value {
                    PartSize::Bytes(b) => Some(b.0),
                    PartSize::Rest => {
                        let total = disk.size?.value.0;
                        let used: u64 = disk
                            .partitions
                            .iter()
                            .filter_map(|q| match q.size.value {
                                PartSize::Bytes(b) => Some(b.0),
                                PartSize::Rest => None,
                            })
                            .sum();
                        // 1 MiB alignment at the start, 1 MiB for the backup GPT at the end.
                        Some(total.saturating_sub(used).saturating_sub(2 * MIB))
                    }
                }
            }
            DeviceRef::Array(a) => {
                let arr = self.spec.arrays.get(a.as_str())?;
                let mut sizes = Vec::new();
                for m in &arr.devices {
                    let r = resolve_quiet(self.spec, &m.value)?;
                    sizes.push(self.device_size_at(&r, depth + 1)?);
                }
                let min = *sizes.iter().min()?;
                // md 1.2 superblock and bitmap: reserve a little per member.
                let member = min.saturating_sub(min / 1000).saturating_sub(8 * MIB);
                Some(arr.level.value.capacity(sizes.len() as u64, member))
            }
        }
    }
}

/// Resolve without reporting (for size estimates after references were checked).
fn resolve_quiet(spec: &Spec, s: &str) -> Option<DeviceRef> {
    if let Some((d, p)) = s.split_once('/') {
        let disk = spec.disks.get(d)?;
        disk.partitions
            .iter()
            .any(|x| x.name.value == p)
            .then(|| DeviceRef::Partition(d.into(), p.into()))
    } else if spec.arrays.contains_key(s) {
        Some(DeviceRef::Array(s.into()))
    } else if spec.disks.contains_key(s) {
        Some(DeviceRef::Disk(s.into()))
    } else {
        None
    }
}

pub fn validate(spec: &Spec, broken: &Broken) -> Vec<Diagnostic> {
    let mut c = Ctx {
        spec,
        broken,
        out: Vec::new(),
    };
    c.rule(names::host(&spec.host), spec.host.span);
    disks(&mut c);
    let mut consumers: BTreeMap<DeviceRef, (String, Span)> = BTreeMap::new();
    arrays(&mut c, &mut consumers);
    array_cycles(&mut c);
    volume_groups(&mut c, &mut consumers);
    whole_disks(&mut c, &consumers);
    bridges(&mut c);
    vms(&mut c);
    settings(&mut c);
    shutdown(&mut c);
    protection_conflicts(&mut c);
    cluster(&mut c);
    c.out
}

/// A cluster: distinct sanlock host_ids within 1-2000, this host among its hosts, and every
/// `runs-on` and `init-on` naming one of them.
fn cluster(c: &mut Ctx) {
    let spec = c.spec;
    let Some(cl) = &spec.cluster else {
        for (name, vm) in &spec.vms {
            if let Some(r) = &vm.runs_on {
                c.error(
                    "cluster",
                    r.span,
                    format!(
                        "guest `{}` has `runs-on` but the spec has no `cluster`",
                        name.value
                    ),
                )
                .hint = Some(
                    "describe the hosts in `cluster.hosts`, in a file every host includes".into(),
                );
            }
        }
        for (name, vg) in &spec.volume_groups {
            if let Some(i) = &vg.init_on {
                c.error(
                    "cluster",
                    i.span,
                    format!(
                        "volume group `{}` has `init-on` but the spec has no `cluster`",
                        name.value
                    ),
                );
            }
        }
        return;
    };
    let mut seen: BTreeMap<u32, &Name> = BTreeMap::new();
    for (h, host) in &cl.hosts {
        c.rule(names::host(h), h.span);
        let id = host.host_id.value;
        if !(1..=2000).contains(&id) {
            c.error(
                "cluster",
                host.host_id.span,
                format!(
                    "host `{}`: host-id {id} is outside sanlock's 1-2000",
                    h.value
                ),
            );
        }
        if let Some(a) = &host.address
            && a.value.parse::<std::net::IpAddr>().is_err()
            && names::host(&a.value).is_err()
        {
            c.error(
                "cluster",
                a.span,
                format!(
                    "host `{}`: address `{}` is neither an IP address nor a host name",
                    h.value, a.value
                ),
            )
            .hint = Some("an IPv4 or IPv6 address, or a name of letters, digits, hyphens and dots (RFC 1123): it reaches ssh's argv and libvirt's URI".into());
        }
        if let Some(prev) = seen.get(&id) {
            c.error("cluster", host.host_id.span, format!("host-id {id} is used by both `{}` and `{}`", prev.value, h.value))
                .hint = Some("each host of a cluster needs its own sanlock host_id: two hosts with one id take each other's leases".into());
        } else {
            seen.insert(id, h);
        }
    }
    if !cl.hosts.keys().any(|h| h.value == spec.host.value) {
        c.error(
            "cluster",
            spec.host.span,
            format!(
                "host `{}` is not one of the cluster's hosts",
                spec.host.value
            ),
        )
        .hint = Some(format!(
            "add it to `cluster.hosts` (now: {})",
            cl.hosts
                .keys()
                .map(|k| k.value.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let known = |n: &Name| cl.hosts.keys().any(|h| h.value == n.value);
    for (name, vm) in &spec.vms {
        if let Some(r) = &vm.runs_on
            && !known(r)
        {
            c.error(
                "cluster",
                r.span,
                format!(
                    "guest `{}` runs on `{}`, which is not a host of the cluster",
                    name.value, r.value
                ),
            );
        }
    }
    for (name, vg) in &spec.volume_groups {
        if let Some(i) = &vg.init_on
            && !known(i)
        {
            c.error(
                "cluster",
                i.span,
                format!(
                    "volume group `{}` is initialised on `{}`, which is not a host of the cluster",
                    name.value, i.value
                ),
            );
        }
        if !vg.shared && (vg.init_on.is_some() || vg.lock_type.is_some()) {
            let span = vg
                .init_on
                .as_ref()
                .map(|i| i.span)
                .or(vg.lock_type.as_ref().map(|l| l.span))
                .unwrap_or(name.span);
            c.error(
                "cluster",
                span,
                format!(
                    "volume group `{}` has `init-on` or `lock-type` but is not `shared: true`",
                    name.value
                ),
            );
        }
    }
}

/// The smallest device each filesystem's tool formats: mkfs.xfs (xfsprogs 5.19 and later)
/// refuses filesystems under 300 MiB; mkfs.ext4 cannot lay out a superblock in 32 KiB and
/// formats 64 KiB (measured on this project's build machine, e2fsprogs); mkswap needs 40 KiB
/// ("swap area needs to be at least 40 KiB", util-linux).
pub fn fs_minimum(fs: Filesystem) -> Option<(&'static str, u64, &'static str)> {
    match fs {
        Filesystem::Xfs => Some(("mkfs.xfs", 300 * MIB, "300MiB")),
        Filesystem::Ext4 => Some(("mkfs.ext4", 64 * 1024, "64KiB")),
        Filesystem::Swap => Some(("mkswap", 40 * 1024, "40KiB")),
        Filesystem::None => None,
    }
}

fn fs_name(fs: Filesystem) -> &'static str {
    match fs {
        Filesystem::Xfs => "xfs",
        Filesystem::Ext4 => "ext4",
        Filesystem::Swap => "swap",
        Filesystem::None => "none",
    }
}

/// The URIs `libvirt.uri` may name: local daemons only. Remote transports (`ssh`, `tls`,
/// `tcp`, `libssh`) act on another host than the one this spec describes, and `ext` runs an
/// arbitrary program.
pub const LOCAL_LIBVIRT_URIS: [&str; 3] = ["qemu:///system", "qemu:///session", "xen:///system"];

/// Directories other software reads as its own configuration: `xen.config-dir` may not be one
/// of them (nor inside the network or systemd ones), or the xl configs written there would be
/// read as that software's configuration.
const FOREIGN_DIRS: [&str; 16] = [
    "/",
    "/etc",
    "/etc/default",
    "/etc/network",
    "/etc/systemd",
    "/etc/libvirt",
    "/etc/NetworkManager",
    "/etc/netplan",
    "/etc/modprobe.d",
    "/etc/sysctl.d",
    "/etc/udev",
    "/etc/cron.d",
    "/etc/sudoers.d",
    "/etc/profile.d",
    "/etc/apt",
    "/etc/lvm",
];

/// `xen.config-dir`: absolute, normalized, and not another tool's directory.
pub fn config_dir(dir: &str) -> Result<(), String> {
    let shown = crate::diag::visible(dir);
    if !dir.starts_with('/') {
        return Err(format!(
            "`{shown}` is not an absolute path\nhint: xl configs are written there by apply; give an absolute directory such as /etc/xen/guests"
        ));
    }
    let trimmed = dir.trim_end_matches('/');
    if trimmed
        .split('/')
        .skip(1)
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!(
            "`{shown}` is not a normalized path\nhint: write it without `.`, `..` or `//`, e.g. /etc/xen/guests"
        ));
    }
    let norm = if trimmed.is_empty() { "/" } else { trimmed };
    let foreign = FOREIGN_DIRS.iter().find(|f| {
        **f == norm
            || (matches!(
                **f,
                "/etc/network"
                    | "/etc/systemd"
                    | "/etc/libvirt"
                    | "/etc/NetworkManager"
                    | "/etc/netplan"
                    | "/etc/udev"
                    | "/etc/lvm"
                    | "/etc/apt"
            ) && norm.starts_with(&format!("{f}/")))
    });
    let foreign = foreign.copied().or_else(|| {
        ["/etc/network", "/etc/systemd"]
            .into_iter()
            .find(|f| norm.starts_with(f))
    });
    if let Some(f) = foreign {
        return Err(format!(
            "`{shown}` is {}, which other software reads\nhint: use /etc/xen or a directory of its own, e.g. /etc/xen/guests",
            if f == norm {
                "a directory".to_string()
            } else {
                format!("inside {f}")
            }
        ));
    }
    for p in ["/proc", "/sys", "/dev", "/run", "/boot"] {
        if norm == p || norm.starts_with(&format!("{p}/")) {
            return Err(format!(
                "`{shown}` is under {p}, not a place for configuration\nhint: use /etc/xen or a directory of its own, e.g. /etc/xen/guests"
            ));
        }
    }
    Ok(())
}

fn settings(c: &mut Ctx) {
    if let Some(u) = &c.spec.libvirt.uri
        && !LOCAL_LIBVIRT_URIS.contains(&u.value.as_str())
    {
        c.error(
            "uri",
            u.span,
            format!(
                "`{}` is not a local libvirt URI",
                crate::diag::visible(&u.value)
            ),
        )
        .hint = Some(format!(
            "hostform manages this host only: use one of {}",
            LOCAL_LIBVIRT_URIS.join(", ")
        ));
    }
    if let Some(d) = &c.spec.xen.config_dir
        && let Err(m) = config_dir(&d.value)
    {
        let (m, h) = split_rule(m);
        c.error("path", d.span, format!("xen.config-dir {m}")).hint = h;
    }
}

/// `prevent-destroy` and `state: absent` on one resource contradict each other.
fn protection_conflicts(c: &mut Ctx) {
    let mut found: Vec<(Span, String)> = Vec::new();
    for (n, a) in &c.spec.arrays {
        if a.prevent_destroy && a.state == Presence::Absent {
            found.push((n.span, format!("array `{n}`")));
        }
    }
    for (n, vg) in &c.spec.volume_groups {
        if vg.prevent_destroy && vg.state == Presence::Absent {
            found.push((n.span, format!("volume group `{n}`")));
        }
        for (l, lv) in &vg.lvs {
            if lv.prevent_destroy && lv.state == Presence::Absent {
                found.push((l.span, format!("logical volume `{n}/{l}`")));
            }
        }
    }
    for (n, b) in &c.spec.bridges {
        if b.prevent_destroy && b.state == Presence::Absent {
            found.push((n.span, format!("bridge `{n}`")));
        }
    }
    for (span, what) in found {
        c.error(
            "conflict",
            span,
            format!("{what} is both `prevent-destroy` and `state: absent`"),
        )
        .hint = Some(
            "remove `prevent-destroy` first (in its own reviewed change) if it really must go"
                .into(),
        );
    }
}

/// A disk `id`: one name (no `/`, not `.` or `..`) directly under /dev/disk/by-id/ or
/// /dev/disk/by-path/.
fn disk_id_ok(id: &str) -> bool {
    ["/dev/disk/by-id/", "/dev/disk/by-path/"].iter().any(|p| {
        id.strip_prefix(p).is_some_and(|n| {
            !n.is_empty()
                && n != "."
                && n != ".."
                && !n.contains('/')
                && n.chars().all(|c| c.is_ascii_graphic())
        })
    })
}

fn disks(c: &mut Ctx) {
    let mut ids: BTreeMap<String, Span> = BTreeMap::new();
    for (name, disk) in &c.spec.disks {
        c.rule(names::simple(name, "disk", 64), name.span);
        match (&disk.id, &disk.serial) {
            (None, None) => {
                c.error("identity", name.span, format!("disk `{name}` has neither `id` nor `serial`")).hint =
                    Some("identify disks by a stable id (/dev/disk/by-id/…) or serial: kernel names like sda can change between boots".into());
            }
            (Some(id), _) if !disk_id_ok(&id.value) => {
                c.error(
                    "identity",
                    id.span,
                    format!("disk id `{id}` is not a name under /dev/disk/by-id/ or /dev/disk/by-path/"),
                )
                .hint = Some(
                    "use the disk's /dev/disk/by-id/ path (ls -l /dev/disk/by-id; a WWN as /dev/disk/by-id/wwn-0x…), its /dev/disk/by-path/ path, or `serial:`"
                        .into(),
                );
            }
            _ => {}
        }
        for key in [&disk.id, &disk.serial].into_iter().flatten() {
            if let Some(prev) = ids.insert(key.value.clone(), key.span) {
                c.error(
                    "duplicate",
                    key.span,
                    format!("`{key}` identifies two disks"),
                )
                .related
                .push((prev, "first used here".into()));
            }
        }
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        let n = disk.partitions.len();
        let mut fixed: u64 = 0;
        let mut has_rest = false;
        for (i, p) in disk.partitions.iter().enumerate() {
            c.rule(names::simple(&p.name, "partition", 36), p.name.span);
            if let Some(prev) = seen.insert(p.name.value.as_str(), p.name.span) {
                c.error(
                    "duplicate",
                    p.name.span,
                    format!("disk `{name}` has two partitions named `{}`", p.name),
                )
                .related
                .push((prev, "first defined here".into()));
            }
            match p.size.value {
                PartSize::Rest if i + 1 != n => {
                    c.error(
                        "size",
                        p.size.span,
                        "`rest` is allowed only for the last partition",
                    )
                    .hint = Some("give this partition a size, or move it to the end".into());
                }
                PartSize::Rest => has_rest = true,
                PartSize::Bytes(b) if b.0 == 0 => {
                    c.error("size", p.size.span, "a partition cannot be empty");
                }
                PartSize::Bytes(b) => fixed = fixed.saturating_add(b.0),
            }
        }
        if let Some(size) = disk.size {
            let room = size.value.0.saturating_sub(2 * MIB);
            if fixed > room || (has_rest && fixed >= room) {
                c.error("capacity", size.span, format!(
                    "the partitions of `{name}` need {} but the disk holds {}",
                    super::units::human(fixed + if has_rest { MIB } else { 0 }),
                    super::units::human(size.value.0)
                )).hint = Some("shrink the partitions or correct the disk size (2 MiB go to alignment and the GPT backup)".into());
            }
        }
    }
}

fn consume(
    c: &mut Ctx,
    consumers: &mut BTreeMap<DeviceRef, (String, Span)>,
    dev: DeviceRef,
    by: String,
    span: Span,
) {
    if let Some((prev_by, prev_span)) = consumers.get(&dev) {
        let msg = format!("{dev} is used twice: by {prev_by} and by {by}");
        let prev_by = prev_by.clone();
        let prev_span = *prev_span;
        c.error("used-twice", span, msg)
            .related
            .push((prev_span, format!("already used by {prev_by}")));
        c.out.last_mut().expect("pushed").hint =
            Some("a device can belong to one array or volume group only".into());
        return;
    }
    consumers.insert(dev, (by, span));
}

fn arrays(c: &mut Ctx, consumers: &mut BTreeMap<DeviceRef, (String, Span)>) {
    for (name, arr) in &c.spec.arrays {
        c.rule(names::array(name), name.span);
        let level = arr.level.value;
        if arr.devices.len() < level.min_devices() {
            c.error(
                "raid-members",
                arr.level.span,
                format!(
                    "RAID{} needs at least {} devices; `{name}` has {}",
                    u8::from(level),
                    level.min_devices(),
                    arr.devices.len()
                ),
            )
            .hint = Some("add members, or choose another level".into());
        }
        if level == RaidLevel::Raid1 && arr.devices.len() > 4 {
            c.warn(
                "raid-members",
                arr.level.span,
                format!("RAID1 `{name}` mirrors {} copies", arr.devices.len()),
            );
        }
        if level == RaidLevel::Raid0 && !arr.spares.is_empty() {
            c.error(
                "raid-members",
                arr.spares[0].span,
                "RAID0 cannot have spares",
            )
            .hint = Some("a RAID0 array has no redundancy to rebuild".into());
        }
        let mut members: BTreeSet<String> = BTreeSet::new();
        for m in arr.devices.iter().chain(&arr.spares) {
            let Some(dev) = c.device(m) else { continue };
            match &dev {
                DeviceRef::Array(a) if a == &name.value => {
                    c.error(
                        "cycle",
                        m.span,
                        format!("array `{name}` cannot contain itself"),
                    );
                    continue;
                }
                DeviceRef::Partition(d, p) => {
                    members.insert(d.clone());
                    let kind = c
                        .spec
                        .disks
                        .get(d.as_str())
                        .and_then(|x| x.partitions.iter().find(|q| q.name.value == *p))
                        .map(|q| q.kind);
                    if let Some(k) = kind
                        && !matches!(k, PartType::LinuxRaid | PartType::BiosBoot)
                    {
                        c.warn(
                            "part-type",
                            m.span,
                            format!("partition {d}/{p} is of type {}, not linux-raid", k.name()),
                        )
                        .hint = Some("set `type: linux-raid` on RAID members".into());
                    }
                    if kind == Some(PartType::BiosBoot) {
                        c.error(
                            "part-type",
                            m.span,
                            format!("{d}/{p} is a BIOS boot partition; it must stay out of RAID"),
                        );
                    }
                }
                DeviceRef::Disk(d) => {
                    members.insert(d.clone());
                }
                DeviceRef::Array(_) => {}
            }
            consume(c, consumers, dev, format!("array {name}"), m.span);
        }
        for b in &arr.bootloader_on {
            let Some(disk) = c.spec.disks.get(b.value.as_str()) else {
                if !c.broken.disks.contains(&b.value) {
                    let h = did_you_mean(b, c.spec.disks.keys().map(|k| k.value.as_str()));
                    c.error(
                        "dangling",
                        b.span,
                        format!("`bootloader-on: {b}` names no disk of this spec"),
                    )
                    .hint = h;
                }
                continue;
            };
            if !members.contains(&b.value) {
                c.warn(
                    "bootloader",
                    b.span,
                    format!("disk `{b}` holds no member of `{name}`"),
                );
            }
            if !disk
                .partitions
                .iter()
                .any(|p| p.kind == PartType::BiosBoot && p.state != Presence::Absent)
            {
                let efi = disk.partitions.iter().any(|p| p.kind == PartType::Efi);
                c.error(
                    "bootloader",
                    b.span,
                    format!("disk `{b}` has no bios-boot partition for the boot loader"),
                )
                .hint = Some(if efi {
                    "hostform installs GRUB for BIOS (grub-install --target=i386-pc), which needs a 1–2 MiB `type: bios-boot` partition; an efi partition alone is not used".into()
                } else {
                    "GRUB on a GPT disk booted by BIOS needs a 1–2 MiB `type: bios-boot` partition"
                        .into()
                });
            }
        }
    }
}

/// Why a mount path or its options would not fit /etc/fstab's grammar (whitespace separates its
/// fields; `\\` escapes), or would mount somewhere no LV belongs.
pub fn mount_path_problem(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("is not an absolute path");
    }
    if p == "/" {
        return Some("is the root: hostform does not mount /");
    }
    if p.chars()
        .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '\\')
    {
        return Some(
            "holds a space, a control character or a backslash, which /etc/fstab cannot hold as written",
        );
    }
    if p[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Some("has an empty, `.` or `..` part");
    }
    None
}

fn mount(c: &mut Ctx, m: &Mount, fs: Filesystem, seen: &mut BTreeMap<String, Span>) {
    if !matches!(fs, Filesystem::Ext4 | Filesystem::Xfs) {
        c.error(
            "mount",
            m.path.span,
            format!(
                "`mount: {}` on an LV whose `fs` is {}: only ext4 and xfs are mounted",
                m.path,
                fs_name(fs)
            ),
        )
        .hint = Some("set `fs: ext4` or `fs: xfs`".into());
    }
    if let Some(why) = mount_path_problem(&m.path.value) {
        c.error(
            "mount",
            m.path.span,
            format!("mount path `{}` {why}", m.path.value.escape_debug()),
        );
    } else if let Some(first) = seen.get(&m.path.value) {
        let first = *first;
        c.error(
            "mount",
            m.path.span,
            format!("`{}` is the mount path of two LVs", m.path),
        )
        .related
        .push((first, "first here".into()));
    } else {
        seen.insert(m.path.value.clone(), m.path.span);
    }
    if let Some(o) = &m.options {
        let bad = o.value.is_empty()
            || o.value.split(',').any(str::is_empty)
            || o.value
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control() || ch == '\\' || ch == '#');
        if bad {
            c.error(
                "mount",
                o.span,
                format!(
                    "mount options `{}` are not a comma-separated list without spaces",
                    o.value.escape_debug()
                ),
            );
        }
    }
}

fn volume_groups(c: &mut Ctx, consumers: &mut BTreeMap<DeviceRef, (String, Span)>) {
    let mut mount_paths: BTreeMap<String, Span> = BTreeMap::new();
    for (vgname, vg) in &c.spec.volume_groups {
        c.rule(names::lvm(vgname, "volume group"), vgname.span);
        if vg.pvs.is_empty() && vg.state == Presence::Present {
            c.error(
                "vg",
                vgname.span,
                format!("volume group `{vgname}` has no physical volumes"),
            )
            .hint = Some("list them: `pvs: [md0]`".into());
        }
        let mut pv_refs: BTreeSet<&str> = BTreeSet::new();
        let mut pv_sizes: Vec<Option<u64>> = Vec::new();
        for pv in &vg.pvs {
            pv_refs.insert(pv.value.as_str());
            if let Some(dev) = c.device(pv) {
                pv_sizes.push(c.device_size(&dev));
                consume(c, consumers, dev, format!("volume group {vgname}"), pv.span);
            }
        }
        let extent = vg.extent_size.map(|e| e.value.0).unwrap_or(4 * MIB);
        if let Some(e) = vg.extent_size
            && (e.value.0 < 1024 || !e.value.0.is_power_of_two())
        {
            c.error(
                "size",
                e.span,
                "the extent size must be a power of two, at least 1KiB",
            );
        }
        // LVs and snapshots share one namespace.
        let mut pct_vg: u32 = 0;
        let mut fixed: u64 = 0;
        let mut free_users: Vec<Span> = Vec::new();
        for (lvname, lv) in &vg.lvs {
            c.rule(names::lv(lvname), lvname.span);
            if let Some(m) = &lv.mount {
                mount(c, m, lv.fs, &mut mount_paths);
            }
            if let Some((other, _)) = vg.snapshots.get_key_value(lvname.value.as_str()) {
                c.error(
                    "duplicate",
                    other.span,
                    format!("`{lvname}` is both an LV and a snapshot in `{vgname}`"),
                )
                .related
                .push((lvname.span, "LV defined here".into()));
            }
            match (&lv.size, &lv.image) {
                (None, None) if lv.state == Presence::Present => {
                    c.error(
                        "size",
                        lvname.span,
                        format!("logical volume `{vgname}/{lvname}` has no size"),
                    )
                    .hint = Some("add `size:` (20GiB, 50%VG, 100%FREE) or `image:`".into());
                }
                (Some(s), Some(_)) => {
                    c.error(
                        "conflict",
                        s.span,
                        format!("`{vgname}/{lvname}` has both `size` and `image`"),
                    )
                    .hint = Some(
                        "an LV made from an image takes the image's exact size: remove `size`"
                            .into(),
                    );
                }
                _ => {}
            }
            if lv.image.is_some() && lv.fs != Filesystem::None {
                c.error(
                    "conflict",
                    lvname.span,
                    format!("`{vgname}/{lvname}` has both `image` and `fs`"),
                )
                .hint = Some("the image already holds the guest's filesystems: remove `fs`".into());
            }
            match lv.size.map(|s| (s.value, s.span)) {
                Some((LvSize::Bytes(b), span)) if b.0 == 0 => {
                    c.error("size", span, "a logical volume cannot be empty");
                }
                Some((LvSize::Bytes(b), span)) => {
                    let rounded = b.0.div_ceil(extent) * extent;
                    if let Some((tool, min, shown)) = fs_minimum(lv.fs)
                        && rounded < min
                    {
                        c.error(
                            "size",
                            span,
                            format!(
                                "`{vgname}/{lvname}` is {b} with `fs: {}`, below {tool}'s minimum of {shown}",
                                fs_name(lv.fs)
                            ),
                        )
                        .hint = Some(format!(
                            "{tool} refuses it at apply; give at least {shown}"
                        ));
                    }
                    fixed = fixed.saturating_add(rounded)
                }
                Some((LvSize::PercentVg(p), _)) => pct_vg += u32::from(p),
                Some((LvSize::PercentFree(_), span)) => free_users.push(span),
                None => {}
            }
            if let Some(pv) = &lv.pv
                && !pv_refs.contains(pv.value.as_str())
            {
                let h = did_you_mean(pv, pv_refs.iter().copied());
                c.error(
                    "dangling",
                    pv.span,
                    format!("`pv: {pv}` is not a physical volume of `{vgname}`"),
                )
                .hint = Some(h.unwrap_or_else(|| {
                    format!(
                        "the PVs of {vgname} are: {}",
                        pv_refs.iter().copied().collect::<Vec<_>>().join(", ")
                    )
                }));
            }
        }
        for (sname, snap) in &vg.snapshots {
            c.rule(names::lv(sname), sname.span);
            if snap.size.value.0 == 0 {
                c.error("size", snap.size.span, "a snapshot cannot be empty");
            }
            fixed = fixed.saturating_add(snap.size.value.0.div_ceil(extent) * extent);
            if !vg.lvs.contains_key(snap.origin.value.as_str()) {
                if vg.snapshots.contains_key(snap.origin.value.as_str()) {
                    c.error(
                        "snapshot",
                        snap.origin.span,
                        format!("`{}` is itself a snapshot", snap.origin),
                    )
                    .hint = Some("snapshot the origin LV instead".into());
                } else if !c.broken.lvs.contains(&format!("{vgname}/{}", snap.origin)) {
                    let h = c.lv_hint(vgname, vg, &snap.origin);
                    c.error(
                        "dangling",
                        snap.origin.span,
                        format!("`origin: {}` is not an LV of `{vgname}`", snap.origin),
                    )
                    .hint = h;
                }
            }
        }
        fixed = fixed.saturating_add(thin_pools(c, vgname, vg, extent));
        if pct_vg > 100 {
            c.error(
                "capacity",
                vgname.span,
                format!("the LVs of `{vgname}` ask for {pct_vg}% of the VG"),
            )
            .hint = Some("percentages of the VG must add up to 100% at most".into());
        }
        if free_users.len() > 1 {
            c.warn(
                "capacity",
                free_users[1],
                format!(
                    "several LVs of `{vgname}` use %FREE: their sizes depend on creation order"
                ),
            )
            .hint = Some("give all but one an explicit size or %VG".into());
        }
        if !pv_sizes.is_empty() && pv_sizes.iter().all(Option::is_some) {
            // Each PV loses 1 MiB to metadata; the rest is counted in whole extents.
            let vg_size: u64 = pv_sizes
                .iter()
                .flatten()
                .map(|s| s.saturating_sub(MIB) / extent * extent)
                .sum();
            let need = fixed.saturating_add(vg_size / 100 * u64::from(pct_vg.min(100)));
            if need > vg_size {
                let what = if vg.thin_pools.is_empty() {
                    "LVs and snapshots"
                } else {
                    "LVs, snapshots and thin pools"
                };
                c.error("capacity", vgname.span, format!(
                    "volume group `{vgname}` is overcommitted: its {what} need {}, it holds about {}",
                    super::units::human(need),
                    super::units::human(vg_size)
                )).hint = Some("shrink some LVs, add a PV, or correct the disk sizes".into());
            }
        }
    }
}

/// A VG's thin pools and their thin LVs: names (the VG's one LV namespace), sizes, chunk and
/// metadata sizes, pools removed under kept thin LVs, and overcommit (a warning: thin LVs may
/// promise more than the pool holds, that is what they are for, but the operator should see
/// by how much). Returns what the pools take from the VG, in whole extents: data, and metadata
/// twice (LVM keeps a spare metadata LV of the same size) when the spec states it.
fn thin_pools(c: &mut Ctx, vgname: &Sp<String>, vg: &VolumeGroup, extent: u64) -> u64 {
    let mut taken: u64 = 0;
    let mut seen: BTreeMap<&str, Span> = vg
        .lvs
        .keys()
        .chain(vg.snapshots.keys())
        .map(|k| (k.value.as_str(), k.span))
        .collect();
    let round = |b: u64| b.div_ceil(extent) * extent;
    for (pname, pool) in &vg.thin_pools {
        c.rule(names::lv(pname), pname.span);
        let names =
            std::iter::once((pname, "thin pool")).chain(pool.lvs.keys().map(|k| (k, "thin LV")));
        let mut dups = Vec::new();
        for (n, what) in names {
            if let Some(first) = seen.get(n.value.as_str()) {
                dups.push((
                    n.span,
                    *first,
                    format!("`{n}` is used twice in `{vgname}` (a {what})"),
                ));
            } else {
                seen.insert(n.value.as_str(), n.span);
            }
        }
        for (at, first, msg) in dups {
            let d = c.error("duplicate", at, msg);
            d.hint =
                Some("LVs, snapshots, thin pools and thin LVs share one namespace in a VG".into());
            d.related.push((first, "first used here".into()));
        }
        let present = pool.state == Presence::Present;
        match pool.size {
            None if present => {
                c.error(
                    "size",
                    pname.span,
                    format!("thin pool `{vgname}/{pname}` has no size"),
                )
                .hint = Some("add `size:` (the pool's data space: 100GiB)".into());
            }
            Some(s) if s.value.0 == 0 => {
                c.error("size", s.span, "a thin pool cannot be empty");
            }
            Some(s) if present => taken = taken.saturating_add(round(s.value.0)),
            _ => {}
        }
        if let Some(cs) = pool.chunk_size
            && (!cs.value.0.is_power_of_two() || cs.value.0 < 64 * 1024 || cs.value.0 > 1 << 30)
        {
            c.error(
                "size",
                cs.span,
                format!(
                    "chunk size {} is not a power of two from 64KiB to 1GiB",
                    cs.value
                ),
            )
            .hint = Some("LVM's thin chunks: 64KiB, 128KiB, … 1GiB".into());
        }
        if let Some(m) = pool.metadata_size {
            if m.value.0 < 2 * MIB || m.value.0 > 16 * 1024 * MIB {
                c.error(
                    "size",
                    m.span,
                    format!("metadata size {} is outside LVM's 2MiB to 16GiB", m.value),
                );
            } else if present {
                taken = taken.saturating_add(2 * round(m.value.0));
            }
        }
        if pool.prevent_destroy && !present {
            c.error(
                "conflict",
                pname.span,
                format!(
                    "thin pool `{vgname}/{pname}` is both `prevent-destroy` and `state: absent`"
                ),
            )
            .hint = Some(
                "remove `prevent-destroy` first (in its own reviewed change) if it really must go"
                    .into(),
            );
        }
        let mut virtual_total: u64 = 0;
        for (lname, lv) in &pool.lvs {
            c.rule(names::lv(lname), lname.span);
            let lv_present = lv.state == Presence::Present;
            if lv_present && !present {
                c.error(
                    "conflict",
                    lname.span,
                    format!("thin LV `{vgname}/{lname}` stays, but its pool `{pname}` is `state: absent`"),
                )
                .hint = Some("a pool goes with its thin LVs: mark each `state: absent` too".into());
            }
            if lv.prevent_destroy && !lv_present {
                c.error(
                    "conflict",
                    lname.span,
                    format!("thin LV `{vgname}/{lname}` is both `prevent-destroy` and `state: absent`"),
                )
                .hint = Some("remove `prevent-destroy` first (in its own reviewed change) if it really must go".into());
            }
            match lv.size {
                None if lv_present => {
                    c.error(
                        "size",
                        lname.span,
                        format!("thin LV `{vgname}/{lname}` has no size"),
                    )
                    .hint = Some("add `size:` (its virtual size: 40GiB)".into());
                }
                Some(s) if s.value.0 == 0 => {
                    c.error("size", s.span, "a thin LV cannot be empty");
                }
                Some(s) if lv_present => {
                    virtual_total = virtual_total.saturating_add(s.value.0);
                    if let Some((tool, min, shown)) = fs_minimum(lv.fs)
                        && s.value.0 < min
                    {
                        c.error(
                            "size",
                            s.span,
                            format!(
                                "`{vgname}/{lname}` is {} with `fs: {}`, below {tool}'s minimum of {shown}",
                                s.value,
                                fs_name(lv.fs)
                            ),
                        )
                        .hint = Some(format!("{tool} refuses it at apply; give at least {shown}"));
                    }
                }
                _ => {}
            }
        }
        if let Some(size) = pool.size
            && present
            && size.value.0 > 0
            && virtual_total > size.value.0
        {
            let ratio = virtual_total as f64 / size.value.0 as f64;
            c.warn(
                "overcommit",
                pname.span,
                format!(
                    "thin pool `{vgname}/{pname}` is overcommitted {ratio:.2}x: its thin LVs promise {}, it holds {}",
                    super::units::human(virtual_total),
                    super::units::human(size.value.0)
                ),
            )
            .hint = Some("writes fail once the pool is full: watch its data% (`lvs`), grow it in time".into());
        }
    }
    taken
}

/// A disk used whole (as a PV or array member) cannot also be partitioned.
fn whole_disks(c: &mut Ctx, consumers: &BTreeMap<DeviceRef, (String, Span)>) {
    for (dev, (by, span)) in consumers {
        if let DeviceRef::Disk(d) = dev
            && c.spec
                .disks
                .get(d.as_str())
                .is_some_and(|x| !x.partitions.is_empty())
        {
            c.error(
                "used-twice",
                *span,
                format!("disk `{d}` is partitioned, but {by} uses it whole"),
            )
            .hint = Some(format!(
                "use one of its partitions (`{d}/NAME`), or drop its partitions"
            ));
        }
    }
}

fn bridges(c: &mut Ctx) {
    let mut port_owner: BTreeMap<&str, (&str, Span)> = BTreeMap::new();
    let mut gateways: Vec<(bool, Span, &str)> = Vec::new();
    for (name, br) in &c.spec.bridges {
        c.rule(names::interface(name), name.span);
        for p in &br.ports {
            c.rule(names::interface(p), p.span);
            if c.spec.bridges.contains_key(p.value.as_str()) {
                c.error(
                    "bridge",
                    p.span,
                    format!("`{p}` is a bridge; it cannot be a port of `{name}`"),
                );
            }
            if let Some((owner, prev)) =
                port_owner.insert(p.value.as_str(), (name.value.as_str(), p.span))
            {
                let msg =
                    format!("interface `{p}` is a port of two bridges: `{owner}` and `{name}`");
                c.error("used-twice", p.span, msg)
                    .related
                    .push((prev, "first enslaved here".into()));
            }
        }
        let mut seen = BTreeSet::new();
        for a in &br.addresses {
            if !seen.insert(a.value) {
                c.error("duplicate", a.span, format!("address {a} is listed twice"));
            }
        }
        if let Some(gw) = br.gateway {
            let link_local = matches!(gw.value.0, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if !link_local && !br.addresses.iter().any(|a| a.value.contains(gw.value.0)) {
                c.error(
                    "gateway",
                    gw.span,
                    format!("gateway {gw} is not in a subnet of `{name}`"),
                )
                .hint = Some(format!(
                    "the bridge's addresses are: {}",
                    if br.addresses.is_empty() {
                        "none".to_string()
                    } else {
                        br.addresses
                            .iter()
                            .map(|a| a.value.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ));
            }
            gateways.push((gw.value.0.is_ipv4(), gw.span, name.value.as_str()));
        }
        if let Some(mtu) = br.mtu
            && !(68..=65535).contains(&mtu.value)
        {
            c.error("mtu", mtu.span, format!("MTU {mtu} is out of range"))
                .hint = Some("an MTU is between 68 and 65535".into());
        }
    }
    for v4 in [true, false] {
        let gws: Vec<_> = gateways.iter().filter(|g| g.0 == v4).collect();
        if gws.len() > 1 {
            let msg = format!(
                "two bridges set a default {} gateway: `{}` and `{}`",
                if v4 { "IPv4" } else { "IPv6" },
                gws[0].2,
                gws[1].2
            );
            c.error("gateway", gws[1].1, msg)
                .related
                .push((gws[0].1, "first gateway".into()));
        }
    }
}

fn vms(c: &mut Ctx) {
    let mut macs: BTreeMap<String, Span> = BTreeMap::new();
    let mut rw_users: BTreeMap<String, (String, Span)> = BTreeMap::new();
    for (name, vm) in &c.spec.vms {
        c.rule(names::vm(name), name.span);
        let Some(hv) = vm.hypervisor else {
            c.error("vm", name.span, format!("guest `{name}` has no hypervisor"))
                .hint = Some(
                "set `hypervisor: xen` or `libvirt` on the guest, its template, or `vm-defaults`"
                    .into(),
            );
            continue;
        };
        match vm.memory {
            None if vm.state != Some(VmState::Absent) => {
                c.error(
                    "vm",
                    name.span,
                    format!("guest `{name}` has no memory size"),
                )
                .hint = Some(
                    "set `memory:` (e.g. 2GiB) on the guest, its template, or `vm-defaults`".into(),
                );
            }
            Some(m) if m.value.0 < 16 * MIB || m.value.0 > 16 * super::units::TIB => {
                c.error(
                    "size",
                    m.span,
                    format!("{} of memory is not a sensible guest size", m.value),
                )
                .hint = Some("a guest needs between 16MiB and 16TiB".into());
            }
            _ => {}
        }
        if let Some(v) = vm.vcpus
            && !(1..=512).contains(&v.value)
        {
            c.error("vm", v.span, format!("{v} vCPUs is out of range"))
                .hint = Some("give 1 to 512".into());
        }
        if let Some(boot) = &vm.boot {
            boot_rules(c, name, hv.value, boot, hv.span);
        }
        let mut targets: BTreeMap<&str, Span> = BTreeMap::new();
        for d in &vm.disks {
            c.rule(
                names::disk_target(&d.target, hv.value == Hypervisor::Xen),
                d.target.span,
            );
            if let Some(prev) = targets.insert(d.target.value.as_str(), d.target.span) {
                c.error(
                    "duplicate",
                    d.target.span,
                    format!("guest `{name}` has two disks on `{}`", d.target),
                )
                .related
                .push((prev, "first here".into()));
            }
            let Some((vgn, lvn)) = d.lv.value.split_once('/') else {
                c.error(
                    "dangling",
                    d.lv.span,
                    format!("`{}` is not of the form VG/LV", d.lv),
                )
                .hint = Some("name the volume group and the LV: `vg0/guest1_root`".into());
                continue;
            };
            match c.spec.volume_groups.get(vgn) {
                Some(vg)
                    if vg.lvs.get(lvn).is_some_and(|l| l.state == Presence::Absent)
                        && vm.state != Some(VmState::Absent) =>
                {
                    c.error(
                        "conflict",
                        d.lv.span,
                        format!(
                            "guest `{name}` uses `{}`, which the spec removes (`state: absent`)",
                            d.lv
                        ),
                    )
                    .hint = Some("detach the disk, or keep the LV".into());
                }
                Some(vg)
                    if vg
                        .thin_lv(lvn)
                        .is_some_and(|(_, l)| l.state == Presence::Absent)
                        && vm.state != Some(VmState::Absent) =>
                {
                    c.error(
                        "conflict",
                        d.lv.span,
                        format!(
                            "guest `{name}` uses `{}`, which the spec removes (`state: absent`)",
                            d.lv
                        ),
                    )
                    .hint = Some("detach the disk, or keep the thin LV".into());
                }
                Some(vg)
                    if vg.lvs.contains_key(lvn)
                        || vg.snapshots.contains_key(lvn)
                        || vg.thin_lv(lvn).is_some() => {}
                Some(vg) => {
                    if !c.broken.lvs.contains(&d.lv.value) {
                        let h = c.lv_hint(vgn, vg, lvn);
                        c.error(
                            "dangling",
                            d.lv.span,
                            format!("`{}`: volume group `{vgn}` has no LV `{lvn}`", d.lv),
                        )
                        .hint = Some(
                            h.map(|h| {
                                h.replace('`', &format!("`{vgn}/")).replacen(
                                    &format!("{vgn}/?"),
                                    "?",
                                    1,
                                )
                            })
                            .unwrap_or_else(|| format!("declare it under volume-groups.{vgn}.lvs")),
                        );
                    }
                }
                None => {
                    if !c.broken.vgs.contains(vgn) {
                        let h = did_you_mean(
                            vgn,
                            c.spec.volume_groups.keys().map(|k| k.value.as_str()),
                        );
                        c.error(
                            "dangling",
                            d.lv.span,
                            format!("`{}`: no volume group `{vgn}` in this spec", d.lv),
                        )
                        .hint = h;
                    }
                }
            }
            if !d.readonly && vm.state != Some(VmState::Absent) {
                if let Some((other, prev)) = rw_users.get(&d.lv.value) {
                    let msg = format!(
                        "LV `{}` is attached read-write to two guests: `{other}` and `{name}`",
                        d.lv
                    );
                    let prev = *prev;
                    c.error("used-twice", d.lv.span, msg)
                        .related
                        .push((prev, "first attached here".into()));
                    c.out.last_mut().expect("pushed").hint = Some("two guests writing one filesystem corrupt it; attach it `readonly: true` or to one guest".into());
                } else {
                    rw_users.insert(d.lv.value.clone(), (name.value.clone(), d.lv.span));
                }
            }
        }
        for n in &vm.nics {
            c.rule(names::interface(&n.bridge), n.bridge.span);
            if !c.spec.bridges.contains_key(n.bridge.value.as_str())
                && !c.broken.bridges.contains(&n.bridge.value)
            {
                let h = did_you_mean(&n.bridge, c.spec.bridges.keys().map(|k| k.value.as_str()));
                c.error(
                    "dangling",
                    n.bridge.span,
                    format!(
                        "guest `{name}` uses bridge `{}`, which this spec does not define",
                        n.bridge
                    ),
                )
                .hint = Some(h.unwrap_or_else(|| "declare it under `bridges`".into()));
            }
            if let Some(mac) = n.mac
                && let Some(prev) = macs.insert(mac.value.to_string(), mac.span)
            {
                c.error(
                    "duplicate",
                    mac.span,
                    format!("MAC address {mac} is used twice"),
                )
                .related
                .push((prev, "first used here".into()));
            }
        }
        let mut deps = BTreeSet::new();
        for d in &vm.depends_on {
            if d.value == name.value {
                c.error("cycle", d.span, format!("guest `{name}` depends on itself"));
            } else if !c.spec.vms.contains_key(d.value.as_str()) {
                if !c.broken.vms.contains(&d.value) {
                    let h = did_you_mean(d, c.spec.vms.keys().map(|k| k.value.as_str()));
                    c.error(
                        "dangling",
                        d.span,
                        format!(
                            "guest `{name}` depends on `{d}`, which is not a guest of this spec"
                        ),
                    )
                    .hint = h;
                }
            } else if !deps.insert(d.value.as_str()) {
                c.warn("duplicate", d.span, format!("`{d}` is listed twice"));
            } else if vm.state.unwrap_or_default() == VmState::Running
                && c.spec
                    .vms
                    .get(d.value.as_str())
                    .and_then(|o| o.state)
                    .unwrap_or_default()
                    != VmState::Running
            {
                c.warn(
                    "vm",
                    d.span,
                    format!("running guest `{name}` depends on `{d}`, which is not running"),
                );
            }
        }
    }
    dependency_cycles(c);
}

fn boot_rules(c: &mut Ctx, name: &Sp<String>, hv: Hypervisor, boot: &Boot, hv_span: Span) {
    if let Some(fw) = boot.firmware {
        if boot.loader.is_some() || boot.kernel.is_some() || boot.ramdisk.is_some() {
            c.error(
                "conflict",
                fw.span,
                format!("guest `{name}` sets both `firmware` and a loader or kernel"),
            )
            .hint = Some("boot through firmware, or through a loader/kernel, not both".into());
        }
        if hv == Hypervisor::Xen && fw.value == Firmware::Uefi {
            c.warn(
                "vm",
                fw.span,
                "UEFI Xen guests need OVMF in the dom0 (type = \"hvm\" with bios = \"ovmf\")",
            );
        }
    }
    if boot.loader == Some(Loader::Pygrub) {
        if hv == Hypervisor::Libvirt {
            c.error(
                "conflict",
                hv_span,
                format!("guest `{name}` uses pygrub, which is for Xen guests"),
            )
            .hint = Some("remove `loader: pygrub`, or set `hypervisor: xen`".into());
        }
    } else {
        for p in [&boot.kernel, &boot.ramdisk].into_iter().flatten() {
            if !p.value.starts_with('/') {
                c.error(
                    "path",
                    p.span,
                    format!("`{p}` must be an absolute path on the host"),
                )
                .hint = Some(
                    "without a loader, the kernel and ramdisk are read from the host's filesystem"
                        .into(),
                );
            }
        }
    }
    if boot.ramdisk.is_some() && boot.kernel.is_none() {
        c.error(
            "conflict",
            name.span,
            format!("guest `{name}` has a ramdisk but no kernel"),
        );
    }
}

/// depends-on cycles, each reported once with its whole path.
fn dependency_cycles(c: &mut Ctx) {
    let vms = &c.spec.vms;
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 = on stack, 2 = done
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut found: Vec<(Vec<String>, Vec<Span>)> = Vec::new();
    fn visit<'a>(
        n: &'a str,
        vms: &'a indexmap::IndexMap<Sp<String>, Vm>,
        state: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<(&'a str, Span)>,
        found: &mut Vec<(Vec<String>, Vec<Span>)>,
    ) {
        state.insert(n, 1);
        if let Some(vm) = vms.get(n) {
            for d in &vm.depends_on {
                let dn = d.value.as_str();
                if dn == n || !vms.contains_key(dn) {
                    continue;
                }
                match state.get(dn).copied() {
                    Some(1) => {
                        let mut path: Vec<(&str, Span)> = stack.clone();
                        path.push((n, d.span));
                        let start = path.iter().position(|(x, _)| *x == dn).unwrap_or(0);
                        let cyc = &path[start..];
                        let mut names: Vec<String> =
                            cyc.iter().map(|(x, _)| x.to_string()).collect();
                        names.push(dn.to_string());
                        found.push((names, cyc.iter().map(|(_, s)| *s).collect()));
                    }
                    Some(_) => {}
                    None => {
                        stack.push((n, d.span));
                        visit(dn, vms, state, stack, found);
                        stack.pop();
                    }
                }
            }
        }
        state.insert(n, 2);
    }
    for k in vms.keys() {
        if !state.contains_key(k.value.as_str()) {
            visit(
                k.value.as_str(),
                vms,
                &mut state,
                &mut Vec::new(),
                &mut found,
            );
        }
    }
    for (names, spans) in found {
        let mut key: Vec<String> = names[..names.len() - 1].to_vec();
        key.sort();
        if !reported.insert(key) {
            continue;
        }
        let d = c.error(
            "cycle",
            spans[spans.len() - 1],
            format!("depends-on forms a cycle: {}", names.join(" → ")),
        );
        d.hint = Some("guests stop in dependency order; remove one of these dependencies".into());
        for (i, s) in spans.iter().enumerate().take(spans.len() - 1) {
            d.related
                .push((*s, format!("{} depends on {}", names[i], names[i + 1])));
        }
    }
}

fn shutdown(c: &mut Ctx) {
    let timeouts = c
        .spec
        .shutdown
        .timeout
        .iter()
        .chain(
            c.spec
                .vms
                .values()
                .filter_map(|v| v.shutdown_timeout.as_ref()),
        )
        .filter(|t| t.value.secs() == 0)
        .map(|t| t.span)
        .collect::<Vec<_>>();
    for span in timeouts {
        c.error(
            "size",
            span,
            "a shutdown timeout of 0s gives guests no time to stop cleanly",
        )
        .hint = Some("give at least a few seconds; 120s is common".into());
    }
    let mut seen = BTreeSet::new();
    for f in &c.spec.shutdown.first {
        if !c.spec.vms.contains_key(f.value.as_str()) && !c.broken.vms.contains(&f.value) {
            let h = did_you_mean(f, c.spec.vms.keys().map(|k| k.value.as_str()));
            c.error(
                "dangling",
                f.span,
                format!("`shutdown.first` names `{f}`, which is not a guest of this spec"),
            )
            .hint = h;
        }
        if !seen.insert(f.value.as_str()) {
            c.warn("duplicate", f.span, format!("`{f}` is listed twice"));
        }
    }
}

/// Arrays built on arrays must not loop (md0 in md1 in md0).
fn array_cycles(c: &mut Ctx) {
    let arrays = &c.spec.arrays;
    let mut reported: BTreeSet<Vec<String>> = BTreeSet::new();
    for start in arrays.keys() {
        // Depth-first along array members, looking for a way back to `start`.
        let mut stack: Vec<(String, Vec<String>, Vec<Span>)> =
            vec![(start.value.clone(), vec![start.value.clone()], Vec::new())];
        let mut seen = BTreeSet::new();
        while let Some((cur, path, spans)) = stack.pop() {
            let Some(arr) = arrays.get(cur.as_str()) else {
                continue;
            };
            for m in arr.devices.iter().chain(&arr.spares) {
                if !arrays.contains_key(m.value.as_str()) || m.value == cur {
                    continue;
                }
                let mut p = path.clone();
                p.push(m.value.clone());
                let mut sp = spans.clone();
                sp.push(m.span);
                if m.value == start.value {
                    let mut key = p[..p.len() - 1].to_vec();
                    key.sort();
                    if reported.insert(key) {
                        let d = c.error(
                            "cycle",
                            m.span,
                            format!("arrays contain each other: {}", p.join(" ⊃ ")),
                        );
                        d.hint =
                            Some("an array cannot be built, directly or not, on itself".into());
                    }
                } else if seen.insert(m.value.clone()) {
                    stack.push((m.value.clone(), p, sp));
                }
            }
        }
    }
}
