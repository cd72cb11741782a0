//! Thin pools and their thin LVs: create, adopt, grow and remove them, under the same rules as
//! plain LVs.
//!
//! A pool is its own kind (`51:thin-pool:VG/POOL:create`, `53:…:extend`, `53:…:metadata`,
//! `54:…:protect`, `05:thin-pool:…:remove`). A thin LV is an LV to everything above storage: its
//! ops carry the LV ids (`50:lv:VG/LV:create`, `50:lv:…:extend`, `57:lv:…:mkfs`, …), so a guest
//! on it waits for it, and is stopped while it grows, like a guest on a plain LV.
//!
//! LVM cannot shrink a thin pool, nor change its chunk size; hostform does not shrink a thin LV.
//! Those are refused, with the reason.

use super::*;
use crate::kinds::lvm::Thin;
use crate::plan::Outcome;
use crate::spec::units::Size;

fn pool_addr(vg: &str, pool: &str) -> Address {
    Address::ThinPool {
        vg: vg.into(),
        pool: pool.into(),
    }
}

/// What adopting a pool or a thin LV concluded: identity, or the updates it needs.
fn outcome(reasons: Vec<String>) -> Outcome {
    if reasons.is_empty() {
        Outcome::Identity("matches".into())
    } else {
        Outcome::Changed(Action::Update, reasons)
    }
}

fn round(b: u64, extent: u64) -> u64 {
    b.div_ceil(extent) * extent
}

/// `4194304` → `4096k`: LVM's units for sizes it takes in KiB (`--chunksize`).
fn kib(b: u64) -> String {
    format!("{}k", b / 1024)
}

/// Plan the thin pools of a VG that exists or is created by `after_vg`, and their thin LVs.
pub(super) fn pools(c: &mut Ctx, vgname: &str, vg: &VolumeGroup, extent: u64, after_vg: &[OpId]) {
    for (pname, pool) in &vg.thin_pools {
        if pool.state == Presence::Absent {
            continue; // teardown
        }
        let Some(ready) = pool_ready(c, vgname, pname, pool, extent, after_vg) else {
            continue;
        };
        for (lname, lv) in &pool.lvs {
            if lv.state == Presence::Present {
                thin_lv(c, vgname, pname, lname, lv, extent, &ready);
            }
        }
    }
}

/// The pool's data size as asked: whole extents and, when its chunks are larger, whole chunks,
/// so that LVM makes exactly what the next reading compares.
fn pool_size(c: &Ctx, key: &str, pool: &ThinPool, extent: u64) -> Option<u64> {
    let chunk = pool
        .chunk_size
        .map(|c| c.value.0)
        .or_else(
            || match c.facts.lvm.lvs.get(key).and_then(|l| l.thin.as_ref()) {
                Some(Thin::Pool { chunk_size, .. }) => Some(*chunk_size),
                _ => None,
            },
        )
        .unwrap_or(0);
    Some(round(pool.size?.value.0, extent.max(chunk)))
}

/// What the spec asks of an existing pool that LVM cannot do (`now`: its chunk size, metadata
/// size and data size): the refusal's reason and hint.
fn fixed(
    pool: &ThinPool,
    now: (u64, u64, u64),
    size: u64,
    meta: Option<u64>,
) -> Option<(String, String)> {
    let (chunk_size, metadata_size, cur) = now;
    if let Some(cs) = pool.chunk_size
        && cs.value.0 != chunk_size
    {
        return Some((
            format!(
                "has a chunk size of {}, the spec says {}: it is fixed when the pool is made",
                Size(chunk_size),
                cs.value
            ),
            format!("write `chunk-size: {}`, or leave it out", Size(chunk_size)),
        ));
    }
    if size < cur {
        return Some((
            format!("is {cur} bytes, the spec says {size}: LVM cannot shrink a thin pool"),
            "fix the spec to the real size (a thin pool only grows)".into(),
        ));
    }
    match meta {
        Some(m) if m < metadata_size => Some((
            format!(
                "has {metadata_size} bytes of metadata, the spec says {m}: LVM cannot shrink it"
            ),
            "fix the spec to the real metadata size".into(),
        )),
        _ => None,
    }
}

