#!/usr/bin/env bash
# The generating stages with a grouped-query-attention student end to end (CPU): a tiny-qwen2 base from
# pretrain is evaluated (the per-task table printed, eval.json written, the same report under TP2 on 2 ranks),
# rejection-sampled (every sample classified into the counts the stage reports) and trained by 2 GRPO steps
# (metrics and a committed checkpoint at step 2), all generating over the GQA KV cache: the rollouts' log-probs
# (prefill and decode over the cache) equal the learner's full forward to f32 round-off.
#   usage: gqa_generate_test.sh R1HPC_BINARY
set -uo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set model.preset=tiny-qwen2 --set run.max_steps=60 --set run.output_dir=base \
  >base.log 2>&1 || { cat base.log; fail "pretraining the tiny-qwen2 base"; }
q=(--set model.preset=tiny-qwen2 --set checkpoint.load=base/checkpoints --set sampling.max_new_tokens=48)
"$bin" "$here/evaluate_tiny.deck" "${q[@]}" --set run.output_dir=eval1 >eval1.log 2>&1 \
  || { cat eval1.log; fail "evaluate with a qwen2 student"; }
grep -q "evaluate: qwen2 dense decoder" eval1.log || { cat eval1.log; fail "evaluate did not load a qwen2 model"; }
grep -A5 "task  " eval1.log | grep -q "overall  *12 " || { cat eval1.log; fail "evaluate printed no table of 12 prompts"; }
grep -A5 "task  " eval1.log
mpiexec -n 2 --oversubscribe "$bin" "$here/evaluate_tiny.deck" "${q[@]}" --set parallel.tensor=2 \
  --set run.output_dir=eval_tp >eval_tp.log 2>&1 || { cat eval_tp.log; fail "evaluate with tensor = 2"; }
cmp eval1/eval.json eval_tp/eval.json || fail "eval.json differs between one rank and tensor = 2"
"$bin" "$here/rejection_tiny.deck" "${q[@]}" --set run.output_dir=rs >rs.log 2>&1 \
  || { cat rs.log; fail "rejection sampling with a qwen2 student"; }
[ -f rs/sft.jsonl ] || fail "rejection sampling wrote no rs/sft.jsonl"
grep "rejection_sampling: 256 samples:" rs.log || { cat rs.log; fail "rejection sampling did not classify 32 x 8 samples"; }
"$bin" "$here/grpo_tiny.deck" "${q[@]}" --set run.max_steps=2 --set run.output_dir=grpo >grpo.log 2>&1 \
  || { cat grpo.log; fail "grpo with a qwen2 student"; }
grep -q "grpo: qwen2 dense decoder" grpo.log || { cat grpo.log; fail "grpo did not train a qwen2 model"; }
grep -q "checkpoint: grpo/checkpoints/step-00000002 committed" grpo.log || fail "grpo committed no checkpoint at step 2"
python3 - <<'PY' || fail "the evaluation report or the GRPO metrics"
import json
report = json.load(open("eval1/eval.json"))
assert report["overall"] and len(report["tasks"]) == 4, report
rows = [json.loads(l) for l in open("grpo/metrics.jsonl")]
assert [r["step"] for r in rows] == [1, 2], rows
for r in rows:
    print(f"grpo step {r['step']}: mean response length {r['response_length_mean']:.1f}, "
          f"rollout vs learner log-prob gap {r['mismatch_abs_max']:.2e}")
    assert r["response_length_mean"] > 1, "the rollouts ended at once"
    assert r["mismatch_abs_max"] < 1e-4, "the rollouts' log-probs are not the learner's: the KV cache drifts"
PY
echo PASS
