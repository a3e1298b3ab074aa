#!/usr/bin/env bash
# submit_pipeline.sh on the tiny pretrain -> R1-Zero (grpo) chain: the second phase waits for the first
# (afterok dependency; it starts after the first ended) and starts from its checkpoint (its checkpoints'
# meta `parent` names the first phase's checkpoint).
#   usage: cluster.sh run pipeline_test.sh R1HPC_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*" >&2; for f in "$work"/logs/*.out; do [[ -f $f ]] && { echo "--- $f" >&2; cat "$f" >&2; }; done; exit 1; }

cat > plan <<PLAN
# name   deck                                overrides
first   $root/tests/e2e/pretrain_tiny.deck   run.output_dir=$work/first  run.max_steps=100 checkpoint.every_steps=50
second  $root/tests/e2e/grpo_tiny.deck       run.output_dir=$work/second run.max_steps=3
PLAN
"$root/jobscripts/submit_pipeline.sh" --plan plan --site localhost --ranks 2 --bin "$bin" --log-dir "$work/logs" --dry-run \
  | grep -q -- "--dependency=afterok:\$JOB_1" || fail "the dry run does not chain the phases"
# The tiny R1 chain's plan: decks that name their parents keep them, and the student after a
# rejection_sampling phase (which writes no checkpoint) gets no checkpoint added.
dry=$(cd "$root" && jobscripts/submit_pipeline.sh --plan inputs/pipeline/tiny.plan --site localhost --ranks 2 --bin "$bin" \
        --log-dir "$work/logs" --dry-run 2>&1) || { echo "$dry" >&2; fail "the tiny chain's plan does not submit"; }
grep -q "^phase 12 08_distill: .*starts from scratch" <<< "$dry" || { echo "$dry" >&2; fail "08_distill was given a parent"; }
grep -q "^phase 5 03_reasoning_rl: .*starts from runs/tiny/02_cold_start/checkpoints (named by its deck" <<< "$dry" \
  || { echo "$dry" >&2; fail "03_reasoning_rl does not keep its deck's parent"; }
! grep "r1-08_distill " <<< "$dry" | grep -q "checkpoint.load" || { echo "$dry" >&2; fail "08_distill gets a checkpoint.load"; }
out=$("$root/jobscripts/submit_pipeline.sh" --plan plan --site localhost --ranks 2 --bin "$bin" --log-dir "$work/logs")
echo "$out"
first=$(sed -n 's/^phase 1 first: job \([0-9]\+\).*/\1/p' <<< "$out")
second=$(sed -n 's/^phase 2 second: job \([0-9]\+\).*/\1/p' <<< "$out")
[[ -n $first && -n $second ]] || fail "no job ids in the output"
dep=$(job_field "$second" Dependency)
[[ $dep == afterok:$first* ]] || fail "second phase: Dependency=$dep, expected afterok:$first"
wait_job_end "$second" 300 || fail "the second phase did not end"

for j in "$first" "$second"; do
  [[ $(job_field "$j" JobState) == COMPLETED ]] || fail "job $j: JobState=$(job_field "$j" JobState)"
done
first_end=$(job_field "$first" EndTime)
second_start=$(job_field "$second" StartTime)
echo "first ended $first_end, second started $second_start"
[[ ! $second_start < $first_end ]] || fail "the second phase started before the first ended"
grep -q -- "--set checkpoint.load=$work/first/checkpoints\$" "$work/logs/r1-second-$second.out" \
  || fail "the second phase was not started from the first's checkpoints"

"$PYTHON" - "$work/first/checkpoints" "$work/second/checkpoints" <<'PY' || fail "lineage"
import os, sys, h5py
first, second = sys.argv[1], sys.argv[2]
def latest(d):
    return os.path.join(d, open(os.path.join(d, "latest")).read().strip())
def meta(ckpt, key):
    with h5py.File(os.path.join(ckpt, "index.h5"), "r") as f:
        v = f["meta"].attrs[key]
    return v.decode() if isinstance(v, bytes) else str(v)
parent = meta(latest(second), "parent")
print(f"second phase checkpoint {latest(second)}: parent {parent}")
named = latest(first) if os.path.basename(parent) == "latest" else parent
assert os.path.realpath(named) == os.path.realpath(latest(first)), f"parent {parent} is not {latest(first)}"
PY
echo "PASS: phase 2 (job $second) ran after phase 1 (job $first) and started from its checkpoint"
