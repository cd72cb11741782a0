//! Guest planning: define (libvirt) or configure (xl) each guest of the spec, start or stop
//! it as its `state` says, set autostart, and classify every change of a guest's
//! configuration as applied live, needing a restart, or needing the guest stopped.
//!
//! The room is cut by hypervisor where they differ, and shares the rest: [`libvirt`] defines a
//! domain (and attaches added devices live) and marks it to start with the host; [`xen`]
//! writes an xl configuration file; [`lifecycle`] stops, starts (after an exclusive lock on a
//! shared VG) and removes a guest of either. This module holds the room's entry, [`plan`],
//! which plans each guest in those steps.
//!
//! Op ids (stage 70-79): `70:guest:N:stop` (before an LV resize under a running guest, or
//! `state: stopped`), `71:guest:N:define` / `71:guest:N:config`, `72:guest:N:attach:T`,
//! `73:guest:N:autostart`, `74:guest:N:lock:VG/LV`, `75:guest:N:start`, `76:guest:N:destroy`,
//! `77:guest:N:undefine`. A guest starts after the storage ops of its LVs (`50:lv:VG/LV:*`,
//! `52:`, `55:`, `57:`, `58:`) and after the guests it depends on.

mod libvirt;
mod lifecycle;
mod moves;

pub use moves::{DRAIN_TAG_PREFIX, drained, peer_lvchange};
mod xen;

use std::collections::BTreeSet;

use super::vocab::GuestStop;
use super::{Action, Effect, Op, OpId, Options, Outcome, Plan};
use crate::discover::Facts;
use crate::kinds::guest::{ChangeClass, GuestConfig};
use crate::kinds::{libvirt as virt, xen as xl};
use crate::spec::types::{DomainType, Hypervisor, OnTimeout, Spec, Vm, VmState};

fn s(x: &str) -> String {
    x.to_string()
}

fn op(id: OpId, resource: &str, summary: String, argv: Vec<String>) -> Op {
    Op::run(id, resource, summary, argv)
}

/// The storage ops a guest's start waits for (ids that do not exist in the plan are ignored).
fn lv_ops(c: &GuestConfig) -> Vec<OpId> {
    c.lvs()
        .iter()
        .flat_map(|lv| super::storage::lv_ready(lv))
        .collect()
}

/// The in-process stop an `apply` runs for a guest: ask it to shut down, wait up to the
/// guest's timeout, then the spec's `on-timeout` policy.
fn stop_guest(id: OpId, resource: &str, summary: String, stop: GuestStop) -> Op {
    let mut o = Op::run(id, resource, summary, Vec::new());
    o.effect = Effect::StopGuest(stop);
    o
}

fn unified(old: &str, new: &str, path: &str) -> String {
    super::room::unified_diff(
        old,
        new,
        &format!("{path} (now)"),
        &format!("{path} (spec)"),
    )
}

/// What every guest's planning shares, and what it produces: the room's changes, refusals
/// and ops, added to the plan once every guest is planned.
struct Ctx<'a> {
    spec: &'a Spec,
    facts: &'a Facts,
    opts: &'a Options,
    /// libvirt's connection URI.
    uri: String,
    /// The libvirt domain type: `kvm`, or `qemu` (emulated).
    domain_type: &'static str,
    /// Xen's configuration directory, when the spec sets one.
    xen_dir: Option<String>,
    /// The LVs the storage room grows (`50:lv:VG/LV:extend`): a running guest on one is
    /// stopped.
    extended: BTreeSet<String>,
    /// Each grown LV under a running guest, with the guest's stop it must wait for.
    stops_for_resize: Vec<(String, OpId)>,
    out: Plan,
}

impl Ctx<'_> {
    /// A `virsh` command on the spec's connection.
    fn virsh(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![s("virsh"), s("-c"), self.uri.clone()];
        v.extend(args.iter().map(|a| s(a)));
        v
    }

    /// Where a Xen guest's configuration file is.
    fn xl_path(&self, name: &str) -> String {
        xl::config_path(self.xen_dir.as_deref(), name)
    }
}

