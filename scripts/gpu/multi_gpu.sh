#!/usr/bin/env bash
# After scripts/gpu/run.sh has built build-gpu: every kind of parallelism over NCCL on two ranks.
#  1. the NCCL collective tests on 2 ranks (started ops on the side stream included);
#  2. the tiny pretrain (FP32, 6 steps) on one GPU and at DP2 (ZeRO-1), TP2, EP2, PP2 on two: the losses must
#     equal one GPU's to 1e-5 relative (the CPU equivalence tests' bound; FP32 GEMMs, no TF32), and DP2 and
#     EP2 with overlap off must give the very same losses as with it on; so must PP2 under dualpipev and
#     dualpipe (their forward/backward pairs on two threads, [parallel] overlap_chunk_pairs), and dualpipe
#     with the pairs off the same bits as with them on;
#  3. the bench deck at each two-GPU layout: tokens/s, MFU, and the profile of steps 8-10 with the
#     communication regions (tp_comm, ep_comm) and the pipeline bubble;
#  4. overlap: DP2 (ZeRO-1) and EP2 with [parallel] overlap_grad_reduce / overlap_expert_comm on and off,
#     no profiling (its regions synchronise): tokens/s of steps 6-12 and the exposed gradient-reduction
#     time (metrics.jsonl time.grad_reduce_s), medians;
#  5. r1hpc-bench-comm on 2 ranks (all-reduce and all-to-all GB/s, and how much of a started op hides
#     behind GEMMs).
# With one GPU the two ranks share it as two emulated nodes (scripts/gpu/two_ranks.sh): every two-rank code
# path runs, but the timings are not two-GPU timings, so step 3 is left out there, and step 4 uses the small
# model (101.6M parameters, micro-batch 8 at sequence 4096), whose gradients are few for its compute.
#   scripts/gpu/multi_gpu.sh OUTDIR
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/multi_gpu.sh OUTDIR}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
bin=build-gpu/bin/r1hpc
status=0
source scripts/gpu/two_ranks.sh
((gpus < 2)) && echo "multi_gpu: one GPU: two ranks on it as two emulated nodes (NCCL socket transport over loopback)"

run2 build-gpu/tests/parallel_gpu_test >"$out/nccl-tests.log" 2>&1 || status=1
grep -E "PASSED|FAILED|NCCL WARN" "$out/nccl-tests.log" | sort | uniq -c | head

tiny=(tests/e2e/pretrain_tiny.deck --set run.max_steps=6 --set train.precision=fp32 --set train.micro_batch=2
      --set train.global_batch=8)
work=$(mktemp -d)
$bin "${tiny[@]}" --set run.output_dir="$work/one" >"$out/tiny-one.log" 2>&1 || status=1
for layout in "dp2" "tp2 --set parallel.tensor=2" "ep2 --set parallel.expert=2" "pp2 --set parallel.pipeline=2" \
              "dualpipev2 --set parallel.pipeline=2 --set parallel.schedule=dualpipev" \
              "dualpipe2 --set parallel.pipeline=2 --set parallel.schedule=dualpipe" \
              "dualpipe2-off --set parallel.pipeline=2 --set parallel.schedule=dualpipe --set parallel.overlap_chunk_pairs=false" \
              "dp2-off --set parallel.overlap_grad_reduce=false" \
              "ep2-off --set parallel.expert=2 --set parallel.overlap_expert_comm=false --set parallel.overlap_grad_reduce=false"; do
  read -r name args <<<"$layout"
  # shellcheck disable=SC2086
  run2 $bin "${tiny[@]}" --set run.output_dir="$work/$name" $args >"$out/tiny-$name.log" 2>&1 || status=1
  python3 - "$work/one" "$work/$name" <<'PY' 2>&1 | tee -a "$out/tiny-equivalence.log" || status=1
