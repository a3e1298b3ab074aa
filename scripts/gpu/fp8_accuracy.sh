#!/usr/bin/env bash
# FP8 training accuracy against BF16 (issue 24, DeepSeek-V3's check): the `small` MoE pretrained 1000 steps
# from the same seed on the same batches (inputs/pipeline/00_pretrain_small.deck) with [train] precision =
# bf16 and = fp8; the loss of every step, the relative difference of the last 100 steps' mean loss (V3's bound:
# 0.25%), tokens/s of each, and the two curves in one PNG. ~5 minutes on one H100 after scripts/gpu/run.sh
# has built build-gpu/. R1HPC_FP8_VARIANTS adds FP8 runs beside them, each held to the same bound against bf16:
# fp8-pow2 ([train] fp8_scale = pow2: the backward's expert dispatch in FP8 too), fp8-cache (the SwiGLU input
# cached in FP8, [train] fp8_cache_swiglu_input), ~2.5 minutes each.
#   [R1HPC_FP8_VARIANTS="fp8-pow2 fp8-cache"] scripts/gpu/fp8_accuracy.sh OUTDIR [STEPS]
# OUTDIR gets fp8_accuracy.txt (the summary), fp8_accuracy.png, and the two runs' logs.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/fp8_accuracy.sh OUTDIR [STEPS]}
steps=${2:-1000}
bin=${R1HPC_BIN:-build-gpu/bin/r1hpc}
[[ -x $bin ]] || { echo "fp8_accuracy: no $bin (scripts/gpu/run.sh OUTDIR none builds it)" >&2; exit 1; }
mkdir -p "$out"
runs=runs/fp8_accuracy
status=0
variants=(bf16 fp8 ${R1HPC_FP8_VARIANTS:-})
for p in "${variants[@]}"; do
  case $p in
    bf16) extra=(--set train.precision=bf16) ;;
    fp8) extra=(--set train.precision=fp8) ;;
    fp8-pow2) extra=(--set train.precision=fp8 --set train.fp8_scale=pow2) ;;
    fp8-cache) extra=(--set train.precision=fp8 --set train.fp8_cache_swiglu_input=true) ;;
    *) echo "fp8_accuracy: unknown variant $p (fp8-pow2, fp8-cache)" >&2; exit 2 ;;
  esac
  rm -rf "${runs:?}/$p"
  "$bin" inputs/pipeline/00_pretrain_small.deck --set run.output_dir="$runs/$p" --set run.max_steps="$steps" \
    --set run.time_limit_minutes=0 "${extra[@]}" --set train.log_every=1 --set log.profile_steps= \
    --set checkpoint.keep_last=1 >"$out/fp8_accuracy-$p.log" 2>&1 || { echo "fp8_accuracy: the $p run failed" >&2; status=1; }
done
/usr/bin/python3 - "$runs" "$out" "${variants[@]}" <<'PY' || status=1
import json, os, statistics, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
runs, out, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
curves = {}
for p in variants:
    by_step = {}
    for line in open(os.path.join(runs, p, "metrics.jsonl")):
        r = json.loads(line)
        if "loss" in r:
            by_step[r["step"]] = r
    curves[p] = [by_step[s] for s in sorted(by_step)]
n = min(len(c) for c in curves.values())
tail = {p: statistics.fmean(r["loss"] for r in curves[p][n - 100:n]) for p in curves}
lines = [f"steps compared: {n}"]
for p in variants[1:]:
    rel = abs(tail[p] - tail["bf16"]) / tail["bf16"]
    lines.append(f"mean loss of the last 100 steps: bf16 {tail['bf16']:.5f}, {p} {tail[p]:.5f}, relative difference "
                 f"{rel * 100:.3f}% (V3's bound 0.25%)")
for p in curves:
    tps = [r["tokens_per_s"] for r in curves[p][10:n] if "tokens_per_s" in r]
    if tps:
        lines.append(f"{p}: median {statistics.median(tps):.0f} tokens/s over steps 11-{n}")
open(os.path.join(out, "fp8_accuracy.txt"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for p in curves:
    ax[0].plot([r["step"] for r in curves[p][:n]], [r["loss"] for r in curves[p][:n]], label=p, lw=0.8)
ax[0].set_xlabel("step"); ax[0].set_ylabel("training loss"); ax[0].set_yscale("log"); ax[0].legend()
for p in variants[1:]:
    ax[1].plot([r["step"] for r in curves[p][:n]],
               [(f["loss"] - b["loss"]) / b["loss"] * 100 for f, b in zip(curves[p][:n], curves["bf16"][:n])], lw=0.6, label=p)
ax[1].legend()
ax[1].axhline(0, color="k", lw=0.5); ax[1].set_xlabel("step"); ax[1].set_ylabel("fp8 - bf16 loss (% of bf16)")
fig.suptitle("small MoE, 64 x 512 tokens per step, same seed and batches")
fig.tight_layout(); fig.savefig(os.path.join(out, "fp8_accuracy.png"), dpi=110)
PY
exit $status
