#!/usr/bin/env bash
# R1-Zero in miniature (CPU, 2 ranks): pretrain the tiny MoE on the synthetic reasoning corpus, then run
# GRPO from that base with the format and accuracy rewards. The mean training reward of the last 10 steps
# must clearly exceed that of the first 10, and on a fixed held-out set (the evaluate stage, R1's
# temperature 0.6 / top-p 0.95) the rewarded format rate of the RL checkpoint must clearly exceed the
# base's: the policy learns the <think>/<answer> format it is rewarded for.
#   usage: r1zero_learns_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
run=(mpiexec -n 2 --oversubscribe "$bin")
model=(--set model.vocab_size=264 --set model.max_seq_len=256)
"${run[@]}" "$here/pretrain_tiny.deck" "${model[@]}" --set run.output_dir=base --set data.seq_len=256 \
  --set run.max_steps=600 --set optim.lr=3e-3 >base.log 2>&1 || { tail -20 base.log; fail "pretraining the base"; }
"${run[@]}" "$here/grpo_tiny.deck" "${model[@]}" --set checkpoint.load=base/checkpoints --set run.output_dir=rl \
  --set run.max_steps=40 --set grpo.group_size=8 --set grpo.prompts_per_step=8 --set sampling.max_new_tokens=96 \
  --set optim.lr=3e-5 --set optim.min_lr=3e-5 --set grpo.inner_epochs=1 --set checkpoint.every_steps=0 >rl.log 2>&1 \
  || { tail -20 rl.log; fail "grpo"; }
"$py" - <<'PY'
import json, sys
recs = [json.loads(l) for l in open("rl/metrics.jsonl")]
mean = lambda xs: sum(xs) / len(xs)
first, last = recs[:10], recs[-10:]
for key in ["reward_mean", "format_rate", "accuracy", "response_length_mean", "kl_mean"]:
    print(f"{key:22s} first 10 steps {mean([r[key] for r in first]):.4f}   last 10 steps {mean([r[key] for r in last]):.4f}")
gain = mean([r["reward_mean"] for r in last]) - mean([r["reward_mean"] for r in first])
print(f"reward gain {gain:+.4f} (needs > 0.08)")
sys.exit(0 if gain > 0.08 else 1)
PY
[[ $? == 0 ]] || fail "the reward did not rise"
for who in base rl; do
  "${run[@]}" "$here/evaluate_tiny.deck" "${model[@]}" --set checkpoint.load=$who/checkpoints --set run.output_dir=eval_$who \
    --set evaluate.synthetic_prompts=32 --set sampling.samples_per_prompt=4 --set data.chat_template=r1hpc-chat \
    --set sampling.max_new_tokens=96 >eval_$who.log 2>&1 || { tail -20 eval_$who.log; fail "evaluating $who"; }
done
"$py" - <<'PY'
import json, sys
base, rl = (json.load(open(f"eval_{w}/eval.json"))["overall"] for w in ("base", "rl"))
for key in ["format_rate", "pass@1", "answer_rate", "response_length_mean"]:
    print(f"held-out {key:22s} base {base[key]:.4f}   after GRPO {rl[key]:.4f}")
sys.exit(0 if rl["format_rate"] > base["format_rate"] + 0.08 else 1)
PY
[[ $? == 0 ]] || fail "the held-out format rate did not rise"
echo PASS
