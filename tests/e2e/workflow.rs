//! The operator's workflow on the real kernel: an apply killed (SIGKILL) or interrupted
//! (SIGINT) midway converges; saved plans, the lock, stale plans, drift and the journal.

use std::time::Instant;

use crate::common::*;

/// Day 2 on a real kernel, in one VM: an apply killed with SIGKILL midway converges when run
/// again; a file in an LV survives growing it and its filesystem while mounted; a change that
/// would shrink an LV is refused and changes nothing.
#[test]
fn killed_apply_converges_grow_keeps_data_shrink_is_refused() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H apply $S/lab.yaml --auto-approve > /tmp/first.log 2>&1 &
pid=$!
# Kill it once the array exists: midway through the stack.
for i in $(seq 1 600); do grep -q '\[4/11\]' /tmp/first.log && break; sleep 0.1; done
kill -9 $pid; wait $pid 2>/dev/null
echo "killed after: $(grep -c ' ok (' /tmp/first.log) ops"
$H history -n 1 --verbose > /tmp/history.log; sed 's/^/history: /' /tmp/history.log
$H apply $S/lab.yaml --auto-approve | tail -1
$H plan $S/lab.yaml --detailed-exitcode > /dev/null; echo converged=$?
mkdir -p /mnt/root && mount /dev/vg0/dom0_root /mnt/root
echo precious > /mnt/root/data && sync
$H plan $S/lab-changed.yaml --detailed-exitcode | grep -E '^refused|^Plan'; echo refused=$?
$H apply $S/lab-changed.yaml --auto-approve > /dev/null 2>&1; echo apply-changed=$?
lvs --noheadings --units b -o lv_size vg0/dom0_var | tr -d ' '
$H apply $S/lab-grown.yaml --auto-approve | grep -E 'grow|Verified'
cat /mnt/root/data
df -B1 --output=size /mnt/root | tail -1 | tr -d ' '
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    let killed_after: usize = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("killed after: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .expect("the first apply was killed");
    assert!(
        killed_after < 11,
        "the kill came too late to test anything: {out}"
    );
    // The journal's operation lines tell what the killed apply ran, and what was running.
    let history: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("history: "))
        .collect();
    assert!(history[0].contains("  interrupted  "), "{out}");
    let done = history
        .iter()
        .filter(|l| l.trim_start().starts_with("[done] "))
        .count();
    assert!(
        done >= killed_after && done <= killed_after + 1,
        "{killed_after} ops reported done, {done} journaled done: {out}"
    );
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("converged=0"), "{out}");
    assert!(out.contains("refused lv vg0/dom0_var: is 134217728 bytes, the spec says 67108864: that would shrink it"), "{out}");
    assert!(out.contains("apply-changed=1"), "{out}");
    assert!(
        out.contains("\n134217728B\n"),
        "dom0_var kept its size: {out}"
    );
    assert!(
        out.contains("grow vg0/dom0_root from 268435456 to 402653184"),
        "{out}"
    );
    assert!(out.contains("precious"), "the file survived: {out}");
    let fs_size: u64 = out
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .expect("df size");
    assert!(
        fs_size > 300 << 20,
        "the filesystem grew with its LV: {fs_size}"
    );
}

