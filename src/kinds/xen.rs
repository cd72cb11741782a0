//! Xen guests through `xl`: one config file per guest (in `xen.config-dir`, /etc/xen by
//! default), started with `xl create FILE`, stopped with `xl shutdown NAME` (without `-w`:
//! hostform waits with its own timeout), forced off with `xl destroy NAME`.
//!
//! The sandbox runs a real Xen (`hostform sandbox --hypervisor xen`): the config files are
//! checked against golden files (tests/golden/xen/) and booted by the real `xl create` in the
//! end-to-end tier (tests/e2e/xen.rs); the command sequences replay the real xl's output and
//! errors (tests/fixtures/xen/, scripts/capture-xen-fixtures.sh). `xl list -l` is a JSON array
//! of `{"domid": N, "config": {"c_info": {"name": ...}, ...}}`.

use super::guest::{GuestConfig, Lifecycle};
use crate::runner::{RunError, Runner};
use crate::spec::types::{Firmware, Loader};

/// Where xl configs live when the spec does not say.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/xen";

/// Where Debian's xendomains looks for the guests to start with the host
/// (`XENDOMAINS_AUTO`): every file there is `xl create`d at boot.
pub const AUTO_DIR: &str = "/etc/xen/auto";

/// The autostart entry of guest `name`: `/etc/xen/auto/NAME.xl`.
pub fn auto_path(name: &str) -> String {
    format!("{AUTO_DIR}/{name}.xl")
}

/// Whether `xl create` failed because a hotplug script outlasted libxl's fixed limit (40 s in
/// Xen 4.17, not configurable): libxl kills the script and destroys the new domain. Xen's
/// block script holds one lock per disk it adds and reads every other guest's disks from
/// xenstore, so on a busy dom0 a guest with several disks can time out although nothing is
/// wrong (tests/fixtures/xen-busy). A second try, on a host that is less busy, gets past it; a
/// domain left behind makes it fail with libxl's own words ("already exists"), which are
/// reported. `xl block-attach` and `network-attach` are not retried: their failure after such
/// a timeout has not been captured.
pub fn hotplug_timed_out(argv: &[&str], stderr: &str) -> bool {
    argv.get(..2) == Some(&["xl", "create"][..])
        && stderr.contains("killing execution of /etc/xen/scripts/")
        && stderr.contains(" because of timeout")
}

/// The config file of guest `name` in `dir`: `/etc/xen/guest/guest1.xl`.
pub fn config_path(dir: Option<&str>, name: &str) -> String {
    format!(
        "{}/{name}.xl",
        dir.unwrap_or(DEFAULT_CONFIG_DIR).trim_end_matches('/')
    )
}

fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A string that is one field of an xl list item (`'phy:SRC,TARGET,rw'`, `'bridge=BR'`): xl
/// splits those on `,` and `=` with no escape, so a field holding one of them, a quote, a
/// backslash or a control character would add keys or lines. Refused, never rewritten.
fn field_ok(s: &str) -> bool {
    !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, ',' | '=' | '\'' | '"' | '\\') || c.is_control())
}

/// Whether `c` can be written as an xl config that means exactly what it says. The spec
/// validator already refuses such strings; this is the renderer's own check, so a config is
/// never written from a string that escaped validation.
pub fn check_config(c: &GuestConfig) -> Result<(), String> {
    for d in &c.disks {
        for (what, v) in [("disk source", &d.source), ("disk target", &d.target)] {
            if !field_ok(v) {
                return Err(format!(
                    "{what} `{}` holds a character xl reads as a separator",
                    crate::diag::visible(v)
                ));
            }
        }
    }
    for n in &c.nics {
        if !field_ok(&n.bridge) || n.mac.as_deref().is_some_and(|m| !field_ok(m)) {
            return Err(format!(
                "bridge `{}` holds a character xl reads as a separator",
                crate::diag::visible(&n.bridge)
            ));
        }
    }
    let mut quoted = vec![c.name.as_str()];
    if let Some(b) = &c.boot {
        quoted.extend(
            [&b.kernel, &b.ramdisk, &b.root, &b.args]
                .into_iter()
                .flatten()
                .map(|v| v.value.as_str()),
        );
    }
    if let Some(v) = quoted.iter().find(|v| v.chars().any(char::is_control)) {
        return Err(format!(
            "`{}` holds a control character",
            crate::diag::visible(v)
        ));
    }
    Ok(())
}

