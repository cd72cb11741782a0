//! LVM as `pvs`, `vgs` and `lvs --reportformat json --units b` report it: one call each,
//! however many volumes there are. Sizes come back as strings ending in `B`.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::runner::{RunError, Runner, joined};

pub const PV_FIELDS: &str = "pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count";
pub const VG_FIELDS: &str = "vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags";
pub const LV_FIELDS: &str = "lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags";
/// Asked only when the first `lvs` shows a thin pool or a thin LV (segtype `thin-pool`, `thin`),
/// so a host without thin provisioning still costs three processes.
pub const THIN_FIELDS: &str =
    "lv_name,vg_name,segtype,pool_lv,chunk_size,lv_metadata_size,data_percent,metadata_percent";

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Pv {
    /// `/dev/md0`.
    pub device: String,
    /// Empty when the PV belongs to no VG.
    pub vg: String,
    pub size: u64,
    pub free: u64,
    pub uuid: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vg {
    pub name: String,
    pub size: u64,
    pub free: u64,
    pub extent_size: u64,
    /// `vg_attr` 6th character `s`: a shared (lvmlockd) VG.
    pub shared: bool,
    pub uuid: String,
    /// LVM tags (`vg_tags`): hostform's `hostform_prevent_destroy` among them.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lv {
    pub name: String,
    pub vg: String,
    pub size: u64,
    pub path: String,
    /// Set for snapshots: the origin LV's name.
    pub origin: Option<String>,
    pub active: bool,
    pub readonly: bool,
    /// Open (in use: mounted, or attached to a running guest).
    pub open: bool,
    /// PVs holding the LV's extents: `/dev/md0`.
    pub devices: Vec<String>,
    /// Internal volumes (`[lvol0_pmspare]`, `-real`, `-cow`) are hidden.
    pub internal: bool,
    /// LVM tags (`lv_tags`): hostform's `hostform_prevent_destroy` among them.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Thin provisioning: the LV is a thin pool, or a thin LV of a pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thin: Option<Thin>,
}

/// What the thin report (`THIN_FIELDS`) says of a thin pool or a thin LV.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Thin {
    /// A thin pool (`segtype` `thin-pool`); `Lv::size` is the size of its data.
    Pool {
        chunk_size: u64,
        /// The size of its metadata LV (`[POOL_tmeta]`).
        metadata_size: u64,
        /// How full its data and metadata are (`data_percent`, `metadata_percent`): they
        /// change as thin LVs are written, so the state fingerprint leaves them out.
        #[serde(default)]
        data_percent: String,
        #[serde(default)]
        metadata_percent: String,
    },
    /// A thin LV (`segtype` `thin`) of the pool named here; `Lv::size` is its virtual size.
    Volume {
        pool: String,
        #[serde(default)]
        data_percent: String,
    },
}

/// The device-mapper name of an LV (`/dev/mapper/NAME`): dashes in names are doubled.
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// The LVM tag that protects an LV or a VG from removal, whatever later specs say.
/// LVM tags may hold `A-Z a-z 0-9 _ + . -` (and `/ = ! : # &`): this one is plain.
pub const PREVENT_DESTROY_TAG: &str = "hostform_prevent_destroy";

/// The LVM tag hostform adds to an LV once an image is written into it: the LV then holds
/// its image whatever that image holds (even nothing a signature names, as a blank image),
/// so the next plan does not write it again.
pub const IMAGE_TAG: &str = "hostform_image";

