//! A guest of the cluster that this host still has while its `runs-on` names another host:
//! moved there, by this host's plan. The lock manager keeps the move safe whatever order the
//! hosts apply in: the other host cannot activate the guest's LVs (lvmlockd refuses, naming
//! this host) until this host has shared or released them.
//!
//! - **live** (the default), the guest running: each of its LVs turns shared here
//!   (`lvchange -asy`: lvmlockd converts the exclusive lock), is activated shared on the
//!   other host (`ssh root@ADDRESS lvchange -asy`), the guest migrates (`virsh migrate --live
//!   --persistent --undefinesource`, its memory over `tcp://ADDRESS`), the LVs are
//!   deactivated here (`lvchange -an`) and taken exclusively there (`lvchange -aey`). Shared
//!   only during the move. A failed migration leaves the guest running here.
//! - **cold**, the guest running: stopped here (its downtime starts), LVs deactivated here,
//!   the definition sent (`virsh migrate --offline --persistent --undefinesource`), the LVs
//!   taken exclusively there, the guest started there.
//! - a guest defined but not running: its LVs deactivated here, its definition sent; the
//!   other host's plan starts it if its spec says so.
//! - a guest this host no longer has, whose LVs are still active here (a move interrupted
//!   after the migration): the LVs are deactivated.
//!
//! Op ids (stage 78-79): `78:guest:N:share:VG/LV`, `78:guest:N:peer-share:VG/LV`,
//! `79:guest:N:migrate:HOST`, `79:guest:N:release:VG/LV`, `79:guest:N:peer-lock:VG/LV`,
//! `79:guest:N:peer-start`, `79:guest:N:peer-autostart`; a cold move's stop is
//! `70:guest:N:stop`.

use std::collections::BTreeSet;

use super::{Ctx, on_timeout, op, s, stop_guest};
use crate::discover::Facts;
use crate::kinds::guest::GuestConfig;
use crate::kinds::lvm::LeaseHost;
use crate::plan::vocab::GuestStop;
use crate::plan::{Action, Address, Drain, OpId, Outcome, Verb};
use crate::spec::types::{Hypervisor, Migration, Spec, Vm, VmState};

/// The tag on a shared VG that says a host of the cluster is drained: `hostform_drained_kvm1`.
pub const DRAIN_TAG_PREFIX: &str = "hostform_drained_";

/// The cluster's drained hosts: the drain tags on its shared VGs (naming hosts of the
/// cluster), with the drain this run changes (`change`).
pub fn drained(spec: &Spec, facts: &Facts, change: Option<&Drain>) -> BTreeSet<String> {
    let mut d = BTreeSet::new();
    let Some(cl) = &spec.cluster else {
        return d;
    };
    for (name, vg) in &spec.volume_groups {
        let Some(v) = facts.lvm.vgs.get(&name.value).filter(|_| vg.shared) else {
            continue;
        };
        for t in &v.tags {
            if let Some(h) = t.strip_prefix(DRAIN_TAG_PREFIX)
                && cl.hosts.keys().any(|k| k.value == h)
            {
                d.insert(h.to_string());
            }
        }
    }
    match change {
        Some(Drain::On(h)) => {
            d.insert(h.clone());
        }
        Some(Drain::Off(h)) => {
            d.remove(h);
        }
        None => {}
    }
    d
}

/// The shared VGs of the spec that exist here and carry `host`'s drain tag.
fn tagged_vgs(spec: &Spec, facts: &Facts, host: &str) -> Vec<String> {
    let tag = format!("{DRAIN_TAG_PREFIX}{host}");
    spec.volume_groups
        .iter()
        .filter(|(_, v)| v.shared)
        .filter(|(n, _)| {
            facts
                .lvm
                .vgs
                .get(&n.value)
                .is_some_and(|v| v.tags.contains(&tag))
        })
        .map(|(n, _)| n.value.clone())
        .collect()
}