/// Create, adopt or grow one pool; the ops its thin LVs wait for, or `None` when refused.
fn pool_ready(
    c: &mut Ctx,
    vgname: &str,
    pname: &str,
    pool: &ThinPool,
    extent: u64,
    after_vg: &[OpId],
) -> Option<Vec<OpId>> {
    let key = format!("{vgname}/{pname}");
    let res = format!("thin pool {key}");
    let size = pool_size(c, &key, pool, extent)?;
    let meta = pool.metadata_size.map(|m| round(m.value.0, extent));
    let Some(cur) = c.facts.lvm.lvs.get(&key).cloned() else {
        let id = create_pool(c, vgname, pname, pool, size, meta, after_vg);
        return Some(vec![id]);
    };
    let Some(Thin::Pool {
        chunk_size,
        metadata_size,
        ..
    }) = cur.thin
    else {
        c.refuse(
            &res,
            format!("{key} is an LV, but not a thin pool"),
            "hostform does not convert LVs: use another name, or remove the LV first",
        );
        return None;
    };
    let mut reasons = Vec::new();
    let mut ready = after_vg.to_vec();
    if let Some((why, hint)) = fixed(pool, (chunk_size, metadata_size, cur.size), size, meta) {
        c.refuse(&res, why, hint);
        return None;
    }
    if size > cur.size {
        ready.push(
            c.add(
                Op::run(
                    OpId::new(53, pool_addr(vgname, pname), Verb::Extend),
                    &res,
                    format!("grow thin pool {key} from {} to {size}", cur.size),
                    vec![
                        s("lvextend"),
                        s("--quiet"),
                        s("-L"),
                        format!("{size}b"),
                        key.clone(),
                    ],
                )
                .on_root()
                .after(after_vg.to_vec()),
            ),
        );
        reasons.push(format!("grows from {} to {size} bytes", cur.size));
    }
    if let Some(m) = meta
        && m > metadata_size
    {
        ready.push(
            c.add(
                Op::run(
                    OpId::new(53, pool_addr(vgname, pname), Verb::Metadata),
                    &res,
                    format!("grow the metadata of {key} from {metadata_size} to {m}"),
                    vec![
                        s("lvextend"),
                        s("--quiet"),
                        s("--poolmetadatasize"),
                        kib(m),
                        key.clone(),
                    ],
                )
                .on_root()
                .after(after_vg.to_vec()),
            ),
        );
        reasons.push(format!("metadata grows from {metadata_size} to {m} bytes"));
    }
    if pool.prevent_destroy && !cur.protected() {
        c.add(
            Op::run(
                OpId::new(54, pool_addr(vgname, pname), Verb::Protect),
                &res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(&key),
            )
            .on_root()
            .after(after_vg.to_vec()),
        );
        reasons.push("prevent-destroy: tagged on the host".into());
    }
    c.plan.record(&res, outcome(reasons));
    Some(ready)
}

/// `lvcreate --type thin-pool` (and its protection); the op its thin LVs wait for.
fn create_pool(
    c: &mut Ctx,
    vgname: &str,
    pname: &str,
    pool: &ThinPool,
    size: u64,
    meta: Option<u64>,
    after_vg: &[OpId],
) -> OpId {
    let key = format!("{vgname}/{pname}");
    let res = format!("thin pool {key}");
    let mut argv = vec![
        s("lvcreate"),
        s("--quiet"),
        s("--yes"),
        s("--type"),
        s("thin-pool"),
        s("-L"),
        format!("{size}b"),
    ];
    if let Some(cs) = pool.chunk_size {
        argv.extend([s("--chunksize"), kib(cs.value.0)]);
    }
    if let Some(m) = meta {
        argv.extend([s("--poolmetadatasize"), kib(m)]);
    }
    argv.extend([s("-n"), s(pname), s(vgname)]);
    let id = c.add(
        Op::run(
            OpId::new(51, pool_addr(vgname, pname), Verb::Create),
            &res,
            format!("create thin pool {key} ({})", Size(size)),
            argv,
        )
        .on_root()
        .after(after_vg.to_vec()),
    );
    if pool.prevent_destroy {
        c.add(
            Op::run(
                OpId::new(54, pool_addr(vgname, pname), Verb::Protect),
                &res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(&key),
            )
            .on_root()
            .after(vec![id.clone()]),
        );
    }
    c.plan.record(
        &res,
        Outcome::Changed(Action::Create, vec!["no such thin pool".into()]),
    );
    id
}

fn mkfs(fs: Filesystem, path: &str) -> Option<(&'static str, Vec<String>)> {
    Some(match fs {
        Filesystem::Ext4 => ("ext4", vec![s("mkfs.ext4"), s("-q"), s(path)]),
        Filesystem::Xfs => ("xfs", vec![s("mkfs.xfs"), s("-q"), s(path)]),
        Filesystem::Swap => ("swap", vec![s("mkswap"), s(path)]),
        Filesystem::None => return None,
    })
}

