//! Network links as the kernel reports them: `ip -j -d link` (links, their kind, master,
//! MTU, state and the bridge attributes, STP included, from `linkinfo`), `ip -j addr`
//! (addresses) and `ip -j route` (routes, the default one included). Three processes, whatever
//! the number of links. The host's network configuration files (ifupdown, systemd-networkd)
//! are read as files, so the plan can show the diff of what it writes and refuse to overwrite
//! files hostform does not own.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::runner::Runner;
use crate::spec::de::Sp;
use crate::spec::types::{Bridge, NetManager};
use crate::spec::units::{Cidr, Ip};

/// One link (network interface).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    /// `linkinfo.info_kind`: `bridge`, `dummy`, `vlan`…; `None` for a physical NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The bridge (or bond) it is a port of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    pub mtu: u32,
    /// Administratively up (`UP` in flags).
    pub up: bool,
    /// `loopback`, `ether`…
    #[serde(default)]
    pub link_type: String,
    /// Static global (and site) addresses, in the kernel's order. Link-local addresses and
    /// dynamic ones (SLAAC, DHCP: they come back by themselves) are left out.
    #[serde(default)]
    pub addresses: Vec<Cidr>,
    /// Bridges only: spanning tree on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stp: Option<bool>,
    /// tun links only: `tap` or `tun` (`linkinfo.info_data.type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tun_type: Option<String>,
    /// The bus of the device behind the link (`parentbus`): `xen-backend` for a Xen guest's
    /// `vifD.N`, `pci`, `virtio`… for a NIC; `None` for software links.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parentbus: Option<String>,
}

impl Link {
    pub fn is_bridge(&self) -> bool {
        self.kind.as_deref() == Some("bridge")
    }
    /// A running guest's end of its network interface, as the hypervisor creates it: a tap
    /// device (libvirt's `vnetN`, Xen HVM's `vifD.N-emu`, any `tapN`) or a Xen backend vif.
    /// Told by what the kernel reports, not by the name.
    pub fn is_guest_nic(&self) -> bool {
        (self.kind.as_deref() == Some("tun") && self.tun_type.as_deref() == Some("tap"))
            || self.parentbus.as_deref() == Some("xen-backend")
    }
}

/// One route of the main table, as `ip -j route` prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Route {
    /// `default` or a prefix: `192.0.2.0/24`.
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// `kernel` for the routes the kernel adds with an address; absent means `boot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

impl Route {
    pub fn is_default(&self) -> bool {
        self.dst == "default"
    }
    /// Added by the kernel with an address; comes back with the address.
    pub fn is_kernel(&self) -> bool {
        self.protocol.as_deref() == Some("kernel")
    }
}

/// Where the host's network configuration is persisted.
pub const IFUPDOWN_MAIN: &str = "/etc/network/interfaces";
pub const IFUPDOWN_DIR: &str = "/etc/network/interfaces.d";
pub const NETWORKD_DIR: &str = "/etc/systemd/network";
/// Enabled networkd: the symlink `systemctl enable systemd-networkd` makes.
pub const NETWORKD_ENABLED: &str =
    "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service";

/// Everything discovery saw of the network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetFacts {
    /// Whether the links could be read at all (`ip` present and answering).
    #[serde(default)]
    pub read: bool,
    pub links: BTreeMap<String, Link>,
    /// The main table's IPv4 routes, in the kernel's order.
    pub routes: Vec<Route>,
    /// The persistence the host uses, detected: networkd when enabled, else ifupdown when
    /// /etc/network/interfaces exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<NetManager>,
    /// Network configuration files (path → content): /etc/network/interfaces, the files of
    /// /etc/network/interfaces.d and of /etc/systemd/network.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// The local address of the SSH session hostform runs in (`$SSH_CONNECTION`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_local: Option<String>,
    /// ifupdown can create bridges at boot: bridge-utils' hook or ifupdown2's bridge addon
    /// is installed ([`IFUPDOWN_BRIDGE_HOOKS`]).
    #[serde(default)]
    pub ifupdown_bridges: bool,
}

/// What lets ifupdown create a bridge from `bridge_ports`: bridge-utils' hook (classic
/// ifupdown) or ifupdown2's bridge addon.
pub const IFUPDOWN_BRIDGE_HOOKS: [&str; 2] = [
    "/etc/network/if-pre-up.d/bridge",
    "/usr/share/ifupdown2/addons/bridge.py",
];

