//! The Debian package, installed as an operator installs it: `dpkg -i` in the VM (whose root
//! is a writable overlay of this machine's, so nothing is installed here), then the binary, the
//! man pages, bash's completion on Tab, the systemd template units and removal, each without a
//! warning.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

/// The package to test: `HOSTFORM_E2E_DEB` (scripts/test builds it before the tier), or else
/// one built now with `scripts/deb --dev` (this build's binary, packaged as a release is).
/// Inside the work tree, which the VM sees at the same path.
fn package() -> PathBuf {
    if let Some(p) = std::env::var_os("HOSTFORM_E2E_DEB") {
        let p = root().join(p);
        assert!(p.is_file(), "HOSTFORM_E2E_DEB: no {}", p.display());
        return p;
    }
    let o = Command::new("bash")
        .arg(root().join("scripts/deb"))
        .arg("--dev")
        .current_dir(root())
        .output()
        .expect("run scripts/deb");
    assert!(
        o.status.success(),
        "scripts/deb --dev failed:\n{}",
        text(&o.stderr)
    );
    let out = text(&o.stdout);
    let last = out.lines().last().unwrap_or_default().trim();
    let p = root().join(last);
    assert!(p.is_file(), "scripts/deb printed no package: {out}");
    p
}

/// Debian's own checker finds nothing, pedantic tags included (scripts/lib.sh installs it;
/// under CI=true its absence is a failure).
fn lintian_is_silent(deb: &std::path::Path) {
    if !std::path::Path::new("/usr/bin/lintian").is_file() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "lintian is missing: install the lintian package (scripts/lib.sh does)"
        );
        eprintln!("lintian is not installed: the package was not checked with it");
        return;
    }
    let o = Command::new("/usr/bin/lintian")
        .args(["--pedantic", "--fail-on", "error,warning,info,pedantic"])
        .arg(deb)
        .output()
        .expect("run lintian");
    // lintian's note on being run as root is about lintian, not the package.
    let err: String = text(&o.stderr)
        .lines()
        .filter(|l| *l != "running with root privileges is not recommended!")
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(o.status.success(), "lintian: {}{err}", text(&o.stdout));
    assert_eq!(format!("{}{err}", text(&o.stdout)), "", "lintian");
}

