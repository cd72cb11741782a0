#!/usr/bin/env bash
# Runs INSIDE the hostform sandbox (scripts/bench-host.sh): build the benchmark host from
# host.yaml (benches/host/gen.py), then measure, printing machine-readable lines:
#   RESULT <what> <ms>      one timed run
#   INFO <what> <text>      facts about the run (process counts, ops, checks)
# Phases (comma-separated): floor, apply, ansible.
# Timing uses bash's $EPOCHREALTIME, so no extra process is spawned inside a measurement.
set -euo pipefail
BUILT=$1 SRC=$2 PHASES=$3 N=$4 ROUNDS=$5 ANSIBLE_RUNS=$6 VENV=$7
has() { [[ ",$PHASES," == *",$1,"* ]]; }
# Installed as on a real host: the binary on the host's own disk, the specs in a git checkout
# there. (The work directory is shared over 9p without a page cache: run from there, every
# start of hostform would read its pages over 9p again, which no real host does.)
install -m 0755 "$BUILT" /usr/local/sbin/hostform
HF=/usr/local/sbin/hostform
DIR=/root/hostform-specs
mkdir -p "$DIR"
cp "$SRC"/* "$DIR"/
git -C "$DIR" init -q
git -C "$DIR" add -A
git -C "$DIR" -c user.name=bench -c user.email=bench@localhost commit -qm "the benchmark host"
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }
fail() { echo "FAIL $*"; exit 1; }

bash scripts/sandbox/libvirt-up.sh
t0=$EPOCHREALTIME
"$HF" apply "$DIR/host.yaml" --auto-approve > /tmp/setup.log 2>&1 || { tail -40 /tmp/setup.log; fail "setup apply"; }
t1=$EPOCHREALTIME
grep -q '^Verified' /tmp/setup.log || { tail -40 /tmp/setup.log; fail "setup not verified"; }
echo "INFO setup $(grep '^Verified' /tmp/setup.log) in $(ms "$t0" "$t1") ms"
"$HF" plan "$DIR/host.yaml" --detailed-exitcode > /tmp/plan.out 2>&1 || { cat /tmp/plan.out; fail "the second plan is not empty"; }
# Measure the host at rest: md0's initial resync would load the machine (and mdadm --wait
# returns 1 when there was nothing to wait for).
t0=$EPOCHREALTIME
mdadm --wait /dev/md0 > /dev/null 2>&1 || true
echo "INFO md0 resync waited for $(ms "$t0" "$EPOCHREALTIME") ms"
echo "INFO host $(lvs --noheadings vg0 | wc -l) LVs, $(virsh -c qemu:///system list --all --name | grep -c .) guests, bridges: $(ip -br link show type bridge | awk '{print $1}' | sort | tr '\n' ' ')"

# Each guest's "operating system": a boot sector that halts the CPU, so that running guests
# cost the machine nothing (SeaBIOS boots it from the guest's LV; with no OS at all it would
# retry network and disk boots forever).
while read -r lv; do
  printf '\xfa\xf4\xeb\xfd' | dd of="/dev/vg0/$lv" conv=notrunc status=none
  printf '\x55\xaa' | dd of="/dev/vg0/$lv" bs=1 seek=510 conv=notrunc status=none
done < "$DIR/guest-lvs"
"$HF" plan "$DIR/host.yaml" --detailed-exitcode > /tmp/plan.out 2>&1 || { cat /tmp/plan.out; fail "a boot sector changed the plan"; }

# The environment hostform's runner gives every command it spawns.
export LC_ALL=C LVM_SUPPRESS_FD_WARNINGS=1
exec < /dev/null

if has floor; then
  # Which commands does discovery run? hostform counts what it spawns (RealRunner::spawned).
  "$HF" discover --format json 2> /tmp/discover.err > /dev/null
  line=$(grep '^discover: ' /tmp/discover.err)
  nproc=$(sed -E 's/^discover: ([0-9]+) processes.*/\1/' <<< "$line")
  mapfile -t cmds < <(sed -E 's/^discover: [0-9]+ processes: //' <<< "$line" | sed 's/; /\n/g')
  [ "${#cmds[@]}" = "$nproc" ] || fail "could not read the command list: $line"
  echo "INFO processes $nproc"
  for c in "${cmds[@]}"; do echo "INFO command $c"; done
  floor() { for c in "${cmds[@]}"; do eval "$c" > /dev/null 2>&1 || true; done; }
  # The strictest floor: all of them at once (hostform reads its four rooms side by side, each
  # room's commands in turn, so it cannot beat this).
  floor_together() { for c in "${cmds[@]}"; do eval "$c" > /dev/null 2>&1 & done; wait; }
  # Warm the page cache once, for all three.
  floor; "$HF" discover --format json > /dev/null 2>&1; "$HF" plan "$DIR/host.yaml" > /dev/null 2>&1
  # hostform's own time: its total less the time it waited for its processes
  # (HOSTFORM_TIMINGS=1 prints both).
  own() { sed -nE 's/^timings: .*total ([0-9.]+) ms, of which ([0-9.]+) ms waiting.*/\1 \2/p' "$1" | awk '{ printf "%.1f", $1 - $2 }'; }
  for _ in $(seq 1 "$N"); do
    # Interleaved, so that a slow moment of the machine hits all three.
    tt=$EPOCHREALTIME; floor_together
    t0=$EPOCHREALTIME; floor
    t1=$EPOCHREALTIME; HOSTFORM_TIMINGS=1 "$HF" discover --format json > /dev/null 2> /tmp/discover.err
    t2=$EPOCHREALTIME; HOSTFORM_TIMINGS=1 "$HF" plan "$DIR/host.yaml" --detailed-exitcode > /dev/null 2> /tmp/plan.err || fail "plan found changes"
    t3=$EPOCHREALTIME
    echo "RESULT floor $(ms "$t0" "$t1")"
    echo "RESULT floor-together $(ms "$tt" "$t0")"
    echo "RESULT discover $(ms "$t1" "$t2")"
    echo "RESULT plan $(ms "$t2" "$t3")"
    echo "RESULT discover-own $(own /tmp/discover.err)"
    echo "RESULT plan-own $(own /tmp/plan.err)"
  done
  echo "INFO plan-timings $(grep '^timings:' /tmp/plan.err)"
