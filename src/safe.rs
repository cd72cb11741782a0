//! The safe path for changes that can cut the operator off (`hostform apply --confirm-within`):
//! save the network's state and the previous content of the files the plan writes, arm a
//! rollback that does not depend on the applying process, apply, verify, and keep the change
//! only when it is confirmed in time (`hostform confirm` from a new session, or `yes` on the
//! terminal). Otherwise, or when the gateway stops answering, the saved state comes back.
//!
//! The rollback is armed before anything changes, outside the applying process:
//! - with systemd as PID 1, a transient timer: `systemd-run --unit hostform-rollback-ID
//!   --on-active=Ns hostform rollback --state FILE`;
//! - otherwise a detached `hostform rollback --wait --state FILE` child in its own session,
//!   immune to SIGHUP, whose standard streams go to a log file: it outlives the applying
//!   process, its terminal and its SSH session.
//!
//! One lock file serialises the parties; whoever takes the pending state first (apply at the
//! deadline, the detached waiter, the timer, `hostform confirm`) decides, the others find it gone.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::kinds::net::{self, Link, NetFacts, Route};
use crate::runner::{RunError, Runner};

/// Default state directory: on disk (/var/lib), so a pending change survives a reboot and
/// is rolled back at boot (see [`BOOT_UNIT`]).
pub const DEFAULT_STATE_DIR: &str = crate::workflow::DEFAULT_STATE_DIR;

/// The state directory: `--state-dir`, else `$HOSTFORM_STATE_DIR`, else /var/lib/hostform.
pub fn state_dir(arg: Option<&Path>) -> PathBuf {
    arg.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("HOSTFORM_STATE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

pub fn pending_path(dir: &Path) -> PathBuf {
    dir.join("pending.json")
}
pub fn result_path(dir: &Path) -> PathBuf {
    dir.join("result.json")
}
pub fn log_path(dir: &Path) -> PathBuf {
    dir.join("rollback.log")
}

/// How the rollback was armed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timer {
    /// A systemd transient timer unit (`UNIT.timer`).
    Systemd { unit: String },
    /// A detached `hostform rollback --wait` process.
    Process { pid: u32 },
    /// Not armed yet.
    None,
}

/// A change waiting for confirmation: what to go back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub format_version: u32,
    /// Unique per apply: `<unix millis>-<pid>`.
    pub id: String,
    /// Unix time in milliseconds after which the change is rolled back.
    pub deadline_ms: u64,
    /// The network before the change.
    pub net: NetFacts,
    /// Files the plan writes, with their previous content (`None`: did not exist).
    pub files: BTreeMap<String, Option<String>>,
    pub timer: Timer,
    /// The spec's bridges: a rollback deletes a bridge that was not there only if it is one
    /// of these (a bridge libvirt made meanwhile is not hostform's to remove).
    #[serde(default)]
    pub bridges: Vec<String>,
    /// The boot the change was applied in (/proc/sys/kernel/random/boot_id): a pending
    /// change of another boot was never confirmed, and its timer died with that boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The process of the apply that made the change: its journal record is closed by the
    /// rollback at boot when the reboot cut that apply off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_pid: Option<u32>,
}

/// The current boot's id, if the kernel says.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Whether `p` was applied in a boot other than `now`: the host rebooted before it was
/// confirmed.
pub fn from_another_boot(p: &Pending, now: Option<&str>) -> bool {
    matches!((&p.boot_id, now), (Some(b), Some(n)) if b != n)
}

/// Why a pending change blocks, in an operator's words.
pub fn explain_pending(p: &Pending, now: Option<&str>) -> String {
    if from_another_boot(p, now) {
        format!(
            "change {} was applied before the last reboot and never confirmed; its rollback timer did not survive the reboot (`hostform rollback` restores the files from before it, `hostform confirm` keeps it)",
            p.id
        )
    } else {
        format!(
            "change {} is still waiting for confirmation (`hostform confirm` or `hostform rollback` first)",
            p.id
        )
    }
}

/// The unit that rolls back, early at boot, a change that was never confirmed before a
/// reboot: before network-pre.target, so the network services read the old files.
pub const BOOT_UNIT: &str = "hostform-rollback-at-boot.service";

