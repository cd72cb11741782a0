//! What the Debian package ships besides the binary (`hostform generate`, scripts/deb): a man
//! page and completions for every command the command line has, whatever commands are added
//! later, and systemd template units that `systemd-analyze verify` passes silently.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::common::*;

/// Every command an operator can type, as its path (`["timer", "install"]`), from the clap
/// definition itself: the top-level command is the empty path. clap's `help` is left out, as
/// are hidden commands.
/// The command at `path` in `cmd`'s tree, and its visible subcommands' names.
fn command_at<'a>(
    cmd: &'a clap::Command,
    path: &[String],
) -> (&'a clap::Command, BTreeSet<String>) {
    let mut c = cmd;
    for name in path {
        c = c.find_subcommand(name).unwrap();
    }
    let subs = c
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    (c, subs)
}

fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(path.clone());
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let mut p = path.clone();
            p.push(sub.get_name().to_string());
            walk(sub, p, out);
        }
    }
    let mut cmd = hostform::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut out = Vec::new();
    walk(&cmd, Vec::new(), &mut out);
    out
}

fn generate(what: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(what);
    let mut args = vec!["generate", what, out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = hostform(dir.path(), &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    (dir, out)
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A program of the system, where it is installed; under CI=true (where scripts/lib.sh installs
/// it) its absence is a failure.
fn system_tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "{name} is missing: install the {package} package (scripts/lib.sh does)"
        );
        eprintln!("{name} is not installed: that part of the test did not run");
    }
    found
}

#[test]
fn a_man_page_for_every_command_and_none_for_generate() {
    let (_d, dir) = generate("man", &[]);
    let paths = command_paths();
    assert!(paths.len() > 15, "{paths:?}");
    let page = |p: &[String]| {
        std::iter::once("hostform".to_string())
            .chain(p.iter().cloned())
            .collect::<Vec<_>>()
            .join("-")
    };
    let want: BTreeSet<String> = paths.iter().map(|p| format!("{}.1", page(p))).collect();
    assert!(want.contains("hostform-timer-install.1"), "{want:?}");
    assert_eq!(files_in(&dir), want);
    for p in &paths {
        let name = page(p);
        let text = std::fs::read_to_string(dir.join(format!("{name}.1"))).unwrap();
        // Title, section, a date (never empty: the fields after it would shift), the source.
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        let rest = th
            .strip_prefix(&format!(".TH {name} 1 "))
            .unwrap_or_else(|| panic!("{th}"));
        let date = rest.split(' ').next().unwrap();
        assert!(
            date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-',
            "{th}"
        );
        assert!(
            rest.contains(&format!("\"hostform {}", env!("CARGO_PKG_VERSION"))),
            "{th}"
        );
        assert!(
            text.contains(&format!(".SH NAME\n{}", name.replace('-', "\\-"))),
            "{name}"
        );
        // A page with subcommands points to each of theirs.
        let subs: Vec<&Vec<String>> = paths
            .iter()
            .filter(|q| q.len() == p.len() + 1 && q.starts_with(p))
            .collect();
        for q in subs {
            let see = format!("{}(1)", page(q).replace('-', "\\-"));
            assert!(text.contains(&see), "{name} does not name {see}");
        }
        assert!(!text.contains("generate(1)"), "{name}");
    }
}

/// The pages render without a single warning from groff, as `man` shows them (the check
/// lintian makes), and man-db's index (whatis, apropos) reads each one's name and summary.
#[test]
fn the_man_pages_render_without_warnings() {
    let Some(man) = system_tool("man", "man-db") else {
        return;
    };
    let (_d, dir) = generate("man", &[]);
    if let Some(lexgrog) = system_tool("lexgrog", "man-db") {
        for f in files_in(&dir) {
            let o = std::process::Command::new(&lexgrog)
                .arg(dir.join(&f))
                .output()
                .unwrap();
            let name = f.trim_end_matches(".1");
            assert!(o.status.success(), "{f}: {}{}", stdout(&o), stderr(&o));
            assert!(
                stdout(&o).starts_with(&format!("{}: \"{name} - ", dir.join(&f).display())),
                "{}",
                stdout(&o)
            );
        }
    }
    for f in files_in(&dir) {
        let o = std::process::Command::new(&man)
            .args(["--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z"])
            .arg(dir.join(&f))
            .env("LC_ALL", "C.UTF-8")
            .env("MANROFFSEQ", "")
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        assert!(o.status.success(), "{f}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{f}");
        assert!(!o.stdout.is_empty(), "{f}");
    }
}

/// Bash completes every command's subcommands and long options, exactly those clap has, run
/// through bash itself; zsh and fish name every command.
#[test]
fn completions_offer_every_command_and_not_generate() {
    let (_d, dir) = generate("completions", &[]);
    assert_eq!(
        files_in(&dir),
        ["_hostform", "hostform.bash", "hostform.fish"]
            .map(String::from)
            .into()
    );
    let mut cmd = hostform::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    for path in command_paths() {
        let (c, subs) = command_at(&cmd, &path);
        let longs: BTreeSet<String> = c
            .get_arguments()
            .filter(|a| !a.is_hide_set())
            .filter_map(|a| a.get_long())
            .map(|l| format!("--{l}"))
            .collect();
        let Some(bash) = system_tool("bash", "bash") else {
            return;
        };
        let words: Vec<String> = std::iter::once("hostform".to_string())
            .chain(path.iter().cloned())
            .chain(std::iter::once(String::new()))
            .collect();
        let script = format!(
            "source {}\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_hostform hostform '' {}\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            dir.join("hostform.bash").display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            words[words.len() - 2],
        );
        let o = std::process::Command::new(&bash)
            .args(["--norc", "--noprofile", "-c", &script])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "", "{path:?}");
        let offered: BTreeSet<String> = stdout(&o).lines().map(str::to_string).collect();
        let offered_subs: BTreeSet<String> = offered
            .iter()
            .filter(|w| !w.starts_with('-'))
            .cloned()
            .collect();
        assert_eq!(offered_subs, subs, "hostform {}", path.join(" "));
        let offered_longs: BTreeSet<String> = offered
            .iter()
            .filter(|w| w.starts_with("--"))
            .cloned()
            .collect();
        assert_eq!(offered_longs, longs, "hostform {}", path.join(" "));
    }
    let zsh = std::fs::read_to_string(dir.join("_hostform")).unwrap();
    let fish = std::fs::read_to_string(dir.join("hostform.fish")).unwrap();
    assert!(zsh.starts_with("#compdef hostform"), "{zsh}");
    for path in command_paths().iter().filter(|p| !p.is_empty()) {
        let name = path.last().unwrap();
        assert!(zsh.contains(&format!("'{name}:")), "zsh: {name}");
        assert!(fish.contains(&format!("-a \"{name}\"")), "fish: {name}");
    }
    assert!(!zsh.contains("'generate:"), "{zsh}");
    assert!(!fish.contains("-a \"generate\""), "{fish}");
}

