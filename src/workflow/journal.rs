//! The apply journal: one JSON line per apply, appended to `<state dir>/journal.jsonl`.
//!
//! Each line is written with a single `write(2)` on a file opened with `O_APPEND` (under the
//! apply lock), then synced, so lines never interleave and a crash leaves at most the last
//! line incomplete; readers skip lines they cannot parse and say how many.
//!
//! An apply writes a `started` line when it takes the lock, one `operation` line when each
//! operation starts and one when it ends (done, failed or skipped), and its final record. So
//! an apply killed with SIGKILL, or on a machine that lost power, still shows in `history`
//! exactly which operations ran, which one was running, and how each ended.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "journal.jsonl";

/// How an apply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Written when an apply takes the lock, before it reads anything; the apply's final
    /// record follows. Alone, it is shown as `interrupted`.
    Started,
    /// A `started` record with no final record after it: the apply was killed.
    Interrupted,
    /// One operation of the apply whose `started` line it follows began or ended: its
    /// `operations` holds that one operation (result `running`, `done`, `failed` or
    /// `skipped`). Folded into the apply when read.
    Operation,
    /// Operations ran and the host was verified to match the spec.
    Applied,
    /// The host already matched the spec.
    NoChanges,
    /// Nothing ran: stale or altered plan, refusals, unsigned spec, invalid spec.
    Refused,
    /// Nothing ran: the operator did not confirm.
    Cancelled,
    /// An operation failed (others may have run).
    Failed,
    /// Everything ran but the host still differs from the spec.
    Unverified,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Interrupted => "interrupted",
            Outcome::Operation => "operation",
            Outcome::Applied => "applied",
            Outcome::NoChanges => "no-changes",
            Outcome::Refused => "refused",
            Outcome::Cancelled => "cancelled",
            Outcome::Failed => "failed",
            Outcome::Unverified => "unverified",
        }
    }
}

/// One operation's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpResult {
    pub id: String,
    pub summary: String,
    pub argv: Vec<String>,
    /// `done`, `failed`, `skipped` or `not-run` (`running` in an `operation` line written as
    /// it starts, and in an interrupted apply for the operation that never ended).
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it started and finished (absent for operations that did not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<String>,
}

/// One apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub started: String,
    pub finished: String,
    pub host: String,
    pub hostform_version: String,
    /// The build (`crate::version::BUILD`); absent from records written before builds were
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostform_build: Option<String>,
    pub pid: u32,
    pub command: Vec<String>,
    /// Who ran it: the user, the user behind sudo, and the SSH connection it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_client: Option<String>,
    /// The spec's label (`hosts/dom0.yaml @ 1a2b3c4`).
    #[serde(default)]
    pub spec: Option<String>,
    #[serde(default)]
    pub commit: Option<String>,
    #[serde(default)]
    pub spec_sha256: Option<String>,
    /// The saved plan applied, if any.
    #[serde(default)]
    pub plan_file: Option<String>,
    pub allow_destroy: bool,
    pub outcome: Outcome,
    /// Why it was refused or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub operations: Vec<OpResult>,
}

impl Record {
    pub fn begin() -> Self {
        Record {
            started: super::now(),
            finished: String::new(),
            host: super::hostname(),
            hostform_version: crate::version::VERSION.into(),
            hostform_build: Some(crate::version::BUILD.into()),
            pid: std::process::id(),
            command: std::env::args().collect(),
            user: nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
                .or_else(|| Some(nix::unistd::getuid().to_string())),
            sudo_user: std::env::var("SUDO_USER").ok().filter(|v| !v.is_empty()),
            ssh_client: std::env::var("SSH_CLIENT").ok().filter(|v| !v.is_empty()),
            spec: None,
            commit: None,
            spec_sha256: None,
            plan_file: None,
            allow_destroy: false,
            outcome: Outcome::Refused,
            message: None,
            operations: Vec::new(),
        }
    }

    /// Record the plan's operations with what became of each.
    pub fn results(&mut self, plan: &crate::plan::Plan, outcome: Option<&crate::apply::Outcome>) {
        self.operations = plan
            .ops
            .iter()
            .map(|op| {
                let failed =
                    outcome.and_then(|o| o.failed.iter().find(|(id, _)| id == op.id.as_str()));
                let result = match outcome {
                    None => "not-run",
                    Some(_) if failed.is_some() => "failed",
                    Some(o) if o.done.iter().any(|d| d == op.id.as_str()) => "done",
                    Some(o) if o.skipped.iter().any(|d| d == op.id.as_str()) => "skipped",
                    Some(_) => "not-run",
                };
                OpResult {
                    id: op.id.to_string(),
                    summary: op.summary.clone(),
                    argv: op.argv().to_vec(),
                    result: result.into(),
                    error: failed.map(|(_, e)| e.clone()),
                    started: outcome
                        .and_then(|o| o.times.get(op.id.as_str()))
                        .map(|t| t.0.clone()),
                    finished: outcome
                        .and_then(|o| o.times.get(op.id.as_str()))
                        .map(|t| t.1.clone()),
                }
            })
            .collect();
    }

