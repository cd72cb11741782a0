//! The arrays at boot: the managed arrays' `ARRAY` lines (by UUID) in /etc/mdadm/mdadm.conf,
//! in hostform's own marked section only, then `update-initramfs -u` after that write, so the
//! initramfs assembles them under their names (without them Debian's initramfs brings md0 up
//! as md127, seen in the boot proof). Planned for a spec that boots from its arrays (one with
//! `bootloader-on`). Lines outside the section are never touched: an array already declared
//! there keeps its line and gets none of ours. An array this plan creates has no UUID yet: the
//! file is announced as deferred and written in apply's follow-up round.

use super::*;
use crate::kinds::boot::{MDADM_CONF, SECTION_BEGIN, SECTION_END};
use crate::plan::{Effect, FileWrite, room::unified_diff};

/// The resource names the plan gives the file and the initramfs.
const FILE_RES: &str = "file /etc/mdadm/mdadm.conf";
const INITRAMFS_RES: &str = "initramfs";

/// An array's UUID as mdadm writes it (`8:8:8:8` hex digits), from blkid's form of it.
pub(crate) fn mdadm_uuid(blkid: &str) -> Option<String> {
    let hex: String = blkid.chars().filter(|c| *c != '-' && *c != ':').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}:{}:{}:{}",
        &h[0..8],
        &h[8..16],
        &h[16..24],
        &h[24..32]
    ))
}

/// The UUIDs (mdadm's form) of the `ARRAY` lines outside hostform's section, and the device
/// names they declare.
fn declared_outside(text: &str) -> (Vec<String>, Vec<String>) {
    let (mut uuids, mut devs) = (Vec::new(), Vec::new());
    let mut inside = false;
    for l in text.lines() {
        let t = l.trim();
        if t == SECTION_BEGIN {
            inside = true;
            continue;
        }
        if t == SECTION_END {
            inside = false;
            continue;
        }
        if inside || !t.starts_with("ARRAY") {
            continue;
        }
        let mut words = t.split_whitespace().skip(1);
        if let Some(d) = words.next() {
            devs.push(d.to_string());
        }
        for w in t.split_whitespace() {
            if let Some(u) = w.strip_prefix("UUID=").and_then(mdadm_uuid) {
                uuids.push(u);
            }
        }
    }
    (uuids, devs)
}

