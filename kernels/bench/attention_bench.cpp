// Attention benchmark: forward and forward+backward time and TFLOP/s of fused causal attention at the
// bench model's shapes (DESIGN §6: batch 2, sequence 4096, 16 heads, d_qk 128+64, d_v 128, BF16), the small
// model's head dims and the tiny model's; on the GPU also the GQA students' (Qwen2.5-7B, Llama-3.1-8B)
// attention cores. Runs on the GPU when one is visible, else on the CPU backend (tiny shapes only).
//
// FLOPs: forward 2 B H S^2 (d_qk + d_v) (the Q K^T and P V products over the full S x S square), backward
// 2.5x forward (five products instead of two), as FlashAttention and the SDPA anchor in REFERENCE.md count
// them. "palm" applies no causal halving (DESIGN §6's MFU convention); "useful" halves it, counting only
// the work under the causal diagonal. The backward pass here also recomputes S and dP for dq (seven
// products), which the counts do not credit.
//
// Where the build has cuDNN, every bf16 causal GPU shape runs three times: our kernel (`own`), cuDNN's fused
// attention with its deterministic backward (`cudnn`) and with its atomic dq accumulation (`cudnn-nd`), each row
// naming cuDNN's engines and workspace, or why cuDNN does not take the shape.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench_util.hpp"
#include "core/timer.hpp"
#include "kernels/attention.hpp"
#include "kernels/random.hpp"
#if defined(R1HPC_HAVE_CUDNN)
#include "kernels/cuda/cudnn_attention.hpp"
#endif

using namespace r1;
using kernels::AttentionBackend;
using kernels::Context;

namespace {
struct Shape4 {
  const char* name;
  std::int64_t B, S, H, Dqk, Dv;
  std::int64_t Hkv = 0;  // K/V heads (grouped-query attention); 0: H
};

using bench::random;
template <class F>
double time_it(const Context& ctx, int reps, F&& f) { return bench::time_per_call(ctx, reps, f, 1); }

// What ran, after the timings: the backend, and for cuDNN its plans (or why it did not take the shape).
#if defined(R1HPC_HAVE_CUDNN)
std::string backend_note(const Context& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& seg) {
  if (ctx.attention_backend() == AttentionBackend::own || !ctx.is_cuda()) return "own";
  const auto variant = ctx.attention_backend() == AttentionBackend::cudnn ? kernels::cuda::CudnnBackward::deterministic
                                                                          : kernels::cuda::CudnnBackward::nondeterministic;
  const char* name = ctx.attention_backend() == AttentionBackend::cudnn ? "cudnn" : "cudnn-nd";
  std::string why;
  if (!kernels::cuda::cudnn_attention_supported(ctx, q, k, v, seg, variant, &why))
    return std::string(name) + " (not taken, our kernel ran: " + why + ")";
  const auto info = kernels::cuda::cudnn_attention_plan_info(ctx, q, k, v, variant);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s engines fwd %lld bwd %lld, workspace fwd %.1f MiB bwd %.1f MiB%s", name,
                info.forward_engine, info.backward_engine, info.forward_workspace / 1048576.0,
                info.backward_workspace / 1048576.0,
                info.backward_flagged_nondeterministic ? ", bwd engine noted non-deterministic" : "");
  return buf;
}
#else
std::string backend_note(const Context&, const Tensor&, const Tensor&, const Tensor&, const Tensor&) { return "own"; }
#endif

