#!/bin/bash
# Re-captures tests/fixtures/ from real tools inside the hostform sandbox.
#
# Boot 1 (blank disks): VERSIONS, blank/, full/, bridge/; the storage stack is
#   then stopped cleanly and the disk images are kept.
# Boot 2 (same images): reused/ right after boot (udev auto-assembly), then
#   degraded/ (fail, remove, re-add/recovery), failed/ (faulty member), replaced/
#   (member removed, its disk wiped), tagged/ (prevent-destroy LVM tags).
# Boot 3 (fresh images): guests/ (libvirtd, two guests on LVs and br0).
#
# Needs: qemu-system-x86, linux-image-amd64, busybox-static, mdadm, lvm2,
# fdisk, e2fsprogs, iproute2, udev, kmod (see docs/sandbox-notes.md).
# Usage: scripts/capture-fixtures.sh [FIXTURES_DIR]   (default tests/fixtures)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fixtures=${1:-tests/fixtures}
case "$fixtures" in
/*) rel=$(realpath -m --relative-to="$repo" "$fixtures") ;;
*) rel=$fixtures ;;
esac
case "$rel" in
../* | /*)
    echo "fixtures dir must be inside the repository ($repo)" >&2
    exit 2
    ;;
esac
mkdir -p "$rel"

cargo build --quiet --example sandbox_smoke
smoke="$repo/target/debug/examples/sandbox_smoke"
keep=$(mktemp -d /var/tmp/hostform-capture.XXXXXX)
trap 'rm -rf "$keep"' EXIT

log="$rel/CAPTURE.log"
: >"$log"
for phase in first second; do
    echo "== boot for phase $phase" | tee -a "$log"
    start=$(date +%s.%N)
    "$smoke" --keep "$keep" --writable --timeout 1500 --workdir "$repo" -- \
        bash scripts/sandbox/capture-inner.sh "$phase" "$rel" 2> >(tee -a "$log" >&2)
    end=$(date +%s.%N)
    printf 'phase %s wall time: %.1f s\n' "$phase" "$(echo "$end - $start" | bc)" | tee -a "$log"
done
# Boot 3 (fresh disks): guests/ under a real libvirtd (scripts/sandbox/capture-guests.sh).
echo "== boot for guests" | tee -a "$log"
start=$(date +%s.%N)
"$smoke" --writable --timeout 900 --memory 1024 --workdir "$repo" -- \
    bash scripts/sandbox/capture-guests.sh "$rel" 2> >(tee -a "$log" >&2)
end=$(date +%s.%N)
printf 'phase guests wall time: %.1f s\n' "$(echo "$end - $start" | bc)" | tee -a "$log"
echo "fixtures written to $rel"
