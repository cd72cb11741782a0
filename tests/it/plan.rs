//! `hostform plan --against SNAPSHOT`: planning offline against a recorded host, as CI does.

use crate::common::*;

const SPEC: &str = "host: lab
root: { readonly: true }
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios, size: 2MiB, type: bios-boot }
      - { name: raid, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B, like: a }
arrays:
  md0: { level: 1, devices: [a/raid, b/raid], bootloader-on: [a, b] }
volume-groups:
  vg0:
    pvs: [md0]
    lvs:
      dom0_root: { size: 512MiB, fs: ext4 }
      dom0_swap: { size: 128MiB, fs: swap }
";

/// A snapshot of the host `lab` (the specs' host), from a captured scenario.
fn snapshot(dir: &std::path::Path, scenario: &str) -> std::path::PathBuf {
    snapshot_of(dir, scenario, "lab")
}

#[test]
fn planning_blank_disks_offline() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SPEC).unwrap();
    let snap = snapshot(dir.path(), "blank");
    let snap = snap.to_str().unwrap();
    let o = hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap, "--detailed-exitcode"],
    );
    assert_eq!(code(&o), 2, "changes: {}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!("lab.yaml against snapshot {snap}:")),
        "{out}"
    );
    assert!(out.contains("+ array md0"), "{out}");
    assert!(out.contains("$ mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 /dev/disk/by-id/virtio-HF-DISK-A-part2 /dev/disk/by-id/virtio-HF-DISK-B-part2"), "{out}");
    assert!(out.contains("Plan: 6 to create"), "{out}");
    // Without --detailed-exitcode, changes are a success.
    assert_eq!(
        code(&hostform(
            dir.path(),
            &["plan", "lab.yaml", "--against", snap]
        )),
        0
    );
    let j = hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["has_changes"], true);
    assert_eq!(v["applicable"], true);
    assert_eq!(v["ops"][0]["argv"][0], "sfdisk");
}

#[test]
fn refusals_fail_the_plan_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    // The full scenario's partitions are named bios_grub and raid_md0: a spec that calls them
    // something else must not repartition the disks.
    std::fs::write(dir.path().join("lab.yaml"), SPEC).unwrap();
    let snap = snapshot(dir.path(), "full");
    let o = hostform(
        dir.path(),
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(out.contains("refused partition a/bios: partition 1 of vda is `bios_grub`, where the spec expects `bios`"), "{out}");
    // Nothing downstream is planned over devices whose identity is in doubt.
    assert!(!out.contains("mdadm --create"), "{out}");
    assert!(out.contains("refused array md0"), "{out}");
    assert!(
        out.contains("? lv vg0/guest1_iso  (not in the spec: left alone)"),
        "{out}"
    );
}

#[test]
fn bad_snapshots_and_specs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SPEC).unwrap();
    std::fs::write(dir.path().join("junk.json"), "{\"not\": \"a snapshot\"}").unwrap();
    let o = hostform(dir.path(), &["plan", "lab.yaml", "--against", "junk.json"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is not a snapshot from `hostform discover --format json`"),
        "{}",
        stderr(&o)
    );
    std::fs::write(dir.path().join("bad.yaml"), "host: lab\nbogus: 1\n").unwrap();
    let o = hostform(dir.path(), &["plan", "bad.yaml", "--against", "junk.json"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("unknown key `bogus`"));
}

/// `HOSTFORM_TIMINGS=1` says where the time went, on stderr only; planning against a snapshot
/// spawns no process at all.
#[test]
fn timings_say_where_the_time_went() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SPEC).unwrap();
    let snap = snapshot(dir.path(), "blank");
    let run = |timings: Option<&str>| {
        let mut cmd = assert_cmd::Command::cargo_bin("hostform").unwrap();
        cmd.current_dir(dir.path())
            .args(["plan", "lab.yaml", "--against", snap.to_str().unwrap()])
            .env("NO_COLOR", "1")
            .env_remove("HOSTFORM_TIMINGS");
        if let Some(v) = timings {
            cmd.env("HOSTFORM_TIMINGS", v);
        }
        cmd.output().unwrap()
    };
    let quiet = run(None);
    let timed = run(Some("1"));
    assert_eq!(code(&timed), 0, "{}", stderr(&timed));
    assert_eq!(
        stdout(&quiet),
        stdout(&timed),
        "the plan itself is the same"
    );
    assert!(!stderr(&quiet).contains("timings:"), "{}", stderr(&quiet));
    assert!(!stderr(&run(Some("0"))).contains("timings:"));
    let err = stderr(&timed);
    let line = err
        .lines()
        .find(|l| l.starts_with("timings: "))
        .unwrap_or_else(|| panic!("no timings line in {err}"));
    let stages: Vec<&str> = line["timings: ".len()..]
        .split(';')
        .next()
        .unwrap()
        .split(", ")
        .map(|s| s.split(' ').next().unwrap())
        .collect();
    assert_eq!(stages, ["spec", "snapshot", "plan", "output"], "{line}");
    assert!(line.ends_with("waiting for 0 processes"), "{line}");
}