/// The text of [`BOOT_UNIT`].
pub fn boot_unit(exe: &str, dir: &Path) -> String {
    let pending = pending_path(dir);
    format!(
        "[Unit]\n\
         Description=Roll back a hostform network change not confirmed before the reboot\n\
         DefaultDependencies=no\n\
         After=local-fs.target\n\
         Before=network-pre.target\n\
         Wants=network-pre.target\n\
         RequiresMountsFor={dir}\n\
         ConditionPathExists={pending}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={exe} rollback --at-boot --state-dir {dir}\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        dir = dir.display(),
        pending = pending.display(),
    )
}

/// Install and enable [`BOOT_UNIT`] (systemd hosts): written with the runner, enabled with
/// `systemctl enable` (a link; nothing starts now).
pub fn install_boot_unit(dir: &Path, exe: &str, r: &dyn Runner) -> Result<(), String> {
    let path = format!("/etc/systemd/system/{BOOT_UNIT}");
    r.write_file(&path, &boot_unit(exe, dir), 0o644)
        .map_err(|e| format!("cannot install {BOOT_UNIT}: {e}"))?;
    r.check(&["systemctl", "--quiet", "enable", BOOT_UNIT])
        .map_err(|e| format!("cannot enable {BOOT_UNIT}: {e}"))?;
    Ok(())
}

/// Put back the files of `p` only (at boot: the running network is the one the boot made
/// from the files, nothing to undo at runtime). Returns the steps done.
pub fn restore_files(r: &dyn Runner, p: &Pending) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let mut errors = Vec::new();
    for (path, old) in &p.files {
        let res = match old {
            Some(c) => r.write_file(path, c, 0o644),
            None => r.remove_file(path),
        };
        done.push(format!(
            "{} {path}",
            if old.is_some() { "restore" } else { "remove" }
        ));
        if let Err(e) = res {
            errors.push(e.to_string());
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(errors.join("\n"))
    }
}

/// What became of a pending change (result.json).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: String,
    /// `confirmed`, `rolled-back` or `rollback-failed`.
    pub outcome: String,
    pub by: String,
    pub detail: String,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Hold the state directory's lock while `f` runs.
pub fn locked<T>(dir: &Path, f: impl FnOnce() -> T) -> Result<T, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| format!("{}: {e}", dir.join("lock").display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
    let out = f();
    let _ = lock.unlock();
    Ok(out)
}

pub fn read_pending(dir: &Path) -> Result<Option<Pending>, String> {
    let p = pending_path(dir);
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| format!("{}: not a pending change: {e}", p.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

pub fn write_pending(dir: &Path, p: &Pending) -> Result<(), String> {
    let text = serde_json::to_string_pretty(p).map_err(|e| e.to_string())?;
    crate::runner::write_atomically(&pending_path(dir), text.as_bytes(), 0o600)
        .map_err(|e| format!("{}: {e}", pending_path(dir).display()))
}

pub fn read_outcome(dir: &Path) -> Option<Outcome> {
    std::fs::read_to_string(result_path(dir))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
}

/// Record what became of change `id` (result.json).
pub fn record_outcome(dir: &Path, id: &str, outcome: &str, by: &str, detail: &str) {
    write_outcome(
        dir,
        &Outcome {
            id: id.into(),
            outcome: outcome.into(),
            by: by.into(),
            detail: detail.into(),
        },
    );
}

fn write_outcome(dir: &Path, o: &Outcome) {
    if let Ok(t) = serde_json::to_string_pretty(o) {
        let _ = crate::runner::write_atomically(&result_path(dir), t.as_bytes(), 0o600);
    }
}

pub fn log(dir: &Path, msg: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir))
    {
        let _ = writeln!(f, "[{}] {msg}", now_ms());
    }
}

/// Whether systemd is PID 1 (then the rollback is a transient timer).
pub fn systemd_is_init() -> bool {
    std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
        && crate::runner::find_program("systemd-run").is_some()
}

