//! What a saved plan may contain: only what hostform itself produces. A saved plan is an
//! approval of a plan, not a program: its checksum is unkeyed (anyone can recompute it), so
//! `show` and `apply` check every operation when the file is loaded, before printing or running
//! anything, and `apply` then plans again and requires the same plan ([`super::saved::check_replan`]).
//!
//! The load-time check refuses, naming the operation:
//! - a program that is not one hostform runs ([`PROGRAMS`]), or one given as a path (a `/`);
//! - a destructive operation in a plan made without `--allow-destroy`, whether the plan marks it
//!   destructive or an edit marked it safe ([`DESTRUCTIVE`]);
//! - a file written or removed outside the files hostform manages ([`allowed_write`]).

use crate::kinds::{net::NETWORKD_DIR, netconf};
use crate::plan::{Op, Risk};

/// Every program an operation of a plan can run, as the planners build them
/// (`src/plan/{storage,storage/teardown,net,guests}.rs`). `hostform-stop-guest` and
/// `hostform-await-dead` are run in-process by `apply`; `ssh` runs only `lvchange` on another
/// host of a cluster (a guest's move).
pub const PROGRAMS: &[&str] = &[
    "hostform-await-dead",
    "hostform-stop-guest",
    "ip",
    "lvchange",
    "lvconvert",
    "lvcreate",
    "lvextend",
    "lvreduce",
    "lvremove",
    "mdadm",
    "mkfs.ext4",
    "mkfs.xfs",
    "mkswap",
    "partx",
    "pvcreate",
    "pvremove",
    "qemu-img",
    "rm",
    "sfdisk",
    "ssh",
    "vgchange",
    "vgcreate",
    "vgextend",
    "vgremove",
    "virsh",
    "wipefs",
    "xl",
];

/// Programs hostform only ever runs as a destructive operation: they erase signatures or
/// remove or shrink storage. One of these in a plan made without `--allow-destroy` was put
/// there by hand, whatever risk the file gives it.
pub const DESTRUCTIVE: &[&str] = &[
    "lvconvert",
    "lvreduce",
    "lvremove",
    "pvremove",
    "vgremove",
    "wipefs",
];

/// Whether hostform writes or removes the file `path`: its ifupdown file, its networkd files
/// (`10-hostform-*`), or a guest's xl config `NAME.xl` for the op's guest `NAME`. The path must
/// be absolute and plain (no `.` or `..` components, no empty ones).
pub fn allowed_write(path: &str, op: &Op) -> bool {
    if !path.starts_with('/')
        || path[1..]
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return false;
    }
    if path == netconf::IFUPDOWN_FILE {
        return true;
    }
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    if dir == NETWORKD_DIR && netconf::is_networkd_name(path) {
        return true;
    }
    // A guest's xl config: the config directory is the spec's (`xen: config-dir:`), and the
    // re-plan at apply checks it is the spec's; here, the file must be that guest's.
    op.resource
        .strip_prefix("guest ")
        .is_some_and(|g| file == format!("{g}.xl"))
}

/// Check every operation of a saved plan against what hostform produces, for a plan made
/// with `allow_destroy` or not. The error names the offending operation.
pub fn check_ops(ops: &[Op], allow_destroy: bool) -> Result<(), String> {
    for op in ops {
        check_op(op, allow_destroy).map_err(|why| format!("operation {}: {why}", op.id))?;
    }
    Ok(())
}

