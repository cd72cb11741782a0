//! `hostform drift`: is the host still what the spec says? Read-only, for timers and
//! monitoring: exit 0 in sync, 2 drift, 1 error; a concise report, and one log event per run
//! (to the systemd journal when there is one, otherwise a line on stderr).

use serde::Serialize;
use std::path::PathBuf;

use super::log::Logging;
use super::plan::NotRead;
use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::plan::{Action, Plan};
use crate::runner::RealRunner;

/// The host differs from the spec.
pub const EXIT_DRIFT: i32 = 2;

/// The target of drift's one event per run.
pub const LOG_TARGET: &str = "hostform::drift";

/// How a run ended, as the journal's priority says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// The check could not be made (priority 3).
    Err,
    /// Drift (priority 4).
    Warning,
    /// In sync (priority 6).
    Info,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogTo {
    /// The systemd journal when its socket exists, otherwise stderr.
    #[default]
    Auto,
    Journald,
    Stderr,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::SpecSource,
    /// Compare with a snapshot from `hostform discover --format json` instead of this host.
    #[arg(long, value_name = "SNAPSHOT")]
    pub against: Option<PathBuf>,
    /// Output format of the report.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Where the one-line summary is logged.
    #[arg(long, value_enum, default_value_t)]
    pub log: LogTo,
    #[command(flatten)]
    pub host: super::plan::HostArg,
}

#[derive(Serialize)]
struct Differs<'a> {
    resource: &'a str,
    action: Action,
    reason: &'a str,
}

#[derive(Serialize)]
struct Refused<'a> {
    resource: &'a str,
    reason: &'a str,
    hint: &'a str,
}

#[derive(Serialize)]
struct Report<'a> {
    format_version: u32,
    source: &'a str,
    commit: Option<&'a str>,
    against: &'a str,
    in_sync: bool,
    differs: Vec<Differs<'a>>,
    refused: Vec<Refused<'a>>,
    unmanaged: &'a [String],
}

/// Managed resources that differ from the spec (changes and refusals), by name.
fn drifted(plan: &Plan) -> Vec<&str> {
    let mut v: Vec<&str> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| c.resource.as_str())
        .chain(plan.refusals.iter().map(|r| r.resource.as_str()))
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

pub fn run(args: Args, color: ColorChoice, logging: &Logging) -> i32 {
    let spec_path = args.source.path();
    let runner = RealRunner::new();
    let loaded = match super::load_spec(
        &spec_path,
        args.source.rev.as_deref(),
        color,
        "drift was not checked",
    ) {
        Ok(l) => l,
        Err(code) => {
            log(
                logging,
                Level::Err,
                &format!(
                    "drift: {} is not valid; drift was not checked",
                    spec_path.display()
                ),
            );
            return code;
        }
    };
    let (mut facts, against, _) = match super::plan::facts_for(
        args.against.as_deref(),
        "drift",
        &loaded.spec,
        args.host.name.as_deref(),
    ) {
        Ok(f) => f,
        Err(NotRead::Code(code)) => {
            log(
                logging,
                Level::Err,
                &format!("drift: {}: the host could not be read", loaded.label),
            );
            return code;
        }
        Err(NotRead::Host(d)) => {
            eprint!(
                "{}",
                crate::diag::render(&d, &loaded.sources, color.stderr())
            );
            log(
                logging,
                Level::Err,
                &format!(
                    "drift: {}: {}; drift was not checked",
                    loaded.label, d.message
                ),
            );
            return EXIT_FAIL;
        }
    };
    crate::workflow::read_images(&loaded, &mut facts, &runner);
    // What is allowed does not change what differs: plan as if destroying were allowed, so a
    // resource marked `state: absent` that is still there shows as drift, not as a refusal.
    let opts = crate::plan::Options {
        allow_destroy: true,
        drain: None,
    };
    let plan = crate::plan::plan_host(&loaded.spec, &facts, &opts);
    let names = drifted(&plan);
    let in_sync = names.is_empty();
    match args.format {
        Format::Json => {
            let r = Report {
                format_version: 1,
                source: &loaded.label,
                commit: loaded.commit.as_deref(),
                against: &against,
                in_sync,
                differs: plan
                    .changes
                    .iter()
                    .filter(|c| c.action != Action::NoOp)
                    .map(|c| Differs {
                        resource: &c.resource,
                        action: c.action,
                        reason: &c.reason,
                    })
                    .collect(),
                refused: plan
                    .refusals
                    .iter()
                    .map(|r| Refused {
                        resource: &r.resource,
                        reason: &r.reason,
                        hint: &r.hint,
                    })
                    .collect(),
                unmanaged: &plan.unmanaged,
            };
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        }
        Format::Text => print!("{}", report(&loaded.label, &against, &plan)),
    }
    let summary = if in_sync {
        format!("in sync: {} matches {against}", loaded.label)
    } else {
        format!(
            "drift: {} resource(s) of {} differ on {against}: {}",
            names.len(),
            loaded.label,
            names.join(", ")
        )
    };
    log(
        logging,
        if in_sync { Level::Info } else { Level::Warning },
        &summary,
    );
    if in_sync { EXIT_OK } else { EXIT_DRIFT }
}

