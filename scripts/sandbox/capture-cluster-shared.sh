#!/bin/bash
# Runs INSIDE each host of a two-host cluster sandbox (after cluster-up.sh) and captures how an
# LV left active shared (-asy) on one host reads, and how it is taken exclusively again: what a
# guest's move cut short after the migration leaves on the host it moved to. kvm1 makes vgshared
# and web, shares web; kvm2 shares it too; kvm1's `lvchange -aey` is then refused while kvm2
# holds its shared lock, and granted (converted in place, web still active) once kvm2 let go.
# Files go to FIXTURES_DIR/cluster-shared (kvm1's); the hosts take turns through SYNC_DIR.
#
#   scripts/sandbox/capture-cluster-shared.sh FIXTURES_DIR SYNC_DIR
set -euo pipefail
root=${1:?fixtures directory}
sync=${2:?sync directory}
LUN=/dev/disk/by-id/virtio-HF-LUN0
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p "$sync"
signal() { touch "$sync/$1"; }
await() {
    for _ in $(seq 3000); do [ -e "$sync/$1" ] && return 0; sleep 0.1; done
    echo "capture-cluster-shared: gave up waiting for $1" >&2
    exit 1
}
if [ "$(hostname)" = kvm2 ]; then
    await a-shared
    pvscan --cache >/dev/null 2>&1 || true
    vgchange --lock-start vgshared
    lvchange -asy vgshared/web
    signal b-shared
    await a-refused
    lvchange -an vgshared/web
    signal b-released
    await a-done
    exit 0
fi
dir="$root/cluster-shared"
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
    printf '%s exit=%s\n' "$name" "$rc" >>"$dir/ACTIONS.log"
    return 0
}
report() {
    local tag=$1
    cap "pvs-$tag.json" pvs --reportformat json --units b -o pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count
    cap "vgs-$tag.json" vgs --reportformat json --units b -o vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags
    cap "lvs-$tag.json" lvs -a --reportformat json --units b -o lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags
    cap "lvmlockctl-info-$tag" lvmlockctl --info
    cap "lvs-active-$tag" lvs --noheadings -o lv_name,lv_active,lv_active_locally,lv_active_exclusively vgshared
}
vgcreate --shared vgshared "$LUN" >>"$dir/ACTIONS.log" 2>&1
lvcreate -y -n web -L 64M vgshared >>"$dir/ACTIONS.log" 2>&1
report ex
cap lvchange-asy-web lvchange -asy vgshared/web
report sh
signal a-shared
await b-shared
cap lvchange-aey-web-held lvchange -aey vgshared/web
report sh-both
signal a-refused
await b-released
cap lvchange-aey-web lvchange -aey vgshared/web
report ex-again
signal a-done
echo done >>"$dir/ACTIONS.log"
