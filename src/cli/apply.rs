//! `hostform apply`: show the plan for this host, ask, run it, then re-discover and verify
//! that the host now matches the spec. Exits 0 only when verified.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::apply::{Event, execute};
use crate::runner::{RealRunner, show_argv};

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
    let facts = match crate::discover::discover(&runner) {
        Ok(d) => d.facts,
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
    for attempt in 1..=VERIFY_TRIES {
        let again = crate::discover::discover(&runner)
            .map(|d| crate::plan::plan_host(&loaded.spec, &d.facts, &opts));
        match again {
            Ok(p) if !p.has_changes() && p.refusals.is_empty() => {
                println!(
                    "\nVerified: the host matches the spec ({} operations applied).",
                    outcome.done.len()
                );
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