/// The drain this run changes (`hostform drain` / `undrain`): the tag written to (or removed
/// from) the shared VG, which every move of this plan waits for. Err: refused, nothing moves.
fn drain_op(c: &mut Ctx) -> Result<Vec<OpId>, ()> {
    let Some(d) = c.opts.drain.clone() else {
        return Ok(Vec::new());
    };
    let (host, on) = match &d {
        Drain::On(h) => (h.as_str(), true),
        Drain::Off(h) => (h.as_str(), false),
    };
    let res = format!("host {host}");
    let (spec, facts) = (c.spec, c.facts);
    let Some(cl) = &spec.cluster else {
        c.out.refuse(
            &res,
            "this spec has no `cluster`: there is no host to drain",
            "drain a host of a cluster, with its spec",
        );
        return Err(());
    };
    if !cl.hosts.keys().any(|k| k.value == host) {
        c.out.refuse(
            &res,
            format!("{host} is not a host of the cluster"),
            format!(
                "name one of {}",
                cl.hosts
                    .keys()
                    .map(|k| k.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return Err(());
    }
    if on && host != spec.host.value && !stopped_hosts(spec, facts).contains_key(host) {
        c.out.refuse(
            &res,
            format!("a drain runs on the host it drains: {host}'s guests leave from {host}, and this is {}; {host} renews its sanlock lease, so it is up", spec.host.value),
            format!("run `hostform drain {host} SPEC` on {host}, with its spec (a host that has stopped renewing its lease can be drained from another host)"),
        );
        return Err(());
    }
    let drained = drained(spec, facts, Some(&d));
    if on && spec.placement(host, &drained).is_none() {
        c.out.refuse(
            &res,
            "every host of the cluster would be drained: its guests would have nowhere to go",
            "undrain another host first (`hostform undrain HOST SPEC`)",
        );
        return Err(());
    }
    let tagged = tagged_vgs(spec, facts, host);
    let tag = format!("{DRAIN_TAG_PREFIX}{host}");
    let mut ids = Vec::new();
    if on && tagged.is_empty() {
        let Some(vg) = spec
            .volume_groups
            .iter()
            .find(|(n, v)| v.shared && facts.lvm.vgs.contains_key(&n.value))
            .map(|(n, _)| n.value.clone())
        else {
            c.out.refuse(
                &res,
                "the cluster's shared VG does not exist yet: the drain is kept as its tag",
                "apply the cluster's specs first",
            );
            return Err(());
        };
        let to = spec.placement(host, &drained).unwrap_or(host);
        let how = if host == spec.host.value {
            format!("drained: its guests go to {to}, one migration at a time")
        } else {
            format!(
                "drained while it is down: its guests start on {to} from their disks, once sanlock calls {host} dead"
            )
        };
        c.out
            .record(&res, Outcome::Changed(Action::Update, vec![how]));
        let o = op(
            OpId::new(78, Address::Vg(vg.clone()), Verb::Drain(host.to_string())),
            &res,
            format!("mark {host} drained (tag {tag} on {vg}, read by every host)"),
            vec![s("vgchange"), s("--addtag"), tag.clone(), vg],
        )
        .on_root();
        ids.push(o.id.clone());
        c.out.ops.push(o);
    }
    if !on && !tagged.is_empty() {
        c.out.record(
            &res,
            Outcome::Changed(
                Action::Update,
                vec!["drained no more: its guests come back to it".to_string()],
            ),
        );
        for vg in tagged {
            let o = op(
                OpId::new(78, Address::Vg(vg.clone()), Verb::Undrain(host.to_string())),
                &res,
                format!("mark {host} drained no more (tag {tag} off {vg})"),
                vec![s("vgchange"), s("--deltag"), tag.clone(), vg],
            )
            .on_root();
            ids.push(o.id.clone());
            c.out.ops.push(o);
        }
    }
    Ok(ids)
}

/// `ssh … lvchange MODE VG/LV` to the cluster host at `address`, as a move plans it; None when
/// a word is outside its grammar. The one place that grammar lives: a saved plan's ssh is
/// checked against it too (`workflow::trust`).
pub fn peer_lvchange(address: &str, mode: &str, lv: &str) -> Option<Vec<String>> {
    Peer::new(address).lvchange(mode, lv)
}

/// The other host: where its ssh and its libvirt are reached.
struct Peer {
    /// `root@ADDRESS`, for ssh.
    ssh: String,
    /// `qemu+ssh://root@ADDRESS/system`.
    uri: String,
    /// `tcp://ADDRESS`: the migration's memory stream, over the cluster's private network.
    stream: String,
}

impl Peer {
    fn new(address: &str) -> Peer {
        // An IPv6 literal is bracketed in a URI.
        let in_uri = if address.contains(':') {
            format!("[{address}]")
        } else {
            address.to_string()
        };
        Peer {
            ssh: format!("root@{address}"),
            uri: format!("qemu+ssh://root@{in_uri}/system"),
            stream: format!("tcp://{in_uri}"),
        }
    }

    /// `lvchange MODE VG/LV` run on the other host, through ssh. ssh hands its command to the
    /// remote shell as one string, so every word must be one the shell reads as itself: the
    /// mode is one of two, the LV passed LVM's name grammar ([A-Za-z0-9+_.-], `/` between), and
    /// the address is an IP address or a host name (validated).
    fn lvchange(&self, mode: &str, lv: &str) -> Option<Vec<String>> {
        let plain = |w: &str| {
            !w.is_empty()
                && !w.starts_with('-')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+_.-/".contains(c))
        };
        // `VG/LV`, each an LVM name: no further `/`, never `.` or `..`.
        let lvm_name = |w: &str| plain(w) && !w.contains('/') && w != "." && w != "..";
        if !matches!(mode, "-asy" | "-aey")
            || !lv
                .split_once('/')
                .is_some_and(|(v, l)| lvm_name(v) && lvm_name(l))
            || !plain(&self.ssh.replace(['@', ':'], "."))
        {
            return None;
        }
        Some(
            [
                "ssh",
                "-o",
                "BatchMode=yes",
                "-T",
                &self.ssh,
                "--",
                "lvchange",
                mode,
                lv,
            ]
            .map(s)
            .to_vec(),
        )
    }
}

/// The other hosts of the cluster that this host's sanlock sees failing or dead, by name: what
/// the lockspace of the first shared VG that lists each says of it (discovery leaves this host
/// out).
pub fn stopped_hosts(spec: &Spec, facts: &Facts) -> std::collections::BTreeMap<String, LeaseHost> {
    let mut out = std::collections::BTreeMap::new();
    for hs in facts.lvm.lease_hosts.values() {
        for h in hs.iter().filter(|h| h.stopped()) {
            if let Some(n) = spec.host_of_id(h.host_id) {
                out.entry(n.to_string()).or_insert_with(|| h.clone());
            }
        }
    }
    out
}

/// What this host's sanlock says of a host that stopped renewing its lease, for people.
pub(super) fn silence(name: &str, h: &LeaseHost) -> String {
    if h.dead() {
        format!(
            "sanlock calls {name} (host_id {}) dead: it has not renewed its lease for {} s or more (dead after {} s), so the leases it held are free to take",
            h.host_id,
            h.silent_s,
            h.dead_after_s()
        )
    } else {
        format!(
            "{name} (sanlock host_id {}) has not renewed its lease for {} s or more: it is down, or cut off from the shared storage. The leases it holds stay held until sanlock calls it dead, {} s after its last renewal: in at most {} s",
            h.host_id,
            h.silent_s,
            h.dead_after_s(),
            h.dead_in_s()
        )
    }
}

/// Warn of each other host that stopped renewing its lease: what this host can and cannot do
/// for the guests placed there, until sanlock calls it dead and after.
fn peers_down(c: &mut Ctx) {
    let (spec, facts) = (c.spec, c.facts);
    let drained = drained(spec, facts, c.opts.drain.as_ref());
    for (name, h) in stopped_hosts(spec, facts) {
        let guests: Vec<&str> = spec
            .elsewhere
            .iter()
            .filter(|(_, (on, _))| *on == name)
            .map(|(g, _)| g.as_str())
            .collect();
        let mut reason = silence(&name, &h);
        if !guests.is_empty() {
            reason.push_str(&format!(
                ". Its guests ({}) run nowhere this host can see; no host can start them {}",
                guests.join(", "),
                if h.dead() {
                    "until they are placed on another host"
                } else {
                    "until then"
                }
            ));
        }
        let hint = if drained.contains(&name) {
            format!(
                "{name} is drained: its guests are placed on the other hosts, whose plans start them from their disks once sanlock calls {name} dead (what was in their memory is lost)"
            )
        } else {
            format!(
                "to run its guests elsewhere: `hostform drain {name} SPEC`, on this host; each host's plan then waits until sanlock calls {name} dead, takes the guests' LVs and starts them from their disks (what was in their memory is lost). Make sure {name} is off first: sanlock run without a watchdog (Debian's default, `-w 0`) cannot stop it"
            )
        };
        c.out.warn(&format!("host {name}"), reason, hint);
    }
}

/// Plan the move of every guest placed on another host that this host still has.
/// The moves of one host run one at a time: each waits for the migration before it (and for
/// the drain's tag, when this run changes a drain).
pub(super) fn plan(c: &mut Ctx) {
    let spec = c.spec;
    peers_down(c);
    let Ok(mut prev) = drain_op(c) else {
        return;
    };
    for (name, (host, vm)) in &spec.elsewhere {
        if let Some(m) = guest(c, name, host, vm, &prev) {
            prev = vec![m];
        }
    }
}

/// Plan one guest's move: the id of its migration, which the next move waits for.
fn guest(c: &mut Ctx, name: &str, host: &str, vm: &Vm, prev: &[OpId]) -> Option<OpId> {
    let res = format!("guest {name}");
    let (facts, sp) = (c.facts, c.spec);
    let domain = facts
        .guests
        .libvirt
        .as_ref()
        .and_then(|l| l.domains.get(name));
    let xen_here = facts
        .guests
        .xen
        .as_ref()
        .is_some_and(|x| x.running.contains_key(name));
    if xen_here || vm.hypervisor.as_ref().map(|h| h.value) == Some(Hypervisor::Xen) {
        if xen_here {
            c.out.refuse(
                &res,
                format!("runs here under Xen, but its `runs-on` is {host}: hostform moves libvirt guests only"),
                format!("stop it here (`xl shutdown {name}`), then apply {host}'s spec"),
            );
        }
        return None;
    }
    // Its LVs: those of the definition this host has (what the running guest uses), else the
    // spec's.
    let want = GuestConfig::from_spec(name, vm);
    // Every disk counts, LV or not: a disk that is a file or another device stays behind, so
    // it is named as not on a shared VG (`/dev/` dropped from an LV's path: `VG/LV`).
    let disks = |c: &GuestConfig| -> Vec<String> {
        c.disks
            .iter()
            .map(|d| {
                d.source
                    .strip_prefix("/dev/")
                    .unwrap_or(&d.source)
                    .to_string()
            })
            .collect()
    };
    let lvs: Vec<String> = domain
        .and_then(|d| d.definition.as_ref())
        .map(|d| disks(&d.config))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| disks(&want));
    let shared = |lv: &String| {
        lv.split_once('/').is_some_and(|(vg, name)| {
            !name.contains('/') && sp.volume_groups.get(vg).is_some_and(|v| v.shared)
        })
    };
    let Some(d) = domain else {
        // Not here (any more): LVs a move left active here are released.
        let active: Vec<String> = lvs
            .iter()
            .filter(|lv| shared(lv) && facts.lvm.lvs.get(*lv).is_some_and(|l| l.active))
            .cloned()
            .collect();
        release_left(c, name, host, &active);
        return None;
    };
    if let Some(local) = lvs.iter().find(|lv| !shared(lv)) {
        c.out.refuse(
            &res,
            format!(
                "its `runs-on` is {host}, but its disk {local} is not on a shared VG: {host} cannot see it"
            ),
            "put the guest's disks on the cluster's shared VG, or keep it on this host",
        );
        return None;
    }
    let m = Move::new(c, name, host, lvs)?;
    let running = d.running();
    let wanted_running = vm.state.unwrap_or_default() == VmState::Running;
    let how = vm.migration.as_ref().map(|m| m.value).unwrap_or_default();
    let kind = match (running, how) {
        (true, Migration::Live) => {
            format!("live migration to {host} over {}: no downtime", m.address)
        }
        (true, Migration::Cold) => {
            format!("cold move to {host}: downtime from its stop until it starts on {host}")
        }
        (false, _) => format!("its definition moves to {host}; it is not running"),
    };
    c.out.record(
        &m.res,
        Outcome::Changed(
            Action::Update,
            vec![format!(
                "runs-on: {host}, but it {} here: {kind}",
                if running { "runs" } else { "is defined" }
            )],
        ),
    );
    let migrated = match (running, how) {
        (true, Migration::Live) => m.live(c, prev),
        (true, Migration::Cold) => m.cold(c, prev, wanted_running),
        (false, _) => m.definition(c, prev),
    };
    if vm.autostart.unwrap_or(wanted_running) {
        m.step(
            c,
            Verb::PeerAutostart,
            format!("mark {name} to start with {host}"),
            peer_virsh(&m.peer, &["autostart", name]),
            vec![migrated.clone()],
        );
    }
    Some(migrated)
}

/// A guest this host no longer has (a move cut short after its migration): the LVs it left
/// active here are deactivated, for the host that runs it.
fn release_left(c: &mut Ctx, name: &str, host: &str, active: &[String]) {
    if active.is_empty() {
        return;
    }
    let res = format!("guest {name}");
    c.out.record(
        &res,
        Outcome::Changed(
            Action::Update,
            vec![format!(
                "runs on {host}: {} still active here",
                active.join(", ")
            )],
        ),
    );
    for lv in active {
        c.out.ops.push(op(
            OpId::new(79, gaddr(name), Verb::Release(lv.clone())),
            &res,
            format!("deactivate {lv} here: {name} runs on {host}"),
            vec![s("lvchange"), s("-an"), lv.clone()],
        ));
    }
}

/// One guest's move to another host: its steps, each an op of the guest's resource.
struct Move<'a> {
    name: &'a str,
    res: String,
    host: &'a str,
    address: String,
    peer: Peer,
    /// Its LVs, each `VG/LV` of a shared VG.
    lvs: Vec<String>,
    /// `ssh … lvchange MODE VG/LV` on the other host, for each (mode, LV).
    remote: Vec<((&'static str, String), Vec<String>)>,
}

impl<'a> Move<'a> {
    /// The move of `name` to `host`; refused (None) when an LV or the address cannot be put
    /// in an ssh command.
    fn new(c: &mut Ctx, name: &'a str, host: &'a str, lvs: Vec<String>) -> Option<Move<'a>> {
        let res = format!("guest {name}");
        let address = c.spec.host_address(host);
        let peer = Peer::new(&address);
        let mut remote = Vec::new();
        for lv in &lvs {
            for mode in ["-asy", "-aey"] {
                let Some(a) = peer.lvchange(mode, lv) else {
                    c.out.refuse(
                        &res,
                        format!("cannot name {lv} on {host} ({address}) in an ssh command"),
                        "LV names and cluster addresses are validated: check the spec",
                    );
                    return None;
                };
                remote.push(((mode, lv.clone()), a));
            }
        }
        Some(Move {
            name,
            res,
            host,
            address,
            peer,
            lvs,
            remote,
        })
    }

    fn remote(&self, mode: &str, lv: &str) -> Vec<String> {
        self.remote
            .iter()
            .find(|((m, l), _)| *m == mode && l == lv)
            .map(|(_, a)| a.clone())
            .unwrap_or_default()
    }

    /// Plan one step, after `after`: its id.
    fn step(
        &self,
        c: &mut Ctx,
        verb: Verb,
        summary: String,
        argv: Vec<String>,
        after: Vec<OpId>,
    ) -> OpId {
        let mut o = op(
            OpId::new(79, gaddr(self.name), verb),
            &self.res,
            summary,
            argv,
        );
        o.after = after;
        let id = o.id.clone();
        c.out.ops.push(o);
        id
    }

    /// `lvchange -an LV` here, after `after`.
    fn release(&self, c: &mut Ctx, lv: &str, after: Vec<OpId>) -> OpId {
        self.step(
            c,
            Verb::Release(lv.to_string()),
            format!("deactivate {lv} here"),
            vec![s("lvchange"), s("-an"), lv.to_string()],
            after,
        )
    }

    /// `virsh migrate --live|--offline --persistent --undefinesource`, after `after`.
    fn migrate(&self, c: &mut Ctx, live: bool, after: Vec<OpId>) -> OpId {
        let mut argv = c.virsh(&["migrate", if live { "--live" } else { "--offline" }]);
        argv.extend(
            [
                "--persistent",
                "--undefinesource",
                self.name,
                &self.peer.uri,
            ]
            .iter()
            .map(|a| s(a)),
        );
        if live {
            argv.push(self.peer.stream.clone());
        }
        let (name, host, uri) = (self.name, self.host, &self.peer.uri);
        let summary = if live {
            format!(
                "migrate {name} live to {host} ({uri}, memory over {}); its definition moves with it",
                self.peer.stream
            )
        } else {
            format!("send {name}'s definition to {host} ({uri})")
        };
        self.step(c, Verb::Migrate(host.to_string()), summary, argv, after)
    }

    /// Each LV taken exclusively on the other host, after `after`: their ids.
    fn peer_lock(&self, c: &mut Ctx, after: &[OpId]) -> Vec<OpId> {
        self.lvs
            .iter()
            .map(|lv| {
                self.step(
                    c,
                    Verb::PeerLock(lv.clone()),
                    format!("activate {lv} exclusively on {}", self.host),
                    self.remote("-aey", lv),
                    after.to_vec(),
                )
            })
            .collect()
    }

    /// Live: the LVs shared on both hosts for the move only (here first: lvmlockd converts the
    /// exclusive lock; then there), the migration, then released here and taken exclusively
    /// there. A failed migration leaves the guest running here. The migration's id.
    fn live(&self, c: &mut Ctx, prev: &[OpId]) -> OpId {
        let mut before = prev.to_vec();
        for lv in &self.lvs {
            let mut o = op(
                OpId::new(78, gaddr(self.name), Verb::Share(lv.clone())),
                &self.res,
                format!("share {lv} for the move (its lock here turns shared)"),
                vec![s("lvchange"), s("-asy"), lv.clone()],
            );
            o.after = before.clone();
            before.push(o.id.clone());
            c.out.ops.push(o);
        }
        for lv in &self.lvs {
            let mut o = op(
                OpId::new(78, gaddr(self.name), Verb::PeerShare(lv.clone())),
                &self.res,
                format!("activate {lv} shared on {}, for the move", self.host),
                self.remote("-asy", lv),
            );
            o.after = before.clone();
            before.push(o.id.clone());
            c.out.ops.push(o);
        }
        let migrated = self.migrate(c, true, before);
        let mut after_move = vec![migrated.clone()];
        for lv in &self.lvs {
            after_move.push(self.release(c, lv, vec![migrated.clone()]));
        }
        self.peer_lock(c, &after_move);
        migrated
    }

    /// Cold: stopped here (a drain's moves one at a time: the stop waits for the move before
    /// it), the LVs released, the definition sent, the LVs taken there, then started there
    /// when the spec wants it running. The LVs are released before the definition leaves, so
    /// the guest is never defined on a host that can activate them while this one holds them.
    fn cold(&self, c: &mut Ctx, prev: &[OpId], start: bool) -> OpId {
        let (name, host) = (self.name, self.host);
        let spec = c.spec;
        let timeout = spec.shutdown_timeout_secs(name);
        let mut o = stop_guest(
            OpId::new(70, gaddr(name), Verb::Stop),
            &self.res,
            format!(
                "stop {name} (up to {timeout}s, then {}); downtime: until it starts on {host}",
                on_timeout(spec)
            ),
            GuestStop {
                hypervisor: Hypervisor::Libvirt,
                location: c.uri.clone(),
                name: name.to_string(),
                timeout_s: timeout,
                on_timeout: spec.shutdown.on_timeout,
            },
        );
        o.after = prev.to_vec();
        let mut before = prev.to_vec();
        before.push(o.id.clone());
        c.out.ops.push(o);
        let released: Vec<OpId> = self
            .lvs
            .iter()
            .map(|lv| self.release(c, lv, before.clone()))
            .collect();
        before.extend(released);
        let migrated = self.migrate(c, false, before);
        let mut locked = self.peer_lock(c, std::slice::from_ref(&migrated));
        if start {
            locked.push(migrated.clone());
            self.step(
                c,
                Verb::PeerStart,
                format!("start {name} on {host} (its downtime ends)"),
                peer_virsh(&self.peer, &["start", name]),
                locked,
            );
        }
        migrated
    }

    /// Defined here, not running: the LVs still active here released, then the definition
    /// sent; the other host's plan starts it if its spec says so.
    fn definition(&self, c: &mut Ctx, prev: &[OpId]) -> OpId {
        let mut before = prev.to_vec();
        let active: Vec<String> = self
            .lvs
            .iter()
            .filter(|lv| c.facts.lvm.lvs.get(*lv).is_some_and(|l| l.active))
            .cloned()
            .collect();
        for lv in &active {
            let id = self.release(c, lv, prev.to_vec());
            before.push(id);
        }
        self.migrate(c, false, before)
    }
}

fn gaddr(name: &str) -> Address {
    Address::Guest(name.to_string())
}

/// `virsh` on the other host's libvirt, through libvirt's own remote transport.
fn peer_virsh(peer: &Peer, args: &[&str]) -> Vec<String> {
    let mut v = vec![s("virsh"), s("-c"), peer.uri.clone()];
    v.extend(args.iter().map(|a| s(a)));
    v
}

#[cfg(test)]
mod tests {
    use super::super::tests::{facts, ids};
    use crate::discover::Facts;
    use crate::plan::{Drain, Options, Plan};
    use crate::runner::fixtures::text;
    use crate::spec::types::Spec;

    /// This host, kvm1, of a two-host cluster whose shared VG vg0 holds the captured guests'
    /// LVs (tests/fixtures/guests: g1 running, g2 shut off), and vgshared the LVs of the
    /// captured cluster (tests/fixtures/cluster-a: web active here, db not).
    fn spec(vms: &str) -> Spec {
        let y = format!(
            "host: kvm1
cluster: {{ hosts: {{ kvm1: {{ host-id: 1 }}, kvm2: {{ host-id: 2, address: 10.0.9.2 }} }} }}
disks: {{ lun: {{ serial: HF-LUN0 }}, lun1: {{ serial: HF-LUN1 }} }}
bridges: {{ br0: {{ ports: [eth0] }} }}
volume-groups:
  vg0: {{ pvs: [lun1], shared: true, lvs: {{ g1_root: {{ size: 64MiB }}, g1_data: {{ size: 32MiB }}, g2_root: {{ size: 64MiB }}, g3_root: {{ size: 64MiB }} }} }}
  vgshared: {{ pvs: [lun], shared: true, lvs: {{ web: {{ size: 64MiB }}, db: {{ size: 32MiB }} }} }}
libvirt: {{ domain-type: qemu }}
vm-defaults: {{ hypervisor: libvirt, memory: 64MiB }}
vms:
{vms}"
        );
        match crate::spec::load_str("t.yaml", &y) {
            Ok(l) => l.spec,
            Err(f) => panic!("{:?}", f.diagnostics),
        }
    }

    const G1: &str = "  g1: { disks: [{ lv: vg0/g1_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:01\" }], runs-on: kvm2 }\n";

    fn plan(spec: &Spec) -> Plan {
        plan_with(spec, &captured())
    }

    fn plan_with(spec: &Spec, f: &Facts) -> Plan {
        drain_with(spec, f, None)
    }

    /// The whole host's plan (placement by drains included), guests' part only.
    fn drain_with(spec: &Spec, f: &Facts, drain: Option<Drain>) -> Plan {
        let opts = Options {
            drain,
            ..Options::default()
        };
        let drained = super::drained(spec, f, opts.drain.as_ref());
        let placed = spec.placed_with(&drained);
        let spec = placed.as_ref().unwrap_or(spec);
        let mut p = Plan::default();
        super::super::plan(&mut p, spec, f, &opts);
        p.ops = crate::plan::order(p.ops).unwrap();
        p
    }

    fn captured() -> Facts {
        let mut f = facts();
        let d = |n: &str| text(&format!("cluster-a/{n}"));
        f.lvm = crate::kinds::lvm::Lvm::parse(
            &d("pvs-created.json"),
            &d("vgs-created.json"),
            &d("lvs-created.json"),
        )
        .expect("the captured reports");
        f
    }

    /// g1 (running) and g2 (shut off) run on kvm1, this host.
    const HOME: &str = "  g1: { disks: [{ lv: vg0/g1_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:01\" }], runs-on: kvm1 }\n  g2: { disks: [{ lv: vg0/g2_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:02\" }], state: stopped, runs-on: kvm1 }\n";

    #[test]
    fn a_drain_tags_the_shared_vg_then_moves_each_guest_one_migration_at_a_time() {
        let s = spec(HOME);
        let f = captured();
        assert!(drain_with(&s, &f, None).ops.is_empty());
        let p = drain_with(&s, &f, Some(Drain::On("kvm1".into())));
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argv(&p, "78:vg:vgshared:drain:kvm1"),
            "vgchange --addtag hostform_drained_kvm1 vgshared"
        );
        assert_eq!(p.ops[0].id.as_str(), "78:vg:vgshared:drain:kvm1");
        // g1 first (its first step waits for the tag), g2 only once g1 has migrated.
        assert_eq!(
            after(&p, "78:guest:g1:share:vg0/g1_root"),
            ["78:vg:vgshared:drain:kvm1"]
        );
        assert_eq!(
            after(&p, "79:guest:g2:migrate:kvm2"),
            ["79:guest:g1:migrate:kvm2"]
        );
        assert!(argv(&p, "79:guest:g2:migrate:kvm2").contains("--offline"));
    }

    #[test]
    fn cold_moves_of_a_drain_wait_for_each_other_too() {
        let s = spec(&HOME.replace(
            "runs-on: kvm1 }\n  g2",
            "runs-on: kvm1, migration: cold }\n  g2",
        ));
        let p = drain_with(&s, &captured(), Some(Drain::On("kvm1".into())));
        assert_eq!(after(&p, "70:guest:g1:stop"), ["78:vg:vgshared:drain:kvm1"]);
        assert_eq!(
            after(&p, "79:guest:g2:migrate:kvm2"),
            ["79:guest:g1:migrate:kvm2"]
        );
    }

    #[test]
    fn a_drain_runs_on_its_host_and_never_drains_the_whole_cluster() {
        let s = spec(HOME);
        let f = captured();
        let p = drain_with(&s, &f, Some(Drain::On("kvm2".into())));
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0]
                .reason
                .contains("a drain runs on the host it drains")
        );
        let p = drain_with(&s, &f, Some(Drain::On("kvm9".into())));
        assert!(p.refusals[0].reason.contains("not a host of the cluster"));
        // kvm2 drained already (its tag on the VG): draining kvm1 too leaves nowhere to go.
        let mut f2 = captured();
        f2.lvm
            .vgs
            .get_mut("vgshared")
            .unwrap()
            .tags
            .push("hostform_drained_kvm2".into());
        let p = drain_with(&s, &f2, Some(Drain::On("kvm1".into())));
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0]
                .reason
                .contains("every host of the cluster would be drained")
        );
    }

    #[test]
    fn while_a_peer_is_drained_its_guests_stay_here_and_undrain_sends_them_back() {
        // This host (kvm1) runs g1, whose runs-on is kvm2; kvm2 is drained (the tag).
        let s = spec(G1);
        let mut f = captured();
        f.lvm
            .vgs
            .get_mut("vgshared")
            .unwrap()
            .tags
            .push("hostform_drained_kvm2".into());
        let p = drain_with(&s, &f, None);
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(p.refusals.is_empty());
        // Undrained from here: the tag goes, then g1 goes home, live.
        let p = drain_with(&s, &f, Some(Drain::Off("kvm2".into())));
        assert_eq!(
            argv(&p, "78:vg:vgshared:undrain:kvm2"),
            "vgchange --deltag hostform_drained_kvm2 vgshared"
        );
        assert_eq!(
            after(&p, "78:guest:g1:share:vg0/g1_root"),
            ["78:vg:vgshared:undrain:kvm2"]
        );
        assert!(argv(&p, "79:guest:g1:migrate:kvm2").contains("--live"));
    }

    fn argv(p: &Plan, id: &str) -> String {
        p.ops
            .iter()
            .find(|o| o.id.as_str() == id)
            .unwrap_or_else(|| panic!("no {id}"))
            .argv()
            .join(" ")
    }

    fn after(p: &Plan, id: &str) -> Vec<String> {
        let o = p.ops.iter().find(|o| o.id.as_str() == id).unwrap();
        o.after.iter().map(|a| a.as_str().to_string()).collect()
    }

    /// kvm2 of tests/fixtures/cluster-dead, whose peer kvm1 (host_id 1) lost its power while
    /// holding the lease of vgshared/web: the reports at `tag`, sanlock's view from `steps`.
    fn kvm2_facts(tag: &str, steps: &[&str]) -> Facts {
        let mut f = facts();
        f.lvm = crate::kinds::lvm::captured_at("cluster-dead", tag);
        let r = crate::runner::fixtures::scripted("cluster-dead", steps);
        f.lvm.read_leases(&r);
        f
    }

    /// The cluster of the capture, seen from kvm2: `web` runs on kvm1.
    fn kvm2_spec() -> Spec {
        match crate::spec::load_str("t.yaml", &kvm2_spec_yaml()) {
            Ok(l) => l.spec,
            Err(f) => panic!("{:?}", f.diagnostics),
        }
    }

    fn kvm2_spec_yaml() -> String {
        "host: kvm2
cluster: { hosts: { kvm1: { host-id: 1, address: 10.0.9.1 }, kvm2: { host-id: 2 } } }
disks: { lun: { serial: HF-LUN0 } }
volume-groups:
  vgshared: { pvs: [lun], shared: true, lvs: { web: { size: 64MiB } } }
libvirt: { domain-type: qemu }
vms:
  web: { hypervisor: libvirt, memory: 64MiB, disks: [{ lv: vgshared/web, target: vda }], runs-on: kvm1 }
"
        .to_string()
    }

    const FAILING: [&str; 4] = [
        "gets-7",
        "host-status-7",
        "lvs-lock-args-failing.json",
        "sanlock-dump-leases-failing",
    ];

    #[test]
    fn a_peer_that_stopped_renewing_is_reported_with_what_can_be_done() {
        let s = kvm2_spec();
        let p = plan_with(&s, &kvm2_facts("failing", &FAILING));
        assert!(p.ops.is_empty(), "{:?}", ids(&p));
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        let w = &p.warnings[0];
        assert_eq!(w.resource, "host kvm1");
        for part in [
            "kvm1 (sanlock host_id 1) has not renewed its lease for 82 s or more",
            "until sanlock calls it dead, 140 s after its last renewal: in at most 58 s",
            "Its guests (web) run nowhere this host can see",
        ] {
            assert!(w.reason.contains(part), "{part}: {}", w.reason);
        }
        assert!(
            w.hint.contains("`hostform drain kvm1 SPEC`, on this host"),
            "{}",
            w.hint
        );
        // While kvm1 renewed, nothing was said.
        let live = kvm2_facts("live", &["gets-live", "host-status-live"]);
        assert!(plan_with(&s, &live).warnings.is_empty());
    }

    #[test]
    fn a_stopped_peer_drained_from_here_waits_for_its_death_then_takes_its_guests() {
        let s = kvm2_spec();
        let p = drain_with(
            &s,
            &kvm2_facts("failing", &FAILING),
            Some(Drain::On("kvm1".into())),
        );
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            argv(&p, "78:vg:vgshared:drain:kvm1"),
            "vgchange --addtag hostform_drained_kvm1 vgshared"
        );
        let wait = "73:vg:vgshared:await-dead:kvm1";
        assert_eq!(argv(&p, wait), "hostform-await-dead lvm_vgshared 1 200");
        let lock = "74:guest:web:lock:vgshared/web";
        assert!(
            after(&p, lock).contains(&wait.to_string()),
            "{:?}",
            after(&p, lock)
        );
        assert_eq!(argv(&p, lock), "lvchange -aey vgshared/web");
        assert!(after(&p, "71:guest:web:define").contains(&lock.to_string()));
        assert!(after(&p, "75:guest:web:start").contains(&lock.to_string()));
        // Every step runs in order: the wait first of web's.
        let pos = |id: &str| p.ops.iter().position(|o| o.id.as_str() == id).unwrap();
        assert!(pos(wait) < pos(lock) && pos(lock) < pos("75:guest:web:start"));
        assert!(
            p.warnings[0].hint.contains("kvm1 is drained"),
            "{:?}",
            p.warnings
        );
        assert!(
            p.changes.iter().any(|c| c.resource == "host kvm1"
                && c.reason
                    .contains("drained while it is down: its guests start on kvm2")),
            "{:?}",
            p.changes
        );

        // Once sanlock calls kvm1 dead: nothing to wait for, the lease is taken.
        let dead = kvm2_facts(
            "dead",
            &[
                "gets-12",
                "host-status-12",
                "lvs-lock-args-dead.json",
                "sanlock-dump-leases-dead",
            ],
        );
        let p = drain_with(&s, &dead, Some(Drain::On("kvm1".into())));
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert!(
            !p.ops.iter().any(|o| o.id.as_str() == wait),
            "{:?}",
            ids(&p)
        );
        let o = p.ops.iter().find(|o| o.id.as_str() == lock).unwrap();
        assert!(
            o.summary
                .contains("taking its lease from kvm1 (dead for sanlock)"),
            "{}",
            o.summary
        );
        assert!(
            p.warnings[0]
                .reason
                .contains("sanlock calls kvm1 (host_id 1) dead")
        );
    }

    #[test]
    fn a_holder_outside_the_cluster_is_waited_for_by_its_id() {
        let f = kvm2_facts("failing", &FAILING);
        // host_id 1 is no host of this cluster: the wait names it by its id.
        let y = kvm2_spec_yaml()
            .replace(
                "kvm1: { host-id: 1, address: 10.0.9.1 }",
                "kvm3: { host-id: 3 }",
            )
            .replace("runs-on: kvm1", "runs-on: kvm2");
        let s = crate::spec::load_str("t.yaml", &y).expect("loads").spec;
        let p = plan_with(&s, &f);
        let wait = "73:vg:vgshared:await-dead:host-id-1";
        assert_eq!(argv(&p, wait), "hostform-await-dead lvm_vgshared 1 200");
        assert_eq!(wait.parse::<crate::plan::OpId>().unwrap().as_str(), wait);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn a_peer_that_renews_is_drained_from_itself_only() {
        let s = kvm2_spec();
        let live = kvm2_facts("live", &["gets-live", "host-status-live"]);
        let p = drain_with(&s, &live, Some(Drain::On("kvm1".into())));
        assert!(
            p.refusals[0]
                .reason
                .contains("kvm1 renews its sanlock lease, so it is up"),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn a_running_guest_placed_elsewhere_moves_live_shared_only_for_the_move() {
        let p = plan(&spec(G1));
        assert!(p.refusals.is_empty(), "{:?}", p.refusals);
        assert_eq!(
            ids(&p),
            [
                "78:guest:g1:share:vg0/g1_root",
                "78:guest:g1:peer-share:vg0/g1_root",
                "79:guest:g1:migrate:kvm2",
                "79:guest:g1:peer-autostart",
                "79:guest:g1:release:vg0/g1_root",
                "79:guest:g1:peer-lock:vg0/g1_root",
            ]
        );
        assert_eq!(
            argv(&p, "78:guest:g1:share:vg0/g1_root"),
            "lvchange -asy vg0/g1_root"
        );
        assert_eq!(
            argv(&p, "78:guest:g1:peer-share:vg0/g1_root"),
            "ssh -o BatchMode=yes -T root@10.0.9.2 -- lvchange -asy vg0/g1_root"
        );
        assert_eq!(
            argv(&p, "79:guest:g1:migrate:kvm2"),
            "virsh -c qemu:///system migrate --live --persistent --undefinesource g1 qemu+ssh://root@10.0.9.2/system tcp://10.0.9.2"
        );
        assert_eq!(
            argv(&p, "79:guest:g1:peer-lock:vg0/g1_root"),
            "ssh -o BatchMode=yes -T root@10.0.9.2 -- lvchange -aey vg0/g1_root"
        );
        // Migrate once both hosts share it; exclusive there only once released here.
        assert!(
            after(&p, "79:guest:g1:migrate:kvm2")
                .contains(&"78:guest:g1:peer-share:vg0/g1_root".into())
        );
        assert_eq!(
            after(&p, "79:guest:g1:release:vg0/g1_root"),
            ["79:guest:g1:migrate:kvm2"]
        );
        assert!(
            after(&p, "79:guest:g1:peer-lock:vg0/g1_root")
                .contains(&"79:guest:g1:release:vg0/g1_root".into())
        );
        // Moved, so not reported as a guest the spec does not name; g2 still is.
        assert_eq!(p.unmanaged, ["guest g2 (libvirt, shut off)"]);
        let c = p.changes.iter().find(|c| c.resource == "guest g1").unwrap();
        assert!(
            c.reason.contains("live migration to kvm2 over 10.0.9.2"),
            "{}",
            c.reason
        );
    }

    #[test]
    fn a_cold_move_stops_releases_sends_the_definition_then_starts_it_there() {
        let p = plan(&spec(
            &G1.replace("runs-on: kvm2", "runs-on: kvm2, migration: cold"),
        ));
        assert_eq!(
            ids(&p),
            [
                "70:guest:g1:stop",
                "79:guest:g1:release:vg0/g1_root",
                "79:guest:g1:migrate:kvm2",
                "79:guest:g1:peer-autostart",
                "79:guest:g1:peer-lock:vg0/g1_root",
                "79:guest:g1:peer-start",
            ]
        );
        assert_eq!(
            argv(&p, "79:guest:g1:migrate:kvm2"),
            "virsh -c qemu:///system migrate --offline --persistent --undefinesource g1 qemu+ssh://root@10.0.9.2/system"
        );
        assert_eq!(
            argv(&p, "79:guest:g1:peer-start"),
            "virsh -c qemu+ssh://root@10.0.9.2/system start g1"
        );
        assert!(
            p.ops[0]
                .summary
                .contains("downtime: until it starts on kvm2")
        );
    }

    #[test]
    fn a_stopped_guest_sends_its_definition_and_an_lv_left_active_is_released() {
        // g2 is shut off here: only its definition moves (its LV is not active here).
        let g2 =
            "  g2: { disks: [{ lv: vg0/g2_root, target: vda }], state: stopped, runs-on: kvm2 }\n";
        // web is not defined here, but its LV is still active here (a move cut short after its
        // migration); db's is not.
        let web = "  web: { disks: [{ lv: vgshared/web, target: vda }], runs-on: kvm2 }\n  db: { disks: [{ lv: vgshared/db, target: vda }], runs-on: kvm2 }\n";
        let p = plan(&spec(&format!("{g2}{web}")));
        assert_eq!(
            ids(&p),
            [
                "79:guest:g2:migrate:kvm2",
                "79:guest:web:release:vgshared/web"
            ]
        );
        assert!(argv(&p, "79:guest:g2:migrate:kvm2").contains("--offline"));
        assert_eq!(
            argv(&p, "79:guest:web:release:vgshared/web"),
            "lvchange -an vgshared/web"
        );
    }

    #[test]
    fn a_guest_on_a_local_disk_is_refused_not_moved() {
        let mut s = spec(G1);
        s.volume_groups.get_mut("vg0").unwrap().shared = false;
        let p = plan(&s);
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0].reason.contains("not on a shared VG"),
            "{:?}",
            p.refusals
        );
        // A disk that is no LV at all (a file) is named too, not left out of the move.
        let mut f = captured();
        let g1 = f
            .guests
            .libvirt
            .as_mut()
            .unwrap()
            .domains
            .get_mut("g1")
            .unwrap();
        let def = g1.definition.as_mut().unwrap();
        def.config.disks[0].source = "/var/lib/libvirt/images/g1.qcow2".into();
        let p = plan_with(&spec(G1), &f);
        assert!(p.ops.is_empty());
        assert!(
            p.refusals[0]
                .reason
                .contains("/var/lib/libvirt/images/g1.qcow2 is not on a shared VG"),
            "{:?}",
            p.refusals
        );
    }

    #[test]
    fn a_peer_command_takes_only_words_the_remote_shell_reads_as_themselves() {
        let peer = super::Peer::new("10.0.9.2");
        assert!(peer.lvchange("-aey", "vg0/g1_root").is_some());
        for lv in [
            "vg0/x;reboot",
            "vg0/$(id)",
            "vg0/a b",
            "-rf",
            "",
            "vg0",
            "vg0/../x",
            "../vg0/x",
            "vg0/a/b",
        ] {
            assert!(peer.lvchange("-aey", lv).is_none(), "{lv}");
        }
        assert!(peer.lvchange("-an --yes", "vg0/g1_root").is_none());
        assert!(
            super::Peer::new("kvm2;reboot")
                .lvchange("-aey", "vg0/a")
                .is_none()
        );
        let v6 = super::Peer::new("fd00::2");
        assert_eq!(v6.uri, "qemu+ssh://root@[fd00::2]/system");
        assert_eq!(v6.stream, "tcp://[fd00::2]");
        assert!(v6.lvchange("-asy", "vg0/a").is_some());
    }

    #[test]
    fn a_new_guest_on_a_shared_vg_is_defined_only_once_its_lv_is_locked_here() {
        let g3 = "  g3: { disks: [{ lv: vg0/g3_root, target: vda }] }\n";
        let p = plan(&spec(g3));
        assert_eq!(
            ids(&p),
            [
                "74:guest:g3:lock:vg0/g3_root",
                "71:guest:g3:define",
                "73:guest:g3:autostart",
                "75:guest:g3:start"
            ]
        );
        assert!(after(&p, "71:guest:g3:define").contains(&"74:guest:g3:lock:vg0/g3_root".into()));
    }
}