/// `"a,b"` → `["a", "b"]` (LVM's JSON report joins tags with commas).
fn tags(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

impl Lv {
    pub fn protected(&self) -> bool {
        self.tags.iter().any(|t| t == PREVENT_DESTROY_TAG)
    }
}

impl Vg {
    pub fn protected(&self) -> bool {
        self.tags.iter().any(|t| t == PREVENT_DESTROY_TAG)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lvm {
    pub pvs: Vec<Pv>,
    pub vgs: BTreeMap<String, Vg>,
    /// LVs keyed by `vg/lv`, merged over segments (one row per segment in the report).
    pub lvs: BTreeMap<String, Lv>,
    /// lvmlockd runs (its pid file names a live `lvmlockd`): shared VGs can be created.
    #[serde(default)]
    pub lockd: bool,
    /// The shared VGs whose lockspace this host has started (`lvmlockctl --info`: `LS`
    /// lines), read only where lvmlockd runs.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub lockspaces: BTreeSet<String>,
}

/// lvmlockd's words when another host holds an LV's lock (`lvchange -aey`/`-asy`).
pub const LOCKED_ELSEWHERE: &str = "LV locked by other host";

/// lvm2's words when lvmlockd refuses to start a sanlock VG's lockspace with EARGS.
const LOCK_START_EARGS: &str = "start failed: invalid parameters for sanlock";

/// Whether `vgchange --lock-start` failed because it raced udev: lvm2 activates the VG's
/// hidden `lvmlock` LV and asks lvmlockd to start the lockspace before udev has made
/// `/dev/mapper/VG-lvmlock`; lvmlockd's `stat` of it fails and lvm2 reports EARGS ("invalid
/// parameters for sanlock"). Seen in the sandbox when the lock start ran beside a partition
/// table write (tests/fixtures/cluster-b/ACTIONS.log). Once udev has settled, the same command
/// succeeds. EARGS for a VG whose lock arguments are really wrong fails again, and is reported.
pub fn lock_start_raced_udev(argv: &[&str], stderr: &str) -> bool {
    argv.first() == Some(&"vgchange")
        && argv.contains(&"--lock-start")
        && stderr.contains(LOCK_START_EARGS)
}

/// The host that holds an LV's lease in a sanlock shared VG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its sanlock host_id.
    pub host_id: u32,
    /// Its name as sanlock knows it (the host part of its delta lease's name), when found.
    pub name: Option<String>,
}

/// Who holds the lease of `vg/lv`: the LV's lock offset (`lvs … lock_args`), its lease on the
/// VG's `lvmlock` LV (`sanlock direct dump LOCKLV:OFFSET`: the owner's host_id, held while its
/// timestamp is not 0), and that host's delta lease in the lockspace (`sanlock direct dump
/// LOCKLV`: `UUID.HOSTNAME`). Three processes, read only; None when any step finds nothing.
pub fn lock_holder(r: &dyn Runner, vg: &str, lv: &str) -> Option<Holder> {
    let o = r
        .check(&[
            "lvs",
            "--reportformat",
            "json",
            "-o",
            "vg_name,lv_name,lv_uuid,lock_args,lv_active",
            vg,
        ])
        .ok()?;
    let report: serde_json::Value = serde_json::from_str(&o.stdout).ok()?;
    let offset = report["report"][0]["lv"]
        .as_array()?
        .iter()
        .find(|l| l["lv_name"].as_str() == Some(lv))?["lv_lockargs"]
        .as_str()?
        .rsplit(':')
        .next()?
        .parse::<u64>()
        .ok()?;
    let lock_lv = format!("/dev/mapper/{}", dm_name(vg, "lvmlock"));
    let lease = r
        .check(&["sanlock", "direct", "dump", &format!("{lock_lv}:{offset}")])
        .ok()?;
    let host_id = lease_owner(&lease.stdout, offset)?;
    let name = r
        .check(&["sanlock", "direct", "dump", &lock_lv])
        .ok()
        .and_then(|o| delta_lease_name(&o.stdout, host_id));
    Some(Holder { host_id, name })
}

/// The owner of the lease at `offset` in a `sanlock direct dump` (columns: offset, lockspace,
/// resource, timestamp, own, gen, lver): its host_id while held (timestamp not 0).
pub fn lease_owner(dump: &str, offset: u64) -> Option<u32> {
    dump.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 5 && f[0].parse::<u64>().ok()? == offset)
            .then_some(())
            .and_then(|_| {
                let ts: u64 = f[3].parse().ok()?;
                let own: u32 = f[4].parse().ok()?;
                (ts != 0 && own != 0).then_some(own)
            })
    })
}

/// The host name in the delta lease of `host_id` in a lockspace dump (`UUID.HOSTNAME`).
pub fn delta_lease_name(dump: &str, host_id: u32) -> Option<String> {
    dump.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() < 5 || f[4].parse::<u32>().ok()? != host_id {
            return None;
        }
        f[2].split_once('.').map(|(_, h)| h.to_string())
    })
}

/// The VGs whose lockspace `lvmlockctl --info` shows started (`LS sanlock lvm_VG`).
pub fn parse_lockspaces(info: &str) -> BTreeSet<String> {
    info.lines()
        .filter_map(|l| l.strip_prefix("LS "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|n| n.strip_prefix("lvm_"))
        .map(str::to_string)
        .collect()
}

#[derive(Deserialize)]
struct Report<T> {
    report: Vec<BTreeMap<String, Vec<T>>>,
}

fn rows<T: for<'de> Deserialize<'de>>(json: &str, key: &str) -> Result<Vec<T>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let r: Report<T> =
        serde_json::from_str(json).map_err(|e| format!("cannot read the {key} report: {e}"))?;
    Ok(r.report
        .into_iter()
        .flat_map(|mut m| m.remove(key).unwrap_or_default())
        .collect())
}

