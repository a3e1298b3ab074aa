// AdamW step benchmark: the whole optimizer pass over the bench model's 2.25B parameters in its own tensor
// shapes (inputs/models/bench.deck: DeepSeek-V2-Lite layers, 4 of them), BF16 compute copy, FP32 master and
// gradient: one launch per tensor (the optimizer before the multi-tensor pass; each launch now also uploads
// its one-row table) against one multi-tensor launch, moments in FP32 and in BF16; and the gradient norm's
// sums of squares over 2^18-element chunks, one launch per tensor (reduce_rows) against one launch over all
// chunks (reduce_each). One line per case: ms per step, bytes moved per parameter, GB/s (H100 HBM3 peaks at
// 3.35 TB/s). On the CPU backend (no GPU, or --cpu) the same shapes cut 256x in their leading dimension.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "kernels/adamw.hpp"
#include "kernels/elementwise.hpp"
#include "kernels/reduce.hpp"

using namespace r1;
using kernels::Context;

namespace {
struct Shaped {
  Shape shape;
  bool decay;
};

// Every trainable tensor of the bench model (router biases are not trained); `shrink` divides the first dim.
std::vector<Shaped> bench_model(std::int64_t shrink) {
  const std::int64_t D = 2048, V = 102400, H = 16, E = 64, I = 1408, kv = 512, rope = 64, nope = 128, dv = 128;
  const auto cut = [&](std::int64_t rows) { return std::max<std::int64_t>(1, rows / shrink); };
  std::vector<Shaped> out = {{{cut(V), D}, true}, {{cut(V), D}, true}, {{D}, false}};  // embed, head, norm
  for (int layer = 0; layer < 4; ++layer) {
    for (const Shaped& s : std::vector<Shaped>{{{D}, false},
                                               {{D}, false},
                                               {{cut(H * (nope + rope)), D}, true},  // q
                                               {{cut(kv + rope), D}, true},        // kv_a_proj
                                               {{kv}, false},                            // kv_a_norm
                                               {{cut(H * (nope + dv)), kv}, true},   // kv_b
                                               {{cut(D), H * dv}, true}})            // o_proj
      out.push_back(s);
    if (layer == 0) {  // the dense FFN
      out.push_back({{cut(2 * 10944), D}, true});
      out.push_back({{cut(D), 10944}, true});
      continue;
    }
    out.push_back({{E, D}, false});                      // router
    out.push_back({{cut(E), 2 * I, D}, true});       // routed experts' gate_up
    out.push_back({{cut(E), D, I}, true});           // and down
    out.push_back({{cut(2 * 2 * I), D}, true});      // two shared experts' gate_up
    out.push_back({{cut(D), 2 * I}, true});          // and down
  }
  return out;
}

void report(const std::string& name, double seconds, double bytes, double params) {
  std::printf("%-52s %8.2f ms  %5.1f B/param  %7.1f GB/s\n", name.c_str(), seconds * 1e3, bytes / params,
              bytes / seconds * 1e-9);
  std::fflush(stdout);
}

// One case's state: the step's tensors, the moments in `moments`.
void bench_adamw(const Context& ctx, const std::vector<Shaped>& model, DType moments, bool per_tensor, int reps) {
  std::vector<kernels::AdamWTensor> ts;
  double params = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    const Shape& s = model[i].shape;
    ts.push_back({bench::random(ctx, s, DType::f32, 10 + static_cast<std::uint32_t>(i), 0.02f),
                  bench::random(ctx, s, DType::f32, 1000 + static_cast<std::uint32_t>(i), 1e-4f), ctx.zeros(s, moments),
                  ctx.zeros(s, moments), ctx.empty(s, DType::bf16), model[i].decay});
    params += static_cast<double>(ts.back().param.numel());
  }
  const kernels::AdamWOptions o{.lr = 2.2e-4f, .weight_decay = 0.1f, .step = 10, .grad_scale = 0.9f};
  const std::function<void()> step = [&] {
    if (!per_tensor) return kernels::adamw_multi_step(ctx, ts, o);
    for (const kernels::AdamWTensor& t : ts)
      kernels::adamw_step(ctx, t.param, t.grad, t.exp_avg, t.exp_avg_sq, {.lr = o.lr, .weight_decay = t.decay ? 0.1f : 0.0f,
                                                                          .step = o.step, .grad_scale = o.grad_scale}, t.param_bf16);
  };
  // Read grad, master, m, v; write master, m, v and the bf16 copy.
  const double per_param = 4 + 2 * 4 + 4 * static_cast<double>(dtype_size(moments)) + 2;
  report(std::string("adamw ") + (per_tensor ? "per tensor (" + std::to_string(ts.size()) + " launches)" : "multi-tensor") +
             ", " + dtype_name(moments) + " moments",
         bench::time_per_call(ctx, reps, step), per_param * params, params);
}

