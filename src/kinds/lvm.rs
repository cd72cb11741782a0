//! LVM as `lvm fullreport --reportformat json --units b` reports it: one process, however
//! many volumes there are (its PV, VG, LV and segment subreports are those of `pvs`, `vgs`,
//! `lvs` and `lvs --segments`). Sizes come back as strings ending in `B`.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::runner::{RunError, Runner};

pub const PV_FIELDS: &str = "pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count";
pub const VG_FIELDS: &str = "vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags";
pub const LV_FIELDS: &str = "lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags";
/// What the captures' thin report (`lvs -a -o THIN_FIELDS`) asked; `lvm fullreport` has the
/// same columns in its LV and segment subreports.
pub const THIN_FIELDS: &str =
    "lv_name,vg_name,segtype,pool_lv,chunk_size,lv_metadata_size,data_percent,metadata_percent";
/// The LV subreport of `lvm fullreport`: `LV_FIELDS` less the segment columns (it refuses
/// them: "contains columns which lead to change of report type"), plus the thin columns of an
/// LV.
pub const FULL_LV_FIELDS: &str = "lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,lv_tags,pool_lv,lv_metadata_size,data_percent,metadata_percent";
/// Its segment subreport: one row per segment, tied to its LV by `lv_uuid`.
pub const SEG_FIELDS: &str = "lv_uuid,segtype,devices,seg_pe_ranges,seg_start,seg_size,chunk_size";

/// How discovery reads LVM: one `lvm fullreport` of every VG, LV (hidden ones too: `-a`),
/// segment and PV (PVs in no VG come in a report of their own). Under emulation it took 0.3 s
/// where `pvs`, `vgs` and `lvs` took 0.8-1.0 s between them.
pub const FULLREPORT: &[&str] = &[
    "lvm",
    "fullreport",
    "-a",
    "--reportformat",
    "json",
    "--units",
    "b",
    "--configreport",
    "vg",
    "-o",
    VG_FIELDS,
    "--configreport",
    "pv",
    "-o",
    PV_FIELDS,
    "--configreport",
    "lv",
    "-o",
    FULL_LV_FIELDS,
    "--configreport",
    "seg",
    "-o",
    SEG_FIELDS,
    // The PV segments are not read; one short column keeps their subreport small.
    "--configreport",
    "pvseg",
    "-o",
    "pv_uuid",
];

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
    /// `lv_uuid`: how lvmlockd names the LV's lock (`lvmlockctl --info`); read at discovery.
    #[serde(skip)]
    pub uuid: String,
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
    /// The LVs (`VG/LV`) this host holds with a shared lock (`lvmlockctl --info`: `LK LV sh
    /// UUID`): active on this host and maybe on others, as during a guest's move.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub shared_here: BTreeSet<String>,
    /// The hosts of each started lockspace (by VG) as this host's sanlock sees them: whether
    /// each still renews its lease. Read only where a lockspace is started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lease_hosts: BTreeMap<String, Vec<LeaseHost>>,
    /// Who holds each LV's lease (`VG/LV` → host_id), read only for a VG where a host has
    /// stopped renewing (its LVs' lock offsets, then one `sanlock direct dump` of its
    /// lvmlock LV from the first of them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub leases: BTreeMap<String, u32>,
}

/// What this host's sanlock says of a host of a lockspace (`sanlock client gets -h 1`, with
/// the times of `sanlock client host_status -D`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LeaseHost {
    pub host_id: u32,
    /// sanlock's word for it: `LIVE`, `FAIL` (its lease not renewed for 8 I/O timeouts),
    /// `DEAD` (its leases free to take), `FREE` (never joined, or left), `UNKNOWN`.
    pub state: String,
    /// Seconds between the last renewal of its lease that this host's sanlock saw and
    /// sanlock's latest check (`last_check - last_live`): how long it has been silent, at
    /// least.
    pub silent_s: u64,
    /// Its lease's I/O timeout (`io_timeout`, 10 s by default): sanlock calls a host dead
    /// `8 × io_timeout + 60` s after its last renewal.
    pub io_timeout: u64,
}

impl LeaseHost {
    /// Seconds after its last renewal when sanlock calls a host dead (sanlock's
    /// `calc_host_dead_seconds`: its renewal-fail time, 8 I/O timeouts, plus the 60 s a
    /// watchdog takes to fire).
    pub fn dead_after_s(&self) -> u64 {
        8 * self.io_timeout + 60
    }

