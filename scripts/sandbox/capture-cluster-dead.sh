#!/bin/bash
# Runs INSIDE each host of a two-host cluster sandbox (after cluster-up.sh) and captures what
# kvm2 sees when kvm1 dies while it holds an LV's lease: sanlock's view of kvm1 (`gets -h 1`,
# `host_status -D`) while it is alive, after it stopped renewing, and once sanlock calls it dead,
# with lvmlockd's refusals of `lvchange -aey` until then and its grant after. kvm1 powers off
# at once (sysrq o: no sync, no shutdown, as when a host loses power). Files go to
# FIXTURES_DIR/cluster-dead (kvm2's only); the two hosts take turns through files in SYNC_DIR.
#
#   scripts/sandbox/capture-cluster-dead.sh FIXTURES_DIR SYNC_DIR
set -euo pipefail
root=${1:?fixtures directory}
sync=${2:?sync directory}
LUN=/dev/disk/by-id/virtio-HF-LUN0
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export LVM_SUPPRESS_FD_WARNINGS=1
dir="$root/cluster-dead"
mkdir -p "$sync"
signal() { touch "$sync/$1"; }
await() {
    for _ in $(seq 3000); do [ -e "$sync/$1" ] && return 0; sleep 0.1; done
    echo "capture-cluster-dead: gave up waiting for $1" >&2
    exit 1
}
if [ "$(hostname)" = kvm1 ]; then
    vgcreate --shared vgshared "$LUN"
    lvcreate -y -n web -L 64M vgshared
    signal a-created
    await b-seen
    echo o >/proc/sysrq-trigger
    sleep 60
    exit 0
fi
rm -rf "$dir"
mkdir -p "$dir"
: >"$dir/COMMANDS"
: >"$dir/ACTIONS.log"
quote_argv() {
    local out="" a
    for a in "$@"; do out+="$(printf '%q' "$a") "; done
    printf '%s' "${out% }"
}
mono() { cut -d' ' -f1 /proc/uptime; }
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
    printf '%s uptime=%s exit=%s\n' "$name" "$(mono)" "$rc" >>"$dir/ACTIONS.log"
    return $rc
}
report() {
    local tag=$1
    cap "pvs-$tag.json" pvs --reportformat json --units b -o pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count || true
    cap "vgs-$tag.json" vgs --reportformat json --units b -o vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags || true
    cap "lvs-$tag.json" lvs -a --reportformat json --units b -o lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags || true
    cap "lvmlockctl-info-$tag" lvmlockctl --info || true
    cap "sanlock-dump-$tag" sanlock direct dump /dev/mapper/vgshared-lvmlock || true
    # The LVs' leases: from the first LV's lock offset (lock_args VERSION:OFFSET) on.
    cap "lvs-lock-args-$tag.json" lvs --reportformat json -o vg_name,lv_name,lv_uuid,lock_args,lv_active vgshared || true
    local off
    off=$(lvs --noheadings -o lock_args vgshared | tr -d ' ' | cut -d: -f2 | grep . | sort -n | head -1)
    cap "sanlock-dump-leases-$tag" sanlock direct dump "/dev/mapper/vgshared-lvmlock:$off" || true
}
await a-created
pvscan --cache >/dev/null 2>&1 || true
vgchange --lock-start vgshared
# Two renewals of our own see kvm1's timestamps move.
sleep 45
cap gets-live sanlock client gets -h 1
cap host-status-live sanlock client host_status -D
report live
cap lvchange-aey-live lvchange -aey vgshared/web || true
signal b-seen
echo "kvm1 told to power off at uptime=$(mono)" >>"$dir/ACTIONS.log"
i=0
while :; do
    sleep 10
    i=$((i + 1))
    cap "gets-$i" sanlock client gets -h 1 || true
    cap "host-status-$i" sanlock client host_status -D || true
    if [ -z "${failing:-}" ] && grep -q '^h 1 .* FAIL$' "$dir/gets-$i"; then
        failing=$i
        report failing
    fi
    if [ -z "${dead:-}" ] && grep -q '^h 1 .* DEAD$' "$dir/gets-$i"; then
        dead=$i
        report dead
    fi
    if cap "lvchange-aey-$i" lvchange -aey vgshared/web; then break; fi
    [ $i -lt 30 ] || { echo "still refused after 300 s" >>"$dir/ACTIONS.log"; break; }
done
report taken
cap gets-after sanlock client gets -h 1 || true
cap host-status-after sanlock client host_status -D || true
cap lvs-after.json lvs --reportformat json -o vg_name,lv_name,lock_args,lv_active vgshared || true
off=$(lvs --noheadings -o lock_args vgshared/web | tr -d ' ' | cut -d: -f2)
cap sanlock-dump-web-after sanlock direct dump "/dev/mapper/vgshared-lvmlock:$off" || true
echo done >>"$dir/ACTIONS.log"