/// `"536870912B"` → 536870912 (also accepts the bare numbers of `--nosuffix`).
pub fn bytes(s: &str) -> u64 {
    s.trim().trim_end_matches('B').parse().unwrap_or(0)
}

#[derive(Deserialize)]
struct RawPv {
    pv_name: String,
    #[serde(default)]
    vg_name: String,
    #[serde(default)]
    pv_size: String,
    #[serde(default)]
    pv_free: String,
    #[serde(default)]
    pv_uuid: String,
}

#[derive(Deserialize)]
struct RawVg {
    vg_name: String,
    #[serde(default)]
    vg_attr: String,
    #[serde(default)]
    vg_size: String,
    #[serde(default)]
    vg_free: String,
    #[serde(default)]
    vg_extent_size: String,
    #[serde(default)]
    vg_uuid: String,
    #[serde(default)]
    vg_tags: String,
}

#[derive(Deserialize)]
struct RawLv {
    lv_name: String,
    vg_name: String,
    #[serde(default)]
    lv_attr: String,
    #[serde(default)]
    lv_size: String,
    #[serde(default)]
    lv_path: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    lv_permissions: String,
    #[serde(default)]
    devices: String,
    #[serde(default)]
    lv_tags: String,
    #[serde(default)]
    segtype: String,
}

#[derive(Deserialize)]
struct RawThin {
    lv_name: String,
    vg_name: String,
    #[serde(default)]
    segtype: String,
    #[serde(default)]
    pool_lv: String,
    #[serde(default)]
    chunk_size: String,
    #[serde(default)]
    lv_metadata_size: String,
    #[serde(default)]
    data_percent: String,
    #[serde(default)]
    metadata_percent: String,
}

impl Lvm {
    pub fn parse(pvs: &str, vgs: &str, lvs: &str) -> Result<Lvm, String> {
        let mut out = Lvm::default();
        for p in rows::<RawPv>(pvs, "pv")? {
            out.pvs.push(Pv {
                device: p.pv_name,
                vg: p.vg_name,
                size: bytes(&p.pv_size),
                free: bytes(&p.pv_free),
                uuid: p.pv_uuid,
            });
        }
        for v in rows::<RawVg>(vgs, "vg")? {
            out.vgs.insert(
                v.vg_name.clone(),
                Vg {
                    shared: v.vg_attr.chars().nth(5) == Some('s'),
                    name: v.vg_name,
                    size: bytes(&v.vg_size),
                    free: bytes(&v.vg_free),
                    extent_size: bytes(&v.vg_extent_size),
                    uuid: v.vg_uuid,
                    tags: tags(&v.vg_tags),
                },
            );
        }
        for l in rows::<RawLv>(lvs, "lv")? {
            let key = format!(
                "{}/{}",
                l.vg_name.trim(),
                l.lv_name.trim_matches(|c| c == '[' || c == ']')
            );
            let attr: Vec<char> = l.lv_attr.chars().collect();
            let devices: Vec<String> = l
                .devices
                .split(',')
                .filter(|d| !d.is_empty())
                .map(|d| d.split('(').next().unwrap_or(d).to_string())
                .collect();
            let entry = out.lvs.entry(key).or_insert_with(|| Lv {
                internal: l.lv_name.starts_with('['),
                name: l.lv_name.trim_matches(|c| c == '[' || c == ']').to_string(),
                vg: l.vg_name.clone(),
                size: bytes(&l.lv_size),
                path: l.lv_path.clone(),
                origin: Some(l.origin.clone()).filter(|o| !o.is_empty()),
                active: attr.get(4) == Some(&'a'),
                readonly: attr.get(1) == Some(&'r') || l.lv_permissions.starts_with("read-only"),
                open: attr.get(5) == Some(&'o'),
                devices: Vec::new(),
                tags: tags(&l.lv_tags),
                // Filled from the thin report (`Lvm::add_thin`); a placeholder marks it asked for.
                thin: match l.segtype.as_str() {
                    "thin-pool" => Some(Thin::Pool {
                        chunk_size: 0,
                        metadata_size: 0,
                        data_percent: String::new(),
                        metadata_percent: String::new(),
                    }),
                    "thin" => Some(Thin::Volume {
                        pool: String::new(),
                        data_percent: String::new(),
                    }),
                    _ => None,
                },
            });
            for d in devices {
                if !entry.devices.contains(&d) {
                    entry.devices.push(d);
                }
            }
        }
        Ok(out)
    }

    /// Whether the first `lvs` showed thin pools or thin LVs (the thin report is then asked).
    pub fn has_thin(&self) -> bool {
        self.lvs.values().any(|l| l.thin.is_some())
    }

