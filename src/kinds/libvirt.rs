//! libvirt guests through `virsh`: domain XML rendering, `virsh list --all` and domain XML
//! parsing (tested on output captured from a real libvirtd in the sandbox,
//! tests/fixtures/guests/), and the lifecycle (`start`, `shutdown`, `destroy`, `domstate`).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::guest::{GuestConfig, GuestDisk, GuestNic, Lifecycle};
use crate::runner::{RunError, Runner};
use crate::spec::types::{Boot, Firmware};

/// The connection URI when the spec does not give one.
pub const DEFAULT_URI: &str = "qemu:///system";

/// Where the system qemu driver keeps its persistent definitions (`NAME.xml`) and its
/// autostart links (`autostart/NAME.xml`).
pub const QEMU_DIR: &str = "/etc/libvirt/qemu";

/// One line of `virsh list --all`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    pub name: String,
    /// `None` for a guest that is not running (`-`).
    pub id: Option<u32>,
    /// `running`, `shut off`, `paused`, ...
    pub state: String,
}

/// Parse `virsh list --all`: a header, a dashed rule, then ` ID   NAME   STATE` rows where the
/// state may hold a space (`shut off`).
pub fn parse_list(text: &str) -> Result<Vec<Listed>, String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    if !header.trim_start().starts_with("Id") {
        return Err(format!("virsh list: unexpected header {:?}", header.trim()));
    }
    let mut out = Vec::new();
    for l in lines {
        let t = l.trim();
        if t.is_empty() || t.starts_with('-') && t.chars().all(|c| c == '-') {
            continue;
        }
        let mut parts = t.splitn(2, char::is_whitespace);
        let id = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("").trim_start();
        let mut parts = rest.splitn(2, char::is_whitespace);
        let name = parts.next().unwrap_or("");
        let state = parts.next().unwrap_or("").trim();
        if name.is_empty() || state.is_empty() {
            return Err(format!("virsh list: cannot read the line {t:?}"));
        }
        out.push(Listed {
            name: name.to_string(),
            id: id.parse().ok(),
            state: state.to_string(),
        });
    }
    Ok(out)
}

/// A domain's XML, as read back: what hostform compares, plus the uuid (libvirt refuses to
/// redefine a domain under the same name without it: "domain 'g1' already exists with uuid").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Domain {
    pub config: GuestConfig,
    pub uuid: Option<String>,
    /// The `type` of `<domain>`: `kvm` or `qemu`.
    pub domain_type: String,
}

fn kib(n: roxmltree::Node) -> Option<u64> {
    let v: u64 = n.text()?.trim().parse().ok()?;
    let unit = n.attribute("unit").unwrap_or("KiB");
    Some(match unit {
        "b" | "bytes" => v / 1024,
        "KiB" | "k" => v,
        "MiB" | "M" => v * 1024,
        "GiB" | "G" => v * 1024 * 1024,
        _ => return None,
    })
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, tag: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == tag)
}

fn text(n: roxmltree::Node, tag: &str) -> Option<String> {
    child(n, tag)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
}

/// Parse a domain's XML (`virsh dumpxml`, or /etc/libvirt/qemu/NAME.xml with its comment).
pub fn parse_domain(xml: &str) -> Result<Domain, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("domain XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "domain" {
        return Err(format!(
            "domain XML: root element is <{}>",
            root.tag_name().name()
        ));
    }
    let name = text(root, "name").ok_or("domain XML: no <name>")?;
    let memory_kib = child(root, "memory")
        .and_then(kib)
        .ok_or("domain XML: no readable <memory>")?;
    let vcpus = text(root, "vcpu").and_then(|v| v.parse().ok()).unwrap_or(1);
    let mut boot = None;
    if let Some(os) = child(root, "os") {
        let kernel = text(os, "kernel");
        let firmware = os.attribute("firmware");
        if kernel.is_some() {
            let cmdline = text(os, "cmdline").unwrap_or_default();
            let (root_arg, args) = split_cmdline(&cmdline);
            boot = Some(Boot {
                kernel: kernel.map(crate::spec::de::Sp::bare),
                ramdisk: text(os, "initrd").map(crate::spec::de::Sp::bare),
                root: root_arg.map(crate::spec::de::Sp::bare),
                args: args.map(crate::spec::de::Sp::bare),
                ..Boot::default()
            });
        } else if firmware == Some("efi") {
            boot = Some(Boot {
                firmware: Some(crate::spec::de::Sp::bare(Firmware::Uefi)),
                ..Boot::default()
            });
        }
    }
    let mut disks = Vec::new();
    let mut nics = Vec::new();
    if let Some(devices) = child(root, "devices") {
        for d in devices.children().filter(|c| c.is_element()) {
            match d.tag_name().name() {
                "disk" if d.attribute("device").unwrap_or("disk") == "disk" => {
                    let source = child(d, "source")
                        .and_then(|s| s.attribute("dev").or(s.attribute("file")))
                        .unwrap_or("")
                        .to_string();
                    let target = child(d, "target")
                        .and_then(|t| t.attribute("dev"))
                        .unwrap_or("")
                        .to_string();
                    disks.push(GuestDisk {
                        source,
                        target,
                        readonly: child(d, "readonly").is_some(),
                    });
                }
                "interface" if d.attribute("type") == Some("bridge") => {
                    nics.push(GuestNic {
                        bridge: child(d, "source")
                            .and_then(|s| s.attribute("bridge"))
                            .unwrap_or("")
                            .to_string(),
                        mac: child(d, "mac")
                            .and_then(|m| m.attribute("address"))
                            .map(|m| m.to_ascii_lowercase()),
                    });
                }
                _ => {}
            }
        }
    }
    Ok(Domain {
        config: GuestConfig {
            name,
            memory_kib,
            vcpus,
            boot,
            disks,
            nics,
        },
        uuid: text(root, "uuid"),
        domain_type: root.attribute("type").unwrap_or("").to_string(),
    })
}

