//! `hostform validate` on the example specs and on one invalid spec per check.

use crate::common::*;

#[test]
fn every_example_spec_is_valid() {
    let dir = root();
    let mut n = 0;
    for e in std::fs::read_dir(dir.join("specs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let o = hostform(&dir, &["validate", p.to_str().unwrap()]);
            assert_eq!(
                code(&o),
                0,
                "{}:\n{}{}",
                p.display(),
                stdout(&o),
                stderr(&o)
            );
            assert!(stdout(&o).contains(": valid ("), "{}", stdout(&o));
            n += 1;
        }
    }
    assert!(n >= 3, "expected at least three example specs, found {n}");
}

#[test]
fn the_domain_host_has_the_expected_shape() {
    let loaded = hostform::spec::load(&root().join("specs/dom0.yaml"), None).expect("dom0 loads");
    let s = &loaded.spec;
    assert_eq!(s.disks.len(), 2);
    // `like: sda` copied sda's table.
    let sdb = &s.disks["sdb"];
    assert_eq!(sdb.partitions.len(), 2);
    assert_eq!(
        sdb.partitions[0].kind,
        hostform::spec::types::PartType::BiosBoot
    );
    assert_eq!(s.vms.len(), 8);
    // vm-defaults + the included `debian` template reached guest1.
    let g1 = &s.vms["guest1"];
    assert_eq!(
        g1.hypervisor.map(|h| h.value),
        Some(hostform::spec::types::Hypervisor::Xen)
    );
    assert_eq!(
        g1.boot
            .as_ref()
            .and_then(|b| b.root.as_ref())
            .map(|r| r.value.as_str()),
        Some("/dev/xvda1 ro")
    );
    assert_eq!(g1.nics.len(), 1);
    assert_eq!(g1.memory.map(|m| m.value.0), Some(2 << 30));
    assert_eq!(s.vms["machin"].memory.map(|m| m.value.0), Some(1 << 30));
}

/// Each file in tests/specs/invalid/ starts with `# expect: CODE`: validation must fail,
/// report that code, point at a line of that file, and match the reviewed snapshot.
#[test]
fn each_invalid_spec_is_rejected_with_its_error() {
    let dir = root().join("tests/specs/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 20);
    for p in files {
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&p).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .expect("first line `# expect: CODE`");
        let o = hostform(&dir, &["validate", "--format", "json", &name]);
        assert_eq!(code(&o), 1, "{name} should be invalid: {}", stdout(&o));
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json");
        let errors = v["specs"][0]["errors"].as_array().unwrap();
        assert!(
            errors.iter().any(|e| e["code"] == expect),
            "{name}: no `{expect}` error in {errors:#?}"
        );
        for e in errors {
            if e["code"] != "read" {
                assert!(
                    e["line"].as_u64().unwrap_or(0) >= 1,
                    "{name}: error without a line: {e}"
                );
                assert!(
                    e["source_line"].is_string(),
                    "{name}: error without its source line: {e}"
                );
            }
        }
        let human = hostform(&dir, &["validate", &name]);
        insta::assert_snapshot!(name.trim_end_matches(".yaml"), stderr(&human));
    }
}

#[test]
fn one_run_reports_every_error() {
    let dir = root().join("tests/specs/invalid");
    let o = hostform(
        &dir,
        &["validate", "--format", "json", "dangling-references.yaml"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let errors = v["specs"][0]["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    // sdb/riad, md1, roo, smal, vg0/rot, vg1/root, br0, c, d: nine distinct mistakes.
    assert_eq!(errors.len(), 9, "{errors:#?}");
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "sorted by position: {lines:?}"
    );
    let text = stdout(&o);
    for hint in [
        "did you mean `sdb/raid`?",
        "did you mean `root`?",
        "did you mean `small`?",
        "did you mean `vg0/root`?",
    ] {
        assert!(text.contains(hint), "missing hint {hint}");
    }
}

#[test]
fn a_dependency_cycle_is_shown_whole() {
    let dir = root().join("tests/specs/invalid");
    let o = hostform(&dir, &["validate", "dependency-cycle.yaml"]);
    let err = stderr(&o);
    assert!(
        err.contains("depends-on forms a cycle: firewall → srvnfs → srvlan → firewall"),
        "{err}"
    );
    assert_eq!(
        err.matches("forms a cycle").count(),
        1,
        "the cycle is reported once: {err}"
    );
}

#[test]
fn json_and_text_agree_and_exit_codes_are_stable() {
    let dir = root();
    let ok = hostform(
        &dir,
        &["validate", "--format", "json", "specs/minimal.yaml"],
    );
    assert_eq!(code(&ok), 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&ok)).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["valid"], true);
    // Several specs in one run: invalid if any is.
    let mixed = hostform(
        &dir,
        &[
            "validate",
            "specs/minimal.yaml",
            "tests/specs/invalid/tabs.yaml",
        ],
    );
    assert_eq!(code(&mixed), 1);
    assert!(stdout(&mixed).contains("specs/minimal.yaml"));
    // Usage errors are 2.
    assert_eq!(code(&hostform(&dir, &["validate", "--format", "yaml"])), 64);
    assert_eq!(code(&hostform(&dir, &["frobnicate"])), 64);
    assert_eq!(code(&hostform(&dir, &["--help"])), 0);
}

