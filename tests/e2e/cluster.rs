//! Two hosts of a cluster in one boot (`sandbox::cluster`): a shared LUN, lvmlockd and sanlock
//! on each (host_ids 1 and 2), hostform inside each VM with the specs of
//! tests/specs/e2e/cluster/ (one cluster file included by both hosts).

use std::time::Duration;

use hostform::sandbox::SandboxConfig;
use hostform::sandbox::cluster::{self, Lun, Member};

use crate::common::*;

/// - kvm1 (the init host) applies: `vgcreate --shared`, the LV created once; a second plan is
///   empty;
/// - kvm2 sees the shared VG, its plan starts the lockspace (`vgchange --lock-start`) and
///   creates nothing; after apply its second plan is empty;
/// - kvm1 runs the guest `web` (its LV active exclusively there);
/// - kvm2 told to run a guest whose LV kvm1 holds: lvmlockd refuses the activation, the guest
///   does not start, and hostform's message names kvm1.
#[test]
fn a_shared_vg_made_on_one_host_is_used_and_guarded_on_the_other() {
    let Some(_vm) = vm_alone() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    // The specs and the script, copied into the workdir both VMs share at its own path: a
    // checkout under /tmp is hidden inside by the VM's own /tmp.
    let specs = work.path().join("specs");
    std::fs::create_dir(&specs).expect("specs dir");
    for e in std::fs::read_dir(root().join("tests/specs/e2e/cluster")).expect("cluster specs") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), specs.join(e.file_name())).expect("copy a spec");
    }
    std::fs::copy(
        root().join("scripts/sandbox/libvirt-up.sh"),
        work.path().join("libvirt-up.sh"),
    )
    .expect("copy libvirt-up.sh");
    let h = env!("CARGO_BIN_EXE_hostform");
    let a = format!(
        r#"set -u
W={w}; S={s}; H={h}
bash $W/libvirt-up.sh
$H apply $S/kvm1.yaml --auto-approve > /tmp/apply 2>&1; echo apply-rc=$?; cat /tmp/apply
$H plan $S/kvm1.yaml --detailed-exitcode > /tmp/plan2 2>&1; echo second-plan-rc=$?; cat /tmp/plan2
echo active=$(lvs --noheadings -o lv_active_exclusively vgshared/web_root | tr -d ' ')
echo web-on-a=$(virsh -c qemu:///system domstate web 2>&1)
touch $W/a.done
until [ -e $W/b.done ]; do sleep 0.2; done
"#,
        w = work.path().display(),
        s = specs.display(),
    );
    let b = format!(
        r#"set -u
W={w}; S={s}; H={h}
until [ -e $W/a.done ]; do sleep 0.2; done
pvscan --cache >/dev/null 2>&1
echo ==PLAN==; $H plan $S/kvm2.yaml 2>&1; echo ==/PLAN==
$H apply $S/kvm2.yaml --auto-approve > /tmp/apply 2>&1; echo apply-rc=$?; cat /tmp/apply
$H plan $S/kvm2.yaml --detailed-exitcode > /tmp/plan2 2>&1; echo second-plan-rc=$?; cat /tmp/plan2
echo vgs=$(vgs --noheadings -o vg_name,vg_attr vgshared 2>/dev/null | tr -s ' ')
bash $W/libvirt-up.sh
echo ==WEB==; $H apply $S/kvm2-web.yaml --auto-approve 2>&1; echo web-rc=$?; echo ==/WEB==
echo web-state=$(virsh -c qemu:///system domstate web 2>&1)
touch $W/b.done
"#,
        w = work.path().display(),
        s = specs.display(),
    );
    let member = |name: &str, id: u16, script: String| {
        let mut cfg = SandboxConfig::new(root(), vec!["bash".into(), "-c".into(), script]);
        cfg.hostname = name.into();
        cfg.exe = Some(h.into());
        cfg.memory_mib = 768;
        cfg.timeout = Duration::from_secs(400);
        Member { cfg, host_id: id }
    };
    let mut ma = member("kvm1", 1, a);
    let mut mb = member("kvm2", 2, b);
    let (oa, ob) = (work.path().join("a.out"), work.path().join("b.out"));
    let outs: Vec<Box<dyn std::io::Write + Send>> = vec![
        Box::new(std::fs::File::create(&oa).expect("a.out")),
        Box::new(std::fs::File::create(&ob).expect("b.out")),
    ];
    let lun = Lun {
        serial: "HF-LUN0".into(),
        size_bytes: 1 << 30,
        by_id_aliases: Vec::new(),
    };
    // The hosts take turns through files in a writable workdir both VMs share, which also
    // holds the specs and the script.
    for m in [&mut ma, &mut mb] {
        m.cfg.workdir = work.path().to_path_buf();
        m.cfg.workdir_writable = true;
    }
    let results = cluster::run(&[ma, mb], &lun, None, outs).expect("cluster boots");
    let a = std::fs::read_to_string(&oa).unwrap_or_default();
    let b = std::fs::read_to_string(&ob).unwrap_or_default();
    eprintln!("==== kvm1\n{a}\n==== kvm2\n{b}");
    for r in &results {
        match r {
            Ok(o) => {
                note_outcome(o);
                eprintln!(
                    "ready in {:.1}s, total {:.1}s",
                    o.boot_ready.as_secs_f64(),
                    o.total.as_secs_f64()
                );
            }
            Err(e) => panic!("a host failed: {e}"),
        }
    }
    // kvm1 created the shared VG and the LV, once; nothing is left to do there.
    assert!(a.contains("apply-rc=0"), "{a}");
    assert!(a.contains("vgcreate --quiet --shared vgshared"), "{a}");
    assert!(a.contains("second-plan-rc=0"), "{a}");
    assert!(a.contains("active=activeexclusively"), "{a}");
    assert!(a.contains("web-on-a=running"), "{a}");
    // kvm2 sees it, starts its lockspace and creates nothing.
    let plan = b.split("==PLAN==").nth(1).unwrap_or("");
    assert!(plan.contains("vgchange --lock-start vgshared"), "{plan}");
    assert!(!plan.contains("vgcreate"), "{plan}");
    assert!(!plan.contains("lvcreate"), "{plan}");
    assert!(b.contains("apply-rc=0"), "{b}");
    assert!(b.contains("second-plan-rc=0"), "{b}");
    assert!(b.contains("vgs= vgshared wz--ns"), "{b}");
    // The guest's LV is held by kvm1: refused by lvmlockd, named by hostform, not started.
    let web = b.split("==WEB==").nth(1).unwrap_or("");
    assert!(
        web.contains("Failed to lock logical volume vgshared/web_root"),
        "{web}"
    );
    assert!(
        web.contains("hostform: vgshared/web_root is held by kvm1 (sanlock host_id 1)"),
        "{web}"
    );
    assert!(!web.contains("web-rc=0"), "{web}");
    assert!(web.contains("[skipped] start web"), "{web}");
}
