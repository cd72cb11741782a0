//! SIGINT, SIGTERM and SIGHUP during `apply`: finish what runs, start nothing new.
//!
//! [`install`] blocks the three signals in the calling thread before any other thread exists,
//! so every thread inherits the mask and none is interrupted, and one thread waits for them
//! with `sigwait`. The first signal sets a flag: apply starts no new operation, lets the
//! running ones finish (each child runs in its own process group, so a terminal's Ctrl-C does
//! not reach it), verifies and journals `interrupted`. A second signal, or the grace period
//! running out (5 minutes, `HOSTFORM_INTERRUPT_GRACE` seconds), kills the running children's
//! process groups. Children start with an empty signal mask (std resets it at spawn).

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

static SIGNAL: AtomicI32 = AtomicI32::new(0);
static APPLYING: AtomicBool = AtomicBool::new(false);

/// Operations are running from now on (`true`) or no longer (`false`). Outside that window a
/// signal ends hostform at once, as it would without [`install`]: nothing is being changed.
pub fn set_applying(on: bool) {
    APPLYING.store(on, Ordering::SeqCst);
}

/// The signal number received, if any.
pub fn requested() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        n => Some(n),
    }
}

/// The exit status for an apply ended by signal `signo`: 128 + its number, as a shell reports.
pub fn exit_code(signo: i32) -> i32 {
    128 + signo
}

/// How long running operations may go on after the first signal.
pub fn grace() -> Duration {
    grace_from(std::env::var("HOSTFORM_INTERRUPT_GRACE").ok().as_deref())
}

fn grace_from(v: Option<&str>) -> Duration {
    Duration::from_secs(v.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(300))
}

fn signals() -> SigSet {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGHUP);
    set
}

/// Take over SIGINT, SIGTERM and SIGHUP for this process. Call it before spawning threads.
pub fn install() -> std::io::Result<()> {
    let set = signals();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
        .map_err(std::io::Error::from)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            loop {
                let Ok(sig) = set.wait() else { continue };
                if !APPLYING.load(Ordering::SeqCst) && requested().is_none() {
                    eprintln!("\nhostform: {sig} received before any change: stopping");
                    std::process::exit(exit_code(sig as i32));
                }
                if SIGNAL
                    .compare_exchange(0, sig as i32, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    let grace = grace();
                    eprintln!(
                        "\napply: {sig} received: starting nothing new; the running operations may finish (up to {}s, HOSTFORM_INTERRUPT_GRACE); a second signal kills them",
                        grace.as_secs()
                    );
                    std::thread::spawn(move || {
                        std::thread::sleep(grace);
                        let n = crate::runner::kill_running();
                        if n > 0 {
                            eprintln!("apply: grace period over: killed {n} running operations");
                        }
                    });
                } else {
                    let n = crate::runner::kill_running();
                    eprintln!("apply: {sig} received again: killed {n} running operations");
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_and_exit_codes() {
        assert_eq!(grace_from(None), Duration::from_secs(300));
        assert_eq!(grace_from(Some("0")), Duration::ZERO);
        assert_eq!(grace_from(Some("x")), Duration::from_secs(300));
        assert_eq!(exit_code(Signal::SIGINT as i32), 130);
        assert_eq!(exit_code(Signal::SIGTERM as i32), 143);
    }
}
