//! The build identity: which commit the binary was built from, and whether its sources differed
//! from that commit. `hostform --version` shows it, saved plans and the journal record it
//! (src/version.rs). std only; git is asked, and any failure (no git, not a checkout, a crate
//! unpacked from a tarball) gives `no git`.
//!
//! `HOSTFORM_BUILD` is one of:
//! - `1a2b3c4d5e6f`: the commit, and the sources are the commit's;
//! - `1a2b3c4d5e6f, dirty 0f1e2d3c4b5a`: the sources differ from the commit; the second hash
//!   is of their content, so two builds of different uncommitted sources never look alike;
//! - `no git`.
//!
//! The build script runs again when what it read can have changed, and only then: the sources
//! (which rebuild the binary anyway), and the files git moves when HEAD moves (HEAD, the branch
//! it points to, packed refs, the reflog, the index). A commit or a checkout changes the
//! identity without rebuilding more than the binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What the binary is built from: "dirty" means that one of these differs from the commit
/// (a change to docs or tests does not make another binary).
const INPUTS: &[&str] = &["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    for p in INPUTS {
        println!("cargo:rerun-if-changed={p}");
    }
    let build = identity(&dir).unwrap_or_else(|| "no git".into());
    println!("cargo:rustc-env=HOSTFORM_BUILD={build}");
}

/// Run git in `dir` (never in a repository named by the environment), its stdout if it
/// succeeded.
fn git(dir: &Path, args: &[&str], input: Option<Vec<u8>>) -> Option<String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        // Read-only: `status` must not refresh the index (that would run this script again).
        .arg("--no-optional-locks")
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().ok()?;
    // Written from a thread: git may fill its stdout before it has read all of its stdin.
    let writer = input.and_then(|bytes| {
        let mut stdin = child.stdin.take()?;
        Some(std::thread::spawn(move || stdin.write_all(&bytes)))
    });
    let out = child.wait_with_output().ok()?;
    if let Some(w) = writer {
        w.join().ok()?.ok()?;
    }
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}

fn identity(dir: &Path) -> Option<String> {
    // Only this package's own checkout: a crate unpacked inside some other repository was not
    // built from that repository's commit.
    let top = git(dir, &["rev-parse", "--show-toplevel"], None)?;
    if std::fs::canonicalize(top.trim()).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    watch_head(dir);
    let commit = git(dir, &["rev-parse", "--short=12", "HEAD"], None)?
        .trim()
        .to_string();
    if commit.is_empty() {
        return None;
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=all", "--"];
    status.extend_from_slice(INPUTS);
    if git(dir, &status, None)?.trim().is_empty() {
        return Some(commit);
    }
    // Should the sources not hash, this build still matches no other.
    let hash = sources_hash(dir).unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("built {:x}", t.as_nanos())
    });
    Some(format!("{commit}, dirty {hash}"))
}

/// `cargo:rerun-if-changed` on what a commit, a checkout or a reset changes: HEAD, the branch
/// it points to (or packed-refs, where a packed branch lives), the reflog of HEAD, the index.
/// Paths come from git, so a worktree (whose HEAD and index are not under `.git/`) works too.
/// Only existing files: cargo runs a script again on every build while a watched file is
/// missing.
fn watch_head(dir: &Path) {
    let mut names = vec![
        "HEAD".to_string(),
        "index".into(),
        "packed-refs".into(),
        "logs/HEAD".into(),
    ];
    if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"], None) {
        names.push(r.trim().to_string());
    }
    for name in names {
        let Some(p) = git(dir, &["rev-parse", "--git-path", &name], None) else {
            continue;
        };
        let p = dir.join(p.trim());
        if p.is_file() {
            println!("cargo:rerun-if-changed={}", p.display());
        }
    }
}

/// A hash of the content of every source file (tracked or new, not ignored): the files' names
/// and git blob ids, hashed by git. 12 hex digits, as the commit.
fn sources_hash(dir: &Path) -> Option<String> {
    let mut ls = vec![
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "--",
    ];
    ls.extend_from_slice(INPUTS);
    let mut files: Vec<String> = git(dir, &ls, None)?
        .lines()
        .filter(|f| dir.join(f).is_file())
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    let blobs = git(
        dir,
        &["hash-object", "--no-filters", "--stdin-paths"],
        Some(
            files
                .iter()
                .map(|f| format!("{f}\n"))
                .collect::<String>()
                .into(),
        ),
    )?;
    let blobs: Vec<&str> = blobs.lines().collect();
    if blobs.len() != files.len() {
        return None;
    }
    let manifest: String = files
        .iter()
        .zip(&blobs)
        .map(|(f, b)| format!("{b} {f}\n"))
        .collect();
    let h = git(
        dir,
        &["hash-object", "--stdin"],
        Some(manifest.into_bytes()),
    )?;
    Some(h.trim().chars().take(12).collect())
}
