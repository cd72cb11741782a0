//! Guests under a real libvirtd in the sandbox: apply, shutdown in batches, start, restart
//! needed, a running guest's LV grown, one batch of five.

use crate::common::*;

fn guest<'a>(sum: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    sum["guests"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {sum}"))
}

fn secs(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// Guests end to end under a real libvirtd in the sandbox (scripts/sandbox/libvirt-up.sh):
/// five no-OS guests of type 'qemu' with disks on LVs and NICs on br0.
/// - `apply` builds the LVs, defines and starts the guests (dependencies first), and a second
///   plan is empty;
/// - `shutdown` stops them in batches (peer first in the background, then [front] → [app,
///   web] → [db]); with no OS they ignore the ACPI power button, so each reaches its timeout
///   and is destroyed; `start` brings them back dependencies first;
/// - more memory for a guest: the plan says a restart is needed;
/// - a running guest's LV grown: apply stops it, grows the LV, starts it again;
/// - the same five guests in one batch (timeouts 2-6 s): the batch takes about its slowest
///   guest, not the sum (docs/performance.md); a SIGHUP in the middle does not stop it.
#[test]
fn guests_end_to_end_under_libvirt() {
    let Some(_vm) = vm() else { return };
    let script = r#"set -e
H=$HOSTFORM
S=tests/specs/e2e
bash scripts/sandbox/libvirt-up.sh
ip link add br0 type bridge 2>/dev/null || true
ip link set br0 up
echo ==APPLY==; $H apply $S/guests.yaml --auto-approve > /tmp/apply 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/apply || cat /tmp/apply; echo ==/APPLY==
virsh -c qemu:///system list --all
$H plan $S/guests.yaml --detailed-exitcode > /tmp/plan2 2>&1 && echo second-plan=0 || { echo second-plan=$?; cat /tmp/plan2; }
echo ==STOP==; $H shutdown $S/guests.yaml --format json 2>/tmp/stop.log; echo ==/STOP==
echo ==STOPLOG==; cat /tmp/stop.log; echo ==/STOPLOG==
echo running-after-stop=$(virsh -c qemu:///system list --name | grep -c . || true)
echo ==START==; $H start $S/guests.yaml --format json 2>/dev/null; echo ==/START==
echo running-after-start=$(virsh -c qemu:///system list --name | grep -c . || true)
sed 's/^  memory: 32MiB/  memory: 48MiB/' $S/guests.yaml > /tmp/more-memory.yaml
echo ==MEMORY==; $H plan /tmp/more-memory.yaml --detailed-exitcode 2>&1 && echo memory-plan=0 || echo memory-plan=$?; echo ==/MEMORY==
sed 's/db_root:    { size: 16MiB }/db_root:    { size: 24MiB }/' $S/guests.yaml > /tmp/grown.yaml
echo ==GROW==; $H apply /tmp/grown.yaml --auto-approve > /tmp/grow 2>&1 || true; grep -E '^\[|Verified|FAILED|refused|apply:' /tmp/grow || cat /tmp/grow; echo ==/GROW==
echo db-state=$(virsh -c qemu:///system domstate db)
echo db-size=$(lvs --noheadings --units b --nosuffix -o lv_size vg0/db_root | tr -d ' ')
# The terminal goes away (SIGHUP) while guests are stopping: the shutdown goes on to the end.
$H shutdown $S/guests-flat.yaml --format json > /tmp/flat.json 2>/tmp/flat.log &
pid=$!
until grep -q 'shutdown requested' /tmp/flat.log; do sleep 0.2; done
kill -HUP $pid
wait $pid && echo flat-rc=0 || echo flat-rc=$?
echo ==FLAT==; cat /tmp/flat.json; echo ==/FLAT==
echo running-after-flat=$(virsh -c qemu:///system list --name | grep -c . || true)
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/guests.yaml",
            "--scale",
            "1",
            "--memory",
            "2GiB",
            "--cpus",
            "2",
            "--",
            "bash",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    // The whole transcript, shown with --nocapture or when an assertion fails.
    eprintln!("{out}");
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));

    // Defined and started by apply, dependencies first; then nothing left to do.
    let apply = between(&out, "APPLY");
    assert!(
        apply.contains("Verified: the host matches the spec"),
        "{apply}"
    );
    // The line of an executed op whose summary is exactly `what`.
    let pos = |what: &str| {
        apply
            .lines()
            .position(|l| l.starts_with('[') && l.ends_with(&format!(") {what}")))
            .unwrap_or_else(|| panic!("{what} not in {apply}"))
    };
    assert!(pos("start db") < pos("start app"), "{apply}");
    assert!(pos("start web") < pos("start front"), "{apply}");
    assert!(out.contains("second-plan=0"), "{out}");

    // Shutdown: peer in the background, then [front] → [app, web] → [db].
    let stop: serde_json::Value = serde_json::from_str(between(&out, "STOP")).unwrap();
    assert_eq!(stop["ok"], true, "{stop}");
    for n in ["peer", "front", "app", "web", "db"] {
        assert_eq!(guest(&stop, n)["outcome"], "destroyed", "{n}: {stop}");
    }
    let (peer, front, app, web, db) = (
        guest(&stop, "peer"),
        guest(&stop, "front"),
        guest(&stop, "app"),
        guest(&stop, "web"),
        guest(&stop, "db"),
    );
    assert_eq!(peer["stage"], "first");
    assert_eq!(front["stage"], "batch 1");
    assert_eq!(app["stage"], "batch 2");
    assert_eq!(web["stage"], "batch 2");
    assert_eq!(db["stage"], "batch 3");
    // peer does not hold batch 1 up: front began with it, before it ended.
    assert!(secs(front, "began_s") < secs(peer, "ended_s"), "{stop}");
    assert!(
        (secs(front, "began_s") - secs(peer, "began_s")).abs() < 1.0,
        "{stop}"
    );
    // Each batch after the one before.
    for g in [app, web] {
        assert!(secs(g, "began_s") >= secs(front, "ended_s"), "{stop}");
        assert!(secs(db, "began_s") >= secs(g, "ended_s"), "{stop}");
    }
    // app and web side by side; each waited at least its own timeout (4 s, 2 s).
    assert!(
        (secs(app, "began_s") - secs(web, "began_s")).abs() < 1.0,
        "{stop}"
    );
    assert!(
        secs(app, "took_s") >= 4.0 && secs(web, "took_s") >= 2.0,
        "{stop}"
    );
    let log = between(&out, "STOPLOG");
    assert!(
        log.contains("db: still running after 2s: destroying it (on-timeout: destroy)"),
        "{log}"
    );
    assert!(
        log.contains("shutdown done: 5 destroyed after the timeout"),
        "{log}"
    );
    assert!(
        log.lines()
            .all(|l| l.len() > 24 && &l[10..11] == "T" && &l[23..24] == "Z"),
        "every log line starts with a UTC timestamp: {log}"
    );
    assert!(out.contains("running-after-stop=0"), "{out}");

    // Start: dependencies first, peer (stopped first) last.
    let start: serde_json::Value = serde_json::from_str(between(&out, "START")).unwrap();
    assert_eq!(start["ok"], true, "{start}");
    let names: Vec<&str> = start["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["db", "app", "web", "front", "peer"], "{start}");
    assert!(secs(guest(&start, "app"), "began_s") >= secs(guest(&start, "db"), "ended_s"));
    assert!(secs(guest(&start, "front"), "began_s") >= secs(guest(&start, "web"), "ended_s"));
    assert!(out.contains("running-after-start=5"), "{out}");

    // More memory: a restart is needed, and nothing is stopped for it.
    let mem = between(&out, "MEMORY");
    assert!(out.contains("memory-plan=2"), "{mem}");
    assert!(
        mem.contains("memory 32 MiB → 48 MiB: restart needed (takes effect at the next start)"),
        "{mem}"
    );
    assert!(!mem.contains("hostform-stop-guest"), "{mem}");

    // Grow db's LV under it: stop → grow → start, and it runs again at the new size.
    let grow = between(&out, "GROW");
    let at = |what: &str| {
        grow.lines()
            .position(|l| l.starts_with('[') && l.contains(&format!(") {what}")))
            .unwrap_or_else(|| panic!("{what} not in {grow}"))
    };
    assert!(at("stop db") < at("grow vg0/db_root"), "{grow}");
    assert!(at("grow vg0/db_root") < at("start db again"), "{grow}");
    assert!(
        grow.contains("Verified: the host matches the spec"),
        "{grow}"
    );
    assert!(out.contains("db-state=running"), "{out}");
    assert!(out.contains(&format!("db-size={}", 24 << 20)), "{out}");

    // One batch of five, timeouts 2..6 s: about the slowest guest, far from the sum.
    let flat: serde_json::Value = serde_json::from_str(between(&out, "FLAT")).unwrap();
    assert_eq!(flat["ok"], true, "{flat}");
    let guests = flat["guests"].as_array().unwrap();
    let tooks: Vec<f64> = guests.iter().map(|g| secs(g, "took_s")).collect();
    let (sum, max) = (
        tooks.iter().sum::<f64>(),
        tooks.iter().cloned().fold(0.0, f64::max),
    );
    // The batch: from its first guest's start to its last guest's end (the run adds the
    // listing of the running guests before it).
    let batch = guests
        .iter()
        .map(|g| secs(g, "ended_s"))
        .fold(0.0, f64::max)
        - guests
            .iter()
            .map(|g| secs(g, "began_s"))
            .fold(f64::MAX, f64::min);
    eprintln!(
        "one batch of 5 guests (timeouts 2+3+4+5+6 = 20 s): batch {batch:.1} s, run {:.1} s; slowest guest {max:.1} s; sum of the guests {sum:.1} s",
        secs(&flat, "took_s")
    );
    assert!(batch < max + 2.0, "{flat}");
    assert!(batch < 0.6 * sum, "{flat}");
    assert!(out.contains("flat-rc=0"), "{out}");
    assert!(out.contains("running-after-flat=0"), "{out}");
}
