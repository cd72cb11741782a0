//! Mounts: an LV's `mount:` becomes its /etc/fstab line (by the filesystem's UUID) in
//! hostform's marked section, and the filesystem is mounted there. The section is rewritten
//! whole, so removing the field removes the line (the filesystem stays mounted until the
//! operator unmounts it). A line hostform did not write is never touched: an LV or a path that
//! such a line already mounts is refused. An LV whose filesystem this plan makes has no UUID
//! yet: its line and its mount are announced as deferred, for apply's follow-up round.

use super::*;
use crate::kinds::boot::{FSTAB, SECTION_BEGIN, SECTION_END};
use crate::plan::{Effect, FileWrite, room::unified_diff};

const FILE_RES: &str = "file /etc/fstab";

/// What a line outside hostform's section mounts: (source, mount point, line number).
fn theirs(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut inside = false;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t == SECTION_BEGIN {
            inside = true;
        } else if t == SECTION_END {
            inside = false;
        } else if !inside && !t.starts_with('#') {
            let mut f = t.split_whitespace();
            if let (Some(src), Some(at)) = (f.next(), f.next()) {
                out.push((src.to_string(), at.replace("\\040", " "), i + 1));
            }
        }
    }
    out
}

struct Wanted<'a> {
    key: String,
    path: &'a str,
    options: &'a str,
    fs: &'static str,
}