/// Install, use, remove. Every step's stderr is shown in a section of its own, and every one
/// must be empty; bash's session runs on a terminal (`script`), as at a login, so that whatever
/// it says shows in its output.
#[test]
fn installed_with_dpkg_the_package_works_without_a_warning() {
    let Some(_vm) = vm() else { return };
    let deb = package();
    assert!(
        deb.starts_with(root()),
        "{}: the VM sees only the work tree",
        deb.display()
    );
    lintian_is_silent(&deb);
    let script = r#"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 HOME=/tmp/operator
mkdir -p $HOME
show() { echo "==$1=="; cat "$2"; echo "==/$1=="; }
step() {
  name=$1; shift; t0=$(date +%s%N)
  "$@" > /tmp/$name.out 2> /tmp/$name.err; rc=$?
  echo "$name=$rc"; echo "$name took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  show $name /tmp/$name.out; show $name-err /tmp/$name.err
}
# man-db's trigger re-indexes every manual page of the machine for whatis and apropos: 3.5
# minutes under emulation, for an index that `man` and `man -w` do not read. It is turned off
# as Debian's own CI images turn it off; lexgrog below parses our pages as that index would.
rm -f /var/lib/man-db/auto-update
step dpkg dpkg -i "$DEB"
step which command -v hostform
step version hostform --version
step manw man -w hostform hostform-plan hostform-timer-install
step man env MANWIDTH=80 man --warnings hostform-timer-install
step whatis lexgrog /usr/share/man/man1/hostform.1.gz /usr/share/man/man1/hostform-timer-install.1.gz
step examples hostform validate /usr/share/doc/hostform/examples/dom0.yaml /usr/share/doc/hostform/examples/kvm1.yaml /usr/share/doc/hostform/examples/minimal.yaml
# Tab, as bash-completion does it: its loader finds the completion by the command's name.
cat > /tmp/tab.sh <<'EOF'
_completion_loader hostform
complete -p hostform
COMP_WORDS=(hostform ti); COMP_CWORD=1; COMP_LINE='hostform ti'; COMP_POINT=11
_hostform hostform ti hostform; echo "tab: ${COMPREPLY[*]}"
COMP_WORDS=(hostform timer ''); COMP_CWORD=2; COMP_LINE='hostform timer '; COMP_POINT=15
_hostform hostform '' timer; echo "tab: ${COMPREPLY[*]}"
EOF
step bash script -qec "bash -lic '. /tmp/tab.sh'" /dev/null
# The templates, and an instance of each for a spec as `systemctl enable` names it.
inst=$(systemd-escape --path /usr/share/doc/hostform/examples/dom0.yaml)
echo "instance=$inst"
mkdir -p /tmp/units; cd /tmp/units
for t in hostform-drift@.service hostform-drift@.timer hostform-shutdown@.service; do
  ln -s /usr/lib/systemd/system/$t "${t%%@*}@$inst.${t##*.}"
done
step verify systemd-analyze verify /usr/lib/systemd/system/hostform-drift@.service /usr/lib/systemd/system/hostform-drift@.timer /usr/lib/systemd/system/hostform-shutdown@.service /tmp/units/*
cd /
step remove dpkg -r hostform
step gone sh -c 'command -v hostform; ls /usr/lib/systemd/system/hostform-* /usr/share/man/man1/hostform* 2>/dev/null; man -w hostform'
"#;
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "specs/minimal.yaml",
            "--",
            "env",
            &format!("DEB={}", deb.display()),
            "sh",
            "-c",
            script,
        ],
    );
    let out = format!("\n{}", text(&o.stdout));
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    // Where the VM's time went, step by step (shown with --nocapture).
    for l in out.lines().filter(|l| l.contains(" took ")) {
        eprintln!("package: {l}");
    }
    for step in [
        "dpkg", "which", "version", "manw", "man", "whatis", "examples", "bash", "verify", "remove",
    ] {
        assert!(
            out.contains(&format!("\n{step}=0\n")),
            "{step} failed:\n{out}"
        );
        // man-db's trigger says once that it left its index alone, as asked above: dpkg's
        // only allowed word.
        let err = between(&out, &format!("{step}-err"));
        let err = match step {
            "dpkg" | "remove" => err.replacen(
                "Not building database; man-db/auto-update is not 'true'.\n",
                "",
                1,
            ),
            _ => err.to_string(),
        };
        assert_eq!(err, "", "{step}: {out}");
    }
    assert_eq!(between(&out, "which"), "/usr/bin/hostform\n");
    // The package holds this very build.
    let here = Command::new(env!("CARGO_BIN_EXE_hostform"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        between(&out, "version"),
        text(&here.stdout),
        "the package holds another build than this one: run scripts/deb --dev again"
    );
    assert_eq!(
        between(&out, "manw"),
        "/usr/share/man/man1/hostform.1.gz\n\
         /usr/share/man/man1/hostform-plan.1.gz\n\
         /usr/share/man/man1/hostform-timer-install.1.gz\n"
    );
    assert_eq!(
        between(&out, "whatis"),
        "/usr/share/man/man1/hostform.1.gz: \"hostform - Desired state for Linux hypervisor hosts: \
         disks, RAID, LVM, bridges and guests, from a YAML spec in git.\"\n\
         /usr/share/man/man1/hostform-timer-install.1.gz: \"hostform-timer-install - Write \
         NAME.service (runs `hostform drift SPEC`) and NAME.timer, check them with \
         `systemd-analyze verify`, and show them\"\n"
    );
    let page = between(&out, "man");
    assert!(page.contains("hostform-timer-install"), "{page}");
    assert!(page.contains("--on-calendar"), "{page}");
    assert_eq!(
        between(&out, "bash").replace('\r', ""),
        "complete -o bashdefault -o default -o nosort -F _hostform hostform\n\
         tab: timer\n\
         tab: -v -h -V --color --verbose --help --version install remove\n"
    );
    assert!(
        out.contains("\ninstance=usr-share-doc-hostform-examples-dom0.yaml\n"),
        "{out}"
    );
    assert_eq!(between(&out, "verify"), "");
    // Removed, nothing is left: no binary, no units, no pages.
    assert!(!out.contains("\ngone=0\n"), "{out}");
    assert_eq!(between(&out, "gone"), "");
    assert!(
        between(&out, "gone-err").contains("No manual entry for hostform"),
        "{out}"
    );
}
