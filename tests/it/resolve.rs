//! `hostform resolve`: the resolved spec is a spec of its own. For every spec of the
//! repository (examples, end-to-end, plan format), the command's output loads to the same
//! spec, validates, plans the same against captured hosts (with and without
//! --allow-destroy), gives the same shutdown order, and resolves to itself; strings that YAML
//! could read as something else come back as they were.

use std::path::{Path, PathBuf};

use crate::common::*;
use hostform::plan::{Options, plan_host};
use hostform::spec::resolved::{resolved, to_yaml};
use proptest::prelude::*;

/// Every valid spec of the repository, by its directory (copied whole: includes and images are
/// relative to it).
fn spec_dirs() -> Vec<(&'static str, Vec<String>)> {
    ["specs", "tests/specs/e2e", "tests/specs/plan-format"]
        .into_iter()
        .map(|dir| {
            let mut names: Vec<String> = std::fs::read_dir(root().join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            names.sort();
            (dir, names)
        })
        .collect()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

fn load(p: &Path) -> hostform::spec::Loaded {
    hostform::spec::load(p, None)
        .unwrap_or_else(|f| panic!("{} does not load: {:?}", p.display(), f.diagnostics))
}

/// The YAML after the header's comment lines.
fn body(out: &str) -> &str {
    let mut rest = out;
    while rest.starts_with('#') {
        rest = rest.split_once('\n').map(|x| x.1).unwrap_or("");
    }
    rest
}

#[test]
fn every_spec_resolves_to_a_spec_that_plans_the_same() {
    let facts: Vec<(&str, hostform::discover::Facts)> = ["blank", "full", "thin"]
        .into_iter()
        .map(|s| {
            let r = hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(s))
                .unwrap();
            (s, hostform::discover::discover(&r).unwrap().facts)
        })
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut with_templates = 0;
    for (dir, names) in spec_dirs() {
        // A copy outside any repository: the resolved spec sits next to the original, where
        // its images are.
        let here: PathBuf = tmp.path().join(dir);
        copy_dir(&root().join(dir), &here);
        for name in names {
            let what = format!("{dir}/{name}");
            let o = hostform(&here, &["resolve", &name]);
            assert_eq!(code(&o), 0, "{what}: {}", stderr(&o));
            let out = stdout(&o);
            assert!(
                out.starts_with(&format!("# {name}, resolved: ")),
                "{what}: {out}"
            );
            let resolved_name = format!("{}.resolved.yaml", name.trim_end_matches(".yaml"));
            std::fs::write(here.join(&resolved_name), &out).unwrap();
            let original = load(&here.join(&name));
            let again = load(&here.join(&resolved_name));
            let text = std::fs::read_to_string(here.join(&name)).unwrap();
            if ["include:", "vm-defaults:", "template:", "like:"]
                .iter()
                .any(|k| text.contains(k))
            {
                with_templates += 1;
            }
            // The same spec, with nothing left to apply.
            assert_eq!(json(&again.spec), json(&resolved(&original.spec)), "{what}");
            for gone in [
                "\ninclude:",
                "\nvm-defaults:",
                "\nvm-templates:",
                " template:",
                " like:",
            ] {
                assert!(!out.contains(gone), "{what}: {gone} left in\n{out}");
            }
            // The same warnings (validate's verdict: valid, with the same warnings).
            let codes =
                |l: &hostform::spec::Loaded| l.warnings.iter().map(|w| w.code).collect::<Vec<_>>();
            assert_eq!(codes(&again), codes(&original), "{what}");
            let v = hostform(&here, &["validate", &resolved_name]);
            assert_eq!(code(&v), 0, "{what}: {}", stderr(&v));
            // The same plans, the same stop order.
            for (scenario, f) in &facts {
                for allow_destroy in [false, true] {
                    let opts = Options {
                        allow_destroy,
                        ..Default::default()
                    };
                    assert_eq!(
                        json(&plan_host(&again.spec, f, &opts)),
                        json(&plan_host(&original.spec, f, &opts)),
                        "{what} against {scenario}, --allow-destroy {allow_destroy}"
                    );
                }
            }
            assert_eq!(
                hostform::shutdown::order(&again.spec),
                hostform::shutdown::order(&original.spec),
                "{what}"
            );
            // Resolved once is resolved: the same YAML again.
            let twice = hostform(&here, &["resolve", &resolved_name]);
            assert_eq!(code(&twice), 0);
            assert_eq!(body(&stdout(&twice)), body(&out), "{what}");
            // The same bytes each time.
            assert_eq!(stdout(&hostform(&here, &["resolve", &name])), out);
            // JSON is the same spec, and YAML reads it.
            let j = hostform(&here, &["resolve", &name, "--format", "json"]);
            assert_eq!(code(&j), 0);
            let from_json = hostform::spec::load_str("j.yaml", &stdout(&j))
                .unwrap_or_else(|f| panic!("{what} as JSON: {:?}", f.diagnostics));
            assert_eq!(json(&from_json.spec), json(&again.spec), "{what}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} specs");
    assert!(
        with_templates >= 10,
        "{with_templates} specs with includes, defaults, templates or like"
    );
}

#[test]
fn one_guest_and_its_errors() {
    let dir = root();
    let o = hostform(&dir, &["resolve", "specs/dom0.yaml", "--guest", "guest1"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let body = body(&out);
    assert!(body.starts_with("vms:\n  guest1:\n"), "{out}");
    // What the template and the defaults gave guest1, and its own fields.
    for line in [
        "    hypervisor: xen\n",
        "    memory: 2GiB\n",
        "    vcpus: 2\n",
        "      loader: pygrub\n",
        "      kernel: /vmlinuz\n",
        "    - bridge: br0\n",
    ] {
        assert!(body.contains(line), "{line:?} in\n{out}");
    }
    assert!(!body.contains("template"), "{out}");
    assert!(!body.contains("guest2"));
    // The guest as the whole resolved spec holds it.
    let whole = hostform(&dir, &["resolve", "specs/dom0.yaml"]);
    let whole = stdout(&whole);
    let start = whole.find("\n  guest1:\n").unwrap() + 1;
    let end = whole[start..]
        .find("\n  guest2:\n")
        .map(|e| start + e + 1)
        .unwrap();
    assert_eq!(&body["vms:\n".len()..], &whole[start..end]);

    let o = hostform(&dir, &["resolve", "specs/dom0.yaml", "--guest", "gest1"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("has no guest `gest1`"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("guest1"),
        "a suggestion: {}",
        stderr(&o)
    );
}

/// An invalid spec: validate's located errors on stderr, nothing on stdout (with --format
/// json, validate's JSON report), exit 1.
#[test]
fn an_invalid_spec_gives_validates_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "dangling-references.yaml";
    let text = std::fs::read_to_string(root().join("tests/specs/invalid").join(bad)).unwrap();
    std::fs::write(dir.path().join(bad), text).unwrap();
    let v = hostform(dir.path(), &["validate", bad]);
    let errors: String = stderr(&v)
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| format!("{}\n", b.trim_end_matches('\n')))
        .collect();
    assert!(errors.contains(&format!("--> {bad}:")), "{errors}");
    let o = hostform(dir.path(), &["resolve", bad]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        format!("{errors}{bad} is not valid; nothing was resolved\n")
    );
    let o = hostform(dir.path(), &["resolve", bad, "--format", "json"]);
    assert_eq!(code(&o), 1);
    let vj = hostform(dir.path(), &["validate", bad, "--format", "json"]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap(),
        serde_json::from_str::<serde_json::Value>(&stdout(&vj)).unwrap()
    );
}

/// `--rev`: the spec as committed, not as in the work tree.
#[test]
fn resolve_reads_a_committed_revision() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .current_dir(d)
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", d)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {o:?}");
    };
    let spec = "host: h\nvm-defaults: { hypervisor: xen, memory: 1GiB }\nvms:\n  g: {}\n";
    std::fs::write(d.join("h.yaml"), spec).unwrap();
    git(&["init", "-q"]);
    git(&["add", "h.yaml"]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t",
        "commit",
        "-q",
        "-m",
        "h",
    ]);
    std::fs::write(d.join("h.yaml"), spec.replace("1GiB", "2GiB")).unwrap();
    let now = stdout(&hostform(d, &["resolve", "h.yaml"]));
    let then = hostform(d, &["resolve", "h.yaml", "--rev", "HEAD"]);
    assert_eq!(code(&then), 0, "{}", stderr(&then));
    let then = stdout(&then);
    assert!(now.contains("    memory: 2GiB\n"), "{now}");
    assert!(then.contains("    memory: 1GiB\n"), "{then}");
    assert!(then.starts_with("# h.yaml @ "), "{then}");
    assert!(now.contains("(modified)"), "{now}");
}

/// A guest whose free-text fields hold `s` (the paths after `/x-`), as double-quoted YAML
/// strings (any printable text can be written so), some from a template.
fn with_text(s: &str) -> String {
    let q = serde_json::to_string(s).unwrap();
    let p = serde_json::to_string(&format!("/x-{s}")).unwrap();
    format!(
        "host: h
xen: {{ config-dir: {p} }}
vm-templates:
  t: {{ boot: {{ kernel: {p}, args: {q} }} }}
vms:
  g:
    template: t
    hypervisor: xen
    memory: 1GiB
    boot: {{ root: {q}, ramdisk: {p} }}
"
    )
}

/// Resolve `text` and load the result: the same spec. False when `text` is not a valid spec.
fn round_trip(text: &str) -> bool {
    let Ok(loaded) = hostform::spec::load_str("t.yaml", text) else {
        return false;
    };
    let r = resolved(&loaded.spec);
    let yaml = to_yaml(&r).unwrap();
    let again = hostform::spec::load_str("r.yaml", &yaml).unwrap_or_else(|f| {
        panic!(
            "{text}\nresolved to\n{yaml}\ndoes not load: {:?}",
            f.diagnostics
        )
    });
    assert_eq!(json(&again.spec), json(&r), "{yaml}");
    true
}

#[test]
fn strings_yaml_could_misread_come_back_as_they_were() {
    for s in [
        "true",
        "yes",
        "no",
        "off",
        "null",
        "~",
        " ",
        " x ",
        "1.0",
        "0.90",
        "0x10",
        "1e3",
        "010",
        "-1",
        ".inf",
        "# not a comment",
        "a: b",
        "a #b",
        "'single'",
        "\"double\"",
        "- dash",
        "? key",
        "@at",
        "`tick`",
        "*star",
        "&anchor",
        "!tag",
        "%percent",
        "{a: 1}",
        "[1, 2]",
        "|",
        ">",
        "é ü 中 🙂",
        "back\\slash",
        "2001-12-14",
        "10:20:30:40:50:59",
        "=",
        "<<",
        "---",
        "...",
        "a\u{a0}b",
    ] {
        assert!(round_trip(&with_text(s)), "{s:?} is not valid there");
    }
    // A MAC that YAML 1.1 would read as a number in base 60.
    assert!(round_trip(
        "host: h
bridges: { br0: {} }
vms:
  g: { hypervisor: xen, memory: 1GiB, nics: [{ bridge: br0, mac: \"10:20:30:40:50:59\" }] }
",
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_printable_text_comes_back_as_it_was(s in "[ -.0-~\u{a0}-\u{17f}]{0,40}") {
        prop_assert!(round_trip(&with_text(&s)) || s.trim().is_empty(), "{:?}", s);
    }
}
