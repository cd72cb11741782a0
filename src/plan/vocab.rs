//! The plan's vocabulary: what an operation changes ([`Address`]), its identity ([`OpId`]:
//! stage, address, verb) and what running it does ([`Effect`]). Rooms build and refer to
//! operations only through these types; this module alone turns them into the strings of the
//! plan format (version 1) and back.
//!
//! An id reads `STAGE:ADDRESS:VERB`: `50:lv:vg0/dom0_root:create`, `09:disk:a:wipe:vdb1`,
//! `63:br0:addr:192.0.2.10/24`, `66:file:/etc/network/interfaces.d/br0`. The stage (two digits)
//! orders ties between independent operations; dependencies order the rest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spec::types::{Hypervisor, OnTimeout};

/// The resource an operation changes, by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Address {
    /// A spec disk: `disk:a`.
    Disk(String),
    /// An md array: `array:md0`.
    Array(String),
    /// A physical volume, by its device (a spec reference or a kernel name): `pv:a/pv`.
    Pv(String),
    /// A volume group: `vg:vg0`.
    Vg(String),
    /// A logical volume: `lv:vg0/web_root`.
    Lv { vg: String, lv: String },
    /// An LVM snapshot: `snapshot:vg0/web_root_snap`.
    Snapshot { vg: String, name: String },
    /// A thin pool: `thin-pool:vg0/pool`.
    ThinPool { vg: String, pool: String },
    /// A network link (a bridge or a port): its name alone, as plan format 1 writes it.
    Link(String),
    /// A route: `route:default`.
    Route(String),
    /// A configuration file: `file:/etc/network/interfaces.d/br0`.
    File(String),
    /// A guest: `guest:web`.
    Guest(String),
}

impl Address {
    pub fn lv(vg: &str, lv: &str) -> Self {
        Address::Lv {
            vg: vg.into(),
            lv: lv.into(),
        }
    }

    /// `VG/LV` for an LV key: `Address::lv_key("vg0/web")`.
    pub fn lv_key(key: &str) -> Self {
        let (vg, lv) = key.split_once('/').unwrap_or(("", key));
        Address::lv(vg, lv)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Disk(n) => write!(f, "disk:{n}"),
            Address::Array(n) => write!(f, "array:{n}"),
            Address::Pv(n) => write!(f, "pv:{n}"),
            Address::Vg(n) => write!(f, "vg:{n}"),
            Address::Lv { vg, lv } => write!(f, "lv:{vg}/{lv}"),
            Address::Snapshot { vg, name } => write!(f, "snapshot:{vg}/{name}"),
            Address::ThinPool { vg, pool } => write!(f, "thin-pool:{vg}/{pool}"),
            Address::Link(n) => f.write_str(n),
            Address::Route(r) => write!(f, "route:{r}"),
            Address::File(p) => write!(f, "file:{p}"),
            Address::Guest(n) => write!(f, "guest:{n}"),
        }
    }
}

/// What an operation does to its address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Create,
    Remove,
    /// Remove one member (an array's faulty member): `remove:vdb2`.
    RemoveMember(String),
    Extend,
    /// Grow a thin pool's metadata: `metadata`.
    Metadata,
    Reduce,
    Protect,
    Permission,
    Activate,
    Mkfs,
    /// Erase signatures; of one partition of a disk, or one member of an array: `wipe:vdb1`.
    Wipe(Option<String>),
    Image,
    /// Tag an LV as holding its image: `imaged`.
    Imaged,
    Append,
    Partx,
    Table,
    /// Delete a link, or a disk's partition by its spec name: `delete:raid`.
    Delete(Option<String>),
    Assemble,
    /// Add a member (a spec reference): `add:b/raid`.
    Add(String),
    Stop,
    ZeroSuperblock,
    Stp,
    Port(String),
    Mtu,
    Addr(String),
    Up,
    Del(String),
    Define,
    Config,
    /// Attach a device to a running guest: a disk by its target (`attach:xvdb`), a NIC by
    /// [`Verb::attach_nic`] (`attach:nic0-br0`).
    Attach(String),
    Autostart,
    /// Merge a snapshot back into its origin (the origin LV's id).
    Merge,
    Lock(String),
    /// Moving a guest to another host of its cluster (`runs-on`): turn this host's exclusive
    /// lock on an LV into a shared one (`share:VG/LV`), take it shared on the other host
    /// (`peer-share:VG/LV`), migrate (`migrate:HOST`), deactivate it here
    /// (`release:VG/LV`), take it exclusively there (`peer-lock:VG/LV`), and there start the
    /// guest (`peer-start`, a cold move) and mark it to start with the host
    /// (`peer-autostart`).
    Share(String),
    PeerShare(String),
    Migrate(String),
    Release(String),
    PeerLock(String),
    PeerStart,
    PeerAutostart,
    /// Tag the shared VG: the host is drained (`drain:HOST`), or no more (`undrain:HOST`).
    Drain(String),
    Undrain(String),
    /// Wait until sanlock calls a host that stopped renewing its lease dead, so its leases
    /// can be taken: `await-dead:HOST`.
    AwaitDead(String),
    Start,
    Destroy,
    Undefine,
    /// Install the boot loader on a disk (`grub-install`): `bootloader`.
    Bootloader,
    /// Mount a filesystem: `mount`.
    Mount,
    /// Write a file: plan format 1 writes no verb for it.
    Write,
    /// Set the default route: plan format 1 writes no verb for it.
    Set,
}