    /// Its leases are free to take: sanlock calls it dead.
    pub fn dead(&self) -> bool {
        self.state == "DEAD"
    }

    /// It has stopped renewing its lease but sanlock does not call it dead yet: `FAIL`, or
    /// `LIVE` while silent for more than two renewals (one every 2 I/O timeouts): its leases
    /// are still held.
    pub fn failing(&self) -> bool {
        self.state == "FAIL" || (self.state == "LIVE" && self.silent_s > 4 * self.io_timeout)
    }

    /// It has stopped renewing its lease: failing, or dead.
    pub fn stopped(&self) -> bool {
        self.failing() || self.dead()
    }

    /// Seconds, at most, until sanlock calls it dead (from sanlock's latest check).
    pub fn dead_in_s(&self) -> u64 {
        self.dead_after_s().saturating_sub(self.silent_s)
    }
}

/// The other hosts of each lockspace `lvm_VG` in `sanlock client gets -h 1` (`s
/// lvm_VG:HOST_ID:PATH:OFFSET`, whose HOST_ID is this host's, left out; then `h HOST_ID gen G
/// timestamp T STATE` lines), with `last_check`, `last_live` and `io_timeout` from `sanlock
/// client host_status -D` when it has them.
pub fn parse_lease_hosts(gets: &str, host_status: &str) -> BTreeMap<String, Vec<LeaseHost>> {
    // host_status -D: `lockspace NAME`, then `ID timestamp T` and indented `key=value` lines.
    let mut times: BTreeMap<(String, u32), BTreeMap<String, u64>> = BTreeMap::new();
    let (mut ls, mut id) = (String::new(), None);
    for l in host_status.lines() {
        if let Some(n) = l.strip_prefix("lockspace ") {
            ls = n.trim().to_string();
            id = None;
        } else if !l.starts_with(char::is_whitespace) {
            id = l
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<u32>().ok());
        } else if let (Some(h), Some((k, v))) = (id, l.trim().split_once('='))
            && let Ok(v) = v.parse::<u64>()
        {
            times
                .entry((ls.clone(), h))
                .or_default()
                .insert(k.to_string(), v);
        }
    }
    let mut out: BTreeMap<String, Vec<LeaseHost>> = BTreeMap::new();
    // The lockspace's VG and this host's host_id in it.
    let mut ls: Option<(String, Option<u32>)> = None;
    for l in gets.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["s", rest, ..] => {
                let mut parts = rest.split(':');
                let vg = parts.next().and_then(|n| n.strip_prefix("lvm_"));
                let me = parts.next().and_then(|i| i.parse::<u32>().ok());
                ls = vg.map(|v| (v.to_string(), me));
            }
            ["h", id, "gen", _, "timestamp", _, state, ..] => {
                let (Some((vg, me)), Ok(id)) = (&ls, id.parse::<u32>()) else {
                    continue;
                };
                if Some(id) == *me {
                    continue;
                }
                let t = times.get(&(format!("lvm_{vg}"), id));
                let get = |k: &str| t.and_then(|t| t.get(k)).copied();
                let silent_s = match (get("last_check"), get("last_live")) {
                    (Some(c), Some(l)) => c.saturating_sub(l),
                    _ => 0,
                };
                out.entry(vg.clone()).or_default().push(LeaseHost {
                    host_id: id,
                    state: state.to_string(),
                    silent_s,
                    io_timeout: get("io_timeout").unwrap_or(10),
                });
            }
            _ => {}
        }
    }
    out
}

/// The lock offset of each LV of a sanlock VG (`lvs … lock_args`: `VERSION:OFFSET`), by LV
/// name; one process.
pub fn lock_offsets(r: &dyn Runner, vg: &str) -> Option<BTreeMap<String, u64>> {
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
    parse_lock_offsets(&o.stdout)
}

