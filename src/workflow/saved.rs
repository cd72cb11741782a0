//! Saved plans: `hostform plan --out FILE` writes what `hostform apply FILE` runs, exactly,
//! or refuses to run when the host or the spec changed since, or when the file was altered.
//!
//! The file is one JSON document (format 1):
//!
//! ```json
//! {"hostform-saved-plan": 1,
//! "sha256": "<hex SHA-256 of the bytes of `plan`, exactly as written>",
//! "plan": { "format_version": 1, "hostform_version": "0.1.0", "hostform_build": "1a2b3c4d5e6f",
//!           "created": "...",
//!           "host": "dom0", "spec": {...}, "state": {...}, "allow_destroy": false, "empty": false,
//!           "applicable": true, "operations": 3, "plan": { "changes": [...], "ops": [...], ... } } }
//! ```
//!
//! The checksum covers the body byte for byte, so any edit or truncation is detected before
//! anything is read from it. The discovered [`Facts`], without what changes on its own (an
//! array's resync progress), are cut into resources (`lvm.lvs.vg0/data`); each is hashed as
//! canonical JSON (keys sorted), `state.fingerprint` is the SHA-256 of every resource's name
//! and hash, and `state.parts` keeps a short hash per resource, so a refusal can name what
//! changed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{canonical_json, sha256_hex};
use crate::discover::Facts;
use crate::plan::{Options, Plan};
use crate::spec::Loaded;
use crate::spec::load::SAVED_PLAN_MAGIC as MAGIC;

pub use crate::spec::load::looks_saved;

pub const FORMAT_VERSION: u32 = 1;

/// Parts of the facts that change without anyone changing the host: left out of the
/// fingerprint. `*` matches any key. Rooms whose facts carry counters or progress add them here.
pub const VOLATILE: &[&[&str]] = &[
    &["arrays", "*", "progress"],
    // How full a thin pool (and each thin LV) is changes as guests write.
    &["lvm", "lvs", "*", "thin", "*", "data_percent"],
    &["lvm", "lvs", "*", "thin", "*", "metadata_percent"],
    // Where the SSH session that runs hostform arrived: a property of the session, not of
    // the host (a plan made over SSH may be applied from the console).
    &["net", "ssh_local"],
    // Which processes hold which devices open changes as guests restart and backups run.
    // `apply` plans again from what it reads then, and the write rule refuses there a device
    // opened meanwhile (the plan made then differs: `check_replan`).
    &["openers"],
];

/// Which spec a plan was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecId {
    /// `hosts/dom0.yaml @ 1a2b3c4`.
    pub label: String,
    /// The spec file, absolute: where `apply` reads it again.
    pub path: PathBuf,
    /// `--rev` as given (a branch is resolved again at apply time).
    #[serde(default)]
    pub rev: Option<String>,
    /// The commit it was read from, in full, when in git.
    #[serde(default)]
    pub commit: Option<String>,
    /// SHA-256 of the resolved spec (includes, templates and `like` applied).
    pub sha256: String,
}

/// Which state of the host a plan was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateId {
    /// `this host (dom0)` or `snapshot dom0.json`.
    pub against: String,
    pub fingerprint: String,
    /// `lvm.lvs.vg0/data` → short hash: names what changed when the fingerprint differs.
    pub parts: BTreeMap<String, String>,
}

/// The body of a saved plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub hostform_version: String,
    /// The build that made it (`crate::version::BUILD`): a plan is applied only by the same
    /// version and build. Absent from plans made before builds were recorded.
    #[serde(default)]
    pub hostform_build: Option<String>,
    pub created: String,
    /// The host the plan was made for: this host's hostname, the host the snapshot was taken
    /// on, or the name given with `--host`. `apply` runs it only on a host of that name
    /// (`crate::workflow::host`); a plan without it is refused.
    #[serde(default)]
    pub host: Option<String>,
    pub spec: SpecId,
    pub state: StateId,
    /// Made with `--allow-destroy`: applied with it, and only with it.
    pub allow_destroy: bool,
    /// Nothing to do: applying it changes nothing.
    pub empty: bool,
    /// No refusals.
    pub applicable: bool,
    pub operations: usize,
    pub plan: Plan,
}