fn check_op(op: &Op, allow_destroy: bool) -> Result<(), String> {
    let shown =
        || crate::runner::show_argv(&op.argv().iter().map(String::as_str).collect::<Vec<_>>());
    if let Some(w) = op.write() {
        if !op.argv().is_empty() {
            return Err("it both writes a file and runs a command".into());
        }
        if !allowed_write(&w.path, op) {
            return Err(format!(
                "it writes {}, which is not a file hostform manages",
                w.path
            ));
        }
    } else {
        let argv = op.argv();
        let Some(prog) = argv.first() else {
            return Err("it runs nothing".into());
        };
        if prog.contains('/') {
            return Err(format!(
                "`{}`: the program {prog} is a path, and hostform runs programs by name only",
                shown()
            ));
        }
        if !PROGRAMS.contains(&prog.as_str()) {
            return Err(format!(
                "`{}`: {prog} is not a program hostform runs",
                shown()
            ));
        }
        if prog == "rm" {
            // `rm -f -- PATH`: the networkd files of bridges gone from the spec.
            let ok = op.argv().len() == 4
                && op.argv()[1] == "-f"
                && op.argv()[2] == "--"
                && allowed_write(&op.argv()[3], op);
            if !ok {
                return Err(format!(
                    "`{}`: hostform removes only the files it manages",
                    shown()
                ));
            }
        }
        if prog == "ssh" {
            // The other host's half of a guest's move, and nothing else: the argv must be the
            // one the planner builds from its address, mode and LV (the same grammar).
            let a = op.argv();
            let ok = a.len() == 9
                && a[4].strip_prefix("root@").is_some_and(|addr| {
                    crate::plan::guests::peer_lvchange(addr, &a[7], &a[8]).as_ref() == Some(&a)
                });
            if !ok {
                return Err(format!(
                    "`{}`: hostform runs only `lvchange -asy|-aey VG/LV` on another host",
                    shown()
                ));
            }
        }
        if DESTRUCTIVE.contains(&prog.as_str()) && op.risk != Risk::Destructive {
            return Err(format!(
                "`{}` is destructive, and the plan marks it safe",
                shown()
            ));
        }
    }
    if op.risk == Risk::Destructive && !allow_destroy {
        return Err(format!(
            "`{}` is destructive, and the plan was made without --allow-destroy",
            op.summary
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Options;
    use std::collections::BTreeSet;

    /// A saved plan of a guest's move loads: its ssh is a program hostform runs. An ssh edited
    /// to run anything else on the other host is refused at load. (Planned from captures: g1
    /// running here, tests/fixtures/guests; the shared VG of tests/fixtures/cluster-a.)
    #[test]
    fn a_saved_move_loads_and_an_edited_ssh_does_not() {
        use crate::runner::fixtures::{libvirt_etc, scripted, text};
        let r = libvirt_etc(scripted("guests", &["list-one-running"]))
            .with_file(crate::kinds::guest::LIBVIRT_SOCKET, "");
        let d = |n: &str| text(&format!("cluster-a/{n}"));
        let facts = crate::discover::Facts {
            guests: crate::kinds::guest::discover(&r),
            lvm: crate::kinds::lvm::Lvm::parse(
                &d("pvs-created.json"),
                &d("vgs-created.json"),
                &d("lvs-created.json"),
            )
            .expect("the captured reports"),
            ..Default::default()
        };
        let y = "host: kvm1
cluster: { hosts: { kvm1: { host-id: 1 }, kvm2: { host-id: 2, address: 10.0.9.2 } } }
disks: { lun: { serial: HF-LUN0 }, lun1: { serial: HF-LUN1 } }
bridges: { br0: { ports: [eth0] } }
volume-groups:
  vg0: { pvs: [lun1], shared: true, lvs: { g1_root: { size: 64MiB } } }
  vgshared: { pvs: [lun], shared: true, lvs: { web: { size: 64MiB } } }
vms:
  g1: { hypervisor: libvirt, memory: 64MiB, disks: [{ lv: vg0/g1_root, target: vda }], nics: [{ bridge: br0, mac: \"52:54:00:00:00:01\" }], runs-on: kvm2 }
";
        let spec = match crate::spec::load_str("t.yaml", y) {
            Ok(l) => l.spec,
            Err(f) => panic!("{:?}", f.diagnostics),
        };
        // The guests' room alone: the captures hold no disks for the storage room to find.
        let mut plan = crate::plan::Plan::default();
        crate::plan::guests::plan(&mut plan, &spec, &facts, &Options::default());
        let ssh: Vec<_> = plan
            .ops
            .iter()
            .filter(|o| o.program() == Some("ssh"))
            .collect();
        assert_eq!(ssh.len(), 2, "{:?} {:?}", plan.ops, plan.refusals);
        check_ops(&plan.ops, false).expect("a move's operations are hostform's own");
        for (i, word) in [
            (6, "rm"),
            (7, "-rf"),
            (4, "-oProxyCommand=x"),
            (4, "root@-oProxyCommand=x"),
            (4, "root@10.0.9.3;reboot"),
            (8, "vg/../x/y"),
        ] {
            let mut ops = plan.ops.clone();
            let o = ops.iter_mut().find(|o| o.program() == Some("ssh")).unwrap();
            if let crate::plan::Effect::Run { argv, .. } = &mut o.effect {
                argv[i] = word.into();
            }
            let e = check_ops(&ops, false).unwrap_err();
            assert!(e.contains("only `lvchange -asy|-aey VG/LV`"), "{word}: {e}");
        }
    }

    /// Every spec of the tests that validates, planned against every captured host, with and
    /// without `--allow-destroy`: each program is in [`PROGRAMS`], and each plan passes the
    /// load-time check (a real plan is never refused).
    #[test]
    fn the_programs_cover_every_plan_of_the_fixtures() {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut specs = Vec::new();
        for dir in ["tests/specs/e2e", "tests/specs/plan-format", "examples"] {
            let Ok(rd) = std::fs::read_dir(format!("{root}/{dir}")) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    specs.push(p);
                }
            }
        }
        specs.sort();
        let mut scenarios: Vec<String> = std::fs::read_dir(format!("{root}/tests/fixtures"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().join("COMMANDS").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        scenarios.sort();
        let facts: Vec<_> = scenarios
            .iter()
            .filter_map(|s| {
                crate::discover::discover(&crate::runner::fixtures::runner(s))
                    .ok()
                    .map(|d| d.facts)
            })
            .collect();
        assert!(facts.len() >= 5, "{} of {scenarios:?}", facts.len());
        let mut seen = BTreeSet::new();
        let mut destructive_seen = BTreeSet::new();
        let mut planned = 0;
        for path in &specs {
            let Ok(loaded) = crate::spec::load(path, None) else {
                continue;
            };
            for f in &facts {
                for allow_destroy in [false, true] {
                    let plan = crate::plan::plan_host(
                        &loaded.spec,
                        f,
                        &Options {
                            allow_destroy,
                            drain: None,
                        },
                    );
                    for op in &plan.ops {
                        if let Some(p) = op.argv().first() {
                            seen.insert(p.clone());
                            if op.risk == Risk::Destructive {
                                destructive_seen.insert(p.clone());
                            }
                        }
                    }
                    planned += plan.ops.len();
                    if let Err(e) = check_ops(&plan.ops, allow_destroy) {
                        panic!("{} refused: {e}", path.display());
                    }
                }
            }
        }
        assert!(planned > 100, "{planned}");
        for p in &seen {
            assert!(PROGRAMS.contains(&p.as_str()), "{p} is not in PROGRAMS");
        }
        // The fixtures exercise the destructive programs, and the common ones.
        for p in ["lvremove", "sfdisk", "mdadm", "lvcreate", "mkfs.ext4"] {
            assert!(seen.contains(p), "no plan runs {p}: {seen:?}");
        }
        assert!(
            destructive_seen.contains("lvremove"),
            "{destructive_seen:?}"
        );
    }

    fn op(argv: &[&str], risk: Risk) -> Op {
        let mut o = Op::run(
            crate::plan::OpId::new(
                50,
                crate::plan::Address::lv("vg0", "data"),
                crate::plan::Verb::Create,
            ),
            "lv vg0/data",
            argv.join(" "),
            argv.iter().map(|a| a.to_string()).collect(),
        );
        o.risk = risk;
        o
    }

    #[test]
    fn what_hostform_does_not_produce_is_refused_by_name() {
        let refused = |o: Op, allow: bool| check_ops(&[o], allow).unwrap_err();
        let e = refused(op(&["sh", "-c", "id"], Risk::Safe), true);
        assert!(
            e.contains("operation 50:lv:vg0/data:create") && e.contains("sh is not a program"),
            "{e}"
        );
        let e = refused(op(&["../../tmp/x"], Risk::Safe), true);
        assert!(e.contains("is a path"), "{e}");
        let e = refused(
            op(&["/usr/sbin/wipefs", "-a", "/dev/vda"], Risk::Destructive),
            true,
        );
        assert!(e.contains("is a path"), "{e}");
        let e = refused(op(&["wipefs", "-a", "/dev/vda"], Risk::Destructive), false);
        assert!(e.contains("without --allow-destroy"), "{e}");
        let e = refused(op(&["wipefs", "-a", "/dev/vda"], Risk::Safe), true);
        assert!(e.contains("marks it safe"), "{e}");
        let e = refused(op(&["rm", "-f", "--", "/etc/shadow"], Risk::Safe), true);
        assert!(e.contains("only the files it manages"), "{e}");
        let mut w = op(&[], Risk::Safe);
        w.effect = crate::plan::Effect::Write(crate::plan::FileWrite {
            path: "/etc/sudoers.d/x".into(),
            content: String::new(),
            mode: 0o644,
            diff: String::new(),
        });
        let e = refused(w.clone(), true);
        assert!(e.contains("/etc/sudoers.d/x"), "{e}");
        for p in [
            "/etc/xen/../sudoers.d/g1.xl",
            "/etc/systemd/network/../../cron.d/10-hostform-br0.network",
        ] {
            let mut g = w.clone();
            g.resource = "guest g1".into();
            g.write_mut().unwrap().path = p.into();
            assert!(check_ops(&[g], true).is_err(), "{p}");
        }
        // What hostform writes passes.
        let mut g = w.clone();
        g.resource = "guest g1".into();
        g.write_mut().unwrap().path = "/etc/xen/g1.xl".into();
        check_ops(&[g], false).unwrap();
        check_ops(&[op(&["lvcreate", "-n", "data", "vg0"], Risk::Safe)], false).unwrap();
        check_ops(
            &[op(&["wipefs", "-a", "/dev/vda"], Risk::Destructive)],
            true,
        )
        .unwrap();
    }
}