#[test]
fn warnings_do_not_fail_validation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("h.yaml"),
        "host: h\ndisks:\n  sda: { serial: S1 }\nvolume-groups:\n  vg0:\n    pvs: [sda]\n    lvs:\n      fw: { image: images/missing.raw }\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "h.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("warning[image-missing]"));
    assert!(stdout(&o).contains("1 warning"));
}

/// A thin pool promising more than it holds is what thin pools are for: a warning with the
/// ratio, not an error; a guest may use a thin LV; a thin LV in a pool removed is an error.
#[test]
fn an_overcommitted_thin_pool_is_a_warning_and_its_lvs_are_lvs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "host: h\ndisks:\n  sda: { serial: S1, size: 100GiB }\nvolume-groups:\n  vg0:\n    pvs: [sda]\n    thin-pools:\n      pool0:\n        size: 10GiB\n        lvs:\n          web: { size: 20GiB, fs: ext4 }\n          db: { size: 5GiB }\nvms:\n  web: { hypervisor: libvirt, memory: 1GiB, vcpus: 1, disks: [{ lv: vg0/web, target: vda }] }\n";
    std::fs::write(dir.path().join("h.yaml"), spec).unwrap();
    let o = hostform(dir.path(), &["validate", "h.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning[overcommit]: thin pool `vg0/pool0` is overcommitted 2.50x: its thin LVs promise 25GiB, it holds 10GiB"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("2 LVs"), "{}", stdout(&o));
    let gone = spec.replace("        size: 10GiB\n", "        state: absent\n");
    std::fs::write(dir.path().join("g.yaml"), gone).unwrap();
    let o = hostform(dir.path(), &["validate", "g.yaml"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("thin LV `vg0/web` stays, but its pool `pool0` is `state: absent`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn templates_chain_and_vm_defaults_may_name_one() {
    let text = "host: h\nvm-defaults: { hypervisor: xen, template: base }\nvm-templates:\n  base: { memory: 1GiB, vcpus: 1 }\n  big: { template: base, vcpus: 8 }\nvms:\n  a: {}\n  b: { template: big, memory: 4GiB }\n";
    let l = hostform::spec::load_str("t.yaml", text).expect("valid");
    let a = &l.spec.vms["a"];
    assert_eq!(
        a.memory.map(|m| m.value.0),
        Some(1 << 30),
        "a gets base through vm-defaults"
    );
    let b = &l.spec.vms["b"];
    assert_eq!(b.vcpus.map(|v| v.value), Some(8), "big's vcpus");
    assert_eq!(
        b.memory.map(|m| m.value.0),
        Some(4 << 30),
        "b's own memory wins"
    );
    let cyclic = "host: h\nvm-templates:\n  x: { template: y }\n  y: { template: x }\nvms:\n  a: { template: x }\n";
    let f = hostform::spec::load_str("c.yaml", cyclic).expect_err("cycle");
    assert!(
        f.diagnostics
            .iter()
            .any(|d| d.message.contains("templates form a cycle: x → y → x")),
        "{:?}",
        f.diagnostics
    );
}

#[test]
fn a_closed_pipe_is_not_an_internal_error() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_hostform"))
        .args(["schema"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away before the schema is written
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(255), "{status:?}");
    assert_ne!(status.code(), Some(101), "{status:?}");
}

/// A guest of the cluster file written again in a host's spec would be placed twice: an error
/// naming both places, whatever host it says it runs on.
#[test]
fn a_guest_placed_twice_in_a_cluster_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cluster.yaml"),
        "cluster:\n  hosts:\n    kvm1: { host-id: 1 }\n    kvm2: { host-id: 2 }\nvms:\n  web: { hypervisor: libvirt, memory: 1GiB, runs-on: kvm1 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("kvm2.yaml"),
        "host: kvm2\ninclude: [cluster.yaml]\nvms:\n  web: { hypervisor: libvirt, memory: 1GiB, runs-on: kvm2 }\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "kvm2.yaml"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let e = stderr(&o);
    assert!(e.contains("guest `web` is defined twice"), "{e}");
    assert!(e.contains("cluster.yaml"), "{e}");
    // Without the duplicate, kvm2's own view holds only the guests placed on it.
    std::fs::write(
        dir.path().join("kvm2.yaml"),
        "host: kvm2\ninclude: [cluster.yaml]\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "kvm2.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("0 guests"), "{}", stdout(&o));
    std::fs::write(
        dir.path().join("kvm1.yaml"),
        "host: kvm1\ninclude: [cluster.yaml]\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "kvm1.yaml"]);
    assert!(stdout(&o).contains("1 guest"), "{}", stdout(&o));
}