/// Render a guest's xl config file.
pub fn render_config(c: &GuestConfig) -> String {
    let mut x = String::from(
        "# Managed by hostform: edit the spec, not this file (it is rewritten on apply).\n",
    );
    x += &format!("name = {}\n", q(&c.name));
    x += &format!("memory = {}\n", c.memory_kib / 1024);
    x += &format!("vcpus = {}\n", c.vcpus);
    if let Some(b) = &c.boot {
        match (b.loader, b.firmware.as_ref().map(|f| f.value)) {
            (Some(Loader::Pygrub), _) => {
                x += "bootloader = \"pygrub\"\n";
                let mut args = Vec::new();
                if let Some(k) = &b.kernel {
                    args.push(q(&format!("--kernel={}", k.value)));
                }
                if let Some(r) = &b.ramdisk {
                    args.push(q(&format!("--ramdisk={}", r.value)));
                }
                if !args.is_empty() {
                    x += &format!("bootloader_args = [{}]\n", args.join(", "));
                }
            }
            (None, Some(fw)) => {
                x += "type = \"hvm\"\n";
                if fw == Firmware::Uefi {
                    x += "bios = \"ovmf\"\n";
                }
            }
            (None, None) => {
                if let Some(k) = &b.kernel {
                    x += &format!("kernel = {}\n", q(&k.value));
                }
                if let Some(r) = &b.ramdisk {
                    x += &format!("ramdisk = {}\n", q(&r.value));
                }
            }
        }
        if let Some(r) = &b.root {
            x += &format!("root = {}\n", q(&r.value));
        }
        if let Some(a) = &b.args {
            x += &format!("extra = {}\n", q(&a.value));
        }
    }
    if !c.disks.is_empty() {
        x += "disk = [\n";
        for d in &c.disks {
            x += &format!(
                "    'phy:{},{},{}',\n",
                d.source,
                d.target,
                if d.readonly { "r" } else { "rw" }
            );
        }
        x += "]\n";
    }
    if !c.nics.is_empty() {
        x += "vif = [\n";
        for n in &c.nics {
            match &n.mac {
                Some(m) => x += &format!("    'bridge={},mac={m}',\n", n.bridge),
                None => x += &format!("    'bridge={}',\n", n.bridge),
            }
        }
        x += "]\n";
    }
    x
}

/// What a config file hostform wrote says of memory, vCPUs, disks and NICs, laid over
/// `like` (the spec's guest) for the rest: the "current" side a change is classified against.
/// `None` when the file is not one [`render_config`] would write for such a guest (edited by
/// hand, another boot): every difference is then a restart.
pub fn read_config(text: &str, like: &GuestConfig) -> Option<GuestConfig> {
    let mut c = like.clone();
    c.disks.clear();
    c.nics.clear();
    let mut section = "";
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("memory = ") {
            c.memory_kib = v.parse::<u64>().ok()?.checked_mul(1024)?;
        } else if let Some(v) = l.strip_prefix("vcpus = ") {
            c.vcpus = v.parse().ok()?;
        } else if l == "disk = [" || l == "vif = [" {
            section = if l.starts_with("disk") { "disk" } else { "vif" };
        } else if l == "]" {
            section = "";
        } else if let Some(item) = l.strip_prefix('\'').and_then(|r| r.strip_suffix("',")) {
            let fields: Vec<&str> = item.split(',').collect();
            match (section, fields.as_slice()) {
                ("disk", [src, target, mode]) => c.disks.push(super::guest::GuestDisk {
                    source: src.strip_prefix("phy:")?.to_string(),
                    target: target.to_string(),
                    readonly: *mode == "r",
                }),
                ("vif", [bridge]) => c.nics.push(super::guest::GuestNic {
                    bridge: bridge.strip_prefix("bridge=")?.to_string(),
                    mac: None,
                }),
                ("vif", [bridge, mac]) => c.nics.push(super::guest::GuestNic {
                    bridge: bridge.strip_prefix("bridge=")?.to_string(),
                    mac: Some(mac.strip_prefix("mac=")?.to_string()),
                }),
                _ => return None,
            }
        }
    }
    // Anything else that differs (boot, name, a line edited by hand) is not what `like` says.
    (render_config(&c) == text).then_some(c)
}

