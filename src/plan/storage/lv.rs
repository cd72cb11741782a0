//! Logical volumes and snapshots: created, grown, shrunk when allowed, activated, formatted
//! when blank, made read-only, protected.

use super::*;

/// What planning one LV needs to know.
pub(super) struct LvPlan<'s> {
    pub(super) vgname: &'s str,
    pub(super) lvname: &'s str,
    pub(super) lv: &'s crate::spec::types::Lv,
    pub(super) extent: u64,
    pub(super) after_vg: &'s [OpId],
    pub(super) res: String,
    pub(super) key: String,
    pub(super) path: String,
    pub(super) dm: String,
    /// The filesystem signature on the LV now.
    pub(super) fstype: Option<String>,
    /// The one the spec wants.
    pub(super) want_fs: Option<&'static str>,
}

impl LvPlan<'_> {
    fn mkfs(&self, fs: &str) -> Vec<String> {
        let path = self.path.clone();
        match fs {
            "ext4" => vec![s("mkfs.ext4"), s("-q"), path],
            "xfs" => vec![s("mkfs.xfs"), s("-q"), path],
            _ => vec![s("mkswap"), path],
        }
    }
}

pub(super) fn logical_volume(
    c: &mut Ctx,
    vgname: &str,
    lvname: &str,
    lv: &crate::spec::types::Lv,
    extent: u64,
    after_vg: &[OpId],
) {
    if lv.state == Presence::Absent {
        return; // teardown
    }
    let key = format!("{vgname}/{lvname}");
    if super::thin::not_plain(c, &format!("lv {key}"), &key) {
        return;
    }
    let dm = crate::kinds::lvm::dm_name(vgname, lvname);
    let p = LvPlan {
        vgname,
        lvname,
        lv,
        extent,
        after_vg,
        res: format!("lv {vgname}/{lvname}"),
        path: format!("/dev/{vgname}/{lvname}"),
        fstype: c.facts.blocks.by_name(&dm).and_then(|b| b.fstype.clone()),
        want_fs: match lv.fs {
            Filesystem::Ext4 => Some("ext4"),
            Filesystem::Xfs => Some("xfs"),
            Filesystem::Swap => Some("swap"),
            Filesystem::None => None,
        },
        key,
        dm,
    };
    match c.facts.lvm.lvs.get(&p.key).cloned() {
        Some(cur) => {
            if let Some(outcome) = existing(c, &p, &cur) {
                c.plan.record(&p.res, outcome);
            }
        }
        None => create(c, &p),
    }
}

/// An LV on the host: resized, its permission set, activated, formatted, protected as the
/// spec says. `None` when refused.
fn existing(c: &mut Ctx, p: &LvPlan, cur: &crate::kinds::lvm::Lv) -> Option<Outcome> {
    let mut reasons = Vec::new();
    if p.lv.image.is_some() && !image_lv_existing(c, p, cur, &mut reasons) {
        return None;
    }
    if let Some(size) = p.lv.size
        && let LvSize::Bytes(b) = size.value
    {
        let want = b.0.div_ceil(p.extent) * p.extent;
        if want > cur.size {
            grow(c, p, cur, want, &mut reasons);
        } else if want < cur.size {
            shrink(c, p, cur, want, &mut reasons)?;
        }
    }
    permission(c, p, cur, &mut reasons);
    filesystem(c, p, cur, &mut reasons)?;
    protect(c, p, cur, &mut reasons);
    Some(if reasons.is_empty() {
        Outcome::Identity("matches".into())
    } else {
        Outcome::Changed(Action::Update, vec![reasons.join(", ")])
    })
}

