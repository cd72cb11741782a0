//! `hostform plan`: what would change on this host (or on a recorded snapshot) to match the
//! spec, as ordered operations with their exact commands. Read-only.

use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};

/// `plan --format` (its values are described in the option's help, which stays short).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PlanFormat {
    // The changes and their operations with their exact commands, for people.
    #[default]
    Text,
    // The plan as JSON (format_version 1, docs/plan-format.md).
    Json,
    // The operations' graph in Graphviz's DOT language (`crate::plan::dot`).
    Dot,
}

/// `--detailed-exitcode`: changes present.
pub const EXIT_CHANGES: i32 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::SpecSource,
    /// Plan against a snapshot from `hostform discover --format json` instead of this host.
    #[arg(long, value_name = "SNAPSHOT")]
    pub against: Option<PathBuf>,
    /// Output format: text for people, json (docs/plan-format.md), or dot, the operations'
    /// graph for Graphviz (`dot -Tsvg`): a cluster per resource, coloured by action.
    #[arg(long, value_enum, default_value_t)]
    pub format: PlanFormat,
    /// Allow the destructive operations the plan shows: removing what the spec marks
    /// `state: absent` (never a resource marked `prevent-destroy`).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on errors or refusals.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan to FILE, for `hostform apply FILE` to run exactly it (or refuse if
    /// the host or the spec changed since) and `hostform show FILE` to print it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub host: HostArg,
}

/// `--host NAME`, for every command that compares a spec with a host.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct HostArg {
    /// This host is NAME, whatever its hostname (or the host an --against snapshot recorded)
    /// says; NAME must match the spec's `host:`. Without it, a spec for another host is
    /// refused (`shutdown` warns and stops the guests anyway).
    #[arg(id = "host", long = "host", value_name = "NAME", value_parser = parse_host)]
    pub name: Option<String>,
}

fn parse_host(s: &str) -> Result<String, String> {
    crate::workflow::host::parse_name(s)
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    format_version: u32,
    source: &'a str,
    against: &'a str,
    has_changes: bool,
    applicable: bool,
    #[serde(flatten)]
    plan: &'a crate::plan::Plan,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let mut timings = super::timings::Timings::start();
    let code = plan(args, color, &mut timings);
    timings.report();
    code
}

fn plan(args: Args, color: ColorChoice, timings: &mut super::timings::Timings) -> i32 {
    let spec_path = args.source.path();
    let loaded = match crate::spec::load(&spec_path, args.source.rev.as_deref()) {
        Ok(l) => l,
        Err(f) => {
            for d in &f.diagnostics {
                eprint!("{}", crate::diag::render(d, &f.sources, color.stderr()));
            }
            eprintln!("{} is not valid; no plan was made", f.label);
            // JSON readers get the diagnostics `validate --format json` gives.
            if args.format == PlanFormat::Json {
                super::validate::print_json_failure(&spec_path, &f);
            }
            return EXIT_FAIL;
        }
    };
    timings.mark("spec");
    let (mut facts, against, host) = match facts_for(
        args.against.as_deref(),
        "plan",
        &loaded.spec,
        args.host.name.as_deref(),
    ) {
        Ok(f) => f,
        Err(NotRead::Code(code)) => return code,
        Err(NotRead::Host(d)) => {
            eprint!(
                "{}",
                crate::diag::render(&d, &loaded.sources, color.stderr())
            );
            eprintln!(
                "{}: refused by the host check; no plan was made",
                loaded.label
            );
            if args.format == PlanFormat::Json {
                super::validate::print_json_errors(&spec_path, &loaded, &[*d]);
            }
            return EXIT_FAIL;
        }
    };
    crate::workflow::read_images(&loaded, &mut facts, &crate::runner::RealRunner::new());
    timings.mark(if args.against.is_some() {
        "snapshot"
    } else {
        "host"
    });
    let opts = crate::plan::Options {
        allow_destroy: args.allow_destroy,
        drain: None,
    };
    let plan = crate::plan::plan_host(&loaded.spec, &facts, &opts);
    timings.mark("plan");
    match args.format {
        PlanFormat::Text => {
            println!("{} against {against}:\n", loaded.label);
            print!(
                "{}",
                crate::plan::render(&plan, color.enabled(std::io::stdout().is_terminal()))
            );
        }
        PlanFormat::Dot => print!(
            "{}",
            crate::plan::dot::render_dot(&plan, &format!("{} against {against}", loaded.label))
        ),
        PlanFormat::Json => {
            let j = JsonPlan {
                format_version: 1,
                source: &loaded.label,
                against: &against,
                has_changes: plan.has_changes(),
                applicable: plan.refusals.is_empty(),
                plan: &plan,
            };
            println!("{}", serde_json::to_string_pretty(&j).unwrap_or_default());
        }
    }
    timings.mark("output");
    if let Some(out) = &args.out
        && let Err(code) = save(
            out,
            &loaded,
            args.source.rev.as_deref(),
            &facts,
            &against,
            &host,
            &opts,
            &plan,
        )
    {
        return code;
    }
    let code = if !plan.refusals.is_empty() {
        EXIT_FAIL
    } else if args.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    };
    super::left_to_exit((loaded, facts, plan));
    code
}