/// `lvcreate --type thin`, then its filesystem and protection.
fn create_thin(
    c: &mut Ctx,
    vgname: &str,
    pname: &str,
    lname: &str,
    lv: &ThinLv,
    size: u64,
    ready: &[OpId],
) {
    let key = format!("{vgname}/{lname}");
    let res = format!("lv {key}");
    let fs = mkfs(lv.fs, &format!("/dev/{vgname}/{lname}"));
    let id = c.add(
        Op::run(
            OpId::new(50, Address::lv(vgname, lname), Verb::Create),
            &res,
            format!(
                "create thin LV {key} ({} virtual, in pool {pname})",
                Size(size)
            ),
            vec![
                s("lvcreate"),
                s("--quiet"),
                s("--yes"),
                s("--type"),
                s("thin"),
                s("-V"),
                format!("{size}b"),
                s("-n"),
                s(lname),
                format!("{vgname}/{pname}"),
            ],
        )
        .on_root()
        .after(ready.to_vec()),
    );
    if let Some((w, argv)) = fs {
        c.add(
            Op::run(
                OpId::new(57, Address::lv(vgname, lname), Verb::Mkfs),
                &res,
                format!("create {w} on {key}"),
                argv,
            )
            .after(vec![id.clone()]),
        );
    }
    if lv.prevent_destroy {
        c.add(
            Op::run(
                OpId::new(58, Address::lv(vgname, lname), Verb::Protect),
                &res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(&key),
            )
            .on_root()
            .after(vec![id]),
        );
    }
    c.plan.record(
        &res,
        Outcome::Changed(Action::Create, vec!["no such thin LV".into()]),
    );
}

/// A thin LV on the host that is in another pool, or not a thin LV at all: refused (true).
fn in_another_pool(c: &mut Ctx, res: &str, key: &str, pname: &str) -> bool {
    match c.facts.lvm.pool_of(key) {
        Some(p) if p == pname => {}
        Some(p) => {
            c.refuse(
                res,
                format!("{key} is a thin LV of pool {p}, the spec puts it in {pname}"),
                "hostform does not move thin LVs between pools: fix the spec",
            );
            return true;
        }
        None => {
            c.refuse(
                res,
                format!("{key} is an LV, but not a thin LV"),
                "hostform does not convert LVs: use another name, or remove the LV first",
            );
            return true;
        }
    }
    false
}

/// Create, adopt or grow one thin LV of a pool that exists or is made by `ready`.
fn thin_lv(
    c: &mut Ctx,
    vgname: &str,
    pname: &str,
    lname: &str,
    lv: &ThinLv,
    extent: u64,
    ready: &[OpId],
) {
    let key = format!("{vgname}/{lname}");
    let res = format!("lv {key}");
    let path = format!("/dev/{vgname}/{lname}");
    let Some(size) = lv.size.map(|s| round(s.value.0, extent)) else {
        return;
    };
    let fs = mkfs(lv.fs, &path);
    let Some(cur) = c.facts.lvm.lvs.get(&key).cloned() else {
        create_thin(c, vgname, pname, lname, lv, size, ready);
        return;
    };
    if in_another_pool(c, &res, &key, pname) {
        return;
    }
    let dm = crate::kinds::lvm::dm_name(vgname, lname);
    let fstype = c.facts.blocks.by_name(&dm).and_then(|b| b.fstype.clone());
    let mut reasons = Vec::new();
    if size < cur.size {
        c.refuse(
            &res,
            format!(
                "is {} bytes (virtual), the spec says {size}: hostform does not shrink a thin LV",
                cur.size
            ),
            "fix the spec to the real size",
        );
        return;
    }
    if size > cur.size {
        let mut argv = vec![s("lvextend"), s("--quiet"), s("-L"), format!("{size}b")];
        if fstype.is_some() && fs.as_ref().is_some_and(|(w, _)| *w != "swap") {
            argv.push(s("--resizefs"));
        }
        argv.push(key.clone());
        c.add(
            Op::run(
                OpId::new(50, Address::lv(vgname, lname), Verb::Extend),
                &res,
                format!("grow thin LV {key} from {} to {size} (virtual)", cur.size),
                argv,
            )
            .on_root()
            .after(ready.to_vec()),
        );
        reasons.push(format!("grows from {} to {size} bytes", cur.size));
    }
    if !cur.active && !cur.open {
        // No device node: its filesystem is read again after activation, never made blind.
        c.add(
            Op::run(
                OpId::new(52, Address::lv(vgname, lname), Verb::Activate),
                &res,
                format!("activate {key} (inactive: its filesystem could not be read)"),
                vec![s("lvchange"), s("--quiet"), s("-ay"), key.clone()],
            )
            .after(ready.to_vec()),
        );
        reasons.push("inactive: activated".into());
    } else {
        match (fs, fstype.as_deref()) {
            (Some((w, argv)), None) => {
                c.add(
                    Op::run(
                        OpId::new(57, Address::lv(vgname, lname), Verb::Mkfs),
                        &res,
                        format!("create {w} on {key} (it holds no signature)"),
                        argv,
                    )
                    .after(ready.to_vec()),
                );
                reasons.push(format!("new {w}"));
            }
            (Some((w, _)), Some(f)) if w != f => {
                c.refuse(
                    &res,
                    format!("holds {f}, the spec says {w}"),
                    "hostform does not reformat by accident; fix the spec, or remove the thin LV (state: absent) and make it again",
                );
                return;
            }
            _ => {}
        }
    }
    if lv.prevent_destroy && !cur.protected() {
        c.add(
            Op::run(
                OpId::new(58, Address::lv(vgname, lname), Verb::Protect),
                &res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(&key),
            )
            .on_root()
            .after(ready.to_vec()),
        );
        reasons.push("prevent-destroy: tagged on the host".into());
    }
    c.plan.record(&res, outcome(reasons));
}

