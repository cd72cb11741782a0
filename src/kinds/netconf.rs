//! The host's persistent network configuration, so bridges survive a reboot: ifupdown's
//! `/etc/network/interfaces.d/hostform`, or systemd-networkd's `.netdev`/`.network` files in
//! `/etc/systemd/network`. Rendering is a pure function of the spec's bridges; the parsers read
//! back the subset hostform writes (tests compare the round trip with the spec).
//!
//! Files hostform owns start with [`HEADER`]; a file without it is never overwritten.

use indexmap::IndexMap;
use std::collections::BTreeMap;

use crate::spec::types::{Bridge, NetManager, Presence};
use crate::spec::units::{Cidr, Ip};

/// First line of every file hostform writes: the mark of ownership.
pub const HEADER: &str = "# Managed by hostform";

/// The ifupdown file hostform owns.
pub const IFUPDOWN_FILE: &str = "/etc/network/interfaces.d/hostform";

fn header(host: &str) -> String {
    format!(
        "{HEADER} from the spec of host `{host}`: changes here are overwritten by `hostform apply`.\n\
         # To take this file over, remove these two lines.\n"
    )
}

/// Whether a file's content marks it as hostform's.
pub fn owned(content: &str) -> bool {
    content.starts_with(HEADER)
}

fn netmask_v4(prefix: u8) -> String {
    let m: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    std::net::Ipv4Addr::from(m).to_string()
}

fn present(bridges: &IndexMap<crate::spec::types::Name, Bridge>) -> Vec<(&str, &Bridge)> {
    bridges
        .iter()
        .filter(|(_, b)| b.state == Presence::Present)
        .map(|(n, b)| (n.value.as_str(), b))
        .collect()
}