impl SavedPlan {
    pub fn new(
        loaded: &Loaded,
        rev: Option<&str>,
        facts: &Facts,
        against: &str,
        host: &str,
        opts: &Options,
        plan: Plan,
    ) -> Self {
        SavedPlan {
            format_version: FORMAT_VERSION,
            hostform_version: crate::version::VERSION.into(),
            hostform_build: Some(crate::version::BUILD.into()),
            created: super::now(),
            host: Some(host.to_string()),
            spec: spec_id(loaded, rev),
            state: state_id(facts, against),
            allow_destroy: opts.allow_destroy,
            empty: !plan.has_changes(),
            applicable: plan.refusals.is_empty(),
            operations: plan.ops.len(),
            plan,
        }
    }

    /// The hostform that made it: `0.1.0 (1a2b3c4d5e6f)`.
    pub fn made_by(&self) -> String {
        crate::version::identity(&self.hostform_version, self.hostform_build.as_deref())
    }

    pub fn options(&self) -> Options {
        Options {
            allow_destroy: self.allow_destroy,
            drain: None,
        }
    }
}

pub fn spec_id(loaded: &Loaded, rev: Option<&str>) -> SpecId {
    let value = serde_json::to_value(&loaded.spec).unwrap_or_default();
    SpecId {
        label: loaded.label.clone(),
        path: loaded.root.join(&loaded.rel),
        rev: rev.map(str::to_string),
        commit: loaded.commit.clone(),
        sha256: sha256_hex(canonical_json(&value).as_bytes()),
    }
}

fn strip(v: &mut serde_json::Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let serde_json::Value::Object(m) = v else {
        return;
    };
    if rest.is_empty() {
        if *first == "*" {
            m.clear();
        } else {
            m.remove(*first);
        }
        return;
    }
    if *first == "*" {
        for child in m.values_mut() {
            strip(child, rest);
        }
    } else if let Some(child) = m.get_mut(*first) {
        strip(child, rest);
    }
}

/// Short hashes per resource: an object whose values are all objects or lists is a map of
/// resources (or a group of such maps) and is entered, so keys name resources
/// (`lvm.lvs.vg0/data`, `arrays.md0`, `blocks.devices.vda`); anything else is hashed whole.
fn parts(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    // Full hashes here; `state_id` derives the fingerprint from them and shortens them.
    match v {
        serde_json::Value::Object(m)
            if prefix.is_empty()
                || (!m.is_empty() && m.values().all(|c| c.is_object() || c.is_array())) =>
        {
            for (k, child) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                parts(&key, child, out);
            }
        }
        _ => {
            out.insert(prefix.to_string(), sha256_hex(canonical_json(v).as_bytes()));
        }
    }
}

/// The fingerprint of discovered state: the same host, unchanged, gives the same value.
pub fn state_id(facts: &Facts, against: &str) -> StateId {
    let mut v = serde_json::to_value(facts).unwrap_or_default();
    for p in VOLATILE {
        strip(&mut v, p);
    }
    let mut p = BTreeMap::new();
    parts("", &v, &mut p);
    // The whole state's hash, from every part's full hash (each part is read once).
    let mut all = String::with_capacity(p.len() * 100);
    for (k, h) in &p {
        all.push_str(k);
        all.push('\0');
        all.push_str(h);
        all.push('\n');
    }
    let fingerprint = sha256_hex(all.as_bytes());
    for h in p.values_mut() {
        h.truncate(16);
    }
    StateId {
        against: against.to_string(),
        fingerprint,
        parts: p,
    }
}

/// The file's text.
pub fn encode(saved: &SavedPlan) -> String {
    let body = serde_json::to_string_pretty(saved).unwrap_or_default();
    format!(
        "{{\"{MAGIC}\": {FORMAT_VERSION},\n\"sha256\": \"{}\",\n\"plan\": {body}\n}}\n",
        sha256_hex(body.as_bytes())
    )
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "hostform-saved-plan")]
    version: u32,
    sha256: String,
    #[serde(borrow)]
    plan: &'a serde_json::value::RawValue,
}