/// One guest of the spec: what the spec wants of it, and what the host has.
struct Guest<'a> {
    name: &'a str,
    vm: &'a Vm,
    hv: Hypervisor,
    res: String,
    want_state: VmState,
    want: GuestConfig,
    /// How long its stop waits for the guest's own shutdown.
    timeout: u64,
    /// libvirt's URI or Xen's configuration directory: where its stop asks.
    location: String,
    seen: Seen<'a>,
}

impl Guest<'_> {
    /// How an `apply` stops this guest.
    fn stop_order(&self, spec: &Spec) -> GuestStop {
        GuestStop {
            hypervisor: self.hv,
            location: self.location.clone(),
            name: self.name.into(),
            timeout_s: self.timeout,
            on_timeout: spec.shutdown.on_timeout,
        }
    }
}

/// What the host has of a guest.
#[derive(Default)]
struct Seen<'a> {
    running: bool,
    defined: bool,
    /// libvirt's stored definition, as a comparable configuration.
    current: Option<&'a GuestConfig>,
    uuid: Option<&'a str>,
    autostart: bool,
}

/// The guest was refused: its planning stops there.
struct Refused;

/// What planning one guest found: whether it changes (no action: identical to the spec),
/// and why.
#[derive(Default)]
struct Findings {
    action: Option<Action>,
    reasons: Vec<String>,
}

impl Findings {
    /// The guest's configuration is created or updated (the first step: its action stands).
    fn configure(&mut self, action: Action, reasons: impl IntoIterator<Item = String>) {
        self.action = Some(action);
        self.reasons.extend(reasons);
    }

    /// A step of its lifecycle changes the guest: an update, unless its configuration
    /// already is a change.
    fn update(&mut self, reason: Option<String>) {
        self.reasons.extend(reason);
        self.action.get_or_insert(Action::Update);
    }

    fn outcome(self) -> Outcome {
        match self.action {
            None => Outcome::identity(),
            Some(action) => Outcome::Changed(action, self.reasons),
        }
    }
}

/// Plan the spec's guests. Ops of other rooms the guests depend on are in `plan` already:
/// an LV grown under a running guest is made to wait for the guest's stop.
pub fn plan(plan: &mut Plan, spec: &Spec, facts: &Facts, opts: &Options) {
    let mut c = Ctx {
        spec,
        facts,
        opts,
        uri: spec
            .libvirt
            .uri
            .as_ref()
            .map(|u| u.value.clone())
            .unwrap_or_else(|| s(virt::DEFAULT_URI)),
        domain_type: match spec.libvirt.domain_type.as_ref().map(|d| d.value) {
            Some(DomainType::Qemu) => "qemu",
            _ => "kvm",
        },
        xen_dir: spec.xen.config_dir.as_ref().map(|d| d.value.clone()),
        extended: super::storage::grown_lvs(plan),
        stops_for_resize: Vec::new(),
        out: Plan::default(),
    };
    for (name, vm) in &spec.vms {
        guest(&mut c, &name.value, vm);
    }
    moves::plan(&mut c);
    unmanaged(&mut c);
    let Ctx {
        stops_for_resize,
        out,
        ..
    } = c;
    super::storage::grow_after(plan, stops_for_resize);
    super::merge(plan, out);
}

