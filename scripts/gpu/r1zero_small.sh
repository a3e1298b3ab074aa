#!/usr/bin/env bash
# R1-Zero at GPU scale on one GPU (after scripts/gpu/run.sh OUTDIR build): the `small` MoE pretrained on
# the synthetic world (inputs/pipeline/00_pretrain_small.deck, <= 10 min), evaluated, then GRPO from it
# (01_r1zero_small.deck) in legs that each resume the last (device calls are capped at 10 minutes),
# then the policy evaluated on the same held-out problems (09_evaluate_small.deck). Logs, metrics and
# the evaluation reports go to OUTDIR; runs/small keeps the checkpoints between legs.
#   scripts/gpu/r1zero_small.sh OUTDIR pretrain MINUTES  # pretrain (at most MINUTES; resumes) + evaluate the base
#   scripts/gpu/r1zero_small.sh OUTDIR rl MINUTES     # one GRPO leg of at most MINUTES (resumes after the first)
#   scripts/gpu/r1zero_small.sh OUTDIR eval           # evaluate the policy; plot the curves
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/r1zero_small.sh OUTDIR pretrain MINUTES|rl MINUTES|eval}
what=${2:?}
mkdir -p "$out"
bin=build-gpu/bin/r1hpc
evaluate() {  # NAME CHECKPOINTS
  $bin inputs/pipeline/09_evaluate_small.deck --set checkpoint.load="$2" --set run.output_dir="runs/small/09_evaluate/$1" \
    >"$out/eval-$1.log" 2>&1
  cp runs/small/09_evaluate/"$1"/*.json "$out/" 2>/dev/null
  tail -8 "$out/eval-$1.log"
}
case $what in
  pretrain)
    $bin inputs/pipeline/00_pretrain_small.deck --set run.time_limit_minutes="${3:?}" >>"$out/pretrain.log" 2>&1
    echo "pretrain exit $? (75: checkpointed at the time limit)"
    grep -E "step +(1|[0-9]*00)/" "$out/pretrain.log" | tail -6
    cp runs/small/00_pretrain/metrics.jsonl "$out/pretrain-metrics.jsonl"
    evaluate 00_pretrain runs/small/00_pretrain/checkpoints
    ;;
  rl)
    minutes=${3:?}
    load=()
    [[ -e runs/small/01_r1zero/checkpoints/latest ]] && load=(--set checkpoint.load=latest)
    $bin inputs/pipeline/01_r1zero_small.deck --set run.time_limit_minutes="$minutes" "${load[@]}" >>"$out/r1zero.log" 2>&1
    echo "grpo leg exit $? (75: checkpointed at the time limit)"
    grep -E "step +[0-9]+/" "$out/r1zero.log" | tail -4
    cp runs/small/01_r1zero/metrics.jsonl "$out/r1zero-metrics.jsonl"
    ;;
  eval)
    evaluate 01_r1zero runs/small/01_r1zero/checkpoints
    python3 tools/plot_metrics.py runs/small/01_r1zero --out "$out/r1zero.png" >/dev/null 2>&1 \
      || echo "plot failed"
    ;;
esac