/// The disk as `xl block-attach` takes it (and as the config file lists it).
pub fn disk_spec(d: &super::guest::GuestDisk) -> String {
    format!(
        "phy:{},{},{}",
        d.source,
        d.target,
        if d.readonly { "r" } else { "rw" }
    )
}

/// The NIC as `xl network-attach` takes it.
pub fn nic_spec(n: &super::guest::GuestNic) -> Vec<String> {
    let mut v = vec![format!("bridge={}", n.bridge)];
    if let Some(m) = &n.mac {
        v.push(format!("mac={m}"));
    }
    v
}

/// A running domain from `xl list -l`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlDomain {
    pub domid: u32,
    pub name: String,
}

/// Read `xl list -l`: a JSON array with one object per domain, its `domid` and its libxl
/// `config` (`c_info.name` is the domain's name). Domain-0 is left out.
pub fn parse_list_long(text: &str) -> Result<Vec<XlDomain>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("xl list -l: not JSON: {e}"))?;
    let arr = v
        .as_array()
        .ok_or("xl list -l: expected a JSON array of domains")?;
    let mut out = Vec::new();
    for d in arr {
        let domid = d
            .get("domid")
            .and_then(|i| i.as_u64())
            .and_then(|i| u32::try_from(i).ok())
            .ok_or("xl list -l: a domain without a numeric `domid`")?;
        let name = d
            .pointer("/config/c_info/name")
            .and_then(|n| n.as_str())
            .ok_or("xl list -l: a domain without `config.c_info.name`")?;
        if domid != 0 && name != "Domain-0" {
            out.push(XlDomain {
                domid,
                name: name.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The xl backend.
pub struct Xl<'a> {
    pub runner: &'a dyn Runner,
    pub config_dir: Option<String>,
}

impl<'a> Xl<'a> {
    pub fn new(runner: &'a dyn Runner, config_dir: Option<&str>) -> Self {
        Xl {
            runner,
            config_dir: config_dir.map(str::to_string),
        }
    }

    /// The running domains with their ids (one `xl list -l`).
    pub fn list(&self) -> Result<Vec<XlDomain>, RunError> {
        let out = self.runner.check(&["xl", "list", "-l"])?;
        parse_list_long(&out.stdout).map_err(|e| RunError::Failed {
            argv: "xl list -l".into(),
            status: 0,
            stderr: e,
        })
    }
}

impl Lifecycle for Xl<'_> {
    fn tool(&self) -> &'static str {
        "xl"
    }
    fn running(&self) -> Result<Vec<String>, RunError> {
        Ok(self.list()?.into_iter().map(|d| d.name).collect())
    }
    /// `xl domid NAME` succeeds only while the domain exists (a stopped Xen guest is gone).
    fn is_running(&self, name: &str) -> Result<bool, RunError> {
        Ok(self.runner.run(&["xl", "domid", name])?.status == 0)
    }
    fn start(&self, name: &str) -> Result<(), RunError> {
        let path = config_path(self.config_dir.as_deref(), name);
        self.runner.check(&["xl", "create", &path]).map(|_| ())
    }
    fn request_shutdown(&self, name: &str) -> Result<(), RunError> {
        self.runner.check(&["xl", "shutdown", name]).map(|_| ())
    }
    fn destroy(&self, name: &str) -> Result<(), RunError> {
        self.runner.check(&["xl", "destroy", name]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dom0() -> crate::spec::Spec {
        crate::spec::load(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/dom0.yaml")),
            None,
        )
        .map(|l| l.spec)
        .map_err(|f| format!("{:?}", f.diagnostics))
        .expect("specs/dom0.yaml loads")
    }

    /// The configs of specs/dom0.yaml's guests equal the reviewed files in tests/golden/xen/
    /// (HOSTFORM_BLESS=1 rewrites them; review the diff).
    #[test]
    fn dom0_configs_match_the_golden_files() {
        let spec = dom0();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/xen");
        for (name, vm) in &spec.vms {
            let c = GuestConfig::from_spec(&name.value, vm);
            let got = render_config(&c);
            let path = format!("{dir}/{}.xl", name.value);
            if std::env::var("HOSTFORM_BLESS").as_deref() == Ok("1") {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(&path, &got).unwrap();
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            assert_eq!(got, want, "{path}");
        }
        let g1 = std::fs::read_to_string(format!("{dir}/guest1.xl")).unwrap();
        // domain.md's shape: pygrub with its args, root, phy: disks rw, vif on br0.
        assert!(g1.contains("bootloader = \"pygrub\"\n"));
        assert!(
            g1.contains("bootloader_args = [\"--kernel=/vmlinuz\", \"--ramdisk=/initrd.img\"]\n")
        );
        assert!(g1.contains("root = \"/dev/xvda1 ro\"\n"));
        assert!(g1.contains("    'phy:/dev/vg0/guest1_root,xvda1,rw',\n"));
        assert!(g1.contains("memory = 2048\nvcpus = 2\n"));
    }

    #[test]
    fn config_dir_and_readonly_disks() {
        assert_eq!(
            config_path(Some("/etc/xen/guest/"), "guest1"),
            "/etc/xen/guest/guest1.xl"
        );
        assert_eq!(config_path(None, "g"), "/etc/xen/g.xl");
        let c = GuestConfig {
            name: "ro".into(),
            memory_kib: 512 * 1024,
            vcpus: 1,
            boot: None,
            disks: vec![super::super::guest::GuestDisk {
                source: "/dev/vg0/data".into(),
                target: "xvdb".into(),
                readonly: true,
            }],
            nics: vec![],
        };
        assert!(render_config(&c).contains("'phy:/dev/vg0/data,xvdb,r',"));
        assert!(check_config(&c).is_ok());
    }

    #[test]
    fn strings_xl_would_split_are_refused_by_the_renderer_check() {
        let mut c = GuestConfig {
            name: "g".into(),
            memory_kib: 512 * 1024,
            vcpus: 1,
            boot: None,
            disks: vec![super::super::guest::GuestDisk {
                source: "/dev/vg0/data".into(),
                target: "xvdb',\n'phy:/dev/sda,xvdc,w".into(),
                readonly: true,
            }],
            nics: vec![],
        };
        assert!(check_config(&c).unwrap_err().contains("disk target"));
        c.disks[0].target = "xvdb".into();
        c.nics.push(super::super::guest::GuestNic {
            bridge: "br0,script=/tmp/x".into(),
            mac: None,
        });
        assert!(check_config(&c).unwrap_err().contains("bridge"));
        c.nics.clear();
        c.name = "g\u{1b}[2K".into();
        let e = check_config(&c).unwrap_err();
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}"), "{e}");
    }

    use crate::runner::fixtures::{scripted, text};

    /// `xl list -l` of the real xl (tests/fixtures/xen/, scripts/capture-xen-fixtures.sh):
    /// Domain-0 left out, names and ids of the guests, running or paused alike.
    #[test]
    fn list_long_gives_names_and_ids_without_domain0() {
        let g = |domid, name: &str| XlDomain {
            domid,
            name: name.into(),
        };
        assert_eq!(
            parse_list_long(&text("xen/list-long-running")).unwrap(),
            vec![g(1, "g1"), g(2, "g2")]
        );
        // Paused is still there (xl list -l says nothing of the state).
        assert_eq!(
            parse_list_long(&text("xen/list-long-paused")).unwrap(),
            vec![g(1, "g1"), g(2, "g2")]
        );
        assert!(
            parse_list_long(&text("xen/list-long-dom0"))
                .unwrap()
                .is_empty()
        );
        assert!(
            parse_list_long(&text("xen/list-long-empty"))
                .unwrap()
                .is_empty()
        );
        // Dying: g2 destroyed while dom0 still maps one of its pages. `xl list` shows it as
        // `(null)` in state `--p--d`; `xl list -l` leaves it out (and says on stderr that it
        // cannot read its configuration), and `xl domid g2` no longer finds it: the guest is
        // not running, and a new g2 may be created beside the dying domain.
        assert!(text("xen/list-dying").contains("(null)"));
        assert!(text("xen/list-long-dying.stderr").contains("Fail to get domain configuration"));
        assert!(
            parse_list_long(&text("xen/list-long-dying"))
                .unwrap()
                .is_empty()
        );
        assert!(text("xen/domid-g2-dying.stderr").contains("does not exist"));
        assert!(parse_list_long("{}").is_err());
        assert!(parse_list_long("[{\"domid\": 1}]").is_err());
        assert!(parse_list_long("").is_err());
    }

    /// The real xl's answers, replayed in the order they were captured: list, create, domid,
    /// shutdown, the guest gone, then xl's own errors (a name taken, an unknown domain).
    #[test]
    fn the_xl_command_sequence_against_real_captures() {
        let r = scripted(
            "xen",
            &[
                "list-long-running",
                "create-g1",
                "domid-g1",
                "shutdown-g1",
                "domid-g1-gone",
                "create-g1-again",
                "shutdown-unknown",
                "destroy-unknown",
            ],
        );
        // The captured configs were /tmp/NAME.xl.
        let xl = Xl::new(&r, Some("/tmp"));
        assert_eq!(xl.running().unwrap(), vec!["g1", "g2"]);
        xl.start("g1").unwrap();
        assert!(xl.is_running("g1").unwrap());
        xl.request_shutdown("g1").unwrap();
        assert!(!xl.is_running("g1").unwrap());
        // xl create of a name already running fails with libxl's own words.
        let e = xl.start("g1").unwrap_err().to_string();
        assert!(e.contains("Domain with name \"g1\" already exists"), "{e}");
        let e = xl
            .request_shutdown("no-such-guest")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no-such-guest is an invalid domain identifier"),
            "{e}"
        );
        assert!(xl.destroy("no-such-guest").is_err());
        assert!(r.remaining().is_empty());
        // Out of sequence is an error, not a silent pass.
        assert!(xl.destroy("g2").is_err());
    }

    /// The busy dom0's failure (tests/fixtures/xen-busy, as apply printed it) is the hotplug
    /// timeout; libxl's other failures of the same command are not.
    #[test]
    fn a_hotplug_timeout_is_told_from_other_failures() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let printed =
            std::fs::read_to_string(root.join("xen-busy/apply-start-srvpub.txt")).unwrap();
        let stderr = printed
            .split_once("exited with status 3: ")
            .map(|(_, e)| e)
            .unwrap();
        let create = ["xl", "create", "/etc/xen/guest/srvpub.xl"];
        assert!(hotplug_timed_out(&create, stderr));
        assert!(!hotplug_timed_out(
            &["xl", "block-attach", "srvpub", "x"],
            stderr
        ));
        assert!(!hotplug_timed_out(&["xl", "shutdown", "srvpub"], stderr));
        assert!(!hotplug_timed_out(&["lvcreate", "-n", "x"], stderr));
        for other in ["create-g1-again.stderr", "create-missing.stderr"] {
            let e = std::fs::read_to_string(root.join("xen").join(other)).unwrap();
            assert!(!hotplug_timed_out(&create, &e), "{other}");
        }
    }
}
