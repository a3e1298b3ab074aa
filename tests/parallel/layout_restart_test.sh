#!/usr/bin/env bash
# Expert, tensor (with and without sequence parallelism) and pipeline parallelism and ZeRO-1 through the
# pretrain stage (CPU): 3 steps on one
# layout, checkpointed, then resumed with `load = latest` on another layout to step 6, give the losses of
# one uninterrupted one-rank run (FP32, to 1e-5 relative: the layouts sum in another order, see
# training_equivalence_test.cpp); so does the sft stage at EP2, at TP2 x PP2 and at PP2 under dualpipe (two
# copies of the stages; micro-batches of one row, so the same global batch makes 2 x pipeline) from that checkpoint; a
# stage that cannot split the model refuses the key, and so does pipeline parallelism with MTP.
#   usage: layout_restart_test.sh R1HPC_BINARY PRETRAIN_DECK SFT_DECK
set -uo pipefail
bin=$1
deck=$2
sft_deck=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
export OMP_NUM_THREADS=1
fail() { echo "FAIL: $*"; exit 1; }
# The schedule must not depend on max_steps (the first leg stops at 3); micro-batch 2 fits 4 replicas.
common=(--set optim.decay_steps=100 --set train.micro_batch=2 --set train.global_batch=8)
launch() {
  local ranks=$1
  shift
  if ((ranks > 1)); then mpiexec -n "$ranks" --oversubscribe "$bin" "$deck" "${common[@]}" "$@"; else "$bin" "$deck" "${common[@]}" "$@"; fi
}

launch 1 --set run.max_steps=6 --set run.output_dir=ref >ref.log 2>&1 || { cat ref.log; fail "one-rank run"; }
# first layout (ranks, expert, zero1, tensor, pipeline, sequence_parallel) -> second layout
for legs in "2 2 true 1 1 false:1 1 true 1 1 false" "1 1 true 1 1 false:2 2 true 1 1 false" \
            "4 2 true 1 1 false:2 1 true 1 1 false" "4 4 false 1 1 false:4 2 true 1 1 false" \
            "2 2 true 2 1 false:2 1 true 1 2 false" "4 2 true 2 2 false:1 1 true 1 1 false" \
            "4 2 true 2 1 true:4 2 true 2 2 true"; do
  IFS=: read -r a b <<<"$legs"
  read -r ra ea za ta pa sa <<<"$a"
  read -r rb eb zb tb pb sb <<<"$b"
  out="run_${ra}_${ea}_${za}_${ta}_${pa}_${sa}_${rb}_${eb}_${zb}_${tb}_${pb}_${sb}"
  launch "$ra" --set run.max_steps=3 --set run.output_dir="$out" --set parallel.expert="$ea" --set parallel.zero1="$za" \
    --set parallel.tensor="$ta" --set parallel.pipeline="$pa" --set parallel.sequence_parallel="$sa" >"$out.1.log" 2>&1 \
    || { cat "$out.1.log"; fail "$out: first leg"; }
  launch "$rb" --set run.max_steps=6 --set run.output_dir="$out" --set parallel.expert="$eb" --set parallel.zero1="$zb" \
    --set parallel.tensor="$tb" --set parallel.pipeline="$pb" --set parallel.sequence_parallel="$sb" \
    --set checkpoint.load=latest >"$out.2.log" 2>&1 \
    || { cat "$out.2.log"; fail "$out: second leg"; }
  grep -q "resuming this run from $out/checkpoints/step-00000003" "$out.2.log" || fail "$out: did not resume from step 3"
  python3 "$here/losses_match.py" ref "$out" 6 "$out" || fail "$out: losses differ from the one-rank run"
done

# The sft stage from that checkpoint (written by one rank, read into shards): EP2, TP2 x PP2 and PP2 dualpipe
# equal one rank.
sft=(--set run.max_steps=3 --set checkpoint.load="$work/ref/checkpoints")
"$bin" "$sft_deck" "${sft[@]}" --set run.output_dir=sft1 >sft1.log 2>&1 || { cat sft1.log; fail "sft on one rank"; }
for split in "2 sft_ep2 --set parallel.expert=2" "4 sft_tp2_pp2 --set parallel.tensor=2 --set parallel.pipeline=2" \
             "2 sft_dualpipe --set parallel.pipeline=2 --set parallel.schedule=dualpipe --set train.micro_batch=1"; do
  read -r n name args <<<"$split"
  # shellcheck disable=SC2086
  mpiexec -n "$n" --oversubscribe "$bin" "$sft_deck" "${sft[@]}" --set run.output_dir="$name" $args \
    >"$name.log" 2>&1 || { cat "$name.log"; fail "sft at $name"; }
  python3 - sft1 "$name" <<'PY' || fail "sft at $name: losses differ from one rank"
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(f"{r}/metrics.jsonl")] for r in sys.argv[1:])
assert len(a) == len(b) == 3, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"{sys.argv[2]} vs one rank: worst relative loss difference {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
done
grep -q "parallel.zero1: data = 1" ref.log || fail "a one-rank run does not say that ZeRO-1 has nothing to shard"

# A stage that cannot split experts refuses the key before it writes anything.
mpiexec -n 2 --oversubscribe "$bin" "$deck" --set run.stage=reward_model --set parallel.expert=2 \
  --set run.output_dir=refused >refused.log 2>&1
rc=$?
[[ $rc == 2 ]] || { cat refused.log; fail "reward_model with expert = 2 exited $rc, not 2"; }
grep -q "r1hpc: error: .*\[parallel\] expert = 2.*expert parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling" refused.log || { cat refused.log; fail "no error naming [parallel] expert"; }
[[ ! -e refused ]] || fail "the refused run created its output directory"
# So does a stage that cannot split with tensor = 2 or pipeline = 2, and pipeline parallelism with an MTP module.
refuse() {  # KEY_PATTERN ARGS...: refused with exit 2 naming the key, nothing written
  local pattern=$1
  shift
  mpiexec -n 2 --oversubscribe "$bin" "$deck" "$@" --set run.output_dir=refused_more >refused_more.log 2>&1
  local rc=$?
  [[ $rc == 2 ]] || { cat refused_more.log; fail "$* exited $rc, not 2"; }
  grep -q "r1hpc: error: .*$pattern" refused_more.log || { cat refused_more.log; fail "no error naming $pattern"; }
  [[ ! -e refused_more ]] || fail "the refused run ($*) created its output directory"
}
refuse "\[parallel\] tensor = 2.*tensor parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling" --set run.stage=reward_model --set parallel.tensor=2
refuse "\[parallel\] pipeline = 2.*pipeline parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling" --set run.stage=reward_model --set parallel.pipeline=2
refuse "\[model\] mtp_depth = 1.*pipeline parallelism needs mtp_depth = 0" --set parallel.pipeline=2 --set model.mtp_depth=1
echo PASS
