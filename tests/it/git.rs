//! Loading specs from a git revision, and the `path @ commit (modified)` label.

use crate::common::*;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.email=ci@example.org",
            "-c",
            "user.name=ci",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .status()
        .expect("git runs")
        .success();
    assert!(ok, "git {args:?}");
}

fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    git(d.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(d.path().join("hosts")).unwrap();
    std::fs::create_dir_all(d.path().join("common")).unwrap();
    std::fs::write(
        d.path().join("common/t.yaml"),
        "vm-templates:\n  small: { hypervisor: xen, memory: 512MiB }\n",
    )
    .unwrap();
    std::fs::write(
        d.path().join("hosts/a.yaml"),
        "host: a\ninclude: [../common/t.yaml]\nvms:\n  g: { template: small }\n",
    )
    .unwrap();
    git(d.path(), &["add", "."]);
    git(d.path(), &["commit", "-q", "-m", "first"]);
    d
}

fn head(dir: &Path) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

#[test]
fn a_clean_work_tree_is_labelled_with_its_commit() {
    let d = repo();
    let short = head(d.path());
    let o = hostform(&d.path().join("hosts"), &["validate", "a.yaml"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().next().unwrap(),
        format!(
            "hosts/a.yaml @ {short}: valid (0 disks, 0 arrays, 0 volume groups, 0 LVs, 0 bridges, 1 guest)"
        )
    );
}

#[test]
fn rev_reads_the_commit_not_the_work_tree() {
    let d = repo();
    let first = head(d.path());
    // Break the work tree copy: --rev HEAD still sees the committed, valid spec.
    std::fs::write(d.path().join("hosts/a.yaml"), "host: a\nbogus: 1\n").unwrap();
    let wt = hostform(d.path(), &["validate", "hosts/a.yaml"]);
    assert_eq!(code(&wt), 1);
    assert!(stdout(&wt).contains(&format!("hosts/a.yaml @ {first} (modified): invalid")));
    let at = hostform(d.path(), &["validate", "--rev", "HEAD", "hosts/a.yaml"]);
    assert_eq!(code(&at), 0, "{}", stderr(&at));
    assert!(
        stdout(&at).starts_with(&format!("hosts/a.yaml @ {first} (modified): valid")),
        "{}",
        stdout(&at)
    );
    // Commit the broken one; the first commit is still reachable by name.
    git(d.path(), &["commit", "-qam", "second"]);
    let second = head(d.path());
    let o = hostform(d.path(), &["validate", "--rev", "HEAD~1", "hosts/a.yaml"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains(&format!("@ {first} (modified)")));
    let o = hostform(
        d.path(),
        &[
            "validate",
            "--rev",
            "HEAD",
            "--format",
            "json",
            "hosts/a.yaml",
        ],
    );
    assert_eq!(code(&o), 1);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["specs"][0]["source"], format!("hosts/a.yaml @ {second}"));
    assert_eq!(v["specs"][0]["errors"][0]["file"], "hosts/a.yaml");
    assert_eq!(v["specs"][0]["errors"][0]["line"], 2);
}

#[test]
fn rev_reads_includes_from_the_same_commit() {
    let d = repo();
    std::fs::remove_file(d.path().join("common/t.yaml")).unwrap();
    let wt = hostform(d.path(), &["validate", "hosts/a.yaml"]);
    assert_eq!(code(&wt), 1, "the work tree lost the include");
    let at = hostform(d.path(), &["validate", "--rev", "HEAD", "hosts/a.yaml"]);
    assert_eq!(code(&at), 0, "{}", stderr(&at));
}

#[test]
fn bad_revisions_and_missing_files_at_a_revision() {
    let d = repo();
    let o = hostform(d.path(), &["validate", "--rev", "nope", "hosts/a.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("--rev nope"), "{}", stderr(&o));
    let o = hostform(d.path(), &["validate", "--rev", "HEAD", "hosts/b.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("does not exist at that revision"),
        "{}",
        stderr(&o)
    );
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x.yaml"), "host: x\n").unwrap();
    let o = hostform(outside.path(), &["validate", "--rev", "HEAD", "x.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not inside a git repository"));
}

#[test]
fn includes_cannot_escape_the_repository() {
    let d = repo();
    std::fs::write(
        d.path().join("hosts/a.yaml"),
        "host: a\ninclude: [../../etc/passwd]\n",
    )
    .unwrap();
    let o = hostform(d.path(), &["validate", "hosts/a.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("leads outside the repository"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_symlink_committed_as_an_include_is_refused_at_a_revision_unread() {
    let d = repo();
    // The include replaced by a committed symlink to a file outside the repository.
    std::fs::remove_file(d.path().join("common/t.yaml")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("common/t.yaml")).unwrap();
    git(d.path(), &["add", "-A"]);
    git(d.path(), &["commit", "-q", "-m", "link"]);
    let o = hostform(d.path(), &["validate", "--rev", "HEAD", "hosts/a.yaml"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("common/t.yaml is a symbolic link at that revision"),
        "{e}"
    );
    assert!(!e.contains("root:") && !stdout(&o).contains("root:"), "{e}");
    // In the work tree too: it leads outside the repository, and is not read.
    let o = hostform(d.path(), &["validate", "hosts/a.yaml"]);
    assert_eq!(code(&o), 1);
    assert!(!stderr(&o).contains("root:"), "{}", stderr(&o));
}
