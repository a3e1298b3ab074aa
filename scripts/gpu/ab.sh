#!/usr/bin/env bash
# After scripts/gpu/run.sh has built build-gpu: the side-by-side runs the open measurements need, in one
# command under the GPU machine's 10-minute limit (~5 minutes on one H100):
#  1. the bench training step in BF16, BF16 with cuDNN's attention (train.attention = cudnn) and FP8
#     (train.precision = fp8), at the bench's global batch (2 sequences) and at 16 (gradient accumulation),
#     BF16 moments in all: tokens/s and MFU of steps 3-12 (median), the region profile of steps 8-10 (step-*.log);
#     r1hpc-bench-attention's rows, own kernel against cuDNN (attention.log);
#  2. r1hpc-bench-gemm's expert rows (FP8 grouped against BF16 grouped and the per-expert loop);
#  3. the rollout benchmark on the bench model: 512 long-tailed sequences, static and continuous batching at
#     64 slots, the paged engine at 256 slots with whole prefills and with 512-token chunks mixed into its
#     decode steps (rollout*.log).
# Checkpoints of the step runs go to /dev/shm and are deleted. OUTDIR gets the logs and summary.txt.
#   scripts/gpu/ab.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/ab.sh OUTDIR}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0
bin=build-gpu/bin
[[ -x $bin/r1hpc ]] || { echo "ab: no $bin/r1hpc (scripts/gpu/run.sh OUTDIR none builds it)" >&2; exit 1; }
sum=$out/summary.txt
: >"$sum"
step() {  # NAME --set ...: one bench-deck run; its median tokens/s and MFU over steps 3-12
  local name=$1 ck=/dev/shm/r1hpc-ab
  shift
  rm -rf runs/bench "$ck"
  timeout 150 "$bin/r1hpc" inputs/bench/pretrain_bench.deck --set checkpoint.dir="$ck" --set optim.moment_precision=bf16 "$@" \
    >"$out/step-$name.log" 2>&1
  echo "== $name (exit $?): $*" >>"$sum"
  /usr/bin/python3 - "$out/step-$name.log" >>"$sum" <<'PY'
import re, statistics, sys
rows = [(int(m[1]), float(m[2]), float(m[3])) for m in re.finditer(r"step (\d+)/\d+ .*?([\d.]+)k tok/s +MFU ([\d.]+)%", open(sys.argv[1]).read())]
rows = [r for r in rows if r[0] >= 3]
if rows:
    print(f"  steps {rows[0][0]}-{rows[-1][0]}: median {statistics.median(r[1] for r in rows)} k tokens/s, MFU {statistics.median(r[2] for r in rows)}%")
else:
    print("  no step lines")
PY
  rm -rf "$ck"
}
step bf16
step bf16-cudnn --set train.attention=cudnn
step fp8 --set train.precision=fp8
step bf16-g16 --set train.global_batch=16
step fp8-g16 --set train.precision=fp8 --set train.global_batch=16
step bf16-cudnn-g16 --set train.attention=cudnn --set train.global_batch=16
timeout 120 "$bin/r1hpc-bench-attention" >"$out/attention.log" 2>&1
cat "$out/attention.log" >>"$sum"
timeout 120 "$bin/r1hpc-bench-gemm" >"$out/gemm.log" 2>&1
grep -iE "expert|8192" "$out/gemm.log" >>"$sum"
for chunk in 0 512; do
  timeout 150 "$bin/r1hpc-bench-generate" --rollout --sequences 512 --max-batch 64 --paged-batch 256 --prefill-chunk "$chunk" \
    >"$out/rollout-chunk$chunk.log" 2>&1
  echo "== rollout, paged prefill chunk $chunk (exit $?)" >>"$sum"
  grep -vE "^generate:" "$out/rollout-chunk$chunk.log" | tail -n 14 >>"$sum"
done
cat "$sum"
