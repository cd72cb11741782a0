//! Executing a plan: operations in the plan's order, through the runner. When one fails, what
//! depends on it is skipped and what does not still runs; the failed command is reported with
//! its argv, exit status and stderr. When / is read-only and LVM metadata must change, the run
//! is wrapped in `mount -o remount,rw /` … `remount,ro /`, and / goes back to read-only even
//! after a failure. Independent operations run side by side, up to a bound.

use std::collections::BTreeSet;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::plan::{Deferred, Effect, Op, Plan, Risk};
use crate::runner::{RunError, Runner, show_argv};

#[derive(Debug)]
pub enum Event<'a> {
    Start {
        n: usize,
        total: usize,
        op: &'a Op,
    },
    /// `n`: how many operations have finished so far.
    Done {
        n: usize,
        total: usize,
        op: &'a Op,
        took: Duration,
    },
    Failed {
        op: &'a Op,
        error: &'a RunError,
    },
    Skipped {
        op: &'a Op,
        because: &'a str,
    },
    Note(String),
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
    /// When each operation that ran started and finished.
    pub times: std::collections::BTreeMap<String, (String, String)>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

/// An activation lvmlockd refused because another host holds the LV: hostform's own line,
/// naming that host (from sanlock's leases), for the operator.
fn held_elsewhere(r: &dyn Runner, argv: &[&str], stderr: &str) -> Option<String> {
    if argv.first() != Some(&"lvchange") || !stderr.contains(crate::kinds::lvm::LOCKED_ELSEWHERE) {
        return None;
    }
    let target = argv.iter().rev().find(|a| a.contains('/'))?;
    let (vg, lv) = target.split_once('/')?;
    let who = match crate::kinds::lvm::lock_holder(r, vg, lv) {
        Some(h) => match h.name {
            Some(n) => format!("{n} (sanlock host_id {})", h.host_id),
            None => format!("the host with sanlock host_id {}", h.host_id),
        },
        None => "another host (its lease could not be read)".to_string(),
    };
    Some(format!(
        "hostform: {vg}/{lv} is held by {who}: lvmlockd refuses to activate it here while that host holds it. Apply that host's spec (once the guest's `runs-on` names this host, its plan moves the guest here), or stop the guest there; a guest never runs on two hosts at once"
    ))
}

/// Run one operation; with the exit status of its command when a command ran to its end.
fn run_op(r: &dyn Runner, op: &Op) -> (Result<(), RunError>, Option<i32>) {
    let (argv, stdin) = match &op.effect {
        Effect::Write(w) => return (r.write_file(&w.path, &w.content, w.mode), None),
        Effect::StopGuest(g) => return (crate::shutdown::run::stop_guest(r, g), None),
        Effect::AwaitDead(d) => {
            tracing::warn!(
                target: LOG_TARGET,
                OP_ID = op.id.as_str(),
                "waiting (up to {} s) for sanlock to call host_id {} of {} dead",
                d.timeout_s,
                d.host_id,
                d.lockspace
            );
            let poll = std::time::Duration::from_secs(2);
            let res = crate::kinds::lvm::await_dead(r, &d.lockspace, d.host_id, d.timeout_s, poll);
            return (res, None);
        }
        Effect::Run { argv, stdin } => (argv, stdin),
    };
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let mut out = match r.run_input(&argv, stdin.as_deref()) {
        Ok(o) => o,
        Err(e) => return (Err(e), None),
    };
    if let Some(t) = (out.status != 0)
        .then(|| crate::kinds::transient(&argv, &out.stderr))
        .flatten()
    {
        tracing::warn!(target: LOG_TARGET, OP_ID = op.id.as_str(), "{}", t.why);
        if t.settle {
            let _ = r.run(&["udevadm", "settle", "--timeout=30"]);
        }
        out = match r.run_input(&argv, stdin.as_deref()) {
            Ok(o) => o,
            Err(e) => return (Err(e), None),
        };
    }
    if out.status != 0 {
        let mut stderr = out.stderr.trim().to_string();
        if let Some(held) = held_elsewhere(r, &argv, &stderr) {
            stderr = format!("{held}\n{stderr}");
        }
        let e = RunError::Failed {
            argv: show_argv(&argv),
            status: out.status,
            stderr,
        };
        return (Err(e), Some(out.status));
    }
    if op.settle {
        // Best effort: a missing udevadm (no udev) leaves nothing to wait for.
        let _ = r.run(&["udevadm", "settle", "--timeout=30"]);
    }
    (Ok(()), Some(0))
}

/// The target of the operations' log events (`hostform -v` shows them; the journal keeps them).
pub const LOG_TARGET: &str = "hostform::op";

/// What an operation runs, as the plan shows it; `None` for a file write.
fn logged_argv(op: &Op) -> Option<String> {
    let argv = op.effect.argv();
    (!argv.is_empty()).then(|| show_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>()))
}