import json, sys
a, b = ([json.loads(l)["loss"] for l in open(f"{r}/metrics.jsonl")] for r in sys.argv[1:])
assert len(a) == len(b) == 6, (len(a), len(b))
worst = max(abs(x - y) / abs(x) for x, y in zip(a, b))
print(f"NCCL {sys.argv[2].rsplit('/', 1)[1]}: losses {b[0]:.6f} .. {b[-1]:.6f}, worst relative difference to one GPU {worst:.2e}")
sys.exit(0 if worst <= 1e-5 else 1)
PY
done
for name in dp2 ep2 dualpipe2; do
  python3 - "$work/$name" "$work/$name-off" <<'PY' 2>&1 | tee -a "$out/tiny-equivalence.log" || status=1
import json, sys
on, off = ([(r["loss"], r["grad_norm"]) for r in map(json.loads, open(f"{d}/metrics.jsonl"))] for d in sys.argv[1:])
name = sys.argv[1].rsplit('/', 1)[1]
print(f"NCCL {name}: overlap on and off give {'the same' if on == off else 'DIFFERENT'} losses and gradient norms "
      f"over {len(on)} steps (metrics.jsonl holds doubles at full precision)")
sys.exit(0 if on == off and len(on) == 6 else 1)
PY
done
rm -rf "$work"

# The final checkpoint (27 GB) goes to memory and is dropped: these runs measure the step.
bench=(inputs/bench/pretrain_bench.deck --set checkpoint.dir=/dev/shm/r1hpc-bench)
overlap_layouts=("dp2 --set train.global_batch=4" "ep2 --set train.global_batch=4 --set parallel.expert=2")
if ((gpus < 2)); then
  bench+=(--set model.preset=small --set train.micro_batch=8)
  overlap_layouts=("dp2 --set train.global_batch=16" "ep2 --set train.global_batch=16 --set parallel.expert=2")
fi
((gpus >= 2)) && for layout in "dp2 --set train.global_batch=4" "ep2 --set train.global_batch=4 --set parallel.expert=2" \
              "tp2 --set parallel.tensor=2" \
              "pp2 --set parallel.pipeline=2 --set train.micro_batch=1 --set train.global_batch=8"; do
  read -r name args <<<"$layout"
  rm -rf runs/bench /dev/shm/r1hpc-bench
  # shellcheck disable=SC2086
  run2 $bin "${bench[@]}" $args >"$out/bench-$name.log" 2>&1 || status=1
  echo "== bench $name: $(grep -c 'tokens/s' "$out/bench-$name.log") step lines"
  grep -E "step +1[012]/|bubble" "$out/bench-$name.log" | tail -3
  grep -A40 "profile of steps" "$out/bench-$name.log" | grep -E "comm|forward |backward |optimizer|total" | head -12
done
for layout in "${overlap_layouts[@]}"; do
  read -r name args <<<"$layout"
  for overlap in true false; do
    rm -rf runs/bench /dev/shm/r1hpc-bench
    # shellcheck disable=SC2086
    run2 $bin "${bench[@]}" $args --set log.profile_steps= --set parallel.overlap_grad_reduce=$overlap \
      --set parallel.overlap_expert_comm=$overlap >"$out/overlap-$name-$overlap.log" 2>&1 || status=1
    python3 - runs/bench/metrics.jsonl "$name" "$overlap" <<'PY' 2>&1 | tee -a "$out/overlap.log" || status=1
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])][5:]
tps = statistics.median(r["tokens_per_s"] for r in rows)
red = statistics.median(r["time"]["grad_reduce_s"] for r in rows)
comp = statistics.median(r["time"]["compute_s"] for r in rows)
print(f"{sys.argv[2]} overlap={sys.argv[3]}: {tps:,.0f} tokens/s, compute {comp*1e3:.1f} ms, exposed gradient reduction {red*1e3:.1f} ms (median of steps 6-{5+len(rows)})")
PY
  done
done
rm -rf /dev/shm/r1hpc-bench runs/bench
run2 build-gpu/bin/r1hpc-bench-comm >"$out/comm-bench.log" 2>&1 || status=1
tail -28 "$out/comm-bench.log"
exit $status