fn grow(
    c: &mut Ctx,
    p: &LvPlan,
    cur: &crate::kinds::lvm::Lv,
    want: u64,
    reasons: &mut Vec<String>,
) {
    let LvPlan {
        after_vg,
        ref res,
        ref key,
        ref fstype,
        want_fs,
        ..
    } = *p;
    let mut argv = vec![s("lvextend"), s("--quiet"), s("-L"), format!("{want}b")];
    if want_fs.is_some_and(|f| f != "swap") && fstype.is_some() {
        argv.push(s("--resizefs"));
    }
    argv.push(key.clone());
    c.add(
        Op::run(
            OpId::new(50, Address::lv_key(key), Verb::Extend),
            res,
            format!("grow {key} from {} to {}", cur.size, want),
            argv,
        )
        .on_root()
        .after(after_vg.to_vec()),
    );
    reasons.push(format!("grows from {} to {want} bytes", cur.size));
}

/// Shrink an LV (and its ext4) when `allow-shrink` and `--allow-destroy` say so, and nothing
/// uses it; `None` when refused.
fn shrink(
    c: &mut Ctx,
    p: &LvPlan,
    cur: &crate::kinds::lvm::Lv,
    want: u64,
    reasons: &mut Vec<String>,
) -> Option<()> {
    let LvPlan {
        lv,
        after_vg,
        ref res,
        ref key,
        ref dm,
        ref fstype,
        ..
    } = *p;
    let shrink = format!("is {} bytes, the spec says {want}", cur.size);
    if !lv.allow_shrink {
        c.refuse(res, format!("{shrink}: that would shrink it"), "hostform never shrinks by accident: fix the spec to the real size, or set `allow-shrink: true`");
        return None;
    }
    let dev = c.facts.blocks.by_name(dm).map(|b| b.kname.clone());
    if let Some(why) = dev.and_then(|k| c.in_use(&k)) {
        c.refuse(
            res,
            format!("{shrink}, but {why}: a mounted filesystem is never shrunk"),
            "unmount it (or swapoff), then plan again",
        );
        return None;
    }
    if cur.open {
        c.refuse(
            res,
            format!(
                "{shrink}, but it is open (a guest or a process uses it): never shrunk while in use"
            ),
            "stop what uses it, then plan again",
        );
        return None;
    }
    if !cur.active {
        c.refuse(
            res,
            format!("{shrink}, but it is inactive: its filesystem could not be read"),
            "activate it (lvchange -ay), then plan again",
        );
        return None;
    }
    let resizefs = match fstype.as_deref() {
        Some("ext4") => true,
        None => false,
        Some("xfs") => {
            c.refuse(
                res,
                format!("{shrink}, but it holds xfs, which cannot be shrunk"),
                "fix the spec to the real size, or copy the data to a new, smaller LV",
            );
            return None;
        }
        Some(f) => {
            c.refuse(
                res,
                format!("{shrink}, but it holds {f}, which hostform does not shrink"),
                "fix the spec to the real size, or recreate it (state: absent, then present again)",
            );
            return None;
        }
    };
    if !c.may_destroy(
        res,
        &format!("{shrink}: shrinking it (allow-shrink) cuts off its end"),
    ) {
        return None;
    }
    let mut argv = vec![s("lvreduce"), s("--quiet"), s("--yes")];
    if resizefs {
        // fsadm checks the filesystem (e2fsck -f), then shrinks it first.
        argv.push(s("--resizefs"));
    }
    argv.extend([s("-L"), format!("{want}b"), key.clone()]);
    c.add(
        Op::run(
            OpId::new(50, Address::lv_key(key), Verb::Reduce),
            res,
            format!(
                "shrink {key} from {} to {want}{}",
                cur.size,
                if resizefs { " with its ext4" } else { "" }
            ),
            argv,
        )
        .destructive()
        .on_root()
        .after(after_vg.to_vec()),
    );
    reasons.push(format!("shrinks from {} to {want} bytes", cur.size));
    Some(())
}

