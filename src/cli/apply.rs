//! `hostform apply`: show the plan for this host, ask, run it, then re-discover and verify
//! that the host now matches the spec. Exits 0 only when verified. With a saved plan
//! (`hostform plan --out FILE`), runs exactly that plan, or refuses when the spec or the host
//! changed since. One apply per host at a time (a lock); each one is journaled.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration as StdDuration;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use crate::apply::{FOLLOW_UP_ROUNDS, Outcome, execute, follow_up_allowed};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::runner::{RealRunner, Runner};
use crate::safe::{self, Pending, Timer};
use crate::spec::units::Duration as SpecDuration;
use crate::workflow::gate::{self, Target};
use crate::workflow::journal::{Outcome as Journaled, Record};

#[derive(clap::Args, Debug)]
#[command(mut_arg("spec", |a| a
    .value_name("SPEC|PLAN")
    .help("The spec, or a plan saved by `hostform plan --out`; `hostform.yaml` by default")))]
pub struct Args {
    /// The spec (or, as `mut_arg` above says, a saved plan) and its revision.
    #[command(flatten)]
    pub source: super::SpecSource,
    /// Allow the destructive operations the plan shows: removing what the spec marks
    /// `state: absent` (never a resource marked `prevent-destroy`).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Do not ask for confirmation (for scripts).
    #[arg(long)]
    pub auto_approve: bool,
    /// Run at most N independent operations at once.
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub parallelism: usize,
    /// Refuse unless the spec's commit carries a valid signature from a trusted key
    /// (`git verify-commit`).
    #[arg(long)]
    pub require_signed: bool,
    /// The SSH allowed-signers file that says whose signatures --require-signed trusts
    /// (default: git's `gpg.ssh.allowedSignersFile`).
    #[arg(long, value_name = "FILE", requires = "require_signed")]
    pub allowed_signers: Option<PathBuf>,
    /// When another apply holds the lock, wait this long for it (30s, 10m) before giving up.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub lock_timeout: String,
    /// Save the network state first, arm an automatic rollback, apply, verify, then keep the
    /// change only if `hostform confirm` (or `yes` on this terminal) follows within DURATION
    /// (counted from before the change): 60s, 5m. Required when the plan can cut this host
    /// off the network.
    #[arg(long, value_name = "DURATION")]
    pub confirm_within: Option<String>,
    #[command(flatten)]
    pub host: super::plan::HostArg,
    #[command(flatten)]
    pub dirs: crate::workflow::Dirs,
    /// Set by `hostform drain` / `undrain`, which apply through here.
    #[arg(skip)]
    pub drain: Option<crate::plan::Drain>,
}

/// Verification: re-read the host until the plan is empty, a few times (udev may still be
/// settling), as nmstate does.
const VERIFY_TRIES: u32 = 5;

pub fn run(args: Args, color: ColorChoice) -> i32 {
    if let Err(e) = crate::interrupt::install() {
        eprintln!("apply: cannot take over SIGINT/SIGTERM/SIGHUP: {e}");
        return EXIT_FAIL;
    }
    let spec_path = args.source.path();
    let target = match gate::target(&spec_path, args.source.rev.as_deref(), args.allow_destroy) {
        Ok(t) => t,
        Err(stopped) => return exit_code(stopped),
    };
    let confirm_within = match args.confirm_within.as_deref().map(SpecDuration::parse) {
        None => None,
        Some(Ok(d)) if d.secs() > 0 => Some(d),
        Some(Ok(_)) => {
            eprintln!("apply: --confirm-within must be longer than 0s");
            return EXIT_USAGE;
        }
        Some(Err(e)) => {
            eprintln!("apply: --confirm-within: {e}");
            return EXIT_USAGE;
        }
    };
    let (_lock, mut rec) = match gate::lock(
        &args.dirs.lock_dir,
        &args.dirs.state_dir,
        &args.lock_timeout,
    ) {
        Ok(l) => l,
        Err(stopped) => return exit_code(stopped),
    };
    let code = run_locked(&args, &target, confirm_within, color, &mut rec);
    gate::record(&args.dirs.state_dir, &mut rec);
    code
}

