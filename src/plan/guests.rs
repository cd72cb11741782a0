//! Guest planning: define (libvirt) or configure (xl) each guest of the spec, start or stop
//! it as its `state` says, set autostart, and classify every change of a guest's
//! configuration as applied live, needing a restart, or needing the guest stopped.
//!
//! Op ids (stage 70-79): `70:guest:N:stop` (before an LV resize under a running guest, or
//! `state: stopped`), `71:guest:N:define` / `71:guest:N:config`, `72:guest:N:attach:T`,
//! `73:guest:N:autostart`, `74:guest:N:lock:VG/LV`, `75:guest:N:start`, `76:guest:N:destroy`,
//! `77:guest:N:undefine`. A guest starts after the storage ops of its LVs (`50:lv:VG/LV:*`,
//! `52:`, `55:`, `57:`, `58:`) and after the guests it depends on.

use std::collections::BTreeSet;

use super::vocab::GuestStop;
use super::{Action, Address, Change, Effect, Op, OpId, Plan, Refusal, Risk, Verb};
use crate::discover::Facts;
use crate::kinds::guest::{ChangeClass, GuestConfig, classify};
use crate::kinds::{libvirt, xen};
use crate::spec::types::{DomainType, Hypervisor, OnTimeout, Spec, VmState};

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
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (now)"), &format!("{path} (spec)"))
        .to_string()
}

