//! The network on the real kernel: a bridge takes over the host's address and persists; an
//! unconfirmed change is rolled back at its deadline, after its apply is killed, at the next
//! boot, as soon as the gateway is silent, and when the change removed the bridge.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::*;

/// The state before any bridge, as on a freshly installed Debian host: eth0 carries the
/// address and the default route; /etc/network/interfaces sources interfaces.d.
const NET_SETUP: &str = r#"set -e
H=$HOSTFORM
export HOSTFORM_STATE_DIR=/run/hostform
mkdir -p /etc/network/interfaces.d
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >/etc/network/interfaces
ip addr add 192.0.2.10/24 dev eth0
ip link set dev eth0 up
ip route add default via 192.0.2.1 dev eth0
state() {
  echo "== $1 link"; ip -j -d link
  echo "== $1 addr"; ip -j addr
  echo "== $1 route"; ip -j route
  echo "== $1 end"
}
state before
"#;

/// One section of the script's output: the lines after `== NAME` up to the next `== `.
fn section<'a>(out: &'a str, name: &str) -> &'a str {
    let start = out
        .find(&format!("== {name}\n"))
        .unwrap_or_else(|| panic!("no section {name} in:\n{out}"))
        + name.len()
        + 4;
    let rest = &out[start..];
    &rest[..rest.find("\n== ").map(|i| i + 1).unwrap_or(rest.len())]
}

/// The network state a script printed with `state NAME`.
fn net_state(out: &str, name: &str) -> hostform::kinds::net::NetFacts {
    hostform::kinds::net::NetFacts {
        read: true,
        links: hostform::kinds::net::parse_links(
            section(out, &format!("{name} link")),
            section(out, &format!("{name} addr")),
        )
        .expect("ip -j output"),
        routes: hostform::kinds::net::parse_routes(section(out, &format!("{name} route")))
            .expect("ip -j route output"),
        ..Default::default()
    }
}

fn net_script(body: &str) -> String {
    format!("{MARK}{NET_SETUP}{body}").replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"))
}

fn sandbox_net(script: &str) -> String {
    let o = hostform(
        &root(),
        &[
            "sandbox",
            "tests/specs/e2e/net.yaml",
            "--",
            "bash",
            "-c",
            script,
        ],
    );
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", text(&o.stderr));
    out
}

