//! Guests, whatever runs them: the comparable model of a guest's configuration, and the
//! lifecycle both backends (`xen.rs`: xl, `libvirt.rs`: virsh) implement through the runner.

use serde::{Deserialize, Serialize};

use crate::runner::RunError;
use crate::spec::types::{Boot, Vm};

/// What hostform manages of a guest's configuration, in a form both the spec and the
/// hypervisor's own configuration (xl file, domain XML) map onto, so they can be compared.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestConfig {
    pub name: String,
    pub memory_kib: u64,
    pub vcpus: u32,
    #[serde(default)]
    pub boot: Option<Boot>,
    #[serde(default)]
    pub disks: Vec<GuestDisk>,
    #[serde(default)]
    pub nics: Vec<GuestNic>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestDisk {
    /// The host block device: `/dev/vg0/guest1_root`.
    pub source: String,
    /// The device name inside the guest: `xvda1`, `vda`.
    pub target: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNic {
    pub bridge: String,
    /// Lower-case `aa:bb:cc:dd:ee:ff`; `None` lets the hypervisor choose.
    pub mac: Option<String>,
}

impl GuestConfig {
    /// The configuration a (resolved) spec guest asks for.
    pub fn from_spec(name: &str, vm: &Vm) -> GuestConfig {
        GuestConfig {
            name: name.to_string(),
            memory_kib: vm.memory.as_ref().map(|m| m.value.0 / 1024).unwrap_or(0),
            vcpus: vm.vcpus.as_ref().map(|v| v.value).unwrap_or(1),
            boot: vm.boot.clone(),
            disks: vm
                .disks
                .iter()
                .map(|d| GuestDisk {
                    source: format!("/dev/{}", d.lv.value),
                    target: d.target.value.clone(),
                    readonly: d.readonly,
                })
                .collect(),
            nics: vm
                .nics
                .iter()
                .map(|n| GuestNic {
                    bridge: n.bridge.value.clone(),
                    mac: n
                        .mac
                        .as_ref()
                        .map(|m| m.value.to_string().to_ascii_lowercase()),
                })
                .collect(),
        }
    }

    /// The LVs (`VG/LV`) this guest's disks sit on.
    pub fn lvs(&self) -> Vec<String> {
        self.disks
            .iter()
            .filter_map(|d| d.source.strip_prefix("/dev/").map(str::to_string))
            .collect()
    }
}

/// How a change to a guest's configuration reaches the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeClass {
    /// Applied to the running guest (and its persistent configuration).
    Live,
    /// Written to the configuration; takes effect at the guest's next start.
    Restart,
    /// Only possible while the guest is stopped (an LV resize under it).
    Stopped,
}

/// Classify the difference between what a guest runs with and what the spec asks for:
/// more memory, vCPUs or a different boot need a restart; added disks and NICs are attached
/// live; removed or changed ones need a restart.
pub fn classify(current: &GuestConfig, desired: &GuestConfig) -> Vec<(String, ChangeClass)> {
    let mut out = Vec::new();
    if current.memory_kib != desired.memory_kib {
        out.push((
            format!(
                "memory {} MiB → {} MiB",
                current.memory_kib / 1024,
                desired.memory_kib / 1024
            ),
            ChangeClass::Restart,
        ));
    }
    if current.vcpus != desired.vcpus {
        out.push((
            format!("vcpus {} → {}", current.vcpus, desired.vcpus),
            ChangeClass::Restart,
        ));
    }
    if current.boot != desired.boot && desired.boot.is_some() {
        out.push(("boot settings".into(), ChangeClass::Restart));
    }
    for d in &desired.disks {
        if !current.disks.contains(d) {
            let class = if current.disks.iter().any(|c| c.target == d.target) {
                ChangeClass::Restart
            } else {
                ChangeClass::Live
            };
            out.push((format!("disk {} as {}", d.source, d.target), class));
        }
    }
    for c in &current.disks {
        if !desired.disks.iter().any(|d| d.target == c.target) {
            out.push((
                format!("remove disk {} ({})", c.source, c.target),
                ChangeClass::Restart,
            ));
        }
    }
    let (added, removed) = match_nics(current, desired);
    for (_, n) in added {
        out.push((format!("NIC on {}", n.bridge), ChangeClass::Live));
    }
    for n in removed {
        out.push((
            format!("remove the NIC on {}", n.bridge),
            ChangeClass::Restart,
        ));
    }
    out
}

