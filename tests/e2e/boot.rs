//! Will it still boot: a two-disk RAID1 host applied with `bootloader-on` on both disks, then
//! its disk images booted by qemu's default firmware (SeaBIOS, no `-kernel`), each disk alone:
//! GRUB loads from that disk, reads the kernel and initramfs from /boot on LVM on the RAID, and
//! Debian's initramfs assembles the array and mounts a root from it. Then one disk is failed,
//! wiped and replaced by `apply` (table, re-add, GRUB), and boots alone too.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::*;

const SPEC: &str = "tests/specs/e2e/boot.yaml";
const LEFT: &str = "/dev/disk/by-id/ata-HF_BOOT_LEFT";
const RIGHT: &str = "/dev/disk/by-id/ata-HF_BOOT_RIGHT";

/// What the script inside shares: the /boot LV mounted on /boot (GRUB's directory must be on
/// a filesystem GRUB reads: the sandbox's own /boot is the build machine's, over 9p), and md
/// resync at full speed (the sandbox throttles it) so that a disk booted alone is in sync.
const SHARED: &str = r#"set -e
H=$HOSTFORM; S=tests/specs/e2e/boot.yaml; K=$(uname -r)
A=/dev/disk/by-id/ata-HF_BOOT_LEFT; B=/dev/disk/by-id/ata-HF_BOOT_RIGHT
unthrottle() { echo 2000000 >/proc/sys/dev/raid/speed_limit_max; echo 2000000 >/proc/sys/dev/raid/speed_limit_min; }
# update-initramfs runs (the plan's op), but as `true`: mkinitramfs takes 30 s natively on
# this machine and minutes under TCG. The initrd booted is the build machine's, without
# these ARRAY lines: its initramfs names the array md127 (mdadm's name for an array it finds
# undeclared), and still finds the root by its LV name.
mount --bind /bin/true /usr/sbin/update-initramfs
"#;

