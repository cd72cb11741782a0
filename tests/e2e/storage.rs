//! Storage on the real kernel: a RAID1 and LVM stack by hand, read back by discover; an array
//! reassembled and built upon; a host grown through every kind of LV; LVs from images; shrink
//! and teardown under prevent-destroy; a failed member replaced; a thin pool made, grown and
//! torn down.

use std::fs;
use std::process::Command;

use crate::common::*;

/// The storage stack of the domain's host, by hand, on the real kernel: GPT with a BIOS boot
/// partition on both disks (through their by-id names), RAID1, LVM, ext4 and swap, a file
/// written and read back. This is what hostform's storage engine will drive.
#[test]
fn a_real_raid1_lvm_stack_builds_on_the_real_kernel() {
    let Some(_vm) = vm() else { return };
    let script = r#"set -e
a=/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234
b=/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678
for d in $a $b; do
  printf 'label: gpt\nsize=2MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios\ntype=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid\n' | sfdisk -q $d
done
udevadm settle
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 $a-part2 $b-part2 2>&1 | tail -1
pvcreate -q /dev/md0
vgcreate -q vg0 /dev/md0
lvcreate -q -y -n dom0_root -L 64m vg0
lvcreate -q -y -n dom0_swap -L 16m vg0
mkfs.ext4 -q /dev/vg0/dom0_root
mkswap -q /dev/vg0/dom0_swap
mkdir -p /mnt/r && mount /dev/vg0/dom0_root /mnt/r && echo survives > /mnt/r/f && sync
umount /mnt/r && mount /dev/vg0/dom0_root /mnt/r && cat /mnt/r/f
grep -c '\[UU\]' /proc/mdstat
lvs --noheadings -o lv_name vg0 | tr -d ' ' | tr '\n' ' '
echo
# hostform reads the stack back as a spec, which validates as it is.
umount /mnt/r
hostform=$HOSTFORM
$hostform discover > /tmp/discovered.yaml 2>/tmp/discover.err
cat /tmp/discover.err
cat /tmp/discovered.yaml
$hostform validate /tmp/discovered.yaml
"#;
    let script = script.replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &["sandbox", "specs/dom0.yaml", "--", "sh", "-c", &script],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("survives"), "{out}");
    assert!(out.contains("dom0_root dom0_swap"), "{out}");
    // Discovery: the disks by their spec ids, the mirror over the GPT partitions by name,
    // the VG on the array, filesystems recognised, within the process budget.
    assert!(
        out.contains("id: /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234"),
        "{out}"
    );
    assert!(
        out.contains("- vda/raid") && out.contains("- vdb/raid"),
        "{out}"
    );
    assert!(
        out.contains("fs: ext4") && out.contains("fs: swap"),
        "{out}"
    );
    let processes: usize = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("discover: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("discover reports its processes");
    assert!(processes <= 10, "{processes} processes");
    assert!(
        out.contains("/tmp/discovered.yaml: valid (2 disks, 1 array, 1 volume group, 2 LVs"),
        "{out}"
    );
}

/// An apply that must reassemble an array converges in one run: the plan assembles md0 and
/// announces what sits on it as deferred; after the first round apply reads the host again and
/// runs only safe operations on those resources (activating the LVs, creating the new one),
/// then verifies. The second plan is empty.
#[test]
fn a_stopped_array_is_assembled_and_built_upon_in_one_apply() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H apply $S/lab.yaml --auto-approve > /tmp/first.log 2>&1 || { cat /tmp/first.log; exit 1; }
# A host that does not assemble arrays by itself (udev's `mdadm --incremental` would
# otherwise reassemble md0 as soon as its members are probed again).
echo 'AUTO -all' > /etc/mdadm/mdadm.conf
vgchange -an vg0 >/dev/null && mdadm --stop /dev/md0 2>&1
# udev probes the members while md releases them, and can record one without its superblock
# (seen here); probe both again, as a boot would, so both read as members.
udevadm settle; udevadm trigger --action=change --settle /dev/vda2 /dev/vdb2
cat /proc/mdstat | grep -c '^md0' || echo md0-stopped
$H apply $S/lab-more.yaml --auto-approve; echo apply=$?
$H plan $S/lab-more.yaml --detailed-exitcode > /tmp/second.log; echo second=$?
tail -1 /tmp/second.log
lvs --noheadings -o lv_name,lv_attr vg0 | tr -s ' '
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("mdadm: stopped /dev/md0"), "{out}");
    assert!(out.contains("md0-stopped"), "{out}");
    assert!(
        out.contains("$ mdadm --assemble /dev/md0 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234-part2 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678-part2"),
        "{out}"
    );
    assert!(
        out.contains("… lv vg0/guest1_disk  (will be planned once md0 is assembled and read)"),
        "{out}"
    );
    assert!(
        out.contains("deferred until md0 is assembled and read."),
        "{out}"
    );
    assert!(out.contains("Follow-up round 1"), "{out}");
    assert!(
        out.contains("ok") && out.contains("create vg0/guest1_disk"),
        "{out}"
    );
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("apply=0"), "{out}");
    assert!(out.contains("second=0"), "{out}");
    assert!(out.contains(" guest1_disk -wi-a"), "{out}");
}

