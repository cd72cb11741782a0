//! Which host a spec is for, and whether this is it: `plan`, `apply` and `drift` compare the
//! spec's `host:` with the name of the host they read (this host's hostname, the host a
//! snapshot was taken on, or the host a saved plan was made for), and refuse a mismatch,
//! changing nothing, unless the operator says `--host NAME` explicitly.
//!
//! Names match as DNS compares them: case-insensitively, without a trailing dot; a short name
//! matches any full name that starts with it (`dom0` matches `dom0.example.org` and the other
//! way round), while two full names must be equal (`dom0.a.org` is not `dom0.b.org`).
//!
//! `--host NAME` says which host this is taken to be, when its hostname says otherwise (a
//! machine being reinstalled, a replacement taking over a failed host's spec, a snapshot
//! taken where no hostname was set). NAME must still match the spec's host: it replaces the
//! hostname (or the snapshot's recorded host) in the comparison, never the spec's.

use crate::diag::Diagnostic;
use crate::spec::types::Spec;

use crate::discover::set_name;
pub use crate::discover::{HOSTNAME_FILE, NOT_RECORDED, read_hostname};

/// The host a snapshot recorded, or `None` when it is empty, unset or the placeholder of
/// discovery (a host really named `discovered` needs `--host` for its snapshots).
pub fn real_name(name: &str) -> Option<String> {
    set_name(name).filter(|n| n != NOT_RECORDED)
}

/// Whether two host names name the same host (see the module's documentation).
pub fn same(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    let (a, b) = (norm(a), norm(b));
    if a.is_empty() || b.is_empty() {
        return false;
    }
    if a == b {
        return true;
    }
    if a.contains('.') && b.contains('.') {
        return false;
    }
    a.split('.').next() == b.split('.').next()
}

/// `--host NAME`: a host name as DNS allows it (letters, digits and `-` in labels of at most
/// 63 characters, separated by dots; at most 253 characters).
pub fn parse_name(s: &str) -> Result<String, String> {
    let t = s.strip_suffix('.').unwrap_or(s);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if t.is_empty() || t.len() > 253 || !t.split('.').all(label_ok) {
        return Err(format!(
            "`{s}` is not a host name: use letters, digits and `-`, in dot-separated labels (dom0, dom0.example.org)"
        ));
    }
    Ok(t.to_string())
}

/// What the name compared with the spec's host was read from.
#[derive(Debug, Clone)]
pub enum Seen {
    /// This host: its hostname, if one is set.
    Host(Option<String>),
    /// A snapshot (`--against FILE`): the host it was taken on, if it recorded one.
    Snapshot {
        file: String,
        recorded: Option<String>,
    },
}

impl Seen {
    /// The snapshot's recorded host, from the spec `hostform discover` wrote into it.
    pub fn snapshot(file: &std::path::Path, discovered: &Spec) -> Seen {
        Seen::Snapshot {
            file: file.display().to_string(),
            recorded: real_name(&discovered.host.value),
        }
    }
}

/// Compare the spec's host with the host read (`seen`) or the one `--host` names (`given`).
/// Returns the name the host is taken as (what a saved plan records), or the refusal, as a
/// diagnostic (code `host`) pointing at the spec's `host:`.
pub fn check(spec: &Spec, seen: &Seen, given: Option<&str>) -> Result<String, Box<Diagnostic>> {
    let want = spec.host.value.as_str();
    let refuse = |message: String, hint: String| {
        Box::new(
            Diagnostic::error(message)
                .code("host")
                .at(spec.host.span)
                .hint(hint),
        )
    };
    if let Some(name) = given {
        if same(want, name) {
            return Ok(name.to_string());
        }
        return Err(refuse(
            format!("this spec is for host `{want}`, but --host says this is `{name}`"),
            format!(
                "--host names the host the spec is applied to, and must be the spec's host: use {name}'s spec, or say --host {want} if this host is meant to take {want}'s spec"
            ),
        ));
    }
    match seen {
        Seen::Host(Some(name)) if same(want, name) => Ok(name.clone()),
        Seen::Host(Some(name)) => Err(refuse(
            format!("this spec is for host `{want}`, but this is `{name}`"),
            format!(
                "run it on {want}, or say --host {want} if this host is meant to take {want}'s spec"
            ),
        )),
        Seen::Host(None) => Err(refuse(
            format!(
                "this spec is for host `{want}`, but this host has no name ({HOSTNAME_FILE} is empty, `(none)` or `localhost`)"
            ),
            format!(
                "set its hostname (`hostnamectl set-hostname {want}`), or say --host {want} if this is {want}"
            ),
        )),
        Seen::Snapshot {
            file,
            recorded: Some(name),
        } if same(want, name) => Ok(name.clone()),
        Seen::Snapshot {
            file,
            recorded: Some(name),
        } => Err(refuse(
            format!(
                "this spec is for host `{want}`, but the snapshot {file} was taken on `{name}`"
            ),
            format!(
                "compare it with a snapshot of {want}, or say --host {want} if this snapshot stands for {want}"
            ),
        )),
        Seen::Snapshot {
            file,
            recorded: None,
        } => Err(refuse(
            format!(
                "this spec is for host `{want}`, but the snapshot {file} records no host (it was taken where no hostname was set)"
            ),
            format!("say --host {want} if the snapshot is of {want}"),
        )),
    }
}

