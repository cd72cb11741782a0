#!/bin/bash
# Captures tests/fixtures/tool-errors/: what real tools print when they fail, for the tests of
# how a failed operation is reported (only the tool's own error lines, never a usage flood).
# Every command works on small files in a temporary directory, never on a device, so it is safe
# to run here; mkfs.xfs is captured where xfsprogs is installed (the sandbox VM has it).
# Usage: scripts/capture-tool-errors.sh
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/tests/fixtures/tool-errors
mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
cap() {
    local name=$1 rc=0
    shift
    command -v "$1" >/dev/null || { echo "skip $name: $1 not installed" >&2; return; }
    "$@" >"$dir/$name.stdout" 2>"$dir/$name.stderr" || rc=$?
    [ -s "$dir/$name.stdout" ] || rm -f "$dir/$name.stdout"
    printf '%s\n' "$rc" >"$dir/$name.status"
    printf '%q ' "$@" | sed 's/ $//' >"$dir/$name.cmd"
    echo >>"$dir/$name.cmd"
}
truncate -s 100M small.img
truncate -s 32K tiny.img
# The issue's case: xfs below xfsprogs' 300 MB minimum prints its whole usage text.
cap mkfs-xfs-too-small mkfs.xfs -q small.img
# An option mkfs.ext4 does not know: its usage text.
cap mkfs-ext4-bad-option mkfs.ext4 -q -F --no-such-option tiny.img
# A filesystem that cannot fit.
cap mkfs-ext4-too-small mkfs.ext4 -q -F tiny.img
# A conversion whose source is missing.
cap qemu-img-convert-missing qemu-img convert -f qcow2 -O raw missing.qcow2 out.raw
# sfdisk given a partition past the end of a small disk image.
printf 'label: gpt\nstart=2048, size=1000000\n' >script
cap sfdisk-too-big sfdisk -q small.img <script
ls "$dir"