/// An LV of the spec's `lvs` that is a thin pool or a thin LV on the host: refused (true), never
/// grown, shrunk or formatted as a plain LV (a filesystem on a pool's device would destroy it).
pub(super) fn not_plain(c: &mut Ctx, res: &str, key: &str) -> bool {
    let what = match c.facts.lvm.lvs.get(key).and_then(|l| l.thin.as_ref()) {
        Some(Thin::Pool { .. }) => "a thin pool",
        Some(Thin::Volume { .. }) => "a thin LV",
        None => return false,
    };
    c.refuse(
        res,
        format!("{key} is {what} on the host, the spec has a plain LV"),
        "describe it under the VG's `thin-pools` (`hostform discover` prints it so)",
    );
    true
}

/// Whether the spec marks this LV of the VG (a thin pool or a thin LV) `state: absent`.
pub(super) fn marked_absent(vg: &VolumeGroup, name: &str) -> bool {
    vg.thin_pools
        .get(name)
        .is_some_and(|p| p.state == Presence::Absent)
        || vg
            .thin_lv(name)
            .is_some_and(|(_, l)| l.state == Presence::Absent)
}

/// The resources of a VG's thin pools, as a plan names them (deferred with their VG).
pub(super) fn resources(vgname: &str, vg: &VolumeGroup) -> Vec<String> {
    vg.thin_pools
        .iter()
        .flat_map(|(p, pool)| {
            std::iter::once(format!("thin pool {vgname}/{p}"))
                .chain(pool.lvs.keys().map(move |l| format!("lv {vgname}/{l}")))
        })
        .collect()
}

/// Whether this LV of the VG is in the spec as a thin pool or a thin LV.
pub(super) fn known(vg: &VolumeGroup, name: &str) -> bool {
    vg.thin_pools.contains_key(name) || vg.thin_lv(name).is_some()
}

/// Remove what the spec marks absent: thin LVs first, then their pool. The removal ops, which
/// the VG's own removal waits for.
pub(super) fn teardown(c: &mut Ctx, vgname: &str, vg: &VolumeGroup) -> Vec<OpId> {
    let mut out = Vec::new();
    for (pname, pool) in &vg.thin_pools {
        let mut lv_ops = Vec::new();
        for (lname, lv) in &pool.lvs {
            if lv.state == Presence::Absent {
                let key = format!("{vgname}/{lname}");
                let res = format!("lv {key}");
                if let Some(id) = teardown::remove_lv(c, &res, &key, Vec::new()) {
                    lv_ops.push(id);
                }
            }
        }
        out.extend(lv_ops);
        if pool.state == Presence::Absent
            && let Some(id) = remove_pool(c, vgname, pname)
        {
            out.push(id);
        }
    }
    out
}