/// [`lock_offsets`] from the report's text.
pub fn parse_lock_offsets(report: &str) -> Option<BTreeMap<String, u64>> {
    let report: serde_json::Value = serde_json::from_str(report).ok()?;
    Some(
        report["report"][0]["lv"]
            .as_array()?
            .iter()
            .filter_map(|l| {
                let off = l["lv_lockargs"]
                    .as_str()?
                    .rsplit(':')
                    .next()?
                    .parse()
                    .ok()?;
                Some((l["lv_name"].as_str()?.to_string(), off))
            })
            .collect(),
    )
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
    let offset = *lock_offsets(r, vg)?.get(lv)?;
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

/// The rows of subreport `key` (`pv`, `vg`, `lv`, `seg`) from every part of `lvm fullreport`
/// (one part per VG, and one for the PVs in no VG).
fn full_rows<T: for<'de> Deserialize<'de>>(
    parts: &[BTreeMap<String, Vec<serde_json::Value>>],
    key: &str,
) -> Result<Vec<T>, String> {
    let mut out = Vec::new();
    for part in parts {
        for row in part.get(key).into_iter().flatten() {
            out.push(
                T::deserialize(row)
                    .map_err(|e| format!("cannot read the {key} rows of lvm fullreport: {e}"))?,
            );
        }
    }
    Ok(out)
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

#[derive(Deserialize, Clone, Default)]
struct RawLv {
    lv_name: String,
    vg_name: String,
    #[serde(default)]
    lv_uuid: String,
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

/// An LV's row in `lvm fullreport` (`FULL_LV_FIELDS`): `lvs`'s fields but the segment's
/// (`devices`, `segtype`: from the seg rows, joined by `lv_uuid`), and the thin ones.
#[derive(Deserialize)]
struct RawFullLv {
    #[serde(flatten)]
    lv: RawLv,
    #[serde(default)]
    pool_lv: String,
    #[serde(default)]
    lv_metadata_size: String,
    #[serde(default)]
    data_percent: String,
    #[serde(default)]
    metadata_percent: String,
}

/// A segment's row in `lvm fullreport` (`SEG_FIELDS`).
#[derive(Deserialize)]
struct RawSeg {
    lv_uuid: String,
    #[serde(default)]
    segtype: String,
    #[serde(default)]
    devices: String,
    #[serde(default)]
    chunk_size: String,
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
    /// LVM from `pvs`, `vgs` and `lvs -a` reports (`PV_FIELDS`, `VG_FIELDS`, `LV_FIELDS`), as
    /// the fixtures captured them; discovery reads [`Lvm::parse_full`].
    pub fn parse(pvs: &str, vgs: &str, lvs: &str) -> Result<Lvm, String> {
        Ok(Lvm::from_rows(
            rows::<RawPv>(pvs, "pv")?,
            rows::<RawVg>(vgs, "vg")?,
            rows::<RawLv>(lvs, "lv")?,
        ))
    }

    /// LVM from one `lvm fullreport` ([`FULLREPORT`]): its LV rows joined with their segments
    /// (by `lv_uuid`) read as `lvs` with segment columns reads, one row per segment; thin
    /// pools and thin LVs complete from the same rows. Empty output (no LVM tools) is no LVM.
    pub fn parse_full(json: &str) -> Result<Lvm, String> {
        if json.trim().is_empty() {
            return Ok(Lvm::default());
        }
        let r: Report<serde_json::Value> =
            serde_json::from_str(json).map_err(|e| format!("cannot read lvm fullreport: {e}"))?;
        let parts = r.report;
        let mut segs: BTreeMap<String, Vec<RawSeg>> = BTreeMap::new();
        for g in full_rows::<RawSeg>(&parts, "seg")? {
            segs.entry(g.lv_uuid.clone()).or_default().push(g);
        }
        let mut lvs = Vec::new();
        let mut thin = Vec::new();
        for l in full_rows::<RawFullLv>(&parts, "lv")? {
            let mine = segs.remove(&l.lv.lv_uuid).unwrap_or_default();
            let row = l.lv;
            let first = mine.first().map(|g| g.segtype.clone()).unwrap_or_default();
            if first == "thin-pool" || first == "thin" {
                thin.push(RawThin {
                    lv_name: row.lv_name.clone(),
                    vg_name: row.vg_name.clone(),
                    segtype: first,
                    pool_lv: l.pool_lv,
                    chunk_size: mine
                        .first()
                        .map(|g| g.chunk_size.clone())
                        .unwrap_or_default(),
                    lv_metadata_size: l.lv_metadata_size,
                    data_percent: l.data_percent,
                    metadata_percent: l.metadata_percent,
                });
            }
            if mine.is_empty() {
                lvs.push(row);
                continue;
            }
            for g in mine {
                lvs.push(RawLv {
                    devices: g.devices,
                    segtype: g.segtype,
                    ..row.clone()
                });
            }
        }
        let mut out = Lvm::from_rows(
            full_rows::<RawPv>(&parts, "pv")?,
            full_rows::<RawVg>(&parts, "vg")?,
            lvs,
        );
        out.merge_thin(thin);
        // fullreport lists PVs VG by VG, the PVs in no VG last; `pvs` by name (its default
        // sort, `pv_name`, compares as strcmp does). Discovery keeps pvs's order.
        out.pvs.sort_by(|a, b| a.device.cmp(&b.device));
        Ok(out)
    }

    fn from_rows(pvs: Vec<RawPv>, vgs: Vec<RawVg>, lvs: Vec<RawLv>) -> Lvm {
        let mut out = Lvm::default();
        for p in pvs {
            out.pvs.push(Pv {
                device: p.pv_name,
                vg: p.vg_name,
                size: bytes(&p.pv_size),
                free: bytes(&p.pv_free),
                uuid: p.pv_uuid,
            });
        }
        for v in vgs {
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
        for l in lvs {
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
                uuid: l.lv_uuid.clone(),
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
        out
    }

    /// Whether the first `lvs` showed thin pools or thin LVs (the thin report is then asked).
    pub fn has_thin(&self) -> bool {
        self.lvs.values().any(|l| l.thin.is_some())
    }

    /// Merge a captured thin report (`lvs -a … -o THIN_FIELDS`) into the LVs it names.
    pub fn add_thin(&mut self, json: &str) -> Result<(), String> {
        self.merge_thin(rows::<RawThin>(json, "lv")?);
        Ok(())
    }

    fn merge_thin(&mut self, rows: Vec<RawThin>) {
        for t in rows {
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
    }

    /// The thin pool of a thin LV.
    pub fn pool_of(&self, key: &str) -> Option<&str> {
        match &self.lvs.get(key)?.thin {
            Some(Thin::Volume { pool, .. }) => Some(pool),
            _ => None,
        }
    }

    /// Read LVM with one process. No LVM tools installed means no LVM here.
    pub fn discover(r: &dyn Runner) -> Result<Lvm, String> {
        let out = match r.check(FULLREPORT) {
            Ok(o) => o.stdout,
            Err(RunError::NotFound { .. }) => String::new(),
            Err(e) => return Err(e.to_string()),
        };
        let mut lvm = Lvm::parse_full(&out)?;
        lvm.lockd = lockd_running(r);
        if lvm.lockd {
            // One process more, only where lvmlockd runs.
            if let Ok(o) = r.check(&["lvmlockctl", "--info"]) {
                lvm.lockspaces = parse_lockspaces(&o.stdout);
                lvm.shared_here = lvm.shared_locks(&o.stdout);
            }
        }
        if !lvm.lockspaces.is_empty() {
            lvm.read_leases(r);
        }
        Ok(lvm)
    }
}

impl Lvm {
    /// The LVs whose lock `lvmlockctl --info` shows held shared here (`LK LV sh UUID`), by
    /// `VG/LV`.
    pub fn shared_locks(&self, info: &str) -> BTreeSet<String> {
        let uuids: BTreeSet<&str> = info
            .lines()
            .filter_map(|l| l.strip_prefix("LK LV sh "))
            .map(str::trim)
            .collect();
        self.lvs
            .iter()
            .filter(|(_, l)| !l.uuid.is_empty() && uuids.contains(l.uuid.as_str()))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Where a lockspace is started: whether the other hosts still renew their leases (two
    /// processes), and, in a VG where one has stopped, who holds each LV's lease (one
    /// `sanlock direct dump` per such VG). Read only: sanlock answers from its own state.
    pub(crate) fn read_leases(&mut self, r: &dyn Runner) {
        let out = |argv: &[&str]| r.check(argv).map(|o| o.stdout).unwrap_or_default();
        let gets = out(&["sanlock", "client", "gets", "-h", "1"]);
        if gets.is_empty() {
            return;
        }
        let status = out(&["sanlock", "client", "host_status", "-D"]);
        self.lease_hosts = parse_lease_hosts(&gets, &status);
        self.lease_hosts
            .retain(|vg, _| self.lockspaces.contains(vg));
        let troubled: Vec<String> = self
            .lease_hosts
            .iter()
            .filter(|(_, hs)| hs.iter().any(LeaseHost::stopped))
            .map(|(vg, _)| vg.clone())
            .collect();
        for vg in troubled {
            let Some(offsets) = lock_offsets(r, &vg) else {
                continue;
            };
            let Some(first) = offsets.values().min() else {
                continue;
            };
            let lock_lv = format!("/dev/mapper/{}", dm_name(&vg, "lvmlock"));
            let dump = out(&["sanlock", "direct", "dump", &format!("{lock_lv}:{first}")]);
            for (lv, off) in &offsets {
                if let Some(h) = lease_owner(&dump, *off) {
                    self.leases.insert(format!("{vg}/{lv}"), h);
                }
            }
        }
    }

    /// The host holding `vg/lv`'s lease, as sanlock sees it, when it has stopped renewing
    /// (failing or dead); None when the LV's lease was not read or its holder renews.
    pub fn stopped_holder(&self, key: &str) -> Option<&LeaseHost> {
        let vg = key.split('/').next()?;
        let id = self.leases.get(key)?;
        self.lease_hosts
            .get(vg)?
            .iter()
            .find(|h| h.host_id == *id && h.stopped())
    }
}

/// Wait until this host's sanlock calls `host_id` of `lockspace` (`lvm_VG`) dead (or free):
/// its leases can then be taken. Polls `sanlock client gets -h 1` every `poll`; fails after
/// `timeout_s`, or when the lockspace is not started here.
pub fn await_dead(
    r: &dyn Runner,
    lockspace: &str,
    host_id: u32,
    timeout_s: u64,
    poll: std::time::Duration,
) -> Result<(), RunError> {
    let start = std::time::Instant::now();
    let vg = lockspace.strip_prefix("lvm_").unwrap_or(lockspace);
    let fail = |why: String| RunError::Failed {
        argv: format!("wait for sanlock to call host_id {host_id} of {lockspace} dead"),
        status: 1,
        stderr: why,
    };
    loop {
        let gets = r.check(&["sanlock", "client", "gets", "-h", "1"])?.stdout;
        let hosts = parse_lease_hosts(&gets, "");
        let Some(hs) = hosts.get(vg) else {
            return Err(fail(format!(
                "sanlock has no lockspace {lockspace} here: start it (`vgchange --lock-start {vg}`)"
            )));
        };
        let state = match hs.iter().find(|h| h.host_id == host_id) {
            None => return Ok(()),
            Some(h) if h.dead() || h.state == "FREE" => return Ok(()),
            Some(h) => h.state.clone(),
        };
        if start.elapsed().as_secs() >= timeout_s {
            return Err(fail(format!(
                "after {timeout_s} s sanlock still calls host_id {host_id} {state}: it renews its lease again, or this host's sanlock cannot read it; its leases stay held"
            )));
        }
        std::thread::sleep(poll);
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

/// LVM as captured at `tag` in tests/fixtures/`dir` (`pvs/vgs/lvs-TAG.json`), with lvmlockd
/// running and what `lvmlockctl-info-TAG` says (the lockspaces started, the LVs held shared).
#[cfg(test)]
pub(crate) fn captured_at(dir: &str, tag: &str) -> Lvm {
    let d = |n: &str| crate::runner::fixtures::text(&format!("{dir}/{n}"));
    let mut l = Lvm::parse(
        &d(&format!("pvs-{tag}.json")),
        &d(&format!("vgs-{tag}.json")),
        &d(&format!("lvs-{tag}.json")),
    )
    .expect("the captured reports");
    l.lockd = true;
    let info = d(&format!("lvmlockctl-info-{tag}"));
    l.lockspaces = parse_lockspaces(&info);
    l.shared_here = l.shared_locks(&info);
    l
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

    /// kvm1 of tests/fixtures/cluster-dead, as kvm2's sanlock sees it after kvm1 lost its
    /// power: `tag` is the capture's (`live`, or the iteration N of `gets-N`).
    fn kvm1_seen(tag: &str) -> LeaseHost {
        let hosts = parse_lease_hosts(
            &fixture("cluster-dead", &format!("gets-{tag}")),
            &fixture("cluster-dead", &format!("host-status-{tag}")),
        );
        hosts["vgshared"]
            .iter()
            .find(|h| h.host_id == 1)
            .cloned()
            .expect("host 1")
    }

    #[test]
    fn a_host_that_lost_its_power_goes_silent_then_failing_then_dead() {
        let live = kvm1_seen("live");
        assert_eq!(
            (live.state.as_str(), live.silent_s, live.io_timeout),
            ("LIVE", 0, 10)
        );
        assert!(!live.failing() && !live.dead());
        // sanlock still says LIVE 62 s after the last renewal it saw: silent for more than two
        // renewals (20 s each), it is taken as stopped already.
        let quiet = kvm1_seen("5");
        assert_eq!((quiet.state.as_str(), quiet.silent_s), ("LIVE", 62));
        assert!(quiet.failing());
        let fail = kvm1_seen("7");
        assert_eq!((fail.state.as_str(), fail.silent_s), ("FAIL", 82));
        assert!(fail.failing() && !fail.dead());
        assert_eq!((fail.dead_after_s(), fail.dead_in_s()), (140, 58));
        let dead = kvm1_seen("12");
        assert_eq!((dead.state.as_str(), dead.silent_s), ("DEAD", 144));
        assert!(dead.dead() && !dead.failing());
        // kvm2 reads the lockspace as host 2 (`s lvm_vgshared:2:…`): it is not among the
        // other hosts, whatever its own lease's state.
        assert!(fixture("cluster-dead", "gets-12").starts_with("s lvm_vgshared:2:"));
        let others = parse_lease_hosts(
            &fixture("cluster-dead", "gets-12"),
            &fixture("cluster-dead", "host-status-12"),
        );
        assert_eq!(
            others["vgshared"]
                .iter()
                .map(|h| h.host_id)
                .collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn leases_are_read_only_where_a_host_has_stopped_and_name_its_holder() {
        use crate::runner::fixtures::scripted;
        // All renewing: two processes, no lease read.
        let r = scripted("cluster-dead", &["gets-live", "host-status-live"]);
        let mut l = captured_at("cluster-dead", "live");
        l.read_leases(&r);
        assert!(r.remaining().is_empty());
        assert_eq!(l.lease_hosts["vgshared"].len(), 1);
        assert!(l.leases.is_empty());
        assert_eq!(l.stopped_holder("vgshared/web"), None);
        // kvm1 failing: the LVs' lock offsets, then their leases from the first offset.
        let r = scripted(
            "cluster-dead",
            &[
                "gets-7",
                "host-status-7",
                "lvs-lock-args-failing.json",
                "sanlock-dump-leases-failing",
            ],
        );
        let mut l = captured_at("cluster-dead", "failing");
        l.read_leases(&r);
        assert!(r.remaining().is_empty());
        assert_eq!(l.leases.get("vgshared/web"), Some(&1));
        let h = l
            .stopped_holder("vgshared/web")
            .expect("held by a failing host");
        assert_eq!((h.host_id, h.state.as_str()), (1, "FAIL"));
        // Once kvm2 took it, the holder is kvm2 itself, which renews: no stopped holder.
        let r = scripted(
            "cluster-dead",
            &[
                "gets-after",
                "host-status-after",
                "lvs-lock-args-taken.json",
                "sanlock-dump-leases-taken",
            ],
        );
        let mut l = captured_at("cluster-dead", "taken");
        l.read_leases(&r);
        assert_eq!(l.leases.get("vgshared/web"), Some(&2));
        assert_eq!(l.stopped_holder("vgshared/web"), None);
    }

    #[test]
    fn the_wait_for_a_death_ends_when_sanlock_calls_the_host_dead_or_gives_up() {
        use crate::runner::fixtures::scripted;
        let zero = std::time::Duration::ZERO;
        let r = scripted("cluster-dead", &["gets-7", "gets-11", "gets-12"]);
        await_dead(&r, "lvm_vgshared", 1, 200, zero).expect("dead at the third look");
        assert!(r.remaining().is_empty());
        let r = scripted("cluster-dead", &["gets-7"]);
        let e = await_dead(&r, "lvm_vgshared", 1, 0, zero).unwrap_err();
        assert!(e.to_string().contains("still calls host_id 1 FAIL"), "{e}");
        let r = scripted("cluster-dead", &["gets-7"]);
        let e = await_dead(&r, "lvm_other", 1, 200, zero).unwrap_err();
        assert!(e.to_string().contains("no lockspace lvm_other here"), "{e}");
    }

    /// Only lvmlockd tells a shared lock from an exclusive one: `lvs` says "active
    /// exclusively" in both (tests/fixtures/cluster-shared).
    #[test]
    fn an_lv_held_shared_here_is_read_from_lvmlockd() {
        let at = |tag: &str| captured_at("cluster-shared", tag).shared_here;
        assert!(at("ex").is_empty());
        assert_eq!(at("sh"), BTreeSet::from(["vgshared/web".to_string()]));
        assert_eq!(at("sh-both"), BTreeSet::from(["vgshared/web".to_string()]));
        assert!(at("ex-again").is_empty());
        assert!(fixture("cluster-shared", "lvs-active-sh").contains("active exclusively"));
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
            1,
            "one lvm fullreport for PVs, VGs and LVs"
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
        let r = fx("blank");
        let lvm = Lvm::discover(&r).unwrap();
        assert!(lvm.pvs.is_empty() && lvm.vgs.is_empty() && lvm.lvs.is_empty());
        // Answered by the capture, not by its absence.
        let o = r.check(FULLREPORT).expect("captured");
        assert_eq!(o.stdout, fixture("blank", "fullreport.json"));
        assert!(Lvm::parse("{", "", "").is_err());
        assert!(Lvm::parse_full("{").is_err());
        assert!(Lvm::parse_full(r#"{"report": [{"lv": [{"lv_name": 3}]}]}"#).is_err());
    }

    /// Every scenario discovery is replayed on holds discovery's `lvm fullreport`, captured
    /// in the same state as `pvs`, `vgs` and `lvs -a` (and the thin report): both read to the
    /// same LVM, PVs in no VG, hidden LVs, snapshots, tags, thin pools and all.
    #[test]
    fn one_fullreport_reads_as_the_three_reports_did() {
        for scenario in [
            "blank",
            "full",
            "reused",
            "failed",
            "replaced",
            "tagged",
            "opened",
            "thin",
            "lvm-shapes",
            "lvm-missing",
        ] {
            // Captured with the argv discovery asks.
            let o = fx(scenario)
                .check(FULLREPORT)
                .unwrap_or_else(|e| panic!("{scenario}: {e}"));
            assert_eq!(o.stdout, fixture(scenario, "fullreport.json"), "{scenario}");
            let full = Lvm::parse_full(&o.stdout).unwrap();
            let mut three = Lvm::parse(
                &fixture(scenario, "pvs.json"),
                &fixture(scenario, "vgs.json"),
                &fixture(scenario, "lvs.json"),
            )
            .unwrap();
            if three.has_thin() {
                three.add_thin(&fixture(scenario, "lvs-thin.json")).unwrap();
            }
            assert_eq!(full, three, "{scenario}");
            assert_eq!(Lvm::discover(&fx(scenario)).unwrap(), full, "{scenario}");
        }
        // Not vacuous: the scenarios hold PVs in no VG, LVs in two segments on two PVs,
        // hidden LVs, thin pools, snapshots, and a VG whose PV is gone.
        let shapes = Lvm::parse_full(&fixture("lvm-shapes", "fullreport.json")).unwrap();
        assert!(
            shapes
                .pvs
                .iter()
                .any(|p| p.device == "/dev/vdb1" && p.vg.is_empty())
        );
        assert_eq!(shapes.lvs["vgm/spread"].devices, ["/dev/vdb2", "/dev/vdb3"]);
        assert_eq!(shapes.lvs["vgm/spread"].size, 72 << 20);
        let missing = Lvm::parse_full(&fixture("lvm-missing", "fullreport.json")).unwrap();
        assert!(missing.pvs.iter().any(|p| p.device == "[unknown]"));
        assert_eq!(
            missing.lvs["vgm/spread"].devices,
            ["/dev/vdb2", "[unknown]"]
        );
        let thin = Lvm::parse_full(&fixture("thin", "fullreport.json")).unwrap();
        assert!(thin.lvs.values().any(|l| l.internal));
        assert!(thin.pool_of("vgt/web").is_some());
        let full = Lvm::parse_full(&fixture("full", "fullreport.json")).unwrap();
        assert!(full.lvs.values().any(|l| l.origin.is_some()));
    }
}
