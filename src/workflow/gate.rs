//! What must hold before `hostform apply` changes anything: the lock is ours, the journal is
//! writable, the spec is the one planned (and signed, when required), the host is in the
//! state the saved plan was computed from. Called from `cli::apply` in a few lines.

use std::path::{Path, PathBuf};

use super::host::{self, Seen};
use super::journal::{self, Outcome, Record};
use super::lock;
use super::saved::{self, SavedPlan};
use crate::diag::ColorChoice;
use crate::discover::Facts;
use crate::plan::{Options, Plan};
use crate::runner::Runner;
use crate::spec::Loaded;

/// Why apply stopped before it changed anything. What went wrong is printed (and, once the
/// journal is open, recorded) where it is found; the command line turns the kind into an exit
/// code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Stopped {
    /// The command line asks for what cannot be done: `--rev` with a saved plan, a
    /// `--lock-timeout` that is no duration.
    #[error("a usage error; nothing was changed")]
    Usage,
    /// A check refused the apply, or it could not be made.
    #[error("refused; nothing was changed")]
    Refused,
}

/// What `apply` was asked to apply.
pub enum Target {
    Spec(PathBuf),
    Saved { path: PathBuf, plan: Box<SavedPlan> },
}

/// Tell a spec from a saved plan; refuse an altered plan file, and options that a saved plan
/// fixes itself.
pub fn target(path: &Path, rev: Option<&str>, allow_destroy: bool) -> Result<Target, Stopped> {
    match saved::read_if_saved(path) {
        Ok(None) => Ok(Target::Spec(path.to_path_buf())),
        Ok(Some(p)) => {
            // --allow-destroy is given again at apply for a plan made with it (its destructive
            // operations are approved now, too); a plan made without it cannot gain it.
            if rev.is_some() || (allow_destroy && !p.allow_destroy) {
                eprintln!(
                    "apply: {} is a saved plan: it is applied with the spec revision and options it was made with (--rev and --allow-destroy belong to `hostform plan --out`)",
                    path.display()
                );
                return Err(Stopped::Usage);
            }
            Ok(Target::Saved {
                path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
                plan: Box::new(p),
            })
        }
        Err(e) => {
            eprintln!("apply: {e}; nothing was changed");
            Err(Stopped::Refused)
        }
    }
}

/// Take the apply lock (waiting up to `timeout`), and journal that this apply started. The
/// record to complete and append when it ends comes back with the lock.
pub fn lock(
    lock_dir: &Path,
    state_dir: &Path,
    timeout: &str,
) -> Result<(lock::Held, Record), Stopped> {
    let wait = match super::parse_duration(timeout) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("apply: --lock-timeout {e}");
            return Err(Stopped::Usage);
        }
    };
    let held = lock::acquire(lock_dir, wait, &mut |busy| {
        eprintln!(
            "apply: waiting up to {}s: {busy}",
            wait.as_secs()
        );
    })
    .map_err(|e| {
        match e {
            lock::LockError::Busy { .. } => eprintln!(
                "apply: {e}\n  nothing was changed; wait for it to finish, or pass --lock-timeout 10m to wait"
            ),
            lock::LockError::Io { .. } => eprintln!("apply: {e}; nothing was changed"),
        }
        Stopped::Refused
    })?;
    // The first line of this apply's record: if it is killed, history shows it interrupted.
    let mut started = Record::begin();
    started.outcome = Outcome::Started;
    if let Err(e) = journal::append(state_dir, &started) {
        eprintln!("apply: {e}; nothing was changed");
        return Err(Stopped::Refused);
    }
    Ok((
        held,
        Record {
            outcome: Outcome::Refused,
            ..started
        },
    ))
}

/// What an apply runs, once every check passed.
pub struct Ready {
    pub loaded: Loaded,
    pub plan: Plan,
    pub opts: Options,
    /// From a saved plan: it was reviewed when made, so it is not confirmed again.
    pub saved: bool,
    /// The host as read before the change (the network's safe path saves it).
    pub facts: Facts,
}

/// The options of the spec path of `apply`.
pub struct SpecArgs<'a> {
    pub rev: Option<&'a str>,
    pub allow_destroy: bool,
    pub require_signed: bool,
    pub allowed_signers: Option<&'a Path>,
    /// `--host NAME`: this host is taken to be NAME.
    pub host: Option<&'a str>,
    /// `hostform drain` / `undrain`: the drain to change (never with a saved plan).
    pub drain: Option<crate::plan::Drain>,
}