/// Ctrl-C during apply on a real kernel, in one VM: SIGINT once the array exists. The
/// operations running at that moment finish (each in a process group of its own), none starts
/// after it, apply exits 130 and journals `interrupted`; the host holds no half-made array or
/// LV, and a second apply converges.
#[test]
fn interrupted_apply_finishes_running_ops_starts_none_and_converges() {
    let Some(_vm) = vm() else { return };
    // A background job of a non-interactive shell starts with SIGINT ignored; `env
    // --default-signal` gives apply the disposition a foreground command at a terminal has.
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
env --default-signal=INT $H apply $S/lab.yaml --auto-approve > /tmp/first.log 2>&1 &
pid=$!
for i in $(seq 1 600); do grep -q '\[4/11\]' /tmp/first.log && break; sleep 0.1; done
# Wait for an operation to be running (a child of apply), name it, then Ctrl-C.
# (An exited child not yet reaped has an empty command line: it runs no more.)
for i in $(seq 1 2000); do
  found=
  for k in $(pgrep -P $pid); do
    c=$(tr '\0' ' ' < /proc/$k/cmdline 2>/dev/null); [ -n "$c" ] && { echo "running: $c"; found=1; }
  done
  [ -n "$found" ] && break; sleep 0.01
done
kill -INT $pid
echo "ok before signal: $(grep -c ' ok (' /tmp/first.log)"
wait $pid; echo "first=$?"
echo ==LOG==; cat /tmp/first.log; echo ==/LOG==
echo ==RECORD==; tail -1 /var/lib/hostform/journal.jsonl; echo ==/RECORD==
echo ==MDSTAT==; cat /proc/mdstat; echo ==/MDSTAT==
echo ==LVS==; lvs --noheadings -o lv_name,lv_attr 2>/dev/null; echo ==/LVS==
for lv in $(lvs --noheadings -o lv_name vg0 2>/dev/null); do
  echo "fs $lv=$(blkid -o value -s TYPE /dev/vg0/$lv)"
done
echo ==HISTORY==; $H history --verbose; echo ==/HISTORY==
$H apply $S/lab.yaml --auto-approve | tail -1
$H plan $S/lab.yaml --detailed-exitcode > /dev/null; echo converged=$?
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let t = Instant::now();
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = text(&o.stdout);
    eprintln!("sandbox run: {:.0?}", t.elapsed());
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    assert!(out.contains("\nfirst=130\n"), "SIGINT: 128+2: {out}");
    let log = between(&out, "LOG");
    assert!(
        log.contains("SIGINT received: starting nothing new"),
        "{log}"
    );

    let record: serde_json::Value = serde_json::from_str(between(&out, "RECORD").trim())
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(record["outcome"], "interrupted", "{record:#}");
    let ops = record["operations"].as_array().expect("operations");
    assert_eq!(ops.len(), 11, "{record:#}");
    let argv = |o: &serde_json::Value| -> String {
        o["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" ")
    };
    // What ran, ran to its end; what did not run, never started.
    for o in ops {
        match o["result"].as_str() {
            Some("done") => assert!(
                o["started"].is_string() && o["finished"].is_string(),
                "{o:#}"
            ),
            Some("not-run") => assert!(o.get("started").is_none(), "{o:#}"),
            r => panic!("{r:?}: only done and not-run after a SIGINT: {o:#}"),
        }
    }
    let done: Vec<&serde_json::Value> = ops.iter().filter(|o| o["result"] == "done").collect();
    let before: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("ok before signal: ")?.trim().parse().ok())
        .expect("ok count");
    assert!(
        before >= 4 && done.len() < 11,
        "{before} {}: {out}",
        done.len()
    );
    // Each command running when the signal came is an operation that finished.
    // (The runner starts a program by its full path; the journal keeps the plan's argv.)
    let running: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("running: "))
        .map(|l| l.trim().rsplit_once("/sbin/").map_or(l.trim(), |(_, r)| r))
        .collect();
    assert!(!running.is_empty(), "no operation was running: {out}");
    for r in &running {
        let op = ops
            .iter()
            .find(|o| argv(o) == *r)
            .unwrap_or_else(|| panic!("`{r}` is no operation of {record:#}\n{out}"));
        assert_eq!(op["result"], "done", "{op:#}");
        assert!(op["finished"].is_string(), "{op:#}");
    }
    // Nothing started after it: the done operations are those that finished before the
    // signal and those that were running then.
    assert!(
        done.len() <= before + running.len(),
        "{} done, {before} before the signal, {} running: {record:#}",
        done.len(),
        running.len()
    );
    // history --verbose shows each with its times.
    let history = between(&out, "HISTORY");
    assert!(history.contains("interrupted"), "{history}");
    for o in &done {
        let summary = o["summary"].as_str().unwrap();
        assert!(
            history
                .lines()
                .any(|l| l.contains(&format!("[done] {summary}  (")) && l.contains(" .. ")),
            "{summary}: {history}"
        );
    }

    // No half-made state: md0 runs with both members (made before the signal); each LV on
    // the host is one a finished `lvcreate` made, with a filesystem only where `mkfs` ran.
    let mdstat = between(&out, "MDSTAT");
    assert!(mdstat.contains("md0 : active raid1"), "{mdstat}");
    assert!(!mdstat.contains("inactive"), "{mdstat}");
    let made = |prog: &str, lv: &str| {
        done.iter()
            .any(|o| argv(o).starts_with(prog) && argv(o).contains(lv))
    };
    for l in between(&out, "LVS")
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let lv = l.split_whitespace().next().unwrap();
        assert!(
            made("lvcreate", lv),
            "{lv} without a finished lvcreate: {out}"
        );
    }
    for l in out.lines().filter_map(|l| l.strip_prefix("fs ")) {
        let (lv, fs) = l.split_once('=').unwrap();
        let formatted = made("mkfs", &format!("vg0/{lv}")) || made("mkswap", &format!("vg0/{lv}"));
        assert_eq!(!fs.is_empty(), formatted, "{lv}: `{fs}`: {out}");
    }

    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("converged=0"), "{out}");
}