pub(super) fn mounts(c: &mut Ctx) {
    let mut wanted: Vec<Wanted> = Vec::new();
    for (vg, v) in &c.spec.volume_groups {
        if v.state == Presence::Absent {
            continue;
        }
        for (name, lv) in &v.lvs {
            let Some(m) = lv.mount.as_ref().filter(|_| lv.state != Presence::Absent) else {
                continue;
            };
            let fs = match lv.fs {
                Filesystem::Ext4 => "ext4",
                Filesystem::Xfs => "xfs",
                _ => continue, // validation says so
            };
            wanted.push(Wanted {
                key: format!("{vg}/{name}"),
                path: &m.path.value,
                options: m.options.as_ref().map_or("defaults", |o| o.value.as_str()),
                fs,
            });
        }
    }
    let current = c.facts.boot.fstab.clone();
    let ours_there = current
        .as_deref()
        .is_some_and(|t| t.lines().any(|l| l.trim() == SECTION_BEGIN));
    if wanted.is_empty() && !ours_there {
        return;
    }
    let Some(current) = current else {
        c.refuse(
            FILE_RES,
            "/etc/fstab could not be read: hostform writes only its own section of it, and never a new file over one it did not see",
            "check that /etc/fstab exists and is readable, then plan again",
        );
        return;
    };
    let others = theirs(&current);
    let mut lines: Vec<String> = Vec::new();
    let mut mount_ops: Vec<(String, Vec<OpId>, String)> = Vec::new();
    let mut waits: Vec<String> = Vec::new();
    let mut refused = false;
    for w in &wanted {
        let (vg, lv) = w.key.split_once('/').unwrap_or_default();
        let dev = c.facts.blocks.by_name(&crate::kinds::lvm::dm_name(vg, lv));
        let uuid = dev.and_then(|b| b.uuid.clone());
        let mkfs = OpId::new(57, Address::lv_key(&w.key), Verb::Mkfs);
        let names = [
            uuid.as_ref().map(|u| format!("UUID={u}")),
            Some(format!("/dev/{}", w.key)),
            Some(format!(
                "/dev/mapper/{}",
                crate::kinds::lvm::dm_name(vg, lv)
            )),
        ];
        if let Some((src, at, n)) = others
            .iter()
            .find(|(src, at, _)| at == w.path || names.iter().flatten().any(|x| x == src))
        {
            c.refuse(
                &format!("lv {}", w.key),
                format!("/etc/fstab line {n} (`{src} {at}`) is not hostform's: it already mounts this LV or this path"),
                "remove that line from /etc/fstab (hostform then writes its own), or drop `mount:` from the spec",
            );
            refused = true;
            continue;
        }
        let Some(uuid) = uuid.filter(|_| !c.ops.iter().any(|o| o.id == mkfs)) else {
            waits.push(w.key.clone());
            continue;
        };
        lines.push(format!(
            "UUID={uuid} {} {} {} 0 {}",
            w.path,
            w.fs,
            w.options,
            if w.fs == "ext4" { 2 } else { 0 }
        ));
        let mounted = dev.map(|b| b.mountpoints.clone()).unwrap_or_default();
        if mounted.iter().any(|m| m == w.path) {
            continue;
        }
        if let Some(other) = mounted.first() {
            c.refuse(
                &format!("lv {}", w.key),
                format!("{} is mounted on {other}, not on {}", w.key, w.path),
                "unmount it, then plan again: hostform does not move a mounted filesystem",
            );
            refused = true;
            continue;
        }
        let mut after = lv_ready(&w.key);
        after.retain(|id| c.ops.iter().any(|o| o.id == *id));
        mount_ops.push((w.key.clone(), after, w.path.to_string()));
    }
    if refused {
        return;
    }
    if !waits.is_empty() {
        c.plan.deferred.push(crate::plan::Deferred {
            resource: FILE_RES.into(),
            waits_for: waits.join(", "),
        });
        for k in &waits {
            c.plan.deferred.push(crate::plan::Deferred {
                resource: format!("mount {k}"),
                waits_for: format!("{k}'s filesystem"),
            });
        }
        return;
    }
    let new = super::mdconf::with_section(&current, &lines);
    let mut write_id: Option<OpId> = None;
    if new != current {
        let mut write = Op::run(
            OpId::new(59, Address::File(FSTAB.into()), Verb::Write),
            FILE_RES,
            format!("write {FSTAB}"),
            Vec::new(),
        )
        .on_root();
        write.effect = Effect::Write(FileWrite {
            path: FSTAB.into(),
            content: new.clone(),
            mode: 0o644,
            diff: unified_diff(&current, &new, FSTAB, FSTAB),
        });
        write_id = Some(write.id.clone());
        c.ops.push(write);
        c.plan.record(
            FILE_RES,
            Outcome::Changed(
                Action::Update,
                vec!["the LVs' mounts, by UUID, in hostform's section".into()],
            ),
        );
    } else {
        c.plan.record(
            FILE_RES,
            Outcome::Identity("the LVs' mounts are there".into()),
        );
    }
    for (key, mut after, path) in mount_ops {
        after.extend(write_id.clone());
        let res = format!("mount {key}");
        // `mount PATH` reads the line just written; `--mkdir` makes the mount point (on a
        // read-only root, remounted read-write around it).
        c.add(
            Op::run(
                OpId::new(59, Address::lv_key(&key), Verb::Mount),
                &res,
                format!("mount {key} on {path}"),
                vec![s("mount"), s("--mkdir"), path.clone()],
            )
            .on_root()
            .after(after),
        );
        c.plan.record(
            &res,
            Outcome::Changed(Action::Create, vec![format!("not mounted on {path}")]),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::{Discovered, discover};
    use crate::plan::{Plan, plan_host};
    use crate::runner::fixtures::runner;
    use crate::spec::de::Sp;

    const DEBIAN: &str = "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n";
    const ROOT_UUID: &str = "d675f0e7-d29f-4fd4-86a0-e2ebda732bb0";

    /// full/: vg0/dom0_root (ext4) mounted on /srv/dom0, vg0/guest1_root (ext4) not mounted.
    fn host(fstab: Option<&str>, mounts: &[(&str, &str, Option<&str>)]) -> Plan {
        let mut d: Discovered = discover(&runner("full")).expect("full");
        d.facts.boot.fstab = fstab.map(str::to_string);
        let vg = d.spec.volume_groups.get_mut("vg0").expect("vg0");
        for (lv, path, options) in mounts {
            vg.lvs.get_mut(*lv).expect(lv).mount = Some(Mount {
                path: Sp::bare(path.to_string()),
                options: options.map(|o| Sp::bare(o.to_string())),
            });
        }
        plan_host(&d.spec, &d.facts, &Default::default())
    }

    fn line(uuid: &str, rest: &str) -> String {
        format!("{SECTION_BEGIN}\nUUID={uuid} {rest}\n{SECTION_END}\n")
    }

    #[test]
    fn a_mounted_lv_gets_its_line_and_nothing_else() {
        let p = host(Some(DEBIAN), &[("dom0_root", "/srv/dom0", None)]);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(p.ops.len(), 1, "{:#?}", p.ops);
        let w = p.ops[0].write().expect("the fstab write");
        let want = format!(
            "{DEBIAN}\n{}",
            line(ROOT_UUID, "/srv/dom0 ext4 defaults 0 2")
        );
        assert_eq!(w.content, want);
        assert!(p.ops[0].writes_root);
        // Written: nothing left to do.
        let p = host(Some(&want), &[("dom0_root", "/srv/dom0", None)]);
        assert!(p.ops.is_empty() && p.refusals.is_empty(), "{:#?}", p.ops);
    }

    #[test]
    fn an_unmounted_lv_is_mounted_after_its_line_is_written() {
        let p = host(
            Some(DEBIAN),
            &[("guest1_root", "/srv/g1", Some("noatime,nodev"))],
        );
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        let argv: Vec<String> = p.ops.iter().map(|o| o.argv().join(" ")).collect();
        assert_eq!(argv, ["", "mount --mkdir /srv/g1"]);
        assert!(p.ops[0].write().unwrap().content.contains(
            "UUID=2b6df91d-587f-4ca2-8431-e4dd73f2bc72 /srv/g1 ext4 noatime,nodev 0 2\n"
        ));
        assert_eq!(p.ops[1].after, ["59:file:/etc/fstab"]);
    }

    #[test]
    fn removing_the_field_removes_the_line_and_only_it() {
        let ours = format!(
            "{DEBIAN}/dev/sda1 /boot ext4 defaults 0 2\n{}",
            line(ROOT_UUID, "/srv/dom0 ext4 defaults 0 2")
        );
        let p = host(Some(&ours), &[]);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(p.ops.len(), 1);
        assert_eq!(
            p.ops[0].write().unwrap().content,
            format!("{DEBIAN}/dev/sda1 /boot ext4 defaults 0 2\n")
        );
    }

    #[test]
    fn a_line_hostform_did_not_write_is_never_touched() {
        for theirs in [
            format!("UUID={ROOT_UUID} /srv/dom0 ext4 defaults 0 2\n"),
            "/dev/vg0/dom0_root /mnt/x ext4 defaults 0 2\n".to_string(),
            "/dev/sdz1 /srv/dom0 ext4 defaults 0 2\n".to_string(),
        ] {
            let text = format!("{DEBIAN}{theirs}");
            let p = host(Some(&text), &[("dom0_root", "/srv/dom0", None)]);
            assert!(p.ops.is_empty(), "{theirs}: {:#?}", p.ops);
            assert!(
                p.refusals[0].reason.starts_with("/etc/fstab line 2 ("),
                "{theirs}: {:#?}",
                p.refusals
            );
        }
    }

    #[test]
    fn a_filesystem_mounted_elsewhere_or_an_unread_fstab_is_refused() {
        let p = host(Some(DEBIAN), &[("dom0_root", "/data", None)]);
        assert!(p.ops.is_empty());
        assert_eq!(
            p.refusals[0].reason,
            "vg0/dom0_root is mounted on /srv/dom0, not on /data"
        );
        let p = host(None, &[("dom0_root", "/srv/dom0", None)]);
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0]
                .reason
                .starts_with("/etc/fstab could not be read")
        );
    }

    #[test]
    fn hostile_paths_never_reach_fstab() {
        use crate::spec::validate::mount_path_problem as problem;
        for bad in [
            "srv",
            "../srv",
            "/srv/../etc",
            "/srv/./x",
            "/srv//x",
            "/srv/a b",
            "/srv/a\tb",
            "/srv/a\nb",
            "/srv/a\\040b",
            "/",
            "",
        ] {
            assert!(problem(bad).is_some(), "{bad:?}");
        }
        for good in ["/srv", "/srv/guest-1_var", "/var/lib/é"] {
            assert_eq!(problem(good), None, "{good:?}");
        }
        // Through the loader: a path with a newline is an error pointing at it.
        let text = "host: h\ndisks:\n  sda: { serial: S1, size: 8GiB }\nvolume-groups:\n  vg0:\n    pvs: [sda]\n    lvs:\n      srv: { size: 1GiB, fs: ext4, mount: { path: \"/srv\\n/etc\" } }\n      sw: { size: 1GiB, fs: swap, mount: { path: /swap } }\n";
        let err = crate::spec::load_str("h.yaml", text).expect_err("invalid");
        let shown = format!("{err:?}");
        assert!(
            shown.contains("mount path `/srv\\\\n/etc` holds a space"),
            "{shown}"
        );
        assert!(shown.contains("only ext4 and xfs are mounted"), "{shown}");
    }
}
