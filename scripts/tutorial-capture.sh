#!/usr/bin/env bash
# Capture the transcripts of docs/tutorial.md: one throwaway sandbox VM shaped like
# tests/specs/e2e/lab.yaml (two 2 GiB disks with the domain's by-id names, --scale 1), where an
# "existing host" is first built by hand (GPT, RAID1, LVM, as an operator would have done it),
# then adopted with hostform: discover, edit, validate, plan, apply, drift, the drift timer;
# then the day-2 procedures: a failed disk replaced, a guest added, its disk grown.
#
#   scripts/tutorial-capture.sh [HOSTFORM]   (default: target/debug/hostform, built if missing)
#
# The transcript goes to stdout and to target/tutorial/transcript.txt. Every command of the
# tutorial is echoed as `$ command` before its output; an exit status other than 0 is shown as
# `[exit N]`. The VM needs qemu and a kernel (`hostform sandbox --check`); under software
# emulation the run takes several minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
hf=${1:-$repo/target/debug/hostform}
[ -x "$hf" ] || cargo build --quiet
hf=$(readlink -f "$hf")
mkdir -p target/tutorial

inner=$(cat <<'INNER'
set -u
export NO_COLOR=1
hostform() { "$HF" "$@"; }
# Echo a command, run it, show a non-zero status.
show() {
  printf '$ %s\n' "$*"
  eval "$*"
  local rc=$?
  [ "$rc" -eq 0 ] || echo "[exit $rc]"
}
section() { printf '\n=== %s ===\n' "$*"; }
# A reviewer's diff (diff exits 1 when the files differ: that is no failure here).
showdiff() { printf '$ diff -u %s %s\n' "$1" "$2"; diff -u "$1" "$2"; }
A=/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK1234
B=/dev/disk/by-id/ata-WDC_WD80EFAX-68LHPN0_7SGK5678

section "the existing host, built by hand"
for d in $A $B; do
  printf 'label: gpt\nsize=2MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios\ntype=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid\n' | sfdisk -q $d
done
udevadm settle
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 $A-part2 $B-part2 2>&1 | tail -1
pvcreate -q /dev/md0 && vgcreate -q vg0 /dev/md0
lvcreate -q -y -n dom0_root -L 256m vg0 && mkfs.ext4 -q /dev/vg0/dom0_root
lvcreate -q -y -n dom0_swap -L 64m vg0 && mkswap -q /dev/vg0/dom0_swap
show "cat /proc/mdstat | grep -A1 ^md0"
show "lvs --noheadings -o lv_name,lv_size vg0"

section "discover"
mkdir -p /tmp/infra/hosts /tmp/infra/snapshots && cd /tmp/infra
cp "$REPO/docs/spec.schema.json" .
show "hostform discover > hosts/lab.yaml"
show "cat hosts/lab.yaml"
show "hostform discover --format json > snapshots/lab.json 2>/dev/null"
cp hosts/lab.yaml /tmp/discovered.yaml

section "edit"
# A new LV for a guest and dom0_root protected; printed as a diff for review.
awk '{ print }
     /^    lvs:$/ { print "      web_root:"; print "        size: 256MiB"; print "        fs: ext4" }' \
  /tmp/discovered.yaml > hosts/lab.yaml
sed -i '/^      dom0_root:$/a\        prevent-destroy: true' hosts/lab.yaml
showdiff /tmp/discovered.yaml hosts/lab.yaml

section "validate"
show "hostform validate hosts/lab.yaml"
show "hostform validate --format json hosts/lab.yaml"

section "plan"
show "hostform plan hosts/lab.yaml --against snapshots/lab.json --detailed-exitcode"
show "hostform plan hosts/lab.yaml --out /tmp/lab.plan"

section "apply"
show "hostform apply /tmp/lab.plan"
show "hostform plan hosts/lab.yaml --detailed-exitcode"
show "hostform history"

section "drift"
show "hostform drift hosts/lab.yaml"
# An LV made by hand is not the spec's business; a managed resource changed by hand is drift.
show "lvcreate -q -y -n stray -L 16m vg0"
show "hostform drift hosts/lab.yaml"
show "lvchange -q --deltag hostform_prevent_destroy vg0/dom0_root"
show "hostform drift hosts/lab.yaml"
show "hostform drift hosts/lab.yaml --format json"
show "hostform apply hosts/lab.yaml --auto-approve | tail -3"
lvremove -q -y vg0/stray
show "ps -o comm= -p 1"
show "hostform timer install hosts/lab.yaml --unit-dir /tmp/units"

section "day 2: replace a failed disk"
# The disk fails: the kernel marks its member faulty, the operator removes it and puts a
# blank disk with the same by-id name in its place (here: the same disk, wiped).
show "mdadm --manage /dev/md0 --fail $B-part2"
# md takes a moment to let go of a member it just failed ("Device or resource busy").
for _ in $(seq 50); do grep -q '(F)' /proc/mdstat && ! grep -q 'resync\|recovery' /proc/mdstat && break; sleep 0.2; done
sleep 1
show "mdadm --manage /dev/md0 --remove $B-part2"
BD=$(readlink -f $B)
wipefs --quiet -a ${BD}2; wipefs --quiet -a ${BD}1; wipefs --quiet -a $BD >/dev/null 2>&1
udevadm settle
show "cat /proc/mdstat | grep -A1 ^md0"
show "hostform plan hosts/lab.yaml --detailed-exitcode"
show "hostform apply hosts/lab.yaml --auto-approve"
show "cat /proc/mdstat | grep -A2 ^md0"

section "day 2: add a guest"
bash "$REPO/scripts/sandbox/libvirt-up.sh"
cp hosts/lab.yaml /tmp/before-guest.yaml
cat >> hosts/lab.yaml <<'EOF'
libvirt:
  uri: qemu:///system
  domain-type: qemu
vms:
  web:
    hypervisor: libvirt
    memory: 32MiB
    disks: [{ lv: vg0/web_root, target: vda }]
shutdown:
  timeout: 3s
  on-timeout: destroy
EOF
showdiff /tmp/before-guest.yaml hosts/lab.yaml
show "hostform validate hosts/lab.yaml"
show "hostform plan hosts/lab.yaml --detailed-exitcode"
show "hostform apply hosts/lab.yaml --auto-approve"
show "virsh -c qemu:///system list --all"

section "day 2: grow a guest's disk"
cp hosts/lab.yaml /tmp/before-grow.yaml
sed -i '/^      web_root:$/,/size:/ s/size: 256MiB/size: 384MiB/' hosts/lab.yaml
showdiff /tmp/before-grow.yaml hosts/lab.yaml
show "hostform plan hosts/lab.yaml --detailed-exitcode"
show "hostform apply hosts/lab.yaml --auto-approve"
show "virsh -c qemu:///system domstate web"
show "lvs --noheadings -o lv_name,lv_size vg0/web_root"
section "end"
INNER
)

inner="HF='$hf'; REPO='$repo'
$inner"
nice -n 19 "$hf" sandbox tests/specs/e2e/lab.yaml --scale 1 --memory 2GiB --timeout 14m \
  -- bash -c "$inner" 2>&1 | tee target/tutorial/transcript.txt