void bench_norm(const Context& ctx, const std::vector<Shaped>& model, bool per_tensor, int reps) {
  constexpr std::int64_t kChunk = 1 << 18;
  std::vector<Tensor> grads, chunks;
  double params = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    grads.push_back(bench::random(ctx, model[i].shape, DType::f32, 1000 + static_cast<std::uint32_t>(i), 1e-4f));
    const Tensor g = grads.back().view({grads.back().numel()});
    for (std::int64_t lo = 0; lo < g.numel(); lo += kChunk) chunks.push_back(g.slice(lo, std::min(lo + kChunk, g.numel())));
    params += static_cast<double>(g.numel());
  }
  const Tensor sums = ctx.empty({static_cast<std::int64_t>(chunks.size())}, DType::f32);
  const std::function<void()> norm = [&] {
    if (!per_tensor) return kernels::reduce_each(ctx, kernels::ReduceOp::sum_squares, chunks, sums);
    std::int64_t at = 0;
    for (const Tensor& g : grads) {  // whole chunks as rows, the partial last one on its own (the old grad_norm)
      const std::int64_t n = g.numel(), whole = n / kChunk;
      if (whole > 0)
        kernels::reduce_rows(ctx, kernels::ReduceOp::sum_squares, g.view({n}).slice(0, whole * kChunk).view({whole, kChunk}),
                             sums.slice(at, at + whole));
      if (n % kChunk != 0)
        kernels::reduce_rows(ctx, kernels::ReduceOp::sum_squares, g.view({n}).slice(whole * kChunk, n).view({1, n % kChunk}),
                             sums.slice(at + whole, at + whole + 1));
      at += (n + kChunk - 1) / kChunk;
    }
  };
  report(std::string("grad norm ") + (per_tensor ? "per tensor (reduce_rows)" : "multi-tensor (reduce_each)") + ", " +
             std::to_string(chunks.size()) + " chunks",
         bench::time_per_call(ctx, reps, norm), 4 * params, params);
}
}  // namespace

int main(int argc, char** argv) {
  bool gpu = false;
  const Context ctx = bench::bench_context(argc, argv, gpu);
  const std::vector<Shaped> model = bench_model(gpu ? 1 : 256);
  double params = 0;
  for (const Shaped& s : model) params += static_cast<double>(s.shape.numel());
  std::printf("# r1hpc AdamW benchmark on %s: %zu tensors, %.3fB parameters; median of 5 runs\n",
              gpu ? "cuda:0" : "the CPU backend (shapes / 256)", model.size(), params * 1e-9);
  const int reps = gpu ? 3 : 1;
  bench_adamw(ctx, model, DType::f32, /*per_tensor=*/true, reps);
  bench_adamw(ctx, model, DType::f32, /*per_tensor=*/false, reps);
  bench_adamw(ctx, model, DType::bf16, /*per_tensor=*/false, reps);
  bench_norm(ctx, model, /*per_tensor=*/true, reps);
  bench_norm(ctx, model, /*per_tensor=*/false, reps);
  return 0;
}
