//! Command-line interface: one file per subcommand, exit codes by outcome.
//!
//! Exit codes are an API (docs/operations.md lists them for every command):
//! 0 success / valid / no changes, 1 invalid input or failure, 2 "changes present" (for
//! `drift` and the commands with `--detailed-exitcode`), 64 usage error (EX_USAGE: an unknown
//! flag or a bad value, so that a typo in a CI step or a timer is never read as drift),
//! 255 internal error.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

pub use crate::diag::ColorChoice;

mod apply;
mod confirm;
mod discover;
mod drain;
mod drift;
mod generate;
mod history;
pub mod log;
mod net_config;
mod plan;
mod resolve;
mod rollback;
mod sandbox;
mod sandbox_cluster;
mod schema;
mod show;
mod shutdown;
mod shutdown_order;
mod timer;
mod timings;
mod validate;

/// Leave what a command built to the process's exit instead of freeing it: a plan at 50,000
/// resources holds millions of small strings (ops, their commands and dependencies, the spec,
/// the facts), and freeing them one by one costs a tenth of its run. Only for values kept
/// until the command returns and the process exits.
fn left_to_exit<T>(values: T) {
    std::mem::forget(values);
}

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
/// EX_USAGE (sysexits.h): an unknown flag, a bad value. Distinct from 2 (changes, drift).
pub const EXIT_USAGE: i32 = 64;
pub const EXIT_INTERNAL: i32 = 255;

#[derive(Parser, Debug)]
#[command(
    name = "hostform",
    version = crate::version::IDENTITY,
    about = "Desired state for Linux hypervisor hosts: disks, RAID, LVM, bridges and guests, from a YAML spec in git.",
    propagate_version = true
)]
pub struct Cli {
    /// When to colour output: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Show on stderr each operation's start and end with its command (-vv: every command
    /// run, reads too), and drift's log line; for `history`, each apply's operations.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check specs: syntax, names, references, capacity, dependencies. Reports every error.
    Validate(validate::Args),
    /// Print the spec as the planner sees it: includes, vm-defaults, templates and `like` applied.
    ///
    /// Each guest and disk is spelled out. The output is a spec of its own, which validates and
    /// plans as the original does. Reads nothing from the host.
    Resolve(resolve::Args),
    /// Print the live host in the spec language (or, with --format json, a snapshot with the
    /// observed facts). Read-only.
    Discover(discover::Args),
    /// Show what would change to make the host (or a recorded snapshot) match the spec:
    /// ordered operations with their exact commands. Read-only.
    Plan(plan::Args),
    /// Show the plan, ask, apply it to this host, then verify that the host matches the spec.
    /// Or apply exactly a plan saved with `plan --out`. One apply at a time; each is journaled.
    Apply(apply::Args),
    /// Drain a host of a cluster: move every guest it runs to the other hosts, one live
    /// migration at a time, and keep it drained (a tag on the shared VG that every host
    /// reads). Run on that host, with its spec; a host that has stopped renewing its sanlock
    /// lease (lost) is drained from another host, whose plan waits until sanlock calls it dead,
    /// then starts its guests from their disks. Shows the plan and asks, as `apply` does.
    Drain(drain::DrainArgs),
    /// Undo `drain HOST`: the host is drained no more, and the guests this host runs for it
    /// go back to it. Run on each host that took some of its guests, with that host's spec.
    Undrain(drain::DrainArgs),
    /// Print a plan saved with `plan --out`, and whether it is empty. Read-only.
    Show(show::Args),
    /// Does the host still match the spec? Exit 0 in sync, 2 drift, 1 error. Read-only.
    Drift(drift::Args),
    /// The journal of applies on this host. Read-only.
    History(history::Args),
    /// Install or remove a systemd timer that runs `hostform drift` on a schedule.
    Timer(timer::Args),
    /// Keep a change applied with `apply --confirm-within`: disarm its automatic rollback.
    /// Run it from a new session, to prove the host is still reachable.
    Confirm(confirm::Args),
    /// Roll back a change applied with `apply --confirm-within` to the saved network state
    /// (run by the armed timer; an operator may run it to roll back at once).
    Rollback(rollback::Args),
    /// Only generate the network configuration files of a spec (ifupdown or networkd), for
    /// deployment with another tool. Reads nothing from the host.
    NetConfig(net_config::Args),
    /// Print the JSON Schema of the spec language.
    Schema(schema::Args),
    /// Print the order in which the guests stop: batches computed from depends-on (or an
    /// xendomains list, or a systemd unit that runs the shutdown at host shutdown).
    ShutdownOrder(shutdown_order::Args),
    /// Stop the guests in dependency order, the guests of a batch side by side, each with its
    /// timeout and then the spec's on-timeout policy. Survives a lost terminal (SIGHUP).
    Shutdown(shutdown::Args),
    /// Start the spec's guests in the reverse of the shutdown order (dependencies first).
    Start(shutdown::Args),
    /// Boot a throwaway VM shaped like the spec's host (same disk ids, scaled sizes, same NIC
    /// names) and run hostform or a command inside it, on a real kernel.
    Sandbox(sandbox::Args),
}