/// br0 is created with eth0, the address moves to it, the default route follows; confirmed
/// from another process; a second plan is empty; the persisted file, read back, describes
/// the state the kernel reports.
#[test]
fn a_bridge_takes_over_the_hosts_address_and_persists() {
    let Some(_vm) = vm() else { return };
    let script = net_script(
        r#"
S=tests/specs/e2e/net.yaml
$H plan $S
set +e
$H apply $S --auto-approve; echo "unguarded=$?"
$H apply $S --auto-approve --confirm-within 120s >/tmp/apply.out 2>&1 &
pid=$!
until [ -e /run/hostform/pending.json ]; do sleep 0.2; done
$H confirm; echo "confirm=$?"
wait $pid; echo "apply=$?"
cat /tmp/apply.out
$H plan $S --detailed-exitcode; echo "second=$?"
$H confirm; echo "confirm-again=$?"
$H discover >/tmp/discovered.yaml 2>/dev/null; echo "discover=$?"
$H validate /tmp/discovered.yaml >/dev/null; echo "validate=$?"
$H plan /tmp/discovered.yaml --detailed-exitcode >/dev/null; echo "adopt=$?"
set -e
state after
echo "== persisted"
cat /etc/network/interfaces.d/hostform
echo "== discovered"
cat /tmp/discovered.yaml
echo "== end"
"#,
    );
    let out = sandbox_net(&script);
    assert!(out.contains("connectivity risk:"), "{out}");
    assert!(
        out.contains("unguarded=1"),
        "refused without --confirm-within: {out}"
    );
    assert!(out.contains("confirm=0"), "{out}");
    assert!(out.contains("apply=0"), "{out}");
    assert!(
        out.contains("Confirmed (hostform confirm): the change is kept."),
        "{out}"
    );
    assert!(out.contains("second=0"), "{out}");
    assert!(
        out.contains(
            "Plan: 0 to create, 0 to change, 0 to replace, 0 to delete, 1 unchanged; 0 operations."
        ),
        "{out}"
    );
    assert!(out.contains("confirm-again=1"), "{out}");
    // discover prints the bridge as a spec that validates and plans nothing: adoptable.
    assert!(
        out.contains("discover=0") && out.contains("validate=0"),
        "{out}"
    );
    assert!(out.contains("adopt=0"), "{out}");
    let discovered = section(&out, "discovered");
    assert!(discovered.contains("manager: ifupdown"), "{discovered}");
    let bridges = &discovered[discovered.find("bridges:").expect("bridges")..];
    for want in [
        "br0:",
        "- eth0",
        "- 192.0.2.10/24",
        "gateway: \"192.0.2.1\"",
    ] {
        assert!(bridges.contains(want), "{want}: {discovered}");
    }
    let after = net_state(&out, "after");
    let br0 = &after.links["br0"];
    assert!(br0.is_bridge());
    assert_eq!(after.links["eth0"].master.as_deref(), Some("br0"));
    assert!(after.links["eth0"].addresses.is_empty(), "{out}");
    let d = after.default_route().expect("a default route");
    assert_eq!(
        (d.gateway.as_deref(), d.dev.as_deref()),
        (Some("192.0.2.1"), Some("br0"))
    );
    // The persisted file, read back, says what the kernel now reports.
    let persisted = hostform::kinds::netconf::parse_ifupdown(section(&out, "persisted")).unwrap();
    let p = &persisted["br0"];
    let ports: Vec<&str> = after
        .links
        .values()
        .filter(|l| l.master.as_deref() == Some("br0"))
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(p.ports, ports);
    assert_eq!(p.addresses, br0.addresses);
    assert_eq!(p.gateway.map(|g| g.to_string()), d.gateway);
    assert_eq!(Some(p.stp), br0.stp);
    assert_eq!(persisted.len(), 1);
}

/// Without confirmation, the change is undone at the deadline: links, addresses and routes
/// are exactly as before, and the configuration file is gone again.
#[test]
fn an_unconfirmed_change_rolls_back_to_the_exact_previous_state() {
    let Some(_vm) = vm() else { return };
    let script = net_script(
        r#"
S=tests/specs/e2e/net.yaml
set +e
$H apply $S --auto-approve --confirm-within 6s >/tmp/apply.out 2>&1 &
pid=$!
until grep -q 'Waiting' /tmp/apply.out || ! kill -0 $pid 2>/dev/null; do sleep 0.2; done
# The 6 s window, then the rollback.
mark_start
wait $pid; echo "apply=$?"
mark wait
cat /tmp/apply.out
set -e
state after
test -e /etc/network/interfaces.d/hostform && echo "FILE-LEFT" || echo "file-removed"
cat /run/hostform/result.json
"#,
    );
    let out = sandbox_net(&script);
    assert!(out.contains("Verified: the host matches the spec"), "{out}");
    assert!(out.contains("apply=1"), "{out}");
    assert!(out.contains("\"outcome\": \"rolled-back\""), "{out}");
    assert!(out.contains("file-removed"), "{out}");
    let before = net_state(&out, "before");
    let after = net_state(&out, "after");
    let diff = hostform::safe::differences(&before, &after);
    assert!(diff.is_empty(), "{diff:#?}\n{out}");
    assert!(before.links["eth0"].addresses.len() == 1, "{out}");
}

