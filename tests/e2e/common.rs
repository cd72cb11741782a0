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

/// Where a test's time went so far (its sandbox runs).
#[derive(Clone, Copy, Default)]
struct Runs {
    /// Sandbox runs counted.
    n: u32,
    /// qemu start to the guest ready for the command.
    boot: Duration,
    /// What the sandbox set up for the spec (libvirtd, network files), and what the test's
    /// script marked as setup: building what the test does not itself test.
    setup: Duration,
    /// What the test's script marked as waiting (a rollback window, a guest's timeout).
    wait: Duration,
    /// The runs' whole time.
    whole: Duration,
}

thread_local! {
    static RUNS: Cell<Runs> = Cell::default();
}

/// A test's VM slots, taken once they were free. When the test ends, passed or failed, they are
/// given back, and one line says where its time went (captured by the test harness, shown with
/// `--nocapture`; `scripts/e2e` collects them):
/// `e2e-timing NAME boot=Xs setup=Xs tools=Xs wait=Xs total=Xs boots=N`.
/// `boot` is the sandbox runs' time to ready; `setup` what the sandbox set up for the spec plus
/// what the test's script marked as setup (`e2e-setup SECONDS` lines: building a stack the test
/// does not itself test); `wait` what it marked as waiting (`e2e-wait SECONDS`); `tools` the
/// rest of the runs (hostform and the tools it runs, then power-off); `total` the test from its
/// slots on, its own work on the build machine included; `boots` the runs counted (a run cut
/// off by a signal or a timeout is not).
pub struct Vm {
    _slots: Slots,
    started: Instant,
}

impl Drop for Vm {
    fn drop(&mut self) {
        let r = RUNS.take();
        let tools = r.whole.saturating_sub(r.boot + r.setup + r.wait);
        eprintln!(
            "\ne2e-timing {} boot={:.1}s setup={:.1}s tools={:.1}s wait={:.1}s total={:.1}s boots={}",
            std::thread::current().name().unwrap_or("?"),
            r.boot.as_secs_f64(),
            r.setup.as_secs_f64(),
            tools.as_secs_f64(),
            r.wait.as_secs_f64(),
            self.started.elapsed().as_secs_f64(),
            r.n,
        );
    }
}

fn add(f: impl FnOnce(&mut Runs)) {
    RUNS.with(|c| {
        let mut r = c.get();
        f(&mut r);
        c.set(r);
    });
}

fn secs(s: &str) -> Option<Duration> {
    let v: f64 = s.trim().trim_end_matches('s').parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v))
}

/// Counts a `hostform sandbox` run by its closing line on stderr,
/// `sandbox: command exited with status N (ready in Xs[, set up in Ys], total Zs)`.
pub fn note_sandbox_run(stderr: &str) {
    let mut hosts_seen = 0;
    for l in stderr.lines() {
        // A cluster's sandbox names each host: `sandbox: HOST: command exited …`. Its hosts
        // run side by side, so only the first one's run is counted, as the cluster test does.
        let Some((_, after)) = l.split_once("sandbox: ") else {
            continue;
        };
        let Some((host, rest)) = after.split_once("command exited with status ") else {
            continue;
        };
        if !host.is_empty() {
            if !host.ends_with(": ") {
                continue;
            }
            hosts_seen += 1;
            if hosts_seen > 1 {
                continue;
            }
        }
        let Some(fields) = rest.split_once('(').and_then(|(_, r)| r.strip_suffix(')')) else {
            continue;
        };
        let (mut ready, mut set_up, mut total) = (None, None, None);
        for f in fields.split(", ") {
            if let Some(v) = f.strip_prefix("ready in ") {
                ready = secs(v);
            } else if let Some(v) = f.strip_prefix("set up in ") {
                set_up = secs(v);
            } else if let Some(v) = f.strip_prefix("total ") {
                total = secs(v);
            }
        }
        if let (Some(b), Some(t)) = (ready, total) {
            add(|r| {
                r.n += 1;
                r.boot += b;
                r.setup += set_up.unwrap_or_default();
                r.whole += t;
            });
        }
    }
}

/// Adds what a test's script marked on its output: `e2e-setup SECONDS` and
/// `e2e-wait SECONDS` lines (see [`MARK`]).
pub fn note_marks(stdout: &str) {
    for l in stdout.lines() {
        if let Some(v) = l.trim().strip_prefix("e2e-setup ").and_then(secs) {
            add(|r| r.setup += v);
        } else if let Some(v) = l.trim().strip_prefix("e2e-wait ").and_then(secs) {
            add(|r| r.wait += v);
        }
    }
}

/// Shell functions for a test's script inside the VM: `mark_start` starts a phase,
/// `mark setup` / `mark wait` prints the seconds since as `e2e-setup S` / `e2e-wait S`.
pub const MARK: &str = r#"mark_start() { hf_t0=$(cut -d' ' -f1 /proc/uptime); }
mark() { awk -v t0="$hf_t0" -v k="$1" '{ printf "e2e-%s %.1f\n", k, $1 - t0 }' /proc/uptime; }
"#;

/// Counts a sandbox run made in this process.
pub fn note_outcome(o: &SandboxOutcome) {
    add(|r| {
        r.n += 1;
        r.boot += o.boot_ready;
        r.setup += o.provided.unwrap_or_default();
        r.whole += o.total;
    });
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
    note_marks(&text(&o.stdout));
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