/// `root=/dev/vda1 ro console=ttyS0` → (`/dev/vda1 ro`, `console=ttyS0`): the root device
/// and the options right after it that are not `key=value` (`ro`, `rw`).
fn split_cmdline(c: &str) -> (Option<String>, Option<String>) {
    let words: Vec<&str> = c.split_whitespace().collect();
    let mut root = Vec::new();
    let mut rest = Vec::new();
    let mut in_root = false;
    for w in words {
        if let Some(r) = w.strip_prefix("root=") {
            root.push(r.to_string());
            in_root = true;
        } else if in_root && (w == "ro" || w == "rw") {
            root.push(w.to_string());
        } else {
            in_root = false;
            rest.push(w.to_string());
        }
    }
    (
        (!root.is_empty()).then(|| root.join(" ")),
        (!rest.is_empty()).then(|| rest.join(" ")),
    )
}

/// `s` as XML text or attribute value; borrowed when nothing needs escaping (the usual case:
/// names, paths, numbers).
fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '\'', '"']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Render the domain XML hostform defines. `uuid` is the existing domain's, when redefining.
/// `domain_type` is `kvm` on real hosts, `qemu` for software emulation.
pub fn render_domain(c: &GuestConfig, uuid: Option<&str>, domain_type: &str) -> String {
    // Written in place (`write!` into a String cannot fail): one buffer per domain.
    let mut x = String::with_capacity(1024);
    let _ = writeln!(x, "<domain type='{}'>", esc(domain_type));
    let _ = writeln!(x, "  <name>{}</name>", esc(&c.name));
    if let Some(u) = uuid {
        let _ = writeln!(x, "  <uuid>{}</uuid>", esc(u));
    }
    let _ = writeln!(x, "  <memory unit='KiB'>{}</memory>", c.memory_kib);
    let _ = writeln!(x, "  <vcpu>{}</vcpu>", c.vcpus);
    let efi = c
        .boot
        .as_ref()
        .and_then(|b| b.firmware.as_ref())
        .is_some_and(|f| f.value == Firmware::Uefi);
    x += if efi {
        "  <os firmware='efi'>\n"
    } else {
        "  <os>\n"
    };
    x += "    <type arch='x86_64'>hvm</type>\n";
    match c
        .boot
        .as_ref()
        .and_then(|b| b.kernel.as_ref().map(|k| (b, k)))
    {
        Some((b, k)) => {
            let _ = writeln!(x, "    <kernel>{}</kernel>", esc(&k.value));
            if let Some(r) = &b.ramdisk {
                let _ = writeln!(x, "    <initrd>{}</initrd>", esc(&r.value));
            }
            let mut cmd = Vec::new();
            if let Some(r) = &b.root {
                cmd.push(format!("root={}", r.value));
            }
            if let Some(a) = &b.args {
                cmd.push(a.value.clone());
            }
            if !cmd.is_empty() {
                let _ = writeln!(x, "    <cmdline>{}</cmdline>", esc(&cmd.join(" ")));
            }
        }
        None => x += "    <boot dev='hd'/>\n",
    }
    x += "  </os>\n  <features>\n    <acpi/>\n  </features>\n";
    x += "  <on_poweroff>destroy</on_poweroff>\n  <devices>\n";
    for d in &c.disks {
        write_disk_xml(&mut x, d, "    ");
    }
    for n in &c.nics {
        write_nic_xml(&mut x, n, "    ");
    }
    x += "  </devices>\n</domain>\n";
    x
}

