#!/bin/bash
# Re-captures tests/fixtures/thin/ (an LVM thin pool with thin LVs; see
# scripts/sandbox/capture-thin.sh) in one sandbox boot.
# Usage: scripts/capture-thin-fixtures.sh [FIXTURES_DIR]   (default tests/fixtures)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fixtures=${1:-tests/fixtures}
cargo build --quiet --example sandbox_smoke
"$repo/target/debug/examples/sandbox_smoke" --writable --timeout 600 --workdir "$repo" -- \
    bash scripts/sandbox/capture-thin.sh "$fixtures"
echo "thin pool fixtures written to $fixtures/thin, $fixtures/lvm-shapes and $fixtures/lvm-missing"
