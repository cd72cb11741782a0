//! `hostform apply`: show the plan for this host, ask, run it, then re-discover and verify
//! that the host now matches the spec. Exits 0 only when verified.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::apply::{FOLLOW_UP_ROUNDS, Outcome, execute, follow_up_allowed};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::runner::RealRunner;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Read the spec from this git revision.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
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
}

/// Verification: re-read the host until the plan is empty, a few times (udev may still be
/// settling), as nmstate does.
const VERIFY_TRIES: u32 = 5;

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let loaded = match super::load_spec(
        &spec_path,
        args.rev.as_deref(),
        color,
        "nothing was changed",
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let runner = RealRunner::new();
    let facts = match read_host(&loaded, &runner) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("apply: {e}");
            return EXIT_FAIL;
        }
    };
    let opts = crate::plan::Options {
        allow_destroy: args.allow_destroy,
    };
    let plan = crate::plan::plan_host(&loaded.spec, &facts, &opts);
    let tty = std::io::stdout().is_terminal();
    println!("{} against this host:\n", loaded.label);
    print!("{}", crate::plan::render(&plan, color.enabled(tty)));
    if !plan.refusals.is_empty() {
        eprintln!("apply: the plan has refusals; nothing was changed");
        return EXIT_FAIL;
    }
    if !plan.has_changes() {
        println!("No changes: the host matches the spec.");
        return EXIT_OK;
    }
    if !args.auto_approve {
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
    let progress = Progress::new(tty);
    progress.begin(plan.ops.len());
    let outcome = execute(&plan, &runner, parallelism(&args), &mut |e| {
        progress.event(e)
    });
    if !outcome.ok() {
        progress.finish();
        return failed(&outcome);
    }
    let mut applied = outcome.done.len();
    if !plan.deferred.is_empty() {
        match follow_up(&plan, &loaded, &opts, &runner, &args, &progress) {
            Ok(n) => applied += n,
            Err(code) => {
                progress.finish();
                return code;
            }
        }
    }
    progress.finish();
    // Verify against a fresh reading of the host.
    for attempt in 1..=VERIFY_TRIES {
        let again =
            read_host(&loaded, &runner).map(|f| crate::plan::plan_host(&loaded.spec, &f, &opts));
        match again {
            Ok(p) if !p.has_changes() && p.refusals.is_empty() => {
                println!("\nVerified: the host matches the spec ({applied} operations applied).");
                return EXIT_OK;
            }
            Ok(p) if attempt == VERIFY_TRIES => {
                eprintln!(
                    "apply: verification failed: after applying, the host still differs from the spec:"
                );
                eprint!("{}", crate::plan::render(&p, false));
                return EXIT_FAIL;
            }
            Err(e) if attempt == VERIFY_TRIES => {
                eprintln!("apply: verification failed: {e}");
                return EXIT_FAIL;
            }
            _ => std::thread::sleep(Duration::from_secs(1)),
        }
    }
    EXIT_FAIL
}

/// Discovery, plus the spec's images.
fn read_host(
    loaded: &crate::spec::Loaded,
    runner: &RealRunner,
) -> Result<crate::discover::Facts, String> {
    let mut facts = crate::discover::discover(runner)?.facts;
    super::read_images(loaded, &mut facts, runner);
    Ok(facts)
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
) -> Result<usize, i32> {
    let mut ran = 0;
    for round in 1..=FOLLOW_UP_ROUNDS {
        let next = match read_host(loaded, runner) {
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
        let outcome = execute(&next, runner, parallelism(args), &mut |e| progress.event(e));
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