/// The files (path → content) that persist the spec's bridges with `manager`, relative to `/`.
/// `Auto` is not a manager here (the caller resolves it first).
pub fn render(
    host: &str,
    bridges: &IndexMap<crate::spec::types::Name, Bridge>,
    manager: NetManager,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let bs = present(bridges);
    match manager {
        NetManager::Auto => {}
        NetManager::Ifupdown => {
            if bridges.is_empty() {
                return out;
            }
            // Written even when every bridge is `absent`: the file must stop creating them.
            let mut s = header(host);
            for (name, b) in &bs {
                for p in &b.ports {
                    s.push_str(&format!("\nauto {p}\niface {p} inet manual\n"));
                }
                let ports = if b.ports.is_empty() {
                    "none".to_string()
                } else {
                    b.ports
                        .iter()
                        .map(|p| p.value.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let bridge_opts = |s: &mut String| {
                    s.push_str(&format!("    bridge_ports {ports}\n"));
                    s.push_str(&format!(
                        "    bridge_stp {}\n",
                        if b.stp { "on" } else { "off" }
                    ));
                    if let Some(m) = b.mtu {
                        s.push_str(&format!("    mtu {}\n", m.value));
                    }
                };
                let v4: Vec<Cidr> = b
                    .addresses
                    .iter()
                    .map(|a| a.value)
                    .filter(|a| a.addr.is_ipv4())
                    .collect();
                let v6: Vec<Cidr> = b
                    .addresses
                    .iter()
                    .map(|a| a.value)
                    .filter(|a| a.addr.is_ipv6())
                    .collect();
                s.push_str(&format!("\nauto {name}\n"));
                if v4.is_empty() {
                    s.push_str(&format!("iface {name} inet manual\n"));
                    bridge_opts(&mut s);
                }
                for (i, a) in v4.iter().enumerate() {
                    s.push_str(&format!("iface {name} inet static\n"));
                    if i == 0 {
                        bridge_opts(&mut s);
                    }
                    s.push_str(&format!("    address {}\n", a.addr));
                    s.push_str(&format!("    netmask {}\n", netmask_v4(a.prefix)));
                    if i == 0
                        && let Some(g) = b.gateway.filter(|g| g.value.0.is_ipv4())
                    {
                        s.push_str(&format!("    gateway {}\n", g.value));
                    }
                }
                for (i, a) in v6.iter().enumerate() {
                    s.push_str(&format!("iface {name} inet6 static\n"));
                    s.push_str(&format!("    address {}\n", a.addr));
                    s.push_str(&format!("    netmask {}\n", a.prefix));
                    if i == 0
                        && let Some(g) = b.gateway.filter(|g| g.value.0.is_ipv6())
                    {
                        s.push_str(&format!("    gateway {}\n", g.value));
                    }
                }
            }
            out.insert(IFUPDOWN_FILE.to_string(), s);
        }
        NetManager::Networkd => {
            for (name, b) in &bs {
                let mut nd = header(host);
                nd.push_str(&format!("\n[NetDev]\nName={name}\nKind=bridge\n"));
                if let Some(m) = b.mtu {
                    nd.push_str(&format!("MTUBytes={}\n", m.value));
                }
                nd.push_str(&format!(
                    "\n[Bridge]\nSTP={}\n",
                    if b.stp { "yes" } else { "no" }
                ));
                out.insert(networkd_path(name, "netdev"), nd);
                let mut nw = header(host);
                nw.push_str(&format!("\n[Match]\nName={name}\n\n[Network]\n"));
                for a in &b.addresses {
                    nw.push_str(&format!("Address={}\n", a.value));
                }
                if let Some(g) = b.gateway {
                    nw.push_str(&format!("Gateway={}\n", g.value));
                }
                nw.push_str("ConfigureWithoutCarrier=yes\n");
                out.insert(networkd_path(name, "network"), nw);
                for p in &b.ports {
                    let mut pn = header(host);
                    pn.push_str(&format!(
                        "\n[Match]\nName={p}\n\n[Network]\nBridge={name}\n"
                    ));
                    out.insert(networkd_path(&p.value, "network"), pn);
                }
            }
        }
    }
    out
}

/// Where hostform writes a networkd file for `iface`: `/etc/systemd/network/10-hostform-br0.netdev`.
pub fn networkd_path(iface: &str, ext: &str) -> String {
    format!("{}/10-hostform-{iface}.{ext}", super::net::NETWORKD_DIR)
}

/// Whether a networkd file name is one hostform writes.
pub fn is_networkd_name(path: &str) -> bool {
    path.rsplit('/')
        .next()
        .is_some_and(|n| n.starts_with("10-hostform-"))
}

/// A bridge as read back from configuration files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedBridge {
    pub ports: Vec<String>,
    pub addresses: Vec<Cidr>,
    pub gateway: Option<Ip>,
    pub stp: bool,
    pub mtu: Option<u32>,
}

impl ParsedBridge {
    /// The spec's view of a bridge, for comparisons.
    pub fn of(b: &Bridge) -> ParsedBridge {
        ParsedBridge {
            ports: b.ports.iter().map(|p| p.value.clone()).collect(),
            addresses: b.addresses.iter().map(|a| a.value).collect(),
            gateway: b.gateway.map(|g| g.value),
            stp: b.stp,
            mtu: b.mtu.map(|m| m.value),
        }
    }
}

fn prefix_of_netmask(m: &str) -> Option<u8> {
    if let Ok(p) = m.parse::<u8>() {
        return Some(p);
    }
    let a: std::net::Ipv4Addr = m.parse().ok()?;
    let bits = u32::from(a);
    (bits.leading_ones() + bits.trailing_zeros() == 32).then_some(bits.leading_ones() as u8)
}

/// One `iface` stanza of an ifupdown file: (name, family, method, options in order).
pub type Stanza = (String, String, String, Vec<(String, String)>);

/// The `iface` stanzas of an ifupdown file.
pub fn ifupdown_stanzas(text: &str) -> Vec<Stanza> {
    let mut out: Vec<Stanza> = Vec::new();
    let mut in_iface = false;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut w = t.split_whitespace();
        let key = w.next().unwrap_or("");
        match key {
            "iface" => {
                let name = w.next().unwrap_or("").to_string();
                let fam = w.next().unwrap_or("").to_string();
                let method = w.next().unwrap_or("").to_string();
                out.push((name, fam, method, Vec::new()));
                in_iface = true;
            }
            "auto" | "allow-hotplug" | "source" | "source-directory" | "mapping"
            | "no-auto-down" | "no-scripts" => in_iface = false,
            _ if key.starts_with("allow-") => in_iface = false,
            _ if in_iface => {
                if let Some(last) = out.last_mut() {
                    let rest: Vec<&str> = w.collect();
                    last.3.push((key.to_string(), rest.join(" ")));
                }
            }
            _ => {}
        }
    }
    out
}