/// The first run: the stack without the boot loader (the sandbox leaves it out until /boot is
/// GRUB's to read), the /boot LV mounted by apply's follow-up round (`mount:`, once its
/// filesystem exists), filled with this machine's kernel and initramfs and a grub.cfg for the
/// serial console (an operator's host has update-grub for that: hostform installs the boot
/// loader, not its menu), then the spec again with the boot loader kept.
const FIRST: &str = r#"
mkdir -p /tmp/k; cp /boot/vmlinuz-$K /boot/initrd.img-$K /tmp/k/
$H apply $S --auto-approve > /tmp/stack.log 2>&1 || { cat /tmp/stack.log; exit 1; }
grep 'Follow-up round\|mount --mkdir\|^ *+UUID=' /tmp/stack.log
echo "boot: $(findmnt -no SOURCE,OPTIONS /boot)"
cp /tmp/k/* /boot/; rm -rf /tmp/k
mkdir -p /boot/grub
cat > /boot/grub/grub.cfg <<EOF
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
menuentry hostform {
  echo "hostform-grub: loading Linux from \$root"
  linux /vmlinuz-$K root=/dev/mapper/vg0-boot ro console=ttyS0
  initrd /initrd.img-$K
}
EOF
export HOSTFORM_SANDBOX_BOOTLOADER=1
$H plan $S
$H apply $S --auto-approve | tail -2
grep '^ARRAY' /etc/mdadm/mdadm.conf
$H plan $S --detailed-exitcode > /tmp/second.log && echo second=0 || { echo second=$?; cat /tmp/second.log; }
for n in mbr-grub:$A core-grub:$A-part1; do
  f=${n%%:*}; d=${n#*:}; c=512; [ $f = core-grub ] && c=1024
  echo "hostform-capture $f $(head -c $c $d | base64 -w0)"
  echo "hostform-capture-cmd $f head -c $c $d (in the sandbox, after hostform applied $S: grub-install --target=i386-pc $A)"
done
umount /boot
unthrottle; mdadm --wait /dev/md0 || true
grep -A1 '^md0' /proc/mdstat | tail -1
"#;

/// The second run: the right disk fails, is removed and wiped (a blank replacement), and
/// apply brings it back: table, re-add, GRUB. Resync finishes before power-off.
const SECOND: &str = r#"
mount /dev/vg0/boot /boot   # as the host's boot would (this boot's /etc/fstab is the build machine's)
Bk=$(readlink -f $B)
mdadm --quiet /dev/md0 --fail ${Bk}2; mdadm --quiet /dev/md0 --remove ${Bk}2
wipefs --quiet -a ${Bk}2; wipefs --quiet -a ${Bk}1; wipefs --quiet -a $Bk
udevadm settle
echo "before: $(grep -A1 '^md0' /proc/mdstat | tail -1 | grep -o '\[[0-9]/[0-9]\]')"
export HOSTFORM_SANDBOX_BOOTLOADER=1
unthrottle
$H apply $S --auto-approve
$H plan $S --detailed-exitcode > /tmp/second.log && echo second=0 || { echo second=$?; cat /tmp/second.log; }
umount /boot
mdadm --wait /dev/md0 || true
grep -A1 '^md0' /proc/mdstat | tail -1
"#;

fn inside(keep: &Path, script: &str) -> String {
    let script = format!("{SHARED}{script}").replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let keep = keep.to_string_lossy();
    let o = hostform(
        &root(),
        &[
            "sandbox", SPEC, "--scale", "1", "--keep", &keep, "--", "sh", "-c", &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    out
}

/// Boot one disk image alone with qemu's default firmware (SeaBIOS) and read the serial
/// console until `until` appears; qemu is killed then (or after `limit`). Writes go to a
/// temporary overlay (`snapshot=on`): booting one half of a mirror alone must not make the
/// two halves diverge for the next run.
fn boot_alone(image: &Path, until: &str, limit: Duration) -> (String, Duration) {
    let drive = format!(
        "file={},format=raw,if=virtio,snapshot=on",
        image.to_string_lossy().replace(',', ",,")
    );
    let mut q = Command::new("qemu-system-x86_64")
        .args([
            "-machine",
            "pc",
            "-accel",
            "tcg",
            "-m",
            "1024",
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-drive",
            &drive,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64");
    let started = Instant::now();
    let mut out = q.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut seen: Vec<u8> = Vec::new();
    let mut took = limit;
    while started.elapsed() < limit {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(b) => seen.extend(b),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if String::from_utf8_lossy(&seen).contains(until) {
            took = started.elapsed();
            break;
        }
    }
    let _ = q.kill();
    let _ = q.wait();
    (String::from_utf8_lossy(&seen).replace('\r', ""), took)
}

fn image(keep: &Path, serial: &str) -> std::path::PathBuf {
    keep.join(format!("{serial}.img"))
}

/// The lines of a boot worth showing: GRUB's, Linux's first, and the initramfs's last.
fn shown(console: &str) -> String {
    console
        .lines()
        .filter(|l| {
            l.contains("Booting `hostform'")
                || l.contains("hostform-grub")
                || l.contains("Linux version")
                || l.contains("Command line")
                || l.contains("md/raid1:")
                || l.contains("lvmid/")
                || l.contains("EXT4-fs (dm-0)")
                || l.contains("No init found")
                || l.contains("(initramfs)")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// GRUB loaded from the disk and started Linux from the RAID, and (`shell`) the initramfs
/// assembled the array, mounted the root LV from it and reached its shell.
fn assert_booted(what: &str, console: &str, shell: bool) {
    eprintln!("--- {what}:\n{}", shown(console));
    assert!(
        console.contains("Booting `hostform'"),
        "{what}: no GRUB\n{console}"
    );
    // GRUB wraps its line at the terminal's width: `$root` comes on the next line.
    assert!(
        console.contains("hostform-grub: loading Linux from") && console.contains("lvmid/"),
        "{what}: GRUB did not read /boot from LVM\n{console}"
    );
    assert!(
        console.contains("Linux version "),
        "{what}: Linux did not start\n{console}"
    );
    if shell {
        assert!(
            console.contains("EXT4-fs (dm-0): mounted filesystem"),
            "{what}: the root LV was not mounted\n{console}"
        );
        assert!(
            console.contains("(initramfs)"),
            "{what}: no initramfs shell\n{console}"
        );
    }
}

#[test]
fn each_disk_boots_alone_and_a_replaced_disk_boots_too() {
    let Some(_vm) = vm() else { return };
    let keep = tempfile::tempdir().unwrap();
    let first = inside(keep.path(), FIRST);
    // For scripts/capture-boot-fixtures.sh: the boot sector and core image GRUB wrote.
    for l in first.lines().filter(|l| l.starts_with("hostform-capture")) {
        eprintln!("{l}");
    }
    for d in [LEFT, RIGHT] {
        assert!(
            first.contains(&format!("$ grub-install --target=i386-pc {d}")),
            "{d}\n{first}"
        );
    }
    assert!(
        first.contains("+ bootloader sda") && first.contains("+ bootloader sdb"),
        "{first}"
    );
    assert!(
        first.contains("Verified: the host matches the spec"),
        "{first}"
    );
    assert!(first.contains("second=0"), "{first}");
    assert!(first.contains("[UU]"), "{first}");
    let limit = Duration::from_secs(150);
    let left = image(keep.path(), "ata-HF_BOOT_LEFT");
    let right = image(keep.path(), "ata-HF_BOOT_RIGHT");
    let (console, t_left) = boot_alone(&left, "(initramfs)", limit);
    assert_booted("the left disk alone", &console, true);
    let (console, t_right) = boot_alone(&right, "Command line:", limit);
    assert_booted("the right disk alone", &console, false);

    let second = inside(keep.path(), SECOND);
    eprintln!("--- the replacement's apply:\n{second}");
    assert!(second.contains("before: [2/1]"), "{second}");
    for cmd in [
        format!("$ sfdisk --quiet --wipe never {RIGHT}"),
        format!("$ mdadm --manage /dev/md0 --add {RIGHT}-part2"),
        format!("$ grub-install --target=i386-pc {RIGHT}"),
    ] {
        assert!(second.contains(&cmd), "{cmd}\n{second}");
    }
    assert!(
        !second.contains(&format!("$ grub-install --target=i386-pc {LEFT}")),
        "the left disk's GRUB is current\n{second}"
    );
    assert!(
        second.contains("Verified: the host matches the spec"),
        "{second}"
    );
    assert!(second.contains("second=0"), "{second}");
    let (console, t_replaced) = boot_alone(&right, "(initramfs)", limit);
    assert_booted("the replaced right disk alone", &console, true);
    eprintln!(
        "boots: left to the initramfs shell {:.1}s, right to Linux {:.1}s, replaced right to the shell {:.1}s",
        t_left.as_secs_f64(),
        t_right.as_secs_f64(),
        t_replaced.as_secs_f64()
    );
}
