//! `hostform plan`: what would change on this host (or on a recorded snapshot) to match the
//! spec, as ordered operations with their exact commands. Read-only.

use serde::Serialize;
use std::io::IsTerminal;
use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};

/// `--detailed-exitcode`: changes present.
pub const EXIT_CHANGES: i32 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The spec; `hostform.yaml` by default.
    #[arg(value_name = "SPEC")]
    pub spec: Option<PathBuf>,
    /// Read the spec from this git revision.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Plan against a snapshot from `hostform discover --format json` instead of this host.
    #[arg(long, value_name = "SNAPSHOT")]
    pub against: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Allow the destructive operations the plan shows: removing what the spec marks
    /// `state: absent` (never a resource marked `prevent-destroy`).
    #[arg(long)]
    pub allow_destroy: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on errors or refusals.
    #[arg(long)]
    pub detailed_exitcode: bool,
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
    let spec_path = args
        .spec
        .clone()
        .unwrap_or_else(|| PathBuf::from("hostform.yaml"));
    let loaded = match super::load_spec(&spec_path, args.rev.as_deref(), color, "no plan was made")
    {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (mut facts, against) = match &args.against {
        Some(p) => {
            let text = match std::fs::read_to_string(p) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("plan: {}: {e}", p.display());
                    return EXIT_FAIL;
                }
            };
            match serde_json::from_str::<crate::discover::Discovered>(&text) {
                Ok(mut d) => {
                    d.facts.blocks.index();
                    (d.facts, format!("snapshot {}", p.display()))
                }
                Err(e) => {
                    eprintln!(
                        "plan: {} is not a snapshot from `hostform discover --format json`: {e}",
                        p.display()
                    );
                    return EXIT_FAIL;
                }
            }
        }
        None => match crate::discover::discover(&crate::runner::RealRunner::new()) {
            Ok(d) => (d.facts, "this host".to_string()),
            Err(e) => {
                eprintln!("plan: {e}");
                return EXIT_FAIL;
            }
        },
    };
    super::read_images(&loaded, &mut facts, &crate::runner::RealRunner::new());
    let opts = crate::plan::Options {
        allow_destroy: args.allow_destroy,
    };
    let plan = crate::plan::plan_host(&loaded.spec, &facts, &opts);
    match args.format {
        Format::Text => {
            println!("{} against {against}:\n", loaded.label);
            print!(
                "{}",
                crate::plan::render(&plan, color.enabled(std::io::stdout().is_terminal()))
            );
        }
        Format::Json => {
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
    if !plan.refusals.is_empty() {
        EXIT_FAIL
    } else if args.detailed_exitcode && plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}