/// The transient timer that rolls back after `secs` seconds (its service runs
/// `hostform rollback --state FILE`).
pub fn systemd_run_argv(unit: &str, secs: u64, exe: &str, state: &str) -> Vec<String> {
    [
        "systemd-run",
        &format!("--unit={unit}"),
        &format!("--on-active={secs}s"),
        "--timer-property=AccuracySec=1s",
        "--collect",
        exe,
        "rollback",
        "--state",
        state,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Arm the rollback for `pending` (already written): a systemd timer, or a detached waiter.
pub fn arm(dir: &Path, pending: &mut Pending, r: &dyn Runner) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find hostform itself: {e}"))?;
    let exe = exe.to_string_lossy().into_owned();
    let state = pending_path(dir).to_string_lossy().into_owned();
    let secs = pending.deadline_ms.saturating_sub(now_ms()).div_ceil(1000);
    if systemd_is_init() {
        // A reboot before the deadline kills the timer: the boot unit rolls back instead.
        install_boot_unit(dir, &exe, r)?;
        let unit = format!("hostform-rollback-{}", pending.id);
        let argv = systemd_run_argv(&unit, secs, &exe, &state);
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        r.check(&argv)
            .map_err(|e| format!("cannot arm the rollback timer: {e}"))?;
        pending.timer = Timer::Systemd { unit };
    } else {
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path(dir))
            .map_err(|e| format!("{}: {e}", log_path(dir).display()))?;
        let logf2 = logf
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path(dir).display()))?;
        let child = std::process::Command::new(&exe)
            .args(["rollback", "--wait", "--state", &state])
            .stdin(std::process::Stdio::null())
            .stdout(logf)
            .stderr(logf2)
            .spawn()
            .map_err(|e| format!("cannot start the rollback waiter: {e}"))?;
        pending.timer = Timer::Process { pid: child.id() };
        // Not waited for: it outlives this process (its exit is reaped by init).
        drop(child);
    }
    write_pending(dir, pending)
}

/// Detach the current process from its terminal and session, so that a dropped SSH
/// session or a killed parent does not take it along.
#[allow(unsafe_code)]
pub fn detach() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code; nothing runs in signal context.
    let _ = unsafe { signal(Signal::SIGHUP, SigHandler::SigIgn) };
    let _ = nix::unistd::setsid();
}

/// The state directory's lock, held by `apply` while it changes the host, so the rollback
/// never runs in the middle of the change (a killed apply releases it).
pub struct Held(std::fs::File);

pub fn hold(dir: &Path) -> Result<Held, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| format!("{}: {e}", dir.join("lock").display()))?;
    f.lock()
        .map_err(|e| format!("cannot lock {}: {e}", dir.display()))?;
    Ok(Held(f))
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Take the pending change if it is still `id` (or any, with `None`), under the lock, and
/// remove it: from then on, this caller decides its fate.
pub fn take(dir: &Path, id: Option<&str>) -> Result<Option<Pending>, String> {
    locked(dir, || take_held(dir, id))?
}

/// [`take`] for a caller that already holds the lock ([`hold`]).
pub fn take_held(dir: &Path, id: Option<&str>) -> Result<Option<Pending>, String> {
    let Some(p) = read_pending(dir)? else {
        return Ok(None);
    };
    if id.is_some_and(|i| i != p.id) {
        return Ok(None);
    }
    std::fs::remove_file(pending_path(dir))
        .map_err(|e| format!("{}: {e}", pending_path(dir).display()))?;
    Ok(Some(p))
}

/// Confirm: keep the change. Stops a systemd timer; a detached waiter finds nothing to do.
pub fn confirm(dir: &Path, r: &dyn Runner, by: &str) -> Result<Option<Pending>, String> {
    let Some(p) = take(dir, None)? else {
        return Ok(None);
    };
    if let Timer::Systemd { unit } = &p.timer {
        let t = format!("{unit}.timer");
        let _ = r.run(&["systemctl", "stop", &t]);
    }
    write_outcome(
        dir,
        &Outcome {
            id: p.id.clone(),
            outcome: "confirmed".into(),
            by: by.into(),
            detail: String::new(),
        },
    );
    log(dir, &format!("{} confirmed by {by}", p.id));
    Ok(Some(p))
}

/// The comparable shape of the network: links (kind, master, MTU, up, addresses, STP) and the
/// routes, sorted. Two readings with the same shape are the same state.
pub fn shape(n: &NetFacts) -> (BTreeMap<String, Link>, Vec<Route>) {
    let mut routes = n.routes.clone();
    routes.sort();
    (n.links.clone(), routes)
}

