//! Two hosts of a cluster in one boot (`sandbox::cluster`): a shared LUN, lvmlockd and sanlock
//! on each (host_ids 1 and 2), hostform inside each VM with the specs of
//! tests/specs/e2e/cluster/ (one cluster file included by both hosts).

use std::time::Duration;

use hostform::sandbox::SandboxConfig;
use hostform::sandbox::cluster::{self, Lun, Member};

use crate::common::*;

/// The guest's counter (tests/fixtures/counter): LBA 1 of its disk, read past the page cache,
/// as `HFCN N`.
const COUNT: &str = r#"count() { dd if=/dev/vgshared/web_root bs=512 skip=1 count=1 iflag=direct 2>/dev/null | od -A n -c -N 4 | tr -d ' \n'; printf ' '; dd if=/dev/vgshared/web_root bs=512 skip=1 count=1 iflag=direct 2>/dev/null | od -A n -t u4 -j 4 -N 4 | tr -d ' \n'; }"#;

/// The mode of the lock lvmlockd holds on web_root on this host (`ex`, `sh`; nothing when it
/// holds none): `lvs` says "active exclusively" for a shared lock too.
const MODE: &str = r#"mode() { u=$(lvs --noheadings -o lv_uuid vgshared/web_root | tr -d ' '); lvmlockctl --info | awk -v u="$u" '$1 == "LK" && $2 == "LV" && $4 == u { print $3 }'; }"#;

/// Waits for the other host's file `$W/NAME`: `await NAME`. Between looks it sleeps in bash's
/// own `read -t` on a FIFO nobody writes, not in `sleep`: under TCG a fork and exec of
/// `sleep` five times a second took about a quarter of the waiting host's one CPU.
const AWAIT: &str = r#"mkfifo /tmp/nap; exec {nap}<>/tmp/nap
await() { until [ -e "$W/$1" ]; do read -t 0.2 -u $nap || true; done; }"#;

/// Seconds for which kvm1's sanlock has seen no renewal of host_id 2's lease (`last_check -
/// last_live` in `sanlock client host_status -D`; 0 when it cannot tell): a look far cheaper
/// than a plan's discovery, to know when a plan can say that kvm2 is silent.
const SILENT: &str = r#"silent() { sanlock client host_status -D 2>/dev/null | awk '$1 == 2 && $2 == "timestamp" { h = 1; next } /^[0-9]/ { h = 0 } h && sub(/^[ \t]*last_check=/, "") { c = $0 } h && sub(/^[ \t]*last_live=/, "") { l = $0 } END { print c - l + 0 }'; }"#;

/// Reads `KEY=N N` lines: the counter after `KEY=HFCN `.
fn counter(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=HFCN ")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key}=HFCN N in:\n{out}"))
}

