#!/usr/bin/env bash
# End-to-end checks of `r1hpc --dry-run` planning output. Run from the source root.
# usage: dry_run_test.sh CASE R1HPC     CASE: v3_671b | v3_671b_published | tiny_world_8 | world_size_needs_dry_run | grpo_tiny
set -u
case_name=$1 r1hpc=$2
out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
fail() { echo "FAIL ($case_name): $*"; echo "--- stdout:"; cat "$out"; echo "--- stderr:"; cat "$err"; exit 1; }
expect() { grep -qF -- "$1" "$out" || fail "no line with '$1'"; }
# The worst rank's total must fit an 80 GB H800 (74.5 GiB), the CUDA context and NCCL buffers aside.
worst_fits() {
  local gib
  gib=$(sed -n 's/^worst rank: stage [0-9]*, \([0-9.]*\) GiB.*/\1/p' "$out")
  [ -n "$gib" ] || fail "no 'worst rank' line"
  awk -v g="$gib" -v lo="$1" -v hi="$2" 'BEGIN { exit !(g >= lo && g <= hi) }' || fail "worst rank $gib GiB, expected $1 .. $2"
}
v3=(inputs/models/v3-671b.deck --dry-run --world-size 2048 --set parallel.pipeline=16 --set parallel.expert=64)