/// The exit code of an apply the gate stopped.
fn exit_code(stopped: gate::Stopped) -> i32 {
    match stopped {
        gate::Stopped::Usage => EXIT_USAGE,
        gate::Stopped::Refused => EXIT_FAIL,
    }
}

fn run_locked(
    args: &Args,
    target: &Target,
    confirm_within: Option<SpecDuration>,
    color: ColorChoice,
    rec: &mut Record,
) -> i32 {
    let runner = RealRunner::new();
    let spec_args = gate::SpecArgs {
        rev: args.source.rev.as_deref(),
        allow_destroy: args.allow_destroy,
        require_signed: args.require_signed,
        allowed_signers: args.allowed_signers.as_deref(),
        host: args.host.name.as_deref(),
        drain: args.drain.clone(),
    };
    let gate::Ready {
        loaded,
        plan,
        opts,
        saved,
        facts,
    } = match gate::prepare(target, &spec_args, &runner, color, rec) {
        Ok(r) => r,
        Err(stopped) => return exit_code(stopped),
    };
    rec.results(&plan, None);
    let tty = std::io::stdout().is_terminal();
    match target {
        Target::Saved { path, .. } => println!(
            "{} against this host, as saved in {}:\n",
            loaded.label,
            path.display()
        ),
        Target::Spec(_) => println!("{} against this host:\n", loaded.label),
    }
    print!("{}", crate::plan::render(&plan, color.enabled(tty)));
    if !plan.refusals.is_empty() {
        eprintln!("apply: the plan has refusals; nothing was changed");
        rec.message = Some("the plan has refusals".into());
        return EXIT_FAIL;
    }
    if !plan.has_changes() {
        println!("No changes: the host matches the spec.");
        rec.outcome = Journaled::NoChanges;
        return EXIT_OK;
    }
    // A change waiting for confirmation would be rolled back over this one: finish it first.
    match safe::read_pending(&safe::state_dir(Some(&args.dirs.state_dir))) {
        Ok(None) => {}
        Ok(Some(p)) => {
            // A change of an earlier boot waits for no timer any more: say so, or the
            // operator waits for a rollback that never comes.
            let now = safe::boot_id();
            if safe::from_another_boot(&p, now.as_deref()) {
                eprintln!(
                    "apply: {}; nothing was changed",
                    safe::explain_pending(&p, now.as_deref())
                );
            } else {
                eprintln!(
                    "apply: change {} is still waiting for confirmation; nothing was changed\n  hint: run `hostform confirm` or `hostform rollback` first",
                    p.id
                );
            }
            return EXIT_FAIL;
        }
        Err(e) => {
            eprintln!("apply: {e}; nothing was changed");
            return EXIT_FAIL;
        }
    }
    if !plan.connectivity.is_empty() && confirm_within.is_none() {
        eprintln!(
            "apply: this plan can cut this host off the network; nothing was changed\n  hint: apply it with --confirm-within 60s: it rolls back by itself unless `hostform confirm` follows"
        );
        rec.message =
            Some("the plan can cut the host off and --confirm-within was not given".into());
        return EXIT_FAIL;
    }
    if !args.auto_approve && !saved {
        rec.outcome = Journaled::Cancelled;
        if !std::io::stdin().is_terminal() {
            eprintln!("apply: no terminal to confirm on; review the plan and pass --auto-approve");
            return EXIT_FAIL;
        }
        let then = if plan.deferred.is_empty() {
            String::new()
        } else {
            format!(
                ", then plan the {} deferred resources and run only safe operations on them",
                plan.deferred.len()
            )
        };
        print!(
            "\nApply these {} operations{then}? Only `yes` is accepted: ",
            plan.ops.len()
        );
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if answer.trim() != "yes" {
            eprintln!("apply: cancelled; nothing was changed");
            return EXIT_FAIL;
        }
    }
    println!();
    // The safe path: save, arm the rollback, and hold its lock while changing the host.
    let mut safe_run = None;
    if let Some(d) = confirm_within {
        match arm(args, &loaded.spec, &plan, &facts, &runner, d) {
            Ok(s) => safe_run = Some(s),
            Err(e) => {
                eprintln!("apply: {e}; nothing was changed");
                rec.message = Some(e);
                return EXIT_FAIL;
            }
        }
    }
    // With -v the events' lines go to the terminal too: no status line for them to cut into.
    let progress = Progress::new(tty && super::log::verbose() == 0);
    progress.begin(plan.ops.len());
    crate::interrupt::set_applying(true);
    let base = rec.clone();
    let outcome = execute(
        &plan,
        &runner,
        parallelism(args),
        &mut journaled(&args.dirs.state_dir, &base, &progress),
    );
    rec.results(&plan, Some(&outcome));
    rec.outcome = Journaled::Failed;
    if let Some(signo) = crate::interrupt::requested() {
        progress.finish();
        return interrupted(
            signo, &plan, &outcome, &loaded, &opts, &runner, rec, safe_run,
        );
    }
    if !outcome.ok() {
        progress.finish();
        if let Some(s) = safe_run {
            roll_back_now(s, &runner, "the apply failed");
        }
        return failed(&outcome);
    }
    let mut applied = outcome.done.len();
    if !plan.deferred.is_empty() {
        match follow_up(&plan, &loaded, &opts, &runner, args, &progress, &base) {
            Ok(n) => applied += n,
            Err(code) => {
                progress.finish();
                if let Some(s) = safe_run {
                    roll_back_now(s, &runner, "the follow-up round failed");
                }
                return code;
            }
        }
    }
    progress.finish();
    // Verify against a fresh reading of the host.
    rec.outcome = Journaled::Unverified;
    for attempt in 1..=VERIFY_TRIES {
        let again = crate::workflow::read_host(&loaded, &runner)
            .map(|f| crate::plan::plan_host(&loaded.spec, &f, &opts));
        match again {
            Ok(p) if !p.has_changes() && p.refusals.is_empty() => {
                println!("\nVerified: the host matches the spec ({applied} operations applied).");
                let code = match safe_run {
                    Some(s) => wait_for_confirmation(s, &runner),
                    None => EXIT_OK,
                };
                if code == EXIT_OK {
                    rec.outcome = Journaled::Applied;
                } else {
                    rec.message = Some("not confirmed: rolled back".into());
                }
                return code;
            }
            Ok(p) if attempt == VERIFY_TRIES => {
                eprintln!(
                    "apply: verification failed: after applying, the host still differs from the spec:"
                );
                eprint!("{}", crate::plan::render(&p, false));
                if let Some(s) = safe_run {
                    roll_back_now(s, &runner, "verification failed");
                }
                return EXIT_FAIL;
            }
            Err(e) if attempt == VERIFY_TRIES => {
                eprintln!("apply: verification failed: {e}");
                if let Some(s) = safe_run {
                    roll_back_now(s, &runner, "verification failed");
                }
                return EXIT_FAIL;
            }
            _ => std::thread::sleep(StdDuration::from_secs(1)),
        }
    }
    EXIT_FAIL
}

