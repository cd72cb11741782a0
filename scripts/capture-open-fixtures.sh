#!/bin/bash
# Re-captures tests/fixtures/opened/ (block devices held open by processes; see
# scripts/sandbox/capture-open.sh) in one sandbox boot.
# Usage: scripts/capture-open-fixtures.sh [FIXTURES_DIR]   (default tests/fixtures)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fixtures=${1:-tests/fixtures}
cargo build --quiet --example sandbox_smoke
"$repo/target/debug/examples/sandbox_smoke" --writable --timeout 600 --workdir "$repo" -- \
    bash scripts/sandbox/capture-open.sh "$fixtures"
echo "open-device fixtures written to $fixtures/opened"
