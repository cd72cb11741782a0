//! Running the order: `hostform shutdown` stops the guests stage by stage (the guests of a
//! stage side by side, one thread each), each with its own timeout and then the spec's
//! `on-timeout` policy; `hostform start` starts them in the reverse order. Every event is
//! logged with a UTC timestamp as it happens; a summary closes the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{Order, Stage, timeout_secs};
use crate::kinds::guest::{GuestConfig, Lifecycle};
use crate::kinds::libvirt::Virsh;
use crate::kinds::xen::Xl;
use crate::plan::vocab::GuestStop;
use crate::runner::{RunError, Runner, show_argv};
use crate::spec::Spec;
use crate::spec::types::{Hypervisor, OnTimeout, VmState};

/// `2026-11-23T08:44:05.123Z` for a time since the Unix epoch.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Where the run's log lines go: standard error, and a file if asked. Write errors are
/// ignored: the terminal or SSH session may be gone, the run must go on.
pub struct Log {
    pub start: Instant,
    file: Option<Mutex<std::fs::File>>,
    pub lines: Mutex<Vec<String>>,
    pub quiet: bool,
}

impl Log {
    pub fn new(file: Option<std::fs::File>) -> Self {
        Log {
            start: Instant::now(),
            file: file.map(Mutex::new),
            lines: Mutex::new(Vec::new()),
            quiet: false,
        }
    }
    pub fn event(&self, msg: &str) {
        let line = format!(
            "{} +{:.1}s {msg}",
            rfc3339(SystemTime::now()),
            self.start.elapsed().as_secs_f64()
        );
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        if let Some(f) = &self.file
            && let Ok(mut f) = f.lock()
        {
            let _ = writeln!(f, "{line}");
            let _ = f.flush();
        }
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
    }
}

/// How one guest's stop (or start) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Stopped cleanly within its timeout.
    Stopped,
    /// Still running after its timeout: forced off (`on-timeout: destroy`).
    Destroyed,
    /// Was not running.
    NotRunning,
    /// Started (`hostform start`).
    Started,
    /// Already running (`hostform start`).
    AlreadyRunning,
    /// A command failed, or the timeout passed with `on-timeout: fail`.
    Failed,
    /// Not attempted: an earlier failure stopped the sequence.
    Skipped,
    /// `--dry-run`: would be stopped (or started).
    Planned,
    /// `--dry-run`: its hypervisor could not be listed.
    Unknown,
}

#[derive(Debug, Clone, Serialize)]
pub struct GuestResult {
    pub name: String,
    pub stage: String,
    pub outcome: Outcome,
    /// Seconds since the run started.
    pub began_s: f64,
    pub ended_s: f64,
    pub began: String,
    pub ended: String,
    pub took_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub format_version: u32,
    pub host: String,
    pub action: &'static str,
    pub dry_run: bool,
    pub ok: bool,
    pub took_s: f64,
    pub stages: Vec<Stage>,
    pub guests: Vec<GuestResult>,
}

/// The backends the spec's guests use, built on one runner.
pub struct Backends<'a> {
    pub xl: Option<Xl<'a>>,
    pub virsh: Option<Virsh<'a>>,
}

impl<'a> Backends<'a> {
    pub fn for_spec(spec: &Spec, runner: &'a dyn Runner) -> Self {
        let uses = |h: Hypervisor| {
            spec.vms
                .values()
                .any(|v| v.hypervisor.as_ref().is_some_and(|x| x.value == h))
        };
        Backends {
            xl: uses(Hypervisor::Xen).then(|| {
                Xl::new(
                    runner,
                    spec.xen.config_dir.as_ref().map(|d| d.value.as_str()),
                )
            }),
            virsh: uses(Hypervisor::Libvirt)
                .then(|| Virsh::new(runner, spec.libvirt.uri.as_ref().map(|u| u.value.as_str()))),
        }
    }

    fn all(&self) -> Vec<&dyn Lifecycle> {
        let mut v: Vec<&dyn Lifecycle> = Vec::new();
        if let Some(x) = &self.xl {
            v.push(x);
        }
        if let Some(x) = &self.virsh {
            v.push(x);
        }
        v
    }

