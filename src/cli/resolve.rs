//! `hostform resolve`: the spec as the planner sees it, with includes, `vm-defaults`,
//! templates and `like` applied, written back in the spec language. Reads nothing from the
//! host.

use serde::Serialize;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK};
use crate::spec::types::Vm;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResolveFormat {
    // A spec in YAML (it validates and plans as the original does).
    #[default]
    Yaml,
    // The same, as JSON (YAML reads it too).
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub source: super::SpecSource,
    /// Print only this guest, as `vms: {NAME: …}`: a view of one guest, not a whole spec.
    #[arg(long, value_name = "NAME")]
    pub guest: Option<String>,
    /// Output format: yaml (a spec) or json.
    #[arg(long, value_enum, default_value_t)]
    pub format: ResolveFormat,
}

/// One guest, as the spec's `vms` section holds it.
#[derive(Serialize)]
struct OneGuest<'a> {
    vms: indexmap::IndexMap<&'a str, &'a Vm>,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let path = args.source.path();
    let loaded = match crate::spec::load(&path, args.source.rev.as_deref()) {
        Ok(l) => l,
        Err(f) => {
            for d in &f.diagnostics {
                eprint!("{}", crate::diag::render(d, &f.sources, color.stderr()));
            }
            eprintln!("{} is not valid; nothing was resolved", f.label);
            // JSON readers get the diagnostics `validate --format json` gives.
            if args.format == ResolveFormat::Json {
                super::validate::print_json_failure(&path, &f);
            }
            return EXIT_FAIL;
        }
    };
    let spec = crate::spec::resolved::resolved(&loaded.spec);
    let label = crate::diag::visible(&loaded.label).into_owned();
    let (header, text) = match &args.guest {
        None => (
            format!(
                "# {label}, resolved: includes, vm-defaults, templates and `like` applied.\n\
                 # A spec of its own: it validates and plans as the original does (images stay\n\
                 # relative to the original's directory).\n"
            ),
            match args.format {
                ResolveFormat::Yaml => crate::spec::resolved::to_yaml(&spec),
                ResolveFormat::Json => serde_json::to_string_pretty(&spec)
                    .map(|j| j + "\n")
                    .map_err(|e| e.to_string()),
            },
        ),
        Some(name) => {
            let Some((key, vm)) = spec.vms.iter().find(|(k, _)| k.value == *name) else {
                let hint =
                    crate::diag::did_you_mean(name, spec.vms.keys().map(|k| k.value.as_str()))
                        .map(|h| format!("; {h}"))
                        .unwrap_or_default();
                eprintln!(
                    "resolve: {label} has no guest `{}`{hint}",
                    crate::diag::visible(name)
                );
                return EXIT_FAIL;
            };
            let one = OneGuest {
                vms: [(key.value.as_str(), vm)].into_iter().collect(),
            };
            (
                format!(
                    "# The guest {} of {label}, resolved: vm-defaults and templates applied.\n\
                     # One guest, not a whole spec.\n",
                    key.value
                ),
                match args.format {
                    ResolveFormat::Yaml => serde_saphyr::to_string(&one).map_err(|e| e.to_string()),
                    ResolveFormat::Json => serde_json::to_string_pretty(&one)
                        .map(|j| j + "\n")
                        .map_err(|e| e.to_string()),
                },
            )
        }
    };
    match text {
        Ok(t) => {
            // JSON has no comments: the header is for YAML only.
            if args.format == ResolveFormat::Yaml {
                print!("{header}");
            }
            print!("{t}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("resolve: cannot write the spec: {e}");
            EXIT_FAIL
        }
    }
}
