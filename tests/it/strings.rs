//! Spec strings that reach configs, argv, paths and terminals: each is held to the grammar of
//! the place it lands, and refused with file:line:column when it breaks it.

use crate::common::*;

/// A spec with one Xen guest on bridge br0, with `xen`/`vm` text spliced in.
fn spec(target: &str, bridge_ref: &str, extra: &str) -> String {
    format!(
        "host: lab
disks:
  data: {{ serial: HF-DATA-01, size: 20GiB }}
volume-groups:
  vg0:
    pvs: [data]
    lvs:
      g1: {{ size: 4GiB }}
bridges:
  br0: {{}}
{extra}vms:
  g1:
    hypervisor: xen
    memory: 1GiB
    disks: [{{ lv: vg0/g1, target: {target} }}]
    nics: [{{ bridge: {bridge_ref} }}]
"
    )
}

fn validate(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), text).unwrap();
    let o = hostform(dir.path(), &["validate", "s.yaml"]);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "panicked:\n{err}");
    (code(&o), err)
}

fn refused(text: &str, expect: &[&str]) {
    let (c, err) = validate(text);
    assert_eq!(c, 1, "expected a refusal, got exit {c}:\n{err}");
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in:\n{err}");
    }
}

#[test]
fn the_base_spec_is_valid() {
    let (c, err) = validate(&spec("xvda", "br0", ""));
    assert_eq!(c, 0, "{err}");
}

#[test]
fn xen_disk_targets_that_would_add_config_lines_are_refused() {
    refused(
        &spec("\"xvda',w'\\nextra='x\"", "br0", ""),
        &["s.yaml:", "not a valid xl disk target", "hint:"],
    );
    refused(&spec("vda", "br0", ""), &["not a valid xl disk target"]);
    refused(
        &spec("\"xvda,w\"", "br0", ""),
        &["not a valid xl disk target"],
    );
}

#[test]
fn bridge_names_that_add_vif_keys_or_globs_are_refused() {
    let t = spec("xvda", "\"b,script=x\"", "").replace(
        "bridges:\n  br0: {}",
        "bridges:\n  br0: {}\n  \"b,script=x\": {}",
    );
    refused(&t, &["separator", "script=x"]);
    let t =
        spec("xvda", "br0", "").replace("bridges:\n  br0: {}", "bridges:\n  br0: {}\n  \"e*\": {}");
    refused(&t, &["`e*`", "pattern"]);
}

#[test]
fn libvirt_uris_must_be_local() {
    for bad in [
        "ext:///system?command=/bin/sh",
        "qemu+ssh://root@other/system",
        "qemu:///system?x",
    ] {
        refused(
            &spec("xvda", "br0", &format!("libvirt:\n  uri: \"{bad}\"\n")),
            &["not a local libvirt URI", "qemu:///system"],
        );
    }
    let (c, err) = validate(&spec("xvda", "br0", "libvirt:\n  uri: qemu:///session\n"));
    assert_eq!(c, 0, "{err}");
}

#[test]
fn control_characters_are_refused_and_never_printed_raw() {
    let t = spec("xvda", "br0", "").replace("host: lab", "host: \"lab\\e[2K\\rok\"");
    let (c, err) = validate(&t);
    assert_eq!(c, 1, "{err}");
    assert!(err.contains("error[control-char]"), "{err}");
    assert!(
        !err.contains('\u{1b}') && !err.contains('\r'),
        "raw control character in:\n{err:?}"
    );
    assert!(err.contains("\\u{1b}"), "{err}");
    // Also in values deep in the spec, and in keys.
    let t = spec("xvda", "br0", "").replace(
        "memory: 1GiB",
        "memory: 1GiB\n    boot: { args: \"console=hvc0\\nx\" }",
    );
    refused(&t, &["error[control-char]", "\\n"]);
}

#[test]
fn xen_config_dir_is_absolute_normalized_and_its_own() {
    for bad in [
        "\"\"",
        "etc/xen",
        "/etc/xen/../network",
        "/etc//xen",
        "/etc/network/interfaces.d",
        "/etc/systemd/network",
        "/etc",
        "/",
        "/etc/default",
        "/etc/libvirt/qemu",
    ] {
        refused(
            &spec("xvda", "br0", &format!("xen:\n  config-dir: {bad}\n")),
            &["xen.config-dir", "hint:"],
        );
    }
    for good in ["/etc/xen", "/etc/xen/guests", "/srv/xen/"] {
        let (c, err) = validate(&spec(
            "xvda",
            "br0",
            &format!("xen:\n  config-dir: {good}\n"),
        ));
        assert_eq!(c, 0, "{good}: {err}");
    }
}

