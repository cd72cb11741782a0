//! Catching SIGINT/SIGTERM/SIGHUP while a sandbox runs, so that qemu is
//! killed and the temporary images are removed before the caller decides
//! what to do. The previous handlers are restored when the last concurrent
//! run ends; signals that were ignored stay ignored.
//!
//! `sigaction` is unsafe to call; the handler installed only stores the signal number in an
//! atomic, which is async-signal-safe.
#![allow(unsafe_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::SandboxError;

const SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// Last signal caught while a guard was active (0 = none).
static PENDING: AtomicI32 = AtomicI32::new(0);

struct Installed {
    users: usize,
    previous: Vec<(Signal, SigAction)>,
}

static STATE: Mutex<Installed> = Mutex::new(Installed {
    users: 0,
    previous: Vec::new(),
});

extern "C" fn on_signal(sig: nix::libc::c_int) {
    // An atomic store is async-signal-safe.
    PENDING.store(sig, Ordering::SeqCst);
}

/// Active while a sandbox runs; dropping it restores the old handlers.
pub struct Guard(());

impl Guard {
    pub fn install() -> Result<Self, SandboxError> {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if st.users == 0 {
            PENDING.store(0, Ordering::SeqCst);
            let ours = SigAction::new(
                SigHandler::Handler(on_signal),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            let mut previous = Vec::new();
            for sig in SIGNALS {
                // SAFETY: the handler only performs an atomic store.
                let old = unsafe { sigaction(sig, &ours) }.map_err(|e| {
                    SandboxError::Signal(format!("installing a {sig} handler: {e}"))
                })?;
                if matches!(old.handler(), SigHandler::SigIgn) {
                    // Respect an inherited "ignore" (e.g. nohup).
                    // SAFETY: restoring the action we just read.
                    let _ = unsafe { sigaction(sig, &old) };
                    continue;
                }
                previous.push((sig, old));
            }
            st.previous = previous;
        }
        st.users += 1;
        Ok(Guard(()))
    }

    /// The signal number caught since the guard was installed, if any.
    pub fn pending(&self) -> Option<i32> {
        match PENDING.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut st = STATE.lock().unwrap_or_else(|p| p.into_inner());
        st.users = st.users.saturating_sub(1);
        if st.users == 0 {
            for (sig, old) in st.previous.drain(..) {
                // SAFETY: restoring a previously valid action.
                let _ = unsafe { sigaction(sig, &old) };
            }
        }
    }
}
