#!/bin/busybox sh
# hostform sandbox, stage 1 (initramfs /init).
# Loads the modules needed to reach the build machine's root over 9p, puts a
# tmpfs overlay on top of it and switches root into stage 2.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs -o mode=0755 devtmpfs /dev
mount -t proc -o nosuid,nodev,noexec proc /proc
mount -t sysfs -o nosuid,nodev,noexec sysfs /sys

fail() {
    echo "hostform-sandbox: stage1: $*" >/dev/console
    echo o >/proc/sysrq-trigger
    sleep 30
    exit 1
}

. /hostform/config.sh

for m in /modules/*.ko; do
    [ -e "$m" ] || continue
    insmod "$m" || fail "insmod $m failed"
done

mkdir -p /lower /upper /newroot
mount -t 9p -o "ro,trans=virtio,version=9p2000.L,msize=$HF_MSIZE,cache=$HF_ROOT_CACHE" hostroot /lower ||
    fail "mounting the 9p root failed"
mount -t tmpfs -o mode=0755 tmpfs /upper || fail "tmpfs for the overlay failed"
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work overlay /newroot ||
    fail "mounting the overlay failed"

mkdir -p /newroot/.hostform-sandbox || fail "overlay is not writable"
cp /bin/busybox /hostform/config.sh /hostform/stage2.sh /hostform/libvirt-up.sh /hostform/xen-up.sh /newroot/.hostform-sandbox/ ||
    fail "copying stage 2 failed"

for d in dev proc sys; do
    mount --move "/$d" "/newroot/$d" || fail "moving /$d failed"
done
exec switch_root /newroot /.hostform-sandbox/busybox sh /.hostform-sandbox/stage2.sh
fail "switch_root failed"
