# hostform sandbox, stage 2: PID 1 on the overlay root.
# Mounts the API filesystems, starts udev, loads the storage/network modules,
# renames NICs, then runs the command with its output on a dedicated
# virtio-serial port and reports its exit status on a control port.
BB=/.hostform-sandbox/busybox
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
. /.hostform-sandbox/config.sh

log() { echo "hostform-sandbox: $*" >/dev/console; }
# Progress marks, visible with timestamps in the guest's dmesg.
mark() { echo "<5>hostform-sandbox: $*" >/dev/kmsg; }
poweroff_now() {
    sync
    echo o >/proc/sysrq-trigger
    $BB sleep 30
}
CTL_OPEN=0
fail() {
    log "stage2: $*"
    if [ "$CTL_OPEN" = 1 ]; then echo "error $*" >&3; fi
    poweroff_now
    exit 1
}

mark "stage2 started"
$BB mkdir -p /dev/pts /dev/shm /run /tmp
$BB mount -t devpts -o nosuid,noexec,gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
$BB mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /dev/shm
$BB mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run
$BB mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs /tmp
$BB ln -sf /proc/self/fd /dev/fd
$BB ln -sf /proc/self/fd/0 /dev/stdin
$BB ln -sf /proc/self/fd/1 /dev/stdout
$BB ln -sf /proc/self/fd/2 /dev/stderr
$BB mkdir -p /run/lock /var/tmp
$BB hostname "$HF_HOSTNAME"
echo "$HF_HOSTNAME" >/etc/hostname
# root's shell start-up files as on a fresh Debian host. The build machine's own (its root is
# this VM's lower layer) would run in every ssh session inside: bash reads ~/.bashrc for a
# command sshd starts, and a personal set-up there (a pyenv init: 4 s under TCG) would cost
# each remote command of a cluster sandbox as much.
for f in bashrc profile; do
    [ -r /usr/share/base-files/dot.$f ] && $BB cp /usr/share/base-files/dot.$f /root/.$f
done
$BB ip link set lo up 2>/dev/null

# Control and output ports (virtio-serial), found by name.
find_port() {
    for p in /sys/class/virtio-ports/*; do
        [ -e "$p/name" ] || continue
        if [ "$($BB cat "$p/name")" = "$1" ]; then
            echo "/dev/${p##*/}"
            return 0
        fi
    done
    return 1
}
i=0
while :; do
    CTL=$(find_port org.hostform.ctl) && OUT=$(find_port org.hostform.out) &&
        [ -c "$CTL" ] && [ -c "$OUT" ] && break
    i=$((i + 1))
    [ $i -gt 200 ] && fail "virtio-serial ports did not appear"
    $BB usleep 20000
done
exec 3>"$CTL" || fail "cannot open $CTL"
CTL_OPEN=1

# Guest-side watchdog in case the host side went away.
( $BB sleep "$HF_WATCHDOG"; log "watchdog expired"; echo o >/proc/sysrq-trigger ) 3>&- &

if [ -n "$HF_WORKDIR" ]; then
    $BB mkdir -p "$HF_WORKDIR"
    $BB mount -t 9p -o "$HF_WORKDIR_MODE,trans=virtio,version=9p2000.L,msize=$HF_MSIZE" hfwork "$HF_WORKDIR" ||
        fail "mounting the workdir share on $HF_WORKDIR failed"
fi

# libvirtd's capability cache, kept between VMs on the build machine (libvirt-up.sh reads and
# fills it). Without it a libvirtd only probes the qemu binaries again.
if [ -n "$HF_CAPS" ]; then
    $BB mkdir -p "$HF_CAPS"
    $BB mount -t 9p -o "rw,trans=virtio,version=9p2000.L,msize=$HF_MSIZE" hfcaps "$HF_CAPS" ||
        log "libvirt's capability cache is not shared: mounting it failed"
fi

# The host's executable (hostform itself) at its own path, after every mount that could hide
# it (/tmp above, the workdir): its directory is shared as hfexe and only the file is bound, so
# /tmp stays writable and a binary inside the workdir is bound over itself.
if [ -n "$HF_EXE" ]; then
    EXE_SHARE=/.hostform-sandbox/exe
    $BB mkdir -p "$EXE_SHARE"
    $BB mount -t 9p -o "ro,trans=virtio,version=9p2000.L,msize=$HF_MSIZE,cache=$HF_ROOT_CACHE" hfexe "$EXE_SHARE" ||
        fail "mounting the share of $HF_EXE failed"
    if [ ! -e "$HF_EXE" ]; then
        $BB mkdir -p "${HF_EXE%/*}/" && $BB touch "$HF_EXE" ||
            fail "cannot make a mount point for $HF_EXE"
    fi
    $BB mount -o bind "$EXE_SHARE/${HF_EXE##*/}" "$HF_EXE" ||
        fail "binding $HF_EXE into the guest failed"
