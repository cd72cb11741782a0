#!/bin/bash
# Runs INSIDE the hostform sandbox (as root, cwd = repository root) and
# captures the scenario tests/fixtures/opened/ (same format as capture-inner.sh:
# <name>, <name>.cmd, <name>.stderr, COMMANDS, ACTIONS.log).
#
#   capture-open.sh FIXTURES_DIR
#
# opened/: block devices held open by processes, with no mount, swap or holder
#   to show it (a guest given a disk directly, a dd or a backup reading it):
#   - vdb: blank (no table, no signature), held open whole by `sleep`;
#   - vda: GPT with vda1 (blank, open by nobody), vda2 (no signature) held open by
#     `tail`, and vda3, an LVM PV of VG vgo with the LVs `held` (held open by a
#     second `sleep`) and `idle` (open by nobody);
#   - vda1 held by a third `sleep` through /dev/hf-alias, a node of another name with
#     vda1's device number (as a container given a disk under its own name);
#   plus proc-fd-links (`PID FD TARGET`, every /proc/PID/fd/* link), proc-fd-devices (the
#   descriptors that are block devices, with their device numbers, from `stat -L`) and
#   proc-comm (`PID COMM`), which replay what discovery reads under /proc.
#
# Run from the build machine with scripts/capture-open-fixtures.sh.
set -euo pipefail

root=${1:?fixtures directory}
A=$(readlink -f /dev/disk/by-id/virtio-HF-DISK-A) # /dev/vda
B=$(readlink -f /dev/disk/by-id/virtio-HF-DISK-B) # /dev/vdb
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

PVS_FIELDS=pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count
VGS_FIELDS=vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags
LVS_FIELDS=lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags
# Discovery's one LVM process (src/kinds/lvm.rs FULLREPORT): the LV subreport takes no segment
# columns, the segment subreport ties its rows to their LV by lv_uuid.
FULL_LV_FIELDS=lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,lv_tags,pool_lv,lv_metadata_size,data_percent,metadata_percent
SEG_FIELDS=lv_uuid,segtype,devices,seg_pe_ranges,seg_start,seg_size,chunk_size

capture_common() {
    cap lsblk.json lsblk -J -b -O
    cap ls-disk-by-id ls -l /dev/disk/by-id
    cap disk-by-id-links bash -c 'for l in /dev/disk/by-id/*; do [ -e "$l" ] || continue; printf "%s %s\n" "${l##*/}" "$(readlink -f "$l")"; done'
    cap sfdisk-vda.json sfdisk --json "$A"
    cap sfdisk-vdb.json sfdisk --json "$B"
    cap mdstat cat /proc/mdstat
    cap pvs.json pvs --reportformat json --units b -o "$PVS_FIELDS"
    cap vgs.json vgs --reportformat json --units b -o "$VGS_FIELDS"
    cap lvs.json lvs -a --reportformat json --units b -o "$LVS_FIELDS"
    cap fullreport.json lvm fullreport -a --reportformat json --units b --configreport vg -o "$VGS_FIELDS" --configreport pv -o "$PVS_FIELDS" --configreport lv -o "$FULL_LV_FIELDS" --configreport seg -o "$SEG_FIELDS" --configreport pvseg -o pv_uuid
    cap pvs-nosuffix.json pvs --reportformat json --units b --nosuffix -o "$PVS_FIELDS"
    cap vgs-nosuffix.json vgs --reportformat json --units b --nosuffix -o "$VGS_FIELDS"
    cap lvs-nosuffix.json lvs -a --reportformat json --units b --nosuffix -o "$LVS_FIELDS"
    cap blkid-export blkid -o export
    cap findmnt.json findmnt -J -b
    cap swaps cat /proc/swaps
    cap ip-link.json ip -j link
    cap ip-addr.json ip -j addr
    cap ip-route.json ip -j route
    cap mdadm-examine-scan mdadm --examine --scan
    cap mdadm-detail-scan mdadm --detail --scan
}

scenario opened
script="$dir/sfdisk-script.txt"
cat >"$script" <<'SFDISK'
label: gpt
size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="spare"
size=64MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="raw"
type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name="pv"
SFDISK
act sfdisk --no-reread --wipe always "$A" <"$script"
act partx -u "$A"
act udevadm settle
act pvcreate "${A}3"
act vgcreate vgo "${A}3"
act lvcreate -y -n held -L 64M vgo
act lvcreate -y -n idle -L 64M vgo
act udevadm settle
# The openers: plain processes with a device on one of their descriptors.
sleep 600 <"$B" &
whole=$!
tail -f /dev/null 3<"${A}2" &
part=$!
sleep 600 3</dev/vgo/held &
lv=$!
# vda1 through a node of another name (as a container given the disk as /dev/xvdc sees it):
# its descriptor's link names /dev/hf-alias, only its device number says vda1.
maj=$((16#$(stat -c '%t' "${A}1")))
min=$((16#$(stat -c '%T' "${A}1")))
act mknod /dev/hf-alias b "$maj" "$min"
sleep 600 3</dev/hf-alias &
alias=$!
act sleep 1
printf 'openers: %s sleep <%s; %s tail 3<%s; %s sleep 3</dev/vgo/held; %s sleep 3</dev/hf-alias (%s1)\n' \
    "$whole" "$B" "$part" "${A}2" "$lv" "$alias" "$A" >>"$dir/ACTIONS.log"
capture_common
cap blkid-p-vda blkid -p -o export "$A"
cap blkid-p-vdb blkid -p -o export "$B"
# What discovery reads under /proc, as `fuser -v` and lsof do: every descriptor's link.
cap proc-fd-links bash -c 'find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 -printf "%h %f %l\n" 2>/dev/null | sed -E "s#^/proc/([0-9]+)/fd #\1 #"'
# The device number of every descriptor that is a block device (stat follows the link to the
# open file itself, whatever name it was opened by).
cap proc-fd-devices bash -c 'stat -L -c "%n %t:%T %F" /proc/[0-9]*/fd/* 2>/dev/null | grep " block special file$"'
cap proc-comm bash -c 'for p in /proc/[0-9]*; do IFS= read -r c <"$p/comm" 2>/dev/null && printf "%s %s\n" "${p#/proc/}" "$c"; done'
cap fuser-vdb fuser -v "$B"
cap lsof-vda2 lsof "${A}2"
cap fuser-vda1 fuser -v "${A}1"
kill "$whole" "$part" "$lv" "$alias"
wait || true
act vgchange -an vgo
echo "capture of opened done"
