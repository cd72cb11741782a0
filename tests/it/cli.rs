//! The command-line interface as users see it: help texts are snapshotted so that any change
//! to commands, flags or wording shows up in review.

use crate::common::*;

#[test]
fn help_texts() {
    let dir = root();
    let top = hostform(&dir, &["--help"]);
    assert_eq!(code(&top), 0);
    insta::assert_snapshot!("help", stdout(&top));
    for cmd in [
        "validate",
        "resolve",
        "discover",
        "plan",
        "apply",
        "show",
        "drift",
        "history",
        "timer",
        "confirm",
        "rollback",
        "net-config",
        "schema",
        "sandbox",
        "shutdown-order",
        "shutdown",
        "start",
    ] {
        let o = hostform(&dir, &[cmd, "--help"]);
        assert_eq!(code(&o), 0, "{cmd}");
        insta::assert_snapshot!(format!("help_{cmd}"), stdout(&o));
    }
}

/// `--version` names the version and the build (commit, dirty), for every subcommand too.
#[test]
fn version_names_the_build() {
    let dir = root();
    let o = hostform(&dir, &["--version"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        format!("hostform {}\n", hostform::version::IDENTITY)
    );
    assert!(stdout(&o).starts_with(&format!("hostform {} (", env!("CARGO_PKG_VERSION"))));
    let o = hostform(&dir, &["plan", "--version"]);
    assert_eq!(code(&o), 0);
    assert!(
        stdout(&o).contains(hostform::version::IDENTITY),
        "{}",
        stdout(&o)
    );
}