/// fish, run for real, offers exactly each command's subcommands; zsh reads its script
/// without a syntax error.
#[test]
fn fish_completes_every_command_and_zsh_reads_its_script() {
    let (_d, dir) = generate("completions", &[]);
    if let Some(zsh) = system_tool("zsh", "zsh") {
        let o = std::process::Command::new(zsh)
            .arg("-n")
            .arg(dir.join("_hostform"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "");
    }
    let Some(fish) = system_tool("fish", "fish") else {
        return;
    };
    let mut cmd = hostform::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let empty = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for path in command_paths() {
        let (_, subs) = command_at(&cmd, &path);
        if subs.is_empty() {
            continue;
        }
        let line = format!("hostform {}", path.join(" "));
        let line = format!("{} ", line.trim_end());
        let o = std::process::Command::new(&fish)
            .current_dir(empty.path())
            .env("HOME", empty.path())
            .env("XDG_CONFIG_HOME", empty.path())
            .arg("--no-config")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C '{line}'",
                dir.join("hostform.fish").display()
            ))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stderr(&o), "", "{line}");
        let offered: BTreeSet<String> = stdout(&o)
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .filter(|w| !w.starts_with('-'))
            .collect();
        assert_eq!(offered, subs, "{line}");
        checked += 1;
    }
    assert!(checked >= 2, "the top level and timer");
}