case $case_name in
  v3_671b)
    # The published DeepSeek-V3 layout: PP16, EP64, ZeRO-1 over DP 128, no TP (2048 H800).
    "$r1hpc" "${v3[@]}" >"$out" 2>"$err" || fail "exit code $?"
    expect "layout: world 2048 = tensor 1 x data 128 x pipeline 16; MoE layers: expert 64 x expert-data 2"
    expect "pipeline split (layers per chunk): 3,4,4,4,4,4,4,4,4,4,4,4,4,4,4,2"
    expect "rank 0: tp 0 dp 0 pp 0 ep 0 edp 0  tp[0]  dp[0..127]  pp[0,128..1920]  ep[0..63]  edp[0,64]"
    expect "rank 2047: tp 0 dp 127 pp 15 ep 63 edp 1"
    expect "671.03B total, 36.63B activated per token, MTP 11.61B more"
    # By hand, the last stage (worst; the deck's defaults: fp32 compute and moments, 1 x 256 tokens,
    # one micro-batch per step, no recompute). It holds layers 59-60, the MTP block, the head and an
    # embedding copy for MTP. A MoE block: attention 187,121,664 (q_a 7168x1536 + 1536, q_b 1536x128x192,
    # kv_a 7168x576 + 512, kv_b 512x128x256, o 128x128x7168, norms 2x7168) + router 256x7168 + shared
    # 3x7168x2048 = 232,996,864 dense, routed 4 x 44,040,192 = 176,160,768. Dense 3 x 232,996,864 +
    # MTP 3x7168 + 2x7168^2 + head and embedding 2 x 129280 x 7168 + norm 7168 = 2,655,137,792;
    # experts 3 x 176,160,768 = 528,482,304; 3,183,620,096 in all.
    # weights 4 B and grads 4 B each: 12,734,480,384 B = 11.86 GiB;
    # AdamW 8 B x (2,655,137,792 / 128 + 528,482,304 / 2) = 2,279,875,328 B = 2.12 GiB;
    # activations per token: 3 MoE blocks x 1,140,544 B + final norm 57,344 + MTP inputs 86,016 =
    # 3,564,992 B x 256 tokens x 1 in flight + logits 256 x (129280 x 4 + 8) = 1,045,022,720 B = 0.97 GiB;
    # total 28,793,858,816 B = 26.82 GiB (28.8 GB) < 80 GB.
    expect "  15     2 layers+mtp+head      2.66B+0.53B           11.86    11.86      2.12         0.97      1    26.82  <- worst"
    worst_fits 26.8 26.9
    expect "assumptions:"
    ;;
  v3_671b_published)
    # DeepSeek-V3's recipe as far as r1hpc offers it: sequence 4096, BF16 GEMMs (a BF16 copy, as its FP8
    # GEMMs keep), FP32 AdamW moments (DeepSeek's are BF16), global batch 15360 sequences (120 micro-batches
    # per replica). Under 1F1B stage 0 holds 16 micro-batches, which fits with full recompute (DeepSeek's
    # own selective recompute and FP8 activation caching sit in between).
    "$r1hpc" "${v3[@]}" --set data.seq_len=4096 --set train.precision=bf16 \
      --set train.global_batch=15360 --set train.recompute=full >"$out" 2>"$err" || fail "exit code $?"
    expect "tensor 1 x data 128 x pipeline 16; MoE layers: expert 64 x expert-data 2"
    worst_fits 20 74.5
    ;;
  tiny_world_8)
    "$r1hpc" inputs/models/tiny.deck --dry-run --world-size 8 --set parallel.tensor=2 --set parallel.pipeline=2 \
      --set parallel.expert=2 >"$out" 2>"$err" || fail "exit code $?"
    # tp-dp-pp: tp fastest (pairs), then dp, then the two stages of 4 ranks; EP folds over tp x dp.
    expect "mesh: world 8 = tp 2 x dp 2 x pp 2 (order tp-dp-pp, fastest first); MoE: ep 2 x edp 2 per stage"
    grep -A1 -x "  tp: 4 group(s) of 2:" "$out" | grep -qxF "    [0,1] [2,3] [4,5] [6,7]" || fail "tp groups"
    grep -A1 -x "  dp: 4 group(s) of 2:" "$out" | grep -qxF "    [0,2] [1,3] [4,6] [5,7]" || fail "dp groups"
    grep -A1 -x "  pp: 4 group(s) of 2:" "$out" | grep -qxF "    [0,4] [1,5] [2,6] [3,7]" || fail "pp groups"
    grep -A1 -x "  edp: 4 group(s) of 2:" "$out" | grep -qxF "    [0,2] [1,3] [4,6] [5,7]" || fail "edp groups"
    expect "pipeline split (layers per chunk): 1,1"
    expect "memory per rank (MiB"
    ;;
  world_size_needs_dry_run)
    "$r1hpc" inputs/models/tiny.deck --world-size 8 >"$out" 2>"$err"
    rc=$?
    [ "$rc" -eq 2 ] || fail "exit code $rc, expected 2"
    grep -qF "r1hpc: error: command line: --world-size plans a layout and needs --dry-run" "$err" || fail "message"
    ;;
  grpo_tiny)
    # A grpo deck plans from [model] alone: checkpoint.load must name an existing path (here a directory that
    # holds no checkpoint: nothing is read), and without one the error names the key.
    "$r1hpc" tests/e2e/grpo_tiny.deck --dry-run >"$out" 2>"$err" && fail "planned without checkpoint.load"
    grep -qF "the grpo stage needs [checkpoint] load" "$err" || fail "the error does not name [checkpoint] load"
    "$r1hpc" tests/e2e/grpo_tiny.deck --dry-run --world-size 2 --set parallel.pipeline=2 --set checkpoint.load=inputs/models \
      --set sampling.max_batch=16 >"$out" 2>"$err" || fail "exit code $?"
    # By hand, per stage (1 MLA layer each): KV cache 1 layer x 16 slots x 48 rows (max_new_tokens) x (64 + 16)
    # x 4 B = 245,760 B = 0.234 MiB; the learner: 8 rows of 48 tokens (train.micro_batch).
    expect "rollout KV cache = layers x [sampling] max_batch = 16 (--set sampling.max_batch=16) x 48 rows"
    expect "  stage 0: KV cache 0.234 (1 layers)"
    expect "  stage 1: KV cache 0.234 (1 layers)"
    expect "learner activations for 8 rows of 48 tokens"
    ;;
  *) echo "unknown case $case_name"; exit 2 ;;
esac
echo "PASS ($case_name)"
