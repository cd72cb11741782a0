//! `--require-signed`: the spec's commit must carry a valid signature from a trusted key
//! before anything is applied. Verification is git's own (`git verify-commit`), which checks
//! SSH signatures against an allowed-signers file (`ssh-keygen -Y verify` underneath) and
//! OpenPGP signatures against the keyring of the user running hostform.

use std::path::Path;

use crate::runner::Runner;
use crate::spec::Loaded;

/// Check the loaded spec's commit; `Ok` carries git's line naming the good signature.
pub fn require_signed(
    r: &dyn Runner,
    loaded: &Loaded,
    allowed_signers: Option<&Path>,
) -> Result<String, String> {
    let Some(commit) = loaded.commit.as_deref() else {
        return Err(format!(
            "{} is not in a git repository with commits, so there is no signed commit to check",
            loaded.label
        ));
    };
    if loaded.label.ends_with("(modified)") {
        return Err(format!(
            "{} has uncommitted changes: only a signed commit can be applied (commit and sign it, or use --rev)",
            loaded.label
        ));
    }
    verify_commit(r, &loaded.root, commit, allowed_signers)
}

/// `git -C ROOT [-c gpg.ssh.allowedSignersFile=F] verify-commit COMMIT`.
pub fn verify_commit(
    r: &dyn Runner,
    root: &Path,
    commit: &str,
    allowed_signers: Option<&Path>,
) -> Result<String, String> {
    let root = root.to_string_lossy();
    let mut argv: Vec<String> = vec!["git".into(), "-C".into(), root.into_owned()];
    if let Some(f) = allowed_signers {
        if !f.is_file() {
            return Err(format!(
                "the allowed-signers file {} does not exist",
                f.display()
            ));
        }
        argv.push("-c".into());
        argv.push(format!("gpg.ssh.allowedSignersFile={}", f.display()));
    }
    argv.push("verify-commit".into());
    argv.push(commit.into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let short: String = commit.chars().take(7).collect();
    let out = r
        .run(&argv)
        .map_err(|e| format!("cannot verify commit {short}: {e}"))?;
    let said = out.stderr.trim();
    if out.status == 0 {
        return Ok(said
            .lines()
            .find(|l| l.starts_with("Good"))
            .unwrap_or("good signature")
            .to_string());
    }
    Err(if said.is_empty() {
        format!("commit {short} is not signed")
    } else if said.contains("No principal matched") {
        format!(
            "commit {short} is signed by a key that is not in the allowed signers{}",
            allowed_signers
                .map(|f| format!(" ({})", f.display()))
                .unwrap_or_default()
        )
    } else if said.contains("allowedSignersFile needs to be configured") {
        format!(
            "commit {short} has an SSH signature, and no allowed-signers file says whose keys to trust: pass --allowed-signers FILE or set git's gpg.ssh.allowedSignersFile"
        )
    } else {
        format!(
            "commit {short}: the signature does not verify: {}",
            said.lines().collect::<Vec<_>>().join("; ")
        )
    })
}
