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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// `2026-11-23T09:41:07Z` (UTC, to the second).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
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
    fn dates_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_340_467);
        assert_eq!(rfc3339(t), "2026-11-22T09:41:07Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

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
