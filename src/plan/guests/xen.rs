//! A Xen guest's configuration: the xl configuration file `xl create` starts it from,
//! written with its diff when it differs from the spec's rendering.

use super::{Ctx, Findings, Guest, Refused, Seen, class_word, lv_ops, op, unified};
use crate::kinds::guest::{ChangeClass, GuestConfig, classify};
use crate::kinds::xen;
use crate::plan::{Action, Address, Effect, FileWrite, OpId, Verb};

/// What Xen has of the guest `name`: running, and whether its configuration file exists.
pub(super) fn seen<'a>(c: &Ctx<'a>, name: &str) -> Seen<'a> {
    let facts = c.facts;
    Seen {
        running: facts
            .guests
            .xen
            .as_ref()
            .is_some_and(|x| x.running.contains_key(name)),
        defined: facts.guests.xl_configs.contains_key(&c.xl_path(name)),
        ..Seen::default()
    }
}

/// Write the guest's xl configuration when it is missing or differs: the write's id, which
/// the start waits for. Refused when the spec's strings cannot be written as xl config.
pub(super) fn configure(c: &mut Ctx, g: &Guest, f: &mut Findings) -> Result<Option<OpId>, Refused> {
    let path = c.xl_path(g.name);
    if let Err(e) = xen::check_config(&g.want) {
        c.out.refuse(
            &g.res,
            format!("cannot write {path}: {e}"),
            "fix the spec; `hostform validate` names the string",
        );
        return Err(Refused);
    }
    let content = xen::render_config(&g.want);
    let now = c.facts.guests.xl_configs.get(&path);
    if now.map(String::as_str) == Some(content.as_str()) {
        return Ok(None);
    }
    let mut o = op(
        OpId::new(71, Address::Guest(g.name.to_string()), Verb::Config),
        &g.res,
        format!("write {path}"),
        Vec::new(),
    );
    o.effect = Effect::Write(FileWrite {
        path: path.clone(),
        content: content.clone(),
        mode: 0o644,
        diff: unified(now.map(String::as_str).unwrap_or(""), &content, &path),
    });
    o.after = lv_ops(&g.want);
    let id = o.id.clone();
    c.out.ops.push(o);
    let Some(now) = now else {
        f.configure(Action::Create, ["no xl config".to_string()]);
        return Ok(Some(id));
    };
    // What changed, and how it reaches the guest: from the file as hostform wrote it; a file
    // it cannot read that way is a restart.
    let running = g.seen.running;
    match xen::read_config(now, &g.want) {
        Some(cur) => {
            let changes = classify(&cur, &g.want);
            f.configure(
                Action::Update,
                changes
                    .iter()
                    .map(|(what, class)| format!("{what}: {}", class_word(*class, running))),
            );
            if running {
                attach_live(c, g, &cur, &id);
            }
        }
        None => f.configure(
            Action::Update,
            [format!(
                "xl config differs: {}",
                class_word(ChangeClass::Restart, running)
            )],
        ),
    }
    Ok(Some(id))
}

/// Attach the disks and NICs the spec adds to the running guest (`xl block-attach`,
/// `xl network-attach`), after its config file is rewritten: the guest is never restarted
/// for them.
fn attach_live(c: &mut Ctx, g: &Guest, cur: &GuestConfig, config: &OpId) {
    let name = g.name;
    let attach = |verb: Verb| OpId::new(72, Address::Guest(name.to_string()), verb);
    for d in &g.want.disks {
        if cur.disks.iter().any(|c| c.target == d.target) {
            continue;
        }
        let mut a = op(
            attach(Verb::Attach(d.target.clone())),
            &g.res,
            format!("attach {} to the running {name} as {}", d.source, d.target),
            vec![
                "xl".to_string(),
                "block-attach".to_string(),
                name.to_string(),
                xen::disk_spec(d),
            ],
        );
        a.after = vec![config.clone()];
        a.after.extend(lv_ops(&g.want));
        c.out.ops.push(a);
    }
    for (i, n) in crate::kinds::guest::added_nics(cur, &g.want) {
        let mut argv = vec![
            "xl".to_string(),
            "network-attach".to_string(),
            name.to_string(),
        ];
        argv.extend(xen::nic_spec(n));
        let mut a = op(
            attach(Verb::attach_nic(i, &n.bridge)),
            &g.res,
            format!("attach a NIC on {} to the running {name}", n.bridge),
            argv,
        );
        a.after = vec![config.clone()];
        c.out.ops.push(a);
    }
}

