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
    let mut s = String::new();
    push_argv(&mut s, argv.iter().copied());
    s
}

/// [`show_argv`], appended to `out` (a plan shows 100,000 commands at 50,000 resources: no
/// string per word).
pub fn push_argv<'a>(out: &mut String, argv: impl IntoIterator<Item = &'a str>) {
    for (i, a) in argv.into_iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if !a.is_empty()
            && a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
        {
            out.push_str(a);
        } else {
            out.push('\'');
            out.push_str(&crate::diag::visible(a).replace('\'', r"'\''"));
            out.push('\'');
        }
    }
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
    /// Replace a file's content atomically (a temporary file in the same directory, fsync,
    /// rename), creating missing parent directories. For configuration files the plan shows
    /// as a diff (network configuration, guest configs, systemd units).
    fn write_file(&self, path: &str, _content: &str, _mode: u32) -> Result<(), RunError> {
        Err(RunError::NotFound {
            program: format!("write {path} (this runner writes no files)"),
        })
    }
    /// Remove a file; a file that is already gone is not an error.
    fn remove_file(&self, path: &str) -> Result<(), RunError> {
        Err(RunError::NotFound {
            program: format!("remove {path} (this runner removes no files)"),
        })
    }

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

/// Processes spawned by every `RealRunner` of this process, and the wall time during which at
/// least one of them ran: what `HOSTFORM_TIMINGS=1` reports as the host's share of a command.
/// Discovery's rooms run their tools side by side, so the time is that of the union of their
/// runs, not their sum: the rest of the total is hostform's own.
struct Busy {
    count: u64,
    running: u32,
    since: Option<std::time::Instant>,
    total: std::time::Duration,
}

static BUSY: Mutex<Busy> = Mutex::new(Busy {
    count: 0,
    running: 0,
    since: None,
    total: std::time::Duration::ZERO,
});

impl Busy {
    fn start(&mut self, now: std::time::Instant) {
        if self.running == 0 {
            self.since = Some(now);
        }
        self.running += 1;
    }

    fn end(&mut self, now: std::time::Instant) {
        self.count += 1;
        self.running = self.running.saturating_sub(1);
        if self.running == 0
            && let Some(since) = self.since.take()
        {
            self.total += now.saturating_duration_since(since);
        }
    }
}

fn busy_start() {
    if let Ok(mut b) = BUSY.lock() {
        b.start(std::time::Instant::now());
    }
}

fn busy_end() {
    if let Ok(mut b) = BUSY.lock() {
        b.end(std::time::Instant::now());
    }
}

/// How many processes this process has spawned through a [`RealRunner`], and the wall time
/// during which at least one of them was running (processes side by side count once).
pub fn spawn_totals() -> (u64, std::time::Duration) {
    BUSY.lock()
        .map(|b| {
            let running = b.since.map(|s| s.elapsed()).unwrap_or_default();
            (b.count, b.total + running)
        })
        .unwrap_or_default()
}

/// The result of a reading done on its own thread (the rooms read side by side). A panic there
/// is a bug: it goes on in the joining thread, to be reported as one, as if the reading had
/// been done there.
pub fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Spawn `path` with `args`, feed it `input`, and collect its output.
fn spawn_and_wait(
    path: &Path,
    args: &[&str],
    input: Option<&str>,
) -> std::io::Result<std::process::Output> {
    let mut child = std::process::Command::new(path)
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
        .spawn()?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        // A program that exits without reading its input is reported by its status.
        let _ = stdin.write_all(text.as_bytes());
    }
    child.wait_with_output()
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
        busy_start();
        let out = spawn_and_wait(&path, args, input).map_err(spawn_err);
        busy_end();
        let out = out?;
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

    fn write_file(&self, path: &str, content: &str, mode: u32) -> Result<(), RunError> {
        write_atomically(Path::new(path), content.as_bytes(), mode).map_err(|source| {
            RunError::Spawn {
                argv: format!("write {path}"),
                source,
            }
        })
    }

    fn remove_file(&self, path: &str) -> Result<(), RunError> {
        match std::fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RunError::Spawn {
                argv: format!("remove {path}"),
                source,
            }),
        }
    }
}

/// Write `bytes` to `path` so that a reader sees the old content or the new, never a part:
/// a temporary file beside it, fsync, rename, fsync of the directory.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.hostform-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
    /// Files written (path → content) and removed, in order: nothing reaches the disk.
    pub written: Mutex<Vec<(String, Option<String>)>>,
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
            written: Mutex::new(Vec::new()),
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

    fn write_file(&self, path: &str, content: &str, _mode: u32) -> Result<(), RunError> {
        if let Ok(mut w) = self.written.lock() {
            w.push((path.to_string(), Some(content.to_string())));
        }
        Ok(())
    }

    fn remove_file(&self, path: &str) -> Result<(), RunError> {
        if let Ok(mut w) = self.written.lock() {
            w.push((path.to_string(), None));
        }
        Ok(())
    }
}

/// Answers a fixed sequence of commands, in order: each step is either a capture of a fixture
/// directory, by its name in `COMMANDS` (its argv, exit status, stdout and stderr, replayed
/// as captured), or a step given by hand (for tools that cannot run in the sandbox, such as
/// Xen's `xl`: only the exit status and the argv are then asserted, never parsed output). A
/// command out of sequence is an error naming the expected one, so tests assert the exact
/// command sequence.
#[derive(Default)]
pub struct ScriptedRunner {
    steps: Mutex<std::collections::VecDeque<(String, Output)>>,
    files: BTreeMap<String, String>,
    /// Commands asked for, in order.
    pub asked: Mutex<Vec<String>>,
}