fn logged_file(op: &Op) -> Option<&str> {
    match &op.effect {
        Effect::Write(w) => Some(w.path.as_str()),
        _ => None,
    }
}

/// One structured event when an operation starts (`journalctl -t hostform OP_ID=…`).
fn log_start(op: &Op) {
    tracing::info!(
        target: LOG_TARGET,
        HOSTFORM_EVENT = "op-start",
        OP_ID = op.id.as_str(),
        RESOURCE = op.resource.as_str(),
        ARGV = logged_argv(op).as_deref(),
        FILE = logged_file(op),
        "started {}",
        crate::diag::visible(&op.summary)
    );
}

/// One structured event when an operation ends: its outcome, exit status and duration.
fn log_end(op: &Op, res: &Result<(), RunError>, status: Option<i32>, took: Duration) {
    let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    match res {
        Ok(()) => tracing::info!(
            target: LOG_TARGET,
            HOSTFORM_EVENT = "op-end",
            OP_ID = op.id.as_str(),
            RESOURCE = op.resource.as_str(),
            ARGV = logged_argv(op).as_deref(),
            FILE = logged_file(op),
            OUTCOME = "done",
            EXIT_STATUS = status,
            DURATION_MS = ms,
            "done {} ({ms} ms)",
            crate::diag::visible(&op.summary)
        ),
        Err(e) => tracing::error!(
            target: LOG_TARGET,
            HOSTFORM_EVENT = "op-end",
            OP_ID = op.id.as_str(),
            RESOURCE = op.resource.as_str(),
            ARGV = logged_argv(op).as_deref(),
            FILE = logged_file(op),
            OUTCOME = "failed",
            EXIT_STATUS = status,
            DURATION_MS = ms,
            ERROR = e.brief().as_str(),
            "failed {} ({ms} ms): {}",
            crate::diag::visible(&op.summary),
            crate::diag::visible(&e.brief())
        ),
    }
}

/// Run the plan with at most `parallelism` operations at once: an operation starts when every
/// operation it depends on has succeeded; independent ones run side by side.
pub fn execute(
    plan: &Plan,
    r: &dyn Runner,
    parallelism: usize,
    report: &mut (dyn FnMut(Event) + Send),
) -> Outcome {
    let mut out = Outcome::default();
    let remount = plan.remount_root && plan.ops.iter().any(|o| o.writes_root);
    if remount {
        if let Err(e) = r.check(&["mount", "-o", "remount,rw", "/"]) {
            out.failed.push(("remount,rw /".into(), e.to_string()));
            report(Event::Note(format!(
                "cannot make / writable: {e}; nothing was run"
            )));
            out.skipped = plan.ops.iter().map(|o| o.id.to_string()).collect();
            return out;
        }
        report(Event::Note(
            "/ remounted read-write for LVM metadata".into(),
        ));
    }
    run_graph(plan, r, parallelism.max(1), report, &mut out);
    if remount {
        match r.check(&["mount", "-o", "remount,ro", "/"]) {
            Ok(_) => report(Event::Note("/ remounted read-only".into())),
            Err(e) => {
                report(Event::Note(format!(
                    "WARNING: / could not be remounted read-only: {e}"
                )));
                out.failed.push(("remount,ro /".into(), e.to_string()));
            }
        }
    }
    out
}

/// The scheduler's shared state. Operations are plan indices; `ready` holds those whose
/// dependencies all succeeded, in plan order, so each pick is the first runnable operation of
/// the plan without a scan of the whole plan (a scan per pick made large applies quadratic).
struct Sched {
    ready: BTreeSet<usize>,
    /// Dependencies of each operation not yet succeeded.
    waiting_on: Vec<usize>,
    /// Operations that failed or were skipped.
    broken: Vec<bool>,
    /// Operations started (or skipped): settled or under way.
    taken: Vec<bool>,
    pending: usize,
    completed: usize,
    /// Classes of operations that run one at a time ([`Op::one_at_a_time`]) with one running.
    busy: BTreeSet<&'static str>,
    /// Ready operations held back while their class is busy, in plan order.
    held: BTreeSet<usize>,
}

