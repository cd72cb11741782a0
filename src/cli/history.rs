//! `hostform history`: the apply journal, oldest first. Read-only.

use super::{EXIT_FAIL, EXIT_OK, Format};
use crate::workflow::journal;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format: text (one apply per line, with --verbose its operations), or json (one
    /// record per line, as journaled).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Show only the last N applies.
    #[arg(long, short = 'n', value_name = "N")]
    pub last: Option<usize>,
    /// Where the apply journal is kept.
    #[arg(long, value_name = "DIR", env = "HOSTFORM_STATE_DIR", hide_env_values = true, default_value = crate::workflow::DEFAULT_STATE_DIR)]
    pub state_dir: std::path::PathBuf,
}

/// `verbose`: the global `-v` (each apply's operations).
pub fn run(args: Args, verbose: bool) -> i32 {
    let (records, bad) = match journal::read(&args.state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("history: {e}");
            return EXIT_FAIL;
        }
    };
    let skip = args
        .last
        .map(|n| records.len().saturating_sub(n))
        .unwrap_or(0);
    let shown = &records[skip..];
    match args.format {
        Format::Json => {
            for r in shown {
                println!("{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        Format::Text => {
            if records.is_empty() {
                println!(
                    "No applies recorded in {}.",
                    journal::path(&args.state_dir).display()
                );
            }
            for r in shown {
                print!("{}", line(r, verbose));
            }
        }
    }
    if bad > 0 {
        eprintln!(
            "history: {bad} line(s) of {} could not be read (an interrupted write?) and were skipped",
            journal::path(&args.state_dir).display()
        );
    }
    EXIT_OK
}

fn line(r: &journal::Record, verbose: bool) -> String {
    // The journal holds strings from specs, hosts and tools' stderr: each is shown with control
    // characters escaped, so that a crafted name cannot rewrite the operator's terminal.
    let v = |s: &str| crate::diag::visible(s).into_owned();
    let count = |what: &str| r.operations.iter().filter(|o| o.result == what).count();
    let ops = if r.operations.is_empty() {
        String::new()
    } else {
        let mut s = format!("  {} ops", r.operations.len());
        for what in ["done", "failed", "skipped", "not-run", "running"] {
            let n = count(what);
            if n > 0 {
                s.push_str(&format!(", {n} {what}"));
            }
        }
        s
    };
    let mut out = format!(
        "{}  {:<10}  {}{}{}\n",
        v(&r.started),
        r.outcome.as_str(),
        v(r.spec.as_deref().unwrap_or("(spec not read)")),
        r.plan_file
            .as_ref()
            .map(|p| format!("  (plan {})", v(p)))
            .unwrap_or_default(),
        ops
    );
    if verbose {
        let who = [
            r.user.as_deref().map(|u| format!("by {}", v(u))),
            r.sudo_user
                .as_deref()
                .map(|u| format!("via sudo from {}", v(u))),
            r.ssh_client
                .as_deref()
                .and_then(|c| c.split_whitespace().next())
                .map(|ip| format!("over ssh from {}", v(ip))),
        ];
        let who: Vec<String> = who.into_iter().flatten().collect();
        if !who.is_empty() {
            out.push_str(&format!("    {}\n", who.join(", ")));
        }
    }
    if let Some(m) = &r.message {
        out.push_str(&format!(
            "    {}\n",
            v(m.lines().next().unwrap_or_default())
        ));
    }
    if verbose {
        for o in &r.operations {
            let when = match (&o.started, &o.finished) {
                (Some(a), Some(b)) => format!("  ({} .. {})", v(a), v(b)),
                _ => String::new(),
            };
            out.push_str(&format!("    [{}] {}{when}\n", v(&o.result), v(&o.summary)));
            if let Some(e) = &o.error {
                for l in e.lines() {
                    out.push_str(&format!("        {}\n", v(l)));
                }
            }
        }
    }
    out
}