fn bus_of(target: &str) -> &'static str {
    if target.starts_with("sd") {
        "scsi"
    } else if target.starts_with("xvd") {
        "xen"
    } else {
        "virtio"
    }
}

/// One `<disk>` element (also what `virsh attach-device` takes).
pub fn disk_xml(d: &GuestDisk, ind: &str) -> String {
    let mut x = String::new();
    write_disk_xml(&mut x, d, ind);
    x
}

fn write_disk_xml(x: &mut String, d: &GuestDisk, ind: &str) {
    let _ = write!(
        x,
        "{ind}<disk type='block' device='disk'>\n{ind}  <driver name='qemu' type='raw' cache='none'/>\n{ind}  <source dev='{}'/>\n{ind}  <target dev='{}' bus='{}'/>\n",
        esc(&d.source),
        esc(&d.target),
        bus_of(&d.target),
    );
    if d.readonly {
        let _ = writeln!(x, "{ind}  <readonly/>");
    }
    let _ = writeln!(x, "{ind}</disk>");
}

/// One `<interface>` element on a bridge.
pub fn nic_xml(n: &GuestNic, ind: &str) -> String {
    let mut x = String::new();
    write_nic_xml(&mut x, n, ind);
    x
}

fn write_nic_xml(x: &mut String, n: &GuestNic, ind: &str) {
    let _ = writeln!(x, "{ind}<interface type='bridge'>");
    if let Some(m) = &n.mac {
        let _ = writeln!(x, "{ind}  <mac address='{}'/>", esc(m));
    }
    let _ = write!(
        x,
        "{ind}  <source bridge='{}'/>\n{ind}  <model type='virtio'/>\n{ind}</interface>\n",
        esc(&n.bridge)
    );
}

/// The libvirt backend: every command is `virsh -c URI ...`.
pub struct Virsh<'a> {
    pub runner: &'a dyn Runner,
    pub uri: String,
}

impl<'a> Virsh<'a> {
    pub fn new(runner: &'a dyn Runner, uri: Option<&str>) -> Self {
        Virsh {
            runner,
            uri: uri.unwrap_or(DEFAULT_URI).to_string(),
        }
    }

    /// `virsh -c URI ARGS...` as argv.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec!["virsh".to_string(), "-c".into(), self.uri.clone()];
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    fn check(&self, args: &[&str]) -> Result<String, RunError> {
        let argv = self.argv(args);
        let a: Vec<&str> = argv.iter().map(String::as_str).collect();
        Ok(self.runner.check(&a)?.stdout)
    }

    /// Every defined guest, with its state.
    pub fn list(&self) -> Result<Vec<Listed>, RunError> {
        let out = self.check(&["list", "--all"])?;
        parse_list(&out).map_err(|e| RunError::Failed {
            argv: crate::runner::show_argv(&["virsh", "-c", &self.uri, "list", "--all"]),
            status: 0,
            stderr: e,
        })
    }

