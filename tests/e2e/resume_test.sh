#!/usr/bin/env bash
# Checkpoint and resume through the pretrain stage (CPU): a run stopped by its time limit checkpoints and
# exits 75; resuming it with `load = latest` reproduces the uninterrupted run's losses bit for bit, on one
# rank and on two; a new run started from another run's checkpoint records it as its parent (lineage).
#   usage: resume_test.sh R1HPC_BINARY PYTHON_WITH_H5PY
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../tools" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
common=(--set run.max_steps=40 --set optim.decay_steps=100 --set checkpoint.every_steps=10)

for ranks in 1 2; do
  launch=("$bin")
  ((ranks > 1)) && launch=(mpiexec -n "$ranks" --oversubscribe "$bin")
  "${launch[@]}" "$here/pretrain_tiny.deck" "${common[@]}" --set run.output_dir="whole$ranks" >/dev/null || fail "uninterrupted run ($ranks ranks)"
  "${launch[@]}" "$here/pretrain_tiny.deck" "${common[@]}" --set run.output_dir="split$ranks" \
    --set run.time_limit_minutes=0.001 --set checkpoint.load=latest >"stop$ranks.log" 2>&1
  rc=$?
  [[ $rc == 75 ]] || { cat "stop$ranks.log"; fail "a run at its time limit exited $rc, not 75"; }
  stopped=$(cat "split$ranks/checkpoints/latest")
  echo "$ranks rank(s): stopped and checkpointed at $stopped"
  "${launch[@]}" "$here/pretrain_tiny.deck" "${common[@]}" --set run.output_dir="split$ranks" --set checkpoint.load=latest \
    >"resume$ranks.log" 2>&1 || { cat "resume$ranks.log"; fail "resume ($ranks ranks)"; }
  grep -q "resuming this run from split$ranks/checkpoints/$stopped" "resume$ranks.log" || fail "the restart did not resume from $stopped"
  "$py" - "whole$ranks" "split$ranks" <<'PY' || fail "resumed losses differ ($ranks ranks)"
import json, sys
def losses(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = r["loss"]  # a step run twice (after a crash) keeps its last record
    return out
a, b = losses(sys.argv[1]), losses(sys.argv[2])
assert sorted(a) == sorted(b) == list(range(1, 41)), (sorted(a), sorted(b))
diff = [s for s in a if a[s] != b[s]]
print(f"steps 1-40: {len(a) - len(diff)} identical, {len(diff)} different")
sys.exit(1 if diff else 0)
PY
done

# A new run from another run's checkpoint: weights only, its own step count, the parent recorded.
"$bin" "$here/pretrain_tiny.deck" --set run.max_steps=5 --set run.output_dir=child \
  --set checkpoint.load=whole1/checkpoints >child.log 2>&1 || { cat child.log; fail "child run"; }
grep -q "starting from whole1/checkpoints/step-00000040 (step 40, weights only)" child.log || fail "child did not load the parent's weights"
"$py" "$tools/ckpt.py" lineage "child/checkpoints/$(cat child/checkpoints/latest)" | tee lineage.txt
grep -q "whole1/checkpoints/step-00000040" lineage.txt || fail "the child's lineage does not name its parent"
echo PASS
