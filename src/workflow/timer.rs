//! `hostform timer install`: a systemd service that runs `hostform drift` on the spec and a
//! timer that starts it on a calendar (`Persistent=true`: a run missed while the host was off
//! happens at the next boot). Written to /etc/systemd/system by default; enabling them stays
//! the operator's decision.

use std::path::Path;

pub use crate::systemd::quote;

/// `--every` as a systemd calendar expression. Only periods that divide the next larger unit
/// evenly are accepted (15m, 2h, 1d), so runs are evenly spaced.
pub fn every(s: &str) -> Result<String, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u32 = num.parse().map_err(|_| {
        format!("--every {s}: write a period such as 15m, 1h, 6h or 1d (or use --on-calendar)")
    })?;
    match unit {
        "m" | "min" if n > 0 && 60 % n == 0 && n < 60 => Ok(if n == 1 {
            "*-*-* *:*:00".into()
        } else {
            format!("*-*-* *:00/{n}:00")
        }),
        "m" | "min" => Err(format!(
            "--every {s}: minutes must divide an hour evenly (1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30); use --on-calendar for anything else"
        )),
        "h" if n == 1 => Ok("hourly".into()),
        "h" if n == 24 => Ok("daily".into()),
        "h" if n > 0 && 24 % n == 0 => Ok(format!("*-*-* 00/{n}:00:00")),
        "h" => Err(format!(
            "--every {s}: hours must divide a day evenly (1, 2, 3, 4, 6, 8, 12 or 24); use --on-calendar for anything else"
        )),
        "d" if n == 1 => Ok("daily".into()),
        "d" => Err(format!(
            "--every {s}: periods longer than a day need --on-calendar (e.g. --on-calendar weekly)"
        )),
        _ => Err(format!(
            "--every {s}: unknown unit `{unit}`; use m, h or d (15m, 1h, 1d)"
        )),
    }
}

/// How long one drift run may take before systemd stops it (and the unit fails).
pub const TIMEOUT_START: &str = "15min";
/// The timer's jitter.
pub const RANDOM_DELAY: &str = "5min";

/// The two units' text.
pub struct Units {
    pub service: String,
    pub timer: String,
}

/// `exe`: hostform's absolute path; `spec`: the spec's absolute path.
pub fn units(
    name: &str,
    exe: &Path,
    spec: &Path,
    rev: Option<&str>,
    host: Option<&str>,
    on_calendar: &str,
) -> Result<Units, String> {
    let mut argv = vec![
        exe.to_string_lossy().into_owned(),
        "drift".into(),
        spec.to_string_lossy().into_owned(),
    ];
    if let Some(r) = rev {
        argv.push("--rev".into());
        argv.push(r.into());
    }
    if let Some(h) = host {
        argv.push("--host".into());
        argv.push(h.into());
    }
    let exec = argv
        .iter()
        .map(|a| quote(a))
        .collect::<Result<Vec<_>, _>>()?
        .join(" ");
    let header = "# Written by `hostform timer install`; `hostform timer remove` removes it.\n";
    Ok(render(
        header,
        &spec.display().to_string().replace('%', "%%"),
        &exec,
        &format!("{name}.service"),
        on_calendar,
    ))
}

/// The name of the packaged template units: `hostform-drift@.service` and `.timer`.
pub const TEMPLATE: &str = "hostform-drift@";

/// The template units the package installs in /usr/lib/systemd/system: the same service and
/// timer as `units`, hourly, for the spec whose path is the instance (`%f`), so that
/// `systemctl enable --now hostform-drift@$(systemd-escape --path /etc/hostform/dom0.yaml).timer`
/// checks /etc/hostform/dom0.yaml. `exe`: hostform's absolute path.
pub fn template_units(exe: &Path) -> Result<Units, String> {
    let exec = format!("{} drift %f", quote(&exe.to_string_lossy())?);
    let header = "# Installed by the hostform package. The instance is the spec's path, escaped:\n\
# systemctl enable --now hostform-drift@$(systemd-escape --path /etc/hostform/dom0.yaml).timer\n\
# `systemctl edit` adds --rev or --host (a new ExecStart=), or another OnCalendar=.\n";
    Ok(render(
        header,
        "%f",
        &exec,
        &format!("{TEMPLATE}%i.service"),
        "hourly",
    ))
}

/// The two units' text: `shown` is the spec as the description shows it, `exec` the whole
/// `ExecStart=` command line, `service` the unit the timer starts.
fn render(header: &str, shown: &str, exec: &str, service: &str, on_calendar: &str) -> Units {
    let service_text = format!(
        "{header}\
[Unit]\n\
Description=hostform drift detection for {shown}\n\
After=local-fs.target\n\
\n\
[Service]\n\
Type=oneshot\n\
# Exit status 0: in sync; 2: drift; 1: error; 64: usage error. Drift leaves the unit failed, so\n\
# `systemctl --failed` and OnFailure= see it; the report is in the journal.\n\
ExecStart={exec}\n\
# The report (stdout) under its own tag: `journalctl -t hostform` has drift's one entry per run.\n\
SyslogIdentifier=hostform-drift\n\
# A hung read (an `lvs` on a dead iSCSI path) must not hold the unit forever: a timer does\n\
# not start a unit that is still running, so drift would never be checked again.\n\
TimeoutStartSec={TIMEOUT_START}\n\
Nice=10\n\
IOSchedulingClass=idle\n\
# Read-only check: the file system is read-only to it, except the state directory and the\n\
# lock directories LVM and mdadm take while reading (missing ones are skipped).\n\
ProtectSystem=strict\n\
ReadWritePaths=-{state} -/run/lock -/run/lvm -/run/mdadm\n\
PrivateTmp=true\n\
NoNewPrivileges=true\n",
        state = crate::workflow::DEFAULT_STATE_DIR,
    );
    let timer = format!(
        "{header}\
[Unit]\n\
Description=Run {service} (hostform drift detection) on a schedule\n\
\n\
[Timer]\n\
OnCalendar={on_calendar}\n\
Persistent=true\n\
# Spread the hosts of a fleet, so that they do not all read their disks at the same second.\n\
RandomizedDelaySec={RANDOM_DELAY}\n\
Unit={service}\n\
\n\
[Install]\n\
WantedBy=timers.target\n"
    );
    Units {
        service: service_text,
        timer,
    }
}