impl Verb {
    /// Attach the spec's NIC number `index` (its place in the guest's `nics`) on `bridge`:
    /// unique even when two NICs go on one bridge.
    pub fn attach_nic(index: usize, bridge: &str) -> Verb {
        Verb::Attach(format!("nic{index}-{bridge}"))
    }

    fn word(&self) -> (&'static str, Option<&str>) {
        match self {
            Verb::Create => ("create", None),
            Verb::Remove => ("remove", None),
            Verb::RemoveMember(m) => ("remove", Some(m)),
            Verb::Extend => ("extend", None),
            Verb::Metadata => ("metadata", None),
            Verb::Reduce => ("reduce", None),
            Verb::Protect => ("protect", None),
            Verb::Permission => ("permission", None),
            Verb::Activate => ("activate", None),
            Verb::Mkfs => ("mkfs", None),
            Verb::Wipe(w) => ("wipe", w.as_deref()),
            Verb::Image => ("image", None),
            Verb::Imaged => ("imaged", None),
            Verb::Append => ("append", None),
            Verb::Partx => ("partx", None),
            Verb::Table => ("table", None),
            Verb::Delete(p) => ("delete", p.as_deref()),
            Verb::Assemble => ("assemble", None),
            Verb::Add(m) => ("add", Some(m)),
            Verb::Stop => ("stop", None),
            Verb::ZeroSuperblock => ("zero-superblock", None),
            Verb::Stp => ("stp", None),
            Verb::Port(p) => ("port", Some(p)),
            Verb::Mtu => ("mtu", None),
            Verb::Addr(a) => ("addr", Some(a)),
            Verb::Up => ("up", None),
            Verb::Del(a) => ("del", Some(a)),
            Verb::Define => ("define", None),
            Verb::Config => ("config", None),
            Verb::Attach(t) => ("attach", Some(t)),
            Verb::Autostart => ("autostart", None),
            Verb::Merge => ("merge", None),
            Verb::Lock(l) => ("lock", Some(l)),
            Verb::Share(l) => ("share", Some(l)),
            Verb::PeerShare(l) => ("peer-share", Some(l)),
            Verb::Migrate(h) => ("migrate", Some(h)),
            Verb::Release(l) => ("release", Some(l)),
            Verb::PeerLock(l) => ("peer-lock", Some(l)),
            Verb::PeerStart => ("peer-start", None),
            Verb::PeerAutostart => ("peer-autostart", None),
            Verb::Drain(h) => ("drain", Some(h)),
            Verb::Undrain(h) => ("undrain", Some(h)),
            Verb::AwaitDead(h) => ("await-dead", Some(h)),
            Verb::Start => ("start", None),
            Verb::Destroy => ("destroy", None),
            Verb::Undefine => ("undefine", None),
            Verb::Bootloader => ("bootloader", None),
            Verb::Mount => ("mount", None),
            Verb::Write | Verb::Set => ("", None),
        }
    }

