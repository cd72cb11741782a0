//! The operator's workflow around plan and apply: saved plans that are applied exactly or not
//! at all ([`saved`]), one apply per host at a time ([`lock`]), a journal of every apply
//! ([`journal`]), signed spec commits ([`signing`]) and drift detection from a systemd timer
//! ([`timer`]).

pub mod gate;
pub mod host;
pub mod journal;
pub mod lock;
pub mod saved;
pub mod signing;
pub mod timer;
pub mod trust;

use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;

pub use crate::clock::{now, rfc3339};

/// Where the journal lives unless `--state-dir` or `HOSTFORM_STATE_DIR` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hostform";
/// Where the apply lock lives unless `--lock-dir` or `HOSTFORM_LOCK_DIR` says otherwise
/// (a tmpfs: it is empty after a reboot).
pub const DEFAULT_LOCK_DIR: &str = "/run/lock";

/// The state and lock directories of a command (clap fills them from flags or environment).
#[derive(clap::Args, Debug, Clone)]
pub struct Dirs {
    /// Where the apply journal and a change waiting for `hostform confirm` are kept.
    #[arg(long, value_name = "DIR", env = "HOSTFORM_STATE_DIR", hide_env_values = true, default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Where the apply lock file is kept.
    #[arg(long, value_name = "DIR", env = "HOSTFORM_LOCK_DIR", hide_env_values = true, default_value = DEFAULT_LOCK_DIR)]
    pub lock_dir: PathBuf,
}

/// A spec that did not load or validate; its diagnostics were printed.
#[derive(Debug, thiserror::Error)]
#[error("{label} is not valid")]
pub struct InvalidSpec {
    /// The spec as its diagnostics name it (`path`, or `path @ commit`).
    pub label: String,
}

/// Load and validate a spec for a command; on failure, print every diagnostic and `consequence`
/// (what did not happen).
pub fn load_spec(
    path: &std::path::Path,
    rev: Option<&str>,
    color: crate::diag::ColorChoice,
    consequence: &str,
) -> Result<crate::spec::Loaded, InvalidSpec> {
    crate::spec::load(path, rev).map_err(|f| {
        for d in &f.diagnostics {
            eprint!("{}", crate::diag::render(d, &f.sources, color.stderr()));
        }
        eprintln!("{} is not valid; {consequence}", f.label);
        InvalidSpec { label: f.label }
    })
}

/// Read the host for a spec: discovery, plus the spec's images (their sizes, for LVs made
/// from them).
pub fn read_host(
    loaded: &crate::spec::Loaded,
    runner: &dyn crate::runner::Runner,
) -> Result<crate::discover::Facts, String> {
    let mut facts = crate::discover::discover(runner)?.facts;
    crate::kinds::guest::read_spec_xl_configs(runner, &loaded.spec, &mut facts.guests);
    read_images(loaded, &mut facts, runner);
    Ok(facts)
}

/// Read the spec's images (`image:` of LVs) into the facts the planner uses: paths relative to
/// the spec's directory, inside its repository (or directory). Images are read from the work
/// tree, also when the spec comes from `--rev`.
pub fn read_images(
    loaded: &crate::spec::Loaded,
    facts: &mut crate::discover::Facts,
    runner: &dyn crate::runner::Runner,
) {
    let root = std::fs::canonicalize(&loaded.root).unwrap_or_else(|_| loaded.root.clone());
    let dir = root.join(
        std::path::Path::new(&loaded.rel)
            .parent()
            .unwrap_or(std::path::Path::new("")),
    );
    let resolve = |img: &str| crate::kinds::image::resolve(&root, &dir, img);
    facts.images = crate::kinds::image::inspect_spec(&loaded.spec, runner, &resolve);
}

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A JSON value written with object keys sorted and no whitespace: the same value always
/// gives the same bytes, whatever order its maps were built in.
pub fn canonical_json(v: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k.as_str()).unwrap_or_default());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    write(v, &mut s);
    s
}

/// A duration as operators write it: `90s`, `5m`, `1h`, `0` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration; write e.g. 30s, 5m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" | "min" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("`{s}`: unknown unit `{unit}`; use s, m or h")),
    };
    Ok(Duration::from_secs(secs))
}

/// The host's name, for records and messages.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let a: serde_json::Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":null}}"#).unwrap();
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":null,"y":[1,{"c":3,"d":2}]},"b":1}"#
        );
    }
}
