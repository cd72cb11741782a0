#!/usr/bin/env bash
# Inside the sandbox (scripts/bench-floor.sh): build the host, then time `hostform plan`
# against the discovery commands it runs, run alone. Timing uses bash's $EPOCHREALTIME, so no
# extra process is spawned inside a measurement.
set -euo pipefail
HF=$1 SPEC=$2 N=$3
"$HF" apply "$SPEC" --auto-approve > /tmp/apply.log 2>&1 || { cat /tmp/apply.log; exit 1; }
tail -1 /tmp/apply.log
echo "LVs: $(lvs --noheadings vg0 | wc -l)"
# Which commands does discovery run? hostform counts what it spawns (RealRunner::spawned).
"$HF" discover --format json 2> /tmp/discover.err > /dev/null
line=$(grep '^discover: ' /tmp/discover.err)
echo "$line"
nproc=$(sed -E 's/^discover: ([0-9]+) processes.*/\1/' <<< "$line")
mapfile -t cmds < <(sed -E 's/^discover: [0-9]+ processes: //' <<< "$line" | sed 's/; /\n/g')
[ "${#cmds[@]}" = "$nproc" ] || { echo "could not read the command list"; exit 1; }
ms() { # microseconds between two $EPOCHREALTIME values, as milliseconds with one decimal
  awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'
}
stats() { sort -n | awk '{ v[NR] = $1 } END { printf "median %.1f ms, min %.1f ms, max %.1f ms (n=%d)", v[int((NR + 1) / 2)], v[1], v[NR], NR }'; }
# The floor runs each command as hostform's runner does: LC_ALL=C, LVM_SUPPRESS_FD_WARNINGS=1,
# stdin from /dev/null, stdout and stderr read (here: discarded).
export LC_ALL=C LVM_SUPPRESS_FD_WARNINGS=1
exec < /dev/null
plan=() floor=()
"$HF" plan "$SPEC" > /dev/null # warm the page cache once, for both
for c in "${cmds[@]}"; do eval "$c" > /dev/null 2>&1 || true; done
for i in $(seq 1 "$N"); do
  # Alternate, so that a slow moment of the machine hits both.
  t0=$EPOCHREALTIME
  for c in "${cmds[@]}"; do eval "$c" > /dev/null 2>&1 || true; done
  t1=$EPOCHREALTIME
  "$HF" plan "$SPEC" > /dev/null
  t2=$EPOCHREALTIME
  floor+=("$(ms "$t0" "$t1")") plan+=("$(ms "$t1" "$t2")")
done
echo "floor (the $nproc discovery commands, one after another): $(printf '%s\n' "${floor[@]}" | stats)"
echo "hostform plan:                                          $(printf '%s\n' "${plan[@]}" | stats)"
fm=$(printf '%s\n' "${floor[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
pm=$(printf '%s\n' "${plan[@]}" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
awk -v p="$pm" -v f="$fm" 'BEGIN { printf "ratio of medians: %.2fx (budget 1.5x)\n", p / f }'
echo "processes spawned by discovery: $nproc (budget 10)"
