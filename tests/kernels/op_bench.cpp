// The op table's benchmark mode (tests/kernels/op_cases.hpp), r1hpc-bench-ops [--cpu] [NAME-PART]: every case
// (or those whose name contains NAME-PART) on cuda:0, or on the CPU backend with --cpu or without a GPU; per case
// the median time of its op, GB/s of the memory it must move and TFLOP/s of matrix ops. Never fails on time.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "kernels/bench/bench_util.hpp"
#include "kernels/op_cases.hpp"

using namespace r1;

int main(int argc, char** argv) {
  bool gpu = false;
  const kernels::Context ctx = bench::bench_context(argc, argv, gpu);
  const int first_free = argc > 1 && std::strcmp(argv[1], "--cpu") == 0 ? 2 : 1;
  const std::string only = argc > first_free ? argv[first_free] : "";
  std::printf("# r1hpc op table benchmark on %s; median of 5 runs\n", gpu ? "cuda:0" : "the CPU backend");
  for (const test::OpCase& c : test::op_cases()) {
    if (c.name().find(only) == std::string::npos) continue;
    const test::Run run = c.bind(ctx);
    // Enough calls per timed run to fill ~10 ms, from one call after the warm-up.
    const double once = bench::time_per_call(ctx, 1, run.op, 1);
    const int reps = static_cast<int>(std::clamp(0.01 / std::max(once, 1e-9), 1.0, 1000.0));
    const double t = bench::time_per_call(ctx, reps, run.op, 0);
    std::printf("%-16s %-72s %10.1f us %8.1f GB/s", c.op.c_str(), c.config.c_str(), t * 1e6, run.bytes / t * 1e-9);
    if (run.flops > 0) std::printf(" %7.1f TFLOP/s", run.flops / t * 1e-12);
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}
