//! The unit-file syntax of the systemd units hostform writes (the drift timer, the guests'
//! shutdown at host shutdown).

/// One argument of `ExecStart=`, quoted as systemd reads it (specifiers and variables escaped).
pub fn quote(arg: &str) -> Result<String, String> {
    if arg.contains(['\n', '\r']) {
        return Err(format!("{arg:?} contains a line break"));
    }
    let esc = arg.replace('%', "%%").replace('$', "$$");
    if !esc.is_empty()
        && esc
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+$".contains(c))
    {
        Ok(esc)
    } else {
        Ok(format!(
            "\"{}\"",
            esc.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    }
}