/// The apply was interrupted by `signo`: the running operations finished (or were killed),
/// nothing new started. Say what ran and what did not, read the host again to say whether it
/// matches the spec, journal it as `interrupted`, and exit 128 + the signal's number.
#[allow(clippy::too_many_arguments)]
fn interrupted(
    signo: i32,
    plan: &Plan,
    outcome: &Outcome,
    loaded: &crate::spec::Loaded,
    opts: &crate::plan::Options,
    runner: &RealRunner,
    rec: &mut Record,
    safe_run: Option<SafeRun>,
) -> i32 {
    let not_run =
        plan.ops.len() - outcome.done.len() - outcome.failed.len() - outcome.skipped.len();
    let verdict = match crate::workflow::read_host(loaded, runner)
        .map(|f| crate::plan::plan_host(&loaded.spec, &f, opts))
    {
        Ok(p) if !p.has_changes() && p.refusals.is_empty() => {
            "the host matches the spec".to_string()
        }
        Ok(p) => format!(
            "the host still differs from the spec ({} operations remain)",
            p.ops.len()
        ),
        Err(e) => format!("the host could not be read again: {e}"),
    };
    eprintln!(
        "apply: interrupted by signal {signo}: {} done, {} failed, {} skipped, {not_run} not started; {verdict}\n  run `hostform apply` again to converge; `hostform history` shows what ran",
        outcome.done.len(),
        outcome.failed.len(),
        outcome.skipped.len(),
    );
    if let Some(s) = safe_run {
        roll_back_now(s, runner, "the apply was interrupted");
    }
    rec.outcome = Journaled::Interrupted;
    rec.message = Some(format!(
        "signal {signo}; {not_run} operations not started; {verdict}"
    ));
    crate::interrupt::exit_code(signo)
}

