#!/bin/bash
# Runs INSIDE the hostform sandbox (as root, cwd = repository root) and
# captures real tool output into tests/fixtures/<scenario>/.
#
#   capture-inner.sh first  FIXTURES_DIR   # VERSIONS, blank/, full/, bridge/
#   capture-inner.sh second FIXTURES_DIR   # reused/, degraded/ (same disks)
#
# Every capture writes:
#   <name>          stdout of the command (possibly empty)
#   <name>.cmd      the argv, shell-quoted on one line
#   <name>.stderr   stderr, only when non-empty
# and appends "<name><TAB><exit status><TAB><argv>" to <scenario>/COMMANDS.
# Setup steps that are not fixtures themselves go to <scenario>/ACTIONS.log.
#
# The disks are /dev/disk/by-id/virtio-HF-DISK-A and -B (2 GiB each, as
# attached by examples/sandbox_smoke.rs) and the NIC is eth0.
set -euo pipefail

phase=${1:?phase (first|second)}
root=${2:?fixtures directory}
DISK_A=/dev/disk/by-id/virtio-HF-DISK-A
DISK_B=/dev/disk/by-id/virtio-HF-DISK-B
A=$(readlink -f "$DISK_A")   # /dev/vda
B=$(readlink -f "$DISK_B")   # /dev/vdb
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export LVM_SUPPRESS_FD_WARNINGS=1

dir=
scenario() {
    dir="$root/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    : >"$dir/COMMANDS"
    : >"$dir/ACTIONS.log"
    echo "== scenario $1"
}

quote_argv() {
    local out="" a
    for a in "$@"; do out+="$(printf '%q' "$a") "; done
    printf '%s' "${out% }"
}

# cap NAME ARGV... : run ARGV, record it as a fixture.
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

# act ARGV... : a setup step; its output goes to ACTIONS.log, failure aborts.
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

# act_may_fail ARGV... : like act, but failure is only logged.
act_may_fail() {
    local rc=0 q
    q=$(quote_argv "$@")
    printf '$ %s\n' "$q" >>"$dir/ACTIONS.log"
    "$@" >>"$dir/ACTIONS.log" 2>&1 || rc=$?
    printf '[exit %s]\n' "$rc" >>"$dir/ACTIONS.log"
    return 0
}

PVS_FIELDS=pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count
VGS_FIELDS=vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags
LVS_FIELDS=lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags
# Discovery's one LVM process (src/kinds/lvm.rs FULLREPORT): the LV subreport takes no segment
# columns, the segment subreport ties its rows to their LV by lv_uuid.
FULL_LV_FIELDS=lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,lv_tags,pool_lv,lv_metadata_size,data_percent,metadata_percent
SEG_FIELDS=lv_uuid,segtype,devices,seg_pe_ranges,seg_start,seg_size,chunk_size

capture_lvm() {
    cap pvs.json pvs --reportformat json --units b -o "$PVS_FIELDS"
    cap vgs.json vgs --reportformat json --units b -o "$VGS_FIELDS"
    cap lvs.json lvs -a --reportformat json --units b -o "$LVS_FIELDS"
    cap fullreport.json lvm fullreport -a --reportformat json --units b --configreport vg -o "$VGS_FIELDS" --configreport pv -o "$PVS_FIELDS" --configreport lv -o "$FULL_LV_FIELDS" --configreport seg -o "$SEG_FIELDS" --configreport pvseg -o pv_uuid
    cap pvs-nosuffix.json pvs --reportformat json --units b --nosuffix -o "$PVS_FIELDS"
    cap vgs-nosuffix.json vgs --reportformat json --units b --nosuffix -o "$VGS_FIELDS"
    cap lvs-nosuffix.json lvs -a --reportformat json --units b --nosuffix -o "$LVS_FIELDS"
}

capture_common() {
    cap lsblk.json lsblk -J -b -O
    cap ls-disk-by-id ls -l /dev/disk/by-id
    cap disk-by-id-links bash -c 'for l in /dev/disk/by-id/*; do [ -e "$l" ] || continue; printf "%s %s\n" "${l##*/}" "$(readlink -f "$l")"; done'
    cap sfdisk-vda.json sfdisk --json "$A"
    cap sfdisk-vdb.json sfdisk --json "$B"
    cap mdstat cat /proc/mdstat
    capture_lvm
    cap blkid-export blkid -o export
    cap findmnt.json findmnt -J -b
    cap swaps cat /proc/swaps
    cap ip-link.json ip -j link
    cap ip-addr.json ip -j addr
    cap ip-route.json ip -j route
    cap mdadm-examine-scan mdadm --examine --scan
    cap mdadm-detail-scan mdadm --detail --scan
}

