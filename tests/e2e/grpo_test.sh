#!/usr/bin/env bash
# The grpo stage end to end (CPU): a tiny base from pretrain, GRPO from it on 1 and 2 ranks with every
# metric logged, the two layouts agreeing
# (each rank owns whole prompt groups; sampling is keyed by global prompt index), the base recorded as
# the checkpoint's parent, and a stop at the time limit resumed to the same result; with the routed
# experts over 2 EP ranks (generation and micro-batches in lockstep), at TP2 x DP2 with the experts
# over all 4 ranks, at TP2 x PP2 and at PP2 x DP2 with the experts over EP2, it agrees with plain data
# parallelism. Pipeline parallelism trains through the schedule: PP2 (1F1B) agrees with one rank, and so
# does PP2 with two chunks per stage (interleaved) on a 4-layer base, at a micro-batch size that leaves a
# micro-batch count the schedule must round up to a multiple of the stages. Every step logs the rollout/learner
# gap (log-probs, rerouted tokens per MoE layer); routing replay with TIS runs (no token rerouted, TIS
# weights within a few ulps of 1) at PP2 x EP2, equal to the same run at DP2, and so does GSPO with masked IS.
# Weight decay is off: with it, a step whose groups are all uniform (no advantage) still moves the weights,
# and the next inner epoch's KL gradient is then a difference of nearly equal float32 log-probs (a 1e-2
# relative error) that AdamW's first step scales up to lr-sized updates, different in every layout. Without
# it such steps leave the weights untouched and the layouts are compared where the gradient is signal. The
# 4-layer base uses seed 2, whose rollouts give an advantage at step 3.
#   usage: grpo_test.sh R1HPC_BINARY PYTHON_WITH_H5PY
set -uo pipefail
bin=$1
py=$2
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../tools" && pwd)
# shellcheck source=tests/e2e/common.sh
source "$here/common.sh"
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=base --set run.max_steps=60 \
  >base.log 2>&1 || { cat base.log; fail "pretraining the base"; }
