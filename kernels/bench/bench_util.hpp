// Shared by the kernel benchmarks: the device to run on, random operands, and median timing.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/timer.hpp"
#include "kernels/context.hpp"
#include "kernels/random.hpp"

namespace r1::bench {

// cuda:0 when a GPU is visible and `--cpu` was not given, else the CPU backend.
inline kernels::Context bench_context(int argc, char** argv, bool& on_gpu) {
  const bool force_cpu = argc > 1 && std::strcmp(argv[1], "--cpu") == 0;
  on_gpu = !force_cpu && kernels::Context::cuda_device_count() > 0;
#if defined(R1HPC_HAVE_CUDA)
  if (on_gpu) return kernels::Context::cuda(0);
#endif
  return kernels::Context::cpu();
}

// Random N(0, std^2) operands: constant or zero data lets a GPU run cooler and faster than real data.
inline Tensor random(const kernels::Context& ctx, const Shape& s, DType dt, std::uint32_t stream, float std = 1.0f) {
  Tensor t = ctx.empty(s, dt);
  kernels::fill_random(ctx, t, kernels::Distribution::normal, 0.0f, std, RngKey{1, stream});
  return t;
}

// Seconds per call of f: `warmup` untimed calls, then the median of 5 timed runs of `reps` calls.
template <class F>
double time_per_call(const kernels::Context& ctx, int reps, F&& f, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) f();
  ctx.synchronize();
  std::vector<double> times;
  for (int r = 0; r < 5; ++r) {
    Stopwatch sw;
    for (int i = 0; i < reps; ++i) f();
    ctx.synchronize();
    times.push_back(sw.seconds() / reps);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace r1::bench