fi

if has apply; then
  mapfile -t more < "$DIR/more-lvs"
  mapfile -t guests < "$DIR/guests"
  # An apply: its wall time, its operations and the sum of their own times.
  timed_apply() { # NAME SPEC PARALLELISM
    local t0 t1
    t0=$EPOCHREALTIME
    "$HF" apply "$2" --auto-approve --parallelism "$3" > /tmp/apply.log 2>&1 || { tail -30 /tmp/apply.log; fail "apply $1"; }
    t1=$EPOCHREALTIME
    grep -q '^Verified' /tmp/apply.log || { tail -30 /tmp/apply.log; fail "apply $1 not verified"; }
    echo "RESULT $1 $(ms "$t0" "$t1")"
    echo "INFO $1 $(grep -c '^\[[0-9]*/[0-9]*\] ok' /tmp/apply.log) operations, their own times summed: $(grep -o '^\[[0-9]*/[0-9]*\] ok ([0-9.]*s)' /tmp/apply.log | grep -o '[0-9.]*s)' | tr -d 's)' | awk '{ s += $1 } END { printf "%.1f s", s }')"
  }
  for r in $(seq 1 "$ROUNDS"); do
    # Alternate which parallelism goes first.
    if [ $((r % 2)) = 1 ]; then order="1 4"; else order="4 1"; fi
    for p in $order; do
      timed_apply "lvs-p$p" "$DIR/host-more.yaml" "$p"
      lvremove -y $(printf 'vg0/%s ' "${more[@]}") > /dev/null 2>&1 || fail "lvremove"
      timed_apply "guests-p$p" "$DIR/host-running.yaml" "$p"
      for g in "${guests[@]}"; do virsh -c qemu:///system destroy "$g" > /dev/null 2>&1 || fail "destroy $g"; done
    done
  done
  "$HF" plan "$DIR/host.yaml" --detailed-exitcode > /tmp/plan.out 2>&1 || { cat /tmp/plan.out; fail "the host did not come back to host.yaml"; }
fi

if has ansible; then
  # Ansible refuses to run without a UTF-8 locale (hostform's runner gives its own commands C).
  export LC_ALL=C.UTF-8
  export ANSIBLE_LOCALHOST_WARNING=false ANSIBLE_INVENTORY_UNPARSED_WARNING=false
  export ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 ANSIBLE_LOCAL_TEMP=/tmp/ansible-local
  export ANSIBLE_REMOTE_TEMP=/tmp/ansible-remote ANSIBLE_NOCOLOR=1
  "$VENV/bin/ansible-playbook" --version | head -1 | sed 's/^/INFO ansible /'
  for i in $(seq 1 "$ANSIBLE_RUNS"); do
    # Interleaved: a plan, the playbook, a plan.
    t0=$EPOCHREALTIME
    "$HF" plan "$DIR/host.yaml" --detailed-exitcode > /tmp/hf.out 2>&1 || { cat /tmp/hf.out; fail "plan found changes"; }
    t1=$EPOCHREALTIME
    "$VENV/bin/ansible-playbook" -i localhost, -c local --check "$DIR/playbook.yml" > /tmp/play.out 2>&1 || { tail -30 /tmp/play.out; fail "ansible-playbook"; }
    t2=$EPOCHREALTIME
    "$HF" plan "$DIR/host.yaml" --detailed-exitcode > /dev/null 2>&1 || fail "plan found changes"
    t3=$EPOCHREALTIME
    echo "RESULT hostform-plan $(ms "$t0" "$t1")"
    echo "RESULT ansible-check $(ms "$t1" "$t2")"
    echo "RESULT hostform-plan $(ms "$t2" "$t3")"
    echo "INFO ansible-recap $(grep -E '^localhost +:' /tmp/play.out | tr -s ' ')"
  done
  echo "INFO hostform-plan-says $(grep -E '^(No changes|Plan:)' /tmp/hf.out | head -1)"
fi
echo "DONE"
