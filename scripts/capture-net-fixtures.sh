#!/bin/bash
# Re-captures the network scenarios of tests/fixtures/ (see
# scripts/sandbox/capture-net.sh) in one sandbox boot (~15 s).
# Usage: scripts/capture-net-fixtures.sh [FIXTURES_DIR]   (default tests/fixtures)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fixtures=${1:-tests/fixtures}
cargo build --quiet --example sandbox_smoke
"$repo/target/debug/examples/sandbox_smoke" --writable --timeout 300 --workdir "$repo" -- \
    bash scripts/sandbox/capture-net.sh "$fixtures"
echo "network fixtures written to $fixtures"
