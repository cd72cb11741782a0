#!/bin/sh
# Runs INSIDE a hostform sandbox VM that is one host of a cluster sandbox, before its command:
# the private link's address, the peers' names, then lvmlockd and sanlock started as Debian's
# lvm2-lockd and sanlock packages start them (their systemd units, by hand: the sandbox's PID 1
# is no systemd). /etc is the VM's own tmpfs overlay, so the build machine's files are untouched.
#
#   cluster-up.sh HOST_ID NIC ADDRESS/PREFIX NAME=ADDRESS... -- COMMAND...
set -eu
host_id=$1 nic=$2 address=$3
shift 3
while [ $# -gt 0 ] && [ "$1" != -- ]; do
    echo "${1#*=} ${1%%=*}" >>/etc/hosts
    shift
done
[ $# -gt 0 ] && shift
ip addr add "$address" dev "$nic"
ip link set "$nic" up
# lvm.conf: use_lvmlockd = 1; lvmlocal.conf: this host's sanlock host_id.
sed -i 's/^\([[:space:]]*\)# use_lvmlockd = 0$/\1use_lvmlockd = 1/' /etc/lvm/lvm.conf
sed -i "s/^\([[:space:]]*\)# host_id = 0\$/\1host_id = $host_id/" /etc/lvm/lvmlocal.conf
grep -q '^[[:space:]]*use_lvmlockd = 1$' /etc/lvm/lvm.conf || { echo "cluster-up: use_lvmlockd not set" >&2; exit 1; }
grep -q "^[[:space:]]*host_id = $host_id\$" /etc/lvm/lvmlocal.conf || { echo "cluster-up: host_id not set" >&2; exit 1; }
# The example guests ask for GiBs of memory a sandbox VM does not have; with no OS they touch
# little of it, so let the kernel promise it (a real host has the memory).
sysctl -q -w vm.overcommit_memory=1
# lvm2's tmpfiles.d (the VM's /run is a fresh tmpfs, and no systemd-tmpfiles runs there).
systemd-tmpfiles --create /usr/lib/tmpfiles.d/lvm2.conf 2>/dev/null || mkdir -p -m 0700 /run/lvm /run/lock/lvm
# Block devices group disk, 0660, as Debian's udev rules make them: sanlock runs as user
# sanlock (in group disk) and opens the VG's lvmlock LV. The sandbox's udevd resolves no names,
# so the rule gives the group by number.
disk_gid=$(getent group disk | cut -d: -f3)
echo "SUBSYSTEM==\"block\", GROUP=\"$disk_gid\", MODE=\"0660\"" >/etc/udev/rules.d/62-hostform-cluster.rules
udevadm control --reload
udevadm trigger --action=change --subsystem-match=block
udevadm settle --timeout=30
# sanlock.service: EnvironmentFile=-/etc/default/sanlock, ExecStart=sanlock daemon $sanlock_opts
# (Debian's default: -w 0, no watchdog; wdmd is disabled there too).
sanlock_opts=
[ -r /etc/default/sanlock ] && . /etc/default/sanlock
# shellcheck disable=SC2086
sanlock daemon $sanlock_opts
# lvmlockd.service: ExecStart=/sbin/lvmlockd --foreground (Type=notify); here it forks itself.
lvmlockd
for _ in $(seq 100); do
    lvmlockctl --info >/dev/null 2>&1 && break
    sleep 0.1
done
lvmlockctl --info >/dev/null || { echo "cluster-up: lvmlockd does not answer" >&2; exit 1; }
# lvmlocks.service: start the lockspaces of the shared VGs already on the LUN.
lvm vgchange --lock-start --lock-opt auto >/dev/null 2>&1 || true
echo "cluster-up: $(hostname) host_id $host_id ready at $(cut -d' ' -f1 /proc/uptime)"
exec "$@"
