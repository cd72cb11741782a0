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
    /// A program name with a `/`: programs are looked up by name in the fixed directories
    /// only, never by a path (`../../tmp/x` would leave them).
    #[error("{program}: not a program name (a name has no '/'); refused")]
    NotAName { program: String },
    #[error("{argv}: {source}")]
    Spawn {
        argv: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{argv}: no answer after {}s (limit {}s for {kind}, {env}): killed; stderr so far: {stderr}",
        elapsed.as_secs(), limit.as_secs(), kind = kind.name(), env = kind.env()
    )]
    TimedOut {
        argv: String,
        kind: Kind,
        limit: std::time::Duration,
        elapsed: std::time::Duration,
        stderr: String,
    },
    #[error("{argv} exited with status {status}: {stderr}")]
    Failed {
        argv: String,
        status: i32,
        stderr: String,
    },
}

impl RunError {
    /// The error for an operator: the command, its status, and only the tool's own error
    /// lines, never a usage text of dozens of lines (mkfs.xfs prints its whole usage when a
    /// device is too small).
    pub fn brief(&self) -> String {
        match self {
            RunError::Failed {
                argv,
                status,
                stderr,
            } => {
                let lines = error_lines(stderr);
                if lines.is_empty() {
                    format!("{argv} exited with status {status}")
                } else {
                    format!("{argv} exited with status {status}: {}", lines.join("\n  "))
                }
            }
            RunError::TimedOut {
                argv,
                kind,
                limit,
                elapsed,
                stderr,
            } => format!(
                "{argv}: no answer after {}s (limit {}s for {}, {}): killed{}",
                elapsed.as_secs(),
                limit.as_secs(),
                kind.name(),
                kind.env(),
                match error_lines(stderr) {
                    l if l.is_empty() => String::new(),
                    l => format!("; stderr so far: {}", l.join("\n  ")),
                }
            ),
            other => other.to_string(),
        }
    }
}

/// At most this many of a tool's lines are shown for a failure.
const BRIEF_LINES: usize = 6;

/// The lines of a tool's stderr that say what went wrong: those naming an error, and
/// otherwise the first few; a usage text is replaced by one line that says it was left out.
pub fn error_lines(stderr: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "error",
        "fatal",
        "invalid",
        "cannot",
        "can't",
        "could not",
        "couldn't",
        "not enough",
        "failed",
        "no such",
        "denied",
        "too small",
        "too large",
        "too big",
        "must be",
        "unknown",
        "illegal",
        "refus",
        "not found",
        "exists",
        "in use",
        "busy",
        "minimum",
        "locked by",
    ];
    let mut usage = 0usize;
    let mut in_usage = false;
    let mut picked = Vec::new();
    let mut plain = Vec::new();
    for line in stderr.lines() {
        let t = line.trim();
        if t.is_empty() {
            in_usage = false;
            continue;
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("usage:") {
            in_usage = true;
            usage += 1;
            continue;
        }
        if in_usage && (line.starts_with([' ', '\t']) || t.starts_with(['[', '-', '/'])) {
            usage += 1;
            continue;
        }
        in_usage = false;
        let shown: String = t.chars().filter(|c| !c.is_control()).take(300).collect();
        if WORDS.iter().any(|w| lower.contains(w)) {
            picked.push(shown);
        } else {
            plain.push(shown);
        }
    }
    if picked.is_empty() {
        picked = plain;
    }
    let more = picked.len().saturating_sub(BRIEF_LINES);
    picked.truncate(BRIEF_LINES);
    if more > 0 {
        picked.push(format!("(and {more} more lines)"));
    }
    if usage > 0 {
        picked.push(format!("(its usage text, {usage} lines, left out)"));
    }
    picked
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
    /// The first `len` bytes (or fewer) of a file or device, as bytes: a disk's boot sector,
    /// one `read(2)`, no process. `None` when it cannot be read. By default nothing is read.
    fn read_bytes(&self, _path: &str, _len: usize) -> Option<Vec<u8>> {
        None
    }
    /// Names in a directory, sorted; empty when it does not exist.
    fn list(&self, dir: &str) -> Vec<String>;
    /// Where a symlink points, resolved to an absolute path.
    fn resolve_link(&self, path: &str) -> Option<String>;
    /// A symlink's own text, not followed further: one system call where [`resolve_link`]
    /// takes one per path component. For links whose text is already the absolute path
    /// (`/proc/PID/fd/N`, `/proc/self`). By default, [`resolve_link`].
    ///
    /// [`resolve_link`]: Runner::resolve_link
    fn read_link(&self, path: &str) -> Option<String> {
        self.resolve_link(path)
    }
    /// The device number (`MAJ:MIN`) of the block device at `path`, following links (for
    /// `/proc/PID/fd/N`: the open file itself, whatever name it was opened by). `None` when it
    /// is no block device, or this runner cannot tell.
    fn block_device(&self, _path: &str) -> Option<String> {
        None
    }
    /// Whether [`block_device`](Runner::block_device) answers: `None` from it then means "no
    /// block device", not "cannot tell".
    fn tells_block_devices(&self) -> bool {
        false
    }
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

/// What a command does, which decides how long it may take before it is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Discovery: a reading of the host's state (lsblk, lvs, mdadm --detail ...).
    Read,
    /// A change that takes seconds on a healthy host (lvcreate, sfdisk, ip link ...).
    Change,
    /// Making a filesystem or swap, or wiping: proportional to the device's size.
    Format,
    /// Copying or converting a guest image: proportional to the data.
    Copy,
}