fn remove_pool(c: &mut Ctx, vgname: &str, pname: &str) -> Option<OpId> {
    let key = format!("{vgname}/{pname}");
    let res = format!("thin pool {key}");
    let Some(cur) = c.facts.lvm.lvs.get(&key) else {
        c.change(&res, Action::NoOp, "absent, as the spec says");
        return None;
    };
    if cur.protected() {
        c.refuse(
            &res,
            format!("carries the LVM tag {PREVENT_DESTROY_TAG} (set by `prevent-destroy: true`): it is never removed"),
            format!("if it really must go, remove the protection deliberately: `lvchange --deltag {PREVENT_DESTROY_TAG} {key}`, then plan again"),
        );
        return None;
    }
    // Its thin LVs on the host go first: each must be marked absent, and be removed here.
    let thin: Vec<String> = c
        .facts
        .lvm
        .lvs
        .keys()
        .filter(|k| c.facts.lvm.pool_of(k) == Some(pname) && k.starts_with(&format!("{vgname}/")))
        .cloned()
        .collect();
    let kept: Vec<&str> = thin
        .iter()
        .filter(|k| !c.removing.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    if !kept.is_empty() {
        let by = format!("its thin LV(s) {}", kept.join(", "));
        if c.may_destroy(&res, "marked `state: absent`") {
            c.refuse(
                &res,
                format!("stays while {by} stay"),
                "removing a pool removes its thin LVs: mark each `state: absent` under the pool's `lvs`",
            );
        }
        return None;
    }
    // A pool is open while its thin LVs are active: those go first. Otherwise, in use is in use.
    if cur.open && thin.is_empty() {
        c.refuse(
            &res,
            format!("is in use ({key} is open): hostform never removes what is in use"),
            "stop what uses it, then plan again",
        );
        return None;
    }
    if !c.may_destroy(&res, "marked `state: absent`: removing it deletes its data") {
        return None;
    }
    let after: Vec<OpId> = thin
        .iter()
        .filter_map(|k| c.removing.get(k).cloned())
        .collect();
    let id = c.add(
        Op::run(
            OpId::new(5, pool_addr(vgname, pname), Verb::Remove),
            &res,
            format!("remove thin pool {key}"),
            vec![s("lvremove"), s("--quiet"), s("--yes"), key.clone()],
        )
        .destructive()
        .on_root()
        .after(after),
    );
    // Its device-mapper devices (the pool, `-tpool`, `_tdata`, `_tmeta`) leave the PVs.
    let dm = crate::kinds::lvm::dm_name(vgname, pname);
    for n in [
        dm.clone(),
        format!("{dm}-tpool"),
        format!("{dm}_tdata"),
        format!("{dm}_tmeta"),
    ] {
        if let Some(b) = c.facts.blocks.by_name(&n) {
            c.freed.insert(b.kname.clone(), id.clone());
        }
    }
    c.removing.insert(key, id.clone());
    c.change(&res, Action::Delete, "state: absent");
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{Discovered, discover};
    use crate::plan::{Risk, plan_host};
    use crate::runner::fixtures::runner;
    use crate::spec::de::Sp;

    /// The captured host: VG vgt on vda, pool0 (256MiB, chunk 128KiB, metadata 4MiB), the thin
    /// LVs web (512MiB, ext4) and scratch (1GiB), and the plain LV plain (tagged).
    fn thin() -> Discovered {
        discover(&runner("thin")).expect("thin")
    }

    fn vgt(spec: &mut Spec) -> &mut VolumeGroup {
        spec.volume_groups.get_mut("vgt").expect("vgt")
    }

    fn pool0(spec: &mut Spec) -> &mut ThinPool {
        vgt(spec).thin_pools.get_mut("pool0").expect("pool0")
    }

    fn ids(p: &Plan) -> Vec<&str> {
        p.ops.iter().map(|o| o.id.as_str()).collect()
    }

    fn argv(p: &Plan, id: &str) -> Vec<String> {
        p.ops
            .iter()
            .find(|o| o.id == id)
            .unwrap_or_else(|| panic!("no op {id}: {:?}", ids(p)))
            .argv()
    }

    #[test]
    fn discovery_reads_pools_and_thin_lvs_in_its_one_lvm_process() {
        let r = runner("thin");
        let d = discover(&r).expect("thin");
        let lvm_asked: Vec<String> = r
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| {
                ["lvm ", "lvs ", "vgs ", "pvs "]
                    .iter()
                    .any(|p| a.starts_with(p))
            })
            .cloned()
            .collect();
        assert_eq!(lvm_asked.len(), 1, "one lvm fullreport: {lvm_asked:?}");
        let pool = &d.facts.lvm.lvs["vgt/pool0"];
        assert_eq!(pool.size, 256 << 20);
        assert!(matches!(
            pool.thin,
            Some(Thin::Pool { chunk_size: 131072, metadata_size: 4194304, ref data_percent, .. })
                if data_percent == "6.59"
        ));
        assert_eq!(d.facts.lvm.pool_of("vgt/web"), Some("pool0"));
        assert_eq!(d.facts.lvm.pool_of("vgt/scratch"), Some("pool0"));
        assert_eq!(d.facts.lvm.pool_of("vgt/plain"), None);
        for hidden in ["vgt/pool0_tdata", "vgt/pool0_tmeta", "vgt/lvol0_pmspare"] {
            assert!(d.facts.lvm.lvs[hidden].internal, "{hidden}");
        }
        let vg = &d.spec.volume_groups["vgt"];
        assert_eq!(
            vg.lvs.keys().map(|k| k.value.as_str()).collect::<Vec<_>>(),
            ["plain"],
            "pools and thin LVs are not plain LVs"
        );
        let pool = &vg.thin_pools["pool0"];
        assert_eq!(pool.size.unwrap().value.0, 256 << 20);
        assert_eq!(pool.chunk_size.unwrap().value.0, 128 << 10);
        assert_eq!(pool.metadata_size.unwrap().value.0, 4 << 20);
        assert_eq!(pool.lvs["web"].size.unwrap().value.0, 512 << 20);
        assert_eq!(pool.lvs["web"].fs, Filesystem::Ext4);
        assert_eq!(pool.lvs["scratch"].fs, Filesystem::None);
        // A host without thin provisioning costs the same one process.
        let r = runner("full");
        discover(&r).expect("full");
        let lvm_asked = r
            .asked
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.starts_with("lvm ") || a.starts_with("lvs "))
            .count();
        assert_eq!(lvm_asked, 1);
    }

    #[test]
    fn the_discovered_pool_is_adopted_with_no_op() {
        let d = thin();
        let p = plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(p.unmanaged.is_empty(), "{:?}", p.unmanaged);
        for res in ["thin pool vgt/pool0", "lv vgt/web", "lv vgt/scratch"] {
            assert!(
                p.changes
                    .iter()
                    .any(|c| c.resource == res && c.action == Action::NoOp),
                "{res}: {:?}",
                p.changes
            );
        }
    }

    #[test]
    fn pools_and_thin_lvs_left_out_of_the_spec_are_unmanaged_not_touched() {
        let d = thin();
        let mut spec = d.spec.clone();
        vgt(&mut spec).thin_pools.clear();
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert_eq!(
            p.unmanaged,
            ["lv vgt/pool0", "lv vgt/scratch", "lv vgt/web"]
        );
    }

    #[test]
    fn growing_a_pool_and_a_thin_lv_extends_them_and_the_ext4() {
        let d = thin();
        let mut spec = d.spec.clone();
        let pool = pool0(&mut spec);
        pool.size = Some(Sp::bare(Size(512 << 20)));
        pool.metadata_size = Some(Sp::bare(Size(8 << 20)));
        pool.lvs.get_mut("web").unwrap().size = Some(Sp::bare(Size(1 << 30)));
        // 1.5GiB virtual: rounded up to whole 4MiB extents.
        pool.lvs.get_mut("scratch").unwrap().size = Some(Sp::bare(Size((3 << 29) + 1)));
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argv(&p, "53:thin-pool:vgt/pool0:extend"),
            ["lvextend", "--quiet", "-L", "536870912b", "vgt/pool0"]
        );
        assert_eq!(
            argv(&p, "53:thin-pool:vgt/pool0:metadata"),
            [
                "lvextend",
                "--quiet",
                "--poolmetadatasize",
                "8192k",
                "vgt/pool0"
            ]
        );
        assert_eq!(
            argv(&p, "50:lv:vgt/web:extend"),
            [
                "lvextend",
                "--quiet",
                "-L",
                "1073741824b",
                "--resizefs",
                "vgt/web"
            ]
        );
        assert_eq!(
            argv(&p, "50:lv:vgt/scratch:extend"),
            ["lvextend", "--quiet", "-L", "1614807040b", "vgt/scratch"]
        );
        assert_eq!(p.ops.len(), 4, "{:?}", ids(&p));
        // Chunks larger than the extents: the pool is asked in whole chunks.
        let mut spec = d.spec.clone();
        let mut facts = d.facts.clone();
        if let Some(Thin::Pool { chunk_size, .. }) =
            &mut facts.lvm.lvs.get_mut("vgt/pool0").unwrap().thin
        {
            *chunk_size = 64 << 20;
        }
        let pool = pool0(&mut spec);
        pool.chunk_size = None;
        pool.size = Some(Sp::bare(Size(300 << 20)));
        let p = plan_host(&spec, &facts, &Default::default());
        assert_eq!(
            argv(&p, "53:thin-pool:vgt/pool0:extend"),
            ["lvextend", "--quiet", "-L", "335544320b", "vgt/pool0"]
        );
        // Growing writes over nothing: the write rule has nothing to say.
        assert!(p.ops.iter().all(|o| o.writes.is_empty()));
    }

    #[test]
    fn a_pool_is_never_shrunk_nor_rechunked_and_a_thin_lv_never_shrunk() {
        let d = thin();
        let mut spec = d.spec.clone();
        pool0(&mut spec).size = Some(Sp::bare(Size(128 << 20)));
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "thin pool vgt/pool0"
                    && r.reason.contains("LVM cannot shrink a thin pool")),
            "{:?}",
            p.refusals
        );
        let mut spec = d.spec.clone();
        pool0(&mut spec).chunk_size = Some(Sp::bare(Size(64 << 10)));
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(
            p.refusals.iter().any(|r| r
                .reason
                .contains("chunk size of 128KiB, the spec says 64KiB")),
            "{:?}",
            p.refusals
        );
        let mut spec = d.spec.clone();
        pool0(&mut spec).lvs.get_mut("web").unwrap().size = Some(Sp::bare(Size(256 << 20)));
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "lv vgt/web" && r.reason.contains("does not shrink")),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn a_plain_lv_is_not_taken_for_a_pool_nor_a_thin_lv() {
        let d = thin();
        let mut spec = d.spec.clone();
        let plain = vgt(&mut spec).lvs.shift_remove("plain").unwrap();
        assert!(plain.prevent_destroy);
        pool0(&mut spec).lvs.insert(
            Sp::bare("plain".into()),
            ThinLv {
                size: Some(Sp::bare(Size(64 << 20))),
                ..Default::default()
            },
        );
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "lv vgt/plain" && r.reason.contains("not a thin LV")),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn a_pool_or_thin_lv_written_as_a_plain_lv_is_refused_not_formatted() {
        let d = thin();
        let mut spec = d.spec.clone();
        vgt(&mut spec).thin_pools.clear();
        for name in ["pool0", "web"] {
            vgt(&mut spec).lvs.insert(
                Sp::bare(name.into()),
                crate::spec::types::Lv {
                    size: Some(Sp::bare(crate::spec::units::LvSize::Bytes(Size(1 << 30)))),
                    fs: Filesystem::Xfs,
                    ..Default::default()
                },
            );
        }
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        for (res, what) in [("lv vgt/pool0", "a thin pool"), ("lv vgt/web", "a thin LV")] {
            assert!(
                p.refusals
                    .iter()
                    .any(|r| r.resource == res && r.reason.contains(what)),
                "{res}: {:?}",
                p.refusals
            );
        }
    }

    /// `lvremove` of a pool removes its thin LVs with it: the write rule lets it through only
    /// when the plan removes every thin LV of the pool itself.
    #[test]
    fn a_pool_removed_as_a_plain_lv_with_its_thin_lvs_kept_is_refused_by_the_write_rule() {
        let d = thin();
        let mut spec = d.spec.clone();
        vgt(&mut spec).thin_pools.clear();
        vgt(&mut spec).lvs.insert(
            Sp::bare("pool0".into()),
            crate::spec::types::Lv {
                state: Presence::Absent,
                ..Default::default()
            },
        );
        let allow = crate::plan::Options {
            allow_destroy: true,
            ..Default::default()
        };
        let p = plan_host(&spec, &d.facts, &allow);
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "lv vgt/pool0" && r.reason.contains("vgt/pool0 is open")),
            "{:?}",
            p.refusals
        );
        // The rule itself, whatever the room decided: the pool's removal alone is refused; with
        // its two thin LVs' removals in the plan, it passes.
        let mut spec = d.spec.clone();
        absent(&mut spec);
        let all = plan_host(&spec, &d.facts, &allow).ops;
        let pool_only: Vec<Op> = all
            .iter()
            .filter(|o| o.id.as_str().starts_with("05:thin-pool"))
            .cloned()
            .collect();
        let verdict = |ops: &[Op]| {
            crate::plan::safety::verdicts(ops, &d.facts, &allow)
                .into_iter()
                .find(|(id, _, _)| id == "05:thin-pool:vgt/pool0:remove")
                .map(|(_, _, v)| v)
                .unwrap()
        };
        assert!(
            matches!(verdict(&pool_only), crate::plan::safety::Verdict::Refused(ref why) if why.contains("vgt/pool0 is open")),
            "{:?}",
            verdict(&pool_only)
        );
        assert!(verdict(&all).allowed(), "{:?}", verdict(&all));
    }

    #[test]
    fn blank_disks_get_pool_then_thin_lvs_then_their_filesystem() {
        let spec = thin().spec;
        let blank = discover(&runner("blank")).expect("blank").facts;
        let p = plan_host(&spec, &blank, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let pos = |id: &str| {
            p.ops
                .iter()
                .position(|o| o.id == id)
                .unwrap_or_else(|| panic!("no op {id}: {:?}", ids(&p)))
        };
        assert_eq!(
            argv(&p, "51:thin-pool:vgt/pool0:create"),
            [
                "lvcreate",
                "--quiet",
                "--yes",
                "--type",
                "thin-pool",
                "-L",
                "268435456b",
                "--chunksize",
                "128k",
                "--poolmetadatasize",
                "4096k",
                "-n",
                "pool0",
                "vgt"
            ]
        );
        assert_eq!(
            argv(&p, "50:lv:vgt/web:create"),
            [
                "lvcreate",
                "--quiet",
                "--yes",
                "--type",
                "thin",
                "-V",
                "536870912b",
                "-n",
                "web",
                "vgt/pool0"
            ]
        );
        assert!(pos("40:vg:vgt:create") < pos("51:thin-pool:vgt/pool0:create"));
        assert!(pos("51:thin-pool:vgt/pool0:create") < pos("50:lv:vgt/web:create"));
        assert!(pos("51:thin-pool:vgt/pool0:create") < pos("50:lv:vgt/scratch:create"));
        assert!(pos("50:lv:vgt/web:create") < pos("57:lv:vgt/web:mkfs"));
        // The mkfs writes a device the plan makes: the write rule lets it through.
        let mkfs = &p.ops[pos("57:lv:vgt/web:mkfs")];
        assert_eq!(mkfs.writes, ["/dev/vgt/web"]);
        assert!(crate::plan::safety::Made::new(&p.ops).makes("/dev/vgt/web"));
        assert!(!crate::plan::safety::Made::new(&p.ops).makes("/dev/vgt/pool0_tdata"));
        assert!(!p.ops.iter().any(|o| o.id == "57:lv:vgt/scratch:mkfs"));
        // What the capture shows on the host is what this plan makes, from the same spec.
        let applied = thin();
        assert!(
            plan_host(&spec, &applied.facts, &Default::default())
                .ops
                .is_empty()
        );
    }

    fn absent(spec: &mut Spec) {
        let pool = pool0(spec);
        pool.state = Presence::Absent;
        for lv in pool.lvs.values_mut() {
            lv.state = Presence::Absent;
        }
    }

    #[test]
    fn removing_a_pool_removes_its_thin_lvs_first_and_only_when_allowed() {
        let d = thin();
        let mut spec = d.spec.clone();
        absent(&mut spec);
        let p = plan_host(&spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert_eq!(
            p.refusals
                .iter()
                .filter(|r| r.reason.contains("--allow-destroy was not given"))
                .count(),
            3,
            "{:?}",
            p.refusals
        );
        let allow = crate::plan::Options {
            allow_destroy: true,
            ..Default::default()
        };
        let p = plan_host(&spec, &d.facts, &allow);
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            ids(&p),
            [
                "05:lv:vgt/scratch:remove",
                "05:lv:vgt/web:remove",
                "05:thin-pool:vgt/pool0:remove"
            ]
        );
        assert_eq!(
            argv(&p, "05:thin-pool:vgt/pool0:remove"),
            ["lvremove", "--quiet", "--yes", "vgt/pool0"]
        );
        let pool = p
            .ops
            .iter()
            .find(|o| o.id.as_str().starts_with("05:thin-pool"))
            .unwrap();
        assert_eq!(
            pool.after,
            ["05:lv:vgt/scratch:remove", "05:lv:vgt/web:remove"]
        );
        assert!(p.ops.iter().all(|o| o.risk == Risk::Destructive));
    }

    #[test]
    fn a_pool_stays_while_a_thin_lv_of_it_stays() {
        let d = thin();
        let mut spec = d.spec.clone();
        absent(&mut spec);
        // scratch left out of the spec: it is still on the host, in the pool.
        pool0(&mut spec).lvs.shift_remove("scratch");
        let allow = crate::plan::Options {
            allow_destroy: true,
            ..Default::default()
        };
        let p = plan_host(&spec, &d.facts, &allow);
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "thin pool vgt/pool0" && r.reason.contains("vgt/scratch")),
            "{:?}",
            p.refusals
        );
        assert!(!ids(&p).contains(&"05:thin-pool:vgt/pool0:remove"));
    }

    #[test]
    fn a_tagged_thin_lv_is_never_removed() {
        let d = thin();
        let mut facts = d.facts.clone();
        facts
            .lvm
            .lvs
            .get_mut("vgt/web")
            .unwrap()
            .tags
            .push(PREVENT_DESTROY_TAG.into());
        let mut spec = d.spec.clone();
        absent(&mut spec);
        let allow = crate::plan::Options {
            allow_destroy: true,
            ..Default::default()
        };
        let p = plan_host(&spec, &facts, &allow);
        assert!(!ids(&p).contains(&"05:lv:vgt/web:remove"));
        assert!(!ids(&p).contains(&"05:thin-pool:vgt/pool0:remove"));
        assert!(
            p.refusals
                .iter()
                .any(|r| r.resource == "lv vgt/web" && r.reason.contains(PREVENT_DESTROY_TAG)),
            "{:?}",
            p.refusals
        );
    }
}
