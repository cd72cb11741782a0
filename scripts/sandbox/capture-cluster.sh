#!/bin/bash
# Runs INSIDE each host of a two-host cluster sandbox (after cluster-up.sh: sanlock and lvmlockd
# running, host_id 1 on kvm1, 2 on kvm2, the LUN at /dev/disk/by-id/virtio-HF-LUN0) and
# captures real lvmlockd, sanlock and LVM output into FIXTURES_DIR/cluster-a (kvm1) and
# FIXTURES_DIR/cluster-b (kvm2). The two hosts take turns through files in SYNC_DIR (a
# writable share both see).
#
#   scripts/sandbox/capture-cluster.sh FIXTURES_DIR SYNC_DIR
#
# Same file layout as capture-inner.sh (<name>, <name>.cmd, <name>.stderr, COMMANDS,
# ACTIONS.log).
set -euo pipefail
root=${1:?fixtures directory}
sync=${2:?sync directory}
LUN=/dev/disk/by-id/virtio-HF-LUN0
export LC_ALL=C.UTF-8 LANG=C.UTF-8
export LVM_SUPPRESS_FD_WARNINGS=1
case "$(hostname)" in
kvm1) me=a ;;
kvm2) me=b ;;
*) echo "capture-cluster: run on kvm1 or kvm2" >&2; exit 2 ;;
esac
dir="$root/cluster-$me"
rm -rf "$dir"
mkdir -p "$dir" "$sync"
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
signal() { touch "$sync/$1"; }
await() {
    for _ in $(seq 3000); do [ -e "$sync/$1" ] && return 0; sleep 0.1; done
    echo "capture-cluster: gave up waiting for $1" >&2
    exit 1
}
report() {
    local tag=$1
    cap "pvs-$tag.json" pvs --reportformat json --units b -o pv_name,vg_name,pv_fmt,pv_attr,pv_size,pv_free,dev_size,pv_uuid,pe_start,pv_pe_count,pv_pe_alloc_count
    cap "vgs-$tag.json" vgs --reportformat json --units b -o vg_name,vg_uuid,vg_attr,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count,pv_count,lv_count,snap_count,vg_tags
    cap "lvs-$tag.json" lvs -a --reportformat json --units b -o lv_name,vg_name,lv_uuid,lv_attr,lv_size,lv_path,lv_dm_path,origin,snap_percent,lv_active,lv_permissions,segtype,devices,seg_pe_ranges,seg_start,seg_size,lv_tags
    cap "lvmlockctl-info-$tag" lvmlockctl --info
}

if [ $me = a ]; then
    cap lvmlockctl-info-none lvmlockctl --info
    cap sanlock-status-none sanlock client status
    # With use_lvmlockd = 1, a PV needs the global lock, which no shared VG holds yet.
    cap pvcreate-no-global-lock pvcreate "$LUN"
    cap vgcreate-shared vgcreate --shared vgshared "$LUN"
    cap lvcreate-web lvcreate -y -n web -L 64M vgshared
    cap lvcreate-db lvcreate -y -an -n db -L 32M vgshared
    report created
    cap lvs-lock-args.json lvs --reportformat json -o vg_name,lv_name,lv_uuid,lock_args,lv_active vgshared
    cap vgs-lock-type.json vgs --reportformat json -o vg_name,vg_attr,lock_type,lock_args vgshared
    cap sanlock-status-held sanlock client status
    signal a-created
    await b-started
    cap sanlock-dump-lockspace sanlock direct dump /dev/mapper/vgshared-lvmlock
    cap sanlock-host-status sanlock client host_status
    signal a-dumped
    await b-refused
    # The live-migration dance: exclusive -> shared here, shared there, then released here.
    cap lvchange-asy-web lvchange -asy vgshared/web
    signal a-shared
    await b-shared
    cap lvchange-an-web lvchange -an vgshared/web
    signal a-released
    await b-done
    report end
    cap vgchange-lock-stop vgchange --lock-stop vgshared
    cap lvmlockctl-info-stopped lvmlockctl --info
    # A lockspace that is not started: activation refused by lvmlockd.
    cap lvchange-aey-stopped lvchange -aey vgshared/db
    signal a-done
else
    await a-created
    cap pvscan-cache pvscan --cache
    report unstarted
    cap lvchange-aey-unstarted lvchange -aey vgshared/web
    cap vgchange-lock-start vgchange --lock-start vgshared
    report started
    signal b-started
    await a-dumped
    cap lvchange-aey-held lvchange -aey vgshared/web
    cap lvchange-asy-held lvchange -asy vgshared/web
    cap lvs-lock-args.json lvs --reportformat json -o vg_name,lv_name,lv_uuid,lock_args,lv_active vgshared
    off=$(lvs --noheadings -o lock_args vgshared/web | tr -d ' ' | cut -d: -f2)
    cap sanlock-dump-web sanlock direct dump "/dev/mapper/vgshared-lvmlock:$off"
    cap sanlock-dump-lockspace sanlock direct dump /dev/mapper/vgshared-lvmlock
    cap sanlock-host-status sanlock client host_status
    # db was created inactive on kvm1: free for this host.
    cap lvchange-aey-db lvchange -aey vgshared/db
    report db-active
    signal b-refused
    await a-shared
    cap lvchange-asy-web lvchange -asy vgshared/web
    cap lvs-shared.json lvs --reportformat json -o vg_name,lv_name,lock_args,lv_active vgshared
    signal b-shared
    await a-released
    cap lvchange-aey-web-after lvchange -aey vgshared/web
    report moved
    signal b-done
    await a-done
fi