/// Growing a host through the planner's less common commands, on the real kernel in one VM:
/// `vgcreate -s` (8MiB extents), then a spec change that appends a partition to each disk
/// (`sfdisk --append` next to a running array member), extends the VG with both
/// (`vgextend`), adds an xfs LV (`mkfs.xfs -q`), a read-only LV (`lvchange -p r`), a snapshot
/// (`lvcreate --snapshot`) and an LV of 10% of the VG (`lvcreate -l 10%VG`). One apply,
/// verified; the second plan is empty.
#[test]
fn a_host_grows_partitions_pvs_and_every_kind_of_lv() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H apply $S/grow-base.yaml --auto-approve > /tmp/base.log 2>&1 || { cat /tmp/base.log; exit 1; }
vgs --noheadings --units b -o vg_extent_size vg0 | tr -d ' '
$H apply $S/grow.yaml --auto-approve; echo apply=$?
$H plan $S/grow.yaml --detailed-exitcode > /tmp/second.log; echo second=$?
tail -1 /tmp/second.log
lvs --noheadings -o lv_name,lv_attr,origin vg0 | tr -s ' '
pvs --noheadings -o pv_name,vg_name | tr -s ' '
blkid -o value -s TYPE /dev/vg0/data
lsblk -no PARTLABEL /dev/vda3
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/grow-base.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert_eq!(out.lines().next(), Some("8388608B"), "vgcreate -s: {out}");
    for cmd in [
        "$ sfdisk --quiet --append --no-reread --no-tell-kernel --wipe never /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234",
        "$ partx --add --nr -1:-1 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234",
        "$ vgextend --quiet vg0 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234-part3 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678-part3",
        "$ mkfs.xfs -q /dev/vg0/data",
        "$ lvchange --quiet -p r vg0/iso",
        "$ lvcreate --quiet --snapshot -n root_snap -L 67108864b vg0/dom0_root",
        "-l 10%VG vg0",
    ] {
        assert!(out.contains(cmd), "{cmd}: {out}");
    }
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("apply=0"), "{out}");
    assert!(out.contains("second=0"), "{out}");
    assert!(out.contains(" iso -ri-a"), "read-only: {out}");
    assert!(out.contains(" root_snap swi-a-s--- dom0_root"), "{out}");
    assert!(out.contains(" scratch -wi-a"), "{out}");
    assert!(out.contains("\nxfs\n"), "{out}");
    assert!(out.contains("\nlvm\n"), "the appended partition: {out}");
}

