//! `hostform discover`: the live host in the spec language (to adopt an existing host), or as a
//! JSON snapshot (spec + observed facts) for offline planning in CI.

use serde::Serialize;

use super::{EXIT_FAIL, EXIT_OK};
use crate::runner::RealRunner;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DiscoverFormat {
    /// A spec, ready to review and commit as the host's first spec.
    #[default]
    Yaml,
    /// A snapshot: the spec and the observed facts, versioned.
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: DiscoverFormat,
}

#[derive(Serialize)]
struct Snapshot<'a> {
    format_version: u32,
    hostform_version: &'static str,
    hostform_build: &'static str,
    spec: &'a crate::spec::Spec,
    facts: &'a crate::discover::Facts,
}

pub fn run(args: Args) -> i32 {
    let mut timings = super::timings::Timings::start();
    let code = discover(args, &mut timings);
    timings.report();
    code
}

fn discover(args: Args, timings: &mut super::timings::Timings) -> i32 {
    let runner = RealRunner::new();
    let found = match crate::discover::discover(&runner) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("discover: {e}");
            return EXIT_FAIL;
        }
    };
    timings.mark("host");
    match args.format {
        DiscoverFormat::Yaml => {
            let yaml = match serde_saphyr::to_string(&found.spec) {
                Ok(y) => y,
                Err(e) => {
                    eprintln!("discover: cannot write the spec: {e}");
                    return EXIT_FAIL;
                }
            };
            println!(
                "# The host `{}` as `hostform discover` found it.",
                crate::diag::visible(&found.spec.host)
            );
            println!("# Review it, name things as you like (keep ids and serials), add what the");
            println!(
                "# spec should protect (prevent-destroy), then commit it as this host's spec."
            );
            // A note quotes host strings (device names, labels): escaped, on one comment line.
            for n in &found.facts.notes {
                println!("# note: {}", crate::diag::visible(n));
            }
            print!("{yaml}");
        }
        DiscoverFormat::Json => {
            let snap = Snapshot {
                format_version: 1,
                hostform_version: crate::version::VERSION,
                hostform_build: crate::version::BUILD,
                spec: &found.spec,
                facts: &found.facts,
            };
            match serde_json::to_string_pretty(&snap) {
                Ok(s) => println!("{s}"),
                Err(e) => {
                    eprintln!("discover: {e}");
                    return EXIT_FAIL;
                }
            }
        }
    }
    timings.mark("output");
    // The rooms read side by side: sorted, the list is the same from one run to the next.
    let mut spawned = runner.spawned();
    spawned.sort();
    eprintln!(
        "discover: {} processes: {}",
        spawned.len(),
        spawned.join("; ")
    );
    EXIT_OK
}