/// Read a saved plan, refusing anything altered, cut short or from another format.
pub fn decode(text: &str) -> Result<SavedPlan, String> {
    let env: Envelope = serde_json::from_str(text).map_err(|e| {
        if e.is_eof() {
            "the file is truncated (it ends in the middle of the plan)".to_string()
        } else {
            format!("the file is damaged: {e}")
        }
    })?;
    if env.version != FORMAT_VERSION {
        return Err(format!(
            "it is a saved plan of format {}; this hostform reads format {FORMAT_VERSION}",
            env.version
        ));
    }
    let body = env.plan.get();
    if sha256_hex(body.as_bytes()) != env.sha256 {
        return Err(
            "its checksum does not match its content: the file was modified after `hostform plan --out` wrote it"
                .into(),
        );
    }
    let saved: SavedPlan =
        serde_json::from_str(body).map_err(|e| format!("the plan inside is not readable: {e}"))?;
    // The checksum is no signature: check that every operation is one hostform produces.
    super::trust::check_ops(&saved.plan.ops, saved.allow_destroy)?;
    Ok(saved)
}

/// The plan made again now, from the spec at its recorded commit and the host as read now,
/// must be the saved one exactly: the saved plan is an approval of that plan, and runs only
/// when it is still what hostform would do.
pub fn check_replan(saved: &SavedPlan, now: &Plan) -> Result<(), String> {
    if saved.plan == *now {
        return Ok(());
    }
    let was = &saved.plan;
    let mut what: Vec<String> = Vec::new();
    let ids = |p: &Plan| -> BTreeMap<String, crate::plan::Op> {
        p.ops
            .iter()
            .map(|o| (o.id.to_string(), o.clone()))
            .collect()
    };
    let (a, b) = (ids(was), ids(now));
    for (id, o) in &a {
        match b.get(id) {
            None => what.push(format!("operation {id} is not in the plan made now")),
            Some(n) if n != o => what.push(format!(
                "operation {id} differs: saved `{}`, now `{}`",
                crate::runner::show_argv(&o.argv().iter().map(String::as_str).collect::<Vec<_>>()),
                crate::runner::show_argv(&n.argv().iter().map(String::as_str).collect::<Vec<_>>())
            )),
            _ => {}
        }
    }
    for id in b.keys().filter(|k| !a.contains_key(*k)) {
        what.push(format!("operation {id} is new in the plan made now"));
    }
    if what.is_empty() {
        what.push(
            "the plan made now differs from the saved one (its changes, refusals or order)".into(),
        );
    }
    Err(format!(
        "the saved plan is not the plan hostform makes now from the same spec and host: {}",
        what.join("; ")
    ))
}

/// Read a saved plan from a file: `Ok(None)` when the file is not one (it is a spec).
pub fn read_if_saved(path: &Path) -> Result<Option<SavedPlan>, String> {
    let Ok(text) = std::fs::read(path) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&text);
    if !looks_saved(&text) {
        return Ok(None);
    }
    decode(&text)
        .map(Some)
        .map_err(|e| format!("{} is not a usable saved plan: {e}", path.display()))
}