void run(const Context& ctx, const Shape4& s, DType dt, bool packed, int reps) {
  const std::int64_t hkv = s.Hkv > 0 ? s.Hkv : s.H;
  const Shape qs{s.B, s.S, s.H, s.Dqk}, vs{s.B, s.S, s.H, s.Dv}, ks{s.B, s.S, hkv, s.Dqk}, kvs{s.B, s.S, hkv, s.Dv};
  const Tensor q = random(ctx, qs, dt, 1), k = random(ctx, ks, dt, 2), v = random(ctx, kvs, dt, 3);
  const Tensor dout = random(ctx, vs, dt, 4);
  Tensor seg;
  if (packed) {  // eight samples per row, as SFT packing makes them
    Tensor h = Tensor::host({s.B, s.S}, DType::i32);
    for (std::int64_t i = 0; i < h.numel(); ++i) h.data<std::int32_t>()[i] = static_cast<std::int32_t>(i % s.S * 8 / s.S);
    seg = ctx.to_here(h);
  }
  Tensor out = ctx.empty(vs, dt), lse = ctx.empty({s.B, s.H, s.S}, DType::f32);
  Tensor dq = ctx.empty(qs, dt), dk = ctx.empty(ks, dt), dv = ctx.empty(kvs, dt);
  const float scale = 1.0f / std::sqrt(static_cast<float>(s.Dqk));
  const auto fwd = [&] { kernels::attention_forward(ctx, q, k, v, scale, seg, out, lse); };
  const double t_fwd = time_it(ctx, reps, fwd);
  const double t_all = time_it(ctx, reps, [&] {
    fwd();
    kernels::attention_backward(ctx, q, k, v, out, dout, lse, seg, scale, dq, dk, dv);
  });
  const double f_fwd = 2.0 * s.B * s.H * static_cast<double>(s.S) * s.S * (s.Dqk + s.Dv), f_all = 3.5 * f_fwd;
  std::printf("%-7s %-5s B %lld S %5lld H %3lld/%-3lld d_qk %3lld d_v %3lld %-7s | fwd %9.3f ms %8.3f TFLOP/s palm %8.3f useful"
              " | fwd+bwd %9.3f ms %8.3f TFLOP/s palm %8.3f useful | %s\n",
              s.name, dtype_name(dt), static_cast<long long>(s.B), static_cast<long long>(s.S),
              static_cast<long long>(s.H), static_cast<long long>(hkv), static_cast<long long>(s.Dqk), static_cast<long long>(s.Dv),
              packed ? "packed8" : "causal", t_fwd * 1e3, f_fwd / t_fwd * 1e-12, 0.5 * f_fwd / t_fwd * 1e-12, t_all * 1e3,
              f_all / t_all * 1e-12, 0.5 * f_all / t_all * 1e-12, backend_note(ctx, q, k, v, seg).c_str());
  std::fflush(stdout);
}

// The shape with our kernel, then (bf16 in builds with cuDNN) with cuDNN's two backward variants.
void run_backends(const Context& ctx, const Shape4& s, DType dt, bool packed, int reps) {
  run(ctx, s, dt, packed, reps);
#if defined(R1HPC_HAVE_CUDNN)
  if (dt != DType::bf16) return;
  for (AttentionBackend b : {AttentionBackend::cudnn, AttentionBackend::cudnn_nondeterministic}) {
    Context with = ctx;
    with.set_attention_backend(b);
    run(with, s, dt, packed, reps);
  }
#endif
}
}  // namespace

int main(int argc, char** argv) {
  bool gpu = false;
  const Context ctx = bench::bench_context(argc, argv, gpu);
  std::printf("# r1hpc attention benchmark on %s; median of 5 runs; fwd+bwd FLOPs = 3.5 x fwd;"
              " palm: no causal halving, useful: halved. SDPA anchor (H100, bench shape): 531 TFLOP/s fwd\n",
              gpu ? "cuda:0" : "the CPU backend");
  const Shape4 tiny{"tiny", 4, 128, 4, 48, 32};
  if (gpu) {
#if defined(R1HPC_HAVE_CUDNN)
    std::printf("# cuDNN %d loaded\n", kernels::cuda::cudnn_version());
#endif
    const Shape4 bench{"bench", 2, 4096, 16, 192, 128};
    run_backends(ctx, bench, DType::bf16, false, 10);
    run(ctx, bench, DType::bf16, true, 10);
    run_backends(ctx, {"d128", 2, 4096, 16, 128, 128}, DType::bf16, false, 10);
    run_backends(ctx, {"small", 2, 4096, 8, 96, 64}, DType::bf16, false, 10);
    // The GQA students' attention at one 4096-token sequence: Qwen2.5-7B (28 query heads, 4 K/V heads) and
    // Llama-3.1-8B (32 and 8); the CUDA path expands K/V to every query head (kernels/attention.hpp).
    run_backends(ctx, {"qwen7b", 1, 4096, 28, 128, 128, 4}, DType::bf16, false, 10);
    run_backends(ctx, {"llama8b", 1, 4096, 32, 128, 128, 8}, DType::bf16, false, 10);
    run_backends(ctx, tiny, DType::bf16, false, 100);
    run(ctx, tiny, DType::f32, false, 100);
  } else {
    run(ctx, tiny, DType::f32, false, 3);
    run(ctx, {"tinygqa", 4, 128, 4, 32, 32, 2}, DType::f32, false, 3);
  }
  return 0;
}
