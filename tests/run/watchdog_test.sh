#!/usr/bin/env bash
# A frozen or dead rank ends the whole job within the watchdog limit, never hangs it, and leaves the last
# committed checkpoint loadable. 2 ranks, [parallel] collective_timeout_s = 5 s; every mpiexec runs under a
# hard `timeout`, so a regression fails instead of hanging.
#   usage: watchdog_test.sh CASE MPIEXEC CKPT_FIXTURE STOP_FIXTURE R1HPC
#   save      a rank stops itself (SIGSTOP) once its shard is written, synchronous and background saves:
#             exit 69 naming the checkpoint agreement and the rank that did not arrive; `latest` loads
#   stop      a rank stops itself at a step boundary: exit 69 naming the stop agreement and the rank
#   training  r1hpc pretrain, rank 1 frozen by SIGSTOP mid-run: exit 69; the run resumes from `latest`
#   killed    r1hpc pretrain, rank 1 killed by SIGKILL mid-run: non-zero exit; the run resumes from `latest`
set -euo pipefail
case=$1 mpiexec=$2 ckpt_fixture=$3 stop_fixture=$4 bin=$5
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
readonly EXIT_WATCHDOG=69 LIMIT=5 BOUND=40   # src/run/signals.hpp; the deadline; the whole job's end
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export R1HPC_TEST_ID="watchdog-$$-$RANDOM"   # marks this test's ranks in /proc, for the checks below
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do echo "--- $f" >&2; tail -n 30 "$f" >&2; done; exit 1; }

# Runs mpiexec -n 2 under a hard limit; sets rc and secs.
run() {
  local log=$1 start=$SECONDS
  shift
  rc=0
  timeout -k 10 120 "$mpiexec" -n 2 --oversubscribe -x R1HPC_TEST_ID -x R1HPC_CKPT_FAULT_FREEZE_RANK \
    -x R1HPC_STOP_FAULT_FREEZE_RANK "$@" >"$log" 2>&1 || rc=$?
  secs=$((SECONDS - start))
}