/// Plan one guest: its configuration, then its lifecycle, and record the outcome.
fn guest(c: &mut Ctx, name: &str, vm: &Vm) {
    let Some(hv) = vm.hypervisor.as_ref().map(|h| h.value) else {
        return;
    };
    let res = format!("guest {name}");
    if reachable(c, hv, &res).is_err() {
        return;
    }
    let g = Guest {
        name,
        vm,
        hv,
        want_state: vm.state.unwrap_or_default(),
        want: GuestConfig::from_spec(name, vm),
        timeout: c.spec.shutdown_timeout_secs(name),
        location: match hv {
            Hypervisor::Libvirt => c.uri.clone(),
            Hypervisor::Xen => c
                .xen_dir
                .clone()
                .unwrap_or_else(|| s(xl::DEFAULT_CONFIG_DIR)),
        },
        seen: match hv {
            Hypervisor::Libvirt => libvirt::seen(c.facts, name),
            Hypervisor::Xen => xen::seen(c, name),
        },
        res,
    };
    // Absent: stopped and undefined; its LVs are kept.
    if g.want_state == VmState::Absent {
        lifecycle::absent(c, &g);
        return;
    }
    let mut f = Findings::default();
    let configured = match hv {
        Hypervisor::Libvirt => Ok(libvirt::configure(c, &g, &mut f)),
        Hypervisor::Xen => xen::configure(c, &g, &mut f),
    };
    let Ok(config_op) = configured else {
        return;
    };
    if hv == Hypervisor::Libvirt
        && !g.seen.defined
        && g.want_state == VmState::Running
        && let Some(define) = &config_op
    {
        lifecycle::lock_before_define(c, &g, define);
    }
    // LVs grown under the running guest: stop → grow (remounting / if read-only) → start.
    let grown: Vec<String> = g
        .want
        .lvs()
        .into_iter()
        .filter(|lv| c.extended.contains(lv))
        .collect();
    let stop_id = lifecycle::stop(c, &g, &grown, &mut f);
    // Autostart: libvirt's flag, or the guest's entry in Xen's /etc/xen/auto.
    match hv {
        Hypervisor::Libvirt => libvirt::autostart(c, &g, config_op.as_ref(), &mut f),
        Hypervisor::Xen => xen::autostart(c, &g, config_op.as_ref(), &mut f),
    }
    // Start: when it should run and does not (or was stopped for a resize).
    let must_start = g.want_state == VmState::Running
        && (!g.seen.running || (stop_id.is_some() && !grown.is_empty()));
    if must_start {
        lifecycle::start(c, &g, config_op, stop_id, &mut f);
    } else if g.seen.running && stop_id.is_none() {
        lifecycle::relock(c, &g, &mut f);
    }
    c.out.record(&g.res, f.outcome());
}

/// The guest's hypervisor could be asked on this host: refused otherwise.
fn reachable(c: &mut Ctx, hv: Hypervisor, res: &str) -> Result<(), Refused> {
    if hv == Hypervisor::Libvirt && c.facts.guests.libvirt.is_none() {
        c.out.refuse(
            res,
            "libvirt could not be asked on this host (`virsh list --all` failed)",
            "install libvirt-clients and start libvirtd, then plan again",
        );
        return Err(Refused);
    }
    if hv == Hypervisor::Xen && c.facts.guests.xen.is_none() {
        c.out.refuse(
            res,
            "Xen could not be asked on this host (`xl list -l` failed)",
            "run hostform in dom0 with the Xen toolstack running, then plan again",
        );
        return Err(Refused);
    }
    Ok(())
}

/// Guests on the host that the spec does not name: reported, never touched.
fn unmanaged(c: &mut Ctx) {
    // A guest placed on another host of the cluster is moved there ([`moves`]), not unmanaged.
    let named: BTreeSet<&str> = c
        .spec
        .vms
        .keys()
        .map(|k| k.value.as_str())
        .chain(c.spec.elsewhere.keys().map(String::as_str))
        .collect();
    if let Some(l) = &c.facts.guests.libvirt {
        for (n, d) in &l.domains {
            if !named.contains(n.as_str()) {
                c.out
                    .unmanaged
                    .push(format!("guest {n} (libvirt, {})", d.state));
            }
        }
    }
    if let Some(x) = &c.facts.guests.xen {
        for n in x.running.keys() {
            if !named.contains(n.as_str()) {
                c.out.unmanaged.push(format!("guest {n} (xen, running)"));
            }
        }
    }
}

fn on_timeout(spec: &Spec) -> &'static str {
    match spec.shutdown.on_timeout {
        OnTimeout::Destroy => "destroy",
        OnTimeout::Wait => "keep waiting",
        OnTimeout::Fail => "fail",
    }
}