    /// The names of guests marked to start with the host.
    pub fn autostarted(&self) -> Result<Vec<String>, RunError> {
        let out = self.check(&["list", "--all", "--autostart", "--name"])?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// The guests among `names` marked to start with the host. With the local system URI,
    /// where the definitions are files of /etc/libvirt/qemu, the marks are read as libvirt
    /// reads them when it starts: a guest is marked when /etc/libvirt/qemu/autostart/NAME.xml
    /// is a link to its definition (what `virsh autostart` makes, captured in
    /// tests/fixtures/guests/ls-autostart). No process: under emulation a second
    /// `virsh list` took 0.5-0.6 s of every discovery. Otherwise, or when a definition is not
    /// a file here (another URI, a directory this account cannot list), `virsh list --all
    /// --autostart --name`.
    pub fn autostart_marks(&self, names: &[String]) -> Result<BTreeSet<String>, RunError> {
        if self.uri == DEFAULT_URI {
            let defined = self.runner.list(QEMU_DIR);
            if names.iter().all(|n| defined.contains(&format!("{n}.xml"))) {
                let dir = format!("{QEMU_DIR}/autostart");
                return Ok(names
                    .iter()
                    .filter(|n| {
                        let link = format!("{dir}/{n}.xml");
                        let def = format!("{QEMU_DIR}/{n}.xml");
                        match (
                            self.runner.resolve_link(&link),
                            self.runner.resolve_link(&def),
                        ) {
                            (Some(to), Some(def)) => to == def,
                            _ => false,
                        }
                    })
                    .cloned()
                    .collect());
            }
        }
        Ok(self
            .autostarted()?
            .into_iter()
            .filter(|n| names.contains(n))
            .collect())
    }

    /// The persistent definitions of `names`. With the local system URI they are read from
    /// /etc/libvirt/qemu/NAME.xml (no process per guest); otherwise, or when a file cannot be
    /// read, `virsh dumpxml --inactive NAME`.
    pub fn definitions(&self, names: &[String]) -> BTreeMap<String, Result<Domain, String>> {
        let mut out = BTreeMap::new();
        for n in names {
            let from_file = (self.uri == DEFAULT_URI)
                .then(|| self.runner.read(&format!("{QEMU_DIR}/{n}.xml")))
                .flatten();
            let text = match from_file {
                Some(t) => Ok(t),
                None => self
                    .check(&["dumpxml", "--inactive", n])
                    .map_err(|e| e.to_string()),
            };
            out.insert(n.clone(), text.and_then(|t| parse_domain(&t)));
        }
        out
    }
}

impl Lifecycle for Virsh<'_> {
    fn tool(&self) -> &'static str {
        "virsh"
    }
    fn running(&self) -> Result<Vec<String>, RunError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|l| l.state == "running" || l.state == "paused" || l.state == "in shutdown")
            .map(|l| l.name)
            .collect())
    }
    fn is_running(&self, name: &str) -> Result<bool, RunError> {
        let s = self.check(&["domstate", name])?;
        Ok(s.trim() != "shut off" && s.trim() != "crashed")
    }
    fn start(&self, name: &str) -> Result<(), RunError> {
        self.check(&["start", name]).map(|_| ())
    }
    fn request_shutdown(&self, name: &str) -> Result<(), RunError> {
        self.check(&["shutdown", name]).map(|_| ())
    }
    fn destroy(&self, name: &str) -> Result<(), RunError> {
        self.check(&["destroy", name]).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::{libvirt_etc, scripted, text};

    #[test]
    fn list_reads_running_and_shut_off_guests() {
        let l = parse_list(&text("guests/list-one-running")).unwrap();
        assert_eq!(
            l,
            vec![
                Listed {
                    name: "g1".into(),
                    id: Some(1),
                    state: "running".into()
                },
                Listed {
                    name: "g2".into(),
                    id: None,
                    state: "shut off".into()
                },
            ]
        );
        assert!(parse_list(&text("guests/list-empty")).unwrap().is_empty());
        assert!(parse_list("garbage\n").is_err());
    }

    #[test]
    fn domain_xml_reads_back_what_was_defined() {
        for f in [
            "guests/dumpxml-g1-running",
            "guests/dumpxml-g1-inactive",
            "guests/cat-etc-g1",
        ] {
            let d = parse_domain(&text(f)).unwrap();
            assert_eq!(d.config.name, "g1", "{f}");
            assert_eq!(d.config.memory_kib, 65536, "{f}");
            assert_eq!(d.config.vcpus, 1);
            assert_eq!(
                d.config.disks,
                vec![GuestDisk {
                    source: "/dev/vg0/g1_root".into(),
                    target: "vda".into(),
                    readonly: false
                }]
            );
            assert_eq!(
                d.config.nics,
                vec![GuestNic {
                    bridge: "br0".into(),
                    mac: Some("52:54:00:00:00:01".into())
                }]
            );
            assert_eq!(
                d.uuid.as_deref(),
                Some("0040d400-43ec-439d-87b7-6b01b2e482b1")
            );
            assert_eq!(d.domain_type, "qemu");
        }
        // The live disk attached to the running guest shows in its live XML.
        let d = parse_domain(&text("guests/dumpxml-g1-after-attach")).unwrap();
        assert_eq!(d.config.disks.len(), 2);
        assert_eq!(d.config.disks[1].target, "vdb");
        assert!(parse_domain("<domain><name>x</name></domain>").is_err());
        assert!(parse_domain("not xml").is_err());
    }

    #[test]
    fn rendered_xml_is_what_libvirt_reads_back() {
        // The XML fed to `virsh define` in the capture, and ours for the same guest, parse to
        // the same configuration.
        let captured = parse_domain(&text("guests/g1-input.xml")).unwrap().config;
        let ours = render_domain(&captured, None, "qemu");
        assert_eq!(parse_domain(&ours).unwrap().config, captured);
        let stored = parse_domain(&text("guests/cat-etc-g1")).unwrap().config;
        assert_eq!(stored, captured);
        insta::assert_snapshot!("g1_domain_xml", ours);
    }

    #[test]
    fn discovery_reads_definitions_and_autostart_marks_from_files_not_one_process_per_guest() {
        let r = libvirt_etc(scripted("guests", &["list-one-running"]));
        let v = Virsh::new(&r, None);
        let listed = v.list().unwrap();
        assert_eq!(listed.len(), 2);
        let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
        // g1's link, as `virsh autostart g1` made it; `virsh list --autostart` said the same
        // in that state (`list-autostart`).
        let marks = v.autostart_marks(&names).unwrap();
        assert_eq!(marks, BTreeSet::from(["g1".to_string()]));
        assert_eq!(text("guests/list-autostart").trim(), "g1");
        let defs = v.definitions(&names);
        assert_eq!(defs["g1"].as_ref().unwrap().config.memory_kib, 65536);
        assert_eq!(
            defs["g2"].as_ref().unwrap().config.disks[0].source,
            "/dev/vg0/g2_root"
        );
        // One process, however many guests.
        assert_eq!(r.asked.lock().unwrap().len(), 1);
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn an_autostart_link_counts_only_when_it_points_to_the_definition() {
        // libvirt marks a guest when autostart/NAME.xml leads to its definition; a link left
        // pointing elsewhere (or nowhere) marks nothing at libvirtd's next start.
        let r = scripted("guests", &["list-one-running"])
            .with_file("/etc/libvirt/qemu/g1.xml", &text("guests/cat-etc-g1"))
            .with_file("/etc/libvirt/qemu/g2.xml", &text("guests/cat-etc-g2"))
            .with_link("/etc/libvirt/qemu/autostart/g1.xml", "/srv/old/g1.xml");
        let v = Virsh::new(&r, None);
        let names = vec!["g1".to_string(), "g2".to_string()];
        assert!(v.autostart_marks(&names).unwrap().is_empty());
    }

    #[test]
    fn without_the_definition_files_the_marks_come_from_virsh() {
        // Not root (the directory cannot be listed), or not the local system URI: `virsh list
        // --all --autostart --name`, as captured.
        let r = scripted("guests", &["list-autostart"]);
        let v = Virsh::new(&r, None);
        let names = vec!["g1".to_string(), "g2".to_string()];
        let marks = v.autostart_marks(&names).unwrap();
        assert_eq!(marks, BTreeSet::from(["g1".to_string()]));
        assert!(r.remaining().is_empty());
        // One definition file missing is enough to ask virsh.
        let r = libvirt_etc(scripted("guests", &["list-autostart"]));
        let names = vec!["g1".to_string(), "g3".to_string()];
        let marks = Virsh::new(&r, None).autostart_marks(&names).unwrap();
        assert_eq!(marks, BTreeSet::from(["g1".to_string()]));
        assert!(r.remaining().is_empty());
    }

    #[test]
    fn another_uri_reads_definitions_through_dumpxml() {
        let r = crate::runner::ScriptedRunner::new().then(
            "virsh -c qemu+ssh://peer/system dumpxml --inactive g1",
            0,
            &text("guests/dumpxml-g1-inactive"),
        );
        let v = Virsh::new(&r, Some("qemu+ssh://peer/system"));
        let defs = v.definitions(&["g1".into()]);
        assert_eq!(defs["g1"].as_ref().unwrap().config.name, "g1");
    }

    #[test]
    fn lifecycle_commands_and_their_errors_as_captured() {
        let r = scripted(
            "guests",
            &[
                "start-g1",
                "start-g1-again",
                "domstate-g1-running",
                "shutdown-g1",
                "domstate-g1-after-shutdown",
                "destroy-g1",
                "domstate-g1-destroyed",
                "destroy-g1-again",
                "domstate-missing",
            ],
        );
        let v = Virsh::new(&r, None);
        v.start("g1").unwrap();
        let e = v.start("g1").unwrap_err().to_string();
        assert!(e.contains("Domain is already active"), "{e}");
        assert!(v.is_running("g1").unwrap());
        v.request_shutdown("g1").unwrap();
        // A guest without an OS ignores the ACPI power button.
        assert!(v.is_running("g1").unwrap());
        v.destroy("g1").unwrap();
        assert!(!v.is_running("g1").unwrap());
        let e = v.destroy("g1").unwrap_err().to_string();
        assert!(e.contains("domain is not running"), "{e}");
        let e = v.is_running("nosuch").unwrap_err().to_string();
        assert!(e.contains("failed to get domain 'nosuch'"), "{e}");
        assert!(r.remaining().is_empty());
    }
}