impl Kind {
    /// The command's kind, from its program and arguments.
    pub fn of(argv: &[&str]) -> Kind {
        let prog = argv.first().copied().unwrap_or_default();
        let has = |a: &str| argv.iter().skip(1).any(|x| *x == a);
        if prog.starts_with("mkfs") || prog == "mkswap" || prog == "wipefs" {
            return Kind::Format;
        }
        if (prog == "qemu-img" && (has("convert") || has("dd"))) || prog == "dd" || prog == "cp" {
            return Kind::Copy;
        }
        let read = match prog {
            "lsblk" | "blkid" | "lvs" | "vgs" | "pvs" | "findmnt" | "cat" | "readlink" | "stat"
            | "hostname" | "uname" | "id" => true,
            "lvm" => argv.get(1) == Some(&"fullreport"),
            "swapon" => has("--show") || has("-s"),
            "udevadm" => has("info"),
            "mdadm" => has("--detail") || has("-D") || has("--examine") || has("-E"),
            "sfdisk" => has("--dump") || has("-d") || has("--json") || has("-J") || has("-l"),
            "qemu-img" => has("info"),
            "xl" => matches!(argv.get(1), Some(&("list" | "info" | "vcpu-list"))),
            "virsh" => argv
                .iter()
                .skip(1)
                .find(|a| !a.starts_with('-') && !a.contains("://"))
                .is_some_and(|a| {
                    a.starts_with("list")
                        || a.starts_with("dom") && !matches!(*a, "domrename")
                        || a.ends_with("dumpxml")
                        || *a == "version"
                        || *a == "capabilities"
                }),
            "ip" | "bridge" => !argv
                .iter()
                .any(|a| matches!(*a, "add" | "del" | "delete" | "set" | "flush" | "replace")),
            "systemctl" => argv
                .iter()
                .any(|a| matches!(*a, "is-active" | "is-enabled" | "show" | "status" | "cat")),
            "networkctl" => !has("reload") && !has("reconfigure"),
            _ => false,
        };
        if read { Kind::Read } else { Kind::Change }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Read => "a reading",
            Kind::Change => "a change",
            Kind::Format => "a format",
            Kind::Copy => "a copy",
        }
    }

    /// The environment variable that overrides this kind's limit (seconds).
    pub fn env(self) -> &'static str {
        match self {
            Kind::Read => "HOSTFORM_TIMEOUT_READ",
            Kind::Change => "HOSTFORM_TIMEOUT_CHANGE",
            Kind::Format => "HOSTFORM_TIMEOUT_FORMAT",
            Kind::Copy => "HOSTFORM_TIMEOUT_COPY",
        }
    }

    fn default_secs(self) -> u64 {
        match self {
            Kind::Read => 60,
            Kind::Change => 10 * 60,
            Kind::Format => 2 * 3600,
            Kind::Copy => 12 * 3600,
        }
    }

    /// How long a command of this kind may run: the environment's override (whole seconds,
    /// above zero) or the default.
    pub fn limit(self) -> std::time::Duration {
        self.limit_from(std::env::var(self.env()).ok().as_deref())
    }

    fn limit_from(self, var: Option<&str>) -> std::time::Duration {
        let secs = var
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(self.default_secs());
        std::time::Duration::from_secs(secs)
    }
}