    /// Merge the thin report (`lvs -a … -o THIN_FIELDS`) into the LVs it names.
    pub fn add_thin(&mut self, json: &str) -> Result<(), String> {
        for t in rows::<RawThin>(json, "lv")? {
            let key = format!(
                "{}/{}",
                t.vg_name.trim(),
                t.lv_name.trim_matches(|c| c == '[' || c == ']')
            );
            let Some(lv) = self.lvs.get_mut(&key) else {
                continue;
            };
            lv.thin = match t.segtype.as_str() {
                "thin-pool" => Some(Thin::Pool {
                    chunk_size: bytes(&t.chunk_size),
                    metadata_size: bytes(&t.lv_metadata_size),
                    data_percent: t.data_percent,
                    metadata_percent: t.metadata_percent,
                }),
                "thin" => Some(Thin::Volume {
                    pool: t.pool_lv.trim_matches(|c| c == '[' || c == ']').to_string(),
                    data_percent: t.data_percent,
                }),
                _ => lv.thin.take(),
            };
        }
        Ok(())
    }

    /// The thin pool of a thin LV.
    pub fn pool_of(&self, key: &str) -> Option<&str> {
        match &self.lvs.get(key)?.thin {
            Some(Thin::Volume { pool, .. }) => Some(pool),
            _ => None,
        }
    }

    /// Read LVM with three processes (four when there are thin pools). No LVM tools installed means no LVM here.
    pub fn discover(r: &dyn Runner) -> Result<Lvm, String> {
        let run = |cmd: &str, fields: &str| -> Result<String, String> {
            let argv = [cmd, "--reportformat", "json", "--units", "b", "-o", fields];
            let argv_a = [
                cmd,
                "-a",
                "--reportformat",
                "json",
                "--units",
                "b",
                "-o",
                fields,
            ];
            let argv: &[&str] = if cmd == "lvs" { &argv_a } else { &argv };
            match r.check(argv) {
                Ok(o) => Ok(o.stdout),
                Err(RunError::NotFound { .. }) => Ok(String::new()),
                Err(e) => Err(e.to_string()),
            }
        };
        // The three reports side by side (each scans the devices on its own; they only read).
        let (pvs, vgs, lvs) = std::thread::scope(|s| {
            let pvs = s.spawn(|| run("pvs", PV_FIELDS));
            let vgs = s.spawn(|| run("vgs", VG_FIELDS));
            let lvs = run("lvs", LV_FIELDS);
            (joined(pvs), joined(vgs), lvs)
        });
        let mut lvm = Lvm::parse(&pvs?, &vgs?, &lvs?)?;
        if lvm.has_thin() {
            let argv = [
                "lvs",
                "-a",
                "--reportformat",
                "json",
                "--units",
                "b",
                "-o",
                THIN_FIELDS,
            ];
            match r.check(&argv) {
                Ok(o) => lvm.add_thin(&o.stdout)?,
                Err(e) => return Err(e.to_string()),
            }
        }
        lvm.lockd = lockd_running(r);
        if lvm.lockd {
            // One process more, only where lvmlockd runs.
            if let Ok(o) = r.check(&["lvmlockctl", "--info"]) {
                lvm.lockspaces = parse_lockspaces(&o.stdout);
            }
        }
        Ok(lvm)
    }
}