impl Sched {
    /// Take the first ready operation, in plan order, whose class is not busy (holding back
    /// those whose class is), and mark its class busy.
    fn pick(&mut self, class: &[Option<&'static str>]) -> Option<usize> {
        while let Some(i) = self.ready.pop_first() {
            match class[i] {
                Some(c) if self.busy.contains(c) => {
                    self.held.insert(i);
                }
                c => {
                    self.busy.extend(c);
                    self.taken[i] = true;
                    return Some(i);
                }
            }
        }
        None
    }

    /// Operation `i` is over: its class is free again, and what it held back is ready.
    fn release(&mut self, i: usize, class: &[Option<&'static str>]) {
        let Some(c) = class[i] else { return };
        self.busy.remove(c);
        let back: Vec<usize> = self
            .held
            .iter()
            .copied()
            .filter(|&j| class[j] == Some(c))
            .collect();
        for j in back {
            self.held.remove(&j);
            self.ready.insert(j);
        }
    }
}

fn run_graph(
    plan: &Plan,
    r: &dyn Runner,
    parallelism: usize,
    report: &mut (dyn FnMut(Event) + Send),
    out: &mut Outcome,
) {
    let total = plan.ops.len();
    let index: std::collections::HashMap<&str, usize> = plan
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| (o.id.as_str(), i))
        .collect();
    // Each operation's dependencies inside this plan (in its `after` order, once each), and
    // the operations that depend on it.
    let deps: Vec<Vec<usize>> = plan
        .ops
        .iter()
        .map(|op| {
            let mut d: Vec<usize> = Vec::new();
            for a in &op.after {
                if let Some(&j) = index.get(a.as_str())
                    && !d.contains(&j)
                {
                    d.push(j);
                }
            }
            d
        })
        .collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); total];
    for (i, d) in deps.iter().enumerate() {
        for &j in d {
            dependents[j].push(i);
        }
    }
    let state = Mutex::new(Sched {
        ready: (0..total).filter(|&i| deps[i].is_empty()).collect(),
        waiting_on: deps.iter().map(Vec::len).collect(),
        broken: vec![false; total],
        taken: vec![false; total],
        pending: total,
        completed: 0,
        busy: BTreeSet::new(),
        held: BTreeSet::new(),
    });
    let class: Vec<Option<&'static str>> = plan.ops.iter().map(Op::one_at_a_time).collect();
    let wake = Condvar::new();
    let report = Mutex::new(report);
    let result = Mutex::new(Outcome::default());
    let emit = |e: Event| {
        if let Ok(mut f) = report.lock() {
            (*f)(e)
        }
    };
    // After a failure: skip everything that depends on it, directly or not, in plan order,
    // each naming the first of its dependencies that broke.
    let skip_dependents = |st: &mut Sched, failed: usize| {
        let mut todo: BTreeSet<usize> = dependents[failed].iter().copied().collect();
        while let Some(i) = todo.pop_first() {
            if st.taken[i] {
                continue;
            }
            st.taken[i] = true;
            st.broken[i] = true;
            st.ready.remove(&i);
            st.held.remove(&i);
            st.pending -= 1;
            let because = deps[i]
                .iter()
                .find(|&&d| st.broken[d])
                .map(|&d| plan.ops[d].id.as_str())
                .unwrap_or_default();
            if let Ok(mut o) = result.lock() {
                o.skipped.push(plan.ops[i].id.to_string());
            }
            emit(Event::Skipped {
                op: &plan.ops[i],
                because,
            });
            todo.extend(dependents[i].iter().copied());
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..parallelism.min(total.max(1)) {
            scope.spawn(|| {
                loop {
                    let mut st = match state.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    // The first operation, in plan order, whose dependencies all succeeded.
                    let picked = loop {
                        // Interrupted: start nothing new; what runs finishes.
                        if crate::interrupt::requested().is_some() {
                            break None;
                        }
                        if let Some(i) = st.pick(&class) {
                            break Some(i);
                        }
                        if st.pending == 0 {
                            break None;
                        }
                        st = match wake.wait(st) {
                            Ok(g) => g,
                            Err(_) => return,
                        };
                    };
                    let Some(i) = picked else {
                        wake.notify_all();
                        return;
                    };
                    let op = &plan.ops[i];
                    drop(st);
                    emit(Event::Start {
                        n: i + 1,
                        total,
                        op,
                    });
                    log_start(op);
                    let t = Instant::now();
                    let began = crate::clock::now();
                    let (res, status) = run_op(r, op);
                    log_end(op, &res, status, t.elapsed());
                    if let Ok(mut o) = result.lock() {
                        o.times
                            .insert(op.id.to_string(), (began, crate::clock::now()));
                    }
                    let mut st = match state.lock() {
                        Ok(g) => g,
                        Err(_) => return,
                    };
                    st.pending -= 1;
                    st.completed += 1;
                    let n = st.completed;
                    st.release(i, &class);
                    match res {
                        Ok(()) => {
                            for &j in &dependents[i] {
                                st.waiting_on[j] -= 1;
                                if st.waiting_on[j] == 0 && !st.taken[j] {
                                    st.ready.insert(j);
                                }
                            }
                            if let Ok(mut o) = result.lock() {
                                o.done.push(op.id.to_string());
                            }
                            emit(Event::Done {
                                n,
                                total,
                                op,
                                took: t.elapsed(),
                            });
                        }
                        Err(e) => {
                            st.broken[i] = true;
                            if let Ok(mut o) = result.lock() {
                                o.failed.push((op.id.to_string(), e.brief()));
                            }
                            emit(Event::Failed { op, error: &e });
                            skip_dependents(&mut st, i);
                        }
                    }
                    drop(st);
                    wake.notify_all();
                }
            });
        }
    });
    let r = result.into_inner().unwrap_or_default();
    out.done.extend(r.done);
    out.failed.extend(r.failed);
    out.skipped.extend(r.skipped);
    out.times.extend(r.times);
}