    /// The `operation` line for one operation of this apply: it begins (`running`, with its
    /// start time) or ends (`done`, `failed` or `skipped`, with its end time and error).
    pub fn operation(&self, op: &crate::plan::Op, result: &str, error: Option<String>) -> Self {
        let now = super::now();
        let (started, finished) = if result == "running" {
            (Some(now), None)
        } else {
            (None, Some(now))
        };
        Record {
            outcome: Outcome::Operation,
            message: None,
            operations: vec![OpResult {
                id: op.id.to_string(),
                summary: op.summary.clone(),
                argv: op.argv().to_vec(),
                result: result.into(),
                error,
                started,
                finished,
            }],
            ..self.clone()
        }
    }
}

pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(JOURNAL_FILE)
}

/// Append one record (creating the directory and file, mode 0600, as needed).
pub fn append(state_dir: &Path, rec: &Record) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let p = path(state_dir);
    let fail = |e: std::io::Error| format!("cannot write the journal {}: {e}", p.display());
    std::fs::create_dir_all(state_dir).map_err(fail)?;
    let mut line = serde_json::to_string(rec).map_err(|e| e.to_string())?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&p)
        .map_err(fail)?;
    f.write_all(line.as_bytes()).map_err(fail)?;
    f.sync_data().map_err(fail)
}