    fn parse(word: &str, arg: Option<&str>) -> Option<Verb> {
        let a = || arg.map(str::to_string);
        Some(match (word, arg.is_some()) {
            ("create", false) => Verb::Create,
            ("remove", false) => Verb::Remove,
            ("remove", true) => Verb::RemoveMember(a()?),
            ("extend", false) => Verb::Extend,
            ("metadata", false) => Verb::Metadata,
            ("reduce", false) => Verb::Reduce,
            ("protect", false) => Verb::Protect,
            ("permission", false) => Verb::Permission,
            ("activate", false) => Verb::Activate,
            ("mkfs", false) => Verb::Mkfs,
            ("wipe", _) => Verb::Wipe(a()),
            ("image", false) => Verb::Image,
            ("imaged", false) => Verb::Imaged,
            ("append", false) => Verb::Append,
            ("partx", false) => Verb::Partx,
            ("table", false) => Verb::Table,
            ("delete", _) => Verb::Delete(a()),
            ("assemble", false) => Verb::Assemble,
            ("add", true) => Verb::Add(a()?),
            ("stop", false) => Verb::Stop,
            ("zero-superblock", false) => Verb::ZeroSuperblock,
            ("stp", false) => Verb::Stp,
            ("port", true) => Verb::Port(a()?),
            ("mtu", false) => Verb::Mtu,
            ("addr", true) => Verb::Addr(a()?),
            ("up", false) => Verb::Up,
            ("del", true) => Verb::Del(a()?),
            ("define", false) => Verb::Define,
            ("config", false) => Verb::Config,
            ("attach", true) => Verb::Attach(a()?),
            ("autostart", false) => Verb::Autostart,
            ("merge", false) => Verb::Merge,
            ("lock", true) => Verb::Lock(a()?),
            ("share", true) => Verb::Share(a()?),
            ("peer-share", true) => Verb::PeerShare(a()?),
            ("migrate", true) => Verb::Migrate(a()?),
            ("release", true) => Verb::Release(a()?),
            ("peer-lock", true) => Verb::PeerLock(a()?),
            ("peer-start", false) => Verb::PeerStart,
            ("peer-autostart", false) => Verb::PeerAutostart,
            ("drain", true) => Verb::Drain(a()?),
            ("undrain", true) => Verb::Undrain(a()?),
            ("await-dead", true) => Verb::AwaitDead(a()?),
            ("start", false) => Verb::Start,
            ("destroy", false) => Verb::Destroy,
            ("undefine", false) => Verb::Undefine,
            ("bootloader", false) => Verb::Bootloader,
            ("mount", false) => Verb::Mount,
            _ => return None,
        })
    }
}

/// An operation's identity: unique in a plan, the tie-breaker of its order, and what other
/// operations name when they wait for it. Compared, ordered and hashed by its text.
#[derive(Debug, Clone)]
pub struct OpId {
    stage: u8,
    address: Address,
    verb: Verb,
    text: String,
}

impl OpId {
    pub fn new(stage: u8, address: Address, verb: Verb) -> Self {
        let text = render(stage, &address, &verb);
        OpId {
            stage,
            address,
            verb,
            text,
        }
    }
    pub fn stage(&self) -> u8 {
        self.stage
    }
    pub fn address(&self) -> &Address {
        &self.address
    }
    pub fn verb(&self) -> &Verb {
        &self.verb
    }
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn render(stage: u8, address: &Address, verb: &Verb) -> String {
    let (word, arg) = verb.word();
    let mut s = format!("{stage:02}:{address}");
    if !word.is_empty() {
        s.push(':');
        s.push_str(word);
    }
    if let Some(a) = arg {
        s.push(':');
        s.push_str(a);
    }
    s
}

impl PartialEq<str> for OpId {
    fn eq(&self, other: &str) -> bool {
        self.text == other
    }
}
impl PartialEq<&str> for OpId {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}
impl PartialEq for OpId {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for OpId {}
impl PartialOrd for OpId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OpId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}
impl std::hash::Hash for OpId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for OpId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("not an operation id: {s:?}");
        let (stage, rest) = s.split_once(':').ok_or_else(bad)?;
        if stage.len() != 2 || !stage.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let stage: u8 = stage.parse().map_err(|_| bad())?;
        let (address, verb) = parse_rest(rest).ok_or_else(bad)?;
        let id = OpId::new(stage, address, verb);
        // Only the canonical spelling of an id is one.
        if id.text != s {
            return Err(bad());
        }
        Ok(id)
    }
}

