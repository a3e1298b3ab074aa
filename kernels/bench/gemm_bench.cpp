// GEMM benchmark: TFLOP/s of the large square BF16 GEMM and of every linear-layer GEMM (forward,
// input-gradient and weight-gradient) of the tiny and bench models. Runs on the GPU when one is
// visible, else on the CPU backend (tiny shapes only). Reports the median of several timed runs.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/timer.hpp"
#include "kernels/gemm.hpp"
#include "kernels/random.hpp"

using namespace r1;
using kernels::Context;

namespace {
struct Linear {
  const char* name;
  std::int64_t tokens, in, out, batch;  // batch > 1: a grouped (per-expert) GEMM with `tokens` rows each
};

// Tiny model (inputs/models/tiny.deck shapes): dim 128, 4 heads, kv_lora 64, qk 32+16, v 32,
// dense hidden 256, 8 experts of hidden 64 (top-2), vocab 512; 4 x 128 tokens.
const std::vector<Linear> kTiny = {
    {"q_proj", 512, 128, 4 * 48, 1},     {"kv_a_proj", 512, 128, 64 + 16, 1}, {"kv_b_proj", 512, 64, 4 * 64, 1},
    {"o_proj", 512, 4 * 32, 128, 1},     {"mlp_gate_up", 512, 128, 2 * 256, 1}, {"mlp_down", 512, 256, 128, 1},
    {"experts_gate_up", 128, 128, 2 * 64, 8}, {"experts_down", 128, 64, 128, 8}, {"lm_head", 512, 128, 512, 1},
};
// Bench model (DESIGN §6, DeepSeek-V2-Lite layer shapes): dim 2048, 16 heads, q_lora 0, kv_lora 512,
// qk 128+64, v 128, dense hidden 10944, 64 experts of hidden 1408 (top-6) + 2 shared, vocab 102400;
// 2 x 4096 tokens, so each expert gets 768 tokens under a uniform load.
const std::vector<Linear> kBench = {
    {"q_proj", 8192, 2048, 16 * 192, 1},     {"kv_a_proj", 8192, 2048, 512 + 64, 1},
    {"kv_b_proj", 8192, 512, 16 * 256, 1},   {"o_proj", 8192, 16 * 128, 2048, 1},
    {"mlp_gate_up", 8192, 2048, 2 * 10944, 1}, {"mlp_down", 8192, 10944, 2048, 1},
    {"shared_gate_up", 8192, 2048, 2 * 2816, 1}, {"shared_down", 8192, 2816, 2048, 1},
    {"experts_gate_up", 768, 2048, 2 * 1408, 64}, {"experts_down", 768, 1408, 2048, 64},
    {"router", 8192, 2048, 64, 1},            {"lm_head", 8192, 2048, 102400, 1},
};

// Times C = op(A) op(B) (f32 accumulate) and prints one line.
void run(const Context& ctx, const std::string& model, const std::string& name, DType dt, std::int64_t batch,
         std::int64_t m, std::int64_t n, std::int64_t k, bool ta, bool tb, int reps) {
  const auto mat = [&](std::int64_t r, std::int64_t c) { return batch > 1 ? Shape{batch, r, c} : Shape{r, c}; };
  Tensor a = bench::random(ctx, ta ? mat(k, m) : mat(m, k), dt, 1);
  Tensor b = bench::random(ctx, tb ? mat(n, k) : mat(k, n), dt, 2);
  Tensor c = ctx.empty(mat(m, n), dt);
  const kernels::GemmOptions opt{.trans_a = ta, .trans_b = tb};
  const double t = bench::time_per_call(ctx, reps, [&] { kernels::gemm(ctx, a, b, c, opt); }, 3);
  const double flops = 2.0 * static_cast<double>(batch) * m * n * k;
  std::printf("%-6s %-16s %-5s batch %3lld  M %6lld  N %6lld  K %6lld  %c%c  %9.1f us  %7.1f TFLOP/s\n", model.c_str(),
              name.c_str(), dtype_name(dt), static_cast<long long>(batch), static_cast<long long>(m),
              static_cast<long long>(n), static_cast<long long>(k), ta ? 'T' : 'N', tb ? 'T' : 'N', t * 1e6,
              flops / t * 1e-12);
  std::fflush(stdout);
}

// Forward (x W^T), input gradient (dy W) and weight gradient (dy^T x) of a Linear with W [out, in].
void run_linear(const Context& ctx, const std::string& model, const Linear& l, DType dt, int reps) {
  run(ctx, model, std::string(l.name) + ".fwd", dt, l.batch, l.tokens, l.out, l.in, false, true, reps);
  run(ctx, model, std::string(l.name) + ".dgrad", dt, l.batch, l.tokens, l.in, l.out, false, false, reps);
  run(ctx, model, std::string(l.name) + ".wgrad", dt, l.batch, l.out, l.in, l.tokens, true, false, reps);
}
}  // namespace

int main(int argc, char** argv) {
  bool gpu = false;
  const Context ctx = bench::bench_context(argc, argv, gpu);
  std::printf("# r1hpc GEMM benchmark on %s; f32 accumulate; median of 5 runs\n", gpu ? "cuda:0" : "the CPU backend");
  if (gpu) {
    run(ctx, "square", "8192^3", DType::bf16, 1, 8192, 8192, 8192, false, true, 20);
    run(ctx, "square", "8192^3", DType::f32, 1, 8192, 8192, 8192, false, true, 3);
    for (const Linear& l : kTiny) run_linear(ctx, "tiny", l, DType::bf16, 50);
    for (const Linear& l : kBench) run_linear(ctx, "bench", l, DType::bf16, 10);
  } else {
    run(ctx, "square", "1024^3", DType::f32, 1, 1024, 1024, 1024, false, true, 3);
    for (const Linear& l : kTiny) run_linear(ctx, "tiny", l, DType::f32, 10);
  }
  return 0;
}