/// `text` with hostform's section holding `lines` (replaced where it is, appended where it is
/// not, removed when `lines` is empty); every other line as it was.
pub(crate) fn with_section(text: &str, lines: &[String]) -> String {
    let mut out = String::new();
    let mut inside = false;
    let mut placed = false;
    let section = |out: &mut String| {
        if !lines.is_empty() {
            out.push_str(SECTION_BEGIN);
            out.push('\n');
            for l in lines {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(SECTION_END);
            out.push('\n');
        }
    };
    for l in text.lines() {
        if l.trim() == SECTION_BEGIN {
            inside = true;
            continue;
        }
        if inside {
            if l.trim() == SECTION_END {
                inside = false;
                if !placed {
                    section(&mut out);
                    placed = true;
                }
            }
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    if !placed {
        if !out.is_empty() && !out.ends_with("\n\n") && !lines.is_empty() {
            out.push('\n');
        }
        section(&mut out);
    }
    out
}

pub(super) fn boot_arrays(c: &mut Ctx) {
    let boots = c
        .spec
        .arrays
        .values()
        .any(|a| !a.bootloader_on.is_empty() && a.state != Presence::Absent);
    if !boots || !c.facts.boot.read() {
        return; // the boot loaders' room says why, once
    }
    let current = c.facts.boot.mdadm_conf.clone().unwrap_or_default();
    let (theirs, their_devs) = declared_outside(&current);
    let mut lines: Vec<String> = Vec::new();
    let mut waits: Vec<String> = Vec::new();
    for (name, a) in &c.spec.arrays {
        if a.state == Presence::Absent {
            continue;
        }
        let path = crate::spec::names::array_path(name);
        let uuid = c
            .facts
            .arrays
            .get(name.value.as_str())
            .and_then(|x| {
                x.members
                    .iter()
                    .filter(|m| !m.failed)
                    .find_map(|m| c.block(&m.kname)?.uuid.clone())
            })
            .and_then(|u| mdadm_uuid(&u));
        let Some(uuid) = uuid else {
            waits.push(name.value.clone());
            continue;
        };
        if theirs.contains(&uuid) || their_devs.contains(&path) {
            continue; // declared outside hostform's section: that line stays, and is enough
        }
        let meta = a.metadata.as_str();
        lines.push(format!("ARRAY {path} metadata={meta} UUID={uuid}"));
    }
    if !waits.is_empty() {
        for r in [FILE_RES, INITRAMFS_RES] {
            c.plan.deferred.push(crate::plan::Deferred {
                resource: r.into(),
                waits_for: waits.join(", "),
            });
        }
        return;
    }
    let new = with_section(&current, &lines);
    if new == current || (c.facts.boot.mdadm_conf.is_none() && lines.is_empty()) {
        c.plan.record(
            FILE_RES,
            Outcome::Identity("the arrays are declared by UUID".into()),
        );
        return;
    }
    let old = c.facts.boot.mdadm_conf.as_deref();
    let mut write = Op::run(
        OpId::new(26, Address::File(MDADM_CONF.into()), Verb::Write),
        FILE_RES,
        format!("write {MDADM_CONF}"),
        Vec::new(),
    )
    .on_root();
    write.effect = Effect::Write(FileWrite {
        path: MDADM_CONF.into(),
        content: new.clone(),
        mode: 0o644,
        diff: unified_diff(
            old.unwrap_or(""),
            &new,
            if old.is_some() {
                MDADM_CONF
            } else {
                "/dev/null"
            },
            MDADM_CONF,
        ),
    });
    let id = write.id.clone();
    c.ops.push(write);
    c.plan.record(
        FILE_RES,
        Outcome::Changed(
            if old.is_some() {
                Action::Update
            } else {
                Action::Create
            },
            vec!["the arrays' ARRAY lines, by UUID, in hostform's section".into()],
        ),
    );
    // After the write, and after the boot loaders (grub-install reads nothing of it, but
    // one remount and one initramfs for the whole boot chain reads better in a plan).
    let mut after = vec![id];
    after.extend(
        c.ops
            .iter()
            .filter(|o| *o.id.verb() == Verb::Bootloader)
            .map(|o| o.id.clone()),
    );
    c.ops.push(
        Op::run(
            OpId::new(27, Address::File("initramfs".into()), Verb::Create),
            INITRAMFS_RES,
            "update the initramfs (it copies mdadm.conf)",
            vec![s("update-initramfs"), s("-u")],
        )
        .on_root()
        .after(after),
    );
    c.plan.record(
        INITRAMFS_RES,
        Outcome::Changed(Action::Update, vec![format!("{MDADM_CONF} changed")]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_in_mdadms_form() {
        assert_eq!(
            mdadm_uuid("3f0c9b8e-1a2b-3c4d-5e6f-7a8b9c0d1e2f").as_deref(),
            Some("3f0c9b8e:1a2b3c4d:5e6f7a8b:9c0d1e2f")
        );
        assert_eq!(
            mdadm_uuid("3f0c9b8e:1a2b3c4d:5e6f7a8b:9c0d1e2f").as_deref(),
            Some("3f0c9b8e:1a2b3c4d:5e6f7a8b:9c0d1e2f")
        );
        assert_eq!(mdadm_uuid("3f0c"), None);
        assert_eq!(mdadm_uuid("zz0c9b8e-1a2b-3c4d-5e6f-7a8b9c0d1e2f"), None);
    }

    #[test]
    fn the_section_is_replaced_appended_or_removed_and_nothing_else_moves() {
        let line = vec!["ARRAY /dev/md0 metadata=1.2 UUID=a:b:c:d".to_string()];
        let debian = "# mdadm.conf\nHOMEHOST <system>\nMAILADDR root\n";
        let added = with_section(debian, &line);
        assert_eq!(
            added,
            format!(
                "{debian}\n{SECTION_BEGIN}\nARRAY /dev/md0 metadata=1.2 UUID=a:b:c:d\n{SECTION_END}\n"
            )
        );
        // Again: the same text (the second plan is empty).
        assert_eq!(with_section(&added, &line), added);
        let other = vec!["ARRAY /dev/md1 metadata=1.2 UUID=e:f:g:h".to_string()];
        let swapped = with_section(&added, &other);
        assert!(swapped.starts_with(debian) && swapped.contains("md1") && !swapped.contains("md0"));
        let removed = with_section(&added, &[]);
        assert_eq!(removed, format!("{debian}\n"));
    }

    #[test]
    fn arrays_declared_outside_the_section_are_seen() {
        let t = format!(
            "ARRAY /dev/md/0 metadata=1.2 UUID=3f0c9b8e:1a2b3c4d:5e6f7a8b:9c0d1e2f name=h:0\n{SECTION_BEGIN}\nARRAY /dev/md1 UUID=00000000:00000000:00000000:00000001\n{SECTION_END}\n"
        );
        let (uuids, devs) = declared_outside(&t);
        assert_eq!(uuids, ["3f0c9b8e:1a2b3c4d:5e6f7a8b:9c0d1e2f"]);
        assert_eq!(devs, ["/dev/md/0"]);
    }

    fn host(scenario: &str, conf: Option<&str>) -> crate::discover::Discovered {
        let mut d =
            crate::discover::discover(&crate::runner::fixtures::runner(scenario)).expect(scenario);
        // The boot chain read, GRUB current on both disks: only mdadm.conf is left to plan.
        let b = &mut d.facts.boot;
        b.grub_install = true;
        b.grub_images = true;
        b.grub_home = Some(("/dev/mapper/vg0-boot".into(), "ext4".into()));
        for k in ["vda", "vdb"] {
            b.sectors.insert(
                k.into(),
                crate::kinds::boot::BootCode::Grub { current: true },
            );
            b.cores.insert(
                format!("{k}1"),
                crate::kinds::boot::BootCode::Grub { current: true },
            );
        }
        b.mdadm_conf = conf.map(str::to_string);
        let md0 = d.spec.arrays.get_index_mut(0).expect("md0").1;
        md0.bootloader_on = vec![
            crate::spec::de::Sp::bare("vda".to_string()),
            crate::spec::de::Sp::bare("vdb".to_string()),
        ];
        d
    }

    fn uuid(d: &crate::discover::Discovered) -> String {
        let m = d
            .facts
            .blocks
            .get("vda2")
            .and_then(|b| b.uuid.clone())
            .unwrap();
        mdadm_uuid(&m).unwrap()
    }

    #[test]
    fn the_arrays_go_in_hostforms_section_then_the_initramfs_is_updated() {
        let debian = "HOMEHOST <system>\nMAILADDR root\n";
        let d = host("full", Some(debian));
        let p = crate::plan::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(p.ops.len(), 2, "{:#?}", p.ops);
        let w = p.ops[0].write().expect("a file write");
        assert_eq!(w.path, MDADM_CONF);
        assert_eq!(
            w.content,
            format!(
                "{debian}\n{SECTION_BEGIN}\nARRAY /dev/md0 metadata=1.2 UUID={}\n{SECTION_END}\n",
                uuid(&d)
            )
        );
        assert!(
            w.diff
                .contains(&format!("+ARRAY /dev/md0 metadata=1.2 UUID={}", uuid(&d)))
        );
        assert_eq!(p.ops[1].argv(), ["update-initramfs", "-u"]);
        assert_eq!(p.ops[1].after, [p.ops[0].id.clone()]);
        // Both wrapped like LVM changes on a read-only root.
        assert!(p.ops.iter().all(|o| o.writes_root));
        // Written, the next plan has nothing to do.
        let d = host("full", Some(&w.content));
        let p = crate::plan::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
    }

    #[test]
    fn a_line_hostform_did_not_write_is_left_alone() {
        let d0 = host("full", None);
        let theirs = format!(
            "# by the installer\nARRAY /dev/md/0 metadata=1.2 UUID={} name=h:0\n",
            uuid(&d0)
        );
        let d = host("full", Some(&theirs));
        let p = crate::plan::plan_host(&d.spec, &d.facts, &Default::default());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        // Our stale section beside it goes, their line stays.
        let stale =
            format!("{theirs}{SECTION_BEGIN}\nARRAY /dev/md9 UUID=1:2:3:4\n{SECTION_END}\n");
        let d = host("full", Some(&stale));
        let p = crate::plan::plan_host(&d.spec, &d.facts, &Default::default());
        let w = p.ops[0].write().expect("a file write");
        assert_eq!(w.content, theirs);
    }

    #[test]
    fn an_array_this_plan_creates_is_written_in_the_follow_up() {
        let d = host("full", None);
        let mut blank =
            crate::discover::discover(&crate::runner::fixtures::runner("blank")).expect("blank");
        blank.facts.boot = d.facts.boot.clone();
        blank
            .facts
            .boot
            .sectors
            .insert("vda".into(), crate::kinds::boot::BootCode::Empty);
        let p = crate::plan::plan_host(&d.spec, &blank.facts, &Default::default());
        assert!(
            p.ops
                .iter()
                .all(|o| o.program() != Some("update-initramfs"))
        );
        let deferred: Vec<&str> = p.deferred.iter().map(|x| x.resource.as_str()).collect();
        assert!(
            deferred.contains(&"file /etc/mdadm/mdadm.conf") && deferred.contains(&"initramfs"),
            "{deferred:?}"
        );
    }
}