# blkid -p on every block device of interest, one fixture each.
capture_blkid_probe() {
    local dev name
    for dev in "$@"; do
        [ -e "$dev" ] || continue
        name=${dev#/dev/}
        name=${name//\//-}
        cap "blkid-p-$name" blkid -p -o export "$dev"
    done
}

md_sysfs() {
    local md=$1 prefix=$2 a
    for a in array_state sync_action degraded level raid_disks sync_completed metadata_version; do
        cap "$prefix-$a" cat "/sys/block/$md/md/$a"
    done
}

versions() {
    local f="$root/VERSIONS"
    {
        echo "# Versions of the tools the fixtures were captured with."
        echo "kernel: $(uname -r)"
        echo "kernel-build: $(uname -v)"
        echo "mdadm: $(mdadm --version 2>&1)"
        echo "lvm:"
        lvm version | sed 's/^/  /'
        echo "util-linux: $(lsblk --version)"
        echo "sfdisk: $(sfdisk --version)"
        echo "iproute2: $(ip -V)"
        echo "e2fsprogs: $(mke2fs -V 2>&1 | head -n1)"
        echo "udev: $(udevadm --version)"
        echo "debian packages:"
        dpkg-query -W -f='  ${Package} ${Version}\n' mdadm lvm2 util-linux fdisk iproute2 e2fsprogs udev kmod linux-image-amd64 2>/dev/null || true
    } >"$f"
}

wait_for_sync() {
    local md=$1 i
    for i in $(seq 1 600); do
        [ "$(cat "/sys/block/$md/md/sync_action")" = idle ] && return 0
        sleep 1
    done
    echo "$md did not finish syncing" >&2
    return 1
}

phase_first() {
    versions

    # ---------------------------------------------------------------- blank
    scenario blank
    capture_common
    capture_blkid_probe "$A" "$B"

    # ----------------------------------------------------------------- full
    scenario full
    local script="$dir/sfdisk-script.txt"
    cat >"$script" <<'SFDISK'
label: gpt
size=2MiB, type=21686148-6449-6E6F-744E-656564454649, name="bios_grub"
type=A19D880F-05FC-4D3B-A006-743F0F84911E, name="raid_md0"
SFDISK
    act sfdisk --no-reread --wipe always "$A" <"$script"
    act sfdisk --no-reread --wipe always "$B" <"$script"
    act udevadm settle
    act mdadm --create /dev/md0 --level=1 --raid-devices=2 --metadata=1.2 --run "${A}2" "${B}2"
    act udevadm settle
    # The initial resync, caught in the act.
    cap mdstat-initial-resync cat /proc/mdstat
    md_sysfs md0 md0-initial-resync
    act pvcreate /dev/md0
    act vgcreate vg0 /dev/md0
    act lvcreate -y -n dom0_root -L 512M vg0
    act lvcreate -y -n dom0_swap -L 128M vg0
    act lvcreate -y -n guest1_root -L 384M vg0
    act lvcreate -y -n guest1_var -L 128M vg0
    act lvcreate -y -n guest1_swap -L 64M vg0 /dev/md0
    act lvcreate -y -n guest1_iso -L 64M vg0
    act mkfs.ext4 -q -L dom0_root /dev/vg0/dom0_root
    act mkswap -L dom0_swap /dev/vg0/dom0_swap
    act mkfs.ext4 -q -L guest1_root /dev/vg0/guest1_root
    act mkfs.ext4 -q -L guest1_var /dev/vg0/guest1_var
    act mkswap -L guest1_swap /dev/vg0/guest1_swap
    act lvcreate -y -s -n guest1_root_snap -L 64M vg0/guest1_root
    act lvchange -pr vg0/guest1_iso
    act mkdir -p /srv/dom0 /srv/guest1/var
    act mount /dev/vg0/dom0_root /srv/dom0
    act mount /dev/vg0/guest1_var /srv/guest1/var
    act swapon /dev/vg0/dom0_swap
    act udevadm settle
    act wait_for_sync md0
    capture_common
    cap mdadm-detail-md0 mdadm --detail /dev/md0
    cap mdadm-detail-export-md0 mdadm --detail --export /dev/md0
    cap mdadm-examine-vda2 mdadm --examine "${A}2"
    cap mdadm-examine-export-vda2 mdadm --examine --export "${A}2"
    md_sysfs md0 md0
    cap sfdisk-dump-vda sfdisk --dump "$A"
    cap dmsetup-table dmsetup table
    cap ls-dev-md ls -l /dev/md
    capture_blkid_probe "$A" "${A}1" "${A}2" "$B" "${B}1" "${B}2" /dev/md0 \
        /dev/vg0/dom0_root /dev/vg0/dom0_swap /dev/vg0/guest1_root /dev/vg0/guest1_var \
        /dev/vg0/guest1_swap /dev/vg0/guest1_iso /dev/vg0/guest1_root_snap

    # --------------------------------------------------------------- bridge
    scenario bridge
    act ip link add br0 type bridge
    act ip link add dummy0 type dummy
    act ip link set dev eth0 master br0
    act ip link set dev dummy0 master br0
    act ip link set dev br0 mtu 1400
    act ip link set dev br0 type bridge stp_state 1
    act ip addr add 192.0.2.10/24 dev br0
    act ip link set dev eth0 up
    act ip link set dev dummy0 up
    act ip link set dev br0 up
    act ip route add default via 192.0.2.1 dev br0
    cap ip-d-link.json ip -j -d link
    cap ip-d-link-br0.json ip -j -d link show dev br0
    cap ip-addr.json ip -j addr
    cap ip-route.json ip -j route
    cap brif ls /sys/class/net/br0/brif
    cap stp_state cat /sys/class/net/br0/bridge/stp_state
    cap br0-mtu cat /sys/class/net/br0/mtu
    cap bridge-link.json bridge -j link show
    # With STP on, ports sit in "listening"/"learning" for 2 x forward_delay
    # (15 s each) and br0 has no carrier ("linkdown" routes) until then.
    cap forward_delay cat /sys/class/net/br0/bridge/forward_delay
    act sleep 32
    cap forwarding-bridge-link.json bridge -j link show
    cap forwarding-ip-route.json ip -j route
    cap forwarding-ip-d-link-br0.json ip -j -d link show dev br0

    # Leave the storage stack cleanly stopped for the second boot.
    dir="$root/full"
    act swapoff /dev/vg0/dom0_swap
    act umount /srv/guest1/var
    act umount /srv/dom0
    act vgchange -an vg0
    act mdadm --stop /dev/md0
    act sync
}

phase_second() {
    # --------------------------------------------------------------- reused
    scenario reused
    cap mdstat cat /proc/mdstat
    cap lsblk.json lsblk -J -b -O
    capture_lvm
    cap blkid-export blkid -o export
    cap mdadm-detail-scan mdadm --detail --scan
    cap ls-dev-md ls -l /dev/md
    cap ls-dev-mapper ls -l /dev/mapper
    cap dmesg-md bash -c 'dmesg | grep -E "(^|[^a-z])md[0-9]+|md/raid"'
    local md
    md=$(cd /sys/block && ls -d md* 2>/dev/null | head -n1)
    cap md-name echo "$md"
    if [ -z "$md" ]; then
        echo "no md array was assembled at boot" >&2
        exit 1
    fi

    # ------------------------------------------------------------- degraded
    scenario degraded
    local mddev="/dev/$md"
    act mdadm "$mddev" --fail "${B}2"
    act sleep 1
    cap failed-mdstat cat /proc/mdstat
    cap failed-mdadm-detail mdadm --detail "$mddev"
    md_sysfs "$md" failed-sysfs
    act mdadm "$mddev" --remove "${B}2"
    act sleep 1
    cap removed-mdstat cat /proc/mdstat
    cap removed-mdadm-detail mdadm --detail "$mddev"
    md_sysfs "$md" removed-sysfs
    # Keep the recovery slow enough to be caught mid-way.
    act bash -c "echo 20000 > /sys/block/$md/md/sync_speed_max"
    cap re-add mdadm "$mddev" --re-add "${B}2"
    if ! grep -q "${B#/dev/}2" /proc/mdstat; then
        act mdadm "$mddev" --add "${B}2"
    fi
    act sleep 3
    cap recovering-mdstat cat /proc/mdstat
    cap recovering-mdadm-detail mdadm --detail "$mddev"
    md_sysfs "$md" recovering-sysfs

    # --------------------------------------------------------------- failed
    # A member marked faulty and still attached (before the disk is pulled).
    act bash -c "echo 2000000 > /sys/block/$md/md/sync_speed_max"
    act wait_for_sync "$md"
    scenario failed
    act mdadm "$mddev" --fail "${B}2"
    act udevadm settle
    capture_common
    md_sysfs "$md" sysfs

    # ------------------------------------------------------------- replaced
    # The failed member removed and its disk replaced by a blank one (wiped in place).
    scenario replaced
    act mdadm "$mddev" --remove "${B}2"
    act wipefs -a "${B}2"
    act wipefs -a "${B}1"
    act wipefs -a "$B"   # also makes the kernel re-read the (now empty) table
    act udevadm settle
    capture_common
    md_sysfs "$md" sysfs

    # --------------------------------------------------------------- tagged
    # hostform's prevent-destroy tags on an LV and on its VG.
    scenario tagged
    act lvchange --addtag hostform_prevent_destroy vg0/guest1_iso
    act vgchange --addtag hostform_prevent_destroy vg0
    cap lsblk.json lsblk -J -b -O
    capture_lvm
}

case "$phase" in
first) phase_first ;;
second) phase_second ;;
*)
    echo "unknown phase $phase" >&2
    exit 2
    ;;
esac
echo "capture phase $phase done"