/// The spec's NICs the guest does not have yet, with their index in the spec's list. Each
/// current NIC stands for one wanted NIC only (same bridge, same MAC when the spec gives one),
/// so a second NIC on a bridge the guest already has a NIC on is still added.
pub fn added_nics<'a>(
    current: &GuestConfig,
    desired: &'a GuestConfig,
) -> Vec<(usize, &'a GuestNic)> {
    match_nics(current, desired).0
}

/// The spec's NICs the guest lacks (with their index in the spec's list), and the guest's
/// NICs that no wanted NIC claims (a NIC moved to another bridge is one of each).
fn match_nics<'a, 'c>(
    current: &'c GuestConfig,
    desired: &'a GuestConfig,
) -> (Vec<(usize, &'a GuestNic)>, Vec<&'c GuestNic>) {
    let mut free: Vec<&GuestNic> = current.nics.iter().collect();
    // NICs with a MAC claim theirs first, so a MAC-less NIC does not take a MAC'd one's match.
    let mut order: Vec<usize> = (0..desired.nics.len()).collect();
    order.sort_by_key(|&i| desired.nics[i].mac.is_none());
    let mut added = Vec::new();
    for i in order {
        let n = &desired.nics[i];
        match free
            .iter()
            .position(|c| c.bridge == n.bridge && (n.mac.is_none() || c.mac == n.mac))
        {
            Some(k) => {
                free.remove(k);
            }
            None => added.push((i, n)),
        }
    }
    added.sort_by_key(|&(i, _)| i);
    (added, free)
}

/// Starting and stopping guests, whatever runs them. Every call is one command through the
/// runner; waiting (with hostform's own timeout) is the caller's business.
pub trait Lifecycle: Send + Sync {
    /// `xl` or `virsh`, for messages.
    fn tool(&self) -> &'static str;
    /// The running guests (Domain-0 excluded), one command.
    fn running(&self) -> Result<Vec<String>, RunError>;
    /// Whether this guest is running now.
    fn is_running(&self, name: &str) -> Result<bool, RunError>;
    /// Start a defined (libvirt) or configured (xl) guest.
    fn start(&self, name: &str) -> Result<(), RunError>;
    /// Ask the guest to shut down cleanly; returns at once.
    fn request_shutdown(&self, name: &str) -> Result<(), RunError>;
    /// Force it off.
    fn destroy(&self, name: &str) -> Result<(), RunError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mem: u64, disks: &[(&str, &str)], nics: &[&str]) -> GuestConfig {
        GuestConfig {
            name: "g".into(),
            memory_kib: mem * 1024,
            vcpus: 1,
            boot: None,
            disks: disks
                .iter()
                .map(|(s, t)| GuestDisk {
                    source: s.to_string(),
                    target: t.to_string(),
                    readonly: false,
                })
                .collect(),
            nics: nics
                .iter()
                .map(|b| GuestNic {
                    bridge: b.to_string(),
                    mac: None,
                })
                .collect(),
        }
    }

    /// Each NIC the guest has stands for one wanted NIC: a second NIC on the same bridge is
    /// added, not taken for the first; a NIC with a MAC is matched by its MAC.
    #[test]
    fn a_second_nic_on_the_same_bridge_is_added() {
        let cur = cfg(64, &[], &["br0"]);
        let two = cfg(64, &[], &["br0", "br0"]);
        let added = added_nics(&cur, &two);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].0, 1);
        assert_eq!(
            classify(&cur, &two),
            [("NIC on br0".to_string(), ChangeClass::Live)]
        );
        assert!(added_nics(&two, &two).is_empty());
        // The spec's MAC'd NIC claims the guest's NIC with that MAC, whatever the order.
        let mut cur = cfg(64, &[], &["br0"]);
        cur.nics[0].mac = Some("52:54:00:00:00:01".into());
        let mut want = cfg(64, &[], &["br0", "br0"]);
        want.nics[1].mac = Some("52:54:00:00:00:01".into());
        let added = added_nics(&cur, &want);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].0, 0);
        assert_eq!(added[0].1.mac, None);
        // A NIC moved to another bridge: one added (live), one removed (restart), even though
        // the count is the same.
        let moved = classify(&cfg(64, &[], &["br0"]), &cfg(64, &[], &["br1"]));
        assert_eq!(
            moved,
            [
                ("NIC on br1".to_string(), ChangeClass::Live),
                ("remove the NIC on br0".to_string(), ChangeClass::Restart)
            ]
        );
    }

    #[test]
    fn memory_needs_a_restart_and_added_disks_and_nics_go_live() {
        let cur = cfg(64, &[("/dev/vg0/a", "vda")], &["br0"]);
        assert!(classify(&cur, &cur).is_empty());
        let c = classify(&cur, &cfg(96, &[("/dev/vg0/a", "vda")], &["br0"]));
        assert_eq!(
            c,
            vec![("memory 64 MiB → 96 MiB".into(), ChangeClass::Restart)]
        );
        let c = classify(
            &cur,
            &cfg(
                64,
                &[("/dev/vg0/a", "vda"), ("/dev/vg0/b", "vdb")],
                &["br0", "br1"],
            ),
        );
        assert_eq!(
            c,
            vec![
                ("disk /dev/vg0/b as vdb".into(), ChangeClass::Live),
                ("NIC on br1".into(), ChangeClass::Live)
            ]
        );
        let c = classify(&cur, &cfg(64, &[("/dev/vg0/c", "vda")], &["br0"]));
        assert_eq!(c[0].1, ChangeClass::Restart);
        assert_eq!(c.len(), 1);
    }
}

