//! The snapshot a captured scenario's host gives: discovery read through the replay of the
//! captures in tests/fixtures/SCENARIO (real tool output, `ReplayRunner`), written as JSON for
//! `hostform plan --against`. The captures record no hostname, so neither does the snapshot:
//! plan it with `--host NAME`. Run by scripts/pictures.
//!
//! Usage: capture_snapshot DIR   (a scenario directory, e.g. tests/fixtures/full)
use hostform::runner::ReplayRunner;

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: capture_snapshot DIR");
        std::process::exit(64);
    };
    let runner = match ReplayRunner::open(std::path::PathBuf::from(&dir)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("capture_snapshot: {}: {e}", dir.to_string_lossy());
            std::process::exit(1);
        }
    };
    match hostform::discover::discover(&runner)
        .map_err(|e| e.to_string())
        .and_then(|d| serde_json::to_string_pretty(&d).map_err(|e| e.to_string()))
    {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("capture_snapshot: {e}");
            std::process::exit(1);
        }
    }
}
