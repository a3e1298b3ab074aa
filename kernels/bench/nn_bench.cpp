// NN building-block benchmark: GB/s (bytes each op must move / median time of 5 runs) of rmsnorm, swiglu,
// rope, cross_entropy, adamw and embedding, forward and backward, and token sampling, at the bench model's
// shapes (8192 tokens, dim 2048, expert hidden 1408, dense hidden 10944, vocab 102400, MLA q of 16 heads x 192
// with the rope slice at 128) in BF16 on cuda:0, or at tiny shapes on the CPU backend. The byte counts
// include only the tensors an op has to read and write, not scratch (e.g. rmsnorm's dweight partials). H100
// HBM3 peaks at 3.35 TB/s.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/timer.hpp"
#include "kernels/adamw.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/embedding.hpp"
#include "kernels/random.hpp"
#include "kernels/rmsnorm.hpp"
#include "kernels/rope.hpp"
#include "kernels/sampling.hpp"
#include "kernels/swiglu.hpp"

using namespace r1;
using kernels::Context;

namespace {
struct Shapes {
  std::int64_t tokens, dim, vocab, heads, head_row, rope_offset, rope_dim, params;
  std::vector<std::int64_t> hidden;
};
// Bench model (DESIGN §6): 2 x 4096 tokens; AdamW over 256M parameters (a slice of the 2.25B, so the
// four f32 state tensors fit beside everything else).
const Shapes kBench{8192, 2048, 102400, 16, 192, 128, 64, std::int64_t{1} << 28, {1408, 10944}};
const Shapes kTiny{512, 128, 512, 4, 48, 32, 16, std::int64_t{1} << 20, {64, 256}};

using bench::random;
Tensor ids(const Context& ctx, std::int64_t n, std::int64_t range) {
  Tensor h = Tensor::host({n}, DType::i32);
  for (std::int64_t i = 0; i < n; ++i) h.data<std::int32_t>()[i] = static_cast<std::int32_t>((i * 2654435761u) % range);
  return ctx.to_here(h);
}

void run(const Context& ctx, const std::string& name, double bytes, int reps, const std::function<void()>& op) {
  const double t = bench::time_per_call(ctx, reps, op);
  std::printf("%-34s %10.1f us  %8.1f GB/s  (%.1f MB)\n", name.c_str(), t * 1e6, bytes / t * 1e-9, bytes * 1e-6);
  std::fflush(stdout);
}

void bench_all(const Context& ctx, const Shapes& s, DType dt, int reps) {
  const double e = static_cast<double>(dtype_size(dt));
  const std::int64_t T = s.tokens, D = s.dim;
  const std::string tag = std::string(" ") + dtype_name(dt);
  {
    Tensor x = random(ctx, {T, D}, dt, 1), y = ctx.empty({T, D}, dt), dy = random(ctx, {T, D}, dt, 2);
    Tensor w = random(ctx, {D}, DType::f32, 3), rstd = ctx.empty({T}, DType::f32), dw = ctx.zeros({D}, DType::f32);
    const double row_bytes = T * D * e;
    run(ctx, "rmsnorm.fwd [" + std::to_string(T) + "," + std::to_string(D) + "]" + tag, 2 * row_bytes + D * 4 + T * 4,
        reps, [&] { kernels::rmsnorm_forward(ctx, x, w, 1e-6f, y, rstd); });
    run(ctx, "rmsnorm.bwd" + tag, 3 * row_bytes + D * 4 * 3 + T * 4, reps,
        [&] { kernels::rmsnorm_backward(ctx, dy, x, w, rstd, y, dw); });
  }
  for (std::int64_t H : s.hidden) {
    Tensor gu = random(ctx, {T, 2 * H}, dt, 4), out = ctx.empty({T, H}, dt), dout = random(ctx, {T, H}, dt, 5);
    Tensor dgu = ctx.empty({T, 2 * H}, dt);
    const std::string shape = " [" + std::to_string(T) + "," + std::to_string(2 * H) + "]";
    run(ctx, "swiglu.fwd" + shape + tag, 3 * T * H * e, reps, [&] { kernels::swiglu_forward(ctx, gu, out); });
    run(ctx, "swiglu.bwd" + shape + tag, 5 * T * H * e, reps, [&] { kernels::swiglu_backward(ctx, dout, gu, dgu); });
  }
  {
    const auto tab = kernels::rope_tables(ctx, {.rope_dim = static_cast<int>(s.rope_dim)}, T);
    Tensor q = random(ctx, {T, s.heads, s.head_row}, dt, 6);
    const Tensor pos = ids(ctx, T, T);
    // The rope slice of every head, read and written, plus one cos and one sin row per token.
    const double bytes = 2.0 * T * s.heads * s.rope_dim * e + T * 4 + 2.0 * T * s.rope_dim / 2 * 4;
    const std::string shape = " [" + std::to_string(T) + "," + std::to_string(s.heads) + "," + std::to_string(s.head_row) + "]";
    run(ctx, "rope.fwd" + shape + tag, bytes, reps, [&] { kernels::rope_forward(ctx, q, pos, tab, s.rope_offset); });
    run(ctx, "rope.bwd" + shape + tag, bytes, reps, [&] { kernels::rope_backward(ctx, q, pos, tab, s.rope_offset); });
  }
  {
    Tensor logits = random(ctx, {T, s.vocab}, dt, 7, 2.0f), tg = ids(ctx, T, s.vocab);
    Tensor loss = ctx.empty({T}, DType::f32), lse = ctx.empty({T}, DType::f32), dloss = random(ctx, {T}, DType::f32, 8);
    const double lb = static_cast<double>(T) * s.vocab * e;
    const std::string shape = " [" + std::to_string(T) + "," + std::to_string(s.vocab) + "]";
    run(ctx, "cross_entropy.fwd" + shape + tag, lb + T * 12, std::max(1, reps / 4),
        [&] { kernels::cross_entropy_forward(ctx, logits, tg, loss, lse); });
    run(ctx, "cross_entropy.bwd (in place)" + tag, 2 * lb + T * 12, std::max(1, reps / 4),
        [&] { kernels::cross_entropy_backward(ctx, logits, tg, lse, dloss, logits); });
  }
  {
    const std::int64_t n = s.params;
    Tensor p = random(ctx, {n}, DType::f32, 9), g = random(ctx, {n}, DType::f32, 10);
    Tensor m = ctx.zeros({n}, DType::f32), v = ctx.zeros({n}, DType::f32), pb = ctx.empty({n}, DType::bf16);
    const kernels::AdamWOptions o{.lr = 1e-4f, .weight_decay = 0.1f, .step = 10};
    run(ctx, "adamw.step [" + std::to_string(n) + "] + bf16 copy", n * (4.0 * 7 + 2), std::max(1, reps / 4),
        [&] { kernels::adamw_step(ctx, p, g, m, v, o, pb); });
  }
  {
    Tensor table = random(ctx, {s.vocab, D}, DType::f32, 11), out = ctx.empty({T, D}, dt);
    Tensor dout = random(ctx, {T, D}, dt, 12), dtable = ctx.zeros({s.vocab, D}, DType::f32);
    const Tensor tok = ids(ctx, T, s.vocab);
    const std::string shape = " [" + std::to_string(s.vocab) + "," + std::to_string(D) + "] f32 table";
    run(ctx, "embedding.fwd" + shape + tag, T * D * (4 + e) + T * 4, reps,
        [&] { kernels::embedding_forward(ctx, table, tok, out); });
    // Upper bound of the table traffic: every token's row read and written (ids here are all distinct
    // or nearly so).
    run(ctx, "embedding.bwd" + shape + tag, T * D * (e + 8) + T * 4, reps,
        [&] { kernels::embedding_backward(ctx, dout, tok, dtable); });
  }
}

// Token sampling over the vocabulary (f32 logits, one row per sequence): microseconds per call at batch 1
// (decode's case) and 64; bytes are the logits read once.
void bench_sampling(const Context& ctx, std::int64_t vocab, int reps) {
  const kernels::SampleOptions greedy{.temperature = 0.0f}, nucleus{.temperature = 0.7f, .top_p = 0.95f},
      both{.temperature = 0.6f, .top_p = 0.95f, .top_k = 50};
  const std::pair<const char*, const kernels::SampleOptions*> opts[] = {
      {"greedy", &greedy}, {"T 0.7 top_p 0.95", &nucleus}, {"T 0.6 top_k 50 top_p 0.95", &both}};
  for (std::int64_t B : {1, 64})
    for (float scale : {2.0f, 0.01f}) {  // logits of a trained model, and near-uniform (the nucleus's worst case)
      Tensor logits = random(ctx, {B, vocab}, DType::f32, 13, scale);
      Tensor hu = Tensor::host({B}, DType::f64);
      for (std::int64_t b = 0; b < B; ++b) hu.data<double>()[b] = std::fmod(0.6180339887498949 * static_cast<double>(b + 1), 1.0);
      const Tensor u = ctx.to_here(hu), tok = ctx.empty({B}, DType::i32);
      const Tensor lp = ctx.empty({B}, DType::f32), ent = ctx.empty({B}, DType::f32);
      for (const auto& [name, o] : opts) {
        if (scale < 1.0f && o == &greedy) continue;
        const std::string what = "sample [" + std::to_string(B) + "," + std::to_string(vocab) + "] " + name +
                                 (scale < 1.0f ? " near-uniform" : "");
        run(ctx, what, B * vocab * 4.0, reps, [&] { kernels::sample_rows(ctx, logits, u, *o, tok, lp, ent); });
      }
    }
}
}  // namespace

int main(int argc, char** argv) {
  bool gpu = false;
  const Context ctx = bench::bench_context(argc, argv, gpu);
  std::printf("# r1hpc NN kernel benchmark on %s; GB/s = bytes moved / median of 5 runs\n",
              gpu ? "cuda:0" : "the CPU backend (tiny shapes)");
  if (gpu) {
    bench_all(ctx, kBench, DType::bf16, 20);
    bench_all(ctx, kBench, DType::f32, 10);
    bench_sampling(ctx, kBench.vocab, 200);
  } else {
    bench_all(ctx, kTiny, DType::f32, 5);
    bench_sampling(ctx, kTiny.vocab, 5);
  }
  return 0;
}