fi

# Stable names the spec expects (ata-…, nvme-…, wwn-…) for the virtio disks, as udev
# makes them on real hardware: the disk and each of its partitions.
if [ -n "$HF_BYID" ]; then
    $BB mkdir -p /etc/udev/rules.d
    for spec in $HF_BYID; do
        dev=${spec%%=*}
        alias=${spec#*=}
        echo "KERNEL==\"$dev\", SUBSYSTEM==\"block\", SYMLINK+=\"disk/by-id/$alias\""
        echo "KERNEL==\"$dev[0-9]*\", SUBSYSTEM==\"block\", SYMLINK+=\"disk/by-id/$alias-part%n\""
    done >/etc/udev/rules.d/61-hostform-sandbox.rules
fi

mark "starting udevd"
"$HF_UDEVD" --daemon --resolve-names=never 3>&- || fail "systemd-udevd failed to start"
# Loading the drivers after udevd is up lets it see the disks and NICs appear;
# the trigger then only replays what existed before (cheaper than replaying
# every subsystem, which loads dozens of unneeded modules under TCG).
"$HF_MODPROBE" -a $HF_MODULES || fail "modprobe $HF_MODULES failed"
mark "modules loaded"
"$HF_UDEVADM" trigger --action=add --subsystem-match=block --subsystem-match=net --subsystem-match=misc
"$HF_UDEVADM" settle --timeout=60 || log "udevadm settle timed out"
mark "udev settled"

# NICs: first move every wanted one to a temporary name, then to its target,
# so targets that clash with current names (eth0 <-> eth1) still work.
rename_nics() {
    phase=$1
    n=0
    for spec in $HF_NICS; do
        mac=${spec%%=*}
        want=${spec#*=}
        tmp="hfnic$n"
        n=$((n + 1))
        for dev in /sys/class/net/*; do
            [ "$($BB cat "$dev/address" 2>/dev/null)" = "$mac" ] || continue
            cur=${dev##*/}
            if [ "$phase" = 1 ]; then target=$tmp; else target=$want; fi
            [ "$cur" = "$target" ] && continue
            "$HF_IP" link set dev "$cur" name "$target" || fail "renaming $cur to $target failed"
        done
    done
}
if [ -n "$HF_NICS" ]; then
    rename_nics 1
    rename_nics 2
    for spec in $HF_NICS; do
        [ -e "/sys/class/net/${spec#*=}" ] || fail "NIC ${spec#*=} (${spec%%=*}) not found"
    done
fi

mark "ready"
echo "ready $($BB cut -d' ' -f1 /proc/uptime)" >&3

# What the spec needs from its host that a bare sandbox lacks, set up as a Debian host has it
# (HF_PROVIDE, chosen from the spec by the host side). Timed apart from the boot.
provide() {
    case "$1" in
    ifupdown)
        $BB mkdir -p /etc/network/interfaces.d
        [ -e /etc/network/interfaces ] ||
            printf '%s\n' '# interfaces(5) file used by ifup(8) and ifdown(8)' \
                'source /etc/network/interfaces.d/*' '' 'auto lo' 'iface lo inet loopback' \
                >/etc/network/interfaces
        ;;
    networkd)
        $BB mkdir -p /etc/systemd/network /etc/systemd/system/multi-user.target.wants
        $BB ln -sf /lib/systemd/system/systemd-networkd.service \
            /etc/systemd/system/multi-user.target.wants/systemd-networkd.service
        ;;
    libvirtd)
        /.hostform-sandbox/libvirt-up.sh >/dev/console 2>&1 || fail "libvirtd did not start"
        ;;
    xen)
        /.hostform-sandbox/xen-up.sh >/dev/console 2>&1 || fail "the Xen toolstack did not start"
        ;;
    throttle-resync)
        echo 1000 >/proc/sys/dev/raid/speed_limit_max || fail "cannot throttle md resync"
        echo 1000 >/proc/sys/dev/raid/speed_limit_min
        ;;
    *) fail "unknown provision $1" ;;
    esac
}
if [ -n "$HF_PROVIDE" ]; then
    for p in $HF_PROVIDE; do provide "$p"; done
    mark "provided $HF_PROVIDE"
fi
echo "provided $($BB cut -d' ' -f1 /proc/uptime)" >&3

cd "$HF_CWD" || fail "cd $HF_CWD failed"
(hf_command) </dev/null >"$OUT" 2>&1 3>&-
rc=$?
sync
echo "exit $rc" >&3
poweroff_now
