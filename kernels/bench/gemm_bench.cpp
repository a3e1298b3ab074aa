// GEMM benchmark: TFLOP/s of the large square BF16 GEMM and of every linear-layer GEMM (forward,
// input-gradient and weight-gradient) of the tiny and bench models, in BF16 and as precision fp8 runs them
// (block-scaled E4M3, kernels/fp8_gemm.hpp; the quantisation of the operands not timed). The routed experts in
// FP8 three ways: a loop of fp8_gemm (scales relaid per call), the grouped fp8_gemm_experts, and the grouped
// path with its one-launch quantisation of the BF16 inputs timed too (what model/linear runs), for a uniform
// and a ragged split of the tokens. Runs on the GPU when one is visible, else on the CPU backend (tiny shapes
// only). Reports the median of several timed runs.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
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

// The experts' FP8 GEMMs through the grouped path, tokens split by `counts`: forward-shaped (C [T_e, n] bf16 =
// A_e W_e^T, A_e 1 x 128 tiles, W_e 128 x 128 blocks; dgrad is this shape too) or the weight gradient (C_e [n, k]
// f32 += dy_e^T x_e, both along the tokens). "grouped": fp8_gemm_experts on operands made beforehand;
// "+quant": with the one-launch quantisation of the BF16 activations (weights stay cached, as in training).
void run_fp8_experts(const Context& ctx, const std::string& model, const std::string& name,
                     const std::vector<std::int64_t>& counts, std::int64_t n, std::int64_t k, bool wgrad, int reps) {
  std::vector<std::int64_t> offsets{0};
  for (std::int64_t c : counts) offsets.push_back(offsets.back() + c);
  const std::int64_t experts = static_cast<std::int64_t>(counts.size()), tokens = offsets.back();
  const Tensor x = bench::random(ctx, {tokens, k}, DType::bf16, 1), dy = bench::random(ctx, {tokens, n}, DType::bf16, 2);
  std::vector<kernels::Fp8Tensor> w;
  std::vector<Tensor> c;
  const Tensor out = wgrad ? ctx.zeros({experts, n, k}, DType::f32) : ctx.zeros({tokens, n}, DType::bf16);
  for (std::int64_t e = 0; e < experts; ++e) {
    if (!wgrad) {
      kernels::Fp8Tensor q = kernels::make_fp8(ctx, n, k, kernels::kFp8Tile, kernels::kFp8Tile);
      kernels::quantize_fp8(ctx, bench::random(ctx, {n, k}, DType::bf16, 3 + static_cast<std::uint32_t>(e)), q);
      w.push_back(kernels::to_gemm_layout(ctx, q));
    }
    c.push_back(wgrad ? out.slice(e, e + 1).view({n, k}) : out.slice(offsets[e], offsets[e + 1]));
  }
  const kernels::Fp8GemmOptions opt{.beta = wgrad ? 1.0f : 0.0f};
  const auto gemms = [&](const std::vector<kernels::Fp8Tensor>& a, const std::vector<kernels::Fp8Tensor>& b) {
    kernels::fp8_gemm_experts(ctx, a, b, c, opt);
  };
  const auto quantised = [&] {
    if (wgrad)
      return std::pair{kernels::quantize_fp8_expert_columns(ctx, dy, offsets, false),
                       kernels::quantize_fp8_expert_columns(ctx, x, offsets, false)};
    return std::pair{kernels::quantize_fp8_expert_rows(ctx, x, offsets, false), w};
  };
  const auto operands = quantised();
  const double t = bench::time_per_call(ctx, reps, [&] { gemms(operands.first, operands.second); }, 3);
  const double tq = bench::time_per_call(ctx, reps, [&] {
    const auto q = quantised();
    gemms(q.first, q.second);
  }, 3);
  const double flops = 2.0 * static_cast<double>(tokens) * n * k;
  for (auto [label, secs] : {std::pair{"grouped", t}, std::pair{"+quant", tq}})
    std::printf("%-6s %-16s %-5s %-7s experts %3lld  tokens %6lld  N %6lld  K %6lld  %9.1f us  %7.1f TFLOP/s\n",
                model.c_str(), name.c_str(), "fp8", label, static_cast<long long>(experts), static_cast<long long>(tokens),
                static_cast<long long>(n), static_cast<long long>(k), secs * 1e6, flops / secs * 1e-12);
  std::fflush(stdout);
}

// A routed layer's three GEMMs in grouped FP8 (forward n = out, k = in; dgrad n = in, k = out; wgrad [out, in]).
void run_experts_fp8(const Context& ctx, const std::string& model, const Linear& l, const std::vector<std::int64_t>& counts,
                     const std::string& tag, int reps) {
  run_fp8_experts(ctx, model, std::string(l.name) + ".fwd" + tag, counts, l.out, l.in, false, reps);
  run_fp8_experts(ctx, model, std::string(l.name) + ".dgrad" + tag, counts, l.in, l.out, false, reps);
  run_fp8_experts(ctx, model, std::string(l.name) + ".wgrad" + tag, counts, l.out, l.in, true, reps);
}

// A skewed split of batch x tokens over `batch` experts: counts from 0 to about twice the mean, none a multiple
// of 16 but the empty ones, as routing gives.
std::vector<std::int64_t> ragged_counts(const Linear& l) {
  std::vector<std::int64_t> counts;
  for (std::int64_t e = 0; e < l.batch; ++e) counts.push_back(e % 8 == 0 ? 0 : (e % 8) * l.tokens / 4 + (e % 3) * 5 + 1);
  return counts;
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
    for (const Linear& l : kBench)
      if (l.batch > 1) {
        run_experts_fp8(ctx, "bench", l, std::vector<std::int64_t>(static_cast<std::size_t>(l.batch), l.tokens), "", 10);
        run_experts_fp8(ctx, "bench", l, ragged_counts(l), ".ragged", 10);
      }
  } else {
    run(ctx, "square", "1024^3", DType::f32, 1, 1024, 1024, 1024, false, true, 3);
    for (const Linear& l : kTiny) run_linear(ctx, "tiny", l, DType::f32, 10);
    for (const Linear& l : kTiny) run_linear_fp8(ctx, "tiny", l, 3);
    for (const Linear& l : kTiny)
      if (l.batch > 1) run_experts_fp8(ctx, "tiny", l, ragged_counts(l), ".ragged", 3);
  }
  return 0;
}
