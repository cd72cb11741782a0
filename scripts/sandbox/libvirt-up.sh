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
# libvirtd probes each qemu binary when it starts (seconds of the VM's CPU under TCG) and
# caches what it learnt, one XML per binary. The sandbox shares a cache kept between VMs
# (empty on the first run, or when the sandbox could not share it): libvirtd starts from it,
# checks each file itself (the binary's ctime, its own version) and probes again when one is
# stale; what it probed goes back for the next VM.
shared=/.hostform-sandbox/libvirt-caps
own=/var/cache/libvirt/qemu/capabilities
share=0
if mountpoint -q "$shared" 2>/dev/null; then
    share=1
    mkdir -p "$own"
    for f in "$shared"/*.xml; do
        [ -f "$f" ] && [ ! -e "$own/${f##*/}" ] && cp "$f" "$own/" && chmod 0600 "$own/${f##*/}"
    done
fi
pgrep -x virtlogd >/dev/null || virtlogd -d
pgrep -x libvirtd >/dev/null || libvirtd -d
for _ in $(seq 100); do
    if virsh -c qemu:///system version >/dev/null 2>&1; then
        if [ "$share" = 1 ]; then
            for f in "$own"/*.xml; do
                [ -f "$f" ] || continue
                n=${f##*/}
                cmp -s "$f" "$shared/$n" && continue
                cp "$f" "$shared/.$n.$$" && mv -f "$shared/.$n.$$" "$shared/$n" ||
                    rm -f "$shared/.$n.$$"
            done
        fi
        exit 0
    fi
    sleep 0.1
done
echo "libvirtd did not answer" >&2
exit 1