/// How many follow-up rounds apply runs after the first, at most, for what the first plan
/// deferred (an array assembled, then what sits on it; nested arrays could need more than one).
pub const FOLLOW_UP_ROUNDS: usize = 3;

/// May this follow-up plan run without asking again? Only if it refuses nothing, every operation
/// is safe, and every operation (and anything still deferred) is about a resource the approved
/// plan announced as deferred: the operator approved exactly those, and nothing destructive.
pub fn follow_up_allowed(announced: &[Deferred], next: &Plan) -> Result<(), String> {
    let known: BTreeSet<&str> = announced.iter().map(|d| d.resource.as_str()).collect();
    if let Some(r) = next.refusals.first() {
        return Err(format!(
            "the plan for the deferred resources refuses {}: {}",
            r.resource, r.reason
        ));
    }
    if let Some(op) = next.ops.iter().find(|o| o.risk != Risk::Safe) {
        return Err(format!(
            "it would run a destructive operation ({}), which a follow-up never does",
            op.summary
        ));
    }
    if let Some(op) = next
        .ops
        .iter()
        .find(|o| !known.contains(o.resource.as_str()))
    {
        return Err(format!(
            "it would change {} ({}), which the approved plan did not announce",
            op.resource, op.summary
        ));
    }
    if let Some(d) = next
        .deferred
        .iter()
        .find(|d| !known.contains(d.resource.as_str()))
    {
        return Err(format!(
            "{} now waits for {}, which the approved plan did not announce",
            d.resource, d.waits_for
        ));
    }
    Ok(())
}

