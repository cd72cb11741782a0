#!/bin/bash
# Times discovery's scan for block devices held open by processes (one pass over every
# /proc/PID/fd link) on this machine, as it is and with EXTRA more processes of a few
# descriptors each (`sleep`, holding /dev/null and a pipe), as on a busy host.
# Run as root: otherwise only the caller's own processes can be read.
# Usage: scripts/bench-openers.sh [EXTRA]   (default 2000)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
extra=${1:-2000}
cargo build --quiet --release --example openers_scan
bin=target/release/examples/openers_scan
echo "== as it is"
"$bin"
pids=()
cleanup() { [ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 "$extra"); do
    sleep 600 </dev/null &
    pids+=($!)
done
echo "== with $extra more processes"
"$bin"