#[derive(Deserialize)]
struct RawLinkInfo {
    #[serde(default)]
    info_kind: Option<String>,
    #[serde(default)]
    info_data: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawLink {
    ifname: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    master: Option<String>,
    #[serde(default)]
    link_type: String,
    #[serde(default)]
    linkinfo: Option<RawLinkInfo>,
    #[serde(default)]
    parentbus: Option<String>,
}

#[derive(Deserialize)]
struct RawAddr {
    #[serde(default)]
    family: String,
    #[serde(default)]
    local: Option<String>,
    #[serde(default)]
    prefixlen: u8,
    #[serde(default)]
    scope: String,
    /// Configured by the kernel (SLAAC) or a DHCP client, with a lifetime.
    #[serde(default)]
    dynamic: bool,
}

#[derive(Deserialize)]
struct RawAddrLink {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

/// Parse `ip -j -d link` (or `ip -j link`, which has no `linkinfo`) and `ip -j addr`.
pub fn parse_links(link_json: &str, addr_json: &str) -> Result<BTreeMap<String, Link>, String> {
    let raw: Vec<RawLink> = serde_json::from_str(link_json.trim())
        .map_err(|e| format!("cannot read `ip -j -d link` output: {e}"))?;
    let addrs: Vec<RawAddrLink> = if addr_json.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(addr_json.trim())
            .map_err(|e| format!("cannot read `ip -j addr` output: {e}"))?
    };
    let mut out = BTreeMap::new();
    for l in raw {
        let tun_type = l
            .linkinfo
            .as_ref()
            .filter(|i| i.info_kind.as_deref() == Some("tun"))
            .and_then(|i| i.info_data.as_ref())
            .and_then(|d| d.get("type"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let (kind, stp) = match &l.linkinfo {
            Some(i) => {
                let stp = if i.info_kind.as_deref() == Some("bridge") {
                    i.info_data
                        .as_ref()
                        .and_then(|d| d.get("stp_state"))
                        .and_then(|v| v.as_u64())
                        .map(|v| v != 0)
                } else {
                    None
                };
                (i.info_kind.clone(), stp)
            }
            None => (None, None),
        };
        out.insert(
            l.ifname.clone(),
            Link {
                up: l.flags.iter().any(|f| f == "UP"),
                name: l.ifname,
                kind,
                master: l.master,
                mtu: l.mtu,
                link_type: l.link_type,
                addresses: Vec::new(),
                stp,
                tun_type,
                parentbus: l.parentbus,
            },
        );
    }
    for a in addrs {
        let Some(link) = out.get_mut(&a.ifname) else {
            continue;
        };
        for ai in a.addr_info {
            if !matches!(ai.family.as_str(), "inet" | "inet6")
                || !matches!(ai.scope.as_str(), "global" | "site")
                || ai.dynamic
            {
                continue;
            }
            let Some(local) = ai.local else { continue };
            if let Ok(c) = Cidr::parse(&format!("{local}/{}", ai.prefixlen)) {
                link.addresses.push(c);
            }
        }
    }
    Ok(out)
}

/// Parse `ip -j route`.
pub fn parse_routes(json: &str) -> Result<Vec<Route>, String> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json.trim()).map_err(|e| format!("cannot read `ip -j route` output: {e}"))
}

impl NetFacts {
    /// The IPv4 default route, if any.
    pub fn default_route(&self) -> Option<&Route> {
        self.routes.iter().find(|r| r.is_default())
    }

    /// Links that carry the host's reachability: the default route's link, the link holding
    /// the default route's source address, and the link holding the SSH session's local
    /// address. Changing one of them can cut the operator off.
    pub fn carrier_links(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut push = |s: &str| {
            if !v.iter().any(|x| x == s) {
                v.push(s.to_string());
            }
        };
        if let Some(d) = self.default_route().and_then(|r| r.dev.as_deref()) {
            push(d);
        }
        let mut wanted: Vec<std::net::IpAddr> = Vec::new();
        if let Some(src) = self
            .default_route()
            .and_then(|r| r.prefsrc.as_deref())
            .and_then(|s| s.parse().ok())
        {
            wanted.push(src);
        }
        if let Some(ip) = self.ssh_local.as_deref().and_then(|s| s.parse().ok()) {
            wanted.push(ip);
        }
        for (name, l) in &self.links {
            if l.addresses.iter().any(|a| wanted.contains(&a.addr)) {
                push(name);
            }
        }
        v
    }

