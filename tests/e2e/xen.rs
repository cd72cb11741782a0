//! Guests under a real Xen: the sandbox boots Debian's Xen 4.17 with itself as dom0
//! (`--hypervisor xen`), and hostform drives the real `xl` on a scaled copy of specs/dom0.yaml
//! (tests/specs/e2e/xen.yaml): RAID1, vg0, br0, six PV guests booting the Debian kernel with a
//! busybox initramfs, one through pygrub from the ext4 LV that holds its kernel.

use std::path::Path;

use crate::common::*;

fn guest<'a>(sum: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    sum["guests"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {sum}"))
}

fn secs(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// The spec, the two initramfs images and the pygrub boot image, in `dir`.
fn prepare(dir: &Path) {
    use hostform::sandbox::xen;
    std::fs::write(dir.join("pv.cpio"), xen::pv_guest_initramfs(true).unwrap()).unwrap();
    std::fs::write(
        dir.join("deaf.cpio"),
        xen::pv_guest_initramfs(false).unwrap(),
    )
    .unwrap();
    let kernel = xen::pv_guest_kernel().unwrap();
    // An ext4 image with /vmlinuz (the Debian bzImage, as a Debian guest has it) and
    // /initrd.img, made without root by mke2fs -d.
    let fs = dir.join("bootfs");
    std::fs::create_dir(&fs).unwrap();
    let bz = hostform::sandbox::HostTools::locate().unwrap().kernel.image;
    std::fs::copy(&bz, fs.join("vmlinuz")).unwrap();
    std::fs::copy(dir.join("pv.cpio"), fs.join("initrd.img")).unwrap();
    let mkfs = hostform::sandbox::find_exe("mkfs.ext4").expect("mkfs.ext4 (e2fsprogs)");
    let o = std::process::Command::new(mkfs)
        .args(["-q", "-F", "-d"])
        .arg(&fs)
        .arg(dir.join("boot.img"))
        .arg("24M")
        .output()
        .unwrap();
    assert!(o.status.success(), "mkfs.ext4 -d: {}", text(&o.stderr));
    std::fs::remove_dir_all(&fs).unwrap();
    let spec = std::fs::read_to_string(root().join("tests/specs/e2e/xen.yaml"))
        .unwrap()
        .replace("/boot/vmlinuz-hostform-e2e", kernel.to_str().unwrap())
        .replace("/var/lib/hostform-e2e", dir.to_str().unwrap());
    // The variants the test plans and applies, next to the images they name (the VM sees this
    // directory read-only).
    let more = spec.replace("  memory: 128MiB", "  memory: 160MiB");
    assert_ne!(more, spec);
    std::fs::write(dir.join("more-memory.yaml"), more).unwrap();
    let grown = spec.replace(
        "srvnfs_data:   { size: 16MiB",
        "srvnfs_data:   { size: 24MiB",
    );
    assert_ne!(grown, spec);
    // Then a disk for the running srvlan: a new LV, attached live.
    let attach = grown
        .replace(
            "      srvpub_root:   { size: 8MiB }\n",
            "      srvpub_root:   { size: 8MiB }\n      srvlan_extra:  { size: 8MiB }\n",
        )
        .replace(
            "    disks: [{ lv: vg0/srvlan_root, target: xvda }]\n",
            "    disks: [{ lv: vg0/srvlan_root, target: xvda }, { lv: vg0/srvlan_extra, target: xvdb }]\n",
        );
    assert_eq!(attach.matches("srvlan_extra").count(), 2);
    // And a NIC on br0 for it (it has none): `xl network-attach`.
    let attach = attach.replace(
        "    depends-on: [firewall, srvnfs]\n",
        "    nics: [{ bridge: br0 }]\n    depends-on: [firewall, srvnfs]\n",
    );
    assert_eq!(attach.matches("nics: [{ bridge: br0 }]").count(), 3);
    std::fs::write(dir.join("grown.yaml"), grown).unwrap();
    // Then a snapshot of srvnfs's data before a risky change, and the roll-back: merged.
    let snap = attach.replace(
        "network: {",
        "    snapshots:\n      srvnfs_data_snap: { origin: srvnfs_data, size: 8MiB }\nnetwork: {",
    );
    assert_ne!(snap, attach);
    let merged = snap.replace(
        "{ origin: srvnfs_data, size: 8MiB }",
        "{ origin: srvnfs_data, size: 8MiB, state: merged }",
    );
    std::fs::write(dir.join("attach.yaml"), attach).unwrap();
    std::fs::write(dir.join("snap.yaml"), snap).unwrap();
    std::fs::write(dir.join("merged.yaml"), merged).unwrap();
    std::fs::write(dir.join("xen.yaml"), spec).unwrap();
}

/// Xen end to end, in one boot of a Xen sandbox:
/// - `apply` from blank disks: RAID1, vg0, the LVs (one written from the pygrub image), the xl
///   configs, the guests started by the real `xl create` (dependencies first); a second plan
///   is empty;
/// - `shutdown` follows the batches (the passive peer first in the background; it ignores the
///   request and is destroyed after its 3 s), the others stop cleanly through `xl shutdown`;
/// - `start` brings them back in reverse order;
/// - more memory: the plan says a restart is needed;
/// - a running guest's LV grown: stop, grow, start, and the file on it survives;
/// - a disk and a NIC added to a running guest: `xl block-attach` and `xl network-attach`,
///   the same domain id after, its new vif a port of br0;
/// - every guest that starts with the host has its entry in /etc/xen/auto;
/// - a snapshot, a change, then `state: merged`: refused while the guest runs, merged
///   (`lvconvert --merge`) once it is stopped, the data back, the guest started again;
/// - `shutdown-order --format xendomains` as the list hook of Debian's real
///   /etc/init.d/xendomains: its stop asks the domains in the spec's order.
#[test]
fn xen_guests_end_to_end_under_real_xen() {
    let Some(_vm) = vm() else { return };
    let dir = tempfile::Builder::new()
        .prefix("hostform-e2e-xen-")
        .tempdir()
        .unwrap();
    prepare(dir.path());
    let script = r#"set -e
H=$HOSTFORM
S=xen.yaml
ip link add br0 type bridge 2>/dev/null || true
ip link set br0 up
echo ==INFO==; xl info | grep -E '^(xen_version|xen_caps)'; echo ==/INFO==
echo ==APPLY==; $H apply $S --auto-approve > /tmp/apply 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/apply || cat /tmp/apply; echo ==/APPLY==
xl list
echo auto=$(ls /etc/xen/auto | tr '\n' ' ')
cmp /etc/xen/auto/guest1.xl /etc/xen/guest/guest1.xl && echo auto-same=yes
$H plan $S --detailed-exitcode > /tmp/plan2 2>&1 && echo second-plan=0 || { echo second-plan=$?; cat /tmp/plan2; }
echo ==STOP==; $H shutdown $S --format json 2>/tmp/stop.log; echo ==/STOP==
echo ==STOPLOG==; cat /tmp/stop.log; echo ==/STOPLOG==
echo running-after-stop=$(xl list | tail -n +3 | grep -c . || true)
echo ==START==; $H start $S --format json 2>/dev/null; echo ==/START==
echo running-after-start=$(xl list | tail -n +3 | grep -c . || true)
echo ==MEMORY==; $H plan more-memory.yaml --detailed-exitcode 2>&1 && echo memory-plan=0 || echo memory-plan=$?; echo ==/MEMORY==
mkdir -p /mnt/data
mount /dev/vg0/srvnfs_data /mnt/data && echo kept > /mnt/data/keep && umount /mnt/data
echo ==GROW==; $H apply grown.yaml --auto-approve > /tmp/grow 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/grow || cat /tmp/grow; echo ==/GROW==
echo srvnfs-running=$(xl domid srvnfs >/dev/null 2>&1 && echo yes || echo no)
echo data-size=$(lvs --noheadings --units b --nosuffix -o lv_size vg0/srvnfs_data | tr -d ' ')
mount -o ro /dev/vg0/srvnfs_data /mnt/data && echo data-file=$(cat /mnt/data/keep) && umount /mnt/data
# A disk for the running srvlan: attached live, same domain id before and after.
echo srvlan-id-before=$(xl domid srvlan)
echo ==ATTACH==; $H apply attach.yaml --auto-approve > /tmp/attach 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:|applied live' /tmp/attach || cat /tmp/attach; echo ==/ATTACH==
echo srvlan-id-after=$(xl domid srvlan)
echo srvlan-disks=$(xl block-list srvlan | tail -n +2 | grep -c .)
echo srvlan-nics=$(xl network-list srvlan | tail -n +2 | grep -c .)
echo srvlan-vif-on-br0=$(ip -o link show master br0 | grep -c ": vif$(xl domid srvlan)\.0:" || true)
# A snapshot before a risky change; the change; the roll-back refused while srvnfs runs, then
# planned and applied with srvnfs stopped: the file is back as it was, srvnfs runs again.
echo ==SNAP==; $H apply snap.yaml --auto-approve > /tmp/snap 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/snap || cat /tmp/snap; echo ==/SNAP==
mount /dev/vg0/srvnfs_data /mnt/data && echo changed > /mnt/data/keep && umount /mnt/data
echo ==MERGE-RUNNING==; $H plan merged.yaml --allow-destroy 2>&1 || true; echo ==/MERGE-RUNNING==
xl shutdown srvnfs; for i in $(seq 150); do xl domid srvnfs >/dev/null 2>&1 || break; sleep 0.2; done
echo ==MERGE==; $H apply merged.yaml --auto-approve --allow-destroy > /tmp/merge 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/merge || cat /tmp/merge; echo ==/MERGE==
mount -o ro /dev/vg0/srvnfs_data /mnt/data && echo merged-file=$(cat /mnt/data/keep) && umount /mnt/data
echo snap-left=$(lvs --noheadings -o lv_name vg0 | grep -c srvnfs_data_snap || true)
echo srvnfs-after-merge=$(xl domid srvnfs >/dev/null 2>&1 && echo running || echo stopped)
$H plan merged.yaml --detailed-exitcode > /tmp/plan3 2>&1 && echo merged-plan=0 || { echo merged-plan=$?; cat /tmp/plan3; }
# Debian's xendomains with hostform's order as its list hook (the domain notes' setup).
cat > /usr/lib/xen-common/bin/xen-init-list <<HOOK
#!/bin/sh
exec $H shutdown-order $PWD/$S --format xendomains
HOOK
chmod +x /usr/lib/xen-common/bin/xen-init-list
printf 'XENDOMAINS_SAVE=\nXENDOMAINS_MIGRATE=\nXENDOMAINS_STOP_MAXWAIT=2\nXENDOMAINS_AUTO=/etc/xen/auto\n' >/etc/default/xendomains
echo ==XENDOMAINS==; /etc/init.d/xendomains stop 2>&1 || true; echo ==/XENDOMAINS==
echo running-after-xendomains=$(xl list | tail -n +3 | grep -c . || true)
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let spec = dir.path().join("xen.yaml");
    let o = hostform(
        dir.path(),
        &[
            "sandbox",
            spec.to_str().unwrap(),
            "--hypervisor",
            "xen",
            "--scale",
            "1",
            "--memory",
            "2560MiB",
            "--",
            "bash",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    eprintln!("{out}");
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(err.contains("sandbox: under Xen"), "{err}");
    assert!(!err.contains("left out"), "{err}");
    assert!(
        between(&out, "INFO").contains("xen_version            : 4.17"),
        "{out}"
    );

    // Built from blank disks, the guests started by xl, dependencies first.
    let apply = between(&out, "APPLY");
    assert!(
        apply.contains("Verified: the host matches the spec"),
        "{apply}"
    );
    let pos = |what: &str| {
        apply
            .lines()
            .position(|l| l.starts_with('[') && l.ends_with(&format!(") {what}")))
            .unwrap_or_else(|| panic!("{what} not in {apply}"))
    };
    assert!(pos("start firewall") < pos("start srvnfs"), "{apply}");
    assert!(pos("start srvnfs") < pos("start srvlan"), "{apply}");
    assert!(pos("start srvlan") < pos("start srvpub"), "{apply}");
    assert!(pos("start srvlan") < pos("start guest1"), "{apply}");
    assert!(out.contains("second-plan=0"), "{out}");

    // Shutdown: the peer in the background, then [guest1, srvpub] → [srvlan] → [srvnfs] →
    // [firewall]; the peer ignores the request and is destroyed, the others stop cleanly.
    let stop: serde_json::Value = serde_json::from_str(between(&out, "STOP")).unwrap();
    assert_eq!(stop["ok"], true, "{stop}");
    let peer = guest(&stop, "firewall-slave");
    assert_eq!(peer["stage"], "first");
    assert_eq!(peer["outcome"], "destroyed", "{stop}");
    assert!(secs(peer, "took_s") >= 3.0, "{stop}");
    for (n, stage) in [
        ("guest1", "batch 1"),
        ("srvpub", "batch 1"),
        ("srvlan", "batch 2"),
        ("srvnfs", "batch 3"),
        ("firewall", "batch 4"),
    ] {
        assert_eq!(guest(&stop, n)["stage"], stage, "{n}: {stop}");
        assert_eq!(guest(&stop, n)["outcome"], "stopped", "{n}: {stop}");
    }
    let g = |n| guest(&stop, n);
    assert!(
        secs(g("guest1"), "began_s") < secs(peer, "ended_s"),
        "{stop}"
    );
    for (before, after) in [
        ("guest1", "srvlan"),
        ("srvpub", "srvlan"),
        ("srvlan", "srvnfs"),
        ("srvnfs", "firewall"),
    ] {
        assert!(
            secs(g(after), "began_s") >= secs(g(before), "ended_s"),
            "{before} → {after}: {stop}"
        );
    }
    let log = between(&out, "STOPLOG");
    assert!(
        log.contains("firewall-slave: still running after 3s: destroying it (on-timeout: destroy)"),
        "{log}"
    );
    assert!(
        log.contains("shutdown done: 1 destroyed after the timeout, 5 stopped cleanly"),
        "{log}"
    );
    assert!(out.contains("running-after-stop=0"), "{out}");

    // Start: the reverse order, the peer last.
    let start: serde_json::Value = serde_json::from_str(between(&out, "START")).unwrap();
    assert_eq!(start["ok"], true, "{start}");
    let names: Vec<&str> = start["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"firewall"), "{start}");
    assert_eq!(names.last(), Some(&"firewall-slave"), "{start}");
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(
        at("srvnfs") < at("srvlan") && at("srvlan") < at("srvpub"),
        "{start}"
    );
    assert!(at("srvlan") < at("guest1"), "{start}");
    assert!(out.contains("running-after-start=6"), "{out}");

    // More memory: restart needed, nothing stopped for it.
    let mem = between(&out, "MEMORY");
    assert!(out.contains("memory-plan=2"), "{mem}");
    assert!(mem.contains("restart needed"), "{mem}");
    assert!(!mem.contains("hostform-stop-guest"), "{mem}");

    // Growing srvnfs's data LV: stop → grow → start, and the file on it survives.
    let grow = between(&out, "GROW");
    let at = |what: &str| {
        grow.lines()
            .position(|l| l.starts_with('[') && l.contains(&format!(") {what}")))
            .unwrap_or_else(|| panic!("{what} not in {grow}"))
    };
    assert!(at("stop srvnfs") < at("grow vg0/srvnfs_data"), "{grow}");
    assert!(
        at("grow vg0/srvnfs_data") < at("start srvnfs again"),
        "{grow}"
    );
    assert!(
        grow.contains("Verified: the host matches the spec"),
        "{grow}"
    );
    assert!(out.contains("srvnfs-running=yes"), "{out}");
    assert!(out.contains(&format!("data-size={}", 24 << 20)), "{out}");
    assert!(out.contains("data-file=kept"), "{out}");

    // Every guest that starts with the host has its entry in /etc/xen/auto, its xl config.
    assert!(
        out.contains(
            "auto=firewall-slave.xl firewall.xl guest1.xl srvlan.xl srvnfs.xl srvpub.xl\n"
        ),
        "{out}"
    );
    assert!(out.contains("auto-same=yes"), "{out}");

    // A disk added to the running srvlan: `xl block-attach`, no restart.
    let attach = between(&out, "ATTACH");
    assert!(
        attach.contains(") attach /dev/vg0/srvlan_extra to the running srvlan as xvdb"),
        "{attach}"
    );
    assert!(!attach.contains("stop srvlan"), "{attach}");
    assert!(
        attach.contains("Verified: the host matches the spec"),
        "{attach}"
    );
    let id = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or_else(|| panic!("{k} in {out}"))
            .to_string()
    };
    assert_eq!(id("srvlan-id-before="), id("srvlan-id-after="), "{out}");
    assert!(out.contains("srvlan-disks=2"), "{out}");
    // And a NIC: `xl network-attach`, its vif a port of br0.
    assert!(
        attach.contains(") attach a NIC on br0 to the running srvlan"),
        "{attach}"
    );
    assert!(out.contains("srvlan-nics=1"), "{out}");
    assert!(out.contains("srvlan-vif-on-br0=1"), "{out}");

    // Snapshot, then the roll-back: refused while srvnfs runs on the origin, applied (and
    // shown) once it is stopped; the data is the snapshot's, srvnfs runs again, nothing left.
    let snap = between(&out, "SNAP");
    assert!(snap.contains(") snapshot vg0/srvnfs_data"), "{snap}");
    let running = between(&out, "MERGE-RUNNING");
    assert!(
        running.contains("vg0/srvnfs_data is open (mounted, or attached to a running guest)"),
        "{running}"
    );
    let merge = between(&out, "MERGE");
    assert!(
        merge.contains(") merge vg0/srvnfs_data_snap back into vg0/srvnfs_data"),
        "{merge}"
    );
    assert!(
        merge.contains("Verified: the host matches the spec"),
        "{merge}"
    );
    let at = |what: &str| {
        merge
            .lines()
            .position(|l| l.starts_with('[') && l.contains(&format!(") {what}")))
            .unwrap_or_else(|| panic!("{what} not in {merge}"))
    };
    assert!(
        at("merge vg0/srvnfs_data_snap") < at("start srvnfs"),
        "{merge}"
    );
    assert!(out.contains("merged-file=kept"), "{out}");
    assert!(out.contains("snap-left=0"), "{out}");
    assert!(out.contains("srvnfs-after-merge=running"), "{out}");
    assert!(out.contains("merged-plan=0"), "{out}");

    // Debian's xendomains asks the domains to stop in the order hostform lists them.
    let xd = between(&out, "XENDOMAINS");
    let asked: Vec<&str> = xd
        .lines()
        .filter_map(|l| l.split("Shutting down Xen domain ").nth(1))
        .filter_map(|r| r.split_whitespace().next())
        .collect();
    assert_eq!(
        asked,
        [
            "firewall-slave",
            "guest1",
            "srvpub",
            "srvlan",
            "srvnfs",
            "firewall"
        ],
        "{xd}"
    );
}
