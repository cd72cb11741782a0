//! Network commands that need no host: the offline configuration generator, and confirm /
//! rollback when nothing is pending.

use crate::common::*;
use hostform::kinds::netconf::{self, ParsedBridge};

const SPEC: &str = "host: dom0
network: { manager: ifupdown }
bridges:
  br0:
    ports: [eth0]
    addresses: [192.168.1.10/24]
    gateway: 192.168.1.1
  br1: { ports: [eth1], stp: true, mtu: 9000 }
";

fn expected() -> std::collections::BTreeMap<String, ParsedBridge> {
    let s = hostform::spec::load_str("t.yaml", SPEC).unwrap().spec;
    s.bridges
        .iter()
        .map(|(n, b)| (n.value.clone(), ParsedBridge::of(b)))
        .collect()
}

#[test]
fn net_config_writes_only_the_files_and_they_read_back_as_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dom0.yaml"), SPEC).unwrap();
    let o = hostform(dir.path(), &["net-config", "dom0.yaml", "--out", "out"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let path = dir.path().join("out/etc/network/interfaces.d/hostform");
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(netconf::parse_ifupdown(&text).unwrap(), expected());
    insta::assert_snapshot!("net_config_ifupdown", text);

    let o = hostform(
        dir.path(),
        &[
            "net-config",
            "dom0.yaml",
            "--manager",
            "networkd",
            "--out",
            "nd",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut files = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir.path().join("nd/etc/systemd/network")).unwrap() {
        let e = e.unwrap();
        files.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read_to_string(e.path()).unwrap(),
        );
    }
    assert_eq!(files.len(), 6, "{files:?}");
    assert_eq!(netconf::parse_networkd(&files).unwrap(), expected());

    // Without --out: printed, nothing written.
    let o = hostform(dir.path(), &["net-config", "dom0.yaml"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).starts_with("==> /etc/network/interfaces.d/hostform <==\n# Managed by hostform")
    );
}

#[test]
fn net_config_needs_a_manager_and_a_valid_spec() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("auto.yaml"),
        "host: h\nbridges:\n  br0: { ports: [eth0] }\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["net-config", "auto.yaml", "--out", "out"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("pass --manager ifupdown"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("out").exists());
    std::fs::write(
        dir.path().join("bad.yaml"),
        "host: h\nbridges:\n  br0: { mtu: 9 }\n",
    )
    .unwrap();
    let o = hostform(
        dir.path(),
        &["net-config", "bad.yaml", "--manager", "ifupdown"],
    );
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no file was written"), "{}", stderr(&o));
}

#[test]
fn confirm_and_rollback_with_nothing_pending_fail_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_str().unwrap();
    let o = hostform(dir.path(), &["confirm", "--state-dir", state]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no change is waiting for confirmation"),
        "{}",
        stderr(&o)
    );
    let o = hostform(dir.path(), &["rollback", "--state-dir", state]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("no change is waiting"),
        "{}",
        stderr(&o)
    );
    // A detached waiter with nothing to wait for exits quietly.
    let o = hostform(dir.path(), &["rollback", "--wait", "--state-dir", state]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // A bad duration is a usage error, before anything is read.
    let o = hostform(dir.path(), &["apply", "x.yaml", "--confirm-within", "soon"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
}

#[test]
fn a_corrupt_pending_change_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("pending.json"), "{").unwrap();
    let s = state.to_str().unwrap();
    for cmd in ["confirm", "rollback"] {
        let o = hostform(dir.path(), &[cmd, "--state-dir", s]);
        assert_eq!(code(&o), 1, "{cmd}");
        assert!(
            stderr(&o).contains("not a pending change"),
            "{cmd}: {}",
            stderr(&o)
        );
    }
}