# The pids of this test's rank R (its environment holds R1HPC_TEST_ID and OMPI_COMM_WORLD_RANK=R).
rank_pids() {
  local e
  for e in /proc/[0-9]*/environ; do
    if tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "R1HPC_TEST_ID=$R1HPC_TEST_ID" &&
      tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "OMPI_COMM_WORLD_RANK=$1"; then
      e=${e#/proc/}
      echo "${e%/environ}"
    fi
  done
}

# The job ended with the watchdog's code, in time, with the named error, and no rank is left behind.
expect_watchdog() {
  local log=$1 what=$2
  ((rc == EXIT_WATCHDOG)) || fail "$log: exit $rc, expected $EXIT_WATCHDOG (watchdog)"
  ((secs < BOUND)) || fail "$log: the job took ${secs}s to end, expected < ${BOUND}s with a ${LIMIT}s limit"
  grep -qE "watchdog: $what \(MPI_I[a-z]+ on world\[0,1\], rank 0 of 2\) did not finish within $LIMIT s" "$log" ||
    fail "$log: no watchdog error naming '$what' on world[0,1]"
  grep -q "group rank(s) 1 (world rank(s) 1) did not arrive" "$log" || fail "$log: the error does not name rank 1"
  [[ -z $(rank_pids 0)$(rank_pids 1) ]] || fail "$log: ranks left running after the job ended: $(rank_pids 0) $(rank_pids 1)"
  echo "$what: exit $rc after ${secs}s: $(grep -o 'watchdog: .*' "$log" | head -1)"
}

export R1HPC_CKPT_FAULT_FREEZE_RANK= R1HPC_STOP_FAULT_FREEZE_RANK=
case $case in
  save)
    ck=$work/ck
    run "$work/save1.log" "$ckpt_fixture" save "$ck" 1 --timeout "$LIMIT"
    ((rc == 0)) || fail "the healthy save exited $rc"
    for mode in "2" "3 --async"; do
      set -- $mode
      step=$1
      shift
      R1HPC_CKPT_FAULT_FREEZE_RANK=1 run "$work/frozen$step.log" "$ckpt_fixture" save "$ck" "$step" --timeout "$LIMIT" "$@"
      expect_watchdog "$work/frozen$step.log" "checkpoint write agreement"
      [[ $(cat "$ck/latest") == step-00000001 ]] || fail "latest moved to $(cat "$ck/latest")"
      [[ ! -e $ck/step-0000000$step ]] || fail "the frozen save of step $step was committed"
      run "$work/check$step.log" "$ckpt_fixture" check "$ck" 1
      ((rc == 0)) || fail "step-00000001 does not load after the frozen save of step $step"
    done
    echo "latest stays on step-00000001, which loads" ;;
  stop)
    run "$work/healthy.log" "$stop_fixture" 3 "$LIMIT"
    ((rc == 0)) && grep -q "step 3: stop agreed no" "$work/healthy.log" || fail "the healthy stop agreements exited $rc"
    R1HPC_STOP_FAULT_FREEZE_RANK=1 run "$work/frozen.log" "$stop_fixture" 4 "$LIMIT"
    expect_watchdog "$work/frozen.log" "stop agreement at a step boundary" ;;
  training|killed)
    deck=$root/tests/e2e/pretrain_tiny.deck
    out=$work/run
    sets=(--set checkpoint.every_steps=10 --set checkpoint.keep_last=2 --set train.log_every=10
          --set parallel.collective_timeout_s=$LIMIT --set run.output_dir="$out")
    export OMP_NUM_THREADS=1
    (run "$work/$case.log" "$bin" "$deck" --set run.max_steps=100000 "${sets[@]}"; exit "$rc") &
    runner=$!
    for _ in $(seq 240); do [[ -f $out/checkpoints/latest ]] && break; sleep 0.5; done
    [[ -f $out/checkpoints/latest ]] || fail "no checkpoint within 120 s"
    sleep 2
    victim=$(rank_pids 1)
    [[ -n $victim ]] || fail "rank 1 not found"
    if [[ $case == training ]]; then kill -STOP "$victim"; else kill -KILL "$victim"; fi
    start=$SECONDS
    rc=0
    wait "$runner" || rc=$?
    secs=$((SECONDS - start))
    ((rc != 0)) || fail "the run with rank 1 ${case/training/frozen} exited 0"
    ((secs < BOUND)) || fail "the job took ${secs}s to end after rank 1 was ${case/training/frozen}, expected < ${BOUND}s"
    [[ -z $(rank_pids 0)$(rank_pids 1) ]] || fail "ranks left running after the job ended"
    if [[ $case == training ]]; then
      ((rc == EXIT_WATCHDOG)) || fail "exit $rc, expected $EXIT_WATCHDOG (watchdog)"
      grep -qE "watchdog: .* did not finish within $LIMIT s" "$work/$case.log" || fail "no watchdog error"
    fi
    echo "rank 1 $([[ $case == training ]] && echo frozen by SIGSTOP || echo killed by SIGKILL): exit $rc after ${secs}s"
    grep -o 'watchdog: .*' "$work/$case.log" | head -1 || true
    latest=$(cat "$out/checkpoints/latest")
    step=$((10#${latest#step-}))
    run "$work/resume.log" "$bin" "$deck" --set run.max_steps=$((step + 2)) --set checkpoint.load=latest "${sets[@]}"
    ((rc == 0)) || fail "resuming from $latest exited $rc"
    grep -q "resuming this run from .*$latest (step $step" "$work/resume.log" || fail "the resume did not load $latest"
    echo "the run resumes from $latest" ;;
  *) echo "usage: watchdog_test.sh save|stop|training|killed MPIEXEC CKPT_FIXTURE STOP_FIXTURE R1HPC" >&2; exit 2 ;;
esac
