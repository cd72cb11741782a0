//! The one seam between hostform and the host: running tools and reading files.
//!
//! Discovery and apply go through a [`Runner`]. The real one spawns programs by argv (never a
//! shell), resolved from fixed system directories rather than `$PATH`, and its errors carry
//! the argv, exit status and stderr. The replaying one answers from fixtures captured on a real
//! kernel (tests/fixtures/), so parsers and planners are tested against real tool output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where executables are looked up, in order. `$PATH` is never consulted.
pub const EXEC_DIRS: &[&str] = &["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{program}: not installed (looked in {})", EXEC_DIRS.join(", "))]
    NotFound { program: String },
    #[error("{argv}: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{argv} exited with status {status}: {stderr}")]
    Failed {
        argv: String,
        status: i32,
        stderr: String,
    },
}

/// A command line for messages: arguments quoted only where needed.
pub fn show_argv(argv: &[&str]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub trait Runner: Send + Sync {
    /// Run a program; a non-zero exit is not an error here (see [`Runner::check`]).
    fn run(&self, argv: &[&str]) -> Result<Output, RunError> {
        self.run_input(argv, None)
    }
    /// Run a program with `input` on its standard input (sfdisk scripts).
    fn run_input(&self, argv: &[&str], input: Option<&str>) -> Result<Output, RunError>;
    /// Read a file (for /proc and /sys); `None` when it does not exist.
    fn read(&self, path: &str) -> Option<String>;
    /// Names in a directory, sorted; empty when it does not exist.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Where a symlink points, resolved to an absolute path.
    fn resolve_link(&self, path: &str) -> Option<String>;

    /// Run and require success.
    fn check(&self, argv: &[&str]) -> Result<Output, RunError> {
        let out = self.run(argv)?;
        if out.status != 0 {
            return Err(RunError::Failed {
                argv: show_argv(argv),
                status: out.status,
                stderr: out.stderr.trim().to_string(),
            });
        }
        Ok(out)
    }
}

/// Find a program in the fixed directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    EXEC_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// Runs real programs. Counts what it spawns, for the process budget of discovery.
#[derive(Default)]
pub struct RealRunner {
    spawned: Mutex<Vec<String>>,
}

impl RealRunner {
    pub fn new() -> Self {
        Self::default()
    }
    /// Command lines spawned so far.
    pub fn spawned(&self) -> Vec<String> {
        self.spawned.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Runner for RealRunner {
    fn run_input(&self, argv: &[&str], input: Option<&str>) -> Result<Output, RunError> {
        let (prog, args) = argv.split_first().ok_or_else(|| RunError::NotFound {
            program: String::new(),
        })?;
        let path = find_program(prog).ok_or_else(|| RunError::NotFound {
            program: prog.to_string(),
        })?;
        if let Ok(mut v) = self.spawned.lock() {
            v.push(show_argv(argv));
        }
        let spawn_err = |source| RunError::Spawn {
            argv: show_argv(argv),
            source,
        };
        let mut child = std::process::Command::new(&path)
            .args(args)
            .env("LC_ALL", "C")
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .stdin(if input.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
            use std::io::Write;
            // A program that exits without reading its input is reported by its status.
            let _ = stdin.write_all(text.as_bytes());
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        Ok(Output {
            status: out.status.code().unwrap_or(128),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    fn resolve_link(&self, path: &str) -> Option<String> {
        std::fs::canonicalize(path)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }
}

/// Answers from a fixture directory captured on a real host (see scripts/capture-fixtures.sh).
///
/// The directory's `COMMANDS` file maps each captured command line to the file holding its
/// output: `NAME<TAB>STATUS<TAB>ARGV`. Files are looked up in `files` (path → fixture name),
/// directory listings and links in `links` (`disk-by-id-links`).
pub struct ReplayRunner {
    dir: PathBuf,
    commands: BTreeMap<String, (String, i32)>,
    files: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
    /// Commands asked for, in order (to assert on process counts and argv).
    pub asked: Mutex<Vec<String>>,
}

impl ReplayRunner {
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        let mut commands = BTreeMap::new();
        let mut files = BTreeMap::new();
        for line in std::fs::read_to_string(dir.join("COMMANDS"))?.lines() {
            let mut parts = line.splitn(3, '\t');
            let (Some(name), Some(status), Some(argv)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let status: i32 = status.parse().unwrap_or(0);
            let argv = unescape(argv);
            if let Some(path) = argv.strip_prefix("cat ") {
                files.insert(path.to_string(), name.to_string());
            }
            commands.insert(argv, (name.to_string(), status));
        }
        let mut links = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(dir.join("disk-by-id-links")) {
            for l in t.lines() {
                if let Some((name, target)) = l.split_once(' ') {
                    links.insert(format!("/dev/disk/by-id/{name}"), target.to_string());
                }
            }
        }
        Ok(ReplayRunner {
            dir,
            commands,
            files,
            links,
            asked: Mutex::new(Vec::new()),
        })
    }

    fn fixture(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

/// The capture script writes argv with bash's `printf %q` escaping; undo the common cases.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Runner for ReplayRunner {
    fn run_input(&self, argv: &[&str], _input: Option<&str>) -> Result<Output, RunError> {
        let line = argv.join(" ");
        if let Ok(mut a) = self.asked.lock() {
            a.push(line.clone());
        }
        match self.commands.get(&line) {
            Some((name, status)) => Ok(Output {
                status: *status,
                stdout: self.fixture(name),
                stderr: self.fixture(&format!("{name}.stderr")),
            }),
            None => Err(RunError::NotFound {
                program: format!("{line} (not captured in {})", self.dir.display()),
            }),
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).map(|n| self.fixture(n))
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut v: Vec<String> = self
            .links
            .keys()
            .chain(self.files.keys())
            .filter_map(|k| k.strip_prefix(&prefix))
            .map(|rest| rest.split('/').next().unwrap_or(rest).to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn resolve_link(&self, path: &str) -> Option<String> {
        self.links.get(path).cloned()
    }
}

/// Fixtures for the rooms' tests: real output captured in the sandbox (tests/fixtures/).
#[cfg(test)]
pub mod fixtures {
    /// The replaying runner of one scenario (`blank`, `full`, `degraded`, `reused`, `bridge`).
    pub fn runner(scenario: &str) -> super::ReplayRunner {
        super::ReplayRunner::open(format!(
            "{}/tests/fixtures/{scenario}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture scenario")
    }

    /// One fixture file's text: `full/mdstat`.
    pub fn text(path: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture file")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_shown_with_quoting_only_where_needed() {
        assert_eq!(
            show_argv(&["lvcreate", "-n", "a b", "-L", "2G", "vg0"]),
            "lvcreate -n 'a b' -L 2G vg0"
        );
        assert_eq!(show_argv(&["echo", "it's"]), r"echo 'it'\''s'");
    }

    #[test]
    fn programs_come_from_fixed_directories_only() {
        // `sh` exists in /bin or /usr/bin on every Debian system; a name with a slash or one
        // only reachable through $PATH is never found.
        assert!(find_program("sh").is_some());
        assert!(find_program("definitely-not-a-program-hostform").is_none());
        let r = RealRunner::new();
        assert!(matches!(
            r.run(&["definitely-not-a-program-hostform"]),
            Err(RunError::NotFound { .. })
        ));
        let out = r
            .run(&["sh", "-c", "echo out; echo err >&2; exit 3"])
            .expect("sh runs");
        assert_eq!(out.status, 3);
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        let err = r
            .check(&["sh", "-c", "echo boom >&2; exit 2"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("exited with status 2: boom"), "{err}");
        // The missing program spawned nothing.
        assert_eq!(r.spawned().len(), 2);
    }
}