#[test]
fn an_array_named_dot_dot_is_refused() {
    let t = "host: lab
disks:
  a: { serial: A1, size: 20GiB }
  b: { serial: B1, size: 20GiB }
arrays:
  \"..\": { level: 1, devices: [a, b] }
";
    refused(t, &["s.yaml:6:3", "not a valid array name"]);
}

#[test]
fn an_include_through_a_symlink_out_of_the_repository_is_refused_unread() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, "root:SECRET-HASH-LINE:19000:0:99999:7:::\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&secret, dir.path().join("common.yaml")).unwrap();
    std::fs::write(
        dir.path().join("s.yaml"),
        "host: lab\ninclude: [common.yaml]\n",
    )
    .unwrap();
    let o = hostform(dir.path(), &["validate", "s.yaml"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("outside the repository"), "{err}");
    assert!(err.contains("s.yaml:2:"), "{err}");
    assert!(
        !err.contains("SECRET-HASH-LINE"),
        "content of a refused file printed:\n{err}"
    );
}

#[test]
fn a_symlink_inside_the_repository_is_still_not_followed_blindly_and_a_fifo_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    std::fs::write(
        dir.path().join("s.yaml"),
        "host: lab\ninclude: [fifo.yaml]\n",
    )
    .unwrap();
    // Without the fix, this never returns: the FIFO has no writer.
    let o = hostform(dir.path(), &["validate", "s.yaml"]);
    let err = stderr(&o);
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("not a regular file"), "{err}");
    // The main spec as a FIFO too.
    let o = hostform(dir.path(), &["validate", "fifo.yaml"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));
}

/// 10,000 templates, each naming the next, shared by 100 guests: each template is resolved
/// once, so the chain is accepted (its work is far below the budget); a chain whose every
/// level adds a key (so each merge copies a growing node) is refused by the work budget, not
/// worked through. Neither is timed: before, the first took 28 s.
#[test]
fn a_deep_template_chain_shared_by_many_guests_is_resolved_once() {
    let deep = |grow: bool| {
        let mut t = String::from("host: lab\nvm-templates:\n");
        for i in 0..10_000 {
            if i + 1 < 10_000 {
                t += &format!("  t{i}: {{ template: t{} ", i + 1);
            } else {
                t += &format!("  t{i}: {{ hypervisor: xen, memory: 1GiB ");
            }
            if grow {
                t += &format!(", x{i}: 1 ");
            }
            t += "}\n";
        }
        t += "vms:\n";
        for g in 0..100 {
            t += &format!("  g{g}: {{ template: t0 }}\n");
        }
        t
    };
    let (c, err) = validate(&deep(false));
    assert_eq!(c, 0, "{}", &err[..err.len().min(2000)]);
    let (c, err) = validate(&deep(true));
    assert_eq!(c, 1);
    assert!(
        err.contains("error[limit]"),
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(
        err.contains("4000000 steps"),
        "{}",
        &err[..err.len().min(2000)]
    );
}

#[test]
fn a_filesystem_below_its_tools_minimum_is_refused_at_validate() {
    let lv = |size: &str, fs: &str| {
        format!(
            "host: lab
disks:
  data: {{ serial: HF-DATA-01, size: 20GiB }}
volume-groups:
  vg0:
    pvs: [data]
    lvs:
      small: {{ size: {size}, fs: {fs} }}
"
        )
    };
    refused(
        &lv("256MiB", "xfs"),
        &["s.yaml:8:", "mkfs.xfs", "300MiB", "hint:"],
    );
    let (c, err) = validate(&lv("300MiB", "xfs"));
    assert_eq!(c, 0, "{err}");
    let (c, err) = validate(&lv("4MiB", "ext4"));
    assert_eq!(c, 0, "{err}");
    let (c, err) = validate(&lv("1MiB", "swap"));
    assert_eq!(c, 0, "{err}");
}
