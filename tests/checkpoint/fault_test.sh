#!/usr/bin/env bash
# A rank killed by SIGKILL in the middle of a save (after its shard is on disk, before the commit; in a
# synchronous and in a background write) leaves `latest` on the previous complete checkpoint, which
# loads; the next successful save removes the leftover step-N.tmp.   usage: fault_test.sh MPIEXEC FIXTURE
set -euo pipefail
mpiexec=$1
fixture=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ck=$work/ck
run() { "$mpiexec" -n 2 --oversubscribe -x R1HPC_CKPT_FAULT_KILL_RANK "$fixture" "$@"; }

export R1HPC_CKPT_FAULT_KILL_RANK=
run save "$ck" 1
run check "$ck" 1

for kill in "1 2" "0 3 --async"; do
  set -- $kill
  rank=$1 step=$2
  shift 2
  if R1HPC_CKPT_FAULT_KILL_RANK=$rank run save "$ck" "$step" "$@" >"$work/killed.log" 2>&1; then
    echo "FAIL: the save of step $step with rank $rank killed succeeded"; cat "$work/killed.log"; exit 1
  fi
  [[ $(cat "$ck/latest") == step-00000001 ]] || { echo "FAIL: latest moved to $(cat "$ck/latest")"; exit 1; }
  [[ -d $ck/step-0000000$step.tmp && ! -e $ck/step-0000000$step ]] || { echo "FAIL: step $step left the wrong directories"; ls "$ck"; exit 1; }
  run check "$ck" 1
  echo "rank $rank killed during the save of step $step ${*:-(synchronous)}: latest stays on step-00000001, which loads"
done

run save "$ck" 4 >"$work/save4.log" 2>&1
grep -q "removing .*step-00000002.tmp, left by a save that did not complete" "$work/save4.log" || { cat "$work/save4.log"; exit 1; }
[[ ! -e $ck/step-00000002.tmp && ! -e $ck/step-00000003.tmp ]] || { echo "FAIL: leftovers not removed"; ls "$ck"; exit 1; }
run check "$ck" 4
echo "the next save removed the leftovers and loads"
