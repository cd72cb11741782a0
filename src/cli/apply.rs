//! `hostform apply`: show the plan for this host, ask, run it, then re-discover and verify
//! that the host now matches the spec. Exits 0 only when verified. With a saved plan
//! (`hostform plan --out FILE`), runs exactly that plan, or refuses when the spec or the host
//! changed since. One apply per host at a time (a lock); each one is journaled.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::apply::{Event, execute};
use crate::runner::{RealRunner, show_argv};
use crate::workflow::gate::{self, Target};
use crate::workflow::journal::{Outcome as Journaled, Record};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec, or a plan saved by `hostform plan --out`; `hostform.yaml` by default.
    #[arg(value_name = "SPEC|PLAN")]
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
    #[command(flatten)]
    pub dirs: crate::workflow::Dirs,
}

/// Verification: re-read the host until the plan is empty, a few times (udev may still be
/// settling), as nmstate does.
const VERIFY_TRIES: u32 = 5;

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let target = match gate::target(&spec_path, args.rev.as_deref(), args.allow_destroy) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let (_lock, mut rec) = match gate::lock(
        &args.dirs.lock_dir,
        &args.dirs.state_dir,
        &args.lock_timeout,
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let code = run_locked(&args, &target, color, &mut rec);
    gate::record(&args.dirs.state_dir, &mut rec);
    code
}

fn run_locked(args: &Args, target: &Target, color: ColorChoice, rec: &mut Record) -> i32 {
    let runner = RealRunner::new();
    let spec_args = gate::SpecArgs {
        rev: args.rev.as_deref(),
        allow_destroy: args.allow_destroy,
        require_signed: args.require_signed,
        allowed_signers: args.allowed_signers.as_deref(),
    };
    let gate::Ready {
        loaded,
        plan,
        opts,
        saved,
    } = match gate::prepare(target, &spec_args, &runner, color, rec) {
        Ok(r) => r,
        Err(code) => return code,
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
    if !args.auto_approve && !saved {
        rec.outcome = Journaled::Cancelled;
        if !std::io::stdin().is_terminal() {
            eprintln!("apply: no terminal to confirm on; review the plan and pass --auto-approve");
            return EXIT_FAIL;
        }
        print!(
            "\nApply these {} operations? Only `yes` is accepted: ",
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
    let outcome = execute(
        &plan,
        &runner,
        args.parallelism.clamp(1, 64),
        &mut |e| match e {
            Event::Start { .. } => {}
            Event::Done { n, total, op, took } => {
                println!(
                    "[{n}/{total}] ok ({:.1}s) {}",
                    took.as_secs_f64(),
                    op.summary
                )
            }
            Event::Failed { op, error } => {
                println!("[FAILED] {}", op.summary);
                eprintln!(
                    "apply: {} failed\n  command: {}\n  {error}",
                    op.summary,
                    show_argv(&op.argv.iter().map(String::as_str).collect::<Vec<_>>())
                );
            }
            Event::Skipped { op, because } => {
                println!("[skipped] {} (depends on failed {because})", op.summary)
            }
            Event::Note(n) => println!("{n}"),
        },
    );
    rec.results(&plan, Some(&outcome));
    rec.outcome = Journaled::Failed;
    if !outcome.ok() {
        eprintln!(
            "apply: {} done, {} failed, {} skipped; run `hostform plan` to see what remains",
            outcome.done.len(),
            outcome.failed.len(),
            outcome.skipped.len()
        );
        return EXIT_FAIL;
    }
    // Verify against a fresh reading of the host.
    rec.outcome = Journaled::Unverified;
    for attempt in 1..=VERIFY_TRIES {
        let again = crate::discover::discover(&runner)
            .map(|d| crate::plan::plan_host(&loaded.spec, &d.facts, &opts));
        match again {
            Ok(p) if !p.has_changes() && p.refusals.is_empty() => {
                println!(
                    "\nVerified: the host matches the spec ({} operations applied).",
                    outcome.done.len()
                );
                rec.outcome = Journaled::Applied;
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