fn report(label: &str, against: &str, plan: &Plan) -> String {
    let names = drifted(plan);
    // Every resource the plan looked at: with a change, or refused (a refused resource may
    // have no change entry, e.g. a disk that is not found).
    let checked = plan
        .changes
        .iter()
        .map(|c| c.resource.as_str())
        .chain(plan.refusals.iter().map(|r| r.resource.as_str()))
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let unmanaged = if plan.unmanaged.is_empty() {
        String::new()
    } else {
        format!(", {} unmanaged left alone", plan.unmanaged.len())
    };
    if names.is_empty() {
        return format!(
            "{label} against {against}: in sync ({checked} resources checked{unmanaged}).\n"
        );
    }
    let mut s = format!(
        "{label} against {against}: drift in {} of {checked} resources{unmanaged}:\n",
        names.len()
    );
    for c in plan.changes.iter().filter(|c| c.action != Action::NoOp) {
        s.push_str(&format!(
            "  {} {}  ({})\n",
            c.action.symbol(),
            c.resource,
            c.reason
        ));
    }
    for r in &plan.refusals {
        s.push_str(&format!("  ! {}  ({})\n", r.resource, r.reason));
    }
    s.push_str(
        "`hostform plan` shows the operations that would bring the host back to the spec.\n",
    );
    s
}

/// The run's one event: to the journal (with `HOSTFORM_EVENT=drift` to filter on) when it is
/// there, otherwise one line on stderr (or, with `-v`, the event as `-v` shows it). Never both:
/// under a timer's unit stderr is the journal too, and a second copy would be a second entry.
fn log(logging: &Logging, level: Level, msg: &str) {
    let msg = msg.replace('\n', " ");
    match level {
        Level::Err => {
            tracing::error!(target: LOG_TARGET, HOSTFORM_EVENT = "drift", "{msg}")
        }
        Level::Warning => {
            tracing::warn!(target: LOG_TARGET, HOSTFORM_EVENT = "drift", "{msg}")
        }
        Level::Info => {
            tracing::info!(target: LOG_TARGET, HOSTFORM_EVENT = "drift", "{msg}")
        }
    }
    if logging.journal {
        return;
    }
    if let Some(e) = &logging.journal_error {
        eprintln!("hostform: {e}");
    }
    if logging.verbose == 0 {
        eprintln!("hostform {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::log_capture;

    #[test]
    fn a_run_logs_one_event_with_the_fields_journalctl_filters_on() {
        log_capture::install();
        let journal = Logging {
            journal: true,
            ..Logging::default()
        };
        log(
            &journal,
            Level::Warning,
            "drift: 1 resource(s)\nof unit-x differ",
        );
        log(&journal, Level::Err, "drift: unit-y is not valid");
        let mine = |label: &str| {
            log_capture::events(|c| {
                c.target == LOG_TARGET && c.fields.get("message").is_some_and(|m| m.contains(label))
            })
        };
        let x = mine("unit-x");
        assert_eq!(x.len(), 1, "{x:?}");
        assert_eq!(x[0].level, tracing::Level::WARN);
        assert_eq!(x[0].fields["HOSTFORM_EVENT"], "drift");
        assert_eq!(
            x[0].fields["message"],
            "drift: 1 resource(s) of unit-x differ"
        );
        let y = mine("unit-y");
        assert_eq!(y.len(), 1, "{y:?}");
        assert_eq!(y[0].level, tracing::Level::ERROR);
    }

    #[test]
    fn the_report_names_each_differing_resource() {
        let loaded = crate::spec::load_str(
            "lab.yaml",
            "host: lab\ndisks:\n  a: { serial: HF-DISK-A }\nvolume-groups:\n  vg0:\n    pvs: [a]\n    lvs:\n      data: { size: 8MiB }\n",
        )
        .unwrap();
        let facts = crate::discover::discover(&crate::runner::fixtures::runner("blank"))
            .unwrap()
            .facts;
        let plan = crate::plan::plan_host(&loaded.spec, &facts, &Default::default());
        assert_eq!(drifted(&plan), ["lv vg0/data", "volume group vg0"]);
        let r = report("lab.yaml", "this host", &plan);
        assert!(
            r.starts_with("lab.yaml against this host: drift in 2 of "),
            "{r}"
        );
        assert!(r.contains("  + lv vg0/data  (no such LV)\n"), "{r}");
    }
}
