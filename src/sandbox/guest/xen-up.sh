#!/bin/sh
# hostform sandbox, dom0 of a Xen sandbox: start the toolstack as a Debian dom0 does at boot
# (Debian's own /etc/init.d/xen: xenfs on /proc/xen, xenstored, xen-init-dom0, xenconsoled),
# with the backend drivers PV guests' disks and NICs need. Then check that `xl` answers.
set -u
[ "$(cat /sys/hypervisor/type 2>/dev/null)" = xen ] || {
    echo "xen-up: not running under Xen (/sys/hypervisor/type)" >&2
    exit 1
}
modprobe -a xen-evtchn xen-gntdev xen-gntalloc xen-privcmd xen-blkback xen-netback xenfs ||
    echo "xen-up: some Xen modules did not load" >&2
mkdir -p /var/log/xen /var/lib/xen /run/xen /var/run/xen
/etc/init.d/xen start || {
    echo "xen-up: /etc/init.d/xen start failed" >&2
    exit 1
}
i=0
until xl info >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
        echo "xen-up: xl info does not answer:" >&2
        xl info >&2
        exit 1
    fi
    sleep 0.1
done
