#!/bin/bash
# Runs INSIDE the hostform sandbox (as root, cwd = repository root) and
# captures the scenario tests/fixtures/thin/ (same format as capture-inner.sh:
# <name>, <name>.cmd, <name>.stderr, COMMANDS, ACTIONS.log).
#
#   capture-thin.sh FIXTURES_DIR
#
# thin/: vdb blank; vda whole a PV of VG vgt, holding the thin pool `pool0` (256MiB of data,
#   chunk size 128KiB, metadata 4MiB) and, on it, the thin LVs `web` (virtual 512MiB, ext4,
#   not mounted) and `scratch` (virtual 1GiB, nothing on it): 1.5GiB of virtual size on
#   256MiB, overcommitted 6 times; plus the plain LV `plain` (64MiB, tagged
#   hostform_prevent_destroy), so thin and plain LVs are seen side by side. Besides the
#   common captures, `lvs-thin.json`: the thin columns as `lvs` reports them (pool_lv,
#   chunk_size, lv_metadata_size, ...), which discovery's `lvm fullreport` also holds.
#
# lvm-shapes/ and lvm-missing/ follow on vdb in the same boot (see below).
#
# Run from the build machine with scripts/capture-thin-fixtures.sh.
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

THIN_FIELDS=lv_name,vg_name,segtype,pool_lv,chunk_size,lv_metadata_size,data_percent,metadata_percent

scenario thin
act pvcreate "$A"
act vgcreate vgt "$A"
act lvcreate -y --type thin-pool -L 256m --chunksize 128k --poolmetadatasize 4m -n pool0 vgt
act lvcreate -y --type thin -V 512m -n web vgt/pool0
act lvcreate -y --type thin -V 1g -n scratch vgt/pool0
act lvcreate -y -n plain -L 64m --addtag hostform_prevent_destroy vgt
act udevadm settle
act mkfs.ext4 -q /dev/vgt/web
act udevadm settle
capture_common
cap lvs-thin.json lvs -a --reportformat json --units b -o "$THIN_FIELDS"
cap lvs-thin-nosuffix.json lvs -a --reportformat json --units b --nosuffix -o "$THIN_FIELDS"
cap blkid-p-vda blkid -p -o export "$A"
cap blkid-p-vdb blkid -p -o export "$B"
cap blkid-p-web blkid -p -o export /dev/vgt/web
cap blkid-p-scratch blkid -p -o export /dev/vgt/scratch
# What LVM answers to a shrink of a thin pool (hostform refuses it before asking).
cap lvreduce-pool lvreduce -y -L 128m vgt/pool0
act vgchange -an vgt
echo "capture of thin done"

# lvm-shapes/: what the thin scenario lacks, for the reading of `lvm fullreport` (its PVs in
# no VG come in a part of their own; an LV's segments are rows of their own): vdb in three
# partitions, vdb1 a PV in no VG, VG vgm on vdb2 and vdb3 with `spread` in two segments
# (40MiB on vdb2, then grown by 32MiB on vdb3) and `other` (16MiB on vdb3, between them).
scenario lvm-shapes
act sfdisk --quiet --wipe always "$B" <<<$'label: gpt\nsize=64MiB\nsize=64MiB\nsize=64MiB\n'
act udevadm settle
act pvcreate "${B}1" "${B}2" "${B}3"
act vgcreate vgm "${B}2" "${B}3"
act lvcreate -y -n spread -L 40m vgm "${B}2"
act lvcreate -y -n other -L 16m vgm "${B}3"
act lvextend -y -L 72m vgm/spread "${B}3"
act udevadm settle
capture_common
# vgt of the thin scenario is still on vda (inactive): LVM reports its pool here too.
cap lvs-thin.json lvs -a --reportformat json --units b -o "$THIN_FIELDS"

# lvm-missing/: then vdb3 gone from under vgm (its PV label wiped): LVM reports the VG with a
# missing PV, as after a disk died.
scenario lvm-missing
act vgchange -an vgm
act wipefs -a -f "${B}3"
act udevadm settle
act pvscan --cache
capture_common
cap lvs-thin.json lvs -a --reportformat json --units b -o "$THIN_FIELDS"
echo "capture of lvm-shapes and lvm-missing done"
