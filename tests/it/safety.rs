//! The one write rule, attacked offline: host snapshots crafted from real captures
//! (tests/fixtures), each altered the way an unlucky host could be, under specs that name the
//! wrong thing. No plan may write a device that is not blank, made by this plan, already the
//! spec's, or an allowed destruction.

use crate::common::*;
use hostform::discover::{Discovered, Facts};
use hostform::kinds::block::BlockDev;
use hostform::plan::{Options, Plan, plan_host, safety};
use hostform::spec::types::Spec;
use proptest::prelude::*;

fn captured(scenario: &str) -> Discovered {
    let r =
        hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(scenario)).unwrap();
    hostform::discover::discover(&r).unwrap()
}

fn spec(text: &str) -> Spec {
    match hostform::spec::load::load_str("t.yaml", text) {
        Ok(l) => l.spec,
        Err(_) => panic!("the test spec is invalid:\n{text}"),
    }
}

/// The whole host's plan, with or without `--allow-destroy`.
fn plan_allowing(spec: &Spec, f: &Facts, allow_destroy: bool) -> Plan {
    plan_host(
        spec,
        f,
        &Options {
            allow_destroy,
            ..Default::default()
        },
    )
}

fn argvs(p: &Plan) -> Vec<String> {
    p.ops.iter().map(|o| o.argv().join(" ")).collect()
}