fn parallelism(args: &Args) -> usize {
    args.parallelism.clamp(1, 64)
}

fn failed(outcome: &Outcome) -> i32 {
    eprintln!(
        "apply: {} done, {} failed, {} skipped; run `hostform plan` to see what remains",
        outcome.done.len(),
        outcome.failed.len(),
        outcome.skipped.len()
    );
    EXIT_FAIL
}

/// Show each event, and journal each operation as it starts and as it ends: an apply killed
/// midway leaves in the journal what it ran (see `journal::read`). A journal that cannot be
/// written is said once; the operations already under way go on.
fn journaled<'a>(
    state_dir: &'a std::path::Path,
    base: &'a Record,
    progress: &'a Progress,
) -> impl FnMut(crate::apply::Event) + Send + 'a {
    use crate::apply::Event;
    let mut warned = false;
    move |e: Event| {
        let line = match &e {
            Event::Start { op, .. } => Some(base.operation(op, "running", None)),
            Event::Done { op, .. } => Some(base.operation(op, "done", None)),
            Event::Failed { op, error } => Some(base.operation(op, "failed", Some(error.brief()))),
            Event::Skipped { op, because } => {
                Some(base.operation(op, "skipped", Some(format!("not run: {because} failed"))))
            }
            Event::Note(_) => None,
        };
        if let Some(line) = line
            && let Err(err) = crate::workflow::journal::append(state_dir, &line)
            && !warned
        {
            warned = true;
            eprintln!("apply: WARNING: {err}; the final record is still attempted");
        }
        progress.event(e)
    }
}

/// The approved plan deferred resources until an array it assembles is read: read the host
/// again and run what they need, only if it is safe and only on those resources
/// (`follow_up_allowed`), for a few rounds. Returns how many operations ran.
fn follow_up(
    approved: &Plan,
    loaded: &crate::spec::Loaded,
    opts: &crate::plan::Options,
    runner: &RealRunner,
    args: &Args,
    progress: &Progress,
    base: &Record,
) -> Result<usize, i32> {
    let mut ran = 0;
    for round in 1..=FOLLOW_UP_ROUNDS {
        let next = match crate::workflow::read_host(loaded, runner) {
            Ok(f) => crate::plan::plan_host(&loaded.spec, &f, opts),
            Err(e) => {
                eprintln!("apply: reading the host for the follow-up round: {e}");
                return Err(EXIT_FAIL);
            }
        };
        if let Err(why) = follow_up_allowed(&approved.deferred, &next) {
            eprintln!(
                "apply: no follow-up round: {why}. Nothing more was run; review it with `hostform plan`:"
            );
            eprint!("{}", crate::plan::render(&next, false));
            return Err(EXIT_FAIL);
        }
        if next.ops.is_empty() && next.deferred.is_empty() {
            return Ok(ran);
        }
        progress.event(crate::apply::Event::Note(format!(
            "\nFollow-up round {round}: what was deferred, now that it has been read ({} operations, all safe):\n\n{}",
            next.ops.len(),
            crate::plan::render(&next, false).trim_end()
        )));
        progress.begin(next.ops.len());
        let outcome = execute(
            &next,
            runner,
            parallelism(args),
            &mut journaled(&args.dirs.state_dir, base, progress),
        );
        if !outcome.ok() {
            return Err(failed(&outcome));
        }
        ran += outcome.done.len();
        if next.deferred.is_empty() {
            return Ok(ran);
        }
    }
    eprintln!(
        "apply: still deferred after {FOLLOW_UP_ROUNDS} follow-up rounds; run `hostform plan` to see what remains"
    );
    Err(EXIT_FAIL)
}

