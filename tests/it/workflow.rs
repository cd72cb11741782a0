//! The operator's workflow: saved plans (and every refusal to apply one), the apply lock, the
//! journal and `history`, `drift` exit codes and report, timer units, signed commits.
//!
//! Plans are made against snapshots of captured real hosts (tests/fixtures); an apply runs on
//! this machine, so the tests only apply specs that change nothing here (`host: t`), or are
//! refused before anything runs.

use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const LAB: &str = "host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0:
    pvs: [a]
    lvs:
      data: { size: 64MiB, fs: ext4 }
";

/// The storage of the `full` capture, as `hostform discover` adopts it (some LVs left out:
/// they are unmanaged).
const FULL: &str = "host: lab
disks:
  vda:
    serial: HF-DISK-A
    partitions:
    - { name: bios_grub, size: 2MiB, type: bios-boot }
    - { name: raid_md0, size: 2044MiB, type: linux-raid }
  vdb: { serial: HF-DISK-B, like: vda }
arrays:
  md0: { level: 1, devices: [vda/raid_md0, vdb/raid_md0] }
volume-groups:
  vg0:
    pvs: [md0]
    lvs:
      dom0_root: { size: 512MiB, fs: ext4 }
      dom0_swap: { size: 128MiB, fs: swap }
";

/// A snapshot of the host `lab` (the specs' host), from a captured scenario.
fn snapshot(dir: &Path, scenario: &str) -> PathBuf {
    snapshot_of(dir, scenario, "lab")
}

