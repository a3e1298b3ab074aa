#!/usr/bin/env bash
# A GRPO step's memory per phase in metrics.jsonl (CPU: the host allocator's own accounting): every step
# records the peak bytes of its rollout, scoring and update, all positive. The same run with the rollout's
# sampling.max_batch at 16 instead of 4 gives the same completions (sampling is keyed by prompt and sample),
# so its scoring and update peaks are the same to the byte, and its rollout peak is higher by at least the
# 12 more KV-cache slots of every layer: 12 x (prompt + max_new_tokens - 1 >= 48 rows) x 2 layers x
# (kv_lora_rank 64 + qk_rope_head_dim 16) x 4 B (fp32), computed from the tiny model's config. Checkpoints
# are only written at the end, so no save's staging copies fall into a step's peaks. The learner's rollouts
# packed as segments under a token budget ([grpo] micro_tokens), on one rank and at PP2, TP2 and EP2 (over DP2),
# train as the padded micro-batches do (the same rollouts; the loss to float32 summation order, the
# micro-batches being others).
#   usage: grpo_memory_test.sh R1HPC_BINARY PYTHON
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=base --set run.max_steps=60 \
  >base.log 2>&1 || { cat base.log; fail "pretraining the base"; }
g=(--set checkpoint.load=base/checkpoints --set run.max_steps=2 --set checkpoint.every_steps=0 --set optim.weight_decay=0
   --set run.seed=5)
for b in 4 16; do
  "$bin" "$here/grpo_tiny.deck" "${g[@]}" --set sampling.max_batch=$b --set run.output_dir=batch$b >batch$b.log 2>&1 \
    || { cat batch$b.log; fail "grpo with sampling.max_batch = $b"; }
done
"$bin" "$here/grpo_tiny.deck" "${g[@]}" --set sampling.max_batch=4 --set grpo.micro_tokens=512 --set run.output_dir=packed \
  >packed.log 2>&1 || { cat packed.log; fail "grpo with micro_tokens = 512"; }
for layout in pipeline tensor expert; do
  mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${g[@]}" --set sampling.max_batch=4 --set grpo.micro_tokens=512 \
    --set parallel.$layout=2 --set run.output_dir=packed_$layout >packed_$layout.log 2>&1 \
    || { cat packed_$layout.log; fail "grpo with micro_tokens = 512 at $layout = 2"; }
done
"$py" - <<'PY' || fail "memory records"
import json
def recs(run):
    return {r["step"]: r for r in map(json.loads, open(f"{run}/metrics.jsonl"))}
small, large = recs("batch4"), recs("batch16")
packed = {name: recs(name) for name in ("packed", "packed_pipeline", "packed_tensor", "packed_expert")}
assert sorted(small) == sorted(large) == [1, 2], (sorted(small), sorted(large))
kv_lower = 12 * 48 * 2 * (64 + 16) * 4
for s in small:
    a, b = small[s], large[s]
    for r in (a, b):
        for k in ("peak_bytes_rollout", "peak_bytes_scoring", "peak_bytes_update"):
            assert r[k] > 0, (s, k, r[k])
    assert a["response_length_mean"] == b["response_length_mean"] and a["reward_mean"] == b["reward_mean"], (s, a, b)
    for k in ("peak_bytes_scoring", "peak_bytes_update"):
        assert a[k] == b[k], (s, k, a[k], b[k])
    grown = b["peak_bytes_rollout"] - a["peak_bytes_rollout"]
    assert grown >= kv_lower, (s, grown, kv_lower)
    print(f"step {s}: rollout {a['peak_bytes_rollout']:.0f} -> {b['peak_bytes_rollout']:.0f} B (+{grown:.0f}, KV cache >= {kv_lower}),"
          f" scoring {a['peak_bytes_scoring']:.0f}, update {a['peak_bytes_update']:.0f}")
for s in small:
    for run in packed.values():
        assert run[s]["reward_mean"] == small[s]["reward_mean"], (s, run[s]["reward_mean"], small[s]["reward_mean"])
        # The loss nearly cancels (a group's advantages sum to zero): its bound is from the scale of its terms,
        # as grpo_test.sh's; grad_norm is a norm: relative.
        scale = (1 - small[s]["uniform_groups"] / 4) + 0.01 * small[s]["kl_mean"]
        assert abs(run[s]["loss"] - small[s]["loss"]) <= 1e-5 * scale + 1e-12, (s, run[s]["loss"], small[s]["loss"])
        if small[s]["uniform_groups"] < 4:  # else the gradient is the KL term's float32 noise (grpo_test.sh says why)
            assert abs(run[s]["grad_norm"] - small[s]["grad_norm"]) <= 1e-4 * small[s]["grad_norm"], (s, run[s], small[s])
assert any(r["uniform_groups"] < 4 for r in small.values()), "no step had an advantage to train on"
print("packed rollouts (one rank, PP2, TP2, EP2 x DP2) train as the padded ones:",
      {name: [(run[s]["loss"], small[s]["loss"]) for s in small] for name, run in packed.items()})
PY
echo PASS
