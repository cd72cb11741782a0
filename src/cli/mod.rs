//! Command-line interface: one file per subcommand, exit codes by outcome.
//!
//! Exit codes are an API (docs/operations.md lists them for every command):
//! 0 success / valid / no changes, 1 invalid input or failure, 2 usage error
//! (or "changes present" for commands with `--detailed-exitcode`), 255 internal error.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;

mod apply;
mod discover;
mod plan;
mod sandbox;
mod schema;
mod shutdown;
mod shutdown_order;
mod validate;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FAIL: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_INTERNAL: i32 = 255;

#[derive(Parser, Debug)]
#[command(
    name = "hostform",
    version,
    about = "Desired state for Linux hypervisor hosts: disks, RAID, LVM, bridges and guests, from a YAML spec in git.",
    propagate_version = true
)]
pub struct Cli {
    /// When to colour output: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check specs: syntax, names, references, capacity, dependencies. Reports every error.
    Validate(validate::Args),
    /// Print the live host in the spec language (or, with --format json, a snapshot with the
    /// observed facts). Read-only.
    Discover(discover::Args),
    /// Show what would change to make the host (or a recorded snapshot) match the spec:
    /// ordered operations with their exact commands. Read-only.
    Plan(plan::Args),
    /// Show the plan, ask, apply it to this host, then verify that the host matches the spec.
    Apply(apply::Args),
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

impl ColorChoice {
    pub fn enabled(self, stream_is_tty: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
    pub fn stderr(self) -> crate::diag::Style {
        crate::diag::Style {
            color: self.enabled(std::io::stderr().is_terminal()),
        }
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
    crate::spec::load(path, rev).map_err(|f| {
        for d in &f.diagnostics {
            eprint!("{}", crate::diag::render(d, &f.sources, color.stderr()));
        }
        eprintln!("{} is not valid; {consequence}", f.label);
        EXIT_FAIL
    })
}

pub fn main() -> i32 {
    default_sigpipe();
    let cli = match Cli::try_parse() {
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
    let result = std::panic::catch_unwind(move || match cli.command {
        Command::Validate(a) => validate::run(a, color),
        Command::Schema(a) => schema::run(a),
        Command::ShutdownOrder(a) => shutdown_order::run(a, color),
        Command::Shutdown(a) => shutdown::run(a, color, false),
        Command::Start(a) => shutdown::run(a, color, true),
        Command::Discover(a) => discover::run(a),
        Command::Plan(a) => plan::run(a, color),
        Command::Apply(a) => apply::run(a, color),
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