/// Autostart of a Xen guest: its entry in /etc/xen/auto, which Debian's xendomains starts at
/// boot. The entry is a copy of the guest's xl config, rewritten with it (xendomains reads
/// whatever file is there, and `xl create` needs the whole config); without autostart it is
/// removed.
pub(super) fn autostart(c: &mut Ctx, g: &Guest, config_op: Option<&OpId>, f: &mut Findings) {
    use crate::spec::types::VmState;
    let name = g.name;
    let path = xen::auto_path(name);
    let want_auto = g.vm.autostart.unwrap_or(g.want_state == VmState::Running);
    let now = c.facts.guests.xl_configs.get(&path);
    let content = xen::render_config(&g.want);
    let mut o = if want_auto {
        if now.map(String::as_str) == Some(content.as_str()) {
            return;
        }
        let mut o = op(
            OpId::new(73, Address::Guest(name.to_string()), Verb::Autostart),
            &g.res,
            format!("mark {name} to start with the host (write {path})"),
            Vec::new(),
        );
        o.effect = Effect::Write(FileWrite {
            path: path.clone(),
            content: content.clone(),
            mode: 0o644,
            diff: unified(now.map(String::as_str).unwrap_or(""), &content, &path),
        });
        o
    } else {
        if now.is_none() {
            return;
        }
        op(
            OpId::new(73, Address::Guest(name.to_string()), Verb::Autostart),
            &g.res,
            format!("unmark {name}: not started with the host (remove {path})"),
            vec![
                "rm".to_string(),
                "-f".to_string(),
                "--".to_string(),
                path.clone(),
            ],
        )
    };
    o.after = config_op.into_iter().cloned().collect();
    c.out.ops.push(o);
    f.update(Some(match (want_auto, now.is_some()) {
        (true, false) => "autostart on".to_string(),
        (true, true) => format!("{path} rewritten with the xl config"),
        (false, _) => "autostart off".to_string(),
    }));
}

#[cfg(test)]
mod tests {
    use crate::discover::Facts;
    use crate::plan::{Options, Plan};

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
        crate::plan::guests::plan(&mut p, &spec, &f, &Options::default());
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

