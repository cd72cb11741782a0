#!/bin/bash
# Captures tests/fixtures/image/: real `qemu-img info --output=json` output for small images
# made with qemu-img and mkfs (qcow2, vmdk, raw, and a qcow2 with a backing file). qemu-img is
# a plain userspace tool: it runs here, the same binary the sandbox uses (its root is this
# machine's). The images are made in a temporary directory and named relatively, so the
# output does not depend on where it ran.
# Usage: scripts/capture-image-fixtures.sh
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/tests/fixtures/image
mkdir -p "$dir"
: >"$dir/COMMANDS"
: >"$dir/ACTIONS.log"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
act() {
    printf '$ %s\n' "$*" >>"$dir/ACTIONS.log"
    "$@" >>"$dir/ACTIONS.log" 2>&1
    printf '[exit 0]\n' >>"$dir/ACTIONS.log"
}
cap() {
    local name=$1 rc=0 q
    shift
    "$@" >"$dir/$name" 2>"$dir/$name.stderr" || rc=$?
    [ -s "$dir/$name.stderr" ] || rm -f "$dir/$name.stderr"
    q=$(printf '%q ' "$@")
    q=${q% }
    printf '%s\n' "$q" >"$dir/$name.cmd"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$q" >>"$dir/COMMANDS"
}
# 10 MiB of ext4: not a multiple of LVM's default 4 MiB extents, so the LV is rounded up.
act truncate -s 10M fw.raw
act mkfs.ext4 -q -F -L fw fw.raw
act qemu-img convert -f raw -O qcow2 fw.raw fw.qcow2
act qemu-img convert -f raw -O vmdk fw.raw fw.vmdk
act qemu-img create -q -f qcow2 -b fw.qcow2 -F qcow2 overlay.qcow2
cap fw.raw.json qemu-img info --output=json fw.raw
cap fw.qcow2.json qemu-img info --output=json fw.qcow2
cap fw.vmdk.json qemu-img info --output=json fw.vmdk
cap overlay.qcow2.json qemu-img info --output=json overlay.qcow2
cap missing.json qemu-img info --output=json missing.qcow2
qemu-img --version | head -1 >"$dir/VERSION"
echo "fixtures written to $dir"
