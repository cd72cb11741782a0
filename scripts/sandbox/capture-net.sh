#!/bin/bash
# Runs INSIDE the hostform sandbox (as root, cwd = repository root) and
# captures the network scenarios of tests/fixtures/ (same format as
# capture-inner.sh: <name>, <name>.cmd, <name>.stderr, COMMANDS, ACTIONS.log).
#
#   capture-net.sh FIXTURES_DIR
#
# addressed/: the state before a bridge exists, as on a freshly installed host:
#   eth0 up with 192.0.2.10/24 and the default route via 192.0.2.1, plus an
#   unmanaged dummy0 (down, no address).
#
# tapped/: see the scenario below.
#
# Run from the build machine with scripts/capture-net-fixtures.sh.
set -euo pipefail

root=${1:?fixtures directory}
export LC_ALL=C.UTF-8 LANG=C.UTF-8

dir=
scenario() {
    dir="$root/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    : >"$dir/COMMANDS"
    : >"$dir/ACTIONS.log"
    echo "== scenario $1"
}

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
        exit 1
    fi
}

scenario addressed
act ip link add dummy0 type dummy
act ip addr add 192.0.2.10/24 dev eth0
act ip link set dev eth0 up
act ip route add default via 192.0.2.1 dev eth0
cap ip-d-link.json ip -j -d link
cap ip-addr.json ip -j addr
cap ip-route.json ip -j route

# tapped/: a bridge carrying running guests, as libvirt (KVM) leaves it: br0 holds
#   eth0's address and two tap devices (vnet0, vnet1: tun driver, tap mode, vnet_hdr,
#   as libvirt opens them), plus veth0, a port nobody manages that is not a guest's.
scenario tapped
# Outside the sandbox (`unshare -n`: a fresh network namespace, no dummy module) there is
# no eth0: one end of a veth pair stands in for the NIC.
ip link show dev eth0 >/dev/null 2>&1 || act ip link add eth0 type veth peer name eth0p
act ip link add br0 type bridge
act ip link set dev eth0 master br0
act ip link set dev eth0 up
act ip addr add 192.0.2.10/24 dev br0
act ip link set dev br0 up
act ip route add default via 192.0.2.1 dev br0
act ip tuntap add dev vnet0 mode tap vnet_hdr
act ip tuntap add dev vnet1 mode tap vnet_hdr
act ip link set dev vnet0 master br0
act ip link set dev vnet1 master br0
act ip link set dev vnet0 up
act ip link set dev vnet1 up
act ip link add veth0 type veth peer name veth0p
act ip link set dev veth0 master br0
cap ip-d-link.json ip -j -d link
cap ip-addr.json ip -j addr
cap ip-route.json ip -j route