/// The applying process is killed (SIGKILL) while it waits for confirmation: the detached
/// rollback it armed before the change still restores the previous state.
#[test]
fn a_killed_apply_still_rolls_back() {
    let Some(_vm) = vm() else { return };
    let script = net_script(
        r#"
S=tests/specs/e2e/net.yaml
$H apply $S --auto-approve --confirm-within 30s >/tmp/apply.out 2>&1 &
pid=$!
until grep -q 'Waiting' /tmp/apply.out; do sleep 0.2; done
ip -br addr show dev br0 || true
kill -9 $pid
set +e
wait $pid; echo "killed=$?"
set -e
cat /tmp/apply.out
# The rollback waiter outlives the apply: the rest of the 30 s window.
mark_start
for i in $(seq 1 300); do [ -e /run/hostform/result.json ] && break; sleep 0.2; done
mark wait
cat /run/hostform/result.json
cat /run/hostform/rollback.log
state after
"#,
    );
    let out = sandbox_net(&script);
    assert!(out.contains("killed=137"), "{out}");
    assert!(
        out.contains("br0 "),
        "the change was applied before the kill: {out}"
    );
    assert!(out.contains("rollback armed (detached process"), "{out}");
    assert!(out.contains("\"outcome\": \"rolled-back\""), "{out}");
    assert!(out.contains("detached waiter"), "{out}");
    let before = net_state(&out, "before");
    let after = net_state(&out, "after");
    let diff = hostform::safe::differences(&before, &after);
    assert!(diff.is_empty(), "{diff:#?}\n{out}");
}

/// What boots the reboot test's first and second boot have in common: the small disk HF-KEEP
/// mounted, and on it what a real host keeps on its root filesystem, bound where hostform
/// reads it (/etc/network, the state directory /var/lib/hostform), then the host's address on
/// eth0 as its old network configuration says.
const REBOOT_SETUP: &str = r#"set -e
H=$HOSTFORM
K=/dev/disk/by-id/virtio-HF-KEEP
mkdir -p /keep /var/lib/hostform /etc/network
if [ "$BOOT" = 1 ]; then
  mkfs.ext4 -q -F $K
  mount $K /keep
  mkdir -p /keep/state /keep/etc-network
  # The host's own /etc/network (ifupdown's hook scripts: bridge-utils' if-pre-up.d/bridge).
  cp -a /etc/network/. /keep/etc-network/
  mkdir -p /keep/etc-network/interfaces.d
  printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >/keep/etc-network/interfaces
else
  mount $K /keep
fi
mount --bind /keep/etc-network /etc/network
mount --bind /keep/state /var/lib/hostform
echo "boot_id $(cat /proc/sys/kernel/random/boot_id)"
ip addr add 192.0.2.10/24 dev eth0
ip link set dev eth0 up
ip route add default via 192.0.2.1 dev eth0
S=tests/specs/e2e/net.yaml
"#;

