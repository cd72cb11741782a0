//! The one write rule on the real kernel: plan writes nothing, and apply refuses to write over
//! data.

use crate::common::*;

/// On blank disks of the real kernel, `plan` finds the spec's disks by their by-id names and
/// plans the whole stack; `--detailed-exitcode` says there are changes. Inside the VM the
/// plan is read-only: nothing is written (the disks stay blank).
#[test]
fn plan_on_blank_disks_of_a_real_kernel() {
    let Some(_vm) = vm() else { return };
    // Then the data-safety attack: a partition with ext4 and a file on one disk, both disks
    // named whole as RAID1 members; apply must refuse and leave the disk's bytes as they were
    // (hashed inside the VM: the first 80 MiB hold the table and the whole partition).
    // The VM takes the spec's host as its hostname, so the host check passes inside.
    let script = "echo hostname=$(cat /proc/sys/kernel/hostname); $HOSTFORM plan tests/specs/e2e/lab.yaml --detailed-exitcode; echo plan-exit=$?; lsblk -no PTTYPE /dev/vda | grep -c gpt || true
D=/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234
printf 'label: gpt\\n,64MiB\\n' | sfdisk -q $D && udevadm settle && mkfs.ext4 -q ${D}-part1 && mkdir -p /mnt/d && mount ${D}-part1 /mnt/d && echo precious > /mnt/d/data && umount /mnt/d
before=$(head -c 80M $D | sha256sum)
$HOSTFORM apply tests/specs/e2e/whole-mirror.yaml --auto-approve; echo apply-exit=$?
after=$(head -c 80M $D | sha256sum)
[ \"$before\" = \"$after\" ] && echo disk-unchanged
if test -e /dev/md0; then echo md0-exists; fi"
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
    assert!(out.contains("hostname=lab\n"), "{out}");
    assert!(out.contains("plan-exit=2"), "{out}");
    assert!(
        out.contains(
            "$ sfdisk --quiet --wipe never /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234"
        ),
        "{out}"
    );
    assert!(out.contains("/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234-part2 /dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678-part2"), "{out}");
    assert!(
        out.contains("$ lvcreate --quiet --yes -n dom0_root -L 268435456b vg0 /dev/md0"),
        "{out}"
    );
    assert!(out.contains("Plan: 7 to create"), "{out}");
    assert!(
        out.contains("plan-exit=2\n0\n"),
        "plan wrote a partition table: {out}"
    );
    assert!(out.contains("would write over data"), "{out}");
    assert!(!out.contains("apply-exit=0"), "{out}");
    assert!(out.contains("disk-unchanged"), "{out}");
    assert!(!out.contains("md0-exists"), "{out}");
}