/// The spec a command reads: a file, at a git revision or in the work tree. Flattened into
/// each command that reads one spec, so that every command spells these the same.
#[derive(clap::Args, Debug, Clone)]
pub struct SpecSource {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<std::path::PathBuf>,
    /// Read the spec from this git revision.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
}

impl SpecSource {
    /// The spec's path: the one given, or `hostform.yaml`.
    pub fn path(&self) -> std::path::PathBuf {
        self.spec.clone().unwrap_or_else(|| "hostform.yaml".into())
    }
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

/// `--color` as the command line gives it (the last one wins), before it is parsed: clap
/// writes help, usage and errors with it (its `auto` also means a terminal and NO_COLOR
/// unset).
fn color_from_args(args: impl Iterator<Item = std::ffi::OsString>) -> ColorChoice {
    let mut choice = ColorChoice::Auto;
    let mut args = args.skip(1);
    while let Some(a) = args.next() {
        let value: Option<std::ffi::OsString> = match a.to_str() {
            Some("--") => break,
            Some("--color") => args.next(),
            Some(a) => a.strip_prefix("--color=").map(Into::into),
            None => None,
        };
        if let Some(v) = value.as_deref().and_then(|v| v.to_str()) {
            choice = ColorChoice::from_str(v, false).unwrap_or(choice);
        }
    }
    choice
}

fn clap_color(choice: ColorChoice) -> clap::ColorChoice {
    match choice {
        ColorChoice::Auto => clap::ColorChoice::Auto,
        ColorChoice::Always => clap::ColorChoice::Always,
        ColorChoice::Never => clap::ColorChoice::Never,
    }
}

/// Die quietly on a closed pipe (`hostform validate | head`), as other Unix tools do,
/// instead of failing a write and reporting an internal error.
#[allow(unsafe_code)]
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: restoring the default disposition installs no Rust handler; nothing runs
    // in signal context.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Load and validate a spec for a command; on failure, print every diagnostic and `consequence`
/// (what did not happen), and give the exit code.
pub(crate) fn load_spec(
    path: &std::path::Path,
    rev: Option<&str>,
    color: ColorChoice,
    consequence: &str,
) -> Result<crate::spec::Loaded, i32> {
    crate::workflow::load_spec(path, rev, color, consequence).map_err(|_| EXIT_FAIL)
}

pub fn main() -> i32 {
    default_sigpipe();
    // Packaging's own command, outside `Cli` so that help, the man pages and the completions
    // it writes never offer it to operators.
    if std::env::args_os().nth(1).is_some_and(|a| a == "generate") {
        return generate::main(std::env::args_os().skip(1));
    }
    let mut command = Cli::command().color(clap_color(color_from_args(std::env::args_os())));
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m).map_err(|e| e.format(&mut command)));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            };
        }
    };
    let color = cli.color;
    let journal = match &cli.command {
        Command::Drift(a) => match a.log {
            drift::LogTo::Auto => log::Journal::Auto,
            drift::LogTo::Journald => log::Journal::Required,
            drift::LogTo::Stderr => log::Journal::Off,
        },
        _ => log::Journal::Auto,
    };
    let logging = log::init(cli.verbose, journal);
    let verbose = cli.verbose > 0;
    let result = std::panic::catch_unwind(move || match cli.command {
        Command::Validate(a) => validate::run(a, color),
        Command::Resolve(a) => resolve::run(a, color),
        Command::Schema(a) => schema::run(a),
        Command::ShutdownOrder(a) => shutdown_order::run(a, color),
        Command::Shutdown(a) => shutdown::run(a, color, false),
        Command::Start(a) => shutdown::run(a, color, true),
        Command::Discover(a) => discover::run(a),
        Command::Plan(a) => plan::run(a, color),
        Command::Apply(a) => apply::run(a, color),
        Command::Drain(a) => drain::run(a, true, color),
        Command::Undrain(a) => drain::run(a, false, color),
        Command::Show(a) => show::run(a, color),
        Command::Drift(a) => drift::run(a, color, &logging),
        Command::History(a) => history::run(a, verbose),
        Command::Timer(a) => timer::run(a, color),
        Command::Confirm(a) => confirm::run(a),
        Command::Rollback(a) => rollback::run(a),
        Command::NetConfig(a) => net_config::run(a, color),
        Command::Sandbox(a) => sandbox::run(a, color),
    });
    match result {
        Ok(code) => code,
        Err(_) => {
            eprintln!(
                "hostform: internal error (a bug): please report it with the command and spec that caused it"
            );
            EXIT_INTERNAL
        }
    }
}