g=(--set checkpoint.load=base/checkpoints --set optim.weight_decay=0)
"$bin" "$here/grpo_tiny.deck" "${g[@]}" --set run.output_dir=one >one.log 2>&1 \
  || { cat one.log; fail "grpo on one rank"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${g[@]}" --set run.output_dir=two >two.log 2>&1 || { cat two.log; fail "grpo on two ranks"; }
# Dynamic sampling drops uniform groups, so the EP ranks are left different numbers of micro-batches.
dyn=("${g[@]}" --set grpo.dynamic_sampling=true)
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set run.output_dir=dyn >dyn.log 2>&1 \
  || { cat dyn.log; fail "grpo with dynamic sampling on two ranks"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.expert=2 \
  --set run.output_dir=ep >ep.log 2>&1 || { cat ep.log; fail "grpo with expert = 2"; }
mpiexec -n 4 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.tensor=2 --set parallel.expert=4 \
  --set run.output_dir=tp >tp.log 2>&1 || { cat tp.log; fail "grpo with tensor = 2, expert = 4"; }
grep -q "routed experts over 2 EP ranks" ep.log || fail "grpo did not run expert-parallel"
# Routing replay with truncated IS at PP2 x EP2 (the update through the pipeline schedule). It does not train as
# the plain run does: from the second inner epoch on, the updated router may pick other experts for a token, and
# replay keeps the rollout's.
mpiexec -n 4 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.pipeline=2 --set parallel.expert=2 \
  --set grpo.routing_replay=true --set grpo.rollout_correction=tis --set run.output_dir=ep_rr >ep_rr.log 2>&1 \
  || { cat ep_rr.log; fail "grpo with routing replay and TIS at pipeline = 2, expert = 2"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set grpo.routing_replay=true \
  --set grpo.rollout_correction=tis --set run.output_dir=dyn_rr >dyn_rr.log 2>&1 \
  || { cat dyn_rr.log; fail "grpo with routing replay and TIS on two data-parallel ranks"; }
grep -q "routed experts over 2 EP ranks" ep_rr.log || fail "grpo with routing replay did not run expert-parallel"
grep -q "2 pipeline stages" ep_rr.log || fail "grpo with routing replay did not run pipeline-parallel"
# GSPO's sequence ratio with masked IS of whole completions.
"$bin" "$here/grpo_tiny.deck" "${g[@]}" --set grpo.ratio=sequence --set grpo.rollout_correction=mis --set run.max_steps=2 \
  --set run.output_dir=gspo >gspo.log 2>&1 || { cat gspo.log; fail "grpo with ratio = sequence and MIS"; }
# The 1F1B pipeline run samples with dynamic sampling, so that its steps have groups to train on whatever the
# base's rollouts are on this CPU (without it a base whose 16 samples per step all score alike trains nothing
# and the comparison checks nothing). The interleaved one cannot (its micro-batch count must stay a multiple
# of the stages): it is checked to train wherever its one-rank reference does.
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.pipeline=2 --set run.output_dir=pp >pp.log 2>&1 || { cat pp.log; fail "grpo with pipeline = 2"; }
grep -q "2 pipeline stages (1f1b, 2 chunks)" pp.log || fail "grpo did not run pipeline-parallel"
mpiexec -n 4 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.tensor=2 --set parallel.pipeline=2 \
  --set run.output_dir=tp_pp >tp_pp.log 2>&1 || { cat tp_pp.log; fail "grpo with tensor = 2, pipeline = 2"; }
mpiexec -n 4 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${dyn[@]}" --set parallel.pipeline=2 --set parallel.expert=2 \
  --set run.output_dir=pp_ep >pp_ep.log 2>&1 || { cat pp_ep.log; fail "grpo with pipeline = 2, expert = 2"; }
deep=(--set checkpoint.load=base4/checkpoints --set optim.weight_decay=0 --set model.n_layers=4 --set train.micro_batch=6
      --set run.seed=2)
"$bin" "$here/pretrain_tiny.deck" --set run.output_dir=base4 --set run.max_steps=60 --set model.n_layers=4 \
  >base4.log 2>&1 || { cat base4.log; fail "pretraining the 4-layer base"; }
"$bin" "$here/grpo_tiny.deck" "${deep[@]}" --set run.output_dir=one4 >one4.log 2>&1 \
  || { cat one4.log; fail "grpo of the 4-layer base on one rank"; }
mpiexec -n 2 --oversubscribe "$bin" "$here/grpo_tiny.deck" "${deep[@]}" \
  --set parallel.pipeline=2 --set parallel.virtual_stages=2 --set parallel.schedule=interleaved --set run.output_dir=pp_int \
  >pp_int.log 2>&1 || { cat pp_int.log; fail "grpo with pipeline = 2, virtual_stages = 2"; }
grep -q "2 pipeline stages (interleaved, 4 chunks)" pp_int.log || fail "grpo did not run the interleaved schedule"
"$bin" "$here/grpo_tiny.deck" "${g[@]}" --set run.output_dir=split \
  --set run.time_limit_minutes=0.0001 >stop.log 2>&1
[[ $? == 75 ]] || { cat stop.log; fail "a grpo run at its time limit did not exit 75"; }
"$bin" "$here/grpo_tiny.deck" --set optim.weight_decay=0 --set checkpoint.load=latest --set run.output_dir=split >resume.log 2>&1 \
  || { cat resume.log; fail "resuming grpo"; }
"$py" - <<'PY' || fail "metrics"
import json
def recs(run):
    out = {}
    for line in open(f"{run}/metrics.jsonl"):
        r = json.loads(line)
        out[r["step"]] = r
    return out
one, two, split, dyn, ep, tp = recs("one"), recs("two"), recs("split"), recs("dyn"), recs("ep"), recs("tp")
pp, tp_pp, pp_ep, one4, pp_int = recs("pp"), recs("tp_pp"), recs("pp_ep"), recs("one4"), recs("pp_int")
ep_rr, dyn_rr, gspo = recs("ep_rr"), recs("dyn_rr"), recs("gspo")
keys = ["reward_mean", "reward_std", "accuracy", "format_rate", "language_consistency", "response_length_mean",
        "truncated_fraction", "kl_mean", "clip_fraction", "ratio_mean", "loss", "grad_norm",
        "reflection_words_per_response", "rollout_share", "generated_tokens_per_s", "entropy",
        "mismatch_abs_mean", "mismatch_abs_max", "mismatch_kl_k3", "mismatch_over_0_1", "rerouted_share",
        "is_weight_mean", "is_capped_fraction", "is_masked_fraction"]
assert sorted(one) == [1, 2, 3, 4], sorted(one)
for s, r in one.items():
    missing = [k for k in keys if k not in r]
    assert not missing, f"step {s} lacks {missing}"
    assert r["response_length_mean"] > 0
# The rollout's log-probs against the learner's recompute, f32 on the CPU: a few ulps apart (steps whose groups
# dynamic sampling all dropped compare nothing), and the one MoE layer of the tiny model routes alike in both
# but for rare near-ties; with routing replay exactly alike.
for run in (one, two, ep, pp, ep_rr, dyn_rr, gspo):
    for s, r in run.items():
        assert 0 <= r["mismatch_abs_max"] < 1e-4 and r["mismatch_abs_mean"] <= r["mismatch_abs_max"], (s, r["mismatch_abs_max"])
        assert r["mismatch_over_0_1"] == 0 and 0 <= r["mismatch_kl_k3"] < 1e-8, (s, r)
        assert len(r["rerouted_share"]) == 1 and r["rerouted_share"][0] <= (0 if run in (ep_rr, dyn_rr) else 0.01), (s, r["rerouted_share"])
assert all(r["mismatch_abs_max"] > 0 for r in one.values()), "no gap at all: the rollout's log-probs are not its own"
assert all(r["is_weight_mean"] == 1 and r["is_masked_fraction"] == 0 for r in one.values())
assert all(r["is_weight_mean"] != 1 and abs(r["is_weight_mean"] - 1) < 1e-4 for r in ep_rr.values() if r["grad_norm"] > 0)
assert all(r["is_masked_fraction"] == 0 and abs(r["loss"]) < 10 for r in gspo.values())
# Bounds from the magnitude of the terms each value sums, not from the value itself. The GRPO loss is a
# near-cancelling sum (a group's advantages sum to zero): its terms are the advantage-weighted ratios of the
# tokens of non-uniform groups (|A| about 1) and beta_kl times the KL terms, so a float32 error is a small
# fraction of that scale. kl_mean sums non-negative terms d^2/2, each from d = ref - logp, a difference of
# log-probs of magnitude up to ~8 known to ~1e-6, so |error| <= sqrt(2 kl) * 1e-6 on top of a relative one.
# grad_norm is a norm, no cancellation: relative.
groups, beta = 4, 0.01
def tolerance(ref, k):
    if k == "loss":
        return 1e-5 * ((1 - ref["uniform_groups"] / groups) + beta * ref["kl_mean"]) + 1e-12
    if k == "kl_mean":
        return 1e-4 * ref[k] + 1e-6 * (2 * ref[k]) ** 0.5 + 1e-12
    return 1e-4 * abs(ref[k]) + 1e-12
def agree(run, ref, s, k):
    assert abs(run[s][k] - ref[s][k]) <= tolerance(ref[s], k), (s, k, run[s][k], ref[s][k], tolerance(ref[s], k))
print("step 1 ratio_mean", one[1]["ratio_mean"], "kl", one[1]["kl_mean"])
for s in one:
    for k in ["reward_mean", "response_length_mean", "accuracy"]:
        assert abs(one[s][k] - two[s][k]) <= 1e-9, (s, k, one[s][k], two[s][k])
    agree(two, one, s, "loss")
    assert abs(one[s]["reward_mean"] - split[s]["reward_mean"]) <= 1e-9, (s, one[s], split[s])
    for run, ref in ((ep, dyn), (tp, dyn), (tp_pp, dyn), (pp_ep, dyn), (pp, dyn), (pp_int, one4), (ep_rr, dyn_rr)):
        for k in ["reward_mean", "response_length_mean", "uniform_groups"]:
            assert run[s][k] == ref[s][k], (s, k, run[s][k], ref[s][k])
        for k in ["loss", "grad_norm", "kl_mean"]:
            agree(run, ref, s, k)
assert any(0 < r["uniform_groups"] < 4 for r in ep.values()), "no step kept some groups and dropped others"
for run, ref in ((pp, dyn), (pp_int, one4)):
    assert all(r["grad_norm"] > 0 for s, r in run.items() if ref[s]["uniform_groups"] < groups), "a pipeline run skipped training"
assert any(r["grad_norm"] > 0 for r in pp.values()), "no step of the pipeline run had an advantage to train on"
print("1 and 2 ranks agree, expert = 2, TP2 x EP4, TP2 x PP2, PP2 x EP2 and PP2 (1F1B) too, PP2 interleaved equals one rank;"
      " the resumed run reproduces the uninterrupted one")
PY
"$py" "$tools/ckpt.py" lineage "one/checkpoints/$(cat one/checkpoints/latest)" | tee lineage.txt
grep -q "base/checkpoints/step-00000060" lineage.txt || fail "the grpo checkpoint does not name the base as its parent"
# tools/plot_metrics.py draws the run's curves.
"$py" "$tools/plot_metrics.py" one --out one.png >/dev/null && [[ -s one.png ]] || fail "plot_metrics.py made no PNG"
echo PASS