/// The applies, oldest first, and how many lines could not be read. An apply is its
/// `started` line with its final record, at the place of the `started` line; a final record
/// usually follows its `started` line, but one written later ([`close_unfinished`], at the next
/// boot) may come after other applies. A `started` line without a final record is an
/// `interrupted` apply. The apply's `operation` lines are folded into it: each operation once,
/// where it first appears, with its latest state and both its times (they are the record's
/// operations when its final record has none, as for an apply killed or closed at boot).
pub fn read(state_dir: &Path) -> Result<(Vec<Record>, usize), String> {
    let (raw, bad) = read_raw(state_dir)?;
    // The lines of each apply after its `started` line, by (pid, start time).
    let mut lines_of: std::collections::HashMap<(u32, String), Vec<usize>> =
        std::collections::HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        if r.outcome != Outcome::Started {
            lines_of
                .entry((r.pid, r.started.clone()))
                .or_default()
                .push(i);
        }
    }
    let mut raw: Vec<Option<Record>> = raw.into_iter().map(Some).collect();
    let mut out: Vec<Record> = Vec::with_capacity(raw.len());
    for i in 0..raw.len() {
        let Some(r) = raw[i].take() else { continue };
        match r.outcome {
            Outcome::Started => {}
            // An operation line without its apply's `started` line (cut by hand): skipped.
            Outcome::Operation => continue,
            _ => {
                out.push(r);
                continue;
            }
        }
        let mut ops: Vec<OpResult> = Vec::new();
        let mut fin: Option<Record> = None;
        for &j in lines_of
            .get(&(r.pid, r.started.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter(|&&j| j > i)
        {
            let Some(n) = raw[j].take_if(|n| n.outcome == Outcome::Operation || fin.is_none())
            else {
                continue;
            };
            if n.outcome != Outcome::Operation {
                fin = Some(n);
                continue;
            }
            for o in n.operations {
                match ops.iter_mut().find(|x| x.id == o.id) {
                    Some(x) => {
                        x.result = o.result;
                        x.error = o.error.or(x.error.take());
                        x.started = x.started.take().or(o.started);
                        x.finished = o.finished.or(x.finished.take());
                    }
                    None => ops.push(o),
                }
            }
        }
        match fin {
            Some(mut f) => {
                if f.operations.is_empty() {
                    f.operations = ops;
                }
                out.push(f)
            }
            None => out.push(Record {
                outcome: Outcome::Interrupted,
                message: Some(
                    "the apply ended without a final record (killed, or the machine went down)"
                        .into(),
                ),
                operations: ops,
                ..r
            }),
        }
    }
    Ok((out, bad))
}

/// Write the final record of process `pid`'s last apply when it has none (the machine went
/// down while its change waited for confirmation, and the change was settled at the next
/// boot): the `started` record with `outcome` and `message`. Whether one was written.
pub fn close_unfinished(
    state_dir: &Path,
    pid: u32,
    outcome: Outcome,
    message: &str,
) -> Result<bool, String> {
    let (raw, _) = read_raw(state_dir)?;
    let Some(i) = raw
        .iter()
        .rposition(|r| r.pid == pid && r.outcome == Outcome::Started)
    else {
        return Ok(false);
    };
    let start = &raw[i];
    if raw[i + 1..].iter().any(|r| {
        r.pid == start.pid
            && r.started == start.started
            && !matches!(r.outcome, Outcome::Started | Outcome::Operation)
    }) {
        return Ok(false);
    }
    let mut rec = start.clone();
    rec.finished = super::now();
    rec.outcome = outcome;
    rec.message = Some(message.into());
    append(state_dir, &rec)?;
    Ok(true)
}

/// Every line as written.
pub fn read_raw(state_dir: &Path) -> Result<(Vec<Record>, usize), String> {
    let p = path(state_dir);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(format!("cannot read the journal {}: {e}", p.display())),
    };
    let mut bad = 0;
    let records = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| match serde_json::from_str(l) {
            Ok(r) => Some(r),
            Err(_) => {
                bad += 1;
                None
            }
        })
        .collect();
    Ok((records, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_append_and_read_back_in_order_skipping_a_torn_line() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(read(d.path()).unwrap().0.len(), 0);
        let mut a = Record::begin();
        a.outcome = Outcome::Applied;
        a.spec = Some("hosts/a.yaml @ 1234567".into());
        append(d.path(), &a).unwrap();
        // A crash in the middle of a write leaves a torn last line.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path(d.path()))
            .unwrap();
        f.write_all(b"{\"started\":\"20").unwrap();
        f.write_all(b"\n").unwrap();
        let mut b = Record::begin();
        b.outcome = Outcome::Refused;
        b.message = Some("stale".into());
        append(d.path(), &b).unwrap();
        let (recs, bad) = read(d.path()).unwrap();
        assert_eq!(bad, 1);
        assert_eq!(recs, vec![a.clone(), b.clone()]);
        // A started apply followed by its final record is one apply; one killed is interrupted.
        let mut c = Record::begin();
        c.outcome = Outcome::Started;
        append(d.path(), &c).unwrap();
        let mut c_end = c.clone();
        c_end.outcome = Outcome::Applied;
        append(d.path(), &c_end).unwrap();
        let mut killed = Record::begin();
        killed.pid += 1;
        killed.outcome = Outcome::Started;
        append(d.path(), &killed).unwrap();
        let mut after = Record::begin();
        after.pid += 2;
        after.outcome = Outcome::Started;
        append(d.path(), &after).unwrap();
        let (recs, _) = read(d.path()).unwrap();
        let outcomes: Vec<Outcome> = recs.iter().map(|r| r.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Applied,
                Outcome::Refused,
                Outcome::Applied,
                Outcome::Interrupted,
                Outcome::Interrupted
            ]
        );
        assert_eq!(read_raw(d.path()).unwrap().0.len(), 6);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path(d.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_killed_apply_shows_the_operations_its_lines_recorded() {
        let loaded = crate::spec::load_str(
            "a.yaml",
            "host: a\ndisks:\n  a: { serial: HF-DISK-A }\nvolume-groups:\n  vg0:\n    pvs: [a]\n    lvs:\n      x: { size: 8MiB }\n",
        )
        .unwrap();
        let facts = crate::discover::discover(&crate::runner::fixtures::runner("blank"))
            .unwrap()
            .facts;
        let plan = crate::plan::plan_host(&loaded.spec, &facts, &Default::default());
        let d = tempfile::tempdir().unwrap();
        let mut started = Record::begin();
        started.outcome = Outcome::Started;
        append(d.path(), &started).unwrap();
        // The first operation ran; the second started, then the process was killed.
        for (op, result) in [
            (&plan.ops[0], "running"),
            (&plan.ops[0], "done"),
            (&plan.ops[1], "running"),
        ] {
            append(d.path(), &started.operation(op, result, None)).unwrap();
        }
        // The next apply ran to its end, its operation lines folded into it too.
        let mut next = Record::begin();
        next.pid += 1;
        next.outcome = Outcome::Started;
        append(d.path(), &next).unwrap();
        append(d.path(), &next.operation(&plan.ops[0], "running", None)).unwrap();
        append(
            d.path(),
            &next.operation(&plan.ops[0], "failed", Some("exit 5".into())),
        )
        .unwrap();
        let mut end = next.clone();
        end.outcome = Outcome::Failed;
        append(d.path(), &end).unwrap();
        let (recs, bad) = read(d.path()).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(recs.len(), 2, "{recs:?}");
        assert_eq!(recs[0].outcome, Outcome::Interrupted);
        let ops: Vec<(&str, &str)> = recs[0]
            .operations
            .iter()
            .map(|o| (o.id.as_str(), o.result.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                (plan.ops[0].id.as_str(), "done"),
                (plan.ops[1].id.as_str(), "running")
            ]
        );
        let first = &recs[0].operations[0];
        assert!(
            first.started.is_some() && first.finished.is_some(),
            "{first:?}"
        );
        assert!(first.started <= first.finished);
        assert!(recs[0].operations[1].finished.is_none());
        assert_eq!(recs[1].outcome, Outcome::Failed);
        assert_eq!(read_raw(d.path()).unwrap().0.len(), 8);
    }

    #[test]
    fn an_apply_settled_at_the_next_boot_is_closed_in_its_place() {
        let d = tempfile::tempdir().unwrap();
        // An apply whose change waited for confirmation when the machine went down ...
        let mut waiting = Record::begin();
        waiting.pid = 4242;
        waiting.outcome = Outcome::Started;
        append(d.path(), &waiting).unwrap();
        // It wrote its bridge file: that operation line is what the closed record shows.
        let op = crate::plan::Op::run(
            crate::plan::OpId::new(
                66,
                crate::plan::Address::File("/etc/network/interfaces.d/hostform".into()),
                crate::plan::Verb::Write,
            ),
            "bridge br0",
            "write /etc/network/interfaces.d/hostform",
            vec![],
        );
        append(d.path(), &waiting.operation(&op, "running", None)).unwrap();
        append(d.path(), &waiting.operation(&op, "done", None)).unwrap();
        // ... then, at the next boot, an apply refused meanwhile.
        let mut refused = Record::begin();
        refused.pid = 77;
        refused.outcome = Outcome::Refused;
        append(d.path(), &refused).unwrap();
        assert_eq!(
            read(d.path()).unwrap().0[0].outcome,
            Outcome::Interrupted,
            "unsettled"
        );
        assert!(
            close_unfinished(d.path(), 4242, Outcome::Unverified, "rolled back at boot").unwrap()
        );
        // Once only, and never for an apply with a final record or another pid.
        assert!(!close_unfinished(d.path(), 4242, Outcome::Unverified, "again").unwrap());
        assert!(!close_unfinished(d.path(), 77, Outcome::Unverified, "x").unwrap());
        assert!(!close_unfinished(d.path(), 5, Outcome::Unverified, "x").unwrap());
        let (recs, _) = read(d.path()).unwrap();
        assert_eq!(recs.len(), 2, "{recs:#?}");
        assert_eq!(recs[0].outcome, Outcome::Unverified);
        assert_eq!(recs[0].started, waiting.started);
        assert_eq!(recs[0].message.as_deref(), Some("rolled back at boot"));
        assert!(!recs[0].finished.is_empty());
        assert_eq!(recs[0].operations.len(), 1, "{recs:#?}");
        assert_eq!(recs[0].operations[0].result, "done");
        assert_eq!(recs[1].outcome, Outcome::Refused);
        assert_eq!(read_raw(d.path()).unwrap().0.len(), 5);
    }

    #[test]
    fn results_say_what_became_of_each_operation() {
        let loaded = crate::spec::load_str(
            "a.yaml",
            "host: a\ndisks:\n  a: { serial: HF-DISK-A }\nvolume-groups:\n  vg0:\n    pvs: [a]\n    lvs:\n      x: { size: 8MiB }\n",
        )
        .unwrap();
        let facts = crate::discover::discover(&crate::runner::fixtures::runner("blank"))
            .unwrap()
            .facts;
        let plan = crate::plan::plan_host(&loaded.spec, &facts, &Default::default());
        assert!(plan.ops.len() >= 3, "{plan:?}");
        let out = crate::apply::Outcome {
            done: vec![plan.ops[0].id.to_string()],
            failed: vec![(plan.ops[1].id.to_string(), "exit 5".into())],
            skipped: vec![plan.ops[2].id.to_string()],
            times: [(
                plan.ops[0].id.to_string(),
                ("2026-01-01T00:00:00Z".into(), "2026-01-01T00:00:02Z".into()),
            )]
            .into(),
        };
        let mut r = Record::begin();
        r.results(&plan, Some(&out));
        let res: Vec<&str> = r.operations.iter().map(|o| o.result.as_str()).collect();
        assert_eq!(&res[..3], ["done", "failed", "skipped"]);
        assert_eq!(r.operations[1].error.as_deref(), Some("exit 5"));
        assert_eq!(
            r.operations[0].finished.as_deref(),
            Some("2026-01-01T00:00:02Z")
        );
        assert_eq!(r.operations[1].started, None, "no time for what has none");
        assert!(r.user.is_some(), "who ran it is recorded");
        let line = serde_json::to_string(&r).unwrap();
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
        r.results(&plan, None);
        assert!(r.operations.iter().all(|o| o.result == "not-run"));
    }
}