/// Is lvmlockd running? Its pid file (`/run/lvmlockd.pid`, lvmlockd's default) must name a live
/// process called `lvmlockd`. Files only: no process is spawned.
pub fn lockd_running(r: &dyn Runner) -> bool {
    r.read("/run/lvmlockd.pid")
        .and_then(|p| p.trim().parse::<u32>().ok())
        .and_then(|pid| r.read(&format!("/proc/{pid}/comm")))
        .is_some_and(|c| c.trim() == "lvmlockd")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(dir: &str, name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(dir)
                .join(name),
        )
        .expect("fixture")
    }

    /// The lock start that raced udev, from the real failure: recognised for `vgchange
    /// --lock-start` only.
    #[test]
    fn a_lock_start_that_raced_udev_is_recognised() {
        let stderr = fixture("cluster-b", "vgchange-lock-start-raced.stderr");
        let argv = ["vgchange", "--lock-start", "vgshared"];
        assert!(lock_start_raced_udev(&argv, &stderr));
        assert!(!lock_start_raced_udev(
            &["vgchange", "-ay", "vgshared"],
            &stderr
        ));
        assert!(!lock_start_raced_udev(
            &argv,
            &fixture("cluster-b", "lvchange-aey-held.stderr")
        ));
        // lvmlockd's own account of it: the lvmlock device was not there yet (ENOENT).
        let dump = fixture("cluster-b", "lvmlockctl-dump-lock-start-raced");
        assert!(dump.contains("stat error 2 disk_path /dev/mapper/vgshared-lvmlock"));
    }

    #[test]
    fn the_holder_of_an_lv_held_elsewhere_is_named() {
        assert!(fixture("cluster-b", "lvchange-aey-held.stderr").contains(LOCKED_ELSEWHERE));
        let r = crate::runner::fixtures::runner("cluster-b");
        let h = lock_holder(&r, "vgshared", "web").expect("held");
        assert_eq!(
            h,
            Holder {
                host_id: 1,
                name: Some("kvm1".into())
            }
        );
        // db's lease was never taken when the dump was made: no holder.
        let dump = fixture("cluster-b", "sanlock-dump-web");
        assert_eq!(lease_owner(&dump, 70254592), Some(1));
        assert_eq!(lease_owner(&dump, 71303168), None);
        let ls = fixture("cluster-b", "sanlock-dump-lockspace");
        assert_eq!(delta_lease_name(&ls, 2).as_deref(), Some("kvm2"));
        assert_eq!(delta_lease_name(&ls, 3), None);
    }

    #[test]
    fn lockspaces_started_are_read_from_lvmlockctl() {
        assert!(parse_lockspaces(&fixture("cluster-a", "lvmlockctl-info-none")).is_empty());
        assert!(parse_lockspaces(&fixture("cluster-b", "lvmlockctl-info-unstarted")).is_empty());
        assert!(parse_lockspaces(&fixture("cluster-a", "lvmlockctl-info-stopped")).is_empty());
        let started = parse_lockspaces(&fixture("cluster-b", "lvmlockctl-info-started"));
        assert_eq!(started.into_iter().collect::<Vec<_>>(), ["vgshared"]);
        let created = parse_lockspaces(&fixture("cluster-a", "lvmlockctl-info-created"));
        assert!(created.contains("vgshared"));
    }

    #[test]
    fn a_shared_vg_seen_before_its_lockspace_starts() {
        let lvm = Lvm::parse(
            &fixture("cluster-b", "pvs-unstarted.json"),
            &fixture("cluster-b", "vgs-unstarted.json"),
            &fixture("cluster-b", "lvs-unstarted.json"),
        )
        .expect("parses");
        let vg = &lvm.vgs["vgshared"];
        assert!(vg.shared);
        // The lock LV is LVM's own, hidden; the two LVs are there, inactive on this host.
        assert!(lvm.lvs.contains_key("vgshared/web"));
        assert!(lvm.lvs.contains_key("vgshared/db"));
    }

    use crate::runner::fixtures::runner as fx;

    #[test]
    fn the_full_stack() {
        let r = fx("full");
        let lvm = Lvm::discover(&r).expect("parses");
        assert_eq!(
            r.asked.lock().unwrap().len(),
            3,
            "one process each for pvs, vgs, lvs"
        );
        assert_eq!(lvm.pvs.len(), 1);
        assert_eq!(lvm.pvs[0].device, "/dev/md0");
        assert_eq!(lvm.pvs[0].vg, "vg0");
        let vg = &lvm.vgs["vg0"];
        assert_eq!((vg.size, vg.extent_size), (2139095040, 4 << 20));
        assert!(!vg.shared);
        let root = &lvm.lvs["vg0/dom0_root"];
        assert_eq!(root.size, 512 << 20);
        assert!(root.active && root.open && !root.readonly);
        assert_eq!(root.devices, vec!["/dev/md0".to_string()]);
        assert!(lvm.lvs["vg0/guest1_iso"].readonly);
        let snap = &lvm.lvs["vg0/guest1_root_snap"];
        assert_eq!(snap.origin.as_deref(), Some("guest1_root"));
    }

    #[test]
    fn suffix_and_nosuffix_reports_agree() {
        let read = |f: &str| crate::runner::fixtures::text(&format!("full/{f}"));
        let a = Lvm::parse(&read("pvs.json"), &read("vgs.json"), &read("lvs.json")).unwrap();
        let b = Lvm::parse(
            &read("pvs-nosuffix.json"),
            &read("vgs-nosuffix.json"),
            &read("lvs-nosuffix.json"),
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn no_lvm_at_all() {
        let lvm = Lvm::discover(&fx("blank")).unwrap();
        assert!(lvm.pvs.is_empty() && lvm.vgs.is_empty() && lvm.lvs.is_empty());
        assert!(Lvm::parse("{", "", "").is_err());
    }
}