/// Load the spec, check its signature, read the host and make (or check) the plan.
/// Every refusal is printed, recorded in `rec`, and returned.
pub fn prepare(
    target: &Target,
    a: &SpecArgs,
    runner: &dyn Runner,
    color: ColorChoice,
    rec: &mut Record,
) -> Result<Ready, Stopped> {
    let refuse = |rec: &mut Record, msg: String| {
        eprintln!("apply: {msg}; nothing was changed");
        rec.outcome = Outcome::Refused;
        rec.message = Some(msg);
        Stopped::Refused
    };
    let (spec_path, rev, opts) = match target {
        Target::Spec(p) => (
            p.clone(),
            a.rev.map(str::to_string),
            Options {
                allow_destroy: a.allow_destroy,
                drain: a.drain.clone(),
            },
        ),
        Target::Saved { .. } if a.drain.is_some() => {
            return Err(refuse(
                rec,
                "a drain is planned from the spec, not from a saved plan".into(),
            ));
        }
        Target::Saved { path, plan } => {
            rec.plan_file = Some(path.display().to_string());
            (
                plan.spec.path.clone(),
                plan.spec.rev.clone(),
                plan.options(),
            )
        }
    };
    rec.allow_destroy = opts.allow_destroy;
    // Which host this is: its hostname, or the name `--host` gives. A saved plan runs only on
    // the host it was made for.
    let hostname = host::read_hostname(runner);
    if let Target::Saved { path, plan } = target {
        let this = a.host.map(str::to_string).or_else(|| hostname.clone());
        if let Err(e) = host::check_saved(
            plan.host.as_deref(),
            this.as_deref(),
            a.host.is_some(),
            &path.display().to_string(),
        ) {
            eprintln!("apply: {e}");
            eprintln!("apply: nothing was changed");
            rec.outcome = Outcome::Refused;
            rec.message = Some(e.lines().next().unwrap_or_default().to_string());
            return Err(Stopped::Refused);
        }
    }
    let loaded = match super::load_spec(&spec_path, rev.as_deref(), color, "nothing was changed") {
        Ok(l) => l,
        Err(_) => {
            rec.message = Some(format!("{} is not valid", spec_path.display()));
            return Err(Stopped::Refused);
        }
    };
    let id = saved::spec_id(&loaded, rev.as_deref());
    rec.spec = Some(loaded.label.clone());
    rec.commit = loaded.commit.clone();
    rec.spec_sha256 = Some(id.sha256.clone());
    if let Target::Saved { plan, .. } = target
        && let Err(stale) = saved::check_spec(plan, &id)
    {
        return Err(refuse(
            rec,
            format!(
                "{stale}\n  make a new plan: hostform plan {} --out FILE",
                replan_args(plan)
            ),
        ));
    }
    if let Err(d) = host::check(&loaded.spec, &Seen::Host(hostname), a.host) {
        eprint!(
            "{}",
            crate::diag::render(&d, &loaded.sources, color.stderr())
        );
        eprintln!(
            "apply: {}: refused by the host check; nothing was changed",
            loaded.label
        );
        rec.outcome = Outcome::Refused;
        rec.message = Some(d.message.clone());
        return Err(Stopped::Refused);
    }
    if a.require_signed {
        match super::signing::require_signed(runner, &loaded, a.allowed_signers) {
            Ok(good) => println!("{}: {good}", loaded.label),
            Err(e) => return Err(refuse(rec, format!("--require-signed: {e}"))),
        }
    }
    let facts: Facts = match super::read_host(&loaded, runner) {
        Ok(f) => f,
        Err(e) => return Err(refuse(rec, format!("cannot read the host: {e}"))),
    };
    match target {
        Target::Spec(_) => {
            let plan = crate::plan::plan_host(&loaded.spec, &facts, &opts);
            Ok(Ready {
                loaded,
                plan,
                opts,
                saved: false,
                facts,
            })
        }
        Target::Saved { plan, .. } => {
            if let Err(stale) = saved::check_state(plan, &saved::state_id(&facts, "this host")) {
                return Err(refuse(
                    rec,
                    format!(
                        "{stale}\n  (planned against {})\n  make a new plan: hostform plan {} --out FILE",
                        plan.state.against,
                        replan_args(plan)
                    ),
                ));
            }
            // Plan again, from the spec at the plan's commit and the host as read now: only
            // that plan can run, and only if it is the one saved (and approved).
            let again = crate::plan::plan_host(&loaded.spec, &facts, &opts);
            if let Err(why) = saved::check_replan(plan, &again) {
                return Err(refuse(
                    rec,
                    format!(
                        "{why}\n  make a new plan: hostform plan {} --out FILE",
                        replan_args(plan)
                    ),
                ));
            }
            // The risk classes against the flags given now: a destructive operation runs only
            // when this apply, too, says --allow-destroy.
            if let Some(op) = again
                .ops
                .iter()
                .find(|o| o.risk == crate::plan::Risk::Destructive)
                .filter(|_| !a.allow_destroy)
            {
                return Err(refuse(
                    rec,
                    format!(
                        "operation {}: `{}` is destructive, and this apply was not given --allow-destroy\n  hint: a plan made with --allow-destroy is applied with it: hostform apply {} --allow-destroy",
                        op.id,
                        op.summary,
                        crate::runner::show_argv(&[&rec.plan_file.clone().unwrap_or_default()])
                    ),
                ));
            }
            Ok(Ready {
                loaded,
                plan: again,
                opts,
                saved: true,
                facts,
            })
        }
    }
}

/// The arguments that make the same plan again.
fn replan_args(p: &SavedPlan) -> String {
    let mut s = crate::runner::show_argv(&[&p.spec.path.to_string_lossy()]);
    if let Some(r) = &p.spec.rev {
        s.push_str(&format!(" --rev {}", crate::runner::show_argv(&[r])));
    }
    if p.allow_destroy {
        s.push_str(" --allow-destroy");
    }
    s
}

/// Append the record; a journal that cannot be written is reported, and does not undo the
/// apply's outcome.
pub fn record(state_dir: &Path, rec: &mut Record) {
    rec.finished = super::now();
    if let Err(e) = journal::append(state_dir, rec) {
        eprintln!("apply: warning: {e}");
    }
}