fn permission(c: &mut Ctx, p: &LvPlan, cur: &crate::kinds::lvm::Lv, reasons: &mut Vec<String>) {
    let LvPlan {
        lv,
        after_vg,
        ref res,
        ref key,
        ..
    } = *p;
    if cur.readonly != lv.readonly {
        c.add(
            Op::run(
                OpId::new(55, Address::lv_key(key), Verb::Permission),
                res,
                format!(
                    "make {key} {}",
                    if lv.readonly {
                        "read-only"
                    } else {
                        "read-write"
                    }
                ),
                vec![
                    s("lvchange"),
                    s("--quiet"),
                    s("-p"),
                    s(if lv.readonly { "r" } else { "rw" }),
                    key.clone(),
                ],
            )
            .on_root()
            .after(after_vg.to_vec()),
        );
        reasons.push("permission".into());
    }
}

/// The filesystem: made on a blank LV, erased and made again with `wipe: true`, left to the
/// next reading on an inactive LV (activated here). `None` when refused.
fn filesystem(
    c: &mut Ctx,
    p: &LvPlan,
    cur: &crate::kinds::lvm::Lv,
    reasons: &mut Vec<String>,
) -> Option<()> {
    let LvPlan {
        lv,
        after_vg,
        ref res,
        ref key,
        ref path,
        ref dm,
        ref fstype,
        want_fs,
        ..
    } = *p;
    let mkfs = |fs: &str| p.mkfs(fs);
    // An inactive LV has no device node, so no signature could be read: activate it and
    // leave the filesystem to the next reading (the verification after apply), never mkfs.
    let unread = !cur.active && !cur.open;
    // In a shared VG an activation takes the LV's lock: only the host that runs the guest
    // using it activates it (`lvchange -aey`, before the start). Inactive here is its rest.
    let shared = key
        .split_once('/')
        .and_then(|(vg, _)| c.spec.volume_groups.get(vg))
        .is_some_and(|v| v.shared);
    if unread && !shared {
        c.add(
            Op::run(
                OpId::new(52, Address::lv_key(key), Verb::Activate),
                res,
                format!("activate {key} (inactive: its filesystem could not be read)"),
                vec![s("lvchange"), s("--quiet"), s("-ay"), key.clone()],
            )
            .after(after_vg.to_vec()),
        );
        reasons.push("inactive: activated".into());
    }
    match (want_fs, fstype.as_deref()) {
        _ if unread => {}
        (Some(w), None) => {
            c.add(
                Op::run(
                    OpId::new(57, Address::lv_key(key), Verb::Mkfs),
                    res,
                    format!("create {w} on {key} (it holds no signature)"),
                    mkfs(w),
                )
                .after(after_vg.to_vec()),
            );
            reasons.push(format!("new {w}"));
        }
        (Some(w), Some(f)) if w != f => {
            if !lv.wipe {
                c.refuse(res, format!("holds {f}, the spec says {w}"), "hostform does not reformat by accident; fix the spec, or set `wipe: true` on the LV if its data may go");
                return None;
            }
            let dev = c.facts.blocks.by_name(dm).map(|b| b.kname.clone());
            if let Some(why) = dev
                .and_then(|k| c.in_use(&k))
                .or_else(|| cur.open.then(|| format!("{key} is open")))
            {
                c.refuse(res, format!("holds {f}, the spec says {w}, but it is in use ({why}); `wipe: true` never erases what is in use"), "stop what uses it, then plan again");
                return None;
            }
            if !c.may_destroy(
                res,
                &format!("holds {f}; `wipe: true` erases it for a new {w}"),
            ) {
                return None;
            }
            let wipe = c.add(
                Op::run(
                    OpId::new(56, Address::lv_key(key), Verb::Wipe(None)),
                    res,
                    format!("erase the {f} signature on {key}"),
                    vec![s("wipefs"), s("--all"), path.clone()],
                )
                .destructive()
                .after(after_vg.to_vec()),
            );
            c.add(
                Op::run(
                    OpId::new(57, Address::lv_key(key), Verb::Mkfs),
                    res,
                    format!("create {w} on {key}"),
                    mkfs(w),
                )
                .after(vec![wipe]),
            );
            reasons.push(format!("{f} erased (wipe: true), new {w}"));
        }
        _ => {}
    }
    Some(())
}