/// The differences between two states, for people; empty when they are the same.
pub fn differences(want: &NetFacts, have: &NetFacts) -> Vec<String> {
    differences_within(want, have, None)
}

/// [`differences`], except that with `Some(scope)` a link that appeared is a difference only
/// when `scope` names it (links created meanwhile by others, e.g. a guest's interface, are not
/// the change's doing).
pub fn differences_within(
    want: &NetFacts,
    have: &NetFacts,
    scope: Option<&[String]>,
) -> Vec<String> {
    let (wl, wr) = shape(want);
    let (hl, hr) = shape(have);
    let mut out = Vec::new();
    for (n, l) in &wl {
        match hl.get(n) {
            None => out.push(format!("link {n} is missing")),
            Some(h) if h != l => out.push(format!("link {n}: was {l:?}, now {h:?}")),
            _ => {}
        }
    }
    for n in hl.keys().filter(|n| !wl.contains_key(*n)) {
        if scope.is_none_or(|s| s.iter().any(|x| x == n)) {
            out.push(format!("link {n} was not there"));
        }
    }
    for r in wr.iter().filter(|r| !hr.contains(r)) {
        out.push(format!("route {r:?} is missing"));
    }
    for r in hr.iter().filter(|r| !wr.contains(r)) {
        out.push(format!("route {r:?} was not there"));
    }
    out
}

fn step(r: &dyn Runner, argv: &[&str], errors: &mut Vec<String>, done: &mut Vec<String>) {
    done.push(crate::runner::show_argv(argv));
    if let Err(e) = r.check(argv) {
        errors.push(e.to_string());
    }
}

fn route_args(rt: &Route) -> Vec<String> {
    let mut a = vec![rt.dst.clone()];
    if let Some(g) = &rt.gateway {
        a.extend(["via".into(), g.clone()]);
    }
    if let Some(d) = &rt.dev {
        a.extend(["dev".into(), d.clone()]);
    }
    if let Some(p) = &rt.protocol {
        a.extend(["proto".into(), p.clone()]);
    }
    if let Some(s) = &rt.scope {
        a.extend(["scope".into(), s.clone()]);
    }
    if let Some(s) = &rt.prefsrc {
        a.extend(["src".into(), s.clone()]);
    }
    if let Some(m) = rt.metric {
        a.extend(["metric".into(), m.to_string()]);
    }
    a
}