fn parse_rest(rest: &str) -> Option<(Address, Verb)> {
    if let Some(path) = rest.strip_prefix("file:") {
        return Some((Address::File(path.to_string()), Verb::Write));
    }
    if let Some(route) = rest.strip_prefix("route:").filter(|r| !r.contains(':')) {
        return Some((Address::Route(route.to_string()), Verb::Set));
    }
    // A link may be named like a kind (a bridge called `disk`): read as a link, then.
    parse_kind(rest).or_else(|| parse_named(None, rest))
}

fn parse_kind(rest: &str) -> Option<(Address, Verb)> {
    let (kind, rest) = match rest.split_once(':') {
        Some((k, r))
            if [
                "disk",
                "array",
                "pv",
                "vg",
                "lv",
                "snapshot",
                "thin-pool",
                "route",
                "guest",
            ]
            .contains(&k) =>
        {
            (Some(k), r)
        }
        _ => return None,
    };
    parse_named(kind, rest)
}

fn parse_named(kind: Option<&str>, rest: &str) -> Option<(Address, Verb)> {
    let (name, verb) = rest.split_once(':')?;
    let (word, arg) = match verb.split_once(':') {
        Some((w, a)) => (w, Some(a)),
        None => (verb, None),
    };
    let verb = Verb::parse(word, arg)?;
    let pair = || {
        name.split_once('/')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    };
    let address = match kind {
        Some("disk") => Address::Disk(name.into()),
        Some("array") => Address::Array(name.into()),
        Some("pv") => Address::Pv(name.into()),
        Some("vg") => Address::Vg(name.into()),
        Some("lv") => {
            let (vg, lv) = pair()?;
            Address::Lv { vg, lv }
        }
        Some("snapshot") => {
            let (vg, name) = pair()?;
            Address::Snapshot { vg, name }
        }
        Some("thin-pool") => {
            let (vg, pool) = pair()?;
            Address::ThinPool { vg, pool }
        }
        Some("guest") => Address::Guest(name.into()),
        Some("route") => Address::Route(name.into()),
        _ => Address::Link(name.into()),
    };
    Some((address, verb))
}

impl Serialize for OpId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for OpId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Wait, in-process, until this host's sanlock calls another host of a lockspace dead (its
/// leases then free to take), polling `sanlock client gets -h 1`; fail after `timeout_s`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDeath {
    /// The lockspace: `lvm_VG`.
    pub lockspace: String,
    pub host_id: u32,
    pub timeout_s: u64,
}

/// How plan format 1 writes a wait for a host's death in `argv`: a first word no program has.
pub const AWAIT_DEAD_WORD: &str = "hostform-await-dead";

impl HostDeath {
    /// `hostform-await-dead LOCKSPACE HOST_ID TIMEOUT_S`.
    pub fn argv(&self) -> Vec<String> {
        vec![
            AWAIT_DEAD_WORD.to_string(),
            self.lockspace.clone(),
            self.host_id.to_string(),
            self.timeout_s.to_string(),
        ]
    }

    fn from_argv(argv: &[String]) -> Result<Self, String> {
        let bad = || format!("malformed wait for a host's death: {}", argv.join(" "));
        let [_, lockspace, id, timeout] = argv else {
            return Err(bad());
        };
        if !lockspace.starts_with("lvm_") {
            return Err(bad());
        }
        Ok(HostDeath {
            lockspace: lockspace.clone(),
            host_id: id.parse().map_err(|_| bad())?,
            timeout_s: timeout.parse().map_err(|_| bad())?,
        })
    }
}

/// Stop one guest: ask it to shut down, wait up to `timeout_s`, then `on_timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestStop {
    pub hypervisor: Hypervisor,
    /// The libvirt URI, or the Xen configuration directory.
    pub location: String,
    pub name: String,
    pub timeout_s: u64,
    pub on_timeout: OnTimeout,
}

/// How plan format 1 writes a guest's stop in `argv`: a first word no program has.
pub const STOP_GUEST_WORD: &str = "hostform-stop-guest";

impl GuestStop {
    /// The argv plan format 1 shows:
    /// `hostform-stop-guest HYPERVISOR URI|CONFIG_DIR NAME TIMEOUT_S POLICY`.
    pub fn argv(&self) -> Vec<String> {
        vec![
            STOP_GUEST_WORD.to_string(),
            match self.hypervisor {
                Hypervisor::Xen => "xen",
                Hypervisor::Libvirt => "libvirt",
            }
            .to_string(),
            self.location.clone(),
            self.name.clone(),
            self.timeout_s.to_string(),
            match self.on_timeout {
                OnTimeout::Destroy => "destroy",
                OnTimeout::Wait => "wait",
                OnTimeout::Fail => "fail",
            }
            .to_string(),
        ]
    }