/// Why a saved plan may not be applied now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    Version { made_by: String },
    Spec(String),
    Host(Vec<String>),
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::Version { made_by } => write!(
                f,
                "the plan was made by hostform {made_by}; this is hostform {}",
                crate::version::IDENTITY
            ),
            Stale::Spec(s) => write!(f, "the spec changed since the plan was made: {s}"),
            Stale::Host(what) => {
                const SHOWN: usize = 8;
                write!(f, "the host changed since the plan was made: ")?;
                let list: Vec<&str> = what.iter().take(SHOWN).map(String::as_str).collect();
                write!(f, "{}", list.join(", "))?;
                if what.len() > SHOWN {
                    write!(f, " and {} more", what.len() - SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

/// The spec read again now must be the one the plan was made from.
pub fn check_spec(saved: &SavedPlan, now: &SpecId) -> Result<(), Stale> {
    if !crate::version::is_this(&saved.hostform_version, saved.hostform_build.as_deref()) {
        return Err(Stale::Version {
            made_by: saved.made_by(),
        });
    }
    let was = &saved.spec;
    if was.rev.is_some() && was.commit != now.commit {
        return Err(Stale::Spec(format!(
            "--rev {} was commit {}, it is now {}",
            was.rev.as_deref().unwrap_or_default(),
            short(was.commit.as_deref()),
            short(now.commit.as_deref())
        )));
    }
    if was.sha256 != now.sha256 {
        return Err(Stale::Spec(format!("{} reads differently now", was.label)));
    }
    Ok(())
}

fn short(c: Option<&str>) -> String {
    c.map(|c| c.chars().take(7).collect())
        .unwrap_or_else(|| "none".into())
}

/// The host discovered now must be in the state the plan was computed from.
pub fn check_state(saved: &SavedPlan, now: &StateId) -> Result<(), Stale> {
    if saved.state.fingerprint == now.fingerprint {
        return Ok(());
    }
    let was = &saved.state.parts;
    let mut what: Vec<String> = Vec::new();
    for (k, h) in &now.parts {
        match was.get(k) {
            None => what.push(format!("{k} appeared")),
            Some(w) if w != h => what.push(format!("{k} changed")),
            _ => {}
        }
    }
    for k in was.keys().filter(|k| !now.parts.contains_key(*k)) {
        what.push(format!("{k} disappeared"));
    }
    if what.is_empty() {
        what.push("its fingerprint differs".into());
    }
    Err(Stale::Host(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::runner;

    /// A pool fills as guests write: a saved plan does not go stale for that, but does when the
    /// pool grows.
    #[test]
    fn how_full_a_pool_is_is_not_part_of_the_state_fingerprint() {
        use crate::kinds::lvm::Thin;
        let d = crate::discover::discover(&runner("thin")).expect("thin");
        let before = state_id(&d.facts, "t").fingerprint;
        let mut facts = d.facts.clone();
        for lv in facts.lvm.lvs.values_mut() {
            match &mut lv.thin {
                Some(Thin::Pool {
                    data_percent,
                    metadata_percent,
                    ..
                }) => {
                    *data_percent = "99.00".into();
                    *metadata_percent = "50.00".into();
                }
                Some(Thin::Volume { data_percent, .. }) => *data_percent = "42.00".into(),
                None => {}
            }
        }
        assert_eq!(state_id(&facts, "t").fingerprint, before);
        facts.lvm.lvs.get_mut("vgt/pool0").unwrap().size *= 2;
        assert_ne!(state_id(&facts, "t").fingerprint, before);
    }

    const SPEC: &str = "host: lab
disks:
  a: { serial: HF-DISK-A }
volume-groups:
  vg0:
    pvs: [a]
    lvs:
      data: { size: 64MiB, fs: ext4 }
";

    fn facts(scenario: &str) -> Facts {
        crate::discover::discover(&runner(scenario)).unwrap().facts
    }

    fn saved(scenario: &str) -> SavedPlan {
        let loaded = crate::spec::load_str("lab.yaml", SPEC).unwrap();
        let f = facts(scenario);
        let opts = Options::default();
        let plan = crate::plan::plan_host(&loaded.spec, &f, &opts);
        SavedPlan::new(&loaded, None, &f, "this host", "lab", &opts, plan)
    }

    #[test]
    fn which_processes_hold_devices_open_is_no_part_of_the_fingerprint() {
        let f = facts("opened");
        assert!(!f.openers.is_empty());
        let mut closed = f.clone();
        closed.openers.clear();
        assert_eq!(
            state_id(&f, "x").fingerprint,
            state_id(&closed, "x").fingerprint
        );
    }

    #[test]
    fn a_saved_plan_does_not_write_a_disk_opened_since() {
        // Planned on the blank host: pvcreate on vda.
        let s = saved("blank");
        assert!(s.plan.ops.iter().any(|o| o.argv()[0] == "pvcreate"));
        // By apply, a process (the `opened` capture's) holds vda open: the same fingerprint,
        // but the plan made again refuses the write, so the saved one does not run.
        let mut now = facts("blank");
        now.openers
            .insert("vda".into(), facts("opened").openers["vdb"].clone());
        assert!(check_state(&s, &state_id(&now, "this host")).is_ok());
        let loaded = crate::spec::load_str("lab.yaml", SPEC).unwrap();
        let again = crate::plan::plan_host(&loaded.spec, &now, &Options::default());
        let Err(e) = check_replan(&s, &again) else {
            panic!("the saved plan would run over an open disk")
        };
        assert!(e.contains("not in the plan made now"), "{e}");
        assert!(
            again
                .refusals
                .iter()
                .any(|r| r.reason.contains("vda is open by sleep (pid 226)")),
            "{:?}",
            again.refusals
        );
    }

    #[test]
    fn the_same_host_read_twice_has_the_same_fingerprint() {
        assert_eq!(
            state_id(&facts("full"), "x").fingerprint,
            state_id(&facts("full"), "x").fingerprint
        );
        assert_ne!(
            state_id(&facts("full"), "x").fingerprint,
            state_id(&facts("blank"), "x").fingerprint
        );
    }

    #[test]
    fn resync_progress_is_not_a_change_but_a_missing_member_is() {
        // The degraded capture holds md state only (a recovering array): on the host of `reused`.
        let mut f = facts("reused");
        f.arrays = crate::kinds::md::discover(&runner("degraded"));
        let base = state_id(&f, "x");
        let mut g = f.clone();
        for a in g.arrays.values_mut() {
            if let Some(p) = &mut a.progress {
                p.percent += 10.0;
            }
        }
        assert!(
            f.arrays.values().any(|a| a.progress.is_some()),
            "the degraded capture is recovering"
        );
        assert_eq!(state_id(&g, "x").fingerprint, base.fingerprint);
        let mut h = f.clone();
        for a in h.arrays.values_mut() {
            a.members.pop();
        }
        let stale = check_state(
            &SavedPlan {
                state: base,
                ..saved("reused")
            },
            &state_id(&h, "x"),
        )
        .unwrap_err();
        assert!(stale.to_string().contains("arrays.md0 changed"), "{stale}");
    }

    #[test]
    fn round_trip_and_every_alteration_is_refused() {
        let s = saved("blank");
        assert!(!s.empty);
        let text = encode(&s);
        assert!(looks_saved(&text));
        assert_eq!(decode(&text).unwrap(), s);
        // Encoding is deterministic for the same plan.
        assert_eq!(encode(&s), text);
        // Truncated anywhere.
        for cut in [text.len() - 2, text.len() / 2, 40] {
            let e = decode(&text[..cut]).unwrap_err();
            assert!(
                e.contains("truncated") || e.contains("damaged"),
                "{cut}: {e}"
            );
        }
        // One character changed inside the plan.
        let tampered = text.replacen("mkfs.ext4", "mkfs.xfs ", 1);
        assert_ne!(tampered, text);
        assert!(
            decode(&tampered)
                .unwrap_err()
                .contains("checksum does not match")
        );
        // Another format.
        let other = text.replacen(
            "\"hostform-saved-plan\": 1",
            "\"hostform-saved-plan\": 9",
            1,
        );
        assert!(decode(&other).unwrap_err().contains("format 9"));
        assert!(!looks_saved(SPEC));
    }

    #[test]
    fn a_changed_host_is_named() {
        let s = saved("blank");
        let now = state_id(&facts("full"), "this host");
        let e = check_state(&s, &now).unwrap_err().to_string();
        assert!(
            e.starts_with("the host changed since the plan was made: "),
            "{e}"
        );
        assert!(
            e.contains("arrays.md0 appeared") && e.contains(" more"),
            "{e}"
        );
        assert!(check_state(&s, &state_id(&facts("blank"), "this host")).is_ok());
    }

    #[test]
    fn a_changed_spec_is_refused() {
        let s = saved("blank");
        let other = crate::spec::load_str("lab.yaml", &SPEC.replace("64MiB", "65MiB")).unwrap();
        let e = check_spec(&s, &spec_id(&other, None))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("the spec changed since the plan was made"),
            "{e}"
        );
        let same = crate::spec::load_str("lab.yaml", SPEC).unwrap();
        assert!(check_spec(&s, &spec_id(&same, None)).is_ok());
        let mut old = s.clone();
        old.hostform_version = "0.0.1".into();
        assert!(matches!(
            check_spec(&old, &spec_id(&same, None)),
            Err(Stale::Version { .. })
        ));
        // The same version, another build (another commit, other uncommitted sources, or a
        // plan that recorded none): refused too, naming both.
        for build in [Some("0123456789ab"), Some("no git"), None] {
            let mut other = s.clone();
            other.hostform_build = build.map(str::to_string);
            let e = check_spec(&other, &spec_id(&same, None))
                .unwrap_err()
                .to_string();
            let made_by = crate::version::identity(crate::version::VERSION, build);
            assert_eq!(
                e,
                format!(
                    "the plan was made by hostform {made_by}; this is hostform {}",
                    crate::version::IDENTITY
                )
            );
        }
    }
}