/// Why `facts_for` read no facts.
pub(crate) enum NotRead {
    /// Reported already; the exit code.
    Code(i32),
    /// The spec is for another host (`crate::workflow::host`): for the caller to report.
    Host(Box<crate::diag::Diagnostic>),
}

/// The facts to plan against: a snapshot from `hostform discover --format json`, or this host;
/// with how to name them (`snapshot FILE`, `this host`) and the name of the host they are taken
/// to be of. The spec's host must be that host (or `given`, from `--host`): this host is not
/// read when its name does not match.
pub(crate) fn facts_for(
    against: Option<&std::path::Path>,
    cmd: &str,
    spec: &crate::spec::Spec,
    given: Option<&str>,
) -> Result<(crate::discover::Facts, String, String), NotRead> {
    use crate::workflow::host::{self, Seen};
    match against {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                eprintln!("{cmd}: {}: {e}", p.display());
                NotRead::Code(EXIT_FAIL)
            })?;
            match serde_json::from_str::<crate::discover::Discovered>(&text) {
                Ok(mut d) => {
                    let name = host::check(spec, &Seen::snapshot(p, &d.spec), given)
                        .map_err(NotRead::Host)?;
                    d.facts.blocks.index();
                    Ok((d.facts, format!("snapshot {}", p.display()), name))
                }
                Err(e) => {
                    eprintln!(
                        "{cmd}: {} is not a snapshot from `hostform discover --format json`: {e}",
                        p.display()
                    );
                    Err(NotRead::Code(EXIT_FAIL))
                }
            }
        }
        None => {
            let runner = crate::runner::RealRunner::new();
            let name = host::check(spec, &Seen::Host(host::read_hostname(&runner)), given)
                .map_err(NotRead::Host)?;
            match crate::discover::discover(&runner) {
                Ok(mut d) => {
                    crate::kinds::guest::read_spec_xl_configs(&runner, spec, &mut d.facts.guests);
                    Ok((d.facts, "this host".to_string(), name))
                }
                Err(e) => {
                    eprintln!("{cmd}: {e}");
                    Err(NotRead::Code(EXIT_FAIL))
                }
            }
        }
    }
}

/// `--out`: write the saved plan (not when it has refusals: it could not be applied).
#[allow(clippy::too_many_arguments)]
fn save(
    out: &std::path::Path,
    loaded: &crate::spec::Loaded,
    rev: Option<&str>,
    facts: &crate::discover::Facts,
    against: &str,
    host: &str,
    opts: &crate::plan::Options,
    plan: &crate::plan::Plan,
) -> Result<(), i32> {
    use crate::workflow::saved;
    if !plan.refusals.is_empty() {
        eprintln!(
            "plan: the plan has refusals, so it was not saved to {}",
            out.display()
        );
        return Err(EXIT_FAIL);
    }
    let s = saved::SavedPlan::new(loaded, rev, facts, against, host, opts, plan.clone());
    if let Err(e) = crate::runner::write_atomically(out, saved::encode(&s).as_bytes(), 0o600) {
        eprintln!("plan: cannot save the plan to {}: {e}", out.display());
        return Err(EXIT_FAIL);
    }
    let what = if s.empty {
        "an empty plan: applying it changes nothing".to_string()
    } else {
        format!("{} operations", s.operations)
    };
    eprintln!(
        "Saved the plan to {} ({what}). `hostform apply {}` runs exactly this plan, and refuses if the host or the spec changed since.",
        out.display(),
        crate::runner::show_argv(&[&out.to_string_lossy()])
    );
    Ok(())
}