    fn from_argv(argv: &[String]) -> Result<Self, String> {
        let bad = || format!("malformed guest stop: {}", argv.join(" "));
        let [_, stack, location, name, timeout, policy] = argv else {
            return Err(bad());
        };
        Ok(GuestStop {
            hypervisor: match stack.as_str() {
                "libvirt" => Hypervisor::Libvirt,
                "xen" => Hypervisor::Xen,
                _ => return Err(bad()),
            },
            location: location.clone(),
            name: name.clone(),
            timeout_s: timeout.parse().map_err(|_| bad())?,
            on_timeout: match policy.as_str() {
                "destroy" => OnTimeout::Destroy,
                "wait" => OnTimeout::Wait,
                "fail" => OnTimeout::Fail,
                _ => return Err(bad()),
            },
        })
    }
}

/// What running an operation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Run a program (never through a shell), with text on its standard input.
    Run {
        argv: Vec<String>,
        stdin: Option<String>,
    },
    /// Write a configuration file atomically.
    Write(super::FileWrite),
    /// Stop a guest, in-process, with its timeout and policy.
    StopGuest(GuestStop),
    /// Wait until sanlock calls a host dead.
    AwaitDead(HostDeath),
}

impl Effect {
    pub fn run(argv: Vec<String>) -> Self {
        Effect::Run { argv, stdin: None }
    }

    /// The argv plan format 1 shows (empty for a file write).
    pub fn argv(&self) -> Vec<String> {
        match self {
            Effect::Run { argv, .. } => argv.clone(),
            Effect::Write(_) => Vec::new(),
            Effect::StopGuest(g) => g.argv(),
            Effect::AwaitDead(d) => d.argv(),
        }
    }

    /// The three fields plan format 1 spreads an effect over: argv, stdin, write.
    pub(super) fn into_parts(self) -> (Vec<String>, Option<String>, Option<super::FileWrite>) {
        match self {
            Effect::Run { argv, stdin } => (argv, stdin, None),
            Effect::Write(w) => (Vec::new(), None, Some(w)),
            Effect::StopGuest(g) => (g.argv(), None, None),
            Effect::AwaitDead(d) => (d.argv(), None, None),
        }
    }