/// Bring the network and the files back to `p`'s saved state, then read the host again and
/// compare. Returns the commands run; an error lists what could not be restored.
pub fn restore(r: &dyn Runner, p: &Pending) -> Result<Vec<String>, String> {
    let saved = &p.net;
    let mut errors = Vec::new();
    let mut done = Vec::new();
    let now = net::discover(r)?;
    // Bridges the change created go (their ports are released, their addresses go too).
    for (n, l) in &now.links {
        if l.is_bridge() && !saved.links.contains_key(n) && p.bridges.contains(n) {
            step(r, &["ip", "link", "del", "dev", n], &mut errors, &mut done);
        }
    }
    // Bridges the change deleted come back (their ports, addresses and routes follow below).
    for (n, was) in &saved.links {
        if was.is_bridge() && !now.links.contains_key(n) {
            let stp = if was.stp == Some(true) { "1" } else { "0" };
            step(
                r,
                &[
                    "ip",
                    "link",
                    "add",
                    "name",
                    n,
                    "type",
                    "bridge",
                    "stp_state",
                    stp,
                ],
                &mut errors,
                &mut done,
            );
        }
    }
    let now = net::discover(r)?;
    for (n, was) in &saved.links {
        let Some(is) = now.links.get(n) else {
            errors.push(format!("link {n} is gone and cannot be recreated"));
            continue;
        };
        if was.master != is.master {
            match &was.master {
                None => step(
                    r,
                    &["ip", "link", "set", "dev", n, "nomaster"],
                    &mut errors,
                    &mut done,
                ),
                Some(m) => step(
                    r,
                    &["ip", "link", "set", "dev", n, "master", m],
                    &mut errors,
                    &mut done,
                ),
            }
        }
        if was.stp.is_some() && was.stp != is.stp {
            let v = if was.stp == Some(true) { "1" } else { "0" };
            step(
                r,
                &[
                    "ip",
                    "link",
                    "set",
                    "dev",
                    n,
                    "type",
                    "bridge",
                    "stp_state",
                    v,
                ],
                &mut errors,
                &mut done,
            );
        }
    }
    // MTUs after the masters (enslaving changes a bridge's MTU), then the up/down state.
    let now = net::discover(r)?;
    for (n, was) in &saved.links {
        let Some(is) = now.links.get(n) else { continue };
        if was.mtu != is.mtu {
            let m = was.mtu.to_string();
            step(
                r,
                &["ip", "link", "set", "dev", n, "mtu", &m],
                &mut errors,
                &mut done,
            );
        }
        if was.up != is.up {
            let s = if was.up { "up" } else { "down" };
            step(
                r,
                &["ip", "link", "set", "dev", n, s],
                &mut errors,
                &mut done,
            );
        }
    }
    // Addresses.
    let now = net::discover(r)?;
    for (n, was) in &saved.links {
        let Some(is) = now.links.get(n) else { continue };
        for a in was.addresses.iter().filter(|a| !is.addresses.contains(a)) {
            let a = a.to_string();
            step(
                r,
                &["ip", "addr", "add", &a, "dev", n],
                &mut errors,
                &mut done,
            );
        }
        for a in is.addresses.iter().filter(|a| !was.addresses.contains(a)) {
            let a = a.to_string();
            step(
                r,
                &["ip", "addr", "del", &a, "dev", n],
                &mut errors,
                &mut done,
            );
        }
    }
    // Routes the kernel does not make by itself.
    let now = net::discover(r)?;
    for rt in now
        .routes
        .iter()
        .filter(|x| !x.is_kernel() && !saved.routes.contains(x))
    {
        let mut argv = vec!["ip".to_string(), "route".into(), "del".into()];
        argv.extend(route_args(rt));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        step(r, &argv, &mut errors, &mut done);
    }
    for rt in saved
        .routes
        .iter()
        .filter(|x| !x.is_kernel() && !now.routes.contains(x))
    {
        let mut argv = vec!["ip".to_string(), "route".into(), "replace".into()];
        argv.extend(route_args(rt));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        step(r, &argv, &mut errors, &mut done);
    }
    // Files.
    match restore_files(r, p) {
        Ok(d) => done.extend(d),
        Err(e) => errors.push(e),
    }
    // Verify.
    let mut diffs = Vec::new();
    for _ in 0..5 {
        let now = net::discover(r)?;
        diffs = differences_within(saved, &now, Some(&p.bridges));
        if diffs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    errors.extend(diffs);
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(errors.join("\n"))
    }
}

/// Roll back `p` (already taken) and record the outcome.
pub fn roll_back(dir: &Path, r: &dyn Runner, p: &Pending, by: &str) -> Result<Vec<String>, String> {
    log(dir, &format!("{}: rolling back ({by})", p.id));
    let res = restore(r, p);
    let (outcome, detail) = match &res {
        Ok(done) => ("rolled-back", done.join("; ")),
        Err(e) => ("rollback-failed", e.clone()),
    };
    log(dir, &format!("{}: {outcome}: {detail}", p.id));
    write_outcome(
        dir,
        &Outcome {
            id: p.id.clone(),
            outcome: outcome.into(),
            by: by.into(),
            detail,
        },
    );
    res
}

/// Whether the gateway answers one ping (`ping -c1 -W1`).
pub fn gateway_answers(r: &dyn Runner, gw: &str) -> bool {
    r.run(&["ping", "-n", "-q", "-c1", "-W1", gw])
        .is_ok_and(|o| o.status == 0)
}

