#!/usr/bin/env bash
# The reward_model stage end to end (CPU): a tiny base from pretrain, a pairwise (Bradley-Terry) RM on it
# for a bounded number of steps on 1 rank (held-out pair accuracy well above chance) and on 2 ranks (the same
# losses), a stop at the time limit (exit 75) resumed to identical losses (rm.* saved and restored), and a
# pointwise (safe/unsafe) RM that runs and scores its held-out responses.
#   usage: reward_model_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=base --set run.max_steps=30 \
  >base.log 2>&1 || { cat base.log; fail "pretraining the base"; }
"$bin" "$here/reward_model_tiny.deck" --set run.output_dir=one >one.log 2>&1 || { cat one.log; fail "reward_model on one rank"; }
grep -q "lacks 2 tensor(s) of the new rm.\* parameters" one.log || { cat one.log; fail "the rm.* head was not added to the base"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/reward_model_tiny.deck" --set run.output_dir=two >two.log 2>&1 \
  || { cat two.log; fail "reward_model on two ranks"; }
"$bin" "$here/reward_model_tiny.deck" --set run.output_dir=split --set run.time_limit_minutes=0.0001 >stop.log 2>&1
rc=$?
[[ $rc == 75 ]] || { cat stop.log; fail "a reward_model run at its time limit exited $rc, not 75"; }
"$bin" "$here/reward_model_tiny.deck" --set run.output_dir=split --set checkpoint.load=latest >resume.log 2>&1 \
  || { cat resume.log; fail "resuming reward_model"; }
grep -q "resuming this run from split/checkpoints/step-00000001" resume.log || { cat resume.log; fail "the restart did not resume"; }
"$bin" "$here/reward_model_tiny.deck" --set run.output_dir=point --set reward_model.objective=pointwise \
  --set run.max_steps=10 >point.log 2>&1 || { cat point.log; fail "pointwise reward_model"; }
"$py" - <<'PY' || fail "reward_model metrics"
import json
def recs(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = r  # a step run twice (after a stop) keeps its last record
    return out
one, two, split, point = recs("one"), recs("two"), recs("split"), recs("point")
steps = sorted(one)
assert steps == list(range(1, 41)), steps
for r in one.values():
    for k in ["loss", "accuracy", "lr", "grad_norm", "pairs", "reward_margin"]:
        assert k in r, (k, r)
held = [(s, one[s]["heldout_accuracy"]) for s in steps if "heldout_accuracy" in one[s]]
assert [s for s, _ in held] == [1, 10, 20, 30, 40], held
mean = lambda xs: sum(xs) / len(xs)
first, last = mean([one[s]["loss"] for s in steps[:5]]), mean([one[s]["loss"] for s in steps[-10:]])
print(f"Bradley-Terry loss: first 5 steps {first:.3f}, last 10 steps {last:.3f}; held-out accuracy {held}")
assert last < 0.5 * first, "the pairwise loss did not fall clearly"
assert held[-1][1] > 0.8, f"held-out pair accuracy {held[-1][1]} is not well above chance (0.5)"
# The layouts sum gradients in a different order; with the large early gradients of Bradley-Terry that
# roundoff (1e-8 at step 2) grows over steps, so the first 10 steps are compared tightly, the end by outcome.
worst = max(abs(one[s]["loss"] - two[s]["loss"]) / one[s]["loss"] for s in steps[:10])
print(f"data parallel 2 vs 1 rank: largest relative loss difference {worst:.2e} over the first 10 steps")
assert one[1]["loss"] == two[1]["loss"] and worst < 1e-3, "data-parallel losses differ from one rank"
assert two[40]["heldout_accuracy"] > 0.8, two[40]
assert sorted(split) == steps, sorted(split)
diff = [s for s in steps if one[s]["loss"] != split[s]["loss"]]
print(f"resumed run: {len(steps) - len(diff)} steps identical to the uninterrupted run, {len(diff)} different")
assert not diff, diff
assert sorted(point) == list(range(1, 11)) and 0 <= point[10]["heldout_accuracy"] <= 1, point.get(10)
print(f"pointwise (safe/unsafe): loss {point[1]['loss']:.3f} -> {point[10]['loss']:.3f}, held-out accuracy {point[10]['heldout_accuracy']}")
PY
echo PASS