fn refusals(p: &Plan) -> String {
    p.refusals
        .iter()
        .map(|r| format!("{}: {}", r.resource, r.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A partition with ext4 on it, as lsblk shows one on a GPT disk.
fn add_data_partition(f: &mut Facts, disk: &str) {
    let d = f.blocks.devices.get_mut(disk).unwrap();
    d.pttype = Some("gpt".into());
    let part = BlockDev {
        kname: format!("{disk}1"),
        name: format!("{disk}1"),
        path: format!("/dev/{disk}1"),
        kind: "part".into(),
        size: 1 << 30,
        fstype: Some("ext4".into()),
        uuid: Some("0b1c2d3e-0000-4000-8000-000000000001".into()),
        pttype: Some("gpt".into()),
        start: Some(2048),
        mountpoints: Vec::new(),
        parents: vec![disk.into()],
        ..Default::default()
    };
    f.blocks.devices.insert(part.kname.clone(), part);
    f.blocks.index();
}

/// A blank disk next to the captured ones.
fn add_blank_disk(f: &mut Facts, kname: &str, serial: &str) {
    let d = BlockDev {
        kname: kname.into(),
        name: kname.into(),
        path: format!("/dev/{kname}"),
        kind: "disk".into(),
        size: 2 << 30,
        serial: Some(serial.into()),
        ..Default::default()
    };
    f.blocks.devices.insert(kname.into(), d);
    f.by_id.insert(format!("virtio-{serial}"), kname.into());
    f.blocks.index();
}

const WHOLE_MIRROR: &str = "host: lab
disks:
  a: { serial: HF-DISK-A }
  b: { serial: HF-DISK-B }
arrays:
  md0: { level: 1, devices: [a, b] }
";

#[test]
fn a_disk_with_a_data_partition_named_whole_as_a_member_is_never_written() {
    let mut f = captured("blank").facts;
    add_data_partition(&mut f, "vda");
    for allow_destroy in [false, true] {
        let p = plan_allowing(&spec(WHOLE_MIRROR), &f, allow_destroy);
        assert!(
            !argvs(&p).iter().any(|a| a.contains("mdadm --create")),
            "{:#?}",
            p.ops
        );
        assert!(refusals(&p).contains("vda1"), "{}", refusals(&p));
    }
}

#[test]
fn a_disk_with_a_data_partition_named_whole_as_a_pv_is_never_written() {
    let mut f = captured("blank").facts;
    add_data_partition(&mut f, "vda");
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0: { pvs: [a], lvs: { x: { size: 64MiB, fs: ext4 } } }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(
        !argvs(&p)
            .iter()
            .any(|a| a.starts_with("pvcreate") || a.starts_with("vgcreate")),
        "{:#?}",
        p.ops
    );
    assert!(refusals(&p).contains("vda1"), "{}", refusals(&p));
}

#[test]
fn a_mounted_disk_named_whole_is_never_written_even_with_allow_destroy() {
    let mut f = captured("blank").facts;
    f.blocks.devices.get_mut("vda").unwrap().mountpoints = vec!["/".into()];
    let p = plan_host(
        &spec(WHOLE_MIRROR),
        &f,
        &Options {
            allow_destroy: true,
            ..Default::default()
        },
    );
    assert!(!argvs(&p).iter().any(|a| a.contains("mdadm --create")));
    assert!(refusals(&p).contains("mounted on /"), "{}", refusals(&p));
}

/// The full capture's spec, with guest1_iso (an LV without a filesystem) asked as ext4.
fn iso_as_ext4() -> (Spec, Facts) {
    let d = captured("full");
    let mut s = d.spec;
    let vg = s.volume_groups.values_mut().next().unwrap();
    let lv = vg
        .lvs
        .iter_mut()
        .find(|(k, _)| k.as_str() == "guest1_iso")
        .unwrap()
        .1;
    lv.fs = hostform::spec::types::Filesystem::Ext4;
    (s, d.facts)
}

#[test]
fn an_lv_holding_a_guests_partition_table_gets_no_mkfs() {
    let (s, mut f) = iso_as_ext4();
    // On the unaltered capture the LV is blank, and mkfs is planned.
    let p = plan_host(&s, &f, &Options::default());
    assert!(
        argvs(&p).iter().any(|a| a.starts_with("mkfs.ext4")),
        "{:#?}",
        p
    );
    f.blocks.devices.get_mut("dm-5").unwrap().pttype = Some("dos".into());
    for allow_destroy in [false, true] {
        let p = plan_allowing(&s, &f, allow_destroy);
        assert!(
            !argvs(&p).iter().any(|a| a.starts_with("mkfs")),
            "{:#?}",
            p.ops
        );
        assert!(
            refusals(&p).contains("dos partition table"),
            "{}",
            refusals(&p)
        );
    }
}

#[test]
fn an_lv_held_open_by_a_guest_gets_no_mkfs() {
    let (s, mut f) = iso_as_ext4();
    f.lvm.lvs.get_mut("vg0/guest1_iso").unwrap().open = true;
    let p = plan_host(
        &s,
        &f,
        &Options {
            allow_destroy: true,
            ..Default::default()
        },
    );
    assert!(
        !argvs(&p).iter().any(|a| a.starts_with("mkfs")),
        "{:#?}",
        p.ops
    );
    assert!(refusals(&p).contains("is open"), "{}", refusals(&p));
}

#[test]
fn two_spec_disks_on_one_device_are_refused() {
    let f = captured("blank").facts;
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A, partitions: [{ name: x, size: 64MiB, type: linux }] }
  b: { id: /dev/disk/by-id/virtio-HF-DISK-A, partitions: [{ name: y, size: 64MiB, type: linux }] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert_eq!(
        argvs(&p).iter().filter(|a| a.starts_with("sfdisk")).count(),
        1,
        "{:#?}",
        p.ops
    );
    assert!(
        refusals(&p).contains("the same device as disk a"),
        "{}",
        refusals(&p)
    );
}

#[test]
fn an_id_naming_a_partition_is_not_a_disk() {
    let f = captured("full").facts;
    let s = spec("host: lab
disks:
  a: { id: /dev/disk/by-id/virtio-HF-DISK-A-part2, partitions: [{ name: x, size: 64MiB, type: linux }] }
");
    let p = plan_host(
        &s,
        &f,
        &Options {
            allow_destroy: true,
            ..Default::default()
        },
    );
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert!(
        refusals(&p).contains("not a whole disk"),
        "{}",
        refusals(&p)
    );
}

#[test]
fn an_array_over_one_device_twice_is_refused() {
    let f = captured("blank").facts;
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A }
  b: { id: /dev/disk/by-id/virtio-HF-DISK-A }
arrays:
  md0: { level: 1, devices: [a, b] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(
        !argvs(&p).iter().any(|a| a.contains("mdadm --create")),
        "{:#?}",
        p.ops
    );
    assert!(!p.refusals.is_empty());
}

#[test]
fn an_array_name_taken_by_a_running_array_is_not_created_again() {
    let mut f = captured("full").facts;
    add_blank_disk(&mut f, "vdc", "HF-DISK-C");
    add_blank_disk(&mut f, "vdd", "HF-DISK-D");
    let s = spec(
        "host: lab
disks:
  c: { serial: HF-DISK-C }
  d: { serial: HF-DISK-D }
arrays:
  md0: { level: 1, devices: [c, d] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(
        !argvs(&p).iter().any(|a| a.contains("mdadm --create")),
        "{:#?}",
        p.ops
    );
    assert!(
        refusals(&p).contains("name is taken by the running array md0"),
        "{}",
        refusals(&p)
    );
}

#[test]
fn a_running_array_with_another_member_is_not_reported_as_the_specs() {
    let mut f = captured("full").facts;
    add_blank_disk(&mut f, "vdc", "HF-DISK-C");
    let s = spec(
        "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios_grub, size: 2MiB, type: bios-boot }
      - { name: raid_md0, size: rest, type: linux-raid }
  c: { serial: HF-DISK-C }
arrays:
  md0: { level: 1, devices: [a/raid_md0, c] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(
        !p.changes
            .iter()
            .any(|c| c.reason.contains("with the spec's members")),
        "{:#?}",
        p.changes
    );
    let r = refusals(&p);
    assert!(r.contains("vdc") && r.contains("vdb2"), "{r}");
}

#[test]
fn partitions_that_cannot_fit_the_disk_are_refused() {
    let f = captured("blank").facts;
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A, partitions: [{ name: x, size: 3GiB, type: linux }] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert!(refusals(&p).contains("cannot fit"), "{}", refusals(&p));
}

#[test]
fn an_absent_lv_is_labelled_by_the_specs_kind() {
    let d = captured("full");
    let mut s = d.spec;
    let vg = s.volume_groups.values_mut().next().unwrap();
    // The host's guest1_root_snap is a snapshot; here the spec lists it as a plain LV.
    let key = vg
        .snapshots
        .keys()
        .find(|k| k.as_str() == "guest1_root_snap")
        .unwrap()
        .clone();
    vg.snapshots.shift_remove(&key);
    let mut lv = vg.lvs.values().next().unwrap().clone();
    lv.state = hostform::spec::types::Presence::Absent;
    vg.lvs.insert(key, lv);
    let p = plan_host(
        &s,
        &d.facts,
        &Options {
            allow_destroy: true,
            ..Default::default()
        },
    );
    let op = p
        .ops
        .iter()
        .find(|o| o.argv().first().is_some_and(|a| a == "lvremove"));
    if let Some(op) = op {
        assert!(!op.id.as_str().contains("snapshot"), "{op:#?}");
        assert_eq!(op.resource, "lv vg0/guest1_root_snap");
    }
}

const SPECS: [&str; 4] = [
    WHOLE_MIRROR,
    "host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0: { pvs: [a], lvs: { x: { size: 64MiB, fs: ext4 } } }
",
    "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios, size: 2MiB, type: bios-boot }
      - { name: raid, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B, like: a }
arrays:
  md0: { level: 1, devices: [a/raid, b/raid] }
volume-groups:
  vg0: { pvs: [md0], lvs: { x: { size: 64MiB, fs: ext4 } } }
",
    "host: lab
disks:
  a: { serial: HF-DISK-A, wipe: true, partitions: [{ name: x, size: 64MiB, type: linux }] }
  b: { serial: HF-DISK-B }
arrays:
  md0: { level: 1, devices: [a/x, b], wipe: true }
",
];

/// One alteration of a captured blank disk.
fn alter(f: &mut Facts, disk: &str, how: u8) {
    match how {
        0 => {}
        1 => add_data_partition(f, disk),
        2 => f.blocks.devices.get_mut(disk).unwrap().pttype = Some("dos".into()),
        3 => f.blocks.devices.get_mut(disk).unwrap().fstype = Some("ext4".into()),
        4 => f.blocks.devices.get_mut(disk).unwrap().mountpoints = vec!["/".into()],
        // Held open by a process (the one the `opened` capture shows on its vdb).
        6 => {
            f.openers
                .insert(disk.into(), opened().openers["vdb"].clone());
        }
        // A blank partition held open (as the `opened` capture's vda2).
        7 => {
            add_data_partition(f, disk);
            let p = format!("{disk}1");
            f.blocks.devices.get_mut(&p).unwrap().fstype = None;
            f.openers.insert(p, opened().openers["vda2"].clone());
        }
        _ => {
            add_data_partition(f, disk);
            let p = format!("{disk}1");
            f.blocks.devices.get_mut(&p).unwrap().mountpoints = vec!["[SWAP]".into()];
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn no_op_writes_a_device_that_fails_the_rule(
        a in 0u8..8, b in 0u8..8, which in 0usize..SPECS.len(), allow_destroy: bool
    ) {
        let mut f = captured("blank").facts;
        alter(&mut f, "vda", a);
        alter(&mut f, "vdb", b);
        let opts = Options { allow_destroy, ..Default::default() };
        let p = plan_host(&spec(SPECS[which]), &f, &opts);
        for (id, dev, v) in safety::verdicts(&p.ops, &f, &opts) {
            prop_assert!(v.allowed(), "{id} writes {dev}: {v:?}");
            // A device in use is never written, whatever the flags.
            if let Some(b) = safety::resolve(&dev, &f) {
                prop_assert!(safety::in_use(b, &f).is_none(), "{id} writes {dev}, in use");
            }
        }
        // Every op that runs a writing tool says what it writes.
        for o in &p.ops {
            let writer = ["sfdisk", "wipefs", "mkswap", "pvcreate", "vgcreate", "pvremove", "lvremove", "lvreduce"].contains(&o.argv()[0].as_str())
                || o.argv()[0].starts_with("mkfs")
                || (o.argv()[0] == "mdadm" && o.argv().iter().any(|x| ["--create", "--add", "--stop", "--zero-superblock"].contains(&x.as_str())));
            prop_assert!(!writer || !o.writes.is_empty(), "{o:#?}");
        }
    }
}

/// A written path discovery did not see is written only when an operation of this same plan
/// makes it: its content is otherwise unknown, so not provably blank.
#[test]
fn a_device_not_seen_is_written_only_when_this_plan_makes_it() {
    let f = captured("blank").facts;
    let ops_of = |argvs: &[&[&str]]| -> Vec<hostform::plan::Op> {
        argvs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let argv: Vec<String> = a.iter().map(|x| x.to_string()).collect();
                use hostform::plan::{Address, OpId, Verb};
                let id = OpId::new(50, Address::lv("vg", &format!("op{i}")), Verb::Create);
                hostform::plan::Op::run(id, "x", argv.join(" "), argv)
            })
            .collect()
    };
    let verdict = |ops: &[hostform::plan::Op], dev: &str| {
        safety::verdicts(ops, &f, &Options::default())
            .into_iter()
            .find(|(_, d, _)| d == dev)
            .map(|(_, _, v)| v)
            .unwrap()
    };
    // An LV nobody creates, a partition of a disk nobody partitions, an array nobody creates.
    for (argv, dev) in [
        (&["mkfs.ext4", "-q", "/dev/vg0/ghost"][..], "/dev/vg0/ghost"),
        (
            &["mkfs.ext4", "-q", "/dev/disk/by-id/virtio-HF-DISK-A-part1"][..],
            "/dev/disk/by-id/virtio-HF-DISK-A-part1",
        ),
        (&["pvcreate", "/dev/md7"][..], "/dev/md7"),
        (
            &["mkswap", "/dev/disk/by-id/virtio-NO-SUCH-DISK"][..],
            "/dev/disk/by-id/virtio-NO-SUCH-DISK",
        ),
    ] {
        let v = verdict(&ops_of(&[argv]), dev);
        assert!(
            matches!(&v, safety::Verdict::Refused(why) if why.contains("not found on this host")),
            "{dev}: {v:?}"
        );
    }
    // The same writes after the operation that makes each device.
    let made = ops_of(&[
        &[
            "lvcreate", "--quiet", "--yes", "-n", "ghost", "-L", "8388608b", "vg0",
        ],
        &["mkfs.ext4", "-q", "/dev/vg0/ghost"],
        &[
            "sfdisk",
            "--quiet",
            "--wipe",
            "never",
            "/dev/disk/by-id/virtio-HF-DISK-A",
        ],
        &["mkfs.ext4", "-q", "/dev/disk/by-id/virtio-HF-DISK-A-part1"],
        &[
            "mdadm",
            "--create",
            "/dev/md7",
            "--run",
            "--level=1",
            "--raid-devices=2",
            "/dev/disk/by-id/virtio-HF-DISK-A-part1",
            "/dev/disk/by-id/virtio-HF-DISK-B",
        ],
        &["pvcreate", "/dev/md7"],
    ]);
    assert_eq!(
        verdict(&made, "/dev/vg0/ghost"),
        safety::Verdict::MadeByPlan
    );
    assert_eq!(
        verdict(&made, "/dev/disk/by-id/virtio-HF-DISK-A-part1"),
        safety::Verdict::MadeByPlan
    );
    assert_eq!(verdict(&made, "/dev/md7"), safety::Verdict::MadeByPlan);
    // Another VG's LV of the same name, or another disk's partition, is not made by them.
    let other = ops_of(&[
        &[
            "lvcreate", "--quiet", "--yes", "-n", "ghost", "-L", "8388608b", "vg1",
        ],
        &["mkfs.ext4", "-q", "/dev/vg0/ghost"],
        &[
            "sfdisk",
            "--quiet",
            "--wipe",
            "never",
            "/dev/disk/by-id/virtio-HF-DISK-B",
        ],
        &["mkfs.ext4", "-q", "/dev/disk/by-id/virtio-HF-DISK-A-part1"],
    ]);
    assert!(!verdict(&other, "/dev/vg0/ghost").allowed());
    assert!(!verdict(&other, "/dev/disk/by-id/virtio-HF-DISK-A-part1").allowed());
}

/// A spec disk whose `id` names nothing on this host but whose serial matches a disk is
/// written through a path of the disk found, never through the `id` that names nothing.
#[test]
fn a_disk_found_by_serial_is_written_by_a_path_that_exists() {
    let f = captured("blank").facts;
    let s = spec(
        "host: lab
disks:
  a: { id: /dev/disk/by-id/virtio-STALE-ID, serial: HF-DISK-A, partitions: [{ name: x, size: 64MiB, type: linux }] }
",
    );
    let p = plan_host(&s, &f, &Options::default());
    assert!(p.refusals.is_empty(), "{}", refusals(&p));
    let all = argvs(&p).join("\n");
    assert!(!all.contains("STALE-ID"), "{all}");
    assert!(
        all.contains("sfdisk --quiet --wipe never /dev/disk/by-id/virtio-HF-DISK-A"),
        "{all}"
    );
}

// A degraded array's replacement: replaced/ is md0 running [2/1] on vda2, vdb wiped blank as
// the replacement disk. Each test below alters that capture the way an unlucky replacement
// could be: the wrong disk put in, or one still holding an old system.

/// md0 on the captured vda2, with the replacement disk b named whole.
const WHOLE_REPLACEMENT: &str = "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios_grub, size: 2MiB, type: bios-boot }
      - { name: raid_md0, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B }
arrays:
  md0: { level: 1, devices: [a/raid_md0, b] }
";

/// An MBR on `disk` with one ext4 partition, as lsblk shows a disk from an old system.
fn add_mbr_with_ext4(f: &mut Facts, disk: &str) {
    add_data_partition(f, disk);
    f.blocks.devices.get_mut(disk).unwrap().pttype = Some("dos".into());
    f.blocks
        .devices
        .get_mut(&format!("{disk}1"))
        .unwrap()
        .pttype = Some("dos".into());
}

fn adds(p: &Plan) -> Vec<String> {
    argvs(p)
        .into_iter()
        .filter(|a| a.contains("--add"))
        .collect()
}

#[test]
fn a_blank_replacement_disk_named_whole_is_added() {
    // replaced/ as captured: vdb is blank.
    let f = captured("replaced").facts;
    assert!(f.arrays["md0"].degraded());
    let p = plan_host(&spec(WHOLE_REPLACEMENT), &f, &Options::default());
    assert!(p.refusals.is_empty(), "{}", refusals(&p));
    assert_eq!(
        argvs(&p),
        ["mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B"]
    );
}

#[test]
fn a_replacement_disk_named_whole_holding_an_mbr_and_ext4_is_not_added() {
    // Crafted from replaced/: vdb given a dos table and an ext4 partition vdb1.
    let mut f = captured("replaced").facts;
    add_mbr_with_ext4(&mut f, "vdb");
    for allow_destroy in [false, true] {
        let p = plan_allowing(&spec(WHOLE_REPLACEMENT), &f, allow_destroy);
        assert!(adds(&p).is_empty(), "{:#?}", p.ops);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        let r = refusals(&p);
        assert!(
            r.contains("virtio-HF-DISK-B (vdb) holds a dos partition table") && r.contains("vdb1"),
            "{r}"
        );
    }
}

#[test]
fn a_replacement_disk_named_whole_with_only_an_mbr_is_not_added() {
    // Crafted from replaced/: vdb given a dos table, no partition (a signature of the disk only).
    let mut f = captured("replaced").facts;
    f.blocks.devices.get_mut("vdb").unwrap().pttype = Some("dos".into());
    let p = plan_host(&spec(WHOLE_REPLACEMENT), &f, &Options::default());
    assert!(adds(&p).is_empty(), "{:#?}", p.ops);
    assert!(
        refusals(&p).contains("dos partition table"),
        "{}",
        refusals(&p)
    );
}

#[test]
fn a_replacement_disk_named_whole_holding_a_filesystem_itself_is_not_added() {
    // Crafted from replaced/: ext4 made on the whole of vdb, no table.
    let mut f = captured("replaced").facts;
    f.blocks.devices.get_mut("vdb").unwrap().fstype = Some("ext4".into());
    for allow_destroy in [false, true] {
        let p = plan_allowing(&spec(WHOLE_REPLACEMENT), &f, allow_destroy);
        assert!(adds(&p).is_empty(), "{:#?}", p.ops);
        let r = refusals(&p);
        assert!(r.contains("vdb") && r.contains("ext4"), "{r}");
    }
}

#[test]
fn a_partitioned_replacement_whose_disk_holds_data_is_neither_partitioned_nor_added() {
    // replaced/'s own spec (b partitioned like a); crafted from replaced/: vdb given a dos table
    // and an ext4 partition vdb1.
    let d = captured("replaced");
    let mut f = d.facts;
    add_mbr_with_ext4(&mut f, "vdb");
    let full = captured("full").spec;
    for allow_destroy in [false, true] {
        let p = plan_allowing(&full, &f, allow_destroy);
        assert!(
            !argvs(&p)
                .iter()
                .any(|a| a.starts_with("sfdisk") || a.contains("--add")),
            "{:#?}",
            p.ops
        );
        let r = refusals(&p);
        assert!(r.contains("vdb"), "{r}");
    }
}

#[test]
fn a_replacement_partition_holding_ext4_is_not_added() {
    // Crafted from replaced/: vdb given a GPT whose vdb2 (the spec's b/raid_md0) holds ext4,
    // as if the disk came from another host partitioned the same way.
    let mut f = captured("replaced").facts;
    add_gpt_like_a(&mut f, Some("ext4"));
    let full = captured("full").spec;
    for allow_destroy in [false, true] {
        let p = plan_allowing(&full, &f, allow_destroy);
        assert!(adds(&p).is_empty(), "{:#?}", p.ops);
        let r = refusals(&p);
        assert!(r.contains("vdb2") && r.contains("ext4"), "{r}");
    }
}

/// vdb partitioned as the capture's vda: vdb1 (bios_grub), vdb2 (raid_md0) with `fstype`.
fn add_gpt_like_a(f: &mut Facts, fstype: Option<&str>) {
    f.blocks.devices.get_mut("vdb").unwrap().pttype = Some("gpt".into());
    for (n, from) in [(1, "vda1"), (2, "vda2")] {
        let mut part = f.blocks.devices[from].clone();
        part.kname = format!("vdb{n}");
        part.name = part.kname.clone();
        part.path = format!("/dev/vdb{n}");
        part.parents = vec!["vdb".into()];
        part.uuid = None;
        part.label = None;
        part.fstype = None;
        f.blocks.devices.insert(part.kname.clone(), part);
        f.by_id
            .insert(format!("virtio-HF-DISK-B-part{n}"), format!("vdb{n}"));
    }
    f.blocks.devices.get_mut("vdb2").unwrap().fstype = fstype.map(str::to_string);
    f.blocks.index();
}

#[test]
fn a_blank_replacement_partition_is_added() {
    // Crafted from replaced/: vdb already partitioned like vda, vdb2 blank: only the add.
    let mut f = captured("replaced").facts;
    add_gpt_like_a(&mut f, None);
    let p = plan_host(&captured("full").spec, &f, &Options::default());
    assert!(p.refusals.is_empty(), "{}", refusals(&p));
    assert_eq!(
        argvs(&p),
        ["mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B-part2"]
    );
}

#[test]
fn a_replacement_member_in_use_is_never_added_even_with_allow_destroy() {
    // Crafted from replaced/: vdb partitioned like vda, its vdb2 blank but mounted, active
    // swap, or held by a device-mapper device (a holder: the kernel has it open).
    for how in ["mounted", "swap", "held"] {
        let mut f = captured("replaced").facts;
        add_gpt_like_a(&mut f, None);
        match how {
            "mounted" => {
                f.blocks.devices.get_mut("vdb2").unwrap().mountpoints = vec!["/mnt".into()]
            }
            "swap" => {
                let b = f.blocks.devices.get_mut("vdb2").unwrap();
                b.fstype = Some("swap".into());
                b.mountpoints = vec!["[SWAP]".into()];
            }
            _ => {
                let mut dm = f.blocks.devices["dm-8"].clone();
                dm.kname = "dm-9".into();
                dm.name = "crypt-old".into();
                dm.path = "/dev/mapper/crypt-old".into();
                dm.parents = vec!["vdb2".into()];
                f.blocks.devices.insert(dm.kname.clone(), dm);
                f.blocks.index();
            }
        }
        for allow_destroy in [false, true] {
            let p = plan_allowing(&captured("full").spec, &f, allow_destroy);
            assert!(adds(&p).is_empty(), "{how}: {:#?}", p.ops);
            let r = refusals(&p);
            assert!(r.contains("vdb2"), "{how}: {r}");
        }
        // The same device named whole: the disk holding it is never added either.
        for allow_destroy in [false, true] {
            let p = plan_allowing(&spec(WHOLE_REPLACEMENT), &f, allow_destroy);
            assert!(adds(&p).is_empty(), "{how} (whole): {:#?}", p.ops);
        }
    }
}

/// The spec of the captured stack: md0 over both disks' raid_md0 partitions.
const PARTITIONED_MIRROR: &str = "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios_grub, size: 2MiB, type: bios-boot }
      - { name: raid_md0, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B, like: a }
arrays:
  md0: { level: 1, devices: [a/raid_md0, b/raid_md0] }
";

#[test]
fn a_removed_member_carrying_its_arrays_superblock_is_added_back() {
    // Crafted from failed/ (vdb2 faulty, still attached): vdb2 taken out of md0's members, as
    // `mdadm --remove` leaves it; it keeps md0's superblock (md0's UUID, as lsblk shows it).
    let mut f = captured("failed").facts;
    let md0 = f.arrays.get_mut("md0").unwrap();
    md0.members.retain(|m| m.kname != "vdb2");
    let uuid = f.blocks.get("vda2").unwrap().uuid.clone();
    assert!(uuid.is_some());
    assert_eq!(f.blocks.get("vdb2").unwrap().uuid, uuid);
    assert_eq!(
        f.blocks.get("vdb2").unwrap().fstype.as_deref(),
        Some("linux_raid_member")
    );
    let p = plan_host(&spec(PARTITIONED_MIRROR), &f, &Options::default());
    assert!(p.refusals.is_empty(), "{}", refusals(&p));
    assert_eq!(
        adds(&p),
        ["mdadm --manage /dev/md0 --add /dev/disk/by-id/virtio-HF-DISK-B-part2"]
    );
    // The same partition carrying another array's superblock is not md0's: refused.
    f.blocks.devices.get_mut("vdb2").unwrap().uuid =
        Some("00000000-1111-2222-3333-444444444444".into());
    for allow_destroy in [false, true] {
        let p = plan_allowing(&spec(PARTITIONED_MIRROR), &f, allow_destroy);
        assert!(adds(&p).is_empty(), "{:#?}", p.ops);
        assert!(refusals(&p).contains("another array"), "{}", refusals(&p));
    }
}

/// The processes of the `opened` capture that hold vdb (whole), vda2 and the LV vgo/held open.
fn opened() -> &'static Facts {
    static F: std::sync::OnceLock<Facts> = std::sync::OnceLock::new();
    F.get_or_init(|| captured("opened").facts)
}

/// The blank capture, with vdb held open by the process that held it in the `opened` capture.
fn blank_with_vdb_open() -> Facts {
    let mut f = captured("blank").facts;
    f.openers
        .insert("vdb".into(), opened().openers["vdb"].clone());
    f
}

#[test]
fn a_disk_held_open_by_a_process_is_never_a_member_even_with_allow_destroy() {
    let f = blank_with_vdb_open();
    // Without the opener, the blank mirror is created.
    let p = plan_host(
        &spec(WHOLE_MIRROR),
        &captured("blank").facts,
        &Options::default(),
    );
    assert!(
        argvs(&p).iter().any(|a| a.contains("mdadm --create")),
        "{p:#?}"
    );
    for allow_destroy in [false, true] {
        let p = plan_allowing(&spec(WHOLE_MIRROR), &f, allow_destroy);
        assert!(
            !argvs(&p).iter().any(|a| a.contains("mdadm --create")),
            "{:#?}",
            p.ops
        );
        assert!(
            refusals(&p).contains("vdb is open by sleep (pid 226)"),
            "{}",
            refusals(&p)
        );
    }
}

#[test]
fn a_disk_held_open_is_not_partitioned_and_the_blank_one_still_is() {
    let f = blank_with_vdb_open();
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A, partitions: [{ name: x, size: 64MiB, type: linux }] }
  b: { serial: HF-DISK-B, like: a }
",
    );
    for allow_destroy in [false, true] {
        let p = plan_allowing(&s, &f, allow_destroy);
        let sfdisk: Vec<String> = argvs(&p)
            .into_iter()
            .filter(|a| a.starts_with("sfdisk"))
            .collect();
        assert!(
            sfdisk
                .iter()
                .any(|a| a.contains("HF-DISK-A") || a.contains("vda")),
            "{sfdisk:?}"
        );
        assert!(
            !sfdisk
                .iter()
                .any(|a| a.contains("HF-DISK-B") || a.contains("vdb")),
            "{sfdisk:?}"
        );
        assert!(
            p.refusals.iter().any(|r| r.hint.contains("fuser -v")),
            "{:?}",
            p.refusals
        );
        assert!(
            refusals(&p).contains("vdb is open by sleep (pid 226)"),
            "{}",
            refusals(&p)
        );
    }
}

/// The `opened` host as discovered, with one more VG on a partition.
fn opened_disks(extra: &str) -> Spec {
    spec(&format!(
        "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - {{ name: spare, size: 64MiB, type: linux }}
      - {{ name: raw, size: 64MiB, type: linux }}
      - {{ name: pv, size: rest, type: lvm }}
  b: {{ serial: HF-DISK-B }}
volume-groups:
{extra}"
    ))
}

#[test]
fn a_partition_held_open_even_by_another_name_is_never_a_pv_and_a_free_one_is() {
    let f = opened();
    let held = opened_disks(
        "  vgo: { pvs: [a/pv], lvs: { held: { size: 64MiB }, idle: { size: 64MiB } } }
  vgn: { pvs: [a/raw] }
",
    );
    for allow_destroy in [false, true] {
        let p = plan_allowing(&held, f, allow_destroy);
        assert!(
            !argvs(&p).iter().any(|a| a.starts_with("pvcreate")),
            "{:#?}",
            p.ops
        );
        assert!(
            refusals(&p).contains("vda2 is open by tail (pid 227)"),
            "{}",
            refusals(&p)
        );
    }
    let free = opened_disks(
        "  vgo: { pvs: [a/pv], lvs: { held: { size: 64MiB }, idle: { size: 64MiB } } }
  vgn: { pvs: [a/spare] }
",
    );
    // vda1 is held through a node of another name (/dev/hf-alias): refused, by its number.
    let p = plan_host(&free, f, &Options::default());
    assert!(
        !argvs(&p).iter().any(|a| a.starts_with("pvcreate")),
        "{:#?}",
        p.ops
    );
    assert!(
        refusals(&p).contains("vda1 is open by sleep (pid 238)"),
        "{}",
        refusals(&p)
    );
    // Once that process is gone, the blank partition is taken.
    let mut gone = f.clone();
    gone.openers.remove("vda1");
    let p = plan_host(&free, &gone, &Options::default());
    assert!(
        argvs(&p).iter().any(|a| a.starts_with("pvcreate")),
        "{}\n{:#?}",
        refusals(&p),
        p.ops
    );
}

#[test]
fn an_lv_held_open_by_a_process_gets_no_mkfs_and_its_idle_neighbour_does() {
    let f = opened();
    let s = opened_disks(
        "  vgo:
    pvs: [a/pv]
    lvs:
      held: { size: 64MiB, fs: ext4 }
      idle: { size: 64MiB, fs: ext4 }
",
    );
    for allow_destroy in [false, true] {
        let p = plan_allowing(&s, f, allow_destroy);
        let mkfs: Vec<String> = argvs(&p)
            .into_iter()
            .filter(|a| a.starts_with("mkfs"))
            .collect();
        assert!(mkfs.iter().any(|a| a.contains("idle")), "{mkfs:?}");
        assert!(!mkfs.iter().any(|a| a.contains("held")), "{mkfs:?}");
        assert!(refusals(&p).contains("sleep (pid 228)"), "{}", refusals(&p));
    }
}

#[test]
fn a_disk_whose_partition_is_held_open_is_never_written_whole() {
    // vda is no member, however destructive the spec allows it to be: vda2 is open.
    let f = opened();
    let s = spec(
        "host: lab
disks:
  a: { serial: HF-DISK-A, wipe: true }
  b: { serial: HF-DISK-B }
volume-groups:
  vgn: { pvs: [a] }
",
    );
    let p = plan_host(
        &s,
        f,
        &Options {
            allow_destroy: true,
            ..Default::default()
        },
    );
    assert!(
        !argvs(&p).iter().any(|a| a.starts_with("pvcreate")
            || a.starts_with("wipefs")
            || a.starts_with("sfdisk")),
        "{:#?}",
        p.ops
    );
    assert!(refusals(&p).contains("is open by"), "{}", refusals(&p));
}
