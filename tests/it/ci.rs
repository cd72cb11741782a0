//! The CI recipes of docs/ci/ run as written: their YAML parses, every shell step passes
//! `bash -n`, and the steps that call hostform run, in a copy of a spec repository (the
//! repository's specs/ plus host specs whose snapshots come from real captures), with this
//! build of hostform first on PATH. Only the install lines (`scripts/deb`, `dpkg -i`,
//! `apt-get`) are left out, and the posting tools (`gh`, `curl`) are stand-ins that record
//! their arguments. The pre-commit hook runs in a temporary git repository.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

/// The lines of a step that install hostform, which a test cannot run (a release build, root).
fn is_install(line: &str) -> bool {
    let l = line.trim();
    l == "scripts/deb"
        || l.starts_with("dpkg -i ")
        || l.starts_with("sudo dpkg -i ")
        || l.starts_with("apt-get ")
}

fn yaml(path: &str) -> serde_json::Value {
    let text = fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bash_n(script: &str, what: &str) {
    let o = Command::new("bash")
        .args(["-n", "-c", script])
        .output()
        .unwrap();
    assert!(o.status.success(), "{what}: {}", stderr(&o));
}

/// A spec repository: the repository's specs/ (whose host specs have no snapshot here, as for
/// a host not yet adopted), and two host specs whose disks are the captured scenarios' disks,
/// each with the snapshot its host would give: `thin` on the thin pool it describes, `lab` on
/// blank disks.
fn spec_repo(dir: &Path) {
    let specs = dir.join("specs");
    copy_dir(&root().join("specs"), &specs);
    let snaps = dir.join("snapshots");
    fs::create_dir_all(&snaps).unwrap();
    for (spec, scenario) in [("thin", "thin"), ("lab", "blank")] {
        fs::copy(
            root().join("tests/specs/e2e/thin.yaml"),
            specs.join(format!("{spec}.yaml")),
        )
        .unwrap();
        let s = snapshot_of(&snaps, scenario, "lab");
        fs::rename(s, snaps.join(format!("{spec}.json"))).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A directory with stand-ins for `gh` and `curl` that record their arguments in
/// `dir/posted`, first on PATH, then this build's hostform, then the system's.
fn path_with_standins(dir: &Path) -> String {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    for tool in ["gh", "curl"] {
        let p = bin.join(tool);
        fs::write(
            &p,
            format!(
                "#!/bin/sh\necho {tool} \"$@\" >> '{}'\n",
                dir.join("posted").display()
            ),
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_hostform"));
    format!(
        "{}:{}:{}",
        bin.display(),
        exe.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Run a step's script as the CI runs it (GitHub: `bash -e -o pipefail`), without its
/// install lines.
fn run_step(dir: &Path, script: &str, env: &[(&str, String)]) -> Output {
    let body: Vec<&str> = script.lines().filter(|l| !is_install(l)).collect();
    let mut c = Command::new("bash");
    c.args(["--noprofile", "--norc", "-e", "-o", "pipefail", "-c"])
        .arg(body.join("\n"))
        .current_dir(dir)
        .env("PATH", path_with_standins(dir))
        .env("NO_COLOR", "1")
        .env("HOSTFORM_STATE_DIR", dir.join("state"))
        .env("HOSTFORM_LOCK_DIR", dir.join("lock"));
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The recipe's directory of host specs, as its workflow-level variable sets it.
fn specs_var(path: &str, key: &str) -> (&'static str, String) {
    let v = yaml(path)[key]["HOSTFORM_SPECS"]
        .as_str()
        .expect("HOSTFORM_SPECS")
        .to_string();
    assert_eq!(v, "specs");
    ("HOSTFORM_SPECS", v)
}

fn github_steps() -> Vec<(String, String)> {
    let w = yaml("docs/ci/github-actions.yml");
    w["jobs"]["check"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| {
            let run = s["run"].as_str()?;
            Some((
                s["name"].as_str().unwrap_or("").to_string(),
                run.to_string(),
            ))
        })
        .collect()
}

#[test]
fn the_github_recipe_installs_validates_plans_and_posts_as_written() {
    let steps = github_steps();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "Install hostform",
            "Validate",
            "Plan against the committed snapshots",
            "Comment the plans on the pull request"
        ]
    );
    for (name, run) in &steps {
        bash_n(run, name);
        // Expressions are passed through env:, never pasted into a script.
        assert!(!run.contains("${{"), "{name}: {run}");
    }
    // The package is built from the repository and installed.
    let install = &steps[0].1;
    assert!(
        install.lines().any(|l| l.trim() == "scripts/deb"),
        "{install}"
    );
    assert!(
        install.contains("dpkg -i target/debian/hostform_"),
        "{install}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec_repo(dir);
    let summary = dir.join("summary.md");
    let env = [
        specs_var("docs/ci/github-actions.yml", "env"),
        ("GITHUB_STEP_SUMMARY", summary.display().to_string()),
        ("GH_TOKEN", "t".to_string()),
        ("PR", "7".to_string()),
    ];
    for (name, run) in &steps {
        let o = run_step(dir, run, &env);
        assert_eq!(code(&o), 0, "{name}:\n{}\n{}", stdout(&o), stderr(&o));
        if name == "Install hostform" {
            assert!(stdout(&o).starts_with("hostform "), "{}", stdout(&o));
        }
        if name == "Plan against the committed snapshots" {
            // The specs without a snapshot are named, as warnings, and not planned.
            for host in ["dom0", "kvm1", "minimal"] {
                assert!(
                    stderr(&o).contains(&format!("::warning file=specs/{host}.yaml::")),
                    "{}",
                    stderr(&o)
                );
            }
        }
    }
    let plans = fs::read_to_string(dir.join("plans.md")).unwrap();
    // The blank disks get the whole stack; each spec has its section; the plans were saved.
    assert!(
        plans.contains("### lab\n\n```\nspecs/lab.yaml against snapshot snapshots/lab.json"),
        "{plans}"
    );
    assert!(plans.contains("### thin\n"), "{plans}");
    assert!(plans.contains("+ volume group vgt"), "{plans}");
    assert!(plans.contains("No snapshot of `dom0`"), "{plans}");
    assert!(dir.join("lab.plan").exists() && dir.join("thin.plan").exists());
    assert_eq!(fs::read_to_string(&summary).unwrap(), plans);
    let posted = fs::read_to_string(dir.join("posted")).unwrap();
    assert_eq!(posted, "gh pr comment 7 --body-file plans.md\n");
}

/// What the recipe must stop: an invalid spec (an annotation on its line, the job fails) and
/// a plan that cannot be made (an unreadable snapshot: the job fails, not "changes").
#[test]
fn the_github_recipe_fails_on_an_invalid_spec_and_on_a_broken_snapshot() {
    let steps = github_steps();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec_repo(dir);
    let env = [
        specs_var("docs/ci/github-actions.yml", "env"),
        (
            "GITHUB_STEP_SUMMARY",
            dir.join("s.md").display().to_string(),
        ),
    ];

    let lab = dir.join("specs/lab.yaml");
    let good = fs::read_to_string(&lab).unwrap();
    fs::write(&lab, good.replace("size: 2GiB", "size: 2 gigs")).unwrap();
    let o = run_step(dir, &steps[1].1, &env);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(
        stdout(&o).contains("::error file=specs/lab.yaml,line="),
        "{}",
        stdout(&o)
    );
    fs::write(&lab, good).unwrap();

    fs::write(dir.join("snapshots/thin.json"), "{ not json").unwrap();
    let o = run_step(dir, &steps[2].1, &env);
    assert_eq!(code(&o), 1, "{}\n{}", stdout(&o), stderr(&o));
    assert!(stderr(&o).contains("snapshots/thin.json"), "{}", stderr(&o));
}

#[test]
fn the_gitlab_recipe_validates_plans_and_posts_a_note_as_written() {
    let ci = yaml("docs/ci/gitlab-ci.yml");
    let lines = |v: &serde_json::Value| -> String {
        v.as_array()
            .expect("a script is a list")
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = lines(&ci["default"]["before_script"]);
    let validate = lines(&ci["validate"]["script"]);
    let plan = lines(&ci["plan"]["script"]);
    for (name, s) in [
        ("before", &before),
        ("validate", &validate),
        ("plan", &plan),
    ] {
        bash_n(s, name);
    }
    assert!(
        before.lines().any(|l| l.trim() == "scripts/deb"),
        "{before}"
    );
    assert!(
        before.contains("dpkg -i target/debian/hostform_"),
        "{before}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec_repo(dir);
    let env = [
        specs_var("docs/ci/gitlab-ci.yml", "variables"),
        ("CI_API_V4_URL", "https://gitlab.example/api/v4".to_string()),
        ("CI_PROJECT_ID", "3".to_string()),
        ("CI_MERGE_REQUEST_IID", "7".to_string()),
        ("HOSTFORM_NOTE_TOKEN", "t".to_string()),
    ];
    for (name, s) in [
        ("before", &before),
        ("validate", &validate),
        ("plan", &plan),
    ] {
        let o = run_step(dir, s, &env);
        assert_eq!(code(&o), 0, "{name}:\n{}\n{}", stdout(&o), stderr(&o));
    }
    let plans = fs::read_to_string(dir.join("plans.md")).unwrap();
    assert!(
        plans.contains("specs/lab.yaml against snapshot snapshots/lab.json"),
        "{plans}"
    );
    let posted = fs::read_to_string(dir.join("posted")).unwrap();
    assert!(posted.starts_with("curl "), "{posted}");
    assert!(
        posted.contains("--data-urlencode body@plans.md"),
        "{posted}"
    );
    assert!(
        posted.contains("https://gitlab.example/api/v4/projects/3/merge_requests/7/notes"),
        "{posted}"
    );

    // An invalid spec fails the validate job, with file:line:column in the log.
    let lab = dir.join("specs/lab.yaml");
    let good = fs::read_to_string(&lab).unwrap();
    fs::write(&lab, good.replace("size: 2GiB", "size: 2 gigs")).unwrap();
    let o = run_step(dir, &validate, &env);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    assert!(stdout(&o).contains("specs/lab.yaml:"), "{}", stdout(&o));
}

fn git(dir: &Path, args: &[&str], path: &str) -> Output {
    Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .output()
        .unwrap()
}

#[test]
fn the_pre_commit_hook_refuses_an_invalid_spec_and_a_fragment_that_breaks_one() {
    let hook = root().join("docs/ci/pre-commit-hook.sh");
    bash_n(&fs::read_to_string(&hook).unwrap(), "pre-commit-hook.sh");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let path = path_with_standins(dir);
    assert_eq!(code(&git(dir, &["init", "-q"], &path)), 0);
    fs::copy(&hook, dir.join(".git/hooks/pre-commit")).unwrap();
    copy_dir(&root().join("specs"), &dir.join("specs"));
    fs::write(dir.join("notes.txt"), "not a spec\n").unwrap();

    // Valid specs commit; the hook names what it validated (git shows a hook's output on
    // stderr).
    git(dir, &["add", "."], &path);
    let o = git(dir, &["commit", "-q", "-m", "specs"], &path);
    assert_eq!(code(&o), 0, "{}{}", stderr(&o), stderr(&o));
    assert!(
        stderr(&o).contains("specs/minimal.yaml: valid"),
        "{}",
        stderr(&o)
    );

    // A commit without spec changes runs no validation.
    fs::write(dir.join("notes.txt"), "still not a spec\n").unwrap();
    git(dir, &["add", "notes.txt"], &path);
    let o = git(dir, &["commit", "-q", "-m", "notes"], &path);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stderr(&o).contains("valid"), "{}", stderr(&o));

    // An invalid host spec is refused, with its line.
    let minimal = dir.join("specs/minimal.yaml");
    let good = fs::read_to_string(&minimal).unwrap();
    fs::write(&minimal, good.replace("size: 20GiB", "size: 20 gigs")).unwrap();
    git(dir, &["add", "specs/minimal.yaml"], &path);
    let o = git(dir, &["commit", "-q", "-m", "bad"], &path);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/minimal.yaml:"), "{}", stderr(&o));
    fs::write(&minimal, &good).unwrap();
    git(dir, &["add", "specs/minimal.yaml"], &path);

    // A fragment is not a spec: its change validates the host specs that include it.
    let frag = dir.join("specs/common/xen-templates.yaml");
    let text = fs::read_to_string(&frag).unwrap();
    fs::write(&frag, format!("{text}\nno-such-key: 1\n")).unwrap();
    git(dir, &["add", "specs/common/xen-templates.yaml"], &path);
    let o = git(dir, &["commit", "-q", "-m", "fragment"], &path);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("specs/dom0.yaml"), "{}", stderr(&o));
}

/// The example specs point the editor at the committed schema: the modeline is their first
/// line and its path, relative to the spec, is the schema `hostform schema` prints.
#[test]
fn the_example_specs_carry_a_schema_modeline_that_resolves() {
    let schema = stdout(&hostform(&root(), &["schema"]));
    let mut n = 0;
    for e in fs::read_dir(root().join("specs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().and_then(|x| x.to_str()) != Some("yaml") {
            continue;
        }
        n += 1;
        let text = fs::read_to_string(&p).unwrap();
        let first = text.lines().next().unwrap();
        let rel = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: {first}", p.display()));
        let target = p.parent().unwrap().join(rel);
        assert_eq!(
            fs::read_to_string(&target).unwrap(),
            schema,
            "{}",
            target.display()
        );
    }
    assert_eq!(n, 4);
}
