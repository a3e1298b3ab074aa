#!/usr/bin/env bash
# Stop, requeue and resume under Slurm: r1hpc.sbatch runs the tiny pretrain deck on 2 ranks; after a
# checkpoint `scancel --signal=USR1 --batch` stops it. Expected: the ranks checkpoint the step they
# stopped at and exit 75, the script requeues the job (Restarts=1), the restart resumes from that
# checkpoint (checkpoint.load=latest; its log says so), and the losses, deduplicated by step, equal an
# uninterrupted mpirun of the same deck step for step.
#   usage: cluster.sh run requeue_resume_test.sh R1HPC_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1   # the reference mpirun
log=""
fail() { echo "FAIL: $*" >&2; [[ -f $log ]] && { echo "--- $log" >&2; cat "$log" >&2; }; exit 1; }

deck=$root/tests/e2e/pretrain_tiny.deck
steps=800
sets=(--set "run.max_steps=$steps" --set checkpoint.every_steps=100 --set checkpoint.keep_last=0 --set train.log_every=100)
max_step() { "$PYTHON" -c 'import json,sys; print(max([json.loads(l)["step"] for l in open(sys.argv[1]) if l.strip()] or [0]))' "$1" 2>/dev/null || echo 0; }
past_first_checkpoint() { (($(max_step "$work/slurm/metrics.jsonl") >= 150)); }

job=$(R1HPC_BIN=$bin R1HPC_SITE=localhost R1HPC_ROOT=$root sbatch --parsable -n 2 --output="$work/job-%j.out" \
      "$root/jobscripts/r1hpc.sbatch" "$deck" "${sets[@]}" --set run.output_dir="$work/slurm")
log=$work/job-$job.out
echo "submitted job $job"
wait_until 180 "step 150 in metrics.jsonl" past_first_checkpoint || fail "the run did not reach step 150"
signalled_at=$(max_step "$work/slurm/metrics.jsonl")
scancel --signal=USR1 --batch "$job"
echo "sent SIGUSR1 to the batch shell of job $job at step $signalled_at"
wait_job_end "$job" 240 || fail "job $job did not end"

[[ $(job_field "$job" Restarts) == 1 ]] || fail "Restarts=$(job_field "$job" Restarts), expected 1"
[[ $(job_field "$job" JobState) == COMPLETED ]] || fail "JobState=$(job_field "$job" JobState), expected COMPLETED"
grep -q "restart 0: received SIGUSR1: forwarding" "$log" || fail "the batch shell did not forward SIGUSR1"
grep -q "restart 0: r1hpc exited 75" "$log" || fail "the first run did not exit 75"
grep -q "restart 0: decision: requeue" "$log" || fail "no requeue decision"
grep -q "restart 1: run: .* --set checkpoint.load=latest" "$log" || fail "the restart did not pass checkpoint.load=latest"
grep -q "restart 1: r1hpc exited 0: done" "$log" || fail "the restart did not finish"

# The resumed run's log names the checkpoint it resumed from ("checkpoint: loaded ... from .../step-N", or a
# "resum... step N" line); the first run's log says it wrote that checkpoint.
first_log=$(sed -n '1,/restart 1: run:/p' "$log")
restart_log=$(sed -n '/restart 1: run:/,$p' "$log")
stop_step=$(grep -iE 'resum|checkpoint: loaded' <<< "$restart_log" | grep -o 'step[- ]0*[0-9]\+' | head -1 | grep -o '[1-9][0-9]*$' || true)
[[ -n $stop_step ]] || fail "the restart's log does not say which step it resumed from (no 'checkpoint: loaded ... step-N' or 'resum... step N' line)"
echo "resumed from step $stop_step (signal sent at step $signalled_at)"
((stop_step >= signalled_at && stop_step < steps)) || fail "resumed from step $stop_step, expected $signalled_at..$((steps - 1))"
ckpt=$(printf '%s/slurm/checkpoints/step-%08d' "$work" "$stop_step")
[[ -f $ckpt/index.h5 ]] || fail "no checkpoint at the stop step: $ckpt/index.h5"
grep -qE "checkpoint: .*/$(basename "$ckpt") (written|committed)" <<< "$first_log" \
  || fail "the first run's log does not say it wrote $(basename "$ckpt")"
"$PYTHON" - "$ckpt/index.h5" "$stop_step" <<'PY' || fail "checkpoint metadata"
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    step = int(f["meta"].attrs["step"].reshape(-1)[0])
assert step == int(sys.argv[2]), f"{sys.argv[1]}: meta step {step}, expected {sys.argv[2]}"
PY

# The uninterrupted reference, same deck, same 2 ranks.
OMP_NUM_THREADS=1 mpiexec -n 2 --oversubscribe "$bin" "$deck" "${sets[@]}" --set run.output_dir="$work/ref" >/dev/null \
  || fail "the uninterrupted reference run failed"
"$PYTHON" - "$work/slurm/metrics.jsonl" "$work/ref/metrics.jsonl" "$steps" "$stop_step" <<'PY' || fail "losses differ"
import json, sys
resumed, ref, steps, stop = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def losses(path):
    by_step = {}
    for line in open(path):
        if line.strip():
            r = json.loads(line)
            by_step[r["step"]] = r["loss"]  # a step written twice: the later (resumed) record wins
    return by_step
a, b = losses(resumed), losses(ref)
assert sorted(a) == list(range(1, steps + 1)), f"resumed run: steps {min(a)}..{max(a)}, {len(a)} distinct, expected 1..{steps}"
assert sorted(b) == list(range(1, steps + 1)), f"reference: {len(b)} steps"
worst = max(abs(a[s] - b[s]) / abs(b[s]) for s in b)
first_bad = next((s for s in sorted(b) if abs(a[s] - b[s]) > 1e-6 * abs(b[s])), None)
print(f"resumed vs uninterrupted: largest relative loss difference {worst:.2e} over {steps} steps (stop at {stop})")
assert first_bad is None, f"step {first_bad}: resumed loss {a[first_bad]!r} != uninterrupted {b[first_bad]!r}"
PY
echo "PASS: job $job stopped at step $stop_step, exited 75, was requeued once and resumed; losses match the uninterrupted run"
