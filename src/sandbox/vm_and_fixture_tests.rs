//! Tests that need more than pure functions: the committed fixtures, and
//! (ignored by default, as each boots a VM for 10-30 s) the sandbox itself.
//! Run the VM tests with `cargo test --lib sandbox -- --ignored`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use super::*;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Every fixture listed in a scenario's COMMANDS exists with its `.cmd`, and
/// every non-empty JSON fixture parses.
#[test]
fn fixtures_are_complete_and_json_parses() {
    let root = fixtures_dir();
    let Ok(entries) = fs::read_dir(&root) else {
        return; // fixtures not captured in this checkout
    };
    let mut scenarios = 0;
    for entry in entries.flatten() {
        let dir = entry.path();
        let commands = dir.join("COMMANDS");
        let Ok(text) = fs::read_to_string(&commands) else {
            continue;
        };
        scenarios += 1;
        for line in text.lines() {
            let cols: Vec<&str> = line.splitn(3, '\t').collect();
            assert_eq!(cols.len(), 3, "{}: bad line {line:?}", commands.display());
            let (name, status) = (cols[0], cols[1]);
            assert!(status.parse::<i32>().is_ok(), "{line:?}");
            let out = dir.join(name);
            let cmd = dir.join(format!("{name}.cmd"));
            assert!(out.is_file(), "{} missing", out.display());
            let cmd_text = fs::read_to_string(&cmd).unwrap_or_default();
            assert_eq!(cmd_text.trim_end(), cols[2], "{}", cmd.display());
            if name.ends_with(".json") {
                let data = fs::read_to_string(&out).unwrap_or_default();
                if !data.trim().is_empty() {
                    let parsed: Result<serde_json::Value, _> = serde_json::from_str(&data);
                    assert!(parsed.is_ok(), "{} is not JSON", out.display());
                }
            }
        }
    }
    assert!(scenarios > 0 || !root.join("VERSIONS").exists());
}

/// VM tests share two cores; run them one at a time.
static VM_LOCK: Mutex<()> = Mutex::new(());

fn vm_config(command: &[&str]) -> SandboxConfig {
    let mut cfg = SandboxConfig::new(
        env!("CARGO_MANIFEST_DIR"),
        command.iter().map(|s| s.to_string()).collect(),
    );
    cfg.timeout = Duration::from_secs(180);
    cfg
}

fn leftover_temp_dirs() -> Vec<PathBuf> {
    let prefix = format!("hostform-sandbox-{}-", std::process::id());
    fs::read_dir(std::env::temp_dir())
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "boots a VM"]
fn vm_reports_exit_code_and_streams_output() {
    let _g = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut cfg = vm_config(&[
        "sh",
        "-c",
        "echo out; echo err >&2; test -b /dev/disk/by-id/virtio-T_1 && ip link show lan0 >/dev/null && exit 7",
    ]);
    cfg.disks = vec![SandboxDisk {
        serial: "T 1".into(),
        size_bytes: 64 << 20,
    }];
    cfg.nics = vec!["lan0".into()];
    let mut out = Vec::new();
    let outcome = run(&cfg, &mut out).expect("sandbox run");
    assert_eq!(outcome.exit_code, 7);
    assert_eq!(String::from_utf8_lossy(&out), "out\nerr\n");
    assert_eq!(outcome.disks[0].serial, "T_1");
    assert!(outcome.boot_ready <= outcome.total);
    assert!(leftover_temp_dirs().is_empty());
}

#[test]
#[ignore = "boots a VM"]
fn vm_timeout_kills_qemu_and_cleans_up() {
    let _g = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let mut cfg = vm_config(&["sleep", "600"]);
    cfg.timeout = Duration::from_secs(8);
    cfg.disks = vec![SandboxDisk {
        serial: "T-2".into(),
        size_bytes: 64 << 20,
    }];
    let mut out = Vec::new();
    let err = run(&cfg, &mut out).expect_err("must time out");
    assert!(matches!(err, SandboxError::Timeout { .. }), "{err}");
    assert!(leftover_temp_dirs().is_empty());
}

#[test]
#[ignore = "boots a VM"]
fn vm_kept_images_are_reused() {
    let _g = VM_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let keep =
        std::env::temp_dir().join(format!("hostform-sandbox-test-keep-{}", std::process::id()));
    let _ = fs::remove_dir_all(&keep);
    let disk = SandboxDisk {
        serial: "KEEP-1".into(),
        size_bytes: 16 << 20,
    };
    let mut cfg = vm_config(&[
        "sh",
        "-c",
        "printf hostform-mark | dd of=/dev/vda bs=512 conv=notrunc,fsync 2>/dev/null",
    ]);
    cfg.disks = vec![disk.clone()];
    cfg.keep = Some(keep.clone());
    let first = run(&cfg, &mut Vec::new()).expect("first run");
    assert_eq!(first.exit_code, 0);
    assert!(!first.disks[0].reused);
    cfg.command = vec!["sh".into(), "-c".into(), "head -c 13 /dev/vda".into()];
    let mut out = Vec::new();
    let second = run(&cfg, &mut out).expect("second run");
    assert!(second.disks[0].reused);
    assert_eq!(String::from_utf8_lossy(&out), "hostform-mark");
    let _ = fs::remove_dir_all(&keep);
}
