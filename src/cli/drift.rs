//! `hostform drift`: is the host still what the spec says? Read-only, for timers and
//! monitoring: exit 0 in sync, 2 drift, 1 error; a concise report, and one log line (to the
//! systemd journal when there is one, otherwise to stderr).

use serde::Serialize;
use std::path::{Path, PathBuf};

use super::plan::NotRead;
use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::plan::{Action, Plan};
use crate::runner::{RealRunner, Runner};

/// The host differs from the spec.
pub const EXIT_DRIFT: i32 = 2;

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

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

pub fn run(args: Args, color: ColorChoice) -> i32 {
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
                &runner,
                args.log,
                "err",
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
                &runner,
                args.log,
                "err",
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
                &runner,
                args.log,
                "err",
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
        &runner,
        args.log,
        if in_sync { "info" } else { "warning" },
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

/// One line to the journal (with `HOSTFORM_*` fields to filter on), or to stderr.
fn log(r: &dyn Runner, to: LogTo, level: &str, msg: &str) {
    let journald = match to {
        LogTo::Journald => true,
        LogTo::Stderr => false,
        LogTo::Auto => Path::new(JOURNAL_SOCKET).exists(),
    };
    if journald {
        let priority = match level {
            "err" => 3,
            "warning" => 4,
            _ => 6,
        };
        let entry = format!(
            "MESSAGE={}\nPRIORITY={priority}\nSYSLOG_IDENTIFIER=hostform\nHOSTFORM_EVENT=drift\n",
            msg.replace('\n', " ")
        );
        match r.run_input(&["logger", "--journald"], Some(&entry)) {
            Ok(o) if o.status == 0 => return,
            Ok(o) => eprintln!("hostform: logger --journald failed: {}", o.stderr.trim()),
            Err(e) => eprintln!("hostform: {e}"),
        }
    }
    eprintln!("hostform {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Output, RunError};
    use std::sync::Mutex;

    /// Records what would be sent to `logger`, and answers as logger does.
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<(Vec<String>, Option<String>)>>,
        status: i32,
    }

    impl Runner for Recorder {
        fn run_input(&self, argv: &[&str], input: Option<&str>) -> Result<Output, RunError> {
            self.sent.lock().unwrap().push((
                argv.iter().map(|s| s.to_string()).collect(),
                input.map(str::to_string),
            ));
            Ok(Output {
                status: self.status,
                stdout: String::new(),
                stderr: if self.status == 0 {
                    String::new()
                } else {
                    "no journal".into()
                },
            })
        }
        fn read(&self, _: &str) -> Option<String> {
            None
        }
        fn list(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn resolve_link(&self, _: &str) -> Option<String> {
            None
        }
    }

    #[test]
    fn the_journal_gets_one_entry_with_fields_and_a_priority() {
        let r = Recorder::default();
        log(&r, LogTo::Journald, "warning", "drift: 1 resource(s)\nof x");
        let sent = r.sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, ["logger", "--journald"]);
        assert_eq!(
            sent[0].1.as_deref(),
            Some(
                "MESSAGE=drift: 1 resource(s) of x\nPRIORITY=4\nSYSLOG_IDENTIFIER=hostform\nHOSTFORM_EVENT=drift\n"
            )
        );
        let quiet = Recorder::default();
        log(&quiet, LogTo::Stderr, "info", "in sync");
        assert!(quiet.sent.lock().unwrap().is_empty(), "stderr: no logger");
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