/// Plan the spec's guests. Ops of other rooms the guests depend on are in `plan` already:
/// an LV grown under a running guest is made to wait for the guest's stop.
pub fn plan(plan: &mut Plan, spec: &Spec, facts: &Facts, opts: &super::Options) {
    // LVs the storage room grows (`50:lv:VG/LV:extend`): a running guest on one is stopped.
    let extended: BTreeSet<String> = super::storage::grown_lvs(plan);
    let mut new_ops: Vec<Op> = Vec::new();
    let mut stops_for_resize: Vec<(String, OpId)> = Vec::new(); // (grown LV, stop op)
    let uri = spec
        .libvirt
        .uri
        .as_ref()
        .map(|u| u.value.clone())
        .unwrap_or_else(|| s(libvirt::DEFAULT_URI));
    let virsh = |args: &[&str]| -> Vec<String> {
        let mut v = vec![s("virsh"), s("-c"), uri.clone()];
        v.extend(args.iter().map(|a| s(a)));
        v
    };
    let domain_type = match spec.libvirt.domain_type.as_ref().map(|d| d.value) {
        Some(DomainType::Qemu) => "qemu",
        _ => "kvm",
    };
    let xen_dir = spec.xen.config_dir.as_ref().map(|d| d.value.clone());
    for (name, vm) in &spec.vms {
        let name = name.value.as_str();
        let Some(hv) = vm.hypervisor.as_ref().map(|h| h.value) else {
            continue;
        };
        let res = format!("guest {name}");
        let want_state = vm.state.unwrap_or_default();
        let want = GuestConfig::from_spec(name, vm);
        let timeout = spec.shutdown_timeout_secs(name);
        let (running, defined, current, uuid, autostart_now) = match hv {
            Hypervisor::Libvirt => {
                let seen = facts
                    .guests
                    .libvirt
                    .as_ref()
                    .and_then(|l| l.domains.get(name));
                let definition = seen.and_then(|d| d.definition.as_ref());
                (
                    seen.is_some_and(|d| d.running()),
                    seen.is_some(),
                    definition.map(|d| &d.config),
                    definition.and_then(|d| d.uuid.as_deref()),
                    seen.is_some_and(|d| d.autostart),
                )
            }
            Hypervisor::Xen => {
                let path = xen::config_path(xen_dir.as_deref(), name);
                let file = facts.guests.xl_configs.get(&path);
                (
                    facts
                        .guests
                        .xen
                        .as_ref()
                        .is_some_and(|x| x.running.contains_key(name)),
                    file.is_some(),
                    None,
                    None,
                    false,
                )
            }
        };
        if hv == Hypervisor::Libvirt && facts.guests.libvirt.is_none() {
            plan.refusals.push(Refusal {
                resource: res.clone(),
                reason: "libvirt could not be asked on this host (`virsh list --all` failed)"
                    .into(),
                hint: "install libvirt-clients and start libvirtd, then plan again".into(),
            });
            continue;
        }
        if hv == Hypervisor::Xen && facts.guests.xen.is_none() {
            plan.refusals.push(Refusal {
                resource: res.clone(),
                reason: "Xen could not be asked on this host (`xl list -l` failed)".into(),
                hint: "run hostform in dom0 with the Xen toolstack running, then plan again".into(),
            });
            continue;
        }
        let location = match hv {
            Hypervisor::Libvirt => uri.clone(),
            Hypervisor::Xen => xen_dir
                .clone()
                .unwrap_or_else(|| s(xen::DEFAULT_CONFIG_DIR)),
        };
        // Absent: stop it (a destructive act: the guest's own shutdown is not waited for
        // indefinitely) and undefine it; its LVs are kept.
        if want_state == VmState::Absent {
            if defined || running {
                if !opts.allow_destroy {
                    plan.refusals.push(Refusal {
                        resource: res.clone(),
                        reason: "the spec says `state: absent`: it would be stopped and undefined"
                            .into(),
                        hint: "run again with --allow-destroy (its LVs are kept)".into(),
                    });
                    continue;
                }
                plan.changes.push(Change {
                    resource: res.clone(),
                    action: Action::Delete,
                    reason: "state: absent (its LVs are kept)".into(),
                });
                let mut after = Vec::new();
                if running {
                    let mut o = stop_guest(
                        OpId::new(76, Address::Guest(name.to_string()), Verb::Destroy),
                        &res,
                        format!("stop {name} (up to {timeout}s, then {})", on_timeout(spec)),
                        GuestStop {
                            hypervisor: hv,
                            location: location.clone(),
                            name: name.into(),
                            timeout_s: timeout,
                            on_timeout: spec.shutdown.on_timeout,
                        },
                    );
                    o.risk = Risk::Destructive;
                    after.push(o.id.clone());
                    new_ops.push(o);
                }
                if hv == Hypervisor::Libvirt && defined {
                    let mut o = op(
                        OpId::new(77, Address::Guest(name.to_string()), Verb::Undefine),
                        &res,
                        format!("undefine {name}"),
                        virsh(&["undefine", name]),
                    );
                    o.risk = Risk::Destructive;
                    o.after = after;
                    new_ops.push(o);
                }
            }
            continue;
        }
        let mut reasons: Vec<String> = Vec::new();
        let mut action = Action::NoOp;
        let mut config_op: Option<OpId> = None;
        // Configuration.
        match hv {
            Hypervisor::Libvirt => {
                // Compare what libvirt will store: our XML read back the way libvirt's is
                // (read back only when there is a definition to compare it with).
                let xml = libvirt::render_domain(&want, uuid, domain_type);
                let compared = current.map(|cur| {
                    let want_cmp = libvirt::parse_domain(&xml)
                        .map(|d| d.config)
                        .unwrap_or_else(|_| want.clone());
                    (cur, want_cmp)
                });
                let changes = match &compared {
                    Some((cur, want_cmp)) => classify(cur, want_cmp),
                    None if defined => {
                        vec![("definition could not be read".into(), ChangeClass::Restart)]
                    }
                    None => Vec::new(),
                };
                if !defined || !changes.is_empty() {
                    let o = op(
                        OpId::new(71, Address::Guest(name.to_string()), Verb::Define),
                        &res,
                        match &current {
                            Some(cur) if defined => {
                                // The difference in the fields hostform manages, both sides
                                // rendered the same way.
                                let now = libvirt::render_domain(cur, uuid, domain_type);
                                let diff = unified(&now, &xml, &format!("domain {name}"));
                                format!(
                                    "redefine {name} (the same uuid)\n{}",
                                    diff.lines()
                                        .map(|l| format!("      {l}"))
                                        .collect::<Vec<_>>()
                                        .join("\n")
                                )
                            }
                            _ if defined => format!("redefine {name} (the same uuid)"),
                            _ => format!("define {name}"),
                        },
                        virsh(&["define", "/dev/stdin"]),
                    );
                    let mut o = o.with_stdin(xml);
                    o.after = lv_ops(&want);
                    config_op = Some(o.id.clone());
                    new_ops.push(o);
                    if !defined {
                        action = Action::Create;
                        reasons.push("not defined".into());
                    } else {
                        action = Action::Update;
                        for (what, class) in &changes {
                            reasons.push(format!("{what}: {}", class_word(*class, running)));
                        }
                        // Added disks reach the running guest now.
                        if running && let Some((cur, want_cmp)) = &compared {
                            for d in &want_cmp.disks {
                                if !cur.disks.iter().any(|c| c.target == d.target) {
                                    let a = op(
                                        OpId::new(
                                            72,
                                            Address::Guest(name.to_string()),
                                            Verb::Attach(d.target.to_string()),
                                        ),
                                        &res,
                                        format!(
                                            "attach {} to the running {name} as {}",
                                            d.source, d.target
                                        ),
                                        virsh(&["attach-device", name, "/dev/stdin", "--live"]),
                                    );
                                    let mut a = a.with_stdin(libvirt::disk_xml(d, ""));
                                    a.after = vec![OpId::new(
                                        71,
                                        Address::Guest(name.to_string()),
                                        Verb::Define,
                                    )];
                                    a.after.extend(lv_ops(&want));
                                    new_ops.push(a);
                                }
                            }
                            for n in &want_cmp.nics {
                                if !cur.nics.iter().any(|c| {
                                    c.bridge == n.bridge && (n.mac.is_none() || c.mac == n.mac)
                                }) {
                                    let a = op(
                                        OpId::new(
                                            72,
                                            Address::Guest(name.to_string()),
                                            Verb::Attach(format!("nic-{}", n.bridge)),
                                        ),
                                        &res,
                                        format!(
                                            "attach a NIC on {} to the running {name}",
                                            n.bridge
                                        ),
                                        virsh(&["attach-device", name, "/dev/stdin", "--live"]),
                                    );
                                    let mut a = a.with_stdin(libvirt::nic_xml(n, ""));
                                    a.after = vec![OpId::new(
                                        71,
                                        Address::Guest(name.to_string()),
                                        Verb::Define,
                                    )];
                                    new_ops.push(a);
                                }
                            }
                        }
                    }
                }
            }
            Hypervisor::Xen => {
                let path = xen::config_path(xen_dir.as_deref(), name);
                if let Err(e) = xen::check_config(&want) {
                    plan.refusals.push(super::Refusal {
                        resource: res.clone(),
                        reason: format!("cannot write {path}: {e}"),
                        hint: "fix the spec; `hostform validate` names the string".into(),
                    });
                    continue;
                }
                let content = xen::render_config(&want);
                let now = facts.guests.xl_configs.get(&path);
                if now.map(String::as_str) != Some(content.as_str()) {
                    let mut o = op(
                        OpId::new(71, Address::Guest(name.to_string()), Verb::Config),
                        &res,
                        format!("write {path}"),
                        Vec::new(),
                    );
                    o.effect = Effect::Write(super::FileWrite {
                        path: path.clone(),
                        content: content.clone(),
                        mode: 0o644,
                        diff: unified(now.map(String::as_str).unwrap_or(""), &content, &path),
                    });
                    o.after = lv_ops(&want);
                    config_op = Some(o.id.clone());
                    new_ops.push(o);
                    if now.is_none() {
                        action = Action::Create;
                        reasons.push("no xl config".into());
                    } else {
                        action = Action::Update;
                        reasons.push(format!(
                            "xl config differs: {}",
                            class_word(ChangeClass::Restart, running)
                        ));
                    }
                }
            }
        }
        // LVs grown under the running guest: stop → grow (remounting / if read-only) → start.
        let grown: Vec<String> = want
            .lvs()
            .into_iter()
            .filter(|lv| extended.contains(lv))
            .collect();
        let mut stop_id = None;
        if running && (!grown.is_empty() || want_state == VmState::Stopped) {
            let id = OpId::new(70, Address::Guest(name.to_string()), Verb::Stop);
            let why = if grown.is_empty() {
                "state: stopped".to_string()
            } else {
                format!(
                    "{} grows: {}",
                    grown.join(", "),
                    class_word(ChangeClass::Stopped, running)
                )
            };
            reasons.push(why);
            if action == Action::NoOp {
                action = Action::Update;
            }
            new_ops.push(stop_guest(
                id.clone(),
                &res,
                format!(
                    "stop {name} (up to {timeout}s, then {}){}",
                    on_timeout(spec),
                    if grown.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; downtime: until {} {} grown",
                            grown.join(", "),
                            if grown.len() == 1 { "is" } else { "are" }
                        )
                    }
                ),
                GuestStop {
                    hypervisor: hv,
                    location: location.clone(),
                    name: name.into(),
                    timeout_s: timeout,
                    on_timeout: spec.shutdown.on_timeout,
                },
            ));
            for lv in &grown {
                stops_for_resize.push((lv.clone(), id.clone()));
            }
            stop_id = Some(id);
        }
        // Autostart (libvirt; Xen's /etc/xen/auto links are not managed yet).
        if hv == Hypervisor::Libvirt {
            let want_auto = vm.autostart.unwrap_or(want_state == VmState::Running);
            if want_auto != autostart_now {
                let mut o = op(
                    OpId::new(73, Address::Guest(name.to_string()), Verb::Autostart),
                    &res,
                    if want_auto {
                        format!("mark {name} to start with the host (autostart)")
                    } else {
                        format!("unmark {name}: not started with the host (autostart off)")
                    },
                    if want_auto {
                        virsh(&["autostart", name])
                    } else {
                        virsh(&["autostart", "--disable", name])
                    },
                );
                o.after = config_op.iter().cloned().collect();
                new_ops.push(o);
                reasons.push(format!(
                    "autostart {}",
                    if want_auto { "on" } else { "off" }
                ));
                if action == Action::NoOp {
                    action = Action::Update;
                }
            }
        }
        // Start: when it should run and does not (or was stopped for a resize).
        let must_start = want_state == VmState::Running
            && (!running || (stop_id.is_some() && !grown.is_empty()));
        if must_start {
            let mut after: Vec<OpId> = lv_ops(&want);
            after.extend(config_op.iter().cloned());
            after.extend(stop_id.iter().cloned());
            for d in &vm.depends_on {
                after.push(OpId::new(
                    75,
                    Address::Guest(d.value.to_string()),
                    Verb::Start,
                ));
            }
            // Shared VG: take the guest's LVs exclusively first.
            for lv in want.lvs() {
                let vg = lv.split('/').next().unwrap_or("");
                if spec.volume_groups.get(vg).is_some_and(|v| v.shared) {
                    let mut l = op(
                        OpId::new(
                            74,
                            Address::Guest(name.to_string()),
                            Verb::Lock(lv.to_string()),
                        ),
                        &res,
                        format!(
                            "activate {lv} exclusively on this host (fails when another host holds it)"
                        ),
                        vec![s("lvchange"), s("-aey"), lv.clone()],
                    );
                    l.after = after.clone();
                    after.push(l.id.clone());
                    new_ops.push(l);
                }
            }
            let mut o = op(
                OpId::new(75, Address::Guest(name.to_string()), Verb::Start),
                &res,
                if stop_id.is_some() {
                    format!("start {name} again")
                } else {
                    format!("start {name}")
                },
                match hv {
                    Hypervisor::Libvirt => virsh(&["start", name]),
                    Hypervisor::Xen => vec![
                        s("xl"),
                        s("create"),
                        xen::config_path(xen_dir.as_deref(), name),
                    ],
                },
            );
            o.after = after;
            new_ops.push(o);
            if stop_id.is_none() {
                reasons.push("not running".into());
            }
            if action == Action::NoOp {
                action = Action::Update;
            }
        }
        plan.changes.push(Change {
            resource: res,
            action,
            reason: if reasons.is_empty() {
                "matches the spec".into()
            } else {
                reasons.join("; ")
            },
        });
    }
    // Guests on the host that the spec does not name: reported, never touched.
    let named: BTreeSet<&str> = spec.vms.keys().map(|k| k.value.as_str()).collect();
    if let Some(l) = &facts.guests.libvirt {
        for (n, d) in &l.domains {
            if !named.contains(n.as_str()) {
                plan.unmanaged
                    .push(format!("guest {n} (libvirt, {})", d.state));
            }
        }
    }
    if let Some(x) = &facts.guests.xen {
        for n in x.running.keys() {
            if !named.contains(n.as_str()) {
                plan.unmanaged.push(format!("guest {n} (xen, running)"));
            }
        }
    }
    super::storage::grow_after(plan, stops_for_resize);
    plan.ops.extend(new_ops);
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
    use crate::runner::fixtures::{scripted, text};

    /// The host as captured in tests/fixtures/guests: g1 running (autostart on), g2 shut off.
    fn facts() -> Facts {
        let r = scripted("guests", &["list-one-running", "list-autostart"])
            .with_file("/etc/libvirt/qemu/g1.xml", &text("guests/cat-etc-g1"))
            .with_file("/etc/libvirt/qemu/g2.xml", &text("guests/cat-etc-g2"));
        Facts {
            guests: crate::kinds::guest::discover(&r),
            ..Facts::default()
        }
    }

    fn spec(vms: &str) -> Spec {
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

    const G1: &str = "  g1: { disks: [{ lv: vg0/g1_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:01\" }] }\n";
    const G2: &str = "  g2: { disks: [{ lv: vg0/g2_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:02\" }], state: stopped }\n";

    fn plan(spec: &Spec, pre: Vec<Op>, allow_destroy: bool) -> Plan {
        let mut p = Plan {
            ops: pre,
            ..Plan::default()
        };
        super::plan(
            &mut p,
            spec,
            &facts(),
            &super::super::Options { allow_destroy },
        );
        p.ops = super::super::order(p.ops).unwrap();
        p
    }

    fn ids(p: &Plan) -> Vec<&str> {
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
    fn an_added_disk_is_attached_live_never_recreated() {
        let g1 = G1.replace(
            "[{ lv: vg0/g1_root, target: vda }]",
            "[{ lv: vg0/g1_root, target: vda }, { lv: vg0/g1_data, target: vdb }]",
        );
        let p = plan(&spec(&format!("{g1}{G2}")), vec![], false);
        assert_eq!(ids(&p), ["71:guest:g1:define", "72:guest:g1:attach:vdb"]);
        let a = &p.ops[1];
        assert_eq!(
            a.argv(),
            [
                "virsh",
                "-c",
                "qemu:///system",
                "attach-device",
                "g1",
                "/dev/stdin",
                "--live"
            ]
        );
        assert!(
            a.stdin()
                .as_ref()
                .unwrap()
                .contains("<source dev='/dev/vg0/g1_data'/>")
        );
        let c = p.changes.iter().find(|c| c.resource == "guest g1").unwrap();
        assert_eq!(c.reason, "disk /dev/vg0/g1_data as vdb: applied live");
        assert!(
            !p.ops
                .iter()
                .any(|o| o.argv().iter().any(|x| x == "undefine" || x == "destroy"))
        );
    }

    #[test]
    fn an_lv_grown_under_a_running_guest_stops_it_grows_then_starts_it() {
        let mut extend = Op::run(
            OpId::new(50, Address::lv("vg0", "g1_root"), Verb::Extend),
            "lv vg0/g1_root",
            "grow",
            vec!["lvextend".into()],
        );
        extend.writes_root = true;
        extend.settle = true;
        let p = plan(&spec(&format!("{G1}{G2}")), vec![extend], false);
        assert_eq!(
            ids(&p),
            [
                "70:guest:g1:stop",
                "50:lv:vg0/g1_root:extend",
                "75:guest:g1:start"
            ]
        );
        assert_eq!(
            p.ops[0].argv(),
            [
                "hostform-stop-guest",
                "libvirt",
                "qemu:///system",
                "g1",
                "300",
                "destroy"
            ]
        );
        assert!(
            p.ops[0]
                .summary
                .contains("downtime: until vg0/g1_root is grown")
        );
        assert_eq!(
            p.ops[2].argv(),
            ["virsh", "-c", "qemu:///system", "start", "g1"]
        );
    }

    #[test]
    fn a_new_guest_is_defined_after_its_lvs_then_started_after_its_dependencies() {
        let g3 = "  g3: { disks: [{ lv: vg0/g3_root, target: vda }], nics: [{ bridge: br0 }], depends-on: [g1] }\n";
        let p = plan(&spec(&format!("{G1}{G2}{g3}")), vec![], false);
        assert_eq!(
            ids(&p),
            [
                "71:guest:g3:define",
                "73:guest:g3:autostart",
                "75:guest:g3:start"
            ]
        );
        let start = &p.ops[2];
        assert!(start.after.iter().any(|a| a == "50:lv:vg0/g3_root:create"));
        assert!(start.after.iter().any(|a| a == "75:guest:g1:start"));
        let c = p.changes.iter().find(|c| c.resource == "guest g3").unwrap();
        assert_eq!(c.action, Action::Create);
    }

    #[test]
    fn desired_state_and_autostart_are_honoured() {
        // g2 should run: started, and marked to start with the host.
        let p = plan(
            &spec(&format!("{G1}{}", G2.replace(", state: stopped", ""))),
            vec![],
            false,
        );
        assert_eq!(ids(&p), ["73:guest:g2:autostart", "75:guest:g2:start"]);
        // g1 should be stopped, and not start with the host.
        let p = plan(
            &spec(&format!(
                "{}{G2}",
                G1.replace("g1: {", "g1: { state: stopped,")
            )),
            vec![],
            false,
        );
        assert_eq!(ids(&p), ["70:guest:g1:stop", "73:guest:g1:autostart"]);
        assert_eq!(p.ops[1].argv()[3..], ["autostart", "--disable", "g1"]);
    }

    #[test]
    fn absent_needs_allow_destroy_and_unknown_guests_are_left_alone() {
        let g1 = G1.replace("g1: {", "g1: { state: absent,");
        let p = plan(&spec(&g1), vec![], false);
        assert!(p.ops.is_empty());
        assert_eq!(p.refusals.len(), 1);
        assert!(p.refusals[0].hint.contains("--allow-destroy"));
        assert_eq!(p.unmanaged, ["guest g2 (libvirt, shut off)"]);
        let p = plan(&spec(&g1), vec![], true);
        assert_eq!(ids(&p), ["76:guest:g1:destroy", "77:guest:g1:undefine"]);
        assert!(p.ops.iter().all(|o| o.risk == Risk::Destructive));
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

    #[test]
    fn xen_guests_get_a_config_file_with_its_diff_and_xl_create() {
        let spec = crate::spec::load(
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/specs/dom0.yaml")),
            None,
        )
        .map(|l| l.spec)
        .unwrap();
        let mut f = Facts::default();
        // guest1's config exists with 1 GiB: the diff shows the memory line.
        let old = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/xen/guest1.xl"
        ))
        .unwrap()
        .replace("memory = 2048", "memory = 1024");
        f.guests
            .xl_configs
            .insert("/etc/xen/guest/guest1.xl".into(), old);
        f.guests.xen = Some(Default::default());
        let mut p = Plan::default();
        super::plan(&mut p, &spec, &f, &super::super::Options::default());
        let w = p
            .ops
            .iter()
            .find(|o| o.id == "71:guest:guest1:config")
            .and_then(|o| o.write().cloned())
            .unwrap();
        assert_eq!(w.path, "/etc/xen/guest/guest1.xl");
        assert!(
            w.diff.contains("-memory = 1024\n+memory = 2048\n"),
            "{}",
            w.diff
        );
        let start = p
            .ops
            .iter()
            .find(|o| o.id == "75:guest:guest1:start")
            .unwrap();
        assert_eq!(start.argv(), ["xl", "create", "/etc/xen/guest/guest1.xl"]);
        assert!(start.after.iter().any(|a| a == "75:guest:srvlan:start"));
    }
}
