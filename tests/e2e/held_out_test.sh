#!/usr/bin/env bash
# Held-out losses during pretraining (CPU): every eval_every steps the loss on data.eval_path is logged; it
# falls as the model learns text of the same kind, and data parallelism (2 ranks) and pipeline parallelism
# (2 stages) give the one-rank values.   usage: held_out_test.sh R1HPC_BINARY
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
python3 - <<'PY'
import random
rng = random.Random(3)
words = "the cat sat on a mat while one dog ran to the red door and back".split()
def doc():
    return " ".join(rng.choice(words) for _ in range(rng.randint(8, 30))) + "."
open("train.txt", "w").write("\n\n".join(doc() for _ in range(400)))
open("held.txt", "w").write("\n\n".join(doc() for _ in range(40)))
PY
args=(--set data.source=files --set data.train_path=train.txt --set data.eval_path=held.txt --set run.max_steps=12
      --set train.eval_every=4 --set train.eval_sequences=10 --set train.log_every=4)
"$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set run.output_dir=one >one.log 2>&1 || { cat one.log; fail "one rank"; }
grep -q "eval loss" one.log || { cat one.log; fail "no held-out loss on the progress line"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set run.output_dir=dp >dp.log 2>&1 \
  || { cat dp.log; fail "data parallel"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/pretrain_tiny.deck" "${args[@]}" --set parallel.pipeline=2 \
  --set run.output_dir=pp >pp.log 2>&1 || { cat pp.log; fail "pipeline parallel"; }
python3 - <<'PY' || fail "held-out losses"
import json
def evals(run):
    return {r["step"]: r["eval_loss"] for r in map(json.loads, open(f"{run}/metrics.jsonl")) if "eval_loss" in r}
one, dp, pp = evals("one"), evals("dp"), evals("pp")
assert sorted(one) == [4, 8, 12], one
assert one[12] < 0.8 * one[4], f"the held-out loss did not fall: {one}"
for run in (dp, pp):
    assert sorted(run) == sorted(one), run
    for s in one:  # a mean of cross-entropies of order 1: relative agreement of float32 sums
        assert abs(run[s] - one[s]) <= 1e-4 * one[s], (s, run[s], one[s])
print("held-out loss", one, "; data and pipeline parallel agree")
PY
echo PASS
