// MoE routing benchmark at the bench model's shapes (DeepSeek-V2-Lite layer: 8192 tokens, 64 experts top-6,
// dim 2048, expert hidden 1408, softmax routing): router and balance loss forward/backward time, permute and
// unpermute GB/s, grouped expert GEMM TFLOP/s under a uniform and a skewed load. Runs on cuda:0 when one is
// visible, else on the CPU backend with tiny shapes. Reports the median of several timed runs.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/timer.hpp"
#include "kernels/grouped_gemm.hpp"
#include "kernels/moe_balance.hpp"
#include "kernels/moe_permute.hpp"
#include "kernels/moe_router.hpp"
#include "kernels/random.hpp"

using namespace r1;
using kernels::Context;

namespace {
struct Shapes {
  std::int64_t tokens, seq_len, experts, top_k, dim, hidden;
  DType dt;
};

double time_it(const Context& ctx, int reps, const std::function<void()>& f) { return bench::time_per_call(ctx, reps, f); }
using bench::random;

void line(const char* what, double seconds, const char* unit, double amount) {
  std::printf("%-46s %10.1f us  %8.1f %s\n", what, seconds * 1e6, amount / seconds, unit);
  std::fflush(stdout);
}

// Rows per expert: all equal, or skewed (expert e gets a share ~ 1/(1 + e/4), the last eighth none).
std::vector<std::int64_t> offsets(std::int64_t rows, std::int64_t experts, bool skewed) {
  std::vector<double> share(experts, 1.0);
  if (skewed)
    for (std::int64_t e = 0; e < experts; ++e) share[e] = e >= experts - experts / 8 ? 0.0 : 1.0 / (1.0 + e / 4.0);
  double total = 0;
  for (double x : share) total += x;
  std::vector<std::int64_t> size(experts), off(experts + 1, 0);
  std::int64_t assigned = 0;
  for (std::int64_t e = 0; e < experts; ++e) assigned += size[e] = static_cast<std::int64_t>(rows * share[e] / total);
  size[0] += rows - assigned;  // the rounding remainder
  for (std::int64_t e = 0; e < experts; ++e) off[e + 1] = off[e] + size[e];
  return off;
}

void grouped(const Context& ctx, const Shapes& s, const char* name, std::int64_t n, std::int64_t k, bool skewed,
             int reps) {
  const std::int64_t m = s.tokens * s.top_k;
  const auto off = offsets(m, s.experts, skewed);
  const Tensor in = random(ctx, {m, k}, s.dt, 10), w = random(ctx, {s.experts, n, k}, s.dt, 11, 0.02f);
  const Tensor dout = random(ctx, {m, n}, s.dt, 12);
  Tensor out = ctx.empty({m, n}, s.dt), din = ctx.empty({m, k}, s.dt), dw = ctx.zeros({s.experts, n, k}, DType::f32);
  const double flops = 2.0 * m * n * k;
  std::int64_t largest = 0;
  for (std::int64_t e = 0; e < s.experts; ++e) largest = std::max(largest, off[e + 1] - off[e]);
  const std::string tag = std::string(name) + (skewed ? " skewed" : " uniform") + " (max " + std::to_string(largest) + ")";
  line((tag + " fwd").c_str(), time_it(ctx, reps, [&] { kernels::grouped_gemm(ctx, in, w, out, off, {.trans_b = true}); }),
       "TFLOP/s", flops * 1e-12);
  line((tag + " dgrad").c_str(), time_it(ctx, reps, [&] { kernels::grouped_gemm(ctx, dout, w, din, off); }), "TFLOP/s",
       flops * 1e-12);
  line((tag + " wgrad").c_str(),
       time_it(ctx, reps, [&] { kernels::grouped_gemm(ctx, dout, in, dw, off, {.trans_a = true, .beta = 1.0f}); }),
       "TFLOP/s", flops * 1e-12);
}

void run(const Context& ctx, const Shapes& s, int reps) {
  const std::int64_t t = s.tokens, e = s.experts, k = s.top_k, d = s.dim;
  const kernels::RouterParams rp{.score_func = kernels::ScoreFunc::softmax, .top_k = static_cast<int>(k), .normalize = false};
  const kernels::BalanceParams bp{.seq_len = s.seq_len, .alpha = 1e-3f, .score_func = rp.score_func};
  const Tensor logits = random(ctx, {t, e}, DType::f32, 1);
  Tensor scores = ctx.empty({t, e}, DType::f32), idx = ctx.empty({t, k}, DType::i32), gates = ctx.empty({t, k}, DType::f32);
  Tensor dlogits = ctx.empty({t, e}, DType::f32), loss = ctx.empty({1}, DType::f32), counts = ctx.empty({e}, DType::i32);
  const Tensor dgates = random(ctx, {t, k}, DType::f32, 2);
  line("router fwd", time_it(ctx, reps, [&] {
         kernels::moe_router_forward(ctx, logits, Tensor(), rp, scores, idx, gates);
       }), "Mtok/s", t * 1e-6);
  line("router bwd", time_it(ctx, reps, [&] {
         kernels::moe_router_backward(ctx, dgates, scores, idx, gates, rp, dlogits);
       }), "Mtok/s", t * 1e-6);
  line("balance loss fwd", time_it(ctx, reps, [&] { kernels::moe_balance_forward(ctx, scores, idx, bp, loss, counts); }),
       "Mtok/s", t * 1e-6);
  line("balance loss bwd", time_it(ctx, reps, [&] { kernels::moe_balance_backward(ctx, 1.0f, scores, idx, bp, dlogits); }),
       "Mtok/s", t * 1e-6);

  // GB/s counts every row read and written once: the T*k permuted rows, plus the T token rows where they
  // are written (combine) or read once (unpermute backward reads dy, y_perm, writes dy_perm).
  const double row = static_cast<double>(d) * dtype_size(s.dt), n = static_cast<double>(t * k);
  const Tensor x = random(ctx, {t, d}, s.dt, 3);
  Tensor xp = ctx.empty({t * k, d}, s.dt), row_of = ctx.empty({t, k}, DType::i32), off = ctx.empty({e + 1}, DType::i32);
  line("permute (incl. offsets to host)", time_it(ctx, reps, [&] { kernels::moe_permute(ctx, x, idx, xp, row_of, off); }),
       "GB/s", 2 * n * row * 1e-9);
  Tensor y = ctx.empty({t, d}, s.dt), dyp = ctx.empty({t * k, d}, s.dt), dg = ctx.empty({t, k}, DType::f32);
  line("unpermute", time_it(ctx, reps, [&] { kernels::moe_unpermute(ctx, xp, row_of, gates, y); }), "GB/s",
       (n + t) * row * 1e-9);
  line("permute bwd", time_it(ctx, reps, [&] { kernels::moe_permute_backward(ctx, xp, row_of, y); }), "GB/s",
       (n + t) * row * 1e-9);
  line("unpermute bwd", time_it(ctx, reps, [&] {
         kernels::moe_unpermute_backward(ctx, x, xp, row_of, gates, dyp, dg);
       }), "GB/s", (2 * n + t) * row * 1e-9);

  for (bool skewed : {false, true}) {
    grouped(ctx, s, "experts gate_up", 2 * s.hidden, d, skewed, reps);
    grouped(ctx, s, "experts down", d, s.hidden, skewed, reps);
  }
}
}  // namespace

int main(int argc, char** argv) {
  bool gpu = false;
  const Context ctx = bench::bench_context(argc, argv, gpu);
  // Bench model: 2 x 4096 tokens; 64 experts, top-6, dim 2048, expert hidden 1408; BF16 activations.
  const Shapes bench{8192, 4096, 64, 6, 2048, 1408, DType::bf16};
  // Tiny model (inputs/models/tiny.deck): 4 x 128 tokens, 8 experts, top-2, dim 128, expert hidden 64.
  const Shapes tiny{512, 128, 8, 2, 128, 64, DType::f32};
  const Shapes& s = gpu ? bench : tiny;
  std::printf("# r1hpc MoE routing benchmark on %s: T %lld, E %lld, top-%lld, D %lld, hidden %lld, %s, softmax; "
              "median of 5 runs\n",
              gpu ? "cuda:0" : "the CPU backend", static_cast<long long>(s.tokens), static_cast<long long>(s.experts),
              static_cast<long long>(s.top_k), static_cast<long long>(s.dim), static_cast<long long>(s.hidden),
              dtype_name(s.dt));
  run(ctx, s, gpu ? 20 : 3);
  return 0;
}
