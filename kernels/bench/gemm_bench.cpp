// GEMM benchmark: TFLOP/s of the large square BF16 GEMM and of every linear-layer GEMM (forward,
// input-gradient and weight-gradient) of the tiny and bench models, in BF16 and as precision fp8 runs them
// (block-scaled E4M3, kernels/fp8_gemm.hpp; the quantisation of the operands not timed). Runs on the GPU when
// one is visible, else on the CPU backend (tiny shapes only). Reports the median of several timed runs.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/timer.hpp"
#include "kernels/fp8_gemm.hpp"
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

// Times `batch` block-scaled FP8 GEMMs C_e [m, n] = A_e B_e^T (K = k), as model/linear.cpp calls them: A in
// 1 x 128 tiles, B in (b_rows x 128) tiles, C in `out` (bf16 for forward and dgrad, f32 += for wgrad).
void run_fp8(const Context& ctx, const std::string& model, const std::string& name, std::int64_t batch, std::int64_t m,
             std::int64_t n, std::int64_t k, int b_rows, DType out, int reps) {
  const auto quantized = [&](std::int64_t r, int br, std::uint32_t seed) {
    kernels::Fp8Tensor q = kernels::make_fp8(ctx, r, k, br, kernels::kFp8Tile);
    kernels::quantize_fp8(ctx, bench::random(ctx, {r, k}, DType::bf16, seed), q);
    return q;
  };
  const kernels::Fp8Tensor a = quantized(batch * m, 1, 1);
  std::vector<kernels::Fp8Tensor> b;
  for (std::int64_t e = 0; e < batch; ++e) b.push_back(quantized(n, b_rows, 2 + static_cast<std::uint32_t>(e)));
  Tensor c = ctx.zeros({batch * m, n}, out);
  const float beta = out == DType::f32 ? 1.0f : 0.0f;
  const double t = bench::time_per_call(ctx, reps, [&] {
    for (std::int64_t e = 0; e < batch; ++e)
      kernels::fp8_gemm(ctx, kernels::fp8_rows(a, e * m, (e + 1) * m), b[static_cast<std::size_t>(e)], c.slice(e * m, (e + 1) * m),
                        {.beta = beta});
  }, 3);
  const double flops = 2.0 * static_cast<double>(batch) * m * n * k;
  std::printf("%-6s %-16s %-5s batch %3lld  M %6lld  N %6lld  K %6lld  %s  %9.1f us  %7.1f TFLOP/s\n", model.c_str(),
              name.c_str(), "fp8", static_cast<long long>(batch), static_cast<long long>(m), static_cast<long long>(n),
              static_cast<long long>(k), b_rows == 1 ? "1D" : "2D", t * 1e6, flops / t * 1e-12);
  std::fflush(stdout);
}

// The same three GEMMs in FP8: forward x W^T and dgrad dy W against W's 128 x 128 blocks (W^T's for dgrad),
// wgrad dy^T x with both operands in 1 x 128 tiles along the tokens, accumulated into an f32 gradient.
void run_linear_fp8(const Context& ctx, const std::string& model, const Linear& l, int reps) {
  run_fp8(ctx, model, std::string(l.name) + ".fwd", l.batch, l.tokens, l.out, l.in, kernels::kFp8Tile, DType::bf16, reps);
  run_fp8(ctx, model, std::string(l.name) + ".dgrad", l.batch, l.tokens, l.in, l.out, kernels::kFp8Tile, DType::bf16, reps);
  run_fp8(ctx, model, std::string(l.name) + ".wgrad", l.batch, l.out, l.in, l.tokens, 1, DType::f32, reps);
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
    run_fp8(ctx, "square", "8192^3", 1, 8192, 8192, 8192, kernels::kFp8Tile, DType::bf16, 20);
    for (const Linear& l : kTiny) run_linear(ctx, "tiny", l, DType::bf16, 50);
    for (const Linear& l : kTiny) run_linear_fp8(ctx, "tiny", l, 50);
    for (const Linear& l : kBench) run_linear(ctx, "bench", l, DType::bf16, 10);
    for (const Linear& l : kBench) run_linear_fp8(ctx, "bench", l, 10);
  } else {
    run(ctx, "square", "1024^3", DType::f32, 1, 1024, 1024, 1024, false, true, 3);
    for (const Linear& l : kTiny) run_linear(ctx, "tiny", l, DType::f32, 10);
    for (const Linear& l : kTiny) run_linear_fp8(ctx, "tiny", l, 3);
  }
  return 0;
}