#[test]
fn plan_json_on_an_invalid_spec_prints_the_diagnostics_validate_prints() {
    let dir = tempfile::tempdir().unwrap();
    let bad = SPEC.replace(
        "root: { readonly: true }",
        "root: { readonly: true }\nbogus: 1",
    );
    std::fs::write(dir.path().join("bad.yaml"), bad).unwrap();
    let snap = snapshot(dir.path(), "blank");
    let o = hostform(
        dir.path(),
        &[
            "plan",
            "bad.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    let val = hostform(dir.path(), &["validate", "bad.yaml", "--format", "json"]);
    let w: serde_json::Value = serde_json::from_str(&stdout(&val)).unwrap();
    assert_eq!(v, w);
    assert_eq!(v["valid"], false);
    assert_eq!(v["specs"][0]["errors"][0]["code"], "unknown-key");
    assert_eq!(v["specs"][0]["errors"][0]["line"], 3);
    assert!(stderr(&o).contains("bad.yaml is not valid; no plan was made"));
}

#[test]
fn plan_given_a_saved_plan_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SPEC).unwrap();
    let snap = snapshot(dir.path(), "blank");
    let snap = snap.to_str().unwrap();
    let o = hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap, "--out", "p.plan"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = hostform(dir.path(), &["plan", "p.plan", "--against", snap]);
    assert_eq!(code(&o), 1);
    let e = stderr(&o);
    assert!(
        e.starts_with("error[saved-plan]: this is a saved plan: use show or apply\n"),
        "{e}"
    );
    assert!(e.contains("hostform show p.plan"), "{e}");
    assert!(
        !e.contains("yaml") && !e.contains("YAML"),
        "no YAML errors: {e}"
    );
    let o = hostform(
        dir.path(),
        &["plan", "p.plan", "--against", snap, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(v["specs"][0]["errors"][0]["code"], "saved-plan");
}

/// The captured `tapped` host: br0 carries eth0 (in the spec), two running guests' tap devices
/// (vnet0, vnet1: `tun` links in tap mode) and veth0, a port nobody manages.
const TAPPED: &str = "host: lab
network: { manager: ifupdown }
bridges:
  br0:
    ports: [eth0]
    addresses: [192.0.2.10/24]
    gateway: 192.0.2.1
";

#[test]
fn guest_taps_are_summarised_not_listed_as_unmanaged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), TAPPED).unwrap();
    // The blank disks' snapshot, with the network as captured on the tapped host.
    let blank = hostform::runner::ReplayRunner::open(root().join("tests/fixtures/blank")).unwrap();
    let mut d = hostform::discover::discover(&blank).unwrap();
    let r = hostform::runner::ReplayRunner::open(root().join("tests/fixtures/tapped")).unwrap();
    d.facts.net = hostform::kinds::net::discover(&r).unwrap();
    // Taken on the spec's host (the captures hold no hostname).
    d.spec.host = hostform::spec::de::Sp::bare("lab".to_string());
    let snap = dir.path().join("tapped.json");
    std::fs::write(&snap, serde_json::to_string(&d).unwrap()).unwrap();
    let snap = snap.to_str().unwrap();
    let out = stdout(&hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap],
    ));
    assert!(!out.contains("link vnet0"), "{out}");
    assert!(!out.contains("link vnet1"), "{out}");
    assert!(
        out.contains(
            "· guest ports on br0: 2 (vnet0, vnet1)  (the guests' interfaces: left alone)"
        ),
        "{out}"
    );
    // A port that is not a guest's is still reported, once, in one phrase.
    assert!(
        out.contains("? link veth0, port of br0  (not in the spec: left alone)\n"),
        "{out}"
    );
    assert!(!out.contains("not in the spec)"), "{out}");
    let j = hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    let unmanaged: Vec<&str> = v["unmanaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .filter(|u| u.starts_with("link "))
        .collect();
    assert_eq!(
        unmanaged,
        ["link eth0p", "link veth0, port of br0", "link veth0p"]
    );
    assert_eq!(
        v["guest_ports"],
        serde_json::json!({"br0": ["vnet0", "vnet1"]})
    );
}

/// The full scenario's stack, its LVs' filesystems swapped in the spec (ext4 to swap, swap to ext4).
const SWAPPED_FS: &str = "host: lab
disks:
  a:
    serial: HF-DISK-A
    partitions:
      - { name: bios_grub, size: 2MiB, type: bios-boot }
      - { name: raid_md0, size: rest, type: linux-raid }
  b: { serial: HF-DISK-B, like: a }
arrays:
  md0: { level: 1, devices: [a/raid_md0, b/raid_md0] }
volume-groups:
  vg0:
    pvs: [md0]
    lvs:
      dom0_root: { size: 512MiB, fs: swap }
      dom0_swap: { size: 128MiB, fs: ext4 }
      guest1_iso: { size: 64MiB, readonly: true }
      guest1_root: { size: 384MiB, fs: swap }
      guest1_swap: { size: 64MiB, fs: ext4 }
      guest1_var: { size: 128MiB, fs: swap }
";

#[test]
fn identical_refusals_are_one_line_naming_every_object() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lab.yaml"), SWAPPED_FS).unwrap();
    let snap = snapshot(dir.path(), "full");
    let snap = snap.to_str().unwrap();
    let o = hostform(dir.path(), &["plan", "lab.yaml", "--against", snap]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "refused lv vg0/dom0_root, lv vg0/guest1_root, lv vg0/guest1_var: holds ext4, the spec says swap\n        hint: "
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "refused lv vg0/dom0_swap, lv vg0/guest1_swap: holds swap, the spec says ext4\n"
        ),
        "{out}"
    );
    assert_eq!(out.matches("refused ").count(), 2, "{out}");
    assert_eq!(out.matches("hint: ").count(), 2, "{out}");
    // The count is of objects refused, and JSON keeps one refusal per object.
    assert!(out.contains(", 5 refused."), "{out}");
    let j = hostform(
        dir.path(),
        &["plan", "lab.yaml", "--against", snap, "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    assert_eq!(v["refusals"].as_array().unwrap().len(), 5, "{v}");
}
