//! `hostform schema`: the JSON Schema of the spec language.

use crate::spec::Spec;

#[derive(clap::Args, Debug)]
pub struct Args {}

/// The schema as pretty JSON (also committed as docs/spec.schema.json).
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Spec);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}

pub fn run(_: Args) -> i32 {
    print!("{}", schema_json());
    super::EXIT_OK
}
