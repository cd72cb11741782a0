//! `hostform rollback`: bring back the network state saved by `apply --confirm-within`.
//! Armed by apply itself (a systemd timer, or a detached `rollback --wait`); an operator can
//! also run it to roll back at once.

use std::path::PathBuf;
use std::time::Duration;

use super::{EXIT_FAIL, EXIT_OK};
use crate::runner::RealRunner;
use crate::safe;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The pending change; `pending.json` of the state directory by default.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Where pending changes are kept; `$HOSTFORM_STATE_DIR`, else /var/lib/hostform.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Detach from the terminal and session, wait for the change's deadline, and roll back
    /// only if it was not confirmed by then (how apply arms it when systemd is not PID 1).
    #[arg(long)]
    pub wait: bool,
    /// At boot (hostform-rollback-at-boot.service): roll back the pending change only if it
    /// was applied in an earlier boot (it was never confirmed, and its timer died with that
    /// boot). The files come back before the network services read them.
    #[arg(long, conflicts_with = "wait")]
    pub at_boot: bool,
}

pub fn run(args: Args) -> i32 {
    let dir = match &args.state {
        Some(f) => f
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_else(|| PathBuf::from(".")),
        None => safe::state_dir(args.state_dir.as_deref()),
    };
    if args.at_boot {
        return at_boot(&dir);
    }
    let mut id = None;
    if args.wait {
        safe::detach();
        let first = match safe::read_pending(&dir) {
            Ok(Some(p)) => p,
            Ok(None) => return EXIT_OK,
            Err(e) => {
                eprintln!("rollback: {e}");
                return EXIT_FAIL;
            }
        };
        safe::log(
            &dir,
            &format!(
                "{}: waiting (pid {}) until the deadline",
                first.id,
                std::process::id()
            ),
        );
        loop {
            match safe::read_pending(&dir) {
                Ok(Some(p)) if p.id == first.id => {
                    if safe::now_ms() >= p.deadline_ms {
                        break;
                    }
                }
                // Confirmed, or rolled back by someone else.
                _ => return EXIT_OK,
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        id = Some(first.id);
    }
    let p = match safe::take(&dir, id.as_deref()) {
        Ok(Some(p)) => p,
        Ok(None) => {
            if !args.wait {
                eprintln!(
                    "rollback: no change is waiting for confirmation in {}",
                    dir.display()
                );
                return EXIT_FAIL;
            }
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("rollback: {e}");
            return EXIT_FAIL;
        }
    };
    let by = if args.wait {
        "no confirmation before the deadline (detached waiter)"
    } else {
        "hostform rollback"
    };
    match safe::roll_back(&dir, &RealRunner::new(), &p, by) {
        Ok(done) => {
            println!(
                "Rolled back change {} ({} steps); the network is as it was before.",
                p.id,
                done.len()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!(
                "rollback: change {} could not be fully rolled back:\n{e}",
                p.id
            );
            EXIT_FAIL
        }
    }
}

/// `rollback --at-boot`: a change of an earlier boot goes (its files only: this boot's
/// network is made from the files, after this); one of this boot is left to its timer.
fn at_boot(dir: &std::path::Path) -> i32 {
    let now = safe::boot_id();
    let p = match safe::read_pending(dir) {
        Ok(Some(p)) if safe::from_another_boot(&p, now.as_deref()) => p,
        Ok(_) => return EXIT_OK,
        Err(e) => {
            eprintln!("rollback: {e}");
            return EXIT_FAIL;
        }
    };
    let p = match safe::take(dir, Some(&p.id)) {
        Ok(Some(p)) => p,
        Ok(None) => return EXIT_OK,
        Err(e) => {
            eprintln!("rollback: {e}");
            return EXIT_FAIL;
        }
    };
    let by = "reboot before confirmation (hostform-rollback-at-boot.service)";
    safe::log(dir, &format!("{}: rolling back ({by})", p.id));
    let res = safe::restore_files(&RealRunner::new(), &p);
    let (outcome, detail) = match &res {
        Ok(done) => ("rolled-back", done.join("; ")),
        Err(e) => ("rollback-failed", e.clone()),
    };
    safe::log(dir, &format!("{}: {outcome}: {detail}", p.id));
    safe::record_outcome(dir, &p.id, outcome, by, &detail);
    // The apply that made the change went down with the boot, its record unfinished: close
    // it, so that `hostform history` says what became of the change.
    if let Some(pid) = p.apply_pid {
        let message = match &res {
            Ok(_) => "not confirmed before a reboot: its files were rolled back at boot (hostform-rollback-at-boot.service)".to_string(),
            Err(e) => format!("not confirmed before a reboot: the rollback at boot failed: {}", e.lines().next().unwrap_or_default()),
        };
        if let Err(e) = crate::workflow::journal::close_unfinished(
            dir,
            pid,
            crate::workflow::journal::Outcome::Unverified,
            &message,
        ) {
            eprintln!("rollback: {e}");
        }
    }
    match res {
        Ok(done) => {
            println!(
                "Rolled back change {} ({} files): it was not confirmed before the reboot.",
                p.id,
                done.len()
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!(
                "rollback: change {} could not be fully rolled back:\n{e}",
                p.id
            );
            EXIT_FAIL
        }
    }
}