/// A reboot before `confirm`, on a real kernel: two boots of one VM on the same disk images.
/// The first applies br0 with `--confirm-within` and powers off without confirming (the
/// rollback waiter dies with it). At the second boot, the command of
/// hostform-rollback-at-boot.service puts the network files back before anything reads them,
/// clears the pending change and records why; then a new apply is not refused.
#[test]
fn a_change_not_confirmed_before_a_reboot_is_rolled_back_at_boot() {
    let Some(_vm) = vm() else { return };
    let exe = env!("CARGO_BIN_EXE_hostform");
    let unit = hostform::safe::boot_unit(exe, Path::new("/var/lib/hostform"));
    let at_boot = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let keep = std::env::temp_dir().join(format!("hostform-e2e-reboot-{}", std::process::id()));
    let _ = fs::remove_dir_all(&keep);
    // The kept images go when the test ends, passed or failed.
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(keep.clone());
    let boot = |n: u32, body: &str| -> String {
        let script = format!("BOOT={n}\n{REBOOT_SETUP}{body}")
            .replace("$HOSTFORM", exe)
            .replace("$AT_BOOT", at_boot);
        let o = hostform(
            &root(),
            &[
                "sandbox",
                "tests/specs/e2e/net-reboot.yaml",
                "--scale",
                "1",
                "--keep",
                keep.to_str().unwrap(),
                "--timeout",
                "6m",
                "--",
                "bash",
                "-c",
                &script,
            ],
        );
        let out = text(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "boot {n}: {out}\n{}",
            text(&o.stderr)
        );
        out
    };
    let t = Instant::now();
    let first = boot(
        1,
        r#"
$H apply $S --auto-approve --confirm-within 10m >/tmp/apply.out 2>&1 &
for i in $(seq 1 600); do grep -q 'Waiting' /tmp/apply.out && break; sleep 0.2; done
cat /tmp/apply.out
echo "bridge $(ip -br link show dev br0 | cut -d' ' -f1)"
echo "== file"; cat /etc/network/interfaces.d/hostform; echo "== end"
# In the boot it was applied in, the boot unit's command leaves the change to its waiter.
set +e
$AT_BOOT; echo "same-boot=$?"
set -e
test -e /var/lib/hostform/pending.json && echo "pending-kept"
# Power off now, unconfirmed: the script ends and the sandbox syncs and powers the VM off.
sync
"#,
    );
    let t1 = t.elapsed();
    let second = boot(
        2,
        r#"
set +e
$H apply $S --auto-approve --confirm-within 60s; echo "before-boot-unit=$?"
# What hostform-rollback-at-boot.service runs, before the network services read the files.
$AT_BOOT; echo "at-boot=$?"
$AT_BOOT; echo "at-boot-again=$?"
test -e /etc/network/interfaces.d/hostform && echo "FILE-LEFT" || echo "file-removed"
echo "== interfaces"; cat /etc/network/interfaces; echo "== end"
test -e /var/lib/hostform/pending.json && echo "PENDING-LEFT" || echo "pending-cleared"
echo "== result"; cat /var/lib/hostform/result.json; echo; echo "== log"; cat /var/lib/hostform/rollback.log
echo "== history"; $H history --verbose; echo "== end"
$H apply $S --auto-approve --confirm-within 120s >/tmp/apply.out 2>&1 &
pid=$!
for i in $(seq 1 600); do [ -e /var/lib/hostform/pending.json ] && break; sleep 0.2; done
$H confirm; echo "confirm=$?"
wait $pid; echo "later-apply=$?"
cat /tmp/apply.out
"#,
    );
    eprintln!("boot 1: {t1:.0?}, both: {:.0?}", t.elapsed());

    // Boot 1: applied, waiting, not confirmed.
    assert!(first.contains("Waiting"), "{first}");
    assert!(first.contains("bridge br0"), "{first}");
    assert!(section(&first, "file").contains("br0"), "{first}");
    assert!(
        first.contains("same-boot=0") && first.contains("pending-kept"),
        "{first}"
    );
    let boot_id = |out: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix("boot_id "))
            .map(str::to_string)
            .expect("boot id")
    };
    assert_ne!(boot_id(&first), boot_id(&second), "two boots");

    // Boot 2: refused until settled, then rolled back by the boot unit's command.
    assert!(second.contains("before-boot-unit=1"), "{second}");
    assert!(
        second.contains("was applied before the last reboot and never confirmed"),
        "{second}"
    );
    assert!(second.contains("at-boot=0"), "{second}");
    assert!(
        second.contains("it was not confirmed before the reboot"),
        "{second}"
    );
    assert!(second.contains("at-boot-again=0"), "{second}");
    assert!(second.contains("file-removed"), "{second}");
    assert!(
        section(&second, "interfaces").contains("source /etc/network/interfaces.d/*"),
        "{second}"
    );
    assert!(second.contains("pending-cleared"), "{second}");
    let result = section(&second, "result");
    assert!(result.contains("\"outcome\": \"rolled-back\""), "{result}");
    assert!(result.contains("reboot before confirmation"), "{result}");
    assert!(
        section(&second, "log").contains("reboot before confirmation"),
        "{second}"
    );
    // The journal: the apply the reboot cut off says what became of its change.
    let history = section(&second, "history");
    assert!(
        history.contains("unverified")
            && history
                .contains("not confirmed before a reboot: its files were rolled back at boot"),
        "{history}"
    );
    // A later apply goes through.
    assert!(second.contains("confirm=0"), "{second}");
    assert!(second.contains("later-apply=0"), "{second}");
    assert!(
        second.contains("Confirmed (hostform confirm): the change is kept."),
        "{second}"
    );
}