/// The operator's workflow on a real kernel, in one VM, with the default lock and journal
/// paths: a saved plan (reading the same host twice gives the same fingerprint) is applied
/// exactly; a second apply meanwhile is refused and told who holds the lock; a plan saved
/// before a manual `lvextend` is refused as stale; `drift` finds that `lvextend`; the journal
/// holds every apply.
#[test]
fn saved_plan_lock_stale_plan_and_drift_on_a_real_kernel() {
    let Some(_vm) = vm() else { return };
    let script = r#"
H=$HOSTFORM; S=tests/specs/e2e
$H plan $S/lab.yaml --out /tmp/full.plan > /dev/null 2>&1
$H plan $S/lab.yaml --out /tmp/again.plan > /dev/null 2>&1
$H show /tmp/full.plan --format json | grep '"fingerprint"' | sed 's/^ */first /'
$H show /tmp/again.plan --format json | grep '"fingerprint"' | sed 's/^ */second /'
$H show /tmp/full.plan --detailed-exitcode > /tmp/show.txt; echo show=$?; tail -1 /tmp/show.txt
$H apply /tmp/full.plan > /tmp/first.log 2>&1 &
pid=$!
for i in $(seq 1 600); do grep -q '\[1/11\]' /tmp/first.log && break; sleep 0.1; done
$H apply $S/lab.yaml --auto-approve; echo second=$? holder=$pid
wait $pid; echo first=$?
tail -1 /tmp/first.log
$H plan $S/lab-grown.yaml --out /tmp/grown.plan > /dev/null 2>&1
lvextend -q -L +32M vg0/dom0_var > /dev/null 2>&1; echo lvextend=$?
$H apply /tmp/grown.plan; echo stale=$?
lvs --noheadings --units b -o lv_size vg0/dom0_root | tr -d ' '
$H drift $S/lab.yaml --log stderr; echo drift=$?
$H drift $S/lab.yaml --format json --log stderr 2>/dev/null | grep -c '"in_sync": false'
$H history
"#
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/lab.yaml",
            "--scale",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}");
    // The same host read twice: the same fingerprint.
    let fp = |which: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{which} \"fingerprint\": ")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {which} fingerprint: {out}"))
    };
    assert_eq!(fp("first"), fp("second"), "{out}");
    assert!(
        out.contains("show=2\nThis plan is not empty: applying it runs 11 operations.\n"),
        "{out}"
    );
    // The second apply was refused, naming the first.
    let holder = out
        .lines()
        .find_map(|l| l.split_once(" holder=").map(|(_, p)| p.to_string()))
        .expect("holder pid");
    assert!(out.contains("second=1"), "{out}");
    assert!(
        out.contains(&format!(
            "apply: another apply holds the lock /run/lock/hostform.lock: pid {holder}, `"
        )),
        "{out}"
    );
    assert!(out.contains(" apply /tmp/full.plan`, since 20"), "{out}");
    // The saved plan ran, exactly, and verified.
    assert!(out.contains("first=0"), "{out}");
    assert!(
        out.contains("Verified: the host matches the spec (11 operations applied)."),
        "{out}"
    );
    // Changed behind its back: the grow plan is stale and nothing ran.
    assert!(out.contains("lvextend=0"), "{out}");
    assert!(
        out.contains("apply: the host changed since the plan was made: "),
        "{out}"
    );
    // What changed is named: the LV itself, or (when more changed) the LVM facts as a whole.
    assert!(
        out.contains("lvm.lvs.vg0/dom0_var changed") || out.contains("lvm changed"),
        "{out}"
    );
    assert!(out.contains("stale=1"), "{out}");
    assert!(
        out.contains("\n268435456B\n"),
        "dom0_root did not grow: {out}"
    );
    // Drift names the LV grown outside hostform.
    assert!(out.contains("drift in 1 of "), "{out}");
    assert!(out.contains("  ! lv vg0/dom0_var  (is 167772160 bytes, the spec says 134217728: that would shrink it)"), "{out}");
    assert!(out.contains("drift=2"), "{out}");
    assert!(
        out.contains("hostform drift: 1 resource(s) of tests/specs/e2e/lab.yaml"),
        "{out}"
    );
    // The journal: the applied plan, the refused second apply is not journaled (it never got
    // the lock), the stale plan.
    let applied = out
        .lines()
        .find(|l| l.contains("  applied  "))
        .unwrap_or_default();
    assert!(
        applied.contains("(plan /tmp/full.plan)  11 ops, 11 done"),
        "{out}"
    );
    let refused = out
        .lines()
        .find(|l| l.contains("  refused  "))
        .unwrap_or_default();
    assert!(refused.contains("(plan /tmp/grown.plan)"), "{out}");
}
