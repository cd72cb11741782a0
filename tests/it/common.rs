use std::path::{Path, PathBuf};
use std::process::Output;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run hostform with a clean, colourless environment.
pub fn hostform(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("hostform").expect("binary");
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("COLUMNS")
        .env_remove("HOSTFORM_STATE_DIR")
        .env_remove("HOSTFORM_LOCK_DIR")
        .env_remove("HOSTFORM_TIMINGS")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE");
    cmd.output().expect("run hostform")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
