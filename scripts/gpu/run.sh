#!/usr/bin/env bash
# On the GPU machine, one command: unpack the carried packages (.deps/, from fetch_deps.sh) into
# /opt/deps, configure and build with Ninja into build-gpu/, run the `gpu`-labelled tests, the Hugging Face
# round trip and the benchmarks, and write each log into OUTDIR.
#   scripts/gpu/run.sh OUTDIR [tests|bench|all]     (default all)
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: scripts/gpu/run.sh OUTDIR [tests|bench|all]}
what=${2:-all}
mkdir -p "$out"
export NCCL_NVLS_ENABLE=0  # never NVLink multicast on shared machines
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

deps=/opt/deps
if compgen -G ".deps/*.deb" >/dev/null; then
  for d in .deps/*.deb; do dpkg -x "$d" "$deps"; done
fi
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DR1HPC_ENABLE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
[[ -d $deps/usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0 ]] && cmake_args+=(-DBoost_DIR=$deps/usr/lib/x86_64-linux-gnu/cmake/Boost-1.74.0)
[[ -d $deps/usr/share/cmake/nlohmann_json ]] && cmake_args+=(-Dnlohmann_json_DIR=$deps/usr/share/cmake/nlohmann_json)
[[ -d $deps/usr/include ]] && cmake_args+=(-DCMAKE_PREFIX_PATH=$deps/usr)  # PCRE2, utf8proc (src/tokenizer)

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
  cmake -S . -B build-gpu -G Ninja "${cmake_args[@]}" && cmake --build build-gpu -j 16
} >"$out/build.log" 2>&1
rc=$?
if ((rc)); then
  tail -40 "$out/build.log"
  echo "gpu/run: build failed (log: $out/build.log)"
  exit $rc
fi
echo "gpu/run: built build-gpu"

status=0
if [[ $what == tests || $what == all ]]; then
  # Multi-rank GPU tests need one GPU per rank: leave out those asking for more GPUs than are here.
  gpus=$(nvidia-smi -L | wc -l)
  exclude="^$"
  for n in 2 4 8; do ((n > gpus)) && exclude+="|_np${n}\$"; done
  echo "gpu/run: $gpus GPU(s); not run here: tests matching '$exclude'" | tee "$out/gpu-tests.log"
  ctest --test-dir build-gpu -L gpu -E "$exclude" --output-on-failure >>"$out/gpu-tests.log" 2>&1 || status=1
  tail -15 "$out/gpu-tests.log"
  if ((gpus < 2)); then  # the two-rank NCCL tests still run: two ranks on the one GPU as two emulated nodes
    source scripts/gpu/two_ranks.sh
    echo "gpu/run: parallel_gpu_test on 2 ranks as two emulated nodes (scripts/gpu/two_ranks.sh)" | tee -a "$out/gpu-tests.log"
    run2 build-gpu/tests/parallel_gpu_test >>"$out/gpu-tests.log" 2>&1 || status=1
    grep -aE "\[  (PASSED|FAILED)  \]" "$out/gpu-tests.log" | tail -2
  fi
  build-gpu/bin/r1hpc --self-check >"$out/self-check.log" 2>&1 || status=1
  cat "$out/self-check.log"
  scripts/gpu/hf_roundtrip.sh build-gpu "$out" || status=1
fi
if [[ $what == bench || $what == all ]]; then
  for b in build-gpu/bin/r1hpc-bench-*; do
    mpirun -np 1 --bind-to none "$b" >>"$out/bench.log" 2>&1 || status=1
  done
  cat "$out/bench.log"
  # The performance standard: a training step of the bench model (tokens/s, MFU per step).
  rm -rf runs/bench
  build-gpu/bin/r1hpc inputs/bench/pretrain_bench.deck >"$out/pretrain-bench.log" 2>&1 || status=1
  tail -15 "$out/pretrain-bench.log"
fi
exit $status
