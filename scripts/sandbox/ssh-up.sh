#!/bin/sh
# Runs INSIDE a hostform sandbox VM of a cluster sandbox: start sshd for root on the private
# link, and make root's ssh (and libvirt's qemu+ssh://, which runs it) log in to the peers
# with the test's key, as an operator's hosts do with theirs. /etc and /run are the VM's own.
#
#   ssh-up.sh DIR    DIR holds host_key, id (the client key) and id.pub, made by the test
set -eu
src=$1
k=/run/hostform-ssh
mkdir -p -m 0700 "$k"
cp "$src/host_key" "$src/id" "$k/"
cp "$src/id.pub" "$k/authorized_keys"
chmod 600 "$k/host_key" "$k/id" "$k/authorized_keys"
cat >"$k/sshd_config" <<CONF
HostKey $k/host_key
AuthorizedKeysFile $k/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile /run/hostform-sshd.pid
Subsystem sftp internal-sftp
CONF
mkdir -p /etc/ssh/ssh_config.d
cat >/etc/ssh/ssh_config.d/hostform-sandbox.conf <<CONF
Host *
    IdentityFile $k/id
    StrictHostKeyChecking no
    UserKnownHostsFile /dev/null
    LogLevel ERROR
    # One connection per peer, reused by every later ssh (and qemu+ssh://) to it, as many
    # operators set it: each new connection costs about 2 s of CPU under TCG on both ends.
    ControlMaster auto
    ControlPath $k/cm-%C
    ControlPersist 10m
CONF
# sshd's privilege separation directory (made by its systemd unit on a real host).
mkdir -p -m 0755 /run/sshd
/usr/sbin/sshd -f "$k/sshd_config"