/// Read back the bridges of an ifupdown file (the subset hostform writes).
pub fn parse_ifupdown(text: &str) -> Result<BTreeMap<String, ParsedBridge>, String> {
    let mut out: BTreeMap<String, ParsedBridge> = BTreeMap::new();
    for (name, fam, _method, opts) in ifupdown_stanzas(text) {
        let is_bridge = opts.iter().any(|(k, _)| k == "bridge_ports");
        if !is_bridge && !out.contains_key(&name) {
            continue;
        }
        let b = out.entry(name.clone()).or_default();
        let mut addr: Option<std::net::IpAddr> = None;
        let mut prefix: Option<u8> = None;
        for (k, v) in &opts {
            match k.as_str() {
                "bridge_ports" => {
                    b.ports = v
                        .split_whitespace()
                        .filter(|p| *p != "none")
                        .map(str::to_string)
                        .collect()
                }
                "bridge_stp" => b.stp = matches!(v.as_str(), "on" | "yes"),
                "mtu" => b.mtu = Some(v.parse().map_err(|_| format!("{name}: bad mtu `{v}`"))?),
                "address" => {
                    if let Ok(c) = Cidr::parse(v) {
                        addr = Some(c.addr);
                        prefix = Some(c.prefix);
                    } else {
                        addr = Some(
                            v.parse()
                                .map_err(|_| format!("{name}: bad address `{v}`"))?,
                        );
                    }
                }
                "netmask" => {
                    prefix = Some(
                        prefix_of_netmask(v).ok_or_else(|| format!("{name}: bad netmask `{v}`"))?,
                    )
                }
                "gateway" => {
                    b.gateway = Some(Ip::parse(v).map_err(|_| format!("{name}: bad gateway"))?)
                }
                _ => {}
            }
        }
        if let Some(a) = addr {
            let p = prefix.ok_or_else(|| format!("{name}: address without netmask"))?;
            let _ = &fam;
            b.addresses.push(Cidr { addr: a, prefix: p });
        }
    }
    Ok(out)
}

