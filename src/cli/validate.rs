//! `hostform validate`: check specs and report every problem, for people or for CI.

use serde::Serialize;
use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::diag::{self, Diagnostic, Sources};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Spec files to check (one per host); `hostform.yaml` when none is given.
    #[arg(value_name = "SPEC")]
    pub specs: Vec<PathBuf>,
    /// Read the specs from this git revision instead of the working tree.
    #[arg(long, value_name = "REV")]
    pub rev: Option<String>,
    /// Output format: human text, or JSON for CI annotations.
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Serialize)]
struct JsonReport {
    format_version: u32,
    valid: bool,
    specs: Vec<JsonSpec>,
}

#[derive(Serialize)]
struct JsonSpec {
    path: String,
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    valid: bool,
    errors: Vec<diag::JsonDiagnostic>,
    warnings: Vec<diag::JsonDiagnostic>,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let specs = if args.specs.is_empty() {
        vec![PathBuf::from("hostform.yaml")]
    } else {
        args.specs.clone()
    };
    let style = color.stderr();
    let mut all_valid = true;
    let mut report = JsonReport {
        format_version: 1,
        valid: true,
        specs: Vec::new(),
    };
    for path in &specs {
        let (label, commit, sources, diags, summary) =
            match crate::spec::load(path, args.rev.as_deref()) {
                Ok(l) => {
                    let summary = summarize(&l.spec);
                    (l.label, l.commit, l.sources, l.warnings, Some(summary))
                }
                Err(f) => (f.label, f.commit, f.sources, f.diagnostics, None),
            };
        let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
        let warnings: Vec<&Diagnostic> = diags.iter().filter(|d| !d.is_error()).collect();
        let valid = errors.is_empty();
        all_valid &= valid;
        match args.format {
            Format::Text => {
                for d in &diags {
                    eprint!("{}", render_plain(d, &sources, style));
                }
                match summary {
                    Some(s) if valid => println!(
                        "{label}: valid ({s}){}",
                        plural_suffix(warnings.len(), "warning")
                    ),
                    _ => println!(
                        "{label}: invalid: {} error{}{}",
                        errors.len(),
                        if errors.len() == 1 { "" } else { "s" },
                        plural_suffix(warnings.len(), "warning")
                    ),
                }
            }
            Format::Json => report.specs.push(JsonSpec {
                path: path.display().to_string(),
                source: label,
                commit,
                valid,
                errors: errors.iter().map(|d| diag::to_json(d, &sources)).collect(),
                warnings: warnings
                    .iter()
                    .map(|d| diag::to_json(d, &sources))
                    .collect(),
            }),
        }
    }
    if args.format == Format::Json {
        report.valid = all_valid;
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    if all_valid { EXIT_OK } else { EXIT_FAIL }
}

/// `plan --format json` on a spec that is not valid: the report `validate --format json`
/// prints for it, on standard output.
pub(crate) fn print_json_failure(path: &std::path::Path, f: &crate::spec::Failed) {
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) =
        f.diagnostics.iter().partition(|d| d.is_error());
    let report = JsonReport {
        format_version: 1,
        valid: false,
        specs: vec![JsonSpec {
            path: path.display().to_string(),
            source: f.label.clone(),
            commit: f.commit.clone(),
            valid: false,
            errors: errors
                .iter()
                .map(|d| diag::to_json(d, &f.sources))
                .collect(),
            warnings: warnings
                .iter()
                .map(|d| diag::to_json(d, &f.sources))
                .collect(),
        }],
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}

/// For a valid spec that still gave no plan (it is for another host): the report
/// `print_json_failure` prints, with these errors.
pub(crate) fn print_json_errors(
    path: &std::path::Path,
    loaded: &crate::spec::Loaded,
    errors: &[Diagnostic],
) {
    let report = JsonReport {
        format_version: 1,
        valid: false,
        specs: vec![JsonSpec {
            path: path.display().to_string(),
            source: loaded.label.clone(),
            commit: loaded.commit.clone(),
            valid: false,
            errors: errors
                .iter()
                .map(|d| diag::to_json(d, &loaded.sources))
                .collect(),
            warnings: Vec::new(),
        }],
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
}

fn render_plain(d: &Diagnostic, sources: &Sources, style: diag::Style) -> String {
    let mut s = diag::render(d, sources, style);
    s.push('\n');
    s
}

fn plural_suffix(n: usize, word: &str) -> String {
    match n {
        0 => String::new(),
        1 => format!(", 1 {word}"),
        n => format!(", {n} {word}s"),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn summarize(s: &crate::spec::Spec) -> String {
    let lvs: usize = s
        .volume_groups
        .values()
        .map(|v| v.lvs.len() + v.thin_pools.values().map(|p| p.lvs.len()).sum::<usize>())
        .sum();
    [
        count(s.disks.len(), "disk", "disks"),
        count(s.arrays.len(), "array", "arrays"),
        count(s.volume_groups.len(), "volume group", "volume groups"),
        count(lvs, "LV", "LVs"),
        count(s.bridges.len(), "bridge", "bridges"),
        count(s.vms.len(), "guest", "guests"),
    ]
    .join(", ")
}
