//! Executing a plan: operations in the plan's order, through the runner. When one fails, what
//! depends on it is skipped and what does not still runs; the failed command is reported with
//! its argv, exit status and stderr. When / is read-only and LVM metadata must change, the run
//! is wrapped in `mount -o remount,rw /` … `remount,ro /`, and / goes back to read-only even
//! after a failure. Operations run one at a time for now.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::plan::{Op, Plan};
use crate::runner::{RunError, Runner, show_argv};

#[derive(Debug)]
pub enum Event<'a> {
    Start { n: usize, total: usize, op: &'a Op },
    Done { op: &'a Op, took: Duration },
    Failed { op: &'a Op, error: &'a RunError },
    Skipped { op: &'a Op, because: &'a str },
    Note(String),
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
    pub skipped: Vec<String>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty()
    }
}

fn run_op(r: &dyn Runner, op: &Op) -> Result<(), RunError> {
    let argv: Vec<&str> = op.argv.iter().map(String::as_str).collect();
    let out = r.run_input(&argv, op.stdin.as_deref())?;
    if out.status != 0 {
        return Err(RunError::Failed {
            argv: show_argv(&argv),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        });
    }
    if op.settle {
        // Best effort: a missing udevadm (no udev) leaves nothing to wait for.
        let _ = r.run(&["udevadm", "settle", "--timeout=30"]);
    }
    Ok(())
}

pub fn execute(plan: &Plan, r: &dyn Runner, report: &mut dyn FnMut(Event)) -> Outcome {
    let mut out = Outcome::default();
    let remount = plan.remount_root && plan.ops.iter().any(|o| o.writes_root);
    if remount {
        if let Err(e) = r.check(&["mount", "-o", "remount,rw", "/"]) {
            out.failed.push(("remount,rw /".into(), e.to_string()));
            report(Event::Note(format!(
                "cannot make / writable: {e}; nothing was run"
            )));
            out.skipped = plan.ops.iter().map(|o| o.id.clone()).collect();
            return out;
        }
        report(Event::Note(
            "/ remounted read-write for LVM metadata".into(),
        ));
    }
    let mut broken: BTreeSet<&str> = BTreeSet::new();
    let total = plan.ops.len();
    for (i, op) in plan.ops.iter().enumerate() {
        if let Some(dep) = op.after.iter().find(|a| broken.contains(a.as_str())) {
            report(Event::Skipped { op, because: dep });
            broken.insert(&op.id);
            out.skipped.push(op.id.clone());
            continue;
        }
        report(Event::Start {
            n: i + 1,
            total,
            op,
        });
        let t = Instant::now();
        match run_op(r, op) {
            Ok(()) => {
                report(Event::Done {
                    op,
                    took: t.elapsed(),
                });
                out.done.push(op.id.clone());
            }
            Err(e) => {
                report(Event::Failed { op, error: &e });
                broken.insert(&op.id);
                out.failed.push((op.id.clone(), e.to_string()));
            }
        }
    }
    if remount {
        match r.check(&["mount", "-o", "remount,ro", "/"]) {
            Ok(_) => report(Event::Note("/ remounted read-only".into())),
            Err(e) => {
                report(Event::Note(format!(
                    "WARNING: / could not be remounted read-only: {e}"
                )));
                out.failed.push(("remount,ro /".into(), e.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Risk;
    use crate::runner::Output;
    use std::sync::Mutex;

    /// Runs nothing: records argv and fails the commands named in `fail`. It stands in for the
    /// host only to test the executor's control flow; no tool output is imitated.
    struct Script {
        fail: Vec<&'static str>,
        ran: Mutex<Vec<String>>,
    }

    impl Runner for Script {
        fn run_input(&self, argv: &[&str], _: Option<&str>) -> Result<Output, RunError> {
            let line = argv.join(" ");
            self.ran.lock().unwrap().push(line.clone());
            let status = if self.fail.iter().any(|f| line == *f) {
                5
            } else {
                0
            };
            Ok(Output {
                status,
                stdout: String::new(),
                stderr: if status == 0 {
                    String::new()
                } else {
                    "boom".into()
                },
            })
        }
        fn read(&self, _: &str) -> Option<String> {
            None
        }
        fn list(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
        fn resolve_link(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn op(id: &str, after: &[&str], root: bool) -> Op {
        Op {
            id: id.into(),
            resource: id.into(),
            summary: id.into(),
            argv: vec!["cmd".into(), id.into()],
            stdin: None,
            risk: Risk::Safe,
            writes_root: root,
            after: after.iter().map(|s| s.to_string()).collect(),
            settle: false,
        }
    }

    #[test]
    fn a_failure_skips_its_dependents_only_and_root_goes_back_read_only() {
        let plan = Plan {
            ops: vec![
                op("a", &[], true),
                op("b", &["a"], true),
                op("c", &["b"], false),
                op("d", &[], false),
            ],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["cmd a"],
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, &mut |_| {});
        assert_eq!(out.failed.len(), 1);
        assert!(
            out.failed[0].1.contains("exited with status 5: boom"),
            "{:?}",
            out.failed
        );
        assert_eq!(out.skipped, ["b", "c"]);
        assert_eq!(out.done, ["d"]);
        let ran = r.ran.lock().unwrap().clone();
        assert_eq!(
            ran,
            [
                "mount -o remount,rw /",
                "cmd a",
                "cmd d",
                "mount -o remount,ro /"
            ]
        );
    }

    #[test]
    fn no_remount_when_root_is_writable_or_nothing_writes_it() {
        let plan = Plan {
            ops: vec![op("a", &[], false)],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec![],
            ran: Mutex::new(Vec::new()),
        };
        assert!(execute(&plan, &r, &mut |_| {}).ok());
        assert_eq!(r.ran.lock().unwrap().clone(), ["cmd a"]);
    }

    #[test]
    fn when_root_cannot_be_made_writable_nothing_runs() {
        let plan = Plan {
            ops: vec![op("a", &[], true)],
            remount_root: true,
            ..Plan::default()
        };
        let r = Script {
            fail: vec!["mount -o remount,rw /"],
            ran: Mutex::new(Vec::new()),
        };
        let out = execute(&plan, &r, &mut |_| {});
        assert!(!out.ok());
        assert_eq!(r.ran.lock().unwrap().clone(), ["mount -o remount,rw /"]);
    }
}
