#!/bin/bash
# Runs INSIDE the hostform sandbox booted under Xen (dom0; as root, cwd = repository root,
# writable workdir) and captures real xl output into tests/fixtures/xen/: Xen 4.17 from
# Debian, the toolstack started by Debian's /etc/init.d/xen, two PV guests booting the Debian
# kernel with a busybox initramfs: g1 powers off when asked, g2 has no /sbin/poweroff and
# ignores the request.
#
#   scripts/sandbox/capture-xen.sh FIXTURES_DIR
#
# Same file layout as capture-guests.sh (<name>, <name>.cmd, <name>.stderr, COMMANDS,
# ACTIONS.log). Started by scripts/capture-xen-fixtures.sh.
set -euo pipefail
root=${1:?fixtures directory}
export LC_ALL=C.UTF-8 LANG=C.UTF-8
dir="$root/xen"
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

# The guests' initramfs: busybox, an /init that idles, and (g1 only) the /sbin/poweroff
# Linux's Xen manage driver runs when asked to shut down.
build_initramfs() { # DEST WITH_POWEROFF
    local t
    t=$(mktemp -d)
    mkdir -p "$t"/{bin,sbin,dev,proc,sys,tmp}
    cp /bin/busybox "$t/bin/busybox"
    ln -s busybox "$t/bin/sh"
    printf '%s\n' '#!/bin/busybox sh' '/bin/busybox --install -s /bin' \
        'mount -t proc proc /proc' 'mount -t sysfs sysfs /sys' \
        'mount -t devtmpfs devtmpfs /dev' 'while :; do sleep 3600; done' >"$t/init"
    chmod 755 "$t/init"
    if [ "$2" = yes ]; then
        printf '#!/bin/sh\nexec /bin/busybox poweroff -f\n' >"$t/sbin/poweroff"
        chmod 755 "$t/sbin/poweroff"
    fi
    (cd "$t" && find . | cpio -o -H newc --quiet) >"$1"
    rm -rf "$t"
}
build_initramfs /tmp/pv.cpio yes
build_initramfs /tmp/deaf.cpio no
kernel=$(ls /var/tmp/hostform-sandbox-cache/vmlinux-* 2>/dev/null | head -n 1)
[ -n "$kernel" ] || kernel=$(ls /boot/vmlinuz-* | head -n 1)
xlcfg() { # NAME RAMDISK
    printf 'name = "%s"\nmemory = 128\nvcpus = 1\nkernel = "%s"\nramdisk = "%s"\nextra = "console=hvc0 rdinit=/init quiet"\n' \
        "$1" "$kernel" "$2"
}
xlcfg g1 /tmp/pv.cpio >/tmp/g1.xl
xlcfg g2 /tmp/deaf.cpio >/tmp/g2.xl
cp /tmp/g1.xl "$dir/g1-input.xl"

cap xl-info xl info
cap list-long-dom0 xl list -l
cap list-dom0 xl list
cap create-g1 xl create /tmp/g1.xl
cap create-g2 xl create /tmp/g2.xl
cap create-g1-again xl create /tmp/g1.xl
cap create-missing xl create /etc/xen/no-such-guest.xl
cap domid-g1 xl domid g1
cap domid-unknown xl domid no-such-guest
cap list-long-running xl list -l
cap list-running xl list
act xl pause g2
cap list-long-paused xl list -l
cap list-paused xl list
act xl unpause g2
cap shutdown-g1 xl shutdown g1
# g1 powers off by itself; xl domid fails once it is gone.
for _ in $(seq 100); do xl domid g1 >/dev/null 2>&1 || break; sleep 0.2; done
cap domid-g1-gone xl domid g1
cap shutdown-unknown xl shutdown no-such-guest
cap shutdown-g2 xl shutdown g2
sleep 3
cap list-long-g2-ignores xl list -l
# Dying: g2 destroyed while a process of dom0 still maps one of its pages (a frame from its
# p2m), as a backend that has not let go would: Xen keeps the domain, dying, until the mapping
# goes (scripts/sandbox/hold-foreign-page.py).
g2=$(xl domid g2)
/usr/lib/xen-4.17/bin/xen-mfndump dump-p2m "$g2" >/tmp/p2m.out 2>&1 || true
mfn=$(grep -oiE 'mfn[^0-9a-fx]*(0x)?[0-9a-f]+' /tmp/p2m.out | grep -oiE '(0x)?[0-9a-f]+$' | sed -n 20p)
[ -n "$mfn" ] || { echo "no frame of g2 from xen-mfndump:" >&2; head -n 40 /tmp/p2m.out >&2; exit 1; }
case "$mfn" in 0x* | 0X*) ;; *) mfn=0x$mfn ;; esac
printf '$ xen-mfndump dump-p2m %s | a frame: %s\n' "$g2" "$mfn" >>"$dir/ACTIONS.log"
python3 "$(dirname "$0")/hold-foreign-page.py" "$g2" "$mfn" >/tmp/holder.out 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q held /tmp/holder.out && break; sleep 0.1; done
grep -q held /tmp/holder.out || { head -n 40 /tmp/p2m.out >&2; cat /tmp/holder.out >&2; exit 1; }
act xl destroy g2
cap list-dying xl list
cap list-long-dying xl list -l
cap domid-g2-dying xl domid g2
kill "$holder"
wait "$holder" 2>/dev/null || true
for _ in $(seq 50); do xl list | grep -q '^(null)' || break; sleep 0.2; done
cap destroy-unknown xl destroy no-such-guest
cap list-long-empty xl list -l
