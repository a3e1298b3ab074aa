#!/usr/bin/env bash
# R1-Zero in miniature (CPU, 2 ranks): pretrain the tiny MoE on the synthetic reasoning corpus, then run
# GRPO from that base with the format and accuracy rewards; the mean reward of the last 10 steps must
# clearly exceed that of the first 10 (the policy learns the <think>/<answer> format it is rewarded for).
#   usage: r1zero_learns_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export OMP_NUM_THREADS=1
run=(mpiexec -n 2 --oversubscribe "$bin")
fail() { echo "FAIL: $*"; exit 1; }
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
echo PASS
