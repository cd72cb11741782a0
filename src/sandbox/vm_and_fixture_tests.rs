//! The committed fixtures are complete and well formed. (Tests that boot a VM are in the
//! end-to-end tier, tests/e2e.rs.)

use std::fs;
use std::path::{Path, PathBuf};

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

// The tests that boot a VM live in the end-to-end tier: tests/e2e.rs.
