//! A room's facts as the layers above it use them: discovery reads them into a spec, the
//! planner acts on them. These tests go through `discover` and `plan`, so they live here, not
//! beside the rooms in src/kinds (which sit below both).

use hostform::kinds::image::{ImageFact, parse_info};

use crate::common::root;

/// The replaying runner of one captured scenario (tests/fixtures/).
fn runner(scenario: &str) -> hostform::runner::ReplayRunner {
    hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(scenario)).unwrap()
}

/// One fixture file's text: `image/fw.qcow2.json`.
fn text(path: &str) -> String {
    std::fs::read_to_string(root().join("tests/fixtures").join(path)).unwrap()
}

/// The disks `hostform discover` prints on the machine that runs the tests are found again by
/// their `id` (their serial taken away, so that nothing else finds them) when that spec is
/// planned against the same host.
#[test]
fn discovered_disk_ids_resolve_back_to_their_disks() {
    let d = match hostform::discover::discover(&hostform::runner::RealRunner::new()) {
        Ok(d) => d,
        Err(e) if e.contains("cannot list block devices") => return, // no lsblk here
        Err(e) => panic!("{e}"),
    };
    let mut spec = d.spec.clone();
    for disk in spec.disks.values_mut() {
        disk.serial = None;
    }
    let p = hostform::plan::plan_host(&spec, &d.facts, &Default::default());
    for (name, disk) in &spec.disks {
        if let Some(id) = &disk.id {
            let res = format!("disk {name}");
            assert!(
                !p.refusals.iter().any(|r| r.resource == res
                    && (r.reason.starts_with("not found") || r.reason.starts_with("resolves to"))),
                "{name}: {id} does not resolve: {:?}",
                p.refusals
            );
        }
    }
}

/// A shared VG is created with `vgcreate --shared` (vgcreate(8): "Create a shared VG using
/// lvmlockd"), and refused, saying why, where lvmlockd does not run.
#[test]
fn a_shared_vg_needs_lvmlockd() {
    let full = hostform::discover::discover(&runner("full")).unwrap();
    let blank = hostform::discover::discover(&runner("blank")).unwrap();
    assert!(!blank.facts.lvm.lockd, "no lvmlockd in the sandbox");
    let mut spec = full.spec.clone();
    let vg = spec.volume_groups.get_index_mut(0).unwrap().1;
    vg.shared = true;
    vg.extent_size = Some(hostform::spec::de::Sp::bare(hostform::spec::units::Size(
        8 << 20,
    )));
    let p = hostform::plan::plan_host(&spec, &blank.facts, &Default::default());
    assert!(
        p.refusals.iter().any(|r| r.resource == "volume group vg0"
            && r.reason.contains("needs lvmlockd, which is not running")),
        "{:?}",
        p.refusals
    );
    assert!(!p.ops.iter().any(|o| o.argv()[0] == "vgcreate"));
    let mut facts = blank.facts.clone();
    facts.lvm.lockd = true;
    let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
    let vgcreate = p.ops.iter().find(|o| o.argv()[0] == "vgcreate").unwrap();
    assert_eq!(
        vgcreate.argv(),
        [
            "vgcreate", "--quiet", "--shared", "-s", "8192k", "vg0", "/dev/md0"
        ]
    );
}

/// The full scenario's spec plus `vg0/fw` made from the captured fw.qcow2 (10 MiB).
fn with_image(
    image_fact: Option<ImageFact>,
) -> (hostform::spec::types::Spec, hostform::discover::Facts) {
    let d = hostform::discover::discover(&runner("full")).unwrap();
    let mut spec = d.spec;
    let lv = hostform::spec::types::Lv {
        image: Some(hostform::spec::de::Sp::bare("images/fw.qcow2".into())),
        ..Default::default()
    };
    spec.volume_groups
        .get_index_mut(0)
        .unwrap()
        .1
        .lvs
        .insert(hostform::spec::de::Sp::bare("fw".into()), lv);
    let mut facts = d.facts;
    if let Some(f) = image_fact {
        facts.images.insert("images/fw.qcow2".into(), f);
    }
    (spec, facts)
}

fn qcow2() -> ImageFact {
    ImageFact::Read(parse_info("/repo/images/fw.qcow2", &text("image/fw.qcow2.json")).unwrap())
}

#[test]
fn an_lv_from_an_image_is_sized_from_it_rounded_to_extents_then_filled() {
    let (spec, facts) = with_image(Some(qcow2()));
    let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    let argv: Vec<Vec<String>> = p.ops.iter().map(|o| o.argv().clone()).collect();
    // 10 MiB rounded up to the VG's 4 MiB extents: 12 MiB.
    assert_eq!(
        argv[0],
        [
            "lvcreate",
            "--quiet",
            "--yes",
            "-n",
            "fw",
            "-L",
            "12582912b",
            "vg0"
        ]
    );
    assert_eq!(
        argv[1],
        [
            "qemu-img",
            "convert",
            "-n",
            "-t",
            "none",
            "-O",
            "raw",
            r#"json:{"backing":null,"driver":"qcow2","file":{"driver":"file","filename":"/repo/images/fw.qcow2"}}"#,
            "/dev/vg0/fw"
        ]
    );
    assert_eq!(p.ops[1].after, [p.ops[0].id.clone()]);
    assert!(p.ops.iter().all(|o| o.risk == hostform::plan::Risk::Safe));
    assert!(
        p.ops[0].summary.contains(
            "12582912 bytes: images/fw.qcow2 is 10485760 bytes, rounded up to 4MiB extents"
        ),
        "{}",
        p.ops[0].summary
    );
}