/// Run errors as text.
pub fn err(e: RunError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::runner as fx;

    #[test]
    fn the_same_state_has_no_differences_and_a_bridge_is_one() {
        let a = net::discover(&fx("addressed")).unwrap();
        let b = net::discover(&fx("bridge")).unwrap();
        assert!(differences(&a, &a).is_empty());
        let d = differences(&a, &b);
        assert!(d.iter().any(|l| l == "link br0 was not there"), "{d:?}");
        assert!(d.iter().any(|l| l.starts_with("link eth0: was")), "{d:?}");
        assert!(
            d.iter().any(|l| l.contains("route") && l.contains("eth0")),
            "{d:?}"
        );
        // A link that appeared counts only when it is one of the spec's bridges.
        let mut c = a.clone();
        c.links.insert("virbr0".into(), b.links["br0"].clone());
        assert!(differences_within(&a, &c, Some(&[])).is_empty());
        assert_eq!(
            differences_within(&a, &c, Some(&["virbr0".to_string()])),
            ["link virbr0 was not there"]
        );
    }

    #[test]
    fn a_change_of_an_earlier_boot_is_told_apart_and_explained() {
        let p = Pending {
            format_version: 1,
            id: "1-2".into(),
            deadline_ms: 0,
            net: NetFacts::default(),
            files: BTreeMap::new(),
            timer: Timer::None,
            bridges: vec![],
            boot_id: Some("b1".into()),
            apply_pid: None,
        };
        assert!(!from_another_boot(&p, Some("b1")));
        assert!(from_another_boot(&p, Some("b2")));
        assert!(
            !from_another_boot(&p, None),
            "no boot id: never guessed stale"
        );
        let old = Pending {
            boot_id: None,
            ..p.clone()
        };
        assert!(!from_another_boot(&old, Some("b2")));
        assert!(
            explain_pending(&p, Some("b2"))
                .contains("applied before the last reboot and never confirmed")
        );
        assert!(explain_pending(&p, Some("b1")).contains("still waiting for confirmation"));
        // A pending.json written before boot ids were recorded still reads.
        let j = serde_json::to_string(&old).unwrap();
        assert!(!j.contains("boot_id"));
        assert_eq!(serde_json::from_str::<Pending>(&j).unwrap(), old);
    }

    #[test]
    fn the_boot_unit_runs_before_the_network_reads_its_files() {
        let u = boot_unit("/usr/bin/hostform", Path::new("/var/lib/hostform"));
        for line in [
            "Before=network-pre.target",
            "Wants=network-pre.target",
            "DefaultDependencies=no",
            "ConditionPathExists=/var/lib/hostform/pending.json",
            "ExecStart=/usr/bin/hostform rollback --at-boot --state-dir /var/lib/hostform",
            "WantedBy=multi-user.target",
        ] {
            assert!(u.lines().any(|l| l == line), "{line}: {u}");
        }
    }

    #[test]
    fn pending_changes_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = Pending {
            format_version: 1,
            id: "1-2".into(),
            deadline_ms: now_ms() + 1000,
            net: NetFacts::default(),
            files: BTreeMap::new(),
            timer: Timer::None,
            bridges: vec![],
            boot_id: Some("b1".into()),
            apply_pid: None,
        };
        write_pending(dir.path(), &p).unwrap();
        assert_eq!(read_pending(dir.path()).unwrap(), Some(p.clone()));
        assert!(take(dir.path(), Some("other")).unwrap().is_none());
        assert_eq!(take(dir.path(), Some("1-2")).unwrap(), Some(p.clone()));
        assert!(take(dir.path(), None).unwrap().is_none(), "taken once");
        write_pending(dir.path(), &p).unwrap();
        let r = fx("blank");
        assert!(confirm(dir.path(), &r, "test").unwrap().is_some());
        assert_eq!(read_outcome(dir.path()).unwrap().outcome, "confirmed");
        assert!(confirm(dir.path(), &r, "test").unwrap().is_none());
        std::fs::write(pending_path(dir.path()), "{").unwrap();
        assert!(read_pending(dir.path()).is_err());
    }

    #[test]
    fn the_systemd_timer_runs_the_rollback_of_this_state_file() {
        assert_eq!(
            systemd_run_argv(
                "hostform-rollback-1-2",
                60,
                "/usr/bin/hostform",
                "/run/hostform/pending.json"
            )
            .join(" "),
            "systemd-run --unit=hostform-rollback-1-2 --on-active=60s --timer-property=AccuracySec=1s --collect /usr/bin/hostform rollback --state /run/hostform/pending.json"
        );
    }

    #[test]
    fn routes_are_restored_with_their_attributes() {
        let b = net::discover(&fx("bridge")).unwrap();
        assert_eq!(
            route_args(&b.routes[0]).join(" "),
            "default via 192.0.2.1 dev br0"
        );
        assert_eq!(
            route_args(&b.routes[1]).join(" "),
            "192.0.2.0/24 dev br0 proto kernel scope link src 192.0.2.10"
        );
    }
}
