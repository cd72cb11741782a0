//! The boot loader: `grub-install --target=i386-pc DISK` on each disk an array lists in
//! `bootloader-on`, into the disk's boot sector and its BIOS boot partition. Installed only
//! where the boot sector is empty, on a disk this plan partitions, or over a GRUB already
//! there; never over another loader (refused, naming what was found). A GRUB that is what this
//! machine's GRUB installs (`kinds::boot`) is left alone, so the second plan is empty. A
//! replaced member's new disk gets GRUB in the same apply, after its table and its re-add.
//! The one write rule (`safety::check`) judges the write again from the argv.

use super::*;
use crate::kinds::boot::{BootCode, GRUB_HOME, grub_reads};

/// Why the boot chain is not planned from a reading without boot sectors.
pub(super) const NOT_READ: &str = "not planned: this reading of the host holds no boot sector (a snapshot or capture older than hostform's boot chain, or no right to read the disks)";

/// The disks named by `bootloader-on`, each once, in spec order.
fn listed(spec: &Spec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in spec.arrays.values() {
        if a.state == Presence::Absent {
            continue;
        }
        for d in &a.bootloader_on {
            if !out.contains(&d.value) {
                out.push(d.value.clone());
            }
        }
    }
    out
}

/// One disk after the other: grub-install writes the same /boot/grub for every disk, and two
/// at once fail (`cannot rename the file /boot/grub/grubenv.new`, seen in the sandbox).
pub(super) fn bootloaders(c: &mut Ctx) {
    let mut last: Option<OpId> = None;
    let disks = listed(c.spec);
    if !disks.is_empty() && !c.facts.boot.read() {
        c.plan
            .record("boot chain", Outcome::Identity(NOT_READ.into()));
        return;
    }
    for name in disks {
        if let Some(id) = disk(c, &name, last.clone()) {
            last = Some(id);
        }
    }
}

