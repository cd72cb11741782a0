//! What every area of the tier shares: VM slots (at most `HOSTFORM_E2E_VMS` at once), the
//! HOSTFORM_E2E=require / CI=true rule that makes a machine without a sandbox a failure, and
//! running hostform.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Condvar, Mutex};

use hostform::sandbox;

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
pub fn vm() -> Option<Slots> {
    ready(take_slots(1))
}

/// Every slot: for the tests that run the sandbox in this process and check that this
/// process left no temporary files behind (another VM of this process would have some).
pub fn vm_alone() -> Option<Slots> {
    ready(take_slots(vm_slots()))
}

fn ready(slots: Slots) -> Option<Slots> {
    match sandbox::preflight() {
        Ok(()) => Some(slots),
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

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn hostform(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hostform"))
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run hostform")
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