/// Thin provisioning on a real kernel (dm-thin-pool, thin_check): blank disk → a pool and two
/// overcommitted thin LVs (ext4 on one) → an empty second plan → the pool and the ext4 thin LV
/// grown, its file kept → the whole VG torn down, thin LVs before their pool. One boot.
#[test]
fn a_thin_pool_is_made_grown_and_torn_down() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H validate $S/thin.yaml 2>&1 | grep -o 'overcommitted 6.00x'
$H apply $S/thin.yaml --auto-approve > /tmp/a.log 2>&1; echo apply=$?
grep -E '^ *\$ (lvcreate|mkfs)' /tmp/a.log
$H plan $S/thin.yaml --detailed-exitcode > /tmp/p.log 2>&1; echo second=$?
mkdir -p /mnt/web && mount /dev/vgt/web /mnt/web && echo kept > /mnt/web/f && umount /mnt/web
$H apply $S/thin-grown.yaml --auto-approve > /tmp/g.log 2>&1; echo grow=$?
grep -E '^ *\$ lvextend|Verified' /tmp/g.log
$H plan $S/thin-grown.yaml --detailed-exitcode > /tmp/p2.log 2>&1; echo grown-second=$?
lvs --noheadings --units b -o lv_name,lv_size,segtype,pool_lv vgt | tr -s ' '
mount /dev/vgt/web /mnt/web && cat /mnt/web/f && echo "blocks: $(df -B1M --output=size /mnt/web | tail -1 | tr -d ' ')" && umount /mnt/web
$H apply $S/thin-destroy.yaml --auto-approve > /tmp/d0.log 2>&1; echo destroy-no-flag=$?
$H apply $S/thin-destroy.yaml --auto-approve --allow-destroy > /tmp/d.log 2>&1; echo destroy=$?
grep '\[destructive\]' /tmp/d.log
echo "vgs: $(vgs --noheadings -o vg_name | tr -d ' ')."
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/thin.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("overcommitted 6.00x"), "{out}");
    assert!(out.contains("apply=0"), "{out}");
    for cmd in [
        "$ lvcreate --quiet --yes --type thin-pool -L 268435456b --chunksize 128k --poolmetadatasize 4096k -n pool0 vgt",
        "$ lvcreate --quiet --yes --type thin -V 536870912b -n web vgt/pool0",
        "$ lvcreate --quiet --yes --type thin -V 1073741824b -n scratch vgt/pool0",
        "$ mkfs.ext4 -q /dev/vgt/web",
        "$ lvextend --quiet -L 402653184b vgt/pool0",
        "$ lvextend --quiet -L 805306368b --resizefs vgt/web",
    ] {
        assert!(out.contains(cmd), "{cmd}: {out}");
    }
    assert!(out.contains("second=0"), "{out}");
    assert!(out.contains("grow=0"), "{out}");
    assert!(out.contains("grown-second=0"), "{out}");
    assert!(out.contains(" pool0 402653184B thin-pool \n"), "{out}");
    assert!(out.contains(" web 805306368B thin pool0\n"), "{out}");
    assert!(out.contains(" scratch 1073741824B thin pool0\n"), "{out}");
    assert!(
        out.contains("\nkept\n"),
        "the file survived the grow: {out}"
    );
    assert!(
        out.lines()
            .find_map(|l| l.strip_prefix("blocks: "))
            .and_then(|b| b.parse::<u64>().ok())
            .is_some_and(|mb| mb > 700),
        "the ext4 grew with its LV: {out}"
    );
    assert!(out.contains("destroy-no-flag=1"), "{out}");
    assert!(out.contains("destroy=0"), "{out}");
    let mut teardown: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("[destructive]"))
        .map(str::trim)
        .collect();
    // The two thin LVs go side by side, in either order; then the pool, the VG, the PV label.
    if teardown.len() >= 2 {
        teardown[..2].sort();
    }
    assert_eq!(
        teardown,
        [
            "remove vgt/scratch [destructive]",
            "remove vgt/web [destructive]",
            "remove thin pool vgt/pool0 [destructive]",
            "remove volume group vgt [destructive]",
            "clear the PV label of /dev/vda [destructive]",
        ],
        "{out}"
    );
    assert!(out.contains("vgs: ."), "{out}");
}

const IMAGE_SPEC: &str = "host: lab
disks:
  sda:
    serial: HF-IMAGE-A
    size: 1GiB
    partitions:
      - { name: lvm, size: rest, type: lvm }
volume-groups:
  vg0:
    pvs: [sda/lvm]
    lvs:
      fw: { image: images/fw.qcow2 }
      appliance: { image: images/appliance.vmdk, readonly: true }
";

