//! Which hostform this is: the package version and the build (the commit it was built from,
//! and whether its sources differed from it; see build.rs). `hostform --version` shows them,
//! saved plans and the journal record them, and a saved plan is applied only by the same
//! version and build.

/// The package version: `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The build: `1a2b3c4d5e6f` (a commit), `1a2b3c4d5e6f, dirty 0f1e2d3c4b5a` (built from
/// sources that differ from the commit; the second hash is of their content) or `no git`
/// (built outside a git checkout, from a crate tarball for example).
pub const BUILD: &str = env!("HOSTFORM_BUILD");

/// Version and build, as `--version` shows them: `0.1.0 (1a2b3c4d5e6f)`.
pub const IDENTITY: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HOSTFORM_BUILD"), ")");

/// The identity of the hostform that wrote a record: `build` is `None` in records written
/// before builds were recorded.
pub fn identity(version: &str, build: Option<&str>) -> String {
    format!("{version} ({})", build.unwrap_or("build not recorded"))
}

/// Whether a record was written by this very version and build.
pub fn is_this(version: &str, build: Option<&str>) -> bool {
    version == VERSION && build == Some(BUILD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_version_and_build() {
        assert_eq!(identity(VERSION, Some(BUILD)), IDENTITY);
        assert!(IDENTITY.starts_with(&format!("{VERSION} (")) && IDENTITY.ends_with(')'));
        assert_eq!(identity("0.1.0", None), "0.1.0 (build not recorded)");
        assert!(is_this(VERSION, Some(BUILD)));
        assert!(!is_this(VERSION, None));
        assert!(!is_this(VERSION, Some("0123456789ab")));
        assert!(!is_this("0.0.1", Some(BUILD)));
    }

    /// The build is one of its three forms, and in a checkout it names the commit checked out
    /// now (build.rs runs again after a commit or a checkout) and says whether the sources
    /// differ from it.
    #[test]
    fn build_names_the_checkout() {
        let hex = |s: &str| s.len() >= 12 && s.bytes().all(|b| b.is_ascii_hexdigit());
        let dir = env!("CARGO_MANIFEST_DIR");
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .current_dir(dir)
                .args(args)
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE")
                .env_remove("GIT_INDEX_FILE")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let own_checkout = git(&["rev-parse", "--show-toplevel"])
            .is_some_and(|t| std::fs::canonicalize(t).ok() == std::fs::canonicalize(dir).ok());
        let head = git(&["rev-parse", "--short=12", "HEAD"]).filter(|_| own_checkout);
        let Some(head) = head else {
            assert_eq!(BUILD, "no git");
            return;
        };
        let (commit, dirty) = match BUILD.split_once(", dirty ") {
            Some((c, h)) => (c, Some(h)),
            None => (BUILD, None),
        };
        assert!(hex(commit), "{BUILD}");
        assert_eq!(commit, head);
        if let Some(h) = dirty {
            assert!(hex(h) || h.starts_with("built "), "{BUILD}");
        }
        let status = git(&[
            "status",
            "--porcelain",
            "--untracked-files=all",
            "--",
            "src",
            "build.rs",
            "Cargo.toml",
            "Cargo.lock",
        ])
        .unwrap();
        assert_eq!(dirty.is_some(), !status.is_empty(), "{BUILD}: {status}");
    }
}