fn ini(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
        } else if let Some((k, v)) = t.split_once('=') {
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The `Name=` of a networkd file's `[Match]` (or `[NetDev]`) section.
pub fn networkd_names(text: &str) -> Vec<String> {
    ini(text)
        .into_iter()
        .filter(|(s, k, _)| (s == "Match" || s == "NetDev") && k == "Name")
        .flat_map(|(_, _, v)| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// Read back the bridges of networkd files (path → content; the subset hostform writes).
pub fn parse_networkd(
    files: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, ParsedBridge>, String> {
    let mut out: BTreeMap<String, ParsedBridge> = BTreeMap::new();
    for (path, text) in files.iter().filter(|(p, _)| p.ends_with(".netdev")) {
        let kv = ini(text);
        if !kv
            .iter()
            .any(|(s, k, v)| s == "NetDev" && k == "Kind" && v == "bridge")
        {
            continue;
        }
        let name = kv
            .iter()
            .find(|(s, k, _)| s == "NetDev" && k == "Name")
            .map(|(_, _, v)| v.clone())
            .ok_or_else(|| format!("{path}: no Name="))?;
        let b = out.entry(name).or_default();
        for (s, k, v) in &kv {
            match (s.as_str(), k.as_str()) {
                ("NetDev", "MTUBytes") => {
                    b.mtu = Some(v.parse().map_err(|_| format!("{path}: bad MTUBytes"))?)
                }
                ("Bridge", "STP") => b.stp = matches!(v.as_str(), "yes" | "true" | "1" | "on"),
                _ => {}
            }
        }
    }
    for (path, text) in files.iter().filter(|(p, _)| p.ends_with(".network")) {
        let kv = ini(text);
        let names = networkd_names(text);
        let Some(name) = names.first() else { continue };
        if let Some((_, _, br)) = kv.iter().find(|(s, k, _)| s == "Network" && k == "Bridge") {
            if let Some(b) = out.get_mut(br) {
                b.ports.push(name.clone());
            }
            continue;
        }
        let Some(b) = out.get_mut(name) else { continue };
        for (s, k, v) in &kv {
            match (s.as_str(), k.as_str()) {
                ("Network", "Address") => b
                    .addresses
                    .push(Cidr::parse(v).map_err(|_| format!("{path}: bad Address"))?),
                ("Network", "Gateway") => {
                    b.gateway = Some(Ip::parse(v).map_err(|_| format!("{path}: bad Gateway"))?)
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> crate::spec::types::Spec {
        match crate::spec::load_str("t.yaml", yaml) {
            Ok(l) => l.spec,
            Err(e) => panic!("{:?}", e.diagnostics),
        }
    }

    const SPEC: &str = "host: dom0
bridges:
  br0:
    ports: [eth0, eth1]
    addresses: [192.0.2.10/24, 198.51.100.7/25, 2001:db8::10/64]
    gateway: 192.0.2.1
    stp: true
    mtu: 9000
  br1: { ports: [eth2] }
  old: { ports: [eth3], state: absent }
";

    fn expected(s: &crate::spec::types::Spec) -> BTreeMap<String, ParsedBridge> {
        s.bridges
            .iter()
            .filter(|(_, b)| b.state == Presence::Present)
            .map(|(n, b)| (n.value.clone(), ParsedBridge::of(b)))
            .collect()
    }

    #[test]
    fn ifupdown_in_the_domain_form_and_back() {
        let s = spec(SPEC);
        let files = render("dom0", &s.bridges, NetManager::Ifupdown);
        assert_eq!(files.keys().collect::<Vec<_>>(), [IFUPDOWN_FILE]);
        let text = &files[IFUPDOWN_FILE];
        assert!(owned(text));
        assert!(
            text.contains(
                "auto br0\niface br0 inet static\n    bridge_ports eth0 eth1\n    bridge_stp on\n    mtu 9000\n    address 192.0.2.10\n    netmask 255.255.255.0\n    gateway 192.0.2.1\n"
            ),
            "{text}"
        );
        assert!(text.contains("iface eth0 inet manual"), "{text}");
        assert!(
            text.contains("iface br1 inet manual\n    bridge_ports eth2\n"),
            "{text}"
        );
        assert!(
            !text.contains("old"),
            "an absent bridge is not persisted: {text}"
        );
        assert_eq!(parse_ifupdown(text).unwrap(), expected(&s));
    }

    #[test]
    fn networkd_files_and_back() {
        let s = spec(SPEC);
        let files = render("dom0", &s.bridges, NetManager::Networkd);
        assert_eq!(
            files.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "/etc/systemd/network/10-hostform-br0.netdev",
                "/etc/systemd/network/10-hostform-br0.network",
                "/etc/systemd/network/10-hostform-br1.netdev",
                "/etc/systemd/network/10-hostform-br1.network",
                "/etc/systemd/network/10-hostform-eth0.network",
                "/etc/systemd/network/10-hostform-eth1.network",
                "/etc/systemd/network/10-hostform-eth2.network",
            ]
        );
        assert!(files.values().all(|t| owned(t)));
        assert_eq!(parse_networkd(&files).unwrap(), expected(&s));
        assert_eq!(
            networkd_names(&files["/etc/systemd/network/10-hostform-eth1.network"]),
            ["eth1"]
        );
    }

    #[test]
    fn rendering_is_deterministic_and_auto_renders_nothing() {
        let s = spec(SPEC);
        assert_eq!(
            render("dom0", &s.bridges, NetManager::Ifupdown),
            render("dom0", &s.bridges, NetManager::Ifupdown)
        );
        assert!(render("dom0", &s.bridges, NetManager::Auto).is_empty());
        // Every bridge absent: the file is still written, so it stops creating them at boot.
        let gone = spec("host: h\nbridges:\n  br0: { ports: [eth0], state: absent }\n");
        let f = render("h", &gone.bridges, NetManager::Ifupdown);
        assert!(parse_ifupdown(&f[IFUPDOWN_FILE]).unwrap().is_empty());
        assert!(owned(&f[IFUPDOWN_FILE]));
    }

    #[test]
    fn operator_files_are_read_as_stanzas() {
        let t = "# The loopback\nauto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\nallow-hotplug eth0\niface eth0 inet dhcp\n    hostname x\n";
        let st = ifupdown_stanzas(t);
        assert_eq!(st.len(), 2);
        assert_eq!(st[1].0, "eth0");
        assert_eq!(st[1].2, "dhcp");
        assert_eq!(st[1].3, [("hostname".to_string(), "x".to_string())]);
        assert!(parse_ifupdown(t).unwrap().is_empty());
        assert_eq!(prefix_of_netmask("255.255.255.128"), Some(25));
        assert_eq!(prefix_of_netmask("255.0.255.0"), None);
    }
}
