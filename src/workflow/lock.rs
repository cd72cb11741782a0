//! One apply per host at a time: an exclusive `flock(2)` on `<lock dir>/hostform.lock`.
//!
//! The kernel releases a flock when its holder exits, however it exits (SIGKILL included), so
//! there is no stale lock to clean up after a killed job. The holder writes who it is (pid,
//! command line, start time) into the file after taking the lock, so a second caller can be
//! told who to wait for. Read-only commands (plan, drift, show, history) take no lock.

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const LOCK_FILE: &str = "hostform.lock";

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    pub command: Vec<String>,
    pub since: String,
    #[serde(default)]
    pub host: String,
}

impl Holder {
    pub fn me() -> Self {
        Holder {
            pid: std::process::id(),
            command: std::env::args().collect(),
            since: super::now(),
            host: super::hostname(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let argv: Vec<&str> = self.command.iter().map(String::as_str).collect();
        write!(
            f,
            "pid {}, `{}`, since {}",
            self.pid,
            crate::runner::show_argv(&argv),
            self.since
        )
    }
}

/// The lock, held until dropped (or until the process ends).
#[derive(Debug)]
pub struct Held {
    file: Flock<File>,
    pub path: PathBuf,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Leave no holder behind for the next reader; the unlock follows when `file` drops.
        let _ = self.file.set_len(0);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another apply holds the lock {path}: {}",
        holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "its holder has not written its details yet".into())
    )]
    Busy {
        path: PathBuf,
        holder: Option<Holder>,
    },
    #[error("cannot use the lock {path}: {error}")]
    Io { path: PathBuf, error: String },
}

fn read_holder(path: &Path) -> Option<Holder> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    serde_json::from_str(s.trim()).ok()
}

/// Take the lock, waiting up to `wait` for its holder to finish (`--lock-timeout`).
/// `waiting` is called once, with the holder, if the lock is busy at first.
pub fn acquire(
    dir: &Path,
    wait: Duration,
    waiting: &mut dyn FnMut(&LockError),
) -> Result<Held, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |e: &dyn std::fmt::Display| LockError::Io {
        path: path.clone(),
        error: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
    let deadline = Instant::now() + wait;
    let mut told = false;
    // /run/lock is writable by everyone (sticky): never follow a symlink planted there, and
    // only use a lock file that belongs to us.
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| io(&e))?;
    let meta = file.metadata().map_err(|e| io(&e))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_file() || meta.uid() != me {
        return Err(io(&format!(
            "it is not a regular file owned by uid {me} (owner: uid {}); remove it",
            meta.uid()
        )));
    }
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let me = serde_json::to_string(&Holder::me()).unwrap_or_default();
                locked
                    .set_len(0)
                    .and_then(|_| locked.rewind())
                    .and_then(|_| locked.write_all(format!("{me}\n").as_bytes()))
                    .and_then(|_| locked.sync_data())
                    .map_err(|e| io(&e))?;
                return Ok(Held { file: locked, path });
            }
            Err((f, Errno::EWOULDBLOCK)) => {
                let busy = LockError::Busy {
                    path: path.clone(),
                    holder: read_holder(&path),
                };
                if Instant::now() >= deadline {
                    return Err(busy);
                }
                if !told {
                    waiting(&busy);
                    told = true;
                }
                std::thread::sleep(Duration::from_millis(100));
                file = f;
            }
            Err((_, e)) => return Err(io(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_caller_is_told_who_holds_the_lock_and_gets_it_once_released() {
        let d = tempfile::tempdir().unwrap();
        let held = acquire(d.path(), Duration::ZERO, &mut |_| {}).unwrap();
        // flock locks belong to the open file description: a second open in the same
        // process conflicts just as another process would.
        let e = acquire(d.path(), Duration::ZERO, &mut |_| {}).unwrap_err();
        let LockError::Busy {
            holder: Some(h), ..
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!(h.pid, std::process::id());
        assert!(!h.command.is_empty());
        assert!(
            e.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        drop(held);
        assert!(acquire(d.path(), Duration::ZERO, &mut |_| {}).is_ok());
    }

    #[test]
    fn a_waiting_caller_gets_the_lock_when_the_holder_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let held = acquire(d.path(), Duration::ZERO, &mut |_| {}).unwrap();
        let dir = d.path().to_path_buf();
        let t = std::thread::spawn(move || {
            let mut told = 0;
            let r = acquire(&dir, Duration::from_secs(30), &mut |_| told += 1);
            (r.is_ok(), told)
        });
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
        let (ok, told) = t.join().unwrap();
        assert!(ok);
        assert!(told <= 1, "told once at most");
    }

    #[test]
    fn a_symlink_in_place_of_the_lock_file_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join(LOCK_FILE)).unwrap();
        let e = acquire(d.path(), Duration::ZERO, &mut |_| {}).unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn an_unusable_directory_is_an_error_not_a_wait() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, "").unwrap();
        let e = acquire(&file, Duration::from_secs(5), &mut |_| {}).unwrap_err();
        assert!(matches!(e, LockError::Io { .. }), "{e}");
    }
}