/// Tests' view of the log events: a layer, installed once for the test process (the executor
/// emits from its worker threads, which a thread's own default would not see), that keeps
/// every event's level, target and fields. Tests pick theirs out by names only they use.
#[cfg(test)]
pub(crate) mod log_capture {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, Once};
    use tracing_subscriber::layer::Context;
    use tracing_subscriber::prelude::*;

    #[derive(Clone, Debug)]
    pub struct Captured {
        pub level: tracing::Level,
        pub target: String,
        pub fields: BTreeMap<String, String>,
    }

    static EVENTS: Mutex<Vec<Captured>> = Mutex::new(Vec::new());
    static INSTALL: Once = Once::new();

    struct Capture;

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl tracing::field::Visit for Fields<'_> {
        fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
            self.0.insert(f.name().into(), v.into());
        }
        fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
            self.0.insert(f.name().into(), format!("{v:?}"));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, e: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = BTreeMap::new();
            e.record(&mut Fields(&mut fields));
            if let Ok(mut v) = EVENTS.lock() {
                v.push(Captured {
                    level: *e.metadata().level(),
                    target: e.metadata().target().into(),
                    fields,
                });
            }
        }
    }

    /// Start capturing (idempotent).
    pub fn install() {
        INSTALL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(Capture),
            );
        });
    }

    /// The events so far that `keep` selects.
    pub fn events(keep: impl Fn(&Captured) -> bool) -> Vec<Captured> {
        EVENTS
            .lock()
            .map(|v| v.iter().filter(|c| keep(c)).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::Output;

    /// The host reads of a runner that stands in only for commands: it reads nothing.
    macro_rules! reads_nothing {
        () => {
            fn read(&self, _: &str) -> Option<String> {
                None
            }
            fn list(&self, _: &str) -> Vec<String> {
                Vec::new()
            }
            fn resolve_link(&self, _: &str) -> Option<String> {
                None
            }
        };
    }

    /// Runs nothing: records argv and fails the commands named in `fail`. It stands in for the
    /// host only to test the executor's control flow; no tool output is imitated.
    struct Script {
        fail: Vec<&'static str>,
        ran: Mutex<Vec<String>>,
    }

    impl Runner for Script {
        fn run_input(&self, argv: &[&str], _: Option<&str>) -> Result<Output, RunError> {
            let line = argv.join(" ");
            self.ran.lock().unwrap().push(line.clone());
            let status = if self.fail.iter().any(|f| line == *f) {
                5
            } else {
                0
            };
            Ok(Output {
                status,
                stdout: String::new(),
                stderr: if status == 0 {
                    String::new()
                } else {
                    "boom".into()
                },
            })
        }
        reads_nothing!();
    }

    /// A test operation: `01:NAME:up`, running `cmd NAME`.
    fn id(name: &str) -> crate::plan::OpId {
        crate::plan::OpId::new(
            1,
            crate::plan::Address::Link(name.into()),
            crate::plan::Verb::Up,
        )
    }

    fn op(name: &str, after: &[&str], root: bool) -> Op {
        let mut o = Op::run(id(name), name, name, vec!["cmd".into(), name.into()]);
        o.writes_root = root;
        o.after = after.iter().map(|a| id(a)).collect();
        o
    }

    /// Fails the commands whose argv holds every one of `words` the first `fails` times, with
    /// `status` and a real stderr (`fixture`, after `after` when it is a printed report);
    /// everything else succeeds. Records argv.
    struct Flaky {
        words: &'static [&'static str],
        fails: usize,
        status: i32,
        stderr: String,
        ran: Mutex<Vec<String>>,
    }

    impl Flaky {
        fn lock_start(fails: usize) -> Self {
            Flaky {
                words: &["vgchange", "--lock-start"],
                fails,
                status: 5,
                stderr: crate::runner::fixtures::text("cluster-b/vgchange-lock-start-raced.stderr"),
                ran: Mutex::new(Vec::new()),
            }
        }

        /// A busy dom0's hotplug timeout (tests/fixtures/xen-busy, as apply printed it).
        fn xl_create(fails: usize) -> Self {
            let printed = crate::runner::fixtures::text("xen-busy/apply-start-srvpub.txt");
            Flaky {
                words: &["xl", "create"],
                fails,
                status: 3,
                stderr: printed
                    .split_once("exited with status 3: ")
                    .unwrap()
                    .1
                    .into(),
                ran: Mutex::new(Vec::new()),
            }
        }
    }

    impl Runner for Flaky {
        fn run_input(&self, argv: &[&str], _: Option<&str>) -> Result<Output, RunError> {
            let mut ran = self.ran.lock().unwrap();
            ran.push(argv.join(" "));
            let hit = |l: &String| self.words.iter().all(|w| l.split(' ').any(|a| a == *w));
            let fail =
                hit(ran.last().unwrap()) && ran.iter().filter(|l| hit(l)).count() <= self.fails;
            Ok(Output {
                status: if fail { self.status } else { 0 },
                stdout: String::new(),
                stderr: if fail {
                    self.stderr.clone()
                } else {
                    String::new()
                },
            })
        }
        reads_nothing!();
    }

    /// A lock start that raced udev is asked once more after `udevadm settle`, and only once;
    /// other failures are not retried.
    #[test]
    fn a_lock_start_that_raced_udev_is_retried_once_after_udev_settles() {
        let start = Op::run(
            id("vgshared"),
            "volume group vgshared",
            "start the lockspace",
            vec!["vgchange".into(), "--lock-start".into(), "vgshared".into()],
        );
        let r = Flaky::lock_start(1);
        let (res, status) = run_op(&r, &start);
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(status, Some(0));
        assert_eq!(
            *r.ran.lock().unwrap(),
            [
                "vgchange --lock-start vgshared",
                "udevadm settle --timeout=30",
                "vgchange --lock-start vgshared"
            ]
        );
        // Failing again: reported with lvm2's words, not asked a third time.
        let r = Flaky::lock_start(2);
        let (res, status) = run_op(&r, &start);
        assert_eq!(status, Some(5));
        let e = res.unwrap_err().to_string();
        assert!(e.contains("invalid parameters for sanlock"), "{e}");
        assert_eq!(r.ran.lock().unwrap().len(), 3);
        // Another command failing is not retried.
        let r = Script {
            fail: vec!["cmd a"],
            ran: Mutex::new(Vec::new()),
        };
        let (res, _) = run_op(&r, &op("a", &[], false));
        assert!(res.is_err());
        assert_eq!(*r.ran.lock().unwrap(), ["cmd a"]);
    }

    /// `xl create` killed by libxl's hotplug timeout is tried once more, with no udev wait;
    /// twice is reported with libxl's words.
    #[test]
    fn a_xen_hotplug_timeout_is_tried_once_more() {
        let start = Op::run(
            id("srvpub"),
            "guest srvpub",
            "start srvpub",
            vec![
                "xl".into(),
                "create".into(),
                "/etc/xen/guest/srvpub.xl".into(),
            ],
        );
        let r = Flaky::xl_create(1);
        let (res, status) = run_op(&r, &start);
        assert!(res.is_ok(), "{res:?}");
        assert_eq!(status, Some(0));
        assert_eq!(
            *r.ran.lock().unwrap(),
            [
                "xl create /etc/xen/guest/srvpub.xl",
                "xl create /etc/xen/guest/srvpub.xl"
            ]
        );
        let r = Flaky::xl_create(2);
        let (res, status) = run_op(&r, &start);
        assert_eq!(status, Some(3));
        let e = res.unwrap_err().to_string();
        assert!(e.contains("block add because of timeout"), "{e}");
        assert_eq!(r.ran.lock().unwrap().len(), 2);
    }

    #[test]
    fn each_operation_logs_a_start_and_an_end_with_its_fields() {
        log_capture::install();
        let plan = Plan {
            ops: vec![
                op("logged-ok", &[], false),
                op("logged-bad", &[], false),
                op("logged-after", &["logged-bad"], false),
            ],
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["cmd logged-bad"],
            ran: Mutex::new(Vec::new()),
        };
        execute(&plan, &r, 2, &mut |_| {});
        let of = |name: &str| {
            let id = id(name).to_string();
            log_capture::events(|c| c.fields.get("OP_ID") == Some(&id))
        };
        let ok = of("logged-ok");
        assert_eq!(ok.len(), 2, "{ok:?}");
        let (start, end) = (&ok[0].fields, &ok[1].fields);
        assert_eq!(ok[0].target, LOG_TARGET);
        assert_eq!(start["HOSTFORM_EVENT"], "op-start");
        assert_eq!(start["ARGV"], "cmd logged-ok");
        assert_eq!(start["RESOURCE"], "logged-ok");
        assert!(!start.contains_key("EXIT_STATUS"), "{start:?}");
        assert_eq!(end["HOSTFORM_EVENT"], "op-end");
        assert_eq!(end["OUTCOME"], "done");
        assert_eq!(end["EXIT_STATUS"], "0");
        assert_eq!(end["ARGV"], "cmd logged-ok");
        assert!(end["DURATION_MS"].parse::<u64>().is_ok(), "{end:?}");
        assert_eq!(ok[1].level, tracing::Level::INFO);
        let bad = of("logged-bad");
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(bad[1].level, tracing::Level::ERROR);
        assert_eq!(bad[1].fields["OUTCOME"], "failed");
        assert_eq!(bad[1].fields["EXIT_STATUS"], "5");
        assert!(bad[1].fields["ERROR"].contains("boom"), "{bad:?}");
        // Skipped: it never ran, so it has neither a start nor an end.
        assert!(of("logged-after").is_empty());
    }

    #[test]
    fn a_failure_skips_its_dependents_only_and_root_goes_back_read_only() {
        let plan = Plan {
            ops: vec![
                op("a", &[], true),
                op("b", &["a"], true),
                op("c", &["b"], false),
                op("d", &[], false),
            ],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["cmd a"],
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, 1, &mut |_| {});
        assert_eq!(out.failed.len(), 1);
        assert!(
            out.failed[0].1.contains("exited with status 5: boom"),
            "{:?}",
            out.failed
        );
        assert_eq!(out.skipped, ["01:b:up", "01:c:up"]);
        assert_eq!(out.done, ["01:d:up"]);
        let ran = r.ran.lock().unwrap().clone();
        assert_eq!(
            ran,
            [
                "mount -o remount,rw /",
                "cmd a",
                "cmd d",
                "mount -o remount,ro /"
            ]
        );
    }

    #[test]
    fn no_remount_when_root_is_writable_or_nothing_writes_it() {
        let plan = Plan {
            ops: vec![op("a", &[], false)],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec![],
            ran: Mutex::new(Vec::new()),
        };
        assert!(execute(&plan, &r, 1, &mut |_| {}).ok());
        assert_eq!(r.ran.lock().unwrap().clone(), ["cmd a"]);
    }

    #[test]
    fn when_root_cannot_be_made_writable_nothing_runs() {
        let plan = Plan {
            ops: vec![op("a", &[], true)],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["mount -o remount,rw /"],
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, 1, &mut |_| {});
        assert!(!out.ok());
        assert_eq!(r.ran.lock().unwrap().clone(), ["mount -o remount,rw /"]);
    }

    /// Two independent operations rendezvous: each waits until the other has started. They
    /// can only both finish if they run at the same time; sequentially, the first would time
    /// out and fail.
    struct Rendezvous {
        started: Mutex<BTreeSet<String>>,
        cv: std::sync::Condvar,
        ran: Mutex<Vec<String>>,
    }

    impl Runner for Rendezvous {
        fn run_input(&self, argv: &[&str], _: Option<&str>) -> Result<Output, RunError> {
            let me = argv[1].to_string();
            self.ran.lock().unwrap().push(me.clone());
            let mut st = self.started.lock().unwrap();
            st.insert(me.clone());
            self.cv.notify_all();
            let partner = match me.as_str() {
                "a" => Some("b"),
                "b" => Some("a"),
                _ => None,
            };
            let mut status = 0;
            if let Some(p) = partner {
                let (g, t) = self
                    .cv
                    .wait_timeout_while(st, Duration::from_secs(10), |s| !s.contains(p))
                    .unwrap();
                drop(g);
                if t.timed_out() {
                    status = 1;
                }
            }
            Ok(Output {
                status,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
        reads_nothing!();
    }

    #[test]
    fn independent_operations_run_side_by_side_and_dependencies_wait() {
        let plan = Plan {
            ops: vec![
                op("a", &[], false),
                op("b", &[], false),
                op("c", &["a", "b"], false),
            ],
            ..Plan::default()
        };
        let r = Rendezvous {
            started: Mutex::new(BTreeSet::new()),
            cv: std::sync::Condvar::new(),
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, 4, &mut |_| {});
        assert!(out.ok(), "{out:?}");
        let ran = r.ran.lock().unwrap().clone();
        assert_eq!(ran.len(), 3);
        assert_eq!(ran[2], "c", "c waits for both: {ran:?}");
    }

    #[test]
    fn in_parallel_a_failure_still_skips_only_its_dependents() {
        let plan = Plan {
            ops: vec![
                op("a", &[], false),
                op("b", &["a"], false),
                op("c", &["b"], false),
                op("d", &[], false),
                op("e", &["d"], false),
            ],
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["cmd a"],
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, 3, &mut |_| {});
        let mut done = out.done.clone();
        done.sort();
        assert_eq!(done, ["01:d:up", "01:e:up"]);
        let mut skipped = out.skipped.clone();
        skipped.sort();
        assert_eq!(skipped, ["01:b:up", "01:c:up"]);
        assert_eq!(out.failed.len(), 1);
        let ran = r.ran.lock().unwrap().clone();
        let pos = |x: &str| ran.iter().position(|r| r == x).unwrap();
        assert!(pos("cmd d") < pos("cmd e"));
        assert!(!ran.contains(&"cmd b".to_string()));
    }

    /// Counts the commands running at once, `xl` apart from the rest, and keeps the most seen;
    /// `xl create bad` fails. An `xl` command lasts long enough for the scheduler to start
    /// another beside it if it would; any other command waits (up to 5 s) until a second one
    /// runs beside it, so the test sees side by side for certain when the scheduler allows it.
    struct Overlap {
        now: Mutex<(usize, usize)>,
        most: Mutex<(usize, usize)>,
        cv: std::sync::Condvar,
    }

    impl Runner for Overlap {
        fn run_input(&self, argv: &[&str], _: Option<&str>) -> Result<Output, RunError> {
            let xl = argv.first() == Some(&"xl");
            {
                let mut n = self.now.lock().unwrap();
                let mut m = self.most.lock().unwrap();
                if xl {
                    n.0 += 1;
                    m.0 = m.0.max(n.0);
                } else {
                    n.1 += 1;
                    m.1 = m.1.max(n.1);
                }
                self.cv.notify_all();
            }
            if xl {
                std::thread::sleep(Duration::from_millis(30));
            } else {
                let m = self.most.lock().unwrap();
                drop(
                    self.cv
                        .wait_timeout_while(m, Duration::from_secs(5), |m| m.1 < 2)
                        .unwrap(),
                );
            }
            {
                let mut n = self.now.lock().unwrap();
                if xl { n.0 -= 1 } else { n.1 -= 1 }
            }
            let status = if argv == ["xl", "create", "bad"] {
                3
            } else {
                0
            };
            Ok(Output {
                status,
                stdout: String::new(),
                stderr: String::new(),
            })
        }
        reads_nothing!();
    }

    /// Xen's hotplug runs one at a time whatever the parallelism, other operations still side
    /// by side; a create that fails holds back nothing but what depends on it.
    #[test]
    fn xen_hotplug_runs_one_at_a_time_and_a_failure_skips_only_its_dependents() {
        let xl = |name: &str, verb: &str, after: &[&str]| {
            let mut o = op(name, after, false);
            o.effect = Effect::run(vec!["xl".into(), verb.into(), name.into()]);
            o
        };
        let plan = Plan {
            ops: vec![
                xl("bad", "create", &[]),
                xl("g1", "create", &[]),
                xl("g2", "block-attach", &[]),
                xl("g3", "create", &[]),
                op("after-bad", &["bad"], false),
                op("m1", &[], false),
                op("m2", &[], false),
                op("m3", &[], false),
            ],
            ..Plan::default()
        };
        let r = Overlap {
            now: Mutex::new((0, 0)),
            most: Mutex::new((0, 0)),
            cv: std::sync::Condvar::new(),
        };
        let out = execute(&plan, &r, 4, &mut |_| {});
        let most = *r.most.lock().unwrap();
        assert_eq!(most.0, 1, "xl hotplug ran side by side");
        assert!(most.1 >= 2, "the other operations ran one by one: {most:?}");
        assert_eq!(out.failed.len(), 1);
        assert_eq!(out.skipped, ["01:after-bad:up"]);
        let mut done = out.done.clone();
        done.sort();
        assert_eq!(
            done,
            [
                "01:g1:up", "01:g2:up", "01:g3:up", "01:m1:up", "01:m2:up", "01:m3:up"
            ]
        );
        assert!(plan.ops[0].one_at_a_time().is_some());
        assert!(plan.ops[5].one_at_a_time().is_none());
    }

    /// One run at a time follows the plan's order; an operation with two dependencies is
    /// skipped when one of them fails, naming it, and what depends on it names it in turn.
    #[test]
    fn skips_name_the_dependency_that_broke_and_one_at_a_time_keeps_plan_order() {
        let plan = Plan {
            ops: vec![
                op("a", &[], false),
                op("b", &[], false),
                op("c", &["a", "b"], false),
                op("d", &["c", "a"], false),
                op("e", &[], false),
                op("f", &["a"], false),
            ],
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["cmd b"],
            ran: Mutex::new(Vec::new()),
        };
        let mut skips = Vec::new();
        let out = execute(&plan, &r, 1, &mut |e| {
            if let Event::Skipped { op, because } = e {
                skips.push(format!("{} because {because}", op.id));
            }
        });
        assert_eq!(
            skips,
            ["01:c:up because 01:b:up", "01:d:up because 01:c:up"]
        );
        assert_eq!(out.skipped, ["01:c:up", "01:d:up"]);
        assert_eq!(out.done, ["01:a:up", "01:e:up", "01:f:up"]);
        assert_eq!(
            r.ran.lock().unwrap().clone(),
            ["cmd a", "cmd b", "cmd e", "cmd f"]
        );
    }

    /// The full scenario with md0 stopped (as after `mdadm --stop`): its members still carry
    /// the superblock, nothing above it is visible.
    fn stopped_array() -> (crate::spec::types::Spec, crate::discover::Facts) {
        let d = crate::discover::discover(&crate::runner::fixtures::runner("full")).unwrap();
        let mut facts = d.facts.clone();
        facts.arrays.clear();
        facts.lvm = Default::default();
        facts
            .blocks
            .devices
            .retain(|_, b| b.kind != "lvm" && !b.kind.starts_with("raid"));
        facts.blocks.index();
        (d.spec, facts)
    }

    #[test]
    fn a_reassembled_array_defers_what_sits_on_it_and_the_plan_says_so() {
        let (spec, facts) = stopped_array();
        let p = crate::plan::plan_host(&spec, &facts, &Default::default());
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(p.ops.len(), 1);
        assert_eq!(p.ops[0].argv()[1], "--assemble");
        let deferred: Vec<&str> = p.deferred.iter().map(|d| d.resource.as_str()).collect();
        assert!(deferred.contains(&"volume group vg0"), "{deferred:?}");
        assert!(deferred.contains(&"lv vg0/dom0_root"), "{deferred:?}");
        assert!(p.deferred.iter().all(|d| d.waits_for == "md0"));
        let text = crate::plan::render(&p, false);
        assert!(
            text.contains("… lv vg0/dom0_root  (will be planned once md0 is assembled and read)"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "1 operations, {} deferred until md0 is assembled and read.",
                p.deferred.len()
            )),
            "{text}"
        );
    }

    #[test]
    fn a_follow_up_runs_only_safe_operations_on_announced_resources() {
        let (spec, stopped) = stopped_array();
        let approved = crate::plan::plan_host(&spec, &stopped, &Default::default());
        // After assembly the array, VG and LVs are read back (the full scenario); the spec
        // now also wants a new LV on it: a safe create on an announced VG.
        let full = crate::discover::discover(&crate::runner::fixtures::runner("full")).unwrap();
        let mut more = spec.clone();
        let vg = more.volume_groups.get_index_mut(0).unwrap().1;
        let mut extra = vg.lvs.get_index(0).unwrap().1.clone();
        extra.fs = crate::spec::types::Filesystem::None;
        extra.readonly = false;
        extra.pv = None;
        vg.lvs
            .insert(crate::spec::de::Sp::bare("extra".to_string()), extra);
        let approved_more = crate::plan::plan_host(&more, &stopped, &Default::default());
        assert!(
            approved_more
                .deferred
                .iter()
                .any(|d| d.resource == "lv vg0/extra")
        );
        let next = crate::plan::plan_host(&more, &full.facts, &Default::default());
        assert_eq!(next.ops.len(), 1, "{:#?}", next.ops);
        assert_eq!(follow_up_allowed(&approved_more.deferred, &next), Ok(()));
        // An operation on a resource the approved plan did not announce never runs.
        let mut other = next.clone();
        other.ops[0].resource = "disk vda".into();
        let e = follow_up_allowed(&approved.deferred, &other).unwrap_err();
        assert!(e.contains("did not announce"), "{e}");
        // Nothing destructive, ever, and no refusals.
        let mut destructive = next.clone();
        destructive.ops[0].risk = Risk::Destructive;
        let e = follow_up_allowed(&approved_more.deferred, &destructive).unwrap_err();
        assert!(e.contains("destructive"), "{e}");
        let mut refused = next.clone();
        refused.refusals.push(crate::plan::Refusal {
            resource: "lv vg0/extra".into(),
            reason: "no".into(),
            hint: String::new(),
        });
        assert!(follow_up_allowed(&approved_more.deferred, &refused).is_err());
        // Nothing announced: nothing may run.
        assert!(follow_up_allowed(&[], &next).is_err());
    }
}
