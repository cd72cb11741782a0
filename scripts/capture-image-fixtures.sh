#!/bin/bash
# Captures tests/fixtures/image/: real `qemu-img info --output=json` output for small images
# made with qemu-img and mkfs (qcow2, vmdk, raw), and for hostile ones that name another file:
# a qcow2 with a backing file, a qcow2 with an external data file, a VMDK whose descriptor's
# extent is /etc/passwd (the CVE-2022-47951 class: any host file or block device), and a
# split VMDK (twoGbMaxExtentSparse, whose extents are other files). qemu-img is
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
act qemu-img create -q -f qcow2 -o data_file=fw.raw,data_file_raw=on datafile.qcow2 10M
act qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse split.vmdk 10M
# A VMDK descriptor is a text file anyone can write: its extent line names the file to read.
printf '%s\n' '# Disk DescriptorFile' 'version=1' 'CID=fffffffe' 'parentCID=ffffffff' \
    'createType="monolithicFlat"' '' 'RW 2048 FLAT "/etc/passwd" 0' >passwd.vmdk
printf '$ %s\n[exit 0]\n' "printf ... >passwd.vmdk (extent: RW 2048 FLAT \"/etc/passwd\" 0)" >>"$dir/ACTIONS.log"
# -U: no lock is taken, the same argv hostform runs (an image a guest has open is still read).
for f in fw.raw fw.qcow2 fw.vmdk overlay.qcow2 datafile.qcow2 split.vmdk passwd.vmdk; do
    cap "$f.json" qemu-img info --output=json -U "$f"
done
cap missing.json qemu-img info --output=json -U missing.qcow2
qemu-img --version | head -1 >"$dir/VERSION"
echo "fixtures written to $dir"