/// What discovery saw of the guests (`Facts.guests`). Reading it costs a fixed number of
/// processes whatever the number of guests: `virsh list --all` and `xl list -l`; definitions,
/// autostart links and xl configs are read as files (through `virsh` for a URI other than the
/// local system one). None of them when the host has no libvirt socket and runs on no Xen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestFacts {
    /// `None` when libvirt could not be asked (not installed, daemon not running).
    #[serde(default)]
    pub libvirt: Option<LibvirtFacts>,
    /// `None` when `xl` could not be asked.
    #[serde(default)]
    pub xen: Option<XenFacts>,
    /// xl config files found under /etc/xen (path → content); read even without a running Xen.
    #[serde(default)]
    pub xl_configs: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LibvirtFacts {
    pub uri: String,
    pub domains: std::collections::BTreeMap<String, SeenDomain>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenDomain {
    /// As `virsh list` says it: `running`, `shut off`, `paused`...
    pub state: String,
    pub autostart: bool,
    /// The persistent definition, when it could be read and parsed.
    pub definition: Option<super::libvirt::Domain>,
    /// Why it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SeenDomain {
    pub fn running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused" | "in shutdown")
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct XenFacts {
    /// Running domains (Domain-0 excluded) → domain id.
    pub running: std::collections::BTreeMap<String, u32>,
}

/// Read the guests of this host: libvirt through the local system URI (when its daemon
/// listens), Xen through `xl` (when the kernel runs on Xen).
pub fn discover(r: &dyn crate::runner::Runner) -> GuestFacts {
    let mut f = GuestFacts::default();
    let v = super::libvirt::Virsh::new(r, None);
    let listed = if libvirt_listening(r) {
        v.list().ok()
    } else {
        None
    };
    if let Some(listed) = listed {
        let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
        let autostart = v.autostart_marks(&names).unwrap_or_default();
        let defs = v.definitions(&names);
        let mut lf = LibvirtFacts {
            uri: v.uri.clone(),
            ..LibvirtFacts::default()
        };
        for l in listed {
            let (definition, error) = match defs.get(&l.name) {
                Some(Ok(d)) => (Some(d.clone()), None),
                Some(Err(e)) => (None, Some(e.clone())),
                None => (None, None),
            };
            lf.domains.insert(
                l.name.clone(),
                SeenDomain {
                    autostart: autostart.contains(&l.name),
                    state: l.state,
                    definition,
                    error,
                },
            );
        }
        f.libvirt = Some(lf);
    }
    let xl = super::xen::Xl::new(r, None);
    let doms = if xen_hypervisor(r) {
        xl.list().ok()
    } else {
        None
    };
    if let Some(doms) = doms {
        f.xen = Some(XenFacts {
            running: doms.into_iter().map(|d| (d.name, d.domid)).collect(),
        });
    }
    read_xl_configs(r, super::xen::DEFAULT_CONFIG_DIR, &mut f.xl_configs);
    f
}

/// Whether the system libvirt daemon can answer: its socket (`libvirt-sock` of the monolithic
/// libvirtd, `virtqemud-sock` of the modular daemons, both socket-activatable) is in
/// /run/libvirt. Without it `virsh -c qemu:///system` can only fail, so discovery does not
/// spend a process (and, on a busy host, most of a second) learning that.
fn libvirt_listening(r: &dyn crate::runner::Runner) -> bool {
    r.list("/run/libvirt")
        .iter()
        .any(|e| e == "libvirt-sock" || e == "virtqemud-sock")
}

/// Whether this kernel runs on Xen (`/sys/hypervisor/type` says `xen`): elsewhere `xl` can
/// only fail, so discovery does not run it.
fn xen_hypervisor(r: &dyn crate::runner::Runner) -> bool {
    r.read("/sys/hypervisor/type")
        .is_some_and(|t| t.trim() == "xen")
}

/// The monolithic libvirtd's socket (tests put it in a scripted host).
pub const LIBVIRT_SOCKET: &str = "/run/libvirt/libvirt-sock";

/// xl configs: `DIR/*.xl|*.cfg` and one level of subdirectories (/etc/xen/guest/). Called
/// for /etc/xen by discovery, and for the spec's `xen.config-dir` when it is elsewhere, so that
/// a plan compares with the files apply wrote (see [`read_spec_xl_configs`]).
pub fn read_xl_configs(
    r: &dyn crate::runner::Runner,
    dir: &str,
    into: &mut std::collections::BTreeMap<String, String>,
) {
    let dir = dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    let mut dirs = vec![dir.to_string()];
    for e in r.list(dir) {
        if !e.contains('.') {
            dirs.push(format!("{dir}/{e}"));
        }
    }
    for d in dirs {
        for e in r.list(&d) {
            if e.ends_with(".xl") || e.ends_with(".cfg") {
                let p = format!("{d}/{e}");
                if let Some(t) = r.read(&p) {
                    into.entry(p).or_insert(t);
                }
            }
        }
    }
}

/// The spec's `xen.config-dir`, read into the facts when discovery did not already cover it.
pub fn read_spec_xl_configs(
    r: &dyn crate::runner::Runner,
    spec: &crate::spec::Spec,
    f: &mut GuestFacts,
) {
    if let Some(d) = &spec.xen.config_dir {
        let dir = d.value.trim_end_matches('/');
        let def = super::xen::DEFAULT_CONFIG_DIR;
        // /etc/xen and its direct subdirectories are read already.
        let covered = dir == def
            || dir
                .strip_prefix(def)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| !rest.contains('/') && !rest.contains('.'));
        if !covered {
            read_xl_configs(r, dir, &mut f.xl_configs);
        }
    }
}

/// The guests discovery saw, in the spec language (for `hostform discover`): libvirt domains
/// with their definition. Disks that are not LVs and Xen domains (whose xl configs are not read
/// back yet) become notes.
pub fn to_spec_vms(
    f: &GuestFacts,
    notes: &mut Vec<String>,
) -> indexmap::IndexMap<crate::spec::types::Name, Vm> {
    use crate::spec::de::Sp;
    use crate::spec::types::{Hypervisor, VmDisk, VmNic, VmState};
    use crate::spec::units::{Mac, Size};
    let mut out = indexmap::IndexMap::new();
    if let Some(l) = &f.libvirt {
        for (name, d) in &l.domains {
            let Some(def) = &d.definition else {
                notes.push(format!(
                    "libvirt guest {name}: its definition could not be read ({})",
                    d.error.as_deref().unwrap_or("unknown error")
                ));
                continue;
            };
            let c = &def.config;
            let mut disks = Vec::new();
            for disk in &c.disks {
                let lv = disk
                    .source
                    .strip_prefix("/dev/")
                    .filter(|p| p.split('/').count() == 2 && !p.starts_with("mapper/"));
                match lv {
                    Some(lv) => disks.push(VmDisk {
                        lv: Sp::bare(lv.to_string()),
                        target: Sp::bare(disk.target.clone()),
                        readonly: disk.readonly,
                    }),
                    None => notes.push(format!(
                        "libvirt guest {name}: disk {} ({}) is not an LV as /dev/VG/LV; left out",
                        disk.target, disk.source
                    )),
                }
            }
            let nics = c
                .nics
                .iter()
                .map(|n| VmNic {
                    bridge: Sp::bare(n.bridge.clone()),
                    mac: n
                        .mac
                        .as_deref()
                        .and_then(|m| Mac::parse(m).ok())
                        .map(Sp::bare),
                })
                .collect();
            let running = d.running();
            out.insert(
                Sp::bare(name.clone()),
                Vm {
                    hypervisor: Some(Sp::bare(Hypervisor::Libvirt)),
                    memory: Some(Sp::bare(Size(c.memory_kib * 1024))),
                    vcpus: (c.vcpus != 1).then(|| Sp::bare(c.vcpus)),
                    boot: c.boot.clone(),
                    disks,
                    nics,
                    state: (!running).then_some(VmState::Stopped),
                    // The default is: autostart when running.
                    autostart: (d.autostart != running).then_some(d.autostart),
                    ..Vm::default()
                },
            );
        }
    }
    if let Some(x) = &f.xen {
        for n in x.running.keys() {
            notes.push(format!(
                "Xen guest {n} is running: xl configs are not read back into the spec yet; describe it under `vms` by hand"
            ));
        }
    }
    out
}

#[cfg(test)]
mod discover_tests {
    use super::*;
    use crate::runner::fixtures::{libvirt_etc, scripted, text};

    #[test]
    fn captured_guests_read_back_as_spec_guests() {
        let r =
            libvirt_etc(scripted("guests", &["list-one-running"])).with_file(LIBVIRT_SOCKET, "");
        let f = discover(&r);
        let mut notes = Vec::new();
        let vms = to_spec_vms(&f, &mut notes);
        assert!(notes.is_empty(), "{notes:?}");
        let y = serde_saphyr::to_string(&vms).unwrap();
        insta::assert_snapshot!("discovered_guests", y);
        // And what discovery prints plans nothing when it is taken as the spec.
        let g1 = vms.iter().find(|(k, _)| k.value == "g1").unwrap().1;
        assert_eq!(g1.state, None);
        assert_eq!(g1.autostart, None);
        let g2 = vms.iter().find(|(k, _)| k.value == "g2").unwrap().1;
        assert_eq!(g2.state, Some(crate::spec::types::VmState::Stopped));
    }

    #[test]
    fn no_libvirt_socket_no_virsh_process() {
        // Nothing scripted: a virsh run would fail the test as out of sequence.
        let r = crate::runner::ScriptedRunner::new()
            .with_file("/etc/libvirt/qemu/g1.xml", &text("guests/cat-etc-g1"));
        let f = discover(&r);
        assert_eq!(f.libvirt, None);
        assert!(
            r.asked
                .lock()
                .unwrap()
                .iter()
                .all(|a| !a.starts_with("virsh"))
        );
        // The modular daemons' socket counts as well.
        let r = libvirt_etc(scripted("guests", &["list-one-running"]))
            .with_file("/run/libvirt/virtqemud-sock", "");
        assert_eq!(discover(&r).libvirt.unwrap().domains.len(), 2);
    }

    #[test]
    fn xl_configs_are_read_from_the_spec_config_dir() {
        let r = scripted("guests", &["list-one-running", "list-autostart"])
            .with_file(LIBVIRT_SOCKET, "")
            .with_file("/etc/xen/a.xl", "name = \"a\"\n")
            .with_file("/etc/xen/guest/b.cfg", "name = \"b\"\n")
            .with_file("/srv/xen/c.xl", "name = \"c\"\n")
            .with_file("/srv/xen/deep/d.xl", "name = \"d\"\n");
        let mut f = discover(&r);
        let keys: Vec<&str> = f.xl_configs.keys().map(String::as_str).collect();
        assert_eq!(keys, ["/etc/xen/a.xl", "/etc/xen/guest/b.cfg"]);
        let spec = crate::spec::load_str("s.yaml", "host: lab\nxen:\n  config-dir: /srv/xen\n")
            .map_err(|e| format!("{:?}", e.diagnostics))
            .unwrap()
            .spec;
        read_spec_xl_configs(&r, &spec, &mut f);
        assert!(f.xl_configs.contains_key("/srv/xen/c.xl"));
        assert!(f.xl_configs.contains_key("/srv/xen/deep/d.xl"));
    }
}
