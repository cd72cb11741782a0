//! `hostform confirm`: keep a change applied with `--confirm-within` (run it from a new
//! session, to prove the host is still reachable). Disarms the pending rollback.

use std::path::PathBuf;

use super::{EXIT_FAIL, EXIT_OK};
use crate::runner::RealRunner;
use crate::safe;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where pending changes are kept; `$HOSTFORM_STATE_DIR`, else /var/lib/hostform.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> i32 {
    let dir = safe::state_dir(args.state_dir.as_deref());
    match safe::confirm(&dir, &RealRunner::new(), "hostform confirm") {
        Ok(Some(p)) => {
            println!(
                "Confirmed: change {} is kept; its rollback is disarmed.",
                p.id
            );
            EXIT_OK
        }
        Ok(None) => {
            match safe::read_outcome(&dir) {
                Some(o) if o.outcome != "confirmed" => eprintln!(
                    "confirm: too late: change {} was {} ({})",
                    o.id,
                    o.outcome.replace('-', " "),
                    o.by
                ),
                _ => eprintln!(
                    "confirm: no change is waiting for confirmation in {}",
                    dir.display()
                ),
            }
            EXIT_FAIL
        }
        Err(e) => {
            eprintln!("confirm: {e}");
            EXIT_FAIL
        }
    }
}