/// A change applied on the safe path.
struct SafeRun {
    dir: PathBuf,
    id: String,
    /// The gateway answered before the change: the network works, so the default gateway
    /// after the change is watched while waiting.
    watch: bool,
    /// The state directory's lock, held until the change is applied and verified.
    held: Option<safe::Held>,
}

/// Save the network state and the files the plan writes, and arm the rollback, before
/// anything changes.
fn arm(
    args: &Args,
    spec: &crate::spec::types::Spec,
    plan: &Plan,
    facts: &crate::discover::Facts,
    runner: &RealRunner,
    within: SpecDuration,
) -> Result<SafeRun, String> {
    let dir = safe::state_dir(Some(&args.dirs.state_dir));
    let held = safe::hold(&dir)?;
    if let Some(p) = safe::read_pending(&dir)? {
        return Err(safe::explain_pending(&p, safe::boot_id().as_deref()));
    }
    let mut files = std::collections::BTreeMap::new();
    for o in &plan.ops {
        let path = match o.write() {
            Some(w) => Some(w.path.clone()),
            None if o.argv().first().map(String::as_str) == Some("rm") => o.argv().last().cloned(),
            None => None,
        };
        if let Some(p) = path {
            files.insert(p.clone(), std::fs::read_to_string(&p).ok());
        }
    }
    let answered = facts
        .net
        .default_route()
        .and_then(|r| r.gateway.clone())
        .filter(|g| safe::gateway_answers(runner, g));
    let id = format!("{}-{}", safe::now_ms(), std::process::id());
    let mut pending = Pending {
        format_version: 1,
        id: id.clone(),
        deadline_ms: safe::now_ms() + within.secs() * 1000,
        net: facts.net.clone(),
        files,
        timer: Timer::None,
        bridges: spec.bridges.keys().map(|k| k.value.clone()).collect(),
        boot_id: safe::boot_id(),
        apply_pid: Some(std::process::id()),
    };
    safe::write_pending(&dir, &pending)?;
    if let Err(e) = safe::arm(&dir, &mut pending, runner) {
        let _ = std::fs::remove_file(safe::pending_path(&dir));
        return Err(e);
    }
    let how = match &pending.timer {
        Timer::Systemd { unit } => format!("systemd timer {unit}.timer"),
        Timer::Process { pid } => format!("detached process {pid}"),
        Timer::None => String::new(),
    };
    println!(
        "Saved the network state in {}; rollback armed ({how}): unless confirmed within {within}, the change is undone.",
        safe::pending_path(&dir).display()
    );
    match &answered {
        Some(g) => println!(
            "The gateway {g} answers: the default gateway after the change is watched until confirmation."
        ),
        None => println!("No gateway answered before the change; none is watched."),
    }
    Ok(SafeRun {
        dir,
        id,
        watch: answered.is_some(),
        held: Some(held),
    })
}

fn roll_back_now(mut s: SafeRun, runner: &RealRunner, why: &str) -> i32 {
    // Take the pending change before letting go of the lock, so a `hostform confirm` waiting
    // for it cannot keep a change that failed.
    let taken = match s.held.take() {
        Some(held) => {
            let t = safe::take_held(&s.dir, Some(&s.id));
            drop(held);
            t
        }
        None => safe::take(&s.dir, Some(&s.id)),
    };
    match taken {
        Ok(Some(p)) => {
            if let Timer::Systemd { unit } = &p.timer {
                let t = format!("{unit}.timer");
                let _ = runner.run(&["systemctl", "stop", &t]);
            }
            eprintln!("apply: {why}: rolling back to the saved state");
            match safe::roll_back(&s.dir, runner, &p, &format!("apply: {why}")) {
                Ok(done) => {
                    eprintln!(
                        "apply: rolled back ({} steps); the network is as it was before",
                        done.len()
                    );
                }
                Err(e) => eprintln!("apply: the rollback did not fully succeed:\n{e}"),
            }
        }
        Ok(None) => {
            report_outcome(&s.dir, &s.id);
        }
        Err(e) => eprintln!("apply: {e}"),
    }
    EXIT_FAIL
}