/// Why this machine cannot install GRUB for BIOS, if it cannot.
fn tools_missing(c: &Ctx) -> Option<String> {
    let b = &c.facts.boot;
    let mut missing = Vec::new();
    if !b.grub_images {
        missing.push("grub-pc-bin (GRUB's BIOS images under /usr/lib/grub/i386-pc)");
    }
    if !b.grub_install {
        missing.push("grub2-common (/usr/sbin/grub-install)");
    }
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// Why GRUB's directory could not be read by GRUB at boot, if so.
fn home_unreadable(c: &Ctx) -> Option<String> {
    match &c.facts.boot.grub_home {
        Some((_, fs)) if grub_reads(fs) => None,
        Some((src, fs)) => Some(format!(
            "{GRUB_HOME} is on a {fs} filesystem ({src}), which GRUB cannot read at boot"
        )),
        None => Some(format!("the filesystem holding {GRUB_HOME} is unknown")),
    }
}

/// The disk's boot loader: its op, if one is planned (after `previous`, the last one).
fn disk(c: &mut Ctx, name: &str, previous: Option<OpId>) -> Option<OpId> {
    let res = format!("bootloader {name}");
    let Some(d) = c.spec.disks.get(name) else {
        return None; // validation names it
    };
    let Some(bios) = d
        .partitions
        .iter()
        .find(|p| p.kind == PartType::BiosBoot && p.state != Presence::Absent)
    else {
        c.refuse(
            &res,
            format!("disk {name} has no bios-boot partition: GRUB for BIOS has nowhere to put its core image"),
            "add a `{ name: bios, size: 2MiB, type: bios-boot }` partition first on the disk",
        );
        return None;
    };
    let table = OpId::new(10, Address::Disk(name.to_string()), Verb::Table);
    let partitioned = c.ops.iter().any(|o| o.id == table);
    let kname = c.disks.get(name).cloned();
    if kname.is_none() && !partitioned {
        return None; // not found, or refused: the disk's own entry says why
    }
    if let Some(why) = tools_missing(c) {
        c.refuse(
            &res,
            format!("grub-install for BIOS is not installed here: {why} missing"),
            "install them: `apt-get install --no-install-recommends grub-pc-bin grub2-common` (not `grub-pc`, whose configuration runs grub-install on a disk of its choosing)",
        );
        return None;
    }
    if let Some(why) = home_unreadable(c) {
        c.refuse(
            &res,
            format!("GRUB would not find its modules and grub.cfg: {why}"),
            "mount the /boot filesystem (on the array) before installing the boot loader, then plan again",
        );
        return None;
    }
    let who = match &kname {
        Some(k) => format!("{name} ({k})"),
        None => name.to_string(),
    };
    let sector = kname.as_ref().and_then(|k| c.facts.boot.sectors.get(k));
    let core_dev = c
        .device_now(&format!("{name}/{}", bios.name))
        .map(|b| b.kname.clone());
    let core = core_dev.as_ref().and_then(|k| c.facts.boot.cores.get(k));
    let mut reasons: Vec<String> = Vec::new();
    match sector {
        Some(BootCode::Other(what)) => {
            c.refuse(
                &res,
                format!("the boot sector of {who} holds {what}: hostform never installs GRUB over another boot loader"),
                "if that loader may go, erase its boot code by hand (`dd if=/dev/zero of=DISK bs=440 count=1`), then plan again",
            );
            return None;
        }
        Some(BootCode::Empty) => reasons.push("boot sector empty".into()),
        Some(BootCode::Grub { current: false }) => {
            reasons.push("GRUB there is not what this machine's GRUB installs".into())
        }
        Some(BootCode::Grub { current: true }) => {}
        None if partitioned => {}
        None => {
            c.refuse(
                &res,
                format!("the boot sector of {who} could not be read"),
                "check that the disk is readable (`head -c 512 DISK | od -c`), then plan again",
            );
            return None;
        }
    }
    match (core, core_dev.as_deref().unwrap_or("?")) {
        (Some(BootCode::Other(what)), k) => {
            c.refuse(
                &res,
                format!("the BIOS boot partition {k} of {who} holds {what}, not GRUB's core image"),
                "check the partition; if its content may go, erase it by hand (`wipefs -a`, then `dd if=/dev/zero` over it) and plan again",
            );
            return None;
        }
        (Some(BootCode::Grub { current: true }), _) => {}
        (Some(BootCode::Grub { current: false }), _) => {
            reasons.push("core image not this machine's GRUB".into())
        }
        (Some(BootCode::Empty), _) => reasons.push("no core image yet".into()),
        (None, _) => reasons.push("BIOS boot partition made by this plan".into()),
    }
    if partitioned {
        reasons.insert(0, "disk partitioned by this plan".into());
    }
    if reasons.is_empty() {
        c.plan.record(
            &res,
            Outcome::Identity(
                "GRUB current (boot sector and core image as this machine's GRUB installs them)"
                    .into(),
            ),
        );
        return None;
    }
    // After what rewrites the disk: its table, its teardown, the re-add of its members (the
    // core image finds /boot through the arrays).
    let mut after: Vec<OpId> = previous.into_iter().collect();
    if partitioned {
        after.push(table);
    }
    after.extend(c.disk_teardown.get(name).cloned().unwrap_or_default());
    let prefix = format!("{name}/");
    after.extend(
        c.ops
            .iter()
            .filter(|o| {
                matches!(o.id.address(), Address::Array(_))
                    && matches!(o.id.verb(), Verb::Add(r) if r.starts_with(&prefix) || r == name)
            })
            .map(|o| o.id.clone()),
    );
    let path = c.disk_path(name);
    let id = c.add(
        Op::run(
            OpId::new(25, Address::Disk(name.to_string()), Verb::Bootloader),
            &res,
            format!("install GRUB on {name}"),
            vec![s("grub-install"), s("--target=i386-pc"), path],
        )
        .after(after),
    );
    let action = if matches!(sector, Some(BootCode::Grub { .. })) {
        Action::Update
    } else {
        Action::Create
    };
    c.plan.record(&res, Outcome::Changed(action, reasons));
    Some(id)
}

#[cfg(test)]
mod tests {
    use crate::discover::{Discovered, discover};
    use crate::kinds::boot::{BootCode, GrubImages, classify_core, classify_sector};
    use crate::plan::{Action, Plan, plan_host};
    use crate::runner::fixtures::runner;
    use crate::spec::de::Sp;

    fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/boot/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect(name)
    }

    fn images() -> GrubImages {
        GrubImages {
            boot: Some(bytes("boot.img")),
            diskboot: Some(bytes("diskboot.img")),
            lzma: Some(bytes("lzma_decompress.img")),
        }
    }

    fn sector(name: &str) -> BootCode {
        classify_sector(&bytes(name), &images()).expect(name)
    }

    /// A scenario with GRUB's tools and a /boot GRUB reads, `vda` and `vdb` carrying the given
    /// boot sectors (captures), their BIOS boot partitions GRUB's captured core image.
    fn host(scenario: &str, vda: &str, vdb: &str) -> Discovered {
        let mut d = discover(&runner(scenario)).expect(scenario);
        let b = &mut d.facts.boot;
        b.grub_install = true;
        b.grub_images = true;
        b.grub_home = Some(("/dev/mapper/vg0-boot".into(), "ext4".into()));
        let core = classify_core(&bytes("core-grub"), &images()).expect("core");
        for (disk, mbr) in [("vda", vda), ("vdb", vdb)] {
            b.sectors.insert(disk.into(), sector(mbr));
            b.cores.insert(format!("{disk}1"), core.clone());
        }
        // As Debian's installer leaves it: md0 declared by its UUID (outside hostform's
        // section), so these tests see the boot loaders alone.
        let uuid = d.facts.blocks.get("vda2").and_then(|m| m.uuid.clone());
        if let Some(u) = uuid.as_deref().and_then(super::super::mdconf::mdadm_uuid) {
            d.facts.boot.mdadm_conf = Some(format!(
                "HOMEHOST <system>\nARRAY /dev/md/0 metadata=1.2 UUID={u} name=h:0\n"
            ));
        }
        d
    }

    fn plan_with_boot(mut d: Discovered) -> Plan {
        let md0 = d.spec.arrays.get_index_mut(0).expect("md0").1;
        md0.bootloader_on = vec![Sp::bare("vda".to_string()), Sp::bare("vdb".to_string())];
        plan_host(&d.spec, &d.facts, &Default::default())
    }

    fn argvs(p: &Plan) -> Vec<String> {
        p.ops.iter().map(|o| o.argv().join(" ")).collect()
    }

    #[test]
    fn grub_as_this_machine_installs_it_plans_nothing() {
        let p = plan_with_boot(host("full", "mbr-grub", "mbr-grub"));
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let c = p
            .changes
            .iter()
            .find(|c| c.resource == "bootloader vdb")
            .expect("a change per disk");
        assert_eq!(c.action, Action::NoOp);
        assert!(c.reason.starts_with("GRUB current"), "{c:?}");
    }

    #[test]
    fn an_empty_boot_sector_of_a_running_member_gets_grub() {
        // vdb's partitions are md0's members, md0 holds mounted LVs: grub-install writes only
        // the boot code and the BIOS boot partition, so the write rule lets it through.
        let mut d = host("full", "mbr-grub", "mbr-sfdisk");
        d.facts.boot.cores.insert("vdb1".into(), BootCode::Empty);
        let p = plan_with_boot(d);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(
            argvs(&p),
            ["grub-install --target=i386-pc /dev/disk/by-id/virtio-HF-DISK-B"]
        );
        assert_eq!(p.ops[0].id, "25:disk:vdb:bootloader");
        let c = p
            .changes
            .iter()
            .find(|c| c.resource == "bootloader vdb")
            .unwrap();
        assert_eq!(c.action, Action::Create);
        assert_eq!(c.reason, "boot sector empty; no core image yet");
    }

    #[test]
    fn disks_get_grub_one_after_the_other() {
        // Two grub-install at once race on /boot/grub/grubenv (seen in the sandbox).
        let mut d = host("full", "mbr-sfdisk", "mbr-sfdisk");
        d.facts.boot.cores.insert("vda1".into(), BootCode::Empty);
        d.facts.boot.cores.insert("vdb1".into(), BootCode::Empty);
        let p = plan_with_boot(d);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(p.ops.len(), 2);
        assert_eq!(p.ops[0].id, "25:disk:vda:bootloader");
        assert_eq!(p.ops[1].after, ["25:disk:vda:bootloader"]);
    }

    #[test]
    fn another_loader_is_never_overwritten_and_named() {
        for (mbr, what) in [
            ("mbr-syslinux-gpt", "SYSLINUX's MBR (\"Missing OS\")"),
            (
                "mbr-install-mbr",
                "install-mbr's boot code (Debian's mbr package)",
            ),
        ] {
            let p = plan_with_boot(host("full", "mbr-grub", mbr));
            assert!(p.ops.is_empty(), "{mbr}: {:#?}", p.ops);
            assert_eq!(p.refusals.len(), 1, "{mbr}: {:#?}", p.refusals);
            let r = &p.refusals[0];
            assert_eq!(r.resource, "bootloader vdb");
            assert_eq!(
                r.reason,
                format!(
                    "the boot sector of vdb (vdb) holds {what}: hostform never installs GRUB over another boot loader"
                )
            );
        }
    }

    #[test]
    fn a_bios_boot_partition_holding_something_else_is_refused() {
        let mut d = host("full", "mbr-grub", "mbr-grub");
        let mut junk = bytes("mbr-syslinux-gpt");
        junk.extend(bytes("mbr-syslinux-gpt"));
        let other = classify_core(&junk, &images()).unwrap();
        d.facts.boot.cores.insert("vdb1".into(), other);
        let p = plan_with_boot(d);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(
            p.refusals[0]
                .reason
                .starts_with("the BIOS boot partition vdb1 of vdb (vdb) holds SYSLINUX's MBR"),
            "{:#?}",
            p.refusals
        );
    }

    #[test]
    fn grub_missing_is_a_refusal_naming_the_package() {
        let mut d = host("full", "mbr-grub", "mbr-sfdisk");
        d.facts.boot.grub_images = false;
        let p = plan_with_boot(d);
        assert!(p.ops.is_empty());
        assert_eq!(p.refusals.len(), 2, "one per disk: {:#?}", p.refusals);
        assert!(
            p.refusals[0].reason.contains("grub-pc-bin"),
            "{:#?}",
            p.refusals
        );
        assert!(
            p.refusals[0]
                .hint
                .contains("apt-get install --no-install-recommends grub-pc-bin grub2-common")
        );
    }

    #[test]
    fn grubs_directory_on_a_filesystem_grub_cannot_read_is_refused() {
        let mut d = host("full", "mbr-grub", "mbr-sfdisk");
        d.facts.boot.grub_home = Some(("rootfs".into(), "9p".into()));
        let p = plan_with_boot(d);
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0].reason.ends_with(
                "/boot/grub is on a 9p filesystem (rootfs), which GRUB cannot read at boot"
            ),
            "{:#?}",
            p.refusals
        );
    }

    #[test]
    fn a_replaced_disk_gets_grub_after_its_table_and_its_re_add() {
        // replaced/: vdb wiped (wipefs leaves its boot code: GRUB's, from the first build, or
        // none), md0 [2/1] on vda2.
        let full = host("full", "mbr-grub", "mbr-grub");
        let mut d = discover(&runner("replaced")).expect("replaced");
        d.facts.boot = full.facts.boot.clone();
        d.facts
            .boot
            .sectors
            .insert("vdb".into(), sector("mbr-grub"));
        d.facts.boot.cores.remove("vdb1");
        d.spec = full.spec;
        let p = plan_with_boot(d);
        assert!(p.refusals.is_empty(), "{:#?}", p.refusals);
        assert_eq!(
            argvs(&p),
            [
                "sfdisk --quiet --wipe never /dev/disk/by-id/virtio-HF-DISK-B",
                "mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B-part2",
                "grub-install --target=i386-pc /dev/disk/by-id/virtio-HF-DISK-B",
            ]
        );
        assert_eq!(
            p.ops[2].after,
            ["10:disk:vdb:table", "22:array:md0:add:vdb/raid_md0"]
        );
    }

    #[test]
    fn a_disk_with_data_whose_boot_sector_was_not_read_is_refused() {
        // vdb holds a GPT, partitions and an array member: its boot sector unread, nothing
        // is written, by the room or by the write rule.
        let mut d = host("full", "mbr-grub", "mbr-grub");
        d.facts.boot.sectors.remove("vdb");
        let p = plan_with_boot(d.clone());
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert_eq!(
            p.refusals[0].reason,
            "the boot sector of vdb (vdb) could not be read"
        );
        let op = crate::plan::Op::run(
            crate::plan::OpId::new(
                25,
                crate::plan::Address::Disk("vdb".into()),
                crate::plan::Verb::Bootloader,
            ),
            "bootloader vdb",
            "install GRUB on vdb",
            vec![
                "grub-install".into(),
                "--target=i386-pc".into(),
                "/dev/disk/by-id/virtio-HF-DISK-B".into(),
            ],
        );
        let v =
            crate::plan::safety::verdicts(std::slice::from_ref(&op), &d.facts, &Default::default());
        assert_eq!(
            v[0].2,
            crate::plan::safety::Verdict::Refused(
                "the boot sector of /dev/disk/by-id/virtio-HF-DISK-B (vdb) could not be read"
                    .into()
            )
        );
        // grub-install aimed at a partition, not a disk: refused.
        let mut part = op;
        part.writes = vec!["/dev/disk/by-id/virtio-HF-DISK-B-part2".into()];
        let v = crate::plan::safety::verdicts(&[part], &d.facts, &Default::default());
        assert!(
            matches!(&v[0].2, crate::plan::safety::Verdict::Refused(w) if w.ends_with("is not a whole disk")),
            "{v:?}"
        );
    }

    #[test]
    fn the_write_rule_refuses_grub_over_another_loader_whatever_the_room_planned() {
        let d = host("full", "mbr-grub", "mbr-install-mbr");
        let op = crate::plan::Op::run(
            crate::plan::OpId::new(
                25,
                crate::plan::Address::Disk("vdb".into()),
                crate::plan::Verb::Bootloader,
            ),
            "bootloader vdb",
            "install GRUB on vdb",
            vec![
                "grub-install".into(),
                "--target=i386-pc".into(),
                "/dev/disk/by-id/virtio-HF-DISK-B".into(),
            ],
        );
        let v =
            crate::plan::safety::verdicts(std::slice::from_ref(&op), &d.facts, &Default::default());
        assert_eq!(
            v[0].2,
            crate::plan::safety::Verdict::Refused(
                "the boot sector of /dev/disk/by-id/virtio-HF-DISK-B (vdb) holds install-mbr's boot code (Debian's mbr package)".into()
            )
        );
        // The same write on GRUB's boot sector belongs: the disk's partitions in use do not
        // stop it.
        let d = host("full", "mbr-grub", "mbr-grub");
        let v = crate::plan::safety::verdicts(&[op], &d.facts, &Default::default());
        assert_eq!(v[0].2, crate::plan::safety::Verdict::Belongs);
    }
}
