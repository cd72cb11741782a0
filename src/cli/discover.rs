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

/// The editor's pointer to the spec language's JSON Schema, for a spec saved as
/// `hosts/NAME.yaml` next to a copy of `hostform schema` at the repository's root
/// (docs/spec.md, "Editor support"). A YAML comment: validate and plan read past it.
pub const SCHEMA_MODELINE: &str = "# yaml-language-server: $schema=../spec.schema.json";

/// The comment lines above a discovered spec: the schema modeline first (the YAML language
/// server reads it only there), then what to do with the spec, then discovery's notes.
fn header(host: &str, notes: &[String]) -> String {
    let mut h = format!("{SCHEMA_MODELINE}\n");
    h.push_str(&format!(
        "# The host `{}` as `hostform discover` found it.\n",
        crate::diag::visible(host)
    ));
    h.push_str("# Review it, name things as you like (keep ids and serials), add what the\n");
    h.push_str("# spec should protect (prevent-destroy), then commit it as this host's spec.\n");
    // A note quotes host strings (device names, labels): escaped, on one comment line.
    for n in notes {
        h.push_str(&format!("# note: {}\n", crate::diag::visible(n)));
    }
    h
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
            print!("{}", header(&found.spec.host, &found.facts.notes));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The modeline is the first line (the language server reads no other), the notes follow
    /// escaped on one line each, and every line is a YAML comment.
    #[test]
    fn the_header_starts_with_the_schema_modeline_and_stays_a_comment() {
        let h = header("lab\nx", &["a disk\rwithout id".to_string()]);
        let lines: Vec<&str> = h.lines().collect();
        assert_eq!(lines[0], SCHEMA_MODELINE);
        assert_eq!(lines.len(), 5, "{h}");
        assert!(lines.iter().all(|l| l.starts_with("# ")), "{h}");
        assert!(lines[4].starts_with("# note: a disk\\r"), "{h}");
        // The modeline names the schema by a path relative to hosts/NAME.yaml.
        assert!(SCHEMA_MODELINE.ends_with("$schema=../spec.schema.json"));
    }
}
