//! `hostform timer install|remove`: a systemd timer that runs `hostform drift` on the spec
//! (Persistent=true). Shows the units and how to enable them; enabling stays with the operator.

use std::path::{Path, PathBuf};

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use crate::runner::{RealRunner, Runner, find_program};
use crate::workflow::timer;

const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write NAME.service (runs `hostform drift SPEC`) and NAME.timer, check them with
    /// `systemd-analyze verify`, and show them.
    Install(Install),
    /// Remove the units written by `timer install` (disable the timer first).
    Remove(Remove),
}

#[derive(clap::Args, Debug)]
pub struct Install {
    /// The spec to check; `hostform.yaml` by default. Kept as an absolute path in the unit.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Check the spec at this git revision (a branch is read again at every run).
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// How often: 15m, 1h, 6h, 1d (periods that divide an hour or a day evenly).
    #[arg(long, value_name = "PERIOD", conflicts_with = "on_calendar")]
    pub every: Option<String>,
    /// A systemd calendar expression (`systemd.time(7)`), e.g. `Mon..Fri 08:00`.
    #[arg(long, value_name = "CALENDAR")]
    pub on_calendar: Option<String>,
    #[command(flatten)]
    pub host: super::plan::HostArg,
    #[command(flatten)]
    pub units: Units,
}

#[derive(clap::Args, Debug)]
pub struct Remove {
    #[command(flatten)]
    pub units: Units,
}

#[derive(clap::Args, Debug)]
pub struct Units {
    /// The units' name (several specs on one host need several names).
    #[arg(long, default_value = "hostform-drift")]
    pub name: String,
    /// Where the units are written.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_UNIT_DIR)]
    pub unit_dir: PathBuf,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    match args.action {
        Action::Install(a) => install(a, color),
        Action::Remove(a) => remove(a),
    }
}

fn paths(u: &Units) -> (PathBuf, PathBuf) {
    (
        u.unit_dir.join(format!("{}.service", u.name)),
        u.unit_dir.join(format!("{}.timer", u.name)),
    )
}

fn install(a: Install, color: ColorChoice) -> i32 {
    if let Err(e) = timer::check_name(&a.units.name) {
        eprintln!("timer: {e}");
        return EXIT_USAGE;
    }
    let runner = RealRunner::new();
    let on_calendar = match (&a.every, &a.on_calendar) {
        (_, Some(c)) => match check_calendar(&runner, c) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("timer: {e}");
                return EXIT_USAGE;
            }
        },
        (Some(e), None) => match timer::every(e) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("timer: {e}");
                return EXIT_USAGE;
            }
        },
        (None, None) => "hourly".to_string(),
    };
    let spec_path = a
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    // A timer that fails at every run helps nobody: the spec must load now.
    let loaded = match super::load_spec(
        &spec_path,
        a.rev.as_deref(),
        color,
        "no timer was installed",
    ) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Nor does one that checks a spec of another host: every run would be refused.
    let hostname = crate::workflow::host::read_hostname(&runner);
    if let Err(d) = crate::workflow::host::check(
        &loaded.spec,
        &crate::workflow::host::Seen::Host(hostname),
        a.host.name.as_deref(),
    ) {
        eprint!(
            "{}",
            crate::diag::render(&d, &loaded.sources, color.stderr())
        );
        eprintln!(
            "timer: {}: refused by the host check; no timer was installed",
            loaded.label
        );
        return EXIT_FAIL;
    }
    let spec_abs = loaded.root.join(&loaded.rel);
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("timer: cannot find hostform's own path: {e}");
            return EXIT_FAIL;
        }
    };
    let units = match timer::units(
        &a.units.name,
        &exe,
        &spec_abs,
        a.rev.as_deref(),
        a.host.name.as_deref(),
        &on_calendar,
    ) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("timer: {e}");
            return EXIT_FAIL;
        }
    };
    let (service, timer_path) = paths(&a.units);
    for (p, text) in [(&service, &units.service), (&timer_path, &units.timer)] {
        if let Err(e) = runner.write_file(&p.to_string_lossy(), text, 0o644) {
            eprintln!("timer: {e}");
            return EXIT_FAIL;
        }
    }
    if let Err(e) = verify(&runner, &service, &timer_path) {
        eprintln!(
            "timer: {e}\ntimer: the units did not pass `systemd-analyze verify`; they were removed"
        );
        let _ = runner.remove_file(&service.to_string_lossy());
        let _ = runner.remove_file(&timer_path.to_string_lossy());
        return EXIT_FAIL;
    }
    println!("# {}\n{}", service.display(), units.service);
    println!("# {}\n{}", timer_path.display(), units.timer);
    println!(
        "Start it with:\n  systemctl daemon-reload\n  systemctl enable --now {}.timer\nSee its runs with `journalctl -u {}.service` and `systemctl list-timers {}.timer`.",
        a.units.name, a.units.name, a.units.name
    );
    EXIT_OK
}

/// `systemd-analyze calendar` normalizes and validates the expression where systemd is
/// installed; elsewhere only its form is checked.
fn check_calendar(r: &dyn Runner, c: &str) -> Result<String, String> {
    let c = c.trim();
    if c.is_empty() || c.contains(['\n', '\r']) {
        return Err(format!("--on-calendar {c:?} is not a calendar expression"));
    }
    if find_program("systemd-analyze").is_none() {
        return Ok(c.to_string());
    }
    let out = r
        .run(&["systemd-analyze", "calendar", c])
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(format!(
            "--on-calendar {c:?}: {} (see `man systemd.time`, e.g. hourly, daily, `*-*-* 00/6:00:00`)",
            out.stderr.trim()
        ));
    }
    Ok(c.to_string())
}

/// `systemd-analyze verify` on the written units, where systemd is installed.
fn verify(r: &dyn Runner, service: &Path, timer: &Path) -> Result<(), String> {
    if find_program("systemd-analyze").is_none() {
        return Ok(());
    }
    let out = r
        .run(&[
            "systemd-analyze",
            "verify",
            &service.to_string_lossy(),
            &timer.to_string_lossy(),
        ])
        .map_err(|e| e.to_string())?;
    if out.status != 0 {
        return Err(out.stderr.trim().to_string());
    }
    Ok(())
}

fn remove(a: Remove) -> i32 {
    if let Err(e) = timer::check_name(&a.units.name) {
        eprintln!("timer: {e}");
        return EXIT_USAGE;
    }
    let (service, timer_path) = paths(&a.units);
    let wants = a
        .units
        .unit_dir
        .join("timers.target.wants")
        .join(format!("{}.timer", a.units.name));
    if wants.symlink_metadata().is_ok() {
        eprintln!(
            "timer: {}.timer is enabled; disable it first:\n  systemctl disable --now {}.timer\nnothing was removed",
            a.units.name, a.units.name
        );
        return EXIT_FAIL;
    }
    let runner = RealRunner::new();
    let mut removed = 0;
    for p in [&service, &timer_path] {
        if !p.exists() {
            continue;
        }
        if let Err(e) = runner.remove_file(&p.to_string_lossy()) {
            eprintln!("timer: {e}");
            return EXIT_FAIL;
        }
        println!("removed {}", p.display());
        removed += 1;
    }
    if removed == 0 {
        println!(
            "No {}.service or {}.timer in {}: nothing to remove.",
            a.units.name,
            a.units.name,
            a.units.unit_dir.display()
        );
    } else {
        println!("Run `systemctl daemon-reload` so systemd forgets them.");
    }
    EXIT_OK
}