fn class_word(c: ChangeClass, running: bool) -> &'static str {
    match (c, running) {
        (ChangeClass::Live, true) => "applied live",
        (ChangeClass::Restart, true) => "restart needed (takes effect at the next start)",
        (ChangeClass::Stopped, _) => "needs the guest stopped",
        (_, false) => "takes effect at the next start",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::fixtures::{libvirt_etc, scripted};

    /// The host as captured in tests/fixtures/guests: g1 running (autostart on), g2 shut off.
    pub(in crate::plan::guests) fn facts() -> Facts {
        let r = libvirt_etc(scripted("guests", &["list-one-running"]))
            .with_file(crate::kinds::guest::LIBVIRT_SOCKET, "");
        Facts {
            guests: crate::kinds::guest::discover(&r),
            ..Facts::default()
        }
    }

    pub(super) fn spec(vms: &str) -> Spec {
        let y = format!(
            "host: lab
disks: {{ data: {{ serial: HF-DATA }} }}
volume-groups:
  vg0: {{ pvs: [data], lvs: {{ g1_root: {{ size: 64MiB }}, g1_data: {{ size: 32MiB }}, g2_root: {{ size: 64MiB }}, g3_root: {{ size: 64MiB }} }} }}
bridges: {{ br0: {{ ports: [eth0] }} }}
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

    pub(super) const G1: &str = "  g1: { disks: [{ lv: vg0/g1_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:01\" }] }\n";
    pub(super) const G2: &str = "  g2: { disks: [{ lv: vg0/g2_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:02\" }], state: stopped }\n";

    pub(super) fn plan(spec: &Spec, pre: Vec<Op>, allow_destroy: bool) -> Plan {
        let mut p = Plan {
            ops: pre,
            ..Plan::default()
        };
        super::plan(
            &mut p,
            spec,
            &facts(),
            &super::super::Options {
                allow_destroy,
                ..Default::default()
            },
        );
        p.ops = super::super::order(p.ops).unwrap();
        p
    }

    pub(in crate::plan::guests) fn ids(p: &Plan) -> Vec<&str> {
        p.ops.iter().map(|o| o.id.as_str()).collect()
    }

    #[test]
    fn the_captured_host_matches_its_spec() {
        let p = plan(&spec(&format!("{G1}{G2}")), vec![], false);
        assert!(p.ops.is_empty(), "{:#?}", p.ops);
        assert!(p.refusals.is_empty());
        assert!(p.changes.iter().all(|c| c.action == Action::NoOp));
    }

    #[test]
    fn more_memory_redefines_with_the_same_uuid_and_needs_a_restart() {
        let p = plan(
            &spec(&format!(
                "{}{G2}",
                G1.replace("g1: {", "g1: { memory: 96MiB,")
            )),
            vec![],
            false,
        );
        assert_eq!(ids(&p), ["71:guest:g1:define"]);
        let c = p.changes.iter().find(|c| c.resource == "guest g1").unwrap();
        assert_eq!(c.action, Action::Update);
        assert_eq!(
            c.reason,
            "memory 64 MiB → 96 MiB: restart needed (takes effect at the next start)"
        );
        let xml = p.ops[0].stdin().unwrap();
        assert!(
            xml.contains("<uuid>0040d400-43ec-439d-87b7-6b01b2e482b1</uuid>"),
            "{xml}"
        );
        assert!(xml.contains("<memory unit='KiB'>98304</memory>"), "{xml}");
        assert_eq!(
            p.ops[0].argv(),
            ["virsh", "-c", "qemu:///system", "define", "/dev/stdin"]
        );
        insta::assert_snapshot!("memory_change", super::super::render(&p, false));
    }

    #[test]
    fn without_a_hypervisor_to_ask_the_guests_are_refused() {
        let s = spec(G1);
        let mut p = Plan::default();
        super::plan(
            &mut p,
            &s,
            &Facts::default(),
            &super::super::Options::default(),
        );
        assert!(p.ops.is_empty());
        assert!(p.refusals[0].reason.contains("`virsh list --all` failed"));
    }
}
