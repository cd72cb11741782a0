#!/usr/bin/env bash
# Benchmarks on a real kernel: the sandbox host of docs/performance.md (2 disks, RAID1, vg0 with
# 50 ext4 LVs, 2 bridges, 10 libvirt guests), built by hostform itself, then:
#   floor    `hostform plan` and `hostform discover` against the floor: the discovery commands
#            hostform runs (as it reports them), run directly one after another, and all at
#            once (the strictest floor, as hostform reads side by side); processes
#   apply    apply of 20 independent LV creations (lvcreate + mkfs.ext4 each) and of 10
#            independent guest starts, at --parallelism 1 against the default (4)
#   ansible  the Ansible check-mode playbook an operator would write instead (community.general
#            lvg, lvol, filesystem over the same VG, LVs and filesystems) against `hostform plan`
# Usage: scripts/bench-host.sh [--phases floor,apply,ansible] [--runs N (11)] [--rounds R (3)]
#                              [--ansible-runs A (1)] [--lvs 50] [--guests 10] [--more 20]
# Under the sandbox's software-emulated CPU one Ansible run takes about 40 minutes, a round of
# the apply phase about 10, the rest about 15: some 90 minutes with the defaults.
# Prints a markdown summary at the end; the raw lines go to target/bench-host/results.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust
phases=floor,apply,ansible runs=11 rounds=3 ansible_runs=1 lvs=50 guests=10 more=20
while [ $# -gt 0 ]; do
  case $1 in
    --phases) phases=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --ansible-runs) ansible_runs=$2; shift 2 ;;
    --lvs) lvs=$2; shift 2 ;;
    --guests) guests=$2; shift 2 ;;
    --more) more=$2; shift 2 ;;
    *) echo "unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
install_missing "${HOSTFORM_BUILD_PKGS[@]}" "${HOSTFORM_E2E_PKGS[@]}" python3 python3-venv
ansible_version=12.3.0
venv=/var/tmp/hostform-bench-venv
if [[ ",$phases," == *",ansible,"* ]] && ! "$venv/bin/ansible-playbook" --version > /dev/null 2>&1; then
  say "installing Ansible $ansible_version (PyPI) into $venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ansible==$ansible_version"
fi
say "building hostform (release)"
cargo build --release --locked --quiet
hf=$(realpath "${CARGO_TARGET_DIR:-target}")/release/hostform
dir=target/bench-host
rm -rf "$dir"
mkdir -p "$dir"
python3 benches/host/gen.py "$lvs" "$guests" "$more" "$dir/specs"
"$hf" validate "$dir/specs/host.yaml" "$dir/specs/host-running.yaml" "$dir/specs/host-more.yaml" >&2
say "sandbox (2 vCPUs, 3 GiB): build the host, then phases $phases"
started=$(date +%s)
set +e
"$hf" sandbox "$dir/specs/host.yaml" --scale 1 --disk-size 2GiB --cpus 2 --memory 3GiB --timeout 150m -- \
  bash scripts/sandbox/bench-host-inner.sh "$hf" "$dir/specs" "$phases" "$runs" "$rounds" "$ansible_runs" "$venv" \
  | tee "$dir/results.txt" | grep --line-buffered -E '^(INFO|FAIL|DONE)' >&2
rc=${PIPESTATUS[0]}
set -e
say "sandbox run: $(( $(date +%s) - started )) s, exit $rc"
grep -q '^DONE' "$dir/results.txt" || { tail -40 "$dir/results.txt" >&2; exit 1; }
# The summary: medians, min, max, ratios.
python3 - "$dir/results.txt" <<'PY'
import statistics, sys
r, info = {}, []
for line in open(sys.argv[1]):
    p = line.split()
    if p[:1] == ["RESULT"]:
        r.setdefault(p[1], []).append(float(p[2]))
    elif p[:1] == ["INFO"]:
        info.append(line[5:].rstrip())
def row(k):
    v = r[k]
    return f"| {k} | {statistics.median(v):.0f} ms | {min(v):.0f} ms | {max(v):.0f} ms | {len(v)} |"
print("\n".join(f"- {i}" for i in info))
print("\n| measured | median | min | max | runs |\n|---|---:|---:|---:|---:|")
for k in r:
    print(row(k))
m = {k: statistics.median(v) for k, v in r.items()}
print()
if "floor" in m:
    print(f"- plan / floor: {m['plan'] / m['floor']:.2f}x (budget 1.5x); discover / floor: {m['discover'] / m['floor']:.2f}x")
    if "floor-together" in m:
        print(f"- plan / floor with the commands all at once: {m['plan'] / m['floor-together']:.2f}x; discover: {m['discover'] / m['floor-together']:.2f}x")
for what in ("lvs", "guests"):
    if f"{what}-p1" in m:
        print(f"- {what}: parallelism 1 / default (4): {m[f'{what}-p1'] / m[f'{what}-p4']:.2f}x")
if "ansible-check" in m:
    print(f"- Ansible check mode / hostform plan: {m['ansible-check'] / m['hostform-plan']:.1f}x (target: at least 10x)")
PY