/// A change that cuts the host off (a typo in the gateway) is rolled back as soon as the
/// gateway after the change does not answer, without waiting for the deadline. qemu's user
/// network answers pings at 10.0.2.2; nothing answers at 10.0.2.9.
#[test]
fn a_silent_gateway_rolls_back_before_the_deadline() {
    let Some(_vm) = vm() else { return };
    let script = format!(
        "{}{}",
        NET_SETUP
            .replace("192.0.2.10/24", "10.0.2.15/24")
            .replace("192.0.2.1 ", "10.0.2.2 "),
        r#"
set +e
$H apply tests/specs/e2e/net-wrong-gateway.yaml --auto-approve --confirm-within 3m; echo "apply=$?"
set -e
cat /run/hostform/result.json
state after
"#
    )
    .replace("$HOSTFORM", env!("CARGO_BIN_EXE_hostform"));
    let out = sandbox_net(&script);
    assert!(out.contains("The gateway 10.0.2.2 answers"), "{out}");
    assert!(out.contains("Watching the gateway 10.0.2.9"), "{out}");
    assert!(out.contains("apply=1"), "{out}");
    assert!(
        out.contains("the gateway 10.0.2.9 does not answer"),
        "{out}"
    );
    assert!(out.contains("\"outcome\": \"rolled-back\""), "{out}");
    let before = net_state(&out, "before");
    assert_eq!(
        before.default_route().and_then(|r| r.gateway.as_deref()),
        Some("10.0.2.2")
    );
    let diff = hostform::safe::differences(&before, &net_state(&out, "after"));
    assert!(diff.is_empty(), "{diff:#?}\n{out}");
}

/// Removing the bridge that carries the host's address needs --allow-destroy and the safe
/// path; unconfirmed, the bridge comes back with its port, address and default route.
#[test]
fn an_unconfirmed_bridge_removal_brings_the_bridge_back() {
    let Some(_vm) = vm() else { return };
    let script = net_script(
        r#"
ip link add br0 type bridge
ip link set dev eth0 master br0
ip addr del 192.0.2.10/24 dev eth0
ip addr add 192.0.2.10/24 dev br0
ip link set dev br0 up
ip route replace default via 192.0.2.1 dev br0
state bridged
S=tests/specs/e2e/net-absent.yaml
set +e
$H apply $S --auto-approve --confirm-within 6s; echo "no-allow=$?"
$H apply $S --auto-approve --allow-destroy; echo "no-confirm=$?"
$H apply $S --auto-approve --allow-destroy --confirm-within 6s; echo "apply=$?"
set -e
cat /run/hostform/result.json
state after
"#,
    );
    let out = sandbox_net(&script);
    assert!(out.contains("needs --allow-destroy"), "{out}");
    assert!(out.contains("no-allow=1"), "{out}");
    assert!(out.contains("no-confirm=1"), "{out}");
    assert!(out.contains("$ ip link del dev br0"), "{out}");
    assert!(
        out.contains("delete bridge br0 (its addresses go with it) [destructive]"),
        "{out}"
    );
    assert!(out.contains("apply=1"), "{out}");
    assert!(out.contains("\"outcome\": \"rolled-back\""), "{out}");
    let bridged = net_state(&out, "bridged");
    assert!(bridged.links["br0"].is_bridge());
    let diff = hostform::safe::differences(&bridged, &net_state(&out, "after"));
    assert!(diff.is_empty(), "{diff:#?}\n{out}");
}
