#!/usr/bin/env bash
# The sft stage end to end (CPU): a tiny base from pretrain, cold-start SFT of it on synthetic data for 3
# epochs on 1 and 2 ranks (the response-token loss falls clearly; the layouts agree), a stop at the time
# limit (exit 75) resumed to bit-identical losses, the base recorded as the checkpoint's parent; then
# distillation: a dense student of its own size fine-tuned on a curated JSONL set learns.
#   usage: sft_test.sh R1HPC_BINARY PYTHON_WITH_H5PY
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../tools" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=base --set run.max_steps=60 \
  >base.log 2>&1 || { cat base.log; fail "pretraining the base"; }
"$bin" "$here/sft_tiny.deck" --set run.output_dir=one >one.log 2>&1 || { cat one.log; fail "sft on one rank"; }
grep "examples (" one.log
mpiexec -n 2 --oversubscribe "$bin" "$here/sft_tiny.deck" --set run.output_dir=two >two.log 2>&1 \
  || { cat two.log; fail "sft on two ranks"; }
"$bin" "$here/sft_tiny.deck" --set run.output_dir=split --set run.time_limit_minutes=0.0001 >stop.log 2>&1
rc=$?
[[ $rc == 75 ]] || { cat stop.log; fail "an sft run at its time limit exited $rc, not 75"; }
"$bin" "$here/sft_tiny.deck" --set run.output_dir=split --set checkpoint.load=latest >resume.log 2>&1 \
  || { cat resume.log; fail "resuming sft"; }
grep -q "resuming this run from split/checkpoints/step-00000001" resume.log || { cat resume.log; fail "the restart did not resume"; }
"$py" - <<'PY' || fail "sft metrics"
import json
def recs(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = r  # a step run twice (after a stop) keeps its last record
    return out
one, two, split = recs("one"), recs("two"), recs("split")
steps = sorted(one)
assert steps == list(range(1, len(steps) + 1)) and len(steps) > 30, steps
for r in one.values():
    for k in ["loss", "tokens", "loss_tokens", "packing_efficiency", "epoch", "lr", "grad_norm"]:
        assert k in r, (k, r)
    assert 0 < r["packing_efficiency"] <= 1 and 0 < r["loss_tokens"] < r["tokens"], r
assert abs(one[steps[-1]]["epoch"] - 3.0) < 1e-12, one[steps[-1]]["epoch"]
mean = lambda xs: sum(xs) / len(xs)
first, last = mean([one[s]["loss"] for s in steps[:5]]), mean([one[s]["loss"] for s in steps[-10:]])
print(f"response-token loss: first 5 steps {first:.3f}, last 10 steps {last:.3f}; "
      f"packing efficiency {mean([r['packing_efficiency'] for r in one.values()]):.3f}")
assert last < 0.85 * first, "the SFT loss did not fall clearly"
worst = max(abs(one[s]["loss"] - two[s]["loss"]) / one[s]["loss"] for s in steps)
print(f"data parallel 2 vs 1 rank: largest relative loss difference {worst:.2e} over {len(steps)} steps")
assert worst < 1e-4, "data-parallel losses differ from one rank"
assert all(one[s]["tokens"] == two[s]["tokens"] for s in steps), "the layouts trained on different tokens"
assert sorted(split) == steps, sorted(split)
diff = [s for s in steps if one[s]["loss"] != split[s]["loss"] or one[s]["tokens"] != split[s]["tokens"]]
print(f"resumed run: {len(steps) - len(diff)} steps identical to the uninterrupted run, {len(diff)} different")
assert not diff, diff
PY
"$py" "$tools/ckpt.py" lineage "one/checkpoints/$(cat one/checkpoints/latest)" | tee lineage.txt
grep -q "base/checkpoints/step-00000060" lineage.txt || fail "the sft checkpoint does not name the base as its parent"

# Distillation: a dense student on a curated set (what rejection_sampling writes: prompt/response JSONL).
curated_additions curated.jsonl
"$bin" "$here/distill_tiny.deck" --set data.train_path=curated.jsonl >distill.log 2>&1 || { cat distill.log; fail "distillation"; }
grep -q "sft: distillation into a dense decoder" distill.log || { cat distill.log; fail "the student is not a dense decoder"; }
"$py" - <<'PY' || fail "distillation metrics"
import json
recs = [json.loads(l) for l in open("distill_tiny/metrics.jsonl")]
assert len(recs) == 60 and all("expert_load" not in r for r in recs), len(recs)
first, last = sum(r["loss"] for r in recs[:5]) / 5, sum(r["loss"] for r in recs[-10:]) / 10
print(f"dense student: response-token loss first 5 steps {first:.3f}, last 10 steps {last:.3f}")
assert last < 0.5 * first, "the student did not learn"
PY
echo PASS
