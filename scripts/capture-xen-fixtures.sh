#!/bin/bash
# Re-captures tests/fixtures/xen/ from the real xl inside a Xen sandbox (one boot of
# `sandbox_smoke --xen`: Debian's Xen 4.17, the sandbox as dom0; scripts/sandbox/capture-xen.sh).
#
# Needs, besides the sandbox's packages: xen-hypervisor-4.17-amd64, xen-utils-4.17, cpio.
# Usage: scripts/capture-xen-fixtures.sh [FIXTURES_DIR]   (default tests/fixtures)
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
"$repo/target/debug/examples/sandbox_smoke" --xen --writable --timeout 600 --memory 2048 \
    --workdir "$repo" -- bash scripts/sandbox/capture-xen.sh "$rel"
echo "fixtures written to $rel/xen"