impl ScriptedRunner {
    pub fn new() -> Self {
        Self::default()
    }
    /// Next, `argv` (space-joined) exits with `status` and prints `stdout`.
    pub fn then(self, argv: &str, status: i32, stdout: &str) -> Self {
        if let Ok(mut s) = self.steps.lock() {
            s.push_back((
                argv.to_string(),
                Output {
                    status,
                    stdout: stdout.to_string(),
                    stderr: String::new(),
                },
            ));
        }
        self
    }
    /// Next, the capture `name` of the fixture directory `dir`, replayed as captured.
    pub fn then_captured(self, dir: &Path, name: &str) -> std::io::Result<Self> {
        let commands = std::fs::read_to_string(dir.join("COMMANDS"))?;
        let line = commands
            .lines()
            .find(|l| l.split('\t').next() == Some(name))
            .ok_or_else(|| std::io::Error::other(format!("{name} is not in COMMANDS")))?;
        let mut parts = line.splitn(3, '\t');
        let _ = parts.next();
        let status: i32 = parts.next().unwrap_or("0").parse().unwrap_or(0);
        let argv = unescape(parts.next().unwrap_or(""));
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).unwrap_or_default();
        if let Ok(mut s) = self.steps.lock() {
            s.push_back((
                argv,
                Output {
                    status,
                    stdout: read(name),
                    stderr: read(&format!("{name}.stderr")),
                },
            ));
        }
        Ok(self)
    }
    /// A file `read` answers with.
    pub fn with_file(mut self, path: &str, content: &str) -> Self {
        self.files.insert(path.to_string(), content.to_string());
        self
    }
    /// Steps not asked for yet.
    pub fn remaining(&self) -> Vec<String> {
        self.steps
            .lock()
            .map(|s| s.iter().map(|(a, _)| a.clone()).collect())
            .unwrap_or_default()
    }
}

impl Runner for ScriptedRunner {
    fn run_input(&self, argv: &[&str], _input: Option<&str>) -> Result<Output, RunError> {
        let line = argv.join(" ");
        if let Ok(mut a) = self.asked.lock() {
            a.push(line.clone());
        }
        let mut steps = self.steps.lock().map_err(|_| RunError::NotFound {
            program: "scripted runner poisoned".into(),
        })?;
        match steps.front() {
            Some((want, _)) if *want == line => {
                Ok(steps.pop_front().map(|s| s.1).unwrap_or(Output {
                    status: 0,
                    stdout: String::new(),
                    stderr: String::new(),
                }))
            }
            Some((want, _)) => Err(RunError::NotFound {
                program: format!("{line} (out of sequence: expected {want})"),
            }),
            None => Err(RunError::NotFound {
                program: format!("{line} (out of sequence: nothing more expected)"),
            }),
        }
    }
    fn read(&self, path: &str) -> Option<String> {
        self.files.get(path).cloned()
    }
    /// The entries of `dir` among the files given with `with_file` (files and the
    /// subdirectories holding them), sorted.
    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: std::collections::BTreeSet<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(prefix.as_str()))
            .filter_map(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        names.into_iter().collect()
    }
    fn resolve_link(&self, _path: &str) -> Option<String> {
        None
    }
    fn write_file(&self, path: &str, content: &str, _mode: u32) -> Result<(), RunError> {
        if let Ok(mut a) = self.asked.lock() {
            a.push(format!("write {path} ({} bytes)", content.len()));
        }
        Ok(())
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

    /// A scripted runner whose steps replay captures of `scenario`, by name, in order.
    pub fn scripted(scenario: &str, names: &[&str]) -> super::ScriptedRunner {
        let dir = std::path::PathBuf::from(format!(
            "{}/tests/fixtures/{scenario}",
            env!("CARGO_MANIFEST_DIR")
        ));
        let mut r = super::ScriptedRunner::new();
        for n in names {
            r = r.then_captured(&dir, n).expect("captured step");
        }
        r
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

    #[test]
    fn tools_side_by_side_count_their_wall_time_once() {
        let t0 = std::time::Instant::now();
        let at = |ms| t0 + std::time::Duration::from_millis(ms);
        let mut b = Busy {
            count: 0,
            running: 0,
            since: None,
            total: std::time::Duration::ZERO,
        };
        // Two overlapping runs, 0–10 and 5–20: 20 ms, not 25.
        b.start(at(0));
        b.start(at(5));
        b.end(at(10));
        b.end(at(20));
        assert_eq!(b.total, std::time::Duration::from_millis(20));
        // A later one alone, 30–40: the gap between them is not counted.
        b.start(at(30));
        b.end(at(40));
        assert_eq!(b.total, std::time::Duration::from_millis(30));
        assert_eq!((b.count, b.running), (3, 0));
    }
}

#[cfg(test)]
mod write_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_replaced_whole_with_their_mode_and_no_temporary_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/network/interfaces.d/br0");
        let p = path.to_str().unwrap();
        let r = RealRunner::new();
        r.write_file(p, "old\n", 0o600).unwrap();
        r.write_file(p, "new\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["br0"]);
        r.remove_file(p).unwrap();
        r.remove_file(p).unwrap();
        assert!(!path.exists());
        assert!(r.spawned().is_empty(), "writing spawns no process");
    }
}
