//! The sandbox itself: a VM shaped like the spec, its default run (plan, apply, an empty second
//! plan), the inner exit status and output, where hostform runs from inside, timeouts, kept
//! images, Ctrl-C.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hostform::sandbox::{self, SandboxConfig, SandboxDisk, SandboxError};

use crate::common::*;

fn leftover_temp_dirs(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("hostform-sandbox-{pid}-");
    fs::read_dir(std::env::temp_dir())
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

const SHAPED: &str = "host: lab
disks:
  sys:
    id: /dev/disk/by-id/nvme-Samsung_SSD_980_500GB_S64DNX0R123456
    size: 500GB
  data:
    serial: HF-E2E-DATA
bridges:
  br0: { ports: [eth0] }
  br1: { ports: [mgmt0] }
";

/// The VM has the spec's disks under the spec's stable names (partitions included, as udev
/// names them on real hardware), at the scaled sizes, and NICs named as the bridge ports.
#[test]
fn the_sandbox_is_shaped_like_the_spec() {
    let Some(_vm) = vm() else { return };
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("lab.yaml"), SHAPED).unwrap();
    let script = "set -e
id=/dev/disk/by-id/nvme-Samsung_SSD_980_500GB_S64DNX0R123456
echo 'label: gpt
size=4MiB, type=21686148-6449-6E6F-744E-656564454649' | sfdisk -q $id
udevadm settle
test -b $id-part1 && echo PART-ALIAS-OK
test -b /dev/disk/by-id/virtio-HF-E2E-DATA && echo SERIAL-OK
lsblk -bdno NAME,SIZE | tr -s ' '
ip -br link | cut -d' ' -f1 | sort | tr '\\n' ' '";
    let o = hostform(
        dir.path(),
        &[
            "sandbox",
            "lab.yaml",
            "--disk-size",
            "1GiB",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("PART-ALIAS-OK"), "{out}");
    assert!(out.contains("SERIAL-OK"), "{out}");
    // 500 GB / 1000 (the default scale) rounded up to MiB; the data disk takes --disk-size.
    assert!(
        out.contains(&format!("vda {}", 500_000_000u64.div_ceil(1 << 20) << 20)),
        "{out}"
    );
    assert!(out.contains(&format!("vdb {}", 1u64 << 30)), "{out}");
    assert!(out.contains("eth0 lo mgmt0"), "{out}");
}

/// By default the sandbox runs this very hostform binary inside: plan, apply, and a second plan
/// that must be empty. From blank disks to the whole stack of the domain's host, verified.
#[test]
fn blank_disks_to_the_full_stack_and_an_empty_second_plan() {
    let Some(_vm) = vm() else { return };
    let keep = tempfile::tempdir().unwrap();
    let keep_s = keep.path().to_str().unwrap();
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--keep",
            keep_s,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(
        out.contains("Verified: the host matches the spec (11 operations applied)."),
        "{out}"
    );
    let second = out
        .split("== second plan (must be empty)")
        .nth(1)
        .expect("second plan ran");
    assert!(
        second.contains(
            "Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, 7 unchanged; 0 operations."
        ),
        "{second}"
    );
    // The kept disks boot again: udev assembles the array and activates the LVs, and hostform
    // adopts them: nothing to do, nothing reformatted.
    let script = "$H plan tests/specs/e2e/lab.yaml --detailed-exitcode; echo plan=$?; $H apply tests/specs/e2e/lab.yaml --auto-approve | tail -1"
        .replace("$H", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--keep",
            keep_s,
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("plan=0"), "{out}");
    assert!(
        out.contains("Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, 7 unchanged"),
        "{out}"
    );
    assert!(
        out.contains("No changes: the host matches the spec."),
        "{out}"
    );
}

#[test]
fn the_inner_exit_status_is_returned_and_output_streamed() {
    let Some(_vm) = vm_alone() else { return };
    let mut cfg = SandboxConfig::new(root(), vec!["sh".into(), "-c".into(), "echo out; echo err >&2; test -b /dev/disk/by-id/virtio-T_1 && ip link show lan0 >/dev/null && exit 7".into()]);
    cfg.timeout = Duration::from_secs(180);
    cfg.disks = vec![SandboxDisk {
        serial: "T 1".into(),
        size_bytes: 64 << 20,
        by_id_aliases: Vec::new(),
    }];
    cfg.nics = vec!["lan0".into()];
    let mut out = Vec::new();
    let outcome = sandbox::run(&cfg, &mut out).expect("sandbox run");
    note_outcome(&outcome);
    assert_eq!(outcome.exit_code, 7);
    assert_eq!(text(&out), "out\nerr\n");
    assert_eq!(outcome.disks[0].serial, "T_1");
    assert!(outcome.boot_ready <= outcome.total);
    eprintln!("boot to ready: {:?}", outcome.boot_ready);
    assert!(leftover_temp_dirs(std::process::id()).is_empty());
}

/// hostform runs inside from the path it has on the host, even where the guest mounts its own
/// filesystem: a copy under /tmp (a CI clone, `cargo install --root /tmp/...`), in a directory
/// whose name needs quoting for both the guest's shell and qemu, with the workdir elsewhere.
#[test]
fn hostform_under_tmp_runs_inside_from_the_same_path() {
    let Some(_vm) = vm() else { return };
    let bin = tempfile::tempdir_in("/tmp").unwrap();
    let exe = bin.path().join("odd, 'dir' $(x)").join("hostform");
    fs::create_dir(exe.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_hostform"), &exe).unwrap();
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("lab.yaml"), "host: lab\n").unwrap();
    let exe_str = exe.to_str().unwrap();
    let o = Command::new(&exe)
        .current_dir(work.path())
        .args([
            "sandbox",
            "lab.yaml",
            "--timeout",
            "3m",
            "--",
            exe_str,
            "--version",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run the copy of hostform");
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    note_sandbox_run(&err);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    // The same binary outside says the same (its version and build).
    let here = Command::new(&exe).arg("--version").output().unwrap();
    assert!(
        text(&here.stdout).starts_with("hostform "),
        "{}",
        text(&here.stdout)
    );
    assert_eq!(out, text(&here.stdout), "{err}");
}

#[test]
fn a_timeout_kills_qemu_and_cleans_up() {
    let Some(_vm) = vm_alone() else { return };
    let mut cfg = SandboxConfig::new(root(), vec!["sleep".into(), "600".into()]);
    cfg.timeout = Duration::from_secs(8);
    cfg.disks = vec![SandboxDisk {
        serial: "T-2".into(),
        size_bytes: 64 << 20,
        by_id_aliases: Vec::new(),
    }];
    let err = sandbox::run(&cfg, &mut Vec::new()).expect_err("must time out");
    assert!(matches!(err, SandboxError::Timeout { .. }), "{err}");
    assert!(leftover_temp_dirs(std::process::id()).is_empty());
}

/// A disk kept from an earlier run is attached as it was (the basis of "a re-used image is
/// adopted, not reformatted").
#[test]
fn kept_images_are_reused() {
    let Some(_vm) = vm() else { return };
    let keep = tempfile::tempdir().unwrap();
    let disk = SandboxDisk {
        serial: "KEEP-1".into(),
        size_bytes: 16 << 20,
        by_id_aliases: Vec::new(),
    };
    let mut cfg = SandboxConfig::new(
        root(),
        vec![
            "sh".into(),
            "-c".into(),
            "printf hostform-mark | dd of=/dev/vda bs=512 conv=notrunc,fsync 2>/dev/null".into(),
        ],
    );
    cfg.timeout = Duration::from_secs(180);
    cfg.disks = vec![disk];
    cfg.keep = Some(keep.path().to_path_buf());
    let first = sandbox::run(&cfg, &mut Vec::new()).expect("first run");
    note_outcome(&first);
    assert_eq!(first.exit_code, 0);
    assert!(!first.disks[0].reused);
    cfg.command = vec!["sh".into(), "-c".into(), "head -c 13 /dev/vda".into()];
    let mut out = Vec::new();
    let second = sandbox::run(&cfg, &mut out).expect("second run");
    note_outcome(&second);
    assert!(second.disks[0].reused);
    assert_eq!(text(&out), "hostform-mark");
}

/// Ctrl-C on `hostform sandbox` stops qemu and removes the temporary images.
#[test]
#[allow(unsafe_code)]
fn ctrl_c_stops_qemu_and_removes_temporary_files() {
    let Some(_vm) = vm() else { return };
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("lab.yaml"),
        "host: lab\ndisks:\n  d: { serial: HF-INT, size: 64MiB }\n",
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hostform"));
    cmd.current_dir(dir.path())
        .args([
            "sandbox",
            "lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            "echo started; sleep 600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // Ctrl-C reaches a program run in the foreground. A test runner started in the background
    // by a non-interactive shell (`… &`) inherits SIGINT ignored, and hostform keeps an
    // inherited ignore, as nohup expects: give the child the terminal's default instead.
    // SAFETY: between fork and exec the child only calls sigaction(2), which is
    // async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGINT,
                nix::sys::signal::SigHandler::SigDfl,
            )
            .map(|_| ())
            .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "started\n");
    assert!(
        !leftover_temp_dirs(pid).is_empty(),
        "the run has its temporary directory"
    );
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(
        leftover_temp_dirs(pid).is_empty(),
        "temporary files left behind"
    );
    // No qemu of that run is left (its command line names the run's temporary directory).
    let qemus = Command::new("pgrep")
        .args(["-f", &format!("hostform-sandbox-{pid}-")])
        .output()
        .unwrap();
    assert!(
        qemus.stdout.is_empty(),
        "qemu still running: {}",
        text(&qemus.stdout)
    );
}

/// The example specs, each with what it waits for before the sandbox can host all of it: the
/// parts the sandbox leaves out of it (and says so). Each has its own test below, so that the
/// tier runs them side by side.
const EXAMPLES: &[(&str, &[&str])] = &[
    ("dom0.yaml", &[]),
    ("kvm1.yaml", &[]),
    ("minimal.yaml", &[]),
];

/// Example specs tried by another example's test: the sandbox of a cluster host boots every
/// host of its cluster, and each applies its own spec.
const PEERS: &[(&str, &str)] = &[("kvm2.yaml", "kvm1.yaml")];

/// Every spec in specs/ is in [`EXAMPLES`] or [`PEERS`], so a new example cannot go untried.
#[test]
fn every_example_spec_has_a_sandbox_test() {
    let mut specs: Vec<String> = fs::read_dir(root().join("specs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    specs.sort();
    let mut known: Vec<&str> = EXAMPLES.iter().map(|(s, _)| *s).collect();
    for (peer, by) in PEERS {
        assert!(
            known.contains(by),
            "{peer} is tried by {by}, which is no example"
        );
        known.push(peer);
    }
    known.sort();
    assert_eq!(specs, known);
}

#[test]
fn example_dom0_runs_in_the_sandbox_with_defaults() {
    example("dom0.yaml", &[]);
}

/// The cluster example as a user tries it: `hostform sandbox specs/kvm1.yaml`, no flags,
/// boots kvm1 and the peer its cluster names (specs/kvm2.yaml, next to it) with the shared
/// LUN; each host applies with nothing left out and nothing refused, verifies, and plans again
/// to nothing; kvm1 creates the shared VG and kvm2 then starts its lockspace.
#[test]
fn example_kvm1_runs_in_the_sandbox_with_defaults() {
    let Some(out) = example("kvm1.yaml", &["kvm1", "kvm2"]) else {
        return;
    };
    let ran = |host: &str, what: &str| {
        out.lines().any(|l| {
            l.starts_with(&format!("[{host}] ["))
                && l.contains(" ok (")
                && l.contains(&format!(") {what}"))
        })
    };
    assert!(ran("kvm1", "create volume group vgshared"), "{out}");
    assert!(
        ran("kvm2", "start the lockspace of vgshared on this host"),
        "{out}"
    );
}

#[test]
fn example_minimal_runs_in_the_sandbox_with_defaults() {
    example("minimal.yaml", &[]);
}

/// An example spec as a new user runs it: `hostform sandbox SPEC` with no flags applies
/// (showing its plan) and plans again to nothing, with no refusal, leaving out only what [`EXAMPLES`]
/// says the spec waits for, and saying so in every plan's header. For a cluster host,
/// `hosts` names every host the sandbox boots, and each one's output (its lines
/// `[HOST] …`) must show the same. The sandbox's stdout, or `None` when the tier does not run.
fn example(spec: &str, hosts: &[&str]) -> Option<String> {
    let _vm = vm()?;
    let path = format!("specs/{spec}");
    let o = hostform(&root(), &["sandbox", &path]);
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{spec}:\n{err}\n{out}");
    let awaited: &[&str] = EXAMPLES
        .iter()
        .find(|(s, _)| *s == spec)
        .map_or(&[], |(_, a)| *a);
    let left: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("sandbox: "))
        .filter_map(|l| l.split_once("left out: ").map(|(_, a)| a))
        .collect();
    assert_eq!(left, awaited, "{spec}: what the sandbox left out\n{err}");
    assert!(!out.contains("refused"), "{spec}: a refusal\n{out}");
    let parts: Vec<(&str, Vec<&str>)> = if hosts.is_empty() {
        vec![(spec, out.lines().collect())]
    } else {
        hosts
            .iter()
            .map(|h| {
                let tag = format!("[{h}] ");
                let mine = out.lines().filter_map(|l| l.strip_prefix(&tag)).collect();
                (*h, mine)
            })
            .collect()
    };
    for (who, lines) in &parts {
        let headers: Vec<&&str> = lines
            .iter()
            .filter(|l| l.ends_with(" against this host:"))
            .collect();
        assert_eq!(headers.len(), 2, "{who}: apply's plan, second plan\n{out}");
        for h in &headers {
            assert!(h.contains("(sandbox: capacities divided by 1000"), "{h}");
            for a in awaited {
                assert!(h.contains(&format!("left out: {a}")), "{h}");
            }
        }
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("Verified: the host matches the spec (")),
            "{who}:\n{out}"
        );
        let second = lines
            .iter()
            .position(|l| *l == "== second plan (must be empty)")
            .unwrap_or_else(|| panic!("{who}: no second plan\n{out}"));
        assert!(
            lines[second..]
                .iter()
                .any(|l| l
                    .starts_with("Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, ")),
            "{who}: second plan\n{out}"
        );
    }
    Some(out)
}