/// A saved plan made for `made_for`, applied on the host taken as `this` (its hostname, or
/// `--host`): the names must match.
pub fn check_saved(
    made_for: Option<&str>,
    this: Option<&str>,
    given: bool,
    file: &str,
) -> Result<(), String> {
    let Some(made_for) = made_for else {
        return Err(format!(
            "the plan in {file} records no host it was made for (an older format)\n  make a new plan with `hostform plan --out`"
        ));
    };
    match this {
        Some(name) if same(made_for, name) => Ok(()),
        Some(name) => {
            let said = if given { " (--host)" } else { "" };
            Err(format!(
                "error[host]: the plan in {file} was made for host `{made_for}`, but this is `{name}`{said}\n  hint: apply it on {made_for}, or make a plan for this host with `hostform plan --out`"
            ))
        }
        None => Err(format!(
            "error[host]: the plan in {file} was made for host `{made_for}`, but this host has no name ({HOSTNAME_FILE})\n  hint: set its hostname, or say --host {made_for} if this is {made_for}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal spec for `host`, as the loader makes it.
    fn spec(host: &str) -> Spec {
        crate::spec::load_str("t.yaml", &format!("host: {host}\n"))
            .expect("a minimal spec loads")
            .spec
    }

    #[test]
    fn short_names_match_full_names_both_ways_and_case_does_not_count() {
        assert!(same("dom0", "dom0"));
        assert!(same("dom0", "dom0.example.org"));
        assert!(same("dom0.example.org", "dom0"));
        assert!(same("DOM0", "dom0.Example.ORG."));
        assert!(same("dom0.example.org.", "dom0.example.org"));
        assert!(!same("dom0", "dom01"));
        assert!(!same("dom0", "lab2.example.org"));
        assert!(!same("dom0.a.org", "dom0.b.org"));
        assert!(!same("dom0", ""));
        assert!(!same("", ""));
    }

    #[test]
    fn unset_and_placeholder_names_are_no_names() {
        assert_eq!(real_name("(none)"), None);
        assert_eq!(real_name("localhost"), None);
        assert_eq!(real_name("discovered"), None);
        assert_eq!(real_name("  "), None);
        assert_eq!(real_name("dom0\n").as_deref(), Some("dom0"));
        // A live host may be called `discovered`: only a snapshot's is the placeholder.
        assert_eq!(set_name("discovered\n").as_deref(), Some("discovered"));
        assert_eq!(set_name("(none)\n"), None);
    }

    #[test]
    fn host_names_given_on_the_command_line_are_checked() {
        assert_eq!(parse_name("dom0").unwrap(), "dom0");
        assert_eq!(parse_name("dom0.example.org.").unwrap(), "dom0.example.org");
        for bad in ["", ".", "dom0..org", "-dom0", "dom 0", "dom0_x", "a/b"] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
        assert!(parse_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn a_mismatch_is_refused_with_code_host_and_the_override_must_name_the_spec_host() {
        let s = spec("dom0");
        let e = check(&s, &Seen::Host(Some("lab2".into())), None).unwrap_err();
        assert_eq!(e.code, "host");
        assert_eq!(
            e.message,
            "this spec is for host `dom0`, but this is `lab2`"
        );
        assert!(e.hint.as_deref().unwrap().contains("--host dom0"));
        assert_eq!(
            check(&s, &Seen::Host(Some("dom0.example.org".into())), None).unwrap(),
            "dom0.example.org"
        );
        // --host replaces the hostname, not the spec's host.
        assert_eq!(
            check(&s, &Seen::Host(Some("lab2".into())), Some("dom0")).unwrap(),
            "dom0"
        );
        let e = check(&s, &Seen::Host(Some("dom0".into())), Some("lab2")).unwrap_err();
        assert!(
            e.message.contains("--host says this is `lab2`"),
            "{}",
            e.message
        );
        assert!(check(&s, &Seen::Host(None), None).is_err());
    }

    #[test]
    fn snapshots_are_compared_with_the_host_they_were_taken_on() {
        let s = spec("dom0");
        let snap = |r: Option<&str>| Seen::Snapshot {
            file: "x.json".into(),
            recorded: r.map(str::to_string),
        };
        assert!(check(&s, &snap(Some("dom0")), None).is_ok());
        let e = check(&s, &snap(Some("lab2")), None).unwrap_err();
        assert!(e.message.contains("taken on `lab2`"), "{}", e.message);
        let e = check(&s, &snap(None), None).unwrap_err();
        assert!(e.message.contains("records no host"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap().contains("--host dom0"));
        assert!(check(&s, &snap(None), Some("dom0")).is_ok());
    }

    #[test]
    fn a_saved_plan_runs_only_on_the_host_it_was_made_for() {
        assert!(check_saved(Some("dom0"), Some("dom0.example.org"), false, "p").is_ok());
        let e = check_saved(Some("dom0"), Some("lab2"), false, "p").unwrap_err();
        assert!(
            e.starts_with(
                "error[host]: the plan in p was made for host `dom0`, but this is `lab2`"
            ),
            "{e}"
        );
        assert!(check_saved(Some("dom0.a.org"), Some("dom0.b.org"), true, "p").is_err());
        assert!(check_saved(None, Some("dom0"), false, "p").is_err());
        assert!(check_saved(Some("dom0"), None, false, "p").is_err());
    }
}