fn report_outcome(dir: &std::path::Path, id: &str) -> i32 {
    // Whoever took the change writes its outcome when done (a rollback takes a few seconds).
    let since = std::time::Instant::now();
    while since.elapsed() < StdDuration::from_secs(120)
        && safe::read_outcome(dir).is_none_or(|o| o.id != id)
    {
        std::thread::sleep(StdDuration::from_millis(200));
    }
    match safe::read_outcome(dir) {
        Some(o) if o.id == id && o.outcome == "confirmed" => {
            println!("Confirmed ({}): the change is kept.", o.by);
            EXIT_OK
        }
        Some(o) if o.id == id => {
            eprintln!(
                "apply: the change was {} ({})",
                o.outcome.replace('-', " "),
                o.by
            );
            EXIT_FAIL
        }
        _ => {
            eprintln!("apply: the pending change disappeared without an outcome");
            EXIT_FAIL
        }
    }
}

/// Wait for `hostform confirm` (another process) or `yes` on the terminal until the deadline;
/// roll back at the deadline, or earlier when a gateway that answered stops answering.
fn wait_for_confirmation(mut s: SafeRun, runner: &RealRunner) -> i32 {
    drop(s.held.take());
    let deadline = match safe::read_pending(&s.dir) {
        Ok(Some(p)) if p.id == s.id => p.deadline_ms,
        _ => return report_outcome(&s.dir, &s.id),
    };
    let left = deadline.saturating_sub(safe::now_ms()) / 1000;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    if std::io::stdin().is_terminal() {
        // Only an answer typed after the change proves the terminal still reaches the host:
        // drop anything typed ahead.
        let _ = nix::sys::termios::tcflush(std::io::stdin(), nix::sys::termios::FlushArg::TCIFLUSH);
        print!(
            "\nKeep this change? Type `yes` within {left}s (or run `hostform confirm` from a new session): "
        );
        let _ = std::io::stdout().flush();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
    } else {
        println!(
            "\nWaiting {left}s for `hostform confirm` (from a new session) before rolling back."
        );
    }
    // The gateway to watch: the default route's, as the change left it.
    let gateway = if s.watch {
        crate::kinds::net::discover(runner)
            .ok()
            .and_then(|n| n.default_route().and_then(|r| r.gateway.clone()))
    } else {
        None
    };
    if let Some(g) = &gateway {
        println!(
            "Watching the gateway {g}: if it stops answering, the change is rolled back at once."
        );
    }
    let mut last_ping = std::time::Instant::now();
    let mut misses = 0;
    loop {
        match safe::read_pending(&s.dir) {
            Ok(Some(p)) if p.id == s.id => {}
            _ => return report_outcome(&s.dir, &s.id),
        }
        if safe::now_ms() >= deadline {
            return roll_back_now(s, runner, "no confirmation before the deadline");
        }
        if let Ok(l) = rx.try_recv() {
            if l.trim() == "yes" {
                return match safe::confirm(&s.dir, runner, "yes on the terminal") {
                    Ok(Some(_)) => {
                        println!("Confirmed: the change is kept.");
                        EXIT_OK
                    }
                    _ => report_outcome(&s.dir, &s.id),
                };
            }
            print!("Only `yes` keeps the change: ");
            let _ = std::io::stdout().flush();
        }
        if let Some(g) = &gateway
            && last_ping.elapsed() >= StdDuration::from_secs(2)
        {
            last_ping = std::time::Instant::now();
            if safe::gateway_answers(runner, g) {
                misses = 0;
            } else {
                misses += 1;
                if misses >= 3 {
                    let why = format!("the gateway {g} does not answer");
                    return roll_back_now(s, runner, &why);
                }
            }
        }
        std::thread::sleep(StdDuration::from_millis(200));
    }
}
