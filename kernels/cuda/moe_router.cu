// CUDA router: one thread per token running the routine the CPU reference runs
// (kernels/moe_routing_math.hpp), so that scores, selections and gates are the same bits on both.
#include "kernels/cuda/launch.cuh"
#include "kernels/moe_router.hpp"
#include "kernels/moe_routing_math.hpp"

namespace r1::kernels::cuda {

namespace {
constexpr unsigned kBlock = 128;

__global__ void router_forward_kernel(RouterParams p, std::int64_t t, int e, const float* x, const float* bias,
                                      float* s, std::int32_t* idx, float* g) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kBlock) + threadIdx.x;
  if (i < t) moe::route_token(p, e, x + i * e, bias, s + i * e, idx + i * p.top_k, g + i * p.top_k);
}

__global__ void router_backward_kernel(RouterParams p, std::int64_t t, int e, const float* dg, const float* s,
                                       const std::int32_t* idx, const float* g, float* dx) {
  const std::int64_t i = blockIdx.x * static_cast<std::int64_t>(kBlock) + threadIdx.x;
  if (i < t) moe::route_token_backward(p, e, dg + i * p.top_k, s + i * e, idx + i * p.top_k, g + i * p.top_k, dx + i * e);
}

unsigned blocks(std::int64_t t) { return static_cast<unsigned>((t + kBlock - 1) / kBlock); }
}  // namespace

void moe_router_forward(const Context& ctx, const Tensor& logits, const Tensor& bias, const RouterParams& p,
                        const Tensor& scores, const Tensor& expert_idx, const Tensor& gates) {
  const std::int64_t t = scores.dim(0);
  router_forward_kernel<<<blocks(t), kBlock, 0, ctx.cuda_resources().stream>>>(
      p, t, static_cast<int>(scores.dim(1)), logits.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
      scores.data<float>(), expert_idx.data<std::int32_t>(), gates.data<float>());
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
