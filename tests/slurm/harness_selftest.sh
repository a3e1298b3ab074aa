#!/usr/bin/env bash
# Self-test of the slurm harness and r1hpc.sbatch with a stand-in payload (standin_r1hpc.sh, not r1hpc):
# the cluster runs a 2-rank job; `scancel --signal=USR1 --batch` reaches the batch shell, which forwards
# it to both ranks; their exit 75 makes the script requeue the job, and the restart passes
# --set checkpoint.load=latest. A job cancelled with scancel (SIGTERM) stays cancelled.
#   usage: cluster.sh run harness_selftest.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; [[ -f ${log:-} ]] && { echo "--- $log" >&2; cat "$log" >&2; }; exit 1; }

export STANDIN_DIR=$work
job=$(cd "$work" && R1HPC_BIN=$here/standin_r1hpc.sh R1HPC_SITE=localhost R1HPC_ROOT=$root \
      sbatch --parsable -n 2 --output="$work/job-%j.out" "$root/jobscripts/r1hpc.sbatch" standin.deck --set run.seed=1)
log=$work/job-$job.out
echo "submitted stand-in job $job"
wait_until 60 "both ranks to start" test -f "$work/0.1.started" -a -f "$work/0.0.started" || fail "the ranks did not start"
scancel --signal=USR1 --batch "$job"
wait_job_end "$job" 90 || fail "job $job did not end"

for r in 0 1; do
  [[ -f $work/0.$r.usr1 ]] || fail "rank $r did not get the forwarded SIGUSR1"
  [[ -f $work/1.$r.resumed ]] || fail "rank $r did not resume after the requeue"
  grep -q -- "run.seed=1 --set checkpoint.load=latest" "$work/1.$r.args" || fail "restart args: $(cat "$work/1.$r.args")"
done
[[ $(job_field "$job" Restarts) == 1 ]] || fail "Restarts=$(job_field "$job" Restarts), expected 1"
[[ $(job_field "$job" JobState) == COMPLETED ]] || fail "JobState=$(job_field "$job" JobState)"
grep -q "restart 0: received SIGUSR1: forwarding" "$log" || fail "no forwarding line in the log"
grep -q "restart 0: decision: requeue" "$log" || fail "no requeue decision in the log"
grep -q "restart 1: r1hpc exited 0: done" "$log" || fail "the restart did not finish"
echo "--- job log"; cat "$log"

# scancel (SIGTERM) ends a job for good: the script does not requeue it.
mkdir "$work/cancel"
export STANDIN_DIR=$work/cancel
cancelled=$(cd "$work" && R1HPC_BIN=$here/standin_r1hpc.sh R1HPC_SITE=localhost R1HPC_ROOT=$root \
      sbatch --parsable -n 2 --output="$work/job-%j.out" "$root/jobscripts/r1hpc.sbatch" standin.deck)
log=$work/job-$cancelled.out
wait_until 60 "the ranks of job $cancelled to start" test -f "$work/cancel/0.0.started" || fail "the ranks did not start"
scancel "$cancelled"
wait_job_end "$cancelled" 60 || fail "job $cancelled did not end"
sleep 3   # a wrong requeue would show now
[[ $(job_field "$cancelled" JobState) == CANCELLED && $(job_field "$cancelled" Restarts) == 0 ]] \
  || fail "cancelled job: JobState=$(job_field "$cancelled" JobState) Restarts=$(job_field "$cancelled" Restarts)"
grep -q "decision: not requeued (stopped by SIGTERM" "$log" || fail "no decision for the cancelled job"
echo "PASS: signal forwarded to both ranks, exit 75 requeued the job once, the restart resumed from latest; scancel is final"
