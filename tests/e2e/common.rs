//! What every area of the tier shares: VM slots (at most `HOSTFORM_E2E_VMS` at once), the
//! HOSTFORM_E2E=require / CI=true rule that makes a machine without a sandbox a failure, and
//! running hostform, and where each test's time went.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use hostform::sandbox::{self, SandboxOutcome};

/// How many VMs run at once: `HOSTFORM_E2E_VMS`, 2 by default (each VM has one vCPU; CI has two
/// cores). scripts/test runs the tier with as many test threads.
fn vm_slots() -> usize {
    std::env::var("HOSTFORM_E2E_VMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n >= 1)
        .unwrap_or(2)
}

/// VMs running now, out of `vm_slots()`.
static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// The right to run `n` VMs; given back when dropped.
pub struct Slots(usize);

impl Drop for Slots {
    fn drop(&mut self) {
        let mut r = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
        *r -= self.0;
        FREED.notify_all();
    }
}

fn take_slots(n: usize) -> Slots {
    let mut r = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    while *r + n > vm_slots().max(n) {
        r = FREED.wait(r).unwrap_or_else(|p| p.into_inner());
    }
    *r += n;
    Slots(n)
}

/// A VM slot, or an explanation of why this machine cannot run the tier.
pub fn vm() -> Option<Vm> {
    ready(take_slots(1))
}

/// Every slot: for the tests that run the sandbox in this process and check that this
/// process left no temporary files behind (another VM of this process would have some).
pub fn vm_alone() -> Option<Vm> {
    ready(take_slots(vm_slots()))
}

fn ready(slots: Slots) -> Option<Vm> {
    match sandbox::preflight() {
        Ok(()) => {
            RUNS.take();
            Some(Vm {
                _slots: slots,
                started: Instant::now(),
            })
        }
        Err(e) => {
            let required = std::env::var("HOSTFORM_E2E").as_deref() == Ok("require")
                || std::env::var("CI").as_deref() == Ok("true");
            assert!(!required, "the end-to-end tier cannot run here: {e}");
            eprintln!(
                "\n!!! END-TO-END TEST NOT RUN: {e}\n!!! (HOSTFORM_E2E=require makes this a failure)\n"
            );
            None
        }
    }
}

thread_local! {
    /// This test's sandbox runs so far: how many, their time to ready, their whole time.
    static RUNS: Cell<(u32, Duration, Duration)> = Cell::default();
}

/// A test's VM slots, taken once they were free. When the test ends, passed or failed, they are
/// given back, and one line says where its time went (captured by the test harness, shown with
/// `--nocapture`):
/// `e2e-timing NAME boot=Xs setup=? in-vm=Ys total=Zs boots=N`.
/// `boot` is the sandbox runs' time to ready (qemu start to the guest ready for the command),
/// `in-vm` the rest of those runs (the command inside, then power-off), `total` the test from
/// its slots on, `boots` the runs counted. `setup` (building what the test does not itself
/// test) is not measured: the harness cannot tell it from the command's other work.
pub struct Vm {
    _slots: Slots,
    started: Instant,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let (boots, boot, whole) = RUNS.take();
        eprintln!(
            "\ne2e-timing {} boot={:.1}s setup=? in-vm={:.1}s total={:.1}s boots={boots}",
            std::thread::current().name().unwrap_or("?"),
            boot.as_secs_f64(),
            whole.saturating_sub(boot).as_secs_f64(),
            self.started.elapsed().as_secs_f64(),
        );
    }
}

fn note(ready: Duration, total: Duration) {
    RUNS.with(|r| {
        let (n, b, w) = r.get();
        r.set((n + 1, b + ready, w + total));
    });
}

/// Counts a `hostform sandbox` run by its closing line on stderr,
/// `sandbox: command exited with status N (ready in Xs, total Ys)`.
pub fn note_sandbox_run(stderr: &str) {
    let secs = |s: &str| s.trim().strip_suffix('s')?.parse::<f64>().ok();
    for l in stderr.lines() {
        let Some((_, rest)) = l.split_once("sandbox: command exited with status ") else {
            continue;
        };
        let Some((ready, total)) = rest
            .split_once("(ready in ")
            .and_then(|(_, r)| r.strip_suffix(')')?.split_once(", total "))
        else {
            continue;
        };
        if let (Some(r), Some(t)) = (secs(ready), secs(total)) {
            note(Duration::from_secs_f64(r), Duration::from_secs_f64(t));
        }
    }
}

/// Counts a sandbox run made in this process.
pub fn note_outcome(o: &SandboxOutcome) {
    note(o.boot_ready, o.total);
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn hostform(dir: &Path, args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_hostform"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run hostform");
    note_sandbox_run(&text(&o.stderr));
    o
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn between<'a>(out: &'a str, tag: &str) -> &'a str {
    let start = format!("=={tag}==\n");
    let end = format!("==/{tag}==");
    out.split(&start)
        .nth(1)
        .and_then(|s| s.split(&end).next())
        .unwrap_or_else(|| panic!("no {tag} section in:\n{out}"))
}