    /// Running guests, each with the backend that runs it; a backend that cannot list is
    /// reported in the log and left out.
    fn running(&self, log: &Log) -> (BTreeMap<String, &dyn Lifecycle>, Vec<&'static str>) {
        let mut out = BTreeMap::new();
        let mut unlisted = Vec::new();
        for b in self.all() {
            match b.running() {
                Ok(names) => {
                    for n in names {
                        out.insert(n, b);
                    }
                }
                Err(e) => {
                    log.event(&format!("cannot list the {} guests: {e}", b.tool()));
                    unlisted.push(b.tool());
                }
            }
        }
        (out, unlisted)
    }

    fn of(&self, spec: &Spec, name: &str) -> Option<&dyn Lifecycle> {
        let hv = spec
            .vms
            .iter()
            .find(|(k, _)| k.value == name)
            .and_then(|(_, v)| v.hypervisor.as_ref())
            .map(|h| h.value)?;
        match hv {
            Hypervisor::Xen => self.xl.as_ref().map(|x| x as &dyn Lifecycle),
            Hypervisor::Libvirt => self.virsh.as_ref().map(|x| x as &dyn Lifecycle),
        }
    }
}

/// Options of a run.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    pub dry_run: bool,
    /// How often a stopping guest's state is checked.
    pub poll: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            dry_run: false,
            poll: Duration::from_millis(500),
        }
    }
}

