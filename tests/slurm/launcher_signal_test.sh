#!/usr/bin/env bash
# Signals that reach the launcher inside an r1hpc.sbatch job, not the batch shell (tiny pretrain, 2 ranks):
#   sigterm LAUNCHER   SIGTERM to the launcher itself (mpirun or srun) after a checkpoint: every rank
#                      checkpoints and exits 75; the job script reports 75 whatever the launcher returns
#                      (the ranks' stop marker), requeues, and the restart resumes and finishes
#   batchterm LAUNCHER SIGTERM to the batch shell (scancel --signal=TERM --batch): forwarded as SIGUSR1, the
#                      ranks checkpoint, the job ends 75 and is not requeued (Slurm ended it on purpose)
#   kill9 LAUNCHER     SIGKILL to rank 1 mid-run (a lost node): the job ends within the watchdog limit
#                      with a failure code, is requeued as a failure, and the restart resumes from the
#                      last checkpoint, which loads
#   usage: cluster.sh run launcher_signal_test.sh sigterm|batchterm|kill9 mpirun|srun R1HPC_BINARY
set -euo pipefail
mode=$1 launcher=$2 bin=$3
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
log=""
fail() { echo "FAIL: $*" >&2; [[ -f $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }; exit 1; }
readonly LIMIT=5 BOUND=40   # [parallel] collective_timeout_s; the longest a killed rank's job may take to end

deck=$root/tests/e2e/pretrain_tiny.deck
steps=120
sets=(--set "run.max_steps=$steps" --set checkpoint.every_steps=20 --set checkpoint.keep_last=0 --set train.log_every=10
      --set parallel.collective_timeout_s=$LIMIT --set run.output_dir="$work/run")
max_step() { "$PYTHON" -c 'import json,sys; print(max([json.loads(l)["step"] for l in open(sys.argv[1]) if l.strip()] or [0]))' "$1" 2>/dev/null || echo 0; }
past_first_checkpoint() { [[ -f $work/run/checkpoints/latest ]] && (($(max_step "$work/run/metrics.jsonl") >= 30)); }

# The pids of job $job's processes whose environment has VAR=VALUE and whose command is $2 (any if empty).
job_pids() {
  local e p
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}
    p=${p%/environ}
    tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "SLURM_JOB_ID=$job" || continue
    tr '\0' '\n' 2>/dev/null <"$e" | grep -qx "$1" || continue
    [[ -z ${2:-} || $(basename "$(tr '\0' '\n' 2>/dev/null </proc/"$p"/cmdline | head -1)") == "$2" ]] || continue
    echo "$p"
  done
}

# mpirun given SIGTERM passes it on only after R1HPC_MPIRUN_KILL_GRACE: 4 s keeps the stop well inside the
# 120 steps and still leaves the tiny model's checkpoint ample time.
job=$(R1HPC_BIN=$bin R1HPC_MPIRUN_KILL_GRACE=4 R1HPC_SITE=localhost R1HPC_ROOT=$root R1HPC_LAUNCHER=$launcher R1HPC_MAX_RESTARTS=1 \
      sbatch --parsable -n 2 --output="$work/job-%j.out" "$root/jobscripts/r1hpc.sbatch" "$deck" "${sets[@]}")
log=$work/job-$job.out
echo "submitted job $job ($launcher)"
wait_until 300 "a checkpoint and step 30" past_first_checkpoint || fail "the run did not reach its first checkpoint"

case $mode in
  sigterm)
    pids=$(job_pids "R1HPC_STOP_MARKER=$work/.r1hpc-stopped.$job.0" "$launcher")
    [[ -n $pids ]] || fail "no $launcher process in job $job"
    kill -TERM $pids
    echo "sent SIGTERM to $launcher (pid $pids) at step $(max_step "$work/run/metrics.jsonl")"
    wait_job_end "$job" 300 || fail "job $job did not end"
    grep -qE "restart 0: (r1hpc exited 75|the launcher exited [0-9]+, but every rank checkpointed)" "$log" ||
      fail "the stop after SIGTERM to $launcher was not read as 75"
    grep -o "restart 0: \(the launcher exited\|r1hpc exited\).*" "$log"
    grep -q "restart 0: r1hpc exited 75: checkpointed after a stop signal" "$log" || fail "no exit 75"
    grep -q "restart 0: decision: requeue" "$log" || fail "no requeue decision" ;;
  batchterm)
    scancel --signal=TERM --batch "$job"
    echo "sent SIGTERM to the batch shell of job $job at step $(max_step "$work/run/metrics.jsonl")"
    wait_job_end "$job" 300 || fail "job $job did not end"
    grep -q "restart 0: received SIGTERM: forwarding to the ranks as SIGUSR1" "$log" || fail "SIGTERM not forwarded"
    grep -q "restart 0: r1hpc exited 75: checkpointed after a stop signal" "$log" || fail "no exit 75"
    grep -q "restart 0: decision: not requeued (stopped by SIGTERM" "$log" || fail "requeued after SIGTERM"
    [[ $(job_field "$job" ExitCode) == 75:0 ]] || fail "ExitCode=$(job_field "$job" ExitCode), expected 75:0"
    echo "PASS: SIGTERM to the batch shell with $launcher: the ranks checkpointed, the job ended 75, not requeued"
    exit 0 ;;
  kill9)
    rank_var=$([[ $launcher == srun ]] && echo SLURM_PROCID=1 || echo OMPI_COMM_WORLD_RANK=1)
    victim=$(job_pids "$rank_var" "$(basename "$bin")")
    [[ -n $victim ]] || fail "rank 1 of job $job not found"
    kill -KILL $victim
    killed_at=$SECONDS
    echo "killed rank 1 (pid $victim) at step $(max_step "$work/run/metrics.jsonl")"
    wait_until "$BOUND" "the first run to end" grep -q "restart 0: r1hpc exited" "$log" ||
      fail "the job did not end within ${BOUND}s of the kill"
    echo "the run ended $((SECONDS - killed_at))s after the kill: $(grep -o 'restart 0: r1hpc exited.*' "$log")"
    grep -q "restart 0: r1hpc exited 75" "$log" && fail "a killed rank's job claimed a checkpointed stop"
    grep -q "restart 0: decision: requeue (failure" "$log" || fail "the failure was not requeued"
    wait_job_end "$job" 300 || fail "job $job did not end" ;;
  *) echo "usage: launcher_signal_test.sh sigterm|batchterm|kill9 mpirun|srun R1HPC_BINARY" >&2; exit 2 ;;
esac

[[ $(job_field "$job" Restarts) == 1 ]] || fail "Restarts=$(job_field "$job" Restarts), expected 1"
[[ $(job_field "$job" JobState) == COMPLETED ]] || fail "JobState=$(job_field "$job" JobState), expected COMPLETED"
restart_log=$(sed -n '/restart 1: run:/,$p' "$log")
grep -q "resuming this run from .*/checkpoints/step-" <<< "$restart_log" || fail "the restart did not resume from a checkpoint"
grep -q "restart 1: r1hpc exited 0: done" "$log" || fail "the restart did not finish"
[[ ! -e $work/.r1hpc-stopped.$job.0 && ! -e $work/.r1hpc-stopped.$job.1 ]] || fail "a stop marker was left behind"
echo "PASS: $mode via $launcher; the restart: $(grep -o 'resuming this run from .*' <<< "$restart_log" | head -1)"
