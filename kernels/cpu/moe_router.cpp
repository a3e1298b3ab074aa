// CPU reference router: the shared per-token routine (kernels/moe_routing_math.hpp), one token per iteration.
#include "kernels/cpu/moe_router.hpp"
#include "kernels/moe_routing_math.hpp"

namespace r1::kernels::cpu {

void moe_router_forward(const Tensor& logits, const Tensor& bias, const RouterParams& p, const Tensor& scores,
                        const Tensor& expert_idx, const Tensor& gates, bool replay) {
  const std::int64_t t = scores.dim(0);
  const int e = static_cast<int>(scores.dim(1)), k = p.top_k;
  const float* x = logits.data<float>();
  const float* b = bias.defined() ? bias.data<float>() : nullptr;
  float* s = scores.data<float>();
  std::int32_t* idx = expert_idx.data<std::int32_t>();
  float* g = gates.data<float>();
#pragma omp parallel for schedule(static) if (t > 256)
  for (std::int64_t i = 0; i < t; ++i) moe::route_token(p, e, x + i * e, b, s + i * e, idx + i * k, g + i * k, replay);
}

void moe_router_backward(const Tensor& dgates, const Tensor& scores, const Tensor& expert_idx, const Tensor& gates,
                         const RouterParams& p, const Tensor& dlogits) {
  const std::int64_t t = scores.dim(0);
  const int e = static_cast<int>(scores.dim(1)), k = p.top_k;
  const float* dg = dgates.data<float>();
  const float* s = scores.data<float>();
  const std::int32_t* idx = expert_idx.data<std::int32_t>();
  const float* g = gates.data<float>();
  float* dx = dlogits.data<float>();
#pragma omp parallel for schedule(static) if (t > 256)
  for (std::int64_t i = 0; i < t; ++i)
    moe::route_token_backward(p, e, dg + i * k, s + i * e, idx + i * k, g + i * k, dx + i * e);
}

}  // namespace r1::kernels::cpu
