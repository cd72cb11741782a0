#!/bin/bash
# Runs INSIDE the hostform sandbox (as root, cwd = repository root, writable workdir) and
# captures real libvirt output into tests/fixtures/guests/: libvirtd with the qemu driver,
# guests of type 'qemu' (nested TCG) with no OS, disks on LVs, NICs on a bridge.
#
#   scripts/sandbox/capture-guests.sh FIXTURES_DIR
#
# Same file layout as capture-inner.sh (<name>, <name>.cmd, <name>.stderr, COMMANDS,
# ACTIONS.log). Started by scripts/capture-fixtures.sh (third boot).
set -euo pipefail
root=${1:?fixtures directory}
DISK_A=/dev/disk/by-id/virtio-HF-DISK-A
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export LVM_SUPPRESS_FD_WARNINGS=1
dir="$root/guests"
rm -rf "$dir"
mkdir -p "$dir"
: >"$dir/COMMANDS"
: >"$dir/ACTIONS.log"

quote_argv() {
    local out="" a
    for a in "$@"; do out+="$(printf '%q' "$a") "; done
    printf '%s' "${out% }"
}
cap() {
    local name=$1 rc=0
    shift
    local f="$dir/$name"
    "$@" >"$f" 2>"$f.stderr" || rc=$?
    [ -s "$f.stderr" ] || rm -f "$f.stderr"
    local q
    q=$(quote_argv "$@")
    printf '%s\n' "$q" >"$f.cmd"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$q" >>"$dir/COMMANDS"
}
act() {
    local rc=0 q
    q=$(quote_argv "$@")
    printf '$ %s\n' "$q" >>"$dir/ACTIONS.log"
    "$@" >>"$dir/ACTIONS.log" 2>&1 || rc=$?
    printf '[exit %s]\n' "$rc" >>"$dir/ACTIONS.log"
    if [ "$rc" != 0 ]; then
        echo "action failed ($rc): $q" >&2
        tail -n 20 "$dir/ACTIONS.log" >&2
        exit 1
    fi
}

V="virsh -c qemu:///system"

act bash "$(dirname "$0")/libvirt-up.sh"
cap virsh-version $V version

act pvcreate -q "$DISK_A"
act vgcreate -q vg0 "$DISK_A"
act lvcreate -q -y -n g1_root -L 64M vg0
act lvcreate -q -y -n g1_data -L 32M vg0
act lvcreate -q -y -n g2_root -L 64M vg0
act ip link add br0 type bridge
act ip link set br0 up

cap list-empty $V list --all
cap list-autostart-empty $V list --all --autostart --name

xml() { # name memory_mib disks...(lv:target) ; nic on br0 with a fixed MAC
    local name=$1 mem=$2 mac=$3
    shift 3
    printf "<domain type='qemu'>\n  <name>%s</name>\n  <memory unit='KiB'>%s</memory>\n  <vcpu>1</vcpu>\n  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\n  <features><acpi/></features>\n  <on_poweroff>destroy</on_poweroff>\n  <devices>\n" "$name" $((mem * 1024))
    for d in "$@"; do
        printf "    <disk type='block' device='disk'>\n      <driver name='qemu' type='raw' cache='none'/>\n      <source dev='/dev/%s'/>\n      <target dev='%s' bus='virtio'/>\n    </disk>\n" "${d%%:*}" "${d##*:}"
    done
    printf "    <interface type='bridge'>\n      <mac address='%s'/>\n      <source bridge='br0'/>\n      <model type='virtio'/>\n    </interface>\n  </devices>\n</domain>\n" "$mac"
}
xml g1 64 52:54:00:00:00:01 vg0/g1_root:vda >/tmp/g1.xml
xml g2 64 52:54:00:00:00:02 vg0/g2_root:vda >/tmp/g2.xml
cp /tmp/g1.xml "$dir/g1-input.xml"
cap define-g1 $V define /tmp/g1.xml
cap define-g2 $V define /tmp/g2.xml
cap autostart-g1 $V autostart g1
cap lvchange-aey-g1 lvchange -aey vg0/g1_root
cap start-g1 $V start g1
cap start-g1-again $V start g1
sleep 2
cap list-one-running $V list --all
cap list-autostart $V list --all --autostart --name
cap domstate-g1-running $V domstate g1
cap domstate-g2-shutoff $V domstate g2
cap dumpxml-g1-running $V dumpxml g1
cap dumpxml-g1-inactive $V dumpxml --inactive g1
cap dumpxml-g2 $V dumpxml g2
cap dumpxml-missing $V dumpxml nosuch
cap domstate-missing $V domstate nosuch
cap cat-etc-g1 cat /etc/libvirt/qemu/g1.xml
cap cat-etc-g2 cat /etc/libvirt/qemu/g2.xml
cap ls-etc ls /etc/libvirt/qemu
cap ls-autostart ls -l /etc/libvirt/qemu/autostart
cap ip-link-vnet ip -j link show master br0

# Redefine with more memory and no uuid: does libvirt keep the same domain?
xml g1 96 52:54:00:00:00:01 vg0/g1_root:vda vg0/g1_data:vdb >/tmp/g1b.xml
cap define-g1-changed $V define /tmp/g1b.xml
cap dumpxml-g1-after-redefine $V dumpxml g1
cap dumpxml-g1-inactive-after-redefine $V dumpxml --inactive g1
printf "<disk type='block' device='disk'>\n  <driver name='qemu' type='raw' cache='none'/>\n  <source dev='/dev/vg0/g1_data'/>\n  <target dev='vdb' bus='virtio'/>\n</disk>\n" >/tmp/disk.xml
cap attach-disk-g1 $V attach-device g1 /tmp/disk.xml --live
cap dumpxml-g1-after-attach $V dumpxml g1

# A guest without an OS ignores the ACPI power button.
cap shutdown-g1 $V shutdown g1
sleep 3
cap domstate-g1-after-shutdown $V domstate g1
cap destroy-g1 $V destroy g1
cap domstate-g1-destroyed $V domstate g1
cap destroy-g1-again $V destroy g1
cap shutdown-g2-not-running $V shutdown g2
cap list-after-destroy $V list --all
cap autostart-disable-g1 $V autostart --disable g1
cap undefine-g2 $V undefine g2
cap list-after-undefine $V list --all
cap lvchange-aey-again lvchange -aey vg0/g1_root
cap lvs-attr lvs --noheadings -o lv_name,lv_attr vg0
act $V undefine g1
