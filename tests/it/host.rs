//! The host identity check: a spec for `lab` is planned, applied and checked for drift only on
//! lab (its hostname, or the host a snapshot was taken on), or where the operator says
//! `--host lab`; a saved plan is applied only on the host it was made for. A refusal exits 1,
//! names the spec's `host:` line, and changes nothing.

use crate::common::*;
use std::path::Path;

/// A spec that asks for storage: applying it anywhere would change something.
const LAB: &str = "version: 1
host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0:
    pvs: [a]
    lvs:
      data: { size: 64MiB, fs: ext4 }
";

/// This machine's hostname, as hostform reads it (`None` when unset).
fn this_host() -> Option<String> {
    hostform::workflow::host::read_hostname(&hostform::runner::RealRunner::new())
}

/// A name this machine does not have.
const ELSEWHERE: &str = "hf-elsewhere-7q";

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("lab.yaml"), LAB).unwrap();
    assert!(
        this_host().is_none_or(|h| !hostform::workflow::host::same(&h, ELSEWHERE)),
        "this machine is called {ELSEWHERE}"
    );
    d
}

fn journal_outcomes(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("state/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| r["outcome"].as_str().unwrap_or_default().to_string())
        .filter(|o| o != "started")
        .collect()
}

#[test]
fn a_snapshot_of_another_host_is_refused_by_plan_and_drift_and_nothing_is_saved() {
    let d = setup();
    let dir = d.path();
    let snap = snapshot_of(dir, "blank", "lab2");
    let snap = snap.to_str().unwrap();
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", snap, "--out", "p.plan"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error[host]: this spec is for host `lab`, but the snapshot {snap} was taken on `lab2`\n"
        )),
        "{err}"
    );
    // Where the spec says so, and what to do.
    assert!(err.contains("--> lab.yaml:2:7"), "{err}");
    assert!(
        err.contains("hint: compare it with a snapshot of lab, or say --host lab if this snapshot stands for lab"),
        "{err}"
    );
    assert!(
        err.ends_with("lab.yaml: refused by the host check; no plan was made\n"),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert!(!dir.join("p.plan").exists());

    // drift: an error (1), never drift (2) nor in sync (0).
    let o = hf(
        dir,
        &["drift", "lab.yaml", "--against", snap, "--log", "stderr"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("error[host]: this spec is for host `lab`, but the snapshot"));
    assert!(
        stderr(&o).contains("; drift was not checked"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

#[test]
fn plan_as_json_reports_the_mismatch_with_code_host() {
    let d = setup();
    let dir = d.path();
    let snap = snapshot_of(dir, "blank", "lab2");
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    let e = &v["specs"][0]["errors"][0];
    assert_eq!(e["code"], "host", "{v}");
    assert_eq!(e["line"], 2, "{v}");
    assert_eq!(e["column"], 7, "{v}");
    assert_eq!(e["source_line"], "host: lab", "{v}");
    assert!(e["message"].as_str().unwrap().contains("taken on `lab2`"));
    assert!(e["hint"].as_str().unwrap().contains("--host lab"));
    assert_eq!(v["specs"][0]["errors"].as_array().unwrap().len(), 1);
}

#[test]
fn short_names_match_full_names_and_case_does_not_count() {
    let d = setup();
    let dir = d.path();
    for (spec_host, taken_on, ok) in [
        ("lab", "lab.example.org", true),
        ("lab.example.org", "lab", true),
        ("LAB", "lab.Example.ORG", true),
        ("lab.a.example", "lab.b.example", false),
        ("lab", "lab2", false),
        ("lab", "laboratory.example.org", false),
    ] {
        std::fs::write(dir.join("s.yaml"), LAB.replace("lab", spec_host)).unwrap();
        let snap = snapshot_of(dir, "blank", taken_on);
        let o = hf(
            dir,
            &["plan", "s.yaml", "--against", snap.to_str().unwrap()],
        );
        assert_eq!(
            code(&o) == 0,
            ok,
            "spec {spec_host}, snapshot of {taken_on}: {}",
            stderr(&o)
        );
        assert_eq!(stderr(&o).contains("error[host]"), !ok, "{}", stderr(&o));
    }
}

#[test]
fn host_overrides_the_recorded_host_but_must_name_the_specs_host() {
    let d = setup();
    let dir = d.path();
    let snap = snapshot_of(dir, "blank", "lab2");
    let snap = snap.to_str().unwrap();
    // The operator says this snapshot stands for lab.
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", snap, "--host", "lab"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("create vg0/data"), "{}", stdout(&o));
    let o = hf(
        dir,
        &[
            "plan",
            "lab.yaml",
            "--against",
            snap,
            "--host",
            "lab.example.org",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // --host names this host, and a spec for another host is still refused.
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", snap, "--host", "lab2"],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).starts_with(
            "error[host]: this spec is for host `lab`, but --host says this is `lab2`\n"
        ),
        "{}",
        stderr(&o)
    );
    // Not a host name: a usage error.
    for bad in ["", "lab 2", "-lab", "lab..org", "lab_2"] {
        let o = hf(dir, &["plan", "lab.yaml", "--against", snap, "--host", bad]);
        assert_eq!(code(&o), 64, "--host {bad:?}: {}", stderr(&o));
    }
}

#[test]
fn a_snapshot_without_a_recorded_host_needs_host() {
    let d = setup();
    let dir = d.path();
    // As discovery writes it where no hostname is set: `host: discovered`.
    let r = hostform::runner::ReplayRunner::open(root().join("tests/fixtures/blank")).unwrap();
    let found = hostform::discover::discover(&r).unwrap();
    assert_eq!(found.spec.host.value, "discovered");
    let snap = dir.join("nameless.json");
    std::fs::write(&snap, serde_json::to_string(&found).unwrap()).unwrap();
    let snap = snap.to_str().unwrap();
    let o = hf(dir, &["plan", "lab.yaml", "--against", snap]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(
        err.contains("nameless.json records no host (it was taken where no hostname was set)"),
        "{err}"
    );
    assert!(
        err.contains("hint: say --host lab if the snapshot is of lab"),
        "{err}"
    );
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", snap, "--host", "lab"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn plan_apply_and_drift_on_this_machine_refuse_a_spec_for_another_host() {
    let d = setup();
    let dir = d.path();
    std::fs::write(
        dir.join("other.yaml"),
        LAB.replace("host: lab", &format!("host: {ELSEWHERE}")),
    )
    .unwrap();
    let said = match this_host() {
        Some(h) => format!("but this is `{h}`\n"),
        None => "but this host has no name".to_string(),
    };
    let want = format!("error[host]: this spec is for host `{ELSEWHERE}`, {said}");
    let o = hf(dir, &["plan", "other.yaml"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with(&want), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("--host {ELSEWHERE}")),
        "{}",
        stderr(&o)
    );
    let o = hf(dir, &["drift", "other.yaml", "--log", "stderr"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with(&want), "{}", stderr(&o));

    // apply: refused before the host is read, nothing changed, and journaled as refused.
    let o = hf(dir, &["apply", "other.yaml", "--auto-approve"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).starts_with(&want), "{}", stderr(&o));
    assert!(
        stderr(&o).ends_with("apply: other.yaml: refused by the host check; nothing was changed\n"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert_eq!(journal_outcomes(dir), ["refused"]);

    // A timer that would be refused at every run is not installed.
    let units = dir.join("units");
    let o = hf(
        dir,
        &[
            "timer",
            "install",
            "other.yaml",
            "--unit-dir",
            units.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no timer was installed"),
        "{}",
        stderr(&o)
    );
    assert!(!units.join("hostform-drift.service").exists());
}

#[test]
fn host_lets_this_machine_take_a_spec_and_a_saved_plan_runs_only_there() {
    let d = setup();
    let dir = d.path();
    // A spec that changes nothing on any machine: applied here, taken as host t.
    std::fs::write(dir.join("t.yaml"), "host: t\n").unwrap();
    let o = hf(dir, &["apply", "t.yaml", "--host", "t", "--auto-approve"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = hf(dir, &["plan", "t.yaml", "--host", "t", "--out", "t.plan"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("t.plan")).unwrap()).unwrap();
    assert_eq!(saved["plan"]["host"], "t");
    assert!(stdout(&hf(dir, &["show", "t.plan"])).contains("  made for:    host t\n"));
    assert_eq!(
        code(&hf(dir, &["apply", "t.plan", "--host", "t"])),
        0,
        "the host it was made for"
    );
    // Without --host this machine is not t: refused, whatever the spec says.
    let o = hf(dir, &["apply", "t.plan"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("apply: error[host]: the plan in "),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("t.plan was made for host `t`, but this is"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).ends_with("apply: nothing was changed\n"),
        "{}",
        stderr(&o)
    );
    // Nor as another host.
    let o = hf(dir, &["apply", "t.plan", "--host", ELSEWHERE]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "was made for host `t`, but this is `{ELSEWHERE}` (--host)"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        journal_outcomes(dir),
        ["no-changes", "no-changes", "refused", "refused"]
    );
}

#[test]
fn a_plan_made_from_a_snapshot_of_lab_is_refused_elsewhere() {
    let d = setup();
    let dir = d.path();
    let snap = snapshot_of(dir, "blank", "lab.example.org");
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
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("p.plan")).unwrap()).unwrap();
    assert_eq!(saved["plan"]["host"], "lab.example.org");
    // Taken as another lab (same short name, another domain): refused before anything else.
    let o = hf(dir, &["apply", "p.plan", "--host", "lab.example.net"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "was made for host `lab.example.org`, but this is `lab.example.net` (--host)"
        ),
        "{}",
        stderr(&o)
    );
    // As lab (its short name), the host check passes and the state check refuses: this
    // machine is not the blank capture.
    let o = hf(dir, &["apply", "p.plan", "--host", "lab"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("apply: the host changed since the plan was made"),
        "{}",
        stderr(&o)
    );
}

/// `start` refuses another host's spec before asking any hypervisor; `shutdown` says so and
/// goes on (it runs as the host powers off: refusing would leave the guests to be killed).
#[test]
fn start_refuses_another_hosts_spec_and_shutdown_warns() {
    let d = setup();
    let dir = d.path();
    std::fs::write(
        dir.join("g.yaml"),
        format!(
            "host: {ELSEWHERE}\nvm-defaults: {{ hypervisor: libvirt, memory: 64MiB }}\nvms:\n  a: {{}}\n"
        ),
    )
    .unwrap();
    let o = hf(dir, &["start", "g.yaml"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("error[host]") && e.contains("no guest started"),
        "{e}"
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    let o = hf(dir, &["shutdown", "g.yaml", "--dry-run"]);
    let e = stderr(&o);
    assert!(
        e.contains("error[host]") && e.contains("WARNING: this spec is not this host's"),
        "{e}"
    );
    // Told which host this is, neither complains about the host.
    for cmd in ["start", "shutdown"] {
        let o = hf(dir, &[cmd, "g.yaml", "--dry-run", "--host", ELSEWHERE]);
        assert!(!stderr(&o).contains("error[host]"), "{cmd}: {}", stderr(&o));
    }
}