    pub(super) fn from_parts(
        argv: Vec<String>,
        stdin: Option<String>,
        write: Option<super::FileWrite>,
    ) -> Result<Self, String> {
        match write {
            Some(w) if argv.is_empty() && stdin.is_none() => Ok(Effect::Write(w)),
            Some(_) => Err("an operation both writes a file and runs a command".into()),
            None if argv.first().map(String::as_str) == Some(STOP_GUEST_WORD) => {
                if stdin.is_some() {
                    return Err("a guest stop takes no input".into());
                }
                GuestStop::from_argv(&argv).map(Effect::StopGuest)
            }
            None if argv.first().map(String::as_str) == Some(AWAIT_DEAD_WORD) => {
                if stdin.is_some() {
                    return Err("a wait for a host's death takes no input".into());
                }
                HostDeath::from_argv(&argv).map(Effect::AwaitDead)
            }
            None => Ok(Effect::Run { argv, stdin }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_read_as_plan_format_1_writes_them_and_parse_back() {
        let cases = [
            (
                OpId::new(50, Address::lv("vg0", "web"), Verb::Create),
                "50:lv:vg0/web:create",
            ),
            (
                OpId::new(
                    9,
                    Address::Disk("a".into()),
                    Verb::Wipe(Some("vdb1".into())),
                ),
                "09:disk:a:wipe:vdb1",
            ),
            (
                OpId::new(9, Address::Disk("a".into()), Verb::Wipe(None)),
                "09:disk:a:wipe",
            ),
            (
                OpId::new(8, Address::Array("md0".into()), Verb::ZeroSuperblock),
                "08:array:md0:zero-superblock",
            ),
            (
                OpId::new(
                    63,
                    Address::Link("br0".into()),
                    Verb::Addr("2001:db8::1/64".into()),
                ),
                "63:br0:addr:2001:db8::1/64",
            ),
            (
                OpId::new(
                    66,
                    Address::File("/etc/network/interfaces.d/br0".into()),
                    Verb::Write,
                ),
                "66:file:/etc/network/interfaces.d/br0",
            ),
            (
                OpId::new(72, Address::Guest("g1".into()), Verb::attach_nic(1, "br0")),
                "72:guest:g1:attach:nic1-br0",
            ),
            (
                OpId::new(
                    74,
                    Address::Guest("g1".into()),
                    Verb::Lock("vg0/g1_root".into()),
                ),
                "74:guest:g1:lock:vg0/g1_root",
            ),
            (
                OpId::new(
                    21,
                    Address::Array("md0".into()),
                    Verb::RemoveMember("failed".into()),
                ),
                "21:array:md0:remove:failed",
            ),
            (
                OpId::new(65, Address::Route("default".into()), Verb::Set),
                "65:route:default",
            ),
            (
                OpId::new(
                    53,
                    Address::ThinPool {
                        vg: "vg0".into(),
                        pool: "pool0".into(),
                    },
                    Verb::Metadata,
                ),
                "53:thin-pool:vg0/pool0:metadata",
            ),
            // Links named like a kind.
            (
                OpId::new(60, Address::Link("disk".into()), Verb::Create),
                "60:disk:create",
            ),
            (
                OpId::new(
                    63,
                    Address::Link("lv".into()),
                    Verb::Addr("10.0.0.1/8".into()),
                ),
                "63:lv:addr:10.0.0.1/8",
            ),
        ];
        for (id, text) in cases {
            assert_eq!(id.as_str(), text);
            let back: OpId = text.parse().unwrap();
            assert_eq!(back, id);
            assert_eq!(back.verb(), id.verb(), "{text}");
            assert_eq!(back.stage(), id.stage());
        }
    }

    #[test]
    fn anything_else_is_not_an_id() {
        for s in [
            "",
            "lv:vg0/web:create",
            "5:lv:vg0/web:create",
            "50:lv:vg0/web",
            "50:lv:web:create",
            "50:lv:vg0/web:explode",
            "50:lv:vg0/web:create:now",
            "500:lv:vg0/web:create",
            "50:guest:g1:lock",
            "66:file",
        ] {
            assert!(s.parse::<OpId>().is_err(), "{s:?}");
        }
    }

    #[test]
    fn a_wait_for_a_hosts_death_is_written_in_argv_and_read_back() {
        let d = HostDeath {
            lockspace: "lvm_vgshared".into(),
            host_id: 2,
            timeout_s: 200,
        };
        let argv = d.argv();
        assert_eq!(argv.join(" "), "hostform-await-dead lvm_vgshared 2 200");
        assert_eq!(
            Effect::from_parts(argv.clone(), None, None),
            Ok(Effect::AwaitDead(d))
        );
        assert!(Effect::from_parts(argv, Some("x".into()), None).is_err());
        for bad in [
            "hostform-await-dead lvm_vgshared 2",
            "hostform-await-dead vgshared 2 200",
            "hostform-await-dead lvm_vgshared two 200",
            "hostform-await-dead lvm_vgshared 2 200 more",
        ] {
            let argv = bad.split(' ').map(str::to_string).collect();
            assert!(Effect::from_parts(argv, None, None).is_err(), "{bad}");
        }
        let id = OpId::new(
            73,
            Address::Vg("vgshared".into()),
            Verb::AwaitDead("kvm2".into()),
        );
        assert_eq!(id.as_str(), "73:vg:vgshared:await-dead:kvm2");
        assert_eq!(id.as_str().parse::<OpId>().unwrap(), id);
    }

    #[test]
    fn a_guest_stop_is_shown_as_before_and_read_back() {
        let g = GuestStop {
            hypervisor: Hypervisor::Libvirt,
            location: "qemu:///system".into(),
            name: "web".into(),
            timeout_s: 120,
            on_timeout: OnTimeout::Destroy,
        };
        let argv = g.argv();
        assert_eq!(
            argv.join(" "),
            "hostform-stop-guest libvirt qemu:///system web 120 destroy"
        );
        assert_eq!(
            Effect::from_parts(argv, None, None),
            Ok(Effect::StopGuest(g))
        );
        let short: Vec<String> = vec![STOP_GUEST_WORD.into(), "xen".into()];
        assert!(Effect::from_parts(short, None, None).is_err());
    }
}
