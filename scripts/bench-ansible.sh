#!/usr/bin/env bash
# Side by side, in one run, on the same sandbox host (a real kernel: RAID1, LVM, N ext4 LVs):
#   - `hostform plan` (which checks disks, partitions, the array, the VG, every LV and its
#     filesystem), and
#   - the Ansible check-mode playbook an operator would write instead, which verifies only the
#     VG, the LVs and their filesystems (community.general lvg, lvol, filesystem).
# Both must find nothing to change; the script fails otherwise. Timings are interleaved.
# Under the sandbox's emulated CPU, one Ansible run over 50 LVs takes minutes: by default
# hostform is timed 5 times and Ansible once, interleaved.
# Usage: scripts/bench-ansible.sh [N_LVS (50)] [HOSTFORM_RUNS (5)] [ANSIBLE_RUNS (1)]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
ensure_rust
install_missing "${HOSTFORM_BUILD_PKGS[@]}" "${HOSTFORM_E2E_PKGS[@]}" python3 python3-venv
n=${1:-50}
runs=${2:-5}
ansible_runs=${3:-1}
ansible_version=12.3.0
venv=/var/tmp/hostform-bench-venv
if ! "$venv/bin/ansible-playbook" --version >/dev/null 2>&1; then
  say "installing Ansible $ansible_version (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "ansible==$ansible_version"
fi
say "building hostform (release)"
cargo build --release --locked --quiet
hf=$PWD/target/release/hostform
work=$(mktemp -d /var/tmp/hostform-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
python3 benches/ansible/gen.py "$n" "$work"
cat > "$work/inner.sh" <<INNER
set -e
cd $work
export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3
$hf apply host.yaml --auto-approve > /tmp/apply.log 2>&1 || { tail -30 /tmp/apply.log; exit 1; }
$hf plan host.yaml --detailed-exitcode > /dev/null
ms() { echo \$(( (\$(date +%s%N) - \$1) / 1000000 )); }
for i in \$(seq $runs); do
  t=\$(date +%s%N); $hf plan host.yaml --detailed-exitcode > /tmp/plan.out; echo "RESULT hostform \$(ms \$t)"
  if [ \$i -le $ansible_runs ]; then
    t=\$(date +%s%N); $venv/bin/ansible-playbook -i localhost, -c local --check playbook.yml > /tmp/play.out 2>&1 || { tail -30 /tmp/play.out; exit 1; }
    echo "RESULT ansible \$(ms \$t)"
  fi
done
grep -o "Plan: .*" /tmp/plan.out | sed 's/^/CHECK hostform /'
grep -E 'localhost +:' /tmp/play.out | sed 's/^/CHECK ansible /'
INNER
say "sandbox: $n LVs, $runs interleaved runs each (this boots a VM and builds the host first)"
out=$("$hf" sandbox "$work/host.yaml" --disk-size 2GiB --timeout 90m -- sh "$work/inner.sh") || {
  echo "$out" >&2
  exit 1
}
echo "$out" | grep -E '^(CHECK|RESULT)' >&2 || true
echo "$out" | python3 -c '
import sys, statistics
r = {}
checks = []
for l in sys.stdin:
    p = l.split()
    if p[:1] == ["RESULT"]: r.setdefault(p[1], []).append(int(p[2]))
    if p[:1] == ["CHECK"]: checks.append(l.strip())
for c in checks:
    if "hostform" in c and "0 operations" not in c: sys.exit("hostform found changes: " + c)
    if "ansible" in c and "changed=0" not in c: sys.exit("ansible found changes: " + c)
if len(r) != 2: sys.exit("no timings: the run failed")
print("| tool | median | min | max | runs |")
print("|---|---:|---:|---:|---:|")
for k in ("hostform", "ansible"):
    v = r[k]
    print(f"| {k} | {statistics.median(v)} ms | {min(v)} ms | {max(v)} ms | {len(v)} |")
print()
print(f"ratio (median ansible / median hostform): {statistics.median(r[\"ansible\"]) / statistics.median(r[\"hostform\"]):.1f}x")
'