/// Process groups of the children running now (each child leads its own): what a second
/// interrupt kills.
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Kill every running child's process group (SIGKILL). Returns how many were signalled.
pub fn kill_running() -> usize {
    let groups = RUNNING.lock().map(|v| v.clone()).unwrap_or_default();
    for g in &groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*g),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    groups.len()
}

fn running_add(pid: i32) {
    if let Ok(mut v) = RUNNING.lock() {
        v.push(pid);
    }
}

fn running_remove(pid: i32) {
    if let Ok(mut v) = RUNNING.lock() {
        v.retain(|p| *p != pid);
    }
}

/// How one spawned command ended.
enum Ended {
    Done(std::process::Output),
    TimedOut {
        elapsed: std::time::Duration,
        stderr: Vec<u8>,
    },
}

/// Spawn `path` with `args` in a process group of its own (a Ctrl-C on the terminal reaches
/// hostform, which decides, not the tool mid-write), feed it `input`, and collect its output.
/// Past `limit` the whole group is killed and what it wrote on stderr so far is kept.
fn spawn_and_wait(
    path: &Path,
    args: &[&str],
    input: Option<&str>,
    limit: std::time::Duration,
) -> std::io::Result<Ended> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::sync::Arc;
    let start = std::time::Instant::now();
    let mut child = std::process::Command::new(path)
        .args(args)
        .env("LC_ALL", "C")
        .env("LVM_SUPPRESS_FD_WARNINGS", "1")
        .process_group(0)
        .stdin(if input.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id() as i32;
    running_add(pid);
    let stdin = child.stdin.take();
    let text = input.map(str::to_string);
    let feeder = std::thread::spawn(move || {
        if let (Some(text), Some(mut stdin)) = (text, stdin) {
            use std::io::Write;
            // A program that exits without reading its input is reported by its status.
            let _ = stdin.write_all(text.as_bytes());
        }
    });
    let mut out_pipe = child.stdout.take();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    });
    let err_buf = Arc::new(Mutex::new(Vec::new()));
    let mut err_pipe = child.stderr.take();
    let err_sink = Arc::clone(&err_buf);
    let stderr = std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Some(p) = err_pipe.as_mut() {
            match p.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Ok(mut b) = err_sink.lock() {
                        b.extend_from_slice(&chunk[..n]);
                    }
                }
            }
        }
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(limit) {
        Ok(status) => status,
        Err(_) => {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            // Reap it; a grandchild that left the group may hold the pipes, so they are not
            // waited for.
            let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
            running_remove(pid);
            let stderr = err_buf.lock().map(|b| b.clone()).unwrap_or_default();
            return Ok(Ended::TimedOut {
                elapsed: start.elapsed(),
                stderr,
            });
        }
    };
    running_remove(pid);
    let status = status?;
    let _ = feeder.join();
    let stdout = stdout.join().unwrap_or_default();
    let _ = stderr.join();
    let stderr = err_buf.lock().map(|b| b.clone()).unwrap_or_default();
    Ok(Ended::Done(std::process::Output {
        status,
        stdout,
        stderr,
    }))
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
        if prog.contains('/') {
            return Err(RunError::NotAName {
                program: prog.to_string(),
            });
        }
        let path = find_program(prog).ok_or_else(|| RunError::NotFound {
            program: prog.to_string(),
        })?;
        if let Ok(mut v) = self.spawned.lock() {
            v.push(show_argv(argv));
        }
        // `hostform -vv` shows every command as it starts (the journal keeps only the ops).
        tracing::debug!(target: "hostform::run", "run {}", show_argv(argv));
        let spawn_err = |source| RunError::Spawn {
            argv: show_argv(argv),
            source,
        };
        let kind = Kind::of(argv);
        let limit = kind.limit();
        busy_start();
        let out = spawn_and_wait(&path, args, input, limit).map_err(spawn_err);
        busy_end();
        let out = match out? {
            Ended::Done(out) => out,
            Ended::TimedOut { elapsed, stderr } => {
                return Err(RunError::TimedOut {
                    argv: show_argv(argv),
                    kind,
                    limit,
                    elapsed,
                    stderr: String::from_utf8_lossy(&stderr).trim().to_string(),
                });
            }
        };
        Ok(Output {
            status: out.status.code().unwrap_or(128),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(path).ok()
    }

    fn read_bytes(&self, path: &str, len: usize) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut buf = Vec::with_capacity(len);
        std::fs::File::open(path)
            .ok()?
            .take(len as u64)
            .read_to_end(&mut buf)
            .ok()?;
        Some(buf)
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

    fn read_link(&self, path: &str) -> Option<String> {
        std::fs::read_link(path)
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    }

    fn block_device(&self, path: &str) -> Option<String> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::metadata(path).ok()?;
        if !m.file_type().is_block_device() {
            return None;
        }
        // Linux's encoding of dev_t (glibc's gnu_dev_major / gnu_dev_minor).
        let d = m.rdev();
        let major = ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff);
        let minor = (d & 0xff) | ((d >> 12) & !0xff);
        Some(format!("{major}:{minor}"))
    }

    fn tells_block_devices(&self) -> bool {
        true
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
///
/// The temporary file gets a name nobody can predict and is created with `O_EXCL|O_NOFOLLOW`,
/// mode 0600, so a file or symlink placed there beforehand (in a directory others can write)
/// is never opened, followed or truncated; the final mode is set on the open file before the
/// rename.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (tmp, mut f) = loop {
        let tmp = dir.join(format!(".{name}.hostform-{}", temp_suffix()));
        match create_temp(&tmp) {
            Ok(f) => break (tmp, f),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    let result = (|| {
        f.write_all(bytes)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
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

/// Create a new file only: never an existing file, never through a symlink (`O_EXCL`,
/// `O_NOFOLLOW`), readable by its owner only until its content is complete.
fn create_temp(tmp: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .mode(0o600)
        .open(tmp)
}

/// A temporary name's suffix nobody can guess in advance: the process id, a per-process
/// counter, and bits from the clock mixed with the kernel's address-space randomisation (std's
/// `RandomState` keys, seeded from the OS's random source).
fn temp_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(n);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{}-{:016x}", std::process::id(), h.finish())
}

/// Answers from a fixture directory captured on a real host (see scripts/capture-fixtures.sh).
///
/// The directory's `COMMANDS` file maps each captured command line to the file holding its
/// output: `NAME<TAB>STATUS<TAB>ARGV`. Files are looked up in `files` (path → fixture name),
/// directory listings and links in `links` (`disk-by-id-links`, and `proc-fd-links`: every
/// `/proc/PID/fd/FD` link, as `PID FD TARGET` lines). `proc-comm` (`PID COMM` lines) answers
/// `/proc/PID/comm`, and `proc-fd-devices` the device numbers of descriptors on block devices.
pub struct ReplayRunner {
    dir: PathBuf,
    commands: BTreeMap<String, (String, i32)>,
    files: BTreeMap<String, String>,
    /// Raw captures (`head -c LEN PATH`): path → fixture name.
    bytes: BTreeMap<String, String>,
    links: BTreeMap<String, String>,
    /// Files whose content is one line of a capture (`/proc/PID/comm` from `proc-comm`).
    lines: BTreeMap<String, String>,
    /// Device numbers of the descriptors that are block devices (`proc-fd-devices`).
    devices: BTreeMap<String, String>,
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
        let mut bytes = BTreeMap::new();
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
            // `head -c 1024 /dev/vda`: raw bytes, read back by `read_bytes`.
            if let Some(rest) = argv.strip_prefix("head -c ")
                && let Some((_, path)) = rest.split_once(' ')
            {
                bytes.insert(path.to_string(), name.to_string());
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
        if let Ok(t) = std::fs::read_to_string(dir.join("proc-fd-links")) {
            for l in t.lines() {
                let mut f = l.splitn(3, ' ');
                if let (Some(pid), Some(fd), Some(target)) = (f.next(), f.next(), f.next()) {
                    links.insert(format!("/proc/{pid}/fd/{fd}"), target.to_string());
                }
            }
        }
        // `stat -L -c "%n %t:%T %F"`: `/proc/223/fd/0 fe:10 block special file`, in hex.
        let mut devices = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(dir.join("proc-fd-devices")) {
            for l in t.lines() {
                let mut f = l.split(' ');
                if let (Some(path), Some(num)) = (f.next(), f.next())
                    && let Some((maj, min)) = num.split_once(':')
                    && let (Ok(maj), Ok(min)) =
                        (u64::from_str_radix(maj, 16), u64::from_str_radix(min, 16))
                {
                    devices.insert(path.to_string(), format!("{maj}:{min}"));
                }
            }
        }
        let mut lines = BTreeMap::new();
        if let Ok(t) = std::fs::read_to_string(dir.join("proc-comm")) {
            for l in t.lines() {
                if let Some((pid, comm)) = l.split_once(' ') {
                    lines.insert(format!("/proc/{pid}/comm"), format!("{comm}\n"));
                }
            }
        }
        Ok(ReplayRunner {
            dir,
            commands,
            files,
            bytes,
            links,
            lines,
            devices,
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
        if let Some(l) = self.lines.get(path) {
            return Some(l.clone());
        }
        self.files.get(path).map(|n| self.fixture(n))
    }

    /// Raw captures (`head -c LEN PATH`, a boot sector or GRUB's images), by the path read.
    fn read_bytes(&self, path: &str, len: usize) -> Option<Vec<u8>> {
        let name = self.bytes.get(path)?;
        let mut b = std::fs::read(self.dir.join(name)).ok()?;
        b.truncate(len);
        Some(b)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut v: Vec<String> = self
            .links
            .keys()
            .chain(self.files.keys())
            .chain(self.lines.keys())
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

    fn block_device(&self, path: &str) -> Option<String> {
        self.devices.get(path).cloned()
    }

    fn tells_block_devices(&self) -> bool {
        !self.devices.is_empty()
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
    /// Symlinks: path → the absolute path they resolve to.
    links: BTreeMap<String, String>,
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
    /// A symlink at `path` that resolves to the absolute path `target`.
    pub fn with_link(mut self, path: &str, target: &str) -> Self {
        self.links.insert(path.to_string(), target.to_string());
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
    /// The entries of `dir` among the files and links given with `with_file` and
    /// `with_link` (and the subdirectories holding them), sorted.
    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let names: std::collections::BTreeSet<String> = self
            .files
            .keys()
            .chain(self.links.keys())
            .filter_map(|p| p.strip_prefix(prefix.as_str()))
            .filter_map(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        names.into_iter().collect()
    }
    /// A link's target; a file given with `with_file` resolves to itself.
    fn resolve_link(&self, path: &str) -> Option<String> {
        match self.links.get(path) {
            Some(t) => Some(t.clone()),
            None => self.files.contains_key(path).then(|| path.to_string()),
        }
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

    /// The system qemu driver's files as captured in tests/fixtures/guests (in the state of
    /// `list-one-running`): the definitions of g1 and g2 (`cat-etc-g1`, `cat-etc-g2`) and the
    /// autostart links `ls -l /etc/libvirt/qemu/autostart` shows (`ls-autostart`).
    pub fn libvirt_etc(r: super::ScriptedRunner) -> super::ScriptedRunner {
        let mut r = r
            .with_file("/etc/libvirt/qemu/g1.xml", &text("guests/cat-etc-g1"))
            .with_file("/etc/libvirt/qemu/g2.xml", &text("guests/cat-etc-g2"));
        for line in text("guests/ls-autostart").lines() {
            if let Some((left, target)) = line.split_once(" -> ") {
                let name = left.rsplit(' ').next().unwrap_or(left);
                r = r.with_link(&format!("/etc/libvirt/qemu/autostart/{name}"), target);
            }
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
    fn a_program_given_as_a_path_is_refused_before_anything_runs() {
        let r = RealRunner::new();
        for prog in ["../../tmp/x", "/bin/true", "./true"] {
            let e = r.run(&[prog]).unwrap_err();
            assert!(matches!(e, RunError::NotAName { .. }), "{prog}: {e}");
            assert!(e.to_string().contains("not a program name"), "{e}");
        }
        assert!(r.spawned.lock().unwrap().is_empty());
    }

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

#[cfg(test)]
mod temp_tests {
    use super::*;

    #[test]
    fn a_temporary_file_never_opens_a_pre_placed_symlink_or_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let link = dir.path().join(".br0.hostform-1");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(create_temp(&link).is_err(), "a symlink is not followed");
        let plain = dir.path().join(".br0.hostform-2");
        std::fs::write(&plain, "someone else's\n").unwrap();
        assert!(
            create_temp(&plain).is_err(),
            "an existing file is not reused"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "someone else's\n");
        // Two names in a row differ: nobody can place the next one in advance.
        assert_ne!(temp_suffix(), temp_suffix());
    }

    #[test]
    fn writing_over_a_symlink_replaces_the_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let path = dir.path().join("br0.network");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        write_atomically(&path, b"new\n", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
    }
}

#[cfg(test)]
mod timeout_tests {
    use super::*;
    use std::time::Duration;

    fn pgrp_of_stat(stat: &str) -> i32 {
        let after = &stat[stat.rfind(')').expect("comm") + 2..];
        after.split_whitespace().nth(2).unwrap().parse().unwrap()
    }

    #[test]
    fn a_child_leads_a_process_group_of_its_own() {
        let sh = find_program("sh").unwrap();
        let Ended::Done(out) = spawn_and_wait(
            &sh,
            &["-c", "echo $$; cat /proc/self/stat"],
            None,
            Duration::from_secs(60),
        )
        .unwrap() else {
            panic!("timed out")
        };
        let text = String::from_utf8(out.stdout).unwrap();
        let (pid, stat) = text.split_once('\n').unwrap();
        let pid: i32 = pid.parse().unwrap();
        assert_eq!(
            pgrp_of_stat(stat),
            pid,
            "the shell leads the group its children share"
        );
        let ours = pgrp_of_stat(&std::fs::read_to_string("/proc/self/stat").unwrap());
        assert_ne!(
            pgrp_of_stat(stat),
            ours,
            "not the group a terminal's Ctrl-C reaches"
        );
    }

    #[test]
    fn a_hung_command_is_killed_with_its_group_and_its_stderr_kept() {
        let sh = find_program("sh").unwrap();
        let Ended::TimedOut { elapsed, stderr } = spawn_and_wait(
            &sh,
            &["-c", "sleep 300 & echo \"partial $!\" >&2; wait"],
            None,
            Duration::from_millis(300),
        )
        .unwrap() else {
            panic!("a 300 s sleep finished within its limit")
        };
        let stderr = String::from_utf8(stderr).unwrap();
        let sleeper: i32 = stderr
            .trim()
            .strip_prefix("partial ")
            .unwrap()
            .parse()
            .unwrap();
        assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
        // The grandchild went with the group: gone, or a zombie awaiting its reaper.
        let dead = (0..100).any(|_| {
            let gone = std::fs::read_to_string(format!("/proc/{sleeper}/stat"))
                .map(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
                .unwrap_or(true);
            if !gone {
                std::thread::sleep(Duration::from_millis(50));
            }
            gone
        });
        assert!(dead, "sleep {sleeper} survived its group's kill");
    }

    #[test]
    fn kinds_and_their_limits() {
        assert_eq!(Kind::of(&["lsblk", "-J", "-b"]), Kind::Read);
        assert_eq!(Kind::of(&["lvs", "--reportformat", "json"]), Kind::Read);
        assert_eq!(Kind::of(&["mdadm", "--detail", "/dev/md0"]), Kind::Read);
        assert_eq!(Kind::of(&["mdadm", "--create", "/dev/md0"]), Kind::Change);
        assert_eq!(Kind::of(&["sfdisk", "--dump", "/dev/vda"]), Kind::Read);
        assert_eq!(Kind::of(&["sfdisk", "/dev/vda"]), Kind::Change);
        assert_eq!(Kind::of(&["ip", "-j", "link", "show"]), Kind::Read);
        assert_eq!(Kind::of(&["ip", "link", "add", "br0"]), Kind::Change);
        assert_eq!(Kind::of(&["mkfs.xfs", "-q", "/dev/vg0/a"]), Kind::Format);
        assert_eq!(
            Kind::of(&["qemu-img", "info", "--output=json", "x"]),
            Kind::Read
        );
        assert_eq!(Kind::of(&["qemu-img", "convert", "-O", "raw"]), Kind::Copy);
        assert_eq!(
            Kind::of(&["virsh", "-c", "qemu:///system", "dumpxml", "g"]),
            Kind::Read
        );
        assert_eq!(
            Kind::of(&["virsh", "-c", "qemu:///system", "define", "x"]),
            Kind::Change
        );
        assert_eq!(Kind::Read.limit_from(None), Duration::from_secs(60));
        assert_eq!(Kind::Copy.limit_from(Some("5")), Duration::from_secs(5));
        assert_eq!(
            Kind::Format.limit_from(Some("0")),
            Duration::from_secs(7200)
        );
        assert_eq!(
            Kind::Change.limit_from(Some("ten")),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn a_timeout_names_argv_elapsed_limit_and_override() {
        let e = RunError::TimedOut {
            argv: "lvs --reportformat json".into(),
            kind: Kind::Read,
            limit: Duration::from_secs(60),
            elapsed: Duration::from_secs(61),
            stderr: "WARNING: dead path".into(),
        }
        .to_string();
        assert!(e.contains("lvs --reportformat json"), "{e}");
        assert!(e.contains("61s") && e.contains("60s"), "{e}");
        assert!(
            e.contains("HOSTFORM_TIMEOUT_READ") && e.contains("dead path"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod brief_tests {
    use super::*;

    /// A failure as the runner reports it, from a capture in tests/fixtures/tool-errors.
    fn captured(name: &str) -> RunError {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tool-errors");
        let read = |ext: &str| std::fs::read_to_string(format!("{dir}/{name}.{ext}")).unwrap();
        RunError::Failed {
            argv: read("cmd").trim().to_string(),
            status: read("status").trim().parse().unwrap(),
            stderr: read("stderr").trim().to_string(),
        }
    }

    #[test]
    fn a_usage_flood_is_cut_to_the_tools_error_line() {
        let e = captured("mkfs-ext4-bad-option");
        let full = e.to_string();
        assert!(
            full.contains("[-jnqvDFSV]"),
            "the capture holds the usage text"
        );
        let b = e.brief();
        assert!(b.contains("invalid option"), "{b}");
        assert!(b.contains("exited with status 1"), "{b}");
        assert!(
            !b.contains("[-jnqvDFSV]") && !b.contains("block-size"),
            "{b}"
        );
        assert!(b.contains("usage text, 8 lines, left out"), "{b}");
    }

    #[test]
    fn a_plain_error_is_kept_whole() {
        for (name, needle) in [
            (
                "mkfs-ext4-too-small",
                "Not enough space to build proposed filesystem",
            ),
            ("qemu-img-convert-missing", "No such file or directory"),
        ] {
            let b = captured(name).brief();
            assert!(b.contains(needle), "{name}: {b}");
            assert_eq!(b.lines().count(), 1, "{name}: {b}");
        }
    }

    #[test]
    fn many_error_lines_are_capped() {
        let stderr = (0..40).map(|i| format!("error {i}\n")).collect::<String>();
        let lines = error_lines(&stderr);
        assert_eq!(lines.len(), BRIEF_LINES + 1);
        assert_eq!(lines.last().unwrap(), "(and 34 more lines)");
    }
}