    /// Bridges as the spec describes them (for `hostform discover`).
    pub fn bridges(&self) -> IndexMap<Sp<String>, Bridge> {
        let mut out = IndexMap::new();
        let gw = self.default_route();
        for (name, l) in self.links.iter().filter(|(_, l)| l.is_bridge()) {
            let ports = self
                .links
                .values()
                .filter(|p| p.master.as_deref() == Some(name))
                // A running guest's tap or vif is the hypervisor's, gone when the guest stops.
                .filter(|p| !p.is_guest_nic())
                .map(|p| Sp::bare(p.name.clone()))
                .collect();
            let gateway = gw
                .filter(|r| r.dev.as_deref() == Some(name))
                .and_then(|r| r.gateway.as_deref())
                .and_then(|g| Ip::parse(g).ok())
                .map(Sp::bare);
            out.insert(
                Sp::bare(name.clone()),
                Bridge {
                    ports,
                    addresses: l.addresses.iter().map(|a| Sp::bare(*a)).collect(),
                    gateway,
                    stp: l.stp.unwrap_or(false),
                    mtu: (l.mtu != 1500).then_some(Sp::bare(l.mtu)),
                    ..Bridge::default()
                },
            );
        }
        out
    }
}

/// Read the network through the runner: three processes (`ip -j -d link`, `ip -j addr`,
/// `ip -j route`) and the configuration files. A host without `ip` reads as "nothing known"
/// (`read: false`): the planner then refuses to change the network rather than guess.
pub fn discover(r: &dyn Runner) -> Result<NetFacts, String> {
    let mut f = NetFacts::default();
    let link = match r.run(&["ip", "-j", "-d", "link"]) {
        Ok(o) if o.status == 0 => Some(o.stdout),
        _ => None,
    };
    if let Some(link) = link {
        let addr = r
            .check(&["ip", "-j", "addr"])
            .map_err(|e| format!("cannot read addresses: {e}"))?;
        let route = r
            .check(&["ip", "-j", "route"])
            .map_err(|e| format!("cannot read routes: {e}"))?;
        f.links = parse_links(&link, &addr.stdout)?;
        f.routes = parse_routes(&route.stdout)?;
        f.read = true;
    }
    if let Some(t) = r.read(IFUPDOWN_MAIN) {
        f.files.insert(IFUPDOWN_MAIN.into(), t);
    }
    for dir in [IFUPDOWN_DIR, NETWORKD_DIR] {
        for name in r.list(dir) {
            let p = format!("{dir}/{name}");
            if let Some(t) = r.read(&p) {
                f.files.insert(p, t);
            }
        }
    }
    f.manager = if r.read(NETWORKD_ENABLED).is_some() || r.resolve_link(NETWORKD_ENABLED).is_some()
    {
        Some(NetManager::Networkd)
    } else if f.files.contains_key(IFUPDOWN_MAIN) {
        Some(NetManager::Ifupdown)
    } else {
        None
    };
    f.ifupdown_bridges = IFUPDOWN_BRIDGE_HOOKS.iter().any(|p| r.read(p).is_some());
    f.ssh_local = std::env::var("SSH_CONNECTION")
        .ok()
        .and_then(|s| s.split_whitespace().nth(2).map(str::to_string));
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::runner as fx;

    fn c(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn a_bridge_with_its_ports_stp_mtu_address_and_gateway() {
        let r = fx("bridge");
        let f = discover(&r).expect("discovers");
        assert_eq!(
            r.asked.lock().unwrap().as_slice(),
            ["ip -j -d link", "ip -j addr", "ip -j route"],
            "three processes"
        );
        assert!(f.read);
        let br0 = &f.links["br0"];
        assert!(br0.is_bridge());
        assert_eq!(br0.stp, Some(true));
        assert_eq!(br0.mtu, 1400);
        assert!(br0.up);
        assert_eq!(br0.addresses, [c("192.0.2.10/24")]);
        let eth0 = &f.links["eth0"];
        assert_eq!(eth0.master.as_deref(), Some("br0"));
        assert_eq!(eth0.kind, None);
        assert!(
            eth0.addresses.is_empty(),
            "link-local addresses are left out"
        );
        assert_eq!(f.links["dummy0"].kind.as_deref(), Some("dummy"));
        assert_eq!(f.links["lo"].link_type, "loopback");
        assert!(f.links["lo"].addresses.is_empty(), "host scope is left out");
        let d = f.default_route().expect("default route");
        assert_eq!(d.gateway.as_deref(), Some("192.0.2.1"));
        assert_eq!(d.dev.as_deref(), Some("br0"));
        assert!(f.routes[1].is_kernel());
        assert_eq!(f.carrier_links(), ["br0"]);

        let b = f.bridges();
        let br = &b["br0"];
        let ports: Vec<&str> = br.ports.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(ports, ["dummy0", "eth0"]);
        assert_eq!(br.addresses[0].value, c("192.0.2.10/24"));
        assert_eq!(
            br.gateway.map(|g| g.value.to_string()).as_deref(),
            Some("192.0.2.1")
        );
        assert!(br.stp);
        assert_eq!(br.mtu.map(|m| m.value), Some(1400));
    }

    #[test]
    fn guest_taps_are_told_by_their_kind_and_left_out_of_discovered_bridges() {
        // Captured: br0 with eth0, two tap devices as libvirt opens them, and a veth.
        let f = discover(&fx("tapped")).unwrap();
        for n in ["vnet0", "vnet1"] {
            let l = &f.links[n];
            assert_eq!(l.kind.as_deref(), Some("tun"));
            assert_eq!(l.tun_type.as_deref(), Some("tap"));
            assert_eq!(l.master.as_deref(), Some("br0"));
            assert!(l.is_guest_nic(), "{l:?}");
        }
        for n in ["eth0", "veth0", "br0", "lo"] {
            assert!(!f.links[n].is_guest_nic(), "{n}");
        }
        let b = f.bridges();
        let ports: Vec<&str> = b["br0"].ports.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(ports, ["eth0", "veth0"]);
    }

    #[test]
    fn discovered_bridges_print_as_a_valid_spec() {
        let f = discover(&fx("bridge")).unwrap();
        let spec = crate::spec::types::Spec {
            host: Sp::bare("h".to_string()),
            bridges: f.bridges(),
            ..Default::default()
        };
        let yaml = serde_saphyr::to_string(&spec).unwrap();
        assert!(yaml.contains("192.0.2.10/24"), "{yaml}");
        if let Err(e) = crate::spec::load_str("discovered.yaml", &yaml) {
            panic!("{:?}\n{yaml}", e.diagnostics);
        }
    }

    #[test]
    fn an_addressed_nic_before_any_bridge() {
        let f = discover(&fx("addressed")).expect("discovers");
        assert!(f.bridges().is_empty());
        assert_eq!(f.links["eth0"].addresses, [c("192.0.2.10/24")]);
        assert!(f.links["eth0"].up);
        assert!(!f.links["dummy0"].up);
        assert_eq!(f.links["dummy0"].mtu, 1500);
        assert_eq!(f.carrier_links(), ["eth0"]);
        assert_eq!(
            f.default_route().and_then(|r| r.dev.as_deref()),
            Some("eth0")
        );
    }

    #[test]
    fn a_scenario_without_ip_output_is_unknown_not_empty() {
        // The storage scenarios captured no `ip -j -d link`: as on a host without iproute2.
        let f = discover(&fx("full")).expect("discovers");
        assert!(!f.read);
        assert!(f.links.is_empty());
    }

    #[test]
    fn plain_ip_link_output_parses_too() {
        let link = crate::runner::fixtures::text("blank/ip-link.json");
        let addr = crate::runner::fixtures::text("blank/ip-addr.json");
        let l = parse_links(&link, &addr).unwrap();
        assert_eq!(l["eth0"].kind, None);
        assert_eq!(
            parse_routes(&crate::runner::fixtures::text("blank/ip-route.json")).unwrap(),
            []
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_links("{", "").is_err());
        assert!(parse_links("[]", "nope").is_err());
        assert!(parse_routes("[{]").is_err());
        assert!(parse_links(r#"[{"ifname":"x"}]"#, "").is_ok());
    }

    #[test]
    fn the_ssh_session_address_marks_its_link() {
        let mut f = discover(&fx("bridge")).unwrap();
        f.routes.clear();
        assert!(f.carrier_links().is_empty());
        f.ssh_local = Some("192.0.2.10".into());
        assert_eq!(f.carrier_links(), ["br0"]);
    }
}
