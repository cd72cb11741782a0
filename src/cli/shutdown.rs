//! `hostform shutdown` and `hostform start`: stop the guests in dependency order (each with
//! its timeout, then the spec's policy), or start them in the reverse order.

use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::runner::RealRunner;
use crate::shutdown::{
    self,
    run::{Backends, Log, RunOptions, render_summary},
};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Only list the running guests and what would be done, in order; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The summary at the end: a table, or JSON (with every guest's timestamps).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Also append the log lines to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    #[command(flatten)]
    pub host: super::plan::HostArg,
}

/// The run must survive the terminal or SSH session that started it: ignore SIGHUP, and
/// SIGPIPE (writes to a vanished terminal then fail, and are ignored, instead of killing us).
#[allow(unsafe_code)]
fn survive_hangup() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: installing SIG_IGN runs no Rust code in signal context.
    unsafe {
        let _ = signal(Signal::SIGHUP, SigHandler::SigIgn);
        let _ = signal(Signal::SIGPIPE, SigHandler::SigIgn);
    }
}

pub fn run(args: Args, color: ColorChoice, start: bool) -> i32 {
    survive_hangup();
    let path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let what = if start {
        "no guest started"
    } else {
        "no guest stopped"
    };
    let loaded = match super::load_spec(&path, None, color, what) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let spec = &loaded.spec;
    // Which host the spec is for. `start` refuses another host's spec. `shutdown` says so and
    // goes on: it runs when the host powers off, and refusing would leave the guests to be
    // killed instead of stopped.
    {
        use crate::workflow::host::{self, Seen};
        let seen = Seen::Host(host::read_hostname(&RealRunner::new()));
        if let Err(d) = host::check(spec, &seen, args.host.name.as_deref()) {
            eprint!(
                "{}",
                crate::diag::render(&d, &loaded.sources, color.stderr())
            );
            if start {
                eprintln!("{}: refused by the host check; {what}", loaded.label);
                return EXIT_FAIL;
            }
            eprintln!(
                "{}: WARNING: this spec is not this host's; the guests it names are stopped anyway, since the host may be going down",
                loaded.label
            );
        }
    }
    let order = match shutdown::order(spec) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{}: {e}; {what}", loaded.label);
            return EXIT_FAIL;
        }
    };
    let file = match &args.log {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("cannot open the log file {}: {e}; {what}", p.display());
                return EXIT_FAIL;
            }
        },
        None => None,
    };
    let log = Log::new(file);
    let runner = RealRunner::new();
    let backends = Backends::for_spec(spec, &runner);
    let opts = RunOptions {
        dry_run: args.dry_run,
        ..RunOptions::default()
    };
    let summary = if start {
        shutdown::run::start(&runner, spec, &order, &backends, opts, &log)
    } else {
        shutdown::run::shutdown(spec, &order, &backends, opts, &log)
    };
    let out = match args.format {
        Format::Text => render_summary(&summary),
        Format::Json => serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n",
    };
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(out.as_bytes());
        let _ = std::io::stdout().flush();
    }
    if summary.ok { EXIT_OK } else { EXIT_FAIL }
}