/// Every file `generate` writes is one Cargo.toml's package assets ship, where Debian's tools
/// look for it.
#[test]
fn the_package_ships_what_generate_writes() {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let deb = toml
        .split("[package.metadata.deb]")
        .nth(1)
        .expect("a [package.metadata.deb] section");
    let (_d, comp) = generate("completions", &[]);
    let (_e, units) = generate("units", &[]);
    for want in [
        "[\"target/assets/man/*.1\", \"usr/share/man/man1/\"",
        "[\"target/assets/completions/hostform.bash\", \"usr/share/bash-completion/completions/hostform\"",
        "[\"target/assets/completions/_hostform\", \"usr/share/zsh/vendor-completions/\"",
        "[\"target/assets/completions/hostform.fish\", \"usr/share/fish/vendor_completions.d/\"",
        "[\"target/assets/systemd/*\", \"usr/lib/systemd/system/\"",
        "[\"target/release/hostform\", \"usr/bin/\"",
    ] {
        assert!(deb.contains(want), "{want}");
    }
    assert_eq!(
        files_in(&comp),
        ["_hostform", "hostform.bash", "hostform.fish"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        files_in(&units),
        [
            "hostform-drift@.service",
            "hostform-drift@.timer",
            "hostform-shutdown@.service"
        ]
        .map(String::from)
        .into()
    );
    let script = std::fs::read_to_string(root().join("scripts/deb")).unwrap();
    for want in [
        "generate man target/assets/man",
        "generate completions target/assets/completions",
        "generate units target/assets/systemd",
    ] {
        assert!(script.contains(want), "scripts/deb: {want}");
    }
}

/// The template units run the installed hostform on the spec named by the instance, and
/// `systemd-analyze verify` passes the templates and an instance of each without a word.
#[test]
fn the_template_units_verify_silently() {
    let (_d, dir) = generate("units", &[]);
    let drift = std::fs::read_to_string(dir.join("hostform-drift@.service")).unwrap();
    assert!(
        drift
            .lines()
            .any(|l| l == "ExecStart=/usr/bin/hostform drift %f"),
        "{drift}"
    );
    let shutdown = std::fs::read_to_string(dir.join("hostform-shutdown@.service")).unwrap();
    assert!(
        shutdown
            .lines()
            .any(|l| l == "ExecStop=/usr/bin/hostform shutdown %f"),
        "{shutdown}"
    );
    let Some(sa) = system_tool("systemd-analyze", "systemd") else {
        return;
    };
    // systemd-analyze checks that the command exists: this build's binary stands in for
    // /usr/bin/hostform.
    let exe = env!("CARGO_BIN_EXE_hostform");
    let (_e, dir) = generate("units", &["--exe", exe]);
    // The instance as `systemd-escape --path /srv/specs/dom0.yaml` writes it.
    for (template, instance) in [
        (
            "hostform-drift@.service",
            "hostform-drift@srv-specs-dom0.yaml.service",
        ),
        (
            "hostform-drift@.timer",
            "hostform-drift@srv-specs-dom0.yaml.timer",
        ),
        (
            "hostform-shutdown@.service",
            "hostform-shutdown@srv-specs-dom0.yaml.service",
        ),
    ] {
        std::fs::copy(dir.join(template), dir.join(instance)).unwrap();
        for unit in [template, instance] {
            let v = std::process::Command::new(&sa)
                .arg("verify")
                .arg(dir.join(unit))
                .output()
                .unwrap();
            assert!(v.status.success(), "{unit}: {}", stderr(&v));
            assert_eq!(stderr(&v), "", "{unit}: no warnings");
        }
    }
}

#[test]
fn generate_refuses_bad_usage_and_says_what_failed() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["generate"][..],
        &["generate", "man"],
        &["generate", "pages", "x"],
        &["generate", "units", "x", "--exe", "hostform"],
    ] {
        let o = hostform(dir.path(), args);
        assert_eq!(code(&o), 64, "{args:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
    // `generate` is no command of help.
    let o = hostform(dir.path(), &["--help"]);
    assert_eq!(code(&o), 0);
    assert!(
        !stdout(&o)
            .lines()
            .any(|l| l.trim_start().starts_with("generate")),
        "{}",
        stdout(&o)
    );
    // A directory that cannot be made: the error names it, exit 1.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let o = hostform(dir.path(), &["generate", "man", "file/man"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("generate: file/man: "),
        "{}",
        stderr(&o)
    );
}