/// A unit name operators can type: letters, digits, `-`, `_`, `.`, `@` not allowed.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 200
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
    {
        return Err(format!(
            "--name {name:?}: use letters, digits, `-` and `_` only"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_become_calendar_expressions() {
        assert_eq!(every("1h").unwrap(), "hourly");
        assert_eq!(every("15m").unwrap(), "*-*-* *:00/15:00");
        assert_eq!(every("1m").unwrap(), "*-*-* *:*:00");
        assert_eq!(every("6h").unwrap(), "*-*-* 00/6:00:00");
        assert_eq!(every("24h").unwrap(), "daily");
        assert_eq!(every("1d").unwrap(), "daily");
        for bad in [
            "45m", "5h", "0m", "0h", "2d", "hourly", "1w", "", "-1h", "60m",
        ] {
            assert!(every(bad).is_err(), "{bad}");
        }
        assert!(every("45m").unwrap_err().contains("divide an hour"));
    }

    #[test]
    fn exec_arguments_are_quoted_for_systemd() {
        assert_eq!(quote("/usr/bin/hostform").unwrap(), "/usr/bin/hostform");
        assert_eq!(
            quote("/srv/my specs/a.yaml").unwrap(),
            "\"/srv/my specs/a.yaml\""
        );
        assert_eq!(quote("50%").unwrap(), "50%%");
        assert_eq!(quote("a\"b").unwrap(), "\"a\\\"b\"");
        assert!(quote("a\nb").is_err());
    }

    #[test]
    fn the_drift_unit_is_bounded_and_hardened() {
        let u = units(
            "hostform-drift",
            Path::new("/usr/bin/hostform"),
            Path::new("/srv/specs/dom0.yaml"),
            None,
            None,
            "hourly",
        )
        .unwrap();
        let lines: Vec<&str> = u.service.lines().collect();
        assert!(!u.service.contains("--host"), "{}", u.service);
        for want in [
            "TimeoutStartSec=15min",
            "ProtectSystem=strict",
            "ReadWritePaths=-/var/lib/hostform -/run/lock -/run/lvm -/run/mdadm",
            "PrivateTmp=true",
            "NoNewPrivileges=true",
            "SyslogIdentifier=hostform-drift",
        ] {
            assert!(lines.contains(&want), "{want} missing:\n{}", u.service);
        }
        assert!(
            u.timer.lines().any(|l| l == "RandomizedDelaySec=5min"),
            "{}",
            u.timer
        );
    }

    #[test]
    fn the_drift_unit_passes_the_host_given_at_install() {
        let u = units(
            "hostform-drift",
            Path::new("/usr/bin/hostform"),
            Path::new("/srv/specs/dom0.yaml"),
            Some("main"),
            Some("dom0"),
            "hourly",
        )
        .unwrap();
        assert!(
            u.service.contains(
                "ExecStart=/usr/bin/hostform drift /srv/specs/dom0.yaml --rev main --host dom0\n"
            ),
            "{}",
            u.service
        );
    }

    /// The packaged template runs the spec named by its instance, and is otherwise the unit
    /// `timer install` writes, line for line.
    #[test]
    fn the_template_is_the_installed_unit_with_the_instance_as_spec() {
        let exe = Path::new("/usr/bin/hostform");
        let t = template_units(exe).unwrap();
        let u = units(
            "hostform-drift",
            exe,
            Path::new("/srv/specs/dom0.yaml"),
            None,
            None,
            "hourly",
        )
        .unwrap();
        assert!(
            t.service
                .lines()
                .any(|l| l == "ExecStart=/usr/bin/hostform drift %f"),
            "{}",
            t.service
        );
        assert!(
            t.timer
                .lines()
                .any(|l| l == "Unit=hostform-drift@%i.service"),
            "{}",
            t.timer
        );
        let body = |s: &str| -> Vec<String> {
            s.lines()
                .skip_while(|l| l.starts_with('#'))
                .map(|l| {
                    l.replace("/srv/specs/dom0.yaml", "%f")
                        .replace("hostform-drift.service", "hostform-drift@%i.service")
                })
                .collect()
        };
        assert_eq!(body(&t.service), body(&u.service));
        assert_eq!(body(&t.timer), body(&u.timer));
        // A hostform whose path has a space is quoted; a `%` in it is no specifier.
        let odd = template_units(Path::new("/opt/host form/50%/hostform")).unwrap();
        assert!(
            odd.service
                .contains("ExecStart=\"/opt/host form/50%%/hostform\" drift %f\n"),
            "{}",
            odd.service
        );
        assert!(template_units(Path::new("/opt/a\nb")).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("hostform-drift").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name("").is_err());
    }
}
