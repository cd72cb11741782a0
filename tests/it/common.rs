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

/// hostform as [`hostform`] runs it, with its state and lock directories inside `dir`: applies
/// journal and lock there, never on the machine running the tests.
pub fn hf(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = assert_cmd::Command::cargo_bin("hostform").expect("binary");
    cmd.current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .env("HOSTFORM_STATE_DIR", dir.join("state"))
        .env("HOSTFORM_LOCK_DIR", dir.join("lock"))
        .env_remove("COLUMNS")
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

/// A snapshot as `hostform discover --format json` writes it on the host `host`, from a
/// captured scenario. The captures hold no hostname (discovery of them records none, and
/// `plan --against` refuses such a snapshot without `--host`): the snapshot records `host`,
/// as discovery records the hostname of the host it runs on.
pub fn snapshot_of(dir: &Path, scenario: &str, host: &str) -> PathBuf {
    let r =
        hostform::runner::ReplayRunner::open(root().join("tests/fixtures").join(scenario)).unwrap();
    let mut d = hostform::discover::discover(&r).unwrap();
    assert_eq!(
        d.spec.host.value,
        hostform::workflow::host::NOT_RECORDED,
        "the capture {scenario} records a hostname now: use it"
    );
    d.spec.host = hostform::spec::de::Sp::bare(host.to_string());
    let p = dir.join(format!("{scenario}.json"));
    std::fs::write(&p, serde_json::to_string(&d).unwrap()).unwrap();
    p
}