#[test]
fn an_existing_lv_is_adopted_when_its_size_matches_never_overwritten() {
    let (spec, mut facts) = with_image(Some(qcow2()));
    // dom0_swap as the image's LV: 128 MiB, not the 12 MiB the image needs: refused.
    let mut spec2 = spec.clone();
    let vg = spec2.volume_groups.get_index_mut(0).unwrap().1;
    let lv = vg.lvs.shift_remove("fw").unwrap();
    *vg.lvs.get_mut("dom0_swap").unwrap() = lv;
    let p = hostform::plan::plan_host(&spec2, &facts, &Default::default());
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert!(
        p.refusals.iter().any(|r| r.resource == "lv vg0/dom0_swap"
            && r.reason == "is 134217728 bytes, its image images/fw.qcow2 needs 12582912"),
        "{:?}",
        p.refusals
    );
    // The same LV with the image's size and a filesystem on it (as the image left it):
    // adopted, nothing to do.
    facts.lvm.lvs.get_mut("vg0/dom0_swap").unwrap().size = 12582912;
    let p = hostform::plan::plan_host(&spec2, &facts, &Default::default());
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
}

/// An image LV that holds nothing a signature names is written, then tagged; once tagged it
/// holds its image whatever it shows (a blank image leaves it blank), so the next plan is
/// empty instead of writing it again at every apply.
#[test]
fn an_image_lv_is_tagged_once_written_and_not_written_again() {
    let (spec, mut facts) = with_image(Some(qcow2()));
    let mut spec2 = spec.clone();
    let vg = spec2.volume_groups.get_index_mut(0).unwrap().1;
    let lv = vg.lvs.shift_remove("fw").unwrap();
    *vg.lvs.get_mut("guest1_var").unwrap() = lv;
    let cur = facts.lvm.lvs.get_mut("vg0/guest1_var").unwrap();
    cur.size = 12582912;
    cur.open = false;
    let dm = facts
        .blocks
        .devices
        .values_mut()
        .find(|b| b.name == "vg0-guest1_var")
        .unwrap();
    // As a blank LV shows: no signature, not mounted.
    dm.fstype = None;
    dm.pttype = None;
    dm.mountpoints.clear();
    let p = hostform::plan::plan_host(&spec2, &facts, &Default::default());
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    let argv: Vec<String> = p.ops.iter().map(|o| o.argv().join(" ")).collect();
    assert_eq!(argv.len(), 2, "{argv:#?}");
    assert!(argv[0].starts_with("qemu-img convert "), "{argv:#?}");
    assert_eq!(
        argv[1],
        "lvchange --quiet --addtag hostform_image vg0/guest1_var"
    );
    assert_eq!(p.ops[1].after, [p.ops[0].id.clone()]);
    facts
        .lvm
        .lvs
        .get_mut("vg0/guest1_var")
        .unwrap()
        .tags
        .push("hostform_image".into());
    let p = hostform::plan::plan_host(&spec2, &facts, &Default::default());
    assert!(p.refusals.is_empty(), "{:?}", p.refusals);
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
}

#[test]
fn unreadable_and_hostile_images_are_refused() {
    let (spec, facts) = with_image(Some(ImageFact::Unreadable("No such file".into())));
    let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
    assert!(p.ops.is_empty());
    assert!(
        p.refusals[0]
            .reason
            .contains("cannot be read: No such file")
    );
    let overlay =
        ImageFact::Read(parse_info("/o.qcow2", &text("image/overlay.qcow2.json")).unwrap());
    let (spec, facts) = with_image(Some(overlay));
    let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
    assert!(p.ops.is_empty());
    assert!(
        p.refusals[0]
            .reason
            .contains("is refused: it names another file: backing-filename fw.qcow2"),
        "{:?}",
        p.refusals
    );
    // A VMDK whose extent is a host file: refused, no op reads it.
    let passwd = ImageFact::Read(parse_info("/p.vmdk", &text("image/passwd.vmdk.json")).unwrap());
    let (spec, facts) = with_image(Some(passwd));
    let p = hostform::plan::plan_host(&spec, &facts, &Default::default());
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert!(
        p.refusals[0].reason.contains("file /etc/passwd"),
        "{:?}",
        p.refusals
    );
    let (spec, facts) = with_image(None);
    assert!(
        !hostform::plan::plan_host(&spec, &facts, &Default::default())
            .refusals
            .is_empty()
    );
}
