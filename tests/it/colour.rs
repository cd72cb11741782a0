//! Colour only on a terminal, and never with NO_COLOR set (https://no-color.org): in hostform's
//! plan, validate, drift and show output, in clap's help, and in the scripts' messages (which
//! CI logs keep). A terminal comes from script(1) (util-linux), which runs a command on a
//! pseudo-terminal and copies what it printed.

use crate::common::*;
use std::path::Path;
use std::process::{Command, Output};

const ESC: char = '\u{1b}';

const LAB: &str = "host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0:
    pvs: [a]
    lvs:
      data: { size: 64MiB, fs: ext4 }
";

/// An environment with no colour setting at all: what hostform does then is its own choice.
fn bare(cmd: &mut Command, dir: &Path) {
    cmd.current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("COLUMNS")
        .env_remove("HOSTFORM_TIMINGS")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env("TERM", "xterm")
        // script(1) runs its command with $SHELL, which a CI runner may leave unset (then
        // /bin/sh, which is not bash on Debian).
        .env("SHELL", "/bin/bash")
        .env("HOSTFORM_STATE_DIR", dir.join("state"))
        .env("HOSTFORM_LOCK_DIR", dir.join("lock"));
}

fn bin() -> String {
    env!("CARGO_BIN_EXE_hostform").to_string()
}

/// hostform with stdout and stderr piped (not a terminal), no NO_COLOR.
fn piped(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    bare(&mut cmd, dir);
    cmd.args(args).output().unwrap()
}

/// A shell command line run on a pseudo-terminal (stdout and stderr both), with `env` added:
/// everything it printed, or None where script(1) is missing.
fn on_terminal(dir: &Path, line: &str, env: &[(&str, &str)]) -> Option<String> {
    let mut cmd = Command::new("script");
    bare(&mut cmd, dir);
    cmd.envs(env.iter().copied())
        .args(["-q", "-e", "-c", line, "/dev/null"])
        .stdin(std::process::Stdio::null());
    let o = cmd.output().ok()?;
    Some(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The spec, a snapshot, a saved plan and an invalid spec, in `dir`.
fn setup(dir: &Path) -> String {
    std::fs::write(dir.join("lab.yaml"), LAB).unwrap();
    std::fs::write(
        dir.join("bad.yaml"),
        "host: lab\ndisks:\n  a: { serail: X }\n",
    )
    .unwrap();
    let snap = snapshot_of(dir, "blank", "lab").display().to_string();
    let o = hf(
        dir,
        &["plan", "lab.yaml", "--against", &snap, "--out", "p.plan"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    snap
}

/// The commands whose output is checked, with the exit status each gives.
fn commands(snap: &str) -> Vec<(Vec<String>, i32)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    vec![
        (s(&["plan", "lab.yaml", "--against", snap]), 0),
        (s(&["validate", "bad.yaml"]), 1),
        (
            s(&["drift", "lab.yaml", "--against", snap, "--log", "stderr"]),
            2,
        ),
        (s(&["show", "p.plan"]), 0),
    ]
}

#[test]
fn no_escape_off_a_terminal_even_without_no_color() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let snap = setup(dir);
    for (args, status) in commands(&snap) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = piped(dir, &args);
        assert_eq!(code(&o), status, "{args:?}: {}", stderr(&o));
        assert!(!stdout(&o).is_empty() || !stderr(&o).is_empty(), "{args:?}");
        assert!(!stdout(&o).contains(ESC), "{args:?}: {}", stdout(&o));
        assert!(!stderr(&o).contains(ESC), "{args:?}: {}", stderr(&o));
    }
    // `--color always` does colour a pipe: the check above would see escapes.
    let o = piped(
        dir,
        &["--color", "always", "plan", "lab.yaml", "--against", &snap],
    );
    assert!(stdout(&o).contains(ESC), "{}", stdout(&o));
    let o = piped(dir, &["--color=always", "validate", "bad.yaml"]);
    assert!(stderr(&o).contains(ESC), "{}", stderr(&o));
    // clap's help and usage errors follow the same rule.
    let o = piped(dir, &["plan", "--help"]);
    assert!(!stdout(&o).contains(ESC), "{}", stdout(&o));
    let o = piped(dir, &["plan", "--agains", "x"]);
    assert_eq!(code(&o), 64);
    assert!(!stderr(&o).contains(ESC), "{}", stderr(&o));
    let o = piped(dir, &["--color", "always", "plan", "--help"]);
    assert!(stdout(&o).contains(ESC), "{}", stdout(&o));
}

#[test]
fn no_color_is_respected_on_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let snap = setup(dir);
    let hostform = bin();
    for (args, _) in commands(&snap) {
        let line = format!("{hostform} {}", args.join(" "));
        let Some(coloured) = on_terminal(dir, &line, &[]) else {
            eprintln!("script(1) is missing: colour on a terminal not checked");
            return;
        };
        // On a terminal, without NO_COLOR: colour (a plan, a diagnostic); the drift report and
        // `show`'s header are plain text in any case.
        if args[0] == "plan" || args[0] == "validate" {
            assert!(coloured.contains(ESC), "{line}: {coloured}");
        }
        for env in [("NO_COLOR", "1"), ("NO_COLOR", "yes")] {
            let out = on_terminal(dir, &line, &[env]).unwrap();
            assert!(!out.trim().is_empty(), "{line}");
            assert!(!out.contains(ESC), "{line} {env:?}: {out}");
        }
        // `--color never` on a terminal, without NO_COLOR.
        let never = format!("{hostform} --color never {}", args.join(" "));
        let out = on_terminal(dir, &never, &[]).unwrap();
        assert!(!out.contains(ESC), "{never}: {out}");
    }
    let help = format!("{hostform} --color never plan --help");
    let out = on_terminal(dir, &help, &[]).unwrap();
    assert!(out.contains("Usage:") && !out.contains(ESC), "{out}");
    let help = format!("{hostform} plan --help");
    let out = on_terminal(dir, &help, &[("NO_COLOR", "1")]).unwrap();
    assert!(out.contains("Usage:") && !out.contains(ESC), "{out}");
}

/// scripts/lib.sh's `say` and `loud`: plain text into a pipe (a CI log), colour on a terminal
/// unless NO_COLOR is set.
#[test]
fn script_messages_are_coloured_only_on_a_terminal() {
    let lib = root().join("scripts/lib.sh").display().to_string();
    let line = format!(". '{lib}'; say hello; loud careful");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();

    let mut cmd = Command::new("bash");
    bare(&mut cmd, dir);
    let o = cmd.args(["-c", &line]).output().unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(stderr(&o), "==> hello\n\n!!! careful\n\n");

    // Through a pipe, from a terminal (`2>&1 | cat`, as a CI runner's log sees it).
    let piped_line = format!("( {line} ) 2>&1 | cat");
    let Some(out) = on_terminal(dir, &piped_line, &[]) else {
        eprintln!("script(1) is missing: colour on a terminal not checked");
        return;
    };
    assert!(out.contains("==> hello") && !out.contains(ESC), "{out:?}");

    let out = on_terminal(dir, &line, &[]).unwrap();
    assert!(out.contains("==> hello") && out.contains(ESC), "{out:?}");
    let out = on_terminal(dir, &line, &[("NO_COLOR", "1")]).unwrap();
    assert!(out.contains("==> hello") && !out.contains(ESC), "{out:?}");
}