/// - kvm1 (the init host) applies: `vgcreate --shared`, the LV created once; a second plan is
///   empty;
/// - kvm2 sees the shared VG, its plan starts the lockspace (`vgchange --lock-start`) and
///   creates nothing; after apply its second plan is empty;
/// - kvm1 runs the guest `web` (its LV active exclusively there);
/// - kvm2 told to run a guest whose LV kvm1 holds: lvmlockd refuses the activation, the guest
///   does not start nor is defined, and hostform's message names kvm1;
/// - the spec moves `web` to kvm2: kvm1's plan migrates it live over the private link (its LV
///   shared only for the move, then exclusive on kvm2), and the guest's counter goes on
///   counting on kvm2; both hosts' next plans are empty;
/// - `hostform drain kvm2` sends it back to kvm1, live, and kvm2 stays drained (both plans
///   empty); `hostform undrain kvm2`, run on kvm1, sends it home to kvm2.
#[test]
fn a_shared_vg_is_guarded_by_lvmlockd_and_a_guest_moves_live() {
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
    // The guest's disk image: the counting boot sector, in a 4 MiB raw image (one extent).
    let mut img =
        std::fs::read(root().join("tests/fixtures/counter/counter.bin")).expect("counter.bin");
    img.resize(4 << 20, 0);
    std::fs::write(specs.join("counter.img"), img).expect("counter.img");
    for script in ["libvirt-up.sh", "ssh-up.sh"] {
        std::fs::copy(
            root().join("scripts/sandbox").join(script),
            work.path().join(script),
        )
        .expect("copy a sandbox script");
    }
    // One key pair for both hosts' sshd and root's ssh (as an operator's hosts trust each other).
    let keys = work.path().join("ssh");
    std::fs::create_dir(&keys).expect("ssh dir");
    for (file, comment) in [("host_key", "host"), ("id", "root")] {
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(keys.join(file))
            .status()
            .expect("ssh-keygen (openssh-client)");
        assert!(st.success(), "ssh-keygen failed");
    }
    let h = env!("CARGO_BIN_EXE_hostform");
    let a = format!(
        r#"set -u
W={w}; S={s}; H={h}
{count}
{mode}
{await_}
{silent}
bash $W/libvirt-up.sh
$H apply $S/kvm1.yaml --auto-approve > /tmp/apply 2>&1; echo apply-rc=$?; cat /tmp/apply
$H plan $S/kvm1.yaml --detailed-exitcode > /tmp/plan2 2>&1; echo second-plan-rc=$?; cat /tmp/plan2
echo active=$(lvs --noheadings -o lv_active_exclusively vgshared/web_root | tr -d ' ') lock=$(mode)
echo web-on-a=$(virsh -c qemu:///system domstate web 2>&1)
sh $W/ssh-up.sh $W/ssh
touch $W/a.done
await b.done
# web placed on kvm2: kvm1's plan moves it there, live.
echo count-before=$(count)
$H apply $S/kvm1-moved.yaml --auto-approve > /tmp/move 2>&1; echo move-rc=$?
echo ==MOVEPLAN==; cat /tmp/move; echo ==/MOVEPLAN==
$H plan $S/kvm1-moved.yaml --detailed-exitcode > /tmp/plan3 2>&1; echo moved-second-plan-rc=$?; cat /tmp/plan3
echo web-on-a-after=$(virsh -c qemu:///system domstate web 2>&1 | head -1)
echo active-a-after=$(lvs --noheadings -o lv_active_locally vgshared/web_root | tr -d ' ')
touch $W/moved
# kvm2 drains itself: web comes back here. kvm1's plan then has nothing to do.
await b.drained
echo web-on-a-drained=$(virsh -c qemu:///system domstate web 2>&1)
echo count-drained=$(count)
$H plan $S/kvm1-moved.yaml --detailed-exitcode > /tmp/plan5 2>&1; echo drained-plan-rc=$?; cat /tmp/plan5
# Undrained from here: kvm1's plan sends web back to kvm2, its runs-on host.
$H undrain kvm2 $S/kvm1-moved.yaml --auto-approve > /tmp/undrain 2>&1; echo undrain-rc=$?; cat /tmp/undrain
echo web-on-a-undrained=$(virsh -c qemu:///system domstate web 2>&1 | head -1)
$H plan $S/kvm1-moved.yaml --detailed-exitcode > /tmp/plan6 2>&1; echo undrained-plan-rc=$?; cat /tmp/plan6
touch $W/undrained
await b.end
# kvm2 loses power while it runs web. kvm1's plan says so once sanlock sees it silent for
# more than two renewals (40 s; its last renewal was at most 20 s before the power went):
# no plan can say it sooner than 20 s from now, and each plan costs seconds of CPU here, so
# sanlock's own view is watched until then.
sleep 20
for i in $(seq 60); do [ "$(silent)" -gt 40 ] && break; read -t 2 -u $nap || true; done
for i in $(seq 30); do
  $H plan $S/kvm1-moved.yaml > /tmp/plan9 2>&1
  grep -q "has not renewed its lease" /tmp/plan9 && break
  sleep 4
done
echo ==DOWNPLAN==; cat /tmp/plan9; echo ==/DOWNPLAN==
# Drained from here: web starts on kvm1 once sanlock calls kvm2 dead.
t0=$(date +%s)
$H drain kvm2 $S/kvm1-moved.yaml --auto-approve > /tmp/failover 2>&1; echo failover-rc=$?
echo failover-took=$(( $(date +%s) - t0 ))
echo ==FAILOVER==; cat /tmp/failover; echo ==/FAILOVER==
echo web-on-a-failover=$(virsh -c qemu:///system domstate web 2>&1 | head -1)
echo active-a-failover=$(lvs --noheadings -o lv_active_exclusively vgshared/web_root | tr -d ' ') lock=$(mode)
sleep 2; echo count-failover=$(count); sleep 2; echo count-failover-later=$(count)
$H plan $S/kvm1-moved.yaml --detailed-exitcode > /tmp/plan10 2>&1; echo failover-plan-rc=$?; cat /tmp/plan10
"#,
        w = work.path().display(),
        s = specs.display(),
        count = COUNT,
        mode = MODE,
        await_ = AWAIT,
        silent = SILENT,
    );
    let b = format!(
        r#"set -u
W={w}; S={s}; H={h}
{count}
{mode}
{await_}
await a.done
pvscan --cache >/dev/null 2>&1
$H apply $S/kvm2.yaml --auto-approve > /tmp/apply 2>&1; echo apply-rc=$?
echo ==PLAN==; cat /tmp/apply; echo ==/PLAN==
$H plan $S/kvm2.yaml --detailed-exitcode > /tmp/plan2 2>&1; echo second-plan-rc=$?; cat /tmp/plan2
echo vgs=$(vgs --noheadings -o vg_name,vg_attr vgshared 2>/dev/null | tr -s ' ')
bash $W/libvirt-up.sh
echo ==WEB==; $H apply $S/kvm2-web.yaml --auto-approve 2>&1; echo web-rc=$?; echo ==/WEB==
echo web-state=$(virsh -c qemu:///system domstate web 2>&1 | head -1)
sh $W/ssh-up.sh $W/ssh
touch $W/b.done
await moved
echo web-on-b=$(virsh -c qemu:///system domstate web 2>&1)
echo active-b=$(lvs --noheadings -o lv_active_exclusively vgshared/web_root | tr -d ' ') lock=$(mode)
echo count-after=$(count); sleep 2; echo count-later=$(count)
$H plan $S/kvm2-web.yaml --detailed-exitcode > /tmp/plan4 2>&1; echo b-moved-plan-rc=$?; cat /tmp/plan4
# Drain kvm2: its guest goes to kvm1, live, and kvm2 stays drained.
$H drain kvm2 $S/kvm2-web.yaml --auto-approve > /tmp/drain 2>&1; echo drain-rc=$?; cat /tmp/drain
echo vg-tags=$(vgs --noheadings -o vg_tags vgshared | tr -d ' ')
$H plan $S/kvm2-web.yaml --detailed-exitcode > /tmp/plan7 2>&1; echo b-drained-plan-rc=$?; cat /tmp/plan7
touch $W/b.drained
await undrained
echo web-on-b-undrained=$(virsh -c qemu:///system domstate web 2>&1)
echo active-b-undrained=$(lvs --noheadings -o lv_active_exclusively vgshared/web_root | tr -d ' ') lock=$(mode)
echo count-undrained=$(count)
echo vg-tags-undrained=$(vgs --noheadings -o vg_tags vgshared | tr -d ' ')
$H plan $S/kvm2-web.yaml --detailed-exitcode > /tmp/plan8 2>&1; echo b-undrained-plan-rc=$?; cat /tmp/plan8
# Power lost, with web running here: no shutdown, no sync.
echo powering-off; sleep 1
touch $W/b.end
echo o > /proc/sysrq-trigger
sleep 60
"#,
        w = work.path().display(),
        s = specs.display(),
        count = COUNT,
        mode = MODE,
        await_ = AWAIT,
    );
    let member = |name: &str, id: u16, script: String| {
        let mut cfg = SandboxConfig::new(root(), vec!["bash".into(), "-c".into(), script]);
        cfg.hostname = name.into();
        cfg.exe = Some(h.into());
        cfg.memory_mib = 768;
        cfg.timeout = Duration::from_secs(700);
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
    match &results[0] {
        Ok(o) => {
            note_outcome(o);
            eprintln!(
                "kvm1 ready in {:.1}s, total {:.1}s",
                o.boot_ready.as_secs_f64(),
                o.total.as_secs_f64()
            );
        }
        Err(e) => panic!("kvm1 failed: {e}"),
    }
    // kvm2 lost its power (sysrq o) at the end: its VM stopped without a status.
    match &results[1] {
        Err(e) => assert!(format!("{e:?}").contains("reboot: Power down"), "{e:?}"),
        Ok(o) => panic!("kvm2 was to lose its power, yet its command ended: {o:?}"),
    }
    // kvm1 created the shared VG and the LV, once; nothing is left to do there.
    assert!(a.contains("apply-rc=0"), "{a}");
    assert!(a.contains("vgcreate --quiet --shared vgshared"), "{a}");
    assert!(a.contains("second-plan-rc=0"), "{a}");
    assert!(a.contains("active=activeexclusively lock=ex"), "{a}");
    assert!(a.contains("web-on-a=running"), "{a}");
    // kvm2 sees it, starts its lockspace and creates nothing (the plan its apply shows).
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
    // Nothing of it is defined on kvm2: the exclusive lock comes before the definition.
    assert!(web.contains("[skipped] define web"), "{web}");
    assert!(
        b.contains("web-state=error: failed to get domain 'web'"),
        "{b}"
    );

    // kvm1's plan (as its apply shows it), once the spec places web on kvm2: a live move,
    // shared only for the move.
    let plan = a.split("==MOVEPLAN==").nth(1).unwrap_or("");
    for step in [
        "lvchange -asy vgshared/web_root",
        "ssh -o BatchMode=yes -T root@10.254.0.2 -- lvchange -asy vgshared/web_root",
        "virsh -c qemu:///system migrate --live --persistent --undefinesource web qemu+ssh://root@10.254.0.2/system tcp://10.254.0.2",
        "lvchange -an vgshared/web_root",
        "ssh -o BatchMode=yes -T root@10.254.0.2 -- lvchange -aey vgshared/web_root",
        "virsh -c qemu+ssh://root@10.254.0.2/system autostart web",
    ] {
        assert!(plan.contains(step), "{step}:\n{plan}");
    }
    assert!(a.contains("move-rc=0"), "{a}");
    assert!(a.contains("moved-second-plan-rc=0"), "{a}");
    assert!(
        a.contains("web-on-a-after=error: failed to get domain 'web'"),
        "{a}"
    );
    assert!(
        a.lines().any(|l| l.trim_end() == "active-a-after="),
        "web_root still active on kvm1:\n{a}"
    );
    // On kvm2: running, its LV exclusive there, and the guest's counter went on counting from
    // where it was on kvm1 (a restart would have started it again from 1).
    assert!(b.contains("web-on-b=running"), "{b}");
    assert!(b.contains("active-b=activeexclusively lock=ex"), "{b}");
    let (before, after, later) = (
        counter(&a, "count-before"),
        counter(&b, "count-after"),
        counter(&b, "count-later"),
    );
    eprintln!("counter: {before} on kvm1 before the move, {after} then {later} on kvm2");
    assert!(
        before >= 20,
        "the guest counted for less than 5 s before the move: {before}"
    );
    assert!(
        after > before,
        "{after} after the move, {before} before: restarted?"
    );
    assert!(
        later > after,
        "the guest stopped counting on kvm2: {after} then {later}"
    );
    assert!(b.contains("b-moved-plan-rc=0"), "{b}");

    // kvm2 drained: its guest went to kvm1 live (the counter goes on), the drain is a tag on
    // the shared VG, and neither host's plan moves it back while kvm2 is drained.
    assert!(b.contains("drain-rc=0"), "{b}");
    assert!(
        b.contains("vgchange --addtag hostform_drained_kvm2 vgshared"),
        "{b}"
    );
    assert!(b.contains("vg-tags=hostform_drained_kvm2"), "{b}");
    assert!(b.contains("b-drained-plan-rc=0"), "{b}");
    assert!(a.contains("web-on-a-drained=running"), "{a}");
    assert!(a.contains("drained-plan-rc=0"), "{a}");
    let drained = counter(&a, "count-drained");
    assert!(
        drained > later,
        "{drained} on kvm1 after the drain, {later} before"
    );
    // Undrained from kvm1: back on kvm2, exclusive there, still counting; the tag is gone
    // and both plans are empty.
    assert!(a.contains("undrain-rc=0"), "{a}");
    assert!(
        a.contains("vgchange --deltag hostform_drained_kvm2 vgshared"),
        "{a}"
    );
    assert!(
        a.contains("web-on-a-undrained=error: failed to get domain 'web'"),
        "{a}"
    );
    assert!(a.contains("undrained-plan-rc=0"), "{a}");
    assert!(b.contains("web-on-b-undrained=running"), "{b}");
    assert!(
        b.contains("active-b-undrained=activeexclusively lock=ex"),
        "{b}"
    );
    assert!(
        b.lines().any(|l| l.trim_end() == "vg-tags-undrained="),
        "{b}"
    );
    let back = counter(&b, "count-undrained");
    assert!(back > drained, "{back} back on kvm2, {drained} on kvm1");
    assert!(b.contains("b-undrained-plan-rc=0"), "{b}");

    // kvm2 lost its power while running web. kvm1's plan says what it can and cannot do:
    // kvm2 silent, its leases held until sanlock calls it dead, and how to run web here.
    let down = a.split("==DOWNPLAN==").nth(1).unwrap_or("");
    assert!(
        down.contains("warning host kvm2: kvm2 (sanlock host_id 2) has not renewed its lease"),
        "{down}"
    );
    assert!(down.contains("Its guests (web) run nowhere"), "{down}");
    assert!(down.contains("`hostform drain kvm2 SPEC`"), "{down}");
    // Drained from kvm1: the plan waits for sanlock to call kvm2 dead, then takes web's LV
    // and starts web here, from its disk: the counter starts again from 1.
    let failover = a.split("==FAILOVER==").nth(1).unwrap_or("");
    for step in [
        "drained while it is down: its guests start on kvm1 from their disks",
        "vgchange --addtag hostform_drained_kvm2 vgshared",
        "hostform-await-dead lvm_vgshared 2 200",
        "lvchange -aey vgshared/web_root",
        "virsh -c qemu:///system start web",
    ] {
        assert!(failover.contains(step), "{step}:\n{failover}");
    }
    assert!(a.contains("failover-rc=0"), "{a}");
    assert!(a.contains("web-on-a-failover=running"), "{a}");
    assert!(
        a.contains("active-a-failover=activeexclusively lock=ex"),
        "{a}"
    );
    let (f1, f2) = (
        counter(&a, "count-failover"),
        counter(&a, "count-failover-later"),
    );
    eprintln!("counter after the failover: {f1} then {f2} (it was {back} on kvm2)");
    assert!(f2 > f1, "web does not count on kvm1: {f1} then {f2}");
    assert!(
        f1 < back,
        "{f1} after the restart, {back} before: not restarted?"
    );
    assert!(a.contains("failover-plan-rc=0"), "{a}");
}
