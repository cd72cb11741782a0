//! `hostform generate man|completions|units DIR`: the files the Debian package ships besides
//! the binary, written from this command line's own definition (clap) and the units' own code,
//! so that they cannot drift from the program (scripts/deb runs it). Not one of `Cli`'s
//! commands (`main` sends `hostform generate …` here before parsing), so help, the man pages
//! and the completions never show it: it is for packaging, not for operating a host.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, FromArgMatches, Parser};
use clap_complete::Shell;

use super::{Cli, EXIT_FAIL, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE};

/// Write the man pages, shell completions or systemd template units the package ships.
#[derive(Parser, Debug)]
#[command(name = "hostform generate", version = crate::version::IDENTITY)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Man pages: hostform.1 and one per subcommand (hostform-plan.1, hostform-timer-install.1).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Shell completions: hostform.bash, _hostform (zsh) and hostform.fish.
    Completions {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The systemd template units, the instance being the spec's escaped path:
    /// hostform-drift@.service and .timer (`timer install`'s units), hostform-shutdown@.service
    /// (`shutdown-order --format systemd`'s unit).
    Units {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The absolute path of the hostform the units run.
        #[arg(long, value_name = "PATH", default_value = "/usr/bin/hostform")]
        exe: String,
    },
}

/// The shells completed, with the file each one's script is written to.
pub const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "hostform.bash"),
    (Shell::Zsh, "_hostform"),
    (Shell::Fish, "hostform.fish"),
];

/// `hostform generate …`: `args` from `generate` on.
pub fn main(args: impl Iterator<Item = std::ffi::OsString>) -> i32 {
    let mut cmd = Args::command().bin_name("hostform generate");
    let parsed = cmd
        .try_get_matches_from_mut(args)
        .and_then(|m| Args::from_arg_matches(&m));
    match parsed {
        // As every command: a panic is reported as a bug, with its exit code.
        Ok(a) => std::panic::catch_unwind(move || run(a)).unwrap_or_else(|_| {
            eprintln!(
                "hostform: internal error (a bug): please report it with the command that caused it"
            );
            EXIT_INTERNAL
        }),
        Err(e) => {
            let _ = e.print();
            match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    EXIT_OK
                }
                _ => EXIT_USAGE,
            }
        }
    }
}

fn run(args: Args) -> i32 {
    let (dir, files) = match args.what {
        What::Man { dir } => (dir, man_pages()),
        What::Completions { dir } => (dir, completions()),
        What::Units { dir, exe } => {
            if !exe.starts_with('/') {
                eprintln!("generate: --exe {exe:?}: give hostform's absolute path");
                return EXIT_USAGE;
            }
            match units(&exe) {
                Ok(files) => (dir, files),
                Err(e) => {
                    eprintln!("generate: cannot write the units: {e}");
                    return EXIT_FAIL;
                }
            }
        }
    };
    match write_all(&dir, &files) {
        Ok(()) => {
            for (name, _) in &files {
                println!("{}", dir.join(name).display());
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("generate: {e}");
            EXIT_FAIL
        }
    }
}

fn write_all(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (name, bytes) in files {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

/// The command as the package documents it: built, without clap's `help` subcommand (each
/// command has its own --help).
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// One page per command that help shows, the subcommands' pages named after their path
/// (`hostform-timer-install.1`), as clap_mangen names them.
fn man_pages() -> Vec<(String, Vec<u8>)> {
    fn walk(cmd: &clap::Command, date: &str, out: &mut Vec<(String, Vec<u8>)>) {
        // Every page's source is the program, as `--version` names it (clap_mangen would name
        // a subcommand's page after the subcommand).
        let man = clap_mangen::Man::new(cmd.clone())
            .source(format!("hostform {}", crate::version::IDENTITY))
            .date(date)
            .manual("hostform manual");
        let mut page = Vec::new();
        // Rendering into memory cannot fail.
        let _ = man.render(&mut page);
        out.push((man.get_filename(), page));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, date, out);
        }
    }
    let mut out = Vec::new();
    walk(&command(), &man_date(), &mut out);
    out
}

/// The pages' date (`.TH`'s third field, which must not be empty: the fields after it would
/// shift): `SOURCE_DATE_EPOCH`'s day when set, as reproducible builds set it (scripts/deb
/// gives the commit's time), otherwise today's. `YYYY-MM-DD`, UTC.
fn man_date() -> String {
    let t = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .and_then(|secs| std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs)))
        .unwrap_or_else(std::time::SystemTime::now);
    crate::clock::rfc3339(t).chars().take(10).collect()
}

fn completions() -> Vec<(String, Vec<u8>)> {
    SHELLS
        .iter()
        .map(|(shell, file)| {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command(), "hostform", &mut script);
            (file.to_string(), script)
        })
        .collect()
}

fn units(exe: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let drift = crate::workflow::timer::template_units(Path::new(exe))?;
    let shutdown = crate::shutdown::render_systemd_template(exe)?;
    let t = crate::workflow::timer::TEMPLATE;
    Ok(vec![
        (format!("{t}.service"), drift.service.into_bytes()),
        (format!("{t}.timer"), drift.timer.into_bytes()),
        (
            format!("{}.service", crate::shutdown::TEMPLATE),
            shutdown.into_bytes(),
        ),
    ])
}
