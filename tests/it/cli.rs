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
