//! `hostform show FILE`: print a plan saved by `hostform plan --out`, and say whether it is
//! empty. Read-only; refuses a file that was altered.

use std::io::IsTerminal;
use std::path::PathBuf;

use super::{ColorChoice, EXIT_FAIL, EXIT_OK, Format};
use crate::workflow::saved;

/// `--detailed-exitcode`: the saved plan has operations.
pub const EXIT_CHANGES: i32 = 2;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A plan saved by `hostform plan --out FILE`.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    /// Output format: text, or json (the saved plan's content, checked).
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit 0 when the plan is empty, 2 when it has operations, 1 when it cannot be read.
    #[arg(long)]
    pub detailed_exitcode: bool,
}

pub fn run(args: Args, color: ColorChoice) -> i32 {
    let bytes = match std::fs::read(&args.plan) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("show: {}: {e}", args.plan.display());
            return EXIT_FAIL;
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    if !saved::looks_saved(&text) {
        eprintln!(
            "show: {} is not a saved plan (make one with `hostform plan SPEC --out FILE`)",
            args.plan.display()
        );
        return EXIT_FAIL;
    }
    let s = match saved::decode(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "show: {} is not a usable saved plan: {e}",
                args.plan.display()
            );
            return EXIT_FAIL;
        }
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default()),
        Format::Text => print!(
            "{}",
            render(&s, color.enabled(std::io::stdout().is_terminal()))
        ),
    }
    if args.detailed_exitcode && !s.empty {
        EXIT_CHANGES
    } else {
        EXIT_OK
    }
}

/// The human view: where the plan came from, the plan, and whether it is empty.
pub fn render(s: &saved::SavedPlan, color: bool) -> String {
    // The file's strings are shown with control characters escaped: a saved plan travels
    // (CI artifacts), and its text must not move a reviewer's cursor or hide lines.
    let v = crate::diag::visible;
    let mut out = String::new();
    out.push_str(&format!(
        "Saved plan of {} against {}\n",
        v(&s.spec.label),
        v(&s.state.against)
    ));
    if let Some(c) = &s.spec.commit {
        out.push_str(&format!("  commit:      {}\n", v(c)));
    }
    if let Some(r) = &s.spec.rev {
        out.push_str(&format!("  revision:    {}\n", v(r)));
    }
    out.push_str(&format!(
        "  spec file:   {}\n",
        v(&s.spec.path.display().to_string())
    ));
    out.push_str(&format!(
        "  made for:    host {}\n",
        s.host.as_deref().unwrap_or("(not recorded)")
    ));
    out.push_str(&format!(
        "  made:        {} by hostform {}\n",
        v(&s.created),
        v(&s.made_by())
    ));
    out.push_str(&format!(
        "  host state:  {}\n",
        s.state.fingerprint.chars().take(16).collect::<String>()
    ));
    out.push_str(&format!(
        "  options:     {}\n\n",
        if s.allow_destroy {
            "--allow-destroy"
        } else {
            "none"
        }
    ));
    out.push_str(&crate::plan::render(&s.plan, color));
    out.push('\n');
    if s.empty {
        out.push_str("This plan is empty: applying it changes nothing.\n");
    } else {
        out.push_str(&format!(
            "This plan is not empty: applying it runs {} operations.\n",
            s.operations
        ));
    }
    out
}