/// LVs made from images on the real kernel: qcow2 and vmdk images made here with mkfs and
/// qemu-img; the plan sizes each LV from its image (10 MiB, rounded up to 12 MiB: 4 MiB
/// extents), apply fills them with `qemu-img convert`, and each LV then holds exactly the
/// image's raw content. The second plan is empty: the LVs are adopted, not written again.
/// A hostile image, a VMDK descriptor whose extent is the host's disk, is refused: no LV is
/// made and nothing is read from that disk.
#[test]
fn lvs_are_created_from_images_and_hold_their_content() {
    let Some(_vm) = vm() else { return };
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("lab.yaml"), IMAGE_SPEC).unwrap();
    fs::create_dir(dir.path().join("images")).unwrap();
    let sh = |cmd: &str| {
        let o = Command::new("sh")
            .args(["-c", cmd])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{cmd}: {}", text(&o.stderr));
    };
    // Two different filesystems, so that a mix-up between the LVs would show.
    sh(
        "truncate -s 10M fw.raw && mkfs.ext4 -q -F -L fw fw.raw && qemu-img convert -f raw -O qcow2 fw.raw images/fw.qcow2",
    );
    sh(
        "truncate -s 10M app.raw && mkfs.ext4 -q -F -L appliance app.raw && qemu-img convert -f raw -O vmdk app.raw images/appliance.vmdk",
    );
    // The CVE-2022-47951 class: a descriptor anyone can write, naming a host block device.
    fs::write(
        dir.path().join("images/stolen.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"/dev/disk/by-id/virtio-HF-IMAGE-A\" 0\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("hostile.yaml"),
        format!("{IMAGE_SPEC}      stolen: {{ image: images/stolen.vmdk }}\n"),
    )
    .unwrap();
    let script = r#"
H=$HOSTFORM
$H apply lab.yaml --auto-approve; echo apply=$?
$H plan lab.yaml --detailed-exitcode > /tmp/second.log; echo second=$?
tail -1 /tmp/second.log
cmp fw.raw /dev/vg0/fw && echo FW-CONTENT-OK
cmp app.raw /dev/vg0/appliance && echo APPLIANCE-CONTENT-OK
$H apply hostile.yaml --auto-approve > /tmp/hostile.log 2>&1; echo hostile=$?
grep -o 'image images/stolen.vmdk is refused: it names another file: [^ ]* [^ ,)]*' /tmp/hostile.log
lvs --noheadings --units b -o lv_name,lv_size,lv_attr vg0 | tr -s ' '
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        dir.path(),
        &[
            "sandbox", "lab.yaml", "--scale", "1", "--", "sh", "-c", &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("create vg0/fw (12582912 bytes: images/fw.qcow2 is 10485760 bytes, rounded up to 4MiB extents)"),
        "{out}"
    );
    assert!(
        out.contains("$ lvcreate --quiet --yes -n fw -L 12582912b vg0"),
        "{out}"
    );
    let abs = dir.path().canonicalize().unwrap();
    assert!(
        out.contains(&format!(
            r#"$ qemu-img convert -n -t none -O raw 'json:{{"backing":null,"driver":"vmdk","file":{{"driver":"file","filename":"{}/images/appliance.vmdk"}}}}' /dev/vg0/appliance"#,
            abs.display()
        )),
        "{out}"
    );
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("apply=0"), "{out}");
    assert!(out.contains("second=0"), "{out}");
    // cmp stops at the shorter input: the 10 MiB image is all there, byte for byte.
    assert!(
        out.contains("cmp: EOF on fw.raw after byte 10485760"),
        "{out}"
    );
    assert!(
        out.contains("cmp: EOF on app.raw after byte 10485760"),
        "{out}"
    );
    assert!(out.contains(" fw 12582912B -wi-a"), "{out}");
    assert!(out.contains(" appliance 12582912B -ri-a"), "{out}");
    assert!(!out.contains("hostile=0"), "{out}");
    assert!(
        out.contains("image images/stolen.vmdk is refused: it names another file: file /dev/"),
        "{out}"
    );
    assert!(!out.contains(" stolen "), "{out}");
}

