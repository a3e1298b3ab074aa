#!/usr/bin/env bash
# A failing job is not requeued forever: with R1HPC_BIN=/bin/false (exit 1) and R1HPC_MAX_RESTARTS=2,
# r1hpc.sbatch requeues it twice and then gives up (Restarts=2, FAILED); a bad deck (r1hpc exits 2, a
# user error) is not requeued at all. Its restarts, with R1HPC_CHECKPOINT_DIR naming a directory without
# a checkpoint, start again as submitted rather than from 'latest'.      usage: cluster.sh run crash_bound_test.sh R1HPC_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.out; do echo "--- $f" >&2; cat "$f" >&2; done; exit 1; }
submit() { (cd "$work" && R1HPC_SITE=localhost R1HPC_ROOT=$root sbatch --parsable -n 2 --output="$work/%x-%j.out" "$@"); }

crash=$(R1HPC_BIN=/bin/false R1HPC_MAX_RESTARTS=2 R1HPC_CHECKPOINT_DIR=$work/no-checkpoints submit --job-name=crash "$root/jobscripts/r1hpc.sbatch" any.deck)
printf '[run]\nstage = pretrain\nno_such_key = 1\n' > "$work/bad.deck"
bad=$(R1HPC_BIN=$bin submit --job-name=bad "$root/jobscripts/r1hpc.sbatch" "$work/bad.deck")
echo "submitted crashing job $crash and bad-deck job $bad"
wait_job_end "$bad" 60 || fail "bad-deck job $bad did not end"
wait_job_end "$crash" 120 || fail "crashing job $crash did not end"

[[ $(job_field "$crash" Restarts) == 2 ]] || fail "crashing job: Restarts=$(job_field "$crash" Restarts), expected 2"
[[ $(job_field "$crash" JobState) == FAILED ]] || fail "crashing job: JobState=$(job_field "$crash" JobState)"
[[ $(grep -c "r1hpc exited 1: failure" "$work/crash-$crash.out") == 3 ]] || fail "expected 3 failed attempts"
grep -q "restart 2: decision: not requeued (restart 2 reached R1HPC_MAX_RESTARTS=2): giving up" "$work/crash-$crash.out" \
  || fail "no give-up decision"
[[ $(grep -c "no checkpoint in $work/no-checkpoints yet: starting again as submitted" "$work/crash-$crash.out") == 2 ]] \
  || fail "the restarts did not start again as submitted (R1HPC_CHECKPOINT_DIR has no latest)"
if grep -q "checkpoint.load=latest" "$work/crash-$crash.out"; then fail "a restart without a checkpoint asked for latest"; fi
[[ $(job_field "$bad" Restarts) == 0 ]] || fail "bad-deck job: Restarts=$(job_field "$bad" Restarts), expected 0"
[[ $(job_field "$bad" ExitCode) == 2:0 ]] || fail "bad-deck job: ExitCode=$(job_field "$bad" ExitCode), expected 2:0"
grep -q "decision: not requeued (a restart would fail the same way)" "$work/bad-$bad.out" || fail "no decision for the bad deck"
cat "$work/crash-$crash.out"
echo "PASS: the crashing job ran 3 times (2 restarts) and failed; the bad deck failed once with exit 2"