    /// A disk added to a running Xen guest is attached live with `xl block-attach` after the
    /// config is rewritten, never by a restart; more memory is a restart; a config file that
    /// is not hostform's rendering is a restart too.
    #[test]
    fn an_added_disk_is_attached_live_with_xl_block_attach() {
        let text = |disks: &str, mem: &str| {
            format!(
                "host: h\ndisks: {{ d: {{ serial: S }} }}\nvolume-groups: {{ vg0: {{ pvs: [d], lvs: {{ a_root: {{ size: 8MiB }}, a_data: {{ size: 8MiB }} }} }} }}\nvm-defaults: {{ hypervisor: xen, memory: {mem} }}\nvms:\n  a: {{ autostart: false, disks: [{disks}] }}\n"
            )
        };
        let load = |t: &str| crate::spec::load_str("t.yaml", t).unwrap().spec;
        let one = "{ lv: vg0/a_root, target: xvda }";
        let two = "{ lv: vg0/a_root, target: xvda }, { lv: vg0/a_data, target: xvdb }";
        let before = load(&text(one, "128MiB"));
        let written = crate::kinds::xen::render_config(
            &crate::kinds::guest::GuestConfig::from_spec("a", before.vms.values().next().unwrap()),
        );
        let mut f = Facts::default();
        f.guests
            .xl_configs
            .insert("/etc/xen/a.xl".into(), written.clone());
        f.guests.xen = Some(crate::kinds::guest::XenFacts {
            running: [("a".to_string(), 3)].into(),
        });
        let run = |s: &crate::spec::Spec| {
            let mut p = Plan::default();
            crate::plan::guests::plan(&mut p, s, &f, &Options::default());
            p
        };
        assert!(run(&before).ops.is_empty());
        let p = run(&load(&text(two, "128MiB")));
        let ids: Vec<String> = p.ops.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(ids, ["71:guest:a:config", "72:guest:a:attach:xvdb"]);
        assert_eq!(
            p.ops[1].argv(),
            ["xl", "block-attach", "a", "phy:/dev/vg0/a_data,xvdb,rw"]
        );
        assert!(p.ops[1].after.iter().any(|a| a == "71:guest:a:config"));
        let c = p.changes.iter().find(|c| c.resource == "guest a").unwrap();
        assert_eq!(c.reason, "disk /dev/vg0/a_data as xvdb: applied live");
        // More memory: the config is rewritten, the change waits for a restart.
        let p = run(&load(&text(one, "256MiB")));
        let ids: Vec<String> = p.ops.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(ids, ["71:guest:a:config"]);
        let c = p.changes.iter().find(|c| c.resource == "guest a").unwrap();
        assert_eq!(
            c.reason,
            "memory 128 MiB → 256 MiB: restart needed (takes effect at the next start)"
        );
        // A file edited by hand is not read as hostform's: a restart, nothing attached.
        let mut f2 = f.clone();
        f2.guests.xl_configs.insert(
            "/etc/xen/a.xl".into(),
            written.replace("vcpus = 1", "vcpus = 1 # hand"),
        );
        let mut p = Plan::default();
        crate::plan::guests::plan(
            &mut p,
            &load(&text(two, "128MiB")),
            &f2,
            &Options::default(),
        );
        let ids: Vec<String> = p.ops.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(ids, ["71:guest:a:config"]);
    }

    /// A running Xen guest gets its entry in /etc/xen/auto (the same config, for xendomains);
    /// an entry equal to the config is left alone, and one for a guest without autostart is
    /// removed.
    #[test]
    fn xen_autostart_is_an_entry_in_etc_xen_auto() {
        let spec = |extra: &str| {
            crate::spec::load_str(
                "t.yaml",
                &format!(
                    "host: h\nvm-defaults: {{ hypervisor: xen, memory: 128MiB }}\nvms:\n  a: {{ {extra} }}\n"
                ),
            )
            .unwrap()
            .spec
        };
        let mut f = Facts::default();
        f.guests.xen = Some(Default::default());
        let run = |s: &crate::spec::Spec, f: &Facts| {
            let mut p = Plan::default();
            crate::plan::guests::plan(&mut p, s, f, &Options::default());
            p
        };
        let p = run(&spec(""), &f);
        let auto = p
            .ops
            .iter()
            .find(|o| o.id == "73:guest:a:autostart")
            .expect("autostart op");
        let w = auto.write().cloned().unwrap();
        assert_eq!(w.path, "/etc/xen/auto/a.xl");
        let config = p
            .ops
            .iter()
            .find(|o| o.id == "71:guest:a:config")
            .and_then(|o| o.write().cloned())
            .unwrap();
        assert_eq!(w.content, config.content);
        assert!(auto.after.iter().any(|a| a == "71:guest:a:config"));

        f.guests
            .xl_configs
            .insert("/etc/xen/a.xl".into(), config.content.clone());
        f.guests
            .xl_configs
            .insert("/etc/xen/auto/a.xl".into(), config.content.clone());
        f.guests.xen = Some(crate::kinds::guest::XenFacts {
            running: [("a".to_string(), 1)].into(),
        });
        assert!(run(&spec(""), &f).ops.is_empty());
        let p = run(&spec("autostart: false"), &f);
        let ids: Vec<String> = p.ops.iter().map(|o| o.id.to_string()).collect();
        assert_eq!(ids, ["73:guest:a:autostart"]);
        assert_eq!(p.ops[0].argv(), ["rm", "-f", "--", "/etc/xen/auto/a.xl"]);
    }
}