fn protect(c: &mut Ctx, p: &LvPlan, cur: &crate::kinds::lvm::Lv, reasons: &mut Vec<String>) {
    let LvPlan {
        lv,
        after_vg,
        ref res,
        ref key,
        ..
    } = *p;
    if lv.prevent_destroy && !cur.protected() {
        c.add(
            Op::run(
                OpId::new(58, Address::lv_key(key), Verb::Protect),
                res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(key),
            )
            .on_root()
            .after(after_vg.to_vec()),
        );
        reasons.push("prevent-destroy: tagged on the host".into());
    }
}

/// A new LV: from an image, or created with its size, formatted, protected, made read-only.
fn create(c: &mut Ctx, p: &LvPlan) {
    let LvPlan {
        vgname,
        lvname,
        lv,
        extent,
        after_vg,
        ref res,
        ref key,
        want_fs,
        ..
    } = *p;
    let mkfs = |fs: &str| p.mkfs(fs);
    if lv.image.is_some() {
        image_lv_create(c, vgname, lvname, lv, extent, after_vg);
        return;
    }
    let Some(size) = lv.size else { return };
    let mut argv = vec![
        s("lvcreate"),
        s("--quiet"),
        s("--yes"),
        s("-n"),
        lvname.to_string(),
    ];
    match size.value {
        LvSize::Bytes(b) => {
            argv.push(s("-L"));
            argv.push(format!("{}b", b.0.div_ceil(extent) * extent));
        }
        LvSize::PercentVg(p) => {
            argv.push(s("-l"));
            argv.push(format!("{p}%VG"));
        }
        LvSize::PercentFree(p) => {
            argv.push(s("-l"));
            argv.push(format!("{p}%FREE"));
        }
    }
    argv.push(vgname.to_string());
    if let Some(pv) = &lv.pv
        && let Some(p) = c.device_path(&pv.value)
    {
        argv.push(p);
    }
    let id = c.add(
        Op::run(
            OpId::new(50, Address::lv_key(key), Verb::Create),
            res,
            format!("create {key} ({})", size.value),
            argv,
        )
        .on_root()
        .after(after_vg.to_vec()),
    );
    let mut last = id.clone();
    if let Some(w) = want_fs {
        last = c.add(
            Op::run(
                OpId::new(57, Address::lv_key(key), Verb::Mkfs),
                res,
                format!("create {w} on {key}"),
                mkfs(w),
            )
            .after(vec![last]),
        );
    }
    // lvcreate leaves a new LV of a shared VG active exclusively here, holding its lock: let it
    // go unless a guest of this host uses it, so that the host running its guest can take it.
    let shared = c.spec.volume_groups.get(vgname).is_some_and(|v| v.shared);
    let used_here = c
        .spec
        .vms
        .values()
        .any(|vm| vm.disks.iter().any(|d| d.lv.value == *key));
    if shared && !used_here {
        c.add(
            Op::run(
                OpId::new(59, Address::lv_key(key), Verb::Lock("release".into())),
                res,
                format!("release {key} (no guest of this host uses it; its host activates it)"),
                vec![s("lvchange"), s("--quiet"), s("-an"), key.clone()],
            )
            .after(vec![last.clone()]),
        );
    }
    if lv.prevent_destroy {
        c.add(
            Op::run(
                OpId::new(58, Address::lv_key(key), Verb::Protect),
                res,
                format!("tag {key} {PREVENT_DESTROY_TAG} (prevent-destroy)"),
                protect_argv(key),
            )
            .on_root()
            .after(vec![id.clone()]),
        );
    }
    if lv.readonly {
        c.add(
            Op::run(
                OpId::new(58, Address::lv_key(key), Verb::Permission),
                res,
                format!("make {key} read-only"),
                vec![s("lvchange"), s("--quiet"), s("-p"), s("r"), key.clone()],
            )
            .on_root()
            .after(vec![last]),
        );
    }
    c.change(res, Action::Create, "no such LV");
}
