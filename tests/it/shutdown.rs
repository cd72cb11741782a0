//! `hostform shutdown-order`, and the refusals of `shutdown`/`start` that need no hypervisor.

use crate::common::*;

#[test]
fn dom0_order_as_text_json_and_systemd() {
    let dir = root();
    let o = hostform(&dir, &["shutdown-order", "specs/dom0.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!("shutdown_order_dom0_text", stdout(&o));
    let o = hostform(
        &dir,
        &["shutdown-order", "specs/dom0.yaml", "--format", "json"],
    );
    assert_eq!(code(&o), 0);
    let j: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["first"], serde_json::json!(["firewall-slave"]));
    assert_eq!(
        j["batches"][0],
        serde_json::json!(["guest1", "guest2", "machin"])
    );
    assert_eq!(j["batches"][4], serde_json::json!(["firewall"]));
    let o = hostform(
        &dir,
        &[
            "shutdown-order",
            "specs/dom0.yaml",
            "--format",
            "systemd",
            "--exe",
            "/usr/local/bin/hostform",
        ],
    );
    assert_eq!(code(&o), 0);
    let unit = stdout(&o);
    let spec_abs = std::fs::canonicalize(dir.join("specs/dom0.yaml")).unwrap();
    assert!(
        unit.contains(&format!(
            "ExecStop=/usr/local/bin/hostform shutdown {}\n",
            spec_abs.display()
        )),
        "{unit}"
    );
    // Five batches of 120 s plus the first guest's, and 30 s of margin per batch and one more.
    assert!(unit.contains("TimeoutStopSec=900\n"), "{unit}");
    assert!(
        unit.contains("After=network-online.target lvm2-monitor.service libvirt-guests.service")
    );
    assert!(!unit.contains("KillMode=none"), "{unit}");

    // Without --exe, a hostform run from a build tree writes the installed path, not its own.
    let o = hostform(
        &dir,
        &["shutdown-order", "specs/dom0.yaml", "--format", "systemd"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let unit = stdout(&o);
    assert!(
        unit.contains("ExecStop=/usr/bin/hostform shutdown "),
        "{unit}"
    );
    assert!(!unit.contains("/target/"), "{unit}");
    let o = hostform(
        &dir,
        &[
            "shutdown-order",
            "specs/dom0.yaml",
            "--format",
            "systemd",
            "--exe",
            "hostform",
        ],
    );
    assert_eq!(code(&o), 64, "{}", stderr(&o));
}

/// The unit passes `systemd-analyze verify` without a single warning, where systemd is
/// installed (CI installs it).
#[test]
fn the_shutdown_unit_verifies_silently() {
    let Some(sa) = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
    else {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "systemd-analyze is missing: install the systemd package (scripts/lib.sh does)"
        );
        return;
    };
    let dir = root();
    let exe = env!("CARGO_BIN_EXE_hostform");
    let o = hostform(
        &dir,
        &[
            "shutdown-order",
            "specs/dom0.yaml",
            "--format",
            "systemd",
            "--exe",
            exe,
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let units = tempfile::tempdir().unwrap();
    let path = units.path().join("hostform-shutdown.service");
    std::fs::write(&path, stdout(&o)).unwrap();
    let v = std::process::Command::new(sa)
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert_eq!(String::from_utf8_lossy(&v.stderr), "", "no warnings");
}

#[test]
fn an_invalid_spec_orders_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        "host: h
vm-defaults: { hypervisor: libvirt, memory: 64MiB }
vms:
  a: { depends-on: [b] }
  b: { depends-on: [a] }
",
    )
    .unwrap();
    for cmd in ["shutdown-order", "shutdown", "start"] {
        let o = hostform(dir.path(), &[cmd, "c.yaml"]);
        assert_eq!(code(&o), 1, "{cmd}");
        assert!(
            stderr(&o).contains("depends-on forms a cycle: a → b → a"),
            "{}",
            stderr(&o)
        );
        assert!(stdout(&o).is_empty());
    }
    let o = hostform(
        dir.path(),
        &["shutdown-order", "c.yaml", "--format", "yaml"],
    );
    assert_eq!(code(&o), 64);
}