/// Paths, times and hashes that differ from run to run, replaced for snapshots.
fn scrub(s: &str, dir: &Path) -> String {
    // The build (commit, dirty) differs from checkout to checkout.
    let s = s.replace(
        hostform::version::IDENTITY,
        &format!("{} ([BUILD])", hostform::version::VERSION),
    );
    let mut s = s.replace(&dir.display().to_string(), "[DIR]");
    if let Ok(canon) = dir.canonicalize() {
        s = s.replace(&canon.display().to_string(), "[DIR]");
    }
    let mut out = String::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let is_time = b.len() - i >= 20
            && b[i + 4] == b'-'
            && b[i + 10] == b'T'
            && b[i + 19] == b'Z'
            && b[i..i + 4].iter().all(u8::is_ascii_digit);
        let hex = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            .count();
        if is_time {
            out.push_str("[TIME]");
            i += 20;
        } else if hex >= 16 && (i == 0 || !b[i - 1].is_ascii_alphanumeric()) {
            out.push_str("[HASH]");
            i += hex;
        } else {
            let ch = s[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn setup() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lab.yaml"), LAB).unwrap();
    std::fs::write(d.path().join("t.yaml"), "host: t\n").unwrap();
    let snap = snapshot(d.path(), "blank");
    (d, snap)
}

/// The final records of the journal, as written (each apply also writes a `started` line
/// first, checked here).
fn journal(dir: &Path) -> Vec<serde_json::Value> {
    let all: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("state/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        // Each operation's own lines (as it starts, as it ends) are checked where they matter.
        .filter(|r| r["outcome"] != "operation")
        .collect();
    for pair in all.chunks(2) {
        assert_eq!(pair[0]["outcome"], "started", "{all:?}");
        assert_eq!(pair[0]["pid"], pair[1]["pid"]);
        assert_eq!(pair[0]["started"], pair[1]["started"]);
    }
    all.into_iter()
        .filter(|r| r["outcome"] != "started")
        .collect()
}

#[test]
fn a_saved_plan_shows_what_it_holds_and_whether_it_is_empty() {
    let (d, snap) = setup();
    let dir = d.path();
    let snap = snap.to_str().unwrap();
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", snap, "--out", "p.plan"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Saved the plan to p.plan ("),
        "{}",
        stderr(&o)
    );
    let show = hf(dir, &["show", "p.plan"]);
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    insta::assert_snapshot!("show_text", scrub(&stdout(&show), dir));
    assert_eq!(
        code(&hf(dir, &["show", "p.plan", "--detailed-exitcode"])),
        2
    );
    let j = hf(dir, &["show", "p.plan", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&j)).unwrap();
    assert_eq!(v["empty"], false);
    assert_eq!(v["allow_destroy"], false);
    assert!(v["operations"].as_u64().unwrap() > 3);
    assert_eq!(v["state"]["against"], format!("snapshot {snap}"));

    // An empty plan says so, in text, json and exit status.
    let o = hf(
        dir,
        &[
            "plan",
            "t.yaml",
            "--against",
            snap,
            "--host",
            "t",
            "--out",
            "empty.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).contains("an empty plan: applying it changes nothing"));
    let show = hf(dir, &["show", "empty.plan", "--detailed-exitcode"]);
    assert_eq!(code(&show), 0);
    assert!(stdout(&show).ends_with("This plan is empty: applying it changes nothing.\n"));
    let j = hf(dir, &["show", "empty.plan", "--format", "json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&j)).unwrap()["empty"],
        true
    );

    // Not a saved plan; missing.
    let o = hf(dir, &["show", "lab.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not a saved plan"), "{}", stderr(&o));
    assert_eq!(code(&hf(dir, &["show", "nope.plan"])), 1);
}

#[test]
fn a_plan_with_refusals_is_not_saved() {
    let (d, _) = setup();
    let dir = d.path();
    let snap = snapshot(dir, "full");
    // The full capture has vg0 with bigger LVs: shrinking is refused.
    std::fs::write(dir.join("shrink.yaml"), FULL.replace("512MiB", "256MiB")).unwrap();
    let o = hf(
        dir,
        &[
            "plan",
            "shrink.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "x.plan",
        ],
    );
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("the plan has refusals, so it was not saved"),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("x.plan").exists());
}

#[test]
fn apply_refuses_a_tampered_or_truncated_plan_and_bad_options() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0);
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();

    std::fs::write(
        dir.join("tampered.plan"),
        text.replacen("64MiB", "65MiB", 1),
    )
    .unwrap();
    let o = hf(dir, &["apply", "tampered.plan"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("apply_tampered", stderr(&o));

    std::fs::write(dir.join("cut.plan"), &text[..text.len() / 2]).unwrap();
    let o = hf(dir, &["apply", "cut.plan"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("apply_truncated", stderr(&o));

    let o = hf(dir, &["apply", "p.plan", "--allow-destroy"]);
    assert_eq!(code(&o), 64);
    assert!(stderr(&o).contains(
        "is a saved plan: it is applied with the spec revision and options it was made with"
    ));
    let o = hf(dir, &["apply", "p.plan", "--lock-timeout", "soon"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    // Nothing got as far as the journal.
    assert!(journal(dir).is_empty());
}

#[test]
fn apply_refuses_a_plan_whose_spec_changed_and_journals_it() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0);
    std::fs::write(dir.join("lab.yaml"), LAB.replace("64MiB", "128MiB")).unwrap();
    let o = hf(dir, &["apply", "p.plan", "--host", "lab"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!("apply_spec_changed", scrub(&stderr(&o), dir));
    let j = journal(dir);
    assert_eq!(j.len(), 1);
    assert_eq!(j[0]["outcome"], "refused");
    assert!(
        j[0]["message"]
            .as_str()
            .unwrap()
            .contains("the spec changed since the plan was made")
    );
    assert!(j[0]["plan_file"].as_str().unwrap().ends_with("p.plan"));
}

#[test]
fn apply_refuses_a_plan_made_against_another_state_of_the_host() {
    // Planned against the blank capture; this machine is not that host.
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0);
    let o = hf(dir, &["apply", "p.plan", "--host", "lab"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.starts_with("apply: the host changed since the plan was made: "),
        "{err}"
    );
    assert!(err.contains("(planned against snapshot "), "{err}");
    assert!(err.contains("make a new plan: hostform plan "), "{err}");
    assert!(
        err.ends_with("lab.yaml --out FILE; nothing was changed\n"),
        "{err}"
    );
    assert_eq!(journal(dir)[0]["outcome"], "refused");
}

#[test]
fn a_held_lock_refuses_a_second_apply_with_the_holders_details() {
    let (d, _) = setup();
    let dir = d.path();
    let held = hostform::workflow::lock::acquire(
        &dir.join("lock"),
        std::time::Duration::ZERO,
        &mut |_| {},
    )
    .unwrap();
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    let me = std::process::id();
    assert!(
        err.starts_with(&format!(
            "apply: another apply holds the lock {}/lock/hostform.lock: pid {me}, `",
            dir.display()
        )),
        "{err}"
    );
    assert!(err.contains("`, since 20"), "{err}");
    assert!(err.contains("pass --lock-timeout 10m to wait"), "{err}");
    // Waiting says who it waits for, then gives up.
    let o = hf(
        dir,
        &[
            "apply",
            "t.yaml",
            "--host",
            "t",
            "--auto-approve",
            "--lock-timeout",
            "1s",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("apply: waiting up to 1s: another apply holds the lock"),
        "{}",
        stderr(&o)
    );
    assert!(journal(dir).is_empty(), "refused before the journal");
    drop(held);
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert!(!stderr(&o).contains("holds the lock"), "{}", stderr(&o));
}

#[test]
fn every_apply_is_journaled_and_history_shows_it() {
    let (d, snap) = setup();
    let dir = d.path();
    let empty = hf(dir, &["history"]);
    assert_eq!(code(&empty), 0);
    assert!(stdout(&empty).starts_with("No applies recorded in "));
    // A spec that asks for nothing: nothing to do on any machine.
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    // A refused one.
    hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    std::fs::write(dir.join("lab.yaml"), "host: lab\n").unwrap();
    assert_eq!(code(&hf(dir, &["apply", "p.plan", "--host", "lab"])), 1);
    // An invalid spec.
    std::fs::write(dir.join("bad.yaml"), "host: [\n").unwrap();
    assert_eq!(code(&hf(dir, &["apply", "bad.yaml", "--auto-approve"])), 1);

    let j = journal(dir);
    let outcomes: Vec<&str> = j.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["no-changes", "refused", "refused"]);
    assert_eq!(j[0]["spec"], "t.yaml");
    assert!(j[0]["spec_sha256"].as_str().unwrap().len() == 64);
    assert_eq!(
        j[1]["operations"].as_array().unwrap().len(),
        0,
        "not run: nothing recorded as run"
    );
    for r in &j {
        assert!(r["started"].as_str().unwrap() <= r["finished"].as_str().unwrap());
        assert!(r["pid"].as_u64().is_some());
    }
    let h = hf(dir, &["history"]);
    assert_eq!(code(&h), 0);
    insta::assert_snapshot!("history_text", scrub(&stdout(&h), dir));
    let h = hf(dir, &["history", "-n", "1", "--format", "json"]);
    assert_eq!(stdout(&h).lines().count(), 1);
    let last: serde_json::Value = serde_json::from_str(stdout(&h).trim()).unwrap();
    assert_eq!(last, j[2]);
    // The state directory comes from the flag too.
    let h = hostform(
        dir,
        &[
            "history",
            "--state-dir",
            dir.join("state").to_str().unwrap(),
        ],
    );
    assert_eq!(
        stdout(&h).lines().filter(|l| l.starts_with("20")).count(),
        3,
        "{}",
        stdout(&h)
    );
}

/// `drift` logs once per run: to the journal when there is one, otherwise one line on stderr;
/// with `-v` the event itself is shown instead of that line, never both.
#[test]
fn drift_logs_one_event_per_run() {
    let (d, snap) = setup();
    let dir = d.path();
    let snap = snap.to_str().unwrap();
    let full = snapshot(dir, "full");
    let full = full.to_str().unwrap();
    std::fs::write(dir.join("full.yaml"), FULL).unwrap();
    let lines = |o: &std::process::Output, what: &str| {
        stderr(o).lines().filter(|l| l.contains(what)).count()
    };
    let o = hf(
        dir,
        &["drift", "full.yaml", "--against", full, "--log", "stderr"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(lines(&o, "in sync: full.yaml matches"), 1, "{}", stderr(&o));
    assert_eq!(lines(&o, "HOSTFORM_EVENT"), 0, "no event shown without -v");
    let o = hf(
        dir,
        &[
            "-v",
            "drift",
            "full.yaml",
            "--against",
            full,
            "--log",
            "stderr",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(lines(&o, "in sync: full.yaml matches"), 1, "{}", stderr(&o));
    assert_eq!(lines(&o, "HOSTFORM_EVENT=\"drift\""), 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains("hostform in sync"), "{}", stderr(&o));
    // An error is one event too, at error level.
    std::fs::write(dir.join("bad.yaml"), "host: lab\nbogus: 1\n").unwrap();
    let o = hf(
        dir,
        &[
            "-v",
            "drift",
            "bad.yaml",
            "--against",
            snap,
            "--log",
            "stderr",
        ],
    );
    assert_eq!(code(&o), 1);
    assert_eq!(lines(&o, "HOSTFORM_EVENT"), 1, "{}", stderr(&o));
    assert_eq!(
        lines(&o, "ERROR drift: bad.yaml is not valid"),
        1,
        "{}",
        stderr(&o)
    );
    // The journal asked for: without one, why, and the line on stderr once.
    let o = hf(
        dir,
        &["drift", "full.yaml", "--against", full, "--log", "journald"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        assert_eq!(stderr(&o), "", "the journal has it");
    } else {
        assert_eq!(
            stderr(&o),
            format!(
                "hostform: the systemd journal: no /run/systemd/journal/socket\n\
                 hostform in sync: full.yaml matches snapshot {full}\n"
            )
        );
    }
}

#[test]
fn drift_exit_codes_and_reports() {
    let (d, snap) = setup();
    let dir = d.path();
    let snap = snap.to_str().unwrap();
    let full = snapshot(dir, "full");
    let full = full.to_str().unwrap();
    // In sync: the spec describes what the host has.
    std::fs::write(dir.join("full.yaml"), FULL).unwrap();
    let o = hf(
        dir,
        &["drift", "full.yaml", "--against", full, "--log", "stderr"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    insta::assert_snapshot!(
        "drift_in_sync",
        scrub(&format!("{}--- stderr\n{}", stdout(&o), stderr(&o)), dir)
    );
    // Drift: the spec wants an LV the host does not have, and a smaller one than it has.
    std::fs::write(
        dir.join("lab.yaml"),
        FULL.replace("512MiB", "256MiB")
            .replace("fs: swap }", "fs: swap }\n      extra: { size: 8MiB }"),
    )
    .unwrap();
    let o = hf(
        dir,
        &["drift", "lab.yaml", "--against", full, "--log", "stderr"],
    );
    assert_eq!(code(&o), 2, "{}{}", stdout(&o), stderr(&o));
    insta::assert_snapshot!(
        "drift_found",
        scrub(&format!("{}--- stderr\n{}", stdout(&o), stderr(&o)), dir)
    );
    let o = hf(
        dir,
        &[
            "drift",
            "lab.yaml",
            "--against",
            full,
            "--log",
            "stderr",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 2);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["in_sync"], false);
    assert!(!v["differs"].as_array().unwrap().is_empty());
    assert!(!v["refused"].as_array().unwrap().is_empty());
    // Errors: an invalid spec, an unreadable snapshot.
    std::fs::write(dir.join("bad.yaml"), "host: lab\nbogus: 1\n").unwrap();
    let o = hf(
        dir,
        &["drift", "bad.yaml", "--against", snap, "--log", "stderr"],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("hostform drift: bad.yaml is not valid; drift was not checked"),
        "{}",
        stderr(&o)
    );
    let o = hf(
        dir,
        &[
            "drift",
            "t.yaml",
            "--against",
            "nope.json",
            "--log",
            "stderr",
        ],
    );
    assert_eq!(code(&o), 1);
    // A bad flag is a usage error (64), never read as drift (2).
    assert_eq!(code(&hf(dir, &["drift", "--bogus"])), 64);
    assert_eq!(code(&hf(dir, &["drift", "t.yaml", "--agains", snap])), 64);
}

/// `systemd-analyze verify` on the written units, where systemd is installed; CI installs it
/// (scripts/lib.sh), so there its absence is a failure, not a skip.
fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("systemd-analyze is missing: install the systemd package (scripts/lib.sh does)");
    }
    found
}

#[test]
fn timer_units_are_written_verified_and_removed() {
    let (d, _) = setup();
    let dir = d.path();
    let units = dir.join("units");
    let u = units.to_str().unwrap();
    let o = hf(
        dir,
        &[
            "timer",
            "install",
            "t.yaml",
            "--host",
            "t",
            "--every",
            "6h",
            "--unit-dir",
            u,
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let exe = assert_cmd::cargo::cargo_bin("hostform");
    let service = std::fs::read_to_string(units.join("hostform-drift.service")).unwrap();
    let timer = std::fs::read_to_string(units.join("hostform-drift.timer")).unwrap();
    assert!(
        service.contains(&format!(
            "ExecStart={} drift {}/t.yaml --host t\n",
            exe.display(),
            dir.canonicalize().unwrap().display()
        )),
        "{service}"
    );
    assert!(
        timer.contains("OnCalendar=*-*-* 00/6:00:00\nPersistent=true\n"),
        "{timer}"
    );
    insta::assert_snapshot!(
        "timer_install",
        scrub(&stdout(&o), dir).replace(&exe.display().to_string(), "[HOSTFORM]")
    );
    if let Some(sa) = systemd_analyze() {
        let v = Command::new(sa)
            .arg("verify")
            .arg(units.join("hostform-drift.service"))
            .arg(units.join("hostform-drift.timer"))
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
        assert_eq!(String::from_utf8_lossy(&v.stderr), "", "no warnings");
        // --on-calendar is checked by systemd's own parser.
        let o = hf(
            dir,
            &[
                "timer",
                "install",
                "t.yaml",
                "--on-calendar",
                "Mon..Fri 25:00",
                "--unit-dir",
                u,
            ],
        );
        assert_eq!(code(&o), 64);
        assert!(
            stderr(&o).contains("--on-calendar \"Mon..Fri 25:00\""),
            "{}",
            stderr(&o)
        );
    }
    let o = hf(
        dir,
        &[
            "timer",
            "install",
            "t.yaml",
            "--on-calendar",
            "Mon..Fri 08:00",
            "--rev",
            "HEAD",
            "--unit-dir",
            u,
        ],
    );
    assert_eq!(
        code(&o),
        1,
        "t.yaml is not in git: --rev fails and nothing is written"
    );
    let o = hf(
        dir,
        &[
            "timer",
            "install",
            "t.yaml",
            "--every",
            "45m",
            "--unit-dir",
            u,
        ],
    );
    assert_eq!(code(&o), 64);
    assert!(stderr(&o).contains("minutes must divide an hour evenly"));
    // The units written first are still there, unchanged.
    assert_eq!(
        std::fs::read_to_string(units.join("hostform-drift.timer")).unwrap(),
        timer
    );
    // An enabled timer is not removed behind systemd's back.
    std::fs::create_dir_all(units.join("timers.target.wants")).unwrap();
    std::os::unix::fs::symlink(
        "../hostform-drift.timer",
        units.join("timers.target.wants/hostform-drift.timer"),
    )
    .unwrap();
    let o = hf(dir, &["timer", "remove", "--unit-dir", u]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("systemctl disable --now hostform-drift.timer"));
    std::fs::remove_file(units.join("timers.target.wants/hostform-drift.timer")).unwrap();
    let o = hf(dir, &["timer", "remove", "--unit-dir", u]);
    assert_eq!(code(&o), 0);
    assert!(!units.join("hostform-drift.service").exists());
    assert!(!units.join("hostform-drift.timer").exists());
    let o = hf(dir, &["timer", "remove", "--unit-dir", u]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("nothing to remove"));
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.email=ops@example.org", "-c", "user.name=ops"])
        .args(args)
        .env_remove("GIT_DIR")
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen runs (openssh-client)")
        .success();
    assert!(ok);
}

#[test]
fn require_signed_accepts_only_commits_signed_by_allowed_keys() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let repo = dir.join("specs");
    std::fs::create_dir_all(&repo).unwrap();
    keygen(&dir.join("trusted"));
    keygen(&dir.join("stranger"));
    let pubkey = std::fs::read_to_string(dir.join("trusted.pub")).unwrap();
    std::fs::write(dir.join("allowed"), format!("ops@example.org {pubkey}")).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["config", "gpg.format", "ssh"]);
    std::fs::write(repo.join("t.yaml"), "host: t\n").unwrap();
    git(&repo, &["add", "."]);
    let signed = |key: &str, msg: &str| {
        let k = dir.join(key);
        git(
            &repo,
            &[
                "-c",
                &format!("user.signingkey={}", k.display()),
                "commit",
                "-q",
                "-S",
                "--allow-empty",
                "-m",
                msg,
            ],
        );
    };
    let apply = |extra: &[&str]| {
        let mut a = vec![
            "apply",
            "t.yaml",
            "--host",
            "t",
            "--auto-approve",
            "--require-signed",
            "--allowed-signers",
        ];
        let allowed = dir.join("allowed");
        let allowed = allowed.to_str().unwrap().to_string();
        a.push(&allowed);
        a.extend_from_slice(extra);
        hf(&repo, &a)
    };

    git(
        &repo,
        &[
            "-c",
            "commit.gpgsign=false",
            "commit",
            "-q",
            "-m",
            "unsigned",
        ],
    );
    let o = apply(&[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("apply: --require-signed: commit "),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(" is not signed; nothing was changed"),
        "{}",
        stderr(&o)
    );

    signed("stranger", "by a stranger");
    let o = apply(&[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("is signed by a key that is not in the allowed signers"),
        "{}",
        stderr(&o)
    );

    signed("trusted", "by ops");
    let o = apply(&[]);
    assert!(stdout(&o).starts_with("t.yaml @ "), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(": Good \"git\" signature for ops@example.org with ED25519 key"),
        "{}",
        stdout(&o)
    );
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));

    // --rev reaches back to the unsigned commit: refused.
    let o = apply(&["--rev", "HEAD~2"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("is not signed"), "{}", stderr(&o));

    // Uncommitted changes are not what was signed.
    std::fs::write(repo.join("t.yaml"), "host: t\n# edited\n").unwrap();
    let o = apply(&[]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("has uncommitted changes"),
        "{}",
        stderr(&o)
    );

    let j = journal(&repo);
    let outcomes: Vec<&str> = j.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        ["refused", "refused", "no-changes", "refused", "refused"]
    );
}

#[test]
fn unwritable_journal_plan_file_and_unreadable_journal_are_errors() {
    let (d, snap) = setup();
    let dir = d.path();
    // The state directory is a file: apply refuses before it reads anything.
    std::fs::write(dir.join("state"), "").unwrap();
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("apply: cannot write the journal "),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).ends_with("; nothing was changed\n"),
        "{}",
        stderr(&o)
    );
    // The journal is a directory: history cannot read it.
    let o = hostform(
        dir,
        &["history", "--state-dir", dir.join("bad").to_str().unwrap()],
    );
    assert_eq!(code(&o), 0, "no journal yet: nothing to show");
    std::fs::create_dir_all(dir.join("bad/journal.jsonl")).unwrap();
    let o = hostform(
        dir,
        &["history", "--state-dir", dir.join("bad").to_str().unwrap()],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("history: cannot read the journal "),
        "{}",
        stderr(&o)
    );
    // --out where no file can be written.
    let o = hf(
        dir,
        &[
            "plan",
            "t.yaml",
            "--host",
            "t",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "t.yaml/p.plan",
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with("plan: cannot save the plan to t.yaml/p.plan: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn apply_refuses_a_plan_made_by_another_build_and_journals_both() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["plan"]["hostform_version"], hostform::version::VERSION);
    assert_eq!(v["plan"]["hostform_build"], hostform::version::BUILD);
    // The same version, another build (as another commit or other uncommitted sources give);
    // then a plan that records no build (made before builds were recorded).
    let other = reseal(&text, |b| {
        b["hostform_build"] = serde_json::json!("0123456789ab")
    });
    std::fs::write(dir.join("other.plan"), other).unwrap();
    let unrecorded = reseal(&text, |b| {
        b.as_object_mut().unwrap().remove("hostform_build");
    });
    std::fs::write(dir.join("old.plan"), unrecorded).unwrap();
    for (file, build) in [
        ("other.plan", "0123456789ab"),
        ("old.plan", "build not recorded"),
    ] {
        let o = hf(dir, &["apply", file, "--host", "lab"]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        let want = format!(
            "the plan was made by hostform {} ({build}); this is hostform {}",
            hostform::version::VERSION,
            hostform::version::IDENTITY
        );
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    let j = journal(dir);
    assert_eq!(j.len(), 2);
    for r in &j {
        assert_eq!(r["outcome"], "refused");
        assert_eq!(r["hostform_version"], hostform::version::VERSION);
        assert_eq!(r["hostform_build"], hostform::version::BUILD);
    }
}

/// A saved plan edited and sealed again: the checksum recomputed, as anyone can.
fn reseal(text: &str, edit: impl Fn(&mut serde_json::Value)) -> String {
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut body = v["plan"].clone();
    edit(&mut body);
    let body = serde_json::to_string_pretty(&body).unwrap();
    format!(
        "{{\"hostform-saved-plan\": 1,\n\"sha256\": \"{}\",\n\"plan\": {body}\n}}\n",
        hostform::workflow::sha256_hex(body.as_bytes())
    )
}

fn first_op(body: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut body["plan"]["ops"][0]
}

#[test]
fn a_resealed_plan_runs_only_what_hostform_itself_produces() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();
    // Sealing again unedited is accepted: the test edits only what it names.
    std::fs::write(dir.join("same.plan"), reseal(&text, |_| {})).unwrap();
    assert_eq!(code(&hf(dir, &["show", "same.plan"])), 0);

    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "shell",
            Box::new(|b| {
                first_op(b)["argv"] = serde_json::json!(["sh", "-c", "touch /tmp/hf-owned"])
            }),
            "sh is not a program hostform runs",
        ),
        (
            "path",
            Box::new(|b| first_op(b)["argv"] = serde_json::json!(["../../tmp/x"])),
            "the program ../../tmp/x is a path",
        ),
        (
            "wipefs",
            Box::new(|b| {
                let op = first_op(b);
                op["argv"] = serde_json::json!(["wipefs", "-a", "/dev/vda"]);
                op["risk"] = serde_json::json!("destructive");
            }),
            "is destructive, and the plan was made without --allow-destroy",
        ),
        (
            "wipefs-safe",
            Box::new(|b| first_op(b)["argv"] = serde_json::json!(["wipefs", "-a", "/dev/vda"])),
            "is destructive, and the plan marks it safe",
        ),
        (
            "write",
            Box::new(|b| {
                let op = first_op(b);
                op["argv"] = serde_json::json!([]);
                op["write"] = serde_json::json!({
                    "path": "/etc/cron.d/hf", "content": "* * * * * root id\n",
                    "mode": 420, "diff": ""});
            }),
            "it writes /etc/cron.d/hf, which is not a file hostform manages",
        ),
    ];
    for (name, edit, says) in cases {
        let file = format!("{name}.plan");
        std::fs::write(dir.join(&file), reseal(&text, edit)).unwrap();
        for cmd in ["show", "apply"] {
            let o = hf(
                dir,
                &[cmd, &file, "--auto-approve"][..if cmd == "show" { 2 } else { 3 }],
            );
            assert_eq!(code(&o), 1, "{name} {cmd}: {}", stdout(&o));
            let e = stderr(&o);
            assert!(
                e.contains("is not a usable saved plan"),
                "{name} {cmd}: {e}"
            );
            assert!(
                e.contains("operation "),
                "{name} {cmd}: the op is named: {e}"
            );
            assert!(e.contains(says), "{name} {cmd}: {e}");
            assert!(stdout(&o).is_empty(), "{name} {cmd}: nothing shown");
        }
    }
    assert!(!Path::new("/tmp/hf-owned").exists());
    // Refused when loaded: nothing got as far as the journal.
    assert!(journal(dir).is_empty());
}

/// What the plan's vocabulary reads back from a saved plan is only what it writes: an id that
/// is not the canonical spelling of one, a guest stop of the wrong shape, an operation that
/// both runs a command and writes a file. Resealed (the checksum made to match), each is
/// refused when the plan is read, before anything runs.
#[test]
fn a_resealed_plan_with_a_forged_id_or_effect_is_not_read() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "verb",
            Box::new(|b| first_op(b)["id"] = serde_json::json!("10:disk:a:explode")),
            "not an operation id: \"10:disk:a:explode\"",
        ),
        (
            "spelling",
            Box::new(|b| first_op(b)["id"] = serde_json::json!("010:disk:a:table")),
            "not an operation id",
        ),
        (
            "after",
            Box::new(|b| first_op(b)["after"] = serde_json::json!(["anything"])),
            "not an operation id: \"anything\"",
        ),
        (
            "stop",
            Box::new(|b| {
                first_op(b)["argv"] =
                    serde_json::json!(["hostform-stop-guest", "libvirt", "qemu:///system", "g1"])
            }),
            "malformed guest stop",
        ),
        (
            "both",
            Box::new(|b| {
                first_op(b)["write"] = serde_json::json!({
                    "path": "/etc/network/interfaces.d/hostform", "content": "",
                    "mode": 420, "diff": ""});
            }),
            "both writes a file and runs a command",
        ),
    ];
    for (name, edit, says) in cases {
        let file = format!("{name}.plan");
        std::fs::write(dir.join(&file), reseal(&text, edit)).unwrap();
        for cmd in ["show", "apply"] {
            let o = hf(
                dir,
                &[cmd, &file, "--auto-approve"][..if cmd == "show" { 2 } else { 3 }],
            );
            assert_eq!(code(&o), 1, "{name} {cmd}: {}", stdout(&o));
            let e = stderr(&o);
            assert!(
                e.contains("is not a usable saved plan"),
                "{name} {cmd}: {e}"
            );
            assert!(e.contains(says), "{name} {cmd}: {e}");
            assert!(stdout(&o).is_empty(), "{name} {cmd}: nothing shown");
        }
    }
    assert!(journal(dir).is_empty());
}

#[test]
fn apply_plans_again_and_refuses_a_saved_plan_that_differs() {
    let (d, _) = setup();
    let dir = d.path();
    // This host, with a spec that changes nothing here: the state and spec checks pass.
    let o = hf(dir, &["plan", "t.yaml", "--host", "t", "--out", "t.plan"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("t.plan")).unwrap();
    let o = hf(dir, &["apply", "t.plan", "--host", "t"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // An operation hostform could produce, added by hand: the plan made now has none.
    let added = reseal(&text, |b| {
        b["plan"]["ops"] = serde_json::json!([{
            "id": "50:lv:vg0/x:create", "resource": "lv vg0/x", "summary": "create lv vg0/x",
            "argv": ["lvcreate", "--yes", "-n", "x", "-L", "8m", "vg0"], "risk": "safe",
            "writes_root": false, "after": [], "settle": false}]);
        b["empty"] = serde_json::json!(false);
        b["operations"] = serde_json::json!(1);
    });
    std::fs::write(dir.join("added.plan"), added).unwrap();
    // It is something hostform can produce: show prints it.
    assert_eq!(code(&hf(dir, &["show", "added.plan"])), 0);
    let o = hf(
        dir,
        &["apply", "added.plan", "--host", "t", "--auto-approve"],
    );
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let e = stderr(&o);
    assert!(
        e.contains("the saved plan is not the plan hostform makes now from the same spec and host")
            && e.contains("operation 50:lv:vg0/x:create is not in the plan made now")
            && e.contains("make a new plan: hostform plan"),
        "{e}"
    );
    assert!(!stdout(&o).contains("lvcreate"), "{}", stdout(&o));
    let j = journal(dir);
    assert_eq!(j.last().unwrap()["outcome"], "refused", "{j:?}");
}

#[test]
fn a_plan_made_with_allow_destroy_is_applied_with_it() {
    let (d, _) = setup();
    let dir = d.path();
    let o = hf(dir, &["plan", "t.yaml", "--host", "t", "--out", "t.plan"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // Made without it: it cannot gain it at apply.
    let o = hf(dir, &["apply", "t.plan", "--host", "t", "--allow-destroy"]);
    assert_eq!(code(&o), 64, "{}", stderr(&o));
    let o = hf(
        dir,
        &[
            "plan",
            "t.yaml",
            "--host",
            "t",
            "--allow-destroy",
            "--out",
            "d.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = hf(dir, &["apply", "d.plan", "--host", "t", "--allow-destroy"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

/// A journal line holding control characters (a hand-edited journal, or a tool's stderr with
/// escape sequences) is shown escaped by `history`: it cannot recolour or rewrite the terminal.
#[test]
fn history_escapes_control_characters_from_the_journal() {
    let (d, _) = setup();
    let dir = d.path();
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let path = dir.join("state/journal.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last_mut().unwrap();
    last["spec"] = serde_json::json!("t.yaml\u{1b}[2K\rall good");
    last["message"] = serde_json::json!("\u{1b}]0;owned\u{7}done");
    let out: String = lines
        .iter()
        .map(|l| format!("{}\n", serde_json::to_string(l).unwrap()))
        .collect();
    std::fs::write(&path, out).unwrap();
    let h = hf(dir, &["history", "--verbose"]);
    assert_eq!(code(&h), 0, "{}", stderr(&h));
    let s = stdout(&h);
    assert!(
        !s.contains('\u{1b}') && !s.contains('\r') && !s.contains('\u{7}'),
        "{s:?}"
    );
    assert!(s.contains("t.yaml\\u{1b}[2K\\rall good"), "{s}");
    assert!(s.contains("\\u{1b}]0;owned\\u{7}done"), "{s}");
}

/// A resealed saved plan whose strings hold escape sequences is shown escaped by `show`: the
/// reviewer of a plan artifact sees every byte, and nothing can hide a line.
#[test]
fn show_escapes_control_characters_of_a_saved_plan() {
    let (d, snap) = setup();
    let dir = d.path();
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--out",
            "p.plan",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("p.plan")).unwrap();
    let edited = reseal(&text, |b| {
        b["spec"]["label"] = serde_json::json!("lab.yaml\u{1b}[1A\u{1b}[2Kclean");
        b["plan"]["ops"][0]["summary"] = serde_json::json!("write\rnothing");
    });
    std::fs::write(dir.join("e.plan"), edited).unwrap();
    let o = hf(dir, &["show", "e.plan"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(!s.contains('\u{1b}') && !s.contains('\r'), "{s:?}");
    assert!(s.contains("lab.yaml\\u{1b}[1A\\u{1b}[2Kclean"), "{s}");
    assert!(s.contains("write\\rnothing"), "{s}");
}
