#!/bin/bash
# Runs INSIDE the hostform sandbox: start libvirtd with the qemu driver (see
# docs/sandbox-notes.md, "libvirt"). The sandbox's /etc is a tmpfs overlay, so the accounts
# libvirt's Debian build expects are added there. Idempotent.
set -euo pipefail
grep -q '^kvm:' /etc/group || echo 'kvm:x:994:' >>/etc/group
grep -q '^libvirt:' /etc/group || echo 'libvirt:x:993:' >>/etc/group
grep -q '^libvirt-qemu:' /etc/passwd ||
    echo 'libvirt-qemu:x:64055:994:Libvirt Qemu:/var/lib/libvirt:/usr/sbin/nologin' >>/etc/passwd
grep -q '^libvirt-qemu:' /etc/group || echo 'libvirt-qemu:x:64055:' >>/etc/group
mkdir -p /var/lib/libvirt /var/log/libvirt /run/libvirt /var/cache/libvirt
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 100); do
    virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
    sleep 0.1
done
echo "libvirtd did not answer" >&2
exit 1
