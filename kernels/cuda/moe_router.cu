// CUDA router. Forward: one warp per token, built from the pieces of the routine the CPU reference runs
// (kernels/moe_routing_math.hpp), so that scores, selections and gates are the same bits on both: the scores
// element by element, the softmax's sum in expert order by one lane, and each pick (group or expert) as the
// best candidate under the selection's strict total order, found per lane and then across the warp.
// Backward: one thread per token running the shared per-token routine.
#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/moe_router.hpp"
#include "kernels/moe_routing_math.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr unsigned kBlock = 128;
constexpr unsigned kWarps = kBlock / 32;  // forward: tokens per block

// The best of the lanes' candidates (v, i) under ranks_before; i < 0: no candidate. Every lane ends with it.
__device__ void warp_best(float& v, int& i) {
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(~0u, v, o);
    const int oi = __shfl_xor_sync(~0u, i, o);
    if (oi >= 0 && moe::ranks_before(ov, oi, v, i)) {
      v = ov;
      i = oi;
    }
  }
}

// Shared memory: the bias (e floats, when there is one), then per warp the token's scores (e floats) and
// its group scores (64 floats).
// replay: rows whose first expert id is >= 0 keep their ids (routing replay); only their gates are computed.
__global__ void router_forward_kernel(RouterParams p, std::int64_t t, int e, const float* x, const float* bias,
                                      float* s, std::int32_t* idx, float* g, bool replay) {
  extern __shared__ float smem[];
  if (bias != nullptr)
    for (int j = static_cast<int>(threadIdx.x); j < e; j += static_cast<int>(blockDim.x)) smem[j] = bias[j];
  __syncthreads();
  const float* b = bias != nullptr ? smem : nullptr;
  const int lane = static_cast<int>(threadIdx.x % 32), w = static_cast<int>(threadIdx.x / 32);
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kWarps) + w;
  if (i >= t) return;
  float* ss = smem + (bias != nullptr ? e : 0) + w * (e + 64);
  float* gs = ss + e;
  const float* xi = x + i * e;

  if (p.score_func == ScoreFunc::sigmoid) {
    for (int j = lane; j < e; j += 32) ss[j] = moe::sigmoid_det(xi[j]);
  } else {
    float m = -INFINITY;
    for (int j = lane; j < e; j += 32) m = moe::max_step(m, xi[j]);
    for (int o = 16; o > 0; o >>= 1) m = moe::max_step(m, __shfl_xor_sync(~0u, m, o));
    for (int j = lane; j < e; j += 32) ss[j] = moe::exp_det(xi[j] - m);
    __syncwarp();
    float sum = 0.0f;  // in expert order, as on the CPU
    if (lane == 0)
      for (int j = 0; j < e; ++j) sum = moe::add_rn(sum, ss[j]);
    sum = __shfl_sync(~0u, sum, 0);
    for (int j = lane; j < e; j += 32) ss[j] = ss[j] / sum;
  }
  __syncwarp();
  std::int32_t* ii = idx + i * p.top_k;
  if (replay && ii[0] >= 0) {
    if (lane == 0) moe::gates_of(p, ss, ii, g + i * p.top_k);
    for (int j = lane; j < e; j += 32) s[i * e + j] = ss[j];
    return;
  }

  const int group_size = e / p.n_groups;
  std::uint64_t kept = ~std::uint64_t{0};
  if (p.topk_groups < p.n_groups) {
    for (int gi = lane; gi < p.n_groups; gi += 32) gs[gi] = moe::group_score(ss, b, gi * group_size, (gi + 1) * group_size);
    __syncwarp();
    kept = 0;
    float prev_v = 0.0f;
    int prev_g = -1;
    for (int pick = 0; pick < p.topk_groups; ++pick) {
      float best_v = -INFINITY;
      int best_g = -1;
      for (int gi = lane; gi < p.n_groups; gi += 32)
        if (moe::after_prev(gs[gi], gi, prev_v, prev_g) && moe::ranks_before(gs[gi], gi, best_v, best_g)) {
          best_v = gs[gi];
          best_g = gi;
        }
      warp_best(best_v, best_g);
      kept |= std::uint64_t{1} << best_g;
      prev_v = best_v;
      prev_g = best_g;
    }
  }

  float prev_v = 0.0f;
  int prev_e = -1;
  for (int j = 0; j < p.top_k; ++j) {
    float best_v = -INFINITY;
    int best_e = -1;
    for (int ex = lane; ex < e; ex += 32) {
      if (!((kept >> (ex / group_size)) & 1u)) continue;
      const float v = moe::biased_key(ss, b, ex);
      if (moe::after_prev(v, ex, prev_v, prev_e) && moe::ranks_before(v, ex, best_v, best_e)) {
        best_v = v;
        best_e = ex;
      }
    }
    warp_best(best_v, best_e);
    if (lane == 0) ii[j] = best_e;
    prev_v = best_v;
    prev_e = best_e;
  }
  if (lane == 0) moe::gates_of(p, ss, ii, g + i * p.top_k);
  for (int j = lane; j < e; j += 32) s[i * e + j] = ss[j];
}

__global__ void router_backward_kernel(RouterParams p, std::int64_t t, int e, const float* dg, const float* s,
                                       const std::int32_t* idx, const float* g, float* dx) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kBlock) + threadIdx.x;
  if (i < t) moe::route_token_backward(p, e, dg + i * p.top_k, s + i * e, idx + i * p.top_k, g + i * p.top_k, dx + i * e);
}

unsigned blocks(std::int64_t t) { return static_cast<unsigned>((t + kBlock - 1) / kBlock); }
}  // namespace

void moe_router_forward(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                        const Tensor& scores, const Tensor& expert_idx, const Tensor& gates, bool replay) {
  const std::int64_t t = scores.dim(0), e = scores.dim(1);
  const std::size_t smem = sizeof(float) * static_cast<std::size_t>((bias.defined() ? e : 0) + kWarps * (e + 64));
  if (smem > 48 * 1024) R1_CUDA(cudaFuncSetAttribute(router_forward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
  router_forward_kernel<<<static_cast<unsigned>((t + kWarps - 1) / kWarps), kBlock, smem, ctx.cuda_resources().stream>>>(
      p, t, static_cast<int>(e), logits.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
      scores.data<float>(), expert_idx.data<std::int32_t>(), gates.data<float>(), replay);
  R1_CUDA_LAUNCHED("moe_router_forward");
}

void moe_router_backward(const Context& ctx, const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx,
                         const Tensor& gates, const RouterParams& p, const Tensor& dlogits) {
  const std::int64_t t = scores.dim(0);
  router_backward_kernel<<<blocks(t), kBlock, 0, ctx.cuda_resources().stream>>>(
      p, t, static_cast<int>(scores.dim(1)), dgates.data<float>(), scores.data<float>(),
      expert_idx.data<std::int32_t>(), gates.data<float>(), dlogits.data<float>());
  R1_CUDA_LAUNCHED("moe_router_backward");
}

}  // namespace r1::kernels::cuda