fn result(
    log: &Log,
    name: &str,
    stage: &str,
    began: (Instant, SystemTime),
    outcome: Outcome,
    error: Option<String>,
) -> GuestResult {
    let now = (Instant::now(), SystemTime::now());
    GuestResult {
        name: name.to_string(),
        stage: stage.to_string(),
        outcome,
        began_s: round(began.0.duration_since(log.start).as_secs_f64()),
        ended_s: round(now.0.duration_since(log.start).as_secs_f64()),
        began: rfc3339(began.1),
        ended: rfc3339(now.1),
        took_s: round(now.0.duration_since(began.0).as_secs_f64()),
        error,
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Stop one guest: ask, wait up to its timeout, then apply the policy.
#[allow(clippy::too_many_arguments)]
fn stop_one(
    b: &dyn Lifecycle,
    name: &str,
    stage: &str,
    timeout: Duration,
    policy: OnTimeout,
    opts: RunOptions,
    log: &Log,
    abort: &AtomicBool,
    known_running: bool,
) -> GuestResult {
    let began = (Instant::now(), SystemTime::now());
    let fail = |e: String| {
        log.event(&format!("{name}: FAILED: {e}"));
        result(log, name, stage, began, Outcome::Failed, Some(e))
    };
    // The run's listing already says which guests run; others are asked.
    let running = if known_running {
        Ok(true)
    } else {
        b.is_running(name)
    };
    match running {
        Ok(false) => {
            log.event(&format!("{name}: not running"));
            return result(log, name, stage, began, Outcome::NotRunning, None);
        }
        Ok(true) => {}
        Err(e) => return fail(e.to_string()),
    }
    log.event(&format!(
        "{name}: shutdown requested ({stage}, timeout {}s)",
        timeout.as_secs()
    ));
    if let Err(e) = b.request_shutdown(name) {
        // It may have stopped on its own in between.
        if !b.is_running(name).unwrap_or(true) {
            log.event(&format!("{name}: stopped"));
            return result(log, name, stage, began, Outcome::Stopped, None);
        }
        return fail(e.to_string());
    }
    let mut waiting_past_timeout = false;
    loop {
        match b.is_running(name) {
            Ok(false) => {
                log.event(&format!(
                    "{name}: stopped cleanly after {:.1}s",
                    began.0.elapsed().as_secs_f64()
                ));
                return result(log, name, stage, began, Outcome::Stopped, None);
            }
            Ok(true) => {}
            Err(e) => return fail(e.to_string()),
        }
        if !waiting_past_timeout && began.0.elapsed() >= timeout {
            match policy {
                OnTimeout::Destroy => {
                    log.event(&format!(
                        "{name}: still running after {}s: destroying it (on-timeout: destroy)",
                        timeout.as_secs()
                    ));
                    if let Err(e) = b.destroy(name)
                        && b.is_running(name).unwrap_or(true)
                    {
                        return fail(e.to_string());
                    }
                    log.event(&format!("{name}: destroyed"));
                    return result(log, name, stage, began, Outcome::Destroyed, None);
                }
                OnTimeout::Wait => {
                    log.event(&format!(
                        "{name}: still running after {}s: waiting for it (on-timeout: wait)",
                        timeout.as_secs()
                    ));
                    waiting_past_timeout = true;
                }
                OnTimeout::Fail => {
                    abort.store(true, Ordering::SeqCst);
                    return fail(format!(
                        "still running after {}s (on-timeout: fail): the sequence stops here",
                        timeout.as_secs()
                    ));
                }
            }
        }
        std::thread::sleep(opts.poll);
    }
}

/// Stop the guests in order. `order` comes from [`super::order`].
pub fn shutdown(
    spec: &Spec,
    order: &Order,
    backends: &Backends,
    opts: RunOptions,
    log: &Log,
) -> Summary {
    let (running, unlisted) = backends.running(log);
    let members: Vec<&String> = order
        .first
        .iter()
        .chain(order.batches.iter().flatten())
        .collect();
    let unknown: Vec<String> = running
        .keys()
        .filter(|n| !members.contains(n))
        .cloned()
        .collect();
    let stages = order.stages(&unknown);
    log.event(&format!(
        "shutdown of {}: {} stages, {} guests running{}",
        spec.host.value,
        stages.len(),
        running.len(),
        if opts.dry_run { " (dry run)" } else { "" }
    ));
    let mut guests: Vec<GuestResult> = Vec::new();
    let results = Mutex::new(Vec::new());
    let abort = AtomicBool::new(false);
    if opts.dry_run {
        for st in &stages {
            for g in &st.guests {
                let t = timeout_secs(spec, g);
                let unknown_state = backends
                    .of(spec, g)
                    .is_some_and(|b| unlisted.contains(&b.tool()));
                let state = if running.contains_key(g) {
                    format!(
                        "would stop (timeout {t}s, then {})",
                        super::on_timeout_word(spec.shutdown.on_timeout)
                    )
                } else if unknown_state {
                    "state unknown (its hypervisor could not be listed)".to_string()
                } else {
                    "not running".to_string()
                };
                log.event(&format!("{}: {g}: {state}", st.label));
                let now = (Instant::now(), SystemTime::now());
                let outcome = if running.contains_key(g) {
                    Outcome::Planned
                } else if unknown_state {
                    Outcome::Unknown
                } else {
                    Outcome::NotRunning
                };
                guests.push(result(log, g, &st.label, now, outcome, None));
            }
        }
    } else {
        std::thread::scope(|s| {
            for st in &stages {
                if abort.load(Ordering::SeqCst) {
                    let now = (Instant::now(), SystemTime::now());
                    for g in &st.guests {
                        log.event(&format!("{g}: skipped (an earlier guest failed)"));
                        if let Ok(mut r) = results.lock() {
                            r.push(result(log, g, &st.label, now, Outcome::Skipped, None));
                        }
                    }
                    continue;
                }
                if !st.background {
                    log.event(&format!("{}: {}", st.label, st.guests.join(", ")));
                } else {
                    log.event(&format!(
                        "{} (in the background): {}",
                        st.label,
                        st.guests.join(", ")
                    ));
                }
                let mut handles = Vec::new();
                for g in &st.guests {
                    let known = running.get(g).copied();
                    let b = known.or_else(|| backends.of(spec, g));
                    let timeout = Duration::from_secs(timeout_secs(spec, g));
                    let (results, abort, label) = (&results, &abort, &st.label);
                    let policy = spec.shutdown.on_timeout;
                    handles.push(s.spawn(move || {
                        let r = match b {
                            Some(b) => stop_one(
                                b,
                                g,
                                label,
                                timeout,
                                policy,
                                opts,
                                log,
                                abort,
                                known.is_some(),
                            ),
                            None => {
                                let now = (Instant::now(), SystemTime::now());
                                log.event(&format!("{g}: no hypervisor tool to stop it with"));
                                result(
                                    log,
                                    g,
                                    label,
                                    now,
                                    Outcome::Failed,
                                    Some("no backend".into()),
                                )
                            }
                        };
                        if let Ok(mut v) = results.lock() {
                            v.push(r);
                        }
                    }));
                }
                if !st.background {
                    for h in handles {
                        let _ = h.join();
                    }
                }
            }
        });
        guests = results.into_inner().unwrap_or_default();
    }
    finish(spec, "shutdown", opts, log, stages, guests)
}

fn finish(
    spec: &Spec,
    action: &'static str,
    opts: RunOptions,
    log: &Log,
    stages: Vec<Stage>,
    mut guests: Vec<GuestResult>,
) -> Summary {
    // In stage order, then by name.
    let pos = |r: &GuestResult| {
        stages
            .iter()
            .position(|s| s.label == r.stage)
            .unwrap_or(usize::MAX)
    };
    guests.sort_by(|a, b| pos(a).cmp(&pos(b)).then(a.name.cmp(&b.name)));
    let ok = !guests
        .iter()
        .any(|g| matches!(g.outcome, Outcome::Failed | Outcome::Unknown));
    let s = Summary {
        format_version: 1,
        host: spec.host.value.clone(),
        action,
        dry_run: opts.dry_run,
        ok,
        took_s: round(log.start.elapsed().as_secs_f64()),
        stages,
        guests,
    };
    log.event(&format!(
        "{action} {}: {}",
        if s.ok { "done" } else { "FAILED" },
        counts(&s)
    ));
    s
}

fn counts(s: &Summary) -> String {
    let mut c: BTreeMap<&'static str, usize> = BTreeMap::new();
    for g in &s.guests {
        *c.entry(outcome_word(g.outcome)).or_default() += 1;
    }
    c.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Stopped => "stopped cleanly",
        Outcome::Destroyed => "destroyed after the timeout",
        Outcome::NotRunning => "not running",
        Outcome::Started => "started",
        Outcome::AlreadyRunning => "already running",
        Outcome::Failed => "failed",
        Outcome::Skipped => "not attempted",
        Outcome::Planned => "planned (dry run)",
        Outcome::Unknown => "state unknown",
    }
}

/// The summary as a table for people.
pub fn render_summary(s: &Summary) -> String {
    let w = s
        .guests
        .iter()
        .map(|g| g.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{} of {}{}: {} in {:.1}s\n",
        if s.action == "shutdown" {
            "Shutdown"
        } else {
            "Start"
        },
        s.host,
        if s.dry_run { " (dry run)" } else { "" },
        counts(s),
        s.took_s
    );
    out += &format!(
        "  {:w$}  {:10}  {:28}  {:>7}\n",
        "guest", "stage", "outcome", "took"
    );
    for g in &s.guests {
        out += &format!(
            "  {:w$}  {:10}  {:28}  {:>6.1}s{}\n",
            g.name,
            g.stage,
            outcome_word(g.outcome),
            g.took_s,
            g.error
                .as_ref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
    }
    out
}

/// The LVs of a guest that sit in a shared VG (`volume-groups.X.shared: true`).
fn shared_lvs(spec: &Spec, name: &str) -> Vec<String> {
    let Some((_, vm)) = spec.vms.iter().find(|(k, _)| k.value == name) else {
        return Vec::new();
    };
    GuestConfig::from_spec(name, vm)
        .lvs()
        .into_iter()
        .filter(|lv| {
            let vg = lv.split('/').next().unwrap_or("");
            spec.volume_groups
                .iter()
                .any(|(k, v)| k.value == vg && v.shared)
        })
        .collect()
}

/// Activate a guest's LVs in a shared VG exclusively on this host (`lvchange -aey`): the lock
/// manager refuses when another host holds them, and then the guest must not start here.
pub fn activate_exclusively(runner: &dyn Runner, spec: &Spec, name: &str) -> Result<(), String> {
    for lv in shared_lvs(spec, name) {
        let argv = ["lvchange", "-aey", lv.as_str()];
        match runner.run(&argv) {
            Ok(o) if o.status == 0 => {}
            Ok(o) => {
                return Err(format!(
                    "{}: cannot activate {lv} exclusively (exit {}): {}; another host probably \
                     runs this guest or holds its LV; stop it there first (never run a guest on \
                     two hosts at once)",
                    show_argv(&argv),
                    o.status,
                    o.stderr.trim()
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

fn start_one(
    runner: &dyn Runner,
    spec: &Spec,
    b: &dyn Lifecycle,
    name: &str,
    stage: &str,
    log: &Log,
) -> GuestResult {
    let began = (Instant::now(), SystemTime::now());
    match b.is_running(name) {
        Ok(true) => {
            log.event(&format!("{name}: already running"));
            return result(log, name, stage, began, Outcome::AlreadyRunning, None);
        }
        Ok(false) => {}
        Err(e) => {
            // xl domid fails for a guest that does not exist yet: that is "not running".
            if b.tool() != "xl" {
                log.event(&format!("{name}: FAILED: {e}"));
                return result(
                    log,
                    name,
                    stage,
                    began,
                    Outcome::Failed,
                    Some(e.to_string()),
                );
            }
        }
    }
    if let Err(e) = activate_exclusively(runner, spec, name) {
        log.event(&format!("{name}: REFUSED: {e}"));
        return result(log, name, stage, began, Outcome::Failed, Some(e));
    }
    log.event(&format!("{name}: starting ({stage})"));
    match b.start(name) {
        Ok(()) => {
            log.event(&format!(
                "{name}: started after {:.1}s",
                began.0.elapsed().as_secs_f64()
            ));
            result(log, name, stage, began, Outcome::Started, None)
        }
        Err(e) => {
            log.event(&format!("{name}: FAILED: {e}"));
            result(
                log,
                name,
                stage,
                began,
                Outcome::Failed,
                Some(e.to_string()),
            )
        }
    }
}

/// Start the guests the spec wants running, dependencies first (the stop order reversed),
/// the guests of a stage side by side. A guest whose dependency failed to start is not started.
pub fn start(
    runner: &dyn Runner,
    spec: &Spec,
    order: &Order,
    backends: &Backends,
    opts: RunOptions,
    log: &Log,
) -> Summary {
    let wanted = |n: &str| {
        spec.vms
            .iter()
            .find(|(k, _)| k.value == n)
            .is_some_and(|(_, v)| matches!(v.state, None | Some(VmState::Running)))
    };
    let stages: Vec<Stage> = order
        .start_stages()
        .into_iter()
        .map(|mut s| {
            s.guests.retain(|g| wanted(g));
            s
        })
        .filter(|s| !s.guests.is_empty())
        .collect();
    log.event(&format!(
        "start of {}: {} stages{}",
        spec.host.value,
        stages.len(),
        if opts.dry_run { " (dry run)" } else { "" }
    ));
    let failed: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let results = Mutex::new(Vec::new());
    for st in &stages {
        log.event(&format!("{}: {}", st.label, st.guests.join(", ")));
        std::thread::scope(|s| {
            for g in &st.guests {
                let (results, failed) = (&results, &failed);
                s.spawn(move || {
                    let now = (Instant::now(), SystemTime::now());
                    let blocked = spec
                        .vms
                        .iter()
                        .find(|(k, _)| k.value == *g)
                        .map(|(_, v)| {
                            v.depends_on
                                .iter()
                                .filter(|d| failed.lock().is_ok_and(|f| f.contains(&d.value)))
                                .map(|d| d.value.clone())
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    let r = if opts.dry_run {
                        log.event(&format!("{g}: would start"));
                        result(log, g, &st.label, now, Outcome::Planned, None)
                    } else if !blocked.is_empty() {
                        log.event(&format!("{g}: not started: {} failed", blocked.join(", ")));
                        result(
                            log,
                            g,
                            &st.label,
                            now,
                            Outcome::Skipped,
                            Some(format!("{} failed to start", blocked.join(", "))),
                        )
                    } else {
                        match backends.of(spec, g) {
                            Some(b) => start_one(runner, spec, b, g, &st.label, log),
                            None => result(
                                log,
                                g,
                                &st.label,
                                now,
                                Outcome::Failed,
                                Some("no backend".into()),
                            ),
                        }
                    };
                    if matches!(r.outcome, Outcome::Failed | Outcome::Skipped)
                        && !opts.dry_run
                        && let Ok(mut f) = failed.lock()
                    {
                        f.push(g.clone());
                    }
                    if let Ok(mut v) = results.lock() {
                        v.push(r);
                    }
                });
            }
        });
    }
    let mut s = finish(
        spec,
        "start",
        opts,
        log,
        stages,
        results.into_inner().unwrap_or_default(),
    );
    if s.guests.iter().any(|g| g.outcome == Outcome::Skipped) && !opts.dry_run {
        s.ok = false;
    }
    s
}

/// Stop one guest as a plan's operation does: ask it to shut down, wait up to its timeout,
/// then its policy (neither `virsh shutdown` nor `xl shutdown` waits with a timeout).
pub fn stop_guest(r: &dyn Runner, g: &GuestStop) -> Result<(), RunError> {
    let (loc, name) = (&g.location, &g.name);
    let timeout = g.timeout_s;
    let policy = g.on_timeout;
    let virsh;
    let xl;
    let b: &dyn Lifecycle = match g.hypervisor {
        Hypervisor::Libvirt => {
            virsh = Virsh::new(r, Some(loc));
            &virsh
        }
        Hypervisor::Xen => {
            xl = Xl::new(r, Some(loc));
            &xl
        }
    };
    let mut log = Log::new(None);
    log.quiet = true;
    let res = stop_one(
        b,
        name,
        "apply",
        Duration::from_secs(timeout),
        policy,
        RunOptions::default(),
        &log,
        &AtomicBool::new(false),
        false,
    );
    match res.outcome {
        Outcome::Stopped | Outcome::Destroyed | Outcome::NotRunning => Ok(()),
        _ => Err(RunError::Failed {
            argv: format!("stop {name}"),
            status: 1,
            stderr: res.error.unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::ScriptedRunner;
    use crate::runner::fixtures::scripted;

    fn spec(yaml: &str) -> Spec {
        match crate::spec::load_str("t.yaml", yaml) {
            Ok(l) => l.spec,
            Err(f) => panic!("{:?}", f.diagnostics),
        }
    }

    /// A timeout of 0 s (validation refuses it in a spec; here it makes the timeout path
    /// deterministic: one state check, then the policy).
    fn zero_timeout(s: &mut Spec) {
        s.shutdown.timeout = Some(crate::spec::de::Sp::bare(crate::spec::units::Duration(0)));
    }

    fn quiet() -> Log {
        let mut l = Log::new(None);
        l.quiet = true;
        l
    }

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(1_795_336_245_123)),
            "2026-11-22T08:30:45.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
    }

    /// A guest that ignores the ACPI power button (captured: a libvirt guest with no OS) and a
    /// timeout of 0 s: destroyed by the policy, with the exact virsh sequence as captured.
    #[test]
    fn a_guest_that_ignores_shutdown_is_destroyed_after_its_timeout() {
        let mut s = spec(
            "host: h
vm-defaults: { hypervisor: libvirt, memory: 64MiB }
vms:
  g1: {}
shutdown: { on-timeout: destroy }
",
        );
        zero_timeout(&mut s);
        let o = super::super::order(&s).unwrap();
        let r = scripted(
            "guests",
            &[
                "list-one-running",
                "shutdown-g1",
                "domstate-g1-after-shutdown",
                "destroy-g1",
            ],
        );
        let b = Backends::for_spec(&s, &r);
        let log = quiet();
        let sum = shutdown(&s, &o, &b, RunOptions::default(), &log);
        assert!(r.remaining().is_empty(), "{:?}", r.remaining());
        // g2 runs outside the spec? No: g2 is shut off in this capture; only g1 was running.
        let g1 = sum.guests.iter().find(|g| g.name == "g1").unwrap();
        assert_eq!(g1.outcome, Outcome::Destroyed);
        assert!(sum.ok);
        let lines = log.lines.lock().unwrap().join("\n");
        assert!(
            lines.contains("g1: still running after 0s: destroying it"),
            "{lines}"
        );
    }

    #[test]
    fn the_fail_policy_stops_the_sequence() {
        let mut s = spec(
            "host: h
vm-defaults: { hypervisor: xen, memory: 64MiB }
vms:
  g1: { depends-on: [g2] }
  g2: {}
shutdown: { on-timeout: fail }
",
        );
        zero_timeout(&mut s);
        let o = super::super::order(&s).unwrap();
        // The real xl's answers (tests/fixtures/xen/): both guests running, g1 asked to stop,
        // still there when its (zero) timeout is over.
        let r = crate::runner::fixtures::scripted(
            "xen",
            &["list-long-running", "shutdown-g1", "domid-g1"],
        );
        let b = Backends::for_spec(&s, &r);
        let sum = shutdown(&s, &o, &b, RunOptions::default(), &quiet());
        assert!(r.remaining().is_empty());
        assert!(!sum.ok);
        let out: Vec<(&str, Outcome)> = sum
            .guests
            .iter()
            .map(|g| (g.name.as_str(), g.outcome))
            .collect();
        assert_eq!(out, vec![("g1", Outcome::Failed), ("g2", Outcome::Skipped)]);
    }

    #[test]
    fn start_activates_shared_lvs_exclusively_and_refuses_when_held_elsewhere() {
        let s = spec(
            "host: h
volume-groups:
  shared_vg: { pvs: [sdc], shared: true, lvs: { web_root: { size: 1GiB } } }
disks:
  sdc: { serial: LUN1 }
vm-defaults: { hypervisor: libvirt, memory: 64MiB }
vms:
  web: { disks: [{ lv: shared_vg/web_root, target: vda }] }
",
        );
        let o = super::super::order(&s).unwrap();
        // The lock is held by another host: lvchange fails, and the guest is not started.
        let held = ScriptedRunner::new()
            .then("virsh -c qemu:///system domstate web", 0, "shut off\n")
            .then("lvchange -aey shared_vg/web_root", 5, "");
        let b = Backends::for_spec(&s, &held);
        let sum = start(&held, &s, &o, &b, RunOptions::default(), &quiet());
        assert!(held.remaining().is_empty());
        assert!(!sum.ok);
        let e = sum.guests[0].error.clone().unwrap();
        assert!(
            e.contains("cannot activate shared_vg/web_root exclusively"),
            "{e}"
        );
        assert!(e.contains("another host"), "{e}");
        // Free: activated, then started.
        let free = ScriptedRunner::new()
            .then("virsh -c qemu:///system domstate web", 0, "shut off\n")
            .then("lvchange -aey shared_vg/web_root", 0, "")
            .then(
                "virsh -c qemu:///system start web",
                0,
                "Domain 'web' started\n",
            );
        let b = Backends::for_spec(&s, &free);
        let sum = start(&free, &s, &o, &b, RunOptions::default(), &quiet());
        assert!(free.remaining().is_empty());
        assert!(sum.ok);
        assert_eq!(sum.guests[0].outcome, Outcome::Started);
    }

    #[test]
    fn dry_run_only_lists() {
        let s = spec(
            "host: h
vm-defaults: { hypervisor: libvirt, memory: 64MiB }
vms:
  g1: {}
  g2: { depends-on: [g1] }
",
        );
        let o = super::super::order(&s).unwrap();
        // One listing, nothing else.
        let r = scripted("guests", &["list-one-running"]);
        let b = Backends::for_spec(&s, &r);
        let sum = shutdown(
            &s,
            &o,
            &b,
            RunOptions {
                dry_run: true,
                ..RunOptions::default()
            },
            &quiet(),
        );
        assert!(r.remaining().is_empty());
        let out: Vec<(&str, Outcome)> = sum
            .guests
            .iter()
            .map(|g| (g.name.as_str(), g.outcome))
            .collect();
        assert_eq!(
            out,
            vec![("g2", Outcome::NotRunning), ("g1", Outcome::Planned)]
        );
        // libvirt cannot be listed: the state is unknown, never "not running".
        let r = ScriptedRunner::new();
        let b = Backends::for_spec(&s, &r);
        let log = quiet();
        let sum = shutdown(
            &s,
            &o,
            &b,
            RunOptions {
                dry_run: true,
                ..RunOptions::default()
            },
            &log,
        );
        assert!(sum.guests.iter().all(|g| g.outcome == Outcome::Unknown));
        assert!(
            !sum.ok,
            "a dry run that could not see the guests is not a success"
        );
        let lines = log.lines.lock().unwrap().join("\n");
        assert!(lines.contains("cannot list the virsh guests"), "{lines}");
        assert!(
            lines.contains("g1: state unknown (its hypervisor could not be listed)"),
            "{lines}"
        );
    }
}