/// Destruction on a real kernel, in one VM: `prevent-destroy: true` tags dom0_var on the host;
/// `allow-shrink` shrinks it (unmounted ext4, with --allow-destroy) and its file survives; the
/// teardown spec is refused without --allow-destroy, and refused with it while the tag is there
/// although the spec no longer says prevent-destroy; once the tag is removed deliberately, the
/// whole stack (LVs, VG, PV, array, RAID partitions) is torn down and a second plan is empty.
#[test]
fn prevent_destroy_survives_the_spec_then_destroy_tears_the_stack_down() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H apply $S/lab-protected.yaml --auto-approve | tail -1
echo "tags: $(lvs --noheadings -o lv_tags vg0/dom0_var | tr -d ' ')"
mkdir -p /mnt/var && mount /dev/vg0/dom0_var /mnt/var && echo kept > /mnt/var/f && umount /mnt/var
$H apply $S/lab-shrunk.yaml --auto-approve > /tmp/shrink-refused.log 2>&1; echo shrink-no-flag=$?
grep '^refused' /tmp/shrink-refused.log
$H apply $S/lab-shrunk.yaml --auto-approve --allow-destroy | grep -E 'lvreduce|Verified'
echo "var size: $(lvs --noheadings --units b -o lv_size vg0/dom0_var | tr -d ' ')"
mount /dev/vg0/dom0_var /mnt/var && cat /mnt/var/f && umount /mnt/var
$H plan $S/lab-destroy.yaml > /tmp/p1.log 2>&1; echo plan-no-flag=$?
grep -q -- '--allow-destroy was not given' /tmp/p1.log && echo plan-says-flag
$H apply $S/lab-destroy.yaml --auto-approve --allow-destroy > /tmp/a1.log 2>&1; echo apply-tagged=$?
grep -A1 '^refused lv vg0/dom0_var' /tmp/a1.log
echo "after refusal: $(lvs --noheadings -o lv_name vg0 | tr -d ' ' | tr '\n' ' ')"
lvchange --quiet --deltag hostform_prevent_destroy vg0/dom0_var
$H apply $S/lab-destroy.yaml --auto-approve --allow-destroy | grep -E '\[destructive\]|Verified|Plan:'
$H plan $S/lab-destroy.yaml --allow-destroy --detailed-exitcode | tail -1; echo second-plan=$?
echo "vgs: $(vgs --noheadings -o vg_name | tr -d ' ')."
echo "md: $(grep -c '^md' /proc/mdstat)"
echo "parts: $(lsblk -rno NAME /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234 | tr '\n' ' ')"
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("tags: hostform_prevent_destroy"), "{out}");
    // Shrinking: refused without the flag, done with it, the file kept.
    assert!(out.contains("shrink-no-flag=1"), "{out}");
    assert!(
        out.contains("refused lv vg0/dom0_var: is 134217728 bytes, the spec says 67108864: shrinking it (allow-shrink) cuts off its end: this destroys data, and --allow-destroy was not given"),
        "{out}"
    );
    assert!(
        out.contains("$ lvreduce --quiet --yes --resizefs -L 67108864b vg0/dom0_var"),
        "{out}"
    );
    assert!(out.contains("var size: 67108864B"), "{out}");
    assert!(
        out.contains("\nkept\n"),
        "the file survived the shrink: {out}"
    );
    // Teardown: refused without the flag; with it, refused while the tag protects dom0_var.
    assert!(out.contains("plan-no-flag=1"), "{out}");
    assert!(out.contains("plan-says-flag"), "{out}");
    assert!(out.contains("apply-tagged=1"), "{out}");
    assert!(
        out.contains("lvchange --deltag hostform_prevent_destroy vg0/dom0_var"),
        "{out}"
    );
    assert!(
        out.contains("after refusal: dom0_root dom0_swap dom0_var"),
        "{out}"
    );
    // Then, deliberately untagged: the whole stack goes, in order, and stays gone.
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    let teardown: Vec<&str> = out
        .lines()
        .filter(|l| l.ends_with("[destructive]"))
        .skip_while(|l| !l.contains("remove vg0/dom0_root"))
        .map(str::trim)
        .collect();
    assert_eq!(
        teardown,
        [
            "remove vg0/dom0_root [destructive]",
            "remove vg0/dom0_var [destructive]",
            "remove vg0/dom0_swap [destructive]",
            "remove volume group vg0 [destructive]",
            "clear the PV label of /dev/md0 [destructive]",
            "stop md0 [destructive]",
            "clear the md superblock of vda2, vdb2 [destructive]",
            "delete partition 2 (raid) of sda [destructive]",
            "delete partition 2 (raid) of sdb [destructive]",
        ],
        "{out}"
    );
    assert!(out.contains("second-plan=0"), "{out}");
    assert!(out.contains("vgs: ."), "{out}");
    assert!(out.contains("md: 0"), "{out}");
    assert!(out.contains("parts: vda vda1 \n"), "{out}");
}

/// Replacing a failed member on a real kernel: md0's second member is failed and removed and
/// its disk wiped (a blank replacement under the same by-id name); apply re-partitions the disk
/// from the spec and adds the partition back, and the array recovers.
#[test]
fn a_failed_member_is_replaced_on_a_blank_disk() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H apply $S/lab.yaml --auto-approve | tail -1
B=$(readlink -f /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678)
mdadm --quiet /dev/md0 --fail ${B}2
mdadm --quiet /dev/md0 --remove ${B}2
wipefs --quiet -a ${B}2; wipefs --quiet -a ${B}1; wipefs --quiet -a $B
udevadm settle
echo "before: $(grep -A1 '^md0' /proc/mdstat | tail -1 | grep -o '\[[0-9]/[0-9]\]')"
$H plan $S/lab.yaml --detailed-exitcode; echo plan=$?
$H apply $S/lab.yaml --auto-approve | tail -1
echo "members: $(mdadm --detail /dev/md0 | grep -c 'active sync\|spare rebuilding\|rebuilding')"
echo "pttype: $(lsblk -dno PTTYPE $B)"
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("before: [2/1]"), "{out}");
    assert!(out.contains("~ array md0  (degraded [2/1]"), "{out}");
    assert!(
        out.contains("$ mdadm --manage /dev/md0 --add /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678-part2"),
        "{out}"
    );
    assert!(out.contains("plan=2"), "{out}");
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("members: 2"), "{out}");
    assert!(out.contains("pttype: gpt"), "{out}");
}
